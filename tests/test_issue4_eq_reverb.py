"""Corrective EQ pieces and reverb fitting (issue 4)."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.reverb import reverberation_time
from vocalmix.estimators.eq import apply_eq, inverse_eq, long_term_spectrum, random_eq
from vocalmix.estimators.masking import bands_response_db, fit_parametric_bands
from vocalmix.training.fitreverb import render_send_ir

SR = 44100


@pytest.mark.parametrize("seed", range(5))
def test_random_eq_then_exact_inverse_is_identity(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((SR * 2, 2)) * 0.05).astype(np.float32)
    bands = random_eq(rng)
    y = apply_eq(apply_eq(x, SR, bands), SR, inverse_eq(bands))
    fx, px = long_term_spectrum(x, SR)
    _, py = long_term_spectrum(y, SR)
    keep = (fx > 50) & (fx < 16000)
    diff_db = 10 * np.log10(py[keep] / px[keep])
    assert np.abs(diff_db).max() < 0.1
    # and the responses cancel exactly on paper
    f = np.geomspace(20, 20000, 300)
    total = bands_response_db(bands, f, SR) + bands_response_db(inverse_eq(bands), f, SR)
    assert np.abs(total).max() < 1e-9


def test_parametric_fit_of_a_target_curve():
    f = 1000 * 2 ** (np.arange(-14, 14) / 3)
    bands = [("peak", 800.0, 6.0, 1.2), ("peak", 4000.0, -5.0, 2.0),
             ("high_shelf", 9000.0, 3.0, 0.7)]
    target = bands_response_db(bands, f, SR)
    fitted = fit_parametric_bands(f, target, max_bands=6)
    assert len(fitted) <= 6
    rms = np.sqrt(np.mean((bands_response_db(fitted, f, SR) - target) ** 2))
    assert rms < 0.5


@pytest.mark.parametrize("t60", [0.4, 1.0, 2.5])
def test_reverberation_time_of_a_synthetic_exponential_decay(t60):
    rng = np.random.default_rng(0)
    n = int(t60 * 2 * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * 10 ** (-3 * t / t60)  # -60 dB at t60 (amplitude)
    ir = np.concatenate([np.zeros(441), ir + rng.standard_normal(n) * 1e-4])  # pre-delay, floor
    for kind in ("T30", "T20", "EDT"):
        assert reverberation_time(ir, SR, kind) == pytest.approx(t60, rel=0.03)
    assert reverberation_time(ir, SR, "T30", band_hz=1000.0) == pytest.approx(t60, rel=0.05)


def test_preset_applies_and_unknown_preset_is_a_clear_error(monkeypatch):
    from vocalmix.core.errors import ParamsError
    from vocalmix.core.params import MixParams
    from vocalmix.core.reverb import decay_for_room_size
    from vocalmix.estimators import presets as pr

    fake = {"hall": {"params": {"room_size": 0.8, "damping": 0.4, "wet_level_db": -9.0,
                                "pre_delay_ms": 30.0}}}
    monkeypatch.setattr(pr, "presets", lambda: fake)
    p = pr.apply_preset(MixParams(), "hall")
    assert p.vocal.reverb.room_size == 0.8 and p.vocal.reverb.pre_delay_ms == 30.0
    assert p.targets.reverb_decay_s == pytest.approx(decay_for_room_size(0.8, 0.4))
    with pytest.raises(ParamsError, match="unknown reverb preset 'nope'.*hall"):
        pr.apply_preset(MixParams(), "nope")


def test_fit_reverb_command(tmp_path, capsys):
    import json

    import soundfile as sf

    from vocalmix.frontends.cli import main

    ir = render_send_ir({"room_size": 0.4, "damping": 0.5, "wet_level_db": -3.0,
                         "pre_delay_ms": 10.0}, SR, 2.0)
    sf.write(tmp_path / "room.wav", ir, SR, subtype="FLOAT")
    out = tmp_path / "presets.json"
    assert main(["fit-reverb", str(tmp_path / "room.wav"), "-o", str(out), "--maxiter", "1",
                 "--popsize", "2", "-q"]) == 0
    d = json.loads(out.read_text())  # a preset of the synthetic reverb (tests/test_reverb_fit.py)
    assert d["room"]["reverb"]["type"] == "synthetic"
    assert "1000" in d["room"]["t30_s_target"] and "c50_db_fitted" in d["room"]
