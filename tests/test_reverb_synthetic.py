"""The ``synthetic`` reverb type: decay per octave band by construction, exact level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vocalmix.core.params import DECAY_BANDS_HZ, MixParams, Reverb, VocalChain
from vocalmix.core.render import reverb_wet
from vocalmix.core.reverb import (
    render_synthetic_ir,
    reverberation_time,
    synthetic_band_weights,
    vocal_weighted_energy,
)

SR = 44100


def test_band_weights_are_complementary():
    f = np.geomspace(20, 20000, 500)
    w = synthetic_band_weights(f, DECAY_BANDS_HZ)
    assert np.allclose(w.sum(axis=0), 1.0)
    assert (w >= 0).all()
    for i, b in enumerate(DECAY_BANDS_HZ):  # each band is alone at its centre
        wc = synthetic_band_weights(np.array([b]), DECAY_BANDS_HZ)[:, 0]
        assert wc[i] == pytest.approx(1.0) and wc.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "decay,ratios",
    [(1.0, None), (0.35, None), (2.5, (1.5, 1.3, 1.1, 1.0, 0.9, 0.75, 0.55))],
)
def test_measured_t30_per_band_matches_the_setting(decay, ratios):
    """Each octave band's T30 (ISO 3382 routine) is the band's decay setting: within 6 %
    from 250 Hz to 8 kHz, 12 % at 125 Hz (few noise modes fit in that octave)."""
    h = render_synthetic_ir(decay, ratios, 1.0, SR)
    want = np.array([decay * r for r in (ratios or (1.0,) * 7)])
    got = np.array([reverberation_time(h, SR, "T30", b) for b in DECAY_BANDS_HZ])
    rel = got / want
    assert abs(rel[0] - 1) < 0.12, rel
    assert np.all(np.abs(rel[1:] - 1) < 0.06), rel


def test_energy_width_and_determinism():
    h = render_synthetic_ir(1.2, None, 1.0, SR)
    assert h.dtype == np.float32 and h.shape[1] == 2
    assert np.allclose(vocal_weighted_energy(h, SR), 1.0, rtol=1e-5)
    # flat band decays: close to the plain energy too (the noise is only nearly white)
    assert np.allclose((h.astype(np.float64) ** 2).sum(axis=0), 1.0, rtol=0.2)
    assert abs(np.corrcoef(h[:, 0], h[:, 1])[0, 1]) < 0.1  # width 1: uncorrelated
    h0 = render_synthetic_ir(1.2, None, 0.0, SR)
    assert np.array_equal(h0[:, 0], h0[:, 1])  # width 0: mono
    from vocalmix.core.reverb import _synthetic_ir_cached

    _synthetic_ir_cached.cache_clear()
    assert np.array_equal(render_synthetic_ir(1.2, None, 1.0, SR), h)  # bit-identical
    with pytest.raises(ValueError):
        h[0, 0] = 1.0  # the cached IR is read-only


def test_send_is_delay_plus_convolution_at_the_wet_level():
    rv = Reverb(type="synthetic", decay_s=0.6, wet_level_db=-10.0, pre_delay_ms=15.0)
    x = np.zeros((SR, 2), np.float32)
    x[100] = 1.0
    wet = reverb_wet(x, SR, rv)
    h = render_synthetic_ir(0.6, None, 1.0, SR)
    d = 100 + int(round(0.015 * SR))
    assert np.abs(wet[:d]).max() < 1e-8  # FFT round-off only, before the delayed onset
    n = min(len(h), SR - d)
    assert np.allclose(wet[d:d + n], h[:n] * 10 ** (-10 / 20), atol=1e-6)
    # reverberant-to-direct energy ratio for a vocal's spectrum is wet_level_db
    e = vocal_weighted_energy(wet, SR)
    assert 10 * np.log10(e.mean()) == pytest.approx(-10.0, abs=0.05)


@pytest.mark.parametrize("twin", [False, True])
def test_send_matches_a_double_precision_direct_convolution(twin):
    """The single-precision overlap-add (several blocks, the pre-delay, the wet level)
    against numpy's direct convolution in float64: about -130 dB apart."""
    from vocalmix.core.reverb import wet_gain_db

    rv = Reverb(type="synthetic", decay_s=0.5, wet_level_db=-6.0, pre_delay_ms=7.0,
                width=0.7)
    rng = np.random.default_rng(11)
    x = (0.3 * rng.standard_normal((5 * SR, 2))).astype(np.float32)
    if twin:
        x[:, 1] = x[:, 0]  # a mono take read as stereo: transformed once
    wet = reverb_wet(x, SR, rv)
    h = render_synthetic_ir(0.5, None, 0.7, SR).astype(np.float64)
    d = int(round(0.007 * SR))
    g = 10 ** (wet_gain_db(rv, SR) / 20)
    ref = np.zeros(x.shape)
    for c in range(2):
        ref[d:, c] = np.convolve(x[:, c].astype(np.float64), h[:, c])[: len(x) - d] * g
    err = wet.astype(np.float64) - ref
    assert wet.dtype == np.float32
    assert 10 * np.log10((err ** 2).mean() / (ref ** 2).mean()) < -115.0
    assert np.abs(err).max() < 1e-6 * np.abs(ref).max()


def test_mix_and_render_agree_bit_for_bit_with_a_synthetic_reverb():
    from vocalmix.pipeline import mix, render_params
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=SR, duration_s=4.0)
    base = MixParams(vocal=VocalChain(reverb=Reverb(
        type="synthetic", band_decay_ratios=(1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.6))))
    p, r, _ = mix(v, b, SR, base=base, reverb_decay_s=1.7)
    assert p.vocal.reverb.decay_s == 1.7  # exact: no calibration table in between
    p2, r2 = render_params(v, b, SR, replace(p, achieved=type(p.achieved)()))
    assert np.array_equal(r.mix, r2.mix)
    assert p.achieved.vocal_to_mix_lu == pytest.approx(-3.0, abs=0.05)


def test_the_response_made_ahead_is_the_one_the_send_uses():
    """reverb_ir_ahead makes render_synthetic_ir's response on a helper thread (the same
    array, remembered for the settings), and nothing for a reverb that needs none."""
    from vocalmix.core.render import reverb_ir_ahead

    rv = Reverb(enabled=True, type="synthetic", decay_s=1.234,
                band_decay_ratios=(0.9, 0.95, 1.0, 1.0, 0.8, 0.6, 0.5))
    ahead = reverb_ir_ahead(rv, 44100)
    assert ahead is not None
    h = ahead.result()
    assert h is render_synthetic_ir(rv.decay_s, rv.band_decay_ratios, rv.width, 44100)
    assert reverb_ir_ahead(replace(rv, enabled=False), 44100) is None
    assert reverb_ir_ahead(replace(rv, type="freeverb"), 44100) is None
