"""Pronunciation end to end: SSML breaks as exact silence in the audio, lexicon entries reaching
Piper's phoneme ids and XTTS's text, and (released voice + Whisper tiny.en) numbers, money and a
lexicon word heard as meant."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import run_cli

from demod_voice.backends import registry
from demod_voice.backends.plugin import RowInput
from demod_voice.config import Config
from demod_voice.speech_text.lexicon import EMPTY, Lexicon, entry
from demod_voice.speech_text.prepare import TextOptions

BREAKS = '<speak>Hello there.<break time="300ms"/>Good morning to you.<break time="1.2s"/>See you.</speak>'


def zero_runs(samples: np.ndarray, rate: int, shortest: float = 0.1) -> list[float]:
    """Lengths in seconds of the runs of exactly-zero samples at least ``shortest`` long (a voice never makes those)."""
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return [round((end - start) / rate, 4) for start, end in zip(edges[::2], edges[1::2], strict=True) if end - start >= shortest * rate]


def test_ssml_breaks_are_exact_silence_in_a_file_and_on_stdout(piper_voice, tmp_path):
    out = tmp_path / "breaks.wav"
    done = run_cli("piper-infer", str(piper_voice), BREAKS, "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    samples, rate = soundfile.read(str(out), dtype="int16")
    assert zero_runs(samples, rate) == pytest.approx([0.3, 1.2], abs=0.02)
    streamed = run_cli("piper-infer", str(piper_voice), BREAKS, "-o", "-")
    assert streamed.returncode == 0, streamed.stderr.decode()
    assert zero_runs(np.frombuffer(streamed.stdout, dtype="<i2"), rate) == pytest.approx([0.3, 1.2], abs=0.02)


def test_ssml_breaks_are_exact_silence_with_xtts(xtts_model, references, tmp_path):
    out = tmp_path / "xtts.wav"
    text = '<speak>Hello.<break time="500ms"/><prosody rate="slow">Good day.</prosody></speak>'
    done = run_cli("xtts-zero-shot", str(references["ref.wav"]), text, "-o", str(out), "--model-dir", str(xtts_model),
                   "--max-new-tokens", "12")
    assert done.returncode == 0, done.stderr.decode()
    samples, rate = soundfile.read(str(out), dtype="int16")
    assert zero_runs(samples, rate) == pytest.approx([0.5], abs=0.02)


def test_unknown_ssml_tag_is_a_one_line_error(piper_voice, tmp_path):
    done = run_cli("piper-infer", str(piper_voice), "<speak>\n<shout>hi</shout></speak>", "-o", str(tmp_path / "x.wav"))
    assert done.returncode == 3
    assert done.stderr.decode().strip().splitlines() == [
        "demod-voice: error: unknown SSML tag <shout> at line 2, column 1; supported: speak, break, prosody, say-as, sub, "
        "phoneme, p, s, lang, emphasis, mark"]
    assert not (tmp_path / "x.wav").exists()


def piper_job(voice: Path, text: str, tmp: Path, lexicon: Lexicon = EMPTY):
    row = RowInput({"model": str(voice)}, text, tmp / "out.wav", tmp, Config(), tmp, reading=TextOptions(lexicon=lexicon))
    return registry.request_side("piper").row_job(row)


def phoneme_ids(voice: Path, text: str) -> list[list[int]]:
    """What piper-tts makes of a job's text: the phoneme ids of each sentence."""
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    piper = PiperVoice(session=None, config=PiperConfig.from_dict(json.loads(Path(f"{voice}.json").read_text())))
    return [piper.phonemes_to_ids(p) for p in piper.phonemize(text)]


def phonemes(voice: Path, text: str) -> list[list[str]]:
    """What piper-tts makes of a job's text: the phonemes of each sentence."""
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    return PiperVoice(session=None, config=PiperConfig.from_dict(json.loads(Path(f"{voice}.json").read_text()))).phonemize(text)


@pytest.mark.parametrize("text", ["You're leaving... now?", "the minutes… and then", "Wait—what?", "I have to--there's none."])
def test_an_ellipsis_or_a_dash_between_two_words_is_a_pause(piper_voice, tmp_path, text):
    """A novel's dialogue: espeak-ng made no pause of an ellipsis or an unspaced dash, and ran "leaving... now" into one
    word ("leavingnow")."""
    said = phonemes(piper_voice, piper_job(piper_voice, text, tmp_path).text)
    first = said[0]
    assert len(said) > 1 or any(mark in first[:-1] for mark in ",;."), said  # a pause inside, not only at the end


def test_a_lexicon_entry_replaces_the_words_phoneme_ids(piper_voice, tmp_path):
    from piper.phoneme_ids import phonemes_to_ids

    config = json.loads(Path(f"{piper_voice}.json").read_text())
    lexicon = Lexicon((entry("Nguyen", "ŋwˈiən", "new yen"),))
    plain = phoneme_ids(piper_voice, piper_job(piper_voice, "Hello Nguyen.", tmp_path).text)
    job = piper_job(piper_voice, "Hello Nguyen.", tmp_path, lexicon)
    given = phoneme_ids(piper_voice, job.text)
    assert job.text == "Hello [[ŋwˈiən]]."
    word = phonemes_to_ids(list("ŋwˈiən"), config["phoneme_id_map"])[1:-1]  # without the sentence's BOS/EOS
    as_list = given[0]
    assert any(as_list[i : i + len(word)] == word for i in range(len(as_list))), "the entry's ids are not in the sentence"
    assert given != plain


def test_a_lexicon_entry_changes_the_text_xtts_reads(xtts_model, references, tmp_path):
    lexicon = Lexicon((entry("Nguyen", "ŋwˈiən", "new yen"),))
    config = Config()
    row = RowInput({"reference": str(references["ref.wav"])}, "Hello Nguyen, 5 times.", tmp_path / "x.wav", tmp_path,
                   config, tmp_path, reading=TextOptions(lexicon=lexicon))
    row = dataclasses.replace(row, config=dataclasses.replace(config, xtts=dataclasses.replace(config.xtts, model_dir=str(xtts_model))))
    assert registry.request_side("xtts").row_job(row).text == "Hello new yen, five times."


# --- heard by Whisper tiny.en, spoken by the released voice ---------------------------------------


def heard(recogniser, voice: Path, text: str, out: Path, *extra: str) -> str:
    """What Whisper hears of ``text`` spoken at zero noise: the reading under test, not the voice's dice. At piper's
    default noise, "Henry the Eighth" was heard as "Henry the ape" or "the a-plus" in 1 of 12 runs (a CI failure)."""
    done = run_cli("piper-infer", str(voice), text, "-o", str(out), "--noise-scale", "0", "--noise-w-scale", "0", *extra)
    assert done.returncode == 0, done.stderr.decode()
    return recogniser.transcribe(out)


def test_numbers_and_money_are_heard_as_words(recogniser, joe_voice, tmp_path):
    from intelligibility import word_error_rate
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    scorer = EnglishTextNormalizer({})
    text = "The ticket cost $3.50. We met on 12/05/2026 at 9:05 pm."
    spoken = "The ticket cost three dollars and fifty cents. We met on December fifth, twenty twenty-six at nine oh five PM."
    transcript = scorer(heard(recogniser, joe_voice, text, tmp_path / "numbers.wav"))
    assert "$3.50" in transcript and "december 5" in transcript and "2026" in transcript, transcript
    assert word_error_rate(scorer(spoken), transcript) <= 0.25
    # the control: left to espeak, the date is read digit by digit and no month is heard
    plain = scorer(heard(recogniser, joe_voice, text, tmp_path / "plain.wav", "--no-normalize"))
    assert "december" not in plain, plain


def test_roman_numerals_chapter_numbers_and_fractions_are_heard_as_a_reader_says_them(recogniser, joe_voice, tmp_path):
    """Left to espeak, "Henry VIII" is heard as "Henry Roman 8" and "1/2" as "1-slash 2"; "Chapter 01" was "zero one"."""
    text = "Chapter 01. King Henry VIII was king. Add 1/2 cup."
    said = heard(recogniser, joe_voice, text, tmp_path / "narrated.wav").lower()
    assert "roman" not in said and "slash" not in said and "zero" not in said, said
    assert "chapter 1" in said or "chapter one" in said, said
    assert any(f"henry {eighth}" in said for eighth in ("viii", "the 8th", "the eighth")), said
    plain = heard(recogniser, joe_voice, text, tmp_path / "plain.wav", "--no-normalize").lower()
    assert "roman" in plain, plain  # the control: espeak's own reading


def test_weekdays_units_timestamps_and_ratios_are_heard_as_a_reader_says_them(recogniser, joe_voice, tmp_path):
    """Left to espeak, "Mon. to Fri." was heard "Mon to Fry", "48 kHz" "48KHC", "16:9" "16.09" and an ISO timestamp
    "2026-12-07930Z"."""
    text = "Open Mon. to Fri. The track is 48 kHz, and the screen is 16:9. The build finished at 2026-12-07T09:30Z."
    said = heard(recogniser, joe_voice, text, tmp_path / "technical.wav").lower()
    for word in ("monday", "friday", "kilohertz", "december", "utc"):
        assert word in said, said
    plain = heard(recogniser, joe_voice, text, tmp_path / "plain.wav", "--no-normalize").lower()
    assert "friday" not in plain and "kilohertz" not in plain and "december" not in plain, plain  # the control


def test_an_assistants_answer_is_heard_without_emoji_names_and_with_seconds(recogniser, joe_voice, tmp_path):
    """An assistant's answer: its emoji were read by name ("smiling face with smiling eyes", "white heavy check mark"), "a
    30s timeout" was "a thirties timeout" and "1m 30s" "one meter thirties"."""
    text = "Sure! 😊 I set a 30s timeout. Done ✅ It took 1m 30s."
    said = heard(recogniser, joe_voice, text, tmp_path / "answer.wav").lower()
    assert "smiling" not in said and "check" not in said and "30's" not in said and "meter" not in said, said
    assert "30 second" in said or "thirty second" in said, said
    assert "minute" in said, said
    plain = heard(recogniser, joe_voice, text, tmp_path / "plain.wav", "--no-normalize").lower()
    assert "smiling" in plain, plain  # the control: espeak names the emoji


def test_a_chat_answers_time_zones_and_heart_are_heard_as_a_reader_says_them(recogniser, joe_voice, tmp_path):
    """"3pm ET / 12pm PT" was heard "3 pgm, the D-slash 12 pgm, pd", "PM EST" "PMESD", and "I ❤️ NY" "I am white" (the
    heart dropped as an emoji)."""
    text = "The call is at 3pm ET / 12pm PT. It ends at 5pm EST. I ❤️ NY."
    said = heard(recogniser, joe_voice, text, tmp_path / "chat.wav").lower()
    for word in ("eastern", "pacific", "standard time", "love"):
        assert word in said, said
    assert "slash" not in said, said
    plain = heard(recogniser, joe_voice, text, tmp_path / "plain.wav", "--no-normalize").lower()
    assert "eastern" not in plain and "pacific" not in plain, plain  # the control


def test_a_streamed_number_after_no_is_heard_as_a_number(recogniser, joe_voice):
    """Text piped in and streamed out (as an LLM's reply, or Wyoming's chunks) ended a sentence at "No." before "10":
    heard "He lives at no, 10 Downing Street"."""
    done = run_cli("piper-infer", str(joe_voice), "-", "-o", "-", "--noise-scale", "0", "--noise-w-scale", "0",
                   input="He lives at No. 10 Downing Street.\n")
    assert done.returncode == 0, done.stderr.decode()
    rate = json.loads(Path(f"{joe_voice}.json").read_text())["audio"]["sample_rate"]
    said = recogniser.transcribe_samples(np.frombuffer(done.stdout, dtype="<i2"), rate).lower()
    assert "number 10" in said or "number ten" in said, said


def test_a_lexicon_entry_is_heard(recogniser, joe_voice, tmp_path):
    lexicon = tmp_path / "fruit.tsv"
    lexicon.write_text("ZQX\ttʃˈɑːklət\tchocolate\n", encoding="utf-8")  # espeak-ng's own IPA for "chocolate"
    text = "Please give me some ZQX."
    assert "chocolate" not in heard(recogniser, joe_voice, text, tmp_path / "plain.wav").lower()
    assert "chocolate" in heard(recogniser, joe_voice, text, tmp_path / "lexicon.wav", "--lexicon", str(lexicon)).lower()


def test_batch_rows_read_ssml_and_lexicons(piper_voice, tmp_path):
    import csv

    lexicon = tmp_path / "names.yaml"
    lexicon.write_text("entries:\n  - {word: zork, say: this is a much longer sentence with many words}\n", encoding="utf-8")
    table = tmp_path / "rows.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "output"])
        writer.writerow(['<speak>Hello there.<break time="300ms"/>Good morning.</speak>', "ssml.wav"])
        writer.writerow(["zork", "zork.wav"])
        writer.writerow(["ab", "ab.wav"])
    done = run_cli("batch", str(table), "--output-dir", str(tmp_path / "out"), "--model", str(piper_voice), "--lexicon", str(lexicon))
    assert done.returncode == 0, done.stderr.decode()
    samples, rate = soundfile.read(str(tmp_path / "out" / "ssml.wav"), dtype="int16")
    assert zero_runs(samples, rate) == pytest.approx([0.3], abs=0.02)
    assert soundfile.info(str(tmp_path / "out" / "zork.wav")).frames > 3 * soundfile.info(str(tmp_path / "out" / "ab.wav")).frames


def test_lexicon_commands(piper_voice, tmp_path):
    assert run_cli("lexicon", "add", "Nguyen", "--phonemes", "ŋwˈiən", "--say", "new yen").returncode == 0
    assert run_cli("lexicon", "add", "Nguyen", "--say", "win", "--voice", piper_voice.name).returncode == 0
    listed = run_cli("lexicon", "list").stdout.decode()
    assert "default" in listed and f"voice.{piper_voice.name[: -len('.onnx')]}" in listed
    assert "Nguyen\tŋwˈiən\tnew yen" in run_cli("lexicon", "list", "--lexicon", "default").stdout.decode()
    out = tmp_path / "test.wav"
    done = run_cli("lexicon", "test", "Nguyen", "-m", str(piper_voice), "-o", str(out))
    assert done.returncode == 0, done.stderr.decode()
    assert "Nguyen [[ŋwˈiən]]" in done.stdout.decode()  # as written, then the lexicon's phonemes
    samples, rate = soundfile.read(str(out), dtype="int16")
    assert zero_runs(samples, rate) == pytest.approx([0.7], abs=0.02)
    # a word the lexicon does not hold is said so (both readings are the same); -m defaults to piper.default_voice
    unknown = run_cli("lexicon", "test", "Qwerpo", "-o", str(tmp_path / "unknown.wav"))
    assert unknown.returncode == 0 and (tmp_path / "unknown.wav").is_file(), unknown.stderr.decode()
    assert "'Qwerpo' is not in lexicon default" in unknown.stderr.decode() and "lexicon add Qwerpo" in unknown.stderr.decode()
    # the voice's own lexicon ("win") is read over 'default' when speaking with that voice
    quiet = ("--noise-scale", "0", "--noise-w-scale", "0")
    assert run_cli("piper-infer", str(piper_voice), "Nguyen", "-o", str(tmp_path / "v.wav"), *quiet).returncode == 0
    assert run_cli("piper-infer", str(piper_voice), "win", "-o", str(tmp_path / "w.wav"), *quiet).returncode == 0
    assert np.array_equal(soundfile.read(str(tmp_path / "v.wav"))[0], soundfile.read(str(tmp_path / "w.wav"))[0])
    # a voice named with a typo is warned about (its lexicon waits for it); one that is no name is refused
    typo = run_cli("lexicon", "add", "Nguyen", "--say", "win", "--voice", "en_US-joe-meduim")
    assert typo.returncode == 0 and "no voice 'en_US-joe-meduim' is installed here" in typo.stderr.decode(), typo.stderr
    for wrong in ("../evil", "a b"):
        refused = run_cli("lexicon", "add", "Nguyen", "--say", "win", "--voice", wrong)
        assert refused.returncode == 3 and len(refused.stderr.decode().strip().splitlines()) == 1, refused.stderr
    assert "voice.evil" not in run_cli("lexicon", "list").stdout.decode()
    bad = run_cli("lexicon", "remove", "Nobody")
    assert bad.returncode == 3 and bad.stderr.decode().strip() == (
        "demod-voice: error: 'Nobody' is not in lexicon default; see 'demod-voice lexicon list --lexicon default'")
    assert run_cli("lexicon", "remove", "nguyen").returncode == 0
    assert "Nguyen" not in run_cli("lexicon", "list", "--lexicon", "default").stdout.decode()


def test_lexicon_add_to_a_name_that_reads_as_a_file_is_refused(tmp_path):
    """``lexicon add Zorb --lexicon names.tsv`` beside a names.tsv stored 'names.tsv.tsv' in the cache and said "added";
    every speaking command's ``--lexicon names.tsv`` reads the file (or, without one, says it is not found), so the entry
    was never read."""
    (tmp_path / "names.tsv").write_text("Nguyen\tŋwˈiən\n", encoding="utf-8")
    for name in ("names.tsv", "names.yaml"):
        done = run_cli("lexicon", "add", "Zorb", "--say", "zork", "--lexicon", name, cwd=tmp_path)
        assert done.returncode == 3 and done.stderr.decode().strip().splitlines() == [
            f"demod-voice: error: '{name}' names a lexicon file, not a stored lexicon: give the name without "
            f"{name[name.index('.'):]} ('names'), or edit the file itself"], done.stderr
    assert "names" not in run_cli("lexicon", "list").stdout.decode()
    assert (tmp_path / "names.tsv").read_text(encoding="utf-8") == "Nguyen\tŋwˈiən\n"


def test_ssml_on_stdin_from_a_file_with_a_byte_order_mark_is_read_as_ssml(piper_voice, tmp_path):
    """``piper-infer VOICE - < notes.txt`` with a file saved by Notepad spoke the tags aloud (no break, 3x as long)."""
    out = tmp_path / "bom.wav"
    done = run_cli("piper-infer", str(piper_voice), "-", "-o", str(out), input="\ufeff".encode() + BREAKS.encode())
    assert done.returncode == 0, done.stderr.decode()
    samples, rate = soundfile.read(str(out), dtype="int16")
    assert zero_runs(samples, rate) == pytest.approx([0.3, 1.2], abs=0.02)
