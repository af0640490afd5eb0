"""The HTTP API's routes: parse a request, queue its work, answer.

Heavy work runs as a job on the server's bounded queue
(:class:`~vocalmix.frontends.server.jobs.JobQueue`); a request that waits for its job
awaits it without holding a thread. What the jobs do is in
:mod:`vocalmix.frontends.server.studio`.
"""

from __future__ import annotations

import asyncio
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
from vocalmix.frontends.server.schemas import Mix, ParamsSpec, Preset
from vocalmix.frontends.server.studio import AUDIO_KINDS, Studio
from vocalmix.frontends.server.uploads import (
    FORM_FILES,
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


# --- request parsing ------------------------------------------------------------------------


def parse_targets(raw: dict[str, Any], where: str) -> dict[str, float]:
    """Target overrides from a form or JSON object, range-checked (422 with the range)."""
    unknown = set(raw) - set(TARGET_NAMES)
    if unknown:
        shown = ", ".join(short_repr(k, 40) for k in sorted(unknown)[:5])
        raise ApiError(422, f"unknown target(s) in {where}: {shown}; the targets are "
                            f"{', '.join(TARGET_NAMES)}")
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

_FORM_SCHEMA = {"type": "object", "required": list(FORM_FILES), "properties": {
    "vocal": {"type": "string", "format": "binary", "description": "vocal take"},
    "backing": {"type": "string", "format": "binary", "description": "backing track"},
    "method": {"type": "string", "enum": list(METHODS)},
    **schemas.target_properties(TARGET_NAMES),
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
        "multipart/form-data: files `vocal` and `backing` (WAV, FLAC, OGG, MP3, AIFF; "
        "mono or stereo; the backing is resampled to the vocal's rate), optional "
        f"`method` (`baseline` or `model`), target overrides "
        f"{schemas.target_summary(TARGET_NAMES)}, "
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
        fut: Future | None = None
        try:
            store.write_meta(d, status="mixing", stage="upload", name="vocalmix", revision=0)
            fields, filenames = await read_multipart(request, d)
            method = fields.get("method") or default_method()
            if method not in METHODS:
                raise ApiError(422, f"method must be baseline or model, got "
                                    f"{short_repr(method)}")
            targets = parse_targets({k: fields[k] for k in TARGET_NAMES if k in fields},
                                    "the form")
            preset = check_preset(fields.get("reverb_preset"))
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
            fut = studio.submit(mid, lambda: studio.make_mix(
                mid, d, filenames=filenames, fold=fold, method=method, base=base,
                preset=preset, targets=targets), reservation=reservation)
            if wait:
                return JSONResponse(await finished(fut), status_code=201)
            return JSONResponse(studio.view(mid, d), status_code=202)
        except BaseException:
            discard_when_done(studio, mid, fut)
            raise
        finally:
            store.unpin(mid)


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
) -> Any:
    lo, hi = DEMO_DURATION_S
    if not lo <= duration_s <= hi:
        raise ApiError(422, f"duration_s must be between {lo:g} and {hi:g} s, got "
                            f"{duration_s:g}")
    store = studio.store
    mid, d = store.new()
    fut: Future | None = None
    try:
        store.write_meta(d, status="mixing", stage="queued", name="vocalmix-demo",
                         revision=0)
        store.set_progress(mid, "queued", 0.0, "waiting for a free worker")
        method = default_method()
        fut = studio.submit(mid, lambda: studio.make_demo(mid, d, duration_s=duration_s,
                                                          seed=seed, method=method))
        if wait:
            return JSONResponse(await finished(fut), status_code=201)
        return JSONResponse(studio.view(mid, d), status_code=202)
    except BaseException:
        discard_when_done(studio, mid, fut)
        raise
    finally:
        store.unpin(mid)


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
        "document's settings and targets and re-resolve for this mix's inputs.\n\n"
        "A `freeverb`'s `decay_s` is set to what its room size and damping give "
        "(`vocalmix render` does the same); a `synthetic` reverb's `decay_s` is rendered "
        "as written. Answers with the new params and their `achieved` figures."),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "properties": {
            "params": {"$ref": "#/components/schemas/MixParams"},
            "targets": {"type": "object",
                        "properties": schemas.target_properties(TARGET_NAMES)},
            "reverb_preset": {"type": "string"},
            "resolve": {"type": "boolean", "default": False}}}}}}},
)
async def put_params(mid: str, request: Request, studio: StudioDep) -> Any:
    d = studio.store.path(mid)
    # parsing a megabyte of JSON takes a while: off the event loop
    given, targets, preset, resolve = await run_in_threadpool(parse_edit,
                                                              await read_body(request))
    studio.require_done(d)  # don't queue behind a mix being made: 409
    return await finished(studio.submit(mid, lambda: studio.edit(
        mid, given=given, targets=targets, preset=preset, resolve=resolve)))


def parse_edit(raw: bytes) -> tuple[MixParams | None, dict[str, float], str | None, bool]:
    """``(params, targets, reverb_preset, resolve)`` of an edit's JSON body; 422 with
    the reason."""
    body = parse_json(raw, "the body")
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object: {\"params\": {...}} or "
                            "{\"targets\": {...}}")
    if "format" in body or "vocal" in body:
        body = {"params": body}
    unknown = set(body) - {"params", "targets", "reverb_preset", "resolve"}
    if unknown:
        shown = ", ".join(short_repr(k, 40) for k in sorted(unknown)[:5])
        raise ApiError(422, f"unknown key(s) {shown}: send params, targets, reverb_preset "
                            "and/or resolve")
    given = parse_params(body["params"], "params") if "params" in body else None
    targets_raw = body.get("targets") or {}
    if not isinstance(targets_raw, dict):
        raise ApiError(422, "targets must be an object, e.g. {\"vocal_to_mix_lu\": -6}")
    targets = parse_targets(targets_raw, "targets")
    preset = check_preset(body.get("reverb_preset"))
    resolve = body.get("resolve", False)
    if not isinstance(resolve, bool):
        raise ApiError(422, "resolve must be true or false")
    if given is None and not targets and not preset:
        raise ApiError(422, "nothing to change: send params (a MixParams document), "
                            "targets or reverb_preset")
    return given, targets, preset, resolve


@router.delete("/api/mixes/{mid}", status_code=204, response_class=Response,
               responses=errs(404), summary="Delete a mix and all its files")
def delete_mix(mid: str, studio: StudioDep) -> Response:
    studio.store.delete(mid)
    return Response(status_code=204)


@router.get(
    "/api/mixes/{mid}/audio/{kind}", response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}}, **errs(404, 409, 503)},
    summary="Rendered audio (WAV)",
    description=(
        "`kind`: `mix` (the master output), `vocal` (the vocal as it sits in the mix, "
        "reverb included), `vocal_dry` (before the reverb), `backing` (after its gain), "
        "or `plain` (the plain sum of the two inputs at the mix's integrated loudness, "
        "through the same master stage: the A of an A/B comparison). 24-bit PCM, or "
        "32-bit float when a stem reaches full scale."),
)
async def get_audio(mid: str, kind: str, studio: StudioDep) -> Any:
    store = studio.store
    d = store.path(mid)
    if kind not in AUDIO_KINDS:
        raise ApiError(404, f"no audio called {short_repr(kind, 40)}: use one of "
                            f"{', '.join(AUDIO_KINDS)}", code="request.not_found")
    meta = studio.require_done(d)
    if kind == "plain":
        p = studio.cached_plain(d, meta) or await finished(
            studio.submit(mid, lambda: studio.make_plain(mid)))
    else:
        p = store.rev_dir(d, int(meta.get("revision") or 0)) / f"{kind}.wav"
    return FileResponse(store.regular_file(p), media_type="audio/wav",
                        filename=f"{meta.get('name', 'vocalmix')}-{kind}.wav",
                        headers={"Cache-Control": "no-cache"})


@router.get("/api/mixes/{mid}/params.json", response_class=FileResponse,
            responses={200: {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/MixParams"}}}}, **errs(404, 409)},
            summary="Download the params document")
def get_params_file(mid: str, studio: StudioDep) -> Any:
    d = studio.store.path(mid)
    meta = studio.require_done(d)
    p = studio.store.rev_dir(d, int(meta.get("revision") or 0)) / "params.json"
    return FileResponse(studio.store.regular_file(p), media_type="application/json",
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
