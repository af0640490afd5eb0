"""Zero-latency partitioned convolution, block by block, for the ``synthetic`` reverb.

The offline render convolves the whole send with the impulse response at once
(:func:`vocalmix.core.render.reverb_wet`); a live send has to produce each output block
as its input block arrives, with a work load that stays flat from block to block.
:class:`PartitionedConvolver` splits the impulse response ``h`` (taps ``0 .. N-1``)
into levels of growing partition size (non-uniform partitioning, after Gardner,
"Efficient convolution without input-output delay", JAES 43(3), 1995):

* taps before the first non-zero one (the pre-delay, folded into ``h``) cost nothing;
* a **head** of :data:`HEAD` taps, when the response starts within them, is a direct
  FIR over the block (no latency);
* the rest is cut into **levels** of partitions, each level ``RATIO`` times the previous
  one's partition up to :data:`Q_MAX`. The first level's partition ``Q0`` is at most
  half its offset ``s0`` (the head's end or the first non-zero tap), and each further
  level starts at an offset ``s >= 2 Q``. A level convolves its partitions by
  overlap-save FFTs of ``2 Q`` points with a frequency-domain delay line; its job for
  input block ``j`` (samples ``j Q .. (j+1) Q - 1``) can start when that block is
  complete, at ``(j+1) Q``, and has until output time ``j Q + s >= (j+2) Q`` to finish.

A job is a list of steps (an FFT of both channels, chunks of the frequency-domain
multiply-accumulates, an inverse FFT), each with an estimated cost (:func:`_fft_cost`,
:func:`_mac_cost`). Every audio block earns the convolver's average cost per sample
times its length in credit and spends it on the pending steps of all levels in
earliest-deadline-first order, so each block does about the average work (give or take
half a step) instead of one block paying for the first level's job, a large FFT and a
long delay line at once; a step whose output is due in the current block runs whatever
the credit. The schedule decides only when a step runs, never what it computes: the
output is the same for any block sizes.

The FFTs are float64 (numpy's float32 FFT allocates a work array per call; the float64
one with ``out=`` allocates nothing) and the spectra and multiply-accumulates complex64
(half the memory traffic of the hot loop); the offline render's overlap-add and this
agree to about -120 dB of the send's level. Nothing is allocated per block but the
head's correlation (a new array of one block per channel, freed at once): every FFT and
product writes into a preallocated array.
"""

from __future__ import annotations

import math

import numpy as np

#: longest direct-FIR head (taps): a response that starts within it (a short or no
#: pre-delay) is convolved directly for its first HEAD taps, by numpy's correlation loop
#: (about 9 us per 128-sample stereo block), and by partitions from there on
HEAD = 512
#: smallest partition (taps)
Q_MIN = 64
#: largest first partition when the response starts late (a long pre-delay)
FIRST_MAX = 1024
#: partition growth factor from one level to the next
RATIO = 8
#: largest partition (taps); its FFTs are 2 Q_MAX points
Q_MAX = 2048
#: complex multiply-accumulates per spread step (partitions x bins x channels)
MAC_STEP = 1 << 14


def _fft_cost(points: int) -> float:
    """Estimated time (us) of a real FFT (or inverse) of ``points`` points on both channels
    with its copies, in an audio block (cold caches): a fixed call cost plus a cost per
    point (fitted on numpy 2's pocketfft, which transforms both channels together in SIMD
    lanes, at 512-8192 points). Only the balance of work between blocks depends on it."""
    return 13.0 + 0.0137 * points


def _mac_cost(macs: int) -> float:
    """Estimated time (us) of a chunk of ``macs`` complex64 multiply-accumulates (memory
    bound: the delay line and the partitions do not stay in cache)."""
    return 5.0 + 1.0e-3 * macs


def _first_partition(first: int) -> int:
    """The first level's partition (taps) when it starts at tap ``first`` (the first
    non-zero one, or the end of the direct head): the largest ``2^a 3^b 5^c`` (an FFT
    size pocketfft does at full speed) from :data:`Q_MIN` to :data:`FIRST_MAX` with
    ``2 Q <= first``, so that the level's jobs are spread (a 20 ms pre-delay at 48 kHz,
    960 taps, gives 480)."""
    limit = min(FIRST_MAX, first // 2)
    best = Q_MIN
    a = 1
    while a <= limit:
        b = a
        while b <= limit:
            c = b
            while c <= limit:
                best = max(best, c)
                c *= 5
            b *= 3
        a *= 2
    return best


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

    def drain(self, t: int, out: np.ndarray, add: bool) -> None:
        """Copy (``add`` false) or add (``add`` true) times ``t ..`` into ``out``, and
        clear them."""
        for a, b, o in self._parts(t, out.shape[1]):
            if add:
                out[:, o : o + b - a] += self.buf[:, a:b]
            else:
                out[:, o : o + b - a] = self.buf[:, a:b]
            self.buf[:, a:b] = 0.0


class _Level:
    """One uniformly partitioned level: ``K`` partitions of ``Q`` taps from offset ``s``.

    Its job for input block ``j`` (samples ``j Q .. (j+1) Q - 1``) is :attr:`steps`, run
    one at a time by :meth:`step` once the block is complete, and finished before output
    time ``j Q + s`` (:attr:`due`)."""

    def __init__(self, h: np.ndarray, q: int, s: int) -> None:
        c = h.shape[0]
        k = -(-h.shape[1] // q)
        self.q, self.s, self.k = q, s, k
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
        per = max(1, MAC_STEP // (c * (q + 1)))
        self.part = np.zeros((c, q + 1), dtype=np.complex64)
        macs = [("mac", a, min(k, a + per)) for a in range(0, k, per)]
        self.steps = [("fft", 0, 0), *macs, ("ifft", 0, 0)]
        costs = {"fft": _fft_cost(2 * q), "ifft": _fft_cost(2 * q)}
        self.costs = [costs[kind] if kind != "mac" else _mac_cost((b - a) * c * (q + 1))
                      for kind, a, b in self.steps]
        #: average cost per input sample (us)
        self.rate = sum(self.costs) / q
        self.job = 0  # the input block whose job is under way (or next)
        self.done = 0  # its steps done
        #: the job can start once input up to this time (exclusive) has arrived
        self.ready_at = q
        #: output time of the job's first sample: it must be done before then
        self.due = s
        # plan the FFTs now (numpy plans a size on its first use), not in an audio block
        np.fft.rfft(self.fin, axis=1, out=self.spec)
        np.fft.irfft(self.spec, 2 * q, axis=1, out=self.fout)
        self.spec.fill(0.0)
        self.fout.fill(0.0)

    def step(self, inp: _Ring, out: _Ring) -> float:
        """Run the current job's next step; returns its estimated cost (us)."""
        i = self.done
        self._run(*self.steps[i], inp, out)
        self.done += 1
        if self.done == len(self.steps):
            self.done = 0
            self.job += 1
            self.ready_at += self.q
            self.due += self.q
        return self.costs[i]

    def _run(self, kind: str, a: int, b: int, inp: _Ring, out: _Ring) -> None:
        q = self.q
        if kind == "fft":
            inp.read(self.job * q - q, self.fin)
            np.fft.rfft(self.fin, axis=1, out=self.spec)
            self.pos = (self.pos - 1) % self.k
            np.copyto(self.x[self.pos], self.spec, casting="same_kind")
            np.copyto(self.x[self.pos + self.k], self.x[self.pos])
            self.acc.fill(0.0)
        elif kind == "mac":  # partition by partition: no product array larger than one
            x, h, part, acc = self.x, self.h, self.part, self.acc
            for i in range(a, b):
                np.multiply(x[self.pos + i], h[i], out=part)
                acc += part
        else:
            np.copyto(self.spec, self.acc)
            np.fft.irfft(self.spec, 2 * q, axis=1, out=self.fout)
            out.add(self.job * q + self.s, self.fout[:, q:])


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
        if first < HEAD:  # the first HEAD taps directly (time-reversed for a correlation)
            self.head = np.ascontiguousarray(h[:, : min(HEAD, n)][:, ::-1], dtype=np.float64)
            start = HEAD
        else:  # a pre-delay: the first level can start late enough to be spread too
            start = first
        q = _first_partition(start)
        self.levels: list[_Level] = []
        s = start
        while s < n:
            nxt = min(q * RATIO, Q_MAX)
            if 2 * nxt > Q_MAX:  # not a level of nearly Q_MAX before one of Q_MAX
                nxt = Q_MAX
            k = -(-(n - s) // q)
            if q < Q_MAX:
                k = min(k, max(1, -(-(2 * nxt - s) // q)))
            self.levels.append(_Level(h[:, s : s + k * q], q, s))
            s += k * q
            q = nxt
        big = max([lv.q for lv in self.levels], default=Q_MIN)
        reach = max([lv.s + lv.q for lv in self.levels], default=HEAD)
        # a job reads its 2 Q input samples as late as the block holding its deadline
        late = max(reach, 3 * big + HEAD)
        self._in = _Ring(c, 1 << math.ceil(math.log2(late + max_block)), np.float64)
        #: average cost (us) per input sample; the credit (us) a block may spend
        self.rate = sum(lv.rate for lv in self.levels)
        self._credit = 0.0
        self._t_done = 0
        self._out = _Ring(c, 1 << math.ceil(math.log2(reach + 2 * max_block)), np.float64)
        self._t = 0
        hk = 0 if self.head is None else self.head.shape[1]
        from vocalmix.core.streambuf import History

        self._hist = History(max(hk - 1, 0), max_block, (c,), np.float64)
        self._y = np.zeros((c, max_block))
        self._y32 = np.zeros((c, max_block), dtype=np.float32)

    def _schedule(self, t_end: int) -> None:
        """Run the levels' steps once input up to ``t_end - 1`` has arrived: every step of
        a job whose output starts before ``t_end`` (due in this block), then, while the
        block's credit lasts, the pending step with the earliest deadline."""
        inp, out, levels = self._in, self._out, self.levels
        credit = self._credit + self.rate * (t_end - self._t_done)
        self._t_done = t_end
        for lv in levels:
            while lv.due < t_end:
                credit -= lv.step(inp, out)
        while True:
            best = None
            for lv in levels:
                if lv.ready_at <= t_end and (best is None or lv.due < best.due):
                    best = lv
            if best is None:  # all caught up: no credit is saved for a later burst
                credit = min(credit, 0.0)
                break
            if credit < 0.5 * best.costs[best.done]:  # nearer the block's share without it
                break
            credit -= best.step(inp, out)
        self._credit = credit

    def process(self, x: np.ndarray) -> np.ndarray:
        """Convolve one block ``(channels, n)``; returns a view valid until the next call."""
        n = x.shape[1]
        t0 = self._t
        self._t += n
        self._in.write(t0, x)
        y = self._y[:, :n]
        if self.head is not None:
            w = self._hist.push(x)  # the block and the head's taps - 1 samples before it
            for c in range(self.channels):  # numpy's C loop; it returns a new array of n
                y[c] = np.correlate(w[c], self.head[c], "valid")
            self._hist.advance()
        self._schedule(self._t)
        self._out.drain(t0, y, add=self.head is not None)  # onto the head's output
        y32 = self._y32[:, :n]
        if self.gain == 1.0:
            np.copyto(y32, y, casting="same_kind")
        else:
            np.multiply(y, self.gain, out=y32, casting="same_kind")
        return y32
