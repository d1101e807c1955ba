"""Build the test images from local base images (no registry is reachable where tests run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).parent / "images"
BOOKWORM = "docker-swap-test/debian:bookworm"
SID = "docker-swap-test/debian:sid"
SID_CADDY = "docker-swap-test/debian:sid-caddy"
BOOKWORM_CADDY = "docker-swap-test/debian:bookworm-caddy"

APP = "docker-swap-test/app"
PHP = "docker-swap-test/php"
NGINX = {"1.22": "docker-swap-test/nginx:1.22", "1.30": "docker-swap-test/nginx:1.30"}
HAPROXY = "docker-swap-test/haproxy:2.6"
CADDY = "docker-swap-test/caddy:2.11"
CADDY_2_6 = "docker-swap-test/caddy:2.6"
_BUILDS = {
    HAPROXY: ("haproxy", BOOKWORM),
    APP: ("app", BOOKWORM),
    PHP: ("php", BOOKWORM),
    NGINX["1.22"]: ("nginx", BOOKWORM),
    NGINX["1.30"]: ("nginx", SID),
    CADDY: ("caddy", SID_CADDY),
    CADDY_2_6: ("caddy", BOOKWORM_CADDY),
}


class MissingBaseImage(RuntimeError):
    pass


def build_all() -> None:
    """Build every test image; docker's cache makes a second call take a second."""
    for base in (BOOKWORM, SID, SID_CADDY, BOOKWORM_CADDY):
        inspected = subprocess.run(["docker", "image", "inspect", base], capture_output=True,
                                   check=False)
        if inspected.returncode:
            raise MissingBaseImage(f"{base} is missing: run scripts/prepare-machine first")
    for tag, (folder, base) in _BUILDS.items():
        subprocess.run(
            ["docker", "build", "--quiet", "--build-arg", f"BASE={base}", "-t", tag,
             str(HERE / folder)],
            check=True, capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
