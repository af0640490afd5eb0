"""analyse -> estimate -> MixParams -> render, as library calls.

:func:`estimate_params` chooses targets (by the baseline or the model) and resolves them
into settings; :func:`render_params` renders exactly what a params document says and
fills in its ``achieved`` figures; :func:`mix` does both. Every function takes float32
``(n, 2)`` arrays of one rate and length (see :func:`vocalmix.core.audio.prepare_pair`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar, cast

import numpy as np

from vocalmix.core.amount import effective, effective_level_target, effective_vocal
from vocalmix.core.bleed import LATENCY_MS, BackingBleed, backing_in_vocal, bleed_warning
from vocalmix.core.dsp import LruCache, content_key, forget_signals, frozen, offset_samples
from vocalmix.core.errors import ModelError, ParamsError
from vocalmix.core.measure import (
    BlockStats,
    integrated_from_segments,
    integrated_loudness,
    integrated_loudness_of,
    k_weighted_cross,
    loudness_range,
    lra_from_short_term,
    momentary_loudness_range,
    momentary_range_from_segments,
    short_term_from_segments,
    singing_ratio_from_segments,
)
from vocalmix.core.memory import release_free_memory
from vocalmix.core.parallel import Early, Filling, beside
from vocalmix.core.params import (
    RULE_VOCAL_TO_MIX_LU,
    Achieved,
    Master,
    MixParams,
    Provenance,
    Reason,
    VocalChain,
    spec_of,
)
from vocalmix.core.progress import Progress, ProgressEvent, no_progress
from vocalmix.core.render import (
    KEEP_MAX_BYTES,
    PendingRender,
    Rendered,
    VocalParts,
    assemble_pending,
    backing_at_gain,
    compressor_stage,
    db_to_gain,
    deesser_stage,
    eq_stage,
    forget_parts,
    has_sends,
    keep_parts,
    kept_parts,
    moved_take,
    parts_key,
    parts_owned,
    premaster_peaks,
    premaster_sum,
    render_pending,
    reverb_ir_ahead,
    sends_wet_rows,
    vocal_inserts,
)
from vocalmix.core.resolve import (
    BARELY_HEARD_MIX_S,
    BARELY_HEARD_S,
    BARELY_HEARD_WARNING,
    MAX_LIMITER_LOSS_LU,
    STEADY_WARNING,
    TARGET_TOLERANCE_LU,
    CompressorSolution,
    GainSolution,
    gain_solution_at,
    is_locked,
    keep_locked,
    needs_compression,
    resolve_compressor,
    resolve_master_gain,
    resolve_master_headroom,
    resolve_reverb,
    resolve_vocal_gain,
    sounds_steady,
    sync_delay_time,
)
from vocalmix.core.threads import on_one_blas_thread

_quiet = no_progress
#: how the resolver's notes on the master gain begin (the live settle leaves them out: it
#: keeps the plan's master)
MASTER_NOTE_PREFIX = "master gain "
#: without a mix-loudness target, a mix quieter than this (LUFS) is warned about: far
#: under any playback's level (streaming plays at -14 to -16 LUFS, broadcast at -23)
QUIET_MIX_LUFS = -30.0
#: without a mix-loudness target, a peak of the pre-master sum that the limiter must take
#: more than this (dB) off is warned about: the master keeps the limiter's loss of
#: loudness small, so such a peak is an isolated burst (a click, an overload, a glitch
#: at a cut) that the limiter ducks the mix around. Among the 91 real songs of the data
#: folder, mixed by the default method, one peak reached it (13.9 dB, a burst where the
#: summed stems of a clip reach +9.5 dBFS); the largest of the others was 3.1 dB
LIMITER_BURST_DB = 6.0
T = TypeVar("T")


@dataclass(frozen=True)
class Resolved:
    """What the resolvers rendered and measured on the way, reusable by the render.

    Attributes:
        parts: the vocal chain at unity gain, as the document renders at its amount.
        gain: the vocal-gain solution for the document's gain (exact block-sum figures).
        vocal_lra_lu: the vocal's LRA after the compressor, LU (``None``: not measured on
            the way, e.g. at an amount other than 1).
        mix_lufs: the limited master's integrated loudness when the mix-loudness
            resolver measured it, LUFS.
        vocal_momentary_range_lu: the vocal's momentary loudness range after the
            compressor, LU (``None`` as for ``vocal_lra_lu``).
    """

    parts: VocalParts
    gain: GainSolution
    vocal_lra_lu: float | None
    mix_lufs: float | None = None
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
    genre: str | None = None,
) -> tuple[MixParams, list[str]]:
    """Targets and unresolved settings from an estimator (``baseline`` or ``model``,
    :func:`vocalmix.estimators.registry.estimate`); ``genre`` (MUSDB18's genre names or
    ``other``) is used by the model's level head.

    When the model is unavailable (its weights are missing, unreadable or stale:
    :class:`~vocalmix.core.errors.ModelError`), the baseline's targets are used with a
    note saying why. Any other error is a bug and propagates.
    """
    from vocalmix.estimators import registry

    notes: list[str] = []
    if method == "model":
        progress(ProgressEvent("estimate.model", 0.05, "model: predicting targets"))
        try:
            return registry.estimate(vocal, backing, sample_rate, "model", genre)
        except ModelError as e:
            notes.append(f"{e}: fell back to the baseline")
            method = "baseline"
    if method == "baseline":
        progress(ProgressEvent("estimate.baseline", 0.05,
                               "baseline: tempo and masking analysis"))
    params, more = registry.estimate(vocal, backing, sample_rate, method, genre)
    return params, notes + more


def resolve_params(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    params: MixParams,
    progress: Progress = _quiet,
) -> tuple[MixParams, list[str]]:
    """Turn ``params.targets`` into settings: compressor, reverb room size, vocal gain
    (on the take as ``params.vocal.offset_ms`` moves it)."""
    vocal, notes = moved_take_checked(vocal, sample_rate, params.vocal.offset_ms)
    p, more, _ = _resolve(vocal, backing, sample_rate, params, progress)
    return p, notes + more


#: how far (LU) the compressor may stay over a dynamics target a person gave or locked
#: before the miss is a warning, not only the compressor's note (a model's own target
#: is a prediction about 1.5 LU off on average: its misses stay notes)
DYNAMICS_MISS_WARN_LU = 1.0


def _persons_dynamics_miss(params: MixParams, statistic: str, target_lu: float,
                           achieved_lu: float) -> str | None:
    """The warning for a dynamics target a person gave (``targets...`` with the reason
    ``user``) or locked that the compressor stays over by more than
    :data:`DYNAMICS_MISS_WARN_LU` LU, else ``None``."""
    path = ("targets.vocal_momentary_range_lu" if statistic == "momentary_range"
            else "targets.vocal_lra_lu")
    reason = params.reason_for(path)
    persons = is_locked(params, path) or (reason is not None and reason.source == "user")
    if not persons or not achieved_lu - target_lu > DYNAMICS_MISS_WARN_LU:
        return None
    name = "momentary loudness range" if statistic == "momentary_range" else "LRA"
    return (f"warning: the vocal {name} target {target_lu:g} LU is missed by "
            f"{achieved_lu - target_lu:.1f} LU (the vocal comes out at {achieved_lu:.1f} "
            "LU): more compression would not narrow it further without squashing the voice "
            "or lifting what is quiet between its phrases (the compressor's note says "
            "where it stopped); lock vocal.compressor with settings of your own to go "
            "further")


def _resolve(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    params: MixParams,
    progress: Progress = _quiet,
    remember: bool = False,
) -> tuple[MixParams, list[str], Resolved]:
    """Targets -> settings: compressor (vocal LRA), reverb (decay), delay time (note and
    tempo), vocal gain (vocal-to-mix, on the chain as rendered at the document's amount)
    and master gain (mix loudness). A locked setting (:func:`~vocalmix.core.resolve.
    is_locked`) is kept as it is and said so. ``remember``: keep the compressor's
    resolution for the next resolve of the same take and chain to the same dynamics
    target (:func:`_compressor_memo_key`), and the vocal parts for the next render or
    resolve of the same chain but for its gain (:func:`~vocalmix.core.render.parts_key`):
    an editor's retarget of the level alone, or gain edit after it."""
    notes: list[str] = []
    reasons: list[Reason] = []
    t = params.targets
    vc = params.vocal
    progress(ProgressEvent("resolve.compressor", 0.3,
                           "resolving the compressor threshold for the vocal dynamics target"))
    lra: float | None = None
    mrange: float | None = None
    # the reverb and the delay do not depend on the compressor: resolved first, so that
    # the sends of a vocal that needs no compression can start before its resolver ends
    # (their notes and reasons keep their place after the compressor's)
    rv = vc.reverb
    rv_notes: list[str] = []
    rv_reason: Reason | None = None
    if is_locked(params, "vocal.reverb"):
        rv_notes.append("reverb locked: kept as it is")
    else:
        rv = resolve_reverb(vc.reverb, t.reverb_decay_s, sample_rate, rv_notes)
        what = ("its decay time" if rv.type == "synthetic"
                else f"room size {rv.room_size:.3f} (calibrated T30 {rv.decay_s:.2f} s)")
        rv_reason = Reason("vocal.reverb.decay_s" if rv.type == "synthetic"
                           else "vocal.reverb.room_size", "resolver",
                           f"{what} for the {t.reverb_decay_s:.2f} s decay target",
                           (("target_decay_s", t.reverb_decay_s),))
    sends = replace(params, vocal=replace(vc, reverb=rv))
    if not is_locked(params, "vocal.delay"):
        sends = sync_delay_time(sends)
    # the synthetic reverb's response is made on a helper thread while the compressor
    # resolves (one core was idle there): the send below starts with it ready
    ir = reverb_ir_ahead(effective_vocal(sends.vocal, params.amount).reverb, sample_rate)

    def ir_ready() -> None:
        if ir is not None:
            ir.result()
    # what the compressor resolver rendered, reused by the vocal chain below when the
    # chain rendered at the document's amount is the one it resolved
    x_in: np.ndarray | None = None
    comp_out: np.ndarray | None = None
    early: tuple[np.ndarray, Filling] | None = None  # (the dry vocal, its sends)
    steady_lu: float | None = None  # the momentary loudness range of the vocal's input, LU
    try:  # (early sends, once started, are stopped if anything below fails)
        if is_locked(params, "vocal.compressor"):
            comp = vc.compressor
            notes.append("compressor locked: kept as it is")
        else:
            statistic, target_lu = (("momentary_range", t.vocal_momentary_range_lu)
                                    if t.vocal_momentary_range_lu is not None
                                    else ("lra", t.vocal_lra_lu))
            memo = _compressor_memo_key(vocal, sample_rate, vc, statistic, target_lu,
                                        remember)
            kept = _COMPRESSORS.get(memo) if memo is not None else None
            if kept is not None:
                x_in, uncompressed, sol, steady_lu = kept
            else:
                x_in = deesser_stage(eq_stage(vocal, sample_rate, vc.highpass, vc.eq_bands),
                                     sample_rate, vc.deesser)
            # the resolver measures it through a read-only view (hashed once, measured often);
            # x_in itself stays writeable: uncompressed, it becomes the dry stem, scaled in place
            seen = frozen(x_in, unique=True)
            if kept is None:
                uncompressed = params.amount == 1.0 and not needs_compression(
                    seen, sample_rate, target_lu, statistic)
            if params.amount == 1.0 and uncompressed:
                # uncompressed, x_in is the dry vocal: its sends (the reverb, the longest
                # render of a mix) start now, beside the resolver's own figures
                out = np.zeros(x_in.shape, np.float32)
                chain, src = sends.vocal, x_in
                ir_ready()
                early = (src, Filling(
                    out, lambda: sends_wet_rows(src, sample_rate, chain, out)))
            if kept is None:
                sol = resolve_compressor(seen, sample_rate, target_lu, vc.compressor,
                                         statistic=statistic)
            if statistic == "momentary_range":
                notes.append(f"the compressor follows the momentary-range target "
                             f"({t.vocal_momentary_range_lu:g} LU); targets.vocal_lra_lu "
                             f"({t.vocal_lra_lu:g} LU) is not used while it is set (null "
                             "turns it off)")
                why: tuple[tuple[str, float], ...] = (
                    ("target_momentary_range_lu", target_lu),
                    ("input_momentary_range_lu", sol.input_value))
            else:
                why = (("target_lra_lu", t.vocal_lra_lu), ("input_lra_lu", sol.input_lra_lu))
            # the input's spread while it sings, for the steady-noise check below (the
            # resolver's figures, remembered: no second pass)
            if kept is None:
                steady_lu = momentary_loudness_range(seen, sample_rate)
                if memo is not None:
                    _remember_compressor(memo, x_in, uncompressed, sol, steady_lu)
            comp, lra = sol.compressor, sol.achieved_lra_lu
            mrange = sol.achieved_momentary_range_lu  # either statistic: the achieved figures
            comp_out = sol.output
            del seen
            notes.append(sol.note)
            reasons.append(Reason("vocal.compressor", "resolver", sol.note, why))
            miss = _persons_dynamics_miss(params, statistic, target_lu, sol.achieved_value)
            if miss is not None:
                notes.append(miss)
        notes.extend(rv_notes)
        if rv_reason is not None:
            reasons.append(rv_reason)
        new = replace(sends, vocal=replace(sends.vocal, compressor=comp), achieved=Achieved())
        progress(ProgressEvent("resolve.gain", 0.6,
                               "resolving the vocal gain for the vocal-to-mix target"))
        eff = effective_vocal(new.vocal, new.amount)
        # an editor's last render of this take and chain (a retarget of the level alone):
        # its vocal parts, the same samples as those made below (the take as given, so
        # for a chain that does not move it)
        pkey = (parts_key(vocal, sample_rate, eff)
                if remember and offset_samples(eff.offset_ms, sample_rate) == 0 else None)
        made = kept_parts(pkey)
        dry = (made.dry if made is not None
               else _inserts(vocal, sample_rate, eff, new.vocal, x_in, comp_out))
    except BaseException:
        if early is not None:
            early[1].cancel()
        raise
    del x_in, comp_out
    # the sends render on a helper thread while the gain resolver measures each block of
    # the vocal as soon as it is final: the same sums in about the time of the render
    # (those started early on the uncompressed vocal, when that is the dry vocal here; at
    # amount 1, the only one they start at, eff's sends are those they render)
    if made is not None:
        if early is not None:
            early[1].cancel()
        done = made.wet
        wet = Filling(done, lambda: iter([done.shape[0]]))  # (made already)
    elif early is not None and dry is early[0]:
        wet = early[1]
    else:
        if early is not None:
            early[1].cancel()
        wet_out = np.zeros(dry.shape, np.float32)
        ir_ready()
        wet = Filling(wet_out, lambda: sends_wet_rows(dry, sample_rate, eff, wet_out))
    if new.amount != 1.0:
        lra = mrange = None  # the compressor rendered is not the one they were measured on
    b = backing_at_gain(backing, params.backing.gain_db)
    target = effective_level_target(t.vocal_to_mix_lu, RULE_VOCAL_TO_MIX_LU, new.amount)
    try:
        if is_locked(params, "vocal.gain_db"):
            g = gain_solution_at((dry, wet.array), b, sample_rate, vc.gain_db,
                                 measure=t.vocal_to_mix_measure, ready=wet.wait)
        else:
            g = resolve_vocal_gain((dry, wet.array), b, sample_rate, target,
                                   measure=t.vocal_to_mix_measure, ready=wet.wait)
        parts = made if made is not None else keep_parts(
            pkey, VocalParts(dry=dry, wet=wet.result(), sends=has_sends(eff)))
    except BaseException:
        wet.cancel()
        raise
    if is_locked(params, "vocal.gain_db"):
        notes.append(f"vocal gain locked at {vc.gain_db:+.2f} dB: the vocal sits at "
                     f"{g.vocal_to_mix_lu:+.2f} LU against the mix (target {target:+.2f})")
    else:
        how = " while it sings" if g.measure == "singing" else ""
        at = f" (the target at amount {new.amount:g})" if new.amount != 1.0 else ""
        notes.append(
            f"vocal gain {g.gain_db:+.2f} dB puts the vocal at {g.vocal_to_mix_lu:+.2f} LU "
            f"against the mix{how}{at} ({g.vocal_to_backing_lu:+.2f} LU against the backing)"
        )
        reasons.append(Reason("vocal.gain_db", "resolver", notes[-1],
                              (("target_vocal_to_mix_lu", target),)))
        new = replace(new, vocal=replace(new.vocal, gain_db=float(g.gain_db)))
        if abs(g.vocal_to_mix_lu - target) > TARGET_TOLERANCE_LU:
            notes.append(
                f"warning: the vocal-to-mix target {target:+.2f} LU is missed by "
                f"{abs(g.vocal_to_mix_lu - target):.2f} LU: no gain reaches it, the ratio "
                "jumps at this level where quiet blocks cross BS.1770-4's -70 LUFS gate "
                "(check the backing's level: a backing that quiet has little loudness to "
                "set the vocal against)")
    mix_s = dry.shape[0] / sample_rate
    if mix_s >= BARELY_HEARD_MIX_S and g.heard_s < BARELY_HEARD_S:
        notes.append(BARELY_HEARD_WARNING.format(heard=g.heard_s, mix=mix_s))
    elif mix_s >= BARELY_HEARD_MIX_S:  # heard long enough to judge how it moves
        if steady_lu is None:  # (a locked compressor: its input was not measured)
            steady_lu = momentary_loudness_range(vocal, sample_rate)
        if sounds_steady(steady_lu, g.heard_s, mix_s):
            notes.append(STEADY_WARNING.format(heard=g.heard_s, spread=steady_lu))
    mix_lufs = None
    if t.mix_lufs is not None and not is_locked(params, "master.gain_db"):
        progress(ProgressEvent("resolve.master", 0.7,
                               "resolving the master gain for the mix-loudness target"))
        pre = premaster_sum(parts, b, new.vocal.gain_db)  # what the render will sum
        m = resolve_master_gain(pre, sample_rate, t.mix_lufs, new.master)
        new = replace(new, master=replace(new.master, gain_db=m.gain_db))
        mix_lufs = m.mix_lufs
        notes.append(f"{MASTER_NOTE_PREFIX}{m.gain_db:+.2f} dB puts the mix at "
                     f"{m.mix_lufs:.1f} LUFS (target {t.mix_lufs:g}) under the "
                     f"{new.master.ceiling_dbtp:g} dBTP ceiling")
        reasons.append(Reason("master.gain_db", "resolver", notes[-1],
                              (("target_mix_lufs", t.mix_lufs),)))
        if t.mix_lufs - m.mix_lufs > TARGET_TOLERANCE_LU:
            top_db = spec_of(Master, "gain_db").hi
            cause = (f"the master gain is at the most it may add ({top_db:+g} dB), which "
                     f"puts the mix at {m.mix_lufs:.1f} LUFS: the backing is that quiet "
                     "(raise it with backing.gain_db, or at its source)"
                     if m.gain_db >= top_db - 1e-9 else
                     f"the limiter holds the mix at {m.mix_lufs:.1f} LUFS under the "
                     f"{new.master.ceiling_dbtp:g} dBTP ceiling, and more gain would only "
                     "squash it")
            notes.append(f"warning: the mix-loudness target {t.mix_lufs:g} LUFS is missed "
                         f"by {t.mix_lufs - m.mix_lufs:.1f} LU: {cause}")
    elif t.mix_lufs is not None:
        notes.append(f"{MASTER_NOTE_PREFIX}locked at {new.master.gain_db:+.2f} dB: the "
                     f"mix-loudness target {t.mix_lufs:g} LUFS is not resolved (the mix's "
                     "loudness is reported as achieved)")
    elif not is_locked(params, "master.gain_db"):
        # no loudness target: unity gain, unless the limiter would then squash the mix
        seg = int(round(sample_rate / 10.0))
        energy = g.premaster_energy if g.premaster_energy is not None else np.zeros(0)
        peaks = premaster_peaks(parts, b, new.vocal.gain_db, seg, tail=True)
        h = resolve_master_headroom(energy, peaks[:-1], seg, new.master)
        burst = limiter_burst_warning(peaks, seg, sample_rate, h.gain_db,
                                      new.master.ceiling_dbtp)
        if burst:
            notes.append(burst)
        if h.gain_db != 0.0:
            notes.append(
                f"{MASTER_NOTE_PREFIX}{h.gain_db:+.2f} dB: at 0 dB the limiter would take "
                f"about {h.loss_at_unity_lu:.1f} LU off the mix's loudness (the backing is loud "
                f"and the vocal adds peaks); turned down to lose at most "
                f"{MAX_LIMITER_LOSS_LU:g} LU (a mix-loudness target sets a loudness instead)")
            reasons.append(Reason("master.gain_db", "resolver", notes[-1],
                                  (("limiter_loss_at_unity_lu", h.loss_at_unity_lu),
                                   ("max_limiter_loss_lu", MAX_LIMITER_LOSS_LU))))
        elif new.master.gain_db != 0.0:
            notes.append("no mix-loudness target: master gain back to 0 dB")
        new = replace(new, master=replace(new.master, gain_db=h.gain_db))
        quiet = g.premaster_lufs + h.gain_db
        if np.isfinite(quiet) and quiet < QUIET_MIX_LUFS:
            notes.append(
                f"warning: the mix comes out at about {quiet:.0f} LUFS, very quiet (the "
                "backing is quiet, and the vocal is set against it): give a mix-loudness "
                "target (--mix-lufs -14, targets.mix_lufs) to raise it")
    new = new.with_reasons(*reasons)
    return new, notes, Resolved(parts=parts, gain=g, vocal_lra_lu=lra, mix_lufs=mix_lufs,
                                     vocal_momentary_range_lu=mrange)


def limiter_burst_warning(peaks: np.ndarray, segment_len: int, sample_rate: int,
                          master_gain_db: float, ceiling_dbtp: float) -> str | None:
    """The warning for a peak of the pre-master sum that the limiter will take more than
    :data:`LIMITER_BURST_DB` off, or ``None``. ``peaks``: the sum's sample peak (linear)
    per ``segment_len``-sample segment (the last may be shorter); the limiter's
    reduction there is about the peak, raised by ``master_gain_db`` (dB), over
    ``ceiling_dbtp`` (a sample peak: the true peak, and so the reduction, may be a
    little higher)."""
    p = np.asarray(peaks, dtype=np.float64)
    if p.size == 0 or not np.isfinite(p).all() or p.max() <= 0.0:
        return None
    i = int(np.argmax(p))
    peak_db = 20.0 * math.log10(float(p[i]))
    cut = peak_db + master_gain_db - ceiling_dbtp
    if cut <= LIMITER_BURST_DB:
        return None
    at = i * segment_len / float(sample_rate)
    return (f"warning: the limiter takes about {cut:.0f} dB off the mix at "
            f"{int(at // 60)}:{at % 60:04.1f} (the vocal and backing peak at {peak_db:+.1f} "
            "dBFS there before the master): a burst in one of them (a click, an overload, a "
            "glitch where the file was cut), which the mix ducks around; listen there, and "
            "mend it at its source")


#: the compressor's last resolution (:func:`_remember_compressor`): the resolver's input
#: (the take through the EQ and the de-esser), whether it needed no compression, the
#: solution and the input's momentary range
_COMPRESSORS = LruCache(1)


def _compressor_memo_key(vocal: np.ndarray, sample_rate: int, chain: VocalChain,
                         statistic: str, target_lu: float, remember: bool) -> tuple | None:
    """What the compressor's resolution follows from: the take's content (read-only, its
    digest remembered), the rate, the stages before the compressor, the compressor's
    settings but for the threshold and make-up the resolver sets, and the dynamics
    target. ``None`` when it is not to be remembered."""
    if not remember or vocal.flags.writeable:
        return None
    base = replace(chain.compressor, enabled=True, threshold_db=0.0, makeup_db=0.0)
    return content_key(vocal, sample_rate, "compressor resolution", chain.highpass,
                       chain.eq_bands, chain.deesser, base, statistic, float(target_lu))


def _remember_compressor(key: tuple, x_in: np.ndarray, uncompressed: bool,
                         sol: CompressorSolution, steady_lu: float) -> None:
    """Keep a compressor resolution under ``key`` (its signals made read-only, which the
    render then copies instead of scaling in place: the same samples), unless it is larger
    than :data:`~vocalmix.core.render.KEEP_MAX_BYTES`."""
    arrays = [a for a in (x_in, sol.output) if a is not None]
    if sum(a.nbytes for a in arrays) > KEEP_MAX_BYTES:
        return
    for a in arrays:
        a.flags.writeable = False
    _COMPRESSORS.put(key, (x_in, uncompressed, sol, steady_lu))


def forget_resolutions() -> None:
    """Drop the remembered compressor resolution (:func:`_resolve`'s ``remember``)."""
    _COMPRESSORS.clear()


def _inserts(vocal: np.ndarray, sample_rate: int, eff: VocalChain, resolved_on: VocalChain,
             x_in: np.ndarray | None, comp_out: np.ndarray | None) -> np.ndarray:
    """:func:`~vocalmix.core.render.vocal_inserts` of ``eff``, reusing the compressor
    resolver's input ``x_in`` (EQ and de-esser of ``resolved_on``) and its output
    ``comp_out`` (the compressor without make-up) when ``eff`` renders the same stages:
    the same operations on the same samples, so the same result, without rendering the
    chain again. ``comp_out``, when it is the resolver's own array, is scaled by the
    make-up gain in place: the caller drops it afterwards."""
    same_input = (x_in is not None and eff.highpass == resolved_on.highpass
                  and eff.eq_bands == resolved_on.eq_bands
                  and eff.deesser == resolved_on.deesser)
    if not same_input:
        return vocal_inserts(vocal, sample_rate, eff)
    assert x_in is not None
    c = eff.compressor
    if comp_out is None or replace(c, makeup_db=0.0) != replace(resolved_on.compressor,
                                                               makeup_db=0.0):
        return np.asarray(compressor_stage(x_in, sample_rate, c), dtype=np.float32)
    y = comp_out
    if c.makeup_db != 0.0:
        if y.dtype == np.float32 and y.flags.writeable and not np.may_share_memory(y, vocal):
            y *= np.float32(db_to_gain(c.makeup_db))  # the resolver's own render, not kept
        else:
            y = y * np.float32(db_to_gain(c.makeup_db))
    return np.asarray(y, dtype=np.float32)


#: the settings the resolvers write (what :func:`moved_settings` compares); a lock on one
#: of them (or on its group) keeps it through a re-resolve
RESOLVED_SETTINGS = (
    "vocal.gain_db",
    "vocal.compressor.threshold_db",
    "vocal.compressor.ratio",
    "vocal.compressor.makeup_db",
    "vocal.reverb.decay_s",
    "vocal.reverb.room_size",
    "vocal.delay.time_ms",
    "master.gain_db",
)


def _setting(params: MixParams, path: str) -> float:
    obj: object = params
    for k in path.split("."):
        obj = getattr(obj, k)
    return float(obj)  # type: ignore[arg-type]


def moved_settings(before: MixParams, after: MixParams) -> list[str]:
    """The settings the resolvers changed, one line each (``path: old -> new``)."""
    out = []
    for path in RESOLVED_SETTINGS:
        a, b = _setting(before, path), _setting(after, path)
        if abs(a - b) > 1e-4:  # dB, ms, LU: below that nothing moved audibly
            out.append(f"{path}: {a:g} -> {b:g}")
    return out


def _finite(v: float | np.ndarray) -> float | None:
    """An achieved figure as the document holds it: ``None`` where it is not finite (a
    silent or gated-out signal has no loudness, a backing turned down below the gate no
    vocal-to-backing ratio)."""
    return float(v) if np.isfinite(v) else None


def measure_achieved(rendered: Rendered, resolved: Resolved | None = None,
                     measure: str = "integrated", master_gain_db: float = 0.0,
                     parts_stats: Callable[[], _PartsStats] | None = None) -> Achieved:
    """Measure a render: vocal-to-mix (pre-master), vocal LRA, mix loudness and peak.

    With ``resolved`` (a render straight after resolving), the figures the resolvers
    already measured exactly on the same signals are reused: the vocal-to-mix and
    vocal-to-backing ratios (BS.1770-4 on the same block sums, in the measure the
    resolver solved for) and the vocal LRA; the mix's loudness is then measured only if
    the master changed it. Without it, the vocal-to-mix ratio is measured as
    ``measure`` says (``targets.vocal_to_mix_measure`` of the rendered document), from
    the stems' segment energies: :func:`_parts_stats` of the render, or what
    ``parts_stats()`` returns (the same, measured while the master ran).
    """
    sr = rendered.sample_rate
    if resolved is not None:
        g = resolved.gain
        if resolved.mix_lufs is not None:
            mix_i = resolved.mix_lufs
        elif rendered.master_gain_reduction_db == 0.0:
            mix_i = g.premaster_lufs + master_gain_db
        else:
            mix_i = integrated_loudness_of(_mix_stats(rendered))
        lra = resolved.vocal_lra_lu
        if lra is None:
            lra = loudness_range(rendered.vocal_dry, sr)
        return Achieved(
            vocal_to_mix_lu=_finite(g.vocal_to_mix_lu),
            vocal_to_backing_lu=_finite(g.vocal_to_backing_lu),
            vocal_lra_lu=_finite(lra),
            vocal_momentary_range_lu=_finite(
                resolved.vocal_momentary_range_lu
                if resolved.vocal_momentary_range_lu is not None
                else momentary_loudness_range(rendered.vocal_dry, sr)),
            mix_integrated_lufs=_finite(mix_i),
            mix_true_peak_dbtp=_finite(rendered.mix_true_peak_dbtp),
            master_gain_reduction_db=float(rendered.master_gain_reduction_db),
        )
    dry, (vocal, backing, premaster) = (parts_stats() if parts_stats is not None
                                        else _parts_stats(rendered))
    return achieved_from_stats(
        vocal, backing, premaster, _mix_stats(rendered), dry,
        measure=measure,
        true_peak_dbtp=rendered.mix_true_peak_dbtp,
        gain_reduction_db=rendered.master_gain_reduction_db)


#: the dry vocal's segment energies, then the vocal's, the backing's and the premaster's
_PartsStats = tuple[BlockStats, tuple[BlockStats, BlockStats, BlockStats]]


def _parts_stats(rendered: Rendered | PendingRender) -> _PartsStats:
    """The segment energies of a render's stems (final before its master stage ends):
    the dry vocal's, K-weighted on a helper thread, beside :func:`_sum_stats`."""
    sr = rendered.sample_rate
    if not rendered.sends:
        # no sends: the vocal in the mix is the dry vocal's samples (``0 * g + dry``), whose
        # energies the sums below measure to the bit; one K-weighting fewer
        summed = _sum_stats(rendered)
        return summed[0], summed
    return beside(lambda: _stats(rendered.vocal_dry, sr), lambda: _sum_stats(rendered))


def _stats(x: np.ndarray, sample_rate: int) -> BlockStats:
    """The segment energies of a rendered signal (remembered when it is read-only)."""
    return BlockStats.of(x, sample_rate, remember=not x.flags.writeable)


def _sum_stats(rendered: Rendered | PendingRender
               ) -> tuple[BlockStats, BlockStats, BlockStats]:
    """The segment energies of the rendered vocal, the backing and their sum (the
    premaster), from one K-weighting of each part: K-weighting is linear, so a segment
    of the sum holds ``vv + 2 vb + bb`` (:meth:`~vocalmix.core.measure.BlockStats.cross`
    of the two parts, the sums the gain resolver solves with, K-weighted on two threads),
    where measuring the sum on its own took a third K-weighting after the other two and
    a full-length premaster. The vocal's and the backing's energies are those
    :meth:`~vocalmix.core.measure.BlockStats.of` gives, to the bit; the premaster's differ
    from a K-weighting of the summed float32 samples by rounding (at most 1.5e-13
    relative on the speed bench's 3-minute song)."""
    sr = rendered.sample_rate
    vv, bb, vb = k_weighted_cross(rendered.vocal, rendered.backing, sr)
    premaster = np.maximum(vv + 2.0 * vb + bb, 0.0)  # (the resolver's order of the sums)
    return (BlockStats.of_energy(vv, sr), BlockStats.of_energy(bb, sr),
            BlockStats.of_energy(premaster, sr))


def _mix_stats(rendered: Rendered) -> BlockStats:
    """The segment energies of the rendered mix: those the master measured beside its
    true peak, or measured now."""
    if rendered.mix_energy is not None:
        return BlockStats.of_energy(rendered.mix_energy, rendered.sample_rate)
    return _stats(rendered.mix, rendered.sample_rate)


def achieved_from_stats(vocal: BlockStats, backing: BlockStats, premaster: BlockStats,
                        mix: BlockStats, vocal_dry: BlockStats, *, measure: str,
                        true_peak_dbtp: float, gain_reduction_db: float) -> Achieved:
    """The achieved figures of a render from its signals' 100 ms K-weighted segment
    energies (BS.1770-4 integrated loudness, Tech 3342 LRA at 10 Hz, the momentary
    range), the mix's true peak (dBTP) and the master's largest gain reduction (dB):
    ``vocal`` with its sends, ``backing`` after its gain, ``premaster`` their sum,
    ``mix`` the master's output, ``vocal_dry`` before the sends. ``measure``: the
    vocal-to-mix measure (``targets.vocal_to_mix_measure``)."""
    seg = vocal.segment_len
    iv = float(integrated_from_segments(vocal.energy, seg))
    ib = float(integrated_from_segments(backing.energy, seg))
    ipre = float(integrated_from_segments(premaster.energy, seg))
    v2m = iv - ipre if np.isfinite(iv) and np.isfinite(ipre) else -np.inf
    if measure == "singing":
        v2m = float(singing_ratio_from_segments(vocal.energy, premaster.energy, seg,
                                                backing.energy))

    return Achieved(
        vocal_to_mix_lu=_finite(v2m),
        vocal_to_backing_lu=_finite(iv - ib),
        vocal_lra_lu=_finite(lra_from_short_term(short_term_from_segments(vocal_dry.energy, seg))),
        vocal_momentary_range_lu=_finite(momentary_range_from_segments(vocal_dry.energy,
                                                                       seg)),
        mix_integrated_lufs=_finite(integrated_from_segments(mix.energy, seg)),
        mix_true_peak_dbtp=_finite(true_peak_dbtp),
        master_gain_reduction_db=float(gain_reduction_db),
    )


@on_one_blas_thread
def render_params(
    vocal: np.ndarray, backing: np.ndarray, sample_rate: int, params: MixParams,
    progress: Progress = _quiet, *, remember_parts: bool = False,
) -> tuple[MixParams, Rendered]:
    """Render exactly ``params`` and return them with ``achieved`` filled in
    (``remember_parts``: :func:`render_params_pending`)."""
    return render_params_pending(vocal, backing, sample_rate, params, progress,
                                 remember_parts=remember_parts).result()


def render_params_pending(
    vocal: np.ndarray, backing: np.ndarray, sample_rate: int, params: MixParams,
    progress: Progress = _quiet, *, remember_parts: bool = False,
) -> Pending[tuple[MixParams, Rendered]]:
    """:func:`render_params` with its master stage still running (see :class:`Pending`):
    for a caller that writes the mix while the limiter makes it. ``remember_parts``: see
    :func:`~vocalmix.core.render.render_pending` (for an editor that renders one take
    again and again)."""
    vocal, backing = frozen(vocal), frozen(backing)
    progress(ProgressEvent("render", 0.0, "rendering"))
    r = render_pending(vocal, backing, sample_rate, params, remember_parts=remember_parts)
    # the stems are final: their figures are measured while the master limits the mix
    # (a core is idle part of that time) instead of after it
    early = Early(lambda: _parts_stats(r))

    def finish(rendered: Rendered) -> tuple[MixParams, Rendered]:
        progress(ProgressEvent("measure", 0.7, "measuring the result"))
        return replace(params, achieved=measure_achieved(
            rendered, measure=params.targets.vocal_to_mix_measure,
            parts_stats=early.result)), rendered

    return Pending(r, finish)


def auto_offset_ms(found: BackingBleed | None) -> tuple[float, str]:
    """``(offset_ms, note)`` of ``vocal_offset_ms="auto"`` from the copy of the backing
    ``found`` in the take as given (:func:`vocalmix.core.bleed.backing_in_vocal`): a copy
    :data:`~vocalmix.core.bleed.LATENCY_MS` or more late tells the recording's round trip,
    which the voice, sung in time with what the singer heard, shares: the take moves that
    much earlier (to 0.1 ms). Without such a copy the take stays where it is: a voice
    alone does not tell its own timing."""
    if found is None or found.lag_ms < LATENCY_MS:
        why = ("it carries no copy of the backing to read the recording's latency from"
               if found is None else
               f"the copy of the backing it carries is only {found.lag_ms:.0f} ms late "
               f"(under {LATENCY_MS:g} ms: a room, not a recording's latency)")
        return 0.0, f"the take is left where it is (vocal.offset_ms auto): {why}"
    ms = -round(found.lag_ms, 1)
    return ms, (f"the take is moved {-ms:g} ms earlier (vocal.offset_ms auto): it carries the "
                f"backing {found.lag_ms:.1f} ms late, the recording's latency, which the "
                "voice sung in time with it shares")


def _moved_note(k: int, sample_rate: int, offset_ms: float) -> str:
    """The note for a take moved by ``k`` samples (``offset_ms``, ms)."""
    way = "later" if k > 0 else "earlier"
    return (f"the take is moved {abs(k) / sample_rate * 1000.0:.1f} ms {way} against the "
            f"backing (vocal.offset_ms {offset_ms:+g})")


def moved_take_checked(vocal: np.ndarray, sample_rate: int, offset_ms: float
                       ) -> tuple[np.ndarray, list[str]]:
    """``(the take moved by offset_ms, notes)`` for the estimators and resolvers
    (:func:`vocalmix.core.render.moved_take`): a note says how far it moved and, when
    the part moved out of the mix holds sound (a peak over -60 dBFS), that it is cut.
    Raises :class:`~vocalmix.core.errors.ParamsError` when no sound is left (a peak
    under -90 dBFS, as the input checks call a take silent)."""
    from vocalmix.core.audio import SILENCE_PEAK

    k = offset_samples(offset_ms, sample_rate)
    if k == 0:
        return vocal, []
    n = vocal.shape[0]
    moved = frozen(moved_take(vocal, sample_rate, offset_ms))
    if not np.max(np.abs(moved), initial=0.0) >= SILENCE_PEAK:  # as the input checks
        raise ParamsError(
            f"vocal.offset_ms {offset_ms:g} ms moves all of the take's sound out of the "
            f"mix ({n / sample_rate:.2f} s long): use an offset closer to 0 (a recording's "
            "latency is tens to a few hundred ms)")
    notes = [_moved_note(k, sample_rate, offset_ms)]
    cut = vocal[n - k :] if k > 0 else vocal[: -k]
    peak = float(np.max(np.abs(cut))) if cut.size else 0.0
    if peak > 10.0 ** (-60.0 / 20.0):
        where = ("its last", "past the mix's end") if k > 0 else ("its first",
                                                                 "before the mix's start")
        notes.append(f"{where[0]} {min(abs(k), n) / sample_rate:.3f} s, moved {where[1]}, "
                     f"are cut: they hold sound (peak {20.0 * np.log10(peak):.1f} dBFS)")
    return moved, notes


@on_one_blas_thread
def estimate_params(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    *,
    method: str = "baseline",
    base: MixParams | None = None,
    vocal_offset_ms: float | str | None = None,
    take_moved: bool = False,
    reverb_preset: str | None = None,
    preset_library: Mapping[str, dict] | None = None,
    vocal_to_mix_lu: float | None = None,
    vocal_lra_lu: float | None = None,
    reverb_decay_s: float | None = None,
    mix_lufs: float | None = None,
    amount: float | None = None,
    locks: tuple[str, ...] = (),
    genre: str | None = None,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    reference_label: str = "the reference",
    progress: Progress = _quiet,
    remember: bool = False,
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
    analysis. ``genre``: what the caller knows of the song (MUSDB18's genre names or
    ``other``), used by the ``model`` method's level head; an unknown name is a
    :class:`~vocalmix.core.errors.ParamsError` before any analysis. ``reference``: a
    reference mix's vocal and backing stems at ``sample_rate`` (one length): its level,
    dynamics, spectral balance and reverb become the targets and settings
    (:mod:`vocalmix.estimators.reference`). ``mix_lufs`` (LUFS), ``amount`` (0-2) and
    ``locks`` (paths added to the document's) are set before resolving; every override
    is recorded as a reason of source ``user``. ``vocal_offset_ms`` (ms; default
    ``base``'s, else 0) moves the take against the backing before any analysis
    (:attr:`~vocalmix.core.params.VocalChain.offset_ms`), ``"auto"`` by the recording's
    latency where the take carries the backing (:func:`auto_offset_ms`); ``take_moved``:
    ``vocal`` is already moved by it (the long-form path cuts its excerpts from the moved
    take). ``remember``: keep the compressor's resolution for the next estimate that
    resolves the same take and chain to the same dynamics target, and the vocal parts
    (the chain's output at unity gain) for the next render or resolve of the same chain
    but for its gain (an editor's retarget of the level, or its next gain edit; the same
    settings and samples; :func:`forget_resolutions` and
    :func:`~vocalmix.core.render.forget_parts` drop them).
    """
    # read-only views: every analysis of one input hashes it once (core.dsp.content_key)
    vocal, backing = frozen(vocal), frozen(backing)
    if not (remember and base is not None):
        forget_parts()  # an editor's last render's vocal parts: not beside the analyses
    found: BackingBleed | None = None  # the copy of the backing, read on the take as given
    offset_note: str | None = None
    if isinstance(vocal_offset_ms, str):
        if vocal_offset_ms != "auto":
            raise ParamsError(f"vocal_offset_ms must be a number of ms or 'auto', not "
                              f"{vocal_offset_ms!r}")
        found = backing_in_vocal(vocal, backing, sample_rate)
        offset_ms, offset_note = auto_offset_ms(found)
    else:
        offset_ms = (float(vocal_offset_ms) if vocal_offset_ms is not None
                     else base.vocal.offset_ms if base is not None else 0.0)
    if vocal_offset_ms is not None:
        VocalChain(offset_ms=offset_ms)  # its range checked (ParamsError) before any work
    if take_moved:  # the caller moved it: only said
        k = offset_samples(offset_ms, sample_rate)
        moved_notes = [_moved_note(k, sample_rate, offset_ms)] if k else []
    else:
        vocal, moved_notes = moved_take_checked(vocal, sample_rate, offset_ms)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if reverb_preset is not None:
        from vocalmix.estimators.presets import apply_preset, preset_reverb

        preset_reverb(reverb_preset, preset_library)  # an unknown name fails at once
    if genre is not None:
        from vocalmix.estimators.level import normalise_genre

        genre = normalise_genre(genre)  # likewise
    # whether the take carries a copy of the backing (sung along to speakers, or a mix
    # given as the vocal), and whether it holds a pitched voice at all (breaths or noise
    # only): read on a helper thread beside the estimators (0.035 s and about 0.1 s of
    # CPU for 3 minutes), each said as a warning. The model's level provider reads the
    # voice from its own excerpts' features and says it there: only the other paths
    # (the baseline, a params document given) read it here
    voice_here = base is not None or method != "model"

    def no_voice_warning() -> str | None:
        from vocalmix.estimators.features import voicing

        return voicing(vocal, sample_rate).warning()

    def take_checks() -> tuple[BackingBleed | None, str | None]:
        # a copy read before the move is the same copy, moved with the take
        bleed = (replace(found, lag_ms=found.lag_ms + offset_ms) if found is not None
                 else backing_in_vocal(vocal, backing, sample_rate))
        return bleed, no_voice_warning() if voice_here else None

    if base is None:
        (bleed, no_voice), (params, notes) = beside(
            take_checks,
            lambda: choose_targets(vocal, backing, sample_rate, method, progress, genre))
        if not voice_here and params.provenance.method != "model":
            no_voice = no_voice_warning()  # the model could not run (its weights missing)
    else:
        bleed, no_voice = take_checks()
        params, notes = base, ["targets and settings taken from the given params"]
    notes[:0] = moved_notes if offset_note is None else [offset_note, *moved_notes[1:]]
    if params.vocal.offset_ms != offset_ms:
        params = replace(params, vocal=replace(params.vocal, offset_ms=offset_ms))
    if offset_note is not None:
        params = params.with_reasons(Reason("vocal.offset_ms", "rule", offset_note, () if (
            found is None) else (("copy_lag_ms", found.lag_ms), ("copy_level_db",
                                                                  found.level_db))))
    elif vocal_offset_ms is not None:
        params = params.with_reasons(Reason("vocal.offset_ms", "user",
                                            f"given by the user: {offset_ms:g} ms"))
    if bleed is not None:
        notes.append(bleed_warning(bleed, offset_ms))
    if no_voice is not None:
        notes.append(no_voice)
    if reference is not None:
        from vocalmix.estimators.reference import apply_reference, read_reference

        progress(ProgressEvent("estimate.reference", 0.15, "reading the reference mix"))
        ref = read_reference(reference[0], reference[1], sample_rate)
        referenced, more = apply_reference(params, ref, vocal, sample_rate, reference_label)
        params, kept = keep_locked(params, referenced)
        notes.extend(more)
        if kept:
            notes.append(f"kept as locked, not taken from the reference mix: "
                         f"{', '.join(kept)}")
    if reverb_preset is not None:
        preset = apply_preset(params, reverb_preset, preset_library).with_reasons(
            Reason("vocal.reverb", "preset", f"the reverb preset {reverb_preset!r}"),
            Reason("targets.reverb_decay_s", "preset",
                   f"the decay of the reverb preset {reverb_preset!r}"))
        params, kept = keep_locked(params, preset)
        notes.append(f"reverb preset {reverb_preset!r}: its reverb, and its decay as the "
                     "reverb-time target" + (f"; kept as locked instead: {', '.join(kept)}"
                                             if kept else ""))
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
        params = params.with_reasons(*(
            Reason(f"targets.{k}", "user", f"given by the user: {v:g}")
            for k, v in overrides.items() if v is not None))
        overridden = [f"targets.{k}" for k, v in overrides.items()
                      if v is not None and is_locked(params, f"targets.{k}")]
        if overridden:  # (the person's own value, given now, wins over their lock)
            notes.append(f"locked, but given a value: {', '.join(overridden)} take the "
                         "value given")
        range_locked = is_locked(params, "targets.vocal_momentary_range_lu")
        if (vocal_lra_lu is not None and range_locked
                and params.targets.vocal_momentary_range_lu is not None):
            notes.append("the momentary-range target is locked: the compressor follows it, "
                         "not the LRA target given")
        elif vocal_lra_lu is not None and params.targets.vocal_momentary_range_lu is not None:
            # an LRA asked for is the compressor's target: the momentary range is not
            params = replace(params, targets=replace(params.targets,
                                                     vocal_momentary_range_lu=None),
                             reasons=tuple(r for r in params.reasons if r.path
                                           != "targets.vocal_momentary_range_lu"))
            notes.append("the LRA target given replaces the momentary-range target: the "
                         "compressor follows the LRA")
    if mix_lufs is not None:
        params = replace(params, targets=replace(params.targets, mix_lufs=float(mix_lufs)))
        params = params.with_reasons(Reason("targets.mix_lufs", "user",
                                            f"given by the user: {mix_lufs:g} LUFS"))
    if amount is not None:
        params = replace(params, amount=float(amount))
        params = params.with_reasons(Reason("amount", "user", f"given by the user: {amount:g}"))
    if locks:
        params = replace(params, locks=tuple(dict.fromkeys((*params.locks, *locks))))
    t1 = time.perf_counter()
    # the C allocator's free memory (the analyses' work arrays) goes back before the
    # resolvers, whose renders would otherwise land beside it at times and raise the
    # peak (vocalmix.core.memory). Not before the analyses: what the inputs' reading and
    # checks freed the analyses allocate again at once, and memory handed back is
    # faulted in anew (a 3-minute mix: 23 000 page faults, 0.03-0.09 s of CPU)
    release_free_memory()
    try:
        params, rnotes, resolved = _resolve(vocal, backing, sample_rate, params, progress,
                                            remember)
    finally:
        forget_signals()  # downmixes, an EQ'd vocal the resolver did not ask for
    timings["resolve"] = time.perf_counter() - t1
    prov = params.provenance
    params = replace(params, provenance=replace(prov, notes=tuple(notes + rnotes)))
    return Estimate(params=params, notes=tuple(notes + rnotes), timings_s=timings,
                    resolved=resolved)


@on_one_blas_thread
def mix(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    **kwargs,
) -> tuple[MixParams, Rendered, Estimate]:
    """Estimate, resolve and render; returns ``(params_with_achieved, rendered, estimate)``.

    The resolvers' unity-gain vocal parts become the rendered stems (scaled in place), so
    the estimate returned has ``resolved`` ``None`` unless they were shared with an input.
    """
    return mix_pending(vocal, backing, sample_rate, **kwargs).result()


class Pending(Generic[T]):
    """A render whose stems are final and whose master stage is still running (see
    :func:`mix_pending` and :func:`render_params_pending`): :meth:`mix_blocks` gives the
    mix's rows as the limiter finishes them (a writer can write them meanwhile),
    :meth:`result` the finished result, ``params_with_achieved`` first.

    Attributes:
        render: the running render (its stems: ``vocal``, ``vocal_dry``, ``backing``).
        estimate: the estimate made (its params without the achieved figures; ``None``
            for a render of given params).
    """

    def __init__(self, render: PendingRender, finish: Callable[[Rendered], T],
                 estimate: Estimate | None = None) -> None:
        self.render = render
        self.estimate = estimate
        self._finish = finish
        self._result: T | None = None
        self._done = False

    def mix_blocks(self, block: int) -> Iterator[np.ndarray]:
        """The mix's consecutive rows, ``block`` at a time, each once it is final."""
        return self.render.mix_blocks(block)

    def result(self) -> T:
        """The finished result, once the render has ended."""
        if not self._done:
            self._result = self._finish(self.render.result())
            self._done = True
        return cast(T, self._result)

    def close(self) -> None:
        """Wait for the render's helper threads to end (for a caller that gave up)."""
        self.render.master.close()


def mix_pending(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    **kwargs,
) -> Pending[tuple[MixParams, Rendered, Estimate]]:
    """:func:`mix` up to its master stage, which keeps running (see :class:`Pending`):
    for a caller that writes the mix while the limiter makes it."""
    progress: Progress = kwargs.get("progress", _quiet)
    vocal, backing = frozen(vocal), frozen(backing)
    est = estimate_params(vocal, backing, sample_rate, **kwargs)
    t = time.perf_counter()
    progress(ProgressEvent("render", 0.8, "rendering"))
    # the resolvers rendered the vocal parts at unity gain already: reuse them. This is
    # bit-identical to render() of the same params (same operations, same order).
    resolved = est.resolved
    assert resolved is not None
    # the parts are this call's own: scaled in place they become the vocal stems, and the
    # estimate handed back no longer holds them (its ``resolved`` is dropped)
    owned = parts_owned(resolved.parts, vocal, backing)
    release_free_memory()  # the resolvers' renders that were not kept
    if owned:
        est = replace(est, resolved=None)
    pending = assemble_pending(resolved.parts, backing, sample_rate, effective(est.params),
                               in_place=owned)
    done = est

    def finish(rendered: Rendered) -> tuple[MixParams, Rendered, Estimate]:
        params = replace(done.params, achieved=measure_achieved(
            rendered, resolved, master_gain_db=done.params.master.gain_db))
        done.timings_s["render"] = time.perf_counter() - t
        return params, rendered, done

    return Pending(pending, finish, est)


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
    from vocalmix.core.render import db_to_gain, master_loudness

    lo, hi = PLAIN_GAIN_RANGE_DB
    plain = vocal + backing
    target = params.achieved.mix_integrated_lufs
    i0 = integrated_loudness(plain, sample_rate)
    g = 0.0 if target is None or not np.isfinite(i0) else float(np.clip(target - i0, lo, hi))
    y, i, red = plain, i0, 0.0
    for _ in range(4):
        y, red, i = master_loudness(plain * np.float32(db_to_gain(g)), sample_rate,
                                    params.master, in_place=True)
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
    "RESOLVED_SETTINGS",
    "choose_targets",
    "estimate_params",
    "measure_achieved",
    "mix",
    "moved_settings",
    "plain_sum",
    "render_params",
    "resolve_params",
]
