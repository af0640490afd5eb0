"""What engineers do to a lead vocal: the DiffVox presets as the model method's priors.

:mod:`vocalmix.training.diffvox` converts the 435 engineers' vocal chains of the DiffVox
preset sets (two peak EQs, shelves, high- and low-pass, compressor, a delay send and a
reverb send, each fitted to turn a real raw vocal into the engineer's processed one) to
physical units and summarises them in ``assets/diffvox_prior.json``. :func:`engineers`
reads the pooled summary once, as the figures the model method uses:

* the EQ shape's percentiles per 1/3-octave band (99 Hz-10 kHz, each curve less its
  broadband gain): how far engineers move a vocal's tonal balance (the masking EQ's
  limits, :func:`vocalmix.estimators.eq.masking_limits`);
* the compressor's ratio, attack and release (medians and quartiles). DiffVox's ``ms``
  are 2.2 time constants of a one-pole smoother *on the gain* (torchcomp), JUCE's (and so
  pedalboard's) are ``2 pi`` time constants of its level envelope, so an equal time
  constant needs ``2 pi / 2.2`` (about 2.86) times the DiffVox number:
  :func:`juce_ms_from_diffvox`;
* the delay send: how often it is used, its time, first-echo level, feedback and
  low-pass;
* the reverb send: how often it is used, its T60, level against the dry vocal and
  per-band decay ratios, and its onset (the FDN's shortest line, 22.6 ms).

Everything is numbers in a JSON file: no weights, no training here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vocalmix.core.errors import ModelError

PRIOR_FILE = "diffvox_prior.json"
#: JUCE attack/release ms per DiffVox ms for the same time constant (see module doc)
JUCE_PER_DIFFVOX_MS = 2.0 * math.pi / 2.2
#: DiffVox's reverb starts this long after the dry sound (its FDN's shortest line), ms
REVERB_ONSET_MS = 22.6


def juce_ms_from_diffvox(ms: float) -> float:
    """A DiffVox attack or release (2.2 time constants on the gain), as the JUCE/pedalboard
    setting with the same time constant (``2 pi`` time constants), ms."""
    return float(ms) * JUCE_PER_DIFFVOX_MS


@dataclass(frozen=True)
class Quartiles:
    """p25, p50, p75 (and p5, p95) of one parameter over the presets."""

    p5: float
    p25: float
    p50: float
    p75: float
    p95: float

    @staticmethod
    def of(d: dict) -> Quartiles:
        return Quartiles(*(float(d[k]) for k in ("p5", "p25", "p50", "p75", "p95")))


@dataclass(frozen=True)
class EngineersPrior:
    """The pooled DiffVox summary the model method uses (units in the names).

    Attributes:
        n_presets: how many engineers' chains it rests on.
        eq_freqs_hz: the 1/3-octave grid of the EQ curves, Hz.
        eq_shape_db: EQ shape percentiles per band, ``{"p5": array, ..., "p95": array}``.
        comp_ratio, attack_ms, release_ms: compressor, DiffVox's own units (ratio; ms of
            2.2 time constants on the gain).
        delay_fraction: share of presets with a delay whose echoes carry at least -30 dB.
        delay_time_ms, delay_level_db, delay_feedback, delay_lowpass_hz: among those.
        reverb_fraction: share with a reverb at least -30 dB under the dry (500 Hz-2 kHz).
        reverb_t60_s, reverb_level_db: among those (level: reverb energy against the dry
            sound's, 500 Hz-2 kHz).
        band_decay_ratios: median T60 per octave band (125 Hz-8 kHz) over the 1 kHz one.
    """

    n_presets: int
    eq_freqs_hz: np.ndarray
    eq_shape_db: dict[str, np.ndarray]
    comp_ratio: Quartiles
    attack_ms: Quartiles
    release_ms: Quartiles
    delay_fraction: float
    delay_time_ms: Quartiles
    delay_level_db: Quartiles
    delay_feedback: Quartiles
    delay_lowpass_hz: Quartiles
    reverb_fraction: float
    reverb_t60_s: Quartiles
    reverb_level_db: Quartiles
    band_decay_ratios: tuple[float, ...]


@lru_cache(maxsize=1)
def engineers() -> EngineersPrior:
    """The shipped prior, read once; :class:`ModelError` when the file is missing or
    not what :mod:`vocalmix.training.diffvox` writes."""
    from vocalmix.core.audio import load_json

    try:
        d = load_json(PRIOR_FILE)
        pooled = d["sets"]["pooled"]
        par = pooled["parameters"]
        shape = pooled["eq_shape"]["percentiles_db"]
        dl, rv = pooled["delay_used"], pooled["reverb_used"]
        ratios = rv["band_decay_ratios"]
        return EngineersPrior(
            n_presets=int(pooled["n"]),
            eq_freqs_hz=np.asarray(d["freqs_hz"], dtype=np.float64),
            eq_shape_db={k: np.asarray(v, dtype=np.float64) for k, v in shape.items()},
            comp_ratio=Quartiles.of(par["comp_ratio"]),
            attack_ms=Quartiles.of(par["attack_ms"]),
            release_ms=Quartiles.of(par["release_ms"]),
            delay_fraction=float(dl["fraction"]),
            delay_time_ms=Quartiles.of(dl["delay_time_ms"]),
            delay_level_db=Quartiles.of(dl["delay_level_db"]),
            delay_feedback=Quartiles.of(dl["delay_feedback"]),
            delay_lowpass_hz=Quartiles.of(dl["delay_lowpass_freq_hz"]),
            reverb_fraction=float(rv["fraction"]),
            reverb_t60_s=Quartiles.of(rv["reverb_t60_s"]),
            reverb_level_db=Quartiles.of(rv["reverb_level_db"]),
            band_decay_ratios=tuple(float(ratios[k]["p50"]) for k in
                                    ("125", "250", "500", "1000", "2000", "4000", "8000")),
        )
    except FileNotFoundError:
        raise ModelError(f"the engineers' prior ({PRIOR_FILE}) is missing from the package; "
                         "regenerate it with 'vocalmix diffvox-prior'") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"the engineers' prior ({PRIOR_FILE}) is unreadable ({e}); "
                         "regenerate it with 'vocalmix diffvox-prior'") from None


__all__ = ["JUCE_PER_DIFFVOX_MS", "REVERB_ONSET_MS", "EngineersPrior", "Quartiles",
           "engineers", "juce_ms_from_diffvox"]
