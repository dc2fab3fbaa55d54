#!/usr/bin/env bash
# Run HERE (a machine that reaches the package registry), before bench/gpu_figures.sh runs on a lent GPU
# machine that reaches nothing: downloads into .whl/ the wheels its image lacks for XTTS (Python 3.12,
# x86-64; the image brings torch, torchaudio, tokenizers, numba, scipy, onnx, onnxruntime ...), ~20 MB,
# under the 64 MiB a call may carry. Then: run(command="bash bench/gpu_figures.sh", carry=[".whl"]).
# Piper on CUDA needs onnxruntime-gpu (hundreds of MB: it cannot travel), so that part reports itself skipped
# there; --with-piper adds piper-tts (34 MB) for a machine that has onnxruntime-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PY=${PYTHON:-.venv/bin/python}
WHEELS=(coqui-tts==0.28.0 coqui-tts-trainer==0.4.0 coqpit-config==0.2.5 monotonic-alignment-search==0.2.1 anyascii==0.3.3
        inflect==7.6.0 jaraco.functools==4.6.0 more-itertools==11.2.1 typeguard==4.6.1 ko-speech-tools==0.1.0 librosa==1.0.1
        audioread==3.1.0 decorator==5.3.1 pooch==1.9.0 platformdirs soxr==1.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
        num2words==0.5.14 pysbd==0.3.4 transformers==5.23.0 torchcodec==0.11.0)
if [ "${1:-}" = "--with-piper" ]; then WHEELS+=(piper-tts==1.8.0 pathvalidate==3.3.1); fi
mkdir -p .whl
for wheel in "${WHEELS[@]}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$wheel"
done
du -sh .whl
