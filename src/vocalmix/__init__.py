"""vocalmix: mix a vocal into a backing track and hand back editable parameters.

The public API::

    import vocalmix

    result = vocalmix.mix("take.wav", "instrumental.wav")    # estimate, resolve, render
    vocalmix.write_audio("mix.wav", result.mix, result.sample_rate)
    params = result.params.with_targets(vocal_to_mix_lu=-5.0)  # edit a target...
    again = vocalmix.mix("take.wav", "instrumental.wav", params=params)  # ...re-resolve
    exact = vocalmix.render("take.wav", "instrumental.wav", params)   # or render as is

Names are imported on first use, so ``import vocalmix`` itself is instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vocalmix._version import __version__

if TYPE_CHECKING:
    from vocalmix.api import MixResult, default_method, estimate, mix, render
    from vocalmix.core.audio import Audio, encode_audio, read_audio, write_audio
    from vocalmix.core.errors import (
        AudioError,
        ModelError,
        OutputError,
        ParamsError,
        TargetUnreachableError,
        VocalmixError,
    )
    from vocalmix.core.params import MixParams
    from vocalmix.core.progress import ProgressEvent
    from vocalmix.core.stream import LiveMixer

_EXPORTS = {
    "mix": "vocalmix.api",
    "estimate": "vocalmix.api",
    "render": "vocalmix.api",
    "default_method": "vocalmix.api",
    "MixResult": "vocalmix.api",
    "read_audio": "vocalmix.core.audio",
    "write_audio": "vocalmix.core.audio",
    "encode_audio": "vocalmix.core.audio",
    "Audio": "vocalmix.core.audio",
    "MixParams": "vocalmix.core.params",
    "ProgressEvent": "vocalmix.core.progress",
    "LiveMixer": "vocalmix.core.stream",
    "VocalmixError": "vocalmix.core.errors",
    "AudioError": "vocalmix.core.errors",
    "ParamsError": "vocalmix.core.errors",
    "OutputError": "vocalmix.core.errors",
    "ModelError": "vocalmix.core.errors",
    "TargetUnreachableError": "vocalmix.core.errors",
}

__all__ = [
    "Audio",
    "AudioError",
    "LiveMixer",
    "MixParams",
    "MixResult",
    "ModelError",
    "OutputError",
    "ParamsError",
    "ProgressEvent",
    "TargetUnreachableError",
    "VocalmixError",
    "__version__",
    "default_method",
    "encode_audio",
    "estimate",
    "mix",
    "read_audio",
    "render",
    "write_audio",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vocalmix' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
