"""``batch`` over a long run (an overnight CSV of tens of thousands of rows, seen here on a few dozen): what the
parent process keeps per row, what a log file gets, what an interrupted run leaves."""

from __future__ import annotations

import gc
import re

from demod_voice.backends.piper.request import ROWS_PER_BATCH
from demod_voice.batch import BatchRequest, run_batch
from demod_voice.config import load_config


def _rows(n: int) -> str:
    return "text,output\n" + "".join(f'"Line {i}, with a few more words to time.",line{i:03d}.wav\n' for i in range(n))


def test_a_long_run_keeps_no_result_of_the_rows_it_has_made(piper_voice, tmp_path, monkeypatch):
    # Every row's result, with a Piper row's word timings (~3 KB in memory for a short line, ~26 KB for a 100-word
    # one), was kept until the run's end: the parent grew with every row made. Counted: the results already recorded
    # (given to the run's on_result) that are still alive when the next one is (results made but still queued for the
    # recording are not kept ones; a busy CI machine queued ~70 of them).
    import weakref

    from demod_voice.engine.service import EngineService

    recorded: list = []
    alive: list[int] = []
    run = EngineService.run

    def counting(self, jobs, on_result=lambda result: None, *args, **kwargs):
        def recording(result):
            gc.collect()
            alive.append(sum(1 for ref in recorded if ref() is not None))
            recorded.append(weakref.ref(result))
            on_result(result)
        return run(self, jobs, recording, *args, **kwargs)

    monkeypatch.setattr(EngineService, "run", counting)
    sheet = tmp_path / "lines.csv"
    sheet.write_text(_rows(120))
    config, _ = load_config(without_file=True, overrides={"engine.workers": 1})
    outcome = run_batch(BatchRequest(sheet, tmp_path / "out", config, model=str(piper_voice)))
    assert outcome.done == 120 and len(alive) == 120
    # the worker's hand-over of rows (kept until the next one) and the one being recorded: not one per row made
    assert max(alive) <= ROWS_PER_BATCH * config.piper.batch_size + 1, alive


def test_a_run_into_a_log_file_says_how_far_it_is_with_a_line_now_and_then(piper_voice, tmp_path, monkeypatch, capsys):
    # stderr sent to a file (nohup, cron): no bar there, and a night's run said nothing until its summary
    from demod_voice.cli import batch as cli_batch
    from demod_voice.cli.main import main

    monkeypatch.setattr(cli_batch, "LINE_EVERY", 0.0, raising=False)
    sheet = tmp_path / "lines.csv"
    sheet.write_text(_rows(3) + "...,nothing.wav\n")
    code = main(["batch", str(sheet), "-o", str(tmp_path / "out"), "--model", str(piper_voice), "--workers", "1"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1  # the row of dots has nothing to say: it fails alone
    lines = [line for line in err if " of 4 rows (" in line]
    assert len(lines) == 4, err
    assert lines[-1].startswith("demod-voice: 4 of 4 rows (100%), 1 failed; ") and lines[-1].endswith(" left")
    assert re.search(r"; [\d.]+ rows/(s|min), under a minute left$", lines[-1]), lines
    assert "about under" not in "".join(lines), lines  # was "about under a minute"
    # a rerun would fail the row of dots again: told to change it, not to "rerun to retry" (sent round in circles)
    assert err[-1] == ("demod-voice: error: 1 row(s) failed, 0 not run; 1 of them because of the row itself (its line above "
                       "or in the report): change those rows and rerun the same command (finished rows are skipped)"), err
    assert main(["-q", "batch", str(sheet), "-o", str(tmp_path / "out"), "--model", str(piper_voice)]) == 1
    assert not [line for line in capsys.readouterr().err.splitlines() if " rows (" in line]  # -q: errors only


def test_the_report_a_killed_run_left_half_written_is_removed_by_the_next(piper_voice, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from conftest import BIN
    from processes import wait_for

    out = tmp_path / "out"
    sheet = tmp_path / "lines.csv"
    sheet.write_text(_rows(60))
    command = [sys.executable, str(BIN), "batch", str(sheet), "-o", str(out), "--model", str(piper_voice), "--workers", "1",
               "--report", str(out / "report.jsonl")]
    first = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / ".demod-voice-manifest.jsonl").is_file(), 120)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    assert [p.name for p in out.glob(".report.jsonl.*.partial")]  # what the kill left
    done = subprocess.run(command, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert not list(out.glob(".*.partial")) and (out / "report.jsonl").is_file()
