"""The configuration: read once from YAML, checked as a whole, frozen.

``load_config`` is the only place that reads YAML. Every problem found is gathered into one
``ConfigError`` whose lines each name the key path, the rule and the value. Unknown keys are
rejected so that a typo never silently falls back to a default. Relative paths resolve against
the config file's folder. Connection settings and secrets may come from the environment
(``ENVIRONMENT_OVERRIDES``); secrets never appear in the YAML, in a repr or in a log line.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import yaml

from streamdrift.errors import ConfigError, join_problems

if TYPE_CHECKING:
    import ssl

FeatureType = Literal["numeric", "categorical"]
DetectorMethod = Literal["adwin", "page_hinkley", "kswin", "mixture_cusum", "none"]
TimeUnit = Literal["s", "ms", "iso"]
InputFormat = Literal["json", "avro", "protobuf"]
INPUT_FORMATS: tuple[str, ...] = ("json", "avro", "protobuf")

# Environment variable -> key path. Applied before validation, so a bad value is reported
# against the variable that supplied it.
ENVIRONMENT_OVERRIDES: dict[str, tuple[str, str]] = {
    "STREAMDRIFT_KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "STREAMDRIFT_KAFKA_TOPIC": ("kafka", "topic"),
    "STREAMDRIFT_KAFKA_GROUP_ID": ("kafka", "group_id"),
    # A StatefulSet sets it from the pod's name (static membership).
    "STREAMDRIFT_KAFKA_GROUP_INSTANCE_ID": ("kafka", "group_instance_id"),
    "STREAMDRIFT_KAFKA_SECURITY_PROTOCOL": ("kafka", "security_protocol"),
    "STREAMDRIFT_KAFKA_SASL_MECHANISM": ("kafka", "sasl_mechanism"),
    "STREAMDRIFT_KAFKA_SASL_USERNAME": ("kafka", "sasl_username"),
    "STREAMDRIFT_KAFKA_CLIENT": ("kafka", "client"),
    "STREAMDRIFT_METRICS_PORT": ("metrics", "port"),
    "STREAMDRIFT_METRICS_BIND_ADDRESS": ("metrics", "bind_address"),
    "STREAMDRIFT_METRICS_WEB_CONFIG_FILE": ("metrics", "web_config_file"),
    "STREAMDRIFT_BASELINE_PATH": ("baseline", "path"),
    "STREAMDRIFT_INPUT_FORMAT": ("input", "format"),
}
SASL_PASSWORD_ENV = "STREAMDRIFT_KAFKA_SASL_PASSWORD"
# input.schema_registry is a level deeper than the overrides above: read by its parser.
SCHEMA_REGISTRY_URL_ENV = "STREAMDRIFT_SCHEMA_REGISTRY_URL"
SCHEMA_REGISTRY_PASSWORD_ENV = "STREAMDRIFT_SCHEMA_REGISTRY_PASSWORD"

# What text means "missing" in a numeric feature unless the feature says otherwise (case is
# ignored). A categorical feature has none by default: "NA" is Namibia, "None" a plan name.
NUMERIC_MISSING_TEXT: tuple[str, ...] = ("", "NA", "N/A", "NaN", "null", "None")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# The most bins a numeric feature may have (baseline.bins, or a feature's own).
MAX_BINS = 10_000
_INTEGER_TEXT = re.compile(r"^\s*-?\d+\s*$")
# Key names whose values are never echoed in an error, even where the key is unknown.
_SECRET_LIKE = re.compile(r"pass|pasw|pwd|secret|token|credential", re.IGNORECASE)


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str | None = "features"
    topic_pattern: str | None = None
    group_id: str = "streamdrift"
    # Static membership (KIP-345): a member that comes back under the same id within the
    # session timeout gets its partitions back without a rebalance.
    group_instance_id: str | None = None
    client_id: str = "streamdrift"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "latest"
    max_poll_records: int = 1000
    dead_letter_topic: str | None = None
    connect_timeout_s: float = 5.0
    session_timeout_s: float = 10.0
    client: Literal["kafka-python", "confluent"] = "kafka-python"


@dataclass(frozen=True)
class FeatureSpec:
    """One monitored feature: where to find it in a message and how to bin it."""

    name: str
    path: tuple[str, ...]
    type: FeatureType
    bins: int | None = None
    threshold: float | None = None
    min_samples: int | None = None
    # Values that mean "missing" for this feature besides null and absent (None: the
    # built-in rule). Text for categorical features (compared with the category's text);
    # for numeric ones, text (case ignored) and numbers (sentinels such as -999).
    missing_values: tuple[str | float, ...] | None = None

    @property
    def missing_tokens(self) -> tuple[str | float, ...]:
        """``missing_values``, or the built-in rule: ``NUMERIC_MISSING_TEXT`` for a numeric
        feature, nothing for a categorical one ("NA" is Namibia, "None" a plan's name)."""
        if self.missing_values is not None:
            return self.missing_values
        return NUMERIC_MISSING_TEXT if self.type == "numeric" else ()


@dataclass(frozen=True)
class WindowConfig:
    """A sliding window of ``panes`` panes.

    Either ``size`` messages (``duration_s`` is None) or ``duration_s`` seconds of event time
    (``size`` is None), taken from ``time_field`` in the message or, in the service, from the
    Kafka record timestamp when ``time_field`` is None.
    """

    size: int | None = 10_000
    duration_s: float | None = None
    panes: int = 10
    time_field: tuple[str, ...] | None = None
    time_unit: TimeUnit = "s"

    @property
    def is_event_time(self) -> bool:
        return self.duration_s is not None

    def describe(self) -> str:
        if self.duration_s is not None:
            return f"{format_duration(self.duration_s)} of event time in {self.panes} panes"
        return f"{self.size} messages in {self.panes} panes"


@dataclass(frozen=True)
class BaselineConfig:
    path: Path = Path("baseline.json")
    bins: int = 20
    max_categories: int = 50
    smoothing: float = 0.5


# min_samples: "auto" derives each feature's from its threshold, bins and reference size.
AUTO: Literal["auto"] = "auto"


@dataclass(frozen=True)
class DivergenceConfig:
    threshold: float = 0.1
    min_samples: int | Literal["auto"] = AUTO
    # A feature is drift when its KL is above its threshold and the two-sample test rejects
    # "no change" at this level, Holm-corrected over the features of one report.
    alpha: float = 0.001


@dataclass(frozen=True)
class DetectorConfig:
    """The change detector: a river detector over each feature's KL series (``params`` are
    its parameters), or ``mixture_cusum``, the sequential test on every value, which raises
    a false alarm on a feature once in ``arl0`` of its values at most (members: one per
    prior strength)."""

    method: DetectorMethod = "adwin"
    params: Mapping[str, float | int] = field(default_factory=dict)
    arl0: float = 1_000_000.0
    # A weak prior for large shifts, a strong one for small shifts.
    prior_strengths: tuple[float, ...] = (100.0, 400.0)

    @property
    def sequential(self) -> bool:
        return self.method == "mixture_cusum"


@dataclass(frozen=True)
class ScanConfig:
    """The multi-scale scan: at each pane close, the two-sample test of the last 1, 2, 4,
    ... panes and of the whole window, at levels that keep its false alarms on a feature
    under ``false_alarms_per_million`` per million messages."""

    enabled: bool = True
    false_alarms_per_million: float = 1.0


@dataclass(frozen=True)
class SchemaRegistryConfig:
    """A Confluent-compatible Schema Registry (Confluent's, Apicurio's /apis/ccompat/v7,
    Redpanda's, Karapace): where the writer schemas of framed Avro records are fetched."""

    url: str
    username: str | None = None
    password: Secret | None = None
    ca_file: Path | None = None
    timeout_s: float = 5.0
    # Writer schemas kept in memory, by id (a topic rarely has more than a few versions).
    cache_size: int = 1000
    # Waits between attempts while the registry does not answer: doubling up to this.
    retry_backoff_max_s: float = 30.0


@dataclass(frozen=True)
class ProtobufConfig:
    """The message type of a Protobuf topic, from a compiled descriptor set (``protoc
    --include_imports --descriptor_set_out=FILE``)."""

    descriptor_set: Path
    message: str


@dataclass(frozen=True)
class InputConfig:
    max_message_bytes: int = 1_048_576
    # Values that mean "missing" for every feature that does not list its own (None: the
    # built-in rule, FeatureSpec.missing_tokens). Copied into those features' specs.
    missing_values: tuple[str | float, ...] | None = None
    format: InputFormat = "json"
    # (topic, format) for the topics of a kafka.topic_pattern that are not in ``format``.
    formats_by_topic: tuple[tuple[str, InputFormat], ...] = ()
    schema_registry: SchemaRegistryConfig | None = None
    protobuf: ProtobufConfig | None = None

    def formats(self) -> set[str]:
        """Every format the topics may carry."""
        return {self.format, *(fmt for _, fmt in self.formats_by_topic)}

    def format_of(self, topic: str | None) -> InputFormat:
        return dict(self.formats_by_topic).get(topic, self.format) if topic else self.format


ClientAuthType = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
# The names of the exporter-toolkit format, and the ssl.TLSVersion member of each.
_TLS_VERSIONS = {"TLS10": "TLSv1", "TLS11": "TLSv1_1", "TLS12": "TLSv1_2", "TLS13": "TLSv1_3"}
# A bcrypt hash as htpasswd -B, Go's x/crypto/bcrypt and the bcrypt package write it: a
# version, a cost from 4 to 31, then 22 characters of salt (16 bytes: the last character
# carries 2 bits, so it is one of . O e u) and 31 of digest.
_BCRYPT_HASH = re.compile(
    r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{21}[.Oeu][./A-Za-z0-9]{31}$")


@dataclass(frozen=True)
class WebTLSConfig:
    """``tls_server_config`` of a web-config file, its paths resolved against the file's
    folder."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: ClientAuthType = "NoClientCert"
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context with the certificate loaded; raises ``OSError`` or
        ``ssl.SSLError`` when a file cannot be read or does not fit."""
        import ssl  # here: loading it costs every command 10 ms at start

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion[_TLS_VERSIONS[self.min_version]]
        context.maximum_version = ssl.TLSVersion[_TLS_VERSIONS[self.max_version]]
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=self.client_ca_file)
        context.verify_mode = {"NoClientCert": ssl.CERT_NONE,
                               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
                               }[self.client_auth_type]
        return context


@dataclass(frozen=True)
class WebConfig:
    """A web-config file in the Prometheus exporter-toolkit format: TLS for the metrics
    server, and the users of basic authentication with their bcrypt hashes (never shown)."""

    path: Path
    tls: WebTLSConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class MetricsConfig:
    port: int = 9108
    bind_address: str = "0.0.0.0"
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    web_config_file: Path | None = None
    # What web_config_file holds, read and checked at load.
    web_config: WebConfig | None = None


@dataclass(frozen=True)
class ServiceConfig:
    """How ``streamdrift run`` paces its work."""

    publish_interval_s: float = 1.0
    lag_interval_s: float = 5.0
    # Counted offsets are committed at most this long after counting (0: after every batch).
    commit_interval_s: float = 1.0
    refill: bool = True
    refill_timeout_s: float = 60.0
    baseline_watch_interval_s: float = 5.0
    log_format: Literal["logfmt", "json"] = "logfmt"


@dataclass(frozen=True)
class Config:
    features: tuple[FeatureSpec, ...]
    kafka: KafkaConfig = KafkaConfig()
    window: WindowConfig = WindowConfig()
    baseline: BaselineConfig = BaselineConfig()
    divergence: DivergenceConfig = DivergenceConfig()
    detector: DetectorConfig = DetectorConfig()
    scan: ScanConfig = ScanConfig()
    input: InputConfig = InputConfig()
    metrics: MetricsConfig = MetricsConfig()
    service: ServiceConfig = ServiceConfig()
    source: Path | None = None

    def bins_for(self, feature: FeatureSpec) -> int:
        return feature.bins if feature.bins is not None else self.baseline.bins

    def threshold_for(self, feature: FeatureSpec) -> float:
        return feature.threshold if feature.threshold is not None else self.divergence.threshold

    def min_samples_for(self, feature: FeatureSpec) -> int | None:
        """The feature's min_samples, or None for "auto" (derived from the baseline)."""
        if feature.min_samples is not None:
            return feature.min_samples
        configured = self.divergence.min_samples
        return None if configured == AUTO else int(configured)


def parse_duration_s(text: str) -> float:
    """Seconds in a duration such as ``"15m"``, ``"90s"``, ``"1.5h"``, ``"500ms"``, ``"2d"``.

    >>> parse_duration_s("15m"), parse_duration_s("500ms")
    (900.0, 0.5)
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration like '15m' or '1h': {text!r}")
    return float(match.group(1)) * _DURATION_UNIT_S[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration.

    >>> format_duration(900.0), format_duration(0.5), format_duration(5400.0)
    ('15m', '500ms', '90m')
    """
    for unit in ("d", "h", "m", "s"):
        count = seconds / _DURATION_UNIT_S[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000)}ms"


def parse_time_ms(text: str, now_s: float) -> int:
    """A moment in milliseconds since the epoch: ISO-8601 (``2026-05-01``,
    ``2026-05-01T12:00:00+02:00``; UTC when no offset is given), ``now``, or a duration
    before ``now_s`` (``90d``, ``12h``).

    >>> parse_time_ms("2026-01-01", 0), parse_time_ms("1h", 7200.0), parse_time_ms("now", 5.0)
    (1767225600000, 3600000, 5000)
    """
    text = text.strip()
    if text == "now":
        return int(now_s * 1000)
    if _DURATION.match(text):
        return int((now_s - parse_duration_s(text)) * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time like 2026-05-01, 2026-05-01T12:00:00Z, now or 30d: "
                         f"{text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, check and freeze the configuration at ``path``.

    Raises ``ConfigError`` listing every problem found, each naming its key path.
    """
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {config_path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {config_path} is not UTF-8 text (byte {error.start + 1} "
                          f"is {error.object[error.start:error.start + 1]!r})") from None
    raw = read_yaml(text, config_path)
    return parse_config(raw, base_dir=config_path.resolve().parent, environ=environ,
                        source=config_path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key repeated in one mapping is an error rather than
    the last value silently winning, and that a value Python cannot make (``2024-02-30``,
    ``!!int ten``, ``!!int`` on nothing) is an error at its place rather than Python's
    exception."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError, LookupError) as error:
            kind = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this as {kind} ({error})", node.start_mark) from None

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # e.g. !!set on a scalar: the base says so
            return super().construct_mapping(node, deep)  # type: ignore[arg-type]
        first_seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                earlier = first_seen.get(key)
            except TypeError:  # an unhashable key: the base class says what is wrong
                continue
            if earlier is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {earlier.line + 1})",
                    key_node.start_mark)
            first_seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def read_yaml(text: str, path: Path) -> object:
    """The YAML document in ``text``; a syntax error or a repeated key is a ``ConfigError``
    that names ``path``, the line and the column (``config.yaml:7:3: ...``), and so is a
    document nested too deeply to read."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = error.problem or "not valid YAML"
        context = ""
        if error.context and error.context_mark is not None and error.problem_mark is not None:
            context = f" ({error.context} at line {error.context_mark.line + 1})"
        raise ConfigError(f"{where}: {problem}{context}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    except RecursionError:  # PyYAML builds nested collections by recursion
        raise ConfigError(f"{path} is nested too deeply to be a config (hundreds of "
                          "levels)") from None


def parse_config(
    raw: object,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
    source: Path | None = None,
) -> Config:
    """Check and freeze an already-parsed mapping (the YAML document)."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the config must be a mapping of sections (got {type(raw).__name__})")
    document = {key: dict(value) if isinstance(value, Mapping) else value
                for key, value in raw.items()}
    _apply_environment(document, environ, problems)

    top = _Section(document, "", problems)
    kafka = _parse_kafka(top.section("kafka"), base_dir, environ, problems)
    features = _parse_features(top.take("features", None), problems)
    window = _parse_window(top.section("window"))
    baseline = _parse_baseline(top.section("baseline"), base_dir)
    divergence = _parse_divergence(top.section("divergence"))
    detector = _parse_detector(top.section("detector"))
    scan = _parse_scan(top.section("scan"))
    input_config = _parse_input(top.section("input"), base_dir, environ, problems)
    if features is not None and input_config.missing_values is not None:
        features = tuple(spec if spec.missing_values is not None else dataclasses.replace(
            spec, missing_values=input_config.missing_values) for spec in features)
    metrics = _parse_metrics(top.section("metrics"), base_dir)
    service = _parse_service(top.section("service"))
    top.reject_unknown()

    if problems:
        # A value from the environment is reported against the variable that set it.
        for variable, (section, key) in ENVIRONMENT_OVERRIDES.items():
            if variable in environ:
                problems = [f"{problem} (from {variable})"
                            if problem.startswith(f"{section}.{key} ") else problem
                            for problem in problems]
        header = f"invalid configuration{f' in {source}' if source else ''}:"
        raise ConfigError(join_problems(header, problems), tuple(problems))
    assert features is not None  # a missing features list is a reported problem above
    return Config(
        features=features,
        kafka=kafka,
        window=window,
        baseline=baseline,
        divergence=divergence,
        detector=detector,
        scan=scan,
        input=input_config,
        metrics=metrics,
        service=service,
        source=source,
    )


class _Section:
    """Reads typed values out of one mapping, recording each problem with its key path."""

    def __init__(self, mapping: object, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            self.report("", "must be a mapping", mapping)
            mapping = {}
        self.mapping: dict[str, Any] = dict(mapping)
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def report(self, name: str, rule: str, value: object) -> None:
        where = self.key(name) if name else (self.path or "the config")
        self.problems.append(f"{where} {rule} (got {value!r})")

    def take(self, name: str, default: Any) -> Any:
        self.seen.add(name)
        return self.mapping.get(name, default)

    def section(self, name: str) -> _Section:
        return _Section(self.take(name, None), self.key(name), self.problems)

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        value = self.take(name, default)
        if isinstance(value, str) and _INTEGER_TEXT.match(value):
            value = int(value)  # environment overrides arrive as text
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(name, "must be an integer", value)
            return default
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.report(name, f"must be {bound}", value)
            return default
        return value

    def optional_integer(self, name: str, low: int, high: int | None = None) -> int | None:
        if self.mapping.get(name) is None:
            self.seen.add(name)
            return None
        return self.integer(name, low, low, high)

    def number(self, name: str, default: float, low: float, low_inclusive: bool = True) -> float:
        value = self.take(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.report(name, "must be a number", value)
            return default
        try:
            number = float(value)
        except OverflowError:  # an int beyond a float's range
            number = math.inf
        below = number < low if low_inclusive else number <= low
        if not math.isfinite(number) or below:
            self.report(name, f"must be a finite number {'>=' if low_inclusive else '>'} {low}",
                        value)
            return default
        return number

    def optional_number(self, name: str, low: float, low_inclusive: bool = True) -> float | None:
        if self.mapping.get(name) is None:
            self.seen.add(name)
            return None
        return self.number(name, low, low, low_inclusive)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.take(name, default)
        if not isinstance(value, bool):
            self.report(name, "must be true or false", value)
            return default
        return value

    def text(self, name: str, default: str) -> str:
        value = self.take(name, default)
        if not isinstance(value, str) or not value.strip():
            self.report(name, "must be a non-empty string", value)
            return default
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.take(name, None)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.report(name, "must be a non-empty string or absent", value)
            return None
        return value

    def optional_missing_values(self, name: str) -> tuple[str | float, ...] | None:
        value = self.take(name, None)
        if value is None:
            return None
        if not isinstance(value, list) or not all(
                isinstance(item, str) or (isinstance(item, int | float)
                                          and not isinstance(item, bool)) for item in value):
            self.report(name, "must be a list of strings and numbers", value)
            return None
        if any(isinstance(item, int) and not _fits_float(item) for item in value):
            self.report(name, "must not hold a number beyond a float's range", value)
            return None
        return tuple(float(item) if not isinstance(item, str) else item for item in value)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.take(name, default)
        if value not in choices:
            self.report(name, f"must be one of {', '.join(choices)}", value)
            return default
        return str(value)

    def optional_path(self, name: str, base_dir: Path) -> Path | None:
        value = self.optional_text(name)
        return None if value is None else resolve_path(value, base_dir, self.key(name))

    def reject_unknown(self) -> None:
        for name in sorted(set(self.mapping) - self.seen, key=str):
            value = self.mapping[name]
            if _SECRET_LIKE.search(str(name)):
                # A misspelt sasl_password, say: the value may be the password itself.
                self.problems.append(f"{self.key(name)} is not a known key (value hidden)")
            elif isinstance(value, Mapping | list):
                # A misspelt section, whose keys are named one by one when it is spelt right.
                self.problems.append(f"{self.key(name)} is not a known key")
            else:
                self.report(name, "is not a known key", value)


def _fits_float(number: int) -> bool:
    """Whether an int converts to a float (Python's ints have no bound; floats stop near
    1.8e308)."""
    try:
        float(number)
    except OverflowError:
        return False
    return True


def resolve_path(value: str | Path, base_dir: Path, key: str = "a path") -> Path:
    """An absolute path, with a relative one taken against ``base_dir`` (the config's folder)
    and ``~`` or ``~user`` expanded; a ``~user`` with no home directory is a ``ConfigError``
    naming ``key``."""
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        user = str(value).split("/", 1)[0]
        raise ConfigError(f"{key} {str(value)!r}: {user} names no home directory on this "
                          "machine") from None
    return path if path.is_absolute() else base_dir / path


def _apply_environment(
    document: dict[str, Any], environ: Mapping[str, str], problems: list[str]
) -> None:
    for variable, (section, key) in ENVIRONMENT_OVERRIDES.items():
        if variable in environ:
            target = document.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = environ[variable]
            else:
                problems.append(f"{section} must be a mapping to apply {variable}")


def _password(section: _Section, key: str, variable: str, base_dir: Path,
              environ: Mapping[str, str], problems: list[str]) -> Secret | None:
    """A password from the environment ``variable`` or from the file named by
    ``{key}_file``, never from ``key`` itself (a config file is read by many, and copied)."""
    if key in section.mapping:
        section.take(key, None)
        problems.append(f"{section.key(key)} must not be written in the config; set "
                        f"{variable} or name a file in {section.key(key)}_file (value hidden)")
    password_file = section.optional_path(f"{key}_file", base_dir)
    if variable in environ:
        return Secret(environ[variable])
    if password_file is None:
        return None
    try:
        return Secret(password_file.read_text(encoding="utf-8").strip())
    except OSError as error:
        problems.append(f"{section.key(key)}_file cannot be read: {password_file} "
                        f"({error.strerror})")
    except UnicodeDecodeError:
        problems.append(f"{section.key(key)}_file is not UTF-8 text: {password_file}")
    return None


def _parse_kafka(
    section: _Section, base_dir: Path, environ: Mapping[str, str], problems: list[str]
) -> KafkaConfig:
    defaults = KafkaConfig()
    topic = section.optional_text("topic")
    topic_pattern = section.optional_text("topic_pattern")
    if topic is not None and topic_pattern is not None:
        section.report("topic_pattern", "cannot be set together with kafka.topic", topic_pattern)
    if topic is None and topic_pattern is None:
        topic = defaults.topic
    if topic_pattern is not None:
        try:
            re.compile(topic_pattern)
        except re.error as error:
            section.report("topic_pattern", f"must be a regular expression ({error})",
                           topic_pattern)
    password = _password(section, "sasl_password", SASL_PASSWORD_ENV, base_dir, environ,
                         problems)
    protocols = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    mechanisms = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
    protocol = section.choice("security_protocol", defaults.security_protocol, protocols)
    mechanism = section.optional_text("sasl_mechanism")
    if mechanism is not None and mechanism not in mechanisms:
        section.report("sasl_mechanism", f"must be one of {', '.join(mechanisms)}", mechanism)
    if protocol.startswith("SASL") and mechanism is None:
        section.report("sasl_mechanism", f"is required with security_protocol {protocol}", None)
    kafka = KafkaConfig(
        bootstrap_servers=section.text("bootstrap_servers", defaults.bootstrap_servers),
        topic=topic,
        topic_pattern=topic_pattern,
        group_id=section.text("group_id", defaults.group_id),
        group_instance_id=section.optional_text("group_instance_id"),
        client_id=section.text("client_id", defaults.client_id),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=section.optional_text("sasl_username"),
        sasl_password=password,
        ssl_cafile=section.optional_path("ssl_cafile", base_dir),
        ssl_certfile=section.optional_path("ssl_certfile", base_dir),
        ssl_keyfile=section.optional_path("ssl_keyfile", base_dir),
        auto_offset_reset=cast(Literal["earliest", "latest"], section.choice(
            "auto_offset_reset", defaults.auto_offset_reset, ("earliest", "latest"))),
        max_poll_records=section.integer("max_poll_records", defaults.max_poll_records, 1,
                                         1_000_000),
        dead_letter_topic=section.optional_text("dead_letter_topic"),
        connect_timeout_s=section.number("connect_timeout_s", defaults.connect_timeout_s, 0.0,
                                         low_inclusive=False),
        session_timeout_s=section.number("session_timeout_s", defaults.session_timeout_s, 1.0),
        client=cast(Literal["kafka-python", "confluent"], section.choice(
            "client", defaults.client, ("kafka-python", "confluent"))),
    )
    section.reject_unknown()
    return kafka


def split_path(text: str) -> tuple[str, ...]:
    """A dot path as its keys: ``"usage.session_length"`` -> ``("usage", "session_length")``."""
    return tuple(text.split("."))


def _parse_features(raw: object, problems: list[str]) -> tuple[FeatureSpec, ...] | None:
    if raw is None:
        problems.append("features is required: a list of {name, type[, path, bins, threshold]}")
        return None
    if not isinstance(raw, list) or not raw:
        problems.append(f"features must be a non-empty list (got {raw!r})")
        return None
    specs: list[FeatureSpec] = []
    seen_names: set[str] = set()
    for index, item in enumerate(raw):
        section = _Section(item, f"features[{index}]", problems)
        name = section.take("name", None)
        if not isinstance(name, str) or not name:
            section.report("name", "is required: a non-empty string", name)
            name = f"features[{index}]"
        elif not _FEATURE_NAME.match(name):
            section.report("name", "must start with a letter or _ and use only letters, digits, "
                           "_ . -", name)
        elif name in seen_names:
            section.report("name", "is used by an earlier feature", name)
        seen_names.add(name)
        path_text = section.take("path", name)
        if not isinstance(path_text, str) or not all(split_path(path_text)):
            section.report("path", "must be a dot path such as usage.session_length", path_text)
            path_text = name
        feature_type = section.choice("type", "numeric", ("numeric", "categorical"))
        if feature_type == "categorical" and section.mapping.get("bins") is not None:
            section.report("bins", "applies to numeric features only (a categorical "
                           "feature has a bin per kept category: baseline.max_categories)",
                           section.mapping["bins"])
        specs.append(
            FeatureSpec(
                name=name,
                path=split_path(path_text),
                type=cast(FeatureType, feature_type),
                bins=section.optional_integer("bins", 1, MAX_BINS),
                threshold=section.optional_number("threshold", 0.0, low_inclusive=False),
                min_samples=section.optional_integer("min_samples", 1),
                missing_values=section.optional_missing_values("missing_values"),
            )
        )
        section.reject_unknown()
    return tuple(specs)


def _parse_window(section: _Section) -> WindowConfig:
    defaults = WindowConfig()
    raw_size = section.take("size", defaults.size)
    panes = section.integer("panes", defaults.panes, 1, 100_000)
    size: int | None = None
    duration_s: float | None = None
    if isinstance(raw_size, str):
        try:
            duration_s = parse_duration_s(raw_size)
        except ValueError as error:
            section.report("size", f"must be a message count or a duration ({error})", raw_size)
        if duration_s is not None and not 0 < duration_s < math.inf:
            section.report("size", "must be a positive, finite duration", raw_size)
            duration_s = None
    elif isinstance(raw_size, int) and not isinstance(raw_size, bool) and raw_size >= 1:
        size = raw_size
        if size % panes != 0:
            section.report("size", f"must be a multiple of window.panes ({panes}) so that every "
                           "pane holds the same number of messages", raw_size)
    else:
        section.report("size", "must be a positive message count or a duration like '15m'",
                       raw_size)
    if size is None and duration_s is None:
        size = defaults.size
    time_field_text = section.optional_text("time_field")
    time_unit = section.choice("time_unit", defaults.time_unit, ("s", "ms", "iso"))
    window = WindowConfig(
        size=size,
        duration_s=duration_s,
        panes=panes,
        time_field=None if time_field_text is None else split_path(time_field_text),
        time_unit=cast(TimeUnit, time_unit),
    )
    section.reject_unknown()
    return window


def _parse_baseline(section: _Section, base_dir: Path) -> BaselineConfig:
    defaults = BaselineConfig()
    path_text = section.text("path", str(defaults.path))
    baseline = BaselineConfig(
        path=resolve_path(path_text, base_dir, "baseline.path"),
        bins=section.integer("bins", defaults.bins, 1, MAX_BINS),
        max_categories=section.integer("max_categories", defaults.max_categories, 1, 100_000),
        smoothing=section.number("smoothing", defaults.smoothing, 0.0, low_inclusive=False),
    )
    section.reject_unknown()
    return baseline


def _parse_divergence(section: _Section) -> DivergenceConfig:
    defaults = DivergenceConfig()
    min_samples: int | Literal["auto"] = AUTO
    if section.mapping.get("min_samples", AUTO) == AUTO:
        section.take("min_samples", AUTO)
    else:
        min_samples = section.integer("min_samples", 1, 1)
    alpha = section.number("alpha", defaults.alpha, 0.0, low_inclusive=False)
    if alpha >= 1:
        section.report("alpha", "must be below 1", alpha)
        alpha = defaults.alpha
    divergence = DivergenceConfig(
        threshold=section.number("threshold", defaults.threshold, 0.0, low_inclusive=False),
        min_samples=min_samples,
        alpha=alpha,
    )
    section.reject_unknown()
    return divergence


_DETECTOR_PARAMS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "adwin": {
        "delta": lambda v: 0 < v < 1,
        "clock": lambda v: isinstance(v, int) and v >= 1,
        "grace_period": lambda v: isinstance(v, int) and v >= 1,
        "min_window_length": lambda v: isinstance(v, int) and v >= 1,
        "max_buckets": lambda v: isinstance(v, int) and v >= 1,
    },
    "page_hinkley": {
        "min_instances": lambda v: isinstance(v, int) and v >= 1,
        "delta": lambda v: v >= 0,
        "threshold": lambda v: v > 0,
        "alpha": lambda v: 0 < v <= 1,
    },
    "kswin": {
        "alpha": lambda v: 0 < v < 1,
        "window_size": lambda v: isinstance(v, int) and v >= 2,
        "stat_size": lambda v: isinstance(v, int) and v >= 1,
        "seed": lambda v: isinstance(v, int),
    },
    "mixture_cusum": {},  # arl0 and prior_strengths: read by _parse_detector
    "none": {},
}


def _parse_detector(section: _Section) -> DetectorConfig:
    method = section.choice("method", "adwin", tuple(_DETECTOR_PARAMS))
    params_section = section.section("params")
    params: dict[str, float | int] = {}
    for name, check in _DETECTOR_PARAMS[method].items():
        value = params_section.take(name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not check(value):
            params_section.report(name, f"is not a valid {method} parameter value", value)
            continue
        params[name] = value
    if method == "kswin":
        # river's defaults where unset: a window of 100 values, a sample of 30 from it.
        window_size, stat_size = params.get("window_size", 100), params.get("stat_size", 30)
        if stat_size >= window_size:
            params_section.report("stat_size", f"must be smaller than window_size "
                                  f"({window_size}) for kswin", stat_size)
    defaults = DetectorConfig()
    arl0, prior_strengths = defaults.arl0, defaults.prior_strengths
    if method == "mixture_cusum":
        arl0 = params_section.number("arl0", defaults.arl0, 1.0, low_inclusive=False)
        raw_strengths = params_section.take("prior_strengths", list(defaults.prior_strengths))
        if (not isinstance(raw_strengths, list) or not raw_strengths
                or not all(isinstance(value, int | float) and not isinstance(value, bool)
                           and value > 0 for value in raw_strengths)):
            params_section.report("prior_strengths", "must be a list of positive numbers",
                                  raw_strengths)
        else:
            prior_strengths = tuple(float(value) for value in raw_strengths)
    params_section.reject_unknown()
    section.reject_unknown()
    return DetectorConfig(
        method=cast(DetectorMethod, method),
        params=params,
        arl0=arl0,
        prior_strengths=prior_strengths,
    )


def _parse_scan(section: _Section) -> ScanConfig:
    defaults = ScanConfig()
    scan = ScanConfig(
        enabled=section.boolean("enabled", defaults.enabled),
        false_alarms_per_million=section.number(
            "false_alarms_per_million", defaults.false_alarms_per_million, 0.0,
            low_inclusive=False),
    )
    section.reject_unknown()
    return scan


def _parse_input(section: _Section, base_dir: Path, environ: Mapping[str, str],
                 problems: list[str]) -> InputConfig:
    input_format = cast(InputFormat, section.choice("format", "json", INPUT_FORMATS))
    by_topic: list[tuple[str, InputFormat]] = []
    raw_by_topic = section.take("formats_by_topic", None)
    if raw_by_topic is not None:
        if not isinstance(raw_by_topic, Mapping) or not all(
                isinstance(topic, str) and topic for topic in raw_by_topic):
            section.report("formats_by_topic", "must map topic names to formats",
                           raw_by_topic)
        else:
            for topic, topic_format in raw_by_topic.items():
                if topic_format not in INPUT_FORMATS:
                    section.report(f"formats_by_topic.{topic}",
                                   f"must be one of {', '.join(INPUT_FORMATS)}", topic_format)
                else:
                    by_topic.append((topic, cast(InputFormat, topic_format)))
    formats = {input_format, *(fmt for _, fmt in by_topic)}
    registry = _parse_schema_registry(section.section("schema_registry"), base_dir, environ,
                                      problems)
    if "avro" in formats and registry is None:
        problems.append(f"input.schema_registry.url is required for Avro topics (set it or "
                        f"{SCHEMA_REGISTRY_URL_ENV})")
    protobuf = _parse_protobuf(section.section("protobuf"), base_dir)
    if "protobuf" in formats and protobuf is None:
        problems.append("input.protobuf.descriptor_set and input.protobuf.message are "
                        "required for Protobuf topics")
    config = InputConfig(
        max_message_bytes=section.integer("max_message_bytes", InputConfig().max_message_bytes,
                                          16),
        missing_values=section.optional_missing_values("missing_values"),
        format=input_format,
        formats_by_topic=tuple(by_topic),
        schema_registry=registry,
        protobuf=protobuf,
    )
    section.reject_unknown()
    return config


def _parse_schema_registry(section: _Section, base_dir: Path, environ: Mapping[str, str],
                           problems: list[str]) -> SchemaRegistryConfig | None:
    if SCHEMA_REGISTRY_URL_ENV in environ:
        section.mapping["url"] = environ[SCHEMA_REGISTRY_URL_ENV]
    url = section.optional_text("url")
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        section.report("url", "must be an http:// or https:// URL", url)
        url = None
    password = _password(section, "password", SCHEMA_REGISTRY_PASSWORD_ENV, base_dir, environ,
                         problems)
    defaults = SchemaRegistryConfig("")
    username = section.optional_text("username")
    ca_file = section.optional_path("ca_file", base_dir)
    timeout_s = section.number("timeout_s", defaults.timeout_s, 0.0, low_inclusive=False)
    cache_size = section.integer("cache_size", defaults.cache_size, 1, 1_000_000)
    backoff = section.number("retry_backoff_max_s", defaults.retry_backoff_max_s, 0.1)
    section.reject_unknown()
    if password is not None and username is None:
        problems.append("input.schema_registry.username is required with a password")
    if url is None:
        return None
    return SchemaRegistryConfig(url.rstrip("/"), username, password, ca_file, timeout_s,
                                cache_size, backoff)


def _parse_protobuf(section: _Section, base_dir: Path) -> ProtobufConfig | None:
    descriptor_set = section.optional_path("descriptor_set", base_dir)
    message = section.optional_text("message")
    if descriptor_set is not None and message is None:
        section.report("message", "is required with input.protobuf.descriptor_set", None)
    if message is not None and descriptor_set is None:
        section.report("descriptor_set", "is required with input.protobuf.message", None)
    section.reject_unknown()
    if descriptor_set is None or message is None:
        return None
    return ProtobufConfig(descriptor_set, message)


def _parse_metrics(section: _Section, base_dir: Path) -> MetricsConfig:
    defaults = MetricsConfig()
    web_config_file = section.optional_path("web_config_file", base_dir)
    metrics = MetricsConfig(
        port=section.integer("port", defaults.port, 0, 65535),
        bind_address=section.text("bind_address", defaults.bind_address),
        tls_certfile=section.optional_path("tls_certfile", base_dir),
        tls_keyfile=section.optional_path("tls_keyfile", base_dir),
        web_config_file=web_config_file,
        web_config=None if web_config_file is None else load_web_config(
            web_config_file, section.problems, "metrics.web_config_file "),
    )
    if (metrics.tls_certfile is None) != (metrics.tls_keyfile is None):
        section.report("tls_keyfile", "must be set together with metrics.tls_certfile",
                       metrics.tls_keyfile)
    if web_config_file is not None and metrics.tls_certfile is not None:
        section.report("tls_certfile", "cannot be set together with metrics.web_config_file "
                       "(set TLS in its tls_server_config)", metrics.tls_certfile)
    section.reject_unknown()
    return metrics


_WEB_CONFIG_KEYS = ("tls_server_config", "basic_auth_users")
_WEB_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
                 "max_version")
# Keys of the exporter-toolkit format that streamdrift does not implement: refused by name,
# so that a file written for another exporter never loses a setting silently.
_WEB_UNSUPPORTED = {
    "http_server_config": "streamdrift serves HTTP/1.1 with its own headers",
    "rate_limit": "put a rate limit in front of the server if you need one",
    "tls_server_config.cert": "name a file in tls_server_config.cert_file",
    "tls_server_config.key": "name a file in tls_server_config.key_file",
    "tls_server_config.client_ca": "name a file in tls_server_config.client_ca_file",
    "tls_server_config.cipher_suites": "the TLS library's defaults are used",
    "tls_server_config.curve_preferences": "the TLS library's defaults are used",
    "tls_server_config.prefer_server_cipher_suites": "the TLS library's defaults are used",
    "tls_server_config.client_allowed_sans": "any certificate signed by client_ca_file is "
                                             "accepted",
}
_CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")


def load_web_config(path: Path, problems: list[str] | None = None,
                    prefix: str = "") -> WebConfig | None:
    """Read and check a web-config file (Prometheus exporter-toolkit format).

    Problems are appended to ``problems``, each as ``{prefix}{path}: {key} {rule}``, and
    the result is None if there were any; without a ``problems`` list they are raised as
    one ``ConfigError``. Values are never echoed: a password hash, or a password written
    where its hash belongs, stays out of every message.
    """
    found: list[str] = []
    web_config = _read_web_config(path, found)
    if problems is None:
        if found:
            raise ConfigError(join_problems(f"invalid web config {path}:", found),
                              tuple(f"{path}: {problem}" for problem in found))
        return web_config
    problems.extend(f"{prefix}{path}: {problem}" for problem in found)
    return None if found else web_config


def _read_web_config(path: Path, problems: list[str]) -> WebConfig | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        problems.append(f"cannot be read ({error.strerror})")
        return None
    except UnicodeDecodeError:
        problems.append("is not UTF-8 text")
        return None
    try:
        raw = read_yaml(text, path)
    except ConfigError as error:
        problems.append(f"is not valid YAML ({str(error).removeprefix(f'{path}:').strip()})")
        return None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"must be a mapping of tls_server_config and basic_auth_users "
                        f"(got a {type(raw).__name__})")
        return None
    _refuse_unknown_web_keys(raw, "", _WEB_CONFIG_KEYS, problems)
    tls = _parse_web_tls(raw.get("tls_server_config"), path.parent, problems)
    users = _parse_web_users(raw.get("basic_auth_users"), problems)
    return WebConfig(path=path, tls=tls, basic_auth_users=users)


def _refuse_unknown_web_keys(mapping: Mapping[Any, Any], parent: str, known: tuple[str, ...],
                             problems: list[str]) -> None:
    for key in sorted(set(mapping) - set(known), key=str):
        name = f"{parent}{key}"
        reason = _WEB_UNSUPPORTED.get(name)
        if reason is not None:
            problems.append(f"{name} is not supported by streamdrift ({reason})")
        else:
            problems.append(f"{name} is not a known key (known: {', '.join(known)})")


def _parse_web_tls(raw: object, base_dir: Path, problems: list[str]) -> WebTLSConfig | None:
    import ssl  # only when there is a web-config file: see WebTLSConfig.server_context

    if raw is None or raw == {}:  # as in Prometheus' exporters: no TLS settings, no TLS
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"tls_server_config must be a mapping (got a {type(raw).__name__})")
        return None
    _refuse_unknown_web_keys(raw, "tls_server_config.", _WEB_TLS_KEYS, problems)
    before = len(problems)

    def path_of(key: str, required: bool) -> Path | None:
        value = raw.get(key)
        if value is None:
            if required:
                problems.append(f"tls_server_config.{key} is required")
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(f"tls_server_config.{key} must be a file name")
            return None
        path = resolve_path(value, base_dir, f"tls_server_config.{key}")
        if not path.is_file():
            problems.append(f"tls_server_config.{key} {path} is not a readable file")
        return path

    def choice(key: str, default: str, choices: tuple[str, ...]) -> str:
        value = raw.get(key, default)
        if value not in choices:
            problems.append(f"tls_server_config.{key} must be one of {', '.join(choices)} "
                            f"(got {value!r})")
            return default
        return str(value)

    cert_file = path_of("cert_file", required=True)
    key_file = path_of("key_file", required=True)
    client_ca_file = path_of("client_ca_file", required=False)
    client_auth_type = raw.get("client_auth_type", "NoClientCert")
    if client_auth_type in _CLIENT_AUTH_UNSUPPORTED:
        problems.append(f"tls_server_config.client_auth_type {client_auth_type} is not "
                        "supported by streamdrift (a client certificate is always verified "
                        "when one is asked for): use RequireAndVerifyClientCert or "
                        "VerifyClientCertIfGiven, with client_ca_file")
        client_auth_type = "NoClientCert"
    else:
        client_auth_type = choice("client_auth_type", "NoClientCert", _CLIENT_AUTH_TYPES)
    if client_auth_type == "NoClientCert" and raw.get("client_ca_file") is not None:
        problems.append("tls_server_config.client_ca_file is set but client_auth_type is "
                        "NoClientCert: set client_auth_type to RequireAndVerifyClientCert")
    if client_auth_type != "NoClientCert" and raw.get("client_ca_file") is None:
        problems.append(f"tls_server_config.client_ca_file is required with client_auth_type "
                        f"{client_auth_type}: the CA that signs the clients' certificates")
    versions = tuple(_TLS_VERSIONS)
    min_version = choice("min_version", "TLS12", versions)
    max_version = choice("max_version", "TLS13", versions)
    if versions.index(min_version) > versions.index(max_version):
        problems.append(f"tls_server_config.min_version {min_version} is above max_version "
                        f"{max_version}")
    if len(problems) > before or cert_file is None or key_file is None:
        return None
    tls = WebTLSConfig(
        cert_file=cert_file, key_file=key_file, client_ca_file=client_ca_file,
        client_auth_type=cast(ClientAuthType, client_auth_type),
        min_version=cast(TLSVersionName, min_version),
        max_version=cast(TLSVersionName, max_version))
    try:
        tls.server_context()
    except ssl.SSLError as error:
        files = f"cert_file {cert_file}, key_file {key_file}"
        if client_ca_file is not None:
            files += f", client_ca_file {client_ca_file}"
        problems.append(f"tls_server_config: cannot load {files} ({error.reason or error})")
        return None
    except OSError as error:
        problems.append(f"tls_server_config: cannot read its files ({error.strerror or error})")
        return None
    return tls


def _parse_web_users(raw: object, problems: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append("basic_auth_users must be a mapping of user names to bcrypt hashes "
                        "(value hidden)")
        return {}
    users: dict[str, str] = {}
    for name, hashed in raw.items():
        if not isinstance(name, str) or not name:
            problems.append(f"basic_auth_users: the user name {name!r} must be a non-empty "
                            "string")
        elif ":" in name:
            problems.append(f"basic_auth_users.{name} cannot log in: a user name with ':' "
                            "cannot be sent in basic authentication")
        elif not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            problems.append(f"basic_auth_users.{name} must be a bcrypt hash such as "
                            "$2y$10$ followed by 53 characters, not a password (value hidden)")
        else:
            users[name] = hashed
    return users


def _parse_service(section: _Section) -> ServiceConfig:
    defaults = ServiceConfig()
    refill = section.boolean("refill", defaults.refill)
    service = ServiceConfig(
        publish_interval_s=section.number("publish_interval_s", defaults.publish_interval_s,
                                          0.0, low_inclusive=False),
        lag_interval_s=section.number("lag_interval_s", defaults.lag_interval_s, 0.0,
                                      low_inclusive=False),
        commit_interval_s=section.number("commit_interval_s", defaults.commit_interval_s,
                                         0.0),
        refill=refill,
        refill_timeout_s=section.number("refill_timeout_s", defaults.refill_timeout_s, 0.0),
        baseline_watch_interval_s=section.number(
            "baseline_watch_interval_s", defaults.baseline_watch_interval_s, 0.0),
        log_format=cast(Literal["logfmt", "json"], section.choice(
            "log_format", defaults.log_format, ("logfmt", "json"))),
    )
    section.reject_unknown()
    return service
