"""In headless Firefox: a take that Firefox's MediaRecorder writes is read in time.

Needs Debian's Firefox (``apt-get install firefox-esr``; another binary with
``$VOCALMIX_FIREFOX``), Debian's PulseAudio (``apt-get install pulseaudio``) and the
``websockets`` package (in the test extras). Without an audio device Firefox's Web Audio
never runs (an ``AudioContext`` stays suspended and a recording of it is silence), so a
PulseAudio server with a null sink is started for the test in a folder of its own.
Firefox is driven over WebDriver BiDi, which it serves itself
(``--remote-debugging-port``): no geckodriver. Run alone: ``python -m pytest -m browser``.
"""

from __future__ import annotations

import base64
import http.server
import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vocalmix.core.audio import read_audio

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # ~15 s: in the slow run
FIREFOX = (os.environ.get("VOCALMIX_FIREFOX") or shutil.which("firefox-esr")
           or shutil.which("firefox") or "/usr/bin/firefox-esr")
SR = 48000
#: ``OPUS_GET_LOOKAHEAD`` at 48 kHz: a take read without its stated pre-skip is this late
OPUS_LOOKAHEAD = 312

# Firefox's settings for a test profile: media plays without a gesture, and nothing
# reaches for the network (this machine has none) or asks a first-run question
PREFS = {
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.autoplay.block-webaudio": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.captive-portal-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Bidi:
    """A WebDriver BiDi session over one WebSocket: commands in, results out."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def __call__(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:  # events arrive between the results; skip them
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == i:
                if msg.get("type") == "error":
                    raise AssertionError(f"Firefox refused {method}: {msg}")
                return msg["result"]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A home and runtime folder of the test's own, for PulseAudio and Firefox."""
    h = tmp_path_factory.mktemp("firefox-home")
    (h / "run").mkdir(mode=0o700)
    return h


@pytest.fixture(scope="module")
def pulse(home: Path) -> Iterator[dict[str, str]]:
    """A PulseAudio server with a null sink; the environment that reaches it."""
    exe = shutil.which("pulseaudio")
    if exe is None:
        pytest.skip("pulseaudio not found (apt-get install pulseaudio): Firefox's Web Audio "
                    "needs an audio device to run")
    env = dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(home / "run"))
    proc = subprocess.Popen(
        [exe, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
         "-L", "module-native-protocol-unix", "-L", "module-null-sink sink_name=vocalmix"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sock = home / "run" / "pulse" / "native"
    deadline = time.time() + 20
    while not sock.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            err = proc.communicate()[1].decode(errors="replace")
            pytest.fail(f"pulseaudio did not start: {err[-2000:]}")
        time.sleep(0.05)
    yield env
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def blank_page() -> Iterator[str]:
    """A page on loopback (a secure context, where MediaRecorder and Web Audio run)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the handler's own name)
            body = b"<!doctype html><title>take</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    th.join(timeout=10)


@pytest.fixture(scope="module")
def firefox(home: Path, pulse: dict[str, str], blank_page: str) -> Iterator[tuple[_Bidi, str]]:
    """Headless Firefox on the blank page: a BiDi session and its browsing context."""
    sync_client = pytest.importorskip("websockets.sync.client",
                                      reason="websockets not installed (test extras)")
    if not Path(FIREFOX).exists():
        pytest.skip(f"firefox not found at {FIREFOX} (apt-get install firefox-esr, or set "
                    "VOCALMIX_FIREFOX)")
    profile = home / "profile"
    profile.mkdir()
    (profile / "user.js").write_text("".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items()))
    port = _free_port()
    proc = subprocess.Popen(
        [FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
         f"--remote-debugging-port={port}", "about:blank"],
        env=pulse, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                ws = sync_client.connect(f"ws://127.0.0.1:{port}/session", max_size=None,
                                         open_timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"Firefox did not serve WebDriver BiDi on port {port}")
                time.sleep(0.1)
        with ws:
            bidi = _Bidi(ws)
            bidi("session.new", {"capabilities": {}})
            ctx = bidi("browsingContext.getTree", {})["contexts"][0]["context"]
            bidi("browsingContext.navigate", {"context": ctx, "url": blank_page,
                                              "wait": "complete"})
            yield bidi, ctx
            bidi("session.end", {})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# the same take as the Chromium test's: Web Audio into a MediaRecorder, as a browser
# karaoke page records one; samples in and the file out as base64
RECORD_JS = """async (b64, mime) => {
  const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const samples = new Float32Array(raw.buffer);
  const ctx = new AudioContext({sampleRate: 48000});
  await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 5000))]);
  if (ctx.state !== 'running') return 'state:' + ctx.state;
  const buf = ctx.createBuffer(1, samples.length, 48000);
  buf.copyToChannel(samples, 0);
  const src = ctx.createBufferSource(); src.buffer = buf;
  const dest = ctx.createMediaStreamDestination();
  src.connect(dest);
  const rec = new MediaRecorder(dest.stream, {mimeType: mime});
  const parts = [];
  rec.ondataavailable = (e) => parts.push(e.data);
  const done = new Promise((r) => rec.onstop = r);
  rec.start(250);
  src.start();
  await new Promise((r) => setTimeout(r, samples.length / 48 + 500));
  rec.stop(); await done;
  const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return rec.mimeType + '|' + btoa(s);
}"""


@pytest.mark.parametrize("mime", ["audio/webm;codecs=opus", "audio/ogg;codecs=opus"])
def test_a_take_firefox_records_is_read_in_time(firefox, mime):
    """Firefox states its Opus encoder's delay (the WebM's CodecDelay, the Ogg's
    pre-skip), and the take is read as stated: clicks every 0.5 s from 0.25 s decode
    where they were. Read without the stated delay, they would be 312 samples late; read
    with Chrome's unstated 312 samples dropped as well, 312 early."""
    bidi, ctx = firefox
    x = np.zeros(3 * SR, np.float32)
    t = np.arange(int(0.02 * SR)) / SR
    for k in range(5):
        i = int((0.25 + 0.5 * k) * SR)
        x[i:i + t.size] = 0.5 * np.sin(2 * np.pi * 1000 * t)
    res = bidi("script.callFunction", {
        "functionDeclaration": RECORD_JS, "awaitPromise": True, "target": {"context": ctx},
        "arguments": [{"type": "string", "value": base64.b64encode(x.tobytes()).decode()},
                      {"type": "string", "value": mime}]})
    assert res.get("type") == "success", res
    value = res["result"]["value"]
    assert not value.startswith("state:"), (
        f"Firefox's AudioContext did not run ({value}): no audio device reached")
    written, b64 = value.split("|", 1)
    assert written.split(";")[0] == mime.split(";")[0]
    a = read_audio(base64.b64decode(b64), label="vocal")
    assert a.sample_rate == SR
    on = np.flatnonzero(np.abs(a.samples[:, 0]) > 0.1)
    assert on.size, "the take is silent"
    starts = on[np.r_[True, np.diff(on) > SR // 10]]
    assert len(starts) == 5, starts
    expected = (0.25 + 0.5 * np.arange(5)) * SR + 2  # (the sine passes 0.1 two samples in)
    late = starts - expected
    # 0 samples late in 12 runs here (6 of each container); the recorder may start a
    # render quantum or two before the source, as Chromium's does
    assert np.ptp(late) <= 2 and -2 <= late[0] < OPUS_LOOKAHEAD - 12, late
    assert not any("recorded by Chrome" in n for n in a.notes), a.notes
