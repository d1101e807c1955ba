"""Deploy hooks: commands run inside containers at fixed points of a swap (exec, argv, no host
shell), each bounded by the hook timeout.

    before-switch  in one new container once it is ready, before any traffic moves
                   (migrations, cache warm-up); a failure rolls the deploy back
    after-switch   in one new container once the switch is live; a failure is a note
    before-stop    in each old container before its stop signal; a failure is a note
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from docker_swap.errors import EngineFailed, HookFailed
from docker_swap.models import Container
from docker_swap.rollout.readiness import Executor

_OUTPUT_LINES = 50


@dataclass(frozen=True)
class HookResult:
    ok: bool
    detail: str
    """One line: what ran where, and how it ended."""
    output: str = ""
    """Its last lines of output."""


def run_hook(executor: Executor, hook: str, argv: Sequence[str], container: Container,
             timeout: float) -> HookResult:
    """Run the hook in `container` and say how it went; never raises."""
    command = " ".join(argv)
    try:
        result = executor.exec(container.id, argv, timeout=timeout)
    except EngineFailed as exc:
        return HookResult(False, f"{hook} hook `{command}` could not run in {container.name}: "
                          f"{exc.message}")
    output = "\n".join(result.output.rstrip().splitlines()[-_OUTPUT_LINES:])
    if result.exit_code == 0:
        return HookResult(True, f"{hook} hook `{command}` exited 0 in {container.name}", output)
    ended = (f"did not finish within {timeout:g} s" if result.exit_code is None
             else f"exited {result.exit_code}")
    return HookResult(False, f"{hook} hook `{command}` {ended} in {container.name}", output)


def require(result: HookResult) -> str:
    """The detail of a hook that passed; HookFailed (with its output) for one that did not."""
    if not result.ok:
        raise HookFailed(f"the {result.detail}.", output=result.output,
                         hint="Its output is below; nothing moved to the new version.")
    return result.detail
