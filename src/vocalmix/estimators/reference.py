"""Mix like this song: targets read off a reference mix's vocal and backing stems.

A user who has the stems of a mix they love (or a karaoke catalogue with a house sound)
hands them over; :func:`read_reference` measures on them what the resolvers and the
chain can reproduce, and :func:`apply_reference` makes those the targets and settings of
the input's mix:

* **level**: the reference vocal against its mix while the vocal sings (BS.1770-4 over
  the vocal's active 400 ms blocks: :func:`vocalmix.core.measure.vocal_to_mix_lu`, the
  ``singing`` measure), which the gain resolver then reaches exactly on the input;
* **dynamics**: the reference vocal's loudness range (EBU Tech 3342) as the vocal LRA
  target (a take already narrower is left alone, as always);
* **spectral balance**: the reference vocal's long-term 1/3-octave spectrum against the
  input vocal's, both level-normalised over 150 Hz-8 kHz; the difference, smoothed over
  :data:`SMOOTH_BANDS` bands (the broad colour, not one singer's formants) and bounded
  to +-:data:`MAX_EQ_DB`, is fitted with a few parametric bands (source ``reference``)
  that replace the estimator's EQ bands;
* **space**: the reverb estimator's reading of the reference vocal (decay, damping,
  pre-delay, wet level; :mod:`vocalmix.estimators.reverb`) as a ``synthetic`` reverb,
  when the reference is long enough to read it.

Everything lands in the params as ordinary settings and targets, each with a
:class:`~vocalmix.core.params.Reason` of source ``reference``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vocalmix.core.dsp import THIRD_OCTAVE_HZ, band_levels_db
from vocalmix.core.errors import AnalysisError, ModelError
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

#: the largest cut or boost the reference's spectral balance may ask for, dB
MAX_EQ_DB = 4.0
#: most bands the balance is fitted with
MAX_EQ_BANDS = 3
#: the balance is smoothed over this many 1/3-octave bands (5: about 1.7 octaves), so
#: that it follows the tilt and broad colour of the reference, not one singer's formants
SMOOTH_BANDS = 5
#: the range the spectra are compared over (level normalised over it), Hz
BALANCE_RANGE_HZ = (150.0, 8000.0)


@dataclass(frozen=True)
class ReferenceFigures:
    """What a reference mix's stems measure.

    Attributes:
        vocal_to_mix_lu: the vocal against the mix while it sings, LU.
        vocal_lra_lu: the vocal's loudness range, LU.
        vocal_momentary_range_lu: the vocal's momentary loudness range (EBU 3342's recipe
            on 400 ms loudness), LU.
        vocal_bands_db: the vocal's level-normalised 1/3-octave spectrum at
            :data:`~vocalmix.core.dsp.THIRD_OCTAVE_HZ`, dB.
        reverb: the reverb estimator's reading (``decay_s``, ``hf_ratio``,
            ``pre_delay_ms``, ``wet_level_db``), or ``None`` when it could not read one.
        duration_s: the reference's length, s.
    """

    vocal_to_mix_lu: float
    vocal_lra_lu: float
    vocal_momentary_range_lu: float
    vocal_bands_db: np.ndarray
    reverb: dict[str, float] | None
    duration_s: float


def normalised_bands_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """1/3-octave long-term spectrum (dB) with its mean over :data:`BALANCE_RANGE_HZ`
    removed (bands outside it or above Nyquist are NaN)."""
    c = np.asarray(THIRD_OCTAVE_HZ)
    b = band_levels_db(x, sample_rate)
    ok = (c >= BALANCE_RANGE_HZ[0]) & (c <= BALANCE_RANGE_HZ[1]) & np.isfinite(b)
    out = np.full(len(c), np.nan)
    if ok.any():
        out[ok] = b[ok] - b[ok].mean()
    return out


def read_reference(vocal: np.ndarray, backing: np.ndarray, sample_rate: int
                   ) -> ReferenceFigures:
    """Measure a reference mix's vocal and backing stems (one rate and length)."""
    from vocalmix.core.measure import loudness_range, momentary_loudness_range, vocal_to_mix_lu

    v2m = float(vocal_to_mix_lu(vocal, backing, sample_rate, "singing"))
    if not np.isfinite(v2m):
        raise AnalysisError("the reference vocal is silent: no balance to read")
    reverb = None
    try:
        from vocalmix.estimators import reverb as rv

        reverb = rv.estimate_song(rv.shipped_model().estimator, vocal, sample_rate)
    except (AnalysisError, ModelError):
        reverb = None
    return ReferenceFigures(
        vocal_to_mix_lu=v2m,
        vocal_lra_lu=float(loudness_range(vocal, sample_rate)),
        vocal_momentary_range_lu=float(momentary_loudness_range(vocal, sample_rate)),
        vocal_bands_db=normalised_bands_db(vocal, sample_rate),
        reverb=reverb,
        duration_s=vocal.shape[0] / float(sample_rate),
    )


def balance_bands(reference_db: np.ndarray, input_db: np.ndarray, sample_rate: int
                  ) -> list[tuple[str, float, float, float]]:
    """Parametric bands that move the input vocal's spectral balance to the reference's:
    the band-wise difference of the level-normalised spectra, smoothed over
    :data:`SMOOTH_BANDS` neighbouring bands, bounded to +-:data:`MAX_EQ_DB`, fitted with
    at most :data:`MAX_EQ_BANDS`."""
    from vocalmix.estimators.masking import fit_parametric_bands

    d = np.asarray(reference_db) - np.asarray(input_db)
    ok = np.isfinite(d)
    if ok.sum() < 3:
        return []
    c = np.asarray(THIRD_OCTAVE_HZ)[ok]
    d = d[ok]
    k = SMOOTH_BANDS
    d = np.convolve(np.pad(d, k // 2, mode="edge"), np.ones(k) / k, "valid")
    d = np.clip(d - d.mean(), -MAX_EQ_DB, MAX_EQ_DB)
    if float(np.sqrt(np.mean(d * d))) < 0.5:
        return []
    return [b for b in fit_parametric_bands(c, d, max_bands=MAX_EQ_BANDS,
                                            max_gain_db=MAX_EQ_DB, sample_rate=sample_rate)
            if abs(b[2]) >= 0.25]


def apply_reference(params: MixParams, ref: ReferenceFigures, vocal: np.ndarray,
                    sample_rate: int, label: str = "the reference") -> tuple[MixParams,
                                                                                 list[str]]:
    """``params`` with the reference's level, dynamics, balance and space as its targets
    and settings (see the module doc); returns them and notes for a person."""
    from vocalmix.estimators.reverb import band_ratios_for_hf

    notes = []
    v2m = clip(Targets, "vocal_to_mix_lu", ref.vocal_to_mix_lu)
    lra = clip(Targets, "vocal_lra_lu", max(ref.vocal_lra_lu, 1.0))
    p = params.with_targets(vocal_to_mix_lu=v2m, vocal_lra_lu=lra)
    # the compressor follows the reference's momentary range (what the model method's
    # dynamics target is; a few seconds of singing carry it, hardly an LRA)
    mr = (clip(Targets, "vocal_momentary_range_lu", ref.vocal_momentary_range_lu)
          if np.isfinite(ref.vocal_momentary_range_lu) else None)
    p = replace(p, targets=replace(p.targets, vocal_to_mix_measure="singing",
                                   vocal_momentary_range_lu=mr))
    reasons = [
        Reason("targets.vocal_to_mix_lu", "reference",
               f"{label}'s vocal sits {ref.vocal_to_mix_lu:+.1f} LU against its mix while "
               "it sings", (("reference_vocal_to_mix_lu", ref.vocal_to_mix_lu),)),
        Reason("targets.vocal_lra_lu", "reference",
               f"{label}'s vocal has a loudness range of {ref.vocal_lra_lu:.1f} LU",
               (("reference_lra_lu", ref.vocal_lra_lu),
                ("reference_duration_s", ref.duration_s))),
    ]
    if mr is not None:
        reasons.append(Reason(
            "targets.vocal_momentary_range_lu", "reference",
            f"{label}'s vocal has a momentary loudness range of "
            f"{ref.vocal_momentary_range_lu:.1f} LU", (("reference_momentary_range_lu",
                                                         ref.vocal_momentary_range_lu),)))
    notes.append(f"reference: vocal {v2m:+.2f} LU against the mix while it sings, LRA "
                 f"{lra:.1f} LU, momentary range "
                 + (f"{mr:.1f} LU (the compressor's target)" if mr is not None
                    else "not measurable"))
    bands = balance_bands(ref.vocal_bands_db, normalised_bands_db(vocal, sample_rate),
                          sample_rate)
    eq = tuple(EqBand(kind=k, freq_hz=clip(EqBand, "freq_hz", f),
                      gain_db=clip(EqBand, "gain_db", g), q=clip(EqBand, "q", q),
                      source="reference") for k, f, g, q in bands)
    p = replace(p, vocal=replace(p.vocal, eq_bands=eq))
    shown = ", ".join(f"{b.freq_hz:.0f} Hz {b.gain_db:+.1f} dB" for b in eq) or "none needed"
    reasons.append(Reason("vocal.eq_bands", "reference",
                          f"move the vocal's spectral balance to {label}'s: {shown}",
                          (("bands", float(len(eq))),)))
    notes.append(f"reference: EQ toward its vocal's balance: {shown}")
    if ref.reverb is not None:
        r = ref.reverb
        hf = float(np.clip(r["hf_ratio"], BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi))
        ratios = band_ratios_for_hf(hf)
        lo, hi = TARGET_DECAY_RANGE_S
        decay = float(np.clip(r["decay_s"], lo, min(hi, REVERB_DECAY_RANGE_S[1] / max(ratios))))
        rv = replace(p.vocal.reverb, enabled=True, type="synthetic", decay_s=decay,
                     band_decay_ratios=ratios,
                     pre_delay_ms=clip(Reverb, "pre_delay_ms", r["pre_delay_ms"]),
                     wet_level_db=clip(Reverb, "wet_level_db", r["wet_level_db"]))
        p = replace(p, vocal=replace(p.vocal, reverb=rv)).with_targets(reverb_decay_s=decay)
        reasons.append(Reason(
            "vocal.reverb", "reference",
            f"the reverb read on {label}'s vocal: {decay:.2f} s, {rv.wet_level_db:+.1f} dB "
            "reverberant-to-direct", (("decay_s", decay), ("wet_level_db", rv.wet_level_db))))
        reasons.append(Reason("targets.reverb_decay_s", "reference",
                              f"the decay read on {label}'s vocal", (("decay_s", decay),)))
        notes.append(f"reference: reverb {decay:.2f} s at {rv.wet_level_db:+.1f} dB")
    else:
        notes.append("reference: too short or dry to read its reverb; kept the estimator's")
    p = p.with_reasons(*reasons)
    return replace(p, provenance=replace(p.provenance, method="reference")), notes


__all__ = ["ReferenceFigures", "apply_reference", "balance_bands", "normalised_bands_db",
           "read_reference"]
