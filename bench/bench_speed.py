"""Whole-process speed and memory of vocalmix against matchering, on the same song and in
the same run (a script, not a test).

For a synthesised stereo 44.1 kHz song of each length asked for (default 30 s, 3 min
and 10 min; ``--durations 30,180,600,3600`` adds an hour), it times, as fresh
processes: ``vocalmix mix`` (default method and ``--method baseline``), ``vocalmix mix
--method model``, ``vocalmix estimate``, ``vocalmix render`` of the params document
that estimate wrote, ``vocalmix --version`` and ``python -c "import numpy"``, and
matchering mastering the same plain sum (vocal + backing) to the backing as its
reference (``pip install matchering``), twice: as its users run it, and with numpy's
large arrays in ordinary pages (``NUMPY_MADVISE_HUGEPAGE=0``), as the vocalmix command
line runs its own. Where the kernel is slow to make transparent huge pages (this VM, at
some hours), the first takes seconds more of system time, and a ratio to it alone
would credit vocalmix with the machine's state. Each command's CPU time (user and system, every
thread) and peak resident memory come from the kernel (``os.wait4`` of that child).
Times are the median of ``--repeats`` runs; the table gives the ratio to matchering's
time in the same run first (what the machine's load cancels out of), then wall seconds,
CPU seconds (more than the wall time where a second core works) and peak MB.

A stage profile follows for each method: a fresh process imports the library, reads
both files, runs :func:`vocalmix.pipeline.mix` with a progress callback that timestamps
each stage (estimate, resolve.compressor, resolve.gain, resolve.master, render), and
writes the mix as the command line does.

Every process is pinned to one core (``taskset -c 0``) unless ``--cores all``: vocalmix
then runs as it would on the machine (matchering too). The vocalmix package is
byte-compiled first (``compileall``), as an installed package is.

Songs longer than 10 minutes are written by repeating a synthesised 3-minute song (the
bench process itself would otherwise hold the whole song several times); the decode
limit (``VOCALMIX_MAX_DECODED_MB``) is raised for them.

``--song musdb`` takes real stems instead: the first MUSDB18 training clip (6.8 s, from
``$VOCALMIX_DATA/musdb18-7s/train``) repeated to each length. The synthesised vocal is
one whose corrective EQ fits bands; a professionally mixed vocal, as most real ones,
needs none, so the two songs time different paths. ``--song karaoke`` puts a dry mono
take (``$VOCALMIX_DATA/dry_vocals/vocadito_1_CC-BY4.wav``, 33 s) over that clip's
backing, each repeated: a karaoke app's case, whose take the model de-esses and sends to
a reverb.

    python bench/bench_speed.py [--durations 30,180,600] [--repeats 3] [--cores 0|all]
                                [--md FILE] [--no-matchering] [--no-stages]
                                [--song synthetic|musdb|karaoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
MATCHERING = """
import sys, matchering as mg
mg.log(lambda *a: None)
mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm24(sys.argv[3])])
"""


STAGES = """
import json, sys, time
t0 = time.perf_counter()
from vocalmix.core.audio import AudioData, OutputPlan, prepare_pair, read_audio
from vocalmix.pipeline import mix
marks = [("import", t0), ("read", time.perf_counter())]
v, b = read_audio(sys.argv[1]), read_audio(sys.argv[2])
vs, bs, sr, _ = prepare_pair(v, b)
del v, b
def progress(ev):
    marks.append((ev.stage.split(".")[0] if ev.stage.startswith("estimate") else ev.stage,
                  time.perf_counter()))
marks.append(("estimate", time.perf_counter()))
params, rendered, est = mix(vs, bs, sr, method=sys.argv[4], progress=progress)
marks.append(("write", time.perf_counter()))
OutputPlan(audio=[sys.argv[3]], force=True).commit({sys.argv[3]: AudioData(rendered.mix, sr)})
marks.append(("end", time.perf_counter()))
out = {}
for (name, t), (_n, t1) in zip(marks[:-1], marks[1:]):
    out[name] = out.get(name, 0.0) + t1 - t
print(json.dumps(out))
"""

PIN: list[str] = ["taskset", "-c", "0"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, all its threads) and peak resident MB of
    one run of ``cmd`` (pinned as asked); the CPU time and the peak are this child's own
    (``os.wait4``; the peak in KB on Linux)."""
    t = time.perf_counter()
    proc = subprocess.Popen([*PIN, *cmd], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def measure(cmd: list[str], env: dict[str, str], repeats: int
            ) -> tuple[float, float, float]:
    """Median wall seconds and median CPU seconds over ``repeats`` runs, and the largest
    peak MB of them."""
    runs = [run(cmd, env) for _ in range(repeats)]
    return (statistics.median(w for w, _, _ in runs), statistics.median(c for _, c, _ in runs),
            max(m for _, _, m in runs))


def stage_profile(vp: Path, bp: Path, out: Path, method: str,
                  env: dict[str, str]) -> dict[str, float]:
    """Seconds per stage of one library mix in a fresh process (see the module doc)."""
    proc = subprocess.run([*PIN, PY, "-c", STAGES, str(vp), str(bp), str(out), method],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"stage profile failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def musdb_clip():
    """The first MUSDB18 training clip (by name) in ``$VOCALMIX_DATA/musdb18-7s/train``
    (default ``../shared/data``), a :class:`vocalmix.training.data.Song` (not decoded):
    real, professionally mixed stems, none of the test split's."""
    from vocalmix.training.data import data_root, find_songs

    root = data_root() / "musdb18-7s" / "train"
    songs = sorted((s for s in find_songs([root]) if not s.test_split),
                   key=lambda s: s.song_id)
    if not songs:
        raise SystemExit(f"no MUSDB18 training clips in {root} (set VOCALMIX_DATA)")
    return songs[0]


#: the dry take of ``--song karaoke``, in ``$VOCALMIX_DATA/dry_vocals`` (CC BY 4.0)
KARAOKE_TAKE = "vocadito_1_CC-BY4.wav"


def song_parts(kind: str, sr: int, piece: float):
    """The vocal and the backing a song of ``kind`` repeats, and their rate: synthesised
    (``piece`` s), a MUSDB18 training clip's stems, or a dry mono take over that clip's
    backing (``karaoke``: a karaoke app's case, whose take the model de-esses and sends
    to a reverb)."""
    from vocalmix.synth import synthesize_song

    if kind == "synthetic":
        v, b = synthesize_song(sample_rate=sr, duration_s=piece)
        return v, b, sr
    from vocalmix.training.data import load_song

    v, b, sr = load_song(musdb_clip())[:3]
    if kind == "karaoke":
        import soundfile as sf

        from vocalmix.training.data import data_root

        path = data_root() / "dry_vocals" / KARAOKE_TAKE
        if not path.is_file():
            raise SystemExit(f"no dry take {path} (set VOCALMIX_DATA)")
        v, vsr = sf.read(path, dtype="float32")
        if vsr != sr:
            raise SystemExit(f"{path} is at {vsr} Hz, the backing at {sr} Hz")
    return v, b, sr


def write_song(dur: float, vp: Path, bp: Path, sp: Path, sr: int = 44100,
               kind: str = "synthetic") -> None:
    """Write the song's vocal, backing and their plain sum (scaled under full scale) as
    24-bit WAVs: synthesised (a 3-minute one repeated beyond 10 minutes), with ``kind``
    ``"musdb"`` a real MUSDB18 training clip's stems repeated to the length, or with
    ``"karaoke"`` a dry mono take (:data:`KARAOKE_TAKE`) and that clip's backing, each
    repeated to the length."""
    import numpy as np
    import soundfile as sf

    v, b, sr = song_parts(kind, sr, dur if dur <= 600 else 180.0)
    n = int(round(dur * sr))
    chunk = 1 << 18

    def chunks():
        for done in range(0, n, chunk):
            idx = np.arange(done, min(n, done + chunk))
            vk, bk = v[idx % len(v)], b[idx % len(b)]
            yield vk, bk, (vk if vk.ndim == 2 else vk[:, None]) + bk

    peak = max(float(np.abs(s).max()) for _v, _b, s in chunks())
    scale = 1.0 / max(1.0, peak * 1.01)
    with sf.SoundFile(vp, "w", sr, v.shape[1] if v.ndim == 2 else 1, "PCM_24") as fv, \
            sf.SoundFile(bp, "w", sr, 2, "PCM_24") as fb, \
            sf.SoundFile(sp, "w", sr, 2, "PCM_24") as fs:
        for vk, bk, sk in chunks():
            fv.write(vk)
            fb.write(bk)
            fs.write(sk * scale)


def have_matchering(wanted: bool = True) -> bool:
    """Whether matchering is ``wanted`` and importable; says so on stderr when it is
    wanted and missing (the tables then have no reference)."""
    if not wanted:
        return False
    try:
        import matchering  # noqa: F401
    except ImportError:
        print("matchering is not installed (pip install matchering): no reference",
              file=sys.stderr)
        return False
    return True


def main() -> int:
    global PIN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--durations", default="30,180,600", help="song lengths, s, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", default="0", help="taskset core list, or 'all' (no pinning)")
    ap.add_argument("--md", help="also write the markdown tables to this file")
    ap.add_argument("--no-matchering", action="store_true")
    ap.add_argument("--no-stages", action="store_true")
    ap.add_argument("--song", choices=("synthetic", "musdb", "karaoke"), default="synthetic",
                    help="the song: synthesised (default), a real MUSDB18 training clip's "
                    "stems, or a dry mono take over that clip's backing, repeated to each "
                    "length (from $VOCALMIX_DATA)")
    args = ap.parse_args()
    PIN = [] if args.cores == "all" else ["taskset", "-c", args.cores]

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if args.cores == "all":
        env = dict(os.environ)
    vocalmix = [PY, "-m", "vocalmix"]
    # byte-compile the package first, as pip does when it installs one: matchering's
    # modules are compiled in site-packages, and an editable install run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile vocalmix's in every process
    import importlib.util

    spec = importlib.util.find_spec("vocalmix")
    assert spec is not None and spec.origin is not None
    subprocess.run([PY, "-m", "compileall", "-q", str(Path(spec.origin).parent)],
                   check=True, stdout=subprocess.DEVNULL)

    have_mg = have_matchering(not args.no_matchering)
    rows = []
    stages: list[tuple[str, str, dict[str, float]]] = []
    tmp = Path(tempfile.mkdtemp(prefix="vocalmix-speed-"))
    try:
        t_version = measure([*vocalmix, "--version"], env, max(args.repeats, 5))
        t_numpy = measure([PY, "-c", "import numpy"], env, max(args.repeats, 5))
        for dur in (float(d) for d in args.durations.split(",")):
            print(f"writing a {dur:g} s song ({args.song})", file=sys.stderr)
            vp, bp, sp = tmp / "vocal.wav", tmp / "backing.wav", tmp / "sum.wav"
            # in a child process: Linux counts the peak resident memory of a forked
            # child from its parent's high-water mark (exec keeps it), so a parent that
            # had held the synthesised song would lift every child's figure to its own
            subprocess.run([PY, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                            "from bench_speed import write_song; from pathlib import Path; "
                            "write_song(float(sys.argv[2]), *map(Path, sys.argv[3:6]), "
                            "kind=sys.argv[6])",
                            str(Path(__file__).resolve().parent), str(dur), str(vp), str(bp),
                            str(sp), args.song], check=True)
            denv = dict(env)
            if dur > 600:
                denv["VOCALMIX_MAX_DECODED_MB"] = str(int(dur / 60 * 25) + 64)
            out = tmp / "out.wav"
            mixcmd = [*vocalmix, "mix", str(vp), str(bp), "-o", str(out), "--force", "-q"]
            cmds = {}
            mg_small = "matchering (same song, small pages)"
            if have_mg:
                cmds["matchering (same song)"] = [PY, "-c", MATCHERING, str(sp), str(bp),
                                                  str(tmp / "mg.wav")]
                cmds[mg_small] = cmds["matchering (same song)"]
            cmds.update({
                "vocalmix mix (default method)": mixcmd,
                "vocalmix mix --method baseline": [*mixcmd, "--method", "baseline"],
                "vocalmix mix --method model": [*mixcmd, "--method", "model"],
                # the same mix written as an MP3 (LAME at V0), as many karaoke apps deliver
                "vocalmix mix -o mix.mp3": [*vocalmix, "mix", str(vp), str(bp), "-o",
                                            str(tmp / "out.mp3"), "--force", "-q"],
                "vocalmix estimate": [*vocalmix, "estimate", str(vp), str(bp), "-o",
                                      str(tmp / "p.json"), "--force", "-q"],
                # a re-render of the params document the estimate above wrote (what the
                # command line's render and the web page do after an edit)
                "vocalmix render (params document)": [
                    *vocalmix, "render", str(vp), str(bp), str(tmp / "p.json"), "-o",
                    str(out), "--force", "-q"],
            })
            res = {}
            for name, cmd in cmds.items():
                print(f"  {dur:g} s: {name}", file=sys.stderr)
                # matchering as its users run it, and with numpy's large arrays in
                # ordinary pages, as the vocalmix command line runs (it sets
                # NUMPY_MADVISE_HUGEPAGE=0): where the kernel makes huge pages slowly,
                # the first is the slower by seconds
                cenv = dict(denv, NUMPY_MADVISE_HUGEPAGE="0") if name == mg_small else denv
                res[name] = measure(cmd, cenv, args.repeats)
            nan = (float("nan"), 0.0, 0.0)
            ref = res.get("matchering (same song)", nan)[0]
            ref_small = res.get(mg_small, nan)[0]
            for name, (wall, cpu, mb) in res.items():
                rows.append((f"{dur:g} s", name, wall, cpu, mb, wall / ref, wall / ref_small,
                             dur / wall))
            if not args.no_stages:
                for method in ("baseline", "model"):
                    print(f"  {dur:g} s: stage profile, {method}", file=sys.stderr)
                    stages.append((f"{dur:g} s", method,
                                   stage_profile(vp, bp, out, method, denv)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    how = ("one core (taskset -c " + args.cores + ")" if args.cores != "all"
           else "every core, not pinned")
    song = {"synthetic": "a synthesised song",
            "musdb": f"the MUSDB18 training clip '{musdb_clip().song_id}' repeated to "
                     "each length",
            "karaoke": f"the dry take {KARAOKE_TAKE} (mono, 33 s) over the backing of the "
                       f"MUSDB18 training clip '{musdb_clip().song_id}', each repeated to "
                       "each length"}[args.song]
    lines = [f"Machine: {os.cpu_count()} cores, {how}, median of {args.repeats} "
             f"runs, fresh processes; {song}.", "",
             "| song | command | x matchering | x matchering, small pages | wall s | CPU s "
             "| peak MB | x real time |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for song, name, wall, cpu, mb, ratio, ratio_small, rt in rows:
        lines.append(f"| {song} | {name} | {ratio:.2f} | {ratio_small:.2f} | {wall:.2f} "
                     f"| {cpu:.2f} | {mb:.0f} | {rt:.0f} |")
    lines += ["", f"`vocalmix --version`: {t_version[0]:.3f} s; `python -c \"import numpy\"`: "
              f"{t_numpy[0]:.3f} s (ratio {t_version[0] / t_numpy[0]:.2f})."]
    if stages:
        names = list(dict.fromkeys(k for _s, _m, d in stages for k in d))
        lines += ["", "Stage profile (s, one run each, in-process library call):", "",
                  "| song | method | " + " | ".join(names) + " | total |",
                  "| --- | --- | " + " | ".join("---:" for _ in names) + " | ---: |"]
        for song, method, d in stages:
            lines.append(f"| {song} | {method} | "
                         + " | ".join(f"{d.get(k, 0.0):.2f}" for k in names)
                         + f" | {sum(d.values()):.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
