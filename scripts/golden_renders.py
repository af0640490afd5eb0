"""Write the golden renders the regression test compares against.

For the demo song and every song of ``$VOCALMIX_DATA/stems`` (default
``../shared/data/stems``), with each method, this estimates a params document and stores
it in ``tests/golden/`` with the SHA-256 of ``render`` of it (mix and stems), a
fingerprint of each that rounding does not move (:func:`fingerprint`) and the versions of
the numeric libraries (:data:`LIBRARIES`). The test ``tests/test_golden_renders.py``
renders each stored document again and compares: to the bit with those libraries, by
fingerprint with others (another FFT rounds its last bits otherwise).

Run it only when a change of the rendered sound is deliberate, and say why in the commit.
``--renders-only`` keeps the stored params documents and re-renders them (a change of the
render alone); without it the documents are estimated again too. ``--only=KEY`` (e.g.
``--only=demo__model``, repeatable) redoes only those cases and keeps the others as stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"


def digest(x) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


#: the libraries whose arithmetic a render's bits depend on (FFTs, filters, effects,
#: resampling, decoding): bit identity is checked only where they are the versions stored
LIBRARIES = ("numpy", "scipy", "pedalboard", "soxr", "soundfile", "av")
#: pseudo-random projections in a render's fingerprint
PROJECTIONS = 8


def libraries() -> dict[str, str]:
    """The versions of :data:`LIBRARIES` in this environment."""
    from importlib.metadata import version

    return {name: version(name) for name in LIBRARIES}


def fingerprint(x) -> dict[str, object]:
    """What a render must keep whatever the numeric libraries' rounding: its RMS level
    (dBFS; ``None`` for silence) and its samples' dot products with :data:`PROJECTIONS`
    fixed sequences of +1 and -1 (made from the sample index by integer hashing, the same
    on every numpy), each divided by the signal's norm. Rounding of the last bits moves
    the level by about 1e-6 dB and each projection by about 1e-7; a changed gain, sound,
    a sample's shift or a swapped channel moves them by far more."""
    import math

    import numpy as np

    v = np.ascontiguousarray(x, dtype=np.float64).ravel()
    energy = float(np.dot(v, v))
    if energy == 0.0:
        return {"rms_dbfs": None, "projections": [0.0] * PROJECTIONS}
    norm = math.sqrt(energy)
    i = np.arange(v.size, dtype=np.uint64)
    out = []
    for k in range(PROJECTIONS):
        h = (i + np.uint64(k + 1)) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        sign = 1.0 - 2.0 * (h >> np.uint64(63)).astype(np.float64)
        out.append(float(np.dot(v, sign)) / norm)
    return {"rms_dbfs": 10.0 * math.log10(energy / v.size), "projections": out}


def cases():
    """(name, loader) pairs; each loader returns (vocal, backing, sample_rate)."""
    from vocalmix.synth import synthesize_song

    yield "demo", lambda: (*synthesize_song(sample_rate=44100, duration_s=8.0), 44100)
    data = Path(os.environ.get("VOCALMIX_DATA", REPO.parent / "shared" / "data")) / "stems"
    if data.exists():
        for song in sorted(p for p in data.iterdir() if p.is_dir()):
            yield song.name, (lambda song=song: load_stem_song(song))


def load_stem_song(folder: Path):
    from vocalmix.core.audio import prepare_pair, read_audio

    def find(name):
        for ext in (".wav", ".flac", ".mp3", ".ogg"):
            if (folder / f"{name}{ext}").exists():
                return folder / f"{name}{ext}"
        return None

    v = read_audio(find("vocals"))
    acc = find("accompaniment")
    if acc is not None:
        b = read_audio(acc)
    else:
        import numpy as np

        from vocalmix.core.audio import Audio

        parts = [read_audio(find(n)) for n in ("drums", "bass", "other")]
        b = Audio(np.sum([p.samples for p in parts], axis=0).astype(np.float32),
                  parts[0].sample_rate)
    vs, bs, sr, _ = prepare_pair(v, b)
    return vs, bs, sr


def main() -> int:
    from vocalmix.core.params import MixParams
    from vocalmix.pipeline import mix, render_params

    args = sys.argv[1:]
    renders_only = "--renders-only" in args
    only = {a.split("=", 1)[1] for a in args if a.startswith("--only=")}
    GOLDEN.mkdir(parents=True, exist_ok=True)
    stored = GOLDEN / "renders.json"
    index = json.loads(stored.read_text()) if only and stored.exists() else {}
    for name, load in cases():
        keys = [f"{name}__{m}".replace(" ", "_") for m in ("baseline", "model")]
        if only and not only.intersection(keys):
            continue
        vocal, backing, sr = load()
        for method in ("baseline", "model"):
            key = f"{name}__{method}".replace(" ", "_")
            if only and key not in only:
                continue
            doc = GOLDEN / f"{key}.json"
            if renders_only:
                params = MixParams.from_json(doc.read_text())
            else:
                params, _rendered, _ = mix(vocal, backing, sr, method=method)
                doc.write_text(params.to_json())
            _, r = render_params(vocal, backing, sr, params)
            stems = {k: getattr(r, k) for k in ("mix", "vocal", "vocal_dry", "backing")}
            index[key] = {"song": name, "method": method, "sample_rate": sr,
                          **{k: digest(x) for k, x in stems.items()},
                          "fingerprints": {k: fingerprint(x) for k, x in stems.items()},
                          "libraries": libraries()}
            print(key, index[key]["mix"][:12], file=sys.stderr)
    (GOLDEN / "renders.json").write_text(json.dumps(index, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
