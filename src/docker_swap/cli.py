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
from rich.markup import escape

from ._version import __version__
from .doctor import diagnose
from .errors import EXIT_REFUSED, SwapError
from .options import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_SWITCH_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEMO_PORT,
    DEMO_SWAPS,
    ComposeOptions,
    parse_duration,
)
from .output import Presenter, demo_json, demo_report, presenter
from .plugin import install_plugin
from .recovery import RecoveryReport, recover, sync
from .swap import deploy
from .up import up

F = TypeVar("F", bound=Callable[..., Any])


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    options_metavar="[COMPOSE OPTIONS]",
    epilog="Exit codes: 0 done, 1 the deploy failed and was rolled back, 2 refused before "
    "anything changed, 3 needs attention (`docker-swap recover SERVICE`). "
    "Start with `docker-swap doctor`.",
)
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
        click.option("-q", "--quiet", is_flag=True,
                     help="Print nothing but failures; the exit code tells the rest."),
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
def deploy_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                   **flags: Any) -> None:
    """Start the new version of SERVICE beside the old one, switch the proxy, retire the old.

    Readiness is judged by --health-cmd, else --http, else the image's HEALTHCHECK, else a TCP
    connect to the port.
    """
    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            report = deploy(service, compose_options=compose, flags=_renamed(flags),
                            observer=shown)
        except SwapError as error:
            shown.failed(error, service)
            sys.exit(error.exit_code)
    shown.deployed(report)


@cli.command("up")
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--parallel", type=click.IntRange(1, 16), default=1, show_default=True,
              help="How many independent services may change side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but failures.")
@click.pass_obj
def up_command(compose: ComposeOptions, /, services: tuple[str, ...], dry_run: bool,
               parallel: int, as_json: bool, quiet: bool) -> None:
    """Bring the project (or SERVICEs and what they depend on) to its current definition.

    Each service gets one action: unchanged, start, scale, swap (behind a proxy, batch by
    batch from deploy.update_config), replace (no proxy, start-first) or recreate (cannot run
    twice: compose's stop-then-start, with downtime). Dependencies go first.
    """
    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            report = up(services, compose_options=compose, dry_run=dry_run, parallel=parallel,
                        observer=shown)
        except SwapError as error:
            shown.failed(error, " ".join(services) or "the project")
            sys.exit(error.exit_code)
    shown.upped(report)
    sys.exit(report.exit_code)


@cli.command("recover")
@click.argument("service")
@_service_options
@click.pass_obj
def recover_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                    **flags: Any) -> None:
    """Finish or undo an interrupted deploy of SERVICE, as its journal says."""
    _run_maintenance(recover, compose, service, presenter(as_json=as_json, quiet=quiet), flags)


@cli.command("sync")
@click.argument("service")
@_service_options
@click.pass_obj
def sync_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                 **flags: Any) -> None:
    """Point the proxy at the running containers of SERVICE (adopting or repairing a proxy)."""
    _run_maintenance(sync, compose, service, presenter(as_json=as_json, quiet=quiet), flags)


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
                  leave: bool, as_json: bool, quiet: bool, **flags: Any) -> None:
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
    def say(text: str) -> None:
        if not quiet:
            click.echo(f"{time.strftime('%H:%M:%S')} {text}")

    from .agent import run_agent  # noqa: PLC0415  (redis loads only for the agent)

    try:
        run_agent(service, compose_options=compose, flags=_renamed(flags), name=name,
                  resync=seconds, leave=leave, stop=stop, say=say)
    except SwapError as error:
        presenter(as_json=as_json, quiet=quiet).failed(error, service)
        sys.exit(error.exit_code)


@cli.command("demo")
@click.option("--swaps", type=click.IntRange(1, 100), default=DEMO_SWAPS, show_default=True,
              help="How many swaps (v1 -> v2 -> v1 ...).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEMO_PORT, show_default=True,
              help="Host port of the example's nginx.")
@click.option("--keep", is_flag=True, help="Leave the example running, and say where.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def demo_command(swaps: int, port: int, keep: bool, as_json: bool) -> None:
    """Bring up the bundled classic example, put it under load, swap it, report what failed."""
    from .demo import run_demo  # noqa: PLC0415  (its load generator loads only for it)

    shown = presenter(as_json=as_json, quiet=as_json)
    try:
        report = run_demo(swaps=swaps, port=port, keep=keep, observer=shown,
                          say=lambda text: None if as_json else shown.out.print(escape(text)))
    except SwapError as error:
        shown.failed(error, "app")
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        shown.err.print("demo interrupted" + ("" if keep else "; what it made is removed"))
        sys.exit(130)
    if as_json:
        click.echo(demo_json(report))
    else:
        shown.out.print(demo_report(report))


@cli.command("doctor")
@click.pass_obj
def doctor_command(compose: ComposeOptions, /) -> None:
    """Check the engine, compose, the project and each swappable service's proxy; say what to
    fix. Exits 1 when something needs fixing."""
    console = presenter(as_json=False, quiet=False).out
    healthy = True
    for finding in diagnose(compose):
        healthy = healthy and finding.ok
        mark = "[green]✓[/]" if finding.ok else "[red]✗[/]"
        console.print(f"{mark} {escape(finding.subject)}: {escape(finding.text)}")
        if finding.hint:
            console.print(f"    {escape(finding.hint)}")
    sys.exit(0 if healthy else 1)


@cli.command("install-plugin")
@click.option("--force", is_flag=True, help="Replace a file of another origin.")
def install_plugin_command(force: bool) -> None:
    """Make `docker swap ...` run docker-swap (a Docker CLI plugin; DOCKER_CONFIG honoured)."""
    try:
        path = install_plugin(force=force)
    except SwapError as error:
        presenter(as_json=False, quiet=False).failed(error, "")
        sys.exit(error.exit_code)
    click.echo(f"installed {path}: `docker swap deploy SERVICE` now runs docker-swap")


def _run_maintenance(
    action: Callable[..., RecoveryReport], compose: ComposeOptions, service: str,
    shown: Presenter, flags: dict[str, Any],
) -> None:
    try:
        report = action(service, compose_options=compose, flags=_renamed(flags))
    except SwapError as error:
        shown.failed(error, service)
        sys.exit(error.exit_code)
    shown.recovered(report)


def _renamed(flags: dict[str, Any]) -> dict[str, object | None]:
    """Click's parameter names to x-swap's keys, so that one merge serves both."""
    names = {"http_path": "http"}
    return {names.get(key, key).replace("_", "-"): value for key, value in flags.items()}


def main(argv: list[str] | None = None, prog: str = "docker-swap") -> None:
    try:
        cli.main(argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted before anything changed.", err=True)
        sys.exit(EXIT_REFUSED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_REFUSED)
    except KeyboardInterrupt:
        click.echo("interrupted before anything changed.", err=True)
        sys.exit(EXIT_REFUSED)
