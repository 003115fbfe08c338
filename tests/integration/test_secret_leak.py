"""A SASL password never shows: not in a log line of ``streamdrift run`` (whose SASL
handshake the test broker, which speaks PLAINTEXT, refuses: errors are logged, which is the
point), not on /metrics, /readyz or /healthz, and not in the error of a command or of a
config that does not load. With both Kafka clients, from the environment and from a file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamdrift.config import load_config
from tests.integration.conftest import (
    REPO,
    ServiceProcess,
    setup_service,
)

SENTINEL = f"sentinel-{uuid.uuid4().hex}"
PASSWORD_ENV = "STREAMDRIFT_KAFKA_SASL_PASSWORD"
SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
        "sasl_username": "streamdrift"}


def _password_from(how: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The kafka section and the environment that give the service the sentinel password."""
    if how == "environment":
        return dict(SASL), {PASSWORD_ENV: SENTINEL}
    (tmp_path / "kafka-password").write_text(f"{SENTINEL}\n")
    return {**SASL, "sasl_password_file": "kafka-password"}, {}


def _streamdrift(args: list[str], env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("STREAMDRIFT_") or key.startswith("STREAMDRIFT_TEST_")}
    environ["PYTHONPATH"] = str(REPO)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "streamdrift", *args], env=environ, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("how", ["environment", "file"])
def test_the_service_says_nothing_of_the_password(
        tmp_path: Path, bootstrap: str, kafka_client: str, how: str,
        service_factory: Callable[..., ServiceProcess]) -> None:
    kafka, env = _password_from(how, tmp_path)
    topic = f"sd-leak-{uuid.uuid4().hex[:12]}"  # never created: the SASL handshake fails first
    config, port = setup_service(tmp_path, bootstrap, topic, extra={"kafka": kafka},
                                 client=kafka_client)
    loaded = load_config(config, environ=env).kafka.sasl_password
    assert loaded is not None
    assert loaded.reveal() == SENTINEL  # the service really holds it
    service = service_factory(config, port, env=env)
    service.wait_healthy()

    def kafka_errors() -> int:
        return len(re.findall(r"level=(?:error|warning) event=kafka_", service.log_text()))

    service.wait_until(lambda: kafka_errors() >= 2, 60, what="the client's failures logged")
    pages = {path: service.get(path) for path in ("/metrics", "/readyz", "/healthz", "/x")}
    assert pages["/readyz"] == (503, "not connected to Kafka\n")
    assert pages["/metrics"][0] == 200
    assert service.terminate() == 0
    log = service.log_text()
    if kafka_client == "kafka-python":
        assert "IllegalSaslStateError" in log  # it did try to authenticate
    assert SENTINEL not in log
    for path, (_, body) in pages.items():
        assert SENTINEL not in body, path


def _write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_commands_and_refused_configs_say_nothing_of_the_password(tmp_path: Path) -> None:
    # setup_service writes a config and builds its baseline without reaching a broker.
    good, _ = setup_service(tmp_path, "127.0.0.1:1", "t", extra={"kafka": SASL})
    document = yaml.safe_load(good.read_text())
    (tmp_path / "kafka-password").write_text(SENTINEL)
    from_file = _write(tmp_path / "from-file.yaml", {
        **document, "kafka": {**document["kafka"], "sasl_password_file": "kafka-password"}})
    env = {PASSWORD_ENV: SENTINEL}
    outputs: dict[str, subprocess.CompletedProcess[str]] = {
        "check, from the environment": _streamdrift(["check", "--config", str(good)], env),
        "check, from a file": _streamdrift(["check", "--config", str(from_file)]),
    }
    assert [name for name, result in outputs.items() if result.returncode != 0] == []
    refused = {
        # Another key is wrong while the password is set.
        "a wrong key": ({**document, "window": {"size": 7, "panes": 10}}, env),
        # The password written in the config, or under a misspelt key, or with a misspelt
        # section around it.
        "the password in the config": (
            {**document, "kafka": {**document["kafka"], "sasl_password": SENTINEL}}, {}),
        "a misspelt key": (
            {**document, "kafka": {**document["kafka"], "sasl_pasword": SENTINEL}}, {}),
        "a misspelt section": ({**document, "kafak": {"sasl_password": SENTINEL}}, {}),
        # The password where a web-config file wants its bcrypt hash.
        "a password for a hash": ({**document, "metrics": {
            "web_config_file": str(_write(tmp_path / "web.yml", {
                "basic_auth_users": {"prometheus": SENTINEL},
                "basic_auth_user": {"prometheus": SENTINEL}}))}}, {}),
    }
    for name, (refused_document, refused_env) in refused.items():
        path = _write(tmp_path / f"{name.replace(' ', '-')}.yaml", refused_document)
        for command in ("check", "run"):
            result = _streamdrift([command, "--config", str(path)], refused_env)
            outputs[f"{command}, {name}"] = result
            assert result.returncode == 2, (name, command, result.stderr)
            assert "invalid configuration" in result.stderr, (name, result.stderr)
    leaks = [name for name, result in outputs.items()
             if SENTINEL in result.stdout + result.stderr]
    assert leaks == []
