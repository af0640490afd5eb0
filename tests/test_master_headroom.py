"""The master's headroom without a loudness target: unity gain, unless the limiter would
take more than :data:`~vocalmix.core.resolve.MAX_LIMITER_LOSS_LU` off the mix's loudness
(a vocal over a loud, already limited backing); the estimate checked against the
limiter's own renders."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import vocalmix
from vocalmix.core.measure import integrated_loudness, k_weighted_energies
from vocalmix.core.params import Master
from vocalmix.core.render import VocalParts, master_loudness, premaster_peaks
from vocalmix.core.resolve import (
    MAX_LIMITER_LOSS_LU,
    MIX_LUFS_PLATEAU_LU,
    limiter_loss_lu,
    resolve_master_gain,
    resolve_master_headroom,
)

SR = 44100
SEG = SR // 10


def _loud_backing(seconds: float, lufs: float, rng: np.random.Generator) -> np.ndarray:
    """A dense instrumental (a decaying noise hit every 0.25 s over a held chord) pushed
    to ``lufs`` through the master's own limiter at -1 dBTP, as a loud master is."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    hits = rng.standard_normal(n) * np.exp(-(t % 0.25) / 0.03)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 164.8, 220.0, 277.2))
    x = np.repeat((0.3 * hits + 0.1 * chord)[:, None], 2, axis=1).astype(np.float32)
    m = Master(ceiling_dbtp=-1.0)
    gain = lufs - integrated_loudness(x, SR)
    for _ in range(6):  # raise the gain by what the limiter took, until at the target
        _y, _r, got = master_loudness(x * np.float32(10 ** (gain / 20)), SR, m, in_place=True)
        gain += lufs - got
    y, _r, _got = master_loudness(x * np.float32(10 ** (gain / 20)), SR, m, in_place=True)
    return np.ascontiguousarray(y, dtype=np.float32)


def _sung(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    phrases = (np.sin(2 * np.pi * t / 4.0) > -0.5) * np.exp(-(t % 4.0) / 3.0)
    x = 0.3 * syllables * phrases * np.sin(2 * np.pi * 220 * t)
    return np.repeat(x[:, None], 2, axis=1).astype(np.float32)


def _rendered_loss(pre: np.ndarray, gain_db: float, master: Master) -> float:
    """The loudness (LU) the limiter takes off ``pre`` at ``gain_db``, by rendering it."""
    _y, _r, got = master_loudness(pre * np.float32(10 ** (gain_db / 20)), SR, master,
                                  in_place=True)
    return integrated_loudness(pre, SR) + gain_db - got


@pytest.fixture(scope="module")
def loud_pair():
    rng = np.random.default_rng(7)
    vocal = _sung(12.0)  # at -10 LUFS: 2 LU under the backing, as a mix puts it
    vocal *= np.float32(10 ** ((-10.0 - integrated_loudness(vocal, SR)) / 20))
    return vocal, _loud_backing(12.0, -8.0, rng)


def test_the_estimate_follows_the_limiters_rendered_loss(loud_pair):
    """On a sum past the ceiling, the estimate from segment peaks reads 60-100 % of what
    the limiter's render takes off, and both fall as the gain falls."""
    vocal, backing = loud_pair
    pre = (backing + vocal).astype(np.float32)
    parts = VocalParts(dry=vocal, wet=np.zeros_like(vocal))
    peaks = premaster_peaks(parts, backing, 0.0, SEG)
    n = pre.shape[0] // SEG
    assert np.array_equal(peaks, np.abs(pre[: n * SEG]).reshape(n, -1).max(axis=1))
    energy = k_weighted_energies(pre, SR)
    master = Master(ceiling_dbtp=-1.0)
    gains = np.array([0.0, -1.0, -2.0, -3.0, -4.0])
    est = limiter_loss_lu(energy, peaks, SEG, gains, master.ceiling_dbtp)
    rendered = np.array([_rendered_loss(pre, float(g), master) for g in gains])
    assert rendered[0] > 1.5  # the case: a squashed mix
    assert np.all(np.diff(est) < 0) and np.all(np.diff(rendered) < 0)
    big = rendered > 0.3
    ratio = est[big] / rendered[big]
    assert np.all((ratio > 0.6) & (ratio <= 1.0)), (est, rendered)


def test_the_headroom_is_the_highest_gain_within_the_limit(loud_pair):
    vocal, backing = loud_pair
    pre = (backing + vocal).astype(np.float32)
    energy = k_weighted_energies(pre, SR)
    peaks = premaster_peaks(VocalParts(dry=vocal, wet=np.zeros_like(vocal)), backing, 0.0,
                            SEG)
    master = Master(ceiling_dbtp=-1.0)
    h = resolve_master_headroom(energy, peaks, SEG, master)
    assert h.gain_db < 0 and h.loss_at_unity_lu > MAX_LIMITER_LOSS_LU
    assert h.loss_lu <= MAX_LIMITER_LOSS_LU
    assert limiter_loss_lu(energy, peaks, SEG, h.gain_db + 0.02, -1.0) > MAX_LIMITER_LOSS_LU
    # a quiet sum is left at unity gain
    quiet = resolve_master_headroom(energy / 100.0, peaks / 10.0, SEG, master)
    assert quiet.gain_db == 0.0 and quiet.loss_lu == quiet.loss_at_unity_lu


def test_a_vocal_over_a_loud_backing_is_not_squashed_by_the_master(loud_pair):
    """With either method, a mix over a -8 LUFS limited backing turns the master down
    (with a note and a reason), and the rendered mix loses under 0.8 LU to the limiter,
    where at 0 dB it lost more than 1 LU; a locked master gain and a mix-loudness
    target are kept to; a quiet backing keeps the master at 0 dB."""
    vocal, backing = loud_pair
    for method in ("baseline", "model"):
        r = vocalmix.mix(vocal, backing, SR, method=method)
        p = r.params
        assert p.master.gain_db < -0.5, method
        assert any(n.startswith("master gain") and "limiter" in n for n in r.notes)
        assert any(x.path == "master.gain_db" and x.source == "resolver" for x in p.reasons)
        pre = (r.vocal + r.backing).astype(np.float32)  # the pre-master sum
        assert _rendered_loss(pre, p.master.gain_db, p.master) < 0.8
        assert _rendered_loss(pre, 0.0, p.master) > 1.0
    unity = replace(p, master=replace(p.master, gain_db=0.0))
    locked = vocalmix.mix(vocal, backing, SR, params=unity, locks=("master.gain_db",))
    assert locked.params.master.gain_db == 0.0
    loud = vocalmix.mix(vocal, backing, SR, method="baseline", mix_lufs=-9.0)
    assert abs(loud.params.achieved.mix_integrated_lufs + 9.0) < 0.2
    quiet = vocalmix.mix(vocal, backing * np.float32(0.1), SR, method="baseline")
    assert quiet.params.master.gain_db == 0.0


def test_a_live_settle_does_not_announce_a_master_gain_it_does_not_apply(loud_pair):
    """The live settle adopts the estimate's vocal chain and level target only; over a loud
    backing its estimate turns the master down, and that note is left out of the settle's
    notes (the master keeps the plan's gain)."""
    from vocalmix.live import settle_estimate
    from vocalmix.pipeline import estimate_params

    vocal, backing = loud_pair
    est = estimate_params(vocal, backing, SR, method="baseline")
    assert any(n.startswith("master gain") for n in est.notes)
    settled = settle_estimate(vocal, backing, SR, "baseline")
    assert settled.chain is not None and settled.notes
    assert not any("master gain" in n for n in settled.notes)


def test_the_master_reads_its_true_peak_as_it_limits_the_same_as_after():
    # the true peak of the limited mix is read a block at a time as the limiter finishes
    # it (beside its loudness), not over the whole mix afterwards: the same figure
    from vocalmix.core.measure import true_peak_dbtp
    from vocalmix.core.render import PendingMaster
    from vocalmix.synth import synthesize_song

    for seed in range(3):
        v, b = synthesize_song(sample_rate=44100, duration_s=6.0, seed=seed)
        x = (1.5 * v + 2.5 * b).astype(np.float32)  # over the ceiling: limited
        y, reduction, tp, energy = PendingMaster(x, 44100, Master()).result()
        assert reduction > 3.0 and energy is not None
        assert tp == true_peak_dbtp(y, 44100)


def test_a_mix_loudness_target_past_the_limiters_reach_is_missed_honestly(rng):
    """A target the ceiling cannot allow: the gain returned is one the search rendered,
    with that render's loudness (the figure reported was the gain before, the gain one
    never rendered), not pushed up the limiter's plateau (+33 dB of gain and 34 dB of
    limiting for a -5 LUFS target), and the mix says it missed; a reachable target is
    still reached."""
    pre = _loud_backing(8.0, -12.0, rng) * np.float32(0.5)
    master = Master(ceiling_dbtp=-1.0)
    for target in (-8.0, -6.0, -5.0):
        m = resolve_master_gain(pre, SR, target, master)
        _y, _r, got = master_loudness(pre * np.float32(10 ** (m.gain_db / 20)), SR, master,
                                      in_place=True)
        assert got == pytest.approx(m.mix_lufs, abs=1e-9)  # the figure is the gain's own
        assert target - m.mix_lufs > 0.3  # (out of reach)
        assert _rendered_loss(pre, m.gain_db, master) < 15.0, m
        # a smaller gain within the plateau's tolerance would not have been rendered
        louder = resolve_master_gain(pre, SR, target + 20.0, master)
        assert m.mix_lufs >= louder.mix_lufs - MIX_LUFS_PLATEAU_LU - 1e-9
    reached = resolve_master_gain(pre, SR, -16.0, master)
    assert abs(reached.mix_lufs + 16.0) <= 0.1
    v = _sung(8.0)
    r = vocalmix.mix(v, pre, SR, method="baseline", mix_lufs=-5.0)
    assert any(n.startswith("warning: the mix-loudness target -5 LUFS is missed by")
               for n in r.notes), r.notes
    # (the master gain's reason is the resolver's note on it, not the warning after it)
    assert r.params.reason_for("master.gain_db").text.startswith("master gain +")


def test_a_very_quiet_mix_without_a_loudness_target_is_warned_about():
    """The vocal is set against the backing and the master stays at 0 dB without a
    mix-loudness target: a backing 30 dB down gave a -43 LUFS mix without a word."""
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=SR, duration_s=8.0, seed=3)
    quiet = vocalmix.mix(v, b * np.float32(10 ** (-30 / 20)), SR, method="baseline")
    assert any(n.startswith("warning: the mix comes out at about -4") and "--mix-lufs" in n
               for n in quiet.notes), quiet.notes
    normal = vocalmix.mix(v, b, SR, method="baseline")
    assert not any("very quiet" in n for n in normal.notes)
    raised = vocalmix.mix(v, b * np.float32(10 ** (-30 / 20)), SR, method="baseline",
                          mix_lufs=-16.0)
    assert not any("very quiet" in n for n in raised.notes)


def test_a_burst_the_limiter_ducks_the_mix_around_is_warned_about_where_it_is():
    """A click 12 dB over a mix's other peaks (a glitch in the backing) at 7.3 s, or in
    the last few milliseconds after the last whole 100 ms segment: the warning names the
    moment and about the reduction the render then applies; a clean mix, and a loud
    master whose limiting is spread over the song, get none."""
    from vocalmix.pipeline import LIMITER_BURST_DB, limiter_burst_warning

    rng = np.random.default_rng(4)
    n = 10 * SR + 2000  # 100 whole segments and 45 ms after them
    vocal = _sung(n / SR)[:n]
    clean = (0.1 * rng.standard_normal((n, 2))).astype(np.float32)
    r = vocalmix.mix(vocal, clean, SR, method="baseline", progress=None)
    assert not any("limiter takes" in w for w in r.warnings)
    assert r.params.achieved.master_gain_reduction_db < LIMITER_BURST_DB
    for i, shown in ((int(7.3 * SR), "0:07.3"), (n - 40, "0:10.0")):
        bursty = clean.copy()
        bursty[i : i + 32] = 3.0  # +9.5 dBFS, in float: nothing clipped on reading
        r = vocalmix.mix(vocal, bursty, SR, method="baseline", progress=None)
        said = [w for w in r.warnings if "limiter takes" in w]
        assert len(said) == 1 and f"at {shown} " in said[0], r.warnings
        cut = float(said[0].split("takes about ")[1].split(" dB")[0])
        reduction = r.params.achieved.master_gain_reduction_db
        assert reduction > LIMITER_BURST_DB and abs(cut - reduction) <= 1.5
    # a loud master: limited all over, no single burst
    loud = _loud_backing(n / SR, -9.0, rng)[:n]
    r = vocalmix.mix(vocal, loud, SR, method="baseline", progress=None)
    assert not any("limiter takes" in w for w in r.warnings)
    # the rule itself: the reduction is the peak raised by the master gain over the ceiling
    seg = SR // 10
    peaks = np.full(20, 0.5, np.float32)
    assert limiter_burst_warning(peaks, seg, SR, 0.0, -1.0) is None
    peaks[13] = 10 ** (6.0 / 20)
    w = limiter_burst_warning(peaks, seg, SR, 0.0, -1.0)
    assert w is not None and "about 7 dB" in w and "at 0:01.3 " in w and "+6.0 dBFS" in w
    assert limiter_burst_warning(peaks, seg, SR, -2.0, -1.0) is None  # 5 dB: under the line
    assert limiter_burst_warning(np.zeros(0), seg, SR, 0.0, -1.0) is None
