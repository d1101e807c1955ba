"""A canary's share of new requests as backend weights, and the share weights give (pure).

Proxies balance by weight: a canary of C containers beside N old ones gets share S of new
requests when each canary backend weighs w_new and each old one w_old with

    C * w_new / (C * w_new + N * w_old) = S

Weights are whole numbers from 1 to MAX_WEIGHT (HAProxy's bound), so the split is the nearest
such pair; `share_of` says what it gives. A proxy that cannot weigh (Caddy's slots) apportions
its slots by the same weights (proxy/caddy_config.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from docker_swap.models import CONTAINER_ID, MAX_WEIGHT, Backend
from docker_swap.options import CanaryShare


@dataclass(frozen=True)
class Split:
    """Weights of the canary's backends (`canary`: their container IDs) and the others'."""

    canary: frozenset[str]
    old_weight: int
    new_weight: int

    def weigh(self, backends: Sequence[Backend]) -> list[Backend]:
        """The backends with their weights; when only one side is among them, all weigh 1."""
        sides = {b.container_id in self.canary for b in backends}
        if len(sides) < 2:
            return [replace(b, weight=1) for b in backends]
        return [replace(b, weight=self.new_weight if b.container_id in self.canary
                        else self.old_weight) for b in backends]

    def share(self, old: int, new: int) -> float:
        return share_of(old, new, self.old_weight, self.new_weight)

    def data(self) -> dict[str, object]:
        """As the journal keeps it (recover weighs its switch the same way)."""
        return {"canary": sorted(self.canary), "old": self.old_weight, "new": self.new_weight}

    @classmethod
    def from_data(cls, data: object) -> Split | None:
        """A split as `data` wrote it; None when `data` is none, or not one."""
        if not isinstance(data, dict):
            return None
        canary, old, new = data.get("canary"), data.get("old"), data.get("new")
        weights_ok = all(isinstance(w, int) and not isinstance(w, bool) and
                         1 <= w <= MAX_WEIGHT for w in (old, new))
        if not isinstance(canary, list) or not weights_ok or not all(
                isinstance(c, str) and CONTAINER_ID.fullmatch(c) for c in canary):
            return None
        assert isinstance(old, int) and isinstance(new, int)
        return cls(frozenset(canary), old, new)


@dataclass(frozen=True)
class Weighing:
    """How one batch's switches weigh its backends. `share`: its new units are a canary of
    that share beside the units that stay; `forward`: the split its switch applies (known
    before it starts); `back`: the one its switch back restores (a canary that stays)."""

    share: CanaryShare | None = None
    forward: Split | None = None
    back: Split | None = None

    def forward_split(self, new: Iterable[str], staying: int) -> Split | None:
        if self.share is not None:
            return split(self.share, new, staying)
        return self.forward


NO_WEIGHING = Weighing()


def split(share: CanaryShare, canary: Iterable[str], old: int) -> Split:
    """The weights that give `canary` (container IDs) `share` beside `old` old backends."""
    ids = frozenset(canary)
    if share.percent is None or not ids or not old:
        return Split(ids, 1, 1)  # a share in replicas: each container weighs the same
    target = share.percent / 100
    best: tuple[float, int, int] | None = None
    for new_weight in range(1, MAX_WEIGHT + 1):
        # The old weight nearest to what the share asks for this new weight.
        ideal = new_weight * len(ids) * (1 - target) / (target * old)
        for old_weight in {max(1, min(MAX_WEIGHT, int(ideal))),
                           max(1, min(MAX_WEIGHT, int(ideal) + 1))}:
            error = abs(share_of(old, len(ids), old_weight, new_weight) - target)
            if best is None or error < best[0] - 1e-12:
                best = (error, old_weight, new_weight)
    assert best is not None
    return Split(ids, best[1], best[2])


def share_of(old: int, new: int, old_weight: int, new_weight: int) -> float:
    """The share of new requests `new` backends of `new_weight` get beside `old` of
    `old_weight`."""
    total = new * new_weight + old * old_weight
    return new * new_weight / total if total else 0.0


def live_share(weights: Sequence[tuple[str, int]], canary: Iterable[str]) -> float | None:
    """The canary's share from (container ID, weight) pairs a proxy reports; None if the proxy
    sends to nothing."""
    ids = set(canary)
    total = sum(w for _, w in weights)
    if not total:
        return None
    return sum(w for cid, w in weights if cid in ids) / total
