"""tinygrad's registration: Piper voices run on the experimental tinygrad engine.

Its voices are Piper's (``piper.backend: tinygrad`` runs every Piper voice on it; a batch row
may name ``tinygrad`` in its ``backend`` column), so it lists no voices or models of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from demod_voice.backends.piper.plugin import PiperSide
from demod_voice.backends.plugin import ModelEntry, Scope, Voice
from demod_voice.backends.tinygrad.checks import check_tinygrad
from demod_voice.checks import Check
from demod_voice.config import Config


class TinygradSide(PiperSide):
    """Piper voices on tinygrad (experimental; the CPU device needs clang)."""

    name = "tinygrad"
    label = "Piper on tinygrad"
    url = "https://github.com/tinygrad/tinygrad"
    engine = "demod_voice.backends.tinygrad.engine:TinygradBackend"

    def voices(self, scope: Scope) -> list[Voice]:
        return []  # Piper lists them, with the engine piper.backend chooses

    def find(self, scope: Scope, voice_id: str) -> Optional[Voice]:
        return None

    def models(self, scope: Scope) -> list[ModelEntry]:
        return []

    def download(self, scope: Scope, name: str, progress: bool) -> None:
        return None

    def model_path(self, scope: Scope, name: str) -> None:
        return None

    def quantize(self, scope: Scope, name: str, output: Optional[Path], method: str, text: Optional[str]) -> None:
        return None  # Piper's voices are quantized by Piper's side

    def checks(self, config: Config) -> list[Check]:
        return check_tinygrad(config.device)
