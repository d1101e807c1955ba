"""Frozen option objects, their defaults, and the merge of `x-swap` settings with flags.

No I/O here: values come in as plain data and leave validated, or as `InvalidSettings`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .errors import InvalidSettings

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

DEMO_PORT = 8080
DEMO_SWAPS = 3
"""`docker-swap demo`: the example's host port, and how many swaps it makes."""
PROXY_DRIVERS = ("nginx", "haproxy", "redis")
REDIS_URL_ENV = "DOCKER_SWAP_REDIS_URL"
"""Where the registry's Redis URL is read when neither --redis nor x-swap.redis gives it."""
"""nginx and haproxy take the compose service that runs them; redis takes none."""
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
    "settle",
)
READINESS_KEYS = ("health-cmd", "http")
"""One choice written two ways: a readiness flag replaces both x-swap keys."""
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


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
                "nginx or haproxy (for example nginx:proxy)."
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
    settle: float = DEFAULT_SETTLE

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.service


def resolve_settings(
    service: str, x_swap: Mapping[str, object], flags: Mapping[str, object | None]
) -> DeployOptions:
    """Merge the service's `x-swap` mapping with command-line flags; flags win."""
    unknown = sorted(set(x_swap) - set(SWAP_KEYS))
    if unknown:
        raise InvalidSettings(
            f"x-swap of service {service!r} has unknown key {unknown[0]!r}; "
            f"known keys are {', '.join(SWAP_KEYS)}."
        )
    given = {key: value for key, value in flags.items() if value is not None}
    replaced = READINESS_KEYS if set(given) & set(READINESS_KEYS) else ()
    sources = {key: ("x-swap", value) for key, value in x_swap.items() if key not in replaced}
    sources |= {key: ("flag", value) for key, value in given.items()}

    def get(key: str) -> tuple[str, object] | None:
        return sources.get(key)

    return DeployOptions(
        service=service,
        proxy=_parsed(get("proxy"), "proxy", lambda v: ProxyRef.parse(_text(v))),
        port=_parsed(get("port"), "port", _port),
        health_cmd=_parsed(get("health-cmd"), "health-cmd", _argv),
        http_path=_parsed(get("http"), "http", _http_path),
        timeout=_parsed(get("timeout"), "timeout", parse_duration) or DEFAULT_TIMEOUT,
        drain_timeout=_parsed(get("drain-timeout"), "drain-timeout", parse_duration)
        or DEFAULT_DRAIN_TIMEOUT,
        switch_timeout=_parsed(get("switch-timeout"), "switch-timeout", parse_duration)
        or DEFAULT_SWITCH_TIMEOUT,
        upstream=_parsed(get("upstream"), "upstream", _upstream),
        redis=_parsed(get("redis"), "redis", _redis_url),
        settle=_parsed(get("settle"), "settle", parse_duration) or DEFAULT_SETTLE,
    )


def parse_duration(value: object) -> float:
    """Seconds from a number or a compose-style duration such as ``30s``, ``1m30s``, ``500ms``."""
    if isinstance(value, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = _text(value).strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(f"(?:{_DURATION_PART.pattern})+", text):
            seconds = sum(
                float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)
            )
        else:
            raise ValueError("a duration such as 30, 30s, 1m30s or 500ms")
    if seconds <= 0:
        raise ValueError("a duration greater than zero")
    return seconds


T = TypeVar("T")


def _parsed(
    source: tuple[str, object] | None, key: str, parse: Callable[[object], T]
) -> T | None:
    if source is None:
        return None
    where, value = source
    try:
        return parse(value)
    except InvalidSettings:
        raise
    except ValueError as exc:
        label = f"--{key}" if where == "flag" else f"x-swap key {key!r}"
        shown = redact(value) if isinstance(value, str) else value
        raise InvalidSettings(f"{label} has value {shown!r}; expected {exc}.") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _port(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("a port number from 1 to 65535")
    return value


def _argv(value: object) -> tuple[str, ...]:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    argv = tuple(shlex.split(_text(value)))
    if not argv:
        raise ValueError("a command such as ./healthcheck")
    return argv


def _http_path(value: object) -> str:
    path = _text(value)
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise ValueError("a path starting with / such as /healthz")
    return path


def _upstream(value: object) -> str:
    name = _text(value)
    if not _UPSTREAM_NAME.match(name):
        raise ValueError("a name of letters, digits, '_', '.' and '-'")
    return name


def _redis_url(value: object) -> str:
    url = _text(value)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("a URL such as redis://HOST:6379/0 or rediss://USER:PASSWORD@HOST")
    return url


def redact(text: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", text)
