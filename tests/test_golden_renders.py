"""Renders of stored params documents stay bit-identical, and estimates stay the same.

``tests/golden/`` holds params documents estimated on the demo song and on the real stems
with each method, and the SHA-256 of their renders (``scripts/golden_renders.py`` writes
them). A refactoring must reproduce every render bit for bit; a deliberate change of the
sound regenerates them with that script, in a commit that says why.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest

from vocalmix.core.params import MixParams
from vocalmix.pipeline import mix, render_params

from conftest import REPO, data_root

GOLDEN = REPO / "tests" / "golden"
INDEX = json.loads((GOLDEN / "renders.json").read_text())
sys.path.insert(0, str(REPO / "scripts"))
import golden_renders  # noqa: E402


def _digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


def _inputs(song: str):
    if song == "demo":
        from vocalmix.synth import synthesize_song

        return (*synthesize_song(sample_rate=44100, duration_s=8.0), 44100)
    folder = data_root() / "stems" / song
    if not folder.exists():
        pytest.skip(f"real stems not found at {folder} (set VOCALMIX_DATA)")
    return golden_renders.load_stem_song(folder)


@pytest.mark.parametrize("key", sorted(INDEX))
def test_render_of_a_stored_params_document_is_bit_identical(key):
    entry = INDEX[key]
    vocal, backing, sr = _inputs(entry["song"])
    params = MixParams.from_json((GOLDEN / f"{key}.json").read_text())
    _, r = render_params(vocal, backing, sr, params)
    got = {k: _digest(getattr(r, k)) for k in ("mix", "vocal", "vocal_dry", "backing")}
    assert got == {k: entry[k] for k in got}


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
    assert now == stored
