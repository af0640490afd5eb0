"""The corrective EQ's inference: what EQ a vocal carries, and the bands that undo it.

The model
---------
A vocal's spectrum is the singer's timbre and the engineer's choices plus whatever EQ
was applied, and only what finished vocals usually look like can tell them apart. So the
estimator models both parts explicitly, and computes the optimal answer under that model
rather than regressing:

* **finished vocals**: a Gaussian over the features of professionally mixed vocal stems
  (mean and precision learned from them, the covariance inflated and floored so that a
  new artist is not "impossible");
* **EQs**: a bank of random-EQ curves (one to four peak or shelf bands, +-12 dB, drawn
  with a fixed seed by :func:`vocalmix.training.eq.random_eq`), plus "no EQ" with prior
  probability :data:`PRIOR_CLEAN`.

The corrective curve is minus the posterior mean of the applied EQ given the features,
computed exactly over the bank (importance weights ``exp(-0.5 Mahalanobis^2)``,
:meth:`EqModel.posterior`); the posterior probability of "no EQ" comes with it. A
correction is applied only when that probability is under ``gate_p_clean`` and the
curve's RMS reaches ``gate_min_rms_db`` (:meth:`EqModel.gate_open`); training chooses
both so that vocals that were not EQ'd are left alone.

Features
--------
On a fixed 1/3-octave grid (:data:`CENTRES_HZ`, 99 Hz-10 kHz, 21 bands), from
8192-point frames (hop 4096) at 44.1 kHz of the vocal's active part (within 30 dB of
its loudest frame): ``ltas``, the long-term average power spectrum, level-normalised
(mean over bands removed), dB. An EQ adds its band-averaged curve to it. (A second
statistic, the per-band 10th percentile of the frames' relative levels, was tried on the
finished vocals and removed less damage.)

In the mix
----------
The curve is fitted to at most six editable parametric bands (:func:`curve_to_bands`,
:func:`vocalmix.estimators.masking.fit_parametric_bands`), tagged ``source:
"correction"``; :func:`combine_with_masking` then computes the baseline's masking
reduction on the corrected vocal, within a joint bound, and never pushes a band past
what finished vocals and engineers' EQs make usual (:func:`masking_limits`).

Training (the bank, the Gaussian, the gate's cross-validation over artists) is
:mod:`vocalmix.training.eq`; how well it does on held-out artists, and why, is
``docs/evaluation/eq_report.md``. Files: :data:`FILES` (``assets/eq_model.npz`` and
``assets/eq_model.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from vocalmix.core.dsp import max_filter_hz
from vocalmix.estimators.masking import bands_response_db, fit_parametric_bands
from vocalmix.estimators.weights import ModelFiles

EQ_FEATURE_VERSION = 3
CENTRES_HZ = 1000.0 * 2.0 ** (np.arange(-10, 11) / 3.0)  # 99 Hz .. 10.1 kHz, 21 bands
STATS = ("ltas",)
#: percentiles of finished vocals' spectra the model keeps (:attr:`EqModel.finished_db`)
FINISHED_PCTS = (10, 25, 50, 75, 90)
N_BANDS = len(CENTRES_HZ)
PRIOR_CLEAN = 0.5
FILES = ModelFiles("corrective-EQ model", "eq_model.npz", "eq_model.json", "eq")
ANALYSIS_SR = 44100  # Hz, the rate of the analysis frames
N_FFT = 8192  # points per analysis frame (hop: half of it)
Bands = list[tuple[str, float, float, float]]


# --- spectra and features ---------------------------------------------------------------


def band_matrix(freqs: np.ndarray) -> np.ndarray:
    """``(bins, 21)``: 1 where an FFT bin falls in a 1/3-octave band of :data:`CENTRES_HZ`."""
    lo, hi = CENTRES_HZ * 2 ** (-1 / 6), CENTRES_HZ * 2 ** (1 / 6)
    return ((freqs[:, None] >= lo[None, :]) & (freqs[:, None] < hi[None, :])).astype(float)


@lru_cache(maxsize=4)
def fft_band_matrix(n_fft: int, sample_rate: int) -> np.ndarray:
    """:func:`band_matrix` of an FFT grid, built once (read-only)."""
    m = band_matrix(np.fft.rfftfreq(n_fft, 1 / sample_rate))
    m.setflags(write=False)
    return m


def frame_spectra(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Power spectra of the vocal's active frames: ``(freqs_hz, power (frames, bins))``.

    Mono downmix at 44.1 kHz (soxr), Hann-windowed 8192-point frames with 50 % overlap;
    a frame is active when its energy is within 30 dB of the loudest frame's.
    """
    from vocalmix.core.dsp import frame_power, mono_at

    y = mono_at(x, sample_rate, ANALYSIS_SR, quality="HQ")
    n = len(y) // (N_FFT // 2) - 1
    if n < 1:
        raise ValueError("vocal too short for a spectrum (needs 0.3 s at least)")
    p = frame_power(y, N_FFT, N_FFT // 2, n_frames=n)
    e = p.sum(axis=1)
    if not e.max() > 0:
        raise ValueError("vocal is silent")
    active = e > e.max() * 10 ** (-30 / 10)
    return np.fft.rfftfreq(N_FFT, 1 / ANALYSIS_SR), p[active]


#: frames transformed at a time by :func:`mean_active_spectrum`
FRAME_CHUNK = 256


def mean_active_spectrum(x: np.ndarray, sample_rate: int, *,
                         downmix: np.ndarray | None = None) -> np.ndarray:
    """``frame_spectra(x, sample_rate)[1].mean(axis=0)`` (the mean power spectrum of the
    active frames, ``(4097,)``) without holding every frame's spectrum
    (:func:`vocalmix.core.dsp.active_mean_power`, :data:`FRAME_CHUNK` frames at a time:
    the same mean up to the summation order, about 1e-16 relative). A 3-minute vocal's
    spectra took about 250 MB at once. ``downmix``: ``mono(x)``, made already, for ``x``
    at :data:`ANALYSIS_SR`."""
    from vocalmix.core.dsp import active_mean_power, mono_at

    y = (downmix if downmix is not None and sample_rate == ANALYSIS_SR
         else mono_at(x, sample_rate, ANALYSIS_SR, quality="HQ"))
    hop = N_FFT // 2
    n = len(y) // hop - 1
    if n < 1:
        raise ValueError("vocal too short for a spectrum (needs 0.3 s at least)")
    means = active_mean_power((y,), N_FFT, hop, n, FRAME_CHUNK)
    if means is None:
        raise ValueError("vocal is silent")
    return means[0]


def features_from_mean(power: np.ndarray) -> np.ndarray:
    """The model's input from the active frames' mean power spectrum ``(4097,)`` at
    44.1 kHz: ``ltas`` (see the module docstring), 21 values in dB."""
    m = fft_band_matrix(N_FFT, ANALYSIS_SR)
    ltas = 10 * np.log10(power @ m + 1e-20)
    return ltas - ltas.mean()


def features_from_frames(frames: np.ndarray) -> np.ndarray:
    """The model's input from frame power spectra ``(frames, 4097)`` at 44.1 kHz (see
    :func:`features_from_mean`)."""
    return features_from_mean(frames.mean(axis=0))


#: a vocal's content ends where its spectrum (the active frames' mean, each bin's
#: greatest power within 1/6 octave) stays this far below its loudest bin, dB: a take
#: recorded at 16 kHz (or low-passed) and resampled measures -140 to -160 dB above its
#: old Nyquist frequency, while the top of the real vocals of the shared data (at 19
#: kHz, an MP3's 16 kHz low-pass aside) stays within -70 dB
BAND_LIMIT_DB = -100.0


def band_limit_hz(power: np.ndarray) -> float:
    """Where a vocal's content ends, Hz, from the active frames' mean power spectrum at
    :data:`ANALYSIS_SR` (:func:`mean_active_spectrum`): the highest frequency whose
    1/6-octave neighbourhood reaches :data:`BAND_LIMIT_DB` re the loudest bin (the
    analysis Nyquist frequency for a full-band vocal)."""
    f = np.fft.rfftfreq(N_FFT, 1 / ANALYSIS_SR)
    p = np.asarray(power, dtype=np.float64)
    top = float(p.max())
    if not top > 0.0:
        return 0.0
    loud = np.flatnonzero(p >= top * 10.0 ** (BAND_LIMIT_DB / 10.0))
    # a bin's 1/6-octave neighbourhood reaches the level when a loud bin lies within it
    return float(min(f[-1], f[loud[-1]] * 2.0 ** (1 / 12)))


def observed_bands(limit_hz: float) -> np.ndarray:
    """Which bands of :data:`CENTRES_HZ` a vocal whose content ends at ``limit_hz`` (Hz)
    fills: those whose upper edge lies below it, ``(21,)`` bool."""
    return np.asarray(CENTRES_HZ * 2 ** (1 / 6) <= limit_hz)


def vocal_features(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The model's input for a vocal (see :func:`features_from_frames`), computed from
    :func:`mean_active_spectrum`."""
    return features_from_mean(mean_active_spectrum(x, sample_rate))


def apply_eq(x: np.ndarray, sample_rate: int, bands: Bands) -> np.ndarray:
    """``x`` through EQ bands ``(kind, Hz, dB, Q)``, rendered by
    :func:`vocalmix.core.dsp.eq_stage` (the filters MixParams renders)."""
    from vocalmix.core.dsp import eq_stage
    from vocalmix.core.params import EqBand, HighPass, clip

    eb = tuple(EqBand(kind=k, freq_hz=clip(EqBand, "freq_hz", f),
                      gain_db=clip(EqBand, "gain_db", g), q=clip(EqBand, "q", q))
               for k, f, g, q in bands)
    return eq_stage(np.asarray(x, np.float32), sample_rate, HighPass(enabled=False), eb)


def apply_eq_mono(x: np.ndarray, sample_rate: int, bands: Bands) -> np.ndarray:
    """:func:`vocalmix.core.dsp.mono` of :func:`apply_eq` ``(x, sample_rate, bands)``: the
    same float32 downmix, filtered a block at a time (:func:`vocalmix.core.dsp.
    eq_stage_mono`) without the whole filtered stereo signal (60 MB for 3 minutes)."""
    from vocalmix.core.dsp import eq_stage_mono
    from vocalmix.core.params import EqBand, HighPass, clip

    eb = tuple(EqBand(kind=k, freq_hz=clip(EqBand, "freq_hz", f),
                      gain_db=clip(EqBand, "gain_db", g), q=clip(EqBand, "q", q))
               for k, f, g, q in bands)
    return eq_stage_mono(np.asarray(x, np.float32), sample_rate, HighPass(enabled=False), eb)



# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EqModel:
    """Posterior-mean corrective EQ (see the module docstring); numpy only.

    Attributes:
        mean: mean features of finished vocals, ``(21,)`` dB.
        precision: inverse covariance of finished vocals' features, ``(21, 21)`` 1/dB^2.
        bank: random-EQ curves, ``(K, 21)`` dB, float16 (the EQ adds each to the
            features).
        prior_clean: prior probability that a vocal carries no EQ.
        gate_p_clean: apply a correction only when P(no EQ | vocal) is below this.
        gate_min_rms_db: ... and when the corrective curve's RMS is at least this, dB.
        version: :data:`EQ_FEATURE_VERSION` the model was trained for.
        finished_db: percentiles (:data:`FINISHED_PCTS`) over the training vocals of
            their level-normalised 1/3-octave spectra, ``(5, 21)`` dB: what finished
            vocals look like, band by band (the masking EQ's limits); ``None`` for a
            model built without them (no limits from it).
        meta: the metadata training wrote (empty for a model not loaded from files).
    """

    mean: np.ndarray
    precision: np.ndarray
    bank: np.ndarray
    prior_clean: float = PRIOR_CLEAN
    gate_p_clean: float = 0.2
    gate_min_rms_db: float = 1.0
    version: int = EQ_FEATURE_VERSION
    finished_db: np.ndarray | None = field(default=None, compare=False, repr=False)
    meta: dict = field(default_factory=dict, compare=False, repr=False)
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
        """Posterior mean of the applied EQ curve ``(n, 21)`` (dB on :data:`CENTRES_HZ`)
        and the posterior probability of "no EQ" ``(n,)``, for feature rows ``(n, 21)``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        atoms, ts, quad, log_prior = self._prepared()
        r = x - self.mean
        # Mahalanobis^2 of (r - atom) = r'Pr - 2 r'P atom + atom'P atom; r'Pr is common
        log_w = log_prior[None, :] - 0.5 * (quad[None, :] - 2.0 * r @ ts.T)
        log_w -= log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w /= w.sum(axis=1, keepdims=True)
        return w @ atoms, w[:, 0]

    def posterior_observed(self, x: np.ndarray, observed: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`posterior` for vocals that fill only the ``observed`` bands (a
        band-limited take: recorded at 16 kHz, or low-passed): the features' level
        normalisation is redone over those bands, and the likelihood is that of their
        values alone, each band's level relative to their mean (the Gaussian of finished
        vocals marginalised over the empty bands and that mean's offset: the covariance
        ``A C A'`` of the centred observed bands, inverted as a pseudo-inverse, ``A``
        centring and ``C`` the inverse of :attr:`precision`). The applied EQ's
        posterior mean is still given on all 21 bands. With every band observed this is
        :meth:`posterior`."""
        obs = np.asarray(observed, dtype=bool)
        if obs.all():
            return self.posterior(x)
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        idx = np.flatnonzero(obs)
        if self.precision.shape != (N_BANDS, N_BANDS):  # (one statistic per band only)
            raise ValueError("band-limited inference needs one feature per band")
        if idx.size < 3:
            raise ValueError("too few bands observed to judge a vocal's EQ")
        atoms, _ts, _quad, log_prior = self._prepared()
        centre = np.eye(idx.size) - 1.0 / idx.size
        cov = np.linalg.inv(self.precision)[np.ix_(idx, idx)]
        prec = np.linalg.pinv(centre @ cov @ centre, hermitian=True)
        r = (x[:, idx] - self.mean[idx]) @ centre  # (centre is symmetric)
        a = atoms[:, idx] @ centre
        ts = a @ prec
        quad = np.einsum("ij,ij->i", ts, a)
        log_w = log_prior[None, :] - 0.5 * (quad[None, :] - 2.0 * r @ ts.T)
        log_w -= log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w /= w.sum(axis=1, keepdims=True)
        return w @ atoms, w[:, 0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Corrective curves ``(n, 21)``, dB: minus the posterior mean of the applied EQ."""
        return -self.posterior(x)[0]

    def gate_open(self, curve: np.ndarray, p_clean: np.ndarray) -> np.ndarray:
        """Whether the gate lets each corrective curve through (:func:`passes_gate`)."""
        return passes_gate(p_clean, curve_rms_db(curve), self.gate_p_clean,
                           self.gate_min_rms_db)

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
        if self.finished_db is not None:
            arrays["finished_db"] = np.asarray(self.finished_db, dtype=np.float64)
            arrays["finished_pcts"] = np.array(FINISHED_PCTS)
        if check_x is not None:
            arrays["check_x"] = np.asarray(check_x, dtype=np.float64)
            arrays["check_y"] = self.predict(check_x)
        FILES.save(folder, arrays, meta, compressed=True)

    @staticmethod
    def load(folder: str | Path | None = None) -> EqModel:
        """Load from ``folder`` (default: the weights shipped in the package).

        Raises :class:`~vocalmix.core.errors.ModelError` when missing, unreadable,
        incomplete or stale (another feature version or grid).
        """
        d, meta = FILES.load(folder)
        try:
            version = int(d["version"])
            same_grid = d["centres_hz"].shape == CENTRES_HZ.shape and bool(
                np.allclose(d["centres_hz"], CENTRES_HZ))
            same_stats = tuple(str(s) for s in d["stats"]) == STATS
            fin = d["finished_db"] if "finished_db" in d else None
            if fin is not None and (fin.shape != (len(FINISHED_PCTS), N_BANDS) or tuple(
                    int(v) for v in d["finished_pcts"]) != FINISHED_PCTS):
                raise ValueError("finished_db has another shape or other percentiles")
            m = EqModel(d["mean"], d["precision"], d["bank"], float(d["prior_clean"]),
                        float(d["gate_p_clean"]), float(d["gate_min_rms_db"]), version, fin,
                        meta)
        except (KeyError, ValueError, TypeError) as e:
            raise FILES.incomplete(folder, e) from None
        if version != EQ_FEATURE_VERSION or not same_grid or not same_stats:
            raise FILES.stale(folder, f"feature version {version}, this vocalmix computes "
                                      f"{EQ_FEATURE_VERSION}")
        return m


def curve_rms_db(curve: np.ndarray) -> np.ndarray:
    """RMS over bands of a curve (or of each row), its mean removed, dB."""
    c = np.asarray(curve, dtype=np.float64)
    return np.sqrt(np.mean((c - c.mean(axis=-1, keepdims=True)) ** 2, axis=-1))


def passes_gate(p_clean, rms_db, gate_p_clean: float, gate_min_rms_db: float):
    """The gate: a correction passes when P(no EQ) is under ``gate_p_clean`` and the
    curve's RMS is at least ``gate_min_rms_db`` (elementwise)."""
    return (np.asarray(p_clean) < gate_p_clean) & (np.asarray(rms_db) >= gate_min_rms_db)


@lru_cache(maxsize=1)
def shipped_model() -> EqModel:
    """The corrective-EQ model shipped with the package, loaded once;
    :class:`~vocalmix.core.errors.ModelError` when missing or stale."""
    return EqModel.load()


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
    # only where a filter at this rate can act (a 16 kHz mix has no 10 kHz to fit)
    keep = fine <= max_filter_hz(sample_rate)
    fine, target = fine[keep], target[keep]
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
        power: the vocal's mean active power spectrum it was judged on
            (:func:`mean_active_spectrum`), or ``None``.
    """

    bands: Bands
    curve_db: np.ndarray
    p_clean: float
    applied: bool
    power: np.ndarray | None = None


def correct(vocal: np.ndarray, sample_rate: int, model: EqModel | None = None, *,
            max_bands: int = 6, max_gain_db: float = 12.0,
            downmix: np.ndarray | None = None) -> Correction:
    """Predict a vocal's corrective EQ and fit it to editable bands (numpy only).
    ``downmix``: the vocal's :func:`~vocalmix.core.dsp.mono`, made already."""
    m = model or shipped_model()
    power = mean_active_spectrum(vocal, sample_rate, downmix=downmix)
    observed = observed_bands(band_limit_hz(power))
    if observed.sum() < 3:  # (nothing but the lowest bands: nothing to judge it by)
        return Correction([], np.zeros(N_BANDS), 1.0, False, power)
    applied_eq, p_clean = m.posterior_observed(features_from_mean(power), observed)
    raw, p = -applied_eq[0], float(p_clean[0])
    if not observed.all():
        # above where the vocal's content ends there is nothing to correct: the curve is
        # held at its last observed value, so that no band boosts an empty range
        raw[~observed] = raw[np.flatnonzero(observed)[-1]]
    applied = bool(m.gate_open(raw, np.asarray(p))) and bool(np.any(raw != 0.0))
    bands = curve_to_bands(raw, max_bands=max_bands, max_gain_db=max_gain_db,
                           sample_rate=sample_rate) if applied else []
    return Correction(bands, raw, p, applied and bool(bands), power)


# --- in the mix: correction first, then masking reduction ----------------------------------

MAX_TOTAL_GAIN_DB = 12.0
#: the masking EQ may lift a band of the corrected vocal up to this percentile of finished
#: vocals' level there, and not at all where the vocal lies under the lower one
MASKING_CEILING_PCT, MASKING_FLOOR_PCT = 75, 10


@dataclass(frozen=True)
class MaskingLimits:
    """How far the masking EQ may lift each band of :data:`CENTRES_HZ` (dB, >= 0), and why.

    Attributes:
        allowed_db: the most the masking bands may add at each centre.
        level_db: the corrected vocal's level-normalised 1/3-octave spectrum, dB.
        reasons: per band, ``"ok"``, ``"above"`` (already at or over the finished vocals'
            upper quartile there), ``"rolled off"`` (under their 10th percentile: an
            engineer's roll-off, or no content, which a boost would fight) or
            ``"engineers"`` (capped by how far engineers move that band).
    """

    allowed_db: np.ndarray
    level_db: np.ndarray
    reasons: tuple[str, ...]


def masking_limits(corrected: np.ndarray, sample_rate: int, model: EqModel,
                   engineers_shape_db: dict[str, np.ndarray] | None = None,
                   max_gain_db: float = 4.0, *, power: np.ndarray | None = None
                   ) -> MaskingLimits:
    """The masking EQ's ceiling per band for a corrected vocal (see :class:`MaskingLimits`).

    At each 1/3-octave centre the vocal's level-normalised level ``v`` is compared with
    finished vocals' (``model.finished_db``): under their :data:`MASKING_FLOOR_PCT` th
    percentile no lift is allowed (the band is deliberately rolled off, or empty);
    otherwise up to their :data:`MASKING_CEILING_PCT` th percentile minus ``v``, so the
    lift never makes the band louder than three finished vocals in four. With
    ``engineers_shape_db`` (the DiffVox EQ shape percentiles on the same grid,
    :class:`vocalmix.estimators.vocalprior.EngineersPrior`), the lift is also at most the
    engineers' p95 move there minus their median move (a bigger lift is a move few
    engineers make). All capped at ``max_gain_db``. ``power``: the corrected vocal's
    :func:`mean_active_spectrum` when it is known already.
    """
    if power is None:
        power = mean_active_spectrum(corrected, sample_rate)
    level = features_from_mean(power)
    allowed = np.full(N_BANDS, float(max_gain_db))
    why = ["ok"] * N_BANDS
    if model.finished_db is not None:
        pct = dict(zip(FINISHED_PCTS, np.asarray(model.finished_db), strict=True))
        room = pct[MASKING_CEILING_PCT] - level
        for b in range(N_BANDS):
            if level[b] < pct[MASKING_FLOOR_PCT][b]:
                allowed[b], why[b] = 0.0, "rolled off"
            elif room[b] < allowed[b]:
                allowed[b], why[b] = max(0.0, float(room[b])), "above"
    if engineers_shape_db is not None:
        move = np.asarray(engineers_shape_db["p95"]) - np.asarray(engineers_shape_db["p50"])
        for b in range(N_BANDS):
            if move[b] < allowed[b]:
                allowed[b], why[b] = max(0.0, float(move[b])), "engineers"
    return MaskingLimits(allowed, level, tuple(why))


def limit_masking_bands(bands: Bands, limits: MaskingLimits, sample_rate: int = 44100
                        ) -> tuple[Bands, list[str]]:
    """Each masking band scaled down (bisection on its gain, as a biquad's dB response is
    not proportional to it) until its response at every centre where it adds 0.25 dB or
    more stays within ``limits.allowed_db``; bands left under 0.5 dB are dropped. Returns
    the bands and a note per band that was held back."""
    out: Bands = []
    notes: list[str] = []
    def over(kind: str, f: float, gain: float, q: float) -> bool:
        r = bands_response_db([(kind, f, gain, q)], CENTRES_HZ, sample_rate)
        return bool(np.any((r >= 0.25) & (r > limits.allowed_db + 1e-6)))

    for k, f, g, q in bands:

        if not over(k, f, g, q):
            out.append((k, f, g, q))
            continue
        lo, hi = 0.0, 1.0
        for _ in range(25):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if not over(k, f, g * mid, q) else (lo, mid)
        g2 = float(np.trunc(g * lo * 100) / 100)
        r = bands_response_db([(k, f, g, q)], CENTRES_HZ, sample_rate)
        worst = int(np.argmax(np.where(r >= 0.25, r - limits.allowed_db, -np.inf)))
        why = {"above": "the vocal is already as loud there as most finished vocals",
               "rolled off": "the vocal is rolled off there, as an engineer would leave it",
               "engineers": "engineers rarely lift a vocal more there",
               "ok": "the limit"}[limits.reasons[worst]]
        notes.append(f"EQ: masking boost at {f:.0f} Hz held to {max(g2, 0.0):+.1f} dB "
                     f"(was {g:+.1f}): {why} ({CENTRES_HZ[worst]:.0f} Hz band)")
        if g2 >= 0.5:
            out.append((k, f, g2, q))
    return out, notes


def combine_with_masking(vocal: np.ndarray, backing: np.ndarray, sample_rate: int,
                         correction: Bands, *, max_total_gain_db: float = MAX_TOTAL_GAIN_DB,
                         config=None, model: EqModel | None = None,
                         engineers_shape_db: dict[str, np.ndarray] | None = None,
                         vocal_power: np.ndarray | None = None,
                         downmix: np.ndarray | None = None
                         ) -> tuple[Bands, Bands, float, list[str]]:
    """The vocal's EQ for ``--method model``: the learned correction first, then the
    baseline's masking reduction computed on the *corrected* vocal.

    Bounds: the correction's bands are each within +-12 dB (its fit's limit); the masking
    bands keep the baseline's own bounds (at most 4 dB each, 6 dB together) and, given
    ``model`` (its finished vocals' spectra) and/or ``engineers_shape_db``, the limits of
    :func:`masking_limits` (never lifting a band past what finished vocals and engineers'
    EQs make usual); and the two together may not exceed ``max_total_gain_db`` of boost
    or cut at any frequency from 50 Hz to 16 kHz: where they would, the masking bands are
    scaled down (the correction repairs the vocal, the masking reduction only helps it
    through the backing), and if the correction alone exceeds it, the correction is
    scaled down too.

    ``vocal_power``: the vocal's :func:`mean_active_spectrum` (:attr:`Correction.power`),
    which is the corrected vocal's when there is no correction (its downmix, the same
    samples): the limits then read it instead of making it again. ``downmix``: the
    vocal's :func:`~vocalmix.core.dsp.mono`, made already (it is the corrected vocal's
    when there is no correction).

    Returns ``(correction, masking, highpass_hz, notes)``, bands as ``(kind, Hz, dB, Q)``.
    """
    from vocalmix.core.dsp import mono
    from vocalmix.estimators.baseline import BaselineConfig
    from vocalmix.estimators.masking import masking_eq

    c = config or BaselineConfig()
    notes: list[str] = []
    # both analyses below read only the corrected vocal's downmix (a mono signal is its
    # own downmix): made once, a block at a time, instead of the filtered stereo signal
    corrected = (apply_eq_mono(vocal, sample_rate, correction) if correction
                 else downmix if downmix is not None else mono(vocal))
    masking, hp = masking_eq(corrected, backing, sample_rate, max_bands=c.eq_max_bands,
                             max_gain_db=c.eq_max_gain_db,
                             max_total_gain_db=c.eq_max_total_gain_db,
                             threshold_db=c.eq_masking_threshold_db)
    if masking and (model is not None or engineers_shape_db is not None):
        limits = masking_limits(corrected, sample_rate, model or EqModel(
            np.zeros(N_BANDS), np.eye(N_BANDS), np.zeros((1, N_BANDS))), engineers_shape_db,
            c.eq_max_gain_db, power=None if correction else vocal_power)
        masking, more = limit_masking_bands(masking, limits, sample_rate)
        notes += more
    f = np.geomspace(50.0, min(16000.0, max_filter_hz(sample_rate)), 400)

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


__all__ = [
    "CENTRES_HZ",
    "FILES",
    "Correction",
    "EqModel",
    "MaskingLimits",
    "limit_masking_bands",
    "masking_limits",
    "apply_eq",
    "apply_eq_mono",
    "combine_with_masking",
    "correct",
    "curve_to_bands",
    "features_from_frames",
    "features_from_mean",
    "mean_active_spectrum",
    "frame_spectra",
    "shipped_model",
    "vocal_features",
]
