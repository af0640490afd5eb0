"""Small signal helpers shared by the analysis modules."""

from __future__ import annotations

import numpy as np

#: filters are tuned at most this fraction of the sample rate (0.45: 90% of Nyquist),
#: where a biquad's response is still the analog prototype's shape
NYQUIST_GUARD = 0.45


def max_filter_hz(sample_rate: int) -> float:
    """The highest frequency (Hz) a filter is tuned to at ``sample_rate`` Hz."""
    return NYQUIST_GUARD * float(sample_rate)


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
