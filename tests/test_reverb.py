"""Reverberation-time measurement (ISO 3382, Schroeder) and the Freeverb calibration."""

from __future__ import annotations

import json
import math
from importlib.resources import files

import numpy as np
import pytest

from vocalmix.core.errors import ParamsError
from vocalmix.core.reverb import (
    CALIBRATION_RESOURCE,
    _fade_start,
    clarity_c50_db,
    decay_for_room_size,
    decay_range_s,
    noise_model_decay_s,
    octave_bands_hz,
    onset_index,
    render_freeverb_ir,
    reverberation_time,
    room_size_for_decay,
    schroeder_edc_db,
)

from conftest import require_data

SR = 44100


def noise_decay(t60: float, sr: int = SR, floor_db: float = -80.0, pre_delay_s: float = 0.01,
                channels: int = 1, seed: int = 0) -> np.ndarray:
    """Gaussian noise under an exponential envelope of the given T60 (s), plus a steady
    noise floor ``floor_db`` below the envelope's start, after ``pre_delay_s`` of zeros."""
    rng = np.random.default_rng(seed)
    n = int((t60 * 1.5 * -floor_db / 60.0 + 0.5) * sr)  # reaches the floor, then 50 % more
    t = np.arange(n) / sr
    h = rng.standard_normal((n, channels)) * 10.0 ** (-3.0 * t / t60)[:, None]
    h += rng.standard_normal((n, channels)) * 10.0 ** (floor_db / 20.0)
    h = np.concatenate([np.zeros((int(round(pre_delay_s * sr)), channels)), h])
    return h[:, 0] if channels == 1 else h


def naive_t30(h: np.ndarray, sr: int) -> float:
    """Textbook Schroeder T30 with no noise handling: integrate everything, fit -5..-35 dB."""
    e = np.asarray(h, dtype=np.float64) ** 2
    e = e.sum(axis=1) if e.ndim == 2 else e
    e = e[np.argmax(e >= e.max() / 100.0): np.flatnonzero(e)[-1] + 1]
    edc = np.cumsum(e[::-1])[::-1]
    edc_db = 10.0 * np.log10(edc / edc[0])
    i, j = np.argmax(edc_db <= -5.0), np.argmax(edc_db <= -35.0)
    slope = np.polyfit(np.arange(i, j) / sr, edc_db[i:j], 1)[0]
    return -60.0 / slope


# --- measurement ------------------------------------------------------------------------


@pytest.mark.parametrize("t60", [0.5, 1.2, 3.0])
@pytest.mark.parametrize("channels", [1, 2])
def test_t30_t20_edt_of_an_exponential_noise_decay(t60, channels):
    h = noise_decay(t60, channels=channels, seed=int(t60 * 10) + channels)
    for kind in ("T30", "T20", "EDT"):
        assert reverberation_time(h, SR, kind) == pytest.approx(t60, rel=0.03), kind


def test_noise_floor_is_truncated_and_compensated():
    # a floor only 45 dB down (ISO 3382's minimum for T30): integrating the noise as well
    # (the naive Schroeder curve) overstates T30 by over 30 %; ours stays within 3 %
    h = noise_decay(1.2, floor_db=-45.0, seed=7)
    assert reverberation_time(h, SR, "T30") == pytest.approx(1.2, rel=0.03)
    assert naive_t30(h, SR) > 1.3 * 1.2
    # the EDC ends where the decay meets the floor (45 dB at 50 dB/s: 0.9 s after onset)
    edc = schroeder_edc_db(h, SR)
    assert edc[0] == 0.0 and np.all(np.isfinite(edc))
    assert len(edc) / SR == pytest.approx(0.9, rel=0.15)
    # decreasing; the noise subtraction leaves rises of a few 1e-4 dB where a sample lies
    # below the floor's mean energy
    assert edc[-1] < -35.0 and np.all(np.diff(edc) < 0.01)


@pytest.mark.parametrize("t60", [0.5, 1.2, 3.0])
def test_a_file_cut_off_during_the_decay_is_not_read_as_a_noise_floor(t60):
    # a decay cut off 40 dB down, with no floor under it (an IR file trimmed to length):
    # its end is the decay's, not noise. Read as a floor, its energy was subtracted from
    # the whole decay and T30 came out 6-7 % short; the decay beyond the cut is added
    # back as fitted instead
    h = noise_decay(t60, floor_db=-200.0, seed=11)
    cut = h[: int((0.01 + t60 * 40.0 / 60.0) * SR)]
    for kind in ("T30", "T20"):
        assert reverberation_time(cut, SR, kind) == pytest.approx(t60, rel=0.015), kind
    assert schroeder_edc_db(cut, SR)[-1] == pytest.approx(-40.0, abs=1.0)
    # the same decay that runs on into a floor is measured as before (floor subtracted)
    h = noise_decay(t60, floor_db=-50.0, seed=11)
    assert reverberation_time(h, SR, "T30") == pytest.approx(t60, rel=0.03)


@pytest.mark.parametrize("t60", [0.5, 1.2, 3.0])
def test_a_noise_floor_faded_out_at_the_end_of_the_file_is_read_before_its_fade(t60):
    # IR files often fade their end out. Read on the faded last tenth, the floor came out
    # too low, the flat floor before the fade was read as decay, and T30 came out 12 % to
    # 3.8 times too long (45 dB of decay over the floor, the last 20 % faded linearly)
    h = noise_decay(t60, floor_db=-45.0, seed=11)
    clean = reverberation_time(h, SR, "T30")
    m = int(0.2 * h.size)
    faded = h.copy()
    faded[-m:] *= np.linspace(1.0, 0.0, m)
    assert reverberation_time(faded, SR, "T30") == pytest.approx(clean, rel=0.01)
    assert reverberation_time(faded, SR, "T30") == pytest.approx(t60, rel=0.02)
    # the stretch kept ends in the floor (after the decay met it) and before the fade
    e = faded**2
    onset = int(np.argmax(e >= e.max() / 100.0))
    start = onset + _fade_start(e[onset:], SR)
    assert int((0.01 + t60 * 45.0 / 60.0) * SR) < start <= h.size - m + int(0.01 * SR)
    # a decay cut off by the file's end, with no floor (a trim), is not taken for a fade
    e = noise_decay(t60, floor_db=-200.0, seed=11)[: int((0.01 + t60 * 40.0 / 60.0) * SR)] ** 2
    e = e[int(np.argmax(e >= e.max() / 100.0)):]
    assert _fade_start(e, SR) == e.size


def test_edc_of_multichannel_sums_energy_and_starts_at_the_onset():
    mono = noise_decay(0.8, pre_delay_s=0.0, seed=3)
    stereo = np.stack([mono, mono], axis=1) / math.sqrt(2.0)  # same energy per sample
    padded = np.concatenate([np.zeros(2000), mono])
    np.testing.assert_allclose(schroeder_edc_db(stereo, SR), schroeder_edc_db(mono, SR),
                               atol=1e-9)
    np.testing.assert_allclose(schroeder_edc_db(padded, SR), schroeder_edc_db(mono, SR),
                               atol=1e-9)


def test_too_shallow_or_no_decay_gives_nan():
    h = noise_decay(1.0, floor_db=-28.0, seed=2)  # 28 dB of decay above the floor
    assert math.isnan(reverberation_time(h, SR, "T30"))
    assert reverberation_time(h, SR, "EDT") == pytest.approx(1.0, rel=0.1)
    steady = np.random.default_rng(0).standard_normal(SR)  # no decay at all
    assert all(math.isnan(reverberation_time(steady, SR, k)) for k in ("T30", "T20", "EDT"))


@pytest.mark.parametrize("t60", [0.4, 1.2, 3.0])
@pytest.mark.parametrize("channels", [1, 2])
def test_a_decay_too_noisy_for_a_t20_is_read_by_a_decay_plus_noise_fit(t60, channels):
    # a floor 22 dB under the decay's start (a clap in a noisy room, a quiet 16-bit IR):
    # no T30 or T20, the decay and its floor read at once off the envelope
    h = noise_decay(t60, floor_db=-22.0, channels=channels, seed=int(t60 * 10) + channels)
    assert all(math.isnan(reverberation_time(h, SR, k)) for k in ("T30", "T20"))
    assert noise_model_decay_s(h, SR) == pytest.approx(t60, rel=0.04)
    # where T30 can be measured, the two agree
    h = noise_decay(t60, floor_db=-50.0, channels=channels, seed=int(t60 * 10) + channels)
    assert noise_model_decay_s(h, SR) == pytest.approx(reverberation_time(h, SR), rel=0.03)
    # and in an octave band of it (band-limited noise decays as the whole does)
    assert noise_model_decay_s(h, SR, 1000.0) == pytest.approx(t60, rel=0.05)


def test_the_decay_plus_noise_fit_reads_no_decay_where_there_is_none():
    rng = np.random.default_rng(0)
    assert math.isnan(noise_model_decay_s(rng.standard_normal(SR), SR))  # steady noise
    # a click, then a floor 60 dB down: nothing between to read a decay from
    click = np.concatenate([np.ones(20), 1e-3 * rng.standard_normal(SR)])
    assert math.isnan(noise_model_decay_s(click, SR))
    # a decay that sinks into its floor 12 dB down: too little of it to read
    assert math.isnan(noise_model_decay_s(noise_decay(1.0, floor_db=-12.0, seed=5), SR))
    # a slow decay the file ends long before it meets the floor
    slow = noise_decay(20.0, floor_db=-80.0, seed=5)[: SR // 2]
    assert math.isnan(noise_model_decay_s(slow, SR))
    # and a file of fewer than ten 10 ms windows
    assert math.isnan(noise_model_decay_s(rng.standard_normal(SR // 200), SR))


def test_octave_band_reverberation_times_of_band_limited_decays():
    rng = np.random.default_rng(5)
    n = 5 * SR
    f = np.fft.rfftfreq(n, 1 / SR)
    h = rng.standard_normal(n) * 1e-4
    decays = {250: 2.0, 1000: 1.0, 4000: 0.5}
    for fc, t60 in decays.items():
        spec = np.fft.rfft(rng.standard_normal(n))
        spec[(f < fc * 2**-0.25) | (f > fc * 2**0.25)] = 0.0  # half-octave noise at fc
        x = np.fft.irfft(spec, n)
        h += x / x.std() * 10.0 ** (-3.0 * np.arange(n) / SR / t60)
    h = np.concatenate([np.zeros(441), h])
    assert set(decays) <= set(octave_bands_hz)
    for fc, t60 in decays.items():
        for kind in ("T30", "T20"):
            assert reverberation_time(h, SR, kind, band_hz=fc) == pytest.approx(t60, rel=0.10)
    # broadband, the slowest band dominates the late decay
    assert reverberation_time(h, SR, "T30") > 1.0


@pytest.mark.parametrize("t60", [0.3, 1.0, 2.0])
def test_c50_of_an_exponential_decay_matches_the_closed_form(t60):
    # h[k] = r**k: E_early = (1 - q**m) / (1 - q), E_late = (q**m - q**n) / (1 - q), q = r**2
    n, m = int(3.0 * t60 * SR), int(0.05 * SR)
    q = 10.0 ** (-6.0 / (t60 * SR))  # energy decays 60 dB in t60
    h = np.sqrt(q) ** np.arange(n)
    expected = 10.0 * math.log10((1.0 - q**m) / (q**m - q**n))
    pre = np.concatenate([np.zeros(500), h])
    assert clarity_c50_db(pre, SR) == pytest.approx(expected, abs=0.01)
    assert clarity_c50_db(np.stack([h, h], axis=1), SR) == pytest.approx(expected, abs=0.01)
    # and the T30 of that exact exponential
    assert reverberation_time(h, SR) == pytest.approx(t60, rel=0.005)


def test_onset_is_the_first_sample_within_20_db_of_the_peak():
    h = np.zeros(1000)
    h[100], h[300], h[400] = 10.0 ** (-30 / 20), 10.0 ** (-15 / 20), 1.0
    assert onset_index(h) == 300
    h[300] = 0.05  # -26 dB: not the onset any more
    assert onset_index(h) == 400


def test_bad_input_is_a_clear_error():
    good = noise_decay(0.5)
    with pytest.raises(ValueError, match="empty"):
        reverberation_time(np.zeros(0), SR)
    with pytest.raises(ValueError, match="NaN"):
        reverberation_time(np.array([1.0, np.nan, 0.5]), SR)
    with pytest.raises(ValueError, match="silent"):
        schroeder_edc_db(np.zeros(100), SR)
    with pytest.raises(ValueError, match="1-D"):
        reverberation_time(np.zeros((4, 4, 4)), SR)
    with pytest.raises(ValueError, match="kind"):
        reverberation_time(good, SR, "T60")
    with pytest.raises(ValueError, match="sample_rate"):
        reverberation_time(good, 0)
    with pytest.raises(ValueError, match="Nyquist"):
        reverberation_time(good, 8000, band_hz=8000)
    with pytest.raises(ParamsError, match="room_size"):
        render_freeverb_ir(1.5)
    with pytest.raises(ParamsError, match="damping"):
        decay_for_room_size(0.5, damping=-0.1)
    with pytest.raises(ParamsError, match="decay_s"):
        room_size_for_decay(-1.0)


# --- real impulse responses against independent implementations ---------------------------

REAL_IRS = [  # high peak-to-noise ratio, 0.45 to 3.7 s
    "Voxengo/small_drum_room.wav",
    "Voxengo/musikvereinsaal.wav",
    "Voxengo/st_nicolaes_church.wav",
    "webaudio_house-impulses/kitchen.wav",
    "webaudio_tim-warehouse/omni-15-10.wav",
]


def _real_irs():
    import soundfile as sf

    root = require_data("ir")
    for name in REAL_IRS:
        if not (root / name).exists():
            pytest.skip(f"real IR {root / name} not found")
        h, sr = sf.read(str(root / name), dtype="float64", always_2d=True)
        yield name, h[:, 0], sr


def test_t30_of_real_irs_matches_a_naive_schroeder_implementation():
    for name, h, sr in _real_irs():
        assert reverberation_time(h, sr) == pytest.approx(naive_t30(h, sr), rel=0.10), name


def test_t30_of_real_irs_matches_pyroomacoustics():
    pra = pytest.importorskip(
        "pyroomacoustics.experimental",
        reason="pyroomacoustics is not installed (optional cross-check: pip install "
               "pyroomacoustics)",
    )
    for name, h, sr in _real_irs():
        ref = pra.measure_rt60(h, fs=sr, decay_db=30)
        assert reverberation_time(h, sr) == pytest.approx(ref, rel=0.10), name


# --- Freeverb rendering and calibration ----------------------------------------------------


def test_render_freeverb_ir_is_bit_identical_and_wet_only():
    a = render_freeverb_ir(0.7, 0.3, width=0.8)
    b = render_freeverb_ir(0.7, 0.3, width=0.8)
    assert a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 2
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_freeverb_ir(0.71, 0.3, width=0.8))
    assert not np.any(a[:1000])  # wet only: nothing before the shortest comb delay (1116)
    assert render_freeverb_ir(0.5, length_s=0.5, sample_rate=22050).shape == (11025, 2)


@pytest.mark.parametrize("decay_s", [0.7, 1.5, 3.0, 6.0])
def test_calibration_round_trip_at_damping_half(decay_s):
    room = room_size_for_decay(decay_s, 0.5)
    assert 0.0 < room < 1.0
    assert decay_for_room_size(room, 0.5) == pytest.approx(decay_s, rel=1e-9)
    measured = reverberation_time(render_freeverb_ir(room, 0.5), SR, "T30")
    assert measured == pytest.approx(decay_s, rel=0.03)


def test_calibration_holds_at_other_rates_and_dampings():
    for decay_s, damping, sr in ((2.0, 0.5, 48000), (1.2, 0.5, 22050), (2.5, 0.1, SR),
                                 (4.0, 0.005, SR)):
        room = room_size_for_decay(decay_s, damping, sr)
        ir = render_freeverb_ir(room, damping, sample_rate=sr)
        assert reverberation_time(ir, sr) == pytest.approx(decay_s, rel=0.03), (damping, sr)


def test_reachable_range_is_clipped_and_monotone():
    lo, hi = decay_range_s(0.5)
    assert 0.5 < lo < 0.56 and 9.4 < hi < 10.0
    assert decay_range_s(0.0)[1] > 11.0  # no damping: the longest tail
    assert room_size_for_decay(lo * 0.5, 0.5) == 0.0
    assert room_size_for_decay(hi * 2.0, 0.5) == 1.0
    assert decay_for_room_size(0.0, 0.5) == pytest.approx(lo)
    rooms = [room_size_for_decay(d, 0.3) for d in np.geomspace(0.6, 9.0, 25)]
    assert np.all(np.diff(rooms) > 0)


def test_shipped_table_matches_a_fresh_render():
    doc = json.loads(files("vocalmix").joinpath(CALIBRATION_RESOURCE).read_text("utf-8"))
    assert doc["sample_rate_hz"] == SR and doc["width"] == 1.0
    assert {"pedalboard_version", "date", "method", "sample_rate_check"} <= set(doc)
    t30 = np.asarray(doc["t30_s"])
    assert t30.shape == (len(doc["damping"]), len(doc["room_size"]))
    for room, damping in ((0.3, 0.5), (0.8, 0.0)):
        i, j = doc["damping"].index(damping), doc["room_size"].index(room)
        fresh = reverberation_time(render_freeverb_ir(room, damping), SR, "T30")
        assert fresh == pytest.approx(t30[i, j], rel=1e-3), (room, damping)
        assert decay_for_room_size(room, damping) == pytest.approx(t30[i, j], rel=1e-9)
