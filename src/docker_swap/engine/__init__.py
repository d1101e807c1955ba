"""The only place that talks to the Docker Engine API, through the `docker` SDK: one `Engine`
made of its parts (containers, files in them, images, docker-swap's markers and records); Swarm's
side of the API is swarm.py, the SDK's errors are translated in errors.py."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from docker_swap.engine.distribution import Distribution
from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.engine.errors import translated as _translated
from docker_swap.engine.events import ContainerWatch
from docker_swap.engine.files import Files
from docker_swap.engine.images import Images
from docker_swap.engine.markers import Markers
from docker_swap.engine.parsing import epoch
from docker_swap.errors import EngineUnreachable

__all__ = ["ContainerWatch", "Engine"]


class Engine(Files, Images, Markers, Distribution):
    """A connected engine. Methods raise `EngineFailed` for errors we did not expect."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self._api = client.api
        self._info: Mapping[str, Any] | None = None
        self._clock_base = (0.0, 0.0)  # (engine time, time.monotonic()) when info was read
        self._image_volumes: dict[str, list[str]] = {}
        self._swarm_tasks: dict[str, bool] = {}

    @classmethod
    def connect(cls) -> Engine:
        """The engine the docker CLI (and so compose) would use: DOCKER_HOST, else the
        context (DOCKER_CONTEXT, or `docker context use`), else the default socket."""
        host = os.environ.get("DOCKER_HOST") or _context_host()
        try:
            client = (docker.DockerClient(base_url=host, timeout=120, use_ssh_client=True)
                      if host else docker.from_env(timeout=120))
            client.ping()
        except _API_ERRORS as exc:
            raise EngineUnreachable(
                f"no Docker engine answers at {host or 'the default address'} ({_reason(exc)}).",
                hint="Start Docker, or point DOCKER_HOST or the docker context at the engine "
                "you deploy to.",
            ) from exc
        return cls(client)

    @property
    def docker_client(self) -> docker.DockerClient:
        """The SDK client, for the Swarm adapter (swarm.py) on the same connection."""
        return self._client

    def version(self) -> str:
        with _translated("read the engine's version"):
            return str(self._api.version().get("Version", "?"))

    def engine_id(self) -> str:
        info = self._read_info()
        return str(info.get("ID") or info.get("Name") or "engine")

    def swarm_node(self) -> tuple[str, str]:
        """This engine's swarm node ID and host name ("" and its name outside a swarm)."""
        info = self._read_info()
        return str((info.get("Swarm") or {}).get("NodeID") or ""), str(info.get("Name") or "")

    def clock(self) -> float:
        """The engine's own time now (seconds since the epoch), so that what several machines
        stamp is compared on one clock. Read once (info's SystemTime), then advanced by this
        machine's monotonic clock."""
        self._read_info()
        engine_time, read_at = self._clock_base
        return engine_time + (time.monotonic() - read_at)

    def _read_info(self) -> Mapping[str, Any]:
        if self._info is None:
            with _translated("read the engine's info"):
                started = time.monotonic()
                info = self._api.info()
            read_at = (started + time.monotonic()) / 2
            self._clock_base = (epoch(str(info.get("SystemTime") or "")) or time.time(), read_at)
            self._info = info
        return self._info



def _context_host() -> str | None:
    """The endpoint of the docker context in use, unless it is the default one."""
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        try:
            name = json.loads(config.read_text()).get("currentContext")
        except (OSError, ValueError):
            name = None
    if not name or name == "default":
        return None
    inspected = subprocess.run(
        ["docker", "context", "inspect", name, "--format", "{{.Endpoints.docker.Host}}"],
        capture_output=True, text=True, check=False,
    )
    if inspected.returncode != 0:
        raise EngineUnreachable(f"docker context {name!r} cannot be read: "
                                f"{inspected.stderr.strip() or 'no such context'}.")
    return inspected.stdout.strip() or None
