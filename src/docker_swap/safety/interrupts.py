"""Ctrl-C and SIGTERM during a command: an interruption while it can still be undone, a note
after, and a stop at the next step in between. One handler covers a whole command (a deploy
with its release record, every service and batch of an `up`), in one of three modes:

    armed     (before a batch's switch completes, and in the watch window) the first signal
              raises `Interrupted` where the swap is, and the swap rolls back
    deferred  (rolling back, once the new version serves, recording the outcome) signals are
              only noted: what runs finishes (each step is bounded by a timeout), so that
              nothing is left half done; `stop_requested` turns True, and no other batch
              or service starts
    held      (between two steps of `up`: compose's own actions, between batches) signals are
              noted and `stop_requested` turns True: the run finishes the step it is in, then
              starts nothing more

A signal that arrives while an exception is being handled does not raise: that exception may
be the failure the swap is about to roll back, and a second one would escape the rollback. It
is kept instead: the deferral that starts a rollback notes it, or `check()` raises it at the
swap's next step. An interruption the handler raised is remembered until the run moves on
(defers, arms or holds): Python drops an exception raised while a finalizer runs (garbage
collection at that instant), and `check()` raises it again then.
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
        self._raised = ""
        """The signal of an interruption raised that the run has not answered yet."""
        self._previous: dict[int, Any] = {}
        self.stop_requested = False
        """A signal arrived: the run finishes what it does, and starts nothing more."""

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
        self._armed, self._held, self._raised = False, False, ""
        self._deferred_reason = reason
        if self._pending:
            self._note(f"{self._pending} received: {reason}.")
            self._pending = ""

    def arm(self, when: str) -> None:
        """Interrupt again from now on (a batch's start, the watch window: the old containers
        still wait)."""
        self._armed, self._held, self._when, self._raised = True, False, when, ""

    def hold(self, reason: str) -> None:
        """From now on, note signals with `reason` and ask the run to stop at its next step."""
        self.defer(reason)
        self._held = True

    def check(self) -> None:
        """Raise the interruption a signal left pending (or one that was dropped), if any."""
        if self._pending:
            name, self._pending = self._pending, ""
            self._interrupt(name)
        if self._raised:
            raise Interrupted(f"interrupted by {self._raised} {self._when}.")

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self._armed and sys.exc_info()[1] is not None:
            self._pending = name  # see the module's docstring
        elif self._armed:
            self._interrupt(name)
        else:
            self.stop_requested = True  # what runs finishes; nothing new starts
            self._note(f"{name} received: {self._deferred_reason}.")

    def _interrupt(self, name: str) -> None:
        self._armed = False  # one interruption only: the rollback must not be interrupted
        self._deferred_reason = "rolling back first"
        self.stop_requested = True
        self._raised = name  # until the run answers it (see the module's docstring)
        raise Interrupted(f"interrupted by {name} {self._when}.")
