"""Ctrl-C and SIGTERM during a command: an interruption while it can still be undone, a note
after, and a stop at the next step in between. One handler covers a whole command (a deploy
with its release record, every service and batch of an `up`), in one of three modes:

    armed     (before a batch's switch completes, and in the watch window) the first signal
              raises `Interrupted` where the swap is, and the swap rolls back
    deferred  (rolling back, once the new version serves, recording the outcome) signals are
              only noted: what runs finishes (each step is bounded by a timeout), so that
              nothing is left half done
    held      (between two steps of `up`: compose's own actions, between batches) signals are
              noted and `stop_requested` turns True: the run finishes the step it is in, then
              starts nothing more

A signal that arrives while an exception is being handled does not raise: that exception may
be the failure the swap is about to roll back, and a second one would escape the rollback. It
is kept instead: the deferral that starts a rollback notes it, or `check()` raises it at the
swap's next step.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from docker_swap.errors import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    def __init__(self, note: Callable[[str], None]) -> None:
        self._note = note
        self._armed = True
        self._deferred_reason = ""
        self._pending = ""
        self._when = "before the switch completed"
        self._held = False
        self._previous: dict[int, Any] = {}
        self.stop_requested = False
        """A signal arrived while held (or deferred): the run starts nothing more."""

    def __enter__(self) -> Interrupts:
        # Signal handlers belong to the main thread; elsewhere (a library caller's thread) the
        # caller keeps its own handling.
        if threading.current_thread() is threading.main_thread():
            for number in _SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def defer(self, reason: str) -> None:
        """From now on, note signals with `reason` instead of interrupting."""
        self._armed, self._held = False, False
        self._deferred_reason = reason
        if self._pending:
            self._note(f"{self._pending} received: {reason}.")
            self._pending = ""

    def arm(self, when: str) -> None:
        """Interrupt again from now on (a batch's start, the watch window: the old containers
        still wait)."""
        self._armed, self._held, self._when = True, False, when

    def hold(self, reason: str) -> None:
        """From now on, note signals with `reason` and ask the run to stop at its next step."""
        self.defer(reason)
        self._held = True

    def check(self) -> None:
        """Raise the interruption a signal left pending, if any."""
        if self._pending:
            name, self._pending = self._pending, ""
            self._interrupt(name)

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self._armed and sys.exc_info()[1] is not None:
            self._pending = name  # see the module's docstring
        elif self._armed:
            self._interrupt(name)
        else:
            self.stop_requested = self.stop_requested or self._held
            self._note(f"{name} received: {self._deferred_reason}.")

    def _interrupt(self, name: str) -> None:
        self._armed = False  # one interruption only: the rollback must not be interrupted
        self._deferred_reason = "rolling back first"
        self.stop_requested = True
        raise Interrupted(f"interrupted by {name} {self._when}.")
