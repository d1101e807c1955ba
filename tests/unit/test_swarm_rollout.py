"""The stack's run on fakes of Swarm and the registry: the bridge, the update, each service's
batch through the shared sequence, and how each part rolls back (the real proof is on the test
swarm, tests/swarm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from docker_swap.engine.swarm import Node, SwarmService, Task, bridge_name
from docker_swap.errors import DeployFailed, SwitchNotConfirmed
from docker_swap.models import Backend
from docker_swap.observer import SilentObserver
from docker_swap.options import DeployOptions, ProxyRef
from docker_swap.proxy import Drained
from docker_swap.rollout.stack import _report
from docker_swap.rollout.stack_run import StackRun
from docker_swap.rollout.stack_state import StackResult
from docker_swap.safety.interrupts import Interrupts
from docker_swap.targets.swarm.plan import BRIDGE, StackPlan, StackStep
from docker_swap.targets.swarm.tasks import rollback_timeout, update_timeout
from tests.fakes import FakeEngine

OPTIONS = DeployOptions("app", proxy=ProxyRef("redis", ""), port=8000, timeout=2,
                        drain_timeout=1)


class FakeSwarm:
    """Services and their tasks; each service runs `replicas` ready tasks of its template,
    unless its image is in `broken`."""

    def __init__(self) -> None:
        self.services: dict[str, SwarmService] = {}
        self.broken: set[str] = set()
        self.rolling: dict[str, int] = {}
        """Services whose Swarm rollback still runs: so many more looks at their tasks."""
        self.log: list[str] = []
        self._ids = 0
        self.add("s_app", "app:v1")

    def add(self, name: str, image: str, labels: dict[str, str] | None = None) -> None:
        spec = {"Name": name, "Labels": {"com.docker.stack.namespace": "s", **(labels or {})},
                "TaskTemplate": {"ContainerSpec": {"Image": image}},
                "Mode": {"Replicated": {"Replicas": 2}}}
        self.services[name] = SwarmService(name, name, 1, spec, 2, labels=labels or {})

    def image(self, name: str) -> str:
        return self.services[name].image

    def set_image(self, name: str, image: str) -> None:
        old = self.services.pop(name)
        self.add(name, image, dict(old.labels))
        self.log.append(f"update {name} {image}")

    # SwarmView and what the rollout calls

    def service(self, name: str) -> SwarmService | None:
        return self.services.get(name)

    def stack_services(self, stack: str) -> list[SwarmService]:
        return [s for s in self.services.values() if not s.labels]

    def tasks(self, service: SwarmService) -> list[Task]:
        if self.rolling.get(service.name):  # `docker service rollback --detach` returned
            self.rolling[service.name] -= 1
            if not self.rolling[service.name]:
                self.log.append(f"rollback {service.name} done")
            return [Task(f"old{i}", i, "n1", "running", "running", f"{i:064x}", {}, False,
                         service=service.name) for i in (1, 2)]
        if service.image in self.broken:
            return [Task(f"t{i}", i, "n1", "failed", "running", "", {}, True, "crashed")
                    for i in range(9)]
        return [Task(f"{service.name}-{service.image}-{i}", i, "n1", "running", "running",
                     f"{i:064x}", {"s_default": f"10.0.{len(service.name)}.{i}"}, True,
                     service=service.name) for i in (1, 2)]

    def nodes(self) -> dict[str, Node]:
        return {"n1": Node("n1", "node-1", True)}

    def create_bridge(self, service: SwarmService) -> SwarmService:
        name = bridge_name(service.name)
        self.add(name, service.image, {"docker-swap.bridge-for": service.name})
        self.log.append(f"create {name}")
        return self.services[name]

    def remove(self, name: str) -> bool:
        self.log.append(f"remove {name}")
        return self.services.pop(name, None) is not None


class FakeDriver:
    def __init__(self, swarm: FakeSwarm, fail_switch: int | None = None) -> None:
        self.swarm, self.fail_switch, self.switches = swarm, fail_switch, 0
        self.serving: list[str] = []
        self.also_fail: set[int] = set()

    description = "fake registry"

    def check(self) -> list[str]:
        return []

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        pass

    def unstage(self) -> None:
        pass

    def switch(self, backends: Sequence[Backend]) -> str:
        self.switches += 1
        if self.switches == self.fail_switch or self.switches in self.also_fail:
            raise SwitchNotConfirmed("agent node-2@n2 did not apply generation 7.")
        self.serving = sorted(b.name.rsplit(".", 2)[0] for b in backends)
        self.swarm.log.append(f"switch {self.serving[0]}")
        return "applied"

    def drain(self, timeout: float) -> Drained:
        return Drained(0.0, True, "drained")


class FakeStack:
    def __init__(self, swarm: FakeSwarm) -> None:
        self.swarm = swarm

    def rollback(self, name: str) -> None:
        self.swarm.set_image(name, "app:v1")
        self.swarm.rolling[name] = 2  # asynchronous, as Swarm's is


class FakeJournal:
    def __init__(self) -> None:
        self.phases: list[str] = []
        self.cleared = False

    def write(self, entry: Any) -> None:
        self.phases.append(entry.phase)

    def clear(self) -> None:
        self.cleared = True


class FakeTarget:
    def __init__(self, swarm: FakeSwarm, driver: FakeDriver) -> None:
        self.swarm, self._driver = swarm, driver
        self.stack = FakeStack(swarm)
        self.engine = FakeEngine()
        self.running = {"app": swarm.services["s_app"]}

    def driver(self, options: DeployOptions) -> FakeDriver:
        return self._driver

    def needs_jobs(self, options: DeployOptions) -> bool:
        return False


def rollout(swarm: FakeSwarm, driver: FakeDriver, update: Any,
            journal: FakeJournal | None = None) -> StackRun:
    plan = StackPlan("s", (StackStep("app", "s_app", BRIDGE, "changed", OPTIONS),))
    target: Any = FakeTarget(swarm, driver)
    stack_journal: Any = journal or FakeJournal()
    return StackRun(target, plan, stack_journal, update, SilentObserver(), Interrupts(print),
                    "up")


def test_the_bridge_serves_while_swarm_updates_then_the_service_serves_again() -> None:
    swarm = FakeSwarm()
    driver = FakeDriver(swarm)
    result = rollout(swarm, driver, lambda: swarm.set_image("s_app", "app:v2")).run()
    assert swarm.log == ["create s_app-swap", "switch s_app-swap", "update s_app app:v2",
                         "switch s_app", "remove s_app-swap"]
    assert result.updated == ("s_app",) and swarm.image("s_app") == "app:v2"
    assert driver.serving == ["s_app", "s_app"]


def test_an_update_that_never_gets_ready_is_rolled_back_by_swarm_before_traffic_returns() -> None:
    swarm = FakeSwarm()
    swarm.broken.add("app:v2")
    journal = FakeJournal()
    with pytest.raises(DeployFailed, match="failed"):
        rollout(swarm, FakeDriver(swarm), lambda: swarm.set_image("s_app", "app:v2"),
                journal).run()
    assert swarm.log[2:] == ["update s_app app:v2", "update s_app app:v1",
                             "rollback s_app done", "switch s_app", "remove s_app-swap"]
    assert "s_app-swap" not in swarm.services and swarm.image("s_app") == "app:v1"
    assert journal.cleared


def test_an_agent_that_does_not_confirm_the_switch_to_the_bridge_rolls_back_naming_it() -> None:
    swarm = FakeSwarm()
    driver = FakeDriver(swarm, fail_switch=1)
    updated: list[str] = []
    with pytest.raises(DeployFailed, match="node-2@n2"):
        rollout(swarm, driver, lambda: updated.append("ran")).run()
    assert updated == [] and swarm.log[-2:] == ["switch s_app", "remove s_app-swap"]


def test_a_failed_switch_to_the_new_tasks_rolls_that_service_back_after_swarm_did(
        ) -> None:
    swarm = FakeSwarm()
    driver = FakeDriver(swarm, fail_switch=2)
    result = rollout(swarm, driver, lambda: swarm.set_image("s_app", "app:v2")).run()
    (bridged,) = result.bridged
    assert bridged.outcome == "rolled_back" and "node-2@n2" in str(bridged.error)
    # the proxies back on the bridge, Swarm's rollback waited for, then its old tasks
    assert swarm.log[3:] == ["switch s_app-swap", "update s_app app:v1", "rollback s_app done",
                             "switch s_app", "remove s_app-swap"]
    assert "s_app-swap" not in swarm.services and swarm.image("s_app") == "app:v1"


def test_a_failure_moving_the_proxies_back_needs_attention_and_keeps_the_bridge() -> None:
    swarm = FakeSwarm()
    driver = FakeDriver(swarm, fail_switch=2)
    driver.also_fail = {4}
    result: StackResult = rollout(swarm, driver, lambda: swarm.set_image("s_app", "app:v2")).run()
    (bridged,) = result.bridged
    assert bridged.outcome == "needs_attention"
    assert "docker-swap -p s recover app" in (bridged.error.hint or "")  # type: ignore[union-attr]
    assert "s_app-swap" in swarm.services


def test_the_report_gives_a_bridged_service_one_batch_with_every_phase_in_order() -> None:
    swarm = FakeSwarm()
    plan = StackPlan("s", (StackStep("app", "s_app", BRIDGE, "changed", OPTIONS),))
    target: Any = FakeTarget(swarm, FakeDriver(swarm))
    target.name = "s"
    journal: Any = FakeJournal()
    result = StackRun(target, plan, journal, lambda: swarm.set_image("s_app", "app:v2"),
                      SilentObserver(), Interrupts(print), "up").run()
    (service,) = _report(target, plan, result).services
    (batch,) = service.batches
    assert (batch.outcome, batch.old, batch.size) == ("done", ["s_app-swap"], 2)
    assert [p.name for p in batch.phases] == ["bridge", "to-bridge", "update", "settle",
                                              "start", "ready", "switch", "drain", "retire"]
    assert batch.seconds == service.seconds


def test_a_rollback_is_waited_for_in_the_batches_of_the_earlier_specs_rollback_config() -> None:
    """Swarm rolls back by the rollback_config of the spec it goes back to (its own defaults
    without one: a task at a time, monitored 5 s), not by the update_config: a spec updated
    all at once may take six batches to come back."""
    spec: dict[str, Any] = {"UpdateConfig": {"Parallelism": 6}}
    service = SwarmService("s_app", "s_app", 1, spec, 6)
    assert update_timeout(service, 30) == 30
    assert rollback_timeout(service, 30) == 6 * 35
    spec["RollbackConfig"] = {"Parallelism": 2, "Monitor": 1_000_000_000}
    assert rollback_timeout(service, 30) == 3 * 31
    assert update_timeout(SwarmService("s_app", "s_app", 1, {}, 2), 30) == 2 * 35
