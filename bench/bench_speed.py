"""Whole-process speed and memory of vocalmix against matchering, on the same song and in
the same run (a script, not a test).

For a synthesised stereo 44.1 kHz song of each length asked for, it times, as fresh
processes pinned to one core: ``vocalmix mix`` (default method and ``--method
baseline``), ``vocalmix mix --method model``, ``vocalmix estimate``, ``vocalmix
--version`` and ``python -c "import numpy"``, and matchering mastering the same plain sum
(vocal + backing) to the backing as its reference (``pip install matchering``). Each
command's peak resident memory comes from the kernel (``resource.getrusage`` of the
child). Times are the median of ``--repeats`` runs; the table gives seconds, peak MB and
the ratio to matchering's time in the same run, which is what the machine's load cancels
out of.

    python bench/bench_speed.py [--durations 30,180] [--repeats 3] [--md FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
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


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one run of ``cmd`` (pinned to one core)."""
    t = time.perf_counter()
    proc = subprocess.run(["taskset", "-c", "0", *cmd], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    # ru_maxrss of the children so far: the largest of any child (KB on Linux)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return wall, rss


def measure(cmd: list[str], env: dict[str, str], repeats: int) -> tuple[float, float]:
    """Median wall seconds over ``repeats`` runs and the peak MB of one of them, alone."""
    walls = []
    for _ in range(repeats):
        walls.append(run(cmd, env)[0])
    # peak memory of this command alone: a fresh interpreter that runs it once
    probe = (f"import resource, subprocess, sys; subprocess.run({cmd!r}, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([PY, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return statistics.median(walls), int(out.stdout.strip()) / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--durations", default="30,180", help="song lengths, s, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--md", help="also write the markdown table to this file")
    ap.add_argument("--no-matchering", action="store_true")
    args = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    vocalmix = [PY, "-m", "vocalmix"]
    import numpy as np
    import soundfile as sf

    from vocalmix.synth import synthesize_song

    have_mg = not args.no_matchering
    if have_mg:
        try:
            import matchering  # noqa: F401
        except ImportError:
            print("matchering is not installed (pip install matchering): no reference",
                  file=sys.stderr)
            have_mg = False
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="vocalmix-speed-"))
    try:
        t_version = measure([*vocalmix, "--version"], env, max(args.repeats, 5))
        t_numpy = measure([PY, "-c", "import numpy"], env, max(args.repeats, 5))
        for dur in (float(d) for d in args.durations.split(",")):
            sr = 44100
            print(f"synthesising a {dur:g} s song", file=sys.stderr)
            v, b = synthesize_song(sample_rate=sr, duration_s=dur)
            vp, bp, sp = tmp / "vocal.wav", tmp / "backing.wav", tmp / "sum.wav"
            sf.write(vp, v, sr, subtype="PCM_24")
            sf.write(bp, b, sr, subtype="PCM_24")
            s = v + b
            sf.write(sp, (s / max(1.0, float(np.abs(s).max()) * 1.01)), sr, subtype="PCM_24")
            out = tmp / "out.wav"
            cmds = {
                "vocalmix mix (default method)": [*vocalmix, "mix", str(vp), str(bp), "-o",
                                                  str(out), "--force", "-q"],
                "vocalmix mix --method baseline": [*vocalmix, "mix", str(vp), str(bp), "-o",
                                                   str(out), "--force", "-q", "--method",
                                                   "baseline"],
                "vocalmix mix --method model": [*vocalmix, "mix", str(vp), str(bp), "-o",
                                                str(out), "--force", "-q", "--method", "model"],
                "vocalmix estimate": [*vocalmix, "estimate", str(vp), str(bp), "-o",
                                      str(tmp / "p.json"), "--force", "-q"],
            }
            if have_mg:
                cmds["matchering (same song)"] = [PY, "-c", MATCHERING, str(sp), str(bp),
                                                  str(tmp / "mg.wav")]
            res = {}
            for name, cmd in cmds.items():
                print(f"  {dur:g} s: {name}", file=sys.stderr)
                res[name] = measure(cmd, env, args.repeats)
            ref = res.get("matchering (same song)", (float("nan"), 0.0))[0]
            for name, (wall, mb) in res.items():
                rows.append((f"{dur:g} s", name, wall, mb, wall / ref, dur / wall))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [f"Machine: {os.cpu_count()} cores, one core used, median of {args.repeats} "
             "runs, fresh processes.", "",
             "| song | command | wall s | peak MB | x matchering | x real time |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for song, name, wall, mb, ratio, rt in rows:
        lines.append(f"| {song} | {name} | {wall:.2f} | {mb:.0f} | {ratio:.2f} | {rt:.0f} |")
    lines += ["", f"`vocalmix --version`: {t_version[0]:.3f} s; `python -c \"import numpy\"`: "
              f"{t_numpy[0]:.3f} s (ratio {t_version[0] / t_numpy[0]:.2f})."]
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
