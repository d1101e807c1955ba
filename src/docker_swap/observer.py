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


class Labelled:
    """Passes a batch's phases on with its label in front (`app 2/3 switch`), so that the
    phases of several services and batches read apart."""

    def __init__(self, observer: Observer, label: str) -> None:
        self._observer, self._label = observer, label

    def phase_started(self, name: str) -> None:
        self._observer.phase_started(f"{self._label} {name}")

    def phase_finished(self, result: PhaseResult) -> None:
        self._observer.phase_finished(
            PhaseResult(f"{self._label} {result.name}", result.seconds, result.detail))

    def note(self, text: str) -> None:
        self._observer.note(f"{self._label}: {text}")

    def progress(self, text: str) -> None:
        self._observer.progress(text)
