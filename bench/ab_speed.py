"""Interleaved whole-process timing of two versions of vocalmix on one song (a script, not
a test): the comparison that a shared machine's load does not swamp.

A single run of a command moves by 10-20 % with the load of a shared VM, more than most
changes to the mixing path are worth. Running the two versions alternately, round after
round, exposes both to the same load; the medians and the paired differences then say
which is faster. This script does that:

- each version's ``src`` is taken from git (``git archive REV src``) into a temporary
  folder and byte-compiled, as an installed package is; ``--b worktree`` (the default)
  uses this checkout's ``src`` as it is on disk;
- the song is the speed bench's synthesised one (``bench_speed.write_song``), with
  ``--song musdb`` its real MUSDB18 training stems, or with ``--song karaoke`` a dry mono
  take over their backing, written once into the temporary folder;
- each round runs ``python -m vocalmix <command> VOCAL BACKING -o OUT --force -q`` (for
  ``render``, the params document version A's ``estimate`` wrote first follows BACKING) with
  ``PYTHONPATH`` pointing at version A, then at version B (the order alternates between
  rounds), timing the wall clock and the child's CPU (user + system, from ``wait4``);
- the outputs of the last round are compared by SHA-256: a speed change that is meant to
  keep the output says so, and one that moves it is reported.

    python bench/ab_speed.py --a 0360af1 [--b worktree|REV] [--rounds 8]
                             [--command "mix --method model"] [--duration 180]
                             [--song synthetic|musdb|karaoke]

Output: one line per version (median wall and CPU seconds, their spread), the median of
the paired differences B - A with a 90 % bootstrap interval, in how many rounds B was
faster and the two-sided sign test's p-value for that count (a difference whose interval
holds 0 and whose p-value is large is within the machine's noise), and whether the
outputs are the same to the bit.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def export_src(rev: str, into: Path) -> Path:
    """``src`` of ``rev`` (a commit, tag or branch) unpacked under ``into``; its path."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def compile_src(src: Path) -> None:
    """Byte-compile a version's package, as ``pip install`` does (an editable checkout run
    with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile it in every process)."""
    subprocess.run([PY, "-m", "compileall", "-q", str(src / "vocalmix")], check=True,
                   stdout=subprocess.DEVNULL)


def run_timed(argv: list[str], env: dict[str, str], what: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, every thread's, from ``wait4``) of one
    process; a failure stops the script with ``what`` and the process's stderr."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{what} failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime


def run_once(src: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one ``python -m vocalmix`` process."""
    return run_timed([PY, "-m", "vocalmix", *args], dict(os.environ, PYTHONPATH=str(src)),
                     f"vocalmix {' '.join(args)} with PYTHONPATH={src}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def sign_test_p(faster: int, slower: int) -> float:
    """Two-sided sign test: the probability, were both versions equally fast, of a split
    of the rounds at least this uneven (rounds with equal times left out)."""
    from math import comb

    n = faster + slower
    if n == 0:
        return 1.0
    k = min(faster, slower)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def median_interval(diffs: list[float], level: float = 0.90, draws: int = 4000
                    ) -> tuple[float, float]:
    """A bootstrap interval of the median of ``diffs`` (percentile method, ``draws``
    resamples with a fixed seed: the same figures for the same times)."""
    import random

    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(draws))
    lo = meds[int((1.0 - level) / 2.0 * (draws - 1))]
    hi = meds[int((1.0 + level) / 2.0 * (draws - 1))]
    return lo, hi


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="version A: a git revision")
    ap.add_argument("--b", default="worktree",
                    help="version B: a git revision, or 'worktree' (this checkout's src)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--command", default="mix --method model",
                    help="the vocalmix command and its options (mix, estimate or render)")
    ap.add_argument("--duration", type=float, default=180.0, help="song length, s")
    ap.add_argument("--song", choices=("synthetic", "musdb", "karaoke"), default="synthetic",
                    help="the speed bench's synthesised song (its vocal a mono take read "
                    "as stereo), its real MUSDB18 training stems (a stereo vocal), or a "
                    "dry mono take over their backing (karaoke)")
    args = ap.parse_args()
    if args.rounds < 1 or not args.duration > 0:
        ap.error("--rounds must be at least 1 and --duration positive")
    words = shlex.split(args.command)
    if not words or words[0] not in ("mix", "estimate", "render"):
        ap.error("--command must start with mix, estimate or render")
    ext = ".json" if words[0] == "estimate" else ".wav"

    with tempfile.TemporaryDirectory(prefix="vocalmix-ab-") as tmp_s:
        tmp = Path(tmp_s)
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_speed import write_song

        vp, bp, sp = tmp / "vocal.wav", tmp / "backing.wav", tmp / "sum.wav"
        print(f"writing a {args.duration:g} s song ...", file=sys.stderr)
        write_song(args.duration, vp, bp, sp, kind=args.song)
        srcs = {"A": export_src(args.a, tmp / "a")}
        srcs["B"] = (REPO / "src" if args.b == "worktree"
                     else export_src(args.b, tmp / "b"))
        for src in srcs.values():
            compile_src(src)
        times: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        outs = {k: tmp / f"out_{k}{ext}" for k in srcs}
        inputs = [str(vp), str(bp)]
        if words[0] == "render":  # both render the params document A's estimate writes
            doc = tmp / "params.json"
            run_once(srcs["A"], ["estimate", *inputs, "-o", str(doc), "-q"])
            inputs.append(str(doc))
        for r in range(args.rounds):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            for k in order:
                cmd = [*words[:1], *inputs, "-o", str(outs[k]), "--force", "-q", *words[1:]]
                times[k].append(run_once(srcs[k], cmd))
            print(f"round {r + 1}/{args.rounds}: A {times['A'][-1][0]:.2f} s, "
                  f"B {times['B'][-1][0]:.2f} s", file=sys.stderr)
        label = {"A": args.a, "B": args.b}
        print(f"vocalmix {args.command}, {args.duration:g} s song, {args.rounds} interleaved "
              "rounds (wall s / CPU s, median [min-max])")
        for k in ("A", "B"):
            w = [t[0] for t in times[k]]
            c = [t[1] for t in times[k]]
            print(f"  {k} {label[k]}: {statistics.median(w):.3f} [{min(w):.2f}-{max(w):.2f}]"
                  f" / {statistics.median(c):.3f}")
        diffs = [b[0] - a[0] for a, b in zip(times["A"], times["B"], strict=True)]
        cdiffs = [b[1] - a[1] for a, b in zip(times["A"], times["B"], strict=True)]
        faster = sum(d < 0 for d in diffs)
        slower = sum(d > 0 for d in diffs)
        lo, hi = median_interval(diffs)
        clo, chi = median_interval(cdiffs)
        print(f"  B - A: {statistics.median(diffs):+.3f} s wall (90 % interval {lo:+.3f} to "
              f"{hi:+.3f}; B faster in {faster} of {len(diffs)} rounds, sign test p = "
              f"{sign_test_p(faster, slower):.2f}), {statistics.median(cdiffs):+.3f} s CPU "
              f"({clo:+.3f} to {chi:+.3f})")
        same = digest(outs["A"]) == digest(outs["B"])
        print(f"  outputs: {'the same to the bit' if same else 'DIFFERENT'} "
              f"({digest(outs['A'])} / {digest(outs['B'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
