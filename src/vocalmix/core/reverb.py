"""Reverberation time (ISO 3382-1, Schroeder integration) and the Freeverb calibration.

Measurement
-----------
All functions take an impulse response (IR) as a numpy array, mono ``(n,)`` or
multichannel ``(n, c)`` (the energy is summed over channels), and its sample rate in Hz.

* Onset (direct sound): the first sample whose energy is within 20 dB of the IR's maximum
  (:func:`onset_index`). Everything before it (pre-delay, pre-ringing) is ignored.
* Energy decay curve (:func:`schroeder_edc_db`): Schroeder's backward integral of the
  squared IR from the onset, in dB re its value at the onset.
* Noise floor (a simplified Lundeby et al. 1995 iteration, see :func:`noise_truncation`):
  the IR's energy envelope is averaged in 10 ms windows; the floor is first taken as the
  mean energy of the last 10 % of the IR; a line fitted to the envelope from its peak to
  the last window more than 10 dB above the floor gives a first crossing point (where the
  decay meets the floor); then up to five times the window is set to 5 windows per 10 dB
  of decay (at least 2 ms), the floor is re-measured from 10 dB of decay past the
  crossing point (at least the last 10 % of the IR), the late decay is re-fitted over
  the final stretch from 25 dB to 5 dB above the floor, and the crossing point moved.
  The floor's mean energy is then subtracted from the squared IR, the integral is
  truncated at the crossing point, and the energy the truncation cuts off is added back
  as the integral of the fitted late decay beyond it (ISO 3382-1 truncation with
  compensation, plus noise subtraction: on exponential decays with a floor 45 to 50 dB
  down, subtraction removes a +1.5 to +3.5 % bias of T30). An IR that does not reach a
  floor (a file trimmed while its decay still falls: over its last 20 % the envelope
  falls by 3 dB or more, at least half as fast as the fitted decay, and within 6 dB of
  its line; see :func:`_cut_in_decay`) has nothing subtracted, is integrated to its end
  and compensated the same way. Read as a floor, the end of a decay cut 40 dB down took
  6-7 % off T30. A file that fades its floor out at the end (:func:`_fade_start`: a
  stretch of floor, flat within 2 dB, followed by an end that sinks 12 dB or more under
  it over no longer than that stretch) is measured as if it ended before the fade: read
  on the faded last tenth, the floor came out too low, the flat floor was fitted as
  decay, and T30 came out up to several times too long.
* T30 / T20 / EDT (:func:`reverberation_time`): least-squares line through the EDC from
  -5 to -35 dB (T30), -5 to -25 dB (T20), or 0 to -10 dB (EDT), extrapolated to a 60 dB
  decay. ``nan`` when the (truncated) EDC does not reach the lower end of the range.
* Too noisy for T20 (:func:`noise_model_decay_s`): a decay plus a flat floor,
  ``A 10^(-6 t / T) + N``, fitted to the energy envelope in dB from 5 dB under its
  peak to its end (Xiang's decay-plus-noise regression, on the envelope). Not an ISO
  3382 figure: what the reverb fit aims at in a band whose T30 and T20 cannot be
  measured.
* Octave bands (``band_hz``): zero-phase Butterworth band-pass (order 3, applied forward
  and backward) from fc/sqrt(2) to fc*sqrt(2) before any of the above.
* C50 (:func:`clarity_c50_db`): energy of the first 50 ms from the onset over the energy
  after it, dB (no noise compensation).

Synthetic reverb
----------------
:func:`render_synthetic_ir` renders the wet impulse response of MixParams' ``synthetic``
reverb type: Gaussian noise (fixed seeds, so every render is bit-identical) split into
octave bands by complementary FFT weights (raised-cosine in log frequency, centred on
``DECAY_BANDS_HZ``, summing to one at every frequency), each band multiplied by its own
exponential energy decay, ``10^(-6 t / T_b)`` (60 dB in ``T_b`` seconds), and summed.
Its T30 is therefore ``T_b`` by construction in every band (checked with the routine
above in the tests), with no calibration table. Each channel is normalised so that its
*vocal-weighted* energy (:func:`vocal_weighted_energy`) is 1, so a send gain
``wet_level_db`` is the reverberant-to-direct energy ratio for a vocal.

The level of a send
-------------------
A reverb's wet energy for a given input depends on the input's spectrum unless the
reverb is spectrally flat, which a damped one is not. ``wet_level_db`` is therefore
defined, for both reverb types, as the reverberant-to-direct energy ratio of the send
for a centred vocal (both channels equal) whose long-term spectrum is that of a finished
vocal: :data:`REFERENCE_VOCAL_DENSITY_DB`, the mean power spectral density of the 88
professionally mixed vocal stems of the MUSDB18 7 s training excerpts (1/3-octave bands,
dB re the 1 kHz band). :func:`vocal_weighted_energy` is an impulse response's energy
weighted by that spectrum (``sum_f S(f) |H(f)|^2 / sum_f S(f)``; the plain energy for a
flat spectrum). A particular vocal's ratio differs from the label by how its spectrum
meets the reverb's response: on those 88 vocals (as centred mono) the ``synthetic``
send's mean error is -0.1 dB with an sd of 0.35 dB (98 % within 1 dB); the
``freeverb``'s mean error is -0.1 to 0.0 dB with an sd of 0.6 dB in large rooms and
0.95 dB in small ones (73 to 91 % within 1 dB: its sparse comb resonances meet a
voice's harmonics). A wide stereo vocal gets up to 3 dB less from ``freeverb``, which
sums both channels.

Freeverb calibration
--------------------
``pedalboard.Reverb`` (JUCE's Freeverb: 8 damped combs, comb feedback
``0.7 + 0.28 * room_size``, damping coefficient ``0.4 * damping``, then 4 all-passes) has
no decay-time knob. ``scripts/calibrate_reverb.py`` renders its wet impulse response
(:func:`render_freeverb_ir`) on a grid of room_size (0 to 1, step 0.025) x damping
(23 values from 0 to 1, dense near 0, where T30 falls fastest: at room_size 1 it is
11.3 s at damping 0, 10.1 s at 0.01 and 9.8 s from 0.03 on), measures the broadband T30
of each with the method above, and writes ``assets/freeverb_calibration.json`` (shipped
package data). The comb and all-pass delays are rescaled to the sample rate (constant in
seconds) while the one-pole damping filter's coefficient is per sample, so the rate could
matter only through the damping; measured at 22.05, 48 and 96 kHz the broadband T30 stays
within 1.0 % of the 44.1 kHz value (the script stores that check in the JSON), well
inside the 3 % the mapping aims at, so one 44.1 kHz table serves every rate.

The same script calibrates Freeverb's **wet energy**, which pedalboard's ``wet_level``
does not fix: at ``wet_level = 1`` the wet output of a centred vocal carries 4 to 17 dB
more energy than the vocal (more for larger, less damped rooms). For every grid point it
stores the vocal-weighted energy of the two output channels at width 1 (``wet_energy_db``:
their mean, dB) and their weighted cross-energy over that mean (``wet_cross``);
JUCE's width mixes the two (``out_L = a L + b R``, ``a = (1 + width) / 2``, ``b = (1 -
width) / 2``), so the energy at any width follows exactly: ``(a^2 + b^2) E + 2 a b C``.
:func:`freeverb_wet_offset_db` interpolates both like the T30 (log energy linear in
damping, piecewise linear on the warped room axis) and returns minus the energy in dB:
the gain :func:`wet_gain_db` adds to ``wet_level_db`` so that the send's
reverberant-to-direct ratio is ``wet_level_db``. The rate changes the wet energy by at
most about 0.3 dB (stored check), so the 44.1 kHz table serves every rate here too.

:func:`decay_for_room_size` and its exact inverse :func:`room_size_for_decay`
interpolate log(T30) linearly over damping between table rows and piecewise linearly
along the room axis warped to ``x = log(-log(0.7 + 0.28 * room_size))`` (Freeverb's
T60 is proportional to 1 / -log(feedback), so log T30 is close to linear in x).
Renders half-way between grid points agree with the interpolation within 0.2 %.
The reachable T30 (:func:`decay_range_s`) is 0.64 to 11.3 s at damping 0, 0.54 to 9.76 s
at damping 0.5 and 0.52 to 9.72 s at damping 1; a requested decay outside the range is
clipped to it.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

import numpy as np

from vocalmix.core.errors import ParamsError

__all__ = [
    "CALIBRATION_RESOURCE",
    "REFERENCE_VOCAL_CENTRES_HZ",
    "REFERENCE_VOCAL_DENSITY_DB",
    "band_filter",
    "calibration",
    "clarity_c50_db",
    "decay_for_room_size",
    "decay_range_s",
    "freeverb_t60_estimate_s",
    "freeverb_wet_offset_db",
    "noise_model_decay_s",
    "noise_truncation",
    "octave_bands_hz",
    "onset_index",
    "render_freeverb_ir",
    "render_synthetic_ir",
    "synthetic_band_noise",
    "synthetic_band_weights",
    "synthetic_ir_from_noise",
    "reverberation_time",
    "room_size_for_decay",
    "schroeder_edc_db",
    "vocal_weighted_energy",
    "vocal_weights",
    "wet_gain_db",
]

#: Octave-band centre frequencies (Hz) used for band-wise reverberation times.
octave_bands_hz: tuple[int, ...] = (125, 250, 500, 1000, 2000, 4000)

#: Package-relative path of the shipped calibration table.
CALIBRATION_RESOURCE = "assets/freeverb_calibration.json"

#: EDC evaluation ranges (upper dB, lower dB) per kind of reverberation time.
_FITS: dict[str, tuple[float, float]] = {
    "T30": (-5.0, -35.0),
    "T20": (-5.0, -25.0),
    "EDT": (0.0, -10.0),
}
_ONSET_DB = 20.0

#: 1/3-octave centres (Hz) of :data:`REFERENCE_VOCAL_DENSITY_DB`
REFERENCE_VOCAL_CENTRES_HZ: tuple[float, ...] = tuple(
    round(1000.0 * 2.0 ** (k / 3.0), 1) for k in range(-16, 14))
#: the mean power spectral density (dB per Hz, re the 1 kHz band) of the 88 finished
#: vocal stems of the MUSDB18 7 s training excerpts (each stem's active 8192-point frames,
#: mono downmix, its spectrum normalised to unit energy, then averaged: the spectrum for
#: which a send's reverberant-to-direct ratio, averaged over those vocals, is exact), on
#: :data:`REFERENCE_VOCAL_CENTRES_HZ` (25 Hz-20 kHz; the 20 kHz band, empty in the
#: AAC-coded stems, is set to -60 dB): the spectrum ``wet_level_db`` is defined for
REFERENCE_VOCAL_DENSITY_DB: tuple[float, ...] = (
    -12.8, -13.7, -14.8, -15.8, -15.0, -10.7, -7.9, -3.9, -1.0, 2.2, 3.7, 4.0, 3.2, 4.1,
    3.3, 0.9, 0.0, -2.4, -5.0, -8.5, -10.0, -11.9, -14.4, -20.3, -20.5, -20.6, -23.8, -29.0,
    -38.2, -60.0)

# Freeverb (JUCE) constants, for the render-length estimate and the room-axis warp.
_FV_ROOM_SCALE, _FV_ROOM_OFFSET = 0.28, 0.7
_FV_MEAN_COMB_S = (1116 + 1188 + 1277 + 1356 + 1422 + 1491 + 1557 + 1617) / 8 / 44100.0


# --- input checks -----------------------------------------------------------------------


def _check_rate(sample_rate: int) -> int:
    try:
        ok = float(sample_rate) == int(sample_rate) and int(sample_rate) > 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _as_ir(ir: np.ndarray) -> np.ndarray:
    x = np.asarray(ir, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"impulse response must be 1-D (n,) or 2-D (n, channels), got {x.shape}")
    if x.size == 0 or x.shape[0] == 0:
        raise ValueError("impulse response is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("impulse response contains NaN or infinite samples")
    return x


def _energy(ir: np.ndarray) -> np.ndarray:
    """Squared IR summed over channels, float64 ``(n,)``; raises on silence."""
    x = _as_ir(ir)
    e = x**2 if x.ndim == 1 else (x**2).sum(axis=1)
    if not e.max() > 0.0:
        raise ValueError("impulse response is silent (all samples are zero)")
    return e


# --- measurement ------------------------------------------------------------------------


def onset_index(ir: np.ndarray) -> int:
    """Sample index of the direct sound: the first sample within 20 dB of the maximum.

    Args:
        ir: impulse response, ``(n,)`` or ``(n, channels)`` (energy summed over channels).

    Returns:
        index into ``ir`` (samples).
    """
    return _onset_of(_energy(ir))


def _onset_of(e: np.ndarray) -> int:
    """:func:`onset_index` of the squared IR ``e`` (energy per sample)."""
    return int(np.argmax(e >= e.max() * 10.0 ** (-_ONSET_DB / 10.0)))


@lru_cache(maxsize=64)
def _band_sos(sample_rate: int, band_hz: float) -> np.ndarray:
    """Second-order sections of the octave band-pass around ``band_hz`` (designed once)."""
    lo, hi = band_hz / math.sqrt(2.0), min(band_hz * math.sqrt(2.0), 0.49 * sample_rate)
    if lo >= hi:
        raise ValueError(
            f"octave band {band_hz:g} Hz lies above the Nyquist frequency ({sample_rate / 2:g} Hz)")
    from scipy.signal import butter  # IR analysis only: not on the mixing path

    sos = butter(3, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    return sos


def band_filter(ir: np.ndarray, sample_rate: int, band_hz: float) -> np.ndarray:
    """Octave band of ``ir`` around ``band_hz`` (Hz), float64, same shape as ``ir``.

    Zero-phase Butterworth band-pass, order 3 run forward and backward
    (``scipy.signal.sosfiltfilt``), edges ``band_hz / sqrt(2)`` and ``band_hz * sqrt(2)``
    (the upper edge is capped at 0.49 x the sample rate). The IR is padded with 50 ms of
    zeros at both ends (and the padding removed afterwards) instead of sosfiltfilt's
    default odd extension, which mirrors an impulse at sample 0 (a send's dry sound)
    into a long low-frequency transient that would ruin the early decay.
    """
    sr = _check_rate(sample_rate)
    x = _as_ir(ir)
    fc = float(band_hz)
    if not (math.isfinite(fc) and fc > 0.0):
        raise ValueError(f"band_hz must be a positive frequency in Hz, got {band_hz!r}")
    sos = _band_sos(sr, fc)
    padlen = 3 * (2 * len(sos) + 1)
    if x.shape[0] <= padlen:
        raise ValueError(f"impulse response too short to band-filter: {x.shape[0]} samples")
    pad = max(padlen, int(round(0.05 * sr)))
    widths = [(pad, pad)] + [(0, 0)] * (x.ndim - 1)
    from scipy.signal import sosfiltfilt

    y = sosfiltfilt(sos, np.pad(x, widths), axis=0, padtype=None)
    return y[pad:pad + x.shape[0]]


def _block_means(e: np.ndarray, win: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean energy in consecutive windows of ``win`` samples and the windows' centre times."""
    k = max(1, e.size // win)
    if e.size < win:
        win = e.size
    env = e[: k * win].reshape(k, win).mean(axis=1)
    t = (np.arange(k) * win + 0.5 * win) / sample_rate
    return env, t


def _line(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``y = a * t + b`` -> (a, b)."""
    tm, ym = t.mean(), y.mean()
    dt = t - tm
    den = float((dt * dt).sum())
    a = float((dt * (y - ym)).sum() / den) if den > 0 else 0.0
    return a, float(ym - a * tm)


def noise_truncation(e: np.ndarray, sample_rate: int) -> tuple[int, float, float] | None:
    """Noise floor, where the decay meets it, and the decay's energy beyond that point.

    Simplified Lundeby iteration (see the module docstring).

    Args:
        e: squared IR from the onset on (energy per sample, summed over channels).
        sample_rate: Hz.

    Returns:
        ``(end, tail, noise)``: the crossing point ``end`` (samples; integrate ``e[:end]``),
        ``tail``, the energy of the fitted late decay after ``end`` (same units as
        ``e.sum()``), and ``noise``, the floor's mean energy per sample. A file that ends
        while its decay still falls (:func:`_cut_in_decay`: an IR trimmed to length) has
        no floor to find: ``end`` is its last sample and ``noise`` is 0. ``None`` when
        ``e`` does not decay (it never rises 10 dB above its last 10 %, or the fitted
        slope is not negative, e.g. steady noise). A file that fades its floor out
        (:func:`_fade_start`) is measured as if it ended where the fade starts.
    """
    nz = np.flatnonzero(e > 0)
    n = int(nz[-1]) + 1 if nz.size else e.size
    n = _fade_start(e[:n], sample_rate)
    e = e[:n]
    scale = float(e.max())
    tiny = 1e-30

    def db(v: np.ndarray | float) -> np.ndarray:
        return 10.0 * np.log10(np.maximum(np.asarray(v, dtype=np.float64) / scale, tiny))

    def after_last_above(env_db: np.ndarray, level_db: float, start: int) -> int:
        """Index after the last window (from ``start`` on) above ``level_db``."""
        above = np.flatnonzero(env_db[start:] > level_db)
        return start + int(above[-1]) + 1 if above.size else start

    # "Last window above a level" rather than "first below" keeps a gap between the direct
    # sound and the reverb (a send with pre-delay, band-filtered) from ending the decay.
    win = max(1, min(int(round(0.01 * sample_rate)), n // 10))  # 10 ms, 10 windows at least
    env, t = _block_means(e, win, sample_rate)
    if env.size < 3:
        return None
    env_db = db(env)
    noise_db = float(db(e[int(0.9 * n):].mean()))
    i0 = int(np.argmax(env))
    stop = after_last_above(env_db, noise_db + 10.0, i0)
    if stop - i0 < 2:
        return None
    slope, icpt = _line(t[i0:stop], env_db[i0:stop])  # dB/s, dB
    if not slope < 0:
        return None
    tc = (noise_db - icpt) / slope
    min_win = max(1, int(round(0.002 * sample_rate)))
    for _ in range(5):
        per10 = 10.0 / -slope  # seconds per 10 dB of decay
        win = int(np.clip(round(per10 / 5.0 * sample_rate), min_win, max(min_win, n // 10)))
        env, t = _block_means(e, win, sample_rate)
        env_db = db(env)
        start = int(min(max(tc + per10, 0.0) * sample_rate, 0.9 * n))
        noise_db = float(db(e[start:].mean()))
        i0 = int(np.argmax(env))
        lo = after_last_above(env_db, noise_db + 5.0, i0)
        hi = min(after_last_above(env_db, noise_db + 25.0, i0), lo)
        if lo - hi < 2:
            hi = i0
        if lo - hi < 2:
            break
        s, c = _line(t[hi:lo], env_db[hi:lo])
        if not s < 0:
            break
        slope, icpt = s, c
        tc_new = (noise_db - icpt) / slope
        done = abs(tc_new - tc) < win / sample_rate
        tc = tc_new
        if done:
            break
    noise = scale * 10.0 ** (noise_db / 10.0)
    if _cut_in_decay(env_db, t, slope, icpt, n / sample_rate):
        # the file ends before the decay reaches a floor: what was read as noise is the
        # decay's own end. Nothing is subtracted, and the decay beyond the file's end is
        # added back as it was fitted
        tc, noise = n / sample_rate, 0.0
    end = int(np.clip(round(tc * sample_rate), 1, n))
    level = scale * 10.0 ** ((icpt + slope * end / sample_rate) / 10.0)  # energy/sample
    tail = level * sample_rate * 10.0 / (-slope * math.log(10.0))
    return end, float(tail), noise


#: the share of a file's end whose envelope tells a noise floor (flat) from a decay cut
#: off by the file's end (still falling), and how far that end may lie from the fitted
#: decay's line (dB) to count as the decay itself
_END_SHARE = 0.2
_END_ON_LINE_DB = 6.0
#: the least fall (dB) over that share for it to count as a decay
_END_FALL_DB = 3.0


#: a faded-out end: the longest share of the file (after its peak) the fade may take,
#: how flat (dB, between the halves' mean energies) the stretch before it must be, and how
#: far (dB) under that stretch the fade's last fifth must lie
_FADE_MAX_SHARE = 0.45
_FADE_FLAT_DB = 2.0
_FADE_DROP_DB = 12.0


def _fade_start(e: np.ndarray, sample_rate: int) -> int:
    """Where a file that fades its noise floor out starts to fade (samples; ``e.size``
    when it does not).

    ``e`` is the squared IR (energy per sample) from its onset on. In 10 ms windows
    (counted back from the file's end), a fade of ``f`` windows is found when the ``f``
    windows before it are flat (the mean energies of their two halves within
    :data:`_FADE_FLAT_DB`) and the mean energy of the fade's last fifth lies
    :data:`_FADE_DROP_DB` or more under theirs. An exponential decay cannot do both:
    flat within 2 dB between the halves, it falls at most 4 dB over ``f`` windows, so
    at most 8 dB from the flat stretch's start to the file's end. The
    longest such ``f`` (up to :data:`_FADE_MAX_SHARE` of the windows after the peak) is
    taken, so the point returned lies in the floor, before the fade, rather than in it.
    A floor shorter than its fade is not found (the file is measured whole).
    """
    n = e.size
    win = max(1, min(int(round(0.01 * sample_rate)), n // 20))
    k = n // win
    if k < 12:
        return n
    env = e[n - k * win:].reshape(k, win).mean(axis=1)  # windows aligned to the file's end
    csum = np.concatenate(([0.0], np.cumsum(env)))
    i0 = int(np.argmax(env))
    f = np.arange(4, min(int(_FADE_MAX_SHARE * (k - i0)), (k - i0 - 1) // 2) + 1)
    if f.size == 0:
        return n

    def mean(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
        return np.maximum((csum[b] - csum[a]) / (b - a), 1e-300)

    a0, p, h = k - 2 * f, k - f, k - 2 * f + f // 2  # flat stretch [a0, p), fade [p, k)
    flat = np.abs(10.0 * np.log10(mean(a0, h) / mean(h, p))) <= _FADE_FLAT_DB
    drop = 10.0 * np.log10(mean(k - np.maximum(1, f // 5), k) / mean(a0, p))
    found = np.flatnonzero(flat & (drop <= -_FADE_DROP_DB))
    return n - int(f[found[-1]]) * win if found.size else n


def _cut_in_decay(env_db: np.ndarray, t: np.ndarray, slope: float, icpt: float,
                  length_s: float) -> bool:
    """Whether an IR ends during its decay instead of in a noise floor: over the last
    :data:`_END_SHARE` of the file (3 envelope windows at least), the envelope
    ``env_db`` (dB, at times ``t``, s) still falls at least half as fast as the fitted
    decay ``slope`` (dB/s; ``icpt``, dB at 0 s) and lies within :data:`_END_ON_LINE_DB`
    of that decay's line. A noise floor is flat, and lies above the line where the
    decay has sunk under it."""
    last = np.flatnonzero(t >= (1.0 - _END_SHARE) * length_s)
    if last.size < 3:
        last = np.arange(max(0, t.size - 3), t.size)
    if last.size < 3:
        return False
    s, c = _line(t[last], env_db[last])
    tm = float(t[last].mean())
    off = (s * tm + c) - (slope * tm + icpt)
    fall = -s * float(t[last[-1]] - t[last[0]])
    return bool(s < 0.5 * slope and fall >= _END_FALL_DB and abs(off) <= _END_ON_LINE_DB)


def schroeder_edc_db(ir: np.ndarray, sample_rate: int) -> np.ndarray:
    """Energy decay curve in dB (0 dB at the onset), noise floor handled.

    Args:
        ir: impulse response, ``(n,)`` or ``(n, channels)`` (energy summed over channels).
        sample_rate: Hz.

    Returns:
        float64 array in dB re the total energy; index 0 is the onset
        (:func:`onset_index`) and the curve ends at the noise-floor truncation point
        (:func:`noise_truncation`), i.e. sample ``k`` is at ``k / sample_rate`` seconds
        after the direct sound. The energy cut off by the truncation is added back, so
        the curve follows the decay to its end instead of bending into the noise. A
        file cut off during its decay ends the curve at its last sample, with the
        decay beyond it added back and nothing subtracted.
        Because the floor's mean energy is subtracted, the curve may rise by a negligible
        amount (about 1e-4 dB) where a sample lies below that mean; it is floored at
        -300 dB. If the IR does not decay at all (:func:`noise_truncation` finds no
        decay), this is the plain backward integral, untruncated.
    """
    return _edc_db(ir, _check_rate(sample_rate))[0]


def _edc_db(ir: np.ndarray, sample_rate: int) -> tuple[np.ndarray, bool]:
    """(EDC in dB, whether a decay was found); see :func:`schroeder_edc_db`."""
    e = _energy(ir)
    e = e[_onset_of(e):]
    cut = noise_truncation(e, sample_rate)
    end, tail, noise = cut if cut is not None else (e.size, 0.0, 0.0)
    edc = np.cumsum((e[:end] - noise)[::-1])[::-1] + tail
    edc = np.maximum(edc, edc[0] * 1e-30)  # noise fluctuations could dip below 0 at the end
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(edc / edc[0]), cut is not None


def reverberation_time(
    ir: np.ndarray, sample_rate: int, kind: str = "T30", band_hz: float | None = None
) -> float:
    """Reverberation time in seconds from the Schroeder energy decay curve.

    Args:
        ir: impulse response, ``(n,)`` or ``(n, channels)``.
        sample_rate: Hz.
        kind: ``"T30"`` (fit -5 to -35 dB), ``"T20"`` (-5 to -25 dB) or ``"EDT"``
            (0 to -10 dB); the least-squares slope is extrapolated to a 60 dB decay.
        band_hz: octave-band centre (Hz) to filter the IR into first
            (:func:`band_filter`); ``None`` for broadband.

    Returns:
        seconds; ``nan`` if the IR does not decay, or its EDC, truncated at the noise
        floor, does not reach the lower end of the fit range (not enough decay above
        the noise).
    """
    if kind not in _FITS:
        raise ValueError(f"kind must be one of {sorted(_FITS)}, got {kind!r}")
    sr = _check_rate(sample_rate)
    x = band_filter(ir, sr, band_hz) if band_hz is not None else ir
    edc, decays = _edc_db(x, sr)
    return _time_from_edc(edc, decays, sr, kind)


def _time_from_edc(edc: np.ndarray, decays: bool, sample_rate: int, kind: str) -> float:
    """The ``kind`` reverberation time (s) from an EDC of :func:`_edc_db`: least-squares
    line over its fit range, extrapolated to 60 dB; ``nan`` as in
    :func:`reverberation_time`. Several kinds can share one EDC this way."""
    if not decays:
        return float("nan")
    top, bottom = _FITS[kind]
    i_top = int(np.argmax(edc <= top))
    reached = np.flatnonzero(edc <= bottom)
    if not reached.size:
        return float("nan")
    i_bot = int(reached[0]) + 1
    if i_bot - i_top < 3:
        return float("nan")
    t = np.arange(i_top, i_bot, dtype=np.float64) / sample_rate
    slope, _ = _line(t, edc[i_top:i_bot])
    return float(-60.0 / slope) if slope < 0 else float("nan")


#: the decay-plus-noise fit (:func:`noise_model_decay_s`): its envelope window (s), where
#: it starts (dB under the envelope's peak), its robust loss's scale (dB), and the least
#: decay (dB, from its start down to the fitted floor) it must see to give a time
_NM_WIN_S = 0.01
_NM_START_DB = -5.0
_NM_SCALE_DB = 3.0
_NM_MIN_RANGE_DB = 10.0
#: its bounds on the decay time (s)
_NM_DECAY_S = (0.02, 60.0)


def noise_model_decay_s(ir: np.ndarray, sample_rate: int, band_hz: float | None = None
                        ) -> float:
    """Reverberation time (s, extrapolated to a 60 dB decay) of an IR too noisy for a
    T20: a decay-plus-noise model fitted to its energy envelope.

    ISO 3382-1's T20 needs the Schroeder curve to fall 25 dB above the noise floor (and
    35 dB for T30). A clap or a balloon recorded in a room, or an IR stored quietly in
    16 bits, often has less in some bands. Their envelope still shows the decay sinking
    into a flat floor, and both can be read at once. The squared IR (summed over
    channels) from its onset (:func:`onset_index`'s rule) is averaged in 10 ms windows,
    ending before a fade-out of the floor (:func:`_fade_start`). From the first window
    5 dB under the envelope's peak (past the direct sound, as T30 starts) to the end, the
    model

        E(t) = A * 10^(-6 t / T) + N        (energy per window; a 60 dB decay in T s)

    is fitted to ``10 log10`` of the windows by least squares with a soft-L1 loss (scale
    3 dB; a stray peak in the noise weighs little). This is Xiang's (1995)
    decay-plus-noise regression, on the envelope rather than the Schroeder curve (the
    floor is then a constant instead of a ramp).

    Args:
        ir: impulse response, ``(n,)`` or ``(n, channels)``.
        sample_rate: Hz.
        band_hz: octave-band centre (Hz) to filter the IR into first (:func:`band_filter`);
            ``None`` for broadband.

    Returns:
        ``T``, seconds; ``nan`` when the fitted decay spans less than 10 dB above the
        fitted floor or meets it only after the file's end (a band holding little but
        steady noise reads as a long, shallow decay), the fit lands on its bounds (0.02
        to 60 s) or does not converge, or the envelope has fewer than 10 windows to fit.
    """
    from scipy.optimize import least_squares

    sr = _check_rate(sample_rate)
    x = band_filter(ir, sr, band_hz) if band_hz is not None else ir
    e = _energy(x)
    e = e[_onset_of(e):]
    e = e[:_fade_start(e, sr)]
    win = max(1, int(round(_NM_WIN_S * sr)))
    k = e.size // win
    if k < 10:
        return float("nan")
    env, _ = _block_means(e, win, sr)
    i0 = int(np.argmax(env))
    env_db = 10.0 * np.log10(np.maximum(env / env[i0], 1e-30))
    below = np.flatnonzero(env_db[i0:] <= _NM_START_DB)
    s = i0 + (int(below[0]) if below.size else 0)
    y = env_db[s:]
    if y.size < 10:
        return float("nan")
    t = np.arange(y.size) * (win / sr)
    floor = math.log10(float(np.mean(10.0 ** (y[-max(3, y.size // 10):] / 10.0))))
    lo_t, hi_t = _NM_DECAY_S

    def residuals(p: np.ndarray) -> np.ndarray:
        a, decay, n = p
        return 10.0 * np.log10(10.0 ** (a - 6.0 * t / decay) + 10.0 ** n) - y

    x0 = np.array([float(np.clip(y[0] / 10.0, -10.0, 3.0)), 1.0, float(np.clip(floor, -30.0, 3.0))])
    try:
        fit = least_squares(residuals, x0, bounds=([-10.0, lo_t, -30.0], [3.0, hi_t, 3.0]),
                            loss="soft_l1", f_scale=_NM_SCALE_DB)
    except (ValueError, FloatingPointError):
        return float("nan")
    a, decay, n = (float(v) for v in fit.x)
    span_db = 10.0 * (a - n)  # from the fit's start down to its floor
    if (not fit.success or span_db < _NM_MIN_RANGE_DB
            or not lo_t * 1.01 < decay < hi_t / 1.01
            or span_db * decay / 60.0 > t[-1]):  # a floor the file does not reach
        return float("nan")
    return decay


def clarity_c50_db(ir: np.ndarray, sample_rate: int, band_hz: float | None = None) -> float:
    """Clarity C50 in dB: energy of the first 50 ms after the onset over the rest.

    Args:
        ir: impulse response, ``(n,)`` or ``(n, channels)``.
        sample_rate: Hz.
        band_hz: octave-band centre (Hz) to filter into first; ``None`` for broadband.

    Returns:
        ``10 * log10(E[0, 50 ms) / E[50 ms, end))`` with times from the onset
        (:func:`onset_index`); ``inf`` if the IR ends within 50 ms.
    """
    sr = _check_rate(sample_rate)
    x = band_filter(ir, sr, band_hz) if band_hz is not None else ir
    e = _energy(x)
    e = e[_onset_of(e):]
    k = int(round(0.05 * sr))
    early, late = float(e[:k].sum()), float(e[k:].sum())
    return float(10.0 * np.log10(early / late)) if late > 0 else float("inf")


# --- the level of a send ------------------------------------------------------------------


def vocal_weights(freqs_hz: np.ndarray) -> np.ndarray:
    """The reference vocal's power spectral density (linear, re 1 kHz) at ``freqs_hz``:
    :data:`REFERENCE_VOCAL_DENSITY_DB` interpolated linearly in log frequency, held
    beyond its ends."""
    f = np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1.0)
    db = np.interp(np.log2(f), np.log2(REFERENCE_VOCAL_CENTRES_HZ), REFERENCE_VOCAL_DENSITY_DB)
    return 10.0 ** (db / 10.0)


def _weighted_spectra(ir: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(rfft of each channel ``(bins, channels)``, normalised weights ``(bins,)``)."""
    x = np.asarray(ir, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    nf = 1 << int(math.ceil(math.log2(max(x.shape[0], 2))))
    h = np.fft.rfft(x, nf, axis=0)
    w = vocal_weights(np.fft.rfftfreq(nf, 1.0 / _check_rate(sample_rate)))
    return h, w / w.sum()


def vocal_weighted_energy(ir: np.ndarray, sample_rate: int) -> np.ndarray:
    """Energy of each channel of ``ir`` for a finished vocal's spectrum:
    ``sum_f S(f) |H(f)|^2 / sum_f S(f)`` over the FFT bins up to Nyquist, ``S`` the
    reference vocal's density (:func:`vocal_weights`); equal to the plain energy
    (sum of squares) for a flat ``S``. So it is the reverberant-to-direct energy ratio
    (linear) a vocal with that spectrum gets through ``ir`` as a send.

    Args:
        ir: ``(n,)`` or ``(n, channels)``.
        sample_rate: Hz.
    Returns:
        float64 ``(channels,)`` (``(1,)`` for a 1-D ``ir``).
    """
    h, w = _weighted_spectra(ir, sample_rate)
    return (w[:, None] * (h.real**2 + h.imag**2)).sum(axis=0)


def freeverb_wet_energy(ir: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """``(E, C)`` of a width-1 Freeverb wet IR ``(n, 2)``: the mean vocal-weighted energy
    of its two channels and their vocal-weighted cross-energy over ``E`` (see the
    module doc; the calibration script stores these)."""
    h, w = _weighted_spectra(ir, sample_rate)
    e = (w[:, None] * (h.real**2 + h.imag**2)).sum(axis=0)
    cross = float((w * (h[:, 0] * np.conj(h[:, 1])).real).sum())
    mean = float(e.mean())
    return mean, cross / mean


def freeverb_wet_offset_db(room_size: float, damping: float = 0.5, width: float = 1.0,
                           sample_rate: int = 44100) -> float:
    """The gain (dB) that brings pedalboard's ``Reverb`` at ``wet_level = 1`` to a
    reverberant-to-direct energy ratio of 0 dB for the reference vocal (module doc):
    minus its calibrated vocal-weighted wet energy at ``room_size``, ``damping`` and
    ``width`` (each 0 to 1)."""
    c = calibration()
    if "_wet_e" not in c:
        raise ValueError(f"{CALIBRATION_RESOURCE} has no wet-energy table: run "
                         "scripts/calibrate_reverb.py")
    d = _check_unit("damping", damping)
    wid = _check_unit("width", width)
    u = float(_room_axis(_check_unit("room_size", room_size)))
    _check_rate(sample_rate)
    x = _room_axis(c["_room"])[::-1]
    dg = c["_damp"]
    d = min(max(d, float(dg[0])), float(dg[-1]))
    j = int(np.clip(np.searchsorted(dg, d, side="right") - 1, 0, dg.size - 2))
    t = (d - dg[j]) / (dg[j + 1] - dg[j])
    e_db = float(np.interp(u, x, ((1.0 - t) * c["_wet_e"][j] + t * c["_wet_e"][j + 1])[::-1]))
    cross = float(np.interp(u, x, ((1.0 - t) * c["_wet_c"][j] + t * c["_wet_c"][j + 1])[::-1]))
    a, b = 0.5 * (1.0 + wid), 0.5 * (1.0 - wid)
    return -(e_db + 10.0 * math.log10(max(a * a + b * b + 2.0 * a * b * cross, 1e-12)))


def wet_gain_db(reverb: Any, sample_rate: int = 44100) -> float:
    """The gain (dB) a renderer applies to a reverb's raw wet output so that the send's
    reverberant-to-direct energy ratio is ``reverb.wet_level_db`` (a ``Reverb`` of
    :mod:`vocalmix.core.params`): ``wet_level_db`` itself for ``synthetic`` (its impulse
    response is normalised), plus :func:`freeverb_wet_offset_db` for ``freeverb``."""
    if reverb.type == "freeverb":
        return float(reverb.wet_level_db) + freeverb_wet_offset_db(
            reverb.room_size, reverb.damping, reverb.width, sample_rate)
    return float(reverb.wet_level_db)


# --- rendering --------------------------------------------------------------------------


def _check_unit(name: str, v: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ParamsError(f"{name} must be a number from 0 to 1, got {v!r}") from None
    if not (math.isfinite(f) and 0.0 <= f <= 1.0):
        raise ParamsError(f"{name} = {v} is out of range: allowed 0 to 1")
    return f


def freeverb_t60_estimate_s(room_size: float) -> float:
    """A generous T60 (s) of Freeverb at ``room_size`` from its comb feedback.

    ``1.15 x 3 x mean comb delay / -log10(0.7 + 0.28 room_size)``: 0.70 s at room_size 0,
    12.3 s at 1. It is above the measured broadband T30 at every damping (damping only
    shortens the decay); used to choose render lengths.
    """
    g = _FV_ROOM_OFFSET + _FV_ROOM_SCALE * _check_unit("room_size", room_size)
    return 1.15 * 3.0 * _FV_MEAN_COMB_S / -math.log10(g)


def render_freeverb_ir(
    room_size: float,
    damping: float = 0.5,
    width: float = 1.0,
    sample_rate: int = 44100,
    length_s: float | None = None,
) -> np.ndarray:
    """Wet-only stereo impulse response of ``pedalboard.Reverb``.

    A unit impulse in both channels through a fresh ``pedalboard.Reverb`` with
    ``dry_level=0``, ``wet_level=1``: the result is bit-identical across calls.

    Args:
        room_size, damping, width: the Reverb's parameters, each 0 to 1.
        sample_rate: Hz.
        length_s: IR length in seconds; default ``2 x`` :func:`freeverb_t60_estimate_s`
            ``+ 0.5 s``, at most 30 s (about 120 dB of decay: the tail reaches
            Freeverb's own floor, an idle limit cycle near -116 dBFS).

    Returns:
        float32 array ``(n, 2)``, ``n = round(length_s * sample_rate)``.
    """
    import pedalboard

    room = _check_unit("room_size", room_size)
    damp = _check_unit("damping", damping)
    wid = _check_unit("width", width)
    sr = _check_rate(sample_rate)
    if length_s is None:
        length_s = min(30.0, 2.0 * freeverb_t60_estimate_s(room) + 0.5)
    if not (math.isfinite(float(length_s)) and 0.0 < float(length_s) <= 600.0):
        raise ParamsError(f"length_s = {length_s} is out of range: allowed (0, 600] s")
    n = max(1, int(round(float(length_s) * sr)))
    x = np.zeros((2, n), dtype=np.float32)
    x[:, 0] = 1.0
    rv = pedalboard.Reverb(
        room_size=room, damping=damp, wet_level=1.0, dry_level=0.0, width=wid, freeze_mode=0.0
    )
    y = rv(x, float(sr), reset=True)
    return np.ascontiguousarray(np.asarray(y, dtype=np.float32).T)


_SYNTH_SEEDS = (0x5EED1, 0x5EED2)


def synthetic_band_weights(freqs_hz: np.ndarray, bands_hz: tuple[float, ...]) -> np.ndarray:
    """Complementary octave-band weights ``(len(bands_hz), len(freqs_hz))`` summing to 1.

    Raised-cosine (Hann) crossfades in log2 frequency between adjacent band centres;
    below the first centre the first band has weight 1, above the last the last has.
    Band centres must be ascending.
    """
    f = np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1e-3)
    c = np.log2(np.asarray(bands_hz, dtype=np.float64))
    u = np.clip(np.log2(f), c[0], c[-1])
    w = np.zeros((c.size, f.size))
    j = np.clip(np.searchsorted(c, u, side="right") - 1, 0, c.size - 2)
    frac = (u - c[j]) / (c[j + 1] - c[j])
    up = 0.5 - 0.5 * np.cos(np.pi * frac)  # 0 at the lower centre, 1 at the upper
    idx = np.arange(f.size)
    w[j, idx] = 1.0 - up
    w[j + 1, idx] += up
    return w


def synthetic_band_noise(sample_rate: int, n: int) -> tuple[np.ndarray, ...]:
    """The synthetic reverb's raw material: per channel seed, its Gaussian noise of ``n``
    samples split into the octave bands of ``DECAY_BANDS_HZ`` by
    :func:`synthetic_band_weights`, float64 ``(bands, n)``. The parameters only weight
    these by envelopes (:func:`synthetic_ir_from_noise`), so a caller rendering many
    candidates (the reverb fit) computes them once."""
    from vocalmix.core.params import DECAY_BANDS_HZ

    nfft = 1 << int(math.ceil(math.log2(max(n, 2))))
    weights = synthetic_band_weights(np.fft.rfftfreq(nfft, 1.0 / sample_rate), DECAY_BANDS_HZ)
    out = []
    for seed in _SYNTH_SEEDS:
        spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n), nfft)
        out.append(np.stack([np.fft.irfft(spec * wb, nfft)[:n] for wb in weights]))
    return tuple(out)


def synthetic_ir_from_noise(noise: tuple[np.ndarray, ...], decays: np.ndarray, width: float,
                            sample_rate: int, n: int) -> np.ndarray:
    """The wet IR ``(n, 2)`` float32 from :func:`synthetic_band_noise` (at least ``n``
    samples long): each band times its exponential decay (``decays``: T30 per band, s),
    summed, the two channels mixed to ``width`` and each normalised to a vocal-weighted
    energy (:func:`vocal_weighted_energy`) of 1."""
    t = np.arange(n, dtype=np.float64) / sample_rate
    # amplitude envelopes: energy falls 60 dB in T seconds -> amplitude 10^(-3 t / T)
    env = 10.0 ** (-3.0 * t[None, :] / np.asarray(decays, np.float64)[:, None])
    n1, n2 = ((bands[:, :n] * env).sum(axis=0) for bands in noise)
    theta = 0.25 * math.pi * width  # width 0: both channels n1; 1: uncorrelated
    left = math.cos(theta) * n1 + math.sin(theta) * n2
    right = math.cos(theta) * n1 - math.sin(theta) * n2
    ir = np.stack([left, right], axis=1)
    ir /= np.sqrt(vocal_weighted_energy(ir, sample_rate))[None, :]
    return ir.astype(np.float32)


@lru_cache(maxsize=8)
def _synthetic_ir_cached(decays: tuple[float, ...], width: float, sample_rate: int,
                         n: int) -> np.ndarray:
    ir = synthetic_ir_from_noise(synthetic_band_noise(sample_rate, n), np.asarray(decays),
                                 width, sample_rate, n)
    ir.setflags(write=False)
    return ir


def render_synthetic_ir(
    decay_s: float,
    band_decay_ratios: tuple[float, ...] | None = None,
    width: float = 1.0,
    sample_rate: int = 44100,
    length_s: float | None = None,
) -> np.ndarray:
    """Wet impulse response of the ``synthetic`` reverb (see the module docstring).

    Args:
        decay_s: T30 at 1 kHz, s.
        band_decay_ratios: T30 per octave band of ``DECAY_BANDS_HZ`` (125 Hz-8 kHz) as
            multiples of ``decay_s``; default all 1 (the same decay at every frequency).
        width: 0 (both channels equal) to 1 (uncorrelated channels).
        sample_rate: Hz.
        length_s: IR length, s; default ``1.2 x`` the longest band decay ``+ 0.05 s``
            (72 dB of decay), at most 36 s.

    Returns:
        float32 ``(n, 2)``, read-only, each channel with a vocal-weighted energy
        (:func:`vocal_weighted_energy`) of 1; bit-identical for the same arguments.
    """
    from vocalmix.core.params import BAND_DECAY_RATIO, DECAY_BANDS_HZ, REVERB_DECAY_RANGE_S

    sr = _check_rate(sample_rate)
    ratios = tuple(float(r) for r in (band_decay_ratios or (1.0,) * len(DECAY_BANDS_HZ)))
    if len(ratios) != len(DECAY_BANDS_HZ):
        raise ParamsError(
            f"band_decay_ratios needs {len(DECAY_BANDS_HZ)} values, got {len(ratios)}")
    d = float(decay_s)
    lo, hi = REVERB_DECAY_RANGE_S
    if not (math.isfinite(d) and lo <= d <= hi):
        raise ParamsError(f"decay_s = {decay_s} is out of range: allowed {lo:g} to {hi:g} s")
    rlo, rhi = BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi
    if not all(math.isfinite(r) and rlo <= r <= rhi for r in ratios):
        raise ParamsError(
            f"band_decay_ratios {ratios} out of range: allowed {rlo:g} to {rhi:g}")
    decays = tuple(d * r for r in ratios)
    wid = _check_unit("width", width)
    if length_s is None:
        length_s = min(36.0, 1.2 * max(decays) + 0.05)
    if not (math.isfinite(float(length_s)) and 0.0 < float(length_s) <= 600.0):
        raise ParamsError(f"length_s = {length_s} is out of range: allowed (0, 600] s")
    n = max(2, int(round(float(length_s) * sr)))
    return _synthetic_ir_cached(decays, wid, sr, n)


# --- calibration ------------------------------------------------------------------------


def _room_axis(room: np.ndarray | float) -> np.ndarray:
    """Warped room axis ``log(-log(feedback))`` (decreasing in room_size)."""
    g = _FV_ROOM_OFFSET + _FV_ROOM_SCALE * np.asarray(room, dtype=np.float64)
    return np.log(-np.log(g))


@lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    """The shipped calibration table, loaded once.

    Returns:
        the JSON document: ``room_size`` (grid), ``damping`` (grid), ``t30_s`` (T30 in
        seconds, shape ``(n_damping, n_room)``), ``wet_energy_db`` and ``wet_cross``
        (same shape; module doc), ``sample_rate_hz`` and provenance, plus numpy copies
        under ``"_room"``, ``"_damp"``, ``"_logt"`` (log T30), ``"_wet_e"`` and
        ``"_wet_c"``.
    """
    from importlib.resources import files

    text = files("vocalmix").joinpath(CALIBRATION_RESOURCE).read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    room = np.asarray(doc["room_size"], dtype=np.float64)
    damp = np.asarray(doc["damping"], dtype=np.float64)
    t30 = np.asarray(doc["t30_s"], dtype=np.float64)
    if (
        t30.shape != (damp.size, room.size)
        or damp.size < 2
        or not np.all(np.isfinite(t30) & (t30 > 0))
        or not np.all(np.diff(t30, axis=1) > 0)
        or not np.all(np.diff(room) > 0)
        or not np.all(np.diff(damp) > 0)
    ):
        raise ValueError(f"{CALIBRATION_RESOURCE} is malformed (grid or T30 table)")
    doc["_room"], doc["_damp"], doc["_logt"] = room, damp, np.log(t30)
    if "wet_energy_db" in doc:
        e = np.asarray(doc["wet_energy_db"], dtype=np.float64)
        cr = np.asarray(doc["wet_cross"], dtype=np.float64)
        if e.shape != t30.shape or cr.shape != t30.shape or not np.all(np.isfinite(e)) \
                or not np.all(np.abs(cr) <= 1.0):
            raise ValueError(f"{CALIBRATION_RESOURCE} is malformed (wet-energy table)")
        doc["_wet_e"], doc["_wet_c"] = e, cr
    return doc


def _curve(damping: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(warped room axis ascending, log T30 descending) at ``damping``.

    ``sample_rate`` is validated but does not change the result (see the module doc).
    """
    c = calibration()
    d = _check_unit("damping", damping)
    _check_rate(sample_rate)
    logt, dg = c["_logt"], c["_damp"]
    d = min(max(d, float(dg[0])), float(dg[-1]))
    j = int(np.clip(np.searchsorted(dg, d, side="right") - 1, 0, dg.size - 2))
    w = (d - dg[j]) / (dg[j + 1] - dg[j])
    curve = (1.0 - w) * logt[j] + w * logt[j + 1]
    # the warped axis decreases with room_size: flip so that np.interp sees it ascending
    return _room_axis(c["_room"])[::-1], curve[::-1]


def decay_range_s(damping: float = 0.5, sample_rate: int = 44100) -> tuple[float, float]:
    """Shortest and longest broadband T30 (s) the reverb reaches at ``damping``.

    These are the T30 at room_size 0 and 1 (0.54 and 9.76 s at damping 0.5).
    """
    _, curve = _curve(damping, sample_rate)
    return float(math.exp(curve[-1])), float(math.exp(curve[0]))


def decay_for_room_size(room_size: float, damping: float = 0.5, sample_rate: int = 44100) -> float:
    """Broadband T30 (s) of the wet reverb at ``room_size`` and ``damping`` (each 0 to 1)."""
    x, curve = _curve(damping, sample_rate)
    u = float(_room_axis(_check_unit("room_size", room_size)))
    return float(math.exp(np.interp(u, x, curve)))


def room_size_for_decay(decay_s: float, damping: float = 0.5, sample_rate: int = 44100) -> float:
    """The room_size (0 to 1) whose wet reverb has broadband T30 ``decay_s`` (s).

    Exact inverse of :func:`decay_for_room_size`. A decay outside
    :func:`decay_range_s` is clipped to it (room_size 0 or 1).
    """
    try:
        d = float(decay_s)
    except (TypeError, ValueError):
        raise ParamsError(f"decay_s must be a number of seconds, got {decay_s!r}") from None
    if not (math.isfinite(d) and d > 0.0):
        raise ParamsError(f"decay_s = {decay_s} is not a positive finite time in seconds")
    x, curve = _curve(damping, sample_rate)
    lt = math.log(d)
    if lt >= curve[0]:
        return 1.0
    if lt <= curve[-1]:
        return 0.0
    u = float(np.interp(lt, curve[::-1], x[::-1]))
    # invert u = log(-log(0.7 + 0.28 room))
    room = (math.exp(-math.exp(u)) - _FV_ROOM_OFFSET) / _FV_ROOM_SCALE
    return float(min(1.0, max(0.0, room)))
