"""The sends rendered a range of rows at a time (vocalmix.core.render.sends_wet_rows), as
the resolver measures them while they render: each range is final when it is reported,
and the whole is the reverb's wet signal plus the delay's echo, to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.delay import delay_wet
from vocalmix.core.params import Delay, Reverb, VocalChain
from vocalmix.core.render import reverb_wet, sends_wet, sends_wet_rows

SR = 44100


def _dry(seconds: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    n = int(seconds * SR)
    env = (np.sin(np.linspace(0, 20, n)) > 0).astype(np.float32)[:, None]
    return (0.2 * rng.standard_normal((n, 2)) * env).astype(np.float32)


@pytest.mark.parametrize("kind", ["synthetic", "freeverb"])
@pytest.mark.parametrize("echo", [False, True])
def test_each_reported_range_is_final_and_the_whole_is_reverb_plus_echo(kind, echo):
    dry = _dry()
    chain = VocalChain(reverb=Reverb(type=kind, enabled=True),
                       delay=Delay(enabled=echo, note="free", time_ms=180.0))
    out = np.zeros(dry.shape, np.float32)
    snapshots = []
    last = 0
    for done in sends_wet_rows(dry, SR, chain, out):
        assert last < done <= len(dry)
        snapshots.append((last, done, out[last:done].copy()))
        last = done
    assert last == len(dry)
    for a, b, snap in snapshots:  # nothing changed a row after it was reported final
        assert np.array_equal(out[a:b], snap)
    ref = reverb_wet(dry, SR, chain.reverb)
    if echo:
        ref += delay_wet(dry, SR, chain.delay)
    assert np.array_equal(out, ref)
    assert np.array_equal(sends_wet(dry, SR, chain), ref)


def test_no_reverb_gives_the_echo_alone_or_silence():
    dry = _dry(1.0)
    off = Reverb(enabled=False)
    assert not np.any(sends_wet(dry, SR, VocalChain(reverb=off)))
    d = Delay(enabled=True, note="free", time_ms=120.0)
    assert np.array_equal(sends_wet(dry, SR, VocalChain(reverb=off, delay=d)),
                          delay_wet(dry, SR, d))


@pytest.mark.parametrize("method", ["baseline", "model"])
def test_sends_started_before_the_compressor_resolves_give_the_same_mix(monkeypatch, method):
    """The sends of a vocal that needs no compression start as soon as that is known,
    beside the rest of the compressor's resolver; told wrongly (the early sends then do
    not match the dry vocal and are dropped) or never, the mix is the same to the bit."""
    from vocalmix import pipeline
    from vocalmix.core.resolve import needs_compression
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=22050, duration_s=6.0, seed=2)
    calls: list[bool] = []

    def spy(*a, **k):
        calls.append(needs_compression(*a, **k))
        return calls[-1]

    monkeypatch.setattr(pipeline, "needs_compression", spy)
    ref_params, ref, _e = pipeline.mix(v, b, 22050, method=method)
    assert calls  # the check ran (its answer decides whether the sends start early)
    for answer in (True, False):
        monkeypatch.setattr(pipeline, "needs_compression", lambda *a, _r=answer, **k: _r)
        p, r, _e = pipeline.mix(v, b, 22050, method=method)
        assert p == ref_params
        for name in ("mix", "vocal", "vocal_dry", "backing"):
            assert np.array_equal(getattr(r, name), getattr(ref, name)), (answer, name)


def test_early_sends_stop_when_the_resolve_fails_after_they_started(monkeypatch):
    """A progress callback that raises after the early sends started (a client gone)
    leaves no send rendering on in the background."""
    import threading

    from vocalmix import pipeline
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=22050, duration_s=6.0, seed=2)
    v, b = np.tile(v, (10, 1)), np.tile(b, (10, 1))  # a minute: its sends take a while
    monkeypatch.setattr(pipeline, "needs_compression", lambda *a, **k: False)

    class Gone(Exception):
        pass

    def progress(ev):
        if ev.stage == "resolve.gain":
            raise Gone

    with pytest.raises(Gone):
        pipeline.mix(v, b, 22050, method="baseline", progress=progress)
    assert not [t for t in threading.enumerate() if t.name == "vocalmix-filling"]
