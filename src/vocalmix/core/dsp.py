"""Signal helpers shared by the analysis modules and the render chain: downmix,
resampling, the EQ filter stage (pedalboard's filters, as MixParams renders them) and
the EQ's frequency response (the RBJ cookbook biquads that JUCE, and so pedalboard,
renders)."""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pedalboard as pb

    from vocalmix.core.params import EqBand, HighPass, VocalChain

#: filters are tuned at most this fraction of the sample rate (0.45: 90% of Nyquist),
#: where a biquad's response is still the analog prototype's shape; the renderer moves
#: an EQ band above it down to it
NYQUIST_GUARD = 0.45


# --- subnormal numbers ---------------------------------------------------------------------

#: the MXCSR bits "flush to zero" (bit 15) and "denormals are zero" (bit 6)
_FTZ_DAZ = 0x8040


class _FenvX86(ctypes.Structure):
    """glibc's ``fenv_t`` on x86-64: the x87 environment (28 bytes), then MXCSR."""

    _fields_ = [("x87", ctypes.c_ushort * 14), ("mxcsr", ctypes.c_uint)]


@lru_cache(maxsize=1)
def _libm() -> Any:
    """glibc's libm where ``fegetenv``/``fesetenv`` reach SSE's MXCSR (Linux x86-64);
    ``None`` elsewhere (then :func:`flush_denormals` does nothing)."""
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        return None
    from vocalmix.core.memory import c_library

    lib = c_library("m")
    if lib is None or ctypes.sizeof(_FenvX86) != 32:
        return None
    return lib


class _FlushDenormals:
    """The context manager :func:`flush_denormals` returns (one, shared): its state is
    per thread, and a section inside another costs a counter, not the four calls into
    libm that enter and leave the outermost one (the live mixer flushes once per block
    around every stage, instead of once per filter)."""

    _local = threading.local()

    def __enter__(self) -> None:
        st = self._local
        depth = getattr(st, "depth", 0)
        st.depth = depth + 1
        if depth:
            return
        st.restore = False
        lib = _libm()
        if lib is None:
            return
        if not hasattr(st, "env"):
            st.env = _FenvX86()
            st.ref = ctypes.byref(st.env)
        env = st.env
        if lib.fegetenv(st.ref) != 0 or env.mxcsr & _FTZ_DAZ == _FTZ_DAZ:
            return
        st.old = env.mxcsr & _FTZ_DAZ
        env.mxcsr |= _FTZ_DAZ
        lib.fesetenv(st.ref)
        st.restore = True

    def __exit__(self, *_exc: object) -> None:
        st = self._local
        st.depth -= 1
        if st.depth or not st.restore:
            return
        lib, env = _libm(), st.env
        lib.fegetenv(st.ref)
        env.mxcsr = (env.mxcsr & ~_FTZ_DAZ) | st.old
        lib.fesetenv(st.ref)
        st.restore = False


_FLUSH = _FlushDenormals()


def flush_denormals() -> _FlushDenormals:
    """A context manager: run the block with subnormal numbers flushed to zero (SSE's FTZ
    and DAZ) in this thread, then restore the previous floating-point environment.

    A recursive filter fed with digital silence decays through the subnormal range
    (below 1.2e-38 in float32, 2.2e-308 in float64), where every multiplication costs
    about a hundred times more: on a vocal that is silent a third of the time the
    K-weighting ran 15 times slower. Values that small are zero for every purpose here
    (a float64 one is zero once stored as float32), so flushing them changes no rendered
    sample. Sections nest (only the outermost one touches the environment). A no-op
    where the floating-point environment is not reachable.
    """
    return _FLUSH


def sosfilt_fast(sos: np.ndarray, x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``scipy.signal.sosfilt(sos, x, axis=axis)`` with subnormals flushed to zero
    (:func:`flush_denormals`): the same result, without the slow tail in silences."""
    from vocalmix.core.kernels import sosfilt

    with flush_denormals():
        return np.asarray(sosfilt(sos, x, axis=axis))


# --- per-signal results, remembered by content -----------------------------------------------


def content_key(x: np.ndarray, *extra: Hashable) -> tuple:
    """What identifies an analysis of ``x``: its shape, type, a SHA-1 of its samples
    (about 60 ms for a 3-minute stereo float32 signal, a third of a K-weighting) and
    ``extra`` (the rate, the analysis' name and parameters).

    The SHA-1 of a read-only array (``x.flags.writeable`` false: see :func:`frozen`) is
    computed once and remembered for as long as that array object lives, so the several
    analyses of one signal hash it once. A read-only array must not change underneath
    (through a writeable array it views) while vocalmix works on it."""
    a = np.asarray(x)
    return (a.shape, a.dtype.str, _digest(a), *extra)


def frozen(x: np.ndarray, *, unique: bool = False) -> np.ndarray:
    """``x`` as a read-only array: ``x`` itself when it is one, else a read-only view of it
    (``x`` keeps its own flags). Its content digest is then computed once (see
    :func:`content_key`).

    ``unique``: a signal made inside one computation (an EQ'd vocal, a compressor's
    output), which no other array will ever equal by chance of content, gets a random
    digest instead of a SHA-1 of its samples (which costs a third of a K-weighting): its
    analyses are still remembered for as long as it lives, only never shared with an
    equal array made elsewhere."""
    a = np.asarray(x)
    if not a.flags.writeable:
        v = a
    else:
        v = a.view()
        v.flags.writeable = False
    if unique:
        _remember_digest(v, b"unique:" + os.urandom(16))
    return v


#: content digests of live read-only arrays, by ``id``: (weak reference, digest)
_DIGESTS: dict[int, tuple[weakref.ref, bytes]] = {}
#: guards :data:`_DIGESTS`. Re-entrant: an array that dies in the garbage collector's
#: cycle pass runs :func:`_forget_digest` in whatever thread the collector runs, which
#: may be one holding this lock (any allocation inside it can start a collection); with
#: a plain lock that thread waited for itself, and every analysis thread after it
_DIGESTS_LOCK = threading.RLock()


def _forget_digest(key: int, ref: weakref.ref) -> None:
    with _DIGESTS_LOCK:
        if key in _DIGESTS and _DIGESTS[key][0] is ref:
            del _DIGESTS[key]


def _digest(a: np.ndarray) -> bytes:
    """SHA-1 of ``a``'s samples in C order (remembered for a read-only ``a``)."""
    remember = not a.flags.writeable
    if remember:
        with _DIGESTS_LOCK:
            hit = _DIGESTS.get(id(a))
        if hit is not None and hit[0]() is a:
            return hit[1]
    h = hashlib.sha1(usedforsecurity=False)
    if a.flags.c_contiguous or a.ndim == 0:
        h.update(np.ascontiguousarray(a).view(np.uint8).ravel().data)
    else:  # the same bytes in C order, a block of rows at a time (no full-length copy)
        for i in range(0, a.shape[0], _HASH_ROWS):
            h.update(np.ascontiguousarray(a[i : i + _HASH_ROWS]).view(np.uint8).ravel().data)
    d = h.digest()
    if remember:
        _remember_digest(a, d)
    return d


def _remember_digest(a: np.ndarray, d: bytes) -> None:
    """Remember ``d`` as the digest of the read-only ``a`` for as long as ``a`` lives
    (unless it has one already)."""
    key = id(a)
    with _DIGESTS_LOCK:
        hit = _DIGESTS.get(key)
        if hit is not None and hit[0]() is a:
            return
        _DIGESTS[key] = (weakref.ref(a, partial(_forget_digest, key)), d)


#: rows hashed at a time by :func:`content_key` for an array not in C order
_HASH_ROWS = 1 << 16


class LruCache:
    """A small thread-safe least-recently-used map from :func:`content_key` to an
    analysis' (small, read-only) result: the analyses several estimators ask of one
    signal run once per process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        #: the keys whose value a thread is making (:meth:`get_or_make`), each with the
        #: event set when it is done
        self._making: dict[tuple, threading.Event] = {}

    def get(self, key: tuple) -> Any:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def get_or_make(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The value stored under ``key``, or ``make()`` stored there and returned.

        A thread asking for a key that another thread is making waits for that value
        instead of making it too: the estimators' analyses run on several threads and
        ask for the same analysis of one input at about the same time (a 3-minute
        vocal's K-weighting was made twice, 0.1 s of CPU). If the maker fails, or its
        value is dropped before a waiter reads it, the waiter makes it itself. ``make``
        must not ask this map for ``key`` again."""
        while True:
            with self._lock:
                v = self._d.get(key)
                if v is not None:
                    self._d.move_to_end(key)
                    return v
                done = self._making.get(key)
                mine = done is None
                if done is None:
                    done = self._making[key] = threading.Event()
            if not mine:
                done.wait()
                continue
            try:
                v = make()
                self.put(key, v)
                return v
            finally:
                with self._lock:
                    self._making.pop(key, None)
                done.set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)

    def take(self, key: tuple) -> Any:
        """The value stored under ``key``, removed from the map (``None`` if absent)."""
        with self._lock:
            return self._d.pop(key, None)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._d.clear()


def max_filter_hz(sample_rate: int) -> float:
    """The highest frequency (Hz) a filter is tuned to at ``sample_rate`` Hz."""
    return NYQUIST_GUARD * float(sample_rate)


def channel_mean(x: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``(n, channels)`` (``x`` itself for ``(n,)``), in
    ``x``'s precision: ``np.mean(x, axis=1)``. A stereo pair is summed into a new array
    which is then halved in place: the same sum and the same exact halving, without
    numpy's strided reduction or a second full-length temporary."""
    y = np.asarray(x)
    if y.ndim == 2:
        if y.shape[1] == 2:
            y = np.add(y[:, 0], y[:, 1])
            y *= 0.5
        else:
            y = y.mean(axis=1)
    return y


def mono(x: np.ndarray) -> np.ndarray:
    """Downmix ``(n,)`` or ``(n, channels)`` to mono float32 (:func:`channel_mean`)."""
    return channel_mean(np.asarray(x, dtype=np.float32))


def mono_f64(x: np.ndarray) -> np.ndarray:
    """Downmix ``(n,)`` or ``(n, channels)`` to mono float64: ``channel_mean(x.astype(
    float64))`` to the bit, :data:`FILTER_BLOCK` rows at a time (no float64 copy of every
    channel: 127 MB for 3 minutes of stereo)."""
    x = np.asarray(x)
    if x.ndim != 2:
        return np.asarray(x, dtype=np.float64)
    m = np.empty(x.shape[0])
    for i in range(0, x.shape[0], FILTER_BLOCK):
        m[i : i + FILTER_BLOCK] = channel_mean(np.asarray(x[i : i + FILTER_BLOCK],
                                                          dtype=np.float64))
    return m


#: the last two resampled downmixes of read-only inputs (:func:`mono_at`)
_MONO_AT = LruCache(2)


def mono_at(x: np.ndarray, sample_rate: int, target_rate: int, quality: str = "LQ", *,
            remember: bool = True) -> np.ndarray:
    """Mono downmix resampled (soxr) from ``sample_rate`` to ``target_rate`` Hz.

    For a read-only ``x`` (:func:`frozen`) the result is read-only and remembered by
    content (the last two): the baseline's and the EQ's masking analyses read the same
    32 kHz downmix of the backing. ``remember=False`` neither looks up nor stores it (an
    excerpt analysed once: hashing it would cost a third of its downmix)."""
    import soxr

    x = np.asarray(x)

    def make() -> np.ndarray:
        y = mono(x)
        if sample_rate != target_rate:
            y = soxr.resample(y, sample_rate, target_rate, quality=quality)
        return y

    if remember and not x.flags.writeable and sample_rate != target_rate:
        def frozen_made() -> np.ndarray:
            y = make()
            y.flags.writeable = False
            return y

        # (dropped by forget_signals)
        return np.asarray(_MONO_AT.get_or_make(
            content_key(x, sample_rate, "mono at", target_rate, quality), frozen_made))
    return make()


#: samples a pedalboard chain is run on at a time by :func:`run_board`
BOARD_BLOCK = 1 << 16


def run_board(board: pb.Pedalboard, x: np.ndarray, sample_rate: int, delay: int = 0
              ) -> np.ndarray:
    """Run a pedalboard chain (reset first) on ``(samples, channels)`` delayed by
    ``delay`` samples (silence first, the length of ``x``); an empty chain with no delay
    returns ``x`` itself.

    The chain runs :data:`BOARD_BLOCK` samples at a time, its state kept between calls
    (``reset=False``), as pedalboard streams audio: the effects here (compressor, reverb)
    compute sample by sample, so the output is the same as one call over the whole
    signal (the golden renders check it to the bit), without the whole signal's
    transposed copies in and out. The output is float32 ``(samples, channels)``."""
    if len(board) == 0 and delay == 0:
        return x
    out = np.empty(x.shape, np.float32)
    for _done in board_rows(board, x, sample_rate, out, delay):
        pass
    return out


def board_rows(board: pb.Pedalboard, x: np.ndarray, sample_rate: int, out: np.ndarray,
               delay: int = 0, *, twin: bool | None = None,
               ready: Callable[[int], None] | None = None) -> Iterator[int]:
    """:func:`run_board` into ``out`` (``x``'s shape, float32), yielding after each
    :data:`BOARD_BLOCK` rows how many rows of ``out`` are rendered.

    ``twin``: whether to render one of two equal channels for both (default: read on
    ``x``, see :func:`twin_render`); ``ready(rows)``, when given, is called before the
    rows of ``x`` up to ``rows`` are read (``x`` still being filled on another thread,
    :class:`vocalmix.core.parallel.Filling`; no delay then)."""
    if ready is not None and delay:
        raise ValueError("board_rows: a delayed render reads rows ahead of its output")
    n = x.shape[0]
    render = _board_rows(board, x, sample_rate, delay, out, twin)
    for i in range(0, n, BOARD_BLOCK):
        if ready is not None:
            ready(min(n, i + BOARD_BLOCK))
        yield render(i)


def _board_rows(board: pb.Pedalboard, x: np.ndarray, sample_rate: int, delay: int,
                out: np.ndarray, twin: bool | None = None) -> Callable[[int], int]:
    """The step of :func:`run_board`: a function that renders the :data:`BOARD_BLOCK`
    rows from ``i`` (a multiple of it, called in order from 0) into ``out`` and returns
    the row it stopped at."""
    n, c = x.shape
    # a mono take read as stereo through effects that treat each channel on its own: one
    # channel rendered, written to both (the same samples as rendering both)
    if twin is None:
        twin = twin_render(board, x)
    src = x[:, :1] if twin else x
    blk = np.zeros((BOARD_BLOCK, src.shape[1]), np.float32)

    def render(i: int) -> int:
        k = min(BOARD_BLOCK, n - i)
        b = delayed_rows(src, i, delay, blk[:k])
        # pedalboard takes (channels, samples); vocalmix keeps (samples, channels)
        out[i : i + k] = board(np.ascontiguousarray(b.T), float(sample_rate),
                               reset=i == 0).T if len(board) else b
        return i + k

    return render


#: pedalboard effects (by class name) that process each channel on its own (JUCE's
#: compressor keeps a level detector per channel), so that two equal channels come out
#: equal, each as a one-channel render would give it (``tests/test_dsp_speed.py`` checks
#: it); not the reverb, whose width mixes the channels
PER_CHANNEL_EFFECTS = ("Compressor",)


def twin_render(board: pb.Pedalboard, x: np.ndarray) -> bool:
    """Whether ``board`` may render one of the two equal channels of ``x`` for both."""
    import pedalboard as pb

    return (len(board) > 0
            and all(type(p).__name__ in PER_CHANNEL_EFFECTS
                    and type(p).__module__.startswith(pb.__name__) for p in board)
            and equal_channels(x))


def run_board_blocks(board: pb.Pedalboard, x: np.ndarray, sample_rate: int, block: int
                     ) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """:func:`run_board` (no delay) rendered on a helper thread: ``(out, blocks)``, where
    ``blocks`` yields the rows of ``out`` as consecutive views of ``block`` rows (the last
    one shorter) as soon as the chain has rendered them, so that the caller measures one
    block while the next renders. ``out`` holds the same samples as :func:`run_board`'s
    output (the same chain on the same :data:`BOARD_BLOCK` blocks) once ``blocks`` is
    exhausted; the render stops early if ``blocks`` is closed. An error of the render is
    raised where its block would have been yielded. A compressor on a stereo signal whose
    channels differ renders each channel on a helper thread of its own
    (:func:`channel_boards`): the compressor resolver's verification render of a stereo
    vocal, 0.17-0.24 s for 3 minutes on one thread."""
    from vocalmix.core.parallel import Filling

    n = x.shape[0]
    out = np.empty(x.shape, np.float32)
    twin = twin_render(board, x)  # (read once: it compares the whole channels when equal)
    boards = None if twin else channel_boards(board, x)
    if boards is None:
        renders = [Filling(out, lambda: board_rows(board, x, sample_rate, out, twin=twin))]
    else:  # each channel on a thread of its own, into its column of out
        def channel(c: int) -> Callable[[], Iterator[int]]:
            return lambda: board_rows(boards[c], x[:, c:c + 1], sample_rate, out[:, c:c + 1])

        renders = [Filling(out, channel(c)) for c in range(x.shape[1])]

    def ready() -> Iterator[np.ndarray]:
        try:
            for start in range(0, n, block):
                stop = min(start + block, n)
                for r in renders:
                    r.wait(stop)
                yield out[start:stop]
            for r in renders:
                r.result()
        finally:
            for r in renders:
                r.cancel()  # closed early or failed: the render stops (else a no-op)

    return out, ready()


def channel_boards(board: pb.Pedalboard, x: np.ndarray) -> list[pb.Pedalboard] | None:
    """One chain per channel of ``x`` (``board`` itself for the first, new ones with the
    same settings for the others), for a chain of effects that treat each channel on
    its own (pedalboard's compressors, whose settings are copied here) and a stereo
    ``x`` of at least :data:`BOARD_BLOCK` rows whose channels differ: each channel
    rendered on its own through its own chain gives the samples the stereo render gives
    it (JUCE's compressor keeps a level detector per channel; ``tests/test_dsp_speed.py``),
    so the two can render on two threads. ``None`` otherwise (one channel, equal
    channels that :func:`twin_render` renders once, or another effect)."""
    import pedalboard as pb

    comps = [p for p in board if type(p) is pb.Compressor]
    if (x.ndim != 2 or x.shape[1] != 2 or x.shape[0] < BOARD_BLOCK or len(board) == 0
            or len(comps) != len(board) or equal_channels(x)):
        return None
    copies = [pb.Pedalboard([pb.Compressor(threshold_db=p.threshold_db, ratio=p.ratio,
                                           attack_ms=p.attack_ms, release_ms=p.release_ms)
                             for p in comps]) for _c in range(x.shape[1] - 1)]
    return [board, *copies]


def eq_sos(highpass: HighPass, bands: tuple[EqBand, ...], sample_rate: int) -> np.ndarray | None:
    """The EQ section as second-order sections ``(n, 6)`` float64: the high-pass (if
    enabled), then each band with a non-zero gain; ``None`` when there is nothing to do.

    The coefficients are those of pedalboard's ``HighpassFilter`` (first order) and
    ``PeakFilter`` / ``LowShelfFilter`` / ``HighShelfFilter`` (JUCE's RBJ biquads).
    """
    sections = []
    if highpass.enabled:
        sections.append(np.concatenate(
            highpass_coefficients(highpass.cutoff_frequency_hz, sample_rate)))
    for band in bands:
        if band.gain_db != 0.0:
            sections.append(np.concatenate(
                biquad_coefficients(band.kind, band.freq_hz, band.gain_db, band.q, sample_rate)))
    return np.array(sections) if sections else None


#: the EQ stage's output for a read-only input, kept until it is asked for once more
#: (:func:`eq_stage`)
EQ_HANDOFF = LruCache(1)


def forget_signals() -> None:
    """Drop the whole signals kept for reuse (:data:`EQ_HANDOFF` and :func:`mono_at`'s
    downmixes), keeping only small analyses: :func:`vocalmix.pipeline.estimate_params`
    calls it once the estimate is resolved, so that the render's peak memory does not
    carry them."""
    EQ_HANDOFF.clear()
    _MONO_AT.clear()


def eq_stage(
    x: np.ndarray, sample_rate: int, highpass: HighPass, bands: tuple[EqBand, ...],
    *, hand_over: bool = False,
) -> np.ndarray:
    """High-pass then the parametric bands (zero-gain bands are skipped).

    The filters are pedalboard's (:func:`eq_sos`) but run in float64 with scipy:
    pedalboard's float32 recursion has a noise floor near -80 dB for a resonant
    low-frequency band (a 60 Hz peak at Q 4), and where it rounds depends on how the
    signal is cut into blocks, so a live mixer could not match it; in float64 block
    boundaries change nothing above -250 dB. Output float32.

    ``hand_over``: for a read-only ``x`` (:func:`frozen`), the output is read-only too
    and is kept for the next call with the same input and settings, which takes it
    (:data:`EQ_HANDOFF`): the estimators' EQ'd vocal (the de-esser's and the dynamics
    model's input) is the compressor resolver's input, filtered once. Without it the
    output is the caller's own (writeable) array.
    """
    sos = eq_sos(highpass, bands, sample_rate)
    if sos is None:
        return x
    x = np.asarray(x)
    key = None  # hashed only to hand over or to take what was handed over
    if not x.flags.writeable and (hand_over or len(EQ_HANDOFF)):
        key = content_key(x, sample_rate, "eq stage", highpass, bands)
    if key is not None:
        y = EQ_HANDOFF.take(key)
        if y is not None:
            return np.asarray(y)
    y = sosfilt_blocks(sos, x, np.float64, np.float32)
    if key is not None and hand_over:
        y = frozen(y, unique=True)
        EQ_HANDOFF.put(key, y)
    return y


def eq_stage_mono(
    x: np.ndarray, sample_rate: int, highpass: HighPass, bands: tuple[EqBand, ...]
) -> np.ndarray:
    """:func:`mono` of :func:`eq_stage` of ``x``, filtered and downmixed
    :data:`FILTER_BLOCK` samples at a time: the same float32 values (each filtered block
    rounded to float32, as :func:`eq_stage` returns it, then downmixed) without the
    filtered multichannel copy, for analyses that only read the downmix."""
    x = np.asarray(x)
    sos = eq_sos(highpass, bands, sample_rate)
    if sos is None or x.ndim == 1:
        return mono(eq_stage(x, sample_rate, highpass, bands))
    out = np.empty(x.shape[0], np.float32)
    for i, yb in zip(range(0, x.shape[0], FILTER_BLOCK),
                     sosfilt_stream(sos, row_blocks(x, FILTER_BLOCK), np.float64), strict=True):
        out[i : i + FILTER_BLOCK] = mono(yb.astype(np.float32))
    return out


#: samples filtered at a time by :func:`sosfilt_blocks`
FILTER_BLOCK = 1 << 16


def sosfilt_stream(sos: np.ndarray, blocks: Iterable[np.ndarray],
                   work: type[np.floating]) -> Iterator[np.ndarray]:
    """``sosfilt_fast(sos, x.astype(work), axis=0)`` of the signal that the consecutive
    ``blocks`` (time on axis 0) make up, a block at a time, the filter state carried from
    one to the next: the same recursion on the same samples, so the same values to the
    bit, without full-length copies. Each filtered block is ``work`` precision, subnormals
    flushed (:func:`flush_denormals`)."""
    zi: np.ndarray | None = None
    for blk in blocks:
        xb = np.asarray(blk)
        if not (xb.dtype == np.float32 and work == np.float64):
            xb = np.asarray(xb, dtype=work)
        # (float32 samples go to the filter as they are: it casts them to float64, exactly,
        # in the copy it makes of each channel anyway, one pass over the block instead of two)
        if zi is None:
            zi = np.zeros((sos.shape[0], 2, *xb.shape[1:]), work)
        with flush_denormals():
            y, zi = sosfilt_block(sos, xb, zi)
        yield y


def sosfilt_block(sos: np.ndarray, x: np.ndarray, zi: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``sosfilt(sos, x, axis=0, zi=zi)`` (:func:`vocalmix.core.kernels.sosfilt`) of one
    block ``(n, channels)`` from the state ``zi``: ``(y, zf)``. A block whose two
    channels and states are equal (a mono take read as stereo) is filtered once
    (:func:`_sosfilt_twins`), with the same values and layout."""
    from vocalmix.core.kernels import sosfilt, sosfilt_pair

    paired = _pairs(sos, x, zi)
    if _twin_channels(x, zi):
        return _sosfilt_twins(sos, x, zi, paired)
    if paired:
        return sosfilt_pair(sos, x, zi)
    return sosfilt(sos, x, axis=0, zi=zi)


def _pairs(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> bool:
    """Whether :func:`sosfilt_block` filters ``x`` with
    :func:`~vocalmix.core.kernels.sosfilt_pair`: two channels in float64 through at most
    :data:`~vocalmix.core.kernels.PAIR_MAX_SECTIONS` sections (the K-weighting, a
    crossover's side), where that is faster."""
    from vocalmix.core.kernels import PAIR_MAX_SECTIONS

    return (x.ndim == 2 and x.shape[1] == 2 and sos.shape[0] <= PAIR_MAX_SECTIONS
            and np.result_type(sos, x, zi) == np.float64)


def equal_channels(x: np.ndarray) -> bool:
    """Whether ``x`` is ``(n, 2)`` with two equal channels: a mono take read as stereo,
    which the filters, the per-channel effects and the reverb process once (a few samples
    are compared first, so a real stereo signal costs almost nothing)."""
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        return False
    head = x[:16]
    return bool(np.array_equal(head[:, 0], head[:, 1]) and np.array_equal(x[:, 0], x[:, 1]))


def _twin_channels(x: np.ndarray, zi: np.ndarray) -> bool:
    """Whether a block ``x`` has two equal channels (:func:`equal_channels`) and the
    filter state ``zi`` ``(sections, 2, 2)`` two equal channel states."""
    return equal_channels(x) and bool(np.array_equal(zi[..., 0], zi[..., 1]))


def _sosfilt_twins(sos: np.ndarray, x: np.ndarray, zi: np.ndarray, paired: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``sosfilt(sos, x, axis=0, zi=zi)`` of a block whose two channels and states are
    equal (:func:`_twin_channels`): one channel filtered and copied to the other. The
    filter runs each channel on its own, so the values are those of filtering both, to
    the bit; the result has the layout the two-channel call returns (``(2, n)`` in
    memory, seen as ``(n, 2)``; ``(n, 2)`` itself when ``paired``, as
    :func:`~vocalmix.core.kernels.sosfilt_pair` returns it), as sums over it depend on the
    order it is read in."""
    from vocalmix.core.kernels import sosfilt

    y1, z1 = sosfilt(sos, x[:, :1], axis=0, zi=zi[..., :1])
    if paired:
        both = np.empty((x.shape[0], 2), y1.dtype)
        both[:, 0] = y1[:, 0]
        both[:, 1] = y1[:, 0]
        return both, np.concatenate([z1, z1], axis=-1)
    rows = np.empty((2, x.shape[0]), y1.dtype)
    rows[0] = y1[:, 0]
    rows[1] = y1[:, 0]
    return rows.T, np.concatenate([z1, z1], axis=-1)


def row_blocks(x: np.ndarray, block: int, n: int | None = None) -> Iterator[np.ndarray]:
    """The first ``n`` rows of ``x`` (all by default) as views of ``block`` rows (the last
    one shorter)."""
    n = x.shape[0] if n is None else n
    for i in range(0, n, block):
        yield x[i : min(i + block, n)]


def sosfilt_blocks(sos: np.ndarray, x: np.ndarray, work: type[np.floating],
                   out: type[np.floating]) -> np.ndarray:
    """``sosfilt_fast(sos, x.astype(work), axis=0).astype(out)`` computed
    :data:`FILTER_BLOCK` samples at a time (:func:`sosfilt_stream`): the same result to
    the bit (in the same memory order), without full-length copies of ``x`` in ``work``
    precision. The cast to ``out`` keeps subnormals.

    A stereo signal of at least :data:`SPLIT_ROWS` rows whose channels differ is
    filtered a channel per thread: the filter runs each channel on its own, so the same
    values (``tests/test_dsp_speed.py``), in about half the time when a core is free (the
    EQ of a 3-minute stereo vocal, on the model method's critical path: a mix of the
    real stems 0.16 s faster in-process)."""
    from vocalmix.core.parallel import beside

    x = np.asarray(x)
    y = np.empty(x.shape, out, order="F")

    def fill(src: np.ndarray, dst: np.ndarray) -> None:
        for i, yb in zip(range(0, src.shape[0], FILTER_BLOCK),
                         sosfilt_stream(sos, row_blocks(src, FILTER_BLOCK), work), strict=True):
            dst[i : i + FILTER_BLOCK] = yb

    if x.ndim == 2 and x.shape[1] == 2 and x.shape[0] >= SPLIT_ROWS and not equal_channels(x):
        beside(lambda: fill(x[:, 1:], y[:, 1:]), lambda: fill(x[:, :1], y[:, :1]))
    else:
        fill(x, y)
    return y


#: the fewest rows :func:`sosfilt_blocks` filters a channel per thread (about 3 s at
#: 44.1 kHz: below it a thread costs more than it saves)
SPLIT_ROWS = 2 * FILTER_BLOCK


def delayed_rows(x: np.ndarray, start: int, delay: int, out: np.ndarray) -> np.ndarray:
    """Rows ``start .. start + len(out) - 1`` of ``x`` delayed by ``delay`` rows (silence
    before ``x`` starts) written into ``out`` (which must not run past ``x``'s end once
    delayed) and returned: a block of a pre-delayed signal without the delayed copy."""
    k = out.shape[0]
    a = start - delay  # the block is x[a : a + k], zero before x starts
    out.fill(0.0)
    if a + k > 0:
        out[max(0, -a) :] = x[max(0, a) : a + k]
    return out


def offset_samples(offset_ms: float, sample_rate: int) -> int:
    """A time offset of ``offset_ms`` (ms) as whole samples at ``sample_rate`` Hz, rounded
    to the nearest (halves away from zero, the same for either sign)."""
    v = abs(float(offset_ms)) * int(sample_rate) / 1000.0
    return int(math.copysign(math.floor(v + 0.5), offset_ms))


def shifted_rows(x: np.ndarray, shift: int) -> np.ndarray:
    """``x`` ``(n, ...)`` moved by ``shift`` rows within its own length: later for a
    positive ``shift`` (silence first; its last ``shift`` rows cut), earlier for a
    negative one (its first ``-shift`` rows cut; silence last). A new array of ``x``'s
    dtype, or ``x`` itself when ``shift`` is 0."""
    if shift == 0:
        return x
    out = np.zeros_like(x)
    n = x.shape[0]
    if abs(shift) < n:
        if shift > 0:
            out[shift:] = x[: n - shift]
        else:
            out[: n + shift] = x[-shift:]
    return out


def shifted_blocks(blocks: Iterable[np.ndarray], shift: int) -> Iterator[np.ndarray]:
    """The consecutive ``(k, ...)`` ``blocks`` of a signal (any lengths) moved by
    ``shift`` rows: ``shift`` rows of silence first for a positive ``shift``, the first
    ``-shift`` rows left out for a negative one. Cut or padded to the signal's length
    afterwards (:func:`vocalmix.core.longrender.exact_blocks`), this is
    :func:`shifted_rows` a block at a time."""
    skip = max(0, -shift)
    first = True
    for b in blocks:
        if first and shift > 0:
            yield np.zeros((shift, *b.shape[1:]), b.dtype)
        first = False
        if skip:
            cut = min(skip, b.shape[0])
            skip -= cut
            b = b[cut:]
        if b.shape[0]:
            yield b


# --- the EQ section's filters --------------------------------------------------------------


def butterworth2_sos(freq_hz: float | tuple[float, float], btype: str, sample_rate: float
                     ) -> np.ndarray:
    """Second-order sections of a 2nd-order Butterworth filter by the bilinear transform
    with pre-warped edges, as ``scipy.signal.butter(2, freq_hz, btype, fs=sample_rate,
    output="sos")`` designs it (the same poles, zeros and gain, rounded differently in
    the last bits: ``tests/test_kernels.py``): ``"lowpass"`` and ``"highpass"`` give one
    section at ``freq_hz`` (Hz), ``"bandpass"`` two between the edges ``(lo, hi)`` (Hz).
    Written here because ``scipy.signal`` takes about 0.9 s to import."""
    fs2 = 2.0 * float(sample_rate)

    def warp(f: float) -> float:  # the analog edge that the bilinear transform maps to f
        return fs2 * math.tan(math.pi * float(f) / float(sample_rate))

    proto = np.exp(1j * np.pi * np.array([3.0, 5.0]) / 4.0)  # Butterworth poles, |p| = 1
    if btype == "lowpass":
        wc = warp(float(freq_hz))  # type: ignore[arg-type]
        z, p, k = np.zeros(0, complex), proto * wc, wc * wc
    elif btype == "highpass":
        wc = warp(float(freq_hz))  # type: ignore[arg-type]
        z, p, k = np.zeros(2, complex), wc / proto, 1.0
    elif btype == "bandpass":
        lo, hi = (warp(f) for f in freq_hz)  # type: ignore[union-attr]
        wo2, half = lo * hi, proto * (hi - lo) / 2.0
        root = np.sqrt(half * half - wo2)
        z, p, k = np.zeros(2, complex), np.concatenate([half + root, half - root]), (hi - lo) ** 2
    else:
        raise ValueError(f"unknown filter type {btype!r}")
    # bilinear transform: s -> fs2 (z - 1) / (z + 1); zeros at infinity land on z = -1
    zd = np.concatenate([(fs2 + z) / (fs2 - z), -np.ones(len(p) - len(z))])
    pd = (fs2 + p) / (fs2 - p)
    gain = k * float(np.real(np.prod(fs2 - z) / np.prod(fs2 - p)))
    upper = pd[np.imag(pd) > 0]  # one pole of each conjugate pair: one section each
    zeros = np.sort_complex(np.real_if_close(zd)).real.reshape(len(upper), 2)
    sos = np.zeros((len(upper), 6))
    for i, (pole, (z1, z2)) in enumerate(zip(upper, zeros, strict=True)):
        sos[i] = [1.0, -(z1 + z2), z1 * z2, 1.0, -2.0 * pole.real, abs(pole) ** 2]
    sos[0, :3] *= gain
    return sos


def biquad_coefficients(
    kind: str, freq_hz: float, gain_db: float, q: float, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of a peak or shelf band, RBJ cookbook (JUCE's ``IIR::Coefficients``, which
    pedalboard's ``PeakFilter``, ``LowShelfFilter`` and ``HighShelfFilter`` use); the
    frequency is kept under 0.45 x the rate."""
    big_a = 10 ** (gain_db / 40.0)
    w = 2 * np.pi * min(freq_hz, max_filter_hz(sample_rate)) / sample_rate
    cw, sw = np.cos(w), np.sin(w)
    if kind == "peak":
        alpha = sw / (2 * q)
        b = [1 + alpha * big_a, -2 * cw, 1 - alpha * big_a]
        a = [1 + alpha / big_a, -2 * cw, 1 - alpha / big_a]
    elif kind in ("low_shelf", "high_shelf"):
        beta = sw * np.sqrt(big_a) / q
        ap, am = big_a + 1, big_a - 1
        if kind == "low_shelf":
            b = [big_a * (ap - am * cw + beta), 2 * big_a * (am - ap * cw),
                 big_a * (ap - am * cw - beta)]
            a = [ap + am * cw + beta, -2 * (am + ap * cw), ap + am * cw - beta]
        else:
            b = [big_a * (ap + am * cw + beta), -2 * big_a * (am + ap * cw),
                 big_a * (ap + am * cw - beta)]
            a = [ap - am * cw + beta, 2 * (am - ap * cw), ap - am * cw - beta]
    else:
        raise ValueError(f"unknown band kind {kind!r}")
    bb, aa = np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)
    return bb / aa[0], aa / aa[0]


def biquad_response_db(
    kind: str, freq_hz: float, gain_db: float, q: float, freqs_hz: np.ndarray, sample_rate: int
) -> np.ndarray:
    """Magnitude response (dB) of one band at ``freqs_hz``."""
    b, a = biquad_coefficients(kind, freq_hz, gain_db, q, sample_rate)
    z = np.exp(-1j * 2 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate)
    h = (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)
    return 20 * np.log10(np.maximum(np.abs(h), 1e-12))


def bands_response_db(
    bands: list[tuple[str, float, float, float]], freqs_hz: np.ndarray, sample_rate: int
) -> np.ndarray:
    """Summed response (dB) of several bands ``(kind, freq_hz, gain_db, q)``."""
    out = np.zeros(len(freqs_hz))
    for k, f, g, q in bands:
        out += biquad_response_db(k, f, g, q, freqs_hz, sample_rate)
    return out


def highpass_response_db(cutoff_hz: float, freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Magnitude response (dB) of pedalboard's ``HighpassFilter``: JUCE's first-order
    high-pass (bilinear transform, prewarped corner), 6 dB/octave below ``cutoff_hz``."""
    k = np.tan(np.pi * cutoff_hz / sample_rate)
    z = np.exp(-1j * 2 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate)
    h = (1 - z) / ((1 + k) + (k - 1) * z)
    return 20 * np.log10(np.maximum(np.abs(h), 1e-12))


def eq_response_db(chain: VocalChain, freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Magnitude response (dB) at ``freqs_hz`` of a vocal chain's EQ stage: its high-pass
    (when enabled) and its EQ bands, as :func:`vocalmix.core.render.eq_stage` renders them
    at ``sample_rate`` (Hz). Zero-gain bands are skipped, as the renderer skips them."""
    bands = [(e.kind, e.freq_hz, e.gain_db, e.q) for e in chain.eq_bands if e.gain_db != 0.0]
    out = bands_response_db(bands, freqs_hz, sample_rate)
    if chain.highpass.enabled:
        out = out + highpass_response_db(chain.highpass.cutoff_frequency_hz, freqs_hz,
                                         sample_rate)
    return np.asarray(out, dtype=np.float64)


def eq_band_gain_db(chain: VocalChain, edges_hz: np.ndarray, sample_rate: int,
                    points: int = 16) -> np.ndarray:
    """The EQ stage's mean power gain (dB) over each band between consecutive
    ``edges_hz``, from :func:`eq_response_db` at ``points`` log-spaced frequencies per
    band (bands reaching past the EQ's top frequency stop there)."""
    edges = np.asarray(edges_hz, dtype=np.float64)
    top = max_filter_hz(sample_rate)
    out = np.empty(len(edges) - 1)
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        r = eq_response_db(chain, np.geomspace(lo, min(hi, top), points), sample_rate)
        out[i] = 10 * np.log10(np.mean(10 ** (r / 10)))
    return out


def highpass_coefficients(cutoff_hz: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b, a)`` of the first-order (6 dB/octave) high-pass of JUCE's
    ``makeFirstOrderHighPass``, which pedalboard's ``HighpassFilter`` is (checked
    against it to -115 dB), padded to a biquad."""
    n = np.tan(np.pi * cutoff_hz / sample_rate)
    b = np.array([1.0 / (n + 1.0), -1.0 / (n + 1.0), 0.0])
    a = np.array([1.0, (n - 1.0) / (n + 1.0), 0.0])
    return b, a


# --- spectra --------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def hann_f32(n: int) -> np.ndarray:
    """``np.hanning(n)`` as float32 (read-only)."""
    w = np.hanning(n).astype(np.float32)
    w.setflags(write=False)
    return w


def frame_power_at(y: np.ndarray, n_fft: int, hop: int, first: int, count: int,
                   **kw: Any) -> np.ndarray:
    """:func:`frame_power` of frames ``first .. first + count - 1`` of ``y`` only: the
    same spectra as those rows of one call over all frames (each frame is transformed on
    its own). ``kw``: as :func:`frame_power`."""
    return frame_power(y[first * hop : (first + count - 1) * hop + n_fft], n_fft, hop,
                       n_frames=count, **kw)


def frame_power_chunks(y: np.ndarray, n_fft: int, hop: int, n_frames: int, chunk: int,
                       **kw: Any) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`frame_power_at` of frames ``0 .. n_frames - 1``, ``chunk`` frames at a time:
    ``(first frame, power (frames, bins))`` pairs, without the whole spectrogram."""
    for a in range(0, n_frames, chunk):
        yield a, frame_power_at(y, n_fft, hop, a, min(chunk, n_frames - a), **kw)


def active_mean_power(signals: tuple[np.ndarray, ...], n_fft: int, hop: int,
                      n_frames: int, chunk: int, range_db: float = 30.0
                      ) -> tuple[np.ndarray, ...] | None:
    """The mean power spectra of each of the mono ``signals`` over the frames where the
    first one is within ``range_db`` of its loudest frame (frame energy: the sum of its
    power spectrum), :func:`frame_power_chunks` at a time (the same means as of the whole
    spectrograms up to the summation order). ``None`` when the first signal is silent.

    One pass: each chunk's spectra are summed over the frames above a threshold guessed
    beforehand from the frames' energies in time (:func:`_loudest_frame_energy`); a
    chunk whose active frames, by the true loudest frame, differ from the guessed ones
    (a frame within a rounding error of the threshold) is transformed again. The sums
    are those of a second pass over the active frames, to the bit."""
    fraction = 10 ** (-range_db / 10)
    guess = _loudest_frame_energy(signals[0], n_fft, hop, n_frames, chunk) * fraction
    energies: list[np.ndarray] = []
    guessed: list[tuple[np.ndarray, list[np.ndarray] | None]] = []
    for a, p in frame_power_chunks(signals[0], n_fft, hop, n_frames, chunk):
        e = p.sum(axis=1)
        energies.append(e)
        on = e > guess
        part = None
        if on.any():
            part = [p[on].sum(axis=0)] + [frame_power_at(y, n_fft, hop, a, len(on))[on]
                                          .sum(axis=0) for y in signals[1:]]
        guessed.append((on, part))
        del p
    e = np.concatenate(energies)
    if not e.max() > 0:
        return None
    active = e > e.max() * fraction
    sums = [np.zeros(n_fft // 2 + 1) for _ in signals]
    for a, (on_guess, part) in zip(range(0, n_frames, chunk), guessed, strict=True):
        on = active[a : a + chunk]
        if not on.any():
            continue
        if part is None or not np.array_equal(on, on_guess):
            part = [frame_power_at(y, n_fft, hop, a, len(on))[on].sum(axis=0)
                    for y in signals]
        for total, s in zip(sums, part, strict=True):
            total += s
    k = int(active.sum())
    return tuple(total / k for total in sums)


def _loudest_frame_energy(y: np.ndarray, n_fft: int, hop: int, n_frames: int,
                          chunk: int) -> float:
    """About the largest frame energy of :func:`frame_power` (the sum of a frame's power
    spectrum) among ``y``'s first ``n_frames`` frames, from the windowed frames' energy
    in time (Parseval: a one-sided power spectrum sums to ``n_fft / 2`` times it, plus
    half the DC and Nyquist bins' power, which a guess leaves out): a few elementwise
    passes instead of the transforms."""
    w2 = hann_f32(n_fft) ** 2  # float32, a new array
    top = 0.0
    for a in range(0, n_frames, chunk):
        count = min(chunk, n_frames - a)
        seg = y[a * hop : (a + count - 1) * hop + n_fft]
        sq = np.square(seg, dtype=np.float32)
        if hop == n_fft:
            framed = sq.reshape(count, n_fft)
        else:
            from numpy.lib.stride_tricks import sliding_window_view

            framed = sliding_window_view(sq, n_fft)[::hop]
        top = max(top, float(np.einsum("ij,j->i", framed, w2).max()))
    return top * (n_fft / 2)


def frame_power(y: np.ndarray, n_fft: int, hop: int, *, n_frames: int | None = None,
                bins: int | None = None, dtype: type = np.float64,
                square_after_cast: bool = False) -> np.ndarray:
    """Power spectra ``(frames, bins)`` of Hann-windowed frames of a mono signal: the
    one framed spectrum every analysis uses (tempo, masking, EQ, features, reverb).

    ``y``: float32 ``(n,)``; frames of ``n_fft`` samples every ``hop`` samples, frame
    ``i`` starting at ``i * hop``; ``n_frames`` of them (default all that fit, ``1 +
    (n - n_fft) // hop``). The window is float32 (:func:`hann_f32`), the FFT scipy's
    (:func:`vocalmix.core.kernels.rfft`).
    ``bins``: keep the first ``bins`` frequency bins (default ``n_fft // 2 + 1``).
    The power ``re^2 + im^2`` is computed in the FFT's precision and stored as ``dtype``,
    or, with ``square_after_cast``, computed from ``re`` and ``im`` cast to ``dtype``.
    """
    from vocalmix.core.kernels import rfft

    n = 1 + (len(y) - n_fft) // hop if n_frames is None else n_frames
    if n < 1:
        raise ValueError(f"signal of {len(y)} samples is shorter than one {n_fft}-sample frame")
    if hop == n_fft:
        framed = y[: n * n_fft].reshape(n, n_fft)
    else:  # overlapping frames as a strided view: no index array, no gathered copy
        from numpy.lib.stride_tricks import sliding_window_view

        need = (n - 1) * hop + n_fft
        if len(y) < need:
            raise ValueError(f"{n} frames need {need} samples, the signal has {len(y)}")
        framed = sliding_window_view(y[:need], n_fft)[::hop]
    frames = framed * hann_f32(n_fft)
    s = rfft(frames, axis=1)
    del frames
    if bins is not None:
        s = s[:, :bins]
    if square_after_cast:
        return np.asarray(s.real.astype(dtype) ** 2 + s.imag.astype(dtype) ** 2)
    return np.asarray((s.real**2 + s.imag**2).astype(dtype))


#: 1/3-octave centres (Hz) from 100 Hz to 10 kHz (IEC 61260 base-10 series, rounded)
THIRD_OCTAVE_HZ = tuple(float(f) for f in 1000.0 * 10.0 ** (np.arange(-10, 11) / 10.0))


def _mean_density(x: np.ndarray, sample_rate: int, n_fft: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Welch's one-sided power density of ``x``'s channel mean (Hann-windowed ``n_fft``
    frames, or the whole signal when shorter, half overlapping): ``(frequencies Hz,
    density per Hz)`` (:func:`vocalmix.core.kernels.welch_density`)."""
    from vocalmix.core.kernels import welch_density

    m = mono_f64(x)
    return welch_density(m, sample_rate, min(n_fft, len(m)))


def _band_slices(f: np.ndarray, sample_rate: int, centres_hz: tuple[float, ...]
                 ) -> tuple[float, list[slice], np.ndarray]:
    """The bin width of the frequencies ``f`` (Hz), the slice of the bins in each band a
    third of an octave wide around ``centres_hz`` (edges ``fc * 2 ** (+-1/6)``; ``lo <= f
    < hi``, empty for a band no bin falls in) and the bands' upper edges (Hz)."""
    df = float(f[1] - f[0]) if f.size > 1 else float(sample_rate)
    c = np.asarray(centres_hz, dtype=np.float64)
    lo, hi = c * 2.0 ** (-1.0 / 6.0), c * 2.0 ** (1.0 / 6.0)
    a, b = np.searchsorted(f, lo), np.searchsorted(f, hi)
    return df, [slice(int(i), int(j)) for i, j in zip(a, b, strict=True)], hi


def band_levels_db(x: np.ndarray, sample_rate: int,
                   centres_hz: tuple[float, ...] = THIRD_OCTAVE_HZ,
                   n_fft: int = 4096) -> np.ndarray:
    """Long-term power of ``x`` (channels averaged) in bands a third of an octave wide
    around ``centres_hz``, dB (Welch's average of Hann-windowed ``n_fft`` frames, half
    overlapping; bands above the Nyquist frequency read ``-inf``)."""
    f, p = _mean_density(x, sample_rate, n_fft)
    _df, bands, _hi = _band_slices(f, sample_rate, centres_hz)
    out = np.full(len(bands), -np.inf)
    for i, band in enumerate(bands):
        if band.stop > band.start:
            out[i] = 10.0 * np.log10(max(float(p[band].mean()), 1e-30))
    return out


#: 1/3-octave centres (Hz) of the whole audible range, 25 Hz to 20 kHz (IEC 61260-1
#: base-10 series, ``1000 * 10 ** (k / 10)``, exact rather than nominal)
AUDIBLE_THIRD_OCTAVE_HZ = tuple(float(f) for f in 1000.0 * 10.0 ** (np.arange(-16, 14) / 10.0))
#: their nominal names (IEC 61260-1 Annex E), Hz, as people label the bands
AUDIBLE_THIRD_OCTAVE_NOMINAL = (
    "25", "31.5", "40", "50", "63", "80", "100", "125", "160", "200", "250", "315", "400",
    "500", "630", "800", "1000", "1250", "1600", "2000", "2500", "3150", "4000", "5000",
    "6300", "8000", "10000", "12500", "16000", "20000")


#: the Welch segment of :func:`third_octave_spectrum_db`, samples (2.7 Hz bins at 44.1 kHz)
THIRD_OCTAVE_NFFT = 16384


def third_octave_spectrum_db(x: np.ndarray, sample_rate: int,
                             centres_hz: tuple[float, ...] = AUDIBLE_THIRD_OCTAVE_HZ,
                             n_fft: int = THIRD_OCTAVE_NFFT) -> np.ndarray:
    """Long-term level of ``x`` (channels averaged) in each band a third of an octave wide
    around ``centres_hz`` (edges ``fc * 2 ** (+-1/6)``, IEC 61260-1's base-2 edges), dB re
    the power of a full-scale sine: a sine of amplitude ``A`` reads ``20 log10(A)`` in
    its band, and the bands of white noise of variance ``s**2`` read ``10 log10(2 s**2
    B / (sample_rate / 2))`` for a band ``B`` Hz wide.

    The power is Welch's one-sided density (Hann-windowed ``n_fft`` frames, half
    overlapping; 2.7 Hz bins at 44.1 kHz, so the 25 Hz band holds two) summed over the
    band's bins times their width (Parseval: the bands together hold the signal's mean
    square). A band reaching past the Nyquist frequency, or narrower than one bin, reads
    ``nan``; a band with no energy reads ``-inf``."""
    return third_octave_levels_db(*_mean_density(x, sample_rate, n_fft), sample_rate,
                                  centres_hz)


def third_octave_levels_db(f: np.ndarray, p: np.ndarray, sample_rate: int,
                           centres_hz: tuple[float, ...] = AUDIBLE_THIRD_OCTAVE_HZ
                           ) -> np.ndarray:
    """:func:`third_octave_spectrum_db` from Welch's one-sided density ``p`` (per Hz) at
    the frequencies ``f`` (Hz, evenly spaced from 0): of a signal measured a block at a
    time (:class:`vocalmix.core.kernels.WelchDensity`)."""
    df, bands, hi = _band_slices(f, sample_rate, centres_hz)
    out = np.full(len(bands), np.nan)
    for i, band in enumerate(bands):
        if band.stop > band.start and hi[i] <= 0.5 * sample_rate:
            power = float(p[band].sum()) * df  # mean square in the band
            out[i] = 10.0 * np.log10(2.0 * power) if power > 0 else -np.inf
    return out
