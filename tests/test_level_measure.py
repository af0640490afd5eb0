"""The vocal-to-mix measure "while singing": its definition (vocalmix.core.measure), the
params field that names it (targets.vocal_to_mix_measure), the resolver that solves for
it and the pipeline that reports it."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest

from vocalmix.core.errors import ParamsError
from vocalmix.core.measure import integrated_loudness, vocal_to_mix_lu
from vocalmix.core.params import (
    SCHEMA_VERSION,
    V2M_MEASURES,
    MixParams,
    Targets,
    lockable_paths,
)
from vocalmix.core.resolve import resolve_vocal_gain
from vocalmix.synth import synthesize_song

from conftest import ebur128_singing_v2m

SR = 22050


@lru_cache(maxsize=2)
def _song(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return synthesize_song(sample_rate=SR, duration_s=10.0, seed=seed)


def _verse_and_solo(solo_db: float) -> tuple[np.ndarray, np.ndarray]:
    """A vocal that sings the first 5 s of 10; the backing's last 5 s (an instrumental
    solo) ``solo_db`` louder than under the vocal."""
    v, b = _song(3)
    v = v.copy()
    v[5 * SR:] = 0.0
    b = b.copy()
    b[5 * SR:] *= np.float32(10 ** (solo_db / 20))
    return v, b


def test_the_singing_measure_ignores_the_instrumental_passages():
    singing, integrated = [], []
    for solo in (-6.0, 0.0, 8.0):
        v, b = _verse_and_solo(solo)
        singing.append(vocal_to_mix_lu(v, b, SR, "singing"))
        integrated.append(vocal_to_mix_lu(v, b, SR, "integrated"))
    # the balance while the vocal sings did not change (but for the few 400 ms blocks
    # that straddle the vocal's last note and the solo's start)
    assert np.ptp(singing) < 0.2
    assert np.ptp(integrated) > 2.0  # the integrated ratio follows the solo's level
    # a voice that never pauses: both measures agree
    _v, b = _song(4)
    t = np.arange(b.shape[0]) / SR
    v = np.repeat((0.2 * np.sin(2 * np.pi * (220 + 3 * np.sin(2 * np.pi * 5 * t)) * t))[:, None],
                  2, axis=1).astype(np.float32)
    assert vocal_to_mix_lu(v, b, SR, "singing") == pytest.approx(
        vocal_to_mix_lu(v, b, SR, "integrated"), abs=0.05)
    with pytest.raises(ValueError, match="unknown vocal-to-mix measure"):
        vocal_to_mix_lu(v, b, SR, "peak")


def _over_a_short_backing(end_s: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """A vocal that sings all 10 s over a backing that ends after ``end_s`` s (the rest
    silence, as a shorter backing is padded)."""
    v, b = _song(3)
    b = b.copy()
    b[int(end_s * SR):] = 0.0
    return v, b


def test_the_singing_measure_counts_only_where_both_play():
    v, b = _over_a_short_backing()
    n = int(2.5 * SR)
    both = vocal_to_mix_lu(v, b, SR, "singing")
    # libebur128's blocks gated the same way, and the part where both play measured alone
    # (the vocal's relative gate is set over all of it: a few tenths of an LU)
    assert both == pytest.approx(ebur128_singing_v2m(v, b, SR)[0], abs=0.02)
    assert both == pytest.approx(vocal_to_mix_lu(v[:n], b[:n], SR, "singing"), abs=0.3)
    # the unaccompanied 7.5 s, if they counted, would pull the ratio towards 0 LU
    from vocalmix.core.measure import BlockStats, singing_ratio_from_segments

    sv, sm = BlockStats.of(v, SR), BlockStats.of(v + b, SR)
    assert singing_ratio_from_segments(sv.energy, sm.energy, sv.segment_len) > both + 0.8
    # so the resolver puts the vocal about where it would sit over that part alone
    g = resolve_vocal_gain(v, b, SR, -4.0, measure="singing")
    assert g.vocal_to_mix_lu == pytest.approx(-4.0, abs=1e-3)
    alone = resolve_vocal_gain(v[:n], b[:n], SR, -4.0, measure="singing")
    assert g.gain_db == pytest.approx(alone.gain_db, abs=0.5)


def test_the_level_model_reads_only_excerpts_where_the_backing_plays():
    from vocalmix.estimators.features import vocal_excerpts

    v, b = _song(3)
    v = np.concatenate([v, v, v])  # 30 s of singing over a backing that ends after 10 s
    b = np.concatenate([b, np.zeros_like(b), np.zeros_like(b)])
    every = vocal_excerpts(v, SR, 6.0, 3.0)
    played = vocal_excerpts(v, SR, 6.0, 3.0, backing=b)
    assert max(w.stop for w in every) > 20 * SR
    assert played and max(w.stop for w in played) <= 12 * SR  # at least half within 10 s
    assert set((w.start, w.stop) for w in played) <= set((w.start, w.stop) for w in every)
    # a backing that plays throughout changes nothing
    assert vocal_excerpts(v, SR, 6.0, 3.0, backing=np.concatenate([b[:10 * SR]] * 3)) == every


def test_the_numpy_measures_agree_with_libebur128():
    v, b = _verse_and_solo(4.0)
    singing, integrated = ebur128_singing_v2m(v, b, SR)
    assert vocal_to_mix_lu(v, b, SR, "singing") == pytest.approx(singing, abs=0.02)
    assert vocal_to_mix_lu(v, b, SR, "integrated") == pytest.approx(integrated, abs=0.02)
    assert integrated == pytest.approx(
        integrated_loudness(v, SR) - integrated_loudness(v + b, SR), abs=0.02)


@pytest.mark.parametrize("measure", V2M_MEASURES)
def test_the_resolver_solves_either_measure_exactly(measure):
    v, b = _verse_and_solo(6.0)
    for target in (-9.0, -4.0, -1.5):
        g = resolve_vocal_gain(v, b, SR, target, measure=measure)
        assert g.measure == measure and g.vocal_to_mix_lu == pytest.approx(target, abs=1e-3)
        gain = np.float32(10 ** (g.gain_db / 20))
        assert vocal_to_mix_lu(gain * v, b, SR, measure) == pytest.approx(target, abs=0.01)


def test_params_name_the_measure_and_old_documents_keep_the_integrated_one():
    assert Targets().vocal_to_mix_measure == "integrated"
    old = json.loads(MixParams().to_json())
    del old["targets"]["vocal_to_mix_measure"]
    for version in (1, 2, 3):
        doc = dict(old, version=version)
        assert MixParams.from_dict(doc).targets.vocal_to_mix_measure == "integrated"
    p = MixParams(targets=Targets(vocal_to_mix_measure="singing"))
    assert MixParams.from_json(p.to_json()) == p and p.version == SCHEMA_VERSION
    with pytest.raises(ParamsError, match="vocal_to_mix_measure 'peak' is not one of "
                                          "integrated, singing"):
        MixParams.from_dict({"targets": {"vocal_to_mix_measure": "peak"}})
    with pytest.raises(ParamsError, match="must be a string"):
        MixParams.from_dict({"targets": {"vocal_to_mix_measure": 3}})
    assert "targets.vocal_to_mix_measure" in lockable_paths()


def test_pipeline_resolves_and_reports_the_documents_measure():
    from vocalmix import pipeline

    v, b = _verse_and_solo(6.0)
    base = MixParams(targets=Targets(vocal_to_mix_lu=-5.0, vocal_to_mix_measure="singing"))
    params, rendered, est = pipeline.mix(v, b, SR, base=base)
    assert params.targets.vocal_to_mix_measure == "singing"
    assert params.achieved.vocal_to_mix_lu == pytest.approx(-5.0, abs=0.01)
    assert any("while it sings" in n for n in est.notes)
    singing, integrated = ebur128_singing_v2m(rendered.vocal, rendered.backing, SR)
    assert singing == pytest.approx(-5.0, abs=0.05) and abs(integrated + 5.0) > 0.5
    # rendering the document as it is measures the same way
    again, _r = pipeline.render_params(v, b, SR, params)
    assert again.achieved.vocal_to_mix_lu == pytest.approx(-5.0, abs=0.05)
    # the same target as an integrated one lands elsewhere
    p2, _r2, _e2 = pipeline.mix(v, b, SR, base=MixParams(targets=Targets(vocal_to_mix_lu=-5.0)))
    assert p2.vocal.gain_db != pytest.approx(params.vocal.gain_db, abs=0.5)


def test_a_vocal_longer_than_its_backing_sits_where_both_play():
    """The model method over a backing that ends 16 s before the vocal: where both play,
    the vocal sits as it does when the vocal is trimmed to the backing (it sat about
    4 LU lower while the unaccompanied end counted)."""
    from vocalmix import pipeline
    from vocalmix.core.measure import integrated_loudness

    v, b = _song(3)
    n = v.shape[0]
    long_v = np.concatenate([v, v, v])[: n + 16 * SR]
    padded = np.concatenate([b, np.zeros((16 * SR, 2), np.float32)])
    _p, long_r, _e = pipeline.mix(long_v, padded, SR, method="model")
    _p2, trim_r, _e2 = pipeline.mix(v, b, SR, method="model")

    def v2b(r) -> float:
        return (integrated_loudness(r.vocal[:n], SR)
                - integrated_loudness(r.backing[:n], SR))

    assert v2b(long_r) == pytest.approx(v2b(trim_r), abs=1.0)
