"""Undoing a batch that failed (its rollback), for every target: the journal says `undoing`
first, then the proxy goes back to the old units, confirmed, and only then are the new units
removed. Until the proxy is confirmed off them, the new units may be what serves, so an undo
that cannot switch the proxy back keeps them and needs attention; `recover` undoes from the
journal's `undoing`, whatever the process did before it was killed.
"""

from __future__ import annotations

from typing import NoReturn, Protocol

from docker_swap.errors import (
    ComposeFailed,
    ContainerExited,
    ContainerUnhealthy,
    DeployFailed,
    HookFailed,
    NeedsAttention,
    NotReady,
    ProxyConfigInvalid,
    ReleaseFailed,
    StepFailed,
    UnexpectedError,
    message_of,
)
from docker_swap.models import names
from docker_swap.options import DeployOptions
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.rollout.weights import Weighing
from docker_swap.safety.journal import UNDOING
from docker_swap.targets.base import Batch, Unit


class Journaled(Protocol):
    def clear(self) -> None: ...


class Undoable(Protocol):
    """What the undo needs of the batch it undoes (swap.py's Swap)."""

    new: list[Unit]
    proxy_staged: bool
    proxy_touched: bool
    weighing: Weighing

    @property
    def batch(self) -> Batch: ...

    @property
    def options(self) -> DeployOptions: ...

    @property
    def proxy(self) -> Switchboard | None: ...

    @property
    def journal(self) -> Journaled: ...

    def journal_at(self, phase: str) -> None: ...

_CONTAINER_FAILURES = (ComposeFailed, NotReady, ContainerExited, ContainerUnhealthy,
                       ReleaseFailed)


class Undo:
    """Undo one batch whose failure is `failure`: always raises, DeployFailed (exit 1) once
    nothing of the new version is left, NeedsAttention (exit 3) otherwise."""

    def __init__(self, swap: Undoable) -> None:
        self.swap = swap
        self.batch = swap.batch
        self._problems: list[str] = []

    def run(self, failure: StepFailed) -> NoReturn:
        self._find_new()
        self._record_undoing()
        logs, failed, title = self._failure_logs(failure)
        if self._proxy_back(failure):
            self._discard_new()
        elif self.swap.new:
            self._problems.append(f"{names(self.swap.new)} kept, as the proxy may still "
                                  "send to them")
        old = names(self.batch.old) or names(self.batch.staying) or "nothing"
        if self._problems:
            raise NeedsAttention(
                f"{failure.message} Rolling back did not finish: {'; '.join(self._problems)}. "
                f"The old container(s) {old} still run.",
                hint=f"Run `docker-swap recover {self.batch.service}` once that is fixed: it "
                "puts the proxy on the old containers, confirmed, then removes the new ones.",
            ) from failure
        if isinstance(failure, UnexpectedError):  # a bug: say so, and let recover confirm
            raise NeedsAttention(
                f"{failure.message} The deploy was undone: the old container(s) {old} still "
                "run and serve, the new ones are removed; its journal is kept.",
                hint=f"Run `docker-swap recover {self.batch.service}` to confirm the proxy on "
                "the old containers; -v shows the traceback (please report it).",
            ) from failure
        self.swap.journal.clear()
        raise DeployFailed(failure, logs=logs, container=failed, logs_title=title) from failure

    def _find_new(self) -> None:
        if self.swap.new:
            return
        try:
            self.swap.new = self.batch.started()
        except Exception as exc:
            self._problems.append(f"the new containers could not be listed ({message_of(exc)})")

    def _record_undoing(self) -> None:
        """`undoing` in the journal before anything is undone, so that a recover after a kill
        goes back too, never forward to the version that just failed."""
        try:
            self.swap.journal_at(UNDOING)
        except Exception as exc:
            self._problems.append(f"the journal could not record the undo ({message_of(exc)})")

    def _failure_logs(self, failure: StepFailed) -> tuple[str, str, str]:
        """What to show below the failure: (lines, the container they are from, a title)."""
        new = self.swap.new
        if isinstance(failure, HookFailed) and new:
            return failure.output, new[0].name, "output of the before-switch hook"
        failed = next((u for u in new if isinstance(failure, ReleaseFailed)
                       and u.name == failure.container), new[0] if new else None)
        if failed is None or not isinstance(failure, _CONTAINER_FAILURES):
            return "", "", ""
        try:
            return self.batch.logs(failed), failed.name, ""
        except Exception:
            return "", failed.name, ""

    def _proxy_back(self, failure: StepFailed) -> bool:
        """True once the proxy is confirmed on the old units only."""
        proxy = self.swap.proxy
        try:
            if proxy is not None and self.swap.proxy_touched and not isinstance(
                    failure, ProxyConfigInvalid):
                proxy.switch([*self.batch.old, *self.batch.staying], self.swap.weighing.back)
                proxy.drain(self.swap.options.drain_timeout)
            elif proxy is not None and self.swap.proxy_staged:  # a rejected config is put
                proxy.unstage()                                  # back by the driver already
        except Exception as exc:
            self._problems.append(f"the proxy could not be switched back ({message_of(exc)})")
            return False
        return True

    def _discard_new(self) -> None:
        if not self.swap.new:
            return
        try:
            self.batch.discard(self.swap.new, served=self.swap.proxy_touched)
        except Exception as exc:
            self._problems.append(f"{names(self.swap.new)} could not be removed "
                                  f"({message_of(exc)})")
