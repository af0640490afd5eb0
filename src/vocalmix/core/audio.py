"""All file I/O of vocalmix: audio in and out, params documents in and out.

Reading goes through ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, MP3 and more);
samples are float32 shaped ``(n_samples, 2)`` (mono is duplicated to both channels).
Writing goes through an :class:`OutputPlan`: all outputs of a command are checked before
any work (an existing file is never replaced unless ``force`` is set, and never if it is
an input), then written together: each to a scratch file in its destination folder,
synced, renamed into place under a journal, so that a kill leaves either the previous
files or the new ones once :func:`recover_outputs` (which every plan runs) has seen the
folder. :func:`write_audio` and :func:`write_text` are plans of one file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf

from vocalmix.core.errors import (
    AudioError,
    AudioFileNotFoundError,
    AudioLevelError,
    AudioTooLargeError,
    ChannelLayoutError,
    DurationError,
    EmptyAudioError,
    NonFiniteAudioError,
    OutputError,
    OutputExistsError,
    OverwriteInputError,
    ParamsError,
    SampleRateError,
    SilentAudioError,
    UnreadableAudioError,
)

MIN_DURATION_S = 0.5
MAX_DURATION_S = 3600.0
#: largest decoded input accepted by default, MB of float32 samples (2**20 bytes): 23 min
#: of stereo at 48 kHz, 5.8 min at 192 kHz. Mixing needs about 11 times this in memory.
MAX_DECODED_MB = 512.0
MB = 2**20
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 384000
FOLD_MODES = ("error", "mean", "first2")
CLIP_LEVEL = 0.999
SILENCE_PEAK = 10 ** (-90 / 20)  # -90 dBFS peak: nothing audible
#: the highest sample peak accepted, dBFS: float files may go above full scale, but a
#: peak this far above it means the samples are scaled wrongly (or are not audio)
MAX_PEAK_DBFS = 60.0
#: a file whose sample peak lies under this (dBFS), yet above silence, gets a note: it was
#: recorded far under full scale (a preamp's gain left low), and the mix raises the noise
#: it was recorded with as much as the voice (a 16-bit file peaking at -40 dBFS keeps
#: about 9 of its bits)
QUIET_PEAK_DBFS = -40.0
#: a constant (DC) offset at or above this, dBFS, is taken out of a vocal or backing
#: before mixing (with a note): inaudible, it would still take headroom from the mix
DC_OFFSET_DBFS = -40.0
#: a stereo vocal whose quieter channel holds this much less energy (dB) than its louder
#: one is a microphone recorded on one channel of a stereo file (an audio interface's
#: input 1 of 2): its louder channel is used on both sides, so that the voice sits in the
#: centre instead of in one ear (:func:`vocal_channel_fix`)
ONE_SIDED_DB = 30.0
#: a stereo vocal whose channels correlate at or below this is one signal with a
#: channel's polarity inverted (a channel wired or recorded inverted): it cancels in a
#: mono downmix (a phone, a club system), so that channel's polarity is flipped
ANTIPHASE_CORRELATION = -0.99
#: a stereo vocal whose channels correlate at or below this (but above
#: :data:`ANTIPHASE_CORRELATION`) partly cancels in mono: it is warned about and left as
#: it is, since a produced vocal may be made so (one of the 91 mixed vocal stems of the
#: shared data correlates -0.92)
OUT_OF_PHASE_WARN_CORRELATION = -0.5


@dataclass(frozen=True)
class Audio:
    """A decoded signal.

    Attributes:
        samples: float32 ``(n_samples, 2)``.
        sample_rate: Hz.
        path: where it came from (or a label).
        source_channels: channel count of the source before any fold or upmix.
        notes: what was done to it on the way in (fold, upmix, clipping found...).
        label: how messages name it (default: ``path``).
    """

    samples: np.ndarray
    sample_rate: int
    path: str = "<array>"
    source_channels: int = 2
    notes: tuple[str, ...] = field(default=())
    label: str = ""

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / float(self.sample_rate)


def checked_rate(sample_rate: object, what: str = "sample rate") -> int:
    """``sample_rate`` as an int, Hz; raises :class:`SampleRateError` unless it is a whole
    number of Hz from :data:`MIN_RATE_HZ` to :data:`MAX_RATE_HZ` (NaN, 0, 44100.5, a
    string and a bool are refused, not rounded or taken for a default)."""
    from vocalmix.core.params import is_number

    rate = float(sample_rate) if is_number(sample_rate) else math.nan
    if not (math.isfinite(rate) and rate == int(rate) and MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
        raise SampleRateError(f"{what} {sample_rate!r} Hz is unsupported (a whole number of "
                              f"Hz, {MIN_RATE_HZ} to {MAX_RATE_HZ})")
    return int(rate)


def validate_signal(
    x: np.ndarray,
    sample_rate: int,
    *,
    label: str = "audio",
    fold: str = "error",
    max_duration_s: float = MAX_DURATION_S,
) -> tuple[np.ndarray, tuple[str, ...], int]:
    """Check a signal and return it as float32 stereo, with notes and source channels.

    Raises the specific :mod:`vocalmix.core.errors` class for: zero length, NaN/Inf, a
    peak above ``MAX_PEAK_DBFS`` (:class:`AudioLevelError`), more than two channels
    (unless ``fold`` is ``mean`` or ``first2``), a duration under ``MIN_DURATION_S`` or
    over ``max_duration_s``, or a sample rate outside 8-384 kHz.
    """
    notes: list[str] = []
    sample_rate = checked_rate(sample_rate, f"{label}: sample rate")
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise AudioError(f"{label}: samples must be a float or integer array, not {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ChannelLayoutError(f"{label}: expected (samples, channels), got shape {x.shape}")
    n, ch = x.shape
    if n == 0 or ch == 0:
        raise EmptyAudioError(f"{label}: the file holds no audio samples (zero length)")
    x = x.astype(np.float32, copy=False)
    peak_in = _checked_peak(x, label)
    dur = n / float(sample_rate)
    if dur < MIN_DURATION_S:
        raise DurationError(
            f"{label}: {dur:.3f} s is too short to mix (at least {MIN_DURATION_S} s needed)"
        )
    if dur > max_duration_s:
        raise DurationError(_too_long(label, dur, max_duration_s))
    x = _as_stereo(x, fold, label, notes)
    note = _peak_note(label, peak_in,
                      _longest_clipped_run(x) if peak_in >= CLIP_LEVEL else 0)
    if note:
        notes.append(note)
    return np.ascontiguousarray(x, dtype=np.float32), tuple(notes), ch


def _peak_note(label: str, peak: float, clipped_run: int) -> str | None:
    """What the samples' peak says of the file: past full scale (``peak`` above 1.0, a
    floating-point file, read as it is), clipped (a run of ``clipped_run`` >= 3
    consecutive samples at full scale), or recorded far under full scale (a peak under
    :data:`QUIET_PEAK_DBFS`, above silence); ``None`` for none of them.

    A floating-point file (a DAW's 32-bit export of a hot bus) may hold samples past
    full scale: nothing is clipped on reading them, and their run at or above full scale
    is no sign of clipping, so it gets the first note only."""
    if peak > 1.0:
        return (f"{label}: its peak is {20 * math.log10(peak):+.1f} dBFS, past full scale "
                "(floating-point samples): read as they are, nothing clipped; the master's "
                "limiter keeps the mix under its ceiling")
    if clipped_run >= 3:
        return (f"{label}: appears clipped ({clipped_run} consecutive samples at full "
                "scale); the mix will carry that distortion")
    if SILENCE_PEAK <= peak < 10.0 ** (QUIET_PEAK_DBFS / 20.0):
        return (f"{label}: its peak is {20 * math.log10(peak):.1f} dBFS, recorded far under "
                "full scale: it is mixed as it would be recorded louder, but whatever noise "
                "it was recorded with is raised as much as the voice; record with peaks "
                "nearer -6 dBFS")
    return None


def _checked_peak(x: np.ndarray, label: str) -> float:
    """The peak ``|x|`` of float32 samples; raises :class:`NonFiniteAudioError` for a NaN
    or infinite sample and :class:`AudioLevelError` for a peak above ``MAX_PEAK_DBFS``."""
    # two reductions instead of whole-signal temporaries: the largest and the smallest
    # sample are NaN when any sample is, infinite when any is, and give the peak |x|
    hi, lo = float(x.max()), float(x.min())
    if not (math.isfinite(hi) and math.isfinite(lo)):
        bad = int((~np.isfinite(x)).sum())
        raise NonFiniteAudioError(
            f"{label}: {bad} samples are NaN or infinite; re-export the file from your editor"
        )
    peak_in = max(hi, -lo)
    if peak_in > 10 ** (MAX_PEAK_DBFS / 20):
        raise AudioLevelError(
            f"{label}: its peak is {20 * np.log10(peak_in):+.1f} dBFS, far above full scale "
            f"(at most {MAX_PEAK_DBFS:+.0f} dBFS is accepted): the samples are scaled wrongly; "
            "re-export the file from your editor"
        )
    return peak_in


def _as_stereo(x: np.ndarray, fold: str, label: str, notes: list[str] | None = None
               ) -> np.ndarray:
    """``x`` ``(n, channels)`` as two channels: mono duplicated, more than two folded as
    ``fold`` says (``mean`` or ``first2``; ``error`` raises :class:`ChannelLayoutError`).
    What was done is appended to ``notes``."""
    ch = x.shape[1]
    if ch > 2:
        if fold == "mean":
            m = x.mean(axis=1, keepdims=True)
            x = np.concatenate([m, m], axis=1)
            note = f"{label}: folded {ch} channels to mono by averaging"
        elif fold == "first2":
            x = np.ascontiguousarray(x[:, :2])
            note = f"{label}: kept the first 2 of {ch} channels"
        else:
            raise ChannelLayoutError(
                f"{label}: has {ch} channels; vocalmix mixes mono or stereo: fold them "
                "to mono by averaging ('mean') or keep channels 1-2 ('first2')"
            )
    elif ch == 1:
        x = np.concatenate([x, x], axis=1)
        note = f"{label}: mono, placed in the centre of the stereo image"
    else:
        return x
    if notes is not None:
        notes.append(note)
    return x


def _clipped_rows(x: np.ndarray) -> np.ndarray:
    """Whether a channel of each row of ``x`` ``(n, channels)`` reaches
    :data:`CLIP_LEVEL`: ``(n,)`` bool, from :func:`vocalmix.core.measure.sample_peak`
    (a channel at a time: numpy's ``any(axis=1)`` reduces rows of two samples one at a
    time, 0.08 s against 0.01 s for 3 minutes of stereo, read for every hot master)."""
    from vocalmix.core.measure import sample_peak

    return sample_peak(x) >= CLIP_LEVEL


def _longest_clipped_run(x: np.ndarray) -> int:
    clipped = _clipped_rows(x).astype(np.int8)
    if not clipped.any():
        return 0
    edge = np.zeros(1, np.int8)  # (int8 throughout: a Python 0 made it int64, 0.09 s)
    d = np.diff(np.concatenate([edge, clipped, edge]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return int((ends - starts).max())


def _span(seconds: float) -> str:
    """A length for a message: minutes from two minutes up, else seconds."""
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"


def _too_long(label: str, seconds: float, limit_s: float) -> str:
    """The message for an input of ``seconds`` over the limit of ``limit_s`` (s)."""
    return (f"{label}: {_span(seconds)} is longer than the limit of {_span(limit_s)}; "
            "trim it, or raise the limit (the environment variable VOCALMIX_MAX_DURATION_S, "
            "in seconds)")


def max_duration_limit_s() -> float:
    """The longest input accepted, s: ``$VOCALMIX_MAX_DURATION_S`` (a positive number of
    seconds) or one hour. Raises :class:`~vocalmix.core.errors.DurationError` for a value
    that is not one (a typo must not lift the limit or refuse every input)."""
    text = os.environ.get("VOCALMIX_MAX_DURATION_S")
    if text is None:
        return MAX_DURATION_S
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise DurationError(f"VOCALMIX_MAX_DURATION_S={text!r}: give the longest input to "
                            "accept as a positive number of seconds (or unset it: one hour)")
    return v


def max_decoded_limit_bytes() -> int:
    """The largest decoded input accepted, bytes of float32 samples:
    ``$VOCALMIX_MAX_DECODED_MB`` MB or :data:`MAX_DECODED_MB`."""
    try:
        mb = float(os.environ.get("VOCALMIX_MAX_DECODED_MB", MAX_DECODED_MB))
    except ValueError:
        mb = MAX_DECODED_MB
    return int((mb if mb > 0 else MAX_DECODED_MB) * MB)


def decoded_bytes(frames: int, channels: int) -> int:
    """Memory of ``frames`` decoded as float32 stereo (or more channels, before a fold),
    bytes: what one input costs before any processing."""
    return int(frames) * max(int(channels), 2) * 4


def _too_large(label: str, frames: int, channels: int, sample_rate: int, limit: int) -> str:
    fixes = ["trim it"]
    if sample_rate > 48000:
        fixes.insert(0, "resample it to 48 kHz")
    if channels > 2:
        fixes.insert(0, "mix it down to stereo")
    return (f"{label}: {frames / sample_rate:.1f} s of {channels} channel(s) at "
            f"{sample_rate} Hz decodes to {decoded_bytes(frames, channels) / MB:.3g} MB, "
            f"more than the limit of {limit / MB:.3g} MB; {' or '.join(fixes)}")


#: what :func:`read_audio` reads besides a path: the bytes of a file (an upload held in
#: memory), or a binary file object read to its end
AudioBytes = bytes | bytearray | memoryview | BinaryIO


def read_audio(
    path: str | os.PathLike[str] | AudioBytes,
    *,
    label: str | None = None,
    fold: str = "error",
    max_duration_s: float | None = None,
    max_decoded_bytes: int | None = None,
) -> Audio:
    """Read an audio file (WAV, FLAC, OGG, MP3, AIFF, M4A, WebM...) as float32 stereo.

    ``path`` may also be the file's bytes, or a binary file object (read to its end):
    an upload a program holds in memory is read as the file would be.

    The header is checked before anything is decoded: a file whose frames x channels
    would decode to more than ``max_decoded_bytes`` (default
    :func:`max_decoded_limit_bytes`) of float32 raises :class:`AudioTooLargeError`, one
    longer than ``max_duration_s`` :class:`DurationError`, so a small compressed file
    cannot make the reader allocate gigabytes (M4A, WebM and AAC: checked as they
    decode).

    Raises :class:`AudioFileNotFoundError`, :class:`UnreadableAudioError`,
    :class:`AudioTooLargeError` and the errors of :func:`validate_signal`.
    """
    if max_duration_s is None:
        max_duration_s = max_duration_limit_s()
    if max_decoded_bytes is None:
        max_decoded_bytes = max_decoded_limit_bytes()
    if isinstance(path, str | os.PathLike):
        p: Path | None = Path(path)
        label = label or str(p)
    else:
        p, label = None, label or "audio"

    def too_long(seconds: float) -> str:
        return _too_long(label, seconds, max_duration_s)

    if p is None:
        data, sr, read_notes = _decode(_bytes_of(path, label), label, max_duration_s,
                                       too_long, max_decoded_bytes)
    else:
        data, sr, read_notes = _decode_regular(p, label, max_duration_s, too_long,
                                               max_decoded_bytes)
    x, notes, ch = validate_signal(data, sr, label=label, fold=fold, max_duration_s=max_duration_s)
    return Audio(samples=x, sample_rate=sr, path=str(p) if p is not None else f"<{label}>",
                 source_channels=ch, notes=notes + read_notes, label=label)


def _bytes_of(source: object, label: str) -> bytes:
    """The bytes of an in-memory file (:data:`AudioBytes`)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    read = getattr(source, "read", None)
    if isinstance(source, io.TextIOBase):
        raise UnreadableAudioError(f"{label}: the file object is open as text: open the "
                                   "file in binary mode ('rb')")
    if read is None:
        raise UnreadableAudioError(f"{label}: give a path, the file's bytes or a binary "
                                   f"file object, not {type(source).__name__}")
    try:
        data = read()
    except (OSError, ValueError) as e:
        raise UnreadableAudioError(f"{label}: cannot be read ({e})") from None
    if not isinstance(data, bytes | bytearray):
        raise UnreadableAudioError(f"{label}: the file object gave {type(data).__name__}, "
                                   "not bytes: open the file in binary mode ('rb')")
    return bytes(data)


def _cut_off_note(p: Path, f: sf.SoundFile, label: str, duration_s: float) -> str | None:
    """A note when the WAV file ``p``, open as ``f``, ends before its header says its
    audio does (a copy or a recording cut off): libsndfile reads what is there and says
    so only in its log (``data : <header's size> (should be <size found>)``)."""
    if p.suffix.lower() not in (".wav", ".wave"):
        return None
    log = f.extra_info
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", log, re.MULTILINE)
    if m is None or int(m[2]) >= int(m[1]):
        return None
    return (f"warning: {label}: the file ends before its header says it should "
            f"({int(m[2])} of {int(m[1])} bytes of audio: cut off?); its {duration_s:.2f} s "
            "are used")


def _refuse_special_file(p: Path, label: str) -> None:
    """Refuse a path that exists but is neither a regular file nor a folder (a FIFO, a
    device, a socket): reading one could block forever or never end."""
    try:
        st = os.stat(p)
    except OSError:
        return  # missing or unreachable: the reader says so
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise UnreadableAudioError(f"{label}: is not a regular file (a pipe, device or "
                                   "socket); give the path of an audio file")


def _refuse_missing_or_folder(p: Path, label: str) -> None:
    """Refuse an input path that names nothing (:class:`AudioFileNotFoundError`), a
    folder, or a file behind a folder this user may not search (what the system says,
    e.g. permission denied)."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise AudioFileNotFoundError(f"{label}: no such file") from None
    except OSError as e:
        raise UnreadableAudioError(f"{label}: cannot be read ({_why(e)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableAudioError(f"{label}: is a folder, not an audio file")


def _decode_regular(p: Path, label: str, max_duration_s: float, too_long,
                    max_decoded_bytes: int | None = None
                    ) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """:func:`_decode` of a regular file. libsndfile words every failure to open a
    damaged file as "does not exist or is not a regular file (possibly a pipe?)"; the
    file was checked to be a regular one, so that becomes what it means."""
    _refuse_special_file(p, label)
    try:
        return _decode(p, label, max_duration_s, too_long, max_decoded_bytes)
    except UnreadableAudioError as e:
        if "not a regular file" not in str(e):
            raise
        raise UnreadableAudioError(
            f"{label}: cannot be decoded as audio (damaged, or in no format this reader "
            f"knows); supported: {SUPPORTED_FORMATS}"
        ) from None


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Capture what native code (libsndfile's MP3 decoder, mpg123...) prints to file
    descriptor 2 while the block runs; the yielded list gets its lines afterwards.

    File descriptor 2 belongs to the whole process: this is for single-threaded use
    such as the command line (a server's other threads would lose their log lines).
    """
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr at all
        yield lines
        return
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            lines.extend(buf.read().decode("utf-8", "replace").splitlines())


def _decode(source: Path | bytes, label: str, max_duration_s: float, too_long,
            max_decoded_bytes: int | None = None
            ) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """``(samples (n, channels) float32, rate, notes)`` of an audio file (a path, or the
    file's bytes), checked for existence, decodability, length (``too_long(seconds)``
    words the :class:`DurationError`) and decoded size (frames x channels from the
    header, before decoding); ``notes``: a WAV file cut off before its header's end
    (:func:`_cut_off_note`), what the FFmpeg reader says (:class:`_FFmpegDecode`)."""
    if max_decoded_bytes is None:
        max_decoded_bytes = max_decoded_limit_bytes()
    p = source if isinstance(source, Path) else None
    if p is not None:
        _refuse_missing_or_folder(p, label)
    elif not source:
        raise EmptyAudioError(f"{label}: the file is empty (0 bytes)")

    def opened() -> Path | BinaryIO:
        return p if p is not None else io.BytesIO(bytes(source))

    try:
        f = sf.SoundFile(_sf_name(p) if p is not None else opened())
    except _DECODER_ERRORS as e:
        fmt = _ffmpeg_format(source)
        if fmt is None:
            raise _undecodable(label, e, p) from None
        return _decode_ffmpeg(opened(), fmt, label, max_duration_s, too_long,
                              max_decoded_bytes)
    try:
        with f:
            sr, _, _ = _checked_header(f, label, max_duration_s, too_long, max_decoded_bytes)
            data = _read_all(f, label, max_duration_s, too_long, max_decoded_bytes)
            cut = _cut_off_note(p, f, label, data.shape[0] / sr) if p is not None else None
    except (DurationError, AudioTooLargeError, UnreadableAudioError):
        raise
    except _DECODER_ERRORS as e:
        raise _undecodable(label, e, p) from None
    return data, sr, (cut,) if cut else ()


def _read_all(f: sf.SoundFile, label: str, max_duration_s: float, too_long,
              max_decoded_bytes: int | None) -> np.ndarray:
    """Every frame of a file just opened, float32 ``(n, channels)``: at once from its
    start (:func:`_from_start`) where it can seek, else a block at a time to its end (a
    GSM 6.10 WAV, an old dictaphone's or phone's, cannot seek, and libsndfile's whole
    read asks for a length then), held to the limits as it decodes."""
    if f.seekable():
        _from_start(f)
        return f.read(dtype="float32", always_2d=True)
    parts: list[np.ndarray] = []
    n, channels = 0, int(f.channels)
    checked = _limits_checker(label, int(f.samplerate), channels, max(int(f.frames), 0),
                              max_duration_s, too_long, max_decoded_bytes)
    while True:
        x = f.read(READ_BLOCK, dtype="float32", always_2d=True)
        n += x.shape[0]
        checked(n)
        if x.shape[0]:
            parts.append(x)
        if x.shape[0] < READ_BLOCK:
            break
    return np.concatenate(parts) if parts else np.zeros((0, channels), np.float32)


def _from_start(f: sf.SoundFile) -> None:
    """Seek a file just opened to its first frame before reading it in order. libsndfile
    (1.2.2) reads an Ogg Opus stream that starts at a later granule position (as FFmpeg
    writes a file cut from another: its first page's position over the samples on it)
    312 samples late, its pre-skip not dropped, unless it has been seeked: a take read
    6.5 ms late, and later than the same file read in parts. Any other file reads the
    same either way."""
    if f.seekable():
        f.seek(0)


#: the formats read, for messages: libsndfile's, then those FFmpeg reads for it
SUPPORTED_FORMATS = ("WAV, FLAC, OGG (Vorbis, Opus), MP3, AIFF, M4A/MP4/3GP (AAC, ALAC, "
                     "Opus, AMR), WebM/MKA, AAC, AMR")

#: the containers handed to FFmpeg (through PyAV) when libsndfile cannot read a file: the
#: formats phones and browsers record in (an iPhone's or Android's .m4a, a browser's
#: MediaRecorder .webm). Each is recognised by its own first bytes and opened with its
#: demuxer named, never by FFmpeg's probe: a probed file could be a playlist (HLS,
#: concat) that makes FFmpeg read other files or URLs.
_FFMPEG_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mov"),  # ISO base media / QuickTime: .m4a .mp4 .3gp .mov (AAC, ALAC)
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),  # Matroska / WebM (Opus, Vorbis, AAC)
    (0, b"#!AMR", "amr"),  # raw AMR-NB and AMR-WB: phones' voice recorders (.amr)
)


def _ffmpeg_format(p: Path | bytes) -> str | None:
    """:func:`_sniff` of the file ``p``, or of a file's bytes (``None`` when it cannot be
    read)."""
    if isinstance(p, bytes):
        data = p
        return _sniff(lambda at, n: data[at:at + n])
    try:
        with open(p, "rb") as fh:
            def read(at: int, n: int) -> bytes:
                fh.seek(at)
                return fh.read(n)

            return _sniff(read)
    except OSError:
        return None


def _sniff(read: Callable[[int, int], bytes]) -> str | None:
    """The FFmpeg demuxer for a file libsndfile cannot read, by its first bytes (see
    :data:`_FFMPEG_SIGNATURES`; raw AAC is an ADTS frame header, after an ID3 tag if one
    comes first), or ``None``: not a format read here. ``read(offset, n)``: the file's
    bytes there."""
    head = read(0, 64)
    if head[:3] == b"ID3" and len(head) >= 10:
        size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        head = read(size, 64)
    for at, magic, fmt in _FFMPEG_SIGNATURES:
        if head[at:at + len(magic)] == magic:
            return fmt
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0:
        return "aac"  # ADTS: sync word 0xFFF, layer 00 (MP3 frames have layer != 00)
    return None


#: whether ``av.open`` takes ``metadata_errors`` (PyAV up to 18; 19 dropped it), found on
#: the first open
_AV_METADATA_ERRORS: list[bool] = []


def _av_open(av: Any, file: str | BinaryIO, **kwargs: Any) -> Any:
    """``av.open(file, "r", **kwargs)`` for reading, with tags that are not UTF-8 skipped
    rather than an error where PyAV has the option (``metadata_errors="ignore"``: PyAV
    up to 18; PyAV 19 dropped the option, and with it that error)."""
    if _AV_METADATA_ERRORS != [False]:
        try:
            c = av.open(file, "r", metadata_errors="ignore", **kwargs)
        except TypeError as e:
            if "metadata_errors" not in str(e):
                raise
            _AV_METADATA_ERRORS[:] = [False]
        else:
            _AV_METADATA_ERRORS[:] = [True]
            return c
    return av.open(file, "r", **kwargs)


class _FFmpegDecode:
    """One pass over the first audio stream of a file in FFmpeg's demuxer ``fmt``, through
    PyAV (a path, or a binary file object); a context manager.

    Opening checks what can be checked before decoding: one audio stream (a stems file
    or a film with several soundtracks is refused), a sane rate and channel count.
    :meth:`chunks` then yields the samples as float32 ``(channels, n)`` arrays, in time:
    they start at the stream's first decoded sample; the encoder's priming samples are
    dropped where the container says how many there are (MP4's edit list, WebM's codec
    delay), so a take stays in time with its backing, and the padding of the last frame
    where it states the stream's length (MP4). Raw AAC (ADTS) states none and keeps
    them (21-48 ms at 44.1 kHz), as every FFmpeg-based player does; :meth:`notes` says
    so. A packet the decoder refuses becomes silence of its length, so that what
    follows keeps its time; :meth:`notes` counts them.

    Attributes: ``sample_rate`` (Hz), ``channels``, ``track`` (the stream's length as the
    container states it, samples; 0 when it states none)."""

    def __init__(self, source: Path | BinaryIO, fmt: str, label: str) -> None:
        try:
            import av
        except ImportError:
            raise UnreadableAudioError(
                f"{label}: reading this format needs PyAV (pip install av), which vocalmix "
                "installs: reinstall vocalmix, or convert the file to WAV or FLAC") from None
        self._av, self.fmt, self.label = av, fmt, label
        try:
            self.container = _av_open(av, str(source) if isinstance(source, Path) else source,
                                     format=fmt)
        except av.FFmpegError as e:
            raise UnreadableAudioError(f"{label}: cannot be decoded as audio "
                                       f"({_av_reason(e)}); supported: {SUPPORTED_FORMATS}"
                                       ) from None
        try:
            self._check()
        except BaseException:
            self.container.close()
            raise
        self.bad = self.gap = 0

    def _check(self) -> None:
        label, streams = self.label, self.container.streams.audio
        if not streams:
            raise UnreadableAudioError(f"{label}: holds no audio stream (a video or data "
                                       "file?); give an audio file")
        if len(streams) > 1:
            # a Native Instruments stems file (MUSDB18's .stem.mp4: the mixture, then
            # drums, bass, other, vocals) or a film with several soundtracks: the first
            # stream would be a guess, and for stems the wrong one
            raise UnreadableAudioError(
                f"{label}: holds {len(streams)} audio streams (a stems file such as "
                "MUSDB18's .stem.mp4, or a video with several soundtracks); vocalmix reads "
                "files of one: export the vocal and the backing as files of their own "
                "(e.g. ffmpeg -i IN -map 0:a:4 vocal.wav)")
        self.stream = stream = streams[0]
        try:
            self.sample_rate = int(stream.rate or 0)
            self.channels = int(stream.channels or 0)
        except AttributeError:  # (PyAV: a stream whose codec FFmpeg could not set up)
            raise UnreadableAudioError(f"{label}: its audio stream has no codec FFmpeg can "
                                       "open (damaged?)") from None
        if self.sample_rate <= 0 or self.channels <= 0:
            raise UnreadableAudioError(f"{label}: the header says {self.channels} "
                                       f"channel(s) at {self.sample_rate} Hz")
        if self.channels > _FFMPEG_MAX_CHANNELS:
            # PyAV (18.1) gives a planar frame of 8 channels or more a plane too many,
            # read from past FFmpeg's 8 data pointers: converting it to an array read
            # wild memory and crashed the process (a 7.1 AAC file, or a damaged packet).
            # (Not a ChannelLayoutError: folding the channels, which that suggests, would
            # not read them)
            raise UnreadableAudioError(
                f"{label}: has {self.channels} channels; vocalmix reads at most "
                f"{_FFMPEG_MAX_CHANNELS} from an M4A, WebM or AAC file, and mixes mono or "
                "stereo: export one (e.g. ffmpeg -i IN -ac 2 OUT.wav)")
        self.track = 0
        if (self.fmt not in _GUESSED_LENGTH_FORMATS and stream.duration is not None
                and stream.time_base is not None):
            self.track = int(round(float(stream.duration * stream.time_base)
                                   * self.sample_rate))
        self.skip = self._unstated_opus_delay()
        self.restored = self._overstated_opus_delay()
        if self.restored:
            self.track = 0  # (its stated length is the recording's clock, not its samples)

    def _overstated_opus_delay(self) -> int:
        """Samples the file says to drop first that are the take's own, kept by stating
        the true delay to the decoder before it opens: Chrome's MediaRecorder writes MP4
        (``audio/mp4``, Opus) whose Opus header states a pre-skip of 3840 samples (80 ms),
        although its encoder puts only its lookahead of 312 before the audio: read as
        stated, a take lost its first 73.5 ms and played that much early. Only for a file
        whose brands name Chromium's muxer (``vp09`` among them, in a file of audio)."""
        ctx = self.stream.codec_context
        if self.fmt != "mov" or ctx.name != "opus":
            return 0
        stated = self._stated_pre_skip()
        brands = str(self.container.metadata.get("compatible_brands", ""))
        if stated != CHROME_MP4_OPUS_PRE_SKIP or "vp09" not in brands:
            return 0
        real = int(round(OPUS_LOOKAHEAD_S * _OPUS_RATE))
        head = bytes(ctx.extradata or b"")
        ctx.extradata = head[:10] + real.to_bytes(2, "little") + head[12:]
        return stated - real

    def _stated_pre_skip(self) -> int:
        """The pre-skip the stream's Opus header states (48 kHz samples, whatever the
        rate), or -1 when it has no header (``OpusHead``) to state one."""
        head = bytes(self.stream.codec_context.extradata or b"")
        if head[:8] != b"OpusHead" or len(head) < 19:
            return -1
        return int.from_bytes(head[10:12], "little")

    def _unstated_opus_delay(self) -> int:
        """Samples to drop first that the file holds but does not say: Chrome's
        MediaRecorder writes WebM whose Opus header states a pre-skip of 0 (and no
        Matroska CodecDelay), although its encoder (libopus) puts its lookahead of 6.5 ms
        (312 samples at 48 kHz) before the audio: a browser's take would play that much
        late. Only for a file that says Chrome wrote it, so that another muxer's honest 0
        is kept."""
        ctx = self.stream.codec_context
        if self.fmt != "matroska" or ctx.name != "opus":
            return 0
        if not str(self.container.metadata.get("encoder", "")).startswith("Chrome"):
            return 0
        if self._stated_pre_skip() != 0 or ctx.delay:
            return 0
        return int(round(OPUS_LOOKAHEAD_S * self.sample_rate))

    def demuxed_length(self, max_duration_s: float) -> int:
        """The stream's length in samples from its packets' durations, demuxed without
        decoding (a 60-minute WebM in about 0.5 s): for a file whose container states
        none, as a MediaRecorder's WebM (written as it records, with no duration in its
        header). An Opus packet's duration is read from its own first bytes (what it
        decodes to, less the padding the container says to drop at the end), not from
        the container's timestamps: Chrome's MP4 states wall-clock durations (1008
        samples for a 2880-sample packet), 13 % short over a take. The
        encoder's stated priming is taken off, so it is what decodes within the last
        frame's padding: a plan's length (:meth:`AudioReader.scan` counts the decoded
        one). 0 when a packet states no duration; :class:`DurationError` as soon as it
        passes ``max_duration_s`` by more than a last frame's padding (the decoder holds
        what it decodes to the limit itself). Leaves the file read to its end: open
        another :class:`_FFmpegDecode` to decode it."""
        av, stream, sr = self._av, self.stream, self.sample_rate
        # (the priming: what the decoder will drop; a Chrome MP4's restored samples are
        # not, though the codec's delay, read at opening, still counts them)
        stated = int(stream.codec_context.delay or 0) + self.skip - self.restored
        opus = stream.codec_context.name == "opus"
        stated_s = 0.0  # (the packets' stated durations, s)
        opus_total = 0  # (Opus packets' own durations, samples at _OPUS_RATE)
        try:
            for packet in self.container.demux(stream):
                if packet.size == 0:
                    continue  # (the demuxer's empty packet that ends the stream)
                own = _opus_samples(packet) if opus else None
                if own is not None:
                    opus_total += own
                elif (s := _stated_seconds(packet)) is None:
                    return 0
                else:
                    stated_s += s
                seconds = stated_s + opus_total / _OPUS_RATE - stated / sr
                if seconds - _CODEC_PADDING_MAX / sr > max_duration_s:
                    raise DurationError(_too_long(self.label, seconds, max_duration_s))
        except av.FFmpegError as e:
            raise UnreadableAudioError(f"{self.label}: cannot be decoded as audio "
                                       f"({_av_reason(e)})") from None
        return max(int(round((stated_s + opus_total / _OPUS_RATE) * sr)) - stated, 0)

    def __enter__(self) -> _FFmpegDecode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    def chunks(self, checked: Callable[[int], None]) -> Iterator[np.ndarray]:
        """The samples, float32 ``(channels, n)`` arrays; ``checked(n)`` is called with
        the count decoded so far (it raises to stop at a limit)."""
        track = self.track
        from vocalmix.core.dsp import shifted_blocks

        n = 0
        held: list[np.ndarray] = []  # past the stated length: the last frame's padding?
        # an encoder delay the file does not state (see _unstated_opus_delay) left out:
        # the blocks moved earlier, as a take moved by vocal.offset_ms is
        rows = shifted_blocks((c.T for c in self._decoded(checked)), -self.skip)
        for a in (r.T for r in rows):
            if track <= 0 or n + a.shape[1] <= track or n >= track + _CODEC_PADDING_MAX:
                yield a  # (no stated length; within it; or well past it: not padding)
            else:
                k = max(track - n, 0)
                if k:
                    yield a[:, :k]
                held.append(a[:, k:])
                if n + a.shape[1] > track + _CODEC_PADDING_MAX:  # more than padding
                    yield from held
                    held = []
            n += a.shape[1]
        # (what is held, within the padding's length of the stated end, is dropped)

    def _decoded(self, checked: Callable[[int], None]) -> Iterator[np.ndarray]:
        av, sr, channels = self._av, self.sample_rate, self.channels
        opus = self.stream.codec_context.name == "opus"
        resampler = av.AudioResampler(format="fltp", layout=self.stream.layout, rate=sr)
        n = 0
        last = 1024  # samples of the last decoded frame: a damaged packet's stand-in
        def silence(span: int) -> np.ndarray:
            # a damaged packet's stand-in: silence in its place keeps what follows in
            # time with the backing
            nonlocal n
            self.bad, self.gap, n = self.bad + 1, self.gap + span, n + span
            checked(n)
            return np.zeros((channels, span), np.float32)

        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    # (as long as the packet would have played, counted as the plan
                    # counts it: Chrome's MP4 states wall-clock durations)
                    own = _opus_samples(packet) if opus else None
                    stated = _stated_seconds(packet)
                    span = (int(round(own * sr / _OPUS_RATE)) if own is not None
                            else max(int(round(stated * sr)), 0) if stated is not None
                            else last)
                    yield silence(span)
                    continue
                for frame in frames:
                    if len(frame.layout.channels) != channels:
                        # a damaged AAC packet can decode to another layout (28 channels
                        # in a stereo stream): PyAV's planes of such a frame are not safe
                        # to read (reading them crashed the process), so it is damage
                        k = int(frame.samples)
                        rate = int(frame.sample_rate or sr)
                        yield silence(int(round(k * sr / rate)) if 0 < k <= 1 << 16
                                      else last)
                        continue
                    for out in resampler.resample(frame):
                        a = out.to_ndarray()
                        n += a.shape[1]
                        last = a.shape[1] or last
                        checked(n)
                        yield a
            for out in resampler.resample(None):
                yield out.to_ndarray()
        except av.FFmpegError as e:
            raise UnreadableAudioError(f"{self.label}: cannot be decoded as audio "
                                       f"({_av_reason(e)})") from None
        if self.bad and n == self.gap:
            raise UnreadableAudioError(f"{self.label}: cannot be decoded as audio (none of "
                                       f"its {self.bad} packet(s) decodes: damaged?)")

    def notes(self) -> list[str]:
        """Warnings about what was decoded (after :meth:`chunks` has run)."""
        out: list[str] = []
        if self.bad:
            out.append(f"warning: {self.label}: {self.bad} damaged packet(s) of the file "
                       f"could not be decoded: {1000 * self.gap / self.sample_rate:.0f} ms "
                       "of silence stand in for them, so that the rest keeps its time")
        if self.restored:
            out.append(f"{self.label}: recorded by Chrome, whose MP4 states an Opus "
                       f"pre-skip of {CHROME_MP4_OPUS_PRE_SKIP} samples where its encoder "
                       f"puts {CHROME_MP4_OPUS_PRE_SKIP - self.restored}: its first "
                       f"{1000 * self.restored / _OPUS_RATE:.1f} ms were kept, so that the take "
                       "keeps its time")
        if self.skip:
            out.append(f"{self.label}: recorded by Chrome, whose WebM does not state its "
                       f"Opus encoder's delay: its first {self.skip} samples "
                       f"({1000 * self.skip / self.sample_rate:.1f} ms) were dropped, so "
                       "that the take keeps its time")
        if self.fmt == "aac":
            out.append(f"warning: {self.label}: raw AAC does not say how many samples its "
                       "encoder put before the audio (1024-2112, 21-48 ms at 44.1 kHz), so "
                       "they are kept: it may play that much late against the other input "
                       "(an .m4a or .mp4 says how many; vocal.offset_ms moves the take "
                       "against the backing)")
        if self.fmt == "amr":
            out.append(f"warning: {self.label}: raw AMR does not say how many samples its "
                       "encoder put before the audio (about 10 ms), so they are kept: it "
                       "may play that much late against the other input (vocal.offset_ms "
                       "moves the take against the backing)")
        return out


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int, int, int] | None:
    """The identity of the file at ``path`` (device, inode, size, modification time in
    ns), ``None`` when it cannot be read: the same identity, the same bytes, for files
    that are replaced (as every output here is) rather than rewritten in place."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # (ValueError: a NUL in the path)
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class DecodeCache:
    """The file :meth:`read` decoded last, kept for the next read of the very same file
    (:func:`file_identity`, with the same ``read_audio`` arguments): many takes over one
    instrumental (a karaoke catalogue, a server's ``backing_from``) decode it once. The
    kept samples are read-only, so the analyses of the signal are looked up by the array
    without hashing it again; a file whose samples take more than ``max_bytes`` is not
    kept (0 keeps nothing). Thread-safe; one file only."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._kept: tuple[tuple, Audio] | None = None
        self._lock = threading.Lock()

    def read(self, path: str | os.PathLike[str], **kwargs: Any) -> Audio:
        """``read_audio(path, **kwargs)``, or the decode kept from the last call on the
        same file with the same arguments (the same file under another name, a hard
        link, counts when a ``label`` names it in messages)."""
        ident = file_identity(path)
        key = (ident, None if kwargs.get("label") else str(path),
               tuple(sorted(kwargs.items())))
        with self._lock:
            kept = self._kept
        if ident is not None and kept is not None and kept[0] == key:
            return kept[1]
        a = read_audio(path, **kwargs)
        if ident is not None and 0 < a.samples.nbytes <= self.max_bytes:
            a.samples.flags.writeable = False
            with self._lock:
                self._kept = (key, a)
        return a

    @property
    def last(self) -> Audio | None:
        """The decode kept, if any."""
        with self._lock:
            return self._kept[1] if self._kept is not None else None


def read_audio_streams(path: str | os.PathLike[str], indices: Iterable[int], *,
                       sample_rate: int) -> list[np.ndarray]:
    """The audio streams ``indices`` (0 the first audio stream) of a file of several, such
    as a Native Instruments stems file (MUSDB18's ``.stem.mp4``), each as float32 stereo
    ``(n, 2)`` at ``sample_rate`` Hz, decoded by FFmpeg through PyAV in one pass: what
    ``ffmpeg -map 0:a:K -ac 2 -ar RATE -f f32le`` gives (within 2e-7 of the FFmpeg 5.1
    command line on the 88 MUSDB18 files of the shared data; PyAV 19's FFmpeg ends each
    at the length the container states, up to an AAC frame before the end of the last
    frame, which that command line gives too). For training data; mixing
    inputs are files of one stream (:func:`read_audio`). Raises
    :class:`UnreadableAudioError`."""
    try:
        import av
    except ImportError:
        raise UnreadableAudioError(f"{path}: reading several streams needs PyAV (pip "
                                   "install av)") from None
    want = list(indices)
    try:
        with _av_open(av, str(path)) as c:
            audio = list(c.streams.audio)
            if not want or max(want) >= len(audio) or min(want) < 0:
                raise UnreadableAudioError(f"{path}: holds {len(audio)} audio stream(s), "
                                           f"not the {max(want, default=0) + 1} asked for")
            chosen = [audio[k] for k in want]
            keys = [s.index for s in chosen]  # (a closed container's streams forget them)
            out: dict[int, list[np.ndarray]] = {k: [] for k in keys}
            resamplers = {s.index: av.AudioResampler(format="fltp", layout="stereo",
                                                     rate=int(sample_rate))
                          for s in chosen}
            for packet in c.demux(chosen):
                if packet.stream.index not in out:
                    continue
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        for o in resamplers[packet.stream.index].resample(frame):
                            out[packet.stream.index].append(o.to_ndarray())
            for s in chosen:
                for o in resamplers[s.index].resample(None):
                    out[s.index].append(o.to_ndarray())
    except av.FFmpegError as e:
        raise UnreadableAudioError(f"{path}: cannot be decoded ({_av_reason(e)})") from None
    return [np.ascontiguousarray(np.concatenate(out[k], axis=1).T, dtype=np.float32)
            if out[k] else np.zeros((0, 2), np.float32) for k in keys]


def _decode_ffmpeg(p: Path | BinaryIO, fmt: str, label: str, max_duration_s: float,
                   too_long, max_decoded_bytes: int | None
                   ) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """``(samples (n, channels) float32, rate Hz, notes)`` of a file read through FFmpeg
    (:class:`_FFmpegDecode`), with :func:`_decode`'s checks of length and decoded size
    made while decoding: a container may state no length, or a wrong one, so decoding
    stops where a limit is passed."""
    with _FFmpegDecode(p, fmt, label) as d:
        chunks = list(d.chunks(_decode_limits(d, max_duration_s, too_long,
                                              max_decoded_bytes)))
        notes, channels, sr = d.notes(), d.channels, d.sample_rate
    data = (np.concatenate(chunks, axis=1) if chunks
            else np.zeros((channels, 0), np.float32))
    return np.ascontiguousarray(data.T, dtype=np.float32), sr, tuple(notes)


def _decode_limits(d: _FFmpegDecode, max_duration_s: float, too_long,
                   max_decoded_bytes: int | None) -> Callable[[int], None]:
    """The ``checked(frames)`` of :meth:`_FFmpegDecode.chunks` (:func:`_limits_checker`
    of its stream)."""
    return _limits_checker(d.label, d.sample_rate, d.channels, d.track, max_duration_s,
                           too_long, max_decoded_bytes)


def _limits_checker(label: str, sample_rate: int, channels: int, track: int,
                    max_duration_s: float, too_long, max_decoded_bytes: int | None
                    ) -> Callable[[int], None]:
    """``checked(frames)`` for a decoder that counts the frames it has decoded: raises
    :class:`AudioTooLargeError` past ``max_decoded_bytes`` (``None``: no bound) and
    :class:`DurationError` past ``max_duration_s`` (worded by ``too_long(seconds)``), each
    giving the length the file states (``track`` frames) when it says more than has
    decoded."""
    sr, limit = sample_rate, max_decoded_bytes

    def checked(frames: int) -> None:
        whole = max(frames, track)
        if limit is not None and decoded_bytes(frames, channels) > limit:
            raise AudioTooLargeError(_too_large(label, whole, channels, sr, limit))
        if frames / sr > max_duration_s:
            raise DurationError(too_long(whole / sr))

    return checked


#: the raw formats whose stream states no length: FFmpeg's figure for one is a guess from
#: the first frames' bit rate (17 s for a 25 s AAC file here, 3.1 s for a 3.0 s AMR one),
#: not taken as its length
_GUESSED_LENGTH_FORMATS = ("aac", "amr")
#: the most channels read from a file FFmpeg decodes (see :meth:`_FFmpegDecode._check`)
_FFMPEG_MAX_CHANNELS = 7
#: the rate Opus codes at, Hz: what its packets' sizes and its header's pre-skip count in,
#: whatever rate the decoder is asked for
_OPUS_RATE = 48000
#: Opus frame sizes (48 kHz samples) of the 32 configurations of a packet's TOC byte
#: (RFC 6716, section 3.1, Table 2): SILK-only 10/20/40/60 ms, hybrid 10/20 ms, CELT-only
#: 2.5/5/10/20 ms
_OPUS_FRAME_SAMPLES = (480, 960, 1920, 2880) * 3 + (480, 960) * 2 + (120, 240, 480, 960) * 4
_OPUS_PACKET_MAX = 5760  # 120 ms, the most one packet may hold (RFC 6716, section 3.2.5)


def _discarded_at_end(packet: Any) -> int:
    """Samples the container says to drop from the end of ``packet``'s decoded audio
    (Matroska's DiscardPadding on a stream's last packet, which FFmpeg gives as its
    skip-samples side data and its decoder drops); 0 when it says none."""
    has = getattr(packet, "has_sidedata", None)
    if has is None or not has("skip_samples"):
        return 0
    data = bytes(packet.get_sidedata("skip_samples"))
    return int.from_bytes(data[4:8], "little") if len(data) >= 8 else 0


def _opus_samples(packet: Any) -> int | None:
    """The samples (at 48 kHz) an Opus ``packet`` plays: what its first bytes say it
    decodes to (:func:`_opus_packet_samples`) less the padding its container says to
    drop at its end; None when its first bytes cannot start a packet."""
    own = _opus_packet_samples(memoryview(packet)[:2].tobytes())
    return max(own - _discarded_at_end(packet), 0) if own else None


def _stated_seconds(packet: Any) -> float | None:
    """The duration the container states for ``packet``, s; None when it states none."""
    if not packet.duration or packet.time_base is None:
        return None
    return float(packet.duration * packet.time_base)


def _opus_packet_samples(head: bytes) -> int:
    """The samples (at 48 kHz) an Opus packet decodes to, from its first two bytes: the
    TOC byte's configuration gives the frame size, its code the frame count (1; 2 for
    codes 1 and 2; for code 3 the low six bits of the next byte), RFC 6716 section 3.1.
    0 when ``head`` cannot be a packet's start (empty, a code 3 without its count byte,
    no frames, or more than 120 ms)."""
    if not head:
        return 0
    toc = head[0]
    code = toc & 0x3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    elif len(head) < 2:
        return 0
    else:
        frames = head[1] & 0x3F
    n = frames * _OPUS_FRAME_SAMPLES[toc >> 3]
    return n if 0 < n <= _OPUS_PACKET_MAX else 0


#: libopus's encoder lookahead, s (2.5 ms of analysis plus 4 ms of delay compensation:
#: ``OPUS_GET_LOOKAHEAD`` at 48 kHz is 312 samples), what a WebM from Chrome leaves unstated
OPUS_LOOKAHEAD_S = 0.0065
#: the Opus pre-skip Chrome's MediaRecorder states in its MP4 (48 kHz samples), 80 ms,
#: whatever its encoder put first
CHROME_MP4_OPUS_PRE_SKIP = 3840
#: the most samples past a stream's stated length taken as its encoder's padding of the
#: last frame (AAC: up to 1024 + 2112), and cut
_CODEC_PADDING_MAX = 4096


def _sf_name(path: str | os.PathLike[str]) -> bytes:
    """``path`` as libsndfile is given it: the file system's own bytes (soundfile encodes
    a ``str`` as strict UTF-8, so a file named in another encoding, a Latin-1 ``café.wav``
    from an older system, was "cannot be decoded")."""
    return os.fsencode(path)


def _av_reason(e: BaseException) -> str:
    """FFmpeg's words for a failure, without the path PyAV appends."""
    why = str(getattr(e, "strerror", None) or e).strip()
    return why or type(e).__name__


#: what libsndfile (through soundfile) raises for a file it cannot decode
_DECODER_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError)


def _undecodable(label: str, e: BaseException, path: Path | None = None
                 ) -> UnreadableAudioError:
    """The error for a file the decoder refused, in libsndfile's own words without the
    path it prefixes (the label names the file); when ``path`` cannot even be opened
    (permission denied...), that is said instead: libsndfile calls it "System error."
    and a format problem would be the wrong lead."""
    if path is not None:
        try:
            with open(path, "rb"):
                pass
        except OSError as oe:
            return UnreadableAudioError(f"{label}: cannot be read ({_why(oe)})")
    why = (getattr(e, "error_string", None) or str(e)).strip() or type(e).__name__
    return UnreadableAudioError(
        f"{label}: cannot be decoded as audio ({why}); supported: {SUPPORTED_FORMATS}")


def _checked_header(f: sf.SoundFile, label: str, max_duration_s: float, too_long,
                    max_decoded_bytes: int | None) -> tuple[int, int, int]:
    """``(rate Hz, frames, channels)`` of an open file, checked before anything is
    decoded: a sane rate and channel count, a length within ``max_duration_s`` and, unless
    ``max_decoded_bytes`` is ``None``, a decoded size within it."""
    sr = int(f.samplerate)
    frames, channels = int(f.frames), int(f.channels)
    if sr <= 0 or channels <= 0:
        raise UnreadableAudioError(f"{label}: the header says {channels} channel(s) at {sr} Hz")
    if max_decoded_bytes is not None and decoded_bytes(frames, channels) > max_decoded_bytes:
        raise AudioTooLargeError(_too_large(label, frames, channels, sr, max_decoded_bytes))
    if frames > 0 and frames / sr > max_duration_s:
        raise DurationError(too_long(frames / sr))
    return sr, frames, channels


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample ``(n, channels)`` float32 with soxr (high quality)."""
    if from_hz == to_hz:
        return x
    import soxr

    return np.ascontiguousarray(soxr.resample(x, from_hz, to_hz, quality="HQ"), dtype=np.float32)


#: a backing this much shorter than the vocal (s, and a tenth of the song) is warned about
SHORT_BACKING_WARN_S = 2.0
#: the warning (a note that starts with ``warning:``, which the command line shows even
#: when quiet)
SHORT_BACKING_WARNING = (
    "warning: the backing ends {diff:.1f} s before the vocal, which sings alone for the "
    "rest of the mix: give the whole backing, or trim the vocal to it (the level while "
    "the vocal sings is set where both play; the integrated measure of --method baseline "
    "counts the unaccompanied end too, so there the vocal may sit too low where the "
    "backing plays)")


def padding_notes(shorter: str, diff_s: float, total_s: float) -> list[str]:
    """What is said when the ``shorter`` input (``vocal`` or ``backing``) is padded with
    ``diff_s`` s of silence to the mix's ``total_s`` s: a note, and the
    :data:`SHORT_BACKING_WARNING` when a backing ends well before the vocal."""
    notes = [f"{shorter} was {diff_s:.2f} s shorter: padded with silence at its end"]
    if shorter == "backing" and diff_s > max(SHORT_BACKING_WARN_S, 0.1 * total_s):
        notes.append(SHORT_BACKING_WARNING.format(diff=diff_s))
    return notes


def prepare_pair(
    vocal: Audio, backing: Audio, *, sample_rate: int | None = None,
    max_decoded_bytes: int | None = None, vocal_channels: bool = True,
) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """Bring a vocal and a backing to one rate and length.

    The mix is made at ``sample_rate`` (Hz), by default the higher of the two inputs'
    rates, so neither loses its top octave: a 16 kHz phone vocal over a 44.1 kHz backing
    gives a 44.1 kHz mix whose backing is the file's samples. An input at another rate
    is resampled with soxr; the shorter signal is padded with silence at its end. A
    constant (DC) offset of ``DC_OFFSET_DBFS`` or more is subtracted (each channel's
    mean), with a note: it is inaudible, but it would take headroom from the mix and pass
    into it. Raises :class:`SilentAudioError` if either holds no audible sound: its peak,
    once its mean is taken out, is below -90 dBFS (digital silence, or a constant offset
    and nothing else); :class:`AudioTooLargeError` (before resampling) if either signal
    at the mix's rate, padded to the longer one, would be larger than
    ``max_decoded_bytes`` (default :func:`max_decoded_limit_bytes`); and
    :class:`SampleRateError` for a ``sample_rate`` outside the supported range.
    ``vocal_channels``: a stereo vocal recorded on one channel only is centred, and one
    whose channels are in opposite polarity has one flipped, with a note
    (:func:`vocal_channel_fix`; ``False`` keeps the channels as they are, as training
    keeps a mixed song's stems).
    Returns ``(vocal, backing, sample_rate, notes)``.
    """
    from vocalmix.core.parallel import beside

    notes = list(vocal.notes) + list(backing.notes)
    fix: tuple[str, int] | None = None

    def checked(a: Audio, what: str) -> tuple[np.ndarray, list[str], tuple[str, int] | None]:
        # one pass for the offset and, for the vocal, what its channels need (their
        # products are centred there, so the offset taken out changes nothing)
        mean, hi, lo, products = _channel_pass(a.samples,
                                               gram=vocal_channels and what == "vocal")
        x, note = _without_dc(a, what, mean, hi, lo)
        said = [note] if note else []
        fixed = None
        if products is not None:
            fixed, note = vocal_channel_fix(products, mean * a.samples.shape[0],
                                            a.samples.shape[0], a.label or a.path)
            if note:
                said.append(note)
        return x, said, fixed

    # the two inputs checked on two threads (their passes let go of the GIL); the vocal's
    # error, when both have one, is the one raised, as when the vocal was checked first
    (b, b_notes, _), (v, v_notes, fix) = beside(lambda: checked(backing, "backing"),
                                                lambda: checked(vocal, "vocal"))
    notes += v_notes + b_notes
    v = apply_channel_fix(v, fix)
    if max_decoded_bytes is None:
        max_decoded_bytes = max_decoded_limit_bytes()
    sr = (checked_rate(sample_rate, "output sample rate") if sample_rate is not None
          else max(vocal.sample_rate, backing.sample_rate))  # (0 is refused, not a default)
    nv = -(-vocal.samples.shape[0] * sr // vocal.sample_rate)
    nb = -(-backing.samples.shape[0] * sr // backing.sample_rate)
    n_out = max(nv, nb)
    if decoded_bytes(n_out, 2) > max_decoded_bytes:
        big = backing if nb >= nv else vocal
        what = big.label or big.path
        if big.sample_rate != sr:
            what += f" at {sr} Hz"
        raise AudioTooLargeError(_too_large(what, n_out, 2, sr, max_decoded_bytes))
    for name, a in (("vocal", vocal), ("backing", backing)):
        if a.sample_rate != sr:
            x = resample(v if name == "vocal" else b, a.sample_rate, sr)
            if name == "vocal":
                v = x
            else:
                b = x
            notes.append(f"{name} resampled from {a.sample_rate} Hz to {sr} Hz")
    n = max(v.shape[0], b.shape[0])
    if v.shape[0] != b.shape[0]:
        shorter = "vocal" if v.shape[0] < n else "backing"
        notes += padding_notes(shorter, abs(v.shape[0] - b.shape[0]) / sr, n / sr)
        # (the shorter one only: the longer is returned as it came, not copied)
        if shorter == "vocal":
            v = np.pad(v, ((0, n - v.shape[0]), (0, 0)))
        else:
            b = np.pad(b, ((0, n - b.shape[0]), (0, 0)))
    return v, b, sr, notes


# --- inputs read a block at a time ---------------------------------------------------

#: frames an :class:`AudioReader` decodes at a time (1.5 s at 44.1 kHz: 0.5 MB of stereo)
READ_BLOCK = 1 << 16


class AudioReader:
    """An audio file read a block at a time: for inputs too long to hold whole in memory.

    Opening it checks what :func:`read_audio` checks before decoding (a regular file in a
    format libsndfile decodes, a length within ``max_duration_s``, a supported rate, a
    channel layout that ``fold`` allows) but not the decoded size: nothing is held whole.
    :meth:`scan` then decodes the file once and applies :func:`validate_signal`'s and
    :func:`prepare_pair`'s checks to all of it (NaN or infinite samples, an absurd peak,
    silence, a constant offset to take out, clipping to note); :meth:`read` and
    :meth:`blocks` return float32 stereo, folded as :func:`validate_signal` folds, with the
    offset :meth:`scan` found subtracted as :func:`prepare_pair` subtracts it, so the
    samples are those the whole-file path would mix.

    Attributes: ``path``, ``label``, ``sample_rate`` (Hz), ``frames``, ``channels`` (the
    file's), ``notes``, ``activity`` and ``activity_hop`` (after :meth:`scan`).
    """

    def __init__(self, path: str | os.PathLike[str], *, label: str | None = None,
                 fold: str = "error", max_duration_s: float | None = None) -> None:
        p = Path(path)
        self.path = str(p)
        self.label = label or str(p)
        self.fold = fold
        limit = max_duration_limit_s() if max_duration_s is None else max_duration_s
        _refuse_special_file(p, self.label)
        _refuse_missing_or_folder(p, self.label)

        def too_long(seconds: float) -> str:
            return _too_long(self.label, seconds, limit)

        self._limit_s = limit
        self._ffmpeg: str | None = None  # the FFmpeg demuxer of a file libsndfile cannot read
        self._local: str | None = None  # that file decoded to a temporary file
        self._decode_notes: list[str] = []
        try:
            with sf.SoundFile(_sf_name(p)) as f:
                sr, frames, channels = _checked_header(f, self.label, limit, too_long, None)
                seekable = bool(f.seekable())
        except (DurationError, UnreadableAudioError):
            raise
        except _DECODER_ERRORS as e:
            self._ffmpeg = _ffmpeg_format(p)
            if self._ffmpeg is None:
                raise _undecodable(self.label, e, p) from None
            with _FFmpegDecode(p, self._ffmpeg, self.label) as d:
                sr, frames, channels, seekable = d.sample_rate, d.track, d.channels, True
                if frames == 0:  # (a browser's WebM: its packets say how long it is, and
                    # the sum is held to the limit as it adds up)
                    frames = d.demuxed_length(limit)
                elif frames / sr > limit:
                    raise DurationError(too_long(frames / sr)) from None
            if frames == 0:
                raise UnreadableAudioError(f"{self.label}: states no length, so it cannot "
                                           "be read in parts; convert it to FLAC") from None
        if not seekable:
            raise UnreadableAudioError(f"{self.label}: this file cannot be read in parts "
                                       "(its format does not allow seeking); convert it to "
                                       "WAV or FLAC")
        if frames == 0:
            raise EmptyAudioError(f"{self.label}: the file holds no audio samples "
                                  "(zero length)")
        validate_signal(np.zeros((int(MIN_DURATION_S * sr) + 1, min(channels, 3)),
                        np.float32), sr, label=self.label, fold=fold)  # rate, layout
        self.sample_rate, self.frames, self.channels = sr, frames, channels
        self.notes: tuple[str, ...] = ()
        self.activity = np.zeros(0, dtype=bool)
        self.activity_hop = READ_BLOCK
        self._offset: np.ndarray | None = None
        self._channels: tuple[str, int] | None = None  # (vocal_channel_fix)

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / float(self.sample_rate)

    def _source(self) -> str:
        """The file libsndfile reads: the file itself, or for a format only FFmpeg reads
        (M4A, WebM, AAC) a temporary file it is decoded to once, on first use (32-bit
        float W64 in the temporary folder, deleted with the reader or at exit)."""
        if self._ffmpeg is None:
            return self.path
        if self._local is None:
            self._local = _decoded_to_temporary(Path(self.path), self._ffmpeg, self.label,
                                                self.frames, self.channels,
                                                self._decode_notes, self._limit_s)
            weakref.finalize(self, _unlink_quietly, self._local)
        return self._local

    def _raw(self, f: sf.SoundFile, count: int) -> np.ndarray:
        try:
            x = f.read(count, dtype="float32", always_2d=True)
        except _DECODER_ERRORS as e:  # (the file is open: its words are the cause)
            raise _undecodable(self.label, e) from None
        return _as_stereo(x, self.fold, self.label)

    def scan(self, what: str, activity_dbfs: float | None = None, *,
             vocal_channels: bool = False, remove_offset: bool = True) -> AudioReader:
        """Decode the whole file once (:data:`READ_BLOCK` frames at a time) and check it
        as :func:`read_audio` and :func:`prepare_pair` do; ``what`` names the part in the
        messages (``vocal``, ``backing``). Sets :attr:`notes` and, with ``activity_dbfs``,
        :attr:`activity`: whether each block of :attr:`activity_hop` frames has an RMS
        (its own mean taken out) above that level, dBFS. ``vocal_channels``: find what a
        vocal's channels need, as :func:`prepare_pair` does (applied by :meth:`read` and
        :meth:`blocks`). ``remove_offset=False``: the samples as :func:`read_audio` gives
        them, for an analysis of the file as it is: no constant offset taken out, and a
        silent file not refused. Returns the reader."""
        notes: list[str] = []
        active: list[bool] = []
        floor = None if activity_dbfs is None else 10.0 ** (activity_dbfs / 20.0)
        _as_stereo(np.zeros((1, self.channels), np.float32), self.fold, self.label, notes)
        total, hi, lo = np.zeros(2), np.full(2, -np.inf), np.full(2, np.inf)
        gram = np.zeros((2, 2))
        run, longest, seen = 0, 0, 0
        with sf.SoundFile(_sf_name(self._source())) as f:
            _from_start(f)
            while True:
                x = self._raw(f, READ_BLOCK)
                if x.shape[0] == 0:
                    break
                seen += x.shape[0]
                if _checked_peak(x, self.label) >= CLIP_LEVEL:
                    # a run of clipped samples may go on across blocks: the run that ends
                    # the block is carried into the next one
                    at = _clipped_rows(x)
                    if at.all():
                        run += at.size
                        longest = max(longest, run)
                    else:
                        first_clean = int(np.argmin(at))
                        longest = max(longest, run + first_clean, _longest_clipped_run(x))
                        run = int(at.size - 1 - np.flatnonzero(~at)[-1])
                else:
                    run = 0
                m, h, lo_, products = _channel_pass(x, gram=vocal_channels)
                total += m * x.shape[0]
                if products is not None:
                    gram += products
                if floor is not None:
                    # each channel's deviation on its own (numpy's std over axis 0 of a
                    # (n, 2) block reduces a row at a time: 1.5 ms against 0.08 ms a
                    # block, 3.7 s against 0.2 s over an hour's vocal)
                    active.append(max(float(x[:, k].std()) for k in range(x.shape[1]))
                                  > floor)
                np.maximum(hi, h, out=hi)
                np.minimum(lo, lo_, out=lo)
            cut = _cut_off_note(Path(self.path), f, self.label, seen / self.sample_rate)
        longest = max(longest, run)
        if seen == 0:
            raise EmptyAudioError(f"{self.label}: the file holds no audio samples "
                                  "(zero length)")
        if seen / self.sample_rate < MIN_DURATION_S:
            raise DurationError(f"{self.label}: {seen / self.sample_rate:.3f} s is too short "
                                f"to mix (at least {MIN_DURATION_S} s needed)")
        self.frames = seen  # what decodes, should the header have said otherwise
        note = _peak_note(self.label, float(max(hi.max(), -lo.min())), longest)
        if note:
            notes.append(note)
        if remove_offset:
            self._offset, note = _dc_offset(total / seen, hi, lo, self.label, what)
            if note:
                notes.append(note)
        if vocal_channels:
            self._channels, note = vocal_channel_fix(gram, total, seen, self.label)
            if note:
                notes.append(note)
        if cut:
            notes.append(cut)
        notes += self._decode_notes
        self.notes = tuple(notes)
        self.activity = np.array(active, dtype=bool)
        return self

    def _clean(self, x: np.ndarray) -> np.ndarray:
        if self._offset is None:
            y = np.ascontiguousarray(x, dtype=np.float32)
        else:
            y = np.ascontiguousarray(x - self._offset, dtype=np.float32)
        return apply_channel_fix(y, self._channels)

    def read(self, start: int, count: int) -> np.ndarray:
        """Frames ``start`` to ``start + count`` (at the file's rate) as float32 ``(n,
        2)``; silence past the end of the file."""
        out = np.zeros((max(int(count), 0), 2), np.float32)
        start = max(int(start), 0)
        if start < self.frames and count > 0:
            with sf.SoundFile(_sf_name(self._source())) as f:
                f.seek(start)
                x = self._clean(self._raw(f, min(int(count), self.frames - start)))
            out[: x.shape[0]] = x
        return out

    def blocks(self, sample_rate: int | None = None, block: int = READ_BLOCK
               ) -> Iterator[np.ndarray]:
        """The whole file as consecutive float32 ``(n, 2)`` blocks, resampled to
        ``sample_rate`` (Hz; default the file's) with a streaming soxr resampler (the
        quality of :func:`resample`) when that differs. The blocks are of any length; the
        caller pads or cuts the end."""
        rs = None
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            import soxr

            rs = soxr.ResampleStream(self.sample_rate, int(sample_rate), 2,
                                     dtype="float32", quality="HQ")
        with sf.SoundFile(_sf_name(self._source())) as f:
            _from_start(f)
            while True:
                x = self._raw(f, block)
                last = x.shape[0] < block
                y = self._clean(x)
                if rs is not None:
                    y = np.ascontiguousarray(rs.resample_chunk(y, last=last),
                                             dtype=np.float32)
                if y.shape[0]:
                    yield y
                if last:
                    return


def _decoded_to_temporary(p: Path, fmt: str, label: str, stated_frames: int, channels: int,
                          notes: list[str], max_duration_s: float) -> str:
    """Decode the file ``p`` (FFmpeg's demuxer ``fmt``) to a new temporary 32-bit float
    W64 file, a block at a time, and return its path; the decoder's warnings are added to
    ``notes``. Refused (:class:`UnreadableAudioError`) when the temporary folder has
    too little space for it, before anything is written; decoding stops with a
    :class:`DurationError` past ``max_duration_s`` (a header may understate the length,
    and the file must not fill the disk)."""
    need = decoded_bytes(stated_frames, channels) + (64 << 20)
    folder = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(folder).free
        if free < need:
            raise UnreadableAudioError(
                f"{label}: reading it in parts needs about {need / MB:.0f} MB in the "
                f"temporary folder {folder}, which has {free / MB:.0f} MB free; set TMPDIR "
                "to a folder with more space, or convert the file to FLAC")
    fd, tmp = tempfile.mkstemp(prefix="vocalmix-", suffix=".w64")
    os.close(fd)
    try:
        with _FFmpegDecode(p, fmt, label) as d, \
                sf.SoundFile(tmp, "w", d.sample_rate, d.channels, "FLOAT", format="W64") as f:
            checked = _decode_limits(d, max_duration_s,
                                     lambda s: _too_long(label, s, max_duration_s), None)
            for a in d.chunks(checked):
                f.write(np.ascontiguousarray(a.T))
            notes += d.notes()
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


#: samples (all channels') per row of the view whose columns :func:`_channel_pass` reduces
_STATS_WIDTH = 1024
#: rows of a pair of channels multiplied and summed by one BLAS call (float32 sums, added
#: in float64)
_GRAM_ROWS = 1 << 16


def _channel_pass(x: np.ndarray, gram: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per channel of ``x`` ``(n, channels)``: the mean (float64), the largest and the
    smallest sample, and with ``gram`` the channels' sums of products ``x' x`` (float64;
    float32 sums within :data:`_GRAM_ROWS` rows).

    The interleaved samples are read as rows of :data:`_STATS_WIDTH` (whole frames) and
    reduced down the columns, each column a channel's running sum in float64, largest and
    smallest sample; a column's figures then go to its channel. No copy is made: a
    transposed copy, a group of rows at a time, took 0.03-0.05 s for 3 minutes of stereo,
    most of it the page faults of its fresh memory, against about 0.02 s here. The
    products are strided BLAS dot products of each pair of channels."""
    n, c = x.shape
    x = np.ascontiguousarray(x)  # (as decoded, it is)
    w = max(1, _STATS_WIDTH // c) * c
    whole = n * c // w
    flat = x.reshape(-1)
    body = flat[: whole * w].reshape(whole, w)
    rest = flat[whole * w :].reshape(-1, c)
    total = (body.sum(axis=0, dtype=np.float64).reshape(-1, c).sum(axis=0)
             + rest.sum(axis=0, dtype=np.float64))
    hi = np.maximum(body.max(axis=0, initial=-np.inf).reshape(-1, c).max(axis=0),
                    rest.max(axis=0, initial=-np.inf)).astype(np.float64)
    lo = np.minimum(body.min(axis=0, initial=np.inf).reshape(-1, c).min(axis=0),
                    rest.min(axis=0, initial=np.inf)).astype(np.float64)
    products = None
    if gram:
        products = np.zeros((c, c))
        for i in range(0, n, _GRAM_ROWS):
            blk = x[i : i + _GRAM_ROWS]
            for a in range(c):
                for b in range(a, c):
                    products[a, b] += float(np.dot(blk[:, a], blk[:, b]))
        products += np.triu(products, 1).T
    return total / max(n, 1), hi, lo, products


def _dc_offset(mean: np.ndarray, hi: np.ndarray, lo: np.ndarray, name: str, what: str
               ) -> tuple[np.ndarray | None, str | None]:
    """From each channel's mean, largest and smallest sample: the constant (DC) offset to
    subtract (float32 per channel; ``None`` below ``DC_OFFSET_DBFS``) and the note saying
    so. Raises :class:`SilentAudioError` when nothing audible is left once it is out (a
    peak below -90 dBFS). ``name`` is how the message names the file, ``what`` the part
    (``vocal``, ``backing``)."""
    dc = float(np.abs(mean).max())
    ac_peak = float(max((hi - mean).max(), (mean - lo).max()))
    if ac_peak < SILENCE_PEAK:
        if dc >= SILENCE_PEAK:
            raise SilentAudioError(
                f"{name}: the {what} holds no sound, only a constant (DC) offset of "
                f"{20 * np.log10(dc):+.1f} dBFS; nothing to mix"
            )
        raise SilentAudioError(
            f"{name}: the {what} is silent (peak below -90 dBFS); nothing to mix"
        )
    if dc < 10 ** (DC_OFFSET_DBFS / 20):
        return None, None
    return mean.astype(np.float32), (
        f"{what}: removed a constant (DC) offset of {20 * np.log10(dc):+.1f} dBFS "
        "(inaudible, but it would take headroom from the mix)")


def vocal_channel_fix(gram: np.ndarray, sums: np.ndarray, n: int, name: str
                      ) -> tuple[tuple[str, int] | None, str | None]:
    """What a stereo vocal's channels need, from their sums of products ``gram``
    (``x' x``), their sums and the number of frames ``n`` (the energies and correlation
    are those of the channels with their means taken out): ``(("one", k), note)`` for a
    vocal recorded on channel ``k`` only (the other :data:`ONE_SIDED_DB` or more
    quieter), ``(("flip", 1), note)`` for one signal with a channel inverted
    (:data:`ANTIPHASE_CORRELATION`), ``(None, warning)`` for channels largely in
    opposite polarity (:data:`OUT_OF_PHASE_WARN_CORRELATION`), ``(None, None)`` otherwise
    (:func:`apply_channel_fix` applies it)."""
    if gram.shape != (2, 2) or n <= 0:
        return None, None
    m = sums / n
    g = gram - n * np.outer(m, m)  # centred: a constant offset is not a channel's content
    e = np.maximum(np.diag(g), 0.0)
    loud = int(np.argmax(e))
    if e[loud] <= 0.0:
        return None, None
    sides = ("left", "right")
    quiet = 1 - loud
    if e[quiet] <= e[loud] * 10.0 ** (-ONE_SIDED_DB / 10.0):
        how = ("is silent" if e[quiet] == 0.0 else
               f"is {10.0 * np.log10(e[loud] / e[quiet]):.0f} dB below the {sides[loud]}")
        return ("one", loud), (
            f"{name}: the {sides[quiet]} channel {how} (a microphone recorded on one "
            f"channel of a stereo file): the {sides[loud]} channel is used on both sides, "
            "so that the vocal sits in the centre")
    rho = float(g[0, 1] / np.sqrt(e[0] * e[1]))
    if rho <= ANTIPHASE_CORRELATION:
        return ("flip", 1), (
            f"{name}: its channels are one signal in opposite polarity (correlation "
            f"{rho:+.3f}: a channel wired or recorded inverted), which cancels in mono: "
            "the right channel's polarity is flipped")
    if rho <= OUT_OF_PHASE_WARN_CORRELATION:
        return None, (
            f"warning: {name}: its channels are largely in opposite polarity (correlation "
            f"{rho:+.2f}), so the vocal partly cancels in mono (a phone, a club system); "
            "left as it is: if a channel was recorded inverted, flip it")
    return None, None


def apply_channel_fix(x: np.ndarray, fix: tuple[str, int] | None) -> np.ndarray:
    """``x`` ``(n, 2)`` with :func:`vocal_channel_fix`'s ``fix`` applied (``x`` itself for
    ``None``): one channel copied to both, or one channel's polarity flipped (exact)."""
    if fix is None:
        return x
    kind, k = fix
    if kind == "one":
        return np.ascontiguousarray(np.repeat(x[:, k : k + 1], 2, axis=1), dtype=np.float32)
    y = np.array(x, dtype=np.float32, copy=True)
    y[:, k] *= np.float32(-1.0)
    return y


def _without_dc(a: Audio, what: str, mean: np.ndarray, hi: np.ndarray, lo: np.ndarray
                ) -> tuple[np.ndarray, str | None]:
    """``a.samples`` with a DC offset of ``DC_OFFSET_DBFS`` or more removed, and the note
    saying so, from its channels' ``mean``, largest (``hi``) and smallest (``lo``) sample
    (:func:`_channel_pass`); raises :class:`SilentAudioError` when nothing audible is
    left."""
    x = a.samples
    offset, note = _dc_offset(mean, hi, lo, a.label or a.path, what)
    if offset is None:
        return x, None
    return np.ascontiguousarray(x - offset, dtype=np.float32), note


# --- output ------------------------------------------------------------------------------
#
# Every output goes through an :class:`OutputPlan`: the outputs of one command are checked
# together before any work, then written together so that a kill at any point leaves
# either all the previous files or all the new ones.
#
# Writing a group (``OutputPlan.commit``):
#   1. each output is written to a scratch file in its own folder and fsync'ed;
#   2. a journal (the list of outputs, their scratch and backup names) is written into
#      every folder concerned, the first folder's copy (the primary) last: from the moment
#      it exists the group is "committing";
#   3. each existing output is hard-linked to a backup (renamed where links are not
#      supported), then each scratch file is renamed over its output; folders fsync'ed;
#   4. the primary journal is replaced by one that says "committed": the commit point;
#   5. backups, the other journal copies, then the primary are deleted.
# A later plan touching one of those folders finds the scratch files of a process that is
# gone (:func:`recover_outputs`): it restores the backups of a group that never reached
# step 4, finishes the clean-up of one that did, and deletes any other scratch file.
# A group of one output needs no journal: one rename is atomic.
# Steps 2-5 (and the undo of a group that fails in them) run with every folder of the group
# locked (:func:`_folders_locked`), so that two writers committing the same outputs at once
# (two runs with --force) leave one writer's whole group, never a mixture of both.

#: audio output formats by file extension
AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF",
                 ".mp3": "MP3"}
_SUBTYPES = {".wav": "PCM_24", ".flac": "PCM_24", ".aiff": "PCM_24", ".aif": "PCM_24",
             ".mp3": "MPEG_LAYER_III"}
#: bytes per sample an audio output takes at most, by libsndfile subtype (an estimate)
_SAMPLE_BYTES = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8, "VORBIS": 1,
                 "MPEG_LAYER_III": 1}
#: the rates an output format holds, Hz, where it does not hold all (MPEG-1, -2 and -2.5
#: Layer III)
_FORMAT_RATES = {".mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)}
#: the highest rate an output format is written at, Hz, where it is lower than vocalmix's
#: 384 kHz: libsndfile's (1.2.2) Vorbis encoder crashes the process above 200 kHz
_FORMAT_MAX_RATE = {".ogg": 192000}
#: libsndfile's compression level (0: best quality, 1: smallest) by output format: an MP3
#: at 0 is LAME's highest quality (about 220-320 kb/s for a stereo mix at 44.1 kHz)
_COMPRESSION_LEVEL = {"MP3": 0.0}
#: bytes a non-audio output (a params document, a report) is assumed to need at most
FILE_ESTIMATE_BYTES = 1 << 20
#: free space kept beyond the estimate of the outputs, bytes
SPACE_MARGIN_BYTES = 8 << 20
#: scratch files older than this are stale even when a process with their writer's id is
#: running (process ids are reused), s
STALE_AFTER_S = 24 * 3600.0

_SCRATCH_RE = re.compile(
    r"^\.vocalmix-(\d+)-([0-9a-f]{12})-(e\d+|j\d+|probe)\.(tmp|bak|journal)(\.[A-Za-z0-9]{1,8})?$"
)
_JOURNAL_FORMAT = "vocalmix.output-journal"


@dataclass(frozen=True)
class AudioData:
    """Audio to write: float samples ``(n_samples, channels)`` at ``sample_rate`` Hz.

    ``subtype`` is libsndfile's sample format; by default 24-bit PCM for WAV, FLAC and
    AIFF (32-bit float for a WAV or AIFF whose samples reach full scale:
    :func:`past_full_scale`), Vorbis for OGG.
    """

    samples: np.ndarray
    sample_rate: int
    subtype: str | None = None


class BlockSource:
    """Several audio outputs made together a block at a time (a render too long to hold
    whole): ``blocks`` yields tuples of float32 ``(n, channels)`` arrays, one per output,
    at ``sample_rate`` Hz. :meth:`output` names one of them as the content of a planned
    output; :meth:`OutputPlan.commit` runs the blocks once, writing every output named
    as it goes."""

    def __init__(self, blocks: Iterable[tuple[np.ndarray, ...]], sample_rate: int) -> None:
        self.blocks = blocks
        self.sample_rate = int(sample_rate)
        self.used = False

    def output(self, index: int, subtype: str | None = None, *,
               within_full_scale: bool = False) -> AudioStream:
        """Output ``index`` of each tuple, as an audio content for :meth:`OutputPlan.commit`
        (``subtype`` as for :class:`AudioData`; ``within_full_scale``: see
        :class:`AudioStream`)."""
        return AudioStream(self, int(index), subtype, within_full_scale)


@dataclass(frozen=True)
class AudioStream:
    """One output of a :class:`BlockSource`, to write as it is made.
    ``within_full_scale``: its samples never pass full scale (a mix under the master's
    limiter, whose ceiling is at most 0 dBTP), so that an MP3 of it may be encoded from
    16-bit samples (:class:`LameMp3`); a stream not known to stay within it is encoded
    from its float samples."""

    source: BlockSource
    index: int
    subtype: str | None = None
    within_full_scale: bool = False


#: what :meth:`OutputPlan.commit` writes: text, bytes, audio (whole or made block by
#: block), or a function giving text or bytes, called once the audio is written (a
#: document holding figures measured while the audio was made)
Content = str | bytes | AudioData | AudioStream | Callable[[], str | bytes]


@dataclass(frozen=True)
class PlannedOutput:
    """One output of a plan: ``path`` as given, ``kind`` ``audio`` or ``file``."""

    path: Path
    kind: str

    @property
    def absolute(self) -> Path:
        return _identity(self.path)


@dataclass
class _Entry:
    dest: Path
    tmp: Path
    bak: Path
    existed: bool


def _identity(p: str | os.PathLike[str]) -> Path:
    """What a path names, absolute: its folder with symlinks resolved before any ``..``
    after them is applied (``link/../x.wav`` is beside the link's target, where the
    system writes it, not beside the link, where ``os.path.abspath`` would put it), and
    its own name."""
    head, name = os.path.split(os.fspath(p))
    return Path(os.path.realpath(os.path.join(os.getcwd(), head))) / name


def _path_keys(path: str | os.PathLike[str]) -> set[object]:
    """What a path names, in each of the ways two paths may name one file: the path with
    its folder's symlinks resolved (:func:`_identity`), the path with every symlink
    resolved, and, when it exists, its device and inode (a hard link). Two paths name the
    same file when their keys meet (:func:`_same_file`); a set of them is a table of
    files to look paths up in (the batch's outputs against its inputs)."""
    try:
        keys: set[object] = {str(_identity(path)), os.path.realpath(path)}
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return {os.path.abspath(path)}
    with contextlib.suppress(OSError, ValueError):
        st = os.stat(path)
        keys.add((st.st_dev, st.st_ino))
    return keys


def _same_file(a: Path, b: Path) -> bool:
    return bool(_path_keys(a) & _path_keys(b))


def withdraw_outputs(paths: Iterable[str | os.PathLike[str]],
                     inputs: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Remove earlier outputs that no longer describe their inputs (a batch row whose new
    mix failed leaves no mix of its old inputs under its name). Only regular files are
    removed (never a link, a folder or a device), and never one of ``inputs`` (by any
    path that names it); returns the files removed. A file that cannot be removed stays
    (returned only when it went)."""
    ins = [Path(i) for i in inputs]
    gone: list[Path] = []
    for raw in paths:
        p = Path(raw)
        try:
            st = os.lstat(p)
        except (OSError, ValueError):
            continue
        if not stat.S_ISREG(st.st_mode) or any(_same_file(p, i) for i in ins):
            continue
        with contextlib.suppress(OSError):
            os.unlink(p)
            gone.append(p)
    return gone


def _nearest_existing(folder: Path) -> Path:
    q = Path(os.path.realpath(os.path.join(os.getcwd(), folder)))
    while not os.path.lexists(q) and q != q.parent:
        q = q.parent
    return q


def _pathconf(folder: Path, name: str, default: int) -> int:
    try:
        v = os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):
        return default
    return int(v) if v and v > 0 else default


def _why(e: OSError) -> str:
    """An OSError in a few words a user can act on."""
    return {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENAMETOOLONG: "file name too long",
    }.get(e.errno or 0, e.strerror or str(e))


def _short(p: Path) -> str:
    """``p`` with an absurdly long file name shortened for a one-line message."""
    n = p.name
    return str(p) if len(n) <= 80 else str(p.parent / (n[:40] + "..." + n[-12:]))


def _probe_writable(folder: Path) -> None:
    """Create and delete a file in ``folder``; raise :class:`OutputError` if that fails."""
    probe = folder / f".vocalmix-{os.getpid()}-{secrets.token_hex(6)}-probe.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise OutputError(f"{folder}: cannot write in this folder ({_why(e)})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # some systems cannot open folders; the renames still happened
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


class OutputPlan:
    """The outputs of one command, checked as a whole before any work, written as a whole.

    Constructing a plan first recovers what a killed earlier run left in the output
    folders (:func:`recover_outputs`; what it did is in :attr:`notes`), then refuses,
    with :class:`~vocalmix.core.errors.OutputError` and its subclasses: two outputs that
    name the same file, or one that needs the other as a folder; an output that is an
    input (:class:`OverwriteInputError`); an output that exists, unless ``force`` or it is
    in ``replaceable`` (:class:`OutputExistsError`); a folder, device or pipe where an
    output goes; a file where a folder must be; a folder that cannot be written (probed
    by creating a file); a name longer than the file system allows; an audio extension
    libsndfile cannot write. :meth:`require_space` checks the free space once the length
    of the audio is known; :meth:`commit` writes everything.

    Outputs get the mode the umask gives; a replaced file keeps its permission bits.
    """

    def __init__(
        self,
        audio: Iterable[str | os.PathLike[str]] = (),
        files: Iterable[str | os.PathLike[str]] = (),
        *,
        inputs: Iterable[str | os.PathLike[str]] = (),
        force: bool = False,
        replaceable: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.force = force
        self.outputs: tuple[PlannedOutput, ...] = tuple(
            [PlannedOutput(Path(p), "audio") for p in audio]
            + [PlannedOutput(Path(p), "file") for p in files]
        )
        self._replaceable = {_identity(r) for r in replaceable}
        folders = {_nearest_existing(o.absolute.parent) for o in self.outputs}
        self.notes: list[str] = recover_outputs(*sorted(folders))
        self._check([Path(i) for i in inputs])

    @property
    def paths(self) -> list[Path]:
        """The outputs' paths, as given, in order."""
        return [o.path for o in self.outputs]

    def _may_replace(self, p: Path) -> bool:
        return self.force or _identity(p) in self._replaceable

    def _check(self, inputs: list[Path]) -> None:
        seen: dict[Path, Path] = {}
        probed: set[Path] = set()
        for o in self.outputs:
            p = o.path
            ident = _identity(p)
            if not p.name or p.name in (".", ".."):
                raise OutputError(f"{p}: is not a file name")
            if ident in seen:
                also = f" (also given as {seen[ident]})" if str(seen[ident]) != str(p) else ""
                raise OutputError(f"{p}: two outputs would be written to this file{also}; "
                                  "each output needs its own path")
            seen[ident] = p
            if o.kind == "audio" and p.suffix.lower() not in AUDIO_FORMATS:
                raise OutputError(f"{p}: unsupported output format {p.suffix or '(none)'!r}; "
                                  "use .wav, .flac, .ogg, .aiff or .mp3")
            if (o.kind == "audio" and p.suffix.lower() == ".mp3"
                    and "MP3" not in sf.available_formats()):
                raise OutputError(f"{p}: this libsndfile ({sf.__libsndfile_version__}) "
                                  "cannot write MP3 (1.1 or later can); write .flac or .ogg")
            for pi in inputs:
                if _same_file(p, pi):
                    raise OverwriteInputError(f"{p}: is an input file; vocalmix never "
                                              "overwrites one")
            self._check_folder(p, probed)
            self._check_existing(p)
        idents = list(seen)
        for a in idents:
            for b in idents:
                if a in b.parents:
                    raise OutputError(f"{seen[a]}: is planned as a file, but {seen[b]} needs a "
                                      "folder there")

    def _check_existing(self, p: Path) -> None:
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise OutputError(f"{_short(p)}: cannot be checked ({_why(e)})") from None
        if os.path.isdir(p):
            raise OutputError(f"{p}: is a folder, not a file name")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise OutputError(f"{p}: is not a regular file (a device, pipe or socket); "
                              "outputs must be files")
        if not self._may_replace(p):
            raise OutputExistsError(f"{p}: already exists")

    def _check_folder(self, p: Path, probed: set[Path]) -> None:
        a = _identity(p)
        q, missing = a.parent, []
        while not os.path.lexists(q) and q != q.parent:
            missing.append(q.name)
            q = q.parent
        if not os.path.isdir(q):
            raise OutputError(f"{q}: is a file, but {p} needs a folder there")
        name_max = _pathconf(q, "PC_NAME_MAX", 255)
        for name in [*missing, a.name]:
            try:
                n = len(os.fsencode(name))
            except UnicodeError:
                raise OutputError(f"{_short(p)}: the name cannot be encoded for this file "
                                  "system") from None
            if n > name_max:
                raise OutputError(f"{_short(p)}: a name of {n} bytes is longer than this file "
                                  f"system allows ({name_max} bytes)")
        path_max = _pathconf(q, "PC_PATH_MAX", 4096)
        if len(os.fsencode(str(a))) >= path_max:
            raise OutputError(f"{_short(p)}: the path is longer than this file system allows "
                              f"({path_max} bytes)")
        if q not in probed:
            _probe_writable(q)
            probed.add(q)

    def estimate_bytes(self, n_frames: int, channels: int = 2) -> int:
        """The space the outputs need at most, bytes, for audio of ``n_frames`` frames."""
        return sum(self._estimate(o, n_frames, channels) for o in self.outputs)

    def check_rates(self, sample_rate: int) -> None:
        """Refuse (:class:`OutputError`) an audio output whose format cannot hold audio at
        ``sample_rate`` Hz (MP3: 8-48 kHz; OGG: up to 192 kHz)."""
        for o in self.outputs:
            if o.kind == "audio" and not format_holds(o.path, sample_rate):
                raise OutputError(
                    f"{o.path}: {format_rate_problem(o.path, sample_rate)}; pass "
                    f"--sample-rate {_fitting_rate(o.path, sample_rate)}, or write .flac "
                    "or .wav")

    @staticmethod
    def _estimate(o: PlannedOutput, n_frames: int, channels: int) -> int:
        if o.kind != "audio":
            return FILE_ESTIMATE_BYTES
        ext = o.path.suffix.lower()
        # (a WAV or AIFF past full scale is written as 32-bit float)
        sub = "FLOAT" if ext in _FLOAT_WHEN_LOUD else _SUBTYPES.get(ext, "VORBIS")
        return int(n_frames) * int(channels) * _SAMPLE_BYTES.get(sub, 4) + (64 << 10)

    def require_space(self, n_frames: int, channels: int = 2, *,
                      sample_rate: int | None = None) -> None:
        """Refuse (:class:`OutputError`) when a file system lacks the space the outputs
        need for audio of ``n_frames`` frames (an estimate, plus a margin), or, given the
        audio's ``sample_rate`` (Hz), when an audio output's format cannot hold it (MP3:
        8-48 kHz). The space of files being replaced is not counted: they stay until the
        new ones are in place."""
        if sample_rate is not None:
            self.check_rates(int(sample_rate))
        need: dict[int, tuple[int, Path]] = {}
        for o in self.outputs:
            q = _nearest_existing(o.absolute.parent)
            try:
                dev = os.stat(q).st_dev
            except OSError:
                continue
            n, _ = need.get(dev, (0, q))
            need[dev] = (n + self._estimate(o, n_frames, channels), q)
        for nbytes, q in need.values():
            try:
                free = shutil.disk_usage(q).free
            except OSError:
                continue
            if free < nbytes + SPACE_MARGIN_BYTES:
                raise OutputError(
                    f"{q}: not enough free space for the outputs: about "
                    f"{(nbytes + SPACE_MARGIN_BYTES) / 1e6:.0f} MB needed, {free / 1e6:.0f} MB "
                    "free"
                )

    def commit(self, contents: Mapping[str | os.PathLike[str], Content]) -> list[Path]:
        """Write every output (``contents`` maps each planned path to its
        :data:`Content`) all at once: on any failure, or a kill followed by a later plan,
        the previous files are back. Audio made block by block (:class:`AudioStream`) is
        written first, every output of one :class:`BlockSource` in one run of its blocks;
        a function is called after that. Returns the paths as given.

        Raises :class:`OutputError` (a full disk, a folder that became unwritable...)
        after restoring the previous files."""
        by_ident = {_identity(k): v for k, v in contents.items()}
        items: list[tuple[PlannedOutput, Content]] = []
        for o in self.outputs:
            ident = _identity(o.path)
            if ident not in by_ident:
                raise ValueError(f"no content given for the planned output {o.path}")
            content = by_ident.pop(ident)
            if (o.kind == "audio") != isinstance(content, AudioData | AudioStream):
                raise TypeError(f"{o.path}: planned as {o.kind}, given {type(content).__name__}")
            if os.path.lexists(o.path) and not self._may_replace(o.path):
                raise OutputExistsError(f"{o.path}: already exists")
            items.append((o, content))
        if by_ident:
            raise ValueError(f"not planned as outputs: {', '.join(map(str, by_ident))}")
        _commit(items)
        return self.paths


def _kept_mode(dest: Path, existed: bool) -> int | None:
    """The permission bits of ``dest`` when it is a file being replaced, else ``None``
    (a new file gets the umask's)."""
    if existed:
        with contextlib.suppress(OSError):
            st = os.stat(dest)
            if stat.S_ISREG(st.st_mode):
                return stat.S_IMODE(st.st_mode) & 0o777
    return None


def _audio_format(dest: Path, subtype: str | None, samples: np.ndarray | None = None
                  ) -> tuple[str, str]:
    """libsndfile's ``(format, subtype)`` for an audio output: ``subtype`` when given,
    else 24-bit PCM (WAV, FLAC, AIFF), Vorbis (OGG) or Layer III (MP3), except that a
    WAV or AIFF whose ``samples`` (the whole signal, when known before writing) reach
    full scale is written as 32-bit float (:func:`past_full_scale`): 24-bit PCM would clip them."""
    ext = dest.suffix.lower()
    if (subtype is None and samples is not None and ext in _FLOAT_WHEN_LOUD
            and past_full_scale(samples)):
        return AUDIO_FORMATS[ext], "FLOAT"
    return AUDIO_FORMATS[ext], subtype or _SUBTYPES.get(ext, "VORBIS")


#: the formats whose outputs are written as 32-bit float when their samples reach full
#: scale (FLAC has no float samples; Vorbis keeps them as they are)
_FLOAT_WHEN_LOUD = frozenset({".wav", ".aiff", ".aif"})


def past_full_scale(x: np.ndarray) -> bool:
    """Whether float samples ``x`` reach beyond what 24-bit PCM holds: a sample at or above
    +1.0 (whose largest code is 1 - 2**-23) or below -1.0. A pre-master stem can (the
    limiter acts on the mix only): under a loud backing the vocal's peaks pass full
    scale."""
    a = np.asarray(x)
    return bool(a.size) and (float(a.max()) >= 1.0 or float(a.min()) < -1.0)


#: libsndfile's formats whose 24-bit samples are converted from float as
#: :func:`pcm24_samples` does (FLAC rounds at 24 bits, not at 32, and keeps its own)
_PCM24_FORMATS = frozenset({"WAV", "AIFF"})
#: frames converted and written at a time by :func:`_write_samples`
WRITE_BLOCK = 1 << 16
_TWO_31 = np.float32(2.0**31)
#: the largest float32 below 2**31: what libsndfile writes for a sample clipped at +1
_BELOW_TWO_31 = np.float32(2.0**31 - 128)


def pcm24_samples(x: np.ndarray) -> np.ndarray:
    """The int32 samples whose top 24 bits libsndfile (1.0.26 to 1.2.2 at least) writes for
    the float32 samples ``x`` in a 24-bit WAV or AIFF with clipping on (soundfile turns it
    on): each sample times 2**31 in float32, clipped to [-2**31, 2**31) and rounded to the
    nearest integer (ties to even: ``lrintf``). libsndfile writes int32 samples' top 24
    bits as they are, so writing these gives the same file as writing ``x``, about 40 %
    faster than libsndfile's own per-sample conversion (:func:`_pcm24_is_libsndfiles`
    checks it against the libsndfile in use)."""
    with np.errstate(over="ignore"):  # (past +-1e29: inf, clipped like the rest)
        s = np.multiply(x, _TWO_31, dtype=np.float32)
    np.clip(s, -_TWO_31, _BELOW_TWO_31, out=s)
    np.rint(s, out=s)
    return s.astype(np.int32)


@functools.cache
def _pcm24_is_libsndfiles() -> bool:
    """Whether :func:`pcm24_samples` writes the same bytes as libsndfile's own conversion
    of float samples (WAV and AIFF; rounding ties, both clipping edges and values past
    them, zeros of both signs); otherwise the float samples are written as they are."""
    edges = [0.0, -0.0, 1.0, -1.0, 1.5, -1.5, 1e30, -1e30, 1 - 2.0**-24, -1 + 2.0**-24,
             0.5 / 2**23, -0.5 / 2**23, 1.5 / 2**23, -1.5 / 2**23, 2.5 / 2**31, 1e-30]
    # values spread over [-1.2, 1.2), and the midpoints of 4000 scattered 24-bit steps:
    # Weyl sequences (k times an irrational, modulo 1; k times an odd constant, modulo
    # 2**24), not numpy.random, whose import (6-12 ms) would land on the mix's last step
    k = np.arange(4000)
    spread = (k * 0.6180339887498949) % 1.0 * 2.4 - 1.2
    steps = (k * 2654435761) % 2**24 - 2**23
    x = np.concatenate([edges, spread, steps / 2**23 + 0.5 / 2**23])
    x = np.stack([x, -x], axis=1).astype(np.float32)
    try:
        for fmt in sorted(_PCM24_FORMATS):
            a, b = io.BytesIO(), io.BytesIO()
            sf.write(a, x, 44100, subtype="PCM_24", format=fmt)
            sf.write(b, pcm24_samples(x), 44100, subtype="PCM_24", format=fmt)
            if a.getvalue() != b.getvalue():
                return False
    except Exception:  # noqa: BLE001 - any failure means: let libsndfile convert
        return False
    return True


#: the sample formats a mix can be written in (``--bit-depth``), libsndfile's subtypes by
#: bits per sample: 16-bit PCM (dithered: :class:`Tpdf16`), 24-bit PCM (the default),
#: 32-bit float
BIT_DEPTHS = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
#: the output formats that take a bit depth, and the depths each holds (FLAC has no float
#: samples; Vorbis and MP3 are compressed: they have none)
_DEPTHS_BY_FORMAT = {".wav": (16, 24, 32), ".aiff": (16, 24, 32), ".aif": (16, 24, 32),
                     ".flac": (16, 24)}


def bit_depth_subtype(path: str | os.PathLike[str], bits: int | None) -> str | None:
    """libsndfile's subtype for writing the audio file ``path`` at ``bits`` bits per sample
    (:data:`BIT_DEPTHS`), or ``None`` for the format's default (``bits`` ``None``).
    Raises :class:`OutputError` for a depth the file's format does not hold (MP3 and OGG
    hold none), before anything is written."""
    from vocalmix.core.jsondoc import short_repr

    if bits is None:
        return None
    ext = Path(path).suffix.lower()
    holds = _DEPTHS_BY_FORMAT.get(ext, ())
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or (
            int(bits) not in BIT_DEPTHS):
        raise OutputError(f"a bit depth of {short_repr(bits, 20)} is not written: use one "
                          f"of {', '.join(str(b) for b in BIT_DEPTHS)} (an integer)")
    bits = int(bits)
    if not holds:
        raise OutputError(f"{path}: a bit depth applies to WAV, AIFF and FLAC files; "
                          f"{ext or 'a file without an extension'} is compressed (or not "
                          "audio): leave the bit depth out, or write a .wav")
    if bits not in holds:
        raise OutputError(f"{path}: FLAC holds 16- or 24-bit samples, not {bits}-bit "
                          "float: write a .wav for 32-bit float")
    return BIT_DEPTHS[bits]


#: the seed of :class:`Tpdf16`'s dither: one fixed sequence, so that writing the same
#: samples again gives the same file (a re-render of a params document, to the byte)
DITHER_SEED = 1770


class Tpdf16:
    """Float samples to 16-bit PCM with TPDF dither, one file's consecutive blocks at a
    time (the same codes whatever the blocks).

    Reducing a mix to 16 bits by rounding alone turns the rounding error into distortion
    that follows the music (audible on fades and quiet passages); triangular dither of
    2 LSB peak to peak, added before rounding, makes it a steady white noise
    independent of the signal (0.5 LSB RMS, -96.3 dBFS per channel: the rounding's
    LSB^2/12 plus the dither's LSB^2/6, 16-bit LSB = 2^-15). Each code is ``round(x * 32768 + u1
    - u2)``, ``u1`` and ``u2`` uniform on [0, 1) from :data:`DITHER_SEED`'s sequence,
    clipped to [-32768, 32767], so the mix's -1 dBTP ceiling keeps about 3700 codes of
    room (a NaN sample is written as silence). What soundfile reads back is
    ``code / 32768``."""

    def __init__(self, seed: int = DITHER_SEED) -> None:
        self._rng = np.random.default_rng(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The int16 codes of the next block ``x`` ``(frames, channels)`` (float)."""
        x = np.asarray(x)
        shape = x.shape if x.ndim == 2 else (x.shape[0], 1)
        # (two draws per sample, frame after frame: consecutive blocks continue one
        # sequence, so the codes do not depend on where the blocks are cut)
        u = self._rng.random((*shape, 2))
        s = x.reshape(shape).astype(np.float64) * 32768.0 + (u[..., 0] - u[..., 1])
        np.nan_to_num(s, copy=False, nan=0.0)  # (a NaN sample is silence; inf clips)
        np.rint(s, out=s)
        np.clip(s, -32768.0, 32767.0, out=s)
        return s.astype(np.int16)


def _write_samples(f: sf.SoundFile | LameMp3, x: np.ndarray,
                   dither: Tpdf16 | None = None) -> None:
    """Append float32 ``x`` ``(frames, channels)`` to the open ``f``, :data:`WRITE_BLOCK`
    frames at a time; 24-bit WAV and AIFF samples are converted here
    (:func:`pcm24_samples`: the same file, faster) when finite, and 16-bit ones are
    dithered by ``dither`` (the file's :class:`Tpdf16`: :func:`_dither_for`)."""
    ints = f.subtype == "PCM_24" and f.format in _PCM24_FORMATS and _pcm24_is_libsndfiles()
    for i in range(0, x.shape[0], WRITE_BLOCK):
        b = x[i : i + WRITE_BLOCK]
        if dither is not None:
            f.write(dither(b))
        else:
            f.write(pcm24_samples(b) if ints and np.isfinite(b).all() else b)


def _dither_for(subtype: str) -> Tpdf16 | None:
    """A new :class:`Tpdf16` for a file of 16-bit PCM samples, else ``None``."""
    return Tpdf16() if subtype == "PCM_16" else None


def _write_audio_file(path: str | BinaryIO, x: np.ndarray, sample_rate: int, subtype: str,
                      fmt: str) -> None:
    """Write float32 ``x`` ``(frames, channels)`` as the new audio file ``path``
    (:func:`_write_samples`): what ``soundfile.write`` writes, to the byte (16-bit PCM:
    dithered, :class:`Tpdf16`), except an MP3 within full scale (:class:`LameMp3`)."""
    within = fmt == "MP3" and not past_full_scale(x)
    with _open_output(path, sample_rate, x.shape[1] if x.ndim == 2 else 1, subtype,
                      fmt, within_full_scale=within) as f:
        _write_samples(f, x, _dither_for(subtype))


class LameMp3:
    """An MP3 being written by pedalboard's LAME from 16-bit samples with TPDF dither
    (:class:`Tpdf16`), at VBR quality V0: the settings of libsndfile's compression level
    0 (:data:`_COMPRESSION_LEVEL`; on a real 3-minute mix within 0.1 % of its size and
    0.01 dB of its error against the source), encoded in about a third of its time (1.3
    s against 4.1 s). pedalboard hands LAME 16-bit samples, rounded without
    dither and clipped at full scale; dithered here first, a fade or a quiet passage is
    the music and a steady noise at -96 dBFS, not rounding distortion. libsndfile hands
    LAME the float samples, which keep what passes full scale: :func:`_open_output`
    takes this writer only for samples known to stay within it (a limited mix), else
    libsndfile's. ``where``: a path (opened here, by the file system's own bytes of its
    name) or a binary file object. Raises ``RuntimeError`` when pedalboard cannot
    write."""

    format = "MP3"
    subtype = "MPEG_LAYER_III"

    def __init__(self, where: str | os.PathLike[str] | BinaryIO, sample_rate: int,
                 channels: int) -> None:
        from pedalboard.io import AudioFile

        self._own: BinaryIO | None = None
        try:
            if isinstance(where, str | os.PathLike):
                where = self._own = open(where, "wb")  # noqa: SIM115 (closed by close())
            self._f = AudioFile(where, "w", float(sample_rate), int(channels),
                                format="mp3", quality="V0")
        except Exception as e:
            self._close_own()
            raise _lame_error(e) from e
        self._dither = Tpdf16()

    def write(self, x: np.ndarray) -> None:
        """Append float samples ``x`` ``(frames, channels)``."""
        codes = self._dither(x)
        try:
            self._f.write(np.ascontiguousarray(codes.T))
        except Exception as e:
            raise _lame_error(e) from e

    def close(self) -> None:
        try:
            self._f.close()
        except Exception as e:
            raise _lame_error(e) from e
        finally:
            self._close_own()

    def _close_own(self) -> None:
        if self._own is not None:
            self._own.close()

    def __enter__(self) -> LameMp3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lame_error(e: BaseException) -> RuntimeError:
    """A ``RuntimeError`` in the words of the first ``OSError`` in ``e``'s chain (a file
    object's failed write reaches pedalboard's caller as a ``SystemError`` caused by it),
    else of ``e``."""
    seen: BaseException | None = e
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    why = seen if seen is not None else e
    return RuntimeError(str(why).strip() or type(why).__name__)


def _open_output(path: str | BinaryIO, sample_rate: int, channels: int, subtype: str,
                 fmt: str, *, within_full_scale: bool = False) -> sf.SoundFile | LameMp3:
    """A new audio file open for writing, at the format's :data:`_COMPRESSION_LEVEL`; an
    MP3 whose samples stay ``within_full_scale`` by :class:`LameMp3`."""
    if fmt == "MP3" and subtype == _SUBTYPES[".mp3"] and within_full_scale:
        return LameMp3(path, sample_rate, channels)
    level = _COMPRESSION_LEVEL.get(fmt)
    where = path if not isinstance(path, str | os.PathLike) else _sf_name(path)
    if level is None:
        return sf.SoundFile(where, "w", sample_rate, channels, subtype, format=fmt)
    return sf.SoundFile(where, "w", sample_rate, channels, subtype, format=fmt,
                        compression_level=level)


def _audio_write_error(dest: Path, fmt: str, sub: str, e: BaseException) -> OutputError:
    """The error for libsndfile failing to create or write ``dest``'s scratch file. It
    says only "System error." when the disk fills up during the write (the free-space
    check before any work cannot see another program filling it): a folder left with less
    than :data:`SPACE_MARGIN_BYTES` free is then named as the cause."""
    why = str(e).strip() or type(e).__name__
    full = False
    with contextlib.suppress(OSError):
        full = shutil.disk_usage(dest.parent).free < SPACE_MARGIN_BYTES
    if full:
        return OutputError(f"{dest}: cannot be written as {fmt} {sub} (the disk is full: "
                           f"{why}); free some space or write elsewhere")
    return OutputError(f"{dest}: cannot be written as {fmt} {sub} ({why})")


def _write_scratch(tmp: Path, dest: Path, content: str | bytes | AudioData, existed: bool
                   ) -> None:
    """Write ``content`` to the new file ``tmp`` and fsync it. Its mode is the umask's,
    or the permission bits of ``dest`` when that is a file being replaced."""
    mode = _kept_mode(dest, existed)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        if not isinstance(content, AudioData):
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    if isinstance(content, AudioData):
        x = np.asarray(content.samples, dtype=np.float32)
        fmt, sub = _audio_format(dest, content.subtype, x)
        try:
            _write_audio_file(str(tmp), x, int(content.sample_rate), sub, fmt)
        except _DECODER_ERRORS as e:
            raise _audio_write_error(dest, fmt, sub, e) from None
    if mode is not None:  # after writing: the mode may forbid it
        os.chmod(tmp, mode)
    _fsync_path(tmp)


#: audio files written at once by :func:`_write_all` (libsndfile's conversion and the
#: writes release the GIL: two 24-bit stems take about the time of one)
WRITE_THREADS = 4


def _write_all(items: list[tuple[Path, _Entry, str | bytes | AudioData]]
               ) -> tuple[Path, BaseException] | None:
    """Write each content to its entry's scratch file, the audio ones on up to
    :data:`WRITE_THREADS` threads; every write runs to its end. Returns the first
    failure in the plan's order, ``(planned path, exception)``, or ``None``."""
    from concurrent.futures import Future, ThreadPoolExecutor

    Item = tuple[Path, _Entry, str | bytes | AudioData]
    audio: list[Item] = [(path, e, c) for path, e, c in items if isinstance(c, AudioData)]
    serial: list[Item] = [(path, e, c) for path, e, c in items
                          if not isinstance(c, AudioData)]
    workers = min(len(audio), WRITE_THREADS, os.cpu_count() or 1)
    if workers <= 1:  # one audio file (or one core): written here, after the others
        serial, audio = serial + audio, []
    for path, e, c in serial:
        try:
            _write_scratch(e.tmp, e.dest, c, e.existed)
        except Exception as ex:
            return path, ex
    if not audio:
        return None
    # which writes have begun and not ended, and whether new ones may begin: counted by
    # the writes themselves, so that a Ctrl-C at any point (even inside the pool's own
    # bookkeeping, where a started worker thread can go unrecorded) waits for them all
    gate = threading.Condition()
    state = {"stop": False, "running": 0}

    def write(e: _Entry, c: str | bytes | AudioData) -> None:
        with gate:
            if state["stop"]:
                return
            state["running"] += 1
        try:
            _write_scratch(e.tmp, e.dest, c, e.existed)
        finally:
            with gate:
                state["running"] -= 1
                gate.notify_all()

    pool = ThreadPoolExecutor(workers, thread_name_prefix="vocalmix-write")
    futures: list[Future[None]] = []
    stopped: BaseException | None = None
    try:
        for _p, e, c in audio:
            futures.append(pool.submit(write, e, c))
        for f in futures:
            f.exception()  # waits
    except BaseException as ex:  # Ctrl-C: stop here, but not before the running writes
        stopped = ex
    # no write begins now and the running ones end before the caller removes the scratch
    # files (so none is created after that), however often the user presses Ctrl-C
    while True:
        try:
            with gate:
                state["stop"] = True
                while state["running"]:
                    gate.wait()
            break
        except KeyboardInterrupt as ex:
            stopped = stopped or ex
    pool.shutdown(wait=False, cancel_futures=True)
    if stopped is not None:
        raise stopped
    for (path, _e, _c), f in zip(audio, futures, strict=True):
        failure = f.exception()
        if failure is not None:
            return path, failure
    return None


def _write_streams(streams: list[tuple[_Entry, AudioStream]]) -> None:
    """Write every :class:`AudioStream` to its entry's scratch file: the blocks of each
    :class:`BlockSource` are run once, each tuple's parts appended to their files."""
    sources: dict[int, list[tuple[_Entry, AudioStream]]] = {}
    for e, a in streams:
        sources.setdefault(id(a.source), []).append((e, a))
    for group in sources.values():
        src = group[0][1].source
        if src.used:
            raise ValueError("a BlockSource's blocks run once: it was written already")
        src.used = True
        files: list[sf.SoundFile | LameMp3 | None] = [None] * len(group)
        dithers: list[Tpdf16 | None] = [None] * len(group)
        try:
            for parts in src.blocks:
                for k, (e, a) in enumerate(group):
                    x = np.asarray(parts[a.index], dtype=np.float32)
                    f = files[k]
                    if f is None:
                        fmt, sub = _audio_format(e.dest, a.subtype)
                        try:
                            f = files[k] = _open_output(
                                str(e.tmp), src.sample_rate, x.shape[1], sub, fmt,
                                within_full_scale=a.within_full_scale)
                        except _DECODER_ERRORS as ex:
                            raise _audio_write_error(e.dest, fmt, sub, ex) from None
                        dithers[k] = _dither_for(sub)
                    try:
                        _write_samples(f, x, dithers[k])
                    except _DECODER_ERRORS as ex:
                        raise _audio_write_error(e.dest, *_audio_format(e.dest, a.subtype),
                                                 ex) from None
        finally:
            for f in files:
                if f is not None:
                    f.close()
        for e, _a in group:
            mode = _kept_mode(e.dest, e.existed)
            if mode is not None:
                os.chmod(e.tmp, mode)
            _fsync_path(e.tmp)


def _write_journal(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name[: -len(".journal")] + ".tmp")
    _write_scratch(tmp, path, json.dumps(doc, indent=1), existed=False)
    os.replace(tmp, path)
    _fsync_path(path.parent, directory=True)


def _read_journal(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == _JOURNAL_FORMAT else None


def _backup(e: _Entry) -> None:
    try:
        os.link(e.dest, e.bak, follow_symlinks=False)
    except OSError:  # no hard links here (or a FAT drive...): move it aside instead
        os.replace(e.dest, e.bak)


def _undo(e: _Entry, renamed: bool) -> None:
    """Put back what ``e.dest`` held before the commit, delete its scratch files."""
    if os.path.lexists(e.bak):
        if os.path.lexists(e.dest) and os.path.samefile(e.bak, e.dest):
            os.unlink(e.bak)  # still linked: renaming a link over itself does nothing
        else:
            os.replace(e.bak, e.dest)
    elif renamed and not e.existed and os.path.lexists(e.dest):
        os.unlink(e.dest)
    if os.path.lexists(e.tmp):
        os.unlink(e.tmp)


def _unlink_all(paths: Iterable[Path]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


@contextlib.contextmanager
def _folders_locked(folders: Iterable[Path]) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on each of ``folders`` themselves, taken
    in one order (their real paths sorted) so that writers sharing some folders cannot
    deadlock. Where folders cannot be opened or locked (no ``fcntl``, some network file
    systems) the commit goes on unlocked, as before."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fds: list[int] = []
    try:
        for f in sorted({os.path.realpath(f) for f in folders}):
            try:
                fd = os.open(f, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                continue
            fds.append(fd)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)  # (closing the descriptor releases its lock)


def _commit(items: list[tuple[PlannedOutput, Content]]) -> None:
    pid, tok = os.getpid(), secrets.token_hex(6)
    entries: list[_Entry] = []
    renamed: set[int] = set()
    created: list[Path] = []
    journals: list[Path] = []
    streams: list[tuple[_Entry, AudioStream]] = []
    later: list[tuple[_Entry, Callable[[], str | bytes]]] = []
    now: list[tuple[Path, _Entry, str | bytes | AudioData]] = []
    where = items[0][0].path if items else Path(".")
    locks = contextlib.ExitStack()
    try:
        for i, (o, content) in enumerate(items):
            where = o.path
            dest = o.absolute
            folder = dest.parent
            missing = []
            q = folder
            while not os.path.lexists(q):
                missing.append(q)
                q = q.parent
            for d in reversed(missing):
                try:
                    os.mkdir(d)
                except FileExistsError:  # made meanwhile by another writer (a batch's
                    if not os.path.isdir(d):  # workers): theirs to keep, ours to use
                        raise
                    continue
                created.append(d)
            e = _Entry(dest, folder / f".vocalmix-{pid}-{tok}-e{i}.tmp",
                       folder / f".vocalmix-{pid}-{tok}-e{i}.bak", os.path.lexists(dest))
            entries.append(e)
            if isinstance(content, AudioStream):
                streams.append((e, content))
            elif callable(content):
                later.append((e, content))
            else:
                now.append((o.path, e, content))
        failed = _write_all(now)
        if failed is not None:
            where = failed[0]
            raise failed[1]
        if streams:
            where = streams[0][0].dest  # (the audio written block by block)
        _write_streams(streams)
        for e, make in later:
            where = e.dest
            _write_scratch(e.tmp, e.dest, make(), e.existed)
        if len(entries) == 1:
            e = entries[0]
            os.replace(e.tmp, e.dest)
            renamed.add(0)
            _fsync_path(e.dest.parent, directory=True)
            return
        folders = list(dict.fromkeys(e.dest.parent for e in entries))
        for f in folders:
            _fsync_path(f, directory=True)
        locks.enter_context(_folders_locked(folders))
        for e in entries:  # as found once this writer holds the folders
            e.existed = os.path.lexists(e.dest)
        journals = [f / f".vocalmix-{pid}-{tok}-j{k}.journal" for k, f in enumerate(folders)]
        doc = {"format": _JOURNAL_FORMAT, "version": 1, "state": "committing",
               "primary": str(journals[0]), "journals": [str(j) for j in journals],
               "entries": [{"dest": str(e.dest), "tmp": str(e.tmp), "bak": str(e.bak),
                            "existed": e.existed} for e in entries]}
        for j in journals[1:] + journals[:1]:  # the primary last: it starts the commit
            _write_journal(j, doc)
        for i, e in enumerate(entries):
            where = items[i][0].path
            if e.existed:
                _backup(e)
            os.replace(e.tmp, e.dest)
            renamed.add(i)
        for f in folders:
            _fsync_path(f, directory=True)
        _write_journal(journals[0], {**doc, "state": "committed"})  # the commit point
    except BaseException as ex:
        for i, e in reversed(list(enumerate(entries))):
            with contextlib.suppress(OSError):
                _undo(e, i in renamed)
        with contextlib.suppress(OSError):
            _unlink_all(j.with_name(j.name[: -len(".journal")] + ".tmp") for j in journals)
            _unlink_all(journals[1:] + journals[:1])
        locks.close()
        for d in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if isinstance(ex, OSError):
            raise OutputError(f"{where}: cannot be written ({_why(ex)}); the previous "
                              "files are unchanged") from None
        raise
    def tidy() -> None:  # after the commit point: the backups and journals go
        with contextlib.suppress(OSError):
            _unlink_all(e.bak for e in entries)
            _unlink_all(journals[1:])
            _unlink_all(journals[:1])
            for f in folders:
                _fsync_path(f, directory=True)

    with locks:
        try:
            tidy()
        except BaseException:  # an interrupt: the outputs are written; finish, then stop
            tidy()
            raise


def _owned_by_me(p: Path) -> bool:
    """Whether this user owns ``p`` (in a shared folder, another user's scratch files and
    journals are never acted on: a planted journal must not move or delete our files)."""
    try:
        return os.lstat(p).st_uid == os.geteuid() if hasattr(os, "geteuid") else True
    except OSError:
        return False


def _writer_alive(pid: int, folder: Path, names: Iterable[str]) -> bool:
    """Whether the process that wrote these scratch files may still be writing them."""
    if pid == os.getpid():
        return True
    newest = 0.0
    for n in names:
        with contextlib.suppress(OSError):
            newest = max(newest, os.lstat(folder / n).st_mtime)
    if time.time() - newest > STALE_AFTER_S:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, someone else's
        return True
    return True


def _valid_journal(doc: dict, pid: int, tok: str) -> list[_Entry] | None:
    """The entries of a journal whose names are all this group's scratch names, each
    beside its output (anything else is not ours to act on)."""

    def ours(p: Path) -> bool:
        m = _SCRATCH_RE.match(p.name)
        return m is not None and int(m[1]) == pid and m[2] == tok

    try:
        entries = [_Entry(Path(d["dest"]), Path(d["tmp"]), Path(d["bak"]), bool(d["existed"]))
                   for d in doc["entries"]]
        journals = [Path(j) for j in doc["journals"]]
        primary = Path(doc["primary"])
    except (KeyError, TypeError, ValueError):
        return None
    for e in entries:
        if not (ours(e.tmp) and ours(e.bak) and e.tmp.parent == e.dest.parent == e.bak.parent
                and e.dest.is_absolute()):
            return None
    if primary not in journals or not all(ours(j) and j.is_absolute() for j in journals):
        return None
    return entries


def _recover_journal(path: Path, pid: int, tok: str) -> tuple[bool, str | None]:
    """Finish or undo the commit of ``path`` (one copy of its journal). Returns whether
    this group's remaining scratch files may be deleted, and a note."""
    doc = _read_journal(path)
    if doc is None:
        return True, None  # torn or foreign: written before any rename, if ours
    entries = _valid_journal(doc, pid, tok)
    if entries is None:
        return False, None
    journals = [Path(j) for j in doc["journals"]]
    primary = Path(doc["primary"])
    if os.path.lexists(primary) and not _owned_by_me(primary):
        return False, None
    pdoc = doc if path == primary else _read_journal(primary)
    if pdoc is None and not os.path.isdir(primary.parent):
        return False, None  # the primary's folder is not reachable now: leave it all
    state = pdoc.get("state") if pdoc is not None else "not started"
    if state == "committed":
        _unlink_all(e.bak for e in entries)
        _unlink_all(e.tmp for e in entries)
        note = "kept the new files"
    else:
        for e in reversed(entries):
            _undo(e, renamed=state == "committing" and not os.path.lexists(e.tmp))
        note = "restored the previous files"
    for f in dict.fromkeys(e.dest.parent for e in entries):
        _fsync_path(f, directory=True)
    _unlink_all(j for j in journals if j != primary)
    _unlink_all([primary])
    outs = ", ".join(str(e.dest) for e in entries)
    return True, f"an earlier run was interrupted while writing {outs}: {note}"


def recover_outputs(*folders: str | os.PathLike[str]) -> list[str]:
    """Clean up after output commits that a killed process left in ``folders``.

    Scratch files (``.vocalmix-<pid>-<token>-...``) of a process that is no longer
    running (or older than :data:`STALE_AFTER_S`) are dealt with: a group whose journal
    shows it reached its commit point keeps the new files, any other gets its previous
    files back; then the group's scratch files are deleted. Files of running processes,
    and anything not named like a scratch file, are left alone. Returns one note per
    recovered group.
    """
    notes: list[str] = []
    for folder in map(Path, folders):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        groups: dict[tuple[int, str], list[str]] = {}
        for n in names:
            m = _SCRATCH_RE.match(n)
            if m and _owned_by_me(folder / n):
                groups.setdefault((int(m[1]), m[2]), []).append(n)
        for (pid, tok), ns in sorted(groups.items()):
            if _writer_alive(pid, folder, ns):
                continue
            may_delete = True
            try:
                for n in sorted(ns):
                    if n.endswith(".journal") and os.path.lexists(folder / n):
                        may_delete, note = _recover_journal(folder / n, pid, tok)
                        if note:
                            notes.append(note)
                        break
                if may_delete:
                    for n in ns:
                        if os.path.isfile(folder / n) or os.path.islink(folder / n):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(folder / n)
            except OSError:
                continue  # not ours to fix now (permissions...); a later run may
    return notes


def check_outputs(
    outputs: Iterable[str | os.PathLike[str]],
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    force: bool = False,
) -> None:
    """Refuse, before any work, outputs that cannot be written as planned (see
    :class:`OutputPlan`, which this builds and drops)."""
    OutputPlan(files=outputs, inputs=inputs, force=force)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ""):
    """A temporary file name beside ``path`` that is renamed over ``path`` when the
    ``with`` block ends without an error (and deleted when it raises): for writers that
    take a file name (e.g. pyarrow's Parquet writer). No ``force`` check: callers decide."""
    with _atomic_path(Path(path), suffix or Path(path).suffix) as tmp:
        yield tmp


@contextlib.contextmanager
def _atomic_path(path: Path, suffix: str):
    """A scratch path beside ``path`` for a writer that needs a path; renamed over
    ``path`` (after an fsync) when the block succeeds, deleted when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".vocalmix-{os.getpid()}-{secrets.token_hex(6)}-e0.tmp{suffix}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        yield str(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_audio(
    path: str | os.PathLike[str],
    samples: np.ndarray,
    sample_rate: int,
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    subtype: str | None = None,
    bit_depth: int | None = None,
) -> Path:
    """Write one audio file atomically (24-bit PCM for WAV/FLAC/AIFF unless ``subtype``
    is given; a WAV or AIFF whose samples reach full scale as 32-bit float, which keeps
    them, where 24-bit PCM would clip them; a FLAC clips them), after the checks of
    :class:`OutputPlan`. ``bit_depth`` (16, 24 or 32, WAV/AIFF/FLAC; instead of
    ``subtype``) is :func:`bit_depth_subtype`'s: 16-bit PCM is dithered (:class:`Tpdf16`),
    as is a ``subtype`` of ``"PCM_16"``.

    ``samples``: ``(n_samples, channels)`` or ``(n_samples,)``, floats at full scale 1.0,
    or integers at their type's full scale (an int16 array is divided by 32768, as
    soundfile reads it). Raises :class:`NonFiniteAudioError` for NaN or infinite samples
    (a PCM file would hold them as full-scale DC) and :class:`SampleRateError` for a rate
    that is not a whole number of Hz in the supported range, both before any output."""
    if bit_depth is not None:
        if subtype is not None:
            raise OutputError(f"{path}: give a subtype or a bit depth, not both")
        subtype = bit_depth_subtype(path, bit_depth)
    x, rate = _samples_to_write(samples, sample_rate, str(path))
    plan = OutputPlan(audio=[path], inputs=inputs, force=force)
    plan.check_rates(rate)
    return plan.commit({path: AudioData(x, rate, subtype)})[0]


def _samples_to_write(samples: np.ndarray, sample_rate: int, what: str
                      ) -> tuple[np.ndarray, int]:
    """``(float samples, rate Hz)`` checked for writing (see :func:`write_audio`)."""
    x = np.asarray(samples)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        x = ((x.astype(np.float64) - (info.max + 1 + info.min) / 2.0)
             / (-float(info.min) if info.min < 0 else (info.max + 1) / 2.0)).astype(np.float32)
    elif x.dtype.kind != "f":
        raise AudioError(f"{what}: samples must be a float or integer array, not {x.dtype}")
    if x.size and not np.isfinite(x).all():
        raise NonFiniteAudioError(f"{what}: the samples hold NaN or infinite values; "
                                  "nothing written")
    return x, checked_rate(sample_rate, f"{what}: sample rate")


def encode_audio(samples: np.ndarray, sample_rate: int, format: str = "wav",
                 bit_depth: int | None = None) -> bytes:
    """The bytes of an audio file holding ``samples`` at ``sample_rate`` Hz, as
    :func:`write_audio` would write it as a ``.{format}`` file (``wav``, ``flac``,
    ``aiff``, ``ogg`` or ``mp3``; at ``bit_depth`` bits, 16 dithered, as it would): a mix
    to send over a network or store without a file. Raises what :func:`write_audio`
    raises, and :class:`OutputError` for a format it does not write, a bit depth it
    cannot hold or a rate it cannot hold (MP3: 8-48 kHz)."""
    ext = "." + str(format).lower().lstrip(".")
    if ext not in AUDIO_FORMATS:
        raise OutputError(f"format {format!r} is not one of "
                          f"{', '.join(e[1:] for e in AUDIO_FORMATS)}")
    subtype = bit_depth_subtype("audio" + ext, bit_depth)
    x, rate = _samples_to_write(samples, sample_rate, f"{ext[1:]} audio")
    if not format_holds("audio" + ext, rate):
        raise OutputError(f"{format_rate_problem('audio' + ext, rate)}; encode them as "
                          "flac or wav")
    x = np.asarray(x, dtype=np.float32)
    fmt, sub = _audio_format(Path("audio" + ext), subtype, x)
    buf = io.BytesIO()
    try:
        _write_audio_file(buf, x, rate, sub, fmt)
    except _DECODER_ERRORS as e:
        raise OutputError(f"{ext[1:]} audio: cannot be encoded as {fmt} {sub} ({e})") from None
    return buf.getvalue()


def transcode(src: str | os.PathLike[str], dest: str | os.PathLike[str], *,
              force: bool = False, subtype: str | None = None) -> Path:
    """Write the audio file ``src`` again as ``dest``, in the format of ``dest``'s
    extension (:data:`AUDIO_FORMATS`; MP3 at LAME's highest quality) and libsndfile's
    ``subtype`` when given (``"PCM_16"``: dithered, :class:`Tpdf16`), atomically and
    never over ``src``. For files vocalmix wrote (a mix or a stem to hand out in a
    smaller format): the samples are taken as they are, without the input checks of
    :func:`read_audio`. Raises :class:`OutputError` when ``dest``'s format cannot hold
    ``src``'s rate (MP3: 8-48 kHz), before anything is written."""
    try:
        with sf.SoundFile(_sf_name(src)) as f:
            rate = int(f.samplerate)
            plan = OutputPlan(audio=[dest], inputs=[src], force=force)
            plan.check_rates(rate)
            x = f.read(dtype="float32", always_2d=True)
    except _DECODER_ERRORS as e:
        raise _undecodable(str(src), e, Path(src)) from None
    return plan.commit({dest: AudioData(x, rate, subtype)})[0]


def format_holds(path: str | os.PathLike[str], sample_rate: int) -> bool:
    """Whether the audio format of ``path``'s extension holds audio at ``sample_rate``
    Hz (MP3: 8-48 kHz rates; OGG: up to 192 kHz; the others every rate vocalmix mixes
    at)."""
    return format_rate_problem(path, sample_rate) is None


def format_rate_problem(path: str | os.PathLike[str], sample_rate: int) -> str | None:
    """Why the audio format of ``path``'s extension cannot hold audio at ``sample_rate``
    Hz, for a message (``"MP3 holds audio at 8, ... 48 kHz only, and the mix is at 96000
    Hz"``); ``None`` when it can."""
    ext, rate = Path(path).suffix.lower(), int(sample_rate)
    rates = _FORMAT_RATES.get(ext)
    if rates is not None and rate not in rates:
        return (f"{AUDIO_FORMATS[ext]} holds audio at "
                f"{', '.join(f'{r / 1000:g}' for r in rates)} kHz only, and the mix is at "
                f"{rate} Hz")
    top = _FORMAT_MAX_RATE.get(ext)
    if top is not None and rate > top:
        return (f"{AUDIO_FORMATS[ext]} is written at up to {top / 1000:g} kHz only, and the "
                f"mix is at {rate} Hz")
    return None


def _fitting_rate(path: str | os.PathLike[str], sample_rate: int) -> int:
    """The rate, Hz, nearest above ``sample_rate`` that ``path``'s format holds (its
    highest when none is above)."""
    ext = Path(path).suffix.lower()
    rates = _FORMAT_RATES.get(ext)
    if rates is not None:
        return min((r for r in rates if r >= sample_rate), default=rates[-1])
    return min(int(sample_rate), _FORMAT_MAX_RATE.get(ext, int(sample_rate)))


def write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write a text file (UTF-8) atomically, after the checks of :class:`OutputPlan`."""
    plan = OutputPlan(files=[path], inputs=inputs, force=force)
    return plan.commit({path: text})[0]


def read_params(path: str | os.PathLike[str]):  # -> MixParams
    """Read a params JSON document (raises :class:`ParamsError` with the reason)."""
    from vocalmix.core.params import FORMAT, MixParams

    p = Path(path)
    text = read_json_text(p, "params file")
    try:
        params = MixParams.from_json(text)
    except ParamsError as e:
        raise ParamsError(f"{p}: {e}") from None
    doc = json.loads(text)  # valid: from_json read it
    missing = [k for k in ("format", "version") if k not in doc]
    if missing:
        raise ParamsError(
            f"{p}: not a params document: it has no {' and no '.join(map(repr, missing))} "
            f"(a document names its format, \"format\": \"{FORMAT}\", and its version); "
            "start from a document that vocalmix wrote"
        )
    return params


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    """The SHA-256 (hex) of a regular file's bytes; ``None`` if it is missing, not a
    regular file, or unreadable."""
    import hashlib

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def read_json_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """The text of a JSON document a user gives (a params file, a presets file): UTF-8,
    with or without a byte-order mark. Raises :class:`ParamsError` for a missing path, a
    folder, a pipe or device, or undecodable bytes."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise ParamsError(f"{p}: no such {what}") from None
    except OSError as e:  # a folder on the way that may not be searched...
        raise ParamsError(f"{p}: cannot be read ({_why(e)})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ParamsError(f"{p}: is {kind}; give the path of a JSON {what}")
    from vocalmix.core.jsondoc import MAX_TEXT_CHARS

    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_TEXT_CHARS + 1)
        if len(raw) > MAX_TEXT_CHARS:
            raise ParamsError(f"{p}: is larger than a JSON {what} can be "
                              f"({MAX_TEXT_CHARS // 2**20} MB)")
        return raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ParamsError(f"{p}: cannot be read ({e})") from None


def write_params(path: str | os.PathLike[str], params, *, force: bool = False,
                 inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Write a :class:`~vocalmix.core.params.MixParams` as JSON, atomically."""
    return write_text(path, params.to_json(), force=force, inputs=inputs)


# --- impulse responses and package assets -----------------------------------------------


def read_impulse_response(path: str | os.PathLike[str], *, max_duration_s: float = 60.0
                          ) -> tuple[np.ndarray, int]:
    """An impulse response file as float32 ``(n, channels)`` and its rate (Hz).

    More than two channels (a true-stereo IR) are folded to their mean (one channel).
    Any length from one sample to ``max_duration_s`` is accepted (IRs may be shorter than
    the 0.5 s that mixing needs). Raises the :mod:`vocalmix.core.errors` audio errors:
    missing, undecodable, empty, NaN/Inf, silent, too long.
    """
    p = Path(path)
    x, sr, _notes = _decode_regular(p, str(p), max_duration_s,
                    lambda seconds: f"{p}: {seconds:.1f} s is longer than an impulse "
                                    f"response may be ({max_duration_s:g} s)")
    if x.size == 0:
        raise EmptyAudioError(f"{p}: the file holds no audio samples (zero length)")
    if not np.isfinite(x).all():
        raise NonFiniteAudioError(f"{p}: contains NaN or infinite samples")
    if x.shape[1] > 2:
        x = x.mean(axis=1, keepdims=True)
    if not np.abs(x).max() > 0:
        raise SilentAudioError(f"{p}: is silent (all samples are zero)")
    return np.ascontiguousarray(x, dtype=np.float32), sr


def channel_count(path: str | os.PathLike[str]) -> int:
    """Channels of an audio file as stored (0 when it cannot be read; informational)."""
    try:
        return int(sf.info(_sf_name(path)).channels)
    except Exception:  # informational only
        return 0


def write_model_files(folder: str | os.PathLike[str], weights_name: str,
                      arrays: dict[str, np.ndarray], meta_name: str, meta: dict, *,
                      compressed: bool = False) -> None:
    """Write a model's weights (``.npz``) and its metadata (JSON) into ``folder`` as one
    atomic pair (:class:`OutputPlan`: scratch files of this process, renamed into place
    together, the previous pair back on any failure), replacing an earlier pair; the
    folder is created if needed.

    The bytes depend on the arrays and the metadata only: the ``.npz`` is written with
    fixed zip timestamps (``numpy.savez`` stamps the current time), so training twice
    writes identical files."""
    import io
    import json
    import zipfile

    folder = Path(folder)
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    weights = io.BytesIO()
    with zipfile.ZipFile(weights, "w", compression=method, allowZip64=True) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    plan = OutputPlan(files=[folder / weights_name, folder / meta_name], force=True)
    plan.commit({folder / weights_name: weights.getvalue(),
                 folder / meta_name: json.dumps(meta, indent=2) + "\n"})


def load_arrays(name: str, folder: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file: ``folder / name``, or the package's
    ``vocalmix/assets/name`` when ``folder`` is None. Raises FileNotFoundError when it is
    absent and OSError/ValueError when unreadable: not an npz, truncated, damaged, or
    holding pickled objects (callers turn those into ModelError)."""
    import zipfile
    import zlib

    def read(p: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise ValueError(f"{p.name} is damaged ({e})") from None

    if folder is None:
        from importlib.resources import as_file, files

        with as_file(files("vocalmix").joinpath("assets", name)) as p:
            if not Path(p).exists():
                raise FileNotFoundError(str(p))
            return read(Path(p))
    return read(Path(folder) / name)


def load_json(name: str, folder: str | os.PathLike[str] | None = None) -> dict:
    """A JSON object: ``folder / name``, or the package's ``vocalmix/assets/name`` when
    ``folder`` is None. Raises FileNotFoundError when it is absent and OSError/ValueError
    when unreadable or not a JSON object (callers turn those into ModelError)."""
    import json

    if folder is None:
        from importlib.resources import files

        text = files("vocalmix").joinpath("assets", name).read_text("utf-8")
    else:
        text = (Path(folder) / name).read_text("utf-8")
    d = json.loads(text)
    if not isinstance(d, dict):
        raise ValueError(f"{name} holds no JSON object")
    return d
