"""``serve`` limits that need a server of their own (a tiny deadline, a queue of one), the batch job API,
and what happens when the server is killed: no worker survives it, and an unfinished batch job resumes."""

from __future__ import annotations

import io
import json
import signal
import threading
import time
import zipfile

import httpx
import pytest
from conftest import run_cli
from live_server import alive, children, start_server, wait_until

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, piper_voice, piper_multi_voice):
    folder = tmp_path_factory.mktemp("serve-jobs")
    config = {
        "piper": {"noise_scale": 0.0, "noise_w_scale": 0.0},
        "engine": {"max_queued": 1},
        "serve": {"piper_voices": [str(piper_voice.parent)], "data_dir": str(folder / "data"),
                  "limits": {"deadline_seconds": 0.2, "max_batch_rows": 50}},
    }
    state = {"folder": folder, "config": config, "server": start_server(folder, config)}
    yield state
    state["server"].stop(signal.SIGKILL)


def speak(url: str, voice: str, client=httpx) -> httpx.Response:
    """One short request, through ``client`` (an ``httpx.Client`` made beforehand, or a new connection)."""
    return client.post(url + "/v1/audio/speech", json={"model": voice, "input": "Hello there.", "response_format": "wav"}, timeout=30)


def test_deadline_is_504_and_queue_full_is_429(setup):
    url = setup["server"].url
    # A voice's first request waits for its worker to load, which takes longer than the 0.2 s deadline.
    cold = speak(url, "tiny-single")
    assert cold.status_code == 504 and "deadline_seconds" in cold.json()["error"]["message"]
    # Two requests take the voice's two worker places and one may wait (max_queued 1) until its 0.2 s deadline:
    # a 429 needs two arriving within 0.2 s of each other. Eight clients made beforehand and released together,
    # so that making clients on a busy machine does not spread the arrivals.
    answers: list[httpx.Response] = []
    clients = [httpx.Client(timeout=30) for _ in range(8)]
    start = threading.Barrier(len(clients))

    def one(client: httpx.Client) -> None:
        start.wait()
        answers.append(speak(url, "tiny-multi", client))

    threads = [threading.Thread(target=one, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for client in clients:
        client.close()
    codes = sorted(r.status_code for r in answers)
    assert 429 in codes and set(codes) <= {429, 504, 200}, codes
    busy = next(r for r in answers if r.status_code == 429)
    assert int(busy.headers["retry-after"]) >= 1 and "max_queued" in busy.json()["error"]["message"]


def batch(url: str, csv_text: str, files: list | None = None, **data) -> httpx.Response:
    parts = [("csv", ("rows.csv", csv_text.encode(), "text/csv")), *(files or [])]
    return httpx.post(url + "/v1/batch", files=parts, data=data, timeout=60)


def wait_done(url: str, job: str, timeout: float = 120) -> dict:
    state: dict = {}

    def finished() -> bool:
        state.update(httpx.get(f"{url}/v1/batch/{job}", timeout=10).json())
        return state["state"] not in ("queued", "running", "interrupted")

    assert wait_until(finished, timeout, 0.25), state
    return state


def test_batch_job(setup):
    url = setup["server"].url
    rows = "text,output,model,speaker\n" + "".join(f"Row number {i} speaks.,part{i % 2}/row{i}.wav,tiny-multi,{i % 3}\n" for i in range(6))
    created = batch(url, rows)
    assert created.status_code == 202, created.text
    job = created.json()["id"]
    assert created.json()["total"] == 6
    events = []
    with httpx.stream("GET", f"{url}/v1/batch/{job}/events", timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["state"] == "done" and events[-1]["done"] == 6 and events[-1]["failed"] == 0
    result = httpx.get(f"{url}/v1/batch/{job}/result", timeout=60)
    assert result.status_code == 200
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        names = set(archive.namelist())
        report = [json.loads(line) for line in archive.read("report.jsonl").decode().splitlines()]
    assert names == {f"part{i % 2}/row{i}.wav" for i in range(6)} | {"report.jsonl"}
    assert sorted(entry["status"] for entry in report) == ["ok"] * 6


@pytest.mark.parametrize("rows,files,code,words", [
    ("text,output,model\nHi.,/etc/evil.wav,tiny-single\n", None, 400, "relative path"),
    ("text,output,model\nHi.,../evil.wav,tiny-single\n", None, 400, "relative path"),
    ("text,output,model\nHi.,ok.wav,/tmp/dv-test-models/tiny-single.onnx\n", None, 400, "no Piper voice"),
    ("text,output,reference\nHi.,ok.wav,/etc/passwd\n", None, 400, "was not uploaded"),
    ("text,output,voice\nHi.,ok.wav,../x\n", None, 400, "no enrolled voice"),
    ("text,output,reference\nHi.,ok.wav,a.wav\n", [("references", ("../a.wav", b"RIFF"))], 400, "not a plain file name"),
    ("nope,output\nHi.,ok.wav\n", None, 400, "unknown column"),
    ("id,text,model\n,Hi.,tiny-single\n", None, 400, "line 2: the row has no id and no output; give it an id"),
    ("text,output,model\n" + "Hi.,x.wav,tiny-single\n" * 51, None, 413,
     "at most 50 per job (serve.limits.max_batch_rows): split it into several jobs"),
    # refused by the job's own row checks: was a 202, then a job failed with the first and "(and 3 more, listed above)"
    ("text,output,model,speaker\nHi.,a.wav,tiny-single,7\nHo.,b.wav,tiny-single,9\nHa.,c.wav,tiny-multi,12\n", None, 400,
     "line 2: this voice has a single speaker: leave the speaker out (it was '7'); line 3: "),
    # a semicolon sheet (Excel where the decimal mark is a comma) is read as one: its unquoted ';' in a text is said as such
    ("text;output;model\nHi; there.;a.wav;tiny-single\n", None, 400, "line 2: the row has 1 field(s) more than the header's"),
    ("text,output\n\"Hi.,a.wav\nHo.,b.wav\n", None, 400, "the batch file: the quote opened on line 2 is never closed"),
])
def test_batch_refusals(setup, rows, files, code, words):
    response = batch(setup["server"].url, rows, files)
    assert response.status_code == code, response.text
    assert words in response.json()["error"]["message"]
    assert not any((setup["folder"] / "data" / "batch").glob("*/upload.csv"))


def finished_archive(url: str, rows: str, count: int) -> zipfile.ZipFile:
    """The result of a batch job of ``rows``, once all ``count`` of them are made and none failed."""
    created = batch(url, rows)
    assert created.status_code == 202, created.text
    state = wait_done(url, created.json()["id"])
    assert state["state"] == "done" and state["done"] == count and state["failed"] == 0, state
    return zipfile.ZipFile(io.BytesIO(httpx.get(f"{url}/v1/batch/{created.json()['id']}/result", timeout=60).content))


def test_a_job_whose_rows_name_no_voice_speaks_with_the_default_voice(setup):
    """As a speech request naming no voice gets ``piper.default_voice``, so do a job's rows (they were refused: "a Piper
    row needs a voice"); this server offers the installed joe voice."""
    with finished_archive(setup["server"].url, "text,output\nGood morning.,one.wav\n", 1) as archive:
        assert archive.read("one.wav")[:4] == b"RIFF"


def test_a_job_from_an_excel_sheet_keyed_by_id_with_opus_outputs(setup):
    """A sheet as Excel saves it where the decimal mark is a comma (semicolons, BOM, CRLF), keyed by ``id``, with an opus
    row: each was refused (400 "separated by semicolons", "unknown column(s) id", "must end in .wav, .flac, .ogg, .mp3")."""
    rows = "\ufeffID;Text;Output;Model\r\n0001;Hello, there.;;tiny-single\r\n0002;Bye.;b.opus;tiny-single\r\n"
    with finished_archive(setup["server"].url, rows, 2) as archive:
        assert set(archive.namelist()) == {"0001.wav", "b.opus", "report.jsonl"}
        assert archive.read("0001.wav")[:4] == b"RIFF" and archive.read("b.opus")[:4] == b"OggS"


def test_a_job_from_a_unicode_text_sheet_runs_and_a_workbook_is_refused_saying_what_to_save(setup):
    """Excel's "Unicode Text" (.txt: tabs, UTF-16 with its BOM), which ``batch`` and the page's row check take, was refused
    by the job as "the batch file is not UTF-8 (byte 0)" once Start was pressed; a workbook sent as the batch file was
    "not UTF-8 (byte 10)", where ``batch`` says to save the sheet as CSV UTF-8."""
    url = setup["server"].url
    sheet = "Text\tOutput\tModel\r\nHello, there.\tone.wav\ttiny-single\r\n".encode("utf-16")
    created = httpx.post(url + "/v1/batch", files=[("csv", ("rows.txt", sheet, "text/plain"))], timeout=60)
    assert created.status_code == 202, created.text
    state = wait_done(url, created.json()["id"])
    assert state["state"] == "done" and state["done"] == 1 and state["failed"] == 0, state
    workbook = b"PK\x03\x04\x14\x00\x06\x00\x08\x00" + bytes(range(256))
    refused = httpx.post(url + "/v1/batch", files=[("csv", ("rows.xlsx", workbook, "application/octet-stream"))], timeout=60)
    error = refused.json()["error"]
    assert refused.status_code == 400 and error["code"] == "bad_csv", refused.text
    assert error["message"].startswith("the batch file is a spreadsheet workbook (.xlsx, .ods, .xls), not CSV: save the sheet as "
                                       "CSV UTF-8"), error
    assert str(setup["folder"]) not in error["message"]
    assert not any((setup["folder"] / "data" / "batch").glob("*/upload.csv"))


def test_unknown_and_unfinished_jobs(setup):
    url = setup["server"].url
    assert httpx.get(f"{url}/v1/batch/{'0' * 24}").status_code == 404
    assert httpx.get(f"{url}/v1/batch/..%2F..%2Fetc").status_code in (400, 404)


def test_killed_server_leaves_no_worker_and_its_batch_resumes(setup):
    server = setup["server"]
    rows = "text,output,model\n" + "".join(f"Sentence {i} of a longer batch to resume.,r{i}.wav,tiny-single\n" for i in range(40))
    created = batch(server.url, rows)
    assert created.status_code == 202
    job = created.json()["id"]
    assert wait_until(lambda: children(server.pid), 30)
    workers = children(server.pid)
    server.stop(signal.SIGKILL)
    assert wait_until(lambda: not any(alive(pid) for pid in workers), 10), "a worker outlived its server"
    state = json.loads((setup["folder"] / "data" / "batch" / job / "job.json").read_text())
    assert state["state"] in ("queued", "running")

    setup["server"] = start_server(setup["folder"], setup["config"])
    final = wait_done(setup["server"].url, job)
    assert final["state"] == "done" and final["done"] == 40 and final["failed"] == 0, final
    with zipfile.ZipFile(io.BytesIO(httpx.get(f"{setup['server'].url}/v1/batch/{job}/result", timeout=60).content)) as archive:
        assert len([n for n in archive.namelist() if n.endswith(".wav")]) == 40


def test_a_batch_job_stopped_by_a_drain_says_only_what_happened_and_resumes(setup):
    """A job whose rows a SIGTERM cancelled counted every row not yet made as failed, with the error "cancelled", and the
    restarted server showed it running with those failures, the old error and a finish time (done + failed > total)."""
    server = setup["server"]
    text = "A sentence long enough that the batch is still running when the server is asked to stop, and then some more."
    rows = "text,output,model\n" + "".join(f"\"{text} Row {i}.\",d{i}.wav,tiny-single\n" for i in range(50))
    created = batch(server.url, rows)
    assert created.status_code == 202
    job = created.json()["id"]
    state_file = setup["folder"] / "data" / "batch" / job / "job.json"
    assert wait_until(lambda: (setup["folder"] / "data" / "batch" / job / "out" / "d1.wav").exists(), 60)
    assert server.stop(signal.SIGTERM) == 0
    stopped = json.loads(state_file.read_text())
    assert stopped["state"] == "interrupted" and stopped["done"] < 50, stopped
    assert stopped["failed"] == 0 and not stopped.get("error"), stopped

    setup["server"] = start_server(setup["folder"], setup["config"])
    seen = httpx.get(f"{setup['server'].url}/v1/batch/{job}", timeout=10).json()
    if seen["state"] == "running":
        assert seen["failed"] == 0 and not seen.get("error") and not seen.get("finished"), seen
    final = wait_done(setup["server"].url, job)
    assert final["state"] == "done" and final["done"] == 50 and final["failed"] == 0 and not final.get("error"), final


def test_no_keys_means_loopback_only():
    started = time.monotonic()
    done = run_cli("serve", "--host", "0.0.0.0", "--port", "9")
    assert done.returncode == 2 and b"--insecure-no-auth" in done.stderr and b"Traceback" not in done.stderr
    assert time.monotonic() - started < 30


SERVER_IMPORTS = """
import json, sys
from fastapi.testclient import TestClient
from demod_voice.config import load_config
from demod_voice.serve.http.app import create_app
config, _ = load_config(overrides={"serve.piper_voices": [sys.argv[1]]})
with TestClient(create_app(config), base_url="http://127.0.0.1") as client:  # the server answers only its own names
    answer = client.post("/v1/audio/speech", json={"model": "tiny-single", "input": "Hello there.", "response_format": "mp3"})
    assert answer.status_code == 200 and len(answer.content) > 500, answer.text
banned = ("torch", "onnxruntime", "piper", "TTS", "tinygrad")
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in banned)))
"""


def test_the_server_process_imports_no_engine(piper_voice):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SERVER_IMPORTS, str(piper_voice)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_preload_voice_that_does_not_exist_stops_the_start_in_one_line(tmp_path):
    """``serve --preload alloy`` printed 59 lines (a traceback) and then "could not serve (is the port in use?)" on a
    free port."""
    from live_server import free_port

    done = run_cli("serve", "--port", str(free_port()), "--preload", "alloy",
                   env={"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    err = done.stderr.decode().strip()
    assert done.returncode == 3 and "there is no voice 'alloy'" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "port" not in err, err


def damaged_voice_config(tmp_path, piper_voice):
    """A config whose one Piper voice, ``damaged``, is cut short on disk (as a download that stopped); and its path."""
    from demod_voice.config import load_config

    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(piper_voice.read_bytes()[:50000])
    damaged.with_name("damaged.onnx.json").write_bytes(piper_voice.with_name(piper_voice.name + ".json").read_bytes())
    config, _ = load_config(overrides={"serve.piper_voices": [str(damaged)], "cache_dir": str(tmp_path / "cache")},
                            env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    return config, damaged


def test_a_preloaded_voice_that_cannot_load_is_said_in_the_log_and_by_readyz(tmp_path, piper_voice, caplog):
    """``serve --preload`` of a damaged voice: the log said nothing and ``/readyz`` answered 'loading' for ever."""
    import logging

    from fastapi.testclient import TestClient

    from demod_voice.serve.http.app import create_app

    config, damaged = damaged_voice_config(tmp_path, piper_voice)
    caplog.set_level(logging.WARNING, logger="demod_voice")
    with TestClient(create_app(config, preload=("damaged",), workers=1), base_url="http://127.0.0.1") as client:
        assert wait_until(lambda: client.get("/readyz").json()["status"] != "loading", timeout=60)
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {"status": "failed", "failed": ["damaged"], "waiting_for": ["damaged"]}
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("could not load" in m and "damaged.onnx" in m for m in said), said


def test_a_voice_that_cannot_load_for_a_request_is_said_in_the_server_log_and_to_the_client_without_a_path(
        tmp_path, piper_voice, caplog):
    """A voice damaged on the server's disk answered 503 ``damaged_voice`` (rightly without its path), and the server's
    log said nothing: the administrator could not tell which file to install again."""
    import logging

    from fastapi.testclient import TestClient

    from demod_voice.serve.http.app import create_app

    config, damaged = damaged_voice_config(tmp_path, piper_voice)
    caplog.set_level(logging.WARNING, logger="demod_voice")
    with TestClient(create_app(config, workers=1), base_url="http://127.0.0.1") as client:
        answer = client.post("/v1/audio/speech", json={"model": "damaged", "input": "Hello there.", "response_format": "wav"})
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "damaged_voice", answer.text
    assert str(tmp_path) not in answer.text
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("demod_voice")]
    assert len([m for m in said if str(damaged) in m]) == 1, said
