"""The scan and the sequential test inside the monitor: when their alarms are raised, how
long they hold, what the report says of them, and what a refill or a new baseline does.
The detectors' own math is in test_sequential.py; their rates and delays in
test_detection.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from streamdrift.cli import main as cli_main
from streamdrift.config import Config, parse_config
from streamdrift.divergence import homogeneity_test
from streamdrift.features import FeatureColumn
from streamdrift.monitor import DriftMonitor, compare_columns, reference_baseline
from streamdrift.scan import PaneScan, scale_level, scan_scales


def _config(**changes: object) -> Config:
    return parse_config({"features": [{"name": "x"}, {"name": "y"}],
                         "window": {"size": 1000, "panes": 10}, **changes}, Path("."), {})


def _column(values: np.ndarray) -> FeatureColumn:
    return FeatureColumn(np.asarray(values, dtype=np.float64),
                         np.zeros(len(values), dtype=np.int8))


def _monitor(config: Config, seed: int = 0) -> DriftMonitor:
    rng = np.random.default_rng(seed)
    reference = {"x": _column(rng.normal(size=20_000)), "y": _column(rng.normal(size=20_000))}
    return DriftMonitor(config, reference_baseline(config, reference))


def _feed(monitor: DriftMonitor, x: np.ndarray, y: np.ndarray, batch: int = 37) -> None:
    """Rows in uneven batches, so that panes close inside batches."""
    for start in range(0, len(x), batch):
        monitor.process_columns([_column(x[start:start + batch]),
                                 _column(y[start:start + batch])])


def test_the_scales_are_powers_of_two_then_the_window() -> None:
    assert scan_scales(10) == (1, 2, 4, 8, 10)
    assert scan_scales(16) == (1, 2, 4, 8, 16)
    with pytest.raises(ValueError, match="at least one pane"):
        scan_scales(0)
    # A pane of 500 messages, 5 scales, 1 per million, halved for the chi-square tail.
    assert scale_level(1.0, 500, 5) == pytest.approx(500 / 1e6 / 5 / 2)


def test_each_scale_is_the_g_test_of_the_newest_panes_against_the_reference() -> None:
    """The scan's score is ln p / ln level of the best scale, p from the G-test of the sum
    of the newest panes (checked against scipy) and the reference."""
    rng = np.random.default_rng(7)
    reference = np.array([4000, 3000, 2000, 1000])
    scan = PaneScan(reference, np.array([0]), np.array([4]), panes=4,
                    false_alarms_per_million=1e3, bin_slots=np.arange(4),
                    first_feature_slots=slice(0, 6))
    panes = [rng.multinomial(120, [0.4, 0.3, 0.2, 0.1]) for _ in range(3)]
    for pane in panes:
        scan.on_change(None, np.concatenate([pane, [0, 0]]))
        scan.close()
    level = scale_level(1e3, 120, 3)
    expected = []
    for scale in (1, 2):  # the whole window's scale, 4 panes, waits for a fourth pane
        window = np.sum(panes[-scale:], axis=0)
        _, _, p_value = homogeneity_test(window, reference, np.array([0]))
        oracle = chi2_contingency([window, reference], correction=False,
                                  lambda_="log-likelihood")
        assert p_value[0] == pytest.approx(oracle.pvalue, rel=0.05)  # Williams' correction
        expected.append(np.log(p_value[0]) / np.log(level))
    assert scan.scores[0] == pytest.approx(max(expected), rel=1e-12)
    assert bool(scan.holding[0]) == (max(expected) >= 1)


def test_a_large_shift_is_flagged_by_the_scan_and_the_alarm_clears_when_it_is_gone() -> None:
    monitor = _monitor(_config())
    rng = np.random.default_rng(1)
    _feed(monitor, rng.normal(size=3000), rng.normal(size=3000))
    quiet = monitor.report().features["x"]
    assert quiet.status == "ok"
    assert quiet.flagged_by == ()
    assert quiet.scan_alarms_total == 0
    assert quiet.scan_score is not None
    assert quiet.scan_score < 1
    assert quiet.first_flag_messages is None

    _feed(monitor, rng.normal(loc=1.5, size=100), rng.normal(size=100))
    # The first pane of the shift closes at message 3,100: the newest panes show it.
    _feed(monitor, rng.normal(loc=1.5, size=1), rng.normal(size=1))
    flagged = monitor.report().features["x"]
    assert "scan" in flagged.flagged_by
    assert flagged.status == "drift"
    assert "window" not in flagged.flagged_by  # a tenth of the window: KL under 0.1
    assert flagged.scan_alarm
    assert flagged.scan_alarms_total == 1
    # The newest two panes: one pane of 100 is under ten values for each of 20 bins.
    assert flagged.scan_alarm_values == 200
    assert flagged.first_flag_messages == 3100
    assert flagged.first_flag_detector == "scan"
    assert monitor.report().features["y"].status == "ok"

    _feed(monitor, rng.normal(loc=1.5, size=1900), rng.normal(size=1900))
    held = monitor.report().features["x"]
    assert held.flagged_by == ("window", "scan")
    assert held.scan_alarms_total == 1

    # Back to the baseline's law: the alarm holds while the whole window still has the
    # shift, and clears at the first pane close where no scale rejects.
    _feed(monitor, rng.normal(size=2000), rng.normal(size=2000))
    cleared = monitor.report().features["x"]
    assert cleared.status == "ok"
    assert not cleared.scan_alarm
    assert cleared.scan_alarms_total == 1
    assert cleared.first_flag_messages == 3100  # the first flag stays


def test_the_sequential_test_alarms_within_tens_of_values_and_holds_for_a_window() -> None:
    config = _config(detector={"method": "mixture_cusum"}, scan={"enabled": False})
    monitor = _monitor(config)
    rng = np.random.default_rng(2)
    _feed(monitor, rng.normal(size=2000), rng.normal(size=2000))
    assert monitor.report().features["x"].sequential_alarms_total == 0
    assert monitor.report().features["x"].sequential_score is not None
    _feed(monitor, rng.normal(loc=3.0, size=60), rng.normal(size=60), batch=60)
    report = monitor.report().features["x"]
    assert report.sequential_alarm
    assert report.flagged_by == ("sequential",)
    assert report.first_flag_detector == "sequential"
    assert report.first_flag_messages is not None
    assert 2000 < report.first_flag_messages <= 2060  # the message that raised it
    raised = report.sequential_alarms_total
    assert raised >= 1
    # Normal values again: the alarm holds until its pane has left the window (10 panes
    # of 100), then clears.
    _feed(monitor, rng.normal(size=940), rng.normal(size=940))
    assert monitor.report().features["x"].sequential_alarm
    _feed(monitor, rng.normal(size=200), rng.normal(size=200))
    after = monitor.report().features["x"]
    assert not after.sequential_alarm
    assert after.status == "ok"
    assert after.sequential_alarms_total == raised


def test_refilled_messages_raise_no_alarm_count_and_no_first_flag() -> None:
    config = _config(detector={"method": "mixture_cusum"})
    monitor = _monitor(config)
    rng = np.random.default_rng(3)
    shifted = [json.dumps({"x": float(v), "y": 0.0}).encode()
               for v in rng.normal(loc=3.0, size=500)]
    monitor.refill(shifted)
    report = monitor.report().features["x"]
    assert report.scan_alarms_total == 0
    assert report.sequential_alarms_total == 0
    assert report.first_flag_messages is None
    assert report.status == "drift"  # the window the refill put back shows the shift


def test_a_new_baseline_with_the_same_bins_keeps_the_scan_s_panes() -> None:
    config = _config()
    monitor = _monitor(config)
    rng = np.random.default_rng(4)
    _feed(monitor, rng.normal(size=1000), rng.normal(size=1000))
    again = _monitor(config).baseline  # the same reference: the same bins and counts
    assert monitor.swap_baseline(again)
    _feed(monitor, rng.normal(loc=2.0, size=101), rng.normal(size=101))
    assert "scan" in monitor.report().features["x"].flagged_by


def test_the_json_report_carries_every_detector() -> None:
    monitor = _monitor(_config(detector={"method": "mixture_cusum"}))
    rng = np.random.default_rng(5)
    _feed(monitor, rng.normal(loc=2.0, size=500), rng.normal(size=500))
    document = monitor.report().to_json()["features"]["x"]
    assert document["flagged_by"] == ["window", "scan", "sequential"]
    assert document["scan"]["alarm"]
    assert document["scan"]["alarms_total"] == 1
    assert document["sequential"]["alarm"]
    assert document["sequential"]["alarms_total"] >= 1
    assert document["first_flag"]["detector"] == "sequential"
    assert document["first_flag"]["messages"] < 100


def test_compare_has_no_scan_and_no_sequential_test() -> None:
    config = _config(detector={"method": "mixture_cusum"})
    rng = np.random.default_rng(6)
    reference = {"x": _column(rng.normal(size=5000)), "y": _column(rng.normal(size=5000))}
    current = {"x": _column(rng.normal(loc=2.0, size=2000)),
               "y": _column(rng.normal(size=2000))}
    report = compare_columns(config, reference, current).features["x"]
    assert report.flagged_by == ("window",)
    assert report.scan_score is None
    assert report.sequential_score is None


def test_replay_with_the_sequential_test_names_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(8)
    (tmp_path / "reference.csv").write_text(
        "x,y\n" + "".join(f"{a},{b}\n" for a, b in rng.normal(size=(5000, 2))))
    (tmp_path / "config.yaml").write_text(
        "features: [{name: x}, {name: y}]\nwindow: {size: 1000, panes: 10}\n"
        "baseline: {path: baseline.json}\ndetector: {method: mixture_cusum}\n")
    stream = [{"x": float(v), "y": float(w)} for v, w in rng.normal(size=(2000, 2))]
    stream += [{"x": float(v) + 3.0, "y": float(w)} for v, w in rng.normal(size=(500, 2))]
    (tmp_path / "stream.jsonl").write_text("".join(json.dumps(m) + "\n" for m in stream))
    config = str(tmp_path / "config.yaml")
    assert cli_main(["baseline", "build", "--config", config, "--input",
                     str(tmp_path / "reference.csv")]) == 0
    assert cli_main(["replay", "--config", config, "--input",
                     str(tmp_path / "stream.jsonl")]) == 0
    out = capsys.readouterr().out
    flag = re.search(r"^  x: after message (\d+), by the sequential test$", out, re.M)
    assert flag, out
    assert 2000 < int(flag.group(1)) < 2100  # the message of the alarm, before the pane close
    assert "  y:" not in out.split("first flagged:")[1]


def test_an_event_time_window_is_scanned_pane_by_pane() -> None:
    """Panes of one minute: the scan sees each minute's messages as a pane, and names
    the message of the pane close that showed the shift."""
    config = _config(window={"size": "10m", "panes": 10})
    monitor = _monitor(config)
    rng = np.random.default_rng(9)
    payloads = [json.dumps({"x": float(v), "y": float(w)}).encode()
                for v, w in rng.normal(size=(3000, 2))]
    payloads += [json.dumps({"x": float(v) + 2.0, "y": float(w)}).encode()
                 for v, w in rng.normal(size=(600, 2))]
    times = 1_700_000_000.0 + np.arange(len(payloads), dtype=np.float64) * 0.6  # 100 a minute
    for start in range(0, len(payloads), 250):
        monitor.process_payloads(payloads[start:start + 250], times[start:start + 250])
    report = monitor.report().features["x"]
    assert report.first_flag_detector == "scan"
    assert report.first_flag_messages is not None
    # The shift starts at message 3,000, within a minute (and a pane) of its start.
    assert 3000 < report.first_flag_messages <= 3200
    assert monitor.report().features["y"].scan_alarms_total == 0


def test_the_screen_never_hides_a_rejection() -> None:
    """A pane close skips the full test where a bound says no scale can reject: over pane
    closes of null and shifted data, of every size around the pooling edge, with bins the
    reference left empty, the alarms are those of the full test at every scale."""
    rng = np.random.default_rng(10)
    screened = exact = 0
    for trial in range(300):
        n_bins = int(rng.integers(2, 30))
        law = rng.dirichlet(np.full(n_bins, 0.7))
        reference = rng.multinomial(int(rng.integers(50, 5000)), law)
        occupied = int(np.count_nonzero(reference))
        scan = PaneScan(reference, np.array([0]), np.array([occupied]), panes=4,
                        false_alarms_per_million=float(rng.choice([1.0, 100.0, 1e4])),
                        bin_slots=np.arange(n_bins), first_feature_slots=slice(0, n_bins + 2))
        pane_size = int(rng.integers(5, 400))
        panes = []
        for _ in range(6):
            moved = law if rng.random() < 0.6 else rng.dirichlet(np.full(n_bins, 1.0))
            pane = rng.multinomial(pane_size, moved)
            panes.append(pane)
            scan.on_change(None, np.concatenate([pane, [0, 0]]))
            scan.close()
            level = scale_level(scan.false_alarms_per_million, pane_size, 3)
            expected = False
            for scale in (1, 2, 4):
                if scale > len(panes):
                    continue
                window = np.sum(panes[-scale:], axis=0)
                if window.sum() < max(30, 10 * occupied):
                    continue
                _, _, p_value = homogeneity_test(window, reference, np.array([0]))
                expected |= bool(p_value[0] <= level)
            assert bool(scan.holding[0]) == expected, trial
            exact += expected
            screened += scan._last_p_value is None
    assert exact > 50  # rejections were there to hide
    assert screened > 300  # and the screen skipped the full test often


def _one_feature_scan(reference: np.ndarray, panes: int = 4) -> PaneScan:
    return PaneScan(reference, np.array([0]), np.array([np.count_nonzero(reference)]),
                    panes=panes, false_alarms_per_million=1.0,
                    bin_slots=np.arange(len(reference)),
                    first_feature_slots=slice(0, len(reference) + 2))


def _arrive(scan: PaneScan, pane: np.ndarray) -> None:
    scan.on_change(None, np.concatenate([pane, [0, 0]]))


def test_a_pane_close_without_messages_tests_nothing_and_counts_as_an_empty_pane() -> None:
    """An event-time window can close a pane no message fell in: it has no false-alarm
    budget (its level is 0), and the next closes see it as a pane of nothing."""
    reference = np.full(4, 5000)
    scan = _one_feature_scan(reference)
    _arrive(scan, np.array([400, 0, 0, 0]))  # the newest pane all in one bin
    assert scan.close()[0]
    assert not scan.close()[0]  # no arrivals: nothing tested, the alarm is over
    assert not scan.holding[0]
    assert np.isnan(scan.scores[0])
    _arrive(scan, np.array([100, 100, 100, 100]))
    scan.close()
    # Scales 1 and 2 hold the last pane, and it with the empty one (scale 4 waits for a
    # fourth pane): the empty pane adds nothing to the sums.
    expected = []
    for window in ([100, 100, 100, 100], [100, 100, 100, 100]):
        _, _, p_value = homogeneity_test(np.array(window), reference, np.array([0]))
        expected.append(np.log(p_value[0]) / np.log(scale_level(1.0, 400, 3)))
    assert scan.scores[0] == pytest.approx(max(expected), rel=1e-12)


def test_a_new_reference_keeps_the_open_pane_and_the_last_close() -> None:
    scan = _one_feature_scan(np.full(4, 5000))
    _arrive(scan, np.array([100, 100, 100, 100]))
    scan.close()
    scan.scores  # noqa: B018 (the old reference's test, computed and kept until it changes)
    _arrive(scan, np.array([300, 0, 0, 0]))  # in the open pane when the reference changes
    new_reference = np.array([2000, 6000, 6000, 6000])
    scan.set_reference(new_reference, np.array([4]))
    # The last close is tested against the new reference when its scores are asked for.
    _, _, p_value = homogeneity_test(np.array([100, 100, 100, 100]), new_reference,
                                     np.array([0]))
    assert scan.scores[0] == pytest.approx(
        np.log(p_value[0]) / np.log(scale_level(1.0, 400, 3)), rel=1e-12)
    assert scan.close()[0]  # the pane of 300 in one bin came along
    assert scan.scale_messages[0] == 300
