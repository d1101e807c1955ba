"""`docker-swap doctor`: every check a deploy makes, for every service that has `x-swap`, said
as findings (what is fine, what to fix and how) instead of stopping at the first problem; then
what `up` would do to each service, and why. Nothing is changed and no lock is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import SwapError
from docker_swap.models import Project, ServiceDefinition
from docker_swap.options import REGISTRY_KEY_ENV, REGISTRY_KEY_FILE_ENV, ComposeOptions
from docker_swap.proxy.registry import RegistryDriver
from docker_swap.safety.journal import Journal
from docker_swap.settings import resolve_settings
from docker_swap.targets.compose.plan import read_plan
from docker_swap.targets.compose.preflight import (
    choose_port,
    connect_engine,
    connect_proxy,
    refuse_unswappable,
    running_containers,
)
from docker_swap.targets.swarm.stack import open_stack, swarm_mode

if TYPE_CHECKING:
    from docker_swap.engine import Engine


UNSIGNED_REGISTRY = ("the registry has no key: anyone with write access to its Redis controls "
                     "the proxies (generations and agent reports are not signed)")
UNSIGNED_REGISTRY_HINT = (f"Set one key for the deploys and every agent: x-swap registry-key "
                          f"(file:PATH), {REGISTRY_KEY_ENV} or {REGISTRY_KEY_FILE_ENV}.")


@dataclass(frozen=True)
class Finding:
    ok: bool
    subject: str
    text: str
    hint: str | None = None


def diagnose(compose_options: ComposeOptions | None = None,
             swarm: bool | None = None) -> Iterator[Finding]:
    """Findings one by one, so that a slow check does not hide the ones before it."""
    try:
        engine = connect_engine()
        yield Finding(True, "engine", f"Docker {engine.version()} answers")
        compose = Compose(compose_options or ComposeOptions())
        yield Finding(True, "compose", f"docker compose v{compose.check_version()}")
        project = compose.load_project()
        from docker_swap.engine.swarm import SwarmEngine  # noqa: PLC0415  (the SDK is loaded by now)

        applies, why = swarm_mode(SwarmEngine(engine.docker_client), project.name, swarm)
        yield Finding(True, "mode", why)
    except SwapError as error:
        yield Finding(False, "setup", error.message, error.hint)
        return
    if applies:
        yield from _stack(compose_options or ComposeOptions())
        return
    swapped = [s for s in project.services.values() if s.x_swap]
    yield Finding(bool(swapped), "project",
                  f"{project.name}: {len(project.services)} service(s), "
                  f"{len(swapped)} with x-swap",
                  None if swapped else "Add `x-swap: {proxy: nginx:SERVICE}` to the service "
                  "you deploy (see docs/nginx.md).")
    for definition in swapped:
        yield from _service(engine, project, definition)
    yield from _followed(engine, project)
    yield from _up(compose, engine, project)


def _followed(engine: Engine, project: Project) -> Iterator[Finding]:
    """Each service `autoupdate` follows (x-swap autoupdate): does its registry answer?"""
    for name, definition in sorted(project.services.items()):
        try:
            policy = resolve_settings(name, definition.x_swap, {}).autoupdate
            if policy == "never":
                continue
            reference = definition.image or ""
            if definition.builds:
                yield Finding(False, f"{name} autoupdate", "it builds its image here, so "
                              "autoupdate has no registry to follow", "Push it to a registry "
                              "and name it in `image:`, or set x-swap autoupdate: never.")
                continue
            digest = engine.remote_digest(reference)
            yield Finding(True, f"{name} autoupdate", f"{policy}: the registry says "
                          f"{reference} is {digest[:19]}")
        except SwapError as error:
            yield Finding(False, f"{name} autoupdate", error.message,
                          error.hint or "Check `docker pull` of it, and your docker "
                          "credentials (`docker login`).")


def _stack(compose_options: ComposeOptions) -> Iterator[Finding]:
    """A Swarm stack: each proxied service's registry and agents, and what `up` would do."""
    from docker_swap.rollout.stack import stack_up  # noqa: PLC0415

    try:
        target = open_stack(compose_options, {}, True)
        assert target is not None
        for name, options in target.settings.items():
            try:
                driver = target.driver(options)
                notes = driver.check()
                yield Finding(True, f"{name} proxy", driver.status(), "; ".join(notes) or None)
            except SwapError as error:
                yield Finding(False, f"{name} proxy", error.message, error.hint)
        for service in stack_up(target, dry_run=True).services:
            yield Finding(True, f"up {service.name}", f"{service.action}: {service.reason}")
    except SwapError as error:
        yield Finding(False, "stack", error.message, error.hint)


def _up(compose: Compose, engine: Engine, project: Project) -> Iterator[Finding]:
    """What `docker-swap up` would do to each service now, and why."""
    try:
        plan = read_plan(compose, engine, project)
    except SwapError as error:
        yield Finding(False, "up", error.message, error.hint)
        return
    for service in plan.services:
        yield Finding(True, f"up {service.name}", f"{service.action}: {service.reason}")


def _service(engine: Engine, project: Project, definition: ServiceDefinition) -> Iterator[Finding]:
    name = definition.name
    try:
        options = resolve_settings(name, definition.x_swap, {})
        if options.proxy is None:
            ready = ("its health command passes" if options.health_cmd else
                     f"its HEALTHCHECK passes, else after {options.settle:g}s of running")
            yield Finding(True, name, f"no proxy: `up` replaces it start-first (ready when "
                          f"{ready})")
            return
        old = running_containers(engine, project, definition)
        refuse_unswappable(definition, old)
        yield Finding(True, name, f"{len(old)} running container(s), can run twice")
        proxy, network = connect_proxy(engine, project, options, old[0])
        notes = proxy.check()
        yield Finding(True, name, f"proxy {proxy.description} on network {network}: "
                      f"{proxy.status()}")
        for note in notes:
            yield Finding(False, name, note)
        if isinstance(proxy, RegistryDriver) and not proxy.signed:
            yield Finding(False, name, UNSIGNED_REGISTRY, UNSIGNED_REGISTRY_HINT)
        port = choose_port(options, old[0])
        readiness = (f"command {' '.join(options.health_cmd)}" if options.health_cmd else
                     f"GET {options.http_path}" if options.http_path else
                     "the image's HEALTHCHECK" if old[0].has_healthcheck else "TCP connect")
        yield Finding(True, name, f"port {port}; ready when: {readiness}; timeouts "
                      f"{options.timeout:g}s / drain {options.drain_timeout:g}s")
        entry = Journal(engine, project.name, name, image=old[0].image_id).read()
        if entry is not None:
            yield Finding(False, name, f"a deploy started at {entry.started_at} was "
                          f"interrupted (phase {entry.phase})",
                          f"Run `docker-swap recover {name}`.")
    except SwapError as error:
        yield Finding(False, name, error.message, error.hint)
