"""The public Python API: mix, estimate and render, from files or arrays.

These functions are what ``import vocalmix`` offers (see :mod:`vocalmix`); they wrap
:mod:`vocalmix.pipeline` (which works on prepared arrays) with input handling: each
input may be a path, an :class:`~vocalmix.core.audio.Audio`, or a float array shaped
``(n,)`` or ``(n, channels)`` with ``sample_rate`` given. Inputs are validated as files
are (length, channels, NaN, silence), brought to one rate (the higher of the two
inputs' rates, or ``mix_rate``; soxr resamples the other) and length (the shorter padded
with silence), exactly as the command line does, so ``vocalmix.mix("take.wav",
"backing.wav")`` gives the same samples as ``vocalmix mix take.wav backing.wav``.

A karaoke app mixes a take in-process with::

    import vocalmix

    result = vocalmix.mix("take.wav", "instrumental.wav")
    vocalmix.write_audio("mix.wav", result.mix, result.sample_rate)
    print(result.params.targets.vocal_to_mix_lu, result.params.achieved.mix_integrated_lufs)
    edited = result.params.with_targets(vocal_to_mix_lu=-5.0)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocalmix.core.audio import Audio, AudioBytes, prepare_pair, read_audio, validate_signal
from vocalmix.core.errors import ChannelLayoutError, ParamsError
from vocalmix.core.params import MixParams, is_number
from vocalmix.core.progress import Progress, no_progress, warnings_of

#: an array of at most this many rows and more columns than that is taken for a
#: (channels, samples) array given the wrong way round
MAX_CHANNELS_GUESS = 64

#: what an input may be: a file path, a file's bytes or a binary file object, decoded
#: :class:`Audio`, or samples (with a rate)
AudioInput = str | os.PathLike[str] | Audio | np.ndarray | AudioBytes


@dataclass(frozen=True)
class MixResult:
    """A rendered mix and the parameters that made it.

    Attributes:
        params: every setting, target and achieved figure (edit and re-render it).
        mix: the master output, float32 ``(n, 2)``.
        vocal: the vocal as it sits in the mix (reverb included), pre-master.
        vocal_dry: the vocal after EQ, compressor and gain, before reverb.
        backing: the backing after its gain, pre-master.
        sample_rate: Hz.
        notes: what was done to the inputs and what the estimator and resolvers did.
    """

    params: MixParams
    mix: np.ndarray
    vocal: np.ndarray
    vocal_dry: np.ndarray
    backing: np.ndarray
    sample_rate: int
    notes: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """What may be wrong with the inputs, for a person to check (a take of steady
        noise, a vocal heard for a moment, a backing that ends early, a vocal out of
        phase...): the notes that begin with ``warning:``, without that word."""
        return warnings_of(self.notes)


def _as_audio(x: AudioInput, sample_rate: int | None, what: str) -> Audio:
    if isinstance(x, Audio):
        # checked and laid out as an array is (one built by hand, mono or with NaN, reached
        # the render as it was and failed there with a bare ValueError); for one that
        # read_audio made, a pass that changes nothing
        samples, notes, ch = validate_signal(np.asarray(x.samples), x.sample_rate,
                                             label=x.label or what)
        if samples is x.samples and not notes:
            return x
        return dataclasses.replace(x, samples=samples, notes=(*x.notes, *notes),
                                   source_channels=ch)
    if isinstance(x, (str, os.PathLike)):
        return read_audio(x, label=f"{what} {Path(x)}")
    if isinstance(x, np.ndarray):
        if sample_rate is None:
            raise ParamsError(f"the {what} is an array: give its sample_rate in Hz")
        a = np.asarray(x)
        if a.ndim == 2 and 0 < a.shape[0] <= MAX_CHANNELS_GUESS < a.shape[1]:
            raise ChannelLayoutError(
                f"the {what} array's shape {a.shape} looks like (channels, samples); "
                "vocalmix takes (samples, channels): pass it transposed (x.T)")
        samples, notes, ch = validate_signal(a, sample_rate, label=what)  # (checks the rate)
        return Audio(samples, int(sample_rate), f"<{what} array>", ch, notes)
    if isinstance(x, bytes | bytearray | memoryview) or hasattr(x, "read"):
        return read_audio(x, label=what)  # an upload held in memory
    raise ParamsError(f"the {what} must be a path, the file's bytes, a binary file object, "
                      f"an Audio or a numpy array, not {type(x).__name__}")


def _number(name: str, v: object) -> float | None:
    """An optional number argument (``None``, or an int or float: not a bool or a
    string), as a float; its range is checked where it is used."""
    if v is None:
        return None
    if not is_number(v):
        raise ParamsError(f"{name} must be a number, not {type(v).__name__} {v!r}")
    return float(v)


def _overrides(locks: object, **targets: object) -> dict[str, Any]:
    """The target overrides (``targets``: a number or ``None`` each; their ranges are
    checked where they are used) and ``locks`` of :func:`mix` and :func:`estimate`,
    checked, as :mod:`vocalmix.pipeline`'s keyword arguments."""
    return {"locks": _locks(locks), **{
        k: v if k == "vocal_offset_ms" and v == "auto" else _number(k, v)
        for k, v in targets.items()}}


def _locks(locks: object) -> tuple[str, ...]:
    """``locks`` as a tuple of setting paths: one path may be given as a string."""
    if locks is None:
        return ()
    if isinstance(locks, str):
        return (locks,)
    if not isinstance(locks, (list, tuple)) or not all(isinstance(k, str) for k in locks):
        raise ParamsError("locks must be a list of setting paths such as 'vocal.gain_db'")
    return tuple(locks)


def _pair(vocal: AudioInput, backing: AudioInput, sample_rate: int | None,
          mix_rate: int | None = None) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    from vocalmix.core.parallel import beside

    # two files decode on two threads (libsndfile and FFmpeg let go of the GIL); the
    # vocal's error first when both fail
    b, v = beside(lambda: _as_audio(backing, sample_rate, "backing"),
                  lambda: _as_audio(vocal, sample_rate, "vocal"))
    return prepare_pair(v, b, sample_rate=mix_rate)


def default_method() -> str:
    """The estimator used when none is named: the one that measures best (see the
    shipped models' metadata), ``baseline`` otherwise."""
    from vocalmix.estimators.registry import default_method as best

    return best()


def _preset_kwargs(ref: str | None) -> dict[str, Any]:
    """``reverb_preset`` and ``preset_library`` for the pipeline from a preset reference
    (a shipped preset's name, ``FILE.json#NAME`` or a one-preset ``FILE.json``)."""
    if ref is None:
        return {}
    from vocalmix.estimators.presets import resolve_preset_ref

    name, library = resolve_preset_ref(ref)
    return {"reverb_preset": name, "preset_library": library}


def mix(
    vocal: AudioInput,
    backing: AudioInput,
    sample_rate: int | None = None,
    *,
    method: str | None = None,
    params: MixParams | None = None,
    mix_rate: int | None = None,
    genre: str | None = None,
    vocal_to_mix_lu: float | None = None,
    vocal_lra_lu: float | None = None,
    reverb_decay_s: float | None = None,
    mix_lufs: float | None = None,
    amount: float | None = None,
    vocal_offset_ms: float | str | None = None,
    locks: tuple[str, ...] = (),
    reverb_preset: str | None = None,
    progress: Progress | None = no_progress,
) -> MixResult:
    """Estimate the parameters, resolve them and render the mix.

    Args:
        vocal, backing: paths, a file's bytes or a binary file object (an upload held in
            memory), :class:`Audio`, or arrays (then ``sample_rate``, Hz).
        method: ``baseline`` or ``model``; default :func:`default_method`.
        params: start from this document's settings and targets instead of estimating
            (only the resolved settings are recomputed).
        mix_rate: the mix's sample rate, Hz (default: the higher of the inputs' rates).
        genre: the song's genre if known (MUSDB18's genre names or ``other``), used by the
            ``model`` method's level head.
        vocal_to_mix_lu, vocal_lra_lu, reverb_decay_s: target overrides (LU, LU, s); an
            LRA given replaces the model method's momentary-range target.
        mix_lufs: the master's integrated loudness, LUFS, under the true-peak ceiling.
        amount: how much of the chosen processing to apply (0 none, 1 as chosen, 2 twice).
        vocal_offset_ms: move the take against the backing before anything else, ms
            (positive later, negative earlier: -40 sets right a take recorded 40 ms late),
            or ``"auto"``: by the recording's latency where the take carries a copy of the
            backing (sung along to speakers), else not at all; default ``params``'
            offset, else 0.
        locks: setting or target paths (e.g. ``"vocal.gain_db"``) a re-resolve keeps.
        reverb_preset: a reverb preset's name (``vocalmix presets``) or ``FILE.json#name``.
        progress: called with :class:`~vocalmix.core.progress.ProgressEvent` values.
    """
    from vocalmix import pipeline

    if params is not None and not isinstance(params, MixParams):
        raise ParamsError("params must be a MixParams (read a document with "
                          "vocalmix.core.audio.read_params or MixParams.from_dict), not "
                          f"{type(params).__name__}")
    o = _overrides(locks, vocal_to_mix_lu=vocal_to_mix_lu, vocal_lra_lu=vocal_lra_lu,
                   reverb_decay_s=reverb_decay_s, mix_lufs=mix_lufs, amount=amount,
                   vocal_offset_ms=vocal_offset_ms)
    v, b, sr, notes = _pair(vocal, backing, sample_rate, mix_rate)
    p, r, est = pipeline.mix(
        v, b, sr, method=method or default_method(), base=params, genre=genre,
        **o, **_preset_kwargs(reverb_preset), progress=progress or no_progress)
    return MixResult(p, r.mix, r.vocal, r.vocal_dry, r.backing, sr,
                     tuple(notes) + tuple(est.notes))


def estimate(
    vocal: AudioInput,
    backing: AudioInput,
    sample_rate: int | None = None,
    *,
    method: str | None = None,
    genre: str | None = None,
    vocal_to_mix_lu: float | None = None,
    vocal_lra_lu: float | None = None,
    reverb_decay_s: float | None = None,
    mix_lufs: float | None = None,
    amount: float | None = None,
    vocal_offset_ms: float | str | None = None,
    locks: tuple[str, ...] = (),
    reverb_preset: str | None = None,
    progress: Progress | None = no_progress,
) -> MixParams:
    """The resolved parameters of a mix, without rendering it (see :func:`mix`)."""
    from vocalmix import pipeline

    o = _overrides(locks, vocal_to_mix_lu=vocal_to_mix_lu, vocal_lra_lu=vocal_lra_lu,
                   reverb_decay_s=reverb_decay_s, mix_lufs=mix_lufs, amount=amount,
                   vocal_offset_ms=vocal_offset_ms)
    v, b, sr, _ = _pair(vocal, backing, sample_rate)
    return pipeline.estimate_params(
        v, b, sr, method=method or default_method(), genre=genre, **o,
        **_preset_kwargs(reverb_preset), progress=progress or no_progress).params


def render(
    vocal: AudioInput,
    backing: AudioInput,
    params: MixParams | dict | str | os.PathLike,
    sample_rate: int | None = None,
    *,
    progress: Progress | None = no_progress,
) -> MixResult:
    """Render exactly what ``params`` says (a :class:`MixParams`, its dict, or the path
    of a params JSON document); ``achieved`` is measured on the result."""
    from vocalmix import pipeline
    from vocalmix.core.audio import read_params

    if isinstance(params, dict):
        doc = MixParams.from_dict(params)
    elif isinstance(params, (str, os.PathLike)):
        doc = read_params(params)
    elif isinstance(params, MixParams):
        doc = params
    else:
        raise ParamsError("params must be a MixParams, its dict or the path of a params "
                          f"JSON document, not {type(params).__name__}")
    v, b, sr, notes = _pair(vocal, backing, sample_rate)
    p, r = pipeline.render_params(v, b, sr, doc, progress or no_progress)
    return MixResult(p, r.mix, r.vocal, r.vocal_dry, r.backing, sr, tuple(notes))


__all__ = ["AudioInput", "MixResult", "default_method", "estimate", "mix", "render"]
