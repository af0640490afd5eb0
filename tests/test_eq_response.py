"""The EQ stage's computed frequency response against what pedalboard actually renders."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.dsp import eq_band_gain_db, eq_response_db
from vocalmix.core.params import EqBand, HighPass, VocalChain
from vocalmix.core.render import eq_stage

CHAINS = {
    "high-pass only": VocalChain(highpass=HighPass(cutoff_frequency_hz=120.0)),
    "bands, no high-pass": VocalChain(
        highpass=HighPass(enabled=False),
        eq_bands=(EqBand("peak", 2500.0, 6.0, 1.2), EqBand("low_shelf", 200.0, -4.0, 0.7),
                  EqBand("high_shelf", 8000.0, 3.0, 0.707), EqBand("peak", 500.0, 0.0, 2.0))),
    "everything, a band above the guard": VocalChain(
        highpass=HighPass(cutoff_frequency_hz=300.0),
        eq_bands=(EqBand("peak", 1000.0, -9.0, 4.0), EqBand("peak", 19000.0, 5.0, 1.0))),
}


def rendered_response_db(chain: VocalChain, sample_rate: int, freqs_hz: np.ndarray) -> np.ndarray:
    """The magnitude response of pedalboard's render: an impulse through ``eq_stage``."""
    n = 1 << 17
    x = np.zeros((n, 2), np.float32)
    x[0] = 1.0
    y = eq_stage(x, sample_rate, chain.highpass, chain.eq_bands)[:, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y))
    bins = np.fft.rfftfreq(n, 1.0 / sample_rate)
    return 20 * np.log10(np.interp(freqs_hz, bins, spectrum))


@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_eq_response_matches_the_rendered_response(name, sample_rate):
    chain = CHAINS[name]
    freqs = np.geomspace(20.0, 0.45 * sample_rate, 200)
    computed = eq_response_db(chain, freqs, sample_rate)
    rendered = rendered_response_db(chain, sample_rate, freqs)
    assert np.abs(computed - rendered).max() < 0.01, name
    assert np.ptp(rendered) > 3.0  # the chain does shape the spectrum


def test_band_gain_is_the_mean_power_of_the_response():
    chain = CHAINS["bands, no high-pass"]
    edges = np.array([100.0, 300.0, 1000.0, 4000.0, 20000.0])
    sr = 44100
    gains = eq_band_gain_db(chain, edges, sr)
    # a fine grid of the same band gives the same mean power
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        f = np.geomspace(lo, min(hi, 0.45 * sr), 2000)
        fine = 10 * np.log10(np.mean(10 ** (eq_response_db(chain, f, sr) / 10)))
        assert gains[i] == pytest.approx(fine, abs=0.3)
    assert gains[2] > 2.0  # the 2.5 kHz boost
