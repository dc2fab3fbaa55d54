"""Joining a Ray cluster: addresses, and the one-line errors for a missing Ray or an unreachable
cluster (no cluster is started here; tests/cluster/test_ray.py runs a real one)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from demod_voice.config import load_config
from demod_voice.engine.executors import ray_cluster
from demod_voice.engine.executors.ray_cluster import Cluster, connect, resolve_address
from demod_voice.errors import ConfigError, DependencyError, InputError, RuntimeFailure


def test_the_address_comes_from_the_flag_then_ray_address_then_auto(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None) == "auto"
    assert resolve_address("10.0.0.5:6379") == "10.0.0.5:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")  # what `ray job submit` gives its driver
    assert resolve_address(None) == "10.0.0.9:6379"
    assert resolve_address("auto") == "10.0.0.9:6379"
    assert resolve_address("ray://head:10001") == "ray://head:10001"


def test_ray_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(DependencyError, match=r"pip install 'demod-voice\[ray\]'"):
        connect("127.0.0.1:6379")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_nothing_listens_on_fails_in_seconds():
    pytest.importorskip("ray")
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(RuntimeFailure, match=rf"cannot reach the Ray cluster at 127.0.0.1:{port} \(Connection refused\)"):
        ray_cluster._probe(f"127.0.0.1:{port}")
    with pytest.raises(RuntimeFailure, match="cannot reach"):
        ray_cluster._probe(f"ray://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    with pytest.raises(InputError, match="must be HOST:PORT"):
        ray_cluster._probe("nonsense")


def test_slots_count_the_actors_the_cluster_holds():
    cluster = Cluster("auto", False, nodes=2, cpus=16.0, gpus=2.0)
    assert cluster.slots(1.0) == 16 and cluster.slots(4.0) == 4 and cluster.slots(0.5) == 32
    assert cluster.slots(32.0) == 1 and cluster.slots(0.0) == 16


def test_executor_settings_are_checked(tmp_path):
    config, _ = load_config(None, overrides={"engine.executor": "ray", "engine.ray_num_cpus": 0.5, "engine.ray_address": "h:1"})
    assert (config.engine.executor, config.engine.ray_num_cpus, config.engine.ray_address) == ("ray", 0.5, "h:1")
    with pytest.raises(ConfigError):
        load_config(None, overrides={"engine.executor": "kubernetes"})


def test_the_executor_modules_import_no_ray():
    code = ("import sys, demod_voice.engine.executors.ray, demod_voice.engine.executors.ray_cluster, demod_voice.batch; "
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


class FakeRay:
    """A stand-in for the ``ray`` module: records ``ray.init``'s arguments; one node with ``cpus`` CPUs."""

    def __init__(self, cpus: float = 2.0, init_error: Exception | None = None) -> None:
        self.cpus = cpus
        self.init_error = init_error
        self.inits: list[dict] = []
        self.initialized = False

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **options) -> None:
        self.inits.append(options)
        if self.init_error is not None:
            raise self.init_error
        self.initialized = True

    def cluster_resources(self) -> dict:
        return {"CPU": self.cpus}

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": self.cpus}}, {"Alive": False, "Resources": {"CPU": 64.0}}]

    def shutdown(self) -> None:
        self.initialized = False


@pytest.fixture
def fake_ray(monkeypatch):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    return fake


def test_local_starts_a_private_ray_even_when_a_cluster_runs_here(fake_ray):
    """``ray.init(address=None)`` joins the cluster `ray start` made on the machine (and hung for minutes once that head
    had died); ``address="local"`` always starts a new one."""
    cluster = connect("local")
    assert fake_ray.inits[0]["address"] == "local" and cluster.owned


def test_a_cluster_that_refuses_the_connection_is_not_called_missing(monkeypatch):
    """Ray 2.60's `ray start` wants a token: a driver given HOST:PORT got 'no Ray cluster at ...; start one'."""
    with socket.socket() as listening:  # the probe finds something there, as it finds a running head
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        for said in (f"Failed to connect to Ray cluster at {address}", "Unauthenticated: InvalidAuthToken"):
            monkeypatch.setitem(sys.modules, "ray", FakeRay(init_error=ConnectionError(said)))
            with pytest.raises(RuntimeFailure) as err:
                connect(address)
            message = str(err.value)
            assert message.startswith(f"the Ray cluster at {address} refused the connection") and "no Ray cluster" not in message
            assert "RAY_AUTH_MODE=token" in message and "--ray auto" in message and "\n" not in message


def test_actors_larger_than_every_node_fail_at_once(fake_ray):
    """Ray waits for ever for a node that can hold them (autoscaler lines every 35 s)."""
    from demod_voice.config import EngineSettings
    from demod_voice.engine.executors.ray import RayExecutor

    with pytest.raises(ConfigError, match=r"^engine.ray_num_cpus 4 is more than any node of the Ray cluster has \(2 CPUs"):
        RayExecutor(EngineSettings(ray_num_cpus=4.0), address="local")
    assert not fake_ray.initialized  # the Ray it started is shut down
    assert RayExecutor(EngineSettings(ray_num_cpus=2.0), address="local").cluster.node_cpus == 2.0


@pytest.mark.parametrize(("address", "said"), [
    ("http://127.0.0.1:6390", "must be HOST:PORT, ray://HOST:PORT, auto or local"),  # the dashboard's URL
    ("127.0.0.1:99999", "99999 is not a valid port"),
    ("ray://127.0.0.1:0", "0 is not a valid port"),
    ("nonsense", "must be HOST:PORT"),
])
def test_an_address_that_cannot_be_one_is_refused_before_anything_is_made(address, said, piper_voice, tmp_path, capsys):
    from demod_voice.cli.main import main

    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("text,output\nHello.,a.wav\n", encoding="utf-8")
    assert main(["batch", str(csv_file), "--output-dir", str(tmp_path / "out"), "--model", str(piper_voice), "--ray", address]) == 3
    err = capsys.readouterr().err
    assert said in err, err
    assert not (tmp_path / "out").exists()


def test_a_model_gets_no_more_workers_than_its_rows():
    """Each actor loads its model: engine.ray_num_cpus 0.01 on 2 CPUs started 199 actors per model for 40 rows."""
    from demod_voice.config import EngineSettings
    from demod_voice.engine.executors.choose import workers_per_model

    class OnRay:
        cluster = Cluster("auto", False, nodes=1, cpus=2.0, gpus=0.0, node_cpus=2.0)

    assert workers_per_model(OnRay(), EngineSettings(ray_num_cpus=0.01), 0, most_jobs=40) == 40
    assert workers_per_model(OnRay(), EngineSettings(ray_num_cpus=0.01), 0) == 199  # rows unknown (book); 2 // 0.01
    assert workers_per_model(OnRay(), EngineSettings(), 16, most_jobs=3) == 3


def test_an_address_nothing_listens_on_is_refused_before_the_output_folder_is_made(piper_voice, tmp_path, capsys):
    """The refused run left the folder with its lock file and an empty subfolder."""
    pytest.importorskip("ray")
    from demod_voice.cli.main import main

    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("text,output\nHello.,o/a.wav\n", encoding="utf-8")
    code = main(["batch", str(csv_file), "--output-dir", str(tmp_path / "out"), "--model", str(piper_voice), "--ray",
                 f"127.0.0.1:{closed_port()}"])
    assert code == 1 and "cannot reach the Ray cluster" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
