"""The flags several commands share: the settings that may live in x-swap, readiness, and the
release options (hooks, the watch window, --verify). `deploy`, `rollback` and `up` take the same
ones, on a compose host and on a Swarm stack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from docker_swap.options import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_SWITCH_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEFAULT_VERIFY_RATE,
)

F = TypeVar("F", bound=Callable[..., Any])


def service_options(command: F) -> F:
    """The settings that may also live in the service's x-swap block; flags win."""
    for decorator in reversed([
        click.option("--proxy", metavar="DRIVER:SERVICE",
                     help="Proxy in front of the service: nginx:SERVICE, haproxy:SERVICE, "
                     "caddy:SERVICE, or redis (agents apply what the registry publishes). "
                     "[x-swap: proxy]"),
        click.option("--redis", metavar="URL",
                     help="Redis URL of the registry, e.g. redis://:PASSWORD@HOST:6379/0 or "
                     "rediss://... (or DOCKER_SWAP_REDIS_URL). [x-swap: redis]"),
        click.option("--redis-password-file", metavar="FILE",
                     help="File holding the Redis password, so that it is not in the URL "
                     "(or DOCKER_SWAP_REDIS_PASSWORD). [x-swap: redis-password-file]"),
        click.option("--port", type=int, metavar="PORT",
                     help="Container port the proxy sends to (default: the only exposed "
                     "port). [x-swap: port]"),
        click.option("--upstream", metavar="NAME",
                     help="nginx upstream or HAProxy backend name (default: the service "
                     "name). [x-swap: upstream]"),
        click.option("--drain-timeout", metavar="DURATION",
                     help=f"How long requests in flight may take to finish "
                     f"(default {DEFAULT_DRAIN_TIMEOUT:g}s). [x-swap: drain-timeout]"),
        click.option("--switch-timeout", metavar="DURATION",
                     help=f"How long the proxy may take to show the switch live "
                     f"(default {DEFAULT_SWITCH_TIMEOUT:g}s). [x-swap: switch-timeout]"),
        click.option("--json", "as_json", is_flag=True,
                     help="Print one JSON object instead of lines."),
        click.option("-q", "--quiet", is_flag=True,
                     help="Print nothing but failures; the exit code tells the rest."),
    ]):
        command = decorator(command)
    return command


def release_options(command: F) -> F:
    """Hooks, the watch window and --verify: what makes a deploy a release one can trust."""
    for decorator in reversed([
        click.option("--before-switch", metavar="CMD",
                     help="Run in one new container once it is ready, before any traffic "
                     "moves (migrations); failing rolls back. [x-swap: hooks.before-switch]"),
        click.option("--after-switch", metavar="CMD",
                     help="Run in one new container after the switch. "
                     "[x-swap: hooks.after-switch]"),
        click.option("--before-stop", metavar="CMD",
                     help="Run in each old container before its stop signal. "
                     "[x-swap: hooks.before-stop]"),
        click.option("--hook-timeout", metavar="DURATION",
                     help=f"How long a hook may run (default {DEFAULT_HOOK_TIMEOUT:g}s). "
                     "[x-swap: hook-timeout]"),
        click.option("--watch", metavar="DURATION",
                     help="Keep the old containers running, out of the proxy, this long after "
                     "the switch; a new container that exits or turns unhealthy switches "
                     "back to them. [x-swap: watch]"),
        click.option("--max-error-rate", metavar="RATE",
                     help="With --watch, where the proxy counts answers (HAProxy, and agents "
                     "beside HAProxy): switch back when more than this share of the new "
                     "containers' answers are 5xx (0.05 or 5%). [x-swap: max-error-rate]"),
        click.option("--verify", metavar="URL", multiple=True,
                     help="Send a light, steady load of GETs to URL during the deploy and "
                     "report what failed (repeatable)."),
        click.option("--verify-rate", metavar="N", default=str(DEFAULT_VERIFY_RATE),
                     show_default=True, help="Requests per second --verify sends to each URL."),
    ]):
        command = decorator(command)
    return command


def readiness_options(command: F) -> F:
    """How a new container is judged ready (they replace x-swap's health-cmd and http)."""
    for decorator in reversed([
        click.option("--health-cmd", metavar="CMD",
                     help="Command run inside each new container until it exits 0 (exec, no "
                     "host shell). [x-swap: health-cmd]"),
        click.option("--http", "http_path", metavar="PATH",
                     help="Path to GET on each new container's port until it answers 2xx. "
                     "[x-swap: http]"),
        click.option("--timeout", metavar="DURATION",
                     help=f"How long the new containers have to become ready "
                     f"(default {DEFAULT_TIMEOUT:g}s). [x-swap: timeout]"),
    ]):
        command = decorator(command)
    return command


def canary_options(command: F) -> F:
    """A canary: the new version on a share of the requests, until promote or abort."""
    for decorator in reversed([
        click.option("--canary", metavar="SHARE",
                     help="Start the new version beside the old one on this share of new "
                     "requests (10%), or as that many new containers weighed as the old ones "
                     "(2); `promote` or `abort` ends it. [x-swap: canary]"),
        click.option("--canary-for", metavar="DURATION",
                     help="With a canary: watch it this long, then promote it, or abort it "
                     "as soon as one of its containers exits or turns unhealthy (or passes "
                     "--max-error-rate, where the proxy counts answers per backend). "
                     "[x-swap: canary-for]"),
        click.option("--sticky/--no-sticky", default=None,
                     help="With a canary: a client stays on the side it first got (the "
                     "proxy's cookie; HAProxy and Caddy). [x-swap: sticky]"),
        click.option("--no-canary", is_flag=True,
                     help="Deploy straight, even if x-swap asks for a canary."),
    ]):
        command = decorator(command)
    return command
