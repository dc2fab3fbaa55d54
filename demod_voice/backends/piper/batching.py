"""Several Piper sentences through the voice at once, each trimmed to its own length.

The voice's graph is prepared once per file (:mod:`.graph`) and cached beside onnxruntime's
optimised graphs: split into a batched front and a per-item decoder, or, failing that, one
masked graph. :class:`BatchSession` runs either; :func:`groups` chooses the batches.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends.piper.graph import MARK, WINDOWS

log = logging.getLogger(__name__)

MAX_PADDED_IDS = 2048
"""At most this many padded phoneme ids per batch (B x longest): bounds a batch's activations."""

VERSION = "3"
"""Part of the cache key of prepared graphs: bump when :mod:`.graph` changes what it writes."""


@dataclass(frozen=True)
class Prepared:
    """The voice's graph ready for batches: paths (or serialized bytes) for onnxruntime."""

    front: Any
    """The batched part (the whole masked graph when ``decoder`` is ``None``)."""
    decoder: Any = None
    """The per-item decoder of a split graph."""
    cached: bool = False
    """Read from the cache (a damaged entry is prepared again with ``fresh``)."""


def prepare(model_path: str, cache_dir: Optional[str], fresh: bool = False) -> Optional[Prepared]:
    """The voice's graph prepared for batching, cached in ``cache_dir`` when given (``fresh``:
    prepared again, whatever is cached); ``None`` when it cannot be (the voice then runs one
    sentence at a time)."""
    names = _cache_paths(model_path, cache_dir)
    if names is not None and not fresh:
        front, decoder, masked = names
        if front.is_file() and decoder.is_file():
            return Prepared(str(front), str(decoder), cached=True)
        if masked.is_file():
            return Prepared(str(masked), cached=True)
    try:
        import onnx
    except ImportError:
        log.warning("the onnx package is missing, so sentences run one at a time; install it with: pip install onnx")
        return None
    from demod_voice.backends.piper import graph

    model = onnx.load(model_path)
    durations = graph.expose_durations(model)
    if durations is None:
        return None
    parts = graph.split_graph(model, durations)
    if parts is None:
        graph.add_masks(model)
        parts = (model,)
    data = [part.SerializeToString() for part in parts]
    if names is not None:
        targets = names[:2] if len(data) == 2 else names[2:]
        if all(_write(target, blob) for target, blob in zip(targets, data, strict=True)):
            return Prepared(*map(str, targets))
    return Prepared(*data)


def _write(target: Path, data: bytes) -> bool:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as err:
        log.debug("could not cache a batching graph in %s (%s)", target, err)
        return False
    return True


def _cache_paths(model_path: str, cache_dir: Optional[str]) -> Optional[tuple[Path, Path, Path]]:
    if not cache_dir:
        return None
    stat = os.stat(model_path)
    key = f"{os.path.realpath(model_path)}|{stat.st_size}|{stat.st_mtime_ns}|batching-{VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    folder, stem = Path(cache_dir) / "onnx", Path(model_path).stem
    return folder / f"{stem}-front-{digest}.onnx", folder / f"{stem}-decoder-{digest}.onnx", folder / f"{stem}-masked-{digest}.onnx"


class BatchSession:
    """Runs prepared graphs: ``batch()`` for several sentences, ``run()`` as piper's single-sentence session."""

    def __init__(self, prepared: Prepared, open_session: Callable[[Any], Any]) -> None:
        self.front = open_session(prepared.front)
        self.decoder = open_session(prepared.decoder) if prepared.decoder is not None else None
        self.durations: str = self.front.get_modelmeta().custom_metadata_map[MARK]
        outputs = [o.name for o in self.front.get_outputs()]
        # split: the front's outputs are the decoder's inputs and the durations; masked: audio first.
        self.boundary = [name for name in outputs if name != self.durations] if self.decoder else []
        self.wanted = self.boundary + [self.durations] if self.decoder else [outputs[0], self.durations]
        self.context, self.hop = 0, 0
        """Frames of context a decoder window needs on each side, and audio samples per frame
        (both 0: the decoder cannot be run in windows)."""
        if self.decoder is not None:
            said = self.decoder.get_modelmeta().custom_metadata_map.get(WINDOWS, "0,0")
            self.context, self.hop = (int(v) for v in said.split(","))

    def get_providers(self) -> list[str]:
        """onnxruntime's providers of the session(s)."""
        return self.front.get_providers()

    def run(self, output_names: Any, feeds: dict[str, Any]) -> list[Any]:
        """piper's ``session.run(None, feeds)`` for one sentence: ``[audio [1, 1, 1, samples]]``."""
        ids = feeds["input"][0][: int(feeds["input_lengths"][0])]
        sid = feeds.get("sid")
        audio = self.batch([list(ids)], feeds["scales"], None if sid is None else int(sid.reshape(-1)[0]))[0]
        return [audio.reshape(1, 1, 1, -1)]

    def batch(self, ids: Sequence[Sequence[int]], scales: Any, speaker: Optional[int]) -> list[Any]:
        """One front run for ``ids`` (one list per sentence); each sentence's raw audio, trimmed to its length."""
        values, frames = self._front(ids, scales, speaker)
        if self.decoder is None:
            return _trimmed(values[0].reshape(len(ids), -1), frames)
        return [self.decoder.run(None, self._item(values, frames, row))[0].reshape(-1) for row in range(len(ids))]

    def stream(self, ids: Sequence[int], scales: Any, speaker: Optional[int], first: int, most: int) -> Iterator[Any]:
        """One sentence's raw audio in pieces, as soon as each is made: the front once, then the
        decoder over windows of frames, the first ``first`` frames long, each next one twice the
        last up to ``most``. Each window reads :attr:`context` frames beyond each side and keeps
        its middle, which equals the whole sentence's audio there; joined, the pieces are what
        :meth:`batch` gives (to float rounding)."""
        import numpy as np

        values, frames = self._front([ids], scales, speaker)
        inputs = self._item(values, frames, 0)
        count, context = int(frames[0]), self.context
        if not context or count <= first:
            yield self.decoder.run(None, inputs)[0].reshape(-1)
            return
        timed = {name for name, value in inputs.items() if value.shape[-1] == count}
        start, core = 0, max(1, first)
        while start < count:
            take = count - start if count - start < core + core // 2 else core  # no small last window
            low, high = max(0, start - context), min(count, start + take + context)
            feeds = {name: np.ascontiguousarray(value[..., low:high]) if name in timed else value for name, value in inputs.items()}
            audio = self.decoder.run(None, feeds)[0].reshape(-1)
            if len(audio) != (high - low) * self.hop:
                raise RuntimeError(f"the decoder gave {len(audio)} samples for {high - low} frames, not {self.hop} each")
            offset = (start - low) * self.hop
            yield audio[offset: offset + take * self.hop]
            start += take
            core = min(2 * core, max(most, first))

    def _front(self, ids: Sequence[Sequence[int]], scales: Any, speaker: Optional[int]) -> tuple[list[Any], Any]:
        """The front's outputs for ``ids`` padded into one batch, and each sentence's frame count."""
        import numpy as np

        count = len(ids)
        padded = np.zeros((count, max(len(item) for item in ids)), dtype=np.int64)
        for row, item in enumerate(ids):
            padded[row, : len(item)] = item
        feeds = {"input": padded, "input_lengths": np.array([len(item) for item in ids], dtype=np.int64), "scales": scales}
        if speaker is not None:
            feeds["sid"] = np.full(count, speaker, dtype=np.int64)
        *values, widths = self.front.run(self.wanted, feeds)
        frames = np.maximum(widths.reshape(count, -1).sum(axis=1), 1).astype(np.int64)
        return values, frames

    def _item(self, values: list[Any], frames: Any, row: int) -> dict[str, Any]:
        """The decoder's inputs for one sentence of a batch: its own frames only, so the decoder
        sees exactly what it sees one at a time."""
        longest = int(frames.max())
        return {name: (v[row : row + 1, ..., : frames[row]] if v.shape[-1] == longest else v[row : row + 1])
                for name, v in zip(self.boundary, values, strict=True)}


def _trimmed(audio: Any, frames: Any) -> list[Any]:
    hop, rest = divmod(audio.shape[1], int(frames.max()))
    if rest:
        raise RuntimeError(f"the voice's audio ({audio.shape[1]} samples) is not a whole number of frames ({int(frames.max())})")
    return [audio[row, : frames[row] * hop].copy() for row in range(len(frames))]


def groups(lengths: Sequence[int], most: int, max_padded: int = MAX_PADDED_IDS) -> list[list[int]]:
    """Indices of the sentences in batches: similar lengths together (sorted by phoneme count),
    at most ``most`` per batch and at most ``max_padded`` padded ids, sizes as even as the limits allow."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    while order:
        # Longest first, so the per-batch id budget is met by the batch it binds on.
        count = min(len(order), max(1, most))
        while count > 1 and count * lengths[order[-1]] > max_padded:
            count -= 1
        batches = -(-len(order) // count)
        size = -(-len(order) // batches)  # even sizes: 10 in fours is 4+3+3, not 4+4+2
        out.append(order[-size:])
        order = order[:-size]
    out.reverse()
    return out


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; nothing elsewhere).

    With onnxruntime's arena off, a sentence's activations (a medium voice's decoder holds
    100 MB and more for a long one) are malloc'd and freed each run; glibc keeps freed memory
    for reuse, so a worker's resident set swung with the longest recent sentence. Trimming after
    each batch keeps it at what is live.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        return
    if trim is not None:
        trim(0)

