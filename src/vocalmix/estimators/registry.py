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
      (:mod:`vocalmix.estimators.eq`), then the masking reduction on the corrected vocal.
    * ``reverb`` (:func:`reverb_provider`, optional): the synthetic reverb of the reverb
      model (:mod:`vocalmix.estimators.reverb`).

    An optional provider whose weights are missing or stale is skipped with a note and
    the baseline's choice is kept.

:func:`default_method` says which method ``vocalmix mix`` uses when none is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from vocalmix.core.errors import AnalysisError, ModelError, ParamsError
from vocalmix.core.params import (
    BAND_DECAY_RATIO,
    REVERB_DECAY_RANGE_S,
    TARGET_DECAY_RANGE_S,
    EqBand,
    MixParams,
    Reason,
    Reverb,
    Targets,
    clip,
)
from vocalmix.estimators import baseline, eq, level, reverb

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


Provider = Callable[[Context], tuple[MixParams, list[str]]]


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


def eq_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """Learned corrective EQ first, then the masking reduction on the corrected vocal
    (:func:`vocalmix.estimators.eq.combine_with_masking`); the baseline's masking bands,
    which were computed on the uncorrected vocal, are replaced."""
    m = eq.shipped_model()
    c = eq.correct(ctx.vocal, ctx.sample_rate, m)
    cv = m.meta.get("cross_validated") or {}
    notes = []
    if not c.bands:
        notes.append(f"model EQ: no correction (P(no EQ) = {c.p_clean:.2f}; the model "
                     f"corrects only when P(no EQ) < {m.gate_p_clean:g} and the correction's "
                     f"RMS is at least {m.gate_min_rms_db:g} dB)")
        return ctx.params, notes
    corr, mask, hp, more = eq.combine_with_masking(ctx.vocal, ctx.backing, ctx.sample_rate,
                                                   c.bands)
    p = ctx.params
    hp_hz = hp if math.isfinite(hp) else p.vocal.highpass.cutoff_frequency_hz
    bands = tuple(EqBand(kind=k, freq_hz=clip(EqBand, "freq_hz", f),
                         gain_db=clip(EqBand, "gain_db", g), q=clip(EqBand, "q", q),
                         source=src)
                  for src, group in (("correction", corr), ("masking", mask))
                  for k, f, g, q in group)
    vocal = replace(p.vocal, eq_bands=bands,
                    highpass=replace(p.vocal.highpass, cutoff_frequency_hz=float(hp_hz)))
    notes.append(
        f"model EQ: {len(corr)} corrective band(s) (P(no EQ) = {c.p_clean:.2f}), then "
        f"{len(mask)} masking band(s) on the corrected vocal; on held-out singers this "
        f"model removed {100 * float(cv.get('fraction_removed', float('nan'))):.0f}% of a "
        "random EQ's damage")
    return replace(p, vocal=vocal), notes + more


def reverb_provider(ctx: Context) -> tuple[MixParams, list[str]]:
    """The vocal's reverb becomes the ``synthetic`` type with the reverb model's decay
    (also ``targets.reverb_decay_s``), damping
    (:func:`vocalmix.estimators.reverb.band_ratios_for_hf`), pre-delay and wet level
    (:func:`vocalmix.estimators.reverb.predict_reverb`), each clipped to what MixParams
    accepts; width and the on/off switch are kept."""
    m = reverb.shipped_model()
    p = reverb.predict_reverb(m, ctx.backing, ctx.sample_rate)
    hf = float(np.clip(p["hf_ratio"], BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi))
    ratios = reverb.band_ratios_for_hf(hf)
    lo, hi = TARGET_DECAY_RANGE_S
    decay = float(np.clip(p["decay_s"], lo, min(hi, REVERB_DECAY_RANGE_S[1] / max(ratios))))
    pre = clip(Reverb, "pre_delay_ms", p["pre_delay_ms"])
    wet = clip(Reverb, "wet_level_db", p["wet_level_db"])
    params = ctx.params
    rv = replace(params.vocal.reverb, type="synthetic", decay_s=decay,
                 band_decay_ratios=ratios, pre_delay_ms=pre, wet_level_db=wet)
    params = replace(params, vocal=replace(params.vocal, reverb=rv)).with_targets(
        reverb_decay_s=decay)
    n = m.choice.n_songs
    feats = p["features"]
    notes = [
        f"reverb model: synthetic reverb, decay {decay:.2f} s at 1 kHz (the tempo rule says "
        f"{p['tempo_rule_decay_s']:.2f} s at {p['tempo_bpm']:.0f} BPM), 4 kHz decay ratio "
        f"{hf:.2f}, pre-delay {pre:.0f} ms, reverberant-to-direct {wet:+.1f} dB",
        f"reverb model: predicted from the backing's tempo, onset density "
        f"({math.exp(feats['log_onsets_per_s']) - 0.1:.1f}/s) and own reverberance (reads "
        f"{math.exp(feats['backing_log_decay']):.2f} s), learned from the reverb read on "
        f"{n} engineer-mixed vocal(s) and shrunk toward the tempo rule: {n} songs cannot "
        "show skill",
    ]
    if (decay, hf, pre, wet) != (p["decay_s"], p["hf_ratio"], p["pre_delay_ms"],
                                 p["wet_level_db"]):
        notes.append("reverb model: a prediction was clipped to the valid range")
    return params, notes


# (name, provider, required). Required providers raise ModelError when unusable; the
# pipeline then falls back to the baseline. Optional ones are skipped with a note.
PROVIDERS: list[tuple[str, Provider, bool]] = [
    ("level", level_provider, True),
    ("EQ", eq_provider, False),
    ("reverb", reverb_provider, False),
]


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
    params, _analysis = baseline.estimate(vocal, backing, sample_rate)
    notes = []
    for name, provider, required in PROVIDERS:
        try:
            params, more = provider(Context(vocal, backing, sample_rate, params, g))
        except (ModelError, AnalysisError) as e:
            if required:
                raise
            more = [f"{name}: {e}; kept the baseline's choice"]
        notes.extend(more)
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
    "eq_provider",
    "estimate",
    "level_provider",
    "reverb_provider",
]
