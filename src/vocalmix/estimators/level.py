"""The level model's inference: small ridge regressors run with numpy, weights shipped in
the package.

What it predicts
    From level-invariant features (:mod:`vocalmix.estimators.features`) of 6 s excerpts
    of the vocal and the backing, three *heads* (one ridge regression each,
    :class:`RidgeHead`):

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
    which the vocal sings (:func:`vocalmix.estimators.features.vocal_excerpts`), the same
    rule the training examples were cut by. Each head clips its features to the range
    seen in training (no linear extrapolation).

How it is fitted and how well it does: :mod:`vocalmix.training.level` and
``docs/evaluation/report.md``.

Files (:data:`FILES`): ``assets/level_model.npz`` (per head: feature names, means,
scales, coefficients, intercept, alpha, training range; check rows) and
``assets/level_model.json`` (training files and their SHA-256, feature version, date,
seeds, cross-validated metrics), written by ``vocalmix train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocalmix.estimators.features import FEATURE_NAMES, FEATURE_VERSION, features, vocal_excerpts
from vocalmix.estimators.weights import ModelFiles

FILES = ModelFiles("level model", "level_model.npz", "level_model.json", "level")
TARGETS = ("vocal_to_mix_lu", "vocal_to_backing_lu", "vocal_lra_log_ratio")
MAX_EXCERPTS = 16
EXCERPT_S, HOP_S = 6.0, 3.0


def lra_from_ratio(lra_input_lu: float, log_ratio: float) -> float:
    """Target vocal LRA (LU) from the input's LRA and a predicted log ratio."""
    return float((max(lra_input_lu, 0.0) + 1.0) * np.exp(log_ratio) - 1.0)


def lra_log_ratio(lra_mixed_lu: float, lra_input_lu: float) -> float:
    """``ln((LRA_mixed + 1) / (LRA_input + 1))`` (the LRA head's training target; the
    inverse of :func:`lra_from_ratio`)."""
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


@dataclass(frozen=True)
class LevelModel:
    """The three heads, the feature version they were trained on, and the metadata
    training wrote (empty for a model not loaded from files)."""

    heads: dict[str, RidgeHead]
    feature_version: int = FEATURE_VERSION
    feature_names: tuple[str, ...] = FEATURE_NAMES
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per-head predictions ``(n,)`` for feature rows ``(n, len(FEATURE_NAMES))``."""
        return {t: h.predict(x) for t, h in self.heads.items()}

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """Predictions ``(n, len(TARGETS))`` in :data:`TARGETS` order."""
        p = self.predict(x)
        return np.stack([p[t] for t in TARGETS], axis=1)

    def save(self, folder: str | Path, meta: dict, check_x: np.ndarray | None = None) -> None:
        """Write ``level_model.npz`` and ``level_model.json`` (``meta``) into ``folder``.

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
        FILES.save(folder, arrays, meta)

    @staticmethod
    def load(folder: str | Path | None = None) -> LevelModel:
        """Load from ``folder`` (default: the package's shipped weights).

        Raises :class:`~vocalmix.core.errors.ModelError` when the files are missing,
        unreadable, incomplete, or were written for another feature version or feature
        list (stale).
        """
        d, meta = FILES.load(folder)
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
            raise FILES.incomplete(folder, e) from None
        if version != FEATURE_VERSION or names != FEATURE_NAMES or set(heads) != set(TARGETS):
            raise FILES.stale(folder, f"trained on feature version {version}, this vocalmix "
                                      f"computes version {FEATURE_VERSION}")
        return LevelModel(heads, version, names, meta)


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
def shipped_model() -> LevelModel:
    """The shipped level model, loaded once; :class:`~vocalmix.core.errors.ModelError`
    when missing or stale."""
    return LevelModel.load()


__all__ = [
    "FILES",
    "TARGETS",
    "LevelModel",
    "RidgeHead",
    "excerpt_features",
    "lra_from_ratio",
    "lra_log_ratio",
    "predict_from_features",
    "predict_song",
    "shipped_model",
]
