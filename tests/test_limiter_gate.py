"""The limiter's sub-block gate (blocks over MATMUL_MAX samples, the offline run) gives
bit for bit the needed gain, gain and output of the interpolator run over every sample."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from scipy.ndimage import correlate1d

from vocalmix.core.limiter import (
    GATE_BLOCK,
    MATMUL_MAX,
    OFFLINE_BLOCK,
    TP_DELAY,
    StreamingLimiter,
    latency_samples,
    limit,
)
from vocalmix.core.params import Master

SR = 44100
MASTER = Master()
CEILING = 10.0 ** (MASTER.ceiling_dbtp / 20.0)


def _full_detect(self: StreamingLimiter, read: np.ndarray, q: np.ndarray) -> None:
    """The ungated detector: every phase over the whole block, then q from all of it."""
    n = q.shape[0]
    z = np.empty((self.channels, 4, n))
    cb = np.empty_like(read)
    for p in range(4):
        correlate1d(read, self._taps[p], axis=1, output=cb, mode="constant")
        z[:, p] = cb[:, TP_DELAY : TP_DELAY + n]
    tpv = np.abs(z).max(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        q[:] = np.where(tpv > self.ceiling, self.aim / tpv, 1.0)


class _Probe:
    """Records the needed gain of every block processed, and how many samples the gated
    detector interpolated."""

    def __init__(self) -> None:
        self.q: list[np.ndarray] = []
        self.interpolated = 0
        self.ungated = False
        self.lock = threading.Lock()

    def take(self) -> tuple[np.ndarray, int]:
        q, k = np.concatenate(self.q), self.interpolated
        self.q, self.interpolated = [], 0
        return q, k


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Probe]:
    pr = _Probe()
    process, detect, run = (StreamingLimiter.process, StreamingLimiter._detect_large,
                            StreamingLimiter._interpolate_run)

    def process_(self: StreamingLimiter, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        o = process(self, x, out)
        pr.q.append(self._q[: x.shape[1]].copy())
        return o

    def detect_(self: StreamingLimiter, read: np.ndarray, q: np.ndarray) -> None:
        (_full_detect if pr.ungated else detect)(self, read, q)

    def run_(self: StreamingLimiter, w: np.ndarray, q: np.ndarray,
             scratch: tuple[np.ndarray, ...]) -> None:
        with pr.lock:  # the offline run interpolates on two threads
            pr.interpolated += q.shape[0]
        run(self, w, q, scratch)

    monkeypatch.setattr(StreamingLimiter, "process", process_)
    monkeypatch.setattr(StreamingLimiter, "_detect_large", detect_)
    monkeypatch.setattr(StreamingLimiter, "_interpolate_run", run_)
    yield pr


def _both(probe: _Probe, f: Callable[[], tuple[np.ndarray, np.ndarray | None]]):
    """``(y, gain, q, interpolated)`` of ``f`` ungated (the reference), then gated."""
    res = []
    for ungated in (True, False):
        probe.ungated = ungated
        y, g = f()
        res.append((y, g, *probe.take()))
    probe.ungated = False
    return res


def _assert_same(ref, got) -> None:
    for a, b in zip(ref[:3], got[:3], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(b, a)


def _quiet(n: int, channels: int, rng: np.random.Generator, level: float = 0.05) -> np.ndarray:
    return (level * rng.standard_normal((n, channels))).astype(np.float32)


OFFSETS = (-21, -20, -19, -11, -10, -1, 0, 1, 9, 10, 19, 20)


def _spikes_at_edges(n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Quiet noise with single loud samples a few samples either side of sub-block edges
    (every seventh, and every offline block's, the signal's start and end), where the
    gate's 20-sample overlap decides."""
    x = _quiet(n, channels, rng)
    for j, e in enumerate(range(3, n // GATE_BLOCK + 1, 7)):
        i = e * GATE_BLOCK + OFFSETS[j % len(OFFSETS)]
        if 0 <= i < n:
            x[i, j % channels] = 1.1 if j % 2 else -1.3
    for j, e in enumerate(range(OFFLINE_BLOCK, n + 1, OFFLINE_BLOCK)):
        x[e + (-10, -1, -20, 0, 19)[j % 5], 0] = 1.2
    x[3, -1] = -1.25
    x[n - 4, 0] = 1.15
    return x


def _sparse_bursts(n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Quiet noise with a few short loud tone bursts (inter-sample peaks included)."""
    x = _quiet(n, channels, rng)
    t = np.arange(n) / SR
    for centre in rng.integers(0, n, 6):
        lo, hi = max(0, centre - 300), min(n, centre + 300)
        x[lo:hi] += (1.1 * np.sin(2 * np.pi * 11025.0 * t[lo:hi] + 0.7))[:, None].astype(
            np.float32)
    return x


def _all_loud(n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    return (0.6 * rng.standard_normal((n, channels))).astype(np.float32)


def _near_ceiling(n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Everywhere above the gate's bound but mostly under the ceiling: the gate lets the
    interpolator run and it finds q = 1 nearly everywhere."""
    x = np.sign(rng.standard_normal((n, channels))) * 0.7 * CEILING
    x[n // 3, 0] = 1.05
    return x.astype(np.float32)


LENGTHS = [
    5001,  # one block under OFFLINE_BLOCK
    2 * OFFLINE_BLOCK + 777,  # odd
    # the last block (input and latency) ends 7 samples into a sub-block: shorter than
    # the 20-sample overlap
    3 * OFFLINE_BLOCK + 9 * GATE_BLOCK + 7 - latency_samples(MASTER, SR),
]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("make", [_spikes_at_edges, _sparse_bursts, _all_loud, _near_ceiling])
def test_gate_is_bit_identical(make, n: int, channels: int, probe: _Probe) -> None:
    x = make(n, channels, np.random.default_rng(n + channels))
    ref, got = _both(probe, lambda: limit(x, SR, MASTER))
    y_ref, g_ref, q_ref, _ = ref
    assert g_ref is not None and (q_ref < 1.0).any() and (g_ref < 1.0).any()
    assert not np.array_equal(y_ref, x)  # the limiter acts
    _assert_same(ref, got)
    assert got[3] <= q_ref.shape[0]
    if make is _spikes_at_edges or (make is _sparse_bursts and n > OFFLINE_BLOCK):
        assert got[3] < q_ref.shape[0] / 2  # the gate skips most of a sparse signal


@pytest.mark.parametrize("screen", [True, False])
@pytest.mark.parametrize("channels", [1, 2])
def test_all_quiet_blocks_between_loud_ones(channels: int, screen: bool, probe: _Probe,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole offline blocks under the gate's bound, one loud sample in the middle one:
    the sample-peak gate interpolates both sub-blocks that read it, the screen only the
    one whose own detector values reach the ceiling (the other reads only the
    interpolator's small outer taps times it)."""
    monkeypatch.setattr(StreamingLimiter, "screen", screen)
    n = 3 * OFFLINE_BLOCK
    x = _quiet(n, channels, np.random.default_rng(1), level=0.02)
    x[OFFLINE_BLOCK + 2 * GATE_BLOCK - 5, 0] = 1.5  # read by sub-blocks 1 and 2
    ref, got = _both(probe, lambda: limit(x, SR, MASTER))
    assert ref[1] is not None and ref[1].min() < 0.7
    _assert_same(ref, got)
    assert got[3] == (1 if screen else 2) * GATE_BLOCK
    np.testing.assert_array_equal(got[0][: OFFLINE_BLOCK // 2], x[: OFFLINE_BLOCK // 2])


def test_all_quiet_signal_passes_unchanged() -> None:
    x = _quiet(OFFLINE_BLOCK + 100, 2, np.random.default_rng(2), level=0.02)
    y, g = limit(x, SR, MASTER)
    assert y is x and g is None


@pytest.mark.parametrize("block", [MATMUL_MAX + 1, 3000, 4096 + 13])
def test_streaming_large_blocks_and_nan(block: int, probe: _Probe) -> None:
    """Block by block with blocks over MATMUL_MAX (a live block size), including a NaN
    sample next to loud ones: the gate gives the ungated output bit for bit."""
    rng = np.random.default_rng(block)
    n = 5 * block + 333
    x = _spikes_at_edges(n, 2, rng).T.copy()
    i = 2 * block + 3 * GATE_BLOCK + 100  # a NaN sample and, in the same sub-block, a
    x[1, i] = np.nan  # loud one whose peak's windows do not read it
    x[0, i + 30] = 1.4

    def run() -> tuple[np.ndarray, np.ndarray]:
        lim = StreamingLimiter(MASTER, SR, block, 2)
        out = np.zeros((2, block), np.float32)
        ys, gs = [], []
        for t in range(0, n, block):
            ys.append(lim.process(x[:, t : t + block], out).copy())
            gs.append(lim.gain[: ys[-1].shape[1]].copy())
        return np.concatenate(ys, axis=1), np.concatenate(gs)

    ref, got = _both(probe, run)
    assert (ref[1] < 1.0).any() and np.isnan(ref[0]).any()
    _assert_same(ref, got)
    assert got[3] < n / 2


@pytest.mark.parametrize("block", [128, 37, 1000, MATMUL_MAX + 1, 3000])
def test_settled_quiet_blocks_skip_the_gain_stages_bit_for_bit(block):
    """Once the spread's and the ramp's windows hold only needed gains of 1, a quiet
    block is passed through delayed without running them: output, gain and the state
    the next loud block starts from are those of the full path, bit for bit (blocks
    over MATMUL_MAX: once the gated detector finds no needed gain under 1)."""
    rng = np.random.default_rng(block)
    n = 60000 if block <= MATMUL_MAX else 120000
    x = (rng.standard_normal((2, n)) * 0.05).astype(np.float32)  # quiet
    for a in (5000, 21000, 21800, 40000):  # loud bursts, two close together
        x[:, a : a + 700] *= 40.0
    runs = {}
    for fast in (True, False):
        lim = StreamingLimiter(MASTER, SR, block, 2)
        if not fast:
            lim._settled = n + 1  # never settled: every block runs every stage
        outs, gains, skipped = [], [], 0
        out = np.zeros((2, block), np.float32)
        for t in range(0, n, block):
            before = lim._ones >= lim._settled
            o = lim.process(x[:, t : t + block], out)
            skipped += before and float(np.abs(x[:, t : t + block]).max()) < 0.3
            outs.append(o.copy())
            gains.append(lim.gain[: o.shape[1]].copy())
        runs[fast] = (np.concatenate(outs, axis=1), np.concatenate(gains), skipped)
    assert runs[True][2] > n // block // 2  # most quiet blocks took the short path
    assert runs[False][2] == 0
    np.testing.assert_array_equal(runs[True][0], runs[False][0])
    np.testing.assert_array_equal(runs[True][1], runs[False][1])
    assert runs[True][1].min() < 0.9  # the bursts were limited


def _exact_tpv(x: np.ndarray) -> float:
    """The largest detector value of ``x`` ``(n, channels)``: every phase, float64."""
    taps = StreamingLimiter(MASTER, SR, 4096, x.shape[1])._taps
    w = np.concatenate([np.zeros((TP_DELAY, x.shape[1])), x, np.zeros((TP_DELAY,
                                                                        x.shape[1]))])
    return max(float(np.abs(correlate1d(w, t, axis=0, mode="constant")).max())
               for t in taps)


@pytest.mark.parametrize("channels", [1, 2])
def test_screen_near_the_ceiling_is_bit_identical(channels: int, probe: _Probe) -> None:
    """Tone bursts with inter-sample peaks whose true peaks lie from 3e-4 under to 1e-4
    over the ceiling, one per sub-block, where the float32 screen's rounding matters:
    its decisions give the ungated output bit for bit, and it leaves the exact
    interpolator fewer samples than the sample-peak gate does."""
    n = 2 * OFFLINE_BLOCK
    t = np.arange(400) / SR
    unit = np.sin(2 * np.pi * 11025.0 * t + 0.7) * np.hanning(400)
    peak1 = _exact_tpv(unit[:, None])
    x = np.zeros((n, channels), np.float32)
    rel = (-3e-4, -1e-4, -3e-5, -1e-5, -1e-6, -1e-7, 0.0, 1e-7, 1e-6, 1e-5, 1e-4)
    for i, d in enumerate(rel):
        a = (3 + 2 * i) * GATE_BLOCK + 50  # a burst in every other sub-block
        x[a : a + 400, i % channels] = (unit * (CEILING * (1.0 + d) / peak1)).astype(
            np.float32)
    ref, got = _both(probe, lambda: limit(x, SR, MASTER))
    assert ref[1] is not None and ref[1].min() < 1.0
    _assert_same(ref, got)
    y_ref = ref[0]
    for i, d in enumerate(rel):  # the lowest bursts pass unchanged, the highest do not
        a = (3 + 2 * i) * GATE_BLOCK + 50
        if d <= -3e-5:
            np.testing.assert_array_equal(y_ref[a : a + 400], x[a : a + 400])
        if d >= 1e-5:
            assert not np.array_equal(y_ref[a : a + 400], x[a : a + 400])
    with pytest.MonkeyPatch.context() as m:
        m.setattr(StreamingLimiter, "screen", False)
        gated = _both(probe, lambda: limit(x, SR, MASTER))[1]
    _assert_same(ref, gated)
    assert got[3] < gated[3]


@pytest.mark.parametrize("channels", [1, 2])
def test_screen_of_peaks_on_samples_is_bit_identical(channels: int, probe: _Probe) -> None:
    """Slow tone bursts whose largest detector value is a sample itself (phase 0, which
    the screen bounds from the samples' peaks instead of interpolating), from 3e-4 under
    to 1e-4 over the ceiling: the screen's decisions give the ungated output bit for bit,
    and it leaves the exact interpolator fewer samples than the sample-peak gate does."""
    n = 2 * OFFLINE_BLOCK
    t = np.arange(400)
    unit = np.cos(2 * np.pi * (t - 200) / 1600.0) * np.hanning(400)  # its peak: t = 200
    peak1 = _exact_tpv(unit[:, None])
    taps = StreamingLimiter(MASTER, SR, 4096, 1)._taps
    assert peak1 == pytest.approx(abs(taps[0]).max() * unit.max(), rel=1e-12)  # phase 0
    x = np.zeros((n, channels), np.float32)
    rel = (-3e-4, -1e-4, -3e-5, -1e-5, -1e-6, -1e-7, 0.0, 1e-7, 1e-6, 1e-5, 1e-4)
    for i, d in enumerate(rel):
        a = (3 + 2 * i) * GATE_BLOCK + 50
        x[a : a + 400, i % channels] = (unit * (CEILING * (1.0 + d) / peak1)).astype(
            np.float32)
    ref, got = _both(probe, lambda: limit(x, SR, MASTER))
    assert ref[1] is not None and ref[1].min() < 1.0
    _assert_same(ref, got)
    for i, d in enumerate(rel):
        a = (3 + 2 * i) * GATE_BLOCK + 50
        if d <= -3e-5:
            np.testing.assert_array_equal(ref[0][a : a + 400], x[a : a + 400])
        if d >= 1e-5:
            assert not np.array_equal(ref[0][a : a + 400], x[a : a + 400])
    with pytest.MonkeyPatch.context() as m:
        m.setattr(StreamingLimiter, "screen", False)
        gated = _both(probe, lambda: limit(x, SR, MASTER))[1]
    _assert_same(ref, gated)
    assert got[3] < gated[3]


def test_the_sample_peak_the_limiter_gates_on_is_the_largest_magnitude():
    """``peak_abs``, which lets a mix whose sample peak cannot make a true peak over the
    ceiling pass the limiter untouched: the largest ``|x|`` over samples and channels,
    for mono, stereo, strided views and either sign; 0 for nothing, NaN for a NaN."""
    from vocalmix.core.measure import peak_abs

    rng = np.random.default_rng(11)
    for shape in [(1,), (1001,), (1001, 1), (4097, 2), (333, 6)]:
        x = (rng.standard_normal(shape) * 0.3).astype(np.float32)
        for arr in (x, -x, x[::3], np.asfortranarray(x)):
            assert peak_abs(arr) == float(np.abs(arr).max())
    assert peak_abs(np.zeros((0, 2), np.float32)) == 0.0
    assert peak_abs(np.zeros((5, 2), np.float32)) == 0.0
    y = np.full((10, 2), 0.5, np.float32)
    y[7, 1] = np.nan
    assert np.isnan(peak_abs(y))
