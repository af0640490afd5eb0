"""Learned corrective EQ from self-generated data (issue 4, first part).

No raw vocals are needed: take vocals as they are (mixed stems, dry vocals, karaoke
takes), apply a random EQ (one to four peak or shelf bands, +-12 dB, random frequency and
Q), and keep the exact inverse as the label (an RBJ peak or shelf band with the gain
negated is the exact inverse of the band: tested). If the vocal was boosted at some
frequency, the model learns to cut there.

* Input: the vocal's level-normalised long-term spectrum on a 1/3-octave grid
  (63 Hz-16 kHz, active frames only, mean over bands removed), dB.
* Output: the corrective curve on the same grid, dB (mean removed: overall gain is the
  level resolver's business).
* Model: ridge regression, numpy inference (``assets/eq_model.npz``). Training examples
  are computed in the spectral domain exactly: the long-term power spectrum is taken
  once per vocal on fine FFT bins, multiplied by the EQ's power response, then summed
  into 1/3-octave bands. A share of the examples carry no EQ (label 0), so that the model
  learns to leave an unprocessed vocal alone.
* The predicted curve is fitted to at most six editable parametric bands
  (:func:`vocalmix.masking.fit_parametric_bands`), after a dead zone: corrections under
  ``min_correction_db`` are treated as noise and dropped.

Evaluation (``vocalmix evaluate --eq``): on held-out songs, the log-spectral distance
between the original and the corrected vocal (1/3-octave, level-normalised), rendered
with pedalboard, as a fraction of the distance before correction; and the distance
added to vocals that were not EQ'd at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft

from .masking import bands_response_db, fit_parametric_bands

EQ_FEATURE_VERSION = 1
CENTRES_HZ = 1000.0 * 2.0 ** (np.arange(-10, 9) / 3.0)  # 99 Hz .. 6.3 kHz, 19 bands
_SR = 44100
_N = 4096


def _band_matrix(freqs: np.ndarray) -> np.ndarray:
    lo, hi = CENTRES_HZ * 2 ** (-1 / 6), CENTRES_HZ * 2 ** (1 / 6)
    return ((freqs[:, None] >= lo[None, :]) & (freqs[:, None] < hi[None, :])).astype(float)


def long_term_spectrum(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum over the vocal's active frames: ``(freqs_hz, power)``."""
    from .dsp import mono_at

    y = mono_at(x, sample_rate, _SR, quality="HQ")
    n = len(y) // (_N // 2) - 1
    if n < 1:
        raise ValueError("vocal too short for a spectrum")
    idx = np.arange(_N)[None, :] + (_N // 2) * np.arange(n)[:, None]
    fr = y[idx] * np.hanning(_N).astype(np.float32)
    s = scipy.fft.rfft(fr, axis=1)
    p = (s.real**2 + s.imag**2).astype(np.float64)
    e = p.sum(axis=1)
    active = e > e.max() * 10 ** (-30 / 10)
    return np.fft.rfftfreq(_N, 1 / _SR), p[active].mean(axis=0) + 1e-20


def band_db(freqs: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Level-normalised 1/3-octave levels (dB, mean over bands removed)."""
    b = 10 * np.log10(power @ _band_matrix(freqs) + 1e-20)
    return b - b.mean()


def spectrum_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The model's input: level-normalised 1/3-octave spectrum of a vocal, dB."""
    return band_db(*long_term_spectrum(x, sample_rate))


def random_eq(rng: np.random.Generator) -> list[tuple[str, float, float, float]]:
    """One to four random peak/shelf bands, +-12 dB."""
    bands = []
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.choice(["peak", "peak", "peak", "low_shelf", "high_shelf"])
        if kind == "low_shelf":
            f = float(np.exp(rng.uniform(np.log(80), np.log(600))))
            q = float(rng.uniform(0.5, 1.0))
        elif kind == "high_shelf":
            f = float(np.exp(rng.uniform(np.log(2000), np.log(10000))))
            q = float(rng.uniform(0.5, 1.0))
        else:
            f = float(np.exp(rng.uniform(np.log(100), np.log(10000))))
            q = float(np.exp(rng.uniform(np.log(0.5), np.log(4.0))))
        bands.append((str(kind), f, float(rng.uniform(-12, 12)), q))
    return bands


Bands = list[tuple[str, float, float, float]]


def inverse_eq(bands: Bands) -> Bands:
    """The exact inverse of an RBJ peak/shelf EQ: the same bands with gains negated."""
    return [(k, f, -g, q) for k, f, g, q in bands]


def apply_eq(x: np.ndarray, sample_rate: int,
             bands: list[tuple[str, float, float, float]]) -> np.ndarray:
    """Render EQ bands with pedalboard (the filters MixParams renders)."""
    from .params import EqBand, HighPass
    from .render import eq_stage

    eb = tuple(EqBand(kind=k, freq_hz=min(f, 20000.0), gain_db=float(np.clip(g, -24, 24)),
                      q=float(np.clip(q, 0.1, 20))) for k, f, g, q in bands)
    return eq_stage(np.asarray(x, np.float32), sample_rate, HighPass(enabled=False), eb)


def examples_from_spectrum(freqs: np.ndarray, power: np.ndarray, rng: np.random.Generator,
                           n: int, p_clean: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (input, label) pairs from one vocal's spectrum, exact in the band domain."""
    base = band_db(freqs, power)
    xs, ys = [], []
    for _ in range(n):
        if rng.random() < p_clean:
            xs.append(base)
            ys.append(np.zeros_like(base))
            continue
        bands = random_eq(rng)
        h_db = bands_response_db(bands, freqs, _SR)
        obs = band_db(freqs, power * 10 ** (h_db / 10))
        xs.append(obs)
        ys.append(base - obs)  # what brings it back (mean removed in both)
    return np.array(xs), np.array(ys)


@dataclass(frozen=True)
class EqModel:
    """Ridge map from the 1/3-octave spectrum to the corrective curve (both dB)."""

    mean: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    version: int = EQ_FEATURE_VERSION

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Corrective curve(s) on ``CENTRES_HZ`` (dB) for input spectra (numpy only)."""
        x = np.atleast_2d(x)
        return (x - self.mean) @ self.coef + self.intercept

    def save(self, folder: Path, meta: dict) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "eq_model.npz", mean=self.mean, coef=self.coef,
                 intercept=self.intercept, version=np.array(self.version))
        (folder / "eq_model.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")

    @staticmethod
    def load(folder: Path | None = None) -> EqModel:
        from .errors import ModelError

        try:
            if folder is None:
                from importlib.resources import as_file, files

                with as_file(files("vocalmix").joinpath("assets", "eq_model.npz")) as p:
                    d = dict(np.load(p))
            else:
                d = dict(np.load(Path(folder) / "eq_model.npz"))
        except (FileNotFoundError, OSError, ValueError) as e:
            raise ModelError(f"EQ model weights not found ({e}); train with "
                             "'vocalmix train --eq'") from None
        if int(d["version"]) != EQ_FEATURE_VERSION:
            raise ModelError("the shipped EQ model is stale for this feature version")
        return EqModel(d["mean"], d["coef"], d["intercept"], int(d["version"]))


def fit_eq_model(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> EqModel:
    """Ridge regression (``alpha`` per example)."""
    mean = x.mean(axis=0)
    xc = x - mean
    a = xc.T @ xc + alpha * len(x) * np.eye(x.shape[1])
    coef = np.linalg.solve(a, xc.T @ (y - y.mean(axis=0)))
    return EqModel(mean, coef, y.mean(axis=0))


@lru_cache(maxsize=1)
def shipped() -> EqModel:
    """The EQ model shipped with the package (raises ModelError when absent)."""
    return EqModel.load()


def corrective_bands(
    vocal: np.ndarray,
    sample_rate: int,
    model: EqModel | None = None,
    *,
    max_bands: int = 6,
    max_gain_db: float = 9.0,
    min_correction_db: float = 1.5,
) -> list[tuple[str, float, float, float]]:
    """Predict the corrective curve of a vocal and fit it to editable bands."""
    m = model or shipped()
    curve = m.predict(spectrum_db(vocal, sample_rate))[0]
    curve = curve - np.median(curve)
    curve = np.where(np.abs(curve) < min_correction_db, 0.0, curve)  # dead zone
    if not np.any(curve):
        return []
    curve = np.clip(curve, -max_gain_db, max_gain_db)
    return fit_parametric_bands(CENTRES_HZ, curve, max_bands=max_bands,
                                max_gain_db=max_gain_db, sample_rate=sample_rate,
                                tolerance_db=0.75)


def log_spectral_distance(a_db: np.ndarray, b_db: np.ndarray) -> float:
    """RMS difference of two level-normalised 1/3-octave spectra, dB."""
    d = (a_db - a_db.mean()) - (b_db - b_db.mean())
    return float(np.sqrt(np.mean(d**2)))


def evaluate_eq(folders: list[str], *, seed: int = 0, per_vocal: int = 40, alpha: float = 0.01,
                test_every: int = 5, rendered_tests: int = 40, min_correction_db: float = 1.5,
                progress=None) -> dict:
    """Train on 4/5 of the songs (by song), test on the rest.

    Reports, on held-out vocals given a random EQ and rendered with pedalboard, the
    log-spectral distance (1/3-octave, level-normalised) to the original before and after
    the predicted correction (fitted to parametric bands and rendered), as the fraction of
    damage removed; and the distance the correction adds to vocals that were not EQ'd.
    """
    from .data import find_songs, load_song

    rng = np.random.default_rng(seed)
    songs = find_songs(folders)
    vocals: dict[str, list[tuple[np.ndarray, int]]] = {}
    for s in songs:
        v, _b, sr = load_song(s)
        vocals.setdefault(s.song_id, []).append((v, sr))
    ids = sorted(vocals)
    test_ids = ids[::test_every]
    train_ids = [i for i in ids if i not in test_ids]
    if progress:
        progress(f"EQ: {len(train_ids)} training songs, {len(test_ids)} held out")
    xs, ys = [], []
    for i in train_ids:
        for v, sr in vocals[i]:
            f, p = long_term_spectrum(v, sr)
            x, y = examples_from_spectrum(f, p, rng, per_vocal)
            xs.append(x)
            ys.append(y)
    model = fit_eq_model(np.concatenate(xs), np.concatenate(ys), alpha)
    before, after, clean = [], [], []
    example = None
    tests = [(i, v, sr) for i in test_ids for v, sr in vocals[i]]
    for k in range(min(rendered_tests, len(tests))):
        _i, v, sr = tests[k % len(tests)]
        orig = spectrum_db(v, sr)
        bands = random_eq(rng)
        damaged = apply_eq(v, sr, bands)
        d_db = spectrum_db(damaged, sr)
        fix = corrective_bands(damaged, sr, model, min_correction_db=min_correction_db)
        fixed = apply_eq(damaged, sr, fix) if fix else damaged
        before.append(log_spectral_distance(orig, d_db))
        c_db = spectrum_db(fixed, sr)
        after.append(log_spectral_distance(orig, c_db))
        if example is None:
            example = {"original": orig.tolist(), "damaged": d_db.tolist(),
                       "corrected": c_db.tolist(), "eq": bands, "correction": fix}
        fix0 = corrective_bands(v, sr, model, min_correction_db=min_correction_db)
        clean.append(log_spectral_distance(orig, spectrum_db(apply_eq(v, sr, fix0), sr))
                     if fix0 else 0.0)
    b, a = float(np.mean(before)), float(np.mean(after))
    return {"n_train_songs": len(train_ids), "n_test_songs": len(test_ids),
            "n_tests": len(before), "lsd_before_db": b, "lsd_after_db": a,
            "fraction_removed": 1.0 - a / b if b > 0 else 0.0,
            "clean_lsd_added_db": float(np.mean(clean)), "model": model,
            "example": example}
