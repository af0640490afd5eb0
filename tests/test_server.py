"""The HTTP API against the real application (FastAPI's test client)."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf

fastapi = pytest.importorskip("fastapi", reason="server extras not installed")
from fastapi.testclient import TestClient  # noqa: E402

from vocalmix.server import create_app  # noqa: E402
from vocalmix.synth import synthesize_song  # noqa: E402

SR = 16000


def wav_bytes(x: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    v, b = synthesize_song(sample_rate=SR, duration_s=4.0, seed=5)
    return wav_bytes(v), wav_bytes(b)


@pytest.fixture
def app(tmp_path):
    return create_app(tmp_path / "store", max_upload_bytes=2_000_000, ttl_s=3600,
                      start_sweeper=False)


@pytest.fixture
def client(app):
    return TestClient(app)


def post_mix(client, pair, **form):
    v, b = pair
    files = {"vocal": ("v.wav", v, "audio/wav"), "backing": ("b.wav", b, "audio/wav")}
    return client.post("/api/mixes", files=files, data={k: str(x) for k, x in form.items()})


def test_create_get_audio_put_delete(client, pair):
    r = post_mix(client, pair, vocal_to_mix_lu=-4)
    assert r.status_code == 201, r.text
    body = r.json()
    mid = body["id"]
    assert len(mid) >= 22
    p = body["params"]
    assert p["format"] == "vocalmix.params" and p["targets"]["vocal_to_mix_lu"] == -4.0
    assert p["achieved"]["vocal_to_mix_lu"] == pytest.approx(-4.0, abs=0.05)
    assert set(body["links"]) >= {"mix", "vocal", "vocal_dry", "backing", "plain"}
    g = client.get(f"/api/mixes/{mid}")
    assert g.status_code == 200 and g.json()["params"] == p and g.json()["status"] == "done"
    for kind in ("mix", "vocal", "vocal_dry", "backing", "plain"):
        a = client.get(f"/api/mixes/{mid}/audio/{kind}")
        assert a.status_code == 200 and a.headers["content-type"] == "audio/wav"
        x, sr = sf.read(io.BytesIO(a.content))
        assert sr == SR and x.shape == (4 * SR, 2)
    old_mix = client.get(f"/api/mixes/{mid}/audio/mix").content
    # targets: re-resolve
    r = client.put(f"/api/mixes/{mid}/params", json={"targets": {"vocal_to_mix_lu": -2.0}})
    assert r.status_code == 200, r.text
    assert r.json()["params"]["achieved"]["vocal_to_mix_lu"] == pytest.approx(-2.0, abs=0.05)
    assert client.get(f"/api/mixes/{mid}/audio/mix").content != old_mix
    # settings: render exactly
    new = r.json()["params"]
    new["vocal"]["gain_db"] -= 3.0
    r2 = client.put(f"/api/mixes/{mid}/params", json={"params": new})
    assert r2.status_code == 200
    got = r2.json()["params"]
    assert got["vocal"]["gain_db"] == pytest.approx(new["vocal"]["gain_db"])
    assert got["achieved"]["vocal_to_mix_lu"] < -3.0
    # params download parses
    d = client.get(f"/api/mixes/{mid}/params.json")
    assert d.status_code == 200
    assert json.loads(d.content)["vocal"]["gain_db"] == got["vocal"]["gain_db"]
    an = client.get(f"/api/mixes/{mid}/analysis").json()
    assert len(an["vocal_db"]) == len(an["band_centres_hz"]) and len(an["eq_response_db"]) == 200
    assert client.delete(f"/api/mixes/{mid}").status_code == 204
    assert client.get(f"/api/mixes/{mid}").status_code == 404


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/api/mixes" in paths and "post" in paths["/api/mixes"]
    assert {"get", "delete"} <= set(paths["/api/mixes/{mid}"])
    assert "put" in paths["/api/mixes/{mid}/params"]
    assert "/api/mixes/{mid}/audio/{kind}" in paths


def test_error_codes(client, pair, tmp_path):
    # 413: too large (limit 2 MB in this app)
    big = wav_bytes(np.zeros((SR * 40, 2), np.float32) + 0.01)
    r = client.post("/api/mixes", files={"vocal": ("v.wav", big), "backing": ("b.wav", pair[1])})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # 415: not audio
    r = client.post("/api/mixes", files={"vocal": ("v.wav", b"not audio at all"),
                                         "backing": ("b.wav", pair[1])})
    assert r.status_code == 415 and "cannot be decoded" in r.json()["detail"]
    # 422: silent vocal, bad target, bad method, bad params
    silent = wav_bytes(np.zeros((SR * 3, 2), np.float32))
    r = client.post("/api/mixes", files={"vocal": ("v.wav", silent), "backing": ("b.wav", pair[1])})
    assert r.status_code == 422 and "silent" in r.json()["detail"]
    r = post_mix(client, pair, vocal_lra_lu=99)
    assert r.status_code == 422 and "vocal_lra_lu" in r.json()["detail"]
    r = post_mix(client, pair, method="magic")
    assert r.status_code == 422
    mid = post_mix(client, pair).json()["id"]
    r = client.put(f"/api/mixes/{mid}/params", json={"targets": {"vocal_to_mix_lu": 5}})
    assert r.status_code == 422 and "vocal_to_mix_lu" in r.json()["detail"]
    p = client.get(f"/api/mixes/{mid}").json()["params"]
    p["vocal"]["compressor"]["ratio"] = 0
    r = client.put(f"/api/mixes/{mid}/params", json={"params": p})
    assert r.status_code == 422 and "ratio" in r.json()["detail"]
    r = client.put(f"/api/mixes/{mid}/params", content=b"{nope",
                   headers={"content-type": "application/json"})
    assert r.status_code == 422
    # 404: unknown ids and kinds
    assert client.get("/api/mixes/" + "A" * 24).status_code == 404
    assert client.get(f"/api/mixes/{mid}/audio/params").status_code == 404
    assert client.delete("/api/mixes/" + "B" * 24).status_code == 404


@pytest.mark.parametrize("bad", ["..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "....//....//etc",
                                 "..%252f..%252f", "a" * 10, "/etc/passwd", "%00"])
def test_path_traversal_is_refused(client, pair, app, bad):
    mid = post_mix(client, pair).json()["id"]
    for url in (f"/api/mixes/{bad}", f"/api/mixes/{bad}/audio/mix",
                f"/api/mixes/{mid}/audio/{bad}", f"/api/mixes/{mid}/audio/..%2Fparams.json",
                f"/api/mixes/{bad}/params.json"):
        r = client.get(url)
        assert b"root:" not in r.content
        if r.status_code == 200:  # the client normalised ".." to a legitimate API path
            assert r.url.path in (f"/api/mixes/{mid}", "/api/mixes"), (url, r.url.path)
            assert r.json()["id"] == mid
        else:
            assert r.status_code in (404, 405), (url, r.status_code)
    r = client.put(f"/api/mixes/{bad}/params", json={"targets": {}})
    assert r.status_code in (404, 405)
    r = client.delete(f"/api/mixes/{bad}")
    assert r.status_code in (404, 405)
    root = app.state.store.root
    assert all(p.parent == root for p in root.iterdir())


def test_time_to_live_cleanup(client, pair, app):
    mid = post_mix(client, pair).json()["id"]
    store = app.state.store
    assert store.sweep(now=time.time()) == []
    assert client.get(f"/api/mixes/{mid}").status_code == 200
    removed = store.sweep(now=time.time() + 3601)
    assert removed == [mid]
    assert client.get(f"/api/mixes/{mid}").status_code == 404
    assert not (store.root / mid).exists()


def test_eight_concurrent_mixes_each_get_their_own_result(client, pair):
    targets = [-1.5 - 0.75 * i for i in range(8)]
    results: dict[int, object] = {}

    def go(i: int) -> None:
        results[i] = post_mix(client, pair, vocal_to_mix_lu=targets[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = set()
    for i, t in enumerate(targets):
        r = results[i]
        assert r.status_code == 201, r.text
        body = r.json()
        ids.add(body["id"])
        assert body["params"]["targets"]["vocal_to_mix_lu"] == t
        assert body["params"]["achieved"]["vocal_to_mix_lu"] == pytest.approx(t, abs=0.05)
        again = client.get(f"/api/mixes/{body['id']}").json()
        assert again["params"]["targets"]["vocal_to_mix_lu"] == t
    assert len(ids) == 8


def test_page_and_demo(client):
    r = client.get("/")
    assert r.status_code == 200 and "Try the demo" in r.text
    assert client.get("/static/app.js").status_code == 200
    r = client.post("/api/demo?duration_s=3")
    assert r.status_code == 201 and r.json()["params"]["provenance"]["method"] == "baseline"
