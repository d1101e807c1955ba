"""The swap sequence: start -> ready -> switch -> drain -> retire, or roll back.

    start   compose starts the new container(s) beside the old ones (`up --scale`)
    ready   a probe passes in each new container; an exit or an unhealthy report fails at once
    switch  the proxy sends every new request to the new containers, confirmed live
    drain   requests the proxy sent to the old containers before the switch finish
    retire  the old containers stop with their grace period and are removed

Any failure up to and including the switch rolls back: the proxy is switched back (if it was
touched), the new containers are removed, and the old ones never noticed. The journal records
every phase so that a killed deploy can be finished or undone by `docker-swap recover`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .compose import Compose
from .errors import (
    ComposeFailed,
    ContainerExited,
    ContainerUnhealthy,
    DeployFailed,
    NeedsAttention,
    NotReady,
    ProxyConfigInvalid,
    StepFailed,
    SwapError,
)
from .failpoints import failpoint
from .health import (
    CommandProbe,
    DockerHealthProbe,
    HttpProbe,
    Probe,
    ProbeResult,
    TcpProbe,
    raise_if_failed,
    wait_until_ready,
)
from .interrupts import Interrupts
from .journal import STARTED, STARTING, SWITCHED, SWITCHING, Entry
from .models import Backend, Container
from .observer import Observer, PhaseResult, SilentObserver
from .options import ComposeOptions
from .preflight import Plan, connect_proxy, open_service, prepare
from .proxy import Drained
from .release_record import DEPLOY, ROLLBACK
from .releases import Recorded, record_release

if TYPE_CHECKING:
    from .engine import ContainerWatch, Engine

_LOG_LINES = 50
_CONTAINER_FAILURES = (ComposeFailed, NotReady, ContainerExited, ContainerUnhealthy)


@dataclass(frozen=True)
class DeployReport:
    """What a finished deploy did, phase by phase."""

    project: str
    service: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    phases: tuple[PhaseResult, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())
    release: int | None = None
    """The number of its release record (None if it could not be recorded)."""


def deploy(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
    observer: Observer | None = None,
    rollback_to: int | None = None,
) -> DeployReport:
    """Replace the running containers of `service` with its current definition.

    Every outcome but a refusal is recorded as a release (releases.py); `rollback_to` marks
    the deploy as `docker-swap rollback` to that release."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    plan = prepare(engine, project, options)
    swap = Swap(plan, engine, compose, observer or SilentObserver())
    try:
        report = swap.run()
    except Exception as error:
        _record(swap, error, rollback_to)
        raise
    else:
        recorded = _record(swap, report, rollback_to)
        return replace(report, release=recorded.number, notes=report.notes + recorded.notes)
    finally:
        plan.journal.unlock()


def _record(swap: Swap, result: DeployReport | Exception, rollback_to: int | None) -> Recorded:
    with Interrupts(swap.observer.note) as interrupts:  # the outcome is known: a signal waits
        interrupts.defer("recording the release first")
        recorded = record_release(
            swap.engine, swap.plan.project.name, swap.plan.options.service, result, swap.new,
            replaced=swap.plan.old, phases=swap.phases, keep=swap.plan.options.keep,
            kind=DEPLOY if rollback_to is None else ROLLBACK, rollback_to=rollback_to)
    for note in recorded.notes:
        swap.observer.note(note)
    return recorded


class Swap:
    def __init__(self, plan: Plan, engine: Engine, compose: Compose, observer: Observer) -> None:
        self.plan = plan
        self.engine = engine
        self.compose = compose
        self.observer = observer
        self.new: list[Container] = []
        self.watches: dict[str, ContainerWatch] = {}
        self.proxy_staged = False
        self.proxy_touched = False
        self.phases: list[PhaseResult] = []
        self.notes: list[str] = list(plan.notes)
        self.interrupts = Interrupts(self._note)
        self.entry = Entry(
            plan.project.name, plan.options.service, STARTING, old=[c.id for c in plan.old]
        )

    def run(self) -> DeployReport:
        started = time.monotonic()
        for note in self.notes:
            self.observer.note(note)
        with self.interrupts:
            try:
                self._phase("start", self._start)
                self._phase("ready", self._ready)
                self._phase("switch", self._switch)  # signals are only noted once it returns
            except Exception as exc:
                self.interrupts.defer("rolling back")
                self._roll_back(_as_step_failure(exc))
            finally:
                self._close_watches()
            # The new version serves: from here on no failure rolls back (exit 0 or 3).
            self._after_switch("drain", self._drain, "draining the old containers")
            self._after_switch("retire", self._retire, "retiring the old containers")
        self.plan.journal.clear()
        return DeployReport(
            project=self.plan.project.name,
            service=self.plan.options.service,
            old=tuple(c.name for c in self.plan.old),
            new=tuple(c.name for c in self.new),
            phases=tuple(self.phases),
            seconds=time.monotonic() - started,
            notes=tuple(self.notes),
        )

    # The phases, in order.

    def _start(self) -> str:
        self.plan.journal.write(self.entry)
        self.compose.scale_up(self.plan.options.service, 2 * len(self.plan.old))
        self.new = self._new_containers()
        self._journal(STARTED)
        failpoint("after-start")
        if len(self.new) != len(self.plan.old):
            raise ComposeFailed(
                f"docker compose started {len(self.new)} new container(s) for "
                f"{self.plan.options.service}, expected {len(self.plan.old)}."
            )
        for container in self.new:
            self.watches[container.id] = self.engine.watch(container.id)
        return f"{_names(self.new)} started"

    def _ready(self) -> str:
        timeout = self.plan.options.timeout
        deadline = time.monotonic() + timeout
        # While the new containers warm up: will the proxy accept them? (No traffic moves.)
        self.proxy_staged = True  # before: a stage cut short is undone too
        self.plan.proxy.stage(self._backends(self.new), self._backends(self.plan.old))
        failpoint("ready")
        detail = ""
        for container in self.new:
            probe = self._probe(container)
            watch = self.watches[container.id]

            def report(attempt: int, answer: ProbeResult, name: str = container.name) -> None:
                self.interrupts.check()
                self.observer.progress(f"{name}: {answer.detail} (attempt {attempt})")

            ready = wait_until_ready(probe, watch, container.name, timeout, deadline, report)
            detail = f"{probe.description}: {ready.detail}"
        return detail

    def _switch(self) -> str:
        for container in self.new:
            raise_if_failed(self.watches[container.id], container.name)
        self._journal(SWITCHING)
        self.proxy_touched = True
        detail = self.plan.proxy.switch(self._backends(self.new))
        # The new version serves: a signal from here on cannot undo the deploy, only be noted.
        self.interrupts.defer("the new version already serves; finishing drain and retire first")
        self._journal(SWITCHED)
        failpoint("after-switch")
        return detail

    def _drain(self) -> str:
        failpoint("drain")
        timeout = self.plan.options.drain_timeout
        try:
            drained = self.plan.proxy.drain(timeout)
        except Exception as exc:
            drained = self._drain_again(exc, timeout)
        if not drained.complete:
            self._note(f"drain timed out: {drained.detail}; their requests to the old "
                       "containers fail when those stop. Raise --drain-timeout to wait longer.")
        return drained.detail

    def _drain_again(self, failure: Exception, timeout: float) -> Drained:
        """The proxy failed while draining (most often it was restarted): find it again,
        confirm it on the new containers, and drain that one."""
        self._note(f"{self.plan.proxy.description} failed while draining ({_message(failure)}); "
                   f"confirming it on {_names(self.new)} again")
        proxy, _ = connect_proxy(self.engine, self.plan.project, self.plan.options, self.new[0])
        proxy.check()
        proxy.switch(self._backends(self.new))
        self.plan.proxy = proxy
        return proxy.drain(timeout)

    def _retire(self) -> str:
        for container in self.plan.old:
            self.engine.stop(container)
            failpoint("retire")
            self.engine.remove(container.id)
        return f"{_names(self.plan.old)} stopped and removed"

    def _after_switch(self, name: str, step: Callable[[], str], doing: str) -> None:
        """Run a phase after the switch: a failure leaves the new version serving, so it
        needs attention (exit 3), never a rollback."""
        try:
            self._phase(name, step)
        except Exception as exc:
            raise NeedsAttention(
                f"the new version serves ({_names(self.new)}), but {doing} failed: "
                f"{_message(exc)}; {self._old_left()}.",
                hint=f"Run `docker-swap recover {self.plan.options.service}` to finish: it "
                "confirms the proxy on the new containers, drains and retires the old ones.",
            ) from exc

    def _old_left(self) -> str:
        try:
            found = {c.id for c in self.engine.service_containers(
                self.plan.project.name, self.plan.options.service)}
        except Exception:
            return f"the old container(s) {_names(self.plan.old)} may still exist"
        left = [c.name for c in self.plan.old if c.id in found]
        if not left:
            return "nothing of the old version is left"
        return f"the old container(s) {', '.join(left)} still exist, out of the proxy"

    # Rolling back.

    def _roll_back(self, failure: StepFailed) -> None:
        """Put the proxy back on the old containers, confirmed, and only then remove the new
        ones: until the proxy is confirmed off them, they may be what serves."""
        problems: list[str] = []
        self._find_new(problems)
        logs, failed = self._failure_logs(failure)
        if self._proxy_back(failure, problems):
            self._remove_new(problems)
        elif self.new:
            problems.append(f"{_names(self.new)} kept, as the proxy may still send to them")
        if problems:
            raise NeedsAttention(
                f"{failure.message} Rolling back did not finish: {'; '.join(problems)}. "
                f"The old container(s) {_names(self.plan.old)} still run.",
                hint=f"Run `docker-swap recover {self.plan.options.service}` once that is "
                "fixed: it puts the proxy on the old containers, confirmed, then removes the "
                "new ones.",
            ) from failure
        self.plan.journal.clear()
        raise DeployFailed(failure, logs=logs, container=failed) from failure

    def _find_new(self, problems: list[str]) -> None:
        if self.new:
            return
        try:
            self.new = self._new_containers()
        except Exception as exc:
            problems.append(f"the new containers could not be listed ({_message(exc)})")

    def _failure_logs(self, failure: StepFailed) -> tuple[str, str]:
        if not self.new or not isinstance(failure, _CONTAINER_FAILURES):
            return "", ""
        return self.engine.logs(self.new[0].id, tail=_LOG_LINES), self.new[0].name

    def _proxy_back(self, failure: StepFailed, problems: list[str]) -> bool:
        """True once the proxy is confirmed on the old containers only."""
        try:
            if self.proxy_touched and not isinstance(failure, ProxyConfigInvalid):
                self.plan.proxy.switch(self._backends(self.plan.old))
                self.plan.proxy.drain(self.plan.options.drain_timeout)
            elif self.proxy_staged:  # a rejected config was put back by the driver already
                self.plan.proxy.unstage()
        except Exception as exc:
            problems.append(f"the proxy could not be switched back ({_message(exc)})")
            return False
        return True

    def _remove_new(self, problems: list[str]) -> None:
        for container in self.new:
            try:
                if self.proxy_touched:  # it may have had requests: let them finish
                    self.engine.stop(container)
                self.engine.remove(container.id, force=True)
            except Exception as exc:
                problems.append(f"{container.name} could not be removed ({_message(exc)})")

    # Helpers.

    def _phase(self, name: str, step: Callable[[], str]) -> None:
        self.interrupts.check()
        self.observer.phase_started(name)
        started = time.monotonic()
        detail = step()
        result = PhaseResult(name, time.monotonic() - started, detail)
        self.phases.append(result)
        self.observer.phase_finished(result)

    def _probe(self, container: Container) -> Probe:
        options = self.plan.options
        if options.health_cmd:
            return CommandProbe(self.engine, container.id, options.health_cmd)
        address = self._address(container)
        if options.http_path:
            return HttpProbe(address, self.plan.port, options.http_path)
        if container.has_healthcheck:
            return DockerHealthProbe(self.watches[container.id])
        return TcpProbe(address, self.plan.port)

    def _backends(self, containers: Sequence[Container]) -> list[Backend]:
        return backends(containers, self.plan.network, self.plan.port)

    def _address(self, container: Container) -> str:
        return address_on(container, self.plan.network)

    def _new_containers(self) -> list[Container]:
        old = {c.id for c in self.plan.old}
        found = self.engine.service_containers(self.plan.project.name, self.plan.options.service)
        return [c for c in found if c.id not in old]

    def _journal(self, phase: str) -> None:
        self.entry = self.entry.at(phase, new=[c.id for c in self.new])
        self.plan.journal.write(self.entry)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self.observer.note(text)

    def _close_watches(self) -> None:
        for watch in self.watches.values():
            watch.close()


def backends(containers: Sequence[Container], network: str, port: int) -> list[Backend]:
    return [Backend(c.id, c.name, address_on(c, network), port) for c in containers]


def address_on(container: Container, network: str) -> str:
    address = container.networks.get(network)
    if not address:
        raise StepFailed(f"{container.name} is not on network {network}, which the proxy uses.")
    return address


def _as_step_failure(exc: Exception) -> StepFailed:
    if isinstance(exc, StepFailed):
        return exc
    if isinstance(exc, SwapError):
        return StepFailed(exc.message, hint=exc.hint)
    return StepFailed(f"unexpected error: {exc!r}.")


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, SwapError) else f"unexpected error: {exc!r}"


def _names(containers: Sequence[Container]) -> str:
    return ", ".join(c.name for c in containers)
