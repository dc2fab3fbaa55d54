"""Finding models: local folders checked for completeness, or the released XTTS-v2 in the cache."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from .errors import InputError

RELEASED_XTTS = "tts_models/multilingual/multi-dataset/xtts_v2"
XTTS_FILES = ("config.json", "model.pth", "vocab.json")
LICENSE_HELP = (
    "pass --accept-license, set 'xtts.accept_license: true' in the config, or export COQUI_TOS_AGREED=1 "
    "(the Coqui Public Model License allows non-commercial use only; https://coqui.ai/cpml)"
)


def released_xtts_dir(cache: Path) -> Path:
    """Where coqui's model manager puts XTTS-v2 when told to download into our cache."""
    return cache / "coqui" / "tts" / RELEASED_XTTS.replace("/", "--")


def missing_xtts_files(folder: Path) -> list[str]:
    """The checkpoint files XTTS needs that ``folder`` lacks."""
    return [name for name in XTTS_FILES if not (folder / name).is_file()]


def resolve_xtts(
    model_dir: Optional[str], cache: Path, accepted: bool, env: Mapping[str, str] = os.environ
) -> tuple[Path, Optional[str]]:
    """The checkpoint folder to load, and the model name to download first (``None`` if none).

    A local ``model_dir`` must be complete. Without one, the released model is used from the
    cache, or fetched on first use, which needs the licence accepted.
    """
    if model_dir:
        folder = Path(model_dir).expanduser().absolute()
        if not folder.is_dir():
            raise InputError(f"XTTS model folder {folder} does not exist; check --model-dir")
        missing = missing_xtts_files(folder)
        if missing:
            raise InputError(f"XTTS model folder {folder} lacks {', '.join(missing)}; a checkpoint needs {', '.join(XTTS_FILES)}")
        return folder, None
    folder = released_xtts_dir(cache)
    if not missing_xtts_files(folder):
        return folder, None
    if not (accepted or env.get("COQUI_TOS_AGREED") == "1"):
        raise InputError(f"XTTS-v2 is not downloaded yet, and downloading it needs its licence accepted: {LICENSE_HELP}; "
                         "or point --model-dir at a local checkpoint")
    return folder, RELEASED_XTTS
