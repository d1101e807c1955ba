"""Bringing a proxy and a service back in line: `recover` an interrupted deploy, `sync` a proxy.

`recover` reads the journal an interrupted deploy left: before the switch it undoes the deploy
(proxy back to the old containers, new ones removed); after it, it finishes (old ones retired).
`sync` points the proxy at the containers that run now; it is how an existing nginx is adopted,
and how a proxy is repaired after containers were changed by hand. A proxy container that does
not run (nginx cannot start while its configuration names an upstream that does not exist yet)
is given the upstream and started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .compose import Compose
from .errors import NeedsAttention
from .journal import SWITCHED, Entry, Journal
from .models import Container, Project
from .options import ComposeOptions, DeployOptions
from .preflight import (
    choose_port,
    connect_proxy,
    open_service,
    proxy_containers,
    refuse_unfinished,
    running_containers,
    shared_network,
)
from .proxy import seed_proxy
from .swap import backends

if TYPE_CHECKING:
    from .engine import Engine


@dataclass(frozen=True)
class RecoveryReport:
    service: str
    action: str
    """One of: nothing, undone, finished, synced."""
    detail: str


def recover(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
) -> RecoveryReport:
    """Finish or undo the interrupted deploy of `service`, as its journal says."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    journal = Journal(engine.engine_id(), project.name, service)
    journal.lock()
    try:
        entry = journal.read()
        if entry is None:
            return RecoveryReport(service, "nothing", f"no interrupted deploy of {service}")
        report = _resume(engine, project, options, entry)
        journal.clear()
        return report
    finally:
        journal.unlock()


def sync(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
) -> RecoveryReport:
    """Point the service's proxy at the containers of `service` that run now."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    journal = Journal(engine.engine_id(), project.name, service)
    journal.lock()
    try:
        refuse_unfinished(journal, service)
        running = running_containers(engine, project, project.services[service])
        _start_stopped_proxies(engine, project, options, running)
        detail = _switch(engine, project, options, running)
        return RecoveryReport(service, "synced", detail)
    finally:
        journal.unlock()


def _resume(
    engine: Engine, project: Project, options: DeployOptions, entry: Entry
) -> RecoveryReport:
    containers = engine.service_containers(project.name, options.service)
    staying = [c for c in containers if c.id in entry.staying]
    old = [c for c in containers if c.id in entry.old]
    new = [c for c in containers if c.id not in [*entry.old, *entry.staying]]
    if entry.phase == SWITCHED:
        if old:
            proxy, _ = connect_proxy(engine, project, options, old[0])
            proxy.check()
            proxy.drain(options.drain_timeout)
        _retire(engine, old)
        return RecoveryReport(options.service, "finished", f"retired {_names(old) or 'nothing'}")
    if not old or not all(c.running for c in old):
        raise NeedsAttention(
            f"the deploy of {options.service} was interrupted before its switch, but its old "
            "containers no longer run, so it cannot be undone.",
            hint=f"Start the service (`docker compose up -d {options.service}`), then run "
            f"`docker-swap sync {options.service}`.",
        )
    if new:  # the proxy may name them (staged, or switching): back to the old ones only
        _switch(engine, project, options, [*old, *staying])
    _retire(engine, new)
    return RecoveryReport(options.service, "undone", f"removed {_names(new) or 'nothing'}")


def _switch(
    engine: Engine, project: Project, options: DeployOptions, containers: Sequence[Container]
) -> str:
    proxy, network = connect_proxy(engine, project, options, containers[0])
    proxy.check()
    detail = proxy.switch(backends(containers, network, choose_port(options, containers[0])))
    proxy.drain(options.drain_timeout)
    return detail


def _start_stopped_proxies(
    engine: Engine, project: Project, options: DeployOptions, running: Sequence[Container]
) -> None:
    if options.proxy is None or options.proxy.driver == "redis":
        return  # agents start their own proxies
    stopped = [c for c in proxy_containers(engine, project, options) if not c.running]
    if not stopped:
        return
    network = shared_network(stopped, running[0])
    port = choose_port(options, running[0])
    seed_proxy(options.proxy, engine, stopped, options.upstream_name,
               backends(running, network, port), options.switch_timeout)


def _retire(engine: Engine, containers: Sequence[Container]) -> None:
    for container in containers:
        if container.running:
            engine.stop(container)
        engine.remove(container.id)


def _names(containers: Sequence[Container]) -> str:
    return ", ".join(c.name for c in containers)
