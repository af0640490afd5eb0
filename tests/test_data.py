"""Data layer: readers on every layout, provenance and genres, MUSDB18 test-split marks,
splits by song and by artist, hashing."""

from __future__ import annotations

import csv
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.errors import DataError
from vocalmix.training import data
from vocalmix.training.data import (
    file_hash,
    find_songs,
    group_folds,
    karaoke_song_id,
    load_song,
    read_manifest,
    song_folds,
)

from conftest import require_data

SR = 22050


def _pair(seed: int, seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """A cheap vocal-like tone and a noise backing, stereo float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    v = 0.3 * np.sin(2 * np.pi * (220 + 20 * seed) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * t))
    b = 0.1 * rng.standard_normal(t.size)
    return (np.stack([v, v], 1).astype(np.float32),
            np.stack([b, 0.9 * b], 1).astype(np.float32))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sets")
    # MUSDB18-HQ with accompaniment, nested train/test folders
    for i, split in enumerate(("train", "test")):
        d = root / "musdb18hq" / split / f"Artist {i} - Song"
        d.mkdir(parents=True)
        v, b = _pair(i)
        sf.write(d / "vocals.wav", v * 0.5, SR)
        sf.write(d / "accompaniment.flac", b, SR)
        sf.write(d / "mixture.wav", v * 0.5 + b, SR)
    # MUSDB18-HQ with separate stems, one of them also present as MP3 (must count once)
    d = root / "musdb18hq" / "train" / "Band - Stems"
    d.mkdir(parents=True)
    v, b = _pair(2)
    sf.write(d / "vocals.wav", v, SR)
    for name, part in (("drums", 0.5 * b), ("bass", 0.3 * b), ("other", 0.2 * b)):
        sf.write(d / f"{name}.wav", part, SR)
    sf.write(d / "drums.mp3", 0.5 * b, SR)
    sf.write(d / "mixture.wav", v + b, SR)
    # karaoke clips: L backing, R vocal; two clips of one MIR-1K song, one iKala clip
    k = root / "MIR-1K" / "Wavfile"
    k.mkdir(parents=True)
    for clip in (1, 2):
        v, b = _pair(3 + clip)
        sf.write(k / f"singer_5_0{clip}.wav", np.stack([b[:, 0], v[:, 0]], 1), SR)
    ik = root / "misc"
    ik.mkdir()
    v, b = _pair(6)
    sf.write(ik / "10161_chorus_Lacc_Rvoc.wav", np.stack([b[:, 0], v[:, 0]], 1), SR)
    sf.write(ik / "unrelated_stereo.wav", np.stack([b[:, 0], v[:, 0]], 1), SR)  # ignored
    # a manifest with two backing files and one song without level information
    m = root / "other"
    m.mkdir()
    v, b = _pair(7)
    sf.write(m / "v.wav", v, SR)
    sf.write(m / "b1.wav", 0.5 * b, SR)
    sf.write(m / "b2.wav", 0.5 * b, SR)
    with open(m / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song", "vocal", "backing", "level_info"])
        w.writerow(["manifest song", "v.wav", "b1.wav;b2.wav", "1"])
        w.writerow(["manifest raw", "v.wav", "b1.wav", "0"])
    # a MUSDB18 stem file (needs ffmpeg to read)
    (root / "stemfiles").mkdir()
    (root / "stemfiles" / "Some - Song.stem.mp4").write_bytes(b"\0" * 64)
    return root


def test_readers_find_every_layout(layouts):
    songs = find_songs([layouts])
    by = {s.song_id: s for s in songs if s.source != "karaoke"}
    assert set(by) == {"Artist 0 - Song", "Artist 1 - Song", "Band - Stems", "manifest song",
                       "manifest raw", "Some - Song"}
    assert by["Artist 0 - Song"].source == "musdb_hq"
    assert [p.name for p in by["Artist 1 - Song"].backing] == ["accompaniment.flac"]
    assert [p.name for p in by["Band - Stems"].backing] == ["bass.wav", "drums.wav", "other.wav"]
    assert by["manifest song"].source == "manifest" and by["manifest song"].has_level_info
    assert len(by["manifest song"].backing) == 2
    assert not by["manifest raw"].has_level_info
    assert by["Some - Song"].source == "musdb_stem" and by["Some - Song"].has_level_info
    kar = [s for s in songs if s.source == "karaoke"]
    assert sorted(s.vocal.name for s in kar) == ["10161_chorus_Lacc_Rvoc.wav",
                                                 "singer_5_01.wav", "singer_5_02.wav"]
    assert {s.song_id for s in kar} == {"singer_5", "10161"}
    assert not any(s.has_level_info for s in kar)
    # level songs come first, sorted; provenance is JSON-ready
    assert [s.source == "karaoke" for s in songs] == sorted(s.source == "karaoke" for s in songs)
    assert by["Band - Stems"].describe()["files"][0].endswith("vocals.wav")


def test_musdb_stems_are_summed_into_the_backing(layouts):
    song = next(s for s in find_songs([layouts / "musdb18hq"]) if s.song_id == "Band - Stems")
    v, b, sr = load_song(song)
    ref_v, ref_b = _pair(2)
    assert sr == SR and v.shape == b.shape == ref_v.shape
    np.testing.assert_allclose(b, ref_b, atol=2e-4)  # 0.5 + 0.3 + 0.2, drums counted once
    np.testing.assert_allclose(v, ref_v, atol=1e-4)


def test_karaoke_channels_are_split_backing_left_vocal_right(layouts):
    song = next(s for s in find_songs([layouts]) if s.vocal.name == "singer_5_01.wav")
    v, b, sr = load_song(song)
    ref_v, ref_b = _pair(4)
    assert sr == SR and np.array_equal(v[:, 0], v[:, 1]) and np.array_equal(b[:, 0], b[:, 1])
    np.testing.assert_allclose(v[:, 0], ref_v[:, 0], atol=1e-4)
    np.testing.assert_allclose(b[:, 0], ref_b[:, 0], atol=1e-4)


def test_manifest_sums_its_backing_files_and_checks_columns(layouts, tmp_path):
    song = next(s for s in read_manifest(layouts / "other" / "manifest.csv")
                if s.song_id == "manifest song")
    _v, b, _ = load_song(song)
    np.testing.assert_allclose(b, _pair(7)[1], atol=2e-4)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,vocal\nx,v.wav\n")
    with pytest.raises(DataError, match="needs the columns"):
        read_manifest(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("song,vocal,backing\nx,nope.wav,nope2.wav\n")
    with pytest.raises(DataError, match="does not exist"):
        find_songs([missing])  # a manifest may be passed directly


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        find_songs([tmp_path / "nope"])


def test_a_damaged_stem_mp4_without_ffmpeg_says_so(layouts, monkeypatch):
    # without the ffmpeg command PyAV reads the file; this one is 64 zero bytes
    monkeypatch.setattr(data.shutil, "which", lambda _name: None)
    song = next(s for s in find_songs([layouts]) if s.source == "musdb_stem")
    with pytest.raises(DataError, match=r"cannot be decoded .* read with PyAV \(no ffmpeg"):
        load_song(song)


def test_stem_mp4_without_ffmpeg_is_read_with_pyav_as_ffmpeg_reads_it(monkeypatch):
    """No system FFmpeg needed to train on MUSDB18: PyAV's own decodes the stems within
    2e-7 of the ffmpeg command (on all 88 files of the shared data; two checked here).
    PyAV 19's FFmpeg ends them at the length their container states, where FFmpeg 5.1's
    command line gives the rest of the last AAC frame too (152 samples more here): the
    same samples, up to a frame fewer at the end."""
    import shutil

    root = require_data("musdb18-7s")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (the reference this is compared with)")
    songs = find_songs([root])
    for s in (songs[3], songs[60]):
        v, b, sr = data.load_stem_mp4(s.vocal)
        with monkeypatch.context() as m:
            m.setattr(data.shutil, "which", lambda _name: None)
            v2, b2, sr2 = data.load_stem_mp4(s.vocal)
        n = len(v2)
        assert sr2 == sr and b2.shape == v2.shape and len(b) == len(v)
        assert 0 <= len(v) - n < 1024, (len(v), n)
        assert np.abs(v2 - v[:n]).max() < 1e-6 and np.abs(b2 - b[:n]).max() < 1e-6, s.song_id


def test_stem_mp4_streams_are_decoded_with_ffmpeg(layouts, tmp_path, monkeypatch):
    """A stand-in ffmpeg prints stream k as a constant k+1: vocals are stream 4, the
    backing is drums + bass + other (streams 1-3)."""
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, numpy as np\n"
        "a = sys.argv\n"
        "k = int(a[a.index('-map') + 1].split(':')[-1])\n"
        "sys.stdout.buffer.write(np.full((1000, 2), k + 1, np.float32).tobytes())\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    song = next(s for s in find_songs([layouts]) if s.source == "musdb_stem")
    v, b, sr = load_song(song)
    assert sr == 44100 and v.shape == b.shape == (1000, 2)
    assert np.all(v == 5.0) and np.all(b == 2.0 + 3.0 + 4.0)


def test_splits_keep_songs_whole(layouts):
    songs = find_songs([layouts])
    for folds in (song_folds(songs), song_folds(songs, n_folds=2), song_folds(songs, 3)):
        seen = []
        for train, test in folds:
            tr = {songs[i].song_id for i in train}
            te = {songs[i].song_id for i in test}
            assert not tr & te and sorted(train + test) == list(range(len(songs)))
            seen += test
        assert sorted(seen) == list(range(len(songs)))  # every song tested exactly once
    # the two clips of one karaoke song are always on the same side
    for _train, test in song_folds(songs):
        assert [songs[i].song_id for i in test].count("singer_5") in (0, 2)
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    for tr, te in group_folds(groups) + group_folds(groups, 2):
        assert not set(groups[tr]) & set(groups[te]) and (tr ^ te).all()


def test_karaoke_song_ids():
    assert karaoke_song_id(Path("abjones_3_07.wav")) == "abjones_3"
    assert karaoke_song_id(Path("10161_chorus_Lacc_Rvoc.wav")) == "10161"
    assert karaoke_song_id(Path("whatever.wav")) == "whatever"


def test_file_hash_follows_content(tmp_path, monkeypatch):
    monkeypatch.setenv("VOCALMIX_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    h1 = file_hash(p)
    assert h1 == file_hash(p, use_memo=False) == file_hash(p)  # memo hit agrees
    assert (tmp_path / "cache" / "hashes.json").exists()
    p.write_bytes(b"abcd")
    os.utime(p, ns=(1, 1))
    assert file_hash(p) == file_hash(p, use_memo=False) != h1


def test_real_stems_are_read_with_level_information():
    stems = require_data("stems")
    songs = find_songs([stems])
    folders = sorted(p.name for p in stems.iterdir() if p.is_dir())
    assert [s.song_id for s in songs] == folders
    assert all(s.source == "musdb_hq" and s.has_level_info for s in songs)
    for s in songs:
        v, b, sr = load_song(s)
        assert sr == 44100 and v.shape == b.shape and v.shape[1] == 2
        assert np.abs(b).max() > 0.01 and np.abs(v).max() > 0.01


def test_real_karaoke_clips_carry_no_level_information():
    root = require_data("karaoke")
    songs = find_songs([root])
    assert len(songs) >= 200 and all(s.source == "karaoke" for s in songs)
    assert not any(s.has_level_info for s in songs)
    mir = [s for s in songs if "mir1k" in str(s.vocal).lower()]
    assert len({s.song_id for s in mir}) == len(mir) // 2  # 2 clips per song
    v, b, sr = load_song(songs[0])
    assert v.shape == b.shape and sr in (16000, 44100)


def test_whole_data_root_yields_only_song_layouts():
    root = require_data()
    songs = find_songs([root])
    assert {s.source for s in songs} <= {"musdb_hq", "musdb_stem", "karaoke"}
    # the Saraga multitrack (mix is not the sum of its tracks), IRs and dry vocals are
    # not songs with a vocal/backing pair
    assert not any("saraga" in str(s.vocal).lower() or "/ir/" in str(s.vocal)
                   or "dry_vocals" in str(s.vocal) for s in songs)


# --- genres, artists, MUSDB18's test split ------------------------------------------------


def test_catalogue_genres_and_the_test_split_are_marked(layouts, tmp_path):
    songs = {s.song_id: s for s in find_songs([layouts])}
    # MUSDB18-HQ layout: a song folder in test/ next to train/ is a test-split song
    assert songs["Artist 1 - Song"].test_split and not songs["Artist 0 - Song"].test_split
    assert songs["Artist 0 - Song"].genre == data.UNKNOWN_GENRE
    # a catalogue beside the song folders (or above them) gives genre and provenance;
    # a song named in MUSDB18's test list is marked whatever its folder
    root = tmp_path / "set"
    (root / "train").mkdir(parents=True)
    (root / "train" / "Leaf - Wicked.stem.mp4").write_bytes(b"\0" * 64)
    (root / "train" / "Mu - Too Bright.stem.mp4").write_bytes(b"\0" * 64)
    (root / "tracks.csv").write_text(
        'song,genre,source,licence\n"Jokers, Jacks - X",Pop,DSD,Restricted\n'
        "Leaf - Wicked,Pop/Rock,DSD,Restricted\n")
    by = {s.song_id: s for s in find_songs([root])}
    assert by["Leaf - Wicked"].genre == "Pop/Rock" and not by["Leaf - Wicked"].test_split
    assert dict(by["Leaf - Wicked"].provenance) == {
        "catalogue": "set/tracks.csv", "source": "DSD", "licence": "Restricted"}
    assert by["Mu - Too Bright"].test_split and by["Mu - Too Bright"].genre == "unknown"
    assert by["Leaf - Wicked"].describe()["genre"] == "Pop/Rock"


def test_artist_keys():
    assert data.artist_of("Music Delta - Beatles") == "music delta"
    assert data.artist_of("Triviul feat. The Fiend - Widow") == data.artist_of(
        "Triviul - Angelsaint")
    assert data.artist_of("The Easton Ellises (Baumi) - SDRNR") == data.artist_of(
        "The Easton Ellises - Falcon 69")
    assert data.artist_of("no dash here") == "no dash here"


def test_artist_folds_never_split_an_artist_and_change_with_the_seed():
    rng = np.random.default_rng(0)
    artists = [f"a{k}" for k in rng.integers(0, 30, size=88)] + ["big"] * 7
    partitions = []
    for seed in range(4):
        folds = data.artist_folds(artists, 5, seed)
        assert len(folds) == 5
        assert np.all(np.sum(folds, axis=0) == 1)  # every song in exactly one fold
        for f in folds:
            inside = {a for a, m in zip(artists, f, strict=True) if m}
            outside = {a for a, m in zip(artists, f, strict=True) if not m}
            assert not inside & outside  # no artist on both sides
        sizes = [int(f.sum()) for f in folds]
        assert max(sizes) - min(sizes) <= 7  # as even as the largest artist allows
        partitions.append(tuple(tuple(np.flatnonzero(f)) for f in folds))
        assert data.artist_folds(artists, 5, seed)[0].tolist() == folds[0].tolist()
    assert len(set(partitions)) > 1


def test_real_stem_mp4_files_decode_to_vocal_and_backing():
    """The 88 MUSDB18 ``.stem.mp4`` files of the shared data through the real reader:
    catalogue genres and provenance, and backing = drums + bass + other, checked against
    the file's own mixture stream."""
    import shutil
    import subprocess

    root = require_data("musdb18-7s")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (needed to read .stem.mp4)")
    songs = find_songs([root])
    assert len(songs) == 88 and all(s.source == "musdb_stem" for s in songs)
    assert all(s.genre != data.UNKNOWN_GENRE for s in songs)
    assert not any(s.test_split for s in songs)
    assert all(dict(s.provenance)["source"] in ("DSD", "MedleyDB") for s in songs)
    assert len({s.artist for s in songs}) < len(songs)  # several songs share an artist
    for s in (songs[0], songs[47]):
        v, b, sr = load_song(s)
        assert sr == 44100 and v.shape == b.shape and v.shape[1] == 2
        assert 6.0 < v.shape[0] / sr < 7.5
        r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(s.vocal), "-map",
                            "0:a:0", "-f", "f32le", "-ac", "2", "-ar", "44100", "-"],
                           capture_output=True, check=True)
        mix = np.frombuffer(r.stdout, np.float32).reshape(-1, 2)[: v.shape[0]]
        resid = np.sum((v + b - mix) ** 2) / np.sum(mix**2)
        assert 10 * np.log10(resid) < -15, s.song_id  # AAC coding noise only
        assert np.sum(b**2) > 0.05 * np.sum(mix**2) and np.sum(v**2) > 1e-4 * np.sum(mix**2)


def _hq_song(folder: Path, seconds: float, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    v, b = _pair(seed, seconds)
    sf.write(folder / "vocals.wav", v, SR)
    sf.write(folder / "accompaniment.wav", b, SR)
    return folder


def test_a_growing_data_folder_is_followed_through_links_manifests_and_copies(tmp_path):
    # a MUSDB18-HQ linked into the data folder was skipped (the walk did not follow
    # links); a manifest's songs in the folders below it were listed again under their
    # folder names, the same audio on both sides of the artist folds; and of two copies of
    # a song, the 6.8 s excerpt could shadow the whole song
    store = tmp_path / "elsewhere" / "musdb18hq" / "train"
    _hq_song(store / "Artist A - Song", 3.0, 1)
    data = tmp_path / "data"
    data.mkdir()
    (data / "hq").symlink_to(tmp_path / "elsewhere" / "musdb18hq")
    (data / "loop").symlink_to(data)  # (a link back up is walked once)
    assert [s.song_id for s in find_songs([data])] == ["Artist A - Song"]

    listed = tmp_path / "listed"
    _hq_song(listed / "Artist B - One", 2.0, 2)
    with open(listed / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song", "vocal", "backing"])
        w.writerow(["track00", "Artist B - One/vocals.wav", "Artist B - One/accompaniment.wav"])
    assert [s.song_id for s in find_songs([listed])] == ["track00"]

    short = tmp_path / "copies" / "excerpts" / "Artist C - Two"
    _hq_song(short, 1.0, 3)
    _hq_song(tmp_path / "copies" / "whole" / "Artist C - Two", 4.0, 3)
    said: list[str] = []
    (song,) = find_songs([tmp_path / "copies"], progress=said.append)
    assert "whole" in str(song.vocal) and "kept" in said[0] and "the larger" in said[0]


def test_audio_files_are_found_at_any_depth_through_links_and_in_mir1k_by_any_name(
        tmp_path):
    # the IR library, the reverb model's dry clips and the dynamics model's raw takes were
    # found with fixed patterns (ir/*/*.wav, karaoke/mir1k/*.flac, a folder named exactly
    # "mir1k") and without following links: IRs in FLAC or deeper, a linked set and a
    # MIR-1K folder named as the data layer names it were left out
    from vocalmix.training.data import audio_files, is_mir1k
    from vocalmix.training.irlib import real_ir_paths

    v, _b = _pair(0, 0.5)
    (tmp_path / "sets" / "hall").mkdir(parents=True)
    sf.write(tmp_path / "sets" / "hall" / "big.flac", v, SR)
    (tmp_path / "ir" / "mine").mkdir(parents=True)
    sf.write(tmp_path / "ir" / "mine" / "room.wav", v, SR)
    sf.write(tmp_path / "ir" / "mine" / "direct_cabinet_1.wav", v, SR)
    (tmp_path / "ir" / "mine" / ".hidden.wav").write_bytes(b"")
    (tmp_path / "ir" / "linked").symlink_to(tmp_path / "sets")
    (tmp_path / "ir" / "again").symlink_to(tmp_path / "ir")  # (walked once)
    found = [p.relative_to(tmp_path / "ir").as_posix() for p in real_ir_paths(tmp_path)]
    assert found == ["linked/hall/big.flac", "mine/room.wav"]
    (tmp_path / "karaoke" / "MIR-1K" / "Wavfile").mkdir(parents=True)
    sf.write(tmp_path / "karaoke" / "MIR-1K" / "Wavfile" / "abjones_1_01.wav", v, SR)
    takes = [p for p in audio_files(tmp_path / "karaoke") if is_mir1k(p)]
    assert [p.name for p in takes] == ["abjones_1_01.wav"]


def test_songs_that_name_no_artist_are_said_to_split_by_song(layouts, tmp_path):
    """A manifest without an artist column, whose ids are not 'Artist - Title': each
    song is its own artist in the folds, so one artist's two songs can be split across
    them; the finder says so, and is quiet when the manifest names the artists."""
    import shutil

    src = layouts / "other"
    for f in src.iterdir():
        if f.suffix != ".csv":
            shutil.copy(f, tmp_path / f.name)
    rows = (src / "manifest.csv").read_text().splitlines()
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    said: list[str] = []
    find_songs([tmp_path / "manifest.csv"], progress=said.append)
    assert any("name no artist" in m and "artist column" in m for m in said)
    header, *body = rows
    (tmp_path / "manifest.csv").write_text(
        "\n".join([header + ",artist", *(r + ",someone" for r in body)]) + "\n")
    said.clear()
    find_songs([tmp_path / "manifest.csv"], progress=said.append)
    assert not any("name no artist" in m for m in said)
