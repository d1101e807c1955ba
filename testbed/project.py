"""A whole project for `up`: an app behind nginx (3 replicas, parallelism 1), an api behind
HAProxy (2 replicas, parallelism 2), a worker with no proxy, a database on a fixed host port,
and the two proxies.

Each service's version comes from the environment (APP_VERSION, API_VERSION, WORKER_VERSION),
so changing one changes compose's config hash of that service only. With ONE_READY set, the
app's new containers pass their health command only for the first of them (a flag directory
on a shared volume): the second batch never becomes ready. Old containers (ONE_READY empty)
always pass, so a rollback can bring them back.
"""

from __future__ import annotations

import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from . import images

HAPROXY_API_CFG = """\
global
    stats socket ipv4@127.0.0.1:9999 level admin
    server-state-file /var/lib/haproxy/docker-swap/servers
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    load-server-state-from-file global
frontend web
    bind :80
    default_backend api
backend api
    server-template api 6 localhost:1 disabled
"""

APP_HEALTH_SCRIPT = """\
#!/bin/sh
# Ready when the app is; with ONE_READY set, only the first container of each VERSION is.
./healthcheck || exit 1
[ -z "$ONE_READY" ] || mkdir "/flags/$VERSION" 2>/dev/null
"""
"""Written to the project folder as health/check: x-swap values cannot hold a `$` for the
container's shell (compose keeps `$$` as is there)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _app(version: str, **extra: str) -> dict[str, Any]:
    return {
        "image": images.APP,
        "environment": {
            "VERSION": "${" + version + ":-v1}",
            "LISTEN_DELAY": "${LISTEN_DELAY:-1}",
            "WARMUP": "${WARMUP:-2}",
            **extra,
        },
    }


def up_compose(db_port: int) -> dict[str, Any]:
    app = _app("APP_VERSION", ONE_READY="${ONE_READY:-}")
    app |= {
        "deploy": {"replicas": 3, "update_config": {
            "parallelism": 1, "failure_action": "${APP_FAILURE_ACTION:-rollback}"}},
        "volumes": ["flags:/flags", "./health:/health:ro"],
        "depends_on": {"db": {"condition": "service_started"}},
        "x-swap": {"proxy": "nginx:proxy", "health-cmd": "sh /health/check",
                   "timeout": "${APP_TIMEOUT:-30s}"},
    }
    api = _app("API_VERSION") | {
        "deploy": {"replicas": 2, "update_config": {"parallelism": 2}},
        "depends_on": ["db"],
        "x-swap": {"proxy": "haproxy:haproxy", "health-cmd": "./healthcheck"},
    }
    worker = _app("WORKER_VERSION") | {
        "depends_on": {"api": {"condition": "service_started"}},
        "x-swap": {"settle": "1s"},
    }
    return {
        "services": {
            "app": app,
            "api": api,
            "worker": worker,
            "db": {"image": images.BOOKWORM, "command": ["sleep", "infinity"],
                   "init": True, "ports": [f"127.0.0.1:{db_port}:6379"]},
            "proxy": {
                "image": images.NGINX["1.30"],
                "depends_on": ["app"],
                "ports": ["127.0.0.1::80"],
                "volumes": ["./nginx.conf:/etc/nginx/nginx.conf:ro",
                            "swap:/etc/nginx/docker-swap"],
            },
            "haproxy": {
                "image": images.HAPROXY,
                "depends_on": ["api"],
                "ports": ["127.0.0.1::80"],
                "volumes": ["./haproxy-api.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
                            "haproxy-state:/var/lib/haproxy/docker-swap"],
            },
        },
        "volumes": {"swap": {}, "haproxy-state": {}, "flags": {}},
    }


def container_counts(project: str) -> Counter[str]:
    """How many containers (any state) each service of the project has now."""
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
         "--format", '{{.Label "com.docker.compose.service"}}'],
        capture_output=True, text=True, check=True).stdout
    return Counter(listed.split())


def write_extras(folder: Path) -> None:
    """The files of `up_compose` that Stack does not write: HAProxy's config, the health check."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "haproxy-api.cfg").write_text(HAPROXY_API_CFG)
    (folder / "health").mkdir(exist_ok=True)
    (folder / "health" / "check").write_text(APP_HEALTH_SCRIPT)
