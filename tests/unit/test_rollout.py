"""A service batch by batch, and each failure_action, with fakes (the zero-failure and rollback
claims are proven against real proxies in tests/integration/test_up.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from docker_swap.errors import EngineFailed, Interrupted, NeedsAttention
from docker_swap.models import Container, Project, ServiceDefinition
from docker_swap.observer import Observer, SilentObserver
from docker_swap.options import DeployOptions, ProxyRef
from docker_swap.rollout.batches import Rollout, RolloutResult
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Journal
from docker_swap.targets.compose.plan import ServicePlan, UpdateConfig
from docker_swap.targets.compose.preflight import Plan
from tests.fakes import FakeCompose, FakeEngine, FakeProxy, FakeWatch


class World:
    """`app` with `replicas` old containers behind a fake proxy (or none: a worker)."""

    def __init__(self, tmp_path: Path, replicas: int = 3, *, proxied: bool = True,
                 **update: object) -> None:
        self.engine = FakeEngine(config_hash="new")
        self.old = [self.engine.add("app", n, config_hash="old") for n in range(1, replicas + 1)]
        self.proxy = FakeProxy()
        self.options = DeployOptions(
            service="app", proxy=ProxyRef("nginx", "proxy") if proxied else None,
            health_cmd=("./healthcheck",), timeout=0.3)
        self.service = ServicePlan(
            "app", "swap" if proxied else "replace", "changed", replicas, tuple(self.old),
            update=UpdateConfig(**update), options=self.options)  # type: ignore[arg-type]
        journal = Journal(self.engine, "demo", "app", root=tmp_path)
        project = Project("demo", {"app": ServiceDefinition("app")})
        self.prepared = Plan(project, self.options, list(self.old), 8000, "demo_default",
                             self.proxy if proxied else None, journal, [])
        self.labels: list[str] = []

    def run(self) -> RolloutResult:
        def observer_for(label: str) -> Observer:
            self.labels.append(label)
            return SilentObserver()

        return Rollout(self.service, self.engine, FakeCompose(self.engine), self.prepared,
                       observer_for, Interrupts(print)).run()

    def running(self) -> list[tuple[str, str]]:
        return [(c.name, c.config_hash) for c in self.engine.service_containers("demo", "app")
                if c.running]


def test_one_replica_per_batch_never_more_than_replicas_plus_one_beside_one_drained(
        tmp_path: Path) -> None:
    """Replicas + 1 serve or start at most; a batch's old container, out of the proxy and
    drained, retires while the next batch's starts (so 5 run for a moment)."""
    world = World(tmp_path, parallelism=1)

    result = world.run()

    assert result.outcome == "done"
    assert world.proxy.switches == [
        ["demo-app-2", "demo-app-3", "demo-app-4"],
        ["demo-app-3", "demo-app-4", "demo-app-5"],
        ["demo-app-4", "demo-app-5", "demo-app-6"],
    ]
    assert world.engine.most == 5
    assert [(b.old, b.new) for b in result.batches] == [
        (["demo-app-1"], ["demo-app-4"]), (["demo-app-2"], ["demo-app-5"]),
        (["demo-app-3"], ["demo-app-6"])]
    assert world.running() == [(f"demo-app-{n}", "new") for n in (4, 5, 6)]


def test_a_batchs_old_container_retires_once_the_next_batch_started_never_before_the_switch(
        tmp_path: Path) -> None:
    """Its stop overlaps the next batch's start-up; the last batch retires its own at once;
    no proxy change ever names a container that retires."""
    world = World(tmp_path, parallelism=1)
    events: list[str] = []
    scale_up, stop, switch = FakeCompose.scale_up, world.engine.stop, world.proxy.switch
    compose = FakeCompose(world.engine)
    compose.scale_up = lambda service, n: (events.append(f"start {n}"),  # type: ignore
                                           scale_up(compose, service, n))[1]
    world.engine.stop = lambda c: (events.append(f"stop {c.name}"), stop(c))[1]  # type: ignore
    world.proxy.switch = lambda b: (events.append("switch"), switch(b))[1]  # type: ignore

    result = Rollout(world.service, world.engine, compose, world.prepared,
                     lambda _label: SilentObserver(), Interrupts(print)).run()

    assert result.outcome == "done"
    assert events == ["start 4", "switch", "start 5", "stop demo-app-1", "switch",
                      "start 5", "stop demo-app-2", "switch", "stop demo-app-3"]
    assert world.running() == [(f"demo-app-{n}", "new") for n in (4, 5, 6)]
    assert [[p.name for p in b.phases][-1] for b in result.batches] == ["retire"] * 3
    assert world.prepared is not None and world.prepared.journal.read() is None


def test_a_batch_stages_its_new_container_while_the_others_serve(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=2)

    world.run()

    assert world.proxy.staged == [["demo-app-4", "demo-app-5"], ["demo-app-6"]]
    assert world.proxy.switches[0] == ["demo-app-3", "demo-app-4", "demo-app-5"]
    assert world.engine.most == 6  # batch 1's two old ones retired while batch 2's started
    assert world.labels == ["1/2", "2/2"]


def test_without_parallelism_every_replica_goes_in_one_batch(tmp_path: Path) -> None:
    world = World(tmp_path, replicas=2)

    world.run()

    assert world.proxy.switches == [["demo-app-3", "demo-app-4"]]


def test_a_failed_second_batch_rolls_every_batch_back(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=1)
    world.engine.never_ready = {"demo-app-5"}

    result = world.run()

    assert result.outcome == "rolled_back"
    assert [b.outcome for b in result.batches] == ["rolled_back", "failed"]
    assert "demo-app-5 was not ready" in result.batches[1].error
    # batch 2 was undone by its own sequence; batch 1 came back from its saved definition
    assert "clone demo-app-1" in world.engine.calls
    assert world.proxy.switches[-1] == ["demo-app-2", "demo-app-3", "demo-app-1"]
    assert sorted(world.running()) == [(f"demo-app-{n}", "old") for n in (1, 2, 3)]
    assert world.labels == ["1/3", "2/3", "rollback 1/1"]
    assert world.engine.most == 5  # batch 1's old one retired while batch 2's started


def test_pause_stops_at_the_failed_batch_and_says_what_serves(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=1, failure_action="pause")
    world.engine.never_ready = {"demo-app-5"}

    result = world.run()

    assert result.outcome == "paused"
    assert isinstance(result.error, NeedsAttention)
    assert "1 container(s) run the new version (demo-app-4), 2 the old one" in result.detail
    assert sorted(world.running()) == [
        ("demo-app-2", "old"), ("demo-app-3", "old"), ("demo-app-4", "new")]
    assert world.labels == ["1/3", "2/3"]


def test_continue_goes_on_after_a_failed_batch(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=1, failure_action="continue")
    world.engine.never_ready = {"demo-app-5"}

    result = world.run()

    assert result.outcome == "paused", "continue past a failure needs attention, as pause"
    assert isinstance(result.error, NeedsAttention)
    assert [b.outcome for b in result.batches] == ["done", "failed", "done"]
    # batch 3 replaced demo-app-2, which batch 2 could not; the new container got number 5
    assert sorted(world.running()) == [
        ("demo-app-3", "old"), ("demo-app-4", "new"), ("demo-app-5", "new")]


def test_failures_within_max_failure_ratio_do_not_trigger_the_failure_action(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, parallelism=1, max_failure_ratio=0.4)
    world.engine.never_ready = {"demo-app-5"}

    result = world.run()

    assert [b.outcome for b in result.batches] == ["done", "failed", "done"]
    assert result.outcome == "done", "1 of 3 containers failed: within 0.4, the service is done"
    assert result.error is None


def test_a_worker_is_replaced_start_first_batch_by_batch(tmp_path: Path) -> None:
    world = World(tmp_path, replicas=2, proxied=False, parallelism=1)

    result = world.run()

    assert result.outcome == "done"
    calls = [c for c in world.engine.calls if c.startswith(("exec", "stop", "remove"))]
    assert calls == ["exec ./healthcheck", "stop demo-app-1", "remove demo-app-1",
                     "exec ./healthcheck", "stop demo-app-2", "remove demo-app-2"]
    assert world.engine.most == 3
    assert world.proxy.switches == []


def test_a_worker_that_never_gets_ready_is_rolled_back(tmp_path: Path) -> None:
    world = World(tmp_path, replicas=2, proxied=False, parallelism=1)
    world.engine.never_ready = {"demo-app-4"}

    result = world.run()

    assert result.outcome == "rolled_back"
    assert "clone demo-app-1" in world.engine.calls
    assert sorted(world.running()) == [("demo-app-1", "old"), ("demo-app-2", "old")]


def test_a_batch_that_exits_while_monitored_fails_and_every_batch_rolls_back(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, parallelism=1, monitor=0.2)
    world.engine.dies_later = {"demo-app-5"}

    result = world.run()

    assert [b.outcome for b in result.batches] == ["rolled_back", "failed"]
    assert "demo-app-5 exited" in result.batches[1].error
    assert result.outcome == "rolled_back"
    assert {"clone demo-app-1", "clone demo-app-2"} <= set(world.engine.calls)
    assert sorted(world.running()) == [(f"demo-app-{n}", "old") for n in (1, 2, 3)]


def test_a_signal_during_a_batch_stops_there_even_with_continue(tmp_path: Path) -> None:
    world = World(tmp_path, parallelism=1, failure_action="continue")
    calls = 0

    def signal_in_batch_two(watch: FakeWatch) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Interrupted("interrupted by SIGINT before the switch.")

    world.engine.on_exec = signal_in_batch_two

    result = world.run()

    assert result.outcome == "paused"
    assert [b.outcome for b in result.batches] == ["done", "failed"]
    assert sorted(world.running()) == [
        ("demo-app-2", "old"), ("demo-app-3", "old"), ("demo-app-4", "new")]


def test_a_swap_that_also_scales_up_adds_the_missing_replicas_batch_by_batch(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, replicas=1, parallelism=1)
    world.service = replace(world.service, replicas=3)

    result = world.run()

    assert result.outcome == "done"
    assert world.proxy.switches == [["demo-app-2"], ["demo-app-2", "demo-app-3"],
                                    ["demo-app-2", "demo-app-3", "demo-app-4"]]
    assert world.running() == [(f"demo-app-{n}", "new") for n in (2, 3, 4)]


def test_a_swap_that_also_scales_down_retires_the_extra_replicas_with_the_last_batch(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, replicas=3)
    world.service = replace(world.service, replicas=1)

    result = world.run()

    assert result.outcome == "done"
    assert world.proxy.switches == [["demo-app-4"]]
    assert world.running() == [("demo-app-4", "new")]


def test_a_batch_that_fails_its_monitor_never_serves_again_whatever_the_failure_action(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, parallelism=1, monitor=0.2, failure_action="pause")
    world.engine.dies_later = {"demo-app-4"}  # batch 1's new container, after it is ready

    result = world.run()

    assert result.outcome == "paused"
    assert [b.outcome for b in result.batches] == ["failed"]
    # batch 1 undone: its retired container came back, the proxy was sent to it, confirmed
    assert "clone demo-app-1" in world.engine.calls
    assert "demo-app-4" not in world.proxy.switches[-1]
    assert sorted(world.running()) == [(f"demo-app-{n}", "old") for n in (1, 2, 3)]


def test_a_rollback_never_runs_more_containers_than_the_update_did(tmp_path: Path) -> None:
    world = World(tmp_path, replicas=4, parallelism=1)
    world.engine.never_ready = {"demo-app-8"}  # batch 4 fails, batches 1-3 come back

    result = world.run()

    assert result.outcome == "rolled_back"
    # Rollback parallelism follows 1: no more than the update's own 4 + 1 (and one drained).
    assert world.engine.most <= 4 + 1 + 1, world.engine.most
    assert sorted(world.running()) == [(f"demo-app-{n}", "old") for n in (1, 2, 3, 4)]


def test_a_rollback_brings_back_every_container_a_batch_retired(tmp_path: Path) -> None:
    world = World(tmp_path, replicas=3, parallelism=1, monitor=0.2)
    world.service = replace(world.service, replicas=2)  # 3 run, 2 asked: batch 2 retires two
    world.engine.dies_later = {"demo-app-5"}  # batch 2's new one fails its monitor

    result = world.run()

    assert result.outcome == "rolled_back"
    assert {"clone demo-app-1", "clone demo-app-2", "clone demo-app-3"} <= set(
        world.engine.calls)
    assert sorted(world.running()) == [(f"demo-app-{n}", "old") for n in (1, 2, 3)]


def test_rollback_config_stop_first_takes_the_new_out_before_the_old_come_back(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, parallelism=1)
    world.service = replace(world.service, rollback=UpdateConfig(order="stop-first",
                                                                 parallelism_set=True))
    world.engine.never_ready = {"demo-app-5"}

    result = world.run()

    assert result.outcome == "rolled_back"
    stop, clone = world.engine.calls.index("stop demo-app-4"), world.engine.calls.index(
        "clone demo-app-1")
    assert stop < clone
    assert sorted(world.running()) == [(f"demo-app-{n}", "old") for n in (1, 2, 3)]


def test_a_rollback_batch_that_fails_pauses_the_rollback_and_needs_attention(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, parallelism=1)
    world.engine.never_ready = {"demo-app-5"}
    world.engine.failing = {"clone"}  # the retired container cannot be made again

    result = world.run()

    assert result.outcome == "needs_attention"
    assert isinstance(result.error, NeedsAttention)
    assert "rollback batch 1 failed" in result.detail


def test_a_batch_that_needs_attention_after_its_switch_stops_the_rollout_serving(
    tmp_path: Path,
) -> None:
    """Batch 2's old container cannot be stopped (its retire runs once batch 3 started):
    batch 3 is undone, the rollout stops, batches 1 and 2 serve."""
    world = World(tmp_path, parallelism=1)
    stop = world.engine.stop

    def stop_fails_for_batch_two(container: Container) -> None:
        if container.name == "demo-app-2":
            raise EngineFailed("could not stop demo-app-2: the engine went away")
        stop(container)

    world.engine.stop = stop_fails_for_batch_two  # type: ignore[method-assign]
    rollout = Rollout(world.service, world.engine, FakeCompose(world.engine), world.prepared,
                      lambda _label: SilentObserver(), Interrupts(print))
    result = rollout.run()

    assert result.outcome == "needs_attention", result
    assert "the new version serves" in result.detail
    assert "retiring the old containers failed" in result.detail
    assert [c.name for c in rollout.new_serving] == ["demo-app-4", "demo-app-5"]
    assert "demo-app-6" not in [c.name for c in world.engine.containers.values()]
    assert world.proxy.switches[-1] == ["demo-app-3", "demo-app-4", "demo-app-5"]


def test_a_journal_that_cannot_be_cleared_needs_attention_with_the_new_version_serving(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, parallelism=1)
    assert world.prepared is not None
    clear = world.prepared.journal.clear

    def clear_fails() -> None:
        raise EngineFailed("could not remove a journal record: the engine went away")

    world.prepared.journal.clear = clear_fails  # type: ignore[method-assign]
    rollout = Rollout(world.service, world.engine, FakeCompose(world.engine), world.prepared,
                      lambda _label: SilentObserver(), Interrupts(print))
    result = rollout.run()
    world.prepared.journal.clear = clear  # type: ignore[method-assign]

    assert result.outcome == "needs_attention", result
    assert "clearing its journal failed" in result.detail
    assert [c.name for c in rollout.new_serving] == ["demo-app-4", "demo-app-5", "demo-app-6"]
