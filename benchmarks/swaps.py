"""N consecutive swaps under load, by docker-swap and by the classic recipe, side by side.

    .venv/bin/python -m benchmarks.swaps --swaps 20 --proxy nginx-1.30 --proxy nginx-1.22 \
        --proxy haproxy-2.6
    .venv/bin/python -m benchmarks.swaps --swaps 20 --proxy caddy-2.11 --method docker-swap \
        --method caddy-admin

Load per swap (as in ../shared/REFERENCE.md): wrk keep-alive GETs (32 connections, ~1,000/s),
2-second GETs (4), POSTs (8), plus GETs that close their connection (4). The app listens 1 s
after it starts and answers 503 for 2 s more while it warms up; it dies at once on SIGTERM.
Each swap runs inside its own load window. The classic recipe is nginx's; HAProxy rows are
docker-swap's only.

Per swap it prints failed requests by kind and by client, the swap's wall time, the new
container's own time to readiness (engine create -> the app's "warm" log line), the drain
(waiting for requests in flight), the tool's overhead (wall - readiness - drain; and the same
counted from the swap's first change, without process start-up and preflight), keep-alive GET
latency p50/p99, and docker-swap's phases; then one summary row per method and proxy, and
where docker-swap's time goes. `--idle` swaps without load, to show that breakdown on a machine
at rest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from testbed import images
from testbed.agents import Agents
from testbed.load import CLOSING_GETS, KEEPALIVE_GETS, MIXED, Load, Result
from testbed.stack import (
    CADDYFILE,
    HAPROXY_CFG,
    NGINX_HTTP,
    Stack,
    caddy_compose,
    docker,
    haproxy_compose,
    http_compose,
    registry_compose,
)

from .caddy_admin import CADDYFILE_ADMIN, admin_swap, pin
from .classic import NGINX_CLASSIC, classic_swap
from .rollout import NGINX_ROLLOUT, rollout_compose, rollout_swap

WINDOW_SECONDS = 12  # load per swap; a swap takes about 5 s with this app
CLIENTS = (*MIXED, CLOSING_GETS)
SETTLE_SECONDS = 1.5
BASELINE_SECONDS = 6


@dataclass(frozen=True)
class Timing:
    """What one method reports of one swap."""

    wall: float
    """The command's wall time, process start to exit."""
    swap: float
    """From the first change (compose starts a container) to the end; preflight excluded."""
    drain: float
    phases: tuple[tuple[str, float], ...] = ()
    """docker-swap's own report: each phase and its seconds."""

    @property
    def shown(self) -> str:
        return " ".join(f"{name} {seconds:.2f}" for name, seconds in self.phases)


@dataclass(frozen=True)
class Swap:
    results: list[Result]
    timing: Timing
    readiness: float

    @property
    def wall(self) -> float:
        return self.timing.wall

    @property
    def overhead(self) -> float:
        """What the tool adds to the container's own start-up and the requests in flight."""
        return self.timing.wall - self.readiness - self.timing.drain

    @property
    def swap_overhead(self) -> float:
        """The same, counted from the first change (process start and preflight excluded)."""
        return self.timing.swap - self.readiness - self.timing.drain

    def failed(self, kind: str) -> int:
        return sum(getattr(r, kind) for r in self.results)

    def failed_by_client(self) -> list[int]:
        """Per kind of client (several proxies under load: summed)."""
        return [sum(r.failed for r in self.results if r.client == c) for c in CLIENTS]

    @property
    def failed_total(self) -> int:
        return sum(r.failed for r in self.results)

    def latency(self) -> tuple[float, float]:
        """Keep-alive GETs through the first proxy (none without load)."""
        keepalive = next((r for r in self.results if r.client == KEEPALIVE_GETS), None)
        return (keepalive.p50_ms, keepalive.p99_ms) if keepalive else (0.0, 0.0)


KINDS = ("non_2xx", "read", "write", "connect", "timeout")


def docker_swap(stack: Stack, version: str, *flags: str) -> Timing:
    started = time.monotonic()
    report = stack.swap_json("deploy", "app", *flags, env={"APP_VERSION": version})
    wall = time.monotonic() - started
    if report["exit_code"] != 0:
        raise SystemExit(f"docker-swap failed: {report}")
    phases = tuple((p["name"], float(p["seconds"])) for p in report["phases"])
    return Timing(wall, float(report["seconds"]), dict(phases)["drain"], phases)


def docker_swap_http(stack: Stack, version: str) -> Timing:
    return docker_swap(stack, version, "--http", "/healthz")


def run_classic(stack: Stack, version: str) -> Timing:
    wall = classic_swap(stack, version)
    return Timing(wall, wall, 0.0)


def run_caddy_admin(stack: Stack, version: str) -> Timing:
    wall = admin_swap(stack, version)
    return Timing(wall, wall, 0.0)


def run_rollout(stack: Stack, version: str) -> Timing:
    wall = rollout_swap(stack, version)
    return Timing(wall, wall, 0.0)


METHODS: dict[str, Callable[[Stack, str], Timing]] = {
    "docker-swap": docker_swap,  # the same health command as the classic recipe
    "docker-swap-http": docker_swap_http,  # its own HTTP probe
    "classic": run_classic,
    "docker-rollout": run_rollout,  # its v0.13 sequence, nginx re-resolving Docker's DNS
    "caddy-admin": run_caddy_admin,  # the same sequence, switched by Caddy's admin API
}


def readiness(stack: Stack) -> float:
    """The new container's own time to readiness: engine create -> the app's "warm" line."""
    (container,) = stack.containers("app")
    created = docker("inspect", "-f", "{{.Created}}", container["ID"]).stdout.strip()
    logs = docker("logs", container["ID"]).stdout
    warm = next(float(line.split()[0]) for line in logs.splitlines() if line.endswith(" warm"))
    return warm - _timestamp(created)


def _timestamp(rfc3339: str) -> float:
    whole, _, rest = rfc3339.rstrip("Z").partition(".")
    fraction = float(f"0.{rest[:9]}") if rest else 0.0
    return datetime.fromisoformat(whole + "+00:00").timestamp() + fraction


PROXIES = ("nginx-1.30", "nginx-1.22", "haproxy-2.6", "caddy-2.11", "registry")
"""registry: nginx 1.30 and HAProxy 2.6, each kept in line by an agent; load on both."""


def make_stack(method: str, proxy: str, folder: Path) -> Stack:
    if proxy == "registry":
        return Stack(folder / f"{method}-{proxy}", registry_compose())
    if proxy.startswith("haproxy"):
        return Stack(folder / f"{method}-{proxy}", haproxy_compose(), HAPROXY_CFG)
    if proxy.startswith("caddy"):
        conf = CADDYFILE_ADMIN if method == "caddy-admin" else CADDYFILE
        return Stack(folder / f"{method}-{proxy}", caddy_compose(), conf)
    nginx = proxy.removeprefix("nginx-")
    if method == "docker-rollout":
        return Stack(folder / f"{method}-{proxy}", rollout_compose(nginx), NGINX_ROLLOUT)
    conf = NGINX_CLASSIC if method == "classic" else NGINX_HTTP
    return Stack(folder / f"{method}-{proxy}", http_compose(nginx), conf)


def run(method: str, proxy: str, swaps: int, folder: Path,
        idle: bool = False) -> tuple[list[Swap], Result | None]:
    stack = make_stack(method, proxy, folder)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state"), "LISTEN_DELAY": "1",
                 "WARMUP": "2"}
    swap = METHODS[method]
    agents = Agents(stack, folder)
    stack.up()
    try:
        if proxy == "registry":
            stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
            agents.start_both_and_sync()
        elif method.startswith("docker-swap"):
            stack.swap("sync", "app")
        elif method == "caddy-admin":
            pin(stack)
        stack.wait_serving("v1")
        urls = [stack.url(p) for p in (("proxy", "haproxy") if proxy == "registry" else
                                       ("proxy",))]
        baseline = None
        if not idle:
            with Load(urls[0], CLIENTS, BASELINE_SECONDS) as load:
                baseline = next(r for r in load.results() if r.client == KEEPALIVE_GETS)
        measured = []
        for number in range(1, swaps + 1):
            measured.append(one_swap(stack, [] if idle else urls, swap, f"v{number + 1}"))
            print(f"  {method:<16} {proxy:<11} swap {number:>2}: {describe(measured[-1])}",
                  flush=True)
        return measured, baseline
    finally:
        agents.stop_all()
        stack.down()


def one_swap(stack: Stack, urls: Sequence[str], swap: Callable[[Stack, str], Timing],
             version: str) -> Swap:
    with ExitStack() as loads:
        started = [loads.enter_context(Load(url, CLIENTS, WINDOW_SECONDS)) for url in urls]
        time.sleep(SETTLE_SECONDS if urls else 0)
        timing = swap(stack, version)
        if SETTLE_SECONDS + timing.wall > WINDOW_SECONDS - 1:
            print(f"  (the swap took {timing.wall:.1f} s: longer than its load window)")
        results = [result for load in started for result in load.results()]
    return Swap(results, timing, readiness(stack))


def describe(swap: Swap) -> str:
    kinds = ", ".join(f"{k} {swap.failed(k)}" for k in KINDS)
    kinds += "; by client " + "/".join(map(str, swap.failed_by_client()))
    p50, p99 = swap.latency()
    return (f"failed {swap.failed_total:>5} ({kinds}); wall {swap.wall:5.2f} s, "
            f"readiness {swap.readiness:4.2f} s, drain {swap.timing.drain:4.2f} s, "
            f"overhead {swap.overhead:5.2f} s (from the first change {swap.swap_overhead:4.2f} s);"
            f" p50/p99 {p50:.0f}/{p99:.0f} ms {swap.timing.shown}")


@dataclass(frozen=True)
class Row:
    method: str
    proxy: str
    swaps: int
    requests: int
    failed: int
    by_kind: dict[str, int]
    by_client: list[int]
    median_wall: float
    median_overhead: float
    median_swap_overhead: float
    median_readiness: float
    p50_before: float
    p99_before: float
    p50_during: float
    p99_during: float
    p99_during_max: float


def summary(method: str, proxy: str, swaps: Sequence[Swap], baseline: Result) -> Row:
    p99s = [s.latency()[1] for s in swaps]
    return Row(
        method=method, proxy=proxy, swaps=len(swaps),
        requests=sum(sum(r.requests for r in s.results) for s in swaps),
        failed=sum(s.failed_total for s in swaps),
        by_kind={k: sum(s.failed(k) for s in swaps) for k in KINDS},
        by_client=[sum(c) for c in zip(*(s.failed_by_client() for s in swaps), strict=True)],
        median_wall=statistics.median(s.wall for s in swaps),
        median_overhead=statistics.median(s.overhead for s in swaps),
        median_swap_overhead=statistics.median(s.swap_overhead for s in swaps),
        median_readiness=statistics.median(s.readiness for s in swaps),
        p50_before=baseline.p50_ms, p99_before=baseline.p99_ms,
        p50_during=statistics.median(s.latency()[0] for s in swaps),
        p99_during=statistics.median(p99s), p99_during_max=max(p99s),
    )


def table(rows: Sequence[Row]) -> str:
    head = ("| method | proxy | swaps | requests | failed | non-2xx | read | write | connect | "
            "timeout | failed by client: keep-alive GET / slow GET / POST / GET+close | "
            "median swap s | median overhead s (from the first change) | "
            "p50/p99 before ms | p50/p99 during ms (median, worst p99) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        kinds = " | ".join(str(r.by_kind[k]) for k in KINDS)
        lines.append(
            f"| {r.method} | {r.proxy} | {r.swaps} | {r.requests} | {r.failed} | {kinds} | "
            f"{' / '.join(map(str, r.by_client))} | {r.median_wall:.2f} | "
            f"{r.median_overhead:.2f} ({r.median_swap_overhead:.2f}) | "
            f"{r.p50_before:.0f}/{r.p99_before:.0f} | "
            f"{r.p50_during:.0f}/{r.p99_during:.0f}, {r.p99_during_max:.0f} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Breakdown:
    """Where a method's swap time goes (medians, seconds); phases are docker-swap's own."""

    method: str
    proxy: str
    wall: float
    readiness: float
    drain: float
    overhead: float
    swap_overhead: float
    before_first_change: float
    """Process start-up and preflight (and exit): wall time minus the report's total."""
    phases: dict[str, float]


def breakdown(method: str, proxy: str, swaps: Sequence[Swap]) -> Breakdown:
    def median(values: Sequence[float]) -> float:
        return statistics.median(values) if values else 0.0

    names = [name for name, _ in swaps[0].timing.phases]
    return Breakdown(
        method=method, proxy=proxy,
        wall=median([s.wall for s in swaps]),
        readiness=median([s.readiness for s in swaps]),
        drain=median([s.timing.drain for s in swaps]),
        overhead=median([s.overhead for s in swaps]),
        swap_overhead=median([s.swap_overhead for s in swaps]),
        before_first_change=median([s.wall - s.timing.swap for s in swaps]),
        phases={n: median([dict(s.timing.phases)[n] for s in swaps]) for n in names},
    )


def breakdown_table(rows: Sequence[Breakdown]) -> str:
    head = ("| method | proxy | wall s | readiness s | drain s | overhead s | from the first "
            "change s | start-up and preflight s | start s | ready s | switch s | retire s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        phases = " | ".join(f"{r.phases.get(n, 0.0):.2f}"
                            for n in ("start", "ready", "switch", "retire"))
        lines.append(
            f"| {r.method} | {r.proxy} | {r.wall:.2f} | {r.readiness:.2f} | {r.drain:.2f} | "
            f"{r.overhead:.2f} | {r.swap_overhead:.2f} | {r.before_first_change:.2f} | "
            f"{phases} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--proxy", action="append", choices=PROXIES)
    parser.add_argument("--method", action="append", choices=sorted(METHODS))
    parser.add_argument("--json", type=Path, help="also write the summary rows to this file")
    parser.add_argument("--idle", action="store_true",
                        help="swap without load: where the time goes on a machine at rest "
                        "(prints the time breakdown only)")
    args = parser.parse_args()
    images.build_all()
    rows, times = [], []
    with tempfile.TemporaryDirectory(prefix="docker-swap-bench-") as folder:
        for proxy in args.proxy or PROXIES:
            for method in args.method or ["docker-swap", "classic"]:
                if method in ("classic", "docker-rollout") and not proxy.startswith("nginx"):
                    continue  # their nginx set-ups
                if method == "caddy-admin" and not proxy.startswith("caddy"):
                    continue  # Caddy's own way to switch
                if method == "docker-swap-http" and proxy == "registry":
                    continue  # readiness is the deploying side's: the same as with nginx
                swaps, baseline = run(method, proxy, args.swaps, Path(folder), args.idle)
                if baseline:
                    rows.append(summary(method, proxy, swaps, baseline))
                if swaps[0].timing.phases:
                    times.append(breakdown(method, proxy, swaps))
    if rows:
        print()
        print(table(rows))
    if times:
        print()
        print(breakdown_table(times))
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(row) for row in rows],
                                         "breakdown": [asdict(t) for t in times]}, indent=2))


if __name__ == "__main__":
    main()
