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

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import SwapError
from docker_swap.models import Container
from docker_swap.observer import Observer, SilentObserver
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.releases.record import DEPLOY, ROLLBACK
from docker_swap.releases.store import Recorded, record_release
from docker_swap.rollout.batch import compose_swap
from docker_swap.rollout.canary import canary_swap, counted_at_start, started_state
from docker_swap.rollout.reports import DeployReport
from docker_swap.rollout.swap import Swap, SwapResult
from docker_swap.rollout.verify import Verifier, VerifyReport
from docker_swap.safety.interrupts import Interrupts
from docker_swap.targets.compose.preflight import (
    Plan,
    nothing_changed_yet,
    open_service,
    prepare,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine


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
    """The deploy of a service whose preflight (and lock) is `plan`: swap (or start a canary:
    `--canary`), then record."""
    kind = DEPLOY if rollback_to is None else ROLLBACK
    canary = plan.options.canary is not None
    swap = canary_swap(plan, engine, compose, observer, interrupts, kind=kind) if canary else \
        compose_swap(plan, engine, compose, observer, interrupts, old=plan.old, staying=(),
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
    recorded = _record(plan, engine, swap, None, kind, rollback_to, observer,
                       counted_at_start(swap) if canary else ())
    return replace(report, release=recorded.number, notes=report.notes + recorded.notes,
                   canary=started_state(swap, recorded.number) if canary else None)


def _report(plan: Plan, result: SwapResult, verify: VerifyReport | None) -> DeployReport:
    return DeployReport(
        project=plan.project.name, service=plan.options.service,
        old=tuple(c.name for c in plan.old), new=tuple(u.name for u in result.new),
        phases=result.phases, seconds=result.seconds, notes=result.notes, verify=verify)


def _record(plan: Plan, engine: Engine, swap: Swap, error: Exception | None, kind: str,
            rollback_to: int | None, observer: Observer, counted: tuple[int, ...] = (),
            ) -> Recorded:
    """The release; a canary's records the share it was given (its old containers are
    `replaced` only in the sense that they ran before it: they keep running)."""
    new = [u for u in swap.new if isinstance(u, Container)]
    recorded = record_release(
        engine, plan.project.name, plan.options.service, error, new, replaced=plan.old,
        phases=swap.phases, keep=plan.options.keep, kind=kind, rollback_to=rollback_to,
        served=swap.switched, share=str(plan.options.canary or ""), counted=counted)
    for note in recorded.notes:
        observer.note(note)
    return recorded
