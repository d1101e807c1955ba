"""`up [SERVICE...]`: the project (or a stack) brought to its current definition."""

from __future__ import annotations

import sys
from typing import Any

import click

from docker_swap.cli.app import cli, fail, renamed
from docker_swap.cli.canary import decide_canaries
from docker_swap.cli.flags import canary_options, readiness_options, release_options
from docker_swap.cli.output import presenter
from docker_swap.cli.targeting import resolve_image_option, stack_of, swarm_option
from docker_swap.errors import InvalidSettings
from docker_swap.options import ComposeOptions
from docker_swap.settings import parse_verify


@cli.command("up")
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--parallel", type=click.IntRange(1, 16), default=1, show_default=True,
              help="How many independent services may change side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but failures.")
@readiness_options
@release_options
@canary_options
@resolve_image_option
@swarm_option
@click.pass_obj
def up_command(compose: ComposeOptions, /, services: tuple[str, ...], dry_run: bool,
               parallel: int, as_json: bool, quiet: bool, verify: tuple[str, ...],
               verify_rate: str, resolve_image: str, swarm: bool | None,
               **flags: Any) -> None:
    """Bring the project (or SERVICEs and what they depend on) to its current definition.

    Each service gets one action: unchanged, start, scale, swap (behind a proxy, batch by
    batch from deploy.update_config), replace (no proxy, start-first) or recreate (cannot run
    twice: compose's stop-then-start, with downtime). Dependencies go first. Readiness, hook
    and watch flags apply to the SERVICEs named, or to every service when none is. On a Swarm
    stack: `docker stack deploy`, with a bridge for each proxied service it changes.
    """
    from docker_swap.rollout.up import up  # noqa: PLC0415

    with presenter(as_json=as_json, quiet=quiet) as shown:
        try:
            checks = parse_verify(verify, verify_rate)
            given = renamed(flags)
            target = stack_of(compose, swarm, given, services)
            if target is not None:
                from docker_swap.rollout.stack import stack_up  # noqa: PLC0415

                if parallel != 1:
                    raise InvalidSettings("--parallel does not apply to a Swarm stack: "
                                          "`docker stack deploy` updates its services at once.")
                report = stack_up(target, services, dry_run=dry_run, observer=shown,
                                  resolve_image=resolve_image, verify=checks)
            else:
                report = up(services, compose_options=compose, dry_run=dry_run,
                            parallel=parallel, observer=shown, flags=given, verify=checks)
        except Exception as error:
            fail(shown, error, " ".join(services) or "SERVICE")
        started = [s for s in report.services if s.canary is not None]
        seconds = next((s.canary.decide_after for s in started if s.canary), None)
        if seconds and report.exit_code == 0:
            shown.upped(report)
            sys.exit(decide_canaries(shown, compose, [s.name for s in started], seconds,
                                     given, checks))
    shown.upped(report)
    sys.exit(report.exit_code)
