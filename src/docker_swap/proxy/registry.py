"""The registry driver: a deploy publishes backends to Redis; agents apply them to their proxies.

A switch publishes the next generation and returns once every registered agent has applied it
(or already serves those very backends, which is how a rollback passes an agent that never saw
the failed generation). An agent that does not, within the switch timeout, fails the switch and
is named; an agent that reports an error fails it at once. The drain waits until every agent
has drained its own proxy.

An agent whose report cannot be trusted (malformed, or not validly signed when the registry
has a key) refuses a deploy before it starts, and counts during a switch as one that has
applied nothing: its acknowledgements are never believed. A generation's number is above
every number an agent reports (published again above an agent that reports a higher one
meanwhile: Redis lost its counter), and only the very number published counts as applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from docker_swap.errors import (
    ProxyNotReady,
    RegistryDataInvalid,
    RegistryUnavailable,
    StepFailed,
    SwitchNotConfirmed,
)
from docker_swap.models import AgentStatus, Backend, Generation
from docker_swap.proxy.base import Drained, Serving
from docker_swap.safety.failpoints import failpoint

_POLL_SECONDS = 0.05


class RegistryStore(Protocol):
    url: str

    @property
    def signed(self) -> bool: ...

    def publish(self, backends: Sequence[Backend], after: int = 0) -> Generation: ...

    def generation(self, number: int) -> Generation | None: ...

    def agents(self) -> list[AgentStatus]: ...

    def current_number(self) -> int: ...


class RegistryDriver:
    def __init__(self, registry: RegistryStore, service: str, switch_timeout: float,
                 excused: Callable[[str], bool] | None = None) -> None:
        self.description = f"Redis registry ({registry.url})"
        self._registry = registry
        self._service = service
        self._switch_timeout = switch_timeout
        self._published: Generation | None = None
        self._floor = 0
        """The highest number any agent reported so far: what is published goes above it,
        also when Redis lost its counter and the agents' records (they keep their numbers)."""
        self._expected: set[str] = set()
        """The agents registered when the proxy was checked: a switch waits for each of them,
        also when Redis lost their records (restarted without its data: they register again)."""
        self._excuse = excused or (lambda _name: False)
        """Whether an agent is not waited for: in a swarm, one whose node is down (its proxy
        is down with it and serves nothing)."""

    def check(self) -> list[str]:
        try:
            agents = self._registry.agents()
        except StepFailed as exc:  # before anything changed: a refusal, not a rollback
            raise ProxyNotReady(exc.message, hint=exc.hint) from exc
        if not agents:
            raise ProxyNotReady(
                f"no docker-swap agent follows {self._service} in {self._registry.url}.",
                hint=f"Start one beside each proxy: `docker-swap agent {self._service} "
                "--proxy nginx:SERVICE`.",
            )
        untrusted = next((a for a in agents if a.problem), None)
        if untrusted:  # nothing it says can be believed, not even what it serves now
            raise ProxyNotReady(
                f"agent {untrusted.name} cannot be trusted: {untrusted.problem}.",
                hint="If it runs, give it the registry key of the deploys and start it again "
                "(its next report replaces this one); if it is gone, `docker-swap agent "
                f"{self._service} --leave --name {untrusted.name}`.",
            )
        self._expected = {a.name for a in agents}
        self._note_numbers(agents)
        excused = self._excused(agents)
        notes = [f"agent {name} is not waited for: its node is down." for name in
                 sorted(excused & {a.name for a in agents})]
        silent = [a.name for a in agents if not a.alive and a.name not in excused]
        if silent:
            notes.append(f"agent(s) {', '.join(silent)} did not report lately; the deploy rolls "
                         "back unless they apply the new backends in time.")
        return notes

    @property
    def signed(self) -> bool:
        """Generations and reports are signed with a registry key."""
        return self._registry.signed

    def status(self) -> str:
        agents = self._registry.agents()
        current = self._current(agents)
        shown = ", ".join(f"{a.name} ({_state(a)}, generation {a.applied})" for a in agents)
        signed = "signed" if self.signed else "unsigned"
        return f"generation {current} ({signed}); agents: {shown or 'none'}"

    def serving(self) -> list[Serving]:
        """For each agent, the backends of the generation it acknowledged (applied)."""
        agents = self._registry.agents()
        newest = self._current(agents)
        found = []
        for agent in agents:
            try:
                applied = self._registry.generation(agent.applied) if agent.applied else None
            except RegistryDataInvalid:
                applied = None  # shown as serving nothing known: status says they disagree
            lag = "" if agent.applied == newest else f" of {newest} published"
            found.append(Serving(
                f"agent {agent.name} ({_state(agent, 'alive')}, generation {agent.applied}{lag})",
                tuple(f"{b.address}:{b.port}" for b in applied.backends) if applied else (),
                tuple(b.weight for b in applied.backends) if applied else ()))
        return found or [Serving(f"{self.description}: no agent, generation {newest}", ())]

    def sticky_problem(self) -> str | None:
        return ("through the registry, stickiness would be the configuration of each agent's "
                "own proxy, which docker-swap cannot check from here: drop --sticky.")

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        """Each agent checks the backends with its own proxy when it applies them."""

    def unstage(self) -> None:
        pass

    def switch(self, backends: Sequence[Backend]) -> str:
        deadline = time.monotonic() + self._switch_timeout
        generation: Generation | None = None
        waiting: list[AgentStatus] = []
        missing: list[str] = []
        lost: RegistryUnavailable | None = None
        while True:
            try:  # Redis away for a moment (restarting) is waited out, within the timeout
                if generation is None:
                    generation = self._publish(backends)
                    failpoint("switch")
                    # The agents get the whole timeout from the publication on.
                    deadline = time.monotonic() + self._switch_timeout
                agents = self._registry.agents()
                self._note_numbers(agents)
                if self._floor > generation.number or \
                        self._registry.generation(generation.number) is None:
                    # Redis lost it (restarted), or lost its counter and an agent reports a
                    # higher number (it would never apply ours): once more, above them all
                    generation = self._publish(backends)
                excused = self._excused(agents)
                waiting = [a for a in agents
                           if a.name not in excused and not self._serves(a, generation)]
                failed = [a for a in waiting if a.failed >= generation.number and not a.problem]
                if failed:
                    raise SwitchNotConfirmed(
                        f"agent {failed[0].name} could not apply generation "
                        f"{generation.number}: {failed[0].error}"
                    )
                missing = sorted(self._expected - {a.name for a in agents} - excused)
                if not waiting and not missing and any(a.name not in excused for a in agents):
                    return (f"generation {generation.number} applied by {len(agents)} "
                            f"agent(s): {', '.join(b.name for b in backends)}")
                lost = None
            except RegistryUnavailable as exc:
                lost = exc
            if time.monotonic() > deadline:
                if lost is not None or generation is None:
                    raise SwitchNotConfirmed(
                        f"{lost.message if lost else 'Redis did not answer.'} What the agents "
                        f"applied could not be read within {self._switch_timeout:g} s.",
                        hint="Check that Redis runs; `docker-swap status` shows what each "
                        "agent applied.")
                raise self._not_applied(waiting, missing, generation)
            time.sleep(_POLL_SECONDS)

    def answers(self) -> tuple[int, int] | None:
        """5xx and all answers of the last published backends, summed over the agents that
        applied them and whose proxy counts answers (HAProxy); None if none does."""
        if self._published is None:
            return None
        counted = [a.answers for a in self._registry.agents() if not a.problem
                   and a.applied == self._published.number and a.answers is not None]
        if not counted:
            return None
        return sum(c[0] for c in counted), sum(c[1] for c in counted)

    def _publish(self, backends: Sequence[Backend]) -> Generation:
        """The next generation, numbered above anything an agent reported (Redis may have
        lost its counter, never the agents their numbers)."""
        self._note_numbers(self._registry.agents())
        self._published = self._registry.publish(backends, after=self._floor)
        # Above its own numbers too: Redis may lose this one before any agent reports it, and
        # the next (a switch back) must not reuse its number, which the agents have seen.
        self._floor = max(self._floor, self._published.number)
        return self._published

    def _note_numbers(self, agents: Sequence[AgentStatus]) -> None:
        trusted = [a for a in agents if not a.problem]
        self._floor = max([self._floor, *(max(a.applied, a.drained, a.failed) for a in trusted)])

    def _not_applied(self, waiting: Sequence[AgentStatus], missing: Sequence[str],
                     generation: Generation) -> SwitchNotConfirmed:
        names = ", ".join([*(f"{a.name} ({_state(a)})" for a in waiting),
                           *(f"{name} (not registered any more)" for name in missing)])
        names = names or "none (no agent is registered)"
        return SwitchNotConfirmed(
            f"agent(s) {names} did not apply generation {generation.number} within "
            f"{self._switch_timeout:g} s.",
            hint="Start them again (`docker-swap agent ...`); an agent that is gone for good "
            "leaves with `docker-swap agent SERVICE --leave --name NAME`.",
        )

    def drain(self, timeout: float) -> Drained:
        """Until every live agent has drained the generation it applied: the one this switch
        published, an earlier one with the same backends that it still drains (a switch it
        served already), or, without a switch in this process (recover), the current one."""
        started = time.monotonic()
        busy: list[AgentStatus] = []
        missing: list[str] = []
        lost: RegistryUnavailable | None = None
        while True:
            try:  # Redis away for a moment is waited out, within the drain's timeout
                agents = self._registry.agents()
            except RegistryUnavailable as exc:
                lost = exc
            else:
                lost = None
                excused = self._excused(agents)
                busy = [a for a in agents
                        if a.alive and a.drained < a.applied and a.name not in excused]
                # An agent whose record Redis lost (restarted without its data) registers
                # again in a moment, still draining: it is waited for, not taken for done.
                missing = sorted(self._expected - {a.name for a in agents} - excused)
            seconds = time.monotonic() - started
            if not busy and not missing and lost is None:
                return Drained(seconds, True, "every agent drained its proxy")
            if seconds >= timeout:
                if lost is not None:
                    return Drained(seconds, False, f"{lost.message} The drain could not be "
                                   f"confirmed within {timeout:g} s")
                said = "; ".join(f"{a.name}: {a.error}" for a in busy if a.error)
                waiting = [a.name for a in busy] + [f"{m} (not registered)" for m in missing]
                return Drained(seconds, False,
                               f"agent(s) {', '.join(waiting)} still draining "
                               f"after {timeout:g} s" + (f" ({said})" if said else ""))
            time.sleep(_POLL_SECONDS)

    def _excused(self, agents: Sequence[AgentStatus]) -> set[str]:
        return {name for name in {a.name for a in agents} | self._expected
                if self._excuse(name)}

    def _current(self, agents: Sequence[AgentStatus]) -> int:
        """The current generation's number; if `current` is not a number (written by hand, or
        forged), the newest one an agent applied."""
        try:
            return self._registry.current_number()
        except RegistryDataInvalid:
            return max((a.applied for a in agents), default=0)

    def _serves(self, agent: AgentStatus, generation: Generation) -> bool:
        """It applied this very generation, or still serves one with the same backends (an
        agent that reports a higher number than was just published is not believed: Redis
        lost its data, or someone wrote there)."""
        if agent.problem:
            return False
        if agent.applied == generation.number:
            return True
        if not agent.applied or agent.applied > generation.number:
            return False
        try:
            applied = self._registry.generation(agent.applied)
        except RegistryDataInvalid:
            return False
        return applied is not None and same_backends(applied.backends, generation.backends)


def _state(agent: AgentStatus, alive: str = "busy") -> str:
    """How a message names the agent: `alive` says a live one (busy, in a wait for it)."""
    if agent.problem:
        return f"report refused: {agent.problem}"
    return alive if agent.alive else "silent"


def same_backends(a: Sequence[Backend], b: Sequence[Backend]) -> bool:
    """The same servers with the same weights, in any order."""
    return sorted((x.name, x.address, x.port, x.weight) for x in a) == sorted(
        (x.name, x.address, x.port, x.weight) for x in b)
