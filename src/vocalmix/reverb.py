"""Reverberation time (ISO 3382, Schroeder integration) and the Freeverb calibration.

``pedalboard.Reverb`` (JUCE's Freeverb) has no decay-time knob. vocalmix renders its
impulse responses over a grid of ``room_size`` and ``damping``, measures their T30, and
ships the table (``assets/freeverb_calibration.json``, made by
``scripts/calibrate_reverb.py``); :func:`room_size_for_decay` inverts it. The reverb
cannot decay faster than about 0.5 s (room_size 0) nor is it useful beyond ~10 s.

Measurement (ISO 3382-1): the energy decay curve is the backward (Schroeder) integral
of the squared IR from its onset, in dB re its start; T30 (T20) is the least-squares
slope between -5 and -35 (-25) dB extrapolated to 60 dB; EDT uses 0 to -10 dB. To keep
the noise floor from bending the curve, the floor is estimated from the last 10% of the
IR, subtracted from the energy, and the integration is truncated where the smoothed
energy meets it (a simplified Lundeby method).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfiltfilt

OCTAVE_BANDS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
_FITS = {"T30": (-5.0, -35.0), "T20": (-5.0, -25.0), "EDT": (0.0, -10.0)}


def _energy(ir: np.ndarray) -> np.ndarray:
    x = np.asarray(ir, dtype=np.float64)
    if x.size == 0:
        raise ValueError("empty impulse response")
    if not np.all(np.isfinite(x)):
        raise ValueError("impulse response contains NaN or infinite samples")
    return x**2 if x.ndim == 1 else (x**2).sum(axis=1)


def onset_index(ir: np.ndarray) -> int:
    """Index of the direct sound: the first sample within 20 dB of the maximum."""
    e = _energy(ir)
    return int(np.argmax(e >= e.max() * 10 ** (-20 / 10)))


def band_filter(ir: np.ndarray, sample_rate: int, band_hz: float) -> np.ndarray:
    """Octave band of ``ir`` (zero-phase Butterworth, order 3 each way)."""
    lo, hi = band_hz / np.sqrt(2), min(band_hz * np.sqrt(2), 0.49 * sample_rate)
    sos = butter(3, [lo, hi], "bandpass", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, np.asarray(ir, dtype=np.float64), axis=0)


def schroeder_edc_db(ir: np.ndarray, sample_rate: int) -> np.ndarray:
    """Energy decay curve (dB, 0 at the onset) with noise-floor compensation."""
    e = _energy(ir)[onset_index(ir):]
    n = e.size
    tail = e[int(0.9 * n):] if n >= 20 else e[-1:]
    floor = float(tail.mean())
    win = max(1, int(0.01 * sample_rate))
    smooth = np.convolve(e, np.ones(win) / win, mode="same")
    above = np.flatnonzero(smooth > 2.0 * floor) if floor > 0 else np.array([n - 1])
    end = int(above[-1]) + 1 if above.size else n
    e = np.clip(e[:end] - floor, 0.0, None)
    edc = np.cumsum(e[::-1])[::-1]
    if edc[0] <= 0:
        return np.full(1, -np.inf)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(edc / edc[0])


def reverberation_time(
    ir: np.ndarray, sample_rate: int, kind: str = "T30", band_hz: float | None = None
) -> float:
    """T30, T20 or EDT in seconds (``nan`` if the decay is too shallow to fit)."""
    if kind not in _FITS:
        raise ValueError(f"kind must be one of {sorted(_FITS)}")
    x = band_filter(ir, sample_rate, band_hz) if band_hz else ir
    edc = schroeder_edc_db(x, sample_rate)
    hi, lo = _FITS[kind]
    sel = np.flatnonzero((edc <= hi) & (edc >= lo))
    if sel.size < 4 or edc.min() > lo:
        return float("nan")
    t = sel / sample_rate
    slope = np.polyfit(t, edc[sel], 1)[0]  # dB per second
    return float(-60.0 / slope) if slope < 0 else float("nan")


def clarity_c50_db(ir: np.ndarray, sample_rate: int, band_hz: float | None = None) -> float:
    """C50: early (first 50 ms from the onset) to late energy ratio, dB."""
    x = band_filter(ir, sample_rate, band_hz) if band_hz else ir
    e = _energy(x)[onset_index(x):]
    k = int(0.05 * sample_rate)
    early, late = e[:k].sum(), e[k:].sum()
    return float(10 * np.log10(early / late)) if late > 0 else float("inf")


def render_freeverb_ir(
    room_size: float,
    damping: float = 0.5,
    width: float = 1.0,
    sample_rate: int = 44100,
    length_s: float | None = None,
) -> np.ndarray:
    """Wet-only stereo impulse response of ``pedalboard.Reverb``, float32 ``(n, 2)``."""
    import pedalboard as pb

    for name, v in (("room_size", room_size), ("damping", damping), ("width", width)):
        if not 0.0 <= v <= 1.0:
            from .errors import ParamsError

            raise ParamsError(f"{name} = {v} is out of range: allowed 0 to 1")
    if length_s is None:
        length_s = min(30.0, 1.0 + 2.5 * float(np.exp(2.9 * room_size)) * 0.7)
    n = int(length_s * sample_rate)
    x = np.zeros((2, n), np.float32)
    x[:, 0] = 1.0
    rv = pb.Reverb(room_size=room_size, damping=damping, wet_level=1.0, dry_level=0.0,
                   width=width)
    return np.ascontiguousarray(rv(x, float(sample_rate), reset=True).T)


# --- calibration ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def calibration() -> dict:
    """The shipped calibration table (room_size x damping -> T30 s)."""
    from importlib.resources import files

    text = files("vocalmix").joinpath("assets/freeverb_calibration.json").read_text("utf-8")
    d = json.loads(text)
    d["_t30"] = np.asarray(d["t30_s"], dtype=np.float64)  # (n_damping, n_room)
    d["_room"] = np.asarray(d["room_size"], dtype=np.float64)
    d["_damp"] = np.asarray(d["damping"], dtype=np.float64)
    return d


def _curve(damping: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """log T30 over the room_size grid at ``damping`` (linear between table rows)."""
    c = calibration()
    d = float(np.clip(damping, c["_damp"][0], c["_damp"][-1]))
    logt = np.log(c["_t30"])
    j = int(np.clip(np.searchsorted(c["_damp"], d) - 1, 0, len(c["_damp"]) - 2))
    w = (d - c["_damp"][j]) / (c["_damp"][j + 1] - c["_damp"][j])
    curve = (1 - w) * logt[j] + w * logt[j + 1]
    # Freeverb's delay lines are scaled to the sample rate: T30 does not depend on it
    # (checked by the calibration script); the argument is kept for that contract.
    del sample_rate
    curve = np.maximum.accumulate(curve)  # guard monotonicity for the inverse
    return c["_room"], curve


def decay_range_s(damping: float = 0.5, sample_rate: int = 44100) -> tuple[float, float]:
    """Shortest and longest T30 (s) the reverb reaches at this damping."""
    _, curve = _curve(damping, sample_rate)
    return float(np.exp(curve[0])), float(np.exp(curve[-1]))


def decay_for_room_size(room_size: float, damping: float = 0.5, sample_rate: int = 44100) -> float:
    """T30 (s) of the reverb at ``room_size`` and ``damping``."""
    room, curve = _curve(damping, sample_rate)
    return float(np.exp(np.interp(room_size, room, curve)))


def room_size_for_decay(decay_s: float, damping: float = 0.5, sample_rate: int = 44100) -> float:
    """The room_size whose T30 is ``decay_s`` (clipped to the reachable range)."""
    room, curve = _curve(damping, sample_rate)
    lt = float(np.log(max(decay_s, 1e-3)))
    if lt <= curve[0]:
        return float(room[0])
    if lt >= curve[-1]:
        return float(room[-1])
    # strictly increasing part for interpolation
    keep = np.concatenate([[True], np.diff(curve) > 0])
    return float(np.interp(lt, curve[keep], room[keep]))
