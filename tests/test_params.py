"""MixParams: JSON round trip, validation errors that name the field."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vocalmix.core.errors import ParamsError
from vocalmix.core.params import (
    SCHEMA_VERSION,
    Achieved,
    Compressor,
    EqBand,
    MixParams,
    Provenance,
    Reverb,
    Targets,
    VocalChain,
)


def full_params() -> MixParams:
    return MixParams(
        vocal=VocalChain(
            eq_bands=(
                EqBand("peak", 3150.0, 2.25, 1.4, "masking"),
                EqBand("high_shelf", 9000.0, -1.5, 0.7, "correction"),
            ),
            compressor=Compressor(threshold_db=-23.4567891234, ratio=4.0, makeup_db=3.21),
            gain_db=-4.123456789012345,
            reverb=Reverb(decay_s=1.8, room_size=0.41, wet_level_db=-13.0, pre_delay_ms=25.0),
        ),
        targets=Targets(vocal_to_mix_lu=-3.0, vocal_lra_lu=10.0, reverb_decay_s=1.8),
        achieved=Achieved(vocal_to_mix_lu=-3.0001, vocal_lra_lu=9.9, mix_integrated_lufs=-14.2,
                          mix_true_peak_dbtp=-1.0, master_gain_reduction_db=0.0),
        provenance=Provenance(method="baseline", vocalmix_version="0.1.0", notes=("a", "b")),
    )


def test_json_round_trip_is_lossless():
    p = full_params()
    text = p.to_json()
    q = MixParams.from_json(text)
    assert q == p
    assert q.to_json() == text  # byte-identical second trip
    d = json.loads(text)
    assert d["format"] == "vocalmix.params" and d["version"] == SCHEMA_VERSION
    assert d["vocal"]["compressor"]["threshold_db"] == -23.4567891234


def test_defaults_round_trip():
    assert MixParams.from_json(MixParams().to_json()) == MixParams()


@pytest.mark.parametrize(
    "path,value,match",
    [
        (("vocal", "compressor", "ratio"), 0.5, "vocal.compressor.ratio = 0.5 is out of range"),
        (("vocal", "compressor", "threshold_db"), 72.0, "threshold_db"),
        (("vocal", "gain_db"), 1e9, "vocal.gain_db"),
        (("vocal", "reverb", "room_size"), 1.5, "room_size"),
        (("targets", "vocal_to_mix_lu"), 3.0, "targets.vocal_to_mix_lu"),
        (("targets", "vocal_lra_lu"), -2.0, "targets.vocal_lra_lu"),
        (("master", "ceiling_dbtp"), 3.0, "ceiling_dbtp"),
        (("vocal", "gain_db"), "loud", "must be a number"),
        (("vocal", "highpass", "enabled"), "yes", "true or false"),
        (("vocal", "eq_bands", 0, "gain_db"), 30.0,
         r"vocal\.eq_bands\[0\]\.gain_db = 30\.0 is out of range: allowed -24 to 24"),
    ],
)
def test_validation_names_the_field(path, value, match):
    d = full_params().to_dict()
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ParamsError, match=match):
        MixParams.from_dict(d)


def test_unknown_key_and_bad_kind_and_version():
    d = full_params().to_dict()
    d["vocal"]["compresor"] = {}
    with pytest.raises(ParamsError, match="unknown key.*compresor"):
        MixParams.from_dict(d)
    d = full_params().to_dict()
    d["vocal"]["eq_bands"][0]["kind"] = "notch"
    with pytest.raises(ParamsError, match="kind 'notch'"):
        MixParams.from_dict(d)
    d = full_params().to_dict()
    d["version"] = 99
    with pytest.raises(ParamsError, match="version 99"):
        MixParams.from_dict(d)
    with pytest.raises(ParamsError, match="not valid JSON"):
        MixParams.from_json("{not json")
    d = full_params().to_dict()
    d["vocal"]["gain_db"] = float("nan")
    with pytest.raises(ParamsError, match="vocal.gain_db = nan is out of range"):
        MixParams.from_json(json.dumps(d))


def test_version_1_documents_are_read_as_the_current_version():
    d = full_params().to_dict()
    d["version"] = 1
    del d["vocal"]["reverb"]["band_decay_ratios"]  # version 1 had no such field
    q = MixParams.from_dict(d)
    assert q.version == SCHEMA_VERSION and q.vocal.reverb.band_decay_ratios == (1.0,) * 7
    assert json.loads(q.to_json())["version"] == SCHEMA_VERSION


def test_version_2_documents_get_neutral_new_settings():
    d = full_params().to_dict()
    d["version"] = 2
    for k in ("amount", "locks", "reasons"):
        del d[k]
    for k in ("deesser", "delay"):
        del d["vocal"][k]
    del d["master"]["gain_db"]
    del d["targets"]["mix_lufs"]
    q = MixParams.from_dict(d)
    assert q == full_params()
    assert not q.vocal.deesser.enabled and not q.vocal.delay.enabled and q.amount == 1.0
    assert q.master.gain_db == 0.0 and q.targets.mix_lufs is None


def test_version_3_documents_keep_the_take_where_it_is():
    d = replace(full_params(), vocal=replace(full_params().vocal, offset_ms=0.0)).to_dict()
    d["version"] = 3
    del d["vocal"]["offset_ms"]
    q = MixParams.from_dict(d)
    assert q.vocal.offset_ms == 0.0 and q.version == SCHEMA_VERSION


def test_vocal_offset_is_range_checked():
    d = full_params().to_dict()
    d["vocal"]["offset_ms"] = -40.0
    assert MixParams.from_dict(d).vocal.offset_ms == -40.0
    for bad in (2500.0, -2000.5, float("nan"), "40", True):
        d["vocal"]["offset_ms"] = bad
        with pytest.raises(ParamsError, match="vocal.offset_ms"):
            MixParams.from_dict(d)


def test_locks_reasons_and_delay_round_trip_and_are_checked():
    from vocalmix.core.params import Delay, Reason

    p = replace(full_params(), locks=("vocal.gain_db", "vocal.eq_bands", "targets.vocal_lra_lu"),
                reasons=(Reason("targets.vocal_to_mix_lu", "model", "predicted",
                                (("tempo_bpm", 96.0),), 0.7),))
    assert MixParams.from_json(p.to_json()) == p
    with pytest.raises(ParamsError, match="locks.*vocal.gian_db"):
        replace(p, locks=("vocal.gian_db",))
    with pytest.raises(ParamsError, match="source"):
        Reason("vocal.gain_db", "guess")
    with pytest.raises(ParamsError, match="note"):
        Delay(note="1/7")
    # a tempo-synced delay: a dotted eighth at 100 BPM is 450 ms, an eighth triplet at
    # 120 BPM 166.7 ms, free has no note length
    assert Delay(note="1/8.", tempo_bpm=100.0).note_ms() == pytest.approx(450.0)
    assert Delay(note="1/8t", tempo_bpm=120.0).note_ms() == pytest.approx(500.0 / 3.0)
    assert Delay(note="free").note_ms() is None



@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_reason_input_that_is_not_finite_is_refused_on_reading(value):
    """Every document that loads must save again: JSON has no nan or infinity, so a
    reason's input that is not a finite number is refused where it is read, naming it."""
    from vocalmix.core.params import Reason

    p = replace(full_params(), reasons=(Reason("vocal.gain_db", "rule", "x", (("a", 1.0),)),))
    doc = json.loads(p.to_json())
    doc["reasons"][0]["inputs"][0][1] = 12345.5
    text = json.dumps(doc).replace("12345.5", value)
    with pytest.raises(ParamsError, match=r"reasons\[0\].inputs\[0\] of reason "
                                          r"'vocal.gain_db': 'a' = (nan|inf|-inf) is not"):
        MixParams.from_json(text)


def test_a_reason_made_with_an_unknown_input_records_only_the_known_ones():
    """An estimator's reason may carry a figure it could not measure (a tempo of NaN):
    the reason keeps its finite inputs, and the document saves and loads."""
    from vocalmix.core.params import Reason

    r = Reason("targets.reverb_decay_s", "rule", "x", (("tempo_bpm", float("nan")),
                                                       ("decay_s", 1.5)))
    assert r.inputs == (("decay_s", 1.5),)
    p = replace(full_params(), reasons=(r,))
    assert MixParams.from_json(p.to_json()) == p


@pytest.mark.parametrize(
    "ratios,match",
    [
        ([1.0] * 6, "must have 7 values"),
        ([1.0, 1.0, 1.0, 1.2, 1.0, 1.0, 1.0], r"\[3\] \(1000 Hz\) is the reference"),
        ([1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 1.0], r"band_decay_ratios\[5\] \(4000 Hz\) = 9.0"),
        ([1.0, 1.0, 1.0, 1.0, "x", 1.0, 1.0], "must be a number"),
    ],
)
def test_synthetic_reverb_ratios_validated(ratios, match):
    d = full_params().to_dict()
    d["vocal"]["reverb"]["type"] = "synthetic"
    d["vocal"]["reverb"]["band_decay_ratios"] = ratios
    with pytest.raises(ParamsError, match=match):
        MixParams.from_dict(d)


def test_synthetic_reverb_round_trip():
    d = full_params().to_dict()
    d["vocal"]["reverb"].update(type="synthetic",
                                band_decay_ratios=[1.4, 1.2, 1.1, 1, 0.9, 0.7, 0.5])
    p = MixParams.from_dict(d)
    assert MixParams.from_json(p.to_json()) == p
    assert p.vocal.reverb.band_decay_ratios == (1.4, 1.2, 1.1, 1.0, 0.9, 0.7, 0.5)


def test_with_targets():
    p = full_params().with_targets(vocal_to_mix_lu=-2.0, vocal_lra_lu=None)
    assert p.targets.vocal_to_mix_lu == -2.0 and p.targets.vocal_lra_lu == 10.0
