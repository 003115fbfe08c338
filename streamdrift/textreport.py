"""The report as a terminal table: one line per feature, then the bins that moved in the
drifted ones. What ``replay``, ``compare`` and ``demo`` print."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamdrift.monitor import DriftReport


def render_refused(refused: Sequence[tuple[str, int, str]], total: int) -> str:
    """The first refused lines of JSONL input, by number and reason (and file, when they come
    from several), then how many more; empty when none was refused.

    >>> render_refused([("a.jsonl", 7, "not_json"), ("a.jsonl", 9, "empty")], 3)
    'refused: line 7 (not_json), line 9 (empty) and 1 more'
    """
    if not refused:
        return ""
    several = len({path for path, _, _ in refused}) > 1
    listed = ", ".join(f"{f'{path} ' if several else ''}line {number} ({reason})"
                       for path, number, reason in refused)
    more = total - len(refused)
    return f"refused: {listed}" + (f" and {more} more" if more > 0 else "")


def reasons(counts: Mapping[str, int]) -> str:
    """``not_json 3, empty 1``: counts by reason, in name order."""
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_report(report: DriftReport, *, one_window: bool = False) -> str:
    """The per-feature table. ``one_window``: the report of ``compare``, whose window is the
    whole of one dataset, so that neither panes nor change points mean anything there."""
    if one_window:
        window = f"one window of {report.window_messages} rows"
    else:
        window = (f"window {report.window}, {report.window_messages} messages in it, "
                  f"{report.panes_closed} panes closed")
    lines = [
        f"messages {report.messages}, invalid {report.invalid}"
        + (f" ({reasons(report.invalid_reasons)})" if report.invalid else "")
        + (f", late {report.late}" if report.late else "") + f"; {window}",
        "",
        f"{'feature':<22} {'status':<17} {'KL':>8} {'thresh':>7} {'JS':>7} {'PSI':>7} "
        f"{'p-value':>9} {'samples':>8} {'missing':>8} {'invalid':>8} {'unseen':>7} "
        f"{'outside':>7}" + ("" if one_window else f" {'changes':>7}"),
    ]
    for name, feature in report.features.items():
        missing = "-" if feature.missing_ratio is None else f"{feature.missing_ratio:.1%}"
        p_value = "-" if feature.p_value is None else f"{feature.p_value:.3g}"
        status = "DRIFT" if feature.drift else feature.status.replace("_", " ")
        invalid = sum(feature.invalid_values_total.values())
        unseen = feature.unseen_total if feature.type == "categorical" else "-"
        outside = feature.out_of_range_total if feature.type == "numeric" else "-"
        lines.append(
            f"{name:<22} {status:<17} {_number(feature.kl):>8} {feature.threshold:>7.3g} "
            f"{_number(feature.js):>7} {_number(feature.psi):>7} {p_value:>9} "
            f"{feature.samples:>8} {missing:>8} {invalid:>8} {unseen!s:>7} {outside!s:>7}"
            + ("" if one_window else f" {feature.change_points:>7}"))
    explained = [line for name, feature in report.features.items() if feature.drift
                 for line in explain_feature(name, feature.top_contributions())]
    if explained:
        lines += ["", "what moved (the bins adding most to the KL: baseline -> window):",
                  *explained]
    return "\n".join(lines)


def explain_feature(name: str, top: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per bin: ``device: tablet 2.1% -> 41.0% (+1.20 nats)``."""
    return [f"  {name}: {entry['label']} {entry['reference']:.1%} -> {entry['window']:.1%} "
            f"({entry['contribution']:+.2f} nats)" for entry in top]
