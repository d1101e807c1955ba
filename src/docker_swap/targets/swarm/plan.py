"""What `docker-swap up` will do to each service of a Swarm stack, and why.

    bridge     it has a proxy (the registry) and its tasks change: a bridge carries its traffic
               while Swarm replaces them (swarm_up.py)
    swarm      no proxy follows it: `docker stack deploy` lets Swarm update it, with the
               file's own update_config, if its spec changed
    create     it is in the file but not in the stack yet: `docker stack deploy` creates it
    unchanged  its tasks are what docker-swap deployed last, from the same definition

Whether the tasks of a proxied service change is decided from docker-swap's own release
record, never guessed: a service is unchanged only when compose's hash of its definition and
the hash of its running task template both equal what its last release recorded. Without a
record (the stack was deployed by `docker stack deploy` alone), or after a change made outside
docker-swap, its tasks are replaced through a bridge, which is safe, only slower.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from docker_swap.engine.swarm import SwarmService
from docker_swap.errors import InvalidSettings, NotSwappable
from docker_swap.options import DeployOptions
from docker_swap.releases.record import Release

BRIDGE, SWARM, CREATE, UNCHANGED = "bridge", "swarm", "create", "unchanged"


@dataclass(frozen=True)
class StackStep:
    service: str
    """The compose file's name for it."""
    swarm_name: str
    """The Swarm service: STACK_SERVICE."""
    action: str
    reason: str
    options: DeployOptions | None = None
    """The settings of a service that has a proxy."""


@dataclass(frozen=True)
class StackPlan:
    stack: str
    steps: tuple[StackStep, ...]
    hashes: Mapping[str, str] = field(default_factory=dict, hash=False)
    """compose's config hash of each service, as planned: what the release records keep."""

    @property
    def bridged(self) -> tuple[StackStep, ...]:
        return tuple(s for s in self.steps if s.action == BRIDGE)

    def step(self, service: str) -> StackStep:
        return next(s for s in self.steps if s.service == service)


def plan_stack(
    stack: str,
    services: Collection[str],
    running: Mapping[str, SwarmService],
    settings: Mapping[str, DeployOptions],
    hashes: Mapping[str, str],
    last: Mapping[str, Release | None],
    force: Collection[str] = (),
) -> StackPlan:
    """One step per service of the file, in the file's order. `running` maps a service's
    name in the file to its Swarm service, `settings` those with a proxy to their settings,
    `last` to their newest deployed release; `force` replaces the tasks even if unchanged."""
    steps = []
    for name in services:
        swarm_name = f"{stack}_{name}"
        service = running.get(name)
        options = settings.get(name)
        if service is None:
            steps.append(StackStep(name, swarm_name, CREATE, "new in the file", options))
        elif options is None:
            steps.append(StackStep(name, swarm_name, SWARM,
                                   "no proxy follows it: Swarm updates it if its spec changed"))
        else:
            refuse_unbridgeable(service, options)
            reason = _change(service, hashes.get(name, ""), last.get(name), name in force)
            steps.append(StackStep(name, swarm_name, BRIDGE if reason else UNCHANGED,
                                   reason or "as docker-swap deployed it last", options))
    return StackPlan(stack, tuple(steps), dict(hashes))


def _change(service: SwarmService, config_hash: str, last: Release | None, forced: bool) -> str:
    """Why its tasks are replaced, or "" when they stay."""
    if forced:
        return "asked for: every task is replaced"
    if last is None:
        return "no docker-swap release of it yet: its tasks are replaced to be sure"
    if last.config_hash != config_hash:
        return "its definition changed"
    if last.image_id != service.template_hash:
        return "its tasks changed since docker-swap deployed them"
    return ""


def refuse_unbridgeable(service: SwarmService, options: DeployOptions) -> None:
    if options.proxy is None or options.proxy.driver != "redis":
        raise InvalidSettings(
            f"in a swarm, the proxy of {options.service} must follow deploys through the "
            f"registry (x-swap proxy: redis), not {options.proxy}: docker-swap cannot reach "
            "a proxy on another node.",
            hint="Run a `docker-swap agent` beside each proxy (docs/swarm.md).")
    if service.replicas is None:
        raise NotSwappable(
            f"{service.name} is a global service: a copy of it could not run beside it on "
            "each node.", hint="Give it `deploy: {mode: replicated}`.")
