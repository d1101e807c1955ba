"""The order of a swap and every rollback path, with fakes (the real proof is in integration)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from docker_swap.errors import (
    ComposeFailed,
    ContainerExited,
    DeployFailed,
    EngineFailed,
    Interrupted,
    NeedsAttention,
    NotReady,
    ProxyConfigInvalid,
    SwitchNotConfirmed,
)
from docker_swap.models import Project, ServiceDefinition
from docker_swap.observer import PhaseResult
from docker_swap.options import DeployOptions, ProxyRef, VerifyOptions
from docker_swap.proxy import Drained
from docker_swap.releases.store import Recorded
from docker_swap.rollout.batch import compose_swap
from docker_swap.rollout.deploy import deploy_prepared
from docker_swap.rollout.swap import Swap
from docker_swap.rollout.verify import Verifier
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Entry, Journal
from docker_swap.targets.compose.preflight import Plan
from tests.fakes import FakeCompose, FakeEngine, FakeProxy, FakeWatch


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def phase_started(self, name: str) -> None:
        self.events.append(f"begin {name}")

    def phase_finished(self, result: PhaseResult) -> None:
        self.events.append(f"end {result.name}")

    def note(self, text: str) -> None:
        self.events.append(f"note {text}")

    def progress(self, text: str) -> None:
        self.events.append(f"progress {text}")


class World:
    """One service `app` with `replicas` running containers, a fake proxy and a real journal."""

    def __init__(self, tmp_path: Path, replicas: int = 1, **options: object) -> None:
        self.engine = FakeEngine()
        self.old = [self.engine.add("app", n) for n in range(1, replicas + 1)]
        self.proxy = FakeProxy()
        self.journal = Journal(self.engine, "demo", "app", root=tmp_path)
        settings: dict[str, object] = {"timeout": 2.0, **options}
        self.options = DeployOptions(
            service="app", proxy=ProxyRef("nginx", "proxy"), health_cmd=("./healthcheck",),
            **settings,  # type: ignore[arg-type]
        )
        self.recorder = Recorder()
        self.compose = FakeCompose(self.engine)

    def swap(self) -> Swap:
        project = Project("demo", {"app": ServiceDefinition("app")})
        plan = Plan(project, self.options, self.old, 8000, "demo_default", self.proxy,
                    self.journal, [])
        return compose_swap(plan, self.engine, self.compose, self.recorder,
                            Interrupts(self.recorder.note), old=self.old, staying=[],
                            size=len(self.old), kind="deploy")

    def names(self) -> list[str]:
        return [c.name for c in self.engine.service_containers("demo", "app")]


def test_phases_run_in_order_and_the_old_container_goes_last(tmp_path: Path) -> None:
    world = World(tmp_path)

    report = world.swap().run()

    assert [e for e in world.recorder.events if e.startswith("end")] == [
        "end start", "end ready", "end switch", "end drain", "end retire"]
    assert world.proxy.switches == [["demo-app-2"]]
    assert world.engine.calls[-2:] == ["stop demo-app-1", "remove demo-app-1"]
    assert world.names() == ["demo-app-2"]
    assert [u.name for u in report.new] == ["demo-app-2"]
    assert world.journal.read() is None
    assert all(watch.closed for watch in world.engine.watches.values())


def test_every_replica_is_replaced_at_once(tmp_path: Path) -> None:
    world = World(tmp_path, replicas=2)

    world.swap().run()

    assert world.proxy.switches == [["demo-app-3", "demo-app-4"]]
    assert world.names() == ["demo-app-3", "demo-app-4"]


def test_the_journal_follows_every_phase(tmp_path: Path) -> None:
    world = World(tmp_path)
    phases: list[str] = []

    class Recording(Journal):
        def write(self, entry: Entry) -> None:
            phases.append(entry.phase)
            super().write(entry)

    world.journal = Recording(world.engine, "demo", "app", root=tmp_path)
    world.swap().run()

    assert phases == ["starting", "started", "switching", "switched"]
    assert world.journal.read() is None


def test_a_timeout_removes_the_new_container_and_leaves_the_proxy_alone(tmp_path: Path) -> None:
    world = World(tmp_path, timeout=0.3)
    world.engine.ready_after = 10**9

    with pytest.raises(DeployFailed) as failure:
        world.swap().run()

    assert isinstance(failure.value.cause, NotReady)
    assert failure.value.logs == "log of demo-app-2\n"
    assert world.proxy.staged == [["demo-app-2"]] and world.proxy.unstaged == 1
    assert world.proxy.switches == []
    assert world.names() == ["demo-app-1"]
    assert "stop demo-app-1" not in world.engine.calls
    assert world.journal.read() is None


def test_an_exit_during_readiness_fails_at_once(tmp_path: Path) -> None:
    world = World(tmp_path, timeout=30.0)
    world.engine.ready_after = 10**9

    def crash(watch: FakeWatch) -> None:
        watch.exit_code = 3
        watch.changed.set()

    world.engine.on_exec = crash

    with pytest.raises(DeployFailed) as failure:
        world.swap().run()

    assert isinstance(failure.value.cause, ContainerExited)
    assert world.engine.calls.count("exec ./healthcheck") == 1
    assert world.names() == ["demo-app-1"]


def test_compose_failing_after_creating_a_container_removes_it(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.compose = FakeCompose(world.engine, ComposeFailed("port is taken"), created_on_error=1)

    with pytest.raises(DeployFailed) as failure:
        world.swap().run()

    assert isinstance(failure.value.cause, ComposeFailed)
    assert world.names() == ["demo-app-1"]


def test_a_config_the_proxy_rejects_fails_before_the_readiness_wait(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.proxy.stage_error = ProxyConfigInvalid("nginx said no")

    with pytest.raises(DeployFailed) as failure:
        world.swap().run()

    assert isinstance(failure.value.cause, ProxyConfigInvalid)
    assert not any(call.startswith("exec") for call in world.engine.calls)
    assert world.proxy.switches == [] and world.proxy.unstaged == 1
    assert world.names() == ["demo-app-1"]


def test_a_rejected_proxy_config_is_not_switched_back(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.proxy.errors = {0: ProxyConfigInvalid("nginx said no")}

    with pytest.raises(DeployFailed):
        world.swap().run()

    assert world.proxy.switches == [["demo-app-2"]]
    assert world.names() == ["demo-app-1"]


def test_an_unconfirmed_switch_is_switched_back_before_removing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.proxy.errors = {0: SwitchNotConfirmed("no new workers")}

    with pytest.raises(DeployFailed):
        world.swap().run()

    assert world.proxy.switches == [["demo-app-2"], ["demo-app-1"]]
    assert world.engine.calls[-2:] == ["stop demo-app-2", "remove demo-app-2"]
    assert world.names() == ["demo-app-1"]


def test_a_failed_switch_back_needs_attention_and_keeps_the_journal(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.proxy.errors = {0: SwitchNotConfirmed("no new workers"), 1: SwitchNotConfirmed("still")}

    with pytest.raises(NeedsAttention) as failure:
        world.swap().run()

    assert "the proxy could not be switched back" in failure.value.message
    entry = world.journal.read()
    assert entry is not None and entry.phase == "undoing", "recover undoes from here"
    assert json.loads(world.journal.path.read_text())["old"] == [world.old[0].id]


def test_an_interruption_before_the_switch_rolls_back(tmp_path: Path) -> None:
    world = World(tmp_path)

    def interrupt(watch: FakeWatch) -> None:
        raise Interrupted("interrupted by SIGINT before the switch completed.")

    world.engine.on_exec = interrupt

    with pytest.raises(DeployFailed) as failure:
        world.swap().run()

    assert isinstance(failure.value.cause, Interrupted)
    assert world.names() == ["demo-app-1"]


def test_an_unexpected_error_still_rolls_back_and_needs_attention(tmp_path: Path) -> None:
    world = World(tmp_path)

    def bug(watch: FakeWatch) -> None:
        raise KeyError("surprise")

    world.engine.on_exec = bug

    with pytest.raises(NeedsAttention) as failure:
        world.swap().run()

    assert failure.value.message.startswith("unexpected error: KeyError('surprise').")
    assert "undone: the old container(s) demo-app-1 still run and serve" in failure.value.message
    assert world.names() == ["demo-app-1"]
    assert world.journal.read() is not None, "kept, for recover to confirm"


def test_a_failed_retire_needs_attention_after_the_switch(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.engine.failing = {"stop"}

    with pytest.raises(NeedsAttention) as failure:
        world.swap().run()

    assert failure.value.message.startswith(
        "the new version serves (demo-app-2), but retiring the old containers failed: "
        "stop demo-app-1 failed; the old container(s) demo-app-1 still run, out of the proxy")
    assert world.proxy.switches == [["demo-app-2"]]
    entry = world.journal.read()
    assert entry is not None and entry.phase == "switched"


def test_an_incomplete_drain_is_a_note_not_a_failure(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.proxy.drained = Drained(30.0, False, "1 old nginx worker(s) still busy after 30 s")

    world.swap().run()

    notes = [e for e in world.recorder.events if e.startswith("note")]
    assert len(notes) == 1 and "drain timed out" in notes[0]
    assert world.names() == ["demo-app-2"]


def test_an_error_after_the_retire_needs_attention_and_is_never_a_rollback(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    swap = world.swap()

    def engine_gone() -> None:
        raise EngineFailed("could not remove docker-swap-journal.demo.app.4: no answer")

    swap.journal.clear = engine_gone  # type: ignore[method-assign]
    with pytest.raises(NeedsAttention) as failure:
        swap.run()

    assert "the new version serves (demo-app-2), but clearing its journal failed" in \
        failure.value.message
    assert world.names() == ["demo-app-2"]


def test_a_signal_while_the_release_is_recorded_waits_for_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(tmp_path)
    recorded: list[str] = []

    def record(*_: object, **__: object) -> Recorded:
        signal.raise_signal(signal.SIGTERM)  # what a user's Ctrl-C at this moment does
        recorded.append("written")
        return Recorded(7)

    monkeypatch.setattr("docker_swap.rollout.deploy.record_release", record)
    project = Project("demo", {"app": ServiceDefinition("app")})
    plan = Plan(project, world.options, world.old, 8000, "demo_default", world.proxy,
                world.journal, [])
    with Interrupts(world.recorder.note) as interrupts:
        report = deploy_prepared(plan, world.engine, world.compose, world.recorder, interrupts,
                                 Verifier(VerifyOptions()), None)

    assert recorded == ["written"] and report.release == 7
    assert "note SIGTERM received: recording the release first." in world.recorder.events
