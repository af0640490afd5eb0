"""The vocal processing of ``--method model``: dynamics to a momentary loudness range with
the engineers' compressor, the delay send and de-esser choices, structured reasons, the
engineers' prior, and reproducible training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.measure import loudness_range, momentary_loudness_range
from vocalmix.core.params import Compressor, Delay, MixParams
from vocalmix.core.render import compressor_stage
from vocalmix.core.resolve import CompressorProxy, resolve_compressor
from vocalmix.estimators import registry, vocalprior
from vocalmix.synth import synthesize_song

from conftest import require_data

SR = 44100


def _dynamic_vocal(seed: int = 2, seconds: float = 8.0) -> np.ndarray:
    """A synthetic vocal whose phrases are 6 dB apart, plus syllable-rate swells."""
    v, _b = synthesize_song(sample_rate=SR, duration_s=seconds, seed=seed)
    t = np.arange(len(v)) / SR
    ride = 10 ** ((3.0 * np.sign(np.sin(2 * np.pi * 0.25 * t)) +
                   2.0 * np.sin(2 * np.pi * 3.0 * t)) / 20)
    return (v * ride[:, None]).astype(np.float32)


def test_momentary_range_is_lra_recipe_on_400ms_windows():
    x = _dynamic_vocal()
    proxy = CompressorProxy.of(x, SR)
    unity = proxy.statistic(np.array([0.0]), 1.0, "momentary_range")[0]
    assert unity == pytest.approx(momentary_loudness_range(x, SR), abs=0.15)
    assert momentary_loudness_range(x, SR) > loudness_range(x, SR)  # finer scale, wider


def test_resolver_reaches_a_momentary_range_and_leaves_a_vocal_inside_alone():
    x = _dynamic_vocal()
    base = Compressor(ratio=3.3, attack_ms=8.2, release_ms=753.0)
    before = momentary_loudness_range(x, SR)
    target = before - 3.0
    sol = resolve_compressor(x, SR, target, base, statistic="momentary_range")
    assert sol.statistic == "momentary_range" and sol.input_value == pytest.approx(before)
    got = momentary_loudness_range(compressor_stage(x, SR, sol.compressor), SR)
    assert got == pytest.approx(target, abs=0.35)
    assert sol.compressor.attack_ms == 8.2 and sol.compressor.release_ms == 753.0
    inside = resolve_compressor(x, SR, before + 0.5, base, statistic="momentary_range")
    assert inside.compressor.ratio == 1.0 and inside.renders == 0
    assert "already at or below" in inside.note


def test_engineers_times_are_converted_to_pedalboard_time_constants():
    """DiffVox's ms are 2.2 time constants of the gain smoother; JUCE's are 2 pi time
    constants: the same time constant tau is 2.2 tau ms there and 2 pi tau ms here."""
    tau = 3.7
    assert vocalprior.juce_ms_from_diffvox(2.2 * tau) == pytest.approx(2 * math.pi * tau)
    e = vocalprior.engineers()
    assert e.n_presets == 435 and 3.0 < e.comp_ratio.p50 < 3.6
    assert 0.5 < e.delay_fraction < 0.65 and -23 < e.delay_level_db.p50 < -21
    assert len(e.eq_shape_db["p95"]) == 21 and e.band_decay_ratios[3] == 1.0


@pytest.mark.parametrize("tempo,want", [(120.0, 241.5), (90.0, 241.5), (150.0, 241.5)])
def test_delay_note_is_the_note_value_nearest_the_engineers_time(tempo, want):
    note, ms = registry.choose_delay_note(tempo, want)
    assert ms == pytest.approx(Delay(note=note, tempo_bpm=tempo).note_ms(), abs=1e-9)
    others = [Delay(note=n, tempo_bpm=tempo).note_ms() for n in registry._SYNC_NOTES]
    assert abs(math.log(ms / want)) <= min(abs(math.log(o / want)) for o in others) + 1e-12


def test_model_method_lands_every_choice_in_the_params_with_a_reason():
    from vocalmix.pipeline import mix

    v, b = synthesize_song(sample_rate=SR, duration_s=8.0, seed=6)
    params, _r, est = mix(v, b, SR, method="model")
    why = {r.path: r for r in params.reasons}
    for path in ("vocal.eq_bands", "vocal.deesser", "targets.vocal_momentary_range_lu",
                 "vocal.compressor", "vocal.reverb", "vocal.delay"):
        assert path in why and why[path].text, path
    t = params.targets
    assert t.vocal_momentary_range_lu is not None
    e = vocalprior.engineers()
    c = params.vocal.compressor
    assert c.attack_ms == pytest.approx(vocalprior.juce_ms_from_diffvox(e.attack_ms.p50),
                                        abs=0.1)
    assert c.release_ms == pytest.approx(vocalprior.juce_ms_from_diffvox(e.release_ms.p50),
                                         abs=1.0)
    d = params.vocal.delay
    if d.enabled:  # tempo-synced: the time is the note's length at the tempo, within 1 ms
        assert d.note != "free" and abs(d.time_ms - d.note_ms()) < 1.0
        assert d.wet_level_db == pytest.approx(e.delay_level_db.p50, abs=0.05)
    assert params.achieved.vocal_momentary_range_lu is not None
    again = MixParams.from_json(params.to_json())
    assert again.reasons == params.reasons and again.vocal == params.vocal
    assert any(n.startswith("dynamics model:") for n in est.notes)


@pytest.mark.slow
def test_a_finished_vocal_keeps_its_loudness_range_through_the_model():
    """A professionally mixed 30 s vocal (MUSDB18 test split: never trained on) fed in as
    the vocal: the model method's compressor leaves its LRA within 1 LU."""
    from vocalmix.pipeline import mix

    folder = require_data("stems", "Cristina Vane - So Easy")
    v, sr = sf.read(folder / "vocals.mp3", dtype="float32")
    b, _ = sf.read(folder / "accompaniment.mp3", dtype="float32")
    n = min(len(v), len(b))
    v, b = v[:n], b[:n]
    params, rendered, _est = mix(v, b, sr, method="model")
    before = loudness_range(v, sr)
    after = loudness_range(rendered.vocal_dry, sr)
    assert abs(after - before) <= 1.0, (before, after, params.vocal.compressor)


def _manifest(tmp_path, n_artists: int = 3, per_artist: int = 2) -> str:
    """A manifest of synthetic 'mixed' songs by several artists."""
    rows = ["song,vocal,backing"]
    for a in range(n_artists):
        for k in range(per_artist):
            v, b = synthesize_song(sample_rate=SR, duration_s=6.0, seed=100 * a + k)
            v = (v * (0.5 + 0.2 * a)).astype(np.float32)
            sid = f"Artist {a} - Song {k}"
            sf.write(tmp_path / f"v{a}{k}.wav", v, SR, subtype="FLOAT")
            sf.write(tmp_path / f"b{a}{k}.wav", b, SR, subtype="FLOAT")
            rows.append(f"{sid},v{a}{k}.wav,b{a}{k}.wav")
    p = tmp_path / "manifest.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(p)


@pytest.mark.slow
def test_training_twice_writes_identical_files(tmp_path):
    """``vocalmix train`` of the corrective EQ and the dynamics model twice on the same
    songs writes byte-identical weights and metadata."""
    from vocalmix.frontends.cli import main

    data = _manifest(tmp_path)
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["train", "--data", data, "-o", str(out), "--only", "eq", "--only",
                     "dynamics", "-q"]) == 0
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == ["dynamics_model.json", "dynamics_model.npz", "eq_model.json",
                     "eq_model.npz"]
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_dynamics_songs_past_the_memory_budget_are_decoded_again_to_the_same_model(
        tmp_path, monkeypatch):
    """The dynamics trainer held every song's decoded stems at once (about 17 GB for a
    whole MUSDB18-HQ). Songs past ``HELD_BYTES`` are decoded again where they are used:
    the same model and evaluation as with every song held, and with none held."""
    import vocalmix.training.dynamics as dynamics

    data = [_manifest(tmp_path, n_artists=3, per_artist=1)]
    decodes = []
    real_load = dynamics.Song.audio

    def counting(self):
        decodes.append(self.held is None)
        return real_load(self)

    monkeypatch.setattr(dynamics.Song, "audio", counting)
    results = []
    for budget in (1 << 40, 0):
        monkeypatch.setattr(dynamics, "HELD_BYTES", budget)
        songs = dynamics.load_songs(data)
        assert all((s.held is None) == (budget == 0) for s in songs)
        model, meta = dynamics.train_dynamics(data, None, songs=songs)
        results.append((model.coef, model.intercept, meta["delay_activity_threshold"],
                        [s.human_lu for s in songs]))
    assert any(decodes) and not all(decodes)  # (the second run decoded again)
    (c0, i0, d0, h0), (c1, i1, d1, h1) = results
    assert np.array_equal(c0, c1) and i0 == i1 and d0 == d1 and h0 == h1


def test_shipped_dynamics_model_reproduces_its_check_rows():
    from vocalmix.estimators import dynamics

    arrays, meta = dynamics.FILES.load()
    m = dynamics.shipped_model()
    np.testing.assert_allclose(m.predict_log(arrays["check_x"]), arrays["check_y"], atol=1e-12)
    assert meta["n_songs"] >= 50 and meta["n_artists"] >= 30
    assert 0.0 < meta["delay_activity_threshold"] <= 1.0
    assert not set(meta["songs"]) & {"Cristina Vane - So Easy", "Mu - Too Bright",
                                     "The Easton Ellises - Falcon 69"}  # test split


@pytest.mark.slow
def test_retraining_on_the_shared_data_gives_the_shipped_eq_and_dynamics_models(tmp_path):
    """``vocalmix train --only eq --only dynamics --data <shared data>`` writes the shipped
    files: the same arrays and metadata to the numeric libraries' rounding. A change of a
    measurement these models learn from shows here, and must retrain them. About 2
    minutes."""
    from vocalmix.frontends.cli import main

    from conftest import assert_shipped_model_files

    root = require_data()
    require_data("musdb18-7s", "train")
    assert main(["train", "--data", str(root), "-o", str(tmp_path), "--only", "eq",
                 "--only", "dynamics", "-q"]) == 0
    for name in ("eq_model", "dynamics_model"):
        assert_shipped_model_files(tmp_path, f"{name}.npz", f"{name}.json")
