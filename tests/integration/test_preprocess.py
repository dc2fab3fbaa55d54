"""``piper-preprocess`` on real espeak-ng speech, then piper-tts's own trainer on the result."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import FIXTURES, run_cli

QUICK = ("--min-total-seconds", "5")


def preprocess(src, out, *extra):
    return run_cli("piper-preprocess", "--input-dir", str(src), "--output-dir", str(out), *QUICK, *extra)


def train_one_step(prepared, work) -> dict:
    work.mkdir()
    done = subprocess.run([sys.executable, str(FIXTURES / "train_step.py"), str(prepared), str(work)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ljspeech_layout_with_faults_then_a_training_step(lj_dataset, tmp_path):
    out = tmp_path / "prepared"
    done = preprocess(lj_dataset, out, "--workers", "2")
    err = done.stderr.decode()
    assert done.returncode == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "ljspeech" and report["kept"] == 12 and report["clips"] == 17
    assert report["dropped_by_reason"] == {"clipped audio": 1, "silent audio": 1, "empty transcript": 1,
                                           "missing audio": 1, "duplicate id": 1}
    assert "12 of 17 clips kept" in err and "line 16 missing: missing audio" in err
    assert report["processed"]["clips"] == 16 and report["processed"]["workers"] == 2  # the duplicate is not processed
    assert "processed 16 clip(s) in" in err
    lines = (out / "metadata.csv").read_text().splitlines()
    assert len(lines) == 12 and all(len(line.split("|")) == 3 for line in lines)
    info = soundfile.info(str(out / "wavs" / "clip001.wav"))  # from a 44.1 kHz flac
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    config = json.loads((out / "config.json").read_text())
    assert config["audio"]["sample_rate"] == 22050 and config["espeak"]["voice"] == "en-us" and config["num_speakers"] == 1
    result = train_one_step(out, tmp_path / "train")
    assert result["global_step"] >= 1 and result["changed_tensors"] > 0 and result["train_size"] >= 8


def test_multi_speaker_layout_then_a_training_step(multi_dataset, tmp_path):
    out = tmp_path / "prepared"
    done = preprocess(multi_dataset, out, "--sample-rate", "16000")
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "multi" and report["kept"] == 9
    assert set(report["hours_per_speaker"]) == {"spk0", "spk1", "spk2"}
    lines = (out / "metadata.csv").read_text().splitlines()
    assert all(len(line.split("|")) == 4 for line in lines) and lines[1].split("|")[1] == "spk1"
    config = json.loads((out / "config.json").read_text())
    assert config["num_speakers"] == 3 and config["speaker_id_map"] == {"spk0": 0, "spk1": 1, "spk2": 2}
    assert config["audio"]["sample_rate"] == 16000 == soundfile.info(str(out / "wavs" / "clip000.wav")).samplerate
    result = train_one_step(out, tmp_path / "train")
    assert result["global_step"] >= 1 and result["changed_tensors"] > 0


def test_rerun_processes_only_new_or_changed_clips(lj_dataset, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(lj_dataset, src)
    out = tmp_path / "prepared"
    assert preprocess(src, out).returncode == 0
    again = preprocess(src, out, "-v")
    assert "0 clip(s) to process, 17 unchanged" in again.stderr.decode()
    metadata = src / "metadata.csv"
    metadata.write_text(metadata.read_text().replace("Rice is often served", "Rice is usually served"))
    third = preprocess(src, out, "-v")
    assert third.returncode == 0 and "1 clip(s) to process, 16 unchanged" in third.stderr.decode()
    assert json.loads((out / "report.json").read_text())["processed"]["clips"] == 1
    assert "Rice is usually served" in (out / "metadata.csv").read_text()


def test_too_little_speech_is_an_error_with_the_figure(lj_dataset, tmp_path):
    out = tmp_path / "prepared"
    done = run_cli("piper-preprocess", "--input-dir", str(lj_dataset), "--output-dir", str(out))  # default minimum 300 s
    err = done.stderr.decode()
    assert done.returncode == 3 and "training needs at least 300 s" in err and "the kept clips total" in err
    assert not (out / "metadata.csv").exists() and (out / "report.json").exists()
    # "metadata.csv was not written", but an earlier run's stayed, and piper-train went on training on the clips it listed
    (out / "metadata.csv").write_text("deleted_since|A take the user threw away.|1 0 2\n")
    again = run_cli("piper-preprocess", "--input-dir", str(lj_dataset), "--output-dir", str(out))
    assert again.returncode == 3 and "(the earlier run's was removed" in again.stderr.decode()
    assert not (out / "metadata.csv").exists()


@pytest.mark.parametrize("case, words", [
    ("no-metadata", "has no metadata.csv"),
    ("columns", "line(s) 2 differ"),
    ("encoding", "is not UTF-8 (line 2"),
    ("inside", "is inside the input directory"),
    # recordings kept beside metadata.csv: every clip was dropped as "missing audio: add the recording"
    ("beside", "has no wavs/ folder; its 1 recording(s) (a.wav, ...) are beside metadata.csv: move them into"),
    # and without metadata.csv, with the transcript beside each
    ("beside-txt", "has no wavs/ folder; its 1 recording(s) (a.wav, ...) are in src/ itself: move them and their .txt "
                   "transcripts into"),
])
def test_bad_input(tmp_path, case, words):
    src = tmp_path / "src"
    (src / "wavs").mkdir(parents=True)
    out = tmp_path / "out"
    if case == "columns":
        (src / "metadata.csv").write_text("a|Some text.\nb\n")
    elif case == "encoding":
        (src / "metadata.csv").write_bytes(b"a|Some text.\nb|caf\xe9 au lait\n")
    elif case == "inside":
        (src / "metadata.csv").write_text("a|Some text.\n")
        out = src / "prepared"
    elif case == "beside":
        (src / "metadata.csv").write_text("a|Some text.\n")
        (src / "wavs").rmdir()
        soundfile.write(str(src / "a.wav"), np.zeros(22050, dtype=np.int16), 22050)
    elif case == "beside-txt":
        (src / "wavs").rmdir()
        soundfile.write(str(src / "a.wav"), np.zeros(22050, dtype=np.int16), 22050)
        (src / "a.txt").write_text("Some text.")
    done = preprocess(src, out)
    err = done.stderr.decode().strip()
    assert done.returncode == 3 and words in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_transcripts_with_quotes_and_speakers_in_any_order_reach_the_trainer_as_written(multi_dataset, tmp_path):
    """A transcript opening with a quote (a book's dialogue) was written raw: piper's trainer reads metadata.csv with csv
    quoting, so that clip's text ran into the next lines and its audio met another clip's phonemes (two clips gone).
    Speakers were numbered by sorted name in config.json and by first appearance in the trainer, so a voice exported
    with the dataset's config swapped them."""
    import csv
    import shutil

    src = tmp_path / "src"
    shutil.copytree(multi_dataset, src)
    rows = [line.split("|") for line in (src / "metadata.csv").read_text(encoding="utf-8").splitlines() if line]
    renamed = {"spk0": "zoe", "spk1": "adam", "spk2": "mia"}  # first seen: zoe, adam, mia; sorted: adam, mia, zoe
    rows = [[clip, renamed[speaker], text] for clip, speaker, text in rows]
    rows[1][2] = '"' + rows[1][2]  # a quote opened here, closed in a later clip, as in a book
    rows[3][2] = rows[3][2].replace(" ", ' "', 1).rstrip(".") + '" he said.'
    (src / "metadata.csv").write_text("".join("|".join(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "prepared"
    done = preprocess(src, out)
    assert done.returncode == 0, done.stderr.decode()
    with open(out / "metadata.csv", encoding="utf-8") as handle:  # as piper.train's VitsDataModule reads it
        read = list(csv.reader(handle, delimiter="|"))
    assert len(read) == json.loads((out / "report.json").read_text())["kept"] == len(rows)
    assert [r[2] for r in read] == [r[2] for r in rows] and all(len(r) == 4 for r in read)
    config = json.loads((out / "config.json").read_text())
    assert config["speaker_id_map"] == {"zoe": 0, "adam": 1, "mia": 2}
    assert train_one_step(out, tmp_path / "train")["global_step"] >= 1  # piper's trainer takes it as written


def test_an_unknown_espeak_voice_is_refused_before_any_work(lj_dataset, tmp_path):
    """``--language en_US`` (a voice name's spelling) was ``internal error: RuntimeError: Failed to set voice`` after the audio
    work, leaving a resume state and an empty wavs/."""
    out = tmp_path / "prepared"
    done = preprocess(lj_dataset, out, "--language", "en_US")
    err = done.stderr.decode().strip()
    assert done.returncode == 3 and err == ("demod-voice: error: unknown espeak-ng voice 'en_US': use e.g. en-us "
                                            "(espeak-ng --voices lists them)"), err
    assert not out.exists()


def test_a_file_name_in_another_unicode_form_than_the_metadata_is_found(lj_dataset, tmp_path):
    """macOS names ``café.wav`` with a separate accent (NFD); the id typed in metadata.csv is one letter (NFC): the clip
    was dropped as "missing audio" though it was there."""
    import shutil
    import unicodedata

    src = tmp_path / "src"
    shutil.copytree(lj_dataset, src)
    (src / "wavs" / "clip000.wav").rename(src / "wavs" / unicodedata.normalize("NFD", "café 0.wav"))
    metadata = src / "metadata.csv"
    metadata.write_text(metadata.read_text(encoding="utf-8").replace("clip000|", "café 0|"), encoding="utf-8")
    out = tmp_path / "prepared"
    done = preprocess(src, out)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 12 and report["dropped_by_reason"]["missing audio"] == 1, report["dropped_clips"]
    assert (out / "wavs" / "café 0.wav").is_file()


def test_a_phones_m4a_recording_is_read(lj_dataset, tmp_path):
    """A phone's voice memo (AAC in an .m4a) beside the wavs was dropped as "missing audio" though it was there."""
    import shutil

    import av
    import numpy as np

    src = tmp_path / "src"
    shutil.copytree(lj_dataset, src)
    audio, rate = soundfile.read(str(src / "wavs" / "clip000.wav"), dtype="int16")
    (src / "wavs" / "clip000.wav").unlink()
    with av.open(str(src / "wavs" / "clip000.m4a"), "w", format="ipod") as box:
        stream = box.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, start:start + 1024]), format="s16", layout="mono")
            frame.sample_rate = rate
            box.mux(stream.encode(frame))
        box.mux(stream.encode(None))
    out = tmp_path / "prepared"
    done = preprocess(src, out)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 12 and report["dropped_by_reason"]["missing audio"] == 1, report["dropped_clips"]
    info = soundfile.info(str(out / "wavs" / "clip000.wav"))
    assert (info.samplerate, info.channels) == (22050, 1) and info.duration > 1.0


def test_each_dropped_clip_says_what_to_do(lj_dataset, tmp_path):
    """A hand-typed metadata.csv's faults were listed as "line 16 missing: missing audio", with nothing on what to do."""
    out = tmp_path / "prepared"
    done = preprocess(lj_dataset, out)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("demod-voice:   line ")]
    assert len(lines) == 5 and all("; " in line for line in lines), lines
    assert ("demod-voice:   line 16 missing: missing audio; no wavs/missing.wav (or .flac, .ogg, .mp3, .opus, .m4a, .aac) is there: add the "
            "recording, or delete the line") in lines
    assert "demod-voice:   line 17 clip000: duplicate id; an earlier line has this id: give the clip its own id and file name" in lines
    report = json.loads((out / "report.json").read_text())
    assert all(clip["fix"] for clip in report["dropped_clips"])


def test_a_header_row_is_skipped_as_such(multi_dataset, tmp_path):
    """A metadata.csv saved from a spreadsheet opens with its column titles: ``id|speaker|text`` was taken for a clip and
    dropped as "missing audio", sending the user to look for a recording named ``id``."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(multi_dataset, src)
    metadata = src / "metadata.csv"
    metadata.write_text("ID|Speaker|Text\n" + metadata.read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "prepared"
    done = preprocess(src, out)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "line 1 ID: header row; column titles, not a clip: skipped (nothing to do)" in err
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "multi" and report["kept"] == 9 and report["dropped_by_reason"] == {"header row": 1}
    assert json.loads((out / "config.json").read_text())["speaker_id_map"] == {"spk0": 0, "spk1": 1, "spk2": 2}


def test_a_line_with_a_pipe_too_many_is_dropped_not_the_run(lj_dataset, tmp_path):
    """One hand-typed line with a | inside its text refused the whole dataset ("every line needs the same columns")."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(lj_dataset, src)
    metadata = src / "metadata.csv"
    metadata.write_text(metadata.read_text(encoding="utf-8") + "clip004|Rice is | often | served.\n", encoding="utf-8")
    out = tmp_path / "prepared"
    done = preprocess(src, out)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert ("line 18 clip004: wrong column count (4; the other lines have 3); a | too many or too few (one inside the text?): "
            "make the line like the others") in err
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 12 and report["clips"] == 18


def test_recordings_with_a_text_file_beside_each_are_a_dataset(lj_dataset, tmp_path):
    """Recordings kept as ``wavs/clip1.wav`` + ``wavs/clip1.txt`` (as many recorders and corpora have them), no metadata.csv:
    refused as "has no metadata.csv", leaving the user to write one by hand. Each .txt is the clip's transcript; a
    recording without one (or with an empty one) is dropped saying so, by name, not by a line number."""
    import shutil

    src = tmp_path / "src"
    (src / "wavs").mkdir(parents=True)
    lines = [line.split("|") for line in (lj_dataset / "metadata.csv").read_text(encoding="utf-8").splitlines()[:6]]
    for clip, text, _normalized in lines:
        audio = next((lj_dataset / "wavs").glob(f"{clip}.*"))
        shutil.copy(audio, src / "wavs" / audio.name)
        if clip != "clip004":
            (src / "wavs" / f"{clip}.txt").write_text("" if clip == "clip005" else text.replace(" the ", "\nthe "), encoding="utf-8")
    out = tmp_path / "prepared"
    done = preprocess(src, out)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "demod-voice:   clip004: missing transcript; no clip004.txt beside it in wavs/: write what is said into one" in err
    assert "demod-voice:   clip005: empty transcript file; write what is said into clip005.txt" in err
    report = json.loads((out / "report.json").read_text())
    assert report["layout"] == "text files" and report["kept"] == 4 and not report["unlisted"]
    rows = [line.split("|") for line in (out / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    assert [row[:2] for row in rows] == [[clip, text] for clip, text, _ in lines[:4]]
    (src / "wavs" / "clip000.txt").write_bytes(b"caf\xe9")
    done = preprocess(src, out)
    assert done.returncode == 3 and "clip000.txt is not UTF-8" in done.stderr.decode(), done.stderr.decode()
