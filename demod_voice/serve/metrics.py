"""``/metrics`` in Prometheus' text format: requests by route and status, queue depth, time to
first audio, real-time factor, loaded models, worker restarts.

Counters and histograms are updated by the routes; engine figures (queue, pools, restarts)
are read from the engine when scraped, so they are never stale. Each app has its own
registry (tests start several apps in one process).
"""

from __future__ import annotations

from typing import Any

PREFIX = "demod_voice"
SECONDS_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other is ``other`` (uvicorn takes any word as a method: 25,000 made-up ones grew
``/metrics`` to 46 MB and the server by 60 MB, keyless)."""


class Metrics:
    """The server's metrics, in their own registry."""

    def __init__(self, engine: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series double the output and no dashboard reads them
        self.registry = CollectorRegistry()
        self.requests = Counter(f"{PREFIX}_requests", "HTTP requests by route and status", ("route", "method", "status"),
                                registry=self.registry)
        self.first_audio = Histogram(f"{PREFIX}_time_to_first_audio_seconds", "From request to the first audio chunk",
                                     ("backend",), buckets=SECONDS_BUCKETS, registry=self.registry)
        self.rtf = Histogram(f"{PREFIX}_real_time_factor", "Synthesis seconds per second of audio (per finished request)",
                             ("backend",), buckets=RTF_BUCKETS, registry=self.registry)
        self.audio_seconds = Counter(f"{PREFIX}_audio_seconds", "Seconds of audio sent", ("backend",), registry=self.registry)
        self.cancelled = Counter(f"{PREFIX}_cancelled_requests", "Requests cancelled (client gone, deadline, shutdown)",
                                 ("reason",), registry=self.registry)
        self.failed_keys = Counter(f"{PREFIX}_failed_keys", "Requests with an API key the server does not know (invalid), "
                                   "and key checks refused for too many of them from one address (throttled)", ("outcome",),
                                   registry=self.registry)
        self.engine = engine
        if engine is not None:
            self.registry.register(_EngineCollector(engine))

    def render(self) -> tuple[bytes, str]:
        """(body, content type) for ``/metrics``."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def finished(self, backend: str, first_chunk: float, seconds: float, audio_seconds: float) -> None:
        """Record one finished speech request."""
        self.first_audio.labels(backend).observe(first_chunk)
        if audio_seconds > 0:
            self.rtf.labels(backend).observe(seconds / audio_seconds)
            self.audio_seconds.labels(backend).inc(audio_seconds)


class _EngineCollector:
    """Reads the engine's own figures at scrape time."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def describe(self) -> list:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.engine.stats()
        yield GaugeMetricFamily(f"{PREFIX}_queue_depth", "Jobs waiting for a worker", value=stats.get("queued", 0))
        yield GaugeMetricFamily(f"{PREFIX}_running_jobs", "Jobs being synthesised", value=stats.get("running", 0))
        yield CounterMetricFamily(f"{PREFIX}_worker_starts", "Workers started", value=stats.get("worker_starts", 0))
        yield CounterMetricFamily(f"{PREFIX}_worker_restarts", "Workers replaced after dying", value=stats.get("worker_restarts", 0))
        jobs = CounterMetricFamily(f"{PREFIX}_engine_jobs", "Jobs the engine ended, by outcome", labels=("outcome",))
        for outcome in ("completed", "failed", "cancelled"):
            jobs.add_metric((outcome,), stats.get(outcome, 0))
        yield jobs
        loaded = GaugeMetricFamily(f"{PREFIX}_loaded_models", "Workers per loaded model", labels=("backend", "model"))
        rss = GaugeMetricFamily(f"{PREFIX}_worker_resident_bytes", "Resident memory of each model's workers", labels=("backend", "model"))
        workers: dict[tuple[str, str], list[int]] = {}
        for pool in self.engine.pools():  # summed per name: a voice whose files were replaced has old and new workers a moment
            figures = workers.setdefault((pool.spec.backend, pool.spec.model.rsplit("/", 1)[-1]), [0, 0])
            figures[0] += pool.workers
            figures[1] += pool.rss_bytes or 0
        for labels, (count, resident) in workers.items():
            loaded.add_metric(labels, count)
            rss.add_metric(labels, resident)
        yield loaded
        yield rss


class RequestCounter:
    """ASGI middleware counting requests by route template (never the raw path: ids would explode the
    label set) and status. Pure ASGI, so streamed responses and disconnects pass through untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
            if ctx is not None and ctx.metrics is not None:
                method = scope.get("method", "")
                ctx.metrics.requests.labels(path, method if method in METHODS else "other", str(status["code"])).inc()
