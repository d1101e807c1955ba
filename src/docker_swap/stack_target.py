"""Which target a command works on (a compose project on one engine, or a Swarm stack), and
everything a stack command needs, opened once.

Swarm mode applies when the engine is a swarm manager and the project's name is a deployed
stack (`docker stack deploy -c FILE NAME`: NAME is the project name, `-p NAME` or the file's
`name:`). `--swarm` forces it (a refusal if it cannot apply), `--no-swarm` rules it out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .compose import Compose, Stack
from .errors import ProxyNotReady, Refused, ServiceNotFound
from .journal import Journal
from .options import ComposeOptions, DeployOptions, resolve_settings
from .preflight import connect_engine, nothing_changed_yet
from .proxy import ProxyDriver
from .proxy.registry import RegistryDriver

if TYPE_CHECKING:  # the Docker SDK loads on first use (preflight.connect_engine)
    from .engine import Engine
    from .swarm import Node, SwarmEngine, SwarmService

_NODES_SECONDS = 1.0
_MARKER_IMAGE = ("docker-swap-marker", "1")
"""An image of labels only, for the lock and journal markers on a manager that may run none
of the stack's images itself."""
STACK_JOURNAL = "stack"
"""The journal and lock of a stack's rollouts (one for the whole stack: `docker stack deploy`
updates every service at once)."""


@dataclass
class StackTarget:
    compose: Compose
    stack: Stack
    engine: Engine
    swarm: SwarmEngine
    name: str
    services: tuple[str, ...]
    """The file's services, in its order."""
    settings: dict[str, DeployOptions] = field(default_factory=dict)
    """The services with a proxy, and their settings."""
    running: dict[str, SwarmService] = field(default_factory=dict)
    """The file's services that the stack runs."""

    def driver(self, options: DeployOptions) -> ProxyDriver:
        from .registry import connect_registry  # noqa: PLC0415  (redis loads only here)

        registry = connect_registry(options, self.name)
        return RegistryDriver(registry, options.service, options.switch_timeout,
                              excused=AgentsOnDownNodes(self.swarm))

    def refresh(self) -> None:
        stack = {s.name: s for s in self.swarm.stack_services(self.name)}
        self.running = {n: stack[f"{self.name}_{n}"] for n in self.services
                        if f"{self.name}_{n}" in stack}


class AgentsOnDownNodes:
    """Whether an agent is not to be waited for: it runs on a node Swarm reports down (an
    agent in a stack is named HOSTNAME@NODE-ID). Asks Swarm at most once a second."""

    def __init__(self, swarm: SwarmEngine) -> None:
        self._swarm = swarm
        self._nodes: dict[str, Node] = {}
        self._at = -_NODES_SECONDS

    def __call__(self, agent: str) -> bool:
        node = self._read().get(agent.rpartition("@")[2]) if "@" in agent else None
        return node is not None and not node.ready

    def _read(self) -> dict[str, Node]:
        if time.monotonic() - self._at >= _NODES_SECONDS:
            self._nodes, self._at = self._swarm.nodes(), time.monotonic()
        return self._nodes


def swarm_mode(swarm: SwarmEngine, project: str, forced: bool | None) -> tuple[bool, str]:
    """Whether commands work on the stack `project`, and why (for `doctor`)."""
    if forced is False:
        return False, "compose mode: --no-swarm"
    manager, why = swarm.manager()
    if not manager:
        if forced:
            raise Refused(f"--swarm cannot apply: {why}.",
                          hint="Point DOCKER_HOST at a swarm manager.")
        return False, f"compose mode: {why}"
    if not swarm.stack_services(project):
        if forced:
            raise ServiceNotFound(f"--swarm cannot apply: no stack named {project!r} runs.",
                                  hint=f"Deploy it first: `docker stack deploy -c FILE {project}`.")
        return False, f"compose mode: {why}, but no stack named {project!r} runs"
    return True, f"swarm mode: {why} and stack {project!r} runs"


def open_stack(compose_options: ComposeOptions, flags: Mapping[str, object | None],
               forced: bool | None) -> StackTarget | None:
    """The stack to work on, or None when compose mode applies."""
    compose = Compose(compose_options)
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        project = compose.load_project()
        from .swarm import SwarmEngine  # noqa: PLC0415

        swarm = SwarmEngine(engine.docker_client)
        applies, _ = swarm_mode(swarm, project.name, forced)
    if not applies:
        return None
    target = StackTarget(compose, Stack(compose_options, project.name), engine, swarm,
                         project.name, tuple(project.services))
    for name, definition in project.services.items():
        options = resolve_settings(name, definition.x_swap, flags)
        if options.proxy is not None:
            target.settings[name] = options
    with nothing_changed_yet():
        target.refresh()
    return target


def require_service(target: StackTarget, service: str) -> None:
    if service not in target.services:
        raise ServiceNotFound(f"service {service!r} is not in stack {target.name!r}.")
    if service not in target.settings:
        raise ProxyNotReady(f"no proxy is configured for service {service!r}.",
                            hint=f"Add `x-swap: {{proxy: redis}}` to {service} in the compose "
                            "file (docs/swarm.md).")


def stack_journal(target: StackTarget) -> Journal:
    """The stack's journal and lock, on the manager."""
    return Journal(target.engine, target.name, STACK_JOURNAL, image=_marker_image(target))


def _marker_image(target: StackTarget) -> str:
    reference = ":".join(_MARKER_IMAGE)
    with nothing_changed_yet():
        image = target.engine.image(reference)
        if image is None:
            return target.engine.import_labels(*_MARKER_IMAGE, {"docker-swap.kind": "marker"})
    return image.id
