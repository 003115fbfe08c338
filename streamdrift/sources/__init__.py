"""Adapters that bring messages in: files here, Kafka in ``kafka``. Nothing else does I/O."""
