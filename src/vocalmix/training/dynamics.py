"""Training and evaluation of the dynamics model (:mod:`vocalmix.estimators.dynamics`).

Data
    The professionally mixed songs (:func:`vocalmix.training.stems.training_songs`, never
    MUSDB18's test songs). Each finished vocal stem is an example as it is (features of
    the stem, target: its own momentary loudness range, so that a finished vocal is
    left alone), and :data:`N_RAW` versions of it made to look like raw takes
    (:func:`simulate_raw`; target: still the finished range). The finished example
    weighs as much as its raw-like versions together (the model should assume neither
    that an input is raw nor that it is finished: in the evaluation below, weighting it
    as one raw-like version gave 1.38 LU of error on raw-like inputs instead of 1.46, but
    changed the momentary range of 61 % of the finished vocals by more than 1 LU, against
    41 %).

Raw takes from finished vocals
    There are no raw takes of these songs, so their compression is undone, roughly: an
    upward expander with the engineers' ballistics (the DiffVox medians converted to
    JUCE time constants: 8.2 ms attack, 753 ms release) and a ratio drawn between 2 and
    5 (DiffVox's interquartile range of compressor ratios is 2.3-4.8) lifts the peaks
    by 2 to 7 dB (DiffVox's presets take about 6 dB off a real vocal while it sings),
    plus slow random gain rides (sd 1.5 dB, a new value every 1.5 s), as a singer's
    distance to the microphone changes. The result's spread is checked against real
    raw takes (MIR-1K's amateur vocals) in the report.

Evaluation (``vocalmix evaluate --dynamics``, :func:`evaluate_dynamics`)
    Folds grouped by artist, repeated over seeds. Each held-out song's finished vocal is
    made raw (new draws), and three methods choose a target for it, which the real
    resolver (:func:`vocalmix.core.resolve.resolve_compressor`, pedalboard's compressor
    with the engineers' ratio and ballistics) then reaches: the baseline's rule (an LRA
    of 14 LU, so in practice no compression), a constant (the training songs' mean
    momentary range, geometric) and the model. The processed vocal's momentary range is
    compared with the human mix's: MAE over tests and over artists. The held-out
    finished vocals themselves go through the model too (how much it changes a vocal
    that needs nothing).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vocalmix.core.errors import ModelError
from vocalmix.estimators.dynamics import (
    DYNAMICS_VERSION,
    FEATURES,
    DynamicsModel,
    features,
    shipped_model,
)

Progress = Callable[[str], None]
N_RAW = 3  # raw-like versions per finished vocal in training
ALPHA_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)  # ridge penalty, in examples' units
N_FOLDS = 5
EVAL_SEEDS = (0, 1, 2)
EXPAND_RATIO = (2.0, 5.0)
EXPAND_LIFT_DB = (2.0, 7.0)
RIDE_SD_DB, RIDE_STEP_S = 1.5, 1.5
#: how many bytes of decoded songs :func:`load_songs` keeps in memory; the songs past it
#: are decoded again each time they are used (the same samples: decoding is exact), so
#: that a whole MUSDB18-HQ trains in a bounded memory (holding every song, the peak grew
#: by 140 MB per 3.4-minute song: about 17 GB for its 100 training songs) while the 88
#: excerpts of 7 s (0.4 GB) are decoded once
HELD_BYTES = 1 << 30


def _quiet(_msg: str) -> None:
    pass


def compressor_base():
    """The compressor the model method starts from: the engineers' median ratio and
    ballistics (:mod:`vocalmix.estimators.vocalprior`), JUCE time constants."""
    from vocalmix.core.params import Compressor, clip
    from vocalmix.estimators.vocalprior import engineers, juce_ms_from_diffvox

    e = engineers()
    return Compressor(ratio=clip(Compressor, "ratio", round(e.comp_ratio.p50, 2)),
                      attack_ms=clip(Compressor, "attack_ms",
                                     round(juce_ms_from_diffvox(e.attack_ms.p50), 1)),
                      release_ms=clip(Compressor, "release_ms",
                                      round(juce_ms_from_diffvox(e.release_ms.p50))))


def simulate_raw(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A finished vocal ``(n, 2)`` made to look like a raw take (module doc): float32,
    peak at -6 dBFS."""
    from vocalmix.core.resolve import compressor_envelope_db

    base = compressor_base()
    ratio = float(np.exp(rng.uniform(*np.log(EXPAND_RATIO))))
    lift = float(rng.uniform(*EXPAND_LIFT_DB))
    env = compressor_envelope_db(np.asarray(x, np.float32), sample_rate, base.attack_ms,
                                 base.release_ms).mean(axis=1)
    active = env > env.max() - 40.0
    thr = float(np.percentile(env[active], 95)) - lift / (ratio - 1.0)
    gain = (ratio - 1.0) * np.maximum(0.0, env - thr)
    n = len(x)
    k = max(2, int(n / sample_rate / RIDE_STEP_S) + 1)
    rides = np.interp(np.arange(n), np.linspace(0, n, k), rng.normal(0.0, RIDE_SD_DB, k))
    y = np.asarray(x, np.float64) * (10.0 ** ((gain + rides) / 20.0))[:, None]
    peak = float(np.abs(y).max())
    return (y / max(peak, 1e-12) * 0.5).astype(np.float32)


@dataclass
class Song:
    """One training song: its finished vocal and backing (:meth:`audio`), its artist and
    its finished vocal's momentary loudness range (LU)."""

    song: str
    artist: str
    genre: str
    sample_rate: int
    human_lu: float  # the finished vocal's momentary loudness range
    #: the stems to decode again when the audio is not held (``training.data.Song``)
    source: Any = field(default=None, repr=False)
    #: ``(vocal, backing)`` float32 ``(n, 2)``, when held in memory
    held: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def audio(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vocal, backing)``: the held arrays, or the song decoded again."""
        if self.held is not None:
            return self.held
        from vocalmix.training.data import load_song

        v, b, _sr = load_song(self.source)
        return v, b


def load_songs(folders: list[str | Path], progress: Progress = _quiet,
               include_test: bool = False) -> list[Song]:
    """The mixed songs under ``folders`` (MUSDB18's test songs only with
    ``include_test``) with their finished vocal's momentary range."""
    from vocalmix.core.measure import momentary_loudness_range
    from vocalmix.training.data import load_song
    from vocalmix.training.stems import mixed_songs

    out = []
    held = 0
    for m in mixed_songs(folders):
        if m.test_split and not include_test:
            continue
        v, b, sr = load_song(m.song)
        keep = held + v.nbytes + b.nbytes <= HELD_BYTES
        held += (v.nbytes + b.nbytes) if keep else 0
        out.append(Song(m.song_id, m.artist, m.genre, sr, momentary_loudness_range(v, sr),
                        source=m.song, held=(v, b) if keep else None))
        del v, b
    progress(f"dynamics: {len(out)} mixed songs by {len({s.artist for s in out})} artists")
    if len({s.artist for s in out}) < 2:
        raise ModelError("the dynamics model needs the mixed songs of at least 2 artists")
    return out


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def examples(songs: list[Song], seed: int = 0, n_raw: int = N_RAW
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, log targets, each row's song index and weight: per song the
    finished vocal (weight ``n_raw``) and ``n_raw`` raw-like versions (weight 1 each);
    deterministic in ``seed``."""
    x, y, idx, w = [], [], [], []
    for i, s in enumerate(songs):
        t = math.log(max(s.human_lu, 0.5))
        vocal, backing = s.audio()
        x.append(features(vocal, backing, s.sample_rate))
        y.append(t)
        idx.append(i)
        w.append(float(max(n_raw, 1)))
        for j in range(n_raw):
            raw = simulate_raw(vocal, s.sample_rate, _rng(seed, i, j))
            x.append(features(raw, backing, s.sample_rate))
            y.append(t)
            idx.append(i)
            w.append(1.0)
    return np.array(x), np.array(y), np.array(idx), np.array(w)


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float,
              weights: np.ndarray | None = None) -> DynamicsModel:
    """Weighted ridge regression on standardised features (the model's form)."""
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (x - mean) / scale
    ym = float(np.average(y, weights=w))
    zw = z * w[:, None]
    coef = np.linalg.solve(zw.T @ z + alpha * np.eye(z.shape[1]), zw.T @ (y - ym))
    return DynamicsModel(mean, scale, x.min(axis=0), x.max(axis=0), coef, ym)


def choose_alpha(x: np.ndarray, y: np.ndarray, artists: np.ndarray, seed: int = 0,
                 weights: np.ndarray | None = None) -> tuple[float, float, list[dict]]:
    """The ridge penalty with the lowest artist-grouped cross-validated log error
    (weighted like the fit); returns (alpha, residual sd of the log errors, table)."""
    from vocalmix.training.stems import artist_folds

    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    folds = artist_folds(artists, N_FOLDS, seed)
    table = []
    best = None
    for a in ALPHA_GRID:
        err = np.zeros(len(y))
        for te in folds:
            m = fit_ridge(x[~te], y[~te], a, w[~te])
            err[te] = m.predict_log(x[te]) - y[te]
        mae = float(np.average(np.abs(err), weights=w))
        table.append({"alpha": a, "mae_log": round(mae, 4)})
        if best is None or mae < best[1]:
            best = (a, mae, float(np.sqrt(np.average(err**2, weights=w))))
    assert best is not None
    return best[0], best[2], table


def train_dynamics(folders: list[str | Path], out: str | Path | None = None, *,
                   seed: int = 0, songs: list[Song] | None = None,
                   progress: Progress = _quiet) -> tuple[DynamicsModel, dict]:
    """Fit the dynamics model on the mixed songs under ``folders``; write it to ``out``.
    Deterministic for a given ``seed``."""
    from vocalmix._version import __version__

    songs = songs if songs is not None else load_songs(folders, progress)
    x, y, idx, w = examples(songs, seed)
    artists = np.array([songs[i].artist for i in idx])
    alpha, resid, table = choose_alpha(x, y, artists, seed, w)
    m = fit_ridge(x, y, alpha, w)
    model = DynamicsModel(m.mean, m.scale, m.lo, m.hi, m.coef, m.intercept, resid)
    base = compressor_base()
    meta = {
        "model": "ridge regression of a finished vocal's log momentary loudness range on "
                 "the input vocal's and the backing's dynamics",
        "vocalmix_version": __version__, "version": DYNAMICS_VERSION, "seed": seed,
        "features": list(FEATURES), "alpha": alpha, "alpha_search": table,
        "residual_sd_log": round(resid, 4), "n_raw_per_song": N_RAW,
        "finished_weight": float(max(N_RAW, 1)),
        "expander": {"ratio": list(EXPAND_RATIO), "lift_db": list(EXPAND_LIFT_DB),
                     "ride_sd_db": RIDE_SD_DB, "ride_step_s": RIDE_STEP_S,
                     "attack_ms": base.attack_ms, "release_ms": base.release_ms},
        "n_songs": len(songs), "n_artists": len({s.artist for s in songs}),
        "n_examples": int(len(y)),
        "human_momentary_range_lu": {
            "median": round(float(np.median([s.human_lu for s in songs])), 3),
            "p10": round(float(np.percentile([s.human_lu for s in songs], 10)), 3),
            "p90": round(float(np.percentile([s.human_lu for s in songs], 90)), 3)},
        "songs": sorted(s.song for s in songs),
    }
    meta.update(delay_threshold(folders, songs))
    if out is not None:
        model.save(out, meta, x[:6])
        shipped_model.cache_clear()
    return model, meta


def _raw_takes(folders: list[str | Path]) -> list[tuple[np.ndarray, int]]:
    """The raw karaoke vocals (MIR-1K: right channel, as a centred stereo vocal) under
    ``folders``, 4 s or longer."""
    from vocalmix.core.audio import read_audio
    from vocalmix.training.data import mir1k_clips

    out = []
    for folder in folders:
        for p in mir1k_clips(folder):
            a = read_audio(p)
            if a.samples.shape[0] >= 4 * a.sample_rate:
                out.append((np.repeat(a.samples[:, 1:2], 2, axis=1), a.sample_rate))
    return out


def delay_threshold(folders: list[str | Path], songs: list[Song]) -> dict:
    """The vocal activity under which the model method adds a delay send: the quantile
    of vocals' activity (:func:`vocalmix.estimators.dynamics.vocal_activity`) at the
    engineers' share of delays (DiffVox: 57 % of chains), so that the sparser vocals, as
    many as engineers give a delay, get one. Read on raw takes (MIR-1K, what the model
    method is given) where ``folders`` hold them, else on the finished vocals (whose own
    reverb fills some gaps)."""
    from vocalmix.estimators.dynamics import vocal_activity
    from vocalmix.estimators.vocalprior import engineers

    share = engineers().delay_fraction
    takes = _raw_takes(folders)
    if takes:
        act = [vocal_activity(v, sr) for v, sr in takes]
        src = f"{len(act)} raw karaoke takes (MIR-1K)"
    else:
        act = [vocal_activity(s.audio()[0], s.sample_rate) for s in songs]
        src = f"{len(act)} finished vocal stems"
    return {"delay_activity_threshold": round(float(np.quantile(act, share)), 4),
            "delay_activity_source": src, "delay_share": share}


# --- evaluation ------------------------------------------------------------------------------


def _processed(x: np.ndarray, sample_rate: int, target: float | None, lra_target: float
               ) -> tuple[float, float]:
    """(momentary range, LRA) of ``x`` after the resolver reaches ``target`` (a momentary
    range) or, with ``None``, the LRA ``lra_target`` (the baseline's rule)."""
    from vocalmix.core.measure import loudness_range, momentary_loudness_range
    from vocalmix.core.render import compressor_stage
    from vocalmix.core.resolve import resolve_compressor

    base = compressor_base()
    if target is None:
        sol = resolve_compressor(x, sample_rate, lra_target, base)
    else:
        sol = resolve_compressor(x, sample_rate, target, base, statistic="momentary_range")
    y = compressor_stage(x, sample_rate, sol.compressor)
    return momentary_loudness_range(y, sample_rate), loudness_range(y, sample_rate)


def evaluate_dynamics(folders: list[str | Path], *, seeds: tuple[int, ...] = EVAL_SEEDS,
                      n_raw: int = 2, progress: Progress = _quiet,
                      seed: int | None = None) -> dict:
    """Held-out evaluation (module doc); ``seed`` (when given) replaces ``seeds``."""
    from vocalmix.core.measure import loudness_range, momentary_loudness_range
    from vocalmix.estimators.baseline import BaselineConfig
    from vocalmix.training.stems import artist_folds

    if seed is not None:
        seeds = (seed,)
    songs = load_songs(folders, progress)
    rule_lra = BaselineConfig().vocal_lra_lu
    rows: list[dict] = []
    finished_rows: list[dict] = []
    for sd in seeds:
        folds = artist_folds([s.artist for s in songs], N_FOLDS, sd)
        for k, te in enumerate(folds):
            train = [s for s, t in zip(songs, te, strict=True) if not t]
            model, meta = train_dynamics([], None, seed=sd, songs=train)
            const = float(np.exp(np.mean([math.log(max(s.human_lu, 0.5)) for s in train])))
            progress(f"dynamics: seed {sd} fold {k + 1}/{len(folds)}: {len(train)} training "
                     f"songs, alpha {meta['alpha']}, constant {const:.2f} LU")
            for i in np.flatnonzero(te):
                s = songs[i]
                vocal, backing = s.audio()
                for j in range(n_raw):
                    raw = simulate_raw(vocal, s.sample_rate, _rng(1000 + sd, int(i), j))
                    f = features(raw, backing, s.sample_rate)
                    target = float(model.predict(f)[0])
                    out = {"song": s.song, "artist": s.artist, "genre": s.genre, "seed": sd,
                           "human_lu": s.human_lu,
                           "raw_lu": float(math.exp(f[0])), "model_target_lu": target,
                           "constant_target_lu": const}
                    for meth, tgt in (("rule", None), ("constant", const), ("model", target)):
                        mlr, lra = _processed(raw, s.sample_rate, tgt, rule_lra)
                        out[f"{meth}_lu"] = mlr
                        out[f"{meth}_lra_lu"] = lra
                    rows.append(out)
                f0 = features(vocal, backing, s.sample_rate)
                t0 = float(model.predict(f0)[0])
                mlr0, lra0 = _processed(vocal, s.sample_rate, t0, rule_lra)
                finished_rows.append({"song": s.song, "seed": sd, "human_lu": s.human_lu,
                                      "target_lu": t0, "out_lu": mlr0,
                                      "human_lra_lu": loudness_range(vocal, s.sample_rate),
                                      "out_lra_lu": lra0})
                del vocal, backing
    summary = {}
    for meth in ("rule", "constant", "model"):
        e = np.array([float(r[f"{meth}_lu"]) - float(r["human_lu"]) for r in rows])
        per_artist: dict[str, list[float]] = {}
        for r, v in zip(rows, e, strict=True):
            per_artist.setdefault(r["artist"], []).append(abs(v))
        summary[meth] = {"mae_lu": float(np.mean(np.abs(e))), "bias_lu": float(np.mean(e)),
                         "mae_by_artist_lu": float(np.mean([np.mean(v) for v in
                                                            per_artist.values()])),
                         "sd_abs_lu": float(np.std(np.abs(e)))}
    per_seed = []
    for sd in seeds:
        rr = [r for r in rows if r["seed"] == sd]
        per_seed.append({"seed": sd, **{m: float(np.mean([abs(r[f"{m}_lu"] - r["human_lu"])
                                                          for r in rr]))
                                        for m in ("rule", "constant", "model")}})
    fin = np.array([r["out_lu"] - r["human_lu"] for r in finished_rows])
    fin_lra = np.array([r["out_lra_lu"] - r["human_lra_lu"] for r in finished_rows])
    # how the raw simulation compares with real raw takes (MIR-1K amateur vocals)
    real_raw = _real_raw_ranges(folders)
    sim = np.array([r["raw_lu"] for r in rows])
    return {
        "protocol": f"{N_FOLDS}-fold over artists, repeated for seeds "
                    f"{', '.join(map(str, seeds))}; {n_raw} raw-like versions of each "
                    "held-out finished vocal; every method's target reached by the real "
                    "resolver (pedalboard's compressor, the engineers' ratio and ballistics)",
        "n_songs": len(songs), "n_artists": len({s.artist for s in songs}),
        "n_tests": len(rows), "seeds": list(seeds), "summary": summary, "per_seed": per_seed,
        "rule_lra_lu": rule_lra,
        "finished_inputs": {"n": len(finished_rows),
                            "mean_abs_change_lu": float(np.mean(np.abs(fin))),
                            "share_changed_over_1lu": float(np.mean(np.abs(fin) > 1.0)),
                            "mean_abs_lra_change_lu": float(np.mean(np.abs(fin_lra))),
                            "share_lra_changed_over_1lu": float(np.mean(np.abs(fin_lra) > 1.0))},
        "raw_simulation": {"simulated_median_lu": float(np.median(sim)),
                           "simulated_p10_lu": float(np.percentile(sim, 10)),
                           "simulated_p90_lu": float(np.percentile(sim, 90)),
                           "human_median_lu": float(np.median([s.human_lu for s in songs])),
                           **real_raw},
        "compressor": {k: getattr(compressor_base(), k) for k in ("ratio", "attack_ms",
                                                                   "release_ms")},
        "date": dt.date.today().isoformat(),
        "tests": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                  for r in rows],
        "finished": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                     for r in finished_rows],
        "momentary_vs_lra": _momentary_vs_lra(songs, momentary_loudness_range, loudness_range),
    }


def _real_raw_ranges(folders: list[str | Path]) -> dict:
    """Momentary ranges of the raw karaoke takes (MIR-1K) under ``folders``, if any."""
    from vocalmix.core.measure import momentary_loudness_range

    vals = [momentary_loudness_range(v, sr) for v, sr in _raw_takes(folders)]
    if not vals:
        return {"real_raw_n": 0}
    return {"real_raw_n": len(vals), "real_raw_median_lu": float(np.median(vals)),
            "real_raw_p10_lu": float(np.percentile(vals, 10)),
            "real_raw_p90_lu": float(np.percentile(vals, 90))}


def _momentary_vs_lra(songs: list[Song], mlr_fn, lra_fn) -> dict:
    """Why the momentary range: the two statistics on the 7 s stems."""
    mlr_lu, lra_lu = [], []
    for s in songs:
        vocal = s.audio()[0]  # (decoded once for both)
        mlr_lu.append(mlr_fn(vocal, s.sample_rate))
        lra_lu.append(lra_fn(vocal, s.sample_rate))
    mlr, lra = np.array(mlr_lu), np.array(lra_lu)
    return {"momentary_median_lu": float(np.median(mlr)),
            "momentary_p10_lu": float(np.percentile(mlr, 10)),
            "momentary_p90_lu": float(np.percentile(mlr, 90)),
            "lra_median_lu": float(np.median(lra)), "lra_p10_lu": float(np.percentile(lra, 10)),
            "lra_p90_lu": float(np.percentile(lra, 90))}


__all__ = ["compressor_base", "evaluate_dynamics", "examples", "fit_ridge", "load_songs",
           "simulate_raw", "train_dynamics"]
