"""Canary releases: the new version on a share of the requests, then promote or abort.

    start    (`deploy`/`up` --canary SHARE) new containers start beside every old one: the
             one-batch sequence (swap.py) with nothing to retire, its switch weighed so that
             the new containers get SHARE of new requests (weights.py), confirmed live. The
             release is recorded as a canary; the old containers keep the rest.
    promote  the rollout finishes as `up` does (promote.py): the old containers are replaced
             batch by batch (update_config) while the canary's stay; a rollout that rolls
             back comes back to the canary, on its share.
    abort    the canary's containers leave the proxy (every request to the old ones,
             confirmed), drain, and are removed (before-stop runs in each); recorded as an
             abort that rolled the canary back.

While a canary runs, any other deploy of the service is refused (preflight's check_canary).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import DeployFailed, InvalidSettings, NeedsAttention, SwapError
from docker_swap.models import Container, names
from docker_swap.observer import Observer, SilentObserver
from docker_swap.options import CanaryShare, ComposeOptions, VerifyOptions
from docker_swap.proxy.base import CountsAnswersOf
from docker_swap.releases.record import ABORT, ROLLED_BACK, Release
from docker_swap.releases.rules import canary_sides
from docker_swap.releases.store import record_release
from docker_swap.rollout.batch import compose_swap
from docker_swap.rollout.reports import CanaryState, DeployReport
from docker_swap.rollout.swap import Swap
from docker_swap.rollout.verify import Verifier
from docker_swap.rollout.weights import Split, Weighing, split
from docker_swap.safety.interrupts import Interrupts
from docker_swap.settings import parse_share
from docker_swap.targets.compose.batch import ComposeUnits, Starter
from docker_swap.targets.compose.preflight import (
    REQUIRE_CANARY,
    Plan,
    nothing_changed_yet,
    open_service,
    prepare,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine

def straight(flags: Mapping[str, object | None] | None) -> dict[str, object | None]:
    """`flags` for a command that starts no canary (promote, abort, the decision): x-swap's
    `canary` left out, and the canary's own flags dropped."""
    kept = {k: v for k, v in (flags or {}).items() if k not in ("canary-for", "sticky")}
    return {**kept, "canary": False}


def canary_swap(plan: Plan, engine: Engine, starter: Starter, observer: Observer,
                interrupts: Interrupts, *, kind: str, label: str = "") -> Swap:
    """The start of a canary of a checked service: new containers beside every old one,
    weighed to the share its options ask for; nothing retires."""
    share = plan.options.canary
    assert share is not None
    if plan.options.sticky and plan.proxy is not None:
        problem = plan.proxy.sticky_problem()
        if problem:
            raise InvalidSettings(f"--sticky (x-swap sticky) cannot be kept: {problem}",
                                  hint="docs/canary.md says what each proxy needs.")
    if plan.options.watch:
        observer.note("the watch window does not apply to a canary's start: the canary is "
                      "the watch (--canary-for decides by itself after a window).")
        plan = replace(plan, options=replace(plan.options, watch=None))
    return compose_swap(plan, engine, starter, observer, interrupts, old=(),
                        staying=plan.old, size=share.containers(len(plan.old)), kind=kind,
                        label=label, weighing=Weighing(share=share))


def started_state(swap: Swap, release: int | None) -> CanaryState:
    """What the canary's start left serving."""
    share = swap.options.canary
    assert share is not None
    new = [u.id for u in swap.new]
    weights = split(share, new, len(swap.batch.staying))
    return CanaryState(release, str(share), weights.share(len(swap.batch.staying), len(new)),
                       tuple(u.name for u in swap.new),
                       tuple(u.name for u in swap.batch.staying), swap.options.canary_for)


def canary_split(release: Release, running: Sequence[Container]) -> Split:
    """The weights that give a running canary its share again (promote's and abort's way
    back, `sync`, `recover`)."""
    ids = {c.id for c in release.containers}
    canary = [c.id for c in running if c.id in ids]
    try:
        share: CanaryShare = parse_share(release.share)
    except ValueError:
        share = CanaryShare(replicas=len(canary))  # an older record: all weigh the same
    return split(share, canary, len(running) - len(canary))


def abort(service: str, *, compose_options: ComposeOptions | None = None,
          flags: Mapping[str, object | None] | None = None,
          observer: Observer | None = None, verify: VerifyOptions | None = None,
          ) -> DeployReport:
    """Send every request of `service` back to its old containers, confirmed, drain the
    canary's, and remove them. A failure keeps the canary as it was (exit 3)."""
    shown = observer or SilentObserver()
    compose = Compose(compose_options or ComposeOptions())
    with Interrupts(shown.note) as interrupts:
        interrupts.arm("before the canary left the proxy")
        engine, project, options = open_service(compose, service, straight(flags))
        plan = prepare(engine, project, options, canary=REQUIRE_CANARY)
        verifier = Verifier(verify or VerifyOptions())
        try:
            with nothing_changed_yet():
                verifier.start()
            report = _abort(plan, engine, compose, shown, interrupts)
        finally:
            verifier.stop()
            plan.journal.unlock()
    return replace(report, verify=verifier.report() if verifier.active else None)


def _abort(plan: Plan, engine: Engine, compose: Compose, observer: Observer,
           interrupts: Interrupts) -> DeployReport:
    assert plan.canary is not None
    canary, old = canary_sides(plan.canary, plan.old)
    service = plan.options.service
    if not old:
        raise InvalidSettings(
            f"no container of {service}'s old version runs beside its canary "
            f"({names(canary)}), so aborting would leave nothing to serve.",
            hint=f"Promote it instead: `docker-swap promote {service}`.")
    swap = compose_swap(plan, engine, compose, observer, interrupts, old=canary, staying=old,
                        size=0, kind=ABORT, weighing=Weighing(back=canary_split(plan.canary,
                                                                                plan.old)))
    try:
        result = swap.run()
    except DeployFailed as failed:  # the proxy is back on the canary's share
        interrupts.defer("recording the release first")
        _record_abort(plan, engine, swap, canary, failed, observer)
        raise NeedsAttention(
            f"aborting the canary of {service} failed: {failed.message} The canary "
            f"({names(canary)}) still serves its share beside {names(old)}.",
            hint=f"Fix the cause, then run `docker-swap abort {service}` again.") from failed
    except SwapError as error:
        interrupts.defer("recording the release first")
        _record_abort(plan, engine, swap, canary, error, observer)
        raise
    interrupts.defer("recording the release first")
    recorded = _record_abort(plan, engine, swap, canary, None, observer)
    return DeployReport(
        project=plan.project.name, service=service, old=tuple(c.name for c in canary),
        new=tuple(c.name for c in old), phases=result.phases, seconds=result.seconds,
        notes=result.notes + recorded, release=None)


def _record_abort(plan: Plan, engine: Engine, swap: Swap, canary: Sequence[Container],
                  error: SwapError | None, observer: Observer) -> tuple[str, ...]:
    """An abort is recorded as the canary rolled back (its containers, its image); one that
    failed as needing attention, so that the canary still counts as running."""
    assert plan.canary is not None
    reason = f"aborted: the canary of release {plan.canary.number} was removed"
    outcome = (ROLLED_BACK, reason) if error is None else None
    failure = None if error is None else NeedsAttention(
        f"aborting the canary failed: {error.message}")
    recorded = record_release(engine, plan.project.name, plan.options.service, failure,
                              list(canary), phases=swap.phases, keep=plan.options.keep,
                              kind=ABORT, outcome=outcome, served=False)
    for note in recorded.notes:
        observer.note(note)
    return recorded.notes


def counted_at_start(swap: Swap) -> tuple[int, ...]:
    """5xx and all answers of the canary's backends, then of the old ones, as its proxy
    counts them just after the switch (empty where the proxy does not count per backend)."""
    driver = swap.proxy.driver if swap.proxy is not None else None
    if not isinstance(driver, CountsAnswersOf) or not isinstance(swap.batch, ComposeUnits):
        return ()
    try:
        new = driver.answers_of(swap.batch.backends(swap.new))
        old = driver.answers_of(swap.batch.backends(swap.batch.staying))
    except SwapError:
        return ()  # the canary serves: its baseline is only for `status`
    return (*new, *old) if new and old else ()
