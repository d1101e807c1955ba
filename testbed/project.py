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
from .stack import haproxy_cfg

HAPROXY_API_CFG = haproxy_cfg("api", 6)

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


def own_images(suffix: str) -> dict[str, str]:
    """The test images under tags of this run's own (`docker tag`), so that another test
    session rebuilding the shared tags does not change the images this project runs."""
    tags = {}
    for name in (images.APP, images.BOOKWORM, images.NGINX["1.30"], images.HAPROXY):
        tags[name] = f"{name.split(':')[0]}:up-{suffix}"
        subprocess.run(["docker", "tag", name, tags[name]], check=True, capture_output=True)
    return tags


def drop_images(tags: dict[str, str]) -> None:
    subprocess.run(["docker", "rmi", *tags.values()], check=False, capture_output=True)


def _app(version: str, image: str, **extra: str) -> dict[str, Any]:
    return {
        "image": image,
        "environment": {
            "VERSION": "${" + version + ":-v1}",
            "LISTEN_DELAY": "${LISTEN_DELAY:-1}",
            "WARMUP": "${WARMUP:-2}",
            **extra,
        },
    }


def up_compose(db_port: int, tags: dict[str, str] | None = None) -> dict[str, Any]:
    image = (tags or {}).get
    app = _app("APP_VERSION", image(images.APP, images.APP), ONE_READY="${ONE_READY:-}",
               EXIT_AFTER="${APP_EXIT_AFTER:-}")
    app |= {
        "deploy": {"replicas": 3, "update_config": {
            "parallelism": 1, "failure_action": "${APP_FAILURE_ACTION:-rollback}",
            "monitor": "${APP_MONITOR:-0s}", "order": "start-first"}},
        "volumes": ["flags:/flags", "./health:/health:ro"],
        "depends_on": {"db": {"condition": "service_started"}},
        "x-swap": {"proxy": "nginx:proxy", "health-cmd": "sh /health/check",
                   "timeout": "${APP_TIMEOUT:-30s}"},
    }
    api = _app("API_VERSION", image(images.APP, images.APP)) | {
        "deploy": {"replicas": 2, "update_config": {"parallelism": 2}},
        "depends_on": ["db"],
        "x-swap": {"proxy": "haproxy:haproxy", "health-cmd": "./healthcheck"},
    }
    worker = _app("WORKER_VERSION", image(images.APP, images.APP)) | {
        "depends_on": {"api": {"condition": "service_started"}},
        "x-swap": {"settle": "1s"},
    }
    return {
        "services": {
            "app": app,
            "api": api,
            "worker": worker,
            "db": {"image": image(images.BOOKWORM, images.BOOKWORM),
                   "command": ["sleep", "infinity"], "init": True,
                   "ports": [f"127.0.0.1:{db_port}:6379"]},
            "proxy": {
                "image": image(images.NGINX["1.30"], images.NGINX["1.30"]),
                "depends_on": ["app"],
                "ports": ["127.0.0.1::80"],
                "volumes": ["./nginx.conf:/etc/nginx/nginx.conf:ro",
                            "swap:/etc/nginx/docker-swap"],
            },
            "haproxy": {
                "image": image(images.HAPROXY, images.HAPROXY),
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
