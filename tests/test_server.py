"""The HTTP API against the real application (FastAPI's test client; one test runs
``vocalmix serve`` on loopback)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="server extras not installed")
from fastapi.testclient import TestClient  # noqa: E402

from vocalmix.core.errors import VocalmixError  # noqa: E402
from vocalmix.core.measure import integrated_loudness, sample_peak  # noqa: E402
from vocalmix.core.params import SCHEMA_VERSION  # noqa: E402
from vocalmix.frontends.server.app import create_app  # noqa: E402
from vocalmix.frontends.server.storage import ID_RE  # noqa: E402
from vocalmix.frontends.server.studio import waveform_peaks  # noqa: E402
from vocalmix.synth import synthesize_song  # noqa: E402

SR = 16000
LIMIT = 2_000_000
BASE_URL = "http://127.0.0.1:8000"  # the server answers to its loopback names only


def wav_bytes(x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def song(seed: int = 5, duration_s: float = 4.0, sr: int = SR) -> tuple[bytes, bytes]:
    v, b = synthesize_song(sample_rate=sr, duration_s=duration_s, seed=seed)
    return wav_bytes(v, sr), wav_bytes(b, sr)


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return song()


@pytest.fixture
def app(tmp_path):
    return create_app(tmp_path / "store", max_upload_bytes=LIMIT, ttl_s=3600,
                      cleanup_interval_s=0, workers=8)


@pytest.fixture
def client(app):
    return TestClient(app, base_url=BASE_URL)


def post_mix(client, pair, **form):
    v, b = pair
    files = {"vocal": ("take.wav", v, "audio/wav"), "backing": ("track.wav", b, "audio/wav")}
    return client.post("/api/mixes", files=files, data={k: str(x) for k, x in form.items()})


def read_wav(content: bytes) -> tuple[np.ndarray, int]:
    x, sr = sf.read(io.BytesIO(content), dtype="float32", always_2d=True)
    return x, sr


def folders(app) -> list[str]:
    """The mix folders in the storage (not its lock file)."""
    return sorted(p.name for p in app.state.store.root.iterdir() if not p.name.startswith("."))


# --- the endpoints -----------------------------------------------------------------------


def test_an_edit_moves_the_take_and_a_retarget_keeps_it_moved(client, pair):
    body = post_mix(client, pair, method="baseline").json()
    links, p = body["links"], body["params"]
    assert p["vocal"]["offset_ms"] == 0.0
    spec = client.get("/api/params/spec").json()
    assert spec["params"]["vocal.offset_ms"]["unit"] == "ms"
    dry = read_wav(client.get(links["vocal_dry"]).content)[0]
    p["vocal"]["offset_ms"] = 50.0  # a setting: rendered exactly, the take 800 samples later
    r = client.put(links["edit"], json={"params": p})
    assert r.status_code == 200, r.text
    assert r.json()["params"]["vocal"]["offset_ms"] == 50.0
    moved = read_wav(client.get(links["vocal_dry"]).content)[0]
    np.testing.assert_allclose(moved[800:], dry[:-800], atol=2e-7)
    # a target edit re-resolves on the moved take and keeps the move
    r = client.put(links["edit"], json={"targets": {"vocal_to_mix_lu": -5.0}})
    assert r.status_code == 200 and r.json()["params"]["vocal"]["offset_ms"] == 50.0
    # or as an edit of its own, which re-resolves on the moved take
    r = client.put(links["edit"], json={"vocal_offset_ms": -10})
    assert r.status_code == 200, r.text
    got = r.json()["params"]
    assert got["vocal"]["offset_ms"] == -10.0
    assert got["achieved"]["vocal_to_mix_lu"] == pytest.approx(-5.0, abs=0.05)
    r = client.put(links["edit"], json={"vocal_offset_ms": "auto"})
    assert r.status_code == 200 and r.json()["params"]["vocal"]["offset_ms"] == 0.0
    # or on upload: a number of ms, or auto (this take carries no copy of the backing)
    r = post_mix(client, pair, method="baseline", vocal_offset_ms=-20)
    assert r.status_code == 201 and r.json()["params"]["vocal"]["offset_ms"] == -20.0
    r = post_mix(client, pair, method="baseline", vocal_offset_ms="auto")
    assert r.status_code == 201 and r.json()["params"]["vocal"]["offset_ms"] == 0.0
    assert any("left where it is (vocal.offset_ms auto)" in n
               for n in r.json()["params"]["provenance"]["notes"])
    r = post_mix(client, pair, vocal_offset_ms="soon")
    assert r.status_code == 422 and "a number of ms or 'auto', got 'soon'" in r.text
    r = post_mix(client, pair, vocal_offset_ms=3000)
    assert r.status_code == 422
    assert "vocal_offset_ms = 3000 is out of range: allowed -2000 to 2000 ms" in r.text


def test_create_get_audio_edit_delete(client, pair, app):
    r = post_mix(client, pair, vocal_to_mix_lu=-4)
    assert r.status_code == 201, r.text
    body = r.json()
    mid = body["id"]
    assert ID_RE.fullmatch(mid) and body["status"] == "done" and body["revision"] == 1
    assert body["progress"] == {"stage": "done", "fraction": 1.0, "message": "done"}
    assert body["name"] == "take" and body["sample_rate"] == SR and body["duration_s"] == 4.0
    p = body["params"]
    assert p["format"] == "vocalmix.params" and p["targets"]["vocal_to_mix_lu"] == -4.0
    assert p["achieved"]["vocal_to_mix_lu"] == pytest.approx(-4.0, abs=0.05)
    links = body["links"]
    assert {"mix", "vocal", "vocal_dry", "backing", "plain", "params_file", "edit", "self",
            "analysis", "peaks"} <= set(links)

    g = client.get(links["self"])
    assert g.status_code == 200 and g.json()["params"] == p and g.json()["status"] == "done"
    audio = {}
    for kind in ("mix", "vocal", "vocal_dry", "backing", "plain"):
        a = client.get(links[kind])
        assert a.status_code == 200 and a.headers["content-type"] == "audio/wav", kind
        assert f"take-{kind}.wav" in a.headers["content-disposition"]
        x, sr = read_wav(a.content)
        assert sr == SR and x.shape == (4 * SR, 2) and np.abs(x).max() > 0.01, kind
        audio[kind] = x
    # the stems add up to the mix (but for what the limiter took off)
    premaster = audio["vocal"] + audio["backing"]
    # (the limiter takes at most a dB or two off this loud synthetic song)
    assert p["achieved"]["master_gain_reduction_db"] < 3.0
    assert np.corrcoef(premaster.ravel(), audio["mix"].ravel())[0, 1] > 0.998
    if p["achieved"]["master_gain_reduction_db"] == 0.0:
        assert np.abs(premaster - audio["mix"]).max() < 1e-3

    d = client.get(links["params_file"])
    assert d.status_code == 200 and "take-params.json" in d.headers["content-disposition"]
    assert json.loads(d.content) == p
    pk = client.get(links["peaks"]).json()
    assert pk["columns"] == 1200 and pk["duration_s"] == 4.0
    assert {"vocal", "backing", "mix"} <= set(pk) and len(pk["mix"]["peak"]) == 1200
    an = client.get(links["analysis"]).json()
    n = len(an["band_centres_hz"])
    assert len(an["band_edges_hz"]) == n + 1
    for k in ("vocal_db", "backing_db", "masking_db", "weight", "vocal_after_eq_db"):
        assert len(an[k]) == n, k
    assert len(an["eq_response_db"]) == len(an["eq_freqs_hz"]) == 240
    assert an["eq_response_db"][0] < -6  # the high-pass (first order) below its corner
    assert [b["source"] for b in an["eq_bands"]] == [b["source"] for b in p["vocal"]["eq_bands"]]

    # targets: the settings are re-resolved
    r = client.put(links["edit"], json={"targets": {"vocal_to_mix_lu": -2.0}})
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 2
    new = r.json()["params"]
    assert new["achieved"]["vocal_to_mix_lu"] == pytest.approx(-2.0, abs=0.05)
    assert new["vocal"]["gain_db"] > p["vocal"]["gain_db"] + 1
    assert not np.array_equal(read_wav(client.get(links["mix"]).content)[0], audio["mix"])

    # settings: rendered exactly, achieved figures measured
    new["vocal"]["gain_db"] -= 3.0
    r = client.put(links["edit"], json={"params": new})
    assert r.status_code == 200
    got = r.json()["params"]
    assert got["vocal"]["gain_db"] == pytest.approx(new["vocal"]["gain_db"])
    assert got["targets"] == new["targets"]
    assert got["achieved"]["vocal_to_mix_lu"] < -3.0  # was -2 LU before the -3 dB
    # the document itself as the body (what a downloaded params file is)
    got["backing"]["gain_db"] = -2.0
    r = client.put(links["edit"], json=got)
    assert r.status_code == 200 and r.json()["params"]["backing"]["gain_db"] == -2.0
    assert r.json()["revision"] == 4
    # a reverb preset: its reverb, then the targets re-resolved
    presets = client.get("/api/presets").json()
    assert len(presets) > 10 and all(q["decay_s"] > 0 for q in presets)
    r = client.put(links["edit"], json={"reverb_preset": presets[0]["name"]})
    assert r.status_code == 200
    rv = r.json()["params"]["vocal"]["reverb"]
    assert rv["type"] == presets[0]["type"]
    assert rv["pre_delay_ms"] == pytest.approx(presets[0]["pre_delay_ms"])
    if rv["type"] == "freeverb":
        assert rv["room_size"] == pytest.approx(presets[0]["room_size"])
    else:
        assert rv["band_decay_ratios"] == pytest.approx(presets[0]["band_decay_ratios"])
        assert rv["decay_s"] == r.json()["params"]["targets"]["reverb_decay_s"]
    assert r.json()["params"]["targets"]["reverb_decay_s"] == pytest.approx(
        presets[0]["decay_s"], rel=0.01)

    assert client.delete(links["self"]).status_code == 204
    assert client.get(links["self"]).status_code == 404
    assert client.get(links["mix"]).status_code == 404
    assert client.delete(links["self"]).status_code == 404
    assert folders(app) == []


def test_a_multipart_body_cut_off_before_its_closing_boundary_is_refused(client, pair):
    # it was read as whole: the file cut short mixed as it was, a last field dropped
    v, b = pair

    def part(name: str, data: bytes, filename: str | None = None) -> bytes:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        return f"--XyZ\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"

    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    body = part("vocal", v, "take.wav") + part("backing", b, "track.wav")
    for cut in (body[: len(body) - len(b) // 2], body + part("vocal_to_mix_lu", b"-3.0")[:-4]):
        r = client.post("/api/mixes", content=cut, headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "upload.malformed", r.text
    r = client.post("/api/mixes", content=body + b"--XyZ--\r\n", headers=headers)
    assert r.status_code == 201, r.text


def test_a_file_gone_before_its_answer_is_a_404_and_a_bad_range_is_ignored(
        client, pair, app, monkeypatch):
    # a DELETE or the expiry between the route's check and the response's own opening
    # of the file gave a 500 whose text named the storage path
    from vocalmix.frontends.server.errors import from_exception

    mid = post_mix(client, pair).json()["id"]
    whole = client.get(f"/api/mixes/{mid}/audio/mix")
    assert whole.status_code == 200
    r = client.get(f"/api/mixes/{mid}/audio/mix", headers={"Range": "bytes=5-2"})
    assert r.status_code == 200 and r.content == whole.content  # (RFC 9110: ignored)
    store = app.state.store
    checked = store.regular_file

    def removed_meanwhile(p):
        q = checked(p)
        q.unlink()
        return q

    monkeypatch.setattr(store, "regular_file", removed_meanwhile)
    r = client.get(f"/api/mixes/{mid}/audio/mix")
    assert r.status_code == 404 and r.json()["code"] == "mix.not_found", r.text
    assert str(store.root) not in r.text
    detail = from_exception(RuntimeError(f"File at path {store.root}/x does not exist")).detail
    assert detail.startswith("internal error (RuntimeError)") and str(store.root) not in detail


def test_a_delete_while_a_job_holds_the_mix_answers_at_once_and_removes_it_after(
        client, pair, app):
    # the DELETE waited for the job in one of the server's threads: some forty of them
    # held every thread, and every plain route (GET of another mix, the page) waited too
    import threading
    import time

    mid = post_mix(client, pair).json()["id"]
    held = app.state.store.lock(mid)
    held.acquire()  # (a render of the mix under way)
    try:
        answers: list[int] = []
        asked = [threading.Thread(target=lambda: answers.append(
            client.delete(f"/api/mixes/{mid}").status_code)) for _ in range(3)]
        for t in asked:
            t.start()
        for t in asked:
            t.join(timeout=30)
        assert answers == [204, 204, 204]
        assert folders(app) == [mid]  # (the job still has it)
    finally:
        held.release()
    deadline = time.monotonic() + 30
    while folders(app):
        assert time.monotonic() < deadline, "the mix was not removed after its job"
        time.sleep(0.02)
    assert client.get(f"/api/mixes/{mid}").status_code == 404


def test_head_of_audio_and_of_the_params_document_gives_their_headers(client, pair):
    # a client asking what a URL holds before fetching it got 405
    mid = post_mix(client, pair).json()["id"]
    for url in (f"/api/mixes/{mid}/audio/mix", f"/api/mixes/{mid}/params.json"):
        full = client.get(url)
        head = client.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(full.content))
        assert head.headers["content-type"] == full.headers["content-type"]
    assert client.head(f"/api/mixes/{'Z' * 24}/audio/mix").status_code == 404


def test_ogg_of_a_mix_above_192_khz_is_refused_not_a_crash(client):
    # libsndfile's Vorbis encoder crashed the server's process (SIGSEGV) above 200 kHz
    v, b = synthesize_song(sample_rate=256000, duration_s=1.5, seed=5)
    small = (wav_bytes(v[:, :1], 256000, "PCM_16"), wav_bytes(b[:, :1], 256000, "PCM_16"))
    r = post_mix(client, small, method="baseline")  # (mono 16-bit: within the 2 MB limit)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    r = client.get(f"/api/mixes/{mid}/audio/mix", params={"format": "ogg"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == ("OGG is written at up to 192 kHz only, and the mix is at "
                                  "256000 Hz: ask for format=flac or format=wav")
    assert client.get(f"/api/mixes/{mid}/audio/mix", params={"format": "flac"}
                      ).status_code == 200


def test_audio_in_flac_mp3_and_ogg_is_encoded_once_from_the_render(client, pair, app):
    mid = post_mix(client, pair).json()["id"]
    wav, _ = read_wav(client.get(f"/api/mixes/{mid}/audio/mix").content)
    for fmt, media, kind in (("flac", "audio/flac", "FLAC"), ("mp3", "audio/mpeg", "MP3"),
                             ("ogg", "audio/ogg", "OGG")):
        r = client.get(f"/api/mixes/{mid}/audio/mix", params={"format": fmt})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == media
        assert r.headers["content-disposition"].endswith(f'-mix.{fmt}"')
        info = sf.info(io.BytesIO(r.content))
        assert info.format == kind and info.samplerate == SR
        x, _ = sf.read(io.BytesIO(r.content), dtype="float32", always_2d=True)
        assert x.shape == wav.shape
        if fmt == "flac":  # 24-bit as rendered
            assert np.abs(x - wav).max() < 2.0 ** -22
        else:  # lossy, in time: the error well below the signal
            err_db = 10 * np.log10(np.mean((x - wav) ** 2) / np.mean(wav ** 2))
            assert err_db < -10.0, (fmt, err_db)
    # kept with the revision: a second request reads the same file, without a job
    d = app.state.store.root / mid
    encoded = sorted(p.name for p in d.rglob("mix.*"))
    assert encoded == ["mix.flac", "mix.mp3", "mix.ogg", "mix.wav"]
    r = client.get(f"/api/mixes/{mid}/audio/plain", params={"format": "mp3"})
    assert r.status_code == 200 and sf.info(io.BytesIO(r.content)).format == "MP3"
    r = client.get(f"/api/mixes/{mid}/audio/mix", params={"format": "m4a"})
    assert r.status_code == 422 and "is not one of wav, flac, mp3, ogg, wav16, flac16" in (
        r.json()["detail"])


def test_audio_in_16_bit_is_the_render_dithered(client, pair, app):
    """``format=wav16`` and ``flac16``: 16-bit PCM with TPDF dither (0.5 LSB RMS from the
    24-bit render, 1.5 LSB at most), named for what they are, kept with the revision."""
    mid = post_mix(client, pair).json()["id"]
    wav, _ = read_wav(client.get(f"/api/mixes/{mid}/audio/mix").content)
    for fmt, media, kind in (("wav16", "audio/wav", "WAV"), ("flac16", "audio/flac", "FLAC")):
        r = client.get(f"/api/mixes/{mid}/audio/mix", params={"format": fmt})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == media
        ext = ".wav" if kind == "WAV" else ".flac"
        assert r.headers["content-disposition"].endswith(f'-mix-16bit{ext}"')
        info = sf.info(io.BytesIO(r.content))
        assert (info.format, info.subtype) == (kind, "PCM_16")
        x, _ = sf.read(io.BytesIO(r.content), dtype="float64", always_2d=True)
        err = (x - wav) * 32768.0
        assert np.abs(err).max() <= 1.5 + 1e-6
        assert 0.45 < np.sqrt(np.mean(err ** 2)) < 0.55
    d = app.state.store.root / mid
    assert sorted(p.name for p in d.rglob("mix-16bit.*")) == ["mix-16bit.flac",
                                                               "mix-16bit.wav"]


def test_mp3_of_a_mix_above_48_khz_is_refused_with_what_to_ask_for(client):
    v, b = song(duration_s=1.0, sr=96000)
    mid = post_mix(client, (v, b)).json()["id"]
    r = client.get(f"/api/mixes/{mid}/audio/mix", params={"format": "mp3"})
    assert r.status_code == 422
    assert "the mix is at 96000 Hz: ask for format=flac" in r.json()["detail"]
    r = client.get(f"/api/mixes/{mid}/audio/vocal", params={"format": "flac"})
    assert r.status_code == 200 and sf.info(io.BytesIO(r.content)).samplerate == 96000


def test_room_size_edit_updates_the_documented_decay(client, pair):
    body = post_mix(client, pair, method="baseline").json()  # a freeverb to edit
    p = body["params"]
    p["vocal"]["reverb"]["room_size"] = 0.9
    r = client.put(body["links"]["edit"], json={"params": p})
    assert r.status_code == 200
    decay = r.json()["params"]["vocal"]["reverb"]["decay_s"]
    assert decay > p["vocal"]["reverb"]["decay_s"] + 0.5
    assert any("decay_s" in n for n in r.json()["notes"])


SYNTHETIC = {"enabled": True, "type": "synthetic", "decay_s": 2.5,
             "band_decay_ratios": [1.6, 1.3, 1.1, 1.0, 0.8, 0.6, 0.4], "width": 0.8,
             "wet_level_db": -10.0, "pre_delay_ms": 15.0}


def test_synthetic_reverb_is_rendered_as_written(client, pair):
    from vocalmix.core.reverb import decay_for_room_size

    body = post_mix(client, pair)
    links = body.json()["links"]
    p = body.json()["params"]
    p["vocal"]["reverb"].update(SYNTHETIC, room_size=0.9)  # room size: ignored by this type
    r = client.put(links["edit"], json={"params": p})
    assert r.status_code == 200, r.text
    got = r.json()["params"]
    assert got["version"] == SCHEMA_VERSION
    assert got["vocal"]["reverb"] == p["vocal"]["reverb"]  # decay_s is the setting itself
    assert not any("decay_s" in n for n in r.json()["notes"])
    assert client.get(links["self"]).json()["params"] == got
    assert json.loads(client.get(links["params_file"]).content) == got
    # the wet part (vocal stem minus the dry one) is wet_level_db under the dry, in energy
    wet1 = read_wav(client.get(links["vocal"]).content)[0]
    dry = read_wav(client.get(links["vocal_dry"]).content)[0]
    wet1 = wet1 - dry
    rd = 10 * np.log10(np.sum(wet1.astype(np.float64) ** 2) / np.sum(dry.astype(np.float64) ** 2))
    assert rd == pytest.approx(SYNTHETIC["wet_level_db"], abs=2.0)
    # a shorter decay time: rendered as written, a different wet signal
    got["vocal"]["reverb"]["decay_s"] = 0.6
    r = client.put(links["edit"], json={"params": got})
    assert r.status_code == 200, r.text
    assert r.json()["params"]["vocal"]["reverb"]["decay_s"] == 0.6
    wet2 = read_wav(client.get(links["vocal"]).content)[0] - dry
    assert not np.allclose(wet1, wet2, atol=1e-4)
    # a decay that makes one band decay longer than 30 s is refused
    bad = r.json()["params"]
    bad["vocal"]["reverb"]["decay_s"] = 20.0
    r = client.put(links["edit"], json={"params": bad})
    assert r.status_code == 422 and "30" in r.json()["detail"]
    # the reverb-time target re-resolves: the decay time becomes the target
    r = client.put(links["edit"], json={"targets": {"reverb_decay_s": 3.2}})
    assert r.status_code == 200, r.text
    rv = r.json()["params"]["vocal"]["reverb"]
    assert rv["type"] == "synthetic" and rv["decay_s"] == 3.2
    assert rv["band_decay_ratios"] == SYNTHETIC["band_decay_ratios"]
    # back to freeverb: its decay_s is what its room size and damping give
    q = r.json()["params"]
    q["vocal"]["reverb"]["type"] = "freeverb"
    r = client.put(links["edit"], json={"params": q})
    assert r.status_code == 200, r.text
    rv = r.json()["params"]["vocal"]["reverb"]
    assert rv["type"] == "freeverb" and rv["room_size"] == 0.9
    assert rv["decay_s"] == pytest.approx(decay_for_room_size(0.9, rv["damping"], SR))
    assert any("decay_s" in n for n in r.json()["notes"])


OLD_PRESETS = {  # the freeverb format: params.room_size...
    "small_room": {"source": "small_room.wav", "params": {
        "room_size": 0.2, "damping": 0.4, "wet_level_db": 15.0, "pre_delay_ms": 3.0},
        "within_10pct_500_4k": False, "t30_s_target": {"1000": 0.7}},
}
NEW_PRESETS = {  # the synthetic format: reverb.type...
    "big_hall": {"origin": "real", "source": "big_hall.wav", "reverb": {
        "type": "synthetic", "decay_s": 2.4,
        "band_decay_ratios": [1.3, 1.2, 1.1, 1.0, 0.9, 0.75, 0.5], "width": 0.9,
        "wet_level_db": -6.0, "pre_delay_ms": 12.0},
        "t30_s_target": {"1000": 2.4}, "t30_s_fitted": {"1000": 2.39}},
    "plate": {"origin": "pedalboard", "source": "pedalboard Reverb, room_size 0.5", "reverb": {
        "type": "synthetic", "decay_s": 1.1, "band_decay_ratios": [1.0] * 7, "width": 1.0,
        "wet_level_db": -9.5, "pre_delay_ms": 0.0}},
}


def test_presets_in_the_old_and_the_new_format(client, pair, monkeypatch):
    import vocalmix.estimators.presets as presets_mod
    from vocalmix.core.reverb import decay_for_room_size

    mix = post_mix(client, pair).json()
    monkeypatch.setattr(presets_mod, "presets", lambda: OLD_PRESETS)
    r = client.get("/api/presets")
    assert r.status_code == 200, r.text
    (old,) = r.json()
    assert old["name"] == "small_room" and old["type"] == "freeverb"
    assert old["origin"] is None and old["source"] == "small_room.wav"
    assert old["room_size"] == 0.2 and old["damping"] == 0.4 and old["band_decay_ratios"] is None
    assert old["decay_s"] == pytest.approx(decay_for_room_size(0.2, 0.4))
    assert old["wet_level_db"] == presets_mod.WET_LEVEL_MAX_DB  # as applied: capped
    assert old["pre_delay_ms"] == 3.0
    r = client.put(mix["links"]["edit"], json={"reverb_preset": "small_room"})
    assert r.status_code == 200, r.text
    assert r.json()["params"]["vocal"]["reverb"]["room_size"] == pytest.approx(0.2, abs=0.01)

    monkeypatch.setattr(presets_mod, "presets", lambda: NEW_PRESETS)
    r = client.get("/api/presets")
    assert r.status_code == 200, r.text
    hall, plate = r.json()
    assert [hall["name"], plate["name"]] == ["big_hall", "plate"]
    want = NEW_PRESETS["big_hall"]["reverb"]
    assert hall["origin"] == "real" and plate["origin"] == "pedalboard"
    assert hall["type"] == "synthetic" and hall["decay_s"] == 2.4
    assert hall["band_decay_ratios"] == want["band_decay_ratios"]
    assert (hall["wet_level_db"], hall["pre_delay_ms"], hall["width"]) == (-6.0, 12.0, 0.9)
    assert hall["room_size"] is None and hall["damping"] is None
    r = client.put(mix["links"]["edit"], json={"reverb_preset": "big_hall"})
    assert r.status_code == 200, r.text
    rv = r.json()["params"]["vocal"]["reverb"]
    assert rv["type"] == "synthetic" and rv["band_decay_ratios"] == want["band_decay_ratios"]

    # the response is documented, units included
    schema = client.get("/openapi.json").json()["components"]["schemas"]["Preset"]["properties"]
    for k in ("name", "origin", "type", "decay_s", "band_decay_ratios", "wet_level_db",
              "pre_delay_ms"):
        assert schema[k].get("description"), k
    assert ", s" in schema["decay_s"]["description"]
    assert "dB" in schema["wet_level_db"]["description"]
    assert "ms" in schema["pre_delay_ms"]["description"]
    assert "125" in schema["band_decay_ratios"]["description"]


def test_plain_sum_is_at_the_mix_loudness(client, pair):
    body = post_mix(client, pair).json()
    links = body["links"]
    for target in (None, -9.0):
        if target is not None:
            r = client.put(links["edit"], json={"targets": {"vocal_to_mix_lu": target}})
            body = r.json()
        x, sr = read_wav(client.get(links["plain"]).content)
        mix_lufs = body["params"]["achieved"]["mix_integrated_lufs"]
        assert integrated_loudness(x, sr) == pytest.approx(mix_lufs, abs=0.15)
    # it is the sum of the inputs, only scaled
    v, sr = read_wav(pair[0])
    b, _ = read_wav(pair[1])
    plain = v + b
    k = float(np.dot(x.ravel(), plain.ravel()) / np.dot(plain.ravel(), plain.ravel()))
    assert np.abs(k * plain - x).max() < 1e-3


@pytest.mark.slow  # several seconds: the slow run (.ci/run) keeps it
def test_options_method_params_preset_and_rates(client, pair):
    base = post_mix(client, pair, vocal_lra_lu=9, reverb_decay_s=1.2).json()["params"]
    assert base["targets"]["vocal_lra_lu"] == 9.0
    assert base["targets"]["reverb_decay_s"] == 1.2
    # a params document as the starting point (like `vocalmix mix --params-in`)
    start = dict(base, targets=dict(base["targets"], vocal_to_mix_lu=-7.5))
    r = post_mix(client, pair, params=json.dumps(start))
    assert r.status_code == 201, r.text
    assert r.json()["params"]["achieved"]["vocal_to_mix_lu"] == pytest.approx(-7.5, abs=0.05)
    # the model estimator (or the baseline it falls back to), and a reverb preset
    name = client.get("/api/presets").json()[3]["name"]
    r = post_mix(client, pair, method="model", reverb_preset=name)
    assert r.status_code == 201, r.text
    assert r.json()["params"]["provenance"]["method"] in ("model", "baseline")
    # mono vocal at 22.05 kHz, stereo backing at 16 kHz: resampled to the vocal's rate
    v, b = synthesize_song(sample_rate=22050, duration_s=3.0, seed=2)
    _, b16 = synthesize_song(sample_rate=SR, duration_s=3.0, seed=2)
    r = post_mix(client, (wav_bytes(v[:, 0], 22050, "PCM_16"), wav_bytes(b16)))
    assert r.status_code == 201, r.text
    assert r.json()["sample_rate"] == 22050
    assert any("resampled" in n for n in r.json()["notes"])
    assert any("mono" in n for n in r.json()["notes"])
    # FLAC and OGG uploads decode too
    for fmt in ("FLAC", "OGG"):
        buf = io.BytesIO()
        sf.write(buf, b, 22050, format=fmt)
        r = post_mix(client, (wav_bytes(v, 22050), buf.getvalue()))
        assert r.status_code == 201, (fmt, r.text)


def test_demo(client):
    r = client.post("/api/demo?duration_s=3")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "vocalmix-demo" and body["duration_s"] == 3.0
    assert body["params"]["provenance"]["method"] in ("baseline", "model")
    assert client.get(body["links"]["mix"]).status_code == 200


def test_a_new_mix_whose_job_fails_while_the_request_waits_leaves_nothing(client, app,
                                                                          pair, monkeypatch):
    """Upload and demo alike: the failure is the answer's status and the mix's folder is
    gone; a refused request before the job leaves nothing either."""
    import vocalmix.pipeline as pipeline
    from vocalmix.core.errors import TargetUnreachableError

    def failing_mix(*a, **kw):
        raise TargetUnreachableError("the vocal cannot get that loud; lower the target")

    monkeypatch.setattr(pipeline, "mix", failing_mix)
    before = folders(app)
    r = post_mix(client, pair)
    assert r.status_code == 422 and "lower the target" in r.json()["detail"]
    r = client.post("/api/demo?duration_s=3")
    assert r.status_code == 422 and "lower the target" in r.json()["detail"]
    assert client.post("/api/demo?duration_s=0.01").status_code == 422
    assert post_mix(client, pair, fold="sideways").status_code == 422
    deadline = time.time() + 10
    while folders(app) != before:  # discarded once the failed jobs have ended
        assert time.time() < deadline
        time.sleep(0.02)


def test_wait_false_reports_progress_then_the_result(client, pair, monkeypatch):
    """``wait=false``: 202 at once, GET shows the stage while it works, 409 for audio
    and edits until it is done."""
    import vocalmix.pipeline as pipeline

    gate = threading.Event()
    real_mix = pipeline.mix

    from vocalmix.core.progress import ProgressEvent

    def slow_mix(*a, **kw):
        kw["progress"](ProgressEvent("resolve.gain", 0.6, "resolving the vocal gain"))
        assert gate.wait(30)
        return real_mix(*a, **kw)

    monkeypatch.setattr(pipeline, "mix", slow_mix)
    r = post_mix(client, pair, wait="false")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "mixing" and body["params"] is None
    links = body["links"]
    deadline = time.time() + 20
    while client.get(links["self"]).json()["progress"]["fraction"] < 0.4:
        assert time.time() < deadline
        time.sleep(0.02)
    g = client.get(links["self"]).json()
    assert g["status"] == "mixing" and g["progress"]["stage"] == "resolve.gain"
    assert g["progress"]["message"].startswith("resolving the vocal")
    r = client.get(links["mix"])
    assert r.status_code == 409 and "still being made" in r.json()["detail"]
    assert client.put(links["edit"], json={"targets": {"vocal_lra_lu": 5}}).status_code == 409
    gate.set()
    while (g := client.get(links["self"]).json())["status"] == "mixing":
        assert time.time() < deadline
        time.sleep(0.02)
    assert g["status"] == "done" and g["progress"]["fraction"] == 1.0
    assert g["params"]["achieved"]["vocal_to_mix_lu"] is not None
    assert client.get(links["mix"]).status_code == 200


def test_wait_false_failure_is_reported(client, pair, monkeypatch):
    import vocalmix.pipeline as pipeline
    from vocalmix.core.errors import TargetUnreachableError

    def failing_mix(*a, **kw):
        raise TargetUnreachableError("the vocal cannot get that loud; lower the target")

    monkeypatch.setattr(pipeline, "mix", failing_mix)
    body = post_mix(client, pair, wait="0").json()
    deadline = time.time() + 20
    while (g := client.get(body["links"]["self"]).json())["status"] == "mixing":
        assert time.time() < deadline
        time.sleep(0.02)
    assert g["status"] == "failed"
    assert g["error"] == {"status": 422, "code": "target.unreachable",
                          "detail": "the vocal cannot get that loud; lower the target"}
    r = client.get(body["links"]["mix"])
    assert r.status_code == 409 and "lower the target" in r.json()["detail"]
    # with wait (the default), the same failure is the response's status, and nothing stays
    r = post_mix(client, pair)
    assert r.status_code == 422 and "lower the target" in r.json()["detail"]


def test_a_failed_background_mix_keeps_its_record_not_its_uploads(client, pair, app):
    # the raw uploads (up to the upload limit each) stayed to the expiry
    v, b = pair
    body = post_mix(client, (b"this is not audio" * 100, b), wait="0").json()
    deadline = time.time() + 20
    while (g := client.get(body["links"]["self"]).json())["status"] == "mixing":
        assert time.time() < deadline
        time.sleep(0.02)
    assert g["status"] == "failed" and g["error"]["code"] == "audio.unreadable"
    d = app.state.store.root / body["id"]
    assert d.is_dir() and not list(d.glob("upload_*"))


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/api/mixes": {"post"}, "/api/mixes/{mid}": {"get", "delete"},
        "/api/mixes/{mid}/params": {"put"}, "/api/mixes/{mid}/audio/{kind}": {"get"},
        "/api/mixes/{mid}/params.json": {"get"}, "/api/mixes/{mid}/analysis": {"get"},
        "/api/mixes/{mid}/peaks": {"get"}, "/api/demo": {"post"}, "/api/presets": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    post = paths["/api/mixes"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["vocal"]  # and a backing: the file, or a mix's
    assert form["oneOf"] == [{"required": ["backing"]}, {"required": ["backing_from"]}]
    assert "earlier mix" in form["properties"]["backing_from"]["description"]
    for k in ("reference_vocal", "reference_backing", "amount", "mix_lufs", "locks", "genre"):
        assert form["properties"][k]["description"], k
    spec_amount = client.get("/api/params/spec").json()["params"]["amount"]
    assert form["properties"]["amount"]["maximum"] == spec_amount["max"]
    put = paths["/api/mixes/{mid}/params"]["put"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]
    assert {"params", "targets", "amount", "locks", "reverb_preset", "resolve"} <= set(put)
    lufs = put["targets"]["properties"]["mix_lufs"]
    assert {"type": "null"} in lufs["anyOf"] and "LUFS" in lufs["description"]
    assert "/api/methods" in paths
    assert {"413", "415", "422", "201", "202"} <= set(post["responses"])
    schemas = spec["components"]["schemas"]
    assert "MixParams" in schemas and "Compressor" in schemas
    assert "moved" in schemas["Mix"]["properties"] and "Moved" in schemas
    assert "threshold_db" in schemas["Compressor"]["properties"]
    assert client.get("/docs").status_code == 200


# --- errors ------------------------------------------------------------------------------


def test_413_upload_over_the_limit(client, pair, app):
    big = wav_bytes(np.full((SR * 40, 2), 0.01, np.float32))  # 5 MB > 2 MB
    r = client.post("/api/mixes", files={"vocal": ("v.wav", big), "backing": ("b.wav", pair[1])})
    assert r.status_code == 413
    assert "limit of 2000000 bytes" in r.json()["detail"] or "MB" in r.json()["detail"]
    assert "--max-upload-mb" in r.json()["detail"]

    # streamed without Content-Length (chunked): counted as it arrives
    def chunks():
        yield (b'--xyz\r\nContent-Disposition: form-data; name="vocal"; filename="v.wav"\r\n'
               b"Content-Type: audio/wav\r\n\r\n")
        for _ in range(40):
            yield b"\0" * 100_000
        yield b"\r\n--xyz--\r\n"

    r = client.post("/api/mixes", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # a Content-Length that lies low does not help either
    r = client.post("/api/mixes", content=b"x" * (LIMIT + 10),
                    headers={"content-type": "multipart/form-data; boundary=xyz",
                             "content-length": "100"})
    assert r.status_code in (413, 422)
    # a huge params edit
    mid = post_mix(client, pair).json()["id"]
    r = client.put(f"/api/mixes/{mid}/params", content=b" " * (LIMIT + 1),
                   headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert folders(app) == [mid]  # nothing left behind by the refused uploads


def test_415_not_audio(client, pair, app):
    r = client.post("/api/mixes", files={"vocal": ("v.wav", b"RIFF this is not audio at all"),
                                         "backing": ("b.wav", pair[1])})
    assert r.status_code == 415
    detail = r.json()["detail"]
    assert detail.startswith("vocal v.wav: cannot be decoded as audio")
    assert str(app.state.store.root) not in detail and "upload_" not in detail
    r = client.post("/api/mixes", json={"vocal": "x"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    assert folders(app) == []


def test_422_audio_params_and_targets(client, pair, app):
    def upload(vocal: bytes, **form):
        return post_mix(client, (vocal, pair[1]), **form)

    cases = [
        (upload(wav_bytes(np.zeros((SR * 3, 2), np.float32))), "silent"),
        (upload(wav_bytes(np.full((SR * 3, 2), np.nan, np.float32))), "NaN"),
        (upload(wav_bytes(np.full((SR // 5, 2), 0.1, np.float32))), "too short"),
        (upload(wav_bytes(np.full((SR * 3, 3), 0.1, np.float32))), "channels"),
        (post_mix(client, pair, vocal_lra_lu=99), "targets.vocal_lra_lu = 99.0 is out of range"),
        (post_mix(client, pair, vocal_to_mix_lu="loud"), "must be a number"),
        (post_mix(client, pair, method="magic"), "baseline or model"),
        (post_mix(client, pair, amount=3), "amount = 3 is out of range"),
        (post_mix(client, pair, amount="lots"), "amount must be a number"),
        (post_mix(client, pair, mix_lufs=-60), "mix_lufs = -60 is out of range"),
        (post_mix(client, pair, locks="vocal.gain_db, vocal.nope"), "'vocal.nope' is not a"),
        (post_mix(client, pair, locks="[1]"), "1 is not a setting"),
        (post_mix(client, pair, genre="polka"), "unknown genre"),
        (client.post("/api/mixes", files={"vocal": ("v.wav", pair[0]),
                                          "backing": ("b.wav", pair[1]),
                                          "reference_vocal": ("r.wav", pair[0])}),
         "a reference needs both its stems"),
        (post_mix(client, pair, reverb_preset="no_such_room"), "unknown reverb preset"),
        (post_mix(client, pair, params="{nope"), "not valid JSON"),
        (post_mix(client, pair, wait="maybe"), "wait must be true or false"),
        (post_mix(client, pair, colour="blue"), "unknown form field 'colour'"),
        (client.post("/api/mixes", files={"vocal": ("v.wav", pair[0])}), "missing file"),
        (client.post("/api/demo?duration_s=1000"), "between 2 and 60"),
        (client.post("/api/demo?duration_s=long"), "duration_s"),
    ]
    for r, text in cases:
        assert r.status_code == 422, (text, r.status_code, r.text)
        assert text in r.json()["detail"], (text, r.json())
        assert r.json()["code"], text
    # the 3-channel message tells an API client what to send
    r = upload(wav_bytes(np.full((SR * 3, 3), 0.1, np.float32)))
    assert "fold=mean" in r.json()["detail"]
    r = upload(wav_bytes(np.tile(read_wav(pair[0])[0][:, :1], (1, 3))), fold="mean")
    assert r.status_code == 201, r.text
    kept = [r.json()["id"]]

    mid = post_mix(client, pair).json()["id"]
    kept.append(mid)
    url = f"/api/mixes/{mid}/params"
    p = client.get(f"/api/mixes/{mid}").json()["params"]
    bad_ratio = json.loads(json.dumps(p))
    bad_ratio["vocal"]["compressor"]["ratio"] = 0
    typo = json.loads(json.dumps(p))
    typo["vocal"]["gain"] = 1.0
    puts = [
        ({"targets": {"vocal_to_mix_lu": 5}}, "targets.vocal_to_mix_lu = 5.0 is out of range"),
        ({"targets": {"loudness": -3}}, "unknown target"),
        ({"targets": [1, 2]}, "targets must be an object"),
        ({"params": bad_ratio}, "vocal.compressor.ratio = 0.0 is out of range"),
        ({"params": typo}, "unknown key(s) in vocal: gain"),
        ({"params": p, "resolve": "yes"}, "resolve must be true or false"),
        ({"colour": "blue"}, "unknown key"),
        ({}, "nothing to change"),
        ([1, 2, 3], "JSON object"),
        ({"reverb_preset": "no_such_room"}, "unknown reverb preset"),
        ({"amount": 2.5}, "amount = 2.5 is out of range"),
        ({"amount": "x"}, "amount must be a number"),
        ({"amount": None}, "amount must be a number"),
        ({"locks": ["vocal.gain"]}, "'vocal.gain' is not a setting"),
        ({"locks": "vocal.gain_db"}, "locks must be a list"),
        ({"targets": {"mix_lufs": 0}}, "mix_lufs = 0 is out of range"),
        ({"targets": {"mix_lufs": [1]}}, "mix_lufs must be a number"),
    ]
    for body, text in puts:
        r = client.put(url, json=body)
        assert r.status_code == 422, (body, r.text)
        assert text in r.json()["detail"], (text, r.json())
        assert r.json()["code"], text
    r = client.put(url, content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    # none of that changed the mix
    assert client.get(f"/api/mixes/{mid}").json()["params"] == p
    assert client.get(f"/api/mixes/{mid}").json()["revision"] == 1
    assert folders(app) == sorted(kept)


def test_404_unknown_ids_kinds_and_routes(client, pair):
    mid = post_mix(client, pair).json()["id"]
    for url in ("/api/mixes/" + "A" * 24, "/api/mixes/" + "A" * 24 + "/audio/mix",
                "/api/mixes/" + "A" * 24 + "/params.json", "/api/mixes/short",
                f"/api/mixes/{mid}/audio/params", f"/api/mixes/{mid}/audio/vocal_in",
                "/api/nothing-here"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert isinstance(r.json()["detail"], str) and r.json()["detail"], url
    assert "expired" in client.get("/api/mixes/" + "A" * 24).json()["detail"]
    assert client.put("/api/mixes/" + "A" * 24 + "/params",
                      json={"targets": {"vocal_to_mix_lu": -3}}).status_code == 404
    assert client.delete("/api/mixes/" + "B" * 24).status_code == 404


# --- safety: traversal, expiry, concurrency ----------------------------------------------

TRAVERSALS = ["..", "...", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e",
              "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%252f..%252fetc", "....//....//etc",
              "..\\..\\etc", "%00", "a%00b", "/etc/passwd", "~root", "A" * 23 + "/",
              "A" * 25, "A" * 22 + "..", "%2fetc%2fpasswd"]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_path_traversal_is_refused(client, pair, app, tmp_path, bad):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    mid = post_mix(client, pair).json()["id"]
    urls = [f"/api/mixes/{bad}", f"/api/mixes/{bad}/audio/mix", f"/api/mixes/{bad}/peaks",
            f"/api/mixes/{bad}/params.json", f"/api/mixes/{bad}/analysis",
            f"/api/mixes/{mid}/audio/{bad}", f"/api/mixes/{mid}/audio/..%2Fparams.json",
            f"/api/mixes/{mid}/audio/..%2F..%2F..%2Fsecret.txt", f"/static/{bad}",
            "/static/..%2Fserver.py", "/static/%2e%2e/server.py"]
    for url in urls:
        r = client.get(url)
        assert b"root:" not in r.content and b"def create_app" not in r.content, url
        if r.status_code == 200:  # the client normalised the path to a legitimate one
            assert r.url.path in (f"/api/mixes/{mid}", "/api/mixes", "/",
                                  "/static/api.html"), (url, r.url.path)
        else:
            assert r.status_code in (404, 405), (url, r.status_code)
    for r in (client.put(f"/api/mixes/{bad}/params", json={"targets": {}}),
              client.delete(f"/api/mixes/{bad}")):
        assert r.status_code in (404, 405)
    assert folders(app) == [mid]  # nothing deleted, nothing created
    assert secret.read_text() == "root:x:0:0"
    with pytest.raises(Exception, match="no mix"):
        app.state.store.path(bad)


def test_a_symlink_in_the_storage_does_not_lead_out(client, app, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "meta.json").write_text('{"status": "done"}')
    (outside / "params.json").write_text("{}")
    (outside / "mix.wav").write_bytes(wav_bytes(np.zeros((SR, 2), np.float32)))
    link = app.state.store.root / ("S" * 24)
    link.symlink_to(outside, target_is_directory=True)
    for url in ("/api/mixes/" + "S" * 24, "/api/mixes/" + "S" * 24 + "/audio/mix"):
        assert client.get(url).status_code == 404
    assert client.delete("/api/mixes/" + "S" * 24).status_code == 404
    app.state.store.sweep(now=time.time() + 10**6)
    assert (outside / "mix.wav").exists()


def test_time_to_live_cleanup(client, pair, app):
    store = app.state.store
    mid = post_mix(client, pair).json()["id"]
    old = post_mix(client, pair).json()["id"]
    past = time.time() - 7200
    os.utime(store.root / old, (past, past))
    assert store.sweep() == [old]
    assert client.get(f"/api/mixes/{old}").status_code == 404
    assert client.get(f"/api/mixes/{mid}").status_code == 200
    # a mix being worked on (its lock held) waits for the next sweep
    with store.lock(mid):
        assert store.sweep(now=time.time() + 3601) == []
    # an edit counts as a change: the clock restarts
    t_edit = time.time()
    client.put(f"/api/mixes/{mid}/params", json={"targets": {"vocal_to_mix_lu": -5}})
    assert store.sweep(now=t_edit + 3000) == []
    assert store.sweep(now=t_edit + 3700) == [mid]
    assert client.get(f"/api/mixes/{mid}").status_code == 404
    assert not (store.root / mid).exists() and folders(app) == []


def test_the_sweeper_thread_runs_while_served(tmp_path, pair):
    app = create_app(tmp_path / "s", ttl_s=0.3, cleanup_interval_s=0.1)
    with TestClient(app, base_url=BASE_URL) as client:  # runs the lifespan: the sweeper
        mid = post_mix(client, pair).json()["id"]
        deadline = time.time() + 10
        while client.get(f"/api/mixes/{mid}").status_code == 200:
            assert time.time() < deadline, "the sweeper did not remove the expired mix"
            time.sleep(0.05)
        assert not (app.state.store.root / mid).exists()


@pytest.mark.slow  # several seconds: the slow run (.ci/run) keeps it
def test_eight_concurrent_mixes_each_get_their_own_result(client):
    """Eight uploads at once, each with its own song (length, seed) and its own target:
    every result has its own id, its own target reached, and audio as long as its input."""
    n = 8
    songs = [song(seed=10 + i, duration_s=3.0 + 0.25 * i) for i in range(n)]
    targets = [-1.5 - 0.75 * i for i in range(n)]
    results: dict[int, object] = {}
    start = threading.Barrier(n)

    def go(i: int) -> None:
        start.wait()
        results[i] = post_mix(client, songs[i], vocal_to_mix_lu=targets[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = set()
    for i in range(n):
        r = results[i]
        assert r.status_code == 201, r.text
        body = r.json()
        ids.add(body["id"])
        assert body["duration_s"] == 3.0 + 0.25 * i
        assert body["params"]["targets"]["vocal_to_mix_lu"] == targets[i]
        assert body["params"]["achieved"]["vocal_to_mix_lu"] == pytest.approx(targets[i],
                                                                              abs=0.05)
        again = client.get(body["links"]["self"]).json()
        assert again["params"] == body["params"]
        x, _ = read_wav(client.get(body["links"]["mix"]).content)
        assert x.shape[0] == round((3.0 + 0.25 * i) * SR)
        # the stored vocal is this request's vocal
        vocal_in, _ = read_wav(songs[i][0])
        dry, _ = read_wav(client.get(body["links"]["vocal_dry"]).content)
        assert np.corrcoef(dry[:, 0], vocal_in[:, 0])[0, 1] > 0.5
    assert len(ids) == n


def test_concurrent_edits_of_one_mix_are_applied_one_after_the_other(client, pair):
    body = post_mix(client, pair).json()
    url = body["links"]["edit"]
    targets = [-2.0, -4.0, -6.0, -8.0]
    out: dict[float, dict] = {}

    def go(t: float) -> None:
        out[t] = client.put(url, json={"targets": {"vocal_to_mix_lu": t}}).json()

    threads = [threading.Thread(target=go, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o["revision"] for o in out.values()) == [2, 3, 4, 5]
    for t, o in out.items():  # each response describes its own edit
        assert o["params"]["achieved"]["vocal_to_mix_lu"] == pytest.approx(t, abs=0.05)
    last = max(out.values(), key=lambda o: o["revision"])
    assert client.get(body["links"]["self"]).json()["params"] == last["params"]


# --- the page, settings, command line ----------------------------------------------------


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "Try the demo" in r.text and "/static/app.js" in r.text
    for f in ("app.js", "style.css", "api.html", "api.js"):
        assert client.get(f"/static/{f}").status_code == 200
    r = client.get("/api")  # the offline API reference, rendered from /openapi.json
    assert r.status_code == 200 and r.url.path == "/static/api.html"
    assert client.get("/api/health").json()["max_upload_bytes"] == LIMIT


def test_waveform_peaks():
    x = np.zeros((1000, 2), np.float32)
    x[10, 1] = -0.5
    pk = waveform_peaks(x, columns=100)
    assert len(pk["peak"]) == 100 and pk["peak"][1] == 0.5 and pk["peak"][0] == 0.0
    assert pk["rms"][1] == pytest.approx(0.5 / np.sqrt(10), abs=1e-4)
    assert len(waveform_peaks(x[:5], columns=100)["peak"]) == 5


@pytest.mark.parametrize("n, columns", [(100_003, 1200), (5000, 65), (5000, 64), (1201, 1200),
                                        (7, 100), (64 * 9 + 5, 129)])
def test_waveform_peaks_in_groups_of_columns_are_the_whole_signals(n, columns):
    # the columns are summarised a group at a time (no full-length temporaries): the same
    # values as the whole signal's magnitudes and squares reduced at once
    x = np.random.default_rng(n).standard_normal((n, 2)).astype(np.float32) * 0.3
    a = np.abs(x).max(axis=1)
    starts = np.linspace(0, n, min(columns, n) + 1).astype(np.int64)[:-1]
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    peak = np.maximum.reduceat(a, starts)
    rms = np.sqrt(np.add.reduceat(a.astype(np.float64) ** 2, starts) / counts)
    got = waveform_peaks(x, columns=columns)
    assert got == {"peak": np.round(peak, 4).tolist(), "rms": np.round(rms, 4).tolist()}


@pytest.mark.parametrize("shape", [(3001, 2), (3001, 1), (3001, 4)])
def test_the_louder_channel_is_numpys_row_maximum_of_the_magnitudes(shape):
    # the waveforms read it a channel at a time (measure.sample_peak; numpy's reduction
    # over two-sample rows took 0.3 s of every 3-minute page mix and edit, per
    # waveform): the same values, in either layout
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    x[7, -1] = np.nan
    for arr in (x, np.asfortranarray(x), x.astype(np.float64)):
        got = sample_peak(np.asarray(arr, dtype=np.float32))  # as waveform_peaks reads it
        assert got.dtype == np.float32
        assert np.array_equal(got, np.abs(arr.astype(np.float32)).max(axis=1), equal_nan=True)


def test_settings_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VOCALMIX_STORAGE", str(tmp_path / "env-store"))
    monkeypatch.setenv("VOCALMIX_MAX_UPLOAD_MB", "0.5")
    monkeypatch.setenv("VOCALMIX_TTL_S", "12")
    app = create_app()
    assert app.state.store.root == (tmp_path / "env-store").resolve()
    assert app.state.max_upload_bytes == 2**19 and app.state.store.ttl_s == 12.0
    app = create_app(tmp_path / "arg", max_upload_bytes=1000, ttl_s=5)  # arguments win
    assert app.state.max_upload_bytes == 1000 and app.state.store.ttl_s == 5
    assert app.state.studio.keep_edits_bytes == 256 * 2**20
    from vocalmix.core.render import KEEP_MAX_BYTES
    from vocalmix.frontends.server.app import DEFAULT_KEEP_EDITS_MB
    assert DEFAULT_KEEP_EDITS_MB * 2**20 == KEEP_MAX_BYTES  # (one bound, stated twice)
    monkeypatch.setenv("VOCALMIX_KEEP_EDITS_MB", "0")  # keep nothing for the next edit
    assert create_app(tmp_path / "arg").state.studio.keep_edits_bytes == 0
    monkeypatch.setenv("VOCALMIX_KEEP_EDITS_MB", "-1")
    with pytest.raises(VocalmixError, match="VOCALMIX_KEEP_EDITS_MB"):
        create_app(tmp_path / "bad")
    monkeypatch.delenv("VOCALMIX_KEEP_EDITS_MB")
    monkeypatch.setenv("VOCALMIX_TTL_S", "soon")
    with pytest.raises(VocalmixError, match="VOCALMIX_TTL_S"):
        create_app(tmp_path / "bad")


def test_serve_command(tmp_path):
    from vocalmix.frontends.cli import build_parser, main

    args = build_parser(["serve"]).parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8000) and callable(args.func)
    assert main(["serve", "--ttl-s", "-1"]) == 2  # one-line error, no server started
    assert main(["serve", "--keep-edits-mb", "-5"]) == 2
    # a port in use: a one-line error, exit 2, no storage made (uvicorn's own start-up
    # failure was exit 3, the code of an internal error, after the "serving" line)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["serve", "--port", str(busy), "--storage",
                     str(tmp_path / "unmade")]) == 2
    assert not (tmp_path / "unmade").exists()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vocalmix.frontends.cli", "serve", "--port", str(port), "--storage",
         str(tmp_path / "cli-store"), "--max-upload-mb", "3", "--ttl-s", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health",
                                            timeout=2) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.time() < deadline, "vocalmix serve did not answer"
                time.sleep(0.2)
        assert health["max_upload_bytes"] == 3 * 2**20 and health["ttl_s"] == 60.0
        assert (tmp_path / "cli-store").is_dir()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0]
    assert f"http://127.0.0.1:{port}/" in out


# --- the server and the command line do the same thing -------------------------------------


def test_render_writes_the_same_decay_as_the_server(client, pair, tmp_path):
    """An edited freeverb room size: ``PUT .../params`` and ``vocalmix render`` of the same
    document on the same inputs write the same ``decay_s`` (and render the same mix)."""
    from vocalmix.frontends.cli import main

    body = post_mix(client, pair).json()
    edited = body["params"]
    edited["vocal"]["reverb"].update(type="freeverb", room_size=0.85, damping=0.3)
    stale = edited["vocal"]["reverb"]["decay_s"]
    r = client.put(body["links"]["edit"], json={"params": edited})
    assert r.status_code == 200, r.text
    server_decay = r.json()["params"]["vocal"]["reverb"]["decay_s"]
    assert server_decay != pytest.approx(stale, abs=0.05)

    (tmp_path / "v.wav").write_bytes(pair[0])
    (tmp_path / "b.wav").write_bytes(pair[1])
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    code = main(["render", str(tmp_path / "v.wav"), str(tmp_path / "b.wav"),
                 str(tmp_path / "edited.json"), "-o", str(tmp_path / "mix.wav"),
                 "--params-out", str(tmp_path / "out.json"), "-q"])
    assert code == 0
    cli = json.loads((tmp_path / "out.json").read_text())
    assert cli["vocal"]["reverb"]["decay_s"] == server_decay
    cli_mix, _ = sf.read(tmp_path / "mix.wav", dtype="float32", always_2d=True)
    server_mix, _ = read_wav(client.get(body["links"]["mix"]).content)
    assert np.abs(cli_mix - server_mix).max() < 1e-6  # both 24-bit PCM of one render


def test_a_preset_is_applied_the_same_by_the_server_and_the_command_line(client, pair,
                                                                          tmp_path):
    from vocalmix.frontends.cli import main

    name = sorted(client.get("/api/presets").json(), key=lambda p: p["name"])[1]["name"]
    r = post_mix(client, pair, method="baseline", reverb_preset=name, vocal_lra_lu=10)
    assert r.status_code == 201, r.text
    server = r.json()["params"]
    (tmp_path / "v.wav").write_bytes(pair[0])
    (tmp_path / "b.wav").write_bytes(pair[1])
    code = main(["mix", str(tmp_path / "v.wav"), str(tmp_path / "b.wav"), "--method",
                 "baseline", "--reverb-preset", name, "--vocal-lra-lu", "10", "-o",
                 str(tmp_path / "mix.wav"), "--params-out", str(tmp_path / "p.json"), "-q"])
    assert code == 0
    cli = json.loads((tmp_path / "p.json").read_text())
    preset = next(p for p in client.get("/api/presets").json() if p["name"] == name)
    assert server["vocal"]["reverb"]["type"] == preset["type"]
    assert server["vocal"]["reverb"]["pre_delay_ms"] == preset["pre_delay_ms"]
    assert server["targets"]["vocal_lra_lu"] == 10.0  # the override after the preset
    for d in (server, cli):
        d.pop("provenance")
    assert cli == server


def test_reference_amount_loudness_and_locks_as_the_command_line_does(client, pair,
                                                                     tmp_path):
    """A new mix with a reference mix's stems (at another rate), an amount, a mix loudness
    and locks: the same params as ``vocalmix mix`` with the same options."""
    from vocalmix.frontends.cli import main

    rv, rb = synthesize_song(sample_rate=22050, duration_s=3.0, seed=8)
    ref = (wav_bytes(rv, 22050, "PCM_16"), wav_bytes(rb, 22050, "PCM_16"))  # under 2 MB in all
    v, b = pair
    files = {"vocal": ("take.wav", v), "backing": ("track.wav", b),
             "reference_vocal": ("ref vocal.wav", ref[0]),
             "reference_backing": ("ref backing.wav", ref[1])}
    r = client.post("/api/mixes", files=files, data={
        "method": "baseline", "amount": "0.6", "mix_lufs": "-16",
        "locks": "vocal.reverb, targets.vocal_lra_lu"})
    assert r.status_code == 201, r.text
    body = r.json()
    server = body["params"]
    assert body["sample_rate"] == SR and body["moved"] == []
    assert server["provenance"]["method"] == "reference"
    assert server["amount"] == 0.6 and server["targets"]["mix_lufs"] == -16.0
    assert server["locks"] == ["vocal.reverb", "targets.vocal_lra_lu"]
    assert server["achieved"]["mix_integrated_lufs"] == pytest.approx(-16.0, abs=0.3)
    sources = {x["path"]: x["source"] for x in server["reasons"]}
    assert sources["targets.vocal_to_mix_lu"] == "reference"
    assert sources["targets.mix_lufs"] == sources["amount"] == "user"
    assert any("ref vocal.wav" in x["text"] for x in server["reasons"])
    # the uploads of the reference are not kept
    assert not [p for p in (client.app.state.store.root / body["id"]).iterdir()
                if p.name.startswith("upload_")]
    # the locks as a JSON list work the same
    r = client.post("/api/mixes", files=files, data={
        "method": "baseline", "amount": "0.6", "mix_lufs": "-16",
        "locks": '["vocal.reverb", "targets.vocal_lra_lu"]'})
    assert r.status_code == 201 and r.json()["params"]["locks"] == server["locks"]

    for name, data in (("v.wav", v), ("b.wav", b), ("rv.wav", ref[0]), ("rb.wav", ref[1])):
        (tmp_path / name).write_bytes(data)
    code = main(["mix", str(tmp_path / "v.wav"), str(tmp_path / "b.wav"), "--method",
                 "baseline", "--reference-vocal", str(tmp_path / "rv.wav"),
                 "--reference-backing", str(tmp_path / "rb.wav"), "--amount", "0.6",
                 "--mix-lufs", "-16", "--lock", "vocal.reverb", "--lock",
                 "targets.vocal_lra_lu", "-o", str(tmp_path / "mix.wav"), "--params-out",
                 str(tmp_path / "p.json"), "-q"])
    assert code == 0
    cli = json.loads((tmp_path / "p.json").read_text())
    for d in (server, cli):  # the reference is named by its file: a path, an upload's name
        d.pop("provenance")
        for x in d["reasons"]:
            x.pop("text")
    assert cli == server


def test_locks_amount_and_mix_loudness_edits_say_what_moved(client, pair):
    from vocalmix.core.amount import effective_level_target
    from vocalmix.core.params import RULE_VOCAL_TO_MIX_LU

    body = post_mix(client, pair, method="baseline").json()
    links, p = body["links"], body["params"]
    # a hand edit, locked: rendered exactly, nothing moved, the reason is the user's
    gain = p["vocal"]["gain_db"] + 3.0
    edited = dict(p, vocal=dict(p["vocal"], gain_db=gain), locks=["vocal.gain_db"])
    r = client.put(links["edit"], json={"params": edited})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["moved"] == [] and got["params"]["vocal"]["gain_db"] == gain
    why = {x["path"]: x for x in got["params"]["reasons"]}
    assert why["vocal.gain_db"]["source"] == "user"
    assert why["vocal.compressor"] == next(x for x in p["reasons"]
                                           if x["path"] == "vocal.compressor")
    # a target change keeps the locked gain
    r = client.put(links["edit"], json={"targets": {"vocal_to_mix_lu": -8.0}})
    got = r.json()
    assert r.status_code == 200 and got["params"]["vocal"]["gain_db"] == gain
    assert "vocal.gain_db" not in [m["path"] for m in got["moved"]]
    assert got["params"]["achieved"]["vocal_to_mix_lu"] > -8.0 + 1.0
    # unlocked: re-resolved, and the answer (and GET) say what moved
    r = client.put(links["edit"], json={"locks": []})
    got = r.json()
    assert r.status_code == 200 and got["params"]["locks"] == []
    assert got["params"]["achieved"]["vocal_to_mix_lu"] == pytest.approx(-8.0, abs=0.05)
    (m,) = [m for m in got["moved"] if m["path"] == "vocal.gain_db"]
    assert m["before"] == gain and m["after"] == got["params"]["vocal"]["gain_db"]
    assert m["text"].startswith("vocal.gain_db: ")
    assert client.get(links["self"]).json()["moved"] == got["moved"]
    # the amount: none of the chosen processing, the level at the rule's; A/B matched
    r = client.put(links["edit"], json={"amount": 0})
    got = r.json()
    assert r.status_code == 200 and got["params"]["amount"] == 0.0
    assert got["params"]["achieved"]["vocal_to_mix_lu"] == pytest.approx(
        effective_level_target(-8.0, RULE_VOCAL_TO_MIX_LU, 0.0), abs=0.05)
    assert [m["path"] for m in got["moved"]] == ["vocal.gain_db"]
    x, sr = read_wav(client.get(links["plain"]).content)
    assert integrated_loudness(x, sr) == pytest.approx(
        got["params"]["achieved"]["mix_integrated_lufs"], abs=0.15)
    # the mix loudness: on, then off (the master back to unity gain)
    r = client.put(links["edit"], json={"targets": {"mix_lufs": -20}, "amount": 1})
    got = r.json()
    assert r.status_code == 200, r.text
    assert got["params"]["achieved"]["mix_integrated_lufs"] == pytest.approx(-20.0, abs=0.3)
    assert "master.gain_db" in [m["path"] for m in got["moved"]]
    r = client.put(links["edit"], json={"targets": {"mix_lufs": None}})
    got = r.json()
    assert got["params"]["targets"]["mix_lufs"] is None
    assert got["params"]["master"]["gain_db"] == 0.0
    (m,) = [m for m in got["moved"] if m["path"] == "master.gain_db"]
    assert m["after"] == 0.0 and m["before"] != 0.0
    assert "targets.mix_lufs" not in [x["path"] for x in got["params"]["reasons"]]


def test_methods_and_the_demo_with_a_method(client):
    from vocalmix.estimators.registry import default_method

    m = client.get("/api/methods").json()
    assert m["default"] == default_method()
    assert [x["name"] for x in m["methods"]] == ["baseline", "model"]
    assert all(x["description"] for x in m["methods"])
    assert "Pop" in m["genres"] and "other" in m["genres"]
    r = client.post("/api/demo?duration_s=3&method=baseline")
    assert r.status_code == 201 and r.json()["params"]["provenance"]["method"] == "baseline"
    r = client.post("/api/demo?duration_s=3&method=magic")
    assert r.status_code == 422 and r.json()["code"] == "params.invalid"
    spec = client.get("/api/params/spec").json()
    assert "vocal.gain_db" in spec["resolved_paths"]
    assert set(spec["resolved_paths"]) <= set(spec["lockable_paths"])
    assert "free" in spec["delay_notes"] and "resolver" in spec["reason_sources"]


def test_the_momentary_range_target_is_set_and_cleared_by_an_edit(client, pair):
    """``targets.vocal_momentary_range_lu``: a value re-resolves the compressor to the
    vocal's momentary loudness range (the LRA target unused); null, to the LRA again."""
    body = post_mix(client, pair, method="baseline").json()
    links, p = body["links"], body["params"]
    assert p["targets"]["vocal_momentary_range_lu"] is None
    target = 4.0
    assert p["achieved"]["vocal_momentary_range_lu"] > target + 1.0  # compression needed
    r = client.put(links["edit"], json={"targets": {"vocal_momentary_range_lu": target}})
    assert r.status_code == 200, r.text
    got = r.json()["params"]
    assert got["targets"]["vocal_momentary_range_lu"] == target
    assert got["targets"]["vocal_lra_lu"] == p["targets"]["vocal_lra_lu"]
    why = {x["path"]: x for x in got["reasons"]}
    assert why["targets.vocal_momentary_range_lu"]["source"] == "user"
    note = why["vocal.compressor"]["text"]
    assert "momentary loudness range" in note, note
    assert dict(why["vocal.compressor"]["inputs"])["target_momentary_range_lu"] == target
    achieved = got["achieved"]["vocal_momentary_range_lu"]
    assert abs(achieved - target) <= 0.3 or "already at or below" in note, (achieved, note)
    moved = [m["path"] for m in r.json()["moved"]]
    assert "vocal.compressor.threshold_db" in moved
    # out of range: the server's message names the range, the mix stays
    r = client.put(links["edit"], json={"targets": {"vocal_momentary_range_lu": 0.1}})
    assert r.status_code == 422 and "vocal_momentary_range_lu" in r.json()["detail"]
    # null: the LRA target again, the momentary range only measured
    r = client.put(links["edit"], json={"targets": {"vocal_momentary_range_lu": None}})
    assert r.status_code == 200, r.text
    off = r.json()["params"]
    assert off["targets"]["vocal_momentary_range_lu"] is None
    why = {x["path"]: x for x in off["reasons"]}
    assert "targets.vocal_momentary_range_lu" not in why
    assert dict(why["vocal.compressor"]["inputs"])["target_lra_lu"] == p["targets"]["vocal_lra_lu"]
    assert "LRA" in why["vocal.compressor"]["text"]
    assert off["vocal"]["compressor"] == p["vocal"]["compressor"]  # as first resolved
    assert off["achieved"]["vocal_momentary_range_lu"] == pytest.approx(
        p["achieved"]["vocal_momentary_range_lu"], abs=1e-6)
    assert r.json()["revision"] == 3


def test_warnings_about_the_inputs_are_a_field_of_their_own(client):
    """A karaoke app reads what may be wrong with a take without parsing the notes: a take
    of steady hiss gets a warning (also among the notes, with its prefix); a sung take
    gets none."""
    rng = np.random.default_rng(8)
    _v, b = synthesize_song(sample_rate=SR, duration_s=12.0, seed=3)
    hiss = (0.003 * rng.standard_normal((12 * SR, 1))).astype(np.float32)
    r = post_mix(client, (wav_bytes(hiss, subtype="PCM_16"), wav_bytes(b, subtype="PCM_16")),
                 method="baseline")
    assert r.status_code == 201, r.text
    body = r.json()
    assert any("loudness hardly moves" in w for w in body["warnings"])
    assert not any(w.startswith("warning:") for w in body["warnings"])
    assert [n for n in body["notes"] if n.startswith("warning:")] == [
        "warning: " + w for w in body["warnings"]]
    assert client.get(f"/api/mixes/{body['id']}").json()["warnings"] == body["warnings"]
    v, b = synthesize_song(sample_rate=SR, duration_s=12.0, seed=3)
    sung = post_mix(client, (wav_bytes(v, subtype="PCM_16"), wav_bytes(b, subtype="PCM_16")),
                    method="baseline").json()
    assert sung["warnings"] == []


def test_an_lra_asked_for_that_cannot_be_reached_comes_back_as_a_warning(tmp_path):
    """A person's target, given by a PUT, that the compressor cannot reach without
    squashing the voice: the response's warnings say so (the model's own targets'
    misses stay notes)."""
    client = TestClient(create_app(tmp_path / "store", max_upload_bytes=8 << 20, ttl_s=3600,
                                   cleanup_interval_s=0, workers=2), base_url=BASE_URL)
    v, b = synthesize_song(sample_rate=SR, duration_s=20.0, seed=3, tempo_bpm=200.0)
    body = post_mix(client, (wav_bytes(v), wav_bytes(b))).json()
    assert not any("is missed" in w for w in body["warnings"])
    r = client.put(body["links"]["edit"], json={"targets": {"vocal_lra_lu": 1.0}})
    assert r.status_code == 200, r.text
    assert any("LRA target 1 LU is missed" in w for w in r.json()["warnings"])


def test_an_edit_links_the_stems_it_did_not_change_from_the_revision_before(client, pair, app):
    """A gain edit writes the mix and the vocal; the backing (and, with no sends, the dry
    vocal, which is the vocal) are the revision before's files, the same samples a render
    of the new settings makes."""
    from vocalmix.core.params import MixParams
    from vocalmix.pipeline import render_params

    r = post_mix(client, pair)
    assert r.status_code == 201, r.text
    body = r.json()
    mid, links, p = body["id"], body["links"], body["params"]
    p["vocal"]["reverb"]["enabled"] = False
    p["vocal"]["delay"]["enabled"] = False
    r = client.put(links["edit"], json={"params": p})
    assert r.status_code == 200 and r.json()["revision"] == 2
    d = app.state.store.root / mid
    r2 = d / "r2"
    assert os.path.samefile(r2 / "vocal_dry.wav", r2 / "vocal.wav")  # no sends
    assert client.get(f"/api/mixes/{mid}/audio/backing?format=flac").status_code == 200
    p = r.json()["params"]
    p["vocal"]["gain_db"] += 1.5
    r = client.put(links["edit"], json={"params": p})
    assert r.status_code == 200 and r.json()["revision"] == 3
    r3 = d / "r3"
    assert os.path.samefile(r3 / "backing.wav", r2 / "backing.wav")
    assert os.path.samefile(r3 / "backing.flac", r2 / "backing.flac")  # its encodings too
    for kind in ("mix", "vocal"):
        assert not os.path.samefile(r3 / f"{kind}.wav", r2 / f"{kind}.wav"), kind
    pk2 = json.loads((r2 / "peaks.json").read_text())
    pk3 = client.get(links["peaks"]).json()
    assert pk3["backing"] == pk2["backing"] and pk3["vocal"] != pk2["vocal"]
    # what is handed out is what a render of the new settings makes
    vv, bb = (read_wav((d / f"{k}_in.wav").read_bytes())[0] for k in ("vocal", "backing"))
    params = MixParams.from_dict(r.json()["params"])
    _p, rendered = render_params(vv, bb, SR, params)
    for kind in ("vocal", "vocal_dry", "backing", "mix"):
        got = read_wav(client.get(links[kind]).content)[0]
        want = read_wav(wav_bytes(getattr(rendered, kind), SR, "PCM_24"))[0]
        assert np.array_equal(got, want), kind
    # a master edit changes the mix alone
    p = r.json()["params"]
    p["master"]["gain_db"] -= 1.0
    r = client.put(links["edit"], json={"params": p})
    assert r.status_code == 200 and r.json()["revision"] == 4
    for kind in ("vocal", "vocal_dry", "backing"):
        assert os.path.samefile(d / "r4" / f"{kind}.wav", r3 / f"{kind}.wav"), kind
    assert not os.path.samefile(d / "r4" / "mix.wav", r3 / "mix.wav")


def test_the_studio_keeps_the_inputs_of_the_mix_it_edits(client, pair, app):
    r = post_mix(client, pair)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    studio, d = app.state.studio, app.state.store.root / mid
    # the new mix's decoded inputs are kept as written (the same samples as its files)
    assert studio._held is not None and studio._held[0][0] == mid
    v1, b1, sr = studio.inputs(d)
    assert v1 is studio._held[1]
    assert np.array_equal(v1, read_wav((d / "vocal_in.wav").read_bytes())[0])
    assert np.array_equal(b1, read_wav((d / "backing_in.wav").read_bytes())[0])
    v2, b2, _sr = studio.inputs(d)
    assert v1 is v2 and b1 is b2 and sr == SR
    assert not v1.flags.writeable and not b1.flags.writeable
    os.utime(d / "vocal_in.wav", ns=(10**9, 10**9))  # a changed file is read again
    v3 = studio.inputs(d)[0]
    assert v3 is not v1 and np.array_equal(v3, v1)
    assert client.delete(f"/api/mixes/{mid}").status_code == 204
    assert studio._held is None  # its memory goes with it


def test_a_studio_that_keeps_nothing_edits_to_the_same_result(tmp_path, pair):
    """``keep_edits_bytes=0``: no inputs, vocal parts or compressor resolution kept between
    edits; the edits give the same mix as a studio that keeps them."""
    outs = []
    for keep in (0, None):
        app = create_app(tmp_path / f"store{keep}", max_upload_bytes=LIMIT, ttl_s=3600,
                         cleanup_interval_s=0, keep_edits_bytes=keep)
        client = TestClient(app, base_url=BASE_URL)
        r = post_mix(client, pair)
        assert r.status_code == 201, r.text
        links, p = r.json()["links"], r.json()["params"]
        assert (app.state.studio._held is None) is (keep == 0)
        p["vocal"]["gain_db"] += 1.0
        r = client.put(links["edit"], json={"params": p})
        assert r.status_code == 200
        r = client.put(links["edit"], json={"targets": {"vocal_to_mix_lu": -5.0}})
        assert r.status_code == 200
        outs.append((r.json()["params"]["vocal"], r.json()["params"]["achieved"],
                     client.get(links["mix"]).content))
    assert outs[0] == outs[1]
