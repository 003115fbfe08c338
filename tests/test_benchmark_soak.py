"""The soak benchmark's judgement of its samples and its block of RESULTS.md.

Nothing here needs a broker or is timed; the soak itself is ``python benchmarks/soak.py``.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import (
    RSS_GROWTH_MAX_MB,
    SOAK_END,
    SOAK_START,
    Sample,
    analyse,
    counted,
    expected_drift_events,
    extract_block,
    keep_block,
    metric_value,
    replace_block,
    shifted,
)

MB_IN_KIB = 1e6 / 1024


def series(rss_mb, threads=None, fds=None, messages=100):
    """Samples one second apart, ``messages`` more counted at each."""
    threads = threads or [12] * len(rss_mb)
    fds = fds or [20] * len(rss_mb)
    return [Sample(float(i), round(rss * MB_IN_KIB), threads[i], fds[i], i * 0.5,
                   (i + 1) * messages)
            for i, rss in enumerate(rss_mb)]


def test_growth_is_measured_from_the_end_of_warm_up():
    # 1,000 messages, 100 more counted at each sample; warm-up 20 %: it ends at the second.
    samples = series([50.0, 120.0, 123.0, 121.0, 122.0, 124.0, 122.0, 122.0, 122.0, 121.5])
    found = analyse(samples, 1_000, 0.2)
    assert found.warmup_messages == 200
    assert found.warmup_end_s == 1.0
    assert found.post_samples == 9
    # The level at the end of warm-up: the median of the first three samples after it.
    assert found.rss_warm_mb == pytest.approx(121.0, abs=0.01)
    assert found.rss_final_mb == pytest.approx(121.5, abs=0.01)
    assert found.rss_growth_mb == pytest.approx(0.5, abs=0.01)
    assert found.rss_max_mb == pytest.approx(124.0, abs=0.01)
    assert found.rss_ok


def test_a_steady_climb_misses_the_growth_target_and_shows_in_the_slope():
    samples = series([100.0 + 0.5 * i for i in range(40)])
    found = analyse(samples, 4_000, 0.1)
    assert found.rss_growth_mb > RSS_GROWTH_MAX_MB
    assert not found.rss_ok
    # 0.5 MB per sample of 100 messages: 5,000 MB per 10^6 messages.
    assert found.rss_slope_mb_per_million == pytest.approx(5_000, rel=1e-3)


def test_short_lived_threads_and_fds_are_flat_but_a_rising_floor_is_not():
    n = 40
    spikes = [13 if i % 7 == 0 else 12 for i in range(n)]
    found = analyse(series([100.0] * n, threads=spikes, fds=[s + 8 for s in spikes]),
                    4_000, 0.1)
    assert (found.threads_min, found.threads_max) == (12, 13)
    assert found.threads_flat
    assert found.fds_flat
    climbing = [12 + i // 10 for i in range(n)]
    found = analyse(series([100.0] * n, threads=climbing, fds=[20 + i for i in range(n)]),
                    4_000, 0.1)
    assert found.threads_floor == (12, 15)
    assert not found.threads_flat
    assert not found.fds_flat


def test_a_run_too_short_to_judge_is_refused():
    with pytest.raises(ValueError, match="never ended"):
        analyse(series([100.0] * 3), 10_000, 0.1)
    with pytest.raises(ValueError, match="fewer than 2"):
        analyse(series([100.0] * 3), 300, 0.9)


def test_counter_resets_are_added_up_like_prometheus_increase():
    assert counted([None, 0, 1_000, 1_500, 200, None, 900]) == [
        0, 0, 1_000, 1_500, 1_700, 1_700, 2_400]


def test_metric_value_reads_one_series():
    text = "\n".join([
        "# HELP streamdrift_messages_total Messages consumed",
        "# TYPE streamdrift_messages_total counter",
        "streamdrift_messages_total 1.234e+06",
        'streamdrift_messages_created{x="y"} 5.0',
        'streamdrift_baseline_reloads_total{result="loaded"} 7.0',
        'streamdrift_baseline_reloads_total{result="refused"} 0.0',
    ])
    assert metric_value(text, "streamdrift_messages_total") == 1_234_000
    assert metric_value(text, "streamdrift_messages") is None
    assert metric_value(text, "streamdrift_baseline_reloads_total", result="refused") == 0
    assert metric_value(text, "streamdrift_baseline_reloads_total", result="loaded") == 7


def test_the_blocks_alternate_and_the_expected_drift_events_follow():
    laws = [shifted(i, 3) for i in range(12)]
    assert laws == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    # 10^7 messages in blocks of 250,000: 40 blocks, 20 shifted, the last one shifted.
    assert expected_drift_events(10_000_000, 250_000) == (20, 19)


BLOCK = f"{SOAK_START}\nnew figures\n{SOAK_END}"


def test_the_block_is_replaced_in_place_and_nothing_else_moves():
    text = (f"# results\n\n## Soak\n\n{SOAK_START}\nold figures\n{SOAK_END}\n\n"
            "## After\n\ntext\n")
    replaced = replace_block(text, BLOCK)
    assert replaced == text.replace("old figures", "new figures")
    assert replace_block(replaced, BLOCK) == replaced


def test_the_block_is_appended_in_a_section_of_its_own_when_absent():
    text = "# results\n\nsome text\n"
    assert replace_block(text, BLOCK) == f"{text}\n## Soak\n\n{BLOCK}\n"
    assert replace_block("# results", BLOCK) == f"# results\n\n## Soak\n\n{BLOCK}\n"
    assert replace_block("", BLOCK) == f"## Soak\n\n{BLOCK}\n"


def test_a_regenerated_file_keeps_the_previous_block():
    previous = replace_block("# results\n\nold run\n", BLOCK)
    assert extract_block(previous) == BLOCK
    regenerated = "# results\n\nnew run\n"
    kept = keep_block(previous, regenerated)
    assert kept == replace_block(regenerated, BLOCK)
    assert "new run" in kept
    assert "old run" not in kept
    assert keep_block("# results\n", regenerated) == regenerated
