"""The knowledge-based baseline estimator.

Rules, all set in one :class:`BaselineConfig`:

* **Level**: the vocal sits at ``vocal_to_mix_lu`` = -3 LU against the whole mix
  (integrated loudness, BS.1770-4), the research plan's default. For uncorrelated parts
  -3 LU against the mix is the vocal about as loud as the backing.
* **Dynamics**: compression to a target vocal loudness range of ``vocal_lra_lu`` = 14 LU
  (EBU Tech 3342); a vocal already below it is left alone.
* **EQ**: masking reduction (:mod:`vocalmix.estimators.masking`): in critical bands where the
  backing masks the vocal and the band matters to the vocal, a bounded boost, after
  Hafezi & Reiss, "Autonomous multitrack equalization based on masking reduction",
  JAES 63(5), 2015; plus a high-pass below the vocal's range.
* **Reverb**: decay time from the backing's tempo by the linear rule of the earlier
  prototype, ``RT = 40/9 - tempo/45`` s (3.1 s at 60 BPM, 1.8 s at 120 BPM, 0.9 s at
  160 BPM), clipped to ``reverb_decay_range_s``: slower songs get longer reverbs, the
  usual engineering habit of letting the tail fit between beats. Note that on 100
  MUSDB18 songs the prototype found no correlation between reverb time and tempo
  (r = -0.03): this is a rule of thumb, not a finding. Tempo comes from an
  onset-autocorrelation estimate in numpy (:mod:`vocalmix.estimators.tempo`), 120 BPM if unclear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vocalmix.core.params import (
    RULE_VOCAL_LRA_LU,
    RULE_VOCAL_TO_MIX_LU,
    Compressor,
    EqBand,
    HighPass,
    MixParams,
    Provenance,
    Reason,
    Reverb,
    Targets,
    VocalChain,
)


@dataclass(frozen=True)
class BaselineConfig:
    """Every default of the baseline rules (units in the names)."""

    vocal_to_mix_lu: float = RULE_VOCAL_TO_MIX_LU
    vocal_lra_lu: float = RULE_VOCAL_LRA_LU
    # reverb time from tempo: decay_s = intercept - tempo_bpm / divisor, clipped
    reverb_intercept_s: float = 40.0 / 9.0
    reverb_tempo_divisor_bpm: float = 45.0
    reverb_decay_range_s: tuple[float, float] = (0.6, 4.0)
    default_tempo_bpm: float = 120.0
    reverb_wet_level_db: float = -14.0
    reverb_pre_delay_ms: float = 20.0
    reverb_damping: float = 0.5
    reverb_width: float = 1.0
    # compressor ballistics; the ratio is raised by the resolver when needed
    compressor_ratio: float = 3.0
    compressor_attack_ms: float = 10.0
    compressor_release_ms: float = 120.0
    # masking EQ bounds
    eq_max_bands: int = 4
    eq_max_gain_db: float = 4.0
    eq_max_total_gain_db: float = 6.0
    eq_masking_threshold_db: float = 0.0
    highpass_default_hz: float = 80.0


def reverb_decay_for_tempo(tempo_bpm: float, config: BaselineConfig | None = None) -> float:
    """The baseline's reverb decay time (s) for a tempo (BPM)."""
    c = config or BaselineConfig()
    if not math.isfinite(tempo_bpm) or tempo_bpm <= 0:
        tempo_bpm = c.default_tempo_bpm
    rt = c.reverb_intercept_s - tempo_bpm / c.reverb_tempo_divisor_bpm
    lo, hi = c.reverb_decay_range_s
    return float(np.clip(rt, lo, hi))


@dataclass(frozen=True)
class BaselineAnalysis:
    """What the baseline looked at (reported to the user)."""

    tempo_bpm: float
    eq_bands: tuple[EqBand, ...]
    highpass_hz: float
    #: ``False`` when the backing showed no clear tempo (shorter than the estimator
    #: needs, or no steady pulse) and ``tempo_bpm`` is the configured default
    tempo_found: bool = True


def tempo_or_default(backing: np.ndarray, sample_rate: int,
                     config: BaselineConfig | None = None) -> tuple[float, bool]:
    """The backing's tempo (BPM) and ``True``; or ``default_tempo_bpm`` and ``False``
    when it shows none (too short for the estimator, or no steady pulse)."""
    from vocalmix.estimators.tempo import estimate_tempo

    c = config or BaselineConfig()
    try:
        tempo = float(estimate_tempo(backing, sample_rate))
    except ValueError:
        tempo = float("nan")
    return (tempo, True) if math.isfinite(tempo) else (c.default_tempo_bpm, False)


def tempo_rule_note(tempo_bpm: float, decay_s: float, found: bool = True) -> str:
    """The note the tempo rule leaves: the tempo (BPM) it read, or that it assumed one,
    and the decay (s) it gave."""
    if found:
        return f"backing tempo {tempo_bpm:.1f} BPM -> reverb decay {decay_s:.2f} s"
    return (f"backing tempo unclear (too short to read, or no steady pulse): "
            f"{tempo_bpm:.0f} BPM assumed -> reverb decay {decay_s:.2f} s")


def reverb_for_decay(decay_s: float, config: BaselineConfig | None = None) -> Reverb:
    """The baseline's (unresolved) reverb for a decay target, s: freeverb with the
    configured damping, width, wet level and pre-delay (the resolver sets its room size)."""
    c = config or BaselineConfig()
    return Reverb(decay_s=decay_s, damping=c.reverb_damping, width=c.reverb_width,
                  wet_level_db=c.reverb_wet_level_db, pre_delay_ms=c.reverb_pre_delay_ms)


def masking_analysis(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                     config: BaselineConfig | None = None
                     ) -> tuple[tuple[EqBand, ...], float]:
    """The masking EQ of the vocal against the backing and the high-pass below the
    vocal's range (Hz; ``highpass_default_hz`` when the vocal shows none)."""
    from vocalmix.estimators.masking import masking_eq

    c = config or BaselineConfig()
    bands, hp = masking_eq(
        vocal,
        backing,
        sample_rate,
        max_bands=c.eq_max_bands,
        max_gain_db=c.eq_max_gain_db,
        max_total_gain_db=c.eq_max_total_gain_db,
        threshold_db=c.eq_masking_threshold_db,
    )
    eq = tuple(
        EqBand(kind=k, freq_hz=float(f), gain_db=float(g), q=float(q), source="masking")
        for k, f, g, q in bands
    )
    return eq, float(hp) if math.isfinite(hp) else c.highpass_default_hz


def analyse(
    vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
    config: BaselineConfig | None = None, masking: bool = True,
) -> BaselineAnalysis:
    """Tempo of the backing and masking EQ of the vocal (:func:`masking_analysis`;
    ``masking=False``: no bands and the default high-pass, for an estimator that
    chooses the EQ itself)."""
    from vocalmix.core.dsp import content_key
    from vocalmix.core.parallel import beside

    c = config or BaselineConfig()
    if not masking:
        tempo, found = tempo_or_default(backing, sample_rate, c)
        return BaselineAnalysis(tempo_bpm=tempo, eq_bands=(), highpass_hz=c.highpass_default_hz,
                                tempo_found=found)
    if not np.asarray(backing).flags.writeable:
        content_key(backing)  # a read-only backing hashed once, before both threads ask
    # the tempo on a helper thread while this one analyses the masking: their resampling,
    # FFTs and band sums let go of the GIL, and neither reads the other's result
    (tempo, found), (eq, hp) = beside(lambda: tempo_or_default(backing, sample_rate, c),
                                      lambda: masking_analysis(vocal, backing, sample_rate, c))
    return BaselineAnalysis(tempo_bpm=tempo, eq_bands=eq, highpass_hz=hp, tempo_found=found)


def with_masking_eq(params: MixParams, analysis: BaselineAnalysis,
                    config: BaselineConfig | None = None) -> MixParams:
    """``params`` with the EQ bands, high-pass and their reasons of ``analysis`` (the
    baseline's EQ, for an estimate made with ``masking=False``)."""
    from dataclasses import replace

    c = config or BaselineConfig()
    vocal = replace(params.vocal, eq_bands=analysis.eq_bands,
                    highpass=replace(params.vocal.highpass,
                                     cutoff_frequency_hz=analysis.highpass_hz))
    paths = {"vocal.eq_bands", "vocal.highpass"}
    new = tuple(r for r in reasons(analysis, params.targets.reverb_decay_s, c)
                if r.path in paths)
    kept = tuple(r for r in params.reasons if r.path not in paths)
    return replace(params, vocal=vocal, reasons=kept + new)


def estimate(
    vocal: np.ndarray,
    backing: np.ndarray,
    sample_rate: int,
    config: BaselineConfig | None = None,
    masking: bool = True,
) -> tuple[MixParams, BaselineAnalysis]:
    """Baseline targets and unresolved settings (resolve with :mod:`vocalmix.pipeline`).
    ``masking=False`` skips the masking analysis (no EQ bands, the default high-pass):
    for an estimator that replaces the EQ, which then adds the baseline's with
    :func:`with_masking_eq` only if it must fall back to it."""
    from vocalmix._version import __version__

    c = config or BaselineConfig()
    a = analyse(vocal, backing, sample_rate, c, masking)
    decay = reverb_decay_for_tempo(a.tempo_bpm, c)
    params = MixParams(
        vocal=VocalChain(
            highpass=HighPass(enabled=True, cutoff_frequency_hz=a.highpass_hz),
            eq_bands=a.eq_bands,
            compressor=Compressor(
                ratio=c.compressor_ratio,
                attack_ms=c.compressor_attack_ms,
                release_ms=c.compressor_release_ms,
            ),
            reverb=reverb_for_decay(decay, c),
        ),
        targets=Targets(
            vocal_to_mix_lu=c.vocal_to_mix_lu, vocal_lra_lu=c.vocal_lra_lu, reverb_decay_s=decay
        ),
        provenance=Provenance(
            method="baseline",
            vocalmix_version=__version__,
            notes=(tempo_rule_note(a.tempo_bpm, decay, a.tempo_found),),
        ),
        reasons=reasons(a, decay, c),
    )
    return params, a


def reasons(a: BaselineAnalysis, decay_s: float, config: BaselineConfig | None = None
            ) -> tuple[Reason, ...]:
    """Why the baseline chose what it chose, one :class:`Reason` per choice."""
    c = config or BaselineConfig()
    eq = ", ".join(f"{b.freq_hz:.0f} Hz {b.gain_db:+.1f} dB" for b in a.eq_bands)
    return (
        Reason("targets.vocal_to_mix_lu", "rule",
               f"the seed's rule: the vocal {c.vocal_to_mix_lu:+g} LU against the whole mix "
               "(integrated loudness)"),
        Reason("targets.vocal_lra_lu", "rule",
               f"the seed's rule: compress the vocal to a loudness range of "
               f"{c.vocal_lra_lu:g} LU (a vocal already narrower is left alone)"),
        Reason("targets.reverb_decay_s", "rule",
               f"the tempo rule RT = {c.reverb_intercept_s:.2f} - tempo/"
               f"{c.reverb_tempo_divisor_bpm:g} s at the backing's {a.tempo_bpm:.0f} BPM"
               f"{'' if a.tempo_found else ' (assumed: no clear tempo)'}, "
               f"clipped to {c.reverb_decay_range_s[0]:g}-{c.reverb_decay_range_s[1]:g} s",
               (("tempo_bpm", a.tempo_bpm), ("decay_s", decay_s))),
        Reason("vocal.eq_bands", "rule",
               (f"masking reduction: boosts where the backing masks the vocal ({eq})" if eq
                else "masking reduction: the backing masks no band of the vocal enough to "
                     "boost it"),
               (("bands", float(len(a.eq_bands))),)),
        Reason("vocal.reverb", "rule",
               f"a {c.reverb_wet_level_db:g} dB send of pedalboard's reverb, damping "
               f"{c.reverb_damping:g}, {c.reverb_pre_delay_ms:g} ms pre-delay (the seed's "
               "defaults); its size follows the decay target"),
        Reason("vocal.highpass", "rule",
               f"a high-pass at {a.highpass_hz:.0f} Hz, below the voice's lowest energy",
               (("cutoff_hz", a.highpass_hz),)),
    )
