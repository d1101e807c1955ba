"""What `up` will do: one action per service, with its reason, in dependency order.

    unchanged  its running containers are what compose would create now (compose's config hash,
               the image ID): nothing is touched
    start      it does not run: compose starts it
    scale      only the replica count differs: compose scales it (the proxy follows)
    swap       changed, behind a proxy (x-swap.proxy): the swap sequence, batch by batch
    canary     changed, behind a proxy, with --canary (x-swap.canary): new containers start
               beside the old ones, on a share of the requests, until promote or abort
    replace    changed, no proxy, can run twice: start-first, batch by batch
    recreate   changed and cannot run twice (container_name, a fixed host port, a shared network
               namespace, or update_config.order stop-first): compose's stop-then-start, with
               downtime, and the plan says so

Batches come from deploy.replicas and deploy.update_config; containers that already run the
current definition (a paused `up`, a canary being promoted) stay, and only the others are
replaced. Compose decides what a service is
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
CANARY = "canary"
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
    current: tuple[Container, ...] = ()
    """Running containers that already run the current definition: they stay (swap,
    replace); the others of `running` are replaced."""

    @property
    def stale(self) -> tuple[Container, ...]:
        """The running containers a swap or replace retires."""
        ids = {c.id for c in self.current}
        return tuple(c for c in self.running if c.id not in ids)

    @property
    def to_start(self) -> int:
        """New containers a swap or replace starts: the replicas the current ones miss."""
        return max(self.replicas - len(self.current), 0)

    @property
    def batches(self) -> tuple[int, ...]:
        """How many new containers each batch starts (swap and replace; one batch of none
        when the current containers are enough and only old ones are to go)."""
        if self.action not in CHANGING:
            return ()
        return batch_sizes(self.to_start, self.update.parallelism) or (0,)


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


def read_service_plan(compose: Compose, engine: Engine, project: Project, name: str,
                      flags: Flags | None = None) -> ProjectPlan:
    """The plan of one service alone (what it depends on is not looked at): `promote`."""
    closure(project, [name])  # refuses a service the project does not have
    observed = Observed({name: engine.service_containers(project.name, name)},
                        compose.config_hashes(),
                        {name: engine.image_id(project.services[name].image or "")})
    return ProjectPlan(project, (plan_service(project.services[name], observed, flags),))


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
    current = tuple(c for c in running if c.config_hash == observed.hashes.get(name) and
                    c.image_id == observed.images.get(name))[:definition.replicas]
    return _changed(replace(base, current=current), definition, changed, stopped)


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
    if base.options is not None and base.options.canary is not None:
        return _canary(base, changed)
    batches = _batches_text(base)
    if base.options is not None and base.options.proxy is not None:
        return _with(base, "swap", f"{changed}; behind {base.options.proxy}, {batches}")
    return _with(base, "replace", f"{changed}; no proxy: start-first, {batches}")


def _canary(base: ServicePlan, changed: str) -> ServicePlan:
    """--canary: new containers beside every old one, on a share of the requests."""
    assert base.options is not None and base.options.canary is not None
    share = base.options.canary
    if base.options.proxy is None:
        raise InvalidSettings(
            f"service {base.name!r} has no proxy, so a canary cannot get a share of its "
            "requests.", hint="Name the services behind a proxy: `docker-swap up --canary "
            "10% SERVICE`.")
    if base.current:
        raise InvalidSettings(
            f"service {base.name!r} already runs {len(base.current)} container(s) of its "
            "new definition beside old ones (a paused `up`), so a canary of it cannot start.",
            hint=f"Finish that rollout first with `docker-swap up {base.name}`.")
    count = share.containers(len(base.running))
    return _with(base, CANARY, f"{changed}; behind {base.options.proxy}: a canary of "
                 f"{count} new container(s) beside {len(base.running)}, on {share} of the "
                 "requests, until `docker-swap promote` or `abort`")


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


def _batches_text(plan: ServicePlan) -> str:
    sizes = batch_sizes(plan.to_start, plan.update.parallelism)
    kept = f"{len(plan.current)} current container(s) stay, " if plan.current else ""
    if not sizes:
        return f"{kept}{len(plan.stale)} old one(s) leave"
    return f"{kept}{plan.to_start} replica(s) in {len(sizes)} batch(es) of {sizes[0]}"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _with(plan: ServicePlan, action: str, reason: str, downtime: str | None = None) -> ServicePlan:
    return replace(plan, action=action, reason=reason, downtime=downtime)
