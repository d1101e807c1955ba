"""`up`: the whole project (or the named services and what they depend on) brought to its
current definition, as `docker compose up -d` would, without failing a request behind a proxy.

    plan      compose's config and hashes, the running containers: one action per service
    refuse    every service it would touch is checked and locked first (exit 2, nothing changed)
    run       dependencies first; each service by its action (swap and replace batch by batch,
              see rollout.py); independent services side by side, at most `parallel` at once
    report    every service's outcome; services that depend on a failed one are not reached

The locks of every service touched are held for the whole run; each swap batch keeps its
journal, so `recover SERVICE` finishes or undoes a batch that was killed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from docker_swap.compose import Compose
from docker_swap.errors import (
    EXIT_NEEDS_ATTENTION,
    EXIT_OK,
    EXIT_ROLLED_BACK,
    NeedsAttention,
    ProxyNotReady,
    SwapError,
)
from docker_swap.models import Container, Project
from docker_swap.observer import Labelled, Observer, SilentObserver
from docker_swap.options import DEFAULT_KEEP, DEFAULT_TIMEOUT, ComposeOptions
from docker_swap.releases.record import UP
from docker_swap.releases.store import record_release
from docker_swap.rollout.batches import DONE, FAILED, PAUSED, BatchResult, Rollout, RolloutResult
from docker_swap.rollout.sequence import DeployReport, backends
from docker_swap.safety.journal import Journal
from docker_swap.targets.compose.plan import ProjectPlan, ServicePlan, read_plan
from docker_swap.targets.compose.preflight import (
    Plan,
    choose_port,
    connect_engine,
    connect_proxy,
    prepare,
    refuse_unfinished,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine

PLANNED, UNCHANGED, NOT_REACHED, NEEDS_ATTENTION = (
    "planned", "unchanged", "not_reached", "needs_attention")
_FINE = (UNCHANGED, DONE)
_STOPS = (PAUSED, NEEDS_ATTENTION)


@dataclass
class ServiceOutcome:
    name: str
    action: str
    reason: str
    outcome: str = PLANNED
    """planned (dry run), unchanged, done, rolled_back, paused, failed, needs_attention,
    not_reached."""
    detail: str = ""
    downtime: str | None = None
    replicas: int = 0
    planned_batches: list[int] = field(default_factory=list)
    """New containers per batch, as planned (swap and replace)."""
    depends_on: list[str] = field(default_factory=list)
    started: float = 0.0
    """Seconds from the start of the run to this service's turn."""
    seconds: float = 0.0
    batches: list[BatchResult] = field(default_factory=list)
    error: str = ""
    hint: str | None = None


@dataclass
class UpReport:
    project: str
    dry_run: bool
    services: list[ServiceOutcome]
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        outcomes = {s.outcome for s in self.services}
        if outcomes & {PAUSED, NEEDS_ATTENTION}:
            return EXIT_NEEDS_ATTENTION
        if outcomes - {PLANNED, UNCHANGED, DONE, NOT_REACHED}:
            return EXIT_ROLLED_BACK
        return EXIT_OK


class UpObserver(Observer, Protocol):
    def service_started(self, service: ServicePlan) -> None: ...

    def service_finished(self, outcome: ServiceOutcome) -> None: ...


class SilentUpObserver(SilentObserver):
    def service_started(self, service: ServicePlan) -> None:
        pass

    def service_finished(self, outcome: ServiceOutcome) -> None:
        pass


def up(
    services: Sequence[str] = (),
    *,
    compose_options: ComposeOptions | None = None,
    dry_run: bool = False,
    parallel: int = 1,
    observer: UpObserver | None = None,
) -> UpReport:
    """Bring the project (or `services` and their dependencies) to its current definition."""
    compose = Compose(compose_options or ComposeOptions())
    with compose.loading_project():
        engine = connect_engine()
        project = compose.load_project()
    plan = read_plan(compose, engine, project, services)
    if dry_run:
        return UpReport(project.name, True, [_outcome(s) for s in plan.services])
    started = time.monotonic()
    locks = Locks(engine, plan)
    with locks:
        run = Run(plan, engine, compose, locks.prepared, observer or SilentUpObserver())
        try:
            outcomes = run.all(max(parallel, 1))
        except KeyboardInterrupt:  # between two steps (a swap handles its own signals)
            raise NeedsAttention(
                "up was interrupted between two steps: the services and batches done so far "
                "run their new version, the others their old one.",
                hint="Run `docker-swap up` again to carry on (`docker-swap recover SERVICE` "
                "first if it says a deploy was interrupted).") from None
    return UpReport(project.name, False, outcomes, time.monotonic() - started)


class Locks:
    """Every service `up` touches, checked and locked before anything changes (as `deploy`'s
    preflight does for swaps); all released at the end."""

    def __init__(self, engine: Engine, plan: ProjectPlan) -> None:
        self.engine, self.plan = engine, plan
        self.prepared: dict[str, Plan] = {}
        self._journals: list[Journal] = []

    def __enter__(self) -> Locks:
        try:
            for service in self.plan.services:
                self._take(service)
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
        if service.action == "swap":
            assert service.options is not None
            self.prepared[service.name] = prepare(self.engine, self.plan.project,
                                                  service.options)
            return
        journal = Journal(self.engine, self.plan.project.name, service.name)
        journal.lock()
        self._journals.append(journal)
        refuse_unfinished(journal, service.name)


class Run:
    def __init__(self, plan: ProjectPlan, engine: Engine, compose: Compose,
                 prepared: dict[str, Plan], observer: UpObserver) -> None:
        self.plan, self.engine, self.compose = plan, engine, compose
        self.prepared, self.observer = prepared, observer
        self.began = time.monotonic()
        self.interrupted = False

    def all(self, parallel: int) -> list[ServiceOutcome]:
        """Dependencies first; a service starts once everything it depends on is done."""
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
                        results[service.name] = _outcome(service, NOT_REACHED, blocked)
                        pending.remove(service)
                    elif all(d in results for d in service.depends_on if d in names) and \
                            len(running) < parallel:
                        pending.remove(service)
                        running[self._submit(pool, service, parallel)] = service
                if running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        results[running.pop(future).name] = future.result()
        return [results[s.name] for s in self.plan.services]

    def _submit(self, pool: ThreadPoolExecutor, service: ServicePlan,
                parallel: int) -> Future[ServiceOutcome]:
        if parallel > 1:
            return pool.submit(self.one, service)
        future: Future[ServiceOutcome] = Future()  # one at a time: in this thread (signals)
        future.set_result(self.one(service))
        return future

    def _blocked(self, service: ServicePlan, names: set[str],
                 results: dict[str, ServiceOutcome]) -> str | None:
        if self.interrupted:
            return "not reached: up was interrupted"
        stopped = [r.name for r in results.values() if r.outcome in _STOPS]
        if stopped:
            return f"not reached: the run stopped at {stopped[0]}"
        failed = [d for d in service.depends_on if d in names and d in results
                  and results[d].outcome not in _FINE]
        return f"not reached: it depends on {failed[0]}, which failed" if failed else None

    def one(self, service: ServicePlan) -> ServiceOutcome:
        started = time.monotonic()
        self.observer.service_started(service)
        try:
            outcome = self._act(service)
        except SwapError as exc:  # compose's stop-then-start failed: the service may be down
            down = isinstance(exc, NeedsAttention) or service.action == "recreate"
            state = NEEDS_ATTENTION if down else FAILED
            outcome = _outcome(service, state, exc.message)
            outcome.error, outcome.hint = exc.message, exc.hint
        outcome.started, outcome.seconds = started - self.began, time.monotonic() - started
        self.observer.service_finished(outcome)
        return outcome

    def _act(self, service: ServicePlan) -> ServiceOutcome:
        if service.action == "unchanged":
            return _outcome(service, UNCHANGED, "nothing touched")
        if service.action in ("swap", "replace"):
            return self._rollout(service)
        options = service.options
        timeout = options.timeout if options else DEFAULT_TIMEOUT
        if service.action == "scale" and self._proxied(service) and \
                service.replicas < len(service.running):
            return self._scale_down(service)
        self.compose.converge(service.name, service.replicas, wait=timeout,
                              force_recreate=service.action == "recreate")
        detail = f"compose {'recreated' if service.action == 'recreate' else 'started'} it"
        if self._proxied(service):
            detail += "; " + self._point_proxy(service, self._running(service))
        for behind in self._behind(service.name):  # a proxy that runs now: point it
            detail += f"; {behind.name}: " + self._point_proxy(behind, self._running(behind))
        return _outcome(service, DONE, detail)

    def _behind(self, proxy: str) -> list[ServicePlan]:
        """The services of the plan that `proxy` sends to, and that run."""
        return [s for s in self.plan.services if s.options and s.options.proxy
                and s.options.proxy.service == proxy and self._running(s)]

    def _rollout(self, service: ServicePlan) -> ServiceOutcome:
        rollout = Rollout(service, self.engine, self.compose, self.prepared.get(service.name),
                          lambda label: Labelled(self.observer, f"{service.name} {label}"))
        result = rollout.run()
        self.interrupted = self.interrupted or rollout.interrupted
        self._record(service, result, rollout.serving)
        outcome = _outcome(service, result.outcome, result.detail)
        outcome.batches = result.batches
        if result.error is not None:
            outcome.error, outcome.hint = result.error.message, result.error.hint
            if isinstance(result.error, NeedsAttention) and result.outcome != PAUSED:
                outcome.outcome = NEEDS_ATTENTION
        elif self.plan.needs_healthy(service.name):
            self._wait_healthy(service, rollout.serving)
        return outcome

    def _record(self, service: ServicePlan, result: RolloutResult,
                serving: Sequence[Container]) -> None:
        """The service's rollout as a release (kind `up`), as a deploy records its own."""
        project = self.plan.project.name
        ended: DeployReport | BaseException = result.error or DeployReport(
            project, service.name, tuple(c.name for c in service.running),
            tuple(c.name for c in serving), (), 0.0)
        recorded = record_release(
            self.engine, project, service.name, ended, serving, replaced=service.running,
            keep=service.options.keep if service.options else DEFAULT_KEEP, kind=UP)
        for note in recorded.notes:
            self.observer.note(note)

    def _scale_down(self, service: ServicePlan) -> ServiceOutcome:
        """Behind a proxy: the proxy leaves the extra containers first, then they stop."""
        keep, extra = service.running[:service.replicas], service.running[service.replicas:]
        detail = self._point_proxy(service, keep)
        for container in extra:
            self.engine.stop(container)
            self.engine.remove(container.id)
        return _outcome(service, DONE, f"{detail}; {', '.join(c.name for c in extra)} removed")

    def _point_proxy(self, service: ServicePlan, containers: Sequence[Container]) -> str:
        assert service.options is not None
        try:
            proxy, network = connect_proxy(self.engine, self.plan.project, service.options,
                                           containers[0])
        except ProxyNotReady as exc:
            return f"the proxy is not switched yet: {exc.message}"
        proxy.check()
        port = choose_port(service.options, containers[0])
        detail = proxy.switch(backends(containers, network, port))
        proxy.drain(service.options.drain_timeout)
        return detail

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
        project: Project = self.plan.project
        return [c for c in self.engine.service_containers(project.name, service.name)
                if c.running]


def _outcome(service: ServicePlan, outcome: str = PLANNED, detail: str = "") -> ServiceOutcome:
    return ServiceOutcome(service.name, service.action, service.reason, outcome, detail,
                          service.downtime, service.replicas, list(service.batches),
                          sorted(service.depends_on))
