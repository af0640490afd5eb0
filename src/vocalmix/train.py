"""``vocalmix train``: fit the level model on mixed stems, deterministically.

    vocalmix train --data DIR [DIR...] -o MODELDIR [--seed 0] [--alpha 10]

Examples: every song with level information is cut into 6 s excerpts (3 s hop); each
excerpt is presented ``--augment`` times with a different random vocal gain and gain
riding (:func:`vocalmix.features.perturb_vocal`), features are computed *after* the
perturbation, and the targets are measured on the unperturbed stems: the human mix's
vocal-to-backing ratio (BS.1770-4) and the mixed vocal's LRA (EBU Tech 3342). Features
are cached on disk keyed by file content, feature version and these settings.
Karaoke clips (no level information) are listed and skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import Song, cache_dir, file_hash, find_songs, load_song, song_key
from .errors import DataError
from .features import FEATURE_VERSION, excerpts, features, perturb_vocal
from .measure import integrated_loudness, loudness_range
from .models import LevelModel, fit_ridge

EXCERPT_S, HOP_S = 6.0, 3.0


@dataclass(frozen=True)
class Examples:
    """Training examples: features ``x``, targets ``y`` (v2b, LRA) and the song of each."""

    x: np.ndarray
    y: np.ndarray
    song: np.ndarray  # song index per example


def human_truth(vocal: np.ndarray, backing: np.ndarray, sr: int) -> dict[str, float]:
    """The human mix's figures, measured on the stems as mixed."""
    iv, ib = integrated_loudness(vocal, sr), integrated_loudness(backing, sr)
    im = integrated_loudness(vocal + backing, sr)
    return {"vocal_to_backing_lu": iv - ib, "vocal_to_mix_lu": iv - im,
            "vocal_lra_lu": loudness_range(vocal, sr)}


def song_examples(song: Song, seed: int, augment: int, use_cache: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of every excerpt of one song (cached)."""
    key = song_key(song, f"f{FEATURE_VERSION}-e{EXCERPT_S}-{HOP_S}-a{augment}-s{seed}")
    cpath = cache_dir() / "features" / f"{key}.npz"
    if use_cache and cpath.exists():
        d = np.load(cpath)
        return d["x"], d["y"]
    v, b, sr = load_song(song)
    rng = np.random.default_rng([seed, int(key[:8], 16)])
    xs, ys = [], []
    for sl in excerpts(v.shape[0], sr, EXCERPT_S, HOP_S):
        ve, be = v[sl], b[sl]
        t = human_truth(ve, be, sr)
        if not (np.isfinite(t["vocal_to_backing_lu"]) and t["vocal_lra_lu"] > 0):
            continue  # a silent excerpt teaches nothing about balance
        for _ in range(augment):
            xs.append(features(perturb_vocal(ve, sr, rng), be, sr))
            ys.append([t["vocal_to_backing_lu"], t["vocal_lra_lu"]])
    x = np.array(xs).reshape(-1, len(xs[0]) if xs else 13)
    y = np.array(ys).reshape(-1, 2)
    if use_cache:
        cpath.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cpath, x=x, y=y)
    return x, y


def build_examples(songs: list[Song], seed: int = 0, augment: int = 3, progress=None,
                   use_cache: bool = True) -> Examples:
    """Examples of all songs (only those with level information)."""
    xs, ys, ss = [], [], []
    for i, s in enumerate(songs):
        if progress:
            progress(f"[{i + 1}/{len(songs)}] features of {s.song_id}")
        x, y = song_examples(s, seed, augment, use_cache)
        xs.append(x)
        ys.append(y)
        ss.append(np.full(len(x), i))
    if not xs or sum(len(x) for x in xs) == 0:
        raise DataError("no usable training excerpts (songs with level information and an "
                        "audible vocal are needed)")
    return Examples(np.concatenate(xs), np.concatenate(ys), np.concatenate(ss))


def level_songs(folders: list[str], progress=None) -> list[Song]:
    """Songs under ``folders`` that carry level information (karaoke clips are skipped)."""
    songs = find_songs(folders)
    usable = [s for s in songs if s.has_level_info]
    skipped = len(songs) - len(usable)
    if progress and skipped:
        progress(f"skipping {skipped} clip(s) without level information (karaoke)")
    if not usable:
        raise DataError(f"no songs with vocal and backing stems under {', '.join(folders)}")
    return usable


def train(folders: list[str], out: Path, seed: int = 0, alpha: float = 10.0, augment: int = 3,
          progress=None, use_cache: bool = True) -> tuple[LevelModel, dict]:
    """Fit and save the level model; returns it and its metadata."""
    songs = level_songs(folders, progress)
    ex = build_examples(songs, seed, augment, progress, use_cache)
    model = fit_ridge(ex.x, ex.y, alpha)
    pred = model.predict(ex.x)
    meta = {
        "model": "ridge regression on standardised level-invariant features",
        "targets": ["vocal_to_backing_lu", "vocal_lra_lu"],
        "feature_version": FEATURE_VERSION,
        "feature_names": list(model.feature_names),
        "date": dt.date.today().isoformat(),
        "seed": seed, "alpha": alpha, "augment": augment,
        "excerpt_s": EXCERPT_S, "hop_s": HOP_S,
        "n_songs": len(songs), "n_examples": int(len(ex.x)),
        "training_data": [{"song": s.song_id, "files": [
            {"name": p.name, "sha256": file_hash(p)} for p in s.files()]} for s in songs],
        "training_predictions_first5": pred[:5].round(6).tolist(),
        "cross_validated": None,
    }
    if len(songs) >= 2:
        from .evaluate import evaluate

        res = evaluate(folders, seed, alpha, augment, progress, use_cache)
        meta["cross_validated"] = {"protocol": "leave-one-song-out", "n_songs": res["n_songs"],
                                   "summary": res["summary"]}
    model.save(out, meta)
    return model, meta


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix train``."""
    p = sub.add_parser("train", help="fit the level model on mixed stems")
    p.add_argument("--data", nargs="+", required=True, help="folders of songs (stems)")
    p.add_argument("-o", "--output", required=True, help="folder for the weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=10.0, help="ridge regularisation")
    p.add_argument("--augment", type=int, default=3, help="perturbed copies per excerpt")
    p.add_argument("--no-cache", action="store_true", help="recompute features")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    model, meta = train(args.data, Path(args.output), args.seed, args.alpha, args.augment,
                        progress, not args.no_cache)
    print(f"trained on {meta['n_songs']} songs, {meta['n_examples']} examples; wrote "
          f"{Path(args.output) / 'level_model.npz'} and level_model.json")
    return 0
