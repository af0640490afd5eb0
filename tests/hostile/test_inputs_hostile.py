"""Decoded-size bombs and absurd JSON against the library and the command line.

The limit on decoded samples is checked from the file's header before a sample is
decoded (the reader is replaced by one that fails, to prove it); JSON numbers and nesting
that crash Python's own parser are a ParamsError, and a one-line error on the command line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core import audio
from vocalmix.core.audio import decoded_bytes, prepare_pair, read_audio, read_params
from vocalmix.core.errors import AudioTooLargeError, ParamsError
from vocalmix.core.params import MixParams
from vocalmix.frontends.cli import main

SR = 44100


@pytest.fixture
def no_decoding(monkeypatch):
    """Any attempt to decode samples fails the test."""
    def refuse(*_a, **_k):
        raise AssertionError("samples were decoded before the size check")

    monkeypatch.setattr(sf.SoundFile, "read", refuse)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"),
                                     ("MP3", "mp3")])
def test_too_large_is_refused_from_the_header(tmp_path, fmt, ext, monkeypatch):
    x = (0.1 * np.random.default_rng(0).standard_normal((SR * 2, 2))).astype(np.float32)
    p = tmp_path / f"take.{ext}"
    sf.write(p, x, SR, format=fmt)
    info = sf.info(str(p))
    # the header's frame count bounds what decoding yields (MP3 included)
    decoded = read_audio(p, label="take")
    assert decoded.samples.shape[0] <= info.frames
    assert decoded_bytes(info.frames, info.channels) >= decoded.samples.nbytes

    def refuse(*_a, **_k):
        raise AssertionError("samples were decoded before the size check")

    monkeypatch.setattr(sf.SoundFile, "read", refuse)
    size = decoded_bytes(info.frames, info.channels)
    with pytest.raises(AssertionError, match="decoded before"):  # within the limit: decoded
        read_audio(p, label="take", max_decoded_bytes=size)
    with pytest.raises(AudioTooLargeError, match=r"take: 2\.0 s of 2 channel\(s\) at 44100 Hz"):
        read_audio(p, label="take", max_decoded_bytes=size - 1)


def test_mono_and_many_channels_count_as_what_they_become(tmp_path, no_decoding):
    """Mono is decoded, then duplicated to stereo; 8 channels are decoded before a fold:
    each costs what its largest form takes."""
    for ch, per_frame in ((1, 8), (8, 32)):
        p = tmp_path / f"{ch}.wav"
        with sf.SoundFile(p, "w", samplerate=8000, channels=ch, format="WAV") as f:
            f.write(np.zeros((8000, ch), np.float32))
        assert decoded_bytes(8000, ch) == 8000 * per_frame
        with pytest.raises(AudioTooLargeError, match="mix it down" if ch > 2 else "trim"):
            read_audio(p, max_decoded_bytes=8000 * per_frame - 1, fold="mean")


def test_a_backing_upsampled_past_the_limit_is_refused_before_resampling(monkeypatch):
    from vocalmix.core.audio import Audio

    rng = np.random.default_rng(0)
    v = Audio(rng.normal(0, 0.1, (96000, 2)).astype(np.float32), 96000, label="vocal v.wav")
    b = Audio(rng.normal(0, 0.1, (8000 * 10, 2)).astype(np.float32), 8000,
              label="backing b.wav")

    def no_resampling(*_a, **_k):
        raise AssertionError("resampled before the size check")

    monkeypatch.setattr(audio, "resample", no_resampling)
    with pytest.raises(AudioTooLargeError, match="backing b.wav at 96000 Hz: 10.0 s"):
        prepare_pair(v, b, max_decoded_bytes=96000 * 10 * 8 - 1)


def test_the_command_line_refuses_a_bomb_in_one_line(tmp_path, capsys, monkeypatch):
    p = tmp_path / "bomb.flac"
    with sf.SoundFile(p, "w", samplerate=384000, channels=2, format="FLAC",
                      subtype="PCM_16") as f:
        f.write(np.zeros((384000 * 4, 2), np.float32))
    monkeypatch.setenv("VOCALMIX_MAX_DECODED_MB", "4")
    assert main(["analyze", "-q", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vocalmix: error: {p}: 4.0 s of 2 channel")
    assert "resample it to 48 kHz" in err[0] and "$VOCALMIX_MAX_DECODED_MB" in err[0]


# --- JSON -------------------------------------------------------------------------------------

CRAFTED_DOCUMENTS = {
    "deep": "[" * 100_000 + "]" * 100_000,
    "deep in a field": '{"vocal": {"reverb": {"band_decay_ratios": ' + "[" * 50_000
                       + "]" * 50_000 + "}}}",
    "10^400": '{"vocal": {"gain_db": 1' + "0" * 400 + "}}",
    "5001 digits": '{"vocal": {"gain_db": ' + "7" * 5001 + "}}",
    "1e400": '{"vocal": {"gain_db": 1e400}}',
    "NaN": '{"backing": {"gain_db": NaN}}',
    "Infinity": '{"master": {"ceiling_dbtp": -Infinity}}',
    "long float": '{"vocal": {"gain_db": 1.' + "1" * 10_000 + "}}",
    "version 1e308": '{"version": 1e308}',
    "version 10^400": '{"version": 1' + "0" * 400 + "}",
    "too many notes": json.dumps({"provenance": {"notes": ["n"] * 1000}}),
    "a long text": json.dumps({"provenance": {"vocalmix_version": "v" * 10_000}}),
}


@pytest.mark.parametrize("name", sorted(CRAFTED_DOCUMENTS))
def test_crafted_params_documents_are_params_errors(name):
    with pytest.raises(ParamsError) as e:
        MixParams.from_json(CRAFTED_DOCUMENTS[name])
    assert len(str(e.value)) < 500


def test_the_command_line_reads_crafted_params_as_one_line_errors(tmp_path, capsys):
    v = tmp_path / "v.wav"
    sf.write(v, np.full((SR, 2), 0.1, np.float32), SR)
    for name, text in CRAFTED_DOCUMENTS.items():
        p = tmp_path / "p.json"
        p.write_text(text)
        code = main(["render", str(v), str(v), str(p), "-o", str(tmp_path / "o.wav"), "-q"])
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert err.startswith("vocalmix: error:") and "internal error" not in err, name
        assert len(err.strip().splitlines()) == 1


def test_a_byte_order_mark_and_a_size_bound_in_params_files(tmp_path):
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + MixParams().to_json().encode())
    assert read_params(p) == MixParams()
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (5 * 2**20))
    with pytest.raises(ParamsError, match="larger than a JSON params file can be"):
        read_params(big)
