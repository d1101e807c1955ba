"""The planner: one action per service, its reason, the order and the batches (fakes; what the
hash and the labels mean to compose is proven against the real CLI in tests/integration)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from docker_swap.errors import InvalidSettings, NotSwappable, ServiceNotFound
from docker_swap.models import Container, Project, PublishedPort, ServiceDefinition
from docker_swap.targets.compose.plan import (
    Observed,
    ProjectPlan,
    batch_sizes,
    make_plan,
    read_plan,
)
from tests.fakes import FakeCompose, FakeEngine

PROXIED = {"proxy": "nginx:proxy"}


class World:
    """A project whose services each run `running` containers made from `hash`/`image`."""

    def __init__(self) -> None:
        self.engine = FakeEngine()
        self.services: dict[str, ServiceDefinition] = {}
        self.hashes: dict[str, str] = {}

    def service(self, name: str, *, running: int = 1, replicas: int = 1, hash_now: str = "h1",
                hash_then: str = "h1", image_now: str | None = "sha256:i1",
                image_then: str = "sha256:i1", stopped: int = 0, **definition: Any) -> None:
        self.services[name] = ServiceDefinition(name, replicas=replicas, image=f"img/{name}",
                                                **definition)
        self.hashes[name] = hash_now
        if image_now:
            self.engine.image_refs[f"img/{name}"] = image_now
        for number in range(1, running + stopped + 1):
            self.engine.add(name, number, config_hash=hash_then, image_id=image_then,
                            status="running" if number <= running else "exited")

    def plan(self, *selected: str) -> ProjectPlan:
        project = Project("demo", self.services)
        return read_plan(FakeCompose(self.engine, hashes=self.hashes), self.engine, project,
                         selected)

    def action(self, name: str) -> tuple[str, str]:
        service = self.plan().service(name)
        return service.action, service.reason


@pytest.fixture
def world() -> World:
    return World()


def test_containers_made_from_the_current_hash_and_image_are_unchanged(world: World) -> None:
    world.service("app", running=2, replicas=2, x_swap=PROXIED)

    action, reason = world.action("app")

    assert action == "unchanged"
    assert reason == "2 container(s) run the current definition (config hash h1, same image)"


def test_a_service_with_no_container_is_started(world: World) -> None:
    world.service("app", running=0, replicas=3)

    assert world.action("app") == ("start", "no container; compose starts 3")


def test_a_service_with_only_stopped_containers_is_started(world: World) -> None:
    world.service("app", running=0, stopped=1)

    assert world.action("app") == ("start", "1 stopped container(s); compose starts 1")


def test_only_the_replica_count_differs_scale(world: World) -> None:
    world.service("app", running=1, replicas=3, x_swap=PROXIED)

    assert world.action("app") == (
        "scale", "runs 1 of 3 replica(s), each on the current definition")


def test_a_changed_service_behind_a_proxy_is_swapped_in_batches(world: World) -> None:
    deploy = {"update_config": {"parallelism": 1}}
    world.service("app", running=3, replicas=3, hash_then="h0", x_swap=PROXIED, deploy=deploy)

    service = world.plan().service("app")

    assert service.action == "swap"
    assert service.reason == ("definition changed (config hash h0 -> h1); behind nginx:proxy, "
                              "3 replica(s) in 3 batch(es) of 1")
    assert service.batches == (1, 1, 1)


def test_a_new_image_with_the_same_definition_is_a_change(world: World) -> None:
    world.service("app", running=1, image_now="sha256:new", image_then="sha256:old",
                  x_swap=PROXIED)

    action, reason = world.action("app")

    assert action == "swap"
    assert reason.startswith("image changed (old -> new)")


def test_an_image_that_is_not_here_yet_is_a_change(world: World) -> None:
    world.service("app", running=1, image_now=None, x_swap=PROXIED)

    assert world.action("app")[1].startswith("its image is not here yet")


def test_a_changed_service_without_a_proxy_is_replaced_start_first(world: World) -> None:
    world.service("worker", running=1, hash_then="h0", x_swap={"settle": "2s"})

    service = world.plan().service("worker")

    assert service.action == "replace"
    assert "no proxy: start-first, 1 replica(s) in 1 batch(es) of 1" in service.reason
    assert service.options is not None and service.options.settle == 2.0
    assert service.batches == (1,)


@pytest.mark.parametrize(("definition", "why"), [
    ({"container_name": "db"}, "sets container_name db"),
    ({"published_ports": (PublishedPort("5432", 5432),)}, "publishes host port 5432"),
    ({"network_mode": "host"}, "uses network_mode host"),
    ({"deploy": {"update_config": {"order": "stop-first"}}}, "order is stop-first"),
])
def test_a_changed_service_that_cannot_run_twice_is_recreated_with_downtime(
    world: World, definition: Mapping[str, Any], why: str,
) -> None:
    world.service("db", running=1, hash_then="h0", x_swap=PROXIED, **definition)

    service = world.plan().service("db")

    assert service.action == "recreate"
    assert service.downtime is not None and why in service.downtime
    assert "downtime" in service.downtime and why in service.reason
    assert service.batches == ()


def test_an_unchanged_service_with_a_fixed_port_is_left_alone(world: World) -> None:
    world.service("db", published_ports=(PublishedPort("5432", 5432),))

    assert world.action("db")[0] == "unchanged"


def test_dependencies_come_first(world: World) -> None:
    world.service("proxy", depends_on={"app": "service_started"})
    world.service("app", depends_on={"db": "service_healthy", "cache": "service_started"})
    world.service("db")
    world.service("cache")

    plan = world.plan()

    assert [s.name for s in plan.services] == ["cache", "db", "app", "proxy"]
    assert plan.needs_healthy("db") and not plan.needs_healthy("cache")


def test_named_services_bring_what_they_depend_on_and_nothing_else(world: World) -> None:
    world.service("proxy", depends_on={"app": "service_started"})
    world.service("app", depends_on={"db": "service_started"})
    world.service("db")
    world.service("other")

    assert [s.name for s in world.plan("app").services] == ["db", "app"]


def test_plan_is_decided_from_what_was_observed_alone() -> None:
    project = Project("demo", {"app": ServiceDefinition("app", image="img")})
    running = Container("a" * 64, "demo-app-1", "demo", "app", 1, "running",
                        config_hash="h0", image_id="sha256:i")

    plan = make_plan(project, Observed({"app": [running]}, {"app": "h1"}, {"app": "sha256:i"}))

    assert [(s.name, s.action) for s in plan.services] == [("app", "replace")]


@pytest.mark.parametrize(("replicas", "parallelism", "sizes"), [
    (3, 1, (1, 1, 1)), (5, 2, (2, 2, 1)), (3, 0, (3,)), (2, 5, (2,)), (4, 4, (4,)),
])
def test_batches_follow_parallelism(replicas: int, parallelism: int,
                                    sizes: tuple[int, ...]) -> None:
    assert batch_sizes(replicas, parallelism) == sizes


def test_update_config_is_read_with_docker_swaps_defaults(world: World) -> None:
    deploy = {"update_config": {"parallelism": 2, "delay": "1s", "monitor": "500ms",
                                "max_failure_ratio": 0.5, "failure_action": "pause"},
              "rollback_config": {"parallelism": 1}}
    world.service("app", deploy=deploy)
    world.service("api")

    app, api = world.plan().service("app"), world.plan().service("api")

    assert (app.update.parallelism, app.update.delay, app.update.monitor) == (2, 1.0, 0.5)
    assert (app.update.failure_action, app.update.max_failure_ratio) == ("pause", 0.5)
    assert app.rollback.parallelism == 1
    assert api.update.failure_action == "rollback" and api.update.order == "start-first"


# Refusals: each one sentence, before anything changed.

def test_an_unknown_service_is_refused(world: World) -> None:
    world.service("app")

    with pytest.raises(ServiceNotFound, match=r"has no service 'nope' \(services: app\)"):
        world.plan("nope")


def test_a_dependency_cycle_is_refused(world: World) -> None:
    world.service("a", depends_on={"b": "service_started"})
    world.service("b", depends_on={"a": "service_started"})

    with pytest.raises(InvalidSettings, match="a, b depend on each other in a cycle"):
        world.plan()


@pytest.mark.parametrize(("update", "message"), [
    ({"failure_action": "explode"}, "failure_action of service 'app' is 'explode'; expected "
                                    "rollback, pause, continue"),
    ({"parallelism": -1}, "parallelism of service 'app' is -1"),
    ({"max_failure_ratio": 2}, "max_failure_ratio of service 'app' is 2"),
    ({"order": "sideways"}, "order of service 'app' is 'sideways'"),
    ({"delay": "soon"}, "delay of service 'app' is 'soon'"),
])
def test_an_unusable_update_config_is_refused(world: World, update: Mapping[str, object],
                                              message: str) -> None:
    world.service("app", deploy={"update_config": update})

    with pytest.raises(InvalidSettings, match=message):
        world.plan()


def test_an_unknown_x_swap_key_is_refused(world: World) -> None:
    world.service("app", x_swap={"proxi": "nginx:proxy"})

    with pytest.raises(InvalidSettings, match="unknown key 'proxi'"):
        world.plan()


def test_stopped_containers_beside_running_ones_of_a_changed_service_are_refused(
    world: World,
) -> None:
    world.service("app", running=1, stopped=1, hash_then="h0", x_swap=PROXIED)

    with pytest.raises(NotSwappable, match=r"stopped containers \(demo-app-2\)"):
        world.plan()
