"""What one batch of `docker-swap up` costs beside its floor: a plain `docker run` of the same
image until it first answers, side by side in one run, at rest and under load.

    .venv/bin/python -m benchmarks.batch_cost --rounds 3

The app (the test app: it listens 1 s after it starts and answers 503 for 2 s more while it
warms up) with 3 replicas behind nginx 1.30, replaced one batch at a time (parallelism 1) by
`docker-swap up`. The floor: `docker run -d` of the same image on the project's network, then
GET /healthz on its address every 20 ms until 200, then `docker rm -f`: what no tool can go
under (the engine's create and start, the app's own start-up). Each batch's cost is its
seconds in `up --json`; the difference is what docker-swap adds (compose's start, readiness,
the switch, the drain, the retire). Under load: the load of ../shared/REFERENCE.md (keep-alive
GETs, 2-second GETs, POSTs) runs through nginx meanwhile, so drains wait for 2-second GETs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from testbed import images
from testbed.load import MIXED, Load
from testbed.stack import NGINX_HTTP, Stack, http_compose

REPLICAS = 3


def floor(stack: Stack) -> float:
    """Seconds from `docker run` to the first 200 of /healthz of the same image."""
    network = f"{stack.name}_default"
    started = time.monotonic()
    container = subprocess.run(
        ["docker", "run", "-d", "--network", network, "-e", "LISTEN_DELAY=1", "-e", "WARMUP=2",
         images.APP], check=True, capture_output=True, text=True).stdout.strip()
    try:
        address = subprocess.run(
            ["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}")'
             ".IPAddress}}", container], check=True, capture_output=True, text=True
        ).stdout.strip()
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}:8000/healthz", timeout=1) as page:
                    if page.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.02)
    finally:
        subprocess.run(["docker", "rm", "-f", container], check=True, capture_output=True)


def batches(stack: Stack, version: str, loaded: bool) -> list[float]:
    """The seconds of each batch of one `up` that changes the app's version."""
    def run() -> dict[str, Any]:
        return stack.swap_json("up", env={"APP_VERSION": version})

    if loaded:
        with Load(stack.url(), MIXED, 45) as load:
            time.sleep(1.5)
            report = run()
            load.stop()
    else:
        report = run()
    assert report["exit_code"] == 0, report
    app = next(s for s in report["services"] if s["name"] == "app")
    return [float(b["seconds"]) for b in app["batches"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    compose = http_compose()
    compose["services"]["app"]["deploy"] = {"replicas": REPLICAS,
                                            "update_config": {"parallelism": 1}}
    with tempfile.TemporaryDirectory(prefix="docker-swap-bench-") as folder:
        stack = Stack(Path(folder) / "stack", compose, NGINX_HTTP)
        stack.env = {"DOCKER_SWAP_STATE_DIR": str(Path(folder) / "state")}
        stack.up()
        try:
            assert stack.swap("sync", "app").returncode == 0
            stack.wait_serving("v1")
            time.sleep(4)
            rows: dict[str, tuple[list[float], list[float]]] = {
                "at rest": ([], []), "under load": ([], [])}
            version = 1
            for _ in range(args.rounds):
                for name, loaded in (("at rest", False), ("under load", True)):
                    version += 1
                    rows[name][0].append(floor(stack))
                    rows[name][1].extend(batches(stack, f"v{version}", loaded))
                    print(json.dumps({name: rows[name]}), flush=True)
        finally:
            stack.down()
    # The mean counts each retire once: a batch's old container retires during the next
    # batch (in its seconds), the last batch's during its own.
    print("| when | floor s (median) | batch s (median) | batch s (mean) | batches | "
          "docker-swap adds s (median / mean) |")
    print("|---|---|---|---|---|---|")
    for name, (floors, costs) in rows.items():
        low, batch = statistics.median(floors), statistics.median(costs)
        mean = statistics.fmean(costs)
        print(f"| {name} | {low:.2f} | {batch:.2f} | {mean:.2f} | {len(costs)} | "
              f"{batch - low:+.2f} / {mean - low:+.2f} |")


if __name__ == "__main__":
    main()
