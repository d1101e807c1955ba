"""`up`: the whole project (or the named services and what they depend on) brought to its
current definition, as `docker compose up -d` would, without failing a request behind a proxy.

    plan      compose's config and hashes, the running containers: one action per service
    refuse    every service it would touch is checked and locked first (exit 2, nothing changed)
    run       dependencies first; each service by its action (swap and replace batch by batch,
              batches.py; a scale behind a proxy through the same sequence); independent
              services side by side, at most `parallel` at once
    report    every service's outcome (outcomes.py); services that depend on a failed one are
              not reached; `--verify` watches the whole run

The locks of every service touched are held for the whole run (also of the services whose
proxy the run recreates, which it points at them again); each batch keeps its journal, so
`recover SERVICE` finishes or undoes a batch that was killed. One handler of Ctrl-C and SIGTERM
covers the run: a batch before its switch is undone, and nothing new starts after a signal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext

from docker_swap.compose import Compose
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.rollout.outcomes import (
    BatchResult,
    ServiceOutcome,
    SilentUpObserver,
    UpObserver,
    UpReport,
    outcome_of,
)
from docker_swap.rollout.project import Locks, Run
from docker_swap.rollout.verify import Verifier
from docker_swap.safety.interrupts import Interrupts
from docker_swap.targets.compose.plan import read_plan
from docker_swap.targets.compose.preflight import connect_engine, nothing_changed_yet

__all__ = ["BatchResult", "ServiceOutcome", "SilentUpObserver", "UpObserver", "UpReport", "up"]


def up(
    services: Sequence[str] = (),
    *,
    compose_options: ComposeOptions | None = None,
    dry_run: bool = False,
    parallel: int = 1,
    observer: UpObserver | None = None,
    flags: Mapping[str, object | None] | None = None,
    verify: VerifyOptions | None = None,
    interrupts: Interrupts | None = None,
) -> UpReport:
    """Bring the project (or `services` and their dependencies) to its current definition.
    `flags` (readiness, hooks, the watch window) apply to `services`, or to every service.
    `interrupts`: the caller's signal handler (autoupdate's), if it has one already."""
    shown = observer or SilentUpObserver()
    compose = Compose(compose_options or ComposeOptions())
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        project = compose.load_project()
    plan = read_plan(compose, engine, project, services, flags)
    if dry_run:
        return UpReport(project.name, True, [outcome_of(s) for s in plan.services])
    verifier = Verifier(verify or VerifyOptions())
    with nullcontext(interrupts) if interrupts else Interrupts(shown.note) as handler:
        handler.hold("up finishes the step it is in, then starts nothing more")
        started = time.monotonic()
        with Locks(engine, plan) as locks:
            with nothing_changed_yet():
                verifier.start()
            try:
                run = Run(plan, engine, compose, locks.prepared, shown, handler)
                outcomes = run.all(max(parallel, 1))
            finally:
                verifier.stop()
    return UpReport(project.name, False, outcomes, time.monotonic() - started,
                    verifier.report() if verifier.active else None)
