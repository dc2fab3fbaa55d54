"""A model's files replaced at the same path are told apart: for the engine's workers (``LoadSpec.version``) and for the
caches of what is derived from them (optimised graphs)."""

from __future__ import annotations

import os
import shutil
import time

from demod_voice.devices import file_identity, optimized_path
from demod_voice.engine.jobs import files_version


def replaced_keeping_size_and_times(path, data: bytes) -> None:
    """``cp -p`` of a file of the same size whose modification time is the old one's (two exports unpacked from
    archives, files copied out of a Nix store: all dated 1970)."""
    stat = os.stat(path)
    time.sleep(0.02)  # past the clock's step: the change time the kernel sets is a later one
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_file_replaced_at_its_path_has_a_later_version_even_with_its_size_and_times_kept(tmp_path):
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"a" * 64)
    first = files_version(str(model))
    assert files_version(str(model)) == first
    replaced_keeping_size_and_times(model, b"b" * 64)
    assert files_version(str(model)) > first
    renamed = tmp_path / "new.onnx"
    renamed.write_bytes(b"c" * 64)
    before = files_version(str(model))
    os.replace(renamed, model)  # written beside it and renamed over it
    assert files_version(str(model)) > before


def test_a_checkpoint_folder_has_a_later_version_when_one_of_its_files_is_replaced(tmp_path):
    folder = tmp_path / "xtts"
    folder.mkdir()
    for name in ("config.json", "model.pth", "vocab.json"):
        (folder / name).write_bytes(name.encode())
    first = files_version(str(folder))
    time.sleep(0.02)
    shutil.copyfile(folder / "vocab.json", folder / "model.pth")
    assert files_version(str(folder)) > first


def test_a_voice_replaced_with_its_size_and_times_kept_gets_new_cache_entries(tmp_path):
    """The optimised graph of the old voice was used for the new one: the cache was keyed by path, size and
    modification time."""
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"a" * 64)
    cache = tmp_path / "cache"
    before = optimized_path(str(model), ["CPUExecutionProvider"], str(cache))
    prepared = file_identity(str(model))  # what the prepared graphs (split for batching) are keyed by
    replaced_keeping_size_and_times(model, b"b" * 64)
    assert optimized_path(str(model), ["CPUExecutionProvider"], str(cache)) != before
    assert file_identity(str(model)) != prepared
