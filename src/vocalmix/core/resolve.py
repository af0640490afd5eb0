"""Resolvers: turn targets (``vocal_to_mix_lu``, ``vocal_lra_lu`` or
``vocal_momentary_range_lu``, ``reverb_decay_s``) into settings (vocal gain, compressor
threshold and ratio, reverb room size).

Vocal gain
    The vocal in the mix is ``g * V`` (``V``: the processed vocal, reverb included, at
    0 dB gain; everything after the compressor is linear) and the pre-master mix is
    ``g * V + B``. K-weighting is linear too, so every 100 ms segment energy of the mix is
    ``g^2 * VV + 2 g * VB + BB`` with the segment sums ``VV``, ``VB``, ``BB`` computed
    once. BS.1770-4 integrated loudness, gating included, then follows exactly for any
    ``g`` (:func:`vocalmix.core.measure.integrated_from_segments`), and a bracketing root
    finder solves ``I(g V) - I(g V + B) = target``. The ``singing`` measure
    (``Targets.vocal_to_mix_measure``) is solved the same way on the same block sums:
    the vocal's gated blocks at gain ``g`` and the mix's mean power over those blocks
    (:func:`vocalmix.core.measure.singing_ratio_from_segments`).

Compressor threshold
    The hot loop. Rendering pedalboard's compressor and measuring LRA costs ~0.45 s per
    try on a 3-minute song, so the search runs on a proxy and only the answer is
    rendered: the input's K-weighted energy per 10 ms frame and channel and its peak
    envelope in dB per frame are computed once; a candidate threshold ``T`` and ratio
    ``R`` give each frame the gain of pedalboard's (JUCE's) hard-knee gain computer,
    ``min(0, (env_db - T) * (1/R - 1))`` dB, so the compressed energies, the 3 s
    short-term loudness at 10 Hz and the LRA (EBU Tech 3342) follow for a whole grid of
    thresholds in a few vectorised operations. The envelope is the compressor's own,
    read off one probe render (:func:`compressor_envelope_db`); on real vocals the
    proxy's LRA tracks real renders within about 0.1 LU. The threshold found is then
    rendered for real; if the measured LRA misses the target by more than the tolerance,
    the search continues on real renders (proxy offset, then regula falsi or secant
    steps; at most ``max_verify`` renders). If a ratio cannot reach the target (the
    reachable LRA bottoms out near input LRA / ratio), the ratio is raised step by step.
    A vocal already at or below the target LRA is left uncompressed (ratio 1): the
    resolver never expands.

    The same search serves a second statistic (``statistic="momentary_range"``): the
    momentary loudness range (:func:`vocalmix.core.measure.momentary_loudness_range`,
    LRA's recipe on 400 ms windows), which the proxy computes from the same 100 ms
    segments with 4-segment windows instead of 30. ``Targets.vocal_momentary_range_lu``
    selects it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vocalmix.core.dsp import equal_channels, frozen
from vocalmix.core.errors import TargetUnreachableError
from vocalmix.core.kernels import brentq
from vocalmix.core.measure import (
    above_floor,
    gated_blocks,
    integrated_from_segments,
    k_weighted_cross,
    k_weighted_energies_of_blocks,
    k_weighted_frame_energies,
    kw_block_len,
    level_free_loudness_range,
    lra_from_short_term,
    momentary_loudness_range,
    remember_segment_energies,
    singing_ratio_from_segments,
)
from vocalmix.core.params import (
    THRESHOLD_RANGE_DB,
    V2M_MEASURES,
    Compressor,
    Master,
    MixParams,
    Reverb,
    clip,
    spec_of,
)

#: the ratios the compressor's search may raise its ratio through, up to 10: about the
#: 95th percentile of engineers' vocal compressors (9.5-12 in the DiffVox chains,
#: docs/evaluation/diffvox.md). Over it a compressor is a limiter on the voice, and its
#: envelope outruns the proxy (a take given 40:1 still missed its target by 1 LU): a
#: target no ratio up to 10 reaches is missed, with a note
RATIO_STEPS = (3.0, 4.0, 6.0, 10.0)
#: the targets' stated tolerance, LU: a resolved target within it is reached (the
#: dynamics target's verification render, the warnings on missed targets)
TARGET_TOLERANCE_LU = 0.3
#: the dynamics statistics the compressor can be resolved to: EBU Tech 3342 LRA (3 s
#: windows) and the momentary loudness range (the same on 400 ms windows)
DYNAMICS_STATISTICS = ("lra", "momentary_range")
#: proxy windows (100 ms segments) per statistic
_WINDOW_SEGMENTS = {"lra": 30, "momentary_range": 4}


def dynamics_statistic(x: np.ndarray, sample_rate: int, statistic: str = "lra") -> float:
    """LRA or momentary loudness range of ``x``, LU (:data:`DYNAMICS_STATISTICS`), both
    gated level-free (:func:`~vocalmix.core.measure.level_free_loudness_range`): the
    compressor's input and output are read before the vocal's gain, at the level the
    take was recorded at, and a take recorded 45 dB too quietly lost the lower half of
    its range to the -70 LUFS gate there, which it will not have in the mix."""
    if statistic == "lra":
        return level_free_loudness_range(x, sample_rate)
    if statistic == "momentary_range":
        return momentary_loudness_range(x, sample_rate)
    raise ValueError(f"unknown dynamics statistic {statistic!r}: use one of "
                     f"{', '.join(DYNAMICS_STATISTICS)}")


# --- vocal gain -----------------------------------------------------------------------


@dataclass(frozen=True)
class GainSolution:
    """Result of :func:`resolve_vocal_gain`.

    Attributes:
        gain_db: the vocal gain, dB.
        vocal_to_mix_lu: the ratio it gives in the requested measure (numpy BS.1770-4 on
            block sums), LU.
        vocal_to_backing_lu: vocal minus backing integrated loudness at that gain, LU.
        premaster_lufs: integrated loudness of ``g * vocal + backing``, LUFS.
        measure: the vocal-to-mix measure solved for (``integrated`` or ``singing``).
        heard_s: how long the vocal is heard, s: its 400 ms blocks that pass its own
            BS.1770-4 gates (those its loudness is set on), at their 100 ms hop
            (:func:`heard_seconds`).
    """

    gain_db: float
    vocal_to_mix_lu: float
    vocal_to_backing_lu: float
    premaster_lufs: float
    measure: str = "integrated"
    heard_s: float = float("nan")
    #: the pre-master sum's K-weighted 100 ms segment energies at ``gain_db``
    #: (``g^2 vv + 2 g vb + bb``), for :func:`resolve_master_headroom`
    premaster_energy: np.ndarray | None = field(default=None, repr=False, compare=False)


#: a vocal heard for less than this long (s) in a mix of at least
#: :data:`BARELY_HEARD_MIX_S` is warned about (:data:`BARELY_HEARD_WARNING`): its level is
#: set on those seconds alone, and a take with the microphone off (a few clicks or
#: noises) is then made loud (+22 dB for three clicks over -80 dBFS hiss in 30 s)
BARELY_HEARD_S = 2.0
BARELY_HEARD_MIX_S = 10.0
BARELY_HEARD_WARNING = (
    "warning: the vocal is heard for only {heard:.1f} s of the {mix:.0f} s mix, and its "
    "level is set on those seconds alone: a take recorded with the microphone off, "
    "holding a few clicks or noises, is made loud; check the vocal file")


#: a vocal heard for at least :data:`BARELY_HEARD_S` whose input's momentary loudness
#: range (:func:`~vocalmix.core.measure.momentary_loudness_range`) stays under this (LU)
#: in a mix of at least :data:`BARELY_HEARD_MIX_S` is warned about
#: (:data:`STEADY_WARNING`): steady noise or hum measures 0-0.3 LU (white and pink noise,
#: mains hum with its harmonics), while the takes and the mixed vocal stems of the shared
#: data measure 1.4-22 LU (the most compressed mixed stems 1.4, the amateur karaoke takes
#: 3.7 and up), so a take recorded with nobody singing is told apart with a margin
STEADY_LU = 1.0
STEADY_WARNING = (
    "warning: the vocal's loudness hardly moves over the {heard:.0f} s it is heard (a "
    "momentary loudness range of {spread:.2f} LU, where a voice moves by several LU): it "
    "sounds like steady noise or hum, not singing, and it is mixed as a vocal; check the "
    "vocal file")


def sounds_steady(momentary_range_lu: float, heard_s: float, mix_s: float) -> bool:
    """Whether a vocal heard for ``heard_s`` (s) of a mix of ``mix_s`` (s), whose input has
    a momentary loudness range of ``momentary_range_lu`` (LU), is to be warned about as
    steady noise or hum (:data:`STEADY_LU`); a vocal barely heard at all is the subject
    of :data:`BARELY_HEARD_WARNING` instead, and a range that could not be measured
    (NaN) is not warned about."""
    return (mix_s >= BARELY_HEARD_MIX_S and heard_s >= BARELY_HEARD_S
            and bool(momentary_range_lu < STEADY_LU))


def heard_seconds(vocal_energy: np.ndarray, segment_len: int) -> float:
    """How long a vocal is heard, s, from its 100 ms segment energies: its 400 ms blocks
    that pass BS.1770-4's absolute and relative gates (:func:`~vocalmix.core.measure.
    gated_blocks`), one 100 ms hop each."""
    return 0.1 * float(gated_blocks(vocal_energy, segment_len).sum())


def vocal_lufs_at(vv: np.ndarray, seg: int, gains_db: np.ndarray | float,
                  iv0: float) -> np.ndarray:
    """The integrated loudness (LUFS) of the vocal ``g V`` at each gain (dB), from its
    100 ms segment sums at 0 dB (``vv``) and its loudness there (``iv0``): ``iv0 + gain``
    while the same blocks pass BS.1770-4's absolute gate, measured anew where they do not
    (a quiet take's blocks under -70 LUFS at 0 dB pass the gate once raised, eq. (5):
    ``iv0 + gain`` put a breathy take raised 34 dB 0.6 LU louder than it is)."""
    gains = np.atleast_1d(np.asarray(gains_db, dtype=np.float64))
    g = 10.0 ** (gains / 20.0)
    gated = np.asarray(integrated_from_segments((g * g)[:, None] * vv[None, :], seg))
    return shifted_unless_gated(iv0 + gains, gated)


def shifted_unless_gated(shifted: np.ndarray, gated: np.ndarray) -> np.ndarray:
    """The vocal's loudness at each gain, LUFS: ``shifted`` (its 0 dB loudness plus the
    gain) where ``gated`` (measured at that gain) agrees with it to 1e-9 LU or could not
    be measured, so that the answer is the same to the bit while no block crosses the
    absolute gate; ``gated`` where a block does."""
    same = np.isfinite(gated) & (np.abs(gated - shifted) <= 1e-9)
    return np.where(same | ~np.isfinite(gated), shifted, gated)


def _ratio_rows(gains_db: np.ndarray, vv: np.ndarray, vb: np.ndarray, bb: np.ndarray,
                seg: int, measure: str, iv0: float) -> np.ndarray:
    """Vocal-to-mix ratio (LU) of ``g V + B`` for each gain (dB), from block sums
    (``iv0``: the integrated loudness of ``V``, LUFS)."""
    gains_db = np.asarray(gains_db, dtype=np.float64)
    g = 10.0 ** (gains_db / 20.0)
    ev = (g * g)[:, None] * vv[None, :]
    em = ev + (2.0 * g)[:, None] * vb[None, :] + bb[None, :]
    if measure == "singing":  # (where both play: the backing's own blocks gate too)
        return np.asarray(singing_ratio_from_segments(ev, em, seg, bb))
    return vocal_lufs_at(vv, seg, gains_db, iv0) - np.asarray(integrated_from_segments(em, seg))


def vocal_to_mix_on_grid(vv: np.ndarray, vb: np.ndarray, bb: np.ndarray, segment_len: int,
                         gains_db: np.ndarray, vocal_lufs: float | None = None,
                         measure: str = "integrated") -> np.ndarray:
    """Vocal-to-mix (LU) of ``g V`` against ``g V + B`` for each gain of ``gains_db``.

    ``vv``, ``vb``, ``bb``: 100 ms segment sums of the K-weighted vocal (at 0 dB), their
    cross term and the backing (:meth:`vocalmix.core.measure.BlockStats.cross`);
    ``vocal_lufs``: the vocal's integrated loudness at 0 dB if already known; ``measure``:
    ``integrated`` or ``singing`` (see :class:`vocalmix.core.params.Targets`). Exact for
    BS.1770-4 with gating (see the module doc); vectorised over the gains.
    """
    iv0 = integrated_from_segments(vv, segment_len) if vocal_lufs is None else vocal_lufs
    return _ratio_rows(np.asarray(gains_db, dtype=np.float64), vv, vb, bb, segment_len,
                       measure, float(iv0))


def resolve_vocal_gain(
    vocal_unity: np.ndarray | tuple[np.ndarray, ...],
    backing: np.ndarray,
    sample_rate: int,
    target_lu: float,
    *,
    measure: str = "integrated",
    ready: Callable[[int], None] | None = None,
    gain_range_db: tuple[float, float] = (-60.0, 60.0),
) -> GainSolution:
    """The vocal gain (dB) that puts ``g * vocal_unity`` at ``target_lu`` below the mix.

    ``vocal_unity`` is the processed vocal (reverb included) at 0 dB gain, or its parts
    (dry, sends) to be summed, block by block, without a full-length sum; ``backing``
    the backing after its own gain; ``measure`` how the ratio is measured
    (:data:`~vocalmix.core.params.V2M_MEASURES`). Exact for BS.1770-4 with gating (see
    module doc). Raises :class:`TargetUnreachableError` when no gain in
    ``gain_range_db`` reaches it. ``ready``: see :func:`~vocalmix.core.measure.
    k_weighted_cross` (parts still rendering on another thread).
    """
    vv, bb, vb = k_weighted_cross(vocal_unity, backing, sample_rate, ready=ready)
    seg = int(round(sample_rate / 10.0))
    return solve_gain_from_segments(vv, vb, bb, seg, target_lu, measure=measure,
                                    gain_range_db=gain_range_db)


def solve_gain_from_segments(
    vv: np.ndarray,
    vb: np.ndarray,
    bb: np.ndarray,
    segment_len: int,
    target_lu: float,
    *,
    measure: str = "integrated",
    gain_range_db: tuple[float, float] = (-60.0, 60.0),
) -> GainSolution:
    """:func:`resolve_vocal_gain` on precomputed 100 ms sums of the K-weighted vocal
    (``vv``), backing (``bb``) and their product (``vb``): the same answer without the
    signals (the level model's evaluation places every method's target this way)."""
    if measure not in V2M_MEASURES:
        raise ValueError(f"unknown vocal-to-mix measure {measure!r}")
    seg = segment_len
    iv0 = float(integrated_from_segments(vv, seg))
    ib = float(integrated_from_segments(bb, seg))
    if not np.isfinite(iv0):
        # a take so quiet that no block passes the -70 LUFS gate at 0 dB: its level-free
        # loudness is the starting point, and each gain's is measured anew where the
        # raised take's blocks pass the gate (vocal_lufs_at)
        iv0 = float(integrated_from_segments(vv, seg, level_free=True))
    if not np.isfinite(iv0):
        raise TargetUnreachableError(
            "the processed vocal is silent (no 400 ms block of it holds any sound); "
            "cannot set its level: check that the vocal file holds the take")

    def ratio(gain_db: float) -> float:
        if measure == "singing":
            return float(_ratio_rows(np.array([gain_db]), vv, vb, bb, seg, measure, iv0)[0])
        g = 10.0 ** (gain_db / 20.0)  # scalar arithmetic, as the integrated resolver has
        mix = integrated_from_segments(g * g * vv + 2.0 * g * vb + bb, seg)  # always done
        return float(vocal_lufs_at(vv, seg, gain_db, iv0)[0] - mix)

    lo, hi = gain_range_db
    grid = np.linspace(lo, hi, 49)
    vals = _ratio_rows(grid, vv, vb, bb, seg, measure, iv0) - target_lu
    ok = np.isfinite(vals)
    idx = np.flatnonzero(ok[:-1] & ok[1:] & (np.diff(np.sign(vals)) != 0))
    if idx.size == 0:
        fin = vals[ok] if ok.any() else np.array([np.nan])
        if not np.isfinite(ib):
            why = ("; the backing, at its gain, is below BS.1770-4's absolute gate of -70 "
                   "LUFS (it has no loudness to set the vocal against): raise "
                   "backing.gain_db, or check the backing file")
        elif np.all(fin < 0.0):  # every gain, the largest too, leaves the vocal too quiet
            why = (f"; the processed vocal measures {iv0:.1f} LUFS before its gain, too "
                   f"quiet for {hi:+.0f} dB to lift it there: normalise the take (or "
                   "record it louder), or check that the vocal file holds it")
        else:
            why = ""
        raise TargetUnreachableError(
            f"no vocal gain between {lo:+.0f} and {hi:+.0f} dB puts the vocal at "
            f"{target_lu:+.1f} LU against the mix (reachable {fin.min() + target_lu:+.1f} "
            f"to {fin.max() + target_lu:+.1f} LU){why}"
        )
    i = int(idx[0])
    gain = brentq(lambda d: ratio(d) - target_lu, grid[i], grid[i + 1], xtol=1e-6)
    gl = 10.0 ** (gain / 20.0)
    em = gl * gl * vv + 2 * gl * vb + bb
    return GainSolution(
        gain_db=float(gain),
        vocal_to_mix_lu=ratio(gain),
        vocal_to_backing_lu=float(vocal_lufs_at(vv, seg, gain, iv0)[0] - ib),
        premaster_lufs=float(integrated_from_segments(em, seg)),
        measure=measure,
        heard_s=heard_seconds(gl * gl * vv, seg),
        premaster_energy=em,
    )


def gain_solution_at(
    vocal_unity: np.ndarray | tuple[np.ndarray, ...],
    backing: np.ndarray,
    sample_rate: int,
    gain_db: float,
    *,
    measure: str = "integrated",
    ready: Callable[[int], None] | None = None,
) -> GainSolution:
    """The figures of :class:`GainSolution` for a given vocal gain (a locked one): where
    ``gain_db`` puts ``g * vocal_unity`` against the mix, exactly as the resolver
    measures it (``ready``: as for :func:`resolve_vocal_gain`)."""
    vv, bb, vb = k_weighted_cross(vocal_unity, backing, sample_rate, ready=ready)
    seg = int(round(sample_rate / 10.0))
    iv0 = float(integrated_from_segments(vv, seg))
    ib = float(integrated_from_segments(bb, seg))
    gl = 10.0 ** (gain_db / 20.0)
    em = gl * gl * vv + 2 * gl * vb + bb
    return GainSolution(
        gain_db=float(gain_db),
        vocal_to_mix_lu=float(_ratio_rows(np.array([gain_db]), vv, vb, bb, seg, measure,
                                          iv0)[0]),
        vocal_to_backing_lu=float(vocal_lufs_at(vv, seg, gain_db, iv0)[0] - ib),
        premaster_lufs=float(integrated_from_segments(em, seg)),
        measure=measure,
        heard_s=heard_seconds(gl * gl * vv, seg),
        premaster_energy=em,
    )


# --- compressor threshold --------------------------------------------------------------

_FRAMES_PER_SEG = 10  # proxy frames of 10 ms, 10 per 100 ms segment


def _proxy_frame_len(sample_rate: int) -> int:
    """Samples per compressor-proxy frame (10 ms)."""
    return max(1, int(round(sample_rate / (_FRAMES_PER_SEG * 10))))


def measure_compressor_input(x: np.ndarray, sample_rate: int) -> None:
    """K-weight ``x`` once as :func:`resolve_compressor` will measure it (its proxy's
    10 ms frame energies and, from the same pass, the 100 ms segment energies of every
    loudness figure), remembered by content for a read-only ``x``: for an analysis that
    reads the resolver's input before it (the dynamics model), so that neither filters
    it again."""
    k_weighted_frame_energies(x, sample_rate, _proxy_frame_len(sample_rate))
_ENV_PROBE_DB = -120.0  # threshold of the envelope probe: below any audible level


def compressor_envelope_db(
    x: np.ndarray, sample_rate: int, attack_ms: float, release_ms: float
) -> np.ndarray:
    """The level envelope (dBFS, per sample and channel) that pedalboard's compressor sees.

    pedalboard's ``Compressor`` is JUCE's: a peak ballistics filter feeding a hard-knee
    gain computer, ``gain = (env / T) ** (1/R - 1)`` above the threshold ``T``. The
    envelope does not depend on ``T`` or ``R``, so one render with ``T`` far below any
    signal and ``R = 2`` reveals it exactly: ``env_db = T - 2 * 20 log10(y / x)``.
    Samples too close to zero to divide by take the probe level (they carry no energy).
    A centre-panned vocal (both channels equal) is probed once.
    """
    src, y, mono = _envelope_probe(x, sample_rate, attack_ms, release_ms)
    env = _envelope_of(src, y)
    return np.repeat(env, 2, axis=1) if mono else env


def _probe(x: np.ndarray, attack_ms: float, release_ms: float, mono: bool | None = None
           ) -> tuple[Any, bool]:
    """The probe compressor of :func:`compressor_envelope_db` and whether ``x`` is
    centre-panned (both channels equal: one channel is probed for both; ``mono``, when
    given, is that answer, already found)."""
    import pedalboard as pb

    if mono is None:
        mono = equal_channels(x)
    return pb.Compressor(threshold_db=_ENV_PROBE_DB, ratio=2.0, attack_ms=attack_ms,
                         release_ms=release_ms), mono


def _envelope_probe(x: np.ndarray, sample_rate: int, attack_ms: float, release_ms: float
                    ) -> tuple[np.ndarray, np.ndarray, bool]:
    """The probe render of :func:`compressor_envelope_db`: ``(src, y, mono)``, the
    channels probed, the compressor's output for them and whether one stood for two."""
    comp, mono = _probe(x, attack_ms, release_ms)
    src = x[:, :1] if mono else x
    y = comp(np.ascontiguousarray(src.T, dtype=np.float32), float(sample_rate), reset=True).T
    return src, y, mono


def _envelope_of(src: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The envelope (dBFS) read off the probe's input ``src`` and output ``y``, sample by
    sample (so any run of samples can be read on its own)."""
    ratio = src.astype(np.float64)  # the input, then (in place) the output over it
    flat = np.abs(ratio) <= 1e-7  # too close to zero to divide by: the probe level
    # (divided everywhere: where the input is that small, what the ratio holds, an
    # infinity or a NaN, is replaced below)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(y, ratio, out=ratio)
    np.clip(ratio, 1e-30, 1.0, out=ratio)
    flat |= ratio >= 1.0
    # _ENV_PROBE_DB - 40 log10(ratio), each step in place
    env = np.log10(ratio, out=ratio)
    env *= 40.0
    np.subtract(_ENV_PROBE_DB, env, out=env)
    env[flat] = _ENV_PROBE_DB
    return env


#: the fewest thresholds :meth:`CompressorProxy.statistic` computes on two threads
_SPLIT_ROWS = 8
#: frames of the compressor proxy read at a time by each part of the probe (float64
#: temporaries of a few MB)
_PROXY_FRAMES = 1 << 10
#: the shortest input, s, whose probe is rendered in two parts on two threads
SPLIT_PROBE_S = 20.0
#: how long the compressor of the probe's second part runs over the input before its
#: first frame, in time constants of its slower ballistics (JUCE's: ``ms / 2 pi``): what
#: it started from then weighs ``e^-40`` (4e-18) in its envelope, under float32's
#: rounding, so that from its first frame it reads the envelope of a render from the start
_WARM_TIME_CONSTANTS = 40.0


def _warm_rows(sample_rate: int, attack_ms: float, release_ms: float) -> int:
    """Rows the probe's second part renders before its first frame (see
    :data:`_WARM_TIME_CONSTANTS`)."""
    tau_s = max(attack_ms, release_ms) / (2.0 * np.pi) / 1000.0
    return int(np.ceil(_WARM_TIME_CONSTANTS * tau_s * sample_rate))


def _envelope_frames_db(x: np.ndarray, sample_rate: int, attack_ms: float,
                        release_ms: float, frame_len: int,
                        stop: threading.Event | None = None) -> np.ndarray | None:
    """``compressor_envelope_db(x, ...)`` averaged over frames of ``frame_len`` samples,
    ``(len(x) // frame_len, channels)``, read off the probe render
    :data:`_PROXY_FRAMES` frames at a time instead of as full-length float64 arrays.

    An input of :data:`SPLIT_PROBE_S` or more is probed in two parts on two threads
    (the resolver's other thread has nothing to do meanwhile): the second part's
    compressor first runs over :data:`_WARM_TIME_CONSTANTS` of its time constants of the
    input before its first frame (:func:`_warm_rows`; the parts are cut so that both
    render as much). Its envelope is then the one-pass render's but for float32's
    rounding (within 1e-4 dB, ``tests/test_render_resolve.py``); the proxy it feeds
    tracks real renders within about 0.1 LU, and the threshold it finds is verified by
    a real render. On a 3-minute vocal the probe takes 0.08-0.10 s instead of
    0.15-0.17 s, one core idle.

    ``stop``: once set, each part ends after the chunk being rendered and this returns
    ``None`` (for a caller that found it needs no envelope)."""
    from vocalmix.core.parallel import beside

    n = x.shape[0] // frame_len
    mono = equal_channels(x)
    out = np.empty((n, x.shape[1]))
    rows = _PROXY_FRAMES * frame_len
    warm = _warm_rows(sample_rate, attack_ms, release_ms)

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    def part(f0: int, f1: int) -> bool:
        """Frames ``f0`` to ``f1`` into ``out``; ``False`` when stopped."""
        comp, _ = _probe(x, attack_ms, release_ms, mono)
        first = True

        def render(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            """The input rows ``a:b`` and the probe's output for them, both ``(channels,
            rows)`` in C order (the compressor's layout: the envelope's arithmetic then
            reads both in one order, a third faster than the input's rows against the
            output's columns)."""
            nonlocal first
            src = np.ascontiguousarray((x[a:b, :1] if mono else x[a:b]).T, dtype=np.float32)
            y = comp(src, float(sample_rate), reset=first)
            first = False
            return src, y

        a0 = f0 * frame_len
        for a in range(max(0, a0 - warm), a0, rows):  # the warm-up, not read
            if stopped():
                return False
            render(a, min(a0, a + rows))
        for f in range(f0, f1, _PROXY_FRAMES):
            if stopped():
                return False
            src, y = render(f * frame_len, min(f1, f + _PROXY_FRAMES) * frame_len)
            m = _frame_means(_envelope_of(src, y), frame_len, axis=1)
            out[f : f + len(m)] = np.repeat(m, 2, axis=1) if mono else m
        return True

    if n * frame_len < max(SPLIT_PROBE_S * sample_rate, 3 * warm):  # (a long warm-up)
        done = part(0, n)
    else:
        # the first part ends where the second's warm-up balances its shorter span
        cut = min(n - 1, (n + warm // frame_len) // 2)
        done = all(beside(lambda: part(cut, n), lambda: part(0, cut)))
    return out if done else None


def _frame_means(env: np.ndarray, frame_len: int, axis: int = 0) -> np.ndarray:
    """The mean of each frame of ``frame_len`` rows of ``env`` ``(frames * frame_len,
    channels)`` (``axis=1``: columns of ``env`` ``(channels, frames * frame_len)``),
    ``(frames, channels)`` float64 (each frame's sum as ``np.add.reduceat`` adds it, then
    divided by the rows: a tenth of the time of adding the frames' rows one after
    another)."""
    n = env.shape[axis] // frame_len
    if n == 0:
        return np.zeros((0, env.shape[1 - axis]))
    whole = env[: n * frame_len] if axis == 0 else env[:, : n * frame_len]
    sums = np.add.reduceat(whole, np.arange(0, n * frame_len, frame_len), axis=axis)
    sums /= frame_len
    return sums if axis == 0 else sums.T


@dataclass(frozen=True)
class CompressorProxy:
    """Precomputed frame statistics of a compressor's input (see module doc).

    Attributes:
        energy: K-weighted energy per 10 ms frame and channel, ``(n_frames, channels)``.
        env_db: mean compressor envelope per frame and channel, dBFS.
        frame_len: samples per frame.
    """

    energy: np.ndarray
    env_db: np.ndarray
    frame_len: int

    @staticmethod
    def of(
        x: np.ndarray, sample_rate: int, attack_ms: float = 10.0, release_ms: float = 120.0,
        energy: np.ndarray | None = None, env_db: np.ndarray | None = None,
    ) -> CompressorProxy:
        """Frame statistics of ``x`` for a compressor with these ballistics; ``energy``
        (:func:`~vocalmix.core.measure.k_weighted_frame_energies`) and ``env_db``
        (:func:`_envelope_frames_db`): those already computed."""
        flen = _proxy_frame_len(sample_rate)
        if energy is None:
            energy = k_weighted_frame_energies(x, sample_rate, flen)
        if env_db is None:
            env_db = _envelope_frames_db(x, sample_rate, attack_ms, release_ms, flen)
            assert env_db is not None  # (never stopped)
        return CompressorProxy(energy=energy, env_db=env_db, frame_len=flen)

    def lra(self, thresholds_db: np.ndarray, ratio: float) -> np.ndarray:
        """Proxy LRA (LU) after compression, for each threshold (dBFS)."""
        return self.statistic(thresholds_db, ratio, "lra")

    def statistic(self, thresholds_db: np.ndarray, ratio: float,
                  statistic: str = "lra") -> np.ndarray:
        """Proxy LRA or momentary loudness range (LU) after compression, for each
        threshold (dBFS).

        Each threshold's figure is computed on its own row, so a grid of
        :data:`_SPLIT_ROWS` or more is computed in two halves on two threads (numpy's
        arithmetic lets go of the GIL): the same values in about half the time."""
        t = np.asarray(thresholds_db, dtype=np.float64)
        if t.size >= _SPLIT_ROWS:
            from vocalmix.core.parallel import beside

            h = t.size // 2
            hi, lo = beside(lambda: self._statistic(t[h:], ratio, statistic),
                            lambda: self._statistic(t[:h], ratio, statistic))
            return np.concatenate([lo, hi])
        return self._statistic(t, ratio, statistic)

    def _statistic(self, thresholds_db: np.ndarray, ratio: float, statistic: str
                   ) -> np.ndarray:
        w = _WINDOW_SEGMENTS[statistic]
        t = thresholds_db[:, None, None]
        over = np.maximum(self.env_db[None] - t, 0.0)
        gain_db = over * (1.0 / ratio - 1.0)
        p = 10.0 ** (gain_db / 10.0)
        p *= self.energy[None]  # the compressed energies, (cand, frames, channels)
        # summed over the channels (two: one addition, as sum(axis=2) makes it)
        e = p[..., 0] + p[..., 1] if p.shape[2] == 2 else p.sum(axis=2)  # (cand, frames)
        # 100 ms segments, then 3 s windows (30 segments) at 10 Hz
        f = _FRAMES_PER_SEG
        n_seg = e.shape[1] // f
        seg = e[:, : n_seg * f].reshape(e.shape[0], n_seg, f).sum(axis=2)
        c = np.cumsum(np.concatenate([np.zeros((seg.shape[0], 1)), seg], axis=1), axis=1)
        win = (c[:, w:] - c[:, :-w]) / (w * f * self.frame_len)
        if statistic == "momentary_range":
            # above the steady floor, as the momentary range itself is measured
            win = above_floor(win, seg, f * self.frame_len)
        with np.errstate(divide="ignore"):
            st = -0.691 + 10.0 * np.log10(win)
        # gated level-free, as the statistics themselves are (dynamics_statistic)
        return np.atleast_1d(lra_from_short_term(st, level_free=True))


@dataclass(frozen=True)
class CompressorSolution:
    """Result of :func:`resolve_compressor`.

    Attributes:
        compressor: the settings (threshold, ratio, make-up...).
        input_lra_lu: LRA of the compressor's input, LU.
        achieved_lra_lu: LRA of the real rendered output, LU.
        renders: how many real renders the search needed.
        note: what happened, for the user.
        statistic: what was resolved (:data:`DYNAMICS_STATISTICS`).
        input_value, achieved_value: that statistic of the input and the output, LU
            (the LRA figures again for ``lra``).
    """

    compressor: Compressor
    input_lra_lu: float
    achieved_lra_lu: float
    renders: int
    note: str
    statistic: str = "lra"
    input_value: float = float("nan")
    achieved_value: float = float("nan")
    #: the compressor's output for ``compressor`` without its make-up gain (the
    #: verification render kept, so the caller need not render it again); ``None`` when
    #: the compressor does nothing
    output: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: the momentary loudness range of that output, LU (read off the same K-weighted
    #: energies as the statistic resolved)
    achieved_momentary_range_lu: float = float("nan")


def _solve_proxy(
    proxy: CompressorProxy, target: float, ratio: float, t_lo: float, t_hi: float,
    statistic: str = "lra", floor: float | None = None,
    first: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float]:
    """Threshold (dB) whose proxy LRA is ``target``; returns (threshold, proxy_lra).

    LRA is not monotone in the threshold far down (compressing everything lifts quiet
    passages above the relative gate), so the crossing taken is the highest threshold
    that reaches the target: the least compression that does the job. ``floor``: no
    threshold under it is taken (:func:`_upper_branch_floor`); when none over it reaches
    the target, the one over it that comes closest. ``first``: the first grid's thresholds
    and the proxy's values on them, when the caller computed them already (else
    :data:`SEARCH_POINTS` thresholds from ``t_lo`` to ``t_hi``).
    """
    if first is None:
        grid = np.linspace(t_lo, t_hi, SEARCH_POINTS)
        vals = proxy.statistic(grid, ratio, statistic)
    else:
        grid, vals = first
    allowed = np.ones(grid.size, bool) if floor is None else grid >= floor - 1e-9
    if not allowed.any():
        allowed[-1] = True
    for _ in range(3):  # refine the bracket around the crossing
        below = (vals <= target) & allowed
        if not below.any():
            j = int(np.flatnonzero(allowed)[np.argmin(vals[allowed])])
            return float(grid[j]), float(vals[j])
        j = int(np.flatnonzero(below)[-1])
        if j == len(grid) - 1:
            return float(grid[j]), float(vals[j])
        grid = np.linspace(grid[j], grid[j + 1], 17)
        vals = proxy.statistic(grid, ratio, statistic)
        allowed = np.ones(grid.size, bool)  # (the bracket lies over the floor)
    j = int(np.argmin(np.abs(vals - target)))
    return float(grid[j]), float(vals[j])


#: how far (LU) the proxy statistic may rise again, as the threshold comes down, before
#: the search stops there (:func:`_upper_branch_floor`)
TURN_LU = 1.0
#: the statistic's plateau (:func:`_upper_branch_floor`): where a further
#: ``PLATEAU_SPAN_DB`` dB off the threshold narrows it by less than ``PLATEAU_GAIN_LU``
#: LU, the search goes no deeper (0.06 LU per dB: each dB buys almost nothing and costs
#: about 0.7 dB more gain reduction on the voice at ratio 3.3)
PLATEAU_SPAN_DB = 8.0
PLATEAU_GAIN_LU = 0.5
#: thresholds of the search's first grid (:func:`_solve_proxy`), 1.9 dB apart over 60 dB
SEARCH_POINTS = 33


@dataclass(frozen=True)
class BranchFloor:
    """The lowest threshold the compressor's search may use (:func:`_upper_branch_floor`).

    Attributes:
        threshold_db: that threshold, dBFS.
        least_lu: the lowest proxy statistic over it, LU.
        why: ``"turn"`` (the statistic rises again under it), ``"plateau"`` (it hardly
            narrows under it) or ``""`` (the grid's bottom).
    """

    threshold_db: float
    least_lu: float
    why: str = ""


def _upper_branch_floor(grid: np.ndarray, vals: np.ndarray) -> BranchFloor:
    """The lowest threshold (dB) the search may use, from the proxy's values ``vals`` on
    the ascending thresholds ``grid``: the first, coming down from the top, of

    - the **turn**: where the statistic first rises :data:`TURN_LU` over its lowest value
      so far. Below it the statistic grows with more compression: the vocal's level falls
      and what it does not compress (room tone and hiss in the pauses, breaths) comes over
      the relative gate. A target reached only down there is reached by compressing the
      noise with the voice: a quiet take over room tone 28 LU under its loudest block was
      given a -47 dB threshold and +15 dB of make-up gain.
    - the **plateau**: once compression has narrowed the statistic by
      :data:`PLATEAU_GAIN_LU`, where the next :data:`PLATEAU_SPAN_DB` dB of threshold
      would narrow it by less than that again. A vocal whose range stalled from -22 to
      -36 dB and only then fell another LU was given a -41 dB threshold: 17 dB of gain
      reduction at the median while it sang, to gain that last LU.

    The grid's bottom when neither comes. The search stays above the floor, and the note
    says how far the target was missed."""
    g, v = grid[::-1], vals[::-1]  # from the top down
    low = np.minimum.accumulate(v)
    turned = np.flatnonzero(v > low + TURN_LU)
    first_turn = int(turned[0]) if turned.size else g.size
    step = abs(float(g[0] - g[-1])) / max(g.size - 1, 1)
    span = max(1, int(round(PLATEAU_SPAN_DB / step))) if step > 0 else g.size
    ahead = np.full(g.size, np.inf)  # how much the next span narrows the lowest value
    if g.size > span:
        ahead[: g.size - span] = low[: g.size - span] - low[span:]
    flat = np.flatnonzero((low <= v[0] - PLATEAU_GAIN_LU) & (ahead < PLATEAU_GAIN_LU))
    first_flat = int(flat[0]) if flat.size else g.size
    i = min(first_turn, first_flat)
    if i >= g.size:
        return BranchFloor(float(g[-1]), float(low[-1]))
    return BranchFloor(float(g[i]), float(low[i]), "turn" if i == first_turn else "plateau")


def _next_threshold(
    proxy: CompressorProxy,
    pts: list[tuple[float, float]],
    target: float,
    ratio: float,
    t_lo: float,
    t_hi: float,
    statistic: str = "lra",
    floor: float | None = None,
) -> float:
    """Next threshold to render, from the real (threshold, statistic) points so far.

    With one point, the proxy is corrected by its offset there and solved again in a
    +-12 dB neighbourhood; with a pair of points on both sides of the target, regula
    falsi between the closest such pair; otherwise a secant step from the last two.
    """
    last_t, last_r = pts[-1]
    if len(pts) == 1:
        offset = last_r - float(proxy.statistic(np.array([last_t]), ratio, statistic)[0])
        lo, hi = max(t_lo, last_t - 12.0), min(t_hi, last_t + 12.0)
        t, _ = _solve_proxy(proxy, target - offset, ratio, lo, hi, statistic, floor)
        return t
    below = [p for p in pts if p[1] < target]
    above = [p for p in pts if p[1] > target]
    if below and above:
        (t1, r1) = max(below, key=lambda p: p[0])  # closest from the compressed side
        (t2, r2) = min(above, key=lambda p: abs(p[0] - t1))
        t = t1 + (target - r1) * (t2 - t1) / (r2 - r1)
        return t if floor is None else max(t, floor)
    (t1, r1), (t2, r2) = pts[-2], pts[-1]
    slope = (r2 - r1) / (t2 - t1) if t2 != t1 else 0.0
    if slope <= 1e-3:
        step = 3.0 if r2 < target else -3.0  # LRA rises with the threshold
    else:
        step = float(np.clip((target - r2) / slope, -12.0, 12.0))
    return float(np.clip(t2 + step, t_lo if floor is None else max(t_lo, floor), t_hi))


def _render_measured(x: np.ndarray, sample_rate: int, comp: Compressor
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(out, seen)``: the compressor stage of ``x`` (``comp`` without make-up gain) and
    a read-only view of it whose loudness figures are computed without another pass.

    The render runs on a helper thread while this one K-weights each finished block
    (:func:`vocalmix.core.dsp.run_board_blocks`): the same samples and the same segment
    energies as rendering first and measuring after, in about the time of the render.
    The render itself stays writeable: it becomes the dry vocal stem, scaled in place."""
    from vocalmix.core.dsp import run_board_blocks
    from vocalmix.core.render import compressor_board, compressor_stage

    board = compressor_board(comp)
    if board is None or comp.makeup_db != 0.0 or x.ndim != 2:
        out = compressor_stage(x, sample_rate, comp)
        return out, frozen(out, unique=True)
    out, blocks = run_board_blocks(board, x, sample_rate, kw_block_len(sample_rate))
    energy = k_weighted_energies_of_blocks(blocks, sample_rate)
    seen = frozen(out, unique=True)
    remember_segment_energies(seen, sample_rate, energy)
    return out, seen


def _input_statistics(x: np.ndarray, sample_rate: int, statistic: str
                      ) -> tuple[float, float]:
    """``(LRA, the resolved statistic)`` of the compressor's input ``x``, LU."""
    input_lra = level_free_loudness_range(x, sample_rate)
    return input_lra, (input_lra if statistic == "lra"
                       else dynamics_statistic(x, sample_rate, statistic))


def _within(input_lu: float, target_lu: float) -> bool:
    """Whether a statistic of ``input_lu`` needs no compression to reach ``target_lu``
    (LU): the resolver never expands."""
    return input_lu <= target_lu + 1e-9


def needs_compression(x: np.ndarray, sample_rate: int, target_lu: float,
                      statistic: str = "lra") -> bool:
    """Whether :func:`resolve_compressor` will compress ``x`` to ``target_lu`` (LU): its
    ``statistic`` is above the target (it never expands). Measured as the resolver
    measures it, in the same pass (:func:`~vocalmix.core.measure.
    k_weighted_frame_energies`), so that for a read-only ``x`` the resolver then finds
    the figures remembered: for a caller that starts work on an uncompressed vocal
    before the resolver has returned."""
    if statistic not in DYNAMICS_STATISTICS:
        raise ValueError(f"unknown dynamics statistic {statistic!r}: use one of "
                         f"{', '.join(DYNAMICS_STATISTICS)}")
    k_weighted_frame_energies(x, sample_rate, _proxy_frame_len(sample_rate))
    return not _within(_input_statistics(x, sample_rate, statistic)[1], target_lu)


def resolve_compressor(
    x: np.ndarray,
    sample_rate: int,
    target_lra_lu: float,
    base: Compressor | None = None,
    *,
    tolerance_lu: float = TARGET_TOLERANCE_LU,
    max_verify: int = 6,
    statistic: str = "lra",
) -> CompressorSolution:
    """Find the threshold (and if needed a higher ratio) that gives ``x`` the target
    dynamics: its LRA (``statistic="lra"``) or its momentary loudness range
    (``"momentary_range"``) is ``target_lra_lu``.

    ``x`` is the compressor's input (the vocal after high-pass and EQ), float32 ``(n, 2)``.
    ``base`` supplies attack, release and the starting ratio. Make-up gain is set so the
    compressed vocal keeps its integrated loudness. See the module doc for the method.
    A vocal whose statistic is already at or below the target is left alone.
    """
    from vocalmix.core.measure import level_free_loudness

    name = {"lra": "LRA", "momentary_range": "momentary loudness range"}[statistic]
    base = base or Compressor(ratio=4.0)
    flen = _proxy_frame_len(sample_rate)
    env_db: np.ndarray | None = None
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        # the probe render of the envelope (pedalboard's compressor, which lets go of the
        # GIL) on a second thread, while this one K-weights the input: the proxy's frame
        # energies, and from the same pass the segment energies of the figures below
        probe = pool.submit(_envelope_frames_db, x, sample_rate, base.attack_ms,
                            base.release_ms, flen, stop)
        frames = k_weighted_frame_energies(x, sample_rate, flen)
        input_lra, input_val = _input_statistics(x, sample_rate, statistic)
        if _within(input_val, target_lra_lu):
            # no compression: the probe stops after its current chunk instead of
            # rendering the rest of the vocal, which leaving the pool would wait for
            stop.set()
            probe.cancel()
        else:
            env_db = probe.result()
    if _within(input_val, target_lra_lu):
        comp = replace(base, enabled=True, threshold_db=0.0, ratio=1.0, makeup_db=0.0)
        return CompressorSolution(
            comp, input_lra, input_lra, 0,
            f"vocal {name} {input_val:.1f} LU already at or below the target "
            f"{target_lra_lu:.1f} LU: no compression (never expand)", statistic, input_val,
            input_val, achieved_momentary_range_lu=dynamics_statistic(
                x, sample_rate, "momentary_range"),
        )
    proxy = CompressorProxy.of(x, sample_rate, base.attack_ms, base.release_ms, frames, env_db)
    env_ok = proxy.env_db[np.isfinite(proxy.env_db)]
    lo_db, hi_db = THRESHOLD_RANGE_DB
    t_hi = float(min(hi_db, env_ok.max()))
    t_lo = max(lo_db, t_hi - 60.0)
    ratios = [r for r in RATIO_STEPS if r >= base.ratio] or [base.ratio]
    if base.ratio not in ratios:
        ratios.insert(0, base.ratio)
    ratio = ratios[0]
    grid = np.linspace(t_lo, t_hi, SEARCH_POINTS)
    first: tuple[np.ndarray, np.ndarray] | None = None
    stop_at = BranchFloor(t_lo, float("nan"))  # (the first ratio's, unless one reaches it)
    for r in ratios:
        vals = proxy.statistic(grid, r, statistic)
        at = _upper_branch_floor(grid, vals)
        if r == ratios[0]:
            first, stop_at = (grid, vals), at
        if at.least_lu <= target_lra_lu - 0.5 * tolerance_lu:
            ratio, first, stop_at = r, (grid, vals), at
            break
    floor = stop_at.threshold_db
    # (no ratio up to 10 reaches it above its floor, the turn or the stall: the base
    # ratio, and a missed target, rather than a limiter's ratio on the voice)
    i_in = level_free_loudness(x, sample_rate)  # (the make-up gain's reference)
    best: tuple[float, Compressor, float, np.ndarray, np.ndarray] | None = None
    pts: list[tuple[float, float]] = []  # (threshold, real statistic)
    renders = 0
    thr, _p = _solve_proxy(proxy, target_lra_lu, ratio, t_lo, t_hi, statistic, floor,
                           first)
    for it in range(max_verify):
        comp = replace(base, enabled=True, threshold_db=float(thr), ratio=float(ratio),
                       makeup_db=0.0)
        out, seen = _render_measured(x, sample_rate, comp)
        real = dynamics_statistic(seen, sample_rate, statistic)
        renders += 1
        pts.append((thr, real))
        err = abs(real - target_lra_lu)
        if best is None or err < best[0]:
            best = (err, comp, real, out, seen)
        del out, seen
        if err <= tolerance_lu or it == max_verify - 1:
            break
        thr = _next_threshold(proxy, pts, target_lra_lu, ratio, t_lo, t_hi, statistic,
                              floor)
        if any(abs(thr - t) < 1e-3 for t, _ in pts):
            break  # held at the floor: the same render again would change nothing
    assert best is not None
    err, comp, real, y, y_seen = best
    best = None
    makeup = i_in - level_free_loudness(y_seen, sample_rate)
    if not np.isfinite(makeup):  # (a compressed vocal has sound wherever its input had)
        makeup = 0.0
    comp = replace(comp, makeup_db=clip(Compressor, "makeup_db", makeup))
    out_lra = real if statistic == "lra" else level_free_loudness_range(y_seen, sample_rate)
    out_mrange = real if statistic == "momentary_range" else dynamics_statistic(
        y_seen, sample_rate, "momentary_range")
    del y_seen
    note = (
        f"compressor {comp.threshold_db:.1f} dB threshold, ratio {comp.ratio:g}: vocal "
        f"{name} {input_val:.1f} -> {real:.1f} LU (target {target_lra_lu:.1f}, {renders} "
        "renders)"
    )
    if err > tolerance_lu:
        note += f"; missed the target by {err:.2f} LU"
        if stop_at.why == "plateau" and real > target_lra_lu:
            note += (f" (under {stop_at.threshold_db:.0f} dB the {name} hardly narrows: less "
                     f"than {PLATEAU_GAIN_LU:g} LU for {PLATEAU_SPAN_DB:g} dB more; the search "
                     "stops there rather than squash the voice)")
        elif stop_at.why == "turn" and real > target_lra_lu:
            note += (f" (under {stop_at.threshold_db:.0f} dB the {name} widens again: the "
                     "compressor would bring up what is quiet between the phrases)")
    return CompressorSolution(comp, input_lra, out_lra, renders, note, statistic, input_val,
                              real, output=y, achieved_momentary_range_lu=out_mrange)


# --- the freeverb's documented decay ----------------------------------------------------


def sync_freeverb_decay(params: MixParams, sample_rate: int) -> MixParams:
    """``params`` with a ``freeverb``'s ``decay_s`` set to the T30 its room size and
    damping give at ``sample_rate`` (Hz).

    For ``freeverb``, ``decay_s`` documents what the knobs give; it does not drive the
    render, so an edited document whose room size or damping changed (or whose reverb
    was of another type before) would otherwise carry a stale figure. The resolver
    writes the same value, so a document straight from it is returned unchanged. A
    ``synthetic`` reverb is returned as it is: its ``decay_s`` is the setting itself.
    Every front end calls this before rendering an edited document, so all of them
    write the same ``decay_s`` for it.
    """
    from vocalmix.core.reverb import decay_for_room_size

    rv = params.vocal.reverb
    if rv.type != "freeverb":
        return params
    decay = clip(Reverb, "decay_s", decay_for_room_size(rv.room_size, rv.damping, sample_rate))
    if decay == rv.decay_s:
        return params
    return replace(params, vocal=replace(params.vocal, reverb=replace(rv, decay_s=decay)))


def sync_delay_time(params: MixParams) -> MixParams:
    """``params`` with a tempo-synced delay's ``time_ms`` set to its note's length at its
    ``tempo_bpm`` (:meth:`~vocalmix.core.params.Delay.note_ms`); a ``free`` delay keeps
    the ``time_ms`` written."""
    from vocalmix.core.params import Delay

    dl = params.vocal.delay
    ms = dl.note_ms()
    if ms is None:
        return params
    ms = clip(Delay, "time_ms", ms)
    if ms == dl.time_ms:
        return params
    return replace(params, vocal=replace(params.vocal, delay=replace(dl, time_ms=ms)))


def sync_derived(params: MixParams, sample_rate: int) -> MixParams:
    """``params`` with every setting that follows from others brought in line: the
    freeverb's ``decay_s`` (:func:`sync_freeverb_decay`) and a tempo-synced delay's
    ``time_ms`` (:func:`sync_delay_time`), each unless locked (:func:`is_locked`: the
    resolvers keep a locked one too). Front ends call this before rendering an edited
    document; the resolvers write the same values."""
    if not is_locked(params, "vocal.reverb"):
        params = sync_freeverb_decay(params, sample_rate)
    if not is_locked(params, "vocal.delay"):
        params = sync_delay_time(params)
    return params


def sync_notes(before: MixParams, after: MixParams) -> list[str]:
    """What :func:`sync_derived` changed, one line each, for a person."""
    notes = []
    rb, ra = before.vocal.reverb, after.vocal.reverb
    if ra.decay_s != rb.decay_s:
        notes.append(f"reverb decay_s set to {ra.decay_s:.2f} s, what the freeverb's room "
                     "size and damping give")
    db, da = before.vocal.delay, after.vocal.delay
    if da.time_ms != db.time_ms:
        notes.append(f"delay time_ms set to {da.time_ms:.1f} ms, a {da.note} note at "
                     f"{da.tempo_bpm:g} BPM")
    return notes


def resolve_reverb(reverb: Reverb, decay_target_s: float, sample_rate: int,
                   notes: list[str] | None = None) -> Reverb:
    """The reverb setting for a decay target (s): the ``synthetic`` type's decay is exact
    (T30 at 1 kHz), capped so no band decays longer than allowed; ``freeverb``'s
    ``room_size`` comes from its calibration. What could not be met goes to ``notes``."""
    from vocalmix.core.reverb import decay_for_room_size, decay_range_s, room_size_for_decay

    notes = notes if notes is not None else []
    rv = reverb
    if rv.type == "synthetic":  # its decay is exact: T30 at 1 kHz = the target
        from vocalmix.core.params import REVERB_DECAY_RANGE_S

        limit = REVERB_DECAY_RANGE_S[1]
        decay = min(decay_target_s, limit / max(rv.band_decay_ratios))
        if decay != decay_target_s:
            notes.append(f"reverb decay {decay_target_s:.2f} s would make a band decay "
                         f"longer than {limit:g} s: using {decay:.2f} s")
        return replace(rv, decay_s=float(decay))
    lo, hi = decay_range_s(rv.damping)
    room = room_size_for_decay(decay_target_s, rv.damping, sample_rate)
    decay = decay_for_room_size(room, rv.damping, sample_rate)
    if not (lo <= decay_target_s <= hi):
        notes.append(
            f"reverb decay {decay_target_s:.2f} s is outside what the reverb reaches at "
            f"damping {rv.damping:g} ({lo:.2f} to {hi:.2f} s): using {decay:.2f} s"
        )
    return replace(rv, room_size=float(room), decay_s=clip(Reverb, "decay_s", decay))


# --- mix loudness -------------------------------------------------------------------------

MIX_LUFS_TOLERANCE_LU = 0.1
#: LU of loudness per dB of master gain under which the limiter is taken to hold the mix
#: (:func:`resolve_master_gain` stops there: more gain would only squash it)
MIX_LUFS_PLATEAU_SLOPE = 0.1
#: on that plateau, the loudness (LU) given up for the smallest gain: a target's stated
#: tolerance
MIX_LUFS_PLATEAU_LU = TARGET_TOLERANCE_LU


@dataclass(frozen=True)
class MasterGainSolution:
    """Result of :func:`resolve_master_gain`.

    Attributes:
        gain_db: the master gain, dB.
        mix_lufs: integrated loudness of the limited master at that gain, LUFS.
        renders: how many limiter passes the search took.
    """

    gain_db: float
    mix_lufs: float
    renders: int


def resolve_master_gain(premaster: np.ndarray, sample_rate: int, target_lufs: float,
                        master: Master, *, max_renders: int = 5) -> MasterGainSolution:
    """The master gain (dB) that puts the limited master at ``target_lufs``.

    The gain is first the difference between the target and the pre-master sum's
    integrated loudness (BS.1770-4); the true-peak limiter then takes some loudness off
    when the gain pushes peaks past the ceiling, so the gain is raised by what the last
    limited render missed, until it is within :data:`MIX_LUFS_TOLERANCE_LU` (a few
    passes, each aimed by what the last dB of gain bought; louder than the ceiling allows
    is reported, not forced: once a dB of gain buys less than
    :data:`MIX_LUFS_PLATEAU_SLOPE` LU, the limiter is holding the mix and the search
    stops). The gain returned is one that was rendered, with its loudness:
    within the tolerance of the target, the smallest; when the target is missed, the
    smallest within :data:`MIX_LUFS_PLATEAU_LU` of the closest (more gain on the
    limiter's plateau only squashes the mix).
    """
    from vocalmix.core.measure import integrated_loudness
    from vocalmix.core.params import Master as MasterParams
    from vocalmix.core.render import master_loudness

    i0 = integrated_loudness(premaster, sample_rate)
    if not np.isfinite(i0):
        raise TargetUnreachableError("the mix is silent; cannot set its loudness")
    gain = clip(MasterParams, "gain_db", target_lufs - i0)
    tried: list[tuple[float, float]] = []  # (gain, loudness) of each render
    for _ in range(max_renders):
        # the scaled copy is this loop's own: the limiter writes over it
        _y, _red, achieved = master_loudness(premaster * np.float32(10.0 ** (gain / 20.0)),
                                             sample_rate, master, in_place=True)
        tried.append((gain, float(achieved)))
        miss = target_lufs - achieved
        if abs(miss) <= MIX_LUFS_TOLERANCE_LU:
            break
        step = miss
        if len(tried) >= 2:
            # what a dB of gain bought in the last step (1 below the ceiling, less as the
            # limiter takes over): the next step aims by it (the secant method)
            (g0, a0), (g1, a1) = tried[-2], tried[-1]
            slope = (a1 - a0) / (g1 - g0) if g1 != g0 else 1.0
            if g1 > g0 and slope < MIX_LUFS_PLATEAU_SLOPE:  # the limiter's plateau
                break
            step = miss / min(max(slope, MIX_LUFS_PLATEAU_SLOPE), 1.0)
        new = clip(MasterParams, "gain_db", gain + step)
        if new == gain:
            break
        gain = new
    closest = min(abs(target_lufs - a) for _g, a in tried)
    # reached: the smallest gain within the tolerance; missed (the limiter's plateau,
    # where many dB of gain buy a few tenths of a LU): the smallest within a stated
    # tolerance of the closest
    near = (MIX_LUFS_TOLERANCE_LU if closest <= MIX_LUFS_TOLERANCE_LU
            else closest + MIX_LUFS_PLATEAU_LU)
    gain, achieved = min(((g, a) for g, a in tried if abs(target_lufs - a) <= near),
                         key=lambda t: t[0])
    return MasterGainSolution(float(gain), float(achieved), len(tried))


#: without a mix-loudness target, the most loudness (LU) the master's limiter may take off
#: the mix (:func:`resolve_master_headroom`): a vocal added to a loud, already limited
#: backing pushes the sum's peaks far past the ceiling, and at unity gain the limiter
#: then took 2.0 LU off a -10 LUFS backing's mix and 3.2 LU off a -8 LUFS one (6-8 dB of
#: gain reduction on every beat, the mix quieter than the backing alone); turned down
#: to lose at most this much, the mix keeps its transients and about the backing's
#: loudness
MAX_LIMITER_LOSS_LU = 0.5


def limiter_loss_lu(energy: np.ndarray, peaks: np.ndarray, segment_len: int,
                    gain_db: float | np.ndarray, ceiling_dbtp: float) -> np.ndarray:
    """The loudness (LU) the master's limiter takes off the pre-master sum at a master gain
    of ``gain_db`` (dB; an array gives one figure each), estimated from the sum's 100 ms
    segments: each segment's K-weighted ``energy`` is reduced by as many dB as its sample
    ``peaks`` (linear) at that gain exceed ``ceiling_dbtp``, and the loss is the
    difference of the two BS.1770-4 integrated loudnesses (gated as the standard says).

    An estimate, not a render: the limiter's release spreads each reduction past its
    segment and true peaks sit a little above sample peaks, so it reads 70-90 % of the
    rendered loss on loud backings (0.41 for 0.58 LU, 0.53 for 0.76 LU); monotone in the
    gain, which is what :func:`resolve_master_headroom` needs."""
    g = np.atleast_1d(np.asarray(gain_db, dtype=np.float64))
    n = min(len(energy), len(peaks))
    e = np.asarray(energy[:n], dtype=np.float64)
    over = 20.0 * np.log10(np.maximum(np.asarray(peaks[:n], dtype=np.float64), 1e-12))
    reduction_db = np.maximum(0.0, over[None, :] + g[:, None] - ceiling_dbtp)
    lin = float(integrated_from_segments(e, segment_len))  # (the same for every gain)
    lim = np.asarray(integrated_from_segments(e[None, :] * 10.0 ** (-reduction_db / 10.0),
                                              segment_len))
    with np.errstate(invalid="ignore"):  # (-inf - -inf for a sum under the gates)
        loss = np.where(np.isfinite(lin) & np.isfinite(lim), lin - lim, 0.0)
    return np.asarray(np.maximum(loss, 0.0)).reshape(np.shape(gain_db))


@dataclass(frozen=True)
class MasterHeadroom:
    """Result of :func:`resolve_master_headroom`.

    Attributes:
        gain_db: the master gain, dB (0 or below).
        loss_at_unity_lu: the limiter's estimated loudness loss at 0 dB, LU.
        loss_lu: its estimated loss at ``gain_db``, LU.
    """

    gain_db: float
    loss_at_unity_lu: float
    loss_lu: float


def resolve_master_headroom(energy: np.ndarray, peaks: np.ndarray, segment_len: int,
                            master: Master, max_loss_lu: float = MAX_LIMITER_LOSS_LU
                            ) -> MasterHeadroom:
    """The master gain (dB) for a mix with no loudness target: 0 dB when the limiter
    takes at most ``max_loss_lu`` (LU) off the pre-master sum there
    (:func:`limiter_loss_lu`, from the sum's segment ``energy`` and sample ``peaks``),
    else the highest gain at which it takes that much (bisection to 0.01 dB; the
    master gain's lowest value when even that is not enough)."""
    ceiling = master.ceiling_dbtp

    def loss(gain_db: float) -> float:
        return float(limiter_loss_lu(energy, peaks, segment_len, gain_db, ceiling))

    at_unity = loss(0.0)
    if at_unity <= max_loss_lu:
        return MasterHeadroom(0.0, at_unity, at_unity)
    lo, hi = float(spec_of(Master, "gain_db").lo), 0.0
    if loss(lo) > max_loss_lu:
        return MasterHeadroom(lo, at_unity, loss(lo))
    while hi - lo > 0.01:  # loss(lo) within the limit, loss(hi) over it
        mid = 0.5 * (lo + hi)
        if loss(mid) <= max_loss_lu:
            lo = mid
        else:
            hi = mid
    gain = float(np.floor(lo * 100.0) / 100.0)  # (rounded down: still within the limit)
    return MasterHeadroom(gain, at_unity, loss(gain))


# --- locks ----------------------------------------------------------------------------------


def keep_locked(before: MixParams, after: MixParams) -> tuple[MixParams, list[str]]:
    """``after`` (``before`` changed in bulk: a reverb preset, a reference mix) with every
    locked path of ``before`` put back as it was, and its reason with it, and the paths
    put back (a lock inside a group, ``vocal.reverb.decay_s``, puts back the whole
    group, as :func:`is_locked` keeps it)."""
    from vocalmix.core.params import MixParams as Params

    a, b = after.to_dict(), before.to_dict()
    kept = []
    for lock in dict.fromkeys(".".join(lk.split(".")[:2]) for lk in before.locks):
        head, _, leaf = lock.partition(".")
        if head not in b or not leaf or not isinstance(b[head], dict):
            continue
        if a.get(head, {}).get(leaf) != b[head].get(leaf):
            a[head][leaf] = b[head][leaf]
            kept.append(lock)
    if not kept:
        return after, []

    def under(path: str) -> bool:
        return any(path == k or path.startswith(k + ".") for k in kept)

    a["reasons"] = ([r for r in a["reasons"] if not under(r["path"])]
                    + [r for r in b["reasons"] if under(r["path"])])
    return Params.from_dict(a), kept


def is_locked(params: MixParams, path: str) -> bool:
    """Whether the resolvers must keep the setting at ``path``: a lock names it, a group
    holding it (``vocal.compressor`` locks its threshold), or a part of it (locking
    ``vocal.compressor.ratio`` keeps the whole compressor, whose knobs are solved
    together)."""
    return any(path == lk or path.startswith(lk + ".") or lk.startswith(path + ".")
               for lk in params.locks)
