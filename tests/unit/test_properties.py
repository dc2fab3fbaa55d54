"""Property tests (hypothesis) for the code that meets untrusted input: the batch CSV reader, the
config loader and its environment overrides, text splitting, output-path confinement and profile
import. Each property says what must hold for *any* input; each case a run once found is kept as
an ``@example``.

Cases per test: ``HYPOTHESIS_PROFILE=ci`` (the default here) runs 300 examples per test;
``HYPOTHESIS_PROFILE=deep`` runs 5,000. ``pytest --hypothesis-show-statistics`` prints the counts.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from demod_voice.audio.text import _CLAUSE_END, _SENTENCE_END, split_sentences
from demod_voice.batch import COLUMNS, read_rows
from demod_voice.config import Config, _leaf_keys, load_config
from demod_voice.errors import ConfigError, InputError
from demod_voice.paths import confined_output
from demod_voice.voices.profiles import read_profile, write_profile

# No example database: found cases are kept as @example in this file, and no .hypothesis/ folder appears in the tree.
settings.register_profile("ci", max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=5000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SCRATCH = Path(tempfile.mkdtemp(prefix="dv-properties-"))
atexit.register(shutil.rmtree, SCRATCH, True)  # each run left its folder in /tmp


def scratch_file(name: str, data: bytes) -> Path:
    path = SCRATCH / name
    path.write_bytes(data)
    return path


# --- the batch CSV reader ------------------------------------------------------------------------

csv_cells = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\t\x00é|') + ["\ufeff", "\u2028"]), max_size=12)
csv_text = st.builds(
    lambda header, rows: header + "\n" + "\n".join(",".join(r) for r in rows),
    st.lists(st.sampled_from(COLUMNS + ("txt", "", " text ")), min_size=0, max_size=6).map(",".join),
    st.lists(st.lists(csv_cells, max_size=7), max_size=6),
)


@given(st.one_of(st.binary(max_size=300), csv_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(b'text,output\n"unclosed,a.wav\n')
@example(b"text,output,text\nx,y,z\n")
@example(b"text,output\n" + b"x" * 200_000 + b",a.wav\n")  # over the csv module's field limit
@example(b"\xff\xfetext,output\n")
def test_csv_reader_gives_rows_or_one_input_error(data):
    path = scratch_file("rows.csv", data)
    try:
        rows = read_rows(path)
    except InputError as err:
        assert "\n" not in str(err).strip()
        return
    lines = [row.line for row in rows]
    assert lines == sorted(lines) and all(line >= 2 for line in lines)
    for row in rows:
        assert all(isinstance(k, str) and isinstance(v, str) and v == v.strip() for k, v in row.values.items())
        assert any(row.values.values())


# --- the config loader and environment overrides ---------------------------------------------------

KEYS = _leaf_keys(Config)
yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                         st.text(max_size=8), st.sampled_from(["cpu", "gpu", "piper", "16000", "[1, 2]", "{a: 1}", "~"]))


def nested(keys: list[str], values: list) -> dict:
    out: dict = {}
    for dotted, value in zip(keys, values, strict=False):
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[last] = value
    return out


@given(st.one_of(
    st.text(max_size=200),
    st.builds(nested, st.lists(st.sampled_from(KEYS + ["engine", "nope", "engine.nope", "piper.speed"]), max_size=5),
              st.lists(yaml_scalars, max_size=5)).map(lambda d: json.dumps(d, default=str)),
))
@example("engine: 3\n")
@example("engine:\n  workers: .inf\n")
@example("- a\n- b\n")
@example("!!python/object/apply:os.system ['echo pwned']\n")
@example("a: &a [*a]\n")
def test_config_file_gives_a_config_or_one_config_error(text):
    path = scratch_file("config.yaml", text.encode("utf-8", "surrogatepass"))
    try:
        config, used = load_config(str(path), env={})
    except ConfigError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert isinstance(config, Config) and used == path
    assert config.engine.workers >= 0 and config.device in ("cpu", "gpu")


@given(st.sampled_from(KEYS), st.text(max_size=20))
@example("engine.workers", "0x10")
@example("xtts.max_new_tokens", "")
@example("device", "!!binary aGk=")
@example("engine.workers", "1e309")
def test_environment_overrides_give_a_config_or_one_config_error(key, raw):
    name = "DEMOD_VOICE_" + key.replace(".", "_").upper()
    try:
        config, _ = load_config(None, env={name: raw, "XDG_CONFIG_HOME": str(SCRATCH / "none")})
    except ConfigError as err:
        assert name in str(err) and "\n" not in str(err)
        return
    assert isinstance(config, Config)


@given(st.sampled_from([k for k in KEYS if k.endswith(("workers", "retries"))]), st.integers(1, 10**6))
def test_a_valid_environment_value_is_the_value_used(key, value):
    name = "DEMOD_VOICE_" + key.replace(".", "_").upper()
    config, _ = load_config(None, env={name: str(value), "XDG_CONFIG_HOME": str(SCRATCH / "none")})
    section, field = key.split(".")
    assert getattr(getattr(config, section), field) == value


# --- text splitting ------------------------------------------------------------------------------

MARKS = _SENTENCE_END.pattern + _CLAUSE_END.pattern


def marks_free(word: str) -> bool:
    return not any(ch in MARKS for ch in word)


@given(st.text(max_size=600), st.integers(1, 400))
@example("a, " * 100, 5)
@example("。" * 10 + "x" * 30, 3)
@example("\x1c\x1dword\u2028word\u3000", 2)
@example("—" * 20, 1)
def test_splitting_keeps_every_word_in_order_within_the_limit(text, limit):
    # 400 covers every XTTS language's limit (ja 71 ... fr 273); the engine passes char_limits[lang].
    pieces = split_sentences(text, limit)
    assert all(0 < len(piece) <= limit and piece == piece.strip() for piece in pieces)
    # Nothing lost or reordered: the non-space characters, in order, are exactly the text's.
    assert "".join("".join(pieces).split()) == "".join(text.split())
    # A word that fits and holds no sentence or clause mark is never cut.
    tokens = {token for piece in pieces for token in piece.split()}
    assert all(word in tokens for word in text.split() if len(word) <= limit and marks_free(word))


# --- output-path confinement ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def output_root():
    base = Path(tempfile.mkdtemp(prefix="dv-confine-"))
    root, outside = base / "out", base / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "link")
    os.symlink(root / "sub", root / "inner")  # a link that stays inside is still a link
    os.symlink("..", root / "sub" / "up")
    os.symlink(root / "missing", root / "dangling")
    yield root
    shutil.rmtree(base, ignore_errors=True)


segments = st.sampled_from(["a", "b.wav", "..", ".", "", "link", "inner", "sub", "up", "dangling", "~", "x" * 300,
                            "é", " ", "a\x00b", "\n", "\\", "-"])


@given(st.lists(segments, min_size=1, max_size=6), st.booleans())
@example(["sub", "up", "link", "x.wav"], False)
@example(["link", "x.wav"], True)
@example(["."], False)  # found: '.' named the output folder itself
@example(["sub", ""], True)
def test_no_accepted_output_escapes_the_output_folder(output_root, parts, absolute):
    text = "/".join(parts)
    if absolute:
        text = str(output_root) + "/" + text
    try:
        target = confined_output(output_root, text)
    except InputError:
        return
    real_root = output_root.resolve()
    assert target.resolve().is_relative_to(real_root) and target.resolve() != real_root
    node = target
    while node != output_root:
        assert not node.is_symlink(), node
        node = node.parent
    # Creating it really creates it inside.
    target.parent.mkdir(parents=True, exist_ok=True)
    assert Path(os.path.realpath(target.parent)).is_relative_to(real_root)


# --- profile import ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_profile() -> bytes:
    path = SCRATCH / "good.npz"
    write_profile(path, "voice", "model-id", ["ab" * 32], np.ones((1, 4, 8), np.float32), np.ones((1, 8, 1), np.float32))
    return path.read_bytes()


def npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def import_bytes(data: bytes):
    try:
        return read_profile(scratch_file("import.npz", data))
    except InputError as err:
        assert "\n" not in str(err)
        return None


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_profile_import_takes_any_bytes(good_profile, data):
    choice = data.draw(st.sampled_from(["random", "mutated", "members"]))
    if choice == "random":
        blob = data.draw(st.binary(max_size=2000))
    elif choice == "mutated":
        blob = bytearray(good_profile)
        for _ in range(data.draw(st.integers(1, 8))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(blob)
    else:
        names = data.draw(st.lists(st.sampled_from(["meta.npy", "gpt_cond_latent.npy", "speaker_embedding.npy", "x.npy"]),
                                   unique=True, max_size=4))
        blob = npz({name: data.draw(st.binary(max_size=200)) for name in names})
    profile = import_bytes(blob)
    if profile is not None:  # only an intact profile passes (a changed byte in zip bookkeeping may leave it intact)
        assert choice != "random" and profile.digest and profile.name == "voice"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["format", "name", "model", "references", "created", "extra"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=2),
                                 st.just("demod-voice-profile/1"), st.just(["x"]), st.just([]), st.just("voice\n"))))
@example({"format": "\n"})  # found (5,000-case run): the error printed the format as it was, newline and all
@example({"format": "demod-voice-profile/1", "name": "a\nb", "model": "m", "references": [], "created": "now"})
@example({"format": "demod-voice-profile/1", "name": "voice\n", "model": "m", "references": [], "created": "now"})  # found: $ in
def test_profile_metadata_of_any_shape_with_a_valid_digest(meta):  # the name pattern let a trailing newline into a file name
    # The digest proves integrity, not sense: a made-up file with a correct digest must still be refused cleanly.
    from demod_voice.voices import profiles

    gpt, speaker = np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 1), np.float32)
    meta = dict(meta)
    meta["digest"] = profiles._digest(meta, gpt, speaker)
    buffer = io.BytesIO()
    np.savez(buffer, gpt_cond_latent=gpt, speaker_embedding=speaker, meta=np.array(json.dumps(meta)))
    profile = import_bytes(buffer.getvalue())
    if profile is not None:
        assert profiles.NAME.fullmatch(profile.name) and all(isinstance(r, str) for r in profile.references)


@pytest.mark.parametrize("case", ["zip-version", "bad-crc", "encrypted-flag"])
def test_profile_damage_found_by_the_fuzzers_is_refused_cleanly(good_profile, case):
    # Kept cases: zipfile raised NotImplementedError, BadZipFile (CRC, from inside numpy) and
    # RuntimeError (a member flagged as encrypted), none of them an InputError.
    blob = bytearray(good_profile)
    central = blob.rfind(b"PK\x01\x02")
    if case == "zip-version":
        blob[central + 6] = 85  # "version needed to extract" 8.5
    elif case == "bad-crc":
        blob[blob.find(b"\x00\x00\x80?") + 2] ^= 0x01  # one bit of the first array's data: its CRC fails
    else:
        blob[central + 8] |= 0x01  # general purpose flag bit 0: encrypted
    with pytest.raises(InputError, match="is not a demod-voice profile|integrity"):
        read_profile(scratch_file(f"{case}.npz", bytes(blob)))


def test_a_pickle_in_a_profile_never_runs(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    buffer = io.BytesIO()
    arrays = {"gpt_cond_latent": np.array([Payload()], dtype=object), "speaker_embedding": np.zeros(2, np.float32),
              "meta": np.array("{}")}
    np.savez(buffer, **arrays)
    with pytest.raises(InputError, match="not a demod-voice profile"):
        read_profile(scratch_file("pickle.npz", buffer.getvalue()))
    assert not marker.exists()


def test_profile_import_memory_is_bounded():
    import tracemalloc

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
    claims_4gb = header.getvalue() + b"\0" * 64
    zeros = io.BytesIO()
    with zipfile.ZipFile(zeros, "w", zipfile.ZIP_DEFLATED) as archive:  # a zip bomb: 200 MB of zeros in ~200 kB
        for name in ("gpt_cond_latent.npy", "speaker_embedding.npy", "meta.npy"):
            archive.writestr(name, b"\0" * (200 << 20) if name == "meta.npy" else claims_4gb)
    tracemalloc.start()
    try:
        for blob in (npz({"gpt_cond_latent.npy": claims_4gb, "speaker_embedding.npy": claims_4gb, "meta.npy": claims_4gb}),
                     zeros.getvalue()):
            with pytest.raises(InputError):
                read_profile(scratch_file("big.npz", blob))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
