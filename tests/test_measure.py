"""Measurement against the standards' own figures and independent implementations."""

from __future__ import annotations

import numpy as np
import pyloudnorm as pyln
import pytest

from vocalmix.core import measure as m
from vocalmix.core.audio import read_audio

from conftest import find_stem, require_data, sine, stem_songs

SR = 48000


def ebu3342_signal(segments: list[tuple[float, float]], sr: int = SR) -> np.ndarray:
    """EBU Tech 3342 test signals: 1 kHz stereo sine segments (level dBFS, seconds)."""
    return np.concatenate([sine(1000.0, db, dur, sr) for db, dur in segments])


# EBU Tech 3342 (2016) Table 1, cases 1-4: expected LRA 10, 5, 20, 15 LU (+-1 LU)
EBU3342_CASES = [
    ([(-20, 20), (-30, 20)], 10.0),
    ([(-20, 20), (-15, 20)], 5.0),
    ([(-40, 20), (-20, 20)], 20.0),
    ([(-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),
]


@pytest.mark.parametrize("segments,expected", EBU3342_CASES)
def test_ebu3342_lra(segments, expected):
    x = ebu3342_signal(segments)
    assert m.loudness_range(x, SR) == pytest.approx(expected, abs=0.1)
    # independent implementations agree too
    assert m.libebur128_loudness_range(x, SR) == pytest.approx(expected, abs=0.1)
    assert pyln.Meter(SR).loudness_range(x.astype(np.float64)) == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("sr", [44100, 48000])
def test_bs1770_closed_form_sine(sr):
    """A 997 Hz sine at -23 dBFS peak in both channels reads -23 + 3.01 - 3.01 - 0.691 + K.

    Closed form: each channel has mean square A^2/2; sum over 2 channels = A^2; the
    K-weighting gain at 997 Hz is ~+0.691 dB by design of the -0.691 offset, so a 1 kHz
    stereo sine at amplitude A reads 20 log10(A) LUFS within 0.05 LU (EBU Tech 3341
    case: -23 dBFS 1 kHz stereo sine reads -23.0 LUFS).
    """
    x = sine(997.0, -23.0, 20.0, sr)
    assert m.integrated_loudness(x, sr) == pytest.approx(-23.0, abs=0.05)
    assert m.fast_integrated_loudness(x, sr) == pytest.approx(-23.0, abs=0.05)
    assert pyln.Meter(sr).integrated_loudness(x.astype(np.float64)) == pytest.approx(
        -23.0, abs=0.05
    )


def test_k_weighting_matches_bs1770_table_at_48k():
    """At 48 kHz the coefficients are those printed in BS.1770-4 Tables 1 and 2."""
    sos = m.k_weighting_sos(48000)
    np.testing.assert_allclose(
        sos[0], [1.53512485958697, -2.69169618940638, 1.19839281085285,
                 1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(
        sos[1], [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


def test_gating_closed_form():
    """Absolute gate: a part at -100 dBFS does not count (the few 400 ms blocks that
    straddle the step pull the result down by ~0.07 LU, hence the 0.1 LU tolerance)."""
    loud = sine(997.0, -20.0, 10.0, SR)
    quiet = sine(997.0, -100.0, 10.0, SR)
    x = np.concatenate([loud, quiet])
    assert m.integrated_loudness(x, SR) == pytest.approx(-20.0, abs=0.1)
    ref = m.libebur128_integrated_loudness(x, SR)
    assert m.integrated_loudness(x, SR) == pytest.approx(ref, abs=1e-5)
    assert m.fast_integrated_loudness(x, SR) == pytest.approx(ref, abs=1e-5)


def test_mono_is_measured_as_stereo():
    mono = sine(997.0, -20.0, 5.0, SR, channels=1)[:, 0]
    stereo = sine(997.0, -20.0, 5.0, SR)
    assert m.integrated_loudness(mono, SR) == pytest.approx(m.integrated_loudness(stereo, SR))


def test_libebur128_fed_in_blocks_gives_the_one_call_figures(rng):
    """libebur128 filters and gates sample by sample: the loudness and range of a signal
    handed over a block at a time (and in Fortran order) are those of one call."""
    import pyebur128

    sr = 44100
    n = 3 * m._R128_BLOCK + 999
    x = (rng.standard_normal((n, 2)) * np.linspace(0.001, 0.3, n)[:, None]).astype(np.float32)
    for mode, get, ours in ((pyebur128.MeasurementMode.MODE_I, pyebur128.get_loudness_global,
                             m.libebur128_integrated_loudness),
                            (pyebur128.MeasurementMode.MODE_LRA, pyebur128.get_loudness_range,
                             m.libebur128_loudness_range)):
        st = pyebur128.R128State(2, sr, mode)
        st.add_frames(np.ascontiguousarray(x).ravel(), n)
        assert ours(x, sr) == get(st)
        assert ours(np.asfortranarray(x), sr) == get(st)


def test_true_peak_intersample():
    """A sine at fs/4 sampled at 45 degrees reads 3.01 dB above its sample peak."""
    sr = 48000
    n = np.arange(sr)
    x = np.sin(2 * np.pi * (sr / 4) * n / sr + np.pi / 4).astype(np.float64) * 0.5
    fade = np.ones(sr)
    ramp = np.sin(np.linspace(0, np.pi / 2, 480)) ** 2  # 10 ms fades: no edge ringing
    fade[:480], fade[-480:] = ramp, ramp[::-1]
    x = np.stack([x * fade, x * fade], 1)
    sample_peak = 20 * np.log10(np.abs(x).max())
    tp = m.true_peak_dbtp(x, sr)
    assert tp - sample_peak == pytest.approx(3.01, abs=0.1)


def test_true_peak_matches_libebur128(rng):
    import pyebur128

    sr = 44100
    x = (rng.standard_normal((sr * 5, 2)) * 0.1).astype(np.float32)
    x[sr, 0] = 0.9
    x[sr + 1, 0] = -0.9  # an inter-sample overshoot
    st = pyebur128.R128State(2, sr, pyebur128.MeasurementMode.MODE_TRUE_PEAK)
    st.add_frames(np.ascontiguousarray(x).ravel(), x.shape[0])
    ref = 20 * np.log10(max(pyebur128.get_true_peak(st, 0), pyebur128.get_true_peak(st, 1)))
    assert m.true_peak_dbtp(x, sr) == pytest.approx(ref, abs=0.15)
    from scipy.signal import resample_poly

    x16 = max(np.abs(resample_poly(x[:, c].astype(np.float64), 16, 1)).max() for c in range(2))
    assert m.true_peak_dbtp(x, sr) == pytest.approx(20 * np.log10(x16), abs=0.2)
    # the shortcut equals full oversampling
    from scipy.signal import upfirdn

    h = m.true_peak_filter()
    full = max(np.abs(upfirdn(h, x[:, c].astype(np.float64), 4)).max() for c in range(2))
    assert m.true_peak_dbtp(x, sr) == pytest.approx(20 * np.log10(full), abs=1e-5)


@pytest.mark.parametrize("channels", [1, 2])
def test_true_peak_on_a_sample_equals_full_oversampling(channels):
    """A slow tone whose largest 4x-oversampled value is a sample's own (phase 0, read
    from the sample peak rather than interpolated), beside quieter fast tones whose
    values between the samples are interpolated: the whole-signal figure and the
    meter's, fed in uneven blocks, equal a full oversampling (to float32 rounding) and
    each other (to the bit)."""
    from scipy.signal import upfirdn

    sr = 44100
    t = np.arange(3 * sr)
    x = np.zeros((t.size, channels), np.float32)
    x[:, 0] = 0.8 * np.cos(2 * np.pi * (t - sr) / 4000.0) * np.exp(-(((t - sr) / 3000.0) ** 2))
    late = t >= 2 * sr
    x[late, -1] += 0.3 * np.sin(2 * np.pi * 11025.0 * t[late] / sr + 0.7)
    h = m.true_peak_filter()
    full = max(np.abs(upfirdn(h, x[:, c].astype(np.float64), 4)).max()
               for c in range(channels))
    whole = m.true_peak_dbtp(x, sr)
    assert whole == pytest.approx(20 * np.log10(full), abs=1e-5)
    assert whole == pytest.approx(20 * np.log10(0.8 * h[40]), abs=1e-5)  # on the sample
    meter = m.TruePeakMeter()
    for a, b in zip([0, 1000, 1033, 70000], [1000, 1033, 70000, t.size], strict=True):
        meter.add(x[a:b])
    assert meter.dbtp() == whole


def test_true_peak_does_not_depend_on_the_blocks_or_batches(rng):
    """BLAS's float32 product of a window moves in its last bit with the window's place
    in its batch; the windows near the largest value are computed again in float64, so
    the whole-signal figure and the meter's, for any blocks, are one figure: the float64
    oversampling's (a clipped signal, with many windows near its peak, and noise)."""
    from scipy.signal import upfirdn

    sr = 44100
    h = m.true_peak_filter()
    for x in (np.clip(rng.standard_normal((200_000, 2)) * 0.8, -0.5, 0.5).astype(np.float32),
              (rng.standard_normal((150_001, 2)) * 0.2).astype(np.float32)):
        full = 20 * np.log10(max(np.abs(upfirdn(h, x[:, c].astype(np.float64), 4)).max()
                                 for c in range(2)))
        whole = m.true_peak_dbtp(x, sr)
        assert whole == pytest.approx(full, abs=1e-9)
        for block in (4096, 33_333, 100_000):
            meter = m.TruePeakMeter()
            for a in range(0, len(x), block):
                meter.add(x[a : a + block])
            assert meter.dbtp() == whole


def test_short_term_loudness_of_steady_sine():
    x = sine(997.0, -18.0, 10.0, SR)
    st = m.short_term_loudness(x, SR)
    assert st.shape[0] == 100 - 30 + 1  # 10 Hz, first value after 3 s
    np.testing.assert_allclose(st, -18.0, atol=0.05)


def test_numpy_implementation_matches_libebur128_on_real_vocals():
    songs = stem_songs()
    if not songs:
        require_data("stems")
    for song in songs:
        a = read_audio(find_stem(song, "vocals"))
        # one K-weighting in float64 for every figure: libebur128's loudness within 1e-5 LU
        ref = m.libebur128_integrated_loudness(a.samples, a.sample_rate)
        assert m.integrated_loudness(a.samples, a.sample_rate) == pytest.approx(ref, abs=1e-5)
        pyl = pyln.Meter(a.sample_rate).integrated_loudness(a.samples.astype(np.float64))
        assert pyl == pytest.approx(ref, abs=0.1)
        # LRA: libebur128 takes one short-term value per second, we take ten. Its result
        # depends on where the 1 s grid falls; delaying the signal by k x 100 ms of silence
        # (gated out) walks the grid over all 10 phases, and our 10 Hz figure, which
        # uses all of them, must lie within the spread of the 10 phases.
        lra = m.loudness_range(a.samples, a.sample_rate)
        seg = a.sample_rate // 10
        phases = [
            m.libebur128_loudness_range(
                np.concatenate([np.zeros((k * seg, 2), np.float32), a.samples]), a.sample_rate
            )
            for k in range(10)
        ]
        assert min(phases) - 0.1 <= lra <= max(phases) + 0.1


def test_block_stats_linearity(rng):
    """Segment energies of g*v + b follow from VV, BB, VB exactly."""
    sr = 22050
    v = (rng.standard_normal((sr * 4, 2)) * 0.1).astype(np.float64)
    b = (rng.standard_normal((sr * 4, 2)) * 0.05).astype(np.float64)
    vv, bb, vb = m.BlockStats.cross(m.k_weight(v, sr), m.k_weight(b, sr), sr)
    g = 0.7
    direct = m.BlockStats.of(g * v + b, sr).energy
    np.testing.assert_allclose(g * g * vv + 2 * g * vb + bb, direct, rtol=1e-9)


def test_k_weighted_cross_in_blocks_on_two_threads_is_the_whole_signal_one(rng):
    """The gain resolver's sums, made a block at a time with the backing's filter on a
    helper thread, equal the sums of the whole K-weighted signals (segments whole in
    every block, so to rounding of the block-wise segment sums only)."""
    sr = 44100
    n = sr * 40 + 123  # several blocks, the last one short
    dry = (rng.standard_normal((n, 2)) * 0.1).astype(np.float32)
    wet = (rng.standard_normal((n, 2)) * 0.02).astype(np.float32)
    back = (rng.standard_normal((n, 2)) * 0.2).astype(np.float32)
    vv, bb, vb = m.k_weighted_cross((dry, wet), back, sr)
    ref = m.BlockStats.cross(m.k_weight(dry + wet, sr), m.k_weight(back, sr), sr)
    for got, want in zip((vv, bb, vb), ref, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12)

