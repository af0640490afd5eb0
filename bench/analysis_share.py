"""How much of a mix's and an estimate's time is the estimators' analysis (a script, not a
test): each command timed as it is, and with the estimate replayed from a recording.

The estimators' analysis (:func:`vocalmix.estimators.registry.estimate`: the baseline's
rules and every learned model's features and predictions) runs beside the rest of the
command on both cores, so its share of the wall time cannot be read off a profile. This
script measures it by taking it away and nothing else:

- a first process runs the command as usual and records what the estimate returned (the
  params document before the resolvers, and the notes: a few KB, pickled);
- then, round after round, in fresh processes, the command runs as it is, and with the
  estimate returning that recording at once instead of analysing (the order alternates
  between rounds, so that both meet the same load; with matchering installed, matchering
  masters the same song in each round too, as ``bench_speed.py`` runs it);
- each process starts as the ``vocalmix`` console script does (one BLAS thread, numpy's
  huge pages off, the same exit), and the estimators' module is patched as it is
  imported, on the thread that imports it in a real run, so that nothing else moves;
- the outputs of the last round are compared by SHA-256: the replayed command must write
  the same bytes, which shows that only the analysis was taken away.

What is left when the estimate costs nothing (decoding, the input checks, the resolvers'
renders and measurements, the render and the writer) is the time no estimator, however
cheap, can go under. ``--replay`` takes away one part of the analysis instead (the level
model's features, the model EQ's analysis, the reverb readings, the dynamics model, the
de-esser's reading, the baseline's rules, or several of them): what dropping it would
buy.

    python bench/analysis_share.py [--rounds 8] [--duration 180]
                                   [--song synthetic|musdb|karaoke] [--no-matchering]
                                   [--command "mix" --command "estimate"] [--md FILE]
                                   [--replay estimate --replay level,eq ...]

Output: per command, the median wall seconds as it is and replayed, the median of the
paired differences with a 90 % bootstrap interval, the median CPU seconds of each (the
process's user and system time, every thread's) and, with matchering, each as a ratio
to matchering's median time on the same song.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

#: the parts of the analysis that can be replayed: name -> (module, function). ``estimate``
#: is the whole of it; the others are the analyses it runs, each returning a few numbers
PARTS = {
    "estimate": ("vocalmix.estimators.registry", "estimate"),
    "level": ("vocalmix.estimators.level", "predict_song"),
    "eq": ("vocalmix.estimators.registry", "_eq_analysis"),
    "reverb": ("vocalmix.estimators.registry", "_reverb_analysis"),
    "take_reverb": ("vocalmix.estimators.registry", "_take_reverb"),
    "dynamics": ("vocalmix.estimators.dynamics", "predict_dynamics"),
    "deesser": ("vocalmix.core.deesser", "auto_settings"),
    "baseline": ("vocalmix.estimators.baseline", "estimate"),
}

#: the child process: ``RUNNER MODE RECORDING PARTS -- vocalmix arguments``; MODE
#: ``plain`` (the command as it is), ``record`` (as it is, saving what each of
#: :data:`PARTS` returned) or ``replay`` (the parts named in the comma-separated PARTS
#: return their recordings)
RUNNER = r"""
import importlib.abc, importlib.machinery, os, pickle, sys
from vocalmix.core.threads import no_numpy_hugepages, pin_blas_threads
pin_blas_threads(); no_numpy_hugepages()  # as the console script does, before numpy
mode, recording, chosen = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
ALL = __PARTS__
targets = {}
for part in chosen:
    module, function = ALL[part]
    targets.setdefault(module, []).append((part, function))
# each part's result is kept pickled on its own, and unpickled where the part would have
# run: loading the recording then imports nothing, which would move the imports
kept = {}
if mode == "replay":
    with open(recording, "rb") as f:
        kept = pickle.load(f)

def patch(module):
    for part, function in targets[module.__name__]:
        real = getattr(module, function)
        if mode == "record":
            def wrapper(*a, _real=real, _part=part, **k):
                out = _real(*a, **k)
                kept[_part] = pickle.dumps(out)
                return out
        else:
            def wrapper(*a, _part=part, **k):
                return pickle.loads(kept[_part])
        setattr(module, function, wrapper)

class Finder(importlib.abc.MetaPathFinder):
    # patches each module as it is imported, wherever that happens
    def find_spec(self, name, path, target=None):
        if name not in targets:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec

if mode != "plain":
    sys.meta_path.insert(0, Finder())
from vocalmix.frontends.cli import main
sys.argv = ["vocalmix", *sys.argv[5:]]
code = main()
if mode == "record":
    with open(recording, "wb") as f:
        pickle.dump(kept, f)
sys.stdout.flush(); sys.stderr.flush()
os._exit(code or 0)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--duration", type=float, default=180.0, help="song length, s")
    ap.add_argument("--song", choices=("synthetic", "musdb", "karaoke"), default="musdb",
                    help="the speed bench's song (see bench_speed.write_song)")
    ap.add_argument("--command", action="append",
                    help="a vocalmix command and its options, mix or estimate "
                    "(repeatable; default: mix, then estimate)")
    ap.add_argument("--replay", action="append", metavar="PART[,PART...]",
                    help="what to replay: estimate (the whole analysis, the default) or "
                    f"any of {', '.join(p for p in PARTS if p != 'estimate')} "
                    "(repeatable: each is compared with the command as it is)")
    ap.add_argument("--no-matchering", action="store_true")
    ap.add_argument("--md", type=Path, help="also write the table to this Markdown file")
    args = ap.parse_args()
    if args.rounds < 1 or not args.duration > 0:
        ap.error("--rounds must be at least 1 and --duration positive")
    commands = [shlex.split(c) for c in (args.command or ["mix", "estimate"])]
    if any(not w or w[0] not in ("mix", "estimate") for w in commands):
        ap.error("each --command must start with mix or estimate")
    replays = list(dict.fromkeys(args.replay or ["estimate"]))  # each once, in order
    if any(p not in PARTS for r in replays for p in r.split(",")):
        ap.error(f"--replay takes parts among {', '.join(PARTS)}")

    sys.path.insert(0, str(Path(__file__).parent))
    from ab_speed import compile_src, digest, median_interval, run_timed
    from bench_speed import MATCHERING, have_matchering, write_song

    have_mg = have_matchering(not args.no_matchering)
    with tempfile.TemporaryDirectory(prefix="vocalmix-share-") as tmp_s:
        tmp = Path(tmp_s)
        vp, bp, sp = tmp / "vocal.wav", tmp / "backing.wav", tmp / "sum.wav"
        print(f"writing a {args.duration:g} s song ...", file=sys.stderr)
        write_song(args.duration, vp, bp, sp, kind=args.song)
        compile_src(REPO / "src")
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        runner = tmp / "runner.py"
        runner.write_text(RUNNER.replace("__PARTS__", repr(PARTS)))
        mg_times: list[float] = []
        rows = []
        variants = ["plain", *replays]
        for words in commands:
            ext = ".json" if words[0] == "estimate" else ".wav"
            rec = tmp / f"{words[0]}.pickle"
            outs = {v: tmp / f"out_{i}{ext}" for i, v in enumerate(variants)}

            def argv(mode: str, parts: str, out: Path, words: list[str] = words,
                     rec: Path = rec) -> list[str]:
                return [PY, str(runner), mode, str(rec), parts, "--", words[0], str(vp),
                        str(bp), "-o", str(out), "--force", "-q", *words[1:]]

            run_timed(argv("record", ",".join(PARTS), outs["plain"]), env,
                      f"recording vocalmix {' '.join(words)}")
            times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
            for r in range(args.rounds):
                if have_mg:
                    mg_times.append(run_timed([PY, "-c", MATCHERING, str(sp), str(bp),
                                               str(tmp / "mg.wav")], env, "matchering")[0])
                for v in variants if r % 2 == 0 else variants[::-1]:
                    mode = "plain" if v == "plain" else "replay"
                    parts = v if mode == "replay" else "estimate"
                    times[v].append(run_timed(argv(mode, parts, outs[v]), env,
                                              f"vocalmix {' '.join(words)} ({v})"))
                print(f"{words[0]} round {r + 1}/{args.rounds}: " + ", ".join(
                    f"{v} {times[v][-1][0]:.2f} s" for v in variants), file=sys.stderr)
            for v in replays:
                if digest(outs[v]) != digest(outs["plain"]):
                    raise SystemExit(f"vocalmix {' '.join(words)}: with {v} replayed it wrote "
                                     "other bytes than as it is: not comparable")
            rows.append((" ".join(words), times))
        mg = statistics.median(mg_times) if mg_times else None
        head = (f"{args.duration:g} s song ({args.song}), {args.rounds} interleaved rounds, "
                "medians; the replayed commands wrote the same bytes")
        lines = [head, "",
                 "| command | replayed | as it is: wall s | replayed: wall s "
                 "| difference (90 % interval) | CPU s: as it is, replayed "
                 "| x matchering: as it is, replayed |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, times in rows:
            wall = {v: [t[0] for t in times[v]] for v in times}
            cpu = {v: [t[1] for t in times[v]] for v in times}
            a = statistics.median(wall["plain"])
            for v in replays:
                diffs = [y - x for x, y in zip(wall["plain"], wall[v], strict=True)]
                lo, hi = median_interval(diffs)
                b = statistics.median(wall[v])
                ratios = f"{a / mg:.2f}, {b / mg:.2f}" if mg else "-"
                lines.append(f"| vocalmix {name} | {v} | {a:.2f} | {b:.2f} | "
                             f"{statistics.median(diffs):+.2f} ({lo:+.2f} to {hi:+.2f}) | "
                             f"{statistics.median(cpu['plain']):.2f}, "
                             f"{statistics.median(cpu[v]):.2f} | {ratios} |")
        if mg is not None:
            lines.append(f"\nmatchering, the same song in the same rounds: {mg:.2f} s "
                         f"(median of {len(mg_times)})")
        text = "\n".join(lines)
        print(text)
        if args.md:
            args.md.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
