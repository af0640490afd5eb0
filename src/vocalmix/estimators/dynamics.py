"""The dynamics model's inference: how much spread a finished vocal of this kind keeps.

The statistic
-------------
The model predicts the vocal's **momentary loudness range** after compression
(:func:`vocalmix.core.measure.momentary_loudness_range`: EBU Tech 3342's LRA recipe, gates
and 10th-95th percentiles, on 400 ms momentary loudness instead of 3 s short-term
loudness, above the recording's steady floor), the spread of its loudness *while it
sings*, syllable by syllable. That is
what a 7 s excerpt can carry: about 66 momentary values against 41 short-term values
that overlap so much that two of them are independent (LRA on the 88 seven-second
stems is 1.5 LU at the median, a number about the window, not the singing). The
compressor is then resolved to it (:func:`vocalmix.core.resolve.resolve_compressor`,
``statistic="momentary_range"``, through ``targets.vocal_momentary_range_lu``). LRA
is still measured and reported; where an input is long, it follows the momentary range
down (the compressor acts on both).

The model
---------
A ridge regression of the log momentary range a finished vocal ends with on
(:data:`FEATURES`): the input vocal's own log momentary range and its peak-to-loudness
ratio (a compressed, finished vocal has a lower one than a raw take with the same
spread), the vocal's activity, and the backing's log momentary range and
peak-to-loudness ratio (dense, compressed backings go with tighter vocals). It is
trained (:mod:`vocalmix.training.dynamics`) on the 88 professionally mixed vocal stems
as they are (the target is their own range: a finished vocal is left alone) and on
versions of them made to look like raw takes by an upward expander with the engineers'
ballistics (the target is still the finished range). Features are clipped to the
training range. A vocal already at or under the predicted target is left alone by the
resolver (it never expands).

Files: :data:`FILES` (``assets/dynamics_model.npz`` and ``.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocalmix.estimators.weights import ModelFiles

DYNAMICS_VERSION = 2  # 2: the activity feature counts room tone as silence
FILES = ModelFiles("dynamics model", "dynamics_model.npz", "dynamics_model.json", "dynamics")
FEATURES: tuple[str, ...] = ("log_vocal_mlr", "vocal_plr_db", "vocal_activity",
                             "log_backing_mlr", "backing_plr_db")
#: floor of a momentary range before its logarithm, LU
_MLR_FLOOR_LU = 0.5


def peak_to_loudness_db(x: np.ndarray, sample_rate: int) -> float:
    """The 99.9th percentile of ``|x|`` in dBFS minus the integrated loudness (LUFS):
    a peak-to-loudness ratio robust to a few stray samples, dB (``nan`` when silent).

    The percentile is ``np.quantile(np.abs(np.asarray(x, dtype=np.float32)), 0.999)``
    (the model was trained on it), computed bit for bit from the top values only by
    :func:`vocalmix.core.measure.upper_quantile`. The loudness is gated level-free
    (:func:`~vocalmix.core.measure.level_free_loudness`): a take recorded too quietly,
    its loudest block under -20 LUFS, reads the ratio it would read louder (BS.1770-4's
    -70 LUFS gate cut its quieter phrases off 45 dB down, and the ratio fell by 2 dB)."""
    from vocalmix.core.measure import level_free_loudness, upper_quantile

    i = level_free_loudness(x, sample_rate)
    if not np.isfinite(i):
        return float("nan")
    q = float(upper_quantile(x, 0.999, absolute=True, dtype=np.float32))
    if not q > 0:
        return float("nan")
    return 20.0 * math.log10(q) - float(i)


#: momentary blocks more than this under a vocal's loudest (LU) are its recording's
#: silence for :func:`vocal_activity`: digital zeros in a mixed stem, room tone and hiss
#: in a raw take (a take's waiting through the intro reads as silence either way). A
#: quiet take's room tone can sit 35 LU under its loudest block; of the 88 mixed stems,
#: 15 have blocks between this and the old floor (none), which moves their activity by
#: 0.15 at most (the model is trained on the feature as defined here)
ACTIVITY_FLOOR_LU = 30.0


def vocal_activity(x: np.ndarray, sample_rate: int) -> float:
    """The share of 400 ms momentary blocks (every 100 ms) within 20 LU of the loudest,
    among the blocks that are not silence (within :data:`ACTIVITY_FLOOR_LU` of it, and
    above the recording's steady floor, :func:`~vocalmix.core.measure.
    momentary_above_floor`).

    Gain-invariant. Counting every block with any sound, a take with room tone through a
    15 s intro read 0.43 where the same take over digital silence read 0.85, and the
    dynamics model, which learned the feature on mixed stems (whose pauses are digital
    zeros), then asked for a third more loudness range."""
    from vocalmix.core.measure import BlockStats, momentary_above_floor

    st = BlockStats.of(x, sample_rate)
    m = np.asarray(momentary_above_floor(st.energy, st.segment_len))
    m = m[np.isfinite(m)]
    if not m.size:
        return 0.0
    top = m.max()
    m = m[m > top - ACTIVITY_FLOOR_LU]
    return float(np.mean(m > top - 20.0))


def features(vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> np.ndarray:
    """The model's input (:data:`FEATURES`) for a vocal and its backing; raises
    :class:`~vocalmix.core.errors.AnalysisError` when either has no loudness to read
    (silent, or below BS.1770-4's absolute gate of -70 LUFS): the model method then keeps
    the baseline's dynamics target."""
    from vocalmix.core.measure import momentary_loudness_range

    row = np.array([
        math.log(max(momentary_loudness_range(vocal, sample_rate), _MLR_FLOOR_LU)),
        peak_to_loudness_db(vocal, sample_rate),
        vocal_activity(vocal, sample_rate),
        math.log(max(momentary_loudness_range(backing, sample_rate), _MLR_FLOOR_LU)),
        peak_to_loudness_db(backing, sample_rate),
    ])
    if not np.all(np.isfinite(row)):
        from vocalmix.core.errors import AnalysisError

        raise AnalysisError("the vocal or the backing has no loudness to read (silent, or "
                            "below the -70 LUFS gate): no dynamics to read")
    return row


@dataclass(frozen=True)
class DynamicsModel:
    """Ridge regression of the log momentary range on standardised, clipped features.

    Attributes:
        mean, scale, lo, hi: the features' training mean, sd and range.
        coef, intercept: the regression, log LU.
        residual_sd: sd of the cross-validated log errors (the model's uncertainty).
        meta: what training wrote (empty for a model not loaded from files).
    """

    mean: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    coef: np.ndarray
    intercept: float
    residual_sd: float = 0.3
    version: int = DYNAMICS_VERSION
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """Predicted log momentary range for feature rows ``(n, 5)``."""
        z = (np.clip(np.atleast_2d(x), self.lo, self.hi) - self.mean) / self.scale
        return z @ self.coef + self.intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted momentary range, LU, for feature rows."""
        return np.exp(self.predict_log(x))

    def save(self, folder: str | Path, meta: dict, check_x: np.ndarray) -> None:
        """Write the weights and ``meta`` into ``folder`` with check rows."""
        arrays = {"mean": self.mean, "scale": self.scale, "lo": self.lo, "hi": self.hi,
                  "coef": self.coef, "intercept": np.array(self.intercept),
                  "residual_sd": np.array(self.residual_sd),
                  "version": np.array(self.version), "features": np.array(FEATURES),
                  "check_x": np.asarray(check_x, dtype=np.float64),
                  "check_y": self.predict_log(check_x)}
        FILES.save(folder, arrays, meta)

    @staticmethod
    def load(folder: str | Path | None = None) -> DynamicsModel:
        """Load from ``folder`` (default: the package's); :class:`ModelError` when
        missing, unreadable, incomplete or stale."""
        d, meta = FILES.load(folder)
        try:
            version = int(d["version"])
            names = tuple(str(s) for s in d["features"])
            a = {k: np.asarray(d[k], dtype=np.float64) for k in
                 ("mean", "scale", "lo", "hi", "coef")}
            m = DynamicsModel(a["mean"], a["scale"], a["lo"], a["hi"], a["coef"],
                              float(d["intercept"]), float(d["residual_sd"]), version, meta)
        except (KeyError, ValueError, TypeError) as e:
            raise FILES.incomplete(folder, e) from None
        if version != DYNAMICS_VERSION or names != FEATURES:
            raise FILES.stale(folder, f"version {version}, this vocalmix computes "
                                      f"{DYNAMICS_VERSION}")
        return m


@lru_cache(maxsize=1)
def shipped_model() -> DynamicsModel:
    """The shipped dynamics model, loaded once."""
    return DynamicsModel.load()


@dataclass(frozen=True)
class DynamicsChoice:
    """What the model chose for one vocal.

    Attributes:
        target_lu: the momentary loudness range to compress to, LU.
        input_lu: the vocal's own momentary range, LU.
        features: the feature row, by name.
    """

    target_lu: float
    input_lu: float
    features: dict[str, float]


def predict_dynamics(model: DynamicsModel, vocal: np.ndarray, backing: np.ndarray,
                     sample_rate: int) -> DynamicsChoice:
    """The momentary-range target for ``vocal`` in ``backing`` (not clipped)."""
    f = features(vocal, backing, sample_rate)
    return DynamicsChoice(float(model.predict(f)[0]), float(math.exp(f[0])),
                          dict(zip(FEATURES, f.tolist(), strict=True)))


__all__ = ["ACTIVITY_FLOOR_LU", "FEATURES", "FILES", "DynamicsChoice", "DynamicsModel", "features",
           "peak_to_loudness_db", "predict_dynamics", "shipped_model", "vocal_activity"]
