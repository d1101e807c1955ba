"""`autoupdate [SERVICE...]`: follow the registry and deploy what moved (rollout/autoupdate.py),
once (`--once`, for cron or CI) or every `--interval`; what it finds and how each update ends
is printed, POSTed to every `--notify URL` and counted for `--metrics`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from docker_swap.cli.app import cli, fail, renamed
from docker_swap.cli.flags import readiness_options, release_options
from docker_swap.cli.output import Presenter, presenter
from docker_swap.cli.targeting import stack_of, swarm_option
from docker_swap.errors import InvalidSettings, redact
from docker_swap.metrics import Metrics
from docker_swap.notify import Notifier
from docker_swap.observer import PhaseResult
from docker_swap.options import DEFAULT_INTERVAL, ComposeOptions
from docker_swap.rollout.verify import VerifyReport
from docker_swap.settings import parse_duration, parse_verify

if TYPE_CHECKING:  # the rollout layer loads when the command runs
    from docker_swap.rollout.autoupdate import Check, Ended, Move


@cli.command("autoupdate")
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("--interval", metavar="DURATION", default=f"{DEFAULT_INTERVAL:g}s",
              show_default=True, help="Time between two checks (without --once).")
@click.option("--once", is_flag=True, help="Check and update once, then exit (cron, CI).")
@click.option("--notify", metavar="URL", multiple=True,
              help="POST one JSON event here per check that found something and per update "
              "outcome (repeatable).")
@click.option("--metrics", metavar="ADDRESS",
              help="Serve Prometheus metrics at HOST:PORT (needs docker-swap[metrics]).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object (--once), or one JSON line per event.")
@readiness_options
@release_options
@swarm_option
@click.pass_obj
def autoupdate_command(compose: ComposeOptions, /, services: tuple[str, ...], interval: str,
                       once: bool, notify: tuple[str, ...], metrics: str | None,
                       as_json: bool, verify: tuple[str, ...], verify_rate: str,
                       swarm: bool | None, **flags: Any) -> None:
    """Follow the registry: pull what the followed images' tags point to now and deploy it
    with `up` (batches, readiness, watch window, rollback). SERVICEs named are followed by
    digest; without names, the services whose x-swap `autoupdate` is digest, patch, minor
    or major. An update that fails is rolled back and not tried again for that digest."""
    from docker_swap.rollout.autoupdate import check_once  # noqa: PLC0415
    from docker_swap.rollout.follow_loop import follow  # noqa: PLC0415

    shown = presenter(as_json=as_json, quiet=False, live=once)
    with shown:
        try:
            checks = parse_verify(verify, verify_rate)
            seconds = _seconds(interval)
            if stack_of(compose, swarm) is not None:
                raise InvalidSettings("autoupdate does not follow a Swarm stack yet: use "
                                      "`docker stack deploy --resolve-image always` there.")
            view = FollowView(shown, Notifier(notify), Metrics(metrics) if metrics else None,
                              as_json=as_json, lines=not once)
            if view.metrics is not None:
                view.metrics.start()
            if once:
                result = check_once(services, compose_options=compose, flags=renamed(flags),
                                    observer=view, verify=checks)
                view.finished(result)
                code = result.exit_code
            else:
                code = follow(services, seconds, compose_options=compose, flags=renamed(flags),
                              observer=view, verify=checks)
        except Exception as error:
            fail(shown, error, " ".join(services) or "SERVICE")
    sys.exit(code)


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidSettings(f"--interval has value {text!r}; expected {exc}.") from None


class FollowView:
    """What autoupdate tells: printed (with the time in a long-lived process), POSTed to
    --notify, counted for --metrics; `up`'s own progress goes to the presenter."""

    def __init__(self, shown: Presenter, notifier: Notifier, metrics: Metrics | None, *,
                 as_json: bool, lines: bool) -> None:
        self.shown, self.notifier, self.metrics, self.as_json = shown, notifier, metrics, as_json
        self.lines = lines
        """JSON lines as it goes (a long-lived process); else, with --json, one object at the
        end (--once)."""
        self._said: set[str] = set()

    # The presenter's part (up's phases).

    def phase_started(self, name: str) -> None:
        self.shown.phase_started(name)

    def phase_finished(self, result: PhaseResult) -> None:
        self.shown.phase_finished(result)

    def progress(self, text: str) -> None:
        self.shown.progress(text)

    def note(self, text: str) -> None:
        if self.as_json and self.lines:
            self._line({"event": "note", "text": text})
        else:
            self.shown.note(text)  # (Json keeps it for the object at the end)

    def service_started(self, service: Any) -> None:
        self.shown.service_started(service)

    def service_finished(self, outcome: Any) -> None:
        self.shown.service_finished(outcome)

    # autoupdate's own.

    def found(self, move: Move) -> None:
        event = {"event": "found", "project": move.project, "service": move.service,
                 "policy": move.policy,
                 "from": {"reference": move.reference, "digest": move.digest_from},
                 "to": {"reference": move.to_reference, "digest": move.digest_to}}
        self._tell(event, f"found   {move.service}: {move.to_reference} is {move.digest_to[:19]}"
                   f" (runs {move.reference}, {move.digest_from[:19] or 'no registry digest'})")

    def updated(self, ended: Ended) -> None:
        move = ended.move
        verify = asdict(ended.verify) if isinstance(ended.verify, VerifyReport) else None
        event = {"event": "updated", "project": move.project, "service": move.service,
                 "outcome": ended.outcome, "exit_code": ended.exit_code,
                 "seconds": round(ended.seconds, 3), "detail": ended.detail,
                 "from": {"reference": move.reference, "digest": move.digest_from},
                 "to": {"reference": move.to_reference, "digest": move.digest_to},
                 "verify": verify}
        self._tell(event, f"updated {move.service}: {ended.outcome} in {ended.seconds:.1f}s "
                   f"({ended.detail})")
        if self.metrics is not None:
            failed = int(verify.get("failed", 0)) if verify else 0
            self.metrics.updated(move.service, ended.outcome, ended.seconds, failed)

    def checked(self, check: Check) -> None:
        for service, reason in check.skipped.items():
            if self.lines or not self.as_json:  # (--once --json: in `skipped`)
                self._once(f"skip    {service}: {reason}")
        for text in check.notes:
            self.note(text)
        for service, error in check.errors.items():
            if self.as_json:
                if self.lines:
                    self._line({"event": "check_failed", "service": service, "error": error})
            else:
                self.shown.err.print(f"{_now()} check   {service}: {redact(error)}")
        if not check.followed and not check.skipped:
            self._once("follow  nothing: name services, or give them x-swap autoupdate "
                       "(digest, patch, minor or major)")
        if self.metrics is not None:
            self.metrics.checked(not check.errors)

    def finished(self, check: Check) -> None:
        """--once: the whole check (one JSON object with --json)."""
        if self.as_json:
            print(json.dumps({
                "result": {0: "done", 1: "rolled_back", 2: "refused"}.get(check.exit_code,
                                                                          "needs_attention"),
                "exit_code": check.exit_code, "project": check.project,
                "followed": check.followed, "moves": [_move(m) for m in check.moves],
                "ended": [{"service": e.move.service, "outcome": e.outcome,
                           "exit_code": e.exit_code, "seconds": round(e.seconds, 3),
                           "detail": e.detail} for e in check.ended],
                "skipped": check.skipped, "errors": check.errors,
                "notes": self.shown.notes,
            }))
        elif not check.moves and not check.errors:
            self.shown.out.print(f"up to date: {', '.join(check.followed) or 'nothing followed'}")

    def _tell(self, event: dict[str, Any], line: str) -> None:
        event["at"] = _now()
        if self.as_json:
            if self.lines:
                self._line(event)
        else:
            self.shown.out.print(f"{_now()} {line}")
        for problem in self.notifier.post(event):
            self.note(problem)

    def _once(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            self.note(line)

    def _line(self, event: dict[str, Any]) -> None:
        if "at" not in event:
            event["at"] = _now()
        print(json.dumps(event), flush=True)


def _move(move: Move) -> dict[str, Any]:
    return {"service": move.service, "policy": move.policy, "from": move.reference,
            "to": move.to_reference, "digest_from": move.digest_from,
            "digest_to": move.digest_to, "edit": move.edit.describe() if move.edit else None}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
