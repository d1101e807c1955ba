"""The commands' Swarm mode: `--swarm/--no-swarm`, and what each command prints for a stack.

Each command in cli.py asks `stack_of` first; None means compose mode, as before.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from docker_swap.errors import EXIT_NEEDS_ATTENTION, InvalidSettings
from docker_swap.options import ComposeOptions

if TYPE_CHECKING:
    from docker_swap.rollout.recover import RecoveryReport
    from docker_swap.targets.swarm.stack import StackTarget

F = TypeVar("F", bound=Callable[..., Any])

RESOLVE_IMAGE = ("always", "changed", "never")


def swarm_option(command: F) -> F:
    return click.option(
        "--swarm/--no-swarm", "swarm", default=None,
        help="Work on the Swarm stack named as the project (default: when the engine is a "
        "swarm manager and that stack runs).")(command)


def resolve_image_option(command: F) -> F:
    return click.option(
        "--resolve-image", type=click.Choice(RESOLVE_IMAGE), default="always",
        show_default=True,
        help="Swarm mode: passed to `docker stack deploy` (use the value you deploy with).",
    )(command)


def stack_of(compose: ComposeOptions, swarm: bool | None,
             flags: Mapping[str, object | None] | None = None,
             service: str | None = None) -> StackTarget | None:
    """The stack to work on (Swarm mode), or None (compose mode)."""
    if swarm is False:
        return None
    from docker_swap.targets.swarm.stack import open_stack  # noqa: PLC0415  (the Docker SDK loads here)

    return open_stack(compose, flags or {}, swarm, service)


def refuse_unsupported(verify: tuple[str, ...]) -> None:
    """--verify is not honoured in Swarm mode yet: refused, never silently ignored (the
    settings x-swap may hold too are checked when the stack is opened)."""
    if verify:
        raise InvalidSettings("--verify cannot be used on a Swarm stack yet.",
                              hint="See docs/swarm.md, Limits.")


def print_stack_status(target: StackTarget, services: tuple[str, ...], as_json: bool) -> None:
    from docker_swap.targets.swarm.status import stack_status, status_json, status_lines  # noqa: PLC0415

    report = stack_status(target, services)
    click.echo(status_json(report) if as_json else "\n".join(status_lines(report)))
    sys.exit(0 if report.agrees else EXIT_NEEDS_ATTENTION)


def print_stack_history(target: StackTarget, service: str, as_json: bool) -> None:
    from docker_swap.cli.views import history_json, history_lines  # noqa: PLC0415
    from docker_swap.targets.swarm.status import stack_history  # noqa: PLC0415

    found = stack_history(target, service)
    click.echo(history_json(found) if as_json else "\n".join(history_lines(found)))


def maintain_stack(action: str, target: StackTarget, service: str) -> RecoveryReport:
    """`recover` or `sync` on a stack."""
    from docker_swap.targets.swarm.status import stack_recover, stack_sync  # noqa: PLC0415

    return (stack_recover if action == "recover" else stack_sync)(target, service)
