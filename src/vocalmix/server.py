"""vocalmix studio: an HTTP API for karaoke apps and a local web page, one FastAPI app.

    vocalmix serve [--host 127.0.0.1] [--port 8000] [--storage DIR] [--max-upload-mb 100]
                   [--ttl-s 3600]

Every mix lives in its own folder ``<storage>/<id>/`` under an unguessable id
(``secrets.token_urlsafe``); ids are checked against a strict pattern and every path is
resolved and checked to lie inside the storage folder before it is touched. Folders older
than the time to live are removed by a sweeper thread. Uploads are counted while they
stream in and refused with 413 past the limit. Errors are JSON ``{"detail": "..."}``:
413 too large, 415 not decodable audio, 422 invalid params, targets or audio content,
404 unknown id. FastAPI is imported only here: the core does not need it.
"""



import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .audio import prepare_pair, read_audio, write_audio, write_text
from .errors import AudioError, ParamsError, TargetUnreachableError, UnreadableAudioError
from .params import MixParams

ID_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
AUDIO_KINDS = ("mix", "vocal", "vocal_dry", "backing", "plain")
DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024


class Store:
    """Mix folders under one root, with per-id locks and time-to-live clean-up."""

    def __init__(self, root: Path, ttl_s: float) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def new_id(self) -> str:
        """A fresh unguessable id (144 random bits) with its folder created."""
        while True:
            mid = secrets.token_urlsafe(18)
            d = self.root / mid
            try:
                d.mkdir()
                return mid
            except FileExistsError:  # pragma: no cover - astronomically unlikely
                continue

    def folder(self, mid: str) -> Path:
        """The folder of an existing mix, or ``KeyError`` (bad or unknown id)."""
        if not ID_RE.fullmatch(mid or ""):
            raise KeyError(mid)
        d = (self.root / mid).resolve()
        if d.parent != self.root or not d.is_dir():
            raise KeyError(mid)
        return d

    def lock(self, mid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(mid, threading.Lock())

    def delete(self, mid: str) -> None:
        d = self.folder(mid)
        with self.lock(mid):
            shutil.rmtree(d, ignore_errors=True)
        with self._guard:
            self._locks.pop(mid, None)

    def sweep(self, now: float | None = None) -> list[str]:
        """Remove mixes older than the time to live; returns the removed ids."""
        now = time.time() if now is None else now
        removed = []
        for d in self.root.iterdir():
            if not d.is_dir() or not ID_RE.fullmatch(d.name):
                continue
            try:
                age = now - d.stat().st_mtime
            except OSError:
                continue
            if age > self.ttl_s:
                shutil.rmtree(d, ignore_errors=True)
                with self._guard:
                    self._locks.pop(d.name, None)
                removed.append(d.name)
        return removed


class UploadTooLarge(Exception):
    """Raised by the size-limiting middleware."""


def _limit_middleware(app: Any, max_bytes: int) -> Any:
    """ASGI middleware: 413 when a request body exceeds ``max_bytes`` (counted as it
    streams, and up front from Content-Length when given)."""

    async def middleware(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        cl = headers.get(b"content-length")
        too_large = {"detail": f"upload is larger than the limit of {max_bytes // 2**20} MB "
                               f"({max_bytes} bytes); send a shorter or compressed file"}
        if cl is not None and cl.isdigit() and int(cl) > max_bytes:
            return await _json(send, 413, too_large)
        seen = 0
        sent_response = False

        async def limited_receive():  # type: ignore[no-untyped-def]
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > max_bytes:
                    raise UploadTooLarge()
            return msg

        async def tracking_send(msg):  # type: ignore[no-untyped-def]
            nonlocal sent_response
            if msg["type"] == "http.response.start":
                sent_response = True
            await send(msg)

        try:
            await app(scope, limited_receive, tracking_send)
        except UploadTooLarge:
            if not sent_response:
                await _json(send, 413, too_large)

    return middleware


async def _json(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_app(
    storage_dir: Path | str | None = None,
    *,
    max_upload_bytes: int | None = None,
    ttl_s: float | None = None,
    cleanup_interval_s: float = 60.0,
    start_sweeper: bool = True,
):  # -> ASGI app (FastAPI wrapped in the upload limit)
    """The vocalmix studio application.

    Settings default to ``$VOCALMIX_STORAGE`` (else a folder in the temp dir),
    ``$VOCALMIX_MAX_UPLOAD_MB`` (100 MB) and ``$VOCALMIX_TTL_S`` (3600 s).
    """
    import tempfile

    from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    root = Path(storage_dir or os.environ.get("VOCALMIX_STORAGE")
                or Path(tempfile.gettempdir()) / "vocalmix-studio")
    if max_upload_bytes is None:
        max_upload_bytes = int(float(os.environ.get("VOCALMIX_MAX_UPLOAD_MB", 100)) * 2**20)
    if ttl_s is None:
        ttl_s = float(os.environ.get("VOCALMIX_TTL_S", 3600))
    store = Store(root, ttl_s)

    app = FastAPI(
        title="vocalmix studio",
        description="Mix a vocal into a backing track and get the editable mixing "
                    "parameters (MixParams) back. Errors are JSON with a `detail` message.",
        version=__import__("vocalmix").__version__,
    )
    app.state.store = store
    static_dir = Path(__file__).with_name("static")

    def links(mid: str) -> dict[str, str]:
        base = f"/api/mixes/{mid}"
        out = {k: f"{base}/audio/{k}" for k in AUDIO_KINDS}
        out.update(self=base, params=f"{base}/params.json", analysis=f"{base}/analysis")
        return out

    def folder_or_404(mid: str) -> Path:
        try:
            return store.folder(mid)
        except KeyError:
            raise HTTPException(404, f"no mix with id {mid!r} (it may have expired)") from None

    def load_inputs(d: Path) -> tuple[np.ndarray, np.ndarray, int]:
        v = read_audio(d / "vocal_in.wav")
        b = read_audio(d / "backing_in.wav")
        return v.samples, b.samples, v.sample_rate

    def save_result(d: Path, params: MixParams, rendered, notes: list[str]) -> dict:
        sr = rendered.sample_rate
        for name in ("mix", "vocal", "vocal_dry", "backing"):
            write_audio(d / f"{name}.wav", getattr(rendered, name), sr, force=True,
                        subtype="FLOAT")
        write_text(d / "params.json", params.to_json(), force=True)
        meta = {"status": "done", "notes": notes, "updated": time.time()}
        write_text(d / "meta.json", json.dumps(meta), force=True)
        os.utime(d)
        return meta

    def write_plain(d: Path, vocal: np.ndarray, backing: np.ndarray, sr: int,
                    mix_lufs: float | None) -> None:
        """The plain sum of the inputs at the mix's loudness (for the A/B switch)."""
        from .measure import integrated_loudness, true_peak_dbtp

        plain = vocal + backing
        i = integrated_loudness(plain, sr)
        g = 0.0 if (mix_lufs is None or not np.isfinite(i)) else mix_lufs - i
        tp = true_peak_dbtp(plain, sr) + g
        g -= max(0.0, tp + 1.0)  # never clip the comparison either
        write_audio(d / "plain.wav", plain * np.float32(10 ** (g / 20)), sr, force=True,
                    subtype="FLOAT")

    def result(mid: str, d: Path) -> dict:
        params = json.loads((d / "params.json").read_text())
        meta = json.loads((d / "meta.json").read_text())
        return {"id": mid, "status": meta.get("status", "done"), "params": params,
                "notes": meta.get("notes", []), "links": links(mid)}

    def float_or_none(v: str | None, name: str) -> float | None:
        if v is None or v == "":
            return None
        try:
            return float(v)
        except ValueError:
            raise HTTPException(422, f"{name} must be a number, got {v!r}") from None

    def run_mix(mid: str, d: Path, vocal, backing, sr, method: str, overrides: dict) -> dict:
        from .pipeline import mix

        try:
            params, rendered, est = mix(vocal, backing, sr, method=method, **overrides)
        except (ParamsError, TargetUnreachableError) as e:
            raise HTTPException(422, str(e)) from None
        save_result(d, params, rendered, list(est.notes))
        write_plain(d, vocal, backing, sr, params.achieved.mix_integrated_lufs)
        return result(mid, d)

    async def save_upload(upload: UploadFile, dest: Path) -> None:
        with open(dest, "wb") as f:
            while True:
                chunk = await upload.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)

    @app.post("/api/mixes", status_code=201, summary="Upload a vocal and a backing; mix them")
    async def create_mix(
        vocal: UploadFile = File(..., description="vocal take (WAV, FLAC, OGG, MP3)"),
        backing: UploadFile = File(..., description="backing track (WAV, FLAC, OGG, MP3)"),
        method: str = Form("baseline", description="baseline or model"),
        vocal_to_mix_lu: str | None = Form(None, description="target, LU"),
        vocal_lra_lu: str | None = Form(None, description="target, LU"),
        reverb_decay_s: str | None = Form(None, description="target, s"),
    ) -> dict:
        from starlette.concurrency import run_in_threadpool

        if method not in ("baseline", "model"):
            raise HTTPException(422, f"method must be baseline or model, got {method!r}")
        overrides = {
            "vocal_to_mix_lu": float_or_none(vocal_to_mix_lu, "vocal_to_mix_lu"),
            "vocal_lra_lu": float_or_none(vocal_lra_lu, "vocal_lra_lu"),
            "reverb_decay_s": float_or_none(reverb_decay_s, "reverb_decay_s"),
        }
        mid = store.new_id()
        d = store.folder(mid)
        try:
            raw_v, raw_b = d / "upload_vocal", d / "upload_backing"
            await save_upload(vocal, raw_v)
            await save_upload(backing, raw_b)

            def work() -> dict:
                with store.lock(mid):
                    try:
                        va = read_audio(raw_v, label=f"vocal {vocal.filename or ''}".strip())
                        ba = read_audio(raw_b, label=f"backing {backing.filename or ''}".strip())
                        v, b, sr, notes = prepare_pair(va, ba)
                    except UnreadableAudioError as e:
                        raise HTTPException(415, str(e)) from None
                    except AudioError as e:
                        raise HTTPException(422, str(e)) from None
                    write_audio(d / "vocal_in.wav", v, sr, force=True, subtype="FLOAT")
                    write_audio(d / "backing_in.wav", b, sr, force=True, subtype="FLOAT")
                    raw_v.unlink()
                    raw_b.unlink()
                    out = run_mix(mid, d, v, b, sr, method, overrides)
                    out["notes"] = notes + out["notes"]
                    return out

            return await run_in_threadpool(work)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise

    @app.post("/api/demo", status_code=201, summary="Mix the synthesised demo song")
    def create_demo(duration_s: float = 10.0) -> dict:
        from .synth import synthesize_song

        if not 2.0 <= duration_s <= 60.0:
            raise HTTPException(422, "duration_s must be between 2 and 60 s")
        mid = store.new_id()
        d = store.folder(mid)
        with store.lock(mid):
            v, b = synthesize_song(sample_rate=44100, duration_s=duration_s)
            write_audio(d / "vocal_in.wav", v, 44100, force=True, subtype="FLOAT")
            write_audio(d / "backing_in.wav", b, 44100, force=True, subtype="FLOAT")
            return run_mix(mid, d, v, b, 44100, "baseline", {})

    @app.get("/api/mixes/{mid}", summary="Params and status of a mix")
    def get_mix(mid: str) -> dict:
        d = folder_or_404(mid)
        with store.lock(mid):
            return result(mid, d)

    @app.get("/api/mixes/{mid}/params.json", summary="Download the params document")
    def get_params_file(mid: str) -> Response:
        d = folder_or_404(mid)
        return FileResponse(d / "params.json", media_type="application/json",
                            filename="vocalmix-params.json")

    @app.get("/api/mixes/{mid}/audio/{kind}", summary="Rendered audio as WAV",
             description="kind: mix, vocal, vocal_dry, backing, or plain (the plain sum of "
                         "the inputs at the mix's loudness, for A/B comparison)")
    def get_audio(mid: str, kind: str) -> Response:
        d = folder_or_404(mid)
        if kind not in AUDIO_KINDS:
            raise HTTPException(404, f"no audio {kind!r}: use one of {', '.join(AUDIO_KINDS)}")
        p = (d / f"{kind}.wav").resolve()
        if p.parent != d or not p.is_file():
            raise HTTPException(404, f"audio {kind!r} is not available")
        return FileResponse(p, media_type="audio/wav", filename=f"vocalmix-{kind}.wav")

    @app.put("/api/mixes/{mid}/params", summary="Edit params or targets and re-render",
             description="Body: `{\"params\": <MixParams document>}` renders exactly those "
                         "settings; `{\"targets\": {\"vocal_to_mix_lu\": ...}}` re-resolves "
                         "the settings for new targets. Returns the new params with "
                         "`achieved` figures.")
    async def put_params(mid: str, request: Request) -> dict:
        from starlette.concurrency import run_in_threadpool

        d = folder_or_404(mid)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HTTPException(422, "body must be JSON: {\"params\": ...} or "
                                     "{\"targets\": ...}") from None
        if not isinstance(body, dict):
            raise HTTPException(422, "body must be a JSON object")
        if "format" in body:
            body = {"params": body}

        def work() -> dict:
            from .pipeline import estimate_params, render_params

            with store.lock(mid):
                current = MixParams.from_json((d / "params.json").read_text())
                try:
                    if "params" in body:
                        new = MixParams.from_dict(body["params"])
                        v, b, sr = load_inputs(d)
                        params, rendered = render_params(v, b, sr, new)
                        notes = ["rendered the edited settings"]
                    elif "targets" in body and isinstance(body["targets"], dict):
                        t = body["targets"]
                        unknown = set(t) - {"vocal_to_mix_lu", "vocal_lra_lu", "reverb_decay_s"}
                        if unknown:
                            raise ParamsError(f"unknown target(s): {', '.join(sorted(unknown))}")
                        base = current.with_targets(**t)
                        v, b, sr = load_inputs(d)
                        est = estimate_params(v, b, sr, base=base)
                        params, rendered = render_params(v, b, sr, est.params)
                        notes = list(est.notes)
                    else:
                        raise ParamsError("body needs \"params\" (a MixParams document) or "
                                          "\"targets\" (an object of target values)")
                except (ParamsError, TargetUnreachableError, TypeError) as e:
                    raise HTTPException(422, str(e)) from None
                save_result(d, replace(params), rendered, notes)
                write_plain(d, v, b, sr, params.achieved.mix_integrated_lufs)
                return result(mid, d)

        return await run_in_threadpool(work)

    @app.delete("/api/mixes/{mid}", status_code=204, response_class=Response, response_model=None,
                summary="Delete a mix and its files")
    def delete_mix(mid: str) -> Response:
        folder_or_404(mid)
        store.delete(mid)
        return Response(status_code=204)

    @app.get("/api/mixes/{mid}/analysis", summary="Masking analysis and EQ curve")
    def analysis(mid: str) -> dict:
        from .masking import analyse_masking, bands_response_db

        d = folder_or_404(mid)
        with store.lock(mid):
            v, b, sr = load_inputs(d)
            params = MixParams.from_json((d / "params.json").read_text())
        g = 10 ** (params.backing.gain_db / 20)
        a = analyse_masking(v, b * np.float32(g), sr)
        freqs = np.geomspace(20, min(20000, 0.45 * sr), 200)
        bands = [(e.kind, e.freq_hz, e.gain_db, e.q) for e in params.vocal.eq_bands]
        curve = bands_response_db(bands, freqs, sr)
        if params.vocal.highpass.enabled:
            from scipy.signal import butter, sosfreqz

            sos = butter(2, params.vocal.highpass.cutoff_frequency_hz, "highpass", fs=sr,
                         output="sos")
            _, h = sosfreqz(sos, worN=freqs, fs=sr)
            curve = curve + 20 * np.log10(np.maximum(np.abs(h), 1e-9))
        return {
            "band_centres_hz": a.band_centres_hz.tolist(),
            "vocal_db": a.vocal_db.tolist(),
            "backing_db": a.backing_db.tolist(),
            "masking_db": a.masking_db.tolist(),
            "proposed_gain_db": a.gain_db.tolist(),
            "eq_freqs_hz": freqs.tolist(),
            "eq_response_db": curve.tolist(),
        }

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return FileResponse(static_dir / "index.html", media_type="text/html")

    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    if start_sweeper and cleanup_interval_s > 0:
        def sweeper() -> None:
            while True:
                time.sleep(cleanup_interval_s)
                try:
                    store.sweep()
                except Exception:  # pragma: no cover - keep sweeping
                    pass

        threading.Thread(target=sweeper, name="vocalmix-sweeper", daemon=True).start()

    wrapped = _limit_middleware(app, int(max_upload_bytes))
    wrapped.state = app.state  # type: ignore[attr-defined]
    wrapped.fastapi = app  # type: ignore[attr-defined]
    return wrapped


def register_cli(sub: Any) -> None:
    """Add ``vocalmix serve`` to the command line."""
    p = sub.add_parser("serve", help="run the web page and HTTP API (vocalmix studio)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--storage", help="folder for uploads and renders (default: temp dir)")
    p.add_argument("--max-upload-mb", type=float, default=None, help="upload limit, MB")
    p.add_argument("--ttl-s", type=float, default=None, help="time to live of a mix, s")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=_serve)


def _serve(args: Any) -> int:
    try:
        import uvicorn
    except ImportError:
        from .errors import VocalmixError

        raise VocalmixError(
            "the server needs its extras: pip install 'vocalmix[server]'") from None
    app = create_app(
        args.storage,
        max_upload_bytes=None if args.max_upload_mb is None else int(args.max_upload_mb * 2**20),
        ttl_s=args.ttl_s,
    )
    print(f"vocalmix studio on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
