"""The watch window: after the switch, the old containers wait, running and out of the proxy,
while the new ones prove themselves under real traffic.

The new containers fail the window when one exits or Docker turns it unhealthy (the engine's
events, as during readiness), or, where the proxy counts answers (HAProxy), when their share
of 5xx answers since the switch passes the maximum error rate. The swap then switches back to
the very same old containers; after a clean window it retires them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from docker_swap.errors import ReleaseFailed
from docker_swap.proxy.base import CountsAnswers
from docker_swap.targets.readiness import ContainerState

MIN_ANSWERS = 20
"""Answers needed before an error rate is judged: a single 500 out of three is no signal."""
_POLL_SECONDS = 0.2


class Watcher:
    """Judges new containers as the window goes: `check()` raises ReleaseFailed when one
    exited or turned unhealthy, or (with `max_error_rate` and a counter) when their share of
    5xx answers since the watcher was made passes it."""

    def __init__(self, states: Mapping[str, ContainerState], counter: CountsAnswers | None,
                 max_error_rate: float | None, *, during: str = "the watch window",
                 then: str = "The old containers serve again") -> None:
        self.states, self.max_error_rate = states, max_error_rate
        self.counter = counter if max_error_rate is not None else None
        self.during, self.then = during, then
        self._baseline = (self.counter.answers() if self.counter else None) or (0, 0)
        self.errors = self.answers = 0

    @property
    def counted(self) -> bool:
        return self.counter is not None

    def check(self) -> None:
        for name, state in self.states.items():
            _raise_if_failed(name, state, self.during, self.then)
        if self.counter is None or self.max_error_rate is None:
            return
        now = self.counter.answers() or self._baseline
        self.errors = max(now[0] - self._baseline[0], 0)
        self.answers = max(now[1] - self._baseline[1], 0)
        if self.answers >= MIN_ANSWERS and self.errors / self.answers > self.max_error_rate:
            raise ReleaseFailed(
                f"the new containers answered {self.errors} of {self.answers} requests with "
                f"5xx ({self.errors / self.answers:.1%}) during {self.during}, more than "
                f"{self.max_error_rate:.1%}.",
                hint=f"{self.then}; see the new version's logs.")

    def summary(self) -> str:
        return f"; 5xx {self.errors} of {self.answers} answers" if self.counted else ""


def watch_release(
    states: Mapping[str, ContainerState], seconds: float, counter: CountsAnswers | None,
    max_error_rate: float | None, tick: Callable[[str], None],
) -> str:
    """Return once `seconds` passed with every new container healthy; raise ReleaseFailed.

    `tick` hears progress (and may raise: a signal interrupts the window)."""
    deadline = time.monotonic() + seconds
    watcher = Watcher(states, counter, max_error_rate)
    while True:
        watcher.check()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        tick(f"{left:.0f}s left" + (f"; 5xx {watcher.errors} of {watcher.answers}"
                                    if watcher.counted else ""))
        time.sleep(min(_POLL_SECONDS, left))
    return f"{len(states)} new container(s) ran {seconds:g}s without failing{watcher.summary()}"


def _raise_if_failed(name: str, state: ContainerState, during: str, then: str) -> None:
    if state.exit_code is not None:
        raise ReleaseFailed(f"{name} exited with code {state.exit_code} during {during}.",
                            container=name, hint=f"{then}; its last log lines are below.")
    if state.health == "unhealthy":
        raise ReleaseFailed(f"Docker reports {name} unhealthy during {during}.",
                            container=name, hint=f"{then}; its last log lines are below.")
