"""Live estimation: settings chosen before the song, refined while the singer sings.

A karaoke take is mixed twice: live, into the singer's headphones and the room, and
afterwards for the recording. The backing track is known before the singer starts, the
vocal is not. This module chooses what it can before the song and refines the rest while
it plays, with the estimators and resolvers of the offline pipeline (nothing here
estimates anything :mod:`vocalmix.pipeline` does not):

Before the song, :func:`plan_live`
    * The reverb, from the backing alone: the baseline's tempo rule (freeverb, its room
      size from the calibration) or, with ``method="model"``, the learned reverb choice
      (synthetic), both resolved as ``vocalmix mix`` resolves them.
    * With a rehearsal clip (a sound check sung over the start of the backing), every
      other setting as ``vocalmix mix`` would choose it on that clip: EQ, compressor,
      level target and vocal gain (:func:`vocalmix.pipeline.estimate_params`).
    * Without one: the baseline's level target, its default high-pass, no EQ and no
      compression yet, and a vocal gain that assumes the raw vocal as loud as the backing
      (integrated loudness; the professionally mixed stems in the data sit within a few
      LU of that) until it is measured.

While singing, :class:`LiveSession` wraps a :class:`~vocalmix.core.stream.LiveMixer`:
    * **Gain ride.** The pre-master vocal (divided by the fader's gain, so at 0 dB) and the
      backing are K-weighted and summed per 100 ms segment as they are mixed. Every
      ``update_s`` the exact BS.1770-4 solution on the take so far (the resolver's, as
      :func:`vocalmix.core.resolve.vocal_to_mix_on_grid` computes it, gating included,
      worked out a slice per block over the following blocks) gives the gain that puts
      the vocal at the target, and the fader moves towards it at no more than
      ``rate_db_per_s`` (linear in dB, sample by sample), never further than
      ``range_db`` from the centre gain. It waits for ``min_vocal_s`` of vocal before it
      moves.
    * **Settle.** Once the singer has sung for ``settle_s`` (from the first block whose
      vocal peaks above ``onset_dbfs``), the full estimate runs on those seconds of the
      take and the backing under them (``estimate_params``): EQ, compressor, level target
      and gain. ``apply_after_s`` later (the time it is given to run in the
      background) the new inserts take over with a warm-up and a crossfade
      (:meth:`~vocalmix.core.stream.LiveMixer.change_inserts`), and the ride's target and
      centre become the estimate's. The reverb chosen before the song stays: a reverb
      that changes mid-song is heard as a different room.

Afterwards, :class:`LiveLog`
    The plan's params and every change with the sample it took effect at.
    :func:`replay_log` renders the live mix again offline (what was heard, to float
    rounding) and :attr:`LiveLog.final_params` (the settled settings at the ride's last
    gain) is a params document that ``vocalmix render`` renders as is and ``vocalmix mix
    --params-in`` re-resolves on the whole take, to improve on the live mix.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from vocalmix.core.dsp import flush_denormals
from vocalmix.core.params import (
    Compressor,
    HighPass,
    MixParams,
    Provenance,
    Targets,
    VocalChain,
    clip,
)
from vocalmix.core.stream import Event, LiveMixer, Stems, replay, silence_nonfinite

Progress = Callable[[str], None]


#: 400 ms loudness blocks a step of the ride's solve gates (26 rows each)
SOLVE_BLOCKS = 64
_DONE = object()


def _quiet(_msg: str) -> None:
    pass


#: LU: a vocal the ride's range holds further than this from its vocal-to-mix target is
#: warned about (:meth:`LiveSession.warnings`)
HELD_WARNING_LU = 3.0
#: dB: a settle that moves the ride's centre further than this (6 s of fader travel at
#: 2 dB/s) is warned about (:meth:`LiveSession.warnings`)
CENTRE_JUMP_WARNING_DB = 12.0


@dataclass(frozen=True)
class RideConfig:
    """The vocal gain ride.

    Attributes:
        range_db: the ride stays within this many dB of the centre gain.
        rate_db_per_s: the fastest the gain may move, dB per second.
        update_s: how often the target gain is solved again, s.
        min_vocal_s: vocal needed before the ride moves, s: 100 ms segments above the
            absolute gate (-70 LUFS) and within 20 LU of the loudest so far.
        enabled: ride at all.
    """

    range_db: float = 6.0
    rate_db_per_s: float = 2.0
    update_s: float = 1.0
    min_vocal_s: float = 1.0
    enabled: bool = True


@dataclass(frozen=True)
class SettleConfig:
    """The re-estimate of the inserts from the first seconds of the take.

    Attributes:
        settle_s: length (s) of the take the estimate is made on, counted from the
            singer's first note (the first block whose vocal peaks above ``onset_dbfs``).
        onset_dbfs: the vocal input's sample peak that counts as singing, dBFS.
        apply_after_s: the estimate's result takes effect this long after ``settle_s``
            (the time it is given to run in the background; later if it needs longer).
        warmup_s, fade_s: the new inserts run this long alongside the old ones, then
            take over in a linear crossfade of ``fade_s``.
        enabled: settle at all.
    """

    settle_s: float = 5.0
    onset_dbfs: float = -40.0
    apply_after_s: float = 1.0
    warmup_s: float = 0.5
    fade_s: float = 0.2
    enabled: bool = True


@dataclass(frozen=True)
class LivePlan:
    """What is decided before the song.

    Attributes:
        params: the settings the live mix starts with (and its targets).
        sample_rate: Hz.
        method: the estimator for the settle (``baseline`` or ``model``).
        notes: what was decided and why.
        settle: whether the inserts are still to be estimated from the take (False when
            the params were given).
    """

    params: MixParams
    sample_rate: int
    method: str
    notes: tuple[str, ...] = ()
    settle: bool = True


def _default_method() -> str:
    from vocalmix.estimators.registry import default_method

    return default_method()


def _backing_reverb(backing: np.ndarray, sample_rate: int, method: str, params: MixParams,
                    notes: list[str]) -> MixParams:
    """``params`` with the reverb chosen from the backing alone and resolved."""
    from vocalmix.core.errors import ModelError
    from vocalmix.core.resolve import resolve_reverb
    from vocalmix.estimators import baseline

    p = params
    done = False
    if method == "model":
        from vocalmix.estimators.registry import Context, reverb_provider

        try:
            ctx = Context(np.zeros((0, 2), np.float32), backing, sample_rate, p)
            p, more = reverb_provider(ctx)
            done = True
            notes.extend(more)
        except ModelError as e:
            notes.append(f"reverb model unavailable ({e}): the baseline's tempo rule instead")
    if not done:
        tempo, found = baseline.tempo_or_default(backing, sample_rate)
        decay = baseline.reverb_decay_for_tempo(tempo)
        p = replace(p, vocal=replace(p.vocal, reverb=baseline.reverb_for_decay(decay)))
        p = p.with_targets(reverb_decay_s=decay)
        notes.append(baseline.tempo_rule_note(tempo, decay, found))
    rv = resolve_reverb(p.vocal.reverb, p.targets.reverb_decay_s, sample_rate, notes)
    return replace(p, vocal=replace(p.vocal, reverb=rv))


def _gain_against_whole_backing(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                                params: MixParams) -> tuple[float, float, float]:
    """The vocal gain (dB) that puts ``vocal`` (a rehearsal), processed by ``params``'
    chain, at the vocal-to-mix target against the whole backing: ``I_backing +
    v2b - I_vocal`` with ``v2b`` the vocal-to-backing ratio of the target for
    uncorrelated parts (:func:`vocalmix.estimators.level.v2m_to_v2b`). A rehearsal sung
    over a few seconds of the song says how loud the singer is; the whole backing, known
    before the song, says how loud the song is (a loud or quiet excerpt under the
    rehearsal would otherwise mislead the gain). Returns ``(gain, I_vocal, I_backing)``."""
    from vocalmix.core.measure import integrated_loudness, v2m_to_v2b
    from vocalmix.core.render import db_to_gain, vocal_parts

    parts = vocal_parts(vocal, sample_rate, params.vocal)
    i_v = integrated_loudness(parts.dry + parts.wet, sample_rate)
    i_b = integrated_loudness(backing * np.float32(db_to_gain(params.backing.gain_db)),
                              sample_rate)
    if not (math.isfinite(i_v) and math.isfinite(i_b)):
        return params.vocal.gain_db, i_v, i_b
    gain = i_b + v2m_to_v2b(params.targets.vocal_to_mix_lu) - i_v
    return clip(VocalChain, "gain_db", gain), i_v, i_b


def plan_live(backing: np.ndarray, sample_rate: int, *, rehearsal: np.ndarray | None = None,
              rehearsal_start_s: float = 0.0, params: MixParams | None = None,
              method: str | None = None, progress: Progress = _quiet) -> LivePlan:
    """Choose the live mix's starting settings before the song (see the module doc).

    Args:
        backing: the whole backing track, float32 ``(n, 2)``.
        sample_rate: Hz.
        rehearsal: a vocal clip sung over the backing, float32 ``(m, 2)``.
        rehearsal_start_s: where in the backing the rehearsal was sung, s.
        params: start from these settings instead (nothing is estimated; the ride
            still follows ``params.targets.vocal_to_mix_lu``).
        method: ``baseline`` or ``model`` (default: as ``vocalmix mix``).
    """
    from vocalmix import pipeline
    from vocalmix._version import __version__
    from vocalmix.core.measure import v2m_to_v2b
    from vocalmix.estimators.baseline import BaselineConfig

    method = method or _default_method()
    if params is not None:
        return LivePlan(params, sample_rate, method,
                        ("settings taken from the given params",), settle=False)
    notes: list[str] = []
    c = BaselineConfig()
    if rehearsal is not None:
        m = rehearsal.shape[0]
        start = max(0, int(round(rehearsal_start_s * sample_rate)))
        b = backing[start : start + m]
        if b.shape[0] < m:
            b = np.concatenate([b, np.zeros((m - b.shape[0], 2), np.float32)])
        progress(f"estimating from the {m / sample_rate:.1f} s rehearsal")
        est = pipeline.estimate_params(rehearsal, b, sample_rate, method=method)
        notes += [f"rehearsal: {n}" for n in est.notes]
        p = _backing_reverb(backing, sample_rate, method, est.params, notes)
        gain, i_v, i_b = _gain_against_whole_backing(rehearsal, backing, sample_rate, p)
        p = replace(p, vocal=replace(p.vocal, gain_db=gain))
        notes.append(
            f"rehearsal: processed vocal {i_v:.1f} LUFS at 0 dB, whole backing {i_b:.1f} "
            f"LUFS: vocal gain {gain:+.2f} dB for {p.targets.vocal_to_mix_lu:+.2f} LU "
            "against the whole song's mix (power addition); the ride refines it")
    else:
        target = c.vocal_to_mix_lu
        gain = clip(VocalChain, "gain_db", v2m_to_v2b(target))
        p = MixParams(
            vocal=VocalChain(
                highpass=HighPass(True, c.highpass_default_hz),
                compressor=Compressor(ratio=1.0, attack_ms=c.compressor_attack_ms,
                                      release_ms=c.compressor_release_ms),
                gain_db=gain),
            targets=Targets(vocal_to_mix_lu=target, vocal_lra_lu=c.vocal_lra_lu),
        )
        progress("choosing the reverb from the backing")
        p = _backing_reverb(backing, sample_rate, method, p, notes)
        notes.append(f"no rehearsal: vocal gain {gain:+.2f} dB assumes the vocal as loud as "
                     f"the backing (vocal-to-mix target {target:+.1f} LU) until measured; "
                     "no EQ or compression until the take has settled")
    p = replace(p, provenance=Provenance(method=method, vocalmix_version=__version__,
                                         notes=tuple(notes)))
    return LivePlan(p, sample_rate, method, tuple(notes), settle=True)


# --- the log -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveLog:
    """What a live session did: enough to render it again and to improve on it.

    Attributes:
        sample_rate: Hz.
        block_size: the live block size (any block size replays the same).
        params: the settings the session started with.
        events: every change, with the sample it took effect at.
        final_params: the settings at the end (settled inserts, the ride's last gain).
        notes: what happened.
    """

    sample_rate: int
    block_size: int
    params: MixParams
    events: tuple[Event, ...]
    final_params: MixParams
    notes: tuple[str, ...] = ()

    def to_json(self) -> str:
        """The log as a JSON document (``format: vocalmix.live-log``)."""
        d = {"format": "vocalmix.live-log", "sample_rate": self.sample_rate,
             "block_size": self.block_size, "params": self.params.to_dict(),
             "events": [asdict(e) for e in self.events],
             "final_params": self.final_params.to_dict(), "notes": list(self.notes)}
        return json.dumps(d, indent=2, allow_nan=False) + "\n"

    @staticmethod
    def from_json(text: str) -> LiveLog:
        """Read a document written by :meth:`to_json`."""
        from vocalmix.core.errors import ParamsError

        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ParamsError(f"live log is not valid JSON: {e}") from None
        if not isinstance(d, dict) or d.get("format") != "vocalmix.live-log":
            raise ParamsError("not a vocalmix live log (format vocalmix.live-log)")
        try:
            return LiveLog(int(d["sample_rate"]), int(d["block_size"]),
                           MixParams.from_dict(d["params"]),
                           tuple(Event(int(e["sample"]), str(e["kind"]), dict(e["value"]))
                                 for e in d["events"]),
                           MixParams.from_dict(d["final_params"]), tuple(d.get("notes", ())))
        except (KeyError, TypeError, ValueError) as e:
            raise ParamsError(f"live log is incomplete: {e}") from None


def replay_log(vocal: np.ndarray, backing: np.ndarray, log: LiveLog, *,
               block_size: int = 4096) -> Stems:
    """Render a live session again offline from its log, time-aligned with the input:
    the mix and stems the session produced (see :func:`vocalmix.core.stream.replay`)."""
    s = replay(vocal, backing, log.sample_rate, log.params, list(log.events),
               block_size=block_size, stems=True)
    assert isinstance(s, Stems)
    return s


# --- the session ----------------------------------------------------------------------------


@dataclass
class _Settled:
    """The result of the settle estimate, waiting to be applied."""

    chain: VocalChain | None
    target_lu: float | None
    centre_db: float | None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _ready_to_settle() -> None:
    """Run first in the settle's worker process: imports what the estimate needs."""
    import vocalmix.pipeline  # noqa: F401


def settle_estimate(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                    method: str) -> _Settled:
    """The settle estimate on the first seconds of a take (module level, so that a
    worker process can run it)."""
    from vocalmix.core.errors import VocalmixError
    from vocalmix.core.progress import WARNING_PREFIX
    from vocalmix.pipeline import MASTER_NOTE_PREFIX, estimate_params

    t = time.perf_counter()
    try:
        est = estimate_params(vocal, backing, sample_rate, method=method)
    except VocalmixError as e:
        return _Settled(None, None, None, [f"settle: {e}; settings kept"],
                        time.perf_counter() - t)
    p = est.params
    # (the settle adopts the vocal chain and the level target; the master keeps the
    # plan's gain, so the estimate's own master-gain note would mislead)
    # (a warning stays one, said of the settle's seconds: a take sung along to speakers,
    # or holding no voice, is worth saying even when the command is quiet)
    first = f"the first {vocal.shape[0] / sample_rate:.1f} s"
    notes = [f"{WARNING_PREFIX} settle on {first}: {n[len(WARNING_PREFIX):].strip()}"
             if n.startswith(WARNING_PREFIX) else f"settle on {first}: {n}"
             for n in est.notes if not n.startswith(MASTER_NOTE_PREFIX)]
    return _Settled(p.vocal, p.targets.vocal_to_mix_lu, p.vocal.gain_db, notes,
                    time.perf_counter() - t)


class LiveSession:
    """A live mix with the gain ride and the settle (see the module doc).

    Args:
        plan: from :func:`plan_live`.
        block_size: the largest block :meth:`process` will be given, samples.
        ride, settle: their settings.
        background: run the settle estimate in a worker process (for a real audio
            callback: a thread would hold the interpreter's lock for long stretches and
            delay blocks; the process is spawned, so the program's main module must guard
            its work with ``if __name__ == "__main__"``). Without it, the estimate runs
            inside the :meth:`process` call that reaches ``settle_s`` (its time is in
            :attr:`background_s`, so a simulation can leave it out of the block timings)
            and takes effect exactly
            ``apply_after_s`` later, which makes a simulation reproducible.
        stems: keep stems for :meth:`process_stems`.

    Attributes:
        mixer: the :class:`~vocalmix.core.stream.LiveMixer`.
        target_lu: the vocal-to-mix target the ride follows, LU.
        centre_db: the gain the ride stays within ``range_db`` of, dB.
        background_s: seconds spent on the settle estimate inside :meth:`process` since
            last read by :meth:`take_background_s`.
    """

    def __init__(self, plan: LivePlan, block_size: int, *, ride: RideConfig | None = None,
                 settle: SettleConfig | None = None, background: bool = False,
                 stems: bool = False) -> None:
        # imported here, not on first use inside an audio block
        from vocalmix.core.measure import k_weighting_sos
        from vocalmix.core.stream import BiquadStage

        self.plan = plan
        self.ride = ride or RideConfig()
        self.settle = settle or SettleConfig()
        self.background = background
        sr = self.sample_rate = plan.sample_rate
        self.mixer = LiveMixer(plan.params, sr, block_size, stems=stems)
        self.target_lu = plan.params.targets.vocal_to_mix_lu
        self.centre_db = plan.params.vocal.gain_db
        self.notes: list[str] = list(plan.notes)
        # K-weighting of the block's vocal at 0 dB fader gain (rows 0-1) and backing (2-3),
        # in place with its state kept (the EQ's second-order-section loop)
        self._kw = BiquadStage(k_weighting_sos(sr), block_size, signals=4)
        self._seg = int(round(sr / 10.0))
        # the current segment's sums of products of the four rows, and its length
        self._gram = np.zeros((4, 4))
        self._g4 = np.zeros((4, 4))
        self._cur_n = 0
        self._stats = np.zeros((3, 1024))
        self._n_seg = 0
        self._update = max(1, int(round(self.ride.update_s * sr)))
        self._next_update = self._update
        self._gains = np.zeros(block_size)
        do_settle = plan.settle and self.settle.enabled
        self._apply_after = int(round(self.settle.apply_after_s * sr))
        n_settle = max(1, int(round(self.settle.settle_s * sr)))
        # the first settle_s of the take from the singer's first note: vocal and backing
        self._capture = np.zeros((2, n_settle, 2), np.float32) if do_settle else None
        self._captured = 0
        self._onset = 10.0 ** (self.settle.onset_dbfs / 20.0)
        self._onset_sample = -1
        self._settle_state = "waiting" if do_settle else "off"
        self._apply_at = -1
        self._future: Future[_Settled] | None = None
        self._result: _Settled | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._warm: Future[None] | None = None
        if background and do_settle:
            # the worker started and its imports done now, not inside the audio block
            # that starts the estimate (spawning it there held that block 10-37 ms)
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            self._warm = self._pool.submit(_ready_to_settle)
        self.background_s = 0.0
        # the loudest vocal sample while the settle waited for the first note (linear)
        self._waiting_peak = 0.0
        # the ride's last solve: how far (LU) the vocal-to-mix stayed from its target with
        # the gain at the edge of the ride's range (negative: under it; 0: reached)
        self._held_lu = 0.0
        # how far the settle moved the ride's centre, dB
        self._centre_jump_db = 0.0
        self._last_target: float | None = None
        self._solver: Iterator[None] | None = None  # a ride solve under way
        r = self.ride.range_db
        self._offsets = np.linspace(-r, r, int(round(4 * r)) + 1)  # candidate gains, dB
        n = self._offsets.size
        self._coef = np.zeros((2 * n + 1, 3))
        self._coef[0, 0] = 1.0
        self._coef[1 : n + 1, 1] = 1.0

    # --- measurement and ride ---------------------------------------------------------

    def _measure(self) -> None:
        """K-weight the last block's vocal (at 0 dB fader gain) and backing, and add
        their energies and cross term to the current 100 ms segment. One call of the
        compiled second-order-section loop per block, in place, so the cost is the same in
        every block and nothing is allocated."""
        vox, b = self.mixer.last_vocal, self.mixer.last_backing
        n = vox.shape[1]
        if n == 0:
            return
        fader = self.mixer.fader
        x = self._kw.input(n)
        if fader.last_constant:
            np.multiply(vox, 10.0 ** (-fader.last_db[0] / 20.0), out=x[:2])
        else:
            g = self._gains[:n]
            np.multiply(fader.last_db[:n], -math.log(10.0) / 20.0, out=g)
            np.exp(g, out=g)
            np.multiply(vox, g, out=x[:2])
        x[2:] = b
        y = self._kw.filter_input(n)
        i = 0
        while i < n:
            k = min(n - i, self._seg - self._cur_n)
            piece = y[:, i : i + k]
            np.matmul(piece, piece.T, out=self._g4)  # every row's products, one call
            self._gram += self._g4
            self._cur_n += k
            i += k
            if self._cur_n == self._seg:
                if self._n_seg == self._stats.shape[1]:
                    self._stats = np.concatenate([self._stats, np.zeros_like(self._stats)],
                                                 axis=1)
                g = self._gram  # rows: vocal L, R, backing L, R
                self._stats[:, self._n_seg] = (g[0, 0] + g[1, 1], g[2, 2] + g[3, 3],
                                               g[0, 2] + g[1, 3])
                self._n_seg += 1
                self._gram.fill(0.0)
                self._cur_n = 0

    def _solve_steps(self) -> Iterator[None]:
        """Solve the ride's gain on the take so far, a slice at a time: a generator that
        :meth:`_after` advances once per block, so no block pays for the whole solve
        (at three minutes the take has 1800 segments, and 25 candidate gains of them
        cost milliseconds: more than a block). Sets the fader's target when done.

        The gain (dB) within the ride's range whose vocal-to-mix on the take so far is the
        target: BS.1770-4's two gating passes over the 400 ms blocks of the vocal alone
        and of the mix at each candidate gain (0.5 dB apart), :data:`SOLVE_BLOCKS` blocks
        per step, then the crossing interpolated. Nothing is set while there is too
        little vocal.
        """
        from vocalmix.core.measure import (
            ABS_GATE_LUFS,
            LOUDNESS_OFFSET_DB,
            gated_loudness,
            gated_sums,
            relative_gate,
        )
        from vocalmix.core.resolve import shifted_unless_gated

        ns, seg = self._n_seg, self._seg
        if ns < 4:
            return
        stats = self._stats  # the segments so far; a longer take moves to a new array
        with np.errstate(divide="ignore"):
            seg_lufs = LOUDNESS_OFFSET_DB + 10.0 * np.log10(stats[0, :ns] / seg)
        active = (seg_lufs > ABS_GATE_LUFS) & (seg_lufs > seg_lufs.max() - 20.0)
        if int(active.sum()) < self.ride.min_vocal_s * 10:
            return
        yield
        r = self.ride.range_db
        grid = self.centre_db + self._offsets  # 0.5 dB steps
        g = 10.0 ** (grid / 20.0)
        # rows: the vocal alone (0 dB), then the mix g V + B at each candidate gain, then
        # the vocal alone at each (its quiet blocks may pass the absolute gate only once
        # raised: not the 0 dB loudness plus the gain, as the resolver measures it)
        coef, n = self._coef, grid.size  # times the stats' rows (vv, bb, vb)
        np.multiply(g, g, out=coef[1 : n + 1, 0])
        np.multiply(g, 2.0, out=coef[1 : n + 1, 2])
        np.multiply(g, g, out=coef[n + 1 :, 0])
        yield
        n_blocks = ns - 3
        gate = np.full(coef.shape[0], ABS_GATE_LUFS)
        for _pass in range(2):
            total = np.zeros(coef.shape[0])
            count = np.zeros(coef.shape[0], dtype=np.int64)
            for a in range(0, n_blocks, SOLVE_BLOCKS):
                b = min(n_blocks, a + SOLVE_BLOCKS)
                e = coef @ stats[:, a : b + 3]  # segment energies of every row
                z = (e[:, :-3] + e[:, 1:-2] + e[:, 2:-1] + e[:, 3:]) / (4 * seg)  # eq. (1)
                with np.errstate(divide="ignore"):
                    lj = LOUDNESS_OFFSET_DB + 10.0 * np.log10(z)  # eq. (4)
                part, k = gated_sums(z, lj, gate)
                total += part
                count += k
                yield
            if _pass == 0:
                gate = relative_gate(total, count)
        loud = gated_loudness(total, count)
        vocal = shifted_unless_gated(loud[0] + grid, loud[n + 1 :])
        vals = vocal - loud[1 : n + 1] - self.target_lu  # vocal-to-mix minus the target
        if not np.isfinite(vals).all():
            return
        yield
        self._held_lu = (float(vals[0]) if vals[0] > 0.0 else
                         float(vals[-1]) if vals[-1] < 0.0 else 0.0)
        if vals[0] >= 0.0:
            gain = float(grid[0])
        elif vals[-1] <= 0.0:
            gain = float(grid[-1])
        else:
            j = int(np.flatnonzero(vals >= 0.0)[0])
            lo, hi = vals[j - 1], vals[j]
            gain = float(grid[j - 1] + (grid[j] - grid[j - 1]) * (-lo) / (hi - lo))
        gain = float(np.clip(gain, self.centre_db - r, self.centre_db + r))
        if self._last_target is None or abs(gain - self._last_target) >= 0.01:
            self.mixer.set_vocal_gain(gain, self.ride.rate_db_per_s)
            self._last_target = gain

    # --- settle ---------------------------------------------------------------------

    def _start_estimate(self) -> None:
        assert self._capture is not None
        v, b = self._capture[0], self._capture[1]
        self._apply_at = self.mixer.samples_processed + self._apply_after
        if self._pool is not None:
            # another process, not a thread: the estimate holds the GIL for long stretches
            # (pyebur128, Python loops), which would delay the audio callback's blocks.
            # The capture is handed over as it is (it is never written again): the pool's
            # own thread pickles it, not this block
            self._future = self._pool.submit(settle_estimate, v, b, self.sample_rate,
                                             self.plan.method)
        else:
            self._result = settle_estimate(v, b, self.sample_rate, self.plan.method)
            self.background_s += self._result.seconds
        self._capture = None
        self._settle_state = "running"

    def _apply_settled(self) -> None:
        """At a block boundary: apply the settle result once it is due and ready."""
        if self._settle_state != "running" or self.mixer.samples_processed < self._apply_at:
            return
        if self._future is not None:
            if not self._future.done():
                return
            self._result = self._future.result()
            if self._pool is not None:
                self._pool.shutdown(wait=False)
        r = self._result
        assert r is not None
        self.notes += r.notes
        if r.chain is not None:
            self.mixer.change_inserts(r.chain, warmup_s=self.settle.warmup_s,
                                      fade_s=self.settle.fade_s)
            assert r.target_lu is not None and r.centre_db is not None
            self._centre_jump_db = r.centre_db - self.centre_db
            self.target_lu, self.centre_db = r.target_lu, r.centre_db
            self.notes.append(
                f"settle applied at {self.mixer.samples_processed / self.sample_rate:.2f} s "
                f"(estimate took {r.seconds:.2f} s): new EQ and compressor, vocal-to-mix "
                f"target {r.target_lu:+.2f} LU, ride centre {r.centre_db:+.2f} dB")
            self._last_target = None
        self._settle_state = "done"

    # --- processing -------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Wait until the settle's worker process (``background``) has started and
        imported what it needs, at most ``timeout_s`` s: called before the audio starts,
        so that its start-up does not compete with the first blocks for the CPU. Whether
        it is ready (True when the session needs no worker)."""
        if self._warm is None:
            return True
        from concurrent.futures import wait

        done, _ = wait([self._warm], timeout=timeout_s)
        return bool(done) and self._warm.exception() is None

    def take_background_s(self) -> float:
        """Seconds the settle estimate took inside :meth:`process` since the last call."""
        s, self.background_s = self.background_s, 0.0
        return s

    def _before(self, vocal: np.ndarray, backing: np.ndarray) -> None:
        self._apply_settled()
        if self._capture is None:
            return
        if self._captured == 0:
            peak = float(np.abs(vocal).max(initial=0.0))
            if not peak >= self._onset:  # (a NaN block is mixed as silence)
                if peak > self._waiting_peak:
                    self._waiting_peak = peak
                return  # the singer has not started: the settle counts from the first note
        k = min(vocal.shape[0], self._capture.shape[1] - self._captured)
        got = self._capture[:, self._captured : self._captured + k]
        got[0] = vocal[:k]
        got[1] = backing[:k]
        silence_nonfinite(got)  # (as the mixer mixes it)
        if self._captured == 0:
            self._onset_sample = self.mixer.samples_processed
        self._captured += k

    def _after(self) -> None:
        t = self.mixer.samples_processed
        if self.ride.enabled:
            self._measure()
            if self._solver is None and t >= self._next_update:
                self._solver = self._solve_steps()
                self._next_update += self._update * (1 + (t - self._next_update) // self._update)
            if self._solver is not None and next(self._solver, _DONE) is _DONE:
                self._solver = None
        if self._capture is not None and self._captured == self._capture.shape[1]:
            self._start_estimate()

    def process(self, vocal_block: np.ndarray, backing_block: np.ndarray, *,
                out: np.ndarray | None = None) -> np.ndarray:
        """Mix one block (see :meth:`LiveMixer.process`), then measure and ride."""
        self._before(vocal_block, backing_block)
        with flush_denormals():  # once for the mixer's filters and the ride's K-weighting
            y = self.mixer.process(vocal_block, backing_block, out=out)
            self._after()
        return y

    def process_stems(self, vocal_block: np.ndarray, backing_block: np.ndarray) -> Stems:
        """Like :meth:`process`, with the stems (see :meth:`LiveMixer.process_stems`)."""
        self._before(vocal_block, backing_block)
        with flush_denormals():
            s = self.mixer.process_stems(vocal_block, backing_block)
            self._after()
        return s

    def warnings(self) -> list[str]:
        """What the session could not do with the take so far, each a line that starts
        with ``warning:``: a vocal held more than :data:`HELD_WARNING_LU` from its
        vocal-to-mix target by the edge of the ride's range (a microphone's gain set far
        too low or too high: the ride moves the fader only so far from where it started,
        as a live room's feedback allows), a settle that moved the ride's centre more than
        :data:`CENTRE_JUMP_WARNING_DB` (the fader then spends seconds on its way there),
        and a take that never reached the settle's onset level (so no EQ or compression
        was estimated from it)."""
        out = []
        r = self.ride.range_db
        if abs(self._held_lu) > HELD_WARNING_LU:
            under = self._held_lu < 0.0
            edge = self.centre_db + (r if under else -r)
            out.append(
                f"warning: the vocal sits {abs(self._held_lu):.1f} LU "
                f"{'under' if under else 'over'} its vocal-to-mix target "
                f"({self.target_lu:+.1f} LU) with the ride at the edge of its range "
                f"({edge:+.1f} dB, {r:g} dB from where it started): the microphone's signal "
                f"is far too {'quiet' if under else 'loud'}; "
                f"{'raise' if under else 'lower'} its gain, or give a rehearsal clip "
                "recorded as the take will be (its level sets where the ride starts)")
        jump = self._centre_jump_db
        if abs(jump) > CENTRE_JUMP_WARNING_DB and self.ride.enabled:
            out.append(
                f"warning: the take came in {abs(jump):.1f} dB "
                f"{'quieter' if jump > 0 else 'louder'} than the ride had assumed: at its "
                f"{self.ride.rate_db_per_s:g} dB/s the fader took about "
                f"{abs(jump) / self.ride.rate_db_per_s:.0f} s from the settle on to bring "
                f"the vocal to its level; {'raise' if jump > 0 else 'lower'} the "
                "microphone's gain, or give a rehearsal clip recorded as the take will be "
                "(its level sets where the ride starts)")
        if (self._settle_state == "waiting" and self._captured == 0
                and self._waiting_peak > 0.0):
            out.append(
                f"warning: the take never peaked above {self.settle.onset_dbfs:g} dBFS (its "
                f"loudest sample {20.0 * math.log10(self._waiting_peak):.1f} dBFS), the "
                "first note the settle waits for: no EQ or compression was estimated "
                "from it; raise the microphone's gain")
        return out

    def log(self) -> LiveLog:
        """The session so far as a :class:`LiveLog` (its notes end with
        :meth:`warnings`)."""
        p = self.mixer.params  # the inserts in use (after a completed change)
        notes = (*self.notes, *self.warnings())
        final = replace(p, vocal=replace(p.vocal, gain_db=float(self.mixer.fader.target_db)),
                        targets=replace(p.targets, vocal_to_mix_lu=float(self.target_lu)),
                        provenance=replace(p.provenance, notes=notes))
        return LiveLog(self.sample_rate, self.mixer.block_size, self.plan.params,
                       tuple(self.mixer.events), final, notes)


# --- running a session: from files, or on a sound device -----------------------------------


@dataclass(frozen=True)
class Simulation:
    """A live session run block by block over whole signals.

    Attributes:
        mix, vocal, vocal_dry, backing: what the session output, time-aligned with the
            input (its latency removed), float32 ``(n, 2)``; the stems are ``None`` when
            the mixer keeps none.
        block_times_s: processing time of each block, s (the settle estimate, which a
            live session runs in the background, left out).
        block_size: samples.
        latency_samples: the mixer's latency.
        gain_db: the vocal gain (dB) of every input sample.
        background_s: time the settle estimate took, s.
        log: the session's :class:`LiveLog` (``None`` for a plain mixer).
    """

    mix: np.ndarray
    vocal: np.ndarray | None
    vocal_dry: np.ndarray | None
    backing: np.ndarray | None
    block_times_s: np.ndarray
    block_size: int
    latency_samples: int
    gain_db: np.ndarray
    background_s: float
    log: LiveLog | None

    def block_ratios(self, sample_rate: int) -> np.ndarray:
        """Each block's processing time over the block's duration."""
        return self.block_times_s / (self.block_size / sample_rate)


def simulate(vocal: np.ndarray, backing: np.ndarray, runner: LiveSession | LiveMixer,
             ) -> Simulation:
    """Run ``runner`` (a :class:`LiveSession` or a bare :class:`LiveMixer`) over two
    float32 ``(n, 2)`` signals block by block, as an audio callback would, then over
    ``latency`` samples of silence to flush the look-ahead; time every block."""
    mixer = runner.mixer if isinstance(runner, LiveSession) else runner
    bs, lat = mixer.block_size, mixer.latency_samples
    n = vocal.shape[0]
    total = n + lat
    silence = np.zeros((bs, 2), np.float32)
    nb = -(-total // bs)
    times = np.zeros(nb)
    gains = np.zeros(nb * bs)
    keys = ("mix", "vocal", "vocal_dry", "backing") if mixer.keeps_stems else ("mix",)
    # each block is copied into its place: a list of the blocks' own arrays, joined at
    # the end, held about twice the outputs at once (a 3-minute song: 0.6 GB, not 0.3)
    outs = {k: np.empty((nb * bs, 2), np.float32) for k in keys}
    bg = 0.0
    for i in range(nb):
        t = i * bs
        k = min(bs, total - t)
        if t + k <= n:
            v, b = vocal[t : t + k], backing[t : t + k]
        else:
            m = max(0, n - t)
            v = np.concatenate([vocal[t : t + m], silence[: k - m]])
            b = np.concatenate([backing[t : t + m], silence[: k - m]])
        t0 = time.perf_counter()
        if mixer.keeps_stems:
            s = runner.process_stems(v, b)
            got = {key: getattr(s, key) for key in keys}
        else:
            got = {"mix": runner.process(v, b)}
        dt = time.perf_counter() - t0
        for key, block in got.items():
            outs[key][t : t + k] = block
        if isinstance(runner, LiveSession):
            extra = runner.take_background_s()
            bg += extra
            dt -= extra
        times[i] = dt
        gains[t : t + k] = mixer.fader.last_db[:k]
    cat = {k: v[lat : lat + n] for k, v in outs.items()}
    log = runner.log() if isinstance(runner, LiveSession) else None
    return Simulation(cat["mix"], cat.get("vocal"), cat.get("vocal_dry"), cat.get("backing"),
                      times, bs, lat, gains[:n], bg, log)


def sound_device() -> tuple[Any | None, str]:
    """``(sounddevice module, "")`` when a sound device can be used, else ``(None, why)``."""
    try:
        import sounddevice as sd
    except ImportError:
        return None, "sounddevice is not installed (pip install 'vocalmix[live]')"
    except OSError as e:  # the PortAudio library is missing
        return None, f"sounddevice cannot load PortAudio ({e})"
    try:
        devices = sd.query_devices()
    except Exception as e:  # PortAudio errors are plain exceptions
        return None, f"no sound device could be queried ({e})"
    if not len(devices):
        return None, "no sound device is present"
    return sd, ""


class LowLatencyCpu:
    """Ask Linux to keep the processors out of deep idle states while held (the PM QoS
    request ``/dev/cpu_dma_latency`` = 0 us, as low-latency audio setups and
    ``cyclictest`` do): waking from them between audio blocks makes each block's first
    instructions slow. Needs permission to write that file (root, or a udev rule);
    without it, or off Linux, nothing changes and :attr:`note` says why.

    Use as a context manager; :attr:`held` tells whether the request is in force.
    """

    PATH = "/dev/cpu_dma_latency"

    def __init__(self) -> None:
        self._fd: int | None = None
        self.note = ""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> LowLatencyCpu:
        import os
        import struct

        try:
            fd = os.open(self.PATH, os.O_WRONLY)
        except OSError as e:
            self.note = f"processor idle states left as they are ({self.PATH}: {e.strerror})"
            return self
        try:
            os.write(fd, struct.pack("i", 0))
        except OSError as e:
            os.close(fd)
            self.note = f"processor idle states left as they are ({e.strerror})"
            return self
        self._fd = fd  # the request lasts while the file is open
        self.note = "processors kept out of deep idle states (PM QoS, cpu_dma_latency 0 us)"
        return self

    def __exit__(self, *_exc: object) -> None:
        import os

        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run_on_device(sd: Any, session: LiveSession, backing: np.ndarray,
                  vocal: np.ndarray | None = None, *, input_channels: int = 1,
                  progress: Progress = _quiet) -> tuple[np.ndarray, np.ndarray]:
    """Run ``session`` on the default sound device until the backing has played.

    The vocal comes from the default input (``input_channels`` channels; mono is put in
    the centre), or from ``vocal`` (an array played through the mixer in real time);
    the mix goes to the default output. Returns ``(mix, take)``: the live output as
    played (latency included) and the vocal that went in, float32 ``(n, 2)``.
    """
    bs = session.mixer.block_size
    sr = session.sample_rate
    n = backing.shape[0] + session.mixer.latency_samples
    mix = np.zeros((n, 2), np.float32)
    take = np.zeros((n, 2), np.float32)
    pos = [0]
    vbuf = np.zeros((bs, 2), np.float32)
    bbuf = np.zeros((bs, 2), np.float32)
    done = threading.Event()

    def callback(indata, outdata, frames, _time, _status) -> None:  # audio thread
        t = pos[0]
        k = min(frames, n - t)
        v, b = vbuf[:frames], bbuf[:frames]
        if vocal is None:
            v[:, 0] = indata[:, 0]
            v[:, 1] = indata[:, 1] if indata.shape[1] > 1 else indata[:, 0]
        else:
            v.fill(0.0)
            m = max(0, min(frames, vocal.shape[0] - t))
            v[:m] = vocal[t : t + m]
        b.fill(0.0)
        m = max(0, min(frames, backing.shape[0] - t))
        b[:m] = backing[t : t + m]
        session.process(v, b, out=outdata)
        if k > 0:
            mix[t : t + k] = outdata[:k]
            take[t : t + k] = v[:k]
        pos[0] = t + frames
        if pos[0] >= n:
            done.set()
            raise sd.CallbackStop

    channels = (input_channels if vocal is None else 1, 2)
    session.wait_ready()
    with LowLatencyCpu() as cpu:
        progress(f"playing {backing.shape[0] / sr:.1f} s on the sound device, block {bs}; "
                 f"{cpu.note}")
        with sd.Stream(samplerate=sr, blocksize=bs, channels=channels, dtype="float32",
                       latency="low", callback=callback):
            done.wait(timeout=n / sr + 10.0)
    return mix, take[: backing.shape[0]]


__all__ = [
    "LiveLog",
    "LivePlan",
    "LiveSession",
    "LowLatencyCpu",
    "RideConfig",
    "SettleConfig",
    "Simulation",
    "plan_live",
    "replay_log",
    "run_on_device",
    "simulate",
    "sound_device",
]
