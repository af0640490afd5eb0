"""``vocalmix train``: fit the learned models and write their weights, deterministically.

    vocalmix train --data DIR [DIR...] -o MODELDIR [--only level|eq|dynamics|reverb]
                   [--seed 0]

The level model (:func:`vocalmix.training.level.train_level_model`; ``--augment``,
``--repeats``, ``--no-cv``, ``--jobs``), the corrective EQ
(:func:`vocalmix.training.eq.train_eq`), the dynamics model
(:func:`vocalmix.training.dynamics.train_dynamics`) and the reverb model
(:func:`vocalmix.training.reverb.train_reverb_model`). Each writes its ``.npz`` and
``.json`` into MODELDIR; copy them into ``src/vocalmix/assets`` to ship them. Cached
features and examples live under ``$VOCALMIX_CACHE`` (default ``~/.cache/vocalmix``);
``--no-cache`` recomputes them. The same data and seed give byte-identical level-model
files (``vocalmix train --only level --data ../shared/data -o DIR`` reproduces the
shipped ``level_model.npz`` and ``level_model.json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vocalmix.core.errors import DataError
from vocalmix.training.level import DEFAULT_AUGMENT, DEFAULT_REPEATS, train_level_model

MODEL_KINDS = ("level", "eq", "dynamics", "reverb")


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix train``."""
    p = sub.add_parser("train", help="fit the learned models (level, EQ, dynamics, reverb)",
                       description="Fit the learned models: the level and dynamics model on "
                       "professionally mixed vocal and backing stems (MUSDB18-HQ folders, "
                       "MUSDB18 .stem.mp4 files, or a manifest.csv), the corrective-EQ model "
                       "on the mixed vocal stems (random EQ, exact inverse as the label), the "
                       "dynamics model on the mixed vocal stems, and the reverb model. "
                       "Deterministic for a given --seed.")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="folders (walked recursively), manifests or stem files")
    p.add_argument("-o", "--output", required=True, metavar="MODELDIR",
                   help="folder for the weights and their metadata (copy them into "
                   "src/vocalmix/assets to ship them)")
    p.add_argument("--only", action="append", choices=MODEL_KINDS, metavar="MODEL",
                   help=f"train only this model ({', '.join(MODEL_KINDS)}; repeatable; "
                   "default: all). The reverb model reads its dry vocals and impulse "
                   "responses from the data root ($VOCALMIX_DATA) and renders about "
                   "10 000 examples the first time (about an hour on one core; cached)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--augment", type=int, default=DEFAULT_AUGMENT,
                   help=f"level model: perturbed copies per excerpt (default {DEFAULT_AUGMENT})")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="level model: fold seeds of the artist-grouped cross-validation "
                   f"recorded in the metadata (default {DEFAULT_REPEATS})")
    p.add_argument("--no-cv", action="store_true",
                   help="level model: skip the cross-validated metrics in the metadata "
                   "(then vocalmix mix keeps the baseline as its default method)")
    p.add_argument("--force", action="store_true",
                   help="replace the model files an earlier run left in MODELDIR")
    p.add_argument("--no-cache", action="store_true", help="recompute cached features")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="songs analysed in parallel processes (same result; default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="tracebacks for internal errors")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    if args.augment < 1 or args.repeats < 1:
        raise DataError("--augment and --repeats must be at least 1")
    kinds = args.only or list(MODEL_KINDS)
    out = Path(args.output)
    # the files each model writes, checked before any training (which takes up to an
    # hour): an -o that is a file failed only at the end, and earlier models were replaced
    # without a word
    from vocalmix.core.audio import check_outputs

    check_outputs([out / f"{k}_model.{ext}" for k in kinds for ext in ("npz", "json")],
                  force=args.force)
    if "level" in kinds:
        _model, meta = train_level_model(args.data, out, args.seed, args.augment, progress,
                                         not args.no_cache, not args.no_cv, max(1, args.jobs),
                                         args.repeats)
        print(f"level model: trained on {meta['n_songs']} song(s), {meta['n_examples']} "
              f"examples; wrote {out / 'level_model.npz'} and {out / 'level_model.json'}")
        cv = meta.get("cross_validated")
        if cv:
            s = cv["summary"]
            print(f"  {cv['protocol']}, {cv['n_songs']} songs: vocal-to-mix (while singing) "
                  f"MAE model {s['model']['vocal_to_mix_lu']['mae']:.2f} LU, -3 LU rule "
                  f"{s['rule']['vocal_to_mix_lu']['mae']:.2f} LU, constant "
                  f"{s['constant']['vocal_to_mix_lu']['mae']:.2f} LU")
    if "eq" in kinds:
        from vocalmix.training.eq import train_eq

        _m, meta = train_eq(args.data, out, seed=args.seed, progress=progress)
        cv = meta["cross_validated"]
        print(f"corrective-EQ model: {meta['n_excerpts']} finished vocal excerpts of "
              f"{meta['n_songs']} songs by {meta['n_artists']} artists; wrote "
              f"{out / 'eq_model.npz'} and {out / 'eq_model.json'}")
        print(f"  {cv['protocol']}: {100 * cv['fraction_removed']:.1f}% of the damage "
              f"removed, {cv['clean_lsd_added_db']:.2f} dB added to un-EQ'd vocals "
              f"(gate: P(no EQ) < {cv['gate_p_clean']:g}, curve RMS >= "
              f"{cv['gate_min_rms_db']:g} dB)")
    if "dynamics" in kinds:
        from vocalmix.training.dynamics import train_dynamics

        _d, meta = train_dynamics(args.data, out, seed=args.seed, progress=progress)
        print(f"dynamics model: {meta['n_songs']} mixed songs by {meta['n_artists']} "
              f"artists, {meta['n_examples']} examples (ridge alpha {meta['alpha']:g}); "
              f"wrote {out / 'dynamics_model.npz'} and {out / 'dynamics_model.json'}")
    if "reverb" in kinds:
        from vocalmix.training.reverb import train_reverb_model

        train_reverb_model(out, data=args.data, seed=args.seed, progress=progress,
                           use_cache=not args.no_cache)
        print(f"reverb model: wrote {out / 'reverb_model.npz'} and "
              f"{out / 'reverb_model.json'} (impulse responses and dry vocals from the data "
              "root, $VOCALMIX_DATA)")
    return 0


__all__ = ["MODEL_KINDS", "register_cli"]
