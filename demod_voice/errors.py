"""One exception family; each kind carries the exit code ``cli.main`` returns for it.

Exit codes (documented in docs/cli.md):
    0  success
    1  runtime failure: synthesis failed, a worker died, a model would not run
    2  usage error: the command line itself is wrong (argparse uses 2 as well)
    3  bad input: a missing or unreadable file, bad text, bad config, bad speaker
    4  missing dependency: a package or program the command needs is not installed
    130 interrupted (Ctrl-C)
    141 stdout's reader went away (``| head``): a quiet end, as a process killed by SIGPIPE
    143 terminated (SIGTERM): as Ctrl-C
"""

from __future__ import annotations


class DemodVoiceError(Exception):
    """Base of every error the user is meant to read. ``str(err)`` is one line that says what to do."""

    exit_code = 1


class RuntimeFailure(DemodVoiceError):
    """Work was attempted and failed: an engine error, a dead worker."""

    exit_code = 1


class UsageError(DemodVoiceError):
    """The command line is wrong in a way argparse cannot see."""

    exit_code = 2


class InputError(DemodVoiceError):
    """A file, text, speaker or value given by the user is not usable."""

    exit_code = 3


class ConfigError(InputError):
    """The config file or a ``DEMOD_VOICE_*`` variable is invalid."""


class NothingToSpeak(InputError):
    """The text has no words a voice can say once read (a scene break, a bare pause): the only error a ``book`` take may
    be left out for; every other one stops the book (a lexicon typo dropped every sentence naming a character)."""


class ModelMissing(InputError):
    """A model or voice that the work needs is not usable on this machine: not downloaded, a configured folder missing or
    incomplete, an installed voice profile damaged. ``str(err)`` tells a command's user what to do (paths included);
    :attr:`server_message` is what a server's client is told (the administrator's part, with no paths and no
    command-line flags), with a 503 and :attr:`code`."""

    def __init__(self, message: str, server_message: str, code: str = "model_missing") -> None:
        super().__init__(message)
        self.server_message = server_message
        self.code = code


class DependencyError(DemodVoiceError):
    """A Python package or system program that the command needs is missing or broken."""

    exit_code = 4


class Cancelled(RuntimeFailure):
    """A job was cancelled by its client (a disconnect, a deadline, Ctrl-C) before it finished."""


class QueueFull(RuntimeFailure):
    """The engine's queue of waiting jobs is at its limit (``engine.max_queued``); try again later."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds after which a retry may find room."""


class OutputFull(RuntimeFailure):
    """The output's filesystem is full (or over quota): nothing more can be written until space is freed."""


class OutputBusy(RuntimeFailure):
    """Another run holds the output folder (a second ``batch`` into the same folder)."""


class PipeClosed(RuntimeFailure):
    """The reader of stdout went away (``| head``): the command ends quietly, the Unix way."""


class Interrupted(DemodVoiceError):
    """The user pressed Ctrl-C; finished outputs are intact, unfinished ones removed."""

    exit_code = 130


_BY_NAME = {cls.__name__: cls for cls in (RuntimeFailure, UsageError, InputError, ConfigError, NothingToSpeak, DependencyError,
                                            Interrupted, Cancelled, OutputFull, OutputBusy, PipeClosed)}
"""Kinds rebuilt from the wire (a :class:`ModelMissing` raised in a worker arrives as an :class:`InputError`)."""


def to_wire(error: DemodVoiceError) -> tuple[str, str]:
    """Flatten an error to (kind, message) so it can cross the worker pipe without pickling classes."""
    return type(error).__name__, str(error)


def from_wire(kind: str, message: str) -> DemodVoiceError:
    """Rebuild an error sent by :func:`to_wire`; unknown kinds become :class:`RuntimeFailure`."""
    return _BY_NAME.get(kind, RuntimeFailure)(message)
