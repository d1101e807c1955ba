"""How a run ends, service by service and batch by batch, and the one mapping from those endings
to the exit code (the same for `up` on a compose project and on a Swarm stack).

    planned          a dry run: nothing was done
    unchanged        nothing was touched
    done             the service runs its new version (a failure within max_failure_ratio
                     included)
    canary           its new version serves a share of the requests beside the old one,
                     until `docker-swap promote` or `abort` (--canary)
    rolled_back      it failed and every change to it was undone: the old version serves
    failed           compose's own start of it failed, and nothing of it changed
    paused           failure_action pause (or continue, once a batch failed): some containers
                     run the new version, the others the old, all serve
    needs_attention  a rollback, retire or recreate could not finish, or an error nobody
                     expected: the message says what serves and what to run
    not_reached      it depends on a service that did not end done, or the run was stopped
                     (a pause, Ctrl-C or SIGTERM) before its turn

Exit codes: 3 when any service paused, needs attention, or was not reached because the run was
stopped while other services had changed; else 1 when any service rolled back or failed; else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from docker_swap.errors import EXIT_NEEDS_ATTENTION, EXIT_OK, EXIT_ROLLED_BACK, SwapError
from docker_swap.observer import Observer, PhaseResult, SilentObserver
from docker_swap.rollout.reports import CanaryState
from docker_swap.targets.compose.plan import ServicePlan

PLANNED, UNCHANGED, DONE, ROLLED_BACK = "planned", "unchanged", "done", "rolled_back"
FAILED, PAUSED, NEEDS_ATTENTION, NOT_REACHED = "failed", "paused", "needs_attention", \
    "not_reached"
CANARY_OUTCOME = "canary"
FINE = (UNCHANGED, DONE, CANARY_OUTCOME)
"""What a dependant may start after."""
STOPS = (PAUSED, NEEDS_ATTENTION)
"""What stops the whole run."""
STOPPED = "not reached: up was stopped"
"""The detail of a service the run did not reach because it was stopped (not because what it
depends on failed)."""


@dataclass
class BatchResult:
    number: int
    size: int
    outcome: str
    """done, failed (undone), or rolled_back (done, then undone by the service's rollback)."""
    seconds: float
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    error: str = ""
    phases: list[PhaseResult] = field(default_factory=list)
    """Its sequence's phases, in order (start, ready, switch, drain, retire, ...)."""


@dataclass
class ServiceOutcome:
    name: str
    action: str
    reason: str
    outcome: str = PLANNED
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
    canary: CanaryState | None = None
    """The canary it started (outcome canary)."""


@dataclass
class UpReport:
    project: str
    dry_run: bool
    services: list[ServiceOutcome]
    seconds: float = 0.0
    verify: object | None = None
    """What `--verify` saw during the run (a VerifyReport), if it ran."""

    @property
    def exit_code(self) -> int:
        return exit_code(self.services)


def exit_code(services: list[ServiceOutcome]) -> int:
    """The run's exit code from its services' outcomes (see the module's docstring)."""
    outcomes = {s.outcome for s in services}
    stopped = any(s.outcome == NOT_REACHED and s.detail.startswith(STOPPED) for s in services)
    changed = outcomes & {DONE, CANARY_OUTCOME, ROLLED_BACK, FAILED, PAUSED, NEEDS_ATTENTION}
    if outcomes & set(STOPS) or (stopped and outcomes & {DONE, CANARY_OUTCOME}):
        return EXIT_NEEDS_ATTENTION
    if outcomes & {ROLLED_BACK, FAILED} or (stopped and changed):
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


def outcome_of(service: ServicePlan, outcome: str = PLANNED, detail: str = "") -> ServiceOutcome:
    return ServiceOutcome(service.name, service.action, service.reason, outcome, detail,
                          service.downtime, service.replicas, list(service.batches),
                          sorted(service.depends_on))


def failed_outcome(service: ServicePlan, state: str, error: SwapError) -> ServiceOutcome:
    outcome = outcome_of(service, state, error.message)
    outcome.error, outcome.hint = error.message, error.hint
    return outcome
