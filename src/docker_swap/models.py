"""Typed views of what compose, the engine and the registry report; built by the adapters, read
by the rest."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from docker_swap.errors import ProxyConfigInvalid

CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
"""A container ID as the engine reports it (64 hex digits), or its short form (12 or more)."""
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}")
"""A Docker container name (also the host name a proxy resolves on the network)."""


@dataclass(frozen=True)
class PublishedPort:
    """A `ports:` entry that binds a port on the host."""

    published: str
    target: int


@dataclass(frozen=True)
class ServiceDefinition:
    """One service as `docker compose config` resolved it (files, overrides, env merged)."""

    name: str
    container_name: str | None = None
    published_ports: tuple[PublishedPort, ...] = ()
    network_mode: str | None = None
    x_swap: Mapping[str, object] = field(default_factory=dict)
    image: str | None = None
    """The image compose runs: `image:`, else the one it builds (PROJECT-SERVICE)."""
    pull_policy: str | None = None
    replicas: int = 1
    """deploy.replicas (or scale), as `docker compose up` would run."""
    deploy: Mapping[str, object] = field(default_factory=dict)
    """The `deploy` block as compose printed it (update_config, rollback_config...)."""
    depends_on: Mapping[str, str] = field(default_factory=dict)
    """Service it depends on -> its condition (service_started, service_healthy...)."""
    builds: bool = False
    """It has a `build:` section: its image is made here, not pulled from a registry."""


@dataclass(frozen=True)
class Project:
    """A compose project: its name and its services."""

    name: str
    services: Mapping[str, ServiceDefinition]


@dataclass(frozen=True)
class Container:
    """One container as the engine inspects it."""

    id: str
    name: str
    project: str
    service: str
    number: int
    status: str
    health: str | None = None
    image_id: str = ""
    networks: Mapping[str, str] = field(default_factory=dict)
    """Network name to this container's IPv4 address on it."""
    exposed_ports: tuple[int, ...] = ()
    has_healthcheck: bool = False
    healthcheck: tuple[str, ...] = ()
    """Its health check's test as a command to exec (CMD-SHELL as `/bin/sh -c`); empty: none."""
    healthcheck_timeout: float = 30.0
    """Seconds one run of it may take (the check's own `timeout`)."""
    config_files: tuple[str, ...] = ()
    working_dir: str = ""
    """The compose project's folder (where its `.env` is)."""
    pid: int = 0
    """Host pid of the container's main process (0 when it does not run)."""
    mounts: tuple[str, ...] = ()
    """Paths inside the container where a volume or a host directory is mounted."""
    stop_grace: int = 10
    """Seconds its main process has to exit after the stop signal (stop_grace_period)."""
    config_hash: str = ""
    """Compose's hash of the definition it was made from (com.docker.compose.config-hash)."""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.status == "running"


MAX_WEIGHT = 256
"""The highest weight of a backend (HAProxy's; nginx takes any)."""


@dataclass(frozen=True)
class Backend:
    """Where a proxy sends a service's traffic: one container's name, address and port."""

    container_id: str
    name: str
    address: str
    port: int
    weight: int = 1
    """Its share of new requests relative to the others' (a canary's are set apart: weights.py)."""

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    def problem(self) -> str | None:
        """Why a proxy must not be given this backend (it names what is wrong), or None.

        Backends come from the engine, or from Redis where anyone who can write may put them:
        a name, address or port is written into nginx's configuration and into HAProxy's
        runtime commands, so each must be exactly what it claims to be.
        """
        if not isinstance(self.container_id, str) or not CONTAINER_ID.fullmatch(
                self.container_id):
            return "its container ID is not 12 to 64 hex digits"
        if not isinstance(self.name, str) or not CONTAINER_NAME.fullmatch(self.name):
            return "its name is not a Docker container name"
        if not is_ip_address(self.address):
            return "its address is not an IPv4 or IPv6 address"
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not (
                1 <= self.port <= 65535):
            return "its port is not a number from 1 to 65535"
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or not (
                1 <= self.weight <= MAX_WEIGHT):
            return f"its weight is not a number from 1 to {MAX_WEIGHT}"
        return None


def is_ip_address(text: object) -> bool:
    """An IPv4 or IPv6 address, written only with the characters such an address has (no
    IPv6 zone: `%` and what follows could carry anything)."""
    if not isinstance(text, str) or not text or len(text) > 45 or not re.fullmatch(
            r"[0-9a-fA-F:.]+", text):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_backends(backends: Iterable[Backend]) -> None:
    """Raise ProxyConfigInvalid for the first backend a proxy must not be given."""
    for backend in backends:
        problem = backend.problem()
        if problem:
            raise ProxyConfigInvalid(
                f"refused backend {safe_text(backend.name)} ({safe_text(backend.address)}:"
                f"{safe_text(backend.port)}): {problem}; nothing was changed in the proxy."
            )


def safe_text(value: object, limit: int = 60) -> str:
    """A value from an untrusted source, for a message: escaped to printable ASCII, short."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Image:
    """One image as the engine lists it: its ID, its tags (repository:tag), its labels."""

    id: str
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecResult:
    """How a command run inside a container ended; `exit_code` is None if it timed out."""

    exit_code: int | None
    stdout: str
    stderr: str = ""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class Process:
    pid: int
    args: str


@dataclass(frozen=True)
class Generation:
    """One publication of a service's backends."""

    number: int
    backends: tuple[Backend, ...]
    published_at: str


@dataclass(frozen=True)
class AgentStatus:
    name: str
    proxy: str
    alive: bool
    """Its heartbeat has not expired."""
    applied: int = 0
    drained: int = 0
    failed: int = 0
    """The newest generation it could not apply, with `error` saying why."""
    error: str = ""
    problem: str = ""
    """Why its report cannot be trusted (malformed, or not validly signed): then its numbers
    are 0, and a deploy treats it as an agent that has not applied anything."""
    answers: tuple[int, int] | None = None
    """5xx and all answers of the backends it applied, where its proxy counts them."""


class Named(Protocol):
    @property
    def name(self) -> str: ...


def names(units: Sequence[Named]) -> str:
    """Containers' (or tasks') names, as a message says them."""
    return ", ".join(u.name for u in units)


@dataclass(frozen=True)
class Marker:
    """A container that never starts, which docker-swap creates to hold its own state on the
    engine (the deploy lock, the journal): its labels carry that state."""

    id: str
    name: str
    labels: Mapping[str, str]
    created: float
    """When the engine created it, in seconds since the epoch, on the engine's clock."""
    image: str = ""
