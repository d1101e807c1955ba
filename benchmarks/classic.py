"""The classic recipe, as its walkthrough gives it, for the side-by-side benchmark.

    docker compose up -d --no-deps --scale app=2 --no-recreate app
    NEW=<the app container that was not there before>;  OLD=<the one that was>
    until docker exec NEW ./healthcheck; do sleep 1; done
    docker kill OLD
    docker exec proxy nginx -s reload
    docker rm OLD

nginx sends to `proxy_pass http://app:8000;`, which it resolves (Docker DNS) at each reload.
"""

from __future__ import annotations

import subprocess
import time

from testbed.stack import Stack

NGINX_CLASSIC = """\
worker_processes 2;
error_log stderr notice;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 80;
        location / {
            proxy_pass http://app:8000;
        }
    }
}
"""


def classic_swap(stack: Stack, version: str) -> float:
    """One swap by the classic recipe; returns its wall time in seconds."""
    started = time.monotonic()
    env = {"APP_VERSION": version}
    before = stack.container_ids("app")
    stack.compose("up", "-d", "--no-deps", "--scale", "app=2", "--no-recreate", "app", env=env)
    # The walkthrough takes the newest name; we take the new ID, so that only the recipe's
    # switching, not a mix-up of containers, is measured.
    (new,) = set(stack.container_ids("app")) - set(before)
    (old,) = before
    while _docker("exec", new, "./healthcheck").returncode != 0:
        time.sleep(1)
    _docker("kill", old)
    _docker("exec", stack.proxy_container(), "nginx", "-s", "reload")
    _docker("rm", old)
    return time.monotonic() - started


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
