"""Analyses remembered by content: a read-only array is hashed once, and a changed
signal is never served another's result."""

from __future__ import annotations

import numpy as np

from vocalmix.core import dsp, measure, resolve


def _signal(seed: int = 0, n: int = 48000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((n, 2))).astype(np.float32)


def _count_calls(monkeypatch, owner, name: str) -> list:
    """Replace ``owner.name`` by a wrapper that records each call's first argument's
    length (or ``None``) in the returned list, then calls the original."""
    calls: list = []
    real = getattr(owner, name)

    def counting(*a, **k):
        calls.append(len(a[0]) if a and hasattr(a[0], "__len__") else None)
        return real(*a, **k)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_frozen_is_a_read_only_view_and_leaves_the_input_alone():
    x = _signal()
    f = dsp.frozen(x)
    assert not f.flags.writeable and np.shares_memory(f, x)
    assert x.flags.writeable
    assert dsp.frozen(f) is f


def test_a_read_only_array_is_hashed_once_and_forgotten_with_it(monkeypatch):
    calls = []
    real = dsp.hashlib.sha1

    class Counting:
        @staticmethod
        def sha1(**kw):
            calls.append(1)
            return real(**kw)

    monkeypatch.setattr(dsp, "hashlib", Counting)
    f = dsp.frozen(_signal())
    k1 = dsp.content_key(f, 48000, "a")
    k2 = dsp.content_key(f, 48000, "b")
    assert len(calls) == 1 and k1[:3] == k2[:3]
    w = _signal()  # writeable arrays are hashed every time: they may change
    dsp.content_key(w)
    dsp.content_key(w)
    assert len(calls) == 3
    key = id(f)
    del f
    assert key not in dsp._DIGESTS


def test_a_digest_forgotten_by_the_collector_inside_the_lock_does_not_hang():
    # a read-only array that dies in the garbage collector's cycle pass forgets its digest
    # from inside the collector, wherever the collector runs: here in a thread that holds
    # the digests' lock (as it does in every look-up, whose allocations may start a
    # collection). The analysis threads of an estimate hung on exactly this (seen with
    # Python 3.13, whose collector runs at other moments than 3.11's)
    import gc
    import threading

    a = dsp.frozen(_signal(3, 64))
    key = dsp.content_key(a)  # remembered, with a callback for when it dies
    box: list = [a]
    box.append(box)  # only a cycle holds it: the collector frees it
    del a
    ended = threading.Event()

    def collect_inside_the_lock() -> None:
        with dsp._DIGESTS_LOCK:
            gc.collect()
        ended.set()

    gc.collect()  # (nothing else pending: the one below frees the box)
    del box
    t = threading.Thread(target=collect_inside_the_lock, daemon=True)
    t.start()
    assert ended.wait(10), "the digests' callback waited for the lock its thread held"
    assert key[2] not in [d for _r, d in dsp._DIGESTS.values()]  # forgotten


def test_changed_content_gets_a_new_key_and_its_own_loudness():
    x = _signal(1)
    a = dsp.frozen(x.copy())
    b = x.copy()
    b[100:200] *= 4.0
    b = dsp.frozen(b)
    assert dsp.content_key(a, 1) != dsp.content_key(b, 1)
    la, lb = measure.integrated_loudness(a, 48000), measure.integrated_loudness(b, 48000)
    assert la != lb
    assert la == measure.integrated_loudness(x, 48000)  # the same as measured uncached


def test_integrated_loudness_of_a_read_only_input_is_k_weighted_once(monkeypatch):
    runs = _count_calls(monkeypatch, measure, "k_weighted_energies")
    f = dsp.frozen(_signal(2))
    v1 = measure.integrated_loudness(f, 48000)
    v2 = measure.integrated_loudness(f, 48000)
    assert v1 == v2 and len(runs) == 1
    w = _signal(2)
    assert measure.integrated_loudness(w, 48000) == v1
    assert len(runs) == 2  # a writeable array is measured, not looked up


def test_the_eq_stage_of_a_read_only_input_is_filtered_once_and_handed_over(monkeypatch):
    """The estimators' EQ'd vocal is the compressor resolver's input: the second request
    for the same input and settings takes the first one's samples (read-only), once."""
    from vocalmix.core.params import EqBand, HighPass

    runs = _count_calls(monkeypatch, dsp, "sosfilt_blocks")
    dsp.EQ_HANDOFF.clear()
    x = dsp.frozen(_signal(3))
    hp = HighPass(cutoff_frequency_hz=120.0)
    bands = (EqBand(kind="peak", freq_hz=3000.0, gain_db=3.0, q=1.0),)
    own = dsp.eq_stage(x, 48000, hp, bands)  # not handed over: the caller's own array
    assert own.flags.writeable and len(runs) == 1
    runs.clear()
    a = dsp.eq_stage(x, 48000, hp, bands, hand_over=True)
    assert not a.flags.writeable and len(runs) == 1 and np.array_equal(a, own)
    b = dsp.eq_stage(x, 48000, hp, bands)
    assert b is a and len(runs) == 1
    c = dsp.eq_stage(x, 48000, hp, bands)  # handed over once: filtered again, the same
    assert len(runs) == 2 and np.array_equal(c, a)
    w = dsp.eq_stage(_signal(3), 48000, hp, bands)  # a writeable input: its own array
    assert w.flags.writeable and np.array_equal(w, a) and len(runs) == 3
    dsp.EQ_HANDOFF.clear()


def test_a_unique_signal_is_not_hashed_and_its_analyses_are_remembered(monkeypatch):
    hashed = _count_calls(monkeypatch, dsp.hashlib, "sha1")
    x = dsp.frozen(_signal(4), unique=True)
    k1, k2 = dsp.content_key(x, 1), dsp.content_key(x, 1)
    assert k1 == k2 and not hashed
    y = dsp.frozen(_signal(4), unique=True)  # the same samples, another computation's
    assert dsp.content_key(y, 1) != k1 and not hashed
    assert measure.integrated_loudness(x, 48000) == measure.integrated_loudness(y, 48000)


def test_frame_energies_give_the_segment_energies_of_the_same_pass():
    """The compressor proxy's 10 ms frame energies and the loudness figures' 100 ms
    segment energies come from one K-weighting, to the bit."""
    for sr in (44100, 48000):
        x = _signal(5, n=7 * sr + 123)
        ref = measure.BlockStats.of(x, sr, remember=False).energy
        f = dsp.frozen(x.copy())
        flen = sr // 100
        frames = measure.k_weighted_frame_energies(f, sr, flen)
        assert frames.shape == (x.shape[0] // flen, 2)
        seg = measure.BlockStats.of(f, sr).energy  # remembered from that pass
        assert np.array_equal(seg, ref)
        n = len(seg) * 10
        np.testing.assert_allclose(frames[:n].reshape(len(seg), 10, 2).sum(axis=(1, 2)), ref,
                                   rtol=1e-12)


def test_the_compressor_resolver_k_weights_its_input_once(monkeypatch):
    from vocalmix.core.params import Compressor
    from vocalmix.core.resolve import resolve_compressor

    seen = _count_calls(monkeypatch, measure, "k_weighted_blocks")
    streamed = _count_calls(monkeypatch, resolve, "k_weighted_energies_of_blocks")
    x = dsp.frozen(_signal(6, n=48000 * 8) * np.linspace(0.05, 1.0, 48000 * 8)[:, None]
                   .astype(np.float32))
    sol = resolve_compressor(x, 48000, 3.0, Compressor(ratio=4.0), statistic="lra")
    assert sol.renders >= 1
    # the input once; each verification render once, block by block as it renders
    assert sum(1 for n in seen if n >= x.shape[0] - 480) == 1
    assert len(streamed) == sol.renders


def test_a_render_measured_as_it_renders_gives_the_same_samples_and_energies():
    """The compressor resolver's verification render, K-weighted block by block while the
    next blocks render, equals the render and the measurement done one after the other,
    to the bit, whatever the length against the render's and the K-weighting's blocks."""
    from vocalmix.core.params import Compressor
    from vocalmix.core.render import compressor_stage

    sr = 44100
    kw, board = measure.kw_block_len(sr), dsp.BOARD_BLOCK
    comp = Compressor(enabled=True, threshold_db=-24.0, ratio=4.0, makeup_db=0.0)
    base = _signal(7, n=2 * kw + board + 17)
    for n in (len(base), kw, kw + 1, board, 3 * board, 4410 * 2 + 5, 100):
        x = dsp.frozen(base[:n])
        out, seen = resolve._render_measured(x, sr, comp)
        ref = compressor_stage(x, sr, comp)
        assert np.array_equal(out, ref) and out.flags.writeable and not seen.flags.writeable
        assert np.shares_memory(out, seen)
        assert np.array_equal(measure.BlockStats.of(seen, sr).energy,
                              measure.k_weighted_energies(ref, sr))


def test_run_board_blocks_yields_each_block_once_rendered_and_stops_when_closed():
    from vocalmix.core.params import Compressor
    from vocalmix.core.render import compressor_board

    sr, block = 44100, 100_000
    x = _signal(8, n=5 * dsp.BOARD_BLOCK + 3)
    board = compressor_board(Compressor(enabled=True, threshold_db=-20.0, ratio=3.0))
    out, blocks = dsp.run_board_blocks(board, x, sr, block)
    got = list(blocks)
    assert [len(b) for b in got] == [block] * 3 + [len(x) - 3 * block]
    assert all(np.shares_memory(b, out) for b in got)
    assert np.array_equal(np.concatenate(got), dsp.run_board(board, x, sr))
    # closed after the first block: the render stops without error
    out2, blocks2 = dsp.run_board_blocks(board, x, sr, block)
    first = next(blocks2)
    blocks2.close()
    assert np.array_equal(first, out[:block])


def test_an_excerpts_features_hash_no_samples(monkeypatch):
    """The level features of an excerpt (a one-off slice of the song) remember nothing by
    content: hashing its samples would cost a third of its downmix for nothing."""
    from vocalmix.estimators.features import features

    hashed = _count_calls(monkeypatch, dsp.hashlib, "sha1")
    song = dsp.frozen(_signal(9, n=44100 * 8))
    row = features(song[44100:44100 * 7], song[: 44100 * 6], 44100)
    assert np.all(np.isfinite(row)) and not hashed


def test_a_backings_reverb_prediction_is_made_once_for_many_takes(monkeypatch):
    # karaoke: many takes over one instrumental, each decoded anew (an equal array, not
    # the same object); a changed or writeable backing is analysed again
    from vocalmix.estimators import registry, reverb
    from vocalmix.synth import synthesize_song

    calls = _count_calls(monkeypatch, reverb, "backing_features")
    _v, b = synthesize_song(sample_rate=22050, duration_s=10.0)
    first = registry._reverb_analysis(dsp.frozen(b.copy()), 22050)
    first["tempo_bpm"] = -1.0  # a caller's change must not reach the next one
    first["features"].clear()
    again = registry._reverb_analysis(dsp.frozen(b.copy()), 22050)
    assert len(calls) == 1
    fresh = reverb.predict_reverb(reverb.shipped_model(), b, 22050)
    assert again == fresh and again["features"]
    registry._reverb_analysis(dsp.frozen(b * np.float32(0.5)), 22050)
    registry._reverb_analysis(b.copy(), 22050)  # writeable: not remembered
    assert len(calls) == 1 + 1 + 1 + 1  # the fresh prediction above, then both misses


def test_a_backings_share_of_the_level_features_is_made_once_per_window(monkeypatch):
    # the takes of a karaoke batch over one instrumental: each window's backing share is
    # computed once; a writeable or changed backing is analysed again; the rows are the
    # same either way
    from vocalmix.estimators import features, level
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=22050, duration_s=16.0)
    calls = _count_calls(monkeypatch, level, "backing_part")
    first = level.excerpt_features(dsp.frozen(v), dsp.frozen(b.copy()), 22050)
    n = len(calls)
    assert n == len(first) >= 2
    again = level.excerpt_features(dsp.frozen(v), dsp.frozen(b.copy()), 22050)
    assert len(calls) == n and np.array_equal(first, again)
    plain = level.excerpt_features(v, b.copy(), 22050)  # writeable: never remembered
    assert len(calls) == n and np.array_equal(first, plain)
    level.excerpt_features(dsp.frozen(v), dsp.frozen(b * np.float32(0.5)), 22050)
    assert len(calls) == 2 * n
    w = slice(0, 6 * 22050)
    assert np.array_equal(features.features(v[w], b[w], 22050),
                          features.features(v[w], b[w], 22050,
                                            part=features.backing_part(b[w], 22050)))


def test_two_threads_asking_for_one_analysis_at_once_make_it_once():
    import threading

    cache = dsp.LruCache(4)
    started, release = threading.Event(), threading.Event()
    made: list[int] = []

    def make() -> str:
        made.append(1)
        started.set()
        release.wait(5)
        return "value"

    got: list[str] = []
    first = threading.Thread(target=lambda: got.append(cache.get_or_make(("k",), make)))
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=lambda: got.append(cache.get_or_make(("k",), make)))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first thread's value, not making its own
    release.set()
    first.join(5)
    second.join(5)
    assert got == ["value", "value"] and len(made) == 1


def test_a_waiter_makes_the_analysis_itself_when_the_maker_fails():
    import threading

    cache = dsp.LruCache(4)
    started, release = threading.Event(), threading.Event()

    def failing() -> str:
        started.set()
        release.wait(5)
        raise RuntimeError("broken input")

    errors: list[Exception] = []

    def first_call() -> None:
        try:
            cache.get_or_make(("k",), failing)
        except RuntimeError as e:
            errors.append(e)

    first = threading.Thread(target=first_call)
    first.start()
    assert started.wait(5)
    got: list[str] = []
    second = threading.Thread(target=lambda: got.append(cache.get_or_make(("k",), lambda: "v")))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert len(errors) == 1 and got == ["v"] and cache.get(("k",)) == "v"


def test_the_vocal_is_k_weighted_once_when_two_estimators_ask_at_once(monkeypatch):
    import threading

    x = dsp.frozen(_signal(5))
    calls = _count_calls(monkeypatch, measure, "k_weighted_energies")
    barrier = threading.Barrier(2)
    out: list[np.ndarray] = []

    def ask() -> None:
        barrier.wait(5)
        out.append(measure.BlockStats.of(x, 48000).energy)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(out) == 2 and np.array_equal(out[0], out[1])
    assert calls == [len(x)]


def test_a_writeable_songs_level_rows_hash_each_whole_signal_once(monkeypatch):
    # choosing the excerpts and reading their loudness both take the whole signals'
    # segment energies: one hash of each signal finds them the second time
    from vocalmix.estimators import level
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=22050, duration_s=16.0)
    sizes: list[int] = []
    real = dsp.hashlib.sha1

    class Counting:
        @staticmethod
        def sha1(**kw):
            h = real(**kw)

            class Sized:
                def update(self, data):
                    sizes.append(len(data))
                    h.update(data)

                def digest(self):
                    return h.digest()

            return Sized()

    monkeypatch.setattr(dsp, "hashlib", Counting)
    rows = level.excerpt_features(v, b, 22050)
    assert len(rows) >= 2
    assert sorted(sizes) == sorted([v.nbytes, b.nbytes])


def _sha1_sizes(monkeypatch) -> list[int]:
    """Record the bytes each SHA-1 of :func:`vocalmix.core.dsp.content_key` reads."""
    sizes: list[int] = []
    real = dsp.hashlib.sha1

    class Hash:
        def __init__(self, **kw):
            self._h = real(**kw)

        def update(self, data):
            sizes.append(memoryview(data).nbytes)
            self._h.update(data)

        def digest(self):
            return self._h.digest()

    class Counting:
        sha1 = Hash

    monkeypatch.setattr(dsp, "hashlib", Counting)
    return sizes


def test_the_command_lines_mix_does_not_hash_its_inputs(tmp_path, monkeypatch):
    """The command line's ``mix`` and ``estimate`` analyse one pair read by the process
    itself: no SHA-1 of their samples (the analyses still share their results)."""
    import soundfile as sf

    from vocalmix.frontends.cli import main
    from vocalmix.synth import synthesize_song

    sr = 22050
    v, b = synthesize_song(sample_rate=sr, duration_s=6.0, seed=5)
    sf.write(tmp_path / "v.wav", v, sr, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", b, sr, subtype="FLOAT")
    sizes = _sha1_sizes(monkeypatch)
    for cmd in (["mix", "-o", str(tmp_path / "m.wav")],
                ["estimate", "-o", str(tmp_path / "p.json")]):
        sizes.clear()
        assert main([cmd[0], str(tmp_path / "v.wav"), str(tmp_path / "b.wav"), *cmd[1:],
                     "-q", "--method", "model"]) == 0
        assert max(sizes, default=0) < v.astype(np.float32).nbytes // 4, (cmd[0], sizes)
    # a library caller's read-only input is hashed, once: its analyses are shared with
    # an equal signal of a later call (a server's takes over one backing)
    sizes.clear()
    f = dsp.frozen(_signal())
    dsp.content_key(f)
    dsp.content_key(f)
    assert sum(sizes) == f.nbytes
