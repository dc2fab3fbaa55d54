"""Coverage-guided fuzzing (atheris) of the code that reads untrusted input.

    python tests/fuzz/fuzz_inputs.py TARGET [-max_total_time=SECONDS] [-rss_limit_mb=MB] [CORPUS_DIR]
    python tests/fuzz/fuzz_inputs.py all -max_total_time=10      # every target, one after another

Targets: csv (the batch CSV reader), config (the config file and a DEMOD_VOICE_* variable),
split (text splitting), confine (output-path confinement, symlinks included), profile (voice
profile import), rows (a client's batch file against the server's row policy). Each input must give a clean result or a ``DemodVoiceError``; any other
exception, or a broken property, is a finding (atheris stops and writes ``crash-*``).

Without atheris (it has no wheel for some Pythons) the same targets run on a random-mutation
loop over the seeds for the given time: ``--fallback`` forces that mode.
"""

from __future__ import annotations

import atexit
import io
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the platform
    atheris = None

if atheris is not None and "--fallback" not in sys.argv:
    with atheris.instrument_imports():
        import zipfile  # noqa: F401 - profile import parses the zip and .npy headers: coverage there guides the search

        import yaml  # noqa: F401

        import demod_voice.audio.text  # noqa: F401
        import demod_voice.batch  # noqa: F401
        import demod_voice.config  # noqa: F401
        import demod_voice.paths  # noqa: F401
        import demod_voice.voices.profiles  # noqa: F401

from demod_voice.audio.text import split_sentences  # noqa: E402
from demod_voice.batch import read_rows  # noqa: E402
from demod_voice.config import Config, _leaf_keys, load_config  # noqa: E402
from demod_voice.errors import DemodVoiceError, InputError  # noqa: E402
from demod_voice.paths import confined_output  # noqa: E402
from demod_voice.voices.profiles import read_profile, write_profile  # noqa: E402

SHARED_WORK = "DV_FUZZ_WORK"
"""Set by ``all`` for the run of each target: its folder, which ``all`` removes. libFuzzer ends a target's process
without Python's exit handlers, so a folder of the target's own stayed in /tmp after every CI run."""
WORK = Path(os.environ.get(SHARED_WORK) or tempfile.mkdtemp(prefix="dv-fuzz-"))
KEEP_WORK = False
"""Set once an input is saved in ``WORK`` for the finding's reader; otherwise the folder goes when the run ends."""
if SHARED_WORK not in os.environ:
    atexit.register(lambda: KEEP_WORK or shutil.rmtree(WORK, ignore_errors=True))
KEYS = _leaf_keys(Config)


def _file(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


def fuzz_csv(data: bytes) -> None:
    try:
        read_rows(_file("rows.csv", data))
    except DemodVoiceError:
        pass


def fuzz_config(data: bytes) -> None:
    if data[:1] == b"\x00" and len(data) > 2:  # a variable: key chosen by the second byte, the rest its value
        key = KEYS[data[1] % len(KEYS)]
        env = {"DEMOD_VOICE_" + key.replace(".", "_").upper(): data[2:].decode("utf-8", "replace")}
        try:
            load_config(None, env={**env, "XDG_CONFIG_HOME": str(WORK / "none")})
        except DemodVoiceError:
            pass
        return
    try:
        load_config(str(_file("config.yaml", data)), env={})
    except DemodVoiceError:
        pass


def fuzz_split(data: bytes) -> None:
    if not data:
        return
    limit = data[0] + 1
    text = data[1:].decode("utf-8", "replace")
    pieces = split_sentences(text, limit)
    if not all(0 < len(p) <= limit for p in pieces):
        raise AssertionError(f"a piece is empty or over {limit}: {pieces!r}")
    if "".join("".join(pieces).split()) != "".join(text.split()):
        raise AssertionError("words were lost or reordered")


_ROOT = WORK / "out"


def _confine_setup() -> None:
    if _ROOT.exists():
        return
    (_ROOT / "sub").mkdir(parents=True)
    (WORK / "outside").mkdir()
    os.symlink(WORK / "outside", _ROOT / "link")
    os.symlink("..", _ROOT / "sub" / "up")


def fuzz_confine(data: bytes) -> None:
    _confine_setup()
    text = data.decode("utf-8", "replace")
    if text.startswith("@"):
        text = f"{_ROOT}/{text[1:]}"
    try:
        target = confined_output(_ROOT, text)
    except DemodVoiceError:
        return
    real = _ROOT.resolve()
    if not target.resolve().is_relative_to(real) or target.resolve() == real:
        raise AssertionError(f"{text!r} escaped to {target.resolve()}")
    node = target
    while node != _ROOT:
        if node.is_symlink():
            raise AssertionError(f"{text!r} goes through the link {node}")
        node = node.parent


_RULES = None


def fuzz_rows(data: bytes) -> None:
    """A client's batch file against the server's row policy: what passes names only what the job holds."""
    from demod_voice.audio.writer import FORMATS
    from demod_voice.batch.rows import RemoteRules, check_remote_row

    def piper(name: str) -> str:
        if name != "voice":
            raise InputError(f"no Piper voice {name!r}")
        return "/voices/voice.onnx"

    rules = RemoteRules(200, {"me.wav": "refs/0.wav"}, lambda name: name == "bob", piper, None, {"take.wav": "srcs/0.wav"})
    try:
        rows = read_rows(_file("remote.csv", data))
    except DemodVoiceError:
        return
    for row in rows:
        try:
            checked = check_remote_row(row, rules)
        except DemodVoiceError:
            continue
        output = PurePosixPath(checked["output"])
        if output.is_absolute() or ".." in output.parts or output.suffix.lower() not in FORMATS or "\x00" in checked["text"]:
            raise AssertionError(f"row {row.values!r} passed as {checked!r}")
        if (any(r and r != "refs/0.wav" for r in checked["reference"].split("|")) or checked["model"] not in ("", "/voices/voice.onnx")
                or checked["source"] not in ("", "srcs/0.wav")):
            raise AssertionError(f"row {row.values!r} names something the job does not hold: {checked!r}")
        if checked["text"].strip() == "-" or len(checked["text"]) > 200:
            raise AssertionError(f"row {row.values!r} passed with the text {checked['text'][:40]!r}")


def fuzz_profile(data: bytes) -> None:
    try:
        read_profile(_file("import.npz", data))
    except DemodVoiceError:
        pass


def _seeds(target: str) -> list[bytes]:
    import numpy as np

    if target == "csv":
        return [b"reference,text,output,language,speaker\n/r.wav,\"Hello, there\",/o.wav,en,0\n", b"text,output\nA.,a.wav\n"]
    if target == "config":
        return [b"device: gpu\nengine:\n  workers: 2\npiper:\n  volume: 0.5\n", b"\x00\x02 3"]
    if target == "split":
        return [b"\x50Hello there. How are you? Fine, thanks: a long, long clause." * 3, "\x10你好。我很好！".encode()]
    if target == "confine":
        return [b"a/b.wav", b"../x.wav", b"@sub/x.wav", b"sub/up/link/x.wav"]
    if target == "rows":
        return [b"text,output,reference\nHi.,a.wav,me.wav\n-,b.wav,\n", b"text,output,model,voice\nHi.,s/a.flac,voice,\nYo.,.,,bob\n",
                b"source,output,reference,voice\ntake.wav,c.wav,me.wav,\n/etc/x.wav,d.wav,,bob\n"]
    buffer = io.BytesIO()
    path = WORK / "seed.npz"
    write_profile(path, "seed", "model", ["ab" * 32], np.ones((1, 4, 8), np.float32), np.ones((1, 8, 1), np.float32))
    buffer.write(path.read_bytes())
    return [buffer.getvalue()]


TARGETS = {"csv": fuzz_csv, "config": fuzz_config, "split": fuzz_split, "confine": fuzz_confine, "profile": fuzz_profile,
           "rows": fuzz_rows}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    blob = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        at = rng.randrange(len(blob) + 1)
        if op == 0 and blob:
            blob[min(at, len(blob) - 1)] = rng.randrange(256)
        elif op == 1:
            blob[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and blob:
            del blob[at : at + rng.randint(1, 8)]
        else:
            blob[at:at] = rng.choice([b"/", b"..", b",", b'"', b"\n", b"\x00", b"\xff", "é".encode(), b":", b"- "])
    return bytes(blob)


def fallback(target: str, seconds: float, seed: int = 0) -> int:
    """Mutate the seeds at random for ``seconds``; return the number of inputs tried (raises on a finding)."""
    global KEEP_WORK
    rng = random.Random(seed)
    pool = _seeds(target)
    run = TARGETS[target]
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = _mutate(rng, rng.choice(pool))
        try:
            run(data)
        except Exception:
            KEEP_WORK = True
            _file(f"crash-{target}", data)
            print(f"finding in {target}: input saved as {WORK / f'crash-{target}'}", file=sys.stderr)
            raise
        if rng.random() < 0.05 and len(pool) < 64:
            pool.append(data)
        count += 1
    return count


def _seconds(argv: list[str]) -> float:
    for arg in argv:
        if arg.startswith("-max_total_time="):
            return float(arg.split("=", 1)[1])
    return 10.0


def main(argv: list[str]) -> int:
    names = [a for a in argv[1:] if not a.startswith("-")]
    target = names[0] if names else "all"
    options = [a for a in argv[1:] if a.startswith("-")]
    if target == "all":
        import subprocess

        global KEEP_WORK
        for name in TARGETS:
            done = subprocess.run([sys.executable, __file__, name, *options], env={**os.environ, SHARED_WORK: str(WORK)})
            if done.returncode:
                KEEP_WORK = True  # a finding's input may be in it
                return done.returncode
        return 0
    if target not in TARGETS:
        print(f"unknown target {target}; choose from {', '.join(TARGETS)} or all", file=sys.stderr)
        return 2
    if atheris is None or "--fallback" in options:
        count = fallback(target, _seconds(options))
        print(f"{target}: {count} inputs in {_seconds(options):.0f} s (random mutation, no atheris), no finding", file=sys.stderr)
        return 0
    corpus = names[1] if len(names) > 1 else str(WORK / f"corpus-{target}")
    Path(corpus).mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(_seeds(target)):
        (Path(corpus) / f"seed{index}").write_bytes(seed)
    atheris.Setup([argv[0], *[o for o in options if o != "--fallback"], corpus], TARGETS[target])
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
