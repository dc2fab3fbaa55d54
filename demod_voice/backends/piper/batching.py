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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.backends.piper.graph import MARK, WINDOWS
from demod_voice.backends.piper.layout import ONES
from demod_voice.devices import file_identity, release_memory
from demod_voice.paths import one_at_a_time, os_error

log = logging.getLogger(__name__)

MAX_PADDED_IDS = 2048
"""At most this many padded phoneme ids per batch (B x longest): bounds a batch's activations."""

GROWTH = 4
"""Each streamed window is this many times the last (up to the most). Every window recomputes its
context, so fewer windows cost less: a 10-word sentence on a medium voice, one thread, CPU time,
first window 13 frames: 342 ms doubling, 296 ms growing 4x, 240 ms whole (/tmp scripts, load 2-3).
Each next window is still ready long before the audio already sent has played (test_piper_streaming)."""

VERSION = "8"
"""Part of the cache key of prepared graphs: bump when :mod:`.graph` or :mod:`.layout` changes what it writes."""


@dataclass(frozen=True)
class Prepared:
    """The voice's graph ready for batches: paths (or serialized bytes) for onnxruntime."""

    front: Any
    """The batched part (the whole masked graph when ``decoder`` is ``None``)."""
    decoder: Any = None
    """The per-item decoder of a split graph."""
    flow: Any = None
    """The flow, cut off the front of a split graph where it can be (then it runs in windows too)."""
    cached: bool = False
    """Read from the cache (a damaged entry is prepared again with ``fresh``)."""


def prepare(model_path: str, cache_dir: Optional[str], fresh: bool = False, strict: bool = False) -> Optional[Prepared]:
    """The voice's graph prepared for batching, cached in ``cache_dir`` when given (``fresh``:
    prepared again, whatever is cached); ``None`` when it cannot be (the voice then runs one
    sentence at a time). A cache that cannot be written leaves the parts in memory, or, ``strict``, raises the
    disk's error in words (a full disk: :class:`~demod_voice.errors.OutputFull`)."""
    names = _cache_paths(model_path, cache_dir)
    if names is not None and not fresh:
        front, decoder, masked, flow = names
        if front.is_file() and decoder.is_file():  # the front is written last: the others are complete
            return Prepared(str(front), str(decoder), str(flow) if flow.is_file() else None, cached=True)
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
    data = {role: part.SerializeToString() for role, part in _parts(model, durations).items()}
    if names is not None:
        data = _kept(dict(zip(("front", "decoder", "masked", "flow"), names, strict=True)), data, model_path, strict)
    if "masked" in data:
        return Prepared(data["masked"])
    return Prepared(data["front"], data["decoder"], data.get("flow"))


def one_preparer(model_path: str, cache_dir: Optional[str]) -> AbstractContextManager[None]:
    """Held while a process prepares the voice at ``model_path`` into ``cache_dir`` and opens its parts (which caches
    onnxruntime's optimised graphs): the workers that start on a voice at once (``batch``'s and ``serve``'s, one per
    core) prepared it side by side, each ~1 s of a core and a peak of 435 MB against 193 MB from the cache (medium
    voice); now one does and the others wait for it and then load it from the cache (~0.15 s). Unguarded without a
    cache or where one cannot be locked."""
    names = _cache_paths(model_path, cache_dir)
    if names is None:
        return nullcontext()
    front = names[0]
    return one_at_a_time(front.with_name(f".{front.stem}.prepare.lock"),
                         waiting=lambda: log.debug("waiting for another process preparing %s", model_path))


def make_ready(model_path: str, cache_dir: str, device: str) -> None:
    """Prepare the voice's graphs into ``cache_dir`` and have onnxruntime optimise each, opened as a worker's first
    load opens them (:class:`BatchSession`, :func:`~demod_voice.devices.onnx_session`): run when a voice is installed,
    so that its first use loads both from the cache (a medium voice: ~1.2 s of each worker's first load, ~0.1 s from
    the cache). Raises what onnx or onnxruntime raise for a voice they cannot read."""
    from demod_voice.devices import onnx_session

    def opened(model: Any, bounded: bool = False, wide: bool = False) -> Any:
        return onnx_session(model, device, cache_dir, bounded, wide)[0]

    with one_preparer(model_path, cache_dir):
        prepared = prepare(model_path, cache_dir, strict=True)
        if prepared:
            BatchSession(prepared, opened)  # opening each part optimises it into the cache
        else:
            opened(model_path)


def cache_files(model_path: str, cache_dir: str) -> list[Path]:
    """The cache's entries for the voice at ``model_path`` as it is now: its prepared graphs and onnxruntime's optimised
    graph of each of them and of the voice itself (for the CPU and, where onnxruntime has one, the CUDA provider)."""
    from demod_voice.devices import onnx_providers, optimized_path

    parts = [Path(model_path), *(p for p in _cache_paths(model_path, cache_dir) or () if p.is_file())]
    try:
        providers = [onnx_providers(device)[0] for device in ("cpu", "gpu")]
    except Exception:  # noqa: BLE001 - no usable onnxruntime here (not installed, or its libraries fail to load)
        providers = []
    found = {*parts[1:], *(optimized_path(str(part), chosen, cache_dir) for part in parts for chosen in providers)}
    return sorted(p for p in found if p is not None and p.is_file())


def _parts(model: Any, durations: str) -> dict[str, Any]:
    """The prepared graphs by role, in the order they are written (the front last): split where the
    decoder (and the flow) begin, their convolutions lifted to 2-D (:mod:`.layout`); else masked."""
    from demod_voice.backends.piper import graph, layout

    split = graph.split_graph(model, durations)
    if split is None:
        graph.add_masks(model)
        return {"masked": model}
    front, decoder = split
    shapes = graph.value_shapes(model)  # one shape inference, for the flow's cut and for the lifting
    cut = graph.split_flow(front, durations, shapes)
    series = layout.time_series(shapes)
    # lifted only now: the splits have read each part's reach from its 1-D convolutions (graph.receptive_field)
    layout.lift(decoder, series)
    layout.blocked(decoder)  # its upsamplings and pre-activations in onnxruntime's channel blocks too
    if cut is None:
        return {"decoder": decoder, "front": front}
    layout.lift(cut[1], series)  # the flow: convolutions over time too
    # each flow run is one sentence's own frames, so its frame mask ([batch, 1, time], cast from a comparison in the
    # front) holds ones there
    casts = {node.output[0] for node in cut[0].graph.node if node.op_type == "Cast"}
    layout.unmasked(cut[1], layout.frame_masks(shapes) & casts, layout.wide_series(shapes))
    layout.blocked(cut[1])
    return {"flow": cut[1], "decoder": decoder, "front": cut[0]}


def _kept(paths: dict[str, Path], data: dict[str, bytes], model_path: str, strict: bool) -> dict[str, Any]:
    """The parts written into the cache (their paths), or, when the cache cannot be written, kept in memory (their
    bytes) or, ``strict``, the disk's error in words."""
    try:
        for role, blob in data.items():  # in order: the front last
            _write(paths[role], blob)
    except OSError as err:
        if strict:
            raise os_error(f"cannot keep the voice's prepared graphs in {paths['front'].parent}", err) from None
        log.debug("could not cache the prepared graphs of %s (%s)", model_path, err)
        return data
    return {role: str(paths[role]) for role in data}


def _write(target: Path, data: bytes) -> None:
    """``data`` into ``target`` through a temporary file, removed when the write fails (a full disk kept one for each
    try, which nothing removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _cache_paths(model_path: str, cache_dir: Optional[str]) -> Optional[tuple[Path, Path, Path, Path]]:
    if not cache_dir:
        return None
    key = f"{file_identity(model_path)}|batching-{VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    folder, stem = Path(cache_dir) / "onnx", Path(model_path).stem
    return (folder / f"{stem}-front-{digest}.onnx", folder / f"{stem}-decoder-{digest}.onnx", folder / f"{stem}-masked-{digest}.onnx",
            folder / f"{stem}-flow-{digest}.onnx")


class BatchSession:
    """Runs prepared graphs: ``batch()`` for several sentences, ``stream()`` for one sentence in windows,
    ``run()`` as piper's single-sentence session."""

    def __init__(self, prepared: Prepared, open_session: Callable[..., Any]) -> None:
        """``open_session(model, bounded=False, wide=False)`` opens each part (:func:`~demod_voice.devices.onnx_session`):
        a split voice's front is ``wide``, as it runs before every stream's first audio and is ~15% of a sentence."""
        self.front = open_session(prepared.front, wide=prepared.decoder is not None)
        # the decoder and the flow run in windows of bounded size (:attr:`most`): they may keep an arena
        self.decoder = open_session(prepared.decoder, bounded=True) if prepared.decoder is not None else None
        self.flow = open_session(prepared.flow, bounded=True) if prepared.flow is not None else None
        self.durations: str = self.front.get_modelmeta().custom_metadata_map[MARK]
        outputs = [o.name for o in self.front.get_outputs()]
        # split: the front's outputs feed the flow (if cut off) and the decoder, and the durations; masked: audio first.
        self.boundary = [name for name in outputs if name != self.durations] if self.decoder else []
        self.wanted = self.boundary + [self.durations] if self.decoder else [outputs[0], self.durations]
        self.context, self.hop, self.flow_context = 0, 0, 0
        """Frames of context a decoder window (a flow window) needs on each side, and audio samples
        per frame (0: the decoder cannot be run in windows)."""
        self.ones: Optional[str] = None
        """The flow's frame mask, taken out of it when prepared (:func:`.layout.unmasked`): every run's must be all ones."""
        self.most = 0
        """Frames in the largest decoder run of :meth:`batch` (0: whole sentences); the backend sets it from
        the voice's rate. With onnxruntime's arena on (:mod:`demod_voice.devices`), the arena holds what the
        largest run needed, so bounded runs keep a worker's memory flat whatever its sentences' lengths."""
        if self.decoder is None:
            return
        self.context, self.hop = _windows(self.decoder)
        made = set(self.boundary)
        if self.flow is not None:
            self.flow_context = _windows(self.flow)[0]
            self.ones = self.flow.get_modelmeta().custom_metadata_map.get(ONES)
            if not {i.name for i in self.flow.get_inputs()} <= made:
                raise RuntimeError("the prepared front does not make the flow's inputs")
            made |= {o.name for o in self.flow.get_outputs()}
        if not {i.name for i in self.decoder.get_inputs()} <= made:
            raise RuntimeError("the prepared graphs do not make the decoder's inputs")

    def get_providers(self) -> list[str]:
        """onnxruntime's providers of the session(s)."""
        return self.front.get_providers()

    def run(self, output_names: Any, feeds: dict[str, Any]) -> list[Any]:
        """piper's ``session.run(None, feeds)`` for one sentence: ``[audio [1, 1, 1, samples]]``."""
        ids = feeds["input"][0][: int(feeds["input_lengths"][0])]
        sid = feeds.get("sid")
        audio = self.batch([list(ids)], feeds["scales"], None if sid is None else int(sid.reshape(-1)[0]))[0]
        return [audio.reshape(1, 1, 1, -1)]

    def batch(self, ids: Sequence[Sequence[int]], scales: Any, speaker: Optional[int], durations: Optional[list] = None) -> list[Any]:
        """One front run for ``ids`` (one list per sentence); each sentence's raw audio, trimmed to its length.
        ``durations``, when given, gets each sentence's frames per phoneme id appended (word timings, :mod:`.timing`)."""
        import numpy as np

        values, frames = self._front(ids, scales, speaker, durations)
        if self.decoder is None:
            return _trimmed(values[self.wanted[0]].reshape(len(ids), -1), frames)
        # the front runs without an arena: its activations (20-50 MB for a batch of 8 medium-voice sentences) go back
        # now, not after the decodes, so a worker holds them only while the front runs (mean resident of `batch`'s
        # two workers and its own process on 120 rows: 688-711 MB trimmed after the decodes, 592-594 MB here, /tmp scripts)
        release_memory()
        # each sentence through the flow and the decoder alone (batching them measured no faster on a CPU), in
        # windows of at most :attr:`most` frames: a decoder run's memory is bounded whatever the sentence's length
        out = []
        for row in range(len(ids)):
            pieces = list(self.windows(self._item(values, frames, row), int(frames[row]), self.most, self.most))
            out.append(pieces[0] if len(pieces) == 1 else np.concatenate(pieces))
        return out

    @property
    def _audio(self) -> str:
        return self.decoder.get_outputs()[0].name

    def stream(self, ids: Sequence[int], scales: Any, speaker: Optional[int], first: int, most: int,
               durations: Optional[list] = None) -> Iterator[Any]:
        """One sentence's raw audio in pieces, as soon as each is made: the front once, then the
        decoder (and the flow, when it is cut off) over windows of frames, the first ``first``
        frames long, each next :data:`GROWTH` times the last up to ``most``. Each window reads
        :attr:`context` frames beyond each side (the flow :attr:`flow_context` more) and keeps
        its middle, which equals the whole sentence's audio there; joined, the pieces are what
        :meth:`batch` gives (to float rounding). ``durations`` as for :meth:`batch`, filled before the first window."""
        values, frames = self._front([ids], scales, speaker, durations)
        yield from self.windows(self._item(values, frames, 0), int(frames[0]), first, most)

    def windows(self, item: dict[str, Any], count: int, first: int, most: int) -> Iterator[Any]:
        """The audio of one sentence's ``count`` frames (its front's outputs: ``item``) in windows, the first
        ``first`` frames long, each next :data:`GROWTH` times the last, up to ``most`` (0: one window).

        The flow runs ahead of the decoder: past a stream's small first window, a flow run makes the frames of
        its window and of :data:`GROWTH` times as many after it, so the flow's context (33 frames each side on a
        medium voice) is paid once for several decoder windows (its activations are per frame: ~1 MB a tensor
        at ``most``, a small part of the decoder's per-sample ones). A file's sentence of up to ~5 windows
        takes one flow run."""
        if not self.context or not first or count <= first + first // 2:
            yield self._window(item, count, 0, count)
            return
        start, core, kept = 0, max(1, first), _Flowed()
        while start < count:
            take = count - start if count - start < core + core // 2 else core  # no small last window
            low, high = max(0, start - self.context), min(count, start + take + self.context)
            # a stream's small first window waits for its own frames only: its audio is the first a listener hears
            reach = high if core < most and start == 0 else min(count, high + GROWTH * core)
            audio = self._window(item, count, low, high, reach, kept)
            offset = (start - low) * self.hop
            yield audio[offset: offset + take * self.hop]
            start += take
            core = min(GROWTH * core, max(most, first))

    def _window(self, item: dict[str, Any], count: int, low: int, high: int, reach: Optional[int] = None,
                kept: Optional[_Flowed] = None) -> Any:
        """The decoder's audio for frames [low, high) of a sentence of ``count`` frames (its edges
        computed as if the sentence ended there: the caller keeps the middle). The flow's frames come
        from ``kept`` when its last run made them, else from a run over [low, ``reach``) (default ``high``)."""
        feeds = dict(item)
        if self.flow is not None:
            feeds.update(self._flowed(item, count, low, high, high if reach is None else reach, kept or _Flowed()))
        audio = _run(self.decoder, _frames(feeds, count, low, high))[self._audio].reshape(-1)
        if self.hop and len(audio) != (high - low) * self.hop:
            raise RuntimeError(f"the decoder gave {len(audio)} samples for {high - low} frames, not {self.hop} each")
        return audio

    def _flowed(self, item: dict[str, Any], count: int, low: int, high: int, reach: int, kept: _Flowed) -> dict[str, Any]:
        """The flow's outputs for frames [low, high): from ``kept``'s run if it made them, else from a new run whose
        outputs hold for [low, reach) (it reads :attr:`flow_context` frames more on each side), kept for the next window."""
        if not (kept.low <= low and high <= kept.high):
            run_low, run_high = max(0, low - self.flow_context), min(count, reach + self.flow_context)
            if self.ones is not None and not (item[self.ones][..., run_low:run_high] == 1).all():
                raise RuntimeError("the flow was prepared for whole frames, but this run's frame mask is not all ones")
            kept.outputs = _run(self.flow, _frames(item, count, run_low, run_high))
            kept.low, kept.high, kept.start, kept.count = low, reach, run_low, run_high - run_low
        return _frames(kept.outputs, kept.count, low - kept.start, high - kept.start)

    def _front(self, ids: Sequence[Sequence[int]], scales: Any, speaker: Optional[int],
               durations: Optional[list] = None) -> tuple[dict[str, Any], Any]:
        """The front's outputs by name for ``ids`` padded into one batch, and each sentence's frame count
        (each sentence's frames per id appended to ``durations`` when given)."""
        import numpy as np

        count = len(ids)
        padded = np.zeros((count, max(len(item) for item in ids)), dtype=np.int64)
        for row, item in enumerate(ids):
            padded[row, : len(item)] = item
        feeds = {"input": padded, "input_lengths": np.array([len(item) for item in ids], dtype=np.int64), "scales": scales}
        if speaker is not None:
            feeds["sid"] = np.full(count, speaker, dtype=np.int64)
        values = dict(zip(self.wanted, self.front.run(self.wanted, feeds), strict=True))
        widths = values.pop(self.durations)
        widths = widths.reshape(count, -1)
        frames = np.maximum(widths.sum(axis=1), 1).astype(np.int64)
        if durations is not None:
            durations.extend(widths[row, : len(item)].copy() for row, item in enumerate(ids))
        return values, frames

    @staticmethod
    def _item(values: dict[str, Any], frames: Any, row: int) -> dict[str, Any]:
        """One sentence's tensors from a batch: its own frames only, so what follows sees exactly
        what it sees one at a time."""
        longest = int(frames.max())
        return {name: (v[row : row + 1, ..., : frames[row]] if v.shape[-1] == longest else v[row : row + 1])
                for name, v in values.items()}


@dataclass
class _Flowed:
    """The flow's last run for one sentence: its outputs (``count`` frames from frame ``start``) hold
    for frames [low, high) (the rest lacked their context)."""

    low: int = 0
    high: int = 0
    start: int = 0
    count: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)


def _run(session: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``session`` on the values it takes; its outputs by name."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {i.name: values[i.name] for i in session.get_inputs()}), strict=True))


def _frames(values: dict[str, Any], count: int, low: int, high: int) -> dict[str, Any]:
    """Frames [low, high) of each of ``values`` that spans ``count`` frames; the others as they are."""
    import numpy as np

    if (low, high) == (0, count):
        return values
    return {name: np.ascontiguousarray(v[..., low:high]) if v.shape[-1] == count else v for name, v in values.items()}


def _windows(session: Any) -> tuple[int, int]:
    """(context, samples per frame) a prepared part was written with (:data:`WINDOWS`); (0, 0) if none."""
    said = session.get_modelmeta().custom_metadata_map.get(WINDOWS, "0,0")
    context, hop = (int(v) for v in said.split(","))
    return context, hop


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


if __name__ == "__main__":  # ``make_ready`` in a child process: python -m demod_voice.backends.piper.batching MODEL CACHE DEVICE
    import sys

    from demod_voice.errors import DemodVoiceError

    try:
        make_ready(*sys.argv[1:4])
    except DemodVoiceError as failed:  # the last line of stderr is what the installing command says
        print(failed, file=sys.stderr)
        sys.exit(1)
