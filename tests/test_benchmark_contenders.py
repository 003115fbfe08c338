"""The benchmark's in-process contenders compute what streamdrift computes.

Correctness only: the benchmark compares like with like. Nothing here is timed; the
figures come from ``python benchmarks/run.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.contenders import (
    BatchRecompute,
    Floor,
    NaivePerEvent,
    RiverPerEvent,
    StreamdriftAvroPipeline,
    StreamdriftPipeline,
    StreamdriftSequentialPipeline,
    check_agreement,
    floor_decoders,
    in_process_contenders,
    inputs_of,
)
from benchmarks.messages import AVRO_SCHEMA_ID, make_workload


@pytest.fixture(scope="module")
def workload():
    # A window of 1,000 messages in 10 panes, 2,500 messages: the window has moved on.
    return make_workload(34, 2_500, seed=3, reference_rows=2_000, window_size=1_000,
                         panes=10)


def _streamdrift(workload):
    pipeline = StreamdriftPipeline(workload.config, workload.baseline, batch=300)
    pipeline.reset()
    return pipeline.run(workload.payloads)


def test_naive_and_batch_compute_streamdrift_s_window_kl(workload):
    expected = _streamdrift(workload).kl
    assert expected is not None
    assert np.isfinite(expected).all()
    assert expected.max() > 0.05  # two features drift in the second half
    for contender in (NaivePerEvent(workload.config, workload.baseline),
                      BatchRecompute(workload, "msgspec")):
        contender.reset()
        kl = contender.run(workload.payloads).kl
        assert kl is not None
        np.testing.assert_allclose(kl, expected, rtol=0, atol=1e-9, err_msg=contender.name)


@pytest.mark.parametrize("decoder", floor_decoders())
def test_floor_counts_the_bins_streamdrift_counts(workload, decoder):
    expected = _streamdrift(workload).totals
    floor = Floor(workload.config, workload.baseline, decoder, batch=700)
    floor.reset()
    totals = floor.run(workload.payloads).totals
    assert totals is not None
    assert expected is not None
    for name, got, want in zip([s.name for s in workload.config.features], totals, expected,
                               strict=True):
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_streamdrift_on_avro_records_equals_streamdrift_on_json_and_the_avro_floor(workload):
    expected = _streamdrift(workload)
    avro = StreamdriftAvroPipeline(workload.config, workload.baseline, workload.avro_parsed,
                                   AVRO_SCHEMA_ID, batch=300)
    avro.reset()
    got = avro.run(workload.avro_payloads)
    assert got.kl is not None
    assert expected.kl is not None
    np.testing.assert_array_equal(got.kl, expected.kl)
    floor = Floor(workload.config, workload.baseline, "fastavro", batch=700,
                  writer_schema=workload.avro_parsed)
    floor.reset()
    totals = floor.run(workload.avro_payloads).totals
    assert totals is not None
    assert got.totals is not None
    for name, floor_totals, want in zip([s.name for s in workload.config.features], totals,
                                        got.totals, strict=True):
        np.testing.assert_array_equal(floor_totals, want, err_msg=name)


def test_the_agreement_check_passes_and_river_runs(workload):
    contenders = in_process_contenders(workload, "msgspec-struct", "msgspec")
    agreement = check_agreement(contenders, inputs_of(workload))
    assert agreement.ok(1e-6), agreement
    assert set(agreement.max_kl_difference) == {"naive", "batch_recompute", "streamdrift_avro",
                                                 "streamdrift_sequential"}
    # The sequential test changes no window: the same KL, to the last bit.
    assert agreement.max_kl_difference["streamdrift_sequential"] == 0.0
    assert agreement.max_avro_total_difference == 0
    river = next(c for c in contenders if isinstance(c, RiverPerEvent))
    assert len(river.detectors) == sum(s.type == "numeric" for s in workload.config.features)


def test_the_sequential_pipeline_runs_the_sequential_test_on_every_feature(workload):
    pipeline = StreamdriftSequentialPipeline(workload.config, workload.baseline, batch=300)
    assert workload.config.detector.method == "adwin"
    assert pipeline.config.detector.method == "mixture_cusum"
    pipeline.reset()
    pipeline.run(workload.payloads)
    report = pipeline.monitor.report()
    assert all(f.sequential_score is not None for f in report.features.values())
    # Two features drift in the second half: the test on every value sees them.
    assert sum(f.sequential_alarms_total > 0 for f in report.features.values()) >= 1


def test_the_naive_window_slides_like_streamdrift_s(workload):
    """The KL at every pane (not only the last) is the same as a fresh batch computation."""
    naive = NaivePerEvent(workload.config, workload.baseline)
    batch = BatchRecompute(workload, "msgspec")
    for contender in (naive, batch):
        contender.reset()
        contender.run(workload.payloads)
    panes = len(workload.payloads) // workload.pane_length
    assert len(naive.kl_history) == len(batch.kl_history) == panes
    np.testing.assert_allclose(np.array(naive.kl_history), np.array(batch.kl_history),
                               rtol=0, atol=1e-9)
