"""A take recorded too quietly mixes as the same take recorded at a healthy level.

BS.1770-4's absolute gate (-70 LUFS) is there to leave silence out of a programme's
loudness. A vocal recorded 45 dB too low (its loudest 400 ms near -60 LUFS) had its
quieter phrases cut off by it: the dynamics model, reading the EQ'd take, asked for a
momentary range of 7.4 LU instead of 11.1, at 52 dB down for 4.9 LU, and the compressor
was then left off; at 60 dB down the take could not be mixed at all. The vocal's dynamics
figures and the level model's loudness features are now gated level-free (the absolute
gate placed under a quiet signal's own loudest block), which leaves every signal whose
loudest block reaches -20 LUFS gated as the standards say.

The other way, a take exported hot from a DAW's 32-bit bus (peaks past full scale, read
as they are) had its compressor threshold held at 0 dBFS, the top of its range: 20 dB
hot, it was compressed 3.8 LU past its target. The thresholds now reach +60 dBFS, the
hottest file accepted.
"""

from __future__ import annotations

import numpy as np
import pytest

import vocalmix
from vocalmix.core.measure import (
    LEVEL_FREE_TOP_LUFS,
    BlockStats,
    integrated_from_segments,
    level_free_loudness,
    level_free_loudness_range,
    loudness_range,
    lra_from_short_term,
    momentary_from_segments,
    momentary_loudness_range,
    momentary_range_from_segments,
)
from vocalmix.synth import synthesize_song

SR = 44100


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, np.ndarray]:
    return synthesize_song(sample_rate=SR, duration_s=20.0, seed=3)


def _db(x: np.ndarray, db: float) -> np.ndarray:
    return (x * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def _top_lufs(x: np.ndarray) -> float:
    st = BlockStats.of(x, SR, remember=False)
    m = np.asarray(momentary_from_segments(st.energy, st.segment_len))
    return float(m[np.isfinite(m)].max())


def test_level_free_gate_is_the_standard_one_for_a_healthy_level(song):
    vocal, _ = song
    assert _top_lufs(vocal) > LEVEL_FREE_TOP_LUFS
    st = BlockStats.of(vocal, SR, remember=False)
    e, seg = st.energy, st.segment_len
    assert (integrated_from_segments(e, seg, level_free=True)
            == integrated_from_segments(e, seg))
    assert level_free_loudness_range(vocal, SR) == loudness_range(vocal, SR)
    mom = momentary_from_segments(e, seg)
    assert lra_from_short_term(mom, level_free=True) == lra_from_short_term(mom)


@pytest.mark.parametrize("down_db", [30.0, 45.0, 55.0])
def test_quiet_figures_are_those_of_the_take_made_louder(song, down_db):
    vocal, _ = song
    quiet = _db(vocal, -down_db)
    st, sq = (BlockStats.of(x, SR, remember=False) for x in (vocal, quiet))
    # the standard's gate cuts the quiet take's lower phrases off (0.3 LU of its
    # momentary range at 45 dB down, 8.2 LU at 55)...
    if down_db >= 45.0:
        assert (momentary_range_from_segments(st.energy, st.segment_len)
                - float(lra_from_short_term(momentary_from_segments(sq.energy,
                                                                    sq.segment_len)))
                > (0.25 if down_db < 50.0 else 5.0))
    # ...the level-free figures read the take as it sings
    assert momentary_loudness_range(quiet, SR) == pytest.approx(
        momentary_loudness_range(vocal, SR), abs=1e-6)
    assert level_free_loudness_range(quiet, SR) == pytest.approx(
        loudness_range(vocal, SR), abs=1e-6)
    assert level_free_loudness(quiet, SR) == pytest.approx(
        level_free_loudness(vocal, SR) - down_db, abs=1e-4)


def test_a_silent_row_stays_silent():
    assert lra_from_short_term(np.full(50, -np.inf), level_free=True) == 0.0
    assert integrated_from_segments(np.zeros(40), 4410, level_free=True) == -np.inf


def test_a_take_45_db_too_quiet_gets_the_same_mix_settings(song):
    vocal, backing = song
    loud = vocalmix.estimate(vocal, backing, SR, method="model")
    quiet = vocalmix.estimate(_db(vocal, -45.0), backing, SR, method="model")
    assert quiet.targets.vocal_momentary_range_lu == pytest.approx(
        loud.targets.vocal_momentary_range_lu, abs=0.01)  # read 7.4 for 11.1 LU
    assert quiet.targets.vocal_lra_lu == pytest.approx(loud.targets.vocal_lra_lu, abs=0.05)
    assert quiet.targets.vocal_to_mix_lu == pytest.approx(loud.targets.vocal_to_mix_lu,
                                                          abs=0.01)
    cq, cl = quiet.vocal.compressor, loud.vocal.compressor
    assert cl.ratio > 1.0 and cq.ratio == cl.ratio
    assert cq.threshold_db == pytest.approx(cl.threshold_db - 45.0, abs=0.05)
    assert cq.makeup_db == pytest.approx(cl.makeup_db, abs=0.02)
    assert quiet.vocal.gain_db == pytest.approx(loud.vocal.gain_db + 45.0, abs=0.05)


def test_a_take_20_db_past_full_scale_gets_the_same_mix_settings(song):
    vocal, backing = song
    loud = vocalmix.estimate(vocal, backing, SR, method="model")
    hot = vocalmix.estimate(_db(vocal, 20.0), backing, SR, method="model")
    cl, ch = loud.vocal.compressor, hot.vocal.compressor
    assert ch.threshold_db > 0.0  # (held at 0 dBFS before: 3.8 LU past the target)
    assert ch.threshold_db == pytest.approx(cl.threshold_db + 20.0, abs=0.01)
    assert ch.makeup_db == pytest.approx(cl.makeup_db, abs=0.01)
    assert hot.vocal.gain_db == pytest.approx(loud.vocal.gain_db - 20.0, abs=0.01)
    for name in ("vocal_to_mix_lu", "vocal_lra_lu", "vocal_momentary_range_lu",
                 "reverb_decay_s"):
        assert getattr(hot.targets, name) == pytest.approx(getattr(loud.targets, name),
                                                           abs=1e-6)


def test_a_take_60_db_too_quiet_is_mixed(song):
    vocal, backing = song
    r = vocalmix.mix(_db(vocal, -60.0), backing, SR, method="model")
    t, a = r.params.targets, r.params.achieved
    assert a is not None and t.vocal_to_mix_lu is not None
    assert a.vocal_to_mix_lu == pytest.approx(t.vocal_to_mix_lu, abs=0.3)
    assert r.params.vocal.compressor.ratio > 1.0
    assert r.params.vocal.gain_db > 50.0


def test_a_mix_loudness_missed_at_the_master_gains_limit_says_so(song):
    vocal, backing = song
    r = vocalmix.mix(vocal, _db(backing, -45.0), SR, method="baseline", mix_lufs=-14.0)
    warn = [w for w in r.warnings if "mix-loudness target" in w]
    assert warn and "the master gain is at the most it may add (+40 dB)" in warn[0]
    assert "limiter" not in warn[0]


def _live_warnings(vocal: np.ndarray, backing: np.ndarray) -> tuple[list[str], object]:
    from vocalmix.live import LiveSession, plan_live, simulate

    session = LiveSession(plan_live(backing, SR, method="baseline"), 512)
    sim = simulate(vocal, backing, session)
    return session.warnings(), sim.log


def test_live_says_when_the_microphone_is_far_too_quiet(song):
    vocal, backing = song
    ok, _ = _live_warnings(vocal, backing)
    assert ok == []
    # 20 dB down: the settle finds it, and the fader spends 9 s getting there at 2 dB/s
    w20, _ = _live_warnings(_db(vocal, -20.0), backing)
    assert len(w20) == 1 and "quieter than the ride had assumed" in w20[0]
    assert "raise the microphone's gain" in w20[0]
    # 45 dB down: the take never reaches the settle's onset, and the ride's +6 dB leaves
    # it 35 LU under its target; both are said, and kept in the log's notes
    w45, log = _live_warnings(_db(vocal, -45.0), backing)
    assert any("LU under its vocal-to-mix target" in w and "edge of its range" in w
               for w in w45)
    assert any("never peaked above -40 dBFS" in w for w in w45)
    assert all(w in log.notes for w in w45)
    # a take that reaches the onset but ends before the settle's 5 s (after a second of
    # room tone at -60 dBFS) is not too quiet
    tone = _db(np.random.default_rng(0).standard_normal((SR, 2)).astype(np.float32), -60.0)
    short, _ = _live_warnings(np.concatenate([tone, vocal[: 3 * SR]]), backing[: 4 * SR])
    assert not any("never peaked" in w for w in short)


def test_a_real_vocal_with_a_de_esser_keeps_its_settings_from_60_db_down_to_40_db_hot():
    """A real mixed vocal whose sibilants get the de-esser (MUSDB18's ANiMAL - Rockshow):
    its compressor, de-esser and gain follow the take's level exactly, 60 dB down (where
    the de-esser's threshold was held at the old floor of -80 dBFS) to 40 dB hot (where
    its threshold was held at 0 dBFS)."""
    from vocalmix.training.data import find_songs, load_song

    from conftest import require_data

    folder = require_data("musdb18-7s", "train")
    song = next((s for s in find_songs([folder]) if s.song_id == "ANiMAL - Rockshow"), None)
    if song is None:
        pytest.skip("ANiMAL - Rockshow is not in the data folder")
    vocal, backing, sr = load_song(song)
    ref = vocalmix.estimate(vocal, backing, sr, method="model")
    assert ref.vocal.deesser.enabled
    for db in (-60.0, 40.0):
        p = vocalmix.estimate(_db(vocal, db), backing, sr, method="model")
        assert p.vocal.deesser.enabled
        assert p.vocal.deesser.threshold_db == pytest.approx(
            ref.vocal.deesser.threshold_db + db, abs=0.01)
        assert p.vocal.deesser.depth_db == pytest.approx(ref.vocal.deesser.depth_db, abs=0.01)
        assert p.vocal.compressor.threshold_db == pytest.approx(
            ref.vocal.compressor.threshold_db + db, abs=0.05)
        assert p.vocal.gain_db == pytest.approx(ref.vocal.gain_db - db, abs=0.02)
