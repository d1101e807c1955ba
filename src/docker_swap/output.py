"""How results look: plain lines for people, one JSON object for machines. Only the CLI uses it."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape

from .errors import DeployFailed, SwapError
from .observer import PhaseResult
from .recovery import RecoveryReport
from .swap import DeployReport

_RESULTS = {0: "deployed", 1: "rolled_back", 2: "refused", 3: "needs_attention"}


class LineObserver:
    """Prints one line per finished phase, and notes as they come."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def phase_started(self, name: str) -> None:
        pass

    def phase_finished(self, result: PhaseResult) -> None:
        self._console.print(
            f"{result.name:<7} {result.seconds:6.2f}s  {escape(result.detail)}"
        )

    def note(self, text: str) -> None:
        self._console.print(f"[yellow]note[/]    {escape(text)}")


def print_deployed(console: Console, report: DeployReport) -> None:
    console.print(
        f"[green]done[/]    {report.seconds:6.2f}s  {report.service} now runs "
        f"{', '.join(report.new)} (replaced {', '.join(report.old)})"
    )


def print_recovery(console: Console, report: RecoveryReport) -> None:
    console.print(f"[green]{report.action}[/]  {escape(report.detail)}")


def print_error(console: Console, error: SwapError) -> None:
    prefix = {1: "rolled back", 2: "refused", 3: "needs attention"}.get(error.exit_code, "error")
    console.print(f"[red]{prefix}:[/] {escape(error.message)}")
    if error.hint:
        console.print(f"  {escape(error.hint)}")
    if isinstance(error, DeployFailed) and error.logs.strip():
        console.print(f"last log lines of {error.container}:")
        for line in error.logs.rstrip().splitlines():
            console.print(f"  | {escape(line)}")


def deployed_json(report: DeployReport) -> str:
    data: dict[str, Any] = {"result": "deployed", **asdict(report)}
    data["seconds"] = round(report.seconds, 3)
    for phase in data["phases"]:
        phase["seconds"] = round(phase["seconds"], 3)
    return json.dumps(data)


def recovery_json(report: RecoveryReport) -> str:
    return json.dumps({"result": report.action, **asdict(report)})


def error_json(error: SwapError, service: str, notes: list[str]) -> str:
    data: dict[str, Any] = {
        "result": _RESULTS.get(error.exit_code, "error"),
        "service": service,
        "error": error.message,
        "error_type": type(error.cause if isinstance(error, DeployFailed) else error).__name__,
        "hint": error.hint,
        "notes": notes,
    }
    if isinstance(error, DeployFailed):
        data |= {"container": error.container, "logs": error.logs}
    return json.dumps(data)
