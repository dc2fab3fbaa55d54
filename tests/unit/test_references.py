"""The reference checks on the recordings people really have (phone memos with silence first, quiet ones)."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import voiced_signal

from demod_voice.errors import InputError
from demod_voice.voices import references
from demod_voice.voices.references import check_reference

RATE = 16000


def recording(tmp_path, name, *parts):
    path = tmp_path / name
    soundfile.write(str(path), np.concatenate(parts).astype(np.float32), RATE)
    return str(path)


def silence(seconds):
    return np.zeros(int(seconds * RATE), np.float32)


def test_a_clear_recording_passes_without_a_word(tmp_path):
    _, warnings = check_reference(recording(tmp_path, "clear.wav", silence(0.5), voiced_signal(8.0, RATE)))
    assert warnings == []


def test_silence_before_the_speech_is_said_to_be_cut_off(tmp_path):
    """A phone memo with 20 s of silence before anyone spoke was cloned without a word: XTTS learnt the voice from a
    recording's first seconds (the generated model's first 10 s: two memos with different voices after the silence gave
    identical profiles). The silence is now cut off before the voice is learnt, and that is said."""
    _, warnings = check_reference(recording(tmp_path, "Mémo vocal 1.wav", silence(20.0), voiced_signal(8.0, RATE)))
    assert warnings == ["reference Mémo vocal 1.wav has 20.0 s of silence before the speech: cut off, the voice is learnt from "
                        "the speech alone"]


def test_silence_after_the_speech_is_said_to_be_cut_off_and_the_speech_alone_is_timed(tmp_path):
    """A 10 s memo left recording for 6 s after 4 s of speech was called fine (10 s is in 6-30 s); its silence went into
    the voice."""
    _, warnings = check_reference(recording(tmp_path, "memo.wav", silence(0.3), voiced_signal(4.0, RATE), silence(6.0)))
    assert warnings == ["reference memo.wav has 0.3 s of silence before the speech and 6.0 s after it: cut off, the voice "
                        "is learnt from the speech alone",
                        "reference memo.wav is only 4.0 s of sound in its 10.3 s; the clone will be rough "
                        f"({references.ADVICE})"], warnings


def test_a_long_silence_before_the_speech_is_no_longer_refused(tmp_path):
    """35 s of silence first was refused ("silent for its first 35 s"): XTTS heard only a recording's first 30 s."""
    _, warnings = check_reference(recording(tmp_path, "memo.wav", silence(35.0), voiced_signal(8.0, RATE)))
    assert warnings == ["reference memo.wav has 35.0 s of silence before the speech: cut off, the voice is learnt from the "
                        "speech alone"]


def test_a_click_in_silence_is_refused_as_too_little_sound(tmp_path):
    with pytest.raises(InputError) as refused:
        check_reference(recording(tmp_path, "pocket.wav", silence(3.0), voiced_signal(0.3, RATE), silence(4.0)))
    message = str(refused.value)
    assert message.startswith("reference pocket.wav holds only 0.30 s of sound in its 7.3 s, too little to clone from;"), message


def test_a_very_quiet_recording_is_warned_about(tmp_path):
    _, warnings = check_reference(recording(tmp_path, "quiet.wav", voiced_signal(8.0, RATE, level=0.002)))
    assert len(warnings) == 1 and "very quiet (peak -54 dBFS)" in warnings[0], warnings
    assert "record closer to the microphone" in warnings[0]


def test_the_cut_for_a_too_long_recording_works_on_a_name_with_spaces(tmp_path):
    """The advice was 'ffmpeg -t 30 -i Mémo vocal.wav ref.wav': pasted into a shell, three arguments and a failure."""
    path = recording(tmp_path, "Mémo vocal.wav", voiced_signal(12.0, RATE))
    with pytest.raises(InputError) as refused:
        check_reference(path, 10.0)
    assert "ffmpeg -t 30 -i 'Mémo vocal.wav' ref.wav" in str(refused.value)


@pytest.mark.parametrize("name", ["memo.m4a", "take.wav"])
def test_an_empty_file_is_called_empty(tmp_path, name):
    """A 0-byte memo.m4a (a phone's upload cut off) was 'not audio that can be read (not a format FFmpeg recognises)'."""
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match=r"is an empty file \(0 bytes\).*copy it again"):
        check_reference(str(tmp_path / name))


def test_music_or_noise_under_the_voice_is_warned_about_on_the_command_line_too(tmp_path):
    """A song given as the reference cloned without a word on the command line; the page called the same file noisy."""
    t = np.arange(10 * RATE) / RATE
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) + 0.02 * np.random.default_rng(0).standard_normal(len(t))
    _, warnings = check_reference(recording(tmp_path, "song.wav", chord))
    assert len(warnings) == 1 and "reference song.wav sounds noisy" in warnings[0], warnings


@pytest.mark.parametrize("name", ["alice.voice.npz", "Zoë's voice.npz"])
def test_an_exported_voice_given_as_the_reference_says_how_to_use_it(tmp_path, name):
    """A friend's exported voice given where a recording goes was 'not a format FFmpeg recognises; use wav, flac, ...'."""
    from demod_voice.voices.profiles import write_profile

    write_profile(tmp_path / name, "alice", "m" * 32, ["0" * 64], np.zeros((1, 32, 8), "float32"), np.zeros((1, 8, 1), "float32"))
    with pytest.raises(InputError, match=r"is a saved voice .*not a recording: install it \(demod-voice voices import .*\), "
                                         r"then use --voice alice$") as caught:
        check_reference(str(tmp_path / name))
    assert f"import {shlex.quote(name)})" in str(caught.value)  # one word for a shell, spaces and quotes and all


@pytest.mark.parametrize("name", ["inverted.wav", "inverted.flac"])
def test_a_recording_whose_channels_cancel_out_is_cloned_from_one_channel(tmp_path, name):
    """A stereo recording with one channel's polarity inverted (a miswired microphone or interface) plays clearly, but
    the mean of its channels, which the check and XTTS hear, is silence: it was refused as "silent". Its loudest channel
    is used instead, by the check and by the model (the file handed on is one channel)."""
    from demod_voice.voices.references import readable_path

    voice = voiced_signal(8.0, RATE)
    path = tmp_path / name
    soundfile.write(str(path), np.stack([voice, -0.9 * voice], axis=1), RATE)
    reference, warnings = check_reference(str(path))
    assert warnings == [] and reference.seconds == pytest.approx(8.0)
    heard, rate = soundfile.read(reference.path, dtype="float32", always_2d=True)
    assert heard.shape[1] == 1 and rate == RATE and np.abs(heard).max() > 0.25
    plain = tmp_path / "plain.wav"  # channels that do not cancel are handed on as they are
    soundfile.write(str(plain), np.stack([voice, 0.5 * voice], axis=1), RATE)
    assert readable_path(plain, 300.0, "reference", "") == plain


def test_a_full_disk_while_writing_the_loudest_channel_leaves_nothing_half_written(tmp_path, monkeypatch):
    """The loudest channel of a recording whose channels cancel out is written to a temporary WAV; a full disk there
    (``/tmp`` on a small tmpfs) raised libsndfile's "System error." out of the check, as an internal error, and left the
    half-written WAV in the temporary folder for as long as the process (a server) ran."""
    import errno

    from demod_voice.errors import OutputFull
    from demod_voice.voices import references

    voice = voiced_signal(8.0, RATE)  # three blocks of 65536 frames: the second write meets the full disk
    path = tmp_path / "inverted.wav"
    soundfile.write(str(path), np.stack([voice, -0.9 * voice], axis=1), RATE)
    written = soundfile.SoundFile.write
    calls = []

    def filling(self, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, data)

    monkeypatch.setattr(soundfile.SoundFile, "write", filling)
    before = set(references._scratch().iterdir())
    with pytest.raises(OutputFull) as refused:
        check_reference(str(path))
    assert str(refused.value) == ("no space left in the temporary folder for a copy of inverted.wav: free some space there (or "
                                  "point TMPDIR at a folder with room) and try again")
    assert len(calls) == 2 and set(references._scratch().iterdir()) == before, "nothing half-written is left"


def test_a_full_disk_while_decoding_a_phone_recording_is_not_blamed_on_the_recording(tmp_path, monkeypatch):
    """An .m4a is decoded to a temporary WAV; a full disk there said "reference ref.m4a is not audio that can be read (No
    space left on device); use wav, flac, ogg, mp3 or m4a" (exit 3): the recording was blamed, and nothing said to free
    space. The half-written WAV is removed either way."""
    import errno

    from demod_voice.audio import decode
    from demod_voice.errors import OutputFull

    def filling(source, target, max_seconds):
        Path(target).write_bytes(b"RIFF" + bytes(4000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(decode, "decode_to_wav", filling)
    (tmp_path / "ref.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(2000))  # libsndfile does not read it: FFmpeg's turn
    with pytest.raises(OutputFull, match=r"^no space left in the temporary folder for a copy of ref.m4a: free some space"):
        check_reference(str(tmp_path / "ref.m4a"))
    assert not [p for p in references._scratch().iterdir() if p.name.endswith("-ref.wav")], "nothing half-written is left"


def test_an_m4a_whose_channels_cancel_out_decodes_to_one_of_them(tmp_path):
    """The same recording from a phone (AAC, decoded by FFmpeg, as the server decodes every upload): FFmpeg's mix of the
    channels was silence, and the upload was refused as silent."""
    av = pytest.importorskip("av")
    from demod_voice.audio.decode import decode_to_wav

    voice = (voiced_signal(4.0, 44100) * 32767).astype(np.int16)
    source = tmp_path / "inverted.m4a"
    with av.open(str(source), "w", format="ipod") as box:
        stream = box.add_stream("aac", rate=44100, layout="stereo")
        samples = np.stack([voice, -voice], axis=1).reshape(1, -1)  # packed: L R L R ...
        for start in range(0, samples.shape[1], 2048):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 2048]), format="s16", layout="stereo")
            frame.sample_rate = 44100
            box.mux(stream.encode(frame))
        box.mux(stream.encode(None))
    seconds = decode_to_wav(str(source), str(tmp_path / "out.wav"), 60.0)
    heard, _ = soundfile.read(str(tmp_path / "out.wav"), dtype="float32")
    assert seconds == pytest.approx(4.0, abs=0.1)
    assert np.abs(heard).max() > 0.2, "the mix of the channels, which cancel out"


def test_a_video_with_no_sound_says_so(tmp_path):
    """A screen recording exported without its sound was "not audio that can be read (no audio stream in it); use wav,
    flac, ogg, mp3 or m4a": the advice about formats was beside the point."""
    pytest.importorskip("av")
    from conftest import video_without_sound

    path = video_without_sound(tmp_path / "screen.mp4")
    with pytest.raises(InputError) as refused:
        check_reference(str(path))
    assert str(refused.value) == ("reference screen.mp4 has no sound track (a video saved or exported without its sound): "
                                  "export it again with its sound")


def test_a_phone_call_recording_is_warned_about(tmp_path):
    """A reference recorded from a phone call (8 kHz) was cloned without a word, and the clone sounded as muffled."""
    path = tmp_path / "call.wav"
    soundfile.write(str(path), voiced_signal(8.0, 8000), 8000)
    _, warnings = check_reference(str(path))
    assert len(warnings) == 1 and "call.wav is sampled at 8000 Hz" in warnings[0] and "16 kHz" in warnings[0], warnings
    _, none = check_reference(recording(tmp_path, "memo.wav", voiced_signal(8.0, RATE)))  # 16 kHz, as a phone's recorder: fine
    assert none == []


def test_an_upload_that_is_a_playlist_does_not_play_the_servers_files_back(tmp_path):
    """A security review: the server's upload decoder (a confined child, for the page's references and conversions,
    whose uploads keep the client's file name) read an HLS playlist as FFmpeg does, following its segments to any path
    on the server: an upload ``take.m3u8`` naming a recording of the server's by its path was "3.0 s, clear", that
    recording decoded as the client's reference (to clone, or convert and hear). A playlist is refused in words."""
    av = pytest.importorskip("av")
    from demod_voice.serve.errors import ApiError
    from demod_voice.serve.uploads import decode_reference

    theirs = tmp_path / "server" / "someone-elses.mp3"
    theirs.parent.mkdir()
    with av.open(str(theirs), "w") as box:
        stream = box.add_stream("mp3", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((voiced_signal(3.0, 16000) * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        frame.sample_rate = 16000
        box.mux(stream.encode(frame))
        box.mux(stream.encode(None))
    upload = tmp_path / "upload" / "take.m3u8"
    upload.parent.mkdir()
    upload.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{theirs}\n#EXT-X-ENDLIST\n")
    with pytest.raises(ApiError) as refused:
        decode_reference(upload, tmp_path / "upload" / "decoded.wav", 60.0, "take.m3u8")
    assert refused.value.status == 400 and "playlist" in str(refused.value) and str(tmp_path) not in str(refused.value)
    assert not (tmp_path / "upload" / "decoded.wav").exists()
    upload.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{theirs.with_name('nothing.mp3')}\n#EXT-X-ENDLIST\n")
    with pytest.raises(ApiError) as missing:
        decode_reference(upload, tmp_path / "upload" / "decoded.wav", 60.0, "take.m3u8")
    assert str(missing.value) == str(refused.value)  # the same words whether the file it names exists or not


def test_a_recording_given_twice_is_used_once(tmp_path, caplog):
    """``voices add me take.wav take-copy.wav other.wav``: the same recording twice weighed twice in the voice."""
    take, copy, other = tmp_path / "take.wav", tmp_path / "take-copy.wav", tmp_path / "other.wav"
    soundfile.write(take, voiced_signal(8.0, 22050), 22050)
    copy.write_bytes(take.read_bytes())
    soundfile.write(other, voiced_signal(8.0, 22050, level=0.2), 22050)
    checked = references.check_references([str(take), str(copy), str(other)])
    assert [Path(r.path).name for r in checked] == ["take.wav", "other.wav"]
    assert "reference take-copy.wav is the same recording as take.wav: it is used once" in caplog.text


@pytest.mark.parametrize("noise_dbfs", [-60, -44, -35])
def test_room_noise_before_and_after_the_speech_is_cut_off_as_silence_is(tmp_path, noise_dbfs):
    """A memo with the room's noise (a fan, a street) before and after the speech at -44 dBFS kept all of it: "silence"
    was a fixed 35 dB below the loudest moment, and the noise went into the voice with the speech. Silence is now judged
    against the recording's own noise floor, as the speech is."""
    rng = np.random.default_rng(0)

    def noise(seconds):
        return 10 ** (noise_dbfs / 20) * rng.standard_normal(int(seconds * RATE))

    mono = np.concatenate([noise(2.0), voiced_signal(8.0, RATE) + noise(8.0), noise(3.0)]).astype(np.float32)
    start, end = references.sound_span(mono, RATE, margin=0.0)
    # the signal's last 100 ms fade into a dip between syllables, as quiet as the noise at -35 dBFS
    assert (start / RATE, (len(mono) - end) / RATE) == pytest.approx((2.0, 3.0), abs=0.11)
    _, warnings = check_reference(recording(tmp_path, "memo.wav", mono))
    assert warnings[0].startswith("reference memo.wav has 2.0 s of silence before the speech and 3."), warnings


def test_speech_from_its_first_moment_keeps_its_quiet_start(tmp_path):
    """A recording that starts speaking at once, softly, over a quiet room: nothing of the speech is cut."""
    rng = np.random.default_rng(0)
    speech = voiced_signal(8.0, RATE)
    speech[: RATE // 2] *= 0.1  # a first word 20 dB below the rest
    mono = (speech + 10 ** (-60 / 20) * rng.standard_normal(len(speech))).astype(np.float32)
    assert references.sound_span(mono, RATE, margin=0.0) == (0, len(mono))
