"""What a stack's rollout knows of each bridged service as it goes, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from docker_swap.engine.swarm import SwarmService, Task
from docker_swap.errors import SwapError
from docker_swap.observer import PhaseResult
from docker_swap.options import DeployOptions
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.targets.swarm.plan import StackStep


@dataclass
class Bridged:
    """One service whose traffic a bridge carries during the update."""

    step: StackStep
    before: SwarmService
    board: Switchboard
    bridge: SwarmService | None = None
    network: str = ""
    port: int = 0
    on_bridge: bool = False
    """The proxies may send to the bridge: a stack-wide rollback switches them back first."""
    published: frozenset[str] = frozenset()
    """The bridge's tasks the proxies were last given (their IDs)."""
    phases: list[PhaseResult] = field(default_factory=list)
    outcome: str = ""
    error: SwapError | None = None
    served: bool = False
    """Its switch to its new tasks completed: the new version served."""
    new: list[Task] = field(default_factory=list)

    @property
    def options(self) -> DeployOptions:
        assert self.step.options is not None  # a bridged step has a proxy, so settings
        return self.step.options


@dataclass(frozen=True)
class StackResult:
    """What a finished rollout did: each bridged service's outcome, phases and new tasks."""

    bridged: tuple[Bridged, ...]
    updated: tuple[str, ...]
    """Every Swarm service whose tasks the update replaced."""
    seconds: float
    notes: tuple[str, ...] = ()
    created: tuple[tuple[StackStep, list[Task]], ...] = ()
    """Proxied services the update created, and the tasks their proxies were given."""


def port_of(options: DeployOptions) -> int:
    assert options.port is not None  # preflight refuses a bridged service without a port
    return options.port
