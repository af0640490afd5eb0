"""analyse -> estimate -> MixParams -> render, as library calls.

:func:`estimate_params` chooses targets (by the baseline or the model) and resolves them
into settings; :func:`render_params` renders exactly what a params document says and
fills in its ``achieved`` figures; :func:`mix` does both. Every function takes float32
``(n, 2)`` arrays of one rate and length (see :func:`vocalmix.core.audio.prepare_pair`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from vocalmix.core.errors import ModelError
from vocalmix.core.measure import (
    integrated_loudness,
    loudness_range,
    momentary_loudness_range,
)
from vocalmix.core.params import Achieved, MixParams, Provenance, Reverb, clip
from vocalmix.core.progress import Progress, ProgressEvent, no_progress
from vocalmix.core.render import (
    Rendered,
    VocalParts,
    assemble,
    compressor_stage,
    eq_stage,
    render,
    reverb_wet,
)
from vocalmix.core.resolve import GainSolution, resolve_compressor, resolve_vocal_gain

_quiet = no_progress


@dataclass(frozen=True)
class Resolved:
    """What the resolvers rendered and measured on the way, reusable by the render."""

    parts: VocalParts
    gain: GainSolution
    vocal_lra_lu: float
    vocal_momentary_range_lu: float | None = None


@dataclass(frozen=True)
class Estimate:
    """Resolved params plus what the estimator and resolvers reported."""

    params: MixParams
    notes: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    resolved: Resolved | None = None


def choose_targets(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    method: str = "baseline",
    progress: Progress = _quiet,
) -> tuple[MixParams, list[str]]:
    """Targets and unresolved settings from an estimator (``baseline`` or ``model``,
    :func:`vocalmix.estimators.registry.estimate`).

    When the model is unavailable (its weights are missing, unreadable or stale:
    :class:`~vocalmix.core.errors.ModelError`), the baseline's targets are used with a
    note saying why. Any other error is a bug and propagates.
    """
    from vocalmix.estimators import registry

    notes: list[str] = []
    if method == "model":
        progress(ProgressEvent("estimate.model", 0.05, "model: predicting targets"))
        try:
            return registry.estimate(vocal, backing, sample_rate, "model")
        except ModelError as e:
            notes.append(f"{e}: fell back to the baseline")
            method = "baseline"
    if method == "baseline":
        progress(ProgressEvent("estimate.baseline", 0.05,
                               "baseline: tempo and masking analysis"))
    params, more = registry.estimate(vocal, backing, sample_rate, method)
    return params, notes + more


def resolve_params(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    params: MixParams,
    progress: Progress = _quiet,
) -> tuple[MixParams, list[str]]:
    """Turn ``params.targets`` into settings: compressor, reverb room size, vocal gain."""
    p, notes, _ = _resolve(vocal, backing, sample_rate, params, progress)
    return p, notes


def _resolve(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    params: MixParams,
    progress: Progress = _quiet,
) -> tuple[MixParams, list[str], Resolved]:
    from vocalmix.core.reverb import decay_for_room_size, decay_range_s, room_size_for_decay

    notes: list[str] = []
    t = params.targets
    vc = params.vocal
    progress(ProgressEvent("resolve.compressor", 0.3,
                           "resolving the compressor threshold for the vocal dynamics target"))
    x_eq = eq_stage(vocal, sample_rate, vc.highpass, vc.eq_bands)
    if t.vocal_momentary_range_lu is not None:
        comp = resolve_compressor(x_eq, sample_rate, t.vocal_momentary_range_lu,
                                  vc.compressor, statistic="momentary_range")
    else:
        comp = resolve_compressor(x_eq, sample_rate, t.vocal_lra_lu, vc.compressor)
    notes.append(comp.note)
    rv = vc.reverb
    if rv.type == "synthetic":  # its decay is exact: T30 at 1 kHz = the target
        from vocalmix.core.params import REVERB_DECAY_RANGE_S

        limit = REVERB_DECAY_RANGE_S[1]
        decay = min(t.reverb_decay_s, limit / max(rv.band_decay_ratios))
        if decay != t.reverb_decay_s:
            notes.append(f"reverb decay {t.reverb_decay_s:.2f} s would make a band decay "
                         f"longer than {limit:g} s: using {decay:.2f} s")
        rv = replace(rv, decay_s=float(decay))
    else:
        lo, hi = decay_range_s(rv.damping)
        room = room_size_for_decay(t.reverb_decay_s, rv.damping, sample_rate)
        decay = decay_for_room_size(room, rv.damping, sample_rate)
        if not (lo <= t.reverb_decay_s <= hi):
            notes.append(
                f"reverb decay {t.reverb_decay_s:.2f} s is outside what the reverb reaches at "
                f"damping {rv.damping:g} ({lo:.2f} to {hi:.2f} s): using {decay:.2f} s"
            )
        rv = replace(rv, room_size=float(room), decay_s=clip(Reverb, "decay_s", decay))
    progress(ProgressEvent("resolve.gain", 0.6,
                           "resolving the vocal gain for the vocal-to-mix target"))
    dry = np.asarray(compressor_stage(x_eq, sample_rate, comp.compressor), dtype=np.float32)
    parts = VocalParts(dry=dry, wet=reverb_wet(dry, sample_rate, rv))
    b = backing * np.float32(10.0 ** (params.backing.gain_db / 20.0))
    g = resolve_vocal_gain(parts.dry + parts.wet, b, sample_rate, t.vocal_to_mix_lu)
    notes.append(
        f"vocal gain {g.gain_db:+.2f} dB puts the vocal at {g.vocal_to_mix_lu:+.2f} LU "
        f"against the mix ({g.vocal_to_backing_lu:+.2f} LU against the backing)"
    )
    new_vocal = replace(vc, compressor=comp.compressor, reverb=rv, gain_db=float(g.gain_db))
    resolved = Resolved(parts=parts, gain=g, vocal_lra_lu=comp.achieved_lra_lu,
                        vocal_momentary_range_lu=comp.achieved_value
                        if comp.statistic == "momentary_range" else None)
    return replace(params, vocal=new_vocal, achieved=Achieved()), notes, resolved


def measure_achieved(rendered: Rendered, resolved: Resolved | None = None) -> Achieved:
    """Measure a render: vocal-to-mix (pre-master), vocal LRA, mix loudness and peak.

    With ``resolved`` (a render straight after resolving), the figures the resolvers
    already measured exactly on the same signals are reused: the vocal-to-mix and
    vocal-to-backing ratios (BS.1770-4 on the same block sums) and the vocal LRA; the
    mix's loudness is then measured only if the master changed it.
    """
    sr = rendered.sample_rate
    if resolved is not None:
        g = resolved.gain
        if rendered.master_gain_reduction_db == 0.0:
            mix_i = g.premaster_lufs
        else:
            mix_i = integrated_loudness(rendered.mix, sr)
        return Achieved(
            vocal_to_mix_lu=float(g.vocal_to_mix_lu),
            vocal_to_backing_lu=float(g.vocal_to_backing_lu),
            vocal_lra_lu=float(resolved.vocal_lra_lu),
            vocal_momentary_range_lu=(float(resolved.vocal_momentary_range_lu)
                                      if resolved.vocal_momentary_range_lu is not None
                                      else momentary_loudness_range(rendered.vocal_dry, sr)),
            mix_integrated_lufs=float(mix_i) if np.isfinite(mix_i) else None,
            mix_true_peak_dbtp=float(rendered.mix_true_peak_dbtp),
            master_gain_reduction_db=float(rendered.master_gain_reduction_db),
        )
    iv = integrated_loudness(rendered.vocal, sr)
    ib = integrated_loudness(rendered.backing, sr)
    ipre = integrated_loudness(rendered.premaster, sr)
    imix = integrated_loudness(rendered.mix, sr)

    def fin(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return Achieved(
        vocal_to_mix_lu=fin(iv - ipre),
        vocal_to_backing_lu=fin(iv - ib),
        vocal_lra_lu=fin(loudness_range(rendered.vocal_dry, sr)),
        vocal_momentary_range_lu=fin(momentary_loudness_range(rendered.vocal_dry, sr)),
        mix_integrated_lufs=fin(imix),
        mix_true_peak_dbtp=fin(rendered.mix_true_peak_dbtp),
        master_gain_reduction_db=float(rendered.master_gain_reduction_db),
    )


def render_params(
    vocal: np.ndarray, backing: np.ndarray, sample_rate: int, params: MixParams,
    progress: Progress = _quiet,
) -> tuple[MixParams, Rendered]:
    """Render exactly ``params`` and return them with ``achieved`` filled in."""
    progress(ProgressEvent("render", 0.0, "rendering"))
    r = render(vocal, backing, sample_rate, params)
    progress(ProgressEvent("measure", 0.7, "measuring the result"))
    return replace(params, achieved=measure_achieved(r)), r


def estimate_params(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    *,
    method: str = "baseline",
    base: MixParams | None = None,
    reverb_preset: str | None = None,
    preset_library: Mapping[str, dict] | None = None,
    vocal_to_mix_lu: float | None = None,
    vocal_lra_lu: float | None = None,
    reverb_decay_s: float | None = None,
    progress: Progress = _quiet,
) -> Estimate:
    """Choose targets (or take them from ``base``), apply a preset and overrides, resolve
    settings.

    ``base``: an existing params document whose settings (EQ, reverb character,
    compressor ballistics, backing gain, master) and targets are kept; only the resolved
    settings (threshold, ratio, make-up, room size, vocal gain) are recomputed.
    ``reverb_preset``: the name of a reverb preset
    (:func:`vocalmix.estimators.presets.apply_preset`): its reverb replaces the chosen
    (or given) one and its decay becomes the reverb-time target, before the overrides;
    ``preset_library``: the presets to look it up in (a file's, see
    :func:`vocalmix.estimators.presets.presets_from_file`; default the shipped ones).
    Raises :class:`~vocalmix.core.errors.ParamsError` for an unknown preset before any
    analysis.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if reverb_preset is not None:
        from vocalmix.estimators.presets import apply_preset, preset_reverb

        preset_reverb(reverb_preset, preset_library)  # an unknown name fails at once
    if base is None:
        params, notes = choose_targets(vocal, backing, sample_rate, method, progress)
    else:
        params, notes = base, ["targets and settings taken from the given params"]
    if reverb_preset is not None:
        params = apply_preset(params, reverb_preset, preset_library)
        notes.append(f"reverb preset {reverb_preset!r}: its reverb, and its decay as the "
                     "reverb-time target")
    timings["estimate"] = time.perf_counter() - t0
    overrides = {
        "vocal_to_mix_lu": vocal_to_mix_lu,
        "vocal_lra_lu": vocal_lra_lu,
        "reverb_decay_s": reverb_decay_s,
    }
    if any(v is not None for v in overrides.values()):
        params = params.with_targets(**overrides)
        notes.append(
            "targets overridden: "
            + ", ".join(f"{k} = {v:g}" for k, v in overrides.items() if v is not None)
        )
    t1 = time.perf_counter()
    params, rnotes, resolved = _resolve(vocal, backing, sample_rate, params, progress)
    timings["resolve"] = time.perf_counter() - t1
    prov = params.provenance
    params = replace(params, provenance=replace(prov, notes=tuple(notes + rnotes)))
    return Estimate(params=params, notes=tuple(notes + rnotes), timings_s=timings,
                    resolved=resolved)


def mix(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    **kwargs,
) -> tuple[MixParams, Rendered, Estimate]:
    """Estimate, resolve and render; returns ``(params_with_achieved, rendered, estimate)``."""
    progress: Progress = kwargs.get("progress", _quiet)
    est = estimate_params(vocal, backing, sample_rate, **kwargs)
    t = time.perf_counter()
    progress(ProgressEvent("render", 0.8, "rendering"))
    # the resolvers rendered the vocal parts at unity gain already: reuse them. This is
    # bit-identical to render() of the same params (same operations, same order).
    assert est.resolved is not None
    rendered = assemble(est.resolved.parts, backing, sample_rate, est.params)
    params = replace(est.params, achieved=measure_achieved(rendered, est.resolved))
    est.timings_s["render"] = time.perf_counter() - t
    return params, rendered, est


# --- the plain sum: the A of an A/B comparison ------------------------------------------

#: how far the plain sum's gain may move to reach the mix's loudness, dB
PLAIN_GAIN_RANGE_DB = (-40.0, 40.0)
#: how close the plain sum's loudness gets to the mix's, LU
PLAIN_TOLERANCE_LU = 0.1


@dataclass(frozen=True)
class PlainSum:
    """The two inputs simply added, at the mix's integrated loudness.

    Attributes:
        samples: float32 ``(n, 2)``, through the mix's master stage.
        gain_db: the gain applied to the sum before the master, dB.
        integrated_lufs: its integrated loudness, LUFS (``None``: not measurable).
        target_lufs: the mix's integrated loudness it was matched to, LUFS (``None``:
            the mix had none; the sum is then at unity gain).
        master_gain_reduction_db: what the master stage took off, dB.
    """

    samples: np.ndarray
    gain_db: float
    integrated_lufs: float | None
    target_lufs: float | None
    master_gain_reduction_db: float


def plain_sum(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
              params: MixParams) -> PlainSum:
    """The plain sum ``vocal + backing`` at the integrated loudness of the mix ``params``
    describes (``params.achieved.mix_integrated_lufs``): the fair "before" to compare a
    mix with, since louder sounds better.

    It goes through the same master stage as the mix (so it cannot clip either), and its
    gain is corrected until its loudness is within :data:`PLAIN_TOLERANCE_LU` of the
    mix's (at most four renders; the master can make the loudness move less than the
    gain).
    """
    from vocalmix.core.render import db_to_gain, master_stage

    lo, hi = PLAIN_GAIN_RANGE_DB
    plain = vocal + backing
    target = params.achieved.mix_integrated_lufs
    i0 = integrated_loudness(plain, sample_rate)
    g = 0.0 if target is None or not np.isfinite(i0) else float(np.clip(target - i0, lo, hi))
    y, i, red = plain, i0, 0.0
    for _ in range(4):
        y, red, _tp = master_stage(plain * np.float32(db_to_gain(g)), sample_rate,
                                   params.master)
        i = integrated_loudness(y, sample_rate)
        if target is None or not np.isfinite(i) or abs(i - target) < PLAIN_TOLERANCE_LU:
            break
        g = float(np.clip(g + (target - i), lo, hi))
    return PlainSum(samples=np.asarray(y, dtype=np.float32), gain_db=g,
                    integrated_lufs=float(i) if np.isfinite(i) else None, target_lufs=target,
                    master_gain_reduction_db=float(red))


__all__ = [
    "Estimate",
    "PlainSum",
    "Provenance",
    "choose_targets",
    "estimate_params",
    "measure_achieved",
    "mix",
    "plain_sum",
    "render_params",
    "resolve_params",
]
