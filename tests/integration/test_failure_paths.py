"""Failure paths (issue 23, outside the engine): one-line errors on the right stream, closed pipes,
dataset ids that would write outside their folder, the original tool's CSV, truthful docs, and
resume that notices everything it should."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import BIN, ROOT, run_cli, voiced_signal

from demod_voice.errors import InputError, OutputFull, RuntimeFailure

# --- the writer: library errors become one line naming the file --------------------------------


def chunk(seconds: float = 0.5):
    from demod_voice.audio.chunks import AudioChunk

    return AudioChunk(voiced_signal(seconds, 22050), 22050)


def test_libsndfile_system_error_on_a_full_disk_is_output_full(tmp_path, monkeypatch):
    from demod_voice.audio import writer

    sink = writer.FileSink(tmp_path / "o.wav")
    sink.write(chunk())

    def full(*args, **kwargs):
        raise soundfile.LibsndfileError(2, "")  # what libsndfile raises for ENOSPC: "System error."

    monkeypatch.setattr(soundfile.SoundFile, "write", full)
    monkeypatch.setattr(writer, "free_bytes", lambda folder: 4096)
    with pytest.raises(OutputFull, match=r"cannot write .*o\.wav: no space left on its filesystem \(4 KiB free\)"):
        sink.write(chunk())
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_a_write_error_with_room_left_names_the_file_and_the_cause(tmp_path, monkeypatch):
    from demod_voice.audio import writer

    sink = writer.FileSink(tmp_path / "o.flac")
    sink.write(chunk())
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(RuntimeFailure, match=r"cannot write .*o\.flac: Input/output error") as caught:
        sink.commit()
    assert not isinstance(caught.value, OutputFull)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    sink = writer.FileSink(tmp_path / "p.wav")
    sink.write(chunk())
    with pytest.raises(OutputFull):
        sink.commit()
    assert list(tmp_path.iterdir()) == []


def test_a_full_manifest_disk_is_output_full(tmp_path, monkeypatch):
    from demod_voice.engine.jobs import LoadSpec, SynthesisJob
    from demod_voice.resume import Manifest

    (tmp_path / "a.wav").write_bytes(b"x")
    manifest = Manifest(tmp_path)
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    job = SynthesisJob(LoadSpec("piper", "m.onnx"), "Hi.", str(tmp_path / "a.wav"), label="jobs.csv:2")
    with pytest.raises(OutputFull, match="cannot record jobs.csv:2 in the manifest"):
        manifest.record(job, "key")


# --- cli.main: the last line of defence, SIGPIPE -------------------------------------------------


def test_an_unexpected_exception_is_one_line_unless_vv(monkeypatch, capsys):
    from demod_voice.cli import main as cli_main
    from demod_voice.cli import manage

    def broken(args):
        return 1 / 0

    monkeypatch.setattr(manage, "_cmd_config_show", broken)
    assert cli_main.main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("demod-voice: error: internal error: ZeroDivisionError: division by zero; "
                           "rerun with -vv and report it")
    assert cli_main.main(["-vv", "config", "show"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["batch output folder", "config init", "models remove", "voices export", "download folder"])
def test_os_errors_are_one_line(case, tmp_path, monkeypatch, capsys):
    from demod_voice.cli.main import main

    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "demod-voice"
    if case == "batch output folder":
        (tmp_path / "j.csv").write_text("text,output\nHi.,a.wav\n")
        voice = tmp_path / "v.onnx"
        voice.write_bytes(b"")
        (tmp_path / "v.onnx.json").write_text(json.dumps({"num_speakers": 1, "audio": {"sample_rate": 22050},
                                                          "espeak": {"voice": "en-us"}, "phoneme_id_map": {"a": [1]}}))
        code = main(["batch", str(tmp_path / "j.csv"), "--output-dir", str(blocker / "out"), "--model", str(voice)])
        words = "cannot create the output directory"
    elif case == "config init":
        code = main(["config", "init", "--config", str(blocker / "config.yaml")])
        words = "cannot write the config file"
    elif case == "models remove":
        (cache / "piper" / "v.onnx").mkdir(parents=True)
        code = main(["models", "remove", "v"])
        words = "models remove: cannot use the model cache"
    elif case == "voices export":
        from demod_voice.voices.profiles import profiles_dir, write_profile

        write_profile(profiles_dir(cache) / "alice.npz", "alice", "m", [], np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 1), np.float32))
        monkeypatch.setattr(shutil, "copyfile", lambda a, b: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
        code = main(["voices", "export", "alice", str(tmp_path / "alice.npz")])
        words = "voices export: No space left on device"
    else:
        from demod_voice.models.download import fetch

        with pytest.raises(InputError, match="cannot save the download of http://127.0.0.1:9/x in"):
            fetch("http://127.0.0.1:9/x", blocker / "voices" / "x.onnx")
        return
    err = capsys.readouterr().err
    assert code in (1, 3) and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_a_closed_pipe_ends_quietly(piper_voice, tmp_path):
    text = " ".join(f"Sentence {i} goes on for a while." for i in range(30))
    proc = subprocess.Popen([sys.executable, str(BIN), "piper-infer", str(piper_voice), text, "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(100)) == 100  # head -c 100
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


def test_models_list_into_a_closed_pipe_ends_quietly(tmp_path):
    cache = tmp_path / "cache"
    folder = cache / "demod-voice" / "piper"
    folder.mkdir(parents=True)
    for i in range(1500):  # about 150 kB of listing: more than a pipe holds
        (folder / f"xx_XX-voice{i:04d}-medium.onnx").write_bytes(b"")
        (folder / f"xx_XX-voice{i:04d}-medium.onnx.json").write_text("{}")
    proc = subprocess.Popen([sys.executable, str(BIN), "models", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert proc.stdout.readline().startswith(b"piper")  # | head -1
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err


# --- batch: diagnostics on stderr, progress only on a terminal -----------------------------------


def test_row_errors_go_to_stderr_and_bars_only_when_asked(piper_voice, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    Path(f"{broken}.json").write_text(Path(f"{piper_voice}.json").read_text())
    csv_file = tmp_path / "j.csv"
    csv_file.write_text(f"text,output,model\nA.,a.wav,{broken}\nB.,b.wav,{piper_voice}\n")
    done = run_cli("batch", str(csv_file), "--output-dir", str(tmp_path / "out"))
    err = done.stderr.decode()
    assert done.returncode == 1 and done.stdout == b""
    assert "j.csv:2: " in err and "not a usable ONNX model" in err
    assert "%|" not in err and "\r" not in err  # stderr is a pipe here: no progress bar
    shutil.rmtree(tmp_path / "out")
    done = run_cli("batch", str(csv_file), "--output-dir", str(tmp_path / "out"), "--progress")
    assert done.stdout == b"" and "%|" in done.stderr.decode()


# --- piper-preprocess: ids and speakers are plain names -------------------------------------------


def test_preprocess_drops_ids_that_would_leave_its_folders(tmp_path):
    data = tmp_path / "data"
    (data / "wavs").mkdir(parents=True)
    for name in ("good.wav", "../../escaped.wav", "sub/x.wav"):
        (data / "wavs" / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(data / "wavs" / name), voiced_signal(2.0, 22050), 22050)
    before = (tmp_path / "escaped.wav").read_bytes()
    (data / "metadata.csv").write_text("good|Hello there.\n../../escaped|Hello there.\nsub/x|Hello there.\n/etc/passwd|Hello.\n")
    out = tmp_path / "out" / "prepared"
    out.parent.mkdir()  # before the fix, wavs/../../escaped.wav landed here, outside the output folder
    done = run_cli("piper-preprocess", "--input-dir", str(data), "--output-dir", str(out), "--min-total-seconds", "0")
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "report.json").read_text())
    reasons = {clip["id"]: clip["reason"] for clip in report["dropped_clips"]}
    assert reasons == {"../../escaped": "unsafe id (it has a path separator)", "sub/x": "unsafe id (it has a path separator)",
                       "/etc/passwd": "unsafe id (it has a path separator)"}
    assert report["kept"] == 1 and sorted(p.name for p in (out / "wavs").iterdir()) == ["good.wav"]
    assert (tmp_path / "escaped.wav").read_bytes() == before and not (tmp_path / "out" / "escaped.wav").exists()


def test_model_names_that_become_cache_files_are_plain(tmp_path):
    from demod_voice.models.registry import download_piper_voice, piper_dir

    done = run_cli("models", "remove", "../../precious")
    assert done.returncode == 3 and "cannot become a file name" in done.stderr.decode()
    cache = tmp_path / "cache"
    piper_dir(cache).mkdir(parents=True)
    (piper_dir(cache) / "voices.json").write_text(json.dumps({"../../evil": {"files": {"a.onnx": {}, "a.onnx.json": {}}}}))
    with pytest.raises(InputError, match="the catalog's voice name '../../evil' cannot become a file name"):
        download_piper_voice("../../evil", "http://127.0.0.1:9/", cache, progress=False)


# --- the original tool's CSV ---------------------------------------------------------------------


def test_the_original_tools_documented_row_runs_as_written(xtts_model, references, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # The original tool's README: reference,text,output,language,speaker / /path/to/ref.wav,"Hello",/path/to/out.wav,en,0
    row = '/path/to/ref.wav,"Hello",/path/to/out.wav,en,0'.replace("/path/to/ref.wav", str(references["ref.wav"]))
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("reference,text,output,language,speaker\n" + row.replace("/path/to/out.wav", str(out / "out.wav")) + "\n")
    env = {"DEMOD_VOICE_XTTS_MODEL_DIR": str(xtts_model), "DEMOD_VOICE_XTTS_MAX_NEW_TOKENS": "24"}
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(out / "out.wav")).samplerate == 24000
    # An absolute output outside --output-dir needs the flag, and the error names it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    csv_file.write_text("reference,text,output,language,speaker\n" + row.replace("/path/to/out.wav", str(elsewhere / "o.wav")) + "\n")
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--dry-run", env=env)
    assert done.returncode == 3 and "--allow-outside-output-dir" in done.stderr.decode()
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--dry-run", "--allow-outside-output-dir", env=env)
    assert done.returncode == 0, done.stderr.decode()
    # Any speaker but 0 or empty on an XTTS row stays an error.
    csv_file.write_text("reference,text,output,language,speaker\n" + row.replace("/path/to/out.wav", "x.wav")[:-1] + "3\n")
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--dry-run", env=env)
    assert done.returncode == 3 and "the speaker column is for Piper voices" in done.stderr.decode()


# --- truthful docs, dry run, resume --------------------------------------------------------------


def test_the_cache_paths_in_the_readme_are_the_ones_used(tmp_path, piper_voice):
    from demod_voice.backends.whisper.request import recogniser_spec
    from demod_voice.health import installed_voices
    from demod_voice.models.registry import piper_dir, released_xtts_dir
    from demod_voice.voices.profiles import profiles_dir
    from demod_voice.voices.references import latents_dir, load_latents, save_latents

    readme = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    cache = Path("<cache>")
    whisper = Path(recogniser_spec("de", None, str(cache)).model).parent  # where a named Whisper model is downloaded
    used = {piper_dir(cache), released_xtts_dir(cache).parents[1], latents_dir(cache), profiles_dir(cache),
            cache / "onnx", cache / "tinygrad", whisper}
    mentioned = {Path(m) for m in re.findall(r"<cache>/[a-z]+(?=/)", readme)}
    assert mentioned and mentioned <= {Path(str(p)) for p in used}, mentioned - used
    voice_cache = re.search(r"\*\*Voice cache\*\*.*?`(<cache>/[a-z]+)/`", readme, re.S).group(1)
    assert Path(voice_cache) == latents_dir(cache)
    deep = re.search(r"`--deep` also loads each\s+voice in `(<cache>/[a-z]+)/\*\.onnx`", readme).group(1)
    assert Path(deep) == piper_dir(cache)
    # ... and the code really reads and writes there.
    real = tmp_path / "cache"
    save_latents(str(real), "k", np.zeros(2, np.float32), np.zeros(2, np.float32), {})
    assert (latents_dir(real) / "k.npz").is_file() and load_latents(str(real), "k") is not None
    piper_dir(real).mkdir(parents=True)
    shutil.copy(piper_voice, piper_dir(real) / "v.onnx")
    shutil.copy(f"{piper_voice}.json", piper_dir(real) / "v.onnx.json")
    # the cache's voices first, then voices embedded in installed packages (the voice extra's en_US-joe-medium)
    assert installed_voices(real)[:1] == [str(piper_dir(real) / "v.onnx")]
    assert all(str(real) not in voice for voice in installed_voices(real)[1:])


def test_a_dry_run_downloads_nothing_and_says_what_it_would_fetch(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("models:\n  auto_download: true\n  catalog_url: http://127.0.0.1:9/\n")
    csv_file = tmp_path / "j.csv"
    csv_file.write_text("text,output,model\nHi.,a.wav,en_US-lessac-medium\nHo.,b.wav,en_US-lessac-medium\n")
    done = run_cli("--config", str(config), "batch", str(csv_file), "--output-dir", str(tmp_path / "out"), "--dry-run")
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "2 rows are valid (2 piper)" in err and "would first download the voice en_US-lessac-medium" in err
    assert "used by 2 row(s)" in err and "cannot reach" not in err
    assert not (Path(os.environ["XDG_CACHE_HOME"]) / "demod-voice" / "piper").exists() and not (tmp_path / "out").exists()


def test_editing_the_voice_config_redoes_the_row(piper_voice, tmp_path):
    voice = tmp_path / "v.onnx"
    shutil.copy(piper_voice, voice)
    shutil.copy(f"{piper_voice}.json", f"{voice}.json")
    csv_file = tmp_path / "j.csv"
    csv_file.write_text(f"text,output,model\nHello.,a.wav,{voice}\n")
    out = tmp_path / "out"
    assert run_cli("batch", str(csv_file), "--output-dir", str(out)).returncode == 0
    config = json.loads(Path(f"{voice}.json").read_text())
    config.setdefault("inference", {})["length_scale"] = 1.5  # the voice now speaks slower
    Path(f"{voice}.json").write_text(json.dumps(config))
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--report", str(tmp_path / "r.jsonl"))
    assert done.returncode == 0
    assert [json.loads(line)["status"] for line in (tmp_path / "r.jsonl").read_text().splitlines()] == ["ok"]


def test_preprocess_keeps_its_progress_when_stopped_and_drops_a_failing_clip(lj_dataset, tmp_path, monkeypatch):
    from demod_voice.errors import Interrupted
    from demod_voice.training import preprocess

    src = tmp_path / "src"
    shutil.copytree(lj_dataset, src)
    out = tmp_path / "out"
    request = preprocess.PreprocessRequest(src, out, preprocess.Settings(), workers=1, min_total_seconds=0, progress=False, quiet=True)
    monkeypatch.setattr(preprocess, "SAVE_EVERY", 0.0)
    real = preprocess.process_clip
    calls = []

    def stop_at_the_fourth(*args):
        calls.append(args[0].clip_id)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(preprocess, "process_clip", stop_at_the_fourth)
    with pytest.raises(Interrupted, match="stopped after 3 of 16 clip"):  # what was kept and the command to go on (8f7bc1b)
        preprocess.run_preprocess(request)
    saved = json.loads((out / preprocess.STATE).read_text())
    assert sorted(r["clip_id"] for r in saved) == sorted(calls[:3])
    # The rerun does only the rest; a clip whose processing raises is dropped with its reason, not the run.
    calls.clear()
    first_text = next(r["text"] for r in saved if r["status"] == "kept")
    real_phonemize = preprocess._phonemize
    monkeypatch.setattr(preprocess, "process_clip", lambda *args: calls.append(args[0].clip_id) or real(*args))
    monkeypatch.setattr(preprocess, "_phonemize", lambda text, voice: (_ for _ in ()).throw(RuntimeError("espeak crashed"))
                        if "Rice" in text else real_phonemize(text, voice))
    report = preprocess.run_preprocess(request)
    assert not set(calls) & {r["clip_id"] for r in saved}
    failed = [c for c in report["dropped_clips"] if c["reason"].startswith("failed: RuntimeError: espeak crashed")]
    assert len(failed) == 1 and report["kept"] == 11 and first_text
    state = {r["clip_id"] for r in json.loads((out / preprocess.STATE).read_text())}
    assert failed[0]["id"] not in state  # tried again next run
