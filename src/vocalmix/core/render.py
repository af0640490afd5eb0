"""The render chain: vocal effects, backing gain, sum and a true-peak-safe master.

Order: vocal -> high-pass -> EQ bands -> de-esser -> compressor (+ make-up) -> gain ->
reverb and delay sends (their wet signals added to the dry vocal); backing -> gain; sum;
master gain; true-peak limiter. The EQ stage is :func:`vocalmix.core.dsp.eq_stage`, which
the corrective-EQ estimator uses too; the de-esser is :mod:`vocalmix.core.deesser`, the
delay :mod:`vocalmix.core.delay`. What is rendered is :func:`vocalmix.core.amount.effective`
of a document: its settings at its ``amount``.

Effects are pedalboard's: ``Compressor`` and ``Reverb`` as plugins, and the EQ section's
``HighpassFilter``, ``PeakFilter``, ``LowShelfFilter`` and ``HighShelfFilter`` as their
coefficients run in float64 (:func:`eq_stage`). The ``synthetic`` reverb is an
exact FFT convolution with a synthesised impulse response (pedalboard's ``Convolution``
normalises and trims its impulse response, so its level would not be what MixParams
says); each is created fresh for every render
and run with ``reset=True``, so the same inputs and params give bit-identical output.
The master is a causal look-ahead true-peak limiter (:mod:`vocalmix.core.limiter`, run
vectorised over the whole signal by :func:`master_stage`; pedalboard's ``Limiter`` has no
true-peak mode). It is the one the live mixer runs block by block
(:mod:`vocalmix.core.stream`), so a live mix equals this render delayed by its look-ahead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pedalboard as pb

from vocalmix.core.dsp import (
    EQ_HANDOFF,
    LruCache,
    board_rows,
    content_key,
    delayed_rows,
    eq_sos,
    eq_stage,
    equal_channels,
    run_board,
    twin_render,
)
from vocalmix.core.measure import TruePeakMeter, true_peak_dbtp
from vocalmix.core.params import Compressor, DeEsser, Master, MixParams, Reverb, VocalChain


def db_to_gain(db: float) -> float:
    """Linear amplitude factor of a level in dB."""
    return float(10.0 ** (db / 20.0))


def compressor_board(comp: Compressor) -> pb.Pedalboard | None:
    """The compressor stage's pedalboard chain without its make-up gain; ``None`` when the
    stage compresses nothing (disabled, or ratio 1)."""
    if not comp.enabled or comp.ratio == 1.0:
        return None
    return pb.Pedalboard([pb.Compressor(threshold_db=comp.threshold_db, ratio=comp.ratio,
                                        attack_ms=comp.attack_ms,
                                        release_ms=comp.release_ms)])


def compressor_stage(x: np.ndarray, sample_rate: int, comp: Compressor) -> np.ndarray:
    """pedalboard ``Compressor`` (hard knee, peak detector) followed by make-up gain, dB."""
    board = compressor_board(comp)
    y = x if board is None else run_board(board, x, sample_rate)
    if comp.enabled and comp.makeup_db != 0.0:
        if y is x:
            y = y * np.float32(db_to_gain(comp.makeup_db))
        else:  # the board's own output: scaled in place, the same products
            y *= np.float32(db_to_gain(comp.makeup_db))
    return y


#: smallest FFT of the synthetic reverb's overlap-add (points)
OLA_MIN_FFT = 1 << 15


def _filled(shape: tuple[int, ...], rows: Callable[[np.ndarray], Iterator[int]]
            ) -> np.ndarray:
    """A float32 array of zeros of ``shape`` that ``rows(out)`` fills (run to its end):
    a whole signal from a renderer that reports its rows as it goes."""
    out = np.zeros(shape, np.float32)
    for _done in rows(out):
        pass
    return out


def _synthetic_wet_rows(x: np.ndarray, sample_rate: int, reverb: Reverb, delay: int,
                        out: np.ndarray) -> Iterator[int]:
    """``src`` convolved channel by channel with the synthetic reverb's impulse response,
    where ``src`` is ``x`` delayed by ``delay`` samples (the pre-delay; silence first, the
    length of ``x``): its blocks are cut from ``x`` as they are needed, not copied whole.

    Overlap-add in single precision with FFTs of the power of two at least twice the
    response's length: each block of ``nfft - taps + 1`` input samples is transformed once
    for all channels, multiplied by the response's spectrum (computed once) and added into
    the float32 output. Single-precision transforms take about half the time of double
    ones (a 3-minute send 0.19-0.36 s against 0.30-0.64 s on two threads), and the output
    is float32 anyway: the send differs from the double-precision convolution by about
    -130 dB RMS (a few units in the last place of its float32 samples;
    ``tests/test_reverb_synthetic.py`` checks it against ``numpy.convolve``).

    Adds into ``out`` (zeros, ``x``'s shape) and yields, after each block, how many rows
    of it are final (no later block adds to them), ``len(x)`` last.
    """
    from vocalmix.core import kernels as sfft
    from vocalmix.core.parallel import ordered_map
    from vocalmix.core.reverb import render_synthetic_ir

    h = render_synthetic_ir(reverb.decay_s, reverb.band_decay_ratios, reverb.width, sample_rate)
    x = np.asarray(x, np.float32)
    n, c = x.shape
    h = h[:, :c] if c != 2 else h
    taps = h.shape[0]
    nfft = max(OLA_MIN_FFT, 1 << int(np.ceil(np.log2(2 * taps))))
    step = nfft - taps + 1
    spec = sfft.rfft(np.asarray(h, np.float32), nfft, axis=0)  # (nfft // 2 + 1, c) complex64
    scratch = threading.local()

    def block(s: int) -> np.ndarray:
        blk = getattr(scratch, "blk", None)
        if blk is None:
            blk = scratch.blk = np.zeros((step, c), np.float32)
        src = delayed_rows(x, s, delay, blk[: min(step, n - s)])
        if equal_channels(src):
            # a mono take's send: its two channels have one spectrum, transformed once
            # (each column is transformed on its own: the same values as both at once)
            return sfft.irfft(sfft.rfft(src[:, :1], nfft, axis=0) * spec, nfft, axis=0)
        return sfft.irfft(sfft.rfft(src, nfft, axis=0) * spec, nfft, axis=0)

    # the blocks' transforms (pocketfft and numpy let go of the GIL) run on two threads a
    # few blocks ahead; their sums go into the output here, in order, as before: the
    # same additions in the same order, so the same samples
    for s, y in zip(range(0, n, step), ordered_map(block, range(0, n, step)), strict=True):
        e = min(n, s + nfft)
        out[s:e] += y[: e - s]
        yield min(n, s + step)


def reverb_wet(x: np.ndarray, sample_rate: int, reverb: Reverb) -> np.ndarray:
    """The wet reverb signal for a send fed with ``x``: pre-delay, reverb, wet level.

    ``freeverb``: pedalboard's ``Reverb``; ``synthetic``: exact convolution (FFT
    overlap-add) with :func:`vocalmix.core.reverb.render_synthetic_ir`. The gain is
    :func:`vocalmix.core.reverb.wet_gain_db`, so that ``wet_level_db`` is the send's
    reverberant-to-direct energy ratio for a vocal in both types.
    """
    if not reverb.enabled:
        return np.zeros_like(x)
    return _filled(np.shape(x), lambda out: _reverb_wet_rows(x, sample_rate, reverb, out))


def _reverb_wet_rows(x: np.ndarray, sample_rate: int, reverb: Reverb, out: np.ndarray
                     ) -> Iterator[int]:
    """:func:`reverb_wet` of an enabled reverb rendered into ``out`` (zeros, ``x``'s shape,
    float32), yielding how many rows are final (wet level applied) as the render goes."""
    from vocalmix.core.reverb import wet_gain_db

    d = int(round(reverb.pre_delay_ms * 1e-3 * sample_rate))
    if reverb.type == "synthetic":
        rows = _synthetic_wet_rows(x, sample_rate, reverb, d, out)
    else:
        board = pb.Pedalboard([pb.Reverb(room_size=reverb.room_size, damping=reverb.damping,
                                         wet_level=1.0, dry_level=0.0, width=reverb.width)])
        rows = board_rows(board, x, sample_rate, out, delay=d)
    g = np.float32(db_to_gain(wet_gain_db(reverb, sample_rate)))
    start = 0
    for done in rows:
        out[start:done] *= g  # the same products as scaling the whole render at its end
        start = done
        yield done


def master_stage(
    x: np.ndarray, sample_rate: int, master: Master, *, in_place: bool = False
) -> tuple[np.ndarray, float, float]:
    """Keep ``x`` at or below ``master.ceiling_dbtp``; transparent when it already is.

    The causal look-ahead true-peak limiter of :mod:`vocalmix.core.limiter`, run over the
    whole signal and time-aligned with it: the live mixer (:mod:`vocalmix.core.stream`)
    runs the same limiter block by block and outputs the same samples
    ``master.lookahead_ms`` later. When no 4x-oversampled true peak exceeds the ceiling,
    ``x`` itself is returned.

    Returns the output, the largest gain reduction applied (dB, 0.0 if none) and the
    output's true peak (dBTP). ``in_place``: the output may overwrite ``x`` (the caller's
    own float32 sum, no longer needed).
    """
    y, reduction, tp, _energy = master_stage_measured(x, sample_rate, master,
                                                      in_place=in_place)
    return y, reduction, tp


def master_stage_measured(
    x: np.ndarray, sample_rate: int, master: Master, *, in_place: bool = False,
    true_peak: bool = True, energy: Literal["never", "limited", "always"] = "never",
) -> tuple[np.ndarray, float, float, np.ndarray | None]:
    """:func:`master_stage` and, per ``energy``, the output's K-weighted 100 ms segment
    energies (:func:`~vocalmix.core.measure.k_weighted_energies`: its loudness figures),
    ``None`` when not measured: ``"limited"`` only when the limiter changed the signal
    (otherwise the output is the input, whose figures the caller has). With
    ``"limited"`` (and the true peak), the energies are measured while the limiter runs,
    each block as soon as it has finished it (:class:`PendingMaster`), then the true
    peak; otherwise the true peak and the energies are measured on two threads at once
    after it (both let go of the GIL). ``true_peak=False`` skips the true peak (``nan``)
    for a caller that needs only the loudness."""
    from vocalmix.core.limiter import limit_min_gain
    from vocalmix.core.measure import k_weighted_energies
    from vocalmix.core.parallel import beside

    if true_peak and energy == "limited":
        return PendingMaster(x, sample_rate, master, in_place=in_place).result()
    y, gmin = limit_min_gain(x, sample_rate, master, in_place=in_place)
    want = energy == "always" or (energy == "limited" and gmin is not None)
    tp, e = float("nan"), None
    if true_peak and want:
        tp, e = beside(lambda: true_peak_dbtp(y, sample_rate),
                       lambda: k_weighted_energies(y, sample_rate))
    elif true_peak:
        tp = true_peak_dbtp(y, sample_rate)
    elif want:
        e = k_weighted_energies(y, sample_rate)
    return y, _reduction_db(gmin), tp, e


def _reduction_db(gmin: float | None) -> float:
    """The largest gain reduction (dB, 0.0 when none) of a smallest linear gain."""
    if gmin is None:
        return 0.0
    return max(float(-20.0 * np.log10(max(gmin, 1e-12))), 0.0)


class PendingMaster:
    """:func:`master_stage_measured` with ``energy="limited"``, running: the limiter on a
    helper thread, the K-weighting and the true peak (:class:`TruePeakMeter`) of its
    output on another, each block as soon as the limiter has finished it (the limiter
    runs on one core). :meth:`blocks` hands the output's finished rows to a third party
    meanwhile (a writer); :meth:`result` waits and gives ``(output, reduction dB, true
    peak dBTP, segment energies or None)``, the same figures to the bit as measuring the
    output afterwards (a test checks the true peak).
    """

    def __init__(self, x: np.ndarray, sample_rate: int, master: Master, *,
                 in_place: bool = False) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from vocalmix.core.limiter import limit_min_gain_reading

        self.sample_rate = sample_rate
        self._n = int(np.asarray(x).shape[0])
        self._reading = threading.Event()  # the limiter runs: its output and readiness
        self._out: tuple[np.ndarray, Callable[[int], None]] | None = None
        self._result: tuple[np.ndarray, float, float, np.ndarray | None] | None = None
        self._meter: TruePeakMeter | None = None  # the output's true peak, as it is read
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vocalmix-master")
        self._run = self._pool.submit(limit_min_gain_reading, x, sample_rate, master,
                                      self._read, in_place=in_place)
        self._run.add_done_callback(lambda _f: self._reading.set())

    def _read(self, y: np.ndarray, ready: Callable[[int], None]) -> np.ndarray:
        from vocalmix.core.measure import k_weighted_energies_of_blocks, kw_block_len

        self._out = (y, ready)
        self._reading.set()
        meter = self._meter = TruePeakMeter()

        def metered() -> Iterator[np.ndarray]:
            for b in self._ready_blocks(y, ready, kw_block_len(self.sample_rate)):
                meter.add(b)
                yield b

        return k_weighted_energies_of_blocks(metered(), self.sample_rate)

    def _ready_blocks(self, y: np.ndarray, ready: Callable[[int], None], block: int
                      ) -> Iterator[np.ndarray]:
        for i in range(0, self._n, block):
            ready(min(self._n, i + block))
            yield y[i : i + block]

    def blocks(self, block: int) -> Iterator[np.ndarray]:
        """The output's consecutive rows, ``block`` at a time, each once it is final (an
        error of the limiter is raised here)."""
        self._reading.wait()
        if self._out is not None:
            y, ready = self._out
        else:  # nothing to limit (or the limiter failed before its first row)
            y = self._run.result()[0]

            def ready(_rows: int) -> None:
                return None
        return self._ready_blocks(y, ready, block)

    def result(self) -> tuple[np.ndarray, float, float, np.ndarray | None]:
        """``(output, reduction dB, true peak dBTP, energies)`` once the limiter and the
        K-weighting have ended (the energies ``None`` when the limiter changed nothing)."""
        if self._result is None:
            try:
                y, gmin, e = self._run.result()
            finally:
                self._pool.shutdown()
            tp = (self._meter.dbtp() if gmin is not None and self._meter is not None
                  else true_peak_dbtp(y, self.sample_rate))
            self._result = (y, _reduction_db(gmin), tp, e if gmin is not None else None)
        return self._result

    def close(self) -> None:
        """Wait for the helper threads to end, whatever happened to them (for a caller
        that gave up on the result)."""
        self._pool.shutdown(wait=True)


def master_loudness(x: np.ndarray, sample_rate: int, master: Master, *,
                    in_place: bool = False) -> tuple[np.ndarray, float, float]:
    """:func:`master_stage` for a caller that needs the output's integrated loudness
    (LUFS, BS.1770-4) instead of its true peak: ``(output, reduction dB, loudness)``."""
    from vocalmix.core.measure import BlockStats, integrated_loudness_of

    y, reduction, _tp, energy = master_stage_measured(x, sample_rate, master,
                                                      in_place=in_place, true_peak=False,
                                                      energy="always")
    assert energy is not None  # always measured
    return y, reduction, integrated_loudness_of(BlockStats.of_energy(energy, sample_rate))


def deesser_stage(x: np.ndarray, sample_rate: int, deesser: DeEsser) -> np.ndarray:
    """The split-band de-esser (:class:`vocalmix.core.deesser.DeEsser`); ``x`` itself
    when it is off or has no depth.

    It runs :data:`~vocalmix.core.dsp.FILTER_BLOCK` samples at a time, its state carried
    (its filters, level detector, hold and gain smoother work sample by sample, so the
    output is the same to the bit as one call over the whole signal), into one float32
    output: its float64 band signals then take a few MB instead of several full-length
    copies (about 120 MB each for 3 minutes of stereo). The detector runs a block ahead
    on a helper thread (:meth:`~vocalmix.core.deesser.DeEsser.render`)."""
    stage = _deesser_stage_of(deesser, sample_rate, x.shape[1])
    if stage is None:
        return x
    from vocalmix.core.dsp import FILTER_BLOCK

    return np.asarray(stage.render(x, FILTER_BLOCK))


def _deesser_stage_of(deesser: DeEsser, sample_rate: int, channels: int) -> Any:
    """The streaming de-esser (:class:`vocalmix.core.deesser.DeEsser`) of the settings
    ``deesser`` for ``channels`` channels; ``None`` when it is off or has no depth."""
    if not deesser.enabled or deesser.depth_db == 0.0:
        return None
    from vocalmix.core.deesser import DeEsser as Stage
    from vocalmix.core.deesser import DeEsserSettings

    return Stage(DeEsserSettings(deesser.threshold_db, deesser.freq_hz, deesser.depth_db,
                                 deesser.release_ms), sample_rate, channels)


def sends_wet(dry: np.ndarray, sample_rate: int, chain: VocalChain) -> np.ndarray:
    """The sends' wet signals for a float32 dry vocal: the reverb, plus the delay when it
    is on (:func:`sends_wet_rows`, run to its end)."""
    return _filled(np.shape(dry), lambda out: sends_wet_rows(dry, sample_rate, chain, out))


def sends_wet_rows(dry: np.ndarray, sample_rate: int, chain: VocalChain, out: np.ndarray
                   ) -> Iterator[int]:
    """:func:`sends_wet` rendered into ``out`` (zeros, ``dry``'s shape, float32), yielding
    how many rows of it are final as the reverb renders: a caller on another thread can
    measure the finished rows while the next ones render (:class:`~vocalmix.core.
    parallel.Filling`). The echo of the delay, when it is on, is rendered first and added
    to each range of rows as the reverb finishes it: the same sums as adding it whole."""
    echo = None
    if chain.delay.enabled:
        from vocalmix.core.delay import delay_wet

        echo = delay_wet(dry, sample_rate, chain.delay)
    n = int(np.shape(dry)[0])
    rows = (_reverb_wet_rows(dry, sample_rate, chain.reverb, out) if chain.reverb.enabled
            else iter([n]))
    start = 0
    for done in rows:
        if echo is not None:
            out[start:done] += echo[start:done]
        start = done
        yield done


@dataclass(frozen=True)
class Rendered:
    """The result of a render.

    Attributes:
        mix: the master output, float32 ``(n, 2)``.
        vocal: the vocal exactly as it sits in the mix (sends included), pre-master.
        vocal_dry: the vocal after EQ, de-esser, compressor and gain, before the sends.
        backing: the backing after its gain, pre-master.
        sample_rate: Hz.
        master_gain_reduction_db: largest gain reduction of the master, dB.
        mix_true_peak_dbtp: true peak of ``mix``, dBTP.
    """

    mix: np.ndarray
    vocal: np.ndarray
    vocal_dry: np.ndarray
    backing: np.ndarray
    sample_rate: int
    master_gain_reduction_db: float
    mix_true_peak_dbtp: float
    #: ``mix``'s K-weighted 100 ms segment energies when the master measured them
    #: (:func:`master_stage_measured`), else ``None``
    mix_energy: np.ndarray | None = None
    #: ``False``: the chain had no sends, so ``vocal`` holds ``vocal_dry``'s samples
    #: (:attr:`VocalParts.sends`)
    sends: bool = True

    @property
    def premaster(self) -> np.ndarray:
        """The sum of the vocal and backing stems, before the master gain and limiter."""
        return self.vocal + self.backing


@dataclass(frozen=True)
class VocalParts:
    """The vocal chain at 0 dB vocal gain: ``dry`` (after EQ, de-esser, compressor and
    make-up) and ``wet`` (the sends' output for that dry signal). ``sends=False`` says the
    chain has no sends (:func:`has_sends`), so ``wet`` is zeros and the vocal in the mix
    holds the dry vocal's samples: a render's figures then measure it once."""

    dry: np.ndarray
    wet: np.ndarray
    sends: bool = True


def has_sends(chain: VocalChain) -> bool:
    """Whether the vocal chain feeds any send (the reverb or the delay)."""
    return chain.reverb.enabled or chain.delay.enabled


def vocal_inserts(x: np.ndarray, sample_rate: int, chain: VocalChain) -> np.ndarray:
    """The vocal's inserts up to the gain stage: EQ, de-esser, compressor and make-up.

    When both an EQ and a compressor run, they run on two threads (:func:`_pipelined`):
    the same samples in about the time of the longer part, where one after the other
    took both (a 3-minute render spends about 0.08-0.2 s in each)."""
    x = np.asarray(x)
    board = compressor_board(chain.compressor)
    sos = eq_sos(chain.highpass, chain.eq_bands, sample_rate)
    if (board is not None and sos is not None and x.ndim == 2 and x.shape[0] > 0
            and (x.flags.writeable or not len(EQ_HANDOFF))):
        return _pipelined(x, sample_rate, chain, sos, board)
    y = deesser_stage(eq_stage(x, sample_rate, chain.highpass, chain.eq_bands), sample_rate,
                      chain.deesser)
    return np.asarray(compressor_stage(y, sample_rate, chain.compressor), dtype=np.float32)


def _pipelined(x: np.ndarray, sample_rate: int, chain: VocalChain, sos: np.ndarray,
               board: pb.Pedalboard) -> np.ndarray:
    """:func:`vocal_inserts` of a chain with an EQ (``sos``, :func:`~vocalmix.core.dsp.
    eq_sos`) and a compressor (``board``, :func:`compressor_board`), on two threads.

    A helper thread filters ``x`` :data:`~vocalmix.core.dsp.FILTER_BLOCK` rows at a time
    (the filter state carried, each block rounded to float32 as :func:`~vocalmix.core.dsp.
    eq_stage` rounds it) and de-esses each filtered block as :func:`deesser_stage` does;
    this thread renders the compressor on each :data:`~vocalmix.core.dsp.BOARD_BLOCK` rows
    of that as soon as they are final, as :func:`~vocalmix.core.dsp.run_board` does. Every
    stage sees the same blocks in the same order with its state carried, so the output is
    the same to the bit (``tests/test_dsp_speed.py``). Whether the compressor renders one
    of two equal channels for both, or each of two different ones on a thread of its own
    (:func:`~vocalmix.core.dsp.channel_boards`), is read on ``x``: equal input channels
    come out of the EQ and the de-esser equal, and either way each channel's samples are
    those the stereo render gives."""
    from vocalmix.core.dsp import FILTER_BLOCK, channel_boards, row_blocks, sosfilt_stream
    from vocalmix.core.parallel import Filling, beside

    pre = np.empty(x.shape, np.float32)  # the compressor's input

    def pre_rows() -> Iterator[int]:
        stage = _deesser_stage_of(chain.deesser, sample_rate, x.shape[1])
        i = 0
        for yb in sosfilt_stream(sos, row_blocks(x, FILTER_BLOCK), np.float64):
            k = yb.shape[0]
            if stage is None:
                pre[i : i + k] = yb  # (rounded to float32 as eq_stage's output is)
            else:
                pre[i : i + k] = stage.process(yb.astype(np.float32))
            i += k
            yield i

    def compress(b: pb.Pedalboard, src: np.ndarray, dst: np.ndarray, twin: bool) -> None:
        for _done in board_rows(b, src, sample_rate, dst, twin=twin, ready=filling.wait):
            pass

    filling = Filling(pre, pre_rows)
    try:
        out = np.empty(x.shape, np.float32)
        # a stereo vocal whose channels differ: each channel through a compressor of its
        # own on a thread of its own (channel_boards; read on x, as the twin case is)
        twin = twin_render(board, x)
        boards = None if twin else channel_boards(board, x)
        if boards is None:
            compress(board, pre, out, twin)
        else:
            beside(lambda: compress(boards[1], pre[:, 1:], out[:, 1:], False),
                   lambda: compress(boards[0], pre[:, :1], out[:, :1], False))
        filling.result()
    except BaseException:
        filling.cancel()
        raise
    comp = chain.compressor
    if comp.enabled and comp.makeup_db != 0.0:
        out *= np.float32(db_to_gain(comp.makeup_db))  # as compressor_stage scales it
    return out


def vocal_parts(x: np.ndarray, sample_rate: int, chain: VocalChain) -> VocalParts:
    """Render the vocal chain up to the gain stage, and its sends, at unity gain (the
    synthetic reverb's response made beside the inserts, :func:`reverb_ir_ahead`)."""
    ir = reverb_ir_ahead(chain.reverb, sample_rate)
    dry = vocal_inserts(x, sample_rate, chain)
    if ir is not None:
        ir.result()
    return VocalParts(dry=dry, wet=sends_wet(dry, sample_rate, chain), sends=has_sends(chain))


def reverb_ir_ahead(reverb: Reverb, sample_rate: int) -> Future[np.ndarray] | None:
    """The synthetic reverb's impulse response (:func:`vocalmix.core.reverb.
    render_synthetic_ir`, remembered for its settings) made on a helper thread, for a
    caller that renders the send after other work: the send then finds it made. It takes
    about 0.08 s to synthesise (1.6 s of decay at 44.1 kHz), which the send otherwise
    waited for at its start, on the critical path of a mix. ``None`` for a reverb that
    needs none (off, or pedalboard's). Wait for the result before the send starts, or
    both make it."""
    if not reverb.enabled or reverb.type != "synthetic":
        return None
    from concurrent.futures import ThreadPoolExecutor

    from vocalmix.core.reverb import render_synthetic_ir

    pool = ThreadPoolExecutor(1, thread_name_prefix="vocalmix-ir")
    try:
        return pool.submit(render_synthetic_ir, reverb.decay_s, reverb.band_decay_ratios,
                           reverb.width, sample_rate)
    finally:
        pool.shutdown(wait=False)


def parts_owned(parts: VocalParts, *inputs: np.ndarray) -> bool:
    """Whether ``parts``' two arrays are writeable and share no memory with each other or
    with any of ``inputs`` (so :func:`assemble` may scale them in place)."""
    arrays = (parts.dry, parts.wet)
    return (all(isinstance(a, np.ndarray) and a.flags.writeable for a in arrays)
            and not np.may_share_memory(parts.dry, parts.wet)
            and not any(np.may_share_memory(a, x) for a in arrays for x in inputs))


def backing_at_gain(backing: np.ndarray, gain_db: float) -> np.ndarray:
    """The backing times its gain (dB) as a float32 factor; a float32 backing at 0 dB is
    returned itself (times 1.0 would be an identical copy)."""
    if gain_db == 0.0 and backing.dtype == np.float32:
        return backing
    return backing * np.float32(db_to_gain(gain_db))


def assemble(
    parts: VocalParts, backing: np.ndarray, sample_rate: int, params: MixParams,
    *, in_place: bool = False,
) -> Rendered:
    """Apply the vocal and backing gains to rendered parts, sum, and master.

    The vocal gain multiplies the dry vocal and its sends alike. The sends are linear,
    so this equals gain-then-sends (the chain's order) while letting the resolvers
    render the sends once at unity gain and reuse them. The master gain multiplies the
    sum before the limiter.

    ``in_place``: ``parts.dry`` and ``parts.wet`` are scaled in place and become the
    stems ``vocal_dry`` and ``vocal`` (the same samples, two full-length arrays fewer);
    only for parts the caller owns and no longer needs (:func:`parts_owned`).
    """
    return assemble_pending(parts, backing, sample_rate, params, in_place=in_place).result()


def assemble_pending(
    parts: VocalParts, backing: np.ndarray, sample_rate: int, params: MixParams,
    *, in_place: bool = False,
) -> PendingRender:
    """:func:`assemble` with its master stage still running (:class:`PendingMaster`):
    the stems are final when this returns, the mix's rows as the limiter finishes them
    (:meth:`PendingRender.mix_blocks`, for a writer), the whole :class:`Rendered` from
    :meth:`PendingRender.result`."""
    g = np.float32(db_to_gain(params.vocal.gain_db))
    b = backing_at_gain(backing, params.backing.gain_db).astype(np.float32, copy=False)
    mg = np.float32(db_to_gain(params.master.gain_db)) if params.master.gain_db != 0.0 else None
    # the arrays the element-wise operations below make, in the types they make them
    dry = parts.dry if in_place else np.empty(parts.dry.shape, np.result_type(parts.dry, g))
    v = parts.wet if in_place else np.empty(parts.wet.shape, np.result_type(parts.wet, g))
    pre = np.empty(np.broadcast_shapes(v.shape, b.shape), np.result_type(v, b))

    def rows(r: slice) -> None:
        np.multiply(parts.dry[r], g, out=dry[r])
        np.multiply(parts.wet[r], g, out=v[r])
        v[r] += dry[r]  # in place: the same sum as dry + wet * g, one full-length array fewer
        np.add(v[r], b[r], out=pre[r])
        if mg is not None:
            pre[r] *= mg

    n = pre.shape[0]
    if parts.dry.shape[0] == parts.wet.shape[0] == b.shape[0] == n:
        # the rows split between two threads (numpy lets go of the GIL): the same samples
        # in about half the time of five passes over full-length arrays (0.06-0.08 s for
        # 3 minutes)
        from vocalmix.core.parallel import beside

        beside(lambda: rows(slice(n // 2, n)), lambda: rows(slice(0, n // 2)))
    else:
        rows(slice(None))
    # the mix's loudness figures are measured as the limiter goes when it changed the
    # signal (otherwise they are the pre-master sum's, which the resolver measured)
    master = PendingMaster(pre, sample_rate, params.master, in_place=True)
    return PendingRender(master, v, dry, b, sample_rate, sends=parts.sends)


class PendingRender:
    """A render whose stems are final and whose master stage is running (see
    :func:`assemble_pending`)."""

    def __init__(self, master: PendingMaster, vocal: np.ndarray, vocal_dry: np.ndarray,
                 backing: np.ndarray, sample_rate: int, *, sends: bool = True) -> None:
        self.master = master
        self.vocal, self.vocal_dry, self.backing = vocal, vocal_dry, backing
        self.sample_rate = sample_rate
        self.sends = sends

    def mix_blocks(self, block: int) -> Iterator[np.ndarray]:
        """The mix's consecutive rows, ``block`` at a time, each once it is final."""
        return self.master.blocks(block)

    def result(self) -> Rendered:
        """The whole render, once the master stage has ended."""
        mix, reduction, tp, energy = self.master.result()
        return Rendered(mix, self.vocal, self.vocal_dry, self.backing, self.sample_rate,
                        reduction, tp, mix_energy=energy, sends=self.sends)


def premaster_sum(parts: VocalParts, backing: np.ndarray, vocal_gain_db: float) -> np.ndarray:
    """The pre-master sum :func:`assemble` makes (``Rendered.premaster``: the dry vocal and
    its sends at ``vocal_gain_db``, plus ``backing``, already at its own gain), to the
    bit, without keeping the vocal's stems: ``(dry * g + wet * g) + backing`` summed in
    place, the sends scaled a block at a time (the same products and sums; addition is
    commutative in floating point, so ``dry * g + wet * g`` equals assemble's
    ``wet * g + dry * g``). Float32, a new array."""
    from vocalmix.core.dsp import FILTER_BLOCK

    g = np.float32(db_to_gain(vocal_gain_db))
    pre = parts.dry * g
    for i in range(0, len(pre), FILTER_BLOCK):
        pre[i : i + FILTER_BLOCK] += parts.wet[i : i + FILTER_BLOCK] * g
    pre += backing.astype(np.float32, copy=False)
    return pre


def premaster_peaks(parts: VocalParts, backing: np.ndarray, vocal_gain_db: float,
                    segment_len: int, *, tail: bool = False) -> np.ndarray:
    """The sample peak (linear, over the channels) of each whole ``segment_len`` segment
    of the pre-master sum :func:`premaster_sum` makes, summed a block at a time without
    a full-length array (for the master's headroom,
    :func:`~vocalmix.core.resolve.resolve_master_headroom`, which reads whole segments
    as the loudness does). ``tail``: one more value, the peak of the samples after the
    last whole segment (0 when there are none), so that every sample is counted."""
    from vocalmix.core.dsp import FILTER_BLOCK

    g = np.float32(db_to_gain(vocal_gain_db))
    total = parts.dry.shape[0]
    n = total // segment_len
    out = np.zeros(n + 1 if tail else n, np.float32)
    step = max(1, FILTER_BLOCK // segment_len) * segment_len

    def peak_sum(i: int, j: int) -> np.ndarray:
        x = parts.dry[i:j] * g
        x += parts.wet[i:j] * g
        x += backing[i:j]
        return np.abs(x, out=x)

    for i in range(0, n * segment_len, step):
        j = min(i + step, n * segment_len)
        out[i // segment_len : j // segment_len] = peak_sum(i, j).reshape(
            (j - i) // segment_len, -1).max(axis=1)
    if tail and total > n * segment_len:
        out[n] = peak_sum(n * segment_len, total).max()
    return out


def moved_take(vocal: np.ndarray, sample_rate: int, offset_ms: float) -> np.ndarray:
    """The take ``(n, channels)`` at ``sample_rate`` Hz moved by ``offset_ms`` (ms, whole
    samples; :attr:`vocalmix.core.params.VocalChain.offset_ms`) within its length: the
    chain's first stage, before the estimators too. ``vocal`` itself at 0 ms."""
    from vocalmix.core.dsp import offset_samples, shifted_rows

    return shifted_rows(vocal, offset_samples(offset_ms, sample_rate))


def render(vocal: np.ndarray, backing: np.ndarray, sample_rate: int, params: MixParams) -> Rendered:
    """Render a mix of two float32 ``(n, 2)`` signals of one rate and length, at the
    document's ``amount`` (:func:`vocalmix.core.amount.effective`)."""
    return render_pending(vocal, backing, sample_rate, params).result()


def render_pending(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                   params: MixParams, *, remember_parts: bool = False) -> PendingRender:
    """:func:`render` with its master stage still running (see :func:`assemble_pending`).

    ``remember_parts``: keep the vocal chain's output at unity gain (:class:`VocalParts`)
    for the next render of the same read-only take with the same chain but for its gain
    (:func:`remembered_parts`): an editor's gain, backing and master edits then render
    only the sum and the master."""
    from vocalmix.core.amount import effective

    if vocal.shape != backing.shape:
        raise ValueError(f"vocal {vocal.shape} and backing {backing.shape} differ in shape")
    p = effective(params)
    if remember_parts:
        parts = remembered_parts(vocal, sample_rate, p.vocal)
    else:
        vocal = moved_take(vocal, sample_rate, p.vocal.offset_ms)
        parts = vocal_parts(vocal, sample_rate, p.vocal)
    return assemble_pending(parts, backing, sample_rate, p,
                            in_place=parts_owned(parts, vocal, backing))


#: the vocal parts of the last take and chain :func:`remembered_parts` rendered
_PARTS = LruCache(1)
#: the most an editor's render or resolve keeps of what it made for the next one, bytes,
#: per item (its vocal parts, dry and wet together; its compressor's resolution; the
#: page's decoded inputs): a 6-minute stereo take at 44.1 kHz
KEEP_MAX_BYTES = 256 << 20


def parts_key(take: np.ndarray, sample_rate: int, chain: VocalChain) -> tuple | None:
    """What the vocal parts of ``take`` through ``chain`` are remembered under (the take's
    content, the rate, the chain but for its gain), or ``None`` for a take that is not
    read-only or whose parts would pass :data:`KEEP_MAX_BYTES`."""
    take = np.asarray(take)
    if take.flags.writeable or 2 * take.size * 4 > KEEP_MAX_BYTES:  # (two float32 arrays)
        return None
    return content_key(take, sample_rate, "vocal parts", replace(chain, gain_db=0.0))


def kept_parts(key: tuple | None) -> VocalParts | None:
    """The vocal parts remembered under ``key`` (:func:`parts_key`), if they are."""
    if key is None:
        return None
    out: VocalParts | None = _PARTS.get(key)
    return out


def keep_parts(key: tuple | None, parts: VocalParts) -> VocalParts:
    """Remember ``parts`` under ``key`` (:func:`parts_key`; nothing for ``None``), made
    read-only; returns them."""
    if key is not None:
        _PARTS.put(key, _read_only(parts))
    return parts


def remembered_parts(take: np.ndarray, sample_rate: int, chain: VocalChain) -> VocalParts:
    """:func:`vocal_parts` of the take moved by ``chain.offset_ms`` (what a render makes),
    remembered for a read-only ``take`` (by content, :func:`~vocalmix.core.dsp.
    content_key`) and the chain but for its gain, which :func:`assemble` applies: read-only
    parts, the same samples. Parts larger than :data:`KEEP_MAX_BYTES` are not kept."""
    def made() -> VocalParts:
        return vocal_parts(moved_take(take, sample_rate, chain.offset_ms), sample_rate, chain)

    key = parts_key(take, sample_rate, chain)
    if key is None:
        return made()
    out: VocalParts = _PARTS.get_or_make(key, lambda: _read_only(made()))
    return out


def _read_only(parts: VocalParts) -> VocalParts:
    """``parts`` with both arrays made read-only."""
    for a in (parts.dry, parts.wet):
        a.flags.writeable = False
    return parts


def forget_parts() -> None:
    """Drop the remembered vocal parts (:func:`remembered_parts`)."""
    _PARTS.clear()
