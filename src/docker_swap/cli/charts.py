"""Charts of a run people can look at: requests per second, failed requests and p99 latency
over time, with the phases of each swap marked (matplotlib, an extra: `pip install
'docker-swap[charts]'`). Written as SVG, as PNG (`.png`), or as an HTML page around the SVG
(`.html`) with a summary.

A `Timeline` is what a load client saw (each request's time, latency, and whether it failed)
and the phases of the deploy (name, start, end), on one clock (time.monotonic()).
"""

from __future__ import annotations

import html
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docker_swap.errors import InvalidSettings

if TYPE_CHECKING:
    from matplotlib.axes import Axes

BUCKET_SECONDS = 0.5
_COLOURS = {"start": "#c6dbef", "ready": "#9ecae1", "switch": "#fd8d3c", "drain": "#fdd0a2",
            "retire": "#d9d9d9", "watch": "#c7e9c0", "undo": "#fcbba1", "batch": "#9ecae1",
            "compose": "#fcbba1", "canary": "#c7e9c0", "promote": "#9ecae1", "abort": "#fdd0a2"}


@dataclass
class Timeline:
    title: str
    requests: list[tuple[float, float | None]] = field(default_factory=list)
    """(when, latency in ms) of each request; None: it failed."""
    phases: list[tuple[str, float, float]] = field(default_factory=list)
    """(name, start, end): a phase of a swap (`app 2/3 switch`, or `switch`)."""
    summary: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Buckets:
    """The timeline in BUCKET_SECONDS steps, from its first request."""

    starts: list[float]
    rate: list[float]
    failed: list[int]
    p99: list[float]


def buckets(timeline: Timeline) -> Buckets:
    if not timeline.requests:
        return Buckets([], [], [], [])
    origin = min(t for t, _ in timeline.requests)
    count = int((max(t for t, _ in timeline.requests) - origin) // BUCKET_SECONDS) + 1
    latencies: list[list[float]] = [[] for _ in range(count)]
    failed = [0] * count
    for when, ms in timeline.requests:
        index = int((when - origin) // BUCKET_SECONDS)
        if ms is None:
            failed[index] += 1
        else:
            latencies[index].append(ms)
    # The last step ends at the last request, not a full step later: its rate is over the
    # time it covers (else the chart shows a collapse at the end that never happened).
    spans = [BUCKET_SECONDS] * count
    last = max(t for t, _ in timeline.requests) - origin - (count - 1) * BUCKET_SECONDS
    spans[-1] = max(last, BUCKET_SECONDS / 5)
    return Buckets(
        [i * BUCKET_SECONDS for i in range(count)],
        [(len(ms) + f) / span for ms, f, span in zip(latencies, failed, spans, strict=True)],
        failed, [_p99(ms) for ms in latencies])


def _p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def write(timeline: Timeline, path: Path) -> None:
    """The chart as SVG; as PNG when `path` ends in .png; as an HTML page with the summary
    when it ends in .html."""
    if path.suffix.lower() == ".png":
        path.write_bytes(render(timeline, "png"))
        return
    svg = render_svg(timeline)
    if path.suffix.lower() in (".html", ".htm"):
        items = "".join(f"<li>{html.escape(line)}</li>" for line in timeline.summary)
        path.write_text(f"<!doctype html><meta charset=utf-8><title>{html.escape(timeline.title)}"
                        f"</title><body style='font-family:sans-serif;max-width:60em'>"
                        f"<h1>{html.escape(timeline.title)}</h1><ul>{items}</ul>{svg}</body>\n")
    else:
        path.write_text(svg)


def render_svg(timeline: Timeline) -> str:
    return render(timeline, "svg").decode()


def render(timeline: Timeline, image_format: str) -> bytes:
    """The chart as an `image_format` (svg or png) file's bytes."""
    try:
        import matplotlib  # noqa: PLC0415 (an extra)
    except ImportError:
        raise InvalidSettings("a chart needs matplotlib, which is not installed.",
                              hint="Install it: `pip install 'docker-swap[charts]'`.") from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    from matplotlib import pyplot  # noqa: PLC0415

    data = buckets(timeline)
    origin = min((t for t, _ in timeline.requests), default=0.0)
    figure, axes = pyplot.subplots(3, 1, sharex=True, figsize=(10, 6.5))
    panels = ((data.rate, "requests/s", "#3182bd"), (data.failed, "failed", "#de2d26"),
              (data.p99, "p99 ms", "#756bb1"))
    for axis, (values, label, colour) in zip(axes, panels, strict=True):
        axis.step(data.starts, values, where="post", color=colour, linewidth=1.2)
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        _mark(axis, timeline.phases, origin)
    axes[1].set_ylim(bottom=0, top=max(max(data.failed, default=0), 1) * 1.2)
    axes[0].set_title(timeline.title)
    axes[-1].set_xlabel("seconds")
    from matplotlib.patches import Patch  # noqa: PLC0415

    handles = [Patch(color=c, label=n) for n, c in _COLOURS.items()
               if any(_kind(name) == n for name, _, _ in timeline.phases)]
    if handles:
        axes[0].legend(handles=handles, loc="upper right", fontsize="small", ncol=len(handles))
    figure.tight_layout()
    out = io.BytesIO()
    metadata = {"Date": None} if image_format == "svg" else {}
    figure.savefig(out, format=image_format, metadata=metadata, dpi=100)
    pyplot.close(figure)
    return out.getvalue()


def _mark(axis: Axes, phases: Sequence[tuple[str, float, float]], origin: float) -> None:
    for name, start, end in phases:
        colour = _COLOURS.get(_kind(name))
        if colour:
            axis.axvspan(start - origin, max(end, start + 0.05) - origin, facecolor=colour,
                         alpha=0.6, edgecolor="white", linewidth=0.8)


def _kind(name: str) -> str:
    last = name.rsplit(" ", 1)[-1]
    return "undo" if " undo" in name or name.startswith("undo") else last
