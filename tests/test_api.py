"""The Python API on both kinds of table it takes: pandas DataFrames and pyarrow Tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import streamdrift
from streamdrift.api import as_config, compare
from streamdrift.features import table_columns
from streamdrift.monitor import DriftMonitor, DriftReport, reference_baseline

CONFIG = {"features": [{"name": "age"},
                       {"name": "plan", "type": "categorical"},
                       {"name": "kids"}]}


def _rows(count: int, seed: int, age_mean: float, pro_share: float) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    age = rng.normal(age_mean, 10, count).tolist()
    plan = rng.choice(["free", "pro"], count, p=[1 - pro_share, pro_share]).tolist()
    kids = rng.integers(0, 4, count).tolist()
    # Missing cells in every column, as a table holds them (None, not a sentinel).
    for index in range(0, count, 97):
        age[index] = None
        plan[index + 1] = None
        kids[index + 2] = None
    return {"age": age, "plan": plan, "kids": kids}


def _without_created_at(report: DriftReport) -> dict:
    document = report.to_json()
    document["baseline"].pop("created_at")
    return document


def test_the_package_exports_the_api():
    assert (streamdrift.compare, streamdrift.DriftMonitor, streamdrift.table_columns) == (
        compare, DriftMonitor, table_columns)


def test_compare_on_pyarrow_tables_is_compare_on_dataframes():
    reference = _rows(5000, 1, 40.0, 0.3)
    current = _rows(2000, 2, 52.0, 0.3)  # older customers now
    arrow = compare(pa.table(reference), pa.table(current), CONFIG)
    frames = compare(pd.DataFrame(reference), pd.DataFrame(current), CONFIG)
    assert arrow.drifted == ["age"]
    assert _without_created_at(arrow) == _without_created_at(frames)
    assert arrow.features["age"].missing == math.ceil(2000 / 97)
    assert arrow.features["plan"].samples == 2000 - math.ceil(1999 / 97)
    terms = [entry["contribution"] for entry in arrow.features["age"].bins()]
    assert math.fsum(terms) == pytest.approx(arrow.features["age"].kl, abs=1e-9)


def test_compare_reads_chunked_dictionary_and_large_string_arrow_columns():
    """A table read from Parquet or built batch by batch: several chunks, categories
    dictionary-encoded or as large strings, numbers as int32 and float32."""
    reference = _rows(4000, 3, 40.0, 0.3)
    current = _rows(2000, 4, 40.0, 0.6)  # pro doubled
    plain = compare(pa.table(reference), pa.table(current), CONFIG)
    schema = pa.schema([("age", pa.float32()), ("plan", pa.dictionary(pa.int8(), pa.string())),
                        ("kids", pa.int32())])

    def typed(rows: dict[str, list]) -> pa.Table:
        half = len(rows["age"]) // 2
        tables = [pa.table({"age": pa.array(rows["age"][part], pa.float32()),
                            "plan": pa.array(rows["plan"][part]).dictionary_encode()
                            .cast(schema.field("plan").type),
                            "kids": pa.array(rows["kids"][part], pa.int32())})
                  for part in (slice(0, half), slice(half, None))]
        table = pa.concat_tables(tables)
        assert table.column("age").num_chunks == 2
        return table

    report = compare(typed(reference), typed(current), CONFIG)
    assert report.drifted == plain.drifted == ["plan"]
    assert report.features["plan"].kl == pytest.approx(plain.features["plan"].kl, abs=1e-12)
    assert report.features["kids"].kl == pytest.approx(plain.features["kids"].kl, abs=1e-12)
    large = {**current, "plan": pa.array(current["plan"], pa.large_string())}
    assert compare(pa.table(reference), pa.table(large), CONFIG).features[
        "plan"].kl == pytest.approx(plain.features["plan"].kl, abs=1e-12)


def test_a_monitor_fed_pyarrow_batches_reports_as_one_fed_dataframes():
    config = as_config({**CONFIG, "window": {"size": 1000, "panes": 10}})
    reference = _rows(5000, 5, 40.0, 0.3)
    current = _rows(2000, 6, 52.0, 0.3)
    baseline = reference_baseline(
        config, table_columns(pa.table(reference), config.features))
    reports = []
    for kind in ("arrow", "pandas"):
        monitor = DriftMonitor(config, baseline)
        table = pa.table(current)
        for start in range(0, 2000, 250):
            batch = table.slice(start, 250)
            monitor.process_table(batch if kind == "arrow" else batch.to_pandas())
        reports.append(monitor.report().to_json())
    assert reports[0] == reports[1]
    assert reports[0]["drifted"] == ["age"]
    assert reports[0]["window"]["messages"] == 1000


def test_a_table_without_a_feature_s_column_is_named():
    with pytest.raises(ValueError, match="no column for feature"):
        compare(pa.table({"age": [1.0]}), pa.table({"age": [1.0]}), CONFIG)
