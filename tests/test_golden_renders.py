"""Renders of stored params documents stay bit-identical (with the numeric libraries they
were stored with; with others, within their rounding, see :data:`FINGERPRINT_TOL`), and
estimates stay the same (within that rounding, see :data:`LEVEL_TOL`).

``tests/golden/`` holds params documents estimated on the demo song and on the real stems
with each method, and the SHA-256 of their renders (``scripts/golden_renders.py`` writes
them). A refactoring must reproduce every render bit for bit; a deliberate change of the
sound regenerates them with that script, in a commit that says why.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from vocalmix.core.params import MixParams
from vocalmix.pipeline import mix, render_params

from conftest import REPO, data_root, json_differences

GOLDEN = REPO / "tests" / "golden"
INDEX = json.loads((GOLDEN / "renders.json").read_text())
sys.path.insert(0, str(REPO / "scripts"))
import golden_renders  # noqa: E402


def _inputs(song: str):
    if song == "demo":
        from vocalmix.synth import synthesize_song

        return (*synthesize_song(sample_rate=44100, duration_s=8.0), 44100)
    folder = data_root() / "stems" / song
    if not folder.exists():
        pytest.skip(f"real stems not found at {folder} (set VOCALMIX_DATA)")
    return golden_renders.load_stem_song(folder)


#: how far a render's fingerprint (``scripts/golden_renders.py``) may move with numeric
#: libraries other than those its digests were made with: their rounding of the last
#: bits moves the level by about 1e-6 dB and a projection by about 1e-7
FINGERPRINT_DB_TOL = 1e-4
FINGERPRINT_TOL = 1e-5


def _fingerprints_differ(now: dict, stored: dict) -> list[str]:
    """What differs between two fingerprints beyond the tolerances above."""
    out = []
    a, b = now["rms_dbfs"], stored["rms_dbfs"]
    if (a is None) != (b is None) or (a is not None and abs(a - b) > FINGERPRINT_DB_TOL):
        out.append(f"level {a} dBFS, stored {b}")
    worst = max(abs(x - y) for x, y in zip(now["projections"], stored["projections"],
                                            strict=True))
    if worst > FINGERPRINT_TOL:
        out.append(f"a projection moved by {worst:.2e}")
    return out


def test_fingerprint_tolerances_are_not_vacuous():
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal((44100, 2))).astype(np.float32)
    f = golden_renders.fingerprint(x)
    one_bit = x + np.float32(2e-9) * np.sign(rng.standard_normal(x.shape)).astype(np.float32)
    assert not np.array_equal(one_bit, x) and _fingerprints_differ(
        golden_renders.fingerprint(one_bit), f) == []
    for changed in (x * np.float32(1.001), np.roll(x, 1, axis=0), x[:, ::-1],
                    np.where(np.arange(44100)[:, None] == 20000, 0.0, x)):
        assert _fingerprints_differ(golden_renders.fingerprint(changed), f) != []
    assert golden_renders.fingerprint(np.zeros((10, 2)))["rms_dbfs"] is None


@pytest.mark.parametrize("key", sorted(INDEX))
def test_render_of_a_stored_params_document_is_bit_identical(key):
    """To the bit with the numeric libraries the digests were made with; with others
    (another FFT, say, which rounds its last bits otherwise), to the fingerprint."""
    entry = INDEX[key]
    vocal, backing, sr = _inputs(entry["song"])
    params = MixParams.from_json((GOLDEN / f"{key}.json").read_text())
    _, r = render_params(vocal, backing, sr, params)
    stems = {k: getattr(r, k) for k in ("mix", "vocal", "vocal_dry", "backing")}
    if entry["libraries"] == golden_renders.libraries():
        got = {k: golden_renders.digest(x) for k, x in stems.items()}
        assert got == {k: entry[k] for k in got}
    else:
        moved = {k: d for k, x in stems.items()
                 if (d := _fingerprints_differ(golden_renders.fingerprint(x),
                                               entry["fingerprints"][k]))}
        assert moved == {}


#: how far a re-run estimate may drift from the stored one. The estimate's arithmetic
#: (FFTs, filters, a compressor threshold found by search) rounds differently from one
#: numpy / scipy build to the next, by about 1e-9 at first, and an iterative search can
#: carry that further: levels (dB, LU) may move by the resolvers' own tolerance, anything
#: else (Hz, s, ms, ratios) by 0.1 %; choices (kinds, types, counts, switches) not at all.
LEVEL_TOL = 0.3
RELATIVE_TOL = 1e-3
LEVEL_SUFFIXES = ("_db", "_lu", "_lufs", "_dbtp")


def _close(path: str, now: float, stored: float) -> bool:
    tol = (LEVEL_TOL if path.endswith(LEVEL_SUFFIXES)
           else RELATIVE_TOL * max(abs(now), abs(stored), 1e-9))
    return abs(now - stored) <= tol


def _drift(now, stored) -> list[str]:
    """Where ``now`` differs from ``stored`` by more than the tolerances above."""
    return json_differences(now, stored, _close)


def test_drift_tolerances_are_not_vacuous():
    stored = {"a_db": -3.0, "freq_hz": 1000.0, "kind": "peak", "n": 2, "on": True}
    assert _drift(dict(stored, a_db=-3.29), stored) == []
    assert _drift(dict(stored, a_db=-3.31), stored) != []
    assert _drift(dict(stored, freq_hz=1000.9), stored) == []
    assert _drift(dict(stored, freq_hz=1002.0), stored) != []
    assert _drift(dict(stored, kind="low_shelf"), stored) != []
    assert _drift(dict(stored, n=3), stored) != []
    assert _drift(dict(stored, on=False), stored) != []


@pytest.mark.parametrize("key", sorted(INDEX))
def test_estimate_is_unchanged(key):
    entry = INDEX[key]
    vocal, backing, sr = _inputs(entry["song"])
    stored = MixParams.from_json((GOLDEN / f"{key}.json").read_text()).to_dict()
    params, _, _ = mix(vocal, backing, sr, method=entry["method"])
    now = params.to_dict()
    for d in (stored, now):  # what the settings are, not how they are explained
        d.pop("provenance")
        d.pop("reasons", None)
    assert _drift(now, stored) == []
