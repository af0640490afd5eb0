"""The command line against a careless user and a hostile file: every crafted input,
params document and output path gets one line of error (never "internal error", never a
traceback, never a decoder's own chatter), before any work; and a kill at any point of
``vocalmix mix`` leaves either all the previous outputs or all the new ones.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core import audio
from vocalmix.core.audio import captured_native_stderr, prepare_pair, read_audio, recover_outputs
from vocalmix.core.errors import AudioLevelError, OutputExistsError, SilentAudioError
from vocalmix.frontends.cli import main

from conftest import REPO, assert_one_line_error, sine
from conftest import run_cli as run

SR = 16000
SCRATCH = re.compile(r"^\.vocalmix-\d+-")


def voice(seconds: float = 1.0, db: float = -20.0) -> np.ndarray:
    """A tone with a slow swell (so it has a loudness range), mono."""
    t = np.arange(int(seconds * SR)) / SR
    x = 10 ** (db / 20) * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return x.astype(np.float32)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    v, b = tmp_path / "vocal.wav", tmp_path / "backing.wav"
    sf.write(v, voice(), SR, subtype="FLOAT")
    noise = np.random.default_rng(7).normal(0, 0.05, (SR, 2)).astype(np.float32)
    sf.write(b, noise, SR, subtype="FLOAT")
    return v, b






def scratch_files(*folders: Path) -> list[str]:
    return [p.name for d in folders if d.exists() for p in d.iterdir() if SCRATCH.match(p.name)]


# --- inputs: inaudible or absurd audio ---------------------------------------------------


@pytest.mark.parametrize("role", ["vocal", "backing"])
def test_dc_only_input_is_refused(tmp_path, capfd, pair, role):
    dc = tmp_path / "dc.wav"
    sf.write(dc, np.full(SR, 0.3, np.float32), SR, subtype="FLOAT")
    v, b = (dc, pair[1]) if role == "vocal" else (pair[0], dc)
    out = tmp_path / "mix.wav"
    code, _, err = run(capfd, "mix", str(v), str(b), "-o", str(out), "-q")
    assert_one_line_error(code, err, rf"the {role} holds no sound, only a constant \(DC\) "
                                     r"offset of -10\.5 dBFS")
    assert not out.exists()
    with pytest.raises(SilentAudioError):
        prepare_pair(read_audio(v), read_audio(b))


def test_dc_offset_under_real_sound_is_removed_with_a_note(tmp_path, capfd, pair):
    v = tmp_path / "offset.wav"
    sf.write(v, voice() + 0.2, SR, subtype="FLOAT")
    vs, _, _, notes = prepare_pair(read_audio(v), read_audio(pair[1]))
    assert abs(float(vs.mean())) < 1e-6
    assert any("removed a constant (DC) offset of -14.0 dBFS" in n for n in notes)
    out = tmp_path / "mix.wav"
    code, _, err = run(capfd, "mix", str(v), str(pair[1]), "-o", str(out), "--method",
                       "baseline")
    assert code == 0, err
    assert "vocal: removed a constant (DC) offset" in err
    mix, _ = sf.read(out)
    assert abs(mix.mean()) < 1e-3


def test_absurd_samples_are_refused_by_mix_and_analyze(tmp_path, capfd, pair):
    big = tmp_path / "big.wav"
    sf.write(big, voice() * 1e30, SR, subtype="FLOAT")
    code, _, err = run(capfd, "mix", str(big), str(pair[1]), "-o", str(tmp_path / "m.wav"), "-q")
    assert_one_line_error(code, err, r"peak is \+58\d\.\d dBFS, far above full scale "
                                     r"\(at most \+60 dBFS")
    code, out, err = run(capfd, "analyze", str(big), "-q")
    assert_one_line_error(code, err, r"peak is \+58\d\.\d dBFS")
    assert "LUFS" not in out
    with pytest.raises(AudioLevelError):
        read_audio(big)
    # a float file a little over full scale is still fine
    hot = tmp_path / "hot.wav"
    sf.write(hot, voice(db=6.0), SR, subtype="FLOAT")
    assert read_audio(hot).samples.max() > 1.0


# --- messages ----------------------------------------------------------------------------


def garbage_mp3(path: Path) -> Path:
    """An MPEG frame header followed by noise: the MP3 decoder prints its own notes."""
    rng = np.random.default_rng(3)
    path.write_bytes(b"\xff\xfb\x90\x00" + rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return path


def test_garbage_mp3_is_one_clean_line(tmp_path, capfd, pair):
    mp3 = garbage_mp3(tmp_path / "garbage.mp3")
    with captured_native_stderr() as noise, pytest.raises(sf.LibsndfileError):
        sf.read(mp3)
    assert noise, "the crafted file no longer makes the decoder print: the test means nothing"
    for argv in (["mix", str(mp3), str(pair[1]), "-o", str(tmp_path / "m.wav"), "-q"],
                 ["mix", str(mp3), str(pair[1]), "-o", str(tmp_path / "m.wav")],
                 ["analyze", str(mp3), "-q"]):
        code, _, err = run(capfd, *argv)
        err = "\n".join(x for x in err.splitlines() if not x.startswith("["))  # progress
        assert_one_line_error(code, err, r"garbage\.mp3: cannot be decoded as audio")
        assert "pipe" not in err and "Note:" not in err and "mpg123" not in err


def test_fifo_and_devices_are_refused_at_once(tmp_path, capfd, pair):
    fifo = tmp_path / "take.wav"
    os.mkfifo(fifo)
    result: dict[str, int] = {}

    def go() -> None:
        result["code"] = main(["mix", str(fifo), str(pair[1]), "-o", str(tmp_path / "m.wav"),
                               "-q"])

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout=30)
    if t.is_alive():  # unblock the reader before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("a FIFO as input blocks")
    assert_one_line_error(result["code"], capfd.readouterr().err,
                          r"take\.wav: is not a regular file \(a pipe, device or socket\)")
    code, _, err = run(capfd, "mix", str(pair[0]), "/dev/zero", "-o", str(tmp_path / "m.wav"),
                       "-q")
    assert_one_line_error(code, err, r"/dev/zero: is not a regular file")
    code, _, err = run(capfd, "render", *map(str, pair), str(fifo), "-o",
                       str(tmp_path / "m.wav"), "-q")
    assert_one_line_error(code, err, r"take\.wav: is not a regular file; give the path of a "
                                     "JSON params file")


def test_an_argument_that_looks_like_an_option_gets_one_line(tmp_path, capfd, pair):
    code, _, err = run(capfd, "mix", "-vocal.wav", str(pair[1]), "-o", str(tmp_path / "m.wav"))
    assert_one_line_error(code, err, r"^vocalmix mix: error: .*'-vocal\.wav' was read as an "
                                     r"option: write \./-vocal\.wav .*\(see vocalmix mix --help\)$")
    code, _, err = run(capfd, "mix", str(pair[0]), str(pair[1]), "--vocal-to-mix-lu", "-3.5")
    assert_one_line_error(code, err, r"required: -o/--output \(see vocalmix mix --help\)$")
    code, _, err = run(capfd, "mixx")
    assert_one_line_error(code, err, r"invalid choice: 'mixx'.*\(see vocalmix --help\)$")
    code, _, err = run(capfd, "mix", str(pair[0]), str(pair[1]), "--vocal-to-mix-lu", "loud",
                       "-o", str(tmp_path / "m.wav"))
    assert_one_line_error(code, err, r"invalid float value: 'loud' \(see vocalmix mix --help\)")


@pytest.fixture
def params_doc(tmp_path, pair) -> str:
    p = tmp_path / "written.json"
    assert main(["estimate", *map(str, pair), "-o", str(p), "-q", "--method", "baseline"]) == 0
    return p.read_text(encoding="utf-8")


def test_params_with_a_byte_order_mark_are_read(tmp_path, capfd, pair, params_doc):
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + params_doc.encode("utf-8"))
    capfd.readouterr()
    code, _, err = run(capfd, "render", *map(str, pair), str(bom), "-o", str(tmp_path / "m.wav"),
                       "-q")
    assert code == 0, err
    code, _, err = run(capfd, "mix", *map(str, pair), "--params-in", str(bom), "-o",
                       str(tmp_path / "m2.wav"), "-q")
    assert code == 0, err


@pytest.mark.parametrize("doc,pattern", [
    ("{}", r"not a params document: it has no 'format' and no 'version'"),
    ('{"format": "vocalmix.params"}', r"not a params document: it has no 'version'"),
    ("[]", r"must be a JSON object"),
    ('{"format": "something.else", "version": 3}', r"not a vocalmix params document"),
])
def test_params_that_are_not_a_document_are_refused(tmp_path, capfd, pair, doc, pattern):
    p = tmp_path / "p.json"
    p.write_text(doc)
    out = tmp_path / "m.wav"
    code, _, err = run(capfd, "render", *map(str, pair), str(p), "-o", str(out), "-q")
    assert_one_line_error(code, err, pattern)
    assert not out.exists()


# --- outputs: checked together, before the work --------------------------------------------


@pytest.fixture
def no_mixing(monkeypatch):
    """Fail the test if the work starts: output errors must come before it."""
    import vocalmix.pipeline

    def boom(*a, **k):
        raise AssertionError("the mix started before the outputs were checked")

    monkeypatch.setattr(vocalmix.pipeline, "mix", boom)
    monkeypatch.setattr(vocalmix.pipeline, "render_params", boom)
    monkeypatch.setattr(vocalmix.pipeline, "estimate_params", boom)


def test_colliding_outputs_are_refused(tmp_path, capfd, pair, no_mixing):
    v, b = map(str, pair)
    same = tmp_path / "same.wav"
    same.write_bytes(b"old")
    code, _, err = run(capfd, "mix", v, b, "-o", str(same), "--params-out", str(same),
                       "--force", "-q")
    assert_one_line_error(code, err, r"two outputs would be written to this file")
    assert same.read_bytes() == b"old"
    code, _, err = run(capfd, "mix", v, b, "-o", str(tmp_path / "stems" / "vocal.wav"),
                       "--stems-out", str(tmp_path / "stems"), "-q")
    assert_one_line_error(code, err, r"stems/vocal\.wav: two outputs would be written")
    code, _, err = run(capfd, "mix", v, b, "-o", str(tmp_path / "m.wav"),
                       "--params-out", str(tmp_path / "m.wav" / "p.json"), "-q")
    assert_one_line_error(code, err, r"is planned as a file, but .*p\.json needs a folder there")
    # the same file by two spellings (a symlinked folder)
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    code, _, err = run(capfd, "mix", v, b, "-o", str(tmp_path / "real" / "m.wav"),
                       "--stems-out", str(tmp_path / "alias"), "--params-out",
                       str(tmp_path / "alias" / "m.wav"), "-q")
    assert_one_line_error(code, err, r"two outputs would be written to this file \(also given "
                                     r"as .*real/m\.wav\)")
    assert not list((tmp_path / "real").iterdir())


def test_a_file_where_the_stems_folder_goes_is_refused_before_the_work(tmp_path, capfd, pair,
                                                                       no_mixing):
    stems = tmp_path / "stems"
    stems.write_text("a file")
    out, params = tmp_path / "m.wav", tmp_path / "p.json"
    code, _, err = run(capfd, "mix", *map(str, pair), "-o", str(out), "--params-out",
                       str(params), "--stems-out", str(stems), "-q")
    assert_one_line_error(code, err, r"stems: is a file, but .*stems/vocal\.wav needs a folder")
    assert not out.exists() and not params.exists()


def test_outputs_that_are_inputs_devices_or_folders_are_refused(tmp_path, capfd, pair,
                                                                 no_mixing):
    v, b = map(str, pair)
    for argv, pattern in [
        (["-o", str(tmp_path / "m.wav"), "--params-out", v, "--force"], r"is an input file"),
        (["-o", str(tmp_path / "m.wav"), "--params-out", "/dev/null", "--force"],
         r"/dev/null: is not a regular file"),
        (["-o", str(tmp_path)], r"unsupported output format"),
        (["-o", str(tmp_path / "m.wav"), "--params-out", str(tmp_path), "--force"],
         r"is a folder, not a file name"),
        (["-o", str(tmp_path / "m.m4a")], r"unsupported output format '\.m4a'"),
    ]:
        code, _, err = run(capfd, "mix", v, b, *argv, "-q")
        assert_one_line_error(code, err, pattern)


def test_a_name_too_long_for_the_file_system_is_refused(tmp_path, capfd, pair, no_mixing):
    long = tmp_path / ("x" * 300 + ".wav")
    code, _, err = run(capfd, "mix", *map(str, pair), "-o", str(long), "-q")
    assert_one_line_error(code, err, r"a name of 304 bytes is longer than this file system "
                                     r"allows \(255 bytes\)")
    code, _, err = run(capfd, "mix", *map(str, pair), "-o", str(tmp_path / "m.wav"),
                       "--stems-out", str(tmp_path / ("d" * 256)), "-q")
    assert_one_line_error(code, err, r"a name of 256 bytes is longer")


def test_a_full_disk_is_found_before_the_work(tmp_path, capfd, pair, monkeypatch):
    import vocalmix.pipeline

    started = []
    real_mix = vocalmix.pipeline.mix
    monkeypatch.setattr(vocalmix.pipeline, "mix",
                        lambda *a, **k: started.append(1) or real_mix(*a, **k))
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: usage._replace(free=2_000_000))
    out = tmp_path / "m.wav"
    code, _, err = run(capfd, "mix", *map(str, pair), "-o", str(out), "--stems-out",
                       str(tmp_path / "stems"), "-q")
    assert_one_line_error(code, err, r"not enough free space for the outputs: about \d+ MB "
                                     r"needed, 2 MB free")
    assert not started and not out.exists()


def remix_while_writing(tmp_path, capfd, pair, monkeypatch,
                        on_write: Callable[[int, str], None]) -> tuple[int, str, dict]:
    """Mix ``pair`` into ``tmp_path`` (outputs, stems and params), then mix it again with
    other targets and ``--force``, ``on_write(n, file)`` running before the n-th audio
    file is written; returns that second run's exit code and stderr and the first run's
    outputs (see :func:`snapshot`)."""
    v, b = map(str, pair)
    argv = ["mix", v, b, "-o", str(tmp_path / "m.wav"), "--params-out",
            str(tmp_path / "p.json"), "--stems-out", str(tmp_path / "stems"), "-q"]
    assert main(argv + ["--vocal-to-mix-lu", "-8"]) == 0
    old = snapshot(tmp_path)
    real_write = audio._write_audio_file
    calls = []

    def write(file, *a, **k):
        calls.append(file)
        on_write(len(calls), file)
        return real_write(file, *a, **k)

    monkeypatch.setattr(audio, "_write_audio_file", write)
    capfd.readouterr()
    code, _, err = run(capfd, *argv, "--force")
    return code, err, old


def test_a_disk_that_fills_while_writing_leaves_the_old_outputs(tmp_path, capfd, pair,
                                                                monkeypatch):
    def fill_up(n: int, file: str) -> None:
        if n == 3:
            Path(file).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    code, err, old = remix_while_writing(tmp_path, capfd, pair, monkeypatch, fill_up)
    assert_one_line_error(code, err, r"cannot be written \(no space left on the device\); the "
                                     "previous files are unchanged")
    assert snapshot(tmp_path) == old
    assert not scratch_files(tmp_path, tmp_path / "stems")


def test_ctrl_c_while_the_outputs_are_written_leaves_the_old_ones(tmp_path, capfd, pair,
                                                                  monkeypatch):
    """The audio outputs are written on parallel threads: an interrupt while they are
    written stops the writes not yet started, waits for the running ones, and then puts
    the previous files back; no scratch file is created after that."""
    import signal

    def interrupt(n: int, file: str) -> None:
        if n == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the outputs are written
            time.sleep(0.3)

    code, err, old = remix_while_writing(tmp_path, capfd, pair, monkeypatch, interrupt)
    assert code == 130 and "interrupted" in err
    assert snapshot(tmp_path) == old
    time.sleep(0.5)  # a write started after the clean-up would have made its file by now
    assert not scratch_files(tmp_path, tmp_path / "stems")


def test_ctrl_c_inside_the_write_pool_still_waits_for_every_started_write(tmp_path,
                                                                          monkeypatch):
    """A Ctrl-C can land inside the thread pool's own bookkeeping, after a worker thread
    has started but before the pool has recorded it (so the pool's shutdown does not wait
    for it): its write must still end before the clean-up, leaving no scratch file."""
    from concurrent.futures import thread as pool_module

    real_adjust = pool_module.ThreadPoolExecutor._adjust_thread_count

    def interrupted_adjust(self):
        before = set(self._threads)
        real_adjust(self)
        for t in set(self._threads) - before:  # as if interrupted between start and add
            self._threads.discard(t)
            raise KeyboardInterrupt

    real_write = audio._write_scratch

    def slow_write(*a, **k):
        time.sleep(0.3)
        return real_write(*a, **k)

    monkeypatch.setattr(pool_module.ThreadPoolExecutor, "_adjust_thread_count",
                        interrupted_adjust)
    monkeypatch.setattr(audio, "_write_scratch", slow_write)
    monkeypatch.setattr(audio.os, "cpu_count", lambda: 4)  # the audio goes to the pool
    x = np.zeros((4410, 2), np.float32)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    plan = audio.OutputPlan(audio=[a, b])
    with pytest.raises(KeyboardInterrupt):
        plan.commit({a: audio.AudioData(x, 44100), b: audio.AudioData(x, 44100)})
    time.sleep(0.6)  # a write that outlived the clean-up would have made its file by now
    assert os.listdir(tmp_path) == []


def as_unprivileged(fn: Callable[[], tuple[int, str]]) -> tuple[int, str]:
    """``fn()`` in a child process without root's right to write anywhere (as ``nobody``)
    when the tests run as root; directly otherwise."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            code, err = fn()
            os.write(w, json.dumps([code, err]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    code, err = json.loads(data)
    return code, err


def test_a_read_only_folder_is_refused_before_the_work(pair, no_mixing):
    base = Path(tempfile.mkdtemp(prefix="vocalmix-ro-"))  # reachable by an unprivileged child
    try:
        base.chmod(0o777)
        for p in pair:
            shutil.copy(p, base / p.name)
            (base / p.name).chmod(0o644)
        ro = base / "ro"
        ro.mkdir()
        (ro / "m.wav").write_bytes(b"old")
        ro.chmod(0o555)

        def attempt(*extra: str) -> tuple[int, str]:
            import io

            err = io.StringIO()
            real, sys.stderr = sys.stderr, err
            try:
                code = main(["mix", str(base / "vocal.wav"), str(base / "backing.wav"), "-q",
                             *extra])
            finally:
                sys.stderr = real
            return code, err.getvalue()

        code, err = as_unprivileged(lambda: attempt("-o", str(ro / "new.wav")))
        assert_one_line_error(code, err, r"ro: cannot write in this folder \(permission denied\)")
        code, err = as_unprivileged(lambda: attempt("-o", str(ro / "m.wav"), "--force"))
        assert_one_line_error(code, err, r"ro: cannot write in this folder \(permission denied\)")
        code, err = as_unprivileged(lambda: attempt("-o", str(base / "m.wav"), "--stems-out",
                                                    str(ro / "stems")))
        assert_one_line_error(code, err, r"ro: cannot write in this folder")
        assert sorted(p.name for p in ro.iterdir()) == ["m.wav"]
        assert (ro / "m.wav").read_bytes() == b"old"
    finally:
        (base / "ro").chmod(0o755)
        shutil.rmtree(base)


def test_a_read_only_output_replaced_with_force_keeps_its_mode(pair):
    base = Path(tempfile.mkdtemp(prefix="vocalmix-mode-"))
    try:
        base.chmod(0o777)
        for p in pair:
            shutil.copy(p, base / p.name)
            (base / p.name).chmod(0o644)
        out = base / "m.wav"
        out.write_bytes(b"old")
        out.chmod(0o444)
        if os.geteuid() == 0:
            os.chown(out, 65534, 65534)

        def attempt() -> tuple[int, str]:
            return main(["mix", str(base / "vocal.wav"), str(base / "backing.wav"), "-o",
                         str(out), "--force", "-q"]), ""

        code, _ = as_unprivileged(attempt)
        assert code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o444 and sf.info(str(out)).frames == SR
    finally:
        shutil.rmtree(base)


def test_outputs_get_the_umask_mode_and_a_replaced_file_keeps_its_own(tmp_path, capfd, pair):
    old_umask = os.umask(0o022)
    try:
        out, params = tmp_path / "m.wav", tmp_path / "p.json"
        assert main(["mix", *map(str, pair), "-o", str(out), "--params-out", str(params),
                     "-q"]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        assert stat.S_IMODE(params.stat().st_mode) == 0o644
        os.chmod(params, 0o640)
        assert main(["mix", *map(str, pair), "-o", str(out), "--params-out", str(params),
                     "-q", "--force"]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644  # --force keeps 0644 a 0644
        assert stat.S_IMODE(params.stat().st_mode) == 0o640
        os.umask(0o077)
        assert main(["estimate", *map(str, pair), "-o", str(tmp_path / "e.json"), "-q"]) == 0
        assert stat.S_IMODE((tmp_path / "e.json").stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


# --- a kill at any point of ``vocalmix mix`` -------------------------------------------------

#: the calls that change what is on disk (``open`` when it creates): the states a kill can
#: leave are the states before each of them, and after the last
CHANGES = ("open", "write", "link", "replace", "rename", "unlink", "mkdir", "rmdir")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in (".wav", ".json") and not SCRATCH.match(p.name)}


def count_steps(monkeypatch, on_step: Callable[[int], None],
                kinds: tuple[str, ...] = CHANGES) -> list[str]:
    """Wrap the file-system calls of ``kinds`` (``write`` is ``os.write`` and the writing
    of an audio file; ``open`` counts only when it creates) so that ``on_step(n)`` runs
    before the n-th one; returns the list of calls counted. ``fsync`` is never done: it
    matters for a power cut, not for a killed process, and it is slow."""
    made: list[str] = []

    def wrap(owner, name: str) -> None:
        real = getattr(owner, name) if name != "fsync" else (lambda fd: None)

        def step(*a, **k):
            creates = name != "open" or bool((a[1] if len(a) > 1 else k["flags"]) & os.O_CREAT)
            if name in kinds and creates:
                made.append(name)
                on_step(len(made))
            return real(*a, **k)

        monkeypatch.setattr(owner, name, step)

    for name in (*CHANGES, "fsync"):
        wrap(os, name)
    wrap(audio, "_write_audio_file")
    return made


@pytest.fixture
def old_and_new(tmp_path, pair, monkeypatch):
    """A ``mix`` command whose outputs (in two folders) exist from an earlier mix, the
    earlier outputs' bytes, and the bytes the command writes. After the first real mix,
    the command's mixing returns that mix's result at once: these tests are about what
    happens on disk, and run the command dozens of times."""
    import vocalmix.pipeline

    v, b = map(str, pair)

    def argv(d: Path) -> list[str]:
        return ["mix", v, b, "-o", str(d / "m.wav"), "--params-out", str(d / "p.json"),
                "--stems-out", str(d / "stems"), "-q", "--method", "baseline"]

    real_mix, result = vocalmix.pipeline.mix, []
    monkeypatch.setattr(vocalmix.pipeline, "mix",
                        lambda *a, **k: result[0] if result else result.append(real_mix(*a, **k))
                        or result[0])
    old_dir = tmp_path / "old"
    with monkeypatch.context() as m:
        m.setattr(vocalmix.pipeline, "mix", real_mix)
        assert main(argv(old_dir) + ["--vocal-to-mix-lu", "-8"]) == 0
    old = snapshot(old_dir)
    ref = tmp_path / "ref"
    assert main(argv(ref)) == 0
    new = snapshot(ref)
    assert set(old) == set(new)
    assert all(old[k] != new[k] for k in ("m.wav", "p.json", "stems/vocal.wav"))
    return argv, old, new, old_dir


def fresh_copy(old_dir: Path, d: Path) -> Path:
    shutil.copytree(old_dir, d)
    return d


@pytest.mark.slow  # several seconds: the slow run (.ci/run) keeps it
def test_a_kill_at_any_step_leaves_all_old_or_all_new_outputs(tmp_path, capfd, monkeypatch,
                                                              old_and_new):
    argv, old, new, old_dir = old_and_new
    # how many file-system steps a mix that replaces the outputs takes
    d0 = fresh_copy(old_dir, tmp_path / "count")
    with monkeypatch.context() as m:
        made = count_steps(m, lambda n: None)
        assert main(argv(d0) + ["--force"]) == 0
    assert snapshot(d0) == new
    n_steps = len(made)
    assert {"open", "write", "link", "replace", "unlink"} <= set(made)
    outcomes: list[str] = []
    mixed_before_recovery: list[int] = []
    for k in range(1, n_steps + 1):
        d = fresh_copy(old_dir, tmp_path / f"kill{k}")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child dies at step k
            try:
                def die(n: int, k: int = k) -> None:
                    if n == k:
                        os._exit(137)

                count_steps(monkeypatch, die)
                main(argv(d) + ["--force"])
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 137, f"the child did not reach step {k}"
        if snapshot(d) not in (old, new):
            mixed_before_recovery.append(k)
        recover_outputs(d, d / "stems")
        state = snapshot(d)
        assert state in (old, new), f"killed before step {k} ({made[k - 1]}): mixed outputs"
        assert not scratch_files(d, d / "stems"), f"killed before step {k}: scratch left"
        outcomes.append("new" if state == new else "old")
    assert outcomes[0] == "old" and "new" in outcomes  # a kill late enough keeps the new set
    assert mixed_before_recovery  # some kills leave half old, half new until recovered
    capfd.readouterr()
    # the next run itself recovers, then does its work
    d = fresh_copy(old_dir, tmp_path / "rerun")
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            count_steps(monkeypatch, lambda n: os._exit(137) if n == made.index("replace") + 3
                        else None)
            main(argv(d) + ["--force"])
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
    assert scratch_files(d, d / "stems")
    assert main(argv(d) + ["--force"]) == 0
    assert snapshot(d) == new and not scratch_files(d, d / "stems")


@pytest.mark.parametrize("call", ["replace", "link", "fsync", "write", "open"])
def test_a_failing_write_or_rename_leaves_the_old_outputs(tmp_path, capfd, monkeypatch,
                                                          old_and_new, call):
    argv, old, new, old_dir = old_and_new
    d0 = fresh_copy(old_dir, tmp_path / "count")
    with monkeypatch.context() as m:
        made = count_steps(m, lambda n: None)
        assert main(argv(d0) + ["--force"]) == 0
    with monkeypatch.context() as m:
        calls = count_steps(m, lambda n: None, (call,))
        assert main(argv(fresh_copy(old_dir, tmp_path / "count2")) + ["--force"]) == 0
    # up to the commit point (the last rename before the clean-up's deletions)
    last = max(i for i, c in enumerate(made) if c == "replace")
    points = range(min(len(calls), made[:last + 1].count(call) if call in made else len(calls)))
    assert points
    for i in points:
        d = fresh_copy(old_dir, tmp_path / f"fail{i}")

        def fail(n: int, i: int = i) -> None:
            if n == i + 1:
                raise OSError(errno.EIO, os.strerror(errno.EIO))

        with monkeypatch.context() as m:
            count_steps(m, fail, (call,))
            code, _, err = run(capfd, *argv(d), "--force")
        if code == 0:  # tolerated: a failed fsync of a folder (some systems cannot), a
            # failed hard link (the backup is then made by a rename)
            assert call in ("fsync", "open", "link") and snapshot(d) == new
        else:
            assert_one_line_error(code, err, r"cannot (be written|write in this folder) "
                                             r"\(Input/output error\)")
            assert snapshot(d) == old
        assert not scratch_files(d, d / "stems")


def test_stale_scratch_files_of_a_dead_process_are_cleaned_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".vocalmix-{pid}-0123456789ab-e0.tmp"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".vocalmix-{os.getpid()}-0123456789ab-e0.tmp"
    live.write_bytes(b"y")
    mine = tmp_path / ".vocalmix-notes.txt"
    mine.write_text("not a scratch name")
    # a person's own hidden file, named as earlier versions named their scratch files
    # (".<stem>.<8 characters><suffix>"), however old: it was deleted by any plan for
    # the output beside it, even one then refused
    own = tmp_path / ".out.original.txt"
    own.write_bytes(b"z" * 1000)
    os.utime(own, (0, 1e9))
    audio.write_text(tmp_path / "out.txt", "hello")
    assert not stale.exists() and live.exists() and mine.exists() and own.exists()
    with pytest.raises(OutputExistsError):
        audio.write_text(tmp_path / "out.txt", "again")
    assert own.read_bytes() == b"z" * 1000


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="planting another user's files needs root")
def test_another_users_planted_journal_is_never_acted_on(tmp_path):
    victim = tmp_path / "victim.wav"
    victim.write_bytes(b"mine")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    tok = f"{int(dead.stdout)}-0123456789ab"
    journal = tmp_path / f".vocalmix-{tok}-j0.journal"
    bak = tmp_path / f".vocalmix-{tok}-e0.bak"
    bak.write_bytes(b"planted")
    journal.write_text(json.dumps({
        "format": "vocalmix.output-journal", "version": 1, "state": "committing",
        "primary": str(journal), "journals": [str(journal)],
        "entries": [{"dest": str(victim), "tmp": str(tmp_path / f".vocalmix-{tok}-e0.tmp"),
                     "bak": str(bak), "existed": True}]}))
    for p in (journal, bak):
        os.chown(p, 65534, 65534)
    audio.write_text(tmp_path / "out.txt", "hello")
    assert victim.read_bytes() == b"mine" and journal.exists() and bak.exists()
    # the same journal, ours, is acted on: the backup is restored
    for p in (journal, bak):
        os.chown(p, 0, 0)
    assert recover_outputs(tmp_path)
    assert victim.read_bytes() == b"planted" and not journal.exists() and not bak.exists()


# --- friction ------------------------------------------------------------------------------


def test_presets_lists_every_shipped_preset(capfd):
    from vocalmix.estimators.presets import presets

    code, out, err = run(capfd, "presets")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(presets()) > 0
    assert all(re.match(r"^\S+\s+synthetic\s+\S+\s+decay \d+\.\d\d s", x) for x in lines)
    code, out, _ = run(capfd, "presets", "--json")
    rows = json.loads(out)
    assert {r["name"] for r in rows} == set(presets())
    assert all(r["type"] == "synthetic" and r["decay_s"] > 0 for r in rows)


def fitted_presets(path: Path, names: tuple[str, ...]) -> Path:
    """A presets file in the layout ``vocalmix fit-reverb`` writes (entries built by its
    own ``preset_entry``)."""
    from vocalmix.training.fitreverb import preset_entry

    doc = {}
    for i, name in enumerate(names):
        result = {"reverb": {"type": "synthetic", "decay_s": 0.6 + i, "band_decay_ratios":
                             [1.0] * 7, "width": 1.0, "wet_level_db": -8.0,
                             "pre_delay_ms": 12.0},
                  "target": {"t30_s": {}, "c50_db": 3.0}, "fitted": {"t30_s": {}, "c50_db": 3.1},
                  "within_10pct_500_4k": True}
        doc[name] = preset_entry(name, result, source=f"{name}.wav", origin="user")
    path.write_text(json.dumps(doc))
    return path


def test_a_fit_reverb_file_is_usable_as_a_preset(tmp_path, capfd, pair):
    one = fitted_presets(tmp_path / "one.json", ("myroom",))
    two = fitted_presets(tmp_path / "two.json", ("small", "big"))
    for ref, decay in ((str(one), 0.6), (f"{two}#big", 1.6)):
        p = tmp_path / f"p{decay}.json"
        code, _, err = run(capfd, "mix", *map(str, pair), "-o", str(tmp_path / f"m{decay}.wav"),
                           "--params-out", str(p), "--reverb-preset", ref, "-q")
        assert code == 0, err
        rv = json.loads(p.read_text())["vocal"]["reverb"]
        assert rv["enabled"] and rv["type"] == "synthetic"
        assert rv["decay_s"] == pytest.approx(decay)
    code, _, err = run(capfd, "mix", *map(str, pair), "-o", str(tmp_path / "x.wav"),
                       "--reverb-preset", str(two), "-q")
    assert_one_line_error(code, err, r"holds 2 presets; name one as .*two\.json#NAME "
                                     r"\(one of: big, small\)")
    code, _, err = run(capfd, "mix", *map(str, pair), "-o", str(tmp_path / "x.wav"),
                       "--reverb-preset", f"{two}#nope", "-q")
    assert_one_line_error(code, err, r"unknown reverb preset 'nope'; known: big, small")
    code, out, _ = run(capfd, "presets", str(two))
    assert [x.split()[0] for x in out.strip().splitlines()] == ["big", "small"]


def test_help_points_only_to_commands_that_exist(capfd):
    from vocalmix.frontends.cli import EXTRA_COMMANDS, build_parser

    parser = build_parser(["mix"])
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)
    assert {name for name, _, _ in EXTRA_COMMANDS} <= commands
    for name in ("mix", "render", "estimate", "analyze", "demo", "presets"):
        code, out, _ = run(capfd, name, "--help")
        assert code == 0
        for cmd in re.findall(r"\bvocalmix\s+([a-z][a-z-]*)", " ".join(out.split())):
            assert cmd in commands, f"vocalmix {name} --help names 'vocalmix {cmd}'"


def test_the_readme_demo_runs_twice_in_a_row(tmp_path, capfd, monkeypatch):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "&& vocalmix demo\n" in readme  # the first command, with its default folder
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, _, err = run(capfd, "demo", "--duration-s", "2", "-q", "--method", "baseline")
        assert code == 0, err
    # it replaced only its own files: a file of the user's in that folder is untouched
    mine = tmp_path / "vocalmix-demo" / "mix_edited.wav"
    sf.write(mine, sine(440, -20, 0.5, SR), SR)
    before = mine.read_bytes()
    code, _, err = run(capfd, "demo", "--duration-s", "2", "-q", "--method", "baseline")
    assert code == 0, err
    assert mine.read_bytes() == before


def test_help_and_version_import_nothing_heavy():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for arg in ("--version", "--help"):
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "vocalmix", arg],
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0
        imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines()
                    if line.startswith("import time:")}
        heavy = {m for m in imported if m.split(".")[0] in ("numpy", "scipy", "soundfile",
                                                             "pedalboard", "soxr", "pyebur128")}
        assert not heavy, f"vocalmix {arg} imports {sorted(heavy)}"


def test_deciding_whether_inputs_are_long_imports_no_mixing_path():
    """The command line decides whether the inputs are long (vocalmix.longform) and
    starts decoding them before it imports the mixing path, which a helper thread imports
    meanwhile: the decision must not import it."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run([sys.executable, "-c", "import sys, vocalmix.longform; "
                        "print(sorted(m for m in sys.modules if m.startswith("
                        "('vocalmix.pipeline', 'vocalmix.estimators', 'scipy'))))"],
                       env=env, capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("estimate, want", [
    (False, ['vocalmix.pipeline']),
    (True, ['vocalmix.estimators.registry', 'vocalmix.pipeline']),
])
def test_the_prefetch_imports_the_mixing_path_and_not_scipys_optimiser(estimate, want):
    """``vocalmix render`` imports the mixing path on a helper thread while its inputs
    decode, ``mix`` and ``estimate`` the estimators too; neither imports SciPy's
    optimiser, which no mix uses."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    code = ("import sys, threading\n"
            "from vocalmix.frontends import cli\n"
            f"cli._prefetch(estimate={estimate})\n"
            "[t.join() for t in threading.enumerate() if t.name == 'vocalmix-prefetch']\n"
            "print(sorted(m for m in ('vocalmix.pipeline', 'vocalmix.estimators.registry',\n"
            "                         'scipy.optimize') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, timeout=60, check=True)
    assert r.stdout.strip() == str(want)


def test_an_output_through_a_link_and_dotdot_is_checked_where_it_is_written(
        pair, tmp_path, monkeypatch):
    # "link/../keep.wav" is written beside the link's target (the system applies ".."
    # after the link); the plan put it beside the link, found nothing there, and the
    # file written replaced one beside the target without --force
    v, b = pair
    (tmp_path / "B" / "sub").mkdir(parents=True)
    (tmp_path / "B" / "keep.wav").write_text("mine")
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "link").symlink_to(tmp_path / "B" / "sub")
    (tmp_path / "A" / "keep.wav").write_text("also mine")
    monkeypatch.chdir(tmp_path / "A")
    assert main(["mix", str(v), str(b), "-o", "link/../keep.wav", "-q"]) == 2
    assert (tmp_path / "B" / "keep.wav").read_text() == "mine"
    assert (tmp_path / "A" / "keep.wav").read_text() == "also mine"
    (tmp_path / "B" / "keep.wav").unlink()
    assert main(["mix", str(v), str(b), "-o", "link/../keep.wav", "-q"]) == 0
    assert sf.info(str(tmp_path / "B" / "keep.wav")).frames > 0
    assert (tmp_path / "A" / "keep.wav").read_text() == "also mine"


def test_a_file_named_in_another_encoding_than_utf8_is_read_and_written_beside(
        pair, tmp_path, capsys):
    # libsndfile was given the name as strict UTF-8: a Latin-1 "café.wav" from an older
    # system's archive was "cannot be decoded as audio"
    v, b = pair
    latin = os.fsencode(tmp_path) + b"/caf\xe9.wav"
    try:
        os.link(os.fsencode(v), latin)
    except OSError as e:  # (a file system that holds only UTF-8 names)
        pytest.skip(f"this file system refuses a Latin-1 name: {e}")
    out = os.fsencode(tmp_path) + b"/mix \xe9.wav"
    # (in a process of its own: its standard streams carry such a name as a terminal's
    # do, which pytest's capture, strict UTF-8, would not)
    r = subprocess.run([sys.executable, "-m", "vocalmix", "mix", latin, os.fsencode(b),
                        "-o", out, "-q"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    assert sf.info(out).frames > 0
