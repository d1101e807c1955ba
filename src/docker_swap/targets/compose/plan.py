"""What `up` will do: one action per service, with its reason, in dependency order.

    unchanged  its running containers are what compose would create now (compose's config hash,
               the image ID): nothing is touched
    start      it does not run: compose starts it
    scale      only the replica count differs: compose scales it (the proxy follows)
    swap       changed, behind a proxy (x-swap.proxy): the swap sequence, batch by batch
    replace    changed, no proxy, can run twice: start-first, batch by batch
    recreate   changed and cannot run twice (container_name, a fixed host port, a shared network
               namespace, or update_config.order stop-first): compose's stop-then-start, with
               downtime, and the plan says so

Batches come from deploy.replicas and deploy.update_config. Compose decides what a service is
(`docker compose config`, `config --hash`); this module only compares and orders. `read_plan` asks
compose and the engine; `make_plan` decides from what they said, so it is tested with fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import InvalidSettings, NotSwappable, ServiceNotFound
from docker_swap.models import Container, Project, ServiceDefinition
from docker_swap.options import DeployOptions
from docker_swap.settings import parse_duration, resolve_settings

if TYPE_CHECKING:
    from docker_swap.engine import Engine

CHANGING = ("swap", "replace")
"""Actions that replace running containers batch by batch, start-first."""
FAILURE_ACTIONS = ("rollback", "pause", "continue")
ROLLBACK_FAILURE_ACTIONS = ("pause", "continue")
"""rollback_config.failure_action: what a failed rollback batch does (compose's and Swarm's
values; Swarm's default is pause)."""
ORDERS = ("start-first", "stop-first")
DEFAULT_FAILURE_ACTION = "rollback"
"""Swarm's default is pause; docker-swap's is rollback: the old version serves again."""
HEALTHY = "service_healthy"


@dataclass(frozen=True)
class UpdateConfig:
    """deploy.update_config (or rollback_config) as docker-swap applies it."""

    parallelism: int = 0
    """New containers per batch; 0: every replica in one batch."""
    parallelism_set: bool = False
    """The file sets parallelism (an unset rollback_config.parallelism follows update_config's,
    so that a rollback never runs more containers at once than the update did)."""
    delay: float = 0.0
    order: str = "start-first"
    monitor: float = 0.0
    """Seconds each batch's new containers must stay running and healthy before the next."""
    failure_action: str = DEFAULT_FAILURE_ACTION
    max_failure_ratio: float = 0.0


@dataclass(frozen=True)
class ServicePlan:
    name: str
    action: str
    reason: str
    replicas: int
    running: tuple[Container, ...] = ()
    depends_on: Mapping[str, str] = field(default_factory=dict)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    rollback: UpdateConfig = field(default_factory=UpdateConfig)
    options: DeployOptions | None = None
    downtime: str | None = None
    """Why this service stops before its new version runs (recreate only)."""

    @property
    def batches(self) -> tuple[int, ...]:
        """How many new containers each batch starts (swap and replace)."""
        if self.action not in CHANGING:
            return ()
        return batch_sizes(self.replicas, self.update.parallelism)


@dataclass(frozen=True)
class ProjectPlan:
    project: Project
    services: tuple[ServicePlan, ...]
    """In dependency order: a service comes after everything it depends on."""

    def service(self, name: str) -> ServicePlan:
        return next(s for s in self.services if s.name == name)

    def needs_healthy(self, name: str) -> bool:
        """Whether a service in the plan waits for `name` with condition service_healthy."""
        return any(s.depends_on.get(name) == HEALTHY for s in self.services)


@dataclass(frozen=True)
class Observed:
    """What compose and the engine said, for `make_plan`."""

    containers: Mapping[str, Sequence[Container]]
    """Every container of each service, running or not."""
    hashes: Mapping[str, str]
    """Compose's config hash of each service's current definition."""
    images: Mapping[str, str | None]
    """The ID of the image each service would run now (None: not here; compose pulls/builds)."""


Flags = Mapping[str, object | None]


def read_plan(compose: Compose, engine: Engine, project: Project,
              selected: Sequence[str] = (), flags: Flags | None = None) -> ProjectPlan:
    """Ask compose and the engine, then decide (nothing changes). `flags` (settings given on
    the command line) apply to the services named in `selected`, or to every one if none is."""
    names = closure(project, selected)
    hashes = compose.config_hashes()
    containers = {n: engine.service_containers(project.name, n) for n in names}
    images = {n: engine.image_id(project.services[n].image or "") for n in names}
    return make_plan(project, Observed(containers, hashes, images), selected, flags)


def make_plan(project: Project, observed: Observed, selected: Sequence[str] = (),
              flags: Flags | None = None) -> ProjectPlan:
    names = closure(project, selected)
    given = set(selected or names)
    plans = {n: plan_service(project.services[n], observed, flags if n in given else None)
             for n in names}
    return ProjectPlan(project, tuple(plans[n] for n in dependency_order(project, names)))


def closure(project: Project, selected: Sequence[str]) -> list[str]:
    """The named services and everything they depend on; every service when none is named."""
    for name in selected:
        if name not in project.services:
            known = ", ".join(sorted(project.services)) or "none"
            raise ServiceNotFound(
                f"project {project.name!r} has no service {name!r} (services: {known}).")
    wanted, todo = set(), list(selected or project.services)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [d for d in project.services[name].depends_on if d in project.services]
    return sorted(wanted)


def dependency_order(project: Project, names: Sequence[str]) -> list[str]:
    """Dependencies first; among services that wait for nothing left, by name."""
    done: list[str] = []
    left = set(names)
    while left:
        free = sorted(n for n in left
                      if not set(project.services[n].depends_on) & left)
        if not free:
            raise InvalidSettings(
                f"services {', '.join(sorted(left))} depend on each other in a cycle.")
        done += free
        left -= set(free)
    return done


def plan_service(definition: ServiceDefinition, observed: Observed,
                 flags: Flags | None = None) -> ServicePlan:
    name = definition.name
    containers = list(observed.containers.get(name, ()))
    running = tuple(c for c in containers if c.running)
    stopped = [c for c in containers if not c.running]
    update = update_config(name, definition.deploy, "update_config")
    rollback = update_config(name, definition.deploy, "rollback_config")
    base = ServicePlan(
        name, "unchanged", "", definition.replicas, running, dict(definition.depends_on),
        update, rollback, resolve_settings(name, definition.x_swap, flags or {}),
    )
    if not running:
        return _not_running(base, len(stopped))
    if definition.replicas == 0:
        return _to_zero(base, running)
    changed = _changes(running, observed.hashes.get(name, ""), observed.images.get(name))
    if not changed:
        return _same(base, len(running), len(stopped), observed.hashes[name])
    return _changed(base, definition, changed, stopped)


def _not_running(base: ServicePlan, stopped: int) -> ServicePlan:
    if base.replicas == 0:
        return _with(base, "unchanged", "deploy.replicas is 0 and none of its containers runs")
    why = f"{stopped} stopped container(s)" if stopped else "no container"
    return _with(base, "start", f"{why}; compose starts {base.replicas}")


def _same(base: ServicePlan, running: int, stopped: int, config_hash: str) -> ServicePlan:
    if stopped or running != base.replicas:
        return _with(base, "scale", f"runs {running} of {base.replicas} replica(s), each on "
                     "the current definition")
    return _with(base, "unchanged", f"{running} container(s) run the current definition "
                 f"(config hash {config_hash[:12]}, same image)")


def _changed(base: ServicePlan, definition: ServiceDefinition, changed: str,
             stopped: Sequence[Container]) -> ServicePlan:
    downtime = _cannot_run_twice(definition, base.update)
    if downtime:
        return _with(base, "recreate", f"{changed}; {downtime}", downtime=downtime)
    if stopped:
        raise NotSwappable(
            f"service {base.name!r} has stopped containers "
            f"({', '.join(c.name for c in stopped)}) that compose would restart instead of "
            "starting the new version.",
            hint=f"Remove them first: `docker rm {' '.join(c.name for c in stopped)}`.")
    batches = _batches_text(base.replicas, base.update.parallelism)
    if base.options is not None and base.options.proxy is not None:
        return _with(base, "swap", f"{changed}; behind {base.options.proxy}, {batches}")
    return _with(base, "replace", f"{changed}; no proxy: start-first, {batches}")


def _to_zero(plan: ServicePlan, running: Sequence[Container]) -> ServicePlan:
    """deploy.replicas 0: compose stops what runs. Behind a proxy that would leave the proxy
    nothing to send to, which no proxy takes: refused, nothing changed."""
    if plan.options is not None and plan.options.proxy is not None:
        raise InvalidSettings(
            f"service {plan.name!r} has deploy.replicas 0, which would leave its proxy "
            f"({plan.options.proxy}) nothing to send to.",
            hint=f"Stop it with `docker compose stop {plan.name}` if that is what you mean, "
            "or give it at least one replica.")
    return _with(plan, "scale", f"deploy.replicas is 0: compose stops its {len(running)} "
                 "container(s)")


def batch_sizes(replicas: int, parallelism: int) -> tuple[int, ...]:
    size = parallelism if 0 < parallelism < replicas else replicas
    full, rest = divmod(replicas, size) if size else (0, 0)
    return (size,) * full + ((rest,) if rest else ())


def update_config(service: str, deploy: Mapping[str, object], key: str) -> UpdateConfig:
    """deploy.<key>, checked; compose has already validated its shape."""
    raw = deploy.get(key) or {}
    assert isinstance(raw, Mapping)

    def fail(field_name: str, expected: str) -> InvalidSettings:
        return InvalidSettings(f"deploy.{key}.{field_name} of service {service!r} is "
                               f"{raw[field_name]!r}; expected {expected}.")

    try:
        parallelism = int(raw.get("parallelism", 0))
    except (TypeError, ValueError):
        raise fail("parallelism", "a number of containers") from None
    if parallelism < 0:
        raise fail("parallelism", "0 (all at once) or more")
    order = str(raw.get("order", "start-first"))
    if order not in ORDERS:
        raise fail("order", " or ".join(ORDERS))
    actions = FAILURE_ACTIONS if key == "update_config" else ROLLBACK_FAILURE_ACTIONS
    default = DEFAULT_FAILURE_ACTION if key == "update_config" else "pause"
    action = str(raw.get("failure_action", default))
    if action not in actions:
        raise fail("failure_action", ", ".join(actions))
    ratio = float(raw.get("max_failure_ratio", 0) or 0)
    if not 0 <= ratio <= 1:
        raise fail("max_failure_ratio", "a number from 0 to 1")
    return UpdateConfig(parallelism, "parallelism" in raw, _seconds(raw, "delay", fail), order,
                        _seconds(raw, "monitor", fail), action, ratio)


def _seconds(raw: Mapping[str, object], name: str,
             fail: Callable[[str, str], InvalidSettings]) -> float:
    value = raw.get(name)
    if value in (None, 0, "0", "0s"):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError:
        raise fail(name, "a duration such as 10s") from None


def _changes(running: Sequence[Container], config_hash: str, image: str | None) -> str:
    """Why the running containers are not what compose would create now ('' if they are)."""
    stale = [c for c in running if c.config_hash != config_hash]
    if stale:
        return (f"definition changed (config hash {stale[0].config_hash[:12] or 'none'} -> "
                f"{config_hash[:12]})")
    if image is None:
        return "its image is not here yet (compose pulls or builds it)"
    other = [c for c in running if c.image_id != image]
    if other:
        return f"image changed ({_short(other[0].image_id)} -> {_short(image)})"
    return ""


def _cannot_run_twice(definition: ServiceDefinition, update: UpdateConfig) -> str | None:
    if definition.container_name:
        return (f"sets container_name {definition.container_name}, so two cannot run at once: "
                "downtime while compose stops the old one and starts the new")
    if definition.published_ports:
        port = definition.published_ports[0].published
        return (f"publishes host port {port}, which two containers cannot bind: downtime while "
                "compose stops the old one and starts the new")
    mode = definition.network_mode or ""
    if mode == "host" or mode.startswith(("container:", "service:")):
        return f"uses network_mode {mode}: downtime while compose recreates it"
    if update.order == "stop-first":
        return "update_config.order is stop-first: downtime while compose recreates it"
    return None


def _batches_text(replicas: int, parallelism: int) -> str:
    sizes = batch_sizes(replicas, parallelism)
    return f"{replicas} replica(s) in {len(sizes)} batch(es) of {sizes[0]}" if sizes else "0"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _with(plan: ServicePlan, action: str, reason: str, downtime: str | None = None) -> ServicePlan:
    return replace(plan, action=action, reason=reason, downtime=downtime)
