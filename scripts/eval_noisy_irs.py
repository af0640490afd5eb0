"""How well ``vocalmix fit-reverb`` fits impulse responses recorded with noise (a script,
not a test).

Each real IR of ``$VOCALMIX_DATA/ir`` (default ``../shared/data/ir``) gets 0.3 s of
silence appended and white noise added ``--snr`` dB under its peak (a fixed seed per
file and level), and is fitted as ``vocalmix fit-reverb`` fits it. The T30 of the
fitted send, rendered and measured as the fit's report measures it, is compared with the
clean file's measured T30 in the octave bands 500 Hz-4 kHz (the bands where the clean
file's T30 can be measured). Printed per noise level: how many of those band decays
lie within 10 % of the clean file's, and the median error; each band is also counted by
what the fit aimed at there on the noisy file (its T30, its T20, the decay-plus-noise
fit, or no decay of its own). ``--out`` keeps every figure as JSON.

    python scripts/eval_noisy_irs.py [--snr 35,40,45,60] [--jobs 2] [--out FILE]

About 4 minutes for the four levels on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

BANDS = (500.0, 1000.0, 2000.0, 4000.0)


def with_noise(x: np.ndarray, snr_db: float, sample_rate: int, seed: int) -> np.ndarray:
    """``x`` ``(n, channels)`` with 0.3 s of silence appended and white noise ``snr_db``
    under its peak added."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([x, np.zeros((int(0.3 * sample_rate), x.shape[1]))])
    return x + rng.standard_normal(x.shape) * np.abs(x).max() * 10.0 ** (-snr_db / 20.0)


def aimed_at(d, band: float) -> str:
    """What the fit aims at in ``band`` of the noisy file's figures ``d``
    (:meth:`vocalmix.training.fitreverb.Descriptors.decay_fallback`)."""
    aim, by_t20, by_fit = d.decay_fallback()
    if band in by_t20:
        return "T20"
    if band in by_fit:
        return "noise fit"
    return "T30" if math.isfinite(aim.t30[band]) else "none"


def one(job: tuple[str, tuple[float, ...]]) -> dict:
    import soundfile as sf

    from vocalmix.training import fitreverb as fr

    path, snrs = job
    x, sr = sf.read(path, always_2d=True)
    clean = fr.describe(x, sr)
    out: dict = {"ir": path, "clean_t30_s": {str(b): clean.t30[b] for b in BANDS}, "noisy": {}}
    for snr in snrs:
        y = with_noise(x, snr, sr, zlib.crc32(path.encode()) + int(snr))
        d = fr.describe(y, sr)
        r = fr.fit_ir(y, sr)
        out["noisy"][str(snr)] = {
            str(b): {"fitted_t30_s": r["fitted"]["t30_s"].get(str(int(b))),
                     "aimed_at": aimed_at(d, b)} for b in BANDS}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snr", default="35,40,45,60", help="noise levels, dB under the peak")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", help="write every figure to this JSON file")
    args = ap.parse_args()
    snrs = tuple(float(s) for s in args.snr.split(","))

    from vocalmix.training.data import data_root

    root = data_root() / "ir"
    paths = sorted(str(p) for p in root.rglob("*.wav"))
    if not paths:
        print(f"no impulse responses in {root} (set VOCALMIX_DATA)", file=sys.stderr)
        return 2
    with ProcessPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(one, [(p, snrs) for p in paths]))
    for snr in snrs:
        errors, kinds, hits = [], Counter(), Counter()
        for r in rows:
            for b in BANDS:
                ref = r["clean_t30_s"][str(b)]
                if not math.isfinite(ref):
                    continue
                cell = r["noisy"][str(snr)][str(b)]
                f = cell["fitted_t30_s"]
                e = abs(f / ref - 1.0) if f is not None else math.inf
                errors.append(e)
                kinds[cell["aimed_at"]] += 1
                hits[cell["aimed_at"]] += e <= 0.10
        err = np.asarray(errors)
        by = ", ".join(f"{k} {hits[k]}/{kinds[k]}" for k in ("T30", "T20", "noise fit", "none")
                       if kinds[k])
        print(f"noise {snr:g} dB under the peak: {np.mean(err <= 0.10):.0%} of {err.size} band "
              f"decays within 10 % of the clean IR's T30, median error "
              f"{np.median(err):.1%} (within 10 %, by what the fit aimed at: {by})")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
