"""The HTTP API's documented shapes: response models and the OpenAPI schema of the params.

Ranges are not written here: every ``minimum``/``maximum`` of the ``MixParams`` schema and
of the target fields comes from :func:`vocalmix.core.params.param_specs`, the one place
they are declared.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from vocalmix.core.params import DECAY_BANDS_HZ, param_specs


class Progress(BaseModel):
    stage: str = Field(description="what is running, a dotted name: `queued`, `decode`, "
                                   "`estimate.baseline`, `resolve.compressor`, `render`, "
                                   "`write`, `done`...")
    fraction: float = Field(description="share of the work done, 0 to 1")
    message: str = Field("", description="the same, for a person")


class ErrorInfo(BaseModel):
    status: int = Field(description="the HTTP status this failure maps to")
    code: str = Field("error", description="stable identifier of the kind of failure "
                                           "(e.g. `audio.unreadable`, `job.interrupted`)")
    detail: str


class Moved(BaseModel):
    path: str = Field(description="the setting, e.g. `vocal.gain_db`")
    before: float | None = Field(description="its value before the re-resolve")
    after: float | None = Field(description="its value after")
    text: str = Field(description="the same, for a person: `path: before -> after`")


class Mix(BaseModel):
    id: str = Field(description="unguessable id of the mix (24 characters)")
    status: str = Field(description="mixing, done or failed")
    revision: int = Field(description="counts renders; changes whenever the audio does")
    progress: Progress
    params: dict[str, Any] | None = Field(
        None, description="the MixParams document (see the MixParams schema), with "
                          "`achieved` figures; null until the mix is done")
    notes: list[str] = Field(default_factory=list, description="what the pipeline did")
    warnings: list[str] = Field(
        default_factory=list, description="what may be wrong with the inputs, for a person "
                                          "to check (a take of steady noise, a vocal heard "
                                          "for a moment, a backing that ends early, a vocal "
                                          "out of phase...): the notes that begin with "
                                          "`warning:`, without that word")
    moved: list[Moved] = Field(
        default_factory=list, description="the settings the last re-resolve changed (an "
                                          "edit of targets, amount or locks, or a new mix "
                                          "from a params document); empty after an exact "
                                          "render")
    error: ErrorInfo | None = Field(None, description="why the mix failed")
    name: str = Field(description="label for downloads (from the vocal's file name)")
    sample_rate: int | None = Field(None, description="Hz")
    duration_s: float | None = Field(None, description="s")
    links: dict[str, str] = Field(description="URLs of the audio (WAV), params and views")


class Error(BaseModel):
    detail: str = Field(description="what is wrong and what to do about it")
    code: str = Field(description="stable identifier of the kind of error: a library "
                                  "error's own code (`audio.unreadable`, `params.invalid`"
                                  "...) or the server's (`mix.not_found`, `server.busy`...)")


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


class ParamSpec(BaseModel):
    min: float = Field(description="smallest allowed value, in `unit`")
    max: float = Field(description="largest allowed value, in `unit`")
    unit: str = Field(description="dB, LU, Hz, ms, s, dBTP, ratio or empty")
    label: str = Field(description="a short name for a person")
    doc: str = Field(description="what the value does")
    step: float = Field(description="a sensible editing step, in `unit`")
    log: bool = Field(description="best edited on a logarithmic scale")
    view: list[float] = Field(description="the range a control shows by default")
    default: float | None = Field(description="the value of a new document")


class ParamsSpec(BaseModel):
    params: dict[str, ParamSpec] = Field(
        description="every numeric parameter by its path in the params document; list "
                    "items are written `[]` (`vocal.eq_bands[].gain_db`)")
    decay_bands_hz: list[float] = Field(description="octave bands of "
                                                    "`vocal.reverb.band_decay_ratios`, Hz")
    reference_band: int = Field(description="index of the 1 kHz band, whose ratio is 1")
    eq_kinds: list[str] = Field(description="kinds of an EQ band")
    max_eq_bands: int = Field(description="the most EQ bands a document may have")
    reverb_types: list[str] = Field(description="reverb types")
    delay_notes: list[str] = Field(description="values of `vocal.delay.note`: a note "
                                               "length at the tempo, or `free` (the delay "
                                               "time as written)")
    lockable_paths: list[str] = Field(description="every path `locks` may name")
    resolved_paths: list[str] = Field(
        description="the settings a re-resolve writes: a hand edit of one of them is "
                    "kept through a target change only if it (or its group) is locked")
    reason_sources: list[str] = Field(description="values of a reason's `source`")


class MethodInfo(BaseModel):
    name: str = Field(description="the value of `method`")
    description: str = Field(description="what it does, for a person")
    vocal_to_mix_mae_lu: float | None = Field(
        None, description="its cross-validated vocal-to-mix error on the training songs "
                          "(mean absolute, LU, grouped by artist), as the shipped level "
                          "model recorded it; null if not recorded")


class Methods(BaseModel):
    default: str = Field(description="the method a mix without `method` uses")
    methods: list[MethodInfo]
    genres: list[str] = Field(description="the names `genre` accepts")


LOCKS_DOC = ("paths of settings or targets to keep as they are when re-resolving (e.g. "
             "`vocal.gain_db`, `vocal.compressor`, `targets.vocal_lra_lu`; "
             "`lockable_paths` of GET /api/params/spec lists them)")

METHOD_TEXT = {
    "baseline": "rules from the literature: the vocal at a fixed level against the mix, "
                "EQ against masking, a reverb time from the tempo",
    "model": "the baseline's settings, with the level and dynamics (and, where its "
             "models are shipped, EQ and reverb) learned from professionally mixed songs",
}


def methods() -> dict[str, Any]:
    """The body of ``GET /api/methods``."""
    from vocalmix.core.errors import ModelError
    from vocalmix.estimators.level import GENRES, OTHER_GENRE, shipped_model
    from vocalmix.estimators.registry import METHODS, RUNNABLE, default_method

    try:
        summary = (shipped_model().meta.get("cross_validated") or {}).get("summary") or {}
    except ModelError:
        summary = {}

    def mae(name: str) -> float | None:
        try:
            v = float(summary[RUNNABLE[name]]["vocal_to_mix_lu"]["mae"])
        except (KeyError, TypeError, ValueError):
            return None
        return v if v == v and abs(v) != float("inf") else None

    return {"default": default_method(),
            "methods": [{"name": m, "description": METHOD_TEXT.get(m, ""),
                         "vocal_to_mix_mae_lu": mae(m)} for m in METHODS],
            "genres": [*GENRES, OTHER_GENRE]}


def params_spec() -> dict[str, Any]:
    """The body of ``GET /api/params/spec``."""
    from vocalmix.core.params import (
        DELAY_NOTES,
        EQ_KINDS,
        MAX_EQ_BANDS,
        REASON_SOURCES,
        REVERB_TYPES,
        lockable_paths,
    )
    from vocalmix.pipeline import RESOLVED_SETTINGS

    return {"params": param_specs(), "decay_bands_hz": list(DECAY_BANDS_HZ),
            "reference_band": DECAY_BANDS_HZ.index(1000.0), "eq_kinds": list(EQ_KINDS),
            "max_eq_bands": MAX_EQ_BANDS, "reverb_types": list(REVERB_TYPES),
            "delay_notes": list(DELAY_NOTES), "lockable_paths": sorted(lockable_paths()),
            "resolved_paths": list(RESOLVED_SETTINGS),
            "reason_sources": list(REASON_SOURCES)}


def mix_lufs_property(form: bool = False) -> dict[str, Any]:
    """JSON-schema property of the mix-loudness target (range from the declaration): a
    number or null in JSON, text (a number or ``off``) in a form."""
    s = param_specs()["targets.mix_lufs"]
    doc = (f"target: integrated loudness of the master, LUFS ({s['min']:g} to "
           f"{s['max']:g}), reached under the true-peak ceiling; "
           f"{'`off` or empty' if form else 'null'} turns it off")
    number = {"type": "number", "minimum": s["min"], "maximum": s["max"]}
    if form:
        return {"type": "string", "description": doc}
    return {"anyOf": [number, {"type": "null"}], "description": doc}


def nullable_target_property(name: str, off: str) -> dict[str, Any]:
    """JSON-schema property of a target that may be off (range from the declaration): a
    number or null, which turns it off (``off`` says what then applies)."""
    s = param_specs()[f"targets.{name}"]
    return {"anyOf": [{"type": "number", "minimum": s["min"], "maximum": s["max"]},
                      {"type": "null"}],
            "description": f"target: {s['doc'] or s['label']}, {s['unit']} ({s['min']:g} to "
                           f"{s['max']:g}); null turns it off: {off}"}


def amount_property() -> dict[str, Any]:
    """JSON-schema property of ``amount`` (range from the declaration)."""
    s = param_specs()["amount"]
    return {"type": "number", "minimum": s["min"], "maximum": s["max"],
            "description": f"{s['doc']} ({s['min']:g} to {s['max']:g})"}


def target_properties(names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """JSON-schema properties of the target overrides, ranges from the declaration."""
    specs = param_specs()
    out = {}
    for k in names:
        s = specs[f"targets.{k}"]
        out[k] = {"type": "number", "minimum": s["min"], "maximum": s["max"],
                  "description": f"target: {s['doc'] or s['label']}, {s['unit']} "
                                 f"({s['min']:g} to {s['max']:g})"}
    return out


def target_summary(names: tuple[str, ...]) -> str:
    """``vocal_to_mix_lu` (LU, -20 to -0.5), ...`` for descriptions."""
    specs = param_specs()
    return ", ".join(f"`{k}` ({specs['targets.' + k]['unit']}, "
                     f"{specs['targets.' + k]['min']:g} to {specs['targets.' + k]['max']:g})"
                     for k in names)


def mix_params_schemas() -> dict[str, dict[str, Any]]:
    """The component schemas of the params document: ``MixParams`` and its parts, each
    numeric property with the ``minimum``/``maximum`` of its declaration."""
    import typing
    from dataclasses import fields, is_dataclass

    from pydantic import TypeAdapter

    from vocalmix.core.params import MixParams

    mp = TypeAdapter(MixParams).json_schema(ref_template="#/components/schemas/{model}",
                                            mode="serialization")
    comps: dict[str, dict[str, Any]] = mp.pop("$defs", {})
    mp["properties"] = {"format": {"type": "string", "const": "vocalmix.params"},
                        **mp.get("properties", {})}
    comps["MixParams"] = mp
    specs = param_specs()

    def ranged(prop: dict[str, Any], spec: dict[str, Any]) -> None:
        prop["minimum"], prop["maximum"] = spec["min"], spec["max"]
        unit = f" ({spec['unit']})" if spec["unit"] else ""
        prop.setdefault("description", f"{spec['label']}{unit}"
                                       f"{': ' + spec['doc'] if spec['doc'] else ''}")

    seen: set[type] = set()

    def walk(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        schema = comps.get(cls.__name__, mp if cls is MixParams else None)
        path = getattr(cls, "PATH", "")
        for f in fields(cls):
            hint = hints[f.name]
            if schema is not None and f"{path}.{f.name}" in specs:
                ranged(schema["properties"][f.name], specs[f"{path}.{f.name}"])
            if is_dataclass(hint):
                walk(hint)  # type: ignore[arg-type]
            elif typing.get_origin(hint) is tuple and is_dataclass(typing.get_args(hint)[0]):
                walk(typing.get_args(hint)[0])
    walk(MixParams)
    ratios = comps.get("Reverb", {}).get("properties", {}).get("band_decay_ratios")
    if ratios is not None and isinstance(ratios.get("items"), dict):
        ranged(ratios["items"], specs["vocal.reverb.band_decay_ratios[]"])
    return comps


__all__ = ["LOCKS_DOC", "Error", "ErrorInfo", "MethodInfo", "Methods", "Mix", "Moved",
           "ParamSpec", "ParamsSpec", "Preset", "Progress", "amount_property", "methods",
           "mix_lufs_property", "mix_params_schemas", "params_spec", "target_properties",
           "target_summary"]
