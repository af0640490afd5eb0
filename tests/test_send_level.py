"""``wet_level_db`` is the reverberant-to-direct energy ratio of the send, measured on the
written stems, for both reverb types (freeverb through its wet-energy calibration)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.params import Compressor, HighPass, MixParams, Reverb, VocalChain
from vocalmix.core.reverb import (
    freeverb_wet_offset_db,
    render_freeverb_ir,
    render_synthetic_ir,
    room_size_for_decay,
    vocal_weighted_energy,
)
from vocalmix.frontends.cli import main

from conftest import require_data

SR = 44100


def test_weighted_energy_is_the_plain_energy_for_a_flat_weighting():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((4000, 2)) * np.exp(-np.arange(4000) / 800.0)[:, None]
    import vocalmix.core.reverb as rv

    w = rv.vocal_weights(np.array([100.0, 1000.0, 5000.0]))
    assert w[1] == pytest.approx(1.0) and w[0] < w[1] and w[2] < w[1]  # a vocal's hump
    plain = (h**2).sum(axis=0)
    # a low-passed IR loses weighted energy far less than plain energy
    from scipy.signal import butter, sosfilt

    lp = sosfilt(butter(4, 2000, fs=SR, output="sos"), h, axis=0)
    assert vocal_weighted_energy(lp, SR).mean() / vocal_weighted_energy(h, SR).mean() > \
        1.5 * (lp**2).sum(axis=0).mean() / plain.mean()


@pytest.mark.parametrize("room,damping,width", [(0.3, 0.5, 1.0), (0.85, 0.1, 1.0),
                                                (0.6, 0.9, 0.0), (0.45, 0.5, 0.4)])
def test_freeverb_offset_matches_a_fresh_render(room, damping, width):
    """The calibration's interpolated wet energy agrees with a render off the grid, at
    any width, within 0.15 dB."""
    ir = render_freeverb_ir(room, damping, width, SR)
    got = 10 * np.log10(vocal_weighted_energy(ir, SR).mean())
    assert -freeverb_wet_offset_db(room, damping, width, SR) == pytest.approx(got, abs=0.15)


def test_synthetic_ir_has_unit_vocal_weighted_energy():
    h = render_synthetic_ir(1.9, (0.81, 0.85, 0.99, 1.0, 0.98, 0.86, 0.68), 1.0, SR)
    assert np.allclose(vocal_weighted_energy(h, SR), 1.0, rtol=1e-4)


def _rd_from_written_stems(tmp_path, vocal_file, backing_file, reverb: Reverb) -> float:
    """Render ``reverb`` through ``vocalmix render``; reverberant-to-direct energy ratio
    (dB) of the written ``vocal.wav`` (dry + send) against ``vocal_dry.wav``."""
    p = MixParams(vocal=VocalChain(highpass=HighPass(enabled=False),
                                   compressor=Compressor(enabled=False), reverb=reverb))
    doc = tmp_path / f"{reverb.type}.json"
    doc.write_text(p.to_json(), encoding="utf-8")
    stems = tmp_path / f"stems_{reverb.type}"
    assert main(["render", str(vocal_file), str(backing_file), str(doc), "-o",
                 str(tmp_path / f"mix_{reverb.type}.wav"), "--stems-out", str(stems),
                 "-q"]) == 0
    wet_and_dry, _ = sf.read(stems / "vocal.wav", dtype="float64")
    dry, _ = sf.read(stems / "vocal_dry.wav", dtype="float64")
    wet = wet_and_dry - dry
    return float(10 * np.log10((wet**2).sum() / (dry**2).sum()))


@pytest.mark.slow
@pytest.mark.parametrize("reverb", [
    # the baseline's send for this song: 2.18 s (its tempo rule) at damping 0.5
    Reverb(type="freeverb", room_size=room_size_for_decay(2.18, 0.5), damping=0.5,
           width=1.0, wet_level_db=-14.0, pre_delay_ms=20.0),
    Reverb(type="freeverb", room_size=room_size_for_decay(1.5, 0.3), damping=0.3, width=0.5,
           wet_level_db=-14.0, pre_delay_ms=20.0),
    Reverb(type="synthetic", decay_s=1.9, band_decay_ratios=(0.81, 0.85, 0.99, 1.0, 0.98,
                                                              0.86, 0.68),
           wet_level_db=-14.0, pre_delay_ms=22.6),
], ids=["freeverb", "freeverb-half-width", "synthetic"])
def test_a_send_at_minus_14_db_measures_minus_14_db_on_the_written_stems(tmp_path, reverb):
    """A finished vocal (a real mixed vocal stem, 30 s, mono as a take is) through a send
    set to -14 dB: the written vocal stem minus the written dry stem carries 14 +- 1 dB
    less energy than the dry stem. (Before the freeverb's wet-energy calibration the
    baseline's freeverb send measured 3 to 4.4 dB under the dry vocal.) The label is
    exact for the reference vocal spectrum; a particular voice differs by how its
    spectrum meets the reverb's response (module doc of :mod:`vocalmix.core.reverb`):
    this one by -0.5 to -0.9 dB through freeverb."""
    folder = require_data("stems", "Cristina Vane - So Easy")
    v, sr = sf.read(folder / "vocals.mp3", dtype="float32")
    b, _ = sf.read(folder / "accompaniment.mp3", dtype="float32")
    n = min(len(v), len(b))
    vf, bf = tmp_path / "vocal.wav", tmp_path / "backing.wav"
    sf.write(vf, v[:n].mean(axis=1), sr, subtype="FLOAT")
    sf.write(bf, b[:n], sr, subtype="FLOAT")
    rd = _rd_from_written_stems(tmp_path, vf, bf, reverb)
    assert rd == pytest.approx(-14.0, abs=1.0)
