"""``vocalmix train``: fit the level model on mixed stems, deterministically.

    vocalmix train --data DIR [DIR...] -o MODELDIR [--seed 0] [--augment 3] [--alpha A]

Training examples teach mixing, not reading:

1. Every song with level information (:mod:`vocalmix.training.data`; karaoke clips are listed and
   skipped) is cut into 6 s excerpts every 3 s in which the vocal sings
   (:func:`vocalmix.estimators.features.vocal_excerpts`; at most :data:`MAX_TRAIN_EXCERPTS` per
   song, evenly spaced: every song weighs the same in the fit anyway).
2. The targets are measured on the excerpt's stems *as mixed*: vocal-to-mix and
   vocal-to-backing (BS.1770-4 integrated loudness) and the mixed vocal's LRA (EBU Tech
   3342).
3. The vocal is then made to look like a raw take, ``--augment`` times with different
   draws (:func:`vocalmix.estimators.features.perturb_vocal`: a random gain of +-12 dB, gain
   riding, upward expansion; the backing gets a random gain of +-6 dB), and the
   level-invariant features are computed on *that*. The LRA head learns
   ``ln((LRA_mixed + 1) / (LRA_input + 1))`` from the perturbed input's LRA.

Every random draw comes from a generator seeded by ``--seed`` and the song's content
hash, so a song gets the same draws whatever other songs are listed, and training twice
gives identical weights. Per-song results (examples, the song-level truth and the
held-out inputs :mod:`vocalmix.training.evaluate` needs) are cached under
``$VOCALMIX_CACHE/features`` (default ``~/.cache/vocalmix``), keyed by the files' content,
the feature version and these settings; ``--no-cache`` recomputes them.

With two songs or more, the written metadata carries the leave-one-song-out results of
:func:`vocalmix.training.evaluate.cross_validate` on the same examples.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalmix.core.errors import DataError
from vocalmix.core.measure import integrated_loudness, loudness_range
from vocalmix.estimators.features import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    PERTURBATION_VERSION,
    features,
    perturb_vocal,
    vocal_excerpts,
)
from vocalmix.estimators.level import (
    EXCERPT_S,
    HOP_S,
    MAX_EXCERPTS,
    TARGETS,
    LevelModel,
    excerpt_features,
    fit_level_model,
    lra_log_ratio,
)
from vocalmix.training.data import Song, cache_dir, file_hash, find_songs, load_song, song_key

Progress = Callable[[str], None]
MAX_TRAIN_EXCERPTS = 32
DEFAULT_AUGMENT = 3
DEFAULT_DRAWS = 3  # perturbed versions of each whole song, for held-out evaluation
BASELINE_V2M_LU = -3.0
CACHE_TAG = "level-r1"  # bump when what a record holds changes


def _quiet(_msg: str) -> None:
    pass


def human_truth(vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The human mix's figures, measured on stems as mixed (LU): ``vocal_to_mix_lu``
    (I(vocal) - I(vocal + backing)), ``vocal_to_backing_lu`` (I(vocal) - I(backing)),
    ``vocal_lra_lu`` (LRA of the vocal)."""
    iv = integrated_loudness(vocal, sample_rate)
    ib = integrated_loudness(backing, sample_rate)
    im = integrated_loudness(vocal + backing, sample_rate)
    return {"vocal_to_mix_lu": float(iv - im), "vocal_to_backing_lu": float(iv - ib),
            "vocal_lra_lu": float(loudness_range(vocal, sample_rate))}


@dataclass(frozen=True)
class SongRecord:
    """Everything training and evaluation need from one song (cached on disk).

    Attributes:
        truth: song-level human figures (:func:`human_truth` on the whole stems).
        x, y: training examples: feature rows and targets
            (:data:`~vocalmix.estimators.level.TARGETS`).
        test_x: feature rows of the held-out input, one block per draw; ``test_draw``
            gives each row's draw.
        test_lra_in: LRA of each draw's whole perturbed vocal, LU.
        baseline_v2b: vocal-to-backing (LU) of the stems with the vocal scaled to the
            baseline's -3 LU vocal-to-mix (exact, on the song's own signals).
        duration_s: song length, s.
    """

    truth: dict[str, float]
    x: np.ndarray
    y: np.ndarray
    test_x: np.ndarray
    test_draw: np.ndarray
    test_lra_in: np.ndarray
    baseline_v2b: float
    duration_s: float

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, truth=np.array([self.truth[k] for k in _TRUTH_KEYS]), x=self.x, y=self.y,
                 test_x=self.test_x, test_draw=self.test_draw, test_lra_in=self.test_lra_in,
                 baseline_v2b=np.array(self.baseline_v2b), duration_s=np.array(self.duration_s))
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> SongRecord:
        with np.load(path, allow_pickle=False) as d:
            return SongRecord(dict(zip(_TRUTH_KEYS, (float(v) for v in d["truth"]), strict=True)),
                              d["x"], d["y"], d["test_x"], d["test_draw"], d["test_lra_in"],
                              float(d["baseline_v2b"]), float(d["duration_s"]))


_TRUTH_KEYS = ("vocal_to_mix_lu", "vocal_to_backing_lu", "vocal_lra_lu")


def _baseline_v2b(vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> float:
    from vocalmix.core.errors import TargetUnreachableError
    from vocalmix.core.resolve import resolve_vocal_gain

    try:
        return float(resolve_vocal_gain(vocal, backing, sample_rate, BASELINE_V2M_LU)
                     .vocal_to_backing_lu)
    except TargetUnreachableError:
        from vocalmix.estimators.level import v2m_to_v2b

        return v2m_to_v2b(BASELINE_V2M_LU)


def song_record(song: Song, seed: int = 0, augment: int = DEFAULT_AUGMENT,
                draws: int = DEFAULT_DRAWS, use_cache: bool = True) -> SongRecord:
    """Examples, truth and held-out inputs of one song (see the module doc)."""
    key = song_key(song, f"{CACHE_TAG}-f{FEATURE_VERSION}-p{PERTURBATION_VERSION}-"
                         f"e{EXCERPT_S}-{HOP_S}-"
                         f"m{MAX_TRAIN_EXCERPTS}-{MAX_EXCERPTS}-a{augment}-d{draws}-s{seed}")
    cpath = cache_dir() / "features" / f"{key}.npz"
    if use_cache and cpath.exists():
        try:
            return SongRecord.load(cpath)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    v, b, sr = load_song(song)
    truth = human_truth(v, b, sr)
    if not np.isfinite(truth["vocal_to_backing_lu"]) or not np.isfinite(
            truth["vocal_to_mix_lu"]):
        raise DataError(f"{song.song_id}: the vocal or backing stem is silent; no balance "
                        "to learn (remove the song or fix its files)")
    rng = np.random.default_rng([seed, int(key[:12], 16)])
    xs, ys = [], []
    for w in vocal_excerpts(v, sr, EXCERPT_S, HOP_S, MAX_TRAIN_EXCERPTS):
        ve, be = v[w], b[w]
        t = human_truth(ve, be, sr)
        if not (np.isfinite(t["vocal_to_mix_lu"]) and np.isfinite(t["vocal_to_backing_lu"])):
            continue  # a silent excerpt teaches nothing about balance
        for _ in range(augment):
            raw = perturb_vocal(ve, sr, rng)
            bg = np.float32(10.0 ** (rng.uniform(-6.0, 6.0) / 20.0))
            f = features(raw, be * bg, sr)
            lra_in = f[FEATURE_NAMES.index("v_lra_lu")]
            xs.append(f)
            ys.append([t["vocal_to_mix_lu"], t["vocal_to_backing_lu"],
                       lra_log_ratio(t["vocal_lra_lu"], lra_in)])
    if not xs:
        raise DataError(f"{song.song_id}: no excerpt with an audible vocal")
    tx, td, tl = [], [], []
    for d in range(draws):
        raw = perturb_vocal(v, sr, rng)
        xd = excerpt_features(raw, b, sr)
        tx.append(xd)
        td.append(np.full(len(xd), d))
        tl.append(loudness_range(raw, sr))
    rec = SongRecord(truth, np.array(xs), np.array(ys), np.concatenate(tx), np.concatenate(td),
                     np.array(tl), _baseline_v2b(v, b, sr), v.shape[0] / sr)
    if use_cache:
        try:
            rec.save(cpath)
        except OSError:
            pass
    return rec


@dataclass(frozen=True)
class Examples:
    """Training examples of several songs.

    ``x`` ``(n, len(FEATURE_NAMES))``, ``y`` ``(n, len(TARGETS))``, ``song`` the index
    into ``songs`` of each example (splits group by it), ``records`` per song.
    """

    x: np.ndarray
    y: np.ndarray
    song: np.ndarray
    songs: list[Song]
    records: list[SongRecord]


def _record_job(args: tuple) -> SongRecord:
    return song_record(*args)


def build_examples(songs: list[Song], seed: int = 0, augment: int = DEFAULT_AUGMENT,
                   progress: Progress | None = None, use_cache: bool = True,
                   draws: int = DEFAULT_DRAWS, jobs: int = 1) -> Examples:
    """Records and examples of all ``songs`` (those with level information).

    ``jobs`` > 1 computes songs in that many worker processes; the result is identical
    (every song's random draws are seeded by its content, not by its turn).
    """
    progress = progress or _quiet
    t0 = time.perf_counter()
    recs: list[SongRecord | None] = [None] * len(songs)

    def done(i: int, k: int) -> None:
        r = recs[i]
        assert r is not None
        el = time.perf_counter() - t0
        eta = el / k * (len(songs) - k)
        progress(f"[{k}/{len(songs)}] {songs[i].song_id}: {len(r.x)} examples "
                 f"({r.duration_s:.0f} s of audio); {el:.0f} s elapsed, ~{eta:.0f} s to go")

    if jobs > 1 and len(songs) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futs = {pool.submit(_record_job, (s, seed, augment, draws, use_cache)): i
                    for i, s in enumerate(songs)}
            for k, f in enumerate(as_completed(futs), start=1):
                recs[futs[f]] = f.result()
                done(futs[f], k)
    else:
        for i, s in enumerate(songs):
            recs[i] = song_record(s, seed, augment, draws, use_cache)
            done(i, i + 1)
    records = [r for r in recs if r is not None]
    x = np.concatenate([r.x for r in records])
    y = np.concatenate([r.y for r in records])
    g = np.concatenate([np.full(len(r.x), i) for i, r in enumerate(records)])
    return Examples(x, y, g, list(songs), records)


def level_songs(folders: list[str], progress: Progress | None = None) -> list[Song]:
    """Songs under ``folders`` that carry level information (karaoke clips skipped)."""
    progress = progress or _quiet
    songs = find_songs(folders, progress)
    usable = [s for s in songs if s.has_level_info]
    skipped = len(songs) - len(usable)
    if skipped:
        progress(f"skipping {skipped} clip(s) without level information (karaoke: both "
                 "channels were normalised, so their balance is not a mixing choice)")
    if not usable:
        raise DataError(f"no songs with vocal and backing stems under {', '.join(folders)}: "
                        "expected MUSDB18-HQ folders (vocals.* plus accompaniment.* or other "
                        "stems), MUSDB18 .stem.mp4 files or a manifest.csv")
    progress(f"{len(usable)} song(s) with level information")
    return usable


def training_metadata(ex: Examples, model: LevelModel, choice: dict, seed: int, augment: int,
                      cv: dict | None) -> dict:
    """The ``level_model.json`` document."""
    from vocalmix._version import __version__
    from vocalmix.estimators.level import HEAD_FEATURES

    return {
        "model": "ridge regression per target on standardised level-invariant features, "
                 "songs weighted equally",
        "vocalmix_version": __version__,
        "targets": list(TARGETS),
        "head_features": {t: list(f) for t, f in HEAD_FEATURES.items()},
        "alpha": choice,
        "feature_version": FEATURE_VERSION,
        "perturbation_version": PERTURBATION_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "date": dt.date.today().isoformat(),
        "seed": seed, "augment": augment,
        "excerpt_s": EXCERPT_S, "hop_s": HOP_S, "max_train_excerpts": MAX_TRAIN_EXCERPTS,
        "n_songs": len(ex.songs), "n_examples": int(len(ex.x)),
        "training_data": [
            {"song": s.song_id, "source": s.source,
             "files": [{"name": p.name, "sha256": file_hash(p)} for p in s.files()],
             "human": {k: round(v, 4) for k, v in r.truth.items()}}
            for s, r in zip(ex.songs, ex.records, strict=True)],
        "cross_validated": cv,
    }


def train(folders: list[str], out: str | Path, seed: int = 0, augment: int = DEFAULT_AUGMENT,
          alpha: float | None = None, progress: Progress | None = None, use_cache: bool = True,
          cross_validate: bool = True, jobs: int = 1) -> tuple[LevelModel, dict]:
    """Fit the level model on every song with level information under ``folders``, write
    ``level_model.npz`` and ``level_model.json`` into ``out``; returns both."""
    progress = progress or _quiet
    songs = level_songs(folders, progress)
    ex = build_examples(songs, seed, augment, progress, use_cache, DEFAULT_DRAWS, jobs)
    model, choice = fit_level_model(ex.x, ex.y, ex.song, alpha, progress)
    cv = None
    if cross_validate and len(songs) >= 2:
        from vocalmix.training.evaluate import cross_validate as loso

        progress("leave-one-song-out cross-validation for the metadata")
        res = loso(ex, seed=seed, alpha=alpha, progress=progress)
        cv = {"protocol": "leave-one-song-out", "n_songs": res["n_songs"],
              "summary": res["summary"]}
    meta = training_metadata(ex, model, choice, seed, augment, cv)
    model.save(out, meta, check_x=ex.x[:5])
    return model, meta


MODEL_KINDS = ("level", "eq", "reverb")


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix train``."""
    p = sub.add_parser("train", help="fit the learned models (level, EQ, reverb)",
                       description="Fit the learned models: the level and dynamics model on "
                       "professionally mixed vocal and backing stems (MUSDB18-HQ folders, "
                       ".stem.mp4 with ffmpeg, or a manifest.csv), the corrective-EQ model "
                       "on any vocals (random EQ, exact inverse as the label), and the "
                       "reverb model. Deterministic for a given --seed.")
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
    p.add_argument("--alpha", type=float, default=None,
                   help="level model: fixed ridge penalty in songs (default: by CV with 8+ "
                   "songs, else 1)")
    p.add_argument("--no-cv", action="store_true",
                   help="level model: skip the leave-one-song-out metrics in the metadata")
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

    if args.augment < 1:
        raise DataError("--augment must be at least 1")
    kinds = args.only or list(MODEL_KINDS)
    out = Path(args.output)
    if "level" in kinds:
        _model, meta = train(args.data, out, args.seed, args.augment, args.alpha,
                             progress, not args.no_cache, not args.no_cv, max(1, args.jobs))
        print(f"level model: trained on {meta['n_songs']} song(s), {meta['n_examples']} "
              f"examples; wrote {out / 'level_model.npz'} and {out / 'level_model.json'}")
        cv = meta.get("cross_validated")
        if cv:
            s = cv["summary"]
            print(f"  leave-one-song-out vocal-to-mix MAE over {cv['n_songs']} songs: model "
                  f"{s['model']['vocal_to_mix_lu']['mae']:.2f} LU, baseline "
                  f"{s['baseline']['vocal_to_mix_lu']['mae']:.2f} LU, constant "
                  f"{s['constant']['vocal_to_mix_lu']['mae']:.2f} LU")
    if "eq" in kinds:
        from vocalmix.estimators.eq import train_eq

        _m, meta = train_eq(args.data, out, seed=args.seed, progress=progress)
        cv = meta["cross_validated"]
        print(f"corrective-EQ model: {meta['n_excerpts']} vocal excerpts of "
              f"{meta['n_singers']} singers; wrote {out / 'eq_model.npz'} and "
              f"{out / 'eq_model.json'}")
        print(f"  {cv['protocol']}: {100 * cv['fraction_removed']:.1f}% of the damage "
              f"removed, {cv['clean_lsd_added_db']:.2f} dB added to un-EQ'd vocals "
              f"(gate: P(no EQ) < {cv['gate_p_clean']:g}, curve RMS >= "
              f"{cv['gate_min_rms_db']:g} dB)")
    if "reverb" in kinds:
        from vocalmix.estimators.reverb import train_reverb_model

        train_reverb_model(out, data=args.data, seed=args.seed, progress=progress,
                           use_cache=not args.no_cache)
        print(f"reverb model: wrote {out / 'reverb_model.npz'} and "
              f"{out / 'reverb_model.json'} (impulse responses and dry vocals from the data "
              "root, $VOCALMIX_DATA)")
    return 0


__all__ = [
    "Examples",
    "SongRecord",
    "build_examples",
    "human_truth",
    "level_songs",
    "register_cli",
    "song_record",
    "train",
]
