"""The no-voice check: a take of breaths, sibilants or noise (nobody singing) is told
apart from a voice by its pitch track (how periodic its sounding frames are, and how
many are voiced), and said as a warning; every real vocal of the shared data passes
(``tests/test_steady_take.py`` checks them, decoded once for both checks)."""

from __future__ import annotations

import numpy as np
import pytest

import vocalmix
from vocalmix.estimators.features import (
    NO_VOICE_PERIODICITY,
    NO_VOICE_VOICED_SHARE,
    Voicing,
    voicing,
)
from vocalmix.synth import synthesize_song

SR = 44100


def _band_noise(n: int, lo_hz: float, hi_hz: float, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spectrum[(f < lo_hz) | (f > hi_hz)] = 0.0
    y = np.fft.irfft(spectrum, n)
    return y / np.std(y)


def _bursts(lo_hz: float, hi_hz: float, dur_s: float, period_s: float, seconds: float,
            rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise bursts (Hann-shaped, random levels): breaths in 300 Hz-4 kHz,
    sibilants in 4.5-10 kHz."""
    n = int(seconds * SR)
    x = np.zeros(n)
    k = int(dur_s * SR)
    for t0 in np.arange(0.5, seconds - 1.0, period_s):
        i = int(t0 * SR)
        x[i:i + k] += _band_noise(k, lo_hz, hi_hz, rng) * np.hanning(k) * rng.uniform(0.3, 1)
    return x


def _take(kind: str, seconds: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    breaths = _bursts(300.0, 4000.0, 0.6, 2.5, seconds, rng)
    sibilants = _bursts(4500.0, 10000.0, 0.15, 1.3, seconds, rng)
    x = {"breaths": breaths + 1e-4 * rng.standard_normal(n),
         "sibilants": sibilants,
         "breaths_and_sibilants": breaths + sibilants,
         "room_tone": 1e-3 * rng.standard_normal(n),
         "red_noise": np.cumsum(rng.standard_normal(n)) * 1e-3}[kind]
    x = 0.3 * x / np.abs(x).max()
    return np.repeat(x.astype(np.float32)[:, None], 2, axis=1)


@pytest.mark.parametrize("kind", ["breaths", "sibilants", "breaths_and_sibilants",
                                  "room_tone", "red_noise"])
def test_breaths_sibilants_and_noise_hold_no_voice_with_a_margin(kind):
    v = voicing(_take(kind), SR)
    assert not v.pitched
    assert v.n_excerpts >= 1
    # well under both thresholds (measured 0.11-0.20 and 0-0.04)
    assert v.periodicity < 0.85 * NO_VOICE_PERIODICITY, v
    assert v.voiced_share < NO_VOICE_VOICED_SHARE, v
    w = v.warning()
    assert w is not None and w.startswith("warning: the vocal holds no pitched voice")


def test_a_sung_take_holds_a_voice_and_the_reading_is_level_invariant():
    vocal, _backing = synthesize_song(sample_rate=SR, duration_s=20.0)
    v = voicing(vocal, SR)
    assert v.pitched and v.warning() is None
    assert v.periodicity > 2 * NO_VOICE_PERIODICITY
    quiet = voicing((vocal * 10.0 ** (-40 / 20)).astype(np.float32), SR)
    assert quiet.periodicity == pytest.approx(v.periodicity, abs=1e-3)
    assert quiet.voiced_share == pytest.approx(v.voiced_share, abs=1e-2)


def test_either_figure_alone_counts_as_a_voice():
    assert Voicing(0.0, NO_VOICE_PERIODICITY, 4).pitched  # a screamed vocal's shape
    assert Voicing(NO_VOICE_VOICED_SHARE, 0.1, 4).pitched
    assert not Voicing(0.9 * NO_VOICE_VOICED_SHARE, 0.9 * NO_VOICE_PERIODICITY, 4).pitched


def test_a_sung_take_mixed_over_white_noise_as_loud_as_the_voice_still_holds_one():
    vocal, _backing = synthesize_song(sample_rate=SR, duration_s=20.0)
    rng = np.random.default_rng(2)
    p = float(np.mean(vocal.astype(np.float64) ** 2))
    noisy = vocal + np.sqrt(p) * rng.standard_normal(vocal.shape)
    assert voicing(noisy.astype(np.float32), SR).pitched


@pytest.mark.parametrize("method", ["baseline", "model"])
def test_the_estimate_warns_of_a_take_without_a_voice_and_not_of_a_sung_one(method):
    vocal, backing = synthesize_song(sample_rate=SR, duration_s=12.0)
    breaths = _take("breaths_and_sibilants", 12.0)[: len(backing)]
    warned = [n for n in vocalmix.estimate(breaths, backing, SR, method=method).provenance.notes
              if "no pitched voice" in n]
    assert len(warned) == 1 and warned[0].startswith("warning:")
    sung = vocalmix.estimate(vocal, backing, SR, method=method).provenance.notes
    assert not any("no pitched voice" in n for n in sung)


def test_the_live_settle_keeps_a_warning_a_warning():
    """The settle's estimate on a take's first seconds says what it finds as a warning
    (shown by ``vocalmix live -q`` too), of those seconds."""
    from vocalmix.core.progress import warnings_of
    from vocalmix.live import settle_estimate

    _vocal, backing = synthesize_song(sample_rate=SR, duration_s=6.0)
    breaths = _take("breaths_and_sibilants", 6.0)[: len(backing)]
    notes = settle_estimate(breaths, backing, SR, "model").notes
    said = warnings_of(notes)
    assert len(said) == 1 and said[0].startswith("settle on the first 6.0 s: the vocal "
                                                 "holds no pitched voice"), notes
    assert all(n.startswith(("settle on the first", "warning: settle on the first"))
               for n in notes)


def test_the_warning_is_said_once_whichever_reads_it(monkeypatch):
    """The model's level provider reads the voice from its excerpts' features; when the
    model cannot run (its weights missing), the pipeline reads it instead: one warning
    either way."""
    from vocalmix.core.errors import ModelError
    from vocalmix.estimators import level

    _vocal, backing = synthesize_song(sample_rate=SR, duration_s=12.0)
    breaths = _take("breaths_and_sibilants", 12.0)[: len(backing)]

    def missing():
        raise ModelError("level model: its weights are missing (a test)")

    monkeypatch.setattr(level, "shipped_model", missing)
    p = vocalmix.estimate(breaths, backing, SR, method="model")
    assert p.provenance.method == "baseline"
    assert sum("no pitched voice" in n for n in p.provenance.notes) == 1
