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
at most +6 dB, the params' maximum: the fit is bounded there, so a room wetter than that
is a little drier as a preset (its ``c50_db_fitted`` shows by how much).

``vocalmix mix --reverb-preset NAME`` applies one (:func:`apply_preset`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

from vocalmix.core.errors import ParamsError
from vocalmix.core.params import TARGET_DECAY_RANGE_S, MixParams, Reverb, clip, spec_of

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


def _entry(name: str) -> dict:
    all_ = presets()
    if name not in all_:
        known = ", ".join(sorted(all_)) or "none shipped"
        raise ParamsError(f"unknown reverb preset {name!r}; known: {known}")
    return all_[name]


def preset_reverb(name: str) -> Reverb:
    """The :class:`~vocalmix.core.params.Reverb` of preset ``name`` (enabled).

    Raises :class:`~vocalmix.core.errors.ParamsError` for an unknown name (listing the known
    ones) or an entry that is not a valid reverb. ``wet_level_db`` is capped at +6 dB.
    An entry in the older format (``"params"``: Freeverb ``room_size``, ``damping``,
    ``wet_level_db``, ``pre_delay_ms``) gives a ``freeverb`` reverb.
    """
    e = _entry(name)
    try:
        if "reverb" in e:
            d = dict(e["reverb"])
            d["band_decay_ratios"] = tuple(d.get("band_decay_ratios", (1.0,) * 7))
            d["wet_level_db"] = min(WET_LEVEL_MAX_DB, float(d["wet_level_db"]))
            d.setdefault("type", "synthetic")
            return Reverb(enabled=True, **d)
        from vocalmix.core.reverb import decay_for_room_size

        q = e["params"]
        decay = decay_for_room_size(q["room_size"], q["damping"])
        return Reverb(enabled=True, type="freeverb", room_size=q["room_size"],
                      damping=q["damping"], pre_delay_ms=q["pre_delay_ms"],
                      wet_level_db=min(WET_LEVEL_MAX_DB, q["wet_level_db"]),
                      decay_s=clip(Reverb, "decay_s", decay))
    except (KeyError, TypeError, ValueError) as ex:
        raise ParamsError(f"reverb preset {name!r} is malformed: {ex}") from None


def apply_preset(params: MixParams, name: str) -> MixParams:
    """``params`` with the reverb of preset ``name`` and ``targets.reverb_decay_s`` set to
    its decay (clipped to the target's 0.2 to 12 s).

    The synthetic reverb's other fields (``room_size``, ``damping``: Freeverb's knobs)
    keep their values; they are ignored by the ``synthetic`` type.
    """
    rv = preset_reverb(name)
    cur = params.vocal.reverb
    if rv.type == "synthetic":
        rv = replace(rv, room_size=cur.room_size, damping=cur.damping)
    params = replace(params, vocal=replace(params.vocal, reverb=rv))
    lo, hi = TARGET_DECAY_RANGE_S
    return params.with_targets(reverb_decay_s=float(min(max(rv.decay_s, lo), hi)))
