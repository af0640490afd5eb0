"""The data-driven estimator: small ridge regressors run with numpy, weights shipped in the
package.

What it predicts
    From level-invariant features (:mod:`vocalmix.estimators.features`) of 6 s excerpts of the vocal
    and the backing, three *heads* (one ridge regression each):

    * ``vocal_to_mix_lu``: the human mix's vocal-to-mix ratio (BS.1770-4 integrated
      loudness of the vocal stem minus that of vocal + backing), LU;
    * ``vocal_to_backing_lu``: the same balance against the backing alone, LU (reported;
      the resolvers use vocal-to-mix);
    * ``vocal_lra_log_ratio``: ``ln((LRA_mixed + 1) / (LRA_input + 1))``, how much the
      mixing engineer's dynamics processing shrank the vocal's loudness range (EBU Tech
      3342) relative to a raw take. A ratio transfers from 6 s excerpts to whole songs,
      where a loudness range itself does not (it grows with duration). The predicted
      target is ``(LRA_input + 1) * exp(prediction) - 1`` with ``LRA_input`` the
      loudness range of the whole input vocal.

    Per-excerpt predictions are averaged over up to :data:`MAX_EXCERPTS` excerpts in
    which the vocal sings (:func:`vocalmix.estimators.features.vocal_excerpts`), the same rule the
    training examples were cut by.

How it is fitted
    Features are standardised (weighted mean and sd of the training examples); every
    song weighs the same in total however many excerpts it has; the ridge penalty is
    ``alpha * ||beta||^2`` against a loss summed over songs, so ``alpha = 1`` is a prior
    worth one song of evidence along a unit-variance feature direction and shrinks the
    slopes toward zero. The intercept is shrunk toward the baseline's rule
    (:data:`PRIOR`: -3 LU vocal-to-mix, keep the input's LRA) by a prior worth
    :data:`PRIOR_SONGS` song, so with a handful of songs the model stays near the rule
    and with many it follows their mean (the constant predictor). Features are clipped to
    their training range at prediction time (no linear extrapolation). With at least
    :data:`MIN_SONGS_FOR_CV` training songs, ``alpha`` is chosen per head by grouped (by
    song) cross-validation; with fewer it is :data:`DEFAULT_ALPHA`.

Converting between the two balances
    For parts that do not overlap in time or frequency in any particular way
    (uncorrelated, both always present) a vocal at ``v2b`` LU against the backing sits at
    ``v2m = v2b - 10 log10(10^(v2b/10) + 1)`` LU against the mix (power addition);
    :func:`v2b_to_v2m` and :func:`v2m_to_v2b` implement it. Real songs differ from it by
    up to ~0.6 LU (BS.1770 gating and vocal pauses: on "So Easy" the rule says -2.58 LU,
    the stems measure -2.00 LU), which is why the model predicts vocal-to-mix directly
    and the evaluation converts on the song's own stems (:mod:`vocalmix.training.evaluate`).

Extending
    :func:`estimate` starts from the baseline's parameters and applies every entry of
    :data:`PROVIDERS` in turn; each is a function ``(context) -> (params, notes)``. The
    level provider is required (without its weights the model method is unavailable
    and the pipeline falls back to the baseline); a learned EQ or reverb predictor can be
    appended as an optional provider, which notes and skips when its own weights are
    missing.

Files: ``assets/level_model.npz`` (per head: feature names, means, scales, coefficients,
intercept, alpha; check rows) and ``assets/level_model.json`` (training files and their
SHA-256, feature version, date, seeds, cross-validated metrics), written by
``vocalmix train``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocalmix.core.errors import ModelError
from vocalmix.estimators.features import FEATURE_NAMES, FEATURE_VERSION, features, vocal_excerpts

WEIGHTS = "level_model.npz"
META = "level_model.json"
TARGETS = ("vocal_to_mix_lu", "vocal_to_backing_lu", "vocal_lra_log_ratio")

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
MAX_EXCERPTS = 16
EXCERPT_S, HOP_S = 6.0, 3.0


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


def lra_from_ratio(lra_input_lu: float, log_ratio: float) -> float:
    """Target vocal LRA (LU) from the input's LRA and a predicted log ratio."""
    return float((max(lra_input_lu, 0.0) + 1.0) * np.exp(log_ratio) - 1.0)


def lra_log_ratio(lra_mixed_lu: float, lra_input_lu: float) -> float:
    """``ln((LRA_mixed + 1) / (LRA_input + 1))`` (the LRA head's training target)."""
    return float(np.log((max(lra_mixed_lu, 0.0) + 1.0) / (max(lra_input_lu, 0.0) + 1.0)))


# --- ridge heads ------------------------------------------------------------------------


@dataclass(frozen=True)
class RidgeHead:
    """One ridge regression on a subset of the features.

    ``prediction = ((clip(x[features], lo, hi) - mean) / scale) @ coef + intercept``:
    features are clipped to the range seen in training, so a song unlike every training
    song is not extrapolated linearly into an absurd balance.
    """

    target: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float
    lo: np.ndarray
    hi: np.ndarray

    def columns(self) -> np.ndarray:
        """Indices of this head's features in :data:`FEATURE_NAMES`."""
        return np.array([FEATURE_NAMES.index(f) for f in self.features], dtype=int)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions ``(n,)`` for full feature rows ``(n, len(FEATURE_NAMES))``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))[:, self.columns()]
        x = np.clip(x, self.lo, self.hi)
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


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


@dataclass(frozen=True)
class LevelModel:
    """The three heads, plus the feature version they were trained on."""

    heads: dict[str, RidgeHead]
    feature_version: int = FEATURE_VERSION
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per-head predictions ``(n,)`` for feature rows ``(n, len(FEATURE_NAMES))``."""
        return {t: h.predict(x) for t, h in self.heads.items()}

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """Predictions ``(n, len(TARGETS))`` in :data:`TARGETS` order."""
        p = self.predict(x)
        return np.stack([p[t] for t in TARGETS], axis=1)

    def save(self, folder: str | Path, meta: dict, check_x: np.ndarray | None = None) -> None:
        """Write ``level_model.npz`` and ``level_model.json`` into ``folder``.

        ``check_x``: a few training feature rows stored with their predictions, so that
        a loaded model can be checked against what training computed.
        """
        arrays: dict[str, np.ndarray] = {
            "feature_version": np.array(self.feature_version),
            "feature_names": np.array(self.feature_names),
            "targets": np.array(TARGETS),
        }
        for t, h in self.heads.items():
            arrays.update({f"{t}.features": np.array(h.features), f"{t}.mean": h.mean,
                           f"{t}.scale": h.scale, f"{t}.coef": h.coef,
                           f"{t}.intercept": np.array(h.intercept),
                           f"{t}.alpha": np.array(h.alpha), f"{t}.lo": h.lo,
                           f"{t}.hi": h.hi})
        if check_x is not None:
            arrays["check_x"] = np.asarray(check_x, dtype=np.float64)
            arrays["check_y"] = self.predict_matrix(check_x)
        from vocalmix.core.audio import write_model_files

        write_model_files(folder, WEIGHTS, arrays, META, meta)

    @staticmethod
    def load(folder: str | Path | None = None) -> LevelModel:
        """Load from ``folder`` (default: the package's shipped weights).

        Raises :class:`ModelError` when the files are missing, unreadable, or were
        written for another feature version or feature list (stale).
        """
        d = _load_arrays(folder)
        try:
            version = int(d["feature_version"])
            names = tuple(str(n) for n in d["feature_names"])
            heads = {}
            for t in (str(s) for s in d["targets"]):
                heads[t] = RidgeHead(t, tuple(str(f) for f in d[f"{t}.features"]),
                                     d[f"{t}.mean"], d[f"{t}.scale"], d[f"{t}.coef"],
                                     float(d[f"{t}.intercept"]), float(d[f"{t}.alpha"]),
                                     d[f"{t}.lo"], d[f"{t}.hi"])
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"level model weights are incomplete or from another vocalmix "
                             f"({e}); retrain with 'vocalmix train'") from None
        if version != FEATURE_VERSION or names != FEATURE_NAMES or set(heads) != set(TARGETS):
            raise ModelError(
                f"the level model weights were trained on feature version {version}, this "
                f"vocalmix computes version {FEATURE_VERSION}: they are stale; retrain with "
                "'vocalmix train --data DIR -o MODELDIR'")
        return LevelModel(heads, version, names)


def _load_arrays(folder: str | Path | None) -> dict[str, np.ndarray]:
    from vocalmix.core.audio import load_arrays

    where = "the package" if folder is None else str(folder)
    try:
        return load_arrays(WEIGHTS, folder)
    except (FileNotFoundError, ModuleNotFoundError):
        raise ModelError(f"no level model weights in {where}; train them with "
                         "'vocalmix train --data DIR -o MODELDIR'") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"the level model weights in {where} are unreadable ({e}); "
                         "retrain with 'vocalmix train'") from None


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


# --- inference on a whole song ----------------------------------------------------------


def excerpt_features(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                     max_excerpts: int | None = MAX_EXCERPTS) -> np.ndarray:
    """Feature rows of the excerpts of a song in which the vocal sings."""
    wins = vocal_excerpts(vocal, sample_rate, EXCERPT_S, HOP_S, max_excerpts)
    return np.stack([features(vocal[w], backing[w], sample_rate) for w in wins])


def predict_from_features(model: LevelModel, x: np.ndarray, lra_input_lu: float
                          ) -> dict[str, float]:
    """Song-level targets from excerpt feature rows ``x`` and the whole input vocal's LRA
    (LU): ``vocal_to_mix_lu`` and ``vocal_to_backing_lu`` (mean over excerpts, LU),
    ``vocal_lra_lu`` (LU), ``input_lra_lu`` and ``n_excerpts``. Not clipped."""
    p = model.predict(x)
    return {
        "vocal_to_mix_lu": float(p["vocal_to_mix_lu"].mean()),
        "vocal_to_backing_lu": float(p["vocal_to_backing_lu"].mean()),
        "vocal_lra_lu": lra_from_ratio(lra_input_lu, float(p["vocal_lra_log_ratio"].mean())),
        "input_lra_lu": float(lra_input_lu),
        "n_excerpts": int(len(np.atleast_2d(x))),
    }


def predict_song(model: LevelModel, vocal: np.ndarray, backing: np.ndarray,
                 sample_rate: int) -> dict[str, float]:
    """The model's targets for a whole input pair (numpy only); see
    :func:`predict_from_features`."""
    from vocalmix.core.measure import loudness_range

    x = excerpt_features(vocal, backing, sample_rate)
    return predict_from_features(model, x, loudness_range(vocal, sample_rate))


# --- the shipped model ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _shipped() -> LevelModel:
    return LevelModel.load()


def shipped_model() -> LevelModel:
    """The shipped level model; :class:`ModelError` when missing or stale."""
    return _shipped()


def weights_available() -> bool:
    """Whether usable weights ship with this installation (present and trained on the
    current :data:`~vocalmix.estimators.features.FEATURE_VERSION`)."""
    try:
        _shipped()
        return True
    except ModelError:
        return False


def shipped_metadata() -> dict:
    """The shipped model's metadata (empty if none)."""
    from vocalmix.core.audio import read_package_json

    return read_package_json(META)


def default_method() -> str:
    """``model`` when usable weights ship *and* their leave-one-song-out vocal-to-mix
    error (recorded in the metadata by ``vocalmix train``) is below both the baseline's
    and the constant predictor's; otherwise ``baseline``. A model that loses to the rule
    it is meant to improve on is not made the default."""
    if not weights_available():
        return "baseline"
    s = (shipped_metadata().get("cross_validated") or {}).get("summary") or {}
    try:
        m = s["model"]["vocal_to_mix_lu"]["mae"]
        better = m < s["baseline"]["vocal_to_mix_lu"]["mae"] and m < s["constant"][
            "vocal_to_mix_lu"]["mae"]
    except (KeyError, TypeError):
        return "baseline"
    return "model" if better else "baseline"


# --- estimate: baseline parameters, then the target providers -----------------------------


@dataclass(frozen=True)
class Context:
    """What a target provider sees: the input pair and the parameters so far."""

    vocal: np.ndarray
    backing: np.ndarray
    sample_rate: int
    params: object  # MixParams


Provider = Callable[[Context], tuple[object, list[str]]]


def _level_targets(ctx: Context) -> tuple[object, list[str]]:
    """Replace the level and dynamics targets by the level model's predictions."""
    m = _shipped()
    p = predict_song(m, ctx.vocal, ctx.backing, ctx.sample_rate)
    from vocalmix.core.params import Targets, clip

    v2m = clip(Targets, "vocal_to_mix_lu", p["vocal_to_mix_lu"])
    lra = clip(Targets, "vocal_lra_lu", p["vocal_lra_lu"])
    meta = shipped_metadata()
    n = meta.get("n_songs", "?")
    notes = [
        f"model: vocal-to-mix {v2m:+.2f} LU (vocal-to-backing "
        f"{p['vocal_to_backing_lu']:+.2f} LU) predicted from the backing's brightness, "
        f"density and the vocal's activity over {p['n_excerpts']} excerpt(s)",
        f"model: vocal LRA {lra:.1f} LU (input {p['input_lra_lu']:.1f} LU times the "
        f"predicted mixing ratio); trained on {n} song(s)",
    ]
    if v2m != p["vocal_to_mix_lu"] or lra != p["vocal_lra_lu"]:
        notes.append("model: a prediction was clipped to the valid range")
    params = ctx.params.with_targets(vocal_to_mix_lu=v2m, vocal_lra_lu=lra)  # type: ignore[attr-defined]
    return params, notes


def _eq_correction(ctx: Context) -> tuple[object, list[str]]:
    """Learned corrective EQ first, then the masking reduction on the corrected vocal
    (:func:`vocalmix.estimators.eq.combine_with_masking`); the baseline's masking bands, which
    were computed on the uncorrected vocal, are replaced."""
    import math

    from vocalmix.core.params import EqBand, clip
    from vocalmix.estimators import eq as eqmodel

    m = eqmodel.shipped()
    c = eqmodel.correct(ctx.vocal, ctx.sample_rate, m)
    meta = eqmodel.shipped_metadata()
    cv = meta.get("cross_validated") or {}
    notes = []
    if not c.bands:
        notes.append(f"model EQ: no correction (P(no EQ) = {c.p_clean:.2f}; the model "
                     f"corrects only when P(no EQ) < {m.gate_p_clean:g} and the correction's "
                     f"RMS is at least {m.gate_min_rms_db:g} dB)")
        return ctx.params, notes
    corr, mask, hp, more = eqmodel.combine_with_masking(ctx.vocal, ctx.backing,
                                                        ctx.sample_rate, c.bands)
    p = ctx.params
    hp_hz = hp if math.isfinite(hp) else p.vocal.highpass.cutoff_frequency_hz  # type: ignore[attr-defined]
    bands = tuple(EqBand(kind=k, freq_hz=clip(EqBand, "freq_hz", f),
                         gain_db=clip(EqBand, "gain_db", g), q=clip(EqBand, "q", q),
                         source=src)
                  for src, group in (("correction", corr), ("masking", mask))
                  for k, f, g, q in group)
    vocal = replace(p.vocal, eq_bands=bands,  # type: ignore[attr-defined]
                    highpass=replace(p.vocal.highpass,  # type: ignore[attr-defined]
                                     cutoff_frequency_hz=float(hp_hz)))
    notes.append(
        f"model EQ: {len(corr)} corrective band(s) (P(no EQ) = {c.p_clean:.2f}), then "
        f"{len(mask)} masking band(s) on the corrected vocal; on held-out singers this "
        f"model removed {100 * float(cv.get('fraction_removed', float('nan'))):.0f}% of a "
        "random EQ's damage")
    return replace(p, vocal=vocal), notes + more


def _reverb_model(ctx: Context) -> tuple[object, list[str]]:
    """The learned reverb (:func:`vocalmix.estimators.reverb.reverb_provider`, imported only
    when the model method runs); :class:`ModelError` when its weights are missing."""
    from vocalmix.estimators.reverb import reverb_provider

    return reverb_provider(ctx)


# (name, provider, required). Required providers raise ModelError when unusable; the
# pipeline then falls back to the baseline. Optional ones are skipped with a note.
PROVIDERS: list[tuple[str, Provider, bool]] = [
    ("level", _level_targets, True),
    ("EQ", _eq_correction, False),
    ("reverb", _reverb_model, False),
]


def estimate(vocal: np.ndarray, backing: np.ndarray, sample_rate: int):
    """Model targets on top of the baseline's settings: ``(MixParams, notes)``.

    EQ, reverb and compressor ballistics come from :func:`vocalmix.estimators.baseline.estimate`;
    each provider of :data:`PROVIDERS` then replaces what it predicts (the level provider:
    ``targets.vocal_to_mix_lu`` and ``targets.vocal_lra_lu``, clipped to the ranges
    MixParams accepts). Raises :class:`ModelError` when the level weights are missing or
    stale, before any analysis.
    """
    from vocalmix.estimators import baseline

    _shipped()  # fail fast: the pipeline falls back to the baseline with this message
    params, _analysis = baseline.estimate(vocal, backing, sample_rate)
    notes: list[str] = []
    for name, provider, required in PROVIDERS:
        try:
            params, more = provider(Context(vocal, backing, sample_rate, params))
        except ModelError as e:
            if required:
                raise
            more = [f"{name}: {e}; kept the baseline's choice"]
        notes.extend(more)
    notes.extend(params.provenance.notes)
    params = replace(params, provenance=replace(params.provenance, method="model",
                                                notes=tuple(notes)))
    return params, notes


__all__ = [
    "DEFAULT_ALPHA",
    "HEAD_FEATURES",
    "LRA_FEATURES",
    "LEVEL_FEATURES",
    "PROVIDERS",
    "TARGETS",
    "Context",
    "LevelModel",
    "RidgeHead",
    "default_method",
    "estimate",
    "excerpt_features",
    "fit_head",
    "fit_level_model",
    "lra_from_ratio",
    "lra_log_ratio",
    "predict_from_features",
    "predict_song",
    "shipped_metadata",
    "shipped_model",
    "song_weights",
    "v2b_to_v2m",
    "v2m_to_v2b",
    "weights_available",
]
