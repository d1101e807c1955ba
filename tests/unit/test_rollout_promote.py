"""A canary promoted by `up`'s rollout (fakes): every batch weighed alike, the canary's
share back on a rollback."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from docker_swap.errors import EngineFailed
from docker_swap.observer import SilentObserver
from docker_swap.rollout.batches import Rollout
from docker_swap.rollout.weights import Split
from docker_swap.safety.interrupts import Interrupts
from tests.fakes import FakeCompose
from tests.unit.test_rollout import World


def promoting(tmp_path: Path) -> tuple[World, Rollout]:
    """3 old containers and a canary beside them (weighed 3:1), promoted one batch at a time."""
    world = World(tmp_path, parallelism=1)
    canary = world.engine.add("app", 4, config_hash="new")
    world.service = replace(world.service, running=(*world.old, canary), current=(canary,))
    world.prepared.old = [*world.old, canary]
    split = Split(frozenset({canary.id}), 3, 1)
    rollout = Rollout(world.service, world.engine, FakeCompose(world.engine), world.prepared,
                      lambda _: SilentObserver(), Interrupts(print), kind="promote",
                      canary=split)
    return world, rollout


def test_a_promote_keeps_the_canary_and_replaces_the_old_ones_weighing_all_alike(
        tmp_path: Path) -> None:
    world, rollout = promoting(tmp_path)

    result = rollout.run()

    assert result.outcome == "done"
    assert [b.size for b in result.batches] == [1, 1]  # the canary is one of the 3
    assert world.proxy.weights == [[1, 1, 1, 1], [1, 1, 1]]
    assert sorted(world.running()) == [(f"demo-app-{n}", "new") for n in (4, 5, 6)]


def test_a_promote_that_rolls_back_gives_the_canary_its_share_again(tmp_path: Path) -> None:
    world, rollout = promoting(tmp_path)
    world.engine.never_ready = {"demo-app-6"}

    result = rollout.run()

    assert result.outcome == "rolled_back"
    last = dict(zip(world.proxy.switches[-1], world.proxy.weights[-1], strict=True))
    assert last == {"demo-app-2": 3, "demo-app-3": 3, "demo-app-4": 1, "demo-app-1": 3}
    assert sorted(world.running()) == [("demo-app-1", "old"), ("demo-app-2", "old"),
                                       ("demo-app-3", "old"), ("demo-app-4", "new")]


def test_a_promote_whose_first_batch_fails_goes_back_to_the_canary_s_share(
        tmp_path: Path) -> None:
    world, rollout = promoting(tmp_path)
    world.proxy.errors = {0: EngineFailed("the proxy did not answer.")}

    result = rollout.run()

    assert result.outcome == "rolled_back"
    assert world.proxy.weights[-1] == [3, 3, 3, 1]  # app-1 (back), app-2, app-3, the canary
