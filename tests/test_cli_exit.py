"""How the ``vocalmix`` process ends: a one-shot command's process exits as soon as the
command returns (its streams flushed, its exit code kept), the others the usual way."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
import soundfile as sf

from vocalmix.frontends import cli


def _vocalmix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vocalmix", *args], capture_output=True,
                          text=True, timeout=120)


def test_a_quick_exit_keeps_the_whole_output_and_the_exit_code(tmp_path):
    sr = 44100
    t = np.arange(2 * sr) / sr
    x = 0.25 * np.sin(2 * np.pi * 440.0 * t)
    paths = []
    for i in range(3):  # several rows of output, all of which must reach the pipe
        p = tmp_path / f"tone{i}.wav"
        sf.write(p, np.stack([x, x], axis=1) * (i + 1) / 3, sr)
        paths.append(str(p))
    r = _vocalmix("analyze", *paths, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["path"] for row in rows] == paths
    assert all(np.isfinite(row["integrated_lufs"]) for row in rows)

    r = _vocalmix("presets")
    assert r.returncode == 0, r.stderr
    assert r.stdout == _in_process_stdout(["presets"])

    missing = tmp_path / "missing.wav"
    r = _vocalmix("analyze", str(missing))
    assert r.returncode == 2
    assert "vocalmix: error:" in r.stderr and "missing.wav: no such file" in r.stderr


def _in_process_stdout(argv: list[str]) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(argv) == 0
    return buf.getvalue()


class _Ended(Exception):
    def __init__(self, how: str, code: int) -> None:
        super().__init__(how, code)
        self.how, self.code = how, code


@pytest.fixture
def ending(monkeypatch):
    """``run()`` with ``main`` returning 7 and both ways of ending recorded."""
    monkeypatch.setattr(cli, "main", lambda: 7)

    def os_exit(code):
        raise _Ended("os._exit", code)

    def sys_exit(code=0):
        raise _Ended("sys.exit", code)

    monkeypatch.setattr(cli.os, "_exit", os_exit)
    monkeypatch.setattr(cli.sys, "exit", sys_exit)

    def end(argv: list[str]) -> _Ended:
        monkeypatch.setattr(cli.sys, "argv", ["vocalmix", *argv])
        with pytest.raises(_Ended) as e:
            cli.run()
        return e.value

    return end


@pytest.mark.parametrize("command", sorted(cli.QUICK_EXIT_COMMANDS))
def test_one_shot_commands_end_at_once_with_their_code(ending, command):
    e = ending(["-q", command, "a.wav"] if command != "presets" else [command])
    assert (e.how, e.code) == ("os._exit", 7)


@pytest.mark.parametrize("command", ["batch", "live", "serve", "train", "fit-reverb", None])
def test_other_commands_end_the_usual_way(ending, command):
    e = ending([command, "x"] if command else ["--version"])
    assert (e.how, e.code) == ("sys.exit", 7)


def test_a_stream_that_cannot_be_flushed_ends_the_usual_way(ending, monkeypatch):
    class Closed:
        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli.sys, "stdout", Closed())
    e = ending(["mix", "v.wav", "b.wav"])
    assert (e.how, e.code) == ("sys.exit", 7)


@pytest.mark.parametrize("command", [["presets"], ["--help"]])
def test_a_reader_that_goes_away_ends_it_quietly(command):
    """``vocalmix presets | head -1``: the pipe's reader closes it before vocalmix writes;
    the process ends without a message, with the code of a program killed by SIGPIPE
    (a one-shot command that writes to it) or with 0 (``--help``, which argparse ends)."""
    p = subprocess.Popen([sys.executable, "-m", "vocalmix", *command],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # before the interpreter has even imported vocalmix
    err = p.stderr.read().decode()
    code = p.wait(timeout=120)
    assert err == ""
    assert code == (cli.CLOSED_PIPE_EXIT if command == ["presets"] else 0)


def test_another_broken_pipe_is_an_internal_error(monkeypatch, capsys):
    """A broken pipe that is not the standard output's (a worker's, a socket's) is
    reported as the internal error it is."""
    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli._COMMANDS, "presets", broken)
    monkeypatch.setattr(cli, "build_parser", lambda argv=None: _Parser())
    assert cli.main(["presets"]) == 3
    assert "internal error: BrokenPipeError" in capsys.readouterr().err


class _Parser:
    def parse_args(self, argv):
        import argparse

        return argparse.Namespace(command="presets", debug=False)


def test_the_console_script_and_python_m_go_through_run():
    eps = [e for e in entry_points(group="console_scripts") if e.name == "vocalmix"]
    if eps:  # (an installed checkout; the metadata may predate a rename otherwise)
        assert eps[0].value == "vocalmix.frontends.cli:run"
    import vocalmix.__main__ as m

    assert m.run is cli.run
