"""`docker-swap promote SERVICE`: a running canary becomes the release.

    plan      the service alone, as `up` plans it: its old containers are replaced batch by
              batch (deploy.update_config), the canary's stay (they run the current
              definition); refused (exit 2) if no canary runs, or the compose file changed
              since it started (the canary would not be what is promoted)
    run       `up`'s rollout (batches.py), its first batch's switch giving every container
              the same weight; a failure that rolls back comes back to the canary, on its share
    record    a release of kind `promote`
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from docker_swap.compose import Compose
from docker_swap.errors import CanaryConflict
from docker_swap.models import Container
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.releases.record import Release
from docker_swap.releases.rules import canary_sides
from docker_swap.rollout.canary import canary_split, straight
from docker_swap.rollout.outcomes import SilentUpObserver, UpObserver, UpReport
from docker_swap.rollout.project import HOLD, Locks, Run
from docker_swap.rollout.verify import Verifier
from docker_swap.safety.interrupts import Interrupts
from docker_swap.targets.compose.plan import ProjectPlan, read_service_plan
from docker_swap.targets.compose.preflight import Plan, connect_engine, nothing_changed_yet


def promote(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
    observer: UpObserver | None = None,
    verify: VerifyOptions | None = None,
) -> UpReport:
    """Replace the old containers of `service` beside its canary, batch by batch."""
    shown = observer or SilentUpObserver()
    compose = Compose(compose_options or ComposeOptions())
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        project = compose.load_project()
        plan = read_service_plan(compose, engine, project, service,
                                 straight(flags))
    verifier = Verifier(verify or VerifyOptions())
    with Interrupts(shown.note) as interrupts:
        interrupts.hold(HOLD)
        started = time.monotonic()
        with Locks(engine, plan, promoting=[service]) as locks:
            prepared = locks.prepared.get(service)
            split = canary_split(*_promotable(plan, prepared, service))
            with nothing_changed_yet():
                verifier.start()
            try:
                run = Run(plan, engine, compose, locks.prepared, shown, interrupts,
                          promoting={service: split})
                outcomes = run.all(1)
            finally:
                verifier.stop()
    return UpReport(project.name, False, outcomes, time.monotonic() - started,
                    verifier.report() if verifier.active else None)


def _promotable(plan: ProjectPlan, prepared: Plan | None,
                service: str) -> tuple[Release, tuple[Container, ...]]:
    """The canary's release and the running containers, once they may be promoted."""
    planned = plan.service(service)
    if prepared is None or prepared.canary is None or planned.action != "swap":
        raise CanaryConflict(
            f"no canary of {service} runs beside its old version ({planned.reason}).",
            hint=f"`docker-swap status {service}` shows what runs.")
    canary, _ = canary_sides(prepared.canary, planned.running)
    current = {c.id for c in planned.current}
    if not canary or any(c.id not in current for c in canary):
        raise CanaryConflict(
            f"the compose file of {service} changed since its canary started (release "
            f"{prepared.canary.number}), so promoting would deploy something else.",
            hint=f"Abort it (`docker-swap abort {service}`), then deploy the new definition, "
            "or put the file back as it was.")
    return prepared.canary, planned.running
