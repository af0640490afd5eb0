"""Training and evaluation of the level model (:mod:`vocalmix.estimators.level`).

The data
    Every song with level information (:mod:`vocalmix.training.data`: MUSDB18-HQ folders,
    ``.stem.mp4`` files, manifests; karaoke clips are listed and skipped) **outside
    MUSDB18's test split** (:data:`vocalmix.training.data.MUSDB18_TEST_SONGS`): those are
    never trained or tuned on; :func:`evaluate_level_model` reports them apart, as songs
    no choice was made on. Each song keeps its genre (from a ``tracks.csv`` catalogue,
    ``unknown`` otherwise) and its artist (:func:`vocalmix.training.data.artist_of`).

Training examples teach mixing, not reading (:func:`song_record`)
    1. Every song is cut into 6 s excerpts every 3 s in which the vocal sings
       (:func:`vocalmix.estimators.features.vocal_excerpts`; at most
       :data:`MAX_TRAIN_EXCERPTS` per song, evenly spaced: every song weighs the same).
    2. The targets are measured on the excerpt's stems *as mixed*: the vocal-to-mix ratio
       while the vocal sings (:data:`~vocalmix.estimators.level.LEVEL_MEASURE`) and the
       mixed vocal's LRA (EBU Tech 3342).
    3. The vocal is then made to look like a raw take, ``augment`` times with different
       draws (:func:`vocalmix.estimators.features.perturb_vocal`: a random gain of
       +-12 dB, gain riding, upward expansion; the backing gets a random gain of +-6 dB),
       and the level-invariant features are computed on *that*. The LRA head learns
       ``ln((LRA_mixed + 1) / (LRA_input + 1))`` from the perturbed input's LRA.

    Every random draw comes from a generator seeded by ``seed`` and the song's content
    hash, so a song gets the same draws whatever other songs are listed, and training
    twice gives identical weights. Per-song results (examples, the song-level truth, the
    held-out inputs and the stems' 100 ms K-weighted block sums the evaluation places
    every method's target with) are cached under ``$VOCALMIX_CACHE/features`` (default
    ``~/.cache/vocalmix``), keyed by the files' content, the feature version and these
    settings.

How it is fitted (:func:`fit_head`, :func:`select_head`, :func:`fit_level_model`)
    A linear model per head on standardised features (weighted mean and sd; every song
    weighs 1 in total however many excerpts it has; features clipped to their training
    range at prediction). The vocal-to-mix head minimises the **Huber loss** (quadratic
    within :data:`HUBER_DELTA_LU` of the fit, linear beyond; iteratively reweighted least
    squares): the truths have a long tail of very quiet vocals (down to -16 LU) that a
    squared loss would let pull every prediction, while the goal is a small typical
    error. Penalties: ``alpha * ||beta||^2`` on the slopes and, for the genre head,
    ``genre_alpha * ||gamma||^2`` on the genre offsets (both in songs: ``alpha = 1`` is
    a prior worth one song of evidence along a unit-variance direction, so a genre seen
    in 3 songs with ``genre_alpha = 3`` gets half its residual mean as offset); the
    intercept is shrunk toward the baseline's rule (:data:`PRIOR`) by a prior worth
    :data:`PRIOR_SONGS` song. The feature set (:data:`FEATURE_SETS`: none, i.e. a robust
    constant, or with the genre a shrunk level per genre; the backing's features; the
    backing's and the vocal's) and the penalties are chosen per head, the genre head on
    its own, by cross-validation *inside the training songs*, folds grouped by artist
    (:func:`select_head`); with fewer than :data:`MIN_SONGS_FOR_CV` songs they are the
    defaults (the backing's features, :data:`DEFAULT_ALPHA`). The LRA head uses the
    squared loss and a fixed feature set.

Evaluation (:func:`cross_validate`, :func:`evaluate_level_model`)
    Folds grouped by **artist** (:func:`vocalmix.training.data.artist_folds`: no artist
    is on both sides), ``n_folds`` of them, repeated with ``repeats`` fold seeds. In each
    fold the whole procedure above (selection included) runs on the training songs only,
    and each method's target for every held-out song is **placed** on the song's own
    stems the way the resolver would (:func:`place`: the exact gain that reaches the
    target on the stems' block sums), then compared with the human mix in the singing
    measure (the headline), in the integrated measure and as vocal-to-backing:

    * **rule**: the baseline's -3 LU vocal-to-mix, integrated measure (``--method
      baseline``, unchanged);
    * **constant**: the training songs' mean of the singing-measure truth;
    * **median**: their median (a reference for the absolute errors only);
    * **model**: the level model on the held-out song's perturbed input, without genre;
    * **model + genre**: the same with the catalogue genre given (songs of unknown genre
      as ``other``).

    Reported per method: mean and median absolute error, bias, correlation with the
    human mixes, the spread (sd) of the predictions over the spread of the truth, per
    genre errors; each averaged over the repeats with its sd across them. The LRA errors
    are those of the LRA head on the perturbed input against the mixed vocal's LRA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vocalmix.core.errors import DataError, ModelError, TargetUnreachableError
from vocalmix.core.measure import (
    BlockStats,
    integrated_from_segments,
    integrated_loudness,
    k_weight,
    loudness_range,
    singing_ratio_from_segments,
    vocal_to_mix_lu,
)
from vocalmix.core.params import RULE_VOCAL_TO_MIX_LU
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
    GENRE_TARGETS,
    GENRES,
    HOP_S,
    LEVEL_MEASURE,
    MAX_EXCERPTS,
    OTHER_GENRE,
    TARGETS,
    LevelModel,
    RidgeHead,
    excerpt_features,
    lra_from_ratio,
    lra_log_ratio,
)
from vocalmix.training.data import (
    Song,
    artist_folds,
    cache_dir,
    file_hash,
    find_songs,
    load_song,
    song_key,
)

Progress = Callable[[str], None]

# --- feature sets -------------------------------------------------------------------------

# What the published evidence says the balance follows (genre, arrangement, density,
# brightness, distortion of the backing; JASA Express Letters 3, 043201, 2023) and what
# tells a sung from a spoken vocal: chosen before any result was seen, then one of the
# two sets is picked per head by the grouped cross-validation inside the training songs.
BACKING_FEATURES: tuple[str, ...] = (
    "b_centroid_oct", "b_low_db", "b_mid_db", "b_high_db", "b_air_db",  # brightness, balance
    "b_flatness_db", "b_onsets_per_s", "b_perc_db",  # density, onsets, drums
    "b_crest_db", "b_mom_spread_lu",  # dynamics
    "b_tempo_oct",
)
VOCAL_FEATURES: tuple[str, ...] = (
    "v_pitch_oct",  # register
    "v_voiced_frac", "v_pitch_stability", "v_syllables_per_s",  # sung vs spoken/rap
    "v_centroid_oct",  # brightness
    "v_periodicity", "v_flatness_db",  # breathiness
    "v_activity", "vb_shape_dist_db",
)
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "none": (),  # a robust constant (with the genre: a shrunk per-genre level)
    "backing": BACKING_FEATURES,
    "backing+vocal": BACKING_FEATURES + VOCAL_FEATURES,
}
LRA_FEATURES: tuple[str, ...] = (
    "v_lra_lu", "v_mom_spread_lu", "v_activity", "b_lra_lu", "b_mom_spread_lu",
    "b_tempo_oct",
)
HEAD_LOSS = {"vocal_to_mix_lu": "huber", "vocal_lra_log_ratio": "squared"}
#: Huber threshold, LU: half the spread (sd ~2 LU) of the human balances
HUBER_DELTA_LU = 1.0
DEFAULT_ALPHA = 10.0
DEFAULT_GENRE_ALPHA = 3.0
ALPHA_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
GENRE_ALPHA_GRID = (1.0, 3.0, 10.0)
MIN_SONGS_FOR_CV = 10
INNER_FOLDS = 5
# The intercepts are shrunk toward the baseline's rules, a prior worth PRIOR_SONGS songs:
# vocal-to-mix -3 LU and an LRA log ratio of 0 (keep the input's loudness range).
PRIOR_SONGS = 1.0
PRIOR: dict[str, float] = {"vocal_to_mix_lu": RULE_VOCAL_TO_MIX_LU, "vocal_lra_log_ratio": 0.0}


# --- fitting ---------------------------------------------------------------------------


def song_weights(groups: np.ndarray) -> np.ndarray:
    """Example weights that give every song (group) a total weight of 1."""
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv]


def fit_head(target: str, x: np.ndarray, y: np.ndarray, weights: np.ndarray,
             alpha: float, feature_subset: tuple[str, ...] | None = None, *,
             loss: str | None = None, prior_songs: float = PRIOR_SONGS,
             genres: np.ndarray | None = None, genre_alpha: float = DEFAULT_GENRE_ALPHA,
             huber_delta: float = HUBER_DELTA_LU) -> RidgeHead:
    """Penalised linear model of ``y`` on full feature rows ``x`` (see the module doc).

    Minimises ``sum w L(y - b - z beta - gamma_genre) + alpha |beta|^2 +
    genre_alpha |gamma|^2 + prior_songs (b - b0)^2`` with ``z`` the standardised
    features, ``L`` the squared or Huber loss, ``b0`` the baseline rule's value of the
    target (:data:`PRIOR`); ``weights`` should sum to the number of songs
    (:func:`song_weights`). ``genres``: each example's genre (``None``: no genre term);
    examples of ``other`` or ``unknown`` genre get no offset. Deterministic.
    """
    if feature_subset is None:
        feature_subset = BACKING_FEATURES if target == "vocal_to_mix_lu" else LRA_FEATURES
    feats = feature_subset
    loss = loss or HEAD_LOSS[target]
    cols = np.array([FEATURE_NAMES.index(f) for f in feats], dtype=int)
    xs = np.asarray(x, dtype=np.float64)[:, cols]
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    wn = w / w.sum()
    mean = wn @ xs
    scale = np.sqrt(wn @ (xs - mean) ** 2)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (xs - mean) / scale
    g_names: tuple[str, ...] = ()
    if genres is not None:
        gs = np.asarray(genres, dtype=str)
        g_names = tuple(g for g in GENRES if np.any(gs == g))
        onehot = np.stack([gs == g for g in g_names], axis=1).astype(np.float64) \
            if g_names else np.zeros((len(y), 0))
    else:
        onehot = np.zeros((len(y), 0))
    design = np.hstack([np.ones((len(y), 1)), z, onehot])
    pen = np.concatenate([[prior_songs], np.full(len(cols), float(alpha)),
                          np.full(len(g_names), float(genre_alpha))])
    theta0 = np.zeros(design.shape[1])
    theta0[0] = PRIOR[target]
    u = np.ones(len(y))
    theta = theta0
    for _ in range(200 if loss == "huber" else 1):
        wu = w * u
        a = (design * wu[:, None]).T @ design + np.diag(pen)
        new = np.linalg.solve(a, (design * wu[:, None]).T @ y + pen * theta0)
        done = np.max(np.abs(new - theta)) < 1e-10
        theta = new
        if loss != "huber" or done:
            break
        r = np.abs(y - design @ theta)
        u = np.where(r <= huber_delta, 1.0, huber_delta / np.maximum(r, 1e-12))
    k = len(cols)
    return RidgeHead(target, tuple(feats), mean, scale, theta[1:1 + k], float(theta[0]),
                     float(alpha), xs.min(axis=0), xs.max(axis=0), loss,
                     float(huber_delta if loss == "huber" else 0.0), g_names,
                     theta[1 + k:].copy(), float(genre_alpha if genres is not None else 0.0))


@dataclass(frozen=True)
class Examples:
    """Training examples of several songs.

    ``x`` ``(n, len(FEATURE_NAMES))``, ``y`` ``(n, len(TARGETS))``, ``song`` the index
    into ``songs`` of each example, ``records`` per song.
    """

    x: np.ndarray
    y: np.ndarray
    song: np.ndarray
    songs: list[Song]
    records: list[SongRecord]

    @property
    def artists(self) -> np.ndarray:
        """Artist key of every song."""
        return np.array([s.artist for s in self.songs])

    @property
    def genres(self) -> np.ndarray:
        """Genre of every song (``other`` for names not in MUSDB18's list)."""
        return np.array([model_genre(s.genre) for s in self.songs])

    def subset(self, songs: np.ndarray) -> Examples:
        """The examples of the songs whose indices are ``songs`` (renumbered)."""
        idx = [int(i) for i in songs]
        remap = {old: new for new, old in enumerate(idx)}
        m = np.isin(self.song, idx)
        return Examples(self.x[m], self.y[m], np.array([remap[int(s)] for s in self.song[m]]),
                        [self.songs[i] for i in idx], [self.records[i] for i in idx])


def model_genre(genre: str) -> str:
    """The genre the model is given for a catalogue genre: MUSDB18's names as they are,
    anything else (``unknown`` included) ``other``."""
    return genre if genre in GENRES else OTHER_GENRE


def _song_mae(pred: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    errs = [abs(float(pred[groups == g].mean() - y[groups == g].mean()))
            for g in np.unique(groups)]
    return float(np.mean(errs))


def select_head(target: str, ex: Examples, *, seed: int = 0, with_genre: bool = False,
                feature_sets: dict[str, tuple[str, ...]] | None = None,
                alphas: tuple[float, ...] = ALPHA_GRID,
                genre_alphas: tuple[float, ...] = GENRE_ALPHA_GRID,
                fixed: tuple[str, float] | None = None) -> tuple[RidgeHead, dict]:
    """Choose a head's feature set and penalties by cross-validation inside ``ex``
    (:data:`INNER_FOLDS` folds grouped by artist, fold seed ``seed``; the song-level
    mean absolute error), then fit it on all of ``ex``. With ``fixed`` (feature-set
    name, alpha) only the genre penalty is chosen. Returns the head and a report."""
    j = TARGETS.index(target)
    y = ex.y[:, j]
    n_songs = len(ex.songs)
    if feature_sets is None:
        feature_sets = (FEATURE_SETS if target == "vocal_to_mix_lu"
                        else {"lra": LRA_FEATURES})
    gen_rows = ex.genres[ex.song] if with_genre else None
    gas = genre_alphas if with_genre else (0.0,)
    if fixed is not None:
        grid = [(fixed[0], fixed[1], ga) for ga in gas]
    else:  # a feature set without features has no slope to penalise: one alpha
        grid = [(fs, a, ga) for fs in feature_sets
                for a in (alphas if feature_sets[fs] else alphas[:1]) for ga in gas]
    scores: dict[str, float] = {}
    if len(grid) == 1:
        fs, a, ga = grid[0]
        how = "given"
    elif n_songs < MIN_SONGS_FOR_CV:
        fs, a = fixed if fixed is not None else (
            "backing" if "backing" in feature_sets else next(iter(feature_sets)),
            DEFAULT_ALPHA)
        ga = DEFAULT_GENRE_ALPHA
        how = f"default (fewer than {MIN_SONGS_FOR_CV} songs to choose by cross-validation)"
    else:
        folds = artist_folds(ex.artists, INNER_FOLDS, seed)
        for fs, a, ga in grid:
            total = 0.0
            for test_songs in folds:
                tr = ~test_songs[ex.song]
                te = ~tr
                h = fit_head(target, ex.x[tr], y[tr], song_weights(ex.song[tr]), a,
                             feature_sets[fs],
                             genres=None if gen_rows is None else gen_rows[tr],
                             genre_alpha=ga)
                p = h.predict(ex.x[te])
                if gen_rows is not None:
                    p = p + np.array([h.genre_offset(g) for g in gen_rows[te]])
                total += _song_mae(p, y[te], ex.song[te]) * np.unique(ex.song[te]).size
            scores[f"{fs}|{a:g}|{ga:g}"] = total / n_songs
        fs, a, ga = min(grid, key=lambda c: (round(scores[f"{c[0]}|{c[1]:g}|{c[2]:g}"], 12),
                                             -c[1], -c[2]))  # ties: the stronger prior
        how = f"{INNER_FOLDS}-fold cross-validation grouped by artist"
    head = fit_head(target, ex.x, y, song_weights(ex.song), a, feature_sets[fs],
                    genres=gen_rows, genre_alpha=ga)
    return head, {"feature_set": fs, "alpha": a,
                  **({"genre_alpha": ga} if with_genre else {}),
                  "chosen_by": how, "cv_mae": {k: round(v, 4) for k, v in scores.items()}}


def fit_level_model(ex: Examples, seed: int = 0, progress: Progress | None = None
                    ) -> tuple[LevelModel, dict]:
    """The level model on all of ``ex``: each head and the genre head chosen by
    :func:`select_head`. Returns the model and a report of the choices."""
    if len(ex.songs) == 0:
        raise ModelError("no training examples")
    heads, genre_heads, report = {}, {}, {}
    for t in TARGETS:
        heads[t], report[t] = select_head(t, ex, seed=seed)
        if progress:
            progress(f"{t}: {report[t]['feature_set']} features, alpha "
                     f"{report[t]['alpha']:g} ({report[t]['chosen_by']})")
    for t in GENRE_TARGETS:
        if any(g != OTHER_GENRE for g in ex.genres):
            genre_heads[t], report[f"{t}+genre"] = select_head(t, ex, seed=seed,
                                                               with_genre=True)
    return LevelModel(heads, genre_heads), report


# --- training examples ------------------------------------------------------------------

MAX_TRAIN_EXCERPTS = 32
DEFAULT_AUGMENT = 3
DEFAULT_DRAWS = 3  # perturbed versions of each whole song, for held-out evaluation
DEFAULT_REPEATS = 5
DEFAULT_FOLDS = 5
BASELINE_V2M_LU = RULE_VOCAL_TO_MIX_LU
#: part of each song's cache key, which also seeds the song's random draws: bump when what
#: a record holds changes in kind (the draws then change too)
CACHE_TAG = "level-r2"
#: how a record's figures are measured, in its cache file's name only: bump when a
#: measurement changes their values, so that a record cached before is not read, while
#: the draws stay the same. 2: the while-singing truth and the features read off
#: K-weighting in float64 (0.0002-0.0006 LU from the float32 filter's)
RECORD_REVISION = 2
TRUTH_KEYS = ("vocal_to_mix_lu", "vocal_to_mix_integrated_lu", "vocal_to_backing_lu",
              "vocal_lra_lu")


def _quiet(_msg: str) -> None:
    pass


def human_truth(vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The human mix's figures, measured on stems as mixed (LU): ``vocal_to_mix_lu``
    (while the vocal sings, the model's measure), ``vocal_to_mix_integrated_lu``
    (I(vocal) - I(vocal + backing)), ``vocal_to_backing_lu`` (I(vocal) - I(backing)),
    ``vocal_lra_lu`` (LRA of the vocal)."""
    iv = integrated_loudness(vocal, sample_rate)
    ib = integrated_loudness(backing, sample_rate)
    im = integrated_loudness(vocal + backing, sample_rate)
    return {"vocal_to_mix_lu": vocal_to_mix_lu(vocal, backing, sample_rate, LEVEL_MEASURE),
            "vocal_to_mix_integrated_lu": float(iv - im),
            "vocal_to_backing_lu": float(iv - ib),
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
        vv, vb, bb: 100 ms sums of the K-weighted stems (vocal, product, backing), from
            which any vocal gain's balances follow exactly (:func:`place`).
        segment_len: samples per 100 ms segment.
        duration_s: song length, s.
    """

    truth: dict[str, float]
    x: np.ndarray
    y: np.ndarray
    test_x: np.ndarray
    test_draw: np.ndarray
    test_lra_in: np.ndarray
    vv: np.ndarray
    vb: np.ndarray
    bb: np.ndarray
    segment_len: int
    duration_s: float

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{id(self)}.tmp.npz")
        np.savez(tmp, truth=np.array([self.truth[k] for k in TRUTH_KEYS]), x=self.x,
                 y=self.y, test_x=self.test_x, test_draw=self.test_draw,
                 test_lra_in=self.test_lra_in, vv=self.vv, vb=self.vb, bb=self.bb,
                 segment_len=np.array(self.segment_len), duration_s=np.array(self.duration_s))
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> SongRecord:
        with np.load(path, allow_pickle=False) as d:
            return SongRecord(dict(zip(TRUTH_KEYS, (float(v) for v in d["truth"]), strict=True)),
                              d["x"], d["y"], d["test_x"], d["test_draw"], d["test_lra_in"],
                              d["vv"], d["vb"], d["bb"], int(d["segment_len"]),
                              float(d["duration_s"]))


def place(rec: SongRecord, target_lu: float, measure: str) -> dict[str, float]:
    """Where a method that aims at ``target_lu`` (measured as ``measure``) puts the vocal
    of the song: the gain the resolver would find on the song's own stems, and the
    balances that gain gives (LU): ``vocal_to_mix_lu`` (singing measure),
    ``vocal_to_mix_integrated_lu``, ``vocal_to_backing_lu``, plus ``gain_db``. A target
    the stems cannot reach is clipped to the nearest reachable balance."""
    from vocalmix.core.resolve import solve_gain_from_segments

    try:
        gain = solve_gain_from_segments(rec.vv, rec.vb, rec.bb, rec.segment_len, target_lu,
                                        measure=measure).gain_db
    except TargetUnreachableError:
        gain = 60.0 if target_lu > -3.0 else -60.0
    g = 10.0 ** (gain / 20.0)
    ev = g * g * rec.vv
    em = ev + 2.0 * g * rec.vb + rec.bb
    seg = rec.segment_len
    iv = float(integrated_from_segments(ev, seg))
    return {"gain_db": float(gain),
            "vocal_to_mix_lu": float(singing_ratio_from_segments(ev, em, seg, rec.bb)),
            "vocal_to_mix_integrated_lu": iv - float(integrated_from_segments(em, seg)),
            "vocal_to_backing_lu": iv - float(integrated_from_segments(rec.bb, seg))}


def song_record(song: Song, seed: int = 0, augment: int = DEFAULT_AUGMENT,
                draws: int = DEFAULT_DRAWS, use_cache: bool = True) -> SongRecord:
    """Examples, truth and held-out inputs of one song (see the module doc)."""
    key = song_key(song, f"{CACHE_TAG}-f{FEATURE_VERSION}-p{PERTURBATION_VERSION}-"
                         f"e{EXCERPT_S}-{HOP_S}-"
                         f"m{MAX_TRAIN_EXCERPTS}-{MAX_EXCERPTS}-a{augment}-d{draws}-s{seed}")
    cpath = cache_dir() / "features" / f"{key}-m{RECORD_REVISION}.npz"
    if use_cache and cpath.exists():
        try:
            return SongRecord.load(cpath)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    v, b, sr = load_song(song)
    truth = human_truth(v, b, sr)
    if not all(np.isfinite(truth[k]) for k in TRUTH_KEYS[:3]):
        raise DataError(f"{song.song_id}: the vocal or backing stem is silent; no balance "
                        "to learn (remove the song or fix its files)")
    rng = np.random.default_rng([seed, int(key[:12], 16)])
    xs, ys = [], []
    for w in vocal_excerpts(v, sr, EXCERPT_S, HOP_S, MAX_TRAIN_EXCERPTS, backing=b):
        ve, be = v[w], b[w]
        v2m = vocal_to_mix_lu(ve, be, sr, LEVEL_MEASURE)
        if not np.isfinite(v2m):
            continue  # a silent excerpt teaches nothing about balance
        lra = loudness_range(ve, sr)
        for _ in range(augment):
            raw = perturb_vocal(ve, sr, rng)
            bg = np.float32(10.0 ** (rng.uniform(-6.0, 6.0) / 20.0))
            f = features(raw, be * bg, sr)
            xs.append(f)
            ys.append([v2m, lra_log_ratio(lra, f[FEATURE_NAMES.index("v_lra_lu")])])
    if not xs:
        raise DataError(f"{song.song_id}: no excerpt with an audible vocal")
    tx, td, tl = [], [], []
    for d in range(draws):
        raw = perturb_vocal(v, sr, rng)
        xd = excerpt_features(raw, b, sr)
        tx.append(xd)
        td.append(np.full(len(xd), d))
        tl.append(loudness_range(raw, sr))
    vv, bb, vb = BlockStats.cross(k_weight(v, sr), k_weight(b, sr), sr)
    rec = SongRecord(truth, np.array(xs), np.array(ys), np.concatenate(tx), np.concatenate(td),
                     np.array(tl), vv, vb, bb, int(round(sr / 10.0)), v.shape[0] / sr)
    if use_cache:
        try:
            rec.save(cpath)
        except OSError:
            pass
    return rec


def _record_job(args: tuple) -> SongRecord:
    return song_record(*args)


def build_examples(songs: list[Song], seed: int = 0, augment: int = DEFAULT_AUGMENT,
                   progress: Progress | None = None, use_cache: bool = True,
                   draws: int = DEFAULT_DRAWS, jobs: int = 1) -> Examples:
    """Records and examples of all ``songs``.

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
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawned, not forked: this process may run threads (a fork copies their locks
        # held, and Python 3.12+ warns of the deadlock; 3.14 no longer forks by default)
        with ProcessPoolExecutor(max_workers=jobs,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
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


def level_songs(folders: list[str], progress: Progress | None = None,
                split: str = "train") -> list[Song]:
    """Songs under ``folders`` that carry level information (karaoke clips skipped),
    outside MUSDB18's test split (``split="train"``, the default) or inside it
    (``split="test"``)."""
    progress = progress or _quiet
    songs = find_songs(folders, progress)
    usable = [s for s in songs if s.has_level_info]
    skipped = len(songs) - len(usable)
    if skipped and split == "train":
        progress(f"skipping {skipped} clip(s) without level information (karaoke: both "
                 "channels were normalised, so their balance is not a mixing choice)")
    test = [s for s in usable if s.test_split]
    if split == "test":
        return test
    if test:
        progress(f"leaving out {len(test)} song(s) of MUSDB18's test split (never trained "
                 f"or tuned on): {', '.join(s.song_id for s in test)}")
    usable = [s for s in usable if not s.test_split]
    if not usable:
        raise DataError(f"no songs with vocal and backing stems under {', '.join(folders)} "
                        "outside MUSDB18's test split: expected MUSDB18-HQ folders (vocals.* "
                        "plus accompaniment.* or other stems), MUSDB18 .stem.mp4 files or a "
                        "manifest.csv")
    progress(f"{len(usable)} song(s) with level information")
    return usable


# --- placing and scoring every method --------------------------------------------------

#: what the level model must reach (cross-validated, vocal-to-mix while singing): an MAE
#: at most this fraction of the constant's, a correlation with the human mixes and a
#: spread of its predictions (sd over the truth's sd) at least these
GOALS = {"mae_vs_constant": 0.85, "corr": 0.4, "spread_ratio": 0.4}

METHODS = ("rule", "constant", "median", "model", "model+genre")
#: the methods ``vocalmix mix --method`` can run, by their name in the evaluation
RUNNABLE = {"baseline": "rule", "model": "model"}
KEYS = ("vocal_to_mix_lu", "vocal_to_mix_integrated_lu", "vocal_to_backing_lu",
        "vocal_lra_lu")
LABELS = {"vocal_to_mix_lu": "vocal-to-mix while singing",
          "vocal_to_mix_integrated_lu": "vocal-to-mix integrated",
          "vocal_to_backing_lu": "vocal-to-backing", "vocal_lra_lu": "vocal LRA"}
BASELINE_LRA_CAP_LU = 14.0


def _model_v2m(head: RidgeHead, rec: SongRecord, genre: str | None) -> float:
    """A head's song-level vocal-to-mix prediction, averaged over the record's draws."""
    return float(np.mean([head.predict(rec.test_x[rec.test_draw == d], genre).mean()
                          for d in range(len(rec.test_lra_in))]))


def _model_lra(head: RidgeHead, rec: SongRecord) -> float:
    return float(np.mean([lra_from_ratio(rec.test_lra_in[d], float(
        head.predict(rec.test_x[rec.test_draw == d]).mean()))
        for d in range(len(rec.test_lra_in))]))


def predictions(model: LevelModel, rec: SongRecord, genre: str, constant: float,
                median: float, constant_lra: float) -> dict[str, dict[str, float]]:
    """Every method's figures for one held-out song: its target, where that puts the
    vocal on the song's stems (:func:`place`), and its vocal LRA."""
    out = {}
    aims = {"rule": (BASELINE_V2M_LU, "integrated"), "constant": (constant, LEVEL_MEASURE),
            "median": (median, LEVEL_MEASURE),
            "model": (_model_v2m(model.heads["vocal_to_mix_lu"], rec, None), LEVEL_MEASURE)}
    if "vocal_to_mix_lu" in model.genre_heads:
        aims["model+genre"] = (_model_v2m(model.genre_heads["vocal_to_mix_lu"], rec, genre),
                               LEVEL_MEASURE)
    model_lra = _model_lra(model.heads["vocal_lra_log_ratio"], rec)
    lra = {"rule": float(np.mean(np.minimum(rec.test_lra_in, BASELINE_LRA_CAP_LU))),
           "constant": constant_lra, "median": constant_lra, "model": model_lra,
           "model+genre": model_lra}
    for m, (target, measure) in aims.items():
        out[m] = {**place(rec, target, measure), "target_lu": float(target),
                  "vocal_lra_lu": lra[m]}
    return out


def _stats(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    e = pred - truth
    sd_t = float(np.std(truth))
    corr = float(np.corrcoef(pred, truth)[0, 1]) if np.std(pred) > 1e-12 and sd_t > 0 \
        else 0.0
    return {"mae": float(np.mean(np.abs(e))), "median_ae": float(np.median(np.abs(e))),
            "bias": float(np.mean(e)), "max": float(np.max(np.abs(e))), "corr": corr,
            "spread_ratio": float(np.std(pred) / sd_t) if sd_t > 0 else 0.0}


def summarise(rows_by_repeat: list[list[dict]], methods: tuple[str, ...] = METHODS) -> dict:
    """Per method and figure: each statistic's mean over the repeats and its sd across
    them (``<stat>_sd``), and the per-genre mean absolute error pooled over repeats."""
    out: dict = {}
    for m in methods:
        if not all(m in r["predicted"] for rows in rows_by_repeat for r in rows):
            continue
        out[m] = {}
        for k in KEYS:
            per = [_stats(np.array([r["predicted"][m][k] for r in rows]),
                          np.array([r["human"][k] for r in rows])) for rows in rows_by_repeat]
            out[m][k] = {s: float(np.mean([p[s] for p in per])) for s in per[0]}
            out[m][k].update({f"{s}_sd": float(np.std([p[s] for p in per])) for s in per[0]})
        genres = sorted({r["genre"] for rows in rows_by_repeat for r in rows})
        out[m]["by_genre"] = {}
        for g in genres:
            e = [abs(r["predicted"][m]["vocal_to_mix_lu"] - r["human"]["vocal_to_mix_lu"])
                 for rows in rows_by_repeat for r in rows if r["genre"] == g]
            n = sum(r["genre"] == g for r in rows_by_repeat[0])
            out[m]["by_genre"][g] = {"n_songs": n, "mae": float(np.mean(e))}
    return out


def _row(song: Song, rec: SongRecord, pred: dict, fold: int) -> dict:
    return {"song": song.song_id, "artist": song.artist, "genre": song.genre,
            "fold": fold, "duration_s": round(rec.duration_s, 2),
            "human": {k: rec.truth[k] for k in KEYS}, "predicted": pred,
            "error": {m: {k: pred[m][k] - rec.truth[k] for k in KEYS} for m in pred}}


def cross_validate(ex: Examples, *, repeats: int = DEFAULT_REPEATS,
                   n_folds: int = DEFAULT_FOLDS, seed: int = 0,
                   progress: Progress | None = None,
                   fit: Callable[[Examples, int], LevelModel] | None = None) -> dict:
    """Repeated cross-validation grouped by artist (see the module doc): a JSON-ready
    dict with the per-song rows of every repeat, the summary and the folds.

    ``fit(train_examples, seed)`` builds the model of one fold (default: the whole
    selection procedure, :func:`fit_level_model`)."""
    progress = progress or _quiet
    fit = fit or (lambda e, s: fit_level_model(e, s)[0])
    n = len(ex.songs)
    if n < 2:
        raise DataError("cross-validation needs at least 2 songs with level information")
    artists = ex.artists
    if len(np.unique(artists)) < 2:
        raise DataError("cross-validation grouped by artist needs songs of at least 2 "
                        "artists")
    genres = ex.genres
    rows_by_repeat, folds_by_repeat = [], []
    t0 = time.perf_counter()
    for r in range(repeats):
        folds = artist_folds(artists, n_folds, seed + r)
        rows: list[dict | None] = [None] * n
        for k, test in enumerate(folds):
            train = np.flatnonzero(~test)
            sub = ex.subset(train)
            model = fit(sub, seed + r)
            truths = np.array([ex.records[i].truth["vocal_to_mix_lu"] for i in train])
            lra_c = float(np.mean([ex.records[i].truth["vocal_lra_lu"] for i in train]))
            for i in np.flatnonzero(test):
                pred = predictions(model, ex.records[i], genres[i], float(truths.mean()),
                                   float(np.median(truths)), lra_c)
                rows[i] = _row(ex.songs[i], ex.records[i], pred, k)
        rows_by_repeat.append([r_ for r_ in rows if r_ is not None])
        folds_by_repeat.append([[ex.songs[i].song_id for i in np.flatnonzero(f)]
                                for f in folds])
        s = summarise(rows_by_repeat[-1:])
        progress(f"repeat {r + 1}/{repeats} (fold seed {seed + r}): vocal-to-mix MAE model "
                 f"{s['model']['vocal_to_mix_lu']['mae']:.2f} LU, constant "
                 f"{s['constant']['vocal_to_mix_lu']['mae']:.2f}, rule "
                 f"{s['rule']['vocal_to_mix_lu']['mae']:.2f}; "
                 f"{time.perf_counter() - t0:.0f} s")
    return {"protocol": f"{n_folds}-fold cross-validation grouped by artist, repeated with "
                        f"{repeats} fold seeds",
            "measure": LEVEL_MEASURE, "n_songs": n, "n_artists": int(len(np.unique(artists))),
            "n_folds": n_folds, "repeats": repeats, "seed": seed,
            "summary": summarise(rows_by_repeat), "rows": rows_by_repeat,
            "folds": folds_by_repeat}


def cv_metadata(cv: dict) -> dict:
    """The part of a cross-validation result ``level_model.json`` keeps: the protocol
    and the summary (no per-song rows)."""
    return {k: cv[k] for k in ("protocol", "measure", "n_songs", "n_artists", "n_folds",
                               "repeats", "seed", "summary")}


# --- training ---------------------------------------------------------------------------


def training_metadata(ex: Examples, choice: dict, seed: int, augment: int,
                      cv: dict | None) -> dict:
    """The ``level_model.json`` document (no date or path: training twice on the same
    files writes the same bytes)."""
    from vocalmix._version import __version__

    return {
        "model": "linear heads on standardised level-invariant features, songs weighted "
                 "equally; vocal-to-mix by Huber loss with optional genre offsets, "
                 "feature set and penalties chosen by cross-validation grouped by artist",
        "vocalmix_version": __version__,
        "targets": list(TARGETS),
        "vocal_to_mix_measure": LEVEL_MEASURE,
        "genres": list(GENRES),
        "choice": choice,
        "feature_version": FEATURE_VERSION,
        "perturbation_version": PERTURBATION_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "seed": seed, "augment": augment,
        "excerpt_s": EXCERPT_S, "hop_s": HOP_S, "max_train_excerpts": MAX_TRAIN_EXCERPTS,
        "n_songs": len(ex.songs), "n_artists": int(len(np.unique(ex.artists))),
        "n_examples": int(len(ex.x)),
        "training_data": [
            {"song": s.song_id, "source": s.source, "genre": s.genre, "artist": s.artist,
             **dict(s.provenance),
             "files": [{"name": p.name, "sha256": file_hash(p)} for p in s.files()],
             "human": {k: round(v, 4) for k, v in r.truth.items()}}
            for s, r in zip(ex.songs, ex.records, strict=True)],
        "cross_validated": cv,
    }


def train_level_model(folders: list[str], out: str | Path, seed: int = 0,
                      augment: int = DEFAULT_AUGMENT, progress: Progress | None = None,
                      use_cache: bool = True, cross_validate_: bool = True, jobs: int = 1,
                      repeats: int = DEFAULT_REPEATS, draws: int = DEFAULT_DRAWS
                      ) -> tuple[LevelModel, dict]:
    """Fit the level model on every song with level information under ``folders``
    (MUSDB18's test split left out), write ``level_model.npz`` and ``level_model.json``
    into ``out``; returns both. With ``cross_validate_`` the metadata records the
    repeated artist-grouped cross-validation that :func:`default_method
    <vocalmix.estimators.registry.default_method>` reads."""
    progress = progress or _quiet
    songs = level_songs(folders, progress)
    ex = build_examples(songs, seed, augment, progress, use_cache, draws, jobs)
    model, choice = fit_level_model(ex, seed, progress)
    cv = None
    if cross_validate_ and len(np.unique(ex.artists)) >= 2:
        progress("cross-validation grouped by artist for the metadata")
        cv = cv_metadata(cross_validate(ex, repeats=repeats, seed=seed, progress=progress))
    meta = training_metadata(ex, choice, seed, augment, cv)
    genres = tuple(g for g in GENRES if g in set(ex.genres))[:2]
    model.save(out, meta, check_x=ex.x[:5], check_genres=genres)
    return replace(model, meta=meta), meta


# --- evaluation --------------------------------------------------------------------------


def _fixed_fit(feature_set: str, alpha: float) -> Callable[[Examples, int], LevelModel]:
    def fit(e: Examples, s: int) -> LevelModel:
        v2m = fit_head("vocal_to_mix_lu", e.x, e.y[:, 0], song_weights(e.song), alpha,
                       FEATURE_SETS[feature_set])
        lra, _ = select_head("vocal_lra_log_ratio", e, seed=s)
        return LevelModel({"vocal_to_mix_lu": v2m, "vocal_lra_log_ratio": lra})
    return fit


def sensitivity(ex: Examples, *, repeats: int, n_folds: int, seed: int) -> dict:
    """Cross-validated vocal-to-mix MAE and correlation of the audio model with its
    feature set and penalty fixed instead of chosen (how much the choice matters), and
    each feature's rank correlation with the human balance over the training songs."""
    from scipy.stats import spearmanr

    table = {}
    for fs in FEATURE_SETS:
        for a in ALPHA_GRID if FEATURE_SETS[fs] else ALPHA_GRID[:1]:
            cv = cross_validate(ex, repeats=repeats, n_folds=n_folds, seed=seed,
                                fit=_fixed_fit(fs, a))
            s = cv["summary"]["model"]["vocal_to_mix_lu"]
            table[f"{fs}|{a:g}"] = {"feature_set": fs, "alpha": a, "mae": s["mae"],
                                    "corr": s["corr"], "spread_ratio": s["spread_ratio"]}
    truth = np.array([r.truth["vocal_to_mix_lu"] for r in ex.records])
    xm = np.array([r.x.mean(axis=0) for r in ex.records])
    rho = {}
    for j, f in enumerate(FEATURE_NAMES):
        if np.std(xm[:, j]) > 0:
            rho[f] = float(spearmanr(xm[:, j], truth).statistic)
    return {"fixed": table, "spearman": rho}


def evaluate_level_model(folders: list[str], seed: int = 0, augment: int = DEFAULT_AUGMENT,
                         progress: Progress | None = None, use_cache: bool = True,
                         draws: int = DEFAULT_DRAWS, jobs: int = 1,
                         repeats: int = DEFAULT_REPEATS, n_folds: int = DEFAULT_FOLDS,
                         with_sensitivity: bool = True) -> dict:
    """The evaluation behind ``vocalmix evaluate --level`` (a JSON-ready dict): the
    repeated artist-grouped cross-validation on the training songs, the sensitivity
    tables, and the model trained on all of them applied to MUSDB18 test-split songs
    found under ``folders`` (reported apart; nothing is chosen on them)."""
    progress = progress or _quiet
    songs = level_songs(folders, progress)
    if len(songs) < 2:
        raise DataError(f"cross-validation needs at least 2 songs with level information; "
                        f"found {len(songs)} under {', '.join(map(str, folders))}")
    ex = build_examples(songs, seed, augment, progress, use_cache, draws, jobs)
    res = cross_validate(ex, repeats=repeats, n_folds=n_folds, seed=seed, progress=progress)
    if with_sensitivity:
        progress("sensitivity: feature sets and penalties held fixed")
        res["sensitivity"] = sensitivity(ex, repeats=repeats, n_folds=n_folds, seed=seed)
    model, choice = fit_level_model(ex, seed)
    res["final_choice"] = choice
    test_songs = level_songs(folders, split="test")
    if test_songs:
        progress(f"{len(test_songs)} MUSDB18 test-split song(s): the final model, never "
                 "tuned on them")
        tex = build_examples(test_songs, seed, augment, progress, use_cache, draws, jobs)
        truths = np.array([r.truth["vocal_to_mix_lu"] for r in ex.records])
        lra_c = float(np.mean([r.truth["vocal_lra_lu"] for r in ex.records]))
        rows = [_row(s, r, predictions(model, r, model_genre(s.genre), float(truths.mean()),
                                       float(np.median(truths)), lra_c), -1)
                for s, r in zip(tex.songs, tex.records, strict=True)]
        res["test_split"] = {"rows": rows, "summary": summarise([rows]) if len(rows) > 1
                             else None}
    skipped = sum(not s.has_level_info for s in find_songs(folders))
    lra_in = ex.x[:, FEATURE_NAMES.index("v_lra_lu")]
    lra_mixed = (lra_in + 1.0) * np.exp(ex.y[:, 1]) - 1.0
    test_in = np.concatenate([r.test_lra_in for r in ex.records])
    test_truth = np.concatenate([np.full(len(r.test_lra_in), r.truth["vocal_lra_lu"])
                                 for r in ex.records])
    res.update({
        "n_examples": int(len(ex.x)), "augment": augment, "draws": draws,
        "skipped_without_level_info": skipped,
        "perturbation": {
            "excerpt_lra_increase_lu_mean": float(np.mean(lra_in - lra_mixed)),
            "excerpt_lra_increase_lu_sd": float(np.std(lra_in - lra_mixed)),
            "song_lra_increase_lu_mean": float(np.mean(test_in - test_truth)),
        },
        "data": [{"song": s.song_id, "source": s.source, "genre": s.genre,
                  "artist": s.artist, **dict(s.provenance),
                  "files": [p.name for p in s.files()]} for s in songs],
    })
    return res


__all__ = [
    "BACKING_FEATURES",
    "DEFAULT_ALPHA",
    "FEATURE_SETS",
    "GOALS",
    "KEYS",
    "LRA_FEATURES",
    "METHODS",
    "VOCAL_FEATURES",
    "Examples",
    "SongRecord",
    "build_examples",
    "cross_validate",
    "evaluate_level_model",
    "fit_head",
    "fit_level_model",
    "human_truth",
    "level_songs",
    "model_genre",
    "place",
    "select_head",
    "song_record",
    "song_weights",
    "train_level_model",
]
