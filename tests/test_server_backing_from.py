"""``backing_from``: a new mix uses the backing uploaded with an earlier one, as a karaoke
app mixes many takes over one instrumental without sending it each time."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="server extras not installed")
from fastapi.testclient import TestClient  # noqa: E402

from vocalmix.frontends.server.app import create_app  # noqa: E402
from vocalmix.frontends.server.storage import BACKING_UPLOAD  # noqa: E402
from vocalmix.synth import synthesize_song  # noqa: E402

SR = 16000
BASE_URL = "http://127.0.0.1:8000"


def wav(x: np.ndarray) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()


@pytest.fixture(scope="module")
def takes() -> tuple[bytes, bytes, bytes]:
    """Two takes (different songs' vocals, different lengths) and one backing."""
    v1, b = synthesize_song(sample_rate=SR, duration_s=4.0, seed=5)
    v2, _ = synthesize_song(sample_rate=SR, duration_s=3.5, seed=9)
    return wav(v1), wav(v2), wav(b)


@pytest.fixture
def app(tmp_path):
    return create_app(tmp_path / "store", max_upload_bytes=2_000_000, ttl_s=3600,
                      cleanup_interval_s=0, workers=2)


@pytest.fixture
def client(app):
    return TestClient(app, base_url=BASE_URL)


def post(client, vocal: bytes, backing: bytes | None = None, **form):
    files = {"vocal": ("take2.wav", vocal, "audio/wav")}
    if backing is not None:
        files["backing"] = ("instrumental.wav", backing, "audio/wav")
    return client.post("/api/mixes", files=files, data={k: str(x) for k, x in form.items()})


def test_a_take_over_an_earlier_mixs_backing_mixes_as_if_the_file_were_sent(client, app,
                                                                            takes):
    v1, v2, b = takes
    first = post(client, v1, b, method="baseline")
    assert first.status_code == 201, first.text
    src = first.json()["id"]
    before = os.stat(app.state.store.root / src).st_mtime
    os.utime(app.state.store.root / src, (before - 100, before - 100))
    reused = post(client, v2, backing_from=src, method="baseline")
    assert reused.status_code == 201, reused.text
    sent = post(client, v2, b, method="baseline")
    assert sent.status_code == 201, sent.text
    r, s = reused.json(), sent.json()
    assert r["id"] not in (src, s["id"])
    # the same settings, and the same mix to the sample
    assert r["params"]["vocal"] == s["params"]["vocal"]
    assert r["params"]["achieved"] == s["params"]["achieved"]
    mix_r = client.get(f"/api/mixes/{r['id']}/audio/mix").content
    mix_s = client.get(f"/api/mixes/{s['id']}/audio/mix").content
    assert mix_r == mix_s
    # the mix says where its backing came from, under the name it was uploaded as
    assert any(n.startswith(f"backing: the one uploaded with mix {src} (instrumental.wav)")
               for n in r["notes"])
    # using the backing started the source's time to live again
    assert os.stat(app.state.store.root / src).st_mtime > before - 50
    # the new mix keeps its backing too: a chain of takes can name the last one
    third = post(client, v1, backing_from=r["id"], method="baseline")
    assert third.status_code == 201, third.text
    assert (app.state.store.root / r["id"] / BACKING_UPLOAD).is_file()


def test_the_backing_outlives_the_mix_it_was_uploaded_with(client, app, takes):
    v1, v2, b = takes
    src = post(client, v1, b, method="baseline").json()["id"]
    second = post(client, v2, backing_from=src, method="baseline").json()["id"]
    assert client.delete(f"/api/mixes/{src}").status_code == 204
    deadline = time.monotonic() + 10
    while (app.state.store.root / src).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = post(client, v2, backing_from=src)
    assert gone.status_code == 422 and gone.json()["code"] == "upload.backing_from"
    assert "send the backing file itself" in gone.json()["detail"]
    third = post(client, v1, backing_from=second, method="baseline")
    assert third.status_code == 201, third.text


def test_backing_from_is_refused_clearly_and_leaves_nothing(client, app, takes):
    v1, v2, b = takes
    src = post(client, v1, b, method="baseline").json()["id"]
    demo = client.post("/api/demo?duration_s=3&method=baseline").json()["id"]
    n = len([p for p in app.state.store.root.iterdir() if not p.name.startswith(".")])
    cases = [
        (dict(backing=b, backing_from=src), "both a 'backing' file and 'backing_from'"),
        (dict(backing_from="A" * 24), "no mix with id"),
        (dict(backing_from="../" + src), "no mix with id"),
        (dict(backing_from=""), "no mix with id"),
        (dict(backing_from=demo), "no uploaded backing to give"),
    ]
    for form, words in cases:
        backing = form.pop("backing", None)
        r = post(client, v2, backing, **form)
        assert r.status_code == 422, (form, r.text)
        assert r.json()["code"] == "upload.backing_from" and words in r.json()["detail"]
    r = post(client, v2)  # neither: the usual missing-file answer names both ways
    assert r.status_code == 422 and r.json()["code"] == "upload.missing_file"
    assert "backing_from" in r.json()["detail"]
    after = [p for p in app.state.store.root.iterdir() if not p.name.startswith(".")]
    assert len(after) == n  # every refused request's folder is gone
    # the source is untouched and still gives its backing
    assert (app.state.store.root / src / BACKING_UPLOAD).is_file()


def test_a_source_still_decoding_answers_409(client, app, takes):
    v1, _v2, b = takes
    store = app.state.store
    mid, d = store.new()  # a mix whose uploads are still arriving or being decoded
    try:
        store.write_meta(d, status="mixing", stage="decode", revision=0)
        r = post(client, v1, backing_from=mid)
        assert r.status_code == 409 and r.json()["code"] == "upload.backing_from"
        assert "still decoding" in r.json()["detail"]
    finally:
        store.unpin(mid)
