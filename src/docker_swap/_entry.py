"""The `docker-swap` command's entry: answers the Docker CLI's plugin calls before anything heavy
loads, turns `docker swap ...` back into `docker-swap ...`, then hands over to the CLI.

As a plugin (`docker-swap install-plugin`), the Docker CLI runs us with its own global options
first: `docker-swap [--context NAME] [-H HOST] [--config DIR] ... swap deploy app`. Those are
applied the way the Docker CLI would (environment variables that compose and the Docker SDK
read), and `swap` is dropped.
"""

from __future__ import annotations

import json
import os
import sys

from docker_swap._version import __version__

PLUGIN_NAME = "swap"
METADATA = {
    "SchemaVersion": "0.1.0",
    "Vendor": "docker-swap",
    "Version": __version__,
    "ShortDescription": "Replace a compose service's containers without failing a request",
}
# Docker's global options that take a value, and the environment variable each one sets.
_VALUED = {
    "--context": "DOCKER_CONTEXT", "-c": "DOCKER_CONTEXT",
    "--host": "DOCKER_HOST", "-H": "DOCKER_HOST",
    "--config": "DOCKER_CONFIG",
    "--tlscacert": "", "--tlscert": "", "--tlskey": "", "--log-level": "", "-l": "",
}
_FLAGS = {"--tls": "", "--tlsverify": "DOCKER_TLS_VERIFY", "--debug": "", "-D": ""}


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["docker-cli-plugin-metadata"]:
        print(json.dumps(METADATA))
        return
    prog = "docker-swap"
    if os.environ.get("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"):
        argv = plugin_arguments(argv, os.environ)
        prog = "docker swap"
    from docker_swap.cli import main as run  # noqa: PLC0415  (loads the SDK; not needed above)

    run(argv, prog)


def plugin_arguments(argv: list[str], environ: os._Environ[str] | dict[str, str]) -> list[str]:
    """Apply Docker's global options to `environ`; return what follows the plugin's name."""
    rest = list(argv)
    verbose = False
    while rest and rest[0] != PLUGIN_NAME:
        option, _, inline = rest.pop(0).partition("=")
        if option in _VALUED:
            value = inline or (rest.pop(0) if rest else "")
            if _VALUED[option]:
                environ[_VALUED[option]] = value
        elif option in _FLAGS:
            if _FLAGS[option]:
                environ[_FLAGS[option]] = "1"
            verbose = verbose or option in ("--debug", "-D")
        else:
            raise SystemExit(f"docker swap: unknown docker option {option}")
    if rest[:1] == [PLUGIN_NAME]:
        rest.pop(0)
    return ["--verbose", *rest] if verbose else rest
