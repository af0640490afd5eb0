"""Level-invariant features of a vocal and a backing, and training examples.

Every feature is a ratio, a shape or a rate, so multiplying the vocal (or the backing) by
any gain leaves it unchanged: the model cannot read the answer (the human mix's level)
off its input. Tests check this invariance.

====================  =====================================================================
feature               meaning
====================  =====================================================================
b_centroid_oct        backing spectral centroid, octaves re 1 kHz (brightness)
b_flatness            backing mean spectral flatness (noise-like vs tonal; density)
b_low_db              backing energy below 250 Hz, dB re its total (bass weight)
b_mid_db              backing energy 250 Hz-2 kHz, dB re total (where the voice sits)
b_high_db             backing energy 2-6 kHz, dB re total (presence competition)
b_air_db              backing energy above 6 kHz, dB re total (air, cymbals)
b_onsets_per_s        backing onset density, onsets per second (busy vs sparse)
tempo_rel             backing tempo / 120 BPM
b_lra_lu              backing loudness range, LU (dynamic vs compressed production)
b_crest_db            backing true peak minus integrated loudness, dB (density/limiting)
v_centroid_oct        vocal spectral centroid, octaves re 1 kHz
v_flatness            vocal mean spectral flatness (breathy vs tonal)
v_activity            fraction of 100 ms frames where the vocal is within 30 dB of its peak
====================  =====================================================================
"""

from __future__ import annotations

import numpy as np
import scipy.fft

FEATURE_VERSION = 1
FEATURE_NAMES = (
    "b_centroid_oct", "b_flatness", "b_low_db", "b_mid_db", "b_high_db", "b_air_db",
    "b_onsets_per_s", "tempo_rel", "b_lra_lu", "b_crest_db",
    "v_centroid_oct", "v_flatness", "v_activity",
)
_SR = 22050
_N = 2048


def _mono(x: np.ndarray, sample_rate: int) -> np.ndarray:
    from .dsp import mono_at

    return mono_at(x, sample_rate, _SR)


def _spectral(y: np.ndarray, active: np.ndarray | None = None) -> dict[str, float]:
    n = len(y) // _N
    if n < 1:
        raise ValueError("excerpt too short for features (under 0.1 s)")
    fr = y[: n * _N].reshape(n, _N) * np.hanning(_N).astype(np.float32)
    s = scipy.fft.rfft(fr, axis=1)
    p = (s.real**2 + s.imag**2).astype(np.float64) + 1e-20
    e = p.sum(axis=1)
    keep = e > e.max() * 1e-3 if active is None else active[:n]
    if not keep.any():
        keep = np.ones(n, bool)
    p = p[keep]
    f = np.fft.rfftfreq(_N, 1 / _SR)
    spec = p.mean(axis=0)
    centroid = float((spec * f).sum() / spec.sum())
    flat = float(np.mean(np.exp(np.log(p[:, 1:]).mean(axis=1)) / p[:, 1:].mean(axis=1)))
    tot = spec.sum()

    def share(lo: float, hi: float) -> float:
        return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum() / tot + 1e-12))

    return {"centroid_oct": float(np.log2(max(centroid, 20.0) / 1000.0)), "flatness": flat,
            "low_db": share(0, 250), "mid_db": share(250, 2000), "high_db": share(2000, 6000),
            "air_db": share(6000, _SR / 2)}


def features(vocal: np.ndarray, backing: np.ndarray, sample_rate: int) -> np.ndarray:
    """The feature vector (``FEATURE_NAMES``) of one vocal/backing pair."""
    from .measure import integrated_loudness, loudness_range, true_peak_dbtp
    from .tempo import estimate_tempo, onset_strength

    yv, yb = _mono(vocal, sample_rate), _mono(backing, sample_rate)
    b = _spectral(yb)
    # vocal activity per 100 ms frame, relative to its loudest frame (gain-invariant)
    hop = _SR // 10
    nf = len(yv) // hop
    fe = (yv[: nf * hop].astype(np.float64).reshape(nf, hop) ** 2).sum(axis=1)
    act = fe > fe.max() * 1e-3 if nf and fe.max() > 0 else np.zeros(max(nf, 1), bool)
    # the same activity on the spectral frames (2048 samples ~ 93 ms)
    nspec = len(yv) // _N
    idx = np.minimum((np.arange(nspec) * _N + _N // 2) // hop, max(nf - 1, 0))
    v = _spectral(yv, act[idx] if nf else None)
    try:
        env, fps = onset_strength(yb, _SR)
        thr = env.mean() + env.std()
        peaks = (env[1:-1] > thr) & (env[1:-1] >= env[:-2]) & (env[1:-1] > env[2:])
        onsets = float(peaks.sum() / (len(env) / fps))
    except ValueError:
        onsets = 0.0
    tempo = estimate_tempo(yb, _SR)
    tempo = 120.0 if not np.isfinite(tempo) else tempo
    ib = integrated_loudness(backing, sample_rate)
    crest = true_peak_dbtp(backing, sample_rate) - ib if np.isfinite(ib) else 0.0
    return np.array([
        b["centroid_oct"], b["flatness"], b["low_db"], b["mid_db"], b["high_db"], b["air_db"],
        onsets, tempo / 120.0, loudness_range(backing, sample_rate), crest,
        v["centroid_oct"], v["flatness"], float(act.mean()) if nf else 0.0,
    ], dtype=np.float64)


# --- perturbations that make mixed stems look like raw input ---------------------------


def perturb_vocal(vocal: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random gain (+-12 dB) and gain riding (a slow random level curve, +-4 dB, the
    uneven level of a raw take) applied to a mixed vocal."""
    n = vocal.shape[0]
    knots = max(2, int(n / sample_rate / 1.5) + 2)  # a new level every ~1.5 s
    curve_db = rng.uniform(-4.0, 4.0, knots)
    t = np.linspace(0, knots - 1, n)
    ride = np.interp(t, np.arange(knots), curve_db)
    g = 10 ** ((rng.uniform(-12.0, 12.0) + ride) / 20.0)
    return (vocal * g[:, None]).astype(np.float32)


def excerpts(n: int, sample_rate: int, length_s: float = 6.0, hop_s: float = 3.0) -> list[slice]:
    """Overlapping excerpt windows (the whole signal if shorter than one)."""
    L, H = int(length_s * sample_rate), int(hop_s * sample_rate)
    if n <= L:
        return [slice(0, n)]
    return [slice(s, s + L) for s in range(0, n - L + 1, H)]
