"""`recover` and `sync` on a Swarm stack.

`recover` converges what a killed rollout left: for each bridge, the proxies are confirmed on
what the service should serve, then the bridge is removed. From a batch that was being undone
(the journal of the service says `undoing`: a failed watch window, a failed hook), that is the
old version: the proxies go to the bridge, Swarm rolls the service back (waited for), the
proxies go to its old tasks. Otherwise it is whatever the service runs, ready, now (the update
went through). The release's ending is recorded, and the journals are cleared.

`sync` points every proxy at the tasks the service runs now (after a node was lost between
deploys, say: Swarm started its tasks elsewhere, with new addresses).
"""

from __future__ import annotations

from docker_swap.engine.swarm import SwarmService, Task, bridge_name
from docker_swap.errors import (
    NeedsAttention,
    ServiceNotFound,
    StepFailed,
    SwapError,
    UnfinishedDeploy,
)
from docker_swap.releases.record import UP
from docker_swap.releases.stacks import record_stack_release
from docker_swap.rollout.recover import RecoveryReport
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import UNDOING, Entry, Journal
from docker_swap.targets.compose.preflight import nothing_changed_yet
from docker_swap.targets.swarm.stack import StackTarget, require_service, stack_journal
from docker_swap.targets.swarm.tasks import network_of, serving_tasks, wait_ready
from docker_swap.targets.swarm.units import StackUnits


def stack_recover(target: StackTarget, service: str) -> RecoveryReport:
    """Point every proxy at what each bridged service should serve, remove the bridges,
    record how each interrupted release ended. Nothing is cleared while a bridge is left
    (exit 3 says which)."""
    require_service(target, service)
    journal = stack_journal(target)
    with nothing_changed_yet():
        journal.lock()
    try:
        with nothing_changed_yet():
            bridges = target.swarm.bridges({f"{target.name}_{n}" for n in target.services})
            entry = journal.read()
            journals = {n: Journal(target.engine, target.name, n) for n in target.settings}
            entries = {n: j.read() for n, j in journals.items()}
        if not bridges and entry is None and not any(entries.values()):
            return RecoveryReport(service, "nothing", "no rollout of the stack is unfinished")
        notes: list[str] = []
        with Interrupts(notes.append) as interrupts:
            interrupts.defer("recovering first")
            done = [_retire_bridge(target, bridge, entries, notes) for bridge in bridges]
            for name, found in journals.items():
                if entries[name] is not None:
                    found.clear()
            journal.clear()
        return RecoveryReport(service, "finished", "; ".join(done) or "journals cleared",
                              tuple(notes))
    finally:
        journal.unlock()


def _retire_bridge(target: StackTarget, bridge: SwarmService,
                   entries: dict[str, Entry | None], notes: list[str]) -> str:
    name = bridge.bridge_for.removeprefix(f"{target.name}_")
    options = target.settings.get(name)
    left = (f"{bridge.name} still serves {bridge.bridge_for}'s old version; the journal is "
            "kept")
    if options is None or options.port is None:
        raise NeedsAttention(f"{left}: {name} has no x-swap proxy and port in this file.",
                             hint=f"Give {name} its x-swap settings again, then run "
                             f"`docker-swap -p {target.name} recover {name}`.")
    entry = entries.get(name)
    undo = entry is not None and entry.phase == UNDOING
    try:
        board = _board(target, bridge.bridge_for, options.port, notes)
        if undo:
            _, old = wait_ready(target.swarm, bridge.name, options.timeout * 4)
            board.switch(old)
            current = target.swarm.service(bridge.bridge_for)
            if current is not None and current.template_hash != bridge.template_hash:
                target.stack.rollback(bridge.bridge_for)
        running, ready = wait_ready(target.swarm, bridge.bridge_for, options.timeout * 4)
        board.point(ready, options.drain_timeout)
        target.swarm.remove(bridge.name)
    except SwapError as exc:
        raise NeedsAttention(f"{left}: {exc.message}", hint=f"Once that is fixed, run "
                             f"`docker-swap -p {target.name} recover {name}` again.") from exc
    _record(target, name, entry, undo, bridge, running, ready, notes)
    return (f"{bridge.bridge_for} {'rolled back and ' if undo else ''}serves its {len(ready)} "
            f"task(s), {bridge.name} removed")


def _record(target: StackTarget, name: str, entry: Entry | None, undone: bool,
            bridge: SwarmService, running: SwarmService, ready: list[Task],
            notes: list[str]) -> None:
    where = f"interrupted at phase {entry.phase}" if entry else "interrupted"
    error = StepFailed(f"{where}; recover undid it.") if undone else None
    try:
        record_stack_release(
            target.engine, target.name, name, error=error, served=not undone, before=bridge,
            after=running, tasks=ready, phases=(),
            config_hash=target.compose.config_hashes().get(name, "") if not undone else "",
            kind=entry.kind if entry else UP, rollback_to=entry.rollback_to if entry else None)
    except SwapError as exc:
        notes.append(f"the release of {name} could not be recorded ({exc.message}).")


def _board(target: StackTarget, swarm_name: str, port: int, notes: list[str]) -> Switchboard:
    name = swarm_name.removeprefix(f"{target.name}_")
    service = target.swarm.service(swarm_name)
    if service is None:
        raise ServiceNotFound(f"stack {target.name} does not run {name}.")
    tasks = serving_tasks(target.swarm.tasks(service), target.swarm.nodes())
    bridge = target.swarm.service(bridge_name(swarm_name))
    if not tasks and bridge is not None:
        tasks = serving_tasks(target.swarm.tasks(bridge), target.swarm.nodes())
    network = network_of(service, tasks, target.name) if tasks else f"{target.name}_default"
    driver = target.driver(target.settings[name])
    notes.extend(driver.check())
    return Switchboard(driver, StackUnits(target.swarm, swarm_name, network, port),
                       notes.append)


def stack_sync(target: StackTarget, service: str) -> RecoveryReport:
    """Point every proxy at the tasks the service runs now."""
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
        notes: list[str] = []
        with nothing_changed_yet():
            if journal.read() is not None or target.swarm.service(
                    bridge_name(running.name)) is not None:
                raise UnfinishedDeploy(
                    f"a rollout of stack {target.name} was interrupted.",
                    hint=f"Run `docker-swap -p {target.name} recover {service}`.")
            tasks = serving_tasks(target.swarm.tasks(running), target.swarm.nodes())
            if not tasks:
                raise ServiceNotFound(f"{running.name} runs no ready task to send to.")
            board = _board(target, running.name, options.port, notes)
        try:
            detail = board.point(tasks, options.drain_timeout)
        except SwapError as exc:
            raise NeedsAttention(f"the proxies of {service} may not all send to its tasks: "
                                 f"{exc.message}", hint="Run `docker-swap -p "
                                 f"{target.name} sync {service}` again once that is fixed.",
                                 ) from exc
        return RecoveryReport(service, "synced", detail, tuple(notes))
    finally:
        journal.unlock()
