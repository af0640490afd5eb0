"""The data-driven estimator: small regressors run with numpy, weights shipped in the package.

The level model predicts, from level-invariant features (:mod:`vocalmix.features`), the
human mix's vocal-to-backing loudness ratio (LU) and the mixed vocal's loudness range
(LU). :func:`estimate` hands them to the core as targets: ``vocal_to_mix_lu`` from the
vocal-to-backing ratio ``v`` by power addition of uncorrelated parts,
``v2m = v - 10 log10(10^(v/10) + 1)``, and ``vocal_lra_lu``; the resolvers turn them
into a gain and a compressor threshold. EQ and reverb come from the baseline until a
learned EQ and reverb predictor ship (issue 4): they plug in as further "target
providers" in :func:`estimate`.

Weights: ``assets/level_model.npz`` (feature means and scales, ridge coefficients,
intercepts) and ``assets/level_model.json`` (training files and their hashes, feature
version, date, seed, cross-validated metrics), written by ``vocalmix train``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ModelError
from .features import FEATURE_NAMES, FEATURE_VERSION, features

TARGETS = ("vocal_to_backing_lu", "vocal_lra_lu")
WEIGHTS = "level_model.npz"
META = "level_model.json"


def v2b_to_v2m(v2b_lu: float) -> float:
    """Vocal-to-mix (LU) of a vocal at ``v2b_lu`` against an uncorrelated backing."""
    return float(v2b_lu - 10.0 * np.log10(10.0 ** (v2b_lu / 10.0) + 1.0))


def v2m_to_v2b(v2m_lu: float) -> float:
    """Inverse of :func:`v2b_to_v2m` (``v2m_lu`` < 0)."""
    r = 10.0 ** (v2m_lu / 10.0)
    return float(10.0 * np.log10(r / (1.0 - r)))


@dataclass(frozen=True)
class LevelModel:
    """Ridge regression on standardised features, one output per target."""

    mean: np.ndarray  # (n_features,)
    scale: np.ndarray  # (n_features,)
    coef: np.ndarray  # (n_features, n_targets)
    intercept: np.ndarray  # (n_targets,)
    feature_names: tuple[str, ...]
    feature_version: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions ``(n, n_targets)`` for features ``(n, n_features)`` (numpy only)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def save(self, folder: Path, meta: dict) -> None:
        """Write the weights and metadata files into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / WEIGHTS, mean=self.mean, scale=self.scale, coef=self.coef,
                 intercept=self.intercept, feature_version=np.array(self.feature_version),
                 feature_names=np.array(self.feature_names))
        (folder / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @staticmethod
    def load(folder: Path | None = None) -> LevelModel:
        """Load from ``folder`` (default: the package's shipped weights)."""
        try:
            if folder is None:
                from importlib.resources import as_file, files

                with as_file(files("vocalmix").joinpath("assets", WEIGHTS)) as p:
                    d = dict(np.load(p))
            else:
                d = dict(np.load(Path(folder) / WEIGHTS))
        except (FileNotFoundError, OSError, ValueError) as e:
            raise ModelError(f"level model weights not found or unreadable ({e}); "
                             "train them with 'vocalmix train'") from None
        return LevelModel(d["mean"], d["scale"], d["coef"], d["intercept"],
                          tuple(str(n) for n in d["feature_names"]),
                          int(d["feature_version"]))


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float = 10.0) -> LevelModel:
    """Closed-form ridge regression (``alpha`` per example, on standardised features)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    xs = (x - mean) / scale
    ym = y.mean(axis=0)
    a = xs.T @ xs + alpha * len(x) * np.eye(x.shape[1])
    coef = np.linalg.solve(a, xs.T @ (y - ym))
    return LevelModel(mean, scale, coef, ym, FEATURE_NAMES, FEATURE_VERSION)


@lru_cache(maxsize=1)
def _shipped() -> LevelModel:
    m = LevelModel.load()
    if m.feature_version != FEATURE_VERSION or m.feature_names != FEATURE_NAMES:
        raise ModelError(
            f"the shipped level model was trained on feature version {m.feature_version}, "
            f"this vocalmix computes version {FEATURE_VERSION}: retrain with 'vocalmix train'")
    return m


def weights_available() -> bool:
    """Whether usable weights ship with this installation."""
    try:
        _shipped()
        return True
    except ModelError:
        return False


def shipped_metadata() -> dict:
    """The shipped model's metadata (empty if none)."""
    from importlib.resources import files

    try:
        return json.loads(files("vocalmix").joinpath("assets", META).read_text("utf-8"))
    except (FileNotFoundError, OSError, ValueError):
        return {}


def default_method() -> str:
    """``model`` when usable weights ship *and* their leave-one-song-out vocal-to-mix
    error is below the baseline's (recorded in the metadata by ``vocalmix train``);
    otherwise ``baseline``. A model that loses to the rule it should improve on is not
    made the default."""
    if not weights_available():
        return "baseline"
    cv = (shipped_metadata().get("cross_validated") or {}).get("summary") or {}
    try:
        better = (cv["model"]["vocal_to_mix_lu"]["mae"]
                  < cv["baseline"]["vocal_to_mix_lu"]["mae"])
    except (KeyError, TypeError):
        return "baseline"
    return "model" if better else "baseline"


def predict_levels(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                   model: LevelModel | None = None) -> dict[str, float]:
    """Predicted vocal-to-backing (LU) and vocal LRA (LU) for one pair."""
    m = model or _shipped()
    p = m.predict(features(vocal, backing, sample_rate))[0]
    return dict(zip(TARGETS, (float(p[0]), float(p[1])), strict=True))


def estimate(vocal: np.ndarray, backing: np.ndarray, sample_rate: int):
    """Targets from the model (EQ and reverb from the baseline); see the module doc."""
    from . import baseline

    m = _shipped()  # raises ModelError when missing or stale: the pipeline falls back
    params, _a = baseline.estimate(vocal, backing, sample_rate)
    pred = predict_levels(vocal, backing, sample_rate, m)
    v2m = float(np.clip(v2b_to_v2m(pred["vocal_to_backing_lu"]), -20.0, -0.5))
    lra = float(np.clip(pred["vocal_lra_lu"], 1.0, 30.0))
    notes = [
        f"model: vocal-to-backing {pred['vocal_to_backing_lu']:+.2f} LU -> vocal-to-mix "
        f"{v2m:+.2f} LU; vocal LRA {lra:.1f} LU (EQ and reverb from the baseline)",
        *params.provenance.notes,
    ]
    params = params.with_targets(vocal_to_mix_lu=v2m, vocal_lra_lu=lra)
    params = replace(params, provenance=replace(params.provenance, method="model",
                                                notes=tuple(notes)))
    return params, notes
