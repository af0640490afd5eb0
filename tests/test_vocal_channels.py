"""A stereo vocal recorded on one channel only is centred, and one whose channels are in
opposite polarity gets one flipped; every other vocal keeps its channels."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.audio import (
    ANTIPHASE_CORRELATION,
    ONE_SIDED_DB,
    OUT_OF_PHASE_WARN_CORRELATION,
    Audio,
    AudioReader,
    _channel_pass,
    apply_channel_fix,
    prepare_pair,
    vocal_channel_fix,
)
from vocalmix.frontends.cli import main

SR = 16000


def _voice(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    phrases = (np.sin(2 * np.pi * t / 4.0) > -0.5) * np.exp(-(t % 4.0) / 3.0)
    x = 0.2 * syllables * phrases * np.sin(2 * np.pi * 220 * t) + 1e-4 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def _fix(x: np.ndarray):
    mean, _hi, _lo, products = _channel_pass(x, gram=True)
    return vocal_channel_fix(products, mean * x.shape[0], x.shape[0], "vocal v.wav")


def test_the_channels_are_judged_by_their_energy_and_correlation():
    m = _voice()
    rng = np.random.default_rng(3)
    t = np.arange(m.size) / SR
    other = (0.1 * np.sin(2 * np.pi * 331 * t)).astype(np.float32)  # another voice
    cases = {
        "left only": (np.stack([m, np.zeros_like(m)], 1), ("one", 0)),
        "right only, bleed 40 dB down": (np.stack([0.01 * other, m], 1), ("one", 1)),
        "antiphase": (np.stack([m, -m], 1), ("flip", 1)),
        "antiphase, unequal": (np.stack([m, -0.5 * m + 0.01 * other], 1), ("flip", 1)),
        "mono": (np.stack([m, m], 1), None),
        "largely out of phase (a produced effect?)":
            (np.stack([m, -0.9 * m + 0.3 * other], 1), "warn"),
        "panned 20 dB": (np.stack([m, 0.1 * m], 1), None),
        "wide (decorrelated reverb)": (np.stack([m + 0.3 * rng.standard_normal(m.size)
                                                 .astype(np.float32) * 0.05, m], 1), None),
    }
    for name, (x, want) in cases.items():
        fix, note = _fix(x.astype(np.float32))
        if want == "warn":
            assert fix is None and note is not None and note.startswith("warning:"), name
            continue
        assert fix == want, name
        assert (note is None) == (want is None), name
    assert (ONE_SIDED_DB, ANTIPHASE_CORRELATION, OUT_OF_PHASE_WARN_CORRELATION) == (
        30.0, -0.99, -0.5)


def test_a_constant_offset_is_not_a_channels_content():
    m = _voice()
    x = np.stack([m, np.full_like(m, 0.01)], 1)  # the right input: DC only
    assert _fix(x)[0] == ("one", 0)


def test_the_fix_is_exact():
    m = _voice()
    x = np.stack([m, -m], 1)
    assert np.array_equal(apply_channel_fix(x, ("flip", 1)), np.stack([m, m], 1))
    y = np.stack([np.zeros_like(m), m], 1)
    assert np.array_equal(apply_channel_fix(y, ("one", 1)), np.stack([m, m], 1))
    assert apply_channel_fix(y, None) is y


def test_prepare_pair_fixes_the_vocal_only_and_says_so():
    m = _voice()
    left = np.stack([m, np.zeros_like(m)], 1)
    v, b, _sr, notes = prepare_pair(Audio(left, SR, "vocal v.wav"), Audio(left, SR, "backing"))
    assert np.array_equal(v, np.stack([m, m], 1)) and np.array_equal(b, left)
    assert any("the right channel is silent" in n for n in notes)
    v2, _b, _sr, notes2 = prepare_pair(Audio(left, SR, "vocal v.wav"),
                                       Audio(left, SR, "backing"), vocal_channels=False)
    assert np.array_equal(v2, left) and not any("channel" in n for n in notes2)


def test_a_one_sided_or_antiphase_take_mixes_as_the_same_take_in_mono(tmp_path, capsys):
    """The command line: a take on the left channel only, and the same take with its right
    channel inverted, give the very mix of the take as a mono file, with a note."""
    m = _voice()
    b = tmp_path / "backing.wav"
    t = np.arange(m.size) / SR
    sf.write(b, np.stack([0.1 * np.sin(2 * np.pi * 110 * t)] * 2, 1).astype(np.float32), SR)
    takes = {"mono": m[:, None], "left": np.stack([m, np.zeros_like(m)], 1),
             "antiphase": np.stack([m, -m], 1)}
    mixes = {}
    for name, x in takes.items():
        sf.write(tmp_path / f"{name}.wav", x, SR, subtype="FLOAT")
        code = main(["mix", str(tmp_path / f"{name}.wav"), str(b), "-o",
                     str(tmp_path / f"mix-{name}.wav"), "--method", "baseline"])
        err = capsys.readouterr().err
        assert code == 0, err
        mixes[name] = sf.read(tmp_path / f"mix-{name}.wav")[0]
        if name != "mono":
            assert ("used on both sides" if name == "left" else "polarity is flipped") in err
    assert np.array_equal(mixes["left"], mixes["mono"])
    assert np.array_equal(mixes["antiphase"], mixes["mono"])


def test_the_long_input_reader_fixes_a_vocal_as_the_whole_file_path_does(tmp_path):
    m = _voice()
    p = tmp_path / "left.wav"
    sf.write(p, np.stack([m, np.zeros_like(m)], 1), SR, subtype="FLOAT")
    r = AudioReader(p, label="vocal left.wav").scan("vocal", vocal_channels=True)
    assert any("used on both sides" in n for n in r.notes)
    whole = np.concatenate(list(r.blocks()))
    assert np.array_equal(whole, np.stack([m, m], 1))
    assert np.array_equal(r.read(100, 500), whole[100:600])
    plain = AudioReader(p, label="backing left.wav").scan("backing")
    assert np.array_equal(np.concatenate(list(plain.blocks()))[:, 1], np.zeros_like(m))


@pytest.mark.parametrize("rho", [-0.3, 0.0, 0.9])
def test_a_correlation_above_the_bounds_is_left_alone_without_a_word(rho):
    rng = np.random.default_rng(9)
    a, n = rng.standard_normal((2, 40000))
    x = np.stack([a, rho * a + np.sqrt(1 - rho**2) * n], 1).astype(np.float32)
    assert _fix(x) == (None, None)


def test_a_reference_mixs_vocal_stem_keeps_its_channels(tmp_path):
    """A reference is a human mix: its vocal stem is read as the engineer left it (its
    balance is measured from it), even when it is on one channel only."""
    import argparse

    from vocalmix.frontends.cli import _reference

    m = _voice()
    rv, rb = tmp_path / "ref_vocal.wav", tmp_path / "ref_backing.wav"
    left = np.stack([m, np.zeros_like(m)], 1)
    sf.write(rv, left, SR, subtype="FLOAT")
    sf.write(rb, np.stack([m, m], 1), SR, subtype="FLOAT")
    args = argparse.Namespace(reference_vocal=str(rv), reference_backing=str(rb),
                              fold="error", debug=False)
    v, _b = _reference(args, SR, lambda _m: None)
    assert np.array_equal(v, left)


def test_the_summary_names_a_master_gain_that_is_not_zero():
    from dataclasses import replace

    from vocalmix.core.params import MixParams
    from vocalmix.frontends.cli import _summary

    p = MixParams()
    assert "master gain" not in _summary(p).split("achieved")[0]
    down = replace(p, master=replace(p.master, gain_db=-1.83))
    assert "master gain -1.83 dB" in _summary(down)


def test_the_pair_checked_on_two_threads_reports_as_one_after_the_other():
    """prepare_pair checks both inputs at once: the vocal's error when both are silent,
    the backing's when only it is, and the notes in the vocal-then-backing order."""
    from vocalmix.core.audio import Audio, prepare_pair
    from vocalmix.core.errors import SilentAudioError

    sr = 44100
    rng = np.random.default_rng(5)
    sound = (rng.standard_normal((sr, 2)) * 0.1).astype(np.float32)
    silent = np.zeros((sr, 2), np.float32)

    def audio(x: np.ndarray, name: str) -> Audio:
        return Audio(x, sr, name, 2, [])

    with pytest.raises(SilentAudioError, match="vocal"):
        prepare_pair(audio(silent, "v.wav"), audio(silent, "b.wav"))
    with pytest.raises(SilentAudioError, match="backing"):
        prepare_pair(audio(sound, "v.wav"), audio(silent, "b.wav"))
    offset = sound + np.float32(0.05)  # a DC offset in each: a note for each
    _v, _b, _sr, notes = prepare_pair(audio(offset, "v.wav"), audio(offset, "b.wav"))
    said = [n for n in notes if "offset" in n.lower()]
    assert len(said) == 2 and "vocal" in said[0] and "backing" in said[1]
