"""Downloading files: progress bar, resumable, checksum-verified, and never visible half-done."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from demod_voice.errors import InputError, RuntimeFailure
from demod_voice.paths import os_error

log = logging.getLogger(__name__)

CHUNK = 1 << 16
TIMEOUT = 30


class Offline(RuntimeFailure):
    """The server could not be reached."""


def partial_path(dest: Path) -> Path:
    """Where an unfinished download of ``dest`` lives (kept between runs so it can resume)."""
    return dest.with_name(f".{dest.name}.part")


def fetch(url: str, dest: Path, size: Optional[int] = None, md5: Optional[str] = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest.part``, resuming what is there, verify, and return the verified part file.

    The caller renames it into place (so several files can appear together). A checksum or size
    mismatch deletes the part file and raises :class:`InputError`.
    """
    part = partial_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        if size is None or have < size:
            response = _open(url, have)
            told = have if response is None else None  # nothing past what is here (416): the server's file ends there
            if response is not None:
                with response:
                    # Without a size to check against, the server's own length is: a connection that
                    # drops early must not leave a short file that looks complete.
                    told = _stream(response, part, url, have, size, progress)
                    size = size if size is not None else told
            if size is not None and told is not None and told < size:  # not a cut: "run again to resume" would loop
                part.unlink(missing_ok=True)
                raise InputError(f"{url} is {told:,} bytes on the server, the catalog says {size:,}: the mirror and the "
                                 "catalog disagree (check models.catalog_url); nothing was kept")
        _verify(part, url, size, md5)
    except OSError as err:  # the network's errors are Offline already: these are the disk's
        raise os_error(f"cannot save the download of {url} in {dest.parent}", err) from None
    return part


def _open(url: str, have: int):
    """The HTTP response for the bytes from ``have`` on; ``None`` when the server says there are none left."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part file is already complete
            return None
        raise RuntimeFailure(f"downloading {url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise Offline(f"cannot reach {url} ({getattr(err, 'reason', err)})") from None


def _stream(response, part: Path, url: str, have: int, size: Optional[int], progress: bool) -> Optional[int]:
    """Append the response's bytes to ``part``; return the whole file's size as the server gave it (``None`` if it did not)."""
    from tqdm import tqdm

    resumed = bool(have) and response.status == 206
    if have and not resumed:
        log.info("the server ignored the resume request for %s; starting over", url)
        have = 0
    total = size or (have + int(response.headers.get("Content-Length") or 0)) or None
    bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name[1:-5], disable=not progress, leave=False,
               file=sys.stderr)
    with open(part, "ab" if resumed else "wb") as handle, bar:
        while True:
            try:
                block = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise Offline(f"the download of {url} broke off ({err!r}); run the same command again to resume") from None
            if not block:
                break
            handle.write(block)
            bar.update(len(block))
        handle.flush()
        os.fsync(handle.fileno())
    length = response.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _verify(part: Path, url: str, size: Optional[int], md5: Optional[str]) -> None:
    actual = part.stat().st_size
    if size is not None and actual != size:
        if actual < size:
            raise Offline(f"the download of {url} stopped at {actual} of {size} bytes; run the same command again to resume")
        part.unlink()
        raise InputError(f"{url} is {actual} bytes, the catalog says {size}; nothing was kept")
    if md5:
        digest = hashlib.md5(usedforsecurity=False)
        with open(part, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != md5.lower():
            part.unlink()
            raise InputError(f"{url} does not match its checksum (md5 {digest.hexdigest()}, expected {md5}); nothing was kept")
