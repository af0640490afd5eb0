"""The HTTP API as an attacker or a careless client uses it, on loopback.

Every crafted request gets a 4xx with a JSON ``detail`` and ``code``, never a 500; a small
file that would decode to gigabytes is refused from its header with the server's memory
unmoved; writes from other web sites and requests naming foreign hosts are refused; at
most ``workers`` jobs run and the queue refuses past its size; a restart marks unfinished
mixes failed; an expired mix is gone at once; the storage is private and serves no
symlink.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="server extras not installed")
from fastapi.testclient import TestClient  # noqa: E402

from vocalmix.core.errors import VocalmixError  # noqa: E402
from vocalmix.frontends.server.app import create_app  # noqa: E402
from vocalmix.frontends.server.security import allowed_hosts_for  # noqa: E402
from vocalmix.synth import synthesize_song  # noqa: E402

SR = 16000
BASE = "http://127.0.0.1:8000"
MB = 2**20


def wav_bytes(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    v, b = synthesize_song(sample_rate=SR, duration_s=3.0, seed=3)
    return wav_bytes(v), wav_bytes(b)


def files(pair: tuple[bytes, bytes], vocal_name: str = "take.wav") -> dict:
    return {"vocal": (vocal_name, pair[0], "audio/wav"),
            "backing": ("track.wav", pair[1], "audio/wav")}


def mix_folders(app) -> list[str]:
    return sorted(p.name for p in app.state.store.root.iterdir() if not p.name.startswith("."))


def assert_refused(r, status: int | tuple[int, ...] | None = None) -> dict:
    """A client error with a JSON detail and code (never a 500)."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if status is not None:
        assert r.status_code in ((status,) if isinstance(status, int) else status), r.text
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["code"], str) and body["code"], body
    assert len(body["detail"]) < 2000, "an error message echoes the attack back"
    return body


# --- no 500 from any crafted request ------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "1" * 5001
TEN_TO_400 = "1" + "0" * 400

PUT_BODIES = {
    "deep list": '{"params": ' + DEEP + "}",
    "deep objects": '{"a": ' * 5000 + "1" + "}" * 5000,
    "deep targets": '{"targets": {"vocal_to_mix_lu": ' + DEEP + "}}",
    "1e400": '{"targets": {"vocal_to_mix_lu": 1e400}}',
    "10^400": '{"targets": {"vocal_to_mix_lu": ' + TEN_TO_400 + "}}",
    "5001 digits": '{"targets": {"vocal_to_mix_lu": ' + HUGE_INT + "}}",
    "long float": '{"targets": {"vocal_to_mix_lu": -1.' + "5" * 5000 + "}}",
    "NaN": '{"targets": {"vocal_to_mix_lu": NaN}}',
    "-Infinity": '{"targets": {"vocal_lra_lu": -Infinity}}',
    "target list": '{"targets": {"vocal_to_mix_lu": [1, 2]}}',
    "target object": '{"targets": {"vocal_to_mix_lu": {"a": 1}}}',
    "target bool": '{"targets": {"vocal_to_mix_lu": true}}',
    "targets string": '{"targets": "loud"}',
    "many unknown targets": json.dumps({"targets": {f"t{i}" * 50: 1 for i in range(2000)}}),
    "preset list": '{"reverb_preset": ["big_hall"]}',
    "preset object": '{"reverb_preset": {"name": "x"}}',
    "preset number": '{"reverb_preset": 5}',
    "preset huge": json.dumps({"reverb_preset": "x" * 100_000}),
    "resolve string": '{"params": {}, "resolve": "yes"}',
    "params 1e400": '{"vocal": {"gain_db": 1e400}}',
    "params 10^400": '{"vocal": {"gain_db": ' + TEN_TO_400 + "}}",
    "params 5001 digits": '{"vocal": {"gain_db": ' + HUGE_INT + "}}",
    "params as text, deep": json.dumps({"params": DEEP}),
    "params as text, 10^400": json.dumps({"params": '{"vocal": {"gain_db": ' + TEN_TO_400
                                                    + "}}"}),
    "params null": '{"params": null}',
    "params list": '{"params": [1, 2]}',
    "bad version": '{"version": 10e300}',
    "eq bands galore": json.dumps({"vocal": {"eq_bands": [{}] * 5000}}),
    "ratios nested": json.dumps({"vocal": {"reverb": {"band_decay_ratios": [[[1.0]]] * 7}}}),
    "many notes": json.dumps({"provenance": {"notes": ["x"] * 100}}),
    "long note": json.dumps({"provenance": {"notes": ["x" * 3000]}}),
    "long source": json.dumps({"vocal": {"eq_bands": [{"source": "s" * 100_000}]}}),
    "many unknown keys": json.dumps({f"k{i}": 1 for i in range(20_000)}),
    "not UTF-8": b"\xff\xfe\x00{",
    "empty": "",
    "null": "null",
    "a string": '"params"',
    "a number": "12",
    "nothing to change": "{}",
    "amount NaN": '{"amount": NaN}',
    "amount 1e400": '{"amount": 1e400}',
    "amount 10^400": '{"amount": ' + TEN_TO_400 + "}",
    "amount negative": '{"amount": -0.01}',
    "amount over 2": '{"amount": 2.0000001}',
    "amount string": '{"amount": "half"}',
    "amount bool": '{"amount": true}',
    "amount list": '{"amount": [0.5]}',
    "amount null": '{"amount": null}',
    "mix_lufs Infinity": '{"targets": {"mix_lufs": Infinity}}',
    "mix_lufs bool": '{"targets": {"mix_lufs": false}}',
    "mix_lufs object": '{"targets": {"mix_lufs": {"v": -14}}}',
    "mix_lufs too loud": '{"targets": {"mix_lufs": 0}}',
    "mix_lufs text": '{"targets": {"mix_lufs": "-14 please"}}',
    "locks string": '{"locks": "vocal.gain_db"}',
    "locks object": '{"locks": {"vocal.gain_db": true}}',
    "locks numbers": '{"locks": [1, 2]}',
    "locks nested": '{"locks": [["vocal.gain_db"]]}',
    "locks deep": '{"locks": ' + DEEP + "}",
    "locks unknown": '{"locks": ["vocal.gain_db", "../../etc/passwd"]}',
    "locks many": json.dumps({"locks": ["vocal.gain_db"] * 100_000}),
    "locks long path": json.dumps({"locks": ["vocal." + "x" * 100_000]}),
    "locks null byte": json.dumps({"locks": ["vocal.gain_db\u0000"]}),
    "locks in params": json.dumps({"vocal": {}, "locks": ["nope"]}),
}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, pair):
    """One app and one finished mix for the crafted requests (they change nothing)."""
    app = create_app(tmp_path_factory.mktemp("crafted"), max_upload_bytes=8 * MB,
                     cleanup_interval_s=0, workers=2)
    client = TestClient(app, base_url=BASE, raise_server_exceptions=False)
    r = client.post("/api/mixes", files=files(pair))
    assert r.status_code == 201, r.text
    return app, client, r.json()


@pytest.mark.parametrize("name", sorted(PUT_BODIES))
def test_crafted_edit_bodies_are_client_errors(crafted, name):
    app, client, mix = crafted
    body = PUT_BODIES[name]
    r = client.put(mix["links"]["edit"], content=body if isinstance(body, bytes)
                   else body.encode(), headers={"content-type": "application/json"})
    assert_refused(r, (413, 422))
    again = client.get(mix["links"]["self"]).json()
    assert again["revision"] == mix["revision"] and again["params"] == mix["params"]


def test_huge_notes_are_not_stored(crafted):
    """A 10 MB edit is refused by size (an edit is a few kB), and notes are bounded."""
    app, client, mix = crafted
    doc = dict(mix["params"], provenance={"method": "manual", "notes": ["n" * 1000] * 10_000})
    r = client.put(mix["links"]["edit"], json={"params": doc})
    assert_refused(r, 413)
    doc["provenance"]["notes"] = ["a note"] * 65
    body = assert_refused(client.put(mix["links"]["edit"], json={"params": doc}), 422)
    assert "at most 64" in body["detail"]


FORM_CASES = {
    "target 1e400": {"vocal_to_mix_lu": "1e400"},
    "target 10^400": {"vocal_to_mix_lu": TEN_TO_400[:900]},
    "target nan": {"vocal_lra_lu": "nan"},
    "target -inf": {"vocal_lra_lu": "-inf"},
    "target hex": {"reverb_decay_s": "0x10"},
    "target too long": {"vocal_to_mix_lu": "1" * 1025},
    "params deep": {"params": "[" * 50_000 + "]" * 50_000},
    "params 10^400": {"params": '{"vocal": {"gain_db": ' + TEN_TO_400 + "}}"},
    "params 5001 digits": {"params": '{"vocal": {"gain_db": ' + HUGE_INT + "}}"},
    "params not JSON": {"params": "{nope"},
    "preset list text": {"reverb_preset": '["big_hall"]'},
    "preset too long": {"reverb_preset": "x" * 2000},
    "method long": {"method": "m" * 1000},
    "fold with NUL": {"fold": "mean\x00"},
    "wait maybe": {"wait": "maybe"},
    "unknown field": {"colour": "blue"},
    "unicode field name": {"vöcal_tö_mix": "1"},
    "amount nan": {"amount": "nan"},
    "amount 10^400": {"amount": TEN_TO_400[:900]},
    "amount out of range": {"amount": "2.5"},
    "amount words": {"amount": "a lot"},
    "mix_lufs inf": {"mix_lufs": "-inf"},
    "mix_lufs out of range": {"mix_lufs": "3"},
    "mix_lufs words": {"mix_lufs": "streaming"},
    "locks unknown": {"locks": "vocal.gain_db,vocal.nope"},
    "locks deep JSON": {"locks": "[" * 4000 + "]" * 4000},
    "locks JSON object": {"locks": '{"vocal.gain_db": 1}'},
    "locks JSON numbers": {"locks": "[1e400]"},
    "locks too long": {"locks": "vocal.gain_db," * 700},
    "locks many": {"locks": ",".join(["vocal.gain_db"] * 500)},
    "genre unknown": {"genre": "polka"},
    "genre long": {"genre": "p" * 1000},
    "genre with NUL": {"genre": "Pop\x00"},
    "genre unicode": {"genre": "Pöp/Röck"},
}


@pytest.mark.parametrize("name", sorted(FORM_CASES))
def test_crafted_form_fields_are_client_errors(crafted, pair, name):
    app, client, mix = crafted
    before = mix_folders(app)
    r = client.post("/api/mixes", files=files(pair), data=FORM_CASES[name])
    assert_refused(r, 422)
    assert mix_folders(app) == before  # nothing left behind


RAW_REQUESTS = [
    ("POST", "/api/demo?seed=-1", {}),
    ("POST", "/api/demo?seed=" + "9" * 30, {}),
    ("POST", "/api/demo?seed=abc", {}),
    ("POST", "/api/demo?duration_s=nan", {}),
    ("POST", "/api/demo?duration_s=inf", {}),
    ("POST", "/api/demo?duration_s=1e400", {}),
    ("POST", "/api/demo?duration_s=", {}),
    ("POST", "/api/demo?wait=perhaps", {}),
    ("GET", "/api/mixes/%00", {}),
    ("GET", "/api/mixes/" + "A" * 10_000, {}),
    ("GET", "/api/mixes/" + "A" * 24 + "/audio/%ff%fe", {}),
    ("DELETE", "/api/mixes/..%2F..%2Fetc", {}),
    ("POST", "/api/mixes", {"headers": {"content-type": "multipart/form-data"}}),
    ("POST", "/api/mixes", {"headers": {"content-type": "multipart/form-data; boundary="
                                        + "b" * 1000}, "content": b"--x"}),
    ("POST", "/api/mixes", {"headers": {"content-type": "multipart/form-data; boundary=xyz"},
                            "content": os.urandom(20_000)}),
    ("POST", "/api/mixes", {"headers": {"content-type": "multipart/form-data; boundary=xyz"},
                            "content": b"--xyz\r\n\r\n\r\n--xyz--\r\n"}),
    ("POST", "/api/mixes", {"headers": {"content-type": "multipart/form-data; boundary=xyz"},
                            "content": b"--xyz\r\nContent-Disposition: form-data; name=\"vocal\""
                                       b"; filename=\"" + b"f" * 10_000 + b"\"\r\n\r\nx\r\n"
                                       b"--xyz--\r\n"}),
    ("POST", "/api/mixes", {"headers": {"content-type": "text/plain"}, "content": b"hello"}),
    ("PUT", "/api/mixes/" + "A" * 24 + "/params", {"content": b"{}"}),
]


@pytest.mark.parametrize("method,url,kw", RAW_REQUESTS,
                         ids=[f"{m} {u[:40]}" for m, u, _ in RAW_REQUESTS])
def test_crafted_requests_are_client_errors(crafted, method, url, kw):
    app, client, mix = crafted
    before = mix_folders(app)
    assert_refused(client.request(method, url, **kw))
    assert mix_folders(app) == before


def test_crafted_uploads_are_client_errors(crafted, pair):
    app, client, mix = crafted
    before = mix_folders(app)
    cases = [
        {"vocal": ("v.wav", b"RIFF\x00\x00\x00\x00WAVEfmt garbage"), "backing": ("b", pair[1])},
        {"vocal": ("../../../etc/passwd", b"root:x:0:0"), "backing": ("b.wav", pair[1])},
        {"vocal": ("\x00\n\r.wav", pair[0]), "backing": ("b.wav", b"")},
        {"vocal": ("v" * 5000 + ".wav", b"\x00" * 100), "backing": ("b.wav", pair[1])},
        {"vocal": ("v.wav", pair[0])},
        {**files(pair), "reference_vocal": ("rv.wav", pair[0])},
        {**files(pair), "reference_backing": ("rb.wav", pair[1])},
        {**files(pair), "reference_vocal": ("rv.wav", b"RIFF not audio"),
         "reference_backing": ("rb.wav", pair[1])},
        {**files(pair), "reference_vocal": ("../../rv.wav", pair[0]),
         "reference_backing": ("rb.wav", b"")},
        {**files(pair), "reference_vocal": ("rv.wav", wav_bytes(np.zeros((SR * 2, 2)))),
         "reference_backing": ("rb.wav", pair[1])},
        {**files(pair), "reference_vocal": ("rv.wav", wav_bytes(np.full((SR, 3), 0.1))),
         "reference_backing": ("rb.wav", pair[1])},
    ]
    for f in cases:
        body = assert_refused(client.post("/api/mixes", files=f), (415, 422))
        assert str(app.state.store.root) not in body["detail"]
        assert "upload_" not in body["detail"]
    assert mix_folders(app) == before


def test_a_mix_that_failed_answers_409_everywhere(crafted, pair, monkeypatch):
    import vocalmix.pipeline as pipeline
    from vocalmix.core.errors import TargetUnreachableError

    app, client, _ = crafted

    def failing(*_a, **_k):
        raise TargetUnreachableError("cannot reach it")

    monkeypatch.setattr(pipeline, "mix", failing)
    body = client.post("/api/mixes", files=files(pair), data={"wait": "false"}).json()
    deadline = time.time() + 20
    while (g := client.get(body["links"]["self"]).json())["status"] == "mixing":
        assert time.time() < deadline
        time.sleep(0.02)
    assert g["error"]["code"] == "target.unreachable"
    for url in (body["links"]["mix"], body["links"]["plain"], body["links"]["peaks"],
                body["links"]["analysis"], body["links"]["params_file"]):
        assert_refused(client.get(url), 409)
    assert_refused(client.put(body["links"]["edit"], json={"targets": {"vocal_lra_lu": 9}}),
                   409)
    assert client.delete(body["links"]["self"]).status_code == 204


# --- the decoded-size bomb ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``vocalmix serve`` in a child process."""

    def __init__(self, storage: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vocalmix.frontends.cli", "serve", "--port", str(self.port),
             "--storage", str(storage), "-q", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        import httpx

        deadline = time.time() + 30
        while True:
            try:
                httpx.get(self.url + "/api/health", timeout=2)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.proc.stdout.read()
                assert time.time() < deadline, "vocalmix serve did not answer"
                time.sleep(0.1)

    def memory_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for the server process")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.communicate(timeout=20)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """1.3 MB of FLAC that decodes to 184 MB: 60 s of stereo at 384 kHz, nearly silent."""
    p = tmp_path_factory.mktemp("bomb") / "bomb.flac"
    block = np.zeros((384_000 * 5, 2), np.float32)
    block[::9973] = 0.01
    with sf.SoundFile(p, "w", samplerate=384_000, channels=2, format="FLAC",
                      subtype="PCM_16") as f:
        for _ in range(12):
            f.write(block)
    assert p.stat().st_size < 2 * MB
    return p


def test_the_decode_bomb_is_refused_before_decoding(tmp_path, bomb, pair):
    """The server's peak memory does not grow by the bomb's decoded size (184 MB per
    file): it is refused from the header, and nothing of it stays on disk."""
    import httpx

    storage = tmp_path / "store"
    srv = Server(storage, "--max-decoded-mb", "32", "--workers", "1")
    try:
        # the same code path once, on a harmless upload, so imports do not count
        r = httpx.post(srv.url + "/api/mixes", timeout=60, files={
            "vocal": ("v.wav", pair[0]), "backing": ("b.wav", b"not audio")})
        assert r.status_code == 415, r.text
        before = srv.memory_kb("VmHWM")
        data = bomb.read_bytes()
        r = httpx.post(srv.url + "/api/mixes", timeout=60, files={
            "vocal": ("bomb.flac", data), "backing": ("bomb2.flac", data)})
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "audio.too_large"
        assert "384000 Hz" in r.json()["detail"] and "--max-decoded-mb" in r.json()["detail"]
        growth_mb = (srv.memory_kb("VmHWM") - before) / 1024
        assert growth_mb < 40, f"peak memory grew by {growth_mb:.0f} MB"
        on_disk = sum(f.stat().st_size for f in storage.rglob("*") if f.is_file())
        assert on_disk < 64 * 1024  # the uploads were discarded with the refused mix
    finally:
        srv.stop()


def test_a_reference_is_held_to_the_same_decode_limits(tmp_path, bomb, pair):
    """The reference's stems are refused from their headers like the inputs, and again
    when they would pass the limit once resampled to the mix's rate; nothing stays."""
    app = create_app(tmp_path / "store", max_upload_bytes=8 * MB, max_decoded_bytes=2 * MB,
                     cleanup_interval_s=0, workers=1)
    client = TestClient(app, base_url=BASE, raise_server_exceptions=False)
    data = bomb.read_bytes()
    r = client.post("/api/mixes", files={**files(pair), "reference_vocal": ("bomb.flac", data),
                                         "reference_backing": ("rb.wav", pair[1])})
    body = assert_refused(r, 413)
    assert body["code"] == "audio.too_large" and "reference vocal bomb.flac" in body["detail"]
    # 1.9 MB decoded at its own 8 kHz (mono counts as stereo), 3.8 MB at the mix's 16 kHz
    noise = np.random.default_rng(0).normal(0.0, 0.1, (8000 * 30, 1)).astype(np.float32)
    slow = wav_bytes(noise, 8000)
    r = client.post("/api/mixes", files={**files(pair), "reference_vocal": ("slow.wav", slow),
                                         "reference_backing": ("rb.wav", pair[1])})
    body = assert_refused(r, 413)
    assert "16000 Hz" in body["detail"]
    assert mix_folders(app) == []


# --- cross-site requests and foreign hosts ------------------------------------------------


@pytest.fixture
def app(tmp_path):
    return create_app(tmp_path / "store", max_upload_bytes=8 * MB, cleanup_interval_s=0,
                      workers=2)


@pytest.fixture
def client(app):
    return TestClient(app, base_url=BASE, raise_server_exceptions=False)


EVIL = [{"origin": "http://evil.example"}, {"origin": "null"},
        {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
        {"origin": "http://127.0.0.1:9999"}]


def test_writes_from_other_sites_are_refused(app, client, pair):
    mix = client.post("/api/mixes", files=files(pair)).json()
    for h in EVIL:
        for r in (client.post("/api/demo?duration_s=2", headers=h),
                  client.post("/api/mixes", files=files(pair), headers=h),
                  client.put(mix["links"]["edit"], json={"targets": {"vocal_to_mix_lu": -9}},
                             headers=h),
                  client.delete(mix["links"]["self"], headers=h)):
            body = assert_refused(r, 403)
            assert body["code"].startswith("request.cross")
    assert mix_folders(app) == [mix["id"]]
    assert client.get(mix["links"]["self"]).json()["revision"] == 1
    # the page itself (same origin) and programs (no Origin) may
    same = {"origin": BASE, "sec-fetch-site": "same-origin"}
    r = client.put(mix["links"]["edit"], json={"targets": {"vocal_to_mix_lu": -9}}, headers=same)
    assert r.status_code == 200, r.text
    assert client.delete(mix["links"]["self"]).status_code == 204


def test_requests_naming_a_foreign_host_are_refused(app, client, pair):
    """DNS rebinding: a hostile name resolving to 127.0.0.1 carries its name in Host."""
    mix = client.post("/api/mixes", files=files(pair)).json()
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                 "192.168.1.10"):
        for method, url in (("GET", mix["links"]["self"]), ("GET", mix["links"]["mix"]),
                            ("GET", "/"), ("POST", "/api/demo")):
            body = assert_refused(client.request(method, url, headers={"host": host}), 421)
            assert body["code"] == "request.host"
    for host in ("localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.1"):
        assert client.get(mix["links"]["self"], headers={"host": host}).status_code == 200
    # a server bound to all interfaces answers any name unless told which
    assert allowed_hosts_for("0.0.0.0") is None
    assert "studio.lan" in allowed_hosts_for("0.0.0.0", ["studio.lan"])
    assert allowed_hosts_for("127.0.0.1") >= {"127.0.0.1", "localhost", "::1"}


def test_security_headers(client):
    for url in ("/", "/static/app.js", "/api/health", "/api/mixes/" + "A" * 24, "/api"):
        r = client.get(url, follow_redirects=False)
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["x-frame-options"] == "DENY", url
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, url
        assert "unsafe-inline" not in csp, url
    # FastAPI's Swagger page loads its scripts from a CDN: no CSP there, the rest stays
    r = client.get("/docs")
    assert r.status_code == 200 and "content-security-policy" not in r.headers
    assert r.headers["x-frame-options"] == "DENY"


def test_the_page_uses_no_inline_script_or_style():
    static = Path(__file__).resolve().parents[2] / "src/vocalmix/frontends/server/static"
    for page in ("index.html", "api.html"):
        html = (static / page).read_text()
        assert "<script>" not in html and " style=" not in html and "onclick" not in html
    for js in ("app.js", "api.js"):
        assert "style=" not in (static / js).read_text(), js


# --- bounded admission --------------------------------------------------------------------


class Gate:
    """A stand-in for the pipeline's mix that waits for a signal and counts how many
    run at once."""

    def __init__(self, real, *, then_fail: bool = False) -> None:
        self.real = real
        self.then_fail = then_fail
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def __call__(self, *a, **kw):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            assert self.open.wait(60)
            if self.then_fail:
                from vocalmix.core.errors import TargetUnreachableError

                raise TargetUnreachableError("stopped by the test")
            return self.real(*a, **kw)
        finally:
            with self.lock:
                self.running -= 1

    def wait_running(self, n: int) -> None:
        deadline = time.time() + 30
        while self.running < n:
            assert time.time() < deadline, f"{self.running} of {n} jobs started"
            time.sleep(0.01)


@pytest.mark.slow  # several seconds: the slow run (.ci/run) keeps it
def test_workers_run_at_most_n_and_the_queue_refuses_past_its_size(tmp_path, pair,
                                                                    monkeypatch):
    import vocalmix.pipeline as pipeline

    app = create_app(tmp_path / "store", cleanup_interval_s=0, workers=2, queue_size=2)
    client = TestClient(app, base_url=BASE, raise_server_exceptions=False)
    done = client.post("/api/mixes", files=files(pair)).json()
    gate = Gate(pipeline.mix)
    monkeypatch.setattr(pipeline, "mix", gate)
    accepted = [client.post("/api/mixes", files=files(pair), data={"wait": "false"})
                for _ in range(4)]
    assert [r.status_code for r in accepted] == [202] * 4
    gate.wait_running(2)
    health = client.get("/api/health").json()
    assert (health["workers"], health["running"], health["waiting"]) == (2, 2, 2)
    # beyond the queue: 503 at once, for new mixes, the demo and re-renders alike
    for r in (client.post("/api/mixes", files=files(pair)),
              client.post("/api/demo?duration_s=2"),
              client.put(done["links"]["edit"], json={"targets": {"vocal_to_mix_lu": -8}}),
              client.get(done["links"]["plain"])):
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "server.busy" and "busy" in r.json()["detail"]
        assert int(r.headers["retry-after"]) > 0
    assert len(mix_folders(app)) == 5  # the refused ones left nothing
    gate.open.set()
    deadline = time.time() + 60
    for r in accepted:
        while (g := client.get(r.json()["links"]["self"]).json())["status"] == "mixing":
            assert time.time() < deadline
            time.sleep(0.05)
        assert g["status"] == "done", g
    assert gate.peak == 2


def test_waiting_clients_hold_no_threads(tmp_path, pair, monkeypatch):
    """Forty-five clients waiting for their mix (wait=true; more than the 40 threads of
    the request thread pool) while one worker is busy: the health check, reads and the
    page still answer at once."""
    app = create_app(tmp_path / "store", cleanup_interval_s=0, workers=1, queue_size=60)
    with TestClient(app, base_url=BASE) as client:  # one event loop for every request
        check_waiting_clients(client, pair, monkeypatch)


def check_waiting_clients(client, pair, monkeypatch) -> None:
    import vocalmix.pipeline as pipeline

    done = client.post("/api/mixes", files=files(pair)).json()
    gate = Gate(pipeline.mix, then_fail=True)
    monkeypatch.setattr(pipeline, "mix", gate)
    # the gate is opened whatever happens: a failed check that left it shut would have
    # the 45 jobs wait 60 s each, one after another, in the client's exit
    try:
        tone = wav_bytes(0.1 * np.sin(np.arange(SR, dtype=np.float32))[:, None])
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(
            client.post("/api/mixes", files=files((tone, tone))))) for _ in range(45)]
        for t in threads:
            t.start()
        gate.wait_running(1)
        deadline = time.time() + 30
        while client.get("/api/health").json()["waiting"] < 44:
            assert time.time() < deadline
            time.sleep(0.05)
        workers = [t for t in threading.enumerate() if t.name.startswith("vocalmix-job")]
        assert len(workers) == 1  # the waiting jobs hold no thread of their own
        for url in ("/api/health", done["links"]["self"], "/"):
            t0 = time.perf_counter()
            assert client.get(url).status_code == 200
            assert time.perf_counter() - t0 < 1.0, url
    finally:
        gate.open.set()
    for t in threads:
        t.join(120)
    assert len(results) == 45
    assert all(r.status_code == 422 and "stopped by the test" in r.json()["detail"]
               for r in results)
    assert gate.peak == 1


# --- lifecycle: restarts and expiry -------------------------------------------------------


def test_a_kill_leaves_no_mix_mixing_forever(tmp_path):
    """kill -9 while one demo mixes and another waits: after a restart both are failed
    (interrupted), answer 409, and their half-made files are gone."""
    import httpx

    storage = tmp_path / "store"
    srv = Server(storage, "--workers", "1")
    try:
        ids = []
        for _ in range(2):
            r = httpx.post(srv.url + "/api/demo?duration_s=60&wait=false", timeout=30)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        assert httpx.get(f"{srv.url}/api/mixes/{ids[0]}").json()["status"] == "mixing"
    finally:
        srv.stop(signal.SIGKILL)
    srv = Server(storage, "--workers", "1")
    try:
        for mid in ids:
            g = httpx.get(f"{srv.url}/api/mixes/{mid}").json()
            assert g["status"] == "failed", g
            assert g["error"]["code"] == "job.interrupted"
            assert g["error"]["detail"].startswith("interrupted")
            r = httpx.get(f"{srv.url}/api/mixes/{mid}/audio/mix")
            assert r.status_code == 409 and "interrupted" in r.json()["detail"]
            left = {p.name for p in (storage / mid).iterdir()}
            assert not any(n.startswith(("upload_", "r")) for n in left), left
    finally:
        srv.stop()


def test_an_interrupted_edit_leaves_the_last_complete_revision(tmp_path, pair):
    app = create_app(tmp_path / "store", cleanup_interval_s=0, workers=1)
    client = TestClient(app, base_url=BASE)
    mix = client.post("/api/mixes", files=files(pair)).json()
    d = app.state.store.root / mix["id"]
    # what a kill in the middle of a re-render leaves: a half-written next revision
    (d / "r2").mkdir()
    (d / "r2" / "mix.wav").write_bytes(b"half")
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps(dict(meta, job={"kind": "edit"})))
    app.state.store.close()  # the server is gone
    app2 = create_app(tmp_path / "store", cleanup_interval_s=0, workers=1)
    c2 = TestClient(app2, base_url=BASE)
    g = c2.get(mix["links"]["self"]).json()
    assert g["status"] == "done" and g["revision"] == 1 and g["params"] == mix["params"]
    assert any("interrupted" in n for n in g["notes"])
    assert not (d / "r2").exists()
    assert c2.get(mix["links"]["mix"]).status_code == 200
    r = c2.put(mix["links"]["edit"], json={"targets": {"vocal_to_mix_lu": -7}})
    assert r.status_code == 200 and r.json()["revision"] == 2


def test_a_second_server_on_the_same_storage_does_not_fail_the_first_ones_jobs(
        tmp_path, pair, monkeypatch):
    import vocalmix.pipeline as pipeline

    app = create_app(tmp_path / "store", cleanup_interval_s=0, workers=1)
    client = TestClient(app, base_url=BASE)
    gate = Gate(pipeline.mix)
    monkeypatch.setattr(pipeline, "mix", gate)
    mix = client.post("/api/mixes", files=files(pair), data={"wait": "false"}).json()
    gate.wait_running(1)
    app2 = create_app(tmp_path / "store", cleanup_interval_s=0, workers=1)
    c2 = TestClient(app2, base_url=BASE)
    assert c2.get(mix["links"]["self"]).json()["status"] == "mixing"
    gate.open.set()
    deadline = time.time() + 30
    while (g := client.get(mix["links"]["self"]).json())["status"] == "mixing":
        assert time.time() < deadline
        time.sleep(0.05)
    assert g["status"] == "done"


@pytest.mark.slow  # several seconds: the slow run (.ci/run) keeps it
def test_an_expired_mix_is_gone_at_once(tmp_path, pair, monkeypatch):
    """ttl 5 s, no sweeper: a mix unchanged for 10 s answers 404 on every read at once
    (and is removed); a mix still being made never expires."""
    import vocalmix.pipeline as pipeline

    app = create_app(tmp_path / "store", ttl_s=5, cleanup_interval_s=0, workers=2)
    client = TestClient(app, base_url=BASE, raise_server_exceptions=False)
    mix = client.post("/api/mixes", files=files(pair)).json()
    fresh = client.post("/api/mixes", files=files(pair)).json()
    old = time.time() - 10
    os.utime(app.state.store.root / mix["id"], (old, old))
    for url in (mix["links"]["self"], mix["links"]["mix"], mix["links"]["peaks"],
                mix["links"]["params_file"], mix["links"]["analysis"]):
        body = assert_refused(client.get(url), 404)
        assert "expired" in body["detail"]
    assert_refused(client.put(mix["links"]["edit"], json={"targets": {}}), 404)
    assert mix_folders(app) == [fresh["id"]]
    assert client.get(fresh["links"]["self"]).status_code == 200
    # work in progress is not expired, however long it waits
    gate = Gate(pipeline.mix)
    monkeypatch.setattr(pipeline, "mix", gate)
    busy = client.post("/api/mixes", files=files(pair), data={"wait": "false"}).json()
    gate.wait_running(1)
    os.utime(app.state.store.root / busy["id"], (old, old))
    assert client.get(busy["links"]["self"]).json()["status"] == "mixing"
    assert busy["id"] not in app.state.store.sweep()
    gate.open.set()
    deadline = time.time() + 30
    while (g := client.get(busy["links"]["self"]).json())["status"] == "mixing":
        assert time.time() < deadline
        time.sleep(0.05)
    assert g["status"] == "done"


# --- private storage ----------------------------------------------------------------------


def test_the_default_storage_is_private_to_the_user(tmp_path, monkeypatch, pair):
    monkeypatch.delenv("VOCALMIX_STORAGE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    app = create_app(cleanup_interval_s=0, workers=1)
    root = app.state.store.root
    assert root == (tmp_path / "cache" / "vocalmix" / "studio").resolve()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    mix = TestClient(app, base_url=BASE).post("/api/mixes", files=files(pair)).json()
    d = root / mix["id"]
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in d.rglob("*"):
        if f.is_dir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o700, f
    # a root made readable by others is made private again
    os.chmod(root, 0o755)
    create_app(root, cleanup_interval_s=0, workers=1)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_a_symlinked_or_foreign_storage_root_is_refused(tmp_path, monkeypatch):
    import vocalmix.frontends.server.storage as storage

    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(VocalmixError, match="symbolic link"):
        create_app(tmp_path / "link", cleanup_interval_s=0)
    from vocalmix.frontends.cli import main

    assert main(["serve", "--storage", str(tmp_path / "link")]) == 2  # one line, no server
    someone_else = real.stat().st_uid + 1
    monkeypatch.setattr(storage, "_uid", lambda: someone_else)
    with pytest.raises(VocalmixError, match="another user"):
        create_app(real, cleanup_interval_s=0)


def test_a_symlink_planted_in_a_mix_folder_is_not_served(app, client, pair, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret")
    mix = client.post("/api/mixes", files=files(pair)).json()
    d = app.state.store.root / mix["id"]
    for rel, url in (("r1/mix.wav", mix["links"]["mix"]),
                     ("r1/params.json", mix["links"]["params_file"]),
                     ("r1/peaks.json", mix["links"]["peaks"]),
                     ("meta.json", mix["links"]["self"])):
        target = d / rel
        target.unlink()
        target.symlink_to(secret)
        r = client.get(url)
        assert b"secret" not in r.content, url
        assert_refused(r, (404, 409))
