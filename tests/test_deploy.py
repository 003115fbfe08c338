"""The deployment files as an operator's tools see them, without a cluster or a registry:
the Dockerfile (hadolint), the Helm chart (Helm's own renderer and linter, the Kubernetes
schemas, checkov), the Compose file (docker compose config) and the generated copies of the
rules and the dashboard. tests/integration/test_container.py builds and runs them."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import pytest
import yaml

from streamdrift.cli import main as cli_main
from streamdrift.config import parse_config
from streamdrift.rules import RuleParameters, render_prometheus_rule
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "streamdrift"
EVERYTHING = DEPLOY / "helm" / "examples" / "values-everything.yaml"
SHIPPED_RULES = DEPLOY / "prometheus" / "streamdrift-rules.yml"
BIN = Path(sys.executable).parent
VALUES = {"defaults": {}, "everything": yaml.safe_load(EVERYTHING.read_text())}


def _tool(name: str) -> str:
    """A command installed with the dev extra, next to this interpreter."""
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: pip install -e '.[dev]' (tests/run does)")
        return found
    return str(path)


def render(values: dict[str, Any], name: str = "drift") -> list[dict[str, Any]]:
    """The chart's manifests for ``values``, as Helm would install them."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=name, namespace="ml")
    return [document for path, text in sorted(rendered.items()) if path.endswith(".yaml")
            for document in yaml.safe_load_all(text) if document]


def by_kind(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], []).append(document)
    return kinds


def _workload(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (workload,) = [d for d in documents if d["kind"] in ("Deployment", "StatefulSet")]
    return workload


def _write(documents: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


# ---- the Dockerfile ---------------------------------------------------------------------------

def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([_tool("hadolint"), str(DEPLOY / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_from_any_base_into_a_locked_down_image():
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in re.sub(r"\\\n\s*", " ", text).splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert len(froms) == 2, "multi-stage: a build stage and the runtime stage"
    assert all(line.split()[1] == "${BASE}" for line in froms)
    assert any(line.startswith("ARG BASE=") for line in instructions)
    runtime = instructions[instructions.index(froms[1]):]
    assert "USER 10001:10001" in runtime
    assert 'ENTRYPOINT ["streamdrift"]' in runtime
    assert 'CMD ["run", "--config", "/etc/streamdrift/config.yaml"]' in runtime
    assert "EXPOSE 9108" in runtime
    healthcheck = next(line for line in runtime if line.startswith("HEALTHCHECK"))
    assert "CMD [" in healthcheck
    assert "/healthz" in healthcheck
    labels = " ".join(line for line in runtime if line.startswith("LABEL"))
    for key in ("version", "source", "licenses", "title"):
        assert f"org.opencontainers.image.{key}=" in labels
    # The runtime stage takes the virtualenv from the build stage and nothing else.
    assert [line for line in runtime if line.startswith(("COPY", "ADD", "RUN"))] == [
        "COPY --from=build /opt/streamdrift /opt/streamdrift"]


def test_the_build_context_holds_only_what_installs_the_package():
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {line for line in lines if line.startswith("!")} == {
        "!pyproject.toml", "!README.md", "!streamdrift/"}


# ---- the chart --------------------------------------------------------------------------------

@pytest.mark.parametrize("values", list(VALUES))
def test_the_chart_renders_and_lints(values):
    report = helm_python.lint(CHART, VALUES[values], strict=True)
    assert report["errors"] == []
    # Severity 1 is Helm's INFO ("icon is recommended"); 2 and up are warnings and errors.
    assert [m for m in report["messages"] if m["severity"] > 1] == []
    kinds = set(by_kind(render(VALUES[values])))
    expected = {"ConfigMap", "Service", "ServiceAccount", "PodDisruptionBudget"}
    if values == "defaults":
        assert kinds == expected | {"Deployment"}
    else:
        assert kinds == expected | {"StatefulSet", "ServiceMonitor", "PrometheusRule",
                                    "NetworkPolicy"}


@pytest.mark.parametrize("kubernetes_version", ["1.30.0", None])  # None: the newest known
@pytest.mark.parametrize("values", list(VALUES))
def test_the_manifests_pass_kubernetes_validate_strict(values, kubernetes_version, tmp_path):
    documents = render(VALUES[values])
    path = _write(documents, tmp_path / "manifests.yaml")
    command = [_tool("kubernetes-validate"), "--strict", str(path)]
    if kubernetes_version is not None:
        command[1:1] = ["--kubernetes-version", kubernetes_version]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    validated = result.stdout.count(" passed for resource ")
    # kubernetes-validate has no schema for the Prometheus Operator's kinds: checked below.
    custom = sum(d["kind"] in ("ServiceMonitor", "PrometheusRule") for d in documents)
    assert validated == len(documents) - custom, result.stdout


@pytest.mark.parametrize(("values", "config"), [("defaults", "checkov-defaults.yaml"),
                                                ("everything", "checkov.yaml")])
@pytest.mark.tool
def test_the_manifests_pass_checkov(values, config, tmp_path):
    checkov = os.environ.get("STREAMDRIFT_TEST_CHECKOV")
    if not checkov:
        pytest.fail("STREAMDRIFT_TEST_CHECKOV is not set: tests/run installs checkov in a venv "
                    "of its own and sets it")
    folder = tmp_path / "manifests"
    folder.mkdir()
    _write(render(VALUES[values]), folder / "streamdrift.yaml")
    result = subprocess.run([checkov, "--directory", str(folder), "--config-file",
                             str(DEPLOY / "helm" / config)],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout
    passed = int(re.search(r"Passed checks: (\d+)", result.stdout)[1])  # type: ignore[index]
    assert passed > 50  # it did look


def test_every_skipped_checkov_check_says_why():
    for name in ("checkov.yaml", "checkov-defaults.yaml"):
        lines = (DEPLOY / "helm" / name).read_text().splitlines()
        for index, line in enumerate(lines):
            if re.fullmatch(r"\s*- CKV\w+", line):
                above = lines[index - 1].strip()
                assert above.startswith("#") or re.fullmatch(r"- CKV\w+", above), \
                    f"{name}: {line.strip()} has no reason above it"


def test_the_prometheus_rule_holds_exactly_the_shipped_rule_groups():
    (rule,) = by_kind(render(VALUES["everything"]))["PrometheusRule"]
    shipped = yaml.safe_load(SHIPPED_RULES.read_text())["groups"]
    assert rule["spec"]["groups"] == shipped
    # The same as what `streamdrift rules --format prometheusrule` writes for users
    # without Helm.
    assert yaml.safe_load(render_prometheus_rule(RuleParameters()))["spec"]["groups"] == shipped


def test_the_rules_command_writes_a_prometheus_rule(tmp_path, capsys):
    output = tmp_path / "rule.yaml"
    assert cli_main(["rules", "--format", "prometheusrule", "--namespace", "ml",
                     "--output", str(output)]) == 0
    document = yaml.safe_load(output.read_text())
    assert (document["apiVersion"], document["kind"]) == ("monitoring.coreos.com/v1",
                                                          "PrometheusRule")
    assert document["metadata"]["namespace"] == "ml"
    assert document["spec"]["groups"] == yaml.safe_load(SHIPPED_RULES.read_text())["groups"]


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"streamdrift_script_{path.parent.name}",
                                                  path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chart_s_generated_files_equal_a_fresh_render():
    module = _load_script(DEPLOY / "helm" / "generate_files.py")
    for path, text in module.render_all().items():
        assert path.read_text() == text, (
            f"{path.relative_to(REPO)} is stale: run python deploy/helm/generate_files.py")


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (expression["key"], expression["operator"],
                                 expression.get("values", []))
        holds = {"In": key in labels and labels[key] in values,
                 "NotIn": key not in labels or labels[key] not in values,
                 "Exists": key in labels,
                 "DoesNotExist": key not in labels}[operator]
        if not holds:
            return False
    return True


def test_the_service_monitor_scrapes_the_service_as_job_streamdrift():
    kinds = by_kind(render(VALUES["everything"]))
    (monitor,) = kinds["ServiceMonitor"]
    # It selects the metrics Service and not the StatefulSet's headless one (the same pods:
    # every replica would be scraped twice).
    selected = [service for service in kinds["Service"]
                if _selects(monitor["spec"]["selector"], service["metadata"]["labels"])]
    (service,) = selected
    assert service["spec"].get("clusterIP") != "None"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [port["name"] for port in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    # The web-config Secret locks /metrics: the scrape brings the credentials and the CA.
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == VALUES["everything"]["serviceMonitor"]["tlsConfig"]
    assert endpoint["basicAuth"] == VALUES["everything"]["serviceMonitor"]["basicAuth"]
    # jobLabel: the job label takes this Service label's value, the rules' job="streamdrift".
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "streamdrift"
    (dashboard,) = [c for c in kinds["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["streamdrift.json"])["uid"] == "streamdrift"


def test_the_stateful_set_is_governed_by_a_headless_service():
    kinds = by_kind(render(VALUES["everything"]))
    (statefulset,) = kinds["StatefulSet"]
    services = {service["metadata"]["name"]: service for service in kinds["Service"]}
    governing = services[statefulset["spec"]["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None"
    # Each pod's DNS name exists from its start, ready or not.
    assert governing["spec"]["publishNotReadyAddresses"] is True
    assert governing["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    assert _selects(statefulset["spec"]["selector"],
                    statefulset["spec"]["template"]["metadata"]["labels"])
    # A Deployment has no headless Service: one Service, with a cluster IP.
    (service,) = by_kind(render(VALUES["defaults"]))["Service"]
    assert "clusterIP" not in service["spec"]


@pytest.mark.parametrize("values", list(VALUES))
def test_the_pods_are_locked_down_probed_and_given_time_to_stop(values):
    documents = render(VALUES[values])
    pod = _workload(documents)["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    # SIGTERM stops polling, commits and exits in a few seconds.
    assert spec["terminationGracePeriodSeconds"] >= 20
    port = container["ports"][0]["containerPort"]
    # Over HTTPS when the web-config Secret sets TLS (the probes need no credentials).
    scheme = {"scheme": "HTTPS"} if VALUES[values].get("metricsWebConfig", {}).get("tls") else {}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port, **scheme}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port, **scheme}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/streamdrift/config", "/etc/streamdrift/baseline", "/tmp"} <= mounts
    assert {"checksum/config", "checksum/baseline"} <= set(pod["metadata"]["annotations"])


def test_a_new_config_or_baseline_rolls_the_pods():
    config: dict[str, Any] = {"kafka": {"bootstrap_servers": "k:9092", "topic": "t"},
                              "features": [{"name": "a"}]}
    base: dict[str, Any] = {"config": config, "baseline": {"json": "{}"}}

    def annotations(values: dict[str, Any]) -> dict[str, str]:
        template = _workload(render(values))["spec"]["template"]
        return template["metadata"]["annotations"]

    first = annotations(base)
    other_config = annotations({**base, "config": {**config, "window": {"size": 10}}})
    other_baseline = annotations({**base, "baseline": {"json": '{"x": 1}'}})
    assert other_config["checksum/config"] != first["checksum/config"]
    assert other_config["checksum/baseline"] == first["checksum/baseline"]
    assert other_baseline["checksum/baseline"] != first["checksum/baseline"]


def test_the_config_map_is_a_streamdrift_config_with_the_chart_s_paths():
    documents = render(VALUES["everything"])
    (config_map,) = [c for c in by_kind(documents)["ConfigMap"]
                     if c["metadata"]["name"].endswith("-config")]
    raw = yaml.safe_load(config_map["data"]["config.yaml"])
    # The Secret's file, not a password: the config reads it from there.
    assert raw["kafka"].pop("sasl_password_file") == "/etc/streamdrift/kafka-sasl/password"
    # So is the web-config file, read at start from its mounted Secret.
    assert raw["metrics"].pop("web_config_file") == "/etc/streamdrift/web-config/web-config.yml"
    # And the Schema Registry's password.
    assert raw["input"]["schema_registry"].pop("password_file") == \
        "/etc/streamdrift/registry-auth/password"
    # (read at start from the mounted Secret; the rest is checked as streamdrift checks it)
    config = parse_config(raw, Path("/etc/streamdrift/config"), environ={})
    assert str(config.baseline.path) == "/etc/streamdrift/baseline/baseline.json"
    assert (config.metrics.port, config.metrics.bind_address) == (9108, "0.0.0.0")
    assert [spec.name for spec in config.features] == [
        f["name"] for f in VALUES["everything"]["config"]["features"]]
    assert config.input.formats() == {"avro", "protobuf"}
    assert config.input.schema_registry is not None
    assert str(config.input.schema_registry.ca_file) == "/etc/streamdrift/registry-tls/ca.crt"
    assert config.input.protobuf is not None
    assert str(config.input.protobuf.descriptor_set) == "/etc/streamdrift/protobuf/features.desc"
    container = _workload(documents)["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["kafka-sasl"] == "/etc/streamdrift/kafka-sasl"
    assert mounts["kafka-tls"] == "/etc/streamdrift/kafka-tls"
    assert mounts["web-config"] == "/etc/streamdrift/web-config"
    assert mounts["registry-auth"] == "/etc/streamdrift/registry-auth"
    assert mounts["registry-tls"] == "/etc/streamdrift/registry-tls"
    assert mounts["protobuf-descriptors"] == "/etc/streamdrift/protobuf"


_REGISTRY_CONFIG: dict[str, Any] = {
    "kafka": {"bootstrap_servers": "k:9092", "topic": "t"},
    "input": {"format": "avro",
              "schema_registry": {"url": "https://registry:8081", "username": "sd",
                                  "password_file": "/elsewhere", "timeout_s": 2}},
    "features": [{"name": "a"}]}


def _pod(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The pod spec, its container and the rendered config.yaml, for ``values``."""
    documents = render(values)
    (config_map,) = [c for c in by_kind(documents)["ConfigMap"]
                     if c["metadata"]["name"].endswith("-config")]
    spec = _workload(documents)["spec"]["template"]["spec"]
    return spec, spec["containers"][0], yaml.safe_load(config_map["data"]["config.yaml"])


def test_schema_registry_secrets_are_mounted_as_files_the_config_names():
    spec, container, config = _pod({
        "config": _REGISTRY_CONFIG,
        "schemaRegistryAuth": {"passwordSecret": {"name": "registry-pw", "key": "secret"},
                               "caSecret": {"name": "registry-ca"}}})
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # Only the named key of each Secret, read-only.
    assert volumes["registry-auth"] == {"name": "registry-auth", "secret": {
        "secretName": "registry-pw", "items": [{"key": "secret", "path": "secret"}]}}
    assert volumes["registry-tls"] == {"name": "registry-tls", "secret": {
        "secretName": "registry-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    assert mounts["registry-auth"] == {"name": "registry-auth", "readOnly": True,
                                       "mountPath": "/etc/streamdrift/registry-auth"}
    assert mounts["registry-tls"] == {"name": "registry-tls", "readOnly": True,
                                      "mountPath": "/etc/streamdrift/registry-tls"}
    # The chart's files win over what the config said; the rest of the section is kept.
    assert config["input"] == {"format": "avro", "schema_registry": {
        "url": "https://registry:8081", "username": "sd", "timeout_s": 2,
        "password_file": "/etc/streamdrift/registry-auth/secret",
        "ca_file": "/etc/streamdrift/registry-tls/ca.crt"}}
    # Never in the environment.
    assert all("REGISTRY" not in e["name"] for e in container["env"])
    assert "protobuf-descriptors" not in volumes


@pytest.mark.parametrize("source", ["configMap", "secret"])
def test_a_protobuf_descriptor_set_is_mounted_from_a_config_map_or_a_secret(source):
    config = {**_REGISTRY_CONFIG, "input": {"format": "protobuf",
                                            "protobuf": {"message": "shop.Event"}}}
    spec, container, rendered = _pod({"config": config,
                                      "protobufDescriptors": {source: "descriptors"}})
    (volume,) = [v for v in spec["volumes"] if v["name"] == "protobuf-descriptors"]
    items = [{"key": "features.desc", "path": "features.desc"}]
    assert volume == ({"name": "protobuf-descriptors",
                       "configMap": {"name": "descriptors", "items": items}}
                      if source == "configMap" else
                      {"name": "protobuf-descriptors",
                       "secret": {"secretName": "descriptors", "items": items}})
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "protobuf-descriptors"]
    assert mount == {"name": "protobuf-descriptors", "readOnly": True,
                     "mountPath": "/etc/streamdrift/protobuf"}
    assert rendered["input"] == {"format": "protobuf", "protobuf": {
        "message": "shop.Event", "descriptor_set": "/etc/streamdrift/protobuf/features.desc"}}
    assert not {"registry-auth", "registry-tls"} & {v["name"] for v in spec["volumes"]}


def test_without_registry_values_the_config_s_input_is_left_alone():
    # Nothing set: no input section appears (the defaults' config is the user's).
    _, container, config = _pod({})
    assert "input" not in config
    assert not {"registry-auth", "registry-tls", "protobuf-descriptors"} & {
        m["name"] for m in container["volumeMounts"]}
    # Without the Secrets, the paths the config names itself are kept.
    _, _, config = _pod({"config": _REGISTRY_CONFIG})
    assert config["input"] == _REGISTRY_CONFIG["input"]


def test_static_membership_comes_with_the_stateful_set_only():
    def instance_env(values: dict[str, Any]) -> list[dict[str, Any]]:
        container = _workload(render(values))["spec"]["template"]["spec"]["containers"][0]
        return [e for e in container["env"] if e["name"] == "STREAMDRIFT_KAFKA_GROUP_INSTANCE_ID"]

    assert instance_env(VALUES["defaults"]) == []
    assert instance_env(VALUES["everything"]) == [{
        "name": "STREAMDRIFT_KAFKA_GROUP_INSTANCE_ID",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


@pytest.mark.parametrize(("values", "message"), [
    ({"kind": "Job"}, "/kind"),
    ({"config": {"kafka": {"bootstrap_servers": "k", "sasl_password": "x"}, "features": []}},
     "sasl_password"),
    ({"replicas": 3}, "replicas"),
    ({"config": {"kafka": {"bootstrap_servers": "k"}, "features": [],
                 "input": {"schema_registry": {"url": "http://r", "password": "x"}}}},
     "password"),
    ({"protobufDescriptors": {"configMap": "a", "secret": "b"}}, "protobufDescriptors"),
    ({"schemaRegistryAuth": {"passwordSecret": "registry-pw"}}, "passwordSecret"),
    ({"image": {"repository": "r", "digest": "latest"}}, "digest"),
])
def test_the_values_schema_refuses_what_would_not_work(values, message):
    with helm_python.Chart.load(CHART) as chart, \
            pytest.raises(helm_python.HelmValuesError, match=message):
        chart.validate_schema(values)


# ---- the Compose file ---------------------------------------------------------------------------

def test_the_compose_file_is_valid_and_wires_the_loop(tmp_path):
    compose = DEPLOY / "compose.yaml"
    result = subprocess.run([_tool("docker-compose"), "-f", str(compose), "config", "-q"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(compose.read_text())["services"]
    assert set(services) == {"kafka", "topic", "streamdrift", "producer", "prometheus",
                             "alertmanager", "grafana"}
    assert services["streamdrift"]["build"] == {"context": "..",
                                               "dockerfile": "deploy/Dockerfile"}
    assert "age@120s" in services["producer"]["command"]
    # Every file it mounts exists, relative to the compose file.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (compose.parent / source).exists(), source


def test_the_compose_baseline_is_the_one_its_generator_builds():
    fresh = _load_script(DEPLOY / "compose" / "generate_baseline.py").build().to_json()
    shipped = json.loads((DEPLOY / "compose" / "baseline.json").read_text())
    assert shipped["features"] == fresh["features"], \
        "deploy/compose/baseline.json is stale: run python deploy/compose/generate_baseline.py"
