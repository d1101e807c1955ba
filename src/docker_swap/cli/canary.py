"""`promote SERVICE` and `abort SERVICE`: what ends a canary (`deploy`/`up` --canary starts
one), and the decision `--canary-for` makes by itself."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from docker_swap.cli.app import cli, fail, renamed
from docker_swap.cli.flags import readiness_options, release_options, service_options
from docker_swap.cli.output import Presenter, presenter
from docker_swap.cli.targeting import stack_of, swarm_option
from docker_swap.errors import EXIT_NEEDS_ATTENTION, EXIT_ROLLED_BACK, InvalidSettings
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.settings import parse_verify

_NOT_ON_A_STACK = "a canary cannot run on a Swarm stack yet, so there is none to {}."


@cli.command("promote")
@click.argument("service")
@readiness_options
@release_options
@service_options
@swarm_option
@click.pass_obj
def promote_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                    verify: tuple[str, ...], verify_rate: str, swarm: bool | None,
                    **flags: Any) -> None:
    """Roll SERVICE's canary out: its old containers are replaced batch by batch, as `up`
    does (deploy.update_config), while the canary's stay. A failure rolls back to the canary."""
    from docker_swap.rollout.promote import promote  # noqa: PLC0415

    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            checks = parse_verify(verify, verify_rate)
            if stack_of(compose, swarm, renamed(flags), service) is not None:
                raise InvalidSettings(_NOT_ON_A_STACK.format("promote"))
            report = promote(service, compose_options=compose, flags=renamed(flags),
                             observer=shown, verify=checks)
        except Exception as error:
            fail(shown, error, service)
    shown.upped(report)
    sys.exit(report.exit_code)


@cli.command("abort")
@click.argument("service")
@release_options
@service_options
@swarm_option
@click.pass_obj
def abort_command(compose: ComposeOptions, /, service: str, as_json: bool, quiet: bool,
                  verify: tuple[str, ...], verify_rate: str, swarm: bool | None,
                  **flags: Any) -> None:
    """Send every request of SERVICE back to its old containers, confirmed, drain its
    canary's, and remove them (the before-stop hook runs in each)."""
    from docker_swap.rollout.canary import abort  # noqa: PLC0415

    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            checks = parse_verify(verify, verify_rate)
            if stack_of(compose, swarm, renamed(flags), service) is not None:
                raise InvalidSettings(_NOT_ON_A_STACK.format("abort"))
            report = abort(service, compose_options=compose, flags=renamed(flags),
                           observer=shown, verify=checks)
        except Exception as error:
            fail(shown, error, service)
    shown.aborted(report)


def decide_canaries(shown: Presenter, compose: ComposeOptions, services: Sequence[str],
                    seconds: float, flags: dict[str, object | None],
                    verify: VerifyOptions) -> int:
    """--canary-for: watch the canaries just started, then promote or abort each; the exit
    code of the whole command."""
    from docker_swap.rollout.canary_watch import decide  # noqa: PLC0415

    try:
        decisions = decide(services, seconds, compose_options=compose, flags=flags,
                           observer=shown, verify=verify)
    except Exception as error:
        fail(shown, error, " ".join(services))
    shown.decided(decisions)
    codes = {d.exit_code for d in decisions}
    return EXIT_NEEDS_ATTENTION if EXIT_NEEDS_ATTENTION in codes else \
        EXIT_ROLLED_BACK if EXIT_ROLLED_BACK in codes else max(codes, default=0)
