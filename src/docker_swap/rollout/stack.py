"""`up`, `deploy` and `rollback` on a Swarm stack: plan, refuse, lock, run (stack_run.py), record
each changed proxied service's release, report as `up` does (outcomes.py: the same exit code).

One handler of Ctrl-C and SIGTERM covers the command, and `--verify` watches the whole of it,
as on a compose host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from docker_swap.errors import ServiceNotFound, SwapError, UnfinishedDeploy
from docker_swap.observer import Observer, SilentObserver
from docker_swap.options import VerifyOptions
from docker_swap.releases.record import DEPLOY, ROLLBACK, UP
from docker_swap.releases.stacks import checked_template, record_stack_release, rollback_target
from docker_swap.rollout.outcomes import DONE, UNCHANGED, BatchResult, ServiceOutcome, UpReport
from docker_swap.rollout.stack_run import StackRun
from docker_swap.rollout.stack_state import Bridged, StackResult
from docker_swap.rollout.verify import Verifier
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Journal
from docker_swap.targets.compose.preflight import nothing_changed_yet, refuse_unfinished
from docker_swap.targets.swarm.plan import BRIDGE, CREATE, SWARM, StackPlan, StackStep
from docker_swap.targets.swarm.planning import only, read_stack_plan, refuse_others
from docker_swap.targets.swarm.stack import StackTarget, require_service, stack_journal

DEFAULT_RESOLVE_IMAGE = "always"
_ACTIONS = {BRIDGE: "swap", SWARM: "swarm", CREATE: "start", UNCHANGED: "unchanged"}


def stack_up(target: StackTarget, services: Sequence[str] = (), *, dry_run: bool = False,
             observer: Observer | None = None, resolve_image: str = DEFAULT_RESOLVE_IMAGE,
             verify: VerifyOptions | None = None) -> UpReport:
    """`docker stack deploy` of the files, with a bridge for each proxied service it changes."""
    plan = read_stack_plan(target, resolve_image=resolve_image)
    for service in services:
        if service not in target.services:
            raise ServiceNotFound(f"service {service!r} is not in stack {target.name!r}.")
    refuse_others(plan, services)
    with nothing_changed_yet():
        target.stack.files()  # the files `docker stack deploy` reads: refused if there are none
    if dry_run:
        return UpReport(target.name, True, [_outcome(s) for s in plan.steps])
    return _run(target, plan, lambda: target.stack.deploy(resolve_image), UP, observer, verify)


def stack_deploy(target: StackTarget, service: str, observer: Observer | None = None,
                 verify: VerifyOptions | None = None) -> UpReport:
    """Replace every task of one service (a forced update of its current spec), through a
    bridge; the file is not deployed (`up` does that)."""
    require_service(target, service)
    plan = only(read_stack_plan(target, force={service}), service)
    swarm_name = plan.steps[0].swarm_name
    return _run(target, plan, lambda: target.stack.force_update(swarm_name), DEPLOY, observer,
                verify)


def stack_rollback(target: StackTarget, service: str, to: int | None = None,
                   observer: Observer | None = None,
                   verify: VerifyOptions | None = None) -> UpReport:
    """Give the service the task template of an earlier release (the one before the one that
    runs, or release `to`), through a bridge."""
    require_service(target, service)
    running = target.running.get(service)
    if running is None:
        raise ServiceNotFound(f"stack {target.name} does not run {service}.")
    with nothing_changed_yet():
        release = rollback_target(target.engine, target.name, service, running, to)
    template = checked_template(release, running)
    plan = only(read_stack_plan(target, force={service}), service)
    return _run(target, plan, lambda: target.swarm.update_template(running.name, template),
                ROLLBACK, observer, verify, rollback_to=release.number)


def _run(target: StackTarget, plan: StackPlan, update: Callable[[], None], kind: str,
         observer: Observer | None, verify: VerifyOptions | None,
         rollback_to: int | None = None) -> UpReport:
    shown = observer or SilentObserver()
    journal = stack_journal(target)
    verifier = Verifier(verify or VerifyOptions())
    with Interrupts(shown.note) as interrupts:
        interrupts.arm("before anything changed")
        with nothing_changed_yet():
            journal.lock()
        try:
            with nothing_changed_yet():
                _refuse_unfinished(target, plan, journal)
                run = StackRun(target, plan, journal, update, shown, interrupts, kind,
                               rollback_to)
                run.check()
                verifier.start()
            started = time.monotonic()
            try:
                result = run.run()
            except SwapError as error:
                verifier.stop()
                interrupts.defer("recording the releases first")
                error.verify = verifier.report() if verifier.active else None
                failed = StackResult(tuple(run.bridged), tuple(run.updated),
                                     time.monotonic() - started, tuple(run.notes))
                _record_all(target, plan, failed, error, kind, rollback_to, shown)
                raise
            verifier.stop()
            interrupts.defer("recording the releases first")
            _record_all(target, plan, result, None, kind, rollback_to, shown)
            report = _report(target, plan, result)
            report.verify = verifier.report() if verifier.active else None
            return report
        finally:
            journal.unlock()


def _refuse_unfinished(target: StackTarget, plan: StackPlan, journal: Journal) -> None:
    first = plan.bridged[0].service if plan.bridged else target.services[0]
    refuse_unfinished(journal, first)
    left = target.swarm.bridges({s.swarm_name for s in plan.steps})
    if left:
        raise UnfinishedDeploy(f"bridge {left[0].name} is left from an interrupted rollout.",
                               hint=f"Run `docker-swap -p {target.name} recover {first}` first.")


def _report(target: StackTarget, plan: StackPlan, result: StackResult) -> UpReport:
    outcomes = []
    for step in plan.steps:
        outcome = _outcome(step)
        bridged = next((b for b in result.bridged if b.step.service == step.service), None)
        if bridged is not None:
            outcome.outcome = bridged.outcome or DONE
            outcome.batches = [_one_batch(bridged)]
            outcome.seconds = outcome.batches[0].seconds
            outcome.detail = (f"{len(bridged.new)} new task(s), traffic through "
                              f"{bridged.bridge.name if bridged.bridge else 'a bridge'}")
            if bridged.error is not None:
                outcome.detail = outcome.error = bridged.error.message
                outcome.hint = bridged.error.hint
        elif step.swarm_name in result.updated:
            outcome.outcome, outcome.detail = DONE, "Swarm updated it"
        else:
            outcome.outcome = UNCHANGED
        outcomes.append(outcome)
    return UpReport(target.name, False, outcomes, result.seconds)


def _one_batch(bridged: Bridged) -> BatchResult:
    """A bridged service as one batch of `up`'s report: the bridge out, the new tasks in, and
    every phase in order (bridge, to-bridge, update, settle, then the return's own)."""
    return BatchResult(1, len(bridged.new), bridged.outcome or DONE,
                       round(sum(p.seconds for p in bridged.phases), 3),
                       old=[bridged.bridge.name] if bridged.bridge else [],
                       new=[task.name for task in bridged.new],
                       error=bridged.error.message if bridged.error else "",
                       phases=list(bridged.phases))


def _outcome(step: StackStep) -> ServiceOutcome:
    return ServiceOutcome(step.service, _ACTIONS[step.action], step.reason)


def _record_all(target: StackTarget, plan: StackPlan, result: StackResult,
                error: SwapError | None, kind: str, rollback_to: int | None,
                observer: Observer) -> None:
    """One release per proxied service the rollout changed (bridged, or created), with the
    compose hashes the plan read (what was deployed); a record that cannot be written is a
    note (the outcome stays what it was)."""
    try:
        hashes = plan.hashes
        for bridged in result.bridged:
            after = target.swarm.service(bridged.step.swarm_name) or bridged.before
            record_stack_release(
                target.engine, target.name, bridged.step.service,
                error=error or bridged.error, served=bridged.served, before=bridged.before,
                after=after, tasks=bridged.new, phases=bridged.phases,
                config_hash=hashes.get(bridged.step.service, ""), kind=kind,
                rollback_to=rollback_to)
        for step, tasks in result.created:
            created = target.swarm.service(step.swarm_name)
            if created is not None and error is None:
                record_stack_release(
                    target.engine, target.name, step.service, error=None, served=True,
                    before=None, after=created, tasks=tasks, phases=(),
                    config_hash=hashes.get(step.service, ""), kind=kind, rollback_to=None)
    except SwapError as exc:
        observer.note(f"the release could not be recorded on the engine ({exc.message}); "
                      "the outcome is as reported.")
