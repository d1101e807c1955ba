"""What a finished one-service command did, as the CLI shows it: a deploy (or rollback, abort),
and the canary it left running."""

from __future__ import annotations

from dataclasses import dataclass, field

from docker_swap.observer import PhaseResult
from docker_swap.rollout.verify import VerifyReport


@dataclass(frozen=True)
class DeployReport:
    """What a finished deploy did, phase by phase (and what `--verify` saw, if it ran)."""

    project: str
    service: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    phases: tuple[PhaseResult, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())
    verify: VerifyReport | None = None
    release: int | None = None
    """The number of its release record (None if it could not be recorded)."""
    canary: CanaryState | None = None
    """The canary it started (`--canary`), as it serves."""


@dataclass(frozen=True)
class CanaryState:
    """A canary as it runs: its containers, the old ones beside it, and its share."""

    release: int | None
    share: str
    """As asked (`10%`, `2`)."""
    weighed: float
    """The share its weights give (0..1): what the proxy was confirmed on."""
    containers: tuple[str, ...]
    old: tuple[str, ...]
    decide_after: float | None = None
    """--canary-for: seconds the command watches it before promoting or aborting it."""
