"""Frozen option objects, their defaults, and the merge of `x-swap` settings with flags.

No I/O here: values come in as plain data and leave validated, or as `InvalidSettings`.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

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
)
SECRET_KEYS = ("registry-key",)
"""Keys whose values are never shown in a message."""
READINESS_KEYS = ("health-cmd", "http")
"""One choice written two ways: a readiness flag replaces both x-swap keys."""
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HTTP_PATH = re.compile(r"/[!-~]*")  # what goes on a request line as it is
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
        hooks=_hooks(service, x_swap.get("hooks"), given),
        hook_timeout=_parsed(get("hook-timeout"), "hook-timeout", parse_duration)
        or DEFAULT_HOOK_TIMEOUT,
        watch=_parsed(get("watch"), "watch", parse_duration),
        max_error_rate=_parsed(get("max-error-rate"), "max-error-rate", parse_rate),
        redis_password_file=_parsed(get("redis-password-file"), "redis-password-file", _path),
        registry_key=_parsed(get("registry-key"), "registry-key", _text),
        registry_namespace=_parsed(get("registry-namespace"), "registry-namespace", _namespace),
        keep=_parsed(get("keep"), "keep", _keep) or DEFAULT_KEEP,
        settle=_parsed(get("settle"), "settle", parse_duration) or DEFAULT_SETTLE,
    )


def parse_duration(value: object) -> float:
    """Seconds from a number or a compose-style duration such as ``30s``, ``1m30s``, ``500ms``:
    finite, above zero and at most MAX_DURATION. Raises ValueError saying what is expected."""
    if isinstance(value, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(value, int) and abs(value) > MAX_DURATION:
        seconds = math.inf  # float() of a 400-digit number would overflow
    elif isinstance(value, int | float):
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
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"a duration of at most {MAX_DURATION // 3600:g}h")
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
        if key in SECRET_KEYS:
            raise InvalidSettings(f"{label} has a value we cannot use; expected {exc}.") from None
        raise InvalidSettings(f"{label} has value {_shown(value)}; expected {exc}.") from None


def _shown(value: object) -> str:
    """The value for a message: passwords redacted, cut when long."""
    try:
        text = repr(redact(value) if isinstance(value, str) else value)
    except ValueError:  # an int too long to turn into digits
        return "(a number too long to show)"
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


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


def _keep(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValueError("a number of releases from 1 to 100")
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
    if not _HTTP_PATH.fullmatch(path):
        raise ValueError("a path starting with / such as /healthz, in printable ASCII without "
                         "spaces (percent-encode the rest)")
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


def _path(value: object) -> str:
    path = _text(value)
    if not path.strip():
        raise ValueError("the path of a file")
    return path


def _namespace(value: object) -> str:
    name = _text(value)
    if not _NAMESPACE.fullmatch(name):
        raise ValueError("a name of at most 64 letters, digits, '_', '.' and '-'")
    return name


_USERINFO_PASSWORD = re.compile(r"(?P<head>\w+://[^/?#@:\s]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl_)?password=)[^&\s]*", re.IGNORECASE)




@dataclass(frozen=True)
class VerifyOptions:
    """`--verify URL`: a light, steady load that docker-swap itself sends during a deploy."""

    urls: tuple[str, ...] = ()
    rate: float = DEFAULT_VERIFY_RATE


def parse_verify(urls: tuple[str, ...], rate: object) -> VerifyOptions:
    """Validated --verify URLs and --verify-rate; InvalidSettings names what is wrong."""
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii() \
                or any(c.isspace() for c in url):
            raise InvalidSettings(
                f"--verify has value {url!r}; expected an http:// or https:// URL such as "
                "http://127.0.0.1:8080/."
            )
    try:
        per_second = float(rate) if isinstance(rate, int | float | str) else float("nan")
    except ValueError:
        per_second = float("nan")
    if not (0 < per_second <= 1000):
        raise InvalidSettings(f"--verify-rate has value {rate!r}; expected requests per second "
                              "from 1 to 1000, such as 20.")
    return VerifyOptions(urls, per_second)


def parse_rate(value: object) -> float:
    """A share from 0 to 1, written 0.05 or 5%."""
    text = value.strip() if isinstance(value, str) else value
    try:
        if isinstance(text, str) and text.endswith("%"):
            share = float(text[:-1]) / 100
        elif isinstance(text, int | float | str) and not isinstance(text, bool):
            share = float(text)
        else:
            share = float("nan")
    except ValueError:
        share = float("nan")
    if not 0 <= share <= 1:
        raise ValueError("a share of answers such as 0.05 or 5%")
    return share


def _hooks(
    service: str, x_swap_hooks: object, flags: Mapping[str, object]
) -> dict[str, tuple[str, ...]]:
    """x-swap `hooks:` (a mapping of HOOKS to commands), each overridden by its own flag."""
    if x_swap_hooks is None:
        x_swap_hooks = {}
    if not isinstance(x_swap_hooks, dict):
        raise InvalidSettings(f"x-swap key 'hooks' of service {service!r} must map "
                              f"{', '.join(HOOKS)} to commands.")
    unknown = sorted(set(x_swap_hooks) - set(HOOKS))
    if unknown:
        raise InvalidSettings(f"x-swap hooks of service {service!r} has unknown hook "
                              f"{unknown[0]!r}; known hooks are {', '.join(HOOKS)}.")
    chosen = {name: _parsed(("x-swap", command), f"hooks.{name}", _argv)
              for name, command in x_swap_hooks.items()}
    chosen |= {name: _parsed(("flag", flags[name]), name, _argv) for name in HOOKS
               if name in flags}
    return {name: argv for name, argv in chosen.items() if argv}


def redact(text: str) -> str:
    """`text` with every password in a URL replaced by `***`: the userinfo's
    (`redis://:pw@`, `redis://user:pw@`, up to the last `@` before a space, so a password
    holding `@` or `/` is hidden whole) and the
    query's (`?password=`, `&ssl_password=`). The one redaction of every message that may show
    a Redis URL."""
    text = _QUERY_PASSWORD.sub(r"\g<head>***", text)
    return _USERINFO_PASSWORD.sub(r"\g<head>***@", text)
