"""`--canary-for DURATION`: the command that started canaries watches them, then promotes or
aborts each by itself.

    watch    for DURATION, every canary at once: one of its containers that exits or turns
             unhealthy, or (with --max-error-rate, where the proxy counts answers per backend:
             HAProxy) a share of 5xx among its answers over the limit, fails it at once
    decide   a failed canary is aborted (exit 1: the old version serves, nothing of the new
             one is left); one whose window passed cleanly is promoted (promote's exit code)

Ctrl-C or SIGTERM during the window decides nothing: the canaries keep running, on their
share, and the command exits 3 naming `promote` and `abort`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import (
    EXIT_NEEDS_ATTENTION,
    EXIT_ROLLED_BACK,
    Interrupted,
    ReleaseFailed,
    SwapError,
)
from docker_swap.models import Backend, Container, Project
from docker_swap.options import ComposeOptions, DeployOptions, VerifyOptions
from docker_swap.proxy.base import CountsAnswersOf
from docker_swap.releases.rules import canary_sides
from docker_swap.releases.store import active_canary, read_releases
from docker_swap.rollout.canary import abort, straight
from docker_swap.rollout.outcomes import UpObserver, UpReport
from docker_swap.rollout.promote import promote
from docker_swap.rollout.reports import DeployReport
from docker_swap.rollout.watch import Watcher
from docker_swap.safety.interrupts import Interrupts
from docker_swap.settings import resolve_settings
from docker_swap.targets.base import UnitState
from docker_swap.targets.compose.batch import backends
from docker_swap.targets.compose.preflight import (
    choose_port,
    connect_engine,
    connect_proxy,
    nothing_changed_yet,
    running_containers,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine

_POLL_SECONDS = 0.2


@dataclass
class Decision:
    """What became of one canary once its window ended."""

    service: str
    outcome: str
    """promoted, aborted, or kept (the window was interrupted)."""
    reason: str
    exit_code: int
    promoted: UpReport | None = None
    aborted: DeployReport | None = None
    error: SwapError | None = None
    """What promote or abort raised, if it did."""


@dataclass
class _Watched:
    service: str
    watcher: Watcher
    states: list[UnitState] = field(default_factory=list)
    failure: ReleaseFailed | None = None


class _CanaryAnswers:
    """The answers of the canary's backends alone (CountsAnswers, for the Watcher)."""

    def __init__(self, driver: CountsAnswersOf, canary: Sequence[Backend]) -> None:
        self._driver, self._canary = driver, list(canary)

    def answers(self) -> tuple[int, int] | None:
        return self._driver.answers_of(self._canary)


def decide(services: Sequence[str], seconds: float, *,
           compose_options: ComposeOptions | None = None,
           flags: Mapping[str, object | None] | None = None,
           observer: UpObserver, verify: VerifyOptions | None = None) -> list[Decision]:
    """Watch the canaries of `services` for `seconds`, then abort the failed ones and promote
    the others."""
    compose = Compose(compose_options or ComposeOptions())
    given = straight(flags)
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        project = compose.load_project()
        watched = [_watch(engine, project, service, given, observer) for service in services]
    with Interrupts(observer.note) as interrupts:
        interrupts.arm("during the canary window")
        try:
            _window(watched, seconds, observer, interrupts)
        except Interrupted as stop:
            return [Decision(w.service, "kept", f"{stop.message} The canary of {w.service} "
                             "keeps running on its share.", EXIT_NEEDS_ATTENTION)
                    for w in watched]
        finally:
            for item in watched:
                for state in item.states:
                    state.close()
    return [_decided(w, compose_options, flags, observer, verify) for w in watched]


def _watch(engine: Engine, project: Project, service: str,
           flags: Mapping[str, object | None], observer: UpObserver) -> _Watched:
    options: DeployOptions = resolve_settings(service, project.services[service].x_swap, flags)
    running = running_containers(engine, project, project.services[service])
    release = active_canary(read_releases(engine, project.name, service)[0], running)
    if release is None:
        raise SwapError(f"no canary of {service} runs any more.")
    canary, _ = canary_sides(release, running)
    states = {c.name: engine.watch(c.id) for c in canary}
    counter = _counter(engine, project, options, canary)
    if options.max_error_rate is not None and counter is None:
        observer.note(f"the proxy of {service} does not count answers per backend: its "
                      "canary is judged by exits and health reports, not --max-error-rate.")
    watcher = Watcher(states, counter, options.max_error_rate, during="the canary window",
                      then="The canary is aborted: the old containers get every request")
    return _Watched(service, watcher, list(states.values()))


def _counter(engine: Engine, project: Project, options: DeployOptions,
             canary: Sequence[Container]) -> _CanaryAnswers | None:
    if options.max_error_rate is None or not canary:
        return None
    driver, network = connect_proxy(engine, project, options, canary[0])
    if not isinstance(driver, CountsAnswersOf):
        return None
    driver.check()
    return _CanaryAnswers(driver, backends(canary, network, choose_port(options, canary[0])))


def _window(watched: Sequence[_Watched], seconds: float, observer: UpObserver,
            interrupts: Interrupts) -> None:
    deadline = time.monotonic() + seconds
    while True:
        for item in watched:
            if item.failure is None:
                try:
                    item.watcher.check()
                except ReleaseFailed as failure:
                    item.failure = failure
                    observer.note(f"{item.service}: {failure.message}")
        left = deadline - time.monotonic()
        if left <= 0 or all(w.failure for w in watched):
            return
        interrupts.check()
        counted = "; ".join(f"{w.service} 5xx {w.watcher.errors} of {w.watcher.answers}"
                            for w in watched if w.watcher.counted)
        observer.progress(f"canary window: {left:.0f}s left" + (f"; {counted}" if counted
                                                                else ""))
        time.sleep(min(_POLL_SECONDS, left))


def _decided(item: _Watched, compose_options: ComposeOptions | None,
             flags: Mapping[str, object | None] | None, observer: UpObserver,
             verify: VerifyOptions | None) -> Decision:
    service = item.service
    try:
        if item.failure is not None:
            report = abort(service, compose_options=compose_options, flags=flags,
                           observer=observer, verify=verify)
            return Decision(service, "aborted", f"{item.failure.message} Aborted: "
                            f"{', '.join(report.new)} serve", EXIT_ROLLED_BACK,
                            aborted=report)
        promoted = promote(service, compose_options=compose_options, flags=flags,
                           observer=observer, verify=verify)
        return Decision(service, "promoted", f"its window passed{item.watcher.summary()}",
                        promoted.exit_code, promoted=promoted)
    except SwapError as error:
        return Decision(service, "aborted" if item.failure else "promoted", error.message,
                        error.exit_code, error=error)
