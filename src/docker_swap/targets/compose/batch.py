"""A compose service on one engine, as the rollout layer sees it: its containers are the units.

`ComposeUnits` answers the switchboard (which containers run now, and where a proxy reaches
them); `ComposeBatch` is one batch of the service for the sequence: compose starts the new
containers (`up --scale`, or a clone of retired ones in a rollback), the engine's events follow
them, probes judge them, and the engine stops and removes what retires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from docker_swap.errors import EngineFailed, StepFailed, SwapError
from docker_swap.models import Backend, Container, ExecResult, names
from docker_swap.options import DeployOptions
from docker_swap.safety.failpoints import failpoint
from docker_swap.targets.base import Progress, Unit, UnitState
from docker_swap.targets.readiness import (
    CommandProbe,
    DockerHealthProbe,
    HealthcheckProbe,
    HttpProbe,
    Probe,
    ProbeResult,
    SettleProbe,
    TcpProbe,
    wait_until_ready,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine

_LOG_LINES = 50


class Starter(Protocol):
    """How a batch's new containers come to be (compose, or clones of retired ones)."""

    def scale_up(self, service: str, replicas: int) -> None: ...


class ComposeUnits:
    """The containers of one service, as a proxy on `network` reaches them on `port`."""

    def __init__(self, engine: Engine, network: str, port: int | None) -> None:
        self.engine, self.network, self.port = engine, network, port

    def alive(self, units: Sequence[Unit]) -> list[Unit]:
        """Those that run now, with the addresses the engine gives them now."""
        running = self.engine.running([u.id for u in units])
        return [replace(_container(u), networks=running[u.id]) for u in units
                if u.id in running]

    def backends(self, units: Sequence[Unit]) -> list[Backend]:
        if self.port is None:
            raise StepFailed(f"no port is known for {names(units)}.")
        return [Backend(c.id, c.name, address_on(c, self.network), self.port)
                for c in map(_container, units)]


class ComposeBatch(ComposeUnits):
    """`size` new containers of `service` beside `old` (retired at the end) and `staying`;
    `leaving`, the previous batch's old containers (out of the proxy, drained), still run
    when compose starts these and count as the service's, not as new."""

    def __init__(self, engine: Engine, starter: Starter, project: str, options: DeployOptions,
                 *, old: Sequence[Container], staying: Sequence[Container], size: int,
                 network: str, port: int | None, proxied: bool,
                 leaving: Sequence[Container] = ()) -> None:
        super().__init__(engine, network, port)
        self.starter, self.project, self.options = starter, project, options
        self.service = options.service
        self.old, self.staying, self.size = list(old), list(staying), size
        self.leaving = list(leaving)
        self.proxied = proxied

    def start(self) -> list[Unit]:
        running = len(self.leaving) + len(self.old) + len(self.staying)
        self.starter.scale_up(self.service, running + self.size)
        return list(self.started())

    def started(self) -> list[Unit]:
        known = {c.id for c in [*self.leaving, *self.old, *self.staying]}
        return [c for c in self.engine.service_containers(self.project, self.service)
                if c.id not in known]

    def follow(self, unit: Unit) -> UnitState:
        return self.engine.watch(unit.id)

    def ready(self, units: Sequence[Unit], states: Mapping[str, UnitState], deadline: float,
              progress: Progress) -> str:
        detail = ""
        for container in map(_container, units):
            probe = self.probe(container, states[container.id])

            def report(attempt: int, answer: ProbeResult, name: str = container.name) -> None:
                progress(f"{name}: {answer.detail} (attempt {attempt})")

            ready = wait_until_ready(probe, states[container.id], container.name,
                                     self.options.timeout, deadline, report)
            detail = f"{probe.description}: {ready.detail}"
        return detail

    def probe(self, container: Container, state: UnitState) -> Probe:
        """--health-cmd, else --http, else the image's HEALTHCHECK, else a TCP connect (behind
        a proxy) or still running after `settle` (no proxy: it may not listen at all)."""
        options = self.options
        if options.health_cmd:
            return CommandProbe(self.engine, container.id, options.health_cmd)
        if options.http_path and self.port is not None:
            return HttpProbe(address_on(container, self.network), self.port, options.http_path)
        if container.has_healthcheck and container.healthcheck:
            return HealthcheckProbe(self.engine, container.id, container.healthcheck,
                                    container.healthcheck_timeout, state)
        if container.has_healthcheck:
            return DockerHealthProbe(state)
        if self.proxied and self.port is not None:
            return TcpProbe(address_on(container, self.network), self.port)
        return SettleProbe(options.settle)

    def run(self, units: Sequence[Unit], argv: Sequence[str],
            timeout: float) -> dict[str, ExecResult | StepFailed]:
        results: dict[str, ExecResult | StepFailed] = {}
        for unit in units:
            try:
                results[unit.id] = self.engine.exec(unit.id, argv, timeout=timeout)
            except StepFailed as exc:
                results[unit.id] = exc
        return results

    def logs(self, unit: Unit) -> str:
        return self.engine.logs(unit.id, tail=_LOG_LINES)

    def retire(self, units: Sequence[Unit]) -> str:
        for container in map(_container, units):
            self.engine.stop(container)
            failpoint("retire")
            self.engine.remove(container.id)
        return f"{names(units)} stopped and removed"

    def discard(self, units: Sequence[Unit], *, served: bool) -> None:
        failed = []
        for container in map(_container, units):
            try:
                if served:  # it may have had requests: let them finish
                    self.engine.stop(container)
                self.engine.remove(container.id, force=True)
            except SwapError as exc:
                failed.append(f"{container.name} ({exc.message})")
        if failed:
            raise EngineFailed(f"could not remove {', '.join(failed)}")


class Restorer:
    """Starts retired containers again from their saved definitions (same name, image ID,
    labels and settings), where a batch would have compose start new ones: a rollback."""

    def __init__(self, engine: Engine, definitions: Sequence[Mapping[str, Any]]) -> None:
        self._engine, self._definitions = engine, list(definitions)

    def scale_up(self, service: str, replicas: int) -> None:
        for definition in self._definitions:
            self._engine.clone(definition)


def address_on(container: Container, network: str) -> str:
    address = container.networks.get(network)
    if not address:
        raise StepFailed(f"{container.name} is not on network {network}, which the proxy uses.")
    return address


def backends(containers: Sequence[Container], network: str, port: int) -> list[Backend]:
    return [Backend(c.id, c.name, address_on(c, network), port) for c in containers]


def _container(unit: Unit) -> Container:
    assert isinstance(unit, Container)  # a compose batch's units are its containers
    return unit
