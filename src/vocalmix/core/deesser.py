"""A split-band de-esser, and the measurement of a vocal's sibilance that sets it.

The de-esser (:func:`deess`) turns down only the band above ``freq_hz`` while that band
is loud: the vocal is split by a 4th-order Linkwitz-Riley crossover at ``freq_hz`` (two
cascaded 2nd-order Butterworth sections per side, whose low and high outputs sum to an
all-pass of the input: flat magnitude, a phase turn around ``freq_hz``), and ``y =
low(x) + g * high(x)`` with ``g`` the gain the detector asks for. A plain difference
``x + (g - 1) * highpass(x)`` would keep the input exactly at ``g = 1``, but the
high-pass's phase shift leaves much of the band in ``x - highpass(x)``: measured on a dry
take, it removed a quarter of the reduction asked for. A disabled de-esser is not run at
all, so it is bit-transparent.

Detector, per sample (stereo linked):

* ``p[n] = mean_c h_c(x)[n]^2`` smoothed by a one-pole filter of ``detector_ms``
  (the band's short-term power), in dBFS: ``e[n]``;
* the wanted reduction ``r[n] = min(depth_db, max(0, e[n] - threshold_db))`` dB (a
  limiter on the band, at most ``depth_db`` deep);
* ``r`` held at its maximum over the last ``release_ms`` (a trailing sliding maximum),
  then smoothed by a one-pole filter of :data:`SMOOTH_MS`: the gain falls within a few
  ms of a sibilant's onset and recovers ``release_ms`` after it ends; ``g = 10^(-r/20)``.

Every step is a linear recursive filter (SciPy's ``lfilter``), a trailing sliding
maximum or a per-sample function, so a whole file is processed vectorised and a stream
block by block with the states carried (:class:`DeEsser`: the filters' states and the
last ``release_ms`` of wanted reduction), giving the same samples either way.

Sibilance (:func:`sibilance`): the 99.5th percentile of the 5-10 kHz band's short-term
level (5 ms, read every millisecond) in the vocal's active frames, minus the median
short-term level of the whole vocal in the same frames, dB. Sung vowels put little
energy above 5 kHz (an operatic voice here: -13 dB); "s", "sh" and "t" put bursts there
that reach the level of the vowels (a dry amateur take here: +0.8 dB; professionally
mixed vocals of MUSDB18, already de-essed by their engineers: -21 to +5 dB, median about
-7 dB). Over a take's steady floor (room tone, :func:`_floor_power`), a frame's level is
its power over the floor's, and a frame within 3 dB of it is silence
(:func:`vocalmix.core.measure.minus_floor`): counted as active, room tone 30 LU under
the loudest block pulled the median down by 3 dB (40 mixed stems after a 3 s lead-in)
and switched the de-esser on or off for 10 of 40.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from vocalmix.core.dsp import (
    butterworth2_sos,
    channel_mean,
    flush_denormals,
    max_filter_hz,
    sosfilt_block,
)
from vocalmix.core.kernels import lfilter, maximum_filter1d

#: the band a de-esser listens to when measuring sibilance, Hz
SIBILANT_BAND_HZ = (5000.0, 10000.0)
#: short-term level window of the measurement and of the detector, ms
DETECTOR_MS = 5.0
#: frames within this many dB of the vocal's loudest short-term level count as active
ACTIVE_RANGE_DB = 40.0
#: the automatic setting keeps sibilant peaks this far under the vowels' median level, dB
SIBILANCE_TARGET_DB = -6.0
#: ...and acts only when the peaks exceed that by at least this much, dB
ACT_MARGIN_DB = 1.5
#: smoothing of the gain after the hold, ms
SMOOTH_MS = 3.0
#: automatic depth is clipped to this range, dB
AUTO_DEPTH_DB = (3.0, 12.0)


def _one_pole(ms: float, sample_rate: int) -> float:
    """Feedback coefficient of a one-pole smoother with time constant ``ms``."""
    return float(np.exp(-1.0 / max(ms * 1e-3 * sample_rate, 1e-9)))


def crossover_sos(freq_hz: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Linkwitz-Riley 4th-order low and high sides at ``freq_hz`` (each ``(2, 6)``)."""
    f = min(float(freq_hz), max_filter_hz(sample_rate))
    lo = butterworth2_sos(f, "lowpass", sample_rate)
    hi = butterworth2_sos(f, "highpass", sample_rate)
    return np.concatenate([lo, lo]), np.concatenate([hi, hi])


#: the short-term power's clamp (-200 dB), in the measurement's tracks and the detector:
#: a track holds no zero, so every value has a level in dB
_MIN_POWER = 1e-20
#: dB under the threshold below which the detector skips a power's level: far more than
#: ``10 log10`` can be off in float64 (about 1e-13 dB), so a power at or below
#: ``10^((threshold - this) / 10)`` has a level under the threshold and wants 0 dB
_SKIP_UNDER_DB = 1e-6
#: a smoothed reduction at or below this many dB turns the band down by ``10^(-r/20)``,
#: which is 1.0 in float64 for any ``r`` under about 1e-15 dB (:func:`_unity_below_db`)
_UNITY_REDUCTION_DB = 1e-30


def short_term_db(x: np.ndarray, sample_rate: int, ms: float = DETECTOR_MS) -> np.ndarray:
    """Short-term power (channels averaged) in dBFS, one-pole smoothed over ``ms``."""
    a = _one_pole(ms, sample_rate)
    p = channel_mean(np.square(np.asarray(x, dtype=np.float64).reshape(len(x), -1)))
    with flush_denormals():
        e = lfilter([1.0 - a], [1.0, -a], p)
    return 10.0 * np.log10(np.maximum(e, _MIN_POWER))


def _reading_step(sample_rate: int) -> int:
    """Samples between two readings of a short-term power track: a millisecond's."""
    return max(1, int(round(sample_rate / 1000.0)))


#: readings (milliseconds) of a power track made at a time by :func:`_short_term_power_ms`
#: (65,516 samples at 44.1 kHz: blocks of a few MB in float64)
_BLOCK_READINGS = 1489


def _short_term_power_ms(x: np.ndarray, sample_rate: int, sos: np.ndarray | None = None,
                         ms: float = DETECTOR_MS) -> np.ndarray:
    """The short-term power of :func:`short_term_db` (of ``x`` through the float64 filter
    ``sos`` when given), linear, read at the last sample of every millisecond
    (:func:`_reading_step` samples; the signal's last sample ends a shorter last one),
    clamped at :data:`_MIN_POWER`, float32.

    The readings are the per-sample recursion's own values, not an approximation. Over
    ``L`` samples the one-pole ``e[n] = a e[n-1] + (1 - a) p[n]`` unrolls to

        ``e[mL + L - 1] = a^L e[mL - 1] + sum_j (1 - a) a^(L-1-j) p[mL + j]``,

    so each millisecond's powers are summed with fixed weights (one matrix-vector product
    per block, the channels' mean folded into the weights) and only the readings are
    recursed, ``a^L`` apart. The track is smoothed over 5 ms, so the percentiles and
    the floor read from it every millisecond are those of every sample to within their
    sampling (a 3-minute take's :func:`sibilance`: 0.09 s of CPU against 0.20 s for a
    per-sample track; its figures moved by 0.02 dB at the median, 0.3 dB at most, over
    the 7 s vocals of 88 mixed songs)."""
    from vocalmix.core.dsp import row_blocks, sosfilt_stream

    a = _one_pole(ms, sample_rate)
    step = _reading_step(sample_rate)
    x2 = np.asarray(x)
    x2 = x2 if x2.ndim == 2 else x2.reshape(-1, 1)
    n, channels = x2.shape
    # the weight of each sample of a millisecond (oldest first), the channels' mean in it
    w = (1.0 - a) * a ** np.arange(step - 1, -1, -1, dtype=np.float64)
    wc = np.repeat(w / channels, channels)
    sums = np.empty(-(-n // step))
    blocks = row_blocks(x2, step * _BLOCK_READINGS)
    src = (sosfilt_stream(sos, blocks, np.float64) if sos is not None
           else (np.asarray(b, dtype=np.float64) for b in blocks))
    m = tail = 0
    for xb in src:
        sq = np.square(xb)
        k, tail = divmod(len(sq), step)
        if k:
            sums[m : m + k] = sq[: k * step].reshape(k, step * channels) @ wc
            m += k
        if tail:  # the signal's last, shorter millisecond: its newest weights
            sums[m] = sq[k * step :].reshape(-1) @ wc[len(wc) - tail * channels :]
    with flush_denormals():
        e = lfilter([1.0], [1.0, -(a**step)], sums[:m])
    if tail:  # ...which decays the reading before it by its own length only
        e = np.append(e, (a**tail * e[-1] if m else 0.0) + sums[m])
    return np.maximum(e, _MIN_POWER).astype(np.float32)


def _db(power: float) -> float:
    """A power (mean square, full scale 1) in dB."""
    return float(10.0 * np.log10(power)) if power > 0 else -np.inf


@dataclass(frozen=True)
class Sibilance:
    """How sibilant a vocal is.

    Attributes:
        index_db: 99.5th percentile of the sibilant band's short-term level minus the
            median short-term level of the whole vocal, both over the active frames, dB.
        band_peak_dbfs: that 99.5th percentile, dBFS.
        body_dbfs: that median, dBFS.
    """

    index_db: float
    band_peak_dbfs: float
    body_dbfs: float


def sibilance(x: np.ndarray, sample_rate: int) -> Sibilance:
    """Measure the sibilance of a vocal ``(n, channels)`` at ``sample_rate`` Hz.

    The levels' percentiles are taken on the short-term power tracks, read every
    millisecond (:func:`_short_term_power_ms`), and converted to dB once (the logarithm
    keeps the order: a percentile of the levels is the level of the percentile, to about
    1e-5 dB where it interpolates between two readings)."""
    from vocalmix.core.parallel import beside

    lo, hi = SIBILANT_BAND_HZ
    hi = min(hi, max_filter_hz(sample_rate))
    if lo >= hi:  # a narrow-band take (e.g. 8-11 kHz sampling) has no sibilant band
        full = _short_term_power_ms(x, sample_rate)
        return Sibilance(-np.inf, -np.inf, _db(float(np.median(full))))
    sos = butterworth2_sos((lo, hi), "bandpass", sample_rate)
    # the band's power track on a second thread while this one makes the whole vocal's
    # (their filters and arithmetic let go of the GIL)
    band, full = beside(lambda: _short_term_power_ms(x, sample_rate, sos),
                        lambda: _short_term_power_ms(x, sample_rate))
    floor = _floor_power(full, sample_rate)
    if floor is not None:
        # room tone is not the vowels: the voice's own power is what the frame's holds
        # over the floor's (a frame close to it is silence, 0)
        from vocalmix.core.measure import minus_floor

        full = minus_floor(full, floor)  # float32 still: a Python float takes its type
    # within ACTIVE_RANGE_DB of the loudest reading's level
    active = full > full.max() * np.float32(10.0 ** (-ACTIVE_RANGE_DB / 10.0))
    peak, body = (_db(float(np.percentile(band[active], 99.5))),
                  _db(float(np.median(full[active]))))
    return Sibilance(peak - body, peak, body)


#: a power track's clamp (:data:`_MIN_POWER`) and a little over it (-199 dB): silence
_SILENCE_POWER = 10.0 ** (-19.9)


def _floor_power(power: np.ndarray, sample_rate: int) -> float | None:
    """The power (mean square) of a steady floor under a vocal of ``sample_rate`` Hz from
    its short-term power track ``power`` read every millisecond
    (:func:`_short_term_power_ms`), or ``None`` when it has none: the mean power of the
    100 ms segments' steady quietest tenth (:func:`vocalmix.core.measure.floor_energy`),
    where it lies :data:`~vocalmix.core.measure.FLOOR_UNDER_TOP_LU` or more under the
    loudest segment."""
    from vocalmix.core.measure import floor_energy, floor_under

    seg = max(1, int(round(0.1 * sample_rate / _reading_step(sample_rate))))
    n = len(power) // seg
    if n == 0:
        return None
    lv = power[: n * seg].reshape(n, seg).astype(np.float64)
    # digital silence (the track's clamp) is no floor: power 0
    p = np.mean(np.where(lv > _SILENCE_POWER, lv, 0.0), axis=1)
    f = float(floor_energy(p))
    if not floor_under(f, float(p.max())):
        return None
    return f


@dataclass(frozen=True)
class DeEsserSettings:
    """What :func:`deess` needs (``MixParams``' de-esser fields, in these units).

    Attributes:
        threshold_db: band level (dBFS, short-term power) above which it acts.
        freq_hz: the split frequency: only content above it is turned down, Hz.
        depth_db: the most it turns the band down, dB.
        release_ms: smoothing of the gain, ms.
    """

    threshold_db: float
    freq_hz: float
    depth_db: float
    release_ms: float = 40.0


def auto_settings(x: np.ndarray, sample_rate: int, freq_hz: float = 5000.0
                  ) -> tuple[DeEsserSettings | None, Sibilance]:
    """Settings that keep the sibilant peaks of ``x`` about :data:`SIBILANCE_TARGET_DB`
    under the vowels' median level, or ``None`` when they already are (nothing to tame).
    """
    s = sibilance(x, sample_rate)
    threshold = s.body_dbfs + SIBILANCE_TARGET_DB
    excess = s.band_peak_dbfs - threshold
    if not np.isfinite(excess) or excess < ACT_MARGIN_DB:
        return None, s
    depth = float(np.clip(excess, *AUTO_DEPTH_DB))
    return DeEsserSettings(float(threshold), float(freq_hz), depth), s


class DeEsser:
    """A de-esser with its state: :meth:`process` takes consecutive blocks of a signal.

    Processing a signal whole or in consecutive blocks gives the same samples (to float
    rounding); the filters' coefficients are computed once, here.
    """

    def __init__(self, settings: DeEsserSettings, sample_rate: int, channels: int = 2) -> None:
        self.settings = settings
        self.sample_rate = int(sample_rate)
        self._lo_sos, self._hi_sos = crossover_sos(settings.freq_hz, sample_rate)
        self._a = _one_pole(DETECTOR_MS, sample_rate)
        self._r = _one_pole(SMOOTH_MS, sample_rate)
        self._hold = max(1, int(round(settings.release_ms * 1e-3 * sample_rate)))
        #: the power at or below which the level is surely under the threshold
        self._skip_power = 10.0 ** ((settings.threshold_db - _SKIP_UNDER_DB) / 10.0)
        self._low_zi = np.zeros((2, 2, channels))
        self._band_zi = np.zeros((2, 2, channels))
        self._power_zi = np.zeros(1)
        self._gain_zi = np.zeros(1)
        self._history = np.zeros(0)

    def process(self, x: np.ndarray) -> np.ndarray:
        """De-ess the next block ``(n, channels)``; returns float32 ``(n, channels)``."""
        with flush_denormals():
            xd = np.asarray(x, dtype=np.float64)
            return self._apply(xd, *self._detect(xd))

    def render(self, x: np.ndarray, block: int) -> np.ndarray:
        """De-ess a whole signal ``(n, channels)`` ``block`` rows at a time, as
        :meth:`process` on each block in turn: the same float32 samples.

        The detector of the next block (the band's filter, its power, level and hold) runs
        on a helper thread while this one applies the gain to the block before it (the
        low side's filter, the gain's smoothing, ``10^(-r/20)`` and the sum): each half
        carries its own states, and each sees the blocks in order. Both halves' filters
        and arithmetic let go of the GIL: a 3-minute take in about half the time (0.15 s
        instead of 0.28-0.3 s here, on the path of a de-essed mix's compressor)."""
        from vocalmix.core.parallel import ordered_map

        out = np.empty(x.shape, np.float32)
        starts = range(0, x.shape[0], block)

        def detect(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            with flush_denormals():  # (the floating-point environment is per thread)
                xd = np.asarray(x[i : i + block], dtype=np.float64)
                return (xd, *self._detect(xd))

        # one helper thread, so the detector's blocks run in order; two results allowed
        # waiting, so it works on the next block while this thread applies one
        for i, (xd, held, band) in zip(starts, ordered_map(detect, starts, workers=1,
                                                           ahead=2), strict=True):
            with flush_denormals():
                out[i : i + block] = self._apply(xd, held, band)
        return out

    def _detect(self, xd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The held reduction (dB, per sample) and the band above the split of the next
        block ``xd`` (float64), the detector's states carried."""
        s = self.settings
        # (a mono take read as stereo is filtered once: the same values)
        band, self._band_zi = sosfilt_block(self._hi_sos, xd, self._band_zi)
        a = self._a
        power, self._power_zi = lfilter([1.0 - a], [1.0, -a], channel_mean(band * band),
                                        zi=self._power_zi)
        # level = 10 log10(max(power, _MIN_POWER)); wanted = min(depth, max(0, level -
        # threshold)): 0 wherever the power is under the threshold, most of a take, so
        # the logarithm runs only on the powers near or over it (the same values; a NaN
        # power is among them, as it was)
        wanted = np.zeros(power.shape)
        near = np.flatnonzero(~(power <= self._skip_power))
        if near.size:
            level = 10.0 * np.log10(np.maximum(power[near], _MIN_POWER))
            wanted[near] = np.minimum(s.depth_db, np.maximum(0.0, level - s.threshold_db))
        held, self._history = _trailing_max(self._history, wanted, self._hold)
        return held, band

    def _apply(self, xd: np.ndarray, held: np.ndarray, band: np.ndarray) -> np.ndarray:
        """The output of the block ``xd`` from its detector's ``held`` and ``band``
        (:meth:`_detect`), the low side's and the smoother's states carried."""
        low, self._low_zi = sosfilt_block(self._lo_sos, xd, self._low_zi)
        r = self._r
        red, self._gain_zi = lfilter([1.0 - r], [1.0, -r], held, zi=self._gain_zi)
        # g = 10^(-red/20): exactly 1.0 where the reduction has decayed to nothing (most
        # of a take: a sibilant's smoothed reduction falls under 1e-30 dB within about
        # 0.2 s), so the power runs only where it has not
        g = np.ones(red.shape)
        acting = np.flatnonzero(~(red <= _unity_below_db()))
        if acting.size:
            g[acting] = 10.0 ** (-red[acting] / 20.0)
        return (low + g[:, None] * band).astype(np.float32)


@cache
def _unity_below_db() -> float:
    """:data:`_UNITY_REDUCTION_DB` when ``10^(-r/20)`` is 1.0 for a reduction ``r`` of it,
    half of it, the smallest positive double and 0 (the power ufunc's rounding, checked
    once), else -1.0: the gain is then computed everywhere."""
    r = np.array([_UNITY_REDUCTION_DB, _UNITY_REDUCTION_DB / 2, 5e-324, 0.0])
    return _UNITY_REDUCTION_DB if bool(np.all(10.0 ** (-r / 20.0) == 1.0)) else -1.0


def _trailing_max(history: np.ndarray, x: np.ndarray, hold: int) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """``out[n] = max(x[n - hold + 1 .. n])`` across blocks (``history``: the previous
    ``hold - 1`` values, fewer at the start, which count as 0); returns (out, history).

    Zeros after a history of zeros (a de-esser's block that wants no reduction, most of
    a take) give zeros and a history of zeros at once, without the filter."""
    kept = max(0, hold - 1)
    if not x.any() and not history.any():
        return np.zeros(len(x)), history if len(history) == kept else np.zeros(kept)
    past = history[len(history) - (hold - 1):] if hold > 1 else history[:0]
    h = np.concatenate([np.zeros(max(0, hold - 1 - len(past))), past, x])
    # a window of `hold` ending at each sample: origin shifts the centred window back
    m = maximum_filter1d(h, size=hold, origin=(hold - 1) // 2, mode="nearest")
    return m[len(h) - len(x):], h[len(h) - (hold - 1):] if hold > 1 else h[:0]


def deess(x: np.ndarray, sample_rate: int, settings: DeEsserSettings) -> np.ndarray:
    """De-ess a whole signal ``(n, channels)``; float32 out (see :class:`DeEsser`)."""
    x = np.asarray(x)
    return DeEsser(settings, sample_rate, x.shape[1]).process(x)


__all__ = ["DeEsser", "DeEsserSettings", "Sibilance", "auto_settings", "deess", "sibilance",
           "short_term_db"]
