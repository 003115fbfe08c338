"""``streamdrift rules``: the Prometheus rules, as a rule file or a PrometheusRule."""

from __future__ import annotations

import argparse
import sys

from streamdrift.commands import write_text
from streamdrift.config import parse_duration_s
from streamdrift.errors import ConfigError
from streamdrift.rules import RuleParameters, render_prometheus_rule, render_rules


def rules(args: argparse.Namespace) -> int:
    for name in ("drift_for", "fleet_window", "service_for"):
        value = getattr(args, name)
        try:
            parse_duration_s(value)
        except ValueError:
            raise ConfigError(f"--{name.replace('_', '-')} must be a duration like 5m "
                              f"(got {value!r})") from None
    params = RuleParameters(
        drift_for=args.drift_for, severe_multiple=args.severe_multiple,
        p_value_alpha=args.p_value_alpha, fleet_window=args.fleet_window,
        service_for=args.service_for, lag_messages=args.lag_messages,
        runbook_base=args.runbook_base, job=args.job)
    if args.format == "prometheusrule":
        text = render_prometheus_rule(params, args.name, args.namespace)
    else:
        text = render_rules(params)
    if args.output:
        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
