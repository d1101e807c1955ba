"""`up`, `deploy` and `rollback` on a Swarm stack: plan, refuse, lock, run the bridge sequence
(swarm_up.py), record each bridged service's release, report as `up` does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from docker_swap.engine.swarm import SwarmService, same_template, template_hash
from docker_swap.errors import (
    EXIT_NEEDS_ATTENTION,
    EXIT_ROLLED_BACK,
    InvalidSettings,
    Refused,
    ReleaseRefused,
    ServiceNotFound,
    SwapError,
    UnfinishedDeploy,
)
from docker_swap.observer import Observer, SilentObserver
from docker_swap.releases.record import (
    DEPLOY,
    DEPLOYED,
    NEEDS_ATTENTION,
    ROLLBACK,
    ROLLED_BACK,
    UP,
    ContainerRef,
    Phase,
    Release,
)
from docker_swap.releases.store import deployer, next_number, now, read_releases, write_record
from docker_swap.rollout.outcomes import DONE
from docker_swap.rollout.swarm_up import Bridged, StackResult, StackRollout
from docker_swap.rollout.outcomes import ServiceOutcome, UpReport
from docker_swap.targets.compose.preflight import nothing_changed_yet, refuse_unfinished
from docker_swap.targets.swarm.plan import (
    BRIDGE,
    CREATE,
    SWARM,
    UNCHANGED,
    StackPlan,
    StackStep,
    plan_stack,
)
from docker_swap.targets.swarm.stack import StackTarget, require_service, stack_journal

DEFAULT_RESOLVE_IMAGE = "always"


def stack_up(target: StackTarget, services: Sequence[str] = (), *, dry_run: bool = False,
             observer: Observer | None = None, resolve_image: str = DEFAULT_RESOLVE_IMAGE,
             ) -> UpReport:
    """`docker stack deploy` of the files, with a bridge for each proxied service it changes."""
    plan = _moved_tags(target, _plan(target), resolve_image)
    for service in services:
        if service not in target.services:
            raise ServiceNotFound(f"service {service!r} is not in stack {target.name!r}.")
    _refuse_others(plan, services)
    if dry_run:
        return UpReport(target.name, True, [_outcome(s) for s in plan.steps])
    return _run(target, plan, lambda: target.stack.deploy(resolve_image), UP, observer)


def stack_deploy(target: StackTarget, service: str, observer: Observer | None = None,
                 ) -> UpReport:
    """Replace every task of one service (a forced update of its current spec), through a
    bridge; the file is not deployed (`up` does that)."""
    require_service(target, service)
    plan = _plan(target, force={service})
    plan = StackPlan(plan.stack, tuple(s for s in plan.steps if s.service == service))
    swarm_name = plan.steps[0].swarm_name
    return _run(target, plan, lambda: target.stack.force_update(swarm_name), DEPLOY, observer)


def stack_rollback(target: StackTarget, service: str, to: int | None = None,
                   observer: Observer | None = None) -> UpReport:
    """Give the service the task template of an earlier release (the one before the one that
    runs, or release `to`), through a bridge."""
    require_service(target, service)
    running = target.running.get(service)
    if running is None:
        raise ServiceNotFound(f"stack {target.name} does not run {service}.")
    release = _rollback_target(target, service, running, to)
    plan = _plan(target, force={service})
    plan = StackPlan(plan.stack, tuple(s for s in plan.steps if s.service == service))
    template = _checked_template(release, running)
    return _run(target, plan, lambda: target.swarm.update_template(running.name, template),
                ROLLBACK, observer, rollback_to=release.number)


_ROLLED_BACK_KEYS = ("Image", "Env", "Args", "Command", "Labels")
"""What a rollback may change of a service's containers: a release record is read back from
an image's labels, which anyone who can make an image may write; so its template must match
what runs in everything else (mounts, capabilities, networks, placement...)."""


def _checked_template(release: Release, running: SwarmService) -> dict[str, Any]:
    template = json.loads(release.template)
    if template_hash(template) != release.image_id:
        raise ReleaseRefused(f"the record of release {release.number} does not match its own "
                             "hash: it was altered, and is not rolled back to.")
    if not same_template(_beyond_rollback(template), _beyond_rollback(running.template)):
        raise ReleaseRefused(
            f"release {release.number} ran a task spec that differs from what runs beyond "
            "its image, command, environment and labels: a rollback changes only those.",
            hint="Deploy that release's compose file with `docker-swap up` instead.")
    return dict(template)


def _beyond_rollback(template: Mapping[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in (template.get("ContainerSpec") or {}).items()
            if k not in _ROLLED_BACK_KEYS}
    return {**{k: v for k, v in template.items() if k not in ("ContainerSpec", "ForceUpdate")},
            "ContainerSpec": spec}


def _plan(target: StackTarget, force: set[str] | None = None) -> StackPlan:
    with nothing_changed_yet():
        hashes = target.compose.config_hashes()
        last = {name: _last_deployed(target, name) for name in target.settings}
    plan = plan_stack(target.name, target.services, target.running, target.settings, hashes,
                      last, force or set())
    for step in plan.bridged:
        if step.options is not None and step.options.port is None:
            raise InvalidSettings(
                f"service {step.service} needs the port its proxies send to.",
                hint=f"Set `x-swap: {{port: PORT}}` on {step.service} (or pass --port).")
    return plan


def _moved_tags(target: StackTarget, plan: StackPlan, resolve_image: str) -> StackPlan:
    """`docker stack deploy` pins the digest a tag has now (unless --resolve-image never): a
    tag that moved (`app:main` pushed again) replaces the tasks of a service whose file and
    record did not change. Such a service goes through a bridge too, and so does one whose
    registry does not answer here (whether its tag moved cannot be known)."""
    if resolve_image == "never":
        return plan
    steps = []
    for step in plan.steps:
        running = target.running.get(step.service)
        image = target.images.get(step.service, "")
        pinned = running.image.partition("@")[2] if running else ""
        if step.action == UNCHANGED and pinned and "@" not in image:
            try:
                moved = target.swarm.registry_digest(image) != pinned
                why = f"its tag {image} points to another image now"
            except SwapError as exc:
                moved, why = True, f"whether its tag {image} moved is unknown ({exc.message})"
            steps.append(replace(step, action=BRIDGE, reason=why) if moved else step)
        else:
            steps.append(step)
    return StackPlan(plan.stack, tuple(steps))


def _refuse_others(plan: StackPlan, services: Sequence[str]) -> None:
    """`up SERVICE`: `docker stack deploy` updates every service at once, so a change to a
    proxied service that was not named would reach it without a bridge."""
    if not services:
        return
    others = [s.service for s in plan.bridged if s.service not in services]
    if others:
        raise Refused(
            f"docker stack deploy would also replace the tasks of {', '.join(others)}, which "
            "were not named.", hint="Run `docker-swap up` for the whole stack, or name them too.")


def _run(target: StackTarget, plan: StackPlan, update: Callable[[], None], kind: str,
         observer: Observer | None, rollback_to: int | None = None) -> UpReport:
    observer = observer or SilentObserver()
    journal = stack_journal(target)
    with nothing_changed_yet():
        journal.lock()
    try:
        with nothing_changed_yet():
            first = plan.bridged[0].service if plan.bridged else target.services[0]
            refuse_unfinished(journal, first)
            left = target.swarm.bridges({s.swarm_name for s in plan.steps})
            if left:
                raise UnfinishedDeploy(
                    f"bridge {left[0].name} is left from an interrupted rollout.",
                    hint=f"Run `docker-swap -p {target.name} recover {first}` first.")
            rollout = StackRollout(target, plan, journal, update, observer)
            rollout.check()
        started = time.monotonic()
        try:
            result = rollout.run()
        except SwapError as error:
            failed = StackResult(tuple(rollout.bridged), tuple(rollout.updated),
                                 time.monotonic() - started, tuple(rollout.notes))
            _record_all(target, plan, failed, error, kind, rollback_to, observer)
            raise
        _record_all(target, plan, result, None, kind, rollback_to, observer)
        return _report(target, plan, result)
    finally:
        journal.unlock()


def _report(target: StackTarget, plan: StackPlan, result: StackResult) -> UpReport:
    outcomes = []
    for step in plan.steps:
        outcome = _outcome(step)
        bridged = next((b for b in result.bridged if b.step.service == step.service), None)
        if bridged is not None or step.swarm_name in result.updated:
            outcome.outcome = DONE
            tasks = bridged.after if bridged else []
            outcome.detail = (f"{len(tasks)} new task(s), traffic through {bridged.bridge.name}"
                              if bridged and bridged.bridge else "Swarm updated it")
            outcome.seconds = round(sum(p.seconds for p in bridged.phases), 3) if bridged else 0
        else:
            outcome.outcome = UNCHANGED
        outcomes.append(outcome)
    return UpReport(target.name, False, outcomes, result.seconds)


def _outcome(step: StackStep) -> ServiceOutcome:
    action = {BRIDGE: "swap", SWARM: "swarm", CREATE: "start", UNCHANGED: "unchanged"}
    return ServiceOutcome(step.service, action[step.action], step.reason)


# Releases.


def _record_all(target: StackTarget, plan: StackPlan, result: StackResult,
                error: SwapError | None, kind: str, rollback_to: int | None,
                observer: Observer) -> None:
    """One release per bridged service; a record that cannot be written is a note (the
    outcome stays what it was)."""
    if error is not None and error.exit_code not in (EXIT_ROLLED_BACK, EXIT_NEEDS_ATTENTION):
        return
    outcome = (DEPLOYED, "") if error is None else (
        (ROLLED_BACK if error.exit_code == EXIT_ROLLED_BACK else NEEDS_ATTENTION),
        error.message[:300])
    try:
        hashes = target.compose.config_hashes()
        for bridged in result.bridged:
            _record(target, bridged, outcome, hashes.get(bridged.step.service, ""), kind,
                    rollback_to)
    except SwapError as exc:
        observer.note(f"the release could not be recorded on the engine ({exc.message}); "
                      "the outcome is as reported.")


def _record(target: StackTarget, bridged: Bridged, outcome: tuple[str, str],
            config_hash: str, kind: str, rollback_to: int | None) -> None:
    name = bridged.step.service
    releases, _ = read_releases(target.engine, target.name, name)
    service = target.swarm.service(bridged.step.swarm_name) or bridged.before
    deployed = outcome[0] == DEPLOYED
    shown = service if deployed else bridged.before
    release = Release(
        number=next_number(releases), project=target.name, service=name, outcome=outcome[0],
        kind=kind, reason=outcome[1], image_id=shown.template_hash, image_tags=(shown.image,),
        # A rollback runs an earlier template, not the file's: the next `up` replaces it.
        config_hash=config_hash if deployed and kind != ROLLBACK else "", at=now(),
        by=deployer(),
        rollback_to=rollback_to,
        phases=tuple(Phase(p.name, round(p.seconds, 3)) for p in bridged.phases),
        seconds=round(sum(p.seconds for p in bridged.phases), 3),
        containers=tuple(ContainerRef(t.container_id, f"{service.name}.{t.slot}.{t.id}")
                         for t in bridged.after if deployed),
        replaced=(bridged.before.name,) if deployed else (),
        template=json.dumps(shown.template, separators=(",", ":"), ensure_ascii=True),
    )
    write_record(target.engine, release)


def _last_deployed(target: StackTarget, service: str) -> Release | None:
    releases, _ = read_releases(target.engine, target.name, service)
    return next((r for r in releases if r.deployed and r.template), None)


def _rollback_target(target: StackTarget, service: str, running: SwarmService,
                     to: int | None) -> Release:
    releases, _ = read_releases(target.engine, target.name, service)
    deployed = [r for r in releases if r.deployed and r.template]
    if to is not None:
        asked = next((r for r in releases if r.number == to), None)
        if asked is None or asked not in deployed:
            raise ReleaseRefused(f"release {to} of {service} is not a deployed release of "
                                 "this stack.", hint=f"`docker-swap history {service}` lists them.")
        if asked.image_id == running.template_hash:
            raise ReleaseRefused(f"release {to} of {service} is what runs now.")
        return asked
    earlier = next((r for r in deployed if r.image_id != running.template_hash), None)
    if earlier is None:
        raise ReleaseRefused(f"{service} has no earlier release to go back to.",
                             hint=f"`docker-swap history {service}` lists its releases.")
    return earlier
