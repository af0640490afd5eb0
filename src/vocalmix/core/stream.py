"""Live mixing: the render chain as stateful stages, run block by block.

:class:`LiveMixer` mixes a vocal and a backing the way :func:`vocalmix.core.render.render`
does, but one block at a time, as the singer sings::

    mixer = LiveMixer(params, sample_rate=48000, block_size=128)
    out = mixer.process(vocal_block, backing_block)   # float32 (n, 2) each, n <= 128

Every stage keeps its state (filter memories, compressor envelope, reverb tails, the
limiter's look-ahead) from one block to the next, so the blocks join up exactly: the
output is the offline render of the same signals delayed by :attr:`LiveMixer.latency_samples`
(the master limiter's look-ahead, 240 samples = 5 ms at 48 kHz by default), within
float rounding (about -120 dBFS; tests hold it to -90 dBFS on real songs), for any block
size, odd ones included.

Chain (the order of :mod:`vocalmix.core.render`)::

    vocal -> inserts: high-pass + EQ bands (float64) | compressor | make-up gain
          -> fader (vocal gain; may ramp, see set_vocal_gain)
          -> dry + sends: reverb (pre-delay, reverb, wet level)
    backing -> gain
    vocal + backing -> master (true-peak limiter, the only stage with latency)

Stages
    A stage is an object with ``process(x) -> y`` taking and returning ``(channels, n)``
    float32 blocks (the layout pedalboard uses) with zero latency; it may return a view of
    a buffer it reuses on the next call. :class:`PedalboardStage` runs pedalboard plugins
    (the compressor, freeverb) with ``reset=False`` after the first block (block-wise output
    equals the whole-signal output bit for bit; tested); :class:`BiquadStage` is the EQ
    section in float64 (pedalboard's float32 filters round differently when the signal is
    cut into blocks: -70 dB for a resonant low band); :class:`GainStage` multiplies;
    :class:`DelayStage` delays
    by whole samples; :class:`ConvolutionStage` is the ``synthetic`` reverb's zero-latency
    partitioned convolution (:mod:`vocalmix.core.convolve`), with the pre-delay folded into
    the impulse response as leading zeros, which cost nothing.

Adding a stage (e.g. a de-esser insert or a delay send)
    1. Add its offline function to :mod:`vocalmix.core.render` (the reference) and its
       params to :mod:`vocalmix.core.params`.
    2. Write a class here with ``process(x) -> y`` as above (state in attributes,
       buffers allocated in ``__init__`` for ``max_block`` samples). A pedalboard plugin
       needs no class: return it wrapped in a :class:`PedalboardStage`.
    3. Return it from :func:`insert_stages` (inserts, in render order) or add a list of
       stages to :func:`send_stages` (each send is a list run in series on the faded dry
       vocal; the sends' outputs are summed onto it).
    4. ``tests/test_live.py`` then checks live against offline for it on real songs.
    Stages must be causal with zero latency (a look-ahead would have to be reported and
    the dry path delayed to match; only the master has one).

Allocation
    Buffers are allocated when the mixer is built (:attr:`LiveMixer.block_size` samples
    each). Per block, the numpy code writes into them (``out=``); pedalboard returns a new
    block-sized array per plugin call, which Python frees straight away, so memory stays
    flat after warm-up (measured with tracemalloc in the tests).

Automation
    :meth:`LiveMixer.set_vocal_gain` ramps the fader at a bounded rate (a gain ride) and
    :meth:`LiveMixer.change_inserts` swaps the EQ and compressor settings with a warm-up
    and a crossfade. Each call is recorded with the sample it took effect at
    (:attr:`LiveMixer.events`), so :func:`replay` renders the same output offline.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pedalboard as pb

from vocalmix.core import kernels
from vocalmix.core.amount import effective, effective_vocal
from vocalmix.core.dsp import eq_sos, flush_denormals, offset_samples
from vocalmix.core.errors import AudioLevelError, ChannelLayoutError, ParamsError
from vocalmix.core.limiter import StreamingLimiter
from vocalmix.core.params import MixParams, VocalChain, clip
from vocalmix.core.render import db_to_gain

CHANNELS = 2


# --- stages -----------------------------------------------------------------------------


class Stage:
    """A causal, zero-latency processor of ``(channels, n)`` float32 blocks."""

    def process(self, x: np.ndarray) -> np.ndarray:
        """Process one block; the result may be a view valid until the next call."""
        raise NotImplementedError


class PedalboardStage(Stage):
    """pedalboard plugins in series, their state kept from block to block.

    pedalboard prepares its plugins for the size of the first block it sees and resets
    them when a larger one comes, so the board is primed with a silent block of the
    largest size (at least 3 samples, so the channel axis is unambiguous) before use;
    the first real block then runs with ``reset=True`` (as the offline render does) and
    every later one with ``reset=False``.
    """

    def __init__(self, plugins: list[pb.Plugin], sample_rate: int, max_block: int) -> None:
        self.board = pb.Pedalboard(plugins)
        self.sample_rate = float(sample_rate)
        self.board(np.zeros((CHANNELS, max(max_block, 3)), np.float32), self.sample_rate,
                   reset=True)
        self._first = True

    def process(self, x: np.ndarray) -> np.ndarray:
        y = self.board(x, self.sample_rate, reset=self._first)
        self._first = False
        return y


class BiquadStage(Stage):
    """Second-order sections in float64 with their state kept across blocks: the EQ
    section of :func:`vocalmix.core.render.eq_stage` (``sosfilt`` over the whole signal),
    computed by the same loop sample for sample, so equal to it whatever the blocks.

    ``signals`` rows are filtered (2 for a stereo stage; the live gain ride K-weights four
    at once through :meth:`input` and :meth:`filter_input`, in float64, with no copy).
    """

    def __init__(self, sos: np.ndarray, max_block: int, signals: int = CHANNELS) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        # scipy's loop without sosfilt's argument handling (about 90 us per call, the loop
        # itself 7 us for a 128-sample block); None: sosfilt itself, the same arithmetic
        self.kernel = kernels.sosfilt_kernel()
        self.signals = signals
        self._zi = np.zeros((signals, self.sos.shape[0], 2))  # (signals, sections, 2)
        self._flat = np.zeros(signals * max_block)  # a C-contiguous (signals, n) for any n
        self._y = np.zeros((signals, max_block), np.float32)

    def input(self, n: int) -> np.ndarray:
        """The float64 ``(signals, n)`` array the next :meth:`filter_input` filters."""
        return self._flat[: self.signals * n].reshape(self.signals, n)

    def filter_input(self, n: int) -> np.ndarray:
        """Filter :meth:`input` of ``n`` samples in place and return it (float64)."""
        y = self.input(n)
        with flush_denormals():  # as eq_stage runs it
            if self.kernel is not None:
                self.kernel(self.sos, y, self._zi)  # in place, state updated in place
            else:
                from scipy.signal import sosfilt

                out, zf = sosfilt(self.sos, y, axis=1, zi=self._zi.transpose(1, 0, 2))
                y[:] = out
                self._zi[:] = zf.transpose(1, 0, 2)
        return y

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        self.input(n)[:] = x
        o = self._y[:, :n]
        np.copyto(o, self.filter_input(n), casting="same_kind")
        return o


class GainStage(Stage):
    """A fixed gain (dB), applied in float32 as the offline render does."""

    def __init__(self, gain_db: float, max_block: int) -> None:
        self.gain = np.float32(db_to_gain(gain_db))
        self._y = np.zeros((CHANNELS, max_block), np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        return np.multiply(x, self.gain, out=self._y[:, : x.shape[1]])


class DelayStage(Stage):
    """A delay of ``samples`` whole samples (silence first)."""

    def __init__(self, samples: int, max_block: int) -> None:
        from vocalmix.core.convolve import _Ring

        self.samples = samples
        self._ring = _Ring(CHANNELS, 1 << math.ceil(math.log2(samples + max_block + 1)))
        self._t = 0
        self._y = np.zeros((CHANNELS, max_block), np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        self._ring.write(self._t, x)
        y = self._y[:, :n]
        self._ring.read(self._t - self.samples, y)
        self._t += n
        return y


class ConvolutionStage(Stage):
    """Convolution with an impulse response ``(taps, 2)`` with no latency, then a gain
    (dB) applied before the output is rounded to float32 (one pass, not a further stage)."""

    def __init__(self, ir: np.ndarray, max_block: int, gain_db: float = 0.0) -> None:
        from vocalmix.core.convolve import PartitionedConvolver

        self.conv = PartitionedConvolver(ir, max_block, db_to_gain(gain_db))

    def process(self, x: np.ndarray) -> np.ndarray:
        return self.conv.process(x)


def _chain(stages: list[Stage], x: np.ndarray) -> np.ndarray:
    for s in stages:
        x = s.process(x)
    return x


# --- the vocal chain as stages ------------------------------------------------------------


class RowsStage(Stage):
    """A stage of :mod:`vocalmix.core` that takes ``(n, channels)`` blocks with its own
    state (the de-esser, the delay line), run on this module's ``(channels, n)`` blocks."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def process(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.processor.process(x.T).T)


def insert_stages(chain: VocalChain, sample_rate: int, max_block: int) -> list[Stage]:
    """The vocal's inserts in render order: high-pass and EQ bands (skipped when flat),
    de-esser (skipped when off), compressor (skipped when off or at ratio 1) and its
    make-up gain; exactly what :func:`vocalmix.core.render.vocal_inserts` runs."""
    stages: list[Stage] = []
    sos = eq_sos(chain.highpass, chain.eq_bands, sample_rate)
    if sos is not None:
        stages.append(BiquadStage(sos, max_block))
    de = chain.deesser
    if de.enabled and de.depth_db != 0.0:
        from vocalmix.core.deesser import DeEsser, DeEsserSettings

        stages.append(RowsStage(DeEsser(DeEsserSettings(
            de.threshold_db, de.freq_hz, de.depth_db, de.release_ms), sample_rate, CHANNELS)))
    comp = chain.compressor
    if comp.enabled and comp.ratio != 1.0:
        stages.append(PedalboardStage(
            [pb.Compressor(threshold_db=comp.threshold_db, ratio=comp.ratio,
                           attack_ms=comp.attack_ms, release_ms=comp.release_ms)],
            sample_rate, max_block))
    if comp.enabled and comp.makeup_db != 0.0:
        stages.append(GainStage(comp.makeup_db, max_block))
    return stages


def send_stages(chain: VocalChain, sample_rate: int, max_block: int) -> list[list[Stage]]:
    """The vocal's sends, each a list of stages fed with the faded dry vocal: the reverb
    (pre-delay, reverb, wet level), as :func:`vocalmix.core.render.reverb_wet`, and the
    delay (:class:`vocalmix.core.delay.DelayLine`) when it is on."""
    sends = _reverb_send(chain, sample_rate, max_block)
    if chain.delay.enabled:
        from vocalmix.core.delay import DelayLine

        sends.append([RowsStage(DelayLine(chain.delay, sample_rate, CHANNELS))])
    return sends


def _reverb_send(chain: VocalChain, sample_rate: int, max_block: int) -> list[list[Stage]]:
    rv = chain.reverb
    if not rv.enabled:
        return []
    from vocalmix.core.reverb import wet_gain_db

    d = int(round(rv.pre_delay_ms * 1e-3 * sample_rate))
    wet_db = wet_gain_db(rv, sample_rate)
    send: list[Stage] = []
    if rv.type == "synthetic":
        from vocalmix.core.reverb import render_synthetic_ir

        h = render_synthetic_ir(rv.decay_s, rv.band_decay_ratios, rv.width, sample_rate)
        ir = np.zeros((d + h.shape[0], CHANNELS), np.float32)
        ir[d:] = h
        send.append(ConvolutionStage(ir, max_block, wet_db))  # the wet gain in its last pass
    else:
        if d:
            send.append(DelayStage(d, max_block))
        send.append(PedalboardStage(
            [pb.Reverb(room_size=rv.room_size, damping=rv.damping, wet_level=1.0,
                       dry_level=0.0, width=rv.width)], sample_rate, max_block))
        send.append(GainStage(wet_db, max_block))
    return [send]


# --- the fader: a gain that ramps at a bounded rate ---------------------------------------


class Fader:
    """The vocal gain, per sample: constant, or moving towards a target at a set rate.

    A ramp is linear in dB: each sample moves at most ``rate_db_per_s / sample_rate`` dB
    towards the target and stops on it exactly. A constant gain is applied as the offline
    render applies ``vocal.gain_db`` (one float32 factor), bit for bit.
    """

    def __init__(self, gain_db: float, sample_rate: int, max_block: int) -> None:
        self.sample_rate = sample_rate
        self.current_db = float(gain_db)
        self.target_db = float(gain_db)
        self.step_db = 0.0
        self._g = np.float32(db_to_gain(gain_db))
        self._ramp = np.arange(1, max_block + 1, dtype=np.float64)
        self._db = np.zeros(max_block)
        self._curve = np.zeros(max_block, np.float32)
        self._y = np.zeros((CHANNELS, max_block), np.float32)
        self.last_db = np.zeros(max_block)  #: the gain (dB) of each sample of the last block
        self.last_constant = True  #: whether the last block had one gain throughout

    def set_target(self, gain_db: float, rate_db_per_s: float | None) -> None:
        """Move towards ``gain_db`` at ``rate_db_per_s`` (``None``: at once)."""
        self.target_db = float(gain_db)
        if rate_db_per_s is None:
            self.current_db = self.target_db
            self._g = np.float32(db_to_gain(self.target_db))
            self.step_db = 0.0
        else:
            self.step_db = abs(float(rate_db_per_s)) / self.sample_rate

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        y = self._y[:, :n]
        if self.current_db == self.target_db:
            self.last_db[:n] = self.current_db
            self.last_constant = True
            return np.multiply(x, self._g, out=y)
        self.last_constant = False
        db = self._db[:n]
        np.multiply(self._ramp[:n], self.step_db, out=db)
        if self.target_db > self.current_db:
            db += self.current_db
            np.minimum(db, self.target_db, out=db)
        else:
            np.subtract(self.current_db, db, out=db)
            np.maximum(db, self.target_db, out=db)
        self.last_db[:n] = db
        self.current_db = float(db[n - 1])
        if self.current_db == self.target_db:
            self._g = np.float32(db_to_gain(self.target_db))
        c = self._curve[:n]
        np.multiply(db, math.log(10.0) / 20.0, out=db)
        np.exp(db, out=db)
        c[:] = db
        return np.multiply(x, c, out=y)


# --- inserts with a crossfade ---------------------------------------------------------------


@dataclass
class _Swap:
    """A pending change of inserts: the new ones run alongside from ``start``, are faded
    in over ``fade`` samples from ``start + warmup``, then replace the old ones."""

    stages: list[Stage]
    chain: VocalChain
    start: int
    warmup: int
    fade: int


# --- the mixer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stems:
    """One block of a live mix and its stems, each float32 ``(n, 2)``, all delayed by the
    mixer's latency so that they line up with the mix.

    Attributes:
        mix: the master output.
        vocal: the vocal as it sits in the mix (sends included), pre-master.
        vocal_dry: the vocal after inserts and fader, before the sends.
        backing: the backing after its gain, pre-master.
        gain_reduction_db: the limiter's largest gain reduction in this block, dB.
    """

    mix: np.ndarray
    vocal: np.ndarray
    vocal_dry: np.ndarray
    backing: np.ndarray
    gain_reduction_db: float


@dataclass(frozen=True)
class Event:
    """An automation change and the sample (since the start) it took effect at.

    ``kind`` is ``"gain"`` (``value``: ``{"gain_db", "rate_db_per_s"}``) or ``"inserts"``
    (``value``: ``{"vocal": <VocalChain as dict>, "warmup_samples", "fade_samples"}``).
    """

    sample: int
    kind: str
    value: dict[str, Any] = field(default_factory=dict)


def _as_params(params: MixParams | dict | str | os.PathLike[str]) -> MixParams:
    if isinstance(params, MixParams):
        return params
    if isinstance(params, dict):
        return MixParams.from_dict(params)
    if isinstance(params, (str, os.PathLike)):
        from vocalmix.core.audio import read_params

        return read_params(params)
    raise ParamsError(f"params must be a MixParams, a dict or a path, not {type(params).__name__}")


def silence_nonfinite(x: np.ndarray) -> int:
    """Put silence, in place, in the NaN or infinite samples of ``x``; returns how many
    there were. The check is one sum, which such a sample makes non-finite, so a clean
    block costs no more than that."""
    if math.isfinite(float(x.sum())):
        return 0
    bad = ~np.isfinite(x)
    x[bad] = 0.0
    return int(np.count_nonzero(bad))


class LiveMixer:
    """Mix a vocal into a backing block by block (see the module doc).

    Args:
        params: a :class:`MixParams`, its dict, or the path of a params JSON document.
        sample_rate: Hz.
        block_size: the largest block :meth:`process` will be given, samples (any
            smaller block, odd sizes included, is fine too).
        stems: also keep the stems for :meth:`process_stems` (three more delay lines).

    Attributes:
        latency_samples: the output is the input of this many samples earlier (the
            master limiter's look-ahead, and for a take moved earlier by
            ``vocal.offset_ms`` that much more: the backing waits for the vocal, whose
            first samples, which the offline render cuts, are silenced).
        limiter_latency_samples: the limiter's share of it.
        samples_processed: input samples consumed so far.
        events: the automation applied so far (see :func:`replay`).
        keeps_stems: whether :meth:`process_stems` is available.
        last_vocal, last_backing, last_dry: the pre-master vocal (sends included), backing
            and dry vocal (after the fader, before the sends) of the last block, ``(2, n)``
            float32 views, not delayed (for meters; overwritten by the next block).
        fader: the vocal gain; ``fader.last_db`` holds each sample's gain (dB) of the
            last block.
    """

    def __init__(self, params: MixParams | dict | str | os.PathLike[str], sample_rate: int,
                 block_size: int, *, stems: bool = True) -> None:
        from vocalmix.core.streambuf import History

        self.params = _as_params(params)
        sr = int(sample_rate)
        if sr <= 0:
            raise ParamsError(f"sample rate must be positive, got {sample_rate}")
        if int(block_size) < 1:
            raise ParamsError(f"block size must be at least 1 sample, got {block_size}")
        self.sample_rate = sr
        self.block_size = nb = int(block_size)
        p = effective(self.params)  # the settings at the document's amount, as rendered
        self._inserts = insert_stages(p.vocal, sr, nb)
        self._sends = send_stages(p.vocal, sr, nb)
        self.fader = Fader(p.vocal.gain_db, sr, nb)
        self._backing_gain = np.float32(db_to_gain(p.backing.gain_db))
        self._master_gain = (np.float32(db_to_gain(p.master.gain_db))
                             if p.master.gain_db != 0.0 else None)
        self._limiter = StreamingLimiter(p.master, sr, nb, CHANNELS)
        # the take moved (vocal.offset_ms): later by a delay of the vocal; earlier, which
        # a live input cannot be, by a delay of the backing, so the mix comes out that
        # much later (the output is then the offline mix of latency_samples earlier)
        shift = offset_samples(p.vocal.offset_ms, sr)
        self._vocal_delay = DelayStage(shift, nb) if shift > 0 else None
        self._backing_delay = DelayStage(-shift, nb) if shift < 0 else None
        # the take's first -shift samples are those the offline render cuts: silenced, so
        # that the chain starts on the rest as the offline render does
        self._mute_left = max(0, -shift)
        self.limiter_latency_samples = self._limiter.latency_samples
        self.latency_samples = self._limiter.latency_samples + max(0, -shift)
        #: how late the singer hears their own voice, samples: the limiter's look-ahead,
        #: and a take moved later (``vocal.offset_ms`` positive) that much more; for
        #: monitoring a voice as it is sung, an offset is better left at 0
        self.vocal_latency_samples = self._limiter.latency_samples + max(0, shift)
        #: input samples (of either signal, per channel) that were NaN or infinite and
        #: were mixed as silence, so that one bad sample cannot stick in every filter
        self.nonfinite_samples = 0
        self.samples_processed = 0
        self.events: list[Event] = []
        self._swap: _Swap | None = None
        self._fade = np.zeros(nb, np.float32)
        self._xfade = np.zeros((CHANNELS, nb), np.float32)
        self._v = np.zeros((CHANNELS, nb), np.float32)
        self._b = np.zeros((CHANNELS, nb), np.float32)
        self._vox = np.zeros((CHANNELS, nb), np.float32)
        self._sum = np.zeros((CHANNELS, nb), np.float32)
        self._y = np.zeros((CHANNELS, nb), np.float32)
        self._ramp = np.arange(1, nb + 1, dtype=np.float32)
        self.last_vocal = self._vox[:, :0]
        self.last_backing = self._b[:, :0]
        self.last_dry = self._vox[:, :0]
        self._stems = stems
        self.keeps_stems = stems
        if stems:
            lat = self._limiter.latency_samples  # the stems are the sum's, before the limiter
            self._delays = [History(lat, nb, (CHANNELS,)) for _ in range(3)]
            self._stem_blocks = np.zeros((3, CHANNELS, nb), np.float32)

    # --- automation ---------------------------------------------------------------------

    def set_vocal_gain(self, gain_db: float, rate_db_per_s: float | None = None) -> None:
        """Move the vocal gain to ``gain_db`` from the next block on, at most
        ``rate_db_per_s`` dB per second (``None``: at once). :class:`ParamsError` for a
        gain that is not a number, or a rate that is not a positive number."""
        if not math.isfinite(float(gain_db)):
            raise ParamsError(f"vocal gain must be a number of dB, got {gain_db}")
        if rate_db_per_s is not None and not (math.isfinite(float(rate_db_per_s))
                                              and float(rate_db_per_s) > 0.0):
            raise ParamsError("the gain's rate must be a positive number of dB per second "
                              f"(or None to move at once), got {rate_db_per_s}")
        g = clip(VocalChain, "gain_db", gain_db)
        self.fader.set_target(g, rate_db_per_s)
        self.events.append(Event(self.samples_processed, "gain",
                                 {"gain_db": g, "rate_db_per_s": rate_db_per_s}))

    def change_inserts(self, chain: VocalChain, *, warmup_s: float = 0.5,
                       fade_s: float = 0.1) -> None:
        """Replace the EQ and compressor settings (high-pass, bands, compressor) by those
        of ``chain`` without a click: from the next block the new inserts run alongside
        the old ones for ``warmup_s`` (their filters and envelope settle on the same
        input), then a linear crossfade of ``fade_s`` hands over to them. The fader, the
        sends and the master are unchanged. A change requested while another is under
        way replaces the pending one."""
        warm = max(0, int(round(warmup_s * self.sample_rate)))
        fade = max(1, int(round(fade_s * self.sample_rate)))
        at_amount = effective_vocal(chain, self.params.amount)
        self._swap = _Swap(insert_stages(at_amount, self.sample_rate, self.block_size), chain,
                           self.samples_processed, warm, fade)
        value = {"vocal": _chain_dict(chain), "warmup_samples": warm, "fade_samples": fade}
        self.events.append(Event(self.samples_processed, "inserts", value))

    # --- processing ---------------------------------------------------------------------

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != CHANNELS:
            raise ChannelLayoutError(
                f"{what} block must be float32 (n, 2), got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            # (integer samples would be mixed as values of thousands: full scale is 1.0)
            raise AudioLevelError(
                f"{what} block must be float32 (n, 2) samples within -1 to 1, got "
                f"{x.dtype}; divide 16-bit integers by 32768")
        if x.shape[0] > self.block_size:
            raise ChannelLayoutError(
                f"{what} block of {x.shape[0]} samples exceeds the mixer's block size "
                f"{self.block_size}; build the mixer with a larger block_size")
        return x

    def _inserts_out(self, v: np.ndarray) -> np.ndarray:
        ins = _chain(self._inserts, v)
        sw = self._swap
        if sw is None:
            return ins
        n = v.shape[1]
        new = _chain(sw.stages, v)
        t0 = self.samples_processed - sw.start - sw.warmup  # fade position of sample 0
        if t0 + n <= 0:
            return ins
        f = self._fade[:n]
        np.add(self._ramp[:n], np.float32(t0), out=f)  # fade position of each sample, + 1
        f /= np.float32(sw.fade)
        np.clip(f, 0.0, 1.0, out=f)
        y = self._xfade[:, :n]
        np.subtract(new, ins, out=y)
        y *= f
        y += ins
        if t0 + n >= sw.fade:
            self._inserts = sw.stages
            self.params = replace(self.params, vocal=replace(
                self.params.vocal, highpass=sw.chain.highpass, eq_bands=sw.chain.eq_bands,
                deesser=sw.chain.deesser, compressor=sw.chain.compressor))
            self._swap = None
        return y

    def _finite(self, x: np.ndarray) -> None:
        """Put silence in the block ``x``'s NaN or infinite samples
        (:func:`silence_nonfinite`), counted in :attr:`nonfinite_samples`: one would
        otherwise stay in the filters' and the limiter's state and silence the mix for
        good."""
        self.nonfinite_samples += silence_nonfinite(x)

    def _run(self, vocal: np.ndarray, backing: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray, np.ndarray]:
        n = vocal.shape[0]
        v = self._v[:, :n]
        np.copyto(v, vocal.T, casting="same_kind")
        self._finite(v)
        if self._mute_left:
            m = min(self._mute_left, n)
            v[:, :m] = 0.0
            self._mute_left -= m
        if self._vocal_delay is not None:
            v = self._vocal_delay.process(v)
        dry = self.fader.process(self._inserts_out(v))
        vox = self._vox[:, :n]
        vox[:] = dry
        for send in self._sends:
            vox += _chain(send, dry)
        b = self._b[:, :n]
        np.multiply(backing.T, self._backing_gain, out=b, casting="same_kind")
        self._finite(b)
        if self._backing_delay is not None:
            b = self._backing_delay.process(b)
        s = self._sum[:, :n]
        np.add(vox, b, out=s)
        if self._master_gain is not None:
            s *= self._master_gain
        y = self._limiter.process(s, self._y)
        self.samples_processed += n
        self.last_vocal, self.last_backing, self.last_dry = vox, b, dry
        return y, vox, dry, b

    def process(self, vocal_block: np.ndarray, backing_block: np.ndarray, *,
                out: np.ndarray | None = None) -> np.ndarray:
        """Mix one block: vocal and backing float32 ``(n, 2)``, ``n <= block_size``.

        Returns the mix block float32 ``(n, 2)``: the mix of the input of
        :attr:`latency_samples` earlier (silence at first). With ``out`` (a float32
        ``(n, 2)`` array) it is written there and nothing is allocated.
        """
        v = self._check(np.asarray(vocal_block), "vocal")
        b = self._check(np.asarray(backing_block), "backing")
        if v.shape != b.shape:
            raise ChannelLayoutError(f"vocal {v.shape} and backing {b.shape} blocks differ")
        n = v.shape[0]
        if n == 0:  # (an audio host may call back with no frames: nothing moves)
            self.last_vocal, self.last_backing, self.last_dry = (
                self._vox[:, :0], self._b[:, :0], self._vox[:, :0])
            return np.zeros((0, CHANNELS), np.float32) if out is None else out
        with flush_denormals():  # once for every filter of the block
            y, vox, dry, bb = self._run(v, b)
        if self._stems:  # delay the stems by the latency so that they line up with the mix
            for h, x, o in zip(self._delays, (vox, dry, bb), self._stem_blocks, strict=True):
                o[:, :n] = h.push(x)[:, :n]
                h.advance()
        if out is None:
            return y.T.copy()  # a copy even for n = 1 (then y.T already counts as contiguous)
        np.copyto(out, y.T)
        return out

    def process_stems(self, vocal_block: np.ndarray, backing_block: np.ndarray) -> Stems:
        """Like :meth:`process`, returning the mix and its stems (new arrays)."""
        if not self._stems:
            raise ParamsError("this mixer was built with stems=False")
        mix = self.process(vocal_block, backing_block)
        n = mix.shape[0]
        vox, dry, b = (s[:, :n].T.copy() for s in self._stem_blocks)
        return Stems(mix, vox, dry, b, self.gain_reduction_db(n))

    def gain_reduction_db(self, n: int) -> float:
        """The limiter's largest gain reduction over the first ``n`` samples of the last
        block, dB (0.0 when it did not act)."""
        g = self._limiter.gain[:n]
        red = float(-20.0 * math.log10(max(float(g.min()), 1e-12))) if n else 0.0
        return max(red, 0.0)


def _chain_dict(chain: VocalChain) -> dict[str, Any]:
    """``chain`` as the JSON-ready dict of a params document's ``vocal`` (lists, not
    tuples, so that it compares equal to itself read back from JSON)."""
    import json
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(chain)))


def replay(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
           params: MixParams | dict | str | os.PathLike[str], events: list[Event] | None = None,
           *, block_size: int = 4096, stems: bool = False) -> Any:
    """Render offline what a :class:`LiveMixer` built with ``params`` and driven by
    ``events`` produced live, time-aligned with the input (latency removed).

    The chain is block-size independent, so any block size gives the live output; each
    event is applied at its sample. Returns the mix float32 ``(n, 2)``, or with
    ``stems`` a :class:`Stems` of whole signals.
    """
    events = sorted(events or [], key=lambda e: e.sample)
    n = vocal.shape[0]
    m = LiveMixer(params, sample_rate, block_size, stems=stems)
    lat = m.latency_samples
    total = n + lat
    zeros = np.zeros((block_size, CHANNELS), np.float32)
    outs: dict[str, list[np.ndarray]] = {"mix": [], "vocal": [], "vocal_dry": [], "backing": []}
    red = 0.0
    t = 0
    i = 0
    while t < total:
        while i < len(events) and events[i].sample <= t:
            e = events[i]
            if e.kind == "gain":
                m.set_vocal_gain(e.value["gain_db"], e.value["rate_db_per_s"])
            elif e.kind == "inserts":
                chain = MixParams.from_dict({"vocal": e.value["vocal"]}).vocal
                m.change_inserts(chain, warmup_s=e.value["warmup_samples"] / sample_rate,
                                 fade_s=e.value["fade_samples"] / sample_rate)
            i += 1
        k = min(block_size, total - t)
        if i < len(events):
            k = min(k, events[i].sample - t)
        vb = vocal[t : t + k] if t < n else zeros[:0]
        bb = backing[t : t + k] if t < n else zeros[:0]
        if vb.shape[0] < k:
            vb = np.concatenate([vb, zeros[: k - vb.shape[0]]])
            bb = np.concatenate([bb, zeros[: k - bb.shape[0]]])
        if stems:
            s = m.process_stems(vb, bb)
            for key in outs:
                outs[key].append(getattr(s, key))
            red = max(red, s.gain_reduction_db)
        else:
            outs["mix"].append(m.process(vb, bb))
        t += k
    cat = {k: np.concatenate(v)[lat : lat + n] for k, v in outs.items() if v}
    if not stems:
        return cat["mix"]
    return Stems(cat["mix"], cat["vocal"], cat["vocal_dry"], cat["backing"], red)


__all__ = [
    "ConvolutionStage",
    "DelayStage",
    "Event",
    "Fader",
    "GainStage",
    "LiveMixer",
    "BiquadStage",
    "PedalboardStage",
    "Stage",
    "Stems",
    "insert_stages",
    "replay",
    "silence_nonfinite",
    "send_stages",
]
