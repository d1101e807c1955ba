"""What `status` says of a canary that runs: its share as asked and as the proxy weighs it,
its age, and, where the proxy counts answers per backend (HAProxy), both sides' 5xx since it
started."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from docker_swap.errors import SwapError
from docker_swap.models import Container
from docker_swap.options import DeployOptions
from docker_swap.proxy.base import CountsAnswersOf
from docker_swap.releases.record import Release
from docker_swap.releases.rules import canary_sides
from docker_swap.targets.compose.batch import backends


@dataclass(frozen=True)
class CanaryStatus:
    release: int
    share: str
    """As asked (`10%`, `2`)."""
    since: str
    age_seconds: float
    containers: tuple[str, ...]
    old: tuple[str, ...]
    weighed: float | None
    """The canary's share of new requests by the weights its proxy reports (the first proxy
    that reports any); None when the proxy cannot say."""
    answers: tuple[int, int, int, int] | None = None
    """Since it started: 5xx and all answers of the canary, then of the old containers
    (HAProxy); None where they are not counted."""

    def error_rates(self) -> tuple[float | None, float | None]:
        if self.answers is None:
            return None, None
        new_errors, new_total, old_errors, old_total = self.answers
        return (new_errors / new_total if new_total else None,
                old_errors / old_total if old_total else None)


@dataclass(frozen=True)
class Weighed:
    """One proxy's backends as `Served` has them: container names with their weights."""

    containers: tuple[str, ...]
    weights: tuple[int, ...]


def canary_status(release: Release, running: Sequence[Container], views: Sequence[Weighed],
                  driver: object, options: DeployOptions, network: str) -> CanaryStatus:
    canary, old = canary_sides(release, running)
    names = {c.name for c in canary}
    weighed = next((_share(v, names) for v in views if v.containers), None)
    return CanaryStatus(
        release.number, release.share, release.at, _age(release.at),
        tuple(c.name for c in canary), tuple(c.name for c in old), weighed,
        _answers(driver, release, canary, old, options, network))


def _share(view: Weighed, canary: set[str]) -> float:
    weights = view.weights or (1,) * len(view.containers)
    total = sum(weights)
    return sum(w for n, w in zip(view.containers, weights, strict=False) if n in canary) / total


def _age(at: str) -> float:
    try:
        started = datetime.fromisoformat(at)
    except ValueError:
        return 0.0
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return max((datetime.now(UTC) - started).total_seconds(), 0.0)


def _answers(driver: object, release: Release, canary: Sequence[Container],
             old: Sequence[Container], options: DeployOptions,
             network: str) -> tuple[int, int, int, int] | None:
    if not isinstance(driver, CountsAnswersOf) or len(release.counted) != 4 or not canary \
            or not old:
        return None
    port = options.port or (canary[0].exposed_ports[0] if canary[0].exposed_ports else 0)
    try:
        new_side = driver.answers_of(backends(canary, network, port))
        old_side = driver.answers_of(backends(old, network, port))
    except SwapError:
        return None
    if new_side is None or old_side is None:
        return None
    now = (*new_side, *old_side)
    a, b, c, d = (max(n - then, 0) for n, then in zip(now, release.counted, strict=True))
    return a, b, c, d
