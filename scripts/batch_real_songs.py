"""Build a batch manifest of the real songs of the shared data, plus broken rows.

Every song that :func:`vocalmix.training.data.find_songs` finds under ``stems/`` and
``musdb18-7s/train/`` (91 songs) is decoded once by the data layer (``.stem.mp4`` through
ffmpeg; stem folders summed into the backing) and written as two 32-bit float WAV files
(exactly the decoded samples) into ``FOLDER/audio/``; ``FOLDER/manifest.csv`` lists them
and three deliberately broken rows: a missing file, a file that is not audio, a silent
vocal. Nothing is written into the repository or the data folder.

    python scripts/batch_real_songs.py FOLDER [--data /work/shared/data]
    vocalmix batch FOLDER/manifest.csv --out FOLDER/out
    python scripts/batch_real_songs.py FOLDER --check FOLDER/out   # vs single vocalmix mix
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path


def build(folder: Path, data: Path) -> Path:
    import numpy as np
    import soundfile as sf

    from vocalmix.batch import safe_name
    from vocalmix.training.data import find_songs, load_song

    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    songs = [s for s in find_songs([data / "stems", data / "musdb18-7s" / "train"])
             if s.has_level_info]
    rows = []
    for i, song in enumerate(songs, 1):
        name = safe_name(song.song_id)
        vp, bp = audio / f"{name}.vocal.wav", audio / f"{name}.backing.wav"
        if not (vp.exists() and bp.exists()):
            v, b, sr = load_song(song)
            sf.write(vp, v, sr, subtype="FLOAT")
            sf.write(bp, b, sr, subtype="FLOAT")
        rows.append({"id": song.song_id, "vocal": f"audio/{vp.name}",
                     "backing": f"audio/{bp.name}"})
        print(f"{i}/{len(songs)} {song.song_id}", file=sys.stderr, flush=True)
    good_backing = rows[0]["backing"]
    (audio / "not_audio.wav").write_text("this file is not audio\n")
    sf.write(audio / "silent.wav", np.zeros((44100 * 5, 2), np.float32), 44100)
    rows += [
        {"id": "broken: missing file", "vocal": "audio/does_not_exist.wav",
         "backing": good_backing},
        {"id": "broken: undecodable", "vocal": "audio/not_audio.wav", "backing": good_backing},
        {"id": "broken: silent vocal", "vocal": "audio/silent.wav", "backing": good_backing},
    ]
    m = folder / "manifest.csv"
    with open(m, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "vocal", "backing"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {m}: {len(songs)} songs + 3 broken rows", file=sys.stderr)
    return m


def check(folder: Path, out: Path) -> int:
    """Mix every ok row again with a single ``vocalmix mix`` process and compare bytes."""
    from vocalmix.batch import read_results

    table = read_results(out)
    single = folder / "single"
    single.mkdir(exist_ok=True)
    same = differ = 0
    t0 = time.perf_counter()
    for r in table:
        if r["status"] != "ok":
            continue
        name = Path(r["mix_path"]).stem
        mix, params = single / f"{name}.wav", single / f"{name}.json"
        subprocess.run([sys.executable, "-m", "vocalmix", "mix", r["vocal"], r["backing"],
                        "-o", str(mix), "--params-out", str(params), "--force", "-q"],
                       check=True, stdout=subprocess.DEVNULL)
        ok = (mix.read_bytes() == (out / r["mix_path"]).read_bytes()
              and params.read_text() == r["params_json"])
        same += ok
        differ += not ok
        if not ok:
            print(f"DIFFERS: {r['id']}", file=sys.stderr)
    print(f"{same} mixes bit-identical to single `vocalmix mix` runs, {differ} differ "
          f"({time.perf_counter() - t0:.0f} s for the single runs)")
    return 1 if differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--check", type=Path, help="a batch output folder to compare")
    args = ap.parse_args()
    if args.check:
        return check(args.folder, args.check)
    from vocalmix.training.data import data_root

    build(args.folder, args.data or data_root())
    return 0


if __name__ == "__main__":
    sys.exit(main())
