from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamdrift import config as config_module
from streamdrift.config import (
    BaselineConfig,
    Config,
    DetectorConfig,
    DivergenceConfig,
    InputConfig,
    KafkaConfig,
    MetricsConfig,
    Secret,
    ServiceConfig,
    WindowConfig,
    load_config,
    parse_config,
    read_yaml,
)
from streamdrift.errors import ConfigError
from tests.conftest import EXAMPLE_CONFIG


def test_the_example_config_loads_frozen_with_overrides(example_config: Config):
    config = example_config
    assert [f.name for f in config.features][:2] == ["session_length", "purchases_30d"]
    assert config.features[0].path == ("usage", "session_length")
    assert config.features[5].path == ("device",)  # path defaults to the name
    age = config.features[2]
    device = config.features[5]
    assert config.bins_for(age) == 15
    assert config.bins_for(device) == 20
    assert config.threshold_for(device) == 0.2
    assert config.threshold_for(age) == config.divergence.threshold == 0.1
    assert config.window.size == 10_000
    assert config.window.panes == 10
    assert config.baseline.path == EXAMPLE_CONFIG.parent / "baseline.json"
    assert config.service.commit_interval_s == 1.0
    with pytest.raises(AttributeError):
        config.window = config.window  # type: ignore[misc]


def _load(tmp_path: Path, document: object, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_config(path, environ=environ or {})


def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path: Path):
    document = {
        "features": [{"name": "a", "type": "numerical"}, {"name": "a"}, {"type": "numeric"}],
        "window": {"size": 1001, "panes": 10},
        "divergence": {"threshold": -1, "min_sample": 5},
        "metrics": {"port": 70000},
        "service": {"commit_interval_s": -1},
        "detector": {"method": "adwin", "params": {"delta": 3}},
        "kafak": {},
    }
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, document)
    message = str(raised.value)
    for expected in [
        "features[0].type must be one of numeric, categorical (got 'numerical')",
        "features[1].name is used by an earlier feature (got 'a')",
        "features[2].name is required: a non-empty string (got None)",
        "window.size must be a multiple of window.panes (10)",
        "divergence.threshold must be a finite number > 0.0 (got -1)",
        "divergence.min_sample is not a known key (got 5)",
        "metrics.port must be between 0 and 65535 (got 70000)",
        "service.commit_interval_s must be a finite number >= 0.0 (got -1)",
        "detector.params.delta is not a valid adwin parameter value (got 3)",
        "kafak is not a known key",
    ]:
        assert expected in message
    assert str(tmp_path / "config.yaml") in message.splitlines()[0]


def test_durations_make_event_time_windows(tmp_path: Path):
    config = _load(tmp_path, {"features": [{"name": "x"}],
                              "window": {"size": "15m", "panes": 15, "time_field": "meta.ts",
                                         "time_unit": "ms"}})
    assert config.window.duration_s == 900.0
    assert config.window.size is None
    assert config.window.time_field == ("meta", "ts")
    assert config.window.describe() == "15m of event time in 15 panes"
    with pytest.raises(ConfigError, match=r"window\.size must be a message count or a duration"):
        _load(tmp_path, {"features": [{"name": "x"}], "window": {"size": "soon"}})


def test_environment_overrides_connection_settings(tmp_path: Path):
    environ = {"STREAMDRIFT_KAFKA_BOOTSTRAP_SERVERS": "broker:9093",
               "STREAMDRIFT_METRICS_PORT": "9999",
               "STREAMDRIFT_KAFKA_SASL_PASSWORD": "hunter2"}
    config = _load(tmp_path, {"features": [{"name": "x"}],
                              "kafka": {"security_protocol": "SASL_SSL",
                                        "sasl_mechanism": "PLAIN", "sasl_username": "u"}},
                   environ)
    assert config.kafka.bootstrap_servers == "broker:9093"
    assert config.metrics.port == 9999
    assert config.kafka.sasl_password == Secret("hunter2")
    assert "hunter2" not in repr(config)
    with pytest.raises(ConfigError, match=r"metrics\.port must be an integer"):
        _load(tmp_path, {"features": [{"name": "x"}]}, {"STREAMDRIFT_METRICS_PORT": "many"})


def test_a_password_in_the_file_is_refused_without_echoing_it(tmp_path: Path):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {"features": [{"name": "x"}], "kafka": {"sasl_password": "hunter2"}})
    assert "STREAMDRIFT_KAFKA_SASL_PASSWORD" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_password_file_resolves_against_the_config_folder(tmp_path: Path):
    (tmp_path / "secret.txt").write_text("s3cret\n")
    config = _load(tmp_path, {"features": [{"name": "x"}],
                              "kafka": {"sasl_password_file": "secret.txt"}})
    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.reveal() == "s3cret"


def test_unreadable_or_malformed_files_fail_clearly(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("features: [\n")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'bad.yaml'}:2:1: expected")):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="features is required"):
        parse_config({}, tmp_path, environ={})
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config(["a"], tmp_path, environ={})


def test_a_config_or_password_file_that_is_not_utf8_fails_clearly(tmp_path: Path):
    # Found by fuzzing (tests/fuzz/corpus/config/not-utf8): a UnicodeDecodeError, not a
    # ConfigError.
    path = tmp_path / "latin1.yaml"
    path.write_bytes("features:\n  - name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=re.escape(
            f"config file {path} is not UTF-8 text (byte 24 is b'\\xe9')")):
        load_config(path)
    (tmp_path / "secret.bin").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"kafka\.sasl_password_file is not UTF-8 text"):
        _load(tmp_path, {"features": [{"name": "x"}],
                         "kafka": {"sasl_password_file": "secret.bin"}})


def test_a_config_beyond_python_s_limits_fails_clearly(tmp_path: Path):
    # Found by fuzzing (tests/fuzz/corpus/config/nested-too-deeply and
    # integer-of-over-4300-digits): a RecursionError, and the ValueError of int() on a
    # number too long for it.
    path = tmp_path / "deep.yaml"
    path.write_text("features:\n" + "  - " * 5000 + "x\n")
    with pytest.raises(ConfigError, match="is nested too deeply to be a config"):
        load_config(path)
    path.write_text("features: [{name: x}]\nwindow: {panes: " + "1" * 5000 + "}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2:17: cannot read this as int")):
        load_config(path)


@pytest.mark.parametrize(("document", "message"), [
    ({"features": [{"name": "x", "threshold": 10**400}]},
     "features[0].threshold must be a finite number > 0.0"),
    ({"features": [{"name": "x", "missing_values": ["NA", -(10**400)]}]},
     "features[0].missing_values must not hold a number beyond a float's range"),
    ({"features": [{"name": "x"}], "window": {"size": "9" * 400 + "s", "panes": 1}},
     "window.size must be a positive, finite duration"),
])
def test_numbers_beyond_a_float_s_range_are_refused(tmp_path: Path, document: dict[str, Any],
                                                    message: str) -> None:
    # Found after the fuzzer's OverflowError in the baseline loader, by the same kind of input
    # (tests/fuzz/corpus/config/number-beyond-float-range, duration-beyond-float-range): an
    # OverflowError at load, or at `streamdrift check` for the duration.
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(tmp_path, document)


def test_the_decision_settings_default_to_auto_and_alpha_and_are_checked(tmp_path: Path):
    config = _load(tmp_path, {"features": [{"name": "a"}, {"name": "b", "min_samples": 40}]})
    assert config.divergence.min_samples == "auto"
    assert config.divergence.alpha == 0.001
    assert config.min_samples_for(config.features[0]) is None  # auto: from the baseline
    assert config.min_samples_for(config.features[1]) == 40
    fixed = _load(tmp_path, {"features": [{"name": "a"}],
                             "divergence": {"min_samples": 250, "alpha": 0.01}})
    assert fixed.min_samples_for(fixed.features[0]) == 250
    assert fixed.divergence.alpha == 0.01
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {"features": [{"name": "a"}],
                         "divergence": {"min_samples": "some", "alpha": 1.5}})
    assert "divergence.min_samples must be an integer (got 'some')" in str(raised.value)
    assert "divergence.alpha must be below 1 (got 1.5)" in str(raised.value)


def test_missing_values_are_per_feature_then_global_then_by_type(tmp_path: Path):
    config = _load(tmp_path, {"features": [
        {"name": "country", "type": "categorical"},
        {"name": "plan", "type": "categorical", "missing_values": ["unknown", ""]},
        {"name": "age"},
        {"name": "score", "missing_values": [-999, "n.a."]}]})
    country, plan, age, score = config.features
    assert country.missing_tokens == ()  # "NA" is Namibia
    assert plan.missing_tokens == ("unknown", "")
    assert age.missing_tokens == ("", "NA", "N/A", "NaN", "null", "None")
    assert score.missing_tokens == (-999.0, "n.a.")
    everywhere = _load(tmp_path, {"features": [{"name": "country", "type": "categorical"},
                                               {"name": "age", "missing_values": []}],
                                  "input": {"missing_values": ["?"]}})
    assert [spec.missing_tokens for spec in everywhere.features] == [("?",), ()]
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, {"features": [{"name": "a", "missing_values": "NA"}]})
    assert "features[0].missing_values must be a list of strings and numbers (got 'NA')" \
        in str(raised.value)


@pytest.mark.parametrize(("text", "message"), [
    ("kafka:\n  topic: a\n  group_id: g\n  topic: b\nfeatures: [{name: x}]\n",
     "4:3: duplicate key 'topic' (first at line 2)"),
    ("features:\n  - name: x\n    type: numeric\n    type: categorical\n",
     "4:5: duplicate key 'type' (first at line 3)"),
    ("features: [{name: x}]\nwindow: {size: 100}\nwindow: {size: 200}\n",
     "3:1: duplicate key 'window' (first at line 2)"),
    ("kafka:\n  topic: a\n   group_id: g\n", "3:12: mapping values are not allowed here"),
    ("kafka: {topic: [a\nfeatures: []\n",
     "2:9: expected ',' or ']', but got ':' (while parsing a flow sequence at line 1)"),
    ("features:\n\t- name: x\n", "2:1: found character '\\t' that cannot start any token"),
    # Found by fuzzing (tests/fuzz/corpus/config/value-python-cannot-make): values PyYAML
    # cannot make let Python's ValueError, TypeError or AttributeError through.
    ("features: [{name: x}]\nwindow: {size: 2024-02-30}\n",
     "2:16: cannot read this as timestamp (day is out of range for month)"),
    ("features:\n  - {name: x, !!int type: numeric}\n",
     "2:15: cannot read this as int (invalid literal for int() with base 10: 'type')"),
    ("features: [{name: x}]\nservice: !!set refill\n",
     "2:10: expected a mapping node, but found scalar"),
    # Found by the long fuzz run (tests/fuzz/corpus/config/int-tag-on-nothing): PyYAML
    # indexes the empty text of an !!int with nothing after it, an IndexError.
    ("features: [{name: x}]\nwindow: {!!int : 100}\n",
     "2:10: cannot read this as int (string index out of range)"),
])
def test_yaml_mistakes_name_the_file_line_and_column(tmp_path: Path, text: str,
                                                     message: str) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}:{message}"


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("common: &c {bins: 5}\n"
                    "features:\n  - {name: a, <<: *c}\n  - {name: b, <<: *c, bins: 7}\n")
    raw = read_yaml(path.read_text(), path)
    assert isinstance(raw, dict)
    assert raw["features"] == [{"name": "a", "bins": 5}, {"name": "b", "bins": 7}]


def _keys_read_by_the_parser(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """Every (section, key) the parser reads, gathered as each section checks for unknown
    keys: the schema as the code has it, not as a list kept by hand."""
    read: set[tuple[str, str]] = set()
    original = config_module._Section.reject_unknown

    def recording(section: Any) -> None:
        read.update((re.sub(r"\[\d+\]", "[]", section.path), key) for key in section.seen)
        original(section)

    monkeypatch.setattr(config_module._Section, "reject_unknown", recording)
    load_config(EXAMPLE_CONFIG, environ={})
    return read


def _block(text: str, section: str) -> str:
    """The lines of one top-level section of a YAML file, comments included."""
    match = re.search(rf"^{re.escape(section)}:.*?(?=^\w|\Z)", text, re.M | re.S)
    assert match is not None, f"config.yaml has no {section} section"
    return match.group(0)


def test_the_example_config_lists_every_key_the_parser_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = EXAMPLE_CONFIG.read_text()
    read = _keys_read_by_the_parser(monkeypatch)
    assert ("kafka", "auto_offset_reset") in read  # the gathering works
    missing = []
    for section, key in sorted(read):
        if section == "detector.params":  # per method: the configuration reference lists them
            continue
        where = text if not section else _block(text, section.split(".")[0].removesuffix("[]"))
        if not re.search(rf"^\s*(#\s*)?(- )?{re.escape(key)}:", where, re.M):
            missing.append(f"{section}.{key}" if section else key)
    assert not missing, f"config.yaml does not show: {', '.join(missing)}"


def test_the_example_config_shows_the_defaults() -> None:
    config = load_config(EXAMPLE_CONFIG, environ={})
    assert config.kafka == KafkaConfig()
    assert config.window == WindowConfig()
    assert config.baseline == BaselineConfig(path=EXAMPLE_CONFIG.parent / "baseline.json")
    assert config.divergence == DivergenceConfig()
    assert config.detector == DetectorConfig()
    assert config.input == InputConfig()
    assert config.metrics == MetricsConfig()
    assert config.service == ServiceConfig()


@pytest.mark.parametrize(("document", "environ", "problem"), [
    ({"features": [{"name": "c", "type": "categorical", "bins": 5}]}, {},
     "features[0].bins applies to numeric features only"),
    ({"features": [{"name": "x", "bins": 10_001}]}, {},
     "features[0].bins must be between 1 and 10000 (got 10001)"),
    ({"features": [{"name": "x"}], "detector": {"method": "kswin",
                                               "params": {"stat_size": 100}}}, {},
     "detector.params.stat_size must be smaller than window_size (100) for kswin (got 100)"),
    ({"features": [{"name": "x"}], "detector": {"method": "kswin",
                                               "params": {"window_size": 20}}}, {},
     "detector.params.stat_size must be smaller than window_size (20) for kswin (got 30)"),
    ({"features": [{"name": "x"}]}, {"STREAMDRIFT_METRICS_PORT": "--5"},
     "metrics.port must be an integer (got '--5') (from STREAMDRIFT_METRICS_PORT)"),
    ({"features": [{"name": "x"}]}, {"STREAMDRIFT_KAFKA_CLIENT": "java"},
     "kafka.client must be one of kafka-python, confluent (got 'java') "
     "(from STREAMDRIFT_KAFKA_CLIENT)"),
])
def test_settings_that_would_fail_later_are_refused_at_load(
        tmp_path: Path, document: dict[str, Any], environ: dict[str, str],
        problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, document, environ)
    assert problem in str(raised.value)


def test_the_kswin_detector_that_loads_also_builds(tmp_path: Path) -> None:
    from streamdrift.detectors import make_detector

    config = _load(tmp_path, {"features": [{"name": "x"}], "detector": {
        "method": "kswin", "params": {"window_size": 50, "stat_size": 49}}})
    assert make_detector(config.detector) is not None


def test_a_home_directory_that_does_not_exist_is_named_with_its_key(tmp_path: Path) -> None:
    # Found by the long fuzz run (tests/fuzz/corpus/config/home-of-no-user): pathlib raises
    # RuntimeError for "~user" when there is no such user.
    path = tmp_path / "config.yaml"
    path.write_text("features: [{name: x}]\n"
                    "metrics: {tls_keyfile: ~streamdrift-no-such-user/key.pem}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == ("metrics.tls_keyfile '~streamdrift-no-such-user/key.pem': "
                                 "~streamdrift-no-such-user names no home directory on this "
                                 "machine")
