"""`agent SERVICE`: keep one proxy in line with the registry; and `node-exec`, what a stack's
one-off job runs on each node (hidden: docker-swap runs it, not people)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import click

from docker_swap.cli.app import cli, fail, renamed
from docker_swap.cli.flags import service_options
from docker_swap.cli.output import presenter
from docker_swap.options import ComposeOptions
from docker_swap.settings import parse_duration


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
        run_agent(service, compose_options=compose, flags=renamed(flags), name=name,
                  resync=seconds, leave=leave, stop=stop, say=say, stack=stack)
    except Exception as error:
        fail(presenter(as_json=as_json, quiet=quiet), error, service)


@cli.command("node-exec", hidden=True)
@click.option("--exec", "execs", multiple=True, metavar="CONTAINER")
@click.option("--get", "gets", multiple=True, metavar="CONTAINER=URL")
@click.option("--timeout", type=float, default=60.0)
@click.option("--until-ok", is_flag=True)
@click.argument("argv", nargs=-1)
def node_exec_command(execs: tuple[str, ...], gets: tuple[str, ...], timeout: float,
                      until_ok: bool, argv: tuple[str, ...]) -> None:
    """Run ARGV in the named containers of this node (or GET their URLs); one JSON line each."""
    from docker_swap.agent.node_exec import node_exec  # noqa: PLC0415

    try:
        node_exec(execs, gets, argv, timeout, until_ok, say=click.echo)
    except Exception as error:
        fail(presenter(as_json=True, quiet=True), error, "")
