"""The controls a user steers a mix with: locks, amount, the de-esser and delay in the
chain, mix loudness, a reference mix, and a reason for every automatic choice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vocalmix.core.amount import effective_vocal
from vocalmix.core.measure import integrated_loudness, true_peak_dbtp, vocal_to_mix_lu
from vocalmix.core.params import Compressor, Delay, EqBand, MixParams, Reverb, VocalChain
from vocalmix.core.render import render
from vocalmix.pipeline import mix, moved_settings, render_params
from vocalmix.synth import synthesize_song

from conftest import data_root, require_data

SR = 44100


@pytest.fixture(scope="module")
def song():
    return synthesize_song(sample_rate=SR, duration_s=6.0, seed=7)


def stem_pair(name: str):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    import golden_renders

    folder = require_data("stems", name)
    return golden_renders.load_stem_song(folder)


def test_a_locked_gain_survives_a_target_re_resolve(song):
    v, b = song
    p, _, _ = mix(v, b, SR, method="baseline")
    edited = replace(p, vocal=replace(p.vocal, gain_db=p.vocal.gain_db + 2.0),
                     locks=("vocal.gain_db",))
    again, _, est = mix(v, b, SR, base=edited, vocal_lra_lu=2.0)
    assert again.vocal.gain_db == edited.vocal.gain_db  # kept, to the bit
    assert again.vocal.compressor != p.vocal.compressor  # the LRA target moved it
    moved = moved_settings(edited, again)
    assert any(m.startswith("vocal.compressor") for m in moved)
    assert not any(m.startswith("vocal.gain_db") for m in moved)
    assert any("vocal gain locked" in n for n in est.notes)
    # without the lock the gain is re-solved
    unlocked, _, _ = mix(v, b, SR, base=replace(edited, locks=()), vocal_lra_lu=2.0)
    assert unlocked.vocal.gain_db != edited.vocal.gain_db



def test_a_backing_turned_below_the_gate_re_resolves_and_its_ratio_is_null(song):
    """The backing at -60 dB (inside its range) is gated out of the loudness measure: the
    document's vocal-to-backing ratio is then null, and re-resolving that document for a
    new target works (it failed on an infinite ratio it could not store)."""
    v, b = song
    p, _, _ = mix(v, b, SR, method="baseline")
    quiet = replace(p, backing=replace(p.backing, gain_db=-60.0))
    again, _, est = mix(v, b, SR, base=quiet, vocal_lra_lu=8.0)
    assert again.achieved.vocal_to_backing_lu is None
    # the vocal, turned down to such a backing, crosses the absolute gate too: the ratio
    # jumps there and no gain reaches the target, which is said (its figure was the
    # vocal's loudness at 0 dB moved by the gain, as if no block crossed the gate)
    got = again.achieved.vocal_to_mix_lu
    assert got is not None and np.isfinite(got)
    assert abs(got - p.targets.vocal_to_mix_lu) <= 0.05 or any(
        n.startswith("warning: the vocal-to-mix target") for n in est.notes)
    assert MixParams.from_json(again.to_json()) == again
    twice, _, _ = mix(v, b, SR, base=again, vocal_lra_lu=6.0)  # and once more from it
    assert twice.achieved.vocal_to_backing_lu is None


def test_an_lra_target_given_replaces_the_momentary_range_target(song):
    v, b = song
    p, _, est = mix(v, b, SR, method="model")
    assert p.targets.vocal_momentary_range_lu is not None  # the model method's target
    assert any("is not used while it is set" in n for n in est.notes)
    again, _, est2 = mix(v, b, SR, base=p, vocal_lra_lu=3.0)
    assert again.targets.vocal_momentary_range_lu is None and again.targets.vocal_lra_lu == 3.0
    assert any("replaces the momentary-range target" in n for n in est2.notes)
    assert any("vocal LRA" in n and "target 3.0" in n for n in est2.notes)
    assert not any(r.path == "targets.vocal_momentary_range_lu" for r in again.reasons)


def test_a_lock_holds_against_a_preset_a_reference_an_lra_and_a_synced_delay(song):
    # locks were kept by the resolvers only: a reverb preset replaced a locked reverb, a
    # reference replaced locked EQ bands and level target, an LRA target given dropped a
    # locked momentary-range target, and render moved a locked tempo-synced delay
    from vocalmix.core.resolve import sync_derived
    from vocalmix.estimators.presets import presets

    v, b = song
    p, _, _ = mix(v, b, SR, method="model")
    locked = replace(p, locks=("vocal.reverb", "targets.reverb_decay_s"))
    name = sorted(presets())[-1]
    again, _, est = mix(v, b, SR, base=locked, reverb_preset=name)
    assert again.vocal.reverb == p.vocal.reverb
    assert again.targets.reverb_decay_s == p.targets.reverb_decay_s
    assert any("kept as locked instead: vocal.reverb, targets.reverb_decay_s" in n
               for n in est.notes)
    assert again.reason_for("vocal.reverb") == p.reason_for("vocal.reverb")
    unlocked, _, _ = mix(v, b, SR, base=p, reverb_preset=name)
    assert unlocked.vocal.reverb != p.vocal.reverb  # (what the lock held off)

    rv, rb = synthesize_song(sample_rate=SR, duration_s=6.0, seed=8)
    held = replace(p, locks=("vocal.eq_bands", "targets.vocal_to_mix_lu"))
    ref, _, est = mix(v, b, SR, base=held, reference=(rv * 1.5, rb * 0.7))
    assert ref.vocal.eq_bands == p.vocal.eq_bands
    assert ref.targets.vocal_to_mix_lu == p.targets.vocal_to_mix_lu
    assert any(n.startswith("kept as locked, not taken from the reference mix: "
                            "vocal.eq_bands, targets.vocal_to_mix_lu") for n in est.notes)

    assert p.targets.vocal_momentary_range_lu is not None
    ranged = replace(p, locks=("targets.vocal_momentary_range_lu",))
    lra, _, est = mix(v, b, SR, base=ranged, vocal_lra_lu=6.0)
    assert lra.targets.vocal_momentary_range_lu == p.targets.vocal_momentary_range_lu
    assert any("the momentary-range target is locked" in n for n in est.notes)

    synced = replace(p, vocal=replace(p.vocal, delay=Delay(
        enabled=True, note="1/4", tempo_bpm=100.0, time_ms=500.0)))
    assert sync_derived(synced, SR).vocal.delay.time_ms == 600.0  # (a beat at 100 BPM)
    kept = replace(synced, locks=("vocal.delay.time_ms",))
    assert sync_derived(kept, SR).vocal.delay.time_ms == 500.0


def full_chain() -> VocalChain:
    return VocalChain(
        eq_bands=(EqBand("peak", 3000.0, 4.0, 1.0), EqBand("high_shelf", 8000.0, -3.0, 0.7)),
        compressor=Compressor(threshold_db=-30.0, ratio=4.0, makeup_db=3.0),
        gain_db=-2.0,
        reverb=Reverb(type="synthetic", decay_s=1.2, wet_level_db=-12.0),
        delay=Delay(enabled=True, note="1/8", tempo_bpm=100.0, time_ms=300.0,
                    wet_level_db=-18.0))


def test_amount_zero_is_the_input_after_gain_one_is_the_mix_half_is_halfway(song):
    v, b = song
    p = MixParams(vocal=full_chain())
    r0 = render(v, b, SR, replace(p, amount=0.0))
    g = np.float32(10.0 ** (p.vocal.gain_db / 20.0))
    assert np.array_equal(r0.vocal, v * g)  # the vocal chain neutral: input times gain
    r1 = render(v, b, SR, replace(p, amount=1.0))
    assert np.array_equal(r1.mix, render(v, b, SR, p).mix)
    half = effective_vocal(p.vocal, 0.5)
    assert [e.gain_db for e in half.eq_bands] == [2.0, -1.5]
    assert half.compressor.makeup_db == pytest.approx(1.5)
    slope = 1 - 1 / half.compressor.ratio
    assert slope == pytest.approx(0.5 * (1 - 1 / 4.0))  # half the gain reduction
    assert half.reverb.wet_level_db == pytest.approx(-12.0 - 6.0206, abs=1e-3)
    assert half.delay.wet_level_db == pytest.approx(-18.0 - 6.0206, abs=1e-3)
    assert half.highpass.cutoff_frequency_hz == pytest.approx(
        20.0 * (p.vocal.highpass.cutoff_frequency_hz / 20.0) ** 0.5)


def test_the_amount_moves_the_level_target_from_the_rule_and_is_rendered_exactly(song):
    v, b = song
    p, r, _ = mix(v, b, SR, method="baseline", vocal_to_mix_lu=-7.0, amount=0.5)
    assert p.amount == 0.5
    assert p.achieved.vocal_to_mix_lu == pytest.approx(-5.0, abs=0.01)  # -3 + 0.5 * -4
    _, again = render_params(v, b, SR, p)
    assert np.array_equal(again.mix, r.mix)


def test_the_delay_is_tempo_synced_within_a_millisecond_and_re_renders_exactly(song):
    v, b = song
    base = MixParams(vocal=replace(full_chain(), delay=Delay(
        enabled=True, note="1/8.", tempo_bpm=97.0, time_ms=5.0, feedback=0.0,
        wet_level_db=-6.0, highcut_hz=20000.0)))
    p, r, _ = mix(v, b, SR, base=base)
    note_ms = 60000.0 / 97.0 * 0.75  # a dotted eighth
    assert abs(p.vocal.delay.time_ms - note_ms) < 1.0
    # the echo really is that late: an impulse through the send comes back at the note
    from vocalmix.core.delay import delay_wet

    x = np.zeros((SR, 2), np.float32)
    x[1000] = 1.0
    echo = delay_wet(x, SR, p.vocal.delay)
    lag_ms = (int(np.argmax(np.abs(echo[:, 0]))) - 1000) / SR * 1000.0
    assert abs(lag_ms - note_ms) < 1.0
    _, again = render_params(v, b, SR, p)
    assert np.array_equal(again.mix, r.mix)
    edited = replace(p, vocal=replace(p.vocal, delay=replace(p.vocal.delay, feedback=0.5)))
    assert not np.array_equal(render(v, b, SR, edited).mix, r.mix)


@pytest.mark.parametrize("name", ["Cristina Vane - So Easy", "Mu - Too Bright"])
def test_mix_loudness_lands_within_a_third_of_a_lu_under_the_ceiling(name):
    v, b, sr = stem_pair(name)
    p, r, _ = mix(v, b, sr, method="baseline", mix_lufs=-14.0)
    assert integrated_loudness(r.mix, sr) == pytest.approx(-14.0, abs=0.3)
    assert true_peak_dbtp(r.mix, sr) <= p.master.ceiling_dbtp + 1e-6
    assert p.achieved.mix_integrated_lufs == pytest.approx(-14.0, abs=0.3)


def test_a_reference_mix_sets_the_level_it_has():
    rv, rb, sr = stem_pair("The Easton Ellises - Falcon 69")
    v, b, sr2 = stem_pair("Mu - Too Bright")
    assert sr == sr2
    ref = vocal_to_mix_lu(rv, rb, sr, "singing")
    p, r, _ = mix(v, b, sr, method="baseline", reference=(rv, rb))
    got = vocal_to_mix_lu(r.vocal, r.backing, sr, "singing")  # on the rendered stems
    assert got == pytest.approx(ref, abs=0.3)
    assert p.provenance.method == "reference"
    assert p.reason_for("targets.vocal_to_mix_lu").source == "reference"
    assert all(e.source == "reference" for e in p.vocal.eq_bands)


AUTOMATIC = ("targets.vocal_to_mix_lu", "targets.vocal_lra_lu", "targets.reverb_decay_s",
             "vocal.highpass", "vocal.compressor", "vocal.gain_db", "vocal.reverb")


@pytest.mark.parametrize("method", ["baseline", "model"])
def test_every_automatic_choice_has_a_reason(song, method):
    v, b = song
    p, _, _ = mix(v, b, SR, method=method, mix_lufs=-16.0)
    paths = list(AUTOMATIC) + ["master.gain_db"]
    if p.vocal.eq_bands:
        paths.append("vocal.eq_bands")
    for extra in ("deesser", "delay"):
        if getattr(p.vocal, extra).enabled:
            paths.append(f"vocal.{extra}")
    missing = [q for q in paths if p.reason_for(q) is None]
    assert not missing, missing
    for r in p.reasons:
        assert r.text and r.source in ("rule", "model", "reference", "user", "preset",
                                       "resolver")
    assert MixParams.from_json(p.to_json()).reasons == p.reasons


@pytest.mark.slow  # several seconds: the slow run (.ci/run) keeps it
def test_the_real_stems_render_live_and_offline_with_every_new_stage():
    """De-esser, delay, master gain and amount in the live mixer equal the offline render."""
    from vocalmix.core.params import DeEsser
    from vocalmix.core.stream import LiveMixer

    if not (data_root() / "stems").exists():
        pytest.skip("real stems not found (set VOCALMIX_DATA)")
    v, b, sr = stem_pair("Mu - Too Bright")
    p = MixParams(vocal=replace(full_chain(), deesser=DeEsser(enabled=True, threshold_db=-40.0)),
                  amount=0.7)
    p = replace(p, master=replace(p.master, gain_db=4.0))
    off = render(v, b, sr, p).mix
    for bs in (37, 256):
        m = LiveMixer(p, sr, bs)
        out = np.concatenate([m.process(v[i:i + bs], b[i:i + bs]) for i in range(0, len(v), bs)])
        lat = m.latency_samples
        err = np.max(np.abs(out[lat:] - off[: len(off) - lat]))
        assert 20 * np.log10(err + 1e-30) < -90.0
