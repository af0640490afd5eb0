"""The take moved in time against the backing (``vocal.offset_ms``): the same move on
every path (estimate, resolve, the offline render, the long-form block render, the live
mixer), as a setting a person can change and re-render."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.bleed import BackingBleed, bleed_warning
from vocalmix.core.dsp import offset_samples, shifted_blocks, shifted_rows
from vocalmix.core.errors import ParamsError
from vocalmix.core.longrender import BlockRender, exact_blocks
from vocalmix.core.render import render
from vocalmix.core.stream import LiveMixer
from vocalmix.frontends.cli import main
from vocalmix.longform import excerpts, open_long_pair
from vocalmix.pipeline import estimate_params, mix, resolve_params
from vocalmix.synth import synthesize_song

SR = 22050


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, np.ndarray]:
    v, b = synthesize_song(sample_rate=SR, duration_s=8.0, seed=3)
    return v.astype(np.float32), b.astype(np.float32)


@pytest.fixture(scope="module")
def params(song):
    v, b = song
    return estimate_params(v, b, SR, method="baseline").params


def _at(p, offset_ms: float):
    return replace(p, vocal=replace(p.vocal, offset_ms=offset_ms))


def _db(a: np.ndarray, b: np.ndarray) -> float:
    return float(20.0 * np.log10(np.abs(a - b).max() + 1e-30))


def test_offset_samples_round_to_the_nearest_whole_sample_either_way():
    assert offset_samples(0.0, 44100) == 0
    assert offset_samples(10.0, 44100) == 441 and offset_samples(-10.0, 44100) == -441
    assert offset_samples(0.5 / 44.1, 44100) == 1 and offset_samples(-0.5 / 44.1, 44100) == -1
    assert offset_samples(0.49 / 44.1, 44100) == 0
    assert offset_samples(-2000.0, 48000) == -96000


@pytest.mark.parametrize("shift", [0, 1, 37, -1, -37, 99, -99, 100, -100, 250])
@pytest.mark.parametrize("sizes", [[100], [7, 30, 3], [1]])
def test_shifted_blocks_are_shifted_rows_a_block_at_a_time(shift, sizes):
    x = np.random.default_rng(1).standard_normal((100, 2)).astype(np.float32)
    want = shifted_rows(x, shift)
    assert want.shape == x.shape and want.dtype == x.dtype

    def blocks():
        i = k = 0
        while i < len(x):
            yield x[i : i + sizes[k % len(sizes)]]
            i += sizes[k % len(sizes)]
            k += 1

    got = np.concatenate(list(exact_blocks(shifted_blocks(blocks(), shift), len(x), 16)))
    np.testing.assert_array_equal(got, want)
    if 0 < shift < 100:
        np.testing.assert_array_equal(want[:shift], 0.0)
        np.testing.assert_array_equal(want[shift:], x[: 100 - shift])
    elif -100 < shift < 0:
        np.testing.assert_array_equal(want[: 100 + shift], x[-shift:])
        np.testing.assert_array_equal(want[100 + shift :], 0.0)
    elif shift:
        np.testing.assert_array_equal(want, 0.0)
    else:
        assert want is x


@pytest.mark.parametrize("offset_ms", [25.0, -40.0])
def test_render_moves_the_take_as_the_first_stage(song, params, offset_ms):
    v, b = song
    moved = shifted_rows(v, offset_samples(offset_ms, SR))
    a = render(v, b, SR, _at(params, offset_ms))
    c = render(moved, b, SR, params)
    for name in ("mix", "vocal", "vocal_dry", "backing"):
        np.testing.assert_array_equal(getattr(a, name), getattr(c, name), err_msg=name)
    # and it moved: the mix differs from the unmoved one
    assert not np.array_equal(a.mix, render(v, b, SR, params).mix)


def test_estimate_and_resolve_read_the_moved_take(song, params):
    v, b = song
    moved = shifted_rows(v, offset_samples(-30.0, SR))
    e = estimate_params(v, b, SR, method="baseline", vocal_offset_ms=-30.0)
    ref = estimate_params(moved, b, SR, method="baseline")
    assert e.params.vocal.offset_ms == -30.0
    assert replace(e.params.vocal, offset_ms=0.0) == ref.params.vocal
    assert e.params.targets == ref.params.targets
    assert any(r.path == "vocal.offset_ms" and r.source == "user" for r in e.params.reasons)
    assert e.notes[0].startswith("the take is moved 30.0 ms earlier")
    # a document's offset is kept by a re-resolve and by an estimate started from it
    p, notes = resolve_params(v, b, SR, _at(params, -30.0))
    q, _ = resolve_params(moved, b, SR, params)
    assert p.vocal.gain_db == q.vocal.gain_db and p.vocal.offset_ms == -30.0
    assert notes[0].startswith("the take is moved")
    again = estimate_params(v, b, SR, base=e.params)
    assert again.params.vocal.offset_ms == -30.0
    assert again.params.vocal.gain_db == pytest.approx(e.params.vocal.gain_db, abs=1e-9)


def test_mix_is_render_of_its_own_document(song):
    v, b = song
    p, r, _ = mix(v, b, SR, method="baseline", vocal_offset_ms=12.0)
    assert p.vocal.offset_ms == 12.0
    again = render(v, b, SR, p)
    np.testing.assert_array_equal(r.mix, again.mix)
    np.testing.assert_array_equal(r.vocal, again.vocal)


def test_cut_sound_is_noted_and_a_take_moved_out_of_the_mix_is_refused(song):
    v, b = song
    loud_end = v.copy()
    loud_end[-SR // 10 :] = 0.25  # sound in the last 100 ms
    e = estimate_params(loud_end, b, SR, method="baseline", vocal_offset_ms=50.0)
    assert any("its last 0.050 s, moved past the mix's end, are cut" in n for n in e.notes)
    start = np.zeros_like(v)
    start[: SR // 2] = v[SR : SR + SR // 2]  # sound only in the first 0.5 s
    with pytest.raises(ParamsError, match="moves all of the take's sound out of the mix"):
        estimate_params(start, b, SR, method="baseline", vocal_offset_ms=-600.0)
    start[SR // 2 : SR] = 1e-5  # and -100 dBFS of noise after it: silent still
    with pytest.raises(ParamsError, match="offset closer to 0"):
        resolve_params(start, b, SR, _at(estimate_params(v, b, SR).params, -600.0))
    with pytest.raises(ParamsError, match="vocal.offset_ms"):
        estimate_params(v, b, SR, method="baseline", vocal_offset_ms=float("nan"))


@pytest.mark.parametrize("offset_ms", [0.0, 30.0, -40.0])
def test_block_render_and_live_mixer_move_it_as_the_offline_render(song, params, offset_ms):
    v, b = song
    v = v.copy()
    v[:2000] = 0.3 * v[SR : SR + 2000]  # sound from the first sample: cut when moved earlier
    p = _at(params, offset_ms)
    off = render(v, b, SR, p)
    long = BlockRender(iter([v[:5000], v[5000:]]), iter([b]), len(v), SR, p, block=4096)
    got = np.concatenate([o[0] for o in long.blocks()])
    assert _db(got, off.mix) < -110.0
    m = LiveMixer(p, SR, 512, stems=True)
    lat = m.latency_samples
    assert lat == LiveMixer(params, SR, 512).latency_samples + max(
        0, -offset_samples(offset_ms, SR))  # a take moved earlier: the backing waits
    pad = np.zeros((lat, 2), np.float32)
    vv, bb = np.concatenate([v, pad]), np.concatenate([b, pad])
    st = [m.process_stems(vv[i : i + 512], bb[i : i + 512]) for i in range(0, len(vv), 512)]
    y = np.concatenate([s.mix for s in st])[lat:]
    vocal = np.concatenate([s.vocal for s in st])[lat:]
    # the part of the take a move earlier cuts is silenced live too: the same samples
    assert _db(y, off.mix) < -110.0 and _db(vocal, off.vocal) < -110.0


def test_long_form_excerpts_are_cut_from_the_moved_take(tmp_path, song, monkeypatch):
    v, b = song
    vp, bp = tmp_path / "v.wav", tmp_path / "b.wav"
    sf.write(vp, v, SR, subtype="FLOAT")
    sf.write(bp, b, SR, subtype="FLOAT")
    pair = open_long_pair(vp, bp, force=True)
    assert pair is not None
    for offset in (0.0, 45.0, -45.0):
        got_v, got_b, _ = excerpts(pair, count=3, excerpt_s=1.0, offset_ms=offset)
        moved = shifted_rows(v, offset_samples(offset, SR))
        mp = tmp_path / f"m{offset}.wav"
        sf.write(mp, moved, SR, subtype="FLOAT")
        ref = open_long_pair(mp, bp, force=True)
        assert ref is not None
        # the excerpts start where the file's vocal sings: read the moved file there
        ref.vocal.activity = pair.vocal.activity
        want_v, want_b, _ = excerpts(ref, count=3, excerpt_s=1.0)
        np.testing.assert_array_equal(got_v, want_v)
        np.testing.assert_array_equal(got_b, want_b)


def _write(path: Path, x: np.ndarray) -> Path:
    sf.write(path, x, SR, subtype="FLOAT")
    return path


def test_command_line_moves_the_take_and_render_repeats_it(tmp_path, song, monkeypatch, capsys):
    v, b = song
    vp, bp = _write(tmp_path / "v.wav", v), _write(tmp_path / "b.wav", b)
    out, doc = tmp_path / "m.wav", tmp_path / "p.json"
    assert main(["mix", str(vp), str(bp), "-o", str(out), "--params-out", str(doc),
                 "--method", "baseline", "--vocal-offset-ms", "-20"]) == 0
    printed = capsys.readouterr()
    assert "take moved -20 ms" in printed.out
    d = json.loads(doc.read_text())
    assert d["vocal"]["offset_ms"] == -20.0
    again = tmp_path / "r.wav"
    assert main(["render", str(vp), str(bp), str(doc), "-o", str(again), "-q"]) == 0
    np.testing.assert_array_equal(sf.read(out)[0], sf.read(again)[0])
    # long inputs: the same move, a block at a time
    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "0.5")
    long = tmp_path / "l.wav"
    assert main(["render", str(vp), str(bp), str(doc), "-o", str(long), "-q"]) == 0
    assert np.abs(sf.read(out)[0] - sf.read(long)[0]).max() <= 4 / 2**23
    assert main(["mix", str(vp), str(bp), "-o", str(tmp_path / "x.wav"), "-q",
                 "--vocal-offset-ms", "2500"]) == 2
    assert "vocal.offset_ms = 2500.0 is out of range" in capsys.readouterr().err


def test_a_late_copy_names_the_offset_that_sets_the_take_right():
    late = BackingBleed(level_db=-8.0, lag_ms=32.0, windows=4, of=4)
    assert "(vocal.offset_ms -32)" in bleed_warning(late)
    assert "(vocal.offset_ms -42)" in bleed_warning(late, offset_ms=-10.0)
    assert "offset_ms" not in bleed_warning(replace(late, lag_ms=3.0))


def test_a_batch_column_moves_the_take_and_an_empty_cell_keeps_the_job_key(tmp_path, song):
    from vocalmix import batch

    v, b = song
    vp, bp = _write(tmp_path / "v.wav", v), _write(tmp_path / "b.wav", b)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,vocal,backing,vocal_offset_ms\nlate,{vp},{bp},-25\n"
                        f"plain,{vp},{bp},\n", encoding="utf-8")
    m = batch.read_manifest(manifest)
    config = batch.BatchConfig(out_dir=str(tmp_path / "out"), base_dir=m.base_dir,
                               method="baseline")
    late, plain = (batch.parse_row(r, config) for r in m.rows)
    assert late.vocal_offset_ms == -25.0 and plain.vocal_offset_ms is None
    assert "vocal_offset_ms" not in plain.settings()  # the key rows had before the column
    summary = batch.run_batch(manifest, tmp_path / "out", workers=1, method="baseline")
    assert summary.status.ok == 2
    doc = json.loads((tmp_path / "out" / "params" / "late.json").read_text())
    assert doc["vocal"]["offset_ms"] == -25.0
    single = tmp_path / "single.wav"
    assert main(["mix", str(vp), str(bp), "-o", str(single), "-q", "--method", "baseline",
                 "--vocal-offset-ms", "-25"]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "out" / "mix" / "late.wav")[0],
                                  sf.read(single)[0])
    bad = tmp_path / "bad.csv"
    bad.write_text(f"id,vocal,backing,vocal_offset_ms\nx,{vp},{bp},soon\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="vocal_offset_ms 'soon' is not a number"):
        batch.parse_row(batch.read_manifest(bad).rows[0], config)


@pytest.fixture(scope="module")
def latent_take() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a take sung along to speakers and recorded 35 ms late, the backing, the voice):
    the voice and a copy of the backing 8 dB under it, both 35 ms late (40 s: the copy
    is read in several windows)."""
    v, b = synthesize_song(sample_rate=SR, duration_s=40.0, seed=2)
    v, b = v.astype(np.float32), b.astype(np.float32)
    d = offset_samples(35.0, SR)
    scale = np.float32(10 ** (-8 / 20) * np.sqrt(np.mean(v**2) / np.mean(b**2)))
    return shifted_rows(v + scale * b, d), b, v


def test_auto_moves_a_take_by_the_latency_of_the_backing_it_carries(latent_take):
    take, b, _ = latent_take
    e = estimate_params(take, b, SR, method="baseline", vocal_offset_ms="auto")
    assert e.params.vocal.offset_ms == -35.0
    why = e.params.reason_for("vocal.offset_ms")
    assert why is not None and why.source == "rule"
    assert dict(why.inputs)["copy_lag_ms"] == pytest.approx(35.0, abs=0.2)
    assert e.notes[0].startswith("the take is moved 35 ms earlier (vocal.offset_ms auto)")
    # the copy is still there, now in time with the backing: warned about, no advice
    warning = next(n for n in e.notes if n.startswith("warning:"))
    assert "in time with the backing" in warning and "offset_ms" not in warning
    import vocalmix

    assert vocalmix.estimate(take, b, SR, method="baseline",
                             vocal_offset_ms="auto").vocal.offset_ms == -35.0
    # moved by hand the same way: the same document but for the reason
    by_hand = estimate_params(take, b, SR, method="baseline", vocal_offset_ms=-35.0)
    assert by_hand.params.vocal == e.params.vocal
    assert by_hand.params.targets == e.params.targets


def test_auto_leaves_a_take_without_a_copy_where_it_is(song):
    v, b = song
    e = estimate_params(v, b, SR, method="baseline", vocal_offset_ms="auto")
    assert e.params.vocal.offset_ms == 0.0
    assert "left where it is (vocal.offset_ms auto): it carries no copy" in e.notes[0]
    with pytest.raises(ParamsError, match="a number of ms or 'auto'"):
        estimate_params(v, b, SR, vocal_offset_ms="later")


def test_auto_on_the_command_line_the_long_form_path_and_a_batch(tmp_path, latent_take,
                                                                 monkeypatch, capsys):
    from vocalmix import batch

    take, b, _ = latent_take
    vp, bp = _write(tmp_path / "v.wav", take), _write(tmp_path / "b.wav", b)
    doc = tmp_path / "p.json"
    assert main(["estimate", str(vp), str(bp), "-o", str(doc), "-q", "--method", "baseline",
                 "--vocal-offset-ms", "auto"]) == 0
    assert json.loads(doc.read_text())["vocal"]["offset_ms"] == -35.0
    monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "1")
    long = tmp_path / "pl.json"
    assert main(["estimate", str(vp), str(bp), "-o", str(long), "-q", "--method", "baseline",
                 "--vocal-offset-ms", "AUTO"]) == 0
    d = json.loads(long.read_text())
    assert any("long inputs" in n for n in d["provenance"]["notes"])
    assert d["vocal"]["offset_ms"] == -35.0
    assert [r["source"] for r in d["reasons"] if r["path"] == "vocal.offset_ms"] == ["rule"]
    assert main(["estimate", str(vp), str(bp), "-o", str(tmp_path / "y.json"), "-q",
                 "--vocal-offset-ms", "-2001"]) == 2
    assert "vocal.offset_ms = -2001.0 is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["estimate", str(vp), str(bp), "-o", str(tmp_path / "x.json"),
              "--vocal-offset-ms", "soon"])
    assert e.value.code == 2
    assert "a number of milliseconds or 'auto', got 'soon'" in capsys.readouterr().err
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,vocal,backing,vocal_offset_ms\nt,{vp},{bp},auto\n",
                        encoding="utf-8")
    config = batch.BatchConfig(out_dir=str(tmp_path / "out"), base_dir=str(tmp_path),
                               method="baseline")
    job = batch.parse_row(batch.read_manifest(manifest).rows[0], config)
    assert job.vocal_offset_ms == "auto" and job.settings()["vocal_offset_ms"] == "auto"
