"""Training and evaluation of the level model (:mod:`vocalmix.estimators.level`).

How it is fitted
    One ridge regression per target (:func:`fit_head`) on a few features chosen per head
    (:data:`HEAD_FEATURES`). Features are standardised (weighted mean and sd of the
    training examples); every song weighs the same in total however many excerpts it has
    (:func:`song_weights`); the ridge penalty is ``alpha * ||beta||^2`` against a loss
    summed over songs, so ``alpha = 1`` is a prior worth one song of evidence along a
    unit-variance feature direction and shrinks the slopes toward zero. The intercept is
    shrunk toward the baseline's rule (:data:`PRIOR`: -3 LU vocal-to-mix, keep the
    input's LRA) by a prior worth :data:`PRIOR_SONGS` song, so with a handful of songs the
    model stays near the rule and with many it follows their mean (the constant
    predictor). With at least :data:`MIN_SONGS_FOR_CV` training songs, ``alpha`` is
    chosen per head by grouped (by song) cross-validation (:func:`choose_alpha`); with
    fewer it is :data:`DEFAULT_ALPHA`.

Training examples teach mixing, not reading (:func:`song_record`)
    1. Every song with level information (:mod:`vocalmix.training.data`; karaoke clips
       are listed and skipped) is cut into 6 s excerpts every 3 s in which the vocal
       sings (:func:`vocalmix.estimators.features.vocal_excerpts`; at most
       :data:`MAX_TRAIN_EXCERPTS` per song, evenly spaced: every song weighs the same in
       the fit anyway).
    2. The targets are measured on the excerpt's stems *as mixed*: vocal-to-mix and
       vocal-to-backing (BS.1770-4 integrated loudness) and the mixed vocal's LRA (EBU
       Tech 3342).
    3. The vocal is then made to look like a raw take, ``augment`` times with different
       draws (:func:`vocalmix.estimators.features.perturb_vocal`: a random gain of
       +-12 dB, gain riding, upward expansion; the backing gets a random gain of +-6 dB),
       and the level-invariant features are computed on *that*. The LRA head learns
       ``ln((LRA_mixed + 1) / (LRA_input + 1))`` from the perturbed input's LRA.

    Every random draw comes from a generator seeded by ``seed`` and the song's content
    hash, so a song gets the same draws whatever other songs are listed, and training
    twice gives identical weights. Per-song results (examples, the song-level truth and
    the held-out inputs the evaluation needs) are cached under
    ``$VOCALMIX_CACHE/features`` (default ``~/.cache/vocalmix``), keyed by the files'
    content, the feature version and these settings.

Evaluation: leave-one-song-out (:func:`leave_one_song_out`, :func:`evaluate_level_model`)
    Every song with level information is held out in turn; the model is trained on the
    *other* songs' examples, and three methods predict the held-out song's targets from
    its whole stems, the vocal first made to look like a raw take (several seeded draws
    whose predictions are averaged):

    * **baseline** (:mod:`vocalmix.estimators.baseline`): vocal-to-mix -3 LU; its
      vocal-to-backing is what -3 LU vocal-to-mix gives on the song's own stems (the
      resolver's exact BS.1770-4 computation, not the power-addition formula of
      :func:`v2m_to_v2b`); vocal LRA = the input's LRA capped at 14 LU, because the
      baseline compresses to 14 LU and never expands;
    * **constant**: the training songs' mean of each figure (song-level truth);
    * **model**: the level model, exactly as ``vocalmix mix --method model`` runs it, on
      up to 16 excerpts of the held-out input.

    The human truth is measured on the stems as mixed (:func:`human_truth`). With two
    songs or more, :func:`train_level_model` writes these results into the metadata,
    where :func:`vocalmix.estimators.registry.default_method` reads them. The report
    (:func:`vocalmix.training.reports.write_level_report`) and its figures are in
    ``docs/evaluation/report.md``.

Converting between the two balances
    For parts that do not overlap in time or frequency in any particular way
    (uncorrelated, both always present) a vocal at ``v2b`` LU against the backing sits at
    ``v2m = v2b - 10 log10(10^(v2b/10) + 1)`` LU against the mix (power addition);
    :func:`v2b_to_v2m` and :func:`v2m_to_v2b` implement it. Real songs differ from it
    (BS.1770 gating and vocal pauses), which is why the model predicts vocal-to-mix
    directly and the evaluation converts on the song's own stems.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalmix.core.errors import DataError, ModelError
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
    RidgeHead,
    excerpt_features,
    lra_from_ratio,
    lra_log_ratio,
    predict_from_features,
)
from vocalmix.training.data import Song, cache_dir, file_hash, find_songs, load_song, song_key

Progress = Callable[[str], None]

# Feature sets per head, chosen before looking at any result from the published evidence
# that the lead-to-accompaniment ratio follows genre and arrangement (brightness,
# density and distortion of the backing; JASA Express Letters 3, 043201, 2023) and from
# what a compressor decision depends on (how uneven the take is, how dynamic the backing).
LEVEL_FEATURES: tuple[str, ...] = (
    "b_centroid_oct", "b_high_db", "b_flatness_db", "b_crest_db", "b_onsets_per_s",
    "v_activity", "vb_shape_dist_db",
)
LRA_FEATURES: tuple[str, ...] = (
    "v_lra_lu", "v_mom_spread_lu", "v_activity", "b_lra_lu", "b_mom_spread_lu",
    "b_tempo_oct",
)
HEAD_FEATURES: dict[str, tuple[str, ...]] = {
    "vocal_to_mix_lu": LEVEL_FEATURES,
    "vocal_to_backing_lu": LEVEL_FEATURES,
    "vocal_lra_log_ratio": LRA_FEATURES,
}
DEFAULT_ALPHA = 1.0
# The intercepts are shrunk toward the baseline's rules, a prior worth PRIOR_SONGS songs:
# vocal-to-mix -3 LU, the vocal-to-backing that gives by power addition, and an LRA log
# ratio of 0 (keep the input's loudness range, as the baseline does below 14 LU). With a
# handful of songs the model stays near the rule; with a hundred the data decide.
PRIOR_SONGS = 1.0
PRIOR: dict[str, float] = {
    "vocal_to_mix_lu": -3.0,
    "vocal_to_backing_lu": float(-3.0 - 10.0 * np.log10(1.0 - 10.0 ** (-0.3))),
    "vocal_lra_log_ratio": 0.0,
}
ALPHA_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
MIN_SONGS_FOR_CV = 8


def v2b_to_v2m(v2b_lu: float) -> float:
    """Vocal-to-mix (LU) of a vocal at ``v2b_lu`` against an uncorrelated backing:
    ``v2b - 10 log10(10^(v2b/10) + 1)`` (power addition; see the module doc)."""
    return float(v2b_lu - 10.0 * np.log10(10.0 ** (v2b_lu / 10.0) + 1.0))


def v2m_to_v2b(v2m_lu: float) -> float:
    """Inverse of :func:`v2b_to_v2m`, for ``v2m_lu < 0``: ``10 log10(r / (1 - r))`` with
    ``r = 10^(v2m/10)``."""
    if v2m_lu >= 0:
        raise ValueError("a vocal-to-mix ratio must be negative")
    r = 10.0 ** (v2m_lu / 10.0)
    return float(10.0 * np.log10(r / (1.0 - r)))


# --- fitting ---------------------------------------------------------------------------


def fit_head(target: str, x: np.ndarray, y: np.ndarray, weights: np.ndarray,
             alpha: float, feature_subset: tuple[str, ...] | None = None,
             prior_songs: float = PRIOR_SONGS) -> RidgeHead:
    """Weighted ridge regression (closed form) of ``y`` on full feature rows ``x``.

    Minimises ``sum w (y - b - z beta)^2 + alpha |beta|^2 + prior_songs (b - b0)^2`` with
    ``z`` the standardised features and ``b0`` the baseline rule's value of the target
    (:data:`PRIOR`). ``weights`` should sum to the number of songs
    (:func:`song_weights`), so ``alpha`` and ``prior_songs`` are in units of songs.
    """
    feats = feature_subset or HEAD_FEATURES[target]
    cols = np.array([FEATURE_NAMES.index(f) for f in feats], dtype=int)
    xs = np.asarray(x, dtype=np.float64)[:, cols]
    w = np.asarray(weights, dtype=np.float64)
    wn = w / w.sum()
    mean = wn @ xs
    scale = np.sqrt(wn @ (xs - mean) ** 2)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (xs - mean) / scale
    ym = float(wn @ y)
    # z has weighted mean 0, so the intercept and the slopes separate
    intercept = (w.sum() * ym + prior_songs * PRIOR[target]) / (w.sum() + prior_songs)
    a = (z * w[:, None]).T @ z + alpha * np.eye(len(cols))
    coef = np.linalg.solve(a, (z * w[:, None]).T @ (y - ym))
    return RidgeHead(target, tuple(feats), mean, scale, coef, float(intercept), float(alpha),
                     xs.min(axis=0), xs.max(axis=0))


def song_weights(groups: np.ndarray) -> np.ndarray:
    """Example weights that give every song (group) a total weight of 1."""
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv]


def choose_alpha(target: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                 grid: tuple[float, ...] = ALPHA_GRID, n_folds: int = 5) -> tuple[float, dict]:
    """Ridge ``alpha`` by grouped cross-validation: the song-level mean absolute error of
    each song's mean prediction against its mean target, folds by song."""
    from vocalmix.training.data import group_folds

    scores = {}
    for alpha in grid:
        errs = []
        for tr, te in group_folds(groups, n_folds):
            h = fit_head(target, x[tr], y[tr], song_weights(groups[tr]), alpha)
            p = h.predict(x[te])
            for g in np.unique(groups[te]):
                m = groups[te] == g
                errs.append(abs(float(p[m].mean() - y[te][m].mean())))
        scores[alpha] = float(np.mean(errs))
    best = min(grid, key=lambda a: (scores[a], -a))  # ties: the stronger prior
    return best, scores


def fit_level_model(x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                    alpha: float | None = None, progress: Callable[[str], None] | None = None
                    ) -> tuple[LevelModel, dict]:
    """Fit the three heads on examples ``x`` (features), ``y`` (``len(TARGETS)`` columns)
    grouped by song ``groups``.

    ``alpha``: a fixed ridge penalty for every head; ``None`` chooses it per head by
    grouped cross-validation when there are at least :data:`MIN_SONGS_FOR_CV` songs and
    uses :data:`DEFAULT_ALPHA` otherwise. Returns the model and a report of the choice.
    """
    n_songs = len(np.unique(groups))
    if n_songs == 0:
        raise ModelError("no training examples")
    w = song_weights(groups)
    heads, report = {}, {}
    for j, t in enumerate(TARGETS):
        if alpha is not None:
            a, how = float(alpha), "given"
        elif n_songs >= MIN_SONGS_FOR_CV:
            a, scores = choose_alpha(t, x, y[:, j], groups)
            how = {"cv_mae": {str(k): round(v, 4) for k, v in scores.items()}}
            if progress:
                progress(f"{t}: alpha {a:g} by {min(5, n_songs)}-fold CV over songs")
        else:
            a, how = DEFAULT_ALPHA, f"default (fewer than {MIN_SONGS_FOR_CV} songs for CV)"
        heads[t] = fit_head(t, x, y[:, j], w, a)
        report[t] = {"alpha": a, "chosen": how}
    return LevelModel(heads), report


# --- training examples ------------------------------------------------------------------

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


def train_level_model(folders: list[str], out: str | Path, seed: int = 0,
                      augment: int = DEFAULT_AUGMENT, alpha: float | None = None,
                      progress: Progress | None = None, use_cache: bool = True,
                      cross_validate: bool = True, jobs: int = 1) -> tuple[LevelModel, dict]:
    """Fit the level model on every song with level information under ``folders``, write
    ``level_model.npz`` and ``level_model.json`` into ``out``; returns both."""
    progress = progress or _quiet
    songs = level_songs(folders, progress)
    ex = build_examples(songs, seed, augment, progress, use_cache, DEFAULT_DRAWS, jobs)
    model, choice = fit_level_model(ex.x, ex.y, ex.song, alpha, progress)
    cv = None
    if cross_validate and len(songs) >= 2:
        progress("leave-one-song-out cross-validation for the metadata")
        res = leave_one_song_out(ex, seed=seed, alpha=alpha, progress=progress)
        cv = {"protocol": "leave-one-song-out", "n_songs": res["n_songs"],
              "summary": res["summary"]}
    meta = training_metadata(ex, model, choice, seed, augment, cv)
    model.save(out, meta, check_x=ex.x[:5])
    return model, meta


# --- leave-one-song-out evaluation -------------------------------------------------------

METHODS = ("baseline", "constant", "model")
KEYS = ("vocal_to_mix_lu", "vocal_to_backing_lu", "vocal_lra_lu")
LABELS = {"vocal_to_mix_lu": "vocal-to-mix", "vocal_to_backing_lu": "vocal-to-backing",
          "vocal_lra_lu": "vocal LRA"}
BASELINE_LRA_CAP_LU = 14.0




def _model_prediction(model, rec) -> dict[str, float]:
    """The model's song-level figures for a held-out record, averaged over its draws."""
    preds = [predict_from_features(model, rec.test_x[rec.test_draw == d], rec.test_lra_in[d])
             for d in range(len(rec.test_lra_in))]
    return {k: float(np.mean([p[k] for p in preds])) for k in KEYS}


def _baseline_prediction(rec) -> dict[str, float]:
    return {"vocal_to_mix_lu": -3.0, "vocal_to_backing_lu": rec.baseline_v2b,
            "vocal_lra_lu": float(np.mean(np.minimum(rec.test_lra_in, BASELINE_LRA_CAP_LU)))}


def _constant_prediction(train_recs) -> dict[str, float]:
    return {k: float(np.mean([r.truth[k] for r in train_recs])) for k in KEYS}


def _summary(rows: list[dict], methods=METHODS) -> dict:
    out = {}
    for m in methods:
        out[m] = {}
        for k in KEYS:
            e = np.array([r["error"][m][k] for r in rows])
            out[m][k] = {"mae": float(np.mean(np.abs(e))), "sd": float(np.std(np.abs(e))),
                         "bias": float(np.mean(e)), "max": float(np.max(np.abs(e)))}
    return out


def _loso_head(ex: Examples, target: str, subset: tuple[str, ...], alpha: float) -> np.ndarray:
    """Held-out song-level predictions of one head (LRA head: converted to LU)."""
    out = np.zeros(len(ex.records))
    for i, rec in enumerate(ex.records):
        tr = ex.song != i
        col = {"vocal_to_mix_lu": 0, "vocal_to_backing_lu": 1, "vocal_lra_log_ratio": 2}[target]
        h = fit_head(target, ex.x[tr], ex.y[tr, col], song_weights(ex.song[tr]), alpha, subset)
        vals = []
        for d in range(len(rec.test_lra_in)):
            p = float(h.predict(rec.test_x[rec.test_draw == d]).mean())
            vals.append(lra_from_ratio(rec.test_lra_in[d], p)
                        if target == "vocal_lra_log_ratio" else p)
        out[i] = float(np.mean(vals))
    return out


def _sensitivity(ex: Examples) -> dict:
    """How the model's held-out errors move with alpha and with single level features."""
    truth_v2m = np.array([r.truth["vocal_to_mix_lu"] for r in ex.records])
    truth_lra = np.array([r.truth["vocal_lra_lu"] for r in ex.records])
    by_alpha = {}
    for a in ALPHA_GRID:
        pv = _loso_head(ex, "vocal_to_mix_lu", HEAD_FEATURES["vocal_to_mix_lu"], a)
        pl = _loso_head(ex, "vocal_lra_log_ratio", HEAD_FEATURES["vocal_lra_log_ratio"], a)
        by_alpha[str(a)] = {"vocal_to_mix_lu_mae": float(np.mean(np.abs(pv - truth_v2m))),
                            "vocal_lra_lu_mae": float(np.mean(np.abs(pl - truth_lra)))}
    single = {}
    for f in LEVEL_FEATURES:
        pv = _loso_head(ex, "vocal_to_mix_lu", (f,), DEFAULT_ALPHA)
        single[f] = float(np.mean(np.abs(pv - truth_v2m)))
    return {"alpha": by_alpha, "single_level_feature_v2m_mae": single}


def leave_one_song_out(ex: Examples, seed: int = 0, alpha: float | None = None,
                       progress: Progress | None = None, sensitivity: bool = True) -> dict:
    """Leave-one-song-out results on prebuilt examples (a JSON-ready dict)."""
    progress = progress or _quiet
    n = len(ex.records)
    if n < 2:
        raise DataError("leave-one-song-out needs at least 2 songs with level information")
    rows, choices = [], []
    for i, (song, rec) in enumerate(zip(ex.songs, ex.records, strict=True)):
        tr = ex.song != i
        model, choice = fit_level_model(ex.x[tr], ex.y[tr], ex.song[tr], alpha)
        choices.append(choice)
        others = [r for j, r in enumerate(ex.records) if j != i]
        pred = {"baseline": _baseline_prediction(rec), "constant": _constant_prediction(others),
                "model": _model_prediction(model, rec)}
        rows.append({"song": song.song_id, "duration_s": round(rec.duration_s, 2),
                     "human": dict(rec.truth), "predicted": pred,
                     "error": {m: {k: pred[m][k] - rec.truth[k] for k in KEYS}
                               for m in METHODS}})
        progress(f"[{i + 1}/{n}] held out {song.song_id}: human vocal-to-mix "
                 f"{rec.truth['vocal_to_mix_lu']:+.2f} LU, model "
                 f"{pred['model']['vocal_to_mix_lu']:+.2f}, constant "
                 f"{pred['constant']['vocal_to_mix_lu']:+.2f}, baseline -3.00")
    lra_in = ex.x[:, FEATURE_NAMES.index("v_lra_lu")]
    lra_mixed = (lra_in + 1.0) * np.exp(ex.y[:, 2]) - 1.0
    test_in = np.concatenate([r.test_lra_in for r in ex.records])
    test_truth = np.concatenate([np.full(len(r.test_lra_in), r.truth["vocal_lra_lu"])
                                 for r in ex.records])
    res = {
        "protocol": "leave-one-song-out",
        "n_songs": n, "n_examples": int(len(ex.x)), "seed": seed,
        "alpha": alpha if alpha is not None else choices[0],
        "songs": rows,
        "summary": _summary(rows),
        "perturbation": {
            "excerpt_lra_increase_lu_mean": float(np.mean(lra_in - lra_mixed)),
            "excerpt_lra_increase_lu_sd": float(np.std(lra_in - lra_mixed)),
            "song_lra_increase_lu_mean": float(np.mean(test_in - test_truth)),
        },
    }
    if sensitivity:
        res["sensitivity"] = _sensitivity(ex)
    return res


def evaluate_level_model(folders: list[str], seed: int = 0, augment: int = DEFAULT_AUGMENT,
                         alpha: float | None = None, progress: Progress | None = None,
                         use_cache: bool = True, draws: int = DEFAULT_DRAWS, jobs: int = 1
                         ) -> dict:
    """Leave-one-song-out results for the songs under ``folders`` (a JSON-ready dict)."""
    progress = progress or _quiet
    songs = level_songs(folders, progress)
    if len(songs) < 2:
        raise DataError(f"leave-one-song-out needs at least 2 songs with level information; "
                        f"found {len(songs)} under {', '.join(map(str, folders))}")
    ex = build_examples(songs, seed, augment, progress, use_cache, draws, jobs)
    res = leave_one_song_out(ex, seed, alpha, progress)
    skipped = sum(not s.has_level_info for s in find_songs(folders))
    res.update({"augment": augment, "draws": draws, "skipped_without_level_info": skipped,
                "data": [{"song": s.song_id, "source": s.source,
                          "files": [p.name for p in s.files()]} for s in songs]})
    return res


__all__ = [
    "DEFAULT_ALPHA",
    "HEAD_FEATURES",
    "KEYS",
    "LEVEL_FEATURES",
    "LRA_FEATURES",
    "METHODS",
    "Examples",
    "SongRecord",
    "build_examples",
    "evaluate_level_model",
    "fit_head",
    "fit_level_model",
    "human_truth",
    "leave_one_song_out",
    "level_songs",
    "song_record",
    "song_weights",
    "train_level_model",
    "v2b_to_v2m",
    "v2m_to_v2b",
]
