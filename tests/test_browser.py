"""End to end in headless Chromium: the real page, served by a real server on loopback.

Needs Debian's chromium (``apt-get install chromium``; path overridable with
``$VOCALMIX_CHROMIUM``) and Playwright's Python package (in the test extras). Run alone:
``python -m pytest -m browser``. Saves ``docs/screenshot.png`` for the README.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from vocalmix.synth import synthesize_song

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VOCALMIX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    uvicorn = pytest.importorskip("uvicorn", reason="server extras not installed")
    from vocalmix.server import create_app

    app = create_app(tmp_path_factory.mktemp("store"), start_sweeper=False)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_upload_mix_adjust_download(server, browser, tmp_path):
    v, b = synthesize_song(sample_rate=44100, duration_s=8.0, seed=11)
    vp, bp = tmp_path / "vocal.wav", tmp_path / "backing.wav"
    sf.write(vp, v, 44100, subtype="PCM_16")
    sf.write(bp, b, 44100, subtype="PCM_16")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.set_input_files("#vocal-file", str(vp))
    page.set_input_files("#backing-file", str(bp))
    page.click("#mix-button")
    page.wait_for_selector("#controls:not([hidden])", timeout=60_000)
    page.wait_for_function("document.querySelector('#params-json').textContent.length > 100")
    before = json.loads(page.text_content("#params-json"))
    mix_src_before = page.get_attribute("#player", "src")
    assert before["achieved"]["vocal_to_mix_lu"] == pytest.approx(-3.0, abs=0.05)
    fetch = ("async (u) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', "
             "await (await fetch(u)).arrayBuffer())))")
    a1 = page.evaluate(fetch, mix_src_before)

    # move the vocal level control (target) to -6 LU
    slider = page.locator("[id='t-vocal_to_mix_lu']")
    slider.evaluate("(el) => { el.value = -6; el.dispatchEvent(new Event('input')); "
                    "el.dispatchEvent(new Event('change')); }")
    page.wait_for_function(
        "JSON.parse(document.querySelector('#params-json').textContent)"
        ".targets.vocal_to_mix_lu === -6", timeout=60_000)
    after = json.loads(page.text_content("#params-json"))
    assert after["achieved"]["vocal_to_mix_lu"] == pytest.approx(-6.0, abs=0.05)
    assert after["vocal"]["gain_db"] < before["vocal"]["gain_db"] - 2
    mix_src_after = page.get_attribute("#player", "src")
    assert mix_src_after != mix_src_before
    # the audio itself changed
    a2 = page.evaluate(fetch, mix_src_after)
    assert a1 != a2

    # A/B switch plays the plain sum
    page.click("#ab-plain")
    assert "/audio/plain" in page.get_attribute("#player", "src")
    page.click("#ab-mix")

    # download the params
    with page.expect_download() as dl:
        page.click("#dl-params")
    path = dl.value.path()
    doc = json.loads(Path(path).read_text())
    assert doc["format"] == "vocalmix.params"
    assert doc["targets"]["vocal_to_mix_lu"] == -6.0

    page.wait_for_timeout(1500)  # let the waveforms and spectrum draw
    # the README's screenshot is refreshed on request, so a test run leaves the tree clean
    out = (REPO / "docs" / "screenshot.png" if os.environ.get("VOCALMIX_SCREENSHOT")
           else tmp_path / "screenshot.png")
    out.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 20_000
    assert not errors, errors
    page.close()


def test_demo_button(server, browser):
    page = browser.new_page()
    page.goto(server + "/")
    page.click("#demo-button")
    page.wait_for_selector("#controls:not([hidden])", timeout=60_000)
    doc = json.loads(page.text_content("#params-json"))
    assert doc["provenance"]["method"] == "baseline"
    page.close()
