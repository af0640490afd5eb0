"""Loudness measurement: ITU-R BS.1770-4 and EBU Tech 3342.

Two implementations live here, on purpose:

* :func:`libebur128_integrated_loudness` calls ``pyebur128`` (libebur128, the reference C
  implementation): the cross-check. :func:`integrated_loudness` and
  :func:`loudness_range` use the numpy implementation (the LRA at the 10 Hz short-term
  rate that Tech 3342 asks for: see its docstring for why not libebur128's), so that a
  signal is K-weighted once for every figure read off it.
* :class:`BlockStats` is a vectorised numpy implementation of the same equations built on
  per-100-ms sums of the K-weighted signal. Because the K-weighting filter is linear, the
  block energies of ``g * vocal + backing`` follow exactly from the energies and the
  cross-energy of the two parts, so the resolvers can evaluate hundreds of candidate gains
  without filtering again. Tests check it against ``pyebur128`` and ``pyloudnorm``.

All signals are float arrays shaped ``(n_samples, n_channels)`` with an explicit sample
rate in Hz. Channel weights are 1.0 (left/right); vocalmix only handles mono and stereo,
and a mono signal is measured as stereo with both channels equal (see :mod:`vocalmix.core.audio`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import numpy as np
import pyebur128
from numpy.typing import DTypeLike

from vocalmix.core.dsp import LruCache, content_key

# BS.1770-4 section 2.1, eq. (2): loudness offset of the K-weighting, in dB
LOUDNESS_OFFSET_DB = -0.691
ABS_GATE_LUFS = -70.0  # BS.1770-4 eq. (4) absolute gate, Tech 3342 absolute gate
REL_GATE_INTEGRATED_LU = -10.0  # BS.1770-4 eq. (6) relative gate
REL_GATE_LRA_LU = -20.0  # EBU Tech 3342 relative gate
LRA_LOW_PCT = 10.0  # EBU Tech 3342 lower percentile
LRA_HIGH_PCT = 95.0  # EBU Tech 3342 upper percentile
SILENCE_LUFS = -np.inf
#: LUFS: for the level-free figures (``level_free`` of :func:`lra_from_short_term` and
#: :func:`integrated_from_segments`: the momentary loudness range and the dynamics model's
#: peak-to-loudness ratio), a signal whose loudest 400 ms block lies under this has its
#: absolute gate lowered by as much
LEVEL_FREE_TOP_LUFS = -20.0


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = np.stack([x, x], axis=1)  # a mono signal is measured as a stereo one
    if x.ndim != 2:
        raise ValueError(f"expected audio shaped (n_samples, n_channels), got {x.shape}")
    return x


@dataclass(frozen=True)
class Measurement:
    """Loudness figures of one signal.

    Attributes:
        integrated_lufs: integrated loudness, LUFS (BS.1770-4); ``-inf`` for silence.
        lra_lu: loudness range, LU (EBU Tech 3342); 0 when too short to measure.
        true_peak_dbtp: true peak, dBTP (BS.1770-4 Annex 2, 4x oversampling).
        duration_s: length, s.
    """

    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float
    duration_s: float


#: frames handed to libebur128 at a time by :func:`_r128_state`
_R128_BLOCK = 1 << 16


def _r128_state(x: np.ndarray, sample_rate: int, mode: int) -> pyebur128.R128State:
    """libebur128's state after every frame of ``x``, fed :data:`_R128_BLOCK` frames at a
    time: it filters and gates sample by sample, so the figures are the same to the bit
    as from one call, and a signal that is not C-ordered float32 (the EQ stage's output
    is in Fortran order) is converted a block at a time instead of copied whole."""
    x = _as_2d(x)
    state = pyebur128.R128State(x.shape[1], int(sample_rate), mode)
    for i in range(0, x.shape[0], _R128_BLOCK):
        block = np.ascontiguousarray(x[i : i + _R128_BLOCK], dtype=np.float32)
        state.add_frames(block.ravel(), block.shape[0])
    return state


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS per ITU-R BS.1770-4; ``-inf`` if silent.

    Gated from the 100 ms segment energies of the K-weighted signal
    (:meth:`BlockStats.of`, eqs. (1)-(7) in :func:`integrated_from_segments`), which the
    LRA, the momentary range and the features of the same signal read too: a signal is
    K-weighted once for all of them, remembered by content for a read-only ``x`` (see
    :func:`vocalmix.core.dsp.frozen`). Equal to libebur128's figure
    (:func:`libebur128_integrated_loudness`) within 1e-5 LU (tests)."""
    x = np.asarray(x)
    return integrated_loudness_of(BlockStats.of(x, sample_rate, remember=not x.flags.writeable))


def level_free_loudness(x: np.ndarray, sample_rate: int) -> float:
    """:func:`integrated_loudness` (LUFS; ``-inf`` if silent) with the absolute gate of a
    quiet signal placed under its own loudest block (``integrated_from_segments(...,
    level_free=True)``): BS.1770-4's figure for any signal whose loudest 400 ms block
    reaches -20 LUFS, and for a quieter one the figure of the same signal made louder,
    less the gain. For ratios between a signal and its processed self (a compressor's
    make-up gain) that must not depend on the level the take was recorded at."""
    x = np.asarray(x)
    st = BlockStats.of(x, sample_rate, remember=not x.flags.writeable)
    value = float(integrated_from_segments(st.energy, st.segment_len, level_free=True))
    return value if np.isfinite(value) else SILENCE_LUFS


def integrated_loudness_of(stats: BlockStats) -> float:
    """:func:`integrated_loudness` of the signal whose segment energies ``stats`` holds."""
    value = float(integrated_from_segments(stats.energy, stats.segment_len))
    return value if np.isfinite(value) else SILENCE_LUFS


def libebur128_integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS as libebur128 (the reference C implementation, through
    ``pyebur128``) computes it; ``-inf`` if silent. The cross-check of
    :func:`integrated_loudness`."""
    state = _r128_state(x, sample_rate, pyebur128.MeasurementMode.MODE_I)
    value = float(pyebur128.get_loudness_global(state))
    return value if np.isfinite(value) else SILENCE_LUFS


def loudness_range(x: np.ndarray, sample_rate: int) -> float:
    """Loudness range in LU per EBU Tech 3342, short-term loudness at 10 Hz.

    This is the numpy implementation below (:func:`lra_from_short_term`), not
    libebur128's: libebur128 feeds its LRA with one short-term value per second
    (``short_term_frame_counter`` is reset to 2 s of a 3 s window), below Tech 3342's
    minimum rate of 10 Hz, which makes its figure depend on block alignment by up to
    about 0.5 LU on a 30 s vocal. On the Tech 3342 test signals both agree within 1e-6 LU.
    """
    return fast_loudness_range(x, sample_rate)


def libebur128_loudness_range(x: np.ndarray, sample_rate: int) -> float:
    """Loudness range in LU as libebur128 computes it (1 Hz short-term blocks)."""
    state = _r128_state(x, sample_rate, pyebur128.MeasurementMode.MODE_LRA)
    value = float(pyebur128.get_loudness_range(state))
    return value if np.isfinite(value) else 0.0


def loudness_and_range(x: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Integrated loudness (LUFS, libebur128) and loudness range (LU, 10 Hz, numpy)."""
    return integrated_loudness(x, sample_rate), loudness_range(x, sample_rate)


# --- true peak ---------------------------------------------------------------------------

_TP_FACTOR = 4


@lru_cache(maxsize=1)
def true_peak_filter() -> np.ndarray:
    """4x interpolation low-pass, 21 taps per phase (84 in all).

    BS.1770-4 Annex 2 asks for at least 4x oversampling with a 48-tap interpolator; its
    example filter droops near Nyquist. This is scipy's ``resample_poly`` design (Kaiser
    beta 5, cut-off at the original Nyquist, 81 taps padded to 84), which reads closer to
    the true inter-sample peak (checked against libebur128 and 16x oversampling in tests).
    """
    taps = 2 * 10 * _TP_FACTOR + 1
    m = np.arange(taps) - (taps - 1) / 2.0
    # scipy.signal.firwin(taps, 1 / _TP_FACTOR, window=("kaiser", 5.0)): a windowed sinc
    # scaled to unit gain at 0 Hz (numpy's Kaiser window; equal to scipy's design within
    # 2e-18, tests/test_kernels.py)
    h = np.sinc(m / _TP_FACTOR) / _TP_FACTOR * np.kaiser(taps, 5.0)
    h = h / h.sum()
    h = np.concatenate([h, np.zeros(-len(h) % _TP_FACTOR)])
    return (h * _TP_FACTOR / h.sum()).astype(np.float64)


@lru_cache(maxsize=1)
def true_peak_phases() -> np.ndarray:
    """:func:`true_peak_filter` split into its 4 polyphase branches, ``(4, taps)``
    float64, read-only: row ``p`` holds taps ``h[4 k + p]``, phase ``p``'s output at a
    quarter-sample offset ``p / 4``."""
    phases = np.ascontiguousarray(true_peak_filter().reshape(-1, _TP_FACTOR).T)
    phases.flags.writeable = False
    return phases


#: block length (samples) of the true-peak check's matrix product (32: a window of 52
#: samples gives the 96 values between them; a 64-sample block reads 84 for 192, 1.6
#: times the products per sample)
_TP_BLOCK = 32
#: blocks per pass of the sample-peak scan (bounds its work arrays to a few MB)
_TP_CHUNK = 8192
#: candidate blocks per matrix product (their windows and interpolated values take
#: about 1 MB)
_TP_CAND_CHUNK = 1024


@lru_cache(maxsize=2)
def true_peak_matrix(block: int = _TP_BLOCK) -> tuple[np.ndarray, float]:
    """The 4x interpolation of one block of ``block`` samples (``B``) as a float32
    matrix, and the filter's largest absolute tap sum over its phases (``l1``).

    Row ``i`` of a window holds the input sample ``b B + i - (taps - 1)`` (zeros outside
    the signal); column ``p B + j`` is phase ``p``'s output at time ``b B + j``: the
    ``mode="full"`` convolution of each phase with the signal, every output once. (The
    limiter's float32 screen reads its detector values off the same matrix.)"""
    return _true_peak_matrix64(block).astype(np.float32), true_peak_gain_bound()


@lru_cache(maxsize=2)
def _true_peak_matrix64(block: int) -> np.ndarray:
    """:func:`true_peak_matrix`'s matrix in float64 (read-only)."""
    phases = true_peak_phases()
    taps = phases.shape[1]
    b = block
    m = np.zeros((b + taps - 1, _TP_FACTOR * b))
    for p in range(_TP_FACTOR):
        for j in range(b):
            # out[j] = sum_k phase[k] x[j - k]  ->  window row j + taps - 1 - k
            m[j : j + taps, p * b + j] = phases[p, ::-1]
    m.flags.writeable = False
    return m


@lru_cache(maxsize=1)
def true_peak_gain_bound() -> float:
    """The largest sum of absolute taps over the 4x interpolator's phases (``l1``): no
    interpolated value exceeds the sample peak times this."""
    return float(np.abs(true_peak_phases()).sum(axis=1).max())


@lru_cache(maxsize=2)
def inter_sample_matrix(block: int = _TP_BLOCK, exact: bool = False) -> np.ndarray:
    """Phases 1-3 of :func:`true_peak_matrix` (its last ``3 B`` columns), read-only: the
    values between the samples (the true-peak meter's and the limiter's screen's);
    ``exact``: in float64."""
    m64 = _true_peak_matrix64(block)[:, block:]
    m = np.ascontiguousarray(m64 if exact else m64.astype(np.float32))
    m.flags.writeable = False
    return m


def _on_sample_peak(peak: float) -> float:
    """The largest phase-0 value of a signal whose sample peak is ``peak``: phase 0 of
    the interpolator (row 0 of :func:`true_peak_phases`) is the sample itself times its
    centre tap (1.0006; its other taps are under 4e-17 and left out), so its largest
    value is the sample peak times that tap (float64)."""
    phase0 = true_peak_phases()[0]
    return float(phase0[len(phase0) // 2]) * peak


def _block_peaks(ax: np.ndarray, b: int) -> np.ndarray:
    """The largest of each ``b`` consecutive values of ``ax`` (the last block possibly
    short): one reduction (a reshape to rows of ``b`` reduced along them took three
    times as long)."""
    return np.maximum.reduceat(ax, np.arange(0, ax.shape[0], b))


#: how far under the largest float32 value between the samples, relative to it and
#: times the interpolator's ``l1``, a window's own largest value may lie and still be
#: computed again in float64: a float32 sum of a window's 52 products errs by at most
#: about 54 x 2^-24 of ``l1`` times its sample peak (3.2e-6), under the value itself for
#: a window whose value can be the true peak (it must exceed the sample peak, phase 0);
#: this is 30 times that, on either side
_TP_NEAR = 2e-4
#: windows kept for the float64 values at most (a signal clipped flat for minutes can
#: have hundreds of thousands within the margin: the largest estimates are kept, and the
#: figure is then float32's, to about 1e-6 dB, whatever the batches)
_TP_KEEP = 8192
#: windows computed in float64 at a time (their products take about 10 MB)
_TP_EXACT_CHUNK = 256


class _NearWindows:
    """The largest magnitude of phases 1-3 over the windows of one signal, the same
    figure however they were batched: BLAS's float32 product of a window depends, in
    its last bit, on the window's place in its batch, so each batch's products only find
    the windows within :data:`_TP_NEAR` of the largest, whose values are then computed
    again in float64 by numpy (the same sums in the same order for every window)."""

    def __init__(self, l1: float, block: int = _TP_BLOCK) -> None:
        self._l1 = l1
        self._block = block
        self.estimate = 0.0  #: the largest float32 value so far
        self._values = np.zeros(0, np.float32)  # each kept window's largest float32 value
        self._windows: list[np.ndarray] = []  # the kept windows, batch by batch

    def _floor(self) -> float:
        return self.estimate * (1.0 - 2.0 * _TP_NEAR * self._l1)

    def add(self, windows: np.ndarray, values: np.ndarray) -> None:
        """Take a batch: its ``windows`` ``(k, 52)`` and their products ``values`` ``(k,
        96)`` (a batch holding a NaN is left out, as the float32 figure left it)."""
        top = max(float(values.max()), -float(values.min()))
        if not top >= self._floor():
            return
        rose = top > self.estimate
        self.estimate = max(self.estimate, top)
        floor = self._floor()
        flat = values.reshape(-1)
        hit = np.flatnonzero((flat >= floor) | (flat <= -floor))
        rows = np.unique(hit // values.shape[1])
        if rows.size == 0:
            return
        near = np.abs(values[rows]).max(axis=1)
        self._values = np.concatenate([self._values, near])
        self._windows.append(windows[rows])
        if rose or self._values.size > 2 * _TP_KEEP:
            self._prune(floor)

    def _prune(self, floor: float) -> None:
        """Drop the windows now under the floor (and, past :data:`_TP_KEEP`, all but the
        largest estimates)."""
        keep = self._values >= floor
        if keep.sum() > _TP_KEEP:
            cut = np.partition(self._values, self._values.size - _TP_KEEP)[
                self._values.size - _TP_KEEP]
            keep &= self._values >= cut
        windows = np.concatenate(self._windows)[keep]
        self._values = self._values[keep]
        self._windows = [windows]

    def exact(self) -> float:
        """The largest magnitude of the kept windows' values between the samples, in
        float64 (0.0 when none)."""
        if not self._windows:
            return 0.0
        self._prune(self._floor())
        w = self._windows[0]
        m = inter_sample_matrix(self._block, exact=True)
        best = 0.0
        for i in range(0, w.shape[0], _TP_EXACT_CHUNK):
            part = w[i : i + _TP_EXACT_CHUNK].astype(np.float64)
            v = (part[:, :, None] * m).sum(axis=1)  # every window's sums in one order
            best = max(best, float(np.abs(v).max()))
        return best


def _inter_sample_windows(wc: np.ndarray, cand: np.ndarray, b: int, near: _NearWindows
                          ) -> None:
    """Phases 1-3 over the candidate blocks ``cand`` of one channel, for ``near``:
    ``wc`` holds the ``taps - 1`` samples before block 0, then the blocks, so that block
    ``j``'s window is ``wc[j b : j b + b + taps - 1]`` (float32, one matrix product per
    :data:`_TP_CAND_CHUNK` windows)."""
    from numpy.lib.stride_tricks import sliding_window_view

    mat = inter_sample_matrix(b)
    windows = sliding_window_view(wc, mat.shape[0])[::b]
    for i in range(0, len(cand), _TP_CAND_CHUNK):
        w = windows[cand[i : i + _TP_CAND_CHUNK]]  # (the rows gathered, contiguous)
        near.add(w, w @ mat)


#: candidate blocks from which :func:`true_peak_dbtp` interpolates two channels on two
#: threads (fewer: one thread, as starting one would cost more than it saves)
_TP_TWO_THREADS = 256


def true_peak_dbtp(x: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP: the peak of the 4x-oversampled signal (BS.1770-4 Annex 2).

    Phase 0 of the interpolator is the sample itself (times 1.0006,
    :func:`_on_sample_peak`). The values between the samples (phases 1-3) are found
    block by block: the signal is cut into blocks of :data:`_TP_BLOCK` samples and each
    block's 3 x 32 values come from one matrix product with its samples and the
    filter's context (float32); the windows whose values come within :data:`_TP_NEAR`
    of the largest are computed again in float64 (:class:`_NearWindows`), so the figure
    is the float64 oversampling's and does not depend on how the blocks were batched
    (:class:`TruePeakMeter` gives the same). Only blocks loud enough to matter are
    interpolated: an interpolated value is a weighted sum of 21 neighbours whose weights
    sum in magnitude to at most ``l1``, so in a block whose samples (and its context's)
    all lie below ``sample_peak / l1`` no interpolated value can exceed the sample peak.
    """
    del sample_rate  # the interpolation is rate-independent (4x of whatever the rate is)
    x = _as_2d(x)
    n = x.shape[0]
    if n == 0:
        return -np.inf
    l1 = true_peak_gain_bound()
    b = _TP_BLOCK
    ctx = inter_sample_matrix(b).shape[0] - b  # taps - 1 samples before each block
    nb = -(-(n + ctx) // b)  # blocks covering every full-convolution output
    bmax = np.zeros(nb, dtype=np.float32)  # the sample peak of each block
    rows = _TP_CHUNK * b
    peak = 0.0
    for i in range(0, n, rows):
        ax = sample_peak(x[i : i + rows])
        peak = max(peak, float(ax.max()))  # in the signal's precision
        got = _block_peaks(ax, b)
        bmax[i // b : i // b + got.shape[0]] = got
    if peak == 0.0:
        return -np.inf
    ext = bmax.copy()  # a block's window reaches back into the previous block
    ext[1:] = np.maximum(ext[1:], bmax[:-1])
    cand = np.flatnonzero(ext >= peak / l1)

    def channel_best(c: int) -> float:
        # a chunk of blocks at a time: its windows' samples, one channel, contiguous
        # (zeros before the start and after the end)
        near = _NearWindows(l1)
        wc = np.zeros(ctx + rows, np.float32)
        for j0 in range(0, nb, _TP_CHUNK):
            j1 = min(nb, j0 + _TP_CHUNK)
            local = cand[np.searchsorted(cand, j0) : np.searchsorted(cand, j1)] - j0
            if local.size == 0:
                continue
            t0 = j0 * b - ctx  # the signal's sample at wc[0]
            w = wc[: ctx + (j1 - j0) * b]
            w.fill(0.0)
            lo, hi = max(t0, 0), min(n, t0 + w.shape[0])
            if hi > lo:
                w[lo - t0 : hi - t0] = x[lo:hi, c]
            _inter_sample_windows(w, local, b, near)
        return near.exact()

    if x.shape[1] == 2 and len(cand) >= _TP_TWO_THREADS:
        # the second channel's products on a helper thread (they let go of the GIL): the
        # same products, and a largest value is the same whichever channel finds it first
        from vocalmix.core.parallel import beside

        bests: tuple[float, ...] = beside(lambda: channel_best(1), lambda: channel_best(0))
    else:
        bests = tuple(channel_best(c) for c in range(x.shape[1]))
    return float(20.0 * np.log10(max(peak, _on_sample_peak(peak), *bests)))



#: no candidate block (a silent stretch)
_NO_BLOCKS = np.zeros(0, np.int64)


class TruePeakMeter:
    """The true peak (dBTP) of a signal given a block at a time: :func:`true_peak_dbtp`
    of the whole signal, computed the same way (phase 0 from the sample peak; 3 x 32
    values between the samples per block of :data:`_TP_BLOCK` samples from one float32
    matrix product, only for blocks loud enough to matter, and those near the largest
    again in float64) with the sample peak so far as the bound: a block skipped cannot
    exceed the final peak either. Equal to the whole-signal figure to the bit, whatever
    the blocks given."""

    def __init__(self) -> None:
        self._l1 = true_peak_gain_bound()
        self._ctx = inter_sample_matrix().shape[0] - _TP_BLOCK
        self._before: np.ndarray | None = None  # the ctx samples before the pending ones
        self._pending: np.ndarray | None = None  # samples short of a whole block
        self._prev_bmax = 0.0
        self.peak = 0.0
        self._near = _NearWindows(self._l1)
        self._done: float | None = None

    def add(self, x: np.ndarray) -> None:
        """Take the next ``(n, channels)`` block."""
        if self._done is not None:
            raise ValueError("this meter has given its figure already")
        x = np.asarray(_as_2d(x), dtype=np.float32)
        if self._before is None:
            self._before = np.zeros((self._ctx, x.shape[1]), np.float32)
        if self._pending is not None and self._pending.shape[0]:
            x = np.concatenate([self._pending, x])
        k = x.shape[0] // _TP_BLOCK * _TP_BLOCK
        for i in range(0, k, _TP_CHUNK * _TP_BLOCK):
            self._blocks(x[i : min(k, i + _TP_CHUNK * _TP_BLOCK)])
        self._pending = x[k:].copy()

    def _blocks(self, y: np.ndarray) -> None:
        b, ctx = _TP_BLOCK, self._ctx
        assert self._before is not None
        ax = sample_peak(y)
        self.peak = max(self.peak, float(ax.max()))
        bmax = _block_peaks(ax, b)
        ext = bmax.copy()  # a block's window reaches back into the previous block
        ext[0] = max(ext[0], self._prev_bmax)
        ext[1:] = np.maximum(ext[1:], bmax[:-1])
        self._prev_bmax = float(bmax[-1])
        cand = np.flatnonzero(ext >= self.peak / self._l1) if self.peak > 0.0 else _NO_BLOCKS
        if cand.size:
            for c in range(y.shape[1]):
                # block j's window is wc[j b : j b + b + ctx]
                wc = np.concatenate([self._before[:, c], y[:, c]])
                _inter_sample_windows(wc, cand, b, self._near)
        self._before = (y[y.shape[0] - ctx :] if y.shape[0] >= ctx
                        else np.concatenate([self._before, y])[-ctx:]).copy()

    def dbtp(self) -> float:
        """The true peak of everything given, dBTP (``-inf`` for silence); the meter
        takes no more blocks after this."""
        if self._done is None:
            if self._before is not None:
                rest = self._pending if self._pending is not None else self._before[:0]
                n = -(-(rest.shape[0] + self._ctx) // _TP_BLOCK) * _TP_BLOCK
                tail = np.zeros((n, rest.shape[1]), np.float32)  # silence after the end
                tail[: rest.shape[0]] = rest
                self._blocks(tail)
            best = max(self.peak, _on_sample_peak(self.peak), self._near.exact())
            self._done = float(20.0 * np.log10(best)) if best > 0.0 else -np.inf
        return self._done


def peak_abs(x: np.ndarray) -> float:
    """The largest ``|x|`` over samples and channels (0.0 for an empty signal; NaN when
    ``x`` holds one): its largest and its smallest value, each one reduction over the
    array as it lies (no ``|x|`` copy; 3 minutes of stereo in 4-5 ms, against 27 ms
    through per-sample peaks)."""
    x = np.asarray(x)
    if x.size == 0:
        return 0.0
    # (a NaN is the largest value numpy finds, and stays first: max() returns it)
    return max(float(x.max()), -float(x.min()), 0.0)


#: below this many values :func:`upper_quantile` is :func:`numpy.quantile` itself
_UQ_MIN_SIZE = 1 << 16
#: about this many values of the strided subsample the threshold is read from
_UQ_SAMPLE = 1 << 16
#: about this many values per block of the counting pass (256 KB of float32)
_UQ_BLOCK = 1 << 16
#: the largest share of the values above the quantile that is still "close to 1"
_UQ_MAX_SHARE = 1.0 / 64.0
#: numpy 2's promotion rules (NEP 50) and quantile interpolation, which
#: :func:`upper_quantile` reproduces (under numpy 1 it is :func:`numpy.quantile` itself)
_NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


def _exact_quantile(x: np.ndarray, q: float, absolute: bool, dt: np.dtype) -> np.floating:
    """:func:`upper_quantile` by :func:`numpy.quantile` (full-length copies and a
    partition of all values)."""
    v = np.asarray(x, dtype=dt)
    return np.quantile(np.abs(v) if absolute else v, q)


def upper_quantile(a: np.ndarray, q: float, *, absolute: bool = False,
                   dtype: DTypeLike | None = None) -> np.floating:
    """``np.quantile(v, q)`` (default ``linear`` method, ``q`` a Python float) of the
    values ``v = np.asarray(a, dtype)`` (``|v|`` when ``absolute``), bit for bit, for a
    ``q`` close to 1 without sorting or copying the whole array.

    Only the order statistics at ranks ``floor(q (n - 1))`` and the next one matter, and
    they lie in the top ``n - floor(q (n - 1))`` values. A threshold ``t`` is read from a
    strided subsample of about :data:`_UQ_SAMPLE` values (an order statistic a safety
    margin below the one ``q`` asks for); one pass over the array, a block of
    :data:`_UQ_BLOCK` values at a time (each converted and made absolute in a reused
    buffer), counts the values equal to ``t`` and keeps the ones above it. When those
    hold the ranks needed (they are exactly the top ranks: every other value is below
    ``t``), the two order statistics are picked from them and interpolated with numpy's
    own formula and types (``b - (b - a)(1 - g)`` for a weight ``g >= 0.5``, else ``a +
    (b - a) g``, in the array's precision, as numpy 2 does). Otherwise (a subsample that
    did not represent the array, NaNs, a ``q`` not close to 1, fewer than
    :data:`_UQ_MIN_SIZE` values, an array of more than two dimensions or not of floating
    point, numpy 1) it calls :func:`numpy.quantile`. Tests check it against the numpy
    installed.

    Returns the same numpy scalar type as :func:`numpy.quantile`. With ``absolute=False``
    a tie between ``-0.0`` and ``0.0`` at the quantile compares equal but may carry the
    other sign (numpy's own choice depends on its partition's order).
    """
    q = float(q)
    x = np.asarray(a)
    dt = x.dtype if dtype is None else np.dtype(dtype)
    n = x.size

    def exact() -> np.floating:
        return _exact_quantile(x, q, absolute, dt)

    if (not _NUMPY_2 or n < _UQ_MIN_SIZE or dt.kind != "f" or x.ndim not in (1, 2)
            or not 0.0 <= q <= 1.0):
        return exact()
    # numpy's 'linear' method: virtual index (n - 1) q in float64, its floor and the next
    # rank, both the last rank when the index reaches it (the weight then is index + 1)
    v = (n - 1) * q
    if v >= n - 1:
        ranks, gamma = (n - 1, n - 1), v + 1.0
    else:
        lo = math.floor(v)
        ranks, gamma = (lo, lo + 1), v - lo
    need = n - ranks[0]  # values from the top that hold both ranks
    if need > _UQ_MAX_SHARE * n:
        return exact()
    x2 = x.reshape(x.shape[0], -1)  # a view (one or two dimensions)
    rows, cols = x2.shape

    def values(blk: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``blk`` in ``dt``, absolute when asked, in ``out`` when given."""
        if out is None:
            out = np.empty(blk.shape, dt)
        if absolute and blk.dtype == dt:
            np.abs(blk, out=out)
        else:
            np.copyto(out, blk, casting="unsafe")  # as np.asarray(blk, dtype) converts
            if absolute:
                np.abs(out, out=out)
        return out

    step = max(1, rows * cols // _UQ_SAMPLE)
    s = values(x2[:: step | 1]).ravel()  # an odd stride
    m = s.size
    mu = m * need / n  # expected sample values at or above the quantile
    r = math.ceil(2.0 * mu + 8.0 * math.sqrt(mu) + 16.0)
    t = s.min() if r >= m else np.partition(s, m - r)[m - r]
    if np.isnan(t):
        return exact()

    block_rows = max(1, _UQ_BLOCK // cols)
    buf = np.empty((min(block_rows, rows), cols), dt)
    mask = np.empty(buf.shape, bool)
    kept: list[np.ndarray] = []
    n_kept = n_eq = 0
    cap = n // 8 + _UQ_BLOCK  # values kept before giving up (a far too low threshold)
    for i in range(0, rows, block_rows):
        blk = x2[i : i + block_rows]
        k = blk.shape[0]
        if absolute or blk.dtype != dt:
            blk = values(blk, buf[:k])
        below = np.less(blk, t, out=mask[:k])
        rest = blk[np.logical_not(below, out=below)]  # >= t, or NaN
        eq = rest == t
        ties = int(np.count_nonzero(eq))
        if ties:
            n_eq += ties
            rest = rest[~eq]
        if rest.size:
            n_kept += rest.size
            if n_kept > cap:
                return exact()
            kept.append(rest)  # boolean indexing copies
    cand = np.concatenate(kept) if kept else np.empty(0, dt)
    top = n_eq + n_kept  # the values >= t (and NaNs) hold the ranks n - top .. n - 1
    if top < need or np.isnan(cand).any():
        return exact()
    first = n - top
    idx = sorted({rk - first - n_eq for rk in ranks if rk - first >= n_eq})
    if idx:
        cand = np.partition(cand, idx)
    lo_v, hi_v = (t if rk - first < n_eq else cand[rk - first - n_eq] for rk in ranks)
    a_: Any = dt.type(lo_v)
    b_: Any = dt.type(hi_v)
    diff = b_ - a_
    # numpy's _lerp, a Python float weight (weak promotion: the array's precision)
    out = b_ - diff * (1.0 - gamma) if gamma >= 0.5 else a_ + diff * gamma
    return cast(np.floating, dt.type(out))


def sample_peak(x: np.ndarray) -> np.ndarray:
    """Per-sample peak over channels, ``max_c |x[n, c]|``."""
    x = _as_2d(x)
    ax = np.abs(x[:, 0])
    for c in range(1, x.shape[1]):
        np.maximum(ax, np.abs(x[:, c]), out=ax)
    return ax


def measure(x: np.ndarray, sample_rate: int) -> Measurement:
    """Integrated loudness, loudness range and true peak of ``x``."""
    x = _as_2d(x)
    i, lra = loudness_and_range(x, sample_rate)
    return Measurement(
        integrated_lufs=i,
        lra_lu=lra,
        true_peak_dbtp=true_peak_dbtp(x, sample_rate),
        duration_s=x.shape[0] / float(sample_rate),
    )


def loudness_ratio_lu(part: np.ndarray, whole: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of ``part`` minus that of ``whole``, LU (e.g. vocal-to-mix)."""
    return integrated_loudness(part, sample_rate) - integrated_loudness(whole, sample_rate)


def v2b_to_v2m(v2b_lu: float) -> float:
    """Vocal-to-mix (LU) of a vocal at ``v2b_lu`` against an uncorrelated backing that
    is always present: ``v2b - 10 log10(10^(v2b/10) + 1)`` (power addition)."""
    return float(v2b_lu - 10.0 * np.log10(10.0 ** (v2b_lu / 10.0) + 1.0))


def v2m_to_v2b(v2m_lu: float) -> float:
    """Inverse of :func:`v2b_to_v2m`, for ``v2m_lu < 0``: ``10 log10(r / (1 - r))`` with
    ``r = 10^(v2m/10)``."""
    if v2m_lu >= 0:
        raise ValueError("a vocal-to-mix ratio must be negative")
    r = 10.0 ** (v2m_lu / 10.0)
    return float(10.0 * np.log10(r / (1.0 - r)))


# --- vectorised BS.1770 on block statistics -------------------------------------------


@lru_cache(maxsize=16)
def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """K-weighting filter (BS.1770-4 Annex 1) as two biquads for any sample rate.

    The shelf (stage 1) and high-pass (stage 2) are derived from their analog prototypes
    by the bilinear transform, as libebur128 does, so that at 48 kHz they reproduce the
    coefficients printed in BS.1770-4 Tables 1 and 2.
    """
    fs = float(sample_rate)
    # stage 1: high-frequency shelf, +4 dB above ~1.7 kHz (BS.1770-4 Table 1)
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = np.tan(np.pi * f0 / fs)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    b1 = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]
    a1 = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    # stage 2: RLB high-pass at ~38 Hz (BS.1770-4 Table 2)
    f0, q = 38.13547087602444, 0.5003270373238773
    k = np.tan(np.pi * f0 / fs)
    a0 = 1.0 + k / q + k * k
    b2 = [1.0, -2.0, 1.0]
    a2 = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([b1 + a1, b2 + a2], dtype=np.float64)


def k_weight(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted copy of ``x`` (same shape, float64: see :data:`KW_DTYPE`), in the
    layout :func:`k_weighted_blocks` gives (sums over it read it in the same order)."""
    from vocalmix.core.dsp import sosfilt_stream

    x = _as_2d(x)
    return next(iter(sosfilt_stream(k_weighting_sos(sample_rate), [x], KW_DTYPE)))


def _segment_len(sample_rate: int) -> int:
    return int(round(sample_rate / 10.0))  # 100 ms hop, as libebur128


#: 100 ms segments K-weighted at a time by the block-wise analyses (at 44.1 kHz stereo
#: float32 a block is 2.8 MB: the whole-signal copies of the filter are never made)
KW_SEGMENTS = 64


def _k_weight_stream(blocks: Iterable[np.ndarray], sample_rate: int, dtype: type
                     ) -> Iterator[np.ndarray]:
    """:func:`k_weight` of the signal the consecutive ``(n, channels)`` ``blocks`` make
    up, block by block in ``dtype`` (float32 for a float32 signal, else float64, as
    :func:`k_weight` filters it), the state carried: the same values to the bit."""
    from vocalmix.core.dsp import sosfilt_stream

    return sosfilt_stream(k_weighting_sos(sample_rate).astype(dtype),
                          (_as_2d(b) for b in blocks), dtype)


#: the precision every signal is K-weighted in, whatever its own: float32 coefficients
#: move the 38 Hz high-pass enough to read a bass up to 1e-3 LU low, and float64 filters a
#: block as fast
KW_DTYPE = np.float64


def kw_block_len(sample_rate: int) -> int:
    """Samples K-weighted at a time by the block-wise analyses: :data:`KW_SEGMENTS` whole
    100 ms segments."""
    return _segment_len(sample_rate) * KW_SEGMENTS


def k_weighted_blocks(x: np.ndarray, sample_rate: int, block: int | None = None
                      ) -> Iterator[np.ndarray]:
    """:func:`k_weight` of ``x`` as consecutive blocks of ``block`` samples (default
    :func:`kw_block_len`; the last shorter): the same values, a few MB at a time."""
    from vocalmix.core.dsp import row_blocks

    x = _as_2d(x)
    block = kw_block_len(sample_rate) if block is None else block
    return _k_weight_stream(row_blocks(x, block), sample_rate, KW_DTYPE)


def k_weighted_energies(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """:func:`segment_energies` of :func:`k_weight` of ``x`` (float64, one per whole 100 ms
    segment), K-weighting a block at a time: the same values, in a few MB."""
    from vocalmix.core.dsp import row_blocks

    return k_weighted_energies_of_blocks(row_blocks(_as_2d(x), kw_block_len(sample_rate)),
                                         sample_rate)


def k_weighted_energies_of_blocks(blocks: Iterable[np.ndarray], sample_rate: int
                                  ) -> np.ndarray:
    """:func:`k_weighted_energies` of the signal that the consecutive ``(n, channels)``
    ``blocks`` make up, each of :func:`kw_block_len` samples but the last: the same
    values to the bit, for a signal that arrives a block at a time (a render)."""
    seg = _segment_len(sample_rate)
    parts = [segment_energies(y, seg) for y in _k_weight_stream(blocks, sample_rate,
                                                                 KW_DTYPE)]
    return np.concatenate(parts) if parts else np.zeros(0)


def remember_segment_energies(x: np.ndarray, sample_rate: int, energy: np.ndarray) -> None:
    """Remember ``energy`` (:func:`k_weighted_energies` of the read-only ``x``, computed as
    it was made) as :meth:`BlockStats.of` would: the loudness figures of ``x`` then need
    no K-weighting of their own."""
    if x.flags.writeable:
        raise ValueError("remember_segment_energies: x must be read-only (dsp.frozen)")
    _remember_energies(_energy_key(_as_2d(x), sample_rate), energy)


def k_weighted_frame_energies(x: np.ndarray, sample_rate: int, frame_len: int
                              ) -> np.ndarray:
    """The K-weighted energy of each whole frame of ``frame_len`` samples, per channel,
    ``(n_frames, channels)`` float64, K-weighting a block at a time.

    When ``x`` is read-only, the result is read-only and remembered by content (the
    dynamics model reads the compressor resolver's input first and measures it here,
    so the resolver's own call is a look-up), and when a 100 ms segment is a whole
    number of frames the same pass also yields its segment energies, which are
    remembered as :meth:`BlockStats.of` would compute them (the same blocks of whole
    segments, the same sums): the signal's loudness figures then need no second
    K-weighting."""
    x = _as_2d(x)
    seg = _segment_len(sample_rate)
    n = x.shape[0] // frame_len
    whole = seg % frame_len == 0
    key = fkey = None
    if not x.flags.writeable:
        fkey = content_key(x, sample_rate, "k-weighted frame energies", frame_len)
        hit = _FRAME_CACHE.get(fkey)
        if hit is not None:
            return cast(np.ndarray, hit)
        if whole:
            key = _energy_key(x, sample_rate)
            if _ENERGY_CACHE.get(key) is not None:
                key = None
    frames, segs = [], []
    for y in k_weighted_blocks(x[: n * frame_len], sample_rate,
                               block=seg * KW_SEGMENTS if whole else 1024 * frame_len):
        frames.append(frame_sums(y * y, frame_len))
        if key is not None:
            segs.append(segment_energies(y, seg))
    if key is not None:
        _remember_energies(key, np.concatenate(segs) if segs else np.zeros(0))
    out = np.concatenate(frames) if frames else np.zeros((0, x.shape[1]))
    if fkey is not None:
        out.flags.writeable = False
        _FRAME_CACHE.put(fkey, out)
    return out


def frame_sums(x: np.ndarray, frame_len: int) -> np.ndarray:
    """Each channel's sum over each whole frame of ``frame_len`` samples of ``x`` ``(n,
    channels)``: ``(n // frame_len, channels)`` float64, a channel at a time. Each sum
    adds the frame's samples in the same (pairwise) order whatever the layout of ``x``:
    numpy's ``x.reshape(-1, frame_len, channels).sum(axis=1)`` adds them in another order
    for interleaved channels, and a row of two at a time (0.14 s against 0.08 s for the
    10 ms frames of 3 minutes of stereo)."""
    n = x.shape[0] // frame_len
    out = np.empty((n, x.shape[1]))
    for c in range(x.shape[1]):
        out[:, c] = x[: n * frame_len, c].reshape(n, frame_len).sum(axis=1)
    return out


def k_weighted_cross(x: np.ndarray | tuple[np.ndarray, ...], y: np.ndarray, sample_rate: int,
                     *, ready: Callable[[int], None] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`BlockStats.cross` of the K-weighted ``x`` and ``y``, a block at a time (the
    same values without full-length filtered copies). ``x`` may be a tuple of arrays of
    one shape: their sum ``x[0] + x[1] + ...`` is weighted, summed block by block.

    ``ready(rows)``, when given, is called before the rows of ``x`` up to ``rows`` are
    read: for parts still being rendered on another thread
    (:class:`vocalmix.core.parallel.Filling`), measured as they are finished."""
    from vocalmix.core.dsp import row_blocks
    from vocalmix.core.parallel import zip_on_two_threads

    parts = x if isinstance(x, tuple) else (x,)
    n = min(min(p.shape[0] for p in parts), y.shape[0])
    block = kw_block_len(sample_rate)

    def summed() -> Iterator[np.ndarray]:
        for i, blocks in enumerate(zip(*(row_blocks(p, block, n) for p in parts),
                                       strict=True)):
            if ready is not None:
                ready(min(n, (i + 1) * block))
            acc = blocks[0]
            for b in blocks[1:]:
                acc = acc + b
            yield acc

    rows = [BlockStats.cross(a, b, sample_rate) for a, b in zip_on_two_threads(
        _k_weight_stream(summed(), sample_rate, KW_DTYPE),
        _k_weight_stream(row_blocks(y, block, n), sample_rate, KW_DTYPE))]
    if not rows:
        z = np.zeros(0)
        return z, z, z
    vv, bb, vb = (np.concatenate([r[i] for r in rows]) for i in range(3))
    return vv, bb, vb


def segment_energies(y: np.ndarray, segment_len: int) -> np.ndarray:
    """``sum_c sum_{n in segment s} y_c[n]^2`` of a K-weighted ``y`` ``(n, channels)``
    for each whole segment of ``segment_len`` samples, float64."""
    n = y.shape[0] // segment_len
    if n == 0:  # shorter than one segment (reshape cannot infer the channels of nothing)
        return np.zeros(0)
    return np.einsum("ijk,ijk->i", *(2 * [y[: n * segment_len].reshape(n, segment_len, -1)]),
                     dtype=np.float64)


#: 100 ms segment energies by signal content (a few KB each)
_ENERGY_CACHE = LruCache(64)
#: frame energies of read-only signals (:func:`k_weighted_frame_energies`), by content and
#: frame length: a compressor input's 10 ms frames, 1.4 MB for 3 minutes of stereo
_FRAME_CACHE = LruCache(4)


def _energy_key(x: np.ndarray, sample_rate: int) -> tuple:
    """What the segment energies of ``x`` are remembered under (:func:`content_key`)."""
    return content_key(x, sample_rate, "k-weighted segment energies")


def _read_only(e: np.ndarray) -> np.ndarray:
    """``e``, made read-only."""
    e.flags.writeable = False
    return e


def _remember_energies(key: tuple, e: np.ndarray) -> np.ndarray:
    """Remember the segment energies ``e`` (made read-only) under ``key``; returns them."""
    _ENERGY_CACHE.put(key, _read_only(e))
    return e


@dataclass(frozen=True)
class BlockStats:
    """Per-100-ms sums of products of K-weighted signals (summed over channels).

    ``energy[s]`` is ``sum_c sum_{n in segment s} y_c[n]^2`` (channel weights 1.0,
    BS.1770-4 eq. (2)); a 400 ms gating block is 4 consecutive segments and a 3 s
    short-term window is 30. Statistics of ``a*X + b*Y`` follow from ``xx``, ``yy`` and
    ``xy`` (see :meth:`combine`).
    """

    energy: np.ndarray  # (n_segments,)
    segment_len: int
    sample_rate: int

    @staticmethod
    def of(x: np.ndarray, sample_rate: int, *, weighted: np.ndarray | None = None,
           remember: bool = True) -> BlockStats:
        """Segment energies of ``x`` (or of an already K-weighted ``weighted``).

        The energies of a signal are remembered by its content (:func:`_content_key`):
        the loudness, LRA, momentary range and features of one signal, asked for by
        several analyses, K-weight it once (:func:`vocalmix.core.dsp.content_key`).
        ``remember=False`` neither looks up nor stores them (a one-off excerpt: hashing
        it would cost a third of its K-weighting for nothing)."""
        seg = _segment_len(sample_rate)
        if weighted is not None:
            return BlockStats(energy=segment_energies(weighted, seg), segment_len=seg,
                              sample_rate=sample_rate)
        x = _as_2d(x)
        if not remember:
            return BlockStats(energy=k_weighted_energies(x, sample_rate),
                              segment_len=seg, sample_rate=sample_rate)
        key = _energy_key(x, sample_rate)
        e = _ENERGY_CACHE.get_or_make(key, lambda: _read_only(k_weighted_energies(
            x, sample_rate)))
        return BlockStats(energy=e, segment_len=seg, sample_rate=sample_rate)

    @staticmethod
    def of_energy(energy: np.ndarray, sample_rate: int) -> BlockStats:
        """The statistics of a signal whose 100 ms segment energies ``energy`` were
        measured already (e.g. by :func:`k_weighted_energies` while it was rendered)."""
        return BlockStats(energy=energy, segment_len=_segment_len(sample_rate),
                          sample_rate=sample_rate)

    @staticmethod
    def cross(
        yx: np.ndarray, yy: np.ndarray, sample_rate: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment sums of ``yx^2``, ``yy^2`` and ``yx*yy`` for K-weighted signals."""
        seg = _segment_len(sample_rate)
        n = min(yx.shape[0], yy.shape[0]) // seg
        if n == 0:  # a last block shorter than a segment (reshape cannot infer the
            z = np.zeros(0)  # channels of nothing): no whole segment in it
            return z, z, z

        a = yx[: n * seg].reshape(n, seg, -1)
        b = yy[: n * seg].reshape(n, seg, -1)

        def dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return np.einsum("ijk,ijk->i", u, v, dtype=np.float64)

        return dot(a, a), dot(b, b), dot(a, b)



class SegmentMeter:
    """The 100 ms K-weighted segment energies of a signal given a block at a time, for
    signals too long to hold whole: :func:`k_weighted_energies` of the whole signal (the
    same filter in float64, its state carried from block to block, its output in the
    same layout: the same values to the bit). Blocks may be of any length; :meth:`stats`
    gives the figures so far."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self.segment_len = _segment_len(self.sample_rate)
        self._sos = k_weighting_sos(self.sample_rate)
        self._zi: np.ndarray | None = None
        self._rest: np.ndarray | None = None  # K-weighted samples short of a segment
        self._parts: list[np.ndarray] = []

    def add(self, x: np.ndarray) -> None:
        """K-weight the next ``(n, channels)`` block (channels as the first block's)."""
        from vocalmix.core.dsp import flush_denormals, sosfilt_block

        xb = _as_2d(x)
        if xb.dtype != np.float32:  # (float32 goes to the filter as it is: cast exactly there)
            xb = np.asarray(xb, dtype=KW_DTYPE)
        if self._zi is None:
            self._zi = np.zeros((self._sos.shape[0], 2, xb.shape[1]), KW_DTYPE)
        with flush_denormals():  # (two channels run as one complex signal: sosfilt_pair)
            y, self._zi = sosfilt_block(self._sos, xb, self._zi)
        if self._rest is not None and self._rest.shape[0]:
            y = np.concatenate([self._rest, y])
        k = y.shape[0] // self.segment_len * self.segment_len
        if k:
            self._parts.append(segment_energies(y[:k], self.segment_len))
        self._rest = y[k:].copy()

    def stats(self) -> BlockStats:
        """The segment energies of every whole segment so far."""
        e = np.concatenate(self._parts) if self._parts else np.zeros(0)
        return BlockStats(energy=e, segment_len=self.segment_len, sample_rate=self.sample_rate)

def _windows(energy: np.ndarray, n_seg: int) -> np.ndarray:
    """Sums of ``n_seg`` consecutive segment energies, hop one segment."""
    if energy.shape[-1] < n_seg:
        return energy[..., :0]
    c = np.cumsum(np.concatenate([np.zeros(energy.shape[:-1] + (1,)), energy], axis=-1), axis=-1)
    return c[..., n_seg:] - c[..., :-n_seg]


def gated_sums(z: np.ndarray, lj: np.ndarray, gate_lufs: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the 400 ms block mean squares ``z`` ``(rows, blocks)`` whose loudness
    ``lj`` (LUFS, same shape) is above each row's gate ``gate_lufs`` ``(rows,)``, and
    how many there are: the numerator and denominator of BS.1770-4 eqs. (5)-(7), which a
    caller may also add up over successive runs of blocks."""
    gate = lj > gate_lufs[:, None]
    return np.where(gate, z, 0.0).sum(axis=1), gate.sum(axis=1)


def relative_gate(gated_sum: np.ndarray, count: np.ndarray,
                  absolute: np.ndarray | float = ABS_GATE_LUFS) -> np.ndarray:
    """The gate (LUFS) of BS.1770-4's second pass: the relative gate, eq. (6), from the
    sums and counts over the absolutely gated blocks, and the absolute gate ``absolute``
    (-70 LUFS; per row) with it (a block must pass both)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma_r = (LOUDNESS_OFFSET_DB + 10.0 * np.log10(gated_sum / np.maximum(count, 1))
                   + REL_GATE_INTEGRATED_LU)  # eq. (6)
    return np.maximum(gamma_r, absolute)


def gated_loudness(gated_sum: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Integrated loudness (LUFS), eq. (7), from the second pass's sums and counts;
    -inf where no block passed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0,
                        LOUDNESS_OFFSET_DB + 10.0 * np.log10(gated_sum / np.maximum(count, 1)),
                        -np.inf)  # eq. (7)


def _block_loudness(e: np.ndarray, segment_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(z, l)`` of the 400 ms gating blocks (hop 100 ms) of 2-D segment energies ``e``
    ``(rows, n_segments)``: each block's mean square and its loudness, LUFS."""
    z = _windows(e, 4) / (4 * segment_len)  # eq. (1): mean square over a 400 ms block
    with np.errstate(divide="ignore"):
        lj = LOUDNESS_OFFSET_DB + 10.0 * np.log10(z)  # eq. (4): block loudness
    return z, lj


def level_free_gate(top_lufs: np.ndarray | float) -> np.ndarray:
    """The absolute gate (LUFS) of the level-free figures for a signal whose loudest
    400 ms block or short-term value is ``top_lufs`` (vectorised): -70 LUFS, lowered by
    as much as ``top_lufs`` lies under :data:`LEVEL_FREE_TOP_LUFS` (``-70 + min(0, top
    + 20)``), so that a quiet recording is gated as the same recording made louder; -70
    LUFS for a signal with no sound (``top_lufs`` = ``-inf``)."""
    top = np.asarray(top_lufs, dtype=np.float64)
    return ABS_GATE_LUFS + np.where(np.isfinite(top),
                                    np.minimum(top - LEVEL_FREE_TOP_LUFS, 0.0), 0.0)


def integrated_from_segments(energy: np.ndarray, segment_len: int, *,
                             level_free: bool = False) -> np.ndarray | float:
    """BS.1770-4 integrated loudness (LUFS) from 100 ms segment energies.

    ``energy`` may be ``(n_segments,)`` or ``(n_candidates, n_segments)``; the gating is
    vectorised over candidates. ``level_free``: the absolute gate of a row whose loudest
    block lies under :data:`LEVEL_FREE_TOP_LUFS` is lowered by as much (see
    :func:`lra_from_short_term`): the loudness of a quiet recording is then that of the
    same recording made louder, less the gain (not BS.1770-4's figure for it).
    """
    e = np.atleast_2d(energy)
    z, lj = _block_loudness(e, segment_len)
    rows = e.shape[0]
    gate_abs = (level_free_gate(lj.max(axis=1)) if level_free and lj.shape[1]
                else np.full(rows, ABS_GATE_LUFS))
    s_abs, n_abs = gated_sums(z, lj, gate_abs)  # eq. (5): absolute gate
    s, n = gated_sums(z, lj, relative_gate(s_abs, n_abs, gate_abs))
    out = gated_loudness(s, n)
    return out if np.ndim(energy) == 2 else float(out[0])


def audible_blocks(energy: np.ndarray, segment_len: int) -> np.ndarray:
    """Which 400 ms blocks (hop 100 ms) of a signal lie above BS.1770-4's absolute gate
    of -70 LUFS (eq. (5)'s threshold on the block loudness of eq. (4)): where it plays.

    ``energy``: 100 ms segment energies ``(n_segments,)`` or ``(rows, n_segments)``;
    returns booleans ``(n_blocks,)`` or ``(rows, n_blocks)``, ``n_blocks = n_segments - 3``.
    """
    out = _block_loudness(np.atleast_2d(energy), segment_len)[1] > ABS_GATE_LUFS  # eq. (5)
    return out if np.ndim(energy) == 2 else out[0]


def gated_blocks(energy: np.ndarray, segment_len: int) -> np.ndarray:
    """Which 400 ms blocks (hop 100 ms) pass BS.1770-4's absolute (-70 LUFS) and relative
    (-10 LU) gates: the blocks integrated loudness averages.

    ``energy``: 100 ms segment energies ``(n_segments,)`` or ``(rows, n_segments)``.
    Returns a boolean array ``(n_blocks,)`` or ``(rows, n_blocks)``, ``n_blocks =
    n_segments - 3``.
    """
    z, lj = _block_loudness(np.atleast_2d(energy), segment_len)
    gate_abs = lj > ABS_GATE_LUFS
    n_abs = gate_abs.sum(axis=1)
    mean_abs = np.where(gate_abs, z, 0.0).sum(axis=1) / np.maximum(n_abs, 1)
    with np.errstate(divide="ignore"):
        gamma_r = LOUDNESS_OFFSET_DB + 10.0 * np.log10(mean_abs) + REL_GATE_INTEGRATED_LU
    gate = gate_abs & (lj > gamma_r[:, None])
    return gate if np.ndim(energy) == 2 else gate[0]


def singing_ratio_from_segments(vocal_energy: np.ndarray, mix_energy: np.ndarray,
                                segment_len: int, backing_energy: np.ndarray | None = None
                                ) -> np.ndarray | float:
    """Vocal-to-mix ratio *while the vocal sings*, LU, from 100 ms segment energies.

    The blocks where the vocal sings are the 400 ms blocks that pass the vocal's own
    BS.1770-4 gates (:func:`gated_blocks`): the blocks its integrated loudness averages.
    The ratio is the vocal's mean block power over those blocks (its integrated
    loudness) against the mix's mean block power over the *same* blocks, ungated:
    ``10 log10(mean_S z_vocal / mean_S z_mix)``. For a vocal that sings throughout it
    equals the integrated ratio up to the mix's own gating; for one that sings part of
    the time it is the balance a listener hears while it sings, whatever the backing
    does in the instrumental passages. ``-inf`` when the vocal is silent (or, given
    ``backing_energy``, never sings over the backing).

    ``backing_energy`` (the backing's segment energies, ``(n_segments,)``): the blocks
    also need the backing to play, its block loudness above the absolute gate of -70
    LUFS (eq. (5)'s threshold), so that the ratio is the balance where both play. Where
    the backing has ended (a backing shorter than the vocal, padded with silence) or
    falls to digital silence, the mix is the vocal alone: counting those blocks would
    pull the ratio towards 0 LU and a resolver aiming at it would bury the vocal under
    the part of the backing that plays.

    ``vocal_energy`` and ``mix_energy`` ``(n_segments,)`` or ``(rows, n_segments)``
    (vectorised over rows, e.g. candidate vocal gains).
    """
    ev, em = np.atleast_2d(vocal_energy), np.atleast_2d(mix_energy)
    s = gated_blocks(ev, segment_len)
    if backing_energy is not None:
        s = s & audible_blocks(np.atleast_2d(backing_energy), segment_len)
    zv = _windows(ev, 4)
    zm = _windows(em, 4)
    n = s.sum(axis=1)
    num = np.where(s, zv, 0.0).sum(axis=1)
    den = np.where(s, zm, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((n > 0) & (den > 0), 10.0 * np.log10(num / den), -np.inf)
    return out if np.ndim(vocal_energy) == 2 else float(out[0])


def vocal_to_mix_lu(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                    measure: str = "integrated") -> float:
    """Vocal-to-mix ratio of ``vocal`` in ``vocal + backing``, LU, by ``measure``:
    ``integrated`` (BS.1770-4 integrated loudness of the vocal minus that of the mix) or
    ``singing`` (:func:`singing_ratio_from_segments`). Numpy implementation on 100 ms
    segment energies (equal to libebur128 within 0.01 LU; tests check it)."""
    from vocalmix.core.params import V2M_MEASURES

    if measure not in V2M_MEASURES:
        raise ValueError(f"unknown vocal-to-mix measure {measure!r}: use one of "
                         f"{', '.join(V2M_MEASURES)}")
    sv = BlockStats.of(vocal, sample_rate)
    sm = BlockStats.of(vocal + backing, sample_rate)
    if measure == "singing":
        sb = BlockStats.of(backing, sample_rate)
        return float(singing_ratio_from_segments(sv.energy, sm.energy, sv.segment_len,
                                                 sb.energy))
    iv = integrated_from_segments(sv.energy, sv.segment_len)
    im = integrated_from_segments(sm.energy, sm.segment_len)
    return float(iv - im) if np.isfinite(iv) and np.isfinite(im) else -np.inf


def short_term_from_segments(energy: np.ndarray, segment_len: int) -> np.ndarray:
    """Short-term loudness (3 s windows, 10 Hz), LUFS, from 100 ms segment energies."""
    e = np.atleast_2d(energy)
    z = _windows(e, 30) / (30 * segment_len)
    with np.errstate(divide="ignore"):
        st = LOUDNESS_OFFSET_DB + 10.0 * np.log10(z)
    return st if np.ndim(energy) == 2 else st[0]


def lra_from_short_term(st: np.ndarray, *, level_free: bool = False) -> np.ndarray | float:
    """Loudness range (LU) per EBU Tech 3342 from short-term loudness values (LUFS).

    Absolute gate -70 LUFS, relative gate -20 LU below the power mean of the absolutely
    gated values, LRA = 95th minus 10th percentile of what remains. Vectorised over rows.

    ``level_free``: the absolute gate of a row whose loudest value lies under
    :data:`LEVEL_FREE_TOP_LUFS` is lowered by as much (``-70 + min(0, top - (-20))``
    LUFS), so that the range of a quiet recording is that of the same recording made
    louder: the -70 LUFS gate is there to leave out silence, and a take recorded 45 dB
    too quietly (its loudest block near -60 LUFS) had the lower half of its singing cut
    off by it. Rows whose loudest value is -20 LUFS or more are gated as the standard
    says, to the bit. (Not EBU Tech 3342's LRA: :func:`loudness_range` is that.)
    """
    s = np.atleast_2d(st)
    out = np.zeros(s.shape[0])
    for r in range(s.shape[0]):  # rows are few (candidates); each row is vectorised
        gate = (float(level_free_gate(np.max(s[r], initial=-np.inf))) if level_free
                else ABS_GATE_LUFS)
        v = s[r][s[r] > gate]
        if v.size == 0:
            continue
        power_mean = 10.0 * np.log10(np.mean(10.0 ** (v / 10.0)))
        v = v[v > power_mean + REL_GATE_LRA_LU]
        if v.size == 0:
            continue
        lo, hi = np.percentile(v, [LRA_LOW_PCT, LRA_HIGH_PCT])
        out[r] = hi - lo
    return out if np.ndim(st) == 2 else float(out[0])


def short_term_loudness(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Short-term loudness (3 s windows) every 100 ms, LUFS (EBU Tech 3341/3342)."""
    stats = BlockStats.of(x, sample_rate)
    return short_term_from_segments(stats.energy, stats.segment_len)


def level_free_loudness_range(x: np.ndarray, sample_rate: int) -> float:
    """:func:`loudness_range` (LU) with the absolute gate of a quiet signal placed under
    its own loudest short-term value (``lra_from_short_term(..., level_free=True)``):
    EBU Tech 3342's figure for any signal whose loudest 3 s reaches -20 LUFS, and for a
    quieter one the figure of the same signal made louder. The LRA a vocal will have in
    the mix, read before its gain (the compressor's input and output)."""
    stats = BlockStats.of(x, sample_rate)
    return float(lra_from_short_term(short_term_from_segments(stats.energy,
                                                              stats.segment_len),
                                     level_free=True))


def fast_loudness_range(x: np.ndarray, sample_rate: int) -> float:
    """Loudness range (LU) by the numpy implementation, short-term loudness at 10 Hz."""
    return float(lra_from_short_term(short_term_loudness(x, sample_rate)))


def _momentary_mean_squares(energy: np.ndarray, segment_len: int) -> np.ndarray:
    """Mean squares per sample of the 400 ms windows (every 100 ms) of 100 ms segment
    energies, ``(rows, windows)``."""
    return _windows(np.atleast_2d(energy), 4) / (4 * segment_len)


def _momentary_loudness(z: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """LUFS of the window mean squares ``z`` (:func:`_momentary_mean_squares` of
    ``energy``), shaped as ``energy``'s rows."""
    with np.errstate(divide="ignore"):
        m = LOUDNESS_OFFSET_DB + 10.0 * np.log10(z)
    return m if np.ndim(energy) == 2 else m[0]


def momentary_from_segments(energy: np.ndarray, segment_len: int) -> np.ndarray:
    """Momentary loudness (400 ms windows, 10 Hz), LUFS, from 100 ms segment energies."""
    return _momentary_loudness(_momentary_mean_squares(energy, segment_len), energy)


#: a recording's steady floor (room tone, hiss, hum between a take's phrases) for
#: :func:`floor_energy`: its quietest 100 ms segments (:data:`FLOOR_SHARE` of them, and
#: :data:`FLOOR_MIN_SEGMENTS` at least, so 2 s of floor in a short take), from the
#: :data:`FLOOR_LOW_PCT`th percentile of all segments up, lie within
#: :data:`FLOOR_SPREAD_DB` of each other (steady noise varies by a few tenths of a dB
#: from one 100 ms segment to the next; the quietest part of a voice, or of a mixed
#: stem's bleed and reverb tails, spreads over several dB), and their mean lies
#: :data:`FLOOR_UNDER_TOP_LU` or more under the loudest 400 ms block (steady noise with
#: nothing over it is not a floor under anything)
FLOOR_SHARE = 0.1
FLOOR_MIN_SEGMENTS = 20
FLOOR_LOW_PCT = 1.0
FLOOR_SPREAD_DB = 2.0
FLOOR_UNDER_TOP_LU = 15.0
#: a 400 ms block within this (dB) of the floor's energy is the floor alone: silence
FLOOR_SILENT_DB = 3.0


def floor_energy(energy: np.ndarray) -> np.ndarray | float:
    """The mean energy of a recording's steady floor per 100 ms segment (the units of
    ``energy``, :attr:`BlockStats.energy`), or 0 when it has none; vectorised over the
    rows of a 2-D ``energy``.

    A floor is found when the quietest tenth of the segments (:data:`FLOOR_SHARE`, 20 at
    least, and no more than half of them) is steady (see :data:`FLOOR_SPREAD_DB`); it is
    then the mean of those segments. Digital silence (a mixed stem's pauses) is no
    floor: its energies are 0."""
    e = np.atleast_2d(np.asarray(energy, dtype=np.float64))
    out = np.zeros(e.shape[0])
    n = e.shape[1]
    k = max(int(math.ceil(FLOOR_SHARE * n)), FLOOR_MIN_SEGMENTS)
    if 2 * k <= n:
        q = np.sort(e, axis=1)[:, :k]  # the quietest k segments of each row
        lo = q[:, int(FLOOR_LOW_PCT / 100.0 * n)]
        steady = (lo > 0) & (q[:, -1] <= lo * 10.0 ** (FLOOR_SPREAD_DB / 10.0))
        out = np.where(steady, q.mean(axis=1), 0.0)
    return out if np.ndim(energy) == 2 else float(out[0])


def above_floor(z: np.ndarray, energy: np.ndarray, segment_len: int) -> np.ndarray:
    """The 400 ms block mean squares ``z`` (per sample, ``(blocks,)`` or ``(rows,
    blocks)``) of a signal whose 100 ms segment energies are ``energy`` (same rows), with
    its steady floor (:func:`floor_energy`) taken out: minus the floor's mean square, and
    0 (silence) within :data:`FLOOR_SILENT_DB` of it. A row without a floor, or whose
    floor lies less than :data:`FLOOR_UNDER_TOP_LU` under its loudest block, is returned
    as it is (the same array when no row has one)."""
    f = np.atleast_1d(floor_energy(energy)) / segment_len  # mean square per sample
    z2 = np.atleast_2d(z)
    if not np.any(f > 0) or z2.shape[1] == 0:
        return z
    use = floor_under(f, z2.max(axis=1))
    if not use.any():
        return z
    out = np.where(use[:, None], minus_floor(z2, f[:, None]), z2)
    return out if np.ndim(z) == 2 else out[0]


def floor_under(floor: np.ndarray | float, top: np.ndarray | float) -> np.ndarray:
    """Whether a steady floor's power ``floor`` (:func:`floor_energy`, 0 for none) is a
    floor under a signal whose loudest power is ``top`` (the same units, broadcast): it
    is not 0 and lies :data:`FLOOR_UNDER_TOP_LU` or more under it."""
    f = np.asarray(floor)
    return (f > 0) & (np.asarray(top) >= f * 10.0 ** (FLOOR_UNDER_TOP_LU / 10.0))


def minus_floor(power: np.ndarray, floor: np.ndarray | float) -> np.ndarray:
    """``power`` (mean squares, any units) with a steady floor's mean ``floor`` (the same
    units, broadcast) taken out: ``power - floor``, and 0 (silence) where ``power`` lies
    within :data:`FLOOR_SILENT_DB` of the floor. The sum of a voice and an independent
    noise carries the sum of their powers, so the difference is the voice's own."""
    return np.where(power > floor * 10.0 ** (FLOOR_SILENT_DB / 10.0), power - floor, 0.0)


def momentary_above_floor(energy: np.ndarray, segment_len: int) -> np.ndarray:
    """Momentary loudness (400 ms windows, 10 Hz), LUFS, of what lies above a recording's
    steady floor: :func:`momentary_from_segments` with the floor's energy
    (:func:`floor_energy`) taken out of every block, and a block within
    :data:`FLOOR_SILENT_DB` of the floor read as silence (``-inf``) (:func:`above_floor`).
    The sum of a voice and an independent noise carries the sum of their energies, so the
    difference is the voice's own. Without a floor (digital silence between phrases, no
    steady part, or a floor less than :data:`FLOOR_UNDER_TOP_LU` under the loudest block)
    this is :func:`momentary_from_segments` itself, to the bit."""
    z = _momentary_mean_squares(energy, segment_len)
    return _momentary_loudness(above_floor(z, np.atleast_2d(energy), segment_len), energy)


def momentary_loudness_range(x: np.ndarray, sample_rate: int) -> float:
    """Momentary loudness range, LU: EBU Tech 3342's loudness range computed on the 400 ms
    momentary loudness (every 100 ms) instead of the 3 s short-term loudness, above the
    recording's steady floor (:func:`momentary_above_floor`).

    Same gates and percentiles as LRA (:func:`lra_from_short_term`: absolute -70 LUFS,
    relative -20 LU below the power mean of what passes, 95th minus 10th percentile; the
    absolute gate placed level-free, so that a take recorded far too quietly reads the
    range it sings with, :func:`momentary_range_from_values`), so
    it is the spread of the vocal's loudness *while it sings* at the scale of syllables
    and notes. A 7 s excerpt holds about 66 momentary values (about 17 independent ones)
    but only 41 heavily overlapping short-term values (two independent ones), which is
    why vocalmix's dynamics model predicts this statistic and not LRA.

    The floor is taken out because a take's room tone is not its singing: with the
    relative gate 20 LU under the power mean, room tone 25 LU under a take's loudest
    block passes it through the take's pauses and becomes the range's low end (a mixed
    stem, whose pauses are digital silence, has none). Measured on 40 mixed vocal stems
    with 3 s of lead-in, pink noise added 25 LU under the loudest block moved the range by
    +0.9 LU at the median and 16 LU at the 90th percentile (20 LU under: +12 LU at the
    median); above the floor, by 0.03 LU (25 LU under) and 0.5 LU (20 LU under) at the
    90th percentile. LRA (:func:`loudness_range`) is EBU Tech 3342's as the standard
    defines it, floor and all.
    """
    stats = BlockStats.of(x, sample_rate)
    return float(momentary_range_from_segments(stats.energy, stats.segment_len))


def momentary_range_from_segments(energy: np.ndarray, segment_len: int
                                  ) -> np.ndarray | float:
    """:func:`momentary_loudness_range` (LU) of a signal whose 100 ms segment energies
    are ``energy`` (vectorised over rows)."""
    return momentary_range_from_values(momentary_above_floor(energy, segment_len))


def momentary_range_from_values(momentary: np.ndarray) -> np.ndarray | float:
    """The momentary loudness range (LU) of momentary loudness values (LUFS, 400 ms
    blocks every 100 ms; rows vectorised): EBU Tech 3342's recipe with the absolute gate
    of a quiet recording placed under its own loudest block
    (:func:`lra_from_short_term` with ``level_free``), so that the range, and the
    dynamics target and compression read from it, do not depend on the level the take
    was recorded at."""
    return lra_from_short_term(momentary, level_free=True)


def fast_integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS) by the numpy implementation: :func:`integrated_loudness`
    itself, kept under this name beside :func:`fast_loudness_range`."""
    return integrated_loudness(x, sample_rate)


__all__ = [
    "LEVEL_FREE_TOP_LUFS",
    "BlockStats",
    "Measurement",
    "above_floor",
    "fast_integrated_loudness",
    "fast_loudness_range",
    "floor_energy",
    "floor_under",
    "frame_sums",
    "gated_blocks",
    "integrated_from_segments",
    "integrated_loudness",
    "integrated_loudness_of",
    "k_weight",
    "k_weighted_energies_of_blocks",
    "k_weighted_frame_energies",
    "k_weighting_sos",
    "kw_block_len",
    "level_free_gate",
    "level_free_loudness",
    "level_free_loudness_range",
    "libebur128_integrated_loudness",
    "libebur128_loudness_range",
    "loudness_and_range",
    "loudness_range",
    "loudness_ratio_lu",
    "lra_from_short_term",
    "measure",
    "minus_floor",
    "momentary_above_floor",
    "momentary_from_segments",
    "momentary_loudness_range",
    "momentary_range_from_segments",
    "momentary_range_from_values",
    "peak_abs",
    "remember_segment_energies",
    "short_term_from_segments",
    "short_term_loudness",
    "singing_ratio_from_segments",
    "true_peak_dbtp",
    "true_peak_filter",
    "true_peak_gain_bound",
    "true_peak_phases",
    "inter_sample_matrix",
    "true_peak_matrix",
    "upper_quantile",
    "vocal_to_mix_lu",
]
