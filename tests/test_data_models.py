"""Data layer, level-invariant features, the level model, train and evaluate (issue 5)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix import models, pipeline
from vocalmix.data import find_songs, load_song, song_folds
from vocalmix.errors import DataError, ModelError
from vocalmix.features import FEATURE_NAMES, features
from vocalmix.synth import synthesize_song

from conftest import data_root, require_data

SR = 22050


def _song(seed: int, seconds: float = 7.0):
    return synthesize_song(sample_rate=SR, duration_s=seconds, seed=seed,
                           tempo_bpm=90 + 10 * seed)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sets")
    # MUSDB18-HQ with accompaniment, nested train/test folders
    for i, split in enumerate(("train", "test")):
        d = root / "musdb" / split / f"Artist {i} - Song"
        d.mkdir(parents=True)
        v, b = _song(i)
        sf.write(d / "vocals.wav", v * 0.5, SR)
        sf.write(d / "accompaniment.flac", b, SR)
        sf.write(d / "mixture.wav", v * 0.5 + b, SR)
    # MUSDB18-HQ with separate stems (summed into the backing)
    d = root / "musdb" / "train" / "Band - Stems"
    d.mkdir(parents=True)
    v, b = _song(2)
    sf.write(d / "vocals.wav", v, SR)
    for name, part in (("drums", 0.5 * b), ("bass", 0.3 * b), ("other", 0.2 * b)):
        sf.write(d / f"{name}.wav", part, SR)
    sf.write(d / "mixture.wav", v + b, SR)
    # karaoke clips: L backing, R vocal; two clips of one song
    k = root / "MIR-1K"
    k.mkdir()
    for clip in (1, 2):
        v, b = _song(3, 3.0)
        sf.write(k / f"singer_5_0{clip}.wav", np.stack([b[:, 0], v[:, 0]], 1), SR)
    # a manifest
    m = root / "other"
    m.mkdir()
    v, b = _song(4)
    sf.write(m / "v.wav", v, SR)
    sf.write(m / "b.wav", b, SR)
    with open(m / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song", "vocal", "backing", "level_info"])
        w.writerow(["manifest song", "v.wav", "b.wav", "1"])
    # a MUSDB18 stem file (needs ffmpeg to read)
    (root / "stemfiles").mkdir()
    (root / "stemfiles" / "Some - Song.stem.mp4").write_bytes(b"\0" * 64)
    return root


def test_readers_find_every_layout(layouts):
    songs = find_songs([layouts])
    by = {s.song_id: s for s in songs}
    assert by["Artist 0 - Song"].source == "musdb_hq"
    assert by["Artist 0 - Song"].backing[0].name == "accompaniment.flac"
    assert sorted(p.name for p in by["Band - Stems"].backing) == ["bass.wav", "drums.wav",
                                                                   "other.wav"]
    assert by["manifest song"].source == "manifest" and by["manifest song"].has_level_info
    assert by["Some - Song"].source == "musdb_stem"
    kar = [s for s in songs if s.source == "karaoke"]
    assert len(kar) == 2 and {s.song_id for s in kar} == {"singer_5"}
    assert not any(s.has_level_info for s in kar)
    v, b, sr = load_song(by["Band - Stems"])
    ref, _ = sf.read(layouts / "musdb" / "train" / "Band - Stems" / "drums.wav", dtype="float32")
    assert sr == SR and np.allclose(b, ref / 0.5, atol=1e-3)
    kv, kb, _ = load_song(kar[0])
    assert np.array_equal(kv[:, 0], kv[:, 1]) and not np.allclose(kv, kb)


def test_stem_mp4_without_ffmpeg_says_so(layouts, monkeypatch):
    import vocalmix.data as data

    monkeypatch.setattr(data.shutil, "which", lambda _name: None)
    song = next(s for s in find_songs([layouts]) if s.source == "musdb_stem")
    with pytest.raises(DataError, match="needs ffmpeg"):
        load_song(song)


def test_splits_keep_songs_whole(layouts):
    songs = find_songs([layouts])
    for train, test in song_folds(songs) + song_folds(songs, n_folds=2):
        tr = {songs[i].song_id for i in train}
        te = {songs[i].song_id for i in test}
        assert not tr & te and len(train) + len(test) == len(songs)
    # the two karaoke clips of one song are always on the same side
    for _train, test in song_folds(songs):
        ids = [songs[i].song_id for i in test]
        assert ids.count("singer_5") in (0, 2)


def test_features_are_invariant_to_vocal_gain():
    v, b = _song(1, 8.0)
    f0 = features(v, b, SR)
    assert f0.shape == (len(FEATURE_NAMES),) and np.all(np.isfinite(f0))
    for g_db in (-20.0, -6.0, 9.0):
        f = features(v * np.float32(10 ** (g_db / 20)), b, SR)
        np.testing.assert_allclose(f, f0, rtol=1e-3, atol=1e-3)


def test_train_then_numpy_inference_matches_training_predictions(layouts, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("VOCALMIX_CACHE", str(tmp_path / "cache"))
    from vocalmix.train import build_examples, level_songs, train

    model, meta = train([str(layouts / "musdb")], tmp_path / "m", seed=1, augment=2)
    assert meta["n_songs"] == 3 and meta["cross_validated"]["n_songs"] == 3
    loaded = models.LevelModel.load(tmp_path / "m")
    ex = build_examples(level_songs([str(layouts / "musdb")]), seed=1, augment=2)
    np.testing.assert_allclose(loaded.predict(ex.x[:5]), meta["training_predictions_first5"],
                               atol=1e-5)
    np.testing.assert_allclose(loaded.predict(ex.x), model.predict(ex.x), atol=1e-12)
    # deterministic: a second training gives the same weights
    model2, _ = train([str(layouts / "musdb")], tmp_path / "m2", seed=1, augment=2,
                      use_cache=False)
    np.testing.assert_allclose(model2.coef, model.coef, atol=1e-12)
    assert json.loads((tmp_path / "m" / "level_model.json").read_text())["seed"] == 1


def test_fallback_when_weights_are_missing(monkeypatch):
    def missing():
        raise ModelError("level model weights not found")

    models._shipped.cache_clear()
    monkeypatch.setattr(models, "_shipped", missing)
    v, b = _song(0, 5.0)
    params, notes = pipeline.choose_targets(v, b, SR, "model")
    assert params.provenance.method == "baseline"
    assert any("fell back to the baseline" in n for n in notes)
    assert models.default_method() == "baseline"


def test_shipped_model_predicts_and_is_used():
    if not models.weights_available():
        pytest.skip("no shipped weights")
    v, b = _song(0, 6.0)
    params, notes = pipeline.choose_targets(v, b, SR, "model")
    assert params.provenance.method == "model"
    assert -20 <= params.targets.vocal_to_mix_lu <= -0.5
    meta = models.shipped_metadata()
    assert meta["feature_version"] == 1 and meta["training_data"]


def test_evaluate_on_real_stems(tmp_path, monkeypatch):
    stems = require_data("stems")
    monkeypatch.setenv("VOCALMIX_CACHE", str(tmp_path / "cache"))
    from vocalmix.evaluate import evaluate, write_report

    res = evaluate([str(stems)], augment=1)
    assert res["n_songs"] == len([p for p in stems.iterdir() if p.is_dir()])
    for r in res["songs"]:
        assert set(r["predicted"]) == {"baseline", "constant", "model"}
        assert np.isfinite(r["human"]["vocal_to_mix_lu"])
    p = write_report(res, tmp_path / "report")
    assert "leave-one-song-out" in p.read_text()
    assert (tmp_path / "report" / "scatter.png").stat().st_size > 1000


def test_real_karaoke_clips_are_read_without_level_info():
    root = require_data("karaoke")
    songs = [s for s in find_songs([root]) if s.source == "karaoke"]
    assert len(songs) >= 200
    assert not any(s.has_level_info for s in songs)
    v, b, sr = load_song(songs[0])
    assert v.shape == b.shape and sr in (16000, 44100)
    _ = data_root, shutil
