{
  description = "demod-voice: voice cloning (XTTS-v2) and text-to-speech (Piper) from one command line";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      lib = nixpkgs.lib;
      forAllSystems = f: lib.genAttrs systems (system: f system);
      pkgsFor = system: cuda: import nixpkgs {
        inherit system;
        # CUDA builds of torch and onnxruntime are unfree; only the CUDA image asks for them.
        config = { allowUnfree = cuda; cudaSupport = cuda; };
      };
      build = pkgs: rec {
        python = pkgs.callPackage ./nix/python.nix { };
        demod-voice = pkgs.callPackage ./nix/package.nix { inherit python; src = self; };
        dockerImage = pkgs.callPackage ./nix/docker.nix { inherit demod-voice; };
      };
    in
    {
      packages = forAllSystems (system:
        let
          cpu = build (pkgsFor system false);
        in
        {
          default = cpu.demod-voice;
          demod-voice = cpu.demod-voice;
          dockerImage = cpu.dockerImage;
        } // lib.optionalAttrs (system == "x86_64-linux") {
          # nixpkgs builds CUDA torch and onnxruntime for x86_64 only.
          dockerImageCuda = (build (pkgsFor system true)).dockerImage;
        });

      apps = forAllSystems (system: {
        default = {
          type = "app";
          program = "${self.packages.${system}.default}/bin/demod-voice";
        };
      });

      devShells = forAllSystems (system:
        let
          pkgs = pkgsFor system false;
          cpu = build pkgs;
        in
        {
          default = pkgs.mkShell {
            packages = [ (cpu.python.withPackages (ps: cpu.demod-voice.runtimeDeps ps ++ cpu.demod-voice.testDeps ps)) ]
              ++ [ pkgs.ffmpeg pkgs.ruff pkgs.espeak-ng pkgs.clang ];
            shellHook = ''
              export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
            '';
          };
        });

      checks = forAllSystems (system:
        let
          pkgs = pkgsFor system false;
          cpu = build pkgs;
        in
        pkgs.callPackage ./nix/checks.nix { inherit (cpu) python demod-voice; src = self; });
    };
}
