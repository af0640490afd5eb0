"""The reverb parameter model: the estimator's features, the damping family, the choice
model and the weight files (vocalmix.estimators.reverb); fitting both stages on tiny
sets (vocalmix.training.reverb); the shipped weights; the model method's reverb
(vocalmix.estimators.registry.reverb_provider)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vocalmix.core.errors import ModelError
from vocalmix.core.params import DECAY_BANDS_HZ, MixParams, Reverb
from vocalmix.estimators import reverb as rm
from vocalmix.estimators.registry import Context, reverb_provider
from vocalmix.synth import synthesize_song
from vocalmix.training import reverb as rt

from conftest import require_data

SR = rm.ANALYSIS_SR


@pytest.fixture(scope="module")
def dry() -> np.ndarray:
    v, _b = synthesize_song(sample_rate=SR, duration_s=6.0, seed=3)
    return v[:, 0].copy()


def _label(decay: float, wet: float = -6.0) -> dict[str, float]:
    return {"decay_s": decay, "hf_ratio": 0.8, "pre_delay_ms": 20.0, "wet_level_db": wet}


@pytest.fixture(scope="module")
def tiny_set(dry):
    """Wet renders of one synthetic vocal at 14 decays (no mixing augmentation)."""
    decays = np.geomspace(0.25, 5.0, 14)
    x = np.stack([rm.estimator_features(rt.render_synthetic_send(dry, _label(d)), SR)
                  for d in decays])
    y = np.array([[_label(d)[p] for p in rm.PARAMS] for d in decays])
    return x, y


def _tiny_model(tiny_set) -> rm.ReverbModel:
    x, y = tiny_set
    est = rt.fit_mlp(x, y, hidden=6, l2=1e-3, maxiter=300)
    f = np.array([[0.0, 1.0, 0.0], [0.3, 1.5, 0.4], [-0.2, 0.8, -0.3]])
    t = np.array([[0.1, -0.2, 25.0, -12.0], [-0.1, -0.3, 15.0, -9.0], [0.0, -0.1, 30.0, -16.0]])
    return rm.ReverbModel(est, rt.fit_choice_model(f, t))


def test_damping_family():
    r = rm.band_ratios_for_hf(0.64)
    assert len(r) == len(DECAY_BANDS_HZ) and r[3] == 1.0 and r[:3] == (1.0, 1.0, 1.0)
    assert r[4] == pytest.approx(0.8, abs=1e-4) and r[5] == pytest.approx(0.64)
    assert r[6] < r[5] < r[4] < 1.0
    assert rm.hf_ratio_of(r) == pytest.approx(0.64)
    Reverb(type="synthetic", decay_s=2.0, band_decay_ratios=rm.band_ratios_for_hf(0.05))  # valid


def _phrase_ends_frame_by_frame(bb_db, window=60, min_drop_db=6.0, rise_db=2.0):
    """The phrase ends' definition, scanned a frame at a time."""
    e = rm._smooth(bb_db, 3)
    top = float(np.percentile(e, 95))
    c = np.concatenate([[0.0], np.cumsum(e)])
    out, t = [], 9
    while t < len(e) - window:
        pre = (c[t - 1] - c[t - 8]) / 7.0
        seg = e[t: t + window]
        if (pre < top - 25.0 or e[t] > pre - 1.0
                or np.any(seg - np.minimum.accumulate(seg) > rise_db)
                or seg[-1] > pre - min_drop_db):
            t += 1
            continue
        out.append(t)
        t += window // 2
    return out


def test_phrase_ends_are_those_of_a_frame_by_frame_scan():
    rng = np.random.default_rng(0)
    found = 0
    for i in range(600):
        n = int(rng.integers(3, 700))
        if i % 3 == 0:
            x = rng.normal(-30.0, 10.0, n)
        elif i % 3 == 1:
            x = np.cumsum(rng.normal(0.0, 2.0, n)) - 20.0
        else:  # phrases: held notes, each ending in a free decay
            x = np.full(n, -80.0)
            for s0 in rng.integers(0, n, size=8):
                held = int(rng.integers(5, 80))
                x[s0: s0 + held] = -10.0 + rng.normal(0.0, 1.0, len(x[s0: s0 + held]))
                tail = -10.0 - 0.5 * np.arange(100)
                x[s0 + held: s0 + held + 100] = tail[: len(x[s0 + held: s0 + held + 100])]
        window = int(rng.choice([10, 30, 60]))
        want = _phrase_ends_frame_by_frame(x, window)
        assert rm.phrase_ends(x, window).tolist() == want
        found += len(want)
    assert found > 500  # (the cases do hold phrase ends)


def test_features_are_level_invariant_and_named(dry):
    wet = rt.render_synthetic_send(dry, _label(1.0))
    f1 = rm.estimator_features(wet, SR)
    f2 = rm.estimator_features(wet * 0.01, SR)
    assert f1.shape == (len(rm.FEATURE_NAMES),) and np.all(np.isfinite(f1))
    np.testing.assert_allclose(f1, f2, atol=1e-4)
    with pytest.raises(ValueError):
        rm.estimator_features(wet[:SR], SR)  # 1 s: too short


def test_estimator_trained_on_a_tiny_synthetic_set_recovers_decay(tiny_set, dry):
    """Trained on 14 renders, it reads held-out renders (another seed's noise and in
    between the training decays) within a factor of 1.6, and in order."""
    x, y = tiny_set
    est = rt.fit_mlp(x, y, hidden=6, l2=1e-3, maxiter=300)
    v2, _b = synthesize_song(sample_rate=SR, duration_s=6.0, seed=3)
    test = [0.4, 1.2, 3.0]
    xt = np.stack([rm.estimator_features(rt.render_synthetic_send(v2[:, 0], _label(d)), SR)
                   for d in test])
    got = est.predict(xt)[:, 0]
    assert np.all(np.diff(got) > 0), got
    assert np.all(np.abs(np.log(got / np.array(test))) < np.log(1.6)), got


def test_numpy_inference_matches_training_time_predictions(tmp_path, tiny_set):
    """Saved and loaded, the model reproduces the predictions computed at training time on
    the stored check rows (and the shipped weights reproduce theirs)."""
    x, _y = tiny_set
    m = _tiny_model(tiny_set)
    f = np.array([[0.1, 1.2, 0.1]])
    m.save(tmp_path, {"test": True}, x[:4], f)
    loaded = rm.ReverbModel.load(tmp_path)
    rows, meta = rm.FILES.load(tmp_path)
    assert meta == {"test": True} and loaded.meta == meta
    np.testing.assert_allclose(loaded.estimator.predict_encoded(rows["check_x"]),
                               rows["check_y"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.choice.predict_targets(rows["check_f"]), rows["check_t"],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded.estimator.predict(x), m.estimator.predict(x), atol=1e-12)
    shipped = rm.shipped_model()
    rows, _meta = rm.FILES.load()
    np.testing.assert_allclose(shipped.estimator.predict_encoded(rows["check_x"]),
                               rows["check_y"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(shipped.choice.predict_targets(rows["check_f"]), rows["check_t"],
                               rtol=0, atol=1e-9)
    assert shipped.meta["n_songs"] == shipped.choice.n_songs


def test_missing_or_stale_weights_are_a_model_error(tmp_path, tiny_set):
    with pytest.raises(ModelError, match="no reverb model weights"):
        rm.ReverbModel.load(tmp_path / "nowhere")
    m = _tiny_model(tiny_set)
    m.save(tmp_path, {}, tiny_set[0][:2], np.zeros((1, 3)))
    d, _meta = rm.FILES.load(tmp_path)
    d["version"] = np.array(rm.ESTIMATOR_VERSION + 1)
    np.savez(tmp_path / rm.FILES.weights, **d)
    with pytest.raises(ModelError, match="stale"):
        rm.ReverbModel.load(tmp_path)
    (tmp_path / rm.FILES.weights).write_bytes(b"not an npz")
    with pytest.raises(ModelError, match="unreadable"):
        rm.ReverbModel.load(tmp_path)


def test_choice_model_shrinks_toward_the_prior_and_clips():
    f = np.array([[0.0, 1.0, 0.0], [0.5, 2.0, 0.5]])
    t = np.array([[0.4, -0.1, 40.0, -6.0], [0.2, -0.3, 60.0, -10.0]])
    m = rt.fit_choice_model(f, t)
    prior = rt.choice_prior()
    np.testing.assert_allclose(m.intercept, (2 * t.mean(axis=0) + prior) / 3)
    far = m.predict_targets(np.array([[9.0, 9.0, 9.0]]))
    edge = m.predict_targets(f.max(axis=0))
    np.testing.assert_allclose(far, edge)  # features clipped to the training range
    empty = rt.fit_choice_model(np.zeros((0, 3)), np.zeros((0, 4)))
    p = empty.predict(np.zeros(3))
    # with no song at all it is the engineers' own sends (the pooled DiffVox presets)
    from vocalmix.estimators.vocalprior import REVERB_ONSET_MS, engineers

    e = engineers()
    assert p["decay_s"] == pytest.approx(e.reverb_t60_s.p50)
    assert p["hf_ratio"] == pytest.approx(e.band_decay_ratios[5])
    assert p["pre_delay_ms"] == pytest.approx(REVERB_ONSET_MS)
    assert p["wet_level_db"] == pytest.approx(e.reverb_level_db.p50)


def test_provider_gives_valid_synthetic_params(monkeypatch, tiny_set):
    m = _tiny_model(tiny_set)
    monkeypatch.setattr(rm, "shipped_model", lambda: m)
    v, b = synthesize_song(sample_rate=22050, duration_s=8.0, seed=5)
    params, notes = reverb_provider(Context(v, b, 22050, MixParams()))
    rv = params.vocal.reverb
    assert rv.type == "synthetic" and rv.band_decay_ratios[3] == 1.0
    assert params.targets.reverb_decay_s == pytest.approx(rv.decay_s)
    assert 0.2 <= rv.decay_s <= 12.0 and 0.0 <= rv.pre_delay_ms <= 500.0
    assert any("engineers' own sends" in n for n in notes)
    again = MixParams.from_json(params.to_json())
    assert again.vocal.reverb == rv
    # below 1 kHz the band ratios are the engineers' medians; a structured reason says why
    from vocalmix.estimators.vocalprior import engineers

    assert rv.band_decay_ratios[:3] == pytest.approx(engineers().band_decay_ratios[:3],
                                                     abs=1e-4)
    r = {x.path: x for x in params.reasons}["vocal.reverb"]
    assert r.source == "model" and "tempo_bpm" in dict(r.inputs)


def test_provider_without_weights_is_a_model_error(monkeypatch, tmp_path):
    def missing():
        return rm.ReverbModel.load(tmp_path)

    monkeypatch.setattr(rm, "shipped_model", missing)
    v, b = synthesize_song(sample_rate=22050, duration_s=3.0, seed=1)
    with pytest.raises(ModelError):
        reverb_provider(Context(v, b, 22050, MixParams()))


def test_shipped_estimator_orders_real_reverbs():
    """The shipped estimator on a real dry vocal (a MIR-1K clip) through the synthetic
    reverb: a long reverb reads longer and wetter than a short, faint one (a sanity check
    of the shipped weights; held-out skill is in docs/evaluation/reverb_report.md)."""
    mir = require_data("karaoke", "mir1k")
    m = rm.shipped_model()
    import soundfile as sf

    x, sr = sf.read(str(sorted(mir.glob("Kenshin_*.flac"))[0]), dtype="float32")
    assert sr == SR
    v = x[:, 1]
    short = rt.render_synthetic_send(v, _label(0.4, -20.0))
    long = rt.render_synthetic_send(v, _label(3.0, -6.0))
    p = m.estimator.predict(np.stack([rm.estimator_features(short, SR),
                                      rm.estimator_features(long, SR)]))
    assert p[1, 0] > 1.5 * p[0, 0] and p[1, 3] > p[0, 3] + 5.0, p


def test_shipped_metadata_is_honest():
    m = rm.shipped_model()
    meta = m.meta
    assert meta["version"] == rm.ESTIMATOR_VERSION and meta["training_files"]
    ho = meta["estimator_held_out"]
    assert ho["n_irs"] > 0 and set(ho["per_example"]) == {"estimator", "constant"}
    json.dumps(meta)


def test_model_method_applies_the_learned_reverb(monkeypatch, tiny_set):
    """The model method's params carry the synthetic reverb the provider chose, resolved
    to its decay target, and the document round-trips."""
    from vocalmix.pipeline import estimate_params

    m = _tiny_model(tiny_set)
    monkeypatch.setattr(rm, "shipped_model", lambda: m)
    v, b = synthesize_song(sample_rate=22050, duration_s=8.0, seed=7)
    est = estimate_params(v, b, 22050, method="model")
    rv = est.params.vocal.reverb
    assert rv.type == "synthetic"
    assert rv.decay_s == pytest.approx(est.params.targets.reverb_decay_s)
    assert any(n.startswith("reverb model:") for n in est.notes)
    assert MixParams.from_json(est.params.to_json()).vocal.reverb == rv


@pytest.mark.parametrize("pct", [(50, 70, 85, 95, 99), (80,), (0, 100), (0.5, 33.3, 99.99)])
def test_row_percentiles_are_numpys_row_by_row(pct):
    """The reverb features' percentiles of every band's slopes at once: the values
    np.percentile gives each row's own values, to the bit, whatever each row's count."""
    from vocalmix.estimators.reverb import _row_percentiles

    rng = np.random.default_rng(len(pct))
    rows = [rng.standard_normal(n) * 10 for n in (1, 2, 3, 9, 10, 11, 250, 1597)]
    rows.append(np.round(rng.standard_normal(500)))  # ties
    rows.append(np.full(40, 3.25))
    m = max(len(r) for r in rows)
    s = np.full((len(rows), m), np.nan)
    for i, r in enumerate(rows):
        s[i, : len(r)] = np.sort(r)
    got = _row_percentiles(s, np.array([len(r) for r in rows]), pct)
    assert got.shape == (len(rows), len(pct))
    for i, r in enumerate(rows):
        want = np.asarray(np.percentile(r, pct), np.float64).reshape(-1)
        assert got[i].tobytes() == want.tobytes(), i
