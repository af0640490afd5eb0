"""vocalmix studio: an HTTP API for karaoke apps and a local web page, one FastAPI app.

    vocalmix serve [--host 127.0.0.1] [--port 8000] [--storage DIR] [--max-upload-mb 100]
                   [--ttl-s 3600]

**Storage.** Every mix lives in its own folder ``<storage>/<id>/`` under an unguessable id
(``secrets.token_urlsafe``, 144 random bits). An id is checked against a strict pattern
before it is joined to the storage path, and the joined path is resolved and checked to be
a direct child of the storage folder, so no request reaches a file outside it. Uploads are
parsed as they stream in and written straight into the mix's folder (nothing is spooled to
the system's temp folder); the request body is counted as it arrives and refused with 413
past the limit, whatever Content-Length says. Folders whose last change is older than the
time to live are removed by a sweeper thread (:meth:`Store.sweep`).

**Concurrency.** Each mix has its own lock; a mix being made or re-rendered holds it, so
two edits of one mix are applied one after the other, while different mixes run in
parallel (at most ``max_concurrent_mixes`` new mixes at a time; the rest wait their turn).

**Errors** are JSON ``{"detail": "<what is wrong and what to do>"}``: 404 unknown id (or
expired), 409 the mix is still being made, 413 upload too large, 415 not decodable audio
(or not a multipart upload), 422 invalid params, targets, form fields or audio content.

FastAPI is imported only inside :func:`create_app`: the core does not need it, and
``vocalmix serve`` explains how to install the extras when they are missing.
"""

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vocalmix._version import __version__
from vocalmix.core.audio import prepare_pair, read_audio, write_audio, write_text
from vocalmix.core.errors import (
    AudioError,
    ParamsError,
    TargetUnreachableError,
    UnreadableAudioError,
    VocalmixError,
)
from vocalmix.core.params import DECAY_BANDS_HZ, MixParams, Reverb
from vocalmix.core.progress import ProgressEvent

if TYPE_CHECKING:
    from fastapi import FastAPI

MB = 2**20
DEFAULT_MAX_UPLOAD_BYTES = 100 * MB
DEFAULT_TTL_S = 3600.0
ID_RE = re.compile(r"[A-Za-z0-9_-]{24}")  # secrets.token_urlsafe(18): 24 characters
AUDIO_KINDS = ("mix", "vocal", "vocal_dry", "backing", "plain")
STEM_KINDS = ("mix", "vocal", "vocal_dry", "backing")
TARGET_NAMES = ("vocal_to_mix_lu", "vocal_lra_lu", "reverb_decay_s")
FORM_FILES = ("vocal", "backing")
FORM_FIELDS = ("method", "params", "reverb_preset", "fold", "wait", *TARGET_NAMES)
FOLD_MODES = ("error", "mean", "first2")
PEAK_COLUMNS = 1200
TRASH_PREFIX = ".removing-"
DEMO_SAMPLE_RATE = 44100

# pipeline progress messages (by prefix) -> fraction of the work done
_STAGES = (
    ("waiting", 0.02),
    ("decoding", 0.04),
    ("synthesising", 0.04),
    ("model", 0.1),
    ("baseline", 0.1),
    ("resolving the compressor", 0.25),
    ("resolving the vocal gain", 0.4),
    ("rendering", 0.6),
    ("measuring", 0.75),
    ("writing", 0.85),
    ("done", 1.0),
)


class ApiError(Exception):
    """An error with its HTTP status and a message a person can act on."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _not_found(mid: str) -> ApiError:
    shown = mid if len(mid) <= 40 else mid[:40] + "..."
    return ApiError(404, f"no mix with id {shown!r}: it never existed, was deleted, or "
                         "expired (mixes are kept for the server's time to live)")


def _fraction(stage: str) -> float | None:
    for prefix, f in _STAGES:
        if stage.startswith(prefix):
            return f
    return None


# --- storage -----------------------------------------------------------------------------


class Store:
    """Mix folders under one root, with per-id locks, live progress and time-to-live
    clean-up.

    Args:
        root: the storage folder (created if missing).
        ttl_s: a mix whose folder has not changed for this long is removed by
            :meth:`sweep`, s.
    """

    def __init__(self, root: Path, ttl_s: float) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = float(ttl_s)
        self._locks: dict[str, threading.Lock] = {}
        self._progress: dict[str, tuple[str, float]] = {}
        self._guard = threading.Lock()

    # ids and paths
    def new(self) -> tuple[str, Path]:
        """A fresh unguessable id (144 random bits) and its newly made folder."""
        while True:
            mid = secrets.token_urlsafe(18)
            d = self.root / mid
            try:
                d.mkdir()
            except FileExistsError:  # pragma: no cover - astronomically unlikely
                continue
            return mid, d

    def path(self, mid: str) -> Path:
        """The folder of mix ``mid``; :class:`ApiError` 404 for a malformed or unknown id.

        The id must match ``ID_RE`` before it touches the file system, and the resolved
        folder must be a direct child of the storage root (no ``..``, no symlink out).
        """
        if not isinstance(mid, str) or not ID_RE.fullmatch(mid):
            raise _not_found(str(mid))
        d = (self.root / mid).resolve()
        if d.parent != self.root or not d.is_dir():
            raise _not_found(mid)
        return d

    def lock(self, mid: str) -> threading.Lock:
        """The lock of one mix (created on first use)."""
        with self._guard:
            return self._locks.setdefault(mid, threading.Lock())

    @contextlib.contextmanager
    def locked(self, mid: str) -> Iterator[Path]:
        """Hold the mix's lock; 404 if it is unknown or was removed while waiting."""
        d = self.path(mid)
        with self.lock(mid):
            if not d.is_dir():
                raise _not_found(mid)
            yield d

    # files
    def read_json(self, d: Path, name: str) -> Any:
        """A JSON file of a mix folder (404 if the mix vanished meanwhile)."""
        try:
            return json.loads((d / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _not_found(d.name) from None

    def write_meta(self, d: Path, **changes: Any) -> dict[str, Any]:
        """Update ``meta.json`` (atomically) and return the new contents."""
        try:
            meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            meta = {"created": time.time(), "revision": 0}
        meta.update(changes)
        meta["updated"] = time.time()
        write_text(d / "meta.json", json.dumps(meta, allow_nan=False), force=True)
        return meta

    # live progress of a job
    def set_progress(self, mid: str, stage: str, fraction: float | None = None) -> None:
        """Record the stage a job reached and the fraction of the work done (given, or
        from the server's own stage names)."""
        with self._guard:
            old = self._progress.get(mid, ("", 0.0))[1]
            f = _fraction(stage) if fraction is None else fraction
            self._progress[mid] = (stage, old if f is None else max(old, f))

    def progress(self, mid: str) -> tuple[str, float] | None:
        with self._guard:
            return self._progress.get(mid)

    def clear_progress(self, mid: str) -> None:
        with self._guard:
            self._progress.pop(mid, None)

    # removal
    def _forget(self, mid: str) -> None:
        with self._guard:
            self._locks.pop(mid, None)
            self._progress.pop(mid, None)

    def _remove(self, d: Path) -> None:
        """Rename the folder out of sight (atomic: readers see all of it or nothing),
        then delete it."""
        trash = self.root / f"{TRASH_PREFIX}{d.name}-{secrets.token_hex(4)}"
        try:
            os.rename(d, trash)
        except OSError:
            trash = d
        shutil.rmtree(trash, ignore_errors=True)

    def delete(self, mid: str) -> None:
        """Remove a mix and its files (waits for a job on it to finish)."""
        with self.locked(mid) as d:
            self._remove(d)
        self._forget(mid)

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove mixes unchanged for longer than the time to live; returns their ids.

        ``now``: the clock to compare with (Unix time, s); tests pass a future time. A mix
        whose lock is held (being made or re-rendered) is left for the next sweep.
        """
        now = time.time() if now is None else float(now)
        removed = []
        for d in sorted(self.root.iterdir()):
            if d.name.startswith(TRASH_PREFIX) and d.is_dir() and not d.is_symlink():
                shutil.rmtree(d, ignore_errors=True)  # left over by an interrupted removal
                continue
            if not ID_RE.fullmatch(d.name) or d.is_symlink() or not d.is_dir():
                continue
            try:
                age = now - d.stat().st_mtime
            except OSError:
                continue
            if age <= self.ttl_s:
                continue
            lock = self.lock(d.name)
            if not lock.acquire(blocking=False):
                continue
            try:
                self._remove(d)
            finally:
                lock.release()
            self._forget(d.name)
            removed.append(d.name)
        return removed


# --- audio helpers -----------------------------------------------------------------------


def _write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """24-bit PCM WAV, or 32-bit float when a sample reaches full scale (never clip)."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    write_audio(path, x, sample_rate, force=True, subtype="FLOAT" if peak >= 1.0 else "PCM_24")


def waveform_peaks(x: np.ndarray, columns: int = PEAK_COLUMNS) -> dict[str, list[float]]:
    """Per-column peak and RMS of ``|x|`` (the louder channel), for drawing a waveform.

    ``x``: float ``(n, channels)``. Returns ``{"peak": [...], "rms": [...]}``, linear
    full-scale amplitude, ``min(columns, n)`` values each.
    """
    a = np.abs(np.asarray(x, dtype=np.float32)).max(axis=1)
    n = len(a)
    cols = max(1, min(columns, n))
    starts = np.linspace(0, n, cols + 1).astype(np.int64)[:-1]
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    peak = np.maximum.reduceat(a, starts)
    rms = np.sqrt(np.add.reduceat(a.astype(np.float64) ** 2, starts) / counts)
    return {"peak": np.round(peak, 4).tolist(), "rms": np.round(rms, 4).tolist()}


def _load_inputs(d: Path) -> tuple[np.ndarray, np.ndarray, int]:
    try:
        v = read_audio(d / "vocal_in.wav", label="stored vocal")
        b = read_audio(d / "backing_in.wav", label="stored backing")
    except AudioError as e:  # the folder vanished or was tampered with
        raise ApiError(404, f"the inputs of mix {d.name!r} are gone ({e})") from None
    return v.samples, b.samples, v.sample_rate


def _save_result(store: Store, d: Path, params: MixParams, rendered: Any,
                 notes: list[str], progress: Callable[[str], None]) -> dict[str, Any]:
    """Write the rendered audio, waveform peaks, params and meta of a finished render."""
    progress("writing the audio files")
    sr = rendered.sample_rate
    peaks: dict[str, Any] = {"sample_rate": sr, "duration_s": rendered.mix.shape[0] / sr,
                             "columns": 0}
    for kind in STEM_KINDS:
        x = getattr(rendered, kind)
        _write_wav(d / f"{kind}.wav", x, sr)
        if kind != "vocal_dry":
            peaks[kind] = waveform_peaks(x)
            peaks["columns"] = len(peaks[kind]["peak"])
    with contextlib.suppress(FileNotFoundError):
        (d / "plain.wav").unlink()  # its level follows the mix's: made again on request
    write_text(d / "peaks.json", json.dumps(peaks), force=True)
    write_text(d / "params.json", params.to_json(), force=True)
    rev = int(store.read_json(d, "meta.json").get("revision", 0)) + 1
    meta = store.write_meta(d, status="done", stage="done", error=None, notes=notes,
                            revision=rev)
    os.utime(d)  # the time to live counts from the last change
    return meta


def _plain_sum(d: Path, params: MixParams, meta: dict[str, Any]) -> Path:
    """The plain sum of the two inputs at the mix's integrated loudness (A/B switch).

    It goes through the same master stage as the mix (so it cannot clip either) and its
    gain is corrected until its loudness is within 0.1 LU of the mix's. Cached until the
    next render.
    """
    from vocalmix.core.measure import integrated_loudness
    from vocalmix.core.render import db_to_gain, master_stage

    out = d / "plain.wav"
    info_path = d / "plain.json"
    if out.is_file() and info_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(info_path.read_text()).get("revision") == meta.get("revision"):
                return out
    v, b, sr = _load_inputs(d)
    plain = v + b
    target = params.achieved.mix_integrated_lufs
    i0 = integrated_loudness(plain, sr)
    g = 0.0 if target is None or not math.isfinite(i0) else float(np.clip(target - i0, -40, 40))
    y, i, red = plain, i0, 0.0
    for _ in range(4):
        y, red, _tp = master_stage(plain * np.float32(db_to_gain(g)), sr, params.master)
        i = integrated_loudness(y, sr)
        if target is None or not math.isfinite(i) or abs(i - target) < 0.1:
            break
        g = float(np.clip(g + (target - i), -40, 40))
    _write_wav(out, y, sr)
    info = {"revision": meta.get("revision"), "gain_db": g,
            "integrated_lufs": i if math.isfinite(i) else None,
            "mix_integrated_lufs": target, "master_gain_reduction_db": red}
    write_text(info_path, json.dumps(info), force=True)
    return out


def _vocal_eq_response_db(params: MixParams, freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Magnitude response (dB) of the vocal's high-pass and EQ bands at ``freqs_hz``."""
    from scipy.signal import butter, sosfreqz

    from vocalmix.estimators.masking import bands_response_db

    nyq_safe = 0.45 * sample_rate
    bands = [(e.kind, min(e.freq_hz, nyq_safe), e.gain_db, e.q)
             for e in params.vocal.eq_bands if e.gain_db]
    out = bands_response_db(bands, freqs_hz, sample_rate)
    hp = params.vocal.highpass
    if hp.enabled:  # pedalboard's HighpassFilter: 12 dB/octave (2nd order)
        sos = butter(2, min(hp.cutoff_frequency_hz, nyq_safe), "highpass", fs=sample_rate,
                     output="sos")
        _, h = sosfreqz(sos, worN=freqs_hz, fs=sample_rate)
        out = out + 20 * np.log10(np.maximum(np.abs(h), 1e-9))
    return np.asarray(out, dtype=np.float64)


def _analysis(d: Path, params: MixParams) -> dict[str, Any]:
    """Masking of the vocal by the backing per critical band, and the vocal EQ's curve."""
    from vocalmix.estimators.masking import analyse_masking

    cache = d / "analysis.json"
    try:
        a = json.loads(cache.read_text())
    except (FileNotFoundError, ValueError):
        v, b, sr = _load_inputs(d)
        m = analyse_masking(v, b, sr)
        a = {"sample_rate": sr, "band_edges_hz": m.band_edges_hz.tolist(),
             "band_centres_hz": m.band_centres_hz.tolist(), "vocal_db": m.vocal_db.tolist(),
             "backing_db": m.backing_db.tolist(), "masking_db": m.masking_db.tolist(),
             "weight": m.weight.tolist(), "proposed_gain_db": m.gain_db.tolist(),
             "suggested_highpass_hz": m.highpass_hz}
        write_text(cache, json.dumps(a), force=True)
    sr = int(a["sample_rate"])
    eq = params.vocal.eq_bands
    hp = params.vocal.highpass
    freqs = np.geomspace(20.0, min(20000.0, 0.45 * sr), 240)
    curve = _vocal_eq_response_db(params, freqs, sr)
    # the vocal's band levels after the EQ: each band's level plus the EQ's mean power
    # gain over the band (16 log-spaced points)
    edges = np.asarray(a["band_edges_hz"])
    after = []
    for lo, hi, lvl in zip(edges[:-1], edges[1:], a["vocal_db"], strict=True):
        r = _vocal_eq_response_db(params, np.geomspace(lo, min(hi, 0.45 * sr), 16), sr)
        after.append(round(float(lvl + 10 * np.log10(np.mean(10 ** (r / 10)))), 3))
    return {**a, "vocal_after_eq_db": after, "eq_freqs_hz": freqs.tolist(),
            "eq_response_db": np.round(curve, 3).tolist(),
            "eq_bands": [{"kind": e.kind, "freq_hz": e.freq_hz, "gain_db": e.gain_db,
                          "q": e.q, "source": e.source} for e in eq],
            "highpass_hz": hp.cutoff_frequency_hz if hp.enabled else None}


# --- request parsing ---------------------------------------------------------------------


def _parse_targets(raw: dict[str, Any], where: str) -> dict[str, float]:
    """Target overrides from a form or JSON object, range-checked (422 with the range)."""
    unknown = set(raw) - set(TARGET_NAMES)
    if unknown:
        raise ApiError(422, f"unknown target(s) in {where}: {', '.join(sorted(unknown))}; "
                            f"the targets are {', '.join(TARGET_NAMES)}")
    out: dict[str, float] = {}
    for k, v in raw.items():
        if v is None or v == "":
            continue
        try:
            if isinstance(v, bool):
                raise ValueError
            out[k] = float(v)
        except (TypeError, ValueError):
            raise ApiError(422, f"{k} must be a number, got {v!r}") from None
    try:
        MixParams().with_targets(**out)
    except ParamsError as e:
        raise ApiError(422, str(e)) from None
    return out


def _check_preset(name: str | None) -> str | None:
    if not name:
        return None
    from vocalmix.estimators.presets import apply_preset

    try:
        apply_preset(MixParams(), name)
    except ParamsError as e:
        raise ApiError(422, str(e)) from None
    return name


def _preset_reverb(name: str) -> Reverb | None:
    """The reverb a preset sets (:func:`vocalmix.estimators.presets.preset_reverb`, which reads the
    synthetic and the older freeverb format); ``None`` for an entry it cannot read."""
    from vocalmix.estimators.presets import preset_reverb

    try:
        return preset_reverb(name)
    except ParamsError:
        return None


def _parse_params(doc: Any, where: str) -> MixParams:
    try:
        if isinstance(doc, str):
            return MixParams.from_json(doc)
        return MixParams.from_dict(doc)
    except ParamsError as e:
        raise ApiError(422, f"{where}: {e}") from None


def _safe_name(filename: str | None, fallback: str) -> str:
    """A file name's stem, reduced to harmless characters, for labels and downloads."""
    stem = Path((filename or "").replace("\\", "/")).name.rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9 _.-]+", "_", stem).strip(" ._")[:60]
    return stem or fallback


async def _read_multipart(request: Any, d: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Stream a ``multipart/form-data`` body: files ``vocal`` and ``backing`` go straight
    to ``d/upload_<name>``; the other fields are small text values.

    Returns ``(fields, filenames)``. Raises :class:`ApiError` 415 (not multipart) or 422
    (malformed, unknown or missing fields).
    """
    try:
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:  # python-multipart before 0.0.13 names its module "multipart"
        from multipart.exceptions import FormParserError  # type: ignore[no-redef]
        from multipart.multipart import (  # type: ignore[no-redef]
            MultipartParser,
            parse_options_header,
        )

    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise ApiError(415, "send the files as multipart/form-data with the parts 'vocal' "
                            "and 'backing' (e.g. curl -F vocal=@take.wav -F backing=@track.wav)")
    boundary = opts.get(b"boundary")
    if not boundary:
        raise ApiError(422, "the multipart upload has no boundary in its Content-Type")

    fields: dict[str, str] = {}
    filenames: dict[str, str] = {}
    cur: dict[str, Any] = {}
    headers: dict[bytes, bytes] = {}
    hname = bytearray()
    hvalue = bytearray()
    text_limit = {"params": 1 * MB}

    def on_part_begin() -> None:
        cur.clear()
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        hname.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        hvalue.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(hname).lower()] = bytes(hvalue)
        hname.clear()
        hvalue.clear()

    def on_headers_finished() -> None:
        _disp, o = parse_options_header(headers.get(b"content-disposition", b""))
        name = o.get(b"name", b"").decode("utf-8", "replace")
        if name in FORM_FILES:
            if name in filenames:
                raise ApiError(422, f"the form has two '{name}' parts: send one of each")
            filenames[name] = o.get(b"filename", b"").decode("utf-8", "replace")
            cur["file"] = open(d / f"upload_{name}", "wb")  # closed on part end
        elif name in FORM_FIELDS:
            if len(fields) + len(filenames) > 16:
                raise ApiError(422, "too many form fields")
            cur["text"] = bytearray()
            cur["limit"] = text_limit.get(name, 1024)
        else:
            raise ApiError(422, f"unknown form field {name!r}: send the files 'vocal' and "
                                f"'backing', optionally {', '.join(FORM_FIELDS)}")
        cur["name"] = name

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if "file" in cur:
            cur["file"].write(data[start:end])
        else:
            cur["text"].extend(data[start:end])
            if len(cur["text"]) > cur["limit"]:
                raise ApiError(422, f"form field {cur['name']!r} is too long")

    def on_part_end() -> None:
        if "file" in cur:
            cur.pop("file").close()
        elif "text" in cur:
            text = bytes(cur["text"]).decode("utf-8", "replace")
            if cur["name"] == "params" and "params" in fields:
                raise ApiError(422, "the form has two 'params' parts")
            fields[cur["name"]] = text.strip()

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    })
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise ApiError(422, "the multipart upload is malformed; send it with a standard "
                            "HTTP client (curl -F, requests, fetch with FormData)") from None
    finally:
        f = cur.pop("file", None)
        if f is not None:
            f.close()
    missing = [k for k in FORM_FILES if k not in filenames]
    if missing:
        raise ApiError(422, f"missing file(s): {' and '.join(missing)}; send both 'vocal' "
                            "and 'backing' as multipart/form-data file parts")
    return fields, filenames


# --- the upload-size limit ---------------------------------------------------------------


class UploadLimit:
    """ASGI middleware: 413 JSON once a request body passes ``max_bytes``.

    A declared Content-Length over the limit is refused before anything is read; the
    body is also counted as it streams in (chunked uploads, lying headers): past the
    limit the 413 goes out at once, the application sees a disconnected client, and its
    own response is dropped.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    def _message(self) -> bytes:
        mb = self.max_bytes / MB
        size = f"{mb:.0f} MB" if mb >= 1 else f"{self.max_bytes} bytes"
        return json.dumps({"detail": (
            f"the upload is larger than this server's limit of {size}: send a shorter "
            "take, a compressed file (FLAC, OGG, MP3), or start the server with a higher "
            "--max-upload-mb")}).encode()

    async def _refuse(self, send: Any) -> None:
        body = self._message()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers") or []:
            if k == b"content-length" and v.isdigit() and int(v) > self.max_bytes:
                await self._refuse(send)
                return
        seen = 0
        refused = False
        started = False

        async def limited_receive() -> Any:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return msg

        async def tracking_send(msg: Any) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent: drop the application's own response
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not refused:
                raise


# --- the application ---------------------------------------------------------------------


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise VocalmixError(f"${name} must be a number, got {raw!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise VocalmixError(f"${name} must be positive, got {raw!r}")
    return v


def create_app(
    storage_dir: Path | str | None = None,
    *,
    max_upload_bytes: int | None = None,
    ttl_s: float | None = None,
    cleanup_interval_s: float = 60.0,
    max_concurrent_mixes: int | None = None,
) -> "FastAPI":
    """The vocalmix studio application.

    Args:
        storage_dir: folder for uploads and renders; default ``$VOCALMIX_STORAGE``, else
            ``vocalmix-studio`` in the system's temp folder.
        max_upload_bytes: largest request body, bytes; default ``$VOCALMIX_MAX_UPLOAD_MB``
            MB, else 100 MB.
        ttl_s: a mix unchanged for this long is removed, s; default ``$VOCALMIX_TTL_S``,
            else 3600 s.
        cleanup_interval_s: how often the sweeper runs while the app is being served, s
            (0 turns it off; :meth:`Store.sweep` on ``app.state.store`` runs it by hand).
        max_concurrent_mixes: new mixes computed at once (the rest wait); default the
            number of CPUs, at least 2.
    """
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    root = Path(storage_dir or os.environ.get("VOCALMIX_STORAGE")
                or Path(tempfile.gettempdir()) / "vocalmix-studio")
    if max_upload_bytes is None:
        max_upload_bytes = int(_env_float("VOCALMIX_MAX_UPLOAD_MB", 100.0) * MB)
    if ttl_s is None:
        ttl_s = _env_float("VOCALMIX_TTL_S", DEFAULT_TTL_S)
    store = Store(root, ttl_s)
    slots = threading.BoundedSemaphore(max_concurrent_mixes or max(2, os.cpu_count() or 2))
    static_dir = Path(__file__).with_name("static")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        th = None
        stop = threading.Event()
        if cleanup_interval_s > 0:
            def sweeper() -> None:
                while not stop.wait(cleanup_interval_s):
                    with contextlib.suppress(Exception):
                        store.sweep()

            th = threading.Thread(target=sweeper, name="vocalmix-sweeper", daemon=True)
            th.start()
        yield
        stop.set()
        if th is not None:
            th.join(timeout=5)

    app = FastAPI(
        title="vocalmix studio",
        version=__version__,
        lifespan=lifespan,
        description=(
            "Mix a vocal into a backing track and get the mix, its stems and the editable "
            "mixing parameters (a `vocalmix.core.params` document, schema `MixParams`) back.\n\n"
            "`POST /api/mixes` with the two files; edit with `PUT /api/mixes/{id}/params`; "
            "fetch audio from the `links`. Every error is JSON `{\"detail\": \"...\"}` with "
            "a message that says what to do: 404 unknown or expired id, 409 the mix is "
            "still being made, 413 upload over the limit, 415 not decodable audio, 422 "
            f"invalid params, targets or audio. Mixes are removed {ttl_s:g} s after their "
            "last change."),
    )
    app.state.store = store
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.state.ttl_s = ttl_s

    # --- response models (for the OpenAPI schema) ---
    class Progress(BaseModel):
        stage: str = Field(description="what the server is doing")
        fraction: float = Field(description="share of the work done, 0 to 1")

    class ErrorInfo(BaseModel):
        status: int = Field(description="the HTTP status this failure maps to")
        detail: str

    class Mix(BaseModel):
        id: str = Field(description="unguessable id of the mix (24 characters)")
        status: str = Field(description="mixing, done or failed")
        revision: int = Field(description="counts renders; changes whenever the audio does")
        progress: Progress
        params: dict[str, Any] | None = Field(
            None, description="the MixParams document (see the MixParams schema), with "
                              "`achieved` figures; null until the mix is done")
        notes: list[str] = Field(default_factory=list, description="what the pipeline did")
        error: ErrorInfo | None = Field(None, description="why the mix failed")
        name: str = Field(description="label for downloads (from the vocal's file name)")
        sample_rate: int | None = Field(None, description="Hz")
        duration_s: float | None = Field(None, description="s")
        links: dict[str, str] = Field(description="URLs of the audio (WAV), params and views")

    class Error(BaseModel):
        detail: str = Field(description="what is wrong and what to do about it")

    class Preset(BaseModel):
        name: str = Field(description="the preset's name (for `reverb_preset`)")
        origin: str | None = Field(
            None, description="what it was fitted to: `real` (a measured room's impulse "
                              "response) or the plug-in whose reverb it matches "
                              "(`pedalboard`, `calf`, `tap`); null if not recorded")
        source: str | None = Field(None, description="the impulse response or plug-in "
                                                     "setting it was fitted to")
        type: str = Field(description="reverb type: `freeverb` or `synthetic`")
        decay_s: float = Field(
            description="reverb time T30, s: at 1 kHz for `synthetic` (each octave band's "
                        "is `decay_s` x its `band_decay_ratios` entry), the broadband T30 "
                        "the room size and damping give for `freeverb`")
        band_decay_ratios: list[float] | None = Field(
            None, description="T30 per octave band "
                              f"({', '.join(f'{b:g}' for b in DECAY_BANDS_HZ)} Hz) over the "
                              "1 kHz T30, dimensionless (the 1 kHz entry is 1); null for "
                              "`freeverb`, which has no per-band setting")
        wet_level_db: float = Field(
            description="dB: reverberant-to-direct energy ratio of the send for "
                        "`synthetic`, gain on the reverb's output for `freeverb`")
        pre_delay_ms: float = Field(description="delay of the wet signal, ms")
        width: float | None = Field(
            None, description="stereo width of the wet signal, 0 (mono) to 1; null if the "
                              "preset leaves the mix's width as it is")
        room_size: float | None = Field(None, description="`freeverb` only: room size, "
                                                          "0 to 1; null for `synthetic`")
        damping: float | None = Field(None, description="`freeverb` only: damping, 0 to 1; "
                                                        "null for `synthetic`")

    def errs(*codes: int) -> dict[int | str, dict[str, Any]]:
        text = {404: "unknown or expired id", 409: "the mix is still being made",
                413: "upload over the limit", 415: "not decodable audio / not multipart",
                422: "invalid params, targets, fields or audio content"}
        return {c: {"model": Error, "description": text[c]} for c in codes}

    # --- helpers ---
    def links(mid: str) -> dict[str, str]:
        base = f"/api/mixes/{mid}"
        out = {k: f"{base}/audio/{k}" for k in AUDIO_KINDS}
        out.update(self=base, params_file=f"{base}/params.json", edit=f"{base}/params",
                   analysis=f"{base}/analysis", peaks=f"{base}/peaks")
        return out

    def view(mid: str, d: Path) -> dict[str, Any]:
        meta = store.read_json(d, "meta.json")
        status = meta.get("status", "failed")
        params = store.read_json(d, "params.json") if status == "done" else None
        live = store.progress(mid)
        if status == "done":
            prog = {"stage": "done", "fraction": 1.0}
        elif live is not None:
            prog = {"stage": live[0], "fraction": live[1]}
        else:
            stage = meta.get("stage", status)
            prog = {"stage": stage, "fraction": _fraction(stage) or 0.0}
        return {"id": mid, "status": status, "revision": int(meta.get("revision", 0)),
                "progress": prog, "params": params, "notes": meta.get("notes", []),
                "error": meta.get("error"), "name": meta.get("name", "vocalmix"),
                "sample_rate": meta.get("sample_rate"), "duration_s": meta.get("duration_s"),
                "links": links(mid)}

    def require_done(d: Path) -> dict[str, Any]:
        meta = store.read_json(d, "meta.json")
        if meta.get("status") == "mixing":
            raise ApiError(409, "the mix is still being made: poll GET /api/mixes/{id} "
                                "until its status is done")
        if meta.get("status") != "done":
            err = (meta.get("error") or {}).get("detail", "unknown reason")
            raise ApiError(409, f"this mix failed ({err}); upload the files again")
        return meta

    def decode_upload(d: Path, filenames: dict[str, str], fold: str
                      ) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
        labels = {k: f"{k} {filenames.get(k) or ''}".strip() for k in FORM_FILES}

        def scrub(msg: str) -> str:
            """The message without the server's own paths (labels instead)."""
            msg = re.sub(r"Error opening '[^']*': ?", "", msg)
            if "fold them" in msg:  # a ChannelLayoutError: say how to fold, in form terms
                msg += " (send the form field fold=mean or fold=first2)"
            for k in FORM_FILES:
                msg = msg.replace(str(d / f"upload_{k}"), labels[k])
            return msg.replace(str(store.root), "<storage>")

        try:
            va = read_audio(d / "upload_vocal", label=labels["vocal"], fold=fold)
            ba = read_audio(d / "upload_backing", label=labels["backing"], fold=fold)
            v, b, sr, notes = prepare_pair(va, ba)
        except UnreadableAudioError as e:
            raise ApiError(415, scrub(str(e))) from None
        except AudioError as e:
            raise ApiError(422, scrub(str(e))) from None
        return v, b, sr, [scrub(n) for n in notes]

    def store_inputs(d: Path, v: np.ndarray, b: np.ndarray, sr: int) -> None:
        write_audio(d / "vocal_in.wav", v, sr, force=True, subtype="FLOAT")
        write_audio(d / "backing_in.wav", b, sr, force=True, subtype="FLOAT")
        for k in FORM_FILES:
            with contextlib.suppress(FileNotFoundError):
                (d / f"upload_{k}").unlink()

    def run_mix(mid: str, d: Path, v: np.ndarray, b: np.ndarray, sr: int, *, method: str,
                base: MixParams | None, preset: str | None, targets: dict[str, float],
                notes: list[str]) -> None:
        """Estimate, resolve, render and save one new mix (in a worker thread)."""
        from vocalmix.estimators.presets import apply_preset
        from vocalmix.pipeline import choose_targets, mix

        def progress(ev: ProgressEvent) -> None:
            # the pipeline's fractions span 0.05..0.85 of the job: decoding comes before,
            # writing the files after
            f = None if ev.fraction is None else 0.05 + 0.8 * ev.fraction
            store.set_progress(mid, ev.message, f)

        store.set_progress(mid, "waiting for a free worker")
        with slots, store.lock(mid):
            if not d.is_dir():
                raise _not_found(mid)
            try:
                if preset:
                    if base is None:
                        base, _n = choose_targets(v, b, sr, method, progress)
                    base = apply_preset(base, preset)
                params, rendered, est = mix(v, b, sr, method=method, base=base,
                                            progress=progress, **targets)
            except (ParamsError, TargetUnreachableError) as e:
                raise ApiError(422, str(e)) from None
            _save_result(store, d, params, rendered, notes + list(est.notes),
                         lambda msg: store.set_progress(mid, msg))
            store.clear_progress(mid)

    def start_mix(mid: str, d: Path, wait: bool, job: Callable[[], None]) -> dict[str, Any]:
        """Run ``job`` now (``wait``) or in a background thread; returns the mix's view."""
        if wait:
            try:
                job()
            except BaseException:
                shutil.rmtree(d, ignore_errors=True)
                store.clear_progress(mid)
                raise
            return view(mid, d)

        def background() -> None:
            try:
                job()
            except Exception as e:  # recorded for GET; the page shows the message
                status = e.status if isinstance(e, ApiError) else 500
                detail = e.detail if isinstance(e, ApiError) else f"{type(e).__name__}: {e}"
                with contextlib.suppress(Exception):
                    if d.is_dir():
                        store.write_meta(d, status="failed", stage="failed",
                                         error={"status": status, "detail": detail})
                store.clear_progress(mid)

        threading.Thread(target=background, name=f"vocalmix-mix-{mid[:6]}", daemon=True).start()
        return view(mid, d)

    def parse_wait(raw: str | None) -> bool:
        if raw is None or raw == "":
            return True
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise ApiError(422, f"wait must be true or false, got {raw!r}")

    def default_method() -> str:
        try:
            from vocalmix.estimators.registry import default_method as dm

            return dm()
        except ImportError:  # pragma: no cover - models always ships with the core
            return "baseline"

    # --- endpoints ---
    @app.post(
        "/api/mixes", status_code=201, response_model=Mix,
        summary="Upload a vocal and a backing track; get the mix and its params",
        response_description="the mix is done: its id, params (with achieved figures) and "
                             "links to the audio",
        description=(
            "multipart/form-data: files `vocal` and `backing` (WAV, FLAC, OGG, MP3, AIFF; "
            "mono or stereo; the backing is resampled to the vocal's rate), optional "
            "`method` (`baseline` or `model`), target overrides `vocal_to_mix_lu` (LU, "
            "-20 to -0.5), `vocal_lra_lu` (LU, 1 to 30), `reverb_decay_s` (s, 0.2 to 12), "
            "`reverb_preset` (a name from `GET /api/presets`), `params` (a params document "
            "whose settings and targets to start from), `fold` (files of more than two "
            "channels: `mean` averages them, `first2` keeps channels 1-2; default: refuse) "
            "and `wait` (default true: answer "
            "`201` when the mix is done; false: answer `202` at once with status `mixing` "
            "and poll `GET /api/mixes/{id}`, which reports the progress)."),
        responses={202: {"model": Mix, "description": "accepted (wait=false): mixing"},
                   **errs(413, 415, 422)},
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": list(FORM_FILES), "properties": {
                "vocal": {"type": "string", "format": "binary", "description": "vocal take"},
                "backing": {"type": "string", "format": "binary",
                            "description": "backing track"},
                "method": {"type": "string", "enum": ["baseline", "model"]},
                "vocal_to_mix_lu": {"type": "number", "description": "target, LU"},
                "vocal_lra_lu": {"type": "number", "description": "target, LU"},
                "reverb_decay_s": {"type": "number", "description": "target, s"},
                "reverb_preset": {"type": "string"},
                "params": {"type": "string", "description": "params document (JSON)"},
                "fold": {"type": "string", "enum": list(FOLD_MODES), "default": "error"},
                "wait": {"type": "boolean", "default": True}}}}}}},
    )
    async def create_mix(request: Request) -> Any:
        mid, d = store.new()
        try:
            store.write_meta(d, status="mixing", stage="uploading", name="vocalmix",
                             revision=0)
            fields, filenames = await _read_multipart(request, d)
            method = fields.get("method") or default_method()
            if method not in ("baseline", "model"):
                raise ApiError(422, f"method must be baseline or model, got {method!r}")
            targets = _parse_targets({k: fields[k] for k in TARGET_NAMES if k in fields},
                                     "the form")
            preset = _check_preset(fields.get("reverb_preset"))
            base = _parse_params(fields["params"], "params") if fields.get("params") else None
            wait = parse_wait(fields.get("wait"))
            fold = fields.get("fold") or "error"
            if fold not in FOLD_MODES:
                raise ApiError(422, f"fold must be one of {', '.join(FOLD_MODES)}, got {fold!r}")
            name = _safe_name(filenames.get("vocal"), "vocalmix")
            store.write_meta(d, stage="decoding", name=name)
            store.set_progress(mid, "decoding the uploads")
            v, b, sr, notes = await run_in_threadpool(decode_upload, d, filenames, fold)
            await run_in_threadpool(store_inputs, d, v, b, sr)
            store.write_meta(d, sample_rate=sr, duration_s=v.shape[0] / sr)

            def job() -> None:
                run_mix(mid, d, v, b, sr, method=method, base=base, preset=preset,
                        targets=targets, notes=notes)

            out = await run_in_threadpool(start_mix, mid, d, wait, job)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            store.clear_progress(mid)
            raise
        return JSONResponse(out, status_code=201 if wait else 202)

    @app.post(
        "/api/demo", status_code=201, response_model=Mix,
        summary="Mix the synthesised demo song (what the page's 'Try the demo' does)",
        response_description="the mix is done: its id, params and links",
        responses={202: {"model": Mix, "description": "accepted (wait=false): mixing"},
                   **errs(422)},
    )
    def create_demo(
        duration_s: float = Query(10.0, description="length of the song, s (2 to 60)"),
        seed: int = Query(0, description="random seed of the song"),
        wait: bool = Query(True, description="false: answer 202 at once and mix in the "
                                             "background (poll GET /api/mixes/{id})"),
    ) -> Any:
        if not 2.0 <= duration_s <= 60.0:
            raise ApiError(422, f"duration_s must be between 2 and 60 s, got {duration_s:g}")
        mid, d = store.new()
        store.write_meta(d, status="mixing", stage="synthesising", name="vocalmix-demo",
                         revision=0, sample_rate=DEMO_SAMPLE_RATE, duration_s=duration_s)

        def job() -> None:
            from vocalmix.synth import synthesize_song

            store.set_progress(mid, "synthesising the demo song")
            v, b = synthesize_song(sample_rate=DEMO_SAMPLE_RATE, duration_s=duration_s,
                                   seed=seed)
            store_inputs(d, v, b, DEMO_SAMPLE_RATE)
            run_mix(mid, d, v, b, DEMO_SAMPLE_RATE, method=default_method(), base=None,
                    preset=None, targets={}, notes=["the synthesised demo song"])

        out = start_mix(mid, d, wait, job)
        return JSONResponse(out, status_code=201 if wait else 202)

    @app.get("/api/mixes/{mid}", response_model=Mix, responses=errs(404),
             summary="Status, progress and params of a mix")
    def get_mix(mid: str) -> Any:
        return view(mid, store.path(mid))

    @app.put(
        "/api/mixes/{mid}/params", response_model=Mix, responses=errs(404, 409, 413, 422),
        summary="Edit the params or targets; re-render",
        description=(
            "JSON body, one of:\n\n"
            "* `{\"params\": <MixParams document>}` (or the document itself): render exactly "
            "those settings;\n"
            "* `{\"targets\": {\"vocal_to_mix_lu\": -6}}`: keep the settings, re-resolve the "
            "compressor, the reverb's decay (`decay_s` of a `synthetic` reverb, the room size "
            "of a `freeverb`) and the vocal gain for the new targets;\n"
            "* `{\"reverb_preset\": \"<name>\"}`: the preset's reverb (type included), "
            "then re-resolve;\n"
            "* `{\"params\": ..., \"resolve\": true}` (optionally with `targets`): take the "
            "document's settings and targets and re-resolve for this mix's inputs.\n\n"
            "A `freeverb` whose room size or damping changed (or that was another type "
            "before) gets the `decay_s` those knobs give; a `synthetic` reverb's `decay_s` "
            "is rendered as written. Answers with the new params and their `achieved` "
            "figures."),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "params": {"$ref": "#/components/schemas/MixParams"},
                "targets": {"type": "object", "properties": {
                    k: {"type": "number"} for k in TARGET_NAMES}},
                "reverb_preset": {"type": "string"},
                "resolve": {"type": "boolean", "default": False}}}}}}},
    )
    async def put_params(mid: str, request: Request) -> Any:
        store.path(mid)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(422, "the body must be JSON: {\"params\": {...}} or "
                                "{\"targets\": {...}}") from None
        if not isinstance(body, dict):
            raise ApiError(422, "the body must be a JSON object")
        if "format" in body or "vocal" in body:
            body = {"params": body}
        unknown = set(body) - {"params", "targets", "reverb_preset", "resolve"}
        if unknown:
            raise ApiError(422, f"unknown key(s) {', '.join(sorted(unknown))}: send params, "
                                "targets, reverb_preset and/or resolve")
        given = _parse_params(body["params"], "params") if "params" in body else None
        targets_raw = body.get("targets") or {}
        if not isinstance(targets_raw, dict):
            raise ApiError(422, "targets must be an object, e.g. {\"vocal_to_mix_lu\": -6}")
        targets = _parse_targets(targets_raw, "targets")
        preset = _check_preset(body.get("reverb_preset"))
        resolve = body.get("resolve", False)
        if not isinstance(resolve, bool):
            raise ApiError(422, "resolve must be true or false")
        if given is None and not targets and not preset:
            raise ApiError(422, "nothing to change: send params (a MixParams document), "
                                "targets or reverb_preset")
        exact = given is not None and not (targets or preset or resolve)

        def work() -> dict[str, Any]:
            from vocalmix.estimators.presets import apply_preset
            from vocalmix.pipeline import mix, render_params

            require_done(store.path(mid))  # don't queue behind a mix being made: 409
            with store.locked(mid) as d:
                require_done(d)
                current = MixParams.from_json((d / "params.json").read_text(encoding="utf-8"))
                v, b, sr = _load_inputs(d)
                try:
                    if exact:
                        new = _sync_reverb_decay(given, current, sr)
                        params, rendered = render_params(v, b, sr, new)
                        notes = ["rendered the edited settings"]
                        if new is not given:
                            notes.append(f"reverb decay_s set to {new.vocal.reverb.decay_s:.2f}"
                                         " s, what the freeverb's room size and damping give")
                    else:
                        base = given if given is not None else current
                        if preset:
                            base = apply_preset(base, preset)
                        params, rendered, est = mix(v, b, sr, base=base, **targets)
                        notes = list(est.notes)
                except (ParamsError, TargetUnreachableError) as e:
                    raise ApiError(422, str(e)) from None
                _save_result(store, d, params, rendered, notes, lambda _m: None)
                return view(mid, d)

        return await run_in_threadpool(work)

    @app.delete("/api/mixes/{mid}", status_code=204, response_class=Response,
                responses=errs(404), summary="Delete a mix and all its files")
    def delete_mix(mid: str) -> Response:
        store.delete(mid)
        return Response(status_code=204)

    @app.get(
        "/api/mixes/{mid}/audio/{kind}", response_class=FileResponse,
        responses={200: {"content": {"audio/wav": {}}}, **errs(404, 409)},
        summary="Rendered audio (WAV)",
        description=(
            "`kind`: `mix` (the master output), `vocal` (the vocal as it sits in the mix, "
            "reverb included), `vocal_dry` (before the reverb), `backing` (after its gain), "
            "or `plain` (the plain sum of the two inputs at the mix's integrated loudness, "
            "through the same master stage: the A of an A/B comparison). 24-bit PCM, or "
            "32-bit float when a stem reaches full scale."),
    )
    def get_audio(mid: str, kind: str) -> Any:
        d = store.path(mid)
        if kind not in AUDIO_KINDS:
            raise ApiError(404, f"no audio called {kind[:40]!r}: use one of "
                                f"{', '.join(AUDIO_KINDS)}")
        if kind == "plain":
            require_done(d)
            with store.locked(mid) as d:
                meta = require_done(d)
                params = MixParams.from_json((d / "params.json").read_text(encoding="utf-8"))
                p = _plain_sum(d, params, meta)
        else:
            meta = require_done(d)
            p = d / f"{kind}.wav"
        if not p.is_file():
            raise _not_found(mid)
        name = f"{meta.get('name', 'vocalmix')}-{kind}.wav"
        return FileResponse(p, media_type="audio/wav", filename=name,
                            headers={"Cache-Control": "no-cache"})

    @app.get("/api/mixes/{mid}/params.json", response_class=FileResponse,
             responses={200: {"content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/MixParams"}}}}, **errs(404, 409)},
             summary="Download the params document")
    def get_params_file(mid: str) -> Any:
        d = store.path(mid)
        meta = require_done(d)
        return FileResponse(d / "params.json", media_type="application/json",
                            filename=f"{meta.get('name', 'vocalmix')}-params.json",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/api/mixes/{mid}/peaks", responses=errs(404, 409),
             summary="Waveform overview: per-column peak and RMS of vocal, backing and mix")
    def get_peaks(mid: str) -> Any:
        d = store.path(mid)
        meta = require_done(d)
        out = store.read_json(d, "peaks.json")
        out["revision"] = meta.get("revision")
        return out

    @app.get("/api/mixes/{mid}/analysis", responses=errs(404, 409),
             summary="Masking per critical band and the vocal EQ's frequency response",
             description=(
                 "Band levels of the vocal and the backing (dB re each one's total, over "
                 "the frames where the vocal sings), the masker-to-signal ratio per band "
                 "(dB, positive where the backing dominates), how much each band matters "
                 "to the vocal (0 to 1), the vocal's band levels after the EQ, and the "
                 "EQ's response (high-pass included) in dB at `eq_freqs_hz`."))
    def get_analysis(mid: str) -> Any:
        require_done(store.path(mid))
        with store.locked(mid) as d:
            require_done(d)
            params = MixParams.from_json((d / "params.json").read_text(encoding="utf-8"))
            return _analysis(d, params)

    @app.get("/api/presets", response_model=list[Preset],
             summary="Reverb presets (fitted to measured rooms and reverb plug-ins)",
             description=(
                 "Every preset's reverb, sorted by name: its type and the settings that "
                 "`reverb_preset` puts into the params (`vocal.reverb`). Applying one also "
                 "sets the `reverb_decay_s` target to its decay (within the target's 0.2 to "
                 "12 s) and re-resolves."))
    def get_presets() -> Any:
        from vocalmix.estimators import presets as presets_mod

        out = []
        for name, entry in sorted(presets_mod.presets().items()):
            rv = _preset_reverb(name)
            if rv is None:
                continue  # an entry this vocalmix cannot read: not offered
            synthetic = rv.type == "synthetic"
            out.append({
                "name": name, "origin": entry.get("origin"),
                "source": entry.get("source") if isinstance(entry.get("source"), str) else None,
                "type": rv.type, "decay_s": rv.decay_s,
                "band_decay_ratios": list(rv.band_decay_ratios) if synthetic else None,
                "wet_level_db": rv.wet_level_db, "pre_delay_ms": rv.pre_delay_ms,
                "width": rv.width if isinstance(entry.get("reverb"), dict) else None,
                "room_size": None if synthetic else rv.room_size,
                "damping": None if synthetic else rv.damping})
        return out

    @app.get("/api/health", summary="Liveness and limits")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__,
                "max_upload_bytes": app.state.max_upload_bytes, "ttl_s": store.ttl_s}

    # --- errors: always JSON with a readable detail ---
    @app.exception_handler(ApiError)
    async def api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such page or endpoint; the API is documented at /docs"
        return JSONResponse({"detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_r: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body"))
            parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else e.get("msg", ""))
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, 422)

    @app.exception_handler(Exception)
    async def internal_error(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}: {exc}); "
                                       "please report it"}, 500)

    # --- the page ---
    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return FileResponse(static_dir / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/api", include_in_schema=False)
    def api_reference() -> Any:
        from fastapi.responses import RedirectResponse

        return RedirectResponse("/static/api.html")

    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    # --- the MixParams schema in the OpenAPI document ---
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi
        from pydantic import TypeAdapter

        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        mp = TypeAdapter(MixParams).json_schema(ref_template="#/components/schemas/{model}",
                                                mode="serialization")
        comps.update(mp.pop("$defs", {}))
        mp["properties"] = {"format": {"type": "string", "const": "vocalmix.params"},
                            **mp.get("properties", {})}
        comps["MixParams"] = mp
        with contextlib.suppress(KeyError):
            comps["Mix"]["properties"]["params"] = {
                "anyOf": [{"$ref": "#/components/schemas/MixParams"}, {"type": "null"}],
                "description": comps["Mix"]["properties"]["params"].get("description", "")}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(UploadLimit, max_bytes=int(max_upload_bytes))
    return app


def _sync_reverb_decay(new: MixParams, current: MixParams, sample_rate: int) -> MixParams:
    """``new`` with ``vocal.reverb.decay_s`` recomputed if it is a ``freeverb`` whose room
    size or damping changed, or that was of another type before (for ``freeverb``,
    ``decay_s`` documents what those knobs give; it does not drive the render). A
    ``synthetic`` reverb is returned as it is: its ``decay_s`` is the setting itself."""
    from vocalmix.core.reverb import decay_for_room_size

    rn, rc = new.vocal.reverb, current.vocal.reverb
    if rn.type != "freeverb":
        return new
    if rc.type == "freeverb" and (rn.room_size, rn.damping) == (rc.room_size, rc.damping):
        return new
    decay = float(np.clip(decay_for_room_size(rn.room_size, rn.damping, sample_rate), 0.1, 30))
    if abs(decay - rn.decay_s) < 1e-9:
        return new
    return replace(new, vocal=replace(new.vocal, reverb=replace(rn, decay_s=decay)))


# --- command line ------------------------------------------------------------------------


def register_cli(sub: Any) -> None:
    """Add ``vocalmix serve`` to the command line (``sub``: argparse subparsers)."""
    p = sub.add_parser("serve", help="run the web page and HTTP API (vocalmix studio)",
                       description="Serve the vocalmix studio page at / and the HTTP API "
                                   "under /api (OpenAPI docs at /docs).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; the API has no "
                        "authentication, so expose it only on networks you trust)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--storage", help="folder for uploads and renders (default "
                                     "$VOCALMIX_STORAGE, else a folder in the temp dir)")
    p.add_argument("--max-upload-mb", type=float, default=None,
                   help="largest upload, MB (default $VOCALMIX_MAX_UPLOAD_MB, else 100)")
    p.add_argument("--ttl-s", type=float, default=None,
                   help="mixes are removed this long after their last change, s (default "
                        "$VOCALMIX_TTL_S, else 3600)")
    p.add_argument("-q", "--quiet", action="store_true", help="no start-up line, no access log")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    p.set_defaults(func=serve)


def serve(args: Any) -> int:
    """Run the application with uvicorn until interrupted; returns the exit code."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise VocalmixError("the server needs its extras: pip install 'vocalmix[server]'") \
            from None
    for name, v in (("--max-upload-mb", args.max_upload_mb), ("--ttl-s", args.ttl_s)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise VocalmixError(f"{name} must be a positive number, got {v:g}")
    if not 0 < args.port < 65536:
        raise VocalmixError(f"--port must be 1 to 65535, got {args.port}")
    app = create_app(
        args.storage,
        max_upload_bytes=None if args.max_upload_mb is None else int(args.max_upload_mb * MB),
        ttl_s=args.ttl_s,
    )
    if not args.quiet:
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"vocalmix studio on http://{host}:{args.port}/ (API docs at /docs; "
              f"storage {app.state.store.root}; Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port,
                log_level="debug" if args.debug else ("warning" if args.quiet else "info"))
    return 0
