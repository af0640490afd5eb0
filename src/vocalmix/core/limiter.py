"""The master's true-peak limiter: one causal design, run offline and block by block.

The limiter keeps the 4x-oversampled true peak of the mix (BS.1770-4 Annex 2, the
interpolator of :func:`vocalmix.core.measure.true_peak_dbtp`) at or below
``Master.ceiling_dbtp`` and is bit-transparent wherever it does not need to act. Every
step is causal with a fixed look-ahead, so a streaming implementation
(:class:`StreamingLimiter`, used by :mod:`vocalmix.core.stream`) and a vectorised one over
a whole signal (:func:`limit`, used by :func:`vocalmix.core.render.master_stage`) compute
the same gain: the offline render is the live output advanced by
:func:`latency_samples`. (An earlier master added a static trim after measuring the whole
output's true peak; no streaming limiter can do that, so the offline one no longer does.)

For a signal ``x`` (samples, channels), with ``L`` = the look-ahead in samples
(``Master.lookahead_ms``, at least :data:`DETECTOR_LOOKAHEAD` + 1), ``A = L - 19`` the
attack length and ``H`` the hold (``Master.release_ms``):

1. **True-peak detector.** The four phases of the interpolator are causal 21-tap FIRs;
   phase ``p`` at sample ``m`` is the signal at time ``m - 10 + p/4``. ``tpv[t]`` is the
   largest magnitude over channels of the four interpolated values in ``[t, t + 1)``
   (phase 0 is ``x[t]`` itself, times 1.0006): it needs ``x`` up to ``t + 10``.
2. **Needed gain.** ``q[t] = 1`` if ``tpv[t] <= ceiling`` (transparent), else
   ``aim / tpv[t]`` with ``aim`` :data:`MARGIN_DB` under the ceiling: once the limiter
   acts it leaves room for the small overshoot a gain that changes under the
   interpolator's taps can cause.
3. **Spread: interpolator support, hold and look-ahead.** ``spread[n] = min(q[n - H - 10
   .. n + A + 9])``. An inter-sample value depends on the 21 samples around it, so all of
   them are turned down with it (the ``+- 10``); the gain then holds for ``H`` samples
   after a peak and is down ``A`` samples before it.
4. **Attack ramp.** ``gain[n] = mean(spread[n - A + 1 .. n])``. Every term of the mean
   covers the samples within 10 of ``n``, so ``gain[n]`` is at most the ``q`` of every
   true peak whose interpolation reads ``x[n]``: the ramp starts ``A`` samples before a
   peak and reaches its full depth on it; the gain recovers linearly over ``A`` samples
   once the hold has passed.
5. ``y[n] = x[n] * gain[n]``; ``gain`` is exactly 1.0 where no ``q`` below 1 lies in
   reach, so those samples pass unchanged.

``gain[n]`` depends on ``x`` up to ``n + A + 19 = n + L``: a streaming limiter outputs
``y[n]`` when ``x[n + L]`` arrives, a latency of ``L`` samples (240 at 48 kHz with the
default 5 ms). Before the start and after the end the signal is taken as silence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vocalmix.core.params import Master

T = TypeVar("T")

#: interpolator taps per phase, and the delay (samples) of its phase 0
TP_TAPS = 21
TP_DELAY = 10
#: samples either side of an inter-sample peak whose gain is turned down with it
TP_SUPPORT = 10
#: samples of look-ahead the detector uses before the attack ramp can begin
DETECTOR_LOOKAHEAD = TP_DELAY + TP_SUPPORT
#: how far under the ceiling the limiter aims once it acts, dB
MARGIN_DB = 0.5
#: blocks up to this size interpolate with one matrix product, larger ones per phase
MATMUL_MAX = 1024
#: larger blocks are gated in sub-blocks of this many samples: the interpolator runs only
#: over those loud enough to reach the ceiling
GATE_BLOCK = 512
#: loud samples of a block from which the offline run shares the interpolation with a
#: second thread
SPLIT_MIN = 8 * GATE_BLOCK
#: samples per row of the screen's matrix product (see :meth:`StreamingLimiter._screen`)
SCREEN_BLOCK = 32
#: the screen's margin under the ceiling, relative to the interpolator's bound on a
#: sub-block (its largest absolute tap sum times its sample peak): float32 sums of
#: ``SCREEN_BLOCK + TP_TAPS - 1`` products, after one rounding of each sample and tap,
#: err by at most about 54 x 2^-24 = 3.2e-6 of that bound; this is 30 times more
SCREEN_TOL = 1e-4


def latency_samples(master: Master, sample_rate: int) -> int:
    """The limiter's look-ahead ``L`` in samples: ``lookahead_ms`` rounded, at least
    ``DETECTOR_LOOKAHEAD + 1`` (the detector alone needs 20 samples)."""
    return max(DETECTOR_LOOKAHEAD + 1, int(round(master.lookahead_ms * 1e-3 * sample_rate)))


def _hold_samples(master: Master, sample_rate: int) -> int:
    return max(1, int(round(master.release_ms * 1e-3 * sample_rate)))


def _levels(master: Master) -> tuple[float, float]:
    """(ceiling, aim) as linear amplitudes."""
    return 10.0 ** (master.ceiling_dbtp / 20.0), 10.0 ** ((master.ceiling_dbtp - MARGIN_DB) / 20.0)


# --- streaming: block by block ---------------------------------------------------------


class StreamingLimiter:
    """The limiter of :func:`limit`, block by block, with a latency of
    :attr:`latency_samples` (``L``): the output of a block is the input of ``L`` samples
    earlier times its gain. Blocks are ``(channels, n)`` float32 with ``n <=
    max_block``; nothing is allocated per block apart from numpy's small scalars.
    """

    #: whether large blocks' loud sub-blocks are screened in float32 before the exact
    #: interpolator runs (:meth:`_screen`); the output is the same either way
    screen: bool = True

    def __init__(self, master: Master, sample_rate: int, max_block: int, channels: int = 2
                 ) -> None:
        from vocalmix.core.measure import (
            inter_sample_matrix,
            true_peak_gain_bound,
            true_peak_phases,
        )
        from vocalmix.core.streambuf import History, MovingMean, TrailingMin

        self.ceiling, self.aim = _levels(master)
        self.latency_samples = lat = latency_samples(master, sample_rate)
        att = lat - DETECTOR_LOOKAHEAD + 1
        hold = _hold_samples(master, sample_rate)
        nb = self.max_block = max_block
        self.channels = channels
        self._taps = np.ascontiguousarray(true_peak_phases()[:, ::-1])  # (4, taps)
        # one history serves the interpolator (its last 20 samples) and the delay (all)
        self._x = History(lat, nb, (channels,), np.float64)
        self._z = np.zeros((4 * channels, nb))
        self._conv = np.zeros((channels, TP_TAPS - 1 + nb))
        self._q = np.zeros(nb)
        self._mask = np.zeros(nb, dtype=bool)
        self._min = TrailingMin(hold + att + 2 * TP_SUPPORT, 1.0, max_block=nb)
        self._spread = np.zeros(nb)
        self._mean = MovingMean(att, nb, 1.0)
        self.gain = np.zeros(nb)  #: the gain of the last block's output samples
        # needed gains of exactly 1 pushed last in a row: once they fill the spread's and
        # the ramp's windows, the gain is exactly 1 until a needed gain under 1 arrives
        self._ones = 0
        self._settled = self._min.width + self._mean.width
        # the largest sum of a phase's absolute taps: no interpolated value exceeds the
        # sample peak times this, so below this sample peak none can reach the ceiling
        # (with a margin for the product's rounding)
        self._l1 = true_peak_gain_bound()
        self._quiet_peak = self.ceiling / (self._l1 * (1.0 + 1e-9))
        # the sub-block gate of blocks over MATMUL_MAX: the sample peak over channels, the
        # peak of each sub-block, of the TP_TAPS - 1 samples after it, and whether loud
        self._peak = np.zeros(TP_TAPS - 1 + nb)
        k = -(-nb // GATE_BLOCK)
        self._starts = np.arange(0, k * GATE_BLOCK, GATE_BLOCK, dtype=np.intp)
        self._sub = np.zeros(k)
        self._head = np.zeros(k)
        self._heads = sliding_window_view(self._peak, TP_TAPS - 1)[GATE_BLOCK::GATE_BLOCK]
        self._loud = np.zeros(k, dtype=bool)
        # the screen's inputs (the block in float32, zeros after it up to a whole
        # sub-block and its look-ahead) and the true-peak meter's interpolation matrix: a
        # row of B + TP_TAPS - 1 samples gives the B detector values of its first B
        # samples, every phase
        self._read32 = np.zeros((channels, k * GATE_BLOCK + TP_TAPS - 1), np.float32)
        # phases 1-3 only: phase 0 is the sample itself times its centre tap (its other
        # taps are under 4e-17), bounded from the samples' peaks in float64 instead
        self._screen_mat = inter_sample_matrix(SCREEN_BLOCK)
        phase0 = np.abs(true_peak_phases()[0])
        self._centre_tap = float(phase0[TP_DELAY])
        self._outer_taps = float(phase0.sum() - phase0[TP_DELAY])
        self._screen_rows = np.arange(0, GATE_BLOCK, SCREEN_BLOCK, dtype=np.intp)
        #: a thread that takes half of a large block's interpolation (see :func:`_limit`),
        #: or ``None``
        self.helper: Executor | None = None
        self._scratch = [(self._conv, self._z, self._mask)]
        if nb > MATMUL_MAX:  # a second set for the helper
            self._scratch.append((np.zeros_like(self._conv), np.zeros_like(self._z),
                                  np.zeros_like(self._mask)))

    def process(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Limit a block ``x`` ``(channels, n)``; writes and returns ``out[:, :n]`` (float32),
        the limited input of ``latency_samples`` earlier."""
        n = x.shape[1]
        win = self._x.push(x)  # times m0 - L .. m0 + n - 1
        q = self._q[:n]
        # what the detector reads: the block and the TP_TAPS - 1 samples before it
        read = win[:, self.latency_samples - (TP_TAPS - 1) :]
        o = out[:, :n]
        if n > MATMUL_MAX:
            self._detect_large(read, q)  # gates sub-block by sub-block
            if self._ones >= self._settled and float(q.min()) >= 1.0:
                return self._pass(win, n, o)
        elif max(float(read.max()), -float(read.min())) <= self._quiet_peak:
            if self._ones >= self._settled:
                return self._pass(win, n, o)
            q.fill(1.0)  # what the detector below gives for a block this quiet
        else:
            z = self._z[:, :n]
            sw = self._x.sliding(TP_TAPS)  # (C, n, taps): the windows ending at each sample
            np.matmul(self._taps, sw.transpose(0, 2, 1), out=z.reshape(self.channels, 4, n))
            self._needed_gain(z, q)
        self._ones = self._ones + n if float(q.min(initial=1.0)) >= 1.0 else 0
        spread = self._min.push(q, self._spread)  # spread at m - L
        gain = self._mean.push(spread, self.gain)  # gain at m - L
        np.multiply(win[:, :n], gain, out=o, casting="same_kind")  # in float64, then rounded
        self._x.advance()
        return o

    def _pass(self, win: np.ndarray, n: int, o: np.ndarray) -> np.ndarray:
        """The output of a block whose needed gains are all 1 after a run of them long
        enough to fill the spread's and the ramp's windows: the gain is exactly 1 here,
        the output the delayed input; the windows take the block's ones."""
        self._min.push_constant(1.0, n)
        self._mean.push_constant(1.0, n)
        self.gain[:n] = 1.0
        np.copyto(o, win[:, :n], casting="same_kind")
        self._x.advance()
        return o

    def _detect_large(self, read: np.ndarray, q: np.ndarray) -> None:
        """The needed gain ``q`` (steps 1-2 of the module doc) of a block of more than
        :data:`MATMUL_MAX` samples (the offline run), from ``read``, the block and the
        ``TP_TAPS - 1`` samples before it ``(C, n + TP_TAPS - 1)``.

        The block is gated in sub-blocks of :data:`GATE_BLOCK` samples: a sub-block whose
        detector windows (the sub-block and the ``TP_TAPS - 1`` samples before it) have a
        sample peak of at most ``_quiet_peak`` has ``q`` exactly 1.0, and so has one that
        the float32 screen (:meth:`_screen`) finds certainly within the ceiling; the
        interpolator runs once per run of contiguous sub-blocks left loud, a C loop per
        phase. Its value at a
        sample reads only that sample's window, so a run gives the same values as the
        whole block would.
        """
        n = q.shape[0]
        h = TP_TAPS - 1
        k = -(-n // GATE_BLOCK)  # sub-blocks, the last one possibly short
        peak = self._peak[: n + h]
        np.abs(read, out=self._conv[:, : n + h])
        np.maximum.reduce(self._conv[:, : n + h], axis=0, out=peak)  # over channels
        sub = self._sub[:k]
        np.maximum.reduceat(peak[:n], self._starts[:k], out=sub)  # read[s : s + GATE_BLOCK]
        head = self._head[:k]  # the TP_TAPS - 1 samples after each: the next one's history
        np.maximum.reduce(self._heads[: k - 1], axis=1, out=head[: k - 1])
        head[k - 1] = peak[n:].max()
        np.maximum(sub, head, out=sub)
        loud = self._loud[:k]
        np.less_equal(sub, self._quiet_peak, out=loud)
        np.logical_not(loud, out=loud)  # a NaN sample is loud, as the full detector sees it
        if self.screen:
            self._screen(read, n, sub, loud)
        q.fill(1.0)
        runs: list[tuple[int, int]] = []
        b = 0
        while b < k:
            if not loud[b]:
                b += 1
                continue
            e = b + 1
            while e < k and loud[e]:
                e += 1
            runs.append((b * GATE_BLOCK, min(e * GATE_BLOCK, n)))
            b = e

        def interpolate(part: list[tuple[int, int]], scratch: tuple[np.ndarray, ...]) -> None:
            for t0, t1 in part:
                self._interpolate_run(read[:, t0 : t1 + h], q[t0:t1], scratch)

        total = sum(t1 - t0 for t0, t1 in runs)
        if self.helper is None or total < SPLIT_MIN:
            interpolate(runs, self._scratch[0])
            return
        # the interpolator's loop lets go of the GIL: the helper thread takes the second
        # half of the loud samples (each value reads only its own window, so a run cut in
        # two gives the same values), this thread the first
        first: list[tuple[int, int]] = []
        second: list[tuple[int, int]] = []
        half = total // 2
        seen = 0
        for t0, t1 in runs:
            cut = min(max(t0 + half - seen, t0), t1)
            if cut > t0:
                first.append((t0, cut))
            if t1 > cut:
                second.append((cut, t1))
            seen += t1 - t0
        later = self.helper.submit(interpolate, second, self._scratch[1])
        try:
            interpolate(first, self._scratch[0])
        finally:
            later.result()

    def _screen(self, read: np.ndarray, n: int, sub: np.ndarray, loud: np.ndarray) -> None:
        """Clear ``loud`` for the sub-blocks whose every detector value is certainly
        within the ceiling: the exact interpolator would give them ``q`` = 1 everywhere.

        The sample-peak gate bounds a sub-block's interpolated values by its sample peak
        ``sub`` times the interpolator's largest absolute tap sum (2.24): a mastered mix
        has most of its sub-blocks over that bound and few true peaks over the ceiling.
        Here phases 1-3 of each loud sub-block are interpolated in float32 by one matrix
        product per :data:`SCREEN_BLOCK` samples (the true-peak meter's way, several
        times faster than the exact float64 filter), and phase 0, the sample itself
        times its centre tap, is bounded in float64 by the sub-block's own sample peak
        (plus its outer taps, under 4e-17, times ``sub``). A sub-block is kept loud
        unless its largest magnitude lies :data:`SCREEN_TOL` of its bound under the
        ceiling, far more than the float32 result can be off. A NaN or infinite value
        keeps it loud.

        Each sub-block's values are reduced as one row (16 of the matrix product's rows
        of 96 values: a reduction over rows that short took seven times as long)."""
        idx = np.flatnonzero(loud)
        if idx.size == 0:
            return
        h = TP_TAPS - 1
        f = self._read32
        f[:, : n + h] = read  # rounded to float32
        f[:, n + h :] = 0.0  # after a short block: values past its end only add rows
        starts = (idx[:, None] * GATE_BLOCK + self._screen_rows).ravel()
        zmax = np.zeros(idx.size, np.float32)
        for c in range(self.channels):
            w = sliding_window_view(f[c], SCREEN_BLOCK + h)[starts]  # (rows, B + h) copy
            z = (w @ self._screen_mat).reshape(idx.size, -1)  # a sub-block's values a row
            rows = np.maximum(z.max(axis=1), -z.min(axis=1))  # NaN stays NaN
            np.maximum(zmax, rows, out=zmax)
        # phase 0 at the sub-block's samples: their peak over channels, read TP_DELAY
        # samples into the detector's windows
        k = loud.shape[0]
        centre = np.maximum.reduceat(self._peak[TP_DELAY : n + TP_DELAY],
                                     self._starts[:k])[idx]
        bound = sub[idx]
        phase0 = self._centre_tap * centre + self._outer_taps * bound
        quiet = np.maximum(zmax, phase0) <= self.ceiling - SCREEN_TOL * self._l1 * bound
        loud[idx[quiet]] = False

    def _interpolate_run(self, w: np.ndarray, q: np.ndarray,
                         scratch: tuple[np.ndarray, ...]) -> None:
        """``q`` (length ``m``) of the samples whose windows are in ``w`` ``(C, m +
        TP_TAPS - 1)``: the detector's last samples and the ``TP_TAPS - 1`` before them.
        ``scratch``: the interpolator's and the mask's buffers, one set per thread."""
        from vocalmix.core.kernels import correlate1d

        conv, zbuf, maskbuf = scratch
        m = q.shape[0]
        cb = conv[:, : w.shape[1]]
        z = zbuf[:, :m]
        zz = z.reshape(self.channels, 4, m)
        for p in range(4):  # output i is z at window position i + 10: the first and last
            # 10 outputs, which read the zero padding of mode="constant", are not used
            correlate1d(w, self._taps[p], axis=1, output=cb, mode="constant")
            zz[:, p, :] = cb[:, TP_DELAY : TP_DELAY + m]
        self._needed_gain(z, q, maskbuf)

    def _needed_gain(self, z: np.ndarray, q: np.ndarray, maskbuf: np.ndarray | None = None
                     ) -> None:
        """``q`` from the interpolated values ``z`` ``(4 C, m)`` (overwritten): 1 where the
        largest magnitude is within the ceiling, else ``aim`` over it."""
        np.abs(z, out=z)
        np.maximum.reduce(z, axis=0, out=q)  # tpv in [t, t + 1), t 10 before the newest read
        mask = (self._mask if maskbuf is None else maskbuf)[: q.shape[0]]
        np.greater(q, self.ceiling, out=mask)
        np.divide(self.aim, q, out=q, where=mask)
        np.logical_not(mask, out=mask)
        np.copyto(q, 1.0, where=mask)


#: block size of the offline run (samples): large enough to be vectorised, small
#: enough to keep its buffers in a few MB
OFFLINE_BLOCK = 1 << 15


def limit(x: np.ndarray, sample_rate: int, master: Master) -> tuple[np.ndarray, np.ndarray | None]:
    """Run the limiter over a whole signal, time-aligned with it: :func:`limit_min_gain`
    that also returns the gain of every sample, float64 ``(n,)`` (``None`` when no sample
    needs a reduction)."""
    y, gain, _gmin, _read = _limit(x, sample_rate, master, keep_gain=True)
    return y, gain


def limit_min_gain(x: np.ndarray, sample_rate: int, master: Master, *,
                   in_place: bool = False) -> tuple[np.ndarray, float | None]:
    """:func:`limit` returning only the smallest gain applied (linear; ``None`` when no
    sample needs a reduction, ``x`` itself is then returned): the same output without a
    full-length gain array. ``in_place``: the output overwrites ``x`` (a writeable
    float32 ``(n, channels)`` array in C order the caller no longer needs): each output
    block lands where the input was already read, ``L`` samples behind it."""
    y, _gain, gmin, _read = _limit(x, sample_rate, master, keep_gain=False, in_place=in_place)
    return y, gmin


def limit_min_gain_reading(
    x: np.ndarray, sample_rate: int, master: Master,
    read: Callable[[np.ndarray, Callable[[int], None]], T], *, in_place: bool = False,
) -> tuple[np.ndarray, float | None, T | None]:
    """:func:`limit_min_gain`, with ``read(y, ready)`` run on this thread while a helper
    thread limits ``x`` into ``y``: ``read`` calls ``ready(rows)`` before it reads the
    rows of ``y`` up to ``rows``, so that it measures the output as it is made (the
    limiter runs on one core). Returns ``(output, min_gain, read's result)``; the result
    is ``None`` when the limiter had nothing to do at once (no sample could reach the
    ceiling: ``read`` is not called). When the gain stayed 1 the output is ``x`` itself,
    and ``read`` saw the same samples (the limiter is bit-transparent there)."""
    y, _gain, gmin, got = _limit(x, sample_rate, master, keep_gain=False, in_place=in_place,
                                 read=read)
    return y, gmin, got


def _limit(x: np.ndarray, sample_rate: int, master: Master, keep_gain: bool,
           in_place: bool = False,
           read: Callable[[np.ndarray, Callable[[int], None]], T] | None = None,
           ) -> tuple[np.ndarray, np.ndarray | None, float | None, T | None]:
    """Run the limiter over a whole signal, time-aligned with it (no latency).

    This is :class:`StreamingLimiter` itself, fed in blocks of :data:`OFFLINE_BLOCK`
    samples (each vectorised) and then ``L`` samples of silence, its output advanced by
    ``L``: offline and live are one implementation. Returns ``(y, gain, min_gain,
    read's result)`` with ``y`` float32 ``(n, channels)``, ``gain`` float64 ``(n,)``
    (``None`` unless ``keep_gain``) and its smallest value; when no sample needs a
    reduction, ``(x, None, None, ...)`` with ``x`` itself (bit-transparent). A signal
    whose sample peak times the interpolator's largest absolute tap sum stays under the
    ceiling cannot have a true peak over it and is returned at once. ``read``: see
    :func:`limit_min_gain_reading`.
    """
    from vocalmix.core.measure import peak_abs, true_peak_gain_bound
    from vocalmix.core.parallel import Filling

    x = np.asarray(x)
    n = x.shape[0]
    ceiling, _aim = _levels(master)
    if n == 0 or peak_abs(x) * true_peak_gain_bound() <= ceiling:
        return x, None, None, None
    c = x.shape[1]
    blk = min(OFFLINE_BLOCK, n + latency_samples(master, sample_rate))
    lim = StreamingLimiter(master, sample_rate, blk, c)
    own = (in_place and x.dtype == np.float32 and x.flags.c_contiguous
           and x.flags.writeable)
    y = x if own else np.empty((n, c), np.float32)
    gain = np.empty(n) if keep_gain else None
    gmin = [np.inf]
    got: T | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="vocalmix-limiter") as helper:
        if blk > MATMUL_MAX:
            lim.helper = helper
        if read is None:
            for _rows in _offline_rows(lim, x, y, gain, gmin):
                pass
        else:
            # the limiter on a helper thread, the reader here on the rows it has finished
            filling = Filling(y, lambda: _offline_rows(lim, x, y, gain, gmin))
            try:
                got = read(y, filling.wait)
                filling.result()
            except BaseException:
                filling.cancel()
                raise
    if gmin[0] >= 1.0:
        return x, None, None, got
    return y, gain, gmin[0], got


def _offline_rows(lim: StreamingLimiter, x: np.ndarray, y: np.ndarray,
                  gain: np.ndarray | None, gmin: list[float]) -> Iterator[int]:
    """:func:`_limit`'s run of ``lim`` over ``x`` into ``y`` (``x`` itself when in place)
    and ``gain``, the smallest gain kept in ``gmin[0]``; yields, after each block, how
    many rows of ``y`` are final (``len(y)`` last)."""
    n, c = x.shape
    blk = lim.max_block
    lat = lim.latency_samples
    out = np.zeros((c, blk), np.float32)
    silence = np.zeros((c, blk), np.float32)
    t = 0
    while t < n + lat:
        k = min(blk, n + lat - t)
        src = x[t : t + k].T if t < n else silence[:, :0]
        if src.shape[1] < k:
            src = np.concatenate([src, silence[:, : k - src.shape[1]]], axis=1)
        o = lim.process(src, out)
        a = t - lat  # the block's output is the input at times a .. a + k - 1
        lo, hi = max(a, 0), min(a + k, n)
        if hi > lo:
            y[lo:hi] = o[:, lo - a : hi - a].T
            g = lim.gain[lo - a : hi - a]
            gmin[0] = min(gmin[0], float(g.min()))
            if gain is not None:
                gain[lo:hi] = g
            yield hi
        t += k
