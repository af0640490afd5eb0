"""Training and evaluation of the corrective-EQ model (:mod:`vocalmix.estimators.eq`).

Self-generated data
-------------------
Take finished vocals (the professionally mixed vocal stems of
:func:`vocalmix.training.stems.training_songs`: what a vocal should end up like), apply
a random EQ (one to four RBJ peak or shelf bands, +-12 dB, random frequency and Q:
:func:`random_eq`) and keep the exact inverse as the label (the same bands with their
gains negated: :func:`inverse_eq`). If a vocal was boosted at some frequency, the model
must cut there. Training examples are exact in the spectral domain: the active frames'
mean power spectrum times the EQ's power response (:func:`eq_band_curve`; an EQ scales
every frame's bin alike, so their mean's), then banded.

Why a Bayesian estimator and not a regression
----------------------------------------------
Whatever the model, it sees the EQ only through the vocal's spectrum, in which the EQ
adds to the singer's timbre and the engineer's own EQ. A held-out artist's
level-normalised spectrum differs from the other finished vocals' mean by more than the
random EQs' damage, so a regression learns the training songs' timbres rather than the
EQ (a ridge map and an MLP were tried on karaoke takes and did not generalise to new
singers). The estimator instead models finished vocals (a Gaussian,
:func:`fit_eq_model`) and the EQs (the generator itself, as a bank of
:data:`BANK_SIZE` curves with a fixed seed: :func:`eq_bank`) and computes the posterior
mean.

The gate
--------
:func:`choose_gate` picks the covariance inflation and the gate ``(gate_p_clean,
gate_min_rms_db)`` by cross-validation over artists, in the band domain: the gate that
removes the largest fraction of damage while adding at most :data:`HARM_BUDGET_DB` of
distance, on average, to held-out vocals that were not EQ'd. :func:`train_eq` fits the
shipped model with it.

Evaluation (``vocalmix evaluate --eq``, :func:`evaluate_eq`): on held-out artists
(5 folds, repeated over seeds), the log-spectral distance (1/3-octave, 99 Hz-10 kHz,
level-normalised) between the original and the corrected vocal, each random EQ and each
fitted correction rendered with pedalboard, as a fraction of the distance before
correction; and the distance added to held-out vocals that were not EQ'd. The figures,
and why they are what they are, are in ``docs/evaluation/eq_report.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocalmix.core.errors import ModelError
from vocalmix.estimators.eq import (
    ANALYSIS_SR,
    CENTRES_HZ,
    EQ_FEATURE_VERSION,
    FINISHED_PCTS,
    N_BANDS,
    N_FFT,
    PRIOR_CLEAN,
    STATS,
    Bands,
    EqModel,
    apply_eq,
    band_matrix,
    correct,
    curve_rms_db,
    features_from_mean,
    fft_band_matrix,
    frame_spectra,
    passes_gate,
)
from vocalmix.estimators.masking import bands_response_db

BANK_SIZE = 8000
BANK_SEED = 20261201
#: the most distance the correction may add, on average, to vocals that were not EQ'd, dB
HARM_BUDGET_DB = 0.5
#: the share of that budget the gate search spends in the band domain, leaving room for
#: what fitting the curve to bands and rendering add
GATE_BUDGET_SHARE = 1.0
EXCERPT_S = 10.0
#: how many bytes of excerpt audio :func:`collect_vocals` holds for the rendered
#: evaluation; the excerpts past it are cut again from their song, decoded again when
#: used (the same samples), so that a whole MUSDB18-HQ (about 7 GB of excerpts) is
#: evaluated in a bounded memory while the 88 excerpts of 7 s (0.2 GB) are held
HELD_AUDIO_BYTES = 1 << 30
N_FOLDS = 5
EVAL_SEEDS = (0, 1, 2)
Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# --- spectra for evaluation ------------------------------------------------------------


def long_term_spectrum(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum over the vocal's active frames: ``(freqs_hz, power)``."""
    f, p = frame_spectra(x, sample_rate)
    return f, p.mean(axis=0) + 1e-20


def band_db(freqs: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Level-normalised 1/3-octave levels (dB, mean over bands removed)."""
    b = 10 * np.log10(power @ band_matrix(freqs) + 1e-20)
    return b - b.mean(axis=-1, keepdims=True)


def spectrum_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Level-normalised 1/3-octave long-term spectrum of a vocal, dB (:data:`CENTRES_HZ`)."""
    return band_db(*long_term_spectrum(x, sample_rate))


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


def _response_power(bands: Bands) -> np.ndarray:
    """Power response of ``bands`` on the analysis FFT bins (44.1 kHz, 4096 points)."""
    freqs = np.fft.rfftfreq(N_FFT, 1 / ANALYSIS_SR)
    return 10 ** (bands_response_db(bands, freqs, ANALYSIS_SR) / 10)


def eq_band_curve(bands: Bands) -> np.ndarray:
    """What an EQ adds to a flat spectrum's level-normalised 1/3-octave levels, dB
    (:data:`CENTRES_HZ`, at the analysis FFT's resolution)."""
    m = fft_band_matrix(N_FFT, ANALYSIS_SR)
    b = 10 * np.log10((_response_power(bands) @ m) / m.sum(axis=0))
    return b - b.mean()


def eq_bank(n: int = BANK_SIZE, seed: int = BANK_SEED) -> np.ndarray:
    """``n`` random-EQ curves (:func:`random_eq`, :func:`eq_band_curve`), float32 ``(n, 21)``."""
    rng = np.random.default_rng(seed)
    return np.array([eq_band_curve(random_eq(rng)) for _ in range(n)], dtype=np.float32)


def log_spectral_distance(a_db: np.ndarray, b_db: np.ndarray) -> float:
    """RMS difference of two level-normalised 1/3-octave spectra, dB."""
    d = (a_db - a_db.mean()) - (b_db - b_db.mean())
    return float(np.sqrt(np.mean(d**2)))


def fit_eq_model(features: np.ndarray, bank: np.ndarray, *, inflate: float = 1.5,
                 floor_db: float = 0.5, prior_clean: float = PRIOR_CLEAN,
                 gate_p_clean: float = 0.2, gate_min_rms_db: float = 1.0) -> EqModel:
    """The finished-vocal Gaussian from un-EQ'd vocals' features ``(n, 21)``, with their
    percentiles per band (:attr:`EqModel.finished_db`).

    Covariance: the sample covariance times ``inflate`` plus ``floor_db``^2 on the
    diagonal (a new artist differs from the training artists more than they differ among
    themselves; the floor keeps the precision finite with few vocals).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_BANDS * len(STATS) or len(x) < 2:
        raise ModelError(f"need at least 2 vocals' features of {N_BANDS * len(STATS)} values")
    cov = np.cov(x.T) * inflate + floor_db**2 * np.eye(x.shape[1])
    fin = np.percentile(x[:, :N_BANDS], FINISHED_PCTS, axis=0)
    return EqModel(x.mean(axis=0), np.linalg.inv(cov), np.asarray(bank, np.float16),
                   prior_clean, gate_p_clean, gate_min_rms_db, finished_db=fin)


# --- training data -------------------------------------------------------------------------


@dataclass(frozen=True)
class VocalItem:
    """One vocal excerpt for EQ training: the mean power spectrum of its active frames,
    and the artist that splits keep whole.

    The mean is all the training reads of the frames (the model's features and the
    long-term spectrum are both of it, and an EQ scales every frame's bin alike), so an
    excerpt takes 33 KB, not its frames' 3.3 MB (several GB for a whole MUSDB18-HQ)."""

    song: str
    artist: str
    power: np.ndarray  # the active frames' mean power spectrum (4097,) at 44.1 kHz
    audio: np.ndarray | None = None  # the excerpt (for rendered tests), float32 (n, 2)
    sample_rate: int = ANALYSIS_SR
    #: where the excerpt is cut again from when its audio is not held: ``(the song
    #: (training.data.Song), first sample, end sample)``
    source: tuple[Any, int, int] | None = None


def _excerpt_bounds(n_samples: int, sample_rate: int) -> list[tuple[int, int]]:
    """``(start, end)`` samples of the excerpts of a vocal ``n_samples`` long:
    :data:`EXCERPT_S` each, the vocal whole when shorter than one and a half."""
    n = int(EXCERPT_S * sample_rate)
    if n_samples < 1.5 * n:
        return [(0, n_samples)]
    return [(i, min(i + n, n_samples)) for i in range(0, n_samples - n // 2, n)]


class ExcerptAudio:
    """The audio of :class:`VocalItem` excerpts: held, or cut again from their song,
    decoded again (the last song decoded is kept, as a song's excerpts come in turn)."""

    def __init__(self) -> None:
        # the source song decoded last, and its vocal; compared by identity, as two
        # folders may hold songs of one name
        self._song: Any = None
        self._vocal: np.ndarray | None = None

    def __call__(self, item: VocalItem) -> np.ndarray:
        if item.audio is not None:
            return item.audio
        if item.source is None:
            raise ValueError(f"{item.song}: its excerpt's audio was not kept")
        song, start, end = item.source
        if self._song is not song or self._vocal is None:
            from vocalmix.training.data import load_song

            self._vocal = None  # (the last song's freed before the next is decoded)
            self._vocal = load_song(song)[0]
            self._song = song
        return self._vocal[start:end]


def collect_vocals(folders: list[str | Path], *, keep_audio: bool = False,
                   progress: Progress = _quiet) -> list[VocalItem]:
    """The finished vocals under ``folders``: the vocal stem of every professionally
    mixed song (:func:`vocalmix.training.stems.training_songs`: level information, not
    one of MUSDB18's test songs), long ones cut into 10 s excerpts of the same song, each
    with its artist. Karaoke takes and dry vocals are not finished vocals and are left
    out. ``keep_audio``: each excerpt's audio is held too while the excerpts held stay
    within :data:`HELD_AUDIO_BYTES`, and the others say where to cut it again
    (:class:`ExcerptAudio`)."""
    from vocalmix.training.data import load_song
    from vocalmix.training.stems import training_songs

    items: list[VocalItem] = []
    held = 0
    for m in training_songs(folders):
        v, _b, sr = load_song(m.song)
        for start, end in _excerpt_bounds(len(v), sr):
            seg = v[start:end]
            try:
                power = frame_spectra(seg, sr)[1].mean(axis=0)
            except ValueError:
                continue
            keep = keep_audio and held + seg.nbytes <= HELD_AUDIO_BYTES
            held += seg.nbytes if keep else 0
            audio = seg.copy() if keep else None  # (a view would hold the whole vocal)
            items.append(VocalItem(m.song_id, m.artist, power, audio, sr,
                                   (m.song, start, end) if keep_audio else None))
        del v, _b
    progress(f"EQ data: {len(items)} finished vocal excerpts of "
             f"{len({i.song for i in items})} songs by {len({i.artist for i in items})} "
             "artists")
    if len({i.artist for i in items}) < 2:
        raise ModelError("the corrective-EQ model needs the mixed vocals of at least 2 "
                         "artists (MUSDB18-style stems)")
    return items


def _ltas(power: np.ndarray) -> np.ndarray:
    """Band levels (dB) of a mean power spectrum ``(4097,)``."""
    m = fft_band_matrix(N_FFT, ANALYSIS_SR)
    b = 10 * np.log10(power @ m + 1e-20)
    return b - b.mean()


def _artist_folds(items: list[VocalItem], n_folds: int, seed: int) -> list[np.ndarray]:
    from vocalmix.training.stems import artist_folds

    return [np.flatnonzero(m) for m in artist_folds([i.artist for i in items], n_folds, seed)]


GATE_GRID_P = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.01)
GATE_GRID_RMS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
INFLATE_GRID = (1.0, 1.5, 2.0, 3.0, 4.0)


def _band_domain_trials(items, train_idx, test_idx, bank, inflate, rng, per_item):
    """(before, raw-after, p_clean, curve-rms) for EQ'd held-out items and (curve-rms,
    p_clean, raw-harm) for clean ones, in the band domain (no rendering)."""
    feats = np.array([features_from_mean(items[i].power) for i in train_idx])
    m = fit_eq_model(feats, bank, inflate=inflate)
    damaged, clean = [], []
    for i in test_idx:
        it = items[i]
        base = _ltas(it.power)
        xc = features_from_mean(it.power)
        cur, pc = m.posterior(xc)
        c = -cur[0]
        clean.append((float(curve_rms_db(c)), float(pc[0]),
                      log_spectral_distance(c, np.zeros_like(c))))
        for _ in range(per_item):
            bands = random_eq(rng)
            pw = it.power * _response_power(bands)  # (each frame's bins scale alike)
            obs = _ltas(pw)
            cur, pc = m.posterior(features_from_mean(pw))
            c = -cur[0]
            damaged.append((log_spectral_distance(obs, base),
                            log_spectral_distance(obs + c, base), float(pc[0]),
                            float(curve_rms_db(c))))
    return np.array(damaged), np.array(clean)


def choose_gate(items: list[VocalItem], bank: np.ndarray, *, seed: int = 0,
                n_folds: int = N_FOLDS, per_item: int = 4,
                harm_budget_db: float = HARM_BUDGET_DB * GATE_BUDGET_SHARE,
                progress: Progress = _quiet) -> dict:
    """Covariance inflation and gate by cross-validation over artists.

    For each inflation, every fold's artists are held out in turn; on them, random EQs
    are applied in the band domain and corrected. The gate ``(p_clean, min_rms)`` with
    the largest fraction of damage removed whose mean distance added to the held-out
    clean vocals is at most ``harm_budget_db`` wins.
    """
    rng = np.random.default_rng(seed)
    best = None
    table = []
    folds = _artist_folds(items, n_folds, seed)
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
                on = passes_gate(d[:, 2], d[:, 3], gp, gr)
                after = np.where(on, d[:, 1], d[:, 0])
                removed = 1.0 - after.mean() / d[:, 0].mean()
                on_c = passes_gate(c[:, 1], c[:, 0], gp, gr)
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
    """Fit the corrective-EQ model on the finished vocals under ``folders``; write it to
    ``out``. Deterministic for a given ``seed`` (the bank has its own fixed seed)."""
    items = items if items is not None else collect_vocals(folders, progress=progress)
    bank = bank if bank is not None else eq_bank()
    cv = choose_gate(items, bank, seed=seed, progress=progress)
    ch = cv["chosen"]
    feats = np.array([features_from_mean(i.power) for i in items])
    model = fit_eq_model(feats, bank, inflate=ch["inflate"], gate_p_clean=ch["gate_p_clean"],
                         gate_min_rms_db=ch["gate_min_rms_db"])
    meta = {
        "what": "vocalmix corrective-EQ model (posterior mean over a random-EQ bank, "
                "finished vocals as the prior)",
        "feature_version": EQ_FEATURE_VERSION, "stats": list(STATS),
        "centres_hz": [round(float(c), 2) for c in CENTRES_HZ],
        "bank_size": int(len(bank)), "bank_seed": BANK_SEED, "seed": seed,
        "prior_clean": PRIOR_CLEAN,
        "n_excerpts": len(items), "n_songs": len({i.song for i in items}),
        "n_artists": len({i.artist for i in items}),
        "finished_pcts": list(FINISHED_PCTS),
        "cross_validated": {"protocol": f"{cv['n_folds']}-fold over artists, band domain",
                            **ch, "harm_budget_db": cv["harm_budget_db"]},
        "songs": sorted({i.song for i in items}),
    }
    if out is not None:
        model.save(out, meta, check_x=feats[:5])
    return model, meta


# --- evaluation ----------------------------------------------------------------------------


def wiener_bound(natural_sd_db: np.ndarray, damage_rms_db: np.ndarray) -> float:
    """The fraction of damage a linear-Gaussian estimator could remove if every band were
    independent, each with natural spread ``natural_sd_db`` and damage ``damage_rms_db``
    (per band, dB): ``1 - sqrt(mean(n^2 d^2 / (n^2 + d^2)) / mean(d^2))``. An indication
    of how much the finished vocals' spread leaves to find, not a hard limit (the
    bands' correlations and the EQs' shapes carry a little more)."""
    n2, d2 = np.square(natural_sd_db), np.square(damage_rms_db)
    return float(1.0 - np.sqrt(np.mean(n2 * d2 / (n2 + d2)) / np.mean(d2)))


def evaluate_eq(folders: list[str | Path], *, seeds: tuple[int, ...] = EVAL_SEEDS,
                n_folds: int = N_FOLDS, per_item: int = 2,
                progress: Progress = _quiet, seed: int | None = None) -> dict:
    """Held-out evaluation, rendered: ``n_folds`` folds over artists, repeated for each
    of ``seeds`` (another deal of artists and other random EQs); each fold's model (gate
    chosen by an inner cross-validation on its training artists only) corrects held-out
    vocals given a random EQ rendered by pedalboard, the correction fitted to editable
    bands and rendered too.

    Reports the log-spectral distance to the original before and after, the fraction of
    damage removed (overall, per seed, and by how much damage there was), the distance
    added to held-out vocals that were not EQ'd, how often the gate let a correction
    through, and one example's curves; also how much finished vocals differ from each
    other per band against the damage (the reason the figures are what they are).
    ``seed`` (when given) replaces ``seeds`` by that one seed.
    """
    if seed is not None:
        seeds = (seed,)
    items = collect_vocals(folders, keep_audio=True, progress=progress)
    audio_of = ExcerptAudio()
    bank = eq_bank()
    rows, clean_rows, damage = [], [], []
    candidates: list[tuple[float, dict]] = []
    per_seed = []
    inner: list[float] = []  # each fold's own band-domain cross-validated figure
    for sd in seeds:
        rng = np.random.default_rng(sd + 1)
        folds = _artist_folds(items, n_folds, sd)
        seed_rows = []
        for k, te in enumerate(folds):
            tr = np.setdiff1d(np.arange(len(items)), te)
            model, meta = train_eq([], None, seed=sd, items=[items[i] for i in tr], bank=bank)
            inner.append(float(meta["cross_validated"]["fraction_removed"]))
            progress(f"EQ evaluation seed {sd} fold {k + 1}/{len(folds)}: {len(tr)} training "
                     f"excerpts, {len(te)} held out; inflation "
                     f"{meta['cross_validated']['inflate']}, gate "
                     f"{meta['cross_validated']['gate_p_clean']}/"
                     f"{meta['cross_validated']['gate_min_rms_db']} dB")
            for i in te:
                it = items[i]
                v, sr = audio_of(it), it.sample_rate
                orig = spectrum_db(v, sr)
                c0 = correct(v, sr, model)
                fixed0 = apply_eq(v, sr, c0.bands) if c0.bands else v
                clean_rows.append({
                    "lsd_added_db": log_spectral_distance(orig, spectrum_db(fixed0, sr))
                    if c0.bands else 0.0, "applied": c0.applied, "p_clean": c0.p_clean,
                    "song": it.song, "seed": sd})
                for _ in range(per_item):
                    bands = random_eq(rng)
                    damaged = apply_eq(v, sr, bands)
                    d_db = spectrum_db(damaged, sr)
                    damage.append(d_db - orig)
                    c = correct(damaged, sr, model)
                    fixed = apply_eq(damaged, sr, c.bands) if c.bands else damaged
                    f_db = spectrum_db(fixed, sr)
                    lsd_b = log_spectral_distance(orig, d_db)
                    lsd_a = log_spectral_distance(orig, f_db)
                    row = {"before_db": lsd_b, "after_db": lsd_a, "applied": c.applied,
                           "p_clean": c.p_clean, "song": it.song, "artist": it.artist,
                           "seed": sd}
                    rows.append(row)
                    seed_rows.append(row)
                    if c.applied:
                        candidates.append((lsd_b - lsd_a, {
                            "original": orig.tolist(), "damaged": d_db.tolist(),
                            "corrected": f_db.tolist(), "eq": bands, "correction": c.bands,
                            "song": it.song, "curve_db": c.curve_db.tolist(),
                            "lsd_before_db": lsd_b, "lsd_after_db": lsd_a}))
        b = np.array([r["before_db"] for r in seed_rows])
        a = np.array([r["after_db"] for r in seed_rows])
        per_seed.append({"seed": sd, "n_tests": len(seed_rows),
                         "fraction_removed": float(1 - a.mean() / b.mean())})
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
    nat = np.array([_ltas(i.power) for i in items])
    artists = np.array([i.artist for i in items])
    dev = np.concatenate([nat[artists == s] - nat[artists != s].mean(axis=0)
                          for s in np.unique(artists)])
    nat_sd = dev.std(axis=0)
    dmg = np.sqrt(np.mean(np.square(np.array(damage)), axis=0))
    fr = np.array([r["fraction_removed"] for r in per_seed])
    return {
        "protocol": f"{n_folds}-fold over artists, repeated for seeds "
                    f"{', '.join(map(str, seeds))}; EQ and correction rendered with "
                    "pedalboard; inflation and gate chosen inside each fold's training "
                    "artists; 1/3-octave bands 99 Hz-10 kHz, level-normalised",
        "n_excerpts": len(items), "n_songs": len({i.song for i in items}),
        "n_artists": len(np.unique(artists)), "n_tests": len(rows),
        "n_clean_tests": len(clean_rows), "seeds": list(seeds),
        "lsd_before_db": float(before.mean()), "lsd_after_db": float(after.mean()),
        "fraction_removed": float(1 - after.mean() / before.mean()),
        "fraction_removed_per_seed": per_seed,
        "fraction_removed_seed_sd": float(fr.std()) if len(fr) > 1 else 0.0,
        "band_domain_fraction_removed": float(np.mean(inner)),
        "fraction_applied": float(applied.mean()),
        "fraction_removed_when_applied": float(1 - after[applied].mean()
                                               / before[applied].mean()) if applied.any()
        else None,
        "fraction_made_worse": float(np.mean(after > before + 1e-6)),
        "clean_lsd_added_db": float(np.mean([r["lsd_added_db"] for r in clean_rows])),
        "clean_fraction_touched": float(np.mean([r["applied"] for r in clean_rows])),
        "by_damage": by,
        "natural_rms_deviation_db": float(np.sqrt(np.mean(dev**2))),
        "natural_sd_per_band_db": [round(float(v), 2) for v in nat_sd],
        "damage_rms_per_band_db": [round(float(v), 2) for v in dmg],
        "damage_rms_db": float(np.sqrt(np.mean(np.square(np.array(damage))))),
        "wiener_bound": wiener_bound(nat_sd, dmg),
        "centres_hz": [round(float(c), 1) for c in CENTRES_HZ],
        "tests": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                  for r in rows],
        "example": example,
    }


__all__ = [
    "BANK_SEED",
    "BANK_SIZE",
    "VocalItem",
    "choose_gate",
    "collect_vocals",
    "eq_band_curve",
    "eq_bank",
    "evaluate_eq",
    "fit_eq_model",
    "inverse_eq",
    "log_spectral_distance",
    "random_eq",
    "spectrum_db",
    "train_eq",
    "wiener_bound",
]
