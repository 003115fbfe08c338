#!/usr/bin/env python3
"""Write the chart's generated files from their one source each.

    python deploy/helm/generate_files.py

- ``streamdrift/files/streamdrift-rules.yml``: the Prometheus rules, as
  ``streamdrift rules`` renders them (deploy/prometheus/streamdrift-rules.yml);
- ``streamdrift/files/streamdrift-dashboard.json``: the Grafana dashboard, as
  deploy/grafana/generate.py builds it.

tests/test_deploy.py holds the checked-in files equal to a fresh render.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FILES = HERE / "streamdrift" / "files"
RULES_FILE = FILES / "streamdrift-rules.yml"
DASHBOARD_FILE = FILES / "streamdrift-dashboard.json"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from streamdrift.rules import RuleParameters, render_rules  # noqa: E402


def _grafana_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "streamdrift_grafana_generate", REPO / "deploy" / "grafana" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_all() -> dict[Path, str]:
    """Every generated file of the chart, by absolute path."""
    return {RULES_FILE: render_rules(RuleParameters()),
            DASHBOARD_FILE: _grafana_generator().dashboard_json()}


def main() -> int:
    for path, text in render_all().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
