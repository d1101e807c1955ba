"""Which target a command works on: `--swarm/--no-swarm`, `--resolve-image`, and `stack_of`,
which every command asks first (None: the compose project on one engine, as before)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from docker_swap.options import ComposeOptions

if TYPE_CHECKING:
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
             services: str | Sequence[str] | None = None) -> StackTarget | None:
    """The stack to work on (Swarm mode), or None (compose mode). `flags` apply to
    `services` (one, several, or every one for an empty sequence)."""
    if swarm is False:
        return None
    from docker_swap.targets.swarm.stack import open_stack  # noqa: PLC0415  (the SDK loads here)

    return open_stack(compose, flags or {}, swarm, services)
