"""The `docker-swap` command group and what every command shares: the compose options, how a
failure is said and which exit code it ends with, click's names to x-swap's keys.

Exit codes: 0 done, 1 the deploy failed and was rolled back, 2 refused before anything changed,
3 needs attention (a rollback or retire could not finish; `docker-swap recover` resumes it).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

import click

from docker_swap._version import __version__
from docker_swap.cli.output import Presenter
from docker_swap.errors import SwapError, unexpected
from docker_swap.options import ComposeOptions

log = logging.getLogger("docker_swap.cli")


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


def fail(shown: Presenter, error: Exception, service: str) -> NoReturn:
    """Say what failed and exit with its code; an error docker-swap did not expect needs
    attention (exit 3): nobody can say what it left behind, and the journal is kept."""
    if not isinstance(error, SwapError):
        log.debug("unexpected error", exc_info=error)
        error = unexpected(error, service)
    shown.failed(error, service)
    sys.exit(error.exit_code)


def renamed(flags: dict[str, Any]) -> dict[str, object | None]:
    """Click's parameter names to x-swap's keys, so that one merge serves both."""
    names = {"http_path": "http"}
    flags = dict(flags)
    if flags.pop("no_canary", False):
        flags["canary"] = False  # settings.py: no canary, whatever x-swap says
    return {names.get(key, key).replace("_", "-"): value for key, value in flags.items()}
