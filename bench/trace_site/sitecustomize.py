"""Timestamps of one request's steps, for bench/request_trace.py (loaded through PYTHONPATH by the
server it starts and by that server's workers; nothing else loads it).

Each step appends ``<unix time> <pid> <step>`` to the file named by ``TRACE_REQUEST_LOG``. Server
side: ``resolve`` (the handler runs: HTTP parsed, key checked), ``submit`` / ``submitted`` (the
engine takes the job), ``pool_chunk`` (a chunk is back from the worker), ``encode`` (the handler
encodes it). Worker side: ``worker_got`` (the job arrived), ``worker_chunk`` (its first chunk is sent).
"""

import os
import sys
import time

LOG = os.environ.get("TRACE_REQUEST_LOG", "")


def mark(step: str) -> None:
    with open(LOG, "a") as log:
        log.write(f"{time.time():.6f} {os.getpid()} {step}\n")


def _server() -> None:
    from demod_voice.engine import pool, service
    from demod_voice.serve.http import speech

    resolve, submit, chunk, encode = speech.resolve_voice, service.EngineService.submit, pool.Pool._chunk, speech._encode

    def traced_resolve(*args, **kwargs):
        mark("resolve")
        return resolve(*args, **kwargs)

    def traced_submit(self, *args, **kwargs):
        mark("submit")
        handle = submit(self, *args, **kwargs)
        mark("submitted")
        return handle

    def traced_chunk(self, *args, **kwargs):
        mark("pool_chunk")
        return chunk(self, *args, **kwargs)

    async def traced_encode(encoder, samples):
        mark("encode")
        return await encode(encoder, samples)

    speech.resolve_voice, service.EngineService.submit, pool.Pool._chunk, speech._encode = (
        traced_resolve, traced_submit, traced_chunk, traced_encode)


def _worker() -> None:
    from demod_voice.engine import worker

    answer = worker.answer

    def traced_answer(send, backend, jobs, *args, **kwargs):
        mark("worker_got")
        first = [True]

        def traced_send(message):
            if first[0] and message[0] == "chunk":
                mark("worker_chunk")
                first[0] = False
            return send(message)

        return answer(traced_send, backend, jobs, *args, **kwargs)

    worker.answer = traced_answer


if LOG:
    if "serve" in sys.argv:
        _server()
    elif sys.argv[:1] == ["-c"]:  # a local executor's worker (started with python -c)
        _worker()
