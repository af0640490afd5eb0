"""Data layer: songs as (vocal, backing) pairs with their provenance, from several layouts.

:func:`find_songs` walks every folder given (recursively, so a MUSDB18-HQ root with
``train/`` and ``test/`` works as well as one song folder) and recognises:

* **MUSDB18-HQ song folders**: a folder holding ``vocals.*`` and either
  ``accompaniment.*`` or other stems; every stem that is neither ``vocals``,
  ``mixture`` nor ``accompaniment`` is summed into the backing. WAV, FLAC, MP3, OGG or
  AIFF. Carries level information: the stems are the professional mix's own.
* **MUSDB18 ``*.stem.mp4``** files (streams: mixture, drums, bass, other, vocals),
  decoded with the ``ffmpeg`` command where it is installed, else with PyAV's own
  FFmpeg (within 2e-7 of it); a :class:`~vocalmix.core.errors.DataError` for a file
  that cannot be decoded. Carries level information.
* **Karaoke clips** (MIR-1K, iKala): stereo files, backing on the left channel, vocal on
  the right, recognised by a folder named ``mir1k``/``MIR-1K``/``ikala`` on the path or a
  ``_Lacc_Rvoc`` file name. Both channels were normalised when these sets were made, so
  they carry **no level information** (``has_level_info=False``) and are never used as
  level targets. MIR-1K clip ``singer_song_NN`` belongs to song ``singer_song``, iKala
  clip ``NNNNN_section_...`` to song ``NNNNN``.
* **CSV manifests** (any ``*.csv`` passed directly, or ``manifest.csv`` in a folder):
  columns ``song,vocal,backing`` and optional ``level_info`` (1/0, default 1); several
  backing files may be joined with ``;`` and are summed; paths are relative to the
  manifest's folder.

Not recognised (and so never used): multitrack recordings whose mix is not the sum of
the tracks, such as the Saraga Carnatic excerpt in the shared data (its vocal microphone
explains under half of the mix's energy even with per-track delays, so the vocal's level
in the mix cannot be measured).

Catalogues: a ``tracks.csv`` (columns ``song`` and ``genre``, optionally ``source``
and ``licence``, as in the shared MUSDB18 7 s sample) in a song's folder or up to three
folders above it gives the song its genre and provenance; a song no catalogue names has
the genre ``unknown``. A manifest may carry ``genre`` and ``artist`` columns itself.

MUSDB18's test split: the 50 songs of :data:`MUSDB18_TEST_SONGS` (and any song folder
inside a folder named ``test`` next to a ``train`` folder, MUSDB18-HQ's layout) are
marked ``test_split``; the level model never trains or tunes on them
(:func:`vocalmix.training.level.level_songs`) and reports them apart.

Splits are by song (:func:`song_folds`) or by artist (:func:`artist_folds`,
:func:`artist_of`): all excerpts and clips of one song, or all songs of one artist, stay
on one side. Nothing here copies audio anywhere; features are cached separately
(:func:`cache_dir`), keyed by the files' content hashes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocalmix.core.errors import DataError

AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
MIR1K_DIR_RE = re.compile(r"mir-?1k", re.IGNORECASE)
KARAOKE_DIR_RE = re.compile(rf"({MIR1K_DIR_RE.pattern}|ikala)", re.IGNORECASE)
NOT_BACKING = ("vocals", "mixture", "accompaniment")
STEM_MP4_STREAMS = ("mixture", "drums", "bass", "other", "vocals")
STEM_MP4_RATE = 44100
UNKNOWN_GENRE = "unknown"
CATALOGUE_NAME = "tracks.csv"

#: MUSDB18's test split (the 50 songs of its ``test`` folder; the sigsep track list,
#: github.com/sigsep/website, content/datasets/assets/tracklist.csv, and the ``musdb``
#: package's split). Never used to train or tune the level model.
MUSDB18_TEST_SONGS: frozenset[str] = frozenset({
    "Al James - Schoolboy Facination", "AM Contra - Heart Peripheral",
    "Angels In Amplifiers - I'm Alright", "Arise - Run Run Run",
    "Ben Carrigan - We'll Talk About It All Tonight", "BKS - Bulldozer", "BKS - Too Much",
    "Bobby Nobody - Stitch Up", "Buitraker - Revo X", "Carlos Gonzalez - A Place For Us",
    "Cristina Vane - So Easy", "Detsky Sad - Walkie Talkie",
    "Enda Reilly - Cur An Long Ag Seol", "Forkupines - Semantics", "Georgia Wonder - Siren",
    "Girls Under Glass - We Feel Alright", "Hollow Ground - Ill Fate",
    "James Elder & Mark M Thompson - The English Actor", "Juliet's Rescue - Heartbeats",
    "Little Chicago's Finest - My Own", "Louis Cressy Band - Good Time",
    "Lyndsey Ollard - Catching Up", "M.E.R.C. Music - Knockout",
    "Moosmusic - Big Dummy Shake", "Motor Tapes - Shore", "Mu - Too Bright",
    "Nerve 9 - Pray For The Rain", "PR - Happy Daze", "PR - Oh No",
    "Punkdisco - Oral Hygiene", "Raft Monk - Tiring", "Sambasevam Shanmugam - Kaathaadi",
    "Secretariat - Borderline", "Secretariat - Over The Top",
    "Side Effects Project - Sing With Me", "Signe Jakobsen - What Have You Done To Me",
    "Skelpolu - Resurrection", "Speak Softly - Broken Man", "Speak Softly - Like Horses",
    "The Doppler Shift - Atrophy", "The Easton Ellises (Baumi) - SDRNR",
    "The Easton Ellises - Falcon 69", "The Long Wait - Dark Horses",
    "The Mountaineering Club - Mallory", "The Sunshine Garcia Band - For I Am The Moon",
    "Timboz - Pony", "Tom McKenzie - Directions", "Triviul feat. The Fiend - Widow",
    "We Fell From The Sky - Not You", "Zeno - Signs",
})

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Song:
    """One song: where its vocal and backing come from.

    Attributes:
        song_id: the id splits group by (every excerpt or clip of a song shares it).
        source: ``musdb_hq``, ``musdb_stem``, ``karaoke`` or ``manifest``.
        vocal: path of the vocal (for karaoke and ``.stem.mp4``: the one file).
        backing: paths summed into the backing (empty for karaoke and stem files).
        has_level_info: whether the vocal-to-backing balance is a human mixing choice.
        genre: the catalogue's genre (MUSDB18's names), ``unknown`` when none says.
        provenance: ``(key, value)`` pairs from the catalogue (``catalogue``, ``source``,
            ``licence``).
        test_split: one of MUSDB18's test songs (never trained or tuned on).
        artist_name: the artist, when a manifest gives it (else :func:`artist_of`).
    """

    song_id: str
    source: str
    vocal: Path
    backing: tuple[Path, ...] = field(default=())
    has_level_info: bool = True
    genre: str = UNKNOWN_GENRE
    provenance: tuple[tuple[str, str], ...] = ()
    test_split: bool = False
    artist_name: str = ""

    @property
    def artist(self) -> str:
        """The artist key splits group by (:func:`artist_of`)."""
        return artist_of(self.artist_name or self.song_id)

    def files(self) -> tuple[Path, ...]:
        """Every file this song is read from."""
        return (self.vocal, *self.backing)

    def describe(self) -> dict:
        """Provenance as a JSON-ready dict (no hashes; see :func:`file_hash`)."""
        return {"song": self.song_id, "source": self.source,
                "files": [str(p) for p in self.files()],
                "has_level_info": self.has_level_info, "genre": self.genre,
                "artist": self.artist, "test_split": self.test_split,
                **dict(self.provenance)}


def artist_of(song_id: str) -> str:
    """The artist of a song id ``Artist - Title`` as a grouping key: lower case, without a
    ``feat.``/``ft.`` guest or a parenthesised remixer (``Triviul feat. The Fiend`` and
    ``Triviul`` are one artist). Ids without `` - `` are their own artist."""
    name = song_id.split(" - ", 1)[0] if " - " in song_id else song_id
    name = re.split(r"\s+(?:feat\.?|ft\.?|featuring)\s+", name, maxsplit=1,
                    flags=re.IGNORECASE)[0]
    name = re.sub(r"\s*\(.*?\)\s*", " ", name)
    return " ".join(name.lower().split())


def data_root() -> Path:
    """``$VOCALMIX_DATA`` or ``<repo>/../shared/data`` (a development checkout)."""
    env = os.environ.get("VOCALMIX_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / "shared" / "data"


def _audio_files(folder: Path) -> dict[str, Path]:
    """Audio files of a folder by lower-case stem name (first extension of AUDIO_EXT
    wins when one stem exists in several formats)."""
    out: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for p in sorted(entries, key=lambda q: (AUDIO_EXT.index(q.suffix.lower())
                                           if q.suffix.lower() in AUDIO_EXT else 99, q.name)):
        if p.is_file() and p.suffix.lower() in AUDIO_EXT and not p.name.startswith("."):
            out.setdefault(p.stem.lower(), p)
    return out


def musdb_folder(folder: Path) -> Song | None:
    """The song of a MUSDB18-HQ-style folder, or ``None`` if it is not one."""
    stems = _audio_files(folder)
    vocal = stems.get("vocals")
    if vocal is None:
        return None
    if "accompaniment" in stems:
        backing: tuple[Path, ...] = (stems["accompaniment"],)
    else:
        backing = tuple(sorted((p for k, p in stems.items() if k not in NOT_BACKING),
                               key=lambda p: p.name))
    if not backing:
        return None
    return Song(song_id=folder.name, source="musdb_hq", vocal=vocal, backing=backing)


def karaoke_song_id(p: Path) -> str:
    """Song id of a karaoke clip: MIR-1K ``singer_song_NN`` -> ``singer_song``; iKala
    ``NNNNN_section_...`` -> ``NNNNN``; otherwise the file's stem."""
    m = re.match(r"^(.+?_\d+)_\d+$", p.stem)
    if m:
        return m.group(1)
    m = re.match(r"^(\d+)_", p.stem)
    return m.group(1) if m else p.stem


def _is_karaoke(path: Path, top: Path) -> bool:
    try:
        rel = str(path.relative_to(top.parent))
    except ValueError:
        rel = str(path)
    return bool(KARAOKE_DIR_RE.search(rel)) or "_Lacc_Rvoc" in path.name


def audio_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every audio file (:data:`AUDIO_EXT`) under ``root``, at any depth, sorted: linked
    folders followed, each real folder once; hidden files and folders left out. A data
    folder that grows (a set added beside the others, in sub-folders, or linked in) is
    followed as it is."""
    top = Path(root)
    if not top.is_dir():
        return []
    return sorted(d / f for d, _dirs, files in _walk(top) for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXT)


def _walk(top: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk`` of ``top``, following linked folders, each real folder once (a link
    back up, or two links to one folder), hidden folders left out, in sorted order:
    ``(folder, sub-folder names, file names)``; emptying the sub-folder names stops the
    walk going below that folder."""
    walked: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = Path(dirpath).resolve()
        if real in walked:
            dirnames[:] = []
            continue
        walked.add(real)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        yield Path(dirpath), dirnames, filenames


def is_mir1k(path: Path) -> bool:
    """Whether ``path`` lies in a MIR-1K folder (``mir1k``, ``MIR-1K``, any case)."""
    return any(MIR1K_DIR_RE.fullmatch(part) for part in path.parts)


def mir1k_clips(root: str | os.PathLike[str]) -> list[Path]:
    """The MIR-1K clips under ``root`` (:func:`audio_files` in a MIR-1K folder)."""
    return [p for p in audio_files(root) if is_mir1k(p)]


def find_songs(folders: Iterable[str | os.PathLike[str]],
               progress: Progress | None = None) -> list[Song]:
    """Every song under ``folders`` (see the module doc for the layouts).

    Songs with level information come first, sorted by id, then karaoke clips in path
    order. Linked folders are followed (each real folder walked once). A song reached
    twice (overlapping folders, a manifest's songs in the folders below it, which are
    not walked) is listed once, under its first id; two *different* files of one song id
    keep the larger (a full song over the 6.8 s excerpt of the same song) and say so
    through ``progress``.
    """
    songs: dict[str, Song] = {}
    by_file: dict[tuple[Path, ...], str] = {}  # each song's files (vocal, backing): its id
    karaoke: dict[Path, Song] = {}

    def size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:
            return -1

    def files(s: Song) -> tuple[Path, ...]:
        return (s.vocal.resolve(), *(Path(b).resolve() for b in s.backing))

    def add(s: Song) -> None:
        real = files(s)
        if real in by_file:  # (the same song's files, reached again)
            return
        old = songs.get(s.song_id)
        if old is not None:
            keep, drop = (s, old) if size(s.vocal) > size(old.vocal) else (old, s)
            if progress:
                progress(f"two songs named {s.song_id!r}: kept {keep.vocal.parent} (the "
                         f"larger), skipped {drop.vocal.parent}")
            if keep is old:
                return
            by_file.pop(files(old), None)
        songs[s.song_id] = s
        by_file[real] = s.song_id

    for top in folders:
        top = Path(top)
        if not top.exists():
            raise DataError(f"{top}: no such folder or file")
        if top.is_file():
            if top.suffix.lower() == ".csv":
                for s in read_manifest(top):
                    add(s)
            elif top.name.endswith(".stem.mp4"):
                add(Song(top.name[: -len(".stem.mp4")], "musdb_stem", top))
            elif top.suffix.lower() in AUDIO_EXT and _is_karaoke(top, top.parent):
                karaoke.setdefault(top.resolve(), Song(karaoke_song_id(top), "karaoke", top,
                                                       (), False))
            else:
                raise DataError(f"{top}: give a folder of songs, a manifest (.csv), a "
                                ".stem.mp4 file or a karaoke clip")
            continue
        for d, dirnames, filenames in _walk(top):
            if "manifest.csv" in filenames:
                for s in read_manifest(d / "manifest.csv"):
                    add(s)
                dirnames[:] = []  # (its songs: not again, under other ids, from below)
                continue
            song = musdb_folder(d)
            if song is not None:
                add(song)
                continue
            for f in sorted(filenames):
                p = d / f
                if f.startswith("."):
                    continue
                if f.endswith(".stem.mp4"):
                    add(Song(f[: -len(".stem.mp4")], "musdb_stem", p))
                elif p.suffix.lower() in AUDIO_EXT and _is_karaoke(p, top):
                    karaoke.setdefault(p.resolve(), Song(karaoke_song_id(p), "karaoke", p,
                                                         (), False))
    catalogues: dict[Path, dict[str, dict[str, str]] | None] = {}
    level = [_with_catalogue(s, catalogues) for s in songs.values()]
    unnamed = [s.song_id for s in level if not s.artist_name and " - " not in s.song_id]
    if unnamed and progress:
        shown = ", ".join(repr(i) for i in sorted(unnamed)[:3])
        progress(f"{len(unnamed)} song(s) name no artist ({shown}...: no artist column in "
                 "their manifest, no 'Artist - Title' id): each is its own artist in the "
                 "splits, so two songs by one artist can land on both sides of a fold and "
                 "the held-out figures read too well; give the manifest an artist column")
    return sorted(level, key=lambda s: s.song_id) + list(karaoke.values())


def _song_folder(song: Song) -> Path:
    """The folder a song lives in (a song folder, or the folder of a single file)."""
    return song.vocal.parent


def _read_catalogue(path: Path) -> dict[str, dict[str, str]] | None:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not rows or "song" not in rows[0] or "genre" not in rows[0]:
        return None
    return {(r.get("song") or "").strip(): {k: (v or "").strip() for k, v in r.items()
                                            if k is not None} for r in rows}


def _with_catalogue(song: Song, cache: dict[Path, dict[str, dict[str, str]] | None]) -> Song:
    """``song`` with its catalogue genre and provenance and its MUSDB18 test mark."""
    from dataclasses import replace

    test = song.song_id in MUSDB18_TEST_SONGS or _in_musdb_test_folder(song)
    folder = _song_folder(song)
    if song.source == "musdb_hq":
        folder = folder.parent  # a catalogue sits beside the song folders or above them
    for d in (folder, *list(folder.parents)[:3]):
        cpath = d / CATALOGUE_NAME
        if cpath not in cache:
            cache[cpath] = _read_catalogue(cpath) if cpath.is_file() else None
        cat = cache[cpath]
        if cat and song.song_id in cat:
            row = cat[song.song_id]
            prov = (("catalogue", f"{cpath.parent.name}/{cpath.name}"),
                    *((k, row[k]) for k in ("source", "licence") if row.get(k)))
            return replace(song, genre=row.get("genre") or song.genre,
                           provenance=prov, test_split=test)
    return replace(song, test_split=test)


def _in_musdb_test_folder(song: Song) -> bool:
    """A song folder inside ``test/`` next to a ``train/`` folder (MUSDB18-HQ)."""
    d = _song_folder(song)
    for up in (d, d.parent):
        if up.name.lower() == "test" and (up.parent / "train").is_dir():
            return True
    return False


def read_manifest(path: str | os.PathLike[str]) -> list[Song]:
    """Songs listed in a CSV manifest (``song,vocal,backing[,level_info,genre,artist]``)."""
    path = Path(path)
    out = []
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read the manifest ({e})") from None
    with f:
        reader = csv.DictReader(f)
        missing = {"song", "vocal", "backing"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: a manifest needs the columns song, vocal, backing "
                            f"(missing {', '.join(sorted(missing))})")
        for i, row in enumerate(reader, start=2):
            if not (row.get("song") or "").strip():
                raise DataError(f"{path}:{i}: empty song name")
            v = path.parent / row["vocal"].strip()
            bs = tuple(path.parent / b.strip() for b in row["backing"].split(";") if b.strip())
            if not bs:
                raise DataError(f"{path}:{i}: no backing file")
            for p in (v, *bs):
                if not p.is_file():
                    raise DataError(f"{path}:{i}: {p} does not exist")
            level = str(row.get("level_info") or "1").strip().lower() not in ("0", "false",
                                                                              "no")
            genre = (row.get("genre") or "").strip() or UNKNOWN_GENRE
            out.append(Song(row["song"].strip(), "manifest", v, bs, level, genre=genre,
                            provenance=(("catalogue", path.name),),
                            artist_name=(row.get("artist") or "").strip()))
    return out


def load_song(song: Song) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode a song: ``(vocal, backing, sample_rate)``, float32 ``(n, 2)`` each, one
    rate and length (backing parts resampled to the vocal's rate and summed)."""
    from vocalmix.core.audio import Audio, prepare_pair, read_audio, resample, validate_signal

    if song.source == "karaoke":
        import soundfile as sf

        try:
            x, sr = sf.read(str(song.vocal), dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile raises several types
            raise DataError(f"{song.vocal}: cannot be decoded ({e})") from None
        if x.shape[1] != 2:
            raise DataError(f"{song.vocal}: a karaoke clip must be stereo (left: backing, "
                            f"right: vocal); it has {x.shape[1]} channel(s)")
        v = np.repeat(x[:, 1:2], 2, axis=1)
        b = np.repeat(x[:, 0:1], 2, axis=1)
        validate_signal(v, sr, label=str(song.vocal))
        return np.ascontiguousarray(v), np.ascontiguousarray(b), int(sr)
    if song.source == "musdb_stem":
        return load_stem_mp4(song.vocal)
    va = read_audio(song.vocal)
    parts = [read_audio(p) for p in song.backing]
    sr = va.sample_rate
    chunks = [p.samples if p.sample_rate == sr else resample(p.samples, p.sample_rate, sr)
              for p in parts]
    n = max(c.shape[0] for c in chunks)
    b = np.zeros((n, 2), np.float32)
    for c in chunks:
        b[: c.shape[0]] += c
    # (a mixed song's vocal stem is the engineer's, channels and all)
    vs, bs, sr, _ = prepare_pair(va, Audio(b, sr, f"backing of {song.song_id}"),
                                 vocal_channels=False)
    return vs, bs, sr


def load_stem_mp4(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Vocal and backing (drums + bass + other) of a MUSDB18 ``.stem.mp4``: decoded by the
    ``ffmpeg`` command where it is on the PATH (what the shipped models were trained on),
    else by PyAV's own FFmpeg (:func:`vocalmix.core.audio.read_audio_streams`; within 2e-7
    of it), so that no system FFmpeg is needed."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        from vocalmix.core.audio import read_audio_streams
        from vocalmix.core.errors import UnreadableAudioError

        names = [n for n in STEM_MP4_STREAMS if n != "mixture"]
        try:
            parts = read_audio_streams(path, [STEM_MP4_STREAMS.index(n) for n in names],
                                       sample_rate=STEM_MP4_RATE)
        except UnreadableAudioError as e:
            raise DataError(f"{e}; a MUSDB18 stem file has 5 streams, read with PyAV "
                            "(no ffmpeg on the PATH)") from None
        streams = dict(zip(names, parts, strict=True))
        return _vocal_and_backing(streams)
    streams = {}
    for idx, name in enumerate(STEM_MP4_STREAMS):
        if name == "mixture":
            continue
        r = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-map",
                            f"0:a:{idx}", "-f", "f32le", "-ac", "2", "-ar",
                            str(STEM_MP4_RATE), "-"], capture_output=True, check=False)
        if r.returncode != 0 or len(r.stdout) < 8:
            raise DataError(f"{path}: ffmpeg could not decode audio stream {idx} ({name}); "
                            "a MUSDB18 stem file has 5 streams: "
                            f"{r.stderr.decode(errors='replace').strip()[:200]}")
        streams[name] = np.frombuffer(r.stdout[: len(r.stdout) // 8 * 8],
                                      np.float32).reshape(-1, 2)
    return _vocal_and_backing(streams)


def _vocal_and_backing(streams: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """A stems file's vocal and its backing (drums + bass + other), cut to the shortest."""
    n = min(len(s) for s in streams.values())
    backing = streams["drums"][:n] + streams["bass"][:n] + streams["other"][:n]
    return (np.ascontiguousarray(streams["vocals"][:n]), np.ascontiguousarray(backing),
            STEM_MP4_RATE)


def song_folds(songs: list[Song], n_folds: int | None = None
               ) -> list[tuple[list[int], list[int]]]:
    """``(train, test)`` index lists into ``songs``, grouped by ``song_id``.

    Leave-one-song-out by default; with ``n_folds``, song ids are dealt round-robin into
    that many groups (sorted ids, deterministic). Every fold's test side holds whole
    songs only.
    """
    ids = sorted({s.song_id for s in songs})
    if not ids:
        return []
    n_folds = len(ids) if n_folds is None else max(1, min(n_folds, len(ids)))
    out = []
    for k in range(n_folds):
        held = set(ids[k::n_folds])
        test = [i for i, s in enumerate(songs) if s.song_id in held]
        train = [i for i, s in enumerate(songs) if s.song_id not in held]
        out.append((train, test))
    return out


def group_folds(groups: np.ndarray, n_folds: int | None = None
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boolean ``(train, test)`` masks over examples whose song is ``groups[i]``: every
    example of a song falls on the same side (leave-one-group-out by default)."""
    ids = np.unique(groups)
    n_folds = len(ids) if n_folds is None else max(1, min(n_folds, len(ids)))
    out = []
    for k in range(n_folds):
        test = np.isin(groups, ids[k::n_folds])
        out.append((~test, test))
    return out


def artist_folds(artists: list[str] | np.ndarray, n_folds: int, seed: int = 0
                 ) -> list[np.ndarray]:
    """Test masks of ``n_folds`` folds over songs whose artist keys are ``artists``:
    every song of an artist is in the same fold, so no fold tests an artist it also
    trains on.

    Artists are dealt largest first (ties and order shuffled by ``seed``), each to the
    fold with the fewest songs so far, so the folds hold about equally many songs and
    another ``seed`` gives another partition. Deterministic for a given ``seed``.
    """
    a = np.asarray(artists)
    names, counts = np.unique(a, return_counts=True)
    n_folds = max(1, min(n_folds, len(names)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]
    sizes = np.zeros(n_folds, int)
    fold_of = {}
    for i in order:
        k = int(np.argmin(sizes + rng.random(n_folds) * 0.5))  # ties broken at random
        fold_of[names[i]] = k
        sizes[k] += counts[i]
    return [np.array([fold_of[x] == k for x in a]) for k in range(n_folds)]


# --- hashing and the feature cache ------------------------------------------------------


def cache_dir() -> Path:
    """``$VOCALMIX_CACHE`` or ``~/.cache/vocalmix``."""
    return Path(os.environ.get("VOCALMIX_CACHE") or Path.home() / ".cache" / "vocalmix")


def _hash_bytes(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hash(path: str | os.PathLike[str], use_memo: bool = True) -> str:
    """SHA-256 of a file's bytes (hex).

    Hashing a full MUSDB18-HQ set reads ~30 GB, so the hash is remembered in
    ``cache_dir()/hashes.json`` under the file's path, size and modification time; a
    file changed in any of those is hashed again.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise DataError(f"{p}: cannot be read ({e})") from None
    if not use_memo:
        return _hash_bytes(p)
    memo_path = cache_dir() / "hashes.json"
    key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text("utf-8"))
    except (OSError, ValueError):
        memo = {}
    h = memo.get(key)
    if isinstance(h, str) and len(h) == 64:
        return h
    h = _hash_bytes(p)
    memo[key] = h
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo), "utf-8")
        os.replace(tmp, memo_path)
    except OSError:
        pass  # a read-only cache only costs time
    return h


def song_key(song: Song, extra: str) -> str:
    """Cache key of a song: the content hash of every file it is read from, its source
    layout, plus ``extra`` (feature version, excerpt and augmentation settings)."""
    h = hashlib.sha256(f"{extra}|{song.source}".encode())
    for p in song.files():
        h.update(file_hash(p).encode())
    return h.hexdigest()[:32]


__all__ = [
    "MUSDB18_TEST_SONGS",
    "UNKNOWN_GENRE",
    "Song",
    "artist_folds",
    "artist_of",
    "cache_dir",
    "data_root",
    "file_hash",
    "find_songs",
    "group_folds",
    "karaoke_song_id",
    "load_song",
    "load_stem_mp4",
    "musdb_folder",
    "read_manifest",
    "song_folds",
    "song_key",
]
