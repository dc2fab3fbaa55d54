# `import nixpkgs { system; config; }` for the stand-in: a package set of never-built derivations.
{ system ? builtins.currentSystem, config ? { }, overlays ? [ ] }:

let
  lib = import ./lib.nix;
  stub = name: derivation { inherit name system; builder = "/bin/sh"; args = [ "-c" "echo stand-in nixpkgs cannot build; exit 1" ]; };
  names = list: map (p: p.name) list;
  force = value: result: builtins.deepSeq value result;

  pythonNames = [
    "anyascii" "av" "click" "cython" "docopt" "einops" "fastapi" "faster-whisper" "filelock" "fsspec" "httpx" "huggingface-hub" "hypothesis" "inflect" "jiwer" "librosa" "lightning" "lxml" "markdown-it-py"
    "matplotlib" "num2words" "numba" "numpy" "onnx" "onnxruntime" "packaging" "pathvalidate" "prometheus-client" "psutil" "pysbd" "pytest" "python-multipart"
    "pyyaml" "regex" "requests" "rich" "safetensors" "scipy" "setuptools" "six" "soundfile" "soxr" "tensorboard" "tokenizers"
    "torch" "torchaudio" "tqdm" "transformers" "typer" "typing-extensions" "uvicorn" "wyoming" "zeroconf"
  ];

  mkPython = overrides:
    let
      base = self: lib.genAttrs pythonNames (n: stub "python3.12-${n}") // {
        buildPythonPackage = a: force [ a.pname a.version a.src.name (names (a.dependencies or [ ])) (names (a.build-system or [ ])) ]
          (stub "python3.12-${a.pname}-${a.version}");
        buildPythonApplication = a: force [ a.pname a.version (names (a.dependencies or [ ])) (names (a.build-system or [ ])) ]
          (stub "${a.pname}-${a.version}" // (a.passthru or { }));
      };
      pkgs = let fix = f: let x = f x; in x; in fix (self: let b = base self; in b // overrides self b);
    in
    {
      inherit pkgs;
      withPackages = f: force (names (f pkgs)) (stub "python3.12-env");
      override = a: mkPython (a.packageOverrides or (_: _: { }));
      sitePackages = "lib/python3.12/site-packages";
    };

  pkgs = {
    inherit lib system config;
    stdenv = { hostPlatform = { inherit system; }; };
    callPackage = f: args:
      let fn = if builtins.isFunction f then f else import f;
      in fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);
    fetchPypi = a: force [ a.pname a.version a.hash (a.platform or "") (a.python or "") (a.abi or "") ] (stub "${a.pname}-${a.version}-src");
    mkShell = a: force (names (a.packages or [ ])) (stub "nix-shell");
    runCommand = name: env: script: force [ (names (env.nativeBuildInputs or [ ])) script ] (stub name);
    dockerTools.buildLayeredImage = a: force [ (names a.contents) a.config ] (stub "docker-image-${a.name}.tar.gz");
    python312 = mkPython (_: _: { });
    autoPatchelfHook = stub "auto-patchelf-hook";
    ffmpeg = stub "ffmpeg";
    clang = stub "clang";
    ruff = stub "ruff";
    espeak-ng = stub "espeak-ng";
    cacert = stub "cacert";
    bashInteractive = stub "bash-interactive";
    coreutils = stub "coreutils";
  };
in
pkgs
