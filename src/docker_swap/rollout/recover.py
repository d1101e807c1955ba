"""Bringing a proxy and a service back in line: `recover` an interrupted deploy, `sync` a proxy.

`recover` reads the journal an interrupted batch left (a deploy, a batch of `up`, with or
without a proxy): before the switch, and from `undoing` on (a failed watch window, an undo cut
short), it undoes the batch (proxy back to the old containers, confirmed, new ones removed);
after the switch it finishes it (old ones retired). Either way it records the release's
ending, so that `history` shows how an interrupted deploy ended.
`sync` points the proxy at the containers that run now; it is how an existing nginx is adopted,
and how a proxy is repaired after containers were changed by hand. A proxy container that does
not run (nginx cannot start while its configuration names an upstream that does not exist yet)
is given the upstream and started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import NeedsAttention, Refused, StepFailed, SwapError, message_of
from docker_swap.models import Container, Project, names
from docker_swap.options import ComposeOptions, DeployOptions
from docker_swap.proxy import seed_proxy
from docker_swap.releases.record import ABORT, PROMOTE, ROLLED_BACK, UP
from docker_swap.releases.store import active_canary, read_releases, record_release
from docker_swap.rollout.canary import canary_split
from docker_swap.rollout.pointing import switchboard_for
from docker_swap.rollout.weights import Split
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import SWITCHED, SWITCHING, Entry, Journal
from docker_swap.targets.compose.batch import backends
from docker_swap.targets.compose.preflight import (
    choose_port,
    nothing_changed_yet,
    open_service,
    proxy_containers,
    refuse_unfinished,
    running_containers,
    shared_network,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine


@dataclass(frozen=True)
class RecoveryReport:
    service: str
    action: str
    """One of: nothing, undone, finished, synced."""
    detail: str
    notes: tuple[str, ...] = ()


def recover(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
) -> RecoveryReport:
    """Finish or undo the interrupted deploy of `service`, as its journal says."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    with nothing_changed_yet():
        journal = Journal(engine, project.name, service)
        journal.lock()
    try:
        entry = journal.read()
        if entry is None:
            return RecoveryReport(service, "nothing", f"no interrupted deploy of {service}")
        changes = _Changes(notes=list(journal.notes))
        with _finishing(changes, "recover"):
            report, kept, removed = _resume(engine, project, options, entry, changes)
            journal.clear()
            _record(engine, project, options, entry, report, kept, removed, changes)
        return replace(report, notes=tuple(changes.notes))
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
    with nothing_changed_yet():
        journal = Journal(engine, project.name, service)
        journal.lock()
    try:
        refuse_unfinished(journal, service)
        with nothing_changed_yet():
            running = running_containers(engine, project, project.services[service])
        changes = _Changes(notes=list(journal.notes))
        with _finishing(changes, "sync"):
            _start_stopped_proxies(engine, project, options, running, changes)
            detail = _switch(engine, project, options, running, changes,
                             _canary_weights(engine, project, service, running))
        return RecoveryReport(service, "synced", detail, tuple(changes.notes))
    finally:
        journal.unlock()


@dataclass
class _Changes:
    """What recover or sync changed so far, and what it has to tell."""

    made: bool = False
    notes: list[str] = field(default_factory=list)


@contextmanager
def _finishing(changes: _Changes, command: str) -> Iterator[None]:
    """Ctrl-C and SIGTERM are noted, not obeyed: what was started finishes (each step is
    bounded), so that the proxy is never left half switched. A failure once something
    changed needs attention; before that, it is a refusal (nothing changed)."""
    interrupts = Interrupts(changes.notes.append)
    with interrupts:
        interrupts.defer(f"{command} finishes what it started first")
        try:
            with nothing_changed_yet():  # until something changed, a failure refuses
                yield
        except Exception as exc:
            if isinstance(exc, NeedsAttention) or (isinstance(exc, Refused) and not changes.made):
                raise
            raise NeedsAttention(
                f"{command} could not finish: {message_of(exc)}",
                hint=f"The proxy may have changed; fix the cause and run `docker-swap "
                f"{command}` again.",
            ) from exc


def _resume(
    engine: Engine, project: Project, options: DeployOptions, entry: Entry, changes: _Changes
) -> tuple[RecoveryReport, list[Container], list[Container]]:
    """Leave the proxy, confirmed, on one set of containers, then remove the other set; return
    what it did, the containers kept and those removed.

    After the switch, the new containers are kept if they run (finish the deploy); before it,
    and once an undo began (`undoing`), the old ones (undo it). A deploy cut short while
    switching had proven its new containers ready: they are kept only when no old one runs
    any more. The batch before's old containers that still wait to retire (`leaving`: out of
    the proxy, drained) retire either way."""
    containers = engine.service_containers(project.name, options.service)
    staying = [c for c in containers if c.id in entry.staying]
    old = [c for c in containers if c.id in entry.old]
    leaving = [c for c in containers if c.id in entry.leaving]
    new = [c for c in containers if c.id not in [*entry.old, *entry.staying, *entry.leaving]]
    old_running = [c for c in old if c.running]
    new_running = [c for c in new if c.running]
    staying_running = [c for c in staying if c.running]  # an earlier batch's, or old ones kept
    keep_new = entry.phase == SWITCHED or (entry.phase == SWITCHING and not old_running)
    if keep_new and (new_running or (not entry.new and staying_running)):  # (a scale down)
        _switch(engine, project, options, [*staying_running, *new_running], changes,
                Split.from_data(entry.forward))
        _retire(engine, [*leaving, *old, *(c for c in new if not c.running)])
        finished = RecoveryReport(options.service, "finished",
                                  f"retired {names([*leaving, *old]) or 'nothing'}")
        return finished, new_running, [*leaving, *old]
    if old_running or staying_running:
        _switch(engine, project, options, [*old_running, *staying_running], changes,
                Split.from_data(entry.back))
        _retire(engine, [*leaving, *new, *(c for c in old if not c.running)])
        retired = f"; retired {names(leaving)}, left by the batch before" if leaving else ""
        undone = RecoveryReport(options.service, "undone",
                                f"removed {names(new) or 'nothing'}{retired}")
        return undone, old_running, new
    raise NeedsAttention(
        f"the deploy of {options.service} was interrupted (phase {entry.phase}), and none of "
        "the containers it could keep still runs, so it can be neither undone nor finished.",
        hint=f"Start the service (`docker compose up -d {options.service}`), then run "
        f"`docker-swap sync {options.service}`.",
    )


def _switch(
    engine: Engine, project: Project, options: DeployOptions, containers: Sequence[Container],
    changes: _Changes, split: Split | None = None,
) -> str:
    """Send every request to `containers` (weighed as `split` says: a canary), confirmed, and
    drain what went elsewhere (nothing to do for a service no proxy sends to)."""
    if options.proxy is None:
        changes.made = True
        return "no proxy"
    board = switchboard_for(engine, project, options, containers[0], changes.notes.append)
    changes.made = True  # the proxy is checked: from here on it may change
    return board.point(containers, options.drain_timeout, split)


def _record(engine: Engine, project: Project, options: DeployOptions, entry: Entry,
            report: RecoveryReport, kept: list[Container], removed: list[Container],
            changes: _Changes) -> None:
    """The interrupted deploy's release, as recover ended it: deployed (or, for a batch of
    `up` that is not the service's last, needing the next `up`), or rolled back."""
    where = f"interrupted at phase {entry.phase}" + (f" of batch {entry.batch}"
                                                     if entry.batch else "")
    last = not entry.batch or _is_last(entry.batch)
    error: SwapError | None
    share = entry.share if report.action == "finished" else ""
    if entry.kind == ABORT:  # the canary's containers are `old`, the version before `staying`
        return _record_abort(engine, project, options, entry, report, removed, changes)
    if report.action == "undone":
        error, new, replaced = StepFailed(f"{where}; recover undid it."), removed, kept
    elif entry.kind in (UP, PROMOTE) and not last:
        error = NeedsAttention(f"{where}; recover finished that batch, the next `docker-swap "
                               f"{entry.kind}` carries on.")
        new, replaced = kept, removed
    else:
        error, new, replaced = None, kept, removed
    recorded = record_release(engine, project.name, options.service, error, new,
                              replaced=replaced, keep=options.keep, kind=entry.kind,
                              rollback_to=entry.rollback_to, served=report.action == "finished",
                              share=share)
    changes.notes.extend(recorded.notes)


def _canary_weights(engine: Engine, project: Project, service: str,
                    running: Sequence[Container]) -> Split | None:
    """A canary that runs keeps its share through `sync`."""
    release = active_canary(read_releases(engine, project.name, service)[0], running)
    return canary_split(release, running) if release is not None else None


def _record_abort(engine: Engine, project: Project, options: DeployOptions, entry: Entry,
                  report: RecoveryReport, removed: list[Container], changes: _Changes) -> None:
    """An interrupted abort: finished, the canary was rolled back; undone, it still runs
    (recorded as needing attention, so that it still counts as running)."""
    where = f"interrupted at phase {entry.phase}"
    if report.action == "finished":
        error, ended = None, (ROLLED_BACK, f"aborted ({where}; recover finished it)")
    else:
        error, ended = NeedsAttention(f"aborting the canary was {where}; recover undid it: "
                                      "the canary still runs on its share."), None
    canary = removed if report.action == "finished" else []
    recorded = record_release(engine, project.name, options.service, error, canary,
                              keep=options.keep, kind=ABORT, served=False, outcome=ended)
    changes.notes.extend(recorded.notes)


def _is_last(batch: str) -> bool:
    number, _, total = batch.rpartition(" ")[2].partition("/")
    return not total or number == total


def _start_stopped_proxies(
    engine: Engine, project: Project, options: DeployOptions, running: Sequence[Container],
    changes: _Changes,
) -> None:
    if options.proxy is None or options.proxy.driver == "redis":
        return  # agents start their own proxies
    stopped = [c for c in proxy_containers(engine, project, options) if not c.running]
    if not stopped:
        return
    network = shared_network(stopped, running[0])
    port = choose_port(options, running[0])
    changes.made = True
    seed_proxy(options.proxy, engine, stopped, options.upstream_name,
               backends(running, network, port), options.switch_timeout)


def _retire(engine: Engine, containers: Sequence[Container]) -> None:
    for container in containers:
        if container.running:
            engine.stop(container)
        engine.remove(container.id)
