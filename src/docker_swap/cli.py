"""`docker-swap [COMPOSE OPTIONS] COMMAND`: flags in, one domain call, output and exit code out.

Exit codes: 0 done, 1 the deploy failed and was rolled back, 2 refused before anything changed,
3 needs attention (a rollback or retire could not finish; `docker-swap recover` resumes it).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from ._version import __version__
from .agent import run_agent
from .errors import EXIT_REFUSED, SwapError
from .observer import Observer
from .options import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_SWITCH_TIMEOUT,
    DEFAULT_TIMEOUT,
    ComposeOptions,
    parse_duration,
)
from .output import (
    LineObserver,
    deployed_json,
    error_json,
    print_deployed,
    print_error,
    print_recovery,
    recovery_json,
)
from .recovery import recover, sync
from .swap import deploy

F = TypeVar("F", bound=Callable[..., Any])


class _NotesOnly:
    """With --json, phases go into the final object; notes are kept for it too."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def phase_started(self, name: str) -> None:
        pass

    def phase_finished(self, result: object) -> None:
        pass

    def note(self, text: str) -> None:
        self.notes.append(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "files", multiple=True, metavar="FILE",
              help="Compose file (repeatable), as for `docker compose`.")
@click.option("-p", "--project-name", metavar="NAME", help="Compose project name.")
@click.option("--project-directory", metavar="DIR", help="Compose project directory.")
@click.option("--env-file", "env_files", multiple=True, metavar="FILE",
              help="Compose env file (repeatable).")
@click.option("--profile", "profiles", multiple=True, metavar="NAME",
              help="Compose profile to enable (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="Log every command and API call.")
@click.version_option(__version__, "--version", prog_name="docker-swap")
@click.pass_context
def cli(
    ctx: click.Context,
    files: tuple[str, ...],
    project_name: str | None,
    project_directory: str | None,
    env_files: tuple[str, ...],
    profiles: tuple[str, ...],
    verbose: bool,
) -> None:
    """Replace the running containers of a docker compose service without failing a request.

    COMPOSE OPTIONS mean what they mean to `docker compose`; COMPOSE_FILE and
    COMPOSE_PROJECT_NAME are honoured.
    """
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    ctx.obj = ComposeOptions(files, project_name, project_directory, env_files, profiles)


def _service_options(command: F) -> F:
    """The settings that may also live in the service's x-swap block; flags win."""
    for decorator in reversed([
        click.option("--proxy", metavar="DRIVER:SERVICE",
                     help="Proxy in front of the service: nginx:SERVICE, haproxy:SERVICE, or "
                     "redis (agents apply what the registry publishes). [x-swap: proxy]"),
        click.option("--redis", metavar="URL",
                     help="Redis URL of the registry, e.g. redis://:PASSWORD@HOST:6379/0 or "
                     "rediss://... (or DOCKER_SWAP_REDIS_URL). [x-swap: redis]"),
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
    ]):
        command = decorator(command)
    return command


@cli.command("deploy")
@click.argument("service")
@click.option("--health-cmd", metavar="CMD",
              help="Command run inside the new container until it exits 0 (exec, no host "
              "shell). [x-swap: health-cmd]")
@click.option("--http", "http_path", metavar="PATH",
              help="Path to GET on the new container's port until it answers 2xx. "
              "[x-swap: http]")
@click.option("--timeout", metavar="DURATION",
              help=f"How long the new container has to become ready "
              f"(default {DEFAULT_TIMEOUT:g}s). [x-swap: timeout]")
@_service_options
@click.pass_obj
def deploy_command(compose: ComposeOptions, /, service: str, as_json: bool, **flags: Any) -> None:
    """Start the new version of SERVICE beside the old one, switch the proxy, retire the old.

    Readiness is judged by --health-cmd, else --http, else the image's HEALTHCHECK, else a TCP
    connect to the port.
    """
    console = Console(highlight=False, soft_wrap=True)
    observer: Observer = _NotesOnly() if as_json else LineObserver(console)
    try:
        report = deploy(service, compose_options=compose, flags=_renamed(flags), observer=observer)
    except SwapError as error:
        _fail(error, service, as_json, observer)
    if as_json:
        click.echo(deployed_json(report))
    else:
        print_deployed(console, report)


@cli.command("recover")
@click.argument("service")
@_service_options
@click.pass_obj
def recover_command(compose: ComposeOptions, /, service: str, as_json: bool, **flags: Any) -> None:
    """Finish or undo an interrupted deploy of SERVICE, as its journal says."""
    _run_maintenance(recover, compose, service, as_json, flags)


@cli.command("sync")
@click.argument("service")
@_service_options
@click.pass_obj
def sync_command(compose: ComposeOptions, /, service: str, as_json: bool, **flags: Any) -> None:
    """Point the proxy at the running containers of SERVICE (adopting or repairing a proxy)."""
    _run_maintenance(sync, compose, service, as_json, flags)


@cli.command("agent")
@click.argument("service")
@click.option("--name", metavar="NAME",
              help="How this agent is known in the registry (default: HOST:PROJECT-PROXY).")
@click.option("--resync", metavar="DURATION", default="5s", show_default=True,
              help="How often to look at the registry even without a message.")
@click.option("--leave", is_flag=True,
              help="Unregister this agent (deploys stop waiting for it) and exit.")
@_service_options
@click.pass_obj
def agent_command(compose: ComposeOptions, /, service: str, name: str | None, resync: str,
                  leave: bool, as_json: bool, **flags: Any) -> None:
    """Keep one proxy in line with the backends the Redis registry publishes for SERVICE.

    Run one beside each proxy (--proxy nginx:SERVICE or haproxy:SERVICE); it runs until
    stopped (Ctrl-C, SIGTERM) and stays registered, so that deploys wait for it.
    """
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    try:
        seconds = parse_duration(resync)
    except ValueError as exc:
        raise click.BadParameter(f"expected {exc}", param_hint="--resync") from None
    try:
        run_agent(service, compose_options=compose, flags=_renamed(flags), name=name,
                  resync=seconds, leave=leave, stop=stop,
                  say=lambda text: click.echo(f"{time.strftime('%H:%M:%S')} {text}"))
    except SwapError as error:
        _fail(error, service, as_json, None)


def _run_maintenance(
    action: Callable[..., Any], compose: ComposeOptions, service: str, as_json: bool,
    flags: dict[str, Any],
) -> None:
    try:
        report = action(service, compose_options=compose, flags=_renamed(flags))
    except SwapError as error:
        _fail(error, service, as_json, None)
    if as_json:
        click.echo(recovery_json(report))
    else:
        print_recovery(Console(highlight=False, soft_wrap=True), report)


def _renamed(flags: dict[str, Any]) -> dict[str, object | None]:
    """Click's parameter names to x-swap's keys, so that one merge serves both."""
    names = {"http_path": "http"}
    return {names.get(key, key).replace("_", "-"): value for key, value in flags.items()}


def _fail(error: SwapError, service: str, as_json: bool, observer: Observer | None) -> None:
    if as_json:
        notes = observer.notes if isinstance(observer, _NotesOnly) else []
        click.echo(error_json(error, service, notes))
    else:
        print_error(Console(stderr=True, highlight=False, soft_wrap=True), error)
    sys.exit(error.exit_code)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted before anything changed.", err=True)
        sys.exit(EXIT_REFUSED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_REFUSED)
    except KeyboardInterrupt:
        click.echo("interrupted before anything changed.", err=True)
        sys.exit(EXIT_REFUSED)
