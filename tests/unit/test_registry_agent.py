"""An agent keeps one proxy in line with the registry, whatever goes wrong around it (fakes of
the registry and the proxy; tests/integration has real Redis, nginx and HAProxy)."""

from __future__ import annotations

import threading
import time

from docker_swap.agent import Agent
from docker_swap.errors import SwitchNotConfirmed
from docker_swap.models import AgentStatus, Backend, Generation
from docker_swap.proxy import Drained
from tests.fakes import FakeProxy

from .test_registry_driver import NEW, OLD, registry_with, start_agent, wait_until


def test_an_agent_refuses_a_bad_generation_keeps_serving_and_applies_the_next() -> None:
    registry = registry_with()
    proxy = FakeProxy()
    stop, said = start_agent(registry, proxy)
    try:
        registry.invalid[2] = "generation 2: backend 1 was refused: its name is not valid."
        registry.published.set()
        wait_until(lambda: registry.statuses["edge-1"].failed == 2)
        assert registry.statuses["edge-1"].error.startswith("generation 2: backend 1 was")
        assert proxy.switches == [["demo-app-1"]]
        time.sleep(0.2)  # resyncs see it again: said once
        assert sum("refused generation 2" in line for line in said) == 1

        registry.publish(NEW)  # generation 3
        wait_until(lambda: registry.statuses["edge-1"].drained == 3)
        assert proxy.switches == [["demo-app-1"], ["demo-app-2"]]
        assert registry.statuses["edge-1"].error == ""
    finally:
        stop.set()


def test_an_agent_outlives_redis_going_away_and_catches_up_when_it_is_back() -> None:
    registry = registry_with()
    proxy = FakeProxy()
    stop, said = start_agent(registry, proxy)
    try:
        registry.down = True
        registry.published.set()
        wait_until(lambda: any("Trying again in" in line for line in said))
        registry.down = False
        registry.statuses.clear()  # Redis came back empty
        registry.publish(NEW)

        wait_until(lambda: registry.statuses.get("edge-1", AgentStatus("", "", False)).drained
                   == 2)
        assert any("registry answers again" in line for line in said)
        assert proxy.switches == [["demo-app-1"], ["demo-app-2"]]
    finally:
        stop.set()


class BrokenProxy(FakeProxy):
    def drain(self, timeout: float) -> Drained:
        raise SwitchNotConfirmed("could not list the processes of demo-proxy-1")


def test_an_agent_reports_a_proxy_that_fails_while_draining_and_goes_on() -> None:
    registry = registry_with()
    proxy = BrokenProxy()
    stop, _ = start_agent(registry, proxy)
    try:
        registry.publish(NEW)
        wait_until(lambda: registry.statuses["edge-1"].applied == 2)
        wait_until(lambda: "could not drain generation 2" in registry.statuses["edge-1"].error)
        assert registry.statuses["edge-1"].drained < 2  # the deploy waits, as for requests
        registry.publish(OLD)
        wait_until(lambda: registry.statuses["edge-1"].applied == 3)
    finally:
        stop.set()


def test_an_agent_reports_an_unexpected_proxy_error_instead_of_dying() -> None:
    registry = registry_with()
    proxy = FakeProxy(errors={1: RuntimeError("boom")})  # type: ignore[dict-item]
    stop, _ = start_agent(registry, proxy)
    try:
        registry.publish(NEW)
        wait_until(lambda: registry.statuses["edge-1"].failed == 2)
        assert registry.statuses["edge-1"].error == "unexpected error: RuntimeError('boom')"
        registry.publish(OLD)
        wait_until(lambda: registry.statuses["edge-1"].applied == 3)
    finally:
        stop.set()


class HangingProxy(FakeProxy):
    """Requests to the last backends never finish (their node went down)."""

    def drain(self, timeout: float) -> Drained:
        if self.switches[-1] != ["demo-app-2"]:
            return super().drain(timeout)
        time.sleep(timeout)
        return Drained(timeout, False, "1 request still in flight")


def test_an_agent_applies_a_newer_generation_without_waiting_for_a_drain_that_hangs() -> None:
    registry = registry_with()
    proxy = HangingProxy()
    said: list[str] = []
    stop = threading.Event()
    agent = Agent("edge-1", registry, lambda: proxy, "nginx:proxy", 30.0, said.append)
    threading.Thread(target=agent.run, args=(stop, 0.05), daemon=True).start()
    try:
        wait_until(lambda: any("ready at generation" in line for line in said))
        registry.publish(NEW)  # generation 2: its drain hangs
        wait_until(lambda: registry.statuses["edge-1"].applied == 2)
        registry.publish([Backend("c" * 64, "demo-app-3", "10.0.0.3", 8000)])
        wait_until(lambda: registry.statuses["edge-1"].drained == 3, seconds=5)
        assert proxy.switches[-1] == ["demo-app-3"]
        assert any("a newer one is published" in line for line in said)
    finally:
        stop.set()


def test_a_restarted_agent_never_applies_a_generation_older_than_it_applied_before() -> None:
    registry = registry_with()  # generation 1 (OLD) is what `current` points at: a replay
    registry.statuses["edge-1"] = AgentStatus("edge-1", "nginx:proxy", False, 3, 3)
    proxy = FakeProxy()
    stop, said = start_agent(registry, proxy)
    try:
        assert proxy.switches == [], "the replayed generation 1 must not reach the proxy"
        assert any("older than generation 3" in line for line in said), said
    finally:
        stop.set()


def test_an_agent_beside_a_proxy_that_counts_answers_reports_them() -> None:
    class Counting(FakeProxy):
        def answers(self) -> tuple[int, int]:
            return 2, 40

    registry = registry_with()
    registry.publish(NEW)
    proxy = Counting()
    stop, _ = start_agent(registry, proxy)
    try:
        wait_until(lambda: registry.statuses["edge-1"].answers == (2, 40))
    finally:
        stop.set()


def test_a_generation_published_during_a_drain_is_applied_at_once() -> None:
    """Not at the next publication or resync: after a Redis restart the subscription is dead,
    and the deploy that published waits only its switch timeout."""
    registry = registry_with()
    registry.published.clear()  # the subscription wakes only at its 30 s resync
    proxy = FakeProxy(drained=Drained(0.01, False, "requests in flight"))
    stop = threading.Event()
    agent = Agent("edge-1", registry, lambda: proxy, "nginx:proxy", 3.0, lambda _: None)
    threading.Thread(target=agent.run, args=(stop, 30.0), daemon=True).start()
    try:
        wait_until(lambda: "edge-1" in registry.statuses
                   and registry.statuses["edge-1"].applied == 1)  # now draining it
        registry.generations[2] = Generation(2, tuple(NEW), "now")  # no message published

        wait_until(lambda: registry.statuses["edge-1"].applied == 2, seconds=2)
        assert proxy.switches == [["demo-app-1"], ["demo-app-2"]]
    finally:
        stop.set()
