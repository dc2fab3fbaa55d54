from __future__ import annotations

import pytest
import yaml

from demod_voice.config import Config, _deep_merge, config_path, load_config, render_default_file, write_default_file
from demod_voice.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(tmp_path):
    config, used = load_config(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert config == Config()
    assert used is None


def test_precedence_defaults_file_env_flags(tmp_path):
    path = write(tmp_path / "demod-voice" / "config.yaml", "device: gpu\npiper:\n  volume: 0.5\n  length_scale: 1.5\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path), "DEMOD_VOICE_PIPER_LENGTH_SCALE": "2.0"}
    config, used = load_config(env=env, overrides={"device": "cpu", "piper.noise_scale": None})
    assert used == path
    assert config.device == "cpu"  # flag beats file
    assert config.piper.length_scale == 2.0  # environment beats file
    assert config.piper.volume == 0.5  # file beats default
    assert config.piper.noise_scale is None  # a flag left unset changes nothing
    assert config.engine.retries == 1  # default


def test_a_misspelt_variable_is_warned_about_not_ignored_without_a_word(tmp_path, caplog):
    env = {"XDG_CONFIG_HOME": str(tmp_path), "DEMOD_VOICE_PIPER_LENGHT_SCALE": "1.2", "DEMOD_VOICE_TEST_CACHE": "/x",
           "DEMOD_VOICE_PIPER_LENGTH_SCALE": "2.0"}
    with caplog.at_level("WARNING"):
        config, _ = load_config(env=env)
    assert config.piper.length_scale == 2.0
    assert "DEMOD_VOICE_PIPER_LENGHT_SCALE names no setting" in caplog.text
    assert "did you mean DEMOD_VOICE_PIPER_LENGTH_SCALE?" in caplog.text
    assert "DEMOD_VOICE_TEST_CACHE" not in caplog.text and caplog.text.count("names no setting") == 1


def test_a_mapping_setting_may_come_from_a_variable(tmp_path):
    """``DEMOD_VOICE_SERVE_KEYS`` (a container's way to pass keys) was always a string, refused as "must be <class
    'dict'> or null"."""
    env = {"XDG_CONFIG_HOME": str(tmp_path), "DEMOD_VOICE_SERVE_KEYS": "{kitchen-key-123: speak}"}
    assert load_config(env=env)[0].serve.keys == {"kitchen-key-123": "speak"}
    with pytest.raises(ConfigError, match="'serve.keys' must be a mapping or null, got a str"):
        load_config(env={**env, "DEMOD_VOICE_SERVE_KEYS": "kitchen-key-123"})
    with pytest.raises(ConfigError, match="'piper.volume' must be a number"):  # a list only where the setting takes one
        load_config(env={**env, "DEMOD_VOICE_PIPER_VOLUME": "[1, 2]"})


def test_explicit_path_beats_variable_and_default(tmp_path):
    write(tmp_path / "demod-voice" / "config.yaml", "device: gpu\n")
    by_var = write(tmp_path / "var.yaml", "engine:\n  retries: 3\n")
    explicit = write(tmp_path / "explicit.yaml", "engine:\n  retries: 5\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path), "DEMOD_VOICE_CONFIG": str(by_var)}
    assert load_config(env=env)[0].engine.retries == 3
    assert load_config(str(explicit), env=env)[0].engine.retries == 5
    assert config_path(None, {"XDG_CONFIG_HOME": str(tmp_path)}) == (tmp_path / "demod-voice" / "config.yaml", False)


def test_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"), env={})


def test_unknown_key_names_dotted_key_and_file(tmp_path):
    path = write(tmp_path / "c.yaml", "piper:\n  lenght_scale: 1.0\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    assert "'piper.lenght_scale'" in str(err.value) and str(path) in str(err.value)


def test_wrong_type_names_key_and_expected_type(tmp_path):
    path = write(tmp_path / "c.yaml", "engine:\n  retries: many\n")
    with pytest.raises(ConfigError, match=r"'engine.retries' must be a whole number, got 'many'"):
        load_config(str(path), env={})


@pytest.mark.parametrize(
    "text, message",
    [
        ("device: tpu\n", "must be one of cpu, gpu"),
        ("engine:\n  max_jobs_per_worker: 0\n", "at least 1"),
        ("engine: 3\n", "must be a section"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("piper:\n  volume: true\n", "must be a number"),
    ],
)
def test_bad_values(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(str(write(tmp_path / "c.yaml", text)), env={})


def test_malformed_yaml_gives_line(tmp_path):
    path = write(tmp_path / "c.yaml", "piper:\n  volume: [1, 2\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_config(str(path), env={})


def test_bad_environment_value_names_variable(tmp_path):
    with pytest.raises(ConfigError, match="DEMOD_VOICE_ENGINE_RETRIES"):
        load_config(env={"XDG_CONFIG_HOME": str(tmp_path), "DEMOD_VOICE_ENGINE_RETRIES": "-1"})


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path / "c.yaml", "device: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(str(path), env={})


def test_merge_does_not_mutate_inputs():
    base = {"piper": {"volume": 1.0}}
    top = {"piper": {"length_scale": 2.0}}
    merged = _deep_merge(base, top)
    assert merged == {"piper": {"volume": 1.0, "length_scale": 2.0}}
    assert base == {"piper": {"volume": 1.0}} and top == {"piper": {"length_scale": 2.0}}


def test_default_file_documents_every_key_and_loads_to_defaults(tmp_path):
    text = render_default_file()
    data = yaml.safe_load(text)
    assert set(data) == {"device", "cache_dir", "engine", "piper", "xtts", "convert", "models", "preprocess", "book", "serve"}
    assert text.count("# ") >= 9  # a comment per key and section
    path = tmp_path / "sub" / "config.yaml"
    write_default_file(path)
    assert load_config(str(path), env={})[0] == Config()
    with pytest.raises(ConfigError, match="--force"):
        write_default_file(path)
    write_default_file(path, force=True)


@pytest.mark.parametrize("where", ["file", "env", "flag"])
@pytest.mark.parametrize("key, value", [("piper.volume", "nan"), ("piper.noise_scale", "nan"), ("piper.length_scale", "inf"),
                                        ("piper.sentence_silence", "-inf")])
def test_a_number_that_is_not_finite_is_refused_wherever_it_is_set(tmp_path, where, key, value):
    """NaN passes every ``minimum`` comparison: --volume nan or DEMOD_VOICE_PIPER_VOLUME=.nan made silent files with exit
    0, and inf failed inside onnxruntime with its own log lines."""
    section, name = key.split(".")
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    overrides = None
    spelled = ("-." if value[0] == "-" else ".") + value.lstrip("-")  # YAML's spelling, which files and variables use
    if where == "file":
        write(tmp_path / "demod-voice" / "config.yaml", f"{section}:\n  {name}: {spelled}\n")
    elif where == "env":
        env[f"DEMOD_VOICE_{section.upper()}_{name.upper()}"] = spelled
    else:
        overrides = {key: float(value)}
    with pytest.raises(ConfigError, match=f"'{key}' must be a finite number"):
        load_config(env=env, overrides=overrides)


def test_a_port_past_65535_is_refused():
    with pytest.raises(ConfigError, match="'serve.port' must be at most 65535"):
        load_config(env={}, overrides={"serve.port": 99999})


@pytest.mark.parametrize("key, value, most", [("piper.length_scale", 1e9, "100.0"), ("piper.sentence_silence", 1e12, "60.0")])
def test_a_length_or_silence_no_memory_holds_is_refused(key, value, most):
    # Both went to the engine: onnxruntime's std::bad_alloc, or numpy's "Unable to allocate 78.3 PiB", exit 1.
    with pytest.raises(ConfigError, match=f"'{key}' must be at most {most}"):
        load_config(env={}, overrides={key: value})


@pytest.mark.parametrize("spelled, number", [("1e3", 1000.0), ("1.5e3", 1500.0), ("2E-1", 0.2), ("+5e+1", 50.0)])
def test_an_exponent_is_a_number_in_a_file_and_a_variable(tmp_path, spelled, number):
    """YAML 1.1 (PyYAML's rule) reads a float only with a dot and a signed exponent (``1.0e+3``): ``grace_seconds: 1e3``
    and ``DEMOD_VOICE_SERVE_GRACE_SECONDS=1e3`` were text, refused as "must be a number, got '1e3'"."""
    path = write(tmp_path / "c.yaml", f"serve:\n  grace_seconds: {spelled}\n")
    assert load_config(str(path), env={})[0].serve.grace_seconds == number
    env = {"XDG_CONFIG_HOME": str(tmp_path), "DEMOD_VOICE_SERVE_GRACE_SECONDS": spelled}
    assert load_config(env=env)[0].serve.grace_seconds == number


def test_an_exponent_stays_text_where_the_setting_is_text_and_a_quoted_number_is_still_refused(tmp_path):
    path = write(tmp_path / "c.yaml", "serve:\n  keys: {1234e5678: speak}\n  preload: [1e3]\n")
    config = load_config(str(path), env={})[0]
    assert config.serve.keys == {"1234e5678": "speak"} and config.serve.preload == ["1e3"]  # a key, a name: as written
    assert type(next(iter(config.serve.keys))) is str and type(config.serve.preload[0]) is str
    yaml.safe_dump(config.serve.keys)  # plain text (config show dumps the settings)
    with pytest.raises(ConfigError, match=r"'serve.port' must be a whole number, got '5002'"):
        load_config(str(write(tmp_path / "q.yaml", "serve:\n  port: '5002'\n")), env={})
    with pytest.raises(ConfigError, match=r"'engine.max_queued' must be a whole number, got 1000.0 \(write 1000\)"):
        load_config(str(write(tmp_path / "w.yaml", "engine:\n  max_queued: 1e3\n")), env={})
