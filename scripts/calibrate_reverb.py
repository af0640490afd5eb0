"""Measure T30 of pedalboard's Reverb over a grid and write the calibration table.

    PYTHONPATH=src python scripts/calibrate_reverb.py [-o PATH]

Renders the wet-only stereo impulse response (:func:`vocalmix.core.reverb.render_freeverb_ir`,
default length, width 1, 44.1 kHz) at every room_size 0, 0.025, ..., 1 and damping
0 to 1 (23 values, dense near 0 where T30 changes fastest), measures its broadband T30
(:func:`vocalmix.core.reverb.reverberation_time`: Schroeder integration with Lundeby-style
noise subtraction, truncation and compensation, least-squares fit -5..-35 dB) and
writes the table to
``src/vocalmix/assets/freeverb_calibration.json`` (package data read by
:func:`vocalmix.core.reverb.calibration`).

From the same renders it stores Freeverb's wet energy for a finished vocal's spectrum
(:func:`vocalmix.core.reverb.freeverb_wet_energy`): ``wet_energy_db`` (mean vocal-weighted
energy of the two channels at width 1, dB) and ``wet_cross`` (their weighted
cross-energy over that mean), from which :func:`vocalmix.core.reverb.freeverb_wet_offset_db`
gives the gain that makes ``wet_level_db`` the reverberant-to-direct ratio at any width.

It also records these checks in the JSON and prints them:

* ``sample_rate_check``: T30 at 22.05, 48 and 96 kHz against 44.1 kHz at a few points
  (Freeverb rescales its delay lines to the rate; only the per-sample damping filter
  could make the rate matter).
* ``interpolation_check``: T30 rendered half-way between grid points (room_size and
  damping) against :func:`vocalmix.core.reverb.decay_for_room_size` from the new table.
* ``wet_energy_check``: the vocal-weighted wet energy rendered half-way between grid
  points, at widths 0, 0.5 and 1, and at other rates, against the table's prediction, dB.

Takes about half a minute on one core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import pedalboard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vocalmix.core import reverb  # noqa: E402

ROOM = [round(0.025 * k, 3) for k in range(41)]
# T30 falls steeply with the first bit of damping (at room_size 1: 11.3 s at damping 0,
# 10.5 s at 0.005, 9.8 s from 0.03 on), so the damping grid is dense near 0.
DAMPING = [0.0, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1,
           0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
SR = 44100
OUT = ROOT / "src" / "vocalmix" / reverb.CALIBRATION_RESOURCE
RATE_CHECK_ROOM = (0.0, 0.3, 0.6, 0.9, 1.0)
RATE_CHECK_DAMPING = (0.0, 0.5, 1.0)
RATE_CHECK_RATES = (22050, 48000, 96000)


def t30(room: float, damping: float, sample_rate: int = SR) -> float:
    """Broadband T30 (s) of the wet Freeverb IR."""
    ir = reverb.render_freeverb_ir(room, damping, 1.0, sample_rate)
    return reverb.reverberation_time(ir, sample_rate, "T30")


def t30_and_energy(room: float, damping: float) -> tuple[float, float, float]:
    """(T30 s, wet energy dB, cross-energy ratio) of the width-1 wet IR at 44.1 kHz."""
    ir = reverb.render_freeverb_ir(room, damping, 1.0, SR)
    e, c = reverb.freeverb_wet_energy(ir, SR)
    return reverb.reverberation_time(ir, SR, "T30"), 10.0 * np.log10(e), c


def wet_db(room: float, damping: float, width: float, sample_rate: int = SR) -> float:
    """Mean vocal-weighted wet energy (dB) of the two channels, rendered."""
    ir = reverb.render_freeverb_ir(room, damping, width, sample_rate)
    return float(10.0 * np.log10(reverb.vocal_weighted_energy(ir, sample_rate).mean()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=OUT, help=f"default {OUT}")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    table, wet_e, wet_c = [], [], []
    for d in DAMPING:
        cells = [t30_and_energy(r, d) for r in ROOM]
        row = [round(c[0], 5) for c in cells]
        if not all(np.isfinite(row)) or not np.all(np.diff(row) > 0):
            raise SystemExit(f"damping {d}: T30 not finite and increasing in room_size: {row}")
        print(f"damping {d:6}: T30 {row[0]:.3f} s (room 0) .. {row[-1]:.3f} s (room 1); "
              f"wet energy {cells[0][1]:+.2f} .. {cells[-1][1]:+.2f} dB")
        table.append(row)
        wet_e.append([round(float(c[1]), 4) for c in cells])
        wet_c.append([round(float(c[2]), 5) for c in cells])

    rate_check = []
    for d in RATE_CHECK_DAMPING:
        for r in RATE_CHECK_ROOM:
            ref = table[DAMPING.index(d)][ROOM.index(r)]
            for s in RATE_CHECK_RATES:
                v = t30(r, d, s)
                rate_check.append({"sample_rate_hz": s, "room_size": r, "damping": d,
                                   "t30_s": round(v, 5), "rel_to_44100": round(v / ref - 1, 5)})
    worst_rate = max(abs(c["rel_to_44100"]) for c in rate_check)
    print(f"sample rate: worst T30 difference vs 44.1 kHz {worst_rate:.2%} "
          f"({len(rate_check)} points at {RATE_CHECK_RATES} Hz)")

    doc = {
        "description": "broadband T30 (s) of pedalboard.Reverb wet-only stereo impulse "
                       "responses; t30_s[i][j] is at damping[i], room_size[j]",
        "method": "unit impulse in both channels, fresh pedalboard.Reverb(dry_level=0, "
                  "wet_level=1, width=1), length min(30 s, 2 x T60 estimate + 0.5 s); "
                  "ISO 3382-1 T30: Schroeder backward integration from the onset "
                  "(first sample within 20 dB of the peak), Lundeby-style noise-floor "
                  "subtraction, truncation and compensation, least-squares fit -5..-35 dB "
                  "(vocalmix.core.reverb.reverberation_time)",
        "interpolation": "log T30 linear in damping, piecewise linear in "
                         "log(-log(0.7 + 0.28 room_size)) (vocalmix.core.reverb)",
        "pedalboard_version": pedalboard.__version__,
        "date": dt.date.today().isoformat(),
        "sample_rate_hz": SR,
        "width": 1.0,
        "room_size": ROOM,
        "damping": DAMPING,
        "t30_s": table,
        "wet_energy_description": "wet_energy_db[i][j]: mean over the two channels of the "
                                  "width-1 wet IR's energy weighted by the reference vocal "
                                  "spectrum (vocalmix.core.reverb.vocal_weighted_energy), "
                                  "dB; wet_cross[i][j]: the channels' weighted "
                                  "cross-energy over that mean",
        "wet_energy_db": wet_e,
        "wet_cross": wet_c,
        "sample_rate_check": {"worst_rel": round(worst_rate, 5), "points": rate_check},
    }

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if args.output.resolve() != OUT.resolve():
        print(f"wrote {args.output} (no interpolation check: not the package's table)")
        return 0
    # check the interpolation of the new table against renders between grid points
    reverb.calibration.cache_clear()
    checks = []
    mids = [round(r + 0.0125, 4) for r in ROOM[:-1]]
    mid_damping = [round((a + b) / 2, 5) for a, b in zip(DAMPING[:-1], DAMPING[1:], strict=True)]
    for d, rooms in [(0.5, mids)] + [(d, mids[::4] + [1.0]) for d in mid_damping]:
        for r in rooms:
            v = t30(r, d)
            p = reverb.decay_for_room_size(r, d)
            checks.append({"room_size": r, "damping": d, "t30_s": round(v, 5),
                           "predicted_s": round(p, 5), "rel_error": round(p / v - 1, 5)})
    worst = max(abs(c["rel_error"]) for c in checks)
    d05 = [abs(c["rel_error"]) for c in checks if c["damping"] == 0.5]
    print(f"interpolation: worst error {worst:.2%} over {len(checks)} off-grid points "
          f"(damping 0.5 alone: {max(d05):.2%})")
    doc["interpolation_check"] = {"worst_rel": round(worst, 5), "points": checks}
    wchecks = []
    for d in (0.0, 0.0125, 0.35, 0.5, 0.95):
        for r in (0.0125, 0.3125, 0.6125, 0.8875, 0.9875):
            for w in (0.0, 0.5, 1.0):
                for sr in ((SR, 48000) if w == 1.0 else (SR,)):
                    v = wet_db(r, d, w, sr)
                    p = -reverb.freeverb_wet_offset_db(r, d, w, sr)
                    wchecks.append({"room_size": r, "damping": d, "width": w,
                                    "sample_rate_hz": sr, "wet_energy_db": round(v, 4),
                                    "predicted_db": round(p, 4), "error_db": round(p - v, 4)})
    wworst = max(abs(c["error_db"]) for c in wchecks)
    print(f"wet energy: worst error {wworst:.2f} dB over {len(wchecks)} off-grid points, "
          "widths 0-1, 44.1 and 48 kHz")
    doc["wet_energy_check"] = {"worst_db": round(wworst, 4), "points": wchecks}
    args.output.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    reverb.calibration.cache_clear()
    print(f"wrote {args.output} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
