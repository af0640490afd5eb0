"""Zero-latency partitioned convolution, block by block, for the ``synthetic`` reverb.

The offline render convolves the whole send with the impulse response at once
(:func:`vocalmix.core.render.reverb_wet`); a live send has to produce each output block
as its input block arrives, with a work load that stays flat from block to block.
:class:`PartitionedConvolver` splits the impulse response ``h`` (taps ``0 .. N-1``)
into levels of growing partition size (non-uniform partitioning, after Gardner,
"Efficient convolution without input-output delay", JAES 43(3), 1995):

* taps before the first non-zero one (the pre-delay, folded into ``h``) cost nothing;
* a **head** of at most :data:`HEAD` taps, when the response starts within them, is a
  direct FIR over the block (no latency);
* **level 0** convolves partitions of ``Q0`` taps (``Q0`` <= the offset ``s0`` of its
  first tap) by overlap-save FFTs of ``2 Q0`` points with a frequency-domain delay line:
  the job for input block ``j`` (samples ``j Q .. (j+1) Q - 1``) can run as soon as the
  block is complete and its output starts at ``j Q + s0 >= (j+1) Q``: just in time;
* each **further level** has ``RATIO`` times larger partitions (at most :data:`Q_MAX`) and
  starts at an offset ``s >= 2 Q``, so its job for block ``j`` may take a whole block
  period ``Q`` to finish. Its work (per-channel FFTs, multiply-accumulates over chunks
  of partitions, inverse FFTs) is split into steps spread evenly over that period, so
  no audio block pays for a large FFT and a long delay line at once. With a pre-delay
  of at least ``2 HEAD`` taps, level 0 is chosen small enough (``2 Q0 <= s0``) to be
  spread the same way.

The FFTs are float64 (numpy's float32 FFT allocates a work array per call; the float64
one with ``out=`` allocates nothing) and the spectra and multiply-accumulates complex64
(half the memory traffic of the hot loop); the offline render's overlap-add
and this agree to about -120 dB of the send's level. Nothing is allocated per block:
every FFT and product writes into a preallocated array.
"""

from __future__ import annotations

import math

import numpy as np

#: longest direct-FIR head (taps), and the smallest partition
HEAD = 64
#: largest first partition when the response starts late (a long pre-delay)
FIRST_MAX = 1024
#: partition growth factor from one level to the next
RATIO = 8
#: largest partition (taps); its FFTs are 2 Q_MAX points, one channel per step
Q_MAX = 4096
#: complex multiply-accumulates per spread step (partitions x bins x channels)
MAC_STEP = 1 << 14
#: smallest partition whose spread jobs take one FFT per channel per step; below it both
#: channels share one FFT call each way (the call, not the arithmetic, is then the cost)
SPLIT_MIN = 1024
#: the cost of one channel's FFT of a spread level, in spread MAC steps (measured: an
#: 8192-point FFT takes about three times a 4097-bin x 2-channel multiply-accumulate)
FFT_WEIGHT = 3.0


class _Ring:
    """A ``(channels, size)`` ring indexed by absolute sample time."""

    def __init__(self, channels: int, size: int, dtype: type = np.float32) -> None:
        self.size = size
        self.buf: np.ndarray = np.zeros((channels, size), dtype=dtype)

    def _parts(self, t: int, n: int) -> list[tuple[int, int, int]]:
        """(ring start, ring end, offset in the block) pieces for times ``t .. t+n-1``."""
        i = t % self.size
        first = min(n, self.size - i)
        parts = [(i, i + first, 0)]
        if first < n:
            parts.append((0, n - first, first))
        return parts

    def write(self, t: int, x: np.ndarray) -> None:
        i = t % self.size
        if i + x.shape[1] <= self.size:  # the usual case: no wrap
            self.buf[:, i : i + x.shape[1]] = x
            return
        for a, b, o in self._parts(t, x.shape[1]):
            self.buf[:, a:b] = x[:, o : o + b - a]

    def read(self, t: int, out: np.ndarray) -> None:
        for a, b, o in self._parts(t, out.shape[1]):
            out[:, o : o + b - a] = self.buf[:, a:b]

    def add(self, t: int, x: np.ndarray) -> None:
        for a, b, o in self._parts(t, x.shape[1]):
            self.buf[:, a:b] += x[:, o : o + b - a]

    def take(self, t: int, out: np.ndarray) -> None:
        """Add times ``t ..`` into ``out`` and clear them."""
        for a, b, o in self._parts(t, out.shape[1]):
            out[:, o : o + b - a] += self.buf[:, a:b]
            self.buf[:, a:b] = 0.0

    def move(self, t: int, out: np.ndarray) -> None:
        """Copy times ``t ..`` into ``out`` and clear them."""
        for a, b, o in self._parts(t, out.shape[1]):
            out[:, o : o + b - a] = self.buf[:, a:b]
            self.buf[:, a:b] = 0.0


class _Level:
    """One uniformly partitioned level: ``K`` partitions of ``Q`` taps from offset ``s``."""

    def __init__(self, h: np.ndarray, q: int, s: int, spread: bool) -> None:
        c = h.shape[0]
        k = -(-h.shape[1] // q)
        self.q, self.s, self.k, self.spread, self.channels = q, s, k, spread, c
        parts = np.zeros((k, c, 2 * q))
        for i in range(k):
            seg = h[:, i * q : (i + 1) * q]
            parts[i, :, : seg.shape[1]] = seg
        self.h = np.fft.rfft(parts, axis=2).astype(np.complex64)  # (K, C, Q+1)
        self.x = np.zeros((2 * k, c, q + 1), dtype=np.complex64)  # spectra, written twice
        self.pos = 0
        self.fin = np.zeros((c, 2 * q))
        self.fout = np.zeros((c, 2 * q))
        self.spec = np.zeros((c, q + 1), dtype=np.complex128)  # FFT in and out (float64)
        self.acc = np.zeros((c, q + 1), dtype=np.complex64)
        self.part = np.zeros((c, q + 1), dtype=np.complex64)
        per = max(1, MAC_STEP // (c * (q + 1))) if spread else k
        self.tmp = np.zeros((per, c, q + 1), dtype=np.complex64)
        macs = [("mac", a, min(k, a + per)) for a in range(0, k, per)]
        if spread and q >= SPLIT_MIN:  # an FFT per channel, the MACs, an inverse per channel
            self.steps = ([("fft", ch, 0) for ch in range(c)] + macs
                          + [("ifft", ch, 0) for ch in range(c)])
        else:  # all at once: both channels in one FFT call each way
            self.steps = [("fft", -1, 0), *macs, ("ifft", -1, 0)]
        # work before each step, in MAC-chunk units (an FFT of 2 Q points costs about
        # FFT_WEIGHT chunks), so that a spread job's steps share the blocks evenly
        w = [1.0 if kind == "mac" else FFT_WEIGHT * (c if a < 0 else 1)
             for kind, a, _ in self.steps]
        self.before = np.concatenate([[0.0], np.cumsum(w)[:-1]]).tolist()
        self.total = float(sum(w))
        self.job = 0  # next input block to convolve
        self.active = False
        self.done = 0
        # plan the FFTs now (numpy plans a size on its first use), not in an audio block
        np.fft.rfft(self.fin, axis=1, out=self.spec)
        np.fft.rfft(self.fin[0], out=self.spec[0])
        np.fft.irfft(self.spec, 2 * q, axis=1, out=self.fout)
        np.fft.irfft(self.spec[0], 2 * q, out=self.fout[0])
        self.spec.fill(0.0)
        self.fout.fill(0.0)

    def _step(self, i: int, inp: _Ring, out: _Ring) -> None:
        q = self.q
        kind, a, b = self.steps[i]
        if kind == "fft":
            if a <= 0:
                inp.read(self.job * q - q, self.fin)
            if a < 0:
                np.fft.rfft(self.fin, axis=1, out=self.spec)
            else:
                np.fft.rfft(self.fin[a], out=self.spec[a])
            if a < 0 or a == self.channels - 1:
                self.pos = (self.pos - 1) % self.k
                np.copyto(self.x[self.pos], self.spec, casting="same_kind")
                np.copyto(self.x[self.pos + self.k], self.x[self.pos])
                self.acc.fill(0.0)
        elif kind == "mac":
            t = self.tmp[: b - a]
            np.multiply(self.x[self.pos + a : self.pos + b], self.h[a:b], out=t)
            np.sum(t, axis=0, out=self.part)
            self.acc += self.part
        else:
            if a < 0:
                np.copyto(self.spec, self.acc)
                np.fft.irfft(self.spec, 2 * q, axis=1, out=self.fout)
            else:
                np.copyto(self.spec[a], self.acc[a])
                np.fft.irfft(self.spec[a], 2 * q, out=self.fout[a])
            if a < 0 or a == self.channels - 1:
                out.add(self.job * q + self.s, self.fout[:, q:])

    def run(self, t_end: int, inp: _Ring, out: _Ring) -> None:
        """Do the work due once input up to time ``t_end - 1`` has arrived: all of a
        job at once for the first level, a share proportional to the time since the
        job's input was complete for the spread ones."""
        q = self.q
        n = len(self.steps)
        while True:
            if not self.active:
                if (self.job + 1) * q > t_end:
                    return
                self.active, self.done = True, 0
            elapsed = t_end - (self.job + 1) * q
            if not self.spread or elapsed >= q:
                due = self.total
            else:
                due = max(1e-9, self.total * elapsed / q)
            while self.done < n and self.before[self.done] < due:
                self._step(self.done, inp, out)
                self.done += 1
            if self.done < n:
                return
            self.active = False
            self.job += 1


class PartitionedConvolver:
    """Convolve ``(channels, n)`` float32 blocks with ``ir`` (``(taps, channels)``) with
    no latency: output sample ``t`` is ``gain * sum_k ir[k] x[t - k]`` (see the module
    doc); ``gain`` (linear) is applied in float64 before the output is rounded to float32."""

    def __init__(self, ir: np.ndarray, max_block: int, gain: float = 1.0) -> None:
        self.gain = float(gain)
        h = np.ascontiguousarray(np.asarray(ir, dtype=np.float32).T)  # (C, N)
        c, n = h.shape
        self.channels, self.max_block = c, max_block
        nz = np.flatnonzero(np.abs(h).max(axis=0) > 0)
        first = int(nz[0]) if nz.size else n
        n = int(nz[-1]) + 1 if nz.size else 0
        self.head: np.ndarray | None = None
        if first < HEAD:
            self.head = np.ascontiguousarray(h[:, : min(HEAD, n)][:, ::-1],
                                             dtype=np.float64)[:, None, :]
            start, q = HEAD, HEAD
        elif first < 2 * HEAD:
            start, q = first, HEAD
        else:  # a pre-delay: the first level can start late enough to be spread too
            start = first
            q = max(HEAD, min(FIRST_MAX, 1 << int(math.floor(math.log2(first // 2)))))
        self.levels: list[_Level] = []
        s = start
        while s < n:
            nxt = min(q * RATIO, Q_MAX)
            k = -(-(n - s) // q)
            if q < Q_MAX:
                k = min(k, max(1, -(-(2 * nxt - s) // q)))
            self.levels.append(_Level(h[:, s : s + k * q], q, s, spread=s >= 2 * q))
            s += k * q
            q = nxt
        big = max([lv.q for lv in self.levels], default=HEAD)
        reach = max([lv.s + lv.q for lv in self.levels], default=HEAD)
        self._in = _Ring(c, 1 << math.ceil(math.log2(3 * big + max_block + HEAD)), np.float64)
        self._out = _Ring(c, 1 << math.ceil(math.log2(reach + 2 * max_block)), np.float64)
        self._t = 0
        hk = 0 if self.head is None else self.head.shape[2]
        from vocalmix.core.streambuf import History

        self._hist = History(max(hk - 1, 0), max_block, (c,), np.float64)
        self._views: dict[int, np.ndarray] = {}
        self._y = np.zeros((c, max_block))
        self._y32 = np.zeros((c, max_block), dtype=np.float32)
        self._fir = np.zeros((c, max_block, 1))

    def process(self, x: np.ndarray) -> np.ndarray:
        """Convolve one block ``(channels, n)``; returns a view valid until the next call."""
        n = x.shape[1]
        t0 = self._t
        self._t += n
        self._in.write(t0, x)
        y = self._y[:, :n]
        if self.head is not None:
            self._hist.push(x)
            f = self._fir[:, :n]
            np.matmul(self._hist.sliding(self.head.shape[2]), self.head.transpose(0, 2, 1),
                      out=f)
            y[:] = f[:, :, 0]
            self._hist.advance()
        for lv in self.levels:
            lv.run(self._t, self._in, self._out)
        if self.head is not None:
            self._out.take(t0, y)
        else:
            self._out.move(t0, y)
        y32 = self._y32[:, :n]
        if self.gain == 1.0:
            np.copyto(y32, y, casting="same_kind")
        else:
            np.multiply(y, self.gain, out=y32, casting="same_kind")
        return y32
