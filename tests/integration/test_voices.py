"""Voice profiles with the real (small) XTTS model: made once, moved between caches, used by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import soundfile
from conftest import ROOT, run_cli

from demod_voice.voices.profiles import FORMAT, load_named, read_profile, write_profile

FAST = {"DEMOD_VOICE_XTTS_MAX_NEW_TOKENS": "24"}


def cache_env(tmp_path, name, model):
    return {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / name), "DEMOD_VOICE_XTTS_MODEL_DIR": str(model), **FAST}


def test_add_list_export_import_and_use(xtts_model, references, tmp_path):
    home = cache_env(tmp_path, "home", xtts_model)
    added = run_cli("voices", "add", "alice", str(references["ref.wav"]), str(references["ref.flac"]), env=home)
    assert added.returncode == 0, added.stderr.decode()
    # the seconds of speech it was learnt from, as an enrollment over HTTP answers: what "6-30 s of speech" means
    assert "alice: 2 reference(s), 16.0 s of speech," in added.stdout.decode(), added.stdout.decode()
    assert "alice" in run_cli("voices", "list", env=home).stdout.decode()
    exported = tmp_path / "alice.voice.npz"
    assert run_cli("voices", "export", "alice", str(exported), env=home).returncode == 0
    piped = run_cli("voices", "export", "alice", "-", env=home, cwd=tmp_path)  # '-': standard output, not a file called '-'
    assert piped.returncode == 0 and piped.stdout == exported.read_bytes(), piped.stderr.decode()
    assert not (tmp_path / "-").exists()

    away = cache_env(tmp_path, "away", xtts_model)  # a clean cache, as on another machine
    imported = run_cli("voices", "import", str(exported), env=away)
    assert imported.returncode == 0, imported.stderr.decode()
    for where in ("home", "away"):  # someone's voice: enrolled profiles were readable by every local user
        assert (tmp_path / where / "profiles" / "alice.npz").stat().st_mode & 0o777 == 0o600
    out = tmp_path / "by-name.wav"
    spoken = run_cli("-v", "xtts-zero-shot", "--voice", "alice", "Hello by name.", "-o", str(out), env=away)
    assert spoken.returncode == 0, spoken.stderr.decode()
    assert "voice profile 'alice': conditioning skipped" in spoken.stderr.decode()
    assert soundfile.info(str(out)).samplerate == 24000
    assert not (tmp_path / "away" / "latents").exists()  # nothing was conditioned there

    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("voice,text,output\nalice,From the batch.,b.wav\n")
    (tmp_path / "batch-out").mkdir()
    batch = run_cli("batch", str(csv_file), "--output-dir", str(tmp_path / "batch-out"), env=away)
    assert batch.returncode == 0, batch.stderr.decode()
    assert soundfile.info(str(tmp_path / "batch-out" / "b.wav")).frames > 0


def test_a_damaged_profile_is_listed_as_such_and_can_be_removed_or_replaced(xtts_model, references, tmp_path):
    """A damaged profile was left out of ``voices list`` without a word, and ``voices remove`` and ``voices add --force``
    refused it ("... is not a demod-voice profile"): only deleting the file by hand got rid of it."""
    home = cache_env(tmp_path, "home", xtts_model)
    profiles = tmp_path / "home" / "profiles"
    profiles.mkdir(parents=True)
    for name in ("broken", "again"):
        (profiles / f"{name}.npz").write_bytes(b"junk " * 40)
    listed = run_cli("voices", "list", env=home)
    assert listed.returncode == 0 and "broken" in listed.stdout.decode() and "damaged" in listed.stdout.decode(), listed.stdout.decode()
    assert "voices remove broken" in listed.stdout.decode()
    removed = run_cli("voices", "remove", "broken", env=home)
    assert removed.returncode == 0, removed.stderr.decode()
    assert not (profiles / "broken.npz").exists()
    replaced = run_cli("voices", "add", "again", str(references["ref.wav"]), "--force", env=home)
    assert replaced.returncode == 0, replaced.stderr.decode()
    assert load_named(tmp_path / "home", "again").name == "again"


def test_profile_from_another_model_is_refused(xtts_model, references, tmp_path):
    home = cache_env(tmp_path, "home", xtts_model)
    assert run_cli("voices", "add", "bob", str(references["ref.wav"]), env=home).returncode == 0
    other = tmp_path / "other-model"
    shutil.copytree(xtts_model, other)
    config = other / "config.json"
    config.write_text(config.read_text().replace('"temperature": 0.85', '"temperature": 0.5'))
    done = run_cli("xtts-zero-shot", "--voice", "bob", "Hi.", "-o", str(tmp_path / "o.wav"),
                   env={**home, "DEMOD_VOICE_XTTS_MODEL_DIR": str(other)})
    assert done.returncode == 3 and "was made with another XTTS model" in done.stderr.decode()
    assert not (tmp_path / "o.wav").exists()


def test_a_voice_exported_with_another_model_is_made_again_on_import(xtts_model, references, tmp_path):
    """Imported where another XTTS model is installed, a profile was refused ("enroll the voice again here from its
    recordings"): the one importing it has only the export, which holds the recordings' first seconds. It is made again
    from those, for this model, keeping its language."""
    home = cache_env(tmp_path, "home", xtts_model)
    added = run_cli("voices", "add", "dana", str(references["ref.wav"]), "-l", "fr", env=home)
    assert added.returncode == 0, added.stderr.decode()
    exported = tmp_path / "dana.voice.npz"
    assert run_cli("voices", "export", "dana", str(exported), env=home).returncode == 0
    other = tmp_path / "other-model"
    shutil.copytree(xtts_model, other)
    config = other / "config.json"
    config.write_text(config.read_text().replace('"temperature": 0.85', '"temperature": 0.5'))
    away = {**cache_env(tmp_path, "away", xtts_model), "DEMOD_VOICE_XTTS_MODEL_DIR": str(other)}
    imported = run_cli("voices", "import", str(exported), env=away)
    assert imported.returncode == 0, imported.stderr.decode()
    assert "made again from the recordings it holds" in imported.stdout.decode()
    here, sent = load_named(tmp_path / "away", "dana"), read_profile(exported)
    assert here.model != sent.model and here.language == "fr" and len(here.references) == len(sent.references)
    spoken = run_cli("-v", "xtts-zero-shot", "--voice", "dana", "Bonjour.", "-o", str(tmp_path / "o.wav"), env=away)
    assert spoken.returncode == 0 and "conditioning skipped" in spoken.stderr.decode(), spoken.stderr.decode()


def test_tampered_profile_is_refused(xtts_model, references, tmp_path):
    home = cache_env(tmp_path, "home", xtts_model)
    assert run_cli("voices", "add", "carol", str(references["ref.wav"]), env=home).returncode == 0
    exported = tmp_path / "carol.npz"
    assert run_cli("voices", "export", "carol", str(exported), env=home).returncode == 0
    with np.load(exported, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["speaker_embedding"] = arrays["speaker_embedding"] * 1.01
    np.savez(exported, **arrays)
    done = run_cli("voices", "import", str(exported), env=cache_env(tmp_path, "away", xtts_model))
    assert done.returncode == 3 and "fails its integrity check" in done.stderr.decode()
    (tmp_path / "junk.npz").write_bytes(b"junk")
    done = run_cli("voices", "import", str(tmp_path / "junk.npz"), env=cache_env(tmp_path, "away", xtts_model))
    assert done.returncode == 3 and "is not a demod-voice profile" in done.stderr.decode()


def test_export_into_a_folder_names_a_profile_file(xtts_model, references, tmp_path):
    home = cache_env(tmp_path, "home", xtts_model)
    assert run_cli("voices", "add", "alice", str(references["ref.wav"]), env=home).returncode == 0
    (tmp_path / "usb").mkdir()
    done = run_cli("voices", "export", "alice", str(tmp_path / "usb"), env=home)
    said = done.stderr.decode()
    assert done.returncode == 3 and f"such as {tmp_path / 'usb' / 'alice.voice.npz'}" in said and ".wav" not in said, said
    assert list((tmp_path / "usb").iterdir()) == []


def test_export_to_a_recording_s_name_leaves_the_recording(xtts_model, references, tmp_path):
    """``voices export alice alice.wav`` replaced the recording alice.wav with the profile (exit 0)."""
    home = cache_env(tmp_path, "home", xtts_model)
    take = tmp_path / "alice.wav"
    shutil.copy(references["ref.wav"], take)
    assert run_cli("voices", "add", "alice", str(take), env=home).returncode == 0
    before = take.read_bytes()
    for target in (take, tmp_path / "alice.m4a", tmp_path / "take"):
        if target.name == "take":
            target.write_bytes(before)  # a recording with no suffix
        done = run_cli("voices", "export", "alice", str(target), env=home)
        said = done.stderr.decode()
        assert done.returncode == 2 and "a voice profile is not audio: give the profile its own file (alice.voice.npz)" in said, said
    assert take.read_bytes() == before and (tmp_path / "take").read_bytes() == before and not (tmp_path / "alice.m4a").exists()


def test_unknown_voice_name(xtts_model, tmp_path):
    done = run_cli("xtts-zero-shot", "--voice", "nobody", "Hi.", "-o", str(tmp_path / "o.wav"),
                   env=cache_env(tmp_path, "c", xtts_model))
    assert done.returncode == 3 and "voices add nobody" in done.stderr.decode()


def test_a_voice_name_with_a_space_is_refused_as_a_voice_name_not_a_lexicon_name(xtts_model, tmp_path):
    done = run_cli("xtts-zero-shot", "--voice", "my voice", "Hi.", "-o", str(tmp_path / "o.wav"),
                   env=cache_env(tmp_path, "c", xtts_model))
    said = done.stderr.decode()
    assert done.returncode == 3 and "'my voice' cannot name a voice" in said and "lexicon" not in said, said


def test_an_exported_voice_file_given_to_voice_says_to_import_it_first(xtts_model, tmp_path):
    """``--voice alice.voice.npz`` (the file a friend sent) was told "'alice.voice.npz' cannot name a voice: use letters"."""
    given = tmp_path / "alice.voice.npz"
    write_profile(given, "alice", "m" * 32, ["0" * 64], np.zeros((1, 32, 8), "float32"), np.zeros((1, 8, 1), "float32"))
    done = run_cli("xtts-zero-shot", "--voice", str(given), "Hi.", "-o", str(tmp_path / "o.wav"),
                   env=cache_env(tmp_path, "c", xtts_model))
    said = done.stderr.decode()
    assert done.returncode == 2 and f"install it first (demod-voice voices import {given}), then use --voice alice" in said, said


def test_a_recording_given_to_import_says_to_add_it(xtts_model, references, tmp_path):
    """``voices import memo.m4a`` was told "... is not a demod-voice profile (not a zip archive); export one with 'voices export'"."""
    given = tmp_path / "Mémo vocal.wav"
    shutil.copy(references["ref.wav"], given)
    done = run_cli("voices", "import", str(given), "--name", "memo", env=cache_env(tmp_path, "c", xtts_model))
    said = done.stderr.decode()
    assert done.returncode == 3 and f"is a recording, not a voice profile: make a voice of it (demod-voice voices add memo '{given}')" in said, said
    assert not (tmp_path / "c" / "profiles").exists()


def test_enrollment_is_an_engine_job(xtts_model, references, tmp_path):
    """``voices add`` submits one enrollment job: the CLI process imports no engine library, and the
    job's value (latents and the references' first seconds for voice conversion) becomes the profile."""
    home = cache_env(tmp_path, "home", xtts_model)
    code = ("import sys; from demod_voice.cli.main import main; rc = main(['voices', 'add', 'dora', sys.argv[1]]); "
            "heavy = sorted(m for m in ('torch', 'TTS', 'torchaudio', 'transformers') if m in sys.modules); "
            "print('heavy:', ','.join(heavy)); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(references["ref.wav"])], capture_output=True, cwd=ROOT,
                          env={**os.environ, **home}, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert "heavy: \n" in done.stdout.decode()
    profile = load_named(tmp_path / "home", "dora")
    info = soundfile.info(str(references["ref.wav"]))
    assert profile.reference_rate == 24000 and profile.reference_audio.dtype == np.int16
    assert abs(len(profile.reference_audio) / 24000 - min(30.0, info.duration)) < 0.01
    assert np.abs(profile.reference_audio).max() > 100
    with np.load(tmp_path / "home" / "profiles" / "dora.npz", allow_pickle=False) as data:
        assert FORMAT in str(data["meta"])


def test_a_clone_cannot_take_the_name_of_an_installed_voice_or_the_default_voice(xtts_model, references, tmp_path):
    """A clone called en_US-joe-medium (the released voice, the default) took its place in every request naming it or
    none; ``voices check en_US-joe-medium`` then checked the clone. Refused before any enrollment work."""
    home = cache_env(tmp_path, "home", xtts_model)
    shutil.copy(references["ref.wav"], tmp_path / "ref.wav")
    done = run_cli("voices", "add", "en_US-joe-medium", str(tmp_path / "ref.wav"), env=home)
    error = done.stderr.decode()
    assert done.returncode == 3 and "'en_US-joe-medium' is the default voice" in error and "another name" in error, error
    assert "Traceback" not in error and not list((tmp_path / "home").rglob("en_US-joe-medium.npz"))


def test_a_phone_recording_in_m4a_clones_and_converts_from_the_command_line(xtts_model, vc_model, references, tmp_path):
    """A phone's voice memo (.m4a, AAC) was refused by ``voices add``, ``xtts-zero-shot`` and ``convert`` ("Format not
    recognised ... use wav, flac, ogg or mp3") though the server took it: FFmpeg now decodes it for them too."""
    memo = tmp_path / "memo.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(references["ref.wav"]), "-c:a", "aac", str(memo)], check=True)
    home = {**cache_env(tmp_path, "home", xtts_model), "DEMOD_VOICE_CONVERT_MODEL_DIR": str(vc_model)}
    added = run_cli("voices", "add", "memo", str(memo), env=home)
    assert added.returncode == 0, added.stderr.decode()
    spoken = run_cli("xtts-zero-shot", str(memo), "Hello from my phone.", "-o", str(tmp_path / "x.wav"), env=home)
    assert spoken.returncode == 0, spoken.stderr.decode()
    converted = run_cli("convert", str(memo), "--reference", str(references["ref.wav"]), "-o", str(tmp_path / "c.wav"), env=home)
    assert converted.returncode == 0, converted.stderr.decode()
    assert soundfile.info(str(tmp_path / "c.wav")).frames > 0

    junk = tmp_path / "junk.m4a"
    junk.write_bytes(b"not audio at all " * 64)
    refused = run_cli("voices", "add", "junk", str(junk), env=home)
    said = refused.stderr.decode()
    assert refused.returncode == 3 and len(said.strip().splitlines()) == 1, said
    assert "junk.m4a is not audio that can be read (not a format FFmpeg recognises)" in said and str(tmp_path) not in said


def test_removing_a_voice_removes_its_conditioning_from_the_voice_cache(tmp_path):
    """``voices remove`` deleted the profile but the voice cache kept the latents made from its recordings: the voice
    could be made again from them without the recordings. Latents of other recordings stay."""
    from demod_voice.voices.profiles import write_profile
    from demod_voice.voices.references import latents_dir, save_latents

    cache = tmp_path / "home"
    gpt, speaker = np.zeros((1, 32, 64), np.float32), np.zeros((1, 512, 1), np.float32)
    write_profile(cache / "profiles" / "bob.npz", "bob", "model-x", ["a" * 64, "b" * 64], gpt, speaker)
    save_latents(str(cache), "bobs", gpt, speaker, {"references": ["a" * 64, "b" * 64], "model": "model-x"})
    save_latents(str(cache), "other", gpt, speaker, {"references": ["a" * 64], "model": "model-x"})
    removed = run_cli("voices", "remove", "bob", env={"DEMOD_VOICE_CACHE_DIR": str(cache)})
    assert removed.returncode == 0, removed.stderr.decode()
    assert sorted(p.name for p in latents_dir(cache).iterdir()) == ["other.npz"]


def test_two_exports_of_one_name_can_both_be_imported(tmp_path):
    """Two people's exports of a voice both called 'me': the second was refused ("remove it first or pass --force"), so one of
    them had to go. ``--name`` installs it under another name, the same voice, still verified and private."""
    rng = np.random.default_rng(3)
    exports = []
    for who in ("ann", "bob"):
        path = tmp_path / who / "me.voice.npz"
        write_profile(path, "me", "m" * 64, ["ab" * 32], rng.standard_normal((1, 4, 8)), rng.standard_normal((1, 8, 1)),
                      rng.integers(-999, 999, 2400), [2400], 24000)
        exports.append(path)
    env = {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache")}
    assert run_cli("voices", "import", str(exports[0]), env=env).returncode == 0
    again = run_cli("voices", "import", str(exports[1]), env=env)
    err = again.stderr.decode().strip()
    assert again.returncode == 3 and len(err.splitlines()) == 1 and "--name NEW" in err, err
    renamed = run_cli("voices", "import", str(exports[1]), "--name", "bob-me", env=env)
    assert renamed.returncode == 0 and "imported bob-me" in renamed.stdout.decode(), renamed.stderr.decode()
    cache = tmp_path / "cache"
    mine, theirs, sent = load_named(cache, "me"), load_named(cache, "bob-me"), read_profile(exports[1])
    assert theirs.name == "bob-me" and theirs.created == sent.created
    assert np.array_equal(theirs.gpt_cond_latent, sent.gpt_cond_latent) and np.array_equal(theirs.reference_audio, sent.reference_audio)
    assert not np.array_equal(mine.gpt_cond_latent, theirs.gpt_cond_latent)
    assert (cache / "profiles" / "bob-me.npz").stat().st_mode & 0o777 == 0o600


def test_an_imported_voice_can_be_given_its_language(tmp_path):
    """``voices import`` took no language (the server's import takes one): a voice exported with the wrong language, or
    none, spoke it wherever it was imported, and only a new ``voices add`` from its recordings could set it right.
    ``-l`` sets it, checked as ``voices add -l`` checks it; without it the file's own is kept."""
    rng = np.random.default_rng(4)
    sent = tmp_path / "marie.voice.npz"
    write_profile(sent, "marie", "m" * 64, ["ab" * 32], rng.standard_normal((1, 4, 8)), rng.standard_normal((1, 8, 1)),
                  rng.integers(-999, 999, 2400), [2400], 24000, language="de")
    env, cache = {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache")}, tmp_path / "cache"
    wrong = run_cli("voices", "import", str(sent), "-l", "french", env=env)
    said = wrong.stderr.decode().strip()
    assert wrong.returncode == 3 and "did you mean 'fr'?" in said and len(said.splitlines()) == 1, said
    assert not list(cache.rglob("*.npz"))
    done = run_cli("voices", "import", str(sent), "-l", "fr-FR", env=env)
    assert done.returncode == 0 and done.stdout.decode() == "imported marie (model mmmmmmmmmmmm), speaks fr\n", done.stderr.decode()
    kept = run_cli("voices", "import", str(sent), "--name", "marie-de", env=env)
    assert kept.returncode == 0 and "speaks de" in kept.stdout.decode(), kept.stderr.decode()
    marie, given = load_named(cache, "marie"), read_profile(sent)
    assert (marie.language, load_named(cache, "marie-de").language, marie.created) == ("fr", "de", given.created)
    assert np.array_equal(marie.gpt_cond_latent, given.gpt_cond_latent)
    assert "language fr" in run_cli("voices", "list", env=env).stdout.decode()


def test_a_profile_cut_off_or_missing_says_what_to_do(tmp_path):
    """An export whose copy did not finish was "not a demod-voice profile (not a zip archive); export one with 'voices
    export'", where it was one, and a wrong path "no voice profile at x.npz: file not found", with no way out."""
    rng = np.random.default_rng(6)
    whole = tmp_path / "marie.voice.npz"
    write_profile(whole, "marie", "m" * 64, ["ab" * 32], rng.standard_normal((1, 4, 8)), rng.standard_normal((1, 8, 1)),
                  rng.integers(-999, 999, 2400), [2400], 24000)
    (tmp_path / "cut.npz").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    env = {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache")}
    for given, said in (("cut.npz", "is cut off: a profile whose end is missing (a download or copy that did not finish); "
                                    "copy it again"), ("gone.npz", "gone.npz: file not found; check the path")):
        done = run_cli("voices", "import", str(tmp_path / given), env=env)
        err = done.stderr.decode().strip()
        assert done.returncode == 3 and said in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.npz"))


def test_a_profile_piped_from_voices_export_is_imported(tmp_path):
    """``voices export NAME -`` writes the profile to standard output, but ``voices import -`` was "no voice profile at -:
    file not found" (``ssh host demod-voice voices export me - | demod-voice voices import -``)."""
    rng = np.random.default_rng(7)
    sent = tmp_path / "me.voice.npz"
    write_profile(sent, "me", "m" * 64, ["ab" * 32], rng.standard_normal((1, 4, 8)), rng.standard_normal((1, 8, 1)),
                  rng.integers(-999, 999, 2400), [2400], 24000)
    env = {"DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache")}
    done = run_cli("voices", "import", "-", "--name", "piped", input=sent.read_bytes(), env=env)
    assert done.returncode == 0 and "imported piped" in done.stdout.decode(), done.stderr.decode()
    assert np.array_equal(load_named(tmp_path / "cache", "piped").gpt_cond_latent, read_profile(sent).gpt_cond_latent)
    for given, said in ((b"junk", "standard input is not a demod-voice profile (not a zip archive)"),
                        (sent.read_bytes()[:3000], "standard input is cut off")):
        refused = run_cli("voices", "import", "-", input=given, env=env)
        err = refused.stderr.decode().strip()
        assert refused.returncode == 3 and err.startswith(f"demod-voice: error: {said}") and len(err.splitlines()) == 1, err


def test_a_clone_cannot_take_a_model_name_or_an_alias_from_the_command_line(tmp_path):
    """docs/security.md: a clone named as a model (``tts-1``, ``xtts``) or a ``serve.voices`` alias is refused by
    ``voices add`` and ``voices import`` (exit 3) as the server refuses it (409); the CLI let both through, exit 0."""
    (tmp_path / "config.yaml").write_text("serve:\n  voices:\n    nova: {profile: alice}\n")
    env = {"DEMOD_VOICE_CONFIG": str(tmp_path / "config.yaml"), "DEMOD_VOICE_CACHE_DIR": str(tmp_path / "cache")}
    rng = np.random.default_rng(5)
    write_profile(tmp_path / "p.npz", "alice", "m" * 64, ["ab" * 32], rng.standard_normal((1, 4, 8)),
                  rng.standard_normal((1, 8, 1)), rng.integers(-999, 999, 2400), [2400], 24000)
    (tmp_path / "ref.wav").write_bytes(b"")  # never read: the name is refused before any work
    for name, what in (("tts-1", "a model name"), ("xtts", "a model name"), ("nova", "a voice alias")):
        for args in (("voices", "add", name, str(tmp_path / "ref.wav")), ("voices", "import", str(tmp_path / "p.npz"), "--name", name)):
            done = run_cli(*args, env=env)
            said = done.stderr.decode()
            assert done.returncode == 3 and f"'{name}' is {what}" in said and len(said.strip().splitlines()) == 1, (args, said)
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_an_empty_voices_list_says_how_to_make_one(xtts_model, tmp_path):
    """``voices list`` with no profiles printed nothing at all (exit 0): a person could not tell an empty list from a
    wrong cache, nor where trained Piper voices are. stdout stays empty for scripts; stderr says it, unless -q."""
    home = cache_env(tmp_path, "home", xtts_model)
    listed = run_cli("voices", "list", env=home)
    said = listed.stderr.decode()
    assert listed.returncode == 0 and listed.stdout == b"" and said.count("\n") == 1, said
    assert "demod-voice voices add NAME RECORDING" in said and "demod-voice models list" in said, said
    quiet = run_cli("voices", "list", "-q", env=home)
    assert quiet.returncode == 0 and quiet.stdout == b"" and quiet.stderr == b"", quiet.stderr.decode()


def test_a_saved_voice_speaks_its_own_language_unless_told_another(xtts_model, references, tmp_path):
    """A French voice (a server's enrollment with ``language=fr``, downloaded and imported, or ``voices add -l fr``) spoke
    ``xtts.language``, English, on the command line when ``-l`` was not given: the language kept in its profile was read
    by the server only. Now ``-l``, then the profile's, then ``xtts.language``."""
    home = {**cache_env(tmp_path, "home", xtts_model), "DEMOD_VOICE_XTTS_LANGUAGE": "es"}
    added = run_cli("voices", "add", "marie", str(references["ref.wav"]), "-l", "fr-FR", env=home)
    assert added.returncode == 0 and "speaks fr" in added.stdout.decode(), added.stderr.decode()
    assert "language fr" in run_cli("voices", "list", env=home).stdout.decode()
    for flags, spoken in (((), "fr"), (("-l", "de"), "de")):
        done = run_cli("-vv", "xtts-zero-shot", "--voice", "marie", "Bonjour.", *flags, "-o", str(tmp_path / "o.wav"), env=home)
        said = done.stderr.decode()
        assert done.returncode == 0 and f"character limit of '{spoken}'" in said, said


def test_a_row_speaks_its_language_then_its_voices_then_the_configs(xtts_model, tmp_path):
    """The same order for batch rows (a ``language`` column), and for what a saved voice is listed with (``book --voice``,
    ``voices check``, the server): a profile with no language of its own speaks ``xtts.language``."""
    import dataclasses

    from demod_voice.backends import registry
    from demod_voice.backends.plugin import RowInput, Scope
    from demod_voice.config import Config

    rng = np.random.default_rng(3)
    for name, language in (("marie", "fr"), ("bob", "")):
        write_profile(tmp_path / "profiles" / f"{name}.npz", name, "m" * 64, ["ab" * 32], rng.standard_normal((1, 4, 8)),
                      rng.standard_normal((1, 8, 1)), language=language)
    config = Config()
    config = dataclasses.replace(config, xtts=dataclasses.replace(config.xtts, model_dir=str(xtts_model), language="es"))
    side = registry.request_side("xtts")

    def spoken(values: dict) -> str:
        return side.row_job(RowInput(values, "Hello.", tmp_path / "x.wav", tmp_path, config, tmp_path)).options.language

    assert (spoken({"voice": "marie"}), spoken({"voice": "marie", "language": "de"}), spoken({"voice": "bob"})) == ("fr", "de", "es")
    scope = Scope(config, tmp_path, tmp_path / "profiles")
    assert (side.find(scope, "marie").language, side.find(scope, "bob").language) == ("fr", "es")
