"""``vocalmix analyze``: tempo and the long-term 1/3-octave spectrum beside the loudness
figures, and a plot of them; the spectrum checked against the analytic levels of a sine
and of white noise, and against an independent periodogram of the whole signal."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.dsp import (
    AUDIBLE_THIRD_OCTAVE_HZ,
    AUDIBLE_THIRD_OCTAVE_NOMINAL,
    third_octave_spectrum_db,
)
from vocalmix.frontends.cli import main

SR = 44100
CENTRES = np.array(AUDIBLE_THIRD_OCTAVE_HZ)
LO, HI = CENTRES * 2 ** (-1 / 6), CENTRES * 2 ** (1 / 6)


def test_a_sine_reads_its_amplitude_in_its_band_only():
    t = np.arange(5 * SR) / SR
    for amp, hz in ((0.5, 1000.0), (0.1, 250.0), (1.0, 5000.0)):
        x = amp * np.sin(2 * np.pi * hz * t)
        s = third_octave_spectrum_db(np.stack([x, x], axis=1), SR)
        k = int(np.argmin(np.abs(CENTRES - hz)))
        assert s[k] == pytest.approx(20 * math.log10(amp), abs=0.05)
        others = np.delete(s, k)
        assert np.nanmax(others) < s[k] - 40  # the Hann window's leakage stays near


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_the_spectrum_of_a_long_signal_takes_its_channel_mean_in_blocks(channels):
    """The spectrum's channel mean is taken in float64 a block at a time (no float64
    copy of every channel): the same density to the bit as of the whole mean."""
    from vocalmix.core import dsp
    from vocalmix.core.kernels import welch_density

    rng = np.random.default_rng(channels)
    x = (0.1 * rng.standard_normal((3 * dsp.FILTER_BLOCK + 123, channels))).astype(np.float32)
    f, p = dsp._mean_density(x, SR, dsp.THIRD_OCTAVE_NFFT)
    want = welch_density(dsp.channel_mean(np.asarray(x, dtype=np.float64)), SR,
                         dsp.THIRD_OCTAVE_NFFT)
    assert np.array_equal(f, want[0]) and np.array_equal(p, want[1])


def test_white_noise_bands_match_the_analytic_level_and_a_periodogram():
    rng = np.random.default_rng(3)
    sigma = 0.05
    x = sigma * rng.standard_normal(20 * SR)
    s = third_octave_spectrum_db(x, SR)
    ok = (CENTRES >= 100) & (HI <= SR / 2)
    expected = 10 * np.log10(2 * sigma**2 * (HI - LO) / (SR / 2))
    assert np.abs(s[ok] - expected[ok]).max() < 0.6
    # independent: the unwindowed periodogram of the whole signal (Parseval), summed per band
    spec = np.abs(np.fft.rfft(x)) ** 2 / x.size**2
    spec[1:-1] *= 2  # one-sided
    f = np.fft.rfftfreq(x.size, 1 / SR)
    ref = np.array([10 * np.log10(2 * spec[(f >= a) & (f < b)].sum())
                    for a, b in zip(LO, HI, strict=True)])
    assert np.abs(s[ok] - ref[ok]).max() < 0.3
    # the bands together hold the signal's mean square between their outer edges (white
    # noise: in proportion to that span of the spectrum)
    total = 10 * np.log10(np.nansum(10 ** (s / 10)) / 2)
    span = (HI[np.isfinite(s)].max() - LO[0]) / (SR / 2)
    assert total == pytest.approx(10 * np.log10(np.mean(x**2) * span), abs=0.1)


def test_bands_the_rate_cannot_hold_are_not_numbers_and_silence_is_minus_infinity():
    sr = 16000
    x = 0.1 * np.random.default_rng(0).standard_normal(3 * sr)
    s = third_octave_spectrum_db(x, sr)
    assert np.all(np.isnan(s[HI > sr / 2])) and np.all(np.isfinite(s[HI <= sr / 2]))
    z = third_octave_spectrum_db(np.zeros(sr), sr)
    assert np.all(np.isneginf(z[HI <= sr / 2]))


def _clicks(bpm: float, seconds: float, sr: int = SR) -> np.ndarray:
    x = np.zeros(int(seconds * sr), np.float32)
    burst = (np.random.default_rng(1).standard_normal(400) * np.hanning(400)).astype(np.float32)
    for k in np.arange(0.0, seconds - 0.05, 60.0 / bpm):
        i = int(k * sr)
        x[i : i + 400] += 0.2 * burst[: x.size - i]
    return x


def test_analyze_reports_tempo_spectrum_and_draws_them(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    beat, short = tmp_path / "beat.wav", tmp_path / "short.wav"
    sf.write(beat, _clicks(100.0, 12.0), SR, subtype="PCM_24")
    sf.write(short, _clicks(100.0, 2.0), SR, subtype="PCM_24")
    png = tmp_path / "look.png"
    assert main(["analyze", str(beat), str(short), "--json", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out[: out.rindex("]") + 1])
    assert rows[0]["tempo_bpm"] == pytest.approx(100.0, rel=0.02)
    assert rows[1]["tempo_bpm"] is None  # too short to read a pulse
    for r in rows:
        assert list(r["spectrum_db"]) == list(AUDIBLE_THIRD_OCTAVE_NOMINAL)
        assert r["spectrum_db"]["20000"] is None  # 22.4 kHz edge: past 44.1 kHz's Nyquist
        assert all(isinstance(v, float) for k, v in r["spectrum_db"].items() if k != "20000")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the one-line summary names the tempo (or says it is unclear)
    assert main(["analyze", str(beat), str(short), "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.search(r"tempo (99\.[5-9]|100\.[0-5]) BPM", lines[0]), lines[0]
    assert "tempo unclear" in lines[1]
    assert "spectral centre" in lines[0]
    # a silent file: said so, not "None LUFS"
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(SR), SR)
    assert main(["analyze", str(quiet), "-q"]) == 0
    line = capsys.readouterr().out
    assert "silent (under the -70 LUFS gate)" in line and "None" not in line


def test_the_plot_is_planned_before_any_work(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    beat = tmp_path / "beat.wav"
    sf.write(beat, _clicks(120.0, 6.0), SR)
    png = tmp_path / "look.png"
    png.write_bytes(b"mine")
    assert main(["analyze", str(beat), "--plot", str(png), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert png.read_bytes() == b"mine"
    assert main(["analyze", str(beat), "--plot", str(png), "-q", "--force"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    # never over an input (a WAV under a .png name is read by its content)
    odd = tmp_path / "take.png"
    sf.write(odd, _clicks(120.0, 6.0), SR, format="WAV")
    before = odd.read_bytes()
    assert main(["analyze", str(odd), "--plot", str(odd), "-q", "--force"]) == 2
    assert "is an input file" in capsys.readouterr().err
    assert odd.read_bytes() == before
    # a PNG under another name would mislead whatever opens it
    assert main(["analyze", str(beat), "--plot", str(tmp_path / "look.jpg"), "-q"]) == 2
    assert "give a .png name" in capsys.readouterr().err
    assert not (tmp_path / "look.jpg").exists()
    # without matplotlib: the extra to install, and nothing measured or written
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    other = tmp_path / "other.png"
    assert main(["analyze", str(beat), "--plot", str(other), "-q"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'vocalmix[plot]'" in err and not other.exists()


def _whole_and_in_blocks(path, monkeypatch, curves: bool = True):
    """``analyze``'s figures of ``path`` read whole, and read a block at a time (the file
    made to count as long)."""
    from vocalmix.frontends.cli import _analysis

    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "100000")
    whole = _analysis(str(path), curves=curves)
    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "0.01")
    seen = []
    blocks = _analysis(str(path), curves=curves, progress=seen.append)
    assert any("too long to hold whole" in str(e) for e in seen)  # it was
    return whole, blocks


@pytest.mark.parametrize("channels, offset", [(2, 0.0), (1, 0.0), (2, 0.02)])
def test_a_long_file_measured_in_blocks_reads_as_the_whole_file(tmp_path, monkeypatch,
                                                                channels, offset):
    """A file too long to hold whole (a DJ set) is checked and measured a block at a
    time: the same loudness, LRA, true peak and short-term curve (to the bit), the same
    spectrum within 0.01 dB and the same tempo within 0.2 BPM as read whole; a constant
    offset is measured, not taken out, as read whole."""
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=SR, duration_s=25.0, seed=4)
    x = (v + b)[:, :channels] + offset
    p = tmp_path / "set.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    (rw, cw), (rb, cb) = _whole_and_in_blocks(p, monkeypatch)
    for key in ("sample_rate", "channels", "duration_s", "integrated_lufs", "lra_lu",
                "true_peak_dbtp"):
        assert rb[key] == rw[key], key
    assert rb["tempo_bpm"] == pytest.approx(rw["tempo_bpm"], abs=0.2)
    np.testing.assert_array_equal(cb.short_term_lufs, cw.short_term_lufs)
    ok = np.isfinite(cw.spectrum_db)
    np.testing.assert_array_equal(ok, np.isfinite(cb.spectrum_db))
    assert np.abs(cb.spectrum_db[ok] - cw.spectrum_db[ok]).max() < 0.01


def test_a_long_silent_file_is_measured_as_silent(tmp_path, monkeypatch):
    p = tmp_path / "quiet.wav"
    sf.write(p, np.zeros((6 * SR, 2)), SR)
    (rw, _), (rb, _) = _whole_and_in_blocks(p, monkeypatch, curves=False)
    assert rb["integrated_lufs"] is None and rb == rw
