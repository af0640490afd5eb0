"""Training and leave-one-song-out evaluation of the level model (vocalmix.training.level)
and the ``train`` and ``evaluate`` commands, on synthetic MUSDB18-HQ folders made here and
on the shared stems."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.errors import DataError
from vocalmix.core.measure import integrated_loudness, loudness_range
from vocalmix.estimators import level
from vocalmix.estimators.features import FEATURE_VERSION
from vocalmix.frontends.cli import main
from vocalmix.synth import synthesize_song

from conftest import require_data

SR = 22050


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VOCALMIX_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def musdb(tmp_path_factory) -> Path:
    """A MUSDB18-HQ-shaped root: train/ and test/ song folders of separate stems, each
    song mixed at its own vocal level."""
    root = tmp_path_factory.mktemp("musdb18hq")
    for i, (split, gain_db) in enumerate((("train", -6.0), ("train", 0.0), ("test", -2.0))):
        d = root / split / f"Artist {i} - Song {i}"
        d.mkdir(parents=True)
        v, b = synthesize_song(sample_rate=SR, duration_s=9.0, seed=10 + i,
                               tempo_bpm=90 + 15 * i)
        v = v * np.float32(10 ** (gain_db / 20))
        sf.write(d / "vocals.wav", v, SR)
        sf.write(d / "drums.wav", 0.5 * b, SR)
        sf.write(d / "bass.wav", 0.25 * b, SR)
        sf.write(d / "other.wav", 0.25 * b, SR)
        sf.write(d / "mixture.wav", v + b, SR)
    return root


def test_train_is_deterministic_and_writes_weights_with_provenance(musdb, tmp_path):
    from vocalmix.training.level import train_level_model

    m1, meta = train_level_model([str(musdb)], tmp_path / "m1", seed=1, augment=2)
    assert meta["n_songs"] == 3 and meta["feature_version"] == FEATURE_VERSION
    assert meta["seed"] == 1 and meta["augment"] == 2
    assert meta["cross_validated"]["n_songs"] == 3
    names = {f["name"] for s in meta["training_data"] for f in s["files"]}
    assert names == {"vocals.wav", "drums.wav", "bass.wav", "other.wav"}  # no mixture
    assert json.loads((tmp_path / "m1" / "level_model.json").read_text())["seed"] == 1
    loaded = level.LevelModel.load(tmp_path / "m1")
    arrays, _meta = level.FILES.load(tmp_path / "m1")
    np.testing.assert_allclose(loaded.predict_matrix(arrays["check_x"]), arrays["check_y"],
                               atol=1e-12)
    # the same seed without the cache gives the same weights; another seed does not
    m2, _ = train_level_model([str(musdb)], tmp_path / "m2", seed=1, augment=2,
                              use_cache=False, cross_validate=False)
    for t in level.TARGETS:
        np.testing.assert_array_equal(m2.heads[t].coef, m1.heads[t].coef)
        assert m2.heads[t].intercept == m1.heads[t].intercept
    m3, _ = train_level_model([str(musdb)], tmp_path / "m3", seed=2, augment=2,
                              cross_validate=False)
    assert not np.array_equal(m3.heads["vocal_to_mix_lu"].coef,
                              m1.heads["vocal_to_mix_lu"].coef)


def test_examples_are_built_from_perturbed_inputs_and_measured_targets(musdb):
    from vocalmix.estimators.features import FEATURE_NAMES
    from vocalmix.training.data import find_songs, load_song
    from vocalmix.training.level import song_record

    song = find_songs([musdb])[0]
    rec = song_record(song, seed=0, augment=2, draws=2)
    v, b, sr = load_song(song)
    iv, ib = integrated_loudness(v, sr), integrated_loudness(b, sr)
    assert rec.truth["vocal_to_backing_lu"] == pytest.approx(iv - ib, abs=1e-9)
    assert rec.truth["vocal_to_mix_lu"] == pytest.approx(
        iv - integrated_loudness(v + b, sr), abs=1e-9)
    assert rec.truth["vocal_lra_lu"] == pytest.approx(loudness_range(v, sr), abs=1e-9)
    assert rec.x.shape[1] == len(FEATURE_NAMES) and len(rec.x) % 2 == 0
    # two perturbed copies of one excerpt share their targets, not their vocal features
    assert np.array_equal(rec.y[0, :2], rec.y[1, :2])
    iv_lra = FEATURE_NAMES.index("v_lra_lu")
    assert rec.x[0, iv_lra] != rec.x[1, iv_lra]
    assert sorted(set(rec.test_draw.tolist())) == [0, 1] and len(rec.test_lra_in) == 2
    # the baseline's vocal-to-backing is the exact balance at -3 LU vocal-to-mix
    g = 10 ** ((rec.baseline_v2b - (iv - ib)) / 20)
    assert integrated_loudness(g * v, sr) - integrated_loudness(g * v + b, sr) == \
        pytest.approx(-3.0, abs=0.02)


def test_cross_validation_never_trains_on_the_held_out_song(musdb, monkeypatch):
    import vocalmix.training.level as ev

    ex = ev.build_examples(ev.level_songs([str(musdb)]), seed=0, augment=1, draws=1)
    seen = []
    real_fit = ev.fit_level_model

    def spy(x, y, groups, alpha=None, progress=None):
        seen.append(set(np.unique(groups).tolist()))
        return real_fit(x, y, groups, alpha, progress)

    monkeypatch.setattr(ev, "fit_level_model", spy)
    res = ev.leave_one_song_out(ex, sensitivity=False)
    assert seen == [{1, 2}, {0, 2}, {0, 1}]
    for i, r in enumerate(res["songs"]):
        others = [ex.records[j].truth for j in range(3) if j != i]
        assert r["predicted"]["constant"]["vocal_to_mix_lu"] == pytest.approx(
            np.mean([t["vocal_to_mix_lu"] for t in others]))
        assert r["predicted"]["baseline"]["vocal_to_mix_lu"] == -3.0
        for m in ev.METHODS:
            for k in ev.KEYS:
                assert r["error"][m][k] == pytest.approx(r["predicted"][m][k] - r["human"][k])


def test_evaluate_needs_two_songs_with_level_information(musdb, tmp_path):
    from vocalmix.training.level import evaluate_level_model

    with pytest.raises(DataError, match="at least 2 songs"):
        evaluate_level_model([str(musdb / "test")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no songs with vocal and backing"):
        evaluate_level_model([str(tmp_path / "empty")])


def test_cli_train_estimate_and_evaluate(musdb, tmp_path, capsys):
    assert main(["train", "--data", str(musdb), "-o", str(tmp_path / "m"), "-q",
                 "--augment", "1", "--no-cv", "--only", "level"]) == 0
    assert "trained on 3 song(s)" in capsys.readouterr().out
    assert (tmp_path / "m" / "level_model.npz").exists()
    assert main(["evaluate", "--data", str(musdb), "--report", str(tmp_path / "r"), "-q",
                 "--augment", "1", "--draws", "1"]) == 0
    out = capsys.readouterr().out
    assert "| model |" in out and "3 songs" in out
    assert main(["train", "--data", str(tmp_path / "nothing"), "-o", str(tmp_path / "x"),
                 "-q"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_estimate_command_with_the_model_method(musdb, tmp_path, capsys):
    song = musdb / "test" / "Artist 2 - Song 2"
    out = tmp_path / "p.json"
    assert main(["estimate", str(song / "vocals.wav"), str(song / "mixture.wav"), "-o",
                 str(out), "--method", "model", "-q"]) == 0
    doc = json.loads(out.read_text())
    assert doc["provenance"]["method"] == "model"
    assert any(n.startswith("model: vocal-to-mix") for n in doc["provenance"]["notes"])


def test_evaluate_on_the_shared_stems_writes_the_report(tmp_path):
    stems = require_data("stems")
    from vocalmix.training.level import evaluate_level_model
    from vocalmix.training.reports import write_level_report

    t0 = time.perf_counter()
    res = evaluate_level_model([str(stems)], augment=2, draws=2)
    p = write_level_report(res, tmp_path / "report")
    elapsed = time.perf_counter() - t0
    assert elapsed < 60, f"evaluate took {elapsed:.0f} s"
    folders = [d for d in stems.iterdir() if d.is_dir()]
    assert res["n_songs"] == len(folders)
    for r in res["songs"]:
        assert set(r["predicted"]) == {"baseline", "constant", "model"}
        assert all(np.isfinite(v) for v in r["human"].values())
    # the human truth is measured on the stems, not taken from anywhere
    from vocalmix.training.data import find_songs, load_song

    s = find_songs([stems])[0]
    v, b, sr = load_song(s)
    row = next(r for r in res["songs"] if r["song"] == s.song_id)
    assert row["human"]["vocal_to_backing_lu"] == pytest.approx(
        integrated_loudness(v, sr) - integrated_loudness(b, sr), abs=1e-6)
    text = p.read_text()
    assert f"**{len(folders)} songs**" in text and "| baseline |" in text
    for png in ("scatter.png", "errors.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000
    assert json.loads((tmp_path / "report" / "results.json").read_text())["n_songs"] == len(
        folders)
