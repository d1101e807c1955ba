"""The fault cases and what each must end in: one table, run by test_faults.py and printed into
docs/reliability.md (`python -m tests.faults.cases` prints it, `... --write` puts it there;
test_table.py keeps the two equal).

A case deploys a new version (v2) over the one that serves (v1) through one proxy set-up, stops
the deploy at a failpoint (src/docker_swap/failpoints.py), does its fault there, and lets the
deploy go on. Then `docker-swap recover app`. The outcome is held to the exit codes' rule:

    0   done: the new version serves, nothing of the old is left
    1   the deploy failed: the old version serves and nothing of the new one is left
    2   refused: nothing changed
    3   needs attention: what serves, what is left, and `docker-swap recover app` are named;
        the journal is kept
    -9  killed (SIGKILL): no exit code of its own; the journal is kept, recover resolves it

Any failure after the switch is 0 or 3. Under load, no request fails unless the fault is a proxy
restart (a restarted proxy drops its own connections).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Proxy = Literal["nginx", "haproxy", "registry", "up"]
Version = Literal["v1", "v2", "mixed"]
"""What serves: the old version, the new one, or both (an `up` stopped between batches)."""

KILLED = -9

BEFORE_SWITCH = ("after-start", "ready", "stage", "switch")
AFTER_SWITCH = ("after-switch", "drain", "retire")
POINTS = BEFORE_SWITCH + AFTER_SWITCH

FAULTS = {
    "SIGKILL": "docker-swap killed (SIGKILL)",
    "SIGINT": "Ctrl-C (SIGINT) to docker-swap",
    "SIGTERM": "SIGTERM to docker-swap",
    "proxy-restart": "the proxy container restarted (`docker restart`), then the deploy goes on",
    "proxy-restart-draining": "the proxy container killed while the deploy drains, started 1 s "
                              "later",
    "engine-error": "an Engine API call fails (EngineFailed)",
    "crash": "an unexpected exception (a bug: RuntimeError)",
    "redis-restart": "Redis restarted (`docker restart`), then the deploy goes on",
    "redis-flush": "Redis loses its data (FLUSHDB) while the agents stay connected",
    "agent-kill": "the HAProxy agent killed (SIGKILL)",
    "agent-slow": "the HAProxy agent slower than the switch timeout (paused before it applies)",
    "monitor-death": "the new version exits 3 s after it started, during its batch's monitor",
}
PROXY_FAULTS = ("proxy-restart", "proxy-restart-draining")
IN_FLIGHT_AT_A_CRASH = 6
"""Requests a crashing container of the load may hold at that instant: the 2-second GETs on it
(of 4 connections) and one or two of the quick ones (testbed/load.py's MIXED)."""
"""Faults whose own dropped connections are not counted as failed requests."""

PROXIES: dict[Proxy, str] = {
    "nginx": "nginx 1.30",
    "haproxy": "HAProxy 2.6",
    "registry": "registry: nginx 1.30 + HAProxy 2.6, two agents",
    "up": "`up`, nginx 1.30: 3 replicas, 3 batches of 1",
}
REPLICAS: dict[Proxy, int] = {"nginx": 1, "haproxy": 1, "registry": 1, "up": 3}


@dataclass(frozen=True)
class Case:
    proxy: Proxy
    point: str
    """The failpoint where the fault happens (for agent-slow: the phase it slows)."""
    fault: str
    exits: tuple[int, ...]
    """The exit codes the rule allows here (the first is what a user should expect)."""
    after: Version
    """What serves through the proxy (every proxy) once the deploy has ended."""
    recovered: Version
    """What serves once `docker-swap recover app` has run."""
    resolves: str = "nothing"
    """What recover says it did when the deploy kept its journal (exit 3, or killed)."""
    long_requests: bool = False
    """Send GETs of 4 s to the old version while the deploy is at `ready` (before its fault),
    so that a drain (the deploy's, or recover's) has requests in flight to wait for."""
    fresh: bool = False
    """Run on a stack of its own, as first deployed (what earlier cases left cannot help)."""
    batch: int = 1
    """Which batch the fault lands in (`up`: the point's N-th pass)."""
    failure_action: str = "rollback"
    """update_config.failure_action (`up`)."""
    journal: bool | None = None
    """Whether the journal is kept (None: as the exit code's rule says: for 3 and killed)."""

    @property
    def name(self) -> str:
        where = f"{self.point}-of-batch-{self.batch}" if self.proxy == "up" else self.point
        action = f"-{self.failure_action}" if self.fault == "monitor-death" else ""
        return f"{self.proxy}-{self.fault}{action}-at-{where}"

    @property
    def replicas(self) -> int:
        return REPLICAS[self.proxy]

    def keeps_journal(self, exit_code: int) -> bool:
        """Whether the deploy must keep its journal when it ended with `exit_code`."""
        return self.journal if self.journal is not None else exit_code in (3, KILLED)

    @property
    def drops_connections(self) -> bool:
        return self.fault in PROXY_FAULTS

    @property
    def own_failures(self) -> int:
        """Requests the fault itself may fail: a new version that crashes fails the requests it
        was answering, as it would behind any proxy (each time it crashes: once, or in each of
        the three batches with failure_action continue)."""
        if self.fault != "monitor-death":
            return 0
        crashes = REPLICAS[self.proxy] if self.failure_action == "continue" else 1
        return IN_FLIGHT_AT_A_CRASH * crashes

    def recover_action(self, exit_code: int) -> str:
        """What recover must say after the deploy ended with `exit_code`."""
        return self.resolves if self.keeps_journal(exit_code) else "nothing"

    def sees(self) -> str:
        """What the user sees, for the docs."""
        first, signalled = self.exits[0], self.fault in ("SIGINT", "SIGTERM")
        attention = ("`needs attention: ...` naming what serves, what is left and "
                     "`docker-swap recover app`")
        if first == KILLED:
            return "nothing (the process is gone); the next deploy is refused until `recover`"
        if self.proxy == "up":
            return self._up_sees(signalled)
        if first == 1:
            return (f"`rolled back: interrupted by {self.fault} before the switch completed.`"
                    if signalled else "`rolled back: ...` with the reason and a hint")
        if 3 in self.exits:
            return attention if first == 3 else f"done, or {attention}"
        return (f"`note {self.fault} received: the new version already serves; finishing "
                "drain and retire first.`, then done") if signalled else "done"


    def _up_sees(self, signalled: bool) -> str:
        if signalled and self.point in BEFORE_SWITCH:
            return (f"`app: rolled_back` (interrupted by {self.fault} before the switch "
                    "completed): the batches done go back to the old version too")
        if signalled:
            return (f"`note {self.fault} received: ...`; the batch finishes, no other starts, "
                    "then `app: rolled_back`: the batches done go back to the old version")
        if self.fault == "monitor-death":
            return {"rollback": "`app: rolled_back`, the reason and a hint",
                    "pause": "`app: paused`, what runs which version, and `docker-swap up`",
                    "continue": "`app: paused` (each batch failed and was undone), and "
                                "`docker-swap up`"}[self.failure_action]
        return "done"


def _signals(proxy: Proxy, points: tuple[str, ...],
             interrupts: tuple[str, ...] = ("SIGINT", "SIGTERM")) -> list[Case]:
    cases = []
    for point in points:
        before = point in BEFORE_SWITCH
        # nginx is reloaded and HAProxy set ready only after the `switch` failpoint; the
        # registry's generation is published before it, so the agents apply it.
        published = proxy == "registry" and point == "switch"
        killed_after: Version = "v2" if not before or published else "v1"
        cases.append(Case(proxy, point, "SIGKILL", (KILLED,), killed_after,
                          "v1" if before else "v2", "undone" if before else "finished",
                          long_requests=point == "drain"))
        for name in interrupts:
            cases.append(Case(proxy, point, name, (1,) if before else (0,),
                              "v1" if before else "v2", "v1" if before else "v2"))
    return cases


def _engine_errors(proxy: Proxy, points: tuple[str, ...]) -> list[Case]:
    # The point fails each time it is passed: at `switch`, the rollback's own switch fails
    # too, so the rollback cannot be confirmed (3) and what serves must be kept for recover.
    return [Case(proxy, point, "engine-error", (3,), "v1", "v1", "undone") if point == "switch"
            else Case(proxy, point, "engine-error", (1,), "v1", "v1") if point in BEFORE_SWITCH
            else Case(proxy, point, "engine-error", (0, 3), "v2", "v2", "finished")
            for point in points]


def _proxy_restarts(proxy: Proxy, points: tuple[str, ...]) -> list[Case]:
    # A proxy that is back when the deploy goes on is no reason to fail it. HAProxy restarted
    # at `switch` comes back from its state file, saved before the new servers got their
    # addresses: on a used stack a slot may hold a new container's address by chance (Docker
    # hands out freed addresses again), so that case gets a stack of its own.
    restarts = [Case(proxy, point, "proxy-restart", (0,), "v2", "v2",
                     fresh=proxy == "haproxy" and point == "switch") for point in points]
    return [*restarts, Case(proxy, "drain", "proxy-restart-draining", (0, 3), "v2", "v2",
                            "finished", long_requests=True)]


CASES: tuple[Case, ...] = (
    *_signals("nginx", POINTS),
    *_engine_errors("nginx", POINTS),
    *_proxy_restarts("nginx", POINTS),
    # A bug, before and after the switch: never taken for a rollback, the journal kept.
    Case("nginx", "ready", "crash", (3,), "v1", "v1", "undone"),
    Case("nginx", "drain", "crash", (3,), "v2", "v2", "finished"),
    # HAProxy: the driver's own points (stage, switch, drain), every phase for its restart.
    # (SIGTERM is handled as SIGINT is: nginx's cases cover it at every point.)
    *_signals("haproxy", ("stage", "switch"), ("SIGINT",)),
    Case("haproxy", "drain", "SIGKILL", (KILLED,), "v2", "v2", "finished", long_requests=True),
    *_engine_errors("haproxy", ("stage", "switch", "drain")),
    *_proxy_restarts("haproxy", POINTS),
    # The registry: a deploy killed or failing around the publication; Redis and the agents.
    Case("registry", "switch", "SIGKILL", (KILLED,), "v2", "v1", "undone"),
    Case("registry", "switch", "SIGINT", (1,), "v1", "v1"),
    Case("registry", "drain", "SIGKILL", (KILLED,), "v2", "v2", "finished", long_requests=True),
    Case("registry", "switch", "engine-error", (3,), "v1", "v1", "undone"),
    Case("registry", "ready", "redis-restart", (0,), "v2", "v2"),
    Case("registry", "switch", "redis-restart", (0,), "v2", "v2", long_requests=True),
    Case("registry", "drain", "redis-restart", (0, 3), "v2", "v2", "finished",
         long_requests=True),
    Case("registry", "ready", "redis-flush", (0,), "v2", "v2"),
    Case("registry", "ready", "agent-kill", (1,), "v1", "v1"),
    Case("registry", "drain", "agent-kill", (0, 3), "v2", "v2", "finished", long_requests=True),
    Case("registry", "switch", "agent-slow", (1,), "v1", "v1"),
    # A whole project: the faults at each phase of the second of three batches (the first is
    # done by then), the new version dying in its batch's monitor with each failure_action,
    # the proxy restarted between two batches. After recover, `up` again finishes.
    # (A batch's old containers retire once the next batch's new ones started: killed at
    # batch 2's retire, recover undoes batch 3 and retires what batch 2 left.)
    *(Case("up", point, "SIGKILL", (KILLED,), "mixed", "v2",
           "undone" if point in (*BEFORE_SWITCH, "retire") else "finished", batch=2)
      for point in ("after-start", "ready", "switch", "after-switch", "drain", "retire")),
    Case("up", "ready", "SIGINT", (1,), "v1", "v1", batch=2),
    Case("up", "after-switch", "SIGTERM", (1,), "v1", "v1", batch=2),
    Case("up", "after-start", "monitor-death", (1,), "v1", "v1"),
    Case("up", "after-start", "monitor-death", (3,), "v1", "v1", failure_action="pause",
         journal=False),
    Case("up", "after-start", "monitor-death", (3,), "v1", "v1", failure_action="continue",
         journal=False),
    Case("up", "after-start", "proxy-restart", (0,), "v2", "v2", batch=2),
)


def _fault(case: Case) -> str:
    if case.fault == "monitor-death":
        return f"{case.fault}, failure_action {case.failure_action}"
    return case.fault


def _point(case: Case) -> str:
    return f"{case.point} of batch {case.batch}" if case.proxy == "up" else case.point


def _exits(case: Case) -> str:
    return " or ".join("killed" if code == KILLED else str(code) for code in case.exits)


def _recover(case: Case) -> str:
    then = ", then `up` finishes" if case.proxy == "up" and case.recovered == "v2" and \
        case.exits == (KILLED,) else ""
    if not case.keeps_journal(case.exits[0]):
        return "nothing to do" + then
    if set(case.exits) <= {3, KILLED}:
        return case.resolves + then
    return f"{case.resolves} (after 3); nothing to do (after 0)"


DOC = Path(__file__).parents[2] / "docs" / "reliability.md"
_START, _END = "<!-- cases: generated", "<!-- end of cases -->"


def markdown() -> str:
    """The table of docs/reliability.md."""
    lines = ["| proxy | fault | at | exit | the user sees | serves after | recover "
             "| serves after recover |",
             "|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        lines.append(
            f"| {PROXIES[case.proxy]} | {_fault(case)} | {_point(case)} | {_exits(case)} "
            f"| {case.sees()} | {case.after} | {_recover(case)} | {case.recovered} |"
        )
    return "\n".join(lines) + "\n"


def documented(text: str) -> str:
    """The table as `text` (docs/reliability.md) has it, between its two markers."""
    start = text.index("\n", text.index(_START)) + 1
    return text[start:text.index(_END)]


def write_doc() -> None:
    text = DOC.read_text()
    DOC.write_text(text.replace(documented(text), markdown()))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_doc()
    else:
        print(markdown(), end="")
