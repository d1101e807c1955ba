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
from dataclasses import dataclass, field
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
from .preflight import Plan, open_service, prepare

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


def deploy(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
    observer: Observer | None = None,
) -> DeployReport:
    """Replace the running containers of `service` with its current definition."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    plan = prepare(engine, project, options)
    try:
        return Swap(plan, engine, compose, observer or SilentObserver()).run()
    finally:
        plan.journal.unlock()


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
            plan.project.name, plan.options.service, STARTING, old=[c.id for c in plan.old],
            staying=[c.id for c in plan.staying],
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
            self._phase("drain", self._drain)
            self._phase("retire", self._retire)
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
        size = len(self.plan.old) if self.plan.batch_size is None else self.plan.batch_size
        self.compose.scale_up(self.plan.options.service,
                              len(self.plan.old) + len(self.plan.staying) + size)
        self.new = self._new_containers()
        self._journal(STARTED)
        failpoint("after-start")
        if len(self.new) != size:
            raise ComposeFailed(
                f"docker compose started {len(self.new)} new container(s) for "
                f"{self.plan.options.service}, expected {size}."
            )
        for container in self.new:
            self.watches[container.id] = self.engine.watch(container.id)
        return f"{_names(self.new)} started"

    def _ready(self) -> str:
        timeout = self.plan.options.timeout
        deadline = time.monotonic() + timeout
        # While the new containers warm up: will the proxy accept them? (No traffic moves.)
        self.plan.proxy.stage(self._backends(self.new),
                              self._backends([*self.plan.old, *self.plan.staying]))
        self.proxy_staged = True
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
        detail = self.plan.proxy.switch(self._backends([*self.plan.staying, *self.new]))
        # The new version serves: a signal from here on cannot undo the deploy, only be noted.
        self.interrupts.defer("the new version already serves; finishing drain and retire first")
        self._journal(SWITCHED)
        failpoint("after-switch")
        return detail

    def _drain(self) -> str:
        failpoint("drain")
        drained = self.plan.proxy.drain(self.plan.options.drain_timeout)
        if not drained.complete:
            self._note(f"drain timed out: {drained.detail}; their requests to the old "
                       "containers fail when those stop. Raise --drain-timeout to wait longer.")
        return drained.detail

    def _retire(self) -> str:
        for container in self.plan.old:
            try:
                self.engine.stop(container)
                failpoint("retire")
                self.engine.remove(container.id)
            except SwapError as exc:
                raise NeedsAttention(
                    f"the new version serves, but retiring {container.name} failed: {exc.message}",
                    hint=f"Run `docker-swap recover {self.plan.options.service}` to retry.",
                ) from exc
        return f"{_names(self.plan.old)} stopped and removed"

    # Rolling back.

    def _roll_back(self, failure: StepFailed) -> None:
        problems = []
        if not self.new:
            try:
                self.new = self._new_containers()
            except SwapError as exc:
                problems.append(f"the new containers could not be listed ({exc.message})")
        logs, failed = "", ""
        if self.new and isinstance(failure, _CONTAINER_FAILURES):
            failed = self.new[0].name
            logs = self.engine.logs(self.new[0].id, tail=_LOG_LINES)
        switched_back = False
        try:
            if isinstance(failure, ProxyConfigInvalid):
                pass  # the driver put its file back; nginx never loaded the rejected one
            elif self.proxy_touched:
                self.plan.proxy.switch(self._backends([*self.plan.old, *self.plan.staying]))
                self.plan.proxy.drain(self.plan.options.drain_timeout)
                switched_back = True
            elif self.proxy_staged:
                self.plan.proxy.unstage()
        except SwapError as exc:
            problems.append(f"the proxy could not be switched back ({exc.message})")
        for container in self.new:
            try:
                if switched_back:
                    self.engine.stop(container)
                self.engine.remove(container.id, force=True)
            except SwapError as exc:
                problems.append(f"{container.name} could not be removed ({exc.message})")
        if problems:
            raise NeedsAttention(
                f"{failure.message} Rolling back did not finish: {'; '.join(problems)}.",
                hint=f"Run `docker-swap recover {self.plan.options.service}` once that is fixed.",
            ) from failure
        self.plan.journal.clear()
        raise DeployFailed(failure, logs=logs, container=failed) from failure

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
        old = {c.id for c in [*self.plan.old, *self.plan.staying]}
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


def _names(containers: Sequence[Container]) -> str:
    return ", ".join(c.name for c in containers)
