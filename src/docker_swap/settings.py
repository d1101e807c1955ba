"""The merge of a service's `x-swap` settings with the command-line flags, and every parser of
a setting's value: values come in as plain data and leave validated, or as `InvalidSettings`
(one sentence naming the key). No I/O here. `redact` hides the passwords of every URL a
message may show.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from docker_swap.errors import InvalidSettings, redact
from docker_swap.options import (
    AUTOUPDATE_POLICIES,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_KEEP,
    DEFAULT_SETTLE,
    DEFAULT_SWITCH_TIMEOUT,
    DEFAULT_TIMEOUT,
    HOOKS,
    MAX_DURATION,
    READINESS_KEYS,
    SECRET_KEYS,
    SWAP_KEYS,
    CanaryShare,
    DeployOptions,
    ProxyRef,
    VerifyOptions,
)

__all__ = ["parse_duration", "parse_rate", "parse_share", "parse_verify", "redact",
           "resolve_settings"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_UPSTREAM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HTTP_PATH = re.compile(r"/[!-~]*")  # what goes on a request line as it is


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

    options = DeployOptions(
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
        canary=None if given.get("canary") is False else _parsed(get("canary"), "canary",
                                                                 parse_share),
        canary_for=_parsed(get("canary-for"), "canary-for", parse_duration),
        sticky=bool(_parsed(get("sticky"), "sticky", _flag)),
        autoupdate=_parsed(get("autoupdate"), "autoupdate", _policy) or "never",
    )
    loose = [f"--{key}" for key in ("canary-for", "sticky") if given.get(key)]
    if loose and options.canary is None:
        raise InvalidSettings(f"{loose[0]} applies to a canary, and none is asked for.",
                              hint="Give --canary SHARE too (or x-swap canary).")
    return options


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
    if not _UPSTREAM_NAME.fullmatch(name):  # (match with `$` lets a trailing newline in)
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






def parse_verify(urls: tuple[str, ...], rate: object) -> VerifyOptions:
    """Validated --verify URLs and --verify-rate; InvalidSettings names what is wrong."""
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii() \
                or any(c.isspace() for c in url):
            raise InvalidSettings(
                f"--verify has value {redact(url)!r}; expected an http:// or https:// URL such as "
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


def parse_share(value: object) -> CanaryShare:
    """A canary's share: a percentage above 0 and below 100 (`10%`, `2.5%`), or a number of
    replicas (`1`, `2`)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, int) and not isinstance(text, bool) and 1 <= text <= 1000:
        return CanaryShare(replicas=text)
    if isinstance(text, str) and re.fullmatch(r"[1-9][0-9]{0,2}", text):
        return CanaryShare(replicas=int(text))
    if isinstance(text, str) and re.fullmatch(r"[0-9]{1,2}(?:\.[0-9]{1,2})?%", text):
        percent = float(text[:-1])
        if 0 < percent < 100:
            return CanaryShare(percent=percent)
    raise ValueError("a share of requests above 0% and below 100% (such as 10%), or a number "
                     "of canary replicas (such as 1)")


def _policy(value: object) -> str:
    if value not in AUTOUPDATE_POLICIES:
        raise ValueError(f"one of {', '.join(AUTOUPDATE_POLICIES)}")
    return str(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


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
