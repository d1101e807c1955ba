"""Everything a swap needs, resolved and checked before anything changes.

Each check either passes or raises a `Refused` error that says, in one sentence, what is wrong
and how to fix it. Nothing here starts, stops or writes anything (except taking the lock).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from docker_swap.compose import Compose, locate
from docker_swap.errors import (
    CanaryConflict,
    InvalidSettings,
    NotSwappable,
    ProxyNotReady,
    Refused,
    ServiceNotFound,
    StepFailed,
    UnfinishedDeploy,
)
from docker_swap.models import Container, Project, ServiceDefinition
from docker_swap.options import DeployOptions
from docker_swap.proxy import ProxyDriver, open_proxy
from docker_swap.proxy.registry import RegistryDriver
from docker_swap.releases.record import Release
from docker_swap.releases.store import active_canary, read_releases
from docker_swap.safety.journal import Journal
from docker_swap.settings import resolve_settings

if TYPE_CHECKING:
    from docker_swap.engine import Engine


@dataclass
class Plan:
    """A checked deploy: what to replace, how to judge the new one, which proxy to switch."""

    project: Project
    options: DeployOptions
    old: list[Container]
    port: int | None
    """The port the proxy sends to (None for a service no proxy sends to, with no port)."""
    network: str
    proxy: ProxyDriver | None
    """None: no proxy sends to the service (a worker): a batch retires what it replaces once
    the new containers are ready."""
    journal: Journal
    notes: list[str] = field(default_factory=list)
    staying: list[Container] = field(default_factory=list)
    """Containers that keep serving through this swap (`up` replacing one batch of `old`)."""
    batch_size: int | None = None
    """How many new containers to start; None: as many as `old`."""
    canary: Release | None = None
    """The canary release that runs (promote and abort work on it; others refuse it)."""


def connect_engine() -> Engine:
    """The engine the docker CLI would use. The Docker SDK loads here, on first use, so that
    commands can start compose before paying for it."""
    from docker_swap.engine import Engine  # noqa: PLC0415

    return Engine.connect()


def open_service(
    compose: Compose, service: str, flags: Mapping[str, object | None]
) -> tuple[Engine, Project, DeployOptions]:
    """The engine, the project and the service's settings. Compose reads the project while
    the Docker SDK loads and connects: neither waits for the other."""
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        project, options = load(compose, service, flags)
    return engine, project, options


@contextmanager
def nothing_changed_yet() -> Iterator[None]:
    """Preflight only reads: an engine or proxy call that fails here refuses (exit 2); it
    never reads as a failed step that was rolled back."""
    try:
        yield
    except StepFailed as exc:
        raise Refused(exc.message, hint=exc.hint) from exc


REFUSE_CANARY, REQUIRE_CANARY = "refuse", "require"


def prepare(engine: Engine, project: Project, options: DeployOptions, *,
            canary: str = REFUSE_CANARY) -> Plan:
    """Run every preflight check, take the service's lock, and return the plan.

    A running canary refuses the deploy (`canary` "refuse": only promote or abort may change
    it), and promote and abort ("require") are refused when none runs.

    Checks that do not depend on each other ask the engine side by side; their verdicts are
    read in a fixed order, so which refusal a user sees never depends on timing. A service
    without a proxy is refused (ProxyNotReady): `prepare_unproxied` is for `up`'s workers.
    """
    service = options.service
    definition = project.services[service]
    pool = ThreadPoolExecutor(4, thread_name_prefix="docker-swap-preflight")
    with nothing_changed_yet(), pool:
        running = pool.submit(running_containers, engine, project, definition)
        checked = pool.submit(_checked_proxy, engine, project, options)
        engine_id = pool.submit(engine.engine_id)
        releases = pool.submit(read_releases, engine, project.name, service)
        old = running.result()
        refuse_unswappable(definition, old)
        engine_id.result()  # the engine's ID and clock, which the journal uses
        journal = Journal(engine, project.name, service, image=old[0].image_id)
        locked = pool.submit(journal.lock)  # while the proxy is checked; read after it
        try:
            proxy, proxies, notes = checked.result()
            network = proxy_network(proxies, old[0])
            port = choose_port(options, old[0])
            locked.result()
            refuse_unfinished(journal, service)
            found = check_canary(active_canary(releases.result()[0], old), canary, service)
        except BaseException:
            wait([locked])
            journal.unlock()
            raise
    return Plan(project, options, old, port, network, proxy, journal, notes + journal.notes,
                canary=found)


def check_canary(found: Release | None, wanted: str, service: str) -> Release | None:
    """`found` (the canary that runs), if the command may go on with it; CanaryConflict if
    not."""
    if found is not None and wanted == REFUSE_CANARY:
        raise CanaryConflict(
            f"a canary of {service} runs (release {found.number}, {found.share} of the "
            f"requests, since {found.at}): another deploy would change it under its feet.",
            hint=f"Finish it first: `docker-swap promote {service}` rolls it out, "
            f"`docker-swap abort {service}` removes it.")
    if found is None and wanted == REQUIRE_CANARY:
        raise CanaryConflict(
            f"no canary of {service} runs.",
            hint=f"Start one with `docker-swap deploy {service} --canary 10%` (or `up "
            "--canary`); `docker-swap history` shows how the last one ended.")
    return found


def prepare_unproxied(engine: Engine, project: Project, options: DeployOptions) -> Plan:
    """The plan of a service no proxy sends to (`up` replacing a worker): its running
    containers, its lock, no unfinished deploy."""
    with nothing_changed_yet():
        old = running_containers(engine, project, project.services[options.service])
        journal = Journal(engine, project.name, options.service, image=old[0].image_id)
        journal.lock()
        try:
            refuse_unfinished(journal, options.service)
        except BaseException:
            journal.unlock()
            raise
    addressed = sorted(name for name, address in old[0].networks.items() if address)
    port = options.port or (old[0].exposed_ports[0] if len(old[0].exposed_ports) == 1 else None)
    return Plan(project, options, old, port, addressed[0] if addressed else "", None, journal,
                list(journal.notes))


def _checked_proxy(
    engine: Engine, project: Project, options: DeployOptions
) -> tuple[ProxyDriver, list[Container], list[str]]:
    proxy, proxies = open_service_proxy(engine, project, options)
    return proxy, proxies, proxy.check()


def load(
    compose: Compose, service: str, flags: Mapping[str, object | None]
) -> tuple[Project, DeployOptions]:
    """The project as compose resolves it, and the service's settings (x-swap, then flags)."""
    project = compose.load_project()
    definition = _service(project, service)
    return project, resolve_settings(service, definition.x_swap, flags)


def proxy_containers(engine: Engine, project: Project, options: DeployOptions) -> list[Container]:
    """Every container of the service's proxy, running or not."""
    if options.proxy is None:
        raise ProxyNotReady(
            f"no proxy is configured for service {options.service!r}.",
            hint=f"Add `x-swap: {{proxy: nginx:SERVICE}}` to {options.service} in the compose "
            "file, or pass --proxy nginx:SERVICE.",
        )
    if options.proxy.service not in project.services:
        raise ProxyNotReady(
            f"the proxy service {options.proxy.service!r} is not in project {project.name!r}.",
            hint="Set x-swap.proxy (or --proxy) to DRIVER:SERVICE, e.g. nginx:proxy.",
        )
    return engine.service_containers(project.name, options.proxy.service)


def connect_proxy(
    engine: Engine, project: Project, options: DeployOptions, sample: Container
) -> tuple[ProxyDriver, str]:
    """The service's proxy driver, and the network the proxy reaches `sample` on."""
    proxy, proxies = open_service_proxy(engine, project, options)
    return proxy, proxy_network(proxies, sample)


def open_service_proxy(
    engine: Engine, project: Project, options: DeployOptions
) -> tuple[ProxyDriver, list[Container]]:
    """The service's proxy driver, and the proxy's running containers (none for the registry,
    whose agents run beside their own proxies)."""
    if options.proxy is not None and options.proxy.driver == "redis":
        return _registry_driver(project, options), []
    containers = [c for c in proxy_containers(engine, project, options) if c.running]
    assert options.proxy is not None
    if not containers:
        raise ProxyNotReady(
            f"the proxy service {options.proxy.service!r} has no running container.",
            hint=f"Start it with `docker compose up -d {options.proxy.service}`.",
        )
    driver = open_proxy(
        options.proxy, engine, containers, options.upstream_name, options.switch_timeout
    )
    return driver, containers


def proxy_network(proxies: Sequence[Container], sample: Container) -> str:
    """The network on which the proxy reaches the service's containers."""
    if proxies:
        return shared_network(proxies, sample)
    addressed = sorted(name for name, address in sample.networks.items() if address)
    if not addressed:
        raise NotSwappable(
            f"{sample.name} has no address on any network, so no proxy can reach it.",
            hint=f"Give service {sample.service} a compose network (and no network_mode).",
        )
    return addressed[0]


def _registry_driver(project: Project, options: DeployOptions) -> ProxyDriver:
    from docker_swap.registry.store import connect_registry  # noqa: PLC0415  (redis loads only for this driver)

    registry = connect_registry(options, project.name)
    return RegistryDriver(registry, options.service, options.switch_timeout)


def shared_network(proxies: Sequence[Container], sample: Container) -> str:
    """The network on which the proxy reaches the service's containers."""
    shared = set(sample.networks).intersection(*(set(c.networks) for c in proxies))
    if not shared:
        raise ProxyNotReady(
            f"the proxy ({proxies[0].service}) and {sample.name} share no network.",
            hint="Put both services on the same compose network.",
        )
    return sorted(shared)[0]


def refuse_unfinished(journal: Journal, service: str) -> None:
    entry = journal.read()
    if entry is not None:
        raise UnfinishedDeploy(
            f"a deploy of {service} started at {entry.started_at} was interrupted "
            f"(phase {entry.phase}).",
            hint=f"Run `docker-swap recover {service}` to finish or undo it.",
        )


def _service(project: Project, service: str) -> ServiceDefinition:
    if service not in project.services:
        known = ", ".join(sorted(project.services)) or "none"
        raise ServiceNotFound(
            f"project {project.name!r} has no service {service!r} (services: {known})."
        )
    return project.services[service]


def running_containers(
    engine: Engine, project: Project, definition: ServiceDefinition
) -> list[Container]:
    containers = engine.service_containers(project.name, definition.name)
    running = [c for c in containers if c.running]
    stopped = [c for c in containers if not c.running]
    if not running:
        raise ServiceNotFound(
            f"service {definition.name!r} has no running container to replace.",
            hint=f"Start it first: `docker compose up -d {definition.name}`.",
        )
    if stopped:
        names = ", ".join(c.name for c in stopped)
        raise NotSwappable(
            f"service {definition.name!r} has stopped containers ({names}) that compose would "
            "restart instead of starting the new version.",
            hint=f"Remove them first: `docker rm {' '.join(c.name for c in stopped)}`.",
        )
    return running


def refuse_unswappable(definition: ServiceDefinition, old: Sequence[Container]) -> None:
    files = old[0].config_files
    name = definition.name
    if definition.container_name:
        raise NotSwappable(
            f"service {name!r} sets container_name{_at(files, name, 'container_name')}, so a "
            "second container cannot start beside the first; remove that line.",
        )
    if definition.published_ports:
        port = definition.published_ports[0]
        raise NotSwappable(
            f"service {name!r} publishes host port {port.published}{_at(files, name, 'ports')}, "
            "which two containers cannot bind at once; publish the port on the proxy instead "
            f"and use `expose: [\"{port.target}\"]` here.",
        )
    mode = definition.network_mode or ""
    if mode in ("host", "none") or mode.startswith(("container:", "service:")):
        raise NotSwappable(
            f"service {name!r} uses network_mode {mode}{_at(files, name, 'network_mode')}, so "
            f"the proxy cannot {'reach' if mode == 'none' else 'address two of'} its "
            "containers; give it a compose network.",
        )


def _at(files: Sequence[str], service: str, key: str) -> str:
    where = locate(files, service, key)
    return f" ({where[0]} line {where[1]})" if where else ""


def choose_port(options: DeployOptions, container: Container) -> int:
    if options.port:
        return options.port
    if len(container.exposed_ports) == 1:
        return container.exposed_ports[0]
    found = ", ".join(map(str, container.exposed_ports)) or "none"
    raise InvalidSettings(
        f"cannot tell which port of {options.service} the proxy should use (exposed: {found}).",
        hint=f"Set x-swap.port on {options.service}, or pass --port.",
    )
