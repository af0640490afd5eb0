"""The reverb model's inference: what reverb is on a wet vocal, and what reverb to put
on a vocal for a given backing.

Two stages, both shipped as numpy weights (:data:`FILES`: ``assets/reverb_model.npz``,
metadata in ``assets/reverb_model.json``) and loaded once (:func:`shipped_model`; a
missing or stale file raises :class:`~vocalmix.core.errors.ModelError`).

1. The estimator: from a wet vocal, the four parameters of MixParams' ``synthetic``
   reverb (:data:`PARAMS`):

   * ``decay_s``: T30 at 1 kHz, s (predicted as its logarithm);
   * ``hf_ratio``: the damping figure, T30 in the 4 kHz octave over T30 at 1 kHz
     (predicted as its logarithm). It is mapped onto ``band_decay_ratios`` by the
     one-parameter family of :func:`band_ratios_for_hf`: flat below 1 kHz, ``hf_ratio **
     (log2(f / 1 kHz) / 2)`` above (2 kHz: its square root, 4 kHz: itself, 8 kHz: its
     1.5th power), the way a one-pole damping filter in a feedback reverb shortens the
     decay more the higher the frequency;
   * ``pre_delay_ms``: delay of the reverb's onset after the direct sound, ms;
   * ``wet_level_db``: reverberant-to-direct energy ratio of the send, dB.

   Features (:func:`estimator_features`, :data:`FEATURE_NAMES`) are level-invariant
   statistics of the energy envelopes (5 ms hop, 16 ms Hann frames at 16 kHz, power
   averaged over the channels so a decorrelated stereo reverb keeps its per-channel
   level): in a broadband and five octave bands (250 Hz-4 kHz), the modulation spectrum
   of each envelope (reverberation low-passes the envelope: the modulation transfer
   function falls with decay time and rises back toward 1 with the direct-to-reverberant
   ratio) and its level percentiles (how far the gaps between phrases are filled); in a
   broadband and ten half-octave bands (200 Hz-6.4 kHz), percentiles of the falling
   slopes (least-squares over 30, 60, 120 and 240 ms) and of the rising ones (the
   steepest falls are bounded by the decay, after Eaton et al.'s spectral decay
   distribution); and the median broadband envelope after the clearest phrase ends (the
   drop at an offset is the wet level, the plateau after it the pre-delay, the slope the
   decay). A small MLP (:class:`MLP`: one hidden tanh layer) maps the features, clipped
   to the training range and standardised, to the standardised targets.

2. The choice model (:class:`ChoiceModel`): ridge regressions, one per parameter, that
   predict the reverb engineers chose from the backing (:data:`CHOICE_FEATURES`: tempo,
   onset density, and the backing's own reverberance as read by the same estimator),
   features clipped to the training range, intercepts shrunk toward the engineers' own
   sends (the DiffVox presets: :mod:`vocalmix.estimators.vocalprior`). Its targets are
   the log decay, log damping figure, pre-delay and wet level
   (:func:`choice_targets`). The vocal is not a feature: the mixed stems it learns from
   carry the engineers' reverb, so anything read on them would read the answer.

:func:`predict_reverb` applies both to a backing; the ``model`` method's reverb provider
(:func:`vocalmix.estimators.registry.reverb_provider`) turns that into MixParams.
Training (the wet examples, the network's fit, reading the engineers' choices on mixed
stems) is :mod:`vocalmix.training.reverb`; the held-out figures are in
``docs/evaluation/reverb_report.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vocalmix.core.dsp import equal_channels, frame_power
from vocalmix.estimators.weights import ModelFiles

#: bump when the features, the label definitions or the weight format change (2: wet
#: level as a vocal-weighted reverberant-to-direct ratio; the choice model's decay target
#: is the log decay itself, not its ratio to the tempo rule)
ESTIMATOR_VERSION = 2
FILES = ModelFiles("reverb model", "reverb_model.npz", "reverb_model.json", "reverb")

PARAMS: tuple[str, ...] = ("decay_s", "hf_ratio", "pre_delay_ms", "wet_level_db")

ANALYSIS_SR = 16000  # Hz, the rate the envelopes are computed at
_NFFT = 256  # 16 ms
_HOP = 80  # 5 ms
_FLOOR_DB = -80.0
_BANDS: dict[str, tuple[float, float]] = {
    "bb": (100.0, 7600.0), "o250": (177.0, 354.0), "o500": (354.0, 707.0),
    "o1k": (707.0, 1414.0), "o2k": (1414.0, 2828.0), "o4k": (2828.0, 5657.0),
}
#: half-octave bands (Hz edges) of the slope statistics, plus the broadband
_SLOPE_EDGES_HZ = tuple(float(f) for f in np.geomspace(200.0, 6400.0, 11))
_MOD_EDGES_HZ = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_SLOPE_FRAMES = (6, 12, 24, 48)
_FALL_PCTS = (50, 70, 85, 95, 99)
_LEVEL_PCTS = (5, 10, 25, 50)
_OFFSET_LAGS_MS = (0, 10, 20, 30, 50, 80, 120, 200, 300)
_MAX_ANALYSIS_S = 90.0


def _slope_band_names() -> list[str]:
    e = _SLOPE_EDGES_HZ
    return ["bb"] + [f"{round(lo)}-{round(hi)}Hz" for lo, hi in zip(e[:-1], e[1:], strict=True)]


def _feature_names() -> tuple[str, ...]:
    names: list[str] = []
    mods = [f"{lo:g}-{hi:g}Hz" for lo, hi in zip(_MOD_EDGES_HZ[:-1], _MOD_EDGES_HZ[1:],
                                                   strict=True)]
    for b in _BANDS:
        names += [f"{b}_mod_pow_{m}" for m in mods] + [f"{b}_mod_depth"]
        names += [f"{b}_mod_db_{m}" for m in mods]
    for k in _SLOPE_FRAMES:
        for b in _slope_band_names():
            names += [f"{b}_fall{k * 5}ms_p{p}" for p in _FALL_PCTS] + [f"{b}_rise{k * 5}ms_p80"]
    for b in _BANDS:
        names += [f"{b}_level_p{p}" for p in _LEVEL_PCTS]
    names += [f"offset_{m}ms" for m in _OFFSET_LAGS_MS] + ["offsets_per_s"]
    return tuple(names)


FEATURE_NAMES: tuple[str, ...] = _feature_names()


# --- the damping family ------------------------------------------------------------------


def band_ratios_for_hf(hf_ratio: float) -> tuple[float, ...]:
    """``band_decay_ratios`` (one per :data:`vocalmix.core.params.DECAY_BANDS_HZ`) of the
    one-parameter damping family: 1 at and below 1 kHz, ``hf_ratio ** (log2(f/1k) / 2)``
    above (so ``hf_ratio`` itself at 4 kHz), each clipped to the params' 0.1..4."""
    from vocalmix.core.params import BAND_DECAY_RATIO, DECAY_BANDS_HZ

    lo, hi = BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi
    h = float(np.clip(hf_ratio, lo, hi))  # the 4 kHz band's ratio
    out = []
    for f in DECAY_BANDS_HZ:
        r = 1.0 if f <= 1000.0 else h ** (math.log2(f / 1000.0) / 2.0)
        out.append(round(float(np.clip(r, lo, hi)), 4))
    return tuple(out)


def hf_ratio_of(band_decay_ratios: tuple[float, ...]) -> float:
    """The damping figure of a ratio tuple: its 4 kHz entry (the 1 kHz entry is 1)."""
    return float(band_decay_ratios[5])


# --- features ----------------------------------------------------------------------------


def _envelopes_db(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Band energy envelopes in dB re the broadband maximum: ``(len(_BANDS), frames)``
    (broadband and octaves) and ``(11, frames)`` (broadband and the half-octave bands of
    the slope statistics)."""
    import soxr

    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.shape[0] > _MAX_ANALYSIS_S * sample_rate:  # the middle 90 s
        k = int(_MAX_ANALYSIS_S * sample_rate)
        s = (a.shape[0] - k) // 2
        a = a[s: s + k]
    p = None
    # a mono take read as stereo: its second channel's power is the first's, added as is
    # (the same sum to the bit) without resampling and transforming it again
    twin = equal_channels(a)
    for c in range(1 if twin else a.shape[1]):
        y = a[:, c]
        if sample_rate != ANALYSIS_SR:
            y = soxr.resample(y, sample_rate, ANALYSIS_SR, quality="LQ")
        n = (len(y) - _NFFT) // _HOP
        if n < 400:
            raise ValueError("signal too short for a reverb estimate (need 2 s at least)")
        pc = frame_power(y, _NFFT, _HOP, n_frames=n, square_after_cast=True)
        p = pc if p is None else p + pc
    assert p is not None
    if twin:
        p = p + p
    f = np.fft.rfftfreq(_NFFT, 1.0 / ANALYSIS_SR)
    env = np.stack([p[:, (f >= lo) & (f < hi)].sum(axis=1) for lo, hi in _BANDS.values()])
    e = _SLOPE_EDGES_HZ
    half = np.stack([env[0]] + [p[:, (f >= lo) & (f < hi)].sum(axis=1)
                                for lo, hi in zip(e[:-1], e[1:], strict=True)])
    ref = float(env[0].max())
    if not ref > 0:
        raise ValueError("signal is silent")
    floor = 10.0 ** (_FLOOR_DB / 10.0)
    return (10.0 * np.log10(np.maximum(env / ref, floor)),
            10.0 * np.log10(np.maximum(half / ref, floor)))


def _smooth(e: np.ndarray, k: int = 3) -> np.ndarray:
    return np.convolve(e, np.ones(k) / k, mode="same")


def phrase_ends(bb_db: np.ndarray, window: int = 60, min_drop_db: float = 6.0,
                rise_db: float = 2.0) -> np.ndarray:
    """Frames where a phrase ends: the level was within 25 dB of the top, has just
    fallen, and does not rise again by more than ``rise_db`` over the next ``window``
    frames while falling by ``min_drop_db`` (a free decay, no new note).

    The frames are scanned from the 10th on; a phrase end found skips the next
    ``window // 2`` frames. Every frame's test is made at once (the same arithmetic on
    the same values as frame by frame), then the scan only walks the frames that pass
    (a Python loop over every frame held the interpreter for about 30 ms of a mix)."""
    e = _smooth(bb_db, 3)
    n = len(e)
    top = float(np.percentile(e, 95))
    ts = np.arange(9, max(9, n - window))
    if ts.size == 0:
        return np.zeros(0, dtype=int)
    c = np.concatenate([[0.0], np.cumsum(e)])
    pre = (c[ts - 1] - c[ts - 8]) / 7.0  # the mean of the 7 frames before
    # within 25 dB of the top and just fallen by more than 1 dB (NaN compares false)
    near = ~((pre < top - 25.0) | (e[ts] > pre - 1.0))
    ts, pre = ts[near], pre[near]
    seg = np.lib.stride_tricks.sliding_window_view(e, window)[ts]  # the next frames
    rises = (seg - np.minimum.accumulate(seg, axis=1) > rise_db).any(axis=1)
    ok = ts[~(rises | (seg[:, -1] > pre - min_drop_db))]
    out = []
    free = 0  # the first frame the scan may take
    for t in ok.tolist():
        if t >= free:
            out.append(t)
            free = t + window // 2
    return np.array(out, dtype=int)


def _row_percentiles(s: np.ndarray, count: np.ndarray, pct: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(s[r, :count[r]], pct)`` for every row ``r`` of ``s`` (each row
    sorted ascending, its first ``count[r]`` values the data, anything after), bit for
    bit, ``(rows, len(pct))``: numpy's ``linear`` virtual index ``(n - 1) q``, its
    neighbours (both the last value at or past it, the weight then reckoned from index
    -1 as numpy does) and interpolation (``a + (b - a) g``, or ``b - (b - a)(1 - g)`` for
    a weight ``g >= 0.5``), without a call per row: the reverb features read 88 per
    excerpt, 1,600 per mix, where numpy's argument handling and partition took most of
    the time. A row with no values gives NaN or a value of no meaning."""
    q = np.true_divide(np.asarray(pct), 100)  # as numpy.percentile scales them
    last = (np.asarray(count) - 1)[:, None]
    virtual = last * q[None, :]
    prev = np.floor(virtual)
    at_end = virtual >= last
    lo_i = np.where(at_end, last, prev).astype(np.intp)
    hi_i = np.where(at_end, last, prev + 1).astype(np.intp)
    gamma = virtual - np.where(at_end, -1.0, prev)
    rows = np.arange(s.shape[0])[:, None]
    lo, hi = s[rows, lo_i], s[rows, hi_i]
    diff = hi - lo
    out = lo + diff * gamma
    np.subtract(hi, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def estimator_features(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The estimator's features (:data:`FEATURE_NAMES`) of a (wet) vocal, float64.

    ``x``: ``(n,)`` or ``(n, channels)`` at ``sample_rate``; at least 2 s (the middle
    90 s of a longer signal are analysed). Level-invariant (every value is a shape, a
    rate or a level relative to the signal's own maximum). Raises ``ValueError`` on a
    signal that is too short or silent.
    """
    env, half = _envelopes_db(x, sample_rate)
    nb, n = env.shape
    fr = ANALYSIS_SR / _HOP
    out: list[float] = []
    nfft = 1 << int(math.ceil(math.log2(n)))
    mf = np.fft.rfftfreq(nfft, 1.0 / fr)
    sel = [(mf >= lo) & (mf < hi) for lo, hi in zip(_MOD_EDGES_HZ[:-1], _MOD_EDGES_HZ[1:],
                                                     strict=True)]
    all_sel = (mf >= _MOD_EDGES_HZ[0]) & (mf < _MOD_EDGES_HZ[-1])
    hann = np.hanning(n)
    for b in range(nb):
        p = 10.0 ** (env[b] / 10.0)
        p = p / p.mean()
        s = np.abs(np.fft.rfft((p - 1.0) * hann, nfft)) ** 2
        tot = float(s[all_sel].sum()) + 1e-12
        out += [10.0 * math.log10(float(s[m].sum()) / tot + 1e-9) for m in sel]
        out.append(10.0 * math.log10(tot / n + 1e-12))
        e = env[b] - env[b].mean()
        s = np.abs(np.fft.rfft(e * hann, nfft)) ** 2
        tot = float(s[all_sel].sum()) + 1e-12
        out += [10.0 * math.log10(float(s[m].sum()) / tot + 1e-9) for m in sel]
    # each row's 95th percentile, once for every slope length (one call over the rows:
    # the same order statistics and interpolation as a call per row)
    half_top = np.percentile(half, 95, axis=1)
    for k in _SLOPE_FRAMES:
        tt = (np.arange(k) - (k - 1) / 2.0) * (_HOP / ANALYSIS_SR)
        ker = tt / (tt**2).sum()
        sl = np.stack([np.convolve(e, ker[::-1], mode="valid") for e in half])  # dB/s
        lev = np.stack([np.convolve(e, np.ones(k) / k, mode="valid") for e in half])
        act = lev > (half_top - 40.0)[:, None]
        falling, rising = act & (sl < 0), act & (sl > 0)
        # every band's falling and rising slopes at once: each row sorted with NaN after
        # its values, then numpy's percentiles read off the rows (_row_percentiles)
        fall = _row_percentiles(np.sort(np.where(falling, -sl, np.nan), axis=1),
                                falling.sum(axis=1), _FALL_PCTS)
        rise = _row_percentiles(np.sort(np.where(rising, sl, np.nan), axis=1),
                                rising.sum(axis=1), (80,))[:, 0]
        for b, (n_fall, n_rise) in enumerate(zip(falling.sum(axis=1), rising.sum(axis=1),
                                                 strict=True)):
            if n_fall >= 10 and n_rise >= 10:
                out += list(np.log(fall[b] + 1.0))
                out.append(math.log(float(rise[b]) + 1.0))
            else:
                out += [math.log(61.0)] * (len(_FALL_PCTS) + 1)
    levels = np.percentile(env, (*_LEVEL_PCTS, 95), axis=1)  # (percentiles, bands)
    for b in range(nb):
        out += list(levels[:-1, b] - levels[-1, b])
    ends = phrase_ends(env[0])
    lags = np.array([int(round(m / 5.0)) for m in _OFFSET_LAGS_MS])
    ends = ends[ends + lags.max() < n]
    if ends.size:
        e = _smooth(env[0], 3)
        prof = np.stack([e[t + lags] - e[t - 8: t - 1].mean() for t in ends])
        out += list(np.median(np.clip(prof, -60.0, 10.0), axis=0))
    else:
        out += [-30.0] * len(lags)
    out.append(math.log((ends.size + 1.0) / (n / fr)))
    return np.asarray(out, dtype=np.float64)


# --- the estimator's network ---------------------------------------------------------------


def encode_targets(y: np.ndarray) -> np.ndarray:
    """Labels (:data:`PARAMS`, natural units) to the regression targets: log decay, log
    damping ratio, pre-delay (ms), wet level (dB)."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    return np.stack([np.log(y[:, 0]), np.log(y[:, 1]), y[:, 2], y[:, 3]], axis=1)


def decode_targets(t: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_targets`."""
    t = np.atleast_2d(np.asarray(t, dtype=np.float64))
    return np.stack([np.exp(t[:, 0]), np.exp(t[:, 1]), t[:, 2], t[:, 3]], axis=1)


@dataclass(frozen=True)
class MLP:
    """``y = ((tanh(z @ w1 + b1) @ w2 + b2) * y_scale + y_mean)``, ``z`` the features
    clipped to the training range and standardised. Numpy only."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray

    def predict_encoded(self, x: np.ndarray) -> np.ndarray:
        """Encoded targets (:func:`encode_targets`) for feature rows ``(n, features)``."""
        x = np.clip(np.atleast_2d(np.asarray(x, dtype=np.float64)), self.x_lo, self.x_hi)
        z = (x - self.x_mean) / self.x_scale
        h = np.tanh(z @ self.w1 + self.b1)
        return (h @ self.w2 + self.b2) * self.y_scale + self.y_mean

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels ``(n, 4)`` in :data:`PARAMS` order and natural units."""
        return decode_targets(self.predict_encoded(x))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": np.asarray(getattr(self, k)) for k in self.__dataclass_fields__}

    @staticmethod
    def from_arrays(d: dict[str, np.ndarray], prefix: str) -> MLP:
        return MLP(**{k: np.asarray(d[f"{prefix}.{k}"], dtype=np.float64)
                      for k in MLP.__dataclass_fields__})


# --- stage 2: the engineers' choice from the backing ----------------------------------------

#: backing features of the choice model: tempo (octaves re 120 BPM), onset density
#: (log onsets per second) and the backing's own reverberance (log of the estimator's
#: decay read on the backing: an index, the estimator was trained on vocals)
CHOICE_FEATURES: tuple[str, ...] = ("tempo_oct", "log_onsets_per_s", "backing_log_decay")
EXCERPT_S, HOP_S, MAX_EXCERPTS = 8.0, 4.0, 12


def backing_features(backing: np.ndarray, sample_rate: int, estimator: MLP
                     ) -> tuple[np.ndarray, float, bool]:
    """(:data:`CHOICE_FEATURES` row, tempo in BPM, whether the tempo was read) of a
    backing track; a backing with no clear tempo gets the baseline's default tempo."""
    from vocalmix.estimators.baseline import tempo_or_default
    from vocalmix.estimators.tempo import onset_strength

    tempo, found = tempo_or_default(backing, sample_rate)
    try:
        env, fps = onset_strength(backing, sample_rate)
        thr = env.mean() + env.std()
        peaks = (env[1:-1] > thr) & (env[1:-1] >= env[:-2]) & (env[1:-1] > env[2:])
        rate = float(peaks.sum() / (len(env) / fps))
    except ValueError:
        rate = 0.0
    est = estimate_song(estimator, backing, sample_rate)
    return (np.array([math.log2(tempo / 120.0), math.log(rate + 0.1),
                      math.log(est["decay_s"])]), tempo, found)


def estimate_song(estimator: MLP, audio: np.ndarray, sample_rate: int,
                  use_excerpts: bool = True, max_excerpts: int = MAX_EXCERPTS
                  ) -> dict[str, float]:
    """The estimator's reading of a whole (wet) signal: the mean encoded prediction over
    up to ``max_excerpts`` excerpts of 8 s (every 4 s) in which it is active (the
    windows :func:`vocalmix.estimators.features.vocal_excerpts` chooses), decoded; plus the spread
    (sd over excerpts, encoded units) and the number of excerpts."""
    from vocalmix.estimators.features import vocal_excerpts

    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    wins = (vocal_excerpts(a, sample_rate, EXCERPT_S, HOP_S, max_excerpts)
            if use_excerpts else [slice(0, min(a.shape[0], int(_MAX_ANALYSIS_S * sample_rate)))])
    rows = []
    for w in wins:
        try:
            rows.append(estimator_features(a[w], sample_rate))
        except ValueError:
            continue
    if not rows:
        from vocalmix.core.errors import AnalysisError

        raise AnalysisError("the signal is too short or quiet for a reverb estimate")
    enc = estimator.predict_encoded(np.stack(rows))
    mean = decode_targets(enc.mean(axis=0))[0]
    out = {p: float(v) for p, v in zip(PARAMS, mean, strict=True)}
    out["n_excerpts"] = len(rows)
    sd = enc.std(axis=0)
    out.update({f"sd_{k}": float(v) for k, v in zip(
        ("log_decay", "log_hf_ratio", "pre_delay_ms", "wet_level_db"), sd, strict=True)})
    return out


def choice_targets(est: dict[str, float], tempo_bpm: float | None = None) -> np.ndarray:
    """The choice model's regression targets for one song: log decay (s), log damping
    ratio, pre-delay (ms), wet level (dB). (``tempo_bpm`` is not used: the tempo is a
    feature.)"""
    return np.array([math.log(est["decay_s"]), math.log(est["hf_ratio"]),
                     est["pre_delay_ms"], est["wet_level_db"]])


@dataclass(frozen=True)
class ChoiceModel:
    """Ridge regressions (one per target of :func:`choice_targets`) on the standardised
    :data:`CHOICE_FEATURES`, clipped to the training range; intercepts shrunk toward the
    prior. ``n_songs``: how many songs it rests on; ``alpha`` and ``prior_songs``: the
    ridge penalty and the prior's weight it was fitted with (in songs)."""

    mean: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    coef: np.ndarray  # (features, 4)
    intercept: np.ndarray  # (4,)
    n_songs: int
    alpha: float
    prior_songs: float

    def predict_targets(self, f: np.ndarray) -> np.ndarray:
        z = (np.clip(np.atleast_2d(f), self.lo, self.hi) - self.mean) / self.scale
        return z @ self.coef + self.intercept

    def predict(self, f: np.ndarray, tempo_bpm: float | None = None) -> dict[str, float]:
        """Predicted parameters (:data:`PARAMS`) for one backing's feature row (the tempo
        is in the row; ``tempo_bpm`` is not used)."""
        t = self.predict_targets(f)[0]
        return {"decay_s": float(math.exp(t[0])), "hf_ratio": float(math.exp(t[1])),
                "pre_delay_ms": float(t[2]), "wet_level_db": float(t[3])}

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"choice.{k}": np.asarray(getattr(self, k)) for k in self.__dataclass_fields__}

    @staticmethod
    def from_arrays(d: dict[str, np.ndarray]) -> ChoiceModel:
        kw: dict[str, Any] = {k: np.asarray(d[f"choice.{k}"], dtype=np.float64)
                              for k in ChoiceModel.__dataclass_fields__}
        kw["n_songs"] = int(kw["n_songs"])
        kw["alpha"], kw["prior_songs"] = float(kw["alpha"]), float(kw["prior_songs"])
        return ChoiceModel(**kw)


# --- the shipped model --------------------------------------------------------------------


@dataclass(frozen=True)
class ReverbModel:
    """The estimator and the choice model, as shipped, with the metadata training wrote
    (empty for a model not loaded from files)."""

    estimator: MLP
    choice: ChoiceModel
    version: int = ESTIMATOR_VERSION
    feature_names: tuple[str, ...] = FEATURE_NAMES
    meta: dict = field(default_factory=dict, compare=False)

    def save(self, folder: str | Path, meta: dict, check_x: np.ndarray,
             check_f: np.ndarray) -> None:
        """Write the weights and ``meta`` (:data:`FILES`) into ``folder``, with check rows:
        estimator feature rows ``check_x`` and choice feature rows ``check_f``, stored with
        the predictions training computed for them."""
        arrays = {"version": np.array(self.version), "feature_names": np.array(self.feature_names),
                  "choice_features": np.array(CHOICE_FEATURES),
                  "check_x": np.asarray(check_x, dtype=np.float64),
                  "check_y": self.estimator.predict_encoded(check_x),
                  "check_f": np.asarray(check_f, dtype=np.float64),
                  "check_t": self.choice.predict_targets(check_f)}
        arrays.update(self.estimator.arrays("estimator"))
        arrays.update(self.choice.arrays())
        FILES.save(folder, arrays, meta)

    @staticmethod
    def load(folder: str | Path | None = None) -> ReverbModel:
        """Load from ``folder`` (default: the package's ``assets``).
        :class:`~vocalmix.core.errors.ModelError` when missing, unreadable, incomplete,
        or written for other features (stale)."""
        d, meta = FILES.load(folder)
        try:
            version = int(d["version"])
            names = tuple(str(s) for s in d["feature_names"])
            cf = tuple(str(s) for s in d["choice_features"])
            est = MLP.from_arrays(d, "estimator")
            choice = ChoiceModel.from_arrays(d)
        except (KeyError, ValueError, TypeError) as e:
            raise FILES.incomplete(folder, e) from None
        if version != ESTIMATOR_VERSION or names != FEATURE_NAMES or cf != CHOICE_FEATURES:
            raise FILES.stale(folder, f"version {version}, this vocalmix computes version "
                                      f"{ESTIMATOR_VERSION}")
        return ReverbModel(est, choice, version, names, meta)


@lru_cache(maxsize=1)
def shipped_model() -> ReverbModel:
    """The shipped reverb model, loaded once; :class:`~vocalmix.core.errors.ModelError`
    when missing or stale."""
    return ReverbModel.load()


# --- the prediction for ``vocalmix mix --method model`` --------------------------------------


#: the estimator's readings of a take's own reverberant-to-direct ratio below this (dB)
#: are taken as a dry take. On held-out rooms it cannot read a reverb fainter than about
#: -20 dB; the 220 raw karaoke takes of MIR-1K read -28.8 to -22.6 dB (5th to 95th
#: percentile, -18.6 at most), the two dry vocals of the data -28.0 and -27.8 dB, and the
#: demo's synthesised vocal, dry but unlike a voice to the estimator, -20.6 to -16.0 dB
#: with the song's length. 66 of the 88 mixed vocal stems read -15 dB or more (median
#: -10.2). A take with a reverb read just under this gets the model's whole send: at
#: most 2.1 dB more than the model's level in all, where the model sits at -13 dB
DRY_READING_DB = -15.0
#: excerpts a take's own reverb is read on (:func:`take_reverb_db`): one number, on the
#: mixing path, so fewer than the backing's :data:`MAX_EXCERPTS`. Not fewer: with 3 the
#: demo's dry synthesised vocal read -13.5 dB on a 30 s song (-16.0 with 6); 6 cost a
#: 30 s song 0.09 s of wall time (12 interleaved rounds), a 3-minute one 0.02 s
TAKE_EXCERPTS = 6
#: a send that would be this far or more under the reverb the take already carries is
#: left off (its share of the total would be under 1 %)
SEND_SHARE_DB = -20.0


def take_reverb_db(model: ReverbModel, vocal: np.ndarray, sample_rate: int
                   ) -> tuple[float, int] | None:
    """The reverberant-to-direct ratio (dB) the estimator reads on a take, over up to
    :data:`TAKE_EXCERPTS` excerpts, and how many; ``None`` when it reads a dry take
    (under :data:`DRY_READING_DB`) or cannot read one (too short or quiet)."""
    from vocalmix.core.errors import AnalysisError

    try:
        r = estimate_song(model.estimator, vocal, sample_rate, max_excerpts=TAKE_EXCERPTS)
    except AnalysisError:
        return None
    wet = float(r["wet_level_db"])
    return (wet, int(r["n_excerpts"])) if wet >= DRY_READING_DB else None


def send_for_total_db(target_db: float, present_db: float) -> float | None:
    """The send level (reverberant-to-direct, dB) that brings a vocal already carrying
    ``present_db`` of reverb to ``target_db`` in all: reverberant energies add, so
    ``10 log10(10^(target/10) - 10^(present/10))``; ``None`` when the take carries as
    much already, or all but :data:`SEND_SHARE_DB` of it (no send is needed)."""
    gap = 10.0 ** (target_db / 10.0) - 10.0 ** (present_db / 10.0)
    if gap <= 0.0:
        return None
    send = 10.0 * math.log10(gap)
    return send if send > present_db + SEND_SHARE_DB else None


def predict_reverb(model: ReverbModel, backing: np.ndarray,
                   sample_rate: int) -> dict[str, Any]:
    """The choice model's reverb for a backing: :data:`PARAMS` (not clipped) plus the
    tempo (BPM), whether it was read (``tempo_found``; else the default was assumed),
    the tempo rule's decay and the backing features it used."""
    from vocalmix.estimators.baseline import reverb_decay_for_tempo

    f, tempo, found = backing_features(backing, sample_rate, model.estimator)
    out: dict[str, Any] = dict(model.choice.predict(f, tempo))
    out.update({"tempo_bpm": tempo, "tempo_found": found,
                "tempo_rule_decay_s": reverb_decay_for_tempo(tempo),
                "features": dict(zip(CHOICE_FEATURES, f.tolist(), strict=True))})
    return out


__all__ = [
    "CHOICE_FEATURES",
    "DRY_READING_DB",
    "SEND_SHARE_DB",
    "TAKE_EXCERPTS",
    "FEATURE_NAMES",
    "FILES",
    "PARAMS",
    "ChoiceModel",
    "MLP",
    "ReverbModel",
    "band_ratios_for_hf",
    "estimate_song",
    "estimator_features",
    "predict_reverb",
    "send_for_total_db",
    "shipped_model",
    "take_reverb_db",
]
