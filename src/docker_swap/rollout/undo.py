"""Undoing a swap that failed (its rollback): the proxy on the old containers, confirmed, and
only then the new containers removed. Until the proxy is confirmed off them, the new containers
may be what serves, so an undo that cannot switch the proxy back keeps them and needs
attention.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

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
from docker_swap.models import Backend, Container, names

if TYPE_CHECKING:
    from docker_swap.engine import Engine
    from docker_swap.targets.compose.preflight import Plan

_LOG_LINES = 50
_CONTAINER_FAILURES = (ComposeFailed, NotReady, ContainerExited, ContainerUnhealthy,
                       ReleaseFailed)


class Undo:
    """Undo one swap whose failure is `failure`: always raises, DeployFailed (exit 1) once
    nothing of the new version is left, NeedsAttention (exit 3) otherwise."""

    def __init__(
        self, plan: Plan, engine: Engine, new: list[Container],
        list_new: Callable[[], list[Container]],
        backends: Callable[[Sequence[Container]], list[Backend]],
        *, proxy_touched: bool, proxy_staged: bool,
    ) -> None:
        self.plan, self.engine, self.new = plan, engine, new
        self._list_new, self._backends = list_new, backends
        self._proxy_touched, self._proxy_staged = proxy_touched, proxy_staged
        self._problems: list[str] = []

    def run(self, failure: StepFailed) -> NoReturn:
        self._find_new()
        logs, failed, title = self._failure_logs(failure)
        if self._proxy_back(failure):
            self._remove_new()
        elif self.new:
            self._problems.append(f"{names(self.new)} kept, as the proxy may still send to them")
        if self._problems:
            raise NeedsAttention(
                f"{failure.message} Rolling back did not finish: {'; '.join(self._problems)}. "
                f"The old container(s) {names(self.plan.old)} still run.",
                hint=f"Run `docker-swap recover {self.plan.options.service}` once that is "
                "fixed: it puts the proxy on the old containers, confirmed, then removes the "
                "new ones.",
            ) from failure
        if isinstance(failure, UnexpectedError):  # a bug: say so, and let recover confirm
            raise NeedsAttention(
                f"{failure.message} The deploy was undone: the old container(s) "
                f"{names(self.plan.old)} still run and serve, the new ones are removed; its "
                "journal is kept.",
                hint=f"Run `docker-swap recover {self.plan.options.service}` to confirm the "
                "proxy on the old containers; -v shows the traceback (please report it).",
            ) from failure
        self.plan.journal.clear()
        raise DeployFailed(failure, logs=logs, container=failed, logs_title=title) from failure

    def _find_new(self) -> None:
        if self.new:
            return
        try:
            self.new = self._list_new()
        except Exception as exc:
            self._problems.append(f"the new containers could not be listed ({message_of(exc)})")

    def _failure_logs(self, failure: StepFailed) -> tuple[str, str, str]:
        """What to show below the failure: (lines, the container they are from, a title)."""
        if isinstance(failure, HookFailed) and self.new:
            return failure.output, self.new[0].name, "output of the before-switch hook"
        failed = next((c for c in self.new if isinstance(failure, ReleaseFailed)
                       and c.name == failure.container), self.new[0] if self.new else None)
        if failed is None or not isinstance(failure, _CONTAINER_FAILURES):
            return "", "", ""
        return self.engine.logs(failed.id, tail=_LOG_LINES), failed.name, ""

    def _proxy_back(self, failure: StepFailed) -> bool:
        """True once the proxy is confirmed on the old containers only."""
        try:
            if self._proxy_touched and not isinstance(failure, ProxyConfigInvalid):
                self.plan.proxy.switch(self._backends([*self.plan.old, *self.plan.staying]))
                self.plan.proxy.drain(self.plan.options.drain_timeout)
            elif self._proxy_staged:  # a rejected config was put back by the driver already
                self.plan.proxy.unstage()
        except Exception as exc:
            self._problems.append(f"the proxy could not be switched back ({message_of(exc)})")
            return False
        return True

    def _remove_new(self) -> None:
        for container in self.new:
            try:
                if self._proxy_touched:  # it may have had requests: let them finish
                    self.engine.stop(container)
                self.engine.remove(container.id, force=True)
            except Exception as exc:
                self._problems.append(f"{container.name} could not be removed "
                                      f"({message_of(exc)})")
