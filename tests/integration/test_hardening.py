"""Hardening (issue 22): a full disk, two runs into one folder, a torn manifest, long references,
long texts, SIGTERM, and the papercuts a new user meets first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import soundfile
from conftest import BIN, run_cli, small_tmpfs, voiced_signal
from processes import wait_for

from demod_voice.errors import InputError

MANIFEST = ".demod-voice-manifest.jsonl"
TEXT = "This row is long enough to keep a worker busy for a moment. It has two sentences."


def rows_csv(folder: Path, n: int, text: str = TEXT) -> Path:
    path = folder / "many.csv"
    path.write_text("text,output\n" + "".join(f'"{text} Row {i}.",row{i:03d}.wav\n' for i in range(n)), encoding="utf-8")
    return path


def outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def partials(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".partial")]


def size(path: Path) -> int:
    """``path``'s size; 0 once it is gone (a partial file renamed to its output, or removed)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def manifest_lines(folder: Path) -> list[str]:
    path = folder / MANIFEST
    return path.read_text().splitlines() if path.exists() else []


def start(*args: str, hangup=signal.SIG_DFL, **kwargs) -> subprocess.Popen:
    # SIGINT, SIGTERM and SIGHUP at their defaults, as under a terminal or a service manager (``hangup``: SIGHUP's
    # disposition, SIG_IGN as under nohup).
    def defaults():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, hangup)

    return subprocess.Popen([sys.executable, str(BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=defaults, **kwargs)


# --- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root only); the test is skipped, saying why, where mounting is not allowed."""
    yield from small_tmpfs(tmp_path / "small", "2m", "; test_failure_paths.py covers the writer's full-disk error with an injected one")


def test_a_full_disk_stops_the_batch_at_its_row_and_resumes_once_space_is_freed(piper_voice, small_disk, tmp_path):
    csv_file = rows_csv(tmp_path, 60)
    done = run_cli("batch", str(csv_file), "--output-dir", str(small_disk), "--model", str(piper_voice))
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err and "LibsndfileError" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err  # one line, not one per remaining row
    assert "many.csv:" in errors[0] and "no space left" in errors[0] and "free some space" in errors[0], errors[0]
    assert "not run" in err  # it stopped rather than grinding through the rest
    assert partials(small_disk) == []
    first = outputs(small_disk)
    assert 0 < len(first) < 60
    recorded = [json.loads(line) for line in manifest_lines(small_disk) if line.endswith("}")]
    assert all(os.path.getsize(small_disk / entry["output"]) == entry["size"] for entry in recorded)  # paths within the folder
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = run_cli("batch", str(csv_file), "--output-dir", str(small_disk), "--model", str(piper_voice))
    assert again.returncode == 0, again.stderr.decode()
    assert f"{len(recorded)} of 60 rows are already complete" in again.stderr.decode()
    assert len(outputs(small_disk)) == 60 and partials(small_disk) == []
    assert all(soundfile.info(str(small_disk / name)).frames > 0 for name in outputs(small_disk))


def test_a_report_on_a_full_disk_is_one_error_and_the_summary_names_no_report(piper_voice, small_disk, tmp_path):
    # the summary said "report: PATH" of a report that was never written
    (small_disk / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 8192))
    csv_file = rows_csv(tmp_path, 200)
    done = run_cli("batch", str(csv_file), "--output-dir", str(tmp_path / "out"), "--model", str(piper_voice),
                   "--report", str(small_disk / "report.jsonl"))
    err = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if "error:" in line] == [
        f"demod-voice: error: cannot write the report {small_disk / 'report.jsonl'}: No space left on device; "
        "free some space and run the same command again"], err
    assert "batch: " in err and "; report:" not in err, err
    assert not (small_disk / "report.jsonl").exists() and partials(small_disk) == []


# --- two runs, one folder ------------------------------------------------------------------------


def test_a_second_batch_into_a_folder_in_use_is_refused_and_a_killed_one_leaves_no_lock(piper_voice, tmp_path):
    out = tmp_path / "out"
    # enough rows that the first run is still at work when the second starts: 30 rows of the tiny voice took
    # 1.3 s in all, about what the second run needs to start (this test failed once in CI with 30)
    csv_file = rows_csv(tmp_path, 400)
    first = start("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice))
    wait_for(lambda: len(manifest_lines(out)) >= 1)
    second = run_cli("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice))
    err = second.stderr.decode()
    assert second.returncode == 1 and f"in use by another batch (pid {first.pid})" in err, err
    assert len(err.strip().splitlines()) == 1
    # A run killed outright (power cut, OOM kill) cannot leave the folder locked: the kernel drops an flock.
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    third = run_cli("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice))
    assert third.returncode == 0, third.stderr.decode()
    entries = [json.loads(line) for line in manifest_lines(out)]  # every line whole: never interleaved
    assert sorted({Path(e["output"]).name for e in entries}) == outputs(out) and len(outputs(out)) == 400


def test_a_torn_last_manifest_line_is_ignored_and_cut_off(piper_voice, tmp_path):
    out = tmp_path / "out"
    csv_file = rows_csv(tmp_path, 3, "Short.")
    assert run_cli("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice)).returncode == 0
    whole = (out / MANIFEST).read_bytes()
    (out / MANIFEST).write_bytes(whole + b'{"output": "' + str(out / "row002").encode())  # a write cut short
    (out / "row001.wav").unlink()  # so the rerun appends a line right after the torn one
    done = run_cli("-v", "batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice))
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "ignoring a torn last line" in err and "2 of 3 rows are already complete" in err
    lines = manifest_lines(out)
    assert len(lines) == 4 and all(json.loads(line)["output"] for line in lines)
    assert json.loads(lines[-1])["output"] == "row001.wav"


# --- bounded resources ---------------------------------------------------------------------------


def test_a_reference_over_the_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    import demod_voice.voices.references as references

    path = tmp_path / "long.wav"
    soundfile.write(str(path), voiced_signal(8.0, 16000), 16000)
    decoded = []
    real_read = soundfile.read
    monkeypatch.setattr(soundfile, "read", lambda *a, **k: decoded.append(k.get("frames")) or real_read(*a, **k))
    with pytest.raises(InputError, match=r"over the 5 s limit \(xtts.max_reference_seconds\)"):
        references.check_reference(str(path), 5.0)
    assert decoded == []
    reference, _ = references.check_reference(str(path), 300.0)
    assert reference.seconds == pytest.approx(8.0) and decoded == [int(references.CHECK_SECONDS * 16000)]


def test_the_reference_limit_comes_from_the_config(xtts_model, references, tmp_path):
    done = run_cli("xtts-zero-shot", str(references["ref.wav"]), "Hello.", "--model-dir", str(xtts_model),
                   "-o", str(tmp_path / "o.wav"), env={"DEMOD_VOICE_XTTS_MAX_REFERENCE_SECONDS": "5"})
    err = done.stderr.decode()
    assert done.returncode == 3 and "over the 5 s limit" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.wav").exists()


def test_the_file_writer_holds_no_audio_in_memory(tmp_path):
    import tracemalloc

    import numpy as np

    from demod_voice.audio.chunks import AudioChunk
    from demod_voice.audio.writer import FileSink

    second = (np.sin(np.arange(22050) / 7.0) * 0.3).astype(np.float32)  # 88 kB a chunk
    sink = FileSink(tmp_path / "long.flac")
    tracemalloc.start()
    try:
        for _ in range(300):  # 5 minutes, 26 MB of float samples in all
            sink.write(AudioChunk(second, 22050))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sink.commit() == pytest.approx(300.0)
    assert peak < 2 << 20, peak


def test_a_long_text_reaches_the_writer_sentence_by_sentence(piper_voice, tmp_path):
    from demod_voice.backends.piper.request import PiperRequest, make_job
    from demod_voice.config import Config
    from demod_voice.engine.service import EngineRun

    class Counting:
        retryable = True

        def __init__(self) -> None:
            self.sizes: list[int] = []

        def write(self, chunk) -> None:
            self.sizes.append(len(chunk.samples))

        def commit(self) -> float:
            return sum(self.sizes) / 22050

        def abort(self) -> None:
            pass

    sink = Counting()
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    job = make_job(PiperRequest(str(piper_voice), text, str(tmp_path / "o.wav"), Config().piper))
    result = EngineRun(Config().engine, sink_factory=lambda job: sink).run([job])[0]
    assert result.ok, result.error
    assert len(sink.sizes) >= 40 and max(sink.sizes) < sum(sink.sizes) / 10


# --- SIGTERM -------------------------------------------------------------------------------------


def test_sigterm_ends_a_batch_like_ctrl_c_with_exit_143(piper_voice, tmp_path):
    out = tmp_path / "out"
    csv_file = rows_csv(tmp_path, 60)
    proc = start("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice))
    wait_for(lambda: len(manifest_lines(out)) >= 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "not run" in err and "Traceback" not in err
    finished = len(manifest_lines(out))
    assert 3 <= finished < 60 and len(outputs(out)) == finished and partials(out) == []


@pytest.mark.parametrize("log_file", [False, True], ids=["stderr-on-the-terminal", "stderr-to-a-log-file"])
def test_a_closed_terminal_ends_a_batch_like_sigterm_with_its_report_and_exit_129(piper_voice, tmp_path, log_file):
    """A closed ssh session or terminal (the kernel's SIGHUP) killed the batch on the spot: no report, no summary, no
    line in the log saying how to go on, the rows being written left as hidden partial files (and a worker's
    BrokenPipeError traceback in the log). Stopped as on SIGTERM, its summary then failed on the closed terminal
    (EIO): "internal error", exit 1."""
    import fcntl
    import termios

    out = tmp_path / "out"
    csv_file = rows_csv(tmp_path, 60)
    log = tmp_path / "run.log"
    primary, terminal = os.openpty()

    def on_the_terminal():  # its own session, the terminal its controlling one: as sshd starts a command
        os.setsid()
        fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)

    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(BIN), "batch", str(csv_file), "--output-dir", str(out), "--model",
                                 str(piper_voice), "--report", str(out / "report.jsonl")], stdin=terminal, stdout=terminal,
                                stderr=err if log_file else terminal, preexec_fn=on_the_terminal)
    os.close(terminal)
    try:
        wait_for(lambda: _drained(primary) or len(manifest_lines(out)) >= 3)
    finally:
        os.close(primary)  # the terminal closes
    assert proc.wait(timeout=120) == 129
    finished = len(manifest_lines(out))
    assert 3 <= finished < 60 and len(outputs(out)) == finished + 1 and partials(out) == []  # the rows and the report
    report = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert sum(entry["status"] == "ok" for entry in report) == finished
    if log_file:
        said = log.read_text()
        assert "hung up (SIGHUP" in said.splitlines()[-1] and "rerun the same command" in said and "Traceback" not in said, said


def _drained(primary: int) -> bool:
    """Read what the command wrote on its terminal (a full terminal would block it); always False."""
    import select

    while select.select([primary], [], [], 0)[0]:
        try:
            if not os.read(primary, 65536):
                break
        except OSError:
            break
    return False


def test_a_batch_started_with_sighup_ignored_nohup_runs_on_after_one(piper_voice, tmp_path):
    out = tmp_path / "out"
    csv_file = rows_csv(tmp_path, 8, "Short.")
    proc = start("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice), hangup=signal.SIG_IGN)
    wait_for(lambda: len(manifest_lines(out)) >= 1 or proc.poll() is not None)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert len(manifest_lines(out)) == 8


def test_a_closed_terminal_sighup_drains_the_server_as_sigterm_does(piper_voice, tmp_path):
    """``serve`` on a terminal or over ssh: closing it (SIGHUP) ended the server at once, as uvicorn leaves it, cutting
    the answer in flight (exit -1, killed). It drains now: the answer finishes, the log says why, exit 0."""
    from live_server import start_server

    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # the server inherits SIGHUP's default, as under a terminal
    try:
        server = start_server(tmp_path / "srv", {"serve": {"piper_voices": [str(piper_voice)], "grace_seconds": 60}})
    finally:
        signal.signal(signal.SIGHUP, before)
    text = " ".join(f"Sentence number {i} keeps the worker busy for a while." for i in range(40))
    body = {"model": piper_voice.stem, "input": text, "response_format": "pcm"}
    received = 0
    try:
        with httpx.stream("POST", server.url + "/v1/audio/speech", json=body, timeout=120) as answer:
            assert answer.status_code == 200
            for piece in answer.iter_bytes():  # a cut answer raises here (the server gone mid-body)
                if not received:
                    server.process.send_signal(signal.SIGHUP)
                received += len(piece)
        code = server.process.wait(60)
    finally:
        server.stop(signal.SIGKILL)
    log = server.log_text()
    assert code == 0 and "SIGHUP" in log and "draining" in log and "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("command", ["piper-infer", "xtts-zero-shot"])
def test_sigterm_ends_one_synthesis_with_exit_143_and_no_output(command, piper_voice, xtts_model, references, tmp_path):
    text = " ".join(f"Sentence number {i} keeps the worker busy." for i in range(200))
    output = tmp_path / "o.wav"
    if command == "piper-infer":
        args = ["piper-infer", str(piper_voice), text, "-o", str(output)]
    else:
        args = ["xtts-zero-shot", str(references["ref.wav"]), text, "--model-dir", str(xtts_model), "-o", str(output)]
    proc = start(*args, env={**os.environ, "DEMOD_VOICE_XTTS_MAX_NEW_TOKENS": "24"})
    # mid-synthesis: some audio is in the output's partial file (a fixed wait after the worker started could, on a
    # fast machine, come after the last sentence)
    wait_for(lambda: any(size(p) > 4096 for p in tmp_path.glob(".o.wav.*.partial")))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not output.exists() and partials(tmp_path) == []


# --- papercuts -----------------------------------------------------------------------------------


def test_batch_makes_a_missing_output_folder_and_says_so_at_v(piper_voice, tmp_path):
    csv_file = rows_csv(tmp_path, 1, "Short.")
    done = run_cli("-v", "batch", str(csv_file), "--output-dir", "out", "--model", str(piper_voice),
                   "--report", "out/report.jsonl", cwd=tmp_path)  # the README's own example
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert f"created the output directory {tmp_path / 'out'}" in err
    assert outputs(tmp_path / "out") == ["report.jsonl", "row000.wav"]


@pytest.mark.parametrize("what", ["batch file", "reference", "voice model", "input directory"])
def test_missing_input_files_say_not_found_and_what_to_do(what, references, tmp_path):
    missing = tmp_path / "missing"
    if what == "batch file":
        done = run_cli("batch", str(missing) + ".csv", "--output-dir", str(tmp_path))
        hint = "check the path"
    elif what == "reference":
        done = run_cli("xtts-zero-shot", str(missing) + ".wav", "Hi.", "--model-dir", str(tmp_path), "-o", str(tmp_path / "o.wav"))
        hint = "check the path"
    elif what == "voice model":
        done = run_cli("piper-infer", str(missing) + ".onnx", "Hi.", "-o", str(tmp_path / "o.wav"))
        hint = "models list"
    else:
        done = run_cli("piper-preprocess", "--input-dir", str(missing), "--output-dir", str(tmp_path / "prepared"))
        hint = "metadata.csv and wavs/"
    err = done.stderr.decode().strip()
    assert done.returncode == 3 and "not found" in err and hint in err and len(err.splitlines()) == 1, err


def test_a_demod_voice_folder_where_a_command_starts_is_not_imported_by_its_children(piper_voice, xtts_model, references, tmp_path):
    """``python -c`` and ``-m`` put the working folder first on the import path: a worker (and every other child: the
    training runner, upload and book readers, health's probes) started in a folder holding a ``demod_voice`` folder ran
    that code (another checkout's, or a downloaded folder's)."""
    here = tmp_path / "downloaded"
    fake = here / "demod_voice"
    (fake / "engine").mkdir(parents=True)
    marker = tmp_path / "ran"
    planted = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for name in ("__init__.py", "engine/__init__.py", "engine/worker.py"):
        (fake / name).write_text(planted)
    done = run_cli("piper-infer", str(piper_voice), "Hello there.", "-o", str(tmp_path / "a.wav"), cwd=here)
    assert done.returncode == 0, done.stderr.decode()
    done = run_cli("xtts-zero-shot", "--model-dir", str(xtts_model), str(references["ref.wav"]), "Hi.", "-o", str(tmp_path / "b.wav"),
                   cwd=here)
    assert done.returncode == 0, done.stderr.decode()
    run_cli("health", cwd=here)
    assert not marker.exists(), marker.read_text()
    assert soundfile.info(str(tmp_path / "a.wav")).frames > 0
