"""Benchmark: cloning 10 sentences from 2 references, demod-voice against coqui's own ways, in one run.

    .venv/bin/python bench/xtts_clone.py [--sentences 10] [--tokens 60]

Peers, all on the same full-size XTTS-v2-shaped checkpoint with random weights:
  (a) coqui's ``tts`` command, once per sentence (how the original tool worked);
  (b) a plain coqui Python loop in one process: load once, conditioning once, ``inference`` per sentence;
  (c) ``demod-voice xtts-zero-shot`` with the 10 sentences as one text (cold voice cache), then again (warm);
  (d) the same, warm, with ``xtts.batch_sentences: 1`` (one sentence at a time, as before batching);
  (e) ``demod-voice batch`` with the 10 sentences as 10 rows of a CSV (one voice: made together), warm.
Random weights would stop at random times, so the checkpoint is generated with a low audio-token
limit (``--tokens``) and a stop token that is never sampled: every sentence on every side runs to the
same limit and makes the same amount of audio. Prints wall times, ratios, RTF.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SENTENCES = [
    "The first sentence sets the scene for this benchmark.",
    "A second one follows with a few more words.",
    "Then comes the third, a little shorter.",
    "Number four talks about nothing in particular.",
    "The fifth sentence is right in the middle.",
    "Six is where the second half begins.",
    "Seven keeps the rhythm going steadily.",
    "Eight is almost at the end of the list.",
    "Nine is the one before the last.",
    "And ten closes the benchmark text.",
]


def prepare(tokens: int) -> tuple[Path, list[Path]]:
    import soundfile
    from conftest import voiced_signal

    folder = Path(tempfile.gettempdir()) / "demod-voice-bench"
    model = folder / f"xtts-full-{tokens}-nostop"
    if not (model / "model.pth").exists():
        print(f"generating a full-size XTTS checkpoint in {model} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "tests/fixtures/make_xtts_model.py"), str(model), "--size", "full",
                        "--max-audio-tokens", str(tokens), "--never-stop"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    refs = []
    for i, rate in enumerate((22050, 44100)):
        path = folder / f"bench-ref{i}.wav"
        soundfile.write(str(path), voiced_signal(8.0, rate), rate)
        refs.append(path)
    return model, refs


def run_tts_per_sentence(model: Path, refs: list[Path], out: Path, n: int) -> float:
    tts = str(Path(sys.executable).with_name("tts"))
    start = time.perf_counter()
    for i, sentence in enumerate(SENTENCES[:n]):
        subprocess.run([tts, "--model_path", str(model), "--config_path", str(model / "config.json"), "--text", sentence,
                        "--speaker_wav", *map(str, refs), "--language_idx", "en", "--out_path", str(out / f"tts{i}.wav"),
                        "--no-progress_bar"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "COQUI_TOS_AGREED": "1"})
    return time.perf_counter() - start


LOOP = """
import sys, time, torch, soundfile
from TTS.tts.configs.xtts_config import XttsConfig
from TTS.tts.models.xtts import Xtts
model_dir, out, *rest = sys.argv[1:]
refs, sentences = rest[:2], rest[2:]
c = XttsConfig(); c.load_json(model_dir + "/config.json")
m = Xtts(c); m.load_checkpoint(c, checkpoint_dir=model_dir, eval=True)
g, s = m.get_conditioning_latents(audio_path=refs, gpt_cond_len=c.gpt_cond_len, gpt_cond_chunk_len=c.gpt_cond_chunk_len,
                                  max_ref_length=c.max_ref_len, sound_norm_refs=c.sound_norm_refs)
for i, text in enumerate(sentences):
    wav = m.inference(text, "en", g, s, temperature=0.75, repetition_penalty=10.0, top_k=50, top_p=0.85)["wav"]
    soundfile.write(f"{out}/loop{i}.wav", wav.cpu().numpy() if hasattr(wav, "cpu") else wav, 24000)
"""


def run_loop(model: Path, refs: list[Path], out: Path, n: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", LOOP, str(model), str(out), *map(str, refs), *SENTENCES[:n]], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    return time.perf_counter() - start


def run_ours(model: Path, refs: list[Path], out: Path, n: int, cache: Path, batch: int | None = None) -> float:
    env = {**os.environ, "DEMOD_VOICE_CACHE_DIR": str(cache)}
    if batch:
        env["DEMOD_VOICE_XTTS_BATCH_SENTENCES"] = str(batch)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bin/demod-voice"), "xtts-zero-shot", *map(str, refs), " ".join(SENTENCES[:n]),
                    "--model-dir", str(model), "--sentence-silence", "0", "-o", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def run_ours_csv(model: Path, refs: list[Path], out: Path, n: int, cache: Path) -> float:
    """The sentences as rows of a CSV (one voice): ``batch`` hands them to the worker together."""
    out.mkdir()
    rows = "".join(f'{"|".join(map(str, refs))},"{sentence}",row{i}.wav,{model}\n' for i, sentence in enumerate(SENTENCES[:n]))
    (out / "jobs.csv").write_text("reference,text,output,model\n" + rows)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bin/demod-voice"), "-q", "batch", str(out / "jobs.csv"), "--output-dir", str(out)],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "DEMOD_VOICE_CACHE_DIR": str(cache)})
    return time.perf_counter() - start


def audio_seconds(files: list[Path]) -> float:
    import soundfile

    return sum(soundfile.info(str(f)).duration for f in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=60, help="audio-token limit of the generated checkpoint")
    args = parser.parse_args(argv)
    model, refs = prepare(args.tokens)
    out = Path(tempfile.mkdtemp())
    cache = out / "cache"
    n = args.sentences
    t_tts = run_tts_per_sentence(model, refs, out, n)
    a_tts = audio_seconds(sorted(out.glob("tts*.wav")))
    t_loop = run_loop(model, refs, out, n)
    a_loop = audio_seconds(sorted(out.glob("loop*.wav")))
    t_cold = run_ours(model, refs, out / "ours-cold.wav", n, cache)
    t_warm = run_ours(model, refs, out / "ours-warm.wav", n, cache)
    a_ours = audio_seconds([out / "ours-warm.wav"])
    t_single = run_ours(model, refs, out / "ours-single.wav", n, cache, batch=1)
    a_single = audio_seconds([out / "ours-single.wav"])
    t_csv = run_ours_csv(model, refs, out / "csv", n, cache)
    a_csv = audio_seconds(sorted((out / "csv").glob("row*.wav")))
    shutil.rmtree(out)
    print(f"{n} sentences, 2 references, full-size XTTS shapes (random weights, audio-token limit {args.tokens})")
    print(f"(a) coqui tts command per sentence: {t_tts:7.1f} s  audio {a_tts:5.1f} s  RTF {t_tts / a_tts:.2f}")
    print(f"(b) coqui Python loop, one process: {t_loop:7.1f} s  audio {a_loop:5.1f} s  RTF {t_loop / a_loop:.2f}")
    print(f"(c) demod-voice, cold voice cache:  {t_cold:7.1f} s")
    print(f"    demod-voice, warm voice cache:  {t_warm:7.1f} s  audio {a_ours:5.1f} s  RTF {t_warm / a_ours:.2f}")
    print(f"(d) demod-voice, warm, one sentence at a time (xtts.batch_sentences 1): {t_single:7.1f} s  audio {a_single:5.1f} s  "
          f"RTF {t_single / a_single:.2f}")
    print(f"(e) demod-voice batch, the sentences as {n} CSV rows, warm: {t_csv:7.1f} s  audio {a_csv:5.1f} s  "
          f"RTF {t_csv / a_csv:.2f}  ({t_tts / t_csv:.2f}x (a), {t_loop / t_csv:.2f}x (b))")
    print(f"speed-up vs (a): {t_tts / t_cold:.2f}x cold, {t_tts / t_warm:.2f}x warm  (goal >= 3x)")
    print(f"vs (b): {t_loop / t_cold:.2f}x cold, {t_loop / t_warm:.2f}x warm  (goal >= 1.0x, never slower); "
          f"one at a time: {t_loop / t_single:.2f}x")
    print(f"sentences generated together vs one at a time (warm): {t_single / t_warm:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
