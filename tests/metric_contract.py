"""The metric contract: the table of metrics the documentation promises, read from
docs/reference/metrics.md.

Both the exporter's unit test and the live service's integration test hold the exposition
to it: every documented family exists with its documented type and label names, and
nothing undocumented is exported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
METRICS_PAGE = REPO / "docs" / "reference" / "metrics.md"
_HEADER = "| metric | type | labels | what |"
_NAME = re.compile(r"`(streamdrift_[a-z_]+)`")


@dataclass(frozen=True)
class MetricSpec:
    """One documented metric: its family name as exposed (counters without ``_total``),
    its type and its label names."""

    family: str
    type: str
    labels: frozenset[str] | None  # None: exposed without a sample, so no label names


def documented_metrics(page: Path = METRICS_PAGE) -> dict[str, MetricSpec]:
    """Every metric of the page's table, by family name."""
    lines = page.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(_HEADER)
    except ValueError:
        raise AssertionError(f"{page} has no metric table headed {_HEADER!r}") from None
    specs: dict[str, MetricSpec] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a metric row needs 4 cells: {line!r}"
        names, kind, labels, _ = cells
        found = _NAME.findall(names)
        assert found, f"no metric name in {line!r}"
        assert kind in ("gauge", "counter"), f"unknown type {kind!r} in {line!r}"
        label_names = frozenset(label.strip() for label in labels.split(",") if label.strip())
        for name in found:
            if kind == "counter":
                assert name.endswith("_total"), f"counter {name} must end in _total"
                name = name.removesuffix("_total")
            assert name not in specs, f"{name} is documented twice"
            specs[name] = MetricSpec(name, kind, label_names)
    return specs


def exposed_metrics(text: str) -> dict[str, MetricSpec]:
    """The families of a text exposition, with the label names of their samples (every
    sample of a family must carry the same label names)."""
    exposed: dict[str, MetricSpec] = {}
    for family in text_string_to_metric_families(text):
        label_sets = {frozenset(sample.labels) for sample in family.samples}
        assert len(label_sets) <= 1, f"{family.name} has samples with different labels: " \
                                     f"{label_sets}"
        exposed[family.name] = MetricSpec(family.name, family.type,
                                          next(iter(label_sets), None))
    return exposed


def contract_violations(text: str, expected: Iterable[MetricSpec] | None = None
                        ) -> list[str]:
    """What in the exposition ``text`` breaks the documented contract; empty when none."""
    documented = {spec.family: spec for spec in (expected if expected is not None
                                                 else documented_metrics().values())}
    exposed = exposed_metrics(text)
    problems = []
    for name, spec in sorted(documented.items()):
        found = exposed.get(name)
        if found is None:
            problems.append(f"{name}: documented, not exported")
        elif found.type != spec.type:
            problems.append(f"{name}: documented as a {spec.type}, exported as a {found.type}")
        elif found.labels is None:
            problems.append(f"{name}: exported without a sample")
        elif found.labels != spec.labels:
            problems.append(f"{name}: documented labels {sorted(spec.labels or ())}, "
                            f"exported {sorted(found.labels)}")
    problems.extend(f"{name}: exported, not documented"
                    for name in sorted(set(exposed) - set(documented)))
    return problems
