"""Which target a command works on (a compose project on one engine, or a Swarm stack), and
everything a stack command needs, opened once.

Swarm mode applies when the engine is a swarm manager and the project's name is a deployed
stack (`docker stack deploy -c FILE NAME`: NAME is the project name, `-p NAME` or the file's
`name:`). `--swarm` forces it (a refusal if it cannot apply), `--no-swarm` rules it out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from docker_swap import labels
from docker_swap.compose import Compose, Stack
from docker_swap.errors import InvalidSettings, ProxyNotReady, Refused, ServiceNotFound
from docker_swap.options import ComposeOptions, DeployOptions
from docker_swap.proxy import ProxyDriver
from docker_swap.proxy.registry import RegistryDriver
from docker_swap.safety.journal import Journal
from docker_swap.settings import resolve_settings
from docker_swap.targets.compose.preflight import connect_engine, nothing_changed_yet
from docker_swap.targets.swarm.node_jobs import JobImage, agent_image

if TYPE_CHECKING:  # the Docker SDK loads on first use (preflight.connect_engine)
    from docker_swap.engine import Engine
    from docker_swap.engine.swarm import Node, SwarmEngine, SwarmService

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
    images: dict[str, str] = field(default_factory=dict)
    """The image each service of the file names."""
    _job_image: JobImage | None = None

    def driver(self, options: DeployOptions) -> ProxyDriver:
        from docker_swap.registry.store import connect_registry  # noqa: PLC0415  (redis loads only here)

        registry = connect_registry(options, self.name)
        return RegistryDriver(registry, options.service, options.switch_timeout,
                              excused=AgentsOnDownNodes(self.swarm))

    def needs_jobs(self, options: DeployOptions) -> bool:
        """Its settings run commands inside its tasks (node_jobs.py)."""
        return bool(options.hooks or options.health_cmd or options.http_path)

    def job_image(self) -> JobImage:
        if self._job_image is None:
            self._job_image = agent_image(self.swarm, self.name)
        return self._job_image

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
               forced: bool | None, service: str | Sequence[str] | None = None,
               ) -> StackTarget | None:
    """The stack to work on, or None when compose mode applies. `flags` are the settings of
    `service`, the one the command names (the others keep their x-swap); given several (`up`),
    of those, or of every service when the sequence is empty."""
    named = {service} if isinstance(service, str) else set(service or ())
    everywhere = service is not None and not isinstance(service, str) and not named
    compose = Compose(compose_options)
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        from docker_swap.engine.swarm import SwarmEngine  # noqa: PLC0415

        swarm = SwarmEngine(engine.docker_client)
        if not forced and not swarm.manager()[0]:
            return None  # the usual case, answered without waiting for compose
        project = compose.load_project()
        applies, _ = swarm_mode(swarm, project.name, forced)
    if not applies:
        return None
    target = StackTarget(compose, Stack(compose_options, project.name), engine, swarm,
                         project.name, tuple(project.services))
    with nothing_changed_yet():
        target.refresh()
        for name, definition in project.services.items():
            target.images[name] = definition.image or ""
            given = flags if everywhere or name in named else {}
            options = resolve_settings(name, definition.x_swap, given)
            if options.proxy is not None:
                target.settings[name] = _checked(target, options)
    return target


def _checked(target: StackTarget, options: DeployOptions) -> DeployOptions:
    """Give the port the image exposes if x-swap names none; refuse (exit 2) settings that run
    inside the tasks (hooks, health-cmd, http) when no job can run there, and a canary."""
    if options.canary is not None:
        raise InvalidSettings(
            f"a canary of {options.service} cannot start on a Swarm stack yet: its traffic "
            "moves from a bridge to the new tasks all at once (docs/swarm.md).",
            hint="Deploy it without --canary (or x-swap canary), or canary it on a compose "
            "host.")
    if target.needs_jobs(options):
        target.job_image()  # InvalidSettings when the stack runs no agent service
    running = target.running.get(options.service)
    if options.port is None and running is not None:
        ports = target.swarm.image_ports(running.image)
        if len(ports) == 1:
            return replace(options, port=ports[0])
    return options


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
            return target.engine.import_labels(*_MARKER_IMAGE, {labels.KIND: "marker"})
    return image.id
