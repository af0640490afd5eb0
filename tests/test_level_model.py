"""The level model: fitting the ridge heads (vocalmix.training.level), numpy inference and
its weight files (vocalmix.estimators.level), the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vocalmix import pipeline
from vocalmix.core.errors import ModelError
from vocalmix.estimators import level
from vocalmix.estimators.features import FEATURE_NAMES, FEATURE_VERSION
from vocalmix.synth import synthesize_song
from vocalmix.training import level as training

from conftest import require_data

SR = 22050


def _examples(n_songs: int, per_song: int, rng: np.random.Generator, noise: float = 0.05):
    """Feature rows where the targets are linear in two level features."""
    x = rng.normal(size=(n_songs * per_song, len(FEATURE_NAMES)))
    song_shift = rng.normal(size=(n_songs, len(FEATURE_NAMES)))
    g = np.repeat(np.arange(n_songs), per_song)
    x += song_shift[g]
    i = FEATURE_NAMES.index
    v2m = -4.0 + 1.5 * x[:, i("b_centroid_oct")] - 0.7 * x[:, i("b_crest_db")]
    y = np.stack([v2m, v2m + 3.0, 0.1 * x[:, i("v_lra_lu")] - 0.2], 1)
    return x, y + noise * rng.normal(size=y.shape), g


def test_conversions_are_inverse_and_power_additive():
    for v2m in (-12.0, -6.0, -3.0, -1.0):
        assert training.v2b_to_v2m(training.v2m_to_v2b(v2m)) == pytest.approx(v2m, abs=1e-9)
    assert training.v2b_to_v2m(0.0) == pytest.approx(-3.0103, abs=1e-4)  # equal powers
    assert level.lra_from_ratio(7.0, level.lra_log_ratio(3.0, 7.0)) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        training.v2m_to_v2b(0.5)


def test_song_weights_give_every_song_weight_one():
    g = np.array([0, 0, 0, 1, 2, 2])
    w = training.song_weights(g)
    assert [w[g == k].sum() for k in range(3)] == pytest.approx([1, 1, 1])


def test_ridge_recovers_a_relation_and_shrinks_toward_the_rule(rng):
    x, y, g = _examples(40, 6, rng)
    m, report = training.fit_level_model(x, y, g)
    assert report["vocal_to_mix_lu"]["chosen"] != "given"  # chosen by CV (40 songs)
    xt, yt, _ = _examples(10, 3, rng, noise=0.0)
    p = m.predict(xt)
    assert np.mean(np.abs(p["vocal_to_mix_lu"] - yt[:, 0])) < 0.3
    # a huge penalty with two songs: slopes vanish, the intercept sits between the
    # training mean and the baseline's -3 LU (a prior worth one song)
    x2, y2, g2 = x[g < 2], y[g < 2], g[g < 2]
    h = training.fit_head("vocal_to_mix_lu", x2, y2[:, 0], training.song_weights(g2), 1e9)
    assert np.abs(h.coef).max() < 1e-6
    mean = np.mean([y2[g2 == k, 0].mean() for k in (0, 1)])
    assert h.intercept == pytest.approx((2 * mean - 3.0) / 3, abs=1e-9)


def test_features_are_clipped_to_the_training_range(rng):
    x, y, g = _examples(5, 4, rng)
    h = training.fit_head("vocal_to_mix_lu", x, y[:, 0], training.song_weights(g), 0.01)
    far = x[:1].copy()
    far[0, FEATURE_NAMES.index("b_centroid_oct")] = 1e6
    edge = x[:1].copy()
    edge[0, FEATURE_NAMES.index("b_centroid_oct")] = x[:, FEATURE_NAMES.index(
        "b_centroid_oct")].max()
    assert h.predict(far)[0] == pytest.approx(h.predict(edge)[0])


def test_numpy_inference_after_save_and_load_matches_training(tmp_path, rng):
    x, y, g = _examples(4, 5, rng)
    m, _ = training.fit_level_model(x, y, g)
    m.save(tmp_path, {"note": "test"}, check_x=x[:5])
    loaded = level.LevelModel.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_matrix(x), m.predict_matrix(x), atol=1e-12)
    arrays, meta = level.FILES.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_matrix(arrays["check_x"]), arrays["check_y"],
                               atol=1e-12)
    assert meta["note"] == "test" and loaded.meta == meta
    assert json.loads((tmp_path / level.FILES.meta).read_text())["note"] == "test"


def test_missing_or_stale_weights_raise_model_error(tmp_path, rng):
    with pytest.raises(ModelError, match="no level model weights"):
        level.LevelModel.load(tmp_path / "empty")
    x, y, g = _examples(3, 3, rng)
    m, _ = training.fit_level_model(x, y, g)
    stale = level.LevelModel(m.heads, feature_version=FEATURE_VERSION - 1)
    stale.save(tmp_path / "stale", {})
    with pytest.raises(ModelError, match="stale"):
        level.LevelModel.load(tmp_path / "stale")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / level.FILES.weights).write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="unreadable"):
        level.LevelModel.load(tmp_path / "junk")


def test_shipped_weights_load_reproduce_training_and_drive_estimate():
    m = level.shipped_model()
    arrays, meta = level.FILES.load()
    np.testing.assert_allclose(m.predict_matrix(arrays["check_x"]), arrays["check_y"],
                               atol=1e-9)
    from importlib.resources import as_file, files

    with as_file(files("vocalmix").joinpath("assets", level.FILES.weights)) as p:
        assert p.stat().st_size < 5_000_000
    assert meta["feature_version"] == FEATURE_VERSION and meta["training_data"]
    assert all(len(f["sha256"]) == 64 for s in meta["training_data"] for f in s["files"])
    v, b = synthesize_song(sample_rate=SR, duration_s=8.0, seed=0)
    params, notes = pipeline.choose_targets(v, b, SR, "model")
    assert params.provenance.method == "model"
    assert -20 <= params.targets.vocal_to_mix_lu <= -0.5
    assert 1 <= params.targets.vocal_lra_lu <= 30
    assert any(n.startswith("model: vocal-to-mix") for n in notes)


def test_shipped_metadata_hashes_match_the_shared_stems():
    from vocalmix.training.data import file_hash

    stems = require_data("stems")
    meta = level.shipped_model().meta
    checked = 0
    for s in meta["training_data"]:
        for f in s["files"]:
            p = stems / s["song"] / f["name"]
            if p.exists():
                assert file_hash(p, use_memo=False) == f["sha256"], p
                checked += 1
    assert checked > 0, "none of the shipped model's training files is in the shared stems"


def test_model_runs_on_real_raw_karaoke_takes():
    """MIR-1K's amateur takes (16 kHz) are no level targets, but they are realistic raw
    input: the model must give valid targets for them."""
    from vocalmix.training.data import find_songs, load_song

    root = require_data("karaoke", "mir1k")
    m = level.shipped_model()
    for s in find_songs([root])[:40:10]:
        v, b, sr = load_song(s)
        p = level.predict_song(m, v, b, sr)
        assert np.isfinite(p["vocal_to_mix_lu"]) and np.isfinite(p["vocal_lra_lu"])
        assert -20 < p["vocal_to_mix_lu"] < 0 and 0 <= p["vocal_lra_lu"] < 30
