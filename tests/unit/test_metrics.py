"""Prometheus metrics alone: engine figures read at scrape time, requests counted by route template."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("prometheus_client")
fastapi = pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from demod_voice.engine.jobs import LoadSpec  # noqa: E402
from demod_voice.serve.metrics import Metrics, RequestCounter  # noqa: E402


class FakeEngine:
    def stats(self):
        return {"queued": 3, "running": 2, "worker_starts": 5, "worker_restarts": 1, "completed": 7, "failed": 1, "cancelled": 2}

    def pools(self):
        spec = LoadSpec("piper", "/voices/en_US-x-medium.onnx")
        return [SimpleNamespace(spec=spec, workers=2, rss_bytes=123456)]


def sample(text: str, line: str) -> float:
    return float(next(row for row in text.splitlines() if row.startswith(line + " ")).split()[-1])


def test_engine_figures_and_observations():
    metrics = Metrics(FakeEngine())
    metrics.finished("piper", first_chunk=0.04, seconds=0.5, audio_seconds=2.0)
    metrics.cancelled.labels("client_gone").inc()
    body, kind = metrics.render()
    text = body.decode()
    assert kind.startswith("text/plain")
    assert sample(text, "demod_voice_queue_depth") == 3 and sample(text, "demod_voice_running_jobs") == 2
    assert sample(text, "demod_voice_worker_restarts_total") == 1
    assert sample(text, 'demod_voice_engine_jobs_total{outcome="cancelled"}') == 2
    assert sample(text, 'demod_voice_loaded_models{backend="piper",model="en_US-x-medium.onnx"}') == 2
    assert sample(text, 'demod_voice_time_to_first_audio_seconds_bucket{backend="piper",le="0.05"}') == 1
    assert sample(text, 'demod_voice_real_time_factor_sum{backend="piper"}') == 0.25
    assert sample(text, 'demod_voice_cancelled_requests_total{reason="client_gone"}') == 1
    assert "_created" not in text


def test_requests_are_counted_by_route_template_and_status():
    app = fastapi.FastAPI()
    app.state.ctx = SimpleNamespace(metrics=Metrics())

    @app.get("/v1/voices/{voice_id}")
    async def voice(voice_id: str):
        if voice_id == "missing":
            raise fastapi.HTTPException(404)
        return {"id": voice_id}

    app.add_middleware(RequestCounter)
    client = TestClient(app)
    for name in ("a", "b", "missing"):
        client.get(f"/v1/voices/{name}")
    client.get("/nowhere")
    text = app.state.ctx.metrics.render()[0].decode()
    assert sample(text, 'demod_voice_requests_total{method="GET",route="/v1/voices/{voice_id}",status="200"}') == 2
    assert sample(text, 'demod_voice_requests_total{method="GET",route="/v1/voices/{voice_id}",status="404"}') == 1
    assert sample(text, 'demod_voice_requests_total{method="GET",route="unmatched",status="404"}') == 1


def test_a_model_with_two_pools_is_one_series():
    """A voice whose files were replaced has its old workers (finishing) and new ones under one file name: two samples of
    one series, which Prometheus refuses as duplicates."""
    engine = FakeEngine()
    spec = LoadSpec("piper", "/voices/en_US-x-medium.onnx", version=(1,))
    engine.pools = lambda: [SimpleNamespace(spec=spec, workers=1, rss_bytes=100),
                            SimpleNamespace(spec=LoadSpec("piper", spec.model, version=(2,)), workers=2, rss_bytes=200)]
    text = Metrics(engine).render()[0].decode()
    series = 'demod_voice_loaded_models{backend="piper",model="en_US-x-medium.onnx"}'
    assert [row for row in text.splitlines() if row.startswith(series)] == [f"{series} 3.0"]
    assert sample(text, 'demod_voice_worker_resident_bytes{backend="piper",model="en_US-x-medium.onnx"}') == 300
