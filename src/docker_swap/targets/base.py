"""The one small interface between the rollout layer and a target (a compose project on one
engine, or a Swarm stack): what one batch of one service needs from where its containers run.

The rollout layer (rollout/swap.py) owns the order of a batch, its journal, the proxy
switch, hooks, the watch window and the undo; a target only answers the questions below about
its units (containers on one engine, or a stack's tasks), so that every release feature is
written once for both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from docker_swap.errors import StepFailed
from docker_swap.models import Backend, ExecResult


class Unit(Protocol):
    """One container, or one task of a Swarm service: what serves a service's requests."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


class UnitState(Protocol):
    """A unit followed while it starts and is watched: its exit code once it exits, its Docker
    health, and an event set on every change (so that a wait wakes at once)."""

    changed: threading.Event
    exit_code: int | None
    health: str | None

    def close(self) -> None: ...


Progress = Callable[[str], None]
"""Hears where a phase is (the last readiness answer, say); may raise (a signal interrupts)."""


class Batch(Protocol):
    """One batch of one service: `old` units are replaced by `size` new ones, beside `staying`.

    Every method may raise a StepFailed (the sequence undoes what it started) or a SwapError.
    """

    @property
    def service(self) -> str: ...

    @property
    def old(self) -> Sequence[Unit]:
        """The units that serve now and are retired at the end of the batch."""
        ...

    @property
    def staying(self) -> Sequence[Unit]:
        """The units that serve now and keep serving whatever happens."""
        ...

    @property
    def size(self) -> int:
        """How many new units the batch starts."""
        ...

    def start(self) -> list[Unit]:
        """Start the new units (as many as `size`) and return them, started."""
        ...

    def started(self) -> list[Unit]:
        """The new units that exist now (after a start that failed halfway)."""
        ...

    def follow(self, unit: Unit) -> UnitState:
        """Follow a new unit's exit and health from now on."""
        ...

    def ready(self, units: Sequence[Unit], states: Mapping[str, UnitState], deadline: float,
              progress: Progress) -> str:
        """Return once every unit is ready (one line on how that was judged); NotReady,
        ContainerExited or ContainerUnhealthy otherwise."""
        ...

    def run(self, units: Sequence[Unit], argv: Sequence[str],
            timeout: float) -> dict[str, ExecResult | StepFailed]:
        """Run a command (a hook) inside each unit; unit ID to how it ended, or why it could
        not run there."""
        ...

    def logs(self, unit: Unit) -> str:
        """Its last log lines, for a failure message."""
        ...

    def alive(self, units: Sequence[Unit]) -> list[Unit]:
        """Those of `units` that run now, as the engine (or Swarm) says at this moment."""
        ...

    def backends(self, units: Sequence[Unit]) -> list[Backend]:
        """Where a proxy reaches each unit (address and port on the proxy's network)."""
        ...

    def retire(self, units: Sequence[Unit]) -> str:
        """Stop the old units (their own stop signal and grace period) and remove them."""
        ...

    def discard(self, units: Sequence[Unit], *, served: bool) -> None:
        """Remove new units after an undo; `served`: the proxy may have sent them requests,
        so they are stopped gracefully first."""
        ...
