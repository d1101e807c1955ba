"""A deploy through the registry waits for every agent; an agent keeps one proxy in line."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from docker_swap.agent import Agent
from docker_swap.errors import ProxyNotReady, SwitchNotConfirmed
from docker_swap.models import AgentStatus, Backend, Generation
from docker_swap.proxy.registry import RegistryDriver
from tests.fakes import FakeProxy, FakeRegistry

OLD = [Backend("a" * 64, "demo-app-1", "10.0.0.1", 8000)]
NEW = [Backend("b" * 64, "demo-app-2", "10.0.0.2", 8000)]


def registry_with(*names: str, alive: bool = True) -> FakeRegistry:
    registry = FakeRegistry()
    registry.publish(OLD)  # generation 1, applied by everyone
    for name in names:
        registry.statuses[name] = AgentStatus(name, "nginx:proxy", alive, 1, 1)
    return registry


def test_a_switch_returns_once_every_agent_applied() -> None:
    registry = registry_with("edge-1", "edge-2")
    registry.agents_apply = {"edge-1", "edge-2"}

    detail = RegistryDriver(registry, "app", 1.0).switch(NEW)

    assert detail == "generation 2 applied by 2 agent(s): demo-app-2"


def test_a_silent_agent_fails_the_switch_by_name() -> None:
    registry = registry_with("edge-1", "edge-2")
    registry.agents_apply = {"edge-1"}
    registry.statuses["edge-2"] = replace(registry.statuses["edge-2"], alive=False)

    with pytest.raises(SwitchNotConfirmed, match=r"agent\(s\) edge-2 \(silent\) did not apply "
                       r"generation 2 within 0.2 s"):
        RegistryDriver(registry, "app", 0.2).switch(NEW)


def test_rolling_back_does_not_wait_for_an_agent_that_still_serves_the_old_backends() -> None:
    registry = registry_with("edge-1", "edge-2")
    registry.agents_apply = {"edge-1"}
    driver = RegistryDriver(registry, "app", 0.2)
    with pytest.raises(SwitchNotConfirmed):
        driver.switch(NEW)

    assert driver.switch(OLD).startswith("generation 3 applied by 2 agent(s)")


def test_an_agent_error_fails_the_switch_at_once() -> None:
    registry = registry_with("edge-1")

    def fail() -> None:
        time.sleep(0.05)
        registry.statuses["edge-1"] = replace(registry.statuses["edge-1"], failed=2,
                                              error="nginx rejected the new upstream")

    threading.Thread(target=fail).start()
    started = time.monotonic()
    with pytest.raises(SwitchNotConfirmed, match="agent edge-1 could not apply generation 2: "
                       "nginx rejected the new upstream"):
        RegistryDriver(registry, "app", 30).switch(NEW)
    assert time.monotonic() - started < 5


def test_no_agent_at_all_is_refused() -> None:
    with pytest.raises(ProxyNotReady, match="no docker-swap agent follows app"):
        RegistryDriver(FakeRegistry(), "app", 1).check()


def run_agent_in_thread(registry: FakeRegistry, proxy: FakeProxy) -> threading.Event:
    stop = threading.Event()
    agent = Agent("edge-1", registry, lambda: proxy, "nginx:proxy", 1.0, lambda _: None)
    threading.Thread(target=agent.run, args=(stop, 0.05), daemon=True).start()
    return stop


def start_agent(registry: FakeRegistry, proxy: FakeProxy) -> tuple[threading.Event, list[str]]:
    said: list[str] = []
    stop = threading.Event()
    agent = Agent("edge-1", registry, lambda: proxy, "nginx:proxy", 1.0, said.append)
    threading.Thread(target=agent.run, args=(stop, 0.05), daemon=True).start()
    wait_until(lambda: any("ready at generation" in line for line in said))
    return stop, said


def wait_until(condition, seconds: float = 5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_agent_catches_up_then_follows_and_acknowledges() -> None:
    registry = registry_with()
    proxy = FakeProxy()
    stop = run_agent_in_thread(registry, proxy)
    try:
        wait_until(lambda: registry.statuses.get("edge-1", AgentStatus("", "", False)).drained
                   == 1)
        assert proxy.switches == [["demo-app-1"]]  # caught up with generation 1

        RegistryDriver(registry, "app", 5).switch(NEW)

        wait_until(lambda: registry.statuses["edge-1"].drained == 2)
        assert proxy.switches == [["demo-app-1"], ["demo-app-2"]]
    finally:
        stop.set()


def test_an_agent_reports_what_it_could_not_apply_and_skips_a_needless_reload() -> None:
    registry = registry_with()
    proxy = FakeProxy(errors={1: SwitchNotConfirmed("nginx did not reload")})
    stop = run_agent_in_thread(registry, proxy)
    try:
        wait_until(lambda: "edge-1" in registry.statuses and registry.statuses["edge-1"].alive)
        registry.publish(NEW)
        wait_until(lambda: registry.statuses["edge-1"].failed == 2)
        assert registry.statuses["edge-1"].error == "nginx did not reload"

        registry.publish(OLD)  # the deploy rolls back: the agent already serves these
        wait_until(lambda: registry.statuses["edge-1"].applied == 3)
        assert proxy.switches == [["demo-app-1"], ["demo-app-2"]]
    finally:
        stop.set()


def test_a_drain_in_a_fresh_process_waits_for_the_current_generation() -> None:
    registry = registry_with("edge-1")
    registry.publish(NEW)  # generation 2, published by a deploy that was killed
    registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", True, 2, 1)

    def drained() -> None:
        time.sleep(0.3)
        registry.statuses["edge-1"] = replace(registry.statuses["edge-1"], drained=2)

    threading.Thread(target=drained).start()
    result = RegistryDriver(registry, "app", 1).drain(5)  # `recover`: no switch in this process

    assert result.complete and result.seconds >= 0.25


def test_a_report_that_cannot_be_trusted_never_acknowledges() -> None:
    registry = registry_with("edge-1")
    registry.statuses["edge-1"] = AgentStatus(
        "edge-1", "", True, problem="its report was refused: it is not signed")

    with pytest.raises(ProxyNotReady, match="agent edge-1 cannot be trusted: its report was "
                       "refused: it is not signed"):
        RegistryDriver(registry, "app", 1).check()
    with pytest.raises(SwitchNotConfirmed, match=r"edge-1 \(report refused: its report was "
                       r"refused: it is not signed\) did not apply generation 2"):
        RegistryDriver(registry, "app", 0.2).switch(NEW)


def test_a_generation_is_numbered_above_what_any_agent_reports() -> None:
    registry = registry_with("edge-1")  # Redis lost its data, the agent had applied 7
    registry.generations.clear()
    registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", True, 7, 7)
    registry.agents_apply = {"edge-1"}

    assert RegistryDriver(registry, "app", 1).switch(NEW) == (
        "generation 8 applied by 1 agent(s): demo-app-2")


def test_an_agent_ahead_of_the_published_generation_gets_it_again_above_its_number() -> None:
    registry = registry_with("edge-1")
    registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", True, 9, 9)
    driver = RegistryDriver(registry, "app", 0.3)
    first = [True]

    def publish(backends: Sequence[Backend], after: int = 0) -> Generation:
        if first.pop() if first else False:  # as if the agent reported its 9 only after it
            return FakeRegistry.publish(registry, backends)
        generation = FakeRegistry.publish(registry, backends, after)
        registry.statuses["edge-1"] = replace(registry.statuses["edge-1"],
                                              applied=generation.number)
        return generation

    registry.publish = publish  # type: ignore[method-assign]

    assert driver.switch(NEW) == "generation 10 applied by 1 agent(s): demo-app-2"


def test_an_agent_ahead_that_never_applies_is_not_taken_for_done() -> None:
    registry = registry_with("edge-1")
    registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", True, 9, 9)
    driver = RegistryDriver(registry, "app", 0.2)
    registry.publish = lambda backends, after=0: FakeRegistry.publish(  # type: ignore[method-assign]
        registry, backends)  # a publication below the agent's 9, each time (a forged report)

    with pytest.raises(SwitchNotConfirmed, match="did not apply generation"):
        driver.switch(NEW)


def test_redis_failing_in_preflight_is_a_refusal() -> None:
    registry = registry_with("edge-1")
    registry.down = True

    with pytest.raises(ProxyNotReady, match="Redis at redis://fake failed"):
        RegistryDriver(registry, "app", 1).check()


def test_the_agent_apply_failpoint_acts_before_a_generation_is_applied(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_SWAP_FAILPOINTS", "agent-apply=error")
    registry = registry_with()
    proxy = FakeProxy()
    stop, _ = start_agent(registry, proxy)
    try:
        wait_until(lambda: registry.statuses["edge-1"].failed == 1)
        assert "failpoint agent-apply" in registry.statuses["edge-1"].error
        assert proxy.switches == []
    finally:
        stop.set()


def test_an_agent_that_refuses_a_rollback_it_does_not_need_does_not_fail_it() -> None:
    registry = registry_with("edge-1")  # serves generation 1 (OLD)
    registry.statuses["edge-1"] = replace(registry.statuses["edge-1"],
                                          error="generation 2 was refused: it is not signed")

    def publish_refused(backends: Sequence[Backend], after: int = 0) -> Generation:
        generation = FakeRegistry.publish(registry, backends, after)
        registry.statuses["edge-1"] = replace(registry.statuses["edge-1"],
                                              failed=generation.number)
        return generation

    registry.publish = publish_refused  # type: ignore[method-assign]

    assert RegistryDriver(registry, "app", 0.5).switch(OLD).startswith("generation 2 applied")


def test_a_registry_that_lost_its_data_is_published_again_and_waited_for() -> None:
    registry = registry_with("edge-1")
    driver = RegistryDriver(registry, "app", 2.0)
    driver.check()

    def redis_restarts_then_the_agent_catches_up() -> None:
        time.sleep(0.2)
        registry.generations.clear()
        registry.statuses.clear()  # Redis came back empty: no agent, no generation
        time.sleep(0.3)  # the agent registers again, then applies what is current
        current = registry.current_number()
        registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", True, current,
                                                  current)

    chaos = threading.Thread(target=redis_restarts_then_the_agent_catches_up)
    chaos.start()
    detail = driver.switch(NEW)
    chaos.join()

    applied = registry.statuses["edge-1"].applied
    assert detail == f"generation {applied} applied by 1 agent(s): demo-app-2"
    assert list(registry.generations[applied].backends) == NEW, "published again, above 1"


def test_no_agent_at_all_never_confirms_a_switch() -> None:
    registry = registry_with("edge-1")
    driver = RegistryDriver(registry, "app", 0.3)
    driver.check()
    registry.statuses.clear()

    with pytest.raises(SwitchNotConfirmed) as failure:
        driver.switch(NEW)

    assert "edge-1 (not registered any more)" in failure.value.message


def test_the_drain_waits_for_an_agent_still_draining_what_it_applied() -> None:
    registry = registry_with("edge-1")
    registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", True, 1, 0)

    drained = RegistryDriver(registry, "app", 1.0).drain(0.2)

    assert not drained.complete and "edge-1 still draining" in drained.detail


def test_the_drain_waits_for_an_agent_whose_record_redis_lost() -> None:
    registry = registry_with("edge-1")
    driver = RegistryDriver(registry, "app", 1.0)
    driver.check()
    registry.statuses.clear()  # Redis restarted without its data

    drained = driver.drain(0.2)

    assert not drained.complete and "edge-1 (not registered) still draining" in drained.detail


def test_an_agent_whose_node_is_down_is_not_waited_for_but_one_on_a_live_node_is() -> None:
    registry = registry_with("edge-1@n1", "edge-2@n2", "edge-3@n3")
    registry.agents_apply = {"edge-1@n1"}
    for name in ("edge-2@n2", "edge-3@n3"):
        registry.statuses[name] = replace(registry.statuses[name], alive=False)
    down = {"n2"}
    driver = RegistryDriver(registry, "app", 0.3,
                            excused=lambda agent: agent.rpartition("@")[2] in down)
    notes = driver.check()
    assert "agent edge-2@n2 is not waited for: its node is down." in notes

    with pytest.raises(SwitchNotConfirmed, match=r"edge-3@n3 \(silent\)"):
        driver.switch(NEW)
    down.add("n3")
    assert driver.switch(NEW).endswith("demo-app-2")
    assert driver.drain(0.3).complete


def test_redis_away_for_a_moment_during_a_switch_is_waited_out() -> None:
    registry = registry_with("edge-1")
    registry.agents_apply = {"edge-1"}
    publish = registry.publish

    def publish_then_restart(backends: Sequence[Backend], after: int = 0) -> Generation:
        generation = publish(backends, after)
        registry.down = True  # restarting: every read fails for a moment
        threading.Timer(0.3, lambda: setattr(registry, "down", False)).start()
        return generation

    registry.publish = publish_then_restart  # type: ignore[method-assign]

    assert RegistryDriver(registry, "app", 5).switch(NEW).startswith("generation 2 applied")


def test_redis_away_for_the_whole_switch_fails_it_and_says_why() -> None:
    registry = registry_with("edge-1")
    registry.down = True

    with pytest.raises(SwitchNotConfirmed, match=r"Redis at redis://fake failed: Connection "
                       r"refused\. What the agents applied could not be read within 0\.2 s"):
        RegistryDriver(registry, "app", 0.2).switch(NEW)


def test_a_switch_back_after_redis_lost_its_data_never_reuses_the_forward_number() -> None:
    """Redis restarts empty right after the forward generation (2) reached the agent: the
    switch back must be numbered above 2, which the agent has seen and will not apply again,
    and must not be taken for applied because the agent reports 2."""
    registry = registry_with("edge-1")
    registry.agents_apply = {"edge-1"}
    driver = RegistryDriver(registry, "app", 0.3)
    driver.check()
    publish = registry.publish

    def publish_then_go_away(backends: Sequence[Backend], after: int = 0) -> Generation:
        generation = publish(backends, after)
        registry.down = True
        return generation

    registry.publish = publish_then_go_away  # type: ignore[method-assign]
    with pytest.raises(SwitchNotConfirmed):
        driver.switch(NEW)
    registry.publish = publish  # type: ignore[method-assign]
    registry.generations.clear()  # back, empty; the agent registers again, serving 2 (NEW)
    registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", True, 2, 2)
    registry.agents_apply = set()  # it applies nothing it has not been sent yet
    registry.down = False

    with pytest.raises(SwitchNotConfirmed, match="did not apply generation 3"):
        driver.switch(OLD)


def test_the_drain_waits_out_redis_away_for_a_moment() -> None:
    registry = registry_with("edge-1")
    registry.down = True
    threading.Timer(0.2, lambda: setattr(registry, "down", False)).start()

    assert RegistryDriver(registry, "app", 1.0).drain(5).complete

    registry.down = True
    drained = RegistryDriver(registry, "app", 1.0).drain(0.2)
    assert not drained.complete and "Connection refused" in drained.detail


def test_the_agents_get_the_whole_switch_timeout_from_the_publication_on() -> None:
    """A publication that takes long (Redis busy, or the fault suite's pause at `switch`)
    does not eat into the agents' time to apply it."""
    registry = registry_with("edge-1")
    publish = registry.publish

    def slow_publish(backends: Sequence[Backend], after: int = 0) -> Generation:
        time.sleep(0.3)
        generation = publish(backends, after)
        threading.Timer(0.1, lambda: registry.statuses.__setitem__("edge-1", replace(
            registry.statuses["edge-1"], applied=generation.number))).start()
        return generation

    registry.publish = slow_publish  # type: ignore[method-assign]

    assert RegistryDriver(registry, "app", 0.25).switch(NEW).startswith("generation 2 applied")
