"""Deploy hooks: commands run inside the service's own containers at fixed points of a batch,
each bounded by the hook timeout (exec, argv, no host shell; on a Swarm stack, in the task on
its node: docs/swarm.md).

    before-switch  in one new container once it is ready, before any traffic moves
                   (migrations, cache warm-up); a failure rolls the batch back
    after-switch   in one new container once the switch is live; a failure is a note
    before-stop    in each old container before its stop signal; a failure is a note
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from docker_swap.errors import HookFailed, StepFailed
from docker_swap.models import ExecResult
from docker_swap.targets.base import Batch, Unit

_OUTPUT_LINES = 50


@dataclass(frozen=True)
class HookResult:
    ok: bool
    detail: str
    """One line: what ran where, and how it ended."""
    output: str = ""
    """Its last lines of output."""

    @property
    def said(self) -> str:
        """The detail, with the last line of output if there is one (for a note)."""
        lines = self.output.strip().splitlines()
        return self.detail + (f": {lines[-1]}" if lines else "")


def run_hook(batch: Batch, hook: str, argv: Sequence[str], units: Sequence[Unit],
             timeout: float) -> list[HookResult]:
    """Run the hook in each of `units` and say how each went; never raises."""
    command = " ".join(argv)
    try:
        results = batch.run(units, argv, timeout)
    except StepFailed as exc:
        return [HookResult(False, f"{hook} hook `{command}` could not run in {unit.name}: "
                           f"{exc.message}") for unit in units]
    return [_judged(hook, command, unit, results.get(unit.id), timeout) for unit in units]


def _judged(hook: str, command: str, unit: Unit, result: ExecResult | StepFailed | None,
            timeout: float) -> HookResult:
    if result is None:
        return HookResult(False, f"{hook} hook `{command}` did not run in {unit.name}")
    if isinstance(result, StepFailed):
        return HookResult(False, f"{hook} hook `{command}` could not run in {unit.name}: "
                          f"{result.message}")
    output = "\n".join(result.output.rstrip().splitlines()[-_OUTPUT_LINES:])
    if result.exit_code == 0:
        return HookResult(True, f"{hook} hook `{command}` exited 0 in {unit.name}", output)
    ended = (f"did not finish within {timeout:g} s" if result.exit_code is None
             else f"exited {result.exit_code}")
    return HookResult(False, f"{hook} hook `{command}` {ended} in {unit.name}", output)


def require(result: HookResult) -> str:
    """The detail of a hook that passed; HookFailed (with its output) for one that did not."""
    if not result.ok:
        raise HookFailed(f"the {result.detail}.", output=result.output,
                         hint="Its output is below; nothing moved to the new version.")
    return result.detail
