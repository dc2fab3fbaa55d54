"""Workers per model when the settings leave it to the engine: a light single-file model gets one per
core (at most eight), a folder (XTTS) or a large file one, and a GPU model one per device."""

from __future__ import annotations

import os

from demod_voice.config import EngineSettings, ServeSettings
from demod_voice.engine import sizing
from demod_voice.engine.jobs import LoadSpec


def test_a_light_voice_gets_a_worker_per_core_up_to_eight(tmp_path):
    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"\0" * 1000)
    spec = LoadSpec("piper", str(voice))
    assert sizing.default_workers(spec, cores=2) == 2
    assert sizing.default_workers(spec, cores=1) == 1
    assert sizing.default_workers(spec, cores=64) == sizing.MOST_LIGHT_WORKERS


def test_a_checkpoint_folder_a_large_file_a_missing_model_and_a_gpu_get_one(tmp_path):
    folder = tmp_path / "xtts"
    folder.mkdir()
    (folder / "model.pth").write_bytes(b"\0" * 10)
    big = tmp_path / "big.onnx"
    with open(big, "wb") as handle:
        handle.truncate(sizing.LIGHT_MODEL_BYTES + 1)  # sparse: no real disk used
    small = tmp_path / "voice.onnx"
    small.write_bytes(b"\0" * 10)
    for spec in (LoadSpec("xtts", str(folder)), LoadSpec("piper", str(big)), LoadSpec("piper", str(tmp_path / "gone.onnx")),
                 LoadSpec("piper", str(small), device="gpu")):
        assert sizing.default_workers(spec, cores=16) == 1, spec


def test_no_config_means_chosen_per_model():
    assert EngineSettings().workers == 0 and ServeSettings().workers == 0


def test_the_engine_sizes_each_pool_by_its_model(tmp_path):
    from demod_voice.engine.service import EngineService

    voice = tmp_path / "voice.onnx"
    voice.write_bytes(b"\0" * 1000)
    service = EngineService(EngineSettings(), workers=0)
    try:
        assert len(service._pool(LoadSpec("piper", str(voice))).slots) == min(os.cpu_count() or 1, sizing.MOST_LIGHT_WORKERS)
        assert len(service._pool(LoadSpec("xtts", str(tmp_path))).slots) == 1
    finally:
        service.shutdown()
