"""``piper-train`` and ``piper-export`` on espeak-ng speech: a tiny voice trained, resumed, exported, spoken, fine-tuned.

The training runs are shared by the module (each costs a process start, a few steps and ~8 MB of
checkpoint: tiny's narrow critic). Torch never loads in the test process: checkpoints are read by tests/fixtures/checkpoint_tool.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from conftest import BIN, FIXTURES, run_cli, small_tmpfs

from demod_voice.cli.main import main

# One compute thread: steadier on a shared 2-core machine, where two threads mostly wait for each other.
ENV = {"OMP_NUM_THREADS": "1"}
TINY = ("--quality", "tiny", "--batch-size", "2", "--keep-checkpoints", "1", "--sample-text", "Hello there.")


def tool(*args: str) -> dict:
    done = subprocess.run([sys.executable, str(FIXTURES / "checkpoint_tool.py"), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def train(dataset: Path, out: Path, *extra: str, env: dict | None = None):
    done = run_cli("piper-train", "--dataset", str(dataset), "--output-dir", str(out), *TINY, *extra, env={**ENV, **(env or {})})
    return done, done.stderr.decode()


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines, err
    assert lines[-1].startswith("demod-voice: error: "), err
    return lines[-1]


@pytest.fixture(scope="module")
def prepared(lj_dataset, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """piper-preprocess output, cut to four clips: two training steps of two clips per epoch."""
    base = tmp_path_factory.mktemp("train")
    out = base / "prepared"
    done = run_cli("piper-preprocess", "--input-dir", str(lj_dataset), "--output-dir", str(out), "--min-total-seconds", "5")
    assert done.returncode == 0, done.stderr.decode()
    metadata = out / "metadata.csv"
    metadata.write_text("\n".join(metadata.read_text().splitlines()[:4]) + "\n")
    yield SimpleNamespace(folder=out, stderr=done.stderr.decode(), base=base)
    shutil.rmtree(base, ignore_errors=True)  # the module's runs go with it


@pytest.fixture(scope="module")
def trained(prepared) -> SimpleNamespace:
    """Two epochs, then ``--resume`` to three."""
    out = prepared.base / "voice"
    first, first_err = train(prepared.folder, out, "--epochs", "2", "--export-every", "2", "--name", "mine")
    assert first.returncode == 0, first_err
    files_after_first = sorted(p.name for p in (out / "checkpoints").iterdir())
    after_first = tool("inspect", str(out / "checkpoints" / "last.ckpt"))
    second, second_err = train(prepared.folder, out, "--epochs", "3", "--resume")
    assert second.returncode == 0, second_err
    return SimpleNamespace(out=out, first_err=first_err, second_err=second_err, after_first=after_first,
                           files_after_first=files_after_first, after_second=tool("inspect", str(out / "checkpoints" / "last.ckpt")),
                           voice=out / "mine.onnx", stdout=second.stdout.decode())


def test_preprocess_ends_with_the_train_command(prepared):
    last = prepared.stderr.strip().splitlines()[-1]
    assert f"demod-voice piper-train --dataset {prepared.folder}" in last and "--output-dir" in last
    assert "python -m piper.train" not in prepared.stderr


def test_two_epochs_with_one_line_each_then_resume_restores_epoch_and_optimiser(trained):
    first = trained.first_err
    assert "training on the CPU" in first and "training from scratch" in first
    assert "started: 2 steps per epoch, optimizer at step 0" in first
    epochs = [line for line in first.splitlines() if " epoch 1/2 " in line or " epoch 2/2 " in line]
    assert len(epochs) == 2 and all("loss_g" in line and "mel" in line and "s/epoch" in line and "ETA" in line for line in epochs)
    # Two epochs of two steps: the generator's optimiser has stepped 4 times; one checkpoint kept, last.ckpt links to it.
    assert trained.after_first["epoch"] == 1 and trained.after_first["optimizer_step"] == 4
    assert trained.files_after_first == ["epoch-2.ckpt", "last.ckpt"]
    second = trained.second_err
    assert "resumed after epoch 2: 2 steps per epoch, optimizer at step 4" in second
    assert " epoch 3/3 " in second and " epoch 1/3 " not in second and " epoch 2/3 " not in second
    assert trained.after_second["epoch"] == 2 and trained.after_second["optimizer_step"] == 6
    assert sorted(p.name for p in (trained.out / "checkpoints").iterdir()) == ["epoch-3.ckpt", "last.ckpt"]
    assert (trained.out / "checkpoints" / "last.ckpt").resolve().name == "epoch-3.ckpt"


def test_resuming_a_run_whose_process_wrote_one_checkpoint_goes_on_from_the_newest(prepared):
    """A process's first checkpoint records no last checkpoint of its own: resumed from it, Lightning linked
    ``last-v1.ckpt`` to the next epoch and left ``last.ckpt`` on the old one, so the next ``--resume`` went back an epoch
    (its work lost) and kept an ``epoch-2-v1.ckpt`` beside ``epoch-2.ckpt``."""
    out = prepared.base / "one-at-a-time"
    for epochs, said in (("1", "training from scratch"), ("2", "resumed after epoch 1"), ("3", "resumed after epoch 2")):
        done, err = train(prepared.folder, out, "--epochs", epochs, "--export-every", "0", "--keep-checkpoints", "2",
                          *(("--resume",) if epochs != "1" else ()))
        assert done.returncode == 0 and said in err, err
    files = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert files == ["epoch-2.ckpt", "epoch-3.ckpt", "last.ckpt"], files
    assert (out / "checkpoints" / "last.ckpt").resolve().name == "epoch-3.ckpt"
    shutil.rmtree(out / "checkpoints")


def test_the_trainer_ends_with_its_command_and_holds_its_folder_meanwhile(prepared):
    """A closed terminal (SIGHUP) or kill -9 of ``piper-train`` left the trainer running in its own session until its
    next epoch's end, and a ``--resume`` then trained beside it in the same folder."""
    import os
    import signal

    from conftest import BIN
    from processes import alive, children, wait_for

    out = prepared.base / "orphan"
    args = ["piper-train", "--dataset", str(prepared.folder), "--output-dir", str(out), *TINY, "--export-every", "0"]
    command = subprocess.Popen([sys.executable, str(BIN), *args, "--epochs", "40"], env={**os.environ, **ENV},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (out / "checkpoints" / "last.ckpt").exists() or command.poll() is not None, timeout=300)
        assert command.poll() is None, command.stderr.read().decode()
        runners = children(command.pid)
        assert runners
        beside, err = train(prepared.folder, out, "--epochs", "40", "--resume", "--export-every", "0")
        assert beside.returncode != 0 and "in use by another training run" in one_error_line(err), err
        command.send_signal(signal.SIGKILL)
        command.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in runners), timeout=60)  # it ended with its command
    finally:
        if command.poll() is None:
            command.kill()
        command.wait()
    reached = json.loads((out / "train-state.json").read_text())["epochs_done"]
    done, err = train(prepared.folder, out, "--epochs", str(reached + 1), "--resume", "--export-every", "0")
    assert done.returncode == 0 and f"resumed after epoch {reached}" in err, err  # the folder is free again
    shutil.rmtree(out, ignore_errors=True)


def test_a_resume_checks_its_dataset_and_forgets_features_of_clips_recorded_again(prepared, tmp_path):
    """--resume took a 16 kHz dataset for a 22.05 kHz run (the voice then claimed 16 kHz), and went on training from
    a clip's old recording after it was recorded again (piper's feature cache is keyed by row and text)."""
    out = prepared.base / "re-recorded"
    done, err = train(prepared.folder, out, "--epochs", "1", "--export-every", "0")
    assert done.returncode == 0, err
    cached = {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir() if p.suffix == ".pt"}
    assert cached
    other = tmp_path / "at-16k"
    shutil.copytree(prepared.folder, other)
    config = json.loads((other / "config.json").read_text())
    config["audio"]["sample_rate"] = 16000
    (other / "config.json").write_text(json.dumps(config))
    for wav in (other / "wavs").glob("*.wav"):  # the same clips at 16 kHz, as piper-preprocess --sample-rate 16000 makes them
        audio, rate = soundfile.read(str(wav))
        times = np.arange(int(len(audio) * 16000 / rate)) / 16000
        soundfile.write(str(wav), np.interp(times, np.arange(len(audio)) / rate, audio), 16000, subtype="PCM_16")
    refused, err = train(other, out, "--epochs", "2", "--resume")
    assert refused.returncode == 3 and "trains a 22050 Hz voice but this dataset is 16000 Hz" in one_error_line(err), err
    # a clip recorded again (here: written again) empties the feature cache, and the trainer makes it anew
    clip = sorted((prepared.folder / "wavs").glob("*.wav"))[0]
    audio, rate = soundfile.read(str(clip), dtype="int16")
    soundfile.write(str(clip), audio, rate, subtype="PCM_16")
    again, err = train(prepared.folder, out, "--epochs", "2", "--resume", "--export-every", "0")
    assert again.returncode == 0 and "resumed after epoch 1" in err, err
    remade = {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir() if p.suffix == ".pt"}
    assert remade and all(remade[name] != when for name, when in cached.items() if name in remade)
    # and a --name that is not a plain name is refused before any training, installed or not
    named, err = train(prepared.folder, prepared.base / "named", "--epochs", "1", "--name", "voices/en_US-me-medium")
    assert named.returncode == 3 and "cannot be a voice name" in one_error_line(err) and not (prepared.base / "named").exists()
    shutil.rmtree(out, ignore_errors=True)


def test_each_export_says_how_well_a_recogniser_hears_its_samples(trained):
    pytest.importorskip("faster_whisper", reason="the asr extra is not installed")
    line = next(line for line in trained.first_err.splitlines() if "epoch 2: voice and 1 sample(s)" in line)
    assert re.search(r"; WER \d+\.\d\d by Whisper tiny\.en \(packaged\)$", line), line


def test_samples_are_spoken_at_export_epochs_only(trained):
    samples = trained.out / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["epoch-2", "epoch-3"]
    for epoch in ("epoch-2", "epoch-3"):
        wav = samples / epoch / "sample-1.wav"
        info = soundfile.info(str(wav))
        assert info.samplerate == 22050 and info.frames > 0
        assert (samples / epoch / "mine.onnx").is_file() and (samples / epoch / "mine.onnx.json").is_file()
    assert "epoch 3: voice and 1 sample(s) in" in trained.second_err


def test_the_voice_speaks_in_piper_infer(trained, tmp_path):
    assert trained.stdout.strip() == str(trained.voice)
    config = json.loads(Path(f"{trained.voice}.json").read_text())
    assert config["audio"]["sample_rate"] == 22050 and config["espeak"]["voice"] == "en-us" and config["num_speakers"] == 1
    out = tmp_path / "spoken.wav"
    done = run_cli("piper-infer", str(trained.voice), "A voice of my own.", "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(out)).frames > 0


def test_exported_voices_compute_what_the_checkpoint_computes(trained, tmp_path):
    exported = tmp_path / "again.onnx"
    done = run_cli("piper-export", str(trained.out / "checkpoints" / "last.ckpt"), "-o", str(exported),
                   "--voice-config", str(trained.out / "voice-config.json"))
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.onnx", "again.onnx.json"]  # its hidden log was left too
    assert json.loads(Path(f"{exported}.json").read_text()) == json.loads(Path(f"{trained.voice}.json").read_text())
    result = tool("compare", str(trained.out / "checkpoints" / "last.ckpt"), str(trained.voice), str(exported))
    assert result["samples"] > 0
    for voice in result["voices"].values():
        assert voice["inputs"] == ["input", "input_lengths", "scales"] and voice["outputs"] == ["output"]
        assert voice["samples"] == result["samples"]
        assert voice["max_abs_diff"] < 1e-5 * max(1.0, result["peak"])


def test_a_runs_checkpoint_exports_with_the_runs_voice_config(trained, tmp_path):
    """``piper-export RUN/checkpoints/epoch-K.ckpt -o voice.onnx`` built the .onnx.json from the checkpoint alone: a voice
    trained on en-gb (or any language) spoke with en-us phonemes, and a run's speakers became speaker_0, speaker_1."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "epoch-3.ckpt").symlink_to(trained.out / "checkpoints" / "last.ckpt")
    config = json.loads((trained.out / "voice-config.json").read_text())
    config["espeak"]["voice"] = "en-gb"  # as a run on an en-gb dataset has it
    (run / "voice-config.json").write_text(json.dumps(config))
    exported = tmp_path / "voice.onnx"
    done = run_cli("piper-export", str(run / "checkpoints" / "epoch-3.ckpt"), "-o", str(exported))
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert json.loads(Path(f"{exported}.json").read_text()) == config
    assert f"voice config: {run / 'voice-config.json'} (the training run's" in err
    again = run_cli("piper-export", str(run / "checkpoints" / "epoch-3.ckpt"), "-o", str(exported), "--language", "de")
    assert again.returncode == 0 and json.loads(Path(f"{exported}.json").read_text())["espeak"]["voice"] == "de"


@pytest.mark.parametrize("change", ["sample rate", "speakers"])
def test_a_voice_config_of_another_voice_is_refused_and_nothing_is_left(trained, tmp_path, change):
    """``piper-export --voice-config`` with another voice's config was written beside the export, exit 0: a 22050 Hz voice
    with a 16 kHz dataset's config spoke slow and low; with a config of three speakers, piper-infer refused the voice."""
    config = json.loads((trained.out / "voice-config.json").read_text())
    if change == "sample rate":
        config["audio"]["sample_rate"] = 16000
    else:
        config.update(num_speakers=3, speaker_id_map={"ann": 0, "bob": 1, "cy": 2})
    other = tmp_path / "other.json"
    other.write_text(json.dumps(config))
    out = tmp_path / "voices"
    out.mkdir()
    done = run_cli("piper-export", str(trained.out / "checkpoints" / "last.ckpt"), "-o", str(out / "v.onnx"), "--voice-config",
                   str(other))
    said = {"sample rate": "a 16000 Hz voice of 1 speaker(s)", "speakers": "a 22050 Hz voice of 3 speaker(s)"}[change]
    assert done.returncode == 3 and done.stderr.decode().strip().splitlines()[-1] == (
        f"demod-voice: error: the voice config other.json is for {said}, but the checkpoint is a 22050 Hz voice of 1: give its "
        "own training's config (the dataset's config.json), or leave out --voice-config"), done.stderr.decode()
    assert not list(out.iterdir())  # no voice, and no hidden export log


@pytest.fixture
def small_tmpdir(tmp_path):
    """A 4 MB tmpfs as $TMPDIR (less than a tiny checkpoint), as a small tmpfs /tmp is (root only; skipped, saying why,
    where mounting is not allowed)."""
    yield from small_tmpfs(tmp_path / "small-tmp", "4m")


def test_checkpoints_are_saved_beside_the_run_not_in_tmpdir(prepared, small_tmpdir, tmp_path):
    """Lightning saves a checkpoint into a temporary file and moves it into place: in $TMPDIR, so a tmpfs /tmp held each
    checkpoint in memory (~0.6 GB for a medium voice), refused it when smaller (a failed run with plenty of room in --output-dir), and the
    move across filesystems was a copy that a stop could cut short."""
    import zipfile

    out = tmp_path / "voice"
    done, err = train(prepared.folder, out, "--epochs", "1", "--export-every", "0", env={"TMPDIR": str(small_tmpdir)})
    assert done.returncode == 0, err
    assert zipfile.is_zipfile(out / "checkpoints" / "epoch-1.ckpt") and list((out / ".tmp").iterdir()) == []
    assert (out / "checkpoints" / "epoch-1.ckpt").stat().st_size > 4 * 2**20  # it would not have fitted in $TMPDIR


@pytest.fixture
def filling_disk(tmp_path):
    """A 64 MB tmpfs for --output-dir: room enough at the start, less once something else fills it."""
    yield from small_tmpfs(tmp_path / "filling", "64m")


def test_a_disk_that_fills_during_training_says_where_and_what_to_do(prepared, filling_disk):
    """A checkpoint that no longer fitted (the disk filled after the start's free-space check) ended the run with the
    raw ``OSError: [Errno 28] No space left on device`` and "the whole log is in ...": neither the full folder nor what
    to do. The part of the checkpoint was left in the run's .tmp/, holding space the user must free."""
    out = filling_disk / "voice"
    command = [sys.executable, str(BIN), "piper-train", "--dataset", str(prepared.folder), "--output-dir", str(out), *TINY,
               "--epochs", "1", "--export-every", "0"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, **ENV}, text=True)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "started:" in line:  # training has begun; another program now fills the disk
            free = shutil.disk_usage(filling_disk).free
            with open(filling_disk / "other-program.bin", "wb") as filler:
                for _ in range((free - 2 * 2**20) // 2**20):  # less than a tiny checkpoint (~8 MB) is left
                    filler.write(bytes(2**20))
    process.wait(timeout=300)
    err = "".join(lines)
    line = one_error_line(err)
    assert process.returncode != 0 and "started:" in err, err
    assert "No space left on device" in line and str(out) in line and "free some space" in line, line
    assert "OSError" not in line and "Errno" not in line and "whole log" not in line, line
    assert not (out / ".tmp").exists() or list((out / ".tmp").iterdir()) == []


def test_fine_tune_from_a_stale_base_and_install(trained, prepared, tmp_path):
    base = tmp_path / "old-release.ckpt"
    assert tool("stale", str(trained.out / "checkpoints" / "last.ckpt"), str(base))["plain_load_refused"]
    done, err = train(prepared.folder, tmp_path / "tuned", "--base", str(base), "--epochs", "1", "--name", "tuned-voice", "--install")
    assert done.returncode == 0, err
    assert "base old-release.ckpt: tiny voice, 1 speaker(s), 166 symbols, 2000 epoch(s) trained" in err  # epoch index 1999
    assert "dropped hyper-parameters this piper-tts does not take or must not load: dataset, max_phoneme_ids, show_plot, " \
           "vocoder_warmstart_ckpt, warmstart_ckpt" in err
    copied = next(line for line in err.splitlines() if "warm start:" in line).split("warm start: ")[1].split()
    assert copied[0] == copied[2]  # every tensor of the same-shaped base was copied
    assert "started: 2 steps per epoch, optimizer at step 0" in err  # a fine-tune starts a fresh optimiser
    installed = Path(done.stdout.decode().strip())
    assert installed.name == "tuned-voice.onnx" and Path(f"{installed}.json").is_file()
    spoken = run_cli("piper-infer", "tuned-voice", "Installed by name.", "-o", str(tmp_path / "named.wav"))
    assert spoken.returncode == 0, spoken.stderr.decode()


def test_a_released_base_is_fetched_by_name_and_refused_at_another_sample_rate(trained, prepared, tmp_path):
    """``--base en_US-someone-medium`` is looked up in a stand-in for the Hugging Face dataset, downloaded
    into the cache, read as plain data, and refused with the reason: it was trained at 16000 Hz."""
    import os

    from catalog_server import CatalogServer

    root, folder = tmp_path / "hub", "en/en_US/someone/medium"
    files = root / "datasets/rhasspy/piper-checkpoints/resolve/main" / folder
    files.mkdir(parents=True)
    tool("stale", str(trained.out / "checkpoints" / "last.ckpt"), str(files / "epoch=9-step=90.ckpt"), "--sample-rate", "16000")
    listing = root / "api/datasets/rhasspy/piper-checkpoints/tree/main" / folder
    listing.parent.mkdir(parents=True)
    size = (files / "epoch=9-step=90.ckpt").stat().st_size
    listing.write_text(json.dumps([{"type": "file", "path": f"{folder}/epoch=3-step=30.ckpt", "size": 1},
                                   {"type": "file", "path": f"{folder}/epoch=9-step=90.ckpt", "size": size},
                                   {"type": "file", "path": f"{folder}/config.json", "size": 2}]))
    out = tmp_path / "refused"
    with CatalogServer(root) as server:
        unknown, unknown_err = train(prepared.folder, out, "--base", "en_US-nobody-medium", "--hub-url", server.url, "--epochs", "1")
        done, err = train(prepared.folder, out, "--base", "en_US-someone-medium", "--hub-url", server.url, "--epochs", "1")
    assert unknown.returncode == 3 and "there is no released checkpoint for 'en_US-nobody-medium'" in one_error_line(unknown_err)
    cached = Path(os.environ["XDG_CACHE_HOME"]) / "demod-voice" / "piper-checkpoints" / "en_US-someone-medium.ckpt"
    assert cached.stat().st_size == size  # the newest (highest step) checkpoint of the folder
    assert done.returncode == 3, err
    assert "was trained at 16000 Hz but the dataset is 22050 Hz" in one_error_line(err)
    assert not list(out.glob("*.onnx")) and not (out / "checkpoints").exists()


def test_a_checkpoint_with_python_objects_is_not_unpickled(tmp_path):
    unsafe = tmp_path / "unsafe.ckpt"
    tool("unsafe", str(unsafe))
    done = run_cli("piper-export", str(unsafe), "-o", str(tmp_path / "x.onnx"))
    assert done.returncode == 3
    assert "holds Python objects that are not plain data" in one_error_line(done.stderr.decode())
    assert not (tmp_path / "x.onnx").exists()


# --- preflight refusals (in this process: they happen before any training process starts) -----------


@pytest.fixture
def copy_of(prepared, tmp_path):
    import shutil

    target = tmp_path / "data"
    shutil.copytree(prepared.folder, target)
    return target


def refused(capsys, dataset: Path, out: Path, *extra: str) -> str:
    code = main(["piper-train", "--dataset", str(dataset), "--output-dir", str(out), *TINY, *extra])
    err = capsys.readouterr().err
    assert code == 3, err
    assert not out.exists() or not any(out.iterdir())
    return one_error_line(err)


def test_refused_missing_clip(copy_of, tmp_path, capsys):
    (copy_of / "wavs" / "clip002.wav").unlink()
    assert "1 clip(s) listed in metadata.csv are missing from wavs/: clip002" in refused(capsys, copy_of, tmp_path / "o")


def test_refused_too_few_clips_for_the_batch(copy_of, tmp_path, capsys):
    line = refused(capsys, copy_of, tmp_path / "o", "--batch-size", "4")
    assert "the training split has 4 clip(s), not more than the batch size 4: lower --batch-size to 3" in line


def test_refused_phoneme_id_out_of_range(copy_of, tmp_path, capsys):
    metadata = copy_of / "metadata.csv"
    lines = metadata.read_text().splitlines()
    lines[1] = lines[1] + " 0 999"
    metadata.write_text("\n".join(lines) + "\n")
    line = refused(capsys, copy_of, tmp_path / "o")
    assert "1 line(s) have phoneme ids outside the voice's 166 symbols: line 2 (clip001): id 999" in line


def test_refused_clip_shorter_than_the_training_segment(copy_of, tmp_path, capsys):
    import numpy as np

    soundfile.write(str(copy_of / "wavs" / "clip003.wav"), np.zeros(1000, dtype=np.int16), 22050, subtype="PCM_16")
    line = refused(capsys, copy_of, tmp_path / "o")
    assert "1 clip(s) are shorter than the training segment (0.09 s): clip003 (0.05 s)" in line
    # it named a --min-clip-seconds that piper-preprocess does not have (an unknown option there); the setting is the config's
    assert "or set preprocess.min_clip_seconds to 0.09 or more in the config file" in line and "--min-clip" not in line


def test_refused_not_enough_disk(prepared, tmp_path, capsys, monkeypatch):
    from collections import namedtuple

    from demod_voice.training import preflight

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 3 * 2**20, 3 * 2**20))
    line = refused(capsys, prepared.folder, tmp_path / "o", "--epochs", "2")
    assert "not enough free disk" in line and "3 MiB are free" in line, line  # a tiny run's needs: MiB, not "0.0 GiB"


def test_refused_quality_at_the_wrong_sample_rate(prepared, tmp_path, capsys):
    code = main(["piper-train", "--dataset", str(prepared.folder), "--output-dir", str(tmp_path / "o"), "--quality", "low"])
    assert code == 3
    assert "--quality low voices are 16000 Hz but the dataset is 22050 Hz" in one_error_line(capsys.readouterr().err)


def test_refused_resume_without_a_run_and_a_second_run_in_the_same_folder(trained, prepared, tmp_path, capsys):
    assert "no training run to resume" in refused(capsys, prepared.folder, tmp_path / "empty", "--resume")
    from demod_voice.paths import OutputLock

    starting = tmp_path / "starting"  # a run in its first epoch: its folder held, no checkpoint yet
    starting.mkdir()
    with OutputLock(starting, "training run"):
        code = main(["piper-train", "--dataset", str(prepared.folder), "--output-dir", str(starting), *TINY, "--resume"])
    line = one_error_line(capsys.readouterr().err)  # it said "there is no training run to resume"
    assert code == 1 and "is in use by another training run" in line and "no training run" not in line, line
    code = main(["piper-train", "--dataset", str(prepared.folder), "--output-dir", str(trained.out), *TINY])
    assert code == 3 and "already holds a training run: pass --resume" in one_error_line(capsys.readouterr().err)
    code = main(["piper-train", "--dataset", str(prepared.folder), "--output-dir", str(trained.out), *TINY, "--resume", "--epochs", "3"])
    assert code == 2 and "has trained 3 epoch(s) already" in one_error_line(capsys.readouterr().err)


def test_a_trained_voice_is_not_installed_over_the_default_voice_and_an_onnx_is_not_a_checkpoint(trained, prepared, tmp_path, capsys):
    """``--install --name en_US-joe-medium`` replaced the packaged default voice for every command naming none; an .onnx
    given as a checkpoint was "Python objects that are not plain data (Weights only load failed...)"."""
    code = main(["piper-train", "--dataset", str(prepared.folder), "--output-dir", str(tmp_path / "o"), *TINY, "--name",
                 "en_US-joe-medium", "--install"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "'en_US-joe-medium' is the default voice" in line and not (tmp_path / "o").exists(), line
    code = main(["piper-export", str(trained.voice), "-o", str(tmp_path / "again.onnx")])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3 and "is an exported voice, not a training checkpoint" in line and "not plain data" not in line, line


def test_an_onnx_voice_given_as_base_is_refused_before_any_work(prepared, tmp_path, capsys):
    """``--base voice.onnx`` (the voice a user has, not its .ckpt) was refused by the training process half a minute after
    it started, leaving a run folder behind (train.json, cache/, .tmp/)."""
    voice = tmp_path / "en_US-me-medium.onnx"
    voice.write_bytes(b"an exported voice")
    line = refused(capsys, prepared.folder, tmp_path / "o", "--base", str(voice))
    assert "is an exported voice, not a training checkpoint" in line and not (tmp_path / "o").exists(), line


def test_refused_output_dir_in_a_read_only_place(prepared, tmp_path, capsys, monkeypatch):
    """It was ``internal error: OSError: [Errno 30] Read-only file system``; piper-preprocess says this line."""
    import errno
    import pathlib

    out = tmp_path / "read-only" / "run"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == out:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    assert refused(capsys, prepared.folder, out) == (f"demod-voice: error: cannot create {out}: Read-only file system; "
                                                     "check the folder's permissions, or choose another place")


def test_a_file_that_is_no_checkpoint_is_refused_in_one_line(tmp_path):
    """A wav or a text file as the checkpoint (or --base) was ``IndexError: pop from empty list`` or ``KeyError: 105``."""
    (tmp_path / "fake.ckpt").write_text("hi\n")
    done = run_cli("piper-export", str(tmp_path / "fake.ckpt"), "-o", str(tmp_path / "x.onnx"))
    line = one_error_line(done.stderr.decode())
    assert done.returncode == 3 and f"{tmp_path / 'fake.ckpt'} is not a PyTorch checkpoint; give a .ckpt file" in line, line
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.onnx.json").exists()
