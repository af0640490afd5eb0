"""Bad input: every kind gets its own clear error, a non-zero exit, and no output file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core import errors
from vocalmix.core.audio import prepare_pair, read_audio, write_audio
from vocalmix.frontends.cli import main

SR = 16000


def tone(seconds: float = 2.0, channels: int = 2, sr: int = SR, db: float = -20.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 10 ** (db / 20) * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture
def good(tmp_path: Path) -> tuple[Path, Path]:
    v, b = tmp_path / "vocal.wav", tmp_path / "backing.wav"
    sf.write(v, tone(), SR)
    sf.write(b, tone(db=-18.0), SR)
    return v, b


def run_mix(capsys, vocal: Path, backing: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(["mix", str(vocal), str(backing), "-o", str(out), "-q", *extra])
    err = capsys.readouterr().err
    return code, err


def make_bad(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"bad_{kind}.wav"
    if kind == "missing":
        return tmp_path / "nope.wav"
    if kind == "unreadable":
        p.write_text("this is not audio")
    elif kind == "empty":
        sf.write(p, np.zeros((0, 2), np.float32), SR)
    elif kind == "silent":
        sf.write(p, np.zeros((SR * 2, 2), np.float32), SR)
    elif kind == "nan":
        x = tone()
        x[100, 0] = np.nan
        sf.write(p, x, SR, subtype="FLOAT")
    elif kind == "channels":
        sf.write(p, tone(channels=3), SR)
    elif kind == "short":
        sf.write(p, tone(seconds=0.1), SR)
    elif kind == "folder":
        p = tmp_path / "afolder.wav"
        p.mkdir()
    return p


CASES = {
    "missing": (errors.AudioFileNotFoundError, "no such file"),
    "unreadable": (errors.UnreadableAudioError, "cannot be decoded as audio"),
    "empty": (errors.EmptyAudioError, "zero length"),
    "silent": (errors.SilentAudioError, "silent"),
    "nan": (errors.NonFiniteAudioError, "NaN or infinite"),
    "channels": (errors.ChannelLayoutError, "3 channels.*--fold"),
    "short": (errors.DurationError, "too short"),
    "folder": (errors.UnreadableAudioError, "is a folder"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("role", ["vocal", "backing"])
def test_bad_input_clear_error_and_no_output(tmp_path, capsys, good, kind, role):
    exc, msg = CASES[kind]
    bad = make_bad(tmp_path, kind)
    v, b = good
    out = tmp_path / "out" / "mix.wav"
    args = (bad, b) if role == "vocal" else (v, bad)
    code, err = run_mix(capsys, *args, out, "--params-out", str(tmp_path / "out" / "p.json"))
    assert code == 2
    assert err.startswith("vocalmix: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(msg, err), err
    assert not out.exists() and not (tmp_path / "out" / "p.json").exists()
    # the library raises the specific class
    if kind != "silent":
        with pytest.raises(exc):
            read_audio(bad)
    else:
        with pytest.raises(exc):
            a = read_audio(bad)
            ok = read_audio(v)
            prepare_pair(a, ok) if role == "vocal" else prepare_pair(ok, a)


def test_too_long_is_refused(tmp_path, capsys, good, monkeypatch):
    monkeypatch.setenv("VOCALMIX_MAX_DURATION_S", "1.5")
    v, b = good
    code, err = run_mix(capsys, v, b, tmp_path / "m.wav")
    assert code == 2 and "longer than the limit" in err
    assert "VOCALMIX_MAX_DURATION_S" in err  # how to raise it
    assert "2.0 s is longer than the limit of 1.5 s" in err  # (not "0 min")
    with pytest.raises(errors.DurationError):
        read_audio(v, max_duration_s=1.0)
    for typo in ("nan", "inf", "-1", "0", "abc"):  # never lifts the limit, never all inputs
        monkeypatch.setenv("VOCALMIX_MAX_DURATION_S", typo)
        code, err = run_mix(capsys, v, b, tmp_path / "m.wav")
        assert code == 2 and f"VOCALMIX_MAX_DURATION_S={typo!r}: give" in err


def test_existing_output_needs_force_and_inputs_are_never_overwritten(tmp_path, capsys, good):
    v, b = good
    before = v.read_bytes()
    code, err = run_mix(capsys, v, b, v, "--force")
    assert code == 2 and "is an input file" in err
    assert v.read_bytes() == before
    out = tmp_path / "exists.wav"
    out.write_bytes(b"keep me")
    code, err = run_mix(capsys, v, b, out)
    assert code == 2 and "already exists" in err and "--force" in err
    assert out.read_bytes() == b"keep me"


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    p = write_audio(tmp_path / "a.wav", tone(), SR)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.wav"]
    with pytest.raises(errors.OutputExistsError):
        write_audio(p, tone(), SR)
    write_audio(p, tone(db=-30), SR, force=True)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.wav"]



def test_a_folder_another_writer_makes_meanwhile_is_used_not_an_error(tmp_path, monkeypatch):
    """A batch's workers write into the same new folders: the one that loses the race to
    make ``mix/`` must write into it, not fail with "File exists" (and, should its own
    write fail, must not remove a folder it did not make)."""
    import os

    real_mkdir = os.mkdir

    def beaten_to_it(path, *args, **kwargs):  # another process makes it first
        real_mkdir(path, *args, **kwargs)
        raise FileExistsError(17, "File exists", str(path))

    monkeypatch.setattr(os, "mkdir", beaten_to_it)
    p = write_audio(tmp_path / "mix" / "a.wav", tone(), SR)
    assert p.is_file() and sorted(x.name for x in p.parent.iterdir()) == ["a.wav"]
    monkeypatch.setattr(os, "mkdir", real_mkdir)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(errors.OutputError):  # a file where the folder must be stays one
        write_audio(tmp_path / "file" / "a.wav", tone(), SR)



def _commit_pair(k: int, folder: str, barrier) -> None:  # (a child process)
    from vocalmix.core.audio import OutputPlan

    d = Path(folder)
    plan = OutputPlan(files=[d / "mix.txt", d / "params.json"], force=True)
    barrier.wait()
    plan.commit({d / "mix.txt": f"run {k}", d / "params.json": f"run {k}"})


def test_writers_committing_the_same_outputs_at_once_leave_one_writers_whole_set(tmp_path):
    """Two runs with --force writing the same mix and params at the same moment: the
    folder ends with one run's pair, never one run's mix beside another's params (without
    the commit's folder lock about one trial in ten mixed them)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for t in range(30):
        d = tmp_path / f"t{t}"
        d.mkdir()
        barrier = ctx.Barrier(3)
        procs = [ctx.Process(target=_commit_pair, args=(k, str(d), barrier)) for k in range(3)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        assert [proc.exitcode for proc in procs] == [0, 0, 0]
        assert (d / "mix.txt").read_text() == (d / "params.json").read_text()
        assert sorted(x.name for x in d.iterdir()) == ["mix.txt", "params.json"]



def test_a_disk_that_fills_up_during_the_write_is_said_and_leaves_nothing(tmp_path, monkeypatch):
    """libsndfile says only "System error." when the disk fills up mid-write (after the
    free-space check before any work): the error names the full disk, is an OutputError
    (not an internal error), and no scratch file or partial output is left."""
    import shutil
    from collections import namedtuple

    from vocalmix.core import audio

    def full(*_args, **_kwargs):
        raise RuntimeError("System error.")

    usage = namedtuple("usage", "total used free")
    real_usage = shutil.disk_usage
    write_audio(tmp_path / "before.wav", tone(), SR)  # (the check before any work passes)
    monkeypatch.setattr(audio, "_write_samples", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, (1 << 30) - 4096, 4096))
    with pytest.raises(errors.OutputError, match=r"a.wav: .*the disk is full: System error"):
        audio._commit([(audio.PlannedOutput(tmp_path / "a.wav", "audio"),
                        audio.AudioData(tone(), SR))])
    monkeypatch.setattr(shutil, "disk_usage", real_usage)
    with pytest.raises(errors.OutputError, match=r"a.wav: cannot be written as WAV PCM_24 "
                                                  r"\(System error.\)$"):
        write_audio(tmp_path / "a.wav", tone(), SR)  # room left: the library's words only
    assert sorted(x.name for x in tmp_path.iterdir()) == ["before.wav"]



def test_an_input_that_cannot_be_opened_is_not_called_a_format_problem(tmp_path, monkeypatch):
    """libsndfile says "System error." for a file it may not open; the error says what
    the system said (permission denied), not "cannot be decoded as audio"."""
    from vocalmix.core import audio

    p = tmp_path / "take.wav"
    sf.write(p, tone(), SR)

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    def decoder(path, *args, **kwargs):
        raise RuntimeError("Error opening 'take.wav': System error.")

    monkeypatch.setattr(audio.sf, "SoundFile", decoder)
    with pytest.raises(errors.UnreadableAudioError, match="cannot be decoded as audio"):
        read_audio(p)  # openable: the decoder's words
    monkeypatch.setattr(audio, "open", denied, raising=False)
    with pytest.raises(errors.UnreadableAudioError, match=r"take.wav: cannot be read "
                                                          r"\(permission denied\)$"):
        read_audio(p)



def test_write_audio_scales_integers_and_refuses_what_a_file_cannot_hold(tmp_path):
    """NaN was written as full-scale DC and int16 samples unscaled (every sample clipped);
    integers are now read at their type's full scale, as soundfile reads them back, and
    non-finite samples or rates are refused before any file exists."""
    x = tone(db=-6.0)
    ints = np.round(x * 32767).astype(np.int16)
    write_audio(tmp_path / "i16.wav", ints, SR)
    y, _ = sf.read(tmp_path / "i16.wav", dtype="float32")
    np.testing.assert_allclose(y, ints / 32768.0, atol=1e-6)
    u8 = np.full((100, 2), 192, np.uint8)  # unsigned: 128 is silence
    write_audio(tmp_path / "u8.wav", u8, SR)
    np.testing.assert_allclose(sf.read(tmp_path / "u8.wav")[0], 0.5, atol=1e-6)
    bad = x.copy()
    bad[5, 1] = np.nan
    with pytest.raises(errors.NonFiniteAudioError, match="NaN or infinite"):
        write_audio(tmp_path / "nan.wav", bad, SR)
    for rate in (float("nan"), 44100.5, 0, 10**7):
        with pytest.raises(errors.SampleRateError):
            write_audio(tmp_path / "rate.wav", x, rate)  # type: ignore[arg-type]
    with pytest.raises(errors.AudioError, match="float or integer"):
        write_audio(tmp_path / "c.wav", x.astype(np.complex64), SR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i16.wav", "u8.wav"]


def test_mono_rates_lengths_and_clipping_are_handled_and_said(tmp_path):
    v = tmp_path / "v.wav"
    b = tmp_path / "b.flac"
    sf.write(v, tone(seconds=2.0, channels=1)[:, 0], SR)
    bb = tone(seconds=3.0, sr=22050)
    bb[1000:1010] = 1.0  # a clipped run
    sf.write(b, bb, 22050, subtype="PCM_16")
    va, ba = read_audio(v), read_audio(b)
    assert va.samples.shape[1] == 2 and va.source_channels == 1
    assert any("clipped" in n for n in ba.notes)
    vs, bs, sr, notes = prepare_pair(va, ba)  # the mix takes the higher rate
    assert sr == 22050 and vs.shape == bs.shape and vs.shape[0] == 3 * 22050
    assert any("vocal resampled from 16000 Hz to 22050 Hz" in n for n in notes)
    assert any("vocal was 1.00 s shorter" in n for n in notes)
    vs, bs, sr, notes = prepare_pair(va, ba, sample_rate=SR)  # or the rate asked for
    assert sr == SR and vs.shape == bs.shape and vs.shape[0] == 3 * SR
    assert any("backing resampled from 22050 Hz to 16000 Hz" in n for n in notes)


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS"),
                                         ("mp3", "MPEG_LAYER_III")])
def test_reads_common_formats(tmp_path, fmt, subtype):
    p = tmp_path / f"x.{fmt}"
    try:
        sf.write(p, tone(), SR if fmt != "mp3" else 44100, subtype=subtype)
    except (sf.LibsndfileError, TypeError, ValueError) as e:  # pragma: no cover
        pytest.skip(f"this libsndfile cannot write {fmt}: {e}")
    a = read_audio(p)
    assert a.samples.dtype == np.float32 and a.samples.shape[1] == 2


def test_channel_figures_read_in_blocks_equal_the_whole_signal_figures():
    from vocalmix.core import audio

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((200_017, 2)) * 0.1 + [0.01, -0.02]).astype(np.float32)
    mean, hi, lo, products = audio._channel_pass(x, gram=False)
    np.testing.assert_allclose(mean, x.mean(axis=0, dtype=np.float64), rtol=1e-12)
    assert np.array_equal(hi, x.max(axis=0)) and np.array_equal(lo, x.min(axis=0))
    assert products is None
    # the channels' products come from the same pass, the other figures unchanged
    m2, hi2, lo2, products = audio._channel_pass(x, gram=True)
    assert np.array_equal(m2, mean) and np.array_equal(hi2, hi) and np.array_equal(lo2, lo)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(products, x64.T @ x64, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
@pytest.mark.parametrize("rows", [0, 1, 5, 512, 1024, 3 * 65536 + 7])
def test_channel_figures_whatever_the_length_and_channels(channels, rows):
    """The interleaved samples are reduced as rows of whole frames, the last part of a
    row on its own: each channel's mean, extremes and products are those of its own
    samples, for lengths around a row's and channels that do not divide it, and for an
    input that is not contiguous."""
    from vocalmix.core import audio

    rng = np.random.default_rng(rows + channels)
    offsets = np.linspace(-0.05, 0.05, channels)
    x = (rng.standard_normal((rows, channels)) * 0.3 + offsets).astype(np.float32)
    for arr in (x, np.asfortranarray(x)):
        mean, hi, lo, products = audio._channel_pass(arr, gram=True)
        x64 = x.astype(np.float64)
        if rows == 0:
            assert np.array_equal(mean, np.zeros(channels))
            assert np.all(hi == -np.inf) and np.all(lo == np.inf)
            assert np.array_equal(products, np.zeros((channels, channels)))
            continue
        np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-12, atol=1e-15)
        assert np.array_equal(hi, x.max(axis=0)) and np.array_equal(lo, x.min(axis=0))
        assert hi.dtype == lo.dtype == mean.dtype == np.float64
        exact = x64.T @ x64  # (float32 products: cross sums near 0 to the squares' scale)
        np.testing.assert_allclose(products, exact, rtol=1e-6, atol=1e-6 * exact.max())
        assert np.array_equal(products, products.T)


def test_a_backing_much_shorter_than_the_vocal_is_warned_about_even_when_quiet(tmp_path, capsys):
    """The vocal's level is set over the whole vocal: where a short backing has ended the
    vocal sings alone, which pulls its level down where the backing plays. That is said
    as a warning (-q shows it), with what to do; a second's difference is only a note."""
    v, b = tmp_path / "v.wav", tmp_path / "b.wav"
    sf.write(v, tone(seconds=5.0), SR)
    sf.write(b, tone(seconds=1.0, db=-18.0), SR)
    code, err = run_mix(capsys, v, b, tmp_path / "m.wav", "--method", "baseline")
    assert code == 0
    warned = [line for line in err.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "ends 4.0 s before the vocal" in warned[0]
    assert "trim the vocal" in warned[0]
    sf.write(b, tone(seconds=4.0, db=-18.0), SR)
    code, err = run_mix(capsys, v, b, tmp_path / "m2.wav", "--method", "baseline")
    assert code == 0 and "warning:" not in err


@pytest.mark.parametrize("command", ["mix", "estimate", "live"])
def test_the_short_backing_warning_is_shown_quiet_by_every_path(tmp_path, capsys, monkeypatch,
                                                               command):
    """The same warning from the long-input path (mixed a block at a time, its notes
    carried by the estimate) and from live as from a whole-file mix."""
    v, b = tmp_path / "v.wav", tmp_path / "b.wav"
    sf.write(v, tone(seconds=6.0), SR)
    sf.write(b, tone(seconds=1.0, db=-18.0), SR)
    out = tmp_path / ("p.json" if command == "estimate" else "m.wav")
    if command != "live":
        monkeypatch.setenv("VOCALMIX_LONG_INPUT_MB", "0.1")  # these inputs count as long
    code = main([command, str(v), str(b), "-o", str(out), "-q", "--method", "baseline"])
    err = capsys.readouterr().err
    assert code == 0, err
    warned = [line for line in err.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "ends 5.0 s before the vocal" in warned[0], err


def test_a_wav_cut_off_before_its_header_says_is_read_with_a_note(tmp_path):
    """libsndfile reads what a cut-off WAV holds and says so only in its log: the read
    carries a note (the audio there is used), an intact file none."""
    p = tmp_path / "take.wav"
    sf.write(p, tone(seconds=3.0), SR, subtype="PCM_16")
    whole = read_audio(p)
    assert not any("ends before" in n for n in whole.notes)
    data = p.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 3])
    a = read_audio(cut)
    assert a.samples.shape[0] < whole.samples.shape[0] // 2
    assert any(n.startswith("warning:") and "ends before its header says it should" in n
               and "cut off?" in n for n in a.notes)  # (shown even with -q)
    # the long-input path's reader, which decodes a block at a time, says it too
    from vocalmix.core.audio import AudioReader

    r = AudioReader(cut).scan("vocal")
    assert r.frames == a.samples.shape[0]
    assert [n for n in r.notes if "cut off?" in n] == [n for n in a.notes if "cut off?" in n]
    assert not any("cut off?" in n for n in AudioReader(p).scan("vocal").notes)


def test_an_interrupt_after_the_commit_point_still_removes_the_backups(tmp_path, monkeypatch):
    """A Ctrl-C or SIGTERM a few ms after a group's commit point used to stop its tidying
    up: the new outputs were in place, beside full-size backups and journals until a
    later run into that folder. The tidying now finishes before the interrupt goes on."""
    from vocalmix.core import audio

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    audio.OutputPlan(files=[a, b]).commit({a: "old a", b: "old b"})
    real = audio._unlink_all
    calls = []

    def interrupted_once(paths):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real(paths)

    monkeypatch.setattr(audio, "_unlink_all", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        audio.OutputPlan(files=[a, b], force=True).commit({a: "new a", b: "new b"})
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_an_input_behind_a_folder_that_may_not_be_searched_is_said_plainly(tmp_path):
    """A file inside a folder this user may not enter: "cannot be read (permission
    denied)" for audio (it was an internal PermissionError) and for a params document
    (it was "no such params file"). Run as a user without root's override powers."""
    import os
    import shutil
    import subprocess
    import sys

    prefix: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
    v, b = tmp_path / "v.wav", tmp_path / "b.wav"
    sf.write(v, tone(), SR)
    sf.write(b, tone(db=-18.0), SR)
    shut = tmp_path / "shut"
    shut.mkdir()
    sf.write(shut / "v.wav", tone(), SR)
    (shut / "p.json").write_text("{}")
    shut.chmod(0)
    try:
        for argv, who in ((["mix", str(shut / "v.wav"), str(b)], "v.wav"),
                          (["render", str(v), str(b), str(shut / "p.json")], "p.json")):
            r = subprocess.run([*prefix, sys.executable, "-m", "vocalmix", *argv, "-q",
                                "-o", str(tmp_path / "m.wav")], capture_output=True, text=True)
            assert r.returncode == 2, r.stderr
            assert f"{who}: cannot be read (permission denied)" in r.stderr
    finally:
        shut.chmod(0o755)


def test_samples_past_full_scale_are_kept_not_clipped(tmp_path):
    """A WAV or AIFF whose samples pass full scale is written as 32-bit float (24-bit PCM
    would clip them); one within full scale stays 24-bit; a FLAC has no float samples."""
    loud = tone(db=6.0)  # peaks at +9.5 dBFS
    for ext in (".wav", ".aiff"):
        p = write_audio(tmp_path / f"loud{ext}", loud, SR)
        assert sf.info(p).subtype == "FLOAT"
        assert np.array_equal(sf.read(p, dtype="float32")[0], loud)
    assert sf.info(write_audio(tmp_path / "quiet.wav", tone(), SR)).subtype == "PCM_24"
    edge = tone()
    edge[0] = -1.0  # 24-bit PCM holds -1.0 exactly, +1.0 not
    assert sf.info(write_audio(tmp_path / "minus.wav", edge, SR)).subtype == "PCM_24"
    edge[0] = 1.0
    assert sf.info(write_audio(tmp_path / "plus.wav", edge, SR)).subtype == "FLOAT"
    assert sf.info(write_audio(tmp_path / "loud.flac", loud, SR)).subtype == "PCM_24"
    # asked for, a subtype is written as asked
    p = write_audio(tmp_path / "asked.wav", loud, SR, subtype="PCM_16")
    assert sf.info(p).subtype == "PCM_16"


def test_a_float_file_past_full_scale_is_said_so_not_called_clipped(tmp_path):
    """A 32-bit float export whose peaks pass full scale (a hot bus) is read as it is: its
    note gives the peak and says nothing was clipped, on both read paths (whole file and
    block scan), where it used to call the run of samples past 1.0 clipped. A 24-bit
    file flat at full scale is still called clipped, and a clean one gets neither note."""
    from vocalmix.core.audio import AudioReader

    hot = tone(db=0.0) * 2.0  # peaks at +9.5 dBFS
    clipped = np.clip(tone(db=6.0), -1.0, 1.0)
    files = {"hot": (hot, "FLOAT"), "clipped": (clipped, "PCM_24"),
             "clean": (tone(), "PCM_24")}
    for name, (x, subtype) in files.items():
        p = tmp_path / f"{name}.wav"
        sf.write(p, x, SR, subtype=subtype)
        for notes in (read_audio(p).notes, AudioReader(p, label=name).scan("vocal").notes):
            past = [n for n in notes if "past full scale" in n]
            clip = [n for n in notes if "appears clipped" in n]
            if name == "hot":
                assert len(past) == 1 and not clip, notes
                assert "+9.5 dBFS" in past[0] and "nothing clipped" in past[0]
            elif name == "clipped":
                assert len(clip) == 1 and not past, notes
            else:
                assert not past and not clip, notes


def test_a_file_recorded_far_under_full_scale_gets_a_note(tmp_path):
    """A take whose peak lies under -40 dBFS (a preamp's gain left low) is mixed as it
    would be recorded louder (``tests/test_quiet_take.py``), but the noise it was
    recorded with comes up with it: its note says so, with its peak, on both read paths.
    One peaking at -30 dBFS gets none, nor does silence (under -90 dBFS: refused)."""
    from vocalmix.core.audio import AudioReader, validate_signal

    unit = tone(db=0.0)
    unit /= np.abs(unit).max()
    for db, expect in ((-45.0, True), (-30.0, False), (-100.0, False)):
        x = unit * np.float32(10.0 ** (db / 20.0))
        p = tmp_path / f"q{-db:.0f}.wav"
        sf.write(p, x, SR, subtype="FLOAT")
        reads = [validate_signal(x, SR, label="q")[1]]
        if db > -90.0:
            reads += [read_audio(p).notes, AudioReader(p, label="q").scan("vocal").notes]
        for notes in reads:
            quiet = [n for n in notes if "recorded far under full scale" in n]
            assert bool(quiet) == expect, (db, notes)
            if expect:
                assert f"{db:.1f} dBFS" in quiet[0] and "noise" in quiet[0]


def test_a_vocal_stem_past_full_scale_under_a_loud_backing_is_kept(tmp_path, capsys):
    """The limiter acts on the mix only: under a loud, dense backing a peaky vocal's
    pre-master stem passes full scale, and its file keeps those peaks."""
    rng = np.random.default_rng(5)
    n = 6 * SR
    backing = np.tanh(8.0 * rng.standard_normal((n, 2))).astype(np.float32) * 0.9
    t = np.arange(n) / SR
    bursts = (np.sin(2 * np.pi * 2.0 * t) > 0.95).astype(np.float32)  # short, peaky notes
    vocal = np.repeat((0.5 * bursts * np.sin(2 * np.pi * 440 * t))[:, None], 2, axis=1)
    v, b = tmp_path / "v.wav", tmp_path / "b.wav"
    sf.write(v, vocal.astype(np.float32), SR, subtype="PCM_24")
    sf.write(b, backing, SR, subtype="PCM_24")
    code, err = run_mix(capsys, v, b, tmp_path / "mix.wav", "--method", "baseline",
                        "--stems-out", str(tmp_path / "stems"))
    assert code == 0, err
    stem = tmp_path / "stems" / "vocal.wav"
    x, _ = sf.read(stem, dtype="float32")
    assert np.abs(x).max() > 1.0 and sf.info(stem).subtype == "FLOAT"
    assert np.abs(sf.read(tmp_path / "mix.wav")[0]).max() < 1.0  # the mix itself is limited


def test_a_take_heard_for_a_moment_only_is_mixed_with_a_warning(tmp_path, capsys):
    """Three clicks over -80 dBFS hiss (a take with the microphone off) pass the silence
    check, and their level is set on the second or two they are heard (at the gain they
    are given, the hiss around them raised past the absolute gate with them): the mix
    makes them loud, and says so even with -q. A sung take gets no such warning."""
    n = 12 * SR
    rng = np.random.default_rng(1)
    clicks = np.repeat(1e-4 * rng.standard_normal((n, 1)), 2, axis=1).astype(np.float32)
    for t in (2.0, 6.0, 9.0):
        clicks[int(t * SR): int(t * SR) + 20] += 0.3
    v, b = tmp_path / "clicks.wav", tmp_path / "backing.wav"
    sf.write(v, clicks, SR, subtype="PCM_24")
    sf.write(b, tone(seconds=12.0, db=-18.0), SR)
    code, err = run_mix(capsys, v, b, tmp_path / "mix.wav", "--method", "baseline")
    assert code == 0
    heard = re.search(r"warning: the vocal is heard for only ([0-9.]+) s of the 12 s mix", err)
    assert heard is not None and float(heard.group(1)) < 2.0, err
    sung = tmp_path / "sung.wav"
    sf.write(sung, tone(seconds=12.0), SR)
    code, err = run_mix(capsys, sung, b, tmp_path / "mix2.wav", "--method", "baseline")
    assert code == 0 and "heard for only" not in err


def test_a_take_of_steady_noise_or_hum_is_mixed_with_a_warning(tmp_path, capsys):
    """A take recorded with nobody singing (steady hiss, or mains hum with its harmonics)
    is heard throughout, so the barely-heard check passes it: its loudness, which hardly
    moves, gets a warning of its own, with either method and even with -q. A take whose
    loudness moves as a voice's does (syllables, phrases and pauses) gets none."""
    n = 12 * SR
    t = np.arange(n) / SR
    rng = np.random.default_rng(2)
    hum = sum(0.02 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 8))
    takes = {"hiss": 0.003 * rng.standard_normal(n),
             "hum": hum + 1e-4 * rng.standard_normal(n)}
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2  # 6 syllables a second
    phrases = (np.sin(2 * np.pi * t / 4.0) > -0.5) * np.exp(-(t % 4.0) / 3.0)
    takes["sung"] = 0.1 * syllables * phrases * np.sin(2 * np.pi * 220 * t)
    b = tmp_path / "backing.wav"
    sf.write(b, tone(seconds=12.0, db=-18.0), SR)
    for name, x in takes.items():
        v = tmp_path / f"{name}.wav"
        sf.write(v, np.repeat(x[:, None], 2, axis=1).astype(np.float32), SR, subtype="PCM_24")
        for method in ("baseline", "model"):
            code, err = run_mix(capsys, v, b, tmp_path / f"{name}-{method}.wav",
                                "--method", method)
            assert code == 0, (name, method, err)
            warned = "warning: the vocal's loudness hardly moves" in err
            assert warned == (name != "sung"), (name, method, err)
            assert "heard for only" not in err
    # a locked compressor (its input is not measured by its resolver): the same check
    code, err = run_mix(capsys, tmp_path / "hum.wav", b, tmp_path / "hum-locked.wav",
                        "--method", "baseline", "--lock", "vocal.compressor")
    assert code == 0 and "warning: the vocal's loudness hardly moves" in err
