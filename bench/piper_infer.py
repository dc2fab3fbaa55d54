"""Benchmark: ``demod-voice piper-infer`` against piper-tts's own ``piper`` command, in one run.

Whole processes, same voice, same text, same output format, alternated to share machine
noise; medians over --runs. Also: in-process floors (piper's ``synthesize`` on a loaded
voice, and onnxruntime's ``session.run`` alone), and ``demod-voice --help`` start-up.
Then a 10-sentence and a 1-sentence text, each with batched sentences (the default) against
one sentence per run (``piper.batch_size: 1``, how piper-infer worked before batching).

    .venv/bin/python bench/piper_infer.py [--size medium] [--runs 7]

The voice is generated (random weights, Piper's real medium shape) on first use and cached.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (
    "The quick brown fox jumps over the lazy dog. Benchmarks should speak a paragraph, not a word, "
    "so that start-up and synthesis both show. This third sentence adds a little more audio to the run."
)


TEXT10 = (
    "The morning train was late again. Nobody on the platform seemed surprised. A man in a grey coat read his "
    "paper. Two children counted the pigeons on the roof. The announcer apologised twice. Somewhere a dog barked "
    "at nothing in particular. When the train finally arrived, it was almost empty. The doors opened with a sigh. "
    "Everyone stepped in at once. And then, at last, the journey began."
)
ONE = "The quick brown fox jumps over the lazy dog near the quiet river bank."


def voice_path(size: str) -> Path:
    cache = Path(os.environ.get("DV_BENCH_MODELS", "/tmp/dv-bench-models"))
    model = cache / f"{size}.onnx"
    if not model.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"generating a {size} voice in {cache} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_piper_voice.py"), str(model), "--size", size],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return model


def timed(cmd: list[str], stdin: str | None = None, env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, input=stdin, text=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def in_process_floors(model: Path, runs: int) -> tuple[float, float, float]:
    """Median seconds of piper's synthesize() and of session.run() alone on a loaded voice, and audio seconds."""
    from piper.config import SynthesisConfig
    from piper.voice import PiperVoice

    voice = PiperVoice.load(model)
    syn = SynthesisConfig()
    audio_seconds = sum(len(c.audio_float_array) for c in voice.synthesize(TEXT, syn)) / voice.config.sample_rate
    ids = [voice.phonemes_to_ids(p) for p in voice.phonemize(TEXT)]
    synth, ort = [], []
    for _ in range(runs):
        start = time.perf_counter()
        for _chunk in voice.synthesize(TEXT, syn):
            pass
        synth.append(time.perf_counter() - start)
        start = time.perf_counter()
        for sentence in ids:
            voice.phoneme_ids_to_audio(sentence, syn)
        ort.append(time.perf_counter() - start)
    return statistics.median(synth), statistics.median(ort), audio_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=("tiny", "medium"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--texts-only", action="store_true", help="only the batched 10- and 1-sentence texts")
    parser.add_argument("--baseline", metavar="DIR", help="a checkout of an older demod-voice to compare the texts with "
                        "(git worktree add DIR COMMIT)")
    args = parser.parse_args(argv)
    model = voice_path(args.size)
    out = Path(tempfile.mkdtemp()) / "out.wav"
    if args.texts_only:
        cache = Path(tempfile.mkdtemp())
        batched_texts(model, out, {**os.environ, "DEMOD_VOICE_CACHE_DIR": str(cache)}, args.runs, args.baseline)
        return 0
    ours_cmd = [sys.executable, str(ROOT / "bin/demod-voice"), "piper-infer", str(model), TEXT, "-o", str(out)]
    peer_cmd = [sys.executable, "-m", "piper", "-m", str(model), "-f", str(out)]
    help_cmd = [sys.executable, str(ROOT / "bin/demod-voice"), "--help"]
    cache = Path(tempfile.mkdtemp())
    env = {**os.environ, "DEMOD_VOICE_CACHE_DIR": str(cache)}
    timed(ours_cmd, env=env), timed(peer_cmd, TEXT)  # warm the page cache
    ours, cold, peer, helps = [], [], [], []
    for _ in range(args.runs):
        ours.append(timed(ours_cmd, env=env))
        peer.append(timed(peer_cmd, TEXT))
        shutil.rmtree(cache)  # first use of a voice: no optimised graph cached yet
        cold.append(timed(ours_cmd, env=env))
        helps.append(timed(help_cmd))
    synth, ort, audio = in_process_floors(model, args.runs)
    m_ours, m_peer = statistics.median(ours), statistics.median(peer)
    print(f"voice: {model.name} ({model.stat().st_size / 1e6:.1f} MB), {audio:.2f} s of audio, {args.runs} runs, medians")
    m_cold = statistics.median(cold)
    print(f"demod-voice piper-infer (whole process): {m_ours:.3f} s")
    print(f"  same, first use of the voice (no cache): {m_cold:.3f} s")
    print(f"piper -m ... -f ...     (whole process): {m_peer:.3f} s")
    print(f"ratio demod-voice / piper: {m_ours / m_peer:.3f}  (goal <= 1.10); first use: {m_cold / m_peer:.3f}")
    print(f"floor, piper synthesize() on a loaded voice: {synth:.3f} s (RTF {synth / audio:.3f})")
    print(f"floor, onnxruntime session.run only:         {ort:.3f} s (RTF {ort / audio:.3f})")
    print(f"demod-voice --help: {statistics.median(helps):.3f} s  (goal < 0.2)")
    batched_texts(model, out, env, args.runs, args.baseline)
    return 0


def timed_cpu(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the process and its workers, which it waits for) of one command."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(cmd, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def batched_texts(model: Path, out: Path, env: dict, runs: int, baseline: str | None = None) -> None:
    """Batched sentences (default) against one sentence per run (``piper.batch_size: 1``), and,
    with ``baseline`` (a checkout of an older demod-voice), against that code: whole processes,
    warm caches, alternated. CPU seconds too: the steadier figure on a shared machine."""
    peers = {"batched": ([sys.executable, str(ROOT / "bin/demod-voice")], env),
             "one sentence per run": ([sys.executable, str(ROOT / "bin/demod-voice")], {**env, "DEMOD_VOICE_PIPER_BATCH_SIZE": "1"})}
    if baseline:  # PYTHONPATH, so that its workers import its code too
        peers["baseline checkout"] = ([sys.executable, f"{baseline}/bin/demod-voice"],
                                      {**env, "PYTHONPATH": baseline, "DEMOD_VOICE_CACHE_DIR": f"{env['DEMOD_VOICE_CACHE_DIR']}-base"})
    for label, text, goal in (("10-sentence text", TEXT10, "<= 0.85"), ("1-sentence text", ONE, "<= 1.0, no slower")):
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in peers}
        for prog, peer_env in peers.values():
            timed([*prog, "piper-infer", str(model), text, "-o", str(out)], env=peer_env)
        for _ in range(runs):
            for name, (prog, peer_env) in peers.items():
                times[name].append(timed_cpu([*prog, "piper-infer", str(model), text, "-o", str(out)], peer_env))
        wall = {name: statistics.median(w for w, _ in v) for name, v in times.items()}
        cpu = {name: statistics.median(c for _, c in v) for name, v in times.items()}
        print(f"{label} (goal {goal} vs the peer):")
        for name in peers:
            print(f"  {name:<22} {wall[name]:.3f} s ({cpu[name]:.2f} CPU s)   batched / this: "
                  f"{wall['batched'] / wall[name]:.3f} wall, {cpu['batched'] / cpu[name]:.3f} CPU")


if __name__ == "__main__":
    sys.exit(main())
