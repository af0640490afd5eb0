"""The synthesised demo song: format, determinism, and whether it looks like a song.

The checks measure the audio the way a listener (or the mixer) would meet it: a sung line
with rests, harmonic and formant-shaped, in the song's key and register; a backing whose
pulse is the requested tempo, with a bass line, the chord progression and stereo width;
and the levels of both parts. Tempo is estimated here from an onset-strength
autocorrelation in numpy (librosa's beat tracker JIT-compiles for ~15 s on first use).
"""

from __future__ import annotations

import time

import numpy as np
import pyebur128
import pyloudnorm
import pytest

from vocalmix.synth import synthesize_song

SR = 22050
A_MAJOR = {9, 11, 1, 2, 4, 6, 8}  # pitch classes (C = 0) of A B C# D E F# G#
CHORDS = ({9, 1, 4}, {4, 8, 11}, {6, 9, 1}, {2, 6, 9})  # I V vi IV in A major
ROOTS = (9, 4, 6, 2)  # A E F# D


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, np.ndarray]:
    return synthesize_song(sample_rate=SR, duration_s=12.0, seed=0, tempo_bpm=100.0)


def _window_db(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """Energy (dB) of ``win``-sample windows every ``hop`` samples."""
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, x.size - win + 1, hop)
    return 10 * np.log10((c[starts + win] - c[starts]) / win + 1e-20)


def _f0(frame: np.ndarray, sr: int, lo_hz: float = 100.0, hi_hz: float = 1000.0) -> float:
    """Fundamental (Hz) of a frame: the first autocorrelation peak within 10% of the best."""
    x = (frame - frame.mean()) * np.hanning(frame.size)
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * x.size)) ** 2)[: x.size]
    lags = np.arange(int(sr / hi_hz), int(sr / lo_hz) + 1)
    r = ac[lags]
    peaks = (r[1:-1] > r[:-2]) & (r[1:-1] >= r[2:]) & (r[1:-1] > 0.9 * r.max())
    i = lags[1 + np.flatnonzero(peaks)[0]]
    a, b, c = ac[i - 1], ac[i], ac[i + 1]
    return sr / (i + 0.5 * (a - c) / (a - 2 * b + c))


def _onset_envelope(x: np.ndarray, sr: int, hop: int = 256) -> tuple[np.ndarray, float]:
    """Spectral-flux onset strength of a mono signal (log energies in 32 log-spaced bands,
    40 Hz-8 kHz, as a mel spectrogram would weigh them) and its frame rate (Hz)."""
    n_fft = 1024
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    band = np.digitize(np.fft.rfftfreq(n_fft, 1 / sr), np.geomspace(40.0, 8000.0, 33)) - 1
    energy = np.stack([power[:, band == b].sum(axis=1) for b in range(32)], axis=1)
    logs = np.log1p(1000 * energy / energy.max())
    flux = np.maximum(np.diff(logs, axis=0), 0.0).sum(axis=1)
    return flux - flux.mean(), sr / hop


def _tempo_bpm(x: np.ndarray, sr: int, lo: float = 40.0, hi: float = 240.0) -> float:
    """Tempo (BPM): the onset-autocorrelation lag that is strongest once weighted by the
    usual log-normal tempo prior (centred at 120 BPM, one octave wide; Ellis 2007)."""
    env, fps = _onset_envelope(x, sr)
    ac = np.fft.irfft(np.abs(np.fft.rfft(env, 2 * env.size)) ** 2)[: env.size]
    lags = np.arange(int(60 * fps / hi), int(60 * fps / lo) + 1)
    prior = np.exp(-0.5 * np.log2(60 * fps / lags / 120.0) ** 2)
    i = lags[np.argmax(ac[lags] * prior)]
    a, b, c = ac[i - 1], ac[i], ac[i + 1]
    return 60 * fps / (i + 0.5 * (a - c) / (a - 2 * b + c))


@pytest.mark.parametrize(("sr", "seconds"), [(16000, 2.0), (22050, 3.3), (44100, 5.0),
                                             (48000, 2.5)])
def test_shape_dtype_levels(sr, seconds):
    vocal, backing = synthesize_song(sample_rate=sr, duration_s=seconds, seed=1)
    n = round(seconds * sr)
    assert vocal.shape == backing.shape == (n, 2)
    assert vocal.dtype == backing.dtype == np.float32
    assert np.isfinite(vocal).all() and np.isfinite(backing).all()
    assert np.array_equal(vocal[:, 0], vocal[:, 1])  # centre-panned mono line
    assert 20 * np.log10(np.abs(vocal).max()) == pytest.approx(-6.0, abs=0.05)
    assert 20 * np.log10(np.abs(backing).max()) == pytest.approx(-3.0, abs=0.05)


def test_deterministic_per_seed():
    a = synthesize_song(sample_rate=16000, duration_s=6.0, seed=5, tempo_bpm=110)
    b = synthesize_song(sample_rate=16000, duration_s=6.0, seed=5, tempo_bpm=110)
    c = synthesize_song(sample_rate=16000, duration_s=6.0, seed=6, tempo_bpm=110)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_bad_arguments_raise():
    for kw in ({"duration_s": 0.0}, {"sample_rate": 4000}, {"tempo_bpm": 0.0},
               {"duration_s": float("nan")}):
        with pytest.raises(ValueError):
            synthesize_song(**kw)


def test_fast_enough():
    synthesize_song(sample_rate=44100, duration_s=2.0)  # warm up
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        synthesize_song(sample_rate=44100, duration_s=12.0)
        best = min(best, time.perf_counter() - t0)
    assert best < 1.0, f"12 s at 44.1 kHz took {best:.2f} s"


def test_vocal_is_phrased_with_rests(song):
    v = song[0][:, 0]
    db = _window_db(v, int(0.4 * SR), int(0.05 * SR))  # 400 ms windows, 50 ms apart
    assert db.min() < db.max() - 30  # rests between phrases are (near) silent
    quiet = db < db.max() - 20
    gaps = np.count_nonzero(np.diff(quiet.astype(int)) == 1) + int(quiet[0])
    assert gaps >= 2  # more than one rest in 12 s: phrases, not a drone
    frames = _window_db(v, int(0.05 * SR), int(0.05 * SR))
    voiced = np.mean(frames > frames.max() - 30)
    assert 0.5 < voiced < 0.95  # but mostly singing


def test_vocal_is_a_harmonic_line_in_key_and_register(song):
    v = song[0][:, 0]
    win = 1024
    frames = np.lib.stride_tricks.sliding_window_view(v, win)[:: win // 2]
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = frames[level > level.max() - 20]
    assert len(loud) > 100
    f0 = np.array([_f0(f, SR) for f in loud])
    assert np.mean((f0 > 190) & (f0 < 520)) > 0.99  # A3-B4 with vibrato: 220-494 Hz
    midi = 69 + 12 * np.log2(f0 / 440.0)
    nearest = np.round(midi)
    in_key = (np.abs(midi - nearest) < 0.5) & np.isin(nearest.astype(int) % 12, list(A_MAJOR))
    assert np.mean(in_key) > 0.95  # (the rest straddle two notes); vibrato is +/-30-45 cents
    assert len(np.unique(nearest)) >= 4  # a melody, not one note

    # harmonic: power on the partials of f0 far above the power between them
    spec = np.abs(np.fft.rfft(loud * np.hanning(win), 4 * win, axis=1)) ** 2
    bin_hz = SR / (4 * win)
    k = np.arange(1, 9)
    on = spec[np.arange(len(loud))[:, None], np.round(np.outer(f0, k) / bin_hz).astype(int)]
    off = spec[np.arange(len(loud))[:, None],
               np.round(np.outer(f0, k + 0.5) / bin_hz).astype(int)]
    hnr_db = 10 * np.log10(on.sum(axis=1) / off.sum(axis=1))
    assert np.median(hnr_db) > 25


def test_vocal_has_vowel_formants(song):
    """Most energy near the fundamentals and F1, formant energy at 2-4 kHz, little above
    8 kHz, and an upper spectrum that changes from note to note (vowels)."""
    v = song[0][:, 0].astype(np.float64)
    win = 2048
    frames = np.lib.stride_tricks.sliding_window_view(v, win)[:: win // 2]
    spec = np.abs(np.fft.rfft(frames * np.hanning(win), axis=1)) ** 2
    f = np.fft.rfftfreq(win, 1 / SR)
    level = 10 * np.log10(spec.sum(axis=1) + 1e-20)
    spec = spec[level > level.max() - 20]
    ltas = spec.mean(axis=0)

    def band_db(p, lo, hi):
        return 10 * np.log10(p[..., (f >= lo) & (f < hi)].sum(axis=-1) + 1e-30)

    assert 150 <= f[np.argmax(ltas)] <= 1000
    low, f2f3 = band_db(ltas, 150, 1000), band_db(ltas, 2000, 4000)
    assert low - 30 < f2f3 < low  # formants, not a bare tone nor white noise
    assert band_db(ltas, 8000, 11025) < low - 30  # band-limited voice, a breath of noise
    tilt = band_db(spec, 1500, 3500) - band_db(spec, 150, 1000)  # per frame, dB
    assert np.percentile(tilt, 90) - np.percentile(tilt, 10) > 8  # different vowels


def test_loudness_range_and_balance(song):
    vocal, backing = song
    meter = pyloudnorm.Meter(SR)
    lv = meter.integrated_loudness(vocal.astype(np.float64))
    lb = meter.integrated_loudness(backing.astype(np.float64))
    assert -15 < lv - lb < 5  # a raw vocal stem against its backing
    for seconds, seed in ((12.0, 0), (40.0, 3)):
        v, b = synthesize_song(sample_rate=SR, duration_s=seconds, seed=seed)
        lra = []
        for x in (v, b):
            state = pyebur128.R128State(2, SR, pyebur128.MeasurementMode.MODE_LRA)
            state.add_frames(np.ascontiguousarray(x).ravel(), x.shape[0])
            lra.append(pyebur128.get_loudness_range(state))
        assert 5 < lra[0] < 15, (seconds, lra)  # phrases louder and softer, as sung
        assert lra[1] < 4  # a steady backing


@pytest.mark.parametrize("bpm", [70.0, 100.0, 128.0, 150.0])
def test_backing_tempo_and_grid(bpm):
    _, backing = synthesize_song(sample_rate=SR, duration_s=15.0, seed=2, tempo_bpm=bpm)
    mono = backing.mean(axis=1).astype(np.float64)
    assert _tempo_bpm(mono, SR) == pytest.approx(bpm, rel=0.04)
    # the onsets sit on the beat grid: onset strength at the beats beats the half-way points
    env, fps = _onset_envelope(mono, SR)
    def strength(times_s: np.ndarray) -> float:
        idx = np.round(times_s * fps).astype(int)
        return float(np.median([env[max(0, i - 1) : i + 3].max() for i in idx]))

    beats = np.arange(0.0, 14.0, 60.0 / bpm)
    assert strength(beats) > 2 * strength(beats + 60.0 / bpm / 4)  # vs the sixteenths


def test_backing_has_chords_bass_and_width(song):
    _, backing = song
    bar = 4 * 60.0 / 100.0
    mid = backing.mean(axis=1).astype(np.float64)
    for i in range(4):  # one chord per bar: I V vi IV
        seg = mid[int((i * bar + 0.3) * SR) : int((i + 1) * bar * SR)]
        p = np.abs(np.fft.rfft(seg * np.hanning(seg.size))) ** 2
        f = np.fft.rfftfreq(seg.size, 1 / SR)
        tonal = (f > 180) & (f < 1100)
        pc = np.round(12 * np.log2(f[tonal] / 440.0) + 69).astype(int) % 12
        chroma = np.bincount(pc, weights=p[tonal], minlength=12)
        assert set(np.argsort(chroma)[-3:]) == CHORDS[i], i
        low = (f >= 65) & (f <= 120)  # the bass plays the chord's root (above the kick)
        assert round(12 * np.log2(f[low][np.argmax(p[low])] / 440.0) + 69) % 12 == ROOTS[i]
    side, m = backing[:, 0] - backing[:, 1], backing[:, 0] + backing[:, 1]
    width_db = 10 * np.log10(np.sum(side.astype(np.float64) ** 2) / np.sum(m.astype(
        np.float64) ** 2))
    assert -30 < width_db < -6  # stereo, but mostly centred
    # hi-hats panned right: high band on the off-beat eighths, where only the hats play
    offbeats = (np.arange(1, 19) + 0.5) * 60.0 / 100.0
    hf = np.zeros(2)
    for t in offbeats:
        seg = backing[int(t * SR) : int((t + 0.06) * SR)].astype(np.float64)
        p = np.abs(np.fft.rfft(seg, axis=0)) ** 2
        hf += p[np.fft.rfftfreq(seg.shape[0], 1 / SR) > 6000].sum(axis=0)
    assert hf[1] > 2 * hf[0]
