"""`status`, `history` and `recover` on a Swarm stack.

`status` reads what each agent's proxy serves (the generation it acknowledged) and compares it
with the tasks Swarm runs; `recover` converges: every bridge a killed deploy left is retired
after the proxies are confirmed on the tasks its service runs (the old ones or the new ones:
whatever Swarm runs, ready, now), and the stack's journal is cleared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from docker_swap.engine.swarm import SwarmService, bridge_name
from docker_swap.errors import NeedsAttention, ServiceNotFound, SwapError, UnfinishedDeploy
from docker_swap.releases.store import read_releases
from docker_swap.rollout.recover import RecoveryReport
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Journal
from docker_swap.targets.compose.preflight import nothing_changed_yet
from docker_swap.targets.compose.status import History
from docker_swap.targets.swarm.stack import (
    STACK_JOURNAL,
    StackTarget,
    require_service,
    stack_journal,
)
from docker_swap.targets.swarm.tasks import network_of, serving_tasks, stack_backends, wait_ready


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


def stack_recover(target: StackTarget, service: str) -> RecoveryReport:
    """Point every proxy at what each bridged service runs, ready, and remove the bridges.
    Nothing is cleared while a bridge is left (exit 3 says which)."""
    require_service(target, service)
    journal = stack_journal(target)
    with nothing_changed_yet():
        journal.lock()
    try:
        with nothing_changed_yet():
            bridges = target.swarm.bridges({f"{target.name}_{n}" for n in target.services})
            entry = journal.read()
        if not bridges and entry is None:
            return RecoveryReport(service, "nothing", "no rollout of the stack is unfinished")
        with Interrupts(lambda _text: None) as interrupts:
            interrupts.defer("recovering first")
            done = [_retire_bridge(target, bridge) for bridge in bridges]
            journal.clear()
        return RecoveryReport(service, "finished", "; ".join(done) or "journal cleared")
    finally:
        journal.unlock()


def _retire_bridge(target: StackTarget, bridge: SwarmService) -> str:
    name = bridge.bridge_for.removeprefix(f"{target.name}_")
    options = target.settings.get(name)
    left = (f"{bridge.name} still serves {bridge.bridge_for}'s old version; the journal is "
            "kept")
    if options is None or options.port is None:
        raise NeedsAttention(f"{left}: {name} has no x-swap proxy and port in this file.",
                             hint=f"Give {name} its x-swap settings again, then run "
                             f"`docker-swap -p {target.name} recover {name}`.")
    try:
        running, ready = wait_ready(target.swarm, bridge.bridge_for, options.timeout * 4)
        driver = target.driver(options)
        driver.check()
        driver.switch(stack_backends(running, ready, target.name, options.port))
        driver.drain(options.drain_timeout)
        target.swarm.remove(bridge.name)
    except SwapError as exc:
        raise NeedsAttention(f"{left}: {exc.message}", hint=f"Once that is fixed, run "
                             f"`docker-swap -p {target.name} recover {name}` again.") from exc
    return f"{bridge.bridge_for} serves its {len(ready)} task(s), {bridge.name} removed"


def stack_sync(target: StackTarget, service: str) -> RecoveryReport:
    """Point every proxy at the tasks the service runs now (after a node was lost between
    deploys, say: Swarm started its tasks elsewhere, with new addresses)."""
    require_service(target, service)
    options = target.settings[service]
    running = target.running.get(service)
    if running is None or options.port is None:
        raise ServiceNotFound(f"stack {target.name} runs no {service} with a known port.",
                              hint=f"Set `x-swap: {{port: PORT}}` on {service}.")
    journal = stack_journal(target)
    with nothing_changed_yet():
        journal.lock()  # no rollout may move the proxies meanwhile
    try:
        with nothing_changed_yet():
            if journal.read() is not None or target.swarm.service(
                    bridge_name(running.name)) is not None:
                raise UnfinishedDeploy(
                    f"a rollout of stack {target.name} was interrupted.",
                    hint=f"Run `docker-swap -p {target.name} recover {service}`.")
            tasks = serving_tasks(target.swarm.tasks(running), target.swarm.nodes())
            if not tasks:
                raise ServiceNotFound(f"{running.name} runs no ready task to send to.")
            driver = target.driver(options)
            driver.check()
        try:
            detail = driver.switch(stack_backends(running, tasks, target.name, options.port))
            driver.drain(options.drain_timeout)
        except SwapError as exc:
            raise NeedsAttention(f"the proxies of {service} may not all send to its tasks: "
                                 f"{exc.message}", hint="Run `docker-swap -p "
                                 f"{target.name} sync {service}` again once that is fixed.",
                                 ) from exc
        return RecoveryReport(service, "synced", detail)
    finally:
        journal.unlock()
