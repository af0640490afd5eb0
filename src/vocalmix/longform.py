"""Long inputs (a DJ set, a live recording, an album side): mixed in bounded memory.

The whole-file path (:func:`vocalmix.pipeline.mix` on two decoded arrays) holds about
five full-length stereo arrays at once: 1.1 GB for 10 minutes, 6 GB for an hour. Inputs
whose decoded size (stereo float32 at the mix's rate, the longer of the two) is above
:func:`long_input_bytes` (320 MB by default: 15 minutes at 44.1 kHz) take this path:

1. both files are opened and checked from their headers, then decoded once, a block at a
   time (:class:`vocalmix.core.audio.AudioReader`), for the checks of the whole-file
   path (NaN, absurd peaks, silence, constant offsets, clipping) and the vocal's activity;
2. the settings are estimated and resolved on :data:`EXCERPTS` excerpts of
   :data:`EXCERPT_S` seconds (6 minutes in all), spread over the song where the vocal
   sings, joined with :data:`JOIN_FADE_S` fades: the estimators and resolvers see a
   6-minute song;
3. the mix is rendered a block at a time (:class:`vocalmix.core.longrender.BlockRender`,
   the live chain: the offline render's samples within float rounding) and written as it
   is made; the achieved figures are measured on the whole render on the way.

So the settings come from a sample of the song, and the figures the params document
reports under ``achieved`` are the whole song's: where the excerpts differ from the whole
(the vocal-to-mix ratio is solved on them), ``achieved`` says by how much.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vocalmix.core.audio import (
    MB,
    AudioReader,
    BlockSource,
    OutputPlan,
    decoded_bytes,
    resample,
)
from vocalmix.core.params import MixParams
from vocalmix.core.progress import Progress, ProgressEvent, no_progress

if TYPE_CHECKING:
    # (imported where used: deciding whether an input is long, the command line's first
    # step, needs none of the mixing path, which then loads while the inputs decode)
    from vocalmix.core.measure import Measurement
    from vocalmix.pipeline import Estimate

#: decoded size (MB of stereo float32 at the mix's rate) above which an input is long
LONG_INPUT_MB = 320.0
#: excerpts the settings of a long input are estimated on
EXCERPTS = 12
#: length of each excerpt at up to :data:`EXCERPT_RATE_HZ`, s (shorter above that rate, so
#: that the excerpts never take more memory than 6 minutes at 48 kHz)
EXCERPT_S = 30.0
EXCERPT_RATE_HZ = 48000
#: fade in and out at each end of an excerpt, s (the joins would otherwise click)
JOIN_FADE_S = 0.01
#: a stretch of the vocal counts as singing when its RMS is above this, dBFS
ACTIVE_RMS_DBFS = -50.0


def long_input_bytes() -> int:
    """The decoded size above which an input is long, bytes: ``$VOCALMIX_LONG_INPUT_MB``
    MB or :data:`LONG_INPUT_MB`."""
    try:
        mb = float(os.environ.get("VOCALMIX_LONG_INPUT_MB", LONG_INPUT_MB))
    except ValueError:
        mb = LONG_INPUT_MB
    return int((mb if mb > 0 else LONG_INPUT_MB) * MB)


@dataclass(frozen=True)
class LongPair:
    """A vocal and a backing read a block at a time, mixed at ``sample_rate`` Hz over
    ``frames`` samples (the longer input's length at that rate; the shorter one is padded
    with silence). ``notes`` says what was done to them on the way in."""

    vocal: AudioReader
    backing: AudioReader
    sample_rate: int
    frames: int
    notes: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.frames / float(self.sample_rate)


def _frames_at(r: AudioReader, sample_rate: int) -> int:
    return -(-r.frames * sample_rate // r.sample_rate)


def open_long_pair(vocal: str | os.PathLike[str], backing: str | os.PathLike[str], *,
                   fold: str = "error", sample_rate: int | None = None,
                   progress: Progress = no_progress, force: bool = False) -> LongPair | None:
    """The two files as a :class:`LongPair` when they are long (see the module doc), or
    ``None`` when they are not (or cannot be read in parts: the whole-file reader then
    says why). ``force``: take the long path whatever their length. Checks both files
    before returning (:meth:`AudioReader.scan`), with the errors of the whole-file
    path."""
    from vocalmix.core.audio import checked_rate, padding_notes
    from vocalmix.core.errors import VocalmixError

    try:
        rv = AudioReader(vocal, label=f"vocal {vocal}", fold=fold)
        rb = AudioReader(backing, label=f"backing {backing}", fold=fold)
    except VocalmixError:
        return None  # the whole-file path reads it again and words the error
    sr = (checked_rate(sample_rate, "output sample rate") if sample_rate is not None
          else max(rv.sample_rate, rb.sample_rate))
    n = max(_frames_at(rv, sr), _frames_at(rb, sr))
    if not force and decoded_bytes(n, 2) <= long_input_bytes():
        return None
    progress(ProgressEvent("read", 0.0, f"long inputs ({n / sr / 60:.1f} min): checking "
                           "them a block at a time"))
    rv.scan("vocal", activity_dbfs=ACTIVE_RMS_DBFS, vocal_channels=True)
    rb.scan("backing")
    notes = list(rv.notes) + list(rb.notes)
    for name, r in (("vocal", rv), ("backing", rb)):
        if r.sample_rate != sr:
            notes.append(f"{name} resampled from {r.sample_rate} Hz to {sr} Hz")
    n = max(_frames_at(rv, sr), _frames_at(rb, sr))  # the lengths the decoders found
    for name, r in (("vocal", rv), ("backing", rb)):
        if _frames_at(r, sr) < n:
            notes += padding_notes(name, (n - _frames_at(r, sr)) / sr, n / sr)
    return LongPair(rv, rb, sr, n, tuple(notes))


def excerpt_starts(activity: np.ndarray, hop: int, n: int, length: int, count: int
                   ) -> list[int]:
    """Where the excerpts start (samples at the mix's rate): ``count`` windows of
    ``length`` samples out of ``n``, not overlapping, spread evenly over the windows in
    which the vocal sings (``activity``: one flag per ``hop`` samples); evenly over the
    whole song when it sings in fewer windows than ``count``."""
    slots = n // length
    if slots <= count:
        return [i * length for i in range(slots)]
    sings = []
    for i in range(slots):
        a, b = i * length // hop, max(i * length // hop + 1, (i + 1) * length // hop)
        sings.append(bool(activity[a:b].any()) if a < activity.size else False)
    pool = [i for i in range(slots) if sings[i]]
    if len(pool) < count:
        pool = list(range(slots))
    pick = np.unique(np.round(np.linspace(0, len(pool) - 1, count)).astype(int))
    return [pool[int(k)] * length for k in pick]


def _excerpt(r: AudioReader, start: int, length: int, sample_rate: int) -> np.ndarray:
    """``length`` samples at ``sample_rate`` from ``start`` (at that rate) of ``r``."""
    if r.sample_rate == sample_rate:
        return r.read(start, length)
    s0 = start * r.sample_rate // sample_rate
    x = resample(r.read(s0, -(-length * r.sample_rate // sample_rate) + 1), r.sample_rate,
                 sample_rate)
    out = np.zeros((length, 2), np.float32)
    out[: min(length, x.shape[0])] = x[:length]
    return out


def _moved_excerpt(r: AudioReader, start: int, length: int, sample_rate: int, shift: int
                   ) -> np.ndarray:
    """:func:`_excerpt` of the take moved by ``shift`` samples (at ``sample_rate``; see
    :func:`vocalmix.core.dsp.shifted_rows`): silence before the take starts."""
    a = start - shift
    if a >= 0:
        return _excerpt(r, a, length, sample_rate)
    out = np.zeros((length, 2), np.float32)
    if length + a > 0:
        out[-a:] = _excerpt(r, 0, length + a, sample_rate)
    return out


def excerpts(pair: LongPair, *, count: int = EXCERPTS, excerpt_s: float = EXCERPT_S,
             offset_ms: float = 0.0) -> tuple[np.ndarray, np.ndarray, str]:
    """The vocal and the backing excerpts the settings are estimated on, joined (float32
    ``(k, 2)`` each, at the pair's rate), and a note saying which. Each excerpt fades in
    and out over :data:`JOIN_FADE_S`. The vocal's are those of the take moved by
    ``offset_ms`` (ms, :attr:`vocalmix.core.params.VocalChain.offset_ms`)."""
    from vocalmix.core.dsp import offset_samples

    sr = pair.sample_rate
    shift = offset_samples(offset_ms, sr)
    length = min(int(round(excerpt_s * sr)), pair.frames)
    act = pair.vocal.activity
    hop = -(-pair.vocal.activity_hop * sr // pair.vocal.sample_rate)
    starts = excerpt_starts(act, hop, pair.frames, length, count)
    fade = np.ones(length, np.float32)
    k = min(int(round(JOIN_FADE_S * sr)), length // 2)
    if k:
        ramp = np.linspace(0.0, 1.0, k + 2, dtype=np.float32)[1:-1]
        fade[:k], fade[length - k :] = ramp, ramp[::-1]
    parts_v, parts_b = [], []
    for s in starts:
        parts_v.append(_moved_excerpt(pair.vocal, s, length, sr, shift) * fade[:, None])
        parts_b.append(_excerpt(pair.backing, s, length, sr) * fade[:, None])
    v, b = np.concatenate(parts_v), np.concatenate(parts_b)
    minutes = ", ".join(f"{s / sr / 60:.1f}" for s in starts)
    what = (f"{len(starts)} excerpts of {length / sr:g} s" if len(starts) != 1
            else f"one excerpt of {length / sr:g} s")
    note = (f"long inputs ({pair.duration_s / 60:.1f} min): the settings were estimated on "
            f"{what} where the vocal sings (starting at minute{'s' if len(starts) != 1 else ''}"
            f" {minutes}) and the mix rendered a block at a time; the achieved figures are "
            "measured on the whole mix")
    return v, b, note


@dataclass(frozen=True)
class LongFigures:
    """What ``vocalmix analyze`` reads of a file too long to hold whole, measured a block
    at a time (:func:`measure_long`).

    Attributes:
        measurement: integrated loudness (LUFS), LRA (LU), true peak (dBTP), length (s).
        spectrum_db: the long-term 1/3-octave levels
            (:func:`vocalmix.core.dsp.third_octave_spectrum_db`), dB.
        tempo_bpm: :func:`vocalmix.estimators.tempo.estimate_tempo`, BPM (``nan``: no
            steady pulse).
        short_term_lufs: short-term loudness every 100 ms, LUFS.
        sample_rate: the file's rate, Hz.
        channels: the file's channels.
    """

    measurement: Measurement
    spectrum_db: np.ndarray
    tempo_bpm: float
    short_term_lufs: np.ndarray
    sample_rate: int
    channels: int


def open_long_file(path: str | os.PathLike[str], *, fold: str = "error",
                   force: bool = False) -> AudioReader | None:
    """The file ``path`` as an :class:`AudioReader` (opened, not yet decoded) when its
    decoded size is over :func:`long_input_bytes` (``force``: whatever its size), for
    :func:`measure_long`; ``None`` when it is not long, or cannot be read in parts (the
    whole-file reader then says why)."""
    from vocalmix.core.errors import VocalmixError

    try:
        r = AudioReader(path, label=str(path), fold=fold)
    except VocalmixError:
        return None
    if not force and decoded_bytes(r.frames, 2) <= long_input_bytes():
        return None
    return r


def measure_long(r: AudioReader, *, progress: Progress = no_progress) -> LongFigures:
    """The ``analyze`` figures of the file :func:`open_long_file` opened, once
    :meth:`AudioReader.scan` has checked it with ``remove_offset=False`` (the samples as
    they are), decoded once more a block at a time: the memory of a few blocks and of the
    11 kHz mono signal the tempo is read from (160 MB for an hour), instead of the whole
    file's samples and their copies.

    The loudness figures are those of the whole file to the bit
    (:class:`~vocalmix.core.measure.SegmentMeter`); the true peak to the bit
    (:class:`~vocalmix.core.measure.TruePeakMeter`); the spectrum to float rounding
    (:class:`~vocalmix.core.kernels.WelchDensity`); the tempo reads a downmix resampled by
    a streaming soxr resampler where the whole file's is resampled at once."""
    import soxr

    from vocalmix.core.dsp import THIRD_OCTAVE_NFFT, mono, mono_f64, third_octave_levels_db
    from vocalmix.core.kernels import WelchDensity
    from vocalmix.core.measure import (
        Measurement,
        SegmentMeter,
        TruePeakMeter,
        integrated_loudness_of,
        lra_from_short_term,
        short_term_from_segments,
    )
    from vocalmix.estimators.tempo import ANALYSIS_SR as TEMPO_SR
    from vocalmix.estimators.tempo import estimate_tempo

    sr = r.sample_rate
    progress(ProgressEvent("analyse", 0.0, f"measuring {r.frames / sr / 60:.1f} min a block "
                           "at a time"))
    meter, peak = SegmentMeter(sr), TruePeakMeter()
    welch = WelchDensity(sr, min(THIRD_OCTAVE_NFFT, r.frames))
    rs = (soxr.ResampleStream(sr, TEMPO_SR, 1, dtype="float32", quality="LQ")
          if sr != TEMPO_SR else None)
    downmix: list[np.ndarray] = []
    seen, shown = 0, 0.0
    for b in r.blocks():
        meter.add(b)
        peak.add(b)
        welch.add(mono_f64(b))
        m = mono(b)
        downmix.append(rs.resample_chunk(m) if rs is not None else m)
        seen += b.shape[0]
        done = seen / max(r.frames, 1)
        if done - shown >= 0.1:  # (a line every tenth of the file)
            shown = done
            progress(ProgressEvent("analyse", min(done, 1.0), f"measured {seen / sr / 60:.1f} "
                                   f"of {r.frames / sr / 60:.1f} min"))
    if rs is not None:
        downmix.append(rs.resample_chunk(np.zeros(0, np.float32), last=True))
    y = np.concatenate(downmix).astype(np.float32, copy=False)
    del downmix
    stats = meter.stats()
    st = short_term_from_segments(stats.energy, stats.segment_len)
    measurement = Measurement(integrated_lufs=integrated_loudness_of(stats),
                              lra_lu=float(lra_from_short_term(st)),
                              true_peak_dbtp=peak.dbtp(), duration_s=seen / float(sr))
    return LongFigures(measurement, third_octave_levels_db(*welch.result(), sr),
                       estimate_tempo(y, TEMPO_SR), st, sr, r.channels)


def estimate_long(pair: LongPair, *, count: int = EXCERPTS, excerpt_s: float | None = None,
                  **kwargs: Any) -> Estimate:
    """:func:`vocalmix.pipeline.estimate_params` (same keyword arguments) on the
    :func:`excerpts` of a long pair (``excerpt_s`` long each, s; by default
    :data:`EXCERPT_S`, shortened above :data:`EXCERPT_RATE_HZ`); the resolvers' renders of
    the excerpts are dropped (``resolved`` is ``None``)."""
    from vocalmix.pipeline import Estimate, estimate_params

    if excerpt_s is None:
        excerpt_s = EXCERPT_S * min(1.0, EXCERPT_RATE_HZ / pair.sample_rate)
    progress: Progress = kwargs.get("progress", no_progress)
    progress(ProgressEvent("estimate", 0.05, "reading the excerpts to estimate on"))
    base = kwargs.get("base")
    offset = kwargs.get("vocal_offset_ms")
    auto_note = None
    if offset == "auto":  # the copy of the backing read on the excerpts as they are
        from vocalmix.core.bleed import backing_in_vocal
        from vocalmix.core.params import Reason
        from vocalmix.pipeline import auto_offset_ms

        v0, b0, _ = excerpts(pair, count=count, excerpt_s=excerpt_s)
        offset, auto_note = auto_offset_ms(backing_in_vocal(v0, b0, pair.sample_rate))
        del v0, b0
        kwargs = {**kwargs, "vocal_offset_ms": offset}
    if offset is None:
        offset = base.vocal.offset_ms if base is not None else 0.0
    elif auto_note is None:
        from vocalmix.core.params import VocalChain

        VocalChain(offset_ms=offset)  # its range checked (ParamsError) before any reading
    # the excerpts are cut from the moved take (where the take sings is read on the
    # file as it is, a few hundred ms at most from where the moved one does)
    v, b, note = excerpts(pair, count=count, excerpt_s=excerpt_s, offset_ms=offset)
    est = estimate_params(v, b, pair.sample_rate, take_moved=True, **kwargs)
    params = est.params
    notes = (*pair.notes, note, *est.notes)
    if auto_note is not None:
        notes = (*pair.notes, note, auto_note, *est.notes)
        params = params.with_reasons(Reason("vocal.offset_ms", "rule", auto_note))
    params = replace(params, provenance=replace(params.provenance, notes=notes))
    return Estimate(params=params, notes=notes, timings_s=est.timings_s, resolved=None)


class LongRender:
    """A render of a long pair, made as it is written: :attr:`source` is the
    :class:`vocalmix.core.audio.BlockSource` whose outputs are the mix (0) and, with
    ``stems``, the vocal (1), the dry vocal (2) and the backing (3), as
    :class:`vocalmix.core.render.Rendered` names them. Once it has been written,
    :meth:`params` is the document with the whole mix's achieved figures."""

    def __init__(self, pair: LongPair, params: MixParams, *, stems: bool = False,
                 progress: Progress = no_progress) -> None:
        from vocalmix.core.longrender import BlockRender

        sr = pair.sample_rate
        self._params = params
        shown = [-1.0]

        def step(fraction: float) -> None:
            if fraction - shown[0] >= 0.05 or fraction >= 1.0:
                shown[0] = fraction
                progress(ProgressEvent("render", 0.8 + 0.2 * fraction,
                                       f"rendering {fraction:.0%} of "
                                       f"{pair.duration_s / 60:.1f} min"))

        self._render = BlockRender(pair.vocal.blocks(sr), pair.backing.blocks(sr),
                                   pair.frames, sr, params, stems=stems, progress=step)
        self.source = BlockSource(self._render.blocks(), sr)
        self._done: MixParams | None = None

    def params(self) -> MixParams:
        """The params with the achieved figures of the whole mix (after it was written)."""
        if self._done is None:
            from vocalmix.pipeline import achieved_from_stats

            r = self._render
            if not r.done:
                raise ValueError("the long render has not been written yet")
            achieved = achieved_from_stats(
                r.vocal.stats(), r.backing.stats(), r.premaster.stats(), r.mix.stats(),
                r.vocal_dry.stats(), measure=self._params.targets.vocal_to_mix_measure,
                true_peak_dbtp=r.true_peak.dbtp(), gain_reduction_db=r.gain_reduction_db)
            self._done = replace(self._params, achieved=achieved)
        return self._done

    def contents(self, output: str | os.PathLike[str], stems: list[Any],
                 params_out: str | os.PathLike[str] | None, mix_subtype: str | None = None
                 ) -> Mapping[str | os.PathLike[str], Any]:
        """What :meth:`vocalmix.core.audio.OutputPlan.commit` writes: the mix at
        ``output`` (in libsndfile's ``mix_subtype``, default the format's), the three
        stems at ``stems`` (paths, or none) and the params document at ``params_out``
        (written last, with the figures measured while writing)."""
        # the mix is under the master's limiter (a ceiling of at most 0 dBTP)
        out: dict[str | os.PathLike[str], Any] = {
            output: self.source.output(0, mix_subtype, within_full_scale=True)}
        for i, path in enumerate(stems, start=1):
            # 32-bit float: a pre-master stem may pass full scale (the limiter acts on the
            # mix only), and written a block at a time its peak is not known beforehand
            out[path] = self.source.output(i, "FLOAT")
        if params_out:
            make: Callable[[], str] = lambda: self.params().to_json()  # noqa: E731
            out[params_out] = make
        return out


def write_long(plan: OutputPlan, pair: LongPair, params: MixParams,
               output: str | os.PathLike[str], *, stems: list[Any] | None = None,
               params_out: str | os.PathLike[str] | None = None,
               progress: Progress = no_progress, mix_subtype: str | None = None
               ) -> tuple[MixParams, list[Path]]:
    """Render ``params`` over a long pair a block at a time into the outputs ``plan``
    holds (the mix at ``output``, in libsndfile's ``mix_subtype`` when given, e.g.
    ``"PCM_16"``: :func:`vocalmix.core.audio.bit_depth_subtype`; the three stems at
    ``stems``, the params document at ``params_out``;
    :class:`vocalmix.core.audio.OutputPlan` checked them before any work).
    Returns the params with the whole mix's achieved figures, and the paths written.

    From a library, a long pair mixes like this::

        pair = open_long_pair("set_vocal.wav", "set_backing.wav", force=True)
        plan = OutputPlan(audio=["mix.wav"], files=["params.json"])
        est = estimate_long(pair, method="model")
        params, written = write_long(plan, pair, est.params, "mix.wav",
                                     params_out="params.json")
    """
    lr = LongRender(pair, params, stems=bool(stems), progress=progress)
    written = plan.commit(lr.contents(output, list(stems or []), params_out, mix_subtype))
    return lr.params(), written


__all__ = [
    "EXCERPTS",
    "EXCERPT_S",
    "LONG_INPUT_MB",
    "LongPair",
    "LongRender",
    "estimate_long",
    "excerpt_starts",
    "excerpts",
    "long_input_bytes",
    "open_long_pair",
    "write_long",
]
