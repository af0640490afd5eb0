"""End to end: on songs the shipped level model never saw (MUSDB18 test-split songs, left
out of its training and of every choice made on it), a vocal fed to ``vocalmix mix`` at
any gain from -20 to +10 dB comes out at the balance the model predicts, measured
independently (libebur128 on the written stems); the HTTP API reports which method made a
mix."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.params import Targets, clip
from vocalmix.estimators import level
from vocalmix.frontends.cli import main
from vocalmix.training.data import find_songs, load_song

from conftest import ebur128_singing_v2m, require_data

UNSEEN = ("The Easton Ellises - Falcon 69", "Mu - Too Bright", "Cristina Vane - So Easy")


def _unseen_songs():
    root = require_data("stems")
    songs = {s.song_id: s for s in find_songs([root])}
    trained = {s["song"] for s in level.shipped_model().meta["training_data"]}
    out = []
    for name in UNSEEN:
        s = songs.get(name)
        if s is None:
            pytest.skip(f"{name} is not in the shared stems")
        assert s.test_split and name not in trained
        out.append(s)
    return out


def _mix(tmp_path, tag: str, vocal: np.ndarray, backing: np.ndarray, sr: int,
         *extra: str) -> tuple[dict, np.ndarray, np.ndarray, int]:
    d = tmp_path / tag
    d.mkdir()
    sf.write(d / "vocal_in.wav", vocal, sr, subtype="FLOAT")
    sf.write(d / "backing_in.wav", backing, sr, subtype="FLOAT")
    assert main(["mix", str(d / "vocal_in.wav"), str(d / "backing_in.wav"), "-o",
                 str(d / "mix.wav"), "--stems-out", str(d / "stems"), "--params-out",
                 str(d / "params.json"), "-q", *extra]) == 0
    doc = json.loads((d / "params.json").read_text())
    v, srv = sf.read(d / "stems" / "vocal.wav", dtype="float32", always_2d=True)
    b, _ = sf.read(d / "stems" / "backing.wav", dtype="float32", always_2d=True)
    return doc, v, b, srv


@pytest.mark.slow
def test_model_level_holds_at_any_input_gain_on_unseen_songs(tmp_path):
    model = level.shipped_model()
    checked = 0
    for song in _unseen_songs():
        vocal, backing, sr = load_song(song)
        # The stems of "Falcon 69" are each normalised to full scale (their sum peaks at
        # 3.0): every backing is fed with its peak at -6 dBFS so that the written
        # pre-master stems (24-bit PCM) hold it unclipped; the model ignores its gain too.
        backing = backing * np.float32(0.5 / np.abs(backing).max())
        pred = clip(Targets, "vocal_to_mix_lu",
                    level.predict_song(model, vocal, backing, sr).vocal_to_mix_lu)
        gains = (-20.0, 0.0, 10.0) if song.song_id == UNSEEN[0] else (-20.0, 10.0)
        for g in gains:
            x = vocal * np.float32(10 ** (g / 20))
            doc, v, b, srv = _mix(tmp_path, f"{song.song_id[:8]}{g:+.0f}", x, backing, sr,
                                  "--method", "model")
            assert doc["provenance"]["method"] == "model"
            assert doc["targets"]["vocal_to_mix_measure"] == "singing"
            # the features do not read the input's gain: the same target at every gain
            assert doc["targets"]["vocal_to_mix_lu"] == pytest.approx(pred, abs=0.05)
            assert np.abs(v).max() < 1.0 and np.abs(b).max() < 1.0  # stems not clipped
            singing, _integrated = ebur128_singing_v2m(v, b, srv)
            assert singing == pytest.approx(pred, abs=0.3), (song.song_id, g)
            checked += 1
    assert checked == 7


@pytest.mark.slow
def test_baseline_keeps_the_seeds_rule_at_any_input_gain(tmp_path):
    song = _unseen_songs()[1]
    vocal, backing, sr = load_song(song)
    for g in (-20.0, 10.0):
        x = vocal * np.float32(10 ** (g / 20))
        doc, v, b, srv = _mix(tmp_path, f"b{g:+.0f}", x, backing, sr, "--method", "baseline")
        assert doc["provenance"]["method"] == "baseline"
        assert doc["targets"]["vocal_to_mix_lu"] == -3.0
        assert doc["targets"]["vocal_to_mix_measure"] == "integrated"
        _singing, integrated = ebur128_singing_v2m(v, b, srv)
        assert integrated == pytest.approx(-3.0, abs=0.3)


def test_the_api_reports_which_method_made_a_mix(tmp_path):
    pytest.importorskip("fastapi", reason="server extras not installed")
    from fastapi.testclient import TestClient

    from vocalmix.estimators.registry import default_method
    from vocalmix.frontends.server.app import create_app
    from vocalmix.synth import synthesize_song

    sr = 16000
    v, b = synthesize_song(sample_rate=sr, duration_s=3.0, seed=5)

    def wav(x: np.ndarray) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
        return buf.getvalue()

    client = TestClient(create_app(tmp_path / "store", max_upload_bytes=2_000_000,
                                   ttl_s=3600, cleanup_interval_s=0, workers=2),
                        base_url="http://127.0.0.1:8000")
    files = {"vocal": ("take.wav", wav(v), "audio/wav"),
             "backing": ("track.wav", wav(b), "audio/wav")}
    measure = {"model": "singing", "baseline": "integrated"}
    for asked, expected in (("baseline", "baseline"), (None, default_method())):
        r = client.post("/api/mixes", files=files, data={"method": asked} if asked else {})
        assert r.status_code == 201, r.text
        got = client.get(r.json()["links"]["self"]).json()
        assert got["params"]["provenance"]["method"] == expected
        assert got["params"]["targets"]["vocal_to_mix_measure"] == measure[expected]
