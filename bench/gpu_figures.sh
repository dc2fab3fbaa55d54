#!/usr/bin/env bash
# GPU figures for issue 29 (XTTS first audio and aggregate RTF at 1/4/16 streams; Piper batched on CUDA),
# standalone in a fresh checkout:  bash bench/gpu_figures.sh [bench/gpu_figures.py options]
#
# On a machine whose python3 already has a CUDA torch (the lent GPU machines: nothing can be fetched there),
# what it lacks is installed from carried wheels (.whl/, made by bench/gpu_wheels.sh) into a folder put on
# PYTHONPATH; elsewhere a venv is made from the registry (torch's CUDA build, then the XTTS and Piper extras).
# Budget: a full-size checkpoint is generated once (~1-2 min), the model loads in ~15 s, the runs take a few
# minutes; GPU_FIGURES_TIMEOUT (default 480 s) ends the measuring step whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 COQUI_TOS_AGREED=1 TRANSFORMERS_VERBOSITY=error
PY=${PYTHON:-python3}
started=$(date +%s)
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  SITE=${DV_GPU_SITE:-/tmp/dv-gpu-site}
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  else
    echo "no .whl/ (bench/gpu_wheels.sh makes it); trying the registry" >&2
    "$PY" -m pip install -q --no-deps --no-compile --upgrade --target "$SITE" coqui-tts==0.28.0 coqui-tts-trainer==0.4.0 \
      coqpit-config==0.2.5 monotonic-alignment-search==0.2.1 anyascii inflect jaraco.functools more-itertools typeguard \
      ko-speech-tools librosa audioread decorator pooch platformdirs soxr soundfile cffi pycparser num2words==0.5.14 pysbd \
      transformers==5.23.0 torchcodec piper-tts==1.8.0 pathvalidate
  fi
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  VENV=${DV_GPU_VENV:-/tmp/dv-gpu-venv}
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q torch==2.13.0 torchaudio==2.11.0
  "$VENV/bin/python" -m pip install -q coqui-tts==0.28.0 transformers==5.23.0 torchcodec six piper-tts==1.8.0 onnx \
    onnxruntime-gpu pyyaml num2words==0.5.14 soundfile tqdm tokenizers
  "$VENV/bin/python" -m pip uninstall -q -y onnxruntime 2>/dev/null || true  # piper-tts pulls the CPU build beside the GPU one
  PY="$VENV/bin/python"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "environment ready in $(( $(date +%s) - started )) s" >&2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout "${GPU_FIGURES_TIMEOUT:-480}" "$PY" bench/gpu_figures.py "$@"
