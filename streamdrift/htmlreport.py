"""The drift report as one self-contained HTML page: summary first, then every feature's
bins (baseline against window), the bins that moved most, and its KL over time.

No network, no script: inline CSS and hand-built SVG. A plotting library would add a
dependency of tens of megabytes (or a CDN) for three kinds of chart whose every coordinate
is a line of arithmetic here, and SVG stays sharp when printed or zoomed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from streamdrift.baseline import Baseline
from streamdrift.monitor import DriftReport, FeatureReport
from streamdrift.timeline import FirstFlag, Timeline, name_detectors

CHART_WIDTH = 880
BAR_HEIGHT = 190
LINE_HEIGHT = 170
MARGIN_LEFT = 48
# A bin's label on the axis: cut after this many characters (the full one is in the tooltip),
# and the room it needs right of the last bar, slanted at 35 degrees.
LABEL_CHARACTERS = 24
LABEL_ROOM_RIGHT = 130
REFERENCE_COLOR = "#9aa5b1"
WINDOW_COLOR = "#2563eb"
DRIFT_COLOR = "#dc2626"

_STYLE = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
        background: #f5f7fa; }
body { margin: 0; padding: 24px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 6px; display: flex; align-items: center; gap: 10px; }
h3 { font-size: 14px; margin: 14px 0 4px; color: #3e4c59; }
.meta { color: #52606d; font-size: 13px; margin: 0 0 18px; }
.cards { display: flex; gap: 14px; flex-wrap: wrap; margin: 0 0 18px; }
.card { background: #fff; border-radius: 8px; padding: 12px 16px; min-width: 170px;
        box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.card .big { font-size: 26px; font-weight: 600; }
.card .small { font-size: 12px; color: #616e7c; }
.card.alarm .big { color: #dc2626; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin: 0 0 16px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e4e7eb; }
th { color: #52606d; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { font-size: 11px; font-weight: 700; border-radius: 4px; padding: 2px 7px;
         letter-spacing: .03em; }
.badge.drift { background: #fde8e8; color: #b91c1c; }
.badge.ok { background: #e3f9e5; color: #1f7a35; }
.badge.insufficient_data { background: #eef0f3; color: #52606d; }
.legend { font-size: 12px; color: #52606d; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px;
               vertical-align: -1px; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-size: 10px; fill: #52606d; }
a { color: #1d4ed8; text-decoration: none; }
"""


def render_html(report: DriftReport, baseline: Baseline, *, title: str, source: str,
                timeline: Timeline | None = None) -> str:
    """The whole page. ``source`` says what was compared with the baseline (shown at the
    top); without a ``timeline`` (a single window, as in ``compare``) no KL-over-time chart
    is drawn."""
    flags = timeline.first_flags(report) if timeline is not None else {}
    order = sorted(report.features.values(),
                   key=lambda f: (not f.drift, -(f.kl if f.kl is not None else -1.0)))
    drifted = [f for f in order if f.drift]
    evaluated = [f for f in order if f.status != "insufficient_data"]
    generated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(source)} against baseline {_e(report.baseline_hash)} '
        f"(created {_e(report.baseline_created_at or 'unknown')}, from "
        f"{_e(baseline.source or 'unknown')}) &middot; "
        f"{'' if report.window.startswith('one window') else 'window '}{_e(report.window)} "
        f"&middot; report made {generated}</p>",
        '<div class="cards">',
        _card(f"{len(drifted)} of {len(report.features)}", "features drifted "
              f"({len(drifted) / max(len(report.features), 1):.0%})", alarm=bool(drifted)),
        _card(f"{report.messages:,}", f"messages read, {report.invalid:,} refused"),
        _card(f"{report.window_messages:,}", "messages in the final window"),
        _card(f"{len(evaluated)}", "features with enough values to judge"),
        "</div>",
        _summary_table(order, flags if timeline is not None else None),
    ]
    parts += [_feature_section(feature, flags.get(feature.name), timeline) for feature in order]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _card(big: str, small: str, alarm: bool = False) -> str:
    return (f'<div class="card{" alarm" if alarm else ""}"><div class="big">{_e(big)}</div>'
            f'<div class="small">{_e(small)}</div></div>')


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p_value(value: float | None) -> str:
    if value is None:
        return "-"
    return "< 1e-300" if value == 0 else f"{value:.3g}"


def _badge(status: str) -> str:
    text = {"drift": "DRIFT", "ok": "ok", "insufficient_data": "too few values"}[status]
    return f'<span class="badge {status}">{text}</span>'


def _anchor(name: str) -> str:
    return "feature-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _summary_table(features: Sequence[FeatureReport],
                   flags: Mapping[str, FirstFlag] | None) -> str:
    """One row per feature; a "first flagged" column when there is a timeline (``flags``)."""
    rows = []
    for feature in features:
        top = feature.top_contributions(1)
        moved = "-" if not top else (f"{_e(top[0]['label'])}: {top[0]['reference']:.1%} "
                                     f"&rarr; {top[0]['window']:.1%}")
        flag = None if flags is None else flags.get(feature.name)
        first = "" if flags is None else \
            f"<td>{'-' if flag is None else f'message {flag.messages:,}{flag.by()}'}</td>"
        rows.append(
            f'<tr><td><a href="#{_anchor(feature.name)}">{_e(feature.name)}</a></td>'
            f"<td>{_badge(feature.status)}</td>"
            f'<td class="num">{_number(feature.kl)}</td>'
            f'<td class="num">{feature.threshold:g}</td>'
            f'<td class="num">{_p_value(feature.p_value)}</td>'
            f'<td class="num">{feature.samples:,}</td>{first}'
            f"<td>{moved}</td></tr>")
    return ("<section><h2>Features</h2><table><thead><tr><th>feature</th><th>status</th>"
            '<th class="num">KL (nats)</th><th class="num">threshold</th>'
            '<th class="num">p-value</th><th class="num">values</th>'
            + ("" if flags is None else "<th>first flagged</th>")
            + "<th>bin that moved most</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></section>")


def _feature_section(feature: FeatureReport, flag: FirstFlag | None,
                     timeline: Timeline | None) -> str:
    facts = (f"KL {_number(feature.kl)} nats (threshold {feature.threshold:g}, "
             f"expected without drift {_number(feature.kl_noise_floor)}) &middot; "
             f"p-value {_p_value(feature.p_value)} &middot; {feature.samples:,} values in the "
             f"window (needs {feature.min_samples:,})")
    if feature.missing_ratio is not None:
        facts += (f" &middot; missing {feature.missing_ratio:.1%} "
                  f"(baseline {feature.baseline_missing_ratio:.1%})")
    if feature.flagged_by:
        facts += f" &middot; flagged by {name_detectors(feature.flagged_by)}"
    parts = [f'<section id="{_anchor(feature.name)}">',
             f"<h2>{_e(feature.name)} {_badge(feature.status)}</h2>",
             f'<p class="meta">{facts}</p>',
             "<h3>Baseline against window, bin by bin</h3>",
             f'<div class="legend"><span style="background:{REFERENCE_COLOR}"></span>baseline'
             f'<span style="background:{WINDOW_COLOR}"></span>window</div>',
             _bars_svg(feature)]
    top = feature.top_contributions()
    if top:
        rows = "".join(
            f"<tr><td>{_e(entry['label'])}</td>"
            f'<td class="num">{entry["reference"]:.1%}</td>'
            f'<td class="num">{entry["window"]:.1%}</td>'
            f'<td class="num">{entry["contribution"]:+.3f}</td></tr>' for entry in top)
        parts.append("<h3>The bins adding most to the KL</h3><table><thead><tr><th>bin</th>"
                     '<th class="num">baseline</th><th class="num">window</th>'
                     f'<th class="num">nats</th></tr></thead><tbody>{rows}</tbody></table>')
    if timeline is not None and len(timeline.points) > 1:
        parts.append("<h3>KL over time, at every pane's close</h3>")
        parts.append(_timeline_svg(feature, timeline, flag))
    parts.append("</section>")
    return "\n".join(parts)


def _bars_svg(feature: FeatureReport) -> str:
    labels = feature.bin_labels
    reference = feature.reference_probabilities
    window = feature.window_probabilities or (0.0,) * len(labels)
    count = len(labels)
    top = max([*reference, *window, 1e-9])
    plot_height = BAR_HEIGHT - 70
    # Room on the right for the last bin's label, which leans right of its bar.
    width = CHART_WIDTH - MARGIN_LEFT - LABEL_ROOM_RIGHT
    step = width / count
    bar = max(1.0, step * 0.38)
    # Every label when they fit, else every k-th one.
    every = max(1, math.ceil(count * 7 / width * 1.6))
    items = [_axis(MARGIN_LEFT, 10, plot_height, top, percent=True)]
    for index in range(count):
        x = MARGIN_LEFT + index * step + step / 2
        for share, color, offset in ((reference[index], REFERENCE_COLOR, -bar),
                                     (window[index], WINDOW_COLOR, 0.0)):
            height = share / top * plot_height
            items.append(f'<rect x="{x + offset:.1f}" y="{10 + plot_height - height:.1f}" '
                         f'width="{bar:.1f}" height="{height:.1f}" fill="{color}">'
                         f"<title>{_e(labels[index])}: {share:.2%}</title></rect>")
        if index % every == 0:
            label = (labels[index] if len(labels[index]) <= LABEL_CHARACTERS
                     else labels[index][:LABEL_CHARACTERS - 1] + "…")
            items.append(f'<text transform="translate({x:.1f},{14 + plot_height}) rotate(35)" '
                         f'text-anchor="start">{_e(label)}</text>')
    return (f'<svg viewBox="0 0 {CHART_WIDTH} {BAR_HEIGHT}" width="100%" '
            f'role="img" aria-label="bins of {_e(feature.name)}">'
            + "".join(items) + "</svg>")


def _axis(x: float, y: float, height: float, top: float, percent: bool) -> str:
    """A left axis with three gridlines from 0 to ``top``."""
    lines = []
    for fraction in (0.0, 0.5, 1.0):
        y_line = y + height - fraction * height
        value = top * fraction
        text = f"{value:.0%}" if percent else f"{value:.3g}"
        lines.append(f'<line x1="{x}" x2="{CHART_WIDTH - 10}" y1="{y_line:.1f}" '
                     f'y2="{y_line:.1f}" stroke="#e4e7eb"/>'
                     f'<text x="{x - 6}" y="{y_line + 3:.1f}" text-anchor="end">{text}</text>')
    return "".join(lines)


def _timeline_svg(feature: FeatureReport, timeline: Timeline, flag: FirstFlag | None) -> str:
    points = [(point.messages, point.features[feature.name].kl) for point in timeline.points
              if feature.name in point.features]
    values = [kl for _, kl in points if kl is not None]
    top = max([*values, feature.threshold * 1.5])
    plot_height = LINE_HEIGHT - 40
    width = CHART_WIDTH - MARGIN_LEFT - 10
    last = max(messages for messages, _ in points) or 1

    def x_of(messages: int) -> float:
        return MARGIN_LEFT + messages / last * width

    def y_of(kl: float) -> float:
        return 10 + plot_height - kl / top * plot_height

    items = [_axis(MARGIN_LEFT, 10, plot_height, top, percent=False)]
    threshold_y = y_of(feature.threshold)
    items.append(f'<line x1="{MARGIN_LEFT}" x2="{CHART_WIDTH - 10}" y1="{threshold_y:.1f}" '
                 f'y2="{threshold_y:.1f}" stroke="{DRIFT_COLOR}" stroke-dasharray="5 4"/>'
                 f'<text x="{CHART_WIDTH - 12}" y="{threshold_y - 4:.1f}" text-anchor="end" '
                 f'style="fill:{DRIFT_COLOR}">threshold {feature.threshold:g}</text>')
    # One polyline per run of points with a KL (gaps: too few values).
    runs: list[list[str]] = [[]]
    for messages, kl in points:
        if kl is None:
            runs.append([])
        else:
            runs[-1].append(f"{x_of(messages):.1f},{y_of(kl):.1f}")
    for run in runs:
        if len(run) > 1:
            items.append(f'<polyline points="{" ".join(run)}" fill="none" '
                         f'stroke="{WINDOW_COLOR}" stroke-width="2"/>')
        elif run:
            cx, cy = run[0].split(",")
            items.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{WINDOW_COLOR}"/>')
    if flag is not None:
        x = x_of(flag.messages)
        # Left of the line when it is in the right half, so that the text stays in the chart.
        left = x > MARGIN_LEFT + width / 2
        items.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="10" y2="{10 + plot_height}" '
                     f'stroke="{DRIFT_COLOR}"/><text x="{x - 4 if left else x + 4:.1f}" y="20" '
                     f'text-anchor="{"end" if left else "start"}" '
                     f'style="fill:{DRIFT_COLOR}">first flagged: message {flag.messages:,}'
                     f"{flag.by()}</text>")
    items.append(f'<text x="{MARGIN_LEFT}" y="{LINE_HEIGHT - 8}">0</text>'
                 f'<text x="{CHART_WIDTH - 10}" y="{LINE_HEIGHT - 8}" text-anchor="end">'
                 f"{last:,} messages</text>")
    return (f'<svg viewBox="0 0 {CHART_WIDTH} {LINE_HEIGHT}" width="100%" '
            f'role="img" aria-label="KL of {_e(feature.name)} over time">'
            + "".join(items) + "</svg>")
