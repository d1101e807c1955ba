"""`docker-swap deploy SERVICE`: every running container of one service replaced in one batch.

    preflight   the engine, compose, the service, its settings and proxy, the lock (refused:
                exit 2, nothing changed)
    swap        the one-batch sequence (swap.py) on the service's containers
    record      the release (releases/store.py), whatever the ending but a refusal

One handler of Ctrl-C and SIGTERM covers all three: before the switch a signal undoes the
batch, after it the deploy finishes, and the release is recorded before the process acts on a
signal that came meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import SwapError
from docker_swap.models import Container
from docker_swap.observer import Observer, PhaseResult, SilentObserver
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.releases.record import DEPLOY, ROLLBACK
from docker_swap.releases.store import Recorded, record_release
from docker_swap.rollout.swap import Swap, SwapResult
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.rollout.verify import Verifier, VerifyReport
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import STARTING, Entry
from docker_swap.targets.compose.batch import ComposeBatch, Starter
from docker_swap.targets.compose.preflight import (
    Plan,
    connect_proxy,
    nothing_changed_yet,
    open_service,
    prepare,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine


@dataclass(frozen=True)
class DeployReport:
    """What a finished deploy did, phase by phase (and what `--verify` saw, if it ran)."""

    project: str
    service: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    phases: tuple[PhaseResult, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())
    verify: VerifyReport | None = None
    release: int | None = None
    """The number of its release record (None if it could not be recorded)."""


def deploy(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
    observer: Observer | None = None,
    verify: VerifyOptions | None = None,
    rollback_to: int | None = None,
) -> DeployReport:
    """Replace the running containers of `service` with its current definition.

    Every outcome but a refusal is recorded as a release; `rollback_to` marks the deploy as
    `docker-swap rollback` to that release."""
    shown = observer or SilentObserver()
    compose = Compose(compose_options or ComposeOptions())
    with Interrupts(shown.note) as interrupts:
        interrupts.arm("before anything changed")
        engine, project, options = open_service(compose, service, flags or {})
        plan = prepare(engine, project, options)
        try:
            return deploy_prepared(plan, engine, compose, shown, interrupts,
                                   Verifier(verify or VerifyOptions()), rollback_to)
        finally:
            plan.journal.unlock()


def deploy_prepared(plan: Plan, engine: Engine, compose: Compose, observer: Observer,
                    interrupts: Interrupts, verifier: Verifier, rollback_to: int | None,
                    ) -> DeployReport:
    """The deploy of a service whose preflight (and lock) is `plan`: swap, then record."""
    kind = DEPLOY if rollback_to is None else ROLLBACK
    swap = compose_swap(plan, engine, compose, observer, interrupts, old=plan.old, staying=(),
                        size=len(plan.old), kind=kind, rollback_to=rollback_to)
    with nothing_changed_yet():
        verifier.start()
    try:
        result = swap.run()
    except Exception as error:
        verifier.stop()
        interrupts.defer("recording the release first")
        if isinstance(error, SwapError) and verifier.active:
            error.verify = verifier.report()
        _record(plan, engine, swap, error, kind, rollback_to, observer)
        raise
    verifier.stop()
    interrupts.defer("recording the release first")
    report = _report(plan, result, verifier.report() if verifier.active else None)
    recorded = _record(plan, engine, swap, None, kind, rollback_to, observer)
    return replace(report, release=recorded.number, notes=report.notes + recorded.notes)


def compose_swap(plan: Plan, engine: Engine, starter: Starter, observer: Observer,
                 interrupts: Interrupts, *, old: Sequence[Container],
                 staying: Sequence[Container], size: int, kind: str, label: str = "",
                 rollback_to: int | None = None, hooks: bool = True,
                 interruptible: bool = True, notes: Sequence[str] | None = None) -> Swap:
    """One batch of a checked compose service (its preflight `plan`) as the sequence runs it."""
    batch = ComposeBatch(engine, starter, plan.project.name, plan.options, old=old,
                         staying=staying, size=size, network=plan.network, port=plan.port,
                         proxied=plan.proxy is not None)
    entry = Entry(plan.project.name, plan.options.service, STARTING, old=[c.id for c in old],
                  staying=[c.id for c in staying], kind=kind, batch=label,
                  rollback_to=rollback_to)
    switchboard = None if plan.proxy is None else Switchboard(plan.proxy, batch, observer.note)

    def reconnect() -> Switchboard:
        sample = next(iter([*staying, *old]), None) or batch.started()[0]
        driver, _ = connect_proxy(engine, plan.project, plan.options, sample)  # type: ignore[arg-type]
        driver.check()
        return Switchboard(driver, batch, observer.note)

    return Swap(batch, plan.options, switchboard, plan.journal, entry, observer, interrupts,
                hooks=hooks, interruptible=interruptible,
                notes=plan.notes if notes is None else notes, reconnect=reconnect)


def _report(plan: Plan, result: SwapResult, verify: VerifyReport | None) -> DeployReport:
    return DeployReport(
        project=plan.project.name, service=plan.options.service,
        old=tuple(c.name for c in plan.old), new=tuple(u.name for u in result.new),
        phases=result.phases, seconds=result.seconds, notes=result.notes, verify=verify)


def _record(plan: Plan, engine: Engine, swap: Swap, error: Exception | None, kind: str,
            rollback_to: int | None, observer: Observer) -> Recorded:
    new = [u for u in swap.new if isinstance(u, Container)]
    recorded = record_release(
        engine, plan.project.name, plan.options.service, error, new, replaced=plan.old,
        phases=swap.phases, keep=plan.options.keep, kind=kind, rollback_to=rollback_to,
        served=swap.switched)
    for note in recorded.notes:
        observer.note(note)
    return recorded
