"""Live mixing: the causal limiter, the streaming chain against the offline render, the
gain ride, and ``vocalmix live``."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.limiter import StreamingLimiter, latency_samples, limit
from vocalmix.core.measure import true_peak_dbtp
from vocalmix.core.params import Master

SR = 48000


def _stream(proc, x: np.ndarray, block: int | list[int], lat: int) -> np.ndarray:
    """Feed ``x`` (n, 2) through ``proc((2, k) block) -> (2, k)`` in blocks, then ``lat``
    samples of silence; the output advanced by ``lat`` (n, 2)."""
    xs = np.concatenate([x, np.zeros((lat, x.shape[1]), x.dtype)])
    sizes = block if isinstance(block, list) else [block]
    out, t, i = [], 0, 0
    while t < xs.shape[0]:
        k = min(sizes[i % len(sizes)], xs.shape[0] - t)
        out.append(np.array(proc(np.ascontiguousarray(xs[t : t + k].T))))
        t += k
        i += 1
    return np.concatenate(out, axis=1).T[lat : lat + x.shape[0]]


def _hard_signals(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    """Signals that stress a true-peak limiter: inter-sample peaks, steep attacks."""
    n = sr
    t = np.arange(n) / sr
    sigs = {
        "fs/4 at 45 degrees": np.tile(np.array([1, 1, -1, -1], np.float64), n // 4) * 0.95,
        "square 1 kHz": np.sign(np.sin(2 * np.pi * 1000 * t)),
        "sine near Nyquist x1.5": 1.5 * np.sin(2 * np.pi * 0.49 * sr * t + 0.3),
        "sweep x2": 2.0 * np.sin(2 * np.pi * (50 * t + 0.2 * sr * t**2)),
        "clipped noise": np.clip(rng.standard_normal(n) * 2, -1, 1),
        "bursts": rng.standard_normal(n) * 0.05 * (1 + 30 * (np.sin(2 * np.pi * 3 * t) > 0.95)),
        "ramp to +10 dB": np.sin(2 * np.pi * 200 * t) * np.linspace(0, 3, n),
    }
    imp = np.zeros(n)
    imp[::997], imp[1::997] = 1.0, -1.0
    sigs["impulse pairs"] = imp
    return {k: np.stack([v, 0.9 * np.roll(v, 3)], 1).astype(np.float32) for k, v in sigs.items()}


@pytest.mark.parametrize("master", [Master(), Master(ceiling_dbtp=-0.1, lookahead_ms=0.5),
                                    Master(ceiling_dbtp=-6.0, lookahead_ms=50.0,
                                           release_ms=5.0)])
def test_limiter_keeps_true_peak_at_or_under_the_ceiling(rng, master):
    for name, x in _hard_signals(rng, 44100).items():
        y, gain = limit(x, 44100, master)
        assert gain is not None, name
        assert true_peak_dbtp(y, 44100) <= master.ceiling_dbtp, name


def test_limiter_is_bit_transparent_under_the_ceiling(rng):
    # true peak just under -1 dBTP: nothing to do, the input itself comes back
    x = (rng.standard_normal((SR, 2)) * 0.1).astype(np.float32)
    x *= np.float32(10 ** (-1.05 / 20) / 10 ** (true_peak_dbtp(x, SR) / 20))
    assert -1.1 < true_peak_dbtp(x, SR) <= -1.0
    y, gain = limit(x, SR, Master())
    assert y is x and gain is None
    lim = StreamingLimiter(Master(), SR, 64)
    out = np.zeros((2, 64), np.float32)
    live = _stream(lambda b: lim.process(b, out), x, 64, lim.latency_samples)
    np.testing.assert_array_equal(live, x)


def test_streaming_limiter_equals_the_offline_one_for_any_blocks(rng):
    x = (rng.standard_normal((SR, 2)) * 0.1).astype(np.float32)
    x[SR // 3 : SR // 3 + 3000] *= 20  # 20 dB over the ceiling
    x[2 * SR // 3 : 2 * SR // 3 + 40] *= 9
    y, gain = limit(x, SR, Master())
    assert gain is not None and gain.min() < 0.2
    assert true_peak_dbtp(y, SR) <= -1.0
    for blocks in (37, 128, [1, 2, 3, 500, 64]):
        lim = StreamingLimiter(Master(), SR, 500)
        out = np.zeros((2, 500), np.float32)
        live = _stream(lambda b, lim=lim, out=out: lim.process(b, out), x, blocks,
                       lim.latency_samples)
        assert np.abs(live - y).max() < 1e-6, blocks


def test_limiter_latency_is_the_lookahead():
    assert latency_samples(Master(), 48000) == 240  # 5 ms
    assert latency_samples(Master(lookahead_ms=0.5), 8000) == 21  # the detector's minimum
