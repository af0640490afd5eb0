"""Level-invariant features of a vocal and a backing, and the raw-take perturbation.

The level model must learn *mixing*, not *reading*: its targets are the human mix's
vocal-to-mix ratio and the mixed vocal's loudness range, so no feature may carry the
level of either input. Every feature below is a ratio, a shape, a rate or a difference
of two loudness figures of the *same* signal, so multiplying the vocal or the backing by
any gain leaves it unchanged (tests check this for gains of -20 to +20 dB). The vocal's
dynamics features are computed after :func:`perturb_vocal` has made the mixed vocal look
like a raw take (random gain, gain riding, upward expansion), so they do not give away
the mixed vocal's loudness range either.

Signals are float arrays ``(n_samples, channels)`` at ``sample_rate`` Hz. Spectral
features use a mono downmix resampled to 22.05 kHz, Hann frames of 2048 samples (93 ms,
no overlap) and only the *active* frames (energy within 30 dB of the loudest frame).

=====================  ===================================================================
feature                meaning (unit)
=====================  ===================================================================
b_centroid_oct         backing spectral centroid, octaves re 1 kHz (brightness)
b_low_db               backing energy below 250 Hz re its total, dB (bass weight)
b_high_db              backing energy 2-6 kHz re its total, dB (presence-band competition)
b_air_db               backing energy above 6 kHz re its total, dB (cymbals, air)
b_flatness_db          backing spectral flatness (geometric / arithmetic mean of the power
                       spectrum, mean over frames), dB: near 0 noise-like (distorted
                       guitars, dense mixes), very negative tonal (sparse, acoustic)
b_onsets_per_s         backing onset density, onsets per second (peaks of the onset
                       strength of :mod:`vocalmix.estimators.tempo` above mean + 1 sd)
b_tempo_oct            backing tempo (:func:`vocalmix.estimators.tempo.estimate_tempo`), octaves re
                       120 BPM; 0 when no clear pulse
b_crest_db             backing sample peak minus integrated loudness, dB (limiting/density)
b_lra_lu               backing loudness range, LU (EBU Tech 3342)
b_mom_spread_lu        backing momentary-loudness spread: 95th minus 10th percentile of
                       the gated 400 ms loudness, LU (short-term dynamics, punch)
v_centroid_oct         vocal spectral centroid, octaves re 1 kHz (voice type, brightness)
v_flatness_db          vocal spectral flatness, dB (breathy vs tonal)
v_activity             fraction of 100 ms vocal frames within 30 dB of the loudest (how
                       much of the time the voice sings: drives vocal-to-mix vs -backing)
v_lra_lu               input vocal loudness range, LU (after the raw-take perturbation)
v_mom_spread_lu        input vocal momentary-loudness spread, LU (as for the backing)
vb_shape_dist_db       RMS difference of the level-normalised spectra of vocal and
                       backing in 12 log-spaced bands from 150 Hz to 8 kHz, dB (small:
                       the backing competes with the voice across its range)
b_mid_db               backing energy 250 Hz-2 kHz re its total, dB (body, where most
                       instruments and the voice's fundamentals live)
b_perc_db              backing percussive-to-harmonic energy ratio below 5.5 kHz, dB: the
                       power spectrogram (93 ms frames, 46 ms hop) median-filtered across
                       9 bins (percussive) against across 9 frames (harmonic): drums vs
                       sustained instruments
v_pitch_oct            vocal register: median fundamental of the voiced frames, octaves
                       re 220 Hz (normalised square difference function, 70-1000 Hz)
v_voiced_frac          voiced share of the vocal's active 46 ms frames (periodicity >= 0.7):
                       high for singing, lower for speech and rap
v_pitch_stability      share of consecutive voiced frames (23 ms apart) whose pitch moves
                       by less than 0.5 semitone: held notes (singing) vs glides (speech)
v_syllables_per_s      vocal syllable rate: peaks of its 10 ms envelope at least 4 dB
                       prominent, 80 ms apart, per second of active vocal
v_periodicity          mean periodicity (peak of the normalised square difference
                       function, 0-1) of the active vocal frames: low for breathy or noisy
                       voices
=====================  ===================================================================

Bump :data:`FEATURE_VERSION` whenever any of these changes: cached features and shipped
weights are keyed by it, and stale weights are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vocalmix.core.dsp import frame_power, frozen
from vocalmix.core.kernels import find_peaks, irfft, median_filter1d, rfft

FEATURE_VERSION = 4
PERTURBATION_VERSION = 2  # bump when the raw-take perturbation changes (cache keys use it)
FEATURE_NAMES: tuple[str, ...] = (
    "b_centroid_oct", "b_low_db", "b_high_db", "b_air_db", "b_flatness_db",
    "b_onsets_per_s", "b_tempo_oct", "b_crest_db", "b_lra_lu", "b_mom_spread_lu",
    "v_centroid_oct", "v_flatness_db", "v_activity", "v_lra_lu", "v_mom_spread_lu",
    "vb_shape_dist_db", "b_mid_db", "b_perc_db", "v_pitch_oct", "v_voiced_frac",
    "v_pitch_stability", "v_syllables_per_s", "v_periodicity",
)
_SR = 22050  # analysis rate of the spectral features, Hz
_N = 2048  # spectral frame, samples at _SR (93 ms)
_ACTIVE_DB = 30.0  # frames within this of the loudest count as active
_SHAPE_EDGES_HZ = np.geomspace(150.0, 8000.0, 13)  # 12 bands for vb_shape_dist_db


def _mono(x: np.ndarray, sample_rate: int) -> np.ndarray:
    from vocalmix.core.dsp import mono_at

    return np.asarray(mono_at(x, sample_rate, _SR, remember=False), dtype=np.float32)


@dataclass(frozen=True)
class _Spectrum:
    """Mean power spectrum of the active frames and per-frame flatness."""

    freqs: np.ndarray  # Hz, (bins,)
    mean_power: np.ndarray  # (bins,), arbitrary scale
    flatness_db: float


def _spectrum(y: np.ndarray, active: np.ndarray | None = None) -> _Spectrum:
    n = len(y) // _N
    if n < 1:
        y = np.pad(y, (0, _N - len(y)))
        n = 1
    p = frame_power(y, _N, _N, n_frames=n)
    e = p.sum(axis=1)
    if active is None:
        keep = e > e.max() * 10 ** (-_ACTIVE_DB / 10) if e.max() > 0 else np.ones(n, bool)
    else:
        keep = active[:n] & (e > 0)
    if not keep.any():
        keep = np.ones(n, bool)
    p = p[keep]
    # a relative floor keeps silence and digital zeros from dominating the log average
    floor = 1e-12 * p.sum(axis=1, keepdims=True) / p.shape[1] + 1e-30
    q = p[:, 1:] + floor
    flat = np.exp(np.log(q).mean(axis=1)) / q.mean(axis=1)
    return _Spectrum(np.fft.rfftfreq(_N, 1.0 / _SR), p.mean(axis=0),
                     float(10.0 * np.log10(np.mean(flat))))


def _centroid_oct(s: _Spectrum) -> float:
    tot = s.mean_power.sum()
    if tot <= 0:
        return 0.0
    c = float((s.mean_power * s.freqs).sum() / tot)
    return float(np.log2(max(c, 20.0) / 1000.0))


def _share_db(s: _Spectrum, lo_hz: float, hi_hz: float) -> float:
    tot = s.mean_power.sum()
    band = s.mean_power[(s.freqs >= lo_hz) & (s.freqs < hi_hz)].sum()
    return float(10.0 * np.log10(band / tot + 1e-12)) if tot > 0 else -120.0


def _shape_db(s: _Spectrum) -> np.ndarray:
    """Level-normalised band levels (dB, mean 0) in the 12 shape bands."""
    idx = np.digitize(s.freqs, _SHAPE_EDGES_HZ) - 1
    e = np.array([s.mean_power[idx == k].sum() for k in range(len(_SHAPE_EDGES_HZ) - 1)])
    db = 10.0 * np.log10(e + e.max() * 1e-9 + 1e-30)
    return db - db.mean()


def _loudness_stats(x: np.ndarray, sample_rate: int, energy: np.ndarray | None = None
                    ) -> dict[str, float]:
    """Integrated loudness (LUFS), LRA (LU), momentary spread (LU) and sample peak (dBFS)
    of ``x`` from one K-weighting pass (BS.1770-4 / EBU Tech 3342 on 100 ms segment
    energies, as :mod:`vocalmix.core.measure` computes them). ``energy``: those segment
    energies when they were measured already (:func:`excerpt_energies`)."""
    from vocalmix.core.measure import (
        BlockStats,
        integrated_from_segments,
        lra_from_short_term,
        momentary_from_segments,
        sample_peak,
        short_term_from_segments,
    )

    st = (BlockStats.of(x, sample_rate, remember=False)  # an excerpt, analysed once
          if energy is None else BlockStats.of_energy(energy, sample_rate))
    e, seg = st.energy, st.segment_len
    # gated level-free (a quiet recording's absolute gate under its own loudest block):
    # the level-invariant features stay so for a take recorded 45 dB too quietly, whose
    # quieter phrases BS.1770-4's -70 LUFS gate cut off (its LRA read 3.5 LU low)
    integrated = (float(integrated_from_segments(e, seg, level_free=True)) if e.size >= 4
                  else -np.inf)
    lra = (float(lra_from_short_term(short_term_from_segments(e, seg), level_free=True))
           if e.size >= 30 else 0.0)
    spread = 0.0
    if e.size >= 4:
        spread = float(lra_from_short_term(momentary_from_segments(e, seg), level_free=True))
    peak = float(sample_peak(x).max()) if len(x) else 0.0
    with np.errstate(divide="ignore"):
        peak_db = 20.0 * np.log10(peak) if peak > 0 else -np.inf
    return {"integrated": integrated, "lra": lra, "spread": spread, "peak_db": peak_db}


def momentary_spread_lu(x: np.ndarray, sample_rate: int) -> float:
    """95th minus 10th percentile of gated momentary loudness (400 ms, 10 Hz), LU.

    Gates as for LRA (EBU Tech 3342): absolute -70 LUFS, relative -20 LU below the power
    mean; 0 when nothing passes. A difference of loudness figures: gain-invariant.
    """
    return _loudness_stats(x, sample_rate)["spread"]


def _onset_rate(yb: np.ndarray) -> float:
    from vocalmix.estimators.tempo import onset_strength

    try:
        env, fps = onset_strength(yb, _SR)
    except ValueError:
        return 0.0
    if env.size < 3 or not np.any(env > 0):
        return 0.0
    thr = env.mean() + env.std()
    peaks = (env[1:-1] > thr) & (env[1:-1] >= env[:-2]) & (env[1:-1] > env[2:])
    return float(peaks.sum() / (len(env) / fps))


def _activity(yv: np.ndarray) -> tuple[np.ndarray, float]:
    """Active 100 ms frames of the vocal (within 30 dB of its loudest) and their share."""
    hop = _SR // 10
    nf = len(yv) // hop
    if nf == 0:
        return np.zeros(1, bool), 0.0
    fe = (yv[: nf * hop].astype(np.float64).reshape(nf, hop) ** 2).sum(axis=1)
    if fe.max() <= 0:
        return np.zeros(nf, bool), 0.0
    act = fe > fe.max() * 10 ** (-_ACTIVE_DB / 10)
    return act, float(act.mean())


_PITCH_WIN, _PITCH_HOP = 1024, 512  # pitch frames: 46 ms every 23 ms at _SR
_PITCH_RANGE_HZ = (70.0, 1000.0)
_VOICED_PERIODICITY = 0.7


def pitch_track(y: np.ndarray, sample_rate: int = _SR) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Fundamental (Hz), periodicity (0-1) and energy of every pitch frame of ``y``.

    The normalised square difference function (McLeod and Wyvill, 2005) of 46 ms frames
    every 23 ms: ``2 r(tau) / m(tau)`` with ``r`` the autocorrelation and ``m`` the
    sum of the two overlapping parts' energies, 1 for a perfectly periodic frame. The
    period is the first local maximum within 90% of the highest one between 1 ms and
    14 ms (70-1000 Hz), refined by a parabola. Level-invariant.
    """
    w, h = _PITCH_WIN, _PITCH_HOP
    n = 1 + (len(y) - w) // h if len(y) >= w else 0
    if n < 1:
        z = np.zeros(0)
        return z, z, z
    from numpy.lib.stride_tricks import sliding_window_view

    fr = sliding_window_view(y, w)[::h][:n].astype(np.float64)  # the frames, copied once
    fr -= fr.mean(axis=1, keepdims=True)
    sq = fr * fr
    energy = sq.sum(axis=1)
    spec = rfft(fr, 2 * w, axis=1)
    t_lo = int(sample_rate / _PITCH_RANGE_HZ[1])
    t_hi = int(sample_rate / _PITCH_RANGE_HZ[0])
    # the function at the lags searched only (each lag's value is computed on its own)
    tau = np.arange(t_lo, min(t_hi + 1, w))
    r = irfft(spec.real**2 + spec.imag**2, axis=1)[:, tau]
    c = np.concatenate([np.zeros((n, 1)), np.cumsum(sq, axis=1)], axis=1)
    m = c[:, w - tau] + (c[:, w:w + 1] - c[:, tau])
    seg = 2.0 * r / np.maximum(m, 1e-30)
    peak = np.zeros(seg.shape, bool)
    peak[:, 1:-1] = (seg[:, 1:-1] >= seg[:, :-2]) & (seg[:, 1:-1] > seg[:, 2:])
    best = np.where(peak, seg, -1.0).max(axis=1)
    j = np.argmax(peak & (seg >= 0.9 * best[:, None]), axis=1)
    j = np.clip(j, 1, seg.shape[1] - 2)
    rows = np.arange(n)
    a, b, cc = seg[rows, j - 1], seg[rows, j], seg[rows, j + 1]
    den = a - 2.0 * b + cc
    off = np.zeros(n)
    np.divide(0.5 * (a - cc), den, out=off, where=np.abs(den) > 1e-12)
    f0 = sample_rate / (t_lo + j + np.clip(off, -1.0, 1.0))
    return f0, np.clip(best, 0.0, 1.0), energy


def _voice_features(yv: np.ndarray) -> tuple[float, float, float, float, float]:
    """``v_pitch_oct``, ``v_voiced_frac``, ``v_pitch_stability``, ``v_syllables_per_s``
    and ``v_periodicity`` of a mono vocal at _SR (see the table above)."""
    f0, per, e = pitch_track(yv)
    pitch_oct = voiced_frac = stability = periodicity = 0.0
    if e.size and e.max() > 0:
        active = e > e.max() * 10 ** (-_ACTIVE_DB / 10)
        voiced = active & (per >= _VOICED_PERIODICITY)
        periodicity = float(per[active].mean())
        voiced_frac = float(voiced.sum() / max(active.sum(), 1))
        lf = np.log2(f0 / 220.0)
        if voiced.sum() >= 5:
            pitch_oct = float(np.median(lf[voiced]))
        both = voiced[1:] & voiced[:-1]
        if both.sum() >= 5:
            stability = float((np.abs(12.0 * np.diff(lf))[both] < 0.5).mean())
    return pitch_oct, voiced_frac, stability, _syllable_rate(yv), periodicity


def _syllable_rate(yv: np.ndarray) -> float:
    hop = _SR // 100
    nf = len(yv) // hop
    if nf < 10:
        return 0.0
    env = (yv[: nf * hop].astype(np.float64).reshape(nf, hop) ** 2).mean(axis=1)
    if env.max() <= 0:
        return 0.0
    win = np.hanning(7)
    env = np.convolve(env, win / win.sum(), mode="same")
    db = 10.0 * np.log10(env + env.max() * 1e-6)
    peaks = find_peaks(db, prominence=4.0, distance=8)
    loud = db > db.max() - _ACTIVE_DB
    return float((loud[peaks]).sum() / max(loud.sum() / 100.0, 0.5))


def _percussive_db(yb: np.ndarray) -> float:
    hop = _N // 2
    n = len(yb) // hop - 1
    if n < 3:
        return 0.0
    p = frame_power(yb, _N, hop, n_frames=n, bins=_N // 4)  # (frames, bins below 5.5 kHz)
    # scipy.ndimage.median_filter(p, size=(9, 1) or (1, 9), mode="nearest")
    harmonic = median_filter1d(p, 9, axis=0).sum()
    percussive = median_filter1d(p, 9, axis=1).sum()
    if harmonic <= 0 or percussive <= 0:
        return 0.0
    return float(10.0 * np.log10(percussive / harmonic))


@dataclass(frozen=True)
class BackingPart:
    """What :func:`features` reads of the backing alone (an excerpt's): its spectral shape
    in the 12 shape bands, and the values of the backing's features that do not involve
    the vocal, in :data:`FEATURE_NAMES` order (the vocal/backing shape distance also
    needs the vocal's shape). A batch of takes over one instrumental, whose
    excerpts fall on the same windows, computes it once per window
    (:func:`vocalmix.estimators.level.excerpt_features`)."""

    #: the backing's level-normalised shape band levels, dB (:func:`_shape_db`)
    shape_db: np.ndarray
    #: b_centroid_oct, b_low_db, b_high_db, b_air_db, b_flatness_db, b_onsets_per_s,
    #: b_tempo_oct, b_crest_db, b_lra_lu, b_mom_spread_lu
    head: tuple[float, ...]
    #: b_mid_db, b_perc_db
    tail: tuple[float, ...]


def backing_part(backing: np.ndarray, sample_rate: int, *,
                 energy: np.ndarray | None = None) -> BackingPart:
    """The backing's share of :func:`features` (see :class:`BackingPart`). ``energy``:
    the backing's 100 ms K-weighted segment energies, when measured already
    (:func:`excerpt_energies`).

    Raises:
        ValueError: when the backing holds NaN or infinite samples.
    """
    from vocalmix.estimators.tempo import estimate_tempo

    if not np.all(np.isfinite(backing)):
        raise ValueError("features: the backing contains NaN or infinite samples")
    # read-only: the tempo and onset analyses of one track share one onset envelope
    # (remembered under a digest of its own: an excerpt's downmix is never met again)
    yb = frozen(_mono(backing, sample_rate), unique=True)
    b = _spectrum(yb)
    tempo = estimate_tempo(yb, _SR)
    tempo_oct = float(np.log2(tempo / 120.0)) if np.isfinite(tempo) and tempo > 0 else 0.0
    lb = _loudness_stats(backing, sample_rate, energy)
    crest = lb["peak_db"] - lb["integrated"] if np.isfinite(lb["integrated"]) else 0.0
    head = (_centroid_oct(b), _share_db(b, 0, 250), _share_db(b, 2000, 6000),
            _share_db(b, 6000, _SR / 2), b.flatness_db,
            _onset_rate(yb), tempo_oct, crest, lb["lra"], lb["spread"])
    return BackingPart(_shape_db(b), head, (_share_db(b, 250, 2000), _percussive_db(yb)))


def features(vocal: np.ndarray, backing: np.ndarray, sample_rate: int, *,
             part: BackingPart | None = None, energy: np.ndarray | None = None,
             backing_energy: np.ndarray | None = None) -> np.ndarray:
    """The feature vector (:data:`FEATURE_NAMES`) of one vocal/backing pair.

    Args:
        vocal, backing: float arrays ``(n, channels)`` (or ``(n,)``), same rate.
        sample_rate: Hz.
        part: :func:`backing_part` of ``backing``, when it was computed already.
        energy, backing_energy: the vocal's and the backing's 100 ms K-weighted segment
            energies, when measured already (:func:`excerpt_energies`; the backing's are
            not read when ``part`` is given).

    Returns:
        float64 ``(len(FEATURE_NAMES),)``, every value finite (a figure that cannot be
        measured, such as the loudness of silence, is 0).

    Raises:
        ValueError: when an input holds NaN or infinite samples.
    """
    if not np.all(np.isfinite(vocal)):
        raise ValueError("features: the vocal contains NaN or infinite samples")
    if part is None:
        part = backing_part(backing, sample_rate, energy=backing_energy)
    yv = frozen(_mono(vocal, sample_rate), unique=True)
    act, activity = _activity(yv)
    hop = _SR // 10
    nspec = max(len(yv) // _N, 1)
    idx = np.minimum((np.arange(nspec) * _N + _N // 2) // hop, len(act) - 1)
    v = _spectrum(yv, act[idx])
    lv = _loudness_stats(vocal, sample_rate, energy)
    shape = float(np.sqrt(np.mean((_shape_db(v) - part.shape_db) ** 2)))
    out = np.array([
        *part.head,
        _centroid_oct(v), v.flatness_db, activity, lv["lra"], lv["spread"], shape,
        *part.tail, *_voice_features(yv),
    ], dtype=np.float64)
    return np.where(np.isfinite(out), out, 0.0)


# --- the raw-take perturbation ----------------------------------------------------------


@dataclass(frozen=True)
class Perturbation:
    """How a mixed vocal was made to look like a raw take (for logs and tests).

    Attributes:
        gain_db: static gain, dB.
        ride_db: standard deviation of the slow gain-riding curve, dB.
        ride_period_s: spacing of the riding curve's knots, s.
        expansion_ratio: upward-expansion ratio (1 = none): above the threshold, every
            dB of the vocal's envelope becomes ``ratio`` dB.
        threshold_pct: expansion threshold, percentile of the active envelope levels.
    """

    gain_db: float
    ride_db: float
    ride_period_s: float
    expansion_ratio: float
    threshold_pct: float


# Ranges of the perturbation (uniform draws). Mixing engineers ride a vocal's level by a
# few dB phrase by phrase and compress it at moderate ratios (2:1-4:1 over a few dB of
# gain reduction); undoing that means riding back by up to ~4 dB (sd) and expanding upward
# at up to 2:1 above a mid-level threshold. Raw amateur takes (MIR-1K, 220 clips) are no
# more dynamic than the mixed excerpts here by LRA (median 3.2 LU on 6-11 s clips against
# 2.0 LU on 6 s mixed excerpts), so the ranges stay moderate: on the shared stems they
# raise a 6 s excerpt's LRA by about 0.7 LU on average (sd 1) and a whole song's by about
# 2 LU (the evaluation report gives the figures for the data it ran on).
GAIN_RANGE_DB = (-12.0, 12.0)
RIDE_RANGE_DB = (0.0, 4.0)
RIDE_PERIOD_RANGE_S = (1.0, 3.0)
EXPANSION_RANGE = (1.0, 2.0)
THRESHOLD_PCT_RANGE = (30.0, 70.0)


def draw_perturbation(rng: np.random.Generator) -> Perturbation:
    """A random :class:`Perturbation` from the ranges above."""
    return Perturbation(
        gain_db=float(rng.uniform(*GAIN_RANGE_DB)),
        ride_db=float(rng.uniform(*RIDE_RANGE_DB)),
        ride_period_s=float(rng.uniform(*RIDE_PERIOD_RANGE_S)),
        expansion_ratio=float(rng.uniform(*EXPANSION_RANGE)),
        threshold_pct=float(rng.uniform(*THRESHOLD_PCT_RANGE)),
    )


_ENV_HOP_S = 0.005  # the perturbation's gain curve is computed every 5 ms, then interpolated


def _envelope_db(x: np.ndarray, sample_rate: int, window_s: float = 0.05
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed level every 5 ms: ``(times in samples, dB re full scale)``, the mean
    power over ``window_s`` centred on each time (channels averaged)."""
    p = np.asarray(x, dtype=np.float32)
    p = (p * p).mean(axis=1) if p.ndim == 2 else p * p
    hop = max(1, int(round(_ENV_HOP_S * sample_rate)))
    half = max(1, int(window_s * sample_rate) // 2)
    c = np.concatenate([[0.0], np.cumsum(p, dtype=np.float64)])
    t = np.arange(0, len(p), hop)
    lo, hi = np.maximum(t - half, 0), np.minimum(t + half, len(p))
    ms = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    return t, 10.0 * np.log10(np.maximum(ms, 0.0) + 1e-20)


def apply_perturbation(vocal: np.ndarray, sample_rate: int, p: Perturbation,
                       rng: np.random.Generator) -> np.ndarray:
    """Apply ``p`` to a vocal ``(n, channels)``: expansion, riding, then the static gain.

    The expansion threshold is a percentile of the vocal's own active envelope (levels
    within 40 dB of its loudest), so the result is the same for any input gain (up to
    that gain). ``rng`` draws the riding curve's knot values.
    """
    x = np.asarray(vocal, dtype=np.float32)
    n = x.shape[0]
    t, env = _envelope_db(x, sample_rate)
    gain_db = np.zeros(len(t))
    if p.expansion_ratio > 1.0 and len(t):
        active = env[env > env.max() - 40.0]
        thr = float(np.percentile(active, p.threshold_pct)) if active.size else env.max()
        gain_db += (p.expansion_ratio - 1.0) * np.maximum(env - thr, 0.0)
    knots = max(2, int(np.ceil(n / sample_rate / p.ride_period_s)) + 1)
    curve = rng.normal(0.0, p.ride_db, knots) if p.ride_db > 0 else np.zeros(knots)
    gain_db += np.interp(t / max(n - 1, 1) * (knots - 1.0), np.arange(knots), curve)
    gain_db += p.gain_db
    g = (10.0 ** (np.interp(np.arange(n), t, gain_db) / 20.0)).astype(np.float32)
    return (x * (g[:, None] if x.ndim == 2 else g)).astype(np.float32)


def perturb_vocal(vocal: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A mixed vocal made to look like a raw take: a random static gain (+-12 dB), slow
    gain riding and upward expansion (see :class:`Perturbation` and the ranges above)."""
    return apply_perturbation(vocal, sample_rate, draw_perturbation(rng), rng)


def excerpts(n: int, sample_rate: int, length_s: float = 6.0, hop_s: float = 3.0) -> list[slice]:
    """Overlapping excerpt windows of ``length_s`` every ``hop_s`` (the whole signal if
    shorter than one window; a last window is aligned to the end so no tail is lost)."""
    L, H = int(length_s * sample_rate), max(1, int(hop_s * sample_rate))
    if n <= L:
        return [slice(0, n)]
    starts = list(range(0, n - L + 1, H))
    if n - L - starts[-1] > H // 2:
        starts.append(n - L)
    return [slice(s, s + L) for s in starts]


def excerpt_energies(whole: np.ndarray, segment_len: int, w: slice) -> np.ndarray | None:
    """The 100 ms K-weighted segment energies of an excerpt ``x[w]``, read from those of
    the whole signal ``x`` (``whole``: :meth:`~vocalmix.core.measure.BlockStats.of`,
    segments of ``segment_len`` samples) instead of K-weighting the excerpt again;
    ``None`` when ``w`` does not start on a segment boundary or runs past ``whole`` (then
    the excerpt is measured on its own).

    The whole signal's filter enters the excerpt with the state that the samples before
    it left, where the excerpt's own pass starts from rest: only the excerpt's first
    segment differs, by the filter's response to that state (a few milliseconds of it),
    and every other segment is the same sum of the same filtered samples."""
    if w.start % segment_len:
        return None
    a = w.start // segment_len
    n = (w.stop - w.start) // segment_len
    if a + n > whole.size:
        return None
    return whole[a : a + n]


def vocal_excerpts(vocal: np.ndarray, sample_rate: int, length_s: float = 6.0,
                   hop_s: float = 3.0, max_n: int | None = None,
                   min_rel_lu: float = -15.0, backing: np.ndarray | None = None
                   ) -> list[slice]:
    """Excerpt windows (:func:`excerpts`) in which the vocal sings.

    A window qualifies when the integrated loudness (BS.1770-4) of its vocal is at least
    ``min_rel_lu`` LU re that of the whole vocal: a relative rule, so the same windows
    are chosen at any vocal gain. Given the ``backing`` (same length), the backing must
    also play in at least half of the window's 400 ms blocks (above the absolute gate of
    -70 LUFS: :func:`~vocalmix.core.measure.audible_blocks`): a window after a shorter
    backing has ended (padded with silence) shows the vocal over nothing, which is not
    what the level model was trained on. Falls back to every window when none
    qualifies. With ``max_n``, at most that many qualifying windows, evenly spaced
    (inference on long songs). Training and inference use the same rule.
    """
    from vocalmix.core.measure import BlockStats, audible_blocks, integrated_from_segments

    wins = excerpts(vocal.shape[0], sample_rate, length_s, hop_s)
    st = BlockStats.of(vocal, sample_rate)
    whole = float(integrated_from_segments(st.energy, st.segment_len))
    if np.isfinite(whole) and len(wins) > 1:
        plays = (None if backing is None else
                 audible_blocks(BlockStats.of(backing, sample_rate).energy, st.segment_len))
        keep = []
        for w in wins:
            a, b = w.start // st.segment_len, w.stop // st.segment_len
            i = float(integrated_from_segments(st.energy[a:b], st.segment_len))
            if not (np.isfinite(i) and i >= whole + min_rel_lu):
                continue
            if plays is not None:
                inside = plays[a: max(a + 1, b - 3)]  # the blocks wholly inside the window
                if not (inside.size and inside.mean() >= 0.5):
                    continue
            keep.append(w)
        wins = keep or wins
    if max_n is not None and len(wins) > max_n:
        pick = np.unique(np.round(np.linspace(0, len(wins) - 1, max_n)).astype(int))
        wins = [wins[i] for i in pick]
    return wins


#: a take is said to hold no pitched voice when none of its :data:`VOICE_CHECK_EXCERPTS`
#: excerpts reaches a mean periodicity (``v_periodicity``) of :data:`NO_VOICE_PERIODICITY`
#: or a voiced share (``v_voiced_frac``) of :data:`NO_VOICE_VOICED_SHARE`. Measured on the
#: shared data and on noise (:func:`voicing`): breaths, sibilants, white room tone and
#: noise bursts read a periodicity of 0.11-0.20 and no voiced frame, red noise 0.11-0.13
#: and a voiced share of 0.02-0.04; the 88 mixed vocal stems read a periodicity of 0.38 and
#: up (screamed metal vocals the lowest, with voiced shares down to 0.03), the 220 amateur
#: karaoke takes 0.74 and up, and a quarter of those takes under white noise as loud as
#: the voice 0.34 and up. Only a take low on both is said to hold no voice
NO_VOICE_PERIODICITY = 0.25
NO_VOICE_VOICED_SHARE = 0.05
VOICE_CHECK_EXCERPTS = 4


@dataclass(frozen=True)
class Voicing:
    """How much pitched voice a take holds, read on excerpts in which it sings
    (:func:`voicing`: up to :data:`VOICE_CHECK_EXCERPTS`; :func:`voicing_of_rows`: the
    level model's).

    Attributes:
        voiced_share: the highest voiced share of an excerpt's active frames (0-1).
        periodicity: the highest mean periodicity of an excerpt's active frames (0-1).
        n_excerpts: how many excerpts were read.
    """

    voiced_share: float
    periodicity: float
    n_excerpts: int

    @property
    def pitched(self) -> bool:
        """Whether any excerpt holds a pitched voice (see :data:`NO_VOICE_PERIODICITY`)."""
        return (self.periodicity >= NO_VOICE_PERIODICITY
                or self.voiced_share >= NO_VOICE_VOICED_SHARE)

    def warning(self) -> str | None:
        """The warning note for a take that holds no pitched voice, else ``None``."""
        if self.pitched:
            return None
        return (f"warning: the vocal holds no pitched voice: in {self.n_excerpts} "
                f"excerpt(s) of it, {100.0 * self.voiced_share:.0f} % of the sounding "
                f"frames at most are voiced and their periodicity averages at most "
                f"{self.periodicity:.2f}, where singing, screams included, reads about 0.4 and "
                "over: it sounds like breaths, whispers, sibilants or noise, and it is "
                "mixed as a vocal; check the vocal file")


def voicing_of_rows(rows: np.ndarray) -> Voicing:
    """:class:`Voicing` of the excerpts whose feature rows (:data:`FEATURE_NAMES`) are
    ``rows`` ``(n, features)``: their ``v_voiced_frac`` and ``v_periodicity``, the
    highest of each (the level model's rows hold them already: no second pitch track)."""
    x = np.atleast_2d(rows)
    if x.shape[0] == 0:
        return Voicing(0.0, 0.0, 0)
    share = float(x[:, FEATURE_NAMES.index("v_voiced_frac")].max())
    per = float(x[:, FEATURE_NAMES.index("v_periodicity")].max())
    return Voicing(share, per, int(x.shape[0]))


def voicing(vocal: np.ndarray, sample_rate: int,
            max_excerpts: int = VOICE_CHECK_EXCERPTS) -> Voicing:
    """:class:`Voicing` of a take ``(n, channels)`` at ``sample_rate`` Hz: the voiced share
    and periodicity of :func:`pitch_track`'s frames (``v_voiced_frac`` and
    ``v_periodicity``) on up to ``max_excerpts`` of the 6 s excerpts in which it sings
    (:func:`vocal_excerpts`, evenly spaced), the highest of each. About 0.01 s of CPU per
    excerpt; level-invariant."""
    wins = vocal_excerpts(vocal, sample_rate, max_n=max_excerpts)
    share = per = 0.0
    for w in wins:
        _oct, v, _stab, _syl, p = _voice_features(_mono(vocal[w], sample_rate))
        share, per = max(share, v), max(per, p)
    return Voicing(share, per, len(wins))


__all__ = [
    "FEATURE_NAMES",
    "NO_VOICE_PERIODICITY",
    "NO_VOICE_VOICED_SHARE",
    "VOICE_CHECK_EXCERPTS",
    "FEATURE_VERSION",
    "PERTURBATION_VERSION",
    "BackingPart",
    "Perturbation",
    "apply_perturbation",
    "backing_part",
    "draw_perturbation",
    "excerpt_energies",
    "excerpts",
    "features",
    "momentary_spread_lu",
    "perturb_vocal",
    "pitch_track",
    "vocal_excerpts",
    "Voicing",
    "voicing",
    "voicing_of_rows",
]
