"""Several services in one `docker-swap up`, one after the other and side by side, beside
`docker compose up -d` on the same project and load.

    .venv/bin/python -m benchmarks.services --rounds 2

The project: three services of the test app (it listens 1 s after it starts, answers 503 for
2 s more while it warms up, dies at once on SIGTERM), `app`, `api` and `web`, 2 replicas each
(update_config parallelism 1), behind one nginx 1.30 (one upstream each, on its own port), and
a `worker` of the same image with no proxy. Each round changes all four versions and runs one
`up` (sequential: `--parallel 1`, side by side: `--parallel 4`) or `docker compose up -d`,
with keep-alive GETs and 2-second GETs on each service's port (the POSTs of the reference load
are left out: three times the reference load would saturate two cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.load import KEEPALIVE_GETS, SLOW_GETS, Load
from testbed.stack import Stack, http_compose

SERVICES = ("app", "api", "web")
PORTS = {"app": 80, "api": 81, "web": 82}
NGINX = """\
worker_processes 2;
events { worker_connections 4096; }
http {
    access_log off;
    include /etc/nginx/docker-swap/*.conf;
""" + "".join(f"    server {{ listen {port}; location / {{ proxy_pass http://{name}; }} }}\n"
              for name, port in PORTS.items()) + "}\n"


@dataclass
class Row:
    method: str
    walls: list[float] = field(default_factory=list)
    requests: int = 0
    failed: int = 0


def project() -> dict[str, Any]:
    compose = http_compose()
    app = compose["services"]["app"]
    for name in SERVICES:
        service = {**app, "environment": {**app["environment"],
                                          "VERSION": f"${{{name.upper()}_VERSION:-v1}}"},
                   "deploy": {"replicas": 2, "update_config": {"parallelism": 1}},
                   "x-swap": {**app["x-swap"]}}
        compose["services"][name] = service
    compose["services"]["worker"] = {
        "image": app["image"], "environment": {"VERSION": "${WORKER_VERSION:-v1}"},
        "x-swap": {"health-cmd": "./healthcheck"}}
    compose["services"]["proxy"]["ports"] = [f"127.0.0.1::{p}" for p in PORTS.values()]
    compose["services"]["proxy"]["depends_on"] = list(SERVICES)
    return compose


def url(stack: Stack, service: str) -> str:
    port = stack.compose("port", "proxy", str(PORTS[service])).stdout.strip().rsplit(":", 1)[1]
    return f"http://127.0.0.1:{port}"


def one_round(stack: Stack, method: str, version: str, row: Row) -> None:
    env = {f"{name.upper()}_VERSION": version for name in (*SERVICES, "worker")}
    loads = [Load(url(stack, name), (KEEPALIVE_GETS, SLOW_GETS), 90) for name in SERVICES]
    for load in loads:
        load.__enter__()
    try:
        time.sleep(1.5)
        started = time.monotonic()
        if method == "compose up -d":
            stack.compose("up", "-d", env=env)
        else:
            parallel = "4" if "side by side" in method else "1"
            report = stack.swap_json("up", "--parallel", parallel, env=env)
            assert report["exit_code"] == 0, report
        row.walls.append(time.monotonic() - started)
        time.sleep(1.5)
        results = [r for load in loads for r in load.stop()]
    finally:
        for load in loads:
            load.__exit__()
    row.requests += sum(r.requests for r in results)
    row.failed += sum(r.failed for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    methods = ("compose up -d", "docker-swap up, one after the other",
               "docker-swap up, side by side")
    rows = {m: Row(m) for m in methods}
    with tempfile.TemporaryDirectory(prefix="docker-swap-bench-") as folder:
        stack = Stack(Path(folder) / "stack", project(), NGINX)
        stack.env = {"DOCKER_SWAP_STATE_DIR": str(Path(folder) / "state")}
        stack.up()
        try:
            for name in SERVICES:
                assert stack.swap("sync", name).returncode == 0
            time.sleep(4)
            version = 1
            for _ in range(args.rounds):
                for method in methods:
                    version += 1
                    one_round(stack, method, f"v{version}", rows[method])
                    if method == "compose up -d":  # nginx keeps the addresses compose removed
                        for name in SERVICES:
                            stack.swap("sync", name)
                    time.sleep(3)
        finally:
            stack.down()
    print("| method | rounds | wall s (median) | requests | failed |")
    print("|---|---|---|---|---|")
    for row in rows.values():
        print(f"| {row.method} | {len(row.walls)} | {statistics.median(row.walls):.1f} | "
              f"{row.requests:,} | {row.failed:,} |")


if __name__ == "__main__":
    main()
