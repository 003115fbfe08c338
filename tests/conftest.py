import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from streamdrift.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "config.yaml"

settings.register_profile("dev", max_examples=60, deadline=None)
# CI: the same examples on every run, so a red build is reproducible; more of them.
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
# For a deeper search before a release: HYPOTHESIS_PROFILE=thorough tests/run
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def example_config() -> Config:
    return load_config(EXAMPLE_CONFIG, environ={})
