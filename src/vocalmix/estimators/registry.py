"""The estimators behind one entry point: :func:`estimate` with a method from
:data:`METHODS`.

``baseline``
    :func:`vocalmix.estimators.baseline.estimate`: rules from the literature, no weights.

``model``
    The baseline's parameters, then every entry of :data:`PROVIDERS` in turn; each is a
    function ``(context) -> (params, notes)`` that replaces what its learned model
    predicts:

    * ``level`` (:func:`level_provider`, required): the vocal-to-mix (measured while the
      vocal sings: ``targets.vocal_to_mix_measure = "singing"``) and vocal LRA targets of
      the level model (:mod:`vocalmix.estimators.level`), from the genre head when the
      caller gives a genre. Without its weights
      the method is unavailable: :func:`estimate` raises
      :class:`~vocalmix.core.errors.ModelError` before any analysis, and the pipeline
      falls back to the baseline with a note.
    * ``EQ`` (:func:`eq_provider`, optional): the corrective EQ
      (:mod:`vocalmix.estimators.eq`), then the masking reduction on the corrected vocal,
      held within what finished vocals and engineers' EQs make usual.
    * ``dynamics`` (:func:`dynamics_provider`, optional): the momentary-loudness-range
      target of the dynamics model (:mod:`vocalmix.estimators.dynamics`) and the
      compressor's ratio and ballistics from the engineers' chains
      (:mod:`vocalmix.estimators.vocalprior`).
    * ``reverb`` (:func:`reverb_provider`, optional): the synthetic reverb of the reverb
      model (:mod:`vocalmix.estimators.reverb`).
    * ``delay`` (:func:`delay_provider`, optional): a tempo-synced delay send with the
      engineers' level, feedback and tone, when the song has a clear tempo and the vocal
      leaves room for echoes.
    * ``de-esser`` (:func:`deesser_provider`, optional): the de-esser's automatic setting
      (:func:`vocalmix.core.deesser.auto_settings`) on the EQ'd vocal, or none.

    Each of these writes ordinary editable settings and targets, a note, and a
    structured :class:`~vocalmix.core.params.Reason` per choice (``params.reasons``).

    An optional provider whose weights are missing or stale is skipped with a note and
    the baseline's choice is kept.

:func:`default_method` says which method ``vocalmix mix`` uses when none is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vocalmix.core.dsp import LruCache, content_key
from vocalmix.core.errors import AnalysisError, ModelError, ParamsError
from vocalmix.core.params import (
    BAND_DECAY_RATIO,
    DELAY_NOTES,
    REVERB_DECAY_RANGE_S,
    TARGET_DECAY_RANGE_S,
    Compressor,
    DeEsser,
    Delay,
    EqBand,
    MixParams,
    Reason,
    Reverb,
    Targets,
    clip,
)
from vocalmix.estimators import baseline, dynamics, eq, level, reverb, vocalprior

METHODS = ("baseline", "model")


@dataclass(frozen=True)
class Context:
    """What a target provider sees: the input pair, the parameters so far and what the
    caller knows of the song (``genre``: canonical, see
    :func:`vocalmix.estimators.level.normalise_genre`, or ``None``)."""

    vocal: np.ndarray
    backing: np.ndarray
    sample_rate: int
    params: MixParams
    genre: str | None = None
    #: analyses started ahead on another thread (see :func:`estimate`), by name; a
    #: provider takes its result from here, or computes it when absent
    ahead: Mapping[Any, Future[Any]] = field(default_factory=dict)
    #: intermediate signals the providers of one estimate share (see :func:`_eq_vocal`)
    memo: dict[Any, Any] = field(default_factory=dict)


Provider = Callable[[Context], tuple[MixParams, list[str]]]


def _ahead(ctx: Context, name: Any, compute: Callable[[], Any]) -> Any:
    """The result of the analysis ``name``: the one started ahead (its exception
    re-raised here), or ``compute()``."""
    f = ctx.ahead.get(name)
    return f.result() if f is not None else compute()


def _engineers_eq_shape() -> dict[str, np.ndarray] | None:
    try:
        return vocalprior.engineers().eq_shape_db
    except ModelError:
        return None


def _eq_analysis(vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> tuple[Any, Any]:
    """The EQ provider's analysis of the input pair: the corrective EQ and the masking
    bands on the corrected vocal (see :func:`eq_provider`)."""
    from vocalmix.core.dsp import mono

    m = eq.shipped_model()
    # at the model's rate, the vocal's downmix is what both the correction's spectrum and
    # (with no correction) the masking analysis read: made once (32 MB for 3 minutes)
    y = mono(vocal) if sample_rate == eq.ANALYSIS_SR else None
    c = eq.correct(vocal, sample_rate, m, downmix=y)
    return c, eq.combine_with_masking(vocal, backing, sample_rate, c.bands, model=m,
                                      engineers_shape_db=_engineers_eq_shape(),
                                      vocal_power=c.power, downmix=y)


#: the reverb model's predictions by the backing's content (a few numbers each, with the
#: model they came from): a batch worker or a server mixing many takes over one
#: instrumental analyses it once (0.4-0.5 s of CPU for 3 minutes)
_REVERB_READINGS = LruCache(16)


def _reverb_analysis(backing: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """The reverb provider's prediction from the backing (see :func:`reverb_provider`),
    remembered by the content of a read-only backing (:func:`~vocalmix.core.dsp.frozen`);
    each call gets its own copy."""
    m = reverb.shipped_model()
    key = None
    if not np.asarray(backing).flags.writeable:
        key = content_key(backing, sample_rate, "reverb prediction")
        hit = _REVERB_READINGS.get(key)
        if hit is not None and hit[0] is m:
            return _copy_reading(hit[1])
    out = reverb.predict_reverb(m, backing, sample_rate)
    if key is not None:
        _REVERB_READINGS.put(key, (m, _copy_reading(out)))
    return out


def _take_reverb(vocal: np.ndarray, sample_rate: int) -> tuple[float, int] | None:
    """The reverb the take already carries (:func:`vocalmix.estimators.reverb.take_reverb_db`)."""
    return reverb.take_reverb_db(reverb.shipped_model(), vocal, sample_rate)


def _copy_reading(r: dict[str, Any]) -> dict[str, Any]:
    """A copy of a reverb prediction that shares no mutable part with ``r``."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in r.items()}


def level_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """Replace the level and dynamics targets by the level model's predictions, clipped
    to the ranges MixParams accepts; the vocal-to-mix target is measured while the vocal
    sings (the model's measure), which the resolver honours."""
    m = level.shipped_model()
    p = level.predict_song(m, ctx.vocal, ctx.backing, ctx.sample_rate, ctx.genre)
    v2m = clip(Targets, "vocal_to_mix_lu", p.vocal_to_mix_lu)
    lra = clip(Targets, "vocal_lra_lu", p.vocal_lra_lu)
    n = m.meta.get("n_songs", "?")
    if ctx.genre is None:
        basis = "the backing's density, brightness, balance and dynamics"
    else:
        off = m.head("vocal_to_mix_lu", ctx.genre).genre_offset(ctx.genre)
        basis = (f"the genre {ctx.genre!r} ({off:+.2f} LU against the average) and the "
                 "backing's density, brightness, balance and dynamics")
    notes = [
        f"model: vocal-to-mix {v2m:+.2f} LU while the vocal sings, predicted from {basis} "
        f"over {p.n_excerpts} excerpt(s)",
        f"model: vocal LRA {lra:.1f} LU (input {p.input_lra_lu:.1f} LU times the predicted "
        f"mixing ratio); trained on {n} song(s)",
    ]
    if v2m != p.vocal_to_mix_lu or lra != p.vocal_lra_lu:
        notes.append("model: a prediction was clipped to the valid range")
    # a take with nobody singing in it, read from the excerpts' own pitch features (the
    # baseline reads them apart: vocalmix.pipeline.estimate_params)
    no_voice = p.voicing.warning() if p.voicing is not None else None
    if no_voice is not None:
        notes.insert(0, no_voice)
    seconds = ctx.vocal.shape[0] / ctx.sample_rate
    if seconds < level.EXCERPT_S:
        notes.append(
            f"model: the take is {seconds:.1f} s long, shorter than one of the "
            f"{level.EXCERPT_S:g} s excerpts the level and dynamics models learned from: "
            "their targets rest on little; check them by ear (targets.vocal_to_mix_lu, "
            "targets.vocal_momentary_range_lu)")
    params = ctx.params.with_targets(vocal_to_mix_lu=v2m, vocal_lra_lu=lra)
    params = replace(params, targets=replace(params.targets,
                                             vocal_to_mix_measure=level.LEVEL_MEASURE))
    cv = (m.meta.get("cross_validated") or {}).get("summary") or {}
    mae = ((cv.get("model") or {}).get("vocal_to_mix_lu") or {}).get("mae")
    inputs: list[tuple[str, float]] = [("excerpts", float(p.n_excerpts)),
                                       ("training_songs", float(n) if n != "?" else 0.0)]
    if mae is not None:
        inputs.append(("cv_mae_lu", float(mae)))
    params = params.with_reasons(
        Reason("targets.vocal_to_mix_lu", "model",
               f"the level model: {v2m:+.1f} LU while the vocal sings, predicted from {basis}",
               tuple(inputs)),
        Reason("targets.vocal_lra_lu", "model",
               f"the level model: the input's {p.input_lra_lu:.1f} LU times the mixing ratio "
               f"it predicts from the take's and the backing's dynamics",
               (("input_lra_lu", p.input_lra_lu),)),
    )
    return params, notes


def with_reasons(params: MixParams, *reasons: Reason) -> MixParams:
    """``params`` with ``reasons`` replacing any earlier reason for the same path."""
    paths = {r.path for r in reasons}
    kept = tuple(r for r in params.reasons if r.path not in paths)
    return replace(params, reasons=kept + tuple(reasons))


def eq_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """Learned corrective EQ first, then the masking reduction on the corrected vocal
    (:func:`vocalmix.estimators.eq.combine_with_masking`), held within what finished
    vocals and engineers' EQs make usual; the baseline's masking bands, which were
    computed on the uncorrected vocal, are replaced."""
    m = eq.shipped_model()
    c, combined = _ahead(ctx, "eq",
                         lambda: _eq_analysis(ctx.vocal, ctx.backing, ctx.sample_rate))
    cv = m.meta.get("cross_validated") or {}
    removed = 100 * float(cv.get("fraction_removed", float("nan")))
    notes = []
    if c.bands:
        notes.append(f"model EQ: correction (P(no EQ) = {c.p_clean:.2f}): in "
                     f"cross-validation over artists (band domain) this model removed "
                     f"{removed:.0f}% of a random EQ's damage (about half that once fitted "
                     "to bands and rendered)")
    elif m.gate_open(c.curve_db, np.asarray(c.p_clean)):
        notes.append(f"model EQ: no correction (P(no EQ) = {c.p_clean:.2f}; the corrective "
                     "curve is too small to need a band)")
    else:
        notes.append(f"model EQ: no correction (P(no EQ) = {c.p_clean:.2f}; the model "
                     f"corrects only when P(no EQ) < {m.gate_p_clean:g} and the correction's "
                     f"RMS is at least {m.gate_min_rms_db:g} dB)")
    corr, mask, hp, more = combined
    p = ctx.params
    hp_hz = hp if math.isfinite(hp) else _baseline_masking(ctx).highpass_hz
    bands = tuple(EqBand(kind=k, freq_hz=clip(EqBand, "freq_hz", f),
                         gain_db=clip(EqBand, "gain_db", g), q=clip(EqBand, "q", q),
                         source=src)
                  for src, group in (("correction", corr), ("masking", mask))
                  for k, f, g, q in group)
    vocal = replace(p.vocal, eq_bands=bands,
                    highpass=replace(p.vocal.highpass, cutoff_frequency_hz=float(hp_hz)))
    notes.append(f"model EQ: {len(corr)} corrective band(s), then {len(mask)} masking "
                 "band(s) on the corrected vocal, held within finished vocals' and "
                 "engineers' usual range")
    text = (f"{len(corr)} corrective band(s) toward a finished vocal (P(no EQ) "
            f"{c.p_clean:.2f}; in cross-validation over artists it removed {removed:.0f}% of "
            f"random EQs' damage, band domain), then {len(mask)} masking band(s) where the "
            "backing covers the "
            "vocal, never lifting a band past finished vocals' upper quartile or where "
            "the vocal is rolled off")
    r = Reason("vocal.eq_bands", "model", text,
               (("p_no_eq", c.p_clean), ("correction_bands", float(len(corr))),
                ("masking_bands", float(len(mask)))), 1.0 - c.p_clean if corr else None)
    where = ("below the corrected vocal's lowest energy" if math.isfinite(hp) else
             "the baseline's (the corrected vocal shows no low roll-off)")
    r_hp = Reason("vocal.highpass", "rule", f"a high-pass at {hp_hz:.0f} Hz, {where}",
                  (("cutoff_hz", float(hp_hz)),))
    return with_reasons(replace(p, vocal=vocal), r, r_hp), notes + more


def _baseline_masking(ctx: Context) -> baseline.BaselineAnalysis:
    """The baseline's masking EQ and high-pass of the input pair (what the model keeps
    when its EQ is unavailable), computed once per estimate and only when asked: the
    model's estimate starts from a baseline without it (``masking=False``)."""
    key = "baseline masking"
    a = ctx.memo.get(key)
    if a is None:
        bands, hp = baseline.masking_analysis(ctx.vocal, ctx.backing, ctx.sample_rate)
        a = ctx.memo[key] = baseline.BaselineAnalysis(float("nan"), bands, hp)
    return a


def dynamics_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """The dynamics model's momentary-loudness-range target
    (``targets.vocal_momentary_range_lu``, which the resolver then honours instead of
    the LRA target) and the compressor's ratio, attack and release from the engineers'
    chains (the DiffVox medians; attack and release converted to JUCE's time
    constants). pedalboard's compressor has a hard knee: there is no knee to choose."""
    m = dynamics.shipped_model()
    eng = vocalprior.engineers()
    p = ctx.params
    choice = _ahead(ctx, _dynamics_key(ctx), lambda: _dynamics_analysis(ctx))
    target = clip(Targets, "vocal_momentary_range_lu", choice.target_lu)
    comp = replace(p.vocal.compressor,
                   ratio=clip(Compressor, "ratio", round(eng.comp_ratio.p50, 2)),
                   attack_ms=clip(Compressor, "attack_ms",
                                  round(vocalprior.juce_ms_from_diffvox(eng.attack_ms.p50), 1)),
                   release_ms=clip(Compressor, "release_ms",
                                   round(vocalprior.juce_ms_from_diffvox(eng.release_ms.p50))))
    params = replace(p, vocal=replace(p.vocal, compressor=comp),
                     targets=replace(p.targets, vocal_momentary_range_lu=target))
    n = m.meta.get("n_songs", "?")
    left = choice.input_lu <= target
    notes = [
        f"dynamics model: momentary loudness range {target:.1f} LU (the vocal has "
        f"{choice.input_lu:.1f} LU{': left alone' if left else ''}), predicted from the "
        f"vocal's and the backing's dynamics; learned from {n} professionally mixed vocals "
        f"(the compressor is resolved to this, not to the LRA target "
        f"{p.targets.vocal_lra_lu:.1f} LU)",
        f"compressor: ratio {comp.ratio:g}, attack {comp.attack_ms:g} ms, release "
        f"{comp.release_ms:g} ms: the median of {eng.n_presets} engineers' vocal chains "
        "(DiffVox; their attack and release are 2.2 time constants on the gain, "
        "pedalboard's 2 pi on the level: x2.86); hard knee (pedalboard has no knee)",
    ]
    feats = tuple((k, round(v, 4)) for k, v in choice.features.items())
    reasons = [
        Reason("targets.vocal_momentary_range_lu", "model",
               f"a finished vocal of this kind keeps about {target:.1f} LU of momentary "
               f"loudness range (the vocal has {choice.input_lu:.1f} LU"
               f"{'; already within: no compression' if left else ''})",
               feats, None),
        Reason("vocal.compressor", "preset",
               f"ratio {comp.ratio:g}:1, attack {comp.attack_ms:g} ms, release "
               f"{comp.release_ms:g} ms: the median engineer's compressor "
               f"({eng.n_presets} DiffVox vocal chains), times converted to pedalboard's "
               "convention; hard knee",
               (("diffvox_ratio", eng.comp_ratio.p50), ("diffvox_attack_ms", eng.attack_ms.p50),
                ("diffvox_release_ms", eng.release_ms.p50))),
    ]
    return with_reasons(params, *reasons), notes


def _eq_vocal(ctx: Context) -> np.ndarray:
    """The vocal after the parameters' high-pass and EQ (what the de-esser and the
    compressor will see)."""
    from vocalmix.core.dsp import eq_stage, frozen

    v = ctx.params.vocal
    key = ("eq vocal", v.highpass, v.eq_bands)
    x = ctx.memo.get(key)
    if x is None:  # the dynamics and de-esser providers both ask; read-only, hashed once
        x = ctx.memo[key] = frozen(eq_stage(ctx.vocal, ctx.sample_rate, v.highpass,
                                            v.eq_bands, hand_over=True))
    return x


def reverb_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """The vocal's reverb becomes the ``synthetic`` type with the reverb model's decay
    (also ``targets.reverb_decay_s``), damping (above 1 kHz:
    :func:`vocalmix.estimators.reverb.band_ratios_for_hf`; below, the engineers' median
    band ratios), pre-delay and wet level (:func:`vocalmix.estimators.reverb.predict_reverb`),
    each clipped to what MixParams accepts; width is kept. The wet level is the finished
    vocal's: a take that carries reverb already gets a send of what it lacks
    (:func:`vocalmix.estimators.reverb.send_for_total_db`), and none (the reverb switched
    off) when it lacks nothing; otherwise the on/off switch is kept."""
    m = reverb.shipped_model()
    p = _ahead(ctx, "reverb", lambda: _reverb_analysis(ctx.backing, ctx.sample_rate))
    hf = float(np.clip(p["hf_ratio"], BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi))
    ratios = reverb.band_ratios_for_hf(hf)
    try:
        low = vocalprior.engineers().band_decay_ratios[:3]
        ratios = tuple(round(float(np.clip(r, BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi)), 4)
                       for r in low) + ratios[3:]
    except ModelError:
        pass
    lo, hi = TARGET_DECAY_RANGE_S
    decay = float(np.clip(p["decay_s"], lo, min(hi, REVERB_DECAY_RANGE_S[1] / max(ratios))))
    pre = clip(Reverb, "pre_delay_ms", p["pre_delay_ms"])
    wet = clip(Reverb, "wet_level_db", p["wet_level_db"])
    params = ctx.params
    # the model's level is the finished vocal's reverberant-to-direct ratio: a take that
    # carries reverb already (a wet stem, an app's echo, a live room) gets only the rest
    present = _ahead(ctx, "take_reverb", lambda: _take_reverb(ctx.vocal, ctx.sample_rate))
    send: float | None = wet
    if present is not None:
        send = reverb.send_for_total_db(wet, present[0])
        if send is not None:
            send = clip(Reverb, "wet_level_db", send)
    rv = replace(params.vocal.reverb, type="synthetic", decay_s=decay,
                 band_decay_ratios=ratios, pre_delay_ms=pre,
                 wet_level_db=wet if send is None else send)
    if send is None:
        rv = replace(rv, enabled=False)
    params = replace(params, vocal=replace(params.vocal, reverb=rv)).with_targets(
        reverb_decay_s=decay)
    n = m.choice.n_songs
    feats = p["features"]
    cv = (m.meta.get("choice_cross_validated") or {}).get("summary") or {}
    notes = [
        f"reverb model: synthetic reverb, decay {decay:.2f} s at 1 kHz (the tempo rule says "
        f"{p['tempo_rule_decay_s']:.2f} s at {p['tempo_bpm']:.0f} BPM"
        f"{'' if p['tempo_found'] else ', assumed: no clear tempo'}), 4 kHz decay ratio "
        f"{hf:.2f}, pre-delay {pre:.0f} ms, reverberant-to-direct {wet:+.1f} dB",
        f"reverb model: predicted from the backing's tempo, onset density "
        f"({math.exp(feats['log_onsets_per_s']) - 0.1:.1f}/s) and own reverberance (reads "
        f"{math.exp(feats['backing_log_decay']):.2f} s), learned from the reverb read on "
        f"{n} engineer-mixed vocal(s), shrunk toward the engineers' own sends (DiffVox)",
    ]
    if (decay, hf, pre, wet) != (p["decay_s"], p["hf_ratio"], p["pre_delay_ms"],
                                 p["wet_level_db"]):
        notes.append("reverb model: a prediction was clipped to the valid range")
    if present is not None:
        heard = (f"the take carries reverb already (the reverb estimator reads "
                 f"{present[0]:+.1f} dB reverberant-to-direct on {present[1]} excerpt(s))")
        notes.append(
            f"reverb model: {heard}: the send is {send:+.1f} dB, so that the two reach the "
            f"model's {wet:+.1f} dB together" if send is not None else
            f"reverb model: {heard}, as much as the model's {wet:+.1f} dB or nearly: no "
            "reverb is added (vocal.reverb.enabled turns it back on)")
    inputs = (("tempo_bpm", round(p["tempo_bpm"], 2)),
              *((k, round(v, 4)) for k, v in feats.items()))
    err = (cv.get("model") or {}).get("log_decay")
    if present is not None:
        inputs = (*inputs, ("take_reverb_db", round(present[0], 2)))
    r = Reason("vocal.reverb", "model",
               f"a {decay:.2f} s synthetic reverb {-wet:.1f} dB under the dry vocal, "
               f"{pre:.0f} ms after it: the reverb engineers chose on {n} mixed vocals "
               "with a backing like this one (tempo, density, its own reverb)"
               + (f"; cross-validated decay error {100 * (math.exp(err) - 1):.0f}%"
                  if err is not None else "")
               + ("" if present is None else
                  f"; less the {present[0]:+.1f} dB of reverb the take carries already"),
               inputs)
    return with_reasons(params, r, Reason("targets.reverb_decay_s", "model",
                                          "the reverb model's decay", inputs[:1])), notes


#: the musical note values a delay may take when synced (``Delay.note``), longest first
_SYNC_NOTES = tuple(n for n in DELAY_NOTES if n != "free")


def choose_delay_note(tempo_bpm: float, want_ms: float) -> tuple[str, float]:
    """The note value whose length at ``tempo_bpm`` is closest (in log time) to
    ``want_ms``, and that length, ms."""
    lengths = {n: float(Delay(note=n, tempo_bpm=tempo_bpm).note_ms() or want_ms)
               for n in _SYNC_NOTES}
    note = min(_SYNC_NOTES, key=lambda n: abs(math.log(lengths[n] / want_ms)))
    return note, lengths[note]


def delay_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """A delay send as engineers use one (:mod:`vocalmix.estimators.vocalprior`: 57 % of
    the DiffVox chains have a delay whose echoes carry at least -30 dB): on when the
    backing has a clear tempo (the echoes can sit on the beat) and the vocal leaves
    room between its notes (its activity, the share of 400 ms blocks within 20 LU of its
    loudest, is under the threshold that gives the engineers' share on the training
    songs); the note value whose length at the backing's tempo is closest to the
    engineers' median delay time; their median first-echo level, feedback and low-pass.
    (DiffVox's delays are not shown to be tempo-synced; syncing them is vocalmix's
    choice, and the note is editable, ``free`` included.) Otherwise the delay is left
    off, with a reason."""
    from vocalmix.estimators.tempo import estimate_tempo

    eng = vocalprior.engineers()
    m = dynamics.shipped_model()
    thr = m.meta.get("delay_activity_threshold")
    if thr is None:
        raise ModelError("the dynamics model's metadata has no delay_activity_threshold: "
                         "retrain it with 'vocalmix train --only dynamics'")
    tempo = float(estimate_tempo(ctx.backing, ctx.sample_rate))
    activity = dynamics.vocal_activity(ctx.vocal, ctx.sample_rate)
    p = ctx.params
    inputs = (("tempo_bpm", round(tempo, 2) if math.isfinite(tempo) else -1.0),
              ("vocal_activity", round(activity, 4)), ("activity_threshold", float(thr)))
    if not math.isfinite(tempo) or activity > float(thr):
        why = ("the backing has no clear tempo to sync echoes to" if not math.isfinite(tempo)
               else f"the vocal leaves little room for echoes (active {100 * activity:.0f}% "
                    f"of the time; a delay is chosen under {100 * float(thr):.0f}%)")
        d = replace(p.vocal.delay, enabled=False)
        r = Reason("vocal.delay", "model", f"no delay send: {why}", inputs)
        return with_reasons(replace(p, vocal=replace(p.vocal, delay=d)), r), [
            f"delay: off ({why})"]
    tempo_c = clip(Delay, "tempo_bpm", tempo)
    note, ms = choose_delay_note(tempo_c, eng.delay_time_ms.p50)
    d = Delay(enabled=True, note=note, tempo_bpm=tempo_c,
              time_ms=clip(Delay, "time_ms", ms),
              feedback=clip(Delay, "feedback", round(eng.delay_feedback.p50, 3)),
              wet_level_db=clip(Delay, "wet_level_db", round(eng.delay_level_db.p50, 1)),
              highcut_hz=clip(Delay, "highcut_hz", round(eng.delay_lowpass_hz.p50)))
    text = (f"a {note} delay ({ms:.0f} ms at {tempo_c:.1f} BPM), first echo "
            f"{d.wet_level_db:+.1f} dB, feedback {d.feedback:.2f}, high cut "
            f"{d.highcut_hz:.0f} Hz: {100 * eng.delay_fraction:.0f}% of {eng.n_presets} "
            f"engineers' vocal chains use a delay (median {eng.delay_time_ms.p50:.0f} ms, "
            "its level, feedback and tone are theirs); the vocal leaves room for echoes "
            f"(active {100 * activity:.0f}% of the time)")
    r = Reason("vocal.delay", "model", text, inputs + (
        ("diffvox_delay_ms", eng.delay_time_ms.p50),
        ("diffvox_delay_share", eng.delay_fraction)))
    return with_reasons(replace(p, vocal=replace(p.vocal, delay=d)), r), [f"delay: {text}"]


def _dynamics_key(ctx: Context) -> tuple:
    """The name of the dynamics analysis started ahead for the EQ of ``ctx.params``."""
    v = ctx.params.vocal
    return ("dynamics", v.highpass, v.eq_bands)


def _dynamics_analysis(ctx: Context) -> dynamics.DynamicsChoice:
    """The dynamics model's reading of the vocal after the parameters' EQ and of the
    backing (:func:`dynamics_provider`). That vocal is the compressor resolver's input
    (when no de-esser changes it): it is K-weighted once for both."""
    from vocalmix.core.resolve import measure_compressor_input

    x = _eq_vocal(ctx)
    measure_compressor_input(x, ctx.sample_rate)
    return dynamics.predict_dynamics(dynamics.shipped_model(), x, ctx.backing,
                                     ctx.sample_rate)


def deesser_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """The de-esser's automatic setting on the vocal after its EQ
    (:func:`vocalmix.core.deesser.auto_settings`): on, with its threshold, frequency and
    depth, when the sibilant peaks stand out; otherwise off."""
    from vocalmix.core.deesser import SIBILANCE_TARGET_DB, auto_settings

    x = _eq_vocal(ctx)
    s, sib = auto_settings(x, ctx.sample_rate)
    p = ctx.params
    inputs = tuple((k, round(float(v), 3)) for k, v in
                   (("sibilant_peak_dbfs", sib.band_peak_dbfs), ("vowel_level_dbfs",
                                                                 sib.body_dbfs))
                   if math.isfinite(float(v)))
    if s is None:
        d = replace(p.vocal.deesser, enabled=False)
        text = ("no de-esser: the sibilant peaks are already at least "
                f"{-SIBILANCE_TARGET_DB:g} dB under the vowels' level")
    else:
        d = DeEsser(enabled=True, threshold_db=clip(DeEsser, "threshold_db", s.threshold_db),
                    freq_hz=clip(DeEsser, "freq_hz", s.freq_hz),
                    depth_db=clip(DeEsser, "depth_db", s.depth_db),
                    release_ms=p.vocal.deesser.release_ms)
        text = (f"de-esser above {d.freq_hz:.0f} Hz, threshold {d.threshold_db:.1f} dBFS, up "
                f"to {d.depth_db:.1f} dB: the sibilant peaks stand out of the vowels")
    r = Reason("vocal.deesser", "rule", text, inputs)
    return with_reasons(replace(p, vocal=replace(p.vocal, deesser=d)), r), [f"de-esser: {text}"]


# (name, provider, required). Required providers raise ModelError when unusable; the
# pipeline then falls back to the baseline. Optional ones are skipped with a note.
PROVIDERS: list[tuple[str, Provider, bool]] = [
    ("level", level_provider, True),
    ("EQ", eq_provider, False),
    ("de-esser", deesser_provider, False),
    ("dynamics", dynamics_provider, False),
    ("reverb", reverb_provider, False),
    ("delay", delay_provider, False),
]


#: the providers that neither read nor replace the vocal's EQ before the EQ provider
#: settles it (see :func:`estimate`)
_BEFORE_EQ = frozenset({"level", "EQ"})


def default_method() -> str:
    """The runnable method (``baseline`` or ``model``) whose cross-validated vocal-to-mix
    error, recorded in the shipped level model's metadata by ``vocalmix train``, is
    lowest; ``baseline`` when the weights are missing or stale, when the metadata holds
    no cross-validated figures, and on a tie. Both errors are measured the same way
    (the human balance while the vocal sings, against where each method puts the vocal
    on the same held-out songs)."""
    try:
        meta = level.shipped_model().meta
    except ModelError:
        return "baseline"
    s = (meta.get("cross_validated") or {}).get("summary") or {}
    try:
        maes = {name: float(s[RUNNABLE[name]]["vocal_to_mix_lu"]["mae"])
                for name in RUNNABLE}
    except (KeyError, TypeError, ValueError):
        return "baseline"
    if not all(math.isfinite(v) for v in maes.values()):
        return "baseline"
    return "model" if maes["model"] < maes["baseline"] else "baseline"


#: each runnable method's name in the level model's cross-validated summary
RUNNABLE = {"baseline": "rule", "model": "model"}


def estimate(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
             method: str = "baseline", genre: str | None = None
             ) -> tuple[MixParams, list[str]]:
    """Targets and unresolved settings by ``method``: ``(MixParams, notes)``.

    ``baseline``: :func:`vocalmix.estimators.baseline.estimate` (a ``genre`` is not
    used). ``model``: the baseline's settings, then each provider of :data:`PROVIDERS`
    replaces what it predicts; ``genre`` (MUSDB18's genre names or ``other``) feeds the
    level model's genre head. Raises :class:`~vocalmix.core.errors.ParamsError` for an
    unknown method or genre and :class:`~vocalmix.core.errors.ModelError` when the level
    weights are missing or stale (before any analysis).
    """
    if method not in METHODS:
        raise ParamsError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    g = level.normalise_genre(genre)
    if method == "baseline":
        params, _analysis = baseline.estimate(vocal, backing, sample_rate)
        notes = list(params.provenance.notes)
        if g is not None:
            notes.append(f"genre {g!r} given: the baseline's rules do not use it")
        return params, notes
    level.shipped_model()  # fail fast: the pipeline falls back to the baseline
    # the EQ's and the reverb's analyses depend on the input pair only: a second thread
    # runs them while this one runs the baseline and the level model (their FFTs,
    # filters and resampling release the GIL); the providers then take the results.
    # The dynamics analysis, which needs the settled EQ, gets a thread of its own (side)
    pool = ThreadPoolExecutor(1)
    side = ThreadPoolExecutor(1)
    try:
        ahead: dict[Any, Future[Any]] = {
            "eq": pool.submit(_eq_analysis, vocal, backing, sample_rate),
            "reverb": pool.submit(_reverb_analysis, backing, sample_rate),
            # the take's own reverb, on the thread that waits for the EQ until then
            "take_reverb": side.submit(_take_reverb, vocal, sample_rate)}
        # the baseline's masking EQ is replaced by the EQ provider's: it is analysed only
        # if a provider after the EQ's place runs before the EQ is settled
        params, _analysis = baseline.estimate(vocal, backing, sample_rate, masking=False)
        notes = []
        memo: dict[Any, Any] = {}
        eq_settled = False

        def with_baseline_eq(p: MixParams) -> MixParams:
            return baseline.with_masking_eq(p, _baseline_masking(
                Context(vocal, backing, sample_rate, p, g, ahead, memo)))

        for name, provider, required in PROVIDERS:
            if not eq_settled and name not in _BEFORE_EQ:
                params = with_baseline_eq(params)
                eq_settled = True
            try:
                params, more = provider(Context(vocal, backing, sample_rate, params, g,
                                                ahead, memo))
            except (ModelError, AnalysisError) as e:
                if required:
                    raise
                more = [f"{name}: {e}; kept the baseline's choice"]
            else:
                eq_settled = eq_settled or name == "EQ"
            notes.extend(more)
            if name == "EQ" and any(n == "dynamics" for n, _p, _r in PROVIDERS):
                # the EQ is settled: the dynamics model's analysis of the EQ'd vocal starts
                # on a third thread at once, while this one measures the de-esser's
                # sibilance on the same EQ'd vocal and the second finishes the reverb's
                # analysis (queued behind that one, it kept this thread waiting at the end
                # with one core idle: an estimate 2.0 -> 1.8 s median in-process)
                ctx = Context(vocal, backing, sample_rate, params, g, ahead, memo)
                _eq_vocal(ctx)  # made here, once, before both threads read it
                ahead[_dynamics_key(ctx)] = side.submit(_dynamics_analysis, ctx)
        if not eq_settled:
            params = with_baseline_eq(params)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        side.shutdown(wait=False, cancel_futures=True)
    notes.extend(params.provenance.notes)
    params = replace(params, provenance=replace(params.provenance, method="model",
                                                notes=tuple(notes)))
    return params, notes


__all__ = [
    "METHODS",
    "PROVIDERS",
    "RUNNABLE",
    "Context",
    "Provider",
    "default_method",
    "deesser_provider",
    "delay_provider",
    "dynamics_provider",
    "eq_provider",
    "estimate",
    "level_provider",
    "reverb_provider",
    "with_reasons",
]
