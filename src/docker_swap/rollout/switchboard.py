"""The one way docker-swap changes what a proxy serves: point it at these units, confirmed.

Every switch (forward, back, `sync`, `recover`, a scale, a Swarm bridge) goes through here, so
that one rule holds everywhere: the set is checked against the engine (or Swarm) just before
the driver renders it, and a unit that no longer runs is left out with a note. One dead peer
never makes a proxy refuse the whole configuration, and a switch back whose new units all died
still returns the proxy to the old ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from docker_swap.errors import StepFailed
from docker_swap.models import Backend
from docker_swap.proxy import Drained, ProxyDriver
from docker_swap.rollout.weights import Split
from docker_swap.targets.base import Unit


class Units(Protocol):
    """What the switchboard asks of a target about the units it is given."""

    def alive(self, units: Sequence[Unit]) -> list[Unit]: ...

    def backends(self, units: Sequence[Unit]) -> list[Backend]: ...


class NoneRuns(StepFailed):
    """Raised when none of the units a switch names runs any more: the proxy is untouched."""


class Switchboard:
    """A proxy driver, and the target whose units it is pointed at."""

    def __init__(self, driver: ProxyDriver, units: Units, note: Callable[[str], None]) -> None:
        self.driver = driver
        self._units = units
        self._note = note

    @property
    def description(self) -> str:
        return self.driver.description

    def check(self) -> list[str]:
        return self.driver.check()

    def stage(self, new: Sequence[Unit], serving: Sequence[Unit]) -> None:
        serving = self._running(serving, "staged", required=False)
        self.driver.stage(self._units.backends(new), self._units.backends(serving))

    def unstage(self) -> None:
        self.driver.unstage()

    def switch(self, units: Sequence[Unit], split: Split | None = None) -> str:
        """Send every new request to those of `units` that run, confirmed live (weighed as
        `split` says: a canary's share; else all alike)."""
        chosen = self._units.backends(self._running(units, "switch"))
        return self.driver.switch(split.weigh(chosen) if split else chosen)

    def drain(self, timeout: float) -> Drained:
        return self.driver.drain(timeout)

    def point(self, units: Sequence[Unit], drain_timeout: float,
              split: Split | None = None) -> str:
        """Switch, then drain what went elsewhere: the proxy ends on `units` only (sync,
        recover, a scale). A drain cut short is said in the line returned."""
        detail = self.switch(units, split)
        drained = self.drain(drain_timeout)
        return detail if drained.complete else f"{detail}; {drained.detail}"

    def _running(self, units: Sequence[Unit], why: str, *, required: bool = True,
                 ) -> list[Unit]:
        if not units:
            return []
        alive = self._units.alive(units)
        ids = {u.id for u in alive}
        gone = [u.name for u in units if u.id not in ids]
        if gone and alive:
            self._note(f"{', '.join(gone)} no longer run(s): left out of the {why}.")
        elif gone and required:
            raise NoneRuns(f"none of {', '.join(gone)} runs any more, so the proxy cannot be "
                           "sent to them; it is left as it was.")
        return alive
