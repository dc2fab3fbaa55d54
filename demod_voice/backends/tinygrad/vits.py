"""Piper's VITS inference pass written natively in tinygrad.

Why native rather than tinygrad's ONNX importer: the exported graph samples noise with
``RandomNormalLike`` (unsupported), scatters with ``ScatterND`` (broken) and is so full of
shape arithmetic that the lazy graph does not compile; run eagerly it matched onnxruntime
but at 65-91x real time (../shared/PITFALLS.md). Written as tensors, the same model is a
few hundred fused kernels.

The pass is split where VITS has a data-dependent shape: :meth:`TinyVits.encode` runs the
text encoder and the stochastic duration predictor over the phonemes; the durations are
rounded on the host; :meth:`TinyVits.decode` runs the flow and the HiFi-GAN decoder over
the frames. Both take inputs padded up to a few fixed lengths with a mask (as VITS is
trained on padded batches): the encoder runs at a few bucketed lengths and the decoder in
windows of two fixed sizes, so a sentence of a new length reuses kernels compiled for an
earlier one. Each shape is captured once by ``TinyJit`` and then replayed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import numpy as np
from tinygrad import Tensor, TinyJit

from demod_voice.backends.tinygrad import schedule as tinygrad_schedule
from demod_voice.backends.tinygrad.layers import Conv, gelu, inverse_spline, layer_norm
from demod_voice.backends.tinygrad.onnx_weights import VitsWeights, read_shape, receptive_field

LRELU_SLOPE = 0.1
PHONEME_BUCKETS = (64, 128, 256, 512)
MIN_WINDOW_CORE = 128
"""Fewest frames a decoder window keeps beyond its context. The window itself is the next power of
two: tinygrad's kernel heuristics split such lengths evenly across threads and vector lanes. Measured
on the medium voice, per frame: 3.1 ms at 256 frames and 3.5 ms at 512, but 7.3 ms at 186, 5.0 ms at
346 (2 x 173) and 8.1 ms at 384. There are two window sizes, that one and twice it: a sentence
that fits the larger runs whole, in the smaller one when it can; a longer one is cut into windows of
the larger size, where the context repeated at each cut costs less (90 of 512 frames rather than 90
of 256 for the medium voice)."""


class Gate:
    """Lets models on different devices replay their captured kernels side by side, while a first
    run of a shape (eager, or being captured by ``TinyJit``, which collects every kernel run
    anywhere in the process meanwhile) happens alone."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._alone = False

    @contextmanager
    def enter(self, alone: bool) -> Iterator[None]:
        """Hold the gate for one call: shared for a replay, alone for a first run."""
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not (alone and self._running))
            self._running += 1
            self._alone = alone
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._alone = False
                self._changed.notify_all()


GATE = Gate()
"""One per process: every :class:`TinyVits` shares it."""


def _replaying(run: Any) -> bool:
    """Whether ``TinyJit`` has captured this function and now only replays it."""
    return getattr(run, "cnt", 0) >= 2


def phoneme_bucket(length: int) -> int:
    """The padded length a sentence of ``length`` phonemes runs at: few sizes, so few compilations."""
    for size in PHONEME_BUCKETS:
        if length <= size:
            return size
    return -(-length // PHONEME_BUCKETS[-1]) * PHONEME_BUCKETS[-1]


class Model:
    """Holds tensors by name; the parts below share its lookup."""

    def __init__(self, weights: VitsWeights, device: str) -> None:
        self.weights = weights
        self.device = device
        self._convs: dict[str, Conv] = {}
        self._tensors: dict[str, Tensor] = {}

    def conv(self, path: str) -> Conv:
        if path not in self._convs:
            self._convs[path] = Conv(self.weights.conv(path), self.device)
        return self._convs[path]

    def tensor(self, name: str) -> Tensor:
        if name not in self._tensors:
            self._tensors[name] = Tensor(self.weights.tensor(name).astype(np.float32), device=self.device).realize()
        return self._tensors[name]

    def norm(self, x: Tensor, path: str) -> Tensor:
        return layer_norm(x, self.tensor(f"{path}.gamma"), self.tensor(f"{path}.beta"))


class TinyVits(Model):
    """The generator's inference pass: ``encode`` over phonemes, ``decode`` over frames."""

    def __init__(self, weights: VitsWeights, device: str, windows: Optional[tuple[int, ...]] = None) -> None:
        tinygrad_schedule.install()  # before anything is compiled
        super().__init__(weights, device)
        self.shape = read_shape(weights)
        self.hop = int(np.prod([self.conv(f"dec.ups.{i}").spec.stride for i in range(self.shape.upsamples)]))
        self._encoders: dict[int, Any] = {}
        self._decoder_jits: dict[int, Any] = {}
        self._index_cache: dict[str, list[int]] = {}
        self._load_all()
        self.context = receptive_field(weights, self.shape)
        if not windows:
            small = 1 << (2 * self.context + MIN_WINDOW_CORE - 1).bit_length()
            windows = (small, 2 * small)
        self.windows = tuple(sorted(windows))
        self.window = self.windows[-1]  # the size long sentences are cut into
        if self.window <= 2 * self.context:
            raise ValueError(f"a decoder window of {self.window} frames leaves nothing beside its {self.context} frames of context")

    def _load_all(self) -> None:
        """Move every weight to the device now, so the first sentence does not pay for it."""
        for path in self.weights.convs:
            if not path.startswith(("enc_q", "dp.post")):
                self.conv(path)
        for name in self.weights.tensors:
            if name.startswith(("enc_p", "dp", "emb_g")) and not name.startswith("dp.post"):
                self.tensor(name)

    # ----- text encoder ---------------------------------------------------------------

    def _attention(self, x: Tensor, layer: int, key_mask: Tensor) -> Tensor:
        s, path = self.shape, f"enc_p.encoder.attn_layers.{layer}"
        length = x.shape[2]
        k_channels = s.hidden // s.heads
        q = self.conv(f"{path}.conv_q")(x).reshape(1, s.heads, k_channels, length).transpose(2, 3) / math.sqrt(k_channels)
        k = self.conv(f"{path}.conv_k")(x).reshape(1, s.heads, k_channels, length)
        v = self.conv(f"{path}.conv_v")(x).reshape(1, s.heads, k_channels, length).transpose(2, 3)
        rel_k = self.tensor(f"{path}.emb_rel_k").unsqueeze(0)  # [1, h or 1, 2w+1, d]
        rel_v = self.tensor(f"{path}.emb_rel_v").unsqueeze(0)
        scores = q @ k + self._relative_to_absolute(q @ rel_k.transpose(2, 3), length)
        scores = key_mask.where(scores, -1e4)
        weights = scores.softmax(-1)
        out = weights @ v + self._absolute_to_relative(weights, length) @ rel_v
        return self.conv(f"{path}.conv_o")(out.transpose(2, 3).reshape(1, s.hidden, length))

    def _relative_to_absolute(self, rel: Tensor, length: int) -> Tensor:
        """[.., L, 2w+1] logits by offset -> [.., L, L] by key, zero outside the window.

        Row i is padded to width L+2w+1 and the rows are laid end to end, then read back
        with one column less: that shifts row i right by i, so offset d lands at key i+d.
        """
        window = self.shape.window
        width = length + 2 * window + 1
        heads = rel.shape[1]
        flat = rel.pad((None, None, None, (0, length))).reshape(1, heads, length * width)
        shifted = flat.shrink((None, None, (0, length * (width - 1)))).reshape(1, heads, length, width - 1)
        return shifted.shrink((None, None, None, (window, window + length)))

    def _absolute_to_relative(self, weights: Tensor, length: int) -> Tensor:
        """[.., L, L] attention by key -> [.., L, 2w+1] by offset (the inverse shift)."""
        window = self.shape.window
        width = length + 2 * window + 1
        heads = weights.shape[1]
        padded = weights.pad((None, None, None, (window, window + 1))).reshape(1, heads, length * width)
        shifted = padded.pad((None, None, (0, length))).reshape(1, heads, length, width + 1)
        return shifted.shrink((None, None, None, (0, 2 * window + 1)))

    def _ffn(self, x: Tensor, layer: int, mask: Tensor) -> Tensor:
        path, kernel = f"enc_p.encoder.ffn_layers.{layer}", self.shape.ffn_kernel
        pad = ((kernel - 1) // 2, kernel // 2)
        y = self.conv(f"{path}.conv_1")((x * mask).pad((None, None, pad))).relu()
        return self.conv(f"{path}.conv_2")((y * mask).pad((None, None, pad))) * mask

    def _text_encoder(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s = self.shape
        x = self.tensor("enc_p.emb.weight")[ids].transpose(1, 2) * math.sqrt(s.hidden) * mask
        key_mask = mask.reshape(1, 1, 1, -1) > 0
        for layer in range(s.encoder_layers):
            x = self.norm(x + self._attention(x, layer, key_mask), f"enc_p.encoder.norm_layers_1.{layer}")
            x = self.norm(x + self._ffn(x, layer, mask), f"enc_p.encoder.norm_layers_2.{layer}")
        x = x * mask
        stats = self.conv("enc_p.proj")(x) * mask
        return x, stats[:, : s.inter], stats[:, s.inter:]

    # ----- stochastic duration predictor (reverse) -------------------------------------

    def _dds(self, x: Tensor, mask: Tensor, path: str, g: Optional[Tensor] = None) -> Tensor:
        if g is not None:
            x = x + g
        for i in range(self.shape.dds_layers):
            y = gelu(self.norm(self.conv(f"{path}.convs_sep.{i}")(x * mask), f"{path}.norms_1.{i}"))
            y = gelu(self.norm(self.conv(f"{path}.convs_1x1.{i}")(y), f"{path}.norms_2.{i}"))
            x = x + y
        return x * mask

    def _conv_flow(self, z: Tensor, mask: Tensor, cond: Tensor, index: int) -> Tensor:
        s, path = self.shape, f"dp.flows.{index}"
        z0, z1 = z[:, :1], z[:, 1:]
        h = self._dds(self.conv(f"{path}.pre")(z0), mask, f"{path}.convs", g=cond)
        h = self.conv(f"{path}.proj")(h) * mask  # [1, 3*bins-1, t]
        h = h.reshape(1, 1, 3 * s.bins - 1, -1).permute(0, 1, 3, 2)
        scale = math.sqrt(s.filter_channels)
        z1 = inverse_spline(z1, h[..., : s.bins] / scale, h[..., s.bins: 2 * s.bins] / scale, h[..., 2 * s.bins:], s.bins)
        return z0.cat(z1, dim=1) * mask

    def _durations(self, x: Tensor, mask: Tensor, g: Optional[Tensor], noise: Tensor) -> Tensor:
        """Log-durations [1, 1, t] from the duration predictor run backwards from ``noise``."""
        x = self.conv("dp.pre")(x)
        if g is not None:
            x = x + self.conv("dp.cond")(g)
        x = self.conv("dp.proj")(self._dds(x, mask, "dp.convs")) * mask
        z = noise
        for index in self.shape.dp_flows:
            z = self._conv_flow(z.flip(1), mask, x, index)
        m = self.tensor("dp.flows.0.m").reshape(1, 2, 1)
        logs = self.tensor("dp.flows.0.logs").reshape(1, 2, 1)
        z = (z.flip(1) - m) * (-logs).exp() * mask
        return z[:, :1]

    def _speaker(self, speaker: Tensor) -> Optional[Tensor]:
        if self.shape.speakers <= 1:
            return None
        return self.tensor("emb_g.weight")[speaker].reshape(1, -1, 1)

    def _encode_padded(self, ids: Tensor, mask: Tensor, speaker: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, m_p, logs_p = self._text_encoder(ids, mask)
        logw = self._durations(x, mask, self._speaker(speaker), noise)
        Tensor.realize(logw, m_p, logs_p)  # one schedule for the three outputs
        return logw, m_p, logs_p

    def encode(self, ids: np.ndarray, speaker: int, noise_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Phoneme ids [t] -> (log-durations [t], means [inter, t], log-scales [inter, t])."""
        length = len(ids)
        size = phoneme_bucket(length)
        padded = np.zeros((1, size), dtype=np.int32)
        padded[0, :length] = ids
        mask = np.zeros((1, 1, size), dtype=np.float32)
        mask[..., :length] = 1.0
        noise = np.zeros((1, 2, size), dtype=np.float32)
        noise[..., :length] = noise_w
        run = self._encoders.get(size)
        if run is None:
            run = self._encoders[size] = TinyJit(self._encode_padded)
        with GATE.enter(alone=not _replaying(run)):
            logw, m_p, logs_p = run(
                Tensor(padded, device=self.device), Tensor(mask, device=self.device),
                Tensor(np.array([speaker], dtype=np.int32), device=self.device), Tensor(noise, device=self.device),
            )
            return logw.numpy()[0, 0, :length], m_p.numpy()[0, :, :length], logs_p.numpy()[0, :, :length]

    # ----- flow and decoder over frames -------------------------------------------------

    def _wn(self, x: Tensor, mask: Tensor, path: str, g: Optional[Tensor]) -> Tensor:
        hidden = x.shape[1]
        cond = self.conv(f"{path}.cond_layer")(g) if g is not None else None
        output: Optional[Tensor] = None
        for i in range(self.shape.wn_layers):
            x_in = self.conv(f"{path}.in_layers.{i}")(x)
            if cond is not None:
                x_in = x_in + cond[:, i * 2 * hidden: (i + 1) * 2 * hidden]
            acts = x_in[:, :hidden].tanh() * x_in[:, hidden:].sigmoid()
            res_skip = self.conv(f"{path}.res_skip_layers.{i}")(acts)
            if i < self.shape.wn_layers - 1:
                x = (x + res_skip[:, :hidden]) * mask
                skip = res_skip[:, hidden:]
            else:
                skip = res_skip
            output = skip if output is None else output + skip
        assert output is not None
        return output * mask

    def _flow(self, z: Tensor, mask: Tensor, g: Optional[Tensor]) -> Tensor:
        half = self.shape.inter // 2
        for index in self.shape.flows:
            path = f"flow.flows.{index}"
            z = z.flip(1)
            z0, z1 = z[:, :half], z[:, half:]
            h = self._wn(self.conv(f"{path}.pre")(z0) * mask, mask, f"{path}.enc", g)
            stats = self.conv(f"{path}.post")(h) * mask
            if stats.shape[1] == half:
                z1 = (z1 - stats) * mask
            else:
                z1 = (z1 - stats[:, :half]) * (-stats[:, half:]).exp() * mask
            z = z0.cat(z1, dim=1)
        return z

    def _resblock(self, x: Tensor, mask: Tensor, index: int) -> Tensor:
        path = f"dec.resblocks.{index}"
        if self.shape.resblock_type == "1":
            for j in self.weights_indices(f"{path}.convs1"):
                xt = self.conv(f"{path}.convs1.{j}")(x.leaky_relu(LRELU_SLOPE) * mask)
                x = x + self.conv(f"{path}.convs2.{j}")(xt.leaky_relu(LRELU_SLOPE) * mask)
            return x
        for j in self.weights_indices(f"{path}.convs"):
            x = x + self.conv(f"{path}.convs.{j}")(x.leaky_relu(LRELU_SLOPE) * mask)
        return x

    def weights_indices(self, prefix: str) -> list[int]:
        if prefix not in self._index_cache:
            self._index_cache[prefix] = self.weights.indices(prefix)
        return self._index_cache[prefix]

    def _decoder(self, z: Tensor, mask: Tensor, g: Optional[Tensor]) -> Tensor:
        """HiFi-GAN. Every convolution's input is masked so padded frames act as the zero padding of an unpadded run."""
        s = self.shape
        x = self.conv("dec.conv_pre")(z * mask)
        if g is not None:
            x = x + self.conv("dec.cond")(g)
        for i in range(s.upsamples):
            up = self.conv(f"dec.ups.{i}")
            x = up(x.leaky_relu(LRELU_SLOPE) * mask)
            mask = mask.reshape(1, 1, -1, 1).expand(1, 1, mask.shape[2], up.spec.stride).reshape(1, 1, -1)
            first = i * s.kernels_per_upsample
            total = self._resblock(x, mask, first)
            for j in range(1, s.kernels_per_upsample):
                total = total + self._resblock(x, mask, first + j)
            x = total / s.kernels_per_upsample
        return self.conv("dec.conv_post")(x.leaky_relu(0.01) * mask).tanh()

    def _decode_padded(self, z_p: Tensor, mask: Tensor, speaker: Tensor) -> Tensor:
        """The flow then the decoder over one window (captured once by ``TinyJit``)."""
        g = self._speaker(speaker)
        z = self._flow(z_p, mask, g)
        return self._decoder(z * mask, mask, g).realize()

    def decode(self, z_p: np.ndarray, speaker: int) -> np.ndarray:
        """Prior sample [inter, frames] -> audio [frames * hop], in windows of fixed sizes.

        A sentence that fits runs as one window, the smallest that holds it. A longer one
        runs in windows of ``window`` frames that overlap by the receptive field on each
        side; only each window's middle is kept, and there the result equals an unwindowed run.
        """
        frames, context = z_p.shape[1], self.context
        for size in self.windows:
            if frames <= size:
                return self._run_window(z_p, 0, frames, speaker, size)[: frames * self.hop]
        core = self.window - 2 * context
        pieces = []
        for start in range(0, frames, core):
            take = min(core, frames - start)
            audio = self._run_window(z_p, start - context, start + core + context, speaker, self.window)
            pieces.append(audio[context * self.hop: (context + take) * self.hop])
        return np.concatenate(pieces)

    def _run_window(self, z_p: np.ndarray, low: int, high: int, speaker: int, size: int) -> np.ndarray:
        """Decode frames [low, high) of ``z_p`` (clipped to it; the rest is masked padding) in a window of ``size``."""
        frames = z_p.shape[1]
        window = np.zeros((1, z_p.shape[0], size), dtype=np.float32)
        mask = np.zeros((1, 1, size), dtype=np.float32)
        first, last = max(low, 0), min(high, frames)
        window[0, :, first - low: last - low] = z_p[:, first:last]
        mask[..., first - low: last - low] = 1.0
        if size not in self._decoder_jits:
            self._decoder_jits[size] = TinyJit(self._decode_padded)
        run = self._decoder_jits[size]
        with GATE.enter(alone=not _replaying(run)):
            audio = run(Tensor(window, device=self.device), Tensor(mask, device=self.device),
                        Tensor(np.array([speaker], dtype=np.int32), device=self.device))
            return audio.numpy()[0, 0]
