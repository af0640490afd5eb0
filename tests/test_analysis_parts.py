"""Tempo, masking EQ, the demo synthesiser and the reverb calibration."""

from __future__ import annotations

import numpy as np
import pedalboard as pb
import pytest

from vocalmix.core.reverb import (
    decay_for_room_size,
    decay_range_s,
    render_freeverb_ir,
    reverberation_time,
    room_size_for_decay,
)
from vocalmix.estimators.masking import (
    analyse_masking,
    bands_response_db,
    biquad_response_db,
    fit_parametric_bands,
    masking_eq,
)
from vocalmix.estimators.tempo import estimate_tempo
from vocalmix.synth import synthesize_song

from conftest import find_stem, stem_songs

SR = 44100


@pytest.mark.parametrize("bpm", [70, 90, 100, 120, 140])
def test_tempo_of_synthetic_songs(bpm):
    _v, b = synthesize_song(sample_rate=22050, duration_s=20.0, seed=1, tempo_bpm=bpm)
    assert estimate_tempo(b, 22050) == pytest.approx(bpm, rel=0.02)


def test_tempo_too_short_is_nan():
    assert np.isnan(estimate_tempo(np.zeros((SR, 2), np.float32), SR))


@pytest.mark.slow
def test_tempo_agrees_with_librosa_on_real_backings():
    """Cross-check against librosa (its first call compiles for ~30 s; not on our path)."""
    librosa = pytest.importorskip("librosa")
    from vocalmix.core.audio import read_audio

    songs = stem_songs()
    if not songs:
        pytest.skip("real stems not found (set VOCALMIX_DATA)")
    for song in songs:
        acc = find_stem(song, "accompaniment")
        parts = [acc] if acc else [find_stem(song, n) for n in ("drums", "bass", "other")]
        x = sum(read_audio(p).samples for p in parts)
        ours = estimate_tempo(x, SR)
        ref = float(np.atleast_1d(librosa.feature.tempo(y=x.mean(axis=1), sr=SR))[0])
        ratios = [ours / (ref * k) for k in (0.5, 1.0, 2.0, 2 / 3, 1.5)]
        assert min(abs(r - 1) for r in ratios) < 0.04, (song.name, ours, ref)


def test_biquads_match_pedalboard():
    imp = np.zeros((1, 16384), np.float32)
    imp[0, 0] = 1.0
    f = np.fft.rfftfreq(16384, 1 / SR)
    keep = (f > 20) & (f < 18000)
    for kind, cls in (("peak", pb.PeakFilter), ("low_shelf", pb.LowShelfFilter),
                      ("high_shelf", pb.HighShelfFilter)):
        for fc, g, q in ((1000, 6, 1.0), (300, -8, 0.7), (5000, 4, 2.0)):
            y = cls(cutoff_frequency_hz=fc, gain_db=g, q=q)(imp, SR, reset=True)[0]
            measured = 20 * np.log10(np.abs(np.fft.rfft(y))[keep])
            ours = biquad_response_db(kind, fc, g, q, f[keep], SR)
            assert np.abs(measured - ours).max() < 0.01


def test_parametric_fit_of_a_target_curve():
    f = 1000 * 2 ** (np.arange(-14, 14) / 3)
    bands = [("peak", 800.0, 6.0, 1.2), ("peak", 4000.0, -5.0, 2.0),
             ("high_shelf", 9000.0, 3.0, 0.7)]
    target = bands_response_db(bands, f, SR)
    fitted = fit_parametric_bands(f, target, max_bands=6)
    assert len(fitted) <= 6
    rms = np.sqrt(np.mean((bands_response_db(fitted, f, SR) - target) ** 2))
    assert rms < 0.5


def _band_noise(rng, lo, hi, seconds=6.0, db=-20.0):
    from scipy.signal import butter, sosfilt

    sos = butter(4, [lo, hi], "bandpass", fs=SR, output="sos")
    x = sosfilt(sos, rng.standard_normal(int(seconds * SR)))
    x = x / np.std(x) * 10 ** (db / 20)
    return np.repeat(x[:, None], 2, 1).astype(np.float32)


def test_masking_boosts_the_vocal_where_the_backing_masks_it(rng):
    vocal, _ = synthesize_song(sample_rate=SR, duration_s=6.0, seed=4)
    masker = _band_noise(rng, 2500, 4500, db=-10.0)
    quiet = _band_noise(rng, 60, 120, db=-10.0)
    bands, hp = masking_eq(vocal, masker, SR)
    assert bands and all(0.5 <= g <= 4.0 for _, _, g, _ in bands)
    assert sum(g for _, _, g, _ in bands) <= 6.0 + 1e-9
    assert any(2000 <= f <= 5500 for _, f, _, _ in bands)
    assert 60 <= hp <= 150
    a = analyse_masking(vocal, quiet, SR)
    presence = (a.band_centres_hz > 1000) & (a.band_centres_hz < 5000)
    assert np.all(a.gain_db[presence] == 0.0)  # nothing masks there: no boost


def test_masking_ignores_the_vocal_gaps(rng):
    vocal, backing = synthesize_song(sample_rate=SR, duration_s=6.0, seed=4)
    gapped = np.concatenate([vocal, np.zeros_like(vocal)])
    a1 = analyse_masking(vocal, backing, SR)
    a2 = analyse_masking(gapped, np.concatenate([backing, backing]), SR)
    np.testing.assert_allclose(a1.vocal_db, a2.vocal_db, atol=0.5)


def test_baseline_analysis_on_two_threads_equals_its_parts():
    """The baseline's analysis runs the tempo beside the masking analysis: the same
    figures as each part run alone, for a read-only and a writeable backing."""
    from vocalmix.core.dsp import forget_signals, frozen
    from vocalmix.estimators import baseline

    vocal, backing = synthesize_song(sample_rate=SR, duration_s=12.0, seed=5)
    tempo, _found = baseline.tempo_or_default(backing, SR)
    eq, hp = baseline.masking_analysis(vocal, backing, SR)
    for v, b in ((vocal, backing), (frozen(vocal), frozen(backing))):
        forget_signals()
        a = baseline.analyse(v, b, SR)
        assert (a.tempo_bpm, a.eq_bands, a.highpass_hz) == (tempo, eq, hp)
        assert a.eq_bands  # the synthesised backing masks the vocal somewhere


def test_synth_is_deterministic_and_sane():
    v1, b1 = synthesize_song(sample_rate=22050, duration_s=5.0, seed=3)
    v2, b2 = synthesize_song(sample_rate=22050, duration_s=5.0, seed=3)
    v3, _ = synthesize_song(sample_rate=22050, duration_s=5.0, seed=4)
    assert np.array_equal(v1, v2) and np.array_equal(b1, b2) and not np.array_equal(v1, v3)
    assert v1.shape == b1.shape == (5 * 22050, 2) and v1.dtype == np.float32
    assert np.abs(v1).max() < 1 and np.abs(b1).max() < 1 and np.isfinite(v1).all()
    frames = (v1[: 50 * 2205, 0].reshape(50, 2205) ** 2).mean(axis=1)
    assert frames.min() < frames.max() * 1e-2  # the line has rests between phrases


def test_freeverb_calibration_round_trip_and_determinism():
    assert np.array_equal(render_freeverb_ir(0.5, 0.5, length_s=2.0),
                          render_freeverb_ir(0.5, 0.5, length_s=2.0))
    lo, hi = decay_range_s(0.5)
    assert 0.5 < lo < 0.6 and 9.0 < hi < 10.5
    for d in (0.8, 1.8, 3.1):
        rs = room_size_for_decay(d, 0.5)
        ir = render_freeverb_ir(rs, 0.5, length_s=min(30.0, 3 * d + 1))
        assert reverberation_time(ir, SR) == pytest.approx(d, rel=0.03)
        assert decay_for_room_size(rs, 0.5) == pytest.approx(d, rel=1e-6)
    assert room_size_for_decay(0.1, 0.5) == 0.0  # below reach: clipped
