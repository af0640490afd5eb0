"""A synthesised short song: the embedded demo (``vocalmix demo``) and test material.

:func:`synthesize_song` returns a sung-like vocal line and a backing track, both
deterministic for a given seed.

The vocal is a diatonic melody in A major (A3-B4, 220-494 Hz) of sustained notes
quantised to eighth notes, sung in two-bar phrases separated by rests. Each note is a
band-limited glottal-like source (harmonics at about -12 dB/octave, +6 dB/octave lip
radiation) shaped by the five formants of one of five vowels (a cascade-resonator spectral
envelope evaluated at each harmonic), with a pitch scoop at the onset, vibrato (about
5.5 Hz, +/-30-45 cents, fading in), a slow pitch drift, an attack/release envelope and
a phrase arc. Phrases alternate between louder and softer (about 7 dB apart), which gives
an EBU loudness range of roughly 6-12 LU. Aspiration noise follows the voice, and a short
inhalation precedes each phrase.

The backing, on a strict grid at the given tempo, has a kick (a pitched-down sine sweep)
on beats 1 and 3, a snare (a noise burst and a tone) on 2 and 4, hi-hats (high-passed
noise) on eighth notes panned right, a crash every eight bars, a bass line on the chord
roots (73-110 Hz), plucked chords on every beat panned left and a wide sustained pad, all
following I-V-vi-IV, one chord per bar.

Everything is vectorised numpy: each note is a wavetable oscillator (one period computed by
inverse FFT, read with linear interpolation); drum hits and backing notes are rendered once
and placed on the grid. 12 s at 44.1 kHz takes about 0.1 s, 180 s one to three seconds.
The last 0.15 s fade out, so the song ends without a click.
"""

from __future__ import annotations

import numpy as np

from vocalmix.core.dsp import butterworth2_sos, max_filter_hz
from vocalmix.core.kernels import sosfilt

_TABLE = 4096  # wavetable length, samples per period
_KEY_HZ = 220.0  # A3: the song is in A major
# melody pitches, semitones above A3: A3 B3 C#4 D4 E4 F#4 G#4 A4 B4 (220-494 Hz)
_MELODY = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14])
# I V vi IV, semitones above A3 (A C# E, E G# B, F# A C#, D F# A)
_PROGRESSION = ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12))
_BASS_ROOTS = (-24, -29, -27, -31)  # A2 110 Hz, E2 82 Hz, F#2 92 Hz, D2 73 Hz
# vowel formants (Hz) and bandwidths (Hz), F1-F3 after Peterson & Barney's female averages
_VOWELS: dict[str, tuple[tuple[float, float], ...]] = {
    "a": ((850, 90), (1220, 100), (2810, 150), (3900, 250), (4700, 300)),
    "e": ((610, 80), (2330, 110), (2990, 150), (3900, 250), (4700, 300)),
    "i": ((350, 60), (2790, 120), (3310, 160), (4100, 250), (4900, 300)),
    "o": ((590, 80), (920, 90), (2710, 150), (3800, 250), (4600, 300)),
    "u": ((400, 70), (950, 90), (2670, 150), (3800, 250), (4600, 300)),
}
_VOWEL_DB = {"a": 0.0, "e": -1.0, "i": -2.5, "o": -0.5, "u": -3.0}  # intrinsic level, dB
# two-bar phrase rhythms in beats; negative values are rests (each sums to 8 beats, with at
# least half a beat of rest before and a beat after the line, so phrases never touch)
_RHYTHMS = (
    (-1.0, 1.0, 1.0, 1.0, 1.0, 2.0, -1.0),
    (-0.5, 0.5, 1.0, 1.0, 1.0, 1.5, 1.5, -1.0),
    (-1.0, 1.5, 0.5, 1.0, 1.0, 2.0, -1.0),
    (-0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 2.5, -1.5),
    (-1.0, 2.0, 1.0, 1.0, 2.0, -1.0),
    (-1.0, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0, 2.0, -1.0),
)
_STEPS = np.array([-2, -1, -1, 0, 1, 1, 2])  # melodic motion, scale degrees
_SOFT_PHRASE_DB = -7.0  # every other phrase is sung this much softer, dB


def _wavetable(amps: np.ndarray) -> np.ndarray:
    """One period of ``sum_k amps[k-1] * sin(2 pi k x)``, ``_TABLE + 1`` samples.

    The extra sample repeats the first, so :func:`_osc` can interpolate without wrapping.
    """
    spec = np.zeros(_TABLE // 2 + 1, dtype=complex)
    spec[1 : amps.size + 1] = -0.5j * _TABLE * amps
    table = np.fft.irfft(spec, _TABLE)
    return np.append(table, table[0])


def _osc(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Read a wavetable at phases ``cycles`` (periods, >= 0) with linear interpolation."""
    pos = cycles * _TABLE
    i = pos.astype(np.int64)
    frac = pos - i
    i &= _TABLE - 1
    a = table[i]
    return a + frac * (table[i + 1] - a)


def _formant_envelope(freqs_hz: np.ndarray, vowel: str) -> np.ndarray:
    """Magnitude (linear, 1 at 0 Hz) of a cascade of the vowel's formant resonators.

    Each formant is a two-pole resonator at ``F`` Hz with bandwidth ``B`` Hz (Klatt's
    cascade synthesiser), evaluated at ``freqs_hz``.
    """
    w = 2 * np.pi * freqs_hz
    g = np.ones_like(w)
    for f, bw in _VOWELS[vowel]:
        s, w0 = np.pi * bw, 2 * np.pi * f
        num = s * s + w0 * w0
        g *= num / np.sqrt((num - w * w) ** 2 + (2 * s * w) ** 2)
    return g


def _voice_table(f0_hz: float, vowel: str, sr: int) -> np.ndarray:
    """Wavetable of a sung vowel at ``f0_hz`` Hz, RMS 1, band-limited below ``0.45 sr``.

    Glottal source at -12 dB/octave, lip radiation +6 dB/octave, formant envelope.
    """
    top_hz = min(max_filter_hz(sr), 10000.0) / 1.05  # headroom for the vibrato and the scoop
    k = np.arange(1, max(1, int(top_hz // f0_hz)) + 1)
    amps = _formant_envelope(k * f0_hz, vowel) / k
    return _wavetable(amps / np.sqrt(0.5 * np.sum(amps**2)))


def _fade(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Envelope of ``n`` samples: raised-cosine attack and release (s), 1 in between."""
    env = np.ones(n)
    a = min(n // 2, int(attack_s * sr))
    r = min(n // 2, int(release_s * sr))
    if a:
        env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, a))
    if r:
        env[n - r :] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, r))
    return env


def _melody(n_beats: float, rng: np.random.Generator) -> list[tuple[float, float, int, int]]:
    """The vocal line: ``(start, length, semitones above A3, phrase)``, times in beats.

    Two-bar phrases; every fourth phrase is instrumental. The line moves by steps of up
    to two scale degrees and lands on a tone of the bar's chord on strong beats and on
    long notes.
    """
    notes: list[tuple[float, float, int, int]] = []
    deg = int(rng.integers(2, 6))
    phrase = 0
    while 8 * phrase < n_beats:
        if phrase % 4 == 3:
            phrase += 1
            continue
        beat = 8.0 * phrase
        for d in _RHYTHMS[int(rng.integers(len(_RHYTHMS)))]:
            if d > 0 and beat < n_beats:
                deg = int(np.clip(deg + rng.choice(_STEPS), 0, _MELODY.size - 1))
                if beat % 2 == 0 or d >= 1.5:
                    chord = {s % 12 for s in _PROGRESSION[int(beat // 4) % 4]}
                    tones = np.array([i for i, s in enumerate(_MELODY) if s % 12 in chord])
                    deg = int(tones[np.argmin(np.abs(tones - deg))])
                notes.append((beat, d, int(_MELODY[deg]), phrase))
            beat += abs(d)
        phrase += 1
    return notes


def _sing(
    f0_hz: float, vowel: str, length_s: float, sr: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One sung note of ``length_s`` s plus its release: ``(voice, envelope)``.

    Pitch: a scoop up from 15-60 cents below, vibrato 5.2-5.8 Hz of +/-30-45 cents fading
    in after 0.12 s, and a slow random drift of a few cents.
    """
    release_s = 0.09
    m = int((length_s + release_s) * sr)
    t = np.arange(m) / sr
    rate_hz, depth = rng.uniform(5.2, 5.8), rng.uniform(0.30, 0.45)  # Hz, semitones
    fade_in = np.clip((t - 0.12) / 0.45, 0.0, 1.0)
    vib = np.sin(2 * np.pi * rate_hz * t)
    knots = np.arange(0.0, t[-1] + 0.2, 0.15)
    drift = np.interp(t, knots, rng.normal(0.0, 0.04, knots.size))
    semis = -rng.uniform(0.15, 0.6) * np.exp(-t / 0.035) + depth * fade_in * vib + drift
    cycles = np.cumsum(f0_hz * 2.0 ** (semis / 12.0)) / sr
    voice = _osc(_voice_table(f0_hz, vowel, sr), cycles)
    env = _fade(m, sr, 0.045, 0.0)  # 45 ms attack
    k = int(length_s * sr)
    env[k:] *= 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, m - k))  # release after the note
    env *= (1.0 - 0.15 * t / (length_s + release_s)) * (1.0 + 0.05 * fade_in * vib)
    return voice * env, env


def _vocal(sr: int, n: int, beat_s: float, rng: np.random.Generator) -> np.ndarray:
    """The mono vocal, ``n`` samples (unnormalised)."""
    out = np.zeros(n)
    breath_env = np.zeros(n)
    phrase_db: dict[int, float] = {}
    for start, beats, semis, phrase in _melody(n / sr / beat_s, rng):
        if phrase not in phrase_db:
            base = 0.0 if phrase % 2 == 0 else _SOFT_PHRASE_DB
            phrase_db[phrase] = base + rng.uniform(-1.5, 1.5)
            # an inhalation (0.25 s) just before the phrase's first note
            i1 = int(start * beat_s * sr)
            i0 = max(0, i1 - int(0.25 * sr))
            if i1 > i0:
                level = 0.06 * 10 ** (phrase_db[phrase] / 20)
                breath_env[i0:i1] += level * np.sin(np.linspace(0, np.pi, i1 - i0)) ** 2
        vowel = "aeiou"[int(rng.integers(5))]
        arc_db = 2.0 * np.sin(np.pi * (start % 8) / 8)  # phrases swell to the middle
        gain = 10 ** ((phrase_db[phrase] + arc_db + _VOWEL_DB[vowel] + rng.uniform(-1, 1)) / 20)
        i0 = int(round(start * beat_s * sr))
        if i0 >= n:
            continue
        voice, env = _sing(_KEY_HZ * 2 ** (semis / 12), vowel, beats * beat_s, sr, rng)
        m = min(voice.size, n - i0)
        out[i0 : i0 + m] += gain * voice[:m]
        breath_env[i0 : i0 + m] += 0.03 * gain * env[:m]  # aspiration under the voice
    band = butterworth2_sos((1200.0, min(7000.0, max_filter_hz(sr))), "bandpass", sr)
    breath = sosfilt(band, rng.standard_normal(n))
    breath_env /= max(float(np.sqrt(np.mean(breath**2))), 1e-12)  # noise of unit RMS
    breath *= breath_env
    out += breath
    return out


def _kick(sr: int) -> np.ndarray:
    """Kick drum: a sine swept from 150 Hz down to 48 Hz, decaying over about 0.3 s."""
    t = np.arange(int(0.4 * sr)) / sr
    f = 48.0 + 102.0 * np.exp(-t / 0.035)
    body = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.13)
    click = np.exp(-t / 0.002) * np.sin(2 * np.pi * 1800 * t)
    return (body + 0.15 * click) * _fade(t.size, sr, 0.001, 0.02)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Snare: band-passed noise (1-8 kHz, 0.07 s decay) over a 185 Hz tone (0.05 s)."""
    t = np.arange(int(0.3 * sr)) / sr
    band = butterworth2_sos((1000.0, min(8000.0, max_filter_hz(sr))), "bandpass", sr)
    noise = sosfilt(band, rng.standard_normal(t.size)) * np.exp(-t / 0.07)
    tone = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
    return (1.2 * noise + 0.5 * tone) * _fade(t.size, sr, 0.001, 0.02)


def _hat(sr: int, rng: np.random.Generator, length_s: float = 0.07) -> np.ndarray:
    """Hi-hat tick (or, longer, a crash): noise high-passed at 7 kHz (0.4 sr at most)."""
    t = np.arange(int(length_s * sr)) / sr
    hp = butterworth2_sos(min(7000.0, 0.4 * sr), "highpass", sr)
    return sosfilt(hp, rng.standard_normal(t.size)) * np.exp(-t / (length_s / 4))


def _tone(freq_hz: float, harmonics: int, tilt: float, t: np.ndarray, phase: float) -> np.ndarray:
    """A steady tone at ``freq_hz`` Hz: ``harmonics`` partials at ``k**-tilt``, band-limited."""
    k = np.arange(1, harmonics + 1)
    return _osc(_wavetable(k**-tilt), freq_hz * t + phase)


def _place(
    out: np.ndarray, sound: np.ndarray, starts: np.ndarray, gains: np.ndarray,
    pan: tuple[float, float] = (1.0, 1.0),
) -> None:
    """Add ``sound`` times each gain at each start (samples) into the stereo ``out``.

    ``pan`` gives the left and right gains; the sound is cut at the end of ``out``.
    """
    for i0, g in zip(starts, gains, strict=True):
        m = min(sound.size, out.shape[0] - i0)
        if m > 0:
            hit = g * sound[:m]
            out[i0 : i0 + m, 0] += pan[0] * hit
            out[i0 : i0 + m, 1] += pan[1] * hit


def _soft_limit(x: np.ndarray, headroom_db: float = 13.0, knee: float = 0.75) -> None:
    """Scale ``x`` in place to an RMS ``headroom_db`` dB below 1; round off what exceeds ``knee``.

    A memoryless bus limiter: samples below ``knee`` pass unchanged, larger ones approach
    1 along a tanh (continuous slope). Only the rare coincident hits (kick, bass, chord and
    crash on a downbeat) are touched, which keeps the peak-to-loudness ratio near that of
    a produced backing track.
    """
    x *= 10 ** (-headroom_db / 20) / max(float(np.sqrt(np.mean(x**2))), 1e-12)
    over = np.flatnonzero(np.abs(x.ravel()) > knee)
    flat = x.reshape(-1)
    mag = np.abs(flat[over])
    flat[over] = np.copysign(knee + (1 - knee) * np.tanh((mag - knee) / (1 - knee)), flat[over])


def _backing(sr: int, n: int, beat_s: float, rng: np.random.Generator) -> np.ndarray:
    """The stereo backing, ``(n, 2)`` (unnormalised)."""
    n_beats = int(np.ceil(n / sr / beat_s))
    beats = np.round(np.arange(n_beats) * beat_s * sr).astype(np.int64)
    eighths = np.round(np.arange(2 * n_beats) * beat_s * sr / 2).astype(np.int64)
    bars = beats[::4]
    out = np.zeros((n, 2))

    def human(size: int, db: float = 1.0) -> np.ndarray:
        return 10 ** (rng.uniform(-db, db, size) / 20)

    # drums: kick and snare centred, hi-hats right, crash left
    _place(out, 0.8 * _kick(sr), beats[::2], human(beats[::2].size))
    _place(out, 0.4 * _snare(sr, rng), beats[1::2], human(beats[1::2].size))
    hat_gain = np.where(np.arange(eighths.size) % 2 == 0, 0.2, 0.11) * human(eighths.size)
    for v in range(3):  # three slightly different ticks, in turn
        _place(out, _hat(sr, rng), eighths[v::3], hat_gain[v::3], (0.4, 1.0))
    _place(out, 0.08 * _hat(sr, rng, 1.6), bars[::8], np.ones(bars[::8].size), (1.0, 0.4))

    # bass, plucked chords (every beat) and a pad (every bar), one chord per bar
    bar_len = int(4 * beat_s * sr)
    delay = int(0.012 * sr)  # the pad's right channel lags by 12 ms: width
    for c, chord in enumerate(_PROGRESSION):
        on_bars = bars[c::4]
        root_hz = _KEY_HZ * 2 ** (_BASS_ROOTS[c] / 12)
        # bass, centred: root on 1, the "and" of 2, 3 and 4, plucked
        for offset, length in ((0.0, 1.4), (1.5, 0.45), (2.0, 0.95), (3.0, 0.95)):
            t = np.arange(int(length * beat_s * sr)) / sr
            note = _tone(root_hz, 6, 2.0, t, 0.0) * np.exp(-t / 0.5)
            note *= 0.45 * _fade(t.size, sr, 0.004, 0.03)
            _place(out, note, on_bars + int(offset * beat_s * sr), human(on_bars.size, 0.7))
        # plucked chord on every beat, left of centre
        t = np.arange(int(0.9 * beat_s * sr)) / sr
        stab = sum(_tone(_KEY_HZ * 2 ** (s / 12), 8, 1.2, t, 0.1 * j) for j, s in enumerate(chord))
        stab *= np.exp(-t / 0.18) * _fade(t.size, sr, 0.003, 0.05)
        for b in range(4):
            _place(out, stab, on_bars + int(b * beat_s * sr),
                   (1.0 if b == 0 else 0.7) * human(on_bars.size), (0.2, 0.12))
        # pad: the chord (root an octave down, third an octave up), voices spread and
        # detuned +/-6 cents between the channels
        t = np.arange(bar_len + int(0.3 * sr)) / sr
        voices = [s - 12 * (j == 0) for j, s in enumerate(chord)] + [chord[1] + 12]
        pl, pr = np.zeros(t.size), np.zeros(t.size)
        for j, s in enumerate(voices):
            f = _KEY_HZ * 2 ** (s / 12)
            pan = 0.25 + 0.5 * (j % 2)  # voices alternately left and right of centre
            pl += (1 - pan) * _tone(f * 2 ** (-6 / 1200), 6, 1.5, t, 0.3 * j)
            pr += pan * _tone(f * 2 ** (6 / 1200), 6, 1.5, t, 0.7 * j)
        env = 0.14 * _fade(t.size, sr, 0.25, 0.3)
        _place(out, pl * env, on_bars, np.ones(on_bars.size), (1.0, 0.0))
        _place(out, pr * env, on_bars + delay, np.ones(on_bars.size), (0.0, 1.0))
    _soft_limit(out)
    return out


def synthesize_song(
    sample_rate: int = 44100,
    duration_s: float = 12.0,
    seed: int = 0,
    tempo_bpm: float = 100.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic synthesised song: a sung vocal line and its backing.

    Args:
        sample_rate: sample rate, Hz (at least 8000).
        duration_s: length, s (positive; 2 to a few hundred is the intended range).
        seed: random seed for the melody, vowels, dynamics, timbres and noise.
        tempo_bpm: tempo, beats per minute (quarter notes, 4/4, one chord per bar).

    Returns:
        ``(vocal, backing)``, each float32 of shape ``(round(duration_s * sample_rate), 2)``.
        The vocal is mono (identical channels) with a sample peak of -6 dBFS; the backing
        is stereo with a sample peak of -3 dBFS. The same arguments give bit-identical
        arrays.

    Raises:
        ValueError: for a non-positive duration or tempo, or a sample rate below 8000 Hz.
    """
    if not duration_s > 0 or not tempo_bpm > 0 or sample_rate < 8000:
        raise ValueError(
            "duration_s and tempo_bpm must be positive and sample_rate at least 8000 Hz"
        )
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    beat_s = 60.0 / tempo_bpm
    end = _fade(n, sample_rate, 0.0, 0.15)  # the song ends without a click
    v = _vocal(sample_rate, n, beat_s, rng)
    v *= end
    b = _backing(sample_rate, n, beat_s, rng)
    b *= end[:, None]
    v *= 10 ** (-6 / 20) / max(float(np.abs(v).max(initial=0.0)), 1e-9)
    b *= 10 ** (-3 / 20) / max(float(np.abs(b).max(initial=0.0)), 1e-9)
    vocal = np.repeat(v.astype(np.float32)[:, None], 2, axis=1)
    return vocal, b.astype(np.float32)
