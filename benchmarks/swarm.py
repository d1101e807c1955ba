"""Rolling updates of a Swarm service under load, on the Swarm test bed: three nodes on this
machine (testbed/swarm.py), the app's 6 replicas over them, HAProxy 2.6 on the two edge nodes.

    .venv/bin/python -m benchmarks.swarm --rounds 5
    .venv/bin/python -m benchmarks.swarm --rounds 5 --method swarm-start-first --json out.json

Method docker-swap: the stack of `agent_compose` (HAProxy with its runtime API, an agent beside
each proxy, Redis), the same app with the same update_config; each round changes the app's
VERSION in the file and runs `docker-swap up`.

Method swarm-start-first: the baseline stack (testbed/swarm_stack.py `baseline_compose`:
HAProxy follows the app's tasks by Docker's DNS, tasks.app, with health checks: the usual way
with Swarm), updated by Swarm itself, `docker service update --update-order start-first
--update-parallelism 2 --env-add VERSION=vN STACK_app`, which returns once the update completed.

The app is the one of the single-host benchmarks: it listens 1 s after it starts, answers 503
for 2 s more while it warms up (its healthcheck with it), and dies at once on SIGTERM. Load (as
benchmarks/swaps.py): keep-alive GETs (32 connections, ~1,000/s), 2-second GETs (4), POSTs (8),
GETs that close their connection (4), on each proxy, from a moment before the update until the
proxies can have settled after it (12 s for HAProxy following DNS: DNS_SETTLE_SECONDS). Per
round: requests, failed (wrk's count: non-2xx answers and socket errors) by kind and by client,
the update's wall time; then one summary row per method.

Another method is a `Method`: the stack to deploy, what to do once it runs, and a callable that
performs one update; `measure(update, proxies)` is the measurement of any of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from testbed.load import CLOSING_GETS, KEEPALIVE_GETS, MIXED, Load, Result
from testbed.swarm import Swarm, write_stack
from testbed.swarm_stack import (
    EDGE_LABEL,
    REDIS_PASSWORD,
    REDIS_PORT,
    REPLICAS,
    agent_compose,
    app_service,
    baseline_compose,
    proxy_url,
    start_testbed,
    wait_serving,
)

CLIENTS = (*MIXED, CLOSING_GETS)
SETTLE_SECONDS = 1.5
"""Load before the update starts, and (by default) after it ended."""
DNS_SETTLE_SECONDS = 12.0
"""Load after Swarm's update ended, for the proxies that follow DNS: the old tasks of the last
batch are removed seconds after `service update` returns, and HAProxy keeps sending to an
address tasks.app no longer has until its health checks fail (a connection to a task that is
gone hangs 3 s on the overlay, then "no route to host") or `hold obsolete 10s` drops it. Those
failures are the update's; without this window they would land in the next round."""
LONGEST_ROUND = 600
"""wrk's duration: a bound only, each round's load is stopped once its update is done."""
KINDS = ("non_2xx", "read", "write", "connect", "timeout")


@dataclass(frozen=True)
class Round:
    """What the clients of every proxy saw during one update, and how long it took."""

    results: list[Result]
    wall: float

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)

    def failed_as(self, kind: str) -> int:
        return sum(getattr(r, kind) for r in self.results)

    def failed_by_client(self) -> list[int]:
        """Per kind of client, summed over the proxies."""
        return [sum(r.failed for r in self.results if r.client == c) for c in CLIENTS]

    def latency(self) -> tuple[float, float]:
        """Keep-alive GETs through the first proxy: p50, p99 (ms)."""
        keepalive = next(r for r in self.results if r.client == KEEPALIVE_GETS)
        return keepalive.p50_ms, keepalive.p99_ms


def measure(update: Callable[[], None], proxies: Sequence[str], *,
            before: float = SETTLE_SECONDS, after: float = SETTLE_SECONDS) -> Round:
    """Load every proxy URL (CLIENTS each), run `update` (it returns once the update is done),
    keep the load `before` seconds before it and `after` seconds after it, and return what the
    clients saw and the update's wall time."""
    with ExitStack() as loads:
        started = [loads.enter_context(Load(url, CLIENTS, LONGEST_ROUND)) for url in proxies]
        time.sleep(before)
        begun = time.monotonic()
        update()
        wall = time.monotonic() - begun
        time.sleep(after)
        results = [result for load in started for result in load.stop()]
    return Round(results, wall)


@dataclass(frozen=True)
class Method:
    """One way to update the app of a stack deployed on the swarm."""

    compose: Callable[[str], dict[str, Any]]
    """The stack, given the name it is deployed as."""
    update: Callable[[Swarm, str, str, Path], None]
    """Update the stack's app to a version (swarm, stack, "v2", the stack's folder); return
    once it is done."""
    prepare: Callable[[Swarm, str, Path], None] = field(
        default=lambda swarm, stack, folder: None)
    """Once the stack's tasks run, before its proxies are expected to serve v1 and the first
    round (agents to wait for, a first `up`, ...)."""
    after: float = SETTLE_SECONDS
    """Seconds of load after `update` returned: until the proxies can have settled."""


def swarm_start_first(swarm: Swarm, stack: str, version: str, folder: Path) -> None:
    """Swarm's own rolling update, start-first, two tasks at a time."""
    service = app_service(stack)
    swarm.docker("service", "update", "--quiet", "--update-order", "start-first",
                 "--update-parallelism", "2", "--env-add", f"VERSION={version}", service,
                 timeout=600)
    state = swarm.docker("service", "inspect", "--format", "{{.UpdateStatus.State}}",
                         service).stdout.strip()
    if state != "completed":
        raise SystemExit(f"{service}: the update ended {state!r}, not completed")


def docker_swap_up(swarm: Swarm, stack: str, version: str, folder: Path) -> None:
    """docker-swap: the file changed (the app's VERSION), then `docker-swap up`, which bridges
    the app, lets Swarm update it (start-first, two at a time, as the file says), and moves
    the proxies back. Its phases, from `up --json`, are printed before the round's line."""
    write_stack(agent_compose(stack, version=version), folder)
    report = json.loads(_docker_swap(swarm, stack, folder, "up", "--json", "--resolve-image",
                                     "never"))
    print(f"    phases: {phases(report)}", flush=True)


def phases(report: dict[str, Any]) -> str:
    """Each swapped service's phases from `up --json`: `app: bridge 7.8s, to-bridge 3.1s`..."""
    return "; ".join(
        f"{service['name']}: " + ", ".join(f"{p['name']} {p['seconds']:.1f}s"
                                          for p in batch["phases"])
        for service in report["services"] for batch in service["batches"])


def docker_swap_adopt(swarm: Swarm, stack: str, folder: Path) -> None:
    """Before the first round: the agents registered, and a first `up` (no release of the app
    yet) so that the proxies follow the registry."""
    deadline = time.monotonic() + 60
    while "(busy, generation" not in _docker_swap(swarm, stack, folder, "doctor", check=False):
        if time.monotonic() > deadline:
            raise SystemExit("the agents did not register within 60 s")
        time.sleep(1)
    _docker_swap(swarm, stack, folder, "up", "--resolve-image", "never")


def _docker_swap(swarm: Swarm, stack: str, folder: Path, *args: str, check: bool = True) -> str:
    redis = f"redis://:{REDIS_PASSWORD}@{swarm.manager.ip}:{REDIS_PORT}/0"
    done = subprocess.run(
        [sys.executable, "-m", "docker_swap", "-p", stack, "-f", str(folder / "compose.yaml"),
         *args], env={**swarm.env(), "DOCKER_SWAP_REDIS_URL": redis}, capture_output=True,
        text=True, timeout=600, check=False)
    if check and done.returncode:
        raise SystemExit(f"docker-swap {args[0]} exited {done.returncode}: {done.stderr}")
    return done.stdout


METHODS: dict[str, Method] = {
    "swarm-start-first": Method(lambda stack: baseline_compose(), swarm_start_first,
                                after=DNS_SETTLE_SECONDS),
    "docker-swap": Method(agent_compose, docker_swap_up, prepare=docker_swap_adopt),
}


def run(swarm: Swarm, name: str, rounds: int, folder: Path) -> list[Round]:
    method, stack = METHODS[name], name.replace("-", "")
    swarm.stack_deploy(write_stack(method.compose(stack), folder / stack), stack)
    try:
        swarm.wait_tasks(app_service(stack), REPLICAS)
        urls = [proxy_url(node.ip) for node in swarm.labelled(*EDGE_LABEL)]
        method.prepare(swarm, stack, folder / stack)  # (docker-swap: the proxies follow it)
        for url in urls:
            wait_serving(url, "v1", timeout=60)
        measured = []
        for number in range(1, rounds + 1):
            version = f"v{number + 1}"
            measured.append(measure(partial(method.update, swarm, stack, version,
                                            folder / stack), urls, after=method.after))
            print(f"  {name:<18} round {number:>2}: {describe(measured[-1])}", flush=True)
            for url in urls:
                wait_serving(url, version)  # the next round starts from the new version
        return measured
    finally:
        swarm.stack_rm(stack)


def describe(measured: Round) -> str:
    kinds = ", ".join(f"{k} {measured.failed_as(k)}" for k in KINDS)
    by_client = "/".join(map(str, measured.failed_by_client()))
    p50, p99 = measured.latency()
    return (f"{measured.requests:>6} requests, failed {measured.failed:>5} ({kinds}; by client "
            f"{by_client}); wall {measured.wall:5.2f} s; p50/p99 {p50:.0f}/{p99:.0f} ms")


@dataclass(frozen=True)
class Row:
    method: str
    rounds: int
    requests: int
    failed: int
    by_kind: dict[str, int]
    by_client: list[int]
    median_wall: float
    p50_during: float
    p99_during: float


def summary(name: str, measured: Sequence[Round]) -> Row:
    return Row(
        method=name, rounds=len(measured),
        requests=sum(r.requests for r in measured), failed=sum(r.failed for r in measured),
        by_kind={k: sum(r.failed_as(k) for r in measured) for k in KINDS},
        by_client=[sum(c) for c in zip(*(r.failed_by_client() for r in measured), strict=True)],
        median_wall=statistics.median(r.wall for r in measured),
        p50_during=statistics.median(r.latency()[0] for r in measured),
        p99_during=statistics.median(r.latency()[1] for r in measured),
    )


def table(rows: Sequence[Row]) -> str:
    head = ("| method | rounds | requests | failed | non-2xx | read | write | connect | timeout | "
            "failed by client: keep-alive GET / slow GET / POST / GET+close | median update s | "
            "p50/p99 during ms (median) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        kinds = " | ".join(str(r.by_kind[k]) for k in KINDS)
        lines.append(f"| {r.method} | {r.rounds} | {r.requests} | {r.failed} | {kinds} | "
                     f"{' / '.join(map(str, r.by_client))} | {r.median_wall:.2f} | "
                     f"{r.p50_during:.0f}/{r.p99_during:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--method", action="append", choices=sorted(METHODS))
    parser.add_argument("--json", type=Path, help="also write the summary rows to this file")
    args = parser.parse_args()
    rows = []
    started = time.monotonic()
    swarm = start_testbed(nodes=3)
    print(f"swarm of 3 nodes started in {swarm.started_in:.1f} s, ready with its images in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="docker-swap-swarm-bench-") as folder:
            for name in args.method or sorted(METHODS):
                rows.append(summary(name, run(swarm, name, args.rounds, Path(folder))))
    finally:
        swarm.teardown()
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(row) for row in rows]}, indent=2))


if __name__ == "__main__":
    main()
