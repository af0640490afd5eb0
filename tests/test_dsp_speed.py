"""The helpers that make the mixing path fast change no result: subnormal flushing, the
shared framed spectrum and the per-signal analyses remembered by content."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest
import scipy.fft
from scipy.signal import sosfilt

from vocalmix.core import dsp
from vocalmix.core.measure import BlockStats, frame_sums, k_weight, segment_energies

X86_LINUX = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


@pytest.mark.skipif(not X86_LINUX, reason="flushing is implemented for Linux x86-64 only")
def test_flush_denormals_flushes_inside_and_restores_after():
    tiny = np.array([1e-300])
    assert (tiny * 1e-10)[0] != 0.0  # a subnormal result, kept
    with dsp.flush_denormals():
        assert (tiny * 1e-10)[0] == 0.0
    assert (tiny * 1e-10)[0] != 0.0


def test_sosfilt_fast_gives_sosfilt_float32_output_through_long_silences():
    rng = np.random.default_rng(1)
    sr = 44100
    x = np.zeros((6 * sr, 2))
    x[: sr // 2] = rng.standard_normal((sr // 2, 2)) * 0.1  # a note, then 5.5 s silence
    x[-sr // 4 :] = rng.standard_normal((sr // 4, 2)) * 0.1  # and another note
    sos = dsp.eq_sos(*_eq(sr))
    assert sos is not None
    want = sosfilt(sos, x, axis=0).astype(np.float32)
    got = dsp.sosfilt_fast(sos, x, axis=0).astype(np.float32)
    assert np.array_equal(got, want)  # same values (zeros' signs aside)


def _eq(sr):
    from vocalmix.core.params import EqBand, HighPass

    return (HighPass(enabled=True, cutoff_frequency_hz=150.0),
            (EqBand(kind="peak", freq_hz=300.0, gain_db=-3.0, q=1.0),), sr)


def test_frame_power_is_the_hann_windowed_framed_spectrum():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(10_000).astype(np.float32)
    n_fft, hop = 1024, 256
    n = 1 + (len(y) - n_fft) // hop
    frames = np.stack([y[i * hop : i * hop + n_fft] for i in range(n)])
    s = scipy.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)
    want = (s.real**2 + s.imag**2).astype(np.float64)
    got = dsp.frame_power(y, n_fft, hop)
    assert got.shape == (n, n_fft // 2 + 1)
    assert np.array_equal(got, want)
    assert np.array_equal(dsp.frame_power(y, n_fft, hop, bins=100), want[:, :100])
    # non-overlapping frames take the reshape path: the same values
    m = len(y) // n_fft
    s = scipy.fft.rfft(y[: m * n_fft].reshape(m, n_fft) * np.hanning(n_fft).astype(np.float32),
                       axis=1)
    assert np.array_equal(dsp.frame_power(y, n_fft, n_fft),
                          (s.real**2 + s.imag**2).astype(np.float64))
    with pytest.raises(ValueError):
        dsp.frame_power(y[:100], n_fft, hop)


def _two_pass_active_mean(signals, n_fft, hop, n_frames, chunk, range_db=30.0):
    """The active frames' mean spectra by two passes (energies first, then the sums)."""
    e = np.concatenate([p.sum(axis=1) for _a, p in
                        dsp.frame_power_chunks(signals[0], n_fft, hop, n_frames, chunk)])
    active = e > e.max() * 10 ** (-range_db / 10)
    sums = [np.zeros(n_fft // 2 + 1) for _ in signals]
    for a in range(0, n_frames, chunk):
        on = active[a : a + chunk]
        if on.any():
            for y, total in zip(signals, sums, strict=True):
                total += dsp.frame_power_at(y, n_fft, hop, a, len(on))[on].sum(axis=0)
    return tuple(t / int(active.sum()) for t in sums), active


def _phrases(seed, n=60_000):
    """A signal whose frame levels spread over 60 dB (phrases, gaps, a loud end)."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(n).astype(np.float32)
    level = np.repeat(10 ** (rng.uniform(-3, 0, n // 500 + 1)), 500)[:n]
    return (y * level.astype(np.float32)).astype(np.float32)


@pytest.mark.parametrize("n_fft, hop, chunk", [(1024, 512, 7), (512, 512, 16), (1024, 256, 1)])
def test_the_one_pass_active_mean_is_the_two_pass_one_to_the_bit(n_fft, hop, chunk):
    signals = (_phrases(3), _phrases(4))
    n = 1 + (len(signals[0]) - n_fft) // hop
    want, active = _two_pass_active_mean(signals, n_fft, hop, n, chunk)
    assert 0.2 < active.mean() < 0.95  # some frames out, so the threshold matters
    got = dsp.active_mean_power(signals, n_fft, hop, n, chunk)
    assert got is not None and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("wrong", [0.0, 0.5, 0.999999, 1.000001, 2.0, 1e9])
def test_a_wrong_guess_of_the_loudest_frame_changes_nothing(monkeypatch, wrong):
    """Chunks whose active frames differ from the guessed ones are transformed again."""
    signals = (_phrases(5), _phrases(6))
    n_fft, hop, chunk = 1024, 512, 5
    n = 1 + (len(signals[0]) - n_fft) // hop
    want, _ = _two_pass_active_mean(signals, n_fft, hop, n, chunk)
    true = float(max(p.sum(axis=1).max() for _a, p in
                     dsp.frame_power_chunks(signals[0], n_fft, hop, n, chunk)))
    guess = dsp._loudest_frame_energy(signals[0], n_fft, hop, n, chunk)
    # the guess, from the frames' energy in time, leaves out half the DC and Nyquist bins'
    # power (2 of 513 bins of white noise here)
    assert 0.99 < guess / true < 1.0 + 1e-6
    monkeypatch.setattr(dsp, "_loudest_frame_energy", lambda *a: true * wrong)
    got = dsp.active_mean_power(signals, n_fft, hop, n, chunk)
    assert got is not None and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_the_active_mean_of_a_silent_signal_is_none():
    z = np.zeros(8192, np.float32)
    assert dsp.active_mean_power((z, _phrases(7, 8192)), 1024, 512, 15, 4) is None


def test_the_eq_stage_downmix_made_in_blocks_is_the_downmix_of_the_eq_stage():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3 * dsp.FILTER_BLOCK + 17, 2)) * 0.2).astype(np.float32)
    hp, bands, sr = _eq(44100)
    y = dsp.eq_stage(x, sr, hp, bands)
    want = 0.5 * (y[:, 0] + y[:, 1])
    assert np.array_equal(dsp.mono(y), want)
    assert np.array_equal(dsp.eq_stage_mono(x, sr, hp, bands), want)


def test_release_free_memory_leaves_live_arrays_alone():
    from vocalmix.core.memory import release_free_memory

    a = np.arange(1 << 20, dtype=np.float64)
    b = np.ones(1 << 22)
    del b
    release_free_memory()
    assert np.array_equal(a, np.arange(1 << 20, dtype=np.float64))


def test_segment_energies_are_remembered_by_content_not_by_array():
    rng = np.random.default_rng(3)
    sr = 8000
    x = (rng.standard_normal((5 * sr, 2)) * 0.1).astype(np.float32)
    seg = sr // 10
    want = segment_energies(k_weight(x, sr), seg)
    a = BlockStats.of(x, sr).energy
    b = BlockStats.of(x.copy(), sr).energy  # another array, same samples: remembered
    assert np.array_equal(a, want) and b is a
    y = x.copy()
    y[0, 0] += 0.5  # one sample differs: measured anew
    c = BlockStats.of(y, sr).energy
    assert not np.array_equal(c, a)
    assert np.array_equal(c, segment_energies(k_weight(y, sr), seg))
    with pytest.raises(ValueError):
        a[0] = 1.0  # what is shared cannot be changed by one caller


def test_content_key_tells_signals_rates_and_layouts_apart():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    k = dsp.content_key(x, 44100)
    assert k == dsp.content_key(x.copy(), 44100)
    assert k != dsp.content_key(x, 48000)
    assert k != dsp.content_key(x.reshape(3, 4), 44100)
    assert k != dsp.content_key(x.astype(np.float64), 44100)
    assert k == dsp.content_key(np.asfortranarray(x), 44100)  # layout is not content


def _stream(sos, x, block, twins: bool):
    """The blocks of dsp.sosfilt_stream over ``x``, with or without the mono-take path."""
    if not twins:
        real = dsp._twin_channels
        dsp._twin_channels = lambda *_a: False
    try:
        return list(dsp.sosfilt_stream(sos, dsp.row_blocks(x, block), np.float64))
    finally:
        if not twins:
            dsp._twin_channels = real


@pytest.mark.parametrize("sections", [2, 3])
def test_a_mono_take_read_as_stereo_is_filtered_once_with_the_same_values_and_layout(
        sections):
    # equal channels, then a stretch where they part (the states part with them), then
    # equal again (the states stay apart: both channels are filtered from there on); two
    # sections run both channels as one complex signal (kernels.sosfilt_pair), three as
    # two real ones: each layout kept by the mono path
    rng = np.random.default_rng(3)
    m = (0.2 * rng.standard_normal(9000)).astype(np.float32)
    x = np.stack([m, m], axis=1)
    x[4000:5000, 1] *= np.float32(0.5)
    sos = np.array([[0.2, 0.4, 0.2, 1.0, -0.5, 0.3], [1.0, -2.0, 1.0, 1.0, -1.9, 0.91],
                    [0.5, 0.0, 0.0, 1.0, -0.2, 0.0]])[:sections]
    fast, slow = _stream(sos, x, 1000, True), _stream(sos, x, 1000, False)
    assert len(fast) == len(slow) == 9
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype and a.strides == b.strides and np.array_equal(a, b)
        # sums over a block read it in memory order: the same sums
        assert np.array_equal(segment_energies(a, 100), segment_energies(b, 100))
    whole = sosfilt(sos, x.astype(np.float64), axis=0)
    assert np.array_equal(np.concatenate(fast), whole)


def test_twin_channels_needs_equal_samples_and_states():
    x = np.ones((50, 2), np.float32)
    zi = np.zeros((2, 2, 2))
    assert dsp._twin_channels(x, zi)
    zi[1, 0, 1] = 1e-20
    assert not dsp._twin_channels(x, zi)
    y = x.copy()
    y[40, 1] = 0.0
    assert not dsp._twin_channels(y, np.zeros((2, 2, 2)))
    assert not dsp._twin_channels(np.ones((50, 1), np.float32), np.zeros((2, 2, 1)))
    assert not dsp._twin_channels(np.ones(50, np.float32), np.zeros((2, 2)))


@pytest.mark.parametrize("threshold_db, ratio, attack_ms, release_ms",
                         [(-20.0, 3.3, 5.0, 80.0), (-35.0, 8.0, 0.5, 400.0)])
def test_a_mono_take_through_the_compressor_is_rendered_once_with_the_same_samples(
        monkeypatch, threshold_db, ratio, attack_ms, release_ms):
    import pedalboard as pb

    rng = np.random.default_rng(4)
    m = (rng.standard_normal(3 * dsp.BOARD_BLOCK + 1234)
         * np.repeat(rng.uniform(0.01, 0.8, 40), 5000)[: 3 * dsp.BOARD_BLOCK + 1234]
         ).astype(np.float32)
    x = np.stack([m, m], axis=1)

    def board() -> pb.Pedalboard:
        return pb.Pedalboard([pb.Compressor(threshold_db=threshold_db, ratio=ratio,
                                            attack_ms=attack_ms, release_ms=release_ms)])

    assert dsp.twin_render(board(), x)
    once = dsp.run_board(board(), x, 44100, delay=123)
    out, blocks = dsp.run_board_blocks(board(), x, 44100, 10000)
    for _b in blocks:
        pass
    monkeypatch.setattr(dsp, "twin_render", lambda *_a: False)
    both = dsp.run_board(board(), x, 44100, delay=123)
    assert np.array_equal(once, both) and np.array_equal(out, dsp.run_board(board(), x, 44100))


def test_effects_that_mix_channels_or_unequal_channels_are_rendered_in_stereo():
    import pedalboard as pb

    x = np.ones((100, 2), np.float32)
    assert not dsp.twin_render(pb.Pedalboard([pb.Reverb()]), x)
    assert not dsp.twin_render(pb.Pedalboard([pb.Compressor(), pb.Reverb()]), x)
    assert not dsp.twin_render(pb.Pedalboard([]), x)
    y = x.copy()
    y[50, 1] = 0.5
    assert not dsp.twin_render(pb.Pedalboard([pb.Compressor()]), y)


def test_a_mono_take_is_de_essed_with_one_filter_pass_and_the_same_samples(monkeypatch):
    from vocalmix.core.deesser import DeEsser, DeEsserSettings

    rng = np.random.default_rng(5)
    m = (0.3 * rng.standard_normal(20000)).astype(np.float32)
    x = np.stack([m, m], axis=1)
    s = DeEsserSettings(threshold_db=-30.0, freq_hz=5000.0, depth_db=6.0)

    def blocks() -> np.ndarray:
        d = DeEsser(s, 44100, 2)
        return np.concatenate([d.process(x[i : i + 3000]) for i in range(0, len(x), 3000)])

    calls = []
    real = dsp._sosfilt_twins
    monkeypatch.setattr(dsp, "_sosfilt_twins", lambda *a: calls.append(1) or real(*a))
    once = blocks()
    assert calls
    monkeypatch.setattr(dsp, "_twin_channels", lambda *_a: False)
    assert np.array_equal(once, blocks())


def test_a_mix_hands_free_memory_back_before_its_resolvers_and_its_render(monkeypatch):
    """The allocator's free memory goes back before the resolvers and before the render,
    which bounds the peak; not before the analyses, which at once allocate again what
    the inputs' reading freed (a 3-minute mix: about 23 000 page faults more)."""
    from vocalmix import pipeline
    from vocalmix.synth import synthesize_song

    calls: list[str] = []

    def counted() -> None:
        calls.append("trim")

    def assembling(*args, **kwargs):
        calls.append("render")
        return real_assemble(*args, **kwargs)

    real_assemble = pipeline.assemble_pending
    monkeypatch.setattr(pipeline, "release_free_memory", counted)
    monkeypatch.setattr(pipeline, "assemble_pending", assembling)
    v, b = synthesize_song(sample_rate=16000, duration_s=6.0)
    pipeline.estimate_params(v, b, 16000, method="baseline")
    assert calls == ["trim"]
    calls.clear()
    pipeline.mix(v, b, 16000, method="baseline")
    assert calls == ["trim", "trim", "render"]


@pytest.mark.parametrize("twin", [False, True])
@pytest.mark.parametrize("deessed", [False, True])
@pytest.mark.parametrize("n", [1, 1000, 2 * dsp.BOARD_BLOCK + 12345])
def test_the_inserts_on_two_threads_are_the_stages_one_after_the_other(twin, deessed, n):
    """EQ and de-esser on a helper thread, the compressor behind them on this one: the
    same samples as the stages run whole, one after the other."""
    from dataclasses import replace

    from vocalmix.core.params import Compressor, DeEsser, EqBand, HighPass, VocalChain
    from vocalmix.core.render import compressor_stage, deesser_stage, vocal_inserts

    sr = 44100
    rng = np.random.default_rng(n)
    env = np.repeat(rng.uniform(0.01, 0.9, n // 500 + 1), 500)[:n]
    x = (rng.standard_normal((n, 2)) * env[:, None]).astype(np.float32)
    if twin:
        x[:, 1] = x[:, 0]
    chain = VocalChain(
        highpass=HighPass(enabled=True, cutoff_frequency_hz=120.0),
        eq_bands=(EqBand("peak", 3000.0, 4.0, 1.0), EqBand("high_shelf", 8000.0, 3.0, 0.7)),
        deesser=DeEsser(enabled=deessed, threshold_db=-40.0, freq_hz=6000.0, depth_db=8.0),
        compressor=Compressor(threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=80.0,
                              makeup_db=2.5))
    want = np.asarray(compressor_stage(
        deesser_stage(dsp.eq_stage(x, sr, chain.highpass, chain.eq_bands), sr, chain.deesser),
        sr, chain.compressor), dtype=np.float32)
    got = vocal_inserts(x, sr, chain)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.array_equal(got, want)
    if twin:
        assert np.array_equal(got[:, 0], got[:, 1])
    # no make-up gain, and a chain without an EQ (one thread) give the same as well
    flat = replace(chain, compressor=replace(chain.compressor, makeup_db=0.0))
    assert np.array_equal(vocal_inserts(x, sr, flat), np.asarray(compressor_stage(
        deesser_stage(dsp.eq_stage(x, sr, flat.highpass, flat.eq_bands), sr, flat.deesser),
        sr, flat.compressor), dtype=np.float32))


def test_the_inserts_helper_thread_error_reaches_the_caller(monkeypatch):
    from vocalmix.core.params import Compressor, HighPass, VocalChain
    from vocalmix.core.render import vocal_inserts

    def broken(*_a, **_k):
        raise RuntimeError("filter failed")
        yield  # pragma: no cover

    monkeypatch.setattr(dsp, "sosfilt_stream", broken)
    chain = VocalChain(highpass=HighPass(enabled=True, cutoff_frequency_hz=120.0),
                       compressor=Compressor(threshold_db=-20.0, ratio=4.0))
    with pytest.raises(RuntimeError, match="filter failed"):
        vocal_inserts(np.ones((5000, 2), np.float32) * 0.1, 44100, chain)


@pytest.mark.parametrize("n", [dsp.BOARD_BLOCK, 3 * dsp.BOARD_BLOCK + 777])
def test_a_stereo_compressor_render_on_a_thread_per_channel_is_the_stereo_render(n):
    """Two different channels, each rendered through a compressor of its own on a thread
    of its own: the samples the stereo render gives."""
    import pedalboard as pb

    rng = np.random.default_rng(n)
    env = np.repeat(rng.uniform(0.01, 0.9, (n // 700 + 1, 2)), 700, axis=0)[:n]
    x = (rng.standard_normal((n, 2)) * env).astype(np.float32)

    def board() -> pb.Pedalboard:
        return pb.Pedalboard([pb.Compressor(threshold_db=-23.5, ratio=3.3, attack_ms=7.0,
                                            release_ms=130.0)])

    boards = dsp.channel_boards(board(), x)
    assert boards is not None and len(boards) == 2 and boards[0] is not boards[1]
    want = dsp.run_board(board(), x, 44100)
    out, blocks = dsp.run_board_blocks(board(), x, 44100, 10000)
    got = np.concatenate(list(blocks))
    assert np.array_equal(got, want) and np.array_equal(out, want)
    # equal channels, a short signal and other effects keep one render
    assert dsp.channel_boards(board(), np.repeat(x[:, :1], 2, axis=1)) is None
    assert dsp.channel_boards(board(), x[: dsp.BOARD_BLOCK - 1]) is None
    assert dsp.channel_boards(pb.Pedalboard([pb.Reverb()]), x) is None


def test_a_stereo_signal_filtered_a_channel_per_thread_is_filtered_as_one(monkeypatch):
    """sosfilt_blocks of two different channels on two threads: the same values as one
    thread filtering both, through notes and the long silences after them (where the
    flushing of subnormals, a per-thread setting, decides the last bits)."""
    sr = 44100
    rng = np.random.default_rng(11)
    n = 3 * dsp.SPLIT_ROWS + 321
    x = np.zeros((n, 2), np.float32)
    x[:sr] = rng.standard_normal((sr, 2)) * 0.2
    x[n // 2 : n // 2 + sr // 3, 1] = rng.standard_normal(sr // 3) * 0.1
    sos = dsp.eq_sos(*_eq(sr))
    assert sos is not None
    got = dsp.sosfilt_blocks(sos, x, np.float64, np.float32)
    monkeypatch.setattr(dsp, "SPLIT_ROWS", 10 * n)  # one thread
    want = dsp.sosfilt_blocks(sos, x, np.float64, np.float32)
    assert got.flags.f_contiguous and np.array_equal(got, want)
    assert np.array_equal(got, dsp.sosfilt_fast(sos, x.astype(np.float64), axis=0)
                          .astype(np.float32))


def test_frame_sums_add_each_frame_in_one_order_whatever_the_layout():
    # a K-weighted block comes interleaved (the paired filter) or channel by channel (the
    # real one): each frame's sum is numpy's pairwise sum of that channel's samples
    rng = np.random.default_rng(8)
    rows = rng.standard_normal((2, 44100 + 17))
    interleaved, planar = np.ascontiguousarray(rows.T), rows.T
    n = rows.shape[1] // 441
    want = np.stack([rows[c, : n * 441].reshape(n, 441).sum(axis=1) for c in range(2)], axis=1)
    for y in (interleaved, planar):
        got = frame_sums(y, 441)
        assert got.shape == (n, 2) and np.array_equal(got, want)
    assert frame_sums(interleaved[:100], 441).shape == (0, 2)


@pytest.mark.parametrize("reverb", [False, True])
def test_a_render_without_sends_measures_its_vocal_once_with_the_same_figures(
        monkeypatch, reverb):
    """With no reverb and no delay, the vocal in the mix holds the dry vocal's samples:
    the render's figures K-weight it once, and equal those of measuring both stems."""
    from dataclasses import replace

    from vocalmix import pipeline
    from vocalmix.core.params import MixParams

    rng = np.random.default_rng(7)
    sr, n = 44100, 44100 * 4
    vocal = (rng.standard_normal((n, 2)) * 0.05).astype(np.float32)
    backing = (rng.standard_normal((n, 2)) * 0.1).astype(np.float32)
    p = MixParams()
    p = replace(p, vocal=replace(p.vocal, gain_db=2.5,
                                 reverb=replace(p.vocal.reverb, enabled=reverb),
                                 delay=replace(p.vocal.delay, enabled=False)))
    dry_measured = []
    real_stats = pipeline._stats
    monkeypatch.setattr(pipeline, "_stats", lambda x, sr_: dry_measured.append(x) or
                        real_stats(x, sr_))
    params, rendered = pipeline.render_params(vocal, backing, sr, p)
    assert rendered.sends is reverb
    assert sum(x is rendered.vocal_dry for x in dry_measured) == int(reverb)
    if not reverb:
        assert np.array_equal(rendered.vocal, rendered.vocal_dry)
    both = pipeline.measure_achieved(replace(rendered, sends=True),
                                     measure=p.targets.vocal_to_mix_measure)
    assert params.achieved == both


def test_remembered_vocal_parts_serve_a_gain_edit_with_the_same_render(monkeypatch):
    """An editor's renders of one read-only take with one chain but for its gain render
    the vocal chain once (core.render.remembered_parts): the same stems and mix as a
    render that makes them, the remembered parts untouched by the sum."""
    from dataclasses import replace

    from vocalmix.core import render as R
    from vocalmix.core.dsp import frozen
    from vocalmix.core.params import MixParams
    from vocalmix.pipeline import render_params

    rng = np.random.default_rng(11)
    sr, n = 44100, 44100 * 3
    vocal = frozen((rng.standard_normal((n, 2)) * 0.05).astype(np.float32))
    backing = frozen((rng.standard_normal((n, 2)) * 0.1).astype(np.float32))
    made = []
    real = R.vocal_parts
    monkeypatch.setattr(R, "vocal_parts", lambda *a, **k: made.append(1) or real(*a, **k))
    R.forget_parts()
    p = MixParams()
    p = replace(p, vocal=replace(p.vocal, reverb=replace(p.vocal.reverb, enabled=True)))
    for i, gain_db in enumerate((0.0, 2.5, -4.0)):
        q = replace(p, vocal=replace(p.vocal, gain_db=gain_db), master=replace(
            p.master, gain_db=-1.0 * i))
        got_params, got = render_params(vocal, backing, sr, q, remember_parts=True)
        want_params, want = render_params(vocal, backing, sr, q)
        for kind in ("mix", "vocal", "vocal_dry", "backing"):
            assert np.array_equal(getattr(got, kind), getattr(want, kind)), (gain_db, kind)
        assert got_params == want_params
    assert len(made) == 1 + 3  # once remembered, and once per plain render
    # another chain renders its own parts; a writeable take is not remembered
    q = replace(p, vocal=replace(p.vocal, highpass=replace(p.vocal.highpass,
                                                           cutoff_frequency_hz=200.0)))
    render_params(vocal, backing, sr, q, remember_parts=True)
    assert len(made) == 5
    assert R.remembered_parts(np.array(vocal), sr, q.vocal).dry.flags.writeable
    assert len(made) == 6
    kept = R.remembered_parts(vocal, sr, q.vocal)
    assert len(made) == 6 and not kept.dry.flags.writeable and not kept.wet.flags.writeable
    R.forget_parts()


@pytest.mark.parametrize("lra_lu, offset_ms", [
    (3.0, 0.0),  # compressed
    (30.0, 0.0),  # left alone (the sends start early)
    (3.0, -20.0),  # a take moved against the backing (a new array, read-only too)
])
def test_a_remembered_compressor_resolution_serves_a_retarget_with_the_same_mix(
        monkeypatch, lra_lu, offset_ms):
    """An editor's retargets of the level alone resolve the compressor once
    (pipeline.estimate_params' ``remember``): the same settings, figures and samples as
    retargets that resolve it each time; another dynamics target resolves it again."""
    from dataclasses import replace

    from vocalmix import pipeline
    from vocalmix.core.dsp import frozen
    from vocalmix.synth import synthesize_song

    sr = 22050
    v, b = synthesize_song(sample_rate=sr, duration_s=8.0, seed=3)
    vocal, backing = frozen(v.astype(np.float32)), frozen(b.astype(np.float32))
    base, _r, _e = pipeline.mix(vocal, backing, sr, method="baseline", vocal_lra_lu=lra_lu,
                                vocal_offset_ms=offset_ms)
    assert base.vocal.offset_ms == offset_ms
    assert (base.vocal.compressor.ratio > 1.0) is (lra_lu < 10)
    calls = []
    real = pipeline.resolve_compressor
    monkeypatch.setattr(pipeline, "resolve_compressor",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    pipeline.forget_resolutions()
    for i, v2m in enumerate((-4.0, -2.5, -6.0)):
        q = base.with_targets(vocal_to_mix_lu=v2m)
        got_p, got, _e = pipeline.mix(vocal, backing, sr, base=q, remember=True)
        want_p, want, _e = pipeline.mix(vocal, backing, sr, base=q)
        assert got_p.vocal == want_p.vocal and got_p.achieved == want_p.achieved, v2m
        for kind in ("mix", "vocal", "vocal_dry", "backing"):
            assert np.array_equal(getattr(got, kind), getattr(want, kind)), (v2m, kind)
        assert len(calls) == 2 * (i + 1) - i  # the remembered one resolved once
    q = replace(base.with_targets(vocal_to_mix_lu=-4.0), targets=replace(
        base.targets, vocal_lra_lu=lra_lu - 1.0))
    pipeline.mix(vocal, backing, sr, base=q, remember=True)
    assert len(calls) == 5
    pipeline.forget_resolutions()


def test_a_retarget_reuses_the_vocal_parts_and_hands_them_to_the_next_gain_edit(monkeypatch):
    """With ``remember``, a resolve keeps its vocal parts: the next retarget of the level
    and the next render of the same chain (a gain edit) take them instead of rendering
    the chain again, with the same results as a resolve and a render that make them."""
    from vocalmix import pipeline
    from vocalmix.core import render as R
    from vocalmix.core.dsp import frozen
    from vocalmix.synth import synthesize_song

    sr = 22050
    v, b = synthesize_song(sample_rate=sr, duration_s=8.0, seed=4)
    vocal, backing = frozen(v.astype(np.float32)), frozen(b.astype(np.float32))
    base, _r, _e = pipeline.mix(vocal, backing, sr, method="baseline", vocal_lra_lu=4.0)
    inserts, parts = [], []
    real_inserts, real_parts = pipeline._inserts, R.vocal_parts
    monkeypatch.setattr(pipeline, "_inserts",
                        lambda *a, **k: inserts.append(1) or real_inserts(*a, **k))
    monkeypatch.setattr(R, "vocal_parts", lambda *a, **k: parts.append(1) or real_parts(*a, **k))
    pipeline.forget_resolutions()
    R.forget_parts()
    got = [pipeline.mix(vocal, backing, sr, base=base.with_targets(vocal_to_mix_lu=t),
                        remember=True) for t in (-4.0, -2.0)]
    assert len(inserts) == 1  # the second retarget took the first one's parts
    q = got[1][0]
    q = _with_vocal_gain(q, q.vocal.gain_db + 1.5)
    edited = pipeline.render_params(vocal, backing, sr, q, remember_parts=True)
    assert not parts  # the gain edit too
    pipeline.forget_resolutions()
    R.forget_parts()
    want = [pipeline.mix(vocal, backing, sr, base=base.with_targets(vocal_to_mix_lu=t))
            for t in (-4.0, -2.0)]
    for (gp, gr, _g), (wp, wr, _w) in zip(got, want, strict=True):
        assert gp.vocal == wp.vocal and gp.achieved == wp.achieved
        for kind in ("mix", "vocal", "vocal_dry", "backing"):
            assert np.array_equal(getattr(gr, kind), getattr(wr, kind)), kind
    fresh = pipeline.render_params(vocal, backing, sr, q)
    assert edited[0] == fresh[0]
    for kind in ("mix", "vocal", "vocal_dry", "backing"):
        assert np.array_equal(getattr(edited[1], kind), getattr(fresh[1], kind)), kind


def _with_vocal_gain(p, gain_db):
    from dataclasses import replace

    return replace(p, vocal=replace(p.vocal, gain_db=gain_db))
