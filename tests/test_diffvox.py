"""DiffVox presets: raw values to physical units, responses, and the shipped prior.

The hand-computed values below come from the formulas of SonyResearch/diffvox
``modules/fx.py`` (``SmoothingCoef``, ``MinMax``, ``WrappedPositive``, ``Panning``,
``UniLossLess``, ``FDN.__init__``), ``modules/functional.py`` (``*_biquad_coef``) and
torchcomp ``coef2ms``, worked out by hand (see each test), not by the module under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vocalmix.core.errors import DataError
from vocalmix.training import diffvox as dv

from conftest import REPO, require_data

PRIOR = REPO / "src" / "vocalmix" / "assets" / "diffvox_prior.json"


def raw_row(**values: float | list) -> np.ndarray:
    """One raw preset row: zeros, with ``values`` by ``params_keys`` entry (dots as __)."""
    row = []
    for key, shape in dv.LAYOUT:
        v = values.get(key.replace(".", "__"), 0.0)
        row.append(np.broadcast_to(np.asarray(v, dtype=np.float64), shape).ravel())
    out = np.concatenate(row)
    assert out.size == dv.RAW_WIDTH
    return out


def preset_set(*rows: np.ndarray) -> dv.PresetSet:
    raw = np.stack(rows)
    return dv.PresetSet("test", raw, tuple(f"p{i}" for i in range(len(rows))),
                        np.ones(len(rows), dtype=bool))


def test_raw_zero_maps_to_the_middle_of_every_range():
    """sigmoid(0) = 0.5, so MinMax(lo, hi)(0) = (lo + hi) / 2; coefficients of 0.5."""
    ch = dv.to_physical(preset_set(raw_row()), reverb_levels=False)
    p = {k: float(v[0]) for k, v in ch.params.items()}
    expected = {
        "eq_peak1_freq_hz": 2716.5,     # (33 + 5400) / 2
        "eq_peak2_freq_hz": 8850.0,     # (200 + 17500) / 2
        "eq_peak1_q": 10.1,             # (0.2 + 20) / 2
        "eq_low_shelf_freq_hz": 115.0,  # (30 + 200) / 2
        "eq_high_shelf_freq_hz": 4525.0,
        "eq_lowpass_freq_hz": 9100.0,
        "eq_lowpass_q": 5.25,           # (0.5 + 10) / 2
        "eq_highpass_freq_hz": 2658.0,  # (16 + 5300) / 2
        "comp_ratio": 10.5,             # (1 + 20) / 2
        "exp_ratio": 2.0,               # 1 / sigmoid(0)
        "attack_ms": 0.0719711811781,   # -2200 / (44100 ln 0.5)
        "release_ms": 0.0719711811781,
        "lookahead_ms": 0.0,            # |0| mod 15
        "direct_pan": 0.0,              # 200 * 0.5 - 100
        "delay_time_ms": 550.0,         # (100 + 1000) / 2
        "delay_feedback": 0.5,
        "delay_feedback_db": -6.02059991328,
        "delay_level_db": -6.02059991328,
        "delay_lowpass_freq_hz": 8100.0,
        "delay_lowpass_q": 1.25,
        "delay_to_reverb_db": -6.02059991328,
        "reverb_t60_s": 0.219801117007,  # gamma = gamma_max / 2: -3*997/(44100 log10 gamma)
        "reverb_eq_peak1_freq_hz": 1350.0,
        "reverb_eq_peak1_q": 1.55,       # (0.1 + 3) / 2
        "reverb_eq_peak2_freq_hz": 3800.0,
        "reverb_eq_low_shelf_freq_hz": 240.0,
        "reverb_eq_high_shelf_freq_hz": 8750.0,
        "comp_threshold_db": 0.0,
        "makeup_db": 0.0,
    }
    for k, v in expected.items():
        assert p[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    assert np.allclose(ch.reverb_t60_s, 0.219801117007)
    assert np.allclose(ch.fdn_u[0], np.eye(6))  # expm(0)
    assert dv.fdn_gamma_max() == pytest.approx(0.98279762148, rel=1e-10)


def test_raw_values_off_the_middle():
    ln3 = math.log(3.0)  # sigmoid(ln 3) = 0.75
    theta = 0.3
    u_raw = np.zeros((6, 6))
    u_raw[0, 1] = theta
    u_raw[3, 0] = 5.0  # below the diagonal: ignored by triu(., 1)
    row = raw_row(**{
        "0__params__parametrizations__freq__original": ln3,
        "0__params__gain": -3.5,
        "6__params__cmp_th": -20.0,
        "6__params__parametrizations__lookahead__original": [-17.5],
        "6__params__parametrizations__at__original": -5.29809214706912,  # coef for 10 ms
        "6__params__parametrizations__avg_coef__original": math.log(0.3 / 0.7),
        "6__params__parametrizations__cmp_ratio__original": ln3,
        "7__pan__params__parametrizations__pan__original": ln3,
        "7__effects__1__params__parametrizations__gamma__original": 30.0,
        "7__effects__1__params__parametrizations__U__original": u_raw,
    })
    ch = dv.to_physical(preset_set(row), reverb_levels=False)
    p = {k: float(v[0]) for k, v in ch.params.items()}
    assert p["eq_peak1_freq_hz"] == pytest.approx(33 + 0.75 * 5367)  # 4058.25 Hz
    assert p["eq_peak1_gain_db"] == -3.5
    assert p["comp_threshold_db"] == -20.0
    assert p["lookahead_ms"] == pytest.approx(2.5)  # |-17.5| mod 15
    assert p["attack_ms"] == pytest.approx(10.0, rel=1e-9)
    assert p["detector_ms"] == pytest.approx(0.139865785817, rel=1e-9)  # -2200/(44100 ln 0.7)
    assert p["comp_ratio"] == pytest.approx(1 + 0.75 * 19)  # 15.25
    assert p["direct_pan"] == pytest.approx(50.0)  # 200 * 0.75 - 100
    # gamma at its maximum: the longest decay the FDN can represent, 0.75 * 12 s
    assert np.allclose(ch.reverb_t60_s, 9.0, rtol=1e-6)
    # expm of the skew-symmetric [[0, t], [-t, 0]] is the rotation [[cos t, sin t], ...]
    u = ch.fdn_u[0]
    assert u[:2, :2] == pytest.approx(np.array([[math.cos(theta), math.sin(theta)],
                                                [-math.sin(theta), math.cos(theta)]]))
    assert np.allclose(u[2:, 2:], np.eye(4)) and np.allclose(u @ u.T, np.eye(6))


def test_biquad_coefficients_and_responses():
    # peak, 1 kHz, Q 1, +6 dB at 44.1 kHz: w0 = 2 pi 1000 / 44100, alpha = sin(w0) / 2,
    # A = 10^(6/40); b = (1 + alpha A, -2 cos w0, 1 - alpha A), a = (1 + alpha/A, ...)
    c = dv.biquad_coefficients("peak", 1000.0, 1.0, 6.0)
    assert c == pytest.approx([1.10028615262, -1.97973494556, 0.899713847381,
                               1.05026213940, -1.97973494556, 0.949737860598], rel=1e-9)
    db = lambda kind, f, q, g, at: float(  # noqa: E731
        20 * np.log10(np.abs(dv.biquad_response(dv.biquad_coefficients(kind, f, q, g),
                                                np.array([at])))[0]))
    assert db("peak", 2500.0, 3.0, -7.0, 2500.0) == pytest.approx(-7.0, abs=1e-9)
    # RBJ shelves: half the gain (dB) at the shelf frequency, all of it far beyond
    assert db("low_shelf", 120.0, 0.707, 8.0, 120.0) == pytest.approx(4.0, abs=1e-9)
    assert db("low_shelf", 120.0, 0.707, 8.0, 1e-3) == pytest.approx(8.0, abs=1e-6)
    assert db("high_shelf", 3000.0, 0.707, -6.0, 3000.0) == pytest.approx(-3.0, abs=1e-9)
    assert db("high_shelf", 3000.0, 0.707, -6.0, 22050.0) == pytest.approx(-6.0, abs=1e-6)
    # low-/high-pass: |H| = Q at the cut-off, unity in the pass band
    assert db("lowpass", 5000.0, 2.0, 0.0, 5000.0) == pytest.approx(20 * math.log10(2.0))
    assert db("lowpass", 5000.0, 2.0, 0.0, 1e-3) == pytest.approx(0.0, abs=1e-6)
    assert db("highpass", 100.0, 0.5, 0.0, 100.0) == pytest.approx(20 * math.log10(0.5))
    assert db("highpass", 100.0, 0.5, 0.0, 22050.0) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        dv.biquad_coefficients("notch", 1000.0, 1.0)


def test_eq_curve_is_the_sum_of_the_six_filters():
    row = raw_row(**{"0__params__gain": 6.0, "1__params__gain": -4.0,
                     "2__params__gain": 3.0, "3__params__gain": 2.0,
                     "4__params__parametrizations__freq__original": 20.0,   # 18 kHz
                     "4__params__parametrizations__Q__original": -20.0,     # Q 0.5
                     "5__params__parametrizations__freq__original": -20.0,  # 16 Hz
                     "5__params__parametrizations__Q__original": -20.0})
    ch = dv.to_physical(preset_set(row), reverb_levels=False)
    p = {k: float(v[0]) for k, v in ch.params.items()}
    curve = dv.eq_curve_db(ch, np.array([p["eq_peak1_freq_hz"]]))[0, 0]
    parts = [("peak", p["eq_peak1_freq_hz"], p["eq_peak1_q"], 6.0),
             ("peak", p["eq_peak2_freq_hz"], p["eq_peak2_q"], -4.0),
             ("low_shelf", p["eq_low_shelf_freq_hz"], 0.707, 3.0),
             ("high_shelf", p["eq_high_shelf_freq_hz"], 0.707, 2.0),
             ("lowpass", p["eq_lowpass_freq_hz"], p["eq_lowpass_q"], 0.0),
             ("highpass", p["eq_highpass_freq_hz"], p["eq_highpass_q"], 0.0)]
    total = sum(20 * np.log10(np.abs(dv.biquad_response(
        dv.biquad_coefficients(k, f, q, g), np.array([p["eq_peak1_freq_hz"]]))[0]))
        for k, f, q, g in parts)
    assert curve == pytest.approx(total)
    # at peak 1's centre (2716 Hz): its +6 dB, a little of the high shelf's +2 dB (4525 Hz),
    # next to nothing of the narrow -4 dB peak at 8850 Hz or the rest
    assert 6.0 < curve < 7.0


def test_reverb_level_of_a_single_comb_matches_its_closed_form():
    """U = I and only line 0 fed and tapped (b = 0.5 on both inputs, c = 1 on the left):
    H = 1 / (e^{j w 997} - g), whose mean |H|^2 over frequency is 1 / (1 - g^2); the
    direct sound's power is 2. With g = gamma_max / 2 = 0.49140 and a flat tone EQ:
    10 log10(1 / (1 - g^2) / 2) = -1.8100 dB in every band."""
    b = np.zeros((6, 2))
    b[0] = 0.5
    c = np.zeros((2, 6))
    c[0, 0] = 1.0
    row = raw_row(**{"7__effects__1__params__b": b, "7__effects__1__params__c": c})
    ch = dv.to_physical(preset_set(row))
    levels = [ch.params[f"reverb_level_db_{int(f)}hz"][0] for f in dv.REVERB_BANDS_HZ]
    assert levels == pytest.approx([-1.81001159] * len(levels), abs=0.05)
    assert ch.params["reverb_level_db"][0] == pytest.approx(-1.81001159, abs=0.05)


def test_delay_energy_closed_form():
    """gain 0.5, feedback 0.5, 550 ms: 176400 // (24255 + 1) = 7 echoes within the 4 s
    response; with the loop's low-pass near 16 kHz (|LP(1 kHz)| ~ 1):
    0.25 * sum_{n=1..7} 0.25^(n-1) = 0.333313 -> -4.7715 dB."""
    row = raw_row(**{
        "7__effects__0__eq__params__parametrizations__freq__original": 20.0,
        "7__effects__0__eq__params__parametrizations__Q__original": -20.0,
    })
    ch = dv.to_physical(preset_set(row), reverb_levels=False)
    assert ch.params["delay_energy_db"][0] == pytest.approx(-4.7715, abs=0.25)
    assert ch.params["delay_energy_db"][0] < -4.7715  # the low-pass only removes energy
    assert ch.params["delay_loop_gain_max"][0] == pytest.approx(0.5, abs=1e-3)


def test_compressor_on_a_steady_tone_follows_the_static_curve():
    """A 1 kHz tone through a flat EQ and a slow detector: the detector reads the tone's
    mean power and the gain reduction is (1 - 1/ratio) x (level - threshold)."""
    sr = dv.SAMPLE_RATE
    x = 0.1 * np.sin(2 * np.pi * 1000.0 * np.arange(int(4.5 * sr)) / sr)
    row = raw_row(**{
        "4__params__parametrizations__freq__original": 20.0,   # low-pass at 18 kHz
        "4__params__parametrizations__Q__original": -3.0,
        "5__params__parametrizations__freq__original": -20.0,  # high-pass at 16 Hz
        "5__params__parametrizations__Q__original": -3.0,
        "6__params__parametrizations__avg_coef__original": math.log(
            float(dv.ms_to_coef(200.0)) / (1 - float(dv.ms_to_coef(200.0)))),
        "6__params__parametrizations__cmp_ratio__original": math.log(3.0 / 16.0),  # ratio 4
        "6__params__parametrizations__exp_ratio__original": 20.0,  # expander off
        "6__params__exp_th": -120.0,
        "6__params__cmp_th": -30.0,
    })
    ch = dv.to_physical(preset_set(row), reverb_levels=False)
    assert ch.params["comp_ratio"][0] == pytest.approx(4.0)
    r = dv.compressor_on_vocal(ch, np.stack([x, x], axis=1), sr)
    # after normalising to -18 LUFS the tone's power is what the threshold is compared with
    from vocalmix.core.measure import integrated_loudness

    gain = 10 ** ((-18.0 - integrated_loudness(x[:, None], sr)) / 20)
    level_db = 10 * math.log10(np.mean((gain * x) ** 2))
    expected = (1 - 1 / 4.0) * (level_db + 30.0)
    assert expected > 5.0
    assert r["gr_median_db"][0] == pytest.approx(expected, abs=0.3)
    assert r["lra_out_lu"][0] == pytest.approx(0.0, abs=0.2)


def test_missing_data_folder_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="no DiffVox preset sets"):
        dv.load_presets("medleydb", tmp_path)
    with pytest.raises(DataError, match="unknown DiffVox preset set"):
        dv.load_presets("musdb", tmp_path)


def test_a_layout_that_is_not_the_chain_is_refused(tmp_path: Path):
    d = tmp_path / "medleydb"
    d.mkdir()
    np.save(d / "raw_params.npy", np.zeros((2, dv.RAW_WIDTH)))
    info = {"params_keys": [k for k, _ in dv.LAYOUT][::-1],
            "params_original_shapes": [list(s) for _, s in dv.LAYOUT], "wet_files": ["a", "b"]}
    (d / "info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="not the DiffVox chain"):
        dv.load_presets("medleydb", tmp_path)


# --- the real preset sets -----------------------------------------------------------------


def test_rows_load_and_match_the_sets_own_gaussians():
    folder = require_data("vocal_fx_presets", "diffvox")
    med = dv.load_presets("medleydb", folder)
    inn = dv.load_presets("internal", folder)
    assert med.raw.shape == (70, dv.RAW_WIDTH) and inn.raw.shape == (385, dv.RAW_WIDTH)
    assert med.in_paper.all() and int(inn.in_paper.sum()) == 365
    assert med.labels[0] == "AClassicEducation_NightOwl_STEM_08"
    # gaussian.npz is the mean of the paper's rows with the redundant U entries dropped
    for ps in (med, inn.paper_subset()):
        mask = np.load(folder / ps.name / "feature_mask.npy")
        mean = np.load(folder / ps.name / "gaussian.npz")["mean"]
        assert np.allclose(ps.raw[:, mask].mean(axis=0), mean, atol=1e-4)
        assert ps.block("6.params.cmp_th").shape == (len(ps.labels),)
        assert ps.block("7.effects.1.params.b").shape == (len(ps.labels), 6, 2)


def test_constants_agree_with_fx_config():
    yaml = pytest.importorskip("yaml")
    folder = require_data("vocal_fx_presets", "diffvox")
    cfg = yaml.safe_load((folder / "fx_config.yaml").read_text())
    assert cfg["sr"] == dv.SAMPLE_RATE and cfg["lufs"] == dv.INPUT_LOUDNESS_LUFS
    m = cfg["model"]["_args_"]
    ranges = [dv.PEAK1_FREQ_HZ, dv.PEAK2_FREQ_HZ, dv.LOW_SHELF_FREQ_HZ, dv.HIGH_SHELF_FREQ_HZ,
              dv.LOWPASS_FREQ_HZ, dv.HIGHPASS_FREQ_HZ]
    for mod, rng in zip(m[:6], ranges, strict=True):
        assert (mod["min_freq"], mod["max_freq"]) == rng
    assert m[6]["max_lookahead"] == dv.MAX_LOOKAHEAD_MS
    delay, fdn = m[7]["_args_"]
    assert (delay["eq"]["min_freq"], delay["eq"]["max_freq"]) == dv.DELAY_LOWPASS_FREQ_HZ
    assert (delay["eq"]["min_Q"], delay["eq"]["max_Q"]) == dv.DELAY_LOWPASS_Q
    assert delay["ir_duration"] == dv.DELAY_IR_S
    assert tuple(fdn["delays"]) == dv.FDN_DELAYS and fdn["ir_duration"] == dv.FDN_IR_S
    assert fdn["num_decay_freq"] == dv.FDN_DECAY_POINTS
    eq = fdn["eq"]["_args_"]
    assert [(e["min_freq"], e["max_freq"]) for e in eq] == [
        dv.REVERB_PEAK1_FREQ_HZ, dv.REVERB_PEAK2_FREQ_HZ, dv.REVERB_LOW_SHELF_FREQ_HZ,
        dv.REVERB_HIGH_SHELF_FREQ_HZ]
    assert (eq[0]["min_Q"], eq[0]["max_Q"]) == dv.REVERB_PEAK_Q


@pytest.fixture(scope="module")
def chains_fast() -> dict[str, dv.Chains]:
    """Both sets in physical units, without the reverb's band levels (the slow part)."""
    return dv.load_chains(require_data("vocal_fx_presets", "diffvox"), reverb_levels=False)


def test_units_are_physical_and_plausible(chains_fast):
    for name, ch in chains_fast.items():
        p = ch.params
        for k in dv.PARAMETERS:
            if not k.startswith("reverb_level_db"):
                assert np.all(np.isfinite(p[k])), (name, k)
        within = {
            "eq_peak1_freq_hz": dv.PEAK1_FREQ_HZ, "eq_peak2_freq_hz": dv.PEAK2_FREQ_HZ,
            "eq_peak1_q": dv.PEAK_Q, "eq_low_shelf_freq_hz": dv.LOW_SHELF_FREQ_HZ,
            "eq_high_shelf_freq_hz": dv.HIGH_SHELF_FREQ_HZ, "eq_lowpass_q": dv.PASS_Q,
            "eq_lowpass_freq_hz": dv.LOWPASS_FREQ_HZ, "eq_highpass_freq_hz": dv.HIGHPASS_FREQ_HZ,
            "comp_ratio": dv.COMP_RATIO, "delay_time_ms": dv.DELAY_TIME_MS,
            "delay_feedback": (0.0, 1.0), "lookahead_ms": (0.0, dv.MAX_LOOKAHEAD_MS),
            "direct_pan": (-100.0, 100.0), "delay_odd_pan": (-100.0, 100.0),
            "reverb_t60_s": (0.0, dv.FDN_MAX_T60_S),
        }
        for k, (lo, hi) in within.items():
            assert np.all((p[k] >= lo) & (p[k] <= hi)), (name, k)
        assert np.all(p["exp_ratio"] >= 1.0)
        assert np.all(p["attack_ms"] > 0) and np.all(p["release_ms"] > 0)
        assert np.all((ch.reverb_t60_s > 0) & (ch.reverb_t60_s <= dv.FDN_MAX_T60_S + 1e-9))
        assert np.allclose(ch.fdn_u @ np.swapaxes(ch.fdn_u, 1, 2), np.eye(6), atol=1e-9)
        # what vocal chains look like: gentle EQ, compression 2:1-5:1, a high-pass
        # somewhere under 300 Hz, thresholds around the -18 LUFS input, reverb ~1-3 s
        med = {k: float(np.median(v)) for k, v in p.items()}
        assert 2.0 < med["comp_ratio"] < 5.0
        assert 50.0 < med["eq_highpass_freq_hz"] < 300.0
        assert -30.0 < med["comp_threshold_db"] < -10.0
        assert 1.0 < med["reverb_t60_s"] < 3.0
        assert abs(med["eq_peak1_gain_db"]) < 6.0 and abs(med["makeup_db"]) < 6.0
        assert 10.0 < med["release_ms"] < 1000.0


def test_reverb_levels_of_real_presets_are_plausible():
    folder = require_data("vocal_fx_presets", "diffvox")
    ps = dv.load_presets("medleydb", folder)
    ch = dv.to_physical(dv.PresetSet(ps.name, ps.raw[:3], ps.labels[:3], ps.in_paper[:3]))
    levels = np.stack([ch.params[f"reverb_level_db_{int(b)}hz"] for b in dv.REVERB_BANDS_HZ])
    assert np.all(np.isfinite(levels)) and np.all(levels < 10.0) and np.all(levels > -100.0)
    # the 500 Hz-2 kHz figure is the energy mean of those three bands, so between them
    mid = ch.params["reverb_level_db"]
    assert np.all(mid >= levels[2:5].min(axis=0) - 1e-9)
    assert np.all(mid <= levels[2:5].max(axis=0) + 1e-9)


def test_shipped_prior_is_small_and_describes_the_sets(chains_fast):
    doc = json.loads(PRIOR.read_text(encoding="utf-8"))
    assert PRIOR.stat().st_size < 100_000
    assert doc["format"] == "vocalmix.diffvox_prior" and doc["input_loudness_lufs"] == -18.0
    assert set(doc["sets"]) == {"medleydb", "internal", "pooled"}
    assert doc["sets"]["pooled"]["n"] == 435
    for s in doc["sets"].values():
        assert set(s["parameters"]) == set(dv.PARAMETERS)
        e = s["eq_curve"]
        assert len(e["mean_db"]) == len(doc["freqs_hz"]) == 21
        assert np.array(e["cov_db2"]).shape == (21, 21)
        assert np.array(e["components"]).shape == (dv.EQ_COMPONENTS, 21)
        for st in s["parameters"].values():
            v = [st[f"p{q}"] for q in dv.PERCENTILES]
            assert v == sorted(v)
    # the parts that need no reverb response regenerate identically here (the rest: slow)
    fresh = json.loads(dv.dumps(dv.build_prior(chains_fast, command=dv.COMMAND)))
    assert {k: v for k, v in fresh.items() if k != "sets"} == \
        {k: v for k, v in doc.items() if k != "sets"}
    for name in ("medleydb", "internal", "pooled"):
        for part in ("eq_curve", "eq_shape", "delay_used"):
            assert fresh["sets"][name][part] == doc["sets"][name][part], (name, part)
        for k, v in fresh["sets"][name]["parameters"].items():
            if not k.startswith("reverb_level_db"):
                assert v == doc["sets"][name]["parameters"][k], (name, k)


@pytest.mark.slow
def test_prior_medleydb_section_regenerates_identically():
    """The whole MedleyDB section, reverb levels included (about 5-10 s); the internal
    set's reverb levels take a minute more and are regenerated by the documented command."""
    folder = require_data("vocal_fx_presets", "diffvox")
    doc = json.loads(PRIOR.read_text(encoding="utf-8"))
    ch = dv.to_physical(dv.load_presets("medleydb", folder))
    fresh = json.loads(dv.dumps(dv.set_summary(ch)))
    assert fresh == doc["sets"]["medleydb"]
