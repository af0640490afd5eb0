"""The level model: fitting its heads (vocalmix.training.level), numpy inference and its
weight files (vocalmix.estimators.level), the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vocalmix import pipeline
from vocalmix.core import measure
from vocalmix.core.errors import ModelError, ParamsError
from vocalmix.estimators import level
from vocalmix.estimators.features import FEATURE_NAMES, FEATURE_VERSION
from vocalmix.synth import synthesize_song
from vocalmix.training import level as training

from conftest import require_data

SR = 22050
IDX = FEATURE_NAMES.index


def _examples(n_songs: int, per_song: int, rng: np.random.Generator, noise: float = 0.05):
    """Feature rows where the targets are linear in two backing features."""
    x = rng.normal(size=(n_songs * per_song, len(FEATURE_NAMES)))
    song_shift = rng.normal(size=(n_songs, len(FEATURE_NAMES)))
    g = np.repeat(np.arange(n_songs), per_song)
    x += song_shift[g]
    v2m = -4.0 + 1.5 * x[:, IDX("b_centroid_oct")] - 0.7 * x[:, IDX("b_crest_db")]
    y = np.stack([v2m, 0.1 * x[:, IDX("v_lra_lu")] - 0.2], 1)
    return x, y + noise * rng.normal(size=y.shape), g


def _ex(x, y, g, genres=None, artists=None) -> training.Examples:
    from vocalmix.training.data import Song

    n = int(g.max()) + 1
    songs = [Song(f"{artists[i] if artists else f'A{i}'} - S{i}", "manifest", _P,
                  genre=genres[i] if genres else "unknown") for i in range(n)]
    return training.Examples(x, y, g, songs, [None] * n)  # type: ignore[list-item]


class _P:  # a path stand-in: Examples only needs song ids, genres and artists here
    pass


def test_conversions_are_inverse_and_power_additive():
    for v2m in (-12.0, -6.0, -3.0, -1.0):
        assert measure.v2b_to_v2m(measure.v2m_to_v2b(v2m)) == pytest.approx(v2m, abs=1e-9)
    assert measure.v2b_to_v2m(0.0) == pytest.approx(-3.0103, abs=1e-4)  # equal powers
    assert level.lra_from_ratio(7.0, level.lra_log_ratio(3.0, 7.0)) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        measure.v2m_to_v2b(0.5)


def test_song_weights_give_every_song_weight_one():
    g = np.array([0, 0, 0, 1, 2, 2])
    w = training.song_weights(g)
    assert [w[g == k].sum() for k in range(3)] == pytest.approx([1, 1, 1])


def test_huber_head_recovers_a_relation_and_resists_an_outlier_song(rng):
    x, y, g = _examples(40, 4, rng)
    feats = ("b_centroid_oct", "b_crest_db", "b_low_db")
    w = training.song_weights(g)
    h = training.fit_head("vocal_to_mix_lu", x, y[:, 0], w, 0.01, feats)
    assert h.loss == "huber" and h.huber_delta == training.HUBER_DELTA_LU
    xt, yt, _ = _examples(10, 3, rng, noise=0.0)
    assert np.mean(np.abs(h.predict(xt) - yt[:, 0])) < 0.1
    # one song 12 LU below its relation: the squared loss moves every prediction by
    # about 12/40 LU, the Huber loss by much less
    y_out = y[:, 0].copy()
    y_out[g == 0] -= 12.0
    sq = training.fit_head("vocal_to_mix_lu", x, y_out, w, 0.01, feats, loss="squared")
    hu = training.fit_head("vocal_to_mix_lu", x, y_out, w, 0.01, feats)
    shift_sq = np.mean(np.abs(sq.predict(xt) - h.predict(xt)))
    shift_hu = np.mean(np.abs(hu.predict(xt) - h.predict(xt)))
    assert shift_sq > 0.2 and shift_hu < shift_sq / 4


def test_penalties_shrink_slopes_and_genre_offsets_as_documented(rng):
    """Squared loss, huge slope penalty: the intercept is the song mean pulled toward the
    rule by a prior worth one song, and a genre's offset is its residual mean times
    n / (n + genre_alpha)."""
    x, y, g = _examples(6, 3, rng)
    yy = np.repeat([-5.0, -5.0, -5.0, -2.0, -2.0, -8.0], 3)
    genres = np.repeat(["Rock", "Rock", "Rock", "Jazz", "Jazz", "other"], 3)
    h = training.fit_head("vocal_to_mix_lu", x, yy, training.song_weights(g), 1e9,
                          ("b_centroid_oct",), loss="squared", genres=genres,
                          genre_alpha=2.0, prior_songs=0.0)
    assert np.abs(h.coef).max() < 1e-6
    assert h.genres == ("Jazz", "Rock")  # MUSDB18 genres present; "other" has no offset
    b = h.intercept
    rock, jazz = h.genre_offset("Rock"), h.genre_offset("Jazz")
    assert rock == pytest.approx(3 * (-5.0 - b) / (3 + 2.0), abs=1e-6)
    assert jazz == pytest.approx(2 * (-2.0 - b) / (2 + 2.0), abs=1e-6)
    assert h.genre_offset("other") == 0.0 and h.genre_offset(None) == 0.0
    assert h.predict(x[:1], "Rock")[0] - h.predict(x[:1])[0] == pytest.approx(rock)


def test_features_are_clipped_to_the_training_range(rng):
    x, y, g = _examples(5, 4, rng)
    h = training.fit_head("vocal_to_mix_lu", x, y[:, 0], training.song_weights(g), 0.01,
                          ("b_centroid_oct", "b_crest_db"))
    far, edge = x[:1].copy(), x[:1].copy()
    far[0, IDX("b_centroid_oct")] = 1e6
    edge[0, IDX("b_centroid_oct")] = x[:, IDX("b_centroid_oct")].max()
    assert h.predict(far)[0] == pytest.approx(h.predict(edge)[0])


def test_selection_is_made_by_artist_grouped_cross_validation(rng):
    x, y, g = _examples(24, 3, rng)
    artists = [f"artist{i // 2}" for i in range(24)]  # two songs per artist
    ex = _ex(x, y, g, artists=artists)
    head, report = training.select_head("vocal_to_mix_lu", ex, seed=0)
    assert report["chosen_by"].endswith("grouped by artist")
    assert set(report["cv_mae"]) == {
        f"{fs}|{a:g}|0" for fs, feats in training.FEATURE_SETS.items()
        for a in (training.ALPHA_GRID if feats else training.ALPHA_GRID[:1])}
    assert report["feature_set"] != "none"  # the relation is real: features beat a constant
    assert head.features == training.FEATURE_SETS[report["feature_set"]]
    assert report["alpha"] == head.alpha
    small = _ex(*_examples(4, 2, rng), artists=["a", "b", "c", "d"])
    _h, rep = training.select_head("vocal_to_mix_lu", small)
    assert rep["chosen_by"].startswith("default") and rep["alpha"] == training.DEFAULT_ALPHA
    assert rep["feature_set"] == "backing"


def test_numpy_inference_after_save_and_load_matches_training(tmp_path, rng):
    x, y, g = _examples(12, 3, rng)
    genres = ["Rock", "Pop", "Rap"] * 4
    ex = _ex(x, y, g, genres=genres)
    m, _ = training.fit_level_model(ex)
    assert set(m.genre_heads) == {"vocal_to_mix_lu"}
    m.save(tmp_path, {"note": "test"}, check_x=x[:5], check_genres=("Rock", "Pop"))
    loaded = level.LevelModel.load(tmp_path)
    for genre in (None, "Rock", "Rap", "other"):
        np.testing.assert_allclose(loaded.predict_matrix(x, genre), m.predict_matrix(x, genre),
                                   atol=1e-12)
    arrays, meta = level.FILES.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_matrix(arrays["check_x"]), arrays["check_y"],
                               atol=1e-12)
    np.testing.assert_allclose(loaded.predict_matrix(arrays["check_x"], "Pop"),
                               arrays["check_y_genre1"], atol=1e-12)
    assert meta["note"] == "test" and loaded.meta == meta
    assert json.loads((tmp_path / level.FILES.meta).read_text())["note"] == "test"
    # the genre changes the level prediction, not the LRA
    p_rock, p_none = m.predict(x, "Rock"), m.predict(x)
    assert not np.allclose(p_rock["vocal_to_mix_lu"], p_none["vocal_to_mix_lu"])
    np.testing.assert_array_equal(p_rock["vocal_lra_log_ratio"], p_none["vocal_lra_log_ratio"])


def test_missing_or_stale_weights_raise_model_error(tmp_path, rng):
    with pytest.raises(ModelError, match="no level model weights"):
        level.LevelModel.load(tmp_path / "empty")
    x, y, g = _examples(3, 3, rng)
    m, _ = training.fit_level_model(_ex(x, y, g))
    stale = level.LevelModel(m.heads, feature_version=FEATURE_VERSION - 1)
    stale.save(tmp_path / "stale", {})
    with pytest.raises(ModelError, match="stale"):
        level.LevelModel.load(tmp_path / "stale")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / level.FILES.weights).write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="unreadable"):
        level.LevelModel.load(tmp_path / "junk")


def test_genre_names_are_checked():
    assert level.normalise_genre(" pop/rock ") == "Pop/Rock"
    assert level.normalise_genre("HEAVY  METAL") == "Heavy Metal"
    assert level.normalise_genre("Other") == "other"
    assert level.normalise_genre(None) is None and level.normalise_genre("") is None
    with pytest.raises(ParamsError, match="unknown genre 'polka'.*Singer/Songwriter"):
        level.normalise_genre("polka")


def test_shipped_weights_load_reproduce_training_and_drive_estimate():
    m = level.shipped_model()
    arrays, meta = level.FILES.load()
    # numpy inference equals the predictions training computed for its own rows
    np.testing.assert_allclose(m.predict_matrix(arrays["check_x"]), arrays["check_y"],
                               atol=1e-9)
    for i, g in enumerate(arrays["check_genres"]):
        np.testing.assert_allclose(m.predict_matrix(arrays["check_x"], str(g)),
                                   arrays[f"check_y_genre{i}"], atol=1e-9)
    from importlib.resources import as_file, files

    with as_file(files("vocalmix").joinpath("assets", level.FILES.weights)) as p:
        assert p.stat().st_size < 200_000
    assert meta["feature_version"] == FEATURE_VERSION and meta["training_data"]
    assert meta["vocal_to_mix_measure"] == level.LEVEL_MEASURE == "singing"
    assert all(len(f["sha256"]) == 64 for s in meta["training_data"] for f in s["files"])
    from vocalmix.training.data import MUSDB18_TEST_SONGS

    assert not {s["song"] for s in meta["training_data"]} & MUSDB18_TEST_SONGS
    cv = meta["cross_validated"]
    assert "grouped by artist" in cv["protocol"] and cv["repeats"] >= 3
    v, b = synthesize_song(sample_rate=SR, duration_s=8.0, seed=0)
    params, notes = pipeline.choose_targets(v, b, SR, "model")
    assert params.provenance.method == "model"
    assert params.targets.vocal_to_mix_measure == "singing"
    assert -20 <= params.targets.vocal_to_mix_lu <= -0.5
    assert 1 <= params.targets.vocal_lra_lu <= 30
    assert any(n.startswith("model: vocal-to-mix") for n in notes)
    with_genre, notes = pipeline.choose_targets(v, b, SR, "model", genre="heavy metal")
    assert any("genre 'Heavy Metal'" in n for n in notes)
    assert with_genre.targets.vocal_to_mix_lu != params.targets.vocal_to_mix_lu


def test_shipped_metadata_hashes_match_the_shared_training_songs():
    from vocalmix.training.data import file_hash

    root = require_data("musdb18-7s", "train")
    meta = level.shipped_model().meta
    checked = 0
    for s in meta["training_data"]:
        for f in s["files"]:
            p = root / f["name"]
            if p.exists():
                assert file_hash(p, use_memo=False) == f["sha256"], p
                checked += 1
    assert checked == 88, "the shipped model was not trained on the 88 shared songs"


def test_model_runs_on_real_raw_karaoke_takes():
    """MIR-1K's amateur takes (16 kHz) are no level targets, but they are realistic raw
    input: the model must give valid targets for them."""
    from vocalmix.training.data import find_songs, load_song

    root = require_data("karaoke", "mir1k")
    m = level.shipped_model()
    for s in find_songs([root])[:40:10]:
        v, b, sr = load_song(s)
        p = level.predict_song(m, v, b, sr)
        assert np.isfinite(p.vocal_to_mix_lu) and np.isfinite(p.vocal_lra_lu)
        assert -20 < p.vocal_to_mix_lu < 0 and 0 <= p.vocal_lra_lu < 30
