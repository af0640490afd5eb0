"""Level-invariant features and the raw-take perturbation.

The central property: the features do not change when the vocal (or the backing) is
made louder or quieter, so a model trained on them cannot read the human mix's balance
off its input.
"""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.measure import loudness_range
from vocalmix.estimators.features import (
    FEATURE_NAMES,
    Perturbation,
    apply_perturbation,
    excerpts,
    features,
    momentary_spread_lu,
    perturb_vocal,
    vocal_excerpts,
)
from vocalmix.synth import synthesize_song
from vocalmix.training.data import find_songs, load_song

from conftest import require_data

SR = 22050


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, np.ndarray]:
    return synthesize_song(sample_rate=SR, duration_s=8.0, seed=1, tempo_bpm=110)


def _db(g: float) -> np.float32:
    return np.float32(10 ** (g / 20))


def test_features_are_invariant_to_the_vocal_gain(song):
    v, b = song
    f0 = features(v, b, SR)
    assert f0.shape == (len(FEATURE_NAMES),) and np.all(np.isfinite(f0))
    for g in (-20.0, -6.0, 9.0, 20.0):
        np.testing.assert_allclose(features(v * _db(g), b, SR), f0, rtol=1e-3, atol=2e-3,
                                   err_msg=f"vocal gain {g:+} dB")


def test_features_are_invariant_to_the_backing_gain(song):
    v, b = song
    f0 = features(v, b, SR)
    for g in (-15.0, 8.0):
        np.testing.assert_allclose(features(v, b * _db(g), SR), f0, rtol=1e-3, atol=2e-3)


def test_features_of_a_real_excerpt_are_gain_invariant():
    stems = require_data("stems")
    s = find_songs([stems])[0]
    v, b, sr = load_song(s)
    v, b = v[: 6 * sr], b[: 6 * sr]
    f0 = features(v, b, sr)
    for g in (-12.0, 12.0):
        np.testing.assert_allclose(features(v * _db(g), b * _db(-g / 2), sr), f0,
                                   rtol=1e-3, atol=5e-3)


def test_features_respond_to_the_backing_not_only_to_noise(song):
    """Sanity: a brighter backing moves the brightness features the right way."""
    v, b = song
    from scipy.signal import butter, sosfilt

    bright = sosfilt(butter(2, 3000, "highpass", fs=SR, output="sos"), b, axis=0)
    f0 = features(v, b, SR)
    f1 = features(v, (b + 3 * bright).astype(np.float32), SR)
    i = FEATURE_NAMES.index
    assert f1[i("b_centroid_oct")] > f0[i("b_centroid_oct")]
    assert f1[i("b_high_db")] > f0[i("b_high_db")]
    assert f0[i("b_tempo_oct")] == pytest.approx(np.log2(110 / 120), abs=0.1)


def test_features_survive_short_and_sparse_input():
    t = np.arange(int(1.0 * SR)) / SR
    v = np.zeros((t.size, 2), np.float32)
    v[: SR // 4, :] = 0.1 * np.sin(2 * np.pi * 300 * t[: SR // 4])[:, None]
    b = (0.05 * np.random.default_rng(0).standard_normal((t.size, 2))).astype(np.float32)
    f = features(v, b, SR)
    assert np.all(np.isfinite(f))
    assert f[FEATURE_NAMES.index("v_activity")] < 0.5


def test_perturbation_is_seeded_gain_equivariant_and_adds_dynamics(song):
    v, _ = song
    p = Perturbation(gain_db=3.0, ride_db=3.0, ride_period_s=1.5, expansion_ratio=1.8,
                     threshold_pct=50.0)
    a = apply_perturbation(v, SR, p, np.random.default_rng(7))
    a2 = apply_perturbation(v * _db(-10), SR, p, np.random.default_rng(7))
    np.testing.assert_allclose(a2, a * _db(-10), rtol=1e-4, atol=1e-7)  # relative threshold
    assert np.array_equal(perturb_vocal(v, SR, np.random.default_rng(3)),
                          perturb_vocal(v, SR, np.random.default_rng(3)))
    assert loudness_range(a, SR) > loudness_range(v, SR)
    assert momentary_spread_lu(a, SR) > momentary_spread_lu(v, SR)
    ups = [loudness_range(perturb_vocal(v, SR, np.random.default_rng(k)), SR)
           for k in range(6)]
    assert np.mean(ups) > loudness_range(v, SR)


def test_excerpts_cover_the_signal_and_follow_the_vocal():
    n = int(20.5 * SR)
    w = excerpts(n, SR, 6.0, 3.0)
    assert w[0].start == 0 and w[-1].stop == n and all(x.stop - x.start == 6 * SR for x in w)
    assert excerpts(4 * SR, SR) == [slice(0, 4 * SR)]
    v, b = synthesize_song(sample_rate=SR, duration_s=20.0, seed=2)
    v = v.copy()
    v[: 9 * SR] *= np.float32(1e-4)  # the vocal enters at 9 s
    sel = vocal_excerpts(v, SR)
    assert sel and all(x.stop > 9 * SR for x in sel)
    assert vocal_excerpts(v * _db(15), SR) == sel  # the rule is relative
    assert len(vocal_excerpts(v, SR, max_n=2)) == 2


def test_voice_features_tell_a_held_note_from_noise_and_count_syllables():
    from vocalmix.estimators.features import pitch_track

    t = np.arange(3 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)  # A3, held
    f0, per, _e = pitch_track(tone.astype(np.float32))
    assert np.median(f0) == pytest.approx(220.0, rel=0.01) and per.mean() > 0.95
    # syllables: a 5 Hz envelope (never silent) on the tone; noise is unvoiced
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 5 * t)
    sung = np.stack([tone * env] * 2, 1).astype(np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal((t.size, 2))).astype(np.float32)
    i = FEATURE_NAMES.index
    fs, fn = features(sung, noise, SR), features(noise, noise, SR)
    assert fs[i("v_pitch_oct")] == pytest.approx(0.0, abs=0.02)  # 220 Hz
    assert fs[i("v_syllables_per_s")] == pytest.approx(5.0, abs=1.0)
    assert fs[i("v_voiced_frac")] > 0.8 > 0.2 > fn[i("v_voiced_frac")]
    assert fs[i("v_pitch_stability")] > 0.9
    assert fs[i("v_periodicity")] > fn[i("v_periodicity")] + 0.3


def test_percussive_ratio_rises_with_drums(song):
    v, b = song
    n = b.shape[0]
    clicks = np.zeros_like(b)
    clicks[:: SR // 4] = 1.0  # four clicks a second
    i = FEATURE_NAMES.index("b_perc_db")
    t = np.arange(n) / SR
    pad = np.stack([0.2 * np.sin(2 * np.pi * 330 * t)] * 2, 1).astype(np.float32)
    assert features(v, clicks + 0.01 * pad, SR)[i] > features(v, pad, SR)[i] + 10


def test_an_excerpts_loudness_read_from_the_whole_signal_matches_its_own_pass():
    from vocalmix.core.measure import BlockStats
    from vocalmix.estimators.features import backing_part, excerpt_energies, features

    sr = 44100
    rng = np.random.default_rng(3)
    t = np.arange(20 * sr) / sr
    env = (0.2 + np.abs(np.sin(2 * np.pi * t / 2.3)))[:, None]
    vocal = (0.1 * env * rng.standard_normal((t.size, 2))).astype(np.float32)
    backing = (0.1 * rng.standard_normal((t.size, 2))).astype(np.float32)
    w = slice(3 * sr, 9 * sr)  # on a 100 ms segment boundary
    sv, sb = BlockStats.of(vocal, sr), BlockStats.of(backing, sr)
    ev = excerpt_energies(sv.energy, sv.segment_len, w)
    eb = excerpt_energies(sb.energy, sb.segment_len, w)
    own = BlockStats.of(vocal[w], sr, remember=False).energy
    assert ev is not None and eb is not None and ev.shape == own.shape
    # the filter's state at the excerpt's start dies out within its first segment
    np.testing.assert_allclose(ev[1:], own[1:], rtol=1e-7)
    assert abs(ev[0] / own[0] - 1.0) < 0.05
    # an excerpt off the segment grid, or past the end, is measured on its own
    assert excerpt_energies(sv.energy, sv.segment_len, slice(100, 100 + 6 * sr)) is None
    assert excerpt_energies(sv.energy, sv.segment_len, slice(15 * sr, 21 * sr)) is None
    alone = features(vocal[w], backing[w], sr)
    read = features(vocal[w], backing[w], sr, energy=ev, backing_energy=eb)
    np.testing.assert_allclose(read, alone, atol=1e-3)
    part = backing_part(backing[w], sr, energy=eb)
    assert np.array_equal(features(vocal[w], backing[w], sr, energy=ev, part=part), read)
