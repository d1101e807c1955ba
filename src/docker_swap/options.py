"""Frozen option objects and their defaults: what a deploy should do, once settings.py has
merged and checked the service's `x-swap` settings with the flags. No I/O here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from docker_swap.errors import InvalidSettings

DEFAULT_TIMEOUT = 60.0
"""Seconds the new container has to become ready."""
DEFAULT_DRAIN_TIMEOUT = 30.0
"""Seconds requests in flight on the old container have to finish."""
DEFAULT_SWITCH_TIMEOUT = 10.0
"""Seconds the proxy has to show the new configuration live."""
DEFAULT_SETTLE = 5.0
"""Seconds a new container without a health check must keep running to count as ready
(`up` replacing a service with no proxy)."""
DEFAULT_PROBE_INTERVAL = 0.1
"""Seconds from one run of a health command to the next (each costs a process in the container)."""
NETWORK_PROBE_INTERVAL = 0.05
"""Seconds from one HTTP or TCP readiness attempt to the next (each costs one connection)."""
DEFAULT_HOOK_TIMEOUT = 300.0
"""Seconds a hook (a migration, say) may run before it counts as failed."""
DEFAULT_VERIFY_RATE = 20.0
"""Requests per second `--verify` sends to each URL, over VERIFY_CONNECTIONS connections."""
VERIFY_CONNECTIONS = 4
HOOKS = ("before-switch", "after-switch", "before-stop")
"""Where a hook runs: in one new container once ready, before any traffic moves; in one new
container after the switch; in each old container before its stop signal."""

AUTOUPDATE_POLICIES = ("never", "digest", "patch", "minor", "major")
"""x-swap.autoupdate: never; follow the tag by digest; or move to a newer tag within a patch,
minor or major version (rollout/follow_tags.py)."""
DEFAULT_INTERVAL = 300.0
"""Seconds between two checks of `docker-swap autoupdate`."""

DEFAULT_KEEP = 3
"""Releases whose images are kept for `docker-swap rollback` (x-swap `keep`)."""

DEMO_PORT = 8080
DEMO_SWAPS = 3
"""`docker-swap demo`: the example's host port, and how many swaps it makes."""
PROXY_DRIVERS = ("nginx", "haproxy", "caddy", "redis")
"""nginx, haproxy and caddy take the compose service that runs them; redis takes none."""
REDIS_URL_ENV = "DOCKER_SWAP_REDIS_URL"
"""Where the registry's Redis URL is read when neither --redis nor x-swap.redis gives it."""
REDIS_PASSWORD_ENV = "DOCKER_SWAP_REDIS_PASSWORD"
"""The Redis password, when neither the URL nor a password file gives it."""
REGISTRY_KEY_ENV = "DOCKER_SWAP_REGISTRY_KEY"
REGISTRY_KEY_FILE_ENV = "DOCKER_SWAP_REGISTRY_KEY_FILE"
"""The key that signs generations and agent reports, when x-swap.registry-key does not."""
SWAP_KEYS = (
    "proxy",
    "port",
    "health-cmd",
    "http",
    "timeout",
    "drain-timeout",
    "switch-timeout",
    "upstream",
    "redis",
    "hooks",
    "hook-timeout",
    "watch",
    "max-error-rate",
    "redis-password-file",
    "registry-key",
    "registry-namespace",
    "keep",
    "settle",
    "canary",
    "canary-for",
    "sticky",
    "autoupdate",
)
SECRET_KEYS = ("registry-key",)
"""Keys whose values are never shown in a message."""
READINESS_KEYS = ("health-cmd", "http")
"""One choice written two ways: a readiness flag replaces both x-swap keys."""
MAX_DURATION = 86400.0
"""The longest duration accepted (a day): beyond it a timeout is a mistake, not a wait."""


@dataclass(frozen=True)
class ComposeOptions:
    """The global options of `docker compose`, passed on unchanged to every call."""

    files: tuple[str, ...] = ()
    project_name: str | None = None
    project_directory: str | None = None
    env_files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        args: list[str] = []
        for file in self.files:
            args += ["--file", file]
        if self.project_name:
            args += ["--project-name", self.project_name]
        if self.project_directory:
            args += ["--project-directory", self.project_directory]
        for env_file in self.env_files:
            args += ["--env-file", env_file]
        for profile in self.profiles:
            args += ["--profile", profile]
        return args


@dataclass(frozen=True)
class ProxyRef:
    """Which proxy sends traffic to the service: a driver and the compose service running it."""

    driver: str
    service: str

    @classmethod
    def parse(cls, text: str) -> ProxyRef:
        driver, _, service = text.partition(":")
        if text == "redis":
            return cls("redis", "")
        if driver not in PROXY_DRIVERS or driver == "redis" or not service:
            raise InvalidSettings(
                f"proxy {text!r} is neither redis nor of the form DRIVER:SERVICE with DRIVER "
                "nginx, haproxy or caddy (for example nginx:proxy)."
            )
        return cls(driver, service)

    def __str__(self) -> str:
        return f"{self.driver}:{self.service}" if self.service else self.driver


@dataclass(frozen=True)
class DeployOptions:
    """What one deploy of one service should do; built by `resolve_settings`."""

    service: str
    proxy: ProxyRef | None = None
    port: int | None = None
    health_cmd: tuple[str, ...] | None = None
    http_path: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    switch_timeout: float = DEFAULT_SWITCH_TIMEOUT
    upstream: str | None = None
    redis: str | None = None
    """Redis URL of the registry (x-swap.redis, --redis, or DOCKER_SWAP_REDIS_URL)."""
    hooks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Hook name (one of HOOKS) to the command it runs."""
    hook_timeout: float = DEFAULT_HOOK_TIMEOUT
    watch: float | None = None
    """Seconds after the switch during which a failing new container switches back."""
    max_error_rate: float | None = None
    """Share (0..1) of 5xx answers from the new containers that fails the watch window."""
    redis_password_file: str | None = None
    """A file holding the Redis password (x-swap.redis-password-file, --redis-password-file)."""
    registry_key: str | None = field(default=None, repr=False)
    """x-swap.registry-key: the key itself, or `file:PATH` of a file holding it."""
    registry_namespace: str | None = None
    """Keeps this stack's registry keys apart from another's with the same project name."""
    keep: int = DEFAULT_KEEP
    """How many released images stay available for `rollback` (x-swap.keep)."""
    settle: float = DEFAULT_SETTLE
    canary: CanaryShare | None = None
    """Start the new version as a canary with this share (x-swap.canary, --canary)."""
    canary_for: float | None = None
    """Seconds to watch a canary before promoting or aborting it by itself (--canary-for)."""
    sticky: bool = False
    """A client stays on the side (canary or not) it first got: the proxy's cookie."""
    autoupdate: str = "never"
    """How `docker-swap autoupdate` follows the service's image (x-swap.autoupdate)."""

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.service


@dataclass(frozen=True)
class CanaryShare:
    """What a canary gets: `percent` of new requests (0 < percent < 100), or `replicas` new
    containers weighted as the old ones are."""

    percent: float | None = None
    replicas: int | None = None

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.replicas)

    def containers(self, replicas: int) -> int:
        """How many canary containers start beside a service of `replicas`: its replicas, or
        enough to carry the percent as the old ones carry theirs (at least one)."""
        if self.replicas is not None:
            return self.replicas
        assert self.percent is not None
        return max(1, min(replicas, math.ceil(replicas * self.percent / 100 - 1e-9)))


@dataclass(frozen=True)
class VerifyOptions:
    """`--verify URL`: a light, steady load that docker-swap itself sends during a deploy."""

    urls: tuple[str, ...] = ()
    rate: float = DEFAULT_VERIFY_RATE
