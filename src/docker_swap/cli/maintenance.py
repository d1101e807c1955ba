"""`recover SERVICE` and `sync SERVICE`: a service and its proxy brought back in line."""

from __future__ import annotations

from typing import Any

import click

from docker_swap.cli.app import cli, fail, renamed
from docker_swap.cli.flags import service_options
from docker_swap.cli.output import presenter
from docker_swap.cli.targeting import stack_of, swarm_option
from docker_swap.options import ComposeOptions


@cli.command("recover")
@click.argument("service")
@service_options
@swarm_option
@click.pass_obj
def recover_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                    swarm: bool | None, **flags: Any) -> None:
    """Finish or undo an interrupted deploy of SERVICE, as its journal says (on a Swarm
    stack: point the proxies at what runs and remove what a killed rollout left)."""
    _maintain("recover", compose, service, as_json, quiet, flags, swarm)


@cli.command("sync")
@click.argument("service")
@service_options
@swarm_option
@click.pass_obj
def sync_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                 swarm: bool | None, **flags: Any) -> None:
    """Point the proxy at the running containers of SERVICE (adopting or repairing a proxy;
    on a Swarm stack: at the tasks it runs now)."""
    _maintain("sync", compose, service, as_json, quiet, flags, swarm)


def _maintain(action: str, compose: ComposeOptions, service: str, as_json: bool, quiet: bool,
              flags: dict[str, Any], swarm: bool | None) -> None:
    """`recover` or `sync`, on the stack (Swarm mode) or the compose project."""
    from docker_swap.rollout.recover import recover, sync  # noqa: PLC0415

    shown = presenter(as_json=as_json, quiet=quiet)
    try:
        target = stack_of(compose, swarm, renamed(flags), service)
        if target is not None:
            from docker_swap.rollout.stack_recover import stack_recover, stack_sync  # noqa: PLC0415

            report = (stack_recover if action == "recover" else stack_sync)(target, service)
        else:
            run = recover if action == "recover" else sync
            report = run(service, compose_options=compose, flags=renamed(flags))
    except Exception as error:
        fail(shown, error, service)
    shown.recovered(report)
