"""How the demo's report looks: lines, one JSON object, and the timeline of its chart."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from docker_swap.cli.charts import Timeline
from docker_swap.observer import PhaseResult

if TYPE_CHECKING:
    from docker_swap.demo import DemoReport


def demo_report(report: DemoReport) -> str:
    """The demo's report, as lines for people."""
    def ms(pair: tuple[float, float]) -> str:
        return f"p50 {pair[0]:.1f} ms, p99 {pair[1]:.1f} ms"

    failed = sum(report.failed.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(report.failed.items()))
    lines = [
        f"requests sent   {sum(report.sent.values()):,} "
        f"({', '.join(f'{m} {n:,}' for m, n in sorted(report.sent.items()))})",
        f"failed          {failed}" + (f" ({kinds})" if kinds else ""),
        f"versions seen   {', '.join(f'{v} {n:,}' for v, n in sorted(report.versions.items()))}",
        f"latency         before the swaps {ms(report.before_ms)}; during {ms(report.during_ms)}",
    ]
    for run in report.swaps:
        lines.append(f"swap {run.number} -> {run.version}  = {run.seconds:.2f}s")
        batches: dict[str, list[PhaseResult]] = {}
        for phase in run.phases:  # "app 1/2 start": service and batch, then the phase
            batch, _, name = phase.name.rpartition(" ")
            batches.setdefault(batch, []).append(PhaseResult(name, phase.seconds, ""))
        for batch, phases in batches.items():
            steps = "  ".join(f"{p.name} {p.seconds:.2f}s" for p in phases)
            lines.append(f"  {batch:<7} {steps}  = {sum(p.seconds for p in phases):.2f}s")
    return "\n".join(lines)


def demo_timeline(report: DemoReport) -> Timeline:
    """The demo's run, for its chart."""
    failed = sum(report.failed.values())
    return Timeline(
        f"docker-swap demo: {len(report.swaps)} swap(s) under load, {failed} failed",
        list(report.requests), list(report.phases),
        [f"{sum(report.sent.values()):,} requests, {failed} failed",
         f"p50/p99 before: {report.before_ms[0]:.1f}/{report.before_ms[1]:.1f} ms; during: "
         f"{report.during_ms[0]:.1f}/{report.during_ms[1]:.1f} ms",
         *(f"swap {s.number} to {s.version}: {s.seconds:.1f} s" for s in report.swaps)])


def demo_json(report: DemoReport) -> str:
    """The report as JSON (without each request's time: --report draws those)."""
    data = asdict(report)
    del data["requests"]
    return json.dumps(data)
