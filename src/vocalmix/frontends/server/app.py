"""vocalmix studio: an HTTP API for karaoke apps and a local web page, one FastAPI app.

    vocalmix serve [--host 127.0.0.1] [--port 8000] [--storage DIR] [--max-upload-mb 100]
                   [--max-decoded-mb 192] [--ttl-s 3600] [--workers N] [--queue-size M]
                   [--allowed-host NAME]

The package is laid out by concern: :mod:`~vocalmix.frontends.server.app` (this module:
the application, its middleware, error handlers and command), ``routes`` (the endpoints),
``studio`` (what the jobs do), ``jobs`` (the bounded queue), ``storage`` (mix folders, job
states, expiry), ``uploads`` (request bodies and their limits), ``security`` (Host and
Origin checks, security headers), ``schemas`` (the documented shapes), ``errors`` and
``static/`` (the page).

**Storage.** Every mix lives in its own folder under an unguessable id
(``secrets.token_urlsafe``, 144 random bits), in a private root (0700, owned by the user,
by default in the user's cache folder); see :mod:`~vocalmix.frontends.server.storage`.

**Work.** Mixes, the demo, re-renders, the plain sum and the masking analysis run on a
bounded job queue: ``workers`` at once (default: the number of CPUs), ``queue_size`` more
waiting (default: 4 per worker), 503 beyond that. Edits of one mix run one after the
other. Job states are persisted; a restart turns unfinished mixes into failed ones.

**Errors** are JSON ``{"detail": "<what is wrong and what to do>", "code": "<kind>"}``:
404 unknown or expired id, 409 the mix is still being made (or failed), 413 upload or
decoded audio over the limit, 415 not decodable audio (or not a multipart upload), 421 a
Host this server does not answer to, 403 a write from another web site, 422 invalid
params, targets, form fields or audio content, 503 the queue is full.

FastAPI is imported only inside :func:`create_app`: the core does not need it, and
``vocalmix serve`` explains how to install the extras when they are missing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vocalmix._version import __version__
from vocalmix.core.errors import VocalmixError

if TYPE_CHECKING:
    from fastapi import FastAPI

MB = 2**20
DEFAULT_MAX_UPLOAD_MB = 100.0
#: largest decoded upload by default, MB of float32 samples: about 9 min of stereo at
#: 48 kHz; a mix needs about 11 times its inputs' size in memory while it runs
DEFAULT_MAX_DECODED_MB = 192.0
DEFAULT_TTL_S = 3600.0
#: the most memory each of what the mix edited last keeps for its next edit, MB:
#: :data:`vocalmix.core.render.KEEP_MAX_BYTES` (not imported here: ``--help`` would load
#: the renderer)
DEFAULT_KEEP_EDITS_MB = 256.0
#: waiting jobs per worker by default
QUEUE_PER_WORKER = 4

log = logging.getLogger("vocalmix.server")


def _env_float(name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise VocalmixError(f"${name} must be a number, got {raw!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise VocalmixError(f"${name} must be {'0 or more' if allow_zero else 'positive'}, "
                            f"got {raw!r}")
    return v


def create_app(
    storage_dir: Path | str | None = None,
    *,
    max_upload_bytes: int | None = None,
    max_decoded_bytes: int | None = None,
    ttl_s: float | None = None,
    cleanup_interval_s: float = 60.0,
    workers: int | None = None,
    queue_size: int | None = None,
    allowed_hosts: Iterable[str] | None = ("127.0.0.1", "localhost", "::1"),
    keep_edits_bytes: int | None = None,
) -> FastAPI:
    """The vocalmix studio application.

    Args:
        storage_dir: folder for uploads and renders; default ``$VOCALMIX_STORAGE``, else
            ``vocalmix/studio`` in the user's cache folder. Made private (0700); a
            symlink or another user's folder is refused.
        max_upload_bytes: largest request body, bytes; default ``$VOCALMIX_MAX_UPLOAD_MB``
            MB, else 100 MB.
        max_decoded_bytes: largest decoded upload, bytes of float32 samples (checked from
            the file's header before decoding); default ``$VOCALMIX_MAX_DECODED_MB`` MB,
            else 192 MB.
        ttl_s: a mix unchanged for this long is gone, s; default ``$VOCALMIX_TTL_S``, else
            3600 s.
        cleanup_interval_s: how often the sweeper removes expired folders while the app
            is served, s (0 turns it off; reads check expiry anyway).
        workers: jobs run at once; default the number of CPUs.
        queue_size: jobs that may wait for a worker; default 4 per worker.
        allowed_hosts: host names accepted in the ``Host`` header (default: loopback);
            ``None`` accepts any (see :mod:`~vocalmix.frontends.server.security`).
        keep_edits_bytes: the most memory, bytes, each of what the mix edited last keeps
            for its next edit may take (its decoded inputs, its vocal chain's output, its
            compressor's resolution, the last two at most 256 MB:
            :meth:`~vocalmix.frontends.server.studio.Studio.inputs`), and the backing
            decoded last, for the next take over it (``backing_from``); default
            ``$VOCALMIX_KEEP_EDITS_MB`` MB, else 256 MB (a 6-minute stereo song at
            44.1 kHz); 0 keeps nothing (each edit decodes and renders everything again).
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import Request

    from vocalmix.frontends.server.errors import ApiError, from_exception, from_library
    from vocalmix.frontends.server.jobs import JobQueue
    from vocalmix.frontends.server.routes import STATIC_DIR, router
    from vocalmix.frontends.server.security import Guard
    from vocalmix.frontends.server.storage import Store, default_root
    from vocalmix.frontends.server.studio import Studio
    from vocalmix.frontends.server.uploads import ClientGone, UploadLimit

    if max_upload_bytes is None:
        max_upload_bytes = int(_env_float("VOCALMIX_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB) * MB)
    if max_decoded_bytes is None:
        max_decoded_bytes = int(_env_float("VOCALMIX_MAX_DECODED_MB",
                                           DEFAULT_MAX_DECODED_MB) * MB)
    if ttl_s is None:
        ttl_s = _env_float("VOCALMIX_TTL_S", DEFAULT_TTL_S)
    if keep_edits_bytes is None:
        keep_edits_bytes = int(_env_float("VOCALMIX_KEEP_EDITS_MB", DEFAULT_KEEP_EDITS_MB,
                                          allow_zero=True) * MB)
    workers = int(workers or os.cpu_count() or 1)
    queue_size = QUEUE_PER_WORKER * workers if queue_size is None else int(queue_size)
    store = Store(storage_dir or default_root(), ttl_s)
    for mid in store.recover():
        log.warning("mix %s was interrupted by a server stop: marked failed", mid)
    studio = Studio(store, JobQueue(workers, queue_size),
                    max_decoded_bytes=int(max_decoded_bytes),
                    keep_edits_bytes=int(keep_edits_bytes))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        th = None
        stop = threading.Event()
        if cleanup_interval_s > 0:
            def sweeper() -> None:
                while not stop.wait(cleanup_interval_s):
                    try:
                        for mid in store.sweep():
                            studio.forget_inputs(mid)  # (memory kept for its next edit)
                    except OSError as e:  # e.g. the root vanished: try again later
                        log.warning("sweep failed: %s", e)

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
            "mixing parameters (a params document, schema `MixParams`) back.\n\n"
            "`POST /api/mixes` with the two files; edit with `PUT /api/mixes/{id}/params`; "
            "fetch audio from the `links`. Every error is JSON `{\"detail\": \"...\", "
            "\"code\": \"...\"}` with a message that says what to do: 404 unknown or "
            "expired id, 409 the mix is still being made, 413 upload or decoded audio over "
            "the limit, 415 not decodable audio, 422 invalid params, targets or audio, 503 "
            "every worker busy and the queue full. Changes (POST, PUT, DELETE) from "
            "another web site's pages are refused (403), and so are requests naming a "
            f"host this server does not answer to (421). Mixes are removed {ttl_s:g} s "
            "after their last change."),
    )
    app.state.store = store
    app.state.studio = studio
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.state.ttl_s = ttl_s
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # --- errors: always JSON with a readable detail and a code ---
    def reply(e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(ApiError)
    async def api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return reply(exc)

    @app.exception_handler(VocalmixError)
    async def library_error(_r: Request, exc: VocalmixError) -> JSONResponse:
        return reply(from_library(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such page or endpoint; the API is described at /api"
        return JSONResponse({"detail": str(detail), "code": f"http.{exc.status_code}"},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_r: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body"))
            parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else e.get("msg", ""))
        return JSONResponse({"detail": "; ".join(parts)[:1000] or "invalid request",
                             "code": "request.invalid"}, 422)

    @app.exception_handler(Exception)
    async def internal_error(_r: Request, exc: Exception) -> JSONResponse:
        log.error("internal error", exc_info=exc)
        return reply(from_exception(exc))

    # --- the MixParams schema in the OpenAPI document, ranges from the declaration ---
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        from vocalmix.frontends.server.schemas import mix_params_schemas

        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.update(mix_params_schemas())
        with contextlib.suppress(KeyError):
            comps["Mix"]["properties"]["params"] = {
                "anyOf": [{"$ref": "#/components/schemas/MixParams"}, {"type": "null"}],
                "description": comps["Mix"]["properties"]["params"].get("description", "")}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(UploadLimit, max_bytes=int(max_upload_bytes))
    app.add_middleware(ClientGone)  # outside UploadLimit: its 413 is no disconnect
    app.add_middleware(Guard, allowed_hosts=allowed_hosts)
    return app


# --- command line ------------------------------------------------------------------------


def register_cli(sub: Any) -> None:
    """Add ``vocalmix serve`` to the command line (``sub``: argparse subparsers)."""
    p = sub.add_parser("serve", help="run the web page and HTTP API (vocalmix studio)",
                       description="Serve the vocalmix studio page at / and the HTTP API "
                                   "under /api/...; the API's reference, readable offline, "
                                   "is at /api.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; the API has no "
                        "authentication, so expose it only on networks you trust)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--storage", help="folder for uploads and renders, made private to you "
                                     "(default $VOCALMIX_STORAGE, else vocalmix/studio in "
                                     "your cache folder)")
    p.add_argument("--max-upload-mb", type=float, default=None,
                   help="largest upload, MB (default $VOCALMIX_MAX_UPLOAD_MB, else 100)")
    p.add_argument("--max-decoded-mb", type=float, default=None,
                   help="largest decoded input, MB of 32-bit samples: frames x channels x 4 "
                        "bytes, checked before decoding (M4A, WebM, AAC: as they decode; "
                        "default $VOCALMIX_MAX_DECODED_MB, "
                        f"else {DEFAULT_MAX_DECODED_MB:g}: about 9 min of stereo at 48 kHz)")
    p.add_argument("--ttl-s", type=float, default=None,
                   help="mixes are removed this long after their last change, s (default "
                        "$VOCALMIX_TTL_S, else 3600)")
    p.add_argument("--keep-edits-mb", type=float, default=None,
                   help="memory the mix edited last may keep for its next edit, MB each "
                        "for its inputs, its vocal chain's output and its compressor's "
                        "resolution (the last two at most 256), and for the backing "
                        "decoded last, for takes over it (default "
                        "$VOCALMIX_KEEP_EDITS_MB, else "
                        f"{DEFAULT_KEEP_EDITS_MB:g}; 0 keeps nothing: slower edits)")
    p.add_argument("--workers", type=int, default=None,
                   help="mixes (and re-renders) computed at once (default: the number of "
                        "CPUs)")
    p.add_argument("--queue-size", type=int, default=None,
                   help=f"jobs that may wait for a worker; more get 503 (default "
                        f"{QUEUE_PER_WORKER} per worker)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name the server answers to besides its address and "
                        "localhost (repeatable; requests naming others get 421)")
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
    from vocalmix.frontends.server.security import allowed_hosts_for

    for name, v in (("--max-upload-mb", args.max_upload_mb), ("--ttl-s", args.ttl_s),
                    ("--max-decoded-mb", args.max_decoded_mb)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise VocalmixError(f"{name} must be a positive number, got {v:g}")
    if args.keep_edits_mb is not None and not (math.isfinite(args.keep_edits_mb)
                                               and args.keep_edits_mb >= 0):
        raise VocalmixError(f"--keep-edits-mb must be 0 or more, got {args.keep_edits_mb:g}")
    if not 0 < args.port < 65536:
        raise VocalmixError(f"--port must be 1 to 65535, got {args.port}")
    if args.workers is not None and args.workers < 1:
        raise VocalmixError(f"--workers must be at least 1, got {args.workers}")
    if args.queue_size is not None and args.queue_size < 0:
        raise VocalmixError(f"--queue-size must be 0 or more, got {args.queue_size}")
    _check_listen(args.host, args.port)
    app = create_app(
        args.storage,
        max_upload_bytes=None if args.max_upload_mb is None else int(args.max_upload_mb * MB),
        max_decoded_bytes=(None if args.max_decoded_mb is None
                           else int(args.max_decoded_mb * MB)),
        ttl_s=args.ttl_s, workers=args.workers, queue_size=args.queue_size,
        allowed_hosts=allowed_hosts_for(args.host, args.allowed_host),
        keep_edits_bytes=(None if args.keep_edits_mb is None
                          else int(args.keep_edits_mb * MB)),
    )
    if not args.quiet:
        host = f"[{args.host}]" if ":" in args.host else args.host
        q = app.state.studio.jobs
        print(f"vocalmix studio on http://{host}:{args.port}/ (API reference at /api; "
              f"{q.workers} worker(s), queue of {q.queue_size}; storage "
              f"{app.state.store.root}; Ctrl-C to stop)", flush=True)
    level = "debug" if args.debug else ("warning" if args.quiet else "info")
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=level,
                    log_config=log_config(level))
    except SystemExit as e:  # (uvicorn's own exit when it cannot start: code 3)
        if e.code in (None, 0):
            raise
        raise VocalmixError(f"the server could not start on {args.host}:{args.port} (see "
                            "the line above)") from None
    return 0


def _check_listen(host: str, port: int) -> None:
    """:class:`VocalmixError` when ``host:port`` cannot be listened on (a port in use, an
    address this machine does not have, a name that does not resolve), before the
    server says it is serving there."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise VocalmixError(f"--host {host}: cannot be resolved ({e.strerror or e}); give "
                            "an address of this machine, such as 127.0.0.1") from None
    family, kind, proto, _name, addr = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as uvicorn does)
            sock.bind(addr)
    except OSError as e:
        raise VocalmixError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose "
                            "another --port, or stop what listens there") from None


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with the server's own lines (logger
    ``vocalmix.server``: a client gone mid-upload, a mix interrupted by a stop, internal
    errors) in the same format on the same stream, from ``level`` (``debug``, ``info``,
    ``warning``...) up."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"][log.name] = {"handlers": ["default"], "level": level.upper(),
                                   "propagate": False}
    return config
