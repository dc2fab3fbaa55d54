"""Seconds per Piper training step, tiny vs medium (and on a GPU: batch 16/32, 32-bit vs bf16 mixed precision).

One step is what piper-tts's ``VitsModel.training_step`` does: the generator and discriminator
losses, the generator's backward pass and AdamW step, then the discriminator's. It runs here in a
plain loop on a batch of real clips (espeak-ng speech through piper-preprocess), with the
alignment shim piper's trainer needs. Printed per row: seconds per step (median of the measured
steps, after one warm-up), steps per second, the share of the step spent in the alignment search,
and peak GPU memory; and the ratio of each row to the first.

Usage:
  python bench/train_step.py [--dataset PREPARED_DIR] [--steps 3] [--sizes tiny,medium] [--batch-sizes 4]
  python bench/train_step.py --device cuda --sizes medium --batch-sizes 16,32 --precisions 32,bf16-mixed
Without --dataset, 12 clips are generated with tests/fixtures/make_dataset.py (needs espeak-ng) and prepared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepared_dataset(folder: Path) -> Path:
    raw, out = folder / "raw", folder / "prepared"
    subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_dataset.py"), str(raw), "--clips", "12", "--sentences", "2"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(ROOT / "bin" / "demod-voice"), "-q", "piper-preprocess", "--input-dir", str(raw),
                    "--output-dir", str(out), "--min-total-seconds", "5"], check=True)
    return out


def load_batch(dataset: Path, batch_size: int, segment: int):
    import soundfile
    import torch
    from piper.train.vits.dataset import UtteranceCollate, UtteranceTensors
    from piper.train.vits.mel_processing import spectrogram_torch

    rows = [line.split("|") for line in (dataset / "metadata.csv").read_text(encoding="utf-8").splitlines() if line]
    utts = []
    for i in range(batch_size):
        row = rows[i % len(rows)]
        audio, _rate = soundfile.read(str(dataset / "wavs" / f"{row[0]}.wav"), dtype="float32")
        audio = torch.from_numpy(audio)
        spec = spectrogram_torch(audio.unsqueeze(0), n_fft=1024, sampling_rate=22050, hop_size=256, win_size=1024, center=False)
        utts.append(UtteranceTensors(phoneme_ids=torch.LongTensor([int(x) for x in row[-1].split()]), spectrogram=spec.squeeze(0),
                                     audio_norm=audio))
    return UtteranceCollate(is_multispeaker=False, segment_size=segment)(utts)


class AlignmentClock:
    """Wraps the installed alignment search to add up the time spent in it."""

    def __init__(self) -> None:
        from demod_voice.training import align

        align.install()
        self.module = sys.modules[align.MODULE]
        self.inner, self.seconds = self.module.maximum_path, 0.0
        self.module.maximum_path = self

    def __call__(self, *args):
        started = time.perf_counter()
        try:
            return self.inner(*args)
        finally:
            self.seconds += time.perf_counter() - started


def measure(size: str, batch_size: int, precision: str, device: str, steps: int, dataset: Path, clock: AlignmentClock) -> dict:
    import torch
    from piper.train.vits.lightning import VitsModel

    from demod_voice.training import critic
    from demod_voice.training.quality import QUALITIES

    torch.manual_seed(0)
    hparams = dict(QUALITIES[size])
    num_symbols = json.loads((dataset / "config.json").read_text())["num_symbols"]
    model = VitsModel(num_symbols=num_symbols, num_speakers=1, sample_rate=22050, batch_size=batch_size, mos_metric=None, **hparams)
    if size == "tiny":
        model.model_d = critic.NarrowCritic()  # as piper-train trains tiny
    model = model.to(device)
    model.train()
    batch = load_batch(dataset, batch_size, hparams.get("segment_size", 8192))
    batch = type(batch)(**{k: (v.to(device) if v is not None else None) for k, v in vars(batch).items()})
    opt_g = torch.optim.AdamW(model.model_g.parameters(), lr=2e-4, betas=(0.8, 0.99), eps=1e-9)
    opt_d = torch.optim.AdamW(model.model_d.parameters(), lr=1e-4, betas=(0.5, 0.9), eps=1e-9)
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16 if precision == "16-mixed" else None
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, aligned = [], []
    for _ in range(steps + 1):
        clock.seconds = 0.0
        started = time.perf_counter()
        with torch.autocast(device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss_g, loss_d, _ = model._compute_loss(batch)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
        aligned.append(clock.seconds)
        finite = bool(torch.isfinite(loss_g).item() and torch.isfinite(loss_d).item())
    step = statistics.median(times[1:])
    return {"size": size, "batch": batch_size, "precision": precision, "device": device, "s_per_step": round(step, 3),
            "steps_per_s": round(1 / step, 3), "align_share": round(statistics.median(aligned[1:]) / step, 4),
            "finite_losses": finite, "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="a piper-preprocess output folder (default: generate one)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per row (after one warm-up)")
    parser.add_argument("--sizes", default="tiny,medium")
    parser.add_argument("--batch-sizes", default="4")
    parser.add_argument("--precisions", default="32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="torch compute threads (default: torch's choice)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    clock = AlignmentClock()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset or prepared_dataset(Path(tmp))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load:.1f}, "
              f"device {torch.cuda.get_device_name(0) if args.device == 'cuda' else 'cpu'}")
        rows = []
        for size in args.sizes.split(","):
            for batch_size in map(int, args.batch_sizes.split(",")):
                for precision in args.precisions.split(","):
                    row = measure(size, batch_size, precision, args.device, args.steps, dataset, clock)
                    row["ratio_to_first"] = round(row["s_per_step"] / rows[0]["s_per_step"], 2) if rows else 1.0
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
