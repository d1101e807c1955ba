"""How the sequence reports progress: a small listener interface, so it never prints itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PhaseResult:
    """One finished phase: its name, how long it took, and what it did."""

    name: str
    seconds: float
    detail: str


class Observer(Protocol):
    def phase_started(self, name: str) -> None: ...

    def phase_finished(self, result: PhaseResult) -> None: ...

    def note(self, text: str) -> None:
        """Something the user should know that does not stop the deploy."""
        ...

    def progress(self, text: str) -> None:
        """Where the current phase is (the new container's last readiness answer, say)."""
        ...


class SilentObserver:
    def phase_started(self, name: str) -> None:
        pass

    def phase_finished(self, result: PhaseResult) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def progress(self, text: str) -> None:
        pass
