"""Checking where outputs may go, before any work starts."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from demod_voice.errors import DemodVoiceError, InputError, OutputBusy, OutputFull, RuntimeFailure

log = logging.getLogger(__name__)


def check_output_path(path: Path, example: str = "speech.wav", flag: str = "--output", elsewhere: str = "") -> Path:
    """Return ``path`` made absolute if a file can be created there; else raise :class:`InputError`.

    Checked up front so that a typo in the directory fails in milliseconds, not after a model load. ``example``: the file
    name a directory given as the output is told to add; ``flag``: the option that named it; ``elsewhere``: what a device
    (``/dev/stdout``) is told to use instead of a file name.
    """
    path = path.expanduser().absolute()
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name such as {path / example}")
    if path.exists() and not path.is_file():  # written beside and renamed over: a device would be replaced by a file
        raise InputError(f"output {path} is not a regular file (a device, a pipe or a socket); give a file name{elsewhere}")
    parent = path.parent
    if not parent.is_dir():
        # "create it first (mkdir -p ...)" was the advice for a folder that is a file too, where mkdir fails
        blocker = next((folder for folder in (parent, *parent.parents) if folder.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise InputError(f"{blocker} is a file, not a folder, so {path.name} cannot be made in {parent}; choose another path")
        raise InputError(f"output directory {parent} does not exist; create it first (mkdir -p {parent})")
    if not can_create_in(parent):
        raise InputError(f"output directory {parent} is not writable; choose another {flag}")
    if len(path.name.encode("utf-8", "surrogatepass")) > NAME_MAX - TEMP_EXTRA:  # its temporary file's name would not fit
        raise InputError(f"output file name '{path.name[:40]}...' is longer than {NAME_MAX - TEMP_EXTRA} bytes; shorten it")
    return path



def not_an_input(output: str, inputs: Iterable[str]) -> None:
    """Raise :class:`InputError` when ``output`` is one of the recordings the job reads: written over, the recording was
    gone (``convert take.wav -o take.wav``, ``convert *.wav -o .`` in the takes' own folder, or a batch row whose output
    names its source replaced the user's takes with their conversions, exit 0). ``-`` (stdout) is no file."""
    for given in inputs:
        try:
            same = output != "-" and os.path.samefile(output, given)
        except OSError:  # either does not exist (yet): not the same file
            same = False
        if same:
            raise InputError(f"output {output} is the recording {given} itself: writing it would replace that recording; "
                             "give another output name or folder")


def can_create_in(directory: Path) -> bool:
    """Try it: permission bits say nothing for root, read-only mounts or full quotas."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".demod-voice-probe.")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


NAME_MAX = 255
"""Bytes in one file name on every common filesystem."""
TEMP_EXTRA = len("..XXXXXXXX.partial")
"""Bytes :func:`temp_beside` adds to an output's name (``.NAME.XXXXXXXX.partial``): the output's own name leaves room."""
OUTSIDE_FLAG = "--allow-outside-output-dir"


def name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot become one file name inside a folder (``None`` when it can).

    A plain name: not empty, not ``.`` or ``..``, no ``/`` or ``\\``, no control characters
    (NUL, newline), short enough for the filesystem. Names from data (dataset ids, speakers,
    catalog keys) pass here before they touch a path.
    """
    if not name or name in (".", ".."):
        return "an empty name, '.' or '..'"
    if "/" in name or "\\" in name:
        return "a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX - 16:
        return "more than 239 bytes"
    return None


def check_plain_name(name: str, what: str) -> str:
    """``name`` if :func:`name_problem` finds nothing; else :class:`InputError` naming ``what`` it is."""
    problem = name_problem(name)
    if problem:
        raise InputError(f"{what} '{name[:80]}' cannot become a file name: it has {problem}; use a plain name")
    return name


def confined_output(root: Path, value: str, allow_outside: bool = False) -> Path:
    """Where an output named in data goes: inside ``root``, or :class:`InputError`.

    A relative path is taken under ``root``; an absolute one (as the original tool's CSV has them)
    is accepted when it lies inside ``root``, and anywhere only with ``allow_outside``
    (:data:`OUTSIDE_FLAG`, typed by the user; never offered to a remote client). Refused:
    ``..`` components, and any existing symlink on the way (a link inside the output directory
    could point anywhere).
    """
    text = value.strip()
    if not text:
        raise InputError("the output is empty")
    if any(ord(c) < 32 for c in text):
        raise InputError(f"output {text!r} holds a control character")
    path = Path(text)
    if path.is_absolute():
        inside = _inside(root, Path(os.path.normpath(text)))
        if inside is None:
            if allow_outside:
                return Path(os.path.normpath(text))
            raise InputError(f"output '{text}' lies outside the output directory {root}; give a path inside it, "
                             f"or pass {OUTSIDE_FLAG} to write there")
        path = inside
    if not path.parts:
        raise InputError(f"output '{text}' names the output directory itself; give a file name")
    if ".." in path.parts:
        raise InputError(f"output '{text}' climbs out of the output directory with '..'")
    long = [part for part in path.parts[:-1] if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX]
    if long:
        raise InputError(f"output '{text[:80]}...' has a folder name longer than {NAME_MAX} bytes")
    # a name the filesystem takes but its temporary file does not failed at write time, "rerun to retry" on every rerun
    if len(path.name.encode("utf-8", "surrogatepass")) > NAME_MAX - TEMP_EXTRA:
        raise InputError(f"output '{text[:80]}...' has a file name longer than {NAME_MAX - TEMP_EXTRA} bytes; shorten it")
    return _unlinked(root, path, text)


def _unlinked(root: Path, path: Path, text: str) -> Path:
    """``root / path`` when no existing part of it is a symbolic link and it resolves inside ``root``."""
    node = root
    for part in path.parts:
        node = node / part
        if node.is_symlink():
            raise InputError(f"output '{text}' goes through the symbolic link {node}; outputs may not follow links")
    target = root / path
    if not target.resolve().is_relative_to(root.resolve()):
        raise InputError(f"output '{text}' resolves outside the output directory")
    return target


def _inside(root: Path, absolute: Path) -> Optional[Path]:
    """``absolute`` relative to ``root`` (as given, or with its links resolved), or ``None`` when outside."""
    for base in dict.fromkeys((root.absolute(), root.resolve())):
        if absolute.is_relative_to(base) and absolute != base:
            return absolute.relative_to(base)
    return None


def os_error(doing: str, err: OSError) -> DemodVoiceError:
    """An ``OSError`` as one line saying what was being done: :class:`OutputFull` for a full disk or
    quota, :class:`InputError` for permissions, read-only filesystems and paths that are not there, else :class:`RuntimeFailure`."""
    cause = err.strerror or str(err) or type(err).__name__
    named = err.filename and str(err.filename) not in doing and not str(err.filename).endswith(".partial")  # gone by now
    where = f" ({err.filename})" if named else ""
    message = f"{doing}: {cause}{where}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputFull(f"{message}; free some space and run the same command again")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InputError(f"{message}; check the folder's permissions, or choose another place")
    if err.errno == errno.ENOENT:  # a folder that cannot be made there (under /proc), or a path gone while in use
        return InputError(f"{message}; check the path, or choose another place")
    if err.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG):
        return InputError(f"{message}; a file stands where a folder should be (or the reverse): choose another path")
    return RuntimeFailure(message)


def temp_beside(target: Path) -> Path:
    """A new empty hidden file in ``target``'s folder (same filesystem, so a rename is atomic), with the mode a new file
    gets under the umask (``mkstemp`` makes it 0600: reports, captions and books were readable by their owner only)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        os.fchmod(fd, 0o666 & ~umask())
    finally:
        os.close(fd)
    return Path(name)


def sweep_partials(targets: Iterable[Path]) -> int:
    """Remove the temporary files (:func:`temp_beside`) that a killed run left beside ``targets`` (never trusted, but
    never removed either: a 50,000-row batch killed twice left its half-written files beside the finished ones). Only
    under the folder's :class:`OutputLock`, when no other run can be writing them. Returns how many went."""
    folders: dict[Path, set[str]] = {}
    for target in targets:
        folders.setdefault(Path(target).parent, set()).add(Path(target).name)
    removed = 0
    for folder, names in folders.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if not (name.startswith(".") and name.endswith(".partial")):
                continue
            if name[1:-len(".partial")].rpartition(".")[0] in names and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    continue
    return removed


_UMASK: Optional[int] = None


def umask() -> int:
    """The process's umask, read once: from ``/proc`` where it is there, else by setting it and back (which, for a moment,
    would give another thread's new file no mask)."""
    global _UMASK
    if _UMASK is None:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                _UMASK = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
        except (OSError, StopIteration, ValueError, IndexError):
            _UMASK = os.umask(0)
            os.umask(_UMASK)
    return _UMASK


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``, on any failure it is removed.

    Every file this program writes goes through here (or through :class:`audio.FileSink`), so no
    reader ever sees half a file.
    """
    tmp = temp_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_paths(*targets: Path) -> Iterator[tuple[Path, ...]]:
    """:func:`atomic_path` for files that belong together (a voice's ``.onnx`` and ``.onnx.json``): yield a temporary
    path per target; when all are written they replace their targets, and on any failure none does, so each target is as
    it was (a failed export over a voice left the new config beside the old model, which then spoke it silently)."""
    temps: list[Path] = []
    try:
        for target in targets:
            temps.append(temp_beside(target))
        yield tuple(temps)
        _replace_together(temps, targets)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _replace_together(temps: Sequence[Path], targets: Sequence[Path]) -> None:
    """Rename each temporary over its target; should a rename fail, the targets renamed before it get their old files
    back (kept meanwhile under a second name: a hard link, no copy) or go, where there were none."""
    done: list[tuple[Path, Optional[Path]]] = []
    try:
        for tmp, target in zip(temps, targets, strict=True):
            done.append((target, _second_name(target)))
            os.replace(tmp, target)
    except BaseException:
        for target, old in reversed(done):
            if old is not None:
                os.replace(old, target)
            else:
                target.unlink(missing_ok=True)
        raise
    finally:
        for _, old in done:
            if old is not None:
                old.unlink(missing_ok=True)


def _second_name(target: Path) -> Optional[Path]:
    """A hidden hard link to ``target``'s file (removed like any ``.partial`` if a killed run leaves it), or ``None``."""
    if not target.is_file():
        return None
    old = temp_beside(target)
    old.unlink()  # only its unique name is wanted
    try:
        os.link(target, old)
    except OSError:  # a filesystem without hard links: this target cannot be put back
        return None
    return old


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def copy_together(*pairs: tuple[Path, Path]) -> None:
    """Copy each (source, target) pair: all targets replaced, or none (:func:`atomic_paths`)."""
    with atomic_paths(*(target for _, target in pairs)) as temps:
        for (source, _), tmp in zip(pairs, temps, strict=True):
            shutil.copyfile(source, tmp)


@contextmanager
def one_at_a_time(path: Path, waiting: Optional[Callable[[], None]] = None,
                  failed: Optional[Callable[[OSError], Exception]] = None) -> Iterator[None]:
    """One holder at a time of the ``flock`` on ``path`` (made, with its folder, when missing): a second process waits
    for the first (``waiting()`` is called once when it has to) and then runs. The holder removes the file, so a waiter
    that finds its file gone takes a new one. The kernel drops a lock when its holder ends, however it ends.

    A lock file that cannot be made raises ``failed(err)``, or without ``failed`` runs unguarded, as on a filesystem
    without locks (some network mounts)."""
    import fcntl

    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if failed is not None:
                raise failed(err) from None
            log.debug("cannot make the lock file %s (%s); running unguarded", path, err)
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
                waiting = None
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: unguarded
            os.close(fd)
            yield
            return
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break  # the lock file still in place: this process holds it
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed it when it finished: take a new one
    try:
        yield
    finally:
        try:
            path.unlink()  # while held: a waiter sees its file gone and takes a new one
        except OSError:
            pass
        os.close(fd)


LOCK = ".demod-voice.lock"


class OutputLock:
    """One run per output folder (a batch, a book, a training run): an ``flock`` on a file in it. The kernel drops the
    lock when its holders end, however they end, so a crashed run never leaves the folder stuck."""

    def __init__(self, folder: Path, what: str = "batch", option: str = "--output-dir") -> None:
        self.path = folder / LOCK
        self.what = what
        """What runs there, in messages ("batch", "book")."""
        self.option = option
        """The option that names another folder (``--work-dir`` for a book's folder of takes)."""
        self._fd: Optional[int] = None

    def fileno(self) -> int:
        """The locked file's descriptor: a child process given it holds the lock too, for as long as it lives."""
        if self._fd is None:
            raise ValueError("the lock is not held")
        return self._fd

    def __enter__(self) -> OutputLock:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise os_error(f"cannot create the lock file {self.path}", err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise OutputBusy(f"{self.path.parent} is in use by another {self.what} (pid {holder}); "
                             f"wait for it to finish, or choose another {self.option}") from None
        except OSError as err:  # a filesystem without locks (some network mounts): run, but say what is unguarded
            log.warning("cannot lock %s (%s); a second %s into this folder would not be noticed", self.path, err.strerror,
                        self.what)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # only to name the holder in the message above
        except OSError:
            pass
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock; the file stays (removing it would race a new holder)
            self._fd = None
