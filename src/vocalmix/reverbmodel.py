"""Blind estimate of the reverberation time present in a (wet) vocal (issue 4, part 3).

Idea: reverberation limits how fast a vocal's energy can fall after a note ends; the
steepest sustained decays in the energy envelope approach the room's decay rate. The
features are percentiles of the decay rates (dB/s) of the free-decay segments of the
envelope (10 ms frames; segments of at least 80 ms that fall monotonically by at least
10 dB), in three bands; a ridge regression maps them to log T30.

Training data: dry vocals (the dry solo recordings and the karaoke takes, which are close
to dry) convolved with impulse responses whose T30 is measured by the ISO 3382 routine of
:mod:`vocalmix.reverb`; splits are by impulse response (held-out IRs) so the estimator
is judged on rooms it has not heard. ``estimate_reverb_time`` then measures the reverb
the human engineers chose on the mixed vocal stems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

_SR = 16000
_HOP = 160  # 10 ms
_N = 512
BANDS_HZ = ((100.0, 8000.0), (300.0, 1200.0), (1200.0, 5000.0))
PCTS = (5, 10, 25, 50)


def _envelopes_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    from .dsp import mono_at

    y = mono_at(x, sample_rate, _SR)
    n = (len(y) - _N) // _HOP
    if n < 20:
        raise ValueError("signal too short for a reverberation estimate")
    idx = np.arange(_N)[None, :] + _HOP * np.arange(n)[:, None]
    s = scipy.fft.rfft(y[idx] * np.hanning(_N).astype(np.float32), axis=1)
    p = s.real**2 + s.imag**2
    f = np.fft.rfftfreq(_N, 1 / _SR)
    env = np.stack([p[:, (f >= lo) & (f < hi)].sum(axis=1) for lo, hi in BANDS_HZ])
    return 10 * np.log10(env + 1e-12)


def _decay_rates(env_db: np.ndarray, min_frames: int = 8, min_drop_db: float = 10.0) -> np.ndarray:
    """Slopes (dB/s, positive) of monotonically falling runs of an envelope."""
    floor = np.percentile(env_db, 5) + 6.0
    falling = np.diff(env_db) < 0
    rates = []
    i = 0
    n = len(falling)
    while i < n:
        if not falling[i]:
            i += 1
            continue
        j = i
        while j < n and falling[j]:
            j += 1
        seg = env_db[i : j + 1]
        seg = seg[seg > floor]
        if len(seg) >= min_frames and seg[0] - seg[-1] >= min_drop_db:
            t = np.arange(len(seg)) * (_HOP / _SR)
            slope = -np.polyfit(t, seg, 1)[0]
            if slope > 0:
                rates.append(slope)
        i = j
    return np.array(rates)


def reverb_features(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log decay-rate percentiles per band (``len(BANDS_HZ) * len(PCTS)`` values)."""
    env = _envelopes_db(x, sample_rate)
    out = []
    for e in env:
        r = _decay_rates(e)
        if r.size < 3:
            out.extend([np.log(60.0)] * len(PCTS))  # no free decays found: assume ~1 s
        else:
            out.extend(np.log(np.percentile(r, [100 - p for p in PCTS])))
    return np.array(out)


@dataclass(frozen=True)
class ReverbTimeModel:
    """Ridge regression from :func:`reverb_features` to log T30."""

    mean: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict_t30(self, feats: np.ndarray) -> np.ndarray:
        """T30 (s) for feature rows (numpy only)."""
        return np.exp((np.atleast_2d(feats) - self.mean) @ self.coef + self.intercept)


def fit_reverb_time_model(x: np.ndarray, t30_s: np.ndarray, alpha: float = 0.1
                          ) -> ReverbTimeModel:
    """Fit on features ``x`` and measured T30 (s)."""
    mean = x.mean(axis=0)
    xc = x - mean
    y = np.log(t30_s)
    coef = np.linalg.solve(xc.T @ xc + alpha * len(x) * np.eye(x.shape[1]), xc.T @ (y - y.mean()))
    return ReverbTimeModel(mean, coef, float(y.mean()))


def convolve_ir(dry: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Mono dry signal convolved with a (mono-summed) IR, by FFT."""
    d = dry if dry.ndim == 1 else dry.mean(axis=1)
    h = ir if ir.ndim == 1 else ir.mean(axis=1)
    n = len(d) + len(h) - 1
    nf = 1 << int(np.ceil(np.log2(n)))
    y = scipy.fft.irfft(scipy.fft.rfft(d, nf) * scipy.fft.rfft(h, nf), nf)[: len(d)]
    return (y / (np.abs(y).max() + 1e-12) * 0.5).astype(np.float32)


def evaluate_reverb_estimator(ir_paths: list, dry: list[tuple[np.ndarray, int]], *,
                              seed: int = 0, test_every: int = 4, progress=None) -> dict:
    """Train on IRs (all but every ``test_every``-th), test on the held-out IRs.

    Returns the mean absolute error of T30 (s) and of log T30 on held-out IRs, next to a
    constant predictor (the training IRs' median T30).
    """
    import soundfile as sf
    import soxr

    from .reverb import reverberation_time

    rng = np.random.default_rng(seed)
    rows = []
    for k, p in enumerate(ir_paths):
        h, sr = sf.read(str(p), dtype="float32", always_2d=True)
        h = h.mean(axis=1)
        if sr != _SR:
            h = soxr.resample(h, sr, _SR, quality="HQ")
        t30 = reverberation_time(h, _SR, "T30")
        if not np.isfinite(t30) or t30 <= 0:
            continue
        for j in rng.choice(len(dry), size=min(3, len(dry)), replace=False):
            v, vsr = dry[j]
            v1 = v if v.ndim == 1 else v.mean(axis=1)
            if vsr != _SR:
                v1 = soxr.resample(v1, vsr, _SR, quality="LQ")
            wet = convolve_ir(v1, h)
            rows.append((k, t30, reverb_features(wet, _SR)))
        if progress and k % 10 == 0:
            progress(f"reverb estimator: {k + 1}/{len(ir_paths)} impulse responses")
    ks = np.array([r[0] for r in rows])
    t = np.array([r[1] for r in rows])
    x = np.array([r[2] for r in rows])
    test = ks % test_every == 0
    m = fit_reverb_time_model(x[~test], t[~test])
    pred = m.predict_t30(x[test])
    const = float(np.median(t[~test]))
    return {
        "n_irs_train": int(len(set(ks[~test]))), "n_irs_test": int(len(set(ks[test]))),
        "n_examples": int(len(t)),
        "mae_s": float(np.mean(np.abs(pred - t[test]))),
        "mae_log": float(np.mean(np.abs(np.log(pred / t[test])))),
        "constant_mae_s": float(np.mean(np.abs(const - t[test]))),
        "constant_mae_log": float(np.mean(np.abs(np.log(const / t[test])))),
        "model": m,
    }


def default_dry_vocals(root, n_karaoke: int = 20) -> list[tuple[np.ndarray, int]]:
    """Dry material for training: the dry solo vocals and some karaoke takes (vocal channel)."""
    from pathlib import Path

    import soundfile as sf

    from .data import find_songs, load_song

    root = Path(root)
    dry = []
    for p in sorted((root / "dry_vocals").glob("*.wav")):
        x, sr = sf.read(str(p), dtype="float32")
        dry.append((x, sr))
    kdir = root / "karaoke"
    if kdir.exists():
        songs = [s for s in find_songs([kdir]) if s.source == "karaoke"]
        for s in songs[: 2 * n_karaoke : 2]:
            v, _b, sr = load_song(s)
            dry.append((v[:, 0], sr))
    return dry


def reverb_report(stem_folders: list, root, progress=None) -> dict:
    """Estimator skill on held-out IRs, then the reverb the engineers chose per song,
    next to the baseline's tempo rule and a leave-one-song-out constant."""
    from pathlib import Path

    from .baseline import reverb_decay_for_tempo
    from .data import find_songs, load_song
    from .tempo import estimate_tempo

    root = Path(root)
    irs = sorted(p for p in (root / "ir").glob("*/*.wav") if "direct_cabinet" not in p.name)
    dry = default_dry_vocals(root)
    held_out = evaluate_reverb_estimator(irs, dry, progress=progress)
    model = held_out["model"]  # trained on 3/4 of the IRs
    songs = [s for s in find_songs(stem_folders) if s.has_level_info]
    per_song = []
    for s in songs:
        v, b, sr = load_song(s)
        est = float(model.predict_t30(reverb_features(v, sr))[0])
        tempo = estimate_tempo(b, sr)
        per_song.append({"song": s.song_id, "estimated_t30_s": est, "tempo_bpm": tempo,
                         "tempo_rule_s": reverb_decay_for_tempo(tempo)})
    for i, r in enumerate(per_song):
        others = [q["estimated_t30_s"] for j, q in enumerate(per_song) if j != i]
        r["constant_s"] = float(np.mean(others)) if others else float("nan")
    n = len(per_song)
    summary = {
        "tempo_rule_mae_s": float(np.mean([abs(r["tempo_rule_s"] - r["estimated_t30_s"])
                                           for r in per_song])) if n else None,
        "constant_mae_s": float(np.mean([abs(r["constant_s"] - r["estimated_t30_s"])
                                         for r in per_song])) if n > 1 else None,
    }
    held_out.pop("model", None)
    return {"estimator_on_held_out_irs": held_out, "songs": per_song, "summary": summary,
            "n_songs": n}
