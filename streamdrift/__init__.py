"""streamdrift: per-feature drift detection for message queues.

Data flows one way: source -> decode -> extract -> sketch -> divergence -> report -> exporter.
The core (``features``, ``baseline``, ``sketch``, ``divergence``, ``monitor``) is pure numpy and
never touches Kafka, HTTP or Prometheus.
"""

__version__ = "0.1.0"


# The Python API, imported on first use so that `streamdrift --help` stays quick.
_API = {
    "compare": "streamdrift.api",
    "as_config": "streamdrift.api",
    "DriftMonitor": "streamdrift.monitor",
    "DriftReport": "streamdrift.monitor",
    "reference_baseline": "streamdrift.monitor",
    "table_columns": "streamdrift.features",
    "load_config": "streamdrift.config",
    "load_baseline": "streamdrift.baseline",
    "save_baseline": "streamdrift.baseline",
}


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'streamdrift' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
