"""Signal helpers shared by the analysis modules and the render chain: downmix,
resampling, and the EQ filter stage (pedalboard's filters, as MixParams renders them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pedalboard as pb

    from vocalmix.core.params import EqBand, HighPass

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


def run_board(board: pb.Pedalboard, x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Run a pedalboard chain (reset first) on ``(samples, channels)``; an empty chain
    returns ``x`` itself."""
    if len(board) == 0:
        return x
    # pedalboard takes (channels, samples); vocalmix keeps (samples, channels)
    y = board(np.ascontiguousarray(x.T, dtype=np.float32), float(sample_rate), reset=True)
    return np.ascontiguousarray(y.T)


def _eq_plugin(band: EqBand, sample_rate: int) -> pb.Plugin:
    import pedalboard as pb

    freq = min(band.freq_hz, 0.45 * sample_rate)
    if band.kind == "peak":
        return pb.PeakFilter(cutoff_frequency_hz=freq, gain_db=band.gain_db, q=band.q)
    if band.kind == "low_shelf":
        return pb.LowShelfFilter(cutoff_frequency_hz=freq, gain_db=band.gain_db, q=band.q)
    return pb.HighShelfFilter(cutoff_frequency_hz=freq, gain_db=band.gain_db, q=band.q)


def eq_stage(
    x: np.ndarray, sample_rate: int, highpass: HighPass, bands: tuple[EqBand, ...]
) -> np.ndarray:
    """High-pass then the parametric bands (zero-gain bands are skipped)."""
    import pedalboard as pb

    board = pb.Pedalboard()
    if highpass.enabled:
        board.append(pb.HighpassFilter(cutoff_frequency_hz=highpass.cutoff_frequency_hz))
    for band in bands:
        if band.gain_db != 0.0:
            board.append(_eq_plugin(band, sample_rate))
    return run_board(board, x, sample_rate)
