"""16-bit, 24-bit and 32-bit float mixes: the bit depth a WAV, AIFF or FLAC mix is
written at (``--bit-depth``), and the TPDF dither of 16-bit PCM outputs, checked against
what dither is for: a rounding error of 0.5 LSB RMS whatever the signal, and a signal
under one LSB that survives instead of rounding away."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.audio import BIT_DEPTHS, Tpdf16, bit_depth_subtype, write_audio
from vocalmix.core.errors import OutputError
from vocalmix.frontends.cli import main
from vocalmix.synth import synthesize_song

SR = 22050
LSB = 2.0**-15


def test_the_dither_error_is_half_an_lsb_rms_and_does_not_follow_the_signal():
    rng = np.random.default_rng(0)
    n = 200_000
    x = (0.3 * np.sin(2 * np.pi * 441.0 * np.arange(n) / SR)
         + 0.01 * rng.standard_normal(n)).astype(np.float32)[:, None]
    codes = Tpdf16()(x)
    assert codes.dtype == np.int16 and codes.shape == x.shape
    err = codes[:, 0] / 32768.0 - x[:, 0].astype(np.float64)
    # rounding (LSB^2 / 12) plus triangular dither (LSB^2 / 6): LSB / 2 RMS
    assert np.sqrt(np.mean(err**2)) / LSB == pytest.approx(0.5, abs=0.01)
    assert abs(err.mean()) / LSB < 0.01
    assert np.abs(err).max() / LSB <= 1.5 + 1e-9
    assert abs(np.corrcoef(err, x[:, 0])[0, 1]) < 0.01


def test_a_tone_under_one_lsb_survives_the_dither_where_rounding_loses_it():
    n = 400_000
    t = np.arange(n) / SR
    tone = 0.4 * LSB * np.sin(2 * np.pi * 1000.0 * t)
    rounded = np.rint(tone * 32768.0)
    assert not rounded.any()  # rounding alone leaves silence
    codes = Tpdf16()(tone.astype(np.float32)[:, None])[:, 0] / 32768.0
    # the tone's amplitude, read back by projection, within 5 % (the dither's noise)
    amp = 2.0 * np.mean(codes * np.sin(2 * np.pi * 1000.0 * t))
    assert amp / LSB == pytest.approx(0.4, rel=0.05)


def test_blocks_give_the_codes_of_the_whole_and_every_write_the_same():
    rng = np.random.default_rng(1)
    x = (0.5 * rng.standard_normal((10_000, 2))).clip(-1, 1).astype(np.float32)
    whole = Tpdf16()(x)
    d = Tpdf16()
    parts = np.concatenate([d(x[:1234]), d(x[1234:5000]), d(x[5000:])])
    assert np.array_equal(whole, parts)
    assert np.array_equal(whole, Tpdf16()(x))


def test_full_scale_is_clipped_to_the_codes_pcm_holds():
    x = np.array([[1.0], [-1.0], [1.5], [-1.5], [0.0]], np.float32)
    codes = Tpdf16()(x)[:, 0]
    assert codes[0] == 32767 and codes[2] == 32767
    assert codes[1] >= -32768 and codes[3] == -32768
    assert abs(int(codes[4])) <= 1


def test_write_audio_dithers_a_16_bit_file(tmp_path):
    rng = np.random.default_rng(2)
    x = (0.2 * rng.standard_normal((50_000, 2))).astype(np.float32)
    for ext in (".wav", ".flac", ".aiff"):
        p = write_audio(tmp_path / f"a{ext}", x, SR, subtype="PCM_16")
        assert sf.info(p).subtype == "PCM_16"
        y, _ = sf.read(p, dtype="float64")
        err = y - x
        assert np.abs(err).max() / LSB <= 1.5 + 1e-9
        assert np.sqrt(np.mean(err**2)) / LSB == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(("name", "bits", "subtype"), [
    ("m.wav", 16, "PCM_16"), ("m.wav", 24, "PCM_24"), ("m.wav", 32, "FLOAT"),
    ("m.aiff", 32, "FLOAT"), ("m.flac", 16, "PCM_16"), ("m.flac", 24, "PCM_24"),
    ("m.wav", None, None)])
def test_the_subtype_of_each_depth(name, bits, subtype):
    assert bit_depth_subtype(name, bits) == subtype


@pytest.mark.parametrize(("name", "bits", "says"), [
    ("m.mp3", 16, "compressed"), ("m.ogg", 24, "compressed"), ("m.flac", 32, "FLAC holds"),
    ("m.wav", 8, "not written"), ("m.wav", "16", "not written"),
    ("m.wav", True, "not written"), ("m.wav", 16.0, "not written")])
def test_a_depth_the_file_cannot_hold_is_refused(name, bits, says):
    with pytest.raises(OutputError, match=says):
        bit_depth_subtype(name, bits)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pair")
    v, b = synthesize_song(sample_rate=SR, duration_s=6.0, seed=5)
    sf.write(d / "vocal.wav", v, SR, subtype="PCM_24")
    sf.write(d / "backing.wav", b, SR, subtype="PCM_24")
    return d / "vocal.wav", d / "backing.wav"


def test_mix_and_render_write_the_depth_asked_and_the_same_16_bit_file(tmp_path, pair):
    v, b = pair
    m16, p = tmp_path / "m16.wav", tmp_path / "p.json"
    assert main(["mix", str(v), str(b), "-o", str(m16), "--bit-depth", "16", "--params-out",
                 str(p), "--stems-out", str(tmp_path / "stems"), "--method", "baseline",
                 "-q"]) == 0
    assert sf.info(m16).subtype == "PCM_16"
    assert sf.info(tmp_path / "stems" / "vocal.wav").subtype in ("PCM_24", "FLOAT")
    r16, r24, r32 = (tmp_path / f"r{k}.wav" for k in (16, 24, 32))
    assert main(["render", str(v), str(b), str(p), "-o", str(r16), "--bit-depth", "16",
                 "-q"]) == 0
    assert r16.read_bytes() == m16.read_bytes()  # a re-render writes the same file
    assert main(["render", str(v), str(b), str(p), "-o", str(r24), "-q"]) == 0
    assert main(["render", str(v), str(b), str(p), "-o", str(r32), "--bit-depth", "32",
                 "-q"]) == 0
    assert sf.info(r24).subtype == "PCM_24" and sf.info(r32).subtype == "FLOAT"
    a16 = sf.read(r16, dtype="float64")[0]
    a24 = sf.read(r24, dtype="float64")[0]
    a32 = sf.read(r32, dtype="float64")[0]
    assert np.abs(a24 - a32).max() <= 2.0**-23  # 24-bit rounding of the same samples
    assert np.abs(a16 - a32).max() / LSB <= 1.5 + 1e-6


def test_a_depth_the_mix_cannot_hold_is_refused_before_any_work(tmp_path, pair, capsys):
    v, b = pair
    out = tmp_path / "m.mp3"
    assert main(["mix", str(v), str(b), "-o", str(out), "--bit-depth", "16", "-q"]) == 2
    assert "compressed" in capsys.readouterr().err
    assert not out.exists()


def test_every_depth_is_offered():
    assert set(BIT_DEPTHS) == {16, 24, 32}
    # the command line writes them out (its parser imports no audio code): the same ones
    from vocalmix.frontends.cli import build_parser

    for command in ("mix", "render", "live", "batch"):
        sub = build_parser([command])._subparsers._group_actions[0].choices[command]
        (action,) = [a for a in sub._actions if "--bit-depth" in a.option_strings]
        assert tuple(action.choices) == tuple(BIT_DEPTHS), command


def test_a_batch_writes_its_mixes_at_the_depth_asked(tmp_path, pair):
    from vocalmix import batch

    v, b = pair
    src = tmp_path / "src"
    src.mkdir()
    (src / "song.vocal.wav").write_bytes(v.read_bytes())
    (src / "song.backing.wav").write_bytes(b.read_bytes())
    out = tmp_path / "out"
    batch.run_batch(src, out, workers=1, method="baseline", mix_format="flac", bit_depth=16)
    rows = {r["id"]: r for r in batch.read_results(out)}
    assert rows["song"]["status"] == "ok"
    assert sf.info(str(out / "mix" / "song.flac")).subtype == "PCM_16"
    assert '"bit_depth": 16' in rows["song"]["settings_json"]
    # at the default depth: mixed again (the depth is in the job key), 24-bit, and the
    # job's settings those of a batch that never had the option
    batch.run_batch(src, out, workers=1, method="baseline", mix_format="flac")
    again = {r["id"]: r for r in batch.read_results(out)}
    assert again["song"]["job_key"] != rows["song"]["job_key"]
    assert "bit_depth" not in again["song"]["settings_json"]
    assert sf.info(str(out / "mix" / "song.flac")).subtype == "PCM_24"
    # a depth FLAC cannot hold: refused before anything is made
    with pytest.raises(OutputError, match="FLAC holds"):
        batch.run_batch(src, tmp_path / "never", mix_format="flac", bit_depth=32)
    assert not (tmp_path / "never").exists()


def test_the_library_writes_and_encodes_at_a_bit_depth(tmp_path):
    import vocalmix

    rng = np.random.default_rng(3)
    x = (0.2 * rng.standard_normal((20_000, 2))).astype(np.float32)
    p = vocalmix.write_audio(tmp_path / "a.wav", x, SR, bit_depth=16)
    assert sf.info(p).subtype == "PCM_16"
    data = vocalmix.encode_audio(x, SR, "flac", bit_depth=16)
    y, _ = sf.read(io.BytesIO(data), dtype="int16")
    assert sf.info(io.BytesIO(data)).subtype == "PCM_16"
    assert np.array_equal(y, Tpdf16()(x))  # the same dithered codes as a file
    assert sf.info(io.BytesIO(vocalmix.encode_audio(x, SR, "wav", bit_depth=32))
                   ).subtype == "FLOAT"
    with pytest.raises(OutputError, match="compressed"):
        vocalmix.encode_audio(x, SR, "mp3", bit_depth=16)
    with pytest.raises(OutputError, match="not both"):
        vocalmix.write_audio(tmp_path / "b.wav", x, SR, bit_depth=16, subtype="PCM_24")
    assert not (tmp_path / "b.wav").exists()


def test_a_live_session_writes_its_mix_at_the_depth_asked(tmp_path, pair):
    v, b = pair
    out = tmp_path / "live.wav"
    assert main(["live", str(v), str(b), "-o", str(out), "--bit-depth", "16",
                 "--block-size", "1024", "--method", "baseline", "-q"]) == 0
    assert sf.info(out).subtype == "PCM_16"
    assert main(["live", str(v), str(b), "-o", str(tmp_path / "l.flac"), "--bit-depth",
                 "32", "-q"]) == 2
    assert not (tmp_path / "l.flac").exists()
