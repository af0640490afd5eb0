"""Shared fixtures: where the real data lives, and small synthetic signals."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """``$VOCALMIX_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("VOCALMIX_DATA", REPO.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    """Path under the data root, or skip the test with the reason."""
    p = data_root().joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not found at {p} (set VOCALMIX_DATA to the shared data folder)")
    return p


def stem_songs() -> list[Path]:
    root = data_root() / "stems"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def find_stem(folder: Path, name: str) -> Path | None:
    for ext in (".wav", ".flac", ".mp3", ".ogg"):
        p = folder / f"{name}{ext}"
        if p.exists():
            return p
    return None


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def sine(freq_hz: float, db: float, dur_s: float, sr: int, channels: int = 2) -> np.ndarray:
    t = np.arange(int(round(dur_s * sr))) / sr
    x = (10 ** (db / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def ebur128_singing_v2m(vocal: np.ndarray, backing: np.ndarray, sr: int) -> tuple[float, float]:
    """``(while singing, integrated)`` vocal-to-mix ratios (LU) of ``vocal`` in ``vocal +
    backing``, measured independently of vocalmix's numpy BS.1770 code: libebur128
    (pyebur128) gives the 400 ms momentary loudness every 100 ms, which are BS.1770-4's
    gating blocks; the vocal's blocks are gated (-70 LUFS, then -10 LU), those where the
    backing is under -70 LUFS (ended, or digitally silent) are left out, and the mix's
    power is averaged over the same blocks."""
    import pyebur128

    def blocks(x: np.ndarray) -> np.ndarray:
        st = pyebur128.R128State(2, sr, pyebur128.MeasurementMode.MODE_M)
        hop = sr // 10
        out = []
        for i in range(x.shape[0] // hop):
            chunk = np.ascontiguousarray(x[i * hop:(i + 1) * hop], dtype=np.float32)
            st.add_frames(chunk.ravel(), hop)
            if i >= 3:
                out.append(pyebur128.get_loudness_momentary(st))
        return np.array(out)

    lv, lm, lb = blocks(vocal), blocks(vocal + backing), blocks(backing)
    pv, pm = 10 ** ((lv + 0.691) / 10), 10 ** ((lm + 0.691) / 10)
    gate = lv > -70
    gate &= lv > 10 * np.log10(pv[gate].mean()) - 0.691 - 10
    gate &= lb > -70  # where both play: the backing above the absolute gate too
    singing = 10 * np.log10(pv[gate].mean() / pm[gate].mean())
    gm = lm > -70
    gm &= lm > 10 * np.log10(pm[gm].mean()) - 0.691 - 10
    integrated = 10 * np.log10(pv[gate].mean() / pm[gm].mean())
    return float(singing), float(integrated)


def json_differences(now, ref, close: Callable[[str, float, float], bool],
                     path: str = "") -> list[str]:
    """Where the JSON-like ``now`` differs from ``ref``: keys, lengths and non-numbers
    exactly, two numbers (not both integers) by ``close(path, now, ref)``."""
    if isinstance(ref, dict) and isinstance(now, dict):
        if set(now) != set(ref):
            return [f"{path}: keys {sorted(set(now) ^ set(ref))}"]
        return [d for k in ref for d in json_differences(now[k], ref[k], close, f"{path}.{k}")]
    if isinstance(ref, list) and isinstance(now, list):
        if len(now) != len(ref):
            return [f"{path}: {len(now)} items, expected {len(ref)}"]
        return [d for i, (a, b) in enumerate(zip(now, ref, strict=True))
                for d in json_differences(a, b, close, f"{path}[{i}]")]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (now, ref))
    if numbers and not (isinstance(now, int) and isinstance(ref, int)):
        return [] if close(path, float(now), float(ref)) else [f"{path}: {now} (expected {ref})"]
    return [] if now == ref else [f"{path}: {now!r} (expected {ref!r})"]


#: how far a retrained weight or figure may be from the shipped one: the features' FFTs,
#: filters and resampling round differently from one numpy / scipy build to the next (by
#: about 1e-10 relative); anything beyond that is a change of the training or of a
#: measurement the models learn from
RETRAIN_RTOL = 1e-7


def same_within_rounding(a, b) -> list[str]:
    """Where the JSON-like values ``a`` and ``b`` differ beyond :data:`RETRAIN_RTOL`."""
    return json_differences(a, b, lambda _path, u, v: math.isclose(
        u, v, rel_tol=RETRAIN_RTOL, abs_tol=1e-9))


def assert_shipped_model_files(folder: Path, weights: str, meta: str) -> None:
    """A model trained into ``folder`` is the shipped one: the arrays of ``weights``
    (``.npz``) and the metadata ``meta`` (``.json``) equal to the files of the same names
    in ``vocalmix/assets`` to the numeric libraries' rounding (:data:`RETRAIN_RTOL`;
    a near-zero entry to that fraction of its array's largest)."""
    from importlib.resources import as_file, files

    with as_file(files("vocalmix").joinpath("assets", weights)) as shipped:
        new, old = np.load(folder / weights), np.load(shipped)
        assert sorted(new.files) == sorted(old.files), weights
        for k in old.files:
            a, b = new[k], old[k]
            assert a.shape == b.shape and a.dtype == b.dtype, (weights, k)
            if a.dtype.kind in "fc":
                scale = float(np.abs(b).max()) if b.size else 0.0
                np.testing.assert_allclose(a, b, rtol=RETRAIN_RTOL,
                                           atol=RETRAIN_RTOL * scale + 1e-12,
                                           err_msg=f"{weights}: {k}")
            else:
                assert np.array_equal(a, b), (weights, k)
    with as_file(files("vocalmix").joinpath("assets", meta)) as shipped:
        now = json.loads((folder / meta).read_text())
        assert same_within_rounding(now, json.loads(Path(shipped).read_text())) == [], meta


def fail_the_limiter(monkeypatch, after_blocks: int) -> None:
    """Make the offline limiter raise ``RuntimeError("the limiter failed")`` after it has
    finished ``after_blocks`` blocks (for tests of what a failing render leaves)."""
    import vocalmix.core.limiter as limiter

    rows = limiter._offline_rows

    def failing(*a):
        for i, r in enumerate(rows(*a)):
            if i == after_blocks:
                raise RuntimeError("the limiter failed")
            yield r

    monkeypatch.setattr(limiter, "_offline_rows", failing)


def python_prints(code: str, timeout_s: float = 300.0) -> str:
    """The last line ``code`` prints, run in a fresh interpreter (one that has imported
    nothing of the tests' own: for what a process loads or sets at its start); its
    failure fails the test."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=timeout_s)
    return res.stdout.strip().splitlines()[-1]


def run_cli(capture, *argv: str | Path) -> tuple[int, str, str]:
    """``vocalmix argv`` in this process: exit code, stdout, stderr (argparse's exits
    included). ``capture``: pytest's ``capsys``, or ``capfd`` to see what native code
    prints to the file descriptors too."""
    from vocalmix.frontends.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = int(e.code or 0)
    out, err = capture.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    """Exit code 2 and one line on stderr matching ``pattern``: no internal error, no
    traceback, no library warning."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err and "Warning" not in err
    assert re.search(pattern, lines[0]), lines[0]


# --- the web page's server, for the browser tests ---------------------------------

def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The web page and HTTP API (uvicorn on loopback, a store of its own): its URL."""
    uvicorn = pytest.importorskip("uvicorn", reason="server extras not installed")
    pytest.importorskip("fastapi", reason="server extras not installed")
    from vocalmix.frontends.server.app import create_app

    app = create_app(tmp_path_factory.mktemp("store"), cleanup_interval_s=0)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 20
    while not srv.started:
        if time.time() > deadline or not th.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=10)


# --- a take recorded in a browser -------------------------------------------------------

#: ``OPUS_GET_LOOKAHEAD`` at 48 kHz: a take read without its stated pre-skip is this late
OPUS_LOOKAHEAD_SAMPLES = 312
#: a take as a browser karaoke page records it: Web Audio into a MediaRecorder. Called
#: with the samples (float32 at 48 kHz, base64), a MIME type and a reference MIME type
#: (``""``: none): a second recorder of the same stream, started and stopped with the
#: first, in a codec with no delay (Chromium's PCM WebM), so that the page's own lateness
#: (the recorder may start capturing before the source's first render quantum, by up to
#: 9 ms in a loaded CI run) can be told from the reader's. Returns the type the recorder
#: wrote and the files (base64), ``"|"`` between, or ``"state:..."`` when the page's
#: AudioContext did not run
RECORD_TAKE_JS = """async (b64, mime, refMime) => {
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
  const types = refMime ? [mime, refMime] : [mime];
  const recs = types.map((t) => new MediaRecorder(dest.stream, {mimeType: t}));
  const parts = recs.map(() => []);
  const done = recs.map((rec, i) => {
    rec.ondataavailable = (e) => parts[i].push(e.data);
    return new Promise((r) => rec.onstop = r);
  });
  recs.forEach((rec) => rec.start(250));
  src.start();
  await new Promise((r) => setTimeout(r, samples.length / 48 + 500));
  recs.forEach((rec) => rec.stop()); await Promise.all(done);
  const out = [recs[0].mimeType];
  for (const p of parts) {
    const bytes = new Uint8Array(await new Blob(p).arrayBuffer());
    let s = '';
    for (let i = 0; i < bytes.length; i += 8192)
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    out.push(btoa(s));
  }
  return out.join('|');
}"""
#: the reference recording of :data:`RECORD_TAKE_JS` where the browser has it
PCM_WEBM = "audio/webm;codecs=pcm"


def record_args(mime: str, reference: str = "") -> list[str]:
    """:data:`RECORD_TAKE_JS`'s arguments: clicks every 0.5 s from 0.25 s (five 20 ms
    1 kHz bursts at 0.5 of full scale in 3 s at 48 kHz, base64 float32), ``mime`` and the
    ``reference`` type (``""``: none)."""
    import base64

    sr = 48000
    x = np.zeros(3 * sr, np.float32)
    t = np.arange(int(0.02 * sr)) / sr
    for k in range(5):
        i = int((0.25 + 0.5 * k) * sr)
        x[i:i + t.size] = 0.5 * np.sin(2 * np.pi * 1000 * t)
    return [base64.b64encode(x.tobytes()).decode(), mime, reference]


def recorded_take(value: str) -> tuple[str, bytes, bytes | None]:
    """``(the MIME type written, the file, the reference file or None)`` of
    :data:`RECORD_TAKE_JS`'s result."""
    import base64

    assert not value.startswith("state:"), (
        f"the page's AudioContext did not run ({value}): no audio device reached")
    written, *files = value.split("|")
    return (written, base64.b64decode(files[0]),
            base64.b64decode(files[1]) if len(files) > 1 else None)


def planned_frames(take: bytes, folder: Path) -> int:
    """The length (samples) the long-form reader plans for the recorded ``take`` before
    decoding it (a browser's recording states none: its packets are counted)."""
    from vocalmix.core.audio import AudioReader

    path = folder / "planned.take"
    path.write_bytes(take)
    return AudioReader(path, label="vocal").frames


def clicks_late(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """How many samples late each click of :func:`record_args` decodes (its first
    sample over 0.1, against where it was written)."""
    on = np.flatnonzero(np.abs(samples[:, 0]) > 0.1)
    assert on.size, "the take is silent"
    starts = on[np.r_[True, np.diff(on) > sample_rate // 10]]
    assert len(starts) == 5, starts
    expected = (0.25 + 0.5 * np.arange(5)) * sample_rate + 2  # (0.1 is passed 2 in)
    return starts - expected
