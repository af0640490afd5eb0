"""Fit the ``synthetic`` reverb to measured or rendered impulse responses.

``vocalmix fit-reverb IR.wav [...] -o presets.json [--report DIR]``
``vocalmix fit-reverb --library -o presets.json --report DIR``

What is fitted
    The vocal chain's reverb send for a unit impulse: the dry impulse plus the
    ``synthetic`` reverb's wet IR (:func:`vocalmix.core.reverb.render_synthetic_ir`, width 1)
    delayed by ``pre_delay_ms`` and scaled by ``wet_level_db``
    (:func:`render_send_ir`, the same operations as :func:`vocalmix.core.render.reverb_wet`).
    Its free parameters are ``decay_s`` (T30 at 1 kHz), the six non-reference
    ``band_decay_ratios`` (125, 250, 500, 2000, 4000, 8000 Hz), ``wet_level_db``
    (-40 dB to the params' maximum, +12 dB: a room wetter than that is fitted at the
    maximum and its C50 comes out higher than the target's) and ``pre_delay_ms``
    (0 to 100 ms).

How
    Stage 1, an initial guess measured on the target: each band's decay = its T30 (its
    T20 where the T30 cannot be measured; where neither can, the decay of a
    decay-plus-noise model fitted to the band's envelope,
    :func:`vocalmix.core.reverb.noise_model_decay_s`; a band where that fails too takes
    the nearest measurable band's decay, times its own EDT over that decay), then wet level
    (-30 dB to the maximum in 3 dB steps, plus the level that gives the target's C50 for an
    exponential decay) x pre-delay (0 to 70 ms, 10 values) on a grid, scored on the
    broadband terms below, then refined one at a time (wet +-1.5 dB in 0.5 dB steps,
    pre-delay in 7 steps over half the distance to its grid neighbours).
    Stage 2, ``scipy.optimize.differential_evolution`` (a genetic / evolutionary
    optimiser: mutation 0.5-1, recombination 0.7, ``popsize`` 5 per parameter, 12
    generations, seed 0) over the nine numbers, its population seeded as a cloud around
    that guess (the guess itself included; 4 % in log decay and log ratios, 1.5 dB, 20 %
    of the pre-delay), searching log(decay_s) and log(ratios) within a factor 1.35 of the
    guess (and the params' ratio range, 0.1 to 4) and the full wet and pre-delay ranges.
    Then, on the same decay model, each band's decay scaled by target / fitted T30 where
    they differ by more than 0.5 % (up to 4 times, while the cost falls), and a local
    search (Nelder-Mead, 300 candidates) from there, both free to leave the search box
    within the params' ranges: where a slower neighbouring band leaks into a band, its
    measured T30 is not monotonic in its own decay and the best trade-off between the
    two can lie outside the box around the target's T30.
    Stage 3, the check on the real thing: the result is rendered by the mixing code
    (:func:`render_send_ir`) and measured like the target; where a band's T30 there is
    more than 2 % off the target's, the band decays are scaled by target / rendered T30
    and the send rendered and measured again (at most twice), kept only if the cost
    falls. The reported figures are those of this render.

    The cost compares target and candidate as measured by the same ISO 3382 routine
    (:mod:`vocalmix.core.reverb`: Schroeder integration with noise handling, octave bands by
    zero-phase Butterworth band-passes; :func:`describe`): per octave band 125 Hz-8 kHz,
    T30 (relative error in units of 2 %: the dominant term) and EDT (units of 10 %,
    weight 1/4); broadband EDT (units of 10 %); C50 (units of 1 dB, and beyond 3 dB off
    quadratic in units of 0.4 dB, as a T30 term per just-noticeable difference:
    :data:`C50_FREE_DB`); the broadband energy
    decay curve at 2, 5, 10, 20, 40 and 80 ms after the direct sound (units of 2 dB,
    weight 1/2 in all, where the target's is above -30 dB); and the times by which 2, 10
    and 30 % of the energy after the direct sound has arrived (units of 10 %, at least
    1 ms), which pin the pre-delay. A band whose target T30 cannot be measured is left
    out of the T30 terms.

    Everything is measured at the IR's own rate (the report's figures are too): the
    synthetic reverb's noise differs from rate to rate, and so does the share of its
    energy in the top octave, so this is the preset as it sounds there. An IR above
    :data:`FIT_MAX_RATE` (48 kHz) is resampled to it first, as presets are mixed at 44.1
    or 48 kHz and the candidates' noise up to 48 kHz would otherwise meet an IR that holds
    next to nothing there. The candidates of
    stages 1 and 2 (about 1 200 per IR) are not rendered: :class:`DecayModel` gives their
    energy decay curves per octave band from the synthetic reverb's fixed noise, band
    filtered once per IR, and its closed-form exponential envelopes, summed over cells
    of time that widen with time (about 1.5 ms of CPU per candidate); on the fits of the
    real IRs its T30 agree with the rendered send's within 1 % (0.5 % for 95 % of the
    bands), except at 125 Hz for a 0.1 s decay (4.5 %). A fit takes 1 to 4 s of CPU per
    IR.

What is reported
    Target and fitted figures are those of stage 3, at the IR's own rate, the fitted side
    on the send rendered by the mixing code itself (:func:`render_send_ir`): T30 and EDT
    per octave band 125 Hz-8 kHz, broadband T30 and EDT, C50, and where pyroomacoustics
    is installed its ``experimental.measure_rt60`` broadband T30 (decay_db=30; it is
    given the square root of the energy summed over channels, which is what our routine
    integrates) as a cross-check of our Schroeder routine. ``within_10pct_500_4k``: the
    fitted T30 is within 10 % of the target's in each of the 500 Hz, 1, 2 and 4 kHz bands
    (false where the target's cannot be measured).

Each fitted IR becomes a named preset (:mod:`vocalmix.estimators.presets`; ``vocalmix mix
--reverb-preset NAME``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vocalmix.core.params import (
    BAND_DECAY_RATIO,
    DECAY_BANDS_HZ,
    REVERB_DECAY_RANGE_S,
    Reverb,
    clip,
    spec_of,
)
from vocalmix.core.reverb import clarity_c50_db

SEND_SR = 22050  # render_send_ir's default rate, Hz (the fit runs at each IR's own)
BANDS_HZ: tuple[float, ...] = DECAY_BANDS_HZ
HEADLINE_BANDS_HZ = (500.0, 1000.0, 2000.0, 4000.0)
REF_BAND = 3  # DECAY_BANDS_HZ[3] = 1 kHz, the reference of band_decay_ratios
EDC_TIMES_MS = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
ARRIVAL_FRACTIONS = (0.02, 0.1, 0.3)  # of the energy after the direct sound
DIRECT_MS = 1.0  # the direct sound's extent after the onset, left out of the arrival times
#: the wet levels searched, dB: from a faint send to the params' maximum
WET_DB_BOUNDS = (-40.0, spec_of(Reverb, "wet_level_db").hi)
PRE_DELAY_MS_BOUNDS = (0.0, 100.0)
SEARCH_FACTOR = 1.35  # log(decay) and log(ratio) are searched within x0 / 1.35 .. x0 * 1.35
DECAY_LIMITS_S = REVERB_DECAY_RANGE_S  # params.Reverb.decay_s
RATIO_LIMITS = (BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi)  # params.Reverb.band_decay_ratios
DEFAULTS: dict[str, int] = {"popsize": 5, "maxiter": 12}
DEFAULT_TOL = 0.005
CHECK_T30_TOL = 0.02  # the rendered result's T30 may be off the target's by this much
CHECK_ROUNDS = 2  # corrections of the band decays on the rendered result, at most
MODEL_T30_TOL = 0.005  # the same on the decay model, before rendering
MODEL_POLISH_ROUNDS = 4
LOCAL_EVALS = 300  # the local search's candidates, at most

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# --- measurement ------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptors:
    """ISO 3382 figures of one IR: per octave band T30 and EDT (s); broadband T30 and
    EDT (s); C50 (dB); the broadband EDC (dB) at :data:`EDC_TIMES_MS` after the onset;
    arrival times (ms after the onset) by which :data:`ARRIVAL_FRACTIONS` of the energy
    that follows the direct sound (the first :data:`DIRECT_MS` after the onset) has
    arrived."""

    t30: dict[float, float]
    edt: dict[float, float]
    t30_broadband: float
    edt_broadband: float
    c50_db: float
    edc_db: dict[float, float]
    arrival_ms: dict[float, float]
    #: per octave band T20 (s): measured by :func:`describe`, empty for a candidate
    t20: dict[float, float] = field(default_factory=dict)
    #: per octave band decay (s) of a decay-plus-noise fit to the band's envelope
    #: (:func:`vocalmix.core.reverb.noise_model_decay_s`): measured by :func:`describe`
    #: only in the bands whose T30 and T20 cannot be measured, empty for a candidate
    noise_fit: dict[float, float] = field(default_factory=dict)

    def t20_fallback(self) -> tuple[Descriptors, list[float]]:
        """These figures with each band's T30 that cannot be measured (its decay above
        the noise spans less than the 35 dB T30 needs) replaced by its T20 where that
        can (ISO 3382-1's shorter range, for a noisier IR), and the bands replaced: the
        decays a fit aims at."""
        return self._stand_in(self.t20)

    def decay_fallback(self) -> tuple[Descriptors, list[float], list[float]]:
        """:meth:`t20_fallback`, then each band whose T20 cannot be measured either
        given its decay-plus-noise fit (:attr:`noise_fit`) where that gives one: the
        decays a fit aims at, the bands given their T20 and those given the noise fit."""
        aim, by_t20 = self._stand_in(self.t20)
        aim, by_fit = aim._stand_in(self.noise_fit)
        return aim, by_t20, by_fit

    def _stand_in(self, decays: dict[float, float]) -> tuple[Descriptors, list[float]]:
        """These figures with each T30 that cannot be measured replaced by ``decays``'
        value where that is finite, and the bands replaced."""
        swap = [b for b, v in self.t30.items()
                if not math.isfinite(v) and math.isfinite(decays.get(b, math.nan))]
        if not swap:
            return self, []
        return replace(self, t30={b: decays[b] if b in swap else v
                                  for b, v in self.t30.items()}), swap

    def as_dict(self) -> dict:
        def r(v: float, nd: int = 4) -> float | None:
            return round(float(v), nd) if math.isfinite(v) else None

        out = {"t30_s": {str(int(k)): r(v) for k, v in self.t30.items()},
                "edt_s": {str(int(k)): r(v) for k, v in self.edt.items()},
                "t30_broadband_s": r(self.t30_broadband),
                "edt_broadband_s": r(self.edt_broadband), "c50_db": r(self.c50_db, 3),
                "edc_db": {f"{k:g}": r(v, 3) for k, v in self.edc_db.items()},
                "arrival_ms": {f"{k:g}": r(v, 3) for k, v in self.arrival_ms.items()}}
        if self.t20:
            out["t20_s"] = {str(int(k)): r(v) for k, v in self.t20.items()}
        if self.noise_fit:
            out[NOISE_FIT_KEY] = {str(int(k)): r(v) for k, v in self.noise_fit.items()}
        return out


def _safe(f: Callable[[], float]) -> float:
    try:
        v = float(f())
    except ValueError:  # silent or too short after band filtering, band above Nyquist
        return math.nan
    return v if math.isfinite(v) else math.nan


def _lead_pad(sample_rate: int) -> int:
    """Zeros put before an IR before it is measured: 50 ms. A send's dry impulse sits at
    sample 0, and the octave filters run forward and backward (zero phase), so a filtered
    impulse rings before it; :func:`vocalmix.core.reverb.band_filter` returns the IR's own
    span, which would cut that ringing off and bend the low bands' EDT. Leading silence
    is otherwise ignored by the onset detection."""
    return int(round(0.05 * sample_rate))


def _times(x: np.ndarray, sample_rate: int) -> tuple[float, float, float, np.ndarray]:
    """(T30, EDT, T20, EDC dB) from one Schroeder EDC, computed once for all kinds by
    :mod:`vocalmix.core.reverb` (the tests check they equal :func:`reverberation_time`'s)."""
    from vocalmix.core.reverb import _edc_db, _time_from_edc

    try:
        edc, decays = _edc_db(x, sample_rate)
    except ValueError:
        return math.nan, math.nan, math.nan, np.zeros(0)
    return (_time_from_edc(edc, decays, sample_rate, "T30"),
            _time_from_edc(edc, decays, sample_rate, "EDT"),
            _time_from_edc(edc, decays, sample_rate, "T20"), edc)


def _band(x: np.ndarray, sample_rate: int, band_hz: float) -> np.ndarray:
    """:func:`vocalmix.core.reverb.band_filter` (its filter design is cached there)."""
    from vocalmix.core.reverb import band_filter

    return band_filter(x, sample_rate, band_hz)


def describe(ir: np.ndarray, sample_rate: int, bands: tuple[float, ...] = BANDS_HZ
             ) -> Descriptors:
    """T30/EDT per octave band, broadband T30/EDT, C50 and early EDC points of an IR.

    Measured by :mod:`vocalmix.core.reverb` (``band_filter``'s octave filters, the EDC of
    ``reverberation_time``, ``clarity_c50_db``) after 50 ms of leading silence
    (:func:`_lead_pad`). ``nan`` where a figure cannot be measured.
    """
    x = np.asarray(ir, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    x = np.concatenate([np.zeros((_lead_pad(sample_rate), x.shape[1])), x])
    from functools import partial

    from vocalmix.core.reverb import noise_model_decay_s

    t30, edt, t20, noise_fit = {}, {}, {}, {}
    for b in bands:
        try:
            xb = _band(x, sample_rate, b)
        except ValueError:
            t30[b] = edt[b] = t20[b] = math.nan
            continue
        t30[b], edt[b], t20[b], _ = _times(xb, sample_rate)
        if not (math.isfinite(t30[b]) or math.isfinite(t20[b])):
            v = _safe(partial(noise_model_decay_s, xb, sample_rate))
            # kept where the band's early decay agrees: a band with no decay of its own
            # but a steady floor, or one short click, is not read as a room
            noise_fit[b] = v if 1.0 / NOISE_FIT_EDT_RATIO <= v / edt[b] <= NOISE_FIT_EDT_RATIO \
                else math.nan
    t30_bb, edt_bb, _t20_bb, edc = _times(x, sample_rate)
    pts = {}
    for ms in EDC_TIMES_MS:
        k = int(round(ms * 1e-3 * sample_rate))
        pts[ms] = float(edc[k]) if k < edc.size and np.isfinite(edc[k]) else math.nan
    return Descriptors(t30=t30, edt=edt, t30_broadband=t30_bb, edt_broadband=edt_bb,
                       c50_db=_safe(lambda: clarity_c50_db(x, sample_rate)), edc_db=pts,
                       arrival_ms=_arrival_ms(x, sample_rate), t20=t20,
                       noise_fit=noise_fit)


def _arrival_ms(x: np.ndarray, sample_rate: int) -> dict[float, float]:
    """See :class:`Descriptors` (``nan`` if nothing follows the direct sound)."""
    from vocalmix.core.reverb import onset_index

    try:
        i0 = onset_index(x)
    except ValueError:
        return {f: math.nan for f in ARRIVAL_FRACTIONS}
    skip = max(1, int(round(DIRECT_MS * 1e-3 * sample_rate)))
    e = (x[i0 + skip:] ** 2).sum(axis=1)
    total = float(e.sum())
    if not total > 0:
        return {f: math.nan for f in ARRIVAL_FRACTIONS}
    c = np.cumsum(e) / total
    return {f: 1e3 * (skip + int(np.argmax(c >= f))) / sample_rate for f in ARRIVAL_FRACTIONS}


def pra_t30(ir: np.ndarray, sample_rate: int) -> float | None:
    """Broadband T30 by pyroomacoustics' ``measure_rt60`` (decay_db=30), ``None`` if it is
    not installed. It gets ``sqrt`` of the energy summed over channels (the same squared
    signal our routine integrates)."""
    try:
        from pyroomacoustics.experimental import measure_rt60
    except ImportError:
        return None
    x = np.asarray(ir, np.float64)
    h = np.sqrt((x**2).sum(axis=1)) if x.ndim == 2 else x
    try:
        v = float(measure_rt60(h, fs=sample_rate, decay_db=30))
    except (ValueError, IndexError):
        return math.nan
    return v if math.isfinite(v) else math.nan


# --- rendering the send -----------------------------------------------------------------


def _as_reverb(params: Reverb | dict) -> tuple[Reverb, float]:
    """(the reverb at 0 dB wet, the wet level in dB): a dict may hold a wet level above
    the params' maximum (the fit never proposes one)."""
    if isinstance(params, Reverb):
        return replace(params, wet_level_db=0.0, enabled=True), params.wet_level_db
    d = dict(params)
    wet = float(d.pop("wet_level_db", 0.0))
    kind = d.pop("type", "freeverb" if "room_size" in d else "synthetic")
    if "band_decay_ratios" in d:
        d["band_decay_ratios"] = tuple(d["band_decay_ratios"])
    return Reverb(type=kind, enabled=True, wet_level_db=0.0, **d), wet


def render_send_ir(params: Reverb | dict, sample_rate: int = SEND_SR,
                   length_s: float | None = None) -> np.ndarray:
    """The vocal chain's reverb send for a unit impulse: dry impulse + delayed wet.

    Rendered by :func:`vocalmix.core.render.reverb_wet` (the mixing code) from a
    :class:`~vocalmix.core.params.Reverb` or a dict of its fields (``type`` defaults to
    ``freeverb`` when the dict has ``room_size``, else ``synthetic``).

    Args:
        params: the reverb.
        sample_rate: Hz.
        length_s: default: the synthetic IR's own length (72 dB of decay of its longest
            band) or Freeverb's render length, plus the pre-delay.

    Returns:
        float32 ``(n, 2)``; sample 0 holds the dry impulse.
    """
    from vocalmix.core.render import reverb_wet
    from vocalmix.core.reverb import freeverb_t60_estimate_s

    rv, wet_db = _as_reverb(params)
    if length_s is None:
        if rv.type == "synthetic":
            body = min(36.0, 1.2 * rv.decay_s * max(rv.band_decay_ratios) + 0.05)
        else:
            body = min(30.0, 2.0 * freeverb_t60_estimate_s(rv.room_size) + 0.5)
        length_s = body + rv.pre_delay_ms * 1e-3
    n = max(2, int(round(float(length_s) * sample_rate)))
    x = np.zeros((n, 2), np.float32)
    x[0] = 1.0
    wet = reverb_wet(x, sample_rate, rv)
    return x + wet * np.float32(10.0 ** (wet_db / 20.0))


class SendRenderer:
    """Renders of the synthetic reverb's send at one rate from noise made once: many
    candidates rendered as the mixing code would (the tests hold :class:`DecayModel` to
    these).

    The synthetic wet IR is ``sum_b env_b(t) * noise_b(t)`` per channel, where only the
    envelopes depend on the parameters: the band-filtered noises
    (:func:`vocalmix.core.reverb.synthetic_band_noise`) are computed once for the longest IR
    needed, and every candidate is made from them by the renderer's own
    :func:`vocalmix.core.reverb.synthetic_ir_from_noise`, cut to the synthetic reverb's own
    length (72 dB of decay of its longest band), at width 1.
    """

    def __init__(self, sample_rate: int, max_length_s: float):
        from vocalmix.core.reverb import synthetic_band_noise

        self.sr = int(sample_rate)
        self.n_max = max(2, int(round(max_length_s * self.sr)))
        self.noise = synthetic_band_noise(self.sr, self.n_max)

    def wet(self, band_decays_s: np.ndarray) -> np.ndarray:
        """Wet IR ``(n, 2)`` float32 for the per-band decays (s), width 1, energy 1."""
        from vocalmix.core.reverb import synthetic_ir_from_noise

        d = np.asarray(band_decays_s, np.float64)
        n = min(self.n_max, max(2, int(round((1.2 * d.max() + 0.05) * self.sr))))
        return synthetic_ir_from_noise(self.noise, d, 1.0, self.sr, n)

    def send(self, band_decays_s: np.ndarray, wet_level_db: float,
             pre_delay_ms: float) -> np.ndarray:
        """Dry unit impulse + the wet IR delayed by ``pre_delay_ms`` at ``wet_level_db``."""
        h = self.wet(band_decays_s)
        k = int(round(pre_delay_ms * 1e-3 * self.sr))
        out = np.zeros((h.shape[0] + k, 2), np.float32)
        out[0] = 1.0
        out[k:] += h * np.float32(10.0 ** (wet_level_db / 20.0))
        return out


# --- the decay model: the optimiser's fast stand-in for render + describe -----------------

#: Layout of the model's time grid (see :class:`DecayModel`).
MODEL_FINE_MS = 10.0  # fine cells from this long before the dry impulse; also the wet's
#                       zero-phase pre-ringing kept before the wet starts
MODEL_EARLY_MS = 10.0  # fine cells over the wet's first 10 ms
MODEL_DRY_TAIL_MS = 150.0  # the band-filtered dry impulse is followed this long
MODEL_FULL_MS = 2.0  # one cell per sample within 2 ms of the dry impulse
MODEL_COARSE = 4  # samples per cell elsewhere in the early part
MODEL_LEAD_COARSE = 16  # samples per cell in the leading silence (the dry's pre-ringing)
MODEL_CELLS_PER_DECAY = 400  # late cells per shortest band decay searched
MODEL_LATE_RESOLUTION = 200  # late cells are at most 1/200 of their time after the wet's start
_LN10 = math.log(10.0)


def model_block(sample_rate: int, shortest_decay_s: float) -> int:
    """Samples per late cell of :class:`DecayModel`: the shortest band decay the search can
    propose over :data:`MODEL_CELLS_PER_DECAY` (at least 16, at most 1024 samples)."""
    return int(np.clip(round(shortest_decay_s * sample_rate / MODEL_CELLS_PER_DECAY), 16, 1024))


class DecayModel:
    """Energy envelopes of the synthetic reverb's send, per octave band, without rendering.

    The send measured by :func:`describe` is ``x_c(s) = dry(s) + g / sqrt(N_c) * sum_b
    env_b(s - k) n_cb(s - k)`` per channel ``c``: the unit impulse, then from the
    pre-delay ``k`` on the wet IR, the fixed noise bands ``n_cb``
    (:func:`vocalmix.core.reverb.synthetic_band_noise`) under exponential envelopes
    ``env_b(t) = 10^(-3 t / T_b)``, normalised to energy ``N_c`` and scaled to the wet level
    ``g``. An octave band filter ``h`` (zero phase, :func:`vocalmix.core.reverb.band_filter`)
    of it is taken as ``h * dry + g / sqrt(N_c) * sum_b env_b (h * n_cb)``: the envelope
    moved out of the filter. For an exponential that is exact up to the filter's own
    length at the wet's start, except that each noise band's contribution is scaled by a
    constant (its decay is unchanged). ``h * n_cb``, the band-filtered noise bands, are
    computed once per model (for each octave only its own and its two neighbours' noise
    bands: the others are 67 dB down or more), and the sums of their squares and pairwise
    products over cells of time once too, so a candidate's energy in each band and cell
    is a weighted sum of those (the weights: products of two envelopes at the cell's
    middle): no render, no filtering, no FFT per candidate.

    Time grid, from the dry impulse: cells of :data:`MODEL_LEAD_COARSE` samples over the
    50 ms of leading silence :func:`describe` puts before an IR (the dry impulse's filter
    rings before it), one cell per sample within :data:`MODEL_FULL_MS` of the impulse,
    cells of :data:`MODEL_COARSE` samples elsewhere up to :data:`MODEL_EARLY_MS` after the
    wet's start (where dry and wet overlap, their interference included), then cells of
    ``block`` samples widening with time (to 1/:data:`MODEL_LATE_RESOLUTION` of the time
    since the wet's start) to the send's end, holding the wet's energy plus the dry's.

    :meth:`describe` measures these energies as :func:`describe` measures an IR (onset
    20 dB below the peak, Schroeder integral from the onset, T30 and EDT by least squares,
    C50, early EDC, arrival times), except that the noise-floor detection is left out:
    the synthetic reverb has no noise floor, and its send ends where the slowest band is
    72 dB down. On the fits of the 80 real IRs its T30 agree with :func:`describe` of the
    rendered send within 1 % (within 0.5 % for 95 % of the bands), except at 125 Hz for
    the one fitted with a 0.1 s decay (4.5 %: moving the envelope out of the filter is
    least exact for short decays in low bands); its EDT agree within 0.4 % in the median,
    20 % at worst (where the EDC falls 10 dB within the dry impulse's filter ringing).
    The tests check a set of candidates.
    """

    def __init__(self, sample_rate: int, max_length_s: float, block: int):
        from scipy.fft import irfft, next_fast_len, rfft

        from vocalmix.core.reverb import _SYNTH_SEEDS, synthetic_band_weights, vocal_weights

        sr = self.sr = int(sample_rate)
        self.n_max = n_max = max(2, int(round(max_length_s * sr)))
        self.lead = _lead_pad(sr)
        self.fine = f = int(round(MODEL_FINE_MS * 1e-3 * sr))
        self.early = e = int(round(MODEL_EARLY_MS * 1e-3 * sr))
        self.full = min(f, int(round(MODEL_FULL_MS * 1e-3 * sr)))
        self.block = b = int(block)
        # late cells from the wet's start + e: b samples wide, widening with time to
        # 1/MODEL_LATE_RESOLUTION of it (a band's T30 range, -5 to -35 dB, ends at 0.58 x
        # its decay, so every band keeps a few hundred cells there)
        edges = [e]
        while edges[-1] < n_max:
            edges.append(edges[-1] + max(b, int(edges[-1] / MODEL_LATE_RESOLUTION)))
        lo = np.asarray(edges[:-1])
        hi = np.minimum(np.asarray(edges[1:]), n_max)
        keep = hi > lo
        self.cell_lo, self.cell_w = lo[keep], (hi - lo)[keep]
        self.cell_mid = self.cell_lo + 0.5 * self.cell_w
        self.cell_end = self.cell_lo + self.cell_w
        j = self.cell_lo.size
        nbands = len(BANDS_HZ)
        # the noise as the renderer makes it, band-split on one FFT grid long enough for
        # the filters' ringing on both sides not to wrap around
        nfft = next_fast_len(n_max + f + int(round(0.1 * sr)), real=True)
        freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
        weights = synthetic_band_weights(freqs, BANDS_HZ)
        # the wet IR is normalised to a vocal-weighted energy of 1
        # (:func:`vocalmix.core.reverb.vocal_weighted_energy`): the energy of the noise
        # bands through a filter whose power response is the reference vocal's density
        # over its mean, the envelope moved out of that filter as out of the band filters
        vw = vocal_weights(freqs)
        vgain = np.sqrt(vw / vw.mean()).astype(np.float32)
        spec = np.stack([rfft(np.random.default_rng(s).standard_normal(n_max), nfft)
                         for s in _SYNTH_SEEDS])  # (2, nfft // 2 + 1)
        # rows: 0 broadband, 1.. octave bands; slots: a band's noise neighbours b-1, b, b+1
        self.valid = np.ones(1 + nbands, bool)
        self.slots = np.array([[min(max(k + s, 0), nbands - 1) for s in (-1, 0, 1)]
                               for k in range(nbands)])
        self.pi, self.pj = np.triu_indices(3)
        self.bi, self.bj = np.triu_indices(nbands)
        self.wet_early_bb = np.zeros((2, nbands, f + e))
        self.wet_early = np.zeros((nbands, 2, 3, f + e))
        self.late = np.zeros((nbands, 2, self.pi.size, j))
        nd = self.lead + int(round((PRE_DELAY_MS_BOUNDS[1] + MODEL_DRY_TAIL_MS) * 1e-3 * sr)) + e
        self.dry = np.zeros((1 + nbands, nd))  # from -lead on
        self.dry[0, self.lead] = 1.0

        def cell_products(x: np.ndarray, i: np.ndarray, k: np.ndarray) -> np.ndarray:
            """Late cells' sums of ``x[..., i, :] * x[..., k, :]`` (twice off the diagonal)."""
            y = x[..., e:n_max]
            at = self.cell_lo - e
            out = np.empty((*x.shape[:-2], i.size, j))
            for p, (ip, kp) in enumerate(zip(i, k, strict=True)):
                prod = y[..., ip, :] * y[..., kp, :]
                out[..., p, :] = np.add.reduceat(prod, at, axis=-1, dtype=np.float64) \
                    * (1.0 if ip == kp else 2.0)
            return out

        # single precision for the FFTs and products (summed in double precision): twice
        # as fast, and far below what the figures can resolve
        spec = spec.astype(np.complex64)
        wts = weights.astype(np.float32)
        raw = irfft(spec[:, None, :] * wts[None], nfft, axis=-1)[..., :n_max]  # (2, 7, n)
        self.wet_early_bb[..., f:] = raw[..., :e]
        self.late_bb = cell_products(raw, self.bi, self.bj)
        # the same through the vocal weighting, and the two noises' cross products there
        # band pair by band pair (both orders summed): the renderer mixes the noises into
        # its channels before normalising each channel
        del raw
        vraw = irfft(spec[:, None, :] * (wts * vgain)[None], nfft, axis=-1)[..., :n_max]
        self.vw_early = vraw[..., :e].astype(np.float64)  # (2, 7, e)
        self.vw_late = cell_products(vraw, self.bi, self.bj)  # (2, pairs, cells)
        y0, y1 = vraw[0, :, e:n_max], vraw[1, :, e:n_max]
        self.vw_late_x = np.empty((self.bi.size, j))
        for p, (ip, kp) in enumerate(zip(self.bi, self.bj, strict=True)):
            prod = y0[ip] * y1[kp] + (y0[kp] * y1[ip] if ip != kp else 0.0)
            self.vw_late_x[p] = np.add.reduceat(prod, self.cell_lo - e, dtype=np.float64)
        del vraw
        for k, fc in enumerate(BANDS_HZ):
            try:
                gain = _zero_phase_gain(sr, fc, nfft)
            except ValueError:  # above Nyquist
                self.valid[1 + k] = False
                continue
            ker = irfft(gain, nfft)
            self.dry[1 + k] = np.concatenate([ker[nfft - self.lead:], ker[:nd - self.lead]])
            g = np.zeros((2, 3, f + n_max), np.float32)
            for s in range(3):
                if 0 <= k - 1 + s < nbands:
                    y = irfft(spec * (wts[k - 1 + s] * gain.astype(np.float32)), nfft, axis=-1)
                    g[:, s, :f] = y[:, nfft - f:]
                    g[:, s, f:] = y[:, :n_max]
            self.wet_early[k] = g[..., :f + e]
            self.late[k] = cell_products(g[..., f:], self.pi, self.pj)
        d2 = 2.0 * self.dry**2  # both channels carry the dry impulse
        self.dry2 = d2
        self.dry2cum = np.concatenate([np.zeros((d2.shape[0], 1)), np.cumsum(d2, axis=1)], 1)
        # the leading coarse cells: sums and per-sample maxima of the dry's pre-ringing
        na = (self.lead - f) // MODEL_LEAD_COARSE
        start = self.lead - f - na * MODEL_LEAD_COARSE  # index into dry
        lead = d2[:, start:self.lead - f].reshape(d2.shape[0], na, MODEL_LEAD_COARSE)
        self.lead_sum, self.lead_max = lead.sum(axis=2), lead.max(axis=2)

    def energies(self, band_decays_s: np.ndarray, wet_level_db: float, pre_delay_ms: float,
                 bands: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The send's energy (summed over channels) per cell.

        Returns:
            ``(energy (rows, cells), widths (cells,) in samples, peak (rows, cells):
            the largest per-sample energy within each cell where known, else the mean,
            index of the cell holding the dry impulse)``; row 0 is broadband, rows 1 to 7
            the octave bands of :data:`BANDS_HZ` (all zero where a band is above Nyquist);
            with ``bands=False`` only row 0.
        """
        sr, f, e = self.sr, self.fine, self.early
        d = np.asarray(band_decays_s, np.float64)
        a = 3.0 * _LN10 / (d * sr)  # amplitude decay per sample
        n = min(self.n_max, max(2, int(round((1.2 * float(d.max()) + 0.05) * sr))))
        kp = int(round(pre_delay_ms * 1e-3 * sr))
        g = 10.0 ** (wet_level_db / 20.0)
        jn = int(np.searchsorted(self.cell_end, n, side="right"))
        u = np.arange(-f, e)
        env = np.exp(-a[:, None] * np.maximum(u, 0)[None, :])  # (7, f + e)
        u0, uw = self.cell_lo[:jn], self.cell_w[:jn]
        # env_i * env_k averaged over a cell: its value at the cell's middle (the cells are
        # short against every decay that still matters there: within 0.05 %)
        ecell = np.exp(-a[:, None] * self.cell_mid[None, :jn])  # (7, jn)

        def cell_mean(i: np.ndarray, k: np.ndarray, slots=None) -> np.ndarray:
            """Each late cell's mean of env_i * env_k."""
            if slots is None:
                return ecell[i] * ecell[k]
            return ecell[slots[:, i]] * ecell[slots[:, k]]

        w_bb = np.einsum("bu,cbu->cu", env, self.wet_early_bb)  # (2, f + e), unnormalised
        em = cell_mean(self.bi, self.bj)  # (pairs, jn)
        late_c = np.einsum("pj,cpj->cj", em, self.late_bb[..., :jn])
        # the vocal-weighted energy of each noise's wet IR and their cross-energy
        xv = env[None, :, f:] * self.vw_early  # (2, 7, e)
        e_seed = (xv.sum(axis=1) ** 2).sum(axis=-1) \
            + np.einsum("pj,cpj->c", em, self.vw_late[..., :jn])  # (2,)
        c12 = float((xv[0].sum(axis=0) * xv[1].sum(axis=0)).sum()
                    + np.einsum("pj,pj->", em, self.vw_late_x[:, :jn]))
        # width 1 mixes the noises, (n1 +- n2) / sqrt 2, and normalises each channel: the
        # energy summed over channels is then (n1^2 + n2^2) / 2 * (1 / E_L + 1 / E_R) (the
        # n1 n2 product averages out), the same scale for both noises
        e_sum = float(e_seed.sum())
        e_l, e_r = 0.5 * e_sum + c12, 0.5 * e_sum - c12
        scale = np.full(2, g * math.sqrt(0.5 * (1.0 / e_l + 1.0 / e_r)))
        rows = 1 + (len(BANDS_HZ) if bands else 0)
        lead0 = self.lead  # index of s = 0 in self.dry
        # full-rate energy from s = -f to the end of the wet's early stretch, kp + e
        full = self.dry2[:rows, lead0 - f:lead0 + kp + e].copy()
        dry_w = self.dry[:rows, lead0 + kp - f:lead0 + kp + e]
        wet_bb = scale[:, None] * w_bb  # (2, f + e)
        full[0, kp:] += (wet_bb**2).sum(axis=0) + 2.0 * dry_w[0] * wet_bb.sum(axis=0)
        if bands:
            wk = np.einsum("ksu,kcsu->kcu", env[self.slots], self.wet_early) \
                * scale[None, :, None]  # (7, 2, f + e)
            full[1:, kp:] += (wk**2).sum(axis=1) + 2.0 * dry_w[1:] * wk.sum(axis=1)
        # cells: the coarse lead, then the full-rate stretch in cells of MODEL_COARSE
        # samples except within MODEL_FULL_MS of the dry impulse (one sample each), then
        # the late cells
        h = self.full
        at = np.concatenate([np.arange(0, f - h, MODEL_COARSE), np.arange(f - h, f + h),
                             np.arange(f + h, f + kp + e, MODEL_COARSE)])
        na, nm = self.lead_sum.shape[1], at.size
        width = np.empty(na + nm + jn)
        width[:na] = MODEL_LEAD_COARSE
        width[na:na + nm] = np.diff(np.append(at, f + kp + e))
        width[na + nm:] = uw
        en = np.empty((rows, width.size))
        peak = np.empty_like(en)
        en[:, :na], peak[:, :na] = self.lead_sum[:rows], self.lead_max[:rows]
        en[:, na:na + nm] = np.add.reduceat(full, at, axis=1)
        peak[:, na:na + nm] = np.maximum.reduceat(full, at, axis=1)
        cum = self.dry2cum[:rows]
        lo = lead0 + kp + u0
        nd = cum.shape[1] - 1
        dry_late = cum[:, np.minimum(lo + uw, nd)] - cum[:, np.minimum(lo, nd)]
        en[0, na + nm:] = scale**2 @ late_c + dry_late[0]
        if bands:
            sl = self.slots
            q = scale[0]**2 * self.late[:, 0, :, :jn] + scale[1]**2 * self.late[:, 1, :, :jn]
            en[1:, na + nm:] = np.einsum("kpj,kpj->kj", cell_mean(self.pi, self.pj, sl), q) \
                + dry_late[1:]
            en[1:][~self.valid[1:]] = 0.0
        peak[:, na + nm:] = en[:, na + nm:] / uw
        return en, width, peak, na + int(np.searchsorted(at, f))

    def describe(self, band_decays_s: np.ndarray, wet_level_db: float, pre_delay_ms: float,
                 bands: tuple[float, ...] = BANDS_HZ) -> Descriptors:
        """The figures :func:`describe` would measure on the rendered send (see the class);
        ``bands=()``: broadband figures only (octave-band entries absent)."""
        en, width, peak, _ = self.energies(band_decays_s, wet_level_db, pre_delay_ms,
                                           bands=bool(bands))
        return _measure_cells(en, width, peak, self.sr, self.valid, bands)


def _zero_phase_gain(sample_rate: int, band_hz: float, nfft: int) -> np.ndarray:
    """Power response |H(f)|^2 at ``rfftfreq(nfft)`` of :func:`vocalmix.core.reverb.band_filter`'s
    octave filter: run forward and backward, that is its zero-phase frequency response
    (from the filter's impulse response over 60 periods of ``band_hz``, by which it has
    decayed by more than 500 dB; running it longer would only crawl through subnormals)."""
    from scipy.fft import rfft
    from scipy.signal import sosfilt

    from vocalmix.core.reverb import _band_sos

    impulse = np.zeros(min(nfft, int(math.ceil(60.0 * sample_rate / band_hz))))
    impulse[0] = 1.0
    return np.abs(rfft(sosfilt(_band_sos(sample_rate, band_hz), impulse), nfft)) ** 2


def _measure_cells(en: np.ndarray, width: np.ndarray, peak: np.ndarray, sample_rate: int,
                   valid: np.ndarray, bands: tuple[float, ...]) -> Descriptors:
    """:func:`describe`'s figures from energies per cell (rows: broadband, then bands):
    onset (first cell whose per-sample peak is within 20 dB of the row's), the Schroeder
    integral from it, T30 (-5 to -35 dB) and EDT (0 to -10 dB) by least squares weighted
    by the cells' widths, C50, early EDC and arrival times of the broadband row
    (interpolated within a cell)."""
    sr = sample_rate
    rows, cells = en.shape
    start = np.concatenate([[0.0], np.cumsum(width)[:-1]])  # samples
    onset = np.argmax(peak >= 0.01 * peak.max(axis=1, keepdims=True), axis=1)
    r = np.arange(rows)
    rc = np.cumsum(en[:, ::-1], axis=1)[:, ::-1]
    ref = rc[r, onset]
    good = ref > 0
    ref = np.where(good, ref, 1.0)
    after = np.arange(cells)[None, :] >= onset[:, None]
    with np.errstate(divide="ignore"):
        edc = 10.0 * np.log10(np.maximum(rc, ref[:, None] * 1e-30) / ref[:, None])
    edc = np.where(after, edc, np.inf)
    ts = start / sr
    zero = np.zeros(1)
    cw = np.concatenate([zero, np.cumsum(width)])
    cwt = np.concatenate([zero, np.cumsum(width * ts)])
    cwtt = np.concatenate([zero, np.cumsum(width * ts * ts)])
    wy = np.where(after, edc, 0.0) * width
    z2 = np.zeros((rows, 1))
    cwy = np.concatenate([z2, np.cumsum(wy, axis=1)], axis=1)
    cwty = np.concatenate([z2, np.cumsum(wy * ts, axis=1)], axis=1)

    def times(top: float, bottom: float) -> np.ndarray:
        it = np.argmax(edc <= top, axis=1)
        hit = edc <= bottom
        ib = np.argmax(hit, axis=1) + 1
        sw, swt, swtt = cw[ib] - cw[it], cwt[ib] - cwt[it], cwtt[ib] - cwtt[it]
        swy, swty = cwy[r, ib] - cwy[r, it], cwty[r, ib] - cwty[r, it]
        with np.errstate(divide="ignore", invalid="ignore"):
            den = swtt - swt * swt / sw
            slope = np.where(den > 0, (swty - swt * swy / sw) / den, 0.0)
            return np.where(good & hit.any(axis=1) & (sw >= 3) & (slope < 0), -60.0 / slope,
                            np.nan)

    t30, edt = times(-5.0, -35.0), times(0.0, -10.0)
    t30_b, edt_b = {}, {}
    for k, band in enumerate(BANDS_HZ):
        if band in bands:
            ok = rows > 1 + k and valid[1 + k]
            t30_b[band] = float(t30[1 + k]) if ok else math.nan
            edt_b[band] = float(edt[1 + k]) if ok else math.nan
    # broadband row: C50, EDC points, arrival times, all from its onset
    i0 = int(onset[0])
    pos = start[i0:] - start[i0]
    ends = np.append(pos, pos[-1] + width[-1])
    cum = np.concatenate([zero, np.cumsum(en[0, i0:])])
    early = float(np.interp(round(0.05 * sr), ends, cum))
    late = float(cum[-1]) - early
    c50 = 10.0 * math.log10(early / late) if late > 0 and early > 0 else math.inf
    pts = {}
    for ms in EDC_TIMES_MS:
        k = round(ms * 1e-3 * sr)
        pts[ms] = float(np.interp(k, pos, edc[0, i0:])) if k < ends[-1] else math.nan
    skip = max(1, int(round(DIRECT_MS * 1e-3 * sr)))
    c0 = float(np.interp(skip, ends, cum))
    total = float(cum[-1]) - c0
    arrival = {}
    for frac in ARRIVAL_FRACTIONS:
        if total > 0:
            at = float(np.interp(c0 + frac * total, cum, ends))  # samples after the onset
            arrival[frac] = 1e3 * max(skip, math.ceil(at - 1e-9) - 1) / sr
        else:
            arrival[frac] = math.nan
    return Descriptors(t30=t30_b, edt=edt_b, t30_broadband=float(t30[0]),
                       edt_broadband=float(edt[0]), c50_db=c50, edc_db=pts, arrival_ms=arrival)


# --- the fit ----------------------------------------------------------------------------


SHAPE_CAP = 2.0  # soft cap of the shape terms, in their units (see _loss)
#: C50 (dB) may miss the target's by this much at the soft terms' price; beyond it, the
#: miss costs as a T30 term does per just-noticeable difference (quadratic, in units of
#: 0.4 dB: ISO 3382-1's JNDs are 1 dB for clarity and 5 % for decay, the T30 terms'
#: unit 2 %). The wet level is what sets C50, and a send so dry that its direct impulse
#: hid the decay had matched every band's T30 while leaving the room 10-29 dB too dry
C50_FREE_DB = 3.0
C50_UNIT_DB = 0.4


def _soft(e: float, cap: float = SHAPE_CAP) -> float:
    """``e**2`` for small errors, growing only logarithmically past ``cap``: a feature
    the synthetic reverb cannot have (a strong early reflection, a gap) then costs about
    the same whatever the decays, and cannot pull the T30s away from the target's."""
    return cap * cap * math.log1p((e / cap) ** 2)


def _loss(target: Descriptors, cand: Descriptors, bands: tuple[float, ...]) -> float:
    """The fit's cost (see the module docstring): T30 terms quadratic, shape terms (EDT,
    C50, early EDC, arrival times) soft-capped (:func:`_soft`), and C50 quadratic again
    beyond :data:`C50_FREE_DB`."""
    miss = 50.0  # a term the candidate cannot measure where the target can

    def rel(t: float, c: float, unit: float) -> float | None:
        if not math.isfinite(t):
            return None
        return math.log(c / t) / unit if math.isfinite(c) and c > 0 else miss

    total = 0.0
    for b in bands:
        e = rel(target.t30[b], cand.t30[b], 0.02)
        total += 0.0 if e is None else e * e
        e = rel(target.edt[b], cand.edt[b], 0.10)
        total += 0.0 if e is None else 0.25 * _soft(e)
    e = rel(target.edt_broadband, cand.edt_broadband, 0.10)
    total += 0.0 if e is None else _soft(e)
    if math.isfinite(target.c50_db):
        c = cand.c50_db
        e = (c - target.c50_db) / 1.0 if math.isfinite(c) else miss
        total += _soft(e) + (max(0.0, abs(e) - C50_FREE_DB) / C50_UNIT_DB) ** 2
    pts = [(t, cand.edc_db[k]) for k, t in target.edc_db.items()
           if math.isfinite(t) and t > -30.0]
    if pts:
        total += 0.5 * sum(_soft((c - t) / 2.0 if math.isfinite(c) else miss)
                           for t, c in pts) / len(pts)
    for f, t in target.arrival_ms.items():
        if math.isfinite(t):
            c = cand.arrival_ms[f]
            unit = max(1.0, 0.1 * t)  # ms
            total += _soft((c - t) / unit if math.isfinite(c) else miss)
    return float(total)


def _as_2d(ir: np.ndarray) -> np.ndarray:
    x = np.asarray(ir, dtype=np.float32)
    return x[:, None] if x.ndim == 1 else x


#: how the notes that change what a fit aimed at begin (the command prints them under
#: the fit's line): the offset taken out, the bands fitted to their T20
OFFSET_NOTE_PREFIX = "took out a constant (DC) offset"
T20_NOTE_PREFIX = "target T30 not measurable at"
NOISE_FIT_NOTE_PREFIX = "target T30 and T20 not measurable at"
#: the key of :attr:`Descriptors.noise_fit` in a fit's figures (seconds per band)
NOISE_FIT_KEY = "decay_noise_fit_s"
#: said of an IR in which no decay can be measured at all
NO_DECAY_NOTE = (
    "no decay could be measured in this file (no octave band falls by the 25 dB a T20 "
    "needs above its noise, and the whole does not fall by 10 dB from its loudest point): "
    "it may not be an impulse response (a reversed one, a recording of steady sound) or "
    "be too short; its fit is a guess, so no preset is written for it")

#: the share of an IR's end whose mean is read as a constant offset (:func:`_without_offset`)
OFFSET_TAIL = 0.1
#: an offset is taken out when its mean is this many standard errors from zero
OFFSET_SIGMAS = 4.0
#: and at least this loud against the IR's peak, dB (one below is left: it cannot matter)
OFFSET_MIN_DB = -80.0


def _without_offset(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``x`` ``(n, channels)`` with a constant (DC) offset taken out, and a note saying so
    (``None`` when there is none). A recording interface's offset runs under the whole
    file: it is read as the mean of each channel's last :data:`OFFSET_TAIL` (the noise
    floor or the decay's end, which average to zero), and subtracted where that mean is
    more than :data:`OFFSET_SIGMAS` standard errors from zero and no quieter than
    :data:`OFFSET_MIN_DB` under the IR's peak. Left in, it would fill the
    energy decay curve like a noise floor and ring in the octave filters at the file's
    ends (a -40 dBFS offset made a hall's 500 Hz T30 and its C50 unmeasurable)."""
    n = x.shape[0]
    k = max(int(n * OFFSET_TAIL), 1)
    tail = np.asarray(x[n - k:], np.float64)
    mean = tail.mean(axis=0)
    err = tail.std(axis=0) / math.sqrt(k)
    peak = float(np.abs(x).max())
    floor = peak * 10.0 ** (OFFSET_MIN_DB / 20.0)
    off = np.where((np.abs(mean) > OFFSET_SIGMAS * err) & (np.abs(mean) >= floor), mean, 0.0)
    if k < 32 or not np.any(off):
        return x, None
    level = 20.0 * math.log10(float(np.abs(off).max()) / peak)
    return (x - off).astype(np.float32), (
        f"{OFFSET_NOTE_PREFIX} {level:.0f} dB under the IR's peak (the mean of "
        "its last tenth), which would read as a noise floor")


def _wet_guess_db(c50_db: float, decay_s: float) -> float:
    """Wet level (dB) whose exponential decay of ``decay_s`` gives ``c50_db`` after a
    unit dry impulse: C50 = (1 + W f) / (W (1 - f)), f the share of the first 50 ms."""
    if not (math.isfinite(c50_db) and math.isfinite(decay_s) and decay_s > 0):
        return -10.0
    f = 1.0 - 10.0 ** (-6.0 * 0.05 / decay_s)
    den = (1.0 - f) * 10.0 ** (c50_db / 10.0) - f
    return 10.0 * math.log10(1.0 / den) if den > 0 else WET_DB_BOUNDS[1]


#: a band's decay-plus-noise fit is kept where it lies within this factor of its EDT
NOISE_FIT_EDT_RATIO = 1.5
#: the factor a band with no measurable T30 or T20 puts on the decay it copies (its EDT
#: over that decay) is kept within this range
EDT_SCALE_LIMITS = (0.5, 2.0)


@dataclass
class _Layout:
    """How the optimiser's vector maps to band decays (see :func:`fit_ir`)."""

    ref: int  # band whose decay is the vector's first entry
    free: list[int]  # bands with their own log-ratio entry
    copy_from: list[int]  # for every band, the band whose decay it takes
    #: for every band, the factor on the decay it takes: 1 for a band with its own entry;
    #: for a band whose decay cannot be measured, its EDT over the decay it copies
    scale: list[float] = field(default_factory=lambda: [1.0] * len(BANDS_HZ))

    def band_decays(self, z: np.ndarray) -> np.ndarray:
        d = np.empty(len(BANDS_HZ))
        d[self.ref] = math.exp(z[0])
        for j, b in enumerate(self.free):
            d[b] = d[self.ref] * math.exp(z[1 + j])
        return d[self.copy_from] * np.asarray(self.scale)


def _layout(target: Descriptors) -> _Layout:
    """Bands with a measurable decay (T30, or the T20 put in its place) are the
    optimiser's; every other band takes the nearest of them, scaled by its own EDT over
    that band's decay (:data:`EDT_SCALE_LIMITS`): the noisier bands of an IR keep the
    shape of their early decays. Measured on the 84 real IRs with noise 40 dB under
    their peak, for those bands (500 Hz-4 kHz) against the clean files' T30: 59 % within
    10 % (median error 7.9 %) against 48 % (10.3 %) for the nearest band's decay alone;
    45 dB under, 83 % against 29 %."""
    ok = [i for i, b in enumerate(BANDS_HZ) if math.isfinite(target.t30[b])]
    logf = np.log2(np.asarray(BANDS_HZ))
    if not ok:  # the reference band's decay is fitted on the broadband terms alone
        ref, near = REF_BAND, [REF_BAND] * len(BANDS_HZ)
        anchor = target.edt[BANDS_HZ[REF_BAND]]
        anchors = [anchor] * len(BANDS_HZ)
    else:
        ref = min(ok, key=lambda i: abs(logf[i] - logf[REF_BAND]))

        def nearest(i: int) -> int:
            return min(ok, key=lambda j: (float(abs(logf[j] - logf[i])), j))

        near = [nearest(i) for i in range(len(BANDS_HZ))]
        near[ref] = ref
        anchors = [target.t30[BANDS_HZ[j]] for j in near]
    scale = []
    for i, b in enumerate(BANDS_HZ):
        own, anchor = target.edt[b], anchors[i]
        if i in ok or i == ref or not (math.isfinite(own) and math.isfinite(anchor)
                                       and anchor > 0):
            scale.append(1.0)
        else:
            scale.append(float(np.clip(own / anchor, *EDT_SCALE_LIMITS)))
    return _Layout(ref=ref, free=[i for i in ok if i != ref], copy_from=near, scale=scale)


def _band_decays_to_reverb(d: np.ndarray, wet_db: float, pre_ms: float) -> tuple[Reverb, list]:
    """A valid synthetic Reverb from band decays (clipped to the params' ranges)."""
    notes = []
    decay = float(np.clip(d[REF_BAND], *DECAY_LIMITS_S))
    ratios = np.clip(d / decay, *RATIO_LIMITS)
    if not np.allclose(ratios * decay, d, rtol=1e-9):
        notes.append("a band decay was clipped to the params' range (ratios 0.1 to 4 of the "
                     "1 kHz decay, 0.1 to 30 s)")
    ratios[REF_BAND] = 1.0
    ratios = np.minimum(ratios, 30.0 / decay)
    rv = Reverb(enabled=True, type="synthetic", decay_s=round(decay, 4),
                band_decay_ratios=tuple(round(float(r), 4) for r in ratios), width=1.0,
                wet_level_db=round(clip(Reverb, "wet_level_db", wet_db), 3),
                pre_delay_ms=round(float(np.clip(pre_ms, 0.0, 500.0)), 3))
    return rv, notes


#: the highest rate an IR is fitted at, Hz; one above it is resampled to it first
FIT_MAX_RATE = 48000


def fit_ir(ir: np.ndarray, sample_rate: int, *, seed: int = 0,
           popsize: int = DEFAULTS["popsize"], maxiter: int = DEFAULTS["maxiter"],
           tol: float = DEFAULT_TOL, report: bool = True,
           callback: Callable | None = None,
           long_ir_s: float | None = None) -> dict:
    """Fit the synthetic reverb's send to one IR (see the module docstring).

    Args:
        ir: the target impulse response ``(n,)`` or ``(n, channels)``.
        sample_rate: its rate, Hz.
        seed, popsize, maxiter, tol: ``differential_evolution``'s (popsize is per
            parameter).
        long_ir_s: for a target whose longest band's candidate IR is longer than this
            (``1.2 x T30 + 0.05 s``), the generations are scaled down in proportion
            (at least 4); ``None`` (the default): always ``maxiter``.
        callback: passed to ``differential_evolution``.
        report: also the report's figures (``target``, ``fitted``: the fitted send as the
            mixing code renders it, pyroomacoustics cross-check); the fit itself checks
            its result on that render either way.

    Returns:
        ``{"reverb": {type, decay_s, band_decay_ratios, width, wet_level_db,
        pre_delay_ms}, "loss", "loss_model", "loss_initial_guess", "evaluations",
        "renders", "generations", "seconds", "notes", "target_fit_sr", "fitted_fit_sr",
        "target", "fitted", "within_10pct_500_4k"}``: ``loss`` is the cost of the result
        on its render (stage 3), ``loss_model`` the optimiser's best on the decay model and
        ``loss_initial_guess`` the model's cost of stage 1's guess; ``evaluations`` counts
        the model's, ``renders`` stage 3's; ``target_fit_sr`` and ``fitted_fit_sr`` are the
        figures the fit saw (the target's; the model's for the result); figures as
        :meth:`Descriptors.as_dict`; ``target``/``fitted`` (with ``report``) carry
        ``t30_broadband_pra_s`` too.
    """
    from scipy.optimize import differential_evolution

    t0 = time.perf_counter()
    sr = int(sample_rate)
    x = _as_2d(ir)
    rate_note = None
    if sr > FIT_MAX_RATE:
        # the audible band, at the rates presets are mixed at: above 48 kHz the candidates'
        # noise reaches far past what a room's IR holds there (air and microphones take
        # it), and the broadband C50 they are matched on asked 96 kHz copies of 12 real
        # 44.1 kHz IRs for sends 0-2 dB wetter than the IRs' own fits (within 0.6 dB now)
        import soxr

        # 50 ms of silence first: a direct sound at the file's first sample would lose the
        # half of the resampling filter's response before it (a C50 1.8 dB low)
        lead = np.zeros((int(0.05 * sr), x.shape[1]))
        x = np.asarray(soxr.resample(np.concatenate([lead, np.asarray(x, np.float64)]), sr,
                                     FIT_MAX_RATE, quality="VHQ"), np.float64)
        rate_note = f"fitted at {FIT_MAX_RATE} Hz (the IR's {sr} Hz resampled with soxr)"
        sr = FIT_MAX_RATE
    x, offset_note = _without_offset(x)
    measured_target = describe(x, sr)
    # where a band's T30 cannot be measured (a noisy IR) its T20 is the decay to fit
    # and where neither can, the decay a decay-plus-noise fit reads off its envelope
    target, by_t20, by_noise_fit = measured_target.decay_fallback()
    lay = _layout(target)
    fallback = next((v for v in (target.t30_broadband, target.edt_broadband,
                                 target.edt[BANDS_HZ[REF_BAND]]) if math.isfinite(v)), 0.5)
    d0 = np.array([target.t30[b] if math.isfinite(target.t30[b]) else fallback
                   for b in BANDS_HZ])
    d0 = np.clip(d0, DECAY_LIMITS_S[0], DECAY_LIMITS_S[1] / SEARCH_FACTOR)
    span = math.log(SEARCH_FACTOR)
    lo_d, hi_d = math.log(DECAY_LIMITS_S[0]), math.log(DECAY_LIMITS_S[1])
    x0 = [math.log(d0[lay.ref])] + [math.log(d0[b] / d0[lay.ref]) for b in lay.free]
    bounds = [(max(lo_d, x0[0] - span), min(hi_d, x0[0] + span))]
    # band ratios: within the params' range too (a ratio beyond it would be clipped in the
    # preset); a guess beyond it gets a narrow box at the range's end
    r_lo, r_hi = math.log(RATIO_LIMITS[0]), math.log(RATIO_LIMITS[1])
    for v in x0[1:]:
        lo, hi = max(r_lo, v - span), min(r_hi, v + span)
        bounds.append((lo, hi) if hi - lo > 0.05 else
                      ((r_lo, r_lo + 0.05) if v < r_lo + 0.05 else (r_hi - 0.05, r_hi)))
    bounds += [WET_DB_BOUNDS, PRE_DELAY_MS_BOUNDS]
    x0 = [float(np.clip(v, lo, hi)) for v, (lo, hi) in zip(x0, bounds[:-2], strict=True)]
    shortest = math.exp(bounds[0][0] + min([b[0] for b in bounds[1:-2]] + [0.0]))
    # every candidate is measured on the decay model at the IR's own rate: the synthetic
    # reverb's noise differs from rate to rate, and so does the share of its energy in the
    # top octave, so this is what the preset sounds like there. The model spans the send
    # of a candidate whose longest band is up to SEARCH_FACTOR x the target's longest T30;
    # one longer (the search allows SEARCH_FACTOR^2) is measured over that span, which
    # misses less than 0.1 dB of its EDC at -35 dB
    longest = float(d0.max()) * SEARCH_FACTOR
    model = DecayModel(sr, min(36.0, 1.2 * longest + 0.05), model_block(sr, shortest))

    calls = [0]  # candidates measured on the model

    def measured(z: np.ndarray, bands: tuple[float, ...] = BANDS_HZ) -> Descriptors:
        calls[0] += 1
        return model.describe(lay.band_decays(z), z[-2], z[-1], bands)

    def objective(z: np.ndarray) -> float:
        return _loss(target, measured(z), BANDS_HZ)

    # stage 1: wet level and pre-delay on a grid, the band decays at the guess, scored on
    # the broadband terms alone (EDT, C50, early EDC, arrival times)
    wet_c50 = float(np.clip(_wet_guess_db(target.c50_db, d0[REF_BAND]), *WET_DB_BOUNDS))
    grid = [(w, pd) for w in sorted({*np.arange(-30.0, WET_DB_BOUNDS[1] + 0.01, 3.0), wet_c50})
            for pd in (0.0, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 70.0)]
    d_guess = lay.band_decays(np.asarray(x0))

    def broadband(w: float, pd: float) -> float:
        calls[0] += 1
        return _loss(target, model.describe(d_guess, w, pd, ()), ())

    scores = [broadband(w, pd) for w, pd in grid]
    w0, p0 = grid[int(np.argmin(scores))]
    # then finer, one coordinate at a time: wet in 0.5 dB steps, pre-delay in 7 steps
    # across half the distance to its grid neighbours
    ws = np.clip(w0 + np.arange(-1.5, 1.51, 0.5), *WET_DB_BOUNDS)
    w0 = float(ws[int(np.argmin([broadband(w, p0) for w in ws]))])
    ps = np.clip(p0 + np.linspace(-0.5, 0.5, 7) * max(1.0, 0.5 * p0), *PRE_DELAY_MS_BOUNDS)
    p0 = float(ps[int(np.argmin([broadband(w0, pd) for pd in ps]))])
    x0_all = np.array([*x0, w0, p0])
    # stage 2: differential evolution over all parameters, its population seeded as a
    # cloud around that guess (x0 itself included)
    rng = np.random.default_rng(seed)
    m = max(5, popsize * len(x0_all))
    sigma = np.array([0.04] * (len(x0_all) - 2) + [1.5, max(1.0, 0.2 * x0_all[-1])])
    lo_b, hi_b = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    init = np.clip(x0_all + rng.standard_normal((m, len(x0_all))) * sigma, lo_b, hi_b)
    init[0] = np.clip(x0_all, lo_b, hi_b)
    loss0 = objective(init[0])
    gens = maxiter if long_ir_s is None else int(np.clip(
        round(maxiter * long_ir_s / (1.2 * float(d0.max()) + 0.05)), min(4, maxiter), maxiter))
    res = differential_evolution(objective, bounds, seed=seed, maxiter=gens, tol=tol,
                                 mutation=(0.5, 1.0), recombination=0.7, init=init,
                                 polish=False, updating="immediate", callback=callback)
    z, loss_model = np.asarray(res.x), float(res.fun)
    # then each band's decay scaled by target / model T30 where that is off by more than
    # MODEL_T30_TOL (kept while the cost falls): cheap, and it leaves stage 3 less to do.
    # This may leave the search box (for a band that a slower neighbour's leakage makes
    # measure longer than its own decay, the box around the target's T30 can be too
    # narrow), though not the params' ranges
    z_lo = np.array([lo_d] + [r_lo] * len(lay.free))
    z_hi = np.array([hi_d] + [r_hi] * len(lay.free))
    for _ in range(MODEL_POLISH_ROUNDS):
        fix = _t30_correction(target, measured(z), lay, MODEL_T30_TOL)
        if fix is None:
            break
        z_try = z.copy()
        z_try[:-2] = np.clip(z[:-2] + fix, z_lo, z_hi)
        loss_try = objective(z_try)
        if not loss_try < loss_model:
            break
        z, loss_model = z_try, loss_try
    # and a local search (Nelder-Mead, LOCAL_EVALS candidates) from there: it settles the
    # trade-offs between neighbouring bands that leak into each other, which the
    # evolution leaves unfinished
    from scipy.optimize import minimize

    lo_l = np.concatenate([z_lo, [WET_DB_BOUNDS[0], PRE_DELAY_MS_BOUNDS[0]]])
    hi_l = np.concatenate([z_hi, [WET_DB_BOUNDS[1], PRE_DELAY_MS_BOUNDS[1]]])
    steps = np.array([0.03] * (len(z) - 2) + [1.0, max(0.5, 0.1 * z[-1])])
    steps = np.where(z + steps <= hi_l, steps, -steps)  # away from an upper bound
    simplex = np.clip(np.vstack([z, z + np.diag(steps)]), lo_l, hi_l)
    loc = minimize(objective, simplex[0], method="Nelder-Mead",
                   bounds=list(zip(lo_l, hi_l, strict=True)),
                   options={"maxfev": LOCAL_EVALS, "initial_simplex": simplex})
    if loc.fun < loss_model:
        z, loss_model = np.asarray(loc.x), float(loc.fun)
    # stage 3: the result rendered by the mixing code and measured like the target; where
    # a band's T30 there is off the target's by more than CHECK_T30_TOL, its decay is
    # scaled by the ratio and the render measured again (kept only if the cost falls)
    rv, notes = _band_decays_to_reverb(lay.band_decays(z), z[-2], z[-1])
    fitted_ir = render_send_ir(rv, sr)
    fitted = describe(fitted_ir, sr)
    loss = _loss(target, fitted, BANDS_HZ)
    renders = 1
    for _ in range(CHECK_ROUNDS):
        fix = _t30_correction(target, fitted, lay, CHECK_T30_TOL)
        if fix is None:
            break
        z_try = z.copy()
        z_try[:-2] += fix
        rv_try, notes_try = _band_decays_to_reverb(lay.band_decays(z_try), z[-2], z[-1])
        ir_try = render_send_ir(rv_try, sr)
        d_try = describe(ir_try, sr)
        renders += 1
        loss_try = _loss(target, d_try, BANDS_HZ)
        if not loss_try < loss:
            break
        z, rv, notes, fitted_ir, fitted, loss = z_try, rv_try, notes_try, ir_try, d_try, loss_try
    if rv.wet_level_db >= WET_DB_BOUNDS[1] - 0.05:
        notes.append(f"wet level at the params' maximum of {WET_DB_BOUNDS[1]:+g} dB: the "
                     "target is wetter, so "
                     "the fitted C50 is higher than the target's")
    if offset_note:
        notes.insert(0, offset_note)
    if rate_note:
        notes.insert(0, rate_note)
    if by_t20:
        notes.append(f"{T20_NOTE_PREFIX} {', '.join(f'{b:g}' for b in by_t20)} "
                     "Hz (the decay above the noise floor spans less than the 35 dB it "
                     "needs): fitted to the T20 there")
    if by_noise_fit:
        notes.append(f"{NOISE_FIT_NOTE_PREFIX} {', '.join(f'{b:g}' for b in by_noise_fit)} "
                     "Hz (the decay above the noise floor spans less than the 25 dB a T20 "
                     "needs): fitted to the decay of a decay-plus-noise model fitted to "
                     "their envelope there")
    missing = [f"{b:g}" for b in BANDS_HZ if not math.isfinite(target.t30[b])]
    if len(missing) == len(BANDS_HZ) and not math.isfinite(target.edt_broadband):
        notes.insert(0, NO_DECAY_NOTE)
    elif missing:
        notes.append(f"no decay measurable at {', '.join(missing)} Hz (T30, T20 or a "
                     "decay-plus-noise fit): those bands take the nearest measurable "
                     "band's decay, scaled to their own early decay (EDT)")
    out = {
        "reverb": {"type": "synthetic", "decay_s": rv.decay_s,
                   "band_decay_ratios": list(rv.band_decay_ratios), "width": rv.width,
                   "wet_level_db": rv.wet_level_db, "pre_delay_ms": rv.pre_delay_ms},
        "loss": round(float(loss), 4), "loss_model": round(loss_model, 4),
        "loss_initial_guess": round(float(loss0), 4),
        "evaluations": calls[0], "renders": renders,
        "generations": int(res.nit), "notes": notes,
        "target_fit_sr": target.as_dict(),
        "fitted_fit_sr": measured(z).as_dict(),
    }
    if report:
        out.update(_report_figures(x, sr, measured_target, fitted_ir, fitted))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _t30_correction(target: Descriptors, fitted: Descriptors, lay: _Layout,
                    tolerance: float) -> np.ndarray | None:
    """Change of the optimiser's log-decay entries that scales each fitted band's decay by
    target T30 / fitted T30 (bands of its layout where both are measurable), or ``None``
    when every such band is within ``tolerance`` (relative) already."""
    def log_ratio(i: int) -> float:
        t, f = target.t30[BANDS_HZ[i]], fitted.t30[BANDS_HZ[i]]
        return math.log(t / f) if math.isfinite(t) and math.isfinite(f) and f > 0 else 0.0

    ref = log_ratio(lay.ref)
    fix = np.array([ref] + [log_ratio(b) - ref for b in lay.free])
    worst = max(abs(log_ratio(i)) for i in [lay.ref, *lay.free])
    return fix if worst > math.log1p(tolerance) else None


def evaluate_fit(ir: np.ndarray, sample_rate: int, reverb: Reverb | dict) -> dict:
    """Target and fitted figures at the IR's own rate; the fitted side rendered by the
    mixing code (:func:`render_send_ir`). Returns ``target``, ``fitted`` (with
    ``t30_broadband_pra_s``) and ``within_10pct_500_4k``."""
    x = _as_2d(ir)
    fitted_ir = render_send_ir(reverb, sample_rate)
    return _report_figures(x, sample_rate, describe(x, sample_rate), fitted_ir,
                           describe(fitted_ir, sample_rate))


def _report_figures(x: np.ndarray, sample_rate: int, target: Descriptors,
                    fitted_ir: np.ndarray, fitted: Descriptors) -> dict:
    tgt, fit = target.as_dict(), fitted.as_dict()
    tgt["t30_broadband_pra_s"] = _r(pra_t30(x, sample_rate))
    fit["t30_broadband_pra_s"] = _r(pra_t30(fitted_ir, sample_rate))
    r: dict[str, Any] = {"target": tgt, "fitted": fit}
    r["within_10pct_500_4k"] = t30_within(r)
    return r


def _r(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


#: what :func:`_aimed_t30` names the stand-ins for a T30 that cannot be measured
_STAND_INS = (("T20", "t20_s"), ("noise fit", NOISE_FIT_KEY))


def _aimed_t30(result: dict, band: str) -> tuple[float | None, str | None]:
    """The target's T30 (s) in ``band`` (a ``t30_s`` key), or where that cannot be
    measured the decay the fit aimed at there (:meth:`Descriptors.decay_fallback`: its
    T20, else its decay-plus-noise fit); and which stand-in it is (``"T20"`` or ``"noise
    fit"``; ``None`` for the T30). ``(None, None)`` when none can be measured."""
    t = result["target"]["t30_s"].get(band)
    if t is not None:
        return t, None
    for kind, key in _STAND_INS:
        v = (result["target"].get(key) or {}).get(band)
        if v is not None:
            return v, kind
    return None, None


def t30_within(result: dict, tolerance: float = 0.10,
               bands: tuple[float, ...] = HEADLINE_BANDS_HZ, *, use_t20: bool = False
               ) -> bool:
    """Whether the fitted T30 is within ``tolerance`` of the target's in every band
    (false where either cannot be measured). ``use_t20``: where the target's T30 cannot
    be measured, the decay the fit aims at there (its T20, else its decay-plus-noise fit)
    stands in for it."""
    for b in bands:
        t, stand_in = _aimed_t30(result, str(int(b)))
        if stand_in and not use_t20:
            t = None
        f = result["fitted"]["t30_s"].get(str(int(b)))
        if t is None or f is None or not (math.isfinite(t) and math.isfinite(f)):
            return False
        if abs(f - t) > tolerance * t:
            return False
    return True


# --- presets and the report -------------------------------------------------------------


def preset_entry(name: str, result: dict, *, source: str, origin: str,
                 settings: dict | None = None, info: dict | None = None) -> dict:
    """One preset of ``assets/reverb_presets.json`` from a fit
    (see :mod:`vocalmix.estimators.presets`)."""
    entry = {
        "source": source, "origin": origin, "reverb": dict(result["reverb"]),
        "t30_s_target": result["target"]["t30_s"], "t30_s_fitted": result["fitted"]["t30_s"],
        "c50_db_target": result["target"]["c50_db"], "c50_db_fitted": result["fitted"]["c50_db"],
        "within_10pct_500_4k": bool(result["within_10pct_500_4k"]),
    }
    if settings:
        entry["settings"] = settings
    if info:
        entry["info"] = info
    return entry


def _json_safe(v):
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _headline(results: dict[str, dict], origins: tuple[str, ...]) -> dict:
    rs = [r for r in results.values() if r["origin"] in origins]
    ok = sum(bool(r["within_10pct_500_4k"]) for r in rs)
    meas = [r for r in rs if all(r["target"]["t30_s"].get(str(int(b))) is not None
                                 for b in HEADLINE_BANDS_HZ)]
    return {"n": len(rs), "within": ok, "fraction": round(ok / len(rs), 4) if rs else None,
            "n_measurable": len(meas),
            "within_of_measurable": sum(bool(r["within_10pct_500_4k"]) for r in meas)}


def _pra_agreement(results: dict[str, dict]) -> dict:
    rows = []
    for name, r in results.items():
        for side in ("target", "fitted"):
            ours, ref = r[side]["t30_broadband_s"], r[side].get("t30_broadband_pra_s")
            if ours is not None and ref is not None and ref > 0:
                rows.append((name, r["origin"], side, ours, ref, ours / ref - 1.0))
    if not rows:
        return {"available": False}
    d = np.array([abs(x[5]) for x in rows])
    real_t = np.array([abs(x[5]) for x in rows if x[1] == "real" and x[2] == "target"])
    no_pair = sum(1 for r in results.values() for side in ("target", "fitted")
                  if r[side]["t30_broadband_s"] is None or r[side].get("t30_broadband_pra_s")
                  is None)
    return {"available": True, "pairs": len(rows), "without_both_values": no_pair,
            "median_abs_rel_diff": round(float(np.median(d)), 4),
            "max_abs_rel_diff": round(float(d.max()), 4),
            "within_10pct": int((d <= 0.10).sum()), "within_5pct": int((d <= 0.05).sum()),
            "real_targets": {"n": int(real_t.size),
                             "within_10pct": int((real_t <= 0.10).sum()),
                             "median_abs_rel_diff": round(float(np.median(real_t)), 4)
                             if real_t.size else None},
            "outside_10pct": [{"name": x[0], "side": x[2], "ours_s": x[3], "pra_s": x[4]}
                              for x in rows if abs(x[5]) > 0.10]}


def _miss_reason(r: dict) -> str:
    parts = []
    for b in HEADLINE_BANDS_HZ:
        t, stand_in = _aimed_t30(r, str(int(b)))
        f = r["fitted"]["t30_s"].get(str(int(b)))
        if t is not None and stand_in and f is not None:
            parts.append(f"{b:g} Hz: target T30 not measurable (fitted {f:.2f} s to its "
                         f"{stand_in} of {t:.2f} s)")
        elif t is None or stand_in:
            parts.append(f"{b:g} Hz: target not measurable")
        elif f is None:
            parts.append(f"{b:g} Hz: fitted not measurable")
        elif abs(f / t - 1.0) > 0.10:
            parts.append(f"{b:g} Hz {f:.2f}/{t:.2f} s ({100 * (f / t - 1):+.0f} %)")
    return "; ".join(parts) or "?"


def _pct(v: float | None) -> float | None:
    return None if v is None else 100.0 * v


def _fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def report_markdown(doc: dict) -> str:
    """The report (``reverb_fit.md``) from the JSON document :func:`write_report` writes."""
    meta, results = doc["meta"], doc["irs"]
    hr, hp = meta["headline"]["real"], meta["headline"]["plugins"]
    pa = meta["pyroomacoustics"]
    lines = ["# The synthetic reverb fitted to impulse responses", ""]
    lines += [
        f"`{meta['command']}`: differential evolution (scipy "
        f"{meta['scipy_version']}; popsize {meta['fit']['popsize']} per parameter, "
        f"{meta['fit']['maxiter']} generations, seed {meta['fit']['seed']}) of the "
        "`synthetic` reverb's send (dry impulse + pre-delayed wet at `wet_level_db`: "
        "`decay_s`, six band ratios, wet level, pre-delay) to each IR at the IR's own rate "
        "(48 kHz at most), "
        "its candidates measured on the decay model (`fitreverb.DecayModel`: energy decay "
        "curves per octave band without rendering), the result checked on a render. Target "
        "and fitted figures below are measured at the IR's own rate with the ISO 3382 "
        "routine of `vocalmix.core.reverb` (Schroeder integration with noise handling; "
        "octave bands by zero-phase Butterworth band-passes), the fitted side on the send "
        "as the mixing code renders it. Total fitting time "
        f"{meta['seconds_total'] / 60:.1f} min of wall time, one process on a 2-core "
        "machine shared with other jobs "
        f"({meta['seconds_per_ir_median']:.1f} s median per IR, "
        f"{meta['seconds_per_ir_max']:.1f} s at most; rendering the plug-in IRs not "
        "counted).", ""]
    lines += ["## Headline: T30 within 10 % in every one of 500 Hz, 1, 2 and 4 kHz", ""]
    lines += ["| IRs | within 10 % | of | fraction | (target T30 measurable in all four "
              "bands: within / of) |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, h in (("real (measured rooms)", hr), ("plug-ins: Calf, TAP", hp),
                     ("built-in pedalboard Reverb", meta["headline"]["pedalboard"])):
        frac = "–" if h["fraction"] is None else f"{100 * h['fraction']:.0f} %"
        lines.append(f"| {label} | {h['within']} | {h['n']} | {frac} | "
                     f"{h['within_of_measurable']} / {h['n_measurable']} |")
    lines += ["", "The goal was at least 80 % of the real IRs. " + meta["goal_sentence"], ""]
    if meta.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    lines += ["## Cross-check: pyroomacoustics", ""]
    if pa.get("available"):
        rt = pa["real_targets"]
        lines += [
            f"pyroomacoustics {meta.get('pyroomacoustics_version')} "
            "`experimental.measure_rt60(h, fs, decay_db=30)` (a textbook two-point Schroeder "
            "T30 without noise handling; given the square root of the energy summed over "
            "channels) against our broadband T30, on every target and every fitted IR: "
            f"{pa['pairs']} pairs, median |difference| {100 * pa['median_abs_rel_diff']:.1f} %, "
            f"within 5 % for {pa['within_5pct']}, within 10 % for {pa['within_10pct']}, "
            f"largest {100 * pa['max_abs_rel_diff']:.0f} %. On the real targets alone: "
            f"{rt['within_10pct']} of {rt['n']} within 10 % (median "
            f"{_fmt(_pct(rt['median_abs_rel_diff']), 1)} %)."
            + (f" {pa['without_both_values']} IR side(s) lack one of the two values "
               "(not measurable)." if pa.get("without_both_values") else ""), ""]
        out = pa.get("outside_10pct") or []
        if out:
            lines += ["Outside 10 % (ours / pyroomacoustics, s): " + ", ".join(
                f"{o['name']} {o['side']} {o['ours_s']:.2f}/{o['pra_s']:.2f}" for o in out)
                + ". pyroomacoustics takes the two points where the curve, integrated noise "
                "and all, crosses -5 and -35 dB; ours fits a least-squares line over that "
                "range after truncating at the noise floor and compensating (see "
                "`vocalmix.core.reverb`). They part where the broadband EDC is curved (the Calf "
                "sends: their octave bands decay between 0.4 and 6 s, and with the wet 17 dB "
                "below the dry the -5 dB point lies right after the direct sound) or the "
                "noise floor is high.",
                ""]
    else:
        lines += ["pyroomacoustics is not installed: no cross-check in this run.", ""]
    if meta.get("calf"):
        lines += ["## Calf Reverb: `decay_time` is not its T60", "",
                  "| setting | decay_time (s) | measured wet T30 broadband (s) | T30 1 kHz (s) "
                  "| T30 / decay_time |", "| --- | ---: | ---: | ---: | ---: |"]
        for row in meta["calf"]:
            lines.append(f"| {row['name']} | {row['decay_time_s']:g} | {_fmt(row['wet_t30_s'])} "
                         f"| {_fmt(row['wet_t30_1k_s'])} | {_fmt(row['ratio'])} |")
        lines.append("")
    if meta.get("tap"):
        lines += ["TAP Reverberator's `Decay [ms]` against the measured broadband T30 of its "
                  "wet IR: " + ", ".join(f"{r['name']} {r['wet_t30_s']:.2f} s"
                                         for r in meta["tap"]) + ".", ""]
    lines += ["## Determinism", "", meta["determinism"], ""]
    miss = [(k, r["origin"], _miss_reason(r)) for k, r in sorted(results.items())
            if not r["within_10pct_500_4k"]]
    lines += ["## The IRs that miss", ""]
    if miss:
        lines += ["| IR | origin | why (T30 fitted vs target, 500 Hz-4 kHz) |",
                  "| --- | --- | --- |"] + [f"| {k} | {o} | {why} |" for k, o, why in miss]
    else:
        lines.append("None.")
    capped = sorted(k for k, r in results.items()
                    if r["reverb"]["wet_level_db"] >= WET_DB_BOUNDS[1] - 0.05)
    lines += ["", f"Wet level at the {WET_DB_BOUNDS[1]:+g} dB bound (the params' maximum; "
              "the room is wetter than "
              f"the preset, so its fitted C50 is higher than the target's): {len(capped)} IR(s)"
              + (": " + ", ".join(capped) if capped else "") + ".", ""]
    lines += ["## Method notes", "",
              "- Every IR is measured after 50 ms of leading zeros. A send's dry impulse sits "
              "at sample 0, and the zero-phase octave filters (`vocalmix.core.reverb.band_filter`, "
              "run forward and backward) make a filtered impulse ring before it; the leading "
              "zeros keep that ringing, which the IR's own span would cut off, bending the "
              "low bands' EDT. Leading silence is otherwise ignored by the onset detection.",
              "- The optimiser's candidates (the evolution's, then a T30 correction and a "
              "Nelder-Mead search from its result) are measured on the decay model: the "
              "energy of the synthetic send per octave band from its fixed noise "
              "(band-filtered once per IR) under closed-form exponential envelopes, summed "
              "over cells of time; its T30 agree with the rendered send's within 1 % (4.5 % "
              "at 125 Hz for a 0.1 s decay). The "
              "result is rendered by the mixing code and measured like the target; where a "
              "band's T30 there is more than 2 % off, the band decays are scaled by target / "
              "rendered T30 and rendered again (at most twice, kept only if the cost falls). "
              "`fitted_fit_sr` in the JSON holds the model's figures for the result, "
              "`fitted` the render's.",
              "- C50 sets the wet level: within 3 dB of the target's its miss costs what "
              "the other shape terms cost; beyond, as much per just-noticeable difference "
              "(1 dB) as a T30 miss does per 5 %. Without that, a send so dry that its "
              "direct impulse hid the decay could match every band's T30 and leave a room "
              "10-29 dB too dry (8 real IRs here).",
              "- A band whose target T30 and T20 are not measurable is fitted to the decay "
              "a decay-plus-noise model reads off its envelope (`decay_noise_fit_s` in the "
              "JSON; kept within 1.5 times its EDT either way); where that fails too, it "
              "takes the decay of the "
              "nearest measurable band, scaled by its own EDT over that decay (0.5 to 2); an "
              "IR with no measurable T30 in any band is fitted on EDT, C50, the early EDC and "
              "the arrival times alone (its bands' decays shaped by their EDTs).", ""]
    bands = [str(int(b)) for b in BANDS_HZ]
    lines += ["## Per IR: T30 per octave band, target/fitted (s)", "",
              "`–`: not measurable (the decay does not reach -35 dB above the noise in that "
              "band). C50 in dB. pra: pyroomacoustics' broadband T30 of the target.", "",
              "| IR | origin | " + " | ".join(f"{b} Hz" for b in bands)
              + " | broadband | pra | C50 | wet dB | pre ms | within |",
              "| --- | --- | " + " | ".join("---:" for _ in bands)
              + " | ---: | ---: | ---: | ---: | ---: | :---: |"]
    order = {"real": 0, "calf": 1, "tap": 2, "pedalboard": 3}
    names = sorted(results, key=lambda k: (order.get(results[k]["origin"], 9), k))
    for k in names:
        r = results[k]
        t, f = r["target"], r["fitted"]
        cells = [f"{_fmt(t['t30_s'][b])}/{_fmt(f['t30_s'][b])}" for b in bands]
        lines.append(
            f"| {k} | {r['origin']} | " + " | ".join(cells)
            + f" | {_fmt(t['t30_broadband_s'])}/{_fmt(f['t30_broadband_s'])}"
            + f" | {_fmt(t.get('t30_broadband_pra_s'))}"
            + f" | {_fmt(t['c50_db'], 1)}/{_fmt(f['c50_db'], 1)}"
            + f" | {r['reverb']['wet_level_db']:.1f} | {r['reverb']['pre_delay_ms']:.1f}"
            + f" | {'yes' if r['within_10pct_500_4k'] else 'no'} |")
    lines += ["", "## Per IR: EDT per octave band, target/fitted (s)", "",
              "| IR | " + " | ".join(f"{b} Hz" for b in bands) + " | broadband |",
              "| --- | " + " | ".join("---:" for _ in bands) + " | ---: |"]
    for k in names:
        t, f = results[k]["target"], results[k]["fitted"]
        cells = [f"{_fmt(t['edt_s'][b])}/{_fmt(f['edt_s'][b])}" for b in bands]
        lines.append(f"| {k} | " + " | ".join(cells)
                     + f" | {_fmt(t['edt_broadband_s'])}/{_fmt(f['edt_broadband_s'])} |")
    lines += ["", "Reproduce: `" + meta["command"] + "` (about "
              f"{meta['seconds_total'] / 60:.0f} min; the plug-in IRs need ffmpeg, "
              "calf-plugins and tap-plugins).", ""]
    return "\n".join(lines)


def _plot(doc: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vocalmix.training.figures import png_bytes

    colors = {"real": "tab:blue", "calf": "tab:orange", "tap": "tab:green",
              "pedalboard": "tab:red"}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5.2))
    lim = (0.05, 20.0)
    for origin, col in colors.items():
        xs, ys = [], []
        for r in doc["irs"].values():
            if r["origin"] != origin:
                continue
            for b in BANDS_HZ:
                t, f = r["target"]["t30_s"][str(int(b))], r["fitted"]["t30_s"][str(int(b))]
                if t is not None and f is not None:
                    xs.append(t)
                    ys.append(f)
        if xs:
            a1.scatter(xs, ys, s=9, alpha=0.6, color=col, label=f"{origin} ({len(xs)})")
    g = np.geomspace(*lim, 50)
    a1.plot(g, g, "k-", lw=0.8)
    a1.plot(g, 1.1 * g, "k:", lw=0.8)
    a1.plot(g, 0.9 * g, "k:", lw=0.8, label="±10 %")
    a1.set(xscale="log", yscale="log", xlim=lim, ylim=lim, xlabel="target T30 (s)",
           ylabel="fitted T30 (s)", title="T30 per octave band, 125 Hz-8 kHz, every IR")
    a1.legend(fontsize=8)
    for origin, col in colors.items():
        worst = []
        for r in doc["irs"].values():
            if r["origin"] != origin:
                continue
            e = []
            for b in HEADLINE_BANDS_HZ:
                t, f = (r["target"]["t30_s"][str(int(b))], r["fitted"]["t30_s"][str(int(b))])
                e.append(abs(f / t - 1) if t is not None and f is not None else np.inf)
            worst.append(100 * max(e))
        if worst:
            errs = np.sort(np.minimum(worst, 1e3))
            a2.step(errs, np.arange(1, errs.size + 1) / errs.size, where="post", color=col,
                    label=f"{origin} (n={errs.size})")
    a2.axvline(10, color="k", ls=":", lw=0.8)
    a2.set(xlim=(0, 30), ylim=(0, 1.02), xlabel="worst |T30 error| over 500 Hz-4 kHz (%); "
           "not measurable: off the right edge", ylabel="fraction of IRs",
           title="Cumulative: IRs within a given T30 error")
    a2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return png_bytes(fig, 110)


def _write_bytes(path: Path, data: bytes, force: bool) -> None:
    from vocalmix.core.audio import _atomic_path, check_outputs

    check_outputs([path], force=force)
    with _atomic_path(path, path.suffix) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_report(folder: str | Path, doc: dict, *, force: bool = False) -> list[Path]:
    """Write ``reverb_fit.json``, ``reverb_fit.md`` and (with matplotlib)
    ``reverb_fit.png`` into ``folder``, each atomically."""
    from vocalmix.core.audio import write_text

    d = Path(folder)
    out = [d / "reverb_fit.json", d / "reverb_fit.md"]
    write_text(out[0], json.dumps(_json_safe(doc), indent=1) + "\n", force=force)
    write_text(out[1], report_markdown(doc), force=force)
    try:
        png = _plot(doc)
    except ImportError:
        return out
    _write_bytes(d / "reverb_fit.png", png, force)
    return [*out, d / "reverb_fit.png"]


def build_document(results: dict[str, dict], *, command: str, fit: dict,
                   seconds_total: float, notes: list[str] | None = None,
                   plugin_status: dict | None = None) -> dict:
    """The report's JSON document: ``meta`` (settings, headline figures, cross-check,
    determinism) and ``irs`` (every fit, by name)."""
    import scipy

    from vocalmix._version import __version__

    try:
        import pyroomacoustics

        pra_version = pyroomacoustics.__version__
    except ImportError:
        pra_version = None
    head = {"real": _headline(results, ("real",)),
            "plugins": _headline(results, ("calf", "tap")),
            "calf": _headline(results, ("calf",)), "tap": _headline(results, ("tap",)),
            "pedalboard": _headline(results, ("pedalboard",))}
    hr = head["real"]
    if hr["n"]:
        met = hr["fraction"] >= 0.8
        goal = (f"{'Met' if met else 'Not met'}: {hr['within']} of {hr['n']} real IRs "
                f"({100 * hr['fraction']:.0f} %).")
    else:
        goal = "No real IRs were fitted in this run."
    secs = [r["seconds"] for r in results.values() if "seconds" in r]
    calf = []
    for k, r in sorted(results.items()):
        if r["origin"] == "calf":
            inf = r.get("info", {})
            t1k = (inf.get("wet_t30_s_bands") or {}).get("1000")
            calf.append({"name": k, "decay_time_s": inf.get("decay_time_s"),
                         "wet_t30_s": inf.get("wet_t30_s"), "wet_t30_1k_s": t1k,
                         "ratio": (inf["wet_t30_s"] / inf["decay_time_s"])
                         if inf.get("wet_t30_s") and inf.get("decay_time_s") else None})
    tap = [{"name": k, "wet_t30_s": r["info"]["wet_t30_s"]}
           for k, r in sorted(results.items()) if r["origin"] == "tap"]
    rendered = [(k, r.get("info", {}).get("deterministic")) for k, r in results.items()
                if r["origin"] in ("calf", "tap", "pedalboard")]
    if rendered:
        bad = [k for k, d in rendered if d is False]
        checked = [k for k, d in rendered if d is not None]
        det = (f"Every rendered IR was made twice and compared bit for bit: {len(checked)} "
               f"checked, {len(checked) - len(bad)} identical"
               + (f"; differing: {', '.join(bad)}." if bad else "."))
    else:
        det = "No rendered IRs in this run."
    return {
        "meta": {
            "command": command, "vocalmix_version": __version__,
            "scipy_version": scipy.__version__, "pyroomacoustics_version": pra_version,
            "date": time.strftime("%Y-%m-%d"), "fit": fit, "bands_hz": list(BANDS_HZ),
            "headline_bands_hz": list(HEADLINE_BANDS_HZ), "headline": head,
            "goal_sentence": goal, "pyroomacoustics": _pra_agreement(results),
            "seconds_total": round(seconds_total, 1),
            "seconds_per_ir_median": float(np.median(secs)) if secs else 0.0,
            "seconds_per_ir_max": float(max(secs)) if secs else 0.0,
            "plugin_status": plugin_status or {}, "calf": calf, "tap": tap,
            "determinism": det, "notes": notes or [],
        },
        "irs": results,
    }


# --- command line -----------------------------------------------------------------------


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix fit-reverb``."""
    p = sub.add_parser("fit-reverb", help="fit the synthetic reverb to impulse responses "
                                          "(writes presets)")
    p.add_argument("irs", nargs="*", help="impulse response files")
    p.add_argument("--library", action="store_true",
                   help="fit the IR library (vocalmix.training.irlib): pedalboard grid, Calf, TAP "
                        "plug-ins where ffmpeg has them, and the real IRs of the data folder")
    p.add_argument("--origins", default="pedalboard,calf,tap,real",
                   help="with --library: which sources, comma-separated")
    p.add_argument("--data", default=None,
                   help="with --library: the data folder holding ir/ (default: $VOCALMIX_DATA "
                        "or ../shared/data)")
    p.add_argument("--limit", type=int, default=None, help="fit at most this many IRs")
    p.add_argument("-o", "--output", required=True, help="presets JSON to write")
    p.add_argument("--report", default=None,
                   help="folder for reverb_fit.md, reverb_fit.json and reverb_fit.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--maxiter", type=int, default=DEFAULTS["maxiter"],
                   help="generations of the optimiser")
    p.add_argument("--popsize", type=int, default=DEFAULTS["popsize"],
                   help="population per parameter")
    p.add_argument("--resume", action="store_true",
                   help="with --report: reuse the fits an interrupted run saved in "
                        "DIR/.reverb_fit.partial.jsonl")
    p.add_argument("--force", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=_cmd)


def _items(args: argparse.Namespace, log: Progress):
    """(name, origin, source, settings, ir, sample_rate, info) for each IR to fit."""
    from vocalmix.core.errors import AudioError
    from vocalmix.training.irlib import library, read_ir

    for path in args.irs:
        try:
            x, sr = read_ir(path)
        except AudioError as e:
            log(f"skipping {path}: {e}")
            continue
        yield Path(path).stem, "real", Path(path).name, {}, x, sr, {}
    if args.library:
        origins = [o.strip() for o in args.origins.split(",") if o.strip()]
        for it in library(origins, data_dir=args.data, verify=True, log=log):
            info = dict(it.info)
            if it.wet is not None:
                wet_d = describe(it.wet, it.sample_rate)
                info["wet_t30_s_bands"] = {str(int(b)): _r(v) for b, v in wet_d.t30.items()}
            yield it.name, it.origin, it.source, it.settings, it.ir, it.sample_rate, info


def _fit_line(r: dict) -> str:
    """The progress line of one fit: target and fitted T30 in the headline bands (the
    target's T20 where its T30 cannot be measured, marked), C50, the verdict, the time."""
    ft = r["fitted"]["t30_s"]

    def aim(b: str) -> str:
        t, stand_in = _aimed_t30(r, b)
        return f"{_fmt(t)} ({stand_in})" if stand_in else _fmt(t)

    if r["within_10pct_500_4k"]:
        verdict = "within 10 %"
    elif t30_within(r, use_t20=True):
        verdict = ("within 10 % of the T20 (or noise fit) where the target's T30 is not "
                   "measurable")
    else:
        verdict = "NOT within 10 %"
    return ("   T30 target/fitted (s): " + ", ".join(
        f"{b} Hz {aim(b)}/{_fmt(ft[b])}" for b in ("500", "1000", "2000", "4000"))
        + f"; C50 {_fmt(r['target']['c50_db'], 1)}/{_fmt(r['fitted']['c50_db'], 1)} dB; "
        f"{verdict}; {r['seconds']:.0f} s")


def _cmd(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import check_outputs, write_text
    from vocalmix.core.errors import ParamsError

    if not args.irs and not args.library:
        raise ParamsError("give impulse response files, or --library")
    rep = Path(args.report) if args.report else None
    outs = [args.output] + ([rep / n for n in ("reverb_fit.json", "reverb_fit.md",
                                                "reverb_fit.png")] if rep else [])
    check_outputs(outs, args.irs, force=args.force)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    progress = _quiet if args.quiet else log
    results: dict[str, dict] = {}
    presets: dict[str, dict] = {}
    guesses: list[str] = []  # fitted with no measurable decay: no preset
    notes: list[str] = []
    ckpt = rep / ".reverb_fit.partial.jsonl" if rep is not None else None
    saved: dict[str, dict] = {}
    if ckpt is not None and args.resume and ckpt.exists():
        for line in ckpt.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError):
                d = json.loads(line)
                saved[d["name"]] = d["result"]
        progress(f"resuming: {len(saved)} fit(s) read from {ckpt}")
    elif ckpt is not None and ckpt.exists():
        ckpt.unlink()
    t0 = time.perf_counter()
    for i, (name, origin, source, settings, x, sr, info) in enumerate(_items(args, log)):
        if args.limit is not None and i >= args.limit:
            break
        if name in results:
            log(f"skipping {source}: the name {name!r} is taken")
            continue
        if name in saved:
            r = saved[name]
        else:
            progress(f"[{i + 1}] fitting {name} ({origin}: {source})")
            r = fit_ir(x, sr, seed=args.seed, maxiter=args.maxiter, popsize=args.popsize)
            r.update(origin=origin, source=source, settings=settings, info=info)
            if ckpt is not None:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                with open(ckpt, "a", encoding="utf-8") as f:
                    f.write(json.dumps(_json_safe({"name": name, "result": r})) + "\n")
        results[name] = r
        if NO_DECAY_NOTE in (r.get("notes") or ()):
            # (a steady noise was fitted to a 30 s send at +12 dB: a preset that washes
            # the vocal out; the fit stays in the report)
            guesses.append(name)
        else:
            presets[name] = preset_entry(name, r, source=source, origin=origin,
                                         settings=settings or None)
        progress(_fit_line(r))
        for n in r.get("notes") or ():
            if (n.startswith((OFFSET_NOTE_PREFIX, T20_NOTE_PREFIX, NOISE_FIT_NOTE_PREFIX))
                    or n == NO_DECAY_NOTE):
                progress(f"   {n}")
    from vocalmix.core.errors import AudioError

    if not results:
        raise AudioError("no impulse response could be read: nothing fitted, nothing written")
    if not presets:
        raise AudioError(f"no decay could be measured in {', '.join(guesses)}: no preset "
                         "to write, nothing written (give impulse responses: a room's or a "
                         "reverb's answer to a click, falling away after it)")
    write_text(args.output, json.dumps(_json_safe(presets), indent=1) + "\n", force=args.force)
    written = [args.output]
    if rep is not None:
        cmd = "vocalmix fit-reverb " + " ".join(
            ([*args.irs] if args.irs else [])
            + (["--library"] + ([f"--origins {args.origins}"]
                                if args.origins != "pedalboard,calf,tap,real" else [])
               if args.library else [])
            + ([f"--limit {args.limit}"] if args.limit is not None else [])
            + [f"-o {args.output}", f"--report {args.report}"]
            + ([f"--seed {args.seed}"] if args.seed else [])
            + ([f"--maxiter {args.maxiter}"] if args.maxiter != DEFAULTS["maxiter"] else [])
            + ([f"--popsize {args.popsize}"] if args.popsize != DEFAULTS["popsize"] else []))
        from vocalmix.training.irlib import plugin_status

        status = plugin_status() if args.library else {}
        for k, why in status.items():
            if why:
                notes.append(f"{k} IRs skipped: {why}")
        doc = build_document(results, command=cmd, seconds_total=time.perf_counter() - t0,
                             fit={"sample_rate": "each IR's own", "popsize": args.popsize,
                                  "maxiter": args.maxiter, "tol": DEFAULT_TOL,
                                  "seed": args.seed, "wet_level_db_bounds": WET_DB_BOUNDS,
                                  "pre_delay_ms_bounds": PRE_DELAY_MS_BOUNDS,
                                  "search_factor": SEARCH_FACTOR,
                                  "check_t30_tolerance": CHECK_T30_TOL,
                                  "check_rounds": CHECK_ROUNDS},
                             notes=notes, plugin_status=status)
        written += [str(p) for p in write_report(rep, doc, force=args.force)]
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()
    ok = sum(r["within_10pct_500_4k"] for r in results.values())
    skipped = (f" ({len(guesses)} with no measurable decay, not written as presets: "
               f"{', '.join(guesses)})" if guesses else "")
    print(f"fitted {len(results)} IR(s); T30 within 10% at 500 Hz-4 kHz for {ok}{skipped}; "
          "wrote " + ", ".join(str(w) for w in written))
    return 0
