"""`deploy SERVICE` and `rollback SERVICE`: one service, every replica in one batch."""

from __future__ import annotations

import sys
from typing import Any

import click

from docker_swap.cli.app import cli, fail, renamed
from docker_swap.cli.canary import decide_canaries
from docker_swap.cli.flags import (
    canary_options,
    readiness_options,
    release_options,
    service_options,
)
from docker_swap.cli.output import presenter
from docker_swap.cli.targeting import stack_of, swarm_option
from docker_swap.errors import ServiceNotFound
from docker_swap.options import ComposeOptions
from docker_swap.settings import parse_verify


@cli.command("deploy")
@click.argument("service")
@readiness_options
@release_options
@canary_options
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
    from docker_swap.rollout.deploy import deploy  # noqa: PLC0415

    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            checks = parse_verify(verify, verify_rate)
            # Compose mode is looked at first, at no cost: a stack's service has no compose
            # container, so compose mode refuses it, and only then is the swarm asked.
            target = stack_of(compose, swarm, renamed(flags), service) if swarm else None
            if target is None:
                try:
                    report = deploy(service, compose_options=compose, flags=renamed(flags),
                                    observer=shown, verify=checks)
                except ServiceNotFound:
                    target = stack_of(compose, swarm, renamed(flags), service)
                    if target is None:
                        raise
            if target is not None:
                from docker_swap.rollout.stack import stack_deploy  # noqa: PLC0415

                stacked = stack_deploy(target, service, observer=shown, verify=checks)
                shown.upped(stacked)
                sys.exit(stacked.exit_code)
        except Exception as error:
            fail(shown, error, service)
        if report.canary is not None and report.canary.decide_after:
            shown.deployed(report)
            sys.exit(decide_canaries(shown, compose, [service], report.canary.decide_after,
                                     renamed(flags), checks))
    shown.deployed(report)


@cli.command("rollback")
@click.argument("service")
@click.option("--to", "to", type=click.IntRange(min=1), metavar="N",
              help="The release to go back to (see `history`; default: the last one that "
              "deployed before the current one).")
@readiness_options
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
            checks = parse_verify(verify, verify_rate)
            target = stack_of(compose, swarm, renamed(flags), service)
            if target is not None:
                from docker_swap.rollout.stack import stack_rollback  # noqa: PLC0415

                stacked = stack_rollback(target, service, to, observer=shown, verify=checks)
                shown.upped(stacked)
                sys.exit(stacked.exit_code)
            report = rollback(service, to=to, compose_options=compose,
                              flags={**renamed(flags), "canary": False},  # never a canary
                              observer=shown, verify=checks)
        except Exception as error:
            fail(shown, error, service)
    shown.deployed(report)
