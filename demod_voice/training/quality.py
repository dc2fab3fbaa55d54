"""Piper's voice sizes ("qualities") as the hyper-parameters of its VITS model, and what each costs on disk.

Plain data, parent side. ``x_low``, ``medium`` and ``high`` are the shapes Piper's released voices
have (``low`` is ``medium``'s network at 16 kHz); ``tiny`` is the same graph with narrow layers and
a short training segment, for tests and quick trials; its discriminator is a narrow one of the same
layout (Piper's has fixed sizes, which kept a tiny checkpoint at ~570 MB).
"""

from __future__ import annotations

from typing import Any, Optional

HIGH_KERNELS = (3, 7, 11)

QUALITIES: dict[str, dict[str, Any]] = {
    "x_low": {"inter_channels": 96, "hidden_channels": 96, "filter_channels": 384},
    "low": {},
    "medium": {},
    "high": {
        "resblock": "1",
        "resblock_kernel_sizes": HIGH_KERNELS,
        "resblock_dilation_sizes": tuple((1, 3, 5) for _ in HIGH_KERNELS),
        "upsample_rates": (8, 8, 2, 2),
        "upsample_initial_channel": 512,
        "upsample_kernel_sizes": (16, 16, 4, 4),
    },
    "tiny": {
        "inter_channels": 32, "hidden_channels": 32, "filter_channels": 64, "n_layers": 2,
        "upsample_initial_channel": 64, "resblock_kernel_sizes": (3,), "resblock_dilation_sizes": ((1, 2),),
        "segment_size": 2048,
    },
}
"""Hyper-parameters that differ from piper-tts's ``VitsModel`` defaults (which are ``medium``)."""

PUBLIC = ("x_low", "low", "medium", "high")
"""Qualities offered on the command line (``tiny`` is accepted but not advertised)."""

SAMPLE_RATES: dict[str, Optional[int]] = {"x_low": 16000, "low": 16000, "medium": 22050, "high": 22050, "tiny": None}
"""The sample rate each quality is trained at (``None``: any)."""

PARAMETERS: dict[str, int] = {"x_low": 7_073_360, "low": 23_663_792, "medium": 23_663_792, "high": 36_336_048, "tiny": 578_832}
"""Trainable generator parameters (measured with piper-tts 1.8.0, 256 symbols, one speaker)."""

DISCRIMINATOR_PARAMETERS = 46_747_132
"""Piper's multi-period discriminator, the same for every quality but ``tiny``."""

TINY_DISCRIMINATOR_PARAMETERS = 52_620
"""The narrow critic ``tiny`` trains with instead (:mod:`demod_voice.training.critic`)."""

NARROW_CRITIC = "narrow_critic"
"""The hyper-parameter (``VitsModel`` keeps unknown ones) that gives a run the narrow critic: set for new tiny runs, so
that a run begun before it existed resumes with piper's."""

ARCHITECTURE_KEYS = ("inter_channels", "hidden_channels", "filter_channels", "n_layers", "resblock", "resblock_kernel_sizes",
                     "resblock_dilation_sizes", "upsample_rates", "upsample_initial_channel", "upsample_kernel_sizes")
"""The hyper-parameters that decide the shapes of the weights (a base checkpoint must match them)."""

DEFAULTS: dict[str, Any] = {
    "inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_layers": 6, "resblock": "2",
    "resblock_kernel_sizes": (3, 5, 7), "resblock_dilation_sizes": ((1, 2), (2, 6), (3, 12)), "upsample_rates": (8, 8, 4),
    "upsample_initial_channel": 256, "upsample_kernel_sizes": (16, 16, 8),
}
"""piper-tts's ``VitsModel`` defaults for :data:`ARCHITECTURE_KEYS`."""


def architecture(quality: str) -> dict[str, Any]:
    """The shape-deciding hyper-parameters of ``quality``, lists for tuples (as JSON would have them)."""
    values = {**DEFAULTS, **{k: v for k, v in QUALITIES[quality].items() if k in ARCHITECTURE_KEYS}}
    return {k: _listed(v) for k, v in values.items()}


def detect(hparams: dict[str, Any], sample_rate: Optional[int]) -> Optional[str]:
    """The quality whose shapes ``hparams`` has (``low`` vs ``medium`` told apart by sample rate), or ``None``."""
    given = {k: _listed(hparams.get(k, DEFAULTS[k])) for k in ARCHITECTURE_KEYS}
    for name in ("x_low", "medium", "high", "tiny"):
        if given == architecture(name):
            if name == "medium" and sample_rate == 16000:
                return "low"
            return name
    return None


def checkpoint_bytes(quality: str) -> int:
    """Size of one training checkpoint: weights plus two AdamW moments, generator and discriminator."""
    critic = TINY_DISCRIMINATOR_PARAMETERS if quality == "tiny" else DISCRIMINATOR_PARAMETERS
    return (PARAMETERS[quality] + critic) * 4 * 3


def voice_bytes(quality: str) -> int:
    """Size of an exported ``.onnx`` voice (inference part of the generator, ~2/3 of it, float32)."""
    return PARAMETERS[quality] * 4 * 2 // 3 + 1_000_000


def _listed(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_listed(v) for v in value]
    return value
