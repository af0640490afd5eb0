"""Long inputs mixed in bounded memory: block-wise meters, reader, render and writer, and
the command line's long-form path (its threshold lowered so that seconds of audio take it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core import audio
from vocalmix.core.audio import AudioReader, BlockSource, OutputPlan, prepare_pair, read_audio
from vocalmix.core.errors import (
    ChannelLayoutError,
    NonFiniteAudioError,
    OutputError,
    SilentAudioError,
)
from vocalmix.core.longrender import BlockRender, exact_blocks
from vocalmix.core.measure import (
    SegmentMeter,
    TruePeakMeter,
    k_weighted_energies,
    true_peak_dbtp,
)
from vocalmix.core.render import render
from vocalmix.frontends.cli import main
from vocalmix.longform import excerpt_starts, open_long_pair
from vocalmix.pipeline import estimate_params, measure_achieved
from vocalmix.synth import synthesize_song

SR = 22050


def _blocks(x: np.ndarray, sizes: list[int]):
    i, k = 0, 0
    while i < x.shape[0]:
        s = sizes[k % len(sizes)]
        yield x[i : i + s]
        i += s
        k += 1


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, np.ndarray]:
    return synthesize_song(sample_rate=SR, duration_s=12.0, seed=5)


@pytest.mark.parametrize("sizes", [[65536], [4410], [7, 1000, 333], [2205 * 3]])
def test_meters_equal_the_whole_signal_figures(rng, sizes):
    x = (rng.standard_normal((SR * 9 + 77, 2)) * 0.2).astype(np.float32)
    x[3000:3040] = 0.98  # a loud burst: the true peak is inter-sample there
    x[3020] = -0.98
    seg, tp = SegmentMeter(SR), TruePeakMeter()
    for b in _blocks(x, sizes):
        seg.add(b)
        tp.add(b)
    e = k_weighted_energies(x, SR)
    got = seg.stats().energy
    assert got.shape == e.shape
    # the same filter on the same samples, its output in the same layout (two channels
    # interleaved, sosfilt_pair) whatever the blocks: the same sums to the bit
    assert np.array_equal(got, e)
    assert abs(tp.dbtp() - true_peak_dbtp(x, SR)) < 1e-6
    assert tp.dbtp() > 20 * np.log10(0.98)  # above the sample peak: interpolated
    with pytest.raises(ValueError):
        tp.add(x[:10])


def test_true_peak_meter_of_silence_and_of_nothing():
    tp = TruePeakMeter()
    tp.add(np.zeros((1000, 2), np.float32))
    assert tp.dbtp() == -np.inf
    assert TruePeakMeter().dbtp() == -np.inf


def test_exact_blocks_cut_and_pad():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    got = list(exact_blocks(_blocks(x, [3, 11]), 30, 8))
    assert [g.shape[0] for g in got] == [8, 8, 8, 6]
    y = np.concatenate(got)
    assert np.array_equal(y[:25], x) and not y[25:].any()
    cut = np.concatenate(list(exact_blocks(iter([x]), 10, 4)))
    assert np.array_equal(cut, x[:10])


def test_block_render_equals_the_offline_render(song):
    v, b = song
    params = estimate_params(v, b, SR, method="baseline").params
    ref = render(v, b, SR, params)
    want = measure_achieved(ref, measure=params.targets.vocal_to_mix_measure)
    for stems, block in ((True, 5000), (False, 65536)):
        br = BlockRender(_blocks(v, [4097]), _blocks(b, [10000, 3]), v.shape[0], SR, params,
                         stems=stems, block=block)
        outs = list(br.blocks())
        mix = np.concatenate([o[0] for o in outs])
        assert mix.shape == ref.mix.shape
        assert np.abs(mix - ref.mix).max() < 10 ** (-100 / 20)
        if stems:
            for k, r in ((1, ref.vocal), (2, ref.vocal_dry), (3, ref.backing)):
                s = np.concatenate([o[k] for o in outs])
                assert np.abs(s - r).max() < 10 ** (-100 / 20)
        from vocalmix.pipeline import achieved_from_stats

        got = achieved_from_stats(br.vocal.stats(), br.backing.stats(), br.premaster.stats(),
                                  br.mix.stats(), br.vocal_dry.stats(),
                                  measure=params.targets.vocal_to_mix_measure,
                                  true_peak_dbtp=br.true_peak.dbtp(),
                                  gain_reduction_db=br.gain_reduction_db)
        for field in ("vocal_to_mix_lu", "vocal_to_backing_lu", "vocal_lra_lu",
                      "vocal_momentary_range_lu", "mix_integrated_lufs", "mix_true_peak_dbtp",
                      "master_gain_reduction_db"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), abs=1e-4), field


def _write(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    sf.write(path, x, sr, subtype=subtype)
    return path


def test_reader_gives_the_samples_and_notes_of_the_whole_file_path(tmp_path, monkeypatch,
                                                                    rng):
    monkeypatch.setattr(audio, "READ_BLOCK", 1000)
    x = (rng.standard_normal((SR * 2, 1)) * 0.1 + 0.05).astype(np.float32)  # mono, DC
    x[995:1004] = 1.0  # a clipped run across a block boundary
    p = _write(tmp_path / "v.wav", x)
    r = AudioReader(p, label="v").scan("vocal")
    whole = read_audio(p, label="v")
    v, _b, _sr, notes = prepare_pair(whole, whole)
    assert set(r.notes) <= set(notes) and len(r.notes) == 3  # mono, clipped, DC
    assert any("9 consecutive" in n for n in r.notes)
    got = np.concatenate(list(r.blocks()))
    assert np.array_equal(got, v)
    assert np.array_equal(r.read(1500, 700), v[1500:2200])
    assert not r.read(r.frames - 5, 10)[5:].any()  # silence past the end


@pytest.mark.parametrize("kind", ["silent", "dc", "nan", "channels"])
def test_reader_refuses_what_the_whole_file_path_refuses(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(audio, "READ_BLOCK", 1000)
    x = np.zeros((SR, 3 if kind == "channels" else 2), np.float32)
    if kind == "dc":
        x += 0.25
    if kind == "nan":
        x[:, 0] = 0.1
        x[1500, 1] = np.nan
    p = _write(tmp_path / "x.wav", x)
    err = {"silent": SilentAudioError, "dc": SilentAudioError, "nan": NonFiniteAudioError,
           "channels": ChannelLayoutError}[kind]
    with pytest.raises(err) as whole:
        prepare_pair(*(2 * [read_audio(p, label="x")]))
    with pytest.raises(err) as part:
        AudioReader(p, label="x").scan("vocal")
    assert str(part.value) == str(whole.value)


def test_block_source_writes_every_output_at_once_and_restores_on_failure(tmp_path):
    a = np.full((3000, 2), 0.25, np.float32)
    src = BlockSource(((a[i : i + 700], -a[i : i + 700]) for i in range(0, 3000, 700)), SR)
    out1, out2, doc = tmp_path / "a.wav", tmp_path / "sub" / "b.flac", tmp_path / "p.json"
    plan = OutputPlan(audio=[out1, out2], files=[doc])
    seen = []
    plan.commit({out1: src.output(0), out2: src.output(1),
                 doc: lambda: json.dumps({"blocks_done": src.used, "n": len(seen)})})
    y1, _ = sf.read(out1, dtype="float32")
    y2, _ = sf.read(out2, dtype="float32")
    assert y1.shape == (3000, 2) and np.allclose(y1, 0.25, atol=1e-6)
    assert np.allclose(y2, -0.25, atol=1e-6)
    assert json.loads(doc.read_text())["blocks_done"] is True

    def failing():
        yield (a[:100],)
        raise OutputError("the render failed half way")

    before = out1.read_bytes()
    plan = OutputPlan(audio=[out1], files=[doc], force=True)
    with pytest.raises(OutputError):
        plan.commit({out1: BlockSource(failing(), SR).output(0), doc: lambda: "{}"})
    assert out1.read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".vocalmix-")]


def test_excerpts_spread_over_where_the_vocal_sings():
    act = np.zeros(100, bool)
    act[40:100] = True  # sings from block 40 on
    starts = excerpt_starts(act, hop=10, n=1000, length=50, count=4)
    assert len(starts) == 4 and all(s >= 400 for s in starts)
    assert starts == sorted(starts) and starts[0] == 400 and starts[-1] == 950
    assert excerpt_starts(np.zeros(100, bool), 10, 1000, 50, 4) == [0, 300, 650, 950]
    assert excerpt_starts(act, 10, 120, 50, 4) == [0, 50]  # fewer windows than asked


@pytest.fixture()
def pair_files(tmp_path, song) -> tuple[Path, Path]:
    v, b = song
    return (_write(tmp_path / "v.wav", v[:, 0], subtype="PCM_24"),
            _write(tmp_path / "b.flac", b[: -SR // 2], subtype="PCM_24"))


def test_open_long_pair_follows_the_threshold(pair_files, monkeypatch):
    v, b = pair_files
    assert open_long_pair(v, b) is None  # 12 s: whole
    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "0.5")
    pair = open_long_pair(v, b)
    assert pair is not None and pair.frames == 12 * SR
    assert any("padded with silence" in n for n in pair.notes)
    assert any("mono" in n for n in pair.notes)


def test_cli_render_of_long_inputs_equals_the_whole_file_render(tmp_path, pair_files,
                                                                monkeypatch, capsys):
    v, b = pair_files
    p = tmp_path / "p.json"
    assert main(["estimate", str(v), str(b), "-o", str(p), "-q", "--method", "baseline"]) == 0
    whole = tmp_path / "whole.wav"
    assert main(["render", str(v), str(b), str(p), "-o", str(whole), "-q",
                 "--params-out", str(tmp_path / "pw.json")]) == 0
    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "0.5")
    long = tmp_path / "long.wav"
    assert main(["render", str(v), str(b), str(p), "-o", str(long), "-q",
                 "--params-out", str(tmp_path / "pl.json"),
                 "--stems-out", str(tmp_path / "stems")]) == 0
    a, _ = sf.read(whole, dtype="float64")
    c, _ = sf.read(long, dtype="float64")
    assert a.shape == c.shape
    assert np.abs(a - c).max() <= 4 / 2**23  # the same mix within a few 24-bit steps
    aw = json.loads((tmp_path / "pw.json").read_text())["achieved"]
    al = json.loads((tmp_path / "pl.json").read_text())["achieved"]
    for k, val in aw.items():
        if isinstance(val, float):
            assert al[k] == pytest.approx(val, abs=1e-3), k
    assert sorted(f.name for f in (tmp_path / "stems").iterdir()) == [
        "backing.wav", "vocal.wav", "vocal_dry.wav"]


def test_cli_mix_and_estimate_of_long_inputs(tmp_path, pair_files, monkeypatch, capsys):
    v, b = pair_files
    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "0.5")
    out, p = tmp_path / "m.wav", tmp_path / "p.json"
    assert main(["mix", str(v), str(b), "-o", str(out), "--params-out", str(p), "-q",
                 "--method", "baseline"]) == 0
    doc = json.loads(p.read_text())
    assert any("long inputs" in n for n in doc["provenance"]["notes"])
    assert doc["achieved"]["vocal_to_mix_lu"] == pytest.approx(
        doc["targets"]["vocal_to_mix_lu"], abs=0.5)
    y, sr = sf.read(out)
    assert sr == SR and y.shape == (12 * SR, 2)
    pe = tmp_path / "pe.json"
    assert main(["estimate", str(v), str(b), "-o", str(pe), "-q", "--method",
                 "baseline"]) == 0
    assert json.loads(pe.read_text())["vocal"] == doc["vocal"]
    assert main(["mix", str(v), str(b), "-o", str(out), "-q", "--method", "baseline"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_reader_resamples_as_the_whole_file_path(tmp_path, monkeypatch):
    from vocalmix.core.audio import resample

    monkeypatch.setattr(audio, "READ_BLOCK", 5000)
    v, _ = synthesize_song(sample_rate=16000, duration_s=4.0, seed=2)
    p = _write(tmp_path / "v16.wav", v, 16000)
    r = AudioReader(p).scan("vocal")
    got = np.concatenate(list(r.blocks(SR)))
    want = resample(read_audio(p).samples, 16000, SR)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-6


def test_batch_row_of_long_inputs_matches_the_command_line(tmp_path, pair_files, monkeypatch,
                                                           capsys):
    from vocalmix import batch

    v, b = pair_files
    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "0.5")
    out = tmp_path / "out"
    config = batch.BatchConfig(out_dir=str(out), base_dir=str(tmp_path), method="baseline")
    res = batch.mix_job({"id": "long", "vocal": str(v), "backing": str(b)}, config)
    assert res["status"] == "ok", res.get("error")
    assert res["duration_s"] == pytest.approx(12.0)
    assert any("long inputs" in n for n in json.loads(res["notes"]))
    cli = tmp_path / "cli.wav"
    assert main(["mix", str(v), str(b), "-o", str(cli), "-q", "--method", "baseline"]) == 0
    assert (out / res["mix_path"]).read_bytes() == cli.read_bytes()


def test_library_recipe_for_a_long_pair(tmp_path, pair_files):
    from vocalmix.longform import estimate_long, write_long

    v, b = pair_files
    pair = open_long_pair(v, b, force=True)  # whatever its length
    assert pair is not None
    out, doc = tmp_path / "mix.flac", tmp_path / "params.json"
    stems = [tmp_path / "s" / f"{k}.wav" for k in ("vocal", "vocal_dry", "backing")]
    plan = OutputPlan(audio=[out, *stems], files=[doc])
    est = estimate_long(pair, method="baseline", excerpt_s=4.0, count=2)
    params, written = write_long(plan, pair, est.params, out, stems=stems, params_out=doc)
    assert written == [out, *stems, doc]
    assert params.achieved.mix_integrated_lufs is not None
    assert json.loads(doc.read_text())["achieved"] == json.loads(params.to_json())["achieved"]
    assert any("2 excerpts of 4 s" in n for n in params.provenance.notes)
    y, sr = sf.read(stems[1])
    assert sr == SR and y.shape == (12 * SR, 2)
    # the pre-master stems, written before their peaks are known, in 32-bit float
    assert {sf.info(s).subtype for s in stems} == {"FLOAT"}
    assert sf.info(out).subtype == "PCM_24"
