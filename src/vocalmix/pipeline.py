"""analyse -> estimate -> MixParams -> render, as library calls.

:func:`estimate_params` chooses targets (by the baseline or the model) and resolves them
into settings; :func:`render_params` renders exactly what a params document says and
fills in its ``achieved`` figures; :func:`mix` does both. Every function takes float32
``(n, 2)`` arrays of one rate and length (see :func:`vocalmix.core.audio.prepare_pair`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from vocalmix.core.measure import integrated_loudness, loudness_range
from vocalmix.core.params import Achieved, MixParams, Provenance, Reverb, clip
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

Progress = Callable[[str], None]
METHODS = ("baseline", "model")


def _quiet(_msg: str) -> None:
    pass


@dataclass(frozen=True)
class Resolved:
    """What the resolvers rendered and measured on the way, reusable by the render."""

    parts: VocalParts
    gain: GainSolution
    vocal_lra_lu: float


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
    """Targets and unresolved settings from an estimator (``baseline`` or ``model``)."""
    from vocalmix.estimators import baseline

    notes: list[str] = []
    if method not in METHODS:
        from vocalmix.core.errors import ParamsError

        raise ParamsError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if method == "model":
        try:
            from vocalmix.estimators import level as models

            progress("model: predicting targets")
            params, model_notes = models.estimate(vocal, backing, sample_rate)
            return params, list(model_notes)
        except (ImportError, AttributeError):
            notes.append("model weights are not available: fell back to the baseline")
        except Exception as e:  # a broken model must not stop a mix
            from vocalmix.core.errors import ModelError

            if not isinstance(e, ModelError):
                raise
            notes.append(f"{e}: fell back to the baseline")
    progress("baseline: tempo and masking analysis")
    params, _analysis = baseline.estimate(vocal, backing, sample_rate)
    notes.extend(params.provenance.notes)
    return params, notes


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


def resolve_reverb(reverb: Reverb, decay_target_s: float, sample_rate: int,
                   notes: list[str] | None = None) -> Reverb:
    """The reverb setting for a decay target (s): the ``synthetic`` type's decay is exact
    (T30 at 1 kHz), capped so no band decays longer than allowed; ``freeverb``'s
    ``room_size`` comes from its calibration. What could not be met goes to ``notes``."""
    from vocalmix.core.reverb import decay_for_room_size, decay_range_s, room_size_for_decay

    notes = notes if notes is not None else []
    rv = reverb
    if rv.type == "synthetic":  # its decay is exact: T30 at 1 kHz = the target
        from vocalmix.core.params import REVERB_DECAY_RANGE_S

        limit = REVERB_DECAY_RANGE_S[1]
        decay = min(decay_target_s, limit / max(rv.band_decay_ratios))
        if decay != decay_target_s:
            notes.append(f"reverb decay {decay_target_s:.2f} s would make a band decay "
                         f"longer than {limit:g} s: using {decay:.2f} s")
        return replace(rv, decay_s=float(decay))
    lo, hi = decay_range_s(rv.damping)
    room = room_size_for_decay(decay_target_s, rv.damping, sample_rate)
    decay = decay_for_room_size(room, rv.damping, sample_rate)
    if not (lo <= decay_target_s <= hi):
        notes.append(
            f"reverb decay {decay_target_s:.2f} s is outside what the reverb reaches at "
            f"damping {rv.damping:g} ({lo:.2f} to {hi:.2f} s): using {decay:.2f} s"
        )
    return replace(rv, room_size=float(room), decay_s=clip(Reverb, "decay_s", decay))


def _resolve(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    params: MixParams,
    progress: Progress = _quiet,
) -> tuple[MixParams, list[str], Resolved]:
    notes: list[str] = []
    t = params.targets
    vc = params.vocal
    progress("resolving the compressor threshold for the vocal LRA target")
    x_eq = eq_stage(vocal, sample_rate, vc.highpass, vc.eq_bands)
    comp = resolve_compressor(x_eq, sample_rate, t.vocal_lra_lu, vc.compressor)
    notes.append(comp.note)
    rv = resolve_reverb(vc.reverb, t.reverb_decay_s, sample_rate, notes)
    progress("resolving the vocal gain for the vocal-to-mix target")
    dry = np.asarray(compressor_stage(x_eq, sample_rate, comp.compressor), dtype=np.float32)
    parts = VocalParts(dry=dry, wet=reverb_wet(dry, sample_rate, rv))
    b = backing * np.float32(10.0 ** (params.backing.gain_db / 20.0))
    g = resolve_vocal_gain(parts.dry + parts.wet, b, sample_rate, t.vocal_to_mix_lu)
    notes.append(
        f"vocal gain {g.gain_db:+.2f} dB puts the vocal at {g.vocal_to_mix_lu:+.2f} LU "
        f"against the mix ({g.vocal_to_backing_lu:+.2f} LU against the backing)"
    )
    new_vocal = replace(vc, compressor=comp.compressor, reverb=rv, gain_db=float(g.gain_db))
    resolved = Resolved(parts=parts, gain=g, vocal_lra_lu=comp.achieved_lra_lu)
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
        mix_integrated_lufs=fin(imix),
        mix_true_peak_dbtp=fin(rendered.mix_true_peak_dbtp),
        master_gain_reduction_db=float(rendered.master_gain_reduction_db),
    )


def render_params(
    vocal: np.ndarray, backing: np.ndarray, sample_rate: int, params: MixParams,
    progress: Progress = _quiet,
) -> tuple[MixParams, Rendered]:
    """Render exactly ``params`` and return them with ``achieved`` filled in."""
    progress("rendering")
    r = render(vocal, backing, sample_rate, params)
    progress("measuring the result")
    return replace(params, achieved=measure_achieved(r)), r


def estimate_params(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    *,
    method: str = "baseline",
    base: MixParams | None = None,
    vocal_to_mix_lu: float | None = None,
    vocal_lra_lu: float | None = None,
    reverb_decay_s: float | None = None,
    progress: Progress = _quiet,
) -> Estimate:
    """Choose targets (or take them from ``base``), apply overrides, resolve settings.

    ``base``: an existing params document whose settings (EQ, reverb character,
    compressor ballistics, backing gain, master) and targets are kept; only the resolved
    settings (threshold, ratio, make-up, room size, vocal gain) are recomputed.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if base is None:
        params, notes = choose_targets(vocal, backing, sample_rate, method, progress)
    else:
        params, notes = base, ["targets and settings taken from the given params"]
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
    progress("rendering")
    # the resolvers rendered the vocal parts at unity gain already: reuse them. This is
    # bit-identical to render() of the same params (same operations, same order).
    assert est.resolved is not None
    rendered = assemble(est.resolved.parts, backing, sample_rate, est.params)
    params = replace(est.params, achieved=measure_achieved(rendered, est.resolved))
    est.timings_s["render"] = time.perf_counter() - t
    return params, rendered, est


__all__ = [
    "Estimate",
    "METHODS",
    "Provenance",
    "choose_targets",
    "estimate_params",
    "measure_achieved",
    "mix",
    "render_params",
    "resolve_params",
    "resolve_reverb",
]
