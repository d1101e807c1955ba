"""The registry driver: a deploy publishes backends to Redis; agents apply them to their proxies.

A switch publishes the next generation and returns once every registered agent has applied it
(or already serves those very backends, which is how a rollback passes an agent that never saw
the failed generation). An agent that does not, within the switch timeout, fails the switch and
is named; an agent that reports an error fails it at once. The drain waits until every agent
has drained its own proxy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from ..errors import ProxyNotReady, SwitchNotConfirmed
from ..failpoints import failpoint
from ..models import AgentStatus, Backend, Generation
from .base import Drained, Serving

_POLL_SECONDS = 0.05


class RegistryStore(Protocol):
    url: str

    def publish(self, backends: Sequence[Backend]) -> Generation: ...

    def generation(self, number: int) -> Generation | None: ...

    def agents(self) -> list[AgentStatus]: ...

    def current(self) -> Generation | None: ...


class RegistryDriver:
    def __init__(self, registry: RegistryStore, service: str, switch_timeout: float) -> None:
        self.description = f"Redis registry ({registry.url})"
        self._registry = registry
        self._service = service
        self._switch_timeout = switch_timeout
        self._published: Generation | None = None

    def check(self) -> list[str]:
        agents = self._registry.agents()
        if not agents:
            raise ProxyNotReady(
                f"no docker-swap agent follows {self._service} in {self._registry.url}.",
                hint=f"Start one beside each proxy: `docker-swap agent {self._service} "
                "--proxy nginx:SERVICE`.",
            )
        silent = [a.name for a in agents if not a.alive]
        if silent:
            return [f"agent(s) {', '.join(silent)} did not report lately; the deploy rolls "
                    "back unless they apply the new backends in time."]
        return []

    def status(self) -> str:
        agents = self._registry.agents()
        current = self._registry.current()
        shown = ", ".join(f"{a.name} ({'alive' if a.alive else 'silent'}, generation "
                          f"{a.applied})" for a in agents)
        return (f"generation {current.number if current else 0}; agents: {shown or 'none'}")

    def serving(self) -> list[Serving]:
        """For each agent, the backends of the generation it acknowledged (applied)."""
        current = self._registry.current()
        newest = current.number if current else 0
        found = []
        for agent in self._registry.agents():
            applied = self._registry.generation(agent.applied) if agent.applied else None
            lag = "" if agent.applied == newest else f" of {newest} published"
            found.append(Serving(
                f"agent {agent.name} ({'alive' if agent.alive else 'silent'}, generation "
                f"{agent.applied}{lag})",
                tuple(f"{b.address}:{b.port}" for b in applied.backends) if applied else ()))
        return found or [Serving(f"{self.description}: no agent, generation {newest}", ())]

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        """Each agent checks the backends with its own proxy when it applies them."""

    def unstage(self) -> None:
        pass

    def switch(self, backends: Sequence[Backend]) -> str:
        generation = self._registry.publish(backends)
        self._published = generation
        failpoint("switch")
        deadline = time.monotonic() + self._switch_timeout
        while True:
            agents = self._registry.agents()
            failed = [a for a in agents if a.failed >= generation.number]
            if failed:
                raise SwitchNotConfirmed(
                    f"agent {failed[0].name} could not apply generation {generation.number}: "
                    f"{failed[0].error}"
                )
            waiting = [a for a in agents if not self._serves(a, generation)]
            if not waiting:
                return (f"generation {generation.number} applied by {len(agents)} agent(s): "
                        f"{', '.join(b.name for b in backends)}")
            if time.monotonic() > deadline:
                names = ", ".join(f"{a.name} ({'silent' if not a.alive else 'busy'})"
                                  for a in waiting)
                raise SwitchNotConfirmed(
                    f"agent(s) {names} did not apply generation {generation.number} within "
                    f"{self._switch_timeout:g} s.",
                    hint="Start them again (`docker-swap agent ...`); an agent that is gone for "
                    "good leaves with `docker-swap agent SERVICE --leave --name NAME`.",
                )
            time.sleep(_POLL_SECONDS)

    def drain(self, timeout: float) -> Drained:
        started = time.monotonic()
        number = self._published.number if self._published else 0
        while True:
            busy = [a.name for a in self._registry.agents()
                    if a.alive and a.applied >= number and a.drained < number]
            seconds = time.monotonic() - started
            if not busy:
                return Drained(seconds, True, "every agent drained its proxy")
            if seconds >= timeout:
                return Drained(seconds, False,
                               f"agent(s) {', '.join(busy)} still draining after {timeout:g} s")
            time.sleep(_POLL_SECONDS)

    def _serves(self, agent: AgentStatus, generation: Generation) -> bool:
        if agent.applied >= generation.number:
            return True
        applied = self._registry.generation(agent.applied) if agent.applied else None
        return applied is not None and same_backends(applied.backends, generation.backends)


def same_backends(a: Sequence[Backend], b: Sequence[Backend]) -> bool:
    """The same servers, in any order."""
    return sorted((x.name, x.address, x.port) for x in a) == sorted(
        (x.name, x.address, x.port) for x in b)
