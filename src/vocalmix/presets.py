"""Named reverb presets: the reverb send fitted to real impulse responses.

``assets/reverb_presets.json`` is written by ``vocalmix fit-reverb`` (see
:mod:`vocalmix.fitreverb`); ``vocalmix mix --reverb-preset NAME`` applies one. A preset
sets the reverb's ``room_size``, ``damping``, ``wet_level_db`` and ``pre_delay_ms``, and the
``reverb_decay_s`` target to the decay those knobs give.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

from .errors import ParamsError
from .params import MixParams


@lru_cache(maxsize=1)
def presets() -> dict[str, dict]:
    """All shipped presets by name (empty if none ship)."""
    from importlib.resources import files

    try:
        text = files("vocalmix").joinpath("assets", "reverb_presets.json").read_text("utf-8")
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)


def apply_preset(params: MixParams, name: str) -> MixParams:
    """``params`` with the reverb of preset ``name``."""
    from .reverb import decay_for_room_size

    all_ = presets()
    if name not in all_:
        known = ", ".join(sorted(all_)) or "none shipped"
        raise ParamsError(f"unknown reverb preset {name!r}; known: {known}")
    p = all_[name]["params"]
    decay = decay_for_room_size(p["room_size"], p["damping"])
    rv = replace(params.vocal.reverb, room_size=p["room_size"], damping=p["damping"],
                 wet_level_db=min(6.0, p["wet_level_db"]), pre_delay_ms=p["pre_delay_ms"],
                 decay_s=decay)
    params = replace(params, vocal=replace(params.vocal, reverb=rv))
    return params.with_targets(reverb_decay_s=float(min(max(decay, 0.2), 12.0)))
