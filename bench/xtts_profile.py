"""Where the time of a streamed XTTS request goes, alone and 4 at once, on this machine.

    .venv/bin/python bench/xtts_profile.py [--tokens 30] [--rows 4] [--chunk 20] [--repeat 2]

On the full-size XTTS-v2-shaped checkpoint of ``bench/xtts_concurrent.py`` (random weights that never
stop), with one voice's latents for every row (the work does not depend on the voice), it times,
in wall seconds and process CPU seconds (all threads), at batch 1 and batch ``--rows``:

- the GPT's prefill (the first forward, which gives the first token: the text prompt and the start token, the
  voice latent's rows coming from the keys and values the model keeps for the voice, as for every sentence after a
  voice's first),
- one GPT decode step (mean over the next ``--chunk`` steps),
- one HiFi-GAN decode of a ``--chunk``-token chunk (what a streamed chunk costs: the worker decodes a chunk's
  frames and the decoder's context; coqui's ``inference_stream`` decodes the latents *so far*, whose cost
  the whole sentence's decode shows),
- the first audio of one sentence alone and of ``batching.generate_stream`` for the rows together (each
  row's first piece), as the engine runs them,

then the model of first audio alone (prefill + chunk steps + one decode) against the measured one,
and the lower bound on the last row's first audio when the rows share the cores: batched prefill +
``--chunk`` batched steps + the rows' HiFi-GAN decodes (compute-bound: a batch of n costs about n
single decodes; only one row's first audio can come after one of them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

TEXT = "The first client asks for a short greeting."


class Clock:
    """Wall and process CPU seconds since the last ``lap``."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        taken = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return taken


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The run with the least wall time (the least disturbed by other work on the machine)."""
    return min(runs)


def gpt_timings(model, batching, latent, speaker, rows: int, chunk: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(prefill, mean step) of ``rows`` rows, each (wall, cpu)."""
    _, inputs, keywords = batching._started(model, [TEXT] * rows, "en", [latent] * rows, [speaker] * rows,
                                                  {"top_k": 1, "max_new_tokens": chunk + 1})
    clock = Clock()
    steps = model.gpt.gpt_inference.generate_stream(inputs, output_hidden_states=True, return_dict_in_generate=True, **keywords)
    next(steps)
    prefill = clock.lap()
    taken = [clock.lap() for _ in zip(range(chunk), steps, strict=False)]
    return prefill, (sum(t[0] for t in taken) / len(taken), sum(t[1] for t in taken) / len(taken))


def decode_timing(model, speaker, rows: int, tokens: int) -> tuple[float, float]:
    import torch

    latents = torch.randn(rows, tokens, model.args.gpt_n_model_channels)
    clock = Clock()
    model.hifigan_decoder(latents, g=speaker.expand(rows, -1, -1).contiguous())
    return clock.lap()


def first_alone(model, latent, speaker, chunk: int) -> tuple[float, float]:
    """First audio of one sentence as a worker streams it alone (``generate_stream`` with one row, which gives
    ``Xtts.inference_stream``'s chunks)."""
    from demod_voice.backends.xtts import batching

    clock = Clock()
    stream = batching.generate_stream(model, [TEXT], "en", latent, speaker, chunk_tokens=chunk, top_k=1)
    next(stream)
    taken = clock.lap()
    stream.close()
    return taken


def firsts_together(model, batching, latent, speaker, rows: int, chunk: int) -> list[tuple[float, float]]:
    """Each row's first piece, (wall, cpu) from the start, in the order they come."""
    start = Clock()
    seen: dict[int, tuple[float, float]] = {}
    pieces = batching.generate_stream(model, [TEXT] * rows, "en", [latent] * rows, [speaker] * rows, chunk_tokens=chunk, top_k=1)
    for row, samples in pieces:
        if samples is not None and row not in seen:
            seen[row] = (time.perf_counter() - start.wall, time.process_time() - start.cpu)
        if len(seen) == rows:
            break
    pieces.close()
    return sorted(seen.values())


def gemm_timings(repeat: int) -> dict[str, dict[int, float]]:
    """Milliseconds of one of the GPT's 1024x4096 products for 1, 4 and 16 rows, best of ``repeat`` runs of 50:
    as transformers' ``Conv1D`` makes it (``addmm(bias, x, W[in, out])``) and as the worker makes it on a CPU
    (``backends/xtts/packed.py``: oneDNN, the weight laid out once). One weight: it stays in cache, so these are
    lower than in the model, whose 1.5 GB of weights come from memory."""
    import torch
    from transformers.pytorch_utils import Conv1D

    from demod_voice.backends.xtts import packed

    dense = Conv1D(4096, 1024)
    products = {"addmm": dense}
    if packed.usable():
        products["packed"] = packed.PackedConv1D(dense)
    taken: dict[str, dict[int, float]] = {}
    with torch.inference_mode():
        for name, product in products.items():
            for rows in (1, 4, 16):
                x = torch.randn(rows, 1024)
                product(x)
                runs = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    for _ in range(50):
                        product(x)
                    runs.append((time.perf_counter() - started) / 50 * 1e3)
                taken.setdefault(name, {})[rows] = min(runs)
    return taken


def show(name: str, one: tuple[float, float], many: tuple[float, float], rows: int) -> None:
    print(f"{name:<34} batch 1: {one[0]:7.3f} s wall {one[1]:7.3f} s CPU | batch {rows}: {many[0]:7.3f} s wall "
          f"{many[1]:7.3f} s CPU | batch {rows} / batch 1: {many[0] / one[0]:.2f}x wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=30, help="the checkpoint's audio tokens per sentence (as xtts_concurrent.py)")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=20, help="stream_chunk_size: tokens per streamed chunk")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    args = parser.parse_args()
    load_start = os.getloadavg()

    import torch
    from xtts_concurrent import model_dir, voices

    from demod_voice.backends.xtts import batching
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.engine.jobs import LoadSpec
    from demod_voice.voices.references import check_references

    folder = model_dir(args.size, args.tokens)
    cache = Path(tempfile.gettempdir()) / "demod-voice-bench" / "profile-cache"
    cache.mkdir(parents=True, exist_ok=True)
    ref = voices(cache, 1)[0]
    backend = XttsBackend()
    clock = Clock()
    backend.load(LoadSpec(backend="xtts", model=str(folder), cache_dir=str(cache)))
    model = backend.model
    latent, speaker = backend.conditioning(check_references((str(ref),)))
    print(f"load + one voice's latents: {clock.lap()[0]:.1f} s; torch threads {torch.get_num_threads()}, {os.cpu_count()} cores")
    rows, chunk, repeat = args.rows, args.chunk, args.repeat
    with torch.inference_mode():
        first_alone(model, latent, speaker, chunk)  # warm-up (allocator, first-call paths)
        # batch 1 and batch ``rows`` in turn, so a change of load on the machine falls on both
        gpt: dict[int, list] = {1: [], rows: []}
        decodes: dict[int, list] = {1: [], rows: []}
        for _ in range(repeat):
            for n in (1, rows):
                gpt[n].append(gpt_timings(model, batching, latent, speaker, n, chunk))
                decodes[n].append(decode_timing(model, speaker, n, chunk))
        prefill = {n: best([p for p, _ in gpt[n]]) for n in gpt}
        step = {n: best([s for _, s in gpt[n]]) for n in gpt}
        decode = {n: best(decodes[n]) for n in decodes}
        whole = best([decode_timing(model, speaker, 1, args.tokens) for _ in range(repeat)])
        alone = best([first_alone(model, latent, speaker, chunk) for _ in range(repeat)])
        gemm = gemm_timings(repeat)
        together = min((firsts_together(model, batching, latent, speaker, rows, chunk) for _ in range(repeat)), key=lambda f: f[-1])
    print(f"full XTTS-v2 shapes, '{TEXT}' ({args.tokens} tokens), chunk {chunk} tokens, best of {repeat}; "
          f"load average {load_start[0]:.2f} {load_start[1]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    show("GPT prefill (prompt -> 1st token)", prefill[1], prefill[rows], rows)
    show("GPT decode step", step[1], step[rows], rows)
    for name, timings in gemm.items():
        print(f"{'  one 1024x4096 product, ' + name:<34} " + " | ".join(f"{n} row(s): {ms:.2f} ms" for n, ms in timings.items()))
    show(f"HiFi-GAN decode, {chunk} tokens", decode[1], decode[rows], rows)
    print(f"{'HiFi-GAN decode, ' + str(args.tokens) + ' tokens':<34} batch 1: {whole[0]:7.3f} s wall {whole[1]:7.3f} s CPU "
          "(what coqui's inference_stream pays at its last chunk; the worker decodes a chunk's frames and context)")
    model_alone = prefill[1][0] + chunk * step[1][0] + decode[1][0]
    print(f"first audio alone: model prefill + {chunk} steps + decode = {model_alone:.2f} s; measured "
          f"{alone[0]:.2f} s wall ({alone[1]:.2f} s CPU)")
    gpt_rows = prefill[rows][0] + chunk * step[rows][0]
    one_decode = min(decode[1][0], decode[rows][0] / rows)  # generate_stream decodes due rows one at a time
    print(f"{rows} rows together, generate_stream measured: first audio of each row {', '.join(f'{w:.2f}' for w, _ in together)} s wall "
          f"(CPU {', '.join(f'{c:.2f}' for _, c in together)} s)")
    print(f"lower bound, {rows} rows sharing the cores: GPT {gpt_rows:.2f} s (prefill + {chunk} batched steps), then a row's first audio "
          f"after its own and the earlier rows' decodes ({one_decode:.2f} s each):")
    for k in range(1, rows + 1):
        bound = gpt_rows + k * one_decode
        print(f"  row {k}: >= {bound:.2f} s = {bound / alone[0]:.2f}x first audio alone (goal <= 1.3x)")
    print(f"the last row's first audio is within 1.3x of alone only if the batched GPT part + {rows} decodes <= {1.3 * alone[0]:.2f} s; "
          f"it is >= {gpt_rows + rows * one_decode:.2f} s")


if __name__ == "__main__":
    main()
