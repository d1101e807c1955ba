"""`docker-swap node-exec`: what a stack's one-off job runs on each node (targets/swarm/
node_jobs.py): a command in the containers of this node that it names, or a GET of their
addresses, once or until each passes; one JSON line per container on stdout. Containers that
are not on this node are skipped (another node's task answers for them).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from docker_swap.errors import SwapError
from docker_swap.models import ExecResult

if TYPE_CHECKING:
    from docker_swap.engine import Engine

_INTERVAL_SECONDS = 0.1
_OUTPUT_CHARS = 4000


def node_exec(execs: Sequence[str], gets: Sequence[str], argv: Sequence[str], timeout: float,
              until_ok: bool, say: Callable[[str], None] = print) -> None:
    """Run `argv` in each container of `execs`, or GET each `ID=URL` of `gets`, on this node."""
    from docker_swap.engine import Engine  # noqa: PLC0415  (the SDK loads only here)

    engine = Engine.connect()
    local = set(engine.running([*execs, *(g.partition("=")[0] for g in gets)]))
    checks: dict[str, Callable[[float], ExecResult]] = {}
    for container in execs:
        if container in local:
            checks[container] = _exec(engine, container, argv)
    for item in gets:
        container, _, url = item.partition("=")
        if container in local:
            checks[container] = _get(url)
    deadline = time.monotonic() + timeout
    for container, check in checks.items():
        result = check(max(deadline - time.monotonic(), 0.1))
        while until_ok and result.exit_code != 0 and time.monotonic() < deadline:
            time.sleep(_INTERVAL_SECONDS)
            result = check(max(deadline - time.monotonic(), 0.1))
        say(json.dumps({"id": container, "exit_code": result.exit_code,
                        "output": result.output[-_OUTPUT_CHARS:]}))


def _exec(engine: Engine, container: str, argv: Sequence[str]) -> Callable[[float], ExecResult]:
    def check(timeout: float) -> ExecResult:
        try:
            return engine.exec(container, argv, timeout=timeout)
        except SwapError as exc:
            return ExecResult(126, "", exc.message)
    return check


def _get(url: str) -> Callable[[float], ExecResult]:
    parts = urlsplit(url)

    def check(timeout: float) -> ExecResult:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80,
                                                timeout=min(timeout, 2.0))
        try:
            connection.request("GET", parts.path or "/", headers={"User-Agent": "docker-swap"})
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return ExecResult(1, "", f"GET {parts.path}: {exc}")
        finally:
            connection.close()
        return ExecResult(0 if 200 <= status < 300 else 1, f"GET {parts.path} answered {status}")
    return check
