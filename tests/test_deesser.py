"""The split-band de-esser and the sibilance measurement that sets it, on real vocals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from vocalmix.core import deesser as D
from vocalmix.core.audio import read_audio
from vocalmix.core.dsp import butterworth2_sos, max_filter_hz

from conftest import require_data


def band_par_db(x: np.ndarray, sr: int) -> float:
    """Peak-to-average of the 5-10 kHz band: loudest 10 ms power over the mean, dB."""
    sos = butter(2, [5000, 10000], "bandpass", fs=sr, output="sos")
    p = np.mean(sosfilt(sos, x, axis=0) ** 2, axis=1)
    w = int(0.01 * sr)
    return float(10 * np.log10(np.convolve(p, np.ones(w) / w, "valid").max() / p.mean()))


def vocal(name: str):
    a = read_audio(require_data("dry_vocals", name))
    return a.samples, a.sample_rate


def test_trailing_max_is_causal_and_exactly_hold_long():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    for hold in (1, 2, 7, 64):
        out, _ = D._trailing_max(np.zeros(0), x, hold)
        naive = np.array([max(0.0, *x[max(0, n - hold + 1): n + 1]) if n < hold - 1
                          else x[n - hold + 1: n + 1].max() for n in range(len(x))])
        assert np.array_equal(out, naive), hold
    # zeros after a history of zeros are zeros, and the history stays zeros; after a
    # history holding a value, that value lasts into the zeros for the rest of the hold
    for hold in (1, 7, 64):
        for past in (np.zeros(0), np.zeros(hold - 1), np.zeros(hold + 3)):
            out, kept = D._trailing_max(past, np.zeros(100), hold)
            assert np.array_equal(out, np.zeros(100)) and np.array_equal(kept, np.zeros(hold - 1))
    past = np.zeros(6)
    past[-2] = 2.5
    out, kept = D._trailing_max(past, np.zeros(10), 7)
    assert np.array_equal(out, [2.5] * 5 + [0.0] * 5) and np.array_equal(kept, np.zeros(6))


def test_sibilant_take_is_de_essed_and_a_stream_gives_the_same_samples():
    x, sr = vocal("vocadito_1_CC-BY4.wav")  # a dry solo take: sibilants reach the vowels
    settings, sib = D.auto_settings(x, sr)
    assert settings is not None and sib.index_db > -2.0
    y = D.deess(x, sr, settings)
    before, after = band_par_db(x, sr), band_par_db(y, sr)
    assert before - after > 1.0, (before, after)
    assert D.sibilance(x, sr).band_peak_dbfs - D.sibilance(y, sr).band_peak_dbfs > 3.0
    # the voice itself is untouched: whole-band level within 0.2 dB
    assert abs(10 * np.log10(np.mean(y**2) / np.mean(x**2))) < 0.2
    part = x[: 2 * sr]  # 2 s in odd blocks, as a live stream would feed it
    whole = D.deess(part, sr, settings)
    stage = D.DeEsser(settings, sr)
    blocks = [stage.process(part[i:i + 37]) for i in range(0, len(part), 37)]
    assert np.max(np.abs(np.concatenate(blocks) - whole)) < 1e-6


def test_a_vowel_rich_voice_is_left_alone():
    x, sr = vocal("openair_anechoic_operatic_voice_CC-BY-SA3.wav")
    settings, sib = D.auto_settings(x, sr)
    assert settings is None and sib.index_db < -8.0


def test_a_narrow_band_take_has_no_sibilant_band():
    rng = np.random.default_rng(1)
    x = rng.normal(scale=0.1, size=(8000, 2)).astype(np.float32)
    settings, sib = D.auto_settings(x, 8000)
    assert settings is None and sib.index_db == -np.inf


@pytest.mark.parametrize("freq", [3000.0, 6000.0, 9000.0])
def test_the_crossover_sums_to_flat_magnitude(freq):
    from scipy.signal import sosfreqz

    lo, hi = D.crossover_sos(freq, 44100)
    w, h_lo = sosfreqz(lo, worN=2048, fs=44100)
    _, h_hi = sosfreqz(hi, worN=2048, fs=44100)
    assert np.max(np.abs(20 * np.log10(np.abs(h_lo + h_hi)))) < 0.01


@pytest.mark.parametrize("layout", ["stereo", "mono as stereo", "mono"])
def test_the_render_stage_runs_in_blocks_and_gives_the_one_call_samples(layout):
    """The render's de-esser stage (blocks of ``FILTER_BLOCK`` samples, state carried, the
    detector a block ahead on a helper thread) and the sibilance measurement (the band's
    and the whole vocal's level tracks) give the same samples and figures as one call over
    the whole signal."""
    from vocalmix.core.dsp import FILTER_BLOCK
    from vocalmix.core.params import DeEsser as DeEsserParams
    from vocalmix.core.render import deesser_stage

    sr = 44100
    rng = np.random.default_rng(3)
    n = 2 * FILTER_BLOCK + 1234
    x = (rng.standard_normal((n, 2)) * np.linspace(0.01, 0.5, n)[:, None]).astype(np.float32)
    if layout != "stereo":
        x = np.repeat(x[:, :1], 2 if layout == "mono as stereo" else 1, axis=1)
    p = DeEsserParams(enabled=True, threshold_db=-30.0, freq_hz=5000.0, depth_db=8.0)
    want = D.deess(x, sr, D.DeEsserSettings(p.threshold_db, p.freq_hz, p.depth_db,
                                            p.release_ms))
    got = deesser_stage(x, sr, p)
    assert got.shape == x.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))
    # the sibilance figures: the band's level track (made on a second thread) and the
    # whole vocal's, over the active samples
    lo, hi = D.SIBILANT_BAND_HZ
    sos = butterworth2_sos((lo, min(hi, max_filter_hz(sr))), "bandpass", sr)
    full = 10.0 * np.log10(D._short_term_power_ms(x, sr))
    band = 10.0 * np.log10(D._short_term_power_ms(x, sr, sos))
    active = full > full.max() - D.ACTIVE_RANGE_DB
    s = D.sibilance(x, sr)
    # read on the power tracks and converted once: the percentiles of the dB tracks
    assert s.band_peak_dbfs == pytest.approx(float(np.percentile(band[active], 99.5)),
                                             abs=1e-4)
    assert s.body_dbfs == pytest.approx(float(np.median(full[active])), abs=1e-4)


class _PlainDeEsser(D.DeEsser):
    """The de-esser with its level, hold and gain computed at every sample: the
    detector's ``10 log10`` of each power and trailing maximum of every block, and the
    gain's ``10^(-r/20)`` of each reduction."""

    def _detect(self, xd):
        from vocalmix.core.dsp import channel_mean, sosfilt_block
        from vocalmix.core.kernels import lfilter

        s = self.settings
        band, self._band_zi = sosfilt_block(self._hi_sos, xd, self._band_zi)
        a = self._a
        power, self._power_zi = lfilter([1.0 - a], [1.0, -a], channel_mean(band * band),
                                        zi=self._power_zi)
        level = 10.0 * np.log10(np.maximum(power, D._MIN_POWER))
        wanted = np.minimum(s.depth_db, np.maximum(0.0, level - s.threshold_db))
        held, self._history = D._trailing_max(self._history, wanted, self._hold)
        return held, band

    def _apply(self, xd, held, band):
        from vocalmix.core.dsp import sosfilt_block
        from vocalmix.core.kernels import lfilter

        low, self._low_zi = sosfilt_block(self._lo_sos, xd, self._low_zi)
        r = self._r
        red, self._gain_zi = lfilter([1.0 - r], [1.0, -r], held, zi=self._gain_zi)
        g = 10.0 ** (-red / 20.0)
        return (low + g[:, None] * band).astype(np.float32)


@pytest.mark.parametrize("quantile", [0.5, 0.9, 0.99, 0.999])
def test_the_level_and_the_gain_skipped_where_they_cannot_act_give_the_same_samples(
        quantile):
    """The detector takes the level only of powers near or over the threshold (and no
    hold of a block that wants nothing after a hold of nothing), and the gain the power
    ``10^(-r/20)`` only of reductions that have not decayed to nothing: the output is the
    one of computing them at every sample, to the bit, in blocks of any size and with the
    threshold at any point of the take's power."""
    from vocalmix.core.dsp import channel_mean, sosfilt_block

    sr = 44100
    rng = np.random.default_rng(11)
    n = 4 * sr
    hiss = rng.standard_normal((n, 2)) * np.repeat(rng.uniform(0, 0.3, n // 2205), 2205)[:, None]
    # sibilant bursts between silences long enough for the gain to settle back to 1
    hiss[sr : 2 * sr] = 0.0
    hiss[3 * sr + 100 : 3 * sr + 200] *= 20.0
    x = hiss.astype(np.float32)
    probe = D.DeEsser(D.DeEsserSettings(-30.0, 6000.0, 6.0, 40.0), sr)
    band, _ = sosfilt_block(probe._hi_sos, x.astype(np.float64), probe._band_zi)
    power = channel_mean(band * band)
    threshold = float(10 * np.log10(np.quantile(power[power > 0], quantile)))
    for layout in ("stereo", "mono as stereo"):
        xs = x if layout == "stereo" else np.repeat(x[:, :1], 2, axis=1)
        settings = D.DeEsserSettings(threshold, 6000.0, 9.0, 25.0)
        want = _PlainDeEsser(settings, sr).process(xs)
        assert np.array_equal(D.DeEsser(settings, sr).process(xs).view(np.uint32),
                              want.view(np.uint32)), layout
        stage = D.DeEsser(settings, sr)
        got = np.concatenate([stage.process(xs[i : i + 4099]) for i in range(0, n, 4099)])
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), layout
    # the reductions the gain skips are those whose power is 1.0 in float64
    r = np.concatenate([np.linspace(0.0, D._unity_below_db(), 100_001), [5e-324]])
    r = r[r >= 0.0]
    assert np.all(10.0 ** (-r / 20.0) == 1.0)


@pytest.mark.parametrize(("sr", "n", "channels"), [(44100, 3 * 65536 + 1000, 2),
                                                   (48000, 200_000, 1), (16000, 12_345, 2),
                                                   (44100, 30, 2)])
def test_the_millisecond_readings_are_the_per_sample_tracks_values(sr, n, channels):
    """The power tracks read every millisecond hold the per-sample one-pole's values at
    each millisecond's last sample (and the signal's last), through the band's filter or
    not, across the blocks they are made in."""
    rng = np.random.default_rng(sr + n)
    x = (rng.standard_normal((n, channels)) * np.exp(rng.standard_normal((n, 1)))
         ).astype(np.float32)
    step = D._reading_step(sr)
    at = np.r_[np.arange(step - 1, n, step), n - 1][: -(-n // step)]
    sos = butterworth2_sos((5000.0, 7000.0), "bandpass", sr)
    for filt, y in ((None, x), (sos, sosfilt(sos, x.astype(np.float64), axis=0))):
        want = D.short_term_db(y, sr)[at]
        got = 10.0 * np.log10(D._short_term_power_ms(x, sr, filt))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_room_tone_is_not_read_as_the_vowels_level():
    """A take's room tone counted among its active frames pulled the vowels' median level
    down by 3 dB at the median (40 mixed stems, pink noise 30 LU under their loudest
    block after a 3 s lead-in; this take, 3.0 dB), and switched the de-esser on or off
    for 10 of the 40. Over a steady floor, a frame's level is its power over the floor's:
    the quiet singing the tone covers is lost (+1.0 dB here), not the tone counted."""
    x, sr = vocal("vocadito_1_CC-BY4.wav")
    x = np.concatenate([np.zeros((3 * sr, x.shape[1]), np.float32), x[: 15 * sr]])
    clean = D.sibilance(x, sr)
    clean_set, _s = D.auto_settings(x, sr)
    loudest = max(float(np.mean(x[i: i + int(0.4 * sr)] ** 2))
                  for i in range(0, len(x) - int(0.4 * sr), int(0.1 * sr)))
    tone = np.random.default_rng(7).standard_normal(x.shape).astype(np.float32)
    for under_db in (30.0, 25.0):  # white noise this far under the loudest 400 ms
        toned = x + tone * np.float32(np.sqrt(loudest * 10 ** (-under_db / 10)))
        got = D.sibilance(toned, sr)
        assert got.body_dbfs == pytest.approx(clean.body_dbfs, abs=1.5), under_db
        setting, _s = D.auto_settings(toned, sr)
        assert clean_set is not None and setting is not None
        assert setting.threshold_db == pytest.approx(clean_set.threshold_db, abs=1.5)
        assert setting.depth_db == pytest.approx(clean_set.depth_db, abs=1.5)
    # no floor (digital silence before the take): the frames as they were
    assert D._floor_power(D._short_term_power_ms(x, sr), sr) is None
