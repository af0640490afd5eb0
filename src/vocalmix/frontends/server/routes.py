"""The HTTP API's routes: parse a request, queue its work, answer.

Heavy work runs as a job on the server's bounded queue
(:class:`~vocalmix.frontends.server.jobs.JobQueue`); a request that waits for its job
awaits it without holding a thread. What the jobs do is in
:mod:`vocalmix.frontends.server.studio`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from vocalmix._version import __version__
from vocalmix.core.errors import ParamsError
from vocalmix.core.jsondoc import parse_number, short_repr
from vocalmix.core.params import MixParams
from vocalmix.frontends.server import schemas
from vocalmix.frontends.server.errors import ApiError, from_exception, from_library
from vocalmix.frontends.server.jobs import Reservation
from vocalmix.frontends.server.schemas import Methods, Mix, ParamsSpec, Preset
from vocalmix.frontends.server.studio import AUDIO_ENCODINGS, AUDIO_KINDS, Steering, Studio
from vocalmix.frontends.server.uploads import (
    BACKING_FROM,
    TARGET_NAMES,
    parse_json,
    read_body,
    read_multipart,
    safe_name,
)

METHODS = ("baseline", "model")
FOLD_MODES = ("error", "mean", "first2")
DEMO_DURATION_S = (2.0, 60.0)
STATIC_DIR = Path(__file__).with_name("static")

class StoredFile(FileResponse):
    """A file of a mix's folder as a response: one removed between the request and the
    answer (the mix deleted or expired meanwhile, an old revision pruned) is a 404 in
    the API's words, not a 500 naming the storage path; a ``Range`` header that cannot
    be parsed is ignored (RFC 9110, section 14.2), the whole file sent."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import os

        try:
            st = await run_in_threadpool(os.stat, self.path)
        except FileNotFoundError:
            gone = JSONResponse({"detail": "this file of the mix is gone: the mix was "
                                           "deleted, expired or re-rendered meanwhile",
                                 "code": "mix.not_found"}, 404)
            return await gone(scope, receive, send)
        self.stat_result = st
        self.set_stat_headers(st)
        await super().__call__(scope, receive, send)

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        from starlette.responses import MalformedRangeHeader

        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []


router = APIRouter()


def studio_of(request: Request) -> Studio:
    """The application's :class:`Studio` (a route dependency)."""
    return request.app.state.studio


StudioDep = Annotated[Studio, Depends(studio_of)]


def errs(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {404: "unknown or expired id", 409: "the mix is still being made, or failed",
            413: "upload or decoded audio over the limit",
            415: "not decodable audio / not multipart",
            422: "invalid params, targets, fields or audio content",
            503: "the server is busy: every worker is working and the queue is full "
                 "(see Retry-After)"}
    return {c: {"model": schemas.Error, "description": text[c]} for c in codes}


async def finished(fut: Future) -> Any:
    """The result of a job, awaited without holding a thread; its failure as an
    :class:`ApiError`."""
    try:
        return await asyncio.wrap_future(fut)
    except ApiError:
        raise
    except Exception as e:
        raise from_exception(e) from None


def discard_when_done(studio: Studio, mid: str, fut: Future | None) -> None:
    """Remove a mix whose making failed or was abandoned, once its job (if any) ends."""
    if fut is None or fut.done():
        studio.store.discard(mid)
    else:
        fut.add_done_callback(lambda _f: studio.store.discard(mid))


class NewMix:
    """The making of a new mix, from its folder to the answer: :meth:`answer` queues its
    job and answers 201 with the mix once done (``wait``) or 202 at once; a request that
    fails or is abandoned before that (or whose job fails while it waits) discards the
    mix once its job, if any, ends. The mix is unpinned either way. Use as a context
    manager around everything that may fail."""

    def __init__(self, studio: Studio, mid: str, folder: Path) -> None:
        self.studio, self.mid, self.folder = studio, mid, folder
        self.fut: Future | None = None

    def __enter__(self) -> NewMix:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_exc: object) -> None:
        try:
            if kind is not None:
                discard_when_done(self.studio, self.mid, self.fut)
        finally:
            self.studio.store.unpin(self.mid)

    async def answer(self, job: Callable[[], Any], wait: bool, *,
                     reservation: Reservation | None = None) -> JSONResponse:
        """Queue ``job`` (503 when the queue is full); the finished mix (201) or its
        status (202)."""
        self.fut = self.studio.submit(self.mid, job, reservation=reservation)
        if wait:
            return JSONResponse(await finished(self.fut), status_code=201)
        return JSONResponse(self.studio.view(self.mid, self.folder), status_code=202)


# --- request parsing ------------------------------------------------------------------------


def parse_targets(raw: dict[str, Any], where: str,
                  nullable: tuple[str, ...] = ("mix_lufs",)) -> dict[str, float]:
    """Target overrides from a form or JSON object, range-checked (422 with the range);
    ``nullable``: the other targets ``where`` takes (named in the message)."""
    unknown = set(raw) - set(TARGET_NAMES)
    if unknown:
        shown = ", ".join(short_repr(k, 40) for k in sorted(unknown)[:5])
        raise ApiError(422, f"unknown target(s) in {where}: {shown}; the targets are "
                            f"{', '.join(TARGET_NAMES + nullable[:-1])} and {nullable[-1]}")
    out: dict[str, float] = {}
    try:
        for k, v in raw.items():
            if v is None or v == "":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ParamsError(f"{k} must be a number, got {short_repr(v)}")
            out[k] = parse_number(str(v), name=k)
        MixParams().with_targets(**out)
    except ParamsError as e:
        raise from_library(e) from None
    return out


#: how a form says "this nullable target is off" (mix loudness, momentary range; JSON
#: says null)
TARGET_OFF = ("", "off", "none", "null")
#: the target an edit may set (LU) or turn off (null): the compressor then follows the
#: vocal's momentary loudness range instead of its LRA, or the LRA again
MOMENTARY = "vocal_momentary_range_lu"


def ranged_number(v: Any, path: str, name: str) -> float:
    """A finite number within the range :func:`~vocalmix.core.params.param_specs`
    declares for ``path``; 422 (``params.invalid``) with the range."""
    from vocalmix.core.params import param_specs

    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ApiError(422, f"{name} must be a number, got {short_repr(v)}",
                       code="params.invalid")
    try:
        x = parse_number(str(v), name=name)
    except ParamsError as e:
        raise from_library(e) from None
    spec = param_specs()[path]
    if not spec["min"] <= x <= spec["max"]:
        unit = f" {spec['unit']}" if spec["unit"] else ""
        raise ApiError(422, f"{name} = {x:g} is out of range: allowed {spec['min']:g} to "
                            f"{spec['max']:g}{unit}", code="params.invalid")
    return x


def parse_nullable_target(v: Any, name: str) -> tuple[float | None, bool]:
    """``(value, off)`` of a target that may be off (``targets.<name>`` is nullable): a
    number in its unit and range, or null / ``off`` (turn the target off)."""
    if v is None or (isinstance(v, str) and v.strip().lower() in TARGET_OFF):
        return None, True
    return ranged_number(v, f"targets.{name}", name), False


def parse_mix_lufs(v: Any) -> tuple[float | None, bool]:
    """``(mix_lufs, off)`` of a mix-loudness value: a number in LUFS, or null / ``off``
    (turn the target off)."""
    return parse_nullable_target(v, "mix_lufs")


def parse_amount(v: Any) -> float | None:
    """How much of the chosen processing to apply (0-2), or ``None`` when not given."""
    if v is None or v == "":
        return None
    return ranged_number(v, "amount", "amount")


def parse_offset(v: Any) -> float | str | None:
    """The take's offset (ms, within ``vocal.offset_ms``'s range) or ``"auto"``; ``None``
    when not given."""
    if v is None or v == "":
        return None
    if isinstance(v, str):
        text = v.strip().lower()
        if text == "auto":
            return "auto"
        try:
            float(text)
        except ValueError:
            raise ApiError(422, f"vocal_offset_ms must be a number of ms or 'auto', got "
                                f"{short_repr(v)}", code="params.invalid") from None
    return ranged_number(v, "vocal.offset_ms", "vocal_offset_ms")


def parse_locks(raw: Any, *, form: bool = False) -> tuple[str, ...]:
    """Locked paths from a JSON list, or (``form``) a form field's JSON list or
    comma-separated text; each must be a setting or target of the document
    (:func:`~vocalmix.core.params.lockable_paths`). 422 (``params.invalid``)
    otherwise."""
    from vocalmix.core.params import lockable_paths

    known = lockable_paths()
    if form and isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            raw = parse_json(text.encode(), "locks")
        else:
            raw = [p.strip() for p in text.split(",") if p.strip()]
    if not isinstance(raw, list):
        raise ApiError(422, "locks must be a list of paths, e.g. [\"vocal.gain_db\", "
                            "\"vocal.compressor\"]", code="params.invalid")
    if len(raw) > len(known):
        raise ApiError(422, f"locks names {len(raw)} paths; the document has "
                            f"{len(known)} lockable ones", code="params.invalid")
    out = []
    for p in raw:
        if not isinstance(p, str) or p not in known:
            raise ApiError(422, f"locks: {short_repr(p)} is not a setting or target of the "
                                "document (e.g. 'vocal.gain_db', 'vocal.compressor', "
                                "'targets.vocal_lra_lu'; GET /api/params/spec lists them)",
                           code="params.invalid")
        out.append(p)
    return tuple(dict.fromkeys(out))


def parse_genre(raw: Any) -> str | None:
    """The song's genre in its canonical spelling, or ``None``; 422 if unknown."""
    if raw is None or raw == "":
        return None
    from vocalmix.estimators.level import GENRES, OTHER_GENRE, normalise_genre

    if not isinstance(raw, str) or len(raw) > 40:
        raise ApiError(422, f"unknown genre {short_repr(raw)}: use one of "
                            f"{', '.join(GENRES)} or {OTHER_GENRE!r}", code="params.invalid")
    try:
        return normalise_genre(raw)
    except ParamsError as e:
        raise from_library(e) from None


def check_method(raw: Any) -> str:
    """A method of :data:`METHODS` (the server's default for none)."""
    if raw is None or raw == "":
        return default_method()
    if raw not in METHODS:
        raise ApiError(422, f"method must be baseline or model, got {short_repr(raw)}",
                       code="params.invalid")
    return str(raw)


def check_preset(name: Any) -> str | None:
    """A reverb preset's name (or ``None``); 422 if it is not a known name."""
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise ApiError(422, f"reverb_preset must be a preset's name, got {short_repr(name)}",
                       code="params.invalid")
    from vocalmix.estimators.presets import preset_reverb, presets

    if name not in presets():  # the API lists the names: no need to repeat them all here
        raise ApiError(422, f"unknown reverb preset {short_repr(name, 80)}; "
                            "GET /api/presets lists them", code="params.invalid")
    try:
        preset_reverb(name)
    except ParamsError as e:
        raise from_library(e) from None
    return name


def parse_params(doc: Any, where: str) -> MixParams:
    """A params document given as JSON text or an already parsed object; 422 if invalid."""
    try:
        if isinstance(doc, str):
            return MixParams.from_json(doc)
        return MixParams.from_dict(doc)
    except ParamsError as e:
        raise ApiError(422, f"{where}: {e}", code=e.code) from None


def parse_wait(raw: str | None) -> bool:
    if raw is None or raw == "":
        return True
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(422, f"wait must be true or false, got {short_repr(raw)}")


def default_method() -> str:
    from vocalmix.estimators.registry import default_method as dm

    return dm()


# --- making mixes ---------------------------------------------------------------------------

_FORM_SCHEMA = {"type": "object", "required": ["vocal"], "oneOf": [
    {"required": ["backing"]}, {"required": [BACKING_FROM]}], "properties": {
    "vocal": {"type": "string", "format": "binary", "description": "vocal take"},
    "backing": {"type": "string", "format": "binary",
                "description": "backing track (or `backing_from`)"},
    BACKING_FROM: {"type": "string", "description": (
        "instead of a `backing` file: the id of an earlier mix whose uploaded backing to "
        "use (upload an instrumental once, then name that mix for every take sung over "
        "it; each use starts that mix's time to live again)")},
    "reference_vocal": {"type": "string", "format": "binary",
                        "description": "a reference mix's vocal stem (with "
                                       "`reference_backing`): mix like it"},
    "reference_backing": {"type": "string", "format": "binary",
                          "description": "the reference mix's backing stem"},
    "method": {"type": "string", "enum": list(METHODS),
               "description": "who chooses the targets (default: GET /api/methods)"},
    "genre": {"type": "string", "description": "the song's genre, used by the model "
                                               "method (GET /api/methods lists them)"},
    **schemas.target_properties(TARGET_NAMES),
    "mix_lufs": schemas.mix_lufs_property(form=True),
    "amount": schemas.amount_property(),
    "vocal_offset_ms": {"type": "string", "description": (
        "move the take against the backing before anything else, ms (positive later, "
        "negative earlier: -40 sets right a take recorded 40 ms late), or `auto`: by the "
        "recording's latency where the take carries a copy of the backing")},
    "locks": {"type": "string", "description": schemas.LOCKS_DOC + " A JSON list or "
                                               "comma-separated paths."},
    "reverb_preset": {"type": "string", "description": "a name from GET /api/presets"},
    "params": {"type": "string", "description": "params document (JSON)"},
    "fold": {"type": "string", "enum": list(FOLD_MODES), "default": "error"},
    "wait": {"type": "boolean", "default": True}}}


@router.post(
    "/api/mixes", status_code=201, response_model=Mix,
    summary="Upload a vocal and a backing track; get the mix and its params",
    response_description="the mix is done: its id, params (with achieved figures) and "
                         "links to the audio",
    description=(
        "multipart/form-data: files `vocal` and `backing` (WAV, FLAC, OGG, MP3, AIFF, "
        "M4A/MP4, WebM, AAC; "
        "mono or stereo; the mix is made at the higher of their rates), or instead of "
        "the `backing` file `backing_from`, the id of an earlier mix whose uploaded "
        "backing to use (a karaoke instrumental uploaded once for many takes; 422 when "
        "that mix is gone, 409 while it still decodes its uploads), optional "
        "`reference_vocal` and `reference_backing` (the stems of a reference mix, "
        "resampled to the mix's rate: its vocal level, dynamics, spectral balance and "
        "reverb become the targets; the params' `provenance.method` is then "
        "`reference`), `method` (`baseline` or `model`; default: the server's, see "
        "`GET /api/methods`), `genre` (for the model method), target overrides "
        f"{schemas.target_summary(TARGET_NAMES)}, `mix_lufs` (the master's integrated "
        "loudness, LUFS, under the true-peak ceiling; `off` or empty: leave it, turned "
        "down only as far as keeps the limiter from taking more than 0.5 LU off it), "
        "`amount` (0 none of the chosen processing, 1 as chosen, 2 twice as much), "
        "`vocal_offset_ms` (move the take against the backing, ms, or `auto`: by the "
        "recording's latency where the take carries a copy of the backing), "
        "`locks` (paths kept as they are when re-resolving, added to those of `params`), "
        "`reverb_preset` (a name from `GET /api/presets`), `params` (a params document "
        "whose settings and targets to start from), `fold` (files of more than two "
        "channels: `mean` averages them, `first2` keeps channels 1-2; default: refuse) "
        "and `wait` (default true: answer `201` when the mix is done; false: answer "
        "`202` at once with status `mixing` and poll `GET /api/mixes/{id}`, which "
        "reports the progress). A file that would decode to more samples than the "
        "server's limit is refused from its header with 413. The mix waits for a free "
        "worker; when the queue is full the answer is 503 at once."),
    responses={202: {"model": Mix, "description": "accepted (wait=false): mixing"},
               **errs(413, 415, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": _FORM_SCHEMA}}}},
)
async def create_mix(request: Request, studio: StudioDep) -> Any:
    store = studio.store
    with studio.reserve() as reservation:  # 503 before the upload is read
        mid, d = store.new()
        with NewMix(studio, mid, d) as new:
            store.write_meta(d, status="mixing", stage="upload", name="vocalmix", revision=0)
            fields, filenames = await read_multipart(request, d)
            backing_from = fields.get(BACKING_FROM)
            if backing_from is not None:
                filenames["backing"] = await run_in_threadpool(
                    store.link_backing, backing_from, d, BACKING_FROM)
            method = check_method(fields.get("method"))
            targets = parse_targets({k: fields[k] for k in TARGET_NAMES if k in fields},
                                    "the form")
            mix_lufs, mix_lufs_off = (parse_mix_lufs(fields["mix_lufs"]) if "mix_lufs" in fields
                                      else (None, False))
            steering = Steering(
                targets=targets, mix_lufs=mix_lufs, mix_lufs_off=mix_lufs_off,
                amount=parse_amount(fields.get("amount")),
                vocal_offset_ms=parse_offset(fields.get("vocal_offset_ms")),
                locks=parse_locks(fields["locks"], form=True) if fields.get("locks") else None,
                genre=parse_genre(fields.get("genre")),
                preset=check_preset(fields.get("reverb_preset")))
            base = (await run_in_threadpool(parse_params, fields["params"], "params")
                    if fields.get("params") else None)
            wait = parse_wait(fields.get("wait"))
            fold = fields.get("fold") or "error"
            if fold not in FOLD_MODES:
                raise ApiError(422, f"fold must be one of {', '.join(FOLD_MODES)}, got "
                                    f"{short_repr(fold)}")
            store.write_meta(d, stage="queued", name=safe_name(filenames.get("vocal"),
                                                               "vocalmix"))
            store.set_progress(mid, "queued", 0.0, "waiting for a free worker")
            return await new.answer(lambda: studio.make_mix(
                mid, d, filenames=filenames, fold=fold, method=method, base=base,
                steering=steering, backing_from=backing_from), wait, reservation=reservation)


@router.post(
    "/api/demo", status_code=201, response_model=Mix,
    summary="Mix the synthesised demo song (what the page's 'Try the demo' does)",
    response_description="the mix is done: its id, params and links",
    responses={202: {"model": Mix, "description": "accepted (wait=false): mixing"},
               **errs(422, 503)},
)
async def create_demo(
    studio: StudioDep,
    duration_s: float = Query(10.0, description=f"length of the song, s "
                                                f"({DEMO_DURATION_S[0]:g} to "
                                                f"{DEMO_DURATION_S[1]:g})"),
    seed: int = Query(0, ge=0, le=2**32 - 1, description="random seed of the song"),
    wait: bool = Query(True, description="false: answer 202 at once and mix in the "
                                         "background (poll GET /api/mixes/{id})"),
    method: str | None = Query(None, max_length=40,
                               description="`baseline` or `model` (default: the server's, "
                                           "see GET /api/methods)"),
) -> Any:
    method = check_method(method)
    lo, hi = DEMO_DURATION_S
    if not lo <= duration_s <= hi:
        raise ApiError(422, f"duration_s must be between {lo:g} and {hi:g} s, got "
                            f"{duration_s:g}")
    store = studio.store
    mid, d = store.new()
    with NewMix(studio, mid, d) as new:
        store.write_meta(d, status="mixing", stage="queued", name="vocalmix-demo",
                         revision=0)
        store.set_progress(mid, "queued", 0.0, "waiting for a free worker")
        return await new.answer(lambda: studio.make_demo(mid, d, duration_s=duration_s,
                                                         seed=seed, method=method), wait)


# --- reading and editing mixes ----------------------------------------------------------------


@router.get("/api/mixes/{mid}", response_model=Mix, responses=errs(404),
            summary="Status, progress and params of a mix")
def get_mix(mid: str, studio: StudioDep) -> Any:
    return studio.view(mid, studio.store.path(mid))


@router.put(
    "/api/mixes/{mid}/params", response_model=Mix, responses=errs(404, 409, 413, 422, 503),
    summary="Edit the params or targets; re-render",
    description=(
        "JSON body (at most 1 MB), one of:\n\n"
        "* `{\"params\": <MixParams document>}` (or the document itself): render exactly "
        "those settings;\n"
        "* `{\"targets\": {\"vocal_to_mix_lu\": -6}}`: keep the settings, re-resolve the "
        "compressor, the reverb's decay (`decay_s` of a `synthetic` reverb, the room size "
        "of a `freeverb`) and the vocal gain for the new targets;\n"
        "* `{\"reverb_preset\": \"<name>\"}`: the preset's reverb (type included), "
        "then re-resolve;\n"
        "* `{\"params\": ..., \"resolve\": true}` (optionally with `targets`): take the "
        "document's settings and targets and re-resolve for this mix's inputs;\n"
        "* `{\"targets\": {\"mix_lufs\": -14}}`: the master's integrated loudness, "
        "LUFS, under the true-peak ceiling (`null` turns it off: master gain 0 dB);\n"
        "* `{\"targets\": {\"vocal_momentary_range_lu\": 8}}`: resolve the compressor to "
        "the vocal's momentary loudness range (EBU 3342's spread on 400 ms loudness), LU, "
        "instead of `vocal_lra_lu` (`null` turns it off: the LRA target again);\n"
        "* `{\"amount\": 0.5}`: apply half of the chosen processing (0 none, 1 as "
        "chosen, 2 twice as much), the vocal gain re-resolved for it;\n"
        "* `{\"locks\": [\"vocal.gain_db\", ...]}`: the locked paths (replaces the "
        "document's list), then re-resolve.\n\n"
        "These combine (e.g. `{\"targets\": ..., \"locks\": ...}`). A re-resolve keeps "
        "every locked setting (a lock on a group, e.g. `vocal.compressor`, keeps all of "
        "it; a lock on one of the compressor's, reverb's or delay's settings keeps that "
        "whole group, whose settings are solved together) and answers with `moved`: "
        "the settings it changed, each with its value before and after.\n\n"
        "A `freeverb`'s `decay_s` is set to what its room size and damping give "
        "(`vocalmix render` does the same); a `synthetic` reverb's `decay_s` is rendered "
        "as written. Answers with the new params and their `achieved` figures."),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "properties": {
            "params": {"$ref": "#/components/schemas/MixParams"},
            "targets": {"type": "object",
                        "properties": {**schemas.target_properties(TARGET_NAMES),
                                       "mix_lufs": schemas.mix_lufs_property(),
                                       MOMENTARY: schemas.nullable_target_property(
                                           MOMENTARY, "the LRA target again")}},
            "amount": schemas.amount_property(),
            "vocal_offset_ms": {"description": (
                "move the take against the backing, ms, or \"auto\" (by the recording's "
                "latency where the take carries a copy of the backing); the settings are "
                "re-resolved on the moved take"),
                "oneOf": [{"type": "number"}, {"type": "string", "enum": ["auto"]}]},
            "locks": {"type": "array", "items": {"type": "string"},
                      "description": schemas.LOCKS_DOC},
            "reverb_preset": {"type": "string"},
            "resolve": {"type": "boolean", "default": False}}}}}}},
)
async def put_params(mid: str, request: Request, studio: StudioDep) -> Any:
    d = studio.store.path(mid)
    # parsing a megabyte of JSON takes a while: off the event loop
    given, steering, resolve = await run_in_threadpool(parse_edit, await read_body(request))
    studio.require_done(d)  # don't queue behind a mix being made: 409
    return await finished(studio.submit(mid, lambda: studio.edit(
        mid, given=given, steering=steering, resolve=resolve)))


EDIT_KEYS = ("params", "targets", "amount", "vocal_offset_ms", "locks", "reverb_preset",
             "resolve")


def parse_edit(raw: bytes) -> tuple[MixParams | None, Steering, bool]:
    """``(params, steering, resolve)`` of an edit's JSON body; 422 with the reason."""
    body = parse_json(raw, "the body")
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object: {\"params\": {...}} or "
                            "{\"targets\": {...}}")
    if "format" in body or "vocal" in body:
        body = {"params": body}
    unknown = set(body) - set(EDIT_KEYS)
    if unknown:
        shown = ", ".join(short_repr(k, 40) for k in sorted(unknown)[:5])
        raise ApiError(422, f"unknown key(s) {shown}: send {', '.join(EDIT_KEYS[:-1])} "
                            "and/or resolve")
    given = parse_params(body["params"], "params") if "params" in body else None
    targets_raw = body.get("targets") or {}
    if not isinstance(targets_raw, dict):
        raise ApiError(422, "targets must be an object, e.g. {\"vocal_to_mix_lu\": -6}")
    targets_raw = dict(targets_raw)
    has_lufs = "mix_lufs" in targets_raw
    mix_lufs, off = parse_mix_lufs(targets_raw.pop("mix_lufs")) if has_lufs else (None, False)
    mr, mr_off = (parse_nullable_target(targets_raw.pop(MOMENTARY), MOMENTARY)
                  if MOMENTARY in targets_raw else (None, False))
    targets = parse_targets(targets_raw, "targets", ("mix_lufs", MOMENTARY))
    amount = body.get("amount")
    if "amount" in body and amount is None:
        raise ApiError(422, "amount must be a number from 0 to 2", code="params.invalid")
    steering = Steering(
        targets=targets, mix_lufs=mix_lufs, mix_lufs_off=off,
        momentary_range_lu=mr, momentary_range_off=mr_off,
        amount=None if amount is None else ranged_number(amount, "amount", "amount"),
        locks=parse_locks(body["locks"]) if "locks" in body else None,
        preset=check_preset(body.get("reverb_preset")),
        vocal_offset_ms=parse_offset(body.get("vocal_offset_ms")))
    resolve = body.get("resolve", False)
    if not isinstance(resolve, bool):
        raise ApiError(422, "resolve must be true or false")
    if given is None and not steering.resolves():
        raise ApiError(422, "nothing to change: send params (a MixParams document), "
                            "targets, amount, vocal_offset_ms, locks or reverb_preset")
    return given, steering, resolve


@router.delete("/api/mixes/{mid}", status_code=204, response_class=Response,
               responses=errs(404), summary="Delete a mix and all its files",
               description="At once, or, while a job works on the mix, as soon as it ends "
                           "(the answer does not wait for it).")
def delete_mix(mid: str, studio: StudioDep) -> Response:
    studio.store.delete_soon(mid)
    studio.forget_inputs(mid)
    return Response(status_code=204)


@router.head("/api/mixes/{mid}/audio/{kind}", include_in_schema=False)  # (the GET's headers)
@router.get(
    "/api/mixes/{mid}/audio/{kind}", response_class=FileResponse,
    responses={200: {"content": {t: {} for t, _ in AUDIO_ENCODINGS.values()}},
               **errs(404, 409, 422, 503)},
    summary="Rendered audio (WAV, FLAC, MP3 or Ogg Vorbis)",
    description=(
        "`kind`: `mix` (the master output), `vocal` (the vocal as it sits in the mix, "
        "reverb included), `vocal_dry` (before the reverb), `backing` (after its gain), "
        "or `plain` (the plain sum of the two inputs at the mix's integrated loudness, "
        "through the same master stage: the A of an A/B comparison). `format`: `wav` "
        "(default; 24-bit PCM, or 32-bit float when a stem reaches full scale), `flac` "
        "(24-bit), `wav16` and `flac16` (16-bit PCM with TPDF dither, for a CD or a "
        "distributor that asks for it), `mp3` (LAME's highest quality, about 220-320 "
        "kb/s; mixes at 8-48 kHz only) or `ogg` (Vorbis). A format other than WAV is "
        "encoded on its first request (which then waits for a worker) and kept with the "
        "revision."),
)
async def get_audio(mid: str, kind: str, studio: StudioDep, format: str = "wav") -> Any:
    store = studio.store
    d = store.path(mid)
    if kind not in AUDIO_KINDS:
        raise ApiError(404, f"no audio called {short_repr(kind, 40)}: use one of "
                            f"{', '.join(AUDIO_KINDS)}", code="request.not_found")
    if format not in AUDIO_ENCODINGS:
        raise ApiError(422, f"format {short_repr(format, 20)} is not one of "
                            f"{', '.join(AUDIO_ENCODINGS)}", code="request.format")
    meta = studio.require_done(d)
    p = studio.cached_encoded(d, meta, kind, format)
    if p is None and format == "wav":
        p = await finished(studio.submit(mid, lambda: studio.make_plain(mid)))
    elif p is None:
        p = await finished(studio.submit(mid, lambda: studio.make_encoded(mid, kind, format)))
    media, ext = AUDIO_ENCODINGS[format]
    return StoredFile(store.regular_file(p), media_type=media,
                        filename=f"{meta.get('name', 'vocalmix')}-{kind}{ext}",
                        headers={"Cache-Control": "no-cache"})


@router.head("/api/mixes/{mid}/params.json", include_in_schema=False)
@router.get("/api/mixes/{mid}/params.json", response_class=FileResponse,
            responses={200: {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/MixParams"}}}}, **errs(404, 409)},
            summary="Download the params document")
def get_params_file(mid: str, studio: StudioDep) -> Any:
    d = studio.store.path(mid)
    meta = studio.require_done(d)
    p = studio.store.rev_dir(d, int(meta.get("revision") or 0)) / "params.json"
    return StoredFile(studio.store.regular_file(p), media_type="application/json",
                        filename=f"{meta.get('name', 'vocalmix')}-params.json",
                        headers={"Cache-Control": "no-cache"})


@router.get("/api/mixes/{mid}/peaks", responses=errs(404, 409),
            summary="Waveform overview: per-column peak and RMS of vocal, backing and mix")
def get_peaks(mid: str, studio: StudioDep) -> Any:
    d = studio.store.path(mid)
    meta = studio.require_done(d)
    rev = int(meta.get("revision") or 0)
    out = studio.store.read_json(studio.store.rev_dir(d, rev), "peaks.json")
    out["revision"] = rev
    return out


@router.get("/api/mixes/{mid}/analysis", responses=errs(404, 409, 503),
            summary="Masking per critical band and the vocal EQ's frequency response",
            description=(
                "Band levels of the vocal and the backing (dB re each one's total, over "
                "the frames where the vocal sings), the masker-to-signal ratio per band "
                "(dB, positive where the backing dominates), how much each band matters "
                "to the vocal (0 to 1), the vocal's band levels after the EQ, and the "
                "EQ's response (high-pass included) in dB at `eq_freqs_hz`."))
async def get_analysis(mid: str, studio: StudioDep) -> Any:
    store = studio.store
    d = store.path(mid)
    meta = studio.require_done(d)
    try:
        masking = store.read_json(d, "analysis.json")
    except (ApiError, OSError):
        masking = await finished(studio.submit(mid, lambda: studio.masking(mid)))
    params = studio.current_params(d, meta)
    return await run_in_threadpool(studio.analysis, masking, params)


# --- what the server offers -------------------------------------------------------------------


def _preset_entry(name: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    from vocalmix.estimators.presets import preset_reverb

    try:
        rv = preset_reverb(name)
    except ParamsError:
        return None  # an entry this vocalmix cannot read: not offered
    synthetic = rv.type == "synthetic"
    return {"name": name, "origin": entry.get("origin"),
            "source": entry.get("source") if isinstance(entry.get("source"), str) else None,
            "type": rv.type, "decay_s": rv.decay_s,
            "band_decay_ratios": list(rv.band_decay_ratios) if synthetic else None,
            "wet_level_db": rv.wet_level_db, "pre_delay_ms": rv.pre_delay_ms,
            "width": rv.width if isinstance(entry.get("reverb"), dict) else None,
            "room_size": None if synthetic else rv.room_size,
            "damping": None if synthetic else rv.damping}


@router.get("/api/presets", response_model=list[Preset],
            summary="Reverb presets (fitted to measured rooms and reverb plug-ins)",
            description=(
                "Every preset's reverb, sorted by name: its type and the settings that "
                "`reverb_preset` puts into the params (`vocal.reverb`). Applying one also "
                "sets the `reverb_decay_s` target to its decay (within the target's "
                "range) and re-resolves."))
def get_presets() -> Any:
    from vocalmix.estimators import presets as presets_mod

    out = [_preset_entry(name, entry) for name, entry in sorted(presets_mod.presets().items())]
    return [e for e in out if e is not None]


@router.get("/api/params/spec", response_model=ParamsSpec,
            summary="Range, unit and label of every numeric parameter",
            description=(
                "What each numeric field of the params document allows (`min`, `max`, "
                "in `unit`), a label and a sentence for a person, an editing step, "
                "whether it is best edited on a log scale, and the range a control "
                "shows by default. The page builds its controls from it; the MixParams "
                "schema's `minimum`/`maximum` come from the same declaration."))
def get_params_spec() -> Any:
    return schemas.params_spec()


@router.get("/api/methods", response_model=Methods,
            summary="The methods that choose a mix's targets, and the server's default",
            description=(
                "`method` of `POST /api/mixes` and `POST /api/demo`: each method with a "
                "sentence and its cross-validated vocal-to-mix error where the shipped "
                "level model recorded one; `default` is what a mix without `method` uses "
                "(the one whose error is lowest). A mix made with reference stems says "
                "`reference` in its `provenance.method`. `genres`: the names `genre` "
                "accepts."))
def get_methods() -> Any:
    return schemas.methods()


@router.get("/api/health", summary="Liveness, limits and the job queue")
async def health(request: Request) -> dict[str, Any]:
    studio: Studio = request.app.state.studio
    return {"status": "ok", "version": __version__,
            "max_upload_bytes": request.app.state.max_upload_bytes,
            "max_decoded_bytes": studio.max_decoded_bytes, "ttl_s": studio.store.ttl_s,
            **studio.jobs.stats()}


# --- the page ----------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def index() -> Any:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers={"Cache-Control": "no-cache"})


@router.get("/api", include_in_schema=False)
def api_reference() -> Any:
    return RedirectResponse("/static/api.html")


__all__ = ["STATIC_DIR", "router", "studio_of"]
