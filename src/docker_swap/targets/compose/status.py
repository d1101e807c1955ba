"""`docker-swap status` and `history`: what runs and what ran, as the engine and the proxy say.

status, per service (default: every service with x-swap)
    the release that runs (the records on the engine, releases.py), its containers with their
    state and Docker health, what the proxy sends to, read from the proxy itself (nginx's
    upstream file, HAProxy's `show servers state`, each registry agent's acknowledged
    generation), and a problem line for each disagreement: the proxy sends to something that
    is not a running container of the service, a running container gets nothing, or a deploy
    was interrupted (the journal in this user's state folder). Nothing is changed; no lock.
history
    the service's release records, newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from docker_swap.compose import Compose, image_name
from docker_swap.errors import ServiceNotFound, SwapError
from docker_swap.models import Container, Project
from docker_swap.options import ComposeOptions, DeployOptions
from docker_swap.proxy import ProxyDriver, Serving
from docker_swap.releases.record import Release
from docker_swap.releases.store import active_canary, current, read_releases
from docker_swap.safety.journal import Entry, Journal
from docker_swap.settings import resolve_settings
from docker_swap.targets.compose.canary_status import CanaryStatus, Weighed, canary_status
from docker_swap.targets.compose.preflight import (
    connect_engine,
    nothing_changed_yet,
    open_service_proxy,
    proxy_network,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine


@dataclass(frozen=True)
class Served:
    """One proxy's view: what it sends to, and which containers of the service those are."""

    source: str
    backends: tuple[str, ...]
    containers: tuple[str, ...]
    """Names of the service's running containers it sends to."""
    strays: tuple[str, ...] = ()
    """What it sends to that is no running container of the service."""
    weights: tuple[int, ...] = ()
    """The weight of each of `containers`, as the proxy reports it (empty: all alike)."""


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    release: Release | None
    containers: tuple[Container, ...]
    proxy: str
    serving: tuple[Served, ...]
    problems: tuple[str, ...] = ()
    """Each disagreement, or an interrupted deploy, in one sentence (status exits 3)."""
    interrupted: Entry | None = None
    notes: tuple[str, ...] = ()
    compose_would_recreate: tuple[str, ...] = ()
    """Running containers `docker compose up -d` would recreate: their config hash or image
    differs from the service's now (a deploy is due)."""
    canary: CanaryStatus | None = None
    """The canary that runs, if one does."""


@dataclass(frozen=True)
class StatusReport:
    project: str
    services: tuple[ServiceStatus, ...]

    @property
    def agrees(self) -> bool:
        return not any(s.problems for s in self.services)


@dataclass(frozen=True)
class History:
    project: str
    service: str
    releases: tuple[Release, ...]
    current: int | None
    notes: tuple[str, ...] = field(default=())


def status(services: Sequence[str] = (), *,
           compose_options: ComposeOptions | None = None) -> StatusReport:
    """The status of `services` (default: every service with x-swap)."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project = _open(compose)
    names = list(services) or sorted(n for n, s in project.services.items() if s.x_swap)
    for name in names:
        _known(project, name)
    with nothing_changed_yet():
        hashes = compose.config_hashes(names) if names else {}
    return StatusReport(project.name, tuple(
        service_status(engine, project, n, hashes.get(n)) for n in names))


def history(service: str, *, compose_options: ComposeOptions | None = None) -> History:
    """The releases of `service`, newest first."""
    engine, project = _open(Compose(compose_options or ComposeOptions()))
    _known(project, service)
    with nothing_changed_yet():
        releases, notes = read_releases(engine, project.name, service)
        running = [c for c in engine.service_containers(project.name, service) if c.running]
    now = current(releases, running)
    return History(project.name, service, tuple(releases), now.number if now else None,
                   tuple(notes))


def service_status(
    engine: Engine, project: Project, service: str, config_hash: str | None = None,
) -> ServiceStatus:
    """`config_hash`: compose's for the service now (`docker compose config --hash`)."""
    with nothing_changed_yet():
        releases, notes = read_releases(engine, project.name, service)
        containers = engine.service_containers(project.name, service)
        interrupted = Journal(engine, project.name, service).read()
        image = engine.image(image_name(project, service))
    running = [c for c in containers if c.running]
    canary = active_canary(releases, running)
    # A canary runs the current definition beside the old one: only the old ones are due.
    outdated = [] if canary else would_recreate(running, config_hash,
                                                image.id if image else None)
    problems = [f"{c.name} is {c.health}." for c in running if c.health == "unhealthy"]
    proxy, served, reader = _served(engine, project, service, running, problems)
    if interrupted is not None:
        problems.append(f"a deploy started at {interrupted.started_at} was interrupted "
                        f"(phase {interrupted.phase}): run `docker-swap recover {service}`.")
    shown = None if canary is None or reader is None else canary_status(
        canary, running, [Weighed(v.containers, v.weights) for v in served], *reader)
    return ServiceStatus(service, current(releases, running), tuple(containers), proxy,
                         tuple(served), tuple(problems), interrupted, tuple(notes),
                         tuple(c.name for c in outdated), shown)


def would_recreate(
    running: Sequence[Container], config_hash: str | None, image_id: str | None,
) -> list[Container]:
    """The containers `docker compose up` would recreate: compose compares each one's config
    hash with the service's, and the image it was made from with the service's image now."""
    return [c for c in running if (config_hash and c.config_hash != config_hash)
            or (image_id and c.image_id != image_id)]


def _served(
    engine: Engine, project: Project, service: str, running: Sequence[Container],
    problems: list[str],
) -> tuple[str, list[Served], tuple[ProxyDriver, DeployOptions, str] | None]:
    """The proxy's description, what each of its proxies sends to, and the driver that read
    it (with the settings and network); disagreements are added to `problems`."""
    try:
        options = resolve_settings(service, project.services[service].x_swap, {})
    except SwapError as error:
        problems.append(f"its x-swap settings cannot be used: {error.message}")
        return "unknown", [], None
    if not running:
        problems.append(f"no container of {service} runs.")
    try:
        driver, proxies = open_service_proxy(engine, project, options)
        found = driver.serving()
        network = proxy_network(proxies, running[0]) if running else ""
    except SwapError as error:
        problems.append(f"the proxy could not be read: {error.message}")
        return "unknown", [], None
    served = [_match(view, running, network) for view in found]
    problems += disagreements(service, served, running)
    return driver.description, served, (driver, options, network)


def _match(view: Serving, running: Sequence[Container], network: str) -> Served:
    names, strays, weights = [], [], []
    for index, backend in enumerate(view.backends):
        container = container_at(backend, running, network)
        if container is None:
            strays.append(backend)
        else:
            names.append(container.name)
            weights.append(view.weights[index] if index < len(view.weights) else 1)
    shown = tuple(weights) if len(set(weights)) > 1 else ()
    return Served(view.source, view.backends, tuple(names), tuple(strays), shown)


def container_at(backend: str, running: Sequence[Container], network: str) -> Container | None:
    """The running container a proxy's HOST:PORT names (by container name or address)."""
    host = backend.rpartition(":")[0] or backend
    for container in running:
        addresses = [container.networks.get(network)] if network else list(
            container.networks.values())
        if host == container.name or host in addresses:
            return container
    return None


def disagreements(
    service: str, served: Sequence[Served], running: Sequence[Container]
) -> list[str]:
    """One sentence for each way a proxy and the running containers disagree."""
    problems = []
    names = {c.name for c in running}
    for view in served:
        if not view.backends:
            problems.append(f"{view.source} sends {service} traffic to nothing.")
        if view.strays:
            problems.append(f"{view.source} sends to {', '.join(view.strays)}, which "
                            f"{'is' if len(view.strays) == 1 else 'are'} no running container "
                            f"of {service}: run `docker-swap sync {service}`.")
        idle = sorted(names - set(view.containers))
        if idle and view.backends:
            problems.append(f"{', '.join(idle)} run(s) but {view.source} does not send to "
                            f"{'it' if len(idle) == 1 else 'them'}.")
    return problems


def _open(compose: Compose) -> tuple[Engine, Project]:
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        project = compose.load_project()
    return engine, project


def _known(project: Project, service: str) -> None:
    if service not in project.services:
        known = ", ".join(sorted(project.services)) or "none"
        raise ServiceNotFound(
            f"project {project.name!r} has no service {service!r} (services: {known}).")
