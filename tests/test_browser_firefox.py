"""In headless Firefox: the page mixes and adjusts, and a take Firefox records is read
in time.

Needs Debian's Firefox (``apt-get install firefox-esr``; another binary with
``$VOCALMIX_FIREFOX``), Debian's PulseAudio (``apt-get install pulseaudio``) and the
``websockets`` package (in the test extras). Without an audio device Firefox's media
never runs (an ``AudioContext`` stays suspended and a recording of it is silence; a
player never loads), so a PulseAudio server with a null sink is started for the tests in
a folder of their own. Firefox is driven over WebDriver BiDi, which it serves itself
(``--remote-debugging-port``): no geckodriver. Run alone: ``python -m pytest -m browser``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.audio import read_audio
from vocalmix.synth import synthesize_song

from conftest import (
    OPUS_LOOKAHEAD_SAMPLES,
    RECORD_TAKE_JS,
    clicks_late,
    free_port,
    planned_frames,
    record_args,
    recorded_take,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # ~15 s: in the slow run
FIREFOX = (os.environ.get("VOCALMIX_FIREFOX") or shutil.which("firefox-esr")
           or shutil.which("firefox") or "/usr/bin/firefox-esr")

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


class _Bidi:
    """A WebDriver BiDi session over one WebSocket, on one browsing context: commands in,
    results out; the page's console errors and uncaught exceptions kept in
    :attr:`errors`."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.context = ""

    def __call__(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("type") == "event":
                p = msg.get("params", {})
                if msg.get("method") == "log.entryAdded" and p.get("level") == "error":
                    self.errors.append(str(p.get("text")))
            elif msg.get("id") == i:
                if msg.get("type") == "error":
                    raise AssertionError(f"Firefox refused {method}: {msg}")
                return msg["result"]

    def call(self, function: str, *args: str) -> Any:
        """``function`` (JavaScript, awaited) called with string ``args``: its value."""
        res = self("script.callFunction", {
            "functionDeclaration": function, "awaitPromise": True,
            "target": {"context": self.context},
            "arguments": [{"type": "string", "value": a} for a in args]})
        assert res.get("type") == "success", res
        return res["result"].get("value")

    def goto(self, url: str) -> None:
        self("browsingContext.navigate", {"context": self.context, "url": url,
                                          "wait": "complete"})

    def set_files(self, selector: str, *paths: Path) -> None:
        """Choose ``paths`` in the file input ``selector``, as the file dialog does."""
        nodes = self("browsingContext.locateNodes", {
            "context": self.context, "locator": {"type": "css", "value": selector}})["nodes"]
        assert nodes, selector
        self("input.setFiles", {"context": self.context,
                                "element": {"sharedId": nodes[0]["sharedId"]},
                                "files": [str(p) for p in paths]})

    def wait_for(self, condition: str, timeout_s: float = 90.0) -> None:
        """Until the JavaScript expression ``condition`` is true."""
        deadline = time.time() + timeout_s
        while not self.call(f"() => Boolean({condition})"):
            assert time.time() < deadline, f"timed out waiting for {condition}"
            time.sleep(0.1)


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
def firefox(home: Path, pulse: dict[str, str], server: str) -> Iterator[_Bidi]:
    """Headless Firefox on the page: a BiDi session on its browsing context."""
    sync_client = pytest.importorskip("websockets.sync.client",
                                      reason="websockets not installed (test extras)")
    if not Path(FIREFOX).exists():
        pytest.skip(f"firefox not found at {FIREFOX} (apt-get install firefox-esr, or set "
                    "VOCALMIX_FIREFOX)")
    profile = home / "profile"
    profile.mkdir()
    (profile / "user.js").write_text("".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items()))
    port = free_port()
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
            bidi("session.subscribe", {"events": ["log.entryAdded"]})
            bidi.context = bidi("browsingContext.getTree", {})["contexts"][0]["context"]
            bidi.goto(server + "/")
            yield bidi
            bidi("session.end", {})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mime", ["audio/webm;codecs=opus", "audio/ogg;codecs=opus"])
def test_a_take_firefox_records_is_read_in_time(firefox, mime, tmp_path):
    """Firefox states its Opus encoder's delay (the WebM's CodecDelay, the Ogg's
    pre-skip), and the take is read as stated: clicks every 0.5 s from 0.25 s decode
    where they were. Read without the stated delay, they would be 312 samples late; read
    with Chrome's unstated 312 samples dropped as well, 312 early."""
    written, take, _ref = recorded_take(firefox.call(RECORD_TAKE_JS, *record_args(mime)))
    assert written.split(";")[0] == mime.split(";")[0]
    a = read_audio(take, label="vocal")
    # the long-form reader's plan of its length, from its packets (it states none)
    assert 0 <= planned_frames(take, tmp_path) - a.samples.shape[0] <= 2880
    late = clicks_late(a.samples, a.sample_rate)
    # 0 samples late in 12 runs here (6 of each container); the recorder may start a
    # render quantum or two before the source, as Chromium's does (Firefox records no
    # PCM to measure that against)
    assert np.ptp(late) <= 2 and -2 <= late[0] < OPUS_LOOKAHEAD_SAMPLES - 12, late
    assert not any("recorded by Chrome" in n for n in a.notes), a.notes


def test_the_page_mixes_plays_and_adjusts_in_firefox(firefox, tmp_path):
    """The page's main path, in Firefox: choose the files, mix, see the waveforms, load
    the mix into the player (24-bit WAV), type a new vocal level, and no script error."""
    bidi = firefox
    v, b = synthesize_song(sample_rate=44100, duration_s=8.0, seed=11)
    vp, bp = tmp_path / "ff vocal.wav", tmp_path / "ff backing.wav"
    sf.write(vp, v, 44100, subtype="PCM_16")
    sf.write(bp, b, 44100, subtype="PCM_16")
    bidi.goto(bidi.call("() => location.origin") + "/")
    assert bidi.call("() => document.title") == "vocalmix studio"
    bidi.set_files("#vocal-file", vp)
    bidi.set_files("#backing-file", bp)
    assert "ff vocal.wav" in bidi.call("() => document.querySelector('#vocal-name').textContent")
    bidi.call("() => document.querySelector('#mix-button').click()")
    bidi.wait_for("document.body.dataset.revision === '1' && "
                  "!document.body.hasAttribute('data-busy')")
    params = json.loads(bidi.call("() => document.querySelector('#params-json').textContent"))
    assert params["format"] == "vocalmix.params"
    assert params["achieved"]["vocal_to_mix_lu"] == pytest.approx(
        params["targets"]["vocal_to_mix_lu"], abs=0.05)
    # the waveforms and the spectrum are drawn (their data is fetched after the params)
    ink = """(s) => { const c = document.querySelector(s); if (c.width < 100) return 0;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }"""
    for canvas in ("#wave-vocal", "#wave-backing", "#wave-mix", "#spectrum"):
        bidi.wait_for(f"({ink})('{canvas}') > 1000", timeout_s=20)
    # Firefox decodes the mix the player is given (what the server's WAV is)
    src = bidi.call("() => document.querySelector('#player').src")
    assert "/audio/mix" in src
    duration = bidi.call("""() => new Promise((ok) => {
      const p = document.querySelector('#player');
      if (p.readyState >= 1) { ok(String(p.duration)); return; }
      p.addEventListener('loadedmetadata', () => ok(String(p.duration)), {once: true});
      p.addEventListener('error', () => ok('error ' + (p.error && p.error.code)),
                         {once: true});
      p.load(); })""")
    assert float(duration) == pytest.approx(8.0, abs=0.05), duration
    # a vocal level typed into the control's number box re-renders the mix
    bidi.call("""() => { const n = document.querySelector('#c-targets-vocal_to_mix_lu-num');
      n.value = '-6'; n.dispatchEvent(new Event('change')); }""")
    bidi.wait_for("document.body.dataset.revision === '2' && "
                  "!document.body.hasAttribute('data-busy')")
    after = json.loads(bidi.call("() => document.querySelector('#params-json').textContent"))
    assert after["targets"]["vocal_to_mix_lu"] == -6.0
    assert after["achieved"]["vocal_to_mix_lu"] == pytest.approx(-6.0, abs=0.05)
    assert bidi.call("() => document.querySelector('#player').src") != src
    assert not bidi.errors, bidi.errors
