"""``vocalmix evaluate``: measure the learned models on held-out data and write the reports.

    vocalmix evaluate --data DIR [DIR...] --report OUTDIR [--level] [--eq] [--dynamics]
                      [--reverb] [--all]

The level model by repeated cross-validation grouped by artist against the human mixes
(:func:`vocalmix.training.level.evaluate_level_model`, the default), the corrective EQ on
held-out artists (:func:`vocalmix.training.eq.evaluate_eq`), the dynamics model on
held-out artists (:func:`vocalmix.training.dynamics.evaluate_dynamics`) and the reverb
model on held-out impulse responses and artists
(:func:`vocalmix.training.reverb.reverb_report`); the reports are written by
:mod:`vocalmix.training.reports`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vocalmix.core.errors import DataError
from vocalmix.training.level import (
    DEFAULT_AUGMENT,
    DEFAULT_DRAWS,
    DEFAULT_FOLDS,
    DEFAULT_REPEATS,
    evaluate_level_model,
)


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix evaluate``."""
    p = sub.add_parser("evaluate", help="measure the learned models on held-out data",
                       description="Level model (default): cross-validation grouped by "
                       "artist, repeated with several fold seeds; the -3 LU rule, a constant "
                       "and the model (with and without the genre) against the human mixes' "
                       "vocal-to-mix (while singing and integrated), vocal-to-backing and "
                       "vocal LRA measured on the stems; MUSDB18 test-split songs are never "
                       "trained on and reported apart. --eq: the "
                       "corrective EQ on held-out artists given random EQs. --dynamics: the "
                       "vocal's momentary loudness range after compression. --reverb: the "
                       "reverb estimator on held-out impulse responses and the reverb choice "
                       "model over artists. Each writes a markdown report and plots.")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="folders (walked recursively), manifests or stem files")
    p.add_argument("--report", required=True, metavar="OUTDIR",
                   help="folder for report.md, results.json and plots")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (level and reverb: default 0; EQ and dynamics: this one "
                   "seed instead of their three, 0, 1 and 2)")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help=f"level: fold seeds of the cross-validation (default {DEFAULT_REPEATS})")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS,
                   help=f"level: folds grouped by artist (default {DEFAULT_FOLDS})")
    p.add_argument("--no-sensitivity", action="store_true",
                   help="level: skip the tables with the feature set and penalty held fixed")
    p.add_argument("--augment", type=int, default=DEFAULT_AUGMENT,
                   help="perturbed copies per training excerpt")
    p.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                   help="perturbed versions of each held-out song, predictions averaged")
    p.add_argument("--no-cache", action="store_true", help="recompute cached features")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="songs analysed in parallel processes (same result; default 1)")
    p.add_argument("--level", action="store_true",
                   help="evaluate the level and dynamics model (the default when no other "
                        "evaluation is chosen)")
    p.add_argument("--eq", action="store_true",
                   help="evaluate the corrective EQ on held-out artists' mixed vocal stems "
                        "given random EQs")
    p.add_argument("--dynamics", action="store_true",
                   help="evaluate the dynamics model on held-out artists' mixed vocals made "
                        "to look raw, against the 14 LU rule and a constant")
    p.add_argument("--reverb", action="store_true",
                   help="evaluate the reverb estimator on held-out impulse responses, read "
                        "the reverb of the mixed vocals, and the choice model over songs")
    p.add_argument("--all", action="store_true",
                   help="all four (level, EQ, dynamics, reverb) into the same report folder "
                   "(e.g. --data ../shared/data)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    from vocalmix.training.reports import (
        write_dynamics_report,
        write_eq_report,
        write_level_report,
        write_reverb_report,
    )

    level = args.level or args.all or not (args.eq or args.reverb or args.dynamics)
    if level and (min(args.augment, args.draws, args.repeats) < 1 or args.folds < 2):
        raise DataError("--augment, --draws and --repeats must be at least 1, --folds at "
                        "least 2")
    out = Path(args.report)
    seed = 0 if args.seed is None else args.seed
    if level:
        res = evaluate_level_model(args.data, seed, args.augment, progress,
                                   not args.no_cache, args.draws, max(1, args.jobs),
                                   args.repeats, args.folds, not args.no_sensitivity)
        p = write_level_report(res, out)
        print(p.read_text(encoding="utf-8").split("\n## The other figures")[0])
        print(f"wrote {p}")
    if args.eq or args.all:
        from vocalmix.training.eq import evaluate_eq

        p = write_eq_report(evaluate_eq(args.data, progress=progress, seed=args.seed), out)
        print(p.read_text(encoding="utf-8"))
        print(f"wrote {p}")
    if args.dynamics or args.all:
        from vocalmix.training.dynamics import evaluate_dynamics

        p = write_dynamics_report(evaluate_dynamics(args.data, progress=progress,
                                                    seed=args.seed), out)
        print(p.read_text(encoding="utf-8"))
        print(f"wrote {p}")
    if args.reverb or args.all:
        from vocalmix.training.data import data_root
        from vocalmix.training.reverb import reverb_report

        res = reverb_report(args.data, data_root(), progress, seed=seed,
                            use_cache=not args.no_cache)
        p = write_reverb_report(res, out)
        print(p.read_text(encoding="utf-8"))
        print(f"wrote {p}")
    return 0


__all__ = ["register_cli"]
