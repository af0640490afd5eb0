"""One "amount" for all the processing: 0 none, 1 as chosen, 2 twice as much.

``MixParams.amount`` scales every processing decision of the vocal chain from neutral,
and the renderer renders :func:`effective_vocal` of a document (the document itself
keeps the settings as chosen, so changing the amount back restores them exactly):

==================  ===========================================  ====================
setting             at amount ``a``                              neutral (``a = 0``)
==================  ===========================================  ====================
high-pass           corner ``20 Hz x (f / 20 Hz)^a``             off
EQ band             ``gain_db x a``                              0 dB (skipped)
de-esser            ``depth_db x a``                             off
compressor          gain reduction ``x a``: slope ``(1 - 1/R) a``  ratio 1, no make-up
                    (ratio ``1 / (1 - a (1 - 1/R))``, at most the
                    declared maximum), make-up ``x a``
reverb, delay send  level ``+ 20 log10(a)`` dB                   off
==================  ===========================================  ====================

The vocal gain is not scaled: it is what puts the vocal at its level. The level target
is: :func:`effective_level_target` moves ``targets.vocal_to_mix_lu`` from the rule's
value by ``a`` times its offset, and the resolvers solve the gain for that on the
effective chain, so the mix stays balanced at any amount.
"""

from __future__ import annotations

import math
from dataclasses import replace

from vocalmix.core.params import Compressor, HighPass, MixParams, VocalChain, clip, spec_of

#: the high-pass corner that counts as no high-pass at all, Hz (below the voice and
#: below what a mix keeps)
NEUTRAL_HIGHPASS_HZ = 20.0


def _db_scaled(level_db: float, a: float) -> float:
    return level_db + 20.0 * math.log10(a)


def effective_vocal(vocal: VocalChain, amount: float) -> VocalChain:
    """The vocal chain as rendered at ``amount`` (see the module doc); ``amount == 1``
    returns ``vocal`` itself."""
    a = float(amount)
    if a == 1.0:
        return vocal
    if a == 0.0:
        return replace(
            vocal,
            highpass=replace(vocal.highpass, enabled=False),
            eq_bands=tuple(replace(b, gain_db=0.0) for b in vocal.eq_bands),
            deesser=replace(vocal.deesser, enabled=False),
            compressor=replace(vocal.compressor, ratio=1.0, makeup_db=0.0),
            reverb=replace(vocal.reverb, enabled=False),
            delay=replace(vocal.delay, enabled=False),
        )
    hp = vocal.highpass
    if hp.enabled:
        f = NEUTRAL_HIGHPASS_HZ * (hp.cutoff_frequency_hz / NEUTRAL_HIGHPASS_HZ) ** a
        hp = replace(hp, cutoff_frequency_hz=clip(HighPass, "cutoff_frequency_hz", f))
    c = vocal.compressor
    slope = (1.0 - 1.0 / c.ratio) * a
    max_ratio = spec_of(Compressor, "ratio").hi
    ratio = max_ratio if slope >= 1.0 - 1.0 / max_ratio else 1.0 / (1.0 - slope)
    comp = replace(c, ratio=clip(Compressor, "ratio", ratio),
                   makeup_db=clip(Compressor, "makeup_db", c.makeup_db * a))
    de = vocal.deesser
    de = replace(de, depth_db=clip(type(de), "depth_db", de.depth_db * a))
    rv, dl = vocal.reverb, vocal.delay
    rv = replace(rv, wet_level_db=clip(type(rv), "wet_level_db", _db_scaled(rv.wet_level_db, a)))
    dl = replace(dl, wet_level_db=clip(type(dl), "wet_level_db", _db_scaled(dl.wet_level_db, a)))
    from vocalmix.core.params import EqBand

    bands = tuple(replace(b, gain_db=clip(EqBand, "gain_db", b.gain_db * a))
                  for b in vocal.eq_bands)
    return replace(vocal, highpass=hp, eq_bands=bands, deesser=de, compressor=comp,
                   reverb=rv, delay=dl)


def effective(params: MixParams) -> MixParams:
    """``params`` with its vocal chain at its amount, and amount 1 (what is rendered)."""
    if params.amount == 1.0:
        return params
    return replace(params, vocal=effective_vocal(params.vocal, params.amount), amount=1.0)


def effective_level_target(target_lu: float, rule_lu: float, amount: float) -> float:
    """The vocal-to-mix target at ``amount``: the rule's value plus ``amount`` times the
    chosen target's offset from it, LU (clipped to the declared range)."""
    from vocalmix.core.params import Targets

    return clip(Targets, "vocal_to_mix_lu", rule_lu + float(amount) * (target_lu - rule_lu))


__all__ = ["NEUTRAL_HIGHPASS_HZ", "effective", "effective_level_target", "effective_vocal"]
