"""Installing docker-swap as a Docker CLI plugin, so that `docker swap deploy app` works."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from docker_swap.errors import InvalidSettings

_MARK = "# docker-swap: Docker CLI plugin"


def plugin_path() -> Path:
    """Where the docker CLI looks for this user's plugins (DOCKER_CONFIG is honoured)."""
    config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(config) / "cli-plugins" / "docker-swap"


def install_plugin(*, force: bool = False) -> Path:
    """Write a small launcher that runs this very docker-swap (its Python, its install)."""
    path = plugin_path()
    if path.exists() and _MARK not in path.read_text(errors="replace") and not force:
        raise InvalidSettings(
            f"{path} exists and is not docker-swap's launcher; pass --force to replace it."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!/bin/sh\n{_MARK}, written by `docker-swap install-plugin`.\n"
        f"exec {shlex.join(launch_command())} \"$@\"\n"
    )
    path.chmod(0o755)
    return path


def launch_command(script: Path | None = None) -> list[str]:
    """How the launcher runs this docker-swap: its installed console script, else its Python
    isolated (`-I`). Never `python -m` alone, which would import modules from whatever folder
    `docker swap` is run in (a `yaml.py` there would run in place of PyYAML)."""
    script = script or Path(sys.executable).with_name("docker-swap")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-I", "-m", "docker_swap"]
