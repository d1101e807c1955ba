"""Typed views of what compose, the engine and the registry report; built by the adapters, read
by the rest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
    replicas: int = 1
    """deploy.replicas (or scale), as `docker compose up` would run."""
    deploy: Mapping[str, object] = field(default_factory=dict)
    """The `deploy` block as compose printed it (update_config, rollback_config...)."""
    depends_on: Mapping[str, str] = field(default_factory=dict)
    """Service it depends on -> its condition (service_started, service_healthy...)."""


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
    config_files: tuple[str, ...] = ()
    pid: int = 0
    """Host pid of the container's main process (0 when it does not run)."""
    mounts: tuple[str, ...] = ()
    """Paths inside the container where a volume or a host directory is mounted."""
    stop_grace: int = 10
    """Seconds its main process has to exit after the stop signal (stop_grace_period)."""
    config_hash: str = ""
    """Compose's hash of the service definition it was created from."""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class Backend:
    """Where a proxy sends a service's traffic: one container's name, address and port."""

    container_id: str
    name: str
    address: str
    port: int

    @property
    def short_id(self) -> str:
        return self.container_id[:12]


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
