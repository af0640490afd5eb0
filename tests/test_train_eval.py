"""Training and cross-validation of the level model (vocalmix.training.level) and the
``train`` and ``evaluate`` commands, on synthetic MUSDB18-HQ folders made here; the slow
tests reproduce the shipped weights and their cross-validated figures from the shared
data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.errors import DataError
from vocalmix.core.measure import integrated_loudness, loudness_range, vocal_to_mix_lu
from vocalmix.estimators import level
from vocalmix.estimators.features import FEATURE_VERSION
from vocalmix.frontends.cli import main
from vocalmix.synth import synthesize_song

from conftest import (
    assert_shipped_model_files,
    require_data,
    same_within_rounding,
)

SR = 22050
# (split, artist, vocal gain dB, genre): artist B has two songs, which must stay together
SONGS = (("train", "A", -6.0, "Rock"), ("train", "B", 0.0, "Pop"), ("train", "B", -3.0, "Pop"),
         ("train", "C", -9.0, "Heavy Metal"), ("train", "D", -1.0, "Jazz"),
         ("test", "E", -2.0, ""))


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """One feature cache for this module's synthetic songs (records with the same
    settings are computed once), none of the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOCALMIX_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def musdb(tmp_path_factory) -> Path:
    """A MUSDB18-HQ-shaped root: train/ and test/ song folders of separate stems, each
    song mixed at its own vocal level, and a catalogue with the genres."""
    root = tmp_path_factory.mktemp("musdb18hq")
    lines = ["song,genre,source,licence"]
    for i, (split, artist, gain_db, genre) in enumerate(SONGS):
        name = f"Artist {artist} - Song {i}"
        d = root / split / name
        d.mkdir(parents=True)
        v, b = synthesize_song(sample_rate=SR, duration_s=6.5, seed=10 + i,
                               tempo_bpm=90 + 10 * i)
        v = v * np.float32(10 ** (gain_db / 20))
        sf.write(d / "vocals.wav", v, SR)
        sf.write(d / "drums.wav", 0.5 * b, SR)
        sf.write(d / "bass.wav", 0.25 * b, SR)
        sf.write(d / "other.wav", 0.25 * b, SR)
        sf.write(d / "mixture.wav", v + b, SR)
        if genre:
            lines.append(f"{name},{genre},synthetic,none")
    (root / "tracks.csv").write_text("\n".join(lines) + "\n")
    return root


def test_the_same_fit_saved_twice_writes_identical_files(musdb, tmp_path):
    import vocalmix.training.level as tl

    ex = tl.build_examples(tl.level_songs([str(musdb)]), seed=1, augment=1, draws=1)
    for d in ("a", "b"):
        m, choice = tl.fit_level_model(ex, seed=1)
        m.save(tmp_path / d, tl.training_metadata(ex, choice, 1, 1, None),
               check_x=ex.x[:3], check_genres=("Pop",))
    for f in (level.FILES.weights, level.FILES.meta):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    meta = json.loads((tmp_path / "a" / level.FILES.meta).read_text())
    assert "date" not in meta and str(tmp_path) not in json.dumps(meta)


@pytest.mark.slow
def test_training_twice_writes_identical_files_with_provenance(musdb, tmp_path):
    from vocalmix.training.level import train_level_model

    m1, meta = train_level_model([str(musdb)], tmp_path / "m1", seed=1, augment=1,
                                 repeats=2, draws=1)
    assert meta["n_songs"] == 5 and meta["n_artists"] == 4  # the test-split song left out
    assert meta["feature_version"] == FEATURE_VERSION and meta["seed"] == 1
    assert meta["vocal_to_mix_measure"] == "singing"
    assert {s["genre"] for s in meta["training_data"]} == {"Rock", "Pop", "Heavy Metal",
                                                           "Jazz"}
    names = {f["name"] for s in meta["training_data"] for f in s["files"]}
    assert names == {"vocals.wav", "drums.wav", "bass.wav", "other.wav"}  # no mixture
    assert meta["cross_validated"]["repeats"] == 2
    loaded = level.LevelModel.load(tmp_path / "m1")
    arrays, _meta = level.FILES.load(tmp_path / "m1")
    np.testing.assert_allclose(loaded.predict_matrix(arrays["check_x"]), arrays["check_y"],
                               atol=1e-12)
    # again, without the cache: byte-identical files; another seed: other weights
    train_level_model([str(musdb)], tmp_path / "m2", seed=1, augment=1, repeats=2, draws=1,
                      use_cache=False)
    for f in (level.FILES.weights, level.FILES.meta):
        assert (tmp_path / "m1" / f).read_bytes() == (tmp_path / "m2" / f).read_bytes(), f
    m3, _ = train_level_model([str(musdb)], tmp_path / "m3", seed=2, augment=1, draws=1,
                              cross_validate_=False)
    assert not np.array_equal(m3.heads["vocal_to_mix_lu"].coef,
                              m1.heads["vocal_to_mix_lu"].coef)


def test_records_hold_measured_truths_and_perturbed_inputs(musdb):
    from vocalmix.estimators.features import FEATURE_NAMES
    from vocalmix.training.data import find_songs, load_song
    from vocalmix.training.level import place, song_record

    song = find_songs([musdb])[0]
    assert song.genre == "Rock" and dict(song.provenance)["source"] == "synthetic"
    rec = song_record(song, seed=0, augment=2, draws=2)  # cached for the tests below
    v, b, sr = load_song(song)
    iv, ib = integrated_loudness(v, sr), integrated_loudness(b, sr)
    assert rec.truth["vocal_to_backing_lu"] == pytest.approx(iv - ib, abs=1e-9)
    assert rec.truth["vocal_to_mix_integrated_lu"] == pytest.approx(
        iv - integrated_loudness(v + b, sr), abs=1e-9)
    assert rec.truth["vocal_to_mix_lu"] == pytest.approx(
        vocal_to_mix_lu(v, b, sr, "singing"), abs=1e-9)
    assert rec.truth["vocal_lra_lu"] == pytest.approx(loudness_range(v, sr), abs=1e-9)
    assert rec.x.shape[1] == len(FEATURE_NAMES) and len(rec.x) % 2 == 0
    # two perturbed copies of one excerpt share their targets, not their vocal features
    assert rec.y[0, 0] == rec.y[1, 0]
    assert rec.x[0, FEATURE_NAMES.index("v_lra_lu")] != rec.x[1, FEATURE_NAMES.index("v_lra_lu")]
    assert sorted(set(rec.test_draw.tolist())) == [0, 1] and len(rec.test_lra_in) == 2
    # placing the human balance on the stems needs no gain and gives the truths back
    p = place(rec, rec.truth["vocal_to_mix_lu"], "singing")
    assert p["gain_db"] == pytest.approx(0.0, abs=1e-4)
    assert p["vocal_to_backing_lu"] == pytest.approx(rec.truth["vocal_to_backing_lu"], abs=1e-3)
    # the rule's placement: -3 LU integrated, exactly as libebur128 measures the stems
    p = place(rec, -3.0, "integrated")
    g = np.float32(10 ** (p["gain_db"] / 20))
    assert integrated_loudness(g * v, sr) - integrated_loudness(g * v + b, sr) == \
        pytest.approx(-3.0, abs=0.02)
    assert p["vocal_to_mix_lu"] == pytest.approx(vocal_to_mix_lu(g * v, b, sr, "singing"),
                                                 abs=0.02)


def test_cross_validation_never_trains_on_a_held_out_artist(musdb):
    import vocalmix.training.level as tl

    ex = tl.build_examples(tl.level_songs([str(musdb)]), seed=1, augment=1, draws=1)
    seen = []

    def spy(sub, seed):
        seen.append({s.song_id for s in sub.songs})
        return tl.fit_level_model(sub, seed)[0]

    res = tl.cross_validate(ex, repeats=3, n_folds=3, seed=0, fit=spy)
    assert len(seen) == 9 and len(res["rows"]) == 3
    ids = {s.song_id for s in ex.songs}
    artist = {s.song_id: s.artist for s in ex.songs}
    for r, folds in enumerate(res["folds"]):
        assert sorted(sum(folds, [])) == sorted(ids)  # every song tested once per repeat
        for k, test in enumerate(folds):
            train = seen[3 * r + k]
            assert train == ids - set(test)
            assert not {artist[s] for s in train} & {artist[s] for s in test}
        assert [len(rows) for rows in res["rows"]] == [5, 5, 5]
    for rows in res["rows"]:
        for row in rows:
            assert row["predicted"]["rule"]["target_lu"] == -3.0
            for m, p in row["predicted"].items():
                for k in tl.KEYS:
                    assert row["error"][m][k] == pytest.approx(p[k] - row["human"][k])
    s = res["summary"]["model"]["vocal_to_mix_lu"]
    assert {"mae", "median_ae", "corr", "spread_ratio", "mae_sd"} <= set(s)
    assert set(res["summary"]["model"]["by_genre"]) == {"Rock", "Pop", "Heavy Metal", "Jazz"}


def test_evaluate_reports_the_test_split_apart_and_needs_two_songs(musdb, tmp_path):
    from vocalmix.training.level import evaluate_level_model

    res = evaluate_level_model([str(musdb)], seed=1, augment=1, draws=1, repeats=2,
                               n_folds=2, with_sensitivity=False)
    assert res["n_songs"] == 5
    assert [r["song"] for r in res["test_split"]["rows"]] == ["Artist E - Song 5"]
    assert "Artist E - Song 5" not in {r["song"] for r in res["rows"][0]}
    with pytest.raises(DataError, match="outside MUSDB18's test split"):
        evaluate_level_model([str(musdb / "test")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no songs with vocal and backing"):
        evaluate_level_model([str(tmp_path / "empty")])


@pytest.mark.slow
def test_cli_train_and_evaluate(musdb, tmp_path, capsys):
    assert main(["train", "--data", str(musdb), "-o", str(tmp_path / "m"), "-q",
                 "--augment", "1", "--no-cv", "--only", "level"]) == 0
    assert "trained on 5 song(s)" in capsys.readouterr().out
    assert (tmp_path / "m" / "level_model.npz").exists()
    assert main(["evaluate", "--data", str(musdb), "--report", str(tmp_path / "r"), "-q",
                 "--augment", "1", "--draws", "1", "--repeats", "2", "--folds", "2",
                 "--seed", "1", "--no-sensitivity"]) == 0
    out = capsys.readouterr().out
    assert "| model (`--method model`) |" in out and "**5 professionally mixed songs**" in out
    assert "| MAE / constant's MAE | <= 0.85 |" in out
    for png in ("scatter.png", "errors.png"):
        assert (tmp_path / "r" / png).stat().st_size > 5000
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["n_songs"] == 5 and res["repeats"] == 2
    assert main(["train", "--data", str(tmp_path / "nothing"), "-o", str(tmp_path / "x"),
                 "-q"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_train_checks_its_outputs_before_it_trains(musdb, tmp_path, capsys, monkeypatch):
    # an -o that is a file failed at the end of the training (an hour, with the reverb
    # model) as an internal error, and an earlier run's models were replaced without a word
    import vocalmix.training.train as train

    def never(*_a, **_k):
        raise AssertionError("trained before its outputs were checked")

    monkeypatch.setattr(train, "train_level_model", never)
    (tmp_path / "file").write_text("not a folder")
    assert main(["train", "--data", str(musdb), "-o", str(tmp_path / "file"), "-q",
                 "--only", "level"]) == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "level_model.json").write_text("an earlier run's")
    assert main(["train", "--data", str(musdb), "-o", str(tmp_path / "m"), "-q",
                 "--only", "level"]) == 2
    assert "level_model.json: already exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "m" / "level_model.json").read_text() == "an earlier run's"


def test_estimate_command_with_the_model_method_and_a_genre(musdb, tmp_path, capsys):
    song = musdb / "test" / "Artist E - Song 5"
    out = tmp_path / "p.json"
    assert main(["estimate", str(song / "vocals.wav"), str(song / "mixture.wav"), "-o",
                 str(out), "--method", "model", "--genre", "rap", "-q"]) == 0
    doc = json.loads(out.read_text())
    assert doc["provenance"]["method"] == "model"
    assert doc["targets"]["vocal_to_mix_measure"] == "singing"
    assert any("genre 'Rap'" in n for n in doc["provenance"]["notes"])
    assert main(["estimate", str(song / "vocals.wav"), str(song / "mixture.wav"), "-o",
                 str(tmp_path / "q.json"), "--genre", "polka", "-q"]) != 0
    assert "unknown genre 'polka'" in capsys.readouterr().err


# --- the shared data (slow) ------------------------------------------------------------


@pytest.fixture
def real_cache(monkeypatch):
    """The user's feature cache, so that a second run takes seconds."""
    monkeypatch.delenv("VOCALMIX_CACHE", raising=False)


@pytest.mark.slow
def test_train_reproduces_the_shipped_weights(tmp_path, real_cache):
    """``vocalmix train --only level --data <shared data>`` writes the shipped files: the
    same arrays and metadata to the numeric libraries' rounding (:data:`RETRAIN_RTOL`;
    bit for bit in the environment that trained them, and twice in a row anywhere, see
    the tests above). 6 min with an empty feature cache, seconds with it."""
    root = require_data()
    require_data("musdb18-7s", "train")
    assert main(["train", "--only", "level", "--data", str(root), "-o", str(tmp_path),
                 "-q", "-j", "2"]) == 0
    assert_shipped_model_files(tmp_path, level.FILES.weights, level.FILES.meta)


def test_the_retrain_comparison_is_not_vacuous():
    shipped = {"mae": 1.2617599770004049, "genres": ["Pop", "Rap"], "n": 88}
    assert same_within_rounding(dict(shipped, mae=1.261759977034109), shipped) == []
    assert same_within_rounding(dict(shipped, mae=1.2618), shipped) != []
    assert same_within_rounding(dict(shipped, genres=["Pop"]), shipped) != []
    assert same_within_rounding(dict(shipped, n=87), shipped) != []


@pytest.mark.slow
def test_evaluate_reproduces_the_shipped_cross_validated_figures(real_cache):
    from vocalmix.training.level import evaluate_level_model

    root = require_data()
    require_data("musdb18-7s", "train")
    res = evaluate_level_model([str(root)], with_sensitivity=False, jobs=2)
    shipped = level.shipped_model().meta["cross_validated"]["summary"]
    for m in ("rule", "constant", "model", "model+genre"):
        for k in ("mae", "corr", "spread_ratio"):
            assert res["summary"][m]["vocal_to_mix_lu"][k] == pytest.approx(
                shipped[m]["vocal_to_mix_lu"][k], abs=1e-9), (m, k)
    assert res["n_songs"] == 88 and len(res["test_split"]["rows"]) == 3


def test_evaluate_passes_its_seed_to_the_eq_and_dynamics_evaluations(tmp_path, monkeypatch,
                                                                       capsys):
    # --seed reached the level and reverb evaluations only: the EQ and dynamics reports of
    # --seed 0 and --seed 7 were the same bytes, both "seeds 0, 1, 2"
    import vocalmix.training.dynamics as dynamics
    import vocalmix.training.eq as eq
    import vocalmix.training.reports as reports

    seen: list[tuple[str, object]] = []

    def evaluation(kind):
        def run(_data, *, progress=None, seed=None):
            seen.append((kind, seed))
            return {}
        return run

    def report(_res, out):
        out.mkdir(parents=True, exist_ok=True)
        (out / "r.md").write_text("report")
        return out / "r.md"

    monkeypatch.setattr(eq, "evaluate_eq", evaluation("eq"))
    monkeypatch.setattr(dynamics, "evaluate_dynamics", evaluation("dynamics"))
    monkeypatch.setattr(reports, "write_eq_report", report)
    monkeypatch.setattr(reports, "write_dynamics_report", report)
    for extra, want in (([], None), (["--seed", "7"], 7)):
        assert main(["evaluate", "--eq", "--dynamics", "--data", str(tmp_path), "--report",
                     str(tmp_path / "r"), "-q", *extra]) == 0
        assert seen[-2:] == [("eq", want), ("dynamics", want)]
    capsys.readouterr()


def test_a_report_is_written_whole_or_not_at_all(musdb, tmp_path, monkeypatch):
    # the files went straight onto their names, results first: a full disk while a plot
    # was saved left the new results beside the old report
    import matplotlib.figure

    from vocalmix.training import reports
    from vocalmix.training.level import evaluate_level_model

    out = tmp_path / "r"
    out.mkdir()
    (out / "results.json").write_text('{"old": true}\n')
    (out / "report.md").write_text("OLD REPORT\n")
    res = evaluate_level_model([str(musdb)], augment=1, draws=1, repeats=1, n_folds=2,
                               with_sensitivity=False)
    real = matplotlib.figure.Figure.savefig

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    with pytest.raises(OSError):
        reports.write_level_report(res, out)
    assert (out / "results.json").read_text() == '{"old": true}\n'
    assert (out / "report.md").read_text() == "OLD REPORT\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "results.json"]
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", real)
    assert reports.write_level_report(res, out) == out / "report.md"
    assert "old" not in json.loads((out / "results.json").read_text())
    assert {"scatter.png", "errors.png"} <= {p.name for p in out.iterdir()}
