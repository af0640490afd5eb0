"""How often ``vocal_offset_ms="auto"`` finds a take's recording latency, and whether it
ever moves a take wrongly (the README's figures).

Takes of 49 s are made of 7 mixed vocal clips of MUSDB18's training excerpts
(``musdb18-7s/train``) over their backings: the voice recorded ``L`` ms late (25-250 ms,
a phone's or an interface's round trip) with a copy of the backing dulled as a speaker
in a room gives it (a one-pole low-pass) and 4 ms later still (the air to the
microphone), 6, 10 or 12 dB under the voice. The take is read as ``auto`` reads it
(:func:`vocalmix.core.bleed.backing_in_vocal`, :func:`vocalmix.pipeline.auto_offset_ms`);
the same clips without the copy must stay where they are.

    python scripts/eval_auto_offset.py [--data /work/shared/data] [--takes 30] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

LEVELS_DB = (-6.0, -10.0, -12.0)
AIR_MS = 4.0


def _dull(x: np.ndarray) -> np.ndarray:
    """A one-pole low-pass (``y = 0.3 x + 0.7 y[-1]``), per channel."""
    from scipy.signal import lfilter

    return np.asarray(lfilter([0.3], [1.0, -0.7], x, axis=0), np.float32)


def _late(x: np.ndarray, d: int) -> np.ndarray:
    return np.concatenate([np.zeros((d, x.shape[1]), np.float32), x[:-d]])


def main() -> None:
    from vocalmix.core.bleed import backing_in_vocal
    from vocalmix.pipeline import auto_offset_ms
    from vocalmix.training.data import load_stem_mp4

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("VOCALMIX_DATA", "../shared/data"))
    ap.add_argument("--takes", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    files = sorted((Path(args.data) / "musdb18-7s" / "train").glob("*.stem.mp4"))
    if len(files) < 7:
        raise SystemExit(f"no MUSDB18 training excerpts under {args.data}/musdb18-7s/train")
    clips = [load_stem_mp4(f) for f in files]
    sr = clips[0][2]
    rng = np.random.default_rng(args.seed)
    found = {lv: 0 for lv in LEVELS_DB}
    wrong = clean_moved = 0
    errors: list[float] = []
    for _ in range(args.takes):
        pick = rng.choice(len(clips), 7, replace=False)
        voice = np.concatenate([clips[j][0] for j in pick]).astype(np.float32)
        backing = np.concatenate([clips[j][1] for j in pick]).astype(np.float32)
        clean_moved += auto_offset_ms(backing_in_vocal(voice, backing, sr))[0] != 0.0
        d = int(round(sr * float(rng.uniform(25.0, 250.0)) / 1000.0))
        copy_late = d + int(round(sr * AIR_MS / 1000.0))
        copy = _dull(_late(backing, copy_late))
        take = _late(voice, d)
        for lv in LEVELS_DB:
            g = np.float32(np.sqrt((voice**2).mean() / max(float((copy**2).mean()), 1e-12))
                           * 10.0 ** (lv / 20.0))
            moved, _ = auto_offset_ms(backing_in_vocal(take + g * copy, backing, sr))
            if moved == 0.0:
                continue
            err = -moved - 1000.0 * copy_late / sr  # ms, against the copy's lateness
            errors.append(err)
            if abs(err) <= 1.0:
                found[lv] += 1
            else:
                wrong += 1
    print(f"takes without a copy moved: {clean_moved} of {args.takes}")
    for lv in LEVELS_DB:
        print(f"copy {lv:+.0f} dB under the voice: moved by the copy's lateness in "
              f"{found[lv]} of {args.takes}")
    print(f"moved by another amount: {wrong}")
    if errors:
        print(f"reading minus the copy's lateness: at most {max(abs(e) for e in errors):.2f} ms")


if __name__ == "__main__":
    main()
