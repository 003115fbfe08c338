"""streamdrift from Python: compare tables, or feed a monitor batch by batch.

``compare`` is ``streamdrift compare`` on pandas DataFrames or pyarrow Tables (one column per
feature name), and ``DriftMonitor.process_table`` feeds a window as the service would. Both
give the same ``DriftReport`` the command line prints.

>>> import numpy as np, pandas as pd
>>> import streamdrift
>>> rng = np.random.default_rng(0)
>>> config = {"features": [{"name": "age"}, {"name": "plan", "type": "categorical"}]}
>>> reference = pd.DataFrame({"age": rng.normal(40, 10, 5000),
...                           "plan": rng.choice(["free", "pro"], 5000, p=[0.7, 0.3])})
>>> current = pd.DataFrame({"age": rng.normal(52, 10, 2000),  # older customers now
...                         "plan": rng.choice(["free", "pro"], 2000, p=[0.7, 0.3])})
>>> report = streamdrift.compare(reference, current, config)
>>> report.drifted
['age']
>>> top = report.features["age"].top_contributions(1)[0]
>>> top["label"], top["window"] > top["reference"]
('>= 56.4781', True)

A monitor over a stream of DataFrames, the window sliding as batches arrive:

>>> baseline = streamdrift.reference_baseline(streamdrift.as_config(config),
...     streamdrift.table_columns(reference, streamdrift.as_config(config).features))
>>> monitor = streamdrift.DriftMonitor(
...     streamdrift.as_config({**config, "window": {"size": 1000, "panes": 10}}), baseline)
>>> for start in range(0, 2000, 250):
...     monitor.process_table(current.iloc[start:start + 250])
>>> monitor.report().drifted, monitor.report().window_messages
(['age'], 1000)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamdrift.config import Config, load_config, parse_config
from streamdrift.features import table_columns
from streamdrift.monitor import DriftReport, compare_columns


def as_config(config: Config | Mapping[str, Any] | str | Path) -> Config:
    """A ``Config`` from a config object, a mapping shaped like config.yaml, or its path."""
    if isinstance(config, Config):
        return config
    if isinstance(config, str | Path):
        return load_config(config)
    return parse_config(dict(config), Path.cwd())


def compare(reference: Any, current: Any,
            config: Config | Mapping[str, Any] | str | Path) -> DriftReport:
    """``streamdrift compare`` on two tables (pandas DataFrames or pyarrow Tables, a column
    per feature name): a baseline from ``reference`` with the config's binning, and all of
    ``current`` as one window against it."""
    config = as_config(config)
    return compare_columns(config, table_columns(reference, config.features),
                           table_columns(current, config.features), source="reference table")
