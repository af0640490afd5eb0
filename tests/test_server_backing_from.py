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


def _counting_decodes(monkeypatch) -> list[str]:
    """The names of the upload files the studio decodes from now on."""
    import vocalmix.core.audio as audio_mod
    import vocalmix.frontends.server.studio as studio_mod

    seen: list[str] = []
    real = audio_mod.read_audio

    def counted(path, *a, **k):
        seen.append(os.path.basename(path))
        return real(path, *a, **k)

    monkeypatch.setattr(studio_mod, "read_audio", counted)
    monkeypatch.setattr(audio_mod, "read_audio", counted)  # (the kept backing's reads)
    return seen


def _stored_backing(app, mid: str) -> os.stat_result:
    return os.stat(app.state.store.root / mid / "backing_in.wav")


def _stem(app, mid: str, kind: str) -> os.stat_result:
    """The stat of mix ``mid``'s first revision's stem ``kind``."""
    return os.stat(app.state.store.root / mid / "r1" / f"{kind}.wav")


def test_takes_over_one_backing_decode_and_store_it_once(client, app, takes, tmp_path,
                                                         monkeypatch):
    v1, v2, b = takes
    seen = _counting_decodes(monkeypatch)
    src = post(client, v1, b, method="baseline").json()["id"]
    assert sorted(seen) == ["upload_backing", "upload_vocal"]
    seen.clear()
    second = post(client, v2, backing_from=src, method="baseline").json()
    third = post(client, v1, backing_from=second["id"], method="baseline").json()
    # the takes were decoded, the backing not again
    assert seen == ["upload_vocal", "upload_vocal"]
    # and its stored input is the first mix's file, linked (not written again)
    first_in = _stored_backing(app, src)
    first_stem = _stem(app, src, "backing")
    peaks = client.get(f"/api/mixes/{src}/peaks").json()["backing"]
    for mid in (second["id"], third["id"]):
        st = _stored_backing(app, mid)
        assert (st.st_dev, st.st_ino) == (first_in.st_dev, first_in.st_ino)
        # so is its backing stem (the backing at its gain: the take does not enter it),
        # with its waveform
        st = _stem(app, mid, "backing")
        assert (st.st_dev, st.st_ino) == (first_stem.st_dev, first_stem.st_ino)
        assert client.get(f"/api/mixes/{mid}/peaks").json()["backing"] == peaks
        assert _stem(app, mid, "vocal").st_ino != _stem(app, src, "vocal").st_ino
    # a server that keeps nothing decodes and writes each time, to the same result
    bare = TestClient(create_app(tmp_path / "bare", max_upload_bytes=2_000_000, ttl_s=3600,
                                 cleanup_interval_s=0, keep_edits_bytes=0),
                      base_url=BASE_URL)
    seen.clear()
    b_src = post(bare, v1, b, method="baseline").json()["id"]
    b_second = post(bare, v2, backing_from=b_src, method="baseline").json()
    assert sorted(seen) == ["upload_backing", "upload_backing", "upload_vocal", "upload_vocal"]
    bare_root = bare.app.state.store.root
    assert (os.stat(bare_root / b_src / "backing_in.wav").st_ino
            != os.stat(bare_root / b_second["id"] / "backing_in.wav").st_ino)
    assert b_second["params"]["vocal"] == second["params"]["vocal"]
    assert b_second["params"]["achieved"] == second["params"]["achieved"]
    assert (bare.get(f"/api/mixes/{b_second['id']}/audio/mix").content
            == client.get(f"/api/mixes/{second['id']}/audio/mix").content)
    import soundfile as sf  # (the files' bytes differ: libsndfile dates its PEAK chunk)

    for name in ("backing_in.wav", "r1/backing.wav"):  # the stem written, the same samples
        a, a_sr = sf.read(str(bare_root / b_second["id"] / name), dtype="float32")
        k, k_sr = sf.read(str(app.state.store.root / second["id"] / name), dtype="float32")
        assert a_sr == k_sr and np.array_equal(a, k), name
    assert (os.stat(bare_root / b_second["id"] / "r1" / "backing.wav").st_ino
            != os.stat(bare_root / b_src / "r1" / "backing.wav").st_ino)


def test_a_take_at_a_higher_rate_resamples_the_kept_backing_and_stores_its_own(
        client, app, takes):
    import io

    import soundfile as sf

    v1, _v2, b = takes
    src = post(client, v1, b, method="baseline").json()["id"]
    x, sr = sf.read(io.BytesIO(v1), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, np.repeat(x, 2, axis=0), 2 * sr, format="WAV", subtype="FLOAT")
    fast = buf.getvalue()  # the same take at twice the rate
    reused = post(client, fast, backing_from=src, method="baseline")
    sent = post(client, fast, b, method="baseline")
    assert reused.status_code == sent.status_code == 201, reused.text
    r, s = reused.json(), sent.json()
    assert r["params"]["vocal"] == s["params"]["vocal"]
    assert r["params"]["achieved"] == s["params"]["achieved"]
    assert (client.get(f"/api/mixes/{r['id']}/audio/mix").content
            == client.get(f"/api/mixes/{s['id']}/audio/mix").content)
    # the backing at the take's rate is a new signal: stored on its own, at that rate
    st, first = _stored_backing(app, r["id"]), _stored_backing(app, src)
    assert st.st_ino != first.st_ino
    assert sf.info(str(app.state.store.root / r["id"] / "backing_in.wav")).samplerate == 2 * sr


def test_a_new_backing_replaces_the_kept_one_in_memory(client, app, takes):
    import gc
    import weakref

    v1, v2, b = takes
    assert post(client, v1, b, method="baseline").status_code == 201
    first = weakref.ref(app.state.studio._backing.last.samples)
    other = wav(synthesize_song(sample_rate=SR, duration_s=4.0, seed=6)[1])
    # a take at twice the rate: the new backing is resampled, so not stored from the
    # kept decode's samples, which must not keep the first backing's alive either
    import io

    import soundfile as sf

    x, sr = sf.read(io.BytesIO(v1), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, np.repeat(x, 2, axis=0), 2 * sr, format="WAV", subtype="FLOAT")
    assert post(client, buf.getvalue(), other, method="baseline").status_code == 201
    gc.collect()
    assert first() is None  # the first backing's samples are not held any more
