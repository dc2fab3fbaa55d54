"""``batch`` end to end with real Piper and XTTS workers: validation, confinement, crashes, Ctrl-C, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import soundfile
from conftest import BIN, run_cli
from processes import children, wait_for

XTTS_ENV = {"DEMOD_VOICE_XTTS_MAX_NEW_TOKENS": "24"}


def write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def report(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def outputs(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".demod"))


def test_piper_and_xtts_rows_in_one_csv(piper_voice, piper_multi_voice, xtts_model, references, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    csv_file = write_csv(tmp_path / "jobs.csv", (
        "reference,text,output,language,speaker,backend,model\n"
        f',"Hello, world.",one.wav,,,piper,{piper_voice}\n'
        f',"Quoted text,\nover two lines.",voices/two.flac,,speaker_1,,{piper_multi_voice}\n'
        f"{references['ref.wav']},Cloned voice.,three.wav,en,,,{xtts_model}\n"
        # model paths in a CSV are relative to the CSV's folder, for XTTS folders and Piper voices alike
        f"{references['ref.wav']}|{references['ref.flac']},Two references.,four.ogg,de,,xtts,{os.path.relpath(xtts_model, tmp_path)}\n"
        f",Relative voice.,five.wav,,,piper,{os.path.relpath(piper_voice, tmp_path)}\n"
    ), bom=True)
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--report", str(tmp_path / "r.jsonl"), env=XTTS_ENV,
                   cwd=out)
    assert done.returncode == 0, done.stderr.decode()
    assert outputs(out) == ["five.wav", "four.ogg", "one.wav", "three.wav", "voices/two.flac"]
    assert soundfile.info(str(out / "one.wav")).samplerate == 22050
    assert soundfile.info(str(out / "three.wav")).samplerate == 24000
    rows = sorted(report(tmp_path / "r.jsonl"), key=lambda r: r["row"])
    assert [r["row"] for r in rows] == [2, 3, 5, 6, 7]  # the quoted newline makes line 4 part of row 3
    assert all(r["status"] == "ok" and r["duration"] > 0 and r["error"] is None for r in rows)
    assert "5 done, 0 failed, 0 already complete" in done.stderr.decode()


def test_xtts_rows_with_one_set_of_settings_are_generated_together(xtts_model, references, tmp_path):
    # Rows with the same settings go to the worker at once, whatever their voices; their sentences
    # share GPT batches (each conditioned on its own row's voice), and each row still gets its own
    # complete file and report line.
    out = tmp_path / "out"
    out.mkdir()
    csv_file = write_csv(tmp_path / "jobs.csv", "reference,text,output,model\n" + "".join(
        f"{references['ref.wav']},{text},{name},{xtts_model}\n"
        for text, name in (("First row.", "a.wav"), ("Second row. It has two sentences.", "b.wav"), ("Third.", "c.wav"))
    ) + f"{references['ref.flac']},Another voice.,d.wav,{xtts_model}\n")
    done = run_cli("-vv", "batch", str(csv_file), "--output-dir", str(out), "--report", str(tmp_path / "r.jsonl"),
                   env=XTTS_ENV)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "generated 5 sentence(s) together" in err
    assert outputs(out) == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert all(soundfile.info(str(out / name)).frames > 0 for name in ("a.wav", "b.wav", "c.wav", "d.wav"))
    # b.wav is two sentences with the default 0.2 s pause between them
    assert soundfile.info(str(out / "b.wav")).duration > soundfile.info(str(out / "a.wav")).duration
    assert [r["status"] for r in report(tmp_path / "r.jsonl")] == ["ok"] * 4


def test_every_bad_row_is_reported_at_once_and_nothing_is_written(piper_voice, references, tmp_path):
    out = tmp_path / "out"
    (out / "inside").mkdir(parents=True)
    os.symlink(tmp_path, out / "inside" / "escape")
    csv_file = write_csv(tmp_path / "bad.csv", (
        "reference,text,output,language,speaker,backend,model\n"
        f",Fine row.,ok.wav,,,piper,{piper_voice}\n"  # 2: valid
        f",,empty.wav,,,piper,{piper_voice}\n"  # 3: empty text
        f",Hi.,../up.wav,,,piper,{piper_voice}\n"  # 4: traversal
        f",Hi.,/tmp/abs.wav,,,piper,{piper_voice}\n"  # 5: absolute
        f",Hi.,inside/escape/x.wav,,,piper,{piper_voice}\n"  # 6: symlink
        f",Hi.,ok.wav,,,piper,{piper_voice}\n"  # 7: duplicate output
        ",Hi.,m.wav,,,piper,missing.onnx\n"  # 8: missing model
        f",Hi.,s.wav,,9,piper,{piper_voice}\n"  # 9: bad speaker
        f"{references['ref.wav']},Hi.,l.wav,xx,,,\n"  # 10: unknown language
        ",Hi.,b.wav,,,espeak,\n"  # 11: unknown backend
        "missing.wav,Hi.,r.wav,en,,,\n"  # 12: missing reference
    ))
    done = run_cli("batch", str(csv_file), "--output-dir", str(out))
    err = done.stderr.decode()
    assert done.returncode == 3, err
    for line, words in [(3, "text is empty"), (4, "climbs out"), (5, "outside the output directory"), (6, "symbolic link"),
                        (7, "also written by line 2"), (8, "not found"), (9, "single speaker"),
                        (10, "cannot speak language 'xx'"), (11, "unknown backend 'espeak'"), (12, "not found")]:
        assert f"bad.csv:{line}: " in err and words in err.split(f"bad.csv:{line}: ")[1].splitlines()[0], (line, err)
    assert "bad.csv:2:" not in err
    assert "10 row(s) of bad.csv have problems" in err and "Traceback" not in err
    assert outputs(out) == [] and not (tmp_path / "abs.wav").exists()


def test_dry_run_and_header_errors(piper_voice, tmp_path):
    good = write_csv(tmp_path / "good.csv", f"text,output,model\nHello.,a.wav,{piper_voice}\n")
    done = run_cli("batch", str(good), "--output-dir", str(tmp_path), "--dry-run")
    assert done.returncode == 0 and "1 rows are valid (1 piper); dry run" in done.stderr.decode()
    assert not (tmp_path / "a.wav").exists()
    bad = write_csv(tmp_path / "bad.csv", "txt,output\nHello.,a.wav\n")
    done = run_cli("batch", str(bad), "--output-dir", str(tmp_path))
    assert done.returncode == 3 and "unknown column(s) txt" in done.stderr.decode()
    # a spreadsheet's capitalised header is the same columns
    capital = write_csv(tmp_path / "capital.csv", f"Text,Output,Model\nHello.,a.wav,{piper_voice}\n")
    done = run_cli("batch", str(capital), "--output-dir", str(tmp_path), "--dry-run")
    assert done.returncode == 0 and "1 rows are valid" in done.stderr.decode(), done.stderr.decode()
    # a cell past the csv module's limit is named as what it is, not as a quoting problem
    huge = write_csv(tmp_path / "huge.csv", "text,output\n" + "word " * 30_000 + ",a.wav\n")
    done = run_cli("batch", str(huge), "--output-dir", str(tmp_path))
    assert done.returncode == 3 and "a cell longer than 131,072 characters" in done.stderr.decode(), done.stderr.decode()
    # a text holding an unquoted comma moved every column after it ("Hello" spoken into the file ' world.'): refused, saying
    # why; a trailing empty field (as spreadsheets write) is not a problem
    shifted = write_csv(tmp_path / "shifted.csv", f"text,output,model\nHello, world.,a.wav,{piper_voice}\nFine.,b.wav,{piper_voice},\n")
    done = run_cli("batch", str(shifted), "--output-dir", str(tmp_path), "--dry-run")
    err = done.stderr.decode()
    assert done.returncode == 3 and "shifted.csv:2: the row has 1 field(s) more than the header's columns" in err, err
    assert "in double quotes" in err and "shifted.csv:3" not in err
    # an output path past what the system's paths hold was an internal error (exit 1) that stopped the whole check
    deep = write_csv(tmp_path / "deep.csv", "text,output\nHi.," + "/".join(["d" * 200] * 21) + "/x.wav\n")
    done = run_cli("batch", str(deep), "--output-dir", str(tmp_path), "--model", str(piper_voice), "--dry-run")
    assert done.returncode == 3 and "deep.csv:2: output" in done.stderr.decode() and "at most 1,024" in done.stderr.decode()
    # an output folder that cannot be made (a place that holds no folders) is the user's to change: exit 3, not 1
    done = run_cli("batch", str(good), "--output-dir", "/proc/demod-voice-test/out")
    assert done.returncode == 3 and "cannot create the output directory" in done.stderr.decode(), done.stderr.decode()
    assert done.stderr.decode().count("\n") == 1 and "choose another" in done.stderr.decode()


def many_rows(folder: Path, voice: Path, n: int) -> Path:
    text = "This row is long enough to keep a worker busy for a moment. It has two sentences."
    lines = "".join(f'"{text} Row {i}.",row{i:03d}.wav\n' for i in range(n))
    return write_csv(folder / "many.csv", "text,output\n" + lines)


def start_batch(csv_file: Path, out: Path, voice: Path, *extra: str) -> subprocess.Popen:
    # SIGINT at its default, as under a terminal: a suite started as a background job (`cmd &` in a
    # script) inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
    return subprocess.Popen([sys.executable, str(BIN), "batch", str(csv_file), "--output-dir", str(out), "--model", str(voice),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finished_rows(out: Path) -> int:
    manifest = out / ".demod-voice-manifest.jsonl"
    return len(manifest.read_text().splitlines()) if manifest.exists() else 0


def test_a_long_file_says_it_is_being_checked_first(piper_voice, tmp_path):
    from demod_voice.batch.run import SAY_CHECKING

    for count in (3, SAY_CHECKING):
        csv_file = write_csv(tmp_path / f"rows{count}.csv", "text,output\n" + "".join(f"Row {i}.,r{i}.wav\n" for i in range(count)))
        done = run_cli("batch", str(csv_file), "--output-dir", str(tmp_path / "out"), "--model", str(piper_voice), "--dry-run")
        assert done.returncode == 0, done.stderr.decode()
        said = f"checking {count:,} rows before any is made" in done.stderr.decode()  # as the progress line writes it (was 2000)
        assert f"{count:,} rows are valid" in done.stderr.decode(), done.stderr.decode()
        assert said == (count >= SAY_CHECKING), done.stderr.decode()
    quiet = run_cli("-q", "batch", str(csv_file), "--output-dir", str(tmp_path / "out"), "--model", str(piper_voice), "--dry-run")
    assert quiet.returncode == 0 and "checking" not in quiet.stderr.decode()


def test_a_worker_killed_mid_batch_costs_a_retry_not_the_batch(piper_voice, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    csv_file = many_rows(tmp_path, piper_voice, 120)
    # One worker: the one that made the first rows, so it is killed with rows in hand. With two, the
    # second may still be loading its voice when the first has made its rows (seen in CI: killing that
    # one is a load failure, "while loading ...; trying again", which other tests cover).
    proc = start_batch(csv_file, out, piper_voice, "--report", str(tmp_path / "r.jsonl"), "--workers", "1")
    wait_for(lambda: finished_rows(out) >= 3)
    workers = children(proc.pid)
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    # Piper rows of one voice are handed over together: the killed hand-over is retried in smaller groups.
    assert "killed by SIGKILL" in err.decode() and ("retrying them in groups of" in err.decode()
                                                    or "retrying it on a fresh worker" in err.decode())
    assert len(outputs(out)) == 120 and all(r["status"] == "ok" for r in report(tmp_path / "r.jsonl"))
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_ctrl_c_stops_cleanly_and_a_rerun_does_only_the_rest(piper_voice, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    csv_file = many_rows(tmp_path, piper_voice, 60)
    proc = start_batch(csv_file, out, piper_voice)
    wait_for(lambda: finished_rows(out) >= 5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode() and "not run" in err.decode()
    # the last line of an overnight run's log says how to go on
    assert "rerun the same command to make the rest" in err.decode().strip().splitlines()[-1], err.decode()
    first = finished_rows(out)
    assert 5 <= first < 60
    assert len(outputs(out)) == first  # finished files intact, no partial ones
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice), "--report", str(tmp_path / "r.jsonl"))
    assert done.returncode == 0, done.stderr.decode()
    statuses = [r["status"] for r in report(tmp_path / "r.jsonl")]
    assert statuses.count("skipped") == first and statuses.count("ok") == 60 - first
    assert len(outputs(out)) == 60


def test_failed_rows_are_recorded_and_the_batch_goes_on_unless_fail_fast(piper_voice, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    Path(f"{broken}.json").write_text(Path(f"{piper_voice}.json").read_text())
    csv_file = write_csv(tmp_path / "j.csv", f"text,output,model\nA.,a.wav,{broken}\nB.,b.wav,{piper_voice}\nC.,c.wav,{piper_voice}\n")
    out = tmp_path / "out"
    out.mkdir()
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--report", str(tmp_path / "r.jsonl"))
    assert done.returncode == 1
    rows = sorted(report(tmp_path / "r.jsonl"), key=lambda r: r["row"])
    assert [r["status"] for r in rows] == ["failed", "ok", "ok"]
    assert "not a usable ONNX model" in rows[0]["error"]
    assert outputs(out) == ["b.wav", "c.wav"]
    (out / "b.wav").unlink()
    (out / "c.wav").unlink()
    (out / ".demod-voice-manifest.jsonl").unlink()
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--fail-fast")
    assert done.returncode == 1 and "--fail-fast" in done.stderr.decode() and "2 not run" in done.stderr.decode()
    assert outputs(out) == []


def test_changed_inputs_are_redone(piper_voice, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    csv_file = write_csv(tmp_path / "j.csv", f"text,output,model\nFirst.,a.wav,{piper_voice}\nSecond.,b.wav,{piper_voice}\n")
    assert run_cli("batch", str(csv_file), "--output-dir", str(out)).returncode == 0
    write_csv(csv_file, f"text,output,model\nFirst.,a.wav,{piper_voice}\n\"Second, changed.\",b.wav,{piper_voice}\n")
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--report", str(tmp_path / "r.jsonl"))
    assert done.returncode == 0
    assert [r["status"] for r in sorted(report(tmp_path / "r.jsonl"), key=lambda r: r["row"])] == ["skipped", "ok"]
    (out / "a.wav").write_bytes(b"truncated")  # a damaged output is not "complete"
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--report", str(tmp_path / "r.jsonl"))
    assert [r["status"] for r in sorted(report(tmp_path / "r.jsonl"), key=lambda r: r["row"])] == ["ok", "skipped"]


def test_opus_rows_are_made_and_skipped_on_a_rerun(piper_voice, tmp_path):
    """A row's ``line.opus`` refused the whole file ("must end in .wav, .flac, .ogg, .mp3") though the server speaks opus."""
    import av

    out = tmp_path / "out"
    csv_file = write_csv(tmp_path / "j.csv", "text,output\r\nFirst.,a.opus\r\nSecond.,b.mp3\r\nThird.,c/c.flac\r\n", bom=True)
    done = run_cli("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice))
    assert done.returncode == 0, done.stderr.decode()
    assert outputs(out) == ["a.opus", "b.mp3", "c/c.flac"]
    with av.open(str(out / "a.opus")) as box:
        assert (box.streams.audio[0].codec_context.name, box.streams.audio[0].rate) == ("opus", 48000)
        assert sum(frame.samples for frame in box.decode(audio=0)) > 0.2 * 48000
    again = run_cli("batch", str(csv_file), "--output-dir", str(out), "--model", str(piper_voice))
    assert again.returncode == 0 and "0 done, 0 failed, 3 already complete" in again.stderr.decode(), again.stderr.decode()


def test_a_sheet_keyed_by_id_names_its_files_by_id(piper_voice, tmp_path):
    """An Excel sheet with an ``id`` column and no output column was refused ("unknown column(s) id"): now each row's id
    names its file, a rerun skips them, and two rows with one id are refused before any is made."""
    out = tmp_path / "out"
    sheet = write_csv(tmp_path / "lines.csv", 'ID,Text\r\n0001,Hello.\r\n0002,"Two\r\nlines."\r\n\r\n', bom=True)
    done = run_cli("batch", str(sheet), "--output-dir", str(out), "--model", str(piper_voice))
    assert done.returncode == 0, done.stderr.decode()
    assert outputs(out) == ["0001.wav", "0002.wav"]
    again = run_cli("batch", str(sheet), "--output-dir", str(out), "--model", str(piper_voice))
    assert again.returncode == 0 and "0 done, 0 failed, 2 already complete" in again.stderr.decode(), again.stderr.decode()
    twice = write_csv(tmp_path / "twice.csv", "id,text\n7,Hello.\n7,Again.\n,No id.\n")
    done = run_cli("batch", str(twice), "--output-dir", str(tmp_path / "o2"), "--model", str(piper_voice))
    err = done.stderr.decode()
    assert done.returncode == 3 and "twice.csv:3: output '7.wav' is also written by line 2" in err, err
    assert "twice.csv:4: the row has no id and no output; give it an id (it names ID.wav)" in err
    assert not (tmp_path / "o2").exists()


def test_a_piper_rows_language_is_fine_where_its_voice_speaks_it(piper_voice, tmp_path):
    """A sheet giving every row its language (as its XTTS rows need) had each Piper row refused: "the language column is
    for XTTS rows". The voice's own language (en, en-US, EN_us for an en-us voice) is accepted; another one is refused."""
    sheet = write_csv(tmp_path / "lines.csv", "text,output,language\nA.,a.wav,en\nB.,b.wav,en-US\nC.,c.wav,EN_us\nD.,d.wav,\n")
    done = run_cli("batch", str(sheet), "--output-dir", str(tmp_path / "out"), "--model", str(piper_voice))
    assert done.returncode == 0 and outputs(tmp_path / "out") == ["a.wav", "b.wav", "c.wav", "d.wav"], done.stderr.decode()
    other = write_csv(tmp_path / "other.csv", "text,output,language\nA.,a.wav,de\n")
    done = run_cli("batch", str(other), "--output-dir", str(tmp_path / "o2"), "--model", str(piper_voice))
    assert done.returncode == 3 and "other.csv:2: the row's language is 'de', but its Piper voice speaks en-us" in done.stderr.decode()


def test_an_output_folder_moved_or_copied_elsewhere_resumes(piper_voice, tmp_path):
    """The manifest kept each output's absolute path: a folder copied to another disk (or mounted elsewhere) made every
    row again ("40 done, 0 already complete")."""
    csv_file = write_csv(tmp_path / "jobs.csv", "text,output\n" + "".join(f"Row number {i}.,sub/row{i}.wav\n" for i in range(3)))
    (tmp_path / "out").mkdir()
    first = run_cli("batch", str(csv_file), "--model", str(piper_voice), "--output-dir", str(tmp_path / "out"))
    assert first.returncode == 0, first.stderr.decode()
    # a manifest written by an older version (absolute paths) still resumes where it was written
    manifest = tmp_path / "out" / ".demod-voice-manifest.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert all(not os.path.isabs(entry["output"]) for entry in entries)
    manifest.write_text("".join(json.dumps({**e, "output": str(tmp_path / "out" / e["output"])}) + "\n" for e in entries))
    in_place = run_cli("batch", str(csv_file), "--model", str(piper_voice), "--output-dir", str(tmp_path / "out"))
    assert in_place.returncode == 0 and "3 of 3 rows are already complete" in in_place.stderr.decode(), in_place.stderr.decode()
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    shutil.copytree(tmp_path / "out", tmp_path / "moved", copy_function=shutil.copy2)
    again = run_cli("batch", str(csv_file), "--model", str(piper_voice), "--output-dir", str(tmp_path / "moved"))
    assert again.returncode == 0 and "3 of 3 rows are already complete" in again.stderr.decode(), again.stderr.decode()
    # files written through a temporary file get the mode new files get (mkstemp made them 0600: the report)
    report_file = tmp_path / "moved" / "report.jsonl"
    assert run_cli("batch", str(csv_file), "--model", str(piper_voice), "--output-dir", str(tmp_path / "moved"),
                   "--report", str(report_file)).returncode == 0
    mask = os.umask(0)
    os.umask(mask)
    assert oct(report_file.stat().st_mode & 0o777) == oct(0o666 & ~mask) == oct((tmp_path / "out" / "sub" / "row0.wav").stat().st_mode & 0o777)
    # an edit still remakes its row there
    write_csv(csv_file, "text,output\n" + "".join(f"Row number {i}{'!' if i == 1 else '.'},sub/row{i}.wav\n" for i in range(3)))
    edited = run_cli("batch", str(csv_file), "--model", str(piper_voice), "--output-dir", str(tmp_path / "moved"))
    assert edited.returncode == 0 and "2 of 3 rows are already complete" in edited.stderr.decode(), edited.stderr.decode()


def test_half_written_files_of_a_killed_run_are_removed_by_the_next(piper_voice, tmp_path):
    """A run killed (SIGKILL, power) mid-file leaves its temporary file beside the output; they were never removed."""
    from demod_voice.paths import temp_beside

    csv_file = write_csv(tmp_path / "jobs.csv", "text,output\nOne.,sub/one.wav\nTwo.,two.wav\n")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    left = [temp_beside(out / "sub" / "one.wav"), temp_beside(out / "two.wav")]  # named as a killed run's are
    others = [out / ".notes.txt.abcdefgh.partial", out / "mine.partial"]  # not this batch's
    for path in left + others:
        path.write_bytes(b"RIFF half")
    done = run_cli("batch", str(csv_file), "--model", str(piper_voice), "-o", str(out), "-v")  # -o as the README's tour has it
    assert done.returncode == 0, done.stderr.decode()
    assert not any(path.exists() for path in left) and all(path.exists() for path in others)
    assert "removed 2 half-written file(s)" in done.stderr.decode(), done.stderr.decode()


def test_a_report_or_output_that_is_a_device_or_pipe_is_refused_not_replaced(piper_voice, tmp_path):
    """``--report /dev/full`` (a full disk, to try) replaced the device with a regular file: a report is written beside
    and renamed over its path, which for root renames over anything. A pipe here, which needs no root."""
    import stat

    pipe = tmp_path / "report.fifo"
    os.mkfifo(pipe)
    csv_file = write_csv(tmp_path / "jobs.csv", "text,output\nOne.,a.wav\n")
    done = run_cli("batch", str(csv_file), "--model", str(piper_voice), "-o", str(tmp_path / "out"), "--report", str(pipe))
    assert done.returncode == 3 and "is not a regular file" in done.stderr.decode(), done.stderr.decode()
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    done = run_cli("lexicon", "test", "Hello", "-m", str(piper_voice), "-o", str(pipe))
    assert done.returncode == 3 and stat.S_ISFIFO(pipe.stat().st_mode), done.stderr.decode()


def test_a_problem_every_row_shares_is_said_once_with_its_rows(tmp_path):
    """One missing voice (or bad lexicon) named by 40 rows printed 41 lines."""
    csv_file = write_csv(tmp_path / "same.csv", "text,output,model\n" + "".join(f"Row {i}.,r{i}.wav,missing.onnx\n" for i in range(40)))
    done = run_cli("batch", str(csv_file), "--output-dir", str(tmp_path / "out"))
    err = done.stderr.decode()
    assert done.returncode == 3 and "40 row(s) of same.csv have problems" in err, err
    assert "same.csv:2, 3, 4, 5, 6, ... (40 rows): " in err and err.count("missing.onnx") <= 2, err


def test_rows_without_a_voice_use_the_default_voice_as_piper_infer_does(tmp_path):
    """A CSV of text and outputs was refused ("a piper row needs a voice ... pass --model") where ``piper-infer TEXT``
    speaks with ``piper.default_voice``: a batch's Piper rows now fall back to it too (the installed joe voice)."""
    csv_file = write_csv(tmp_path / "lines.csv", "text,output\nGood morning.,one.wav\n")
    done = run_cli("batch", str(csv_file), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr.decode()
    audio, rate = soundfile.read(tmp_path / "out" / "one.wav")
    assert rate == 22050 and len(audio) > rate // 4  # the joe voice's rate; a second of speech


def test_a_signal_right_after_a_rows_manifest_line_still_reports_the_row(piper_voice, tmp_path, monkeypatch, capsys):
    """Python runs a signal's handler after the call it came in returns, most often the manifest's fsync: the row's
    manifest line was on disk, but the report and the summary's count missed it (2 of 8 interrupted runs of 2,000
    rows). The signal now waits for the row's record to be whole."""
    from demod_voice.cli.main import main
    from demod_voice.resume import Manifest

    record = Manifest.record
    signalled = []

    def record_then_signalled(self, job, key) -> None:
        record(self, job, key)
        if not signalled:  # one SIGTERM, as if it came during the first row's fsync (a second one kills outright)
            signalled.append(job.output)
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(Manifest, "record", record_then_signalled)
    out = tmp_path / "out"
    sheet = write_csv(tmp_path / "rows.csv", "text,output\n" + "".join(f"Row {i}.,r{i}.wav\n" for i in range(4)))
    code = main(["batch", str(sheet), "-o", str(out), "--model", str(piper_voice), "--workers", "1", "--report", str(tmp_path / "r.jsonl")])
    assert code == 143
    made = finished_rows(out)
    assert made >= 1 and len(outputs(out)) == made
    assert [r["status"] for r in report(tmp_path / "r.jsonl")] == ["ok"] * made
    assert f"batch: {made} done" in capsys.readouterr().err


def test_a_report_in_a_folder_that_is_a_file_says_so(piper_voice, tmp_path):
    """``--report notes/r.jsonl`` where ``notes`` is a file was told "does not exist; create it first (mkdir -p notes)",
    which fails; a report given as a folder was told to add ``speech.wav``."""
    sheet = write_csv(tmp_path / "rows.csv", "text,output\nHello.,a.wav\n")
    (tmp_path / "notes").write_text("mine")
    for report_at in ("notes/r.jsonl", "notes/deeper/r.jsonl"):
        done = run_cli("batch", str(sheet), "-o", str(tmp_path / "out"), "--model", str(piper_voice), "--report", report_at, cwd=tmp_path)
        err = done.stderr.decode()
        assert done.returncode == 3 and err.count("\n") == 1, err
        assert f"{tmp_path / 'notes'} is a file, not a folder" in err and "mkdir" not in err, err
    (tmp_path / "reports").mkdir()
    done = run_cli("batch", str(sheet), "-o", str(tmp_path / "out"), "--model", str(piper_voice), "--report", "reports", cwd=tmp_path)
    assert done.returncode == 3 and str(tmp_path / "reports" / "report.jsonl") in done.stderr.decode(), done.stderr.decode()
    assert (tmp_path / "notes").read_text() == "mine" and not (tmp_path / "out").exists()


def test_an_output_name_too_long_for_its_temporary_file_is_refused_before_any_row(piper_voice, tmp_path):
    """A name of 238 to 255 bytes passed the check, then its row failed at write time ('File name too long': the
    temporary file beside it adds 18 bytes) and the last line said to rerun, which failed the same way every time."""
    longest = "a" * 233 + ".wav"
    sheet = write_csv(tmp_path / "rows.csv", f"text,output\nOne.,{'b' * 236}.wav\nTwo.,{longest}\n")
    done = run_cli("batch", str(sheet), "-o", str(tmp_path / "out"), "--model", str(piper_voice))
    err = done.stderr.decode()
    assert done.returncode == 3 and "rows.csv:2: " in err and "file name longer than 237 bytes" in err, err
    assert not (tmp_path / "out").exists()
    sheet.write_text(f"text,output\nTwo.,{longest}\n")
    done = run_cli("batch", str(sheet), "-o", str(tmp_path / "out"), "--model", str(piper_voice))
    assert done.returncode == 0 and outputs(tmp_path / "out") == [longest], done.stderr.decode()


def test_a_report_that_would_replace_the_batch_file_or_the_manifest_is_refused(piper_voice, tmp_path):
    """The report is renamed over the file it names when the run ends: ``--report jobs.csv`` replaced the user's batch
    file with the report (exit 0), and a report named as the manifest made the next run redo every row."""
    sheet = write_csv(tmp_path / "jobs.csv", "text,output\nHello.,a.wav\nTwo.,b.wav\n")
    written = sheet.read_bytes()
    out = tmp_path / "out"
    for report_at, what in (("jobs.csv", "the batch file itself"), ("out/../jobs.csv", "the batch file itself"),
                            ("out/.demod-voice-manifest.jsonl", "the output folder's manifest"), ("out/b.wav", "the output of line 3")):
        done = run_cli("batch", str(sheet), "-o", str(out), "--model", str(piper_voice), "--report", report_at, cwd=tmp_path)
        err = done.stderr.decode()
        assert done.returncode == 3 and f"is {what}, which the report would replace" in err and err.count("\n") == 1, err
    assert sheet.read_bytes() == written and not out.exists()


def test_an_output_that_is_a_folder_is_refused_before_any_row(piper_voice, tmp_path):
    """A folder where a row's output goes failed that row at write time ("Is a directory"), and the last line said to
    rerun the same command, which failed it again every time."""
    out = tmp_path / "out"
    (out / "two.wav").mkdir(parents=True)
    sheet = write_csv(tmp_path / "rows.csv", "text,output\nOne.,one.wav\nTwo.,two.wav\n")
    done = run_cli("batch", str(sheet), "-o", str(out), "--model", str(piper_voice))
    err = done.stderr.decode()
    assert done.returncode == 3 and "rows.csv:3: output 'two.wav' is a folder; give the row another file name" in err, err
    assert outputs(out) == [] and (out / "two.wav").is_dir()


def test_a_batch_file_not_in_utf8_says_the_line_or_that_it_is_utf16(piper_voice, tmp_path):
    """A stray Latin-1 byte in a file of thousands of lines was only "byte 41503"; a spreadsheet's "Unicode text" export
    (UTF-16, tabs) was "not UTF-8 (byte 0)", then "UTF-16, not UTF-8": it is read now, as the book reader reads it."""
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,output\nOne.,a.wav\nCafé olé.,b.wav\n".encode("latin-1"))
    broken = tmp_path / "broken.csv"
    broken.write_bytes("text,output\nOne.,a.wav\n".encode("utf-16") + b"\x00\xd8")  # a lone surrogate
    said = {}
    for sheet in (latin, broken):
        done = run_cli("batch", str(sheet), "-o", str(tmp_path / "out"), "--dry-run")
        said[sheet.name] = done.stderr.decode()
        assert done.returncode == 3 and said[sheet.name].count("\n") == 1, said[sheet.name]
    assert "is not UTF-8 (line 3, byte 26); save it as UTF-8" in said["latin.csv"]
    assert "is not valid UTF-16 (byte " in said["broken.csv"] and "save it as CSV UTF-8" in said["broken.csv"]
    wide = tmp_path / "wide.csv"
    wide.write_bytes("Text\tOutput\r\nCafé olé.\ta.wav\r\n".encode("utf-16"))
    done = run_cli("batch", str(wide), "-o", str(tmp_path / "out"), "--model", str(piper_voice))
    assert done.returncode == 0 and outputs(tmp_path / "out") == ["a.wav"], done.stderr.decode()


def test_a_batch_file_on_stdin_reads_its_paths_from_the_current_folder(piper_voice, tmp_path):
    """``batch -``: a CSV another program writes (``make-rows | demod-voice batch - -o out``) was "batch file ./- not
    found"; ``/dev/stdin`` read it, but its rows' relative voices and references were looked for in /dev."""
    here = tmp_path / "here"
    here.mkdir()
    for suffix in ("", ".json"):
        shutil.copy(f"{piper_voice}{suffix}", here / f"v.onnx{suffix}")
    rows = "text,output,model\nFrom a pipe.,a.wav,v.onnx\nAnd another line.,b.wav,v.onnx\n"
    done = run_cli("batch", "-", "-o", "out", "--report", "r.jsonl", input=rows, cwd=here)
    assert done.returncode == 0, done.stderr.decode()
    assert outputs(here / "out") == ["a.wav", "b.wav"]
    assert [r["status"] for r in report(here / "r.jsonl")] == ["ok", "ok"]
    again = run_cli("batch", "-", "-o", "out", input=rows, cwd=here)  # resumable as a file is
    assert again.returncode == 0 and "2 already complete" in again.stderr.decode(), again.stderr.decode()
    bad = run_cli("batch", "-", "-o", "out", input="text\nNo output column.\n", cwd=here)
    said = bad.stderr.decode()
    assert bad.returncode == 3 and said.count("\n") == 1 and "batch file on stdin: missing column(s) output" in said, said
    unknown = run_cli("batch", "-", "-o", "out", input="text,output,model\nWhich voice?,c.wav,nowhere.onnx\n", cwd=here)
    said = unknown.stderr.decode()
    assert unknown.returncode == 3 and "stdin:2" in said and str(tmp_path) not in said.replace(str(here), ""), said


def test_a_sheet_made_on_windows_names_folders_with_backslashes(piper_voice, tmp_path):
    """A CSV made on Windows names ``out\\chapter1\\line1.wav`` and ``voices\\tiny.onnx``: the rows were written as files
    named ``out\\chapter1\\line1.wav`` at the top of the output folder (exit 0), and the voice was not found. Now the
    backslashes are folders, as they were where the sheet was made; a drive path (``C:\\...``) is refused before any row."""
    (tmp_path / "voices").mkdir()
    for suffix in (".onnx", ".onnx.json"):
        shutil.copy(f"{piper_voice}{'' if suffix == '.onnx' else '.json'}", tmp_path / "voices" / f"tiny{suffix}")
    sheet = write_csv(tmp_path / "rows.csv", "text,output,model\r\nOne.,out\\chapter1\\line1.wav,voices\\tiny.onnx\r\n"
                                             "Two.,out\\chapter1\\line2.wav,\r\n")
    done = run_cli("batch", str(sheet), "-o", str(tmp_path / "made"), "--model", str(piper_voice))
    assert done.returncode == 0, done.stderr.decode()
    assert outputs(tmp_path / "made") == ["out/chapter1/line1.wav", "out/chapter1/line2.wav"]
    sheet.write_text("text,output\nOne.,C:\\out\\line1.wav\nTwo.,out/chapter1\\line2.wav\n")
    done = run_cli("batch", str(sheet), "-o", str(tmp_path / "other"), "--model", str(piper_voice))
    err = done.stderr.decode()
    assert done.returncode == 3 and "rows.csv:2: output 'C:\\out\\line1.wav' is a Windows drive path; give it relative" in err, err
    assert "Traceback" not in err and not (tmp_path / "other").exists()
    sheet.write_text("text,output,model\nOne.,line1.wav,C:\\voices\\tiny.onnx\n")  # was "/CSV-FOLDER/C:/voices/tiny.onnx not found"
    done = run_cli("batch", str(sheet), "-o", str(tmp_path / "other"))
    err = done.stderr.decode()
    assert done.returncode == 3 and "rows.csv:2: 'C:\\voices\\tiny.onnx' is a path on a Windows drive; copy the file" in err, err


def test_an_error_many_rows_fail_with_is_said_once_as_it_happens_and_once_with_all_its_lines(piper_voice, tmp_path):
    """A voice that would not load failed each of its rows with a line of its own: 25,000 identical lines in an
    overnight run's log for a sheet of 50,000, the other voice's rows lost among them. Now the first is said as it
    happens and, when the run ends, the error once with all its lines (as the check says a problem many rows share)."""
    (tmp_path / "broken.onnx").write_bytes(bytes(range(256)) * 20)
    shutil.copy(f"{piper_voice}.json", tmp_path / "broken.onnx.json")
    rows = "".join(f"Row {i}.,b/{i}.wav,broken.onnx\n" for i in range(12))
    sheet = write_csv(tmp_path / "rows.csv", f"text,output,model\nGood.,good.wav,{piper_voice}\n{rows}")
    done = run_cli("batch", str(sheet), "-o", str(tmp_path / "out"), "--report", str(tmp_path / "r.jsonl"))
    err = done.stderr.decode()
    said = [line for line in err.splitlines() if "cannot load voice" in line]
    assert done.returncode == 1 and len(said) == 2, err
    assert "rows.csv:3, 4, 5, 6, 7, ... (12 rows): cannot load voice " in said[1] and "re-download it" in said[1], err
    assert outputs(tmp_path / "out") == ["good.wav"] and "1 done, 12 failed" in err
    assert sorted(entry["row"] for entry in report(tmp_path / "r.jsonl") if entry["status"] == "failed") == list(range(3, 15))
