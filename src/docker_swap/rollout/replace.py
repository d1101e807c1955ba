"""One batch of a service with no proxy (a worker), start-first: new containers start beside
the old ones, become ready, then the old ones stop with their grace period.

Ready means: the x-swap health-cmd exits 0, else the image's HEALTHCHECK reports healthy, else
the container is still running after its settle time (x-swap `settle`, default 5 s). A new
container that exits, turns unhealthy or is not ready in time is removed; the old ones never
stopped, and `DeployFailed` says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import DeployFailed, NeedsAttention, StepFailed, SwapError
from docker_swap.models import Container
from docker_swap.observer import Observer, PhaseResult
from docker_swap.options import DeployOptions
from docker_swap.rollout.readiness import (
    CommandProbe,
    DockerHealthProbe,
    Probe,
    ProbeResult,
    wait_until_ready,
)

if TYPE_CHECKING:
    from docker_swap.engine import ContainerWatch, Engine

_LOG_LINES = 50


class SettleProbe:
    """Ready once the container has kept running for `settle` seconds (the weakest check)."""

    def __init__(self, settle: float) -> None:
        self._settle, self._since = settle, time.monotonic()
        self.interval = min(settle, 0.25)
        self.description = f"still running after {settle:g} s"

    def check(self, timeout: float) -> ProbeResult:
        waited = time.monotonic() - self._since
        return ProbeResult(waited >= self._settle, f"running for {waited:.1f} s")


def replace_batch(
    engine: Engine, compose: Compose, options: DeployOptions, old: Sequence[Container],
    staying: Sequence[Container], size: int, observer: Observer,
) -> list[Container]:
    """Start `size` new containers beside `old` and `staying`, wait until they are ready, then
    stop and remove `old`. Returns the new containers."""
    service = options.service
    new: list[Container] = []
    watches: list[ContainerWatch] = []

    def start() -> str:
        compose.scale_up(service, len(old) + len(staying) + size)
        known = {c.id for c in [*old, *staying]}
        new.extend(c for c in engine.service_containers(_project(old, staying), service)
                   if c.id not in known)
        watches.extend(engine.watch(c.id) for c in new)
        if len(new) != size:
            raise StepFailed(f"docker compose started {len(new)} new container(s) for "
                             f"{service}, expected {size}.")
        return f"{', '.join(c.name for c in new)} started"

    try:
        _timed(observer, "start", start)
        _timed(observer, "ready", lambda: _ready(engine, options, new, watches))
    except SwapError as exc:
        failure = exc if isinstance(exc, StepFailed) else StepFailed(exc.message, hint=exc.hint)
        logs = engine.logs(new[0].id, tail=_LOG_LINES) if new else ""
        for container in new:
            engine.remove(container.id, force=True)
        raise DeployFailed(failure, logs=logs, container=new[0].name if new else "") from exc
    finally:
        for watch in watches:
            watch.close()
    _timed(observer, "retire", lambda: _retire(engine, service, old))
    return new


def _ready(engine: Engine, options: DeployOptions, new: Sequence[Container],
           watches: Sequence[ContainerWatch]) -> str:
    deadline = time.monotonic() + options.timeout
    detail = ""
    for container, watch in zip(new, watches, strict=True):
        probe = _probe(engine, options, container, watch)
        ready = wait_until_ready(probe, watch, container.name, options.timeout, deadline)
        detail = f"{probe.description}: {ready.detail}"
    return detail


def _probe(engine: Engine, options: DeployOptions, container: Container,
           watch: ContainerWatch) -> Probe:
    if options.health_cmd:
        return CommandProbe(engine, container.id, options.health_cmd)
    if container.has_healthcheck:
        return DockerHealthProbe(watch)
    return SettleProbe(options.settle)


def _retire(engine: Engine, service: str, old: Sequence[Container]) -> str:
    for container in old:
        try:
            engine.stop(container)
            engine.remove(container.id)
        except SwapError as exc:
            raise NeedsAttention(
                f"the new {service} containers run, but retiring {container.name} failed: "
                f"{exc.message}", hint=f"Stop and remove {container.name} by hand.") from exc
    return f"{', '.join(c.name for c in old) or 'nothing'} stopped and removed"


def _timed(observer: Observer, name: str, step: Callable[[], str]) -> str:
    observer.phase_started(name)
    started = time.monotonic()
    detail = step()
    observer.phase_finished(PhaseResult(name, time.monotonic() - started, detail))
    return detail


def _project(*groups: Sequence[Container]) -> str:
    return next(c.project for group in groups for c in group)
