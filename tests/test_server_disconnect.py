"""A client that goes away in the middle of its request (an upload cancelled half way)
ends that request quietly: one info line in the server's log, no error, no traceback,
and the half-made mix's folder removed."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="server extras not installed")

from vocalmix.frontends.server.app import create_app  # noqa: E402

HOST = b"127.0.0.1:8000"
BOUNDARY = b"xx"
#: the start of a multipart upload: the vocal's part, cut off after 1000 bytes
PARTIAL = (b"--xx\r\nContent-Disposition: form-data; name=\"vocal\"; filename=\"v.wav\"\r\n\r\n"
           + b"\0" * 1000)
GONE = "the client went away before the answer"


@pytest.fixture
def app(tmp_path):
    return create_app(tmp_path / "store", max_upload_bytes=20_000, ttl_s=3600,
                      cleanup_interval_s=0, workers=1)


def folders(app) -> list[str]:
    """The mix folders in the storage (not its lock file)."""
    return sorted(p.name for p in app.state.store.root.iterdir() if not p.name.startswith("."))


def post_scope(length: int) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/api/mixes",
        "raw_path": b"/api/mixes", "root_path": "", "query_string": b"",
        "headers": [(b"host", HOST),
                    (b"content-type", b"multipart/form-data; boundary=" + BOUNDARY),
                    (b"content-length", str(length).encode())],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }


def call(app, scope: dict[str, Any], chunks: list[bytes]) -> list[dict[str, Any]]:
    """Run one request through the application: the body ``chunks``, then the client
    gone; returns what the application sent."""
    incoming = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # raises if the application does
    return sent


def records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("vocalmix", "uvicorn"))]


def test_an_upload_cut_off_by_the_client_ends_with_one_info_line(app, caplog):
    caplog.set_level(logging.DEBUG)
    sent = call(app, post_scope(15_000), [PARTIAL])
    assert sent == []  # nobody is left to read an answer
    logged = records(caplog)
    assert [(r.levelno, r.getMessage()) for r in logged] == [
        (logging.INFO, f"POST /api/mixes from 127.0.0.1:40000: {GONE}; request dropped")]
    assert all(r.exc_info is None for r in caplog.records)
    assert folders(app) == []  # the half-made mix is gone


def test_an_upload_refused_for_its_size_is_not_taken_for_a_client_gone(app, caplog):
    """Past the upload limit the server answers 413 and stops reading: the request ends
    the same way inside the application, but that is a refusal, not a client gone."""
    caplog.set_level(logging.DEBUG)
    sent = call(app, post_scope(18_000), [PARTIAL, b"\0" * 12_000, b"\0" * 12_000])
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert not [r for r in records(caplog) if GONE in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert folders(app) == []


def test_a_real_server_logs_no_traceback_for_a_client_gone(app, caplog):
    """The same through uvicorn on a socket: neither the application nor uvicorn logs an
    error ("Exception in ASGI application") or a traceback."""
    import uvicorn

    caplog.set_level(logging.INFO)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert th.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        head = (b"POST /api/mixes HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                b"Content-Type: multipart/form-data; boundary=xx\r\n"
                b"Content-Length: 15000\r\n\r\n" + PARTIAL)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(head)
            while not folders(app):  # the upload has begun: the mix's folder exists
                assert time.monotonic() < deadline, "the upload did not begin"
                time.sleep(0.02)
        deadline = time.monotonic() + 10
        while (folders(app) or not [r for r in caplog.records if GONE in r.getMessage()]):
            assert time.monotonic() < deadline, "the request did not end"
            time.sleep(0.02)
    finally:
        server.should_exit = True
        th.join(timeout=10)
    gone = [r for r in caplog.records if GONE in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None for r in caplog.records)


def _stalling(app, chunks: list[bytes], pause_s: float) -> list[dict[str, Any]]:
    """Run one upload through the application: ``chunks``, each after ``pause_s``, then
    nothing more (a client that keeps its connection open and sends no more)."""
    incoming = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            await asyncio.sleep(pause_s)
            return {"type": "http.request", "body": incoming.pop(0), "more_body": True}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(post_scope(15_000), receive, send))
    return sent


def test_an_upload_that_stalls_or_crawls_is_dropped_and_gives_its_place_back(
        app, monkeypatch):
    # a place of the job queue is held while an upload arrives: ten idle connections held
    # every place, and every other request that needs one got 503 while they stayed open
    from vocalmix.frontends.server import uploads

    monkeypatch.setattr(uploads, "UPLOAD_IDLE_S", 0.3)
    for chunks, pause_s, why in (([PARTIAL], 0.0, b"the upload stalled"),
                                 ([PARTIAL] + [b"\0" * 10] * 20, 0.05, b"too slowly")):
        sent = _stalling(app, chunks, pause_s)
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
        assert b'"code":"upload.stalled"' in sent[1]["body"] and why in sent[1]["body"]
        assert folders(app) == []
        assert app.state.studio.jobs.stats()["waiting"] == 0  # (its place given back)
