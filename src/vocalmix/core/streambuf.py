"""Preallocated buffers for block-by-block processing (no allocation per block).

Streams are laid out with time on the last axis (``(channels, samples)`` for audio, as
pedalboard takes them, or ``(samples,)`` for a control signal). Every class takes the
largest block it will see at construction and allocates nothing afterwards; blocks of
any length up to that maximum, odd or changing, give the same result as one long block.
"""

from __future__ import annotations

import numpy as np


class History:
    """The last ``keep`` samples of a stream followed by the newest block, contiguous.

    :meth:`push` writes a block after the kept samples and returns the window
    ``[keep + n]`` (time on the last axis) as a view; :meth:`advance` then keeps the
    window's last ``keep`` samples for the next block. Two buffers alternate, so the
    copy never overlaps itself (numpy would allocate a temporary for that).
    """

    def __init__(self, keep: int, max_block: int, lead: tuple[int, ...] = (),
                 dtype: type = np.float32, fill: float = 0.0) -> None:
        if keep < 0 or max_block < 1:
            raise ValueError("keep must be >= 0 and max_block >= 1")
        self.keep = keep
        self.max_block = max_block
        self._a: np.ndarray = np.full((*lead, keep + max_block), fill, dtype=dtype)
        self._b = np.full_like(self._a, fill)
        self._n = 0
        self._flip = 0  # which of the two buffers is _a: 0 the first, 1 the second
        self._views: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def push(self, block: np.ndarray) -> np.ndarray:
        """Write ``block`` (time last, at most ``max_block`` samples); the window view."""
        return self._write(block, block.shape[-1])

    def push_constant(self, value: float, n: int) -> np.ndarray:
        """:meth:`push` of a block of ``n`` samples all equal to ``value``."""
        return self._write(value, n)

    def _write(self, block: np.ndarray | float, n: int) -> np.ndarray:
        if n > self.max_block:
            raise ValueError(f"block of {n} samples exceeds the maximum of {self.max_block}")
        self._a[..., self.keep : self.keep + n] = block
        self._n = n
        return self._a[..., : self.keep + n]

    def sliding(self, width: int) -> np.ndarray:
        """Sliding windows of ``width`` samples over the window of the last push:
        ``[..., i, :]`` holds the samples up to the ``i``-th of the block (``width <=
        keep + 1``); a view built once per buffer."""
        from numpy.lib.stride_tricks import sliding_window_view

        views = self._views.get(width)
        if views is None:
            off = self.keep + 1 - width
            first, second = (self._a, self._b) if self._flip == 0 else (self._b, self._a)
            views = (sliding_window_view(first[..., off:], width, axis=-1),
                     sliding_window_view(second[..., off:], width, axis=-1))
            self._views[width] = views
        return views[self._flip][..., : self._n, :]

    def window(self) -> np.ndarray:
        """The window of the last :meth:`push` (kept samples then the block)."""
        return self._a[..., : self.keep + self._n]

    def advance(self) -> None:
        """Keep the last ``keep`` samples of the window for the next block."""
        n, k = self._n, self.keep
        if k:
            self._b[..., :k] = self._a[..., n : n + k]
        self._a, self._b = self._b, self._a
        self._flip ^= 1
        self._n = 0


#: blocks of at least this many widths take :class:`TrailingMin`'s running-minimum filter
FILTER_MIN_WIDTHS = 2


class TrailingMin:
    """``out[i] = min`` of the last ``width`` values pushed (``fill`` before the first).

    The streaming form of van Herk / Gil-Werman: values fall into segments of ``width``;
    the window ending at offset ``o`` of a segment is the suffix of the previous segment
    from ``o + 1`` plus the prefix of the current one up to ``o``. Suffix minima are
    computed once per completed segment, prefix minima block by block: O(1) per value,
    exact (a minimum does not round).

    Given a ``max_block`` of :data:`FILTER_MIN_WIDTHS` widths or more (an offline run's
    blocks), it keeps the last ``width - 1`` values instead and runs SciPy's running
    minimum (:func:`vocalmix.core.kernels.minimum_filter1d`, one C loop) over them and
    the block: the same minima, in about a fifth of the time of the segments' numpy
    passes for a block of 32768 values and a width of 2445. Short live blocks keep the
    segments, whose work does not grow with the width.
    """

    def __init__(self, width: int, fill: float = 1.0, max_block: int | None = None) -> None:
        if width < 1:
            raise ValueError("width must be >= 1")
        self.width = width
        self._kept: History | None = None
        if max_block is not None and max_block >= FILTER_MIN_WIDTHS * width:
            # the running-minimum filter's state: the last width - 1 values
            self._kept = History(width - 1, max_block, dtype=np.float64, fill=fill)
            self._mins = np.empty(width - 1 + max_block)
            return
        # the segments' state: the current segment, the last one's suffix minima
        self._cur = np.full(width, fill)
        self._suf = np.full(width + 1, fill)
        self._suf[width] = np.inf
        self._pos = 0
        self._run = np.inf

    def push(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Trailing minima of the values ``v`` (float64 ``(n,)``) into ``out[:n]``."""
        if self._kept is not None:
            return self._push_filtered(v, out)
        w = self.width
        n = v.shape[0]
        i = 0
        while i < n:
            k = min(n - i, w - self._pos)
            p = self._pos
            seg = self._cur[p : p + k]
            seg[:] = v[i : i + k]
            pre = out[i : i + k]
            np.minimum.accumulate(seg, out=pre)
            np.minimum(pre, self._run, out=pre)
            self._run = float(pre[k - 1])
            np.minimum(pre, self._suf[p + 1 : p + k + 1], out=pre)
            self._advance(k)
            i += k
        return out[:n]

    def _push_filtered(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:meth:`push` by the running-minimum filter over the kept values and ``v``:
        the window of the block's ``i``-th value is the ``width`` values ending at it,
        all within the kept ones and the block."""
        from vocalmix.core.kernels import minimum_filter1d

        assert self._kept is not None
        n = v.shape[0]
        w = self.width
        win = self._kept.push(v)  # the last w - 1 values, then the block
        mins = self._mins[: win.shape[0]]
        minimum_filter1d(win, w, origin=(w - 1) // 2, mode="nearest", output=mins)
        out[:n] = mins[w - 1 :]
        self._kept.advance()
        return out[:n]

    def push_constant(self, value: float, n: int) -> None:
        """The state :meth:`push` of ``n`` values all equal to ``value`` leaves, without
        the output (a few array writes per segment, not the minima)."""
        if self._kept is not None:
            while n > 0:  # (the kept values' history takes a block at most at a time)
                k = min(n, self._kept.max_block)
                self._kept.push_constant(value, k)
                self._kept.advance()
                n -= k
            return
        while n > 0:
            k = min(n, self.width - self._pos)
            self._cur[self._pos : self._pos + k] = value
            self._run = min(self._run, value)
            self._advance(k)
            n -= k

    def _advance(self, k: int) -> None:
        """Move past ``k`` values written into the current segment; a completed segment's
        suffix minima are computed and a new one begins."""
        w = self.width
        self._pos += k
        if self._pos == w:
            np.minimum.accumulate(self._cur[::-1], out=self._suf[w - 1 :: -1])
            self._pos = 0
            self._run = np.inf


class MovingMean:
    """``out[i]`` = mean of the last ``width`` values pushed (``fill`` before the first).

    Each block's sums are a fresh cumulative sum over the kept ``width - 1`` values and
    the block, so no rounding error accumulates over a long stream and a run of equal
    values averages to exactly that value.
    """

    def __init__(self, width: int, max_block: int, fill: float = 1.0) -> None:
        if width < 1:
            raise ValueError("width must be >= 1")
        self.width = width
        self._hist = History(width - 1, max_block, dtype=np.float64, fill=fill)
        self._cs = np.zeros(width + max_block)

    def push(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Trailing means of the values ``v`` (float64 ``(n,)``) into ``out[:n]``."""
        n = v.shape[0]
        w = self._hist.push(v)
        cs = self._cs
        np.cumsum(w, out=cs[1 : w.shape[0] + 1])
        o = out[:n]
        np.subtract(cs[self.width : self.width + n], cs[:n], out=o)
        o /= self.width
        self._hist.advance()
        return o

    def push_constant(self, value: float, n: int) -> None:
        """The state :meth:`push` of ``n`` values all equal to ``value`` leaves, without
        the output."""
        self._hist.push_constant(value, n)
        self._hist.advance()
