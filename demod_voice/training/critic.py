"""A narrow discriminator for the ``tiny`` quality: piper's layout (one scale and five period critics), 1/32 the width.

Worker side: imported only by :mod:`demod_voice.training.runner`, inside the training process.

Piper's ``MultiPeriodDiscriminator`` has fixed widths (up to 1024 channels, 46.7 M parameters): a ``tiny`` voice of
0.6 M generator parameters still saved ~570 MB per checkpoint, ~97 % of it the discriminator and its two AdamW
moments. ``tiny`` is for tests and quick trials of the whole pipeline, where that size filled small disks (CI's
training tests were refused for free space) and each epoch's save took seconds. The critic here has the same
inputs, outputs and losses (scores and feature maps per sub-critic), so piper's ``training_step`` runs unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

SLOPE = 0.1
PERIODS = (2, 3, 5, 7, 11)
WIDTHS = (8, 16, 32)
"""Channels of the strided layers (piper's period critic: 32, 128, 512, 1024)."""


class PeriodCritic(nn.Module):
    """Audio folded into ``period`` columns, 2-D convolutions down the time axis."""

    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = period
        sizes = (1, *WIDTHS)
        self.convs = nn.ModuleList(weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0))) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.convs.append(weight_norm(nn.Conv2d(WIDTHS[-1], WIDTHS[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(WIDTHS[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = x.shape
        if length % self.period:
            x = F.pad(x, (0, self.period - length % self.period), "reflect")
        x = x.view(batch, channels, -1, self.period)
        return _run(self.convs, self.post, x)


class ScaleCritic(nn.Module):
    """1-D grouped convolutions over the waveform (piper's scale critic, narrowed)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv1d(1, WIDTHS[0], 15, 1, padding=7)),
            weight_norm(nn.Conv1d(WIDTHS[0], WIDTHS[1], 41, 4, groups=4, padding=20)),
            weight_norm(nn.Conv1d(WIDTHS[1], WIDTHS[2], 41, 4, groups=8, padding=20)),
            weight_norm(nn.Conv1d(WIDTHS[2], WIDTHS[2], 5, 1, padding=2)),
        ])
        self.post = weight_norm(nn.Conv1d(WIDTHS[2], 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _run(self.convs, self.post, x)


def _run(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return torch.flatten(x, 1, -1), features


class NarrowCritic(nn.Module):
    """``forward(real, generated)`` gives what piper's ``MultiPeriodDiscriminator`` gives: scores of the real audio and
    of the generated one, and both feature maps, one entry per sub-critic."""

    def __init__(self) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList([ScaleCritic(), *(PeriodCritic(p) for p in PERIODS)])

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        real_scores, fake_scores, real_maps, fake_maps = [], [], [], []
        for critic in self.discriminators:
            score, features = critic(y)
            real_scores.append(score)
            real_maps.append(features)
            score, features = critic(y_hat)
            fake_scores.append(score)
            fake_maps.append(features)
        return real_scores, fake_scores, real_maps, fake_maps

