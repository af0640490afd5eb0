"""A take that carries reverb already gets only the rest of the model's reverb.

The reverb model predicts the finished vocal's reverberant-to-direct ratio (it was
learned from the reverb read on mixed vocal stems); a wet take (a mixed stem, an app's
echo, a live room) would otherwise get that much again on top of its own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core.params import Reverb
from vocalmix.core.render import reverb_wet
from vocalmix.estimators import registry, reverb

from conftest import require_data


def test_the_send_is_what_the_take_lacks_in_energy():
    assert reverb.send_for_total_db(-13.0, -27.0) == pytest.approx(
        10 * math.log10(10 ** -1.3 - 10 ** -2.7))
    assert reverb.send_for_total_db(-10.0, -16.0) == pytest.approx(-11.26, abs=0.01)
    assert reverb.send_for_total_db(-13.0, -13.0) is None  # as wet as the target
    assert reverb.send_for_total_db(-13.0, -8.0) is None  # wetter
    # all but a sliver of the target: a send 20 dB under the take's own reverb is left off
    assert reverb.send_for_total_db(-13.0, -13.02) is None
    assert reverb.send_for_total_db(-13.0, -14.0) is not None


def _dry_take() -> tuple[np.ndarray, int]:
    x, sr = sf.read(require_data("dry_vocals", "vocadito_1_CC-BY4.wav"), dtype="float32")
    return np.stack([x, x], axis=1), sr


def _wet(take: np.ndarray, sr: int, wet_db: float) -> np.ndarray:
    rv = Reverb(type="synthetic", decay_s=1.2, wet_level_db=wet_db, pre_delay_ms=20.0)
    return (take + reverb_wet(take, sr, rv)).astype(np.float32)


def test_a_dry_take_reads_dry_and_a_wet_one_reads_about_its_reverb():
    m = reverb.shipped_model()
    take, sr = _dry_take()
    assert reverb.take_reverb_db(m, take, sr) is None  # under DRY_READING_DB
    got = reverb.take_reverb_db(m, _wet(take, sr, -6.0), sr)
    assert got is not None
    level, n = got
    assert n == reverb.TAKE_EXCERPTS  # 33 s: more windows than it reads
    assert level == pytest.approx(-6.0, abs=4.0)  # the estimator's error on held-out rooms


def _backing(n: int) -> tuple[np.ndarray, int]:
    b, sr = sf.read(require_data("stems", "Cristina Vane - So Easy", "accompaniment.mp3"),
                    dtype="float32")
    return b[:n], sr


def test_the_model_adds_less_reverb_to_a_take_that_carries_some():
    take, sr = _dry_take()
    backing, bsr = _backing(30 * sr)
    assert bsr == sr
    take = take[: backing.shape[0]]
    dry, notes = registry.estimate(take, backing, sr, method="model")
    assert dry.vocal.reverb.enabled
    assert not any("carries reverb" in n for n in notes)
    target = dry.vocal.reverb.wet_level_db  # a dry take gets the model's level as it is
    assert -20.0 < target < 0.0
    # a take with some reverb of its own: the send makes up the difference
    some, notes = registry.estimate(_wet(take, sr, target - 1.5), backing, sr,
                                    method="model")
    assert some.vocal.reverb.enabled
    assert some.vocal.reverb.wet_level_db < target - 0.5
    assert any("the send is" in n for n in notes)
    why = next(r for r in some.reasons if r.path == "vocal.reverb")
    assert "take_reverb_db" in dict(why.inputs)
    # a take wetter than the model's choice gets none
    soaked, notes = registry.estimate(_wet(take, sr, target + 6.0), backing, sr,
                                      method="model")
    assert not soaked.vocal.reverb.enabled
    assert any("no reverb is added" in n for n in notes)
    # the baseline keeps the seed's rule whatever the take carries
    base, _ = registry.estimate(_wet(take, sr, target + 6.0), backing, sr, method="baseline")
    assert base.vocal.reverb.enabled and base.vocal.reverb.wet_level_db == -14.0


def test_a_mono_take_read_as_stereo_is_analysed_once_with_the_same_features(monkeypatch):
    take, sr = _dry_take()
    x = take[: 8 * sr]
    once = reverb.estimator_features(x, sr)
    monkeypatch.setattr(reverb, "equal_channels", lambda _x: False)  # both channels, as before
    assert np.array_equal(reverb.estimator_features(x, sr), once)
