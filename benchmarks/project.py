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


def one(method: str, replicas: int, parallelism: int, folder: Path) -> Row:
    stack = Stack(folder / f"{method}-{replicas}-{parallelism}", project(replicas, parallelism),
                  NGINX_HTTP)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state")}
    try:
        stack.up()
        assert stack.swap("sync", "app").returncode == 0
        stack.wait_serving("v1")
        time.sleep(4)  # every replica warm (1 s to listen, 2 s of warm-up)
        seconds = 15 + 6 * replicas
        with Load(stack.url(), MIXED, seconds) as load:
            time.sleep(SETTLE_SECONDS)
            started = time.monotonic()
            batches = run(method, stack)
            wall = time.monotonic() - started
            results = load.results()
        return Row(method, replicas, parallelism, batches, wall,
                   sum(r.requests for r in results), sum(r.failed for r in results))
    finally:
        stack.down()


def run(method: str, stack: Stack) -> int:
    """Change the app's version the way `method` does; return the number of batches."""
    env = {"APP_VERSION": "v2"}
    if method == "compose":
        stack.compose("up", "-d", env=env)
        return 1
    report = stack.swap_json("up", env=env)
    assert report["exit_code"] == 0, report
    app = next(s for s in report["services"] if s["name"] == "app")
    return len(app["batches"])


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
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="docker-swap-bench-") as folder:
        for replicas in args.replicas:
            rows.append(one("compose", replicas, 0, Path(folder)))
            seen: set[int] = set()
            for parallelism in args.parallelism:
                batches = len(range(0, replicas, parallelism or replicas))
                if batches in seen:
                    continue  # the same batches as a row already measured
                seen.add(batches)
                rows.append(one("docker-swap up", replicas, parallelism, Path(folder)))
                if args.json:
                    print(json.dumps(rows[-1].__dict__))
    print(table(rows))


if __name__ == "__main__":
    main()
