"""The command line's guards: options checked before any work (the live rehearsal and
where it starts, the demo's length, the mix's sample rate, JSON outputs named as JSON),
the help naming every audio format an output may have, and SIGTERM ending a command as
Ctrl-C does: exit 143, one line, the previous outputs kept and no scratch file left."""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix.core import audio
from vocalmix.frontends import cli
from vocalmix.frontends.cli import main

from conftest import assert_one_line_error
from conftest import run_cli as run

SR = 16000
SCRATCH = re.compile(r"^\.vocalmix-")


def voice(seconds: float = 3.0, db: float = -20.0, sr: int = SR) -> np.ndarray:
    """A tone with a slow swell (it has a loudness range), mono float32."""
    t = np.arange(int(seconds * sr)) / sr
    x = 10 ** (db / 20) * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return x.astype(np.float32)


def noise(seconds: float = 3.0, sr: int = SR, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.05, (int(seconds * sr), 2)).astype(np.float32)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    v, b = tmp_path / "vocal.wav", tmp_path / "backing.wav"
    sf.write(v, voice(), SR, subtype="FLOAT")
    sf.write(b, noise(), SR, subtype="FLOAT")
    return v, b






def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- vocalmix live --rehearsal ---------------------------------------------------------------


@pytest.mark.parametrize("kind,pattern", [
    ("silent", r"^vocalmix: error: rehearsal .*reh\.wav: .*silent \(peak below -90 dBFS\)"),
    ("dc", r"^vocalmix: error: rehearsal .*reh\.wav: .*no sound, only a constant \(DC\) "
           r"offset of -6\.0 dBFS"),
])
def test_a_rehearsal_without_sound_is_refused_like_a_vocal(tmp_path, capsys, pair, kind,
                                                           pattern):
    v, b = pair
    reh = tmp_path / "reh.wav"
    level = 0.0 if kind == "silent" else 0.5
    sf.write(reh, np.full((2 * SR, 1), level, np.float32), SR, subtype="FLOAT")
    out = tmp_path / "out" / "live.wav"
    code, _, err = run(capsys, "live", v, b, "-o", out, "--rehearsal", reh, "-q")
    assert_one_line_error(code, err, pattern)
    assert not out.parent.exists()


@pytest.mark.parametrize("start", ["nan", "inf", "-inf", "-5", "-0.01"])
def test_a_rehearsal_start_that_is_not_a_time_is_refused(tmp_path, capsys, pair, start):
    v, b = pair
    code, _, err = run(capsys, "live", v, b, "-o", tmp_path / "live.wav", "--rehearsal", v,
                       f"--rehearsal-start-s={start}", "-q")
    assert_one_line_error(code, err, r"^vocalmix: error: --rehearsal-start-s \S+ is out of "
                                     r"range: .*\(0 or more\)")
    assert files_in(tmp_path) == ["backing.wav", "vocal.wav"]


@pytest.mark.parametrize("start", ["2.51", "3", "1e9"])
def test_a_rehearsal_start_past_the_backing_is_refused(tmp_path, capsys, pair, start):
    v, b = pair  # a 3 s backing: a rehearsal may start up to 2.5 s in
    code, _, err = run(capsys, "live", v, b, "-o", tmp_path / "live.wav", "--rehearsal", v,
                       "--rehearsal-start-s", start, "-q")
    assert_one_line_error(code, err, r"--rehearsal-start-s \S+ is out of range: the backing "
                                     r".*backing\.wav is 3\.00 s long, so the rehearsal must "
                                     r"begin between 0 and 2\.50 s")
    assert files_in(tmp_path) == ["backing.wav", "vocal.wav"]


def test_a_rehearsal_start_without_a_rehearsal_is_refused(tmp_path, capsys, pair):
    v, b = pair
    code, _, err = run(capsys, "live", v, b, "-o", tmp_path / "live.wav",
                       "--rehearsal-start-s", "1", "-q")
    assert_one_line_error(code, err, r"--rehearsal-start-s .* give --rehearsal FILE too")


def test_a_rehearsal_over_a_silent_part_of_the_backing_is_refused(tmp_path, capsys, pair):
    v, _ = pair
    b = tmp_path / "gap.wav"
    x = noise()
    x[SR:] = 0.0  # the backing stops after 1 s
    sf.write(b, x, SR, subtype="FLOAT")
    code, _, err = run(capsys, "live", v, b, "-o", tmp_path / "live.wav", "--rehearsal", v,
                       "--rehearsal-start-s", "1.5", "-q")
    assert_one_line_error(code, err, r"backing .*gap\.wav from 1\.5 s \(under the "
                                     r"rehearsal\): the backing is silent")


def test_a_rehearsal_with_a_dc_offset_is_mixed_without_it(tmp_path, capsys, pair):
    """A take with sound over a DC offset is used, the offset taken out as the vocal's
    is; a rehearsal running past the backing's end is said to."""
    v, b = pair
    reh = tmp_path / "reh.wav"
    sf.write(reh, voice() + np.float32(0.05), SR, subtype="FLOAT")
    out = tmp_path / "live.wav"
    code, text, err = run(capsys, "live", v, b, "-o", out, "--rehearsal", reh,
                          "--rehearsal-start-s", "1", "--block-size", "1024",
                          "--method", "baseline")
    assert code == 0, err
    assert "rehearsal: removed a constant (DC) offset of -26.0 dBFS" in err
    assert "rehearsal: runs 1.00 s past the end of the backing" in err
    assert "estimating from the 3.0 s rehearsal" in err
    assert out.exists() and f"wrote {out}" in text


# --- vocalmix demo --duration-s --------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "0.3", "0.49", "300.5",
                                   "1e9", "twelve"])
def test_a_demo_length_out_of_range_is_refused_when_parsed(tmp_path, capsys, value):
    out = tmp_path / "demo"
    code, _, err = run(capsys, "demo", "-o", out, f"--duration-s={value}", "-q")
    assert code == 2
    assert err.strip().splitlines() == [
        f"vocalmix demo: error: argument --duration-s: the song's length must be a number of "
        f"seconds from 0.5 to 300, got {value!r} (see vocalmix demo --help)"]
    assert not out.exists()


def test_the_shortest_demo_is_one_every_command_can_mix_again(tmp_path, capsys):
    lo, hi = cli.DEMO_DURATION_S
    assert lo >= audio.MIN_DURATION_S and math.isfinite(hi)
    out = tmp_path / "demo"
    code, _, err = run(capsys, "demo", "-o", out, "--duration-s", str(lo), "-q",
                       "--method", "baseline")
    assert code == 0, err
    x, sr = sf.read(out / "mix.wav")
    assert x.shape[0] == round(lo * sr)
    # the command it suggests works on what it wrote
    code, _, err = run(capsys, "render", out / "vocal_in.wav", out / "backing_in.wav",
                       out / "params.json", "-o", tmp_path / "again.wav", "-q")
    assert code == 0, err


# --- --sample-rate ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["mix", "render", "estimate", "live"])
def test_a_sample_rate_out_of_range_is_refused_before_any_work(tmp_path, capsys, pair,
                                                               command):
    """0 is refused as 1 and 768000 are (not taken for "the inputs' rate"), with the same
    message, before the inputs are read."""
    v, b = pair
    params = tmp_path / "given.json"
    params.write_text("not read: the rate is refused first")
    out = tmp_path / "out" / ("p.json" if command == "estimate" else "m.wav")
    extra = [params] if command == "render" else []
    messages = set()
    for rate in ("0", "1", "-44100", "7999", "384001", "768000"):
        code, _, err = run(capsys, command, v, b, *extra, "-o", out, f"--sample-rate={rate}",
                           "-q")
        assert_one_line_error(code, err, rf"^vocalmix: error: output sample rate {rate} Hz is "
                                         r"unsupported \(.*8000 to 384000")
        messages.add(err.replace(f"rate {rate} Hz", "rate RATE Hz"))
        assert not out.parent.exists()
    assert len(messages) == 1


# --- JSON outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("command,option,name", [
    ("estimate", "-o", "mix.wav"),
    ("estimate", "-o", "mix.FLAC"),
    ("mix", "--params-out", "p.wav"),
    ("render", "--params-out", "p.aiff"),
    ("live", "--params-out", "p.ogg"),
    ("live", "--log-out", "log.wav"),
])
def test_a_json_output_named_as_audio_is_refused_and_the_file_kept(tmp_path, capsys, pair,
                                                                   command, option, name):
    v, b = pair
    existing = tmp_path / name
    existing.write_bytes(b"an earlier mix")
    params = tmp_path / "given.json"
    params.write_text("{}")
    argv: list[str | Path] = [command, v, b]
    if command == "render":
        argv.append(params)
    if command == "estimate":
        argv += ["-o", existing]
    else:
        argv += ["-o", tmp_path / "out.wav", option, existing]
    code, _, err = run(capsys, *argv, "--force", "-q")
    assert_one_line_error(code, err, rf"^vocalmix: error: .*{re.escape(name)}: {option} writes "
                                     r"a JSON document, not audio; give it a file name ending "
                                     r"in \.json$")
    assert existing.read_bytes() == b"an earlier mix"
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("name", ["p.txt", "params", "p.json.bak"])
def test_a_json_output_must_end_in_json(tmp_path, capsys, pair, name):
    v, b = pair
    code, _, err = run(capsys, "mix", v, b, "-o", tmp_path / "m.wav", "--params-out",
                       tmp_path / name, "-q")
    assert_one_line_error(code, err, r"--params-out writes a JSON document; give it a file "
                                     r"name ending in \.json \(not ")
    assert files_in(tmp_path) == ["backing.wav", "vocal.wav"]


def test_a_json_output_in_capitals_is_written(tmp_path, capsys, pair):
    v, b = pair
    out = tmp_path / "P.JSON"
    code, _, err = run(capsys, "estimate", v, b, "-o", out, "-q", "--method", "baseline")
    assert code == 0, err
    assert out.read_text().lstrip().startswith("{")


# --- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["mix", "render", "live"])
def test_the_output_help_lists_every_audio_format_accepted(capsys, command):
    code, text, _ = run(capsys, command, "--help")
    assert code == 0
    text = " ".join(text.split())
    # ("-o OUTPUT, --output OUTPUT" up to Python 3.12; 3.13's argparse names it once)
    help_o = re.split(r"-o(?: OUTPUT)?, --output OUTPUT", text, maxsplit=1)[1].split(" --", 1)[0]
    assert set(re.findall(r"\.[a-z0-9]+", help_o)) == set(audio.AUDIO_FORMATS)


# --- SIGTERM ---------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (scratch files too) and its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def scratch_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if SCRATCH.match(p.name)]


def test_sigterm_while_the_outputs_are_written_keeps_the_old_ones(tmp_path, capsys, pair,
                                                                  monkeypatch):
    """SIGTERM lands while the audio outputs are written (on the writer threads): the
    command ends with 143 and one line, the previous outputs are back as they were and no
    scratch file is left; the process's own SIGTERM handler is back afterwards."""
    v, b = pair
    argv = ["mix", str(v), str(b), "-o", str(tmp_path / "m.wav"), "--params-out",
            str(tmp_path / "p.json"), "--stems-out", str(tmp_path / "stems"), "-q",
            "--method", "baseline"]
    assert main(argv + ["--vocal-to-mix-lu", "-8"]) == 0
    old = snapshot(tmp_path)
    real_write = audio._write_audio_file
    calls: list[str] = []

    def write(file, *a, **k):
        calls.append(file)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3)  # the main thread takes the signal meanwhile
        return real_write(file, *a, **k)

    monkeypatch.setattr(audio, "_write_audio_file", write)
    before = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    code, _, err = run(capsys, *argv, "--force")
    assert code == cli.TERMINATED_EXIT == 143
    assert err.strip().splitlines() == ["vocalmix: terminated"]
    time.sleep(0.3)  # a write that outlived the clean-up would have made its file by now
    assert snapshot(tmp_path) == old
    assert not scratch_files(tmp_path)
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_is_left_to_the_server(monkeypatch):
    """Every command runs with SIGTERM raising :class:`cli.Terminated`, except ``vocalmix
    serve``, whose server (uvicorn) shuts down gracefully on it by itself."""
    pytest.importorskip("fastapi", reason="server extras not installed")
    from vocalmix.frontends.server import app as server_app

    seen: dict[str, object] = {}

    def record(name: str):
        def command(_args) -> int:
            seen[name] = signal.getsignal(signal.SIGTERM)
            return 0
        return command

    monkeypatch.setattr(server_app, "serve", record("serve"))
    monkeypatch.setitem(cli._COMMANDS, "presets", record("presets"))
    before = signal.getsignal(signal.SIGTERM)
    assert main(["serve"]) == 0 and main(["presets"]) == 0
    assert seen == {"serve": before, "presets": cli._raise_terminated}
    assert signal.getsignal(signal.SIGTERM) == before


def _write_long_pair(folder: Path, seconds: float, sr: int = 44100) -> tuple[Path, Path]:
    n = int(seconds * sr)
    t = np.arange(n) / sr
    v = 0.1 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    paths = folder / "vocal.wav", folder / "backing.wav"
    sf.write(paths[0], v.astype(np.float32), sr, subtype="PCM_16")
    sf.write(paths[1], np.random.default_rng(3).normal(0, 0.05, (n, 2)).astype(np.float32), sr,
             subtype="PCM_16")
    return paths


def _start_and_terminate(argv: list[str], watch: Path, timeout_s: float = 60.0
                         ) -> tuple[subprocess.Popen, str]:
    """Run ``vocalmix argv`` in a new process, send it SIGTERM as soon as a scratch file
    shows up under ``watch`` (it is writing its outputs), and wait for it; returns the
    process and its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "vocalmix", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    try:
        while not scratch_files(watch):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no output was being written"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, err


def test_sigterm_during_a_mix_rolls_back_in_a_real_process(tmp_path):
    """``kill``/``timeout``/``docker stop`` during the writing of a minute-long mix: exit
    143 with one line, the earlier outputs untouched, no scratch file anywhere."""
    v, b = _write_long_pair(tmp_path, 60.0)
    out = tmp_path / "out"
    (out / "stems").mkdir(parents=True)
    for name in ("m.wav", "stems/vocal.wav", "stems/vocal_dry.wav", "stems/backing.wav"):
        sf.write(out / name, voice(0.6), SR)  # the previous outputs
    (out / "p.json").write_text('{"previous": true}\n')
    old = snapshot(out)
    proc, err = _start_and_terminate(
        ["mix", str(v), str(b), "-o", str(out / "m.wav"), "--params-out", str(out / "p.json"),
         "--stems-out", str(out / "stems"), "--force", "-q", "--method", "baseline"], out)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "vocalmix: terminated"
    assert "Traceback" not in err
    assert snapshot(out) == old
    assert not scratch_files(tmp_path)


def _children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in kids.read_text().split()] if kids.exists() else []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # about 10 s: the pool's workers start and warm up
@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="finds the workers in /proc")
def test_sigterm_stops_a_batch_and_its_workers(tmp_path):
    """SIGTERM to the batch's own process only (``kill PID``): the batch stops its
    workers, which roll back what they were writing, writes its table and ends with 143;
    no worker is left running and no scratch file is left."""
    v, b = _write_long_pair(tmp_path, 60.0)
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,vocal,backing\n" + "".join(f"s{i},{v},{b}\n" for i in range(4)))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vocalmix", "batch", str(manifest), "--out",
                             str(out), "--workers", "2", "--method", "baseline", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kids: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while not scratch_files(out / "mix") + scratch_files(out / "params"):
            kids.update(_children(proc.pid))
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no song was being written"
            time.sleep(0.005)
        kids.update(_children(proc.pid))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "vocalmix: terminated"
    assert (out / "results.csv").exists()
    deadline = time.monotonic() + 10
    while any(_running(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if _running(k)]
    assert not scratch_files(out)


@pytest.mark.parametrize("name", ["live.m4a", "live.txt", "live"])
def test_a_live_output_the_writer_cannot_make_is_refused_before_the_session(
        tmp_path, capsys, pair, name):
    """live's -o is planned as audio like mix's: an extension it cannot write is refused
    before the session runs (it was refused only when the file came to be written)."""
    v, b = pair
    v.write_text("not audio")  # read only after the outputs are planned
    code = main(["live", str(v), str(b), "-o", str(tmp_path / name), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / name}:" in err and "not audio" not in err
    assert "internal" not in err and "decoded" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([v.name, b.name])


@pytest.mark.parametrize("option", ["--stems-out", "--params-in", "--reverb-preset",
                                    "--genre", "--params-out"])
def test_an_option_given_an_empty_value_is_refused_not_taken_as_absent(option, tmp_path,
                                                                       capsys):
    # "--stems-out $UNSET": taken as not given, no stems were written, without a word
    from vocalmix.frontends.cli import main

    rc = main(["mix", "v.wav", "b.wav", "-o", str(tmp_path / "m.wav"), option, ""])
    assert rc == 2
    assert f"{option} is empty; give a value, or leave the option out" in (
        capsys.readouterr().err)
    assert not any(tmp_path.iterdir())
