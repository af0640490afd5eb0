"""Data layer: songs as (vocal, backing) pairs with provenance, from several layouts.

Layouts found by :func:`find_songs` under each folder given (walked recursively):

* **MUSDB18-HQ folders**: a folder holding ``vocals.*`` and either ``accompaniment.*`` or
  other stems (every stem that is neither ``vocals`` nor ``mixture`` is summed into the
  backing); WAV, FLAC or MP3. Carries level information (professionally mixed stems).
* **MUSDB18 ``*.stem.mp4``** files (stems: mixture, drums, bass, other, vocals), decoded
  with ffmpeg; a clear :class:`~vocalmix.errors.DataError` when ffmpeg is missing.
* **Karaoke clips** (MIR-1K, iKala): backing on the left channel, vocal on the right,
  recognised by a folder named ``mir1k``/``MIR-1K``/``ikala`` or a ``_Lacc_Rvoc`` file
  name. Both channels were normalised, so these carry **no level information** and are
  never used as level targets (``has_level_info=False``). MIR-1K clip ``singer_song_NN``
  belongs to song ``singer_song``; splits keep clips of a song together.
* **CSV manifest** (``manifest.csv``): columns ``song,vocal,backing`` and optional
  ``level_info`` (1/0); paths relative to the manifest's folder.

Splits are always by song (:func:`song_folds`), never by excerpt.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError

AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
KARAOKE_DIR_RE = re.compile(r"(mir-?1k|ikala)", re.IGNORECASE)


@dataclass(frozen=True)
class Song:
    """One song: where its vocal and backing come from.

    Attributes:
        song_id: stable id used for splits (all excerpts/clips of a song share it).
        source: ``musdb_hq``, ``musdb_stem``, ``karaoke`` or ``manifest``.
        vocal: path of the vocal (or of the stereo karaoke clip / stem file).
        backing: paths summed into the backing (empty for karaoke and stem files).
        has_level_info: whether vocal-to-backing balance is a human mixing choice.
    """

    song_id: str
    source: str
    vocal: Path
    backing: tuple[Path, ...] = field(default=())
    has_level_info: bool = True

    def files(self) -> tuple[Path, ...]:
        """Every file this song is read from."""
        return (self.vocal, *self.backing)


def data_root() -> Path:
    """``$VOCALMIX_DATA`` or ``<repo>/../shared/data`` (a development checkout)."""
    env = os.environ.get("VOCALMIX_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _stem(folder: Path, name: str) -> Path | None:
    for ext in AUDIO_EXT:
        p = folder / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def _musdb_folder(folder: Path) -> Song | None:
    vocal = _stem(folder, "vocals")
    if vocal is None:
        return None
    acc = _stem(folder, "accompaniment")
    if acc is not None:
        backing: tuple[Path, ...] = (acc,)
    else:
        backing = tuple(sorted(
            p for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in AUDIO_EXT
            and p.stem.lower() not in ("vocals", "mixture", "accompaniment")
        ))
    if not backing:
        return None
    return Song(song_id=folder.name, source="musdb_hq", vocal=vocal, backing=backing)


def _karaoke_id(p: Path) -> str:
    m = re.match(r"^(.+?_\d+)_\d+$", p.stem)  # MIR-1K: singer_song_clip
    if m:
        return m.group(1)
    m = re.match(r"^(\d+)_", p.stem)  # iKala: songid_section_...
    return m.group(1) if m else p.stem


def find_songs(folders: list[str | Path] | tuple[str | Path, ...]) -> list[Song]:
    """All songs under the given folders (see the module doc for the layouts)."""
    songs: dict[str, Song] = {}
    karaoke: list[Song] = []
    for top in folders:
        top = Path(top)
        if not top.exists():
            raise DataError(f"{top}: no such folder")
        for dirpath, dirnames, filenames in os.walk(top):
            d = Path(dirpath)
            dirnames.sort()
            if "manifest.csv" in filenames:
                for s in read_manifest(d / "manifest.csv"):
                    songs.setdefault(s.song_id, s)
                continue
            song = _musdb_folder(d)
            if song is not None:
                songs.setdefault(song.song_id, song)
                continue
            in_karaoke = bool(KARAOKE_DIR_RE.search(str(d.relative_to(top.parent))))
            for f in sorted(filenames):
                p = d / f
                if f.endswith(".stem.mp4"):
                    sid = f[: -len(".stem.mp4")]
                    songs.setdefault(sid, Song(sid, "musdb_stem", p))
                elif p.suffix.lower() in AUDIO_EXT and (in_karaoke or "_Lacc_Rvoc" in f):
                    karaoke.append(Song(_karaoke_id(p), "karaoke", p, (), False))
    return sorted(songs.values(), key=lambda s: s.song_id) + karaoke


def read_manifest(path: Path) -> list[Song]:
    """Songs listed in a CSV manifest (``song,vocal,backing[,level_info]``)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"song", "vocal", "backing"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: manifest needs columns song, vocal, backing "
                            f"(missing {', '.join(sorted(missing))})")
        for i, row in enumerate(reader, start=2):
            v, b = path.parent / row["vocal"], path.parent / row["backing"]
            for p in (v, b):
                if not p.is_file():
                    raise DataError(f"{path}:{i}: {p} does not exist")
            level = str(row.get("level_info", "1")).strip() not in ("0", "false", "no")
            out.append(Song(row["song"], "manifest", v, (b,), level))
    return out


def load_song(song: Song) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode a song: ``(vocal, backing, sample_rate)``, float32 ``(n, 2)`` each."""
    from .audio import prepare_pair, read_audio, resample, validate_signal

    if song.source == "karaoke":
        import soundfile as sf

        x, sr = sf.read(str(song.vocal), dtype="float32", always_2d=True)
        if x.shape[1] != 2:
            raise DataError(f"{song.vocal}: a karaoke clip must be stereo (L backing, R vocal)")
        v = np.repeat(x[:, 1:2], 2, axis=1)
        b = np.repeat(x[:, 0:1], 2, axis=1)
        validate_signal(v, sr, label=str(song.vocal))
        return np.ascontiguousarray(v), np.ascontiguousarray(b), sr
    if song.source == "musdb_stem":
        return _load_stem_mp4(song.vocal)
    v = read_audio(song.vocal)
    parts = [read_audio(p) for p in song.backing]
    sr = parts[0].sample_rate
    n = max(p.samples.shape[0] for p in parts)
    b = np.zeros((n, 2), np.float32)
    for p in parts:
        s = p.samples if p.sample_rate == sr else resample(p.samples, p.sample_rate, sr)
        b[: s.shape[0]] += s[:n]
    from .audio import Audio

    vs, bs, sr, _ = prepare_pair(v, Audio(b, sr, "backing"))
    return vs, bs, sr


def _load_stem_mp4(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DataError(f"{path}: reading MUSDB18 .stem.mp4 files needs ffmpeg "
                        "(apt-get install ffmpeg), or convert them to MUSDB18-HQ folders")
    streams = []
    for idx in range(5):  # mixture, drums, bass, other, vocals
        r = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", f"0:a:{idx}",
                            "-f", "f32le", "-ac", "2", "-ar", "44100", "-"],
                           capture_output=True, check=False)
        if r.returncode != 0:
            raise DataError(f"{path}: ffmpeg could not decode stream {idx}: "
                            f"{r.stderr.decode(errors='replace').strip()[:200]}")
        streams.append(np.frombuffer(r.stdout, np.float32).reshape(-1, 2))
    n = min(len(s) for s in streams)
    backing = streams[1][:n] + streams[2][:n] + streams[3][:n]
    return np.ascontiguousarray(streams[4][:n]), np.ascontiguousarray(backing), 44100


def song_folds(songs: list[Song], n_folds: int | None = None) -> list[tuple[list[int], list[int]]]:
    """(train, test) index lists, split by ``song_id`` (leave-one-song-out by default)."""
    ids = sorted({s.song_id for s in songs})
    n_folds = len(ids) if n_folds is None else min(n_folds, len(ids))
    groups = [ids[i::n_folds] for i in range(n_folds)]
    out = []
    for g in groups:
        test = [i for i, s in enumerate(songs) if s.song_id in g]
        train = [i for i, s in enumerate(songs) if s.song_id not in g]
        out.append((train, test))
    return out


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (for caches and the model's metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """``$VOCALMIX_CACHE`` or ``~/.cache/vocalmix``."""
    return Path(os.environ.get("VOCALMIX_CACHE", Path.home() / ".cache" / "vocalmix"))


def song_key(song: Song, extra: str) -> str:
    """Cache key: the content of every file of the song plus ``extra`` (feature version,
    excerpt settings)."""
    h = hashlib.sha256(extra.encode())
    for p in song.files():
        h.update(file_hash(p).encode())
    return h.hexdigest()[:32]
