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


def watch_release(
    states: Mapping[str, ContainerState], seconds: float, counter: CountsAnswers | None,
    max_error_rate: float | None, tick: Callable[[str], None],
) -> str:
    """Return once `seconds` passed with every new container healthy; raise ReleaseFailed.

    `tick` hears progress (and may raise: a signal interrupts the window)."""
    deadline = time.monotonic() + seconds
    judged = counter if max_error_rate is not None else None
    baseline = (judged.answers() if judged else None) or (0, 0)
    errors = answers = 0
    while True:
        for name, state in states.items():
            _raise_if_failed(name, state)
        if judged is not None and max_error_rate is not None:
            now = judged.answers() or baseline
            errors, answers = max(now[0] - baseline[0], 0), max(now[1] - baseline[1], 0)
            if answers >= MIN_ANSWERS and errors / answers > max_error_rate:
                raise ReleaseFailed(
                    f"the new containers answered {errors} of {answers} requests with 5xx "
                    f"({errors / answers:.1%}) during the watch window, more than "
                    f"{max_error_rate:.1%}.",
                    hint="The old containers serve again; see the new version's logs.")
        left = deadline - time.monotonic()
        if left <= 0:
            break
        tick(f"{left:.0f}s left" + (f"; 5xx {errors} of {answers}" if judged else ""))
        time.sleep(min(_POLL_SECONDS, left))
    counted = f"; 5xx {errors} of {answers} answers" if judged else ""
    return f"{len(states)} new container(s) ran {seconds:g}s without failing{counted}"


def _raise_if_failed(name: str, state: ContainerState) -> None:
    if state.exit_code is not None:
        raise ReleaseFailed(
            f"{name} exited with code {state.exit_code} during the watch window.",
            container=name, hint="The old containers serve again; its last log lines are below.")
    if state.health == "unhealthy":
        raise ReleaseFailed(f"Docker reports {name} unhealthy during the watch window.",
                            container=name,
                            hint="The old containers serve again; its last log lines are below.")
