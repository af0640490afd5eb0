"""Learned corrective EQ from self-generated data (issue 4, first part).

No raw vocals are needed: take vocals as they are (mixed stems, dry vocals, karaoke
takes), apply a random EQ (one to four RBJ peak or shelf bands, +-12 dB, random frequency
and Q: :func:`random_eq`) and keep the exact inverse as the label (the same bands with
their gains negated: :func:`inverse_eq`, tested to be the identity within 0.1 dB). If a
vocal was boosted at some frequency, the model must cut there.

Why a Bayesian estimator and not a regression
----------------------------------------------
Whatever the model, it sees the EQ only through the vocal's spectrum, in which the EQ
adds to the singer's own timbre. How much of a spectral feature is "the singer" and how
much "an EQ" can only be told from what vocals usually look like. On the vocals of
``shared/data`` (221 clips: 19 singers of MIR-1K, 3 mixed stems, dry vocals) the
level-normalised 1/3-octave long-term spectrum of a held-out singer differs from the
others' mean by 5-6 dB per band in the 200 Hz-6 kHz range (9-10 dB at 100-160 Hz, below
or at the singers' pitch), about twice the 2.6 dB RMS damage of the random EQs. In that
regime a regression learns the training singers' timbres: a ridge map removed 8% of the
damage on held-out singers and an MLP made it worse (4.1 dB after, 2.6 dB before). So
the model here is the estimator that is optimal when both parts are modelled
explicitly:

* **natural vocals**: a Gaussian over the features of un-EQ'd vocals (mean and
  covariance learned from the training vocals, the covariance inflated and floored so
  that a new singer is not "impossible");
* **EQs**: the random-EQ generator itself, as a bank of :data:`BANK_SIZE` curves drawn
  with a fixed seed, plus "no EQ" with prior probability :data:`PRIOR_CLEAN`.

The corrective curve is minus the posterior mean of the applied EQ given the features,
computed exactly over the bank (importance weights ``exp(-0.5 Mahalanobis^2)``); the
posterior probability of "no EQ" comes with it. A correction is applied only when that
probability is under ``gate_p_clean`` and the curve's RMS exceeds ``gate_min_rms_db``:
both are chosen at training time by cross-validation over singers so that vocals that
were not EQ'd are left alone (mean distance added at most :data:`HARM_BUDGET_DB`).

Features
--------
On a fixed 1/3-octave grid (:data:`CENTRES_HZ`, 99 Hz-6.3 kHz, 19 bands: the karaoke
takes are sampled at 16 kHz), from 4096-point frames at 44.1 kHz of the vocal's active
part (within 30 dB of its loudest frame), both level-normalised (mean over bands
removed), dB:

* ``ltas``: the long-term average power spectrum;
* ``p10``: per band, the 10th percentile over frames of the frame's band level relative
  to that frame's mean over bands (the spectrum of the vocal's quietest moments in each
  band, which varies less between singers than the average: 5.6 against 7.0 dB RMS here).

An EQ adds its band-averaged curve to both. Training examples are exact in the spectral
domain: the frames' power spectra times the EQ's power response, then banded.

The curve is finally fitted to at most six editable parametric bands
(:func:`vocalmix.estimators.masking.fit_parametric_bands`), tagged ``source: "correction"``.

Evaluation (``vocalmix evaluate --eq``): on held-out singers, the log-spectral distance
(1/3-octave, level-normalised) between the original and the corrected vocal, each random
EQ and each fitted correction rendered with pedalboard, as a fraction of the distance
before correction; and the distance added to held-out vocals that were not EQ'd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft

from vocalmix.core.errors import ModelError
from vocalmix.estimators.masking import bands_response_db, fit_parametric_bands

EQ_FEATURE_VERSION = 2
CENTRES_HZ = 1000.0 * 2.0 ** (np.arange(-10, 9) / 3.0)  # 99 Hz .. 6.3 kHz, 19 bands
STATS = ("ltas", "p10")
N_BANDS = len(CENTRES_HZ)
BANK_SIZE = 8000
BANK_SEED = 20261201
PRIOR_CLEAN = 0.5
HARM_BUDGET_DB = 0.1
EXCERPT_S = 10.0
WEIGHTS = "eq_model.npz"
META = "eq_model.json"
_SR = 44100
_N = 4096
Bands = list[tuple[str, float, float, float]]
Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# --- spectra and features ---------------------------------------------------------------


def _band_matrix(freqs: np.ndarray) -> np.ndarray:
    """``(bins, 19)``: 1 where an FFT bin falls in a 1/3-octave band of :data:`CENTRES_HZ`."""
    lo, hi = CENTRES_HZ * 2 ** (-1 / 6), CENTRES_HZ * 2 ** (1 / 6)
    return ((freqs[:, None] >= lo[None, :]) & (freqs[:, None] < hi[None, :])).astype(float)


@lru_cache(maxsize=4)
def _band_matrix_cached(n_fft: int, sample_rate: int) -> np.ndarray:
    """:func:`_band_matrix` of an FFT grid, built once (read-only)."""
    m = _band_matrix(np.fft.rfftfreq(n_fft, 1 / sample_rate))
    m.setflags(write=False)
    return m


def frame_spectra(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Power spectra of the vocal's active frames: ``(freqs_hz, power (frames, bins))``.

    Mono downmix at 44.1 kHz (soxr), Hann-windowed 4096-point frames with 50 % overlap;
    a frame is active when its energy is within 30 dB of the loudest frame's.
    """
    from vocalmix.core.dsp import mono_at

    y = mono_at(x, sample_rate, _SR, quality="HQ")
    n = len(y) // (_N // 2) - 1
    if n < 1:
        raise ValueError("vocal too short for a spectrum (needs 0.1 s at least)")
    idx = np.arange(_N)[None, :] + (_N // 2) * np.arange(n)[:, None]
    s = scipy.fft.rfft(y[idx] * np.hanning(_N).astype(np.float32), axis=1)
    p = (s.real**2 + s.imag**2).astype(np.float64)
    e = p.sum(axis=1)
    if not e.max() > 0:
        raise ValueError("vocal is silent")
    active = e > e.max() * 10 ** (-30 / 10)
    return np.fft.rfftfreq(_N, 1 / _SR), p[active]


def long_term_spectrum(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum over the vocal's active frames: ``(freqs_hz, power)``."""
    f, p = frame_spectra(x, sample_rate)
    return f, p.mean(axis=0) + 1e-20


def band_db(freqs: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Level-normalised 1/3-octave levels (dB, mean over bands removed)."""
    b = 10 * np.log10(power @ _band_matrix(freqs) + 1e-20)
    return b - b.mean(axis=-1, keepdims=True)


def spectrum_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Level-normalised 1/3-octave long-term spectrum of a vocal, dB (:data:`CENTRES_HZ`)."""
    return band_db(*long_term_spectrum(x, sample_rate))


def features_from_frames(frames: np.ndarray) -> np.ndarray:
    """The model's input from frame power spectra ``(frames, 2049)`` at 44.1 kHz:
    ``ltas`` then ``p10`` (see the module docstring), ``2 x 19`` values in dB."""
    m = _band_matrix_cached(_N, _SR)
    bands = frames @ m
    ltas = 10 * np.log10(bands.mean(axis=0) + 1e-20)
    rel = 10 * np.log10(bands + 1e-20)
    rel -= rel.mean(axis=1, keepdims=True)
    p10 = np.percentile(rel, 10, axis=0)
    return np.concatenate([ltas - ltas.mean(), p10 - p10.mean()])


def vocal_features(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The model's input for a vocal (see :func:`features_from_frames`)."""
    return features_from_frames(frame_spectra(x, sample_rate)[1])


# --- random EQ ---------------------------------------------------------------------------


def random_eq(rng: np.random.Generator) -> Bands:
    """One to four random peak/shelf bands, +-12 dB (uniform), as ``(kind, Hz, dB, Q)``.

    Peaks: 100 Hz-10 kHz log-uniform, Q 0.5-4 log-uniform (3 in 5 bands); low shelves
    80-600 Hz and high shelves 2-10 kHz, Q 0.5-1 (1 in 5 each).
    """
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


def inverse_eq(bands: Bands) -> Bands:
    """The exact inverse of an RBJ peak/shelf EQ: the same bands with gains negated."""
    return [(k, f, -g, q) for k, f, g, q in bands]


def apply_eq(x: np.ndarray, sample_rate: int, bands: Bands) -> np.ndarray:
    """Render EQ bands with pedalboard (the filters MixParams renders)."""
    from vocalmix.core.params import EqBand, HighPass, clip
    from vocalmix.core.render import eq_stage

    eb = tuple(EqBand(kind=k, freq_hz=clip(EqBand, "freq_hz", f),
                      gain_db=clip(EqBand, "gain_db", g), q=clip(EqBand, "q", q))
               for k, f, g, q in bands)
    return eq_stage(np.asarray(x, np.float32), sample_rate, HighPass(enabled=False), eb)


def _response_power(bands: Bands) -> np.ndarray:
    """Power response of ``bands`` on the analysis FFT bins (44.1 kHz, 4096 points)."""
    freqs = np.fft.rfftfreq(_N, 1 / _SR)
    return 10 ** (bands_response_db(bands, freqs, _SR) / 10)


def eq_band_curve(bands: Bands) -> np.ndarray:
    """What an EQ adds to a flat spectrum's level-normalised 1/3-octave levels, dB."""
    m = _band_matrix_cached(_N, _SR)
    b = 10 * np.log10((_response_power(bands) @ m) / m.sum(axis=0))
    return b - b.mean()


def eq_bank(n: int = BANK_SIZE, seed: int = BANK_SEED) -> np.ndarray:
    """``n`` random-EQ curves (:func:`random_eq`, :func:`eq_band_curve`), float32 ``(n, 19)``."""
    rng = np.random.default_rng(seed)
    return np.array([eq_band_curve(random_eq(rng)) for _ in range(n)], dtype=np.float32)


def log_spectral_distance(a_db: np.ndarray, b_db: np.ndarray) -> float:
    """RMS difference of two level-normalised 1/3-octave spectra, dB."""
    d = (a_db - a_db.mean()) - (b_db - b_db.mean())
    return float(np.sqrt(np.mean(d**2)))


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EqModel:
    """Posterior-mean corrective EQ (see the module docstring); numpy only.

    Attributes:
        mean: mean features of natural vocals, ``(38,)`` dB.
        precision: inverse covariance of natural vocals' features, ``(38, 38)`` 1/dB^2.
        bank: random-EQ curves, ``(K, 19)`` dB, float16 (the EQ adds each to both
            statistics).
        prior_clean: prior probability that a vocal carries no EQ.
        gate_p_clean: apply a correction only when P(no EQ | vocal) is below this.
        gate_min_rms_db: ... and when the corrective curve's RMS is at least this, dB.
        version: :data:`EQ_FEATURE_VERSION` the model was trained for.
    """

    mean: np.ndarray
    precision: np.ndarray
    bank: np.ndarray
    prior_clean: float = PRIOR_CLEAN
    gate_p_clean: float = 0.2
    gate_min_rms_db: float = 1.0
    version: int = EQ_FEATURE_VERSION
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def _prepared(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if "prep" not in self._cache:
            k = self.bank.shape[0]
            atoms = np.vstack([np.zeros((1, N_BANDS)), self.bank.astype(np.float64)])
            tiled = np.tile(atoms, (1, len(STATS)))  # the EQ shifts every statistic
            ts = tiled @ self.precision
            quad = np.einsum("ij,ij->i", ts, tiled)
            log_prior = np.r_[np.log(self.prior_clean),
                              np.full(k, np.log((1 - self.prior_clean) / k))]
            self._cache["prep"] = (atoms, ts, quad, log_prior)
        return self._cache["prep"]

    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean of the applied EQ curve ``(n, 19)`` (dB on :data:`CENTRES_HZ`)
        and the posterior probability of "no EQ" ``(n,)``, for feature rows ``(n, 38)``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        atoms, ts, quad, log_prior = self._prepared()
        r = x - self.mean
        # Mahalanobis^2 of (r - atom) = r'Pr - 2 r'P atom + atom'P atom; r'Pr is common
        log_w = log_prior[None, :] - 0.5 * (quad[None, :] - 2.0 * r @ ts.T)
        log_w -= log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w /= w.sum(axis=1, keepdims=True)
        return w @ atoms, w[:, 0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Corrective curves ``(n, 19)``, dB: minus the posterior mean of the applied EQ."""
        return -self.posterior(x)[0]

    def gate_open(self, curve: np.ndarray, p_clean: np.ndarray) -> np.ndarray:
        """Whether the gate lets each corrective curve through (:func:`_gate_open`)."""
        return _gate_open(p_clean, _rms_db(curve), self.gate_p_clean, self.gate_min_rms_db)

    def gated(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corrective curves with the gate applied (zero where it is not confident), and
        P(no EQ)."""
        applied, p_clean = self.posterior(x)
        curve = -applied
        return np.where(self.gate_open(curve, p_clean)[:, None], curve, 0.0), p_clean

    def save(self, folder: str | Path, meta: dict, check_x: np.ndarray | None = None) -> None:
        """Write ``eq_model.npz`` and ``eq_model.json`` into ``folder`` (atomically).

        ``check_x``: feature rows stored with their training-time predictions, so a
        loaded model can be checked against them.
        """
        arrays = {"mean": self.mean, "precision": self.precision,
                  "bank": self.bank.astype(np.float16),  # 0.01 dB steps: plenty
                  "prior_clean": np.array(self.prior_clean),
                  "gate_p_clean": np.array(self.gate_p_clean),
                  "gate_min_rms_db": np.array(self.gate_min_rms_db),
                  "version": np.array(self.version),
                  "centres_hz": CENTRES_HZ, "stats": np.array(STATS)}
        if check_x is not None:
            arrays["check_x"] = np.asarray(check_x, dtype=np.float64)
            arrays["check_y"] = self.predict(check_x)
        from vocalmix.core.audio import write_model_files

        write_model_files(folder, WEIGHTS, arrays, META, meta, compressed=True)

    @staticmethod
    def load(folder: str | Path | None = None) -> EqModel:
        """Load from ``folder`` (default: the weights shipped in the package).

        Raises :class:`ModelError` when missing, unreadable or stale (another feature
        version or grid).
        """
        from vocalmix.core.audio import load_arrays

        where = "the package" if folder is None else str(folder)
        try:
            d = load_arrays(WEIGHTS, folder)
        except (FileNotFoundError, ModuleNotFoundError):
            raise ModelError(f"no corrective-EQ weights in {where}; train them with "
                             "'vocalmix train --eq --data DIR -o MODELDIR'") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"the corrective-EQ weights in {where} are unreadable ({e}); "
                             "retrain with 'vocalmix train --eq'") from None
        try:
            version = int(d["version"])
            same_grid = np.allclose(d["centres_hz"], CENTRES_HZ)
            same_stats = tuple(str(s) for s in d["stats"]) == STATS
            m = EqModel(d["mean"], d["precision"], d["bank"], float(d["prior_clean"]),
                        float(d["gate_p_clean"]), float(d["gate_min_rms_db"]), version)
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"the corrective-EQ weights in {where} are incomplete ({e}); "
                             "retrain with 'vocalmix train --eq'") from None
        if version != EQ_FEATURE_VERSION or not same_grid or not same_stats:
            raise ModelError(f"the corrective-EQ weights in {where} are stale (feature "
                             f"version {version}, this vocalmix computes "
                             f"{EQ_FEATURE_VERSION}); retrain with 'vocalmix train --eq'")
        return m


def _rms_db(curve: np.ndarray) -> np.ndarray:
    """RMS over bands of a curve (or of each row), its mean removed, dB."""
    c = np.asarray(curve, dtype=np.float64)
    return np.sqrt(np.mean((c - c.mean(axis=-1, keepdims=True)) ** 2, axis=-1))


def _gate_open(p_clean, rms_db, gate_p_clean: float, gate_min_rms_db: float):
    """The gate: a correction passes when P(no EQ) is under ``gate_p_clean`` and the
    curve's RMS is at least ``gate_min_rms_db`` (elementwise)."""
    return (np.asarray(p_clean) < gate_p_clean) & (np.asarray(rms_db) >= gate_min_rms_db)


def fit_eq_model(features: np.ndarray, bank: np.ndarray, *, inflate: float = 1.5,
                 floor_db: float = 0.5, prior_clean: float = PRIOR_CLEAN,
                 gate_p_clean: float = 0.2, gate_min_rms_db: float = 1.0) -> EqModel:
    """The natural-vocal Gaussian from un-EQ'd vocals' features ``(n, 38)``.

    Covariance: the sample covariance times ``inflate`` plus ``floor_db``^2 on the
    diagonal (a new singer differs from the training singers more than they differ among
    themselves; the floor keeps the precision finite with few vocals).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_BANDS * len(STATS) or len(x) < 2:
        raise ModelError(f"need at least 2 vocals' features of {N_BANDS * len(STATS)} values")
    cov = np.cov(x.T) * inflate + floor_db**2 * np.eye(x.shape[1])
    return EqModel(x.mean(axis=0), np.linalg.inv(cov), np.asarray(bank, np.float16),
                   prior_clean, gate_p_clean, gate_min_rms_db)


@lru_cache(maxsize=1)
def shipped() -> EqModel:
    """The corrective-EQ model shipped with the package (ModelError when absent)."""
    return EqModel.load()


def weights_available() -> bool:
    """Whether usable corrective-EQ weights ship with this installation."""
    try:
        shipped()
        return True
    except ModelError:
        return False


def shipped_metadata() -> dict:
    """The shipped EQ model's metadata (empty if none)."""
    from vocalmix.core.audio import read_package_json

    return read_package_json(META)


# --- from a curve to editable bands ----------------------------------------------------------


def curve_to_bands(curve_db: np.ndarray, *, max_bands: int = 6, max_gain_db: float = 12.0,
                   sample_rate: int = 44100) -> Bands:
    """Fit a corrective curve on :data:`CENTRES_HZ` with at most ``max_bands`` peak/shelf
    bands. The curve is first interpolated (linearly in log frequency) onto a 1/12-octave
    grid so that the bands follow it between the centres too."""
    c = np.asarray(curve_db, dtype=np.float64)
    if not np.any(np.abs(c) > 1e-9):
        return []
    fine = np.geomspace(CENTRES_HZ[0], CENTRES_HZ[-1], 4 * (N_BANDS - 1) + 1)
    target = np.interp(np.log2(fine), np.log2(CENTRES_HZ), np.clip(c, -max_gain_db,
                                                                    max_gain_db))
    return fit_parametric_bands(fine, target, max_bands=max_bands, max_gain_db=max_gain_db,
                                sample_rate=sample_rate, tolerance_db=0.5)


@dataclass(frozen=True)
class Correction:
    """A corrective-EQ decision for one vocal.

    Attributes:
        bands: editable bands ``(kind, Hz, dB, Q)`` (empty when not applied).
        curve_db: the model's corrective curve on :data:`CENTRES_HZ` (before the gate), dB.
        p_clean: posterior probability that the vocal carries no EQ.
        applied: whether the gate let the correction through.
    """

    bands: Bands
    curve_db: np.ndarray
    p_clean: float
    applied: bool


def correct(vocal: np.ndarray, sample_rate: int, model: EqModel | None = None, *,
            max_bands: int = 6, max_gain_db: float = 12.0) -> Correction:
    """Predict a vocal's corrective EQ and fit it to editable bands (numpy only)."""
    m = model or shipped()
    applied_eq, p_clean = m.posterior(vocal_features(vocal, sample_rate))
    raw, p = -applied_eq[0], float(p_clean[0])
    applied = bool(m.gate_open(raw, p)) and bool(np.any(raw != 0.0))
    bands = curve_to_bands(raw, max_bands=max_bands, max_gain_db=max_gain_db,
                           sample_rate=sample_rate) if applied else []
    return Correction(bands, raw, p, applied and bool(bands))


# --- training data -------------------------------------------------------------------------


@dataclass(frozen=True)
class VocalItem:
    """One vocal excerpt for EQ training: frames, and the groups that splits keep whole."""

    song: str
    singer: str
    frames: np.ndarray  # active-frame power spectra (frames, 2049) at 44.1 kHz
    audio: np.ndarray | None = None  # the excerpt (for rendered tests), float32 (n, 2)
    sample_rate: int = _SR


def _excerpts(x: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    n = int(EXCERPT_S * sample_rate)
    if len(x) < 1.5 * n:
        return [x]
    return [x[i:i + n] for i in range(0, len(x) - n // 2, n)]


def collect_vocals(folders: list[str | Path], *, keep_audio: bool = False,
                   progress: Progress = _quiet) -> list[VocalItem]:
    """Every vocal under ``folders``: the vocal of each song
    :func:`vocalmix.training.data.find_songs`
    recognises (stems, karaoke clips, manifests) and any other mono audio file in a folder
    named ``dry_vocals``; long vocals are cut into 10 s excerpts of the same song.

    Singers: a MIR-1K clip ``singer_song_NN`` belongs to ``singer``; any other song is its
    own singer (the safe assumption for held-out splits).
    """
    from vocalmix.core.audio import read_audio
    from vocalmix.training.data import AUDIO_EXT, find_songs, load_song

    items: list[VocalItem] = []
    songs = find_songs([str(f) for f in folders])
    for s in songs:
        v, _b, sr = load_song(s)
        singer = s.song_id.split("_")[0] if s.source == "karaoke" and "_" in s.song_id \
            else s.song_id
        for seg in _excerpts(v, sr):
            try:
                fr = frame_spectra(seg, sr)[1]
            except ValueError:
                continue
            items.append(VocalItem(s.song_id, singer, fr, seg if keep_audio else None, sr))
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.suffix.lower() in AUDIO_EXT and "dry_vocals" in p.parts:
                a = read_audio(p, max_duration_s=600.0)
                for seg in _excerpts(a.samples, a.sample_rate):
                    items.append(VocalItem(p.stem, p.stem, frame_spectra(seg, a.sample_rate)[1],
                                           seg if keep_audio else None, a.sample_rate))
    progress(f"EQ data: {len(items)} vocal excerpts of {len({i.song for i in items})} songs, "
             f"{len({i.singer for i in items})} singers")
    if len({i.singer for i in items}) < 2:
        raise ModelError("the corrective-EQ model needs vocals of at least 2 singers")
    return items


def _ltas(frames: np.ndarray) -> np.ndarray:
    m = _band_matrix_cached(_N, _SR)
    b = 10 * np.log10(frames.mean(axis=0) @ m + 1e-20)
    return b - b.mean()


def _singer_folds(items: list[VocalItem], n_folds: int, seed: int) -> list[np.ndarray]:
    singers = sorted({i.singer for i in items})
    order = np.random.default_rng(seed).permutation(len(singers))
    k = min(n_folds, len(singers))
    fold_of = {singers[j]: n % k for n, j in enumerate(order)}
    labels = np.array([fold_of[i.singer] for i in items])
    return [np.flatnonzero(labels == f) for f in range(k)]


GATE_GRID_P = (0.05, 0.1, 0.2, 0.3, 0.5, 1.01)
GATE_GRID_RMS = (0.5, 1.0, 1.5, 2.0, 3.0)
INFLATE_GRID = (2.5, 4.0, 6.0, 10.0)


def _band_domain_trials(items, train_idx, test_idx, bank, inflate, rng, per_item):
    """(before, raw-after, p_clean, curve-rms) for EQ'd held-out items and (curve-rms,
    p_clean, raw-harm) for clean ones, in the band domain (no rendering)."""
    feats = np.array([features_from_frames(items[i].frames) for i in train_idx])
    m = fit_eq_model(feats, bank, inflate=inflate)
    damaged, clean = [], []
    for i in test_idx:
        it = items[i]
        base = _ltas(it.frames)
        xc = features_from_frames(it.frames)
        cur, pc = m.posterior(xc)
        c = -cur[0]
        clean.append((float(_rms_db(c)), float(pc[0]),
                      log_spectral_distance(c, np.zeros_like(c))))
        for _ in range(per_item):
            bands = random_eq(rng)
            fr = it.frames * _response_power(bands)[None, :]
            obs = _ltas(fr)
            cur, pc = m.posterior(features_from_frames(fr))
            c = -cur[0]
            damaged.append((log_spectral_distance(obs, base),
                            log_spectral_distance(obs + c, base), float(pc[0]),
                            float(_rms_db(c))))
    return np.array(damaged), np.array(clean)


def choose_gate(items: list[VocalItem], bank: np.ndarray, *, seed: int = 0, n_folds: int = 5,
                per_item: int = 4, harm_budget_db: float = HARM_BUDGET_DB,
                progress: Progress = _quiet) -> dict:
    """Covariance inflation and gate by cross-validation over singers.

    For each inflation, every fold's singers are held out in turn; on them, random EQs
    are applied in the band domain and corrected. The gate ``(p_clean, min_rms)`` with
    the largest fraction of damage removed whose mean distance added to the held-out
    clean vocals is at most ``harm_budget_db`` wins.
    """
    rng = np.random.default_rng(seed)
    best = None
    table = []
    folds = _singer_folds(items, n_folds, seed)
    for inflate in INFLATE_GRID:
        dam, cln = [], []
        for te in folds:
            tr = np.setdiff1d(np.arange(len(items)), te)
            d, c = _band_domain_trials(items, tr, te, bank, inflate, rng, per_item)
            dam.append(d)
            cln.append(c)
        d, c = np.concatenate(dam), np.concatenate(cln)
        for gp in GATE_GRID_P:
            for gr in GATE_GRID_RMS:
                on = _gate_open(d[:, 2], d[:, 3], gp, gr)
                after = np.where(on, d[:, 1], d[:, 0])
                removed = 1.0 - after.mean() / d[:, 0].mean()
                on_c = _gate_open(c[:, 1], c[:, 0], gp, gr)
                harm = float(np.where(on_c, c[:, 2], 0.0).mean())
                row = {"inflate": inflate, "gate_p_clean": gp, "gate_min_rms_db": gr,
                       "fraction_removed": round(float(removed), 4),
                       "clean_lsd_added_db": round(harm, 4),
                       "clean_touched": round(float(on_c.mean()), 4)}
                table.append(row)
                if harm <= harm_budget_db and (best is None or removed > best[0]):
                    best = (removed, row)
        progress(f"EQ gate search: inflation {inflate:g} done")
    if best is None:  # nothing within the budget: never correct
        chosen = {"inflate": INFLATE_GRID[-1], "gate_p_clean": 0.0, "gate_min_rms_db": 99.0,
                  "fraction_removed": 0.0, "clean_lsd_added_db": 0.0, "clean_touched": 0.0}
    else:
        chosen = best[1]
    return {"chosen": chosen, "table": table, "n_folds": len(folds),
            "harm_budget_db": harm_budget_db}


def train_eq(folders: list[str | Path], out: str | Path | None = None, *, seed: int = 0,
             items: list[VocalItem] | None = None, bank: np.ndarray | None = None,
             progress: Progress = _quiet) -> tuple[EqModel, dict]:
    """Fit the corrective-EQ model on every vocal under ``folders``; write it to ``out``.

    Deterministic for a given ``seed`` (the bank has its own fixed seed).
    """
    import datetime

    items = items if items is not None else collect_vocals(folders, progress=progress)
    bank = bank if bank is not None else eq_bank()
    cv = choose_gate(items, bank, seed=seed, progress=progress)
    ch = cv["chosen"]
    feats = np.array([features_from_frames(i.frames) for i in items])
    model = fit_eq_model(feats, bank, inflate=ch["inflate"], gate_p_clean=ch["gate_p_clean"],
                         gate_min_rms_db=ch["gate_min_rms_db"])
    meta = {
        "what": "vocalmix corrective-EQ model (posterior mean over a random-EQ bank)",
        "feature_version": EQ_FEATURE_VERSION, "stats": list(STATS),
        "centres_hz": [round(float(c), 2) for c in CENTRES_HZ],
        "bank_size": int(len(bank)), "bank_seed": BANK_SEED, "seed": seed,
        "prior_clean": PRIOR_CLEAN, "date": datetime.date.today().isoformat(),
        "n_excerpts": len(items), "n_songs": len({i.song for i in items}),
        "n_singers": len({i.singer for i in items}),
        "cross_validated": {"protocol": f"{cv['n_folds']}-fold over singers, band domain",
                            **ch, "harm_budget_db": cv["harm_budget_db"]},
        "songs": sorted({i.song for i in items}),
    }
    if out is not None:
        model.save(out, meta, check_x=feats[:5])
    return model, meta


# --- evaluation ----------------------------------------------------------------------------


def evaluate_eq(folders: list[str | Path], *, seed: int = 0, n_folds: int = 5,
                per_item: int = 2, max_tests: int = 400,
                progress: Progress = _quiet) -> dict:
    """Held-out evaluation, rendered: folds over singers; each fold's model (gate chosen
    by an inner cross-validation on its training singers only) corrects held-out vocals
    given a random EQ rendered by pedalboard, the correction fitted to editable bands and
    rendered too.

    Reports the log-spectral distance to the original before and after, the fraction of
    damage removed (overall and by how much damage there was), the distance added to
    held-out vocals that were not EQ'd, how often the gate let a correction through, and
    one example's curves; also how much natural vocals differ (the reason the figures
    are what they are).
    """
    rng = np.random.default_rng(seed + 1)
    items = collect_vocals(folders, keep_audio=True, progress=progress)
    bank = eq_bank()
    folds = _singer_folds(items, n_folds, seed)
    rows, clean_rows, damage = [], [], []
    candidates: list[tuple[float, dict]] = []
    per_fold_tests = max(1, max_tests // max(1, len(folds)))
    for k, te in enumerate(folds):
        tr = np.setdiff1d(np.arange(len(items)), te)
        model, meta = train_eq([], None, seed=seed, items=[items[i] for i in tr], bank=bank)
        progress(f"EQ evaluation fold {k + 1}/{len(folds)}: {len(tr)} training excerpts, "
                 f"{len(te)} held out; gate {meta['cross_validated']['gate_p_clean']}/"
                 f"{meta['cross_validated']['gate_min_rms_db']} dB")
        for n, i in enumerate(te):
            if n * per_item >= per_fold_tests:
                break
            it = items[i]
            v, sr = it.audio, it.sample_rate
            orig = spectrum_db(v, sr)
            c0 = correct(v, sr, model)
            fixed0 = apply_eq(v, sr, c0.bands) if c0.bands else v
            clean_rows.append({"lsd_added_db": log_spectral_distance(orig, spectrum_db(fixed0, sr))
                               if c0.bands else 0.0, "applied": c0.applied,
                               "p_clean": c0.p_clean})
            for _ in range(per_item):
                bands = random_eq(rng)
                damaged = apply_eq(v, sr, bands)
                d_db = spectrum_db(damaged, sr)
                damage.append(d_db - orig)
                c = correct(damaged, sr, model)
                fixed = apply_eq(damaged, sr, c.bands) if c.bands else damaged
                f_db = spectrum_db(fixed, sr)
                before = log_spectral_distance(orig, d_db)
                after = log_spectral_distance(orig, f_db)
                rows.append({"before_db": before, "after_db": after, "applied": c.applied,
                             "p_clean": c.p_clean, "song": it.song, "singer": it.singer})
                if c.applied:
                    candidates.append((before - after, {
                        "original": orig.tolist(), "damaged": d_db.tolist(),
                        "corrected": f_db.tolist(), "eq": bands, "correction": c.bands,
                        "song": it.song, "curve_db": c.curve_db.tolist(),
                        "lsd_before_db": before, "lsd_after_db": after}))
    before = np.array([r["before_db"] for r in rows])
    after = np.array([r["after_db"] for r in rows])
    applied = np.array([r["applied"] for r in rows])
    # the example shown: the corrected test with the median improvement (not the best)
    candidates.sort(key=lambda t: t[0])
    example = candidates[len(candidates) // 2][1] if candidates else None
    by = []
    for lo, hi in ((0.0, 2.0), (2.0, 4.0), (4.0, np.inf)):
        m = (before >= lo) & (before < hi)
        if m.any():
            by.append({"before_from_db": lo, "before_to_db": None if np.isinf(hi) else hi,
                       "n": int(m.sum()), "lsd_before_db": float(before[m].mean()),
                       "lsd_after_db": float(after[m].mean()),
                       "fraction_removed": float(1 - after[m].mean() / before[m].mean())})
    nat = np.array([_ltas(i.frames) for i in items])
    singers = np.array([i.singer for i in items])
    dev = np.concatenate([nat[singers == s] - nat[singers != s].mean(axis=0)
                          for s in np.unique(singers)])
    return {
        "protocol": f"{len(folds)}-fold over singers; EQ and correction rendered with "
                    "pedalboard; gate chosen inside each fold's training singers",
        "n_excerpts": len(items), "n_songs": len({i.song for i in items}),
        "n_singers": len(np.unique(singers)), "n_tests": len(rows),
        "n_clean_tests": len(clean_rows),
        "lsd_before_db": float(before.mean()), "lsd_after_db": float(after.mean()),
        "fraction_removed": float(1 - after.mean() / before.mean()),
        "fraction_applied": float(applied.mean()),
        "fraction_removed_when_applied": float(1 - after[applied].mean()
                                               / before[applied].mean()) if applied.any()
        else None,
        "fraction_made_worse": float(np.mean(after > before + 1e-6)),
        "clean_lsd_added_db": float(np.mean([r["lsd_added_db"] for r in clean_rows])),
        "clean_fraction_touched": float(np.mean([r["applied"] for r in clean_rows])),
        "by_damage": by,
        "natural_rms_deviation_db": float(np.sqrt(np.mean(dev**2))),
        "natural_sd_per_band_db": [round(float(s), 2) for s in dev.std(axis=0)],
        "damage_rms_per_band_db": [round(float(v), 2) for v in
                                   np.sqrt(np.mean(np.square(np.array(damage)), axis=0))],
        "centres_hz": [round(float(c), 1) for c in CENTRES_HZ],
        "tests": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                  for r in rows],
        "example": example,
    }


# --- in the mix: correction first, then masking reduction ----------------------------------

MAX_TOTAL_GAIN_DB = 12.0


def combine_with_masking(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                         correction: Bands, *, max_total_gain_db: float = MAX_TOTAL_GAIN_DB,
                         config=None) -> tuple[Bands, Bands, float, list[str]]:
    """The vocal's EQ for ``--method model``: the learned correction first, then the
    baseline's masking reduction computed on the *corrected* vocal.

    Bounds: the correction's bands are each within +-12 dB (its fit's limit); the masking
    bands keep the baseline's own bounds (at most 4 dB each, 6 dB together); and the two
    together may not exceed ``max_total_gain_db`` of boost or cut at any frequency from
    50 Hz to 16 kHz: where they would, the masking bands are scaled down (the correction
    repairs the vocal, the masking reduction only helps it through the backing), and if
    the correction alone exceeds it, the correction is scaled down too.

    Returns ``(correction, masking, highpass_hz, notes)``, bands as ``(kind, Hz, dB, Q)``.
    """
    from vocalmix.estimators.baseline import BaselineConfig
    from vocalmix.estimators.masking import masking_eq

    c = config or BaselineConfig()
    notes: list[str] = []
    corrected = apply_eq(vocal, sample_rate, correction) if correction else vocal
    masking, hp = masking_eq(corrected, backing, sample_rate, max_bands=c.eq_max_bands,
                             max_gain_db=c.eq_max_gain_db,
                             max_total_gain_db=c.eq_max_total_gain_db,
                             threshold_db=c.eq_masking_threshold_db)
    f = np.geomspace(50.0, min(16000.0, 0.45 * sample_rate), 400)

    def peak(bands: Bands) -> float:
        return float(np.abs(bands_response_db(bands, f, sample_rate)).max()) if bands else 0.0

    def fit_within(fixed: Bands, bands: Bands) -> tuple[Bands, float]:
        """``bands`` scaled by the largest factor that keeps ``fixed + bands`` within the
        bound (by bisection: a biquad's dB response is not proportional to its gain),
        gains rounded toward zero so that rounding cannot push the sum past it."""
        lo, hi = 0.0, 1.0
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if peak(fixed + [(k, fr, g * mid, q) for k, fr, g, q in bands]) <= max_total_gain_db:
                lo = mid
            else:
                hi = mid
        return [(k, fr, float(np.trunc(g * lo * 100) / 100), q) for k, fr, g, q in bands
                if abs(g * lo) >= 0.05], lo

    if peak(correction) > max_total_gain_db:
        correction, s = fit_within([], correction)
        notes.append(f"EQ: correction scaled by {s:.2f} to stay within "
                     f"+-{max_total_gain_db:g} dB")
    if masking and peak(correction + masking) > max_total_gain_db:
        masking, s = fit_within(correction, masking)
        notes.append(f"EQ: masking bands scaled by {s:.2f} so that correction + masking "
                     f"stay within +-{max_total_gain_db:g} dB")
    return correction, masking, float(hp), notes
