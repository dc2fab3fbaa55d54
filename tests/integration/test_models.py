"""Named models: a catalog and voice files served from 127.0.0.1, downloaded for real."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest
import soundfile
from catalog_server import CatalogServer, publish_voice
from conftest import run_cli

NAME = "en_US-test-x_low"


@pytest.fixture()
def catalog(tmp_path, piper_voice):
    root = tmp_path / "served"
    root.mkdir()
    publish_voice(root, NAME, piper_voice)
    publish_voice(root, "en_US-broken-x_low", piper_voice, corrupt_md5=True)
    publish_voice(root, f"{NAME}-copy", piper_voice)  # a name that begins with the other's
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx graph")
    garbage.with_name("garbage.onnx.json").write_bytes(Path(f"{piper_voice}.json").read_bytes())
    publish_voice(root, "en_US-garbage-x_low", garbage)  # its checksum is right: only onnxruntime finds it unreadable
    with CatalogServer(root) as server:
        yield server


def env(server, tmp_path, **extra):
    return {"DEMOD_VOICE_MODELS_CATALOG_URL": server.url, "DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache"), **extra}


def test_download_list_path_remove(catalog, tmp_path, piper_voice):
    e = env(catalog, tmp_path)
    done = run_cli("models", "download", NAME, env=e)
    assert done.returncode == 0, done.stderr.decode()
    installed = tmp_path / "cache" / "piper" / f"{NAME}.onnx"
    assert done.stdout.decode().strip() == str(installed)
    assert installed.read_bytes() == piper_voice.read_bytes()
    listed = run_cli("models", "list", env=e).stdout.decode()
    assert NAME in listed
    available = run_cli("models", "list", "--available", env=e).stdout.decode()
    assert f"* {NAME}" in available and "  en_US-broken-x_low" in available
    assert run_cli("models", "path", NAME, env=e).stdout.decode().strip() == str(installed)
    assert run_cli("models", "download", f"{NAME}-copy", env=e).returncode == 0
    copy = cache_entries(tmp_path, f"{NAME}-copy")
    assert cache_entries(tmp_path, NAME) and copy
    assert run_cli("models", "remove", NAME, env=e).returncode == 0
    assert not installed.exists()
    # what the download prepared for the voice goes with it; the other voice's entries stay, though its name begins alike
    assert cache_entries(tmp_path, NAME) == [] and cache_entries(tmp_path, f"{NAME}-copy") == copy


def cache_entries(tmp_path, name: str) -> list[str]:
    """The cache's prepared and optimised graphs of voice ``name`` (names: the voice's, then hex digests and roles)."""
    pattern = re.compile(rf"{re.escape(name)}(-(front|decoder|flow|masked))?(-[0-9a-f]{{32}})+\.onnx")
    return sorted(p.name for p in (tmp_path / "cache" / "onnx").iterdir() if pattern.fullmatch(p.name))


def test_a_voice_onnxruntime_cannot_read_is_installed_with_a_one_line_warning(catalog, tmp_path):
    done = run_cli("models", "download", "en_US-garbage-x_low", env=env(catalog, tmp_path))
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert (tmp_path / "cache" / "piper" / "en_US-garbage-x_low.onnx").read_bytes() == b"not an onnx graph"
    warned = [line for line in err.splitlines() if "could not be prepared" in line]
    assert len(warned) == 1 and "first use prepares them" in warned[0] and "Traceback" not in err, err


def test_a_downloaded_voice_is_prepared_so_its_first_use_prepares_nothing(catalog, tmp_path):
    e = env(catalog, tmp_path)
    done = run_cli("models", "download", NAME, env=e)
    assert done.returncode == 0, done.stderr.decode()
    folder = tmp_path / "cache" / "onnx"
    made = sorted(p.name for p in folder.iterdir())
    # the voice's prepared graphs, and onnxruntime's optimised graph of each beside it
    assert made == cache_entries(tmp_path, NAME) and len(made) >= 4, made
    out = tmp_path / "first.wav"
    first = run_cli("piper-infer", NAME, "The first words of a new voice.", "-o", str(out), env=e)
    assert first.returncode == 0, first.stderr.decode()
    assert soundfile.info(str(out)).frames > 0
    assert sorted(p.name for p in folder.iterdir()) == made


def test_piper_infer_by_name_downloads_when_allowed(catalog, tmp_path):
    out = tmp_path / "hello.wav"
    refused = run_cli("piper-infer", NAME, "Hello.", "-o", str(out), env=env(catalog, tmp_path))
    assert refused.returncode == 3 and f"demod-voice models download {NAME}" in refused.stderr.decode()
    done = run_cli("piper-infer", NAME, "Hello.", "-o", str(out), env=env(catalog, tmp_path, DEMOD_VOICE_MODELS_AUTO_DOWNLOAD="true"))
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(out)).samplerate == 22050
    again = run_cli("piper-infer", NAME, "Again.", "-o", str(out), env=env(catalog, tmp_path))
    assert again.returncode == 0  # installed now: no download needed
    voice_requests = [p for p, _ in catalog.requests if p.endswith(".onnx")]
    assert len(voice_requests) == 1


def test_checksum_mismatch_is_rejected_and_nothing_is_left(catalog, tmp_path):
    done = run_cli("models", "download", "en_US-broken-x_low", env=env(catalog, tmp_path))
    err = done.stderr.decode()
    assert done.returncode == 3 and "does not match its checksum" in err and "nothing was kept" in err
    leftovers = [p.name for p in (tmp_path / "cache" / "piper").iterdir() if p.name != "voices.json"]
    assert leftovers == []


def test_interrupted_download_resumes(catalog, tmp_path, piper_voice):
    onnx_path = f"en/en_US/{NAME}/{NAME}.onnx"
    catalog.cut_once[onnx_path] = 300_000
    first = run_cli("models", "download", NAME, env=env(catalog, tmp_path))
    assert first.returncode == 1 and "run the same command again to resume" in first.stderr.decode()
    folder = tmp_path / "cache" / "piper"
    assert not (folder / f"{NAME}.onnx").exists()  # no half model visible
    assert (folder / f".{NAME}.onnx.part").stat().st_size == 300_000
    second = run_cli("models", "download", NAME, env=env(catalog, tmp_path))
    assert second.returncode == 0, second.stderr.decode()
    assert (folder / f"{NAME}.onnx").read_bytes() == piper_voice.read_bytes()
    ranges = [r for p, r in catalog.requests if p == onnx_path]
    assert ranges == ["", "bytes=300000-"]


def test_two_downloads_of_one_voice_at_once_both_end_with_it_installed(catalog, tmp_path, piper_voice):
    """Both wrote the same part file, and both failed: one "is N bytes, the catalog says M" (blaming the catalog), the
    other "No such file or directory" on the part file. The second now waits for the first."""
    import subprocess
    import sys

    from conftest import BIN

    catalog.bytes_per_second = 1_000_000  # the tiny voice takes ~2 s: the second starts while the first downloads
    both = [subprocess.Popen([sys.executable, str(BIN), "models", "download", NAME], env={**os.environ, **env(catalog, tmp_path)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    ends = [process.communicate(timeout=120) for process in both]
    for process, (_, err) in zip(both, ends, strict=True):
        assert process.returncode == 0, err.decode()
    assert any("waiting for it to finish" in err.decode() for _, err in ends), [err.decode() for _, err in ends]
    folder = tmp_path / "cache" / "piper"
    assert (folder / f"{NAME}.onnx").read_bytes() == piper_voice.read_bytes()
    assert not list(folder.glob(".*.part"))


def test_a_mirror_file_shorter_than_the_catalog_says_is_named_not_resumed_forever(catalog, tmp_path):
    """The mirror's .onnx is shorter than the catalog's size: every run said "stopped at N of M bytes; run the same
    command again to resume", and the next got a 416 and said it again."""
    import json

    listed = json.loads((catalog.root / "voices.json").read_text())
    onnx = next(path for path in listed[NAME]["files"] if path.endswith(".onnx"))
    served = catalog.root / onnx
    served.write_bytes(served.read_bytes()[:-1000])  # the catalog still says the whole size
    for _ in range(2):
        done = run_cli("models", "download", NAME, env=env(catalog, tmp_path))
        err = done.stderr.decode()
        assert done.returncode == 3 and "the mirror and the catalog disagree" in err and "resume" not in err, err
    assert not list((tmp_path / "cache" / "piper").glob(f".{NAME}.onnx.part"))


def test_offline_error_says_where_to_put_files(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    e = {"DEMOD_VOICE_MODELS_CATALOG_URL": f"http://127.0.0.1:{port}/", "DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache")}
    done = run_cli("models", "download", NAME, env=e)
    err = done.stderr.decode().strip()
    assert done.returncode == 1 and "cannot reach" in err and str(tmp_path / "cache" / "piper") in err
    assert len(err.splitlines()) == 1


def test_unknown_name_suggests_close_matches(catalog, tmp_path):
    done = run_cli("models", "download", "en_US-test-x_lo", env=env(catalog, tmp_path))
    assert done.returncode == 3 and f"did you mean {NAME}" in done.stderr.decode()
