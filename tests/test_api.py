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


def test_readme_loop_over_takes_runs_and_mixes_as_the_paths_do(tmp_path, monkeypatch, song):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## In your program", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]  # the loop over takes
    assert "for take in takes" in code
    v, b = song
    write_audio(tmp_path / "take.wav", v, 44100)
    write_audio(tmp_path / "take2.wav", v[::-1].copy(), 44100)
    import soundfile as sf

    sf.write(tmp_path / "instrumental.mp3", b, 44100, format="MP3")
    monkeypatch.chdir(tmp_path)
    scope: dict = {"takes": ["take.wav", "take2.wav"]}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    # the read-only backing, decoded once, mixes as the path given each time does
    last = scope["result"]
    again = vocalmix.mix("take2.wav", "instrumental.mp3")
    assert np.array_equal(last.mix, again.mix)
    assert last.params.to_json() == again.params.to_json()
    assert not scope["backing"].samples.flags.writeable


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
    # the two files decode on two threads: when both fail, the vocal's error is the one
    (tmp_path / "text.wav").write_text("not audio")
    for backing in (tmp_path / "missing.wav", tmp_path / "text.wav"):
        with pytest.raises(vocalmix.AudioError, match="^vocal") as e:
            vocalmix.mix(tmp_path / "text.wav", backing)
    with pytest.raises(vocalmix.AudioError, match="^backing"):
        write_audio(tmp_path / "v.wav", v, 44100)
        vocalmix.mix(tmp_path / "v.wav", tmp_path / "text.wav")


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


def test_wrong_arguments_are_vocalmix_errors_that_say_what_to_give(song):
    """Each mistake a caller can make at the API boundary is a VocalmixError naming the
    argument, raised before any analysis: no AttributeError, int(nan) or format-code
    error from deep inside."""
    v, b = song
    sr = 44100
    bad = [
        (dict(sample_rate=float("nan")), vocalmix.AudioError, r"sample rate nan Hz"),
        (dict(sample_rate=0), vocalmix.AudioError, r"sample rate 0 Hz"),
        (dict(params={}), vocalmix.ParamsError, r"params must be a MixParams"),
        (dict(amount="1"), vocalmix.ParamsError, r"amount must be a number, not str"),
        (dict(vocal_to_mix_lu=True), vocalmix.ParamsError, r"vocal_to_mix_lu must be a num"),
        (dict(locks=[1]), vocalmix.ParamsError, r"locks must be a list of setting paths"),
        (dict(mix_rate=0), vocalmix.AudioError, r"output sample rate 0 Hz"),
    ]
    for kwargs, err, match in bad:
        args = {"sample_rate": sr, **kwargs}
        with pytest.raises(err, match=match):
            vocalmix.mix(v, b, **args)
    with pytest.raises(vocalmix.AudioError, match=r"looks like \(channels, samples\).*x\.T"):
        vocalmix.mix(v, b.T, sr)
    with pytest.raises(vocalmix.AudioError, match="float or integer array"):
        vocalmix.mix(v.astype(np.complex64), b, sr)
    with pytest.raises(vocalmix.ParamsError, match="params must be a MixParams, its dict"):
        vocalmix.render(v, b, None, sr)  # type: ignore[arg-type]
    # a single lock may be given as its path; None is no locks, or no progress
    assert vocalmix.mix(v, b, sr, method="baseline", progress=None).params is not None
    p = vocalmix.estimate(v, b, sr, method="baseline", locks="vocal.gain_db")
    assert p.locks == ("vocal.gain_db",)
    assert vocalmix.estimate(v, b, sr, method="baseline", locks=None).locks == ()  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["baseline", "model"])
def test_a_backing_below_the_loudness_gate_is_a_clear_error_for_both_methods(song, method):
    """Noise at -86 dBFS is not silence (its peak passes the input check) but is below
    BS.1770-4's -70 LUFS gate: no vocal level can be set against it. Both methods say
    so; the model's dynamics analysis raised a bare ValueError (an internal error)."""
    v, _ = song
    quiet = (np.random.default_rng(0).standard_normal(v.shape) * 10 ** (-86 / 20))
    with pytest.raises(vocalmix.TargetUnreachableError, match="below BS.1770-4's absolute"
                                                               " gate of -70 LUFS"):
        vocalmix.mix(v, quiet.astype(np.float32), 44100, method=method)


@pytest.mark.parametrize("method", ["baseline", "model"])
def test_a_vocal_too_quiet_to_lift_says_so_and_what_to_do(song, method):
    """A take 70 dB down (peaks near -75 dBFS) needs more than the +60 dB the vocal gain
    may give: the error names the take's loudness and the remedy, not only the range."""
    v, b = song
    with pytest.raises(vocalmix.TargetUnreachableError,
                       match=r"the processed vocal measures -\d+\.\d LUFS before its gain, "
                             r"too quiet for \+60 dB to lift it there: normalise the take"):
        vocalmix.mix((v * 10 ** (-70 / 20)).astype(np.float32), b, 44100, method=method)


def test_a_mix_result_lists_its_warnings():
    import vocalmix

    sr = 16000
    rng = np.random.default_rng(8)
    hiss = (0.003 * rng.standard_normal((12 * sr, 2))).astype(np.float32)
    t = np.arange(12 * sr) / sr
    backing = np.repeat((0.1 * np.sin(2 * np.pi * 110 * t))[:, None], 2, 1).astype(np.float32)
    r = vocalmix.mix(hiss, backing, sr, method="baseline")
    assert any("loudness hardly moves" in w for w in r.warnings)
    assert all(("warning: " + w) in r.notes for w in r.warnings)


def test_an_audio_built_by_hand_in_mono_is_laid_out_as_an_array_is(song):
    # an Audio of (n, 1) or (n,) samples reached the render as it was and failed there
    # with a bare ValueError
    v, b = song
    sr = 44100
    mono = v.mean(axis=1)
    want = vocalmix.mix(mono[:, None], b, sr, method="baseline").mix
    for samples in (mono[:, None], mono, mono.astype(np.float64)):
        got = vocalmix.mix(vocalmix.Audio(samples, sr, "<take>"), b, sr, method="baseline")
        assert np.array_equal(got.mix, want)
    with pytest.raises(vocalmix.VocalmixError):
        vocalmix.mix(vocalmix.Audio(np.full((sr, 2), np.nan, np.float32), sr), b, sr)
