"""The corrective-EQ model: features, the posterior estimator, the gate and the weight
files (vocalmix.estimators.eq); the random EQs, the bank, training and its determinism
(vocalmix.training.eq); the shipped weights; the model method's EQ."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.dsp import mono
from vocalmix.core.errors import ModelError
from vocalmix.estimators import eq as E
from vocalmix.estimators.masking import bands_response_db
from vocalmix.synth import synthesize_song
from vocalmix.training import eq as T

SR = 44100


def _noise(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((int(seconds * SR), 2)) * 0.05).astype(np.float32)


def test_an_eq_shifts_the_features_by_its_band_curve():
    """On white noise an EQ adds its band-averaged curve to the long-term spectrum (the
    model's assumption), within 0.3 dB, on the 21 bands from 99 Hz to 10 kHz."""
    x = _noise()
    bands = [("peak", 1500.0, 9.0, 1.5), ("high_shelf", 4000.0, -6.0, 0.7)]
    f0 = E.vocal_features(x, SR)
    f1 = E.vocal_features(E.apply_eq(x, SR, bands), SR)
    curve = T.eq_band_curve(bands)
    assert f0.shape == (21,) and E.CENTRES_HZ[0] < 100 < E.CENTRES_HZ[1]
    assert 9900 < E.CENTRES_HZ[-1] < 10200
    assert np.abs((f1 - f0) - curve).max() < 0.3


def test_posterior_recovers_a_bank_curve_when_natural_spread_is_tiny():
    """Closed-form case: natural vocals all alike (precision huge) and the applied EQ in
    the bank -> the posterior mean is that EQ, P(no EQ) is ~0; the clean vocal -> ~1."""
    bank = T.eq_bank(200, seed=3)
    mean = np.zeros(21)
    m = E.EqModel(mean, np.eye(21) / 0.01, bank, 0.5, 0.2, 0.5)
    applied = bank[17].astype(np.float64)
    post, p_clean = m.posterior(applied)
    np.testing.assert_allclose(post[0], applied, atol=1e-6)
    assert p_clean[0] < 1e-6
    np.testing.assert_allclose(m.predict(applied)[0], -applied, atol=1e-6)
    post0, p0 = m.posterior(mean)
    assert p0[0] > 0.99 and np.abs(post0).max() < 0.05  # (a few bank EQs are tiny)
    gated, _ = m.gated(mean)
    assert not gated.any()  # a clean vocal is left alone


def test_curve_to_bands_follows_the_curve():
    target = T.eq_band_curve([("peak", 800.0, -7.0, 1.2), ("peak", 3500.0, 5.0, 2.0)])
    bands = E.curve_to_bands(target)
    assert 1 <= len(bands) <= 6
    got = T.eq_band_curve(bands)
    assert np.sqrt(np.mean((got - target) ** 2)) < 0.6
    assert E.curve_to_bands(np.zeros(21)) == []


def _toy_items(n_artists: int = 4) -> list[T.VocalItem]:
    items = []
    for s in range(n_artists):
        for k in range(2):
            v, _b = synthesize_song(sample_rate=SR, duration_s=3.0, seed=10 * s + k)
            v = E.apply_eq(v, SR, [("peak", 500.0 * (s + 1), 3.0 * (s - 1.5), 1.0)])
            items.append(T.VocalItem(f"song{s}_{k}", f"artist{s}",
                                     E.frame_spectra(v, SR)[1].mean(axis=0)))
    return items


def test_train_save_load_numpy_inference_matches_training_time(tmp_path):
    items = _toy_items()
    bank = T.eq_bank(300, seed=5)
    model, meta = T.train_eq([], tmp_path, items=items, bank=bank, seed=0)
    assert meta["n_artists"] == 4 and meta["n_excerpts"] == 8
    loaded = E.EqModel.load(tmp_path)
    arrays, _meta = E.FILES.load(tmp_path)
    check_x, check_y = arrays["check_x"], arrays["check_y"]
    np.testing.assert_allclose(loaded.predict(check_x), check_y, atol=1e-9)
    np.testing.assert_allclose(model.predict(check_x), check_y, atol=1e-12)
    assert loaded.gate_p_clean == model.gate_p_clean
    again, _ = T.train_eq([], None, items=items, bank=bank, seed=0)
    np.testing.assert_array_equal(again.precision, model.precision)  # deterministic
    assert loaded.finished_db is not None and loaded.finished_db.shape == (5, 21)


def test_missing_and_stale_weights_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no corrective-EQ model weights"):
        E.EqModel.load(tmp_path)
    m = T.fit_eq_model(np.random.default_rng(0).standard_normal((10, 21)), T.eq_bank(20, 1))
    m.save(tmp_path, {})
    d, _meta = E.FILES.load(tmp_path)
    d["version"] = np.array(1)
    np.savez(tmp_path / E.FILES.weights, **d)
    with pytest.raises(ModelError, match="stale"):
        E.EqModel.load(tmp_path)


def test_shipped_model_reproduces_its_training_time_predictions():
    arrays, meta = E.FILES.load()
    np.testing.assert_allclose(E.shipped_model().predict(arrays["check_x"]), arrays["check_y"],
                               atol=1e-9)
    assert meta["feature_version"] == E.EQ_FEATURE_VERSION and meta["n_artists"] >= 2
    assert meta["cross_validated"]["clean_lsd_added_db"] <= T.HARM_BUDGET_DB
    assert E.shipped_model().meta == meta


def test_correct_returns_editable_bands_for_a_strongly_eqd_vocal():
    """A model whose natural vocals are this vocal (tiny spread) sees a +10 dB resonance
    and cuts there."""
    v, _b = synthesize_song(sample_rate=SR, duration_s=4.0, seed=1)
    f = E.vocal_features(v, SR)
    bank = np.vstack([T.eq_bank(300, seed=2),
                      T.eq_band_curve([("peak", 2000.0, 10.0, 2.0)])[None, :]])
    m = E.EqModel(f, np.eye(21) / 0.25, bank.astype(np.float32), 0.5, 0.2, 0.5)
    damaged = E.apply_eq(v, SR, [("peak", 2000.0, 10.0, 2.0)])
    c = E.correct(damaged, SR, m)
    assert c.applied and c.p_clean < 0.01 and 1 <= len(c.bands) <= 6
    near = [b for b in c.bands if 1400 < b[1] < 2900]
    assert near and min(b[2] for b in near) < -6.0  # a cut at the boost
    fixed = E.apply_eq(damaged, SR, c.bands)
    orig = T.spectrum_db(v, SR)
    assert T.log_spectral_distance(orig, T.spectrum_db(fixed, SR)) < \
        0.5 * T.log_spectral_distance(orig, T.spectrum_db(damaged, SR))
    assert E.correct(v, SR, m).bands == []  # the clean vocal is left alone


def test_bank_response_matches_rendered_eq_on_noise():
    """The bank's band curve of an EQ is what pedalboard's rendering does to white noise."""
    x = _noise(4.0, seed=3)
    rng = np.random.default_rng(7)
    for _ in range(3):
        bands = T.random_eq(rng)
        d = T.spectrum_db(E.apply_eq(x, SR, bands), SR) - T.spectrum_db(x, SR)
        assert np.abs((d - d.mean()) - T.eq_band_curve(bands)).max() < 0.5
    f = np.geomspace(100, 8000, 50)
    assert np.allclose(bands_response_db(T.inverse_eq(bands), f, SR),
                       -bands_response_db(bands, f, SR))


def test_correction_then_masking_stays_within_the_total_bound():
    v, b = synthesize_song(sample_rate=SR, duration_s=4.0, seed=4)
    correction = [("peak", 1500.0, 10.0, 1.5), ("peak", 5000.0, 9.0, 1.5)]
    corr, mask, hp, notes = E.combine_with_masking(v, b, SR, correction, max_total_gain_db=11.0)
    f = np.geomspace(50, 16000, 400)
    total = bands_response_db(corr + mask, f, SR)
    assert np.abs(total).max() <= 11.0 + 1e-6
    assert mask and any("masking bands scaled" in n for n in notes)
    assert corr == correction  # the correction comes first and is kept whole
    assert 60.0 <= hp <= 150.0
    big = [("peak", 1500.0, 20.0, 1.0)]
    corr2, _m, _hp, notes2 = E.combine_with_masking(v, b, SR, big, max_total_gain_db=12.0)
    assert np.abs(bands_response_db(corr2, f, SR)).max() <= 12.0 + 1e-6
    assert any("correction scaled" in n for n in notes2)


def test_model_method_puts_correction_bands_first(monkeypatch):
    """With a model that is sure of an EQ, ``--method model`` writes the correction bands
    (source "correction") before the masking bands, all editable MixParams bands."""
    from vocalmix.pipeline import mix

    v, b = synthesize_song(sample_rate=SR, duration_s=4.0, seed=1)
    f = E.vocal_features(v, SR)
    resonance = [("peak", 2000.0, 10.0, 2.0)]
    bank = np.vstack([T.eq_bank(300, seed=2), T.eq_band_curve(resonance)[None, :]])
    m = E.EqModel(f, np.eye(21) / 0.25, bank.astype(np.float16), 0.5, 0.2, 0.5)
    monkeypatch.setattr(E, "shipped_model", lambda: m)
    damaged = E.apply_eq(v, SR, resonance)
    params, _r, est = mix(damaged, b, SR, method="model")
    sources = [band.source for band in params.vocal.eq_bands]
    assert sources and sources[0] == "correction"
    assert sources == sorted(sources, key=lambda s: s != "correction")
    assert any(n.startswith("model EQ:") for n in est.notes)
    assert "vocal.eq_bands" in {r.path for r in params.reasons}


def test_masking_never_lifts_a_rolled_off_band_or_past_finished_vocals():
    """A vocal its engineer rolled off above 4.5 kHz: the masking rule alone lifts it
    around 5 kHz, where a bright backing covers it; with finished vocals' percentiles
    that say it is rolled off there (under their 10th percentile), that lift is held
    back, and elsewhere no lift goes past their upper quartile."""
    v, b = synthesize_song(sample_rate=SR, duration_s=4.0, seed=4)
    rolled = E.apply_eq(v, SR, [("high_shelf", 4500.0, -6.0, 0.7)])
    bright = E.apply_eq(b, SR, [("high_shelf", 3000.0, 12.0, 0.7)])
    free, _hp, = E.combine_with_masking(rolled, bright, SR, [])[1:3]
    lifted = [band for band in free if band[1] > 4000]
    assert lifted, "the test needs the plain masking rule to lift the rolled-off band"
    level = E.vocal_features(rolled, SR)
    fin = np.tile(level, (5, 1)) + np.array([-3.0, -1.5, 0.0, 1.5, 3.0])[:, None]
    hi = E.CENTRES_HZ > 4000
    fin[:, hi] += 12.0  # finished vocals are far brighter than this one up there
    model = E.EqModel(np.zeros(21), np.eye(21), np.zeros((1, 21)), finished_db=fin)
    corr, mask, _hp, notes = E.combine_with_masking(rolled, bright, SR, [], model=model)
    resp = bands_response_db(mask, E.CENTRES_HZ, SR) if mask else np.zeros(21)
    assert np.all(resp[hi] < 0.25 + 1e-6)
    assert any("rolled off" in n for n in notes)
    lim = E.masking_limits(rolled, SR, model)
    assert np.all(lim.allowed_db[hi] == 0.0)
    assert np.all(lim.allowed_db[~hi] <= 1.5 + 1e-9)  # up to the upper quartile only
    # with no correction the corrected vocal is the vocal's own downmix: the spectrum the
    # correction was judged on is its spectrum, to the bit, and the limits read it
    c = E.correct(rolled, SR, model)
    assert not c.bands and c.power is not None
    assert np.array_equal(c.power, E.mean_active_spectrum(mono(rolled), SR))
    again = E.combine_with_masking(rolled, bright, SR, [], model=model, vocal_power=c.power)
    assert again[1:] == (mask, _hp, notes)


@pytest.mark.parametrize("corrects", [True, False])
@pytest.mark.parametrize("rate", [44100, 48000])
def test_the_eq_analysis_downmixes_the_vocal_once_with_the_same_results(monkeypatch, rate,
                                                                         corrects):
    """The model's EQ analysis hands the vocal's downmix to both the correction's spectrum
    and the masking analysis (at the model's rate, where both read it; with a correction
    the masking analysis reads the corrected downmix instead): the same correction,
    masking bands and notes as each making its own, and with no correction one downmix of
    the vocal fewer."""
    from vocalmix.core import dsp
    from vocalmix.estimators import registry

    v, b = synthesize_song(sample_rate=rate, duration_s=4.0, seed=5)
    v, b = dsp.frozen(v, unique=True), dsp.frozen(b, unique=True)
    m = E.shipped_model() if corrects else E.EqModel(np.zeros(21), np.eye(21),
                                                     np.zeros((1, 21)))
    monkeypatch.setattr(E, "shipped_model", lambda: m)
    real, made = dsp.mono, []

    def counted(x):
        if np.ndim(x) == 2 and len(x) == len(v):
            made.append(len(x))
        return real(x)

    monkeypatch.setattr(dsp, "mono", counted)
    dsp.forget_signals()
    c0 = E.correct(v, rate, m)  # each making its own, as before
    want = E.combine_with_masking(v, b, rate, c0.bands, model=m,
                                  engineers_shape_db=registry._engineers_eq_shape(),
                                  vocal_power=c0.power)
    before = len(made)
    assert bool(c0.bands) == corrects
    dsp.forget_signals()
    c, got = registry._eq_analysis(v, b, rate)
    assert c.bands == c0.bands and np.array_equal(c.power, c0.power)
    assert got == want
    now = len(made) - before
    assert now == (before - 1 if rate == E.ANALYSIS_SR and not corrects else before)


@pytest.mark.parametrize("seed", range(5))
def test_random_eq_then_exact_inverse_is_identity(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((SR * 2, 2)) * 0.05).astype(np.float32)
    bands = T.random_eq(rng)
    y = E.apply_eq(E.apply_eq(x, SR, bands), SR, T.inverse_eq(bands))
    fx, px = T.long_term_spectrum(x, SR)
    _, py = T.long_term_spectrum(y, SR)
    keep = (fx > 50) & (fx < 16000)
    diff_db = 10 * np.log10(py[keep] / px[keep])
    assert np.abs(diff_db).max() < 0.1
    # and the responses cancel exactly on paper
    f = np.geomspace(20, 20000, 300)
    total = bands_response_db(bands, f, SR) + bands_response_db(T.inverse_eq(bands), f, SR)
    assert np.abs(total).max() < 1e-9


# --- band-limited takes: recorded at 16 kHz, or low-passed -------------------------------


def _through(x: np.ndarray, rate: int, sr: int = 44100) -> np.ndarray:
    """``x`` resampled to ``rate`` and back: nothing left above ``rate / 2``."""
    import soxr

    return np.asarray(soxr.resample(soxr.resample(x, sr, rate), rate, sr), np.float32)


def test_the_band_limit_is_where_the_content_ends():
    x = _noise(4.0)
    full = E.band_limit_hz(E.mean_active_spectrum(x, 44100))
    assert full > 20000
    assert E.observed_bands(full).all()
    for rate in (16000, 22050):
        limit = E.band_limit_hz(E.mean_active_spectrum(_through(x, rate), 44100))
        assert 0.9 * rate / 2 < limit < 1.1 * rate / 2, (rate, limit)
    assert E.observed_bands(8000.0).sum() == 19  # 8 and 10 kHz bands reach past 8 kHz


def test_observed_posterior_is_the_posterior_when_every_band_is_observed():
    m = E.shipped_model()
    rng = np.random.default_rng(5)
    x = m.mean + rng.normal(0.0, 2.0, (4, E.N_BANDS))
    a, p = m.posterior(x)
    b, q = m.posterior_observed(x, np.ones(E.N_BANDS, bool))
    assert np.array_equal(a, b) and np.array_equal(p, q)


def test_a_band_limited_vocal_is_corrected_as_its_full_band_self():
    """Real mixed vocals through a 16 kHz recording chain: the correction on the bands the
    take fills is the full-band vocal's within 0.3 dB RMS, with the same gate decision;
    read with the empty bands as if they were content (-150 dB at 8-10 kHz), the same
    vocals were 'corrected' about 2.5 dB differently. Above the band limit the curve is
    held, so no band boosts an empty range."""
    import shutil

    from vocalmix.training.data import find_songs, load_song

    from conftest import require_data

    root = require_data("musdb18-7s")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (needed to read .stem.mp4)")
    songs = [s for s in find_songs([root]) if not s.test_split][::8]
    assert songs
    m = E.shipped_model()
    for s in songs:
        v, _b, sr = load_song(s)
        full = E.correct(v, sr, m)
        band = E.correct(_through(v, 16000, sr), sr, m)
        obs = E.observed_bands(8000.0)
        assert np.sqrt(np.mean((band.curve_db[obs] - full.curve_db[obs]) ** 2)) < 0.3, s.song_id
        assert band.applied == full.applied, s.song_id
        assert np.all(band.curve_db[~obs] == band.curve_db[np.flatnonzero(obs)[-1]])


def test_a_16_khz_take_gets_bands_a_16_khz_mix_can_render():
    """At a 16 kHz mix rate the fit stays below the rate's highest filter frequency, and
    a few plain bands follow the curve there. The curve is one the model once gave a
    16 kHz karaoke take (+6 dB asked for at 10 kHz, past the take's Nyquist frequency):
    fitting that point too stacked six opposing high shelves of up to +-9 dB."""
    from vocalmix.core.dsp import max_filter_hz

    curve = np.array([-2.2, -2.5, -2.8, -3.0, -2.8, -1.9, -0.9, -0.0, 0.5, 0.9, 1.2, 1.4,
                      1.6, 1.6, 1.6, 1.6, 1.5, 1.2, -1.7, -1.4, 6.2])
    bands = E.curve_to_bands(curve, sample_rate=16000)
    assert 1 <= len(bands) <= 3, bands
    assert all(f <= max_filter_hz(16000) and abs(g) <= 4.0 for _k, f, g, _q in bands)
    fine = E.CENTRES_HZ[E.CENTRES_HZ <= max_filter_hz(16000)]
    resp = bands_response_db(bands, fine, 16000)
    assert np.sqrt(np.mean((resp - curve[: fine.size]) ** 2)) < 0.75


def test_collected_vocals_keep_each_excerpts_mean_spectrum_not_its_frames(tmp_path,
                                                                          monkeypatch):
    # the frames of every excerpt were held (3.3 MB each, several GB for a whole
    # MUSDB18-HQ) where only their mean is read: a 25 s vocal gives two 10 s excerpts,
    # each as its active frames' mean power spectrum, and an EQ'd excerpt's features are
    # those of its frames, each EQ'd
    import soundfile as sf

    rows = ["song,vocal,backing"]
    for a in range(2):
        v, b = synthesize_song(sample_rate=SR, duration_s=25.0, seed=40 + a)
        sf.write(tmp_path / f"v{a}.wav", v, SR, subtype="FLOAT")
        sf.write(tmp_path / f"b{a}.wav", b, SR, subtype="FLOAT")
        rows.append(f"Artist {a} - Song,v{a}.wav,b{a}.wav")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    items = T.collect_vocals([str(tmp_path / "m.csv")], keep_audio=True)
    assert len(items) == 4 and len({i.artist for i in items}) == 2
    for it in items:
        frames = E.frame_spectra(it.audio, it.sample_rate)[1]
        assert it.power.shape == (4097,)
        np.testing.assert_array_equal(it.power, frames.mean(axis=0))
        r = T._response_power([("peak", 2000.0, 6.0, 1.0)])
        np.testing.assert_allclose(E.features_from_mean(it.power * r),
                                   E.features_from_frames(frames * r[None, :]), rtol=1e-12)
    # the evaluation's audio past HELD_AUDIO_BYTES is cut again from its song: the same
    # samples as held (and held ones are copies, not views of the whole vocal)
    assert all(it.audio is not None and it.audio.base is None for it in items)
    monkeypatch.setattr(T, "HELD_AUDIO_BYTES", 0)
    again = T.collect_vocals([str(tmp_path / "m.csv")], keep_audio=True)
    audio_of = T.ExcerptAudio()
    assert all(it.audio is None for it in again)
    for held, cut in zip(items, again, strict=True):
        np.testing.assert_array_equal(held.power, cut.power)
        np.testing.assert_array_equal(audio_of(cut), held.audio)
    assert T.collect_vocals([str(tmp_path / "m.csv")])[0].source is None  # (no audio asked)
