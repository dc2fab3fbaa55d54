"""Lightning callbacks of a ``piper-train`` run: one report per epoch, and exports at chosen epochs.

Worker side: imported only by :mod:`demod_voice.training.runner`, inside the training process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import lightning

log = logging.getLogger(__name__)

REPORTED = {"loss_g": "loss_g", "loss_d": "loss_d", "train_mel": "mel", "train_kl": "kl", "train_dur": "dur"}
"""Metrics piper's ``VitsModel`` logs each step, averaged over the epoch (and their short names)."""


def optimizer_step(trainer: Any) -> int:
    """How many steps the generator's optimiser has taken (0 for a fresh one): proof that its state was restored."""
    if not trainer.optimizers:
        return 0
    for state in trainer.optimizers[0].state.values():
        if "step" in state:
            return int(state["step"])
    return 0


class EpochReport(lightning.Callback):
    """Sends ``start`` once and ``epoch`` after every epoch: mean losses, seconds, the target epoch count."""

    def __init__(self, send: Callable[..., None], epochs: int, resumed: bool) -> None:
        self.send, self.epochs, self.resumed = send, epochs, resumed
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.started = 0.0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.send("start", epoch=trainer.current_epoch, epochs=self.epochs, resumed=self.resumed,
                  global_step=trainer.global_step, optimizer_step=optimizer_step(trainer),
                  steps_per_epoch=trainer.num_training_batches)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.sums, self.steps, self.started = {}, 0, time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        metrics = trainer.callback_metrics
        for key in REPORTED:
            if key in metrics:
                self.sums[key] = self.sums.get(key, 0.0) + float(metrics[key])
        self.steps += 1

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        losses = {REPORTED[k]: round(v / max(1, self.steps), 4) for k, v in self.sums.items()}
        val = trainer.callback_metrics.get("val_mel")
        if val is not None:
            losses["val_mel"] = round(float(val), 4)
        self.send("epoch", epoch=trainer.current_epoch + 1, epochs=self.epochs, steps=self.steps,
                  seconds=round(time.perf_counter() - self.started, 3), losses=losses)


class ExportEvery(lightning.Callback):
    """Calls ``export(epoch, pl_module)`` after every ``every``-th epoch (1-based) and after the last one."""

    def __init__(self, every: int, epochs: int, export: Callable[[int, Any], None]) -> None:
        self.every, self.epochs, self.export = every, epochs, export

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = trainer.current_epoch + 1
        if epoch == self.epochs or (self.every and epoch % self.every == 0):
            self.export(epoch, pl_module)


class KeepNewest(lightning.pytorch.callbacks.ModelCheckpoint):
    """Checkpoints named by epochs done (``epoch-3.ckpt`` after the third, like ``samples/epoch-3``); the newest
    ``keep`` stay, and ``last.ckpt`` is a link to the newest (what ``--resume`` reads)."""

    def __init__(self, folder: str, keep: int) -> None:
        # No version counter: a process's first checkpoint records no ``last`` of its own (Lightning sets it after saving),
        # so after a resume from it Lightning took the existing ``last.ckpt`` for another run's and linked
        # ``last-v1.ckpt`` instead; ``--resume`` then went back to the older epoch, and ``epoch-2-v1.ckpt`` was kept
        # beside ``epoch-2.ckpt``. The names here are ours alone: a file of the same name is this run's, replaced.
        super().__init__(dirpath=folder, filename="epoch-{done}", auto_insert_metric_name=False, monitor="done", mode="max",
                         save_top_k=keep, save_last="link", every_n_epochs=1, enable_version_counter=False)

    def _monitor_candidates(self, trainer: Any) -> dict[str, Any]:
        import torch

        candidates = super()._monitor_candidates(trainer)
        candidates["done"] = torch.tensor(trainer.current_epoch + 1)
        return candidates
