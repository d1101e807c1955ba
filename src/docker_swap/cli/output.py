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

from docker_swap.errors import DeployFailed, SwapError
from docker_swap.observer import PhaseResult, SilentObserver
from docker_swap.rollout.reports import CanaryState, DeployReport
from docker_swap.rollout.verify import VerifyReport

if TYPE_CHECKING:
    from docker_swap.rollout.canary_watch import Decision
    from docker_swap.rollout.outcomes import ServiceOutcome, UpReport
    from docker_swap.rollout.recover import RecoveryReport
    from docker_swap.targets.compose.plan import ServicePlan

_RESULTS = {0: "deployed", 1: "rolled_back", 2: "refused", 3: "needs_attention"}
_UP_RESULTS = {0: "done", 1: "failed", 3: "needs_attention"}
"""`up`'s overall result; each service's own outcome is in `services`."""
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

    def aborted(self, report: DeployReport) -> None:
        pass

    def decided(self, decisions: list[Decision]) -> None:
        """--canary-for: what became of each canary; failures on stderr."""
        for decision in decisions:
            if decision.exit_code:
                self.err.print(f"[red]{decision.service}: {decision.outcome}[/] "
                               f"{escape(decision.reason)}")
                if decision.error is not None and decision.error.hint:
                    self.err.print(f"  {escape(decision.error.hint)}")
                elif decision.outcome == "kept":
                    self.err.print(f"  Run `docker-swap promote {decision.service}` or "
                                   f"`docker-swap abort {decision.service}`.")

    def recovered(self, report: RecoveryReport) -> None:
        pass

    def service_started(self, service: ServicePlan) -> None:
        pass

    def service_finished(self, outcome: ServiceOutcome) -> None:
        pass

    def upped(self, report: UpReport) -> None:
        """`up`: the plan (dry run), or every service's outcome."""
        for service in report.services:
            if service.outcome not in ("planned", "unchanged", "done", "canary"):
                self.err.print(f"[red]{service.name}: {service.outcome}[/] "
                               f"{escape(service.error or service.detail)}")
                if service.hint:
                    self.err.print(f"  {escape(service.hint)}")

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
        if report.canary is not None:
            self._canary(report.service, report.seconds, report.canary)
            return
        self.out.print(
            f"[green]done[/]    {report.seconds:6.2f}s  {report.service} now runs "
            f"{', '.join(report.new)} (replaced {', '.join(report.old)})"
            + (f", release {report.release}" if report.release else "")
        )

    def _canary(self, service: str, seconds: float, canary: CanaryState) -> None:
        release = f", release {canary.release}" if canary.release else ""
        self.out.print(
            f"[green]canary[/]  {seconds:6.2f}s  {', '.join(canary.containers)} get "
            f"{canary.weighed:.1%} of {service}'s new requests (asked: {canary.share}) beside "
            f"{', '.join(canary.old)}{release}")
        then = (f"watched for {canary.decide_after:g}s, then promoted or aborted"
                if canary.decide_after else f"`docker-swap promote {service}` rolls it out, "
                f"`docker-swap abort {service}` removes it")
        self.out.print(f"        {escape(then)}")

    def aborted(self, report: DeployReport) -> None:
        if report.verify:
            self._verified(report.verify)
        self.out.print(f"[green]aborted[/] {report.seconds:6.2f}s  {report.service} runs "
                       f"{', '.join(report.new)} again; its canary {', '.join(report.old)} "
                       "was removed")

    def decided(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if decision.promoted is not None:
                self.upped(decision.promoted)
            if decision.aborted is not None:
                self.aborted(decision.aborted)
            colour = "green" if not decision.exit_code else "red"
            self.out.print(f"[{colour}]{decision.outcome}[/] {decision.service}: "
                           f"{escape(decision.reason)}")
        super().decided(decisions)

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

    def service_started(self, service: ServicePlan) -> None:
        if service.action != "unchanged":
            self.out.print(f"[bold]{service.name}[/]: {service.action} "
                           f"({escape(service.reason)})")

    def upped(self, report: UpReport) -> None:
        width = max((len(s.name) for s in report.services), default=0)
        if report.dry_run:
            for service in report.services:
                self.out.print(f"{service.name:<{width}}  {service.action:<9}  "
                               f"{escape(service.reason)}")
                if service.downtime:
                    self.out.print(f"{'':<{width}}  [yellow]downtime[/]   "
                                   f"{escape(service.downtime)}")
            return
        for service in report.services:
            colour = "green" if service.outcome in ("done", "unchanged", "canary") else "red"
            self.out.print(f"{service.name:<{width}}  [{colour}]{service.outcome:<11}[/] "
                           f"{service.seconds:6.2f}s  {escape(service.detail)}")
        super().upped(report)
        if isinstance(report.verify, VerifyReport):
            self._verified(report.verify)
        self.out.print(f"[bold]up[/]  {report.seconds:6.2f}s  exit {report.exit_code}")


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
        batch = name.rpartition(" ")[0]  # `up`: "app 2/3 start"; a deploy's phases have none
        if self._rows and self._rows[-1].name.rpartition(" ")[0] != batch:
            self._flush()
        self._rows.append(_Row(name))

    def service_started(self, service: ServicePlan) -> None:
        self._flush()
        super().service_started(service)

    def _flush(self) -> None:
        """Print the rows of a finished batch above the live view, which keeps only the
        current batch (a long `up` would not fit on the screen)."""
        rows, self._rows = self._rows, []
        for row in rows:
            mark = "[red]✗[/]" if row.seconds is None else "[green]✓[/]"
            seconds = time.monotonic() - row.started if row.seconds is None else row.seconds
            self._live.console.print(f"{mark} {escape(row.name):<7} {seconds:6.2f}s  "
                                     f"{escape(row.detail)}")

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
    """One object per command; with --canary-for, the canary's start and the decision."""

    def __init__(self, out: Console, err: Console) -> None:
        super().__init__(out, err)
        self._start: dict[str, Any] | None = None

    def deployed(self, report: DeployReport) -> None:
        result = "canary" if report.canary else "deployed"
        data: dict[str, Any] = {"result": result, **asdict(report)}
        data["seconds"] = round(report.seconds, 3)
        for phase in data["phases"]:
            phase["seconds"] = round(phase["seconds"], 3)
        if report.canary is not None and report.canary.decide_after:
            self._start = data  # printed with the decision
            return
        print(json.dumps(_finite(data)))

    def aborted(self, report: DeployReport) -> None:
        print(json.dumps(_finite({"result": "aborted", **asdict(report)})))

    def decided(self, decisions: list[Decision]) -> None:
        codes = [d.exit_code for d in decisions]
        code = 3 if 3 in codes else 1 if 1 in codes else max(codes, default=0)
        data = {"result": _UP_RESULTS.get(code, "failed"), "exit_code": code,
                "started": self._start, "notes": self.notes,
                "decisions": [{"service": d.service, "outcome": d.outcome, "reason": d.reason,
                               "exit_code": d.exit_code,
                               "promoted": asdict(d.promoted) if d.promoted else None,
                               "aborted": asdict(d.aborted) if d.aborted else None,
                               "error": d.error.message if d.error else None}
                              for d in decisions]}
        print(json.dumps(_finite(data)))

    def recovered(self, report: RecoveryReport) -> None:
        print(json.dumps({"result": report.action, **asdict(report)}))

    def upped(self, report: UpReport) -> None:
        data: dict[str, Any] = {
            "result": "planned" if report.dry_run else _UP_RESULTS[report.exit_code],
            "exit_code": report.exit_code, **asdict(report),
            "seconds": round(report.seconds, 3), "notes": self.notes,
        }
        for service in data["services"]:
            service["seconds"] = round(service["seconds"], 3)
            service["started"] = round(service["started"], 3)
            for batch in service["batches"]:
                batch["seconds"] = round(batch["seconds"], 3)
                for phase in batch["phases"]:
                    phase["seconds"] = round(phase["seconds"], 3)
        if any(s.canary and s.canary.decide_after for s in report.services) and \
                self._start is None:
            self._start = data  # printed with the decision
            return
        print(json.dumps(_finite(data)))

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


def presenter(*, as_json: bool, quiet: bool, live: bool = True) -> Presenter:
    """The presenter for these flags; `live` False for a long-lived process (plain lines)."""
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if as_json:
        return Json(out, err)
    if quiet:
        return Quiet(out, err)
    return Live(out, err) if out.is_terminal and live else Lines(out, err)
