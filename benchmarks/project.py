"""A whole-project `docker-swap up` under load, for several replica counts and parallelisms,
beside `docker compose up -d` on the same project and load.

    .venv/bin/python -m benchmarks.project --replicas 1 3 6 --parallelism 1 2 0

The project: the test app behind nginx 1.30 (it listens 1 s after it starts, answers 503 for
2 s more while it warms up, dies at once on SIGTERM), `deploy.replicas` R and
`update_config.parallelism` P (0: all replicas in one batch). Each row brings up v1, puts the
load of ../shared/REFERENCE.md on nginx (keep-alive GETs, 2-second GETs, POSTs), changes the
app's version and runs one `up` (or `docker compose up -d`): wall time, batches, failed
requests, and the cost per batch (wall / batches), which grows with the number of batches, not
with the replicas in each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker_swap.cli.charts import Timeline, write
from docker_swap.rollout.loadgen import DemoLoad
from testbed.load import MIXED, Load
from testbed.stack import NGINX_HTTP, Stack, http_compose

SETTLE_SECONDS = 1.5


@dataclass(frozen=True)
class Row:
    method: str
    replicas: int
    parallelism: int
    batches: int
    wall: float
    requests: int
    failed: int

    @property
    def per_batch(self) -> float:
        return self.wall / self.batches if self.batches else float("nan")


def project(replicas: int, parallelism: int) -> dict[str, Any]:
    compose = http_compose()
    compose["services"]["app"]["deploy"] = {
        "replicas": replicas, "update_config": {"parallelism": parallelism}}
    return compose


def one(method: str, replicas: int, parallelism: int, folder: Path,
        chart: Path | None = None) -> Row:
    stack = Stack(folder / f"{method}-{replicas}-{parallelism}", project(replicas, parallelism),
                  NGINX_HTTP)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state")}
    try:
        stack.up()
        assert stack.swap("sync", "app").returncode == 0
        stack.wait_serving("v1")
        time.sleep(4)  # every replica warm (1 s to listen, 2 s of warm-up)
        seconds = 15 + 6 * replicas
        port = int(stack.url().rsplit(":", 1)[1].strip("/"))
        with Load(stack.url(), MIXED, seconds) as load, \
                DemoLoad("127.0.0.1", port, gets=2, posts=0) as probe:
            time.sleep(SETTLE_SECONDS)
            started = time.monotonic()
            batches, spans = run(method, stack)
            ended = time.monotonic()
            time.sleep(SETTLE_SECONDS)
            results = load.stop()
        row = Row(method, replicas, parallelism, batches, ended - started,
                  sum(r.requests for r in results), sum(r.failed for r in results))
        if chart is not None:
            draw(row, probe, spans, started, ended, chart)
        return row
    finally:
        stack.down()


Spans = list[tuple[float, list[tuple[str, float]]]]
"""Each batch: its seconds, and its phases (name, seconds) in order."""


def run(method: str, stack: Stack) -> tuple[int, Spans]:
    """Change the app's version the way `method` does; the number of batches, and the seconds
    and phases of each (compose's whole `up -d` for compose)."""
    env = {"APP_VERSION": "v2"}
    if method == "compose":
        started = time.monotonic()
        stack.compose("up", "-d", env=env)
        seconds = time.monotonic() - started
        return 1, [(seconds, [("compose", seconds)])]
    report = stack.swap_json("up", env=env)
    assert report["exit_code"] == 0, report
    app = next(s for s in report["services"] if s["name"] == "app")
    return len(app["batches"]), [
        (float(b["seconds"]), [(p["name"], float(p["seconds"])) for p in b["phases"]])
        for b in app["batches"]]


def draw(row: Row, probe: DemoLoad, spans: Spans, started: float, ended: float,
         folder: Path) -> None:
    """The row's chart: what a light client beside wrk saw (2 keep-alive GET connections),
    with each batch's phases marked (batches are placed back from the command's end, as they
    run last; phases follow each other from their batch's start)."""
    phases, end = [], ended
    for number, (seconds, steps) in reversed(list(enumerate(spans, start=1))):
        at = end - seconds
        for name, took in steps:
            phases.append((f"{number} {name}", at, at + took))
            at += took
        end -= seconds
    tally = probe.tally
    timeline = Timeline(
        f"{row.method}: {row.replicas} replica(s), {row.batches} batch(es) under load; "
        f"{row.failed:,} of {row.requests:,} requests failed (wrk)",
        [*tally.latencies, *((t, None) for t in tally.failed_at)], phases)
    name = f"{row.method.replace(' ', '-')}-{row.replicas}-{row.parallelism}.svg"
    folder.mkdir(parents=True, exist_ok=True)
    write(timeline, folder / name)


def table(rows: Sequence[Row]) -> str:
    lines = ["| method | replicas | parallelism | batches | wall (s) | per batch (s) | requests "
             "| failed |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.replicas} | {r.parallelism or 'all'} | {r.batches} | "
                     f"{r.wall:.1f} | {r.per_batch:.1f} | {r.requests:,} | {r.failed:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2, 0])
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    parser.add_argument("--chart", type=Path, metavar="FOLDER",
                        help="write a chart of each row there (needs docker-swap[charts])")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="docker-swap-bench-") as folder:
        for replicas in args.replicas:
            rows.append(one("compose", replicas, 0, Path(folder), args.chart))
            seen: set[int] = set()
            for parallelism in args.parallelism:
                batches = len(range(0, replicas, parallelism or replicas))
                if batches in seen:
                    continue  # the same batches as a row already measured
                seen.add(batches)
                rows.append(one("docker-swap up", replicas, parallelism, Path(folder),
                                args.chart))
                if args.json:
                    print(json.dumps(rows[-1].__dict__))
    print(table(rows))


if __name__ == "__main__":
    main()
