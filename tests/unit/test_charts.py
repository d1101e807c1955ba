"""The charts: a timeline in half-second steps, drawn as SVG (or a page around it)."""

from __future__ import annotations

import math
from pathlib import Path

from docker_swap.cli.charts import Timeline, buckets, write


def timeline() -> Timeline:
    requests: list[tuple[float, float | None]] = [(100.0 + i * 0.01, 2.0) for i in range(100)]
    requests += [(100.7, None), (100.8, None)]  # two failures in the second step
    return Timeline("a swap", requests, [("app 1/1 switch", 100.5, 100.6),
                                         ("app 1/1 drain", 100.6, 101.0)], ["2 failed"])


def test_a_timeline_is_counted_in_half_second_steps() -> None:
    steps = buckets(timeline())

    assert steps.starts == [0.0, 0.5]
    assert steps.rate == [100.0, 104.0]  # 50 answers then 50 and 2 failures, per second
    assert steps.failed == [0, 2]
    assert steps.p99 == [2.0, 2.0]
    assert buckets(Timeline("nothing")).starts == []
    assert math.isnan(buckets(Timeline("x", [(0.0, None)])).p99[0])


def test_the_chart_is_svg_with_its_panels_and_phases_or_a_page_with_the_summary(
        tmp_path: Path) -> None:
    write(timeline(), tmp_path / "run.svg")
    write(timeline(), tmp_path / "run.html")

    svg = (tmp_path / "run.svg").read_text()
    assert svg.startswith("<?xml") and "requests/s" in svg and "p99 ms" in svg
    assert "switch" in svg and "drain" in svg  # the phases' legend
    page = (tmp_path / "run.html").read_text()
    assert "<li>2 failed</li>" in page and "<svg" in page
