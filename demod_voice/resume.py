"""What makes ``batch`` resumable and safe: each row's fingerprint, the manifest of finished
outputs, the lock that keeps a second run out of a folder in use, and the JSON-lines report.

The manifest is appended one whole line per ``write`` under the lock, so it is never interleaved;
a line cut short by a crash or a full disk is dropped (and cut off) when the next run opens it.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from demod_voice.engine.jobs import SynthesisJob
from demod_voice.paths import os_error, temp_beside

log = logging.getLogger(__name__)

MANIFEST = ".demod-voice-manifest.jsonl"
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block ends, then act as they would have: a finished row's manifest line, count
    and report line are written together. (Python runs a signal's handler after the call it came in returns, most
    often the manifest's fsync: the line was on disk, the row missing from the report and the summary's count.) On
    the main thread only, and only for signals that have a Python handler; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    held = {number: signal.getsignal(number) for number in HELD_SIGNALS}
    swapped: list[tuple[int, Any]] = []
    try:
        # a handler may run (and raise) between two swaps: what was swapped is put back however the block ends
        for number, handler in held.items():
            if callable(handler):
                swapped.append((number, handler))
                signal.signal(number, lambda signum, frame: came.append(signum))
        yield
    finally:
        _put_back(swapped)
        for number in dict.fromkeys(came):
            signal.raise_signal(number)


def _put_back(handlers: list[tuple[int, Any]]) -> None:
    """Each signal's handler back, the later ones too when a handler just put back runs and raises."""
    if handlers:
        try:
            signal.signal(*handlers[0])
        finally:
            _put_back(handlers[1:])


def fingerprint(job: SynthesisJob) -> str:
    """Everything that shapes a job's audio: backend, model file identity, its side-car config
    (Piper's ``.onnx.json``: speaker map, inference scales), text, options."""
    model = Path(job.spec.model)
    weights = model / "model.pth" if model.is_dir() else model
    stat = weights.stat() if weights.exists() else None
    identity = [job.spec.backend, str(weights), stat.st_size if stat else 0, stat.st_mtime_ns if stat else 0]
    if job.spec.model_config:
        identity.append(_content_digest(job.spec.model_config))
    opts = job.options
    profile = getattr(opts, "profile", None)
    if profile is not None:
        # A profile stands for itself by its digest; copying and printing its arrays for every row would not.
        opts = dataclasses.replace(opts, profile=None)
    options = dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else repr(opts)
    if profile is not None:
        options["profile"] = profile.digest
    payload = json.dumps({"model": identity, "text": job.text, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _content_digest(path: str) -> str:
    """SHA-256 of a small file's bytes (by content: an edit that keeps the size and time still counts)."""
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return _digest_of(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def whole_lines(path: Path, what: str) -> tuple[list[str], Optional[int]]:
    """The complete lines of an append-only file (none if it is missing) and, when its last line was cut short
    (a crash mid-write), where that torn line starts, for the caller to cut it off; ``None`` otherwise.
    ``what`` names the file in the error when it cannot be read."""
    try:
        data = path.read_bytes() if path.is_file() else b""
    except OSError as err:
        raise os_error(f"cannot read {what}", err) from None
    complete, _, torn = data.rpartition(b"\n")
    return complete.decode("utf-8", "replace").splitlines(), (len(complete) + 1 if complete else 0) if torn else None


class Manifest:
    """Append-only record of finished outputs in the output folder (written only under :class:`OutputLock`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(os.path.abspath(folder))
        self.path = folder / MANIFEST
        self.entries: dict[str, dict[str, Any]] = {}
        self._fd: Optional[int] = None
        lines, torn_at = whole_lines(self.path, f"the manifest {self.path}")
        if torn_at is not None:
            # A line cut short by a crash (or a full disk): dropped, and cut off so the next entry starts a line.
            log.info("ignoring a torn last line in %s", self.path)
            self._truncate(torn_at)
        for line in lines:
            try:
                entry = json.loads(line)
                self.entries[self._name(entry["output"])] = entry
            except (ValueError, KeyError, TypeError):
                continue

    def _name(self, output: str) -> str:
        """An output's key: its path within the folder, so that a folder moved or copied elsewhere (another disk, another
        mount) still resumes. Entries written with absolute paths (before) match where they were written."""
        return os.path.normpath(os.path.relpath(output, self.folder) if os.path.isabs(output) else output)

    def _truncate(self, size: int) -> None:
        try:
            os.truncate(self.path, size)
        except OSError as err:
            raise os_error(f"cannot repair the manifest {self.path}", err) from None

    def complete(self, job: SynthesisJob, key: str) -> bool:
        """True when the output exists as recorded for exactly these inputs."""
        entry = self.entries.get(self._name(os.path.abspath(job.output)))
        if not entry or entry.get("key") != key:
            return False
        try:
            return os.path.getsize(job.output) == entry.get("size")
        except OSError:
            return False

    def record(self, job: SynthesisJob, key: str) -> None:
        """Append one entry as one write (a reader never sees half of two entries) and fsync it."""
        try:
            entry = {"output": self._name(os.path.abspath(job.output)), "key": key, "size": os.path.getsize(job.output)}
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            line = (json.dumps(entry) + "\n").encode("utf-8")
            if os.write(self._fd, line) != len(line):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(self._fd)
        except OSError as err:
            raise os_error(f"cannot record {job.describe()} in the manifest {self.path}", err) from None
        self.entries[entry["output"]] = entry

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Report:
    """JSON lines, one per row, written as rows finish into a temporary file renamed at the end."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self._handle = None
        if path is not None:
            try:
                self._tmp = temp_beside(path)
                self._handle = open(self._tmp, "w", encoding="utf-8")  # closed in close()
            except OSError as err:
                raise os_error(f"cannot write the report {path}", err) from None

    def add(self, line: int, status: str, output: str, duration: float = 0.0, seconds: float = 0.0, error: str = "",
            where: str = "") -> None:
        """One row's line (``line``: the CSV line the row starts on; ``where``: the worker that made it,
        ``local`` or a Ray node's ``IP/node``)."""
        if self._handle is None:
            return
        entry = {"row": line, "status": status, "output": output, "duration": round(duration, 3),
                 "seconds": round(seconds, 3), "error": error or None, "where": where or None}
        try:
            self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._handle.flush()
        except OSError as err:
            raise os_error(f"cannot write the report {self.path}", err) from None

    def close(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            handle.close()
            os.replace(self._tmp, self.path)
        except OSError as err:
            Path(self._tmp).unlink(missing_ok=True)
            raise os_error(f"cannot write the report {self.path}", err) from None
