"""Fit the reverb that MixParams renders to measured impulse responses (issue 4, reverb).

``vocalmix fit-reverb IR.wav [...] -o presets.json [--report DIR]``

The rendered reverb is the vocal chain's send: the dry impulse plus
``wet_level_db`` x pedalboard's Freeverb (``room_size``, ``damping``) delayed by
``pre_delay_ms``. A genetic optimiser, ``scipy.optimize.differential_evolution``, searches
those four parameters so that the rendered response matches the target IR's energy decay
per octave band (T30 and EDT at 500 Hz-4 kHz, broadband T30) and its early-to-late energy
ratio (C50). Both sides are measured by the same ISO 3382 routine
(:mod:`vocalmix.reverb`, Schroeder integration, checked against a synthetic exponential
decay in the tests). Work is done at 22.05 kHz: Freeverb's decay does not depend on the
rate (see the calibration) and the bands of interest lie far below Nyquist.

Each fitted IR becomes a named preset (``vocalmix mix --reverb-preset NAME``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .reverb import clarity_c50_db, render_freeverb_ir, reverberation_time

FIT_SR = 22050
FIT_BANDS_HZ = (500.0, 1000.0, 2000.0, 4000.0)
REPORT_BANDS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
BOUNDS = {"room_size": (0.0, 1.0), "damping": (0.0, 1.0), "wet_level_db": (-30.0, 10.0),
          "pre_delay_ms": (0.0, 100.0)}


@dataclass(frozen=True)
class Descriptors:
    """ISO 3382 figures of one IR: T30 and EDT per band (s), broadband T30 (s), C50 (dB)."""

    t30: dict[float, float]
    edt: dict[float, float]
    t30_broadband: float
    c50_db: float

    def as_dict(self) -> dict:
        return {"t30_s": {str(int(k)): v for k, v in self.t30.items()},
                "edt_s": {str(int(k)): v for k, v in self.edt.items()},
                "t30_broadband_s": self.t30_broadband, "c50_db": self.c50_db}


def describe(ir: np.ndarray, sample_rate: int, bands=REPORT_BANDS_HZ) -> Descriptors:
    """T30/EDT per octave band, broadband T30 and C50 of an IR."""
    return Descriptors(
        t30={b: reverberation_time(ir, sample_rate, "T30", b) for b in bands},
        edt={b: reverberation_time(ir, sample_rate, "EDT", b) for b in bands},
        t30_broadband=reverberation_time(ir, sample_rate, "T30"),
        c50_db=clarity_c50_db(ir, sample_rate),
    )


def render_send_ir(params: dict[str, float], sample_rate: int = FIT_SR,
                   length_s: float | None = None) -> np.ndarray:
    """The vocal chain's reverb send for a unit impulse: dry impulse + delayed wet."""
    wet = render_freeverb_ir(params["room_size"], params["damping"], 1.0, sample_rate,
                             length_s)
    d = int(round(params["pre_delay_ms"] * 1e-3 * sample_rate))
    out = np.zeros((wet.shape[0] + d, 2), np.float32)
    out[0] = 1.0
    out[d:] += wet * np.float32(10 ** (params["wet_level_db"] / 20))
    return out


def _prepare_target(ir: np.ndarray, sample_rate: int) -> np.ndarray:
    import soxr

    x = np.asarray(ir, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if sample_rate != FIT_SR:
        x = soxr.resample(x, sample_rate, FIT_SR, quality="HQ")
    return x


def _loss(target: Descriptors, cand: Descriptors) -> float:
    # weights: the late decay (T30) matters most, then the early decay (EDT) and C50
    terms = []
    for b in FIT_BANDS_HZ:
        for td, cd, w in ((target.t30, cand.t30, 2.0), (target.edt, cand.edt, 1.0)):
            t, c = td.get(b, np.nan), cd.get(b, np.nan)
            if np.isfinite(t):
                terms.append(w * (np.log(c / t) if np.isfinite(c) and c > 0 else 3.0))
    t, c = target.t30_broadband, cand.t30_broadband
    if np.isfinite(t):
        terms.append(2.0 * (np.log(c / t) if np.isfinite(c) and c > 0 else 3.0))
    if np.isfinite(target.c50_db) and np.isfinite(cand.c50_db):
        terms.append(0.5 * (cand.c50_db - target.c50_db) / 10.0)
    return float(np.sum(np.square(terms))) if terms else 1e6


def fit_ir(ir: np.ndarray, sample_rate: int, *, seed: int = 0, popsize: int = 8,
           maxiter: int = 12) -> dict:
    """Fit the send's parameters to one IR; returns params, target and fitted figures."""
    from scipy.optimize import differential_evolution

    x = _prepare_target(ir, sample_rate)
    target = describe(x, FIT_SR, FIT_BANDS_HZ)
    t_long = max([v for v in (*target.t30.values(), target.t30_broadband)
                  if np.isfinite(v)] or [1.0])
    length = float(min(20.0, 1.2 * t_long + 0.5))
    names = list(BOUNDS)

    def objective(v: np.ndarray) -> float:
        p = dict(zip(names, v, strict=True))
        return _loss(target, describe(render_send_ir(p, FIT_SR, length), FIT_SR, FIT_BANDS_HZ))

    res = differential_evolution(objective, [BOUNDS[n] for n in names], seed=seed,
                                 popsize=popsize, maxiter=maxiter, tol=1e-3, polish=False,
                                 init="sobol", updating="immediate")
    params = {n: float(v) for n, v in zip(names, res.x, strict=True)}
    fitted_ir = render_send_ir(params, FIT_SR, length)
    return {
        "params": {k: round(v, 4) for k, v in params.items()},
        "loss": float(res.fun),
        "evaluations": int(res.nfev),
        "target": describe(x, FIT_SR).as_dict(),
        "fitted": describe(fitted_ir, FIT_SR).as_dict(),
    }


def t30_within(result: dict, tolerance: float = 0.10, bands=(500, 1000, 2000, 4000)) -> bool:
    """Whether fitted T30 is within ``tolerance`` of the target in every given band."""
    for b in bands:
        t = result["target"]["t30_s"].get(str(b))
        f = result["fitted"]["t30_s"].get(str(b))
        if t is None or f is None or not np.isfinite(t) or not np.isfinite(f):
            return False
        if abs(f - t) > tolerance * t:
            return False
    return True


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix fit-reverb``."""
    p = sub.add_parser("fit-reverb", help="fit the reverb to impulse responses (presets)")
    p.add_argument("irs", nargs="+", help="impulse response files")
    p.add_argument("-o", "--output", required=True, help="presets JSON to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--maxiter", type=int, default=12, help="generations of the optimiser")
    p.add_argument("--force", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from .audio import check_outputs, read_audio, write_text
    from .errors import AudioError

    check_outputs([args.output], args.irs, force=args.force)
    presets = {}
    for i, path in enumerate(args.irs):
        try:  # a true-stereo IR has 4 channels: its energy is what is fitted, so average
            a = read_audio(path, max_duration_s=60.0, fold="mean")
        except AudioError as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        if not args.quiet:
            print(f"[{i + 1}/{len(args.irs)}] fitting {path}", file=sys.stderr, flush=True)
        r = fit_ir(a.samples, a.sample_rate, seed=args.seed, maxiter=args.maxiter)
        r["within_10pct_500_4k"] = t30_within(r)
        presets[Path(path).stem] = {"source": Path(path).name, **r}
        if not args.quiet:
            tt, ft = r["target"]["t30_s"], r["fitted"]["t30_s"]
            print("   T30 target/fitted (s): " + ", ".join(
                f"{b} Hz {tt[b]:.2f}/{ft[b]:.2f}" for b in ("500", "1000", "2000", "4000")
                if tt[b] is not None), file=sys.stderr)
    write_text(args.output, json.dumps(presets, indent=1, allow_nan=True) + "\n",
               force=args.force)
    ok = sum(p["within_10pct_500_4k"] for p in presets.values())
    print(f"fitted {len(presets)} IR(s); T30 within 10% at 500 Hz-4 kHz for {ok}; "
          f"wrote {args.output}")
    return 0
