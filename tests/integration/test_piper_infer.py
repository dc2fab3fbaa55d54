"""``piper-infer`` end to end: the real bin/demod-voice, real piper-tts and onnxruntime, generated voices."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from conftest import BIN, run_cli
from processes import piped_cli, read_within

SHORT = "Hello there."
LONG = "Hello there. This sentence is a good deal longer than the first one, with several more words in it. And a third."


def speak(voice, text, out, *extra):
    done = run_cli("piper-infer", str(voice), text, "--output", str(out), *extra)
    assert done.returncode == 0, done.stderr.decode()
    return done


def test_writes_a_valid_wav_at_the_voice_rate(piper_voice, tmp_path):
    out = tmp_path / "hello.wav"
    done = speak(piper_voice, SHORT, out)
    info = soundfile.info(str(out))
    assert info.samplerate == 22050 and info.channels == 1 and info.subtype == "PCM_16"
    audio, _ = soundfile.read(str(out))
    assert info.frames > 22050 * 0.2 and np.abs(audio).max() > 0.1
    assert done.stdout == b""
    assert [p.name for p in tmp_path.iterdir()] == ["hello.wav"]


def test_duration_grows_with_text(piper_voice, tmp_path):
    speak(piper_voice, SHORT, tmp_path / "short.wav", "--noise-w-scale", "0")
    speak(piper_voice, LONG, tmp_path / "long.wav", "--noise-w-scale", "0")
    assert soundfile.info(str(tmp_path / "long.wav")).duration > 2 * soundfile.info(str(tmp_path / "short.wav")).duration


def test_length_scale_and_sentence_silence_lengthen_audio(piper_voice, tmp_path):
    speak(piper_voice, LONG, tmp_path / "base.wav", "--noise-w-scale", "0")
    speak(piper_voice, LONG, tmp_path / "slow.wav", "--noise-w-scale", "0", "--length-scale", "2")
    speak(piper_voice, LONG, tmp_path / "gaps.wav", "--noise-w-scale", "0", "--sentence-silence", "0.5")
    base = soundfile.info(str(tmp_path / "base.wav")).frames
    assert soundfile.info(str(tmp_path / "slow.wav")).frames > 1.5 * base
    assert soundfile.info(str(tmp_path / "gaps.wav")).frames == base + 2 * round(0.5 * 22050)


def test_config_file_supplies_defaults_and_flags_override(piper_voice, tmp_path, isolated_config):
    isolated_config.parent.mkdir(parents=True, exist_ok=True)
    isolated_config.write_text("piper:\n  length_scale: 2.0\n  noise_w_scale: 0.0\n")
    speak(piper_voice, LONG, tmp_path / "from-file.wav")
    speak(piper_voice, LONG, tmp_path / "flag.wav", "--length-scale", "1.0")
    done = run_cli("piper-infer", str(piper_voice), LONG, "-o", str(tmp_path / "env.wav"), env={"DEMOD_VOICE_PIPER_LENGTH_SCALE": "1.0"})
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(tmp_path / "env.wav")).frames == soundfile.info(str(tmp_path / "flag.wav")).frames
    assert soundfile.info(str(tmp_path / "from-file.wav")).frames > 1.5 * soundfile.info(str(tmp_path / "flag.wav")).frames


@pytest.mark.parametrize("suffix, fmt", [(".flac", "FLAC"), (".ogg", "OGG")])
def test_extension_picks_format(piper_voice, tmp_path, suffix, fmt):
    out = tmp_path / f"speech{suffix}"
    speak(piper_voice, SHORT, out)
    assert soundfile.info(str(out)).format == fmt


def test_raw_pcm_on_stdout_with_format_on_stderr(piper_voice, tmp_path):
    speak(piper_voice, LONG, tmp_path / "ref.wav", "--noise-scale", "0", "--noise-w-scale", "0")
    done = run_cli("-v", "piper-infer", str(piper_voice), LONG, "-o", "-", "--noise-scale", "0", "--noise-w-scale", "0")
    assert done.returncode == 0, done.stderr.decode()
    assert "16-bit little-endian, 22050 Hz, 1 channel" in done.stderr.decode()
    pcm = np.frombuffer(done.stdout, dtype="<i2")
    ref, _ = soundfile.read(str(tmp_path / "ref.wav"), dtype="int16")
    assert len(pcm) == len(ref)
    # the stream's sentences come in decoder windows, each scaled by the voice's level rather than
    # its own peak (not known before it ends): the file's audio, up to one gain per sentence
    assert np.corrcoef(pcm.astype(float), ref.astype(float))[0, 1] > 0.99


def test_raw_pcm_to_a_closed_stdout(piper_voice, tmp_path):
    # Started with fd 1 closed ('>&-'), Python has no sys.stdout: "internal error: AttributeError: 'NoneType' object has
    # no attribute 'buffer'; ... report it", exit 1.
    done = subprocess.run(["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, str(BIN), "piper-infer", str(piper_voice), SHORT,
                           "-o", "-"], capture_output=True, timeout=300, cwd=tmp_path)
    assert_clean_failure(done, 3, "standard output is closed: pipe it", tmp_path)


def test_output_to_a_device_names_the_stdout_spelling(piper_voice, tmp_path):
    # "-o /dev/stdout | aplay" (piper's own "-f /dev/stdout") was told to "give a file name", never that '-' streams.
    done = run_cli("piper-infer", str(piper_voice), SHORT, "-o", "/dev/stdout", cwd=tmp_path)
    assert_clean_failure(done, 3, "or '-' for raw 16-bit PCM on stdout", tmp_path)


def test_text_from_a_closed_stdin(piper_voice, tmp_path):
    # "internal error: AttributeError: 'NoneType' object has no attribute 'read'; ... report it", exit 1.
    done = subprocess.run(["sh", "-c", 'exec "$0" "$@" <&-', sys.executable, str(BIN), "piper-infer", str(piper_voice), "-",
                           "-o", str(tmp_path / "o.wav")], capture_output=True, timeout=300, cwd=tmp_path)
    assert_clean_failure(done, 3, "standard input is closed: pipe the text in", tmp_path)


def test_text_from_stdin(piper_voice, tmp_path):
    out = tmp_path / "stdin.wav"
    done = run_cli("piper-infer", str(piper_voice), "-", "-o", str(out), input=LONG)
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(out)).duration > 1.0


def _piped(voice, cwd, *extra):
    """``piper-infer VOICE - -o -`` with pipes on both ends."""
    return piped_cli(cwd, "piper-infer", str(voice), "-", "-o", "-", *extra)


def test_piped_lines_are_spoken_as_they_come(piper_voice, tmp_path):
    # `tail -f log | piper-infer VOICE - -o - | aplay`: stdin was read to its end first, so no audio came out until its
    # writer closed it (piper's own command speaks each line as it comes).
    flat = ("--noise-scale", "0", "--noise-w-scale", "0", "--sentence-silence", "0.25")
    lines = ["Disk usage is at ninety percent", "Backup finished."]
    alone = [run_cli("piper-infer", str(piper_voice), line, "-o", "-", *flat).stdout for line in lines]
    proc = _piped(piper_voice, tmp_path, *flat)
    try:
        proc.stdin.write(f"{lines[0]}\n".encode())
        proc.stdin.flush()
        first = read_within(proc.stdout, len(alone[0]), 120)  # stdin still open
        assert first == alone[0]
        proc.stdin.write(b"-----\n")  # a line of only symbols is skipped
        proc.stdin.flush()
        time.sleep(0.5)
        proc.stdin.write(f"{lines[1]}\n".encode())
        proc.stdin.close()
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
    assert rest == bytes(2 * round(0.25 * 22050)) + alone[1]


def test_piped_text_stops_cleanly_on_ctrl_c(piper_voice, tmp_path):
    proc = _piped(piper_voice, tmp_path)
    try:
        proc.stdin.write(b"Hello there.\n")
        proc.stdin.flush()
        assert len(read_within(proc.stdout, 1000, 120)) == 1000
        proc.send_signal(signal.SIGINT)  # while it waits for the next line
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    assert len(proc.stdout.read()) % 2 == 0  # whole samples
    err = proc.stderr.read().decode().strip()
    assert "interrupted" in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_piped_text_is_awaited_with_the_voice_loaded(piper_voice, tmp_path):
    # The voice's worker started when the first sentence came: that sentence waited seconds more for it to load.
    proc = _piped(piper_voice, tmp_path, "-v")
    try:
        said, deadline = b"", time.monotonic() + 120
        while b"loaded in" not in said and time.monotonic() < deadline:
            said += read_within(proc.stderr, 1, deadline - time.monotonic())
        assert b"loaded in" in said, said.decode()  # no text written yet
        proc.stdin.close()
        assert proc.wait(timeout=60) == 3  # nothing to say
    finally:
        proc.kill()


def test_a_piped_ssml_document_longer_than_the_cut_is_held_to_its_end(piper_voice, tmp_path):
    # An SSML document that came in pieces was given up at 1000 characters without its </speak> (as text with no sentence
    # end is cut there), then refused as not well-formed: text read whole holds a document of any length.
    flat = ("--noise-scale", "0", "--noise-w-scale", "0")
    head, tail = "<speak>Hello" + " " * 1100, "there.</speak>"
    whole = run_cli("piper-infer", str(piper_voice), head + tail, "-o", "-", *flat)
    assert whole.returncode == 0 and whole.stdout, whole.stderr.decode()
    proc = _piped(piper_voice, tmp_path, *flat)
    try:
        proc.stdin.write(head.encode())
        proc.stdin.flush()
        time.sleep(0.5)  # read as a piece of its own
        proc.stdin.write(tail.encode())
        proc.stdin.close()
        said = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
    assert said == whole.stdout


@pytest.mark.parametrize("text, words", [("\n\n", "the text is empty"), ("--- ***\n", "holds no words"),
                                         (b"caf\xe9 au lait\n", "not valid UTF-8 (invalid continuation byte at byte 3)")])
def test_piped_text_with_nothing_to_say(piper_voice, tmp_path, text, words):
    done = run_cli("piper-infer", str(piper_voice), "-", "-o", "-", input=text)
    assert done.returncode == 3 and done.stdout == b"", done.stderr.decode()
    err = done.stderr.decode().strip()
    assert words in err and len(err.splitlines()) == 1, err


def test_multi_speaker_by_id_and_by_name(piper_multi_voice, tmp_path):
    args = ("--noise-scale", "0", "--noise-w-scale", "0")
    speak(piper_multi_voice, SHORT, tmp_path / "id2.wav", "--speaker", "2", *args)
    speak(piper_multi_voice, SHORT, tmp_path / "name2.wav", "--speaker", "speaker_2", *args)
    speak(piper_multi_voice, SHORT, tmp_path / "id0.wav", "--speaker", "0", *args)
    by_id, _ = soundfile.read(str(tmp_path / "id2.wav"))
    by_name, _ = soundfile.read(str(tmp_path / "name2.wav"))
    other, _ = soundfile.read(str(tmp_path / "id0.wav"))
    assert np.array_equal(by_id, by_name)
    assert len(other) != len(by_id) or not np.allclose(other, by_id)


def test_gpu_request_on_cpu_machine_falls_back_and_says_so(piper_voice, tmp_path):
    done = speak(piper_voice, SHORT, tmp_path / "gpu.wav", "--gpu")
    err = done.stderr.decode()
    assert "running on CPU" in err
    assert soundfile.info(str(tmp_path / "gpu.wav")).frames > 0


# --- bad input: one line, non-zero exit, nothing written ----------------------------------------


def assert_clean_failure(done, code, words, folder):
    err = done.stderr.decode().strip()
    assert done.returncode == code, err
    assert words in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not any(p.suffix in (".wav", ".partial") or ".partial" in p.name for p in folder.iterdir())


def test_missing_model(tmp_path):
    done = run_cli("piper-infer", str(tmp_path / "nope.onnx"), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, "not found; check the path", tmp_path)


def test_a_voice_named_without_its_onnx_suffix(piper_voice, tmp_path):
    # "voice 'house' is not installed: run 'demod-voice models download house'", while piper's own command speaks
    # ./house.onnx; and "voices/house not found; check the path" for the file right there as voices/house.onnx.
    (tmp_path / "voices").mkdir()
    for folder in (tmp_path, tmp_path / "voices"):
        shutil.copy(piper_voice, folder / "house.onnx")
        shutil.copy(f"{piper_voice}.json", folder / "house.onnx.json")
    done = run_cli("piper-infer", "house", SHORT, "-o", "o.wav", cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "c")})
    assert_clean_failure(done, 3, "house.onnx is in this folder: give its path (./house.onnx)", tmp_path)
    done = run_cli("piper-infer", "voices/house", SHORT, "-o", "o.wav", cwd=tmp_path)
    assert_clean_failure(done, 3, "voices/house not found; did you mean", tmp_path)
    assert done.stderr.decode().strip().endswith("voices/house.onnx?")


def test_a_training_runs_folder_or_checkpoint_is_pointed_to_its_voice(piper_voice, tmp_path):
    """After piper-train, its output folder was "not found; check the path" (it is there), and a checkpoint was asked for
    its ".ckpt.json beside the .onnx", as if it were a voice missing its config."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(piper_voice, run / "me.onnx")
    shutil.copy(f"{piper_voice}.json", run / "me.onnx.json")
    (run / "checkpoints" / "epoch-2.ckpt").write_bytes(b"PK\x03\x04")
    done = run_cli("piper-infer", str(run), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, f"voice model {run} is a folder; give the voice's .onnx file in it: {run / 'me.onnx'}", tmp_path)
    ckpt = run / "checkpoints" / "epoch-2.ckpt"
    done = run_cli("piper-infer", str(ckpt), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, f"{ckpt} is a training checkpoint, not a voice: export it first, demod-voice piper-export", tmp_path)



def test_a_voice_installed_by_piper_train_is_spoken_by_name_beside_the_run_folder_it_is_named_after(piper_voice, tmp_path):
    """``piper-train --output-dir me --install`` names the voice after its folder and says "piper-infer me": run there,
    that was refused as "voice model .../me is a folder" though the voice was installed. The installed voice is spoken;
    a folder of that name with no such voice installed is still pointed to its .onnx."""
    run = tmp_path / "me"
    run.mkdir()
    shutil.copy(piper_voice, run / "me.onnx")
    shutil.copy(f"{piper_voice}.json", run / "me.onnx.json")
    cache = tmp_path / "cache"
    done = run_cli("piper-infer", "me", SHORT, "-o", "o.wav", cwd=tmp_path, env={"XDG_CACHE_HOME": str(cache)})
    assert_clean_failure(done, 3, f"voice model {run} is a folder; give the voice's .onnx file in it: {run / 'me.onnx'}", tmp_path)
    (cache / "demod-voice" / "piper").mkdir(parents=True)
    for suffix in (".onnx", ".onnx.json"):
        shutil.copy(run / f"me{suffix}", cache / "demod-voice" / "piper" / f"me{suffix}")
    done = run_cli("piper-infer", "me", SHORT, "-o", "o.wav", cwd=tmp_path, env={"XDG_CACHE_HOME": str(cache)})
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "o.wav").stat().st_size > 1000

def test_onnx_without_json(piper_voice, tmp_path):
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(piper_voice, lonely)
    done = run_cli("piper-infer", str(lonely), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, "needs its .onnx.json", tmp_path)
    done = run_cli("piper-infer", str(lonely), SHORT, "-o", str(tmp_path / "o.wav"), "--config-json", f"{piper_voice}.json")
    assert done.returncode == 0, done.stderr.decode()
    (tmp_path / "o.wav").unlink()
    # A mistyped --config-json was told its .onnx.json belongs beside the .onnx, which the flag is there to avoid.
    done = run_cli("piper-infer", str(lonely), SHORT, "-o", str(tmp_path / "o.wav"), "--config-json", str(tmp_path / "typo.json"))
    assert_clean_failure(done, 3, "typo.json not found: check the path given for the voice's .onnx.json", tmp_path)


@pytest.mark.parametrize("name", ["My Voice", "Zoë"])
def test_a_voice_file_named_with_a_space_or_an_accent_speaks(piper_voice, tmp_path, name):
    # its own lexicon's name ('voice.My Voice') is no lexicon name: the voice was refused with "is not a lexicon name"
    voice = tmp_path / f"{name}.onnx"
    shutil.copy(piper_voice, voice)
    shutil.copy(f"{piper_voice}.json", f"{voice}.json")
    speak(voice, SHORT, tmp_path / "o.wav")
    assert soundfile.info(str(tmp_path / "o.wav")).frames > 0


def test_corrupt_onnx(piper_voice, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a model" * 100)
    shutil.copy(f"{piper_voice}.json", f"{bad}.json")
    done = run_cli("piper-infer", str(bad), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, "not a usable ONNX model", tmp_path)


def test_json_that_is_not_a_voice_config(piper_voice, tmp_path):
    model = tmp_path / "v.onnx"
    shutil.copy(piper_voice, model)
    (tmp_path / "v.onnx.json").write_text(json.dumps({"hello": 1}))
    done = run_cli("piper-infer", str(model), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, "lacks 'num_speakers'", tmp_path)


@pytest.mark.parametrize("dotted, value", [("audio.sample_rate", "22050"), ("num_speakers", 0), ("espeak.voice", 5),
                                          ("inference.noise_scale", "x"), ("inference.length_scale", 0)])
def test_voice_config_with_a_wrong_value(piper_voice, tmp_path, dotted, value):
    # A sample rate written as text failed inside the engine: "TypeError: can't multiply sequence...", exit 1.
    model = tmp_path / "v.onnx"
    shutil.copy(piper_voice, model)
    config = json.loads(open(f"{piper_voice}.json", encoding="utf-8").read())
    *parents, key = dotted.split(".")
    node = config
    for parent in parents:
        node = node[parent]
    node[key] = value
    (tmp_path / "v.onnx.json").write_text(json.dumps(config))
    done = run_cli("piper-infer", str(model), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, f"has '{dotted}' = {json.dumps(value)}, not", tmp_path)


def test_voice_config_naming_an_espeak_voice_espeak_lacks(piper_voice, tmp_path):
    # Each sentence failed in the worker: "synthesis failed (piper backend): RuntimeError: Failed to set voice", exit 1.
    model = tmp_path / "v.onnx"
    shutil.copy(piper_voice, model)
    config = json.loads(open(f"{piper_voice}.json", encoding="utf-8").read())
    config["espeak"]["voice"] = "en_US"
    (tmp_path / "v.onnx.json").write_text(json.dumps(config))
    done = run_cli("piper-infer", str(model), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, "unknown espeak-ng voice 'en_US': use e.g. en-us", tmp_path)
    assert "'espeak.voice' of" in done.stderr.decode()


@pytest.mark.parametrize("graph, config, words", [("single", "multi", "num_speakers 3, but v.onnx speaks one speaker"),
                                                   ("multi", "single", "num_speakers 1, but v.onnx speaks several speakers")])
def test_voice_config_of_another_voice(piper_voice, piper_multi_voice, tmp_path, graph, config, words):
    # A one-speaker graph with a 3-speaker config: "synthesis failed: InvalidArgument: Invalid input name: sid", exit 1.
    voices = {"single": piper_voice, "multi": piper_multi_voice}
    shutil.copy(voices[graph], tmp_path / "v.onnx")
    shutil.copy(f"{voices[config]}.json", tmp_path / "v.onnx.json")
    done = run_cli("piper-infer", str(tmp_path / "v.onnx"), SHORT, "-o", str(tmp_path / "o.wav"))
    assert_clean_failure(done, 3, words, tmp_path)


@pytest.mark.parametrize("speaker, words", [("7", "number from 0 to 2"), ("alice", "speaker_0, speaker_1, speaker_2")])
def test_speaker_the_voice_lacks(piper_multi_voice, tmp_path, speaker, words):
    done = run_cli("piper-infer", str(piper_multi_voice), SHORT, "-o", str(tmp_path / "o.wav"), "--speaker", speaker)
    assert_clean_failure(done, 3, words, tmp_path)


def test_speaker_on_single_speaker_voice(piper_voice, tmp_path):
    done = run_cli("piper-infer", str(piper_voice), SHORT, "-o", str(tmp_path / "o.wav"), "--speaker", "3")
    assert_clean_failure(done, 3, "single speaker", tmp_path)


@pytest.mark.parametrize("voice", ["en_US-lessac-medium", "house", "house.onnx"])
def test_a_voice_alone_with_text_on_stdin_is_refused(piper_voice, tmp_path, voice):
    # piper's own command reads stdin when no text is given: the voice's name was spoken instead, exit 0.
    (tmp_path / "cache" / "demod-voice" / "piper").mkdir(parents=True)
    shutil.copy(piper_voice, tmp_path / "cache" / "demod-voice" / "piper" / "house.onnx")
    shutil.copy(f"{piper_voice}.json", tmp_path / "cache" / "demod-voice" / "piper" / "house.onnx.json")
    done = run_cli("piper-infer", voice, "-o", str(tmp_path / "o.wav"), input="Hello there.\n",
                   env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert_clean_failure(done, 2, "looks like a voice, not text", tmp_path)
    assert "- to read it from stdin" in done.stderr.decode()


@pytest.mark.parametrize("text, stdin", [("   ", None), ("-", "\n\n")])
def test_empty_text(piper_voice, tmp_path, text, stdin):
    done = run_cli("piper-infer", str(piper_voice), text, "-o", str(tmp_path / "o.wav"), input=stdin)
    assert_clean_failure(done, 3, "text is empty", tmp_path)


def test_output_in_missing_directory(piper_voice, tmp_path):
    done = run_cli("piper-infer", str(piper_voice), SHORT, "-o", str(tmp_path / "no" / "o.wav"))
    assert_clean_failure(done, 3, "does not exist", tmp_path)


def test_output_in_unwritable_directory(piper_voice, tmp_path):
    done = run_cli("piper-infer", str(piper_voice), SHORT, "-o", "/proc/o.wav")
    assert_clean_failure(done, 3, "not writable", tmp_path)


def test_existing_output_survives_a_failed_run(piper_voice, tmp_path):
    out = tmp_path / "keep.wav"
    speak(piper_voice, SHORT, out)
    before = out.read_bytes()
    done = run_cli("piper-infer", str(piper_voice), SHORT, "-o", str(out), "--speaker", "5")
    assert done.returncode == 3
    assert out.read_bytes() == before


def test_optimised_graph_is_cached_reused_and_rebuilt_when_damaged(piper_voice, tmp_path):
    cache = tmp_path / "cache"
    env = {"DEMOD_VOICE_CACHE_DIR": str(cache)}
    args = ("--noise-scale", "0", "--noise-w-scale", "0")
    first = run_cli("piper-infer", str(piper_voice), LONG, "-o", str(tmp_path / "cold.wav"), *args, env=env)
    assert first.returncode == 0, first.stderr.decode()
    entries = list((cache / "onnx").iterdir())
    # the graphs prepared for batched sentences (front, flow and decoder) and their optimised forms
    assert len(entries) == 6 and all(entry.suffix == ".onnx" for entry in entries)
    warm = run_cli("piper-infer", str(piper_voice), LONG, "-o", str(tmp_path / "warm.wav"), *args, env=env)
    assert warm.returncode == 0, warm.stderr.decode()
    cold_audio, _ = soundfile.read(str(tmp_path / "cold.wav"), dtype="int16")
    warm_audio, _ = soundfile.read(str(tmp_path / "warm.wav"), dtype="int16")
    assert len(cold_audio) == len(warm_audio)
    assert np.abs(cold_audio.astype(int) - warm_audio.astype(int)).max() <= 2  # same graph, refactored
    for entry in entries:
        entry.write_bytes(b"garbage")
    repaired = run_cli("piper-infer", str(piper_voice), SHORT, "-o", str(tmp_path / "again.wav"), env=env)
    assert repaired.returncode == 0, repaired.stderr.decode()
    assert "damaged" in repaired.stderr.decode()
    assert len([entry for entry in (cache / "onnx").iterdir() if entry.stat().st_size > 1000]) == 6
