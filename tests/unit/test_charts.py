"""The charts: a timeline in half-second steps, drawn as SVG, PNG, or a page around the SVG."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from docker_swap.cli.charts import Timeline, buckets, write


def timeline() -> Timeline:
    requests: list[tuple[float, float | None]] = [(100.0 + i * 0.01, 2.0) for i in range(100)]
    requests += [(100.7, None), (100.8, None)]  # two failures in the second step
    return Timeline("a swap", requests, [("app 1/1 switch", 100.5, 100.6),
                                         ("app 1/1 drain", 100.6, 101.0)], ["2 failed"])


def test_a_timeline_is_counted_in_half_second_steps() -> None:
    steps = buckets(timeline())

    assert steps.starts == [0.0, 0.5]
    assert steps.rate[0] == 100.0  # 50 answers in half a second
    # then 50 answers and 2 failures in the 0.49 s the last step covers (to the last request)
    assert steps.rate[1] == pytest.approx(52 / 0.49)
    assert steps.failed == [0, 2]
    assert steps.p99 == [2.0, 2.0]
    assert buckets(Timeline("nothing")).starts == []
    assert math.isnan(buckets(Timeline("x", [(0.0, None)])).p99[0])


def test_the_chart_is_svg_with_its_panels_and_phases_or_a_page_with_the_summary(
        tmp_path: Path) -> None:
    write(timeline(), tmp_path / "run.svg")
    write(timeline(), tmp_path / "run.html")
    write(timeline(), tmp_path / "run.png")

    svg = (tmp_path / "run.svg").read_text()
    assert svg.startswith("<?xml") and "requests/s" in svg and "p99 ms" in svg
    assert "switch" in svg and "drain" in svg  # the phases' legend
    page = (tmp_path / "run.html").read_text()
    assert "<li>2 failed</li>" in page and "<svg" in page
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG")
