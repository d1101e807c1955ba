"""`status` and `history` on a Swarm stack.

`status` reads what each agent's proxy serves (the generation it acknowledged) and compares it
with the tasks Swarm runs; `history` lists a service's releases. (`recover` and `sync`, which
change what the proxies serve, are in rollout/stack_recover.py.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from docker_swap.engine.swarm import bridge_name
from docker_swap.releases.store import read_releases
from docker_swap.safety.journal import Journal
from docker_swap.targets.compose.preflight import nothing_changed_yet
from docker_swap.targets.compose.status import History
from docker_swap.targets.swarm.stack import (
    STACK_JOURNAL,
    StackTarget,
    require_service,
)
from docker_swap.targets.swarm.tasks import network_of, serving_tasks


@dataclass
class StackServiceStatus:
    service: str
    swarm_service: str
    replicas: int
    ready: int
    image: str
    release: int | None
    bridge: str | None
    tasks: list[str] = field(default_factory=list)
    """ADDRESS:PORT of each ready task."""
    proxies: list[dict[str, object]] = field(default_factory=list)
    """{source, backends} for each agent."""
    problems: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.problems


@dataclass
class StackStatus:
    project: str
    services: list[StackServiceStatus]
    interrupted: str | None = None

    @property
    def agrees(self) -> bool:
        return self.interrupted is None and all(s.agrees for s in self.services)


def stack_status(target: StackTarget, services: Sequence[str] = ()) -> StackStatus:
    for service in services:
        require_service(target, service)
    with nothing_changed_yet():
        entry = Journal(target.engine, target.name, STACK_JOURNAL).read()
        found = [_service_status(target, name) for name in services or sorted(target.settings)]
    interrupted = (f"a rollout started at {entry.started_at} was interrupted (phase "
                   f"{entry.phase}): run `docker-swap recover --swarm SERVICE`"
                   if entry else None)
    return StackStatus(target.name, found, interrupted)


def _service_status(target: StackTarget, name: str) -> StackServiceStatus:
    options = target.settings[name]
    service = target.running.get(name)
    swarm_name = f"{target.name}_{name}"
    if service is None:
        return StackServiceStatus(name, swarm_name, 0, 0, "", None, None,
                                  problems=[f"stack {target.name} does not run {name}."])
    tasks = serving_tasks(target.swarm.tasks(service), target.swarm.nodes())
    bridge = target.swarm.service(bridge_name(swarm_name))
    releases, _ = read_releases(target.engine, target.name, name)
    current = next((r.number for r in releases if r.deployed
                    and r.image_id == service.template_hash), None)
    port = options.port or 0
    network = network_of(service, tasks, target.name) if tasks else ""
    addresses = sorted(f"{t.addresses[network]}:{port}" for t in tasks
                       if network in t.addresses)
    status = StackServiceStatus(name, swarm_name, service.replicas or 0, len(tasks),
                                service.image, current, bridge.name if bridge else None,
                                addresses)
    if len(tasks) < (service.replicas or 0):
        status.problems.append(f"{len(tasks)} of {service.replicas} task(s) ready.")
    if bridge is not None:
        status.problems.append(f"bridge {bridge.name} is left from an interrupted deploy.")
    for serving in target.driver(options).serving():
        status.proxies.append({"source": serving.source, "backends": list(serving.backends)})
        if sorted(serving.backends) != addresses:
            status.problems.append(f"{serving.source} does not send to the tasks that run.")
    return status


def status_lines(report: StackStatus) -> list[str]:
    lines = []
    for s in report.services:
        release = f"release {s.release}" if s.release else "no release of docker-swap"
        lines.append(f"{s.service}: {s.ready}/{s.replicas} task(s) ready of {s.swarm_service}"
                     f" ({s.image}), {release}")
        lines += [f"  {p['source']}: {', '.join(p['backends']) or 'nothing'}"  # type: ignore[arg-type]
                  for p in s.proxies]
        lines += [f"  problem: {problem}" for problem in s.problems]
    if report.interrupted:
        lines.append(f"interrupted: {report.interrupted}")
    return lines or [f"{report.project}: no service has x-swap"]


def status_json(report: StackStatus) -> str:
    return json.dumps({"project": report.project, "mode": "swarm", "agrees": report.agrees,
                       "interrupted": report.interrupted,
                       "services": [asdict(s) | {"agrees": s.agrees} for s in report.services]})


def stack_history(target: StackTarget, service: str) -> History:
    require_service(target, service)
    with nothing_changed_yet():
        releases, notes = read_releases(target.engine, target.name, service)
    running = target.running.get(service)
    now = next((r for r in releases if running is not None and r.deployed
                and r.image_id == running.template_hash), None)
    return History(target.name, service, tuple(releases), now.number if now else None,
                   tuple(notes))
