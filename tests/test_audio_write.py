"""Audio outputs are the files libsndfile writes from the float samples, to the byte,
whether vocalmix or libsndfile converts 24-bit WAV and AIFF samples."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core import audio
from vocalmix.core.audio import AudioData, BlockSource, OutputPlan, pcm24_samples

RNG = np.random.default_rng(11)


def _samples(n: int, channels: int = 2) -> np.ndarray:
    """Music-like values, rounding ties at 24 bits, both clipping edges and values past
    them, zeros of both signs."""
    x = RNG.uniform(-1.05, 1.05, (n, channels))
    x[: n // 4] = RNG.integers(-2**23, 2**23, (n // 4, channels)) / 2**23 + 0.5 / 2**23
    edges = [0.0, -0.0, 1.0, -1.0, 1 - 2.0**-24, -1 + 2.0**-24, 3e38, -3e38, 1e-40]
    x[: len(edges), 0] = edges
    return x.astype(np.float32)


def _libsndfile_bytes(x: np.ndarray, fmt: str, subtype: str = "PCM_24") -> bytes:
    b = io.BytesIO()
    sf.write(b, x, 44100, subtype=subtype, format=fmt)
    return b.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "AIFF"])
@pytest.mark.parametrize("channels", [1, 2])
def test_the_24_bit_samples_are_those_libsndfile_writes_from_floats(fmt, channels):
    x = _samples(30_000, channels)
    got = io.BytesIO()
    sf.write(got, pcm24_samples(x), 44100, subtype="PCM_24", format=fmt)
    assert got.getvalue() == _libsndfile_bytes(x, fmt)
    assert audio._pcm24_is_libsndfiles()  # so the writes below take the fast path


def _truncated(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # the check's +-1e30 scale past float32: clipped
        s = np.clip(np.multiply(x, 2.0**31, dtype=np.float32), -2.0**31, 2.0**31 - 128)
    return np.trunc(s).astype(np.int32)  # toward zero, not to the nearest


def _unclipped(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.rint(np.multiply(x, 2.0**31, dtype=np.float32))
        return s.astype(np.int64).astype(np.int32)  # wraps past full scale


@pytest.mark.parametrize("convert", [_truncated, _unclipped])
def test_the_writers_self_check_refuses_a_conversion_that_is_not_libsndfiles(monkeypatch,
                                                                             convert):
    """The check's own test values (spread values, steps' midpoints, edges) catch a
    writer that truncates instead of rounding, or does not clip: the mix is then left to
    libsndfile. (Ties rounded up instead of to even would write the same bytes: the two
    differ only at a tie between an even integer and the next, never a multiple of 256,
    so the top 24 of the 32 bits are the same.)"""
    monkeypatch.setattr(audio, "pcm24_samples", convert)
    assert not audio._pcm24_is_libsndfiles.__wrapped__()
    monkeypatch.undo()
    assert audio._pcm24_is_libsndfiles.__wrapped__()


@pytest.mark.parametrize("ext, fmt, subtype", [(".wav", "WAV", "PCM_24"),
                                                (".aiff", "AIFF", "PCM_24"),
                                                (".flac", "FLAC", "PCM_24"),
                                                (".wav", "WAV", "FLOAT")])
@pytest.mark.parametrize("checked", [True, False])
def test_a_planned_output_is_the_file_libsndfile_writes(tmp_path, monkeypatch, ext, fmt,
                                                       subtype, checked):
    monkeypatch.setattr(audio, "WRITE_BLOCK", 1000)  # several blocks, a short last one
    if not checked:  # a libsndfile that converts otherwise: it converts, as before
        monkeypatch.setattr(audio, "_pcm24_is_libsndfiles", lambda: False)
    x = _samples(4321)
    if fmt != "FLAC":  # (FLAC is always converted by libsndfile)
        x[2500:2600] = np.nan  # a block that is not finite is left to libsndfile
    out = tmp_path / f"mix{ext}"
    plan = OutputPlan([out])
    plan.commit({out: AudioData(x, 44100, None if subtype == "PCM_24" else subtype)})
    assert out.read_bytes() == _libsndfile_bytes(x, fmt, subtype)


@pytest.mark.parametrize("ext, fmt", [(".wav", "WAV"), (".flac", "FLAC")])
def test_a_16_bit_output_holds_the_dithered_codes_of_its_samples(tmp_path, monkeypatch,
                                                                 ext, fmt):
    """16-bit PCM is dithered (:class:`vocalmix.core.audio.Tpdf16`), not rounded by
    libsndfile: the file is libsndfile's of those codes, block boundaries or not, and a
    NaN sample is written as silence."""
    monkeypatch.setattr(audio, "WRITE_BLOCK", 1000)  # several blocks, a short last one
    x = _samples(4321)
    x[2500:2600] = np.nan
    out = tmp_path / f"mix{ext}"
    OutputPlan([out]).commit({out: AudioData(x, 44100, "PCM_16")})
    codes = audio.Tpdf16()(x)
    assert not codes[2500:2600].any()
    want = io.BytesIO()
    sf.write(want, codes, 44100, subtype="PCM_16", format=fmt)
    if fmt == "FLAC":  # (its header holds an MD5 of the samples: compare those)
        assert np.array_equal(sf.read(out, dtype="int16")[0], codes)
    else:
        assert out.read_bytes() == want.getvalue()


def test_outputs_written_a_block_at_a_time_are_the_files_libsndfile_writes(tmp_path):
    x, y = _samples(5000), _samples(5000)
    src = BlockSource(iter([(x[:3000], y[:3000]), (x[3000:], y[3000:])]), 44100)
    a, b = tmp_path / "a.wav", tmp_path / "b.aiff"
    OutputPlan([a, b]).commit({a: src.output(0), b: src.output(1)})
    assert a.read_bytes() == _libsndfile_bytes(x, "WAV")
    assert b.read_bytes() == _libsndfile_bytes(y, "AIFF")
