"""`status [SERVICE...]` and `history SERVICE`: what runs and what ran (nothing changes)."""

from __future__ import annotations

import sys

import click

from docker_swap.cli.app import cli, fail
from docker_swap.cli.output import presenter
from docker_swap.cli.targeting import stack_of, swarm_option
from docker_swap.cli.views import history_json, history_lines, status_json, status_lines
from docker_swap.errors import EXIT_NEEDS_ATTENTION
from docker_swap.options import ComposeOptions


@cli.command("status")
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@swarm_option
@click.pass_obj
def status_command(compose: ComposeOptions, /, services: tuple[str, ...], as_json: bool,
                   swarm: bool | None) -> None:
    """The release that runs, its containers, and what the proxy sends to (read from the
    proxy). Exits 3 when they disagree or a deploy was interrupted."""
    from docker_swap.targets.compose.status import status  # noqa: PLC0415
    from docker_swap.targets.swarm import status as stacks  # noqa: PLC0415

    try:
        target = stack_of(compose, swarm)
        if target is not None:
            found = stacks.stack_status(target, services)
            click.echo(stacks.status_json(found) if as_json else
                       "\n".join(stacks.status_lines(found)))
            sys.exit(0 if found.agrees else EXIT_NEEDS_ATTENTION)
        report = status(services, compose_options=compose)
    except Exception as error:
        fail(presenter(as_json=as_json, quiet=False), error, services[0] if services else "")
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
    from docker_swap.targets.compose.status import history  # noqa: PLC0415
    from docker_swap.targets.swarm.status import stack_history  # noqa: PLC0415

    try:
        target = stack_of(compose, swarm)
        found = stack_history(target, service) if target is not None else history(
            service, compose_options=compose)
    except Exception as error:
        fail(presenter(as_json=as_json, quiet=False), error, service)
    click.echo(history_json(found) if as_json else "\n".join(history_lines(found)))
