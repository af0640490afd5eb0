"""Batch mode's guards: no input is ever overwritten (by another row's outputs, or by the
results table over its own manifest), everything is checked before anything is made in
the output folder, a pipe or device fails its row instead of hanging the batch, manifest
messages name the right line, and the pool's workers end with their driver."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalmix import batch
from vocalmix.core.errors import DataError, OutputError, OverwriteInputError
from vocalmix.frontends.cli import main

from conftest import REPO

SR = 22050


def _pair(folder: Path, name: str, seed: int, duration_s: float = 1.5) -> tuple[Path, Path]:
    """A sung-like tone that comes and goes, and a pulsing noise backing (stereo WAV)."""
    t = np.arange(int(duration_s * SR)) / SR
    rng = np.random.default_rng(seed)
    v = 0.2 * np.sin(2 * np.pi * (200 + 20 * seed) * t) * (np.sin(2 * np.pi * 1.3 * t) > 0)
    b = 0.1 * rng.standard_normal(t.size) * np.exp(-8 * ((t * 2) % 1))
    vp, bp = folder / f"{name}.vocal.wav", folder / f"{name}.backing.wav"
    sf.write(vp, np.repeat(v[:, None], 2, axis=1).astype(np.float32), SR)
    sf.write(bp, np.repeat(b[:, None], 2, axis=1).astype(np.float32), SR)
    return vp, bp


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail (instead of hanging the test run) when the block takes longer than this."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --- one row's outputs, another row's inputs ----------------------------------------------


def test_a_row_whose_outputs_another_row_reads_is_not_mixed_and_the_file_is_kept(tmp_path):
    v, b = _pair(tmp_path, "a", seed=1)
    v2, _ = _pair(tmp_path, "b", seed=2)
    out = tmp_path / "out"
    (out / "mix").mkdir(parents=True)
    # the user's own vocal where row "other" would write its mix (a second pass that
    # reads a first pass's output), and a file hard-linked to where "third" writes
    shutil.copy(v2, out / "mix" / "other.wav")
    keep = tmp_path / "keep.wav"
    shutil.copy(b, keep)
    os.link(keep, out / "mix" / "third.wav")
    before = {p: _sha(p) for p in (out / "mix" / "other.wav", keep)}
    rows = [["other", str(v), str(b)],
            ["reads_other", "out/mix/other.wav", str(b)],
            ["third", str(v2), str(b)],
            ["via_link", str(v), "keep.wav"]]
    manifest = _csv(tmp_path / "m.csv", ["id", "vocal", "backing"], rows)

    s = batch.run_batch(manifest, out, workers=1, method="baseline")
    table = {r["id"]: r for r in batch.read_results(out)}
    for writer, reader in (("other", "reads_other"), ("third", "via_link")):
        r = table[writer]
        assert (r["status"], r["error_code"]) == ("failed", OverwriteInputError.code), r
        assert f"row {reader!r}" in r["error"] and "never overwrites" in r["error"]
        assert r["mix_path"] is None
        assert not (out / "params" / f"{writer}.json").exists()  # nothing written
        assert table[reader]["status"] == "ok", table[reader]
    assert {p: _sha(p) for p in before} == before  # the inputs are untouched
    assert table["reads_other"]["vocal_sha256"] == before[out / "mix" / "other.wav"]
    assert table["via_link"]["backing_sha256"] == before[keep]
    assert (s.status.ok, s.status.failed) == (2, 2)

    # once no row reads it any more, the refused row is mixed (not skipped as failed)
    _csv(manifest, ["id", "vocal", "backing"], rows[:1] + rows[2:])
    os.unlink(out / "mix" / "third.wav")  # the hard link goes; keep.wav stays
    s = batch.run_batch(manifest, out, workers=1, method="baseline")
    table = {r["id"]: r for r in batch.read_results(out)}
    assert table["other"]["status"] == table["third"]["status"] == "ok"
    assert (s.status.ok, s.status.skipped) == (2, 1)
    assert _sha(keep) == before[keep]

    # a second pass reading a finished row's mix: that row is done, so it is skipped (it
    # writes nothing), and the reader gets the mix
    _csv(manifest, ["id", "vocal", "backing"], rows)
    mixed = _sha(out / "mix" / "other.wav")
    s = batch.run_batch(manifest, out, workers=1, method="baseline")
    table = {r["id"]: r for r in batch.read_results(out)}
    assert table["other"]["status"] == table["reads_other"]["status"] == "ok"
    assert table["reads_other"]["vocal_sha256"] == mixed == _sha(out / "mix" / "other.wav")
    assert s.status.skipped == 3 and s.status.ok == 1  # reads_other's vocal changed


def test_conflicts_are_found_through_symlinks_presets_and_the_manifest(tmp_path):
    v, b = _pair(tmp_path, "a", seed=1)
    out = tmp_path / "out"
    (out / "params").mkdir(parents=True)
    (tmp_path / "sym.wav").symlink_to(out / "mix" / "linked.wav")  # not made yet
    rows = [["linked", str(v), str(b), ""],
            ["reads_link", str(tmp_path / "sym.wav"), str(b), ""],
            ["presets", str(v), str(b), ""],
            ["uses_preset", str(v), str(b), f"{out / 'params' / 'presets.json'}#x"],
            ["m", str(v), str(b), ""],
            ["self", str(out / "mix" / "self.wav"), str(b), ""],  # its own output
            ["plain", str(v), str(b), ""]]
    # the manifest itself lies where row "m" writes its params document
    manifest = _csv(out / "params" / "m.json", ["id", "vocal", "backing", "reverb_preset"],
                    rows)
    m = batch.read_manifest(manifest)
    config = batch.BatchConfig(out_dir=str(out), base_dir=m.base_dir, method="baseline")
    refused = batch.plan_conflicts(m, config)
    assert sorted(refused) == ["linked", "m", "presets"]
    assert "the vocal of row 'reads_link' (as " in refused["linked"]
    assert "the reverb_preset of row 'uses_preset'" in refused["presets"]
    assert "the manifest of this batch" in refused["m"]
    assert all(str(out) in msg for msg in refused.values())

    # a refused row fails before it reads or writes anything
    config = batch.BatchConfig(out_dir=str(out), base_dir=m.base_dir, method="baseline",
                               refused=tuple(refused.items()))
    manifest_bytes = manifest.read_bytes()
    r = batch.mix_job(m.rows[4], config)  # row "m"
    assert (r["status"], r["error_code"], r["error"]) == (
        "failed", OverwriteInputError.code, refused["m"])
    assert manifest.read_bytes() == manifest_bytes
    assert not (out / "mix" / "m.wav").exists()
    # its own output as its input: still refused by the row's own check
    r = batch.mix_job(m.rows[5], config)
    assert (r["status"], r["error_code"]) == ("failed", OverwriteInputError.code)


def test_a_presets_file_is_read_beside_the_manifest_and_an_edit_mixes_the_row_again(
        tmp_path):
    # a relative presets file was looked for in the current folder (the row failed:
    # "no such presets file"), and editing it left the row's old mix standing as done
    import json

    from vocalmix.estimators.presets import presets

    folder = tmp_path / "songs"
    folder.mkdir()
    v, b = _pair(folder, "a", seed=1)
    entry = dict(presets()[sorted(presets())[0]])
    (folder / "mine.json").write_text(json.dumps({"hall": entry}))
    manifest = _csv(folder / "m.csv", ["id", "vocal", "backing", "reverb_preset", "method"],
                    [["a", v.name, b.name, "mine.json#hall", "baseline"]])
    out = tmp_path / "out"
    first = batch.run_batch(manifest, out, workers=1)
    assert (first.status.ok, first.status.failed) == (1, 0)
    before = _sha(out / "mix" / "a.wav")
    entry["reverb"] = dict(entry["reverb"], decay_s=3.5, wet_level_db=-2.0)
    (folder / "mine.json").write_text(json.dumps({"hall": entry}))
    again = batch.run_batch(manifest, out, workers=1)
    assert (again.status.ok, again.status.skipped) == (1, 0)
    assert _sha(out / "mix" / "a.wav") != before
    assert batch.run_batch(manifest, out, workers=1).status.skipped == 1  # (then done)


def test_a_folder_file_name_that_is_not_utf8_is_named_before_any_work(tmp_path, capsys):
    # (a Latin-1 name from an older system's archive): the batch stopped with an
    # internal error, exit 3, from encoding the id
    songs = tmp_path / "songs"
    songs.mkdir()
    _pair(songs, "good", seed=1)
    v, b = _pair(songs, "tmp", seed=2)
    for p, role in ((v, "vocal"), (b, "backing")):
        os.rename(os.fsencode(p), os.fsencode(songs) + f"/caf\xe9.{role}.wav".encode("latin-1"))
    with pytest.raises(DataError, match=r"2 audio file name\(s\) are not valid UTF-8.*"
                                        r"caf\\xe9\.backing\.wav, caf\\xe9\.vocal\.wav; rename"):
        batch.scan_folder(songs)
    assert main(["batch", str(songs), "--out", str(tmp_path / "out"), "-q"]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _memory_runs_out_while_flagged() -> None:
    """A worker's start-up: mixing row "big" runs out of memory while the file named by
    ``VOCALMIX_TEST_OOM_FLAG`` exists (a machine busy with other work)."""
    real = batch._mix_into

    def mixing(spec, *a, **k):
        if spec.id == "big" and os.path.exists(os.environ["VOCALMIX_TEST_OOM_FLAG"]):
            raise MemoryError
        return real(spec, *a, **k)

    batch._mix_into = mixing


def test_a_row_that_failed_for_a_reason_of_the_run_is_tried_again(tmp_path, monkeypatch):
    # a failure of the run (memory, a full disk, a dead worker) was kept as the row's
    # result: the rerun its message advises ("run fewer --workers") skipped the row
    v, b = _pair(tmp_path, "big", seed=1)
    v2, b2 = _pair(tmp_path, "small", seed=2)
    manifest = _csv(tmp_path / "m.csv", ["id", "vocal", "backing", "method"],
                    [["big", str(v), str(b), "baseline"],
                     ["small", str(v2), str(b2), "baseline"]])
    flag = tmp_path / "busy"
    flag.touch()
    monkeypatch.setenv("VOCALMIX_TEST_OOM_FLAG", str(flag))
    out = tmp_path / "out"
    first = batch.run_batch(manifest, out, workers=2,
                            worker_init=_memory_runs_out_while_flagged)
    assert [(i, c) for i, c, _ in first.failures] == [("big", "internal.out_of_memory")]
    flag.unlink()
    again = batch.run_batch(manifest, out, workers=1,
                            worker_init=_memory_runs_out_while_flagged)
    assert (again.status.ok, again.status.skipped, again.failures) == (1, 1, ())
    assert (out / "mix" / "big.wav").is_file()


def test_a_rerun_makes_again_a_row_whose_params_document_was_removed(tmp_path):
    # only the mix was looked for: a row whose params document was gone counted as done
    v, b = _pair(tmp_path, "a", seed=1)
    manifest = _csv(tmp_path / "m.csv", ["id", "vocal", "backing", "method"],
                    [["a", str(v), str(b), "baseline"]])
    out = tmp_path / "out"
    assert batch.run_batch(manifest, out, workers=1).status.ok == 1
    (out / "params" / "a.json").unlink()
    again = batch.run_batch(manifest, out, workers=1)
    assert (again.status.ok, again.status.skipped) == (1, 0)
    assert (out / "params" / "a.json").is_file()


def test_the_progress_line_whose_reader_is_gone_stops_and_the_batch_goes_on(monkeypatch):
    # `vocalmix batch ... 2>&1 | head -1`: the next progress line raised BrokenPipeError
    # in the driver, which ended the batch with 32 of 60 rows mixed
    from vocalmix.frontends.cli import _BatchBar

    class GoneReader:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stderr", GoneReader())
    bar = _BatchBar(quiet=False)
    status = batch.BatchStatus(total=3)
    bar(status)  # raised before
    assert bar.quiet
    bar(status)
    bar.close()


def test_a_folder_batch_never_replaces_a_persons_manifest_in_its_output_folder(
        tmp_path, capsys):
    # a folder's batch writes OUT/manifest.csv: a person's own manifest kept there (the
    # catalogue folder used as --out) was replaced without a word
    v, b = _pair(tmp_path, "a", seed=1)
    mine = "id,vocal,backing,method,vocal_to_mix_lu\na,a.vocal.wav,a.backing.wav,model,-4.5\n"
    (tmp_path / "manifest.csv").write_text(mine)
    assert main(["batch", str(tmp_path), "--out", str(tmp_path), "-q"]) == 2
    assert "is a manifest that no batch wrote" in capsys.readouterr().err
    assert (tmp_path / "manifest.csv").read_text() == mine
    assert not (tmp_path / "mix").exists()
    # the one a folder's batch wrote is its own to write again
    out = tmp_path / "out"
    for _ in range(2):
        assert main(["batch", str(tmp_path), "--out", str(out), "-q",
                     "--method", "baseline"]) == 0


def test_a_path_cell_holding_a_nul_fails_its_row_as_data_not_as_a_bug(tmp_path):
    config = batch.BatchConfig(out_dir=str(tmp_path / "out"), base_dir=str(tmp_path),
                               method="baseline")
    r = batch.mix_job({"id": "nul", "vocal": "a\0b.wav", "backing": "b.wav"}, config)
    assert (r["status"], r["error_code"]) == ("failed", DataError.code)
    assert "the vocal cell holds a NUL character" in r["error"]


# --- the manifest and the output folder ----------------------------------------------------


def test_a_results_file_of_the_batch_is_never_its_manifest(tmp_path, capsys):
    v, b = _pair(tmp_path, "a", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    results = _csv(out / "results.csv", ["id", "vocal", "backing"], [["a", str(v), str(b)]])
    original = results.read_bytes()
    os.link(results, tmp_path / "hard.csv")
    (tmp_path / "soft.csv").symlink_to(results)
    for source in (results, tmp_path / "hard.csv", tmp_path / "soft.csv"):
        assert main(["batch", str(source), "--out", str(out), "-q"]) == 2
        err = capsys.readouterr().err
        assert "is the manifest this batch reads" in err and "results.csv" in err, err
        assert "internal error" not in err
        with pytest.raises(OverwriteInputError):
            batch.run_batch(source, out, workers=1)
    assert results.read_bytes() == original
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]  # nothing else made


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    v, b = _pair(tmp_path, "a", seed=1)
    manifest = _csv(tmp_path / "m.csv", ["id", "vocal", "backing"], [["a", str(v), str(b)]])
    original = v.read_bytes()
    with pytest.raises(OutputError, match="is a file; give a folder"):
        batch.run_batch(manifest, v, workers=1)
    assert main(["batch", str(manifest), "--out", str(v), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{v}: is a file; give a folder" in err and "internal error" not in err
    assert main(["batch", str(manifest), "--out", str(v / "sub"), "-q"]) == 2
    assert "is a file, but the output folder" in capsys.readouterr().err
    assert v.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.vocal.wav", "a.backing.wav", "m.csv"])


def test_a_manifest_that_fails_its_checks_leaves_no_output_folder(tmp_path):
    v, b = _pair(tmp_path, "a", seed=1)
    pairs = tmp_path / "pairs"  # ids that differ only in case: one name on some disks
    pairs.mkdir()
    shutil.copy(v, pairs / "Song.vocal.wav")
    shutil.copy(b, pairs / "Song.backing.wav")
    (pairs / "song").mkdir()
    shutil.copy(v, pairs / "song" / "vocal.wav")
    shutil.copy(b, pairs / "song" / "backing.wav")
    cases = {
        tmp_path / "missing.csv": "no such manifest file",
        _csv(tmp_path / "dup.csv", ["id", "vocal", "backing"],
             [["x", str(v), str(b)], ["x", str(v), str(b)]]): "already used",
        _csv(tmp_path / "empty.csv", ["id", "vocal", "backing"],
             [["", str(v), str(b)]]): "empty id",
        pairs: "same output files",
        Path("/dev/null"): r"is not a regular file \(a folder, pipe or device\)",
    }
    for source, text in cases.items():
        out = tmp_path / f"out-{source.stem}"
        with pytest.raises(DataError, match=text):
            batch.run_batch(source, out, workers=1)
        assert not out.exists(), source


@pytest.mark.parametrize(("text", "message"), [
    # a blank line 3 moves the row without an id to line 4
    ("id,vocal,backing\na,v.wav,b.wav\n\n,,\nb,v.wav,b.wav\n", "m.csv:4: empty id"),
    # a quoted cell over two lines, then a blank line
    ('id,vocal,backing\na,"v\n.wav",b.wav\n\nb,v.wav,b.wav\na,v.wav,b.wav\n',
     "m.csv:6: id 'a' already used on line 2"),
    ("id,vocal,backing\n\n\na,v.wav,b.wav\nb,v.wav,b.wav\nc,v.wav,b.wav\na,v,b\n",
     "m.csv:7: id 'a' already used on line 4"),
    ("id,vocal,backing\na,v.wav,b.wav\r\n\r\nb,v.wav,b.wav,extra\r\n",
     "m.csv:4: more cells than columns"),
])
def test_manifest_messages_name_the_line_the_row_starts_on(tmp_path, text, message):
    p = tmp_path / "m.csv"
    p.write_bytes(text.encode())
    with pytest.raises(DataError) as e:
        batch.read_manifest(p)
    assert str(e.value).startswith(f"{tmp_path}/{message}"), str(e.value)


def test_a_manifest_read_line_by_line_keeps_its_cells(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text('id,vocal,backing,genre\n\na,"v 1.wav",b.wav\nb,v.wav\n', encoding="utf-8")
    m = batch.read_manifest(p)
    assert m.rows == ({"id": "a", "vocal": "v 1.wav", "backing": "b.wav", "genre": None},
                      {"id": "b", "vocal": "v.wav", "backing": None, "genre": None})


# --- pipes and devices --------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                    reason="needs named pipes and /dev/zero")
def test_a_pipe_or_device_fails_its_row_and_the_batch_goes_on(tmp_path):
    v, b = _pair(tmp_path, "a", seed=1)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    manifest = _csv(tmp_path / "m.csv", ["id", "vocal", "backing", "params_in"], [
        ["zero", "/dev/zero", str(b), ""],
        ["pipe_vocal", str(fifo), str(b), ""],
        ["pipe_backing", str(v), str(fifo), ""],
        ["pipe_params", str(v), str(b), str(fifo)],
        ["good", str(v), str(b), ""],
    ])
    with _deadline(60):  # the pipe has no writer: opening it would block for ever
        s = batch.run_batch(manifest, tmp_path / "out", workers=1, method="baseline")
    table = {r["id"]: r for r in batch.read_results(tmp_path / "out")}
    for rid, what, path in (("zero", "vocal", "/dev/zero"), ("pipe_vocal", "vocal", fifo),
                            ("pipe_backing", "backing", fifo)):
        r = table[rid]
        assert (r["status"], r["error_code"]) == ("failed", "audio.unreadable"), r
        assert r["error"] == (f"{what} {path}: is not a regular file (a pipe, device or "
                              "socket); give the path of an audio file")
    r = table["pipe_params"]
    assert (r["status"], r["error_code"]) == ("failed", "params.invalid"), r
    assert "is not a regular file" in r["error"]
    assert table["good"]["status"] == "ok"
    assert (s.status.ok, s.status.failed) == (1, 4)


# --- the pool's workers end with their driver ---------------------------------------------


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie nobody has reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep
                + os.environ.get("PYTHONPATH", ""))


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("death_signal", [True, False], ids=["pdeathsig", "polling"])
def test_a_worker_ends_soon_after_its_driver_is_killed(death_signal):
    worker = textwrap.dedent(f"""
        import os, time
        from vocalmix import batch
        if not {death_signal}:
            batch._set_parent_death_signal = lambda: None  # the polling thread alone
        batch._exit_with_parent(os.getppid())
        print(os.getpid(), flush=True)
        time.sleep(60)
    """)
    driver = textwrap.dedent(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {worker!r}])
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", driver], env=_env(),
                            stdout=subprocess.PIPE, text=True)
    child = None
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())  # the worker watches its driver now
        assert _alive(child)
        proc.kill()  # SIGKILL: the driver can clean nothing up
        proc.wait()
        t0 = time.monotonic()
        assert _wait_gone([child], 5.0) == []
        assert time.monotonic() - t0 < 1.0 + batch.PARENT_POLL_S
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.slow  # a real batch of a few songs on a pool of two workers
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_batch_driver_ends_its_workers(tmp_path):
    rows = []
    for i in range(8):
        v, b = _pair(tmp_path, f"s{i}", seed=i, duration_s=4.0)
        rows.append([f"s{i}", str(v), str(b)])
    manifest = _csv(tmp_path / "m.csv", ["id", "vocal", "backing"], rows)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vocalmix", "batch", str(manifest), "--out", str(out),
         "--workers", "2", "-q", "--method", "baseline"],
        env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    journal = out / batch.JOURNAL
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "no row finished in 120 s"
            time.sleep(0.05)
        kids = _children(proc.pid)  # the workers (mid-song) and the resource tracker
        assert len(kids) >= 2, kids
        proc.kill()  # the driver alone, as the out-of-memory killer would
        proc.wait()
        assert _wait_gone(kids, 3.0) == []
        finished = journal.read_bytes().count(b"\n")
        written = sorted(p.name for p in (out / "mix").iterdir())
        time.sleep(2 * batch.PARENT_POLL_S + 1.0)  # nobody is left to write anything
        assert journal.read_bytes().count(b"\n") == finished < len(rows)
        assert sorted(p.name for p in (out / "mix").iterdir()) == written
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)


def test_a_row_whose_new_mix_fails_leaves_no_mix_of_its_old_inputs(tmp_path):
    """A take replaced by one that cannot be mixed: the row fails, and the mix and params
    document of the old take are gone with it (left in mix/, an app serving mixes by id
    would hand out the old take's mix as this row's); the row's inputs stay untouched."""
    import numpy as np
    import soundfile as sf

    from vocalmix import batch
    from vocalmix.synth import synthesize_song

    sr = 22050
    v, b = synthesize_song(sample_rate=sr, duration_s=2.0, seed=4)
    vp, bp = tmp_path / "take.wav", tmp_path / "beat.wav"
    sf.write(vp, v, sr, subtype="FLOAT")
    sf.write(bp, b, sr, subtype="FLOAT")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"id,vocal,backing\nsong,{vp},{bp}\n")
    out = tmp_path / "out"
    assert batch.run_batch(manifest, out, workers=1).status.ok == 1
    mix, doc = out / "mix" / "song.wav", out / "params" / "song.json"
    assert mix.is_file() and doc.is_file()
    sf.write(vp, np.zeros((2 * sr, 2), np.float32), sr, subtype="FLOAT")  # a silent take
    s = batch.run_batch(manifest, out, workers=1)
    assert s.status.failed == 1
    row = batch.read_results(out)[0]
    assert row["status"] == "failed" and "earlier mix" in row["error"]
    assert not mix.exists() and not doc.exists()
    assert vp.is_file() and bp.is_file()


def test_withdrawing_outputs_never_removes_an_input_a_link_or_a_folder(tmp_path):
    from vocalmix.core.audio import withdraw_outputs

    old, take, folder = tmp_path / "old.wav", tmp_path / "take.wav", tmp_path / "dir.wav"
    old.write_bytes(b"x")
    take.write_bytes(b"y")
    folder.mkdir()
    link = tmp_path / "link.wav"
    link.symlink_to(take)
    hard = tmp_path / "hard.wav"
    os.link(take, hard)
    gone = withdraw_outputs([old, take, folder, link, hard, tmp_path / "absent.wav"],
                            inputs=[take])
    assert gone == [old]
    assert take.is_file() and folder.is_dir() and link.is_symlink() and hard.is_file()


def test_results_csv_keeps_a_spreadsheet_from_running_an_id_as_a_formula(tmp_path):
    """Ids come from manifests that may be built of titles people typed: one that begins
    with ``=`` (``=HYPERLINK(...)``), ``+``, ``-`` or ``@`` is written behind a ``'``, as
    spreadsheets take text, and read back exactly; numbers stay numbers."""
    from vocalmix import batch

    ids = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2 remix", "@SUM(A1)", "'quoted", "plain"]
    rows = [dict(batch._blank(i), status="failed", error="-bad", vocal_to_mix_lu=-3.5)
            for i in ids]
    text = batch.results_csv_text(rows)
    cells = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert not any(c.lstrip('"').startswith(("=", "+", "-", "@")) for c in cells)
    (tmp_path / "results.csv").write_text(text, encoding="utf-8")
    back = batch.read_results_csv(tmp_path / "results.csv")
    assert [r["id"] for r in back] == ids
    assert all(r["error"] == "-bad" and r["vocal_to_mix_lu"] == -3.5 for r in back)


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses names that are not UTF-8")
def test_a_folder_whose_own_path_is_not_utf8_is_refused_before_any_work(tmp_path):
    """A catalogue folder, a manifest's folder or an output folder named in an older
    system's encoding: the paths under it cannot go into the UTF-8 tables (an internal
    error after the output folder was made); each is refused before anything is made."""
    import soundfile as sf

    from vocalmix import batch
    from vocalmix.core.errors import DataError, OutputError
    from vocalmix.synth import synthesize_song

    latin = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9")
    os.mkdir(latin)
    v, b = synthesize_song(sample_rate=22050, duration_s=2.0, seed=2)
    sf.write(os.path.join(tmp_path, "a.vocal.wav"), v, 22050)
    sf.write(os.path.join(tmp_path, "a.backing.wav"), b, 22050)
    for n in ("a.vocal.wav", "a.backing.wav"):
        shutil.copy(tmp_path / n, os.path.join(latin, n))
    manifest = os.path.join(latin, "m.csv")
    with open(manifest, "w", encoding="utf-8") as f:
        f.write("id,vocal,backing\na,a.vocal.wav,a.backing.wav\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="not valid UTF-8"):
        batch.run_batch(latin, out)
    with pytest.raises(DataError, match="not valid UTF-8"):
        batch.run_batch(manifest, out)
    bad_out = os.path.join(tmp_path, os.fsdecode(b"o\xe9ut"))
    with pytest.raises(OutputError, match="not valid UTF-8"):
        batch.run_batch(tmp_path, bad_out)
    assert not out.exists() and not os.path.exists(bad_out)


def test_the_driver_keeps_params_documents_packed_and_writes_the_tables_in_chunks(tmp_path):
    """A catalogue's results: each row's params document and notes are held compressed
    (a third of their size), and the tables are rewritten a chunk of rows at a time;
    what they hold is every row exactly as given, over more rows than one chunk."""
    import json

    pq = pytest.importorskip("pyarrow.parquet")
    from vocalmix import batch

    doc = (Path(__file__).parent / "golden" / "demo__model.json").read_text()
    n = batch._SNAPSHOT_CHUNK + 7
    given = []
    with batch.ResultStore(tmp_path) as store:
        for i in range(n):
            r = batch._blank(f"=song {i}")
            r.update(status="ok", params_json=doc.replace("{", f'{{"n": {i},', 1),
                     notes=json.dumps([f"note {i}"] * 40), job_key=f"k{i}",
                     vocal_to_mix_lu=-3.0 - i / 1000)
            store.add(r)
            given.append({c: r.get(c) for c in batch.COLUMN_NAMES})
        held = store.latest["=song 0"]
        assert isinstance(held["params_json"], batch._Packed)
        assert len(held["params_json"].data) < len(doc) / 2
        ids = [r["id"] for r in given]
        store.snapshot(ids)
        assert store.table(ids) == given
    assert (tmp_path / batch.RESULTS_CSV).read_text(encoding="utf-8") == \
        batch.results_csv_text(given)
    assert batch.read_results_csv(tmp_path / batch.RESULTS_CSV) == given
    assert pq.read_table(tmp_path / batch.RESULTS_PARQUET).to_pylist() == given
    with batch.ResultStore(tmp_path) as again:  # read back from the journal, packed again
        assert again.table(ids) == given
