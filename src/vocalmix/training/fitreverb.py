"""Fit the ``synthetic`` reverb to measured or rendered impulse responses (issue 4, reverb).

``vocalmix fit-reverb IR.wav [...] -o presets.json [--report DIR]``
``vocalmix fit-reverb --library -o presets.json --report DIR``

What is fitted
    The vocal chain's reverb send for a unit impulse: the dry impulse plus the
    ``synthetic`` reverb's wet IR (:func:`vocalmix.core.reverb.render_synthetic_ir`, width 1)
    delayed by ``pre_delay_ms`` and scaled by ``wet_level_db``
    (:func:`render_send_ir`, the same operations as :func:`vocalmix.core.render.reverb_wet`).
    Its free parameters are ``decay_s`` (T30 at 1 kHz), the six non-reference
    ``band_decay_ratios`` (125, 250, 500, 2000, 4000, 8000 Hz), ``wet_level_db``
    (-40 to +6 dB: the params' maximum is +6, so a room wetter than that is fitted at
    +6 dB and its C50 comes out higher than the target's) and ``pre_delay_ms``
    (0 to 100 ms).

How
    Stage 1, an initial guess measured on the target: each band's decay = its T30 (a band
    whose T30 cannot be measured takes the nearest measurable band's), then wet level
    (-30 to +6 dB in 3 dB steps, plus the level that gives the target's C50 for an
    exponential decay) x pre-delay (0 to 70 ms, 10 values) on a grid, scored on the
    broadband terms below, then refined one at a time (wet +-1.5 dB in 0.5 dB steps,
    pre-delay in 7 steps over half the distance to its grid neighbours).
    Stage 2, ``scipy.optimize.differential_evolution`` (a genetic / evolutionary
    optimiser: mutation 0.5-1, recombination 0.7, ``popsize`` 5 per parameter, at most
    12 generations, fewer for IRs longer than 4 s, seed 0) over the nine numbers, its
    population seeded as a cloud around that guess (the guess itself included; 4 % in
    log decay and log ratios, 1.5 dB, 20 % of the pre-delay), searching log(decay_s) and
    log(ratios) within a factor 1.35 of the guess and the full wet and pre-delay ranges.

    The cost compares target and candidate as measured by the same ISO 3382 routine
    (:mod:`vocalmix.core.reverb`: Schroeder integration with noise handling, octave bands by
    zero-phase Butterworth band-passes; :func:`describe`): per octave band 125 Hz-8 kHz,
    T30 (relative error in units of 2 %: the dominant term) and EDT (units of 10 %,
    weight 1/4); broadband EDT (units of 10 %); C50 (units of 1 dB); the broadband energy
    decay curve at 2, 5, 10, 20, 40 and 80 ms after the direct sound (units of 2 dB,
    weight 1/2 in all, where the target's is above -30 dB); and the times by which 2, 10
    and 30 % of the energy after the direct sound has arrived (units of 10 %, at least
    1 ms), which pin the pre-delay. A band whose target T30 cannot be measured is left
    out of the T30 terms.

    Both sides are measured at 22.05 kHz (the 8 kHz octave, 5.7-11.3 kHz, needs at least
    that; its upper edge is capped at 10.8 kHz): the target is resampled (soxr HQ), and
    each candidate is rendered at the *target's* rate and resampled the same way
    (:class:`SendRenderer`: the synthetic reverb's own seeds, band weights and envelopes;
    bit-identical to :func:`vocalmix.core.reverb.render_synthetic_ir` at the same length,
    within 1e-5 at another, from FFT end effects). The synthetic reverb's noise differs
    from rate to rate, and so does the share of its energy above 11 kHz (its wet IR is
    normalised over the whole band), so this is the preset as it sounds at the IR's rate:
    a candidate rendered at 22.05 kHz itself came out up to 4 dB off in wet level on our
    own reverb. A fit takes 10 to 60 s on one core (longer on a loaded machine).

What is reported
    Target and fitted figures are measured again at the IR's own rate, the fitted side
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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vocalmix.core.params import (
    BAND_DECAY_RATIO,
    DECAY_BANDS_HZ,
    REVERB_DECAY_RANGE_S,
    Reverb,
    clip,
)
from vocalmix.core.reverb import clarity_c50_db

FIT_SR = 22050
BANDS_HZ: tuple[float, ...] = DECAY_BANDS_HZ
HEADLINE_BANDS_HZ = (500.0, 1000.0, 2000.0, 4000.0)
REF_BAND = 3  # DECAY_BANDS_HZ[3] = 1 kHz, the reference of band_decay_ratios
EDC_TIMES_MS = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
ARRIVAL_FRACTIONS = (0.02, 0.1, 0.3)  # of the energy after the direct sound
DIRECT_MS = 1.0  # the direct sound's extent after the onset, left out of the arrival times
WET_DB_BOUNDS = (-40.0, 6.0)
PRE_DELAY_MS_BOUNDS = (0.0, 100.0)
SEARCH_FACTOR = 1.35  # log(decay) and log(ratio) are searched within x0 / 1.35 .. x0 * 1.35
DECAY_LIMITS_S = REVERB_DECAY_RANGE_S  # params.Reverb.decay_s
RATIO_LIMITS = (BAND_DECAY_RATIO.lo, BAND_DECAY_RATIO.hi)  # params.Reverb.band_decay_ratios
DEFAULTS = {"popsize": 5, "maxiter": 12, "tol": 0.005, "long_ir_s": 4.0}

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

    def as_dict(self) -> dict:
        def r(v: float, nd: int = 4) -> float | None:
            return round(float(v), nd) if math.isfinite(v) else None

        return {"t30_s": {str(int(k)): r(v) for k, v in self.t30.items()},
                "edt_s": {str(int(k)): r(v) for k, v in self.edt.items()},
                "t30_broadband_s": r(self.t30_broadband),
                "edt_broadband_s": r(self.edt_broadband), "c50_db": r(self.c50_db, 3),
                "edc_db": {f"{k:g}": r(v, 3) for k, v in self.edc_db.items()},
                "arrival_ms": {f"{k:g}": r(v, 3) for k, v in self.arrival_ms.items()}}


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


def _times(x: np.ndarray, sample_rate: int) -> tuple[float, float, np.ndarray]:
    """(T30, EDT, EDC dB) from one Schroeder EDC, computed once for both kinds by
    :mod:`vocalmix.core.reverb` (the tests check they equal :func:`reverberation_time`'s)."""
    from vocalmix.core.reverb import _edc_db, _time_from_edc

    try:
        edc, decays = _edc_db(x, sample_rate)
    except ValueError:
        return math.nan, math.nan, np.zeros(0)
    return (_time_from_edc(edc, decays, sample_rate, "T30"),
            _time_from_edc(edc, decays, sample_rate, "EDT"), edc)


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
    t30, edt = {}, {}
    for b in bands:
        try:
            xb = _band(x, sample_rate, b)
        except ValueError:
            t30[b] = edt[b] = math.nan
            continue
        t30[b], edt[b], _ = _times(xb, sample_rate)
    t30_bb, edt_bb, edc = _times(x, sample_rate)
    pts = {}
    for ms in EDC_TIMES_MS:
        k = int(round(ms * 1e-3 * sample_rate))
        pts[ms] = float(edc[k]) if k < edc.size and np.isfinite(edc[k]) else math.nan
    return Descriptors(t30=t30, edt=edt, t30_broadband=t30_bb, edt_broadband=edt_bb,
                       c50_db=_safe(lambda: clarity_c50_db(x, sample_rate)), edc_db=pts,
                       arrival_ms=_arrival_ms(x, sample_rate))


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
    the params' +6 dB (the fit never proposes one, older presets did)."""
    if isinstance(params, Reverb):
        return replace(params, wet_level_db=0.0, enabled=True), params.wet_level_db
    d = dict(params)
    wet = float(d.pop("wet_level_db", 0.0))
    kind = d.pop("type", "freeverb" if "room_size" in d else "synthetic")
    if "band_decay_ratios" in d:
        d["band_decay_ratios"] = tuple(d["band_decay_ratios"])
    return Reverb(type=kind, enabled=True, wet_level_db=0.0, **d), wet


def render_send_ir(params: Reverb | dict, sample_rate: int = FIT_SR,
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
    """Fast renders of the synthetic reverb's send at one rate, for the optimiser.

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


# --- the fit ----------------------------------------------------------------------------


SHAPE_CAP = 2.0  # soft cap of the shape terms, in their units (see _loss)


def _soft(e: float, cap: float = SHAPE_CAP) -> float:
    """``e**2`` for small errors, growing only logarithmically past ``cap``: a feature
    the synthetic reverb cannot have (a strong early reflection, a gap) then costs about
    the same whatever the decays, and cannot pull the T30s away from the target's."""
    return cap * cap * math.log1p((e / cap) ** 2)


def _loss(target: Descriptors, cand: Descriptors, bands: tuple[float, ...]) -> float:
    """The fit's cost (see the module docstring): T30 terms quadratic, shape terms (EDT,
    C50, early EDC, arrival times) soft-capped (:func:`_soft`)."""
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
        total += _soft((c - target.c50_db) / 1.0 if math.isfinite(c) else miss)
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


def _prepare_target(ir: np.ndarray, sample_rate: int) -> np.ndarray:
    import soxr

    x = np.asarray(ir, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if sample_rate != FIT_SR:
        x = np.asarray(soxr.resample(x, sample_rate, FIT_SR, quality="HQ"), np.float32)
    return x


def _wet_guess_db(c50_db: float, decay_s: float) -> float:
    """Wet level (dB) whose exponential decay of ``decay_s`` gives ``c50_db`` after a
    unit dry impulse: C50 = (1 + W f) / (W (1 - f)), f the share of the first 50 ms."""
    if not (math.isfinite(c50_db) and math.isfinite(decay_s) and decay_s > 0):
        return -10.0
    f = 1.0 - 10.0 ** (-6.0 * 0.05 / decay_s)
    den = (1.0 - f) * 10.0 ** (c50_db / 10.0) - f
    return 10.0 * math.log10(1.0 / den) if den > 0 else WET_DB_BOUNDS[1]


@dataclass
class _Layout:
    """How the optimiser's vector maps to band decays (see :func:`fit_ir`)."""

    ref: int  # band whose decay is the vector's first entry
    free: list[int]  # bands with their own log-ratio entry
    copy_from: list[int]  # for every band, the band whose decay it takes

    def band_decays(self, z: np.ndarray) -> np.ndarray:
        d = np.empty(len(BANDS_HZ))
        d[self.ref] = math.exp(z[0])
        for j, b in enumerate(self.free):
            d[b] = d[self.ref] * math.exp(z[1 + j])
        return d[self.copy_from]


def _layout(target: Descriptors) -> _Layout:
    ok = [i for i, b in enumerate(BANDS_HZ) if math.isfinite(target.t30[b])]
    logf = np.log2(np.asarray(BANDS_HZ))
    if not ok:
        return _Layout(ref=REF_BAND, free=[], copy_from=[REF_BAND] * len(BANDS_HZ))
    ref = min(ok, key=lambda i: abs(logf[i] - logf[REF_BAND]))
    near = [min(ok, key=lambda j, i=i: (abs(logf[j] - logf[i]), j)) for i in range(len(BANDS_HZ))]
    near[ref] = ref
    return _Layout(ref=ref, free=[i for i in ok if i != ref], copy_from=near)


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


def fit_ir(ir: np.ndarray, sample_rate: int, *, seed: int = 0,
           popsize: int = DEFAULTS["popsize"], maxiter: int = DEFAULTS["maxiter"],
           tol: float = DEFAULTS["tol"], report: bool = True,
           callback: Callable | None = None,
           long_ir_s: float | None = DEFAULTS["long_ir_s"]) -> dict:
    """Fit the synthetic reverb's send to one IR (see the module docstring).

    Args:
        ir: the target impulse response ``(n,)`` or ``(n, channels)``.
        sample_rate: its rate, Hz.
        seed, popsize, maxiter, tol: ``differential_evolution``'s (popsize is per
            parameter).
        long_ir_s: for a target whose longest band's candidate IR is longer than this
            (``1.2 x T30 + 0.05 s``), the generations are scaled down in proportion
            (at least 4), which keeps a fit near a minute; ``None``: always ``maxiter``.
        callback: passed to ``differential_evolution``.
        report: also measure target and fitted at the IR's own rate (``target``,
            ``fitted``, pyroomacoustics cross-check); otherwise only the fit-rate figures.

    Returns:
        ``{"reverb": {type, decay_s, band_decay_ratios, width, wet_level_db,
        pre_delay_ms}, "loss", "evaluations", "generations", "seconds", "notes",
        "target_fit_sr", "fitted_fit_sr", "target", "fitted", "within_10pct_500_4k"}``
        (figures as :meth:`Descriptors.as_dict`; ``target``/``fitted`` carry
        ``t30_broadband_pra_s`` too).
    """
    from scipy.optimize import differential_evolution

    t0 = time.perf_counter()
    x = _prepare_target(ir, sample_rate)
    target = describe(x, FIT_SR)
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
    bounds += [(v - span, v + span) for v in x0[1:]]
    bounds += [WET_DB_BOUNDS, PRE_DELAY_MS_BOUNDS]
    x0 = [float(np.clip(v, lo, hi)) for v, (lo, hi) in zip(x0, bounds[:-2], strict=True)]
    longest = max(math.exp(bounds[0][1] + max([b[1] for b in bounds[1:-2]] + [0.0])),
                  float(d0.max()) * SEARCH_FACTOR)
    # candidates are rendered at the IR's own rate and resampled like the target: the
    # synthetic reverb's noise differs from rate to rate, and so does the share of its
    # energy above the fit rate's Nyquist, so this is what the preset sounds like there
    synth = SendRenderer(sample_rate, min(36.0, 1.2 * longest + 0.05))

    def candidate(z: np.ndarray) -> np.ndarray:
        return _prepare_target(synth.send(lay.band_decays(z), z[-2], z[-1]), sample_rate)

    def objective(z: np.ndarray) -> float:
        return _loss(target, describe(candidate(z), FIT_SR), BANDS_HZ)

    # stage 1: wet level and pre-delay on a grid, the band decays at the guess, scored on
    # the broadband terms alone (EDT, C50, early EDC: no band filtering, so cheap)
    wet_c50 = float(np.clip(_wet_guess_db(target.c50_db, d0[REF_BAND]), *WET_DB_BOUNDS))
    grid = [(w, pd) for w in sorted({*np.arange(-30.0, 6.01, 3.0), wet_c50})
            for pd in (0.0, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 70.0)]
    def broadband(w: float, pd: float) -> float:
        return _loss(target, describe(candidate(np.array([*x0, w, pd])), FIT_SR, ()), ())

    scores = [broadband(w, pd) for w, pd in grid]
    w0, p0 = grid[int(np.argmin(scores))]
    # then finer, one coordinate at a time: wet in 0.5 dB steps, pre-delay in 7 steps
    # across half the distance to its grid neighbours
    ws = np.clip(w0 + np.arange(-1.5, 1.51, 0.5), *WET_DB_BOUNDS)
    w0 = float(ws[int(np.argmin([broadband(w, p0) for w in ws]))])
    ps = np.clip(p0 + np.linspace(-0.5, 0.5, 7) * max(1.0, 0.5 * p0), *PRE_DELAY_MS_BOUNDS)
    p0 = float(ps[int(np.argmin([broadband(w0, pd) for pd in ps]))])
    n_stage1 = len(grid) + len(ws) + len(ps)
    x0 = np.array([*x0, w0, p0])
    # stage 2: differential evolution over all parameters, its population seeded as a
    # cloud around that guess (x0 itself included)
    rng = np.random.default_rng(seed)
    m = max(5, popsize * len(x0))
    sigma = np.array([0.04] * (len(x0) - 2) + [1.5, max(1.0, 0.2 * x0[-1])])
    lo_b, hi_b = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    init = np.clip(x0 + rng.standard_normal((m, len(x0))) * sigma, lo_b, hi_b)
    init[0] = np.clip(x0, lo_b, hi_b)
    loss0 = objective(init[0])
    # long IRs cost more per candidate: fewer generations for them (deterministic)
    gens = maxiter if long_ir_s is None else int(np.clip(
        round(maxiter * long_ir_s / (1.2 * float(d0.max()) + 0.05)), min(4, maxiter), maxiter))
    res = differential_evolution(objective, bounds, seed=seed, maxiter=gens, tol=tol,
                                 mutation=(0.5, 1.0), recombination=0.7, init=init,
                                 polish=False, updating="immediate", callback=callback)
    z = np.asarray(res.x)
    rv, notes = _band_decays_to_reverb(lay.band_decays(z), z[-2], z[-1])
    if rv.wet_level_db >= WET_DB_BOUNDS[1] - 0.05:
        notes.append("wet level at the params' maximum of +6 dB: the target is wetter, so "
                     "the fitted C50 is higher than the target's")
    missing = [f"{b:g}" for b in BANDS_HZ if not math.isfinite(target.t30[b])]
    if missing:
        notes.append(f"target T30 not measurable at {', '.join(missing)} Hz: those bands "
                     "take the nearest measurable band's decay")
    out = {
        "reverb": {"type": "synthetic", "decay_s": rv.decay_s,
                   "band_decay_ratios": list(rv.band_decay_ratios), "width": rv.width,
                   "wet_level_db": rv.wet_level_db, "pre_delay_ms": rv.pre_delay_ms},
        "loss": round(float(res.fun), 4), "loss_initial_guess": round(float(loss0), 4),
        "evaluations": int(res.nfev) + n_stage1 + 1,
        "generations": int(res.nit), "notes": notes,
        "target_fit_sr": target.as_dict(),
        "fitted_fit_sr": describe(candidate(z), FIT_SR).as_dict(),
    }
    if report:
        out.update(evaluate_fit(ir, sample_rate, rv))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def evaluate_fit(ir: np.ndarray, sample_rate: int, reverb: Reverb | dict) -> dict:
    """Target and fitted figures at the IR's own rate; the fitted side rendered by the
    mixing code (:func:`render_send_ir`). Returns ``target``, ``fitted`` (with
    ``t30_broadband_pra_s``) and ``within_10pct_500_4k``."""
    x = np.asarray(ir, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    fitted_ir = render_send_ir(reverb, sample_rate)
    tgt, fit = describe(x, sample_rate).as_dict(), describe(fitted_ir, sample_rate).as_dict()
    tgt["t30_broadband_pra_s"] = _r(pra_t30(x, sample_rate))
    fit["t30_broadband_pra_s"] = _r(pra_t30(fitted_ir, sample_rate))
    r = {"target": tgt, "fitted": fit}
    r["within_10pct_500_4k"] = t30_within(r)
    return r


def _r(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


def t30_within(result: dict, tolerance: float = 0.10,
               bands: tuple[float, ...] = HEADLINE_BANDS_HZ) -> bool:
    """Whether the fitted T30 is within ``tolerance`` of the target's in every band
    (false where either cannot be measured)."""
    for b in bands:
        t = result["target"]["t30_s"].get(str(int(b)))
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
        t = r["target"]["t30_s"].get(str(int(b)))
        f = r["fitted"]["t30_s"].get(str(int(b)))
        if t is None:
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
        f"{meta['scipy_version']}; popsize {meta['fit']['popsize']} per parameter, at most "
        f"{meta['fit']['maxiter']} generations, seed {meta['fit']['seed']}) of the "
        "`synthetic` reverb's send (dry impulse + pre-delayed wet at `wet_level_db`: "
        "`decay_s`, six band ratios, wet level, pre-delay) to each IR, at "
        f"{meta['fit']['sample_rate_hz']} Hz. Target and fitted figures below are measured "
        "again at the IR's own rate with the ISO 3382 routine of `vocalmix.core.reverb` "
        "(Schroeder integration with noise handling; octave bands by zero-phase Butterworth "
        "band-passes), the fitted side on the send as the mixing code renders it. Total "
        f"fitting time {meta['seconds_total'] / 60:.1f} min of wall time, one process on a 2-core "
        "machine shared with other jobs "
        f"({meta['seconds_per_ir_median']:.0f} s median per IR, "
        f"{meta['seconds_per_ir_max']:.0f} s at most).", ""]
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
    lines += ["", f"Wet level at the +6 dB bound (the params' maximum; the room is wetter than "
              f"the preset, so its fitted C50 is higher than the target's): {len(capped)} IR(s)"
              + (": " + ", ".join(capped) if capped else "") + ".", ""]
    lines += ["## Method notes", "",
              "- Every IR is measured after 50 ms of leading zeros. A send's dry impulse sits "
              "at sample 0, and the zero-phase octave filters (`vocalmix.core.reverb.band_filter`, "
              "run forward and backward) make a filtered impulse ring before it; the leading "
              "zeros keep that ringing, which the IR's own span would cut off, bending the "
              "low bands' EDT. Leading silence is otherwise ignored by the onset detection.",
              "- Candidates are rendered at the target's own rate and resampled to the fit "
              "rate like the target, so the fitted figures at the IR's rate come from the "
              "same noise as in the fit; differences between the fit-rate and own-rate "
              "figures are those of the resampling and the band edges.",
              "- A band whose target T30 is not measurable takes the decay of the nearest "
              "measurable band; an IR with no measurable T30 in any band is fitted on EDT, "
              "C50, the early EDC and the arrival times alone.", ""]
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
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"real": "tab:blue", "calf": "tab:orange", "tap": "tab:green",
              "pedalboard": "tab:red"}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5.2))
    lim = [0.05, 20.0]
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
        errs = []
        for r in doc["irs"].values():
            if r["origin"] != origin:
                continue
            e = []
            for b in HEADLINE_BANDS_HZ:
                t, f = (r["target"]["t30_s"][str(int(b))], r["fitted"]["t30_s"][str(int(b))])
                e.append(abs(f / t - 1) if t is not None and f is not None else np.inf)
            errs.append(100 * max(e))
        if errs:
            errs = np.sort(np.minimum(errs, 1e3))
            a2.step(errs, np.arange(1, errs.size + 1) / errs.size, where="post", color=col,
                    label=f"{origin} (n={errs.size})")
    a2.axvline(10, color="k", ls=":", lw=0.8)
    a2.set(xlim=(0, 30), ylim=(0, 1.02), xlabel="worst |T30 error| over 500 Hz-4 kHz (%); "
           "not measurable: off the right edge", ylabel="fraction of IRs",
           title="Cumulative: IRs within a given T30 error")
    a2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


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
        presets[name] = preset_entry(name, r, source=source, origin=origin,
                                     settings=settings or None)
        tt, ft = r["target"]["t30_s"], r["fitted"]["t30_s"]
        progress("   T30 target/fitted (s): " + ", ".join(
            f"{b} Hz {_fmt(tt[b])}/{_fmt(ft[b])}" for b in ("500", "1000", "2000", "4000"))
            + f"; C50 {_fmt(r['target']['c50_db'], 1)}/{_fmt(r['fitted']['c50_db'], 1)} dB; "
            f"{'within' if r['within_10pct_500_4k'] else 'NOT within'} 10 %; "
            f"{r['seconds']:.0f} s")
    if not results:
        from vocalmix.core.errors import AudioError

        raise AudioError("no impulse response could be read: nothing fitted, nothing written")
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
                             fit={"sample_rate_hz": FIT_SR, "popsize": args.popsize,
                                  "maxiter": args.maxiter, "tol": DEFAULTS["tol"],
                                  "seed": args.seed, "wet_level_db_bounds": WET_DB_BOUNDS,
                                  "pre_delay_ms_bounds": PRE_DELAY_MS_BOUNDS,
                                  "search_factor": SEARCH_FACTOR},
                             notes=notes, plugin_status=status)
        written += [str(p) for p in write_report(rep, doc, force=args.force)]
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()
    ok = sum(r["within_10pct_500_4k"] for r in results.values())
    print(f"fitted {len(results)} IR(s); T30 within 10% at 500 Hz-4 kHz for {ok}; wrote "
          + ", ".join(str(w) for w in written))
    return 0
