"""The project runner: dependency order, what a failure stops, exit codes (fakes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from docker_swap.errors import InvalidSettings
from docker_swap.models import Project, PublishedPort, ServiceDefinition
from docker_swap.releases.store import read_releases
from docker_swap.rollout.outcomes import ServiceOutcome, SilentUpObserver, UpReport
from docker_swap.rollout.project import Locks, Run
from docker_swap.targets.compose.plan import read_plan
from tests.fakes import FakeCompose, FakeEngine, FakeProxy


class Recorder(SilentUpObserver):
    def __init__(self) -> None:
        self.started: list[str] = []

    def service_started(self, service: object) -> None:
        self.started.append(getattr(service, "name", "?"))


def run(engine: FakeEngine, services: dict[str, ServiceDefinition],
        hashes: dict[str, str]) -> tuple[list[ServiceOutcome], FakeCompose, Recorder]:
    compose = FakeCompose(engine, hashes=hashes)
    plan = read_plan(compose, engine, Project("demo", services))
    recorder = Recorder()
    with Locks(engine, plan) as locks:
        return Run(plan, engine, compose, locks.prepared, recorder).all(1), compose, recorder


def project(tmp_path: Path) -> tuple[FakeEngine, dict[str, ServiceDefinition], dict[str, str]]:
    """db (fixed port, changed: recreate) <- worker (changed: replace) <- app (not running:
    start); cache (not running: start) stands apart; static is unchanged."""
    engine = FakeEngine(config_hash="new", image_refs={"img": "sha256:i"})
    engine.add("db", 1, config_hash="old")
    engine.add("worker", 1, config_hash="old")
    engine.add("static", 1, config_hash="new", image_id="sha256:i")
    services = {
        "db": ServiceDefinition("db", published_ports=(PublishedPort("5432", 5432),)),
        "worker": ServiceDefinition("worker", depends_on={"db": "service_healthy"},
                                    x_swap={"health-cmd": "./healthcheck", "timeout": "300ms"}),
        "app": ServiceDefinition("app", replicas=2, depends_on={"worker": "service_started"}),
        "cache": ServiceDefinition("cache"),
        "static": ServiceDefinition("static", image="img"),
    }
    return engine, services, {name: "new" for name in services}


def test_services_go_dependencies_first_each_by_its_action(tmp_path: Path) -> None:
    engine, services, hashes = project(tmp_path)

    outcomes, compose, recorder = run(engine, services, hashes)

    assert recorder.started == ["cache", "db", "static", "worker", "app"]
    assert compose.converged == ["cache=1", "db=1 recreate", "app=2"]
    assert [(o.name, o.action, o.outcome) for o in outcomes] == [
        ("cache", "start", "done"), ("db", "recreate", "done"),
        ("static", "unchanged", "unchanged"), ("worker", "replace", "done"),
        ("app", "start", "done")]
    assert UpReport("demo", False, outcomes).exit_code == 0


def test_a_rolled_back_service_stops_what_depends_on_it_and_nothing_else(
    tmp_path: Path,
) -> None:
    engine, services, hashes = project(tmp_path)
    engine.never_ready = {"demo-worker-2"}

    outcomes, compose, _ = run(engine, services, hashes)

    by_name = {o.name: o for o in outcomes}
    assert by_name["worker"].outcome == "rolled_back"
    assert by_name["app"].outcome == "not_reached"
    assert by_name["app"].detail == "not reached: it depends on worker, which failed"
    assert by_name["cache"].outcome == "done" and "app=2" not in compose.converged
    assert UpReport("demo", False, outcomes).exit_code == 1


def test_a_pause_stops_the_whole_run_and_needs_attention(tmp_path: Path) -> None:
    engine, services, hashes = project(tmp_path)
    engine.add("worker", 2, config_hash="old")
    services["worker"] = ServiceDefinition(
        "worker", replicas=2, depends_on={"db": "service_started"},
        x_swap={"health-cmd": "./healthcheck", "timeout": "300ms"},
        deploy={"update_config": {"parallelism": 1, "failure_action": "pause"}})
    engine.never_ready = {"demo-worker-4"}

    outcomes, _, _ = run(engine, services, hashes)

    by_name = {o.name: o for o in outcomes}
    assert by_name["worker"].outcome == "paused"
    assert "1 container(s) run the new version (demo-worker-3)" in by_name["worker"].detail
    assert by_name["app"].outcome == "not_reached"
    assert UpReport("demo", False, outcomes).exit_code == 3


def test_independent_services_go_side_by_side_within_the_bound(tmp_path: Path) -> None:
    engine, services, hashes = project(tmp_path)
    compose = FakeCompose(engine, hashes=hashes)
    plan = read_plan(compose, engine, Project("demo", services))
    running: set[str] = set()
    most = 0
    converge = compose.converge

    def slow(service: str, replicas: int, **flags: object) -> None:
        nonlocal most
        running.add(service)
        most = max(most, len(running))
        time.sleep(0.2)
        running.discard(service)
        converge(service, replicas, **flags)  # type: ignore[arg-type]

    compose.converge = slow  # type: ignore[method-assign]

    with Locks(engine, plan) as locks:
        outcomes = Run(plan, engine, compose, locks.prepared, SilentUpObserver()).all(2)

    assert most == 2  # cache and db, which depend on nothing
    by_name = {o.name: o for o in outcomes}
    assert by_name["app"].started >= by_name["worker"].started + by_name["worker"].seconds
    assert {o.outcome for o in outcomes} == {"done", "unchanged"}


def test_each_service_that_up_replaces_is_a_release_of_kind_up(tmp_path: Path) -> None:
    engine, services, hashes = project(tmp_path)

    run(engine, services, hashes)

    releases, _ = read_releases(engine, "demo", "worker")
    assert [(r.kind, r.outcome) for r in releases[:1]] == [("up", "deployed")]
    assert read_releases(engine, "demo", "static")[0] == [], "unchanged: no release"


def proxied_app(engine: FakeEngine, running: int, replicas: int) -> dict[str, ServiceDefinition]:
    for number in range(1, running + 1):
        engine.add("app", number, config_hash="new", image_id="sha256:i")
    engine.image_refs["img"] = "sha256:i"
    return {"app": ServiceDefinition("app", image="img", replicas=replicas,
                                     x_swap={"proxy": "nginx:proxy", "timeout": "300ms",
                                             "health-cmd": "./healthcheck"}),
            "proxy": ServiceDefinition("proxy")}


def run_with_proxy(engine: FakeEngine, services: dict[str, ServiceDefinition],
                   monkeypatch: pytest.MonkeyPatch) -> tuple[list[ServiceOutcome], FakeProxy]:
    proxy = FakeProxy()
    engine.add("proxy", 1, config_hash="new")
    monkeypatch.setattr("docker_swap.targets.compose.preflight.open_proxy",
                        lambda *_a, **_k: proxy)
    outcomes, _, _ = run(engine, services, {name: "new" for name in services})
    return outcomes, proxy


def test_scaling_up_behind_a_proxy_probes_the_new_containers_before_they_join(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = FakeEngine(config_hash="new")
    services = proxied_app(engine, running=1, replicas=2)
    engine.never_ready = {"demo-app-2"}

    outcomes, proxy = run_with_proxy(engine, services, monkeypatch)

    app = next(o for o in outcomes if o.name == "app")
    assert (app.action, app.outcome) == ("scale", "rolled_back"), app
    assert all("demo-app-2" not in switch for switch in proxy.switches), proxy.switches
    assert [c.name for c in engine.service_containers("demo", "app")] == ["demo-app-1"]


def test_a_proxied_service_scaled_to_zero_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    engine = FakeEngine(config_hash="new")
    services = proxied_app(engine, running=2, replicas=0)

    with pytest.raises(InvalidSettings, match="nothing to send to"):
        run(engine, services, {name: "new" for name in services})
    assert len(engine.service_containers("demo", "app")) == 2


def test_a_changed_service_with_no_replicas_is_stopped_by_compose(tmp_path: Path) -> None:
    engine = FakeEngine(config_hash="new")
    engine.add("worker", 1, config_hash="old")
    services = {"worker": ServiceDefinition("worker", replicas=0)}

    outcomes, compose, _ = run(engine, services, {"worker": "new"})

    assert (outcomes[0].action, outcomes[0].outcome) == ("scale", "done")
    assert compose.converged == ["worker=0"]


def test_an_error_nobody_expected_in_one_service_is_its_outcome_not_a_crash(
    tmp_path: Path,
) -> None:
    engine, services, hashes = project(tmp_path)
    compose = FakeCompose(engine, hashes=hashes)

    def bug(service: str, replicas: int, **flags: object) -> None:
        raise IndexError("list index out of range")

    compose.converge = bug  # type: ignore[method-assign]
    plan = read_plan(compose, engine, Project("demo", services))
    with Locks(engine, plan) as locks:
        outcomes = Run(plan, engine, compose, locks.prepared, SilentUpObserver()).all(2)

    by_name = {o.name: o for o in outcomes}
    assert by_name["cache"].outcome == "needs_attention"
    assert "IndexError" in by_name["cache"].error
    assert UpReport("demo", False, outcomes).exit_code == 3
