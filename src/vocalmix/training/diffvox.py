"""Engineers' vocal chains fitted by DiffVox, in physical units, and priors summarised from them.

Source
------
DiffVox (C.-Y. Yu, M. A. Martínez-Ramírez, J. Koo, B. Hayes, W.-H. Liao, G. Fazekas,
Y. Mitsufuji, "DiffVox: A Differentiable Model for Capturing and Analysing Vocal Effects
Distributions", Proc. DAFx 2025; repository SonyResearch/diffvox, commit 97ae464c, MIT)
fitted one fixed vocal chain by gradient descent so that it turns each raw lead vocal into
the engineer's processed one. The data folder (``vocal_fx_presets/diffvox`` under
:func:`vocalmix.training.data.data_root`) holds the fits: ``medleydb/`` (70 MedleyDB lead
vocals, named in ``info.json``) and ``internal/`` (385 vocals of a private pop set; the
paper's analysis and its ``gaussian.npz`` use the 365 rows of ``train_index.npy``). Each row
of ``raw_params.npy`` is the chain's *unconstrained* parameters, in ``info.json``
``params_keys`` order. Both the dry (mono) and the processed (stereo) vocal were normalised
to -18 LUFS integrated (pyloudnorm) before fitting (``fx_config.yaml`` ``lufs: -18``;
``data/medley_db.py`` and ``data/internal.py``), so every level below is relative to a
-18 LUFS mono dry vocal, and the chain as a whole maps -18 LUFS to -18 LUFS.

The chain (``fx_config.yaml``), at 44.1 kHz, in order: peak EQ 1, peak EQ 2, low shelf, high
shelf, low-pass, high-pass (six RBJ biquads), compressor/expander with look-ahead, then
``SendFXsAndSum``: the direct sound (panned) plus a ping-pong delay send and an FDN reverb
send, the delay's output also feeding the reverb (``cross_send``).

Mapping raw values to physical units (``modules/fx.py`` unless stated)
---------------------------------------------------------------------
``s(x) = 1 / (1 + exp(-x))`` is ``SmoothingCoef.forward``; ``MinMax(lo, hi)(x) = lo +
(hi - lo) s(x)`` is ``MinMax.forward``.

* EQ frequencies: ``MinMax(min_freq, max_freq)`` with the ranges of ``fx_config.yaml``;
  peak Q ``MinMax(0.2, 20)`` (``Peak`` defaults), low-/high-pass Q ``MinMax(0.5, 10)``
  (``LowPass`` defaults); EQ gains (``params.gain``) are stored in dB as they are. Shelves
  have a fixed Q of 0.707 (``LowShelf``'s buffer ``Q``). Filter coefficients are
  ``modules/functional.py`` ``equalizer_biquad_coef``, ``lowshelf_biquad_coef``,
  ``highshelf_biquad_coef``, ``lowpass_biquad_coef``, ``highpass_biquad_coef`` (the RBJ
  cookbook with ``A = 10^(gain/40)``, ``alpha = sin(w0) / (2 Q)``): a peak has its full
  gain at its frequency, a shelf half its gain (in dB) at its frequency, a low-/high-pass
  |H| = Q at its cut-off (12 dB/octave, order 2).
* Compressor/expander (``CompressorExpander``; gain law ``torchcomp.compexp_gain``):
  thresholds ``cmp_th``, ``exp_th`` and ``make_up`` are dB as stored; ratio
  ``MinMax(1, 20)``; ``exp_ratio = s(x)`` in (0, 1), the slope of the output below the
  expander threshold being ``1 / exp_ratio`` (reported here as ``exp_ratio`` =
  ``1 / s(x)``, the usual 1:R expander figure); attack and release coefficients ``s(x)``,
  in ms by ``torchcomp.coef2ms``: ``ms = -2200 / (sr ln(1 - coef))`` (so "ms" is 2.2 time
  constants, the 10-90 % rise time); the level detector is the one-pole average of x²
  with coefficient ``avg_coef = s(x)`` (``functional.avg_rms``; its time in ms by the same
  formula); look-ahead ``|x| mod 15`` ms (``WrappedPositive(max_lookahead)``). The
  threshold applies to that smoothed *instantaneous* power of the EQ'd vocal, in dBFS.
* Pan (``Panning``): ``p = s(x)``, shown as ``200 p - 100`` (-100 left, +100 right); the
  gains are ``sqrt(2) (cos(p pi/2), sin(p pi/2))``, so the power is the same at any pan.
* Delay (``Delay``, evaluated as in ``Delay.forward``; ``SurrogateDelay`` only differs
  while training): time ``MinMax(100, 1000)`` ms, ``feedback = s(x)``, ``gain = s(x)``;
  echo n (n = 1, 2, ...) is ``gain feedback^(n-1) LP^n`` delayed by n times the delay, odd
  echoes to ``odd_pan``, even ones to ``even_pan``, over a 4 s response; the low-pass
  ``LP`` has ``MinMax(200, 16000)`` Hz and Q ``MinMax(0.5, 2)`` (``fx_config.yaml``).
  ``sends_0 = s(x)`` (``SendFXsAndSum``) is the gain from the delay's output into the
  reverb.
* Reverb (``FDN``): six delay lines of 997, 1153, 1327, 1559, 1801 and 2099 samples; input
  gains ``b`` (6 x 2) and output gains ``c`` (2 x 6) as stored; feedback matrix
  ``U = expm(T - T^T)``, ``T = triu(X, 1)`` (``UniLossLess``: orthogonal, lossless);
  decay ``gamma = MinMax(0, gamma_max)`` at 49 frequencies spread evenly from 0 Hz to
  Nyquist and linearly interpolated between them, ``gamma_max = 10^(-3 * 997 / (sr *
  9 s))`` (``T_60 = ir_duration * 0.75`` with ``ir_duration = 12`` s), line i attenuated
  by ``gamma^(d_i / 997)`` per pass, so the decay is the same on every line and
  ``T60(f) = -3 * 997 / (sr log10 gamma(f))`` seconds. The response is
  ``H(w) = c (diag(e^{j w d}) - U diag(gamma^(d/997)))^-1 b`` (``FDN.forward``), then a
  tone EQ: peak (200-2500 Hz, Q 0.1-3), peak (600-7000 Hz, Q 0.1-3), low shelf
  (30-450 Hz), high shelf (1500-16000 Hz). There is no separate "send level": the level
  of the reverb is in ``b``, ``c`` and the EQ, so it is reported as the energy of the
  reverb's response relative to the direct sound's, per octave band.

:func:`load_presets` reads a set, :func:`to_physical` converts it (numpy and scipy only),
:func:`eq_curve_db` and :func:`reverb_level_db` compute responses, :func:`build_prior` the
JSON-serialisable summaries written to ``vocalmix/assets/diffvox_prior.json`` by
``python -m vocalmix.training.diffvox`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import SupportsFloat

import numpy as np

from vocalmix.core.errors import DataError
from vocalmix.core.params import DECAY_BANDS_HZ

# --- the fitted chain's constants (fx_config.yaml, modules/fx.py defaults) ----------------

SAMPLE_RATE = 44100
#: both the dry and the processed vocal were normalised to this before fitting, LUFS
INPUT_LOUDNESS_LUFS = -18.0
SETS = ("medleydb", "internal")
#: where the sets live under the data root
FOLDER = ("vocal_fx_presets", "diffvox")

PEAK1_FREQ_HZ = (33.0, 5400.0)
PEAK2_FREQ_HZ = (200.0, 17500.0)
PEAK_Q = (0.2, 20.0)
LOW_SHELF_FREQ_HZ = (30.0, 200.0)
HIGH_SHELF_FREQ_HZ = (750.0, 8300.0)
SHELF_Q = 0.707
LOWPASS_FREQ_HZ = (200.0, 18000.0)
HIGHPASS_FREQ_HZ = (16.0, 5300.0)
PASS_Q = (0.5, 10.0)
COMP_RATIO = (1.0, 20.0)
MAX_LOOKAHEAD_MS = 15.0
#: torchcomp's ms <-> coefficient constant (ms = 2.2 time constants)
COEF_MS_CONSTANT = 2200.0
DELAY_TIME_MS = (100.0, 1000.0)
DELAY_LOWPASS_FREQ_HZ = (200.0, 16000.0)
DELAY_LOWPASS_Q = (0.5, 2.0)
DELAY_IR_S = 4.0
FDN_DELAYS = (997, 1153, 1327, 1559, 1801, 2099)
FDN_IR_S = 12.0
#: the longest decay the FDN can represent (``FDN``: ``T_60 = ir_duration * 0.75``), s
FDN_MAX_T60_S = 0.75 * FDN_IR_S
FDN_DECAY_POINTS = 49
REVERB_PEAK1_FREQ_HZ = (200.0, 2500.0)
REVERB_PEAK2_FREQ_HZ = (600.0, 7000.0)
REVERB_PEAK_Q = (0.1, 3.0)
REVERB_LOW_SHELF_FREQ_HZ = (30.0, 450.0)
REVERB_HIGH_SHELF_FREQ_HZ = (1500.0, 16000.0)

#: ``info.json`` ``params_keys`` and ``params_original_shapes`` this module reads
LAYOUT: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("0.params.gain", ()),
    ("0.params.parametrizations.freq.original", ()),
    ("0.params.parametrizations.Q.original", ()),
    ("1.params.gain", ()),
    ("1.params.parametrizations.freq.original", ()),
    ("1.params.parametrizations.Q.original", ()),
    ("2.params.gain", ()),
    ("2.params.parametrizations.freq.original", ()),
    ("3.params.gain", ()),
    ("3.params.parametrizations.freq.original", ()),
    ("4.params.parametrizations.freq.original", ()),
    ("4.params.parametrizations.Q.original", ()),
    ("5.params.parametrizations.freq.original", ()),
    ("5.params.parametrizations.Q.original", ()),
    ("6.params.cmp_th", ()),
    ("6.params.exp_th", ()),
    ("6.params.make_up", ()),
    ("6.params.parametrizations.lookahead.original", (1,)),
    ("6.params.parametrizations.at.original", ()),
    ("6.params.parametrizations.rt.original", ()),
    ("6.params.parametrizations.avg_coef.original", ()),
    ("6.params.parametrizations.cmp_ratio.original", ()),
    ("6.params.parametrizations.exp_ratio.original", ()),
    ("7.params.parametrizations.sends_0.original", (1,)),
    ("7.effects.0.params.parametrizations.delay.original", ()),
    ("7.effects.0.params.parametrizations.feedback.original", ()),
    ("7.effects.0.params.parametrizations.gain.original", ()),
    ("7.effects.0.eq.params.parametrizations.freq.original", ()),
    ("7.effects.0.eq.params.parametrizations.Q.original", ()),
    ("7.effects.0.odd_pan.params.parametrizations.pan.original", ()),
    ("7.effects.0.even_pan.params.parametrizations.pan.original", ()),
    ("7.effects.1.params.b", (6, 2)),
    ("7.effects.1.params.c", (2, 6)),
    ("7.effects.1.params.parametrizations.gamma.original", (FDN_DECAY_POINTS, 1)),
    ("7.effects.1.params.parametrizations.U.original", (6, 6)),
    ("7.effects.1.eq.0.params.gain", ()),
    ("7.effects.1.eq.0.params.parametrizations.freq.original", ()),
    ("7.effects.1.eq.0.params.parametrizations.Q.original", ()),
    ("7.effects.1.eq.1.params.gain", ()),
    ("7.effects.1.eq.1.params.parametrizations.freq.original", ()),
    ("7.effects.1.eq.1.params.parametrizations.Q.original", ()),
    ("7.effects.1.eq.2.params.gain", ()),
    ("7.effects.1.eq.2.params.parametrizations.freq.original", ()),
    ("7.effects.1.eq.3.params.gain", ()),
    ("7.effects.1.eq.3.params.parametrizations.freq.original", ()),
    ("7.pan.params.parametrizations.pan.original", ()),
)
RAW_WIDTH = sum(math.prod(s) for _, s in LAYOUT)

#: 1/3-octave grid of the EQ-curve prior, 99 Hz-10.1 kHz (base 2, the EQ model's grid
#: extended to 10 kHz), Hz
EQ_GRID_HZ = 1000.0 * 2.0 ** (np.arange(-10, 11) / 3.0)
#: the EQ curve's points averaged into ``eq_broadband_gain_db`` (198 Hz-5.04 kHz)
EQ_BROADBAND_POINTS = slice(3, 18)
#: octave bands of the reverb's decay and level (vocalmix's ``DECAY_BANDS_HZ``), Hz
REVERB_BANDS_HZ = tuple(float(b) for b in DECAY_BANDS_HZ)
#: frequencies (Hz) where the FDN's decay is parametrised: 0 Hz to Nyquist, evenly
REVERB_DECAY_FREQS_HZ = np.linspace(0.0, SAMPLE_RATE / 2, FDN_DECAY_POINTS)
#: the reverb's band energy is averaged over frequencies this many Hz x T60 (s) apart
REVERB_SPACING_T60 = 2.2
#: and over at least this many frequencies per octave band
REVERB_MIN_POINTS = 256
#: frequency at which the delay's total echo energy is reported, Hz
DELAY_ENERGY_FREQ_HZ = 1000.0

#: every physical parameter of :class:`Chains`: unit and one line on what it is
PARAMETERS: dict[str, tuple[str, str]] = {
    "eq_peak1_freq_hz": ("Hz", "peak EQ 1 centre (range 33-5400 Hz)"),
    "eq_peak1_gain_db": ("dB", "peak EQ 1 gain at its centre"),
    "eq_peak1_q": ("", "peak EQ 1 Q (0.2-20)"),
    "eq_peak2_freq_hz": ("Hz", "peak EQ 2 centre (range 200-17500 Hz)"),
    "eq_peak2_gain_db": ("dB", "peak EQ 2 gain at its centre"),
    "eq_peak2_q": ("", "peak EQ 2 Q (0.2-20)"),
    "eq_low_shelf_freq_hz": ("Hz", "low shelf frequency, where it has half its gain "
                                   "(30-200 Hz; Q fixed at 0.707)"),
    "eq_low_shelf_gain_db": ("dB", "low shelf gain"),
    "eq_high_shelf_freq_hz": ("Hz", "high shelf frequency, where it has half its gain "
                                    "(750-8300 Hz; Q fixed at 0.707)"),
    "eq_high_shelf_gain_db": ("dB", "high shelf gain"),
    "eq_lowpass_freq_hz": ("Hz", "low-pass cut-off (200-18000 Hz; 12 dB/octave)"),
    "eq_lowpass_q": ("", "low-pass Q (0.5-10; |H| = Q at the cut-off)"),
    "eq_highpass_freq_hz": ("Hz", "high-pass cut-off (16-5300 Hz; 12 dB/octave)"),
    "eq_highpass_q": ("", "high-pass Q (0.5-10; |H| = Q at the cut-off)"),
    "eq_broadband_gain_db": ("dB", "mean of the EQ curve (dB) over its 1/3-octave points "
                                   "198 Hz-5.04 kHz"),
    "comp_threshold_db": ("dB", "compressor threshold, dBFS of the detector level (the "
                                "sub-ms power average of the EQ'd vocal; input at -18 LUFS)"),
    "comp_ratio": ("ratio", "compressor ratio (1-20)"),
    "exp_threshold_db": ("dB", "downward expander threshold, same detector"),
    "exp_ratio": ("ratio", "expander ratio 1:R below its threshold (output dB per input dB)"),
    "attack_ms": ("ms", "gain attack, 2.2 time constants (torchcomp coef2ms)"),
    "release_ms": ("ms", "gain release, 2.2 time constants (torchcomp coef2ms)"),
    "detector_ms": ("ms", "level detector averaging, 2.2 time constants"),
    "makeup_db": ("dB", "make-up gain after the compressor"),
    "lookahead_ms": ("ms", "compressor look-ahead (0-15 ms)"),
    "direct_pan": ("", "pan of the direct sound, -100 left to +100 right"),
    "delay_time_ms": ("ms", "ping-pong delay time (100-1000 ms)"),
    "delay_feedback": ("", "delay feedback gain per repeat (0-1, linear)"),
    "delay_feedback_db": ("dB", "delay feedback per repeat"),
    "delay_level_db": ("dB", "first echo relative to the direct sound, below the delay's "
                             "low-pass"),
    "delay_energy_db": ("dB", "all echoes' energy relative to the direct sound's, at 1 kHz"),
    "delay_lowpass_freq_hz": ("Hz", "low-pass in the delay's loop, cut-off (200-16000 Hz)"),
    "delay_lowpass_q": ("", "low-pass in the delay's loop, Q (0.5-2)"),
    "delay_loop_gain_max": ("", "largest |feedback x low-pass| over frequency (1 or more: "
                                "the repeats do not die away)"),
    "delay_odd_pan": ("", "pan of echoes 1, 3, 5... (-100 to +100)"),
    "delay_even_pan": ("", "pan of echoes 2, 4, 6... (-100 to +100)"),
    "delay_to_reverb_db": ("dB", "gain from the delay's output into the reverb"),
    "reverb_t60_s": ("s", "reverb decay T60, mean of the 500 Hz and 1 kHz values (at most 9 s)"),
    **{f"reverb_t60_s_{int(b)}hz": ("s", f"reverb decay T60 at {b:g} Hz")
       for b in REVERB_BANDS_HZ},
    "reverb_level_db": ("dB", "reverb energy relative to the direct sound's, 500 Hz-2 kHz "
                              "octave bands (flat input)"),
    **{f"reverb_level_db_{int(b)}hz": ("dB", f"reverb energy relative to the direct "
                                             f"sound's, {b:g} Hz octave band")
       for b in REVERB_BANDS_HZ},
    "reverb_eq_peak1_freq_hz": ("Hz", "reverb tone EQ peak 1 centre (200-2500 Hz)"),
    "reverb_eq_peak1_gain_db": ("dB", "reverb tone EQ peak 1 gain"),
    "reverb_eq_peak1_q": ("", "reverb tone EQ peak 1 Q (0.1-3)"),
    "reverb_eq_peak2_freq_hz": ("Hz", "reverb tone EQ peak 2 centre (600-7000 Hz)"),
    "reverb_eq_peak2_gain_db": ("dB", "reverb tone EQ peak 2 gain"),
    "reverb_eq_peak2_q": ("", "reverb tone EQ peak 2 Q (0.1-3)"),
    "reverb_eq_low_shelf_freq_hz": ("Hz", "reverb tone EQ low shelf (30-450 Hz)"),
    "reverb_eq_low_shelf_gain_db": ("dB", "reverb tone EQ low shelf gain"),
    "reverb_eq_high_shelf_freq_hz": ("Hz", "reverb tone EQ high shelf (1500-16000 Hz)"),
    "reverb_eq_high_shelf_gain_db": ("dB", "reverb tone EQ high shelf gain"),
}


# --- elementary parametrisations ----------------------------------------------------------


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """``1 / (1 + exp(-x))``: ``SmoothingCoef.forward`` (modules/fx.py)."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))))


def min_max(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    """``lo + (hi - lo) sigmoid(x)``: ``MinMax.forward`` (modules/fx.py)."""
    return lo + (hi - lo) * sigmoid(x)


def coef_to_ms(coef: np.ndarray | float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One-pole coefficient to ms, ``-2200 / (sr ln(1 - coef))`` (torchcomp ``coef2ms``)."""
    c = np.asarray(coef, dtype=np.float64)
    return -COEF_MS_CONSTANT / (sample_rate * np.log1p(-c))


def ms_to_coef(ms: np.ndarray | float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """ms to one-pole coefficient, ``1 - exp(-2200 / (ms sr))`` (torchcomp ``ms2coef``)."""
    return -np.expm1(-COEF_MS_CONSTANT / (np.asarray(ms, dtype=np.float64) * sample_rate))


def pan_from_raw(x: np.ndarray | float) -> np.ndarray:
    """Pan, -100 (left) to +100 (right): ``Panning``: ``200 sigmoid(x) - 100``."""
    return 200.0 * sigmoid(x) - 100.0


def orthogonal_from_raw(x: np.ndarray) -> np.ndarray:
    """FDN feedback matrix ``expm(T - T^T)``, ``T = triu(x, 1)`` (``UniLossLess``); ``x``
    is ``(..., n, n)``."""
    from scipy.linalg import expm

    t = np.triu(np.asarray(x, dtype=np.float64), 1)
    s = t - np.swapaxes(t, -1, -2)
    flat = s.reshape(-1, *s.shape[-2:])
    return np.stack([expm(m) for m in flat]).reshape(s.shape)


def fdn_gamma_max(sample_rate: int = SAMPLE_RATE) -> float:
    """Largest per-pass gain of the shortest FDN line, ``10^(-60 / 20 * 997 / (sr * 9 s))``
    (``FDN.__init__`` with ``delay_independent_decay``)."""
    return float(10.0 ** (-3.0 * min(FDN_DELAYS) / (sample_rate * FDN_MAX_T60_S)))


def t60_from_gamma(gamma: np.ndarray | float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decay time T60 (s) for a per-pass gain ``gamma`` of the 997-sample line:
    ``-3 * 997 / (sr log10 gamma)`` (every line decays at the same rate per sample)."""
    g = np.asarray(gamma, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return -3.0 * min(FDN_DELAYS) / (sample_rate * np.log10(g))


# --- biquads (modules/functional.py) ------------------------------------------------------

BIQUAD_KINDS = ("peak", "low_shelf", "high_shelf", "lowpass", "highpass")


def biquad_coefficients(kind: str, freq_hz: np.ndarray | float, q: np.ndarray | float,
                        gain_db: np.ndarray | float = 0.0,
                        sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """RBJ biquad ``(b0, b1, b2, a0, a1, a2)`` stacked on the last axis, as DiffVox computes
    them (modules/functional.py: ``equalizer_biquad_coef`` for ``peak``,
    ``lowshelf_biquad_coef``, ``highshelf_biquad_coef``, ``lowpass_biquad_coef``,
    ``highpass_biquad_coef``): ``w0 = 2 pi f / sr``, ``alpha = sin(w0) / (2 Q)``,
    ``A = 10^(gain / 40)``."""
    f, q_, g = np.broadcast_arrays(np.asarray(freq_hz, dtype=np.float64),
                                   np.asarray(q, dtype=np.float64),
                                   np.asarray(gain_db, dtype=np.float64))
    w0 = 2.0 * np.pi * f / sample_rate
    cw, alpha = np.cos(w0), np.sin(w0) / (2.0 * q_)
    a = 10.0 ** (g / 40.0)
    sa = np.sqrt(a)
    if kind == "peak":
        c = (1 + alpha * a, -2 * cw, 1 - alpha * a, 1 + alpha / a, -2 * cw, 1 - alpha / a)
    elif kind == "low_shelf":
        c = (a * (a + 1 - (a - 1) * cw + 2 * alpha * sa), 2 * a * (a - 1 - (a + 1) * cw),
             a * (a + 1 - (a - 1) * cw - 2 * alpha * sa), a + 1 + (a - 1) * cw + 2 * alpha * sa,
             -2 * (a - 1 + (a + 1) * cw), a + 1 + (a - 1) * cw - 2 * alpha * sa)
    elif kind == "high_shelf":
        c = (a * (a + 1 + (a - 1) * cw + 2 * alpha * sa), -2 * a * (a - 1 + (a + 1) * cw),
             a * (a + 1 + (a - 1) * cw - 2 * alpha * sa), a + 1 - (a - 1) * cw + 2 * alpha * sa,
             2 * (a - 1 - (a + 1) * cw), a + 1 - (a - 1) * cw - 2 * alpha * sa)
    elif kind == "lowpass":
        c = ((1 - cw) / 2, 1 - cw, (1 - cw) / 2, 1 + alpha, -2 * cw, 1 - alpha)
    elif kind == "highpass":
        c = ((1 + cw) / 2, -1 - cw, (1 + cw) / 2, 1 + alpha, -2 * cw, 1 - alpha)
    else:
        raise ValueError(f"unknown biquad kind {kind!r}; one of {', '.join(BIQUAD_KINDS)}")
    return np.stack(np.broadcast_arrays(*c), axis=-1)


def biquad_response(coefs: np.ndarray, freqs_hz: np.ndarray,
                    sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Complex response of biquads ``coefs`` (``(..., 6)``) at ``freqs_hz`` (``(F,)``):
    ``(..., F)``."""
    z1 = np.exp(-1j * 2.0 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate)
    c = np.asarray(coefs)[..., None, :]
    num = c[..., 0] + c[..., 1] * z1 + c[..., 2] * z1 * z1
    den = c[..., 3] + c[..., 4] * z1 + c[..., 5] * z1 * z1
    return np.asarray(num / den)


def _db20(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.asarray(20.0 * np.log10(np.abs(x)))


def _db10(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.asarray(10.0 * np.log10(x))


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresetSet:
    """One DiffVox preset set as stored.

    Attributes:
        name: ``medleydb`` or ``internal``.
        raw: ``(n, RAW_WIDTH)`` unconstrained parameters (float64), ``LAYOUT`` order.
        labels: one name per row (MedleyDB: the processed stem's file name; internal:
            ``internal_NNN``, the set is anonymised).
        in_paper: ``(n,)`` bool, the rows of the paper's analysis (``train_index.npy``
            for ``internal``, every row of ``medleydb``).
    """

    name: str
    raw: np.ndarray
    labels: tuple[str, ...]
    in_paper: np.ndarray

    def block(self, key: str) -> np.ndarray:
        """The values of ``params_keys`` entry ``key``, ``(n, *shape)``."""
        start = 0
        for k, shape in LAYOUT:
            size = math.prod(shape)
            if k == key:
                return self.raw[:, start:start + size].reshape((-1, *shape))
            start += size
        raise KeyError(key)

    def paper_subset(self) -> PresetSet:
        """The rows the paper analysed."""
        keep = np.flatnonzero(self.in_paper)
        return PresetSet(self.name, self.raw[keep], tuple(self.labels[i] for i in keep),
                         np.ones(keep.size, dtype=bool))


def preset_folder(folder: str | Path | None = None) -> Path:
    """The DiffVox folder: ``folder`` if given (the ``diffvox`` folder itself or a data root
    holding ``vocal_fx_presets/diffvox``), else under ``$VOCALMIX_DATA``."""
    if folder is None:
        from vocalmix.training.data import data_root

        base = data_root()
    else:
        base = Path(folder)
    for cand in (base, base.joinpath(*FOLDER)):
        if (cand / "medleydb" / "raw_params.npy").exists():
            return cand
    raise DataError(f"{base}: no DiffVox preset sets here (expected "
                    f"{'/'.join(FOLDER)}/medleydb/raw_params.npy under the data folder, "
                    "or that folder itself; the data root comes from $VOCALMIX_DATA)")


def load_presets(name: str, folder: str | Path | None = None) -> PresetSet:
    """Read preset set ``name`` (``medleydb`` or ``internal``), checking that its layout is
    the chain this module converts."""
    if name not in SETS:
        raise DataError(f"unknown DiffVox preset set {name!r}; one of {', '.join(SETS)}")
    d = preset_folder(folder) / name
    try:
        info = json.loads((d / "info.json").read_text(encoding="utf-8"))
        raw = np.load(d / "raw_params.npy").astype(np.float64)
    except (OSError, ValueError) as e:
        raise DataError(f"{d}: cannot read info.json or raw_params.npy ({e})") from None
    keys = list(info.get("params_keys", []))
    shapes = [tuple(s) for s in info.get("params_original_shapes", [])]
    if keys != [k for k, _ in LAYOUT] or shapes != [s for _, s in LAYOUT]:
        raise DataError(f"{d}/info.json: params_keys/params_original_shapes are not the "
                        "DiffVox chain of fx_config.yaml this reader converts")
    if raw.ndim != 2 or raw.shape[1] != RAW_WIDTH or not np.all(np.isfinite(raw)):
        raise DataError(f"{d}/raw_params.npy: expected finite rows of {RAW_WIDTH} values, got "
                        f"shape {raw.shape}")
    wet = info.get("wet_files", [])
    if len(wet) != raw.shape[0]:
        raise DataError(f"{d}/info.json: {len(wet)} wet_files for {raw.shape[0]} rows")
    if name == "medleydb":
        labels = tuple(Path(w).stem for w in wet)
        in_paper = np.ones(raw.shape[0], dtype=bool)
    else:
        labels = tuple(f"internal_{i:03d}" for i in range(raw.shape[0]))
        in_paper = np.zeros(raw.shape[0], dtype=bool)
        idx = d / "train_index.npy"
        if idx.exists():
            ti = np.load(idx)
            if ti.size and (ti.min() < 0 or ti.max() >= raw.shape[0]):
                raise DataError(f"{idx}: indices outside the {raw.shape[0]} rows")
            in_paper[ti] = True
        else:
            in_paper[:] = True
    return PresetSet(name, raw, labels, in_paper)


# --- conversion ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Chains:
    """A preset set in physical units.

    Attributes:
        name: the set's name.
        labels: one per preset.
        params: every entry of :data:`PARAMETERS`, ``(n,)`` each.
        reverb_t60_s: ``(n, 49)`` reverb T60 at :data:`REVERB_DECAY_FREQS_HZ`, s.
        fdn_b: ``(n, 6, 2)`` FDN input gains; ``fdn_c``: ``(n, 2, 6)`` output gains;
        fdn_u: ``(n, 6, 6)`` orthogonal feedback matrices;
        fdn_gamma: ``(n, 49)`` per-pass gain of the 997-sample line.
    """

    name: str
    labels: tuple[str, ...]
    params: Mapping[str, np.ndarray]
    reverb_t60_s: np.ndarray
    fdn_b: np.ndarray
    fdn_c: np.ndarray
    fdn_u: np.ndarray
    fdn_gamma: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> Chains:
        """The presets at indices ``keep``."""
        k = np.asarray(keep)
        return Chains(self.name, tuple(self.labels[i] for i in k),
                      {n: v[k] for n, v in self.params.items()}, self.reverb_t60_s[k],
                      self.fdn_b[k], self.fdn_c[k], self.fdn_u[k], self.fdn_gamma[k])


def concat(name: str, parts: Sequence[Chains]) -> Chains:
    """Several sets as one (the pooled prior)."""
    return Chains(name, tuple(lb for p in parts for lb in p.labels),
                  {n: np.concatenate([p.params[n] for p in parts]) for n in parts[0].params},
                  *(np.concatenate([getattr(p, a) for p in parts])
                    for a in ("reverb_t60_s", "fdn_b", "fdn_c", "fdn_u", "fdn_gamma")))


def to_physical(ps: PresetSet, *, reverb_levels: bool = True) -> Chains:
    """Every preset of ``ps`` in physical units (see the module doc for each formula).

    ``reverb_levels=False`` skips the reverb's band energies (the only slow part, about
    0.05 s a preset) and fills them with NaN.
    """
    b = ps.block
    p: dict[str, np.ndarray] = {}
    # main EQ: Peak, Peak, LowShelf, HighShelf, LowPass, HighPass
    for i, name, rng in ((0, "eq_peak1", PEAK1_FREQ_HZ), (1, "eq_peak2", PEAK2_FREQ_HZ)):
        p[f"{name}_freq_hz"] = min_max(b(f"{i}.params.parametrizations.freq.original"), *rng)
        p[f"{name}_gain_db"] = b(f"{i}.params.gain").copy()
        p[f"{name}_q"] = min_max(b(f"{i}.params.parametrizations.Q.original"), *PEAK_Q)
    for i, name, rng in ((2, "eq_low_shelf", LOW_SHELF_FREQ_HZ),
                         (3, "eq_high_shelf", HIGH_SHELF_FREQ_HZ)):
        p[f"{name}_freq_hz"] = min_max(b(f"{i}.params.parametrizations.freq.original"), *rng)
        p[f"{name}_gain_db"] = b(f"{i}.params.gain").copy()
    for i, name, rng in ((4, "eq_lowpass", LOWPASS_FREQ_HZ), (5, "eq_highpass", HIGHPASS_FREQ_HZ)):
        p[f"{name}_freq_hz"] = min_max(b(f"{i}.params.parametrizations.freq.original"), *rng)
        p[f"{name}_q"] = min_max(b(f"{i}.params.parametrizations.Q.original"), *PASS_Q)
    # compressor / expander
    p["comp_threshold_db"] = b("6.params.cmp_th").copy()
    p["comp_ratio"] = min_max(b("6.params.parametrizations.cmp_ratio.original"), *COMP_RATIO)
    p["exp_threshold_db"] = b("6.params.exp_th").copy()
    p["exp_ratio"] = 1.0 / sigmoid(b("6.params.parametrizations.exp_ratio.original"))
    p["attack_ms"] = coef_to_ms(sigmoid(b("6.params.parametrizations.at.original")))
    p["release_ms"] = coef_to_ms(sigmoid(b("6.params.parametrizations.rt.original")))
    p["detector_ms"] = coef_to_ms(sigmoid(b("6.params.parametrizations.avg_coef.original")))
    p["makeup_db"] = b("6.params.make_up").copy()
    p["lookahead_ms"] = np.abs(b("6.params.parametrizations.lookahead.original")[:, 0]) % \
        MAX_LOOKAHEAD_MS
    p["direct_pan"] = pan_from_raw(b("7.pan.params.parametrizations.pan.original"))
    # ping-pong delay
    pre = "7.effects.0."
    p["delay_time_ms"] = min_max(b(pre + "params.parametrizations.delay.original"),
                                 *DELAY_TIME_MS)
    fb = sigmoid(b(pre + "params.parametrizations.feedback.original"))
    gain = sigmoid(b(pre + "params.parametrizations.gain.original"))
    p["delay_feedback"] = fb
    p["delay_feedback_db"] = _db20(fb)
    p["delay_level_db"] = _db20(gain)
    p["delay_lowpass_freq_hz"] = min_max(b(pre + "eq.params.parametrizations.freq.original"),
                                         *DELAY_LOWPASS_FREQ_HZ)
    p["delay_lowpass_q"] = min_max(b(pre + "eq.params.parametrizations.Q.original"),
                                   *DELAY_LOWPASS_Q)
    lp = biquad_coefficients("lowpass", p["delay_lowpass_freq_hz"], p["delay_lowpass_q"])
    grid = np.linspace(0.0, SAMPLE_RATE / 2, 4097)
    lp_max = np.abs(biquad_response(lp, grid)).max(axis=-1)
    at_fc = np.abs(biquad_response(lp[:, None, :], p["delay_lowpass_freq_hz"][:, None])[:, 0, 0])
    p["delay_loop_gain_max"] = fb * np.maximum(lp_max, at_fc)
    p["delay_energy_db"] = delay_energy_db(p["delay_time_ms"], fb, gain, lp, DELAY_ENERGY_FREQ_HZ)
    p["delay_odd_pan"] = pan_from_raw(b(pre + "odd_pan.params.parametrizations.pan.original"))
    p["delay_even_pan"] = pan_from_raw(b(pre + "even_pan.params.parametrizations.pan.original"))
    p["delay_to_reverb_db"] = _db20(sigmoid(b("7.params.parametrizations.sends_0.original")[:, 0]))
    # FDN reverb
    pre = "7.effects.1."
    gamma = min_max(b(pre + "params.parametrizations.gamma.original")[:, :, 0], 0.0,
                    fdn_gamma_max())
    t60 = t60_from_gamma(gamma)
    for band in REVERB_BANDS_HZ:
        g_b = np.array([np.interp(band, REVERB_DECAY_FREQS_HZ, g) for g in gamma])
        p[f"reverb_t60_s_{int(band)}hz"] = t60_from_gamma(g_b)
    p["reverb_t60_s"] = 0.5 * (p["reverb_t60_s_500hz"] + p["reverb_t60_s_1000hz"])
    for j, name, rng in ((0, "reverb_eq_peak1", REVERB_PEAK1_FREQ_HZ),
                         (1, "reverb_eq_peak2", REVERB_PEAK2_FREQ_HZ)):
        p[f"{name}_freq_hz"] = min_max(b(f"{pre}eq.{j}.params.parametrizations.freq.original"),
                                       *rng)
        p[f"{name}_gain_db"] = b(f"{pre}eq.{j}.params.gain").copy()
        p[f"{name}_q"] = min_max(b(f"{pre}eq.{j}.params.parametrizations.Q.original"),
                                 *REVERB_PEAK_Q)
    for j, name, rng in ((2, "reverb_eq_low_shelf", REVERB_LOW_SHELF_FREQ_HZ),
                         (3, "reverb_eq_high_shelf", REVERB_HIGH_SHELF_FREQ_HZ)):
        p[f"{name}_freq_hz"] = min_max(b(f"{pre}eq.{j}.params.parametrizations.freq.original"),
                                       *rng)
        p[f"{name}_gain_db"] = b(f"{pre}eq.{j}.params.gain").copy()
    u = orthogonal_from_raw(b(pre + "params.parametrizations.U.original"))
    p["eq_broadband_gain_db"] = np.zeros(len(ps.labels))
    chains = Chains(ps.name, ps.labels, p, t60, b(pre + "params.b").copy(),
                    b(pre + "params.c").copy(), u, gamma)
    p["eq_broadband_gain_db"] = eq_curve_db(chains)[:, EQ_BROADBAND_POINTS].mean(axis=1)
    levels = (reverb_level_db(chains) if reverb_levels
              else np.full((len(ps.labels), len(REVERB_BANDS_HZ)), np.nan))
    for k, band in enumerate(REVERB_BANDS_HZ):
        p[f"reverb_level_db_{int(band)}hz"] = levels[:, k]
    mid = [REVERB_BANDS_HZ.index(f) for f in (500.0, 1000.0, 2000.0)]
    p["reverb_level_db"] = _db10(np.mean(10.0 ** (levels[:, mid] / 10.0), axis=1))
    missing = set(PARAMETERS) - set(p)
    if missing:  # a programming error, not a data error
        raise AssertionError(f"parameters not converted: {sorted(missing)}")
    return Chains(ps.name, ps.labels, {k: np.asarray(p[k], dtype=np.float64) for k in PARAMETERS},
                  t60, chains.fdn_b, chains.fdn_c, u, gamma)


def delay_energy_db(delay_ms: np.ndarray, feedback: np.ndarray, gain: np.ndarray,
                    lowpass: np.ndarray, freq_hz: float,
                    sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Energy of all echoes relative to the direct sound at ``freq_hz``, dB:
    ``sum_n gain^2 feedback^(2(n-1)) |LP|^(2n)`` over the echoes that fit in the delay's
    4 s response (``Delay.forward``: ``ir_length // int(delay_samples + 1)`` echoes). Both
    the direct sound and every echo go through a constant-power pan, so pans cancel."""
    d = np.atleast_1d(np.asarray(delay_ms, dtype=np.float64))
    fb = np.broadcast_to(np.asarray(feedback, dtype=np.float64), d.shape)
    g = np.broadcast_to(np.asarray(gain, dtype=np.float64), d.shape)
    lp2 = np.abs(biquad_response(np.asarray(lowpass).reshape(-1, 6),
                                 np.array([freq_hz]), sample_rate)[:, 0]) ** 2
    lp2 = np.broadcast_to(lp2, d.shape)
    ir_len = int(sample_rate * max(DELAY_IR_S, DELAY_TIME_MS[1] * 0.002))
    out = np.empty(d.shape)
    for i in range(d.size):
        n_echo = ir_len // int(sample_rate * d[i] * 0.001 + 1)
        n = np.arange(1, n_echo + 1)
        out[i] = np.sum(g[i] ** 2 * fb[i] ** (2 * (n - 1)) * lp2[i] ** n)
    return _db10(out)


def fdn_response(chains: Chains, index: int, freqs_hz: np.ndarray,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Stereo response ``(F, 2)`` of preset ``index``'s reverb to a mono input (the FDN's two
    inputs carry the same signal), tone EQ included: ``FDN.forward``."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    w = 2.0 * np.pi * f / sample_rate
    d = np.asarray(FDN_DELAYS, dtype=np.float64)
    g = np.interp(f, REVERB_DECAY_FREQS_HZ, chains.fdn_gamma[index])
    line_gain = g[:, None] ** (d / d.min())  # (F, 6): per pass, the same decay per sample
    m = np.empty((f.size, 6, 6), dtype=complex)  # diag(e^{j w d}) - U diag(line_gain)
    np.multiply(chains.fdn_u[index][None, :, :], -line_gain[:, None, :], out=m.real)
    m.imag[...] = 0.0
    m[:, np.arange(6), np.arange(6)] += np.exp(1j * w[:, None] * d)
    b_eff = np.empty((f.size, 6, 1), dtype=complex)
    b_eff[:, :, 0] = chains.fdn_b[index].sum(axis=1)
    h = np.linalg.solve(m, b_eff)[:, :, 0] @ chains.fdn_c[index].T  # (F, 2)
    return h * reverb_eq_response(chains, index, f, sample_rate)[:, None]


def reverb_eq_response(chains: Chains, index: int, freqs_hz: np.ndarray,
                       sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Complex response of preset ``index``'s reverb tone EQ at ``freqs_hz``."""
    p = {k: float(v[index]) for k, v in chains.params.items() if k.startswith("reverb_eq_")}
    coefs = np.stack([
        biquad_coefficients("peak", p["reverb_eq_peak1_freq_hz"], p["reverb_eq_peak1_q"],
                            p["reverb_eq_peak1_gain_db"], sample_rate),
        biquad_coefficients("peak", p["reverb_eq_peak2_freq_hz"], p["reverb_eq_peak2_q"],
                            p["reverb_eq_peak2_gain_db"], sample_rate),
        biquad_coefficients("low_shelf", p["reverb_eq_low_shelf_freq_hz"], SHELF_Q,
                            p["reverb_eq_low_shelf_gain_db"], sample_rate),
        biquad_coefficients("high_shelf", p["reverb_eq_high_shelf_freq_hz"], SHELF_Q,
                            p["reverb_eq_high_shelf_gain_db"], sample_rate),
    ])
    return np.asarray(np.prod(biquad_response(coefs, freqs_hz, sample_rate), axis=0))


def band_points(band_hz: float, points: int) -> np.ndarray:
    """``points`` frequencies evenly spread over the octave band centred on ``band_hz``
    (midpoints of ``points`` equal slices), Hz."""
    lo, hi = band_hz / math.sqrt(2.0), band_hz * math.sqrt(2.0)
    return lo + (np.arange(points) + 0.5) * (hi - lo) / points


def reverb_band_points(chains: Chains, index: int, band_hz: float,
                       spacing_t60: float = REVERB_SPACING_T60) -> int:
    """How many frequencies resolve preset ``index``'s reverb in an octave band: a spacing
    of ``spacing_t60 / T60`` Hz (T60 the longest in the band), at least
    :data:`REVERB_MIN_POINTS`. A mode's 3 dB bandwidth is ``3 ln(10) / (pi T60)`` = 2.2 /
    T60 Hz, so the default samples every mode once: on the MedleyDB set, every band level
    within 0.2 dB (99 % within 0.07 dB) of the same at 4 times the density."""
    probe = band_points(band_hz, 64)
    t60 = float(np.max(t60_from_gamma(np.interp(probe, REVERB_DECAY_FREQS_HZ,
                                                chains.fdn_gamma[index]))))
    width = band_hz * (math.sqrt(2.0) - 1.0 / math.sqrt(2.0))
    if not math.isfinite(t60) or t60 <= 0.0:
        return REVERB_MIN_POINTS
    return max(REVERB_MIN_POINTS, int(math.ceil(width * t60 / spacing_t60)))


def reverb_level_db(chains: Chains, bands_hz: Sequence[float] = REVERB_BANDS_HZ,
                    points: int | None = None) -> np.ndarray:
    """Reverb energy relative to the direct sound's, per octave band, dB ``(n, bands)``.

    The mean of ``|H_left|^2 + |H_right|^2`` over the band, divided by the direct sound's
    ``2`` (its pan gains are ``sqrt(2)(cos, sin)``): for a signal with a flat spectrum
    across the band, the reverb's energy over the dry sound's (by Parseval, the band mean
    of ``|H|^2`` is the band-limited response's energy). The mean is taken over ``points``
    evenly spread frequencies, by default as many as :func:`reverb_band_points` says.
    """
    out = np.empty((len(chains), len(bands_hz)))
    for i in range(len(chains)):
        counts = [points or reverb_band_points(chains, i, b) for b in bands_hz]
        f = np.concatenate([band_points(b, n) for b, n in zip(bands_hz, counts, strict=True)])
        e = np.sum(np.abs(fdn_response(chains, i, f)) ** 2, axis=1)
        ends = np.cumsum([0, *counts])
        out[i] = [_db10(np.mean(e[a:z]) / 2.0) for a, z in zip(ends[:-1], ends[1:], strict=True)]
    return out


def eq_curve_db(chains: Chains, freqs_hz: np.ndarray = EQ_GRID_HZ,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Magnitude response (dB) of the main EQ (both peaks, both shelves, low- and
    high-pass), ``(n, F)``."""
    p = chains.params
    coefs = [
        biquad_coefficients("peak", p["eq_peak1_freq_hz"], p["eq_peak1_q"],
                            p["eq_peak1_gain_db"], sample_rate),
        biquad_coefficients("peak", p["eq_peak2_freq_hz"], p["eq_peak2_q"],
                            p["eq_peak2_gain_db"], sample_rate),
        biquad_coefficients("low_shelf", p["eq_low_shelf_freq_hz"], SHELF_Q,
                            p["eq_low_shelf_gain_db"], sample_rate),
        biquad_coefficients("high_shelf", p["eq_high_shelf_freq_hz"], SHELF_Q,
                            p["eq_high_shelf_gain_db"], sample_rate),
        biquad_coefficients("lowpass", p["eq_lowpass_freq_hz"], p["eq_lowpass_q"],
                            0.0, sample_rate),
        biquad_coefficients("highpass", p["eq_highpass_freq_hz"], p["eq_highpass_q"],
                            0.0, sample_rate),
    ]
    return np.sum([_db20(biquad_response(c, freqs_hz, sample_rate)) for c in coefs], axis=0)


def load_chains(folder: str | Path | None = None, *, reverb_levels: bool = True,
                paper_rows: bool = True) -> dict[str, Chains]:
    """Both sets in physical units, by name (``internal``: the paper's 365 rows unless
    ``paper_rows`` is false)."""
    out = {}
    for name in SETS:
        ps = load_presets(name, folder)
        out[name] = to_physical(ps.paper_subset() if paper_rows else ps,
                                reverb_levels=reverb_levels)
    return out


# --- priors -------------------------------------------------------------------------------

#: percentiles every distribution is summarised by
PERCENTILES = (5, 25, 50, 75, 95)
#: where the fits started (fx_config.yaml and the modules' defaults, in physical units):
#: a parameter the audio did not pin down stays near it
FIT_START: dict[str, float] = {
    "eq_peak1_freq_hz": 800.0, "eq_peak1_gain_db": 0.0, "eq_peak1_q": 0.707,
    "eq_peak2_freq_hz": 4000.0, "eq_peak2_gain_db": 0.0, "eq_peak2_q": 0.707,
    "eq_low_shelf_freq_hz": 115.0, "eq_low_shelf_gain_db": 0.0,
    "eq_high_shelf_freq_hz": 6000.0, "eq_high_shelf_gain_db": 0.0,
    "eq_lowpass_freq_hz": 17500.0, "eq_lowpass_q": 0.707,
    "eq_highpass_freq_hz": 200.0, "eq_highpass_q": 0.707,
    "comp_threshold_db": -18.0, "comp_ratio": 2.0, "exp_threshold_db": -48.0,
    "exp_ratio": 2.0, "attack_ms": 50.0, "release_ms": 50.0,
    "detector_ms": float(coef_to_ms(0.3)), "makeup_db": 0.0,
    "lookahead_ms": 1000.0 / SAMPLE_RATE, "direct_pan": 0.0,
    "delay_time_ms": 400.0, "delay_feedback": 0.1, "delay_feedback_db": -20.0,
    "delay_level_db": -20.0, "delay_lowpass_freq_hz": 8000.0, "delay_lowpass_q": 0.707,
    "delay_odd_pan": 0.0, "delay_even_pan": 0.0, "delay_to_reverb_db": -40.0,
    "reverb_eq_peak1_freq_hz": 800.0, "reverb_eq_peak1_gain_db": 0.0, "reverb_eq_peak1_q": 0.707,
    "reverb_eq_peak2_freq_hz": 4000.0, "reverb_eq_peak2_gain_db": 0.0,
    "reverb_eq_peak2_q": 0.707, "reverb_eq_low_shelf_freq_hz": 115.0,
    "reverb_eq_low_shelf_gain_db": 0.0, "reverb_eq_high_shelf_freq_hz": 8000.0,
    "reverb_eq_high_shelf_gain_db": 0.0,
}
#: a delay whose echoes carry at least this much energy relative to the direct sound (at
#: 1 kHz) counts as used; below it the delay time is mostly where the fit started, dB
AUDIBLE_DELAY_DB = -30.0
#: a reverb at least this loud relative to the direct sound (500 Hz-2 kHz) counts as used, dB
AUDIBLE_REVERB_DB = -30.0
#: how many principal components of the EQ curves the prior keeps
EQ_COMPONENTS = 4
#: significant digits kept in the JSON
DIGITS = 4


def _r(x: SupportsFloat) -> float | None:
    v = float(x)
    return float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None


def _rl(a: np.ndarray) -> list:
    return [_rl(x) if np.ndim(x) else _r(x) for x in np.asarray(a)]


def _near(name: str, values: np.ndarray, start: float) -> np.ndarray:
    """Whether each value is where the fit started (0.1 dB for dB values and pans, 1 %
    otherwise)."""
    if name.endswith("_db") or name.endswith("_pan") or start == 0.0:
        return np.asarray(np.abs(values - start) < 0.1)
    return np.asarray(np.abs(values / start - 1.0) < 0.01)


def describe(values: np.ndarray, name: str | None = None) -> dict[str, float | None]:
    """Percentiles (:data:`PERCENTILES`, as ``p5``... ``p95``) of the finite ``values``
    (``None`` if there are none); with ``name``, also ``at_start``: the fraction still where
    the fit started."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {f"p{q}": None for q in PERCENTILES}
    out: dict[str, float | None] = {f"p{q}": _r(x) for q, x in
                                    zip(PERCENTILES, np.percentile(v, PERCENTILES), strict=True)}
    if name is not None and name in FIT_START:
        out["at_start"] = _r(np.mean(_near(name, v, FIT_START[name])))
    return out


def _components(cov: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` principal directions of ``cov`` (rows, each with its largest entry
    positive), their standard deviations and the fraction of variance each explains."""
    w, v = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1][:k]
    w, v = np.clip(w[order], 0.0, None), v[:, order].T
    v = v * np.sign(v[np.arange(k), np.argmax(np.abs(v), axis=1)])[:, None]
    return v, np.sqrt(w), w / max(float(np.trace(cov)), 1e-30)


def eq_curve_summary(curves_db: np.ndarray, *, with_cov: bool = True) -> dict:
    """Mean, standard deviation, percentiles, covariance (``with_cov``) and principal
    components of EQ curves ``(n, F)`` on :data:`EQ_GRID_HZ`."""
    cov = np.cov(curves_db, rowvar=False)
    comps, sd, frac = _components(cov, EQ_COMPONENTS)
    out = {
        "n": int(curves_db.shape[0]),
        "mean_db": _rl(curves_db.mean(axis=0)),
        "sd_db": _rl(curves_db.std(axis=0, ddof=1)),
        "percentiles_db": {f"p{q}": _rl(np.percentile(curves_db, q, axis=0))
                           for q in PERCENTILES},
        "cov_db2": _rl(cov),
        "components": _rl(comps),
        "component_sd_db": _rl(sd),
        "component_variance_fraction": _rl(frac),
    }
    if not with_cov:
        del out["cov_db2"]
    return out


def set_summary(ch: Chains) -> dict:
    """Every distribution of one set (or the pooled sets)."""
    p = ch.params
    out: dict = {"n": len(ch)}
    out["parameters"] = {k: describe(p[k], k) for k in PARAMETERS}
    curves = eq_curve_db(ch)
    out["eq_curve"] = eq_curve_summary(curves)
    out["eq_shape"] = eq_curve_summary(curves - p["eq_broadband_gain_db"][:, None],
                                       with_cov=False)
    used = p["delay_energy_db"] >= AUDIBLE_DELAY_DB
    out["delay_used"] = {
        "fraction": _r(np.mean(used)),
        "n": int(used.sum()),
        **({k: describe(p[k][used], k) for k in
            ("delay_time_ms", "delay_level_db", "delay_energy_db", "delay_feedback",
             "delay_lowpass_freq_hz", "delay_odd_pan", "delay_even_pan")} if used.any() else {}),
    }
    rev = p["reverb_level_db"] >= AUDIBLE_REVERB_DB
    ratios = {f"{int(b)}": describe(p[f"reverb_t60_s_{int(b)}hz"][rev] /
                                    p["reverb_t60_s_1000hz"][rev]) for b in REVERB_BANDS_HZ}
    out["reverb_used"] = {
        "fraction": _r(np.mean(rev)),
        "n": int(rev.sum()),
        **({k: describe(p[k][rev], k) for k in
            ("reverb_t60_s", "reverb_level_db", *(f"reverb_level_db_{int(b)}hz"
                                                   for b in REVERB_BANDS_HZ))} if rev.any()
           else {}),
        "band_decay_ratios": ratios if rev.any() else {},
    }
    return out


NOTES = {
    "levels": "Every level is relative to the dry vocal normalised to -18 LUFS integrated "
              "(mono) before the chain; the processed vocal was also normalised to -18 LUFS "
              "(stereo), so the chain as a whole keeps the loudness.",
    "compressor": "comp_threshold_db and exp_threshold_db are dBFS of the compressor's "
                  "detector: a one-pole average of the EQ'd vocal's squared samples with a "
                  "sub-millisecond time (detector_ms), i.e. close to the instantaneous "
                  "power, so the thresholds sit relative to the vocal's peaks more than to "
                  "its loudness; the gain (not the level) is smoothed by attack_ms and "
                  "release_ms, which are 2.2 time constants each (torchcomp ms2coef), and "
                  "the input is at -18 LUFS before the EQ.",
    "delay": "delay_level_db is the first echo's level relative to the direct sound; "
             "delay_energy_db all echoes' energy at 1 kHz. The fits started at 400 ms and "
             "-20 dB: when a vocal had no delay the level dropped and the time stayed near "
             "400 ms, so delay times are summarised again among delays with "
             "delay_energy_db >= -30 dB (delay_used).",
    "reverb": "reverb_level_db_* is the reverb's energy relative to the direct sound's per "
              "octave band for a flat input (reverb starts 22.6 ms after the direct sound, "
              "the shortest FDN line); reverb_t60_s_* is its T60. band_decay_ratios are "
              "T60(band)/T60(1 kHz) among reverbs with reverb_level_db >= -30 dB, in the "
              "octave bands of vocalmix's Reverb.band_decay_ratios.",
    "at_start": "at_start: fraction of presets still within 0.1 dB (dB values, pans) or "
                "1 % (others) of where every fit started (fit_start): such values were not "
                "pinned down by the audio.",
    "eq_curve": "eq_curve: magnitude (dB) of the six fitted biquads (RBJ formulas of "
                "DiffVox's modules/functional.py) on the 1/3-octave grid freqs_hz; "
                "components are the leading eigenvectors of cov_db2 (each scaled to unit "
                "length, largest entry positive), component_sd_db their standard deviations. "
                "eq_shape: the same curves less each one's eq_broadband_gain_db (the shape "
                "alone; the first component of eq_curve is mostly that overall gain).",
}


def build_prior(chains: Mapping[str, Chains], *, command: str = "",
                extra: Mapping[str, object] | None = None) -> dict:
    """The JSON-serialisable prior: per set and pooled (:func:`set_summary`)."""
    sets = {name: set_summary(ch) for name, ch in chains.items()}
    pooled = concat("pooled", list(chains.values()))
    sets["pooled"] = set_summary(pooled)
    doc: dict = {
        "format": "vocalmix.diffvox_prior",
        "version": 1,
        "source": {
            "what": "vocal chains fitted by DiffVox to engineers' processed lead vocals",
            "paper": "C.-Y. Yu et al., DiffVox: A Differentiable Model for Capturing and "
                     "Analysing Vocal Effects Distributions, Proc. DAFx 2025",
            "repository": "SonyResearch/diffvox@97ae464c (MIT)",
            "sets": {name: {"n": len(ch)} for name, ch in chains.items()},
            "rows": "medleydb: all 70; internal: the 365 rows of train_index.npy (the "
                    "paper's); pooled: both, one weight per preset",
        },
        "command": command,
        "sample_rate": SAMPLE_RATE,
        "input_loudness_lufs": INPUT_LOUDNESS_LUFS,
        "notes": NOTES,
        "units": {k: {"unit": u, "doc": d} for k, (u, d) in PARAMETERS.items()},
        "fit_start": {k: _r(v) for k, v in FIT_START.items()},
        "percentiles": list(PERCENTILES),
        "freqs_hz": _rl(EQ_GRID_HZ),
        "reverb_bands_hz": list(REVERB_BANDS_HZ),
        "sets": sets,
    }
    if extra:
        doc.update(extra)
    return doc


def dumps(doc: object, indent: int = 0) -> str:
    """JSON with one line per list of numbers (small and diff-friendly)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(doc, dict):
        if not doc:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in doc.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(doc, list) and doc and all(isinstance(x, list) for x in doc):
        return "[\n" + ",\n".join(inner + dumps(x, indent + 1) for x in doc) + "\n" + pad + "]"
    return json.dumps(doc, ensure_ascii=False, allow_nan=False)


# --- the compressors on a real dry vocal (report) -----------------------------------------

#: segments (100 ms) within this many dB of a vocal's loudest count as sung, dB
ACTIVE_RANGE_DB = 30.0


def _eq_sos(p: Mapping[str, np.ndarray], i: int, sample_rate: int) -> np.ndarray:
    coefs = np.stack([
        biquad_coefficients("peak", p["eq_peak1_freq_hz"][i], p["eq_peak1_q"][i],
                            p["eq_peak1_gain_db"][i], sample_rate),
        biquad_coefficients("peak", p["eq_peak2_freq_hz"][i], p["eq_peak2_q"][i],
                            p["eq_peak2_gain_db"][i], sample_rate),
        biquad_coefficients("low_shelf", p["eq_low_shelf_freq_hz"][i], SHELF_Q,
                            p["eq_low_shelf_gain_db"][i], sample_rate),
        biquad_coefficients("high_shelf", p["eq_high_shelf_freq_hz"][i], SHELF_Q,
                            p["eq_high_shelf_gain_db"][i], sample_rate),
        biquad_coefficients("lowpass", p["eq_lowpass_freq_hz"][i], p["eq_lowpass_q"][i],
                            0.0, sample_rate),
        biquad_coefficients("highpass", p["eq_highpass_freq_hz"][i], p["eq_highpass_q"][i],
                            0.0, sample_rate),
    ])
    return np.asarray(coefs / coefs[:, 3:4])


def compressor_on_vocal(chains: Chains, x: np.ndarray, sample_rate: int,
                        chunk_s: float = 0.5) -> dict[str, np.ndarray]:
    """Each preset's EQ and compressor/expander (no look-ahead: a sub-ms shift) on the dry
    mono vocal ``x``, first normalised to -18 LUFS as DiffVox did.

    The level detector, gain law and gain smoothing follow ``modules/functional.py``
    ``compressor_expander`` and ``torchcomp.compexp_gain``: ``p[n] = a y[n]^2 + (1 - a)
    p[n-1]``, gain ``min(0, (1 - 1/ratio)(threshold - L), (1 - exp_ratio)(exp_threshold -
    L))`` dB with ``L = 10 log10 p``, then ``g[n] = g[n-1] + k (f[n] - g[n-1])`` with ``k``
    the attack coefficient while the gain falls and the release one otherwise.

    Returns per preset (``(n,)`` arrays): ``eq_loudness_change_db`` (integrated loudness
    after the EQ minus -18), ``threshold_re_loudness_db`` (the threshold minus the EQ'd
    vocal's integrated loudness), ``gr_median_db`` and ``gr_p95_db`` (gain reduction, the
    drop in K-weighted energy, over the sung 100 ms segments), ``lra_in_lu`` and
    ``lra_out_lu`` (EBU Tech 3342, before and after the compressor), and
    ``loudness_change_db`` (after make-up, relative to -18 LUFS).
    """
    from scipy.signal import lfilter, lfilter_zi, sosfilt, sosfilt_zi

    from vocalmix.core import measure
    from vocalmix.core.dsp import mono_at

    y0 = np.asarray(mono_at(np.asarray(x, dtype=np.float64), sample_rate, SAMPLE_RATE,
                            quality="HQ"), dtype=np.float64)
    sr = SAMPLE_RATE
    seg = int(round(sr / 10.0))
    n_seg = y0.size // seg
    if n_seg < 40:
        raise DataError("the reference vocal must be at least 4 s long")
    y0 = y0[: n_seg * seg]
    k_sos = measure.k_weighting_sos(sr)
    e_dry = measure.BlockStats.of(y0[:, None], sr).energy
    lufs = float(measure.integrated_from_segments(e_dry, seg))
    if not math.isfinite(lufs):
        raise DataError("the reference vocal is silent")
    y0 = y0 * 10.0 ** ((INPUT_LOUDNESS_LUFS - lufs) / 20.0)

    p = chains.params
    n = len(chains)
    sos = [_eq_sos(p, i, sr) for i in range(n)]
    zi_eq = [sosfilt_zi(s_) * 0.0 for s_ in sos]
    zi_k = [sosfilt_zi(k_sos) * 0.0 for _ in range(n)]
    det = ms_to_coef(p["detector_ms"], sr)
    zi_det = [lfilter_zi([det[i]], [1.0, det[i] - 1.0]) * 0.0 for i in range(n)]
    at, rt = ms_to_coef(p["attack_ms"], sr), ms_to_coef(p["release_ms"], sr)
    cs, es = 1.0 - 1.0 / p["comp_ratio"], 1.0 - p["exp_ratio"]
    g = np.ones(n)
    e_in = np.zeros((n, n_seg))
    e_out = np.zeros((n, n_seg))
    step = max(1, int(round(chunk_s * 10))) * seg
    for t0 in range(0, y0.size, step):
        xc = y0[t0:t0 + step]
        m = xc.size
        f = np.empty((m, n))
        yk = np.empty((n, m))
        for i in range(n):
            y, zi_eq[i] = sosfilt(sos[i], xc, zi=zi_eq[i])
            yk[i], zi_k[i] = sosfilt(k_sos, y, zi=zi_k[i])
            pw, zi_det[i] = lfilter([det[i]], [1.0, det[i] - 1.0], np.maximum(y * y, 1e-8),
                                    zi=zi_det[i])
            lv = 10.0 * np.log10(pw)
            gdb = np.minimum(np.minimum(cs[i] * (p["comp_threshold_db"][i] - lv),
                                        es[i] * (p["exp_threshold_db"][i] - lv)), 0.0)
            f[:, i] = 10.0 ** (gdb / 20.0)
        gains = np.empty((m, n))
        for j in range(m):  # the gain smoothing: sequential, vectorised over presets
            fj = f[j]
            g += np.where(fj < g, at, rt) * (fj - g)
            gains[j] = g
        s0 = t0 // seg
        k = m // seg
        yk2 = (yk * yk).reshape(n, k, seg)
        e_in[:, s0:s0 + k] = yk2.sum(axis=2)
        e_out[:, s0:s0 + k] = (yk2 * (gains.T * gains.T).reshape(n, k, seg)).sum(axis=2)
    makeup = 10.0 ** (p["makeup_db"] / 10.0)
    lufs_in = np.asarray(measure.integrated_from_segments(e_in, seg))
    lufs_out = np.asarray(measure.integrated_from_segments(e_out * makeup[:, None], seg))
    lra_in = np.asarray(measure.lra_from_short_term(measure.short_term_from_segments(e_in, seg)))
    lra_out = np.asarray(measure.lra_from_short_term(
        measure.short_term_from_segments(e_out, seg)))
    with np.errstate(divide="ignore", invalid="ignore"):
        gr = 10.0 * np.log10(e_in / e_out)
        loud = 10.0 * np.log10(e_in)
    active = loud >= np.max(loud, axis=1, keepdims=True) - ACTIVE_RANGE_DB
    gr_med = np.array([np.median(gr[i, active[i]]) for i in range(n)])
    gr_95 = np.array([np.percentile(gr[i, active[i]], 95) for i in range(n)])
    return {
        "eq_loudness_change_db": lufs_in - INPUT_LOUDNESS_LUFS,
        "threshold_re_loudness_db": p["comp_threshold_db"] - lufs_in,
        "gr_median_db": gr_med,
        "gr_p95_db": gr_95,
        "lra_in_lu": lra_in,
        "lra_out_lu": lra_out,
        "loudness_change_db": lufs_out - INPUT_LOUDNESS_LUFS,
    }


def reference_vocal_summary(chains: Mapping[str, Chains], path: str | Path) -> dict:
    """:func:`compressor_on_vocal` on the vocal at ``path``, summarised per set and pooled."""
    from vocalmix.core.audio import read_audio

    a = read_audio(path)
    x = a.samples.mean(axis=1)
    out: dict = {"vocal": Path(path).name}
    parts = dict(chains)
    per: dict[str, dict[str, np.ndarray]] = {k: compressor_on_vocal(c, x, a.sample_rate)
                                             for k, c in parts.items()}
    per["pooled"] = {k: np.concatenate([v[k] for v in per.values()])
                     for k in next(iter(per.values()))}
    for name, r in per.items():
        out[name] = {k: describe(v) for k, v in r.items()}
        out[name]["lra_change_lu"] = describe(r["lra_out_lu"] - r["lra_in_lu"])
    return out


# --- delay times against the songs' tempo (report) ---------------------------------------


def delay_tempo_rows(chains: Chains, musdb_folder: str | Path) -> list[dict]:
    """For MedleyDB presets whose song is among the MUSDB18 excerpts in ``musdb_folder``
    (``<Artist> - <Title>.stem.mp4``): the excerpt's tempo (vocalmix's estimator) and the
    delay time in beats."""
    from vocalmix.estimators.tempo import estimate_tempo
    from vocalmix.training.data import load_stem_mp4

    folder = Path(musdb_folder)

    def key(s: str) -> str:
        return "".join(c for c in s.lower() if c.isalnum())

    files = {key(f.name[: -len(".stem.mp4")]): f for f in sorted(folder.glob("*.stem.mp4"))}
    rows = []
    tempo: dict[str, float] = {}
    for i, label in enumerate(chains.labels):
        song = key(label.split("_STEM")[0])
        if song not in files:
            continue
        if song not in tempo:
            voc, back, sr = load_stem_mp4(files[song])
            tempo[song] = float(estimate_tempo(voc + back, sr))
        bpm = tempo[song]
        d = float(chains.params["delay_time_ms"][i])
        rows.append({"preset": label, "song": files[song].name[: -len(".stem.mp4")],
                     "tempo_bpm": _r(bpm), "delay_time_ms": _r(d),
                     "delay_beats": _r(d * bpm / 60000.0),
                     "delay_energy_db": _r(float(chains.params["delay_energy_db"][i]))})
    return rows


# --- report -------------------------------------------------------------------------------


def _row(name: str, st: Mapping[str, float | None], nd: int = 1) -> str:
    cells = " | ".join("" if st.get(f"p{q}") is None else f"{st[f'p{q}']:.{nd}f}"
                       for q in PERCENTILES)
    return f"| {name} | {cells} |"


def _table(title: str, rows: list[str]) -> list[str]:
    head = " | ".join(f"p{q}" for q in PERCENTILES)
    return [f"| {title} | {head} |", "|---" * (len(PERCENTILES) + 1) + "|", *rows, ""]


#: note values (in beats) a tempo-synced delay would use, and the match tolerance
NOTE_BEATS = (0.25, 1.0 / 3.0, 0.5, 2.0 / 3.0, 0.75, 1.0, 1.5, 2.0)
NOTE_TOLERANCE = 0.03


def _near_note(beats: float) -> bool:
    return any(abs(beats / b - 1.0) <= NOTE_TOLERANCE for b in NOTE_BEATS)


def _note_chance() -> float:
    """Share of a log-uniform range of delay/beat ratios within tolerance of a note value."""
    r = np.geomspace(NOTE_BEATS[0], NOTE_BEATS[-1], 200001)
    return float(np.mean([_near_note(float(v)) for v in r[::50]]))


def report_markdown(prior: Mapping, extras: Mapping | None = None) -> str:
    """The markdown summary of a prior (and of the reference-vocal and tempo extras)."""
    extras = extras or {}
    sets = prior["sets"]
    names = [n for n in sets if n != "pooled"] + ["pooled"]
    L: list[str] = [
        "# Engineers' vocal chains (DiffVox presets) as priors",
        "",
        "What real engineers did to lead vocals, read from the DiffVox preset sets "
        f"({prior['source']['paper']}; {prior['source']['repository']}): one fixed chain "
        "(two peak EQs, low and high shelf, low- and high-pass, compressor/expander, a "
        "ping-pong delay send and an FDN reverb send) fitted to each raw/processed vocal "
        "pair. "
        + ", ".join(f"{n}: {sets[n]['n']} presets" for n in names)
        + ". Every raw value is converted to physical units by "
        "`vocalmix.training.diffvox` with the formulas of DiffVox's `modules/fx.py` and "
        "`modules/functional.py` and torchcomp (cited per formula in that module's doc); "
        "`tests/test_diffvox.py` checks conversions against hand-computed values.",
        "",
        "Levels are relative to the dry vocal normalised to **-18 LUFS** (DiffVox normalised "
        "both the dry and the processed vocal to -18 LUFS before fitting). Percentiles "
        "p5/p25/p50/p75/p95 over presets. The prior "
        "(`src/vocalmix/assets/diffvox_prior.json`) holds these for every parameter, per "
        "set and pooled, with the EQ curves' covariance and principal components.",
        "",
        "Regenerate: `" + str(prior.get("command", "")) + "`",
        "",
        "## EQ",
        "",
        "![EQ curves](diffvox_eq.png)",
        "",
    ]
    f = prior["freqs_hz"]
    pick = [0, 3, 6, 9, 12, 15, 18, 20]  # 99 Hz, then every octave to 6.35 kHz, 10 kHz
    L += ["Median EQ curve (dB) and its spread, the six biquads together:", "",
          "| set | " + " | ".join(f"{f[i]:.0f} Hz" for i in pick) + " |",
          "|---" * (len(pick) + 1) + "|"]
    for n in names:
        e = sets[n]["eq_curve"]
        L.append(f"| {n} median | " + " | ".join(f"{e['percentiles_db']['p50'][i]:+.1f}"
                                                 for i in pick) + " |")
        L.append(f"| {n} sd | " + " | ".join(f"{e['sd_db'][i]:.1f}" for i in pick) + " |")
    L.append("")
    ps = sets["pooled"]["parameters"]
    L += _table("pooled EQ parameter", [
        _row(k, ps[k], 2 if k.endswith("_q") else (0 if k.endswith("_hz") else 1))
        for k in PARAMETERS if k.startswith("eq_")])
    pc = sets["pooled"]["eq_shape"]
    L += ["EQ shape (each curve less its broadband gain), pooled: the first components "
          "explain " + ", ".join(f"{100 * v:.0f} %" for v in pc["component_variance_fraction"])
          + " of the variance (sd " + ", ".join(f"{v:.1f}" for v in pc["component_sd_db"])
          + " dB along each unit-length component).", ""]
    L += ["## Compressor", ""]
    for n in names:
        pr = sets[n]["parameters"]
        L += _table(f"{n}", [_row(k, pr[k], 2 if k in ("comp_ratio", "exp_ratio",
                                                        "detector_ms", "lookahead_ms") else 1)
                             for k in ("comp_threshold_db", "comp_ratio", "attack_ms",
                                       "release_ms", "detector_ms", "makeup_db",
                                       "exp_threshold_db", "exp_ratio", "lookahead_ms")])
    L += ["The threshold is in dBFS of the detector: a one-pole average of the squared "
          "EQ'd vocal over mostly under a millisecond (`detector_ms`), so close to the "
          "instantaneous power: it compares with the vocal's peaks more than with its "
          "loudness. Attack and release smooth the gain, not the level, and are 2.2 time "
          "constants each (torchcomp's convention; pedalboard/JUCE's compressor uses "
          "2 pi time constants on the level envelope, so equal numbers are not equal "
          "behaviour).", ""]
    ref = extras.get("reference_vocal")
    if ref:
        L += [f"### On a real dry vocal ({ref['vocal']})", "",
              "Each preset's EQ and compressor run on one dry solo vocal normalised to "
              "-18 LUFS (`compressor_on_vocal`): gain reduction over the sung 100 ms "
              "segments, loudness range before/after (EBU Tech 3342). "
              "`threshold_re_loudness_db` is the threshold relative to the EQ'd vocal's "
              "integrated loudness; `loudness_change_db` is the compressed vocal after "
              "make-up relative to the -18 LUFS input (mono; the processed stereo vocal "
              "reaches -18 LUFS again through the pan, which adds 3 dB in BS.1770, and the "
              "sends).", ""]
        for n in names:
            r = ref[n]
            L += _table(n, [_row(k, r[k]) for k in
                            ("gr_median_db", "gr_p95_db", "threshold_re_loudness_db",
                             "eq_loudness_change_db", "lra_in_lu", "lra_out_lu",
                             "lra_change_lu", "loudness_change_db")])
    L += ["## Delay", "", "![effects](diffvox_fx.png)", "",
          "(Histograms: share of each set's presets per bin, 1st-99th percentile of both sets "
          "shown, values beyond in the end bins.)", ""]
    for n in names:
        du = sets[n]["delay_used"]
        L += [f"**{n}**: {100 * (du['fraction'] or 0):.0f} % of the presets have a delay whose "
              f"echoes carry at least {AUDIBLE_DELAY_DB:.0f} dB of the direct sound's energy "
              "(at 1 kHz). Among them:", ""]
        if du["n"]:
            L += _table(n, [_row(k, du[k], 2 if k == "delay_feedback" else 0 if
                                 k.endswith("_hz") else 1)
                            for k in ("delay_time_ms", "delay_level_db", "delay_energy_db",
                                      "delay_feedback", "delay_lowpass_freq_hz",
                                      "delay_odd_pan", "delay_even_pan")])
    at_all = ", ".join(
        f"{n} {100 * (sets[n]['parameters']['delay_time_ms']['at_start'] or 0):.0f} %"
        for n in names)
    at_used = ", ".join(
        f"{n} {100 * (sets[n]['delay_used'].get('delay_time_ms', {}).get('at_start') or 0):.0f} %"
        for n in names)
    L += ["Every fit started at 400 ms and -20 dB; the share of delay times still within 1 % "
          f"of 400 ms: {at_all} (all presets), {at_used} (used delays).", ""]
    tempo = extras.get("delay_tempo")
    if tempo:
        L += ["### Tempo-synced?", "",
              "MedleyDB presets whose song is among the 7 s MUSDB18 excerpts: tempo from "
              "vocalmix's estimator on the excerpt, delay time in beats (0.75 = dotted "
              "eighth, 0.667 = quarter triplet, 0.5 = eighth).", "",
              "| preset | tempo (BPM) | delay (ms) | beats | echo energy (dB) |",
              "|---|---|---|---|---|"]
        for t in tempo:
            L.append(f"| {t['preset']} | {t['tempo_bpm']:.1f} | {t['delay_time_ms']:.1f} | "
                     f"{t['delay_beats']:.3f} | {t['delay_energy_db']:.1f} |")
        used = [t for t in tempo if t["delay_energy_db"] >= AUDIBLE_DELAY_DB]
        hits = [t for t in used if _near_note(t["delay_beats"])]
        start = [t for t in used if abs(t["delay_time_ms"] / FIT_START["delay_time_ms"] - 1)
                 < 0.03]
        L += ["", f"Of the {len(used)} delays here at or above {AUDIBLE_DELAY_DB:.0f} dB, "
              f"{len(hits)} lie within {100 * NOTE_TOLERANCE:.0f} % of a note value ("
              + ", ".join(f"{b:.3g}" for b in NOTE_BEATS) + " beats), where a delay time "
              f"unrelated to the tempo would land {100 * _note_chance():.0f} % of the time "
              f"(log-uniform between {NOTE_BEATS[0]:g} and {NOTE_BEATS[-1]:g} beats), and "
              f"{len(start)} are within 3 % of the fits' 400 ms start.", ""]
    L += ["## Reverb", ""]
    for n in names:
        ru = sets[n]["reverb_used"]
        L += [f"**{n}**: {100 * (ru['fraction'] or 0):.0f} % of the presets have a reverb at "
              f"least {AUDIBLE_REVERB_DB:.0f} dB below the direct sound (500 Hz-2 kHz). "
              "Among them:", ""]
        if ru["n"]:
            L += _table(n, [_row(k, ru[k], 2 if "t60" in k else 1) for k in
                            ("reverb_t60_s", "reverb_level_db",
                             *(f"reverb_level_db_{int(b)}hz" for b in REVERB_BANDS_HZ))]
                        + [_row(f"T60 ratio {b} Hz / 1 kHz", ru["band_decay_ratios"][b], 2)
                           for b in ru["band_decay_ratios"] if b != "1000"])
    L += ["The reverb level is the energy of the reverb's response (stereo, its tone EQ "
          "included) relative to the direct sound's, per octave band, for a flat input; the "
          "reverb's onset is the shortest FDN line, 22.6 ms. T60 comes straight from the "
          f"FDN's decay parameters (at most {FDN_MAX_T60_S:.0f} s).", ""]
    L += ["## Still where the fits started", "",
          "Share of presets still where every fit started (`at_start` in the prior), "
          "pooled, where above 5 %; either the audio did not pin the value down or the "
          "start was right (a centred pan): "
          + ", ".join(f"`{k}` {100 * v['at_start']:.0f} %" for k, v in ps.items()
                      if (v.get("at_start") or 0) > 0.05) + ".", ""]
    return "\n".join(L)


def _plots(chains: Mapping[str, Chains]) -> tuple[bytes, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vocalmix.training.figures import png_bytes

    colors = {"medleydb": "tab:blue", "internal": "tab:orange", "pooled": "k"}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for name, ch in chains.items():
        c = eq_curve_db(ch)
        q = np.percentile(c, [5, 25, 50, 75, 95], axis=0)
        col = colors.get(name, "k")
        a1.fill_between(EQ_GRID_HZ, q[0], q[4], color=col, alpha=0.10)
        a1.fill_between(EQ_GRID_HZ, q[1], q[3], color=col, alpha=0.25)
        a1.plot(EQ_GRID_HZ, q[2], color=col, lw=2, label=f"{name} (n={len(ch)}): median, "
                                                          "25-75 %, 5-95 %")
    a1.axhline(0, color="k", lw=0.6)
    a1.set(xscale="log", xlabel="Hz", ylabel="dB", ylim=(-24, 18),
           title="Engineers' EQ curves (six fitted biquads)")
    a1.legend(fontsize=8, loc="lower center")
    pooled = concat("pooled", list(chains.values()))
    shape = eq_curve_db(pooled) - pooled.params["eq_broadband_gain_db"][:, None]
    comps, sd, frac = _components(np.cov(shape, rowvar=False), 3)
    for k in range(3):
        a2.plot(EQ_GRID_HZ, sd[k] * comps[k], lw=2,
                label=f"component {k + 1}: {100 * frac[k]:.0f} % of variance")
    a2.axhline(0, color="k", lw=0.6)
    a2.set(xscale="log", xlabel="Hz", ylabel="dB (1 sd)",
           title="EQ shape (less broadband gain), pooled: principal components")
    a2.legend(fontsize=8)
    fig.tight_layout()
    eq_png = png_bytes(fig, 100)

    fig, ax = plt.subplots(2, 3, figsize=(13, 7))
    panels = [
        ("comp_ratio", "compressor ratio", True, None),
        ("attack_ms", "attack (ms, 2.2 time constants)", True, None),
        ("release_ms", "release (ms, 2.2 time constants)", True, None),
        ("delay_time_ms", f"delay time (ms), delays >= {AUDIBLE_DELAY_DB:.0f} dB",
         False, ("delay_energy_db", AUDIBLE_DELAY_DB)),
        ("reverb_t60_s", f"reverb T60 500 Hz-1 kHz (s), reverbs >= {AUDIBLE_REVERB_DB:.0f} dB",
         False, ("reverb_level_db", AUDIBLE_REVERB_DB)),
        ("reverb_level_db", "reverb energy re direct, 500 Hz-2 kHz (dB)", False, None),
    ]
    for a, (key, title, log, cond) in zip(ax.ravel(), panels, strict=True):
        vals = []
        for name, ch in chains.items():
            v = ch.params[key]
            if cond is not None:
                v = v[ch.params[cond[0]] >= cond[1]]
            vals.append((name, v[np.isfinite(v)]))
        allv = np.concatenate([v for _, v in vals])
        lo, hi = np.percentile(allv, [1, 99])
        bins = np.geomspace(max(lo, 1e-3), hi, 30) if log else np.linspace(lo, hi, 30)
        for name, v in vals:
            a.hist(np.clip(v, bins[0], bins[-1]), bins=bins, alpha=0.5,
                   color=colors.get(name, "k"), weights=np.full(v.size, 1.0 / max(v.size, 1)),
                   label=f"{name} ({v.size})")
        a.set(title=title, xscale="log" if log else "linear", ylabel="share of presets")
        if log:
            marks = (1, 2, 3, 5, 10, 20) if key == "comp_ratio" else \
                (0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3000)
            ticks = [t for t in marks if bins[0] <= t <= bins[-1]]
            a.set_xticks(ticks, [f"{t:g}" for t in ticks])
            a.minorticks_off()
        a.legend(fontsize=8)
    fig.tight_layout()
    return eq_png, png_bytes(fig, 90)


def write_report(folder: str | Path, prior: Mapping, chains: Mapping[str, Chains], *,
                 extras: Mapping | None = None, force: bool = False) -> list[Path]:
    """Write ``diffvox.md`` and (with matplotlib) ``diffvox_eq.png`` and ``diffvox_fx.png``
    into ``folder``, atomically."""
    from vocalmix.core.audio import _atomic_path, check_outputs, write_text

    d = Path(folder)
    out = [write_text(d / "diffvox.md", report_markdown(prior, extras) + "\n", force=force)]
    try:
        pngs = _plots(chains)
    except ImportError:
        return out
    for name, data in zip(("diffvox_eq.png", "diffvox_fx.png"), pngs, strict=True):
        path = d / name
        check_outputs([path], force=force)
        with _atomic_path(path, ".png") as tmp, open(tmp, "wb") as fh:
            fh.write(data)
        out.append(path)
    return out


# --- command line -------------------------------------------------------------------------

COMMAND = ("python -m vocalmix.training.diffvox --prior src/vocalmix/assets/diffvox_prior.json "
           "--report docs/evaluation --force")


def write_prior(path: str | Path, prior: Mapping, *, force: bool = False) -> Path:
    """Write the prior JSON atomically."""
    from vocalmix.core.audio import write_text

    return write_text(path, dumps(prior) + "\n", force=force)


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix diffvox-prior`` (for the command line's subcommand table)."""
    p = sub.add_parser("diffvox-prior", help="summarise the DiffVox vocal-chain presets as "
                                             "priors (JSON) and a report")
    _arguments(p)
    p.set_defaults(func=_cmd)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None,
                   help="the DiffVox folder, or a data root holding vocal_fx_presets/diffvox "
                        "(default: $VOCALMIX_DATA)")
    p.add_argument("--prior", default=None, help="prior JSON to write")
    p.add_argument("--report", default=None,
                   help="folder for diffvox.md, diffvox_eq.png and diffvox_fx.png")
    p.add_argument("--reference-vocal", default=None,
                   help="with --report: a dry vocal to run every preset's compressor on "
                        "(default: dry_vocals/vocadito_1_CC-BY4.wav under the data root)")
    p.add_argument("--musdb", default=None,
                   help="with --report: MUSDB18 .stem.mp4 excerpts for the delay-tempo check "
                        "(default: musdb18-7s/train under the data root)")
    p.add_argument("--force", action="store_true", help="replace existing outputs")


def _cmd(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import check_outputs
    from vocalmix.core.errors import ParamsError
    from vocalmix.training.data import data_root

    if not args.prior and not args.report:
        raise ParamsError("nothing to write: give a prior path, a report folder or both")
    outs = ([args.prior] if args.prior else []) + (
        [Path(args.report) / n for n in ("diffvox.md", "diffvox_eq.png", "diffvox_fx.png")]
        if args.report else [])
    check_outputs(outs, force=args.force)
    chains = load_chains(args.data)
    prior = build_prior(chains, command=COMMAND)
    if args.prior:
        write_prior(args.prior, prior, force=args.force)
        print(f"wrote {args.prior}", file=sys.stderr)
    if args.report:
        root = data_root() if args.data is None else Path(args.data)
        extras: dict = {}
        ref = Path(args.reference_vocal) if args.reference_vocal else \
            root / "dry_vocals" / "vocadito_1_CC-BY4.wav"
        if ref.exists():
            extras["reference_vocal"] = reference_vocal_summary(chains, ref)
        musdb = Path(args.musdb) if args.musdb else root / "musdb18-7s" / "train"
        if musdb.exists():
            extras["delay_tempo"] = delay_tempo_rows(chains["medleydb"], musdb)
        for p in write_report(args.report, prior, chains, extras=extras, force=args.force):
            print(f"wrote {p}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vocalmix.training.diffvox``: write the prior and/or the report."""
    from vocalmix.core.errors import VocalmixError

    parser = argparse.ArgumentParser(prog="python -m vocalmix.training.diffvox",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    _arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _cmd(args)
    except VocalmixError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
