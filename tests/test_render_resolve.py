"""Render chain and resolvers: references, closed forms, real vocals."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.measure import integrated_loudness, loudness_range, true_peak_dbtp
from vocalmix.core.params import Compressor, EqBand, HighPass, Master, MixParams, Reverb, VocalChain
from vocalmix.core.render import compressor_stage, eq_stage, master_stage, render
from vocalmix.core.resolve import CompressorProxy, resolve_compressor, resolve_vocal_gain

from conftest import fail_the_limiter, find_stem, require_data, stem_songs

SR = 44100


def noise(rng, seconds=4.0, db=-20.0, sr=SR) -> np.ndarray:
    x = rng.standard_normal((int(seconds * sr), 2)) * 10 ** (db / 20)
    return x.astype(np.float32)


def test_master_is_transparent_below_ceiling(rng):
    x = noise(rng, db=-30)
    y, red, _tp = master_stage(x, SR, Master(ceiling_dbtp=-1.0))
    assert red == 0.0 and y is x


def test_master_measured_gives_the_true_peak_and_energies_of_its_output(rng):
    """The master's output measured on two threads: the same true peak and the same
    K-weighted segment energies as measuring the output afterwards, to the bit; the
    energies only when asked (``limited``: only when the limiter changed the signal)."""
    from vocalmix.core.measure import k_weighted_energies
    from vocalmix.core.render import master_stage_measured

    loud = noise(rng, db=-26)
    loud[SR : SR + 200] *= 30.0
    quiet = noise(rng, db=-30)
    m = Master(ceiling_dbtp=-1.0)
    y, red, tp, e = master_stage_measured(loud.copy(), SR, m, energy="limited")
    assert red > 10.0 and tp == true_peak_dbtp(y, SR)
    assert e is not None and np.array_equal(e, k_weighted_energies(y, SR))
    assert np.array_equal(y, master_stage(loud.copy(), SR, m)[0])
    y, red, tp, e = master_stage_measured(quiet, SR, m, energy="limited")
    assert y is quiet and red == 0.0 and e is None and tp == true_peak_dbtp(quiet, SR)
    y, red, tp, e = master_stage_measured(quiet, SR, m, true_peak=False, energy="always")
    assert np.isnan(tp) and np.array_equal(e, k_weighted_energies(quiet, SR))
    y, red, tp, e = master_stage_measured(loud.copy(), SR, m, true_peak=False)
    assert np.isnan(tp) and e is None and red > 10.0


@pytest.mark.parametrize("in_place", [False, True])
def test_limiter_read_while_it_limits_sees_the_final_output(rng, in_place):
    """``limit_min_gain_reading``: the reader, run while a helper thread limits, reads
    each row once the limiter has finished it: what it read is the output to the bit, and
    the output and smallest gain are :func:`limit_min_gain`'s."""
    from vocalmix.core.limiter import limit_min_gain, limit_min_gain_reading

    x = noise(rng, seconds=6.0, db=-26)
    x[SR : SR + 200] *= 30.0
    x[4 * SR : 4 * SR + 50] *= 20.0
    m = Master(ceiling_dbtp=-1.0)
    want, gmin = limit_min_gain(x.copy(), SR, m)
    steps = []

    def read(y, ready):
        got = []
        for i in range(0, y.shape[0], 20000):
            hi = min(y.shape[0], i + 20000)
            ready(hi)
            steps.append(hi)
            got.append(y[i:hi].copy())
        return np.concatenate(got)

    src = x.copy()
    y, g, seen = limit_min_gain_reading(src, SR, m, read, in_place=in_place)
    assert (y is src) == in_place and g == gmin and g < 0.5
    assert np.array_equal(y, want) and np.array_equal(seen, want)
    assert len(steps) > 10
    quiet = noise(rng, db=-40)
    assert limit_min_gain_reading(quiet, SR, m, read) == (quiet, None, None)


def test_master_measured_near_the_ceiling_leaves_the_signal_alone(rng):
    """A signal whose sample peaks could reach the ceiling but whose true peak does not:
    the limiter runs, changes nothing, and the master measures the input's true peak
    (the energies, not asked for then, are not returned)."""
    from vocalmix.core.limiter import limit_min_gain_reading
    from vocalmix.core.render import master_stage_measured

    x = noise(rng, db=-20)
    x *= np.float32(10 ** (-2.0 / 20) / float(np.abs(x).max()))  # sample peak -2 dBFS
    m = Master(ceiling_dbtp=-1.0)
    assert true_peak_dbtp(x, SR) < -1.0
    for in_place in (False, True):
        src = x.copy()
        y, red, tp, e = master_stage_measured(src, SR, m, in_place=in_place, energy="limited")
        assert red == 0.0 and e is None and np.array_equal(y, x)
        assert tp == true_peak_dbtp(x, SR)
        # what a reader saw while the limiter ran is the input, to the bit
        src = x.copy()
        y, gmin, seen = limit_min_gain_reading(
            src, SR, m, lambda out, ready: (ready(len(out)), out.copy())[1], in_place=in_place)
        assert y is src and gmin is None and np.array_equal(seen, x)


def test_true_peak_on_two_threads_is_the_same_figure(rng, monkeypatch):
    """Two channels' interpolation on two threads gives the one-thread figure to the
    bit, whichever channel holds the peak."""
    import vocalmix.core.measure as M

    x = noise(rng, seconds=6.0, db=-12)
    for ch in (0, 1):
        y = x.copy()
        y[2 * SR + 7, ch] = 0.9
        y[2 * SR + 8, ch] = 0.9  # an inter-sample peak over 0.9
        monkeypatch.setattr(M, "_TP_TWO_THREADS", 1 << 40)
        one = M.true_peak_dbtp(y, SR)
        monkeypatch.setattr(M, "_TP_TWO_THREADS", 0)
        assert M.true_peak_dbtp(y, SR) == one > 20 * np.log10(0.9)


@pytest.mark.parametrize("case", ["limited", "quiet", "near"])
def test_pending_master_hands_out_its_final_rows_while_it_runs(rng, case):
    """The master stage running on helper threads: the rows a writer takes while it runs
    are the output to the bit, in any block size, and its figures are those of the
    master measured at once."""
    from vocalmix.core.render import PendingMaster, master_stage_measured

    x = noise(rng, seconds=5.0, db={"limited": -26, "quiet": -40, "near": -20}[case])
    if case == "limited":
        x[SR : SR + 200] *= 30.0
    if case == "near":  # the limiter runs and changes nothing
        x *= np.float32(10 ** (-2.0 / 20) / float(np.abs(x).max()))
    m = Master(ceiling_dbtp=-1.0)
    want = master_stage_measured(x.copy(), SR, m, energy="limited")
    pending = PendingMaster(x.copy(), SR, m, in_place=True)
    taken = np.concatenate(list(pending.blocks(30001)))
    y, red, tp, e = pending.result()
    assert np.array_equal(taken, want[0]) and np.array_equal(y, want[0])
    assert (red, tp) == (want[1], want[2])
    assert (e is None) == (want[3] is None) == (case != "limited")
    if e is not None:
        assert np.array_equal(e, want[3])


def test_pending_master_raises_the_limiters_error_to_its_reader(rng, monkeypatch):
    from vocalmix.core.render import PendingMaster

    fail_the_limiter(monkeypatch, after_blocks=3)
    x = noise(rng, seconds=5.0, db=-26)
    x[SR : SR + 200] *= 30.0
    pending = PendingMaster(x, SR, Master(ceiling_dbtp=-1.0))
    with pytest.raises(RuntimeError, match="the limiter failed"):
        for _b in pending.blocks(4096):
            pass
    with pytest.raises(RuntimeError, match="the limiter failed"):
        pending.result()
    pending.close()


def test_master_keeps_true_peak_under_ceiling(rng):
    x = noise(rng, db=-26)  # sample peaks around -21 dBFS
    x[SR : SR + 200] *= 30.0  # a burst far over the ceiling
    assert true_peak_dbtp(x, SR) > 0
    y, red, _tp = master_stage(x, SR, Master(ceiling_dbtp=-1.0))
    assert true_peak_dbtp(y, SR) <= -1.0 + 1e-6
    assert red > 10.0
    # away from the burst (beyond look-ahead and hold) the signal is untouched
    np.testing.assert_array_equal(y[: SR // 2], x[: SR // 2])
    np.testing.assert_array_equal(y[2 * SR :], x[2 * SR :])


def test_eq_matches_closed_form_peak_gain():
    """A peak band of +6 dB at 1 kHz raises a 1 kHz sine by 6 dB (and high-pass passes it)."""
    t = np.arange(SR * 2) / SR
    x = np.repeat((0.1 * np.sin(2 * np.pi * 1000 * t))[:, None], 2, 1).astype(np.float32)
    y = eq_stage(x, SR, HighPass(True, 80.0), (EqBand("peak", 1000.0, 6.0, 1.0),))
    gain = 20 * np.log10(np.std(y[SR:]) / np.std(x[SR:]))
    assert gain == pytest.approx(6.0, abs=0.1)


def test_compressor_gain_computer_closed_form():
    """A steady sine 12 dB over the threshold at ratio 4 comes out 9 dB lower (hard knee)."""
    t = np.arange(SR * 2) / SR
    x = np.repeat(np.sin(2 * np.pi * 200 * t)[:, None] * 0.5, 2, 1).astype(np.float32)
    peak_db = 20 * np.log10(0.5)
    comp = Compressor(threshold_db=peak_db - 12.0, ratio=4.0, attack_ms=1.0, release_ms=200.0)
    y = compressor_stage(x, SR, comp)
    out_peak = 20 * np.log10(np.abs(y[SR:]).max())
    assert out_peak == pytest.approx(peak_db - 9.0, abs=0.3)
    made_up = compressor_stage(x, SR, Compressor(**{**comp.__dict__, "makeup_db": 9.0}))
    assert 20 * np.log10(np.abs(made_up[SR:]).max()) == pytest.approx(peak_db, abs=0.3)


def test_render_is_deterministic(rng):
    v, b = noise(rng, db=-25), noise(rng, db=-20)
    p = MixParams(vocal=VocalChain(
        eq_bands=(EqBand("peak", 3000.0, 3.0, 1.0),),
        compressor=Compressor(threshold_db=-30.0, ratio=3.0),
        gain_db=2.0,
        reverb=Reverb(room_size=0.5, wet_level_db=-10.0, pre_delay_ms=15.0),
    ))
    a, c = render(v, b, SR, p), render(v, b, SR, p)
    for f in ("mix", "vocal", "vocal_dry", "backing"):
        assert np.array_equal(getattr(a, f), getattr(c, f))
    # the stems add up to the pre-master sum, and the vocal includes the reverb
    assert not np.array_equal(a.vocal, a.vocal_dry)


def test_gain_resolver_exact_on_noise(rng):
    v, b = noise(rng, db=-30), noise(rng, db=-20)
    sol = resolve_vocal_gain(v, b, SR, -3.0)
    g = np.float32(10 ** (sol.gain_db / 20))
    vv = v * g
    got = integrated_loudness(vv, SR) - integrated_loudness(vv + b, SR)
    assert got == pytest.approx(-3.0, abs=0.02)


def test_proxy_tracks_real_compressor():
    """The proxy's LRA follows the real render within 0.3 LU over a range of thresholds."""
    path = require_data("dry_vocals", "vocadito_1_CC-BY4.wav")
    from vocalmix.core.audio import read_audio

    a = read_audio(path)
    x, sr = a.samples, a.sample_rate
    proxy = CompressorProxy.of(x, sr, 10.0, 120.0)
    for thr in (-10.0, -25.0, -28.0, -30.0, -32.0, -40.0):
        comp = Compressor(threshold_db=thr, ratio=4.0, attack_ms=10.0, release_ms=120.0)
        real = loudness_range(compressor_stage(x, sr, comp), sr)
        assert proxy.lra(np.array([thr]), 4.0)[0] == pytest.approx(real, abs=0.3)


def _real_vocals():
    songs = stem_songs()
    if not songs:
        require_data("stems")
    from vocalmix.core.audio import read_audio

    out = [read_audio(find_stem(s, "vocals")) for s in songs]
    p = require_data("dry_vocals", "vocadito_1_CC-BY4.wav")
    out.append(read_audio(p))
    return out


def test_compressor_resolver_hits_target_on_real_vocals():
    for a in _real_vocals():
        x, sr = a.samples, a.sample_rate
        lra = loudness_range(x, sr)
        target = round(0.75 * lra, 2)
        sol = resolve_compressor(x, sr, target, Compressor(ratio=3.0, attack_ms=10.0,
                                                           release_ms=120.0))
        real = loudness_range(compressor_stage(x, sr, sol.compressor), sr)
        assert real == pytest.approx(target, abs=0.3), (a.path, sol.note)
        assert sol.achieved_lra_lu == pytest.approx(real, abs=1e-4)  # make-up differs
        # make-up keeps the loudness
        y = compressor_stage(x, sr, sol.compressor)
        assert integrated_loudness(y, sr) == pytest.approx(integrated_loudness(x, sr), abs=0.05)


def test_compressor_resolver_never_expands():
    a = _real_vocals()[0]
    sol = resolve_compressor(a.samples, a.sample_rate, 25.0)
    assert sol.compressor.ratio == 1.0 and sol.renders == 0


def test_envelope_probe_stops_when_asked(rng, monkeypatch):
    """The compressor resolver's envelope probe: unstopped, the same frames as ever; once
    its ``stop`` is set (the input needs no compression), it ends after the chunk being
    rendered instead of rendering the rest of the vocal, and returns ``None``."""
    import threading

    import vocalmix.core.resolve as R

    monkeypatch.setattr(R, "_PROXY_FRAMES", 64)  # many chunks in a few seconds
    x = noise(rng, seconds=12.0)
    flen = R._proxy_frame_len(SR)
    whole = R._envelope_frames_db(x, SR, 10.0, 120.0, flen)
    assert whole is not None
    assert np.array_equal(whole, R._envelope_frames_db(x, SR, 10.0, 120.0, flen,
                                                       threading.Event()))
    renders = []
    probe = R._probe

    def counted(*a):
        comp, mono = probe(*a)

        def run(*b, **k):
            renders.append(1)
            return comp(*b, **k)
        return run, mono

    monkeypatch.setattr(R, "_probe", counted)
    stop = threading.Event()
    stop.set()
    assert R._envelope_frames_db(x, SR, 10.0, 120.0, flen, stop) is None
    chunks = -(-whole.shape[0] // 64)
    assert chunks >= 15 and len(renders) <= 3


def test_compressor_resolver_leaves_a_narrow_vocal_alone_without_the_whole_probe(
        rng, monkeypatch):
    """A vocal already within its target: no compression, and the probe started beside
    the input's measurement is stopped rather than waited for to the end."""
    import vocalmix.core.resolve as R

    monkeypatch.setattr(R, "_PROXY_FRAMES", 64)
    seen = []
    frames, probe = R._envelope_frames_db, R._probe
    stops = []

    def spy(*a):
        stops.append(a[5])
        out = frames(*a)
        seen.append(out)
        return out

    def held(*a):  # each chunk's render waits until the resolver stops the probe
        comp, mono = probe(*a)

        def run(*b, **k):
            stops[0].wait(10.0)
            return comp(*b, **k)
        return run, mono

    monkeypatch.setattr(R, "_envelope_frames_db", spy)
    monkeypatch.setattr(R, "_probe", held)
    sol = resolve_compressor(noise(rng, seconds=12.0), SR, 25.0)
    assert sol.compressor.ratio == 1.0 and sol.renders == 0
    assert stops[0].is_set() and seen == [None]  # stopped, not rendered to the end


def test_compressor_input_measured_once_for_the_dynamics_model_and_the_resolver(
        rng, monkeypatch):
    """A read-only compressor input measured first (as the dynamics model reads it): the
    resolver's own measurement is then a look-up, with the same solution to the bit, and
    the frame energies come back read-only."""
    import vocalmix.core.measure as M
    from vocalmix.core.dsp import frozen
    from vocalmix.core.resolve import measure_compressor_input

    x = noise(rng, seconds=12.0)
    for i, db in enumerate((-18.0, -6.0, -12.0, 0.0)):  # a range of levels to compress
        x[i * 3 * SR : (i + 1) * 3 * SR] *= np.float32(10 ** (db / 20))
    base = Compressor(ratio=3.0, attack_ms=10.0, release_ms=120.0)
    assert loudness_range(x, SR) > 10.0
    plain = resolve_compressor(frozen(x.copy(), unique=True), SR, 6.0, base)
    passes = []
    blocks = M.k_weighted_blocks

    def counted(y, *a, **k):
        passes.append(y.shape[0])
        return blocks(y, *a, **k)

    monkeypatch.setattr(M, "k_weighted_blocks", counted)
    seen = frozen(x.copy(), unique=True)
    measure_compressor_input(seen, SR)
    assert len(passes) == 1
    primed = resolve_compressor(seen, SR, 6.0, base)
    assert len(passes) == 1  # the input was not K-weighted again
    assert primed.compressor == plain.compressor and primed.renders == plain.renders >= 1
    assert primed.achieved_lra_lu == plain.achieved_lra_lu
    frames = M.k_weighted_frame_energies(seen, SR, 441)
    assert not frames.flags.writeable and len(passes) == 1
    # a writeable signal is measured each time, nothing remembered
    M.k_weighted_frame_energies(x, SR, 441)
    M.k_weighted_frame_energies(x, SR, 441)
    assert len(passes) == 3


def test_gain_resolver_on_real_stems():
    songs = stem_songs()
    if not songs:
        require_data("stems")
    from vocalmix.core.audio import prepare_pair, read_audio

    song = songs[0]
    v = read_audio(find_stem(song, "vocals"))
    bpath = find_stem(song, "accompaniment")
    if bpath is None:
        parts = [read_audio(find_stem(song, n)).samples for n in ("drums", "bass", "other")]
        from vocalmix.core.audio import Audio

        b = Audio(sum(parts), v.sample_rate, "sum")
    else:
        b = read_audio(bpath)
    vs, bs, sr, _ = prepare_pair(v, b)
    for target in (-6.0, -3.0, -1.5):
        sol = resolve_vocal_gain(vs, bs, sr, target)
        vv = vs * np.float32(10 ** (sol.gain_db / 20))
        got = integrated_loudness(vv, sr) - integrated_loudness(vv + bs, sr)
        assert got == pytest.approx(target, abs=0.05)


def test_the_resolvers_premaster_sum_is_the_renders_to_the_bit(rng):
    """The master-gain resolver measures the same pre-master sum the render makes."""
    from dataclasses import replace

    from vocalmix.core.render import VocalParts, assemble, backing_at_gain, premaster_sum

    dry, wet, backing = noise(rng, db=-18), noise(rng, db=-30), noise(rng, db=-14)
    p = MixParams()
    for gain_db, backing_db in ((3.7, 0.0), (-11.3, -2.5)):
        q = replace(p, vocal=replace(p.vocal, gain_db=gain_db),
                    backing=replace(p.backing, gain_db=backing_db))
        b = backing_at_gain(backing, backing_db)
        rendered = assemble(VocalParts(dry=dry, wet=wet), backing, SR, q)
        assert np.array_equal(premaster_sum(VocalParts(dry=dry, wet=wet), b, gain_db),
                              rendered.premaster)


@pytest.mark.parametrize("frame_len", [441, 480, 1])
@pytest.mark.parametrize("channels", [1, 2])
def test_the_proxy_frame_means_are_the_frames_means(frame_len, channels, rng):
    """The compressor proxy's frame means: each frame's mean per channel (rows past the
    last whole frame left out), to float64's rounding."""
    from vocalmix.core.resolve import _frame_means

    env = rng.standard_normal((37 * frame_len + frame_len // 2, channels)) * 20.0 - 40.0
    got = _frame_means(env, frame_len)
    want = env[: 37 * frame_len].reshape(-1, frame_len, channels).mean(axis=1)
    assert got.shape == (37, channels)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0.0)
    assert _frame_means(env[: frame_len - 1], frame_len).shape == (0, channels)
    # the probe's layout, channels first: the same means, to the bit
    rows = np.ascontiguousarray(env.T)
    assert np.array_equal(_frame_means(rows, frame_len, axis=1), got)
    assert _frame_means(rows[:, : frame_len - 1], frame_len, axis=1).shape == (0, channels)


def test_a_long_probe_in_two_parts_reads_the_one_pass_envelope(rng, monkeypatch):
    """The envelope probe of an input of SPLIT_PROBE_S or more is rendered in two parts
    on two threads, the second warmed up first: its frames are those of one render from
    the start (compressor_envelope_db, averaged per frame) but for float32's rounding,
    with the slowest release too, for stereo and for a centre-panned take."""
    import vocalmix.core.resolve as R

    x = noise(rng, seconds=R.SPLIT_PROBE_S + 4.0)
    for i in range(8):  # phrases at different levels, the louder ones compressed harder
        x[i * 3 * SR : (i + 1) * 3 * SR] *= np.float32(10 ** (-(i % 4) * 8.0 / 20))
    flen = R._proxy_frame_len(SR)
    made = []
    probe = R._probe

    def counted(*a):
        made.append(1)
        return probe(*a)

    monkeypatch.setattr(R, "_probe", counted)
    for sig, attack, release in ((x, 10.0, 120.0), (x, 8.2, 753.0),
                                 (np.repeat(x[:, :1], 2, axis=1), 5.0, 400.0)):
        made.clear()
        got = R._envelope_frames_db(sig, SR, attack, release, flen)
        assert len(made) == 2  # two parts, each its own compressor
        whole = R.compressor_envelope_db(sig, SR, attack, release)
        n = sig.shape[0] // flen
        want = whole[: n * flen].reshape(n, flen, 2).mean(axis=1)
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) < 1e-4
    # a warm-up longer than a third of the input: one part
    made.clear()
    R._envelope_frames_db(x, SR, 10.0, 5000.0, flen)
    assert len(made) == 1


@pytest.mark.parametrize("sample_rate,extra", [(44100, 1), (44100, 4409), (16000, 100)])
def test_an_input_whose_last_block_is_shorter_than_a_segment_mixes(sample_rate, extra):
    """The gain resolver K-weights the vocal and the backing in blocks of 64 segments of
    100 ms; an input whose length left a last block shorter than one segment (one input
    length in 64: a 16 kHz karaoke take of 6.496 s) stopped the mix with an internal
    error. Its samples still count nowhere (no whole segment), as for every length."""
    from vocalmix.core.measure import kw_block_len
    from vocalmix.pipeline import mix, render_params
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=sample_rate, duration_s=7.0)
    n = kw_block_len(sample_rate) + extra
    v, b = np.resize(v, (n, 2)).astype(np.float32), np.resize(b, (n, 2)).astype(np.float32)
    params, rendered, _est = mix(v, b, sample_rate, method="model")
    assert rendered.mix.shape == (n, 2)
    assert params.achieved.vocal_to_mix_lu == pytest.approx(params.targets.vocal_to_mix_lu,
                                                           abs=0.3)
    _p, again = render_params(v, b, sample_rate, params)
    assert np.array_equal(again.mix, rendered.mix)


@pytest.mark.parametrize("method", ["baseline", "model"])
@pytest.mark.parametrize("vocal_lufs", [-50.0, -65.0])
def test_a_quiet_take_raised_far_is_placed_and_reported_as_rendered(method, vocal_lufs):
    # the vocal's loudness at each gain was its loudness at 0 dB plus the gain: blocks
    # under BS.1770-4's -70 LUFS gate at 0 dB pass it once raised, and a take at -65 LUFS
    # reported -3.00 LU against the mix was -3.69 LU as rendered
    import vocalmix
    from vocalmix.core.measure import vocal_to_mix_lu
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=SR, duration_s=8.0, seed=2)
    v = (v * 10 ** ((vocal_lufs - integrated_loudness(v, SR)) / 20)).astype(np.float32)
    r = vocalmix.mix(v, b, SR, method=method)
    p = r.params
    rendered = vocal_to_mix_lu(r.vocal, r.backing, SR, p.targets.vocal_to_mix_measure)
    assert rendered == pytest.approx(p.achieved.vocal_to_mix_lu, abs=0.01)
    assert rendered == pytest.approx(p.targets.vocal_to_mix_lu, abs=0.05)
    assert integrated_loudness(r.vocal, SR) - integrated_loudness(r.backing, SR) == (
        pytest.approx(p.achieved.vocal_to_backing_lu, abs=0.01))


@pytest.mark.parametrize("statistic", ["lra", "momentary_range"])
def test_the_proxys_grid_on_two_threads_is_each_thresholds_own_figure(statistic, rng):
    """A grid of thresholds is computed in two halves on two threads: each threshold's
    figure is the one it gets on its own, to the bit."""
    import vocalmix.core.resolve as R

    x = noise(rng, seconds=12.0)
    for i in range(4):
        x[i * 3 * SR : (i + 1) * 3 * SR] *= np.float32(10 ** (-i * 6.0 / 20))
    proxy = R.CompressorProxy.of(x, SR, 10.0, 120.0)
    grid = np.linspace(-50.0, -10.0, R.SEARCH_POINTS)
    assert grid.size >= R._SPLIT_ROWS
    whole = proxy.statistic(grid, 4.0, statistic)
    alone = np.concatenate([proxy.statistic(grid[i : i + 1], 4.0, statistic)
                            for i in range(grid.size)])
    assert np.array_equal(whole, alone)
    assert np.ptp(whole) > 1.0  # (the thresholds do compress differently)
