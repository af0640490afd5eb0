"""The render chain: vocal effects, backing gain, sum and a true-peak-safe master.

Order: vocal -> high-pass -> EQ bands -> compressor (+ make-up) -> gain ->
reverb on a send (wet added to the dry vocal); backing -> gain; sum; master. The EQ
stage is :func:`vocalmix.core.dsp.eq_stage`, which the corrective-EQ estimator uses too.

Effects are pedalboard's (``HighpassFilter``, ``PeakFilter``, ``LowShelfFilter``,
``HighShelfFilter``, ``Compressor``, ``Reverb``), and the ``synthetic`` reverb is an
exact FFT convolution with a synthesised impulse response (pedalboard's ``Convolution``
normalises and trims its impulse response, so its level would not be what MixParams
says); each is created fresh for every render
and run with ``reset=True``, so the same inputs and params give bit-identical output.
The master is a look-ahead limiter written with vectorised numpy (see
:func:`master_stage`): pedalboard's ``Limiter`` has no true-peak mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pedalboard as pb
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from vocalmix.core.dsp import eq_stage, run_board
from vocalmix.core.measure import sample_peak, true_peak_dbtp
from vocalmix.core.params import Compressor, Master, MixParams, Reverb, VocalChain


def db_to_gain(db: float) -> float:
    """Linear amplitude factor of a level in dB."""
    return float(10.0 ** (db / 20.0))


def compressor_stage(x: np.ndarray, sample_rate: int, comp: Compressor) -> np.ndarray:
    """pedalboard ``Compressor`` (hard knee, peak detector) followed by make-up gain, dB."""
    if not comp.enabled or comp.ratio == 1.0:
        y = x
    else:
        board = pb.Pedalboard(
            [
                pb.Compressor(
                    threshold_db=comp.threshold_db,
                    ratio=comp.ratio,
                    attack_ms=comp.attack_ms,
                    release_ms=comp.release_ms,
                )
            ]
        )
        y = run_board(board, x, sample_rate)
    if comp.enabled and comp.makeup_db != 0.0:
        y = y * np.float32(db_to_gain(comp.makeup_db))
    return y


def _synthetic_wet(src: np.ndarray, sample_rate: int, reverb: Reverb) -> np.ndarray:
    """``src`` convolved channel by channel with the synthetic reverb's impulse response."""
    from scipy.signal import fftconvolve

    from vocalmix.core.reverb import render_synthetic_ir

    h = render_synthetic_ir(reverb.decay_s, reverb.band_decay_ratios, reverb.width, sample_rate)
    if src.shape[1] != 2:
        h = h[:, : src.shape[1]]
    y = fftconvolve(np.asarray(src, np.float32), h, axes=0)[: src.shape[0]]
    return np.ascontiguousarray(y, dtype=np.float32)


def reverb_wet(x: np.ndarray, sample_rate: int, reverb: Reverb) -> np.ndarray:
    """The wet reverb signal for a send fed with ``x``: pre-delay, reverb, wet level.

    ``freeverb``: pedalboard's ``Reverb``; ``synthetic``: exact convolution (scipy's
    ``fftconvolve``) with :func:`vocalmix.core.reverb.render_synthetic_ir`. The gain is
    :func:`vocalmix.core.reverb.wet_gain_db`, so that ``wet_level_db`` is the send's
    reverberant-to-direct energy ratio for a vocal in both types.
    """
    from vocalmix.core.reverb import wet_gain_db

    if not reverb.enabled:
        return np.zeros_like(x)
    d = int(round(reverb.pre_delay_ms * 1e-3 * sample_rate))
    src = x if d == 0 else np.concatenate([np.zeros((d, x.shape[1]), x.dtype), x[: x.shape[0] - d]])
    if reverb.type == "synthetic":
        wet = _synthetic_wet(src, sample_rate, reverb)
    else:
        board = pb.Pedalboard([pb.Reverb(room_size=reverb.room_size, damping=reverb.damping,
                                         wet_level=1.0, dry_level=0.0, width=reverb.width)])
        wet = run_board(board, src, sample_rate)
    return wet * np.float32(db_to_gain(wet_gain_db(reverb, sample_rate)))


def master_stage(
    x: np.ndarray, sample_rate: int, master: Master
) -> tuple[np.ndarray, float, float]:
    """Keep ``x`` at or below ``master.ceiling_dbtp``; transparent when it already is.

    A linked look-ahead limiter, vectorised: the gain each sample needs,
    ``min(1, ceiling / |x|)``, is spread by a minimum filter over the look-ahead and hold
    window and smoothed by a moving average no longer than the look-ahead. Every gain
    value is then at most the gain that sample needs, so no sample peak passes the
    ceiling. Sample peaks are aimed 0.5 dB under the ceiling; if the 4x-oversampled true
    peak still exceeds the ceiling, a static trim removes the rest.

    Returns the output, the largest gain reduction applied (dB, 0.0 if none) and the
    output's true peak (dBTP).
    """
    if float(sample_peak(x).max()) <= db_to_gain(master.ceiling_dbtp):
        tp_in = true_peak_dbtp(x, sample_rate)  # sample peaks pass; inter-sample peaks?
        if tp_in <= master.ceiling_dbtp:
            return x, 0.0, tp_in
    ceil = np.float32(db_to_gain(master.ceiling_dbtp - 0.5))
    look = max(1, int(round(master.lookahead_ms * 1e-3 * sample_rate)))
    hold = max(1, int(round(master.release_ms * 1e-3 * sample_rate)))
    peak = sample_peak(x)
    need = np.minimum(np.float32(1.0), ceil / np.maximum(peak, np.float32(1e-12)))
    # window covering [n - hold, n + look - 1]: look-ahead before a peak, hold after it
    size = hold + look
    origin = (hold - look) // 2
    spread = minimum_filter1d(need, size=size, origin=origin, mode="nearest")
    # moving average over [n - look + 1, n]: each term's window contains n, so <= need[n]
    smooth = uniform_filter1d(spread, size=look, origin=(look - 1) // 2, mode="nearest")
    gain = np.minimum(smooth, need)
    y = (x * gain[:, None]).astype(np.float32)
    tp = true_peak_dbtp(y, sample_rate)
    if tp > master.ceiling_dbtp:
        trim = master.ceiling_dbtp - tp - 0.01
        y = (y * np.float32(db_to_gain(trim))).astype(np.float32)
        gain = gain * db_to_gain(trim)
        tp += trim
    reduction = float(-20.0 * np.log10(max(float(gain.min()), 1e-12)))
    return y, reduction, tp


@dataclass(frozen=True)
class Rendered:
    """The result of a render.

    Attributes:
        mix: the master output, float32 ``(n, 2)``.
        vocal: the vocal exactly as it sits in the mix (reverb included), pre-master.
        vocal_dry: the vocal after EQ, compressor and gain, before reverb.
        backing: the backing after its gain, pre-master.
        sample_rate: Hz.
        master_gain_reduction_db: largest gain reduction of the master, dB.
        mix_true_peak_dbtp: true peak of ``mix``, dBTP.
    """

    mix: np.ndarray
    vocal: np.ndarray
    vocal_dry: np.ndarray
    backing: np.ndarray
    sample_rate: int
    master_gain_reduction_db: float
    mix_true_peak_dbtp: float

    @property
    def premaster(self) -> np.ndarray:
        """The sum of the vocal and backing stems, before the master stage."""
        return self.vocal + self.backing


@dataclass(frozen=True)
class VocalParts:
    """The vocal chain at 0 dB vocal gain: ``dry`` (after EQ, compressor and make-up) and
    ``wet`` (the reverb send's output for that dry signal)."""

    dry: np.ndarray
    wet: np.ndarray


def vocal_parts(x: np.ndarray, sample_rate: int, chain: VocalChain) -> VocalParts:
    """Render the vocal chain up to the gain stage, and its reverb, at unity gain."""
    dry = compressor_stage(eq_stage(x, sample_rate, chain.highpass, chain.eq_bands),
                           sample_rate, chain.compressor)
    dry = np.asarray(dry, dtype=np.float32)
    return VocalParts(dry=dry, wet=reverb_wet(dry, sample_rate, chain.reverb))


def assemble(
    parts: VocalParts, backing: np.ndarray, sample_rate: int, params: MixParams
) -> Rendered:
    """Apply the vocal and backing gains to rendered parts, sum, and master.

    The vocal gain multiplies the dry vocal and its reverb alike. The reverb is linear,
    so this equals gain-then-reverb (the chain's order) while letting the resolvers
    render the reverb once at unity gain and reuse it.
    """
    g = np.float32(db_to_gain(params.vocal.gain_db))
    dry = parts.dry * g
    v = dry + parts.wet * g
    b = (backing * np.float32(db_to_gain(params.backing.gain_db))).astype(np.float32)
    mix, reduction, tp = master_stage(v + b, sample_rate, params.master)
    return Rendered(mix, v, dry, b, sample_rate, reduction, tp)


def render(vocal: np.ndarray, backing: np.ndarray, sample_rate: int, params: MixParams) -> Rendered:
    """Render a mix of two float32 ``(n, 2)`` signals of one rate and length."""
    if vocal.shape != backing.shape:
        raise ValueError(f"vocal {vocal.shape} and backing {backing.shape} differ in shape")
    return assemble(vocal_parts(vocal, sample_rate, params.vocal), backing, sample_rate, params)
