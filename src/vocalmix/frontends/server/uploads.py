"""Request bodies: streamed multipart uploads, size limits, small JSON bodies.

Uploads are parsed as they stream in and written straight into the mix's folder (nothing
is spooled to the system's temp folder); the request body is counted as it arrives and
refused with 413 past the limit, whatever Content-Length says (:class:`UploadLimit`). A
client that goes away before its request is answered ends the request quietly
(:class:`ClientGone`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from vocalmix.frontends.server.errors import ApiError

MB = 2**20
log = logging.getLogger("vocalmix.server")
FORM_FILES = ("vocal", "backing")
#: the stems of a reference mix: optional, both or neither
REFERENCE_FILES = ("reference_vocal", "reference_backing")
TARGET_NAMES = ("vocal_to_mix_lu", "vocal_lra_lu", "reverb_decay_s")
#: the form field that names an earlier mix whose backing upload to use instead of a
#: ``backing`` file (a karaoke app's instrumental, uploaded once for many takes)
BACKING_FROM = "backing_from"
FORM_FIELDS = ("method", "params", "reverb_preset", "fold", "wait", *TARGET_NAMES, "mix_lufs",
               "amount", "vocal_offset_ms", "locks", "genre", BACKING_FROM)
#: longest form text field, bytes (the params document and the locks may be longer)
FIELD_LIMIT = 1024
#: longest ``locks`` field, bytes (every lockable path, quoted, fits)
LOCKS_LIMIT = 8192
#: largest JSON body (an edit) and form field ``params``, bytes
JSON_LIMIT = 1 * MB
#: longest upload file name kept for labels and downloads, characters
NAME_LIMIT = 60
#: an upload whose body sends nothing for this long, s, is dropped (408), and so is one
#: slower on average than :data:`UPLOAD_MIN_RATE` once this long has passed: it holds a
#: place of the job queue while it arrives (ten idle connections held every place, and
#: every edit of the other mixes got 503, for as long as they stayed open)
UPLOAD_IDLE_S = 30.0
#: the slowest average an upload may arrive at, bytes/s (a poor mobile link sends several
#: times this)
UPLOAD_MIN_RATE = 16 * 1024


async def _arriving(request: Any) -> Any:
    """The chunks of ``request``'s body as they arrive; :class:`ApiError` 408 when it
    stalls (:data:`UPLOAD_IDLE_S`) or, past that time, arrives slower on average than
    :data:`UPLOAD_MIN_RATE`."""
    import asyncio
    import time

    start, got = time.monotonic(), 0
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), timeout=UPLOAD_IDLE_S)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(408, f"the upload stalled: nothing arrived for "
                                f"{UPLOAD_IDLE_S:g} s; send it again",
                           code="upload.stalled") from None
        got += len(chunk)
        took = time.monotonic() - start
        if took > UPLOAD_IDLE_S and got < UPLOAD_MIN_RATE * took:
            raise ApiError(408, f"the upload arrives too slowly ({got / took / 1024:.1f} kB/s; "
                                f"at least {UPLOAD_MIN_RATE // 1024} kB/s is needed); send "
                                "it again, or a compressed file (FLAC, OGG, MP3, M4A)",
                           code="upload.stalled")
        yield chunk


def safe_name(filename: str | None, fallback: str) -> str:
    """A file name's stem, reduced to harmless characters, for labels and downloads."""
    stem = Path((filename or "").replace("\\", "/")).name.rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9 _.-]+", "_", stem).strip(" ._")[:NAME_LIMIT]
    return stem or fallback


async def read_multipart(request: Any, d: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Stream a ``multipart/form-data`` body: files ``vocal`` and ``backing`` (and the
    optional ``reference_vocal`` and ``reference_backing``) go straight to
    ``d/upload_<name>``; the other fields are small text values.

    Returns ``(fields, filenames)``. Raises :class:`ApiError` 415 (not multipart) or 422
    (malformed, unknown, repeated or missing fields).
    """
    try:
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import (
            MultipartParser,
            MultipartState,
            parse_options_header,
        )

        ended: Any = MultipartState.END
    except ImportError:  # python-multipart before 0.0.13 names its module "multipart"
        from multipart.exceptions import (  # type: ignore[no-redef]
            FormParserError,
        )
        from multipart.multipart import (  # type: ignore[no-redef]
            MultipartParser,
            parse_options_header,
        )

        ended = None
    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise ApiError(415, "send the files as multipart/form-data with the parts 'vocal' "
                            "and 'backing' (e.g. curl -F vocal=@take.wav -F backing=@track.wav)",
                       code="upload.not_multipart")
    boundary = opts.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise ApiError(422, "the multipart upload has no usable boundary in its Content-Type",
                       code="upload.malformed")

    fields: dict[str, str] = {}
    filenames: dict[str, str] = {}
    cur: dict[str, Any] = {}
    headers: dict[bytes, bytes] = {}
    hname = bytearray()
    hvalue = bytearray()
    text_limit = {"params": JSON_LIMIT, "locks": LOCKS_LIMIT}

    def on_part_begin() -> None:
        cur.clear()
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        hname.extend(data[start:end])
        if len(hname) > 256:
            raise ApiError(422, "a multipart header name is too long", code="upload.malformed")

    def on_header_value(data: bytes, start: int, end: int) -> None:
        hvalue.extend(data[start:end])
        if len(hvalue) > 4096:
            raise ApiError(422, "a multipart header is too long", code="upload.malformed")

    def on_header_end() -> None:
        headers[bytes(hname).lower()] = bytes(hvalue)
        hname.clear()
        hvalue.clear()
        if len(headers) > 16:
            raise ApiError(422, "a multipart part has too many headers",
                           code="upload.malformed")

    def on_headers_finished() -> None:
        _disp, o = parse_options_header(headers.get(b"content-disposition", b""))
        name = o.get(b"name", b"").decode("utf-8", "replace")
        if name in FORM_FILES or name in REFERENCE_FILES:
            if name in filenames:
                raise ApiError(422, f"the form has two '{name}' parts: send one of each")
            filenames[name] = o.get(b"filename", b"").decode("utf-8", "replace")
            cur["file"] = open(d / f"upload_{name}", "wb")  # closed on part end
        elif name in FORM_FIELDS:
            if name in fields:
                raise ApiError(422, f"the form has two '{name}' parts: send it once")
            cur["text"] = bytearray()
            cur["limit"] = text_limit.get(name, FIELD_LIMIT)
        else:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise ApiError(422, f"unknown form field {shown!r}: send the files 'vocal' and "
                                f"'backing', optionally {', '.join(REFERENCE_FILES)}, "
                                f"{', '.join(FORM_FIELDS)}")
        cur["name"] = name

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if "file" in cur:
            cur["file"].write(data[start:end])
        elif "text" in cur:
            cur["text"].extend(data[start:end])
            if len(cur["text"]) > cur["limit"]:
                raise ApiError(422, f"form field {cur['name']!r} is too long (at most "
                                    f"{cur['limit']} bytes)")

    def on_part_end() -> None:
        if "file" in cur:
            cur.pop("file").close()
        elif "text" in cur:
            fields[cur["name"]] = bytes(cur["text"]).decode("utf-8", "replace").strip()

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    })
    try:
        async for chunk in _arriving(request):
            parser.write(chunk)
        parser.finalize()
        if ended is not None and parser.state != ended:
            # (finalize() does not check it: a body cut off before its closing boundary
            # would be read as whole, a file cut short and a field dropped)
            raise FormParserError("the body ends before its closing boundary")
    except FormParserError:
        raise ApiError(422, "the multipart upload is malformed; send it with a standard "
                            "HTTP client (curl -F, requests, fetch with FormData)",
                       code="upload.malformed") from None
    finally:
        f = cur.pop("file", None)
        if f is not None:
            f.close()
    if BACKING_FROM in fields and "backing" in filenames:
        raise ApiError(422, f"the form has both a 'backing' file and '{BACKING_FROM}': send "
                            "one of them (the file, or the id of a mix whose backing to "
                            "use)", code="upload.backing_from")
    missing = [k for k in FORM_FILES
               if k not in filenames and not (k == "backing" and BACKING_FROM in fields)]
    if missing:
        raise ApiError(422, f"missing file(s): {' and '.join(missing)}; send both 'vocal' "
                            "and 'backing' as multipart/form-data file parts (or, for the "
                            f"backing, '{BACKING_FROM}': the id of a mix whose backing to "
                            "use)", code="upload.missing_file")
    refs = [k for k in REFERENCE_FILES if k in filenames]
    if len(refs) == 1:
        other = next(k for k in REFERENCE_FILES if k not in filenames)
        raise ApiError(422, f"a reference needs both its stems: '{refs[0]}' was sent without "
                            f"'{other}'", code="upload.missing_file")
    return fields, filenames


async def read_body(request: Any, limit: int = JSON_LIMIT) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (counted as it arrives)."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, f"the body is larger than {limit // 1024} kB; a params "
                                "document is a few kB", code="upload.too_large")
    return bytes(body)


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
            "take, a compressed file (FLAC, OGG, MP3, M4A), or start the server with a higher "
            "--max-upload-mb"), "code": "upload.too_large"}).encode()

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


class ClientGone:
    """ASGI middleware: a client that goes away before its request is answered (an
    upload cancelled half way, a closed page) is the normal end of that request, not an
    error: one info line in the log, no traceback, and no answer, since nobody is left to
    read it. What the request had started is undone on the way out as for any request
    that fails (a new mix's folder is removed).

    Starlette raises ``ClientDisconnect`` when the body is read after the client has
    gone, or when a streamed response can no longer be sent. Installed outside
    :class:`UploadLimit`, whose own refusal (413) also ends the body early.
    """

    def __init__(self, app: Any) -> None:
        from starlette.requests import ClientDisconnect

        self.app = app
        self.gone = ClientDisconnect

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except self.gone:
            client = scope.get("client")
            by = f" from {client[0]}:{client[1]}" if client else ""
            log.info("%s %s%s: the client went away before the answer; request dropped",
                     scope.get("method"), scope.get("path"), by)


def parse_json(raw: bytes, what: str) -> Any:
    """A JSON body or field by the core's bounded reader
    (:func:`vocalmix.core.jsondoc.loads`): 422 with the reason."""
    from vocalmix.core.errors import ParamsError
    from vocalmix.core.jsondoc import loads

    try:
        return loads(raw, what=what)
    except ParamsError as e:
        raise ApiError(422, str(e), code=e.code) from None


__all__ = ["BACKING_FROM", "FORM_FIELDS", "FORM_FILES", "JSON_LIMIT", "REFERENCE_FILES",
           "TARGET_NAMES", "ClientGone", "UploadLimit",
           "parse_json", "read_body", "read_multipart", "safe_name"]
