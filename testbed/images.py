"""Build the test images from local base images (no registry is reachable where tests run)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).parent / "images"
CHECKOUT = Path(__file__).parent.parent
BOOKWORM = "docker-swap-test/debian:bookworm"
SID = "docker-swap-test/debian:sid"
SID_CADDY = "docker-swap-test/debian:sid-caddy"
BOOKWORM_CADDY = "docker-swap-test/debian:bookworm-caddy"
BOOKWORM_DIND = "docker-swap-test/debian:bookworm-dind"
BASES = (BOOKWORM, SID, SID_CADDY, BOOKWORM_CADDY, BOOKWORM_DIND)

APP = "docker-swap-test/app"
PHP = "docker-swap-test/php"
NGINX = {"1.22": "docker-swap-test/nginx:1.22", "1.30": "docker-swap-test/nginx:1.30"}
HAPROXY = "docker-swap-test/haproxy:2.6"
CADDY = "docker-swap-test/caddy:2.11"
CADDY_2_6 = "docker-swap-test/caddy:2.6"
NODE = "docker-swap-test/node"
"""A Swarm test bed node: dockerd 20.10 in a container (testbed/swarm.py)."""
AGENT = "docker-swap-test/agent"
"""docker-swap itself on Debian 12, for agents in the Swarm test bed: build_agent_image()."""
_BUILDS = {
    HAPROXY: ("haproxy", BOOKWORM),
    APP: ("app", BOOKWORM),
    PHP: ("php", BOOKWORM),
    NGINX["1.22"]: ("nginx", BOOKWORM),
    NGINX["1.30"]: ("nginx", SID),
    CADDY: ("caddy", SID_CADDY),
    CADDY_2_6: ("caddy", BOOKWORM_CADDY),
    NODE: ("node", BOOKWORM_DIND),
}
# The agent image's dependencies, installed once per list of requirements and Python version.
# pip evaluates markers for the host's Python (3.11.7 here), the image runs Debian 12's 3.11.2:
# redis needs async-timeout below 3.11.3.
AGENT_EXTRA_REQUIREMENTS = ("async-timeout>=4.0.3",)
AGENT_DEPS_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
    "docker-swap-testbed"


class MissingBaseImage(RuntimeError):
    pass


def build_all() -> None:
    """Build every test image; docker's cache makes a second call take a second."""
    for base in BASES:
        inspected = subprocess.run(["docker", "image", "inspect", base], capture_output=True,
                                   check=False)
        if inspected.returncode:
            raise MissingBaseImage(f"{base} is missing: run scripts/prepare-machine first")
    for tag, (folder, base) in _BUILDS.items():
        _build(tag, base, HERE / folder)


def build_agent_image(source: Path = CHECKOUT, tag: str = AGENT) -> str:
    """Build docker-swap from `source` (a checkout: by default this one) as `tag`; its ID.

    The package's dependencies (pyproject.toml's) are installed by this interpreter's pip with
    --target, once per list (kept in AGENT_DEPS_CACHE); the package itself is its source folder,
    copied as it is now, uncommitted edits included. Docker's cache keys on the files' contents:
    an unchanged source rebuilds in a second, a changed one in a few.
    """
    with tempfile.TemporaryDirectory(prefix="docker-swap-agent-") as folder:
        context = Path(folder)
        shutil.copy2(HERE / "agent" / "Dockerfile", context)
        shutil.copy2(HERE / "agent" / "docker-swap", context)
        shutil.copytree(_agent_dependencies(source), context / "deps", symlinks=True)
        shutil.copytree(source / "src" / "docker_swap", context / "app" / "docker_swap",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _build(tag, BOOKWORM, context)
    return subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag],
                          capture_output=True, text=True, check=True).stdout.strip()


def _agent_dependencies(source: Path) -> Path:
    """A folder holding the installed dependencies of the package at `source`."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    requirements = sorted([*project["dependencies"], *AGENT_EXTRA_REQUIREMENTS])
    key = hashlib.sha256(repr((requirements, sys.version_info[:2])).encode()).hexdigest()[:12]
    folder = AGENT_DEPS_CACHE / f"agent-deps-{key}"
    if folder.is_dir():
        return folder
    AGENT_DEPS_CACHE.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=AGENT_DEPS_CACHE))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", str(partial), *requirements],
        check=True, capture_output=True, text=True,
    )
    shutil.rmtree(partial / "bin", ignore_errors=True)  # console scripts for the host's python
    partial.rename(folder)  # whole or not at all: a second build never sees half of it
    return folder


def _build(tag: str, base: str, context: Path) -> None:
    subprocess.run(
        ["docker", "build", "--quiet", "--build-arg", f"BASE={base}", "-t", tag, str(context)],
        check=True, capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
