"""Named reverb presets: the ``synthetic`` reverb fitted to impulse responses.

``assets/reverb_presets.json`` is written by ``vocalmix fit-reverb --library`` (see
:mod:`vocalmix.training.fitreverb` and :mod:`vocalmix.training.irlib`): one preset per measured room
(``origin`` ``real``), per setting of the Calf and TAP plug-in reverbs (``calf``,
``tap``) and per point of a grid of pedalboard's built-in reverb (``pedalboard``). Each
entry::

    {"source": "ir/Voxengo/trig_room.wav" (or the plug-in and its settings, one line),
     "origin": "real" | "pedalboard" | "calf" | "tap",
     "reverb": {"type": "synthetic", "decay_s": ..., "band_decay_ratios": [7 values],
                "width": ..., "wet_level_db": ..., "pre_delay_ms": ...},
     "t30_s_target": {"125": ..., ..., "8000": ...}, "t30_s_fitted": {...},
     "c50_db_target": ..., "c50_db_fitted": ..., "within_10pct_500_4k": true | false,
     "settings": {...}  (plug-in presets only: the plug-in's parameters)}

(T30 per octave band in s, ``null`` where not measurable; C50 in dB.) ``wet_level_db`` is
at most the params' maximum (+12 dB): the fit is bounded there, so a room wetter than that
is a little drier as a preset (its ``c50_db_fitted`` shows by how much).

``vocalmix mix --reverb-preset NAME`` applies one (:func:`apply_preset`); ``vocalmix
presets`` lists them (:func:`preset_rows`). A presets file that ``vocalmix fit-reverb``
wrote has the same layout: ``FILE.json#NAME`` names one of its presets, ``FILE.json``
alone its only one (:func:`resolve_preset_ref`, :func:`presets_from_file`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from vocalmix.core.errors import ParamsError
from vocalmix.core.params import (
    TARGET_DECAY_RANGE_S,
    MixParams,
    Reverb,
    clip,
    is_number,
    spec_of,
)

WET_LEVEL_MAX_DB = spec_of(Reverb, "wet_level_db").hi


@lru_cache(maxsize=1)
def presets() -> dict[str, dict]:
    """All shipped presets by name (empty if none ship)."""
    from importlib.resources import files

    try:
        text = files("vocalmix").joinpath("assets", "reverb_presets.json").read_text("utf-8")
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)


def presets_from_file(path: str | os.PathLike[str]) -> dict[str, dict]:
    """The presets of a file in the layout of ``assets/reverb_presets.json`` (what
    ``vocalmix fit-reverb`` writes), by name. Raises
    :class:`~vocalmix.core.errors.ParamsError` when it cannot be read or is not such a
    file; its entries are checked when used (:func:`preset_reverb`)."""
    from vocalmix.core.audio import read_json_text
    from vocalmix.core.jsondoc import loads

    text = read_json_text(path, "presets file")
    doc = loads(text, what=f"{path}: presets file")  # bounded numbers and nesting
    if (not isinstance(doc, dict) or not doc
            or not all(isinstance(e, dict) and ("reverb" in e or "params" in e)
                       for e in doc.values())):
        raise ParamsError(f"{path}: not a presets file (a JSON object of named presets, each "
                          "with its \"reverb\", as vocalmix fit-reverb writes)")
    return doc


def resolve_preset_ref(ref: str) -> tuple[str, Mapping[str, dict] | None]:
    """``(name, library)`` for a preset reference: ``NAME`` (a shipped preset; library
    ``None``), ``FILE.json#NAME``, or ``FILE.json`` holding one preset. Raises
    :class:`~vocalmix.core.errors.ParamsError` for an unreadable file or a file of several
    presets without a name (listing them)."""
    if "#" in ref:
        path, name = ref.rsplit("#", 1)
        return name, presets_from_file(path)
    if ref.lower().endswith(".json") or "/" in ref or os.sep in ref:
        library = presets_from_file(ref)
        if len(library) != 1:
            names = ", ".join(sorted(library))
            raise ParamsError(f"{ref}: holds {len(library)} presets; name one as "
                              f"{ref}#NAME (one of: {names})")
        return next(iter(library)), library
    return ref, None


def _entry(name: str, library: Mapping[str, dict] | None = None) -> dict:
    all_ = presets() if library is None else library
    if name not in all_:
        known = ", ".join(sorted(all_)) or "none shipped"
        raise ParamsError(f"unknown reverb preset {name!r}; known: {known}")
    return all_[name]


def preset_rows(library: Mapping[str, dict] | None = None) -> list[dict]:
    """One row per preset (the shipped ones, or ``library``'s), sorted by name: ``name``,
    ``type`` (the reverb's), ``origin``, ``decay_s`` (at 1 kHz), ``wet_level_db``,
    ``pre_delay_ms``, ``source``; an entry that is not a valid reverb gets ``type``
    ``"invalid"`` and ``None`` figures."""
    rows = []
    for name in sorted(presets() if library is None else library):
        e = _entry(name, library)
        try:
            rv = preset_reverb(name, library)
            fig: dict = {"type": rv.type, "decay_s": round(rv.decay_s, 3),
                         "wet_level_db": round(rv.wet_level_db, 2),
                         "pre_delay_ms": round(rv.pre_delay_ms, 1)}
        except ParamsError:
            fig = {"type": "invalid", "decay_s": None, "wet_level_db": None, "pre_delay_ms": None}
        rows.append({"name": name, **fig, "origin": str(e.get("origin", "")),
                     "source": str(e.get("source", ""))})
    return rows


def preset_reverb(name: str, library: Mapping[str, dict] | None = None) -> Reverb:
    """The :class:`~vocalmix.core.params.Reverb` of preset ``name`` (enabled).

    Raises :class:`~vocalmix.core.errors.ParamsError` for an unknown name (listing the known
    ones) or an entry that is not a valid reverb. ``wet_level_db`` is capped at the params' maximum.
    An entry in the older format (``"params"``: Freeverb ``room_size``, ``damping``,
    ``wet_level_db``, ``pre_delay_ms``) gives a ``freeverb`` reverb. ``library``: the
    presets to look in (e.g. :func:`presets_from_file`); default the shipped ones.
    """
    e = _entry(name, library)
    where = f"reverb preset {name!r}"
    key = "reverb" if "reverb" in e else "params"
    got = e.get(key)
    if not isinstance(got, dict):
        raise ParamsError(f"{where}: {key!r} is not a JSON object of reverb settings")
    d: dict[str, Any] = dict(got)

    def number(field: str) -> float:  # a finite number, never a bool, a string or null
        if field not in d:
            raise ParamsError(f"{where}: {key}.{field} is missing")
        v = d[field]
        if not (is_number(v) and math.isfinite(v)):
            raise ParamsError(f"{where}: {key}.{field} = {v!r} is not a finite number")
        return float(v)

    try:
        if key == "reverb":
            from dataclasses import fields

            known = {f.name for f in fields(Reverb)} - {"enabled"}
            unknown = sorted(set(d) - known)
            if unknown:
                raise ParamsError(f"{where}: reverb.{unknown[0]} is not a reverb setting "
                                  f"(known: {', '.join(sorted(known))})")
            ratios = d.get("band_decay_ratios", (1.0,) * 7)
            if not isinstance(ratios, (list, tuple)):
                raise ParamsError(f"{where}: reverb.band_decay_ratios = {ratios!r} is not a "
                                  "list of numbers")
            d["band_decay_ratios"] = tuple(ratios)
            d["wet_level_db"] = min(WET_LEVEL_MAX_DB, number("wet_level_db"))
            d.setdefault("type", "synthetic")
            return Reverb(enabled=True, **d)
        from vocalmix.core.reverb import decay_for_room_size

        room, damping = number("room_size"), number("damping")
        decay = decay_for_room_size(room, damping)
        return Reverb(enabled=True, type="freeverb", room_size=room, damping=damping,
                      pre_delay_ms=number("pre_delay_ms"),
                      wet_level_db=min(WET_LEVEL_MAX_DB, number("wet_level_db")),
                      decay_s=clip(Reverb, "decay_s", decay))
    except ParamsError as ex:
        if str(ex).startswith(where):
            raise
        raise ParamsError(f"{where}: {ex}") from None  # a setting out of its range
    except (TypeError, ValueError) as ex:  # a field Reverb does not take, a wrong type
        raise ParamsError(f"{where} is malformed: {ex}") from None


def apply_preset(params: MixParams, name: str,
                 library: Mapping[str, dict] | None = None) -> MixParams:
    """``params`` with the reverb of preset ``name`` and ``targets.reverb_decay_s`` set to
    its decay (clipped to the target's 0.2 to 12 s).

    ``library``: as for :func:`preset_reverb`. The synthetic reverb's other fields
    (``room_size``, ``damping``: Freeverb's knobs) keep their values; they are ignored by
    the ``synthetic`` type.
    """
    rv = preset_reverb(name, library)
    cur = params.vocal.reverb
    if rv.type == "synthetic":
        rv = replace(rv, room_size=cur.room_size, damping=cur.damping)
    params = replace(params, vocal=replace(params.vocal, reverb=rv))
    lo, hi = TARGET_DECAY_RANGE_S
    return params.with_targets(reverb_decay_s=float(min(max(rv.decay_s, lo), hi)))
