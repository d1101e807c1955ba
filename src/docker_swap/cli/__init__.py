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
from typing import Any, NoReturn, TypeVar

import click
from rich.markup import escape

from docker_swap._version import __version__
from docker_swap.cli.doctor import diagnose
from docker_swap.cli.flags import release_options, service_options
from docker_swap.cli.output import Presenter, demo_json, demo_report, presenter
from docker_swap.cli.plugin import install_plugin
from docker_swap.cli.swarm import (
    maintain_stack,
    print_stack_history,
    print_stack_status,
    refuse_unsupported,
    resolve_image_option,
    stack_of,
    swarm_option,
)
from docker_swap.errors import (
    EXIT_NEEDS_ATTENTION,
    EXIT_REFUSED,
    InvalidSettings,
    ServiceNotFound,
    SwapError,
    unexpected,
)
from docker_swap.options import (
    DEFAULT_TIMEOUT,
    DEMO_PORT,
    DEMO_SWAPS,
    ComposeOptions,
    parse_duration,
    parse_verify,
)
from docker_swap.rollout.recover import recover, sync
from docker_swap.rollout.deploy import deploy
from docker_swap.rollout.up import up

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


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
@release_options
@service_options
@swarm_option
@click.pass_obj
def deploy_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                   verify: tuple[str, ...], verify_rate: str, swarm: bool | None,
                   **flags: Any) -> None:
    """Start the new version of SERVICE beside the old one, switch the proxy, retire the old.

    Readiness is judged by --health-cmd, else --http, else the image's HEALTHCHECK, else a TCP
    connect to the port. On a Swarm stack: every task of SERVICE is replaced (docs/swarm.md).
    """
    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            # Compose mode is looked at first, at no cost: a stack's service has no compose
            # container, so compose mode refuses it, and only then is the swarm asked.
            target = stack_of(compose, swarm, _renamed(flags), service) if swarm else None
            if target is None:
                try:
                    report = deploy(service, compose_options=compose, flags=_renamed(flags),
                                    observer=shown, verify=parse_verify(verify, verify_rate))
                except ServiceNotFound:
                    target = stack_of(compose, swarm, _renamed(flags), service)
                    if target is None:
                        raise
            if target is not None:
                from docker_swap.rollout.stack_commands import stack_deploy  # noqa: PLC0415

                refuse_unsupported(verify)
                stacked = stack_deploy(target, service, observer=shown)
                shown.upped(stacked)
                sys.exit(stacked.exit_code)
        except Exception as error:
            _fail(shown, error, service)
    shown.deployed(report)


@cli.command("rollback")
@click.argument("service")
@click.option("--to", "to", type=click.IntRange(min=1), metavar="N",
              help="The release to go back to (see `history`; default: the last one that "
              "deployed before the current one).")
@click.option("--health-cmd", metavar="CMD",
              help="Command run inside the new container until it exits 0. [x-swap: health-cmd]")
@click.option("--http", "http_path", metavar="PATH",
              help="Path to GET on the new container's port until 2xx. [x-swap: http]")
@click.option("--timeout", metavar="DURATION",
              help=f"How long the new container has to become ready "
              f"(default {DEFAULT_TIMEOUT:g}s). [x-swap: timeout]")
@release_options
@service_options
@swarm_option
@click.pass_obj
def rollback_command(compose: ComposeOptions, /, service: str, to: int | None, as_json: bool,
                     quiet: bool, verify: tuple[str, ...], verify_rate: str,
                     swarm: bool | None, **flags: Any) -> None:
    """Swap SERVICE back to an earlier release's image, as a deploy does (no downtime)."""
    from docker_swap.rollout.rollback import rollback  # noqa: PLC0415

    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            target = stack_of(compose, swarm, _renamed(flags), service)
            if target is not None:
                from docker_swap.rollout.stack_commands import stack_rollback  # noqa: PLC0415

                refuse_unsupported(verify)
                stacked = stack_rollback(target, service, to, observer=shown)
                shown.upped(stacked)
                sys.exit(stacked.exit_code)
            report = rollback(service, to=to, compose_options=compose, flags=_renamed(flags),
                              observer=shown, verify=parse_verify(verify, verify_rate))
        except Exception as error:
            _fail(shown, error, service)
    shown.deployed(report)


@cli.command("status")
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@swarm_option
@click.pass_obj
def status_command(compose: ComposeOptions, /, services: tuple[str, ...], as_json: bool,
                   swarm: bool | None) -> None:
    """The release that runs, its containers, and what the proxy sends to (read from the
    proxy). Exits 3 when they disagree or a deploy was interrupted."""
    from docker_swap.cli.views import status_json, status_lines  # noqa: PLC0415
    from docker_swap.targets.compose.status import status  # noqa: PLC0415

    try:
        target = stack_of(compose, swarm)
        if target is not None:
            print_stack_status(target, services, as_json)
        report = status(services, compose_options=compose)
    except Exception as error:
        _fail(presenter(as_json=as_json, quiet=False), error, services[0] if services else "")
    click.echo(status_json(report) if as_json else "\n".join(status_lines(report)))
    sys.exit(0 if report.agrees else EXIT_NEEDS_ATTENTION)


@cli.command("history")
@click.argument("service")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@swarm_option
@click.pass_obj
def history_command(compose: ComposeOptions, /, service: str, as_json: bool,
                    swarm: bool | None) -> None:
    """The releases of SERVICE, newest first (* marks the one that runs)."""
    from docker_swap.cli.views import history_json, history_lines  # noqa: PLC0415
    from docker_swap.targets.compose.status import history  # noqa: PLC0415

    try:
        target = stack_of(compose, swarm)
        if target is not None:
            print_stack_history(target, service, as_json)
            return
        found = history(service, compose_options=compose)
    except Exception as error:
        _fail(presenter(as_json=as_json, quiet=False), error, service)
    click.echo(history_json(found) if as_json else "\n".join(history_lines(found)))


@cli.command("up")
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--parallel", type=click.IntRange(1, 16), default=1, show_default=True,
              help="How many independent services may change side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but failures.")
@resolve_image_option
@swarm_option
@click.pass_obj
def up_command(compose: ComposeOptions, /, services: tuple[str, ...], dry_run: bool,
               parallel: int, as_json: bool, quiet: bool, resolve_image: str,
               swarm: bool | None) -> None:
    """Bring the project (or SERVICEs and what they depend on) to its current definition.

    Each service gets one action: unchanged, start, scale, swap (behind a proxy, batch by
    batch from deploy.update_config), replace (no proxy, start-first) or recreate (cannot run
    twice: compose's stop-then-start, with downtime). Dependencies go first. On a Swarm
    stack: `docker stack deploy`, with a bridge for each proxied service it changes.
    """
    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            target = stack_of(compose, swarm)
            if target is not None:
                from docker_swap.rollout.stack_commands import stack_up  # noqa: PLC0415

                if parallel != 1:
                    raise InvalidSettings("--parallel does not apply to a Swarm stack: "
                                          "`docker stack deploy` updates its services at once.")
                report = stack_up(target, services, dry_run=dry_run, observer=shown,
                                  resolve_image=resolve_image)
                shown.upped(report)
                sys.exit(report.exit_code)
            report = up(services, compose_options=compose, dry_run=dry_run, parallel=parallel,
                        observer=shown)
        except Exception as error:
            _fail(shown, error, " ".join(services) or "SERVICE")
    shown.upped(report)
    sys.exit(report.exit_code)


@cli.command("recover")
@click.argument("service")
@service_options
@swarm_option
@click.pass_obj
def recover_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                    swarm: bool | None, **flags: Any) -> None:
    """Finish or undo an interrupted deploy of SERVICE, as its journal says (on a Swarm
    stack: point the proxies at what runs and remove what a killed rollout left)."""
    _run_maintenance("recover", compose, service, presenter(as_json=as_json, quiet=quiet),
                     flags, swarm)


@cli.command("sync")
@click.argument("service")
@service_options
@swarm_option
@click.pass_obj
def sync_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                 swarm: bool | None, **flags: Any) -> None:
    """Point the proxy at the running containers of SERVICE (adopting or repairing a proxy;
    on a Swarm stack: at the tasks it runs now)."""
    _run_maintenance("sync", compose, service, presenter(as_json=as_json, quiet=quiet), flags,
                     swarm)


@cli.command("agent")
@click.argument("service")
@click.option("--name", metavar="NAME",
              help="How this agent is known in the registry (default: HOST:PROJECT-PROXY).")
@click.option("--resync", metavar="DURATION", default="5s", show_default=True,
              help="How often to look at the registry even without a message.")
@click.option("--leave", is_flag=True,
              help="Unregister this agent (deploys stop waiting for it) and exit.")
@click.option("--stack", metavar="NAME",
              help="The proxy is a task of Swarm stack NAME on this engine's node (the agent "
              "runs as a global service of the stack; no compose file is read).")
@service_options
@click.pass_obj
def agent_command(compose: ComposeOptions, /, service: str, name: str | None, resync: str,
                  leave: bool, stack: str | None, as_json: bool, quiet: bool,
                  **flags: Any) -> None:
    """Keep one proxy in line with the backends the Redis registry publishes for SERVICE.

    Run one beside each proxy (--proxy nginx:, haproxy: or caddy:SERVICE); it runs until
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

    from docker_swap.agent import run_agent  # noqa: PLC0415  (redis loads only for the agent)

    try:
        run_agent(service, compose_options=compose, flags=_renamed(flags), name=name,
                  resync=seconds, leave=leave, stop=stop, say=say, stack=stack)
    except Exception as error:
        _fail(presenter(as_json=as_json, quiet=quiet), error, service)


@cli.command("demo")
@click.option("--swaps", type=click.IntRange(1, 100), default=DEMO_SWAPS, show_default=True,
              help="How many swaps (v1 -> v2 -> v1 ...).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEMO_PORT, show_default=True,
              help="Host port of the example's nginx.")
@click.option("--keep", is_flag=True, help="Leave the example running, and say where.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def demo_command(swaps: int, port: int, keep: bool, as_json: bool) -> None:
    """Bring up the bundled classic example, put it under load, swap it, report what failed."""
    from docker_swap.demo import run_demo  # noqa: PLC0415  (its load generator loads only for it)

    shown = presenter(as_json=as_json, quiet=as_json)
    try:
        report = run_demo(swaps=swaps, port=port, keep=keep, observer=shown,
                          say=lambda text: None if as_json else shown.out.print(escape(text)))
    except Exception as error:
        _fail(shown, error, "app")
    except KeyboardInterrupt:
        shown.err.print("demo interrupted" + ("" if keep else "; what it made is removed"))
        sys.exit(130)
    if as_json:
        click.echo(demo_json(report))
    else:
        shown.out.print(demo_report(report))


@cli.command("doctor")
@swarm_option
@click.pass_obj
def doctor_command(compose: ComposeOptions, /, swarm: bool | None) -> None:
    """Check the engine, compose, the project and each swappable service's proxy; say what to
    fix. Exits 3 (needs attention) when something needs fixing."""
    console = presenter(as_json=False, quiet=False).out
    healthy = True
    for finding in diagnose(compose, swarm):
        healthy = healthy and finding.ok
        mark = "[green]✓[/]" if finding.ok else "[red]✗[/]"
        console.print(f"{mark} {escape(finding.subject)}: {escape(finding.text)}")
        if finding.hint:
            console.print(f"    {escape(finding.hint)}")
    sys.exit(0 if healthy else EXIT_NEEDS_ATTENTION)


@cli.command("install-plugin")
@click.option("--force", is_flag=True, help="Replace a file of another origin.")
def install_plugin_command(force: bool) -> None:
    """Make `docker swap ...` run docker-swap (a Docker CLI plugin; DOCKER_CONFIG honoured)."""
    try:
        path = install_plugin(force=force)
    except Exception as error:
        _fail(presenter(as_json=False, quiet=False), error, "")
    click.echo(f"installed {path}: `docker swap deploy SERVICE` now runs docker-swap")


def _run_maintenance(action: str, compose: ComposeOptions, service: str, shown: Presenter,
                     flags: dict[str, Any], swarm: bool | None) -> None:
    """`recover` or `sync`, on the stack (Swarm mode) or the compose project."""
    try:
        target = stack_of(compose, swarm, _renamed(flags), service)
        if target is not None:
            report = maintain_stack(action, target, service)
        else:
            run = {"recover": recover, "sync": sync}[action]
            report = run(service, compose_options=compose, flags=_renamed(flags))
    except Exception as error:
        _fail(shown, error, service)
    shown.recovered(report)


def _fail(shown: Presenter, error: Exception, service: str) -> NoReturn:
    """Say what failed and exit with its code; an error docker-swap did not expect needs
    attention (exit 3): nobody can say what it left behind, and the journal is kept."""
    if not isinstance(error, SwapError):
        log.debug("unexpected error", exc_info=error)
        error = unexpected(error, service)
    shown.failed(error, service)
    sys.exit(error.exit_code)


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
    except Exception as exc:  # a command's own handler did not see it (doctor, say)
        log.debug("unexpected error", exc_info=exc)
        click.echo(f"needs attention: {unexpected(exc, '').message}", err=True)
        sys.exit(EXIT_NEEDS_ATTENTION)
