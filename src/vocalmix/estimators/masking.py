"""EQ from frequency masking between vocal and backing (the baseline's EQ rule).

The rule follows the masking-reduction idea of Hafezi & Reiss, "Autonomous multitrack
equalization based on masking reduction", JAES 63(5), 2015, and the band-wise masking
measure of Wichern et al., "Quantitative analysis of masking in multitrack mixes using
loudness loss", AES 141, 2016, simplified to a bounded, explainable form:

1. Both signals are analysed per critical band (Zwicker's Bark band edges) over the
   frames where the vocal is active (within 30 dB of its loudest frame), so the gaps
   between phrases do not count.
2. Both band spectra are normalised to equal total energy: the vocal's absolute level is
   set elsewhere (the level resolver), so only spectral *shape* is compared. With the
   -3 LU vocal-to-mix default the two parts are about equally loud, which is what equal
   totals model.
3. Masker-to-signal ratio per band, ``MSR = backing_db - vocal_db``. The vocal band
   "matters" by where it lies: the presence region 1-5 kHz, where intelligibility lives,
   weighs fully, falling to 0.6 at 300 Hz and 8 kHz and 0.3 at 150 Hz and 12 kHz; bands
   more than 35-45 dB below the vocal's strongest band get no weight (nothing there to
   bring out).
4. Proposed gain per band: ``clip(0.5 * (MSR - threshold_db) * weight, 0, max_gain_db)``
   between 150 Hz and 10 kHz: half of the masking excess is compensated, never cut.
5. Contiguous runs of boosted bands become at most ``max_bands`` peak filters, largest
   first, their gains scaled so the sum stays within ``max_total_gain_db``.

The vocal also gets a high-pass just below its range: at 0.7x the frequency under which
it holds 1% of its energy, clipped to 60-150 Hz.

:func:`fit_parametric_bands` (fit a gain curve with peak/shelf biquads) is shared with
the learned corrective EQ; the band responses it fits with
(:func:`vocalmix.core.dsp.biquad_response_db`, the RBJ cookbook formulas that JUCE, and
so pedalboard, use) live in the core, beside the EQ stage's whole response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vocalmix.core.dsp import (  # noqa: F401 - re-exported for the learned EQ
    bands_response_db,
    biquad_coefficients,
    biquad_response_db,
    max_filter_hz,
)
from vocalmix.core.kernels import leastsq

# Zwicker critical band edges (Hz)
BARK_EDGES_HZ = np.array(
    [20, 100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320, 2700,
     3150, 3700, 4400, 5300, 6400, 7700, 9500, 12000, 15500], dtype=np.float64)
_SR = 32000
_N_FFT = 2048


@dataclass(frozen=True)
class MaskingAnalysis:
    """Band-wise masking of the vocal by the backing.

    Attributes (one value per band unless noted):
        band_edges_hz: ``(n_bands + 1,)`` band edges, Hz.
        band_centres_hz: geometric band centres, Hz.
        vocal_db: vocal band level, dB re its total energy.
        backing_db: backing band level, dB re its total energy.
        masking_db: masker-to-signal ratio, dB (positive: the backing dominates).
        weight: how much the band matters to the vocal, 0..1.
        gain_db: proposed vocal EQ gain, dB.
        highpass_hz: suggested vocal high-pass cut-off, Hz.
    """

    band_edges_hz: np.ndarray
    band_centres_hz: np.ndarray
    vocal_db: np.ndarray
    backing_db: np.ndarray
    masking_db: np.ndarray
    weight: np.ndarray
    gain_db: np.ndarray
    highpass_hz: float


#: frames transformed at a time by :func:`_active_mean_spectra`
FRAME_CHUNK = 1024


def _active_mean_spectra(vocal: np.ndarray, backing: np.ndarray, sample_rate: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean power spectra of the vocal and of the backing over the frames where the
    vocal is within 30 dB of its loudest frame, and the bin frequencies. Frame power
    spectra of a mono downmix at 32 kHz, Hann-windowed non-overlapping 2048-point frames
    (a long-term spectrum needs no overlap), :data:`FRAME_CHUNK` frames at a time (a
    first pass for the vocal's frame energies, a second for the sums) instead of holding
    both spectrograms."""
    from vocalmix.core.dsp import active_mean_power, mono_at

    yv, yb = mono_at(vocal, sample_rate, _SR), mono_at(backing, sample_rate, _SR)
    n = min(len(yv), len(yb)) // _N_FFT  # non-overlapping frames
    if n < 1:
        raise ValueError("audio too short for a spectrum (need at least 64 ms)")
    means = active_mean_power((yv, yb), _N_FFT, _N_FFT, n, FRAME_CHUNK)
    if means is None:
        raise ValueError("the vocal is silent: nothing to analyse")
    sv, sb = means
    return sv, sb, np.fft.rfftfreq(_N_FFT, 1 / _SR)


def analyse_masking(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    *,
    threshold_db: float = 0.0,
    max_gain_db: float = 4.0,
) -> MaskingAnalysis:
    """Band-wise masking analysis and the proposed per-band vocal gain (module doc)."""
    sv, sb, freqs = _active_mean_spectra(vocal, backing, sample_rate)
    edges = BARK_EDGES_HZ[BARK_EDGES_HZ <= _SR / 2]
    centres = np.sqrt(edges[:-1] * edges[1:])
    idx = np.digitize(freqs, edges) - 1
    nb = len(edges) - 1
    member = (idx[:, None] == np.arange(nb)[None, :]).astype(np.float64)
    ev, eb = sv @ member, sb @ member
    tiny = 1e-20
    vocal_db = 10 * np.log10(ev / max(ev.sum(), tiny) + tiny)
    backing_db = 10 * np.log10(eb / max(eb.sum(), tiny) + tiny)
    msr = backing_db - vocal_db
    rel = vocal_db - vocal_db.max()
    audible = np.clip((rel + 45.0) / 10.0, 0.0, 1.0)  # fades out 35-45 dB below the peak
    presence = np.interp(np.log2(centres), np.log2([150, 300, 1000, 5000, 8000, 12000]),
                         [0.3, 0.6, 1.0, 1.0, 0.6, 0.3])
    weight = audible * presence
    gain = np.clip(0.5 * (msr - threshold_db) * weight, 0.0, max_gain_db)
    gain[(centres < 150) | (centres > 10000)] = 0.0
    # high-pass: just below the frequency under which the vocal holds 1% of its energy
    cum = np.cumsum(sv) / max(sv.sum(), tiny)
    f1 = float(freqs[min(int(np.searchsorted(cum, 0.01)), len(freqs) - 1)])
    hp = float(np.clip(0.7 * f1, 60.0, 150.0))
    return MaskingAnalysis(edges, centres, vocal_db, backing_db, msr, weight, gain, hp)


def _runs_to_bands(
    centres: np.ndarray, edges: np.ndarray, gain: np.ndarray, max_bands: int
) -> list[tuple[str, float, float, float]]:
    runs: list[tuple[float, float, float, float]] = []  # (score, freq, gain, q)
    i = 0
    while i < len(gain):
        if gain[i] < 0.5:
            i += 1
            continue
        j = i
        while j + 1 < len(gain) and gain[j + 1] >= 0.5:
            j += 1
        g = gain[i : j + 1]
        f_lo, f_hi = edges[i], edges[j + 1]
        fc = float(np.exp(np.average(np.log(centres[i : j + 1]), weights=g)))
        q = float(np.clip(fc / max(f_hi - f_lo, 1.0), 0.4, 2.0))
        runs.append((float(g.sum()), fc, float(g.max()), q))
        i = j + 1
    runs.sort(reverse=True)
    return [("peak", f, g, q) for _, f, g, q in runs[:max_bands]]


def masking_eq(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    *,
    max_bands: int = 4,
    max_gain_db: float = 4.0,
    max_total_gain_db: float = 6.0,
    threshold_db: float = 0.0,
) -> tuple[list[tuple[str, float, float, float]], float]:
    """Masking-reduction EQ: ``([(kind, freq_hz, gain_db, q), ...], highpass_hz)``."""
    a = analyse_masking(vocal, backing, sample_rate, threshold_db=threshold_db,
                        max_gain_db=max_gain_db)
    bands = _runs_to_bands(a.band_centres_hz, a.band_edges_hz, a.gain_db, max_bands)
    total = sum(g for _, _, g, _ in bands)
    if total > max_total_gain_db:
        s = max_total_gain_db / total
        bands = [(k, f, g * s, q) for k, f, g, q in bands]
    bands = [(k, round(f, 1), round(g, 2), round(q, 3)) for k, f, g, q in bands if g >= 0.5]
    return bands, a.highpass_hz


# --- biquads: the RBJ cookbook bands, defined once in vocalmix.core.dsp ---------------------

#: how far inside its bounds a parameter starts, as a fraction of the sine's range: at a
#: bound the transform's slope is zero, and a band started there (a shelf at the grid's
#: end, a gain clipped to the limit) would not move
_START_INSIDE = 0.01


def _bounded_least_squares(resid: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                           lb: np.ndarray, ub: np.ndarray, *, maxfev: int) -> np.ndarray:
    """The ``x`` within ``[lb, ub]`` minimising ``sum(resid(x)**2)``, from ``x0``.

    MINPACK's Levenberg-Marquardt (:func:`vocalmix.core.kernels.leastsq`) on the
    unbounded ``p`` of ``x = lb + (ub - lb) * (1 + sin p) / 2`` (MINUIT's transform for
    a parameter bounded on both sides): loadable without ``scipy.optimize``'s package,
    whose import (0.25-0.4 s, ``scipy.linalg`` with it) cost a whole mix more than the
    fit itself. Checked against ``scipy.optimize.least_squares``' bounded trust region
    (``tests/test_band_fit.py``): on the corrective curves the EQ model asked of the shared
    data (118 takes and stems, 48 MUSDB18 training vocals given a random EQ) the same
    residual within 0.007 dB; on 900 random curves of up to four bands with noise, the
    same mean residual within 0.001 dB, the trust region better by over 0.01 dB on 117
    and this fit on 92."""
    span = ub - lb
    s0 = np.clip(2.0 * (np.asarray(x0, dtype=np.float64) - lb) / span - 1.0,
                 -1.0 + _START_INSIDE, 1.0 - _START_INSIDE)

    def x_of(p: np.ndarray) -> np.ndarray:
        return lb + span * (1.0 + np.sin(p)) / 2.0

    p = leastsq(lambda q: resid(x_of(q)), np.arcsin(s0), maxfev=maxfev)
    return np.asarray(x_of(p))


#: the weight of a band's gain in :func:`fit_parametric_bands`' least squares: a band of
#: ``g`` dB costs as much as a residual of ``GAIN_PENALTY * g`` dB at every point of the
#: grid (a 3 dB band 0.07 dB; a cancelling pair of 12 dB bands 0.38 dB RMS together)
GAIN_PENALTY = 0.022


def fit_parametric_bands(
    freqs_hz: np.ndarray,
    gain_db_curve: np.ndarray,
    *,
    max_bands: int = 6,
    max_gain_db: float = 12.0,
    sample_rate: int = 44100,
    tolerance_db: float = 0.25,
) -> list[tuple[str, float, float, float]]:
    """Fit a gain curve (dB at ``freqs_hz``) with at most ``max_bands`` peak/shelf bands.

    Greedy: each step adds a peak at the largest remaining residual (or a shelf at an
    end), then all bands are refined together by bounded least squares on the
    log-frequency grid (:func:`_bounded_least_squares`); stops when the RMS residual is
    under ``tolerance_db``. Each band's gain is weighed in the least squares as a
    residual of :data:`GAIN_PENALTY` times that gain over the whole grid, so that two
    bands do not grow into a pair that nearly cancels (a 3 dB tilt at 800 Hz was fitted
    as -12 dB at 936 Hz and +11.5 dB at 1135 Hz; it is now -2.9 dB at 706 Hz and
    +2.4 dB at 1652 Hz, 0.06 dB RMS further from the curve).
    """
    f = np.asarray(freqs_hz, dtype=np.float64)
    target = np.asarray(gain_db_curve, dtype=np.float64)
    nyq_lim = max_filter_hz(sample_rate)
    lo_f, hi_f = max(20.0, f.min()), min(nyq_lim, f.max())
    kinds: list[str] = []
    x: list[float] = []  # per band: log(freq), gain, log(q)

    def unpack(v: np.ndarray) -> list[tuple[str, float, float, float]]:
        return [(k, float(np.exp(v[3 * i])), float(v[3 * i + 1]), float(np.exp(v[3 * i + 2])))
                for i, k in enumerate(kinds)]

    weight = GAIN_PENALTY * np.sqrt(f.size)

    def resid(v: np.ndarray) -> np.ndarray:
        return np.concatenate([bands_response_db(unpack(v), f, sample_rate) - target,
                               weight * v[1::3]])

    for _ in range(max_bands):
        r = target - bands_response_db(unpack(np.array(x)), f, sample_rate) if x else target
        if np.sqrt(np.mean(r**2)) < tolerance_db:
            break
        if not hi_f > lo_f:
            raise ValueError(f"fit_parametric_bands: the curve's frequencies ({f.min():g}-"
                             f"{f.max():g} Hz) leave no range for a band between 20 Hz and "
                             f"{nyq_lim:g} Hz")
        i = int(np.argmax(np.abs(r)))
        g0 = float(np.clip(r[i], -max_gain_db, max_gain_db))
        kind = "peak"
        if i == 0 and f[0] <= 80:
            kind = "low_shelf"
        elif i == len(f) - 1 and f[-1] >= 8000:
            kind = "high_shelf"
        kinds.append(kind)
        x += [float(np.log(np.clip(f[i], lo_f, hi_f))), g0, float(np.log(1.0 if kind == "peak"
                                                                          else 0.707))]
        lb = np.tile([np.log(lo_f), -max_gain_db, np.log(0.3)], len(kinds))
        ub = np.tile([np.log(hi_f), max_gain_db, np.log(8.0)], len(kinds))
        x = list(_bounded_least_squares(resid, np.array(x), lb, ub,
                                        maxfev=200 * (len(x) + 1)))
    return [(k, round(fr, 2), round(g, 3), round(q, 4)) for k, fr, g, q in unpack(np.array(x))
            if abs(g) >= 0.05]
