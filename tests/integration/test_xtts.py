"""``xtts-zero-shot`` end to end: real coqui-tts XTTS (small random checkpoint), real worker, real files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import run_cli, voiced_signal
from processes import piped_cli, read_within
from xtts_rules import StopAfterMultipleOf, load_louder

FAST = ("--max-new-tokens", "24")


def clone(model, refs, text, out, *extra, env=None):
    return run_cli("xtts-zero-shot", *map(str, refs), text, "-o", str(out), "--model-dir", str(model), *FAST, *extra, env=env)


def test_clones_to_a_24khz_file_and_reuses_the_voice_cache(xtts_model, references, tmp_path):
    first = clone(xtts_model, [references["ref.wav"]], "Hello there.", tmp_path / "one.wav", "-v")
    assert first.returncode == 0, first.stderr.decode()
    info = soundfile.info(str(tmp_path / "one.wav"))
    assert info.samplerate == 24000 and info.channels == 1 and info.frames > 0
    assert "computed the voice latents" in first.stderr.decode()
    second = clone(xtts_model, [references["ref.wav"]], "Hello again.", tmp_path / "two.wav", "-v")
    assert second.returncode == 0, second.stderr.decode()
    assert "voice cache hit for ref.wav: conditioning skipped" in second.stderr.decode()
    assert "computed the voice latents" not in second.stderr.decode()


def test_several_references_in_any_format_rate_and_channels(xtts_model, references, tmp_path):
    refs = [references[name] for name in ("ref.flac", "ref.ogg", "ref.mp3") if name in references]
    done = clone(xtts_model, refs, "Several references.", tmp_path / "multi.flac", "-v")
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(tmp_path / "multi.flac")).samplerate == 24000
    assert ", ".join(r.name for r in refs) in done.stderr.decode()


def test_long_text_is_split_into_sentences_not_truncated(xtts_model, references, tmp_path):
    sentence = "This clause is here to make the sentence long, and it goes on for a while with many words in it"
    text = f"{sentence}, {sentence}, {sentence}. Short one. {sentence}!"  # first sentence > 250 characters
    out = tmp_path / "long.wav"
    done = clone(xtts_model, [references["ref.wav"]], text, out, "-vv", "--sentence-silence", "1.0")
    assert done.returncode == 0, done.stderr.decode()
    err = done.stderr.decode()
    assert "4 sentence(s) within the 250-character limit of 'en'" in err  # 295 chars -> 240 + 49
    assert "exceeds the character limit" not in err  # coqui's truncation warning never fires
    assert "generated 4 sentence(s) together" in err  # one batch through the GPT (xtts.batch_sentences: 16)
    assert soundfile.info(str(out)).duration >= 3.0  # three 1 s pauses between four pieces


def test_streaming_to_stdout_yields_pcm(xtts_model, references):
    done = run_cli("-v", "xtts-zero-shot", str(references["ref.wav"]), "Streaming test.", "-o", "-",
                   "--model-dir", str(xtts_model), *FAST)
    assert done.returncode == 0, done.stderr.decode()
    assert "24000 Hz, 1 channel" in done.stderr.decode()
    pcm = np.frombuffer(done.stdout, dtype="<i2")
    assert len(done.stdout) % 2 == 0 and len(pcm) > 1000 and np.abs(pcm).max() > 0


def test_piped_text_is_spoken_sentence_by_sentence_as_it_comes(xtts_model, references, tmp_path):
    # An LLM's reply piped in (`... | xtts-zero-shot REF - -o - | aplay`): stdin was read to its end first, so nothing
    # was said until its writer closed it, where piper-infer speaks each sentence as it comes.
    greedy = ("--top-k", "1", "--sentence-silence", "0.25")  # top-k 1: the same codes alone and piped
    sentences = ["Hello there.", "Second one."]
    alone = [clone(xtts_model, [references["ref.wav"]], text, "-", *greedy).stdout for text in sentences]
    assert all(alone)
    proc = piped_cli(tmp_path, "xtts-zero-shot", str(references["ref.wav"]), "-", "-o", "-", "--model-dir", str(xtts_model),
                     *FAST, *greedy)
    try:
        proc.stdin.write(f"{sentences[0]} Sec".encode())  # the second sentence still being written
        proc.stdin.flush()
        assert read_within(proc.stdout, len(alone[0]), 120) == alone[0]  # stdin still open
        proc.stdin.write(b"ond one.\n")
        proc.stdin.close()
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
    assert rest == bytes(2 * round(0.25 * 24000)) + alone[1]


def test_short_reference_warns_with_advice(xtts_model, tmp_path):
    ref = tmp_path / "short.wav"
    soundfile.write(str(ref), voiced_signal(2.5, 16000), 16000)
    done = clone(xtts_model, [ref], "Hi.", tmp_path / "o.wav")
    assert done.returncode == 0, done.stderr.decode()
    assert "only 2.5 s" in done.stderr.decode() and "6-30 s" in done.stderr.decode()


# --- bad input: one line, non-zero exit, nothing written ---------------------------------------


def assert_clean_failure(done, words, folder, code=3):
    err = done.stderr.decode().strip()
    assert done.returncode == code, err
    assert words in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not [p for p in folder.iterdir() if p.name.startswith(("o.", ".o."))]


def bad_refs(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype="float32"), 22050)
    soundfile.write(str(tmp_path / "blip.wav"), voiced_signal(0.4, 22050), 22050)
    soundfile.write(str(tmp_path / "silent.wav"), np.zeros(22050 * 5, dtype="float32"), 22050)
    (tmp_path / "takes").mkdir()  # a folder of recordings, given as one (it said "not found")


@pytest.mark.parametrize(
    "ref, words",
    [("missing.wav", "not found; check the path"), ("notes.wav", "not audio that can be read"), ("empty.wav", "zero length"),
     ("blip.wav", "too short"), ("silent.wav", "is silent"), ("takes", "is a folder; give the recordings in it")],
)
def test_bad_references(xtts_model, tmp_path, ref, words):
    bad_refs(tmp_path)
    done = clone(xtts_model, [tmp_path / ref], "Hello.", tmp_path / "o.wav")
    assert_clean_failure(done, words, tmp_path)


def test_unsupported_language_lists_the_17(xtts_model, references, tmp_path):
    done = clone(xtts_model, [references["ref.wav"]], "Hallo.", tmp_path / "o.wav", "--language", "xx")
    assert_clean_failure(done, "use one of: en, es, fr, de, it, pt, pl, tr, ru, nl, cs, ar, zh-cn, ja, hu, ko, hi", tmp_path)


@pytest.mark.parametrize(("language", "meant"), [("english", "en"), ("Français", "fr"), ("deu", "de")])
def test_a_language_given_by_its_name_says_the_code_meant(xtts_model, references, tmp_path, language, meant):
    """``-l english`` (or ``deu``) was refused with the list of 17 codes and no word about which one it is."""
    done = clone(xtts_model, [references["ref.wav"]], "Hallo.", tmp_path / "o.wav", "--language", language)
    assert_clean_failure(done, f"did you mean '{meant}'? use one of: en, es", tmp_path)


def test_a_language_with_a_region_is_spoken_as_the_language(xtts_model, references, tmp_path):
    """``-l en-US`` was refused on the command line while the server took ``de_DE`` as ``de``."""
    from demod_voice.backends.xtts.request import normalise_language

    assert [normalise_language(code) for code in ("en-US", "pt_BR", "EN", "zh", "zh-CN", "fr-ca")] == ["en", "pt", "en", "zh-cn", "zh-cn", "fr"]
    done = clone(xtts_model, [references["ref.wav"]], "Hello.", tmp_path / "us.wav", "--language", "en-US")
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(tmp_path / "us.wav")).frames > 0


@pytest.mark.parametrize(("language", "module", "name", "text"), [("ja", "cutlet", "Japanese", "こんにちは。"),
                                                               ("zh-cn", "pypinyin", "Chinese", "你好。")])
def test_a_language_whose_packages_are_missing_says_what_to_install(xtts_model, references, tmp_path, language, module, name, text):
    """Two of the 17 languages need packages of coqui-tts's extras: without them the first sentence failed with
    "synthesis failed: ModuleNotFoundError: No module named 'cutlet'" (exit 1; a 500 from the server)."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here: {name} is spoken")
    done = clone(xtts_model, [references["ref.wav"]], text, tmp_path / "o.wav", "--language", language)
    assert_clean_failure(done, f"to speak {name}", tmp_path, code=4)
    assert f"pip install 'coqui-tts[{language[:2]}]'" in done.stderr.decode()


def test_a_forgotten_text_is_refused_and_a_reference_may_hold_a_bar(xtts_model, references, tmp_path):
    """``xtts-zero-shot a.wav b.mp3 -o out.wav`` cloned from a.wav and spoke "b.mp3" (exit 0); with one reference and no
    text it said to give a reference. A file named ``a|b.wav`` was read as two references, "a" and "b.wav"."""
    import shutil

    second = tmp_path / "b.wav"
    shutil.copy(references["ref.wav"], second)
    done = run_cli("xtts-zero-shot", str(references["ref.wav"]), str(second), "-o", str(tmp_path / "o.wav"), "--model-dir", str(xtts_model))
    assert_clean_failure(done, "looks like a reference recording, not text", tmp_path, code=2)
    done = run_cli("xtts-zero-shot", str(second), "-o", str(tmp_path / "o.wav"), "--model-dir", str(xtts_model))
    assert_clean_failure(done, "looks like a reference recording, not text", tmp_path, code=2)
    barred = tmp_path / "take|1.wav"
    shutil.copy(references["ref.wav"], barred)
    done = clone(xtts_model, [barred], "Hello there.", tmp_path / "bar.wav")
    assert done.returncode == 0, done.stderr.decode()
    assert soundfile.info(str(tmp_path / "bar.wav")).frames > 0


def test_a_file_or_folder_given_as_the_text_is_refused(xtts_model, references, tmp_path):
    """``xtts-zero-shot me.wav script.txt`` cloned the voice and spoke "script.txt" (exit 0); a folder the same way."""
    script = tmp_path / "script.txt"
    script.write_text("Hello from my script.")
    done = clone(xtts_model, [references["ref.wav"]], str(script), tmp_path / "o.wav")
    assert_clean_failure(done, f"is a file, not text: to speak what it holds, read it from standard input (xtts-zero-shot "
                               f"REFERENCE... - < '{script}')", tmp_path, code=2)
    done = clone(xtts_model, [references["ref.wav"]], f"{tmp_path}/", tmp_path / "o.wav")
    assert_clean_failure(done, "is a folder, not text", tmp_path, code=2)


def test_unaccepted_licence_without_local_model_says_how_to_accept(references, tmp_path):
    done = run_cli("xtts-zero-shot", str(references["ref.wav"]), "Hello.", "-o", str(tmp_path / "o.wav"),
                   env={"COQUI_TOS_AGREED": ""})
    assert_clean_failure(done, "--accept-license", tmp_path)
    assert "COQUI_TOS_AGREED=1" in done.stderr.decode()


def test_empty_text(xtts_model, references, tmp_path):
    done = clone(xtts_model, [references["ref.wav"]], " ", tmp_path / "o.wav")
    assert_clean_failure(done, "text is empty", tmp_path)


def test_incomplete_model_folder(references, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    done = run_cli("xtts-zero-shot", str(references["ref.wav"]), "Hello.", "-o", str(tmp_path / "o.wav"),
                   "--model-dir", str(tmp_path / "model"))
    assert_clean_failure(done, "lacks model.pth, vocab.json", tmp_path)


def test_fast_load_gives_the_same_model_as_coqui_load(xtts_model, tmp_path, monkeypatch):
    # The backend builds XTTS without drawing random initial weights (they are all overwritten by the
    # checkpoint); every parameter and buffer, shared ones included, must equal coqui's own load.
    # (Before the GPT's products are laid out for oneDNN: the next test holds those to the dense ones.)
    torch = pytest.importorskip("torch")
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.engine.jobs import LoadSpec

    backend = XttsBackend()
    monkeypatch.setattr(XttsBackend, "_pack", lambda self: 0)
    backend.load(LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path)))
    config = XttsConfig()
    config.load_json(str(xtts_model / "config.json"))
    plain = Xtts(config)
    plain.load_checkpoint(config, checkpoint_dir=str(xtts_model), eval=True)

    def tensors(model):
        named = dict(model.named_parameters(remove_duplicate=False))
        named.update(model.named_buffers(remove_duplicate=False))
        return named

    fast, reference = tensors(backend.model), tensors(plain)
    assert fast.keys() == reference.keys() and len(fast) > 100
    assert [name for name in reference if not torch.equal(fast[name], reference[name])] == []


def test_on_a_cpu_the_gpt_products_go_through_onednn_with_the_checkpoint_weights_and_give_the_dense_outputs(xtts_model, tmp_path, monkeypatch):
    # A CPU worker lays each of the GPT's Conv1D weights out for oneDNN once at load (steps of several rows
    # no longer repack them per call): the same weights, the same hidden states to float rounding.
    torch = pytest.importorskip("torch")
    from transformers.pytorch_utils import Conv1D

    from demod_voice.backends.xtts import packed
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.engine.jobs import LoadSpec

    if not packed.usable():
        pytest.skip("this torch has no oneDNN")
    spec = LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path))
    fast = XttsBackend()
    info = fast.load(spec)
    with monkeypatch.context() as patch:
        patch.setattr(XttsBackend, "_pack", lambda self: 0)
        dense = XttsBackend()
        dense.load(spec)
    layers = len(dense.model.gpt.gpt.h)
    assert f"{4 * layers} GPT products through oneDNN" in info.detail
    assert not any(isinstance(m, Conv1D) for m in fast.model.gpt.modules())
    for mine, theirs in zip(fast.model.gpt.gpt.h, dense.model.gpt.gpt.h, strict=True):
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            a, b = mine.get_submodule(name), theirs.get_submodule(name)
            assert isinstance(a, packed.PackedConv1D)
            assert torch.equal(a.dense_weight(), b.weight) and torch.equal(a.bias, b.bias)
    width = dense.model.gpt.gpt.config.n_embd
    for rows in (1, 3, 5):  # one request, and rows of requests sharing a step (fewer than the layout's 4 are padded)
        embeds = torch.randn(rows, 7, width, generator=torch.Generator().manual_seed(rows))
        with torch.inference_mode():
            mine = fast.model.gpt.gpt(inputs_embeds=embeds).last_hidden_state
            theirs = dense.model.gpt.gpt(inputs_embeds=embeds).last_hidden_state
        assert mine.shape == theirs.shape == (rows, 7, width)
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def two_voices(xtts_model, references, tmp_path):
    """The test model loaded louder (:func:`xtts_rules.load_louder`) and two voices' (latent, speaker) from it."""
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.engine.jobs import LoadSpec

    backend = load_louder(XttsBackend(), LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path)))
    model = backend.model
    return (model, model.get_conditioning_latents(audio_path=[str(references["ref.wav"])]),
            model.get_conditioning_latents(audio_path=[str(references["ref.flac"])]))


@pytest.mark.parametrize("voices", ["one voice", "a voice per sentence"])
def test_sentences_generated_together_equal_coqui_one_at_a_time(xtts_model, references, tmp_path, voices):
    # The batched path left-pads prompts of different lengths and lets rows stop at different steps;
    # with greedy decoding every sentence must come out as coqui's own inference makes it alone,
    # also when the rows are sentences of different requests in different voices. coqui runs the GPT once more over
    # prompt and codes for the latents the HiFi-GAN decodes; ours are the GPT's outputs as it generated: no forward
    # runs more rows than a voice's latent or a prompt's text and start token.
    torch = pytest.importorskip("torch")
    from transformers import LogitsProcessorList

    from demod_voice.backends.xtts import batching as xtts_batch

    model, first, second = two_voices(xtts_model, references, tmp_path)
    assert not torch.equal(first[1], second[1])
    rows = [first, first, first] if voices == "one voice" else [first, second, first]
    texts = ["A rather longer sentence comes first, with a clause.", "Short.", "Then one in between."]
    sampling = {"do_sample": False, "repetition_penalty": 10.0, "max_new_tokens": 40,
                "logits_processor": LogitsProcessorList([StopAfterMultipleOf(13, model.gpt)])}
    forwards: list[int] = []
    hook = model.gpt.gpt.register_forward_pre_hook(lambda module, args, kwargs: forwards.append(kwargs["inputs_embeds"].shape[1]),
                                                   with_kwargs=True)
    with torch.inference_mode():
        if voices == "one voice":
            together = xtts_batch.generate(model, texts, "en", first[0], first[1], speed=1.2, **sampling)
        else:
            together = xtts_batch.generate(model, texts, ["en", "en", "en"], [r[0] for r in rows], [r[1] for r in rows],
                                           speed=1.2, **sampling)
        hook.remove()
        widest = max(len(model.tokenizer.encode(t.lower(), lang="en")) + 3 for t in texts)  # text, its marks, the start token
        assert max(forwards) == max(first[0].shape[1], widest) and forwards.count(1) == len(forwards) - 1 - len({id(r) for r in rows})
        alone = [model.inference(text, "en", latent, spk, speed=1.2, **sampling)["wav"]
                 for text, (latent, spk) in zip(texts, rows, strict=True)]
    assert [len(w) for w in together] == [len(w) for w in alone]
    assert len({len(w) for w in alone}) == len(texts)  # each row stopped at its own step
    for mine, theirs in zip(together, alone, strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_an_out_of_memory_error_in_a_batch_reruns_the_batch_after_the_fallback(xtts_model, references, tmp_path, monkeypatch, caplog):
    # No GPU here, so no device really moves: this proves the control flow only (the first batch
    # raises the error CUDA would; the backend falls back, says so, and reruns the same batch).
    torch = pytest.importorskip("torch")
    from demod_voice.backends.xtts import batching as xtts_batch
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.backends.xtts.request import XttsOptions
    from demod_voice.config import XttsSettings
    from demod_voice.engine.jobs import LoadSpec, SynthesisJob
    from demod_voice.voices.references import check_references

    spec = LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path))
    backend = XttsBackend()
    backend.load(spec)
    real, calls = xtts_batch.generate, []

    def fails_once(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(xtts_batch, "generate", fails_once)
    options = XttsOptions(check_references([str(references["ref.wav"])]), "en",
                          XttsSettings(max_new_tokens=8, sentence_silence=0.0))
    job = SynthesisJob(spec=spec, text="One sentence. And another one.", output=str(tmp_path / "x.wav"), options=options)
    chunks = list(backend.synthesize(job))
    assert calls == [2, 2]  # the same two sentences again, after the fall-back
    assert "the GPU ran out of memory; moving XTTS to the CPU" in caplog.text
    assert len(chunks) == 2 and all(len(chunk.samples) > 0 for chunk in chunks)


@pytest.mark.parametrize("path", ["alone", "joinable"])
@pytest.mark.parametrize("when", ["before its first chunk", "after its first chunk"])
def test_an_out_of_memory_error_in_a_streamed_sentence(xtts_model, references, tmp_path, monkeypatch, caplog, when, path):
    # The streamed path (-o -): before any audio left, the sentence reruns after the fall-back;
    # after audio left, rerunning would repeat it, so the job fails with a clear error instead. A stream that others
    # may join (the server's, SynthesisJob.joins) is made in rounds (XttsBackend.interleaved) and does the same.
    torch = pytest.importorskip("torch")
    from demod_voice.backends.xtts import batching as xtts_batch
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.backends.xtts.request import XttsOptions
    from demod_voice.config import XttsSettings
    from demod_voice.engine.jobs import LoadSpec, SynthesisJob
    from demod_voice.errors import RuntimeFailure
    from demod_voice.voices.references import check_references

    spec = LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path))
    backend = XttsBackend()
    backend.load(spec)
    real, calls = xtts_batch.generate_stream, []

    def fails_once(*args, **kwargs):
        calls.append(args[1])
        stream = real(*args, **kwargs)
        if len(calls) == 1 and when == "after its first chunk":
            yield next(stream)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield from stream

    monkeypatch.setattr(xtts_batch, "generate_stream", fails_once)
    options = XttsOptions(check_references([str(references["ref.wav"])]), "en",
                          XttsSettings(max_new_tokens=8, sentence_silence=0.0), stream=True)
    job = SynthesisJob(spec=spec, text="One sentence only.", output="-", options=options)

    def made(job):
        if path == "alone":
            return list(backend.synthesize(job))
        return [chunk for _, chunk in backend.interleaved([job], lambda: []) if chunk is not None]

    if when == "before its first chunk":
        chunks = made(job)
        assert len(calls) == 2 and chunks and all(len(c.samples) for c in chunks)
        assert "the GPU ran out of memory; moving XTTS to the CPU" in caplog.text
    else:
        with pytest.raises(RuntimeFailure, match="in the middle of a streamed sentence"):
            made(job)


def test_a_voices_prompt_rows_go_through_the_gpt_once_and_each_sentence_starts_from_them(xtts_model, references, tmp_path, monkeypatch):
    # A sentence's prompt is its voice's 32 latent rows, then its text. The GPT's keys and values over the voice rows
    # are the same for every sentence in that voice: they are worked out once per voice and kept, and a sentence's
    # first step runs its text rows and the start token only (its audio against coqui's whole-prompt inference: the
    # batched and streamed equality tests in this file, which run this path).
    torch = pytest.importorskip("torch")
    from transformers import LogitsProcessorList

    from demod_voice.backends.xtts import batching as xtts_batch

    model, first, second = two_voices(xtts_model, references, tmp_path)
    rows: list[int] = []
    hook = model.gpt.gpt_inference.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True)
    texts = ["A rather longer sentence comes first.", "Short."]
    greedy = {"do_sample": False, "max_new_tokens": 12, "logits_processor": LogitsProcessorList([StopAfterMultipleOf(7, model.gpt)])}
    with torch.inference_mode():
        before = model.inference(texts[1], "en", first[0], first[1], **greedy)["wav"]
    sampling = {"top_k": 1, "max_new_tokens": 12,  # the streamed generation samples: greedy is top_k 1
                "logits_processor": LogitsProcessorList([StopAfterMultipleOf(7, model.gpt)])}

    def spoken(voices):  # streamed: the GPT runs for the generation only (no latent pass after it)
        rows.clear()
        audio: dict[int, list] = {0: [], 1: []}
        with torch.inference_mode():
            for row, piece in xtts_batch.generate_stream(model, texts, "en", [v[0] for v in voices], [v[1] for v in voices],
                                                         chunk_tokens=5, **sampling):
                if piece is not None:
                    audio[row].append(piece)
        return [np.concatenate(audio[row]) for row in (0, 1)]

    voice_rows = first[0].shape[1]
    widths = [len(model.tokenizer.encode(t.lower(), lang="en")) + 2 for t in texts]  # text tokens and their start/stop marks
    fresh = spoken([first, second])
    assert rows[:3] == [voice_rows, voice_rows, max(widths) + 1]  # each voice once, then the text rows and the start token
    assert set(rows[3:]) == {1}
    kept = spoken([first, second])
    assert rows[0] == max(widths) + 1 and set(rows[1:]) == {1}  # both voices kept: no voice rows through the GPT
    for a, b in zip(kept, fresh, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    monkeypatch.setattr(xtts_batch, "VOICES_KEPT", 1)
    spoken([first, second])  # both kept: nothing to work out, and nothing is let go until a voice is added
    assert rows[0] == max(widths) + 1
    third = model.get_conditioning_latents(audio_path=[str(references["ref.ogg"])])
    spoken([third, second])  # a new voice: the others are let go, so the second row's is worked out again too
    assert rows[:3] == [voice_rows, voice_rows, max(widths) + 1]
    kept_voices = len(model.gpt.gpt_inference.voices)
    assert kept_voices == 1  # the one used last
    spoken([second, second])
    assert rows[0] == max(widths) + 1
    rows.clear()
    with torch.inference_mode():  # coqui's own inference on the same model still reads its whole prompt, as before
        after = model.inference(texts[1], "en", first[0], first[1], **greedy)["wav"]
    hook.remove()
    assert rows[0] == voice_rows + widths[1] + 1
    np.testing.assert_allclose(after, before, atol=1e-6)


@pytest.mark.parametrize("speed", [1.0, 1.3])
def test_a_streamed_sentence_equals_coquis_inference_stream_with_each_chunk_decoded_over_its_own_frames(
        xtts_model, references, tmp_path, monkeypatch, speed):
    # coqui's inference_stream runs the HiFi-GAN over all of a sentence's latents at every chunk and keeps
    # the new part: n chunks cost 1 + 2 + ... + n. Ours runs it from the decoder's receptive field before
    # the new samples: the same chunks (lengths, cross-fades, samples to float rounding), and every decode
    # after the first reads about a chunk's frames, never the sentence so far.
    torch = pytest.importorskip("torch")
    from transformers import LogitsProcessorList

    from demod_voice.backends.xtts import batching as xtts_batch
    from demod_voice.backends.xtts import engine as xtts_engine
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.backends.xtts.request import XttsOptions
    from demod_voice.config import XttsSettings
    from demod_voice.engine.jobs import LoadSpec, SynthesisJob
    from demod_voice.voices.references import check_references

    spec = LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path))
    backend = load_louder(XttsBackend(), spec)
    model = backend.model
    refs = check_references((str(references["ref.wav"]),))
    latent, speaker = backend.conditioning(refs)
    rule = LogitsProcessorList([StopAfterMultipleOf(97, model.gpt)])  # stops late, or at the 40-token cap
    chunk_tokens, text = 4, "A rather longer sentence comes first, with a clause."
    with torch.inference_mode():
        theirs = [c.float().numpy().reshape(-1) for c in model.inference_stream(
            text, "en", latent, speaker, speed=speed, stream_chunk_size=chunk_tokens, enable_text_splitting=False,
            top_k=1, max_new_tokens=40, logits_processor=rule)]
    generator = model.hifigan_decoder.waveform_decoder
    seen: list[int] = []
    hook = generator.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    settings = XttsSettings(top_k=1, max_new_tokens=40, stream_chunk_size=chunk_tokens, speed=speed, sentence_silence=0.0)
    sampling = xtts_engine._sampling
    monkeypatch.setattr(xtts_engine, "_sampling", lambda s: {**sampling(s), "logits_processor": rule})
    job = SynthesisJob(spec, text, "-", options=XttsOptions(refs, "en", settings, stream=True))
    mine = [c.samples for c in backend.synthesize(job)]
    hook.remove()
    assert len(theirs) >= 5  # several chunks, so the later decodes are windows
    assert [len(c) for c in mine] == [len(c) for c in theirs]
    for a, b in zip(mine, theirs, strict=True):  # ~2e-8 apart here; with 4 frames of context, ~2e-5
        np.testing.assert_allclose(a, b, atol=1e-6)
    context = xtts_batch.decoder_context(generator)
    hop = xtts_batch.decoder_hop(generator)
    assert context is not None and hop == 256
    per_chunk = int(np.ceil(chunk_tokens * 1024 / hop * 24000 / 22050 / speed)) + 1024 // hop + 2
    assert len(seen) == len(theirs)
    assert max(seen[1:]) <= per_chunk + context  # a chunk's frames, the overlap and the context: not the sentence so far
    assert seen[-1] < seen[0] + (len(seen) - 1) * per_chunk - context  # coqui's last decode reads every frame


def _cosine_distance(a, b):
    a, b = a.float().numpy().ravel(), b.float().numpy().ravel()
    return 1 - float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))


def test_silence_before_and_after_the_speech_is_left_out_of_the_voice(xtts_model, tmp_path):
    """A phone memo with 2.5 s of silence before the speech and 4 s after it was cloned with the silence in it: one of
    the conditioning's three 4 s chunks was silence, averaged into the voice (the GPT latent 22% off the same speech's,
    the speaker embedding 0.012 away in cosine); now the silence is cut off first and the voices agree."""
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.engine.jobs import LoadSpec
    from demod_voice.voices.references import check_references

    rate, speech = 22050, voiced_signal(6.0, 22050)

    def memo(name, before, after):
        path = tmp_path / name
        soundfile.write(str(path), np.concatenate([np.zeros(int(before * rate)), speech, np.zeros(int(after * rate))]), rate)
        return str(path)

    backend = XttsBackend()
    backend.load(LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path / "cache")))
    clean = backend.conditioning(check_references((memo("clean.wav", 0.2, 0.2),)))
    padded = backend.conditioning(check_references((memo("memo.wav", 2.5, 4.0),)))
    latent_off = float((clean[0] - padded[0]).abs().max() / clean[0].abs().max())
    assert latent_off < 0.01 and _cosine_distance(clean[1], padded[1]) < 0.006, (latent_off, _cosine_distance(clean[1], padded[1]))


def test_room_noise_before_and_after_the_speech_is_left_out_of_the_voice(xtts_model, tmp_path):
    """A memo with a room's noise at -44 dBFS for 2.5 s before the speech and 4 s after it kept all of it (silence was a
    fixed 35 dB below the loudest moment): the GPT latent 17% off the same speech's with 0.1 s of noise either side;
    silence is now judged against the recording's own noise floor (0.1% off)."""
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.engine.jobs import LoadSpec
    from demod_voice.voices.references import check_references

    rate, rng = 22050, np.random.default_rng(0)
    speech = voiced_signal(6.0, rate) + 10 ** (-44 / 20) * rng.standard_normal(6 * rate)

    def memo(name, before, after):
        path = tmp_path / name
        noise = [10 ** (-44 / 20) * rng.standard_normal(int(s * rate)) for s in (before, after)]
        soundfile.write(str(path), np.concatenate([noise[0], speech, noise[1]]).astype(np.float32), rate)
        return str(path)

    backend = XttsBackend()
    backend.load(LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path / "cache")))
    clean = backend.conditioning(check_references((memo("clean.wav", 0.1, 0.1),)))
    padded = backend.conditioning(check_references((memo("memo.wav", 2.5, 4.0),)))
    latent_off = float((clean[0] - padded[0]).abs().max() / clean[0].abs().max())
    assert latent_off < 0.01 and _cosine_distance(clean[1], padded[1]) < 0.001, (latent_off, _cosine_distance(clean[1], padded[1]))


def test_a_recording_with_nothing_to_cut_gets_coquis_own_conditioning(xtts_model, references, tmp_path):
    from demod_voice.backends.xtts.engine import XttsBackend
    from demod_voice.engine.jobs import LoadSpec
    from demod_voice.voices.references import check_references

    backend = XttsBackend()
    backend.load(LoadSpec(backend="xtts", model=str(xtts_model), cache_dir=str(tmp_path)))
    config = backend.model.config
    ours = backend.conditioning(check_references((str(references["ref.flac"]),)))
    theirs = backend.model.get_conditioning_latents(
        audio_path=[str(references["ref.flac"])], max_ref_length=config.max_ref_len, gpt_cond_len=config.gpt_cond_len,
        gpt_cond_chunk_len=config.gpt_cond_chunk_len, sound_norm_refs=config.sound_norm_refs)
    for mine, coqui in zip(ours, theirs, strict=True):
        assert mine.shape == coqui.shape and float((mine - coqui).abs().max()) < 1e-5


def test_a_page_saved_as_mp3_is_refused_in_one_line(xtts_model, tmp_path):
    """A failed download saved as voice.mp3 (a web page) was refused after three lines of the MP3 decoder's own notes
    ("Note: Illegal Audio-MPEG-Header 0x00000000 at offset 200.", "Note: Trying to resync...") on stderr."""
    (tmp_path / "voice.mp3").write_text("<!DOCTYPE html><html><body>Not found</body></html>\n" * 4)
    done = clone(xtts_model, [tmp_path / "voice.mp3"], "Hello.", tmp_path / "o.wav")
    assert_clean_failure(done, "reference voice.mp3 is not audio that can be read", tmp_path)
