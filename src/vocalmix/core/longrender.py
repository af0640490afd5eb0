"""Render a mix too long to hold in memory, a block at a time.

:func:`vocalmix.core.render.render` holds both inputs, the stems and the mix whole: about
five full-length stereo arrays, 6 GB for an hour at 44.1 kHz. :class:`BlockRender` runs
the same chain as the live mixer (:class:`vocalmix.core.stream.LiveMixer`, whose output
is the offline render's within float rounding, about -120 dBFS) over blocks of
:data:`LONG_BLOCK` samples taken from two block streams (files read a block at a time,
:class:`vocalmix.core.audio.AudioReader`), so that memory does not grow with the length.
The limiter's look-ahead is taken out (the mix and stems line up with the inputs, as the
offline render's do), and the achieved figures are measured on the way: the 100 ms
K-weighted segment energies of the vocal, the backing, their pre-master sum, the mix and
the dry vocal (:class:`vocalmix.core.measure.SegmentMeter`), the mix's true peak
(:class:`vocalmix.core.measure.TruePeakMeter`) and the master's largest gain reduction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import numpy as np

from vocalmix.core.dsp import offset_samples, shifted_blocks
from vocalmix.core.measure import SegmentMeter, TruePeakMeter
from vocalmix.core.params import MixParams

#: samples per block of a long render (1.5 s at 44.1 kHz): large enough that the
#: per-block work of the live chain costs nothing next to the signal processing
LONG_BLOCK = 1 << 16


def exact_blocks(blocks: Iterable[np.ndarray], n: int, block: int) -> Iterator[np.ndarray]:
    """The first ``n`` rows of the signal that the consecutive ``(k, 2)`` ``blocks`` make
    up (any lengths), as float32 blocks of ``block`` rows (the last one shorter), with
    silence after the signal's end when it is shorter than ``n``."""
    buf = np.zeros((block, 2), np.float32)
    fill = done = 0
    for x in blocks:
        i = 0
        while i < x.shape[0] and done + fill < n:
            k = min(block - fill, x.shape[0] - i, n - done - fill)
            buf[fill : fill + k] = x[i : i + k]
            fill += k
            i += k
            if fill == block:
                yield buf.copy()
                done += fill
                fill = 0
        if done + fill >= n:
            break
    while done + fill < n:  # a shorter input: silence to the length of the longer
        k = min(block - fill, n - done - fill)
        buf[fill : fill + k] = 0.0
        fill += k
        if fill == block or done + fill == n:
            yield buf[:fill].copy()
            done += fill
            fill = 0
    if fill:
        yield buf[:fill].copy()


class BlockRender:
    """One render of ``params`` over ``n`` samples of a vocal and a backing given as block
    streams (``(k, 2)`` float32, any lengths; each cut or padded with silence to ``n``).

    :meth:`blocks` runs it once, yielding ``(mix,)`` or, with ``stems``, ``(mix, vocal,
    vocal_dry, backing)`` float32 ``(k, 2)`` blocks aligned with the inputs (the stems as
    :class:`vocalmix.core.render.Rendered` names them). Once it has run, the meters hold
    the whole signals' figures: :attr:`vocal`, :attr:`backing`, :attr:`premaster`,
    :attr:`mix`, :attr:`vocal_dry` (:class:`SegmentMeter`), :attr:`true_peak`
    (:class:`TruePeakMeter`) and :attr:`gain_reduction_db` (dB). ``progress`` is called
    with the fraction done after each block.
    """

    def __init__(self, vocal: Iterable[np.ndarray], backing: Iterable[np.ndarray], n: int,
                 sample_rate: int, params: MixParams, *, stems: bool = False,
                 block: int = LONG_BLOCK,
                 progress: Callable[[float], None] | None = None) -> None:
        self._vocal, self._backing = vocal, backing
        self.n = int(n)
        self.sample_rate = int(sample_rate)
        self.params = params
        self.stems = stems
        self.block = int(block)
        self._progress = progress
        sr = self.sample_rate
        self.vocal, self.backing = SegmentMeter(sr), SegmentMeter(sr)
        self.premaster, self.mix = SegmentMeter(sr), SegmentMeter(sr)
        self.vocal_dry = SegmentMeter(sr)
        self.true_peak = TruePeakMeter()
        self.gain_reduction_db = 0.0
        self.done = False

    def blocks(self) -> Iterator[tuple[np.ndarray, ...]]:
        """Run the render (once), yielding its output blocks (see the class doc)."""
        from vocalmix.core.stream import LiveMixer

        if self.done:
            raise ValueError("a BlockRender runs once")
        p = self.params
        # the take moved here, as the offline render moves it (the live mixer, which
        # cannot read ahead, would delay the backing instead for a take moved earlier)
        shift = offset_samples(p.vocal.offset_ms, self.sample_rate)
        p = replace(p, vocal=replace(p.vocal, offset_ms=0.0))
        mixer = LiveMixer(p, self.sample_rate, self.block, stems=self.stems)
        lat = mixer.latency_samples
        n, blk = self.n, self.block
        # the inputs cut or padded to n, then the look-ahead's worth of silence that brings
        # the end of the mix out of the limiter
        vb = exact_blocks(exact_blocks(shifted_blocks(self._vocal, shift), n, blk), n + lat,
                          blk)
        bb = exact_blocks(exact_blocks(self._backing, n, blk), n + lat, blk)
        pos = 0  # input samples fed so far
        skip = lat  # output samples still to drop (the mix of the time before the start)
        for v, b in zip(vb, bb, strict=True):
            k = v.shape[0]
            if self.stems:
                st = mixer.process_stems(v, b)
                outs: tuple[np.ndarray, ...] = (st.mix, st.vocal, st.vocal_dry, st.backing)
                red = st.gain_reduction_db
            else:
                outs = (mixer.process(v, b),)
                red = mixer.gain_reduction_db(k)
            inside = max(0, min(k, n - pos))  # undelayed samples of the song itself
            if inside:
                vox = mixer.last_vocal[:, :inside].T
                bk = mixer.last_backing[:, :inside].T
                self.vocal.add(vox)
                self.backing.add(bk)
                self.premaster.add(vox + bk)
                self.vocal_dry.add(mixer.last_dry[:, :inside].T)
            pos += k
            d = min(skip, k)
            skip -= d
            if d < k:
                outs = tuple(o[d:] for o in outs)
                self.gain_reduction_db = max(self.gain_reduction_db, red)
                self.mix.add(outs[0])
                self.true_peak.add(outs[0])
                yield outs
            if self._progress is not None:
                self._progress(min(1.0, pos / max(n + lat, 1)))
        self.done = True


__all__ = ["LONG_BLOCK", "BlockRender", "exact_blocks"]
