"""The estimator registry (vocalmix.estimators.registry), the model method's fallback in
the pipeline, and the one loader of shipped weights (vocalmix.estimators.weights)."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix import pipeline
from vocalmix.core.errors import ModelError, ParamsError
from vocalmix.estimators import eq, level, registry, reverb
from vocalmix.estimators.features import FEATURE_NAMES
from vocalmix.estimators.weights import ModelFiles
from vocalmix.synth import synthesize_song
from vocalmix.training.level import fit_head, song_weights

SR = 22050


def _level_model(rng: np.random.Generator, meta: dict | None = None) -> level.LevelModel:
    x = rng.normal(size=(9, len(FEATURE_NAMES)))
    y = np.stack([-3.0 + 0.1 * x[:, 0], 0.05 * x[:, 1]], 1)
    g = np.repeat(np.arange(3), 3)
    h = {t: fit_head(t, x, y[:, j], song_weights(g), 1.0) for j, t in enumerate(level.TARGETS)}
    return level.LevelModel(h, meta=meta or {})


def _missing():
    raise ModelError("no level model weights in the package; train them")


def test_fallback_to_the_baseline_when_level_weights_are_missing(monkeypatch):
    monkeypatch.setattr(level, "shipped_model", _missing)
    assert registry.default_method() == "baseline"
    v, b = synthesize_song(sample_rate=SR, duration_s=5.0, seed=0)
    with pytest.raises(ModelError):
        registry.estimate(v, b, SR, "model")
    params, notes = pipeline.choose_targets(v, b, SR, "model")
    assert params.provenance.method == "baseline"
    assert any("no level model weights" in n and "fell back to the baseline" in n
               for n in notes)
    # the fallback gives exactly the baseline's targets
    base, _ = pipeline.choose_targets(v, b, SR, "baseline")
    assert params.targets == base.targets and params.vocal == base.vocal


@pytest.mark.parametrize("error", [AttributeError("a bug"), ImportError("a typo"),
                                   KeyError("a bug")])
def test_a_bug_in_the_model_method_is_not_a_fallback(monkeypatch, rng, error):
    """Only ModelError means "model unavailable"; any other exception propagates."""
    monkeypatch.setattr(level, "shipped_model", lambda: _level_model(rng))

    def broken(ctx):
        raise error

    monkeypatch.setattr(registry, "PROVIDERS", [("level", broken, True)])
    v, b = synthesize_song(sample_rate=SR, duration_s=5.0, seed=1)
    with pytest.raises(type(error)):
        pipeline.choose_targets(v, b, SR, "model")


def test_optional_providers_are_skipped_with_a_note(monkeypatch, rng):
    monkeypatch.setattr(level, "shipped_model", lambda: _level_model(rng))

    def eq_provider(ctx):
        raise ModelError("EQ weights missing")

    monkeypatch.setattr(registry, "PROVIDERS",
                        [registry.PROVIDERS[0], ("eq", eq_provider, False)])
    v, b = synthesize_song(sample_rate=SR, duration_s=6.0, seed=4)
    params, notes = registry.estimate(v, b, SR, "model")
    assert params.provenance.method == "model"
    assert any(n.startswith("eq: EQ weights missing; kept the baseline's choice")
               for n in notes)
    assert any(n.startswith("model: vocal-to-mix") for n in notes)
    # the baseline's masking EQ, skipped while the EQ provider might replace it, is back
    base, _ = pipeline.choose_targets(v, b, SR, "baseline")
    assert params.vocal.eq_bands == base.vocal.eq_bands
    assert params.vocal.highpass == base.vocal.highpass
    by_path = {r.path: r for r in params.reasons}
    assert by_path["vocal.eq_bands"] == next(r for r in base.reasons
                                             if r.path == "vocal.eq_bands")


def test_the_model_method_analyses_the_baseline_masking_only_when_it_keeps_it(monkeypatch):
    """The EQ provider replaces the baseline's masking EQ: its analysis of the uncorrected
    vocal is not run; the high-pass and its reason are the EQ provider's."""
    from vocalmix.estimators import baseline

    calls = []
    real = baseline.masking_analysis
    monkeypatch.setattr(baseline, "masking_analysis",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    v, b = synthesize_song(sample_rate=SR, duration_s=6.0, seed=4)
    params, _notes = registry.estimate(v, b, SR, "model")
    assert not calls
    hp = [r for r in params.reasons if r.path == "vocal.highpass"]
    assert len(hp) == 1
    assert f"{params.vocal.highpass.cutoff_frequency_hz:.0f} Hz" in hp[0].text
    assert any(r.path == "vocal.eq_bands" and r.source == "model" for r in params.reasons)
    baseline_params, _ = registry.estimate(v, b, SR, "baseline")
    assert calls  # the baseline method still analyses it


def test_missing_dynamics_weights_keep_the_baseline_compressor_target(monkeypatch):
    """The dynamics model's analysis runs ahead on the second thread; its ModelError
    still reaches the provider, which keeps the baseline's choice with a note."""
    from vocalmix.estimators import dynamics

    def missing():
        raise ModelError("no dynamics model weights")

    monkeypatch.setattr(dynamics, "shipped_model", missing)
    v, b = synthesize_song(sample_rate=SR, duration_s=6.0, seed=5)
    params, notes = registry.estimate(v, b, SR, "model")
    assert params.provenance.method == "model"
    assert params.targets.vocal_momentary_range_lu is None
    assert any(n.startswith("dynamics: no dynamics model weights; kept the baseline's")
               for n in notes)


def test_unknown_method_is_a_params_error():
    v, b = synthesize_song(sample_rate=SR, duration_s=3.0, seed=2)
    with pytest.raises(ParamsError, match="unknown method 'magic'"):
        registry.estimate(v, b, SR, "magic")
    with pytest.raises(ParamsError, match="unknown method 'magic'"):
        pipeline.choose_targets(v, b, SR, "magic")


def _summary(model: float, rule: float, constant: float = 1.0) -> dict:
    return {"cross_validated": {"summary": {
        m: {"vocal_to_mix_lu": {"mae": v}}
        for m, v in (("model", model), ("rule", rule), ("constant", constant))}}}


@pytest.mark.parametrize("meta, expected", [
    (_summary(0.9, 1.2), "model"),
    (_summary(1.3, 1.2), "baseline"),  # the rule measures better
    (_summary(1.2, 1.2), "baseline"),  # a tie keeps the rule
    (_summary(1.1, 1.2, constant=1.0), "model"),  # a constant is no method one can run
    (_summary(float("nan"), 1.2), "baseline"),
    ({"cross_validated": {"summary": {"model": {}}}}, "baseline"),
    ({}, "baseline"),  # no cross-validated figures
])
def test_default_method_is_the_runnable_method_that_measures_best(monkeypatch, rng, meta,
                                                                  expected):
    monkeypatch.setattr(level, "shipped_model", lambda: _level_model(rng, meta))
    assert registry.default_method() == expected


def test_default_method_reads_the_shipped_cross_validated_figures():
    s = level.shipped_model().meta["cross_validated"]["summary"]
    best = min(("baseline", "model"),
               key=lambda m: (s[registry.RUNNABLE[m]]["vocal_to_mix_lu"]["mae"], m != "baseline"))
    assert registry.default_method() == best


# --- the weights loader --------------------------------------------------------------------

FILES = ModelFiles("test model", "t.npz", "t.json", "level")


def test_weight_files_round_trip(tmp_path):
    FILES.save(tmp_path, {"a": np.arange(3.0)}, {"seed": 1}, compressed=True)
    arrays, meta = FILES.load(tmp_path)
    np.testing.assert_array_equal(arrays["a"], [0.0, 1.0, 2.0])
    assert meta == {"seed": 1}


def test_every_unusable_file_is_a_model_error_that_says_how_to_retrain(tmp_path):
    retrain = "vocalmix train --only level --data DIR -o MODELDIR"
    with pytest.raises(ModelError, match=r"no test model weights .*t\.npz is missing") as e:
        FILES.load(tmp_path)
    assert retrain in str(e.value)
    FILES.save(tmp_path, {"a": np.arange(1000.0)}, {"seed": 1})
    (tmp_path / "t.json").unlink()
    with pytest.raises(ModelError, match=r"no test model weights .*t\.json is missing"):
        FILES.load(tmp_path)
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        FILES.load(tmp_path)
    (tmp_path / "t.json").write_text("{}")
    data = (tmp_path / "t.npz").read_bytes()
    for damaged in (b"", data[: len(data) // 2], b"PK\x03\x04junk", b"not an npz"):
        (tmp_path / "t.npz").write_bytes(damaged)
        with pytest.raises(ModelError, match="unreadable") as e:
            FILES.load(tmp_path)
        assert retrain in str(e.value)


def test_every_shipped_model_loads_and_names_a_real_retrain_command():
    from vocalmix.estimators import dynamics
    from vocalmix.training.train import MODEL_KINDS

    for model in (level, eq, dynamics, reverb):
        m = model.shipped_model()
        assert m.meta, model.__name__
    assert sorted(m.FILES.only for m in (level, eq, dynamics, reverb)) == sorted(MODEL_KINDS)


def test_a_take_shorter_than_one_excerpt_is_noted_and_a_longer_one_is_not():
    """The level and dynamics models learned from excerpts of level.EXCERPT_S seconds: a
    shorter take's targets say they rest on little; a take of one excerpt or more has no
    such note."""
    for seconds, noted in ((2.0, True), (level.EXCERPT_S + 1.0, False)):
        v, b = synthesize_song(sample_rate=SR, duration_s=seconds, seed=6)
        _params, notes = registry.estimate(v, b, SR, "model")
        short = [n for n in notes if "shorter than one of the" in n]
        assert bool(short) == noted, (seconds, notes)
        if noted:
            assert f"{seconds:.1f} s long" in short[0]
            assert "targets.vocal_to_mix_lu" in short[0]


def test_an_assumed_tempo_is_called_assumed_in_every_note_and_reason():
    """A backing too short for a tempo gets the default tempo, and the baseline's note
    and reason, and the reverb model's note, say it was assumed, not read; a backing
    with a clear tempo reads as before."""
    from vocalmix.estimators import baseline

    v, b = synthesize_song(sample_rate=SR, duration_s=3.0, seed=6)
    params, _ = baseline.estimate(v, b, SR)
    default = baseline.BaselineConfig().default_tempo_bpm
    assert params.provenance.notes == (
        f"backing tempo unclear (too short to read, or no steady pulse): {default:.0f} BPM "
        f"assumed -> reverb decay {params.targets.reverb_decay_s:.2f} s",)
    why = next(r for r in params.reasons if r.path == "targets.reverb_decay_s")
    assert "(assumed: no clear tempo)" in why.text
    got = reverb.predict_reverb(reverb.shipped_model(), b, SR)
    assert got["tempo_found"] is False and got["tempo_bpm"] == default

    v, b = synthesize_song(sample_rate=SR, duration_s=12.0, seed=5)
    params, a = baseline.estimate(v, b, SR)
    assert a.tempo_found
    assert params.provenance.notes == (
        f"backing tempo {a.tempo_bpm:.1f} BPM -> reverb decay "
        f"{params.targets.reverb_decay_s:.2f} s",)
    why = next(r for r in params.reasons if r.path == "targets.reverb_decay_s")
    assert "assumed" not in why.text
