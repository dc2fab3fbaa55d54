"""``batch`` over a long run (an overnight CSV of tens of thousands of rows, seen here on a few dozen): what the
parent process keeps per row, what a log file gets, what an interrupted run leaves."""

from __future__ import annotations

import gc

from demod_voice.backends.piper.request import ROWS_PER_BATCH
from demod_voice.batch import BatchRequest, run_batch
from demod_voice.config import load_config
from demod_voice.engine.handles import JobResult


def _rows(n: int) -> str:
    return "text,output\n" + "".join(f'"Line {i}, with a few more words to time.",line{i:03d}.wav\n' for i in range(n))


def test_a_long_run_keeps_no_result_of_the_rows_it_has_made(piper_voice, tmp_path):
    # Every row's result (a Piper row's with its word timings, ~3 KB for a short line, more for a long one) was
    # kept until the run's end: the parent grew ~4 KB a row (20 MB over 5,000 rows), linearly with the rows.
    sheet = tmp_path / "lines.csv"
    sheet.write_text(_rows(120))
    config, _ = load_config(without_file=True, overrides={"engine.workers": 1})
    alive: list[int] = []

    def watch(event) -> None:
        if event.kind == "row":
            gc.collect()
            alive.append(sum(1 for thing in gc.get_objects() if isinstance(thing, JobResult)))

    outcome = run_batch(BatchRequest(sheet, tmp_path / "out", config, model=str(piper_voice), on_progress=watch))
    assert outcome.done == 120 and len(alive) == 120
    # the worker's hand-over of rows (kept until the next one) and the one being recorded: not one per row made
    assert max(alive) <= ROWS_PER_BATCH * config.piper.batch_size + 1, alive
