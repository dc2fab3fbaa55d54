"""Repairs for known-broken installs that ``health`` points to: ``python -m demod_voice.fixups NAME``.

``torchaudio-cpu``: the registry's torchaudio wheels (2.9+) carry compiled libraries built
against CUDA, so ``import torchaudio`` fails next to a CPU-only torch. torchaudio itself
supports running without its compiled libraries (it then takes pure-Python paths, which is
all XTTS uses: loading and saving through torchcodec, resampling, mel spectrograms). This
fix downloads the same wheel, rewrites it without ``torchaudio/lib/*.so`` (and their RECORD
lines), and installs that in place. Nothing else in the environment changes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

COMPILED = ".so"


def strip_compiled(wheel: Path, out_dir: Path) -> Path:
    """Write a copy of ``wheel`` into ``out_dir`` without the compiled libraries under ``torchaudio/lib``."""
    target = out_dir / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if _is_compiled(item.filename):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode("utf-8").splitlines(keepends=True)
                data = "".join(line for line in lines if not _is_compiled(line.split(",", 1)[0])).encode("utf-8")
            dst.writestr(item, data)
    return target


def _is_compiled(name: str) -> bool:
    return name.startswith("torchaudio/lib/") and COMPILED in Path(name).name


def torchaudio_cpu(version: str) -> str:
    """Install torchaudio ``version`` without its CUDA-built libraries; return what was done."""
    import torch

    if torch.version.cuda is not None:
        return f"torch {torch.__version__} is a CUDA build: the stock torchaudio wheel is right for it; nothing done"
    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        subprocess.run([*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "-d", tmp, f"torchaudio=={version}"], check=True)
        wheel = next(tmp_path.glob("torchaudio-*.whl"))
        out = tmp_path / "stripped"
        out.mkdir()
        stripped = strip_compiled(wheel, out)
        subprocess.run([*pip, "install", "-q", "--no-deps", "--force-reinstall", str(stripped)], check=True)
    return f"installed torchaudio {version} without its CUDA-built libraries (pure-Python mode) next to CPU torch {torch.__version__}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demod_voice.fixups", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="fix", required=True)
    audio = sub.add_parser("torchaudio-cpu", help="torchaudio without CUDA-built libraries, for CPU-only torch")
    audio.add_argument("--version", default="2.11.0", help="torchaudio version (default: 2.11.0, as pinned)")
    args = parser.parse_args(argv)
    try:
        print(torchaudio_cpu(args.version))
    except subprocess.CalledProcessError as err:
        print(f"fixups: error: {' '.join(err.cmd[:4])} ... failed (exit {err.returncode}); is the package registry reachable?",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
