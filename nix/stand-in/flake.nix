# A stand-in for nixpkgs, for offline checks only: `nix flake check --no-build --override-input
# nixpkgs path:./nix/stand-in`. It provides exactly the attributes demod-voice's flake uses, each a
# derivation that is never built. It proves the wiring (every output exists, every attribute used is
# provided, pins.json has what the fetchers need); it does not prove that real nixpkgs evaluates or builds.
{
  description = "offline stand-in for nixpkgs (wiring checks only)";
  outputs = { self }: { lib = import ./lib.nix; };
}
