"""The public Python API: names, inputs, and the README's in-process example."""

from __future__ import annotations

import re

import numpy as np
import pytest

import vocalmix
from vocalmix.core.audio import write_audio
from vocalmix.synth import synthesize_song

from conftest import REPO


@pytest.fixture(scope="module")
def song():
    return synthesize_song(sample_rate=44100, duration_s=4.0, seed=3)


def test_public_names_import_from_the_package():
    from vocalmix import MixParams, MixResult, VocalmixError, estimate, mix, render  # noqa: F401

    assert set(vocalmix.__all__) >= {"mix", "estimate", "render", "read_audio", "write_audio",
                                     "MixParams", "VocalmixError", "ParamsError"}
    for name in vocalmix.__all__:
        assert getattr(vocalmix, name) is not None
    with pytest.raises(AttributeError):
        vocalmix.no_such_name  # noqa: B018


def test_readme_in_process_example_runs(tmp_path, monkeypatch, song):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## In your program", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    v, b = song
    write_audio(tmp_path / "take.wav", v, 44100)
    write_audio(tmp_path / "instrumental.wav", b, 44100)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    result, again = scope["result"], scope["again"]
    assert (tmp_path / "mix.wav").exists()
    a, b_ = result.params.achieved, again.params.achieved
    assert b_.vocal_to_mix_lu == pytest.approx(a.vocal_to_mix_lu + 1.0, abs=0.05)


def test_arrays_need_a_rate_and_give_the_same_mix_as_files(tmp_path, song):
    v, b = song
    with pytest.raises(vocalmix.ParamsError, match="sample_rate"):
        vocalmix.mix(v, b)
    r = vocalmix.mix(v, b, 44100, method="baseline")
    assert r.mix.shape == v.shape and r.sample_rate == 44100 and r.mix.dtype == np.float32
    # render of the returned params reproduces the mix bit for bit
    again = vocalmix.render(v, b, r.params, 44100)
    assert np.array_equal(again.mix, r.mix)
    # a params dict and a params file are accepted too
    (tmp_path / "p.json").write_text(r.params.to_json())
    assert np.array_equal(vocalmix.render(v, b, tmp_path / "p.json", 44100).mix, r.mix)
    assert np.array_equal(vocalmix.render(v, b, r.params.to_dict(), 44100).mix, r.mix)
    est = vocalmix.estimate(v, b, 44100, method="baseline")
    assert est.vocal == r.params.vocal


def test_bad_input_raises_the_specific_error(tmp_path, song):
    v, b = song
    with pytest.raises(vocalmix.AudioError) as e:
        vocalmix.mix(tmp_path / "missing.wav", b, 44100)
    assert e.value.code == "audio.not_found"
    with pytest.raises(vocalmix.AudioError, match="silent"):
        vocalmix.mix(np.zeros_like(v), b, 44100)


def test_a_phone_vocal_over_a_cd_backing_mixes_at_the_backing_rate(song):
    """16 kHz vocal over a 44.1 kHz backing: a 44.1 kHz mix whose backing is the file's
    samples times the backing gain (no resampling of the backing)."""
    import soxr

    v, b = song
    v16 = soxr.resample(v, 44100, 16000).astype(np.float32)
    r = vocalmix.mix(vocalmix.Audio(v16, 16000), vocalmix.Audio(b, 44100),
                     method="baseline")
    assert r.sample_rate == 44100 and r.mix.shape[0] == b.shape[0]
    g = np.float32(10.0 ** (r.params.backing.gain_db / 20.0))
    assert np.array_equal(r.backing, (b * g).astype(np.float32))
    assert any("vocal resampled from 16000 Hz to 44100 Hz" in n for n in r.notes)


def test_the_steering_controls_are_keyword_arguments_of_the_api(song):
    from vocalmix.estimators.presets import preset_reverb, presets

    v, b = song
    r = vocalmix.mix(v, b, 44100, method="baseline", mix_lufs=-14.0, amount=0.5)
    assert r.params.amount == 0.5 and r.params.targets.mix_lufs == -14.0
    assert r.params.achieved.mix_integrated_lufs == pytest.approx(-14.0, abs=0.3)
    name = sorted(presets())[0]
    p = vocalmix.estimate(v, b, 44100, method="baseline", reverb_preset=name,
                          locks=("vocal.gain_db",))
    assert p.locks == ("vocal.gain_db",)
    assert p.vocal.reverb.decay_s == preset_reverb(name).decay_s
