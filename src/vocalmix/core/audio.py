"""All file I/O of vocalmix: audio in and out, params documents in and out.

Reading goes through ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis, MP3 and more);
samples are float32 shaped ``(n_samples, 2)`` (mono is duplicated to both channels).
Writing is atomic: the data goes to a temporary file in the destination folder, which is
then renamed over the destination, so a crash never leaves a half-written output, and an
existing file is never replaced unless ``force`` is set, and never if it is an input.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from vocalmix.core.errors import (
    AudioFileNotFoundError,
    ChannelLayoutError,
    DurationError,
    EmptyAudioError,
    NonFiniteAudioError,
    OutputExistsError,
    OverwriteInputError,
    ParamsError,
    SampleRateError,
    SilentAudioError,
    UnreadableAudioError,
)

MIN_DURATION_S = 0.5
MAX_DURATION_S = 3600.0
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 384000
FOLD_MODES = ("error", "mean", "first2")
CLIP_LEVEL = 0.999
SILENCE_PEAK = 10 ** (-90 / 20)  # -90 dBFS peak: nothing audible


@dataclass(frozen=True)
class Audio:
    """A decoded signal.

    Attributes:
        samples: float32 ``(n_samples, 2)``.
        sample_rate: Hz.
        path: where it came from (or a label).
        source_channels: channel count of the source before any fold or upmix.
        notes: what was done to it on the way in (fold, upmix, clipping found...).
    """

    samples: np.ndarray
    sample_rate: int
    path: str = "<array>"
    source_channels: int = 2
    notes: tuple[str, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / float(self.sample_rate)


def validate_signal(
    x: np.ndarray,
    sample_rate: int,
    *,
    label: str = "audio",
    fold: str = "error",
    max_duration_s: float = MAX_DURATION_S,
) -> tuple[np.ndarray, tuple[str, ...], int]:
    """Check a signal and return it as float32 stereo, with notes and source channels.

    Raises the specific :mod:`vocalmix.core.errors` class for: zero length, NaN/Inf, more than
    two channels (unless ``fold`` is ``mean`` or ``first2``), a duration under
    ``MIN_DURATION_S`` or over ``max_duration_s``, or a sample rate outside 8-384 kHz.
    """
    notes: list[str] = []
    if not (MIN_RATE_HZ <= int(sample_rate) <= MAX_RATE_HZ):
        raise SampleRateError(
            f"{label}: sample rate {sample_rate} Hz is unsupported (8000 to 384000 Hz)"
        )
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ChannelLayoutError(f"{label}: expected (samples, channels), got shape {x.shape}")
    n, ch = x.shape
    if n == 0 or ch == 0:
        raise EmptyAudioError(f"{label}: the file holds no audio samples (zero length)")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise NonFiniteAudioError(
            f"{label}: {bad} samples are NaN or infinite; re-export the file from your editor"
        )
    dur = n / float(sample_rate)
    if dur < MIN_DURATION_S:
        raise DurationError(
            f"{label}: {dur:.3f} s is too short to mix (at least {MIN_DURATION_S} s needed)"
        )
    if dur > max_duration_s:
        raise DurationError(
            f"{label}: {dur / 60:.1f} min is longer than the limit of "
            f"{max_duration_s / 60:.0f} min; trim it or raise the limit"
        )
    if ch > 2:
        if fold == "mean":
            m = x.mean(axis=1, keepdims=True)
            x = np.concatenate([m, m], axis=1)
            notes.append(f"{label}: folded {ch} channels to mono by averaging")
        elif fold == "first2":
            x = np.ascontiguousarray(x[:, :2])
            notes.append(f"{label}: kept the first 2 of {ch} channels")
        else:
            raise ChannelLayoutError(
                f"{label}: has {ch} channels; vocalmix mixes mono or stereo. Pass "
                "--fold mean (average all channels) or --fold first2 (keep channels 1-2)"
            )
    elif ch == 1:
        x = np.concatenate([x, x], axis=1)
        notes.append(f"{label}: mono, placed in the centre of the stereo image")
    peak = float(np.abs(x).max())
    if peak >= CLIP_LEVEL:
        run = _longest_clipped_run(x)
        if run >= 3:
            notes.append(
                f"{label}: appears clipped ({run} consecutive samples at full scale); "
                "the mix will carry that distortion"
            )
    return np.ascontiguousarray(x, dtype=np.float32), tuple(notes), ch


def _longest_clipped_run(x: np.ndarray) -> int:
    clipped = (np.abs(x) >= CLIP_LEVEL).any(axis=1).astype(np.int8)
    if not clipped.any():
        return 0
    d = np.diff(np.concatenate([[0], clipped, [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return int((ends - starts).max())


def max_duration_limit_s() -> float:
    """The longest input accepted, s: ``$VOCALMIX_MAX_DURATION_S`` or one hour."""
    try:
        return float(os.environ.get("VOCALMIX_MAX_DURATION_S", MAX_DURATION_S))
    except ValueError:
        return MAX_DURATION_S


def read_audio(
    path: str | os.PathLike[str],
    *,
    label: str | None = None,
    fold: str = "error",
    max_duration_s: float | None = None,
) -> Audio:
    """Read an audio file (WAV, FLAC, OGG, MP3...) as float32 stereo.

    Raises :class:`AudioFileNotFoundError`, :class:`UnreadableAudioError` and the errors of
    :func:`validate_signal`.
    """
    if max_duration_s is None:
        max_duration_s = max_duration_limit_s()
    p = Path(path)
    label = label or str(p)

    def too_long(seconds: float) -> str:
        return (f"{label}: {seconds / 60:.1f} min is longer than the limit of "
                f"{max_duration_s / 60:.0f} min; trim it or raise the limit")

    data, sr = _decode(p, label, max_duration_s, too_long)
    x, notes, ch = validate_signal(data, sr, label=label, fold=fold, max_duration_s=max_duration_s)
    return Audio(samples=x, sample_rate=sr, path=str(p), source_channels=ch, notes=notes)


def _decode(p: Path, label: str, max_duration_s: float, too_long) -> tuple[np.ndarray, int]:
    """``(samples (n, channels) float32, rate)`` of an audio file, checked for existence,
    decodability and length (``too_long(seconds)`` words the :class:`DurationError`)."""
    if not p.exists():
        raise AudioFileNotFoundError(f"{label}: no such file")
    if p.is_dir():
        raise UnreadableAudioError(f"{label}: is a folder, not an audio file")
    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            frames = f.frames
            if frames > 0 and frames / sr > max_duration_s:
                raise DurationError(too_long(frames / sr))
            data = f.read(dtype="float32", always_2d=True)
    except DurationError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise UnreadableAudioError(
            f"{label}: cannot be decoded as audio ({str(e).strip() or type(e).__name__}); "
            "supported: WAV, FLAC, OGG, MP3, AIFF"
        ) from None
    return data, sr


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample ``(n, channels)`` float32 with soxr (high quality)."""
    if from_hz == to_hz:
        return x
    import soxr

    return np.ascontiguousarray(soxr.resample(x, from_hz, to_hz, quality="HQ"), dtype=np.float32)


def prepare_pair(vocal: Audio, backing: Audio) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """Bring a vocal and a backing to one rate and length.

    The backing is resampled to the vocal's rate with soxr when they differ; the shorter
    signal is padded with silence at its end. Raises :class:`SilentAudioError` if either
    is digital silence. Returns ``(vocal, backing, sample_rate, notes)``.
    """
    notes = list(vocal.notes) + list(backing.notes)
    for a, what in ((vocal, "vocal"), (backing, "backing")):
        if float(np.abs(a.samples).max()) < SILENCE_PEAK:
            raise SilentAudioError(
                f"{a.path}: the {what} is silent (peak below -90 dBFS); nothing to mix"
            )
    sr = vocal.sample_rate
    b = backing.samples
    if backing.sample_rate != sr:
        b = resample(b, backing.sample_rate, sr)
        notes.append(f"backing resampled from {backing.sample_rate} Hz to {sr} Hz")
    v = vocal.samples
    n = max(v.shape[0], b.shape[0])
    if v.shape[0] != b.shape[0]:
        shorter = "vocal" if v.shape[0] < n else "backing"
        diff = abs(v.shape[0] - b.shape[0]) / sr
        notes.append(f"{shorter} was {diff:.2f} s shorter: padded with silence at its end")
        v = np.pad(v, ((0, n - v.shape[0]), (0, 0)))
        b = np.pad(b, ((0, n - b.shape[0]), (0, 0)))
    return v, b, sr, notes


# --- output ------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(
    outputs: Iterable[str | os.PathLike[str]],
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    force: bool = False,
) -> None:
    """Refuse, before any work, outputs that name an input or exist without ``force``."""
    ins = [Path(i) for i in inputs]
    for o in outputs:
        po = Path(o)
        for pi in ins:
            if _same_file(po, pi):
                raise OverwriteInputError(f"{po}: is an input file; vocalmix never overwrites one")
        if po.exists() and not force:
            raise OutputExistsError(f"{po}: already exists; pass --force to replace it")
        if po.exists() and po.is_dir():
            raise OutputExistsError(f"{po}: is a folder; give a file name")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ""):
    """A temporary file name beside ``path`` that is renamed over ``path`` when the
    ``with`` block ends without an error (and deleted when it raises): for writers that
    take a file name (e.g. pyarrow's Parquet writer). No ``force`` check: callers decide."""
    with _atomic_path(Path(path), suffix or Path(path).suffix) as tmp:
        yield tmp


@contextlib.contextmanager
def _atomic_path(path: Path, suffix: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_SUBTYPES = {".wav": "PCM_24", ".flac": "PCM_24", ".aiff": "PCM_24", ".aif": "PCM_24"}


def write_audio(
    path: str | os.PathLike[str],
    samples: np.ndarray,
    sample_rate: int,
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    subtype: str | None = None,
) -> Path:
    """Write audio atomically (24-bit PCM for WAV/FLAC/AIFF unless ``subtype`` is given)."""
    p = Path(path)
    check_outputs([p], inputs, force=force)
    ext = p.suffix.lower()
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}.get(ext)
    if fmt is None:
        raise UnreadableAudioError(f"{p}: unsupported output format; use .wav, .flac or .ogg")
    sub = subtype or _SUBTYPES.get(ext, "VORBIS")
    with _atomic_path(p, ext) as tmp:
        sf.write(tmp, np.asarray(samples, dtype=np.float32), int(sample_rate), subtype=sub,
                 format=fmt)
    return p


def write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write a text file (e.g. a params document) atomically."""
    p = Path(path)
    check_outputs([p], inputs, force=force)
    with _atomic_path(p, p.suffix or ".txt") as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return p


def read_params(path: str | os.PathLike[str]):  # -> MixParams
    """Read a params JSON document (raises :class:`ParamsError` with the reason)."""
    from vocalmix.core.params import MixParams

    p = Path(path)
    if not p.exists():
        raise ParamsError(f"{p}: no such params file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ParamsError(f"{p}: cannot be read ({e})") from None
    try:
        return MixParams.from_json(text)
    except ParamsError as e:
        raise ParamsError(f"{p}: {e}") from None


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
    x, sr = _decode(p, str(p), max_duration_s,
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
        return int(sf.info(str(path)).channels)
    except Exception:  # informational only
        return 0


def read_package_json(name: str) -> dict:
    """A JSON document shipped in ``vocalmix/assets`` (empty dict if missing or invalid)."""
    import json
    from importlib.resources import files

    try:
        return json.loads(files("vocalmix").joinpath("assets", name).read_text("utf-8"))
    except (FileNotFoundError, ModuleNotFoundError, OSError, ValueError):
        return {}


def write_model_files(folder: str | os.PathLike[str], weights_name: str,
                      arrays: dict[str, np.ndarray], meta_name: str, meta: dict, *,
                      compressed: bool = False) -> None:
    """Write a model's weights (``.npz``) and its metadata (JSON) into ``folder``, each
    atomically (a temporary file renamed into place); the folder is created if needed."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (weights_name + ".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    tmp.replace(folder / weights_name)
    tmpj = folder / (meta_name + ".tmp")
    tmpj.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmpj.replace(folder / meta_name)


def load_arrays(name: str, folder: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file: ``folder / name``, or the package's
    ``vocalmix/assets/name`` when ``folder`` is None. Raises FileNotFoundError when it is
    absent and OSError/ValueError when unreadable (callers turn those into ModelError)."""
    if folder is None:
        from importlib.resources import as_file, files

        with as_file(files("vocalmix").joinpath("assets", name)) as p:
            if not Path(p).exists():
                raise FileNotFoundError(str(p))
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
    with np.load(Path(folder) / name, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
