"""Named points in a deploy where the fault-injection tests (tests/faults) step in.

Inert unless DOCKER_SWAP_FAILPOINTS names points, e.g. `after-start=pause,retire=error`;
`NAME#N` acts only the N-th time the point is passed (`after-start#2=pause`: in the second
batch of an `up`):

    pause   write NAME.reached in DOCKER_SWAP_FAILPOINT_DIR, then wait (at most
            MAX_PAUSE_SECONDS) until NAME.release appears there. The test kills or signals the
            process, or restarts the proxy, at that very moment, then releases it (or not).
            Leaving, it writes NAME.left: a test that pauses at the same point again removes
            the three files once it sees that one.
    error   raise EngineFailed, as a failed Engine API call would at that point.
    crash   raise RuntimeError, as a bug (an exception docker-swap does not expect) would.

Signals act during a pause as they would at that point of the deploy.

The points, in a deploy's order: after-start, ready (the proxy staged, readiness not waited
yet), stage (inside a driver: new configuration written, not yet checked), switch (inside a
driver: the change made, not yet confirmed), after-switch, drain, retire (the first old
container stopped, not yet removed; in `up`, a batch's retire runs once the next batch's
new containers started, after that batch's start). On a Swarm stack, first: bridge (the
bridges' tasks ready, the proxies not moved yet) and update (the proxies on the bridges,
before Swarm's update); then each service's batch passes the points above (its switch is
the second time `switch` is passed). In `docker-swap agent`: agent-apply (a generation about
to be applied to the agent's proxy).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from docker_swap.errors import EngineFailed

POINTS_ENV = "DOCKER_SWAP_FAILPOINTS"
DIR_ENV = "DOCKER_SWAP_FAILPOINT_DIR"
MAX_PAUSE_SECONDS = 120.0
_POLL_SECONDS = 0.02


_passed: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Act as DOCKER_SWAP_FAILPOINTS says for `name`; nothing when it does not name it."""
    spec = os.environ.get(POINTS_ENV)
    if not spec:
        return
    _passed[name] = _passed.get(name, 0) + 1
    actions = _actions(spec)
    action = actions.get(f"{name}#{_passed[name]}") or actions.get(name)
    if action == "error":
        raise EngineFailed(f"could not complete {name}: simulated Engine API failure "
                           f"(failpoint {name}).")
    if action == "crash":
        raise RuntimeError(f"failpoint {name}: simulated bug")
    if action == "pause":
        _pause(name)


def _actions(spec: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in spec.split(",") if item.strip())
    return {name.strip(): action.strip() for name, _, action in pairs}


def _pause(name: str) -> None:
    folder = Path(os.environ.get(DIR_ENV) or ".")
    (folder / f"{name}.reached").write_text(str(os.getpid()))
    release = folder / f"{name}.release"
    deadline = time.monotonic() + MAX_PAUSE_SECONDS
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
    (folder / f"{name}.left").write_text(str(os.getpid()))
