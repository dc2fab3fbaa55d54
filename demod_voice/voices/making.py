"""``voices add``: compute a voice's XTTS conditioning once and keep it as a named profile."""

from __future__ import annotations

from pathlib import Path

from demod_voice.backends.xtts.engine import XttsBackend, model_identity
from demod_voice.config import Config, cache_root
from demod_voice.engine.jobs import LoadSpec
from demod_voice.errors import InputError
from demod_voice.models.registry import resolve_xtts
from demod_voice.voices.profiles import Profile, check_name, profiles_dir, read_profile, write_profile
from demod_voice.voices.references import check_references


def add_voice(name: str, references: list[str], config: Config, force: bool = False) -> Profile:
    """Load XTTS here (the one command that needs it in-process), condition on ``references``, save."""
    import logging

    check_name(name)
    cache = cache_root(config)
    target = profiles_dir(cache) / f"{name}.npz"
    if target.exists() and not force:
        raise InputError(f"a voice profile '{name}' exists already; pass --force to replace it")
    checked = check_references(references, config.xtts.max_reference_seconds)
    folder, fetch = resolve_xtts(config.xtts.model_dir, cache, config.xtts.accept_license)
    backend = XttsBackend()
    info = backend.load(LoadSpec("xtts", str(folder), config.device, cache_dir=str(cache), fetch=fetch))
    for warning in info.warnings:
        logging.getLogger(__name__).warning("%s", warning)
    gpt, speaker = backend.conditioning(checked)
    write_profile(target, name, model_identity(Path(folder)), [r.sha256 for r in checked],
                  gpt.detach().cpu().numpy(), speaker.detach().cpu().numpy())
    return read_profile(target)
