"""docker-rollout's sequence (v0.13, `docker rollout SERVICE`), for the side-by-side benchmark.

Reimplemented from its documented behaviour (see ../shared/REFERENCE.md), not copied:

    docker compose up -d --scale app=2N --no-recreate app   (no --no-deps)
    NEW = the app containers that were not there before
    poll Docker's health of NEW once a second until healthy (60 s at most)
    docker stop OLD; docker rm OLD

It does not touch the proxy: nginx must find containers itself, here by re-resolving Docker's
DNS every second (`resolver 127.0.0.11 valid=1s` and a variable in `proxy_pass`), the set-up
its users run with plain nginx. The app gets a HEALTHCHECK (its ./healthcheck, every second).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from testbed.stack import Stack, http_compose

NGINX_ROLLOUT = """\
worker_processes 2;
error_log stderr notice;
events { worker_connections 4096; }
http {
    access_log off;
    resolver 127.0.0.11 valid=1s ipv6=off;
    server {
        listen 80;
        location / {
            set $app app:8000;
            proxy_pass http://$app;
        }
    }
}
"""


def rollout_compose(nginx: str) -> dict[str, Any]:
    compose = http_compose(nginx)
    compose["services"]["app"]["healthcheck"] = {
        "test": ["CMD", "/app/healthcheck"], "interval": "1s", "timeout": "2s", "retries": 3,
    }
    return compose


def rollout_swap(stack: Stack, version: str) -> float:
    """One `docker rollout app`; returns its wall time in seconds."""
    started = time.monotonic()
    env = {"APP_VERSION": version}
    before = stack.container_ids("app")
    stack.compose("up", "-d", "--scale", f"app={2 * len(before)}", "--no-recreate", "app",
                  env=env)
    new = sorted(set(stack.container_ids("app")) - set(before))
    deadline = time.monotonic() + 60
    while not all(_health(c) == "healthy" for c in new):
        if time.monotonic() > deadline:
            raise SystemExit("docker-rollout: the new containers did not become healthy")
        time.sleep(1)
    subprocess.run(["docker", "stop", *before], capture_output=True, check=True)
    subprocess.run(["docker", "rm", *before], capture_output=True, check=True)
    return time.monotonic() - started


def _health(container: str) -> str:
    state = subprocess.run(["docker", "inspect", "-f", "{{json .State.Health}}", container],
                           capture_output=True, text=True, check=True).stdout
    health = json.loads(state) if state.strip() else None
    return str(health.get("Status")) if health else "none"
