"""Training and evaluation of the reverb model (:mod:`vocalmix.estimators.reverb`).

The estimator's examples
    Dry vocals (the MIR-1K karaoke vocal channels, right channel, and the two dry solo
    recordings) cleaned of their noise floor by a random downward expander
    (:func:`clean_dry`), through (a) the ``synthetic`` reverb rendered by
    :func:`vocalmix.core.render.reverb_wet` at random parameters (exact labels:
    :func:`render_synthetic_send`), and (b) the IR library of
    :mod:`vocalmix.training.irlib` (the real impulse responses of the shared data,
    ``ir/`` minus ``direct_cabinet_*``, and the rendered pedalboard, Calf and TAP reverbs
    where those plug-ins are installed) used as a send: the IR's reverberant part after
    its direct sound (a plug-in's wet-only response), normalised to unit vocal-weighted
    energy (the meaning of ``wet_level_db``), at a random wet level and added pre-delay
    (:func:`prepare_send_ir`, :func:`render_ir_send`: exact labels for those two, plus
    the IR's own onset after the direct sound; the decay and damping labels are the IR's
    fitted synthetic parameters from ``docs/evaluation/reverb_fit.json`` when that file
    has them,
    otherwise its T30 at 1 and 4 kHz measured by the ISO 3382 routine of
    :mod:`vocalmix.core.reverb`; the rendered examples do not depend on those labels, so
    the example cache survives a new fit). Every wet example is then processed like a
    vocal stem in a mix (:func:`mixing_augment`: random EQ, compression, gating or
    expansion, noise floor and level) so that the estimator sees what it will be applied
    to. Splits: validation singers (every fourth MIR-1K singer in sorted order, and the
    anechoic operatic voice) and held-out IR rooms (:func:`ir_group`: IRs of one room
    stay together), never seen in training.

The estimator's fit
    :func:`fit_mlp`: the MLP trained by L-BFGS with an L2 penalty (numpy and scipy
    only); :func:`evaluate_estimator` measures it on held-out rooms and singers next to
    a constant predictor.

The choice model
    The estimator, applied to the mixed vocal stems of the professionally mixed songs
    (:func:`stem_choices`; :func:`vocalmix.training.stems.training_songs`, never
    MUSDB18's test songs), recovers the reverb the engineers chose; a ridge regression
    per parameter predicts that choice from the backing (:func:`fit_choice_model`), with
    the intercept shrunk toward the engineers' own sends (:data:`PRIOR_SONGS` songs'
    worth of :func:`choice_prior`: the DiffVox presets' median T60, 4 kHz decay ratio,
    onset and level) and features clipped to the training range. :func:`cv_choice`
    cross-validates it with folds grouped by artist, repeated over seeds, against the
    baseline's rule (the tempo rule's decay, -14 dB, 20 ms) and a constant (the
    training songs' mean).

:func:`train_reverb_model` retrains and writes the weights; :func:`reverb_report`
computes what ``docs/evaluation/reverb_report.md`` shows
(:func:`vocalmix.training.reports.write_reverb_report` writes it).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocalmix.core.errors import ModelError
from vocalmix.estimators.reverb import (
    ANALYSIS_SR,
    CHOICE_FEATURES,
    ESTIMATOR_VERSION,
    FEATURE_NAMES,
    FILES,
    MLP,
    PARAMS,
    ChoiceModel,
    ReverbModel,
    backing_features,
    band_ratios_for_hf,
    choice_targets,
    decode_targets,
    encode_targets,
    estimate_song,
    estimator_features,
    hf_ratio_of,
    shipped_model,
)

Progress = Callable[[str], None]

#: ranges of the synthetic training labels (and of the estimator's trusted outputs)
LABEL_RANGES: dict[str, tuple[float, float]] = {
    "decay_s": (0.2, 6.0), "hf_ratio": (0.35, 1.15), "pre_delay_ms": (0.0, 120.0),
    "wet_level_db": (-30.0, 3.0),
}
#: the baseline's reverb, as the choice model's "rule" in the cross-validation (its decay
#: is the tempo rule, :func:`vocalmix.estimators.baseline.reverb_decay_for_tempo`)
CHOICE_RULE: dict[str, float] = {"hf_ratio": 0.8, "pre_delay_ms": 20.0, "wet_level_db": -14.0}
CV_FOLDS, CV_SEEDS = 5, (0, 1, 2)
CHOICE_ALPHA = 1.0  # ridge penalty, in songs (as the level model's DEFAULT_ALPHA)
PRIOR_SONGS = 1.0  # weight of the prior on each intercept, in songs


# --- training examples -------------------------------------------------------------------


@dataclass(frozen=True)
class DryClip:
    """A dry vocal for training: mono float32 at :data:`ANALYSIS_SR`, and who sings it."""

    name: str
    singer: str
    audio: np.ndarray


#: MIR-1K singers held out for validation (every fourth in sorted order), and the other
#: dry recordings that are validation material
def validation_singers(singers: list[str]) -> set[str]:
    """Every fourth singer in case-insensitive sorted order, from the second on."""
    s = sorted(set(singers), key=str.lower)
    return set(s[1::4])


def load_dry_clips(root: str | Path, max_clip_s: float = 10.0) -> list[DryClip]:
    """The dry training material under the data root: every MIR-1K clip's vocal
    (right) channel, singer = the file name's first field, and the dry solo recordings
    of ``dry_vocals/`` cut into clips of at most ``max_clip_s`` (the anechoic operatic
    voice counts as a validation singer, ``vocadito`` as a training one)."""
    import soxr

    from vocalmix.core.audio import read_audio
    from vocalmix.training.data import audio_files, mir1k_clips

    root = Path(root)
    clips: list[DryClip] = []
    for p in mir1k_clips(root / "karaoke"):
        a = read_audio(p)  # karaoke clip: left backing, right vocal
        v, sr = a.samples[:, 1], a.sample_rate
        if sr != ANALYSIS_SR:
            v = soxr.resample(v, sr, ANALYSIS_SR, quality="HQ")
        clips.append(DryClip(p.stem, p.stem.split("_")[0], np.ascontiguousarray(v)))
    for p in audio_files(root / "dry_vocals"):
        a = read_audio(p)
        v, sr = a.samples.mean(axis=1), a.sample_rate
        if sr != ANALYSIS_SR:
            v = soxr.resample(v, sr, ANALYSIS_SR, quality="HQ")
        singer = "openair" if "anechoic" in p.name else p.stem.split("_")[0]
        k = int(max_clip_s * ANALYSIS_SR)
        for i in range(0, max(1, len(v) - ANALYSIS_SR * 3), k):
            clips.append(DryClip(f"{p.stem}@{i // ANALYSIS_SR}s", singer,
                                 np.ascontiguousarray(v[i: i + k])))
    return clips


def is_validation_singer(singer: str, singers: list[str]) -> bool:
    """Whether ``singer`` is validation material (see :func:`validation_singers`)."""
    return singer == "openair" or singer in validation_singers(
        [s for s in singers if s != "openair"])


def _frame_gain_expander(x: np.ndarray, sr: int, threshold_db: float, ratio: float,
                         floor_db: float = -60.0) -> np.ndarray:
    """Downward expander on a 10 ms RMS envelope (dB re the signal's max), gain
    interpolated per sample: below the threshold the level falls ``ratio`` dB per dB."""
    hop = max(1, sr // 100)
    nf = max(1, len(x) // hop)
    e = (x[: nf * hop].astype(np.float64).reshape(nf, hop) ** 2).mean(axis=1)
    e = np.convolve(e, np.ones(3) / 3, mode="same")
    db = 10.0 * np.log10(e / (e.max() + 1e-30) + 1e-12)
    g = np.minimum(0.0, (db - threshold_db) * (ratio - 1.0))
    g = np.maximum(g, floor_db)
    # release-like smoothing of the gain (fast attack of the opening, slower closing)
    for i in range(1, nf):
        g[i] = max(g[i], g[i - 1] - 3.0)
    t = (np.arange(nf) + 0.5) * hop
    gs = np.interp(np.arange(len(x)), t, g)
    return (x * 10.0 ** (gs / 20.0)).astype(np.float32)


def clean_dry(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What an engineer does to a dry take before the reverb send, at random: remove
    the recording's noise floor with a downward expander (most of the time), sometimes
    compress it (pedalboard's compressor)."""
    import pedalboard as pb

    y = x
    if rng.random() < 0.85:
        hop = ANALYSIS_SR // 100
        nf = len(y) // hop
        e = (y[: nf * hop].astype(np.float64).reshape(nf, hop) ** 2).mean(axis=1)
        floor = 10.0 * np.log10(np.percentile(e, 10) / (e.max() + 1e-30) + 1e-12)
        y = _frame_gain_expander(y, ANALYSIS_SR, float(floor + rng.uniform(6.0, 14.0)),
                                 float(rng.uniform(2.0, 6.0)))
    if rng.random() < 0.4:
        peak = 20.0 * math.log10(float(np.abs(y).max()) + 1e-12)
        c = pb.Compressor(threshold_db=peak - float(rng.uniform(6.0, 20.0)),
                          ratio=float(rng.uniform(2.0, 6.0)),
                          attack_ms=float(rng.uniform(1.0, 20.0)),
                          release_ms=float(rng.uniform(40.0, 250.0)))
        y = c(y[None, :].astype(np.float32), float(ANALYSIS_SR), reset=True)[0]
    return np.ascontiguousarray(y, dtype=np.float32)


def mixing_augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a mix does to a vocal stem after its reverb, at random: EQ (shelves, a peak,
    a high-pass), compression, a gate or downward expander, a noise floor, a level.
    ``x``: mono float32 at :data:`ANALYSIS_SR`."""
    import pedalboard as pb

    fx: list = []
    if rng.random() < 0.7:
        if rng.random() < 0.5:
            fx.append(pb.HighpassFilter(cutoff_frequency_hz=float(rng.uniform(60.0, 200.0))))
        if rng.random() < 0.6:
            fx.append(pb.LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(100.0, 300.0)),
                                        gain_db=float(rng.uniform(-6.0, 6.0))))
        if rng.random() < 0.6:
            fx.append(pb.PeakFilter(cutoff_frequency_hz=float(np.exp(rng.uniform(
                np.log(300.0), np.log(5000.0)))), gain_db=float(rng.uniform(-6.0, 6.0)),
                q=float(rng.uniform(0.5, 2.0))))
        if rng.random() < 0.6:
            fx.append(pb.HighShelfFilter(cutoff_frequency_hz=float(rng.uniform(3000.0, 7000.0)),
                                         gain_db=float(rng.uniform(-6.0, 6.0))))
    y = np.asarray(x, dtype=np.float32)
    if fx:
        y = pb.Pedalboard(fx)(y[None, :], float(ANALYSIS_SR), reset=True)[0]
    peak = 20.0 * math.log10(float(np.abs(y).max()) + 1e-12)
    if rng.random() < 0.6:
        c = pb.Compressor(threshold_db=peak - float(rng.uniform(6.0, 24.0)),
                          ratio=float(rng.uniform(2.0, 10.0)),
                          attack_ms=float(rng.uniform(0.5, 30.0)),
                          release_ms=float(rng.uniform(30.0, 300.0)))
        y = c(y[None, :], float(ANALYSIS_SR), reset=True)[0]
        peak = 20.0 * math.log10(float(np.abs(y).max()) + 1e-12)
    u = rng.random()
    if u < 0.3:
        g = pb.NoiseGate(threshold_db=peak - float(rng.uniform(25.0, 50.0)),
                         ratio=float(rng.uniform(2.0, 20.0)), attack_ms=1.0,
                         release_ms=float(rng.uniform(20.0, 200.0)))
        y = g(y[None, :], float(ANALYSIS_SR), reset=True)[0]
    elif u < 0.5:
        y = _frame_gain_expander(y, ANALYSIS_SR, -float(rng.uniform(25.0, 45.0)),
                                 float(rng.uniform(1.5, 4.0)))
    if rng.random() < 0.8:
        noise = rng.standard_normal(len(y)).astype(np.float32)
        if rng.random() < 0.5:  # pinkish: one-pole low-pass
            from scipy.signal import lfilter

            noise = lfilter([0.1], [1.0, -0.9], noise).astype(np.float32)
        rms = float(np.sqrt(np.mean(noise**2))) + 1e-12
        y = y + noise / rms * np.float32(10.0 ** ((peak - rng.uniform(50.0, 90.0)) / 20.0))
    y = y * np.float32(10.0 ** (rng.uniform(-20.0, 0.0) / 20.0) / (np.abs(y).max() + 1e-12))
    return np.ascontiguousarray(y, dtype=np.float32)


def draw_synthetic_label(rng: np.random.Generator) -> dict[str, float]:
    """Random synthetic-reverb parameters over :data:`LABEL_RANGES` (decay and damping
    log-uniform, pre-delay and wet level uniform)."""
    lo, hi = LABEL_RANGES["decay_s"]
    hlo, hhi = LABEL_RANGES["hf_ratio"]
    return {
        "decay_s": float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        "hf_ratio": float(np.exp(rng.uniform(np.log(hlo), np.log(hhi)))),
        "pre_delay_ms": float(rng.uniform(*LABEL_RANGES["pre_delay_ms"])),
        "wet_level_db": float(rng.uniform(*LABEL_RANGES["wet_level_db"])),
    }


def render_synthetic_send(dry: np.ndarray, label: dict[str, float],
                          rng: np.random.Generator | None = None) -> np.ndarray:
    """``dry`` (mono, :data:`ANALYSIS_SR`) plus its ``synthetic`` reverb send exactly as
    MixParams renders it (:func:`vocalmix.core.render.reverb_wet`), with the damping family's
    band ratios; with ``rng``, the bands below 1 kHz get a random extra ratio (0.7 to
    1.6), which the estimator does not predict but must tolerate."""
    from vocalmix.core.params import BAND_DECAY_RATIO, Reverb
    from vocalmix.core.render import reverb_wet

    ratios = list(band_ratios_for_hf(label["hf_ratio"]))
    if rng is not None:
        lf = float(np.exp(rng.uniform(np.log(0.7), np.log(1.6))))
        ratios[:3] = [round(float(np.clip(lf ** ((3 - i) / 3.0), BAND_DECAY_RATIO.lo,
                                          BAND_DECAY_RATIO.hi)), 4)
                      for i in range(3)]
    rv = Reverb(type="synthetic", decay_s=label["decay_s"], band_decay_ratios=tuple(ratios),
                width=1.0, wet_level_db=label["wet_level_db"],
                pre_delay_ms=label["pre_delay_ms"])
    x = dry[:, None].astype(np.float32)
    return (x + reverb_wet(x, ANALYSIS_SR, rv))[:, 0]


@dataclass(frozen=True)
class SendIR:
    """A real impulse response prepared as a reverb send: its reverberant part after the
    direct sound, mono, unit vocal-weighted energy, at :data:`ANALYSIS_SR`; its labels;
    the room group."""

    name: str
    group: str
    tail: np.ndarray
    decay_s: float
    hf_ratio: float
    gap_ms: float
    label_source: str


_DIRECT_MS = 2.5


def ir_group(name: str, collection: str) -> str:
    """The room an IR belongs to, so that held-out IRs are held-out rooms: the warehouse
    IRs are one room, the house IRs one room per name's first word, Voxengo's variants
    of one space (``_1``/``_2``, ``_long``, ``_revised``) one room, ``seminar_room_*``
    one room."""
    import re

    if "warehouse" in collection:
        return "warehouse"
    if "house" in collection:
        return "house-" + name.split("-")[0]
    base = re.sub(r"(_\d+|_long|_revised)$", "", name)
    if base.startswith("seminar_room"):
        base = "seminar_room"
    return f"{collection}-{base}"


def fitted_labels(path: str | Path | None = None) -> dict[str, dict]:
    """Fitted ``synthetic`` parameters per IR name from ``docs/evaluation/
    reverb_fit.json`` (entries whose ``reverb`` or ``params`` has ``type: synthetic`` or
    ``decay_s`` and ``band_decay_ratios``); empty when the file or such entries are
    absent."""
    p = Path(path) if path is not None else (Path(__file__).resolve().parents[3] / "docs"
                                              / "evaluation" / "reverb_fit.json")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    if not isinstance(d, dict):
        return {}
    items = d.get("irs", d) if isinstance(d.get("irs", d), dict) else d
    for name, e in items.items():
        if not isinstance(e, dict):
            continue
        if isinstance(e.get("result"), dict):
            e = e["result"]
        for key in ("reverb", "params", "fitted_params"):
            r = e.get(key)
            if isinstance(r, dict) and "decay_s" in r and "band_decay_ratios" in r:
                try:
                    out[str(name)] = {"decay_s": float(r["decay_s"]),
                                      "hf_ratio": hf_ratio_of(tuple(r["band_decay_ratios"])),
                                      "pre_delay_ms": float(r.get("pre_delay_ms", 0.0)),
                                      "wet_level_db": float(r.get("wet_level_db", 0.0))}
                except (TypeError, ValueError, IndexError):
                    pass
                break
    return out


def prepare_send_ir(name: str, collection: str, ir: np.ndarray, sample_rate: int,
                    fitted: dict | None = None) -> SendIR | None:
    """A :class:`SendIR` from a recorded IR (``None`` when its T30 at 1 or 4 kHz cannot
    be measured). The direct sound is the IR's onset (first sample within 20 dB of the
    maximum, :func:`vocalmix.core.reverb.onset_index`) plus 2.5 ms; the tail after it, faded
    in over 1 ms, is the send. Labels: the fit's ``decay_s`` and 4 kHz ratio when given,
    else T30 at 1 and 4 kHz of the tail measured at the IR's own rate; ``gap_ms``: the
    tail's own onset after the direct sound (an inherent pre-delay)."""
    import soxr

    from vocalmix.core.reverb import onset_index, reverberation_time, vocal_weighted_energy

    h = np.asarray(ir, dtype=np.float64)
    if h.ndim == 2:
        h = h.mean(axis=1)
    o = onset_index(h)
    d = o + int(round(_DIRECT_MS * 1e-3 * sample_rate))
    tail = h[d:].copy()
    if tail.size < sample_rate // 10:
        return None
    fade = int(0.001 * sample_rate)
    tail[:fade] *= np.linspace(0.0, 1.0, fade)
    try:
        gap = onset_index(tail) / sample_rate * 1000.0 + _DIRECT_MS
    except ValueError:
        return None
    if fitted:
        decay, hf, src = fitted["decay_s"], fitted["hf_ratio"], "fitted"
    else:
        try:
            t1 = reverberation_time(tail, sample_rate, "T30", 1000.0)
            t4 = reverberation_time(tail, sample_rate, "T30", 4000.0)
        except ValueError:
            return None
        if not (np.isfinite(t1) and np.isfinite(t4) and t1 > 0 and t4 > 0):
            return None
        decay, hf, src = float(t1), float(t4 / t1), "measured"
    t16 = soxr.resample(tail.astype(np.float32), sample_rate, ANALYSIS_SR, quality="HQ")
    # the send's level means what MixParams' wet_level_db means: the reverberant-to-direct
    # energy ratio for a vocal's spectrum (vocalmix.core.reverb.vocal_weighted_energy)
    t16 = t16 / np.sqrt(float(vocal_weighted_energy(t16, ANALYSIS_SR)[0]))
    return SendIR(name, ir_group(name, collection), np.ascontiguousarray(t16, np.float32),
                  float(decay), float(hf), float(gap), src)


def load_send_irs(root: str | Path, fitted: dict[str, dict] | None = None,
                  progress: Progress | None = None) -> list[SendIR]:
    """Every IR under ``root/ir/*/`` except ``direct_cabinet_*``, prepared as a send."""
    import soundfile as sf

    fitted = fitted_labels() if fitted is None else fitted
    out = []
    for p in sorted(Path(root, "ir").glob("*/*.wav")):
        if p.name.startswith("direct_cabinet"):
            continue
        h, sr = sf.read(str(p), dtype="float32", always_2d=True)
        s = prepare_send_ir(p.stem, p.parent.name, h, sr, fitted.get(p.stem))
        if s is not None:
            out.append(s)
    if progress:
        progress(f"reverb: {len(out)} impulse responses usable as sends")
    return out


def render_ir_send(dry: np.ndarray, ir: SendIR, wet_level_db: float,
                   pre_delay_ms: float) -> np.ndarray:
    """``dry`` plus the IR's tail as a send (pre-delay, then the wet level)."""
    from scipy.signal import fftconvolve

    d = int(round(pre_delay_ms * 1e-3 * ANALYSIS_SR))
    src = np.concatenate([np.zeros(d, np.float32), dry[: len(dry) - d]]) if d else dry
    wet = fftconvolve(src, ir.tail)[: len(dry)]
    return (dry + wet * np.float32(10.0 ** (wet_level_db / 20.0))).astype(np.float32)


@dataclass
class Examples:
    """Feature rows, labels (:data:`PARAMS` order, natural units) and provenance."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray  # "synthetic" or "ir"
    singer: np.ndarray
    ir: np.ndarray  # IR name ("" for synthetic)
    group: np.ndarray  # IR room group ("" for synthetic)

    def subset(self, m: np.ndarray) -> Examples:
        return Examples(self.x[m], self.y[m], self.kind[m], self.singer[m], self.ir[m],
                        self.group[m])

    @staticmethod
    def concat(parts: list[Examples]) -> Examples:
        return Examples(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                          ("x", "y", "kind", "singer", "ir", "group")))


def _crop(rng: np.random.Generator, v: np.ndarray, lo_s: float = 4.0, hi_s: float = 10.0
          ) -> np.ndarray:
    n = int(rng.uniform(lo_s, hi_s) * ANALYSIS_SR)
    if len(v) <= n:
        return v
    s = int(rng.integers(0, len(v) - n))
    return v[s: s + n]


def _example_rng(seed: int, kind: int, i: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, kind, i]))


def make_examples(clips: list[DryClip], n_synthetic: int, irs: list[SendIR] | None = None,
                  per_ir: int = 0, seed: int = 0, augment: bool = True,
                  progress: Progress | None = None) -> Examples:
    """Wet vocals with labels: ``n_synthetic`` through the synthetic reverb at random
    parameters, and ``per_ir`` through each IR of ``irs`` as a send at a random wet level
    (:data:`LABEL_RANGES`) and an added pre-delay of 0 to 100 ms; each on a random clip
    of ``clips`` (4 to 10 s of it), cleaned (:func:`clean_dry`) and, with ``augment``,
    processed like a mixed stem (:func:`mixing_augment`). Deterministic in ``seed``."""
    rows, ys, kinds, singers, names, groups = [], [], [], [], [], []
    jobs: list[tuple[str, int, SendIR | None]] = [("synthetic", i, None)
                                                   for i in range(n_synthetic)]
    for k, send_ir in enumerate(irs or []):
        jobs += [("ir", k * 1000 + j, send_ir) for j in range(per_ir)]
    for done, (kind, i, ir) in enumerate(jobs):
        rng = _example_rng(seed, 0 if kind == "synthetic" else 1, i)
        c = clips[int(rng.integers(len(clips)))]
        dry = clean_dry(_crop(rng, c.audio), rng)
        if ir is None:
            lab = draw_synthetic_label(rng)
            wet = render_synthetic_send(dry, lab, rng)
        else:
            w = float(rng.uniform(*LABEL_RANGES["wet_level_db"]))
            pd = float(rng.uniform(0.0, 100.0))
            wet = render_ir_send(dry, ir, w, pd)
            lab = {"decay_s": ir.decay_s, "hf_ratio": ir.hf_ratio,
                   "pre_delay_ms": pd + ir.gap_ms, "wet_level_db": w}
        if augment:
            wet = mixing_augment(wet, rng)
        try:
            f = estimator_features(wet, ANALYSIS_SR)
        except ValueError:
            continue
        rows.append(f)
        ys.append([lab[p] for p in PARAMS])
        kinds.append(kind)
        singers.append(c.singer)
        names.append(ir.name if ir else "")
        groups.append(ir.group if ir else "")
        if progress and (done + 1) % 500 == 0:
            progress(f"reverb: {done + 1}/{len(jobs)} wet examples")
    return Examples(np.asarray(rows), np.asarray(ys, dtype=np.float64), np.asarray(kinds),
                    np.asarray(singers), np.asarray(names), np.asarray(groups))


# --- the estimator's network -----------------------------------------------------------------


def fit_mlp(x: np.ndarray, y: np.ndarray, hidden: int = 32, l2: float = 1e-3,
            seed: int = 0, maxiter: int = 600, weights: np.ndarray | None = None) -> MLP:
    """Fit an :class:`MLP` to features ``x`` and labels ``y`` (:data:`PARAMS` order,
    natural units) by L-BFGS (scipy) on the mean squared error of the standardised
    encoded targets plus ``l2`` times the squared weights; deterministic in ``seed``."""
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=np.float64)
    t = encode_targets(y)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.mean()
    xm, xs = x.mean(axis=0), x.std(axis=0)
    xs = np.where(xs > 1e-9, xs, 1.0)
    z = (x - xm) / xs
    ym, ysd = t.mean(axis=0), t.std(axis=0)
    ysd = np.where(ysd > 1e-9, ysd, 1.0)
    tz = (t - ym) / ysd
    n, d = z.shape
    k = tz.shape[1]
    rng = np.random.default_rng(seed)
    shapes = [(d, hidden), (hidden,), (hidden, k), (k,)]
    sizes = [int(np.prod(s)) for s in shapes]
    p0 = np.concatenate([rng.standard_normal(sizes[0]) / math.sqrt(d), np.zeros(sizes[1]),
                         rng.standard_normal(sizes[2]) / math.sqrt(hidden), np.zeros(sizes[3])])

    def unpack(p: np.ndarray) -> list[np.ndarray]:
        out, i = [], 0
        for s, m in zip(shapes, sizes, strict=True):
            out.append(p[i: i + m].reshape(s))
            i += m
        return out

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        w1, b1, w2, b2 = unpack(p)
        h = np.tanh(z @ w1 + b1)
        r = h @ w2 + b2 - tz
        wr = r * w[:, None] / (n * k)
        val = float((r * wr).sum()) + l2 * float((w1**2).sum() + (w2**2).sum())
        g_out = 2.0 * wr
        gw2 = h.T @ g_out + 2.0 * l2 * w2
        gb2 = g_out.sum(axis=0)
        gh = (g_out @ w2.T) * (1.0 - h**2)
        gw1 = z.T @ gh + 2.0 * l2 * w1
        gb1 = gh.sum(axis=0)
        return val, np.concatenate([gw1.ravel(), gb1, gw2.ravel(), gb2])

    res = minimize(loss, p0, jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "maxfun": 2 * maxiter})
    w1, b1, w2, b2 = unpack(res.x)
    return MLP(xm, xs, x.min(axis=0), x.max(axis=0), w1, b1, w2, b2, ym, ysd)


# --- the choice model --------------------------------------------------------------------------


def choice_prior() -> np.ndarray:
    """The engineers' own sends (the pooled DiffVox presets that use a reverb,
    :func:`vocalmix.estimators.vocalprior.engineers`) as choice-model targets
    (:func:`vocalmix.estimators.reverb.choice_targets`): median T60, median 4 kHz / 1 kHz
    decay ratio, the reverb's onset after the dry sound (22.6 ms, DiffVox's shortest
    delay line) and median level against the dry sound (500 Hz-2 kHz)."""
    from vocalmix.estimators.vocalprior import REVERB_ONSET_MS, engineers

    e = engineers()
    return np.array([math.log(e.reverb_t60_s.p50), math.log(e.band_decay_ratios[5]),
                     REVERB_ONSET_MS, e.reverb_level_db.p50])


def fit_choice_model(f: np.ndarray, t: np.ndarray, alpha: float = CHOICE_ALPHA,
                     prior_songs: float = PRIOR_SONGS) -> ChoiceModel:
    """Fit on one row per song: features ``f`` ``(songs, len(CHOICE_FEATURES))`` and
    targets ``t`` ``(songs, 4)`` (:func:`choice_targets`). Minimises, per target,
    ``sum (t - b - z beta)^2 + alpha |beta|^2 + prior_songs (b - prior)^2``. With no song
    at all it is the prior."""
    f = np.atleast_2d(np.asarray(f, dtype=np.float64)).reshape(-1, len(CHOICE_FEATURES))
    t = np.atleast_2d(np.asarray(t, dtype=np.float64)).reshape(-1, 4)
    n = len(f)
    prior = choice_prior()
    k = len(CHOICE_FEATURES)
    if n == 0:
        return ChoiceModel(np.zeros(k), np.ones(k), np.zeros(k), np.zeros(k),
                           np.zeros((k, 4)), prior, 0, alpha, prior_songs)
    mean = f.mean(axis=0)
    scale = f.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (f - mean) / scale
    tm = t.mean(axis=0)
    intercept = (n * tm + prior_songs * prior) / (n + prior_songs)
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(k), z.T @ (t - tm))
    return ChoiceModel(mean, scale, f.min(axis=0), f.max(axis=0), coef, intercept, n, alpha,
                       prior_songs)


# --- training and evaluation ----------------------------------------------------------------

#: example counts of a full training run (``vocalmix train``)
DEFAULT_COUNTS: dict[str, int] = {"synthetic_train": 5000, "synthetic_val": 1000,
                                  "per_ir_train": 24, "per_ir_val": 8}
MLP_HIDDEN, MLP_L2, MLP_MAXITER = 16, 1e-2, 600
N_IR_FOLDS = 4
#: IR sources (:mod:`vocalmix.training.irlib`); plug-ins missing on a machine are skipped
IR_ORIGINS: tuple[str, ...] = ("real", "pedalboard", "calf", "tap")
AUGMENT_VERSION = 2  # bump when clean_dry / mixing_augment / the example recipe change
# (2: sends normalised to a vocal-weighted energy, the meaning of wet_level_db)


def _quiet(_msg: str) -> None:
    pass


def load_library_irs(root: str | Path, origins: tuple[str, ...] = IR_ORIGINS,
                     fitted: dict[str, dict] | None = None,
                     progress: Progress | None = None) -> list[SendIR]:
    """IRs to train and test on, prepared as sends (:func:`prepare_send_ir`): the real IRs
    under ``root/ir`` and, with more ``origins`` (``pedalboard``, ``calf``, ``tap``), the
    rendered IRs of :func:`vocalmix.training.irlib.library` (their wet-only response, left
    channel). Labels come from ``fitted`` (default :func:`fitted_labels`) where present."""
    fitted = fitted_labels() if fitted is None else fitted
    progress = progress or _quiet
    out: list[SendIR] = []
    try:
        from vocalmix.training import irlib
    except ImportError:
        irlib = None  # type: ignore[assignment]
    if irlib is None:
        return load_send_irs(root, fitted, progress)
    for item in irlib.library(origins, data_dir=root, log=progress):
        if item.origin == "real":
            coll = Path(item.source).parent.name
            s = prepare_send_ir(item.name, coll, item.ir, item.sample_rate,
                                fitted.get(item.name))
        else:
            wet = np.asarray(item.wet if item.wet is not None else item.ir)
            wet = wet[:, 0] if wet.ndim == 2 else wet
            pad = np.concatenate([[1.0], np.zeros(int(_DIRECT_MS * 1e-3 * item.sample_rate)),
                                  wet]).astype(np.float32)  # a unit direct, then the wet
            s = prepare_send_ir(item.name, item.origin, pad, item.sample_rate,
                                fitted.get(item.name))
            if s is not None:
                key = item.settings.get("type", item.settings.get("room_size", ""))
                s = SendIR(s.name, f"{item.origin}-{key}", s.tail, s.decay_s, s.hf_ratio,
                           max(0.0, s.gap_ms - _DIRECT_MS), s.label_source)
        if s is not None and np.isfinite(s.decay_s) and s.decay_s > 0:
            out.append(s)
    progress(f"reverb: {len(out)} impulse responses usable as sends ({', '.join(origins)})")
    return out


def _cache_key(root: Path, irs: list[SendIR], counts: dict, seed: int) -> str:
    import hashlib

    from vocalmix.training.data import file_hash

    h = hashlib.sha256(json.dumps([ESTIMATOR_VERSION, AUGMENT_VERSION, seed, counts,
                                   FEATURE_NAMES]).encode())
    for p in sorted((root / "karaoke" / "mir1k").glob("*.flac")) + sorted(
            (root / "dry_vocals").glob("*.wav")):
        h.update(file_hash(p).encode())
    for s in irs:
        h.update(f"{s.name}|{s.group}|{s.gap_ms:.4f}".encode())  # labels: see _relabel
        h.update(hashlib.sha256(s.tail.tobytes()).digest())
    return h.hexdigest()[:32]


def build_examples(root: str | Path, irs: list[SendIR], counts: dict[str, int] | None = None,
                   seed: int = 0, use_cache: bool = True, progress: Progress | None = None
                   ) -> Examples:
    """Every wet training/validation example (see :func:`make_examples`): synthetic and
    IR sends on the training singers' clips and, separately seeded, on the validation
    singers' clips. Cached under ``cache_dir()/reverb`` keyed by the data's content, the
    IR labels, ``counts``, ``seed`` and the feature and recipe versions."""
    from vocalmix.training.data import cache_dir

    root = Path(root)
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    progress = progress or _quiet
    key = _cache_key(root, irs, counts, seed)
    path = cache_dir() / "reverb" / f"examples_{key}.npz"
    if use_cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                progress(f"reverb: examples from the cache ({path})")
                return _relabel(Examples(*(z[f] for f in ("x", "y", "kind", "singer", "ir",
                                                         "group"))), irs)
        except (OSError, ValueError, KeyError):
            pass
    clips = load_dry_clips(root)
    if not clips:
        raise ModelError(f"no dry vocals under {root} (karaoke/mir1k, dry_vocals)")
    singers = [c.singer for c in clips]
    train = [c for c in clips if not is_validation_singer(c.singer, singers)]
    val = [c for c in clips if is_validation_singer(c.singer, singers)]
    progress(f"reverb: {len(train)} training and {len(val)} validation dry clips "
             f"({len(set(c.singer for c in val))} validation singers)")
    parts = [make_examples(train, counts["synthetic_train"], irs, counts["per_ir_train"],
                           seed, progress=progress)]
    if val:
        parts.append(make_examples(val, counts["synthetic_val"], irs, counts["per_ir_val"],
                                   seed + 7919, progress=progress))
    ex = Examples.concat(parts)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, x=ex.x, y=ex.y, kind=ex.kind, singer=ex.singer, ir=ex.ir,
                     group=ex.group)
            tmp.replace(path)
        except OSError:
            pass
    return ex


def _relabel(ex: Examples, irs: list[SendIR]) -> Examples:
    """Decay and damping labels of the IR examples from ``irs`` (the audio, and so the
    cache, does not depend on them: a new ``reverb_fit.json`` needs no new renders)."""
    lab = {s.name: (s.decay_s, s.hf_ratio) for s in irs}
    y = ex.y.copy()
    for i in np.flatnonzero(ex.kind == "ir"):
        y[i, 0], y[i, 1] = lab[str(ex.ir[i])]
    return Examples(ex.x, y, ex.kind, ex.singer, ex.ir, ex.group)


def _validation_mask(ex: Examples) -> np.ndarray:
    singers = sorted(set(ex.singer.tolist()))
    return np.array([is_validation_singer(s, singers) for s in ex.singer])


def ir_folds(groups: list[str], n_folds: int = N_IR_FOLDS, seed: int = 0) -> list[set[str]]:
    """The IR room groups dealt into ``n_folds`` held-out sets (a seeded shuffle)."""
    g = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(g))
    return [{g[i] for i in order[k::n_folds]} for k in range(n_folds)]


def _errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean absolute errors per parameter (decay in s and in log, damping in log)."""
    return {
        "decay_s": float(np.mean(np.abs(pred[:, 0] - true[:, 0]))),
        "log_decay": float(np.mean(np.abs(np.log(pred[:, 0] / true[:, 0])))),
        "log_hf_ratio": float(np.mean(np.abs(np.log(pred[:, 1] / true[:, 1])))),
        "pre_delay_ms": float(np.mean(np.abs(pred[:, 2] - true[:, 2]))),
        "wet_level_db": float(np.mean(np.abs(pred[:, 3] - true[:, 3]))),
    }


def evaluate_estimator(ex: Examples, n_folds: int = N_IR_FOLDS, seed: int = 0,
                       hidden: int = MLP_HIDDEN, l2: float = MLP_L2,
                       maxiter: int = MLP_MAXITER, progress: Progress | None = None,
                       dry_rows: np.ndarray | None = None) -> dict:
    """Held-out skill of the estimator, next to a constant predictor.

    The IR room groups are dealt into ``n_folds`` folds; for each, the estimator is
    trained on the training singers' synthetic examples and their IR examples outside the
    fold, and tested on the *validation* singers' examples through the fold's IRs (new
    rooms, new voices). The constant predicts the training labels' mean (in the encoded
    space: geometric mean for decay and damping). Errors are given per wet example and
    per IR (predictions averaged over its examples first), overall, for wet levels of
    -15 dB and more (where a reverb is clearly audible), per true wet level and per IR
    origin; plus the synthetic validation examples (validation singers) through fold 0's
    model, and, given ``dry_rows`` (features of the validation singers' dry clips, no
    reverb added), what fold 0's model reads on them."""
    progress = progress or _quiet
    val = _validation_mask(ex)
    is_ir = ex.kind == "ir"
    folds = ir_folds(list(ex.group[is_ir]), n_folds, seed)
    pred = np.full_like(ex.y, np.nan)
    const = np.full_like(ex.y, np.nan)
    synth_pred = synth_const = dry_pred = None
    for k, held in enumerate(folds):
        in_fold = np.isin(ex.group, list(held)) & is_ir
        tr = ~val & ~in_fold
        te = val & in_fold
        progress(f"reverb: fold {k + 1}/{len(folds)}: training on {int(tr.sum())} examples, "
                 f"testing on {int(te.sum())} (IRs of {len(held)} rooms)")
        m = fit_mlp(ex.x[tr], ex.y[tr], hidden, l2, seed, maxiter)
        c = decode_targets(encode_targets(ex.y[tr]).mean(axis=0))[0]
        pred[te] = m.predict(ex.x[te])
        const[te] = c
        if k == 0:
            sv = val & (ex.kind == "synthetic")
            synth_pred, synth_const = m.predict(ex.x[sv]), np.tile(c, (int(sv.sum()), 1))
            dry_pred = m.predict(dry_rows) if dry_rows is not None and len(dry_rows) else None
    te = val & is_ir
    out: dict = {"n_examples": int(len(ex.y)), "n_train_singers": int(len(set(ex.singer[~val]))),
                 "n_val_singers": int(len(set(ex.singer[val]))),
                 "n_irs": int(len(set(ex.ir[is_ir]))), "n_rooms": int(len(set(ex.group[is_ir]))),
                 "n_folds": len(folds), "n_test_examples": int(te.sum())}
    out["per_example"] = {"estimator": _errors(pred[te], ex.y[te]),
                          "constant": _errors(const[te], ex.y[te])}
    audible = te & (ex.y[:, 3] >= -15.0)
    out["wet_ge_minus15db"] = {"n": int(audible.sum()),
                               "estimator": _errors(pred[audible], ex.y[audible]),
                               "constant": _errors(const[audible], ex.y[audible])}
    by_wet = []
    for lo, hi in ((-30.0, -20.0), (-20.0, -10.0), (-10.0, 3.0)):
        m = te & (ex.y[:, 3] >= lo) & (ex.y[:, 3] < hi + (1e-9 if hi == 3.0 else 0.0))
        if m.any():
            by_wet.append({"wet_from_db": lo, "wet_to_db": hi, "n": int(m.sum()),
                           "estimator": _errors(pred[m], ex.y[m]),
                           "constant": _errors(const[m], ex.y[m])})
    out["by_wet_level"] = by_wet
    names = sorted(set(ex.ir[te]))
    per_ir = []
    for nme in names:
        m = te & (ex.ir == nme)
        enc = encode_targets(pred[m]).mean(axis=0)
        per_ir.append({"ir": nme, "group": str(ex.group[m][0]), "n": int(m.sum()),
                       "true": dict(zip(PARAMS, ex.y[m][0].tolist(), strict=True)),
                       "true_decay_s": float(ex.y[m][0, 0]), "true_hf_ratio": float(ex.y[m][0, 1]),
                       "pred_decay_s": float(math.exp(enc[0])),
                       "pred_hf_ratio": float(math.exp(enc[1])),
                       "const_decay_s": float(const[m][0, 0]),
                       "const_hf_ratio": float(const[m][0, 1])})
    if per_ir:
        pt = np.array([[r["pred_decay_s"], r["pred_hf_ratio"], 0, 0] for r in per_ir])
        ct = np.array([[r["const_decay_s"], r["const_hf_ratio"], 0, 0] for r in per_ir])
        tt = np.array([[r["true_decay_s"], r["true_hf_ratio"], 0, 0] for r in per_ir])
        e1, e2 = _errors(pt, tt), _errors(ct, tt)
        keep = ("decay_s", "log_decay", "log_hf_ratio")
        out["per_ir"] = {"n_irs": len(per_ir), "estimator": {k: e1[k] for k in keep},
                         "constant": {k: e2[k] for k in keep}}
    out["irs"] = per_ir
    by_origin = {}
    for origin in sorted({_origin_of(g) for g in ex.group[te]}):
        m = te & np.array([_origin_of(g) == origin for g in ex.group])
        by_origin[origin] = {"n_examples": int(m.sum()), "n_irs": int(len(set(ex.ir[m]))),
                             "estimator": _errors(pred[m], ex.y[m]),
                             "constant": _errors(const[m], ex.y[m])}
    out["by_origin"] = by_origin
    if synth_pred is not None and synth_const is not None and len(synth_pred):
        sv = val & (ex.kind == "synthetic")
        out["synthetic_validation"] = {"n": int(sv.sum()),
                                       "estimator": _errors(synth_pred, ex.y[sv]),
                                       "constant": _errors(synth_const, ex.y[sv])}
    if dry_pred is not None:
        out["dry_validation_clips"] = {
            "n": int(len(dry_pred)),
            "median": dict(zip(PARAMS, np.median(dry_pred, axis=0).tolist(), strict=True)),
            "p10": dict(zip(PARAMS, np.percentile(dry_pred, 10, axis=0).tolist(), strict=True)),
            "p90": dict(zip(PARAMS, np.percentile(dry_pred, 90, axis=0).tolist(), strict=True))}
    out["scatter"] = {"true": ex.y[te].round(3).tolist(), "pred": pred[te].round(3).tolist()}
    return out


def _origin_of(group: str) -> str:
    for o in ("pedalboard", "calf", "tap"):
        if group.startswith(o + "-"):
            return o
    return "real"


def stem_choices(estimator: MLP, stem_folders: list, progress: Progress | None = None
                 ) -> list[dict]:
    """Per professionally mixed song (:func:`vocalmix.training.stems.mixed_songs`): the
    reverb the estimator reads on the mixed vocal stem (the engineers' choice, as far as
    the estimator can tell), the backing's features, the artist, genre and whether it
    is one of MUSDB18's test songs (``test_split``: read and reported, never fitted)."""
    from vocalmix.estimators.baseline import reverb_decay_for_tempo
    from vocalmix.training.data import load_song
    from vocalmix.training.stems import mixed_songs

    progress = progress or _quiet
    out = []
    for m in mixed_songs(stem_folders):
        v, b, sr = load_song(m.song)
        est = estimate_song(estimator, v, sr)
        f, tempo, _found = backing_features(b, sr, estimator)
        progress(f"reverb: {m.song_id}: decay {est['decay_s']:.2f} s, wet "
                 f"{est['wet_level_db']:+.1f} dB, tempo {tempo:.0f} BPM")
        out.append({"song": m.song_id, "artist": m.artist, "genre": m.genre,
                    "test_split": m.test_split,
                    "duration_s": round(v.shape[0] / sr, 2),
                    "choice": {p: est[p] for p in PARAMS},
                    "n_excerpts": est["n_excerpts"],
                    "spread": {k: est[k] for k in est if k.startswith("sd_")},
                    "tempo_bpm": tempo, "tempo_rule_decay_s": reverb_decay_for_tempo(tempo),
                    "features": dict(zip(CHOICE_FEATURES, f.tolist(), strict=True))})
    return out


def _record_arrays(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    f = np.array([[r["features"][k] for k in CHOICE_FEATURES] for r in records]).reshape(
        -1, len(CHOICE_FEATURES))
    t = np.array([choice_targets(r["choice"], r["tempo_bpm"]) for r in records]).reshape(-1, 4)
    return f, t


def cv_choice(records: list[dict], alpha: float = CHOICE_ALPHA,
              prior_songs: float = PRIOR_SONGS, seeds: tuple[int, ...] = CV_SEEDS,
              n_folds: int = CV_FOLDS, sensitivity: bool = True) -> dict:
    """Cross-validation with folds grouped by artist, repeated over ``seeds``: the choice
    model fitted on the other artists' songs, the baseline's rule (tempo rule for the
    decay, :data:`CHOICE_RULE` for the rest) and a constant (the training songs' mean,
    geometric for decay and damping), each against the estimated choice of every
    held-out song. Errors per song are averaged over the seeds first."""
    from vocalmix.estimators.baseline import reverb_decay_for_tempo
    from vocalmix.training.stems import artist_folds

    f, t = _record_arrays(records)
    n = len(records)
    preds: dict[str, list[list[np.ndarray]]] = {m: [[] for _ in range(n)]
                                                for m in ("model", "constant")}
    shifts: list[list[np.ndarray]] = [[] for _ in range(n)]
    for sd in seeds:
        for te in artist_folds([r.get("artist", r["song"]) for r in records], n_folds, sd):
            tr = ~te
            m = fit_choice_model(f[tr], t[tr], alpha, prior_songs)
            enc = encode_targets(np.array([[records[j]["choice"][p] for p in PARAMS]
                                           for j in np.flatnonzero(tr)])).mean(axis=0)
            for j in np.flatnonzero(te).tolist():
                pt = m.predict_targets(f[j])[0]
                preds["model"][j].append(np.array([math.exp(pt[0]), math.exp(pt[1]),
                                                   pt[2], pt[3]]))
                preds["constant"][j].append(decode_targets(enc)[0])
                shifts[j].append(np.abs(pt - m.intercept))
    rows = []
    for i, r in enumerate(records):
        model = dict(zip(PARAMS, decode_targets(encode_targets(np.array(
            preds["model"][i])).mean(axis=0))[0].tolist(), strict=True))
        const = dict(zip(PARAMS, decode_targets(encode_targets(np.array(
            preds["constant"][i])).mean(axis=0))[0].tolist(), strict=True))
        rule = {"decay_s": reverb_decay_for_tempo(r["tempo_bpm"]), **CHOICE_RULE}
        sh = np.mean(shifts[i], axis=0)
        rows.append({"song": r["song"], "artist": r.get("artist", ""), "truth": r["choice"],
                     "model": model, "rule": rule, "constant": const,
                     "feature_shift": {"log_decay": float(sh[0]), "log_hf_ratio": float(sh[1]),
                                       "pre_delay_ms": float(sh[2]),
                                       "wet_level_db": float(sh[3])}})
    summary: dict = {}
    tr_all = np.array([[row["truth"][q] for q in PARAMS] for row in rows]).reshape(-1, 4)
    for meth in ("model", "rule", "constant"):
        p = np.array([[row[meth][q] for q in PARAMS] for row in rows]).reshape(-1, 4)
        summary[meth] = _errors(p, tr_all) if n and np.all(np.isfinite(p)) else None
        if summary[meth] is not None:
            by_artist: dict[str, list[float]] = {}
            for row, pi, ti in zip(rows, p, tr_all, strict=True):
                by_artist.setdefault(row["artist"], []).append(abs(math.log(pi[0] / ti[0])))
            summary[meth]["log_decay_by_artist"] = float(np.mean([np.mean(v) for v in
                                                                  by_artist.values()]))
    out = {"protocol": f"{n_folds}-fold over artists, seeds {', '.join(map(str, seeds))}",
           "n_songs": n, "n_artists": len({r.get("artist", r["song"]) for r in records}),
           "songs": rows, "summary": summary, "alpha": alpha, "prior_songs": prior_songs,
           "prior": dict(zip(("log_decay", "log_hf_ratio", "pre_delay_ms", "wet_level_db"),
                             choice_prior().round(4).tolist(), strict=True))}
    if sensitivity:
        out["sensitivity"] = [
            {"alpha": a, "prior_songs": ps,
             "model": cv_choice(records, a, ps, seeds[:1], n_folds, False)["summary"]["model"]}
            for a in (1.0, 3.0, 10.0, 30.0) for ps in (1.0, 10.0)]
    return out


def _training_files(root: Path) -> list[dict]:
    from vocalmix.training.data import audio_files, file_hash, mir1k_clips
    from vocalmix.training.irlib import real_ir_paths

    files = (mir1k_clips(root / "karaoke")
             + audio_files(root / "dry_vocals") + real_ir_paths(root))
    return [{"name": str(p.relative_to(root)), "sha256": file_hash(p)} for p in files]


def run_reverb_model(root: str | Path | None = None, stem_folders: list | None = None,
                     seed: int = 0, counts: dict[str, int] | None = None,
                     origins: tuple[str, ...] = IR_ORIGINS, validate: bool = True,
                     use_cache: bool = True, progress: Progress | None = None
                     ) -> tuple[ReverbModel, dict]:
    """Build the examples, evaluate the estimator on held-out IRs (``validate``), fit the
    shipped estimator on all examples, read the engineers' choices on the stems, fit the
    choice model and cross-validate it by song. Returns the model and the results (the
    metadata document and the report's data)."""
    from vocalmix._version import __version__
    from vocalmix.training.data import data_root

    progress = progress or _quiet
    root = Path(root) if root is not None else data_root()
    stem_folders = list(stem_folders) if stem_folders else [root]
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    fitted = fitted_labels()
    irs = load_library_irs(root, origins, fitted, progress)
    ex = build_examples(root, irs, counts, seed, use_cache, progress)
    held = None
    if validate:
        clips = load_dry_clips(root)
        singers = [c.singer for c in clips]
        dry_rows = []
        for c in clips:
            if is_validation_singer(c.singer, singers):
                try:
                    dry_rows.append(estimator_features(c.audio, ANALYSIS_SR))
                except ValueError:
                    pass
        held = evaluate_estimator(ex, seed=seed, progress=progress,
                                  dry_rows=np.array(dry_rows).reshape(-1, len(FEATURE_NAMES)))
    progress(f"reverb: fitting the estimator on all {len(ex.y)} examples")
    est = fit_mlp(ex.x, ex.y, MLP_HIDDEN, MLP_L2, seed, MLP_MAXITER)
    read = stem_choices(est, stem_folders, progress)
    records = [r for r in read if not r["test_split"]]
    f, t = _record_arrays(records)
    choice = fit_choice_model(f, t)
    loso = cv_choice(records) if len({r["artist"] for r in records}) >= 2 else None
    meta = {
        "model": "reverb parameter model: MLP estimator of the synthetic reverb's parameters "
                 "in a wet vocal, and ridge regressions of the engineers' choice on backing "
                 "features, intercepts shrunk toward the baseline's rule",
        "vocalmix_version": __version__, "version": ESTIMATOR_VERSION,
        "augment_version": AUGMENT_VERSION,
        "seed": seed, "counts": counts, "origins": list(origins),
        "mlp": {"hidden": MLP_HIDDEN, "l2": MLP_L2, "maxiter": MLP_MAXITER},
        "params": list(PARAMS), "label_ranges": LABEL_RANGES,
        "damping_family": "band_decay_ratios = 1 up to 1 kHz, hf_ratio ** (log2(f/1k)/2) above",
        "feature_names": list(FEATURE_NAMES), "choice_features": list(CHOICE_FEATURES),
        "choice_prior": dict(zip(("log_decay", "log_hf_ratio", "pre_delay_ms",
                                  "wet_level_db"), choice_prior().round(4).tolist(),
                                 strict=True)),
        "choice_prior_source": "pooled DiffVox presets with a reverb (assets/diffvox_prior.json)",
        "choice_alpha": CHOICE_ALPHA, "prior_songs": PRIOR_SONGS,
        "n_examples": int(len(ex.y)), "n_songs": len(records),
        "irs": [{"name": s.name, "group": s.group, "decay_s": round(s.decay_s, 4),
                 "hf_ratio": round(s.hf_ratio, 4), "gap_ms": round(s.gap_ms, 2),
                 "labels": s.label_source} for s in irs],
        "training_files": _training_files(root),
        "songs": records,
        "test_split_songs": [r for r in read if r["test_split"]],
        "estimator_held_out": ({k: v for k, v in held.items() if k not in ("scatter", "irs")}
                               if held else None),
        "choice_cross_validated": ({"n_songs": loso["n_songs"], "summary": loso["summary"]}
                                   if loso else None),
    }
    model = ReverbModel(est, choice, meta=meta)
    results = {"meta": meta, "held_out": held, "loso": loso, "check_x": ex.x[:6],
               "date": dt.date.today().isoformat(),
               "check_f": f if len(f) else np.zeros((1, len(CHOICE_FEATURES)))}
    return model, results


def train_reverb_model(out: str | Path, data: list | None = None, root: str | Path | None = None,
                       seed: int = 0, progress: Progress | None = None, use_cache: bool = True,
                       validate: bool = True, counts: dict[str, int] | None = None,
                       origins: tuple[str, ...] = IR_ORIGINS) -> tuple[ReverbModel, dict]:
    """``vocalmix train``'s hook: (re)train the reverb model and write
    ``reverb_model.npz`` and ``reverb_model.json`` into ``out``.

    Args:
        out: folder to write to (``src/vocalmix/assets`` to ship the weights).
        data: folders of mixed stems whose vocals give the engineers' choices (the
            ``--data`` of ``vocalmix train``; default ``<data root>/stems``).
        root: the data root with ``karaoke/mir1k``, ``dry_vocals`` and ``ir`` (default
            :func:`vocalmix.training.data.data_root`, which honours ``$VOCALMIX_DATA``).
        seed: random seed of the examples and the network's initialisation.
        validate: also evaluate the estimator on held-out IRs (4 more fits) for the
            metadata.
        counts, origins: example counts (:data:`DEFAULT_COUNTS`) and IR origins.
    Returns the model and its metadata.
    """
    model, res = run_reverb_model(root, data, seed, counts, origins, validate, use_cache,
                                  progress)
    model.save(out, res["meta"], res["check_x"], res["check_f"])
    shipped_model.cache_clear()
    return model, res["meta"]


def reverb_report(stem_folders: list, root: str | Path | None = None,
                  progress: Progress | None = None, seed: int = 0, use_cache: bool = True,
                  origins: tuple[str, ...] = IR_ORIGINS) -> dict:
    """Everything the reverb report shows (held-out IR errors, the engineers' choices,
    leave-one-song-out results), computed from scratch the way training does."""
    _model, res = run_reverb_model(root, stem_folders, seed, None, origins, True, use_cache,
                                   progress)
    meta = dict(res["meta"])
    meta["training_files"] = f"{len(meta['training_files'])} files (see assets/{FILES.meta})"
    meta["date"] = res["date"]
    return {"meta": meta, "held_out": res["held_out"], "loso": res["loso"]}


__all__ = [
    "CHOICE_ALPHA",
    "CHOICE_RULE",
    "LABEL_RANGES",
    "PRIOR_SONGS",
    "evaluate_estimator",
    "fit_choice_model",
    "fit_mlp",
    "cv_choice",
    "make_examples",
    "render_synthetic_send",
    "reverb_report",
    "run_reverb_model",
    "train_reverb_model",
]
