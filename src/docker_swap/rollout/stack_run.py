"""A Swarm stack brought to its compose file without failing a request: the bridge, Swarm's own
update, then each bridged service's batch through the one-batch sequence (swap.py).

    bridge     each service that changes gets a copy of its current spec (its old version),
               STACK_SERVICE-swap, which runs beside it until its tasks are ready
    to-bridge  the proxies send every new request to the bridge's tasks, confirmed by every
               agent; requests in flight to the service's own tasks drain; the before-stop
               hook runs in those tasks (Swarm stops them next)
    update     the change itself, made by Swarm: `docker stack deploy` of the user's own files
               (`up`), a forced update (`deploy`) or an earlier template (`rollback`); Swarm
               replaces the tasks in the batches of each service's update_config while none of
               them carries traffic
    settle     every service the update changed runs its new tasks, ready
    then, per bridged service, the sequence: start (its new tasks), ready (Swarm's health
    check; health-cmd or http in each task), before-switch, switch (the proxies to its new
    tasks), after-switch, drain, watch (the bridge waits, running), retire (the bridge)

Why a bridge, and not Swarm's own rolling update told first (docs/swarm.md): Swarm stops an
old task the moment its successor runs, with no hook between the two. The bridge leaves the
stack as `docker stack deploy` made it, so deploying the same file again changes nothing.

A failure before the services' own batches rolls the whole stack back: Swarm's rollback of
every service the update changed (waited for), what it created removed, the proxies back on
each service's own old tasks, confirmed, the bridges removed (exit 1). A service's own batch
undoes itself (its undo is Swarm's rollback of that service), then the proxies go back from the
bridge to its old tasks and the bridge is removed; the other services stay done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from docker_swap.engine.swarm import Task
from docker_swap.errors import (
    DeployFailed,
    EngineFailed,
    NeedsAttention,
    SwapError,
    message_of,
    unexpected,
)
from docker_swap.observer import Labelled, Observer, PhaseResult
from docker_swap.rollout.hooks import run_hook
from docker_swap.rollout.outcomes import DONE, NEEDS_ATTENTION, ROLLED_BACK
from docker_swap.rollout.stack_state import Bridged, StackResult, port_of
from docker_swap.rollout.swap import Swap, as_step_failure
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.safety.failpoints import failpoint
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import STARTING, Entry, Journal
from docker_swap.targets.swarm.batch import BridgedService, StackBatch
from docker_swap.targets.swarm.node_jobs import NodeJobs
from docker_swap.targets.swarm.plan import StackPlan, StackStep
from docker_swap.targets.swarm.stack import STACK_JOURNAL, StackTarget
from docker_swap.targets.swarm.tasks import (
    network_of,
    rollback_timeout,
    serving_tasks,
    update_timeout,
    wait_ready,
)
from docker_swap.targets.swarm.units import StackUnits

BRIDGING, ON_BRIDGE, UPDATING = "bridging", "on-bridge", "updating"


class StackRun:
    def __init__(self, target: StackTarget, plan: StackPlan, journal: Journal,
                 update: Callable[[], None], observer: Observer, interrupts: Interrupts,
                 kind: str, rollback_to: int | None = None) -> None:
        self.target, self.plan, self.journal = target, plan, journal
        self.swarm = target.swarm
        self._update_stack = update
        self.observer, self.interrupts = observer, interrupts
        self.kind, self.rollback_to = kind, rollback_to
        self.notes: list[str] = []
        self.bridged = [self._bridged(s) for s in plan.bridged]
        self.before = {s.name: s for s in self.swarm.stack_services(plan.stack)}
        self.updated: list[str] = []
        self.converged: list[StackStep] = []
        """Proxied services that Swarm changed without a bridge, whose proxies followed."""
        self.created: list[tuple[StackStep, list[Task]]] = []
        self.update_ran = False

    def _bridged(self, step: StackStep) -> Bridged:
        assert step.options is not None
        before = self.target.running[step.service]
        units = StackUnits(self.swarm, before.name, "", step.options.port or 0)
        return Bridged(step, before, Switchboard(self.target.driver(step.options), units,
                                                 self._note))

    def check(self) -> None:
        """Each bridged service's proxy accepts a switch (refusals, before anything)."""
        for bridged in self.bridged:
            for note in bridged.board.check():
                self._note(f"{bridged.step.service}: {note}")

    def run(self) -> StackResult:
        started = time.monotonic()
        self.interrupts.arm("before the switch completed")
        try:
            for bridged in self.bridged:
                self._phase(bridged, "bridge", self._bridge)
            failpoint("bridge")
            for bridged in self.bridged:
                self._phase(bridged, "to-bridge", self._to_bridge)
            failpoint("update")
            self._write(UPDATING)
            self.update_ran = True
            self._timed("update", self._update)
            self._timed("settle", self._settle)
            self._converge_unbridged()
        except Exception as exc:
            self.interrupts.defer("rolling back")
            self._roll_back(exc)
        for bridged in self.bridged:
            self._service_batch(bridged)
        self._clear()
        return StackResult(tuple(self.bridged), tuple(self.updated),
                           time.monotonic() - started, tuple(self.notes), tuple(self.created))

    # The stack-wide phases.

    def _bridge(self, bridged: Bridged) -> str:
        self._write(BRIDGING)
        bridged.bridge = self.swarm.create_bridge(bridged.before)
        self._write(BRIDGING)  # now names the bridge
        bridge, ready = wait_ready(self.swarm, bridged.bridge.name, bridged.options.timeout)
        bridged.bridge = bridge
        bridged.network = network_of(bridge, ready, self.plan.stack)
        bridged.port = port_of(bridged.options)
        bridged.board = Switchboard(bridged.board.driver, StackUnits(
            self.swarm, bridged.before.name, bridged.network, bridged.port), self._note)
        return f"{bridge.name}: {len(ready)} task(s) of the running version ready"

    def _to_bridge(self, bridged: Bridged) -> str:
        assert bridged.bridge is not None
        _, ready = wait_ready(self.swarm, bridged.bridge.name, bridged.options.timeout)
        bridged.on_bridge = True
        self._write(ON_BRIDGE)
        detail = self._publish(bridged, ready)
        self._drain(bridged)
        self._before_stop(bridged)
        return detail

    def _before_stop(self, bridged: Bridged) -> None:
        """The before-stop hook in the service's own old tasks: they carry no traffic now,
        and the update stops them next."""
        argv = bridged.options.hooks.get("before-stop")
        if not argv:
            return
        own = serving_tasks(self.swarm.tasks(bridged.before), self.swarm.nodes())
        batch = self._batch(bridged, [])
        for result in run_hook(batch, "before-stop", argv, own, bridged.options.hook_timeout):
            if not result.ok:
                self._note(f"{bridged.step.service}: the {result.said}; Swarm stops it all the "
                           "same")

    def _update(self) -> str:
        self._update_stack()
        after = {s.name: s for s in self.swarm.stack_services(self.plan.stack)}
        self.updated = sorted(
            name for name, service in after.items() if not service.is_job and (
                name not in self.before
                or service.template_hash != self.before[name].template_hash))
        return f"Swarm replaces the tasks of {', '.join(self.updated) or 'no service'}"

    def _settle(self) -> str:
        timeout = max((b.options.timeout for b in self.bridged), default=60.0)
        settled = []
        for name in self.updated:
            service = self.swarm.service(name)
            if service is None:
                raise EngineFailed(f"service {name} is gone.")
            _, ready = wait_ready(self.swarm, name, update_timeout(service, timeout),
                                  updating=name in self.before,
                                  while_waiting=self._keep_serving)
            settled.append(f"{name} ({len(ready)} task(s))")
        return f"ready: {', '.join(settled) or 'nothing changed'}"

    def _converge_unbridged(self) -> None:
        """A proxied service the update created, or changed without a bridge (outside the
        file, in a way its record could not show): the proxies are sent to its tasks, and
        for the latter the user is told that requests may have failed."""
        bridged = {b.before.name for b in self.bridged}
        for step in self.plan.steps:
            if step.options is None or step.options.port is None or (
                    step.swarm_name not in self.updated) or step.swarm_name in bridged:
                continue
            self.converged.append(step)
            tasks = self._point(step)
            if step.swarm_name not in self.before:  # new: its proxies had nothing yet
                self.created.append((step, tasks))
            else:
                self._note(f"{step.service}: Swarm replaced its tasks without a bridge (its "
                           "spec changed in a way docker-swap's record did not show): "
                           "requests to its old tasks may have failed; the proxies now send to "
                           "its new tasks.")

    def _point(self, step: StackStep) -> list[Task]:
        """The proxies of an unbridged service sent to the tasks it runs, ready."""
        assert step.options is not None and step.options.port is not None
        before = self.before.get(step.swarm_name)
        service = self.swarm.service(step.swarm_name)
        assert service is not None
        service, ready = wait_ready(self.swarm, step.swarm_name,
                                    update_timeout(before or service, step.options.timeout))
        units = StackUnits(self.swarm, step.swarm_name,
                           network_of(service, ready, self.plan.stack), step.options.port)
        Switchboard(self.target.driver(step.options), units, self._note).point(
            ready, step.options.drain_timeout)
        return ready

    def _keep_serving(self) -> None:
        """While Swarm updates: a bridge that lost tasks (their node went down, Swarm starts
        them elsewhere) has the proxies sent to the tasks it runs now."""
        nodes = self.swarm.nodes()
        for bridged in self.bridged:
            bridge = bridged.bridge and self.swarm.service(bridged.bridge.name)
            if not bridged.on_bridge or not bridge:
                continue
            ready = serving_tasks(self.swarm.tasks(bridge), nodes)
            if ready and frozenset(t.id for t in ready) != bridged.published:
                lost = len(bridged.published - {t.id for t in ready})
                detail = self._publish(bridged, ready)
                self._note(f"{bridged.step.service}: {lost} task(s) of {bridge.name} gone; "
                           f"the proxies send to the {len(ready)} it runs ({detail})")

    def _publish(self, bridged: Bridged, tasks: Sequence[Task]) -> str:
        detail = bridged.board.switch(tasks)
        bridged.published = frozenset(t.id for t in tasks)
        return detail

    def _drain(self, bridged: Bridged) -> None:
        drained = bridged.board.drain(bridged.options.drain_timeout)
        if not drained.complete:
            self._note(f"{bridged.step.service}: drain timed out: {drained.detail}")

    # Each bridged service's own batch.

    def _service_batch(self, bridged: Bridged) -> None:
        assert bridged.bridge is not None
        _, tasks = wait_ready(self.swarm, bridged.bridge.name, bridged.options.timeout)
        size = bridged.before.replicas or len(tasks)
        batch = self._batch(bridged, tasks, size)
        entry = Entry(self.plan.stack, bridged.step.service, STARTING,
                      old=[t.id for t in tasks], kind=self.kind, batch="return",
                      rollback_to=self.rollback_to)
        journal = Journal(self.target.engine, self.plan.stack, bridged.step.service)
        swap = Swap(batch, bridged.options, bridged.board, journal, entry,
                    Labelled(self.observer, bridged.step.service), self.interrupts)
        try:
            result = swap.run()
            bridged.new = [u for u in result.new if isinstance(u, Task)]
            bridged.outcome = DONE
        except DeployFailed as failure:  # undone: Swarm rolled the service back
            self._unbridge(bridged, failure)
        except NeedsAttention as error:
            bridged.outcome, bridged.error = NEEDS_ATTENTION, error
        except Exception as exc:
            bridged.outcome, bridged.error = NEEDS_ATTENTION, unexpected(
                exc, bridged.step.service)
        finally:
            bridged.phases += swap.phases
            bridged.served = swap.switched

    def _batch(self, bridged: Bridged, tasks: Sequence[Task], size: int = 0) -> StackBatch:
        assert bridged.bridge is not None
        service = BridgedService(bridged.before, bridged.bridge, list(tasks), bridged.network,
                                 bridged.port)
        jobs = NodeJobs(self.swarm, self.plan.stack, self.target.job_image(), bridged.network) \
            if self.target.needs_jobs(bridged.options) else None
        return StackBatch(self.swarm, self.target.stack, bridged.options, service, jobs, size)

    def _unbridge(self, bridged: Bridged, failure: DeployFailed) -> None:
        """After a service's batch was undone (Swarm rolled it back): the proxies go from the
        bridge to its own old tasks, confirmed, and the bridge is removed."""
        try:
            self._send_to_service(bridged)
            assert bridged.bridge is not None
            self.swarm.remove(bridged.bridge.name)
            bridged.outcome, bridged.error = ROLLED_BACK, failure
        except Exception as exc:
            bridged.outcome = NEEDS_ATTENTION
            bridged.error = self._needs_attention(bridged, exc)

    # Rolling the whole stack back.

    def _roll_back(self, cause: Exception) -> None:
        failure = as_step_failure(cause)
        self._note(f"rolling back: {failure.message}")
        try:
            if self.update_ran:
                self._undo_update()
            for bridged in self.bridged:
                if bridged.on_bridge:
                    self._send_to_service(bridged)
                if bridged.bridge is not None:
                    self.swarm.remove(bridged.bridge.name)
        except Exception as exc:
            raise NeedsAttention(
                f"{failure.message} Rolling back failed too: {message_of(exc)}",
                hint=f"Run `docker-swap -p {self.plan.stack} recover {self._first()}` once the "
                "agents answer: it points the proxies at what runs and removes the bridges.",
            ) from exc
        self._clear()  # the old version serves, nothing new is left
        raise DeployFailed(failure) from cause

    def _undo_update(self) -> None:
        """Swarm's own rollback of what the update changed (its whole previous spec), each
        waited for until its old tasks are ready; what it created is removed. Then the
        proxies of a service that Swarm changed without a bridge go back to its old tasks."""
        after = {s.name: s for s in self.swarm.stack_services(self.plan.stack)}
        rolled = []
        for name, service in after.items():
            if name not in self.before:
                self.swarm.remove(name)
                self._note(f"removed {name}, which the update created")
            elif service.spec_hash != self.before[name].spec_hash:
                self.target.stack.rollback(name)
                rolled.append(name)
                self._note(f"Swarm rolls {name} back to its previous spec")
        timeout = max((b.options.timeout for b in self.bridged), default=60.0)
        for name in rolled:  # `docker service rollback --detach` returns at once
            wait_ready(self.swarm, name, rollback_timeout(self.before[name], timeout))
        for step in self.converged:
            if step.swarm_name in self.before:
                self._point(step)

    def _send_to_service(self, bridged: Bridged) -> None:
        _, ready = wait_ready(self.swarm, bridged.before.name,
                              update_timeout(bridged.before, bridged.options.timeout))
        bridged.board.switch(ready)
        bridged.on_bridge = False
        self._drain(bridged)

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

    def _needs_attention(self, bridged: Bridged, exc: BaseException) -> NeedsAttention:
        bridge = bridged.bridge.name if bridged.bridge else "its bridge"
        return NeedsAttention(
            f"{bridged.step.swarm_name} was rolled back, but the proxies could not be moved "
            f"back to its old tasks from {bridge}, which serves the old version: "
            f"{message_of(exc)}",
            hint=f"Run `docker-swap -p {self.plan.stack} recover {bridged.step.service}` once "
            "the agents answer: it switches the proxies to what the service runs and removes "
            "the bridge.")

    def _clear(self) -> None:
        """The stack journal's end; what serves is settled, so a failure is only a note."""
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


