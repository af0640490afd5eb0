"""The delay send: a feedback echo whose repeats darken, tied to the song's tempo.

For a delay of ``D`` samples (``Delay.time_ms``, set from the note and tempo by
:func:`vocalmix.core.resolve.sync_delay_time`), feedback ``f`` and a low-pass ``L`` at
``highcut_hz`` (2nd-order Butterworth), the echo ``w`` of a send fed with ``x`` is::

    u[n] = x[n - D] + f * w[n - D]      (what enters the loop)
    w[n] = L(u)[n]                      (each pass through the loop is filtered once)
    out  = 10^(wet_level_db / 20) * w

so the ``k``-th repeat is ``f^(k-1) L^k x`` delayed by ``k D``: the first repeat sits at
``wet_level_db`` against the dry vocal (in the passband) and each next one ``20 log10(f)``
dB lower and one low-pass darker. Both channels are delayed alike (the vocal is
centred).

A block of up to ``D`` samples depends only on ``w`` from before it, so
:class:`DelayLine` processes a signal in chunks of at most ``D`` samples with the
low-pass's state and the last ``D`` samples of ``x`` and ``w`` carried: a whole file
(the offline render) and a live stream in blocks of any size give the same samples to
float rounding.
"""

from __future__ import annotations

import numpy as np

from vocalmix.core.dsp import butterworth2_sos, flush_denormals, max_filter_hz
from vocalmix.core.kernels import sosfilt
from vocalmix.core.params import Delay


def delay_samples(delay: Delay, sample_rate: int) -> int:
    """The delay time in whole samples (at least one)."""
    return max(1, int(round(delay.time_ms * 1e-3 * sample_rate)))


class DelayLine:
    """A delay send with its state: :meth:`process` takes consecutive blocks of the
    signal that feeds it, ``(n, channels)``, and returns the wet echo (float32)."""

    def __init__(self, delay: Delay, sample_rate: int, channels: int = 2) -> None:
        self.d = delay_samples(delay, sample_rate)
        self.feedback = float(delay.feedback)
        self.wet = np.float64(10.0 ** (delay.wet_level_db / 20.0))
        f = min(float(delay.highcut_hz), max_filter_hz(sample_rate))
        self._sos = butterworth2_sos(f, "lowpass", sample_rate)
        self._zi = np.zeros((self._sos.shape[0], 2, channels))
        # the last d samples of the input and of the loop's output (ring, oldest first)
        self._x = np.zeros((self.d, channels))
        self._w = np.zeros((self.d, channels))

    def process(self, x: np.ndarray) -> np.ndarray:
        """The echo of the next block ``x``, same shape, float32."""
        with flush_denormals():
            return self._process(x)

    def _process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        out = np.empty_like(x)
        d = self.d
        i = 0
        while i < x.shape[0]:
            n = min(d, x.shape[0] - i)
            # u[j] = x[j - d] + f w[j - d]: the oldest n of the carried d samples
            u = self._x[:n] + self.feedback * self._w[:n]
            w, self._zi = sosfilt(self._sos, u, axis=0, zi=self._zi)
            out[i:i + n] = w
            self._x = np.concatenate([self._x[n:], x[i:i + n]])
            self._w = np.concatenate([self._w[n:], w])
            i += n
        return (out * self.wet).astype(np.float32)


#: samples the whole-signal echo is computed at a time (float64 work arrays of a block,
#: not of the song)
WET_BLOCK = 1 << 16


def delay_wet(x: np.ndarray, sample_rate: int, delay: Delay) -> np.ndarray:
    """The delay send's echo of a whole signal ``(n, channels)`` (zeros when disabled),
    float32: one :class:`DelayLine` fed :data:`WET_BLOCK` samples at a time, as a live
    send is, so the same samples as one call over the whole signal."""
    if not delay.enabled:
        return np.zeros_like(x, dtype=np.float32)
    line = DelayLine(delay, sample_rate, x.shape[1])
    out = np.empty(x.shape, np.float32)
    for i in range(0, x.shape[0], WET_BLOCK):
        out[i : i + WET_BLOCK] = line.process(x[i : i + WET_BLOCK])
    return out


__all__ = ["DelayLine", "delay_samples", "delay_wet"]
