"""streamdrift: per-feature drift detection for message queues.

Data flows one way: source -> decode -> extract -> sketch -> divergence -> report -> exporter.
The core (``features``, ``baseline``, ``sketch``, ``divergence``, ``monitor``) is pure numpy and
never touches Kafka, HTTP or Prometheus.
"""

__version__ = "0.1.0"
