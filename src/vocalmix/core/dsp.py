"""Small signal helpers shared by the analysis modules."""

from __future__ import annotations

import numpy as np


def mono(x: np.ndarray) -> np.ndarray:
    """Downmix ``(n,)`` or ``(n, channels)`` to mono float32 (mean of the channels)."""
    y = np.asarray(x, dtype=np.float32)
    if y.ndim == 2:
        y = 0.5 * (y[:, 0] + y[:, 1]) if y.shape[1] == 2 else y.mean(axis=1)
    return y


def mono_at(x: np.ndarray, sample_rate: int, target_rate: int, quality: str = "LQ") -> np.ndarray:
    """Mono downmix resampled (soxr) from ``sample_rate`` to ``target_rate`` Hz."""
    import soxr

    y = mono(x)
    if sample_rate != target_rate:
        y = soxr.resample(y, sample_rate, target_rate, quality=quality)
    return y


# --- the EQ section's filters --------------------------------------------------------------


def biquad_coefficients(
    kind: str, freq_hz: float, gain_db: float, q: float, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of a peak or shelf band, RBJ cookbook (JUCE's ``IIR::Coefficients``, which
    pedalboard's ``PeakFilter``, ``LowShelfFilter`` and ``HighShelfFilter`` use); the
    frequency is kept under 0.45 x the rate."""
    big_a = 10 ** (gain_db / 40.0)
    w = 2 * np.pi * min(freq_hz, 0.45 * sample_rate) / sample_rate
    cw, sw = np.cos(w), np.sin(w)
    if kind == "peak":
        alpha = sw / (2 * q)
        b = [1 + alpha * big_a, -2 * cw, 1 - alpha * big_a]
        a = [1 + alpha / big_a, -2 * cw, 1 - alpha / big_a]
    elif kind in ("low_shelf", "high_shelf"):
        beta = sw * np.sqrt(big_a) / q
        ap, am = big_a + 1, big_a - 1
        if kind == "low_shelf":
            b = [big_a * (ap - am * cw + beta), 2 * big_a * (am - ap * cw),
                 big_a * (ap - am * cw - beta)]
            a = [ap + am * cw + beta, -2 * (am + ap * cw), ap + am * cw - beta]
        else:
            b = [big_a * (ap + am * cw + beta), -2 * big_a * (am + ap * cw),
                 big_a * (ap + am * cw - beta)]
            a = [ap - am * cw + beta, 2 * (am - ap * cw), ap - am * cw - beta]
    else:
        raise ValueError(f"unknown band kind {kind!r}")
    b, a = np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)
    return b / a[0], a / a[0]


def highpass_coefficients(cutoff_hz: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of the first-order (6 dB/octave) high-pass of JUCE's
    ``makeFirstOrderHighPass``, which pedalboard's ``HighpassFilter`` is (checked
    against it to -115 dB), padded to a biquad."""
    n = np.tan(np.pi * cutoff_hz / sample_rate)
    b = np.array([1.0 / (n + 1.0), -1.0 / (n + 1.0), 0.0])
    a = np.array([1.0, (n - 1.0) / (n + 1.0), 0.0])
    return b, a
