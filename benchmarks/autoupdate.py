"""`docker-swap autoupdate` under load: the time from a push to the registry until the new
version serves, and the failed requests meanwhile.

    .venv/bin/python -m benchmarks.autoupdate --pushes 5 --interval 2s

A real registry (Debian's docker-registry on 127.0.0.1), the test app from it (it listens 1 s
after it starts, answers 503 for 2 s more while it warms up, dies at once on SIGTERM) behind
nginx 1.30, and one long-lived `docker-swap autoupdate app --interval I` beside it. Each push
of a new version to the same tag runs under the load of ../shared/REFERENCE.md (keep-alive
GETs, 2-second GETs, POSTs); the time is from the end of `docker push` to the first answer of
the new version. On average half an interval of it is the wait for the next check.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.image_registry import ImageRegistry, app_version
from testbed.load import MIXED, Load
from testbed.stack import NGINX_HTTP, Stack, http_compose


def measure(pushes: int, interval: str, folder: Path) -> list[tuple[float, int, int]]:
    """(seconds from push to serving, requests, failed) of each push."""
    registry = ImageRegistry(folder / "registry").start()
    compose = http_compose()
    app = compose["services"]["app"]
    app["image"] = registry.reference("app", "stable")
    for key in ("VERSION", "NEVER_READY", "ERRORS", "EXIT_AFTER"):
        del app["environment"][key]
    stack = Stack(folder / "stack", compose, NGINX_HTTP)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state")}
    registry.push(app_version("v1"), "app", "stable")
    stack.up()
    follower = None
    rows = []
    try:
        assert stack.swap("sync", "app").returncode == 0
        stack.wait_serving("v1")
        follower = subprocess.Popen(
            [sys.executable, "-m", "docker_swap", "-p", stack.name, "autoupdate", "app",
             "--interval", interval], cwd=stack.folder, env=stack._env({}),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        for number in range(2, pushes + 2):
            image = app_version(f"v{number}")
            with Load(stack.url(), MIXED, 40) as load:
                time.sleep(1.5)
                registry.push(image, "app", "stable")
                pushed = time.monotonic()
                stack.wait_serving(f"v{number}", seconds=35)
                took = time.monotonic() - pushed
                results = load.stop()
            rows.append((took, sum(r.requests for r in results),
                         sum(r.failed for r in results)))
            print(f"push {number - 1}: {took:.1f}s to serving, {rows[-1][2]} failed of "
                  f"{rows[-1][1]:,}", flush=True)
    finally:
        if follower is not None:
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=60)
        stack.down()
        registry.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--interval", default="2s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docker-swap-bench-") as folder:
        rows = measure(args.pushes, args.interval, Path(folder))
    seconds = [r[0] for r in rows]
    print("| interval | pushes | requests | failed | push to serving s (median / max) |")
    print("|---|---|---|---|---|")
    print(f"| {args.interval} | {len(rows)} | {sum(r[1] for r in rows):,} | "
          f"{sum(r[2] for r in rows):,} | {statistics.median(seconds):.1f} / "
          f"{max(seconds):.1f} |")


if __name__ == "__main__":
    main()
