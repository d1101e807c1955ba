"""The command line: `docker-swap [COMPOSE OPTIONS] COMMAND`. One module per command family,
each parsing flags, making one call into the rollout layer (or a target), and printing through
output.py (the only place, with views.py, that formats what people read)."""

from __future__ import annotations

import logging
import sys

import click

from docker_swap.cli import (
    agent,
    autoupdate,
    canary,
    deploy,
    maintenance,
    releases,
    tools,
    up,
)
from docker_swap.cli.app import cli
from docker_swap.errors import EXIT_NEEDS_ATTENTION, EXIT_REFUSED, unexpected

__all__ = ["agent", "autoupdate", "canary", "cli", "deploy", "main", "maintenance", "releases",
           "tools", "up"]
log = logging.getLogger(__name__)


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
