"""A copy of the backing in the vocal take (speaker bleed, or a mix given as the vocal):
found at its delay and level, never in a voice recorded alone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core import bleed as B

from conftest import data_root

MIR1K = data_root() / "karaoke" / "mir1k"
MUSDB = data_root() / "musdb18-7s" / "train"


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1))


def test_the_copys_delay_and_share_are_read_exactly_on_a_band_limited_pair():
    # at the analysis rate nothing is resampled: the take is a voice (independent noise)
    # plus the backing 30 ms late at a known gain, so the copy's share of the take's
    # energy is known (the first difference, which finds the lag, leaves both white)
    sr = B.ANALYSIS_RATE
    n = 60 * sr
    s, b = _noise(n, 1), _noise(n, 2)
    d = int(0.030 * sr)
    late = np.concatenate([np.zeros((d, 1)), b[:-d]])
    for gain in (0.25, 0.5, 1.0):
        v = s + gain * late
        r = B.backing_in_vocal(v, b, sr)
        assert r is not None
        assert r.lag_ms == pytest.approx(30.0, abs=0.3)
        assert r.windows == r.of == B.WINDOWS
        share = gain**2 / (1.0 + gain**2)
        assert r.level_db == pytest.approx(10 * np.log10(share), abs=0.3)


def test_a_copy_arriving_early_reads_a_negative_delay():
    sr = B.ANALYSIS_RATE
    n = 40 * sr
    s, b = _noise(n, 3), _noise(n, 4)
    d = int(0.2 * sr)
    early = np.concatenate([b[d:], np.zeros((d, 1))])
    r = B.backing_in_vocal(s + 0.5 * early, b, sr)
    assert r is not None and r.lag_ms == pytest.approx(-200.0, abs=0.3)


def test_independent_signals_short_pairs_and_a_silent_take_read_no_copy():
    sr = 44100
    n = 30 * sr
    assert B.backing_in_vocal(_noise(n, 5), _noise(n, 6), sr) is None
    assert B.backing_in_vocal(_noise(sr, 7), _noise(sr, 7), sr) is None  # 1 s: too short
    assert B.backing_in_vocal(np.zeros((n, 2)), _noise(n, 8), sr) is None


def test_a_held_tone_over_the_same_tone_is_not_a_copy():
    # two sines of one pitch correlate as well at every period: no single delay
    sr = 44100
    t = np.arange(12 * sr) / sr
    voice = (0.5 * np.sin(2 * np.pi * 440.0 * t))[:, None]
    backing = (0.1 * np.sin(2 * np.pi * 440.0 * t + 1.0))[:, None]
    assert B.backing_in_vocal(voice, backing, sr) is None


def test_a_copy_outside_the_lags_searched_is_not_claimed():
    sr = B.ANALYSIS_RATE
    n = 60 * sr
    s, b = _noise(n, 9), _noise(n, 10)
    d = int(2.5 * sr)  # beyond MAX_LAG_S
    late = np.concatenate([np.zeros((d, 1)), b[:-d]])
    assert B.backing_in_vocal(s + 0.5 * late, b, sr) is None


def test_the_warning_says_share_level_and_delay():
    text = B.bleed_warning(B.BackingBleed(level_db=-10.0, lag_ms=12.0, windows=4, of=4))
    assert text.startswith("warning:")
    assert "about 10 %" in text and "-10.0 dB" in text and "12 ms after the backing" in text
    assert "latency" not in text  # 12 ms: a room's delay
    text = B.bleed_warning(B.BackingBleed(level_db=-12.0, lag_ms=150.0, windows=4, of=4))
    assert "150 ms late as well" in text and "move the take that much earlier" in text
    text = B.bleed_warning(B.BackingBleed(level_db=-1.0, lag_ms=0.0, windows=1, of=1))
    assert "in time with the backing" in text and "a mix given as the vocal" in text
    assert "or as the backing" in text


def _musdb_pairs(limit: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    from vocalmix.training.data import load_stem_mp4

    files = sorted(MUSDB.glob("*.stem.mp4"))
    if not files:
        pytest.skip(f"no MUSDB18 clips under {MUSDB} (set VOCALMIX_DATA)")
    return [(f.name, *load_stem_mp4(f)) for f in files[:limit]]


def _mir1k_pairs(limit: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    files = sorted(MIR1K.glob("*.flac"))
    if not files:
        pytest.skip(f"no MIR-1K clips under {MIR1K} (set VOCALMIX_DATA)")
    out = []
    for f in files[:limit]:
        x, sr = sf.read(f, dtype="float32")  # left: the backing, right: the vocal
        out.append((f.name, x[:, 1:2], x[:, 0:1], sr))
    return out


def _coloured_copy(b: np.ndarray, sr: int, delay_s: float) -> np.ndarray:
    """``b`` as a speaker in a room would give it back: late, and dulled (a one-pole
    low-pass near 2 kHz)."""
    from vocalmix.core.kernels import lfilter

    d = int(round(delay_s * sr))
    late = np.concatenate([np.zeros((d, b.shape[1]), np.float32), b[:-d]])
    return lfilter([0.3], [1.0, -0.7], late.astype(np.float64), axis=0).astype(np.float32)


@pytest.mark.parametrize("which", ["mir1k", "musdb"])
def test_voices_recorded_alone_carry_no_copy(which):
    # a sample of the clean pairs (all of them: the slow test below)
    pairs = _mir1k_pairs(40) if which == "mir1k" else _musdb_pairs(12)
    flagged = [(name, B.backing_in_vocal(v, b, sr)) for name, v, b, sr in pairs]
    assert [f for f in flagged if f[1] is not None] == []


def test_a_mix_given_as_either_input_and_a_loud_speaker_copy_are_found():
    pairs = _musdb_pairs(12)
    for name, v, b, sr in pairs:
        r = B.backing_in_vocal(v + b, b, sr)
        assert r is not None, name
        assert abs(r.lag_ms) <= 0.3 and r.level_db > -8.0, (name, r)
    for name, v, b, sr in pairs[:4]:  # the mix given as the backing instead
        r = B.backing_in_vocal(v, v + b, sr)
        assert r is not None and abs(r.lag_ms) <= 0.3, (name, r)
    found = 0
    for name, v, b, sr in pairs:
        copy = _coloured_copy(b, sr, 0.012)
        gain = np.sqrt((v**2).mean() / (copy**2).mean())  # as loud as the voice
        r = B.backing_in_vocal(v + gain * copy, b, sr)
        if r is not None:
            found += 1
            assert r.lag_ms == pytest.approx(12.0, abs=0.5), (name, r)
    assert found >= len(pairs) - 1


def test_the_estimate_warns_of_a_mix_given_as_the_vocal_and_not_of_a_take():
    from vocalmix.pipeline import estimate_params
    from vocalmix.synth import synthesize_song

    sr = 44100
    v, b = synthesize_song(sample_rate=sr, duration_s=12.0)
    clean = estimate_params(v, b, sr, method="baseline")
    assert not any("copy of the backing" in n for n in clean.notes)
    mixed = estimate_params(v + b, b, sr, method="baseline")
    warn = [n for n in mixed.notes if "copy of the backing" in n]
    assert len(warn) == 1 and warn[0].startswith("warning:")
    assert warn[0] in mixed.params.provenance.notes


@pytest.mark.slow
def test_no_clean_pair_of_the_shared_data_carries_a_copy():
    pairs = _mir1k_pairs() + _musdb_pairs()
    ikala = data_root() / "karaoke" / "ikala"
    for f in sorted(ikala.glob("*.wav")):  # left: the accompaniment, right: the vocal
        x, sr = sf.read(f, dtype="float32")
        pairs.append((f.name, x[:, 1:2], x[:, 0:1], sr))
    flagged = [(name, B.backing_in_vocal(v, b, sr)) for name, v, b, sr in pairs]
    assert [f for f in flagged if f[1] is not None] == []
    assert len(pairs) >= 100
