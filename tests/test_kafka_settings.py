from __future__ import annotations

import io
from pathlib import Path

import yaml

from streamdrift.config import load_config
from streamdrift.eventlog import EventLog
from streamdrift.sources.kafka import client_settings


def test_sasl_and_tls_settings_pass_through_and_the_password_is_never_logged(tmp_path: Path):
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "features": [{"name": "x"}],
        "kafka": {"bootstrap_servers": "a:9093, b:9093", "security_protocol": "SASL_SSL",
                  "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "reader",
                  "ssl_cafile": "ca.pem"},
    }))
    config = load_config(tmp_path / "config.yaml",
                         environ={"STREAMDRIFT_KAFKA_SASL_PASSWORD": "hunter2"})
    settings = client_settings(config.kafka)
    assert settings["bootstrap_servers"] == ["a:9093", "b:9093"]
    assert settings["security_protocol"] == "SASL_SSL"
    assert settings["sasl_mechanism"] == "SCRAM-SHA-512"
    assert settings["sasl_plain_username"] == "reader"
    assert settings["sasl_plain_password"] == "hunter2"
    assert settings["ssl_cafile"] == str(tmp_path / "ca.pem")
    stream = io.StringIO()
    EventLog(stream=stream)("kafka_connected", config=config.kafka)
    assert "hunter2" not in stream.getvalue()
    assert "***" in stream.getvalue()
