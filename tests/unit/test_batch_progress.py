"""What ``batch`` says of its progress where stderr is a log file (``nohup``, ``2> run.log``): no bar there."""

from __future__ import annotations

from demod_voice.batch.run import Progress
from demod_voice.cli import batch


def test_a_log_files_progress_line_says_the_rate_as_well_as_the_time_left(monkeypatch):
    """An overnight run's line said "3,000 of 50,000 rows (6%), 2 failed; about 2 h 37 min left": how fast it went (to
    size the next night's sheet, or to see it slow down as the night goes on) only by subtracting two lines' counts."""
    clock = [100.0]
    monkeypatch.setattr(batch.time, "monotonic", lambda: clock[0])
    console = batch.Console(bar=False, quiet=False)
    console(Progress("start", total=50_000))
    clock[0] += 600
    assert console._line(3000, 2) == "3,000 of 50,000 rows (6%), 2 failed; 5.0 rows/s, about 2 h 37 min left"
    assert console._line(30, 0) == "30 of 50,000 rows (0%), 0 failed; 3.0 rows/min, about 277 h 37 min left"
