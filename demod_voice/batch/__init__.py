"""``batch``: a CSV of rows to audio files.

- :mod:`demod_voice.batch.rows`: reading a batch file and the one policy for what a row may hold and
  name (the ``batch`` command, the server's batch jobs and the web page all use it);
- :mod:`demod_voice.batch.run`: rows to jobs on the engine, resumable and reported, progress through
  a callback (the CLI draws it; the batch code prints nothing).
"""

from demod_voice.batch.rows import COLUMNS, Row, read_rows
from demod_voice.batch.run import BatchRequest, Outcome, Progress, build_jobs, outcome_error, run_batch

__all__ = ["COLUMNS", "BatchRequest", "Outcome", "Progress", "Row", "build_jobs", "outcome_error", "read_rows", "run_batch"]
