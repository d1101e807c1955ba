"""A Swarm stack brought to its compose file without failing a request: the bridge sequence.

    bridge   each service that changes gets a copy of its current spec (its old version) under
             another name, STACK_SERVICE-swap, which runs beside it until its tasks are ready
    switch   the proxies send every new request to the bridge's tasks, confirmed by every agent;
             requests in flight to the service's own tasks drain
    update   the change itself, made by Swarm: `docker stack deploy` of the user's own files
             (`up`), or a forced update or an earlier template (`deploy`, `rollback`); Swarm
             replaces the tasks in the batches of the service's update_config, while none of
             them carries traffic
    settle   every service the update changed runs its new tasks, ready (health checks pass)
    return   the proxies send to the service's new tasks, confirmed; the bridge's requests
             drain; the bridge is removed

Why a bridge, and not Swarm's own rolling update told first (docs/swarm.md): Swarm stops an
old task the moment its successor runs, and offers no hook between the two, so no one can
move traffic off a task before it stops. Two services that take turns (kamal-proxy's active and
rollout slots) would leave the stack's own service idle, and the next `docker stack deploy`
would fight them. The bridge leaves the stack as `docker stack deploy` made it: its own
services, with the file's specs, serve again at the end, so deploying the same file again
changes nothing.

Any failure before `return` rolls back: Swarm's rollback of every service the update changed
(and removal of those it created), the proxies back on the service's own old tasks, confirmed,
then the bridge removed (exit 1). A failure in `return` needs attention (exit 3): the bridge
serves the old version, `docker-swap recover` finishes. The journal on the manager records
each phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from docker_swap.engine.swarm import SwarmService, Task
from docker_swap.errors import (
    DeployFailed,
    EngineFailed,
    NeedsAttention,
    StepFailed,
    SwapError,
    UnexpectedError,
)
from docker_swap.observer import Observer, PhaseResult
from docker_swap.options import DeployOptions
from docker_swap.proxy import ProxyDriver
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Entry, Journal
from docker_swap.targets.swarm.plan import StackPlan, StackStep
from docker_swap.targets.swarm.stack import STACK_JOURNAL, StackTarget
from docker_swap.targets.swarm.tasks import (
    backends,
    network_of,
    serving_tasks,
    stack_backends,
    update_timeout,
    wait_ready,
)

BRIDGING, ON_BRIDGE, UPDATING, RETURNING = "bridging", "on-bridge", "updating", "returning"


@dataclass
class Bridged:
    """One service whose traffic a bridge carries during the update."""

    step: StackStep
    before: SwarmService
    driver: ProxyDriver
    bridge: SwarmService | None = None
    network: str = ""
    port: int = 0
    on_bridge: bool = False
    """The proxies may send to the bridge: a rollback switches them back first."""
    after: list[Task] = field(default_factory=list)
    published: frozenset[str] = frozenset()
    """The tasks the proxies were last given (their IDs)."""
    phases: list[PhaseResult] = field(default_factory=list)


@dataclass(frozen=True)
class StackResult:
    """What a finished rollout did: for each bridged service its phases and new tasks."""

    bridged: tuple[Bridged, ...]
    updated: tuple[str, ...]
    """Every Swarm service whose tasks the update replaced."""
    seconds: float
    notes: tuple[str, ...] = ()


class StackRollout:
    def __init__(self, target: StackTarget, plan: StackPlan, journal: Journal,
                 update: Callable[[], None], observer: Observer) -> None:
        self.target, self.plan, self.journal = target, plan, journal
        self.swarm = target.swarm
        self._update_stack = update
        self.observer = observer
        self.notes: list[str] = []
        self.bridged = [Bridged(s, target.running[s.service], target.driver(_options(s)))
                        for s in plan.bridged]
        self.before = {s.name: s for s in self.swarm.stack_services(plan.stack)}
        self.updated: list[str] = []
        self.converged: list[StackStep] = []
        """Proxied services that Swarm changed without a bridge, whose proxies followed."""
        self.update_ran = False
        self.interrupts = Interrupts(self._note)

    def check(self) -> None:
        """Each bridged service's proxy accepts a switch (refusals, before anything)."""
        for bridged in self.bridged:
            for note in bridged.driver.check():
                self._note(f"{bridged.step.service}: {note}")

    def run(self) -> StackResult:
        started = time.monotonic()
        with self.interrupts:
            try:
                for bridged in self.bridged:
                    self._phase(bridged, "bridge", self._bridge)
                for bridged in self.bridged:
                    self._phase(bridged, "switch", self._to_bridge)
                self._write(UPDATING)
                self.update_ran = True
                self._timed("update", self._update)
                self._timed("settle", self._settle)
                self._converge_unbridged()
                self.interrupts.defer("the new version runs; switching the proxies to it first")
            except Exception as exc:
                self.interrupts.defer("rolling back")
                self._roll_back(exc)
            for bridged in self.bridged:
                try:
                    self._write(RETURNING)
                    self._phase(bridged, "return", self._return)
                except Exception as exc:
                    raise self._needs_attention(bridged, exc) from exc
            self._clear()
        return StackResult(tuple(self.bridged), tuple(self.updated),
                           time.monotonic() - started, tuple(self.notes))

    # The phases, in order.

    def _bridge(self, bridged: Bridged) -> str:
        self._write(BRIDGING)
        bridged.bridge = self.swarm.create_bridge(bridged.before)
        self._write(BRIDGING)  # now names the bridge
        options = _options(bridged.step)
        bridge, ready = wait_ready(self.swarm, bridged.bridge.name, options.timeout)
        bridged.bridge = bridge
        bridged.network = network_of(bridge, ready, self.plan.stack)
        bridged.port = _port(options)
        return f"{bridge.name}: {len(ready)} task(s) of the running version ready"

    def _to_bridge(self, bridged: Bridged) -> str:
        assert bridged.bridge is not None
        _, ready = wait_ready(self.swarm, bridged.bridge.name, _options(bridged.step).timeout)
        bridged.on_bridge = True
        self._write(ON_BRIDGE)
        detail = self._publish(bridged, bridged.bridge, ready)
        self._drain(bridged)
        return detail

    def _update(self) -> str:
        self._update_stack()
        after = {s.name: s for s in self.swarm.stack_services(self.plan.stack)}
        self.updated = sorted(
            name for name, service in after.items() if not service.is_job and (
                name not in self.before
                or service.template_hash != self.before[name].template_hash))
        return f"Swarm replaces the tasks of {', '.join(self.updated) or 'no service'}"

    def _settle(self) -> str:
        timeout = max((_options(b.step).timeout for b in self.bridged), default=60.0)
        settled = []
        for name in self.updated:
            service = self.swarm.service(name)
            if service is None:
                raise EngineFailed(f"service {name} is gone.")
            _, ready = wait_ready(self.swarm, name, update_timeout(service, timeout),
                                  updating=name in self.before,
                                  while_waiting=self._keep_serving)
            settled.append(f"{name} ({len(ready)} task(s))")
            for bridged in self.bridged:
                if bridged.before.name == name:
                    bridged.after = ready
        for bridged in self.bridged:  # its tasks did not change after all: they stay
            if not bridged.after:
                _, bridged.after = wait_ready(self.swarm, bridged.before.name, timeout)
        return f"ready: {', '.join(settled) or 'nothing changed'}"

    def _converge_unbridged(self) -> None:
        """A proxied service the update changed without a bridge (changed outside the file,
        in a way its record could not show): the proxies are sent to its new tasks at once,
        and the user is told that requests may have failed."""
        bridged = {b.before.name for b in self.bridged}
        for step in self.plan.steps:
            if step.options is None or step.options.port is None or (
                    step.swarm_name not in self.updated) or step.swarm_name in bridged or (
                    step.swarm_name not in self.before):  # new: its proxies had nothing
                continue
            self.converged.append(step)
            self._point(step, self.before[step.swarm_name])
            self._note(f"{step.service}: Swarm replaced its tasks without a bridge (its spec "
                       "changed in a way docker-swap's record did not show): requests to its "
                       "old tasks may have failed; the proxies now send to its new tasks.")

    def _point(self, step: StackStep, before: SwarmService) -> None:
        """The proxies of an unbridged service sent to the tasks it runs, ready."""
        assert step.options is not None and step.options.port is not None
        service, ready = wait_ready(self.swarm, step.swarm_name,
                                    update_timeout(before, step.options.timeout))
        self.target.driver(step.options).switch(
            stack_backends(service, ready, self.plan.stack, step.options.port))

    def _keep_serving(self) -> None:
        """While Swarm updates: a bridge that lost tasks (their node went down, Swarm starts
        them elsewhere) has the proxies sent to the tasks it runs now, so that no new request
        goes to a task that is gone."""
        nodes = self.swarm.nodes()
        for bridged in self.bridged:
            bridge = bridged.bridge and self.swarm.service(bridged.bridge.name)
            if not bridged.on_bridge or not bridge:
                continue
            ready = serving_tasks(self.swarm.tasks(bridge), nodes)
            if ready and frozenset(t.id for t in ready) != bridged.published:
                lost = len(bridged.published - {t.id for t in ready})
                detail = self._publish(bridged, bridge, ready)
                self._note(f"{bridged.step.service}: {lost} task(s) of {bridge.name} gone; "
                           f"the proxies send to the {len(ready)} it runs ({detail})")

    def _publish(self, bridged: Bridged, service: SwarmService, tasks: Sequence[Task]) -> str:
        detail = bridged.driver.switch(backends(service, tasks, bridged.network, bridged.port))
        bridged.published = frozenset(t.id for t in tasks)
        return detail

    def _return(self, bridged: Bridged) -> str:
        detail = self._send_to_service(bridged, bridged.after)
        if bridged.bridge is not None:
            try:
                self.swarm.remove(bridged.bridge.name)
            except SwapError as exc:  # it carries no traffic any more: only a leftover
                self._note(f"{bridged.bridge.name} could not be removed ({exc.message}); no "
                           f"request goes to it: `docker service rm {bridged.bridge.name}`.")
        return detail

    # Rolling back.

    def _roll_back(self, cause: Exception) -> None:
        failure = cause if isinstance(cause, StepFailed) else UnexpectedError(
            f"unexpected error: {type(cause).__name__}: {cause}")
        self._note(f"rolling back: {failure.message}")
        try:
            if self.update_ran:
                self._undo_update()
            for bridged in self.bridged:
                if bridged.on_bridge:
                    _, ready = wait_ready(self.swarm, bridged.before.name,
                                          update_timeout(bridged.before,
                                                         _options(bridged.step).timeout))
                    self._send_to_service(bridged, ready)
                if bridged.bridge is not None:
                    self.swarm.remove(bridged.bridge.name)
        except Exception as exc:
            raise NeedsAttention(
                f"{failure.message} Rolling back failed too: {_message(exc)}",
                hint=f"Run `docker-swap -p {self.plan.stack} recover {self._first()}` once the "
                "agents answer: it points the proxies at what runs and removes the bridges.",
            ) from exc
        self._clear()  # the old version serves, nothing new is left
        raise DeployFailed(failure) from cause

    def _undo_update(self) -> None:
        """Swarm's own rollback of what the update changed (its whole previous spec: tasks,
        replicas, ports...); what it created is removed. Then the proxies of a service that
        Swarm changed without a bridge go back to its old tasks."""
        after = {s.name: s for s in self.swarm.stack_services(self.plan.stack)}
        for name, service in after.items():
            if name not in self.before:
                self.swarm.remove(name)
                self._note(f"removed {name}, which the update created")
            elif service.spec_hash != self.before[name].spec_hash:
                self.target.stack.rollback(name)
                self._note(f"Swarm rolls {name} back to its previous spec")
        for step in self.converged:
            self._point(step, self.before[step.swarm_name])

    def _send_to_service(self, bridged: Bridged, tasks: Sequence[Task]) -> str:
        service = self.swarm.service(bridged.before.name) or bridged.before
        detail = self._publish(bridged, service, tasks)
        bridged.on_bridge = False
        self._drain(bridged)
        return detail

    def _drain(self, bridged: Bridged) -> None:
        drained = bridged.driver.drain(_options(bridged.step).drain_timeout)
        if not drained.complete:
            self._note(f"{bridged.step.service}: drain timed out: {drained.detail}")

    # Bookkeeping.

    def _phase(self, bridged: Bridged, name: str, run: Callable[[Bridged], str]) -> None:
        label = f"{bridged.step.service} {name}"
        self.observer.phase_started(label)
        started = time.monotonic()
        self.interrupts.check()
        detail = run(bridged)
        result = PhaseResult(name, time.monotonic() - started, detail)
        bridged.phases.append(result)
        self.observer.phase_finished(PhaseResult(label, result.seconds, detail))

    def _timed(self, name: str, run: Callable[[], str]) -> None:
        self.observer.phase_started(name)
        started = time.monotonic()
        self.interrupts.check()
        detail = run()
        result = PhaseResult(name, time.monotonic() - started, detail)
        for bridged in self.bridged:
            bridged.phases.append(result)
        self.observer.phase_finished(result)

    def _write(self, phase: str) -> None:
        self.journal.write(Entry(
            self.plan.stack, STACK_JOURNAL, phase,
            old=[b.bridge.name for b in self.bridged if b.bridge is not None],
            new=[b.before.name for b in self.bridged]))

    def _needs_attention(self, bridged: Bridged, exc: Exception) -> NeedsAttention:
        bridge = bridged.bridge.name if bridged.bridge else "its bridge"
        return NeedsAttention(
            f"{bridged.step.swarm_name} runs its new version, but the proxies could not be "
            f"moved back to it from {bridge}, which serves the old version: {_message(exc)}",
            hint=f"Run `docker-swap -p {self.plan.stack} recover {bridged.step.service}` once "
            "the agents answer: it switches the proxies to what the service runs and removes "
            "the bridge.")

    def _clear(self) -> None:
        """The journal's end; what serves is settled, so a failure here is only a note."""
        try:
            self.journal.clear()
        except SwapError as exc:
            self._note(f"the stack's journal could not be cleared ({exc.message}): "
                       f"`docker-swap -p {self.plan.stack} recover {self._first()}` clears it.")

    def _first(self) -> str:
        return self.bridged[0].step.service if self.bridged else "SERVICE"

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self.observer.note(text)


def _options(step: StackStep) -> DeployOptions:
    assert step.options is not None  # a bridged step has a proxy, so settings
    return step.options


def _port(options: DeployOptions) -> int:
    assert options.port is not None  # preflight refuses a bridged service without a port
    return options.port


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, SwapError) else f"{type(exc).__name__}: {exc}"
