"""A deploy through the registry waits for every agent; an agent keeps one proxy in line."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from docker_swap.agent import Agent
from docker_swap.errors import ProxyNotReady, SwitchNotConfirmed
from docker_swap.models import AgentStatus, Backend
from docker_swap.proxy.registry import RegistryDriver
from docker_swap.testing import FakeProxy, FakeRegistry

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
