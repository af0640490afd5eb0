"""Measure T30 of pedalboard's Reverb over a grid and write the calibration table.

    python scripts/calibrate_reverb.py [-o src/vocalmix/assets/freeverb_calibration.json]

Renders the wet-only stereo impulse response at every (room_size, damping) of the grid
(44.1 kHz, width 1), measures its broadband T30 by Schroeder integration
(:func:`vocalmix.reverb.reverberation_time`), and checks at a few points that the figure
does not depend on the sample rate (Freeverb scales its delay lines to the rate).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pedalboard

from vocalmix.reverb import render_freeverb_ir, reverberation_time

ROOM = [round(x, 3) for x in np.linspace(0.0, 1.0, 41)]
DAMPING = [0.0, 0.25, 0.5, 0.75, 1.0]
SR = 44100


def _length_s(room: float) -> float:
    return float(min(30.0, 2.0 + 3.5 * np.exp(3.0 * room) / np.exp(3.0) * 9.7 * 0.5 + room))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--output", default="src/vocalmix/assets/freeverb_calibration.json")
    args = ap.parse_args()
    table = []
    for d in DAMPING:
        row = []
        for r in ROOM:
            ir = render_freeverb_ir(r, d, 1.0, SR, length_s=30.0 if r > 0.9 else _length_s(r))
            t30 = reverberation_time(ir, SR, "T30")
            row.append(round(float(t30), 5))
        print(f"damping {d}: T30 {row[0]:.3f} .. {row[-1]:.3f} s", file=sys.stderr)
        table.append(row)
    rate_check = {}
    for r in (0.2, 0.6):
        rate_check[str(r)] = {
            str(s): round(reverberation_time(render_freeverb_ir(r, 0.5, 1.0, s), s), 4)
            for s in (22050, 44100, 48000, 96000)
        }
    doc = {
        "description": "broadband T30 (s) of pedalboard.Reverb wet-only impulse responses",
        "method": "Schroeder backward integration, -5..-35 dB fit (vocalmix.reverb)",
        "pedalboard_version": pedalboard.__version__,
        "sample_rate_hz": SR,
        "width": 1.0,
        "date": dt.date.today().isoformat(),
        "room_size": ROOM,
        "damping": DAMPING,
        "t30_s": table,
        "sample_rate_check_t30_s": rate_check,
    }
    Path(args.output).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(rate_check), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
