"""Canary releases under load on every proxy: the share asked for beside the share measured,
and the failed requests of the start, of promote and of abort.

    .venv/bin/python -m benchmarks.canary --rounds 3

For each proxy (nginx 1.30, HAProxy 2.6 with 4 slots, Caddy 2.11 with 4 slots, the registry
with nginx and HAProxy agents): the test app with 2 replicas (it listens 1 s after it starts,
answers 503 for 2 s more while it warms up, dies at once on SIGTERM) under the load of
../shared/REFERENCE.md (keep-alive GETs, 2-second GETs, POSTs) on every proxy. Each round
starts a canary of 25% (one new container beside the two, weighed 2 against their 3), measures
its share with 2,000 GETs of one more client, then ends it: promote in odd rounds, abort in
even ones. One row per proxy and ending.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed.agents import Agents
from testbed.load import MIXED, Load
from testbed.sampler import versions
from testbed.stack import (
    CADDYFILE,
    HAPROXY_CFG,
    NGINX_HTTP,
    Stack,
    caddy_compose,
    haproxy_compose,
    http_compose,
    registry_compose,
)

PROXIES = ("nginx-1.30", "haproxy-2.6", "caddy-2.11", "registry")
SHARE = "25%"
SAMPLE = 2000
LOAD_SECONDS = 30


@dataclass
class Row:
    proxy: str
    ending: str
    rounds: int = 0
    requests: int = 0
    failed: int = 0
    shares: list[float] = field(default_factory=list)
    start_seconds: list[float] = field(default_factory=list)
    end_seconds: list[float] = field(default_factory=list)


def make_stack(proxy: str, folder: Path) -> Stack:
    if proxy == "registry":
        compose, config = registry_compose(), NGINX_HTTP
    elif proxy.startswith("haproxy"):
        compose, config = haproxy_compose(), HAPROXY_CFG
    elif proxy.startswith("caddy"):
        compose, config = caddy_compose(), CADDYFILE
    else:
        compose, config = http_compose(), NGINX_HTTP
    compose["services"]["app"]["deploy"] = {"replicas": 2}
    stack = Stack(folder / proxy, compose, config)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state")}
    return stack


def measure(proxy: str, rounds: int, folder: Path) -> list[Row]:
    stack = make_stack(proxy, folder)
    agents = Agents(stack, folder)
    rows = {"promote": Row(proxy, "promote"), "abort": Row(proxy, "abort")}
    stack.up()
    try:
        if proxy == "registry":
            stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
            agents.start_both_and_sync()
        else:
            assert stack.swap("sync", "app").returncode == 0
        stack.wait_serving("v1")
        time.sleep(4)  # every replica warm
        proxies = ("proxy", "haproxy") if proxy == "registry" else ("proxy",)
        for number in range(1, rounds + 1):
            ending = "promote" if number % 2 else "abort"
            one_round(stack, proxies, f"v{number + 1}", rows[ending])
    finally:
        agents.stop_all()
        stack.down()
    return list(rows.values())


def one_round(stack: Stack, proxies: tuple[str, ...], version: str, row: Row) -> None:
    loads = [Load(stack.url(p), MIXED, LOAD_SECONDS) for p in proxies]
    for load in loads:
        load.__enter__()
    try:
        time.sleep(1.5)
        started = time.monotonic()
        result = stack.swap("deploy", "app", "--canary", SHARE, env={"APP_VERSION": version})
        assert result.returncode == 0, result.stdout + result.stderr
        row.start_seconds.append(time.monotonic() - started)
        seen = versions(stack.url(proxies[-1]), SAMPLE)
        row.shares.append(seen.get(version, 0) / sum(seen.values()))
        started = time.monotonic()
        ended = stack.swap(row.ending, "app", env={"APP_VERSION": version})
        assert ended.returncode == 0, ended.stdout + ended.stderr
        row.end_seconds.append(time.monotonic() - started)
        results = [r for load in loads for r in load.results()]
    finally:
        for load in loads:
            load.__exit__()
    row.rounds += 1
    row.requests += sum(r.requests for r in results)
    row.failed += sum(r.failed for r in results)


def table(rows: list[Row]) -> str:
    lines = [f"| proxy | ending | rounds | requests | failed | share asked | share measured "
             f"(median of {SAMPLE:,} GETs a round) | start s (median) | ending s (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.rounds:
            continue
        lines.append(
            f"| {r.proxy} | {r.ending} | {r.rounds} | {r.requests:,} | {r.failed:,} | {SHARE} "
            f"| {statistics.median(r.shares):.1%} | {statistics.median(r.start_seconds):.2f} "
            f"| {statistics.median(r.end_seconds):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4,
                        help="canaries per proxy; odd ones are promoted, even ones aborted")
    parser.add_argument("--proxy", action="append", choices=PROXIES)
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="docker-swap-bench-") as folder:
        for proxy in args.proxy or PROXIES:
            rows += measure(proxy, args.rounds, Path(folder))
            print(table(rows), flush=True)


if __name__ == "__main__":
    main()
