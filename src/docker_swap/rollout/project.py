"""The run of `up` on a compose project: the locks it holds, the order it goes in, and what it
does to each service by its action (the plan's: targets/compose/plan.py).

    unchanged  nothing
    start      compose starts it (`up --wait`); behind a proxy, the proxy is pointed at it
    scale      behind a proxy, the one-batch sequence: new containers get ready and join, or
               the extra ones leave the proxy, drain and retire; else compose scales it
    swap       batch by batch (batches.py), behind its proxy
    replace    batch by batch, start-first, no proxy
    recreate   compose's stop-then-start (downtime, said in the plan); the proxy is pointed at
               it, and if it is a proxy itself, at the services behind it that run
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import EXIT_REFUSED, DeployFailed, NeedsAttention, SwapError, unexpected
from docker_swap.models import Container
from docker_swap.observer import Labelled
from docker_swap.options import DEFAULT_TIMEOUT
from docker_swap.releases.record import PROMOTE, UP
from docker_swap.releases.store import record_release
from docker_swap.rollout.batch import compose_swap
from docker_swap.rollout.batches import Rollout, RolloutResult
from docker_swap.rollout.canary import canary_swap, counted_at_start, started_state
from docker_swap.rollout.outcomes import (
    CANARY_OUTCOME,
    DONE,
    FAILED,
    FINE,
    NEEDS_ATTENTION,
    NOT_REACHED,
    ROLLED_BACK,
    STOPPED,
    STOPS,
    UNCHANGED,
    ServiceOutcome,
    UpObserver,
    failed_outcome,
    outcome_of,
)
from docker_swap.rollout.pointing import point_proxy
from docker_swap.rollout.swap import Swap
from docker_swap.rollout.weights import Split
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Journal
from docker_swap.targets.compose.plan import CANARY, ProjectPlan, ServicePlan
from docker_swap.targets.compose.preflight import (
    REFUSE_CANARY,
    REQUIRE_CANARY,
    Plan,
    connect_proxy,
    prepare,
    prepare_unproxied,
    refuse_unfinished,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine

HOLD = "up finishes the step it is in, then starts nothing more"
_CHANGES_CONTAINERS = ("start", "scale", "recreate")


class Locks:
    """Every service `up` touches, checked and locked before anything changes (as `deploy`'s
    preflight does for swaps), the services behind a proxy it starts or recreates among them;
    all released at the end."""

    def __init__(self, engine: Engine, plan: ProjectPlan,
                 promoting: Iterable[str] = ()) -> None:
        self.engine, self.plan = engine, plan
        self.promoting = set(promoting)
        """Services whose canary is being promoted (the others must have none)."""
        self.prepared: dict[str, Plan] = {}
        self._journals: list[Journal] = []

    def __enter__(self) -> Locks:
        try:
            for service in self.plan.services:
                self._take(service)
            for service in self._behind_changed_proxies():
                self._lock(service.name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for journal in [*self._journals, *(p.journal for p in self.prepared.values())]:
            journal.unlock()

    def _take(self, service: ServicePlan) -> None:
        if service.action in ("unchanged", "start"):
            return  # nothing runs that a lock would protect; compose's own start is idempotent
        assert service.options is not None
        proxied = service.options.proxy is not None
        if service.action in ("swap", CANARY) or (service.action == "scale" and proxied and
                                                  service.replicas):
            self.prepared[service.name] = prepare(
                self.engine, self.plan.project, service.options,
                canary=REQUIRE_CANARY if service.name in self.promoting else REFUSE_CANARY)
        elif service.action == "replace":
            self.prepared[service.name] = prepare_unproxied(self.engine, self.plan.project,
                                                            service.options)
        else:
            self._lock(service.name)

    def _lock(self, name: str) -> None:
        journal = Journal(self.engine, self.plan.project.name, name)
        journal.lock()
        self._journals.append(journal)
        refuse_unfinished(journal, name)

    def _behind_changed_proxies(self) -> list[ServicePlan]:
        changed = {s.name for s in self.plan.services if s.action in _CHANGES_CONTAINERS}
        locked = {*self.prepared, *(j.service for j in self._journals)}
        return [s for s in self.plan.services if s.name not in locked and s.running
                and s.options and s.options.proxy and s.options.proxy.service in changed]


class Run:
    def __init__(self, plan: ProjectPlan, engine: Engine, compose: Compose,
                 prepared: dict[str, Plan], observer: UpObserver,
                 interrupts: Interrupts | None = None, *,
                 promoting: Mapping[str, Split] | None = None) -> None:
        self.plan, self.engine, self.compose = plan, engine, compose
        self.prepared, self.observer = prepared, observer
        self.interrupts = interrupts or Interrupts(observer.note)
        self.promoting = dict(promoting or {})
        """Services whose canary this run promotes, with the canary's weights."""
        self.began = time.monotonic()
        self.touched: set[str] = set()
        """Services whose containers this run started or recreated (a proxy's among them:
        its driver is opened again before it is switched)."""

    def all(self, parallel: int) -> list[ServiceOutcome]:
        """Dependencies first; a service starts once everything it depends on is done, and
        never beside its own proxy (or a service behind it)."""
        names = {s.name for s in self.plan.services}
        results: dict[str, ServiceOutcome] = {}
        pending = list(self.plan.services)
        running: dict[Future[ServiceOutcome], ServicePlan] = {}
        with ThreadPoolExecutor(parallel, thread_name_prefix="docker-swap-up") as pool:
            while pending or running:
                for service in list(pending):
                    blocked = None if service.action == "unchanged" else \
                        self._blocked(service, names, results)
                    if blocked is not None:
                        results[service.name] = outcome_of(service, NOT_REACHED, blocked)
                        pending.remove(service)
                    elif self._may_start(service, names, results, running.values()) and \
                            len(running) < parallel:
                        pending.remove(service)
                        running[self._submit(pool, service, parallel)] = service
                if running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        results[running.pop(future).name] = future.result()
        return [results[s.name] for s in self.plan.services]

    def _may_start(self, service: ServicePlan, names: set[str],
                   results: dict[str, ServiceOutcome],
                   running: Iterable[ServicePlan]) -> bool:
        if not all(d in results for d in service.depends_on if d in names):
            return False
        return not any(_share_a_proxy(service, other) for other in running)

    def _submit(self, pool: ThreadPoolExecutor, service: ServicePlan,
                parallel: int) -> Future[ServiceOutcome]:
        if parallel > 1:
            return pool.submit(self.one, service)
        future: Future[ServiceOutcome] = Future()  # one at a time: in this thread (signals)
        future.set_result(self.one(service))
        return future

    def _blocked(self, service: ServicePlan, names: set[str],
                 results: dict[str, ServiceOutcome]) -> str | None:
        if self.interrupts.stop_requested:
            return STOPPED + " (a signal)"
        stopped = [r.name for r in results.values() if r.outcome in STOPS]
        if stopped:
            return f"{STOPPED} at {stopped[0]}"
        failed = [d for d in service.depends_on if d in names and d in results
                  and results[d].outcome not in FINE]
        return f"not reached: it depends on {failed[0]}, which failed" if failed else None

    def one(self, service: ServicePlan) -> ServiceOutcome:
        """Never raises: whatever a service's turn ends in is its outcome."""
        started = time.monotonic()
        self.observer.service_started(service)
        try:
            outcome = self._act(service)
        except SwapError as exc:
            # A refusal changed nothing (failed, exit 1 for the run); anything else may have:
            # compose may have started or stopped some containers, so it needs attention.
            state = FAILED if exc.exit_code == EXIT_REFUSED else NEEDS_ATTENTION
            outcome = failed_outcome(service, state, exc)
        except Exception as exc:  # a bug: say so, the rest of the run goes on as after a 3
            outcome = failed_outcome(service, NEEDS_ATTENTION, unexpected(exc, service.name))
        finally:
            self.interrupts.hold(HOLD)
        outcome.started, outcome.seconds = started - self.began, time.monotonic() - started
        self.observer.service_finished(outcome)
        return outcome

    def _act(self, service: ServicePlan) -> ServiceOutcome:
        if service.action == "unchanged":
            return outcome_of(service, UNCHANGED, "nothing touched")
        if service.action in ("swap", "replace"):
            return self._rollout(service)
        if service.action == CANARY:
            return self._canary(service)
        if service.action == "scale" and service.name in self.prepared:
            return self._scale(service)
        options = service.options
        timeout = options.timeout if options else DEFAULT_TIMEOUT
        self.compose.converge(service.name, service.replicas, wait=timeout,
                              force_recreate=service.action == "recreate")
        self.touched.add(service.name)
        detail = {"recreate": "compose recreated it", "scale": f"compose scaled it to "
                  f"{service.replicas}"}.get(service.action, "compose started it")
        if self._proxied(service) and service.replicas:
            detail += "; " + self._point(service, self._running(service))
        for behind in self._behind(service.name):  # a proxy that runs now: point it
            detail += f"; {behind.name}: " + self._point(behind, self._running(behind))
        return outcome_of(service, DONE, detail)

    def _rollout(self, service: ServicePlan) -> ServiceOutcome:
        plan = self._fresh(self.prepared[service.name])
        canary = self.promoting.get(service.name)
        rollout = Rollout(service, self.engine, self.compose, plan,
                          lambda label: Labelled(self.observer, f"{service.name} {label}"),
                          self.interrupts, kind=UP if canary is None else PROMOTE,
                          canary=canary)
        result = rollout.run()
        self._record(service, result, [*service.current, *rollout.new_serving] or
                     rollout.attempted, rollout.kind)
        outcome = outcome_of(service, result.outcome, result.detail)
        outcome.batches = result.batches
        if result.error is not None:
            outcome.error, outcome.hint = result.error.message, result.error.hint
        elif self.plan.needs_healthy(service.name):
            self._wait_healthy(service, rollout.serving)
        return outcome

    def _canary(self, service: ServicePlan) -> ServiceOutcome:
        """New containers beside every old one, on the share --canary asks for."""
        plan = self._fresh(self.prepared[service.name])
        swap = canary_swap(plan, self.engine, self.compose,
                           Labelled(self.observer, f"{service.name} canary"), self.interrupts,
                           kind=UP, label="canary")
        try:
            swap.run()
        except SwapError as error:
            self._record_swap(service, swap, error)
            if isinstance(error, DeployFailed):
                return failed_outcome(service, ROLLED_BACK, error)
            raise
        number = self._record_swap(service, swap, None)
        state = started_state(swap, number)
        outcome = outcome_of(service, CANARY_OUTCOME,
                             f"{', '.join(state.containers)} get {state.weighed:.1%} of the "
                             f"requests beside {', '.join(state.old)}; `docker-swap promote "
                             f"{service.name}` rolls it out, `abort` removes it")
        outcome.canary = state
        return outcome

    def _record_swap(self, service: ServicePlan, swap: Swap,
                     error: SwapError | None) -> int | None:
        assert service.options is not None
        recorded = record_release(
            self.engine, self.plan.project.name, service.name, error,
            [u for u in swap.new if isinstance(u, Container)], replaced=service.running,
            phases=swap.phases, keep=service.options.keep, kind=UP, served=swap.switched,
            share=str(service.options.canary or ""),
            counted=counted_at_start(swap) if error is None else ())
        for note in recorded.notes:
            self.observer.note(note)
        return recorded.number

    def _scale(self, service: ServicePlan) -> ServiceOutcome:
        """Behind a proxy, through the sequence: new containers are probed before they join;
        extra ones leave the proxy, drain, then stop."""
        plan = self._fresh(self.prepared[service.name])
        running = list(service.running)
        keep, extra = running[:service.replicas], running[service.replicas:]
        size = max(service.replicas - len(running), 0)
        swap = compose_swap(plan, self.engine, self.compose,
                            Labelled(self.observer, f"{service.name} scale"), self.interrupts,
                            old=extra, staying=keep, size=size, kind=UP, label="scale",
                            hooks=False)
        try:
            result = swap.run()
        except DeployFailed as failed:  # undone: what ran before serves, as it did
            return failed_outcome(service, ROLLED_BACK, failed)
        joined = ", ".join(u.name for u in result.new)
        detail = (f"{joined} joined the proxy" if result.new else
                  f"{', '.join(c.name for c in extra)} left the proxy and were removed")
        return outcome_of(service, DONE, detail)

    def _fresh(self, plan: Plan) -> Plan:
        """The service's preflight, its proxy driver opened again if this run started or
        recreated the proxy (a driver checked before would write into the removed one)."""
        options = plan.options
        if plan.proxy is None or options.proxy is None or \
                options.proxy.service not in self.touched:
            return plan
        driver, _ = connect_proxy(self.engine, plan.project, options, plan.old[0])
        plan.notes = [*plan.notes, *driver.check()]
        plan.proxy = driver
        return plan

    def _record(self, service: ServicePlan, result: RolloutResult,
                new: Sequence[Container], kind: str) -> None:
        """The service's rollout as a release (kind `up`, or `promote`), as a deploy records
        its own: the new containers that serve (or, if none does, those it started)."""
        assert service.options is not None
        served = any(b.outcome == DONE for b in result.batches)
        recorded = record_release(
            self.engine, self.plan.project.name, service.name, result.error, new,
            replaced=service.stale, keep=service.options.keep, kind=kind, served=served)
        for note in recorded.notes:
            self.observer.note(note)

    def _point(self, service: ServicePlan, containers: Sequence[Container]) -> str:
        assert service.options is not None
        if not containers:
            return "nothing of it runs for the proxy to send to"
        try:
            return point_proxy(self.engine, self.plan.project, service.options, containers,
                               self.observer.note)
        except SwapError as exc:
            if exc.exit_code == 2:  # the proxy is not up yet (it starts after): said
                return f"the proxy is not switched yet: {exc.message}"
            raise

    def _behind(self, proxy: str) -> list[ServicePlan]:
        """The services of the plan that `proxy` sends to, and that run."""
        return [s for s in self.plan.services if s.options and s.options.proxy
                and s.options.proxy.service == proxy and self._running(s)]

    def _wait_healthy(self, service: ServicePlan, containers: Sequence[Container]) -> None:
        """A dependent waits with condition service_healthy: Docker must say so too."""
        timeout = service.options.timeout if service.options else DEFAULT_TIMEOUT
        deadline = time.monotonic() + timeout
        for container in containers:
            while container.has_healthcheck and \
                    self.engine.inspect(container.id).health != "healthy":
                if time.monotonic() > deadline:
                    raise NeedsAttention(f"{container.name} runs but is not healthy after "
                                         f"{timeout:g} s; what depends on it was not started.")
                time.sleep(0.2)

    def _proxied(self, service: ServicePlan) -> bool:
        return bool(service.options and service.options.proxy)

    def _running(self, service: ServicePlan) -> list[Container]:
        return [c for c in self.engine.service_containers(self.plan.project.name, service.name)
                if c.running]


def _share_a_proxy(a: ServicePlan, b: ServicePlan) -> bool:
    """One is the other's proxy: they must not change at once (both write its upstream)."""
    def proxy_of(s: ServicePlan) -> str | None:
        return s.options.proxy.service if s.options and s.options.proxy else None

    return proxy_of(a) == b.name or proxy_of(b) == a.name
