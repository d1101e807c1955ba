"""How results look. One presenter per mode, each an Observer of the sequence, chosen by the CLI:

    Live    a terminal: phases with a spinner, elapsed time and the new container's last answer
    Lines   not a terminal: one line per finished phase, then the total
    Quiet   --quiet: nothing but failures
    Json    --json: one JSON object at the end, success or not

Colours follow rich, which honours NO_COLOR. Only the CLI uses this module.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live as RichLive
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .errors import DeployFailed, SwapError
from .observer import PhaseResult, SilentObserver
from .swap import DeployReport
from .verify import VerifyReport

if TYPE_CHECKING:
    from .demo import DemoReport
    from .recovery import RecoveryReport

_RESULTS = {0: "deployed", 1: "rolled_back", 2: "refused", 3: "needs_attention"}
_PREFIXES = {1: "rolled back", 2: "refused", 3: "needs attention"}


class Presenter(SilentObserver):
    """Observer of a deploy and printer of its outcome; the base prints nothing."""

    def __init__(self, out: Console, err: Console) -> None:
        self.out, self.err = out, err
        self.notes: list[str] = []

    def __enter__(self) -> Presenter:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def note(self, text: str) -> None:
        self.notes.append(text)

    def deployed(self, report: DeployReport) -> None:
        pass

    def recovered(self, report: RecoveryReport) -> None:
        pass

    def failed(self, error: SwapError, service: str) -> None:
        prefix = _PREFIXES.get(error.exit_code, "error")
        self.err.print(f"[red]{prefix}:[/] {escape(error.message)}")
        if error.hint:
            self.err.print(f"  {escape(error.hint)}")
        if isinstance(error, DeployFailed) and error.logs.strip():
            self.err.print(f"{escape(error.logs_title)}:")
            for line in error.logs.rstrip().splitlines():
                self.err.print(f"  | {escape(line)}")


class Quiet(Presenter):
    """--quiet: the exit code tells; failures still say what happened."""


class Lines(Presenter):
    def phase_finished(self, result: PhaseResult) -> None:
        self.out.print(f"{result.name:<7} {result.seconds:6.2f}s  {escape(result.detail)}")

    def note(self, text: str) -> None:
        super().note(text)
        self.out.print(f"[yellow]note[/]    {escape(text)}")

    def deployed(self, report: DeployReport) -> None:
        if report.verify:
            self._verified(report.verify)
        self.out.print(
            f"[green]done[/]    {report.seconds:6.2f}s  {report.service} now runs "
            f"{', '.join(report.new)} (replaced {', '.join(report.old)})"
            + (f", release {report.release}" if report.release else "")
        )

    def failed(self, error: SwapError, service: str) -> None:
        if isinstance(error.verify, VerifyReport):
            self._verified(error.verify)
        super().failed(error, service)

    def _verified(self, verify: VerifyReport) -> None:
        colour = "red" if verify.failed else "green"
        self.out.print(f"[{colour}]verify[/]  {escape(verify.summary())}")

    def recovered(self, report: RecoveryReport) -> None:
        for note in report.notes:
            self.out.print(f"[yellow]note[/]    {escape(note)}")
        self.out.print(f"[green]{report.action}[/]  {escape(report.detail)}")


@dataclass
class _Row:
    name: str
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    detail: str = ""


class Live(Lines):
    """On a terminal: the phases so far, the running one with a spinner and its latest news."""

    def __init__(self, out: Console, err: Console) -> None:
        super().__init__(out, err)
        self._rows: list[_Row] = []
        self._live = RichLive(get_renderable=self._render, console=out, refresh_per_second=12,
                              transient=False)

    def __enter__(self) -> Live:
        self._live.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._live.stop()

    def phase_started(self, name: str) -> None:
        self._rows.append(_Row(name))

    def phase_finished(self, result: PhaseResult) -> None:
        row = self._rows[-1]
        row.seconds, row.detail = result.seconds, result.detail

    def note(self, text: str) -> None:
        self.notes.append(text)
        self._live.console.print(f"[yellow]note[/] {escape(text)}")

    def progress(self, text: str) -> None:
        if self._rows:
            self._rows[-1].detail = text

    def failed(self, error: SwapError, service: str) -> None:
        self._live.stop()
        super().failed(error, service)

    def _render(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        for row in self._rows:
            running = row.seconds is None
            seconds = time.monotonic() - row.started if running else row.seconds
            mark: RenderableType = Spinner("dots", style="cyan") if running else Text(
                "✓", style="green")
            table.add_row(mark, Text(f"{row.name:<7}"), Text(f"{seconds:6.2f}s"),
                          Text(row.detail, style="dim" if running else ""))
        return Group(table)


class Json(Presenter):
    def deployed(self, report: DeployReport) -> None:
        data: dict[str, Any] = {"result": "deployed", **asdict(report)}
        data["seconds"] = round(report.seconds, 3)
        for phase in data["phases"]:
            phase["seconds"] = round(phase["seconds"], 3)
        print(json.dumps(_finite(data)))

    def recovered(self, report: RecoveryReport) -> None:
        print(json.dumps({"result": report.action, **asdict(report)}))

    def failed(self, error: SwapError, service: str) -> None:
        data: dict[str, Any] = {
            "result": _RESULTS.get(error.exit_code, "error"),
            "service": service,
            "error": error.message,
            "error_type": type(error.cause if isinstance(error, DeployFailed) else error).__name__,
            "hint": error.hint,
            "notes": self.notes,
        }
        if isinstance(error, DeployFailed):
            data |= {"container": error.container, "logs": error.logs}
        if isinstance(error.verify, VerifyReport):
            data["verify"] = asdict(error.verify)
        print(json.dumps(_finite(data)))


def _finite(data: Any) -> Any:
    """NaN (a latency nobody measured) is not JSON: null instead."""
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    if isinstance(data, float) and math.isnan(data):
        return None
    return data


def presenter(*, as_json: bool, quiet: bool) -> Presenter:
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if as_json:
        return Json(out, err)
    if quiet:
        return Quiet(out, err)
    return Live(out, err) if out.is_terminal else Lines(out, err)


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
        phases = "  ".join(f"{p.name} {p.seconds:.2f}s" for p in run.phases)
        lines.append(f"swap {run.number} -> {run.version}  {phases}  = {run.seconds:.2f}s")
    return "\n".join(lines)


def demo_json(report: DemoReport) -> str:
    return json.dumps(asdict(report))
