"""A synthesised short song: the embedded demo and test material.

The vocal is a sung-like line: sustained notes of a diatonic melody with rests between
phrases, a band-limited glottal-like harmonic source (partials falling at about
12 dB/octave) with vibrato (5.5 Hz, fading in), shaped by vowel formants (a spectral
envelope of resonance peaks applied to each partial), note envelopes, phrase dynamics
and a little breath noise. The backing has kick, snare and hi-hat on a grid at the given
tempo, a bass line on the chord roots and sustained chords (I-V-vi-IV) with some stereo
width. Everything is vectorised numpy and deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

# vowel formants (Hz) and bandwidths (Hz), after Peterson & Barney style averages
_VOWELS = {
    "a": ((800, 80), (1150, 90), (2900, 120), (3900, 130)),
    "e": ((400, 60), (1700, 80), (2600, 100), (3300, 120)),
    "i": ((300, 50), (2300, 100), (3000, 120), (3700, 130)),
    "o": ((450, 70), (800, 80), (2830, 100), (3500, 130)),
    "u": ((325, 50), (700, 60), (2530, 170), (3500, 180)),
}
_KEY_HZ = 220.0  # A3: melody in A major
_SCALE = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14])
_PROGRESSION = ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12))  # I V vi IV (semitones)


def _formant_gain(freqs: np.ndarray, vowel: str) -> np.ndarray:
    """Spectral envelope (linear amplitude) of a vowel at ``freqs`` (Hz)."""
    g = np.zeros_like(freqs)
    for i, (f, bw) in enumerate(_VOWELS[vowel]):
        g += (0.6**i) / (1.0 + ((freqs - f) / (bw / 2.0)) ** 2)
    return 0.05 + g


def _adsr(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    env = np.ones(n)
    a, r = min(n // 2, int(attack_s * sr)), min(n // 2, int(release_s * sr))
    if a:
        env[:a] = np.linspace(0.0, 1.0, a)
    if r:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _vocal(sr: int, n: int, beat_s: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    t_total = n / sr
    bar = 4 * beat_s
    t = 0.5 * beat_s
    phrase = 0
    while t < t_total - beat_s:
        phrase_gain = 10 ** (rng.uniform(-14.0, 0.0) / 20.0)  # phrases differ in level
        phrase_len = bar * 2 - beat_s
        end = min(t + phrase_len, t_total)
        while t < end - 0.25 * beat_s:
            dur = beat_s * rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])
            dur = min(dur, end - t)
            f0 = _KEY_HZ * 2 ** (_SCALE[rng.integers(0, len(_SCALE))] / 12.0)
            vowel = "aeiou"[rng.integers(0, 5)]
            i0, m = int(t * sr), int(dur * sr)
            m = min(m, n - i0)
            if m <= 16:
                break
            tt = np.arange(m) / sr
            vib_depth = 0.35 * np.clip(tt / 0.4, 0.0, 1.0)  # semitones, fading in
            f_inst = f0 * 2 ** (vib_depth * np.sin(2 * np.pi * 5.5 * tt) / 12.0)
            phase = 2 * np.pi * np.cumsum(f_inst) / sr
            n_harm = int(min(40, (0.45 * sr) // (f0 * 1.05)))
            k = np.arange(1, n_harm + 1)
            amps = _formant_gain(k * f0, vowel) / k  # -6 dB/oct source x formants
            amps *= 1.0 / (1.0 + (k * f0 / 3000.0) ** 1.0)  # extra roll-off above 3 kHz
            note = np.sin(phase[:, None] * k[None, :]) @ amps
            note *= _adsr(m, sr, 0.04, 0.08) * (0.85 + 0.15 * np.sin(np.pi * tt / dur))
            breath = rng.standard_normal(m) * 0.02 * _adsr(m, sr, 0.01, 0.05)
            out[i0 : i0 + m] += phrase_gain * (note / (np.abs(amps).sum() + 1e-9) + breath)
            t += dur
        t = end + beat_s * rng.choice([1.0, 2.0])  # a rest between phrases
        phrase += 1
    hp = butter(2, 90.0, "highpass", fs=sr, output="sos")
    return sosfilt(hp, out)


def _kick(sr: int) -> np.ndarray:
    tt = np.arange(int(0.35 * sr)) / sr
    f = 45 + 90 * np.exp(-tt / 0.03)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tt / 0.12)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    tt = np.arange(int(0.25 * sr)) / sr
    bp = butter(2, [1500, 6000], "bandpass", fs=sr, output="sos")
    noise = sosfilt(bp, rng.standard_normal(tt.size))
    tone = np.sin(2 * np.pi * 190 * tt) * np.exp(-tt / 0.05)
    return 0.6 * noise * np.exp(-tt / 0.06) + 0.4 * tone


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    tt = np.arange(int(0.06 * sr)) / sr
    hp = butter(2, min(7000.0, 0.4 * sr), "highpass", fs=sr, output="sos")
    return 0.5 * sosfilt(hp, rng.standard_normal(tt.size)) * np.exp(-tt / 0.015)


def _place(buf: np.ndarray, sound: np.ndarray, times_s: np.ndarray, sr: int, gain: float) -> None:
    for t0 in times_s:
        i0 = int(t0 * sr)
        m = min(sound.size, buf.size - i0)
        if m > 0:
            buf[i0 : i0 + m] += gain * sound[:m]


def _backing(sr: int, n: int, beat_s: float, rng: np.random.Generator) -> np.ndarray:
    t_total = n / sr
    beats = np.arange(0.0, t_total, beat_s)
    left, right = np.zeros(n), np.zeros(n)
    drums = np.zeros(n)
    _place(drums, _kick(sr), beats[::2], sr, 0.9)
    _place(drums, _snare(sr, rng), beats[1::2], sr, 0.5)
    hats = np.arange(0.0, t_total, beat_s / 2)
    hat = np.zeros(n)
    _place(hat, _hat(sr, rng), hats, sr, 0.25)
    left += drums + 0.7 * hat
    right += drums + 1.0 * hat
    bar = 4 * beat_s
    tt_all = np.arange(n) / sr
    for i, chord in enumerate(_PROGRESSION * int(np.ceil(t_total / bar / 4) + 1)):
        t0 = i * bar
        if t0 >= t_total:
            break
        i0, m = int(t0 * sr), min(int(bar * sr), n - int(t0 * sr))
        tt = tt_all[:m]
        root = _KEY_HZ / 4 * 2 ** (chord[0] / 12.0)  # bass two octaves below
        bass = np.zeros(m)
        for b in range(4):
            j0 = int(b * beat_s * sr)
            if j0 >= m:
                break
            seg = tt[: m - j0]
            bass[j0:] += np.tanh(2 * np.sin(2 * np.pi * root * seg)) * np.exp(-seg / 0.35)
        pad_l, pad_r = np.zeros(m), np.zeros(m)
        for j, semi in enumerate(chord):
            f = _KEY_HZ * 2 ** (semi / 12.0)
            det = 1.0 + 0.002 * (j - 1)
            tone = sum(np.sin(2 * np.pi * h * f * det * tt) / h**1.5 for h in range(1, 6))
            pad_l += tone * (0.8 + 0.2 * j / 2)
            pad_r += tone * (1.0 - 0.2 * j / 2)
        env = _adsr(m, sr, 0.2, 0.3)
        left[i0 : i0 + m] += 0.35 * bass + 0.07 * pad_l * env
        right[i0 : i0 + m] += 0.35 * bass + 0.07 * pad_r * env
    return np.stack([left, right], axis=1)


def synthesize_song(
    sample_rate: int = 44100,
    duration_s: float = 12.0,
    seed: int = 0,
    tempo_bpm: float = 100.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic demo song.

    Args:
        sample_rate: Hz.
        duration_s: length, s (2 to a few hundred).
        seed: random seed (melody, dynamics, noise).
        tempo_bpm: tempo of the backing, BPM.

    Returns:
        ``(vocal, backing)``, each float32 ``(round(duration_s * sample_rate), 2)``;
        vocal peaks at -6 dBFS, backing at -3 dBFS.
    """
    if duration_s <= 0 or sample_rate < 8000:
        raise ValueError("duration_s must be positive and sample_rate at least 8000 Hz")
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    beat_s = 60.0 / tempo_bpm
    v = _vocal(sample_rate, n, beat_s, rng)
    b = _backing(sample_rate, n, beat_s, rng)
    v *= 10 ** (-6 / 20) / max(np.abs(v).max(), 1e-9)
    b *= 10 ** (-3 / 20) / max(np.abs(b).max(), 1e-9)
    vocal = np.stack([v, v], axis=1).astype(np.float32)
    return vocal, b.astype(np.float32)
