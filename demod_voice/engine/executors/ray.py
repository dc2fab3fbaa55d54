"""Ray executor: each worker is a Ray actor that loads its model once and answers hand-overs with
the same code a local worker runs (:func:`demod_voice.engine.worker.load_backend` and
:func:`~demod_voice.engine.worker.answer`).

The engine waits on real pipes, so each :class:`RayWorker` keeps a socket pair: a pump thread in
this process reads the messages the actor streams back (a streaming-generator method) and writes
them into the far end; when the actor dies the pump closes it and :meth:`RayWorker.recv` raises
:class:`WorkerDied`. Retries stay the engine's: actor tasks are never retried by Ray.

What runs where: the actor (any node) reads the model and the reference recordings and makes audio;
this process (the driver) receives the audio and writes every output, the manifest and the report.
So outputs land on the driver's disk, and only inputs must be visible, at the same paths, on every
node; an actor that cannot see one says so by name.

An actor that dies is restarted by Ray (``max_restarts``: its constructor reloads the model) and the
next worker the engine asks for with that spec gets it back; after :data:`MAX_RESTARTS` deaths a
fresh actor replaces it.
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import socket
import sys
import threading
import time
import weakref
from multiprocessing.connection import Connection
from typing import Any, Optional

from demod_voice.config import EngineSettings
from demod_voice.engine.executors import WorkerDied
from demod_voice.engine.executors.ray_cluster import Cluster, connect
from demod_voice.engine.jobs import LoadSpec
from demod_voice.errors import ConfigError, RuntimeFailure

log = logging.getLogger(__name__)

MAX_RESTARTS = 3
"""Times Ray restarts a dead worker actor (reloading its model) before a fresh actor replaces it."""
PLACEMENT_WARNING_SECONDS = 30.0
"""A worker not placed by then is reported once (the cluster may lack the CPUs or GPUs it reserves)."""
RELEASE_AFTER_SECONDS = 2.0
"""A worker still waiting for room this long makes an idle worker of another model give its room up."""
CHECK_EVERY_SECONDS = 1.0
"""How often a run checks that the cluster's head still answers: Ray ends the driver process itself when its head
goes (at once after `ray stop`, 60 s after a crash), before the report and the summary could be written."""


class RayExecutor:
    """Workers as Ray actors on the cluster at ``address`` (``None``: ``engine.ray_address``, then
    ``$RAY_ADDRESS``, then ``auto``)."""

    name = "ray"

    def __init__(self, settings: EngineSettings, address: Optional[str] = None, log_level: int = logging.WARNING) -> None:
        self.settings = settings
        self.cluster: Cluster = connect(address or settings.ray_address, log_level)
        self._spares: dict[LoadSpec, list[tuple[Any, int]]] = {}
        self._live: weakref.WeakSet[RayWorker] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.gone: Optional[str] = None
        """Why the cluster is gone (its head stopped answering), once it is: nothing is sent to it any more."""
        self._head = _head_address()
        self._checked = time.monotonic()
        if settings.ray_num_cpus > self.cluster.node_cpus:  # Ray would wait for such a node for ever
            self.close()
            raise ConfigError(f"engine.ray_num_cpus {settings.ray_num_cpus:g} is more than any node of the Ray cluster has "
                              f"({self.cluster.node_cpus:g} CPUs on the largest); lower it")

    def check(self) -> None:
        """Raise :class:`RuntimeFailure` once the cluster's head stops answering (checked every
        :data:`CHECK_EVERY_SECONDS`): the run then stops as after Ctrl-C, its finished rows recorded."""
        if self.gone is None and self._head is not None and time.monotonic() - self._checked >= CHECK_EVERY_SECONDS:
            self._checked = time.monotonic()
            host, _, port = self._head.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=CHECK_EVERY_SECONDS):
                    pass
            except OSError as err:
                self.gone = f"its head at {self._head} stopped answering: {err.strerror or type(err).__name__}"
        if self.gone is not None:
            raise RuntimeFailure(f"the Ray cluster at {self.cluster.address} went away ({self.gone}); finished rows are kept: "
                                 "rerun the same command to resume")

    def start_worker(self, spec: LoadSpec, log_level: int, threads: int) -> RayWorker:
        """A worker for ``spec``: an actor Ray restarted after a death, else a new one.

        ``threads`` (the engine's share of this machine's cores) is not used: an actor gets as
        many threads as the CPUs it reserves on its node (``engine.ray_num_cpus``)."""
        self.check()
        with self._lock:
            spares = self._spares.get(spec)
            spare = spares.pop() if spares else None
        if spare is not None:
            actor, deaths = spare
            log.debug("reusing a Ray worker restarted after %d death(s)", deaths)
        else:
            cpus, gpus = self.resources(spec)
            actor_threads = max(1, math.floor(cpus)) if cpus > 0 else threads
            # SPREAD: a model's workers go to different nodes while there are nodes with room.
            actor = _actor_class().options(num_cpus=cpus, num_gpus=gpus, max_restarts=MAX_RESTARTS, max_task_retries=0,
                                           scheduling_strategy="SPREAD").remote(spec, log_level, list(sys.path), actor_threads)
            deaths = 0
        worker = RayWorker(self, spec, actor, deaths)
        with self._lock:
            self._live.add(worker)
        return worker

    def resources(self, spec: LoadSpec) -> tuple[float, float]:
        """(CPUs, GPUs) an actor for ``spec`` reserves: GPUs only for models asked to run on one."""
        gpus = self.settings.ray_num_gpus if spec.device != "cpu" else 0.0
        return self.settings.ray_num_cpus, gpus

    def keep_restarted(self, spec: LoadSpec, actor: Any, deaths: int) -> bool:
        """Keep an actor Ray is restarting for the next worker of ``spec``; False when it has no restarts left."""
        if deaths > MAX_RESTARTS:
            return False
        with self._lock:
            self._spares.setdefault(spec, []).append((actor, deaths))
        return True

    def release_idle(self, waiting: RayWorker) -> bool:
        """Make room for ``waiting``, which Ray cannot place: end the idle worker of another model
        that has been idle longest (the engine sees it end and starts one again when that model has
        work). False when there is none. Engine pools keep idle workers loaded for minutes, which on
        a full cluster would hold back every other model."""
        with self._lock:
            kept = next((actors for spec, actors in self._spares.items() if spec != waiting.spec and actors), None)
            spare = kept.pop()[0] if kept else None
            idle = [w for w in self._live if w is not waiting and w.spec != waiting.spec and w.idle_since is not None]
        if spare is not None:  # an actor Ray restarted for a model with no work left holds room too
            _kill(spare)
            return True
        if not idle:
            return False
        victim = min(idle, key=lambda w: w.idle_since)
        log.info("ending an idle Ray worker of %s to make room for %s", victim.spec.model, waiting.spec.model)
        victim.release()
        return True

    def close(self) -> None:
        """End the actors kept for reuse; leave the cluster if this process joined it."""
        import ray

        with self._lock:
            spares = [actor for kept in self._spares.values() for actor, _ in kept]
            self._spares.clear()
        if self.gone is not None:  # nothing to end, and Ray's calls would wait for the head
            return
        for actor in spares:
            _kill(actor)
        if self.cluster.owned and ray.is_initialized():
            ray.shutdown()


class RayWorker:
    """Parent-side handle of one actor (see the module docstring)."""

    joins = False  # (an actor takes hand-overs as its method calls: jobs wait for the running one to end)

    def __init__(self, executor: RayExecutor, spec: LoadSpec, actor: Any, deaths: int) -> None:
        self.spec = spec
        self.executor = executor
        self.actor = actor
        self.deaths = deaths
        self.pid = 0
        """The actor's process id on its node (0 until it answered)."""
        self.where = "ray"
        """``IP/node`` of the actor once it answered (``ray`` before)."""
        ours, theirs = socket.socketpair()
        self.conn = Connection(ours.detach())
        self._out = Connection(theirs.detach())
        self._handovers: queue.Queue = queue.Queue()
        self._seq = 0
        self._rss: Optional[int] = None
        self._ended: Optional[str] = None
        self._died = False
        self._killed = False
        self._released = False
        self._outstanding = 0
        self._count = threading.Lock()
        self.idle_since: Optional[float] = None
        """``time.monotonic()`` since when the actor has loaded and holds no job; ``None`` while busy or loading."""
        # Submitted here, before any hand-over: the actor answers it first (its load message).
        hello = actor.hello.options(max_task_retries=MAX_RESTARTS).remote()
        self._pump = threading.Thread(target=self._run, args=(hello,), name=f"ray-pump-{spec.backend}", daemon=True)
        self._pump.start()

    # --- engine side -------------------------------------------------------------------------

    def send(self, jobs: Any) -> None:
        """Hand over jobs (a list, or one job), ``("cancel", index)`` for a job of the current
        hand-over, or ``None`` (stop); raises :class:`WorkerDied` once the actor is gone."""
        if self._ended is not None or self._killed or self.executor.gone is not None:
            raise WorkerDied(self._ended or self.executor.gone or "the Ray worker was stopped")
        if jobs is None:
            self._handovers.put(None)
        elif isinstance(jobs, tuple):
            if jobs[:1] == ("cancel",):
                self.actor.cancel.remote(self._seq, jobs[1])
        else:
            self._seq += 1
            batch = jobs if isinstance(jobs, list) else [jobs]
            with self._count:
                self._outstanding += len(batch)
                self.idle_since = None
            self._handovers.put((self._seq, batch))

    def recv(self) -> tuple:
        """The next message; raises :class:`WorkerDied` (saying how) once the actor has ended."""
        try:
            return self.conn.recv()
        except (EOFError, OSError) as err:
            raise WorkerDied(self._ended or "the Ray worker ended") from err

    def rss_bytes(self) -> Optional[int]:
        """Resident memory the actor reported after its last hand-over."""
        return self._rss

    def stop(self, timeout: float = 5.0) -> None:
        """End the actor: it keeps nothing worth a graceful exit (outputs are written here)."""
        self._handovers.put(None)
        self.kill()

    def kill(self) -> None:
        """End the actor at once; one that died on its own is left to Ray's restart for the next worker."""
        if self._killed:
            return
        self._killed = True
        self.idle_since = None
        # Only an actor that had loaded its model is worth Ray's restart: one that died loading is ended.
        if self.executor.gone is None and not (self._died and self.pid and self.executor.keep_restarted(self.spec, self.actor, self.deaths + 1)):
            _kill(self.actor)
        self.conn.close()

    def release(self) -> None:
        """End an idle actor to free its resources; the engine sees the worker end."""
        self._released = True
        self.idle_since = None
        _kill(self.actor)

    # --- pump thread -------------------------------------------------------------------------

    def _run(self, hello: Any) -> None:
        import ray

        try:
            self._hello(ray, hello)
            while True:
                handover = self._handovers.get()
                if handover is None:
                    break
                # Submitted here, after the hello: an actor Ray is restarting takes calls only once it is back.
                for ref in self.actor.answer.options(num_returns="streaming").remote(*handover):
                    self._forward(ray.get(ref))
        except ray.exceptions.RayActorError as err:
            self._died = not (self._killed or self._released)
            self._ended = self._death(err)
        except OSError:
            self._ended = "the Ray worker's pipe was closed"
        except Exception as err:  # noqa: BLE001 - the cluster itself failed: the worker is gone all the same
            self._ended = f"the Ray cluster failed under the worker: {type(err).__name__}: {_first_line(err)}"
        finally:
            self._out.close()

    def _hello(self, ray: Any, hello: Any) -> None:
        started = time.monotonic()
        ready, _ = ray.wait([hello], timeout=RELEASE_AFTER_SECONDS)
        while not ready and not self._killed and time.monotonic() - started < PLACEMENT_WARNING_SECONDS:
            self.executor.release_idle(self)
            ready, _ = ray.wait([hello], timeout=RELEASE_AFTER_SECONDS)
        if not ready and not self._killed:
            cpus, gpus = self.executor.resources(self.spec)
            log.warning("a Ray worker for %s is not placed after %.0f s: it reserves %g CPU(s) and %g GPU(s); the cluster has "
                        "%s free (engine.ray_num_cpus / engine.ray_num_gpus)", self.spec.model, PLACEMENT_WARNING_SECONDS,
                        cpus, gpus, _free(ray))
        self.pid, node, ip, message = ray.get(hello)
        self.where = f"{ip}/{node[:8]}"
        if message[0] == "ready":
            self._answered(0)
        self._out.send(message)

    def _forward(self, messages: list[tuple]) -> None:
        for message in messages:
            if message[0] == "rss":
                self._rss = message[1]
                continue
            if message[0] in ("done", "error"):
                self._answered(1)  # before the engine can hand over more in answer
            self._out.send(message)

    def _answered(self, jobs: int) -> None:
        with self._count:
            self._outstanding -= jobs
            if self._outstanding <= 0:
                self.idle_since = time.monotonic()

    def _death(self, err: Exception) -> str:
        if self._released:
            return "the Ray worker gave its resources to another model"
        if self._killed:
            return "the Ray worker was stopped"
        log.debug("Ray on the worker's end: %s", err)
        where = f" (pid {self.pid} on {self.where})" if self.pid else ""
        return f"the Ray worker{where} died ({type(err).__name__}; out of memory? a crash? -vv and Ray's logs on that node say more)"


def _kill(actor: Any) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception as err:  # noqa: BLE001 - already gone, or the cluster is: nothing left to end
        log.debug("ray.kill: %s", err)


def _head_address() -> Optional[str]:
    """``HOST:PORT`` of the cluster's head (its GCS), for :meth:`RayExecutor.check`; ``None`` when Ray does not say."""
    import ray

    try:
        return ray.get_runtime_context().gcs_address or None
    except Exception:  # noqa: BLE001 - a Ray client connection has none: unchecked, as before
        return None


def _free(ray: Any) -> str:
    try:
        free = ray.available_resources()
    except Exception:  # noqa: BLE001 - only for a warning
        return "unknown resources"
    return ", ".join(f"{free.get(key, 0):g} {key}" for key in ("CPU", "GPU"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line if len(line) <= 240 else line[:237] + "..."


@functools.lru_cache(maxsize=1)
def _actor_class() -> Any:
    """The actor class, made when first needed so that importing this module never imports Ray."""
    import ray

    from demod_voice.engine.executors.ray_actor import WorkerActor

    return ray.remote(concurrency_groups={"control": 1})(WorkerActor)

