"""The live reverb's partitioned convolver against a float64 FFT convolution, and how its
work is shared between blocks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from vocalmix.core import convolve
from vocalmix.core.convolve import PartitionedConvolver


def _ir(rng: np.random.Generator, taps: int, pre_delay: int) -> np.ndarray:
    h = np.zeros((pre_delay + taps, 2), np.float32)
    decay = np.exp(-np.arange(taps) / (taps / 6.0))[:, None]
    h[pre_delay:] = (rng.standard_normal((taps, 2)) * decay).astype(np.float32)
    return h


def _run(conv: PartitionedConvolver, x: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    out, t = [], 0
    for m in sizes:
        if t >= x.shape[0]:
            break
        out.append(conv.process(np.ascontiguousarray(x[t : t + m].T)).copy())
        t += int(m)
    return np.concatenate(out, axis=1).T


@pytest.mark.parametrize(("taps", "pre_delay", "block"), [
    (30000, 0, 128),  # a direct head, then levels from 64 taps
    (9000, 0, 1),  # one sample at a time
    (60000, 100, 37),  # a short pre-delay, odd blocks
    (150000, 960, 128),  # the bench's reverb: 20 ms pre-delay, 3 s of tail
    (40000, 5000, 512),  # a long pre-delay: a late first level
])
def test_equals_a_float64_convolution_for_any_blocks(taps, pre_delay, block):
    rng = np.random.default_rng(taps + pre_delay + block)
    ir = _ir(rng, taps, pre_delay)
    n = 60000 if block > 1 else 20000
    x = rng.standard_normal((n, 2)).astype(np.float32)
    conv = PartitionedConvolver(ir, block, gain=0.5)
    sizes = rng.integers(1, block + 1, size=n) if block > 1 else np.ones(n, int)
    y = _run(conv, x, sizes)
    want = 0.5 * np.stack([fftconvolve(x[:, c].astype(np.float64), ir[:, c].astype(np.float64))
                           [: y.shape[0]] for c in range(2)], axis=1)
    err = np.abs(y - want).max() / np.abs(want).max()
    assert y.shape[0] == n
    assert 20 * np.log10(err) < -120.0  # float32 output, complex64 spectra


def test_each_block_does_about_the_average_work(monkeypatch):
    """In steady state no step waits for its deadline, and no block spends more than
    its share of the estimated work plus one step (the credit may overshoot by half a
    step, and a block may start half a step in debt)."""
    rng = np.random.default_rng(3)
    block = 128
    conv = PartitionedConvolver(_ir(rng, 150000, 960), block)
    spent: list[float] = []
    forced = [0]
    real_step = convolve._Level.step

    def step(self, inp, out):
        if self.due < conv._t:  # the convolver's time is the block's end while it runs
            forced[0] += 1
        cost = real_step(self, inp, out)
        spent[-1] += cost
        return cost

    monkeypatch.setattr(convolve._Level, "step", step)
    x = rng.standard_normal((2, block)).astype(np.float32)
    for _ in range(2000):
        spent.append(0.0)
        conv.process(x)
    biggest = max(max(lv.costs) for lv in conv.levels)
    steady = np.array(spent[200:])
    assert forced[0] == 0
    assert steady.max() <= conv.rate * block + biggest
    assert steady.mean() == pytest.approx(conv.rate * block, rel=0.02)
