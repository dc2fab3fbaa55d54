#!/usr/bin/env bash
# Offline check of the flake, for machines that cannot reach nixpkgs or its cache (like CI here):
#   1. every .nix file parses;
#   2. `nix flake check --no-build` passes with nixpkgs replaced by the stand-in in nix/stand-in.
# It proves the wiring: every output exists for both systems, and every attribute the flake uses is
# provided. It does NOT prove that real nixpkgs evaluates or builds it; see the README for the commands
# to run on a machine with network access. Usage: nix/offline-check.sh [REPO_DIR]
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
export NIX_CONFIG=$'experimental-features = nix-command flakes\nsubstituters =\nbuild-users-group =\nsandbox = false'

status=0
while IFS= read -r file; do
  nix-instantiate --parse "$file" > /dev/null || { echo "offline-check: $file does not parse" >&2; status=1; }
done < <(find "$repo/flake.nix" "$repo/nix" -name '*.nix' | sort)
[ "$status" = 0 ] || exit 1

# Check a copy of just what the flake reads, so the store never receives .venv or caches.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$repo/flake.nix" "$repo/flake.lock" "$repo/nix" "$repo/demod_voice" "$repo/bin" "$repo/pyproject.toml" "$repo/README.md" "$work/"
find "$work" -name __pycache__ -prune -exec rm -rf {} +
nix flake check --no-build --no-write-lock-file "path:$work" --override-input nixpkgs "path:$work/nix/stand-in"
echo "offline-check: every .nix file parses; flake outputs evaluate against the stand-in nixpkgs"
