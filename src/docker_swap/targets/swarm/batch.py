"""A bridged stack service as one batch of the sequence: its traffic goes from the bridge (a
copy of its old version, which carries it while Swarm updates the service) to its new tasks.

    old      the bridge's tasks: they serve until the switch, wait out the watch window, and
             retire with the bridge (the before-stop hook runs in each first)
    start    the service's new tasks, which Swarm's update started and made ready: read again
             (a task may have been replaced since the update settled)
    ready    Swarm's own health check passed in each (a task runs only once it did); with
             health-cmd or http, also that probe, run in each task on its own node
    discard  (the undo) Swarm's own rollback of the service, waited for until its old tasks
             are ready again; the rollout then moves the proxies back to them from the bridge
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from docker_swap.compose import Stack
from docker_swap.engine.swarm import SwarmEngine, SwarmService, Task
from docker_swap.errors import NotReady, StepFailed
from docker_swap.models import ExecResult, names
from docker_swap.options import DeployOptions
from docker_swap.targets.base import Progress, Unit, UnitState
from docker_swap.targets.swarm.node_jobs import NodeJobs
from docker_swap.targets.swarm.tasks import rollback_timeout, serving_tasks, wait_ready
from docker_swap.targets.swarm.units import StackUnits, TaskFollower


@dataclass
class BridgedService:
    """What the stack's rollout knows of one bridged service by the time its batch runs."""

    before: SwarmService
    """The service as it was before the update (its old spec)."""
    bridge: SwarmService
    bridge_tasks: list[Task]
    network: str
    port: int


class StackBatch(StackUnits):
    """The switch of one bridged service from its bridge to its new tasks."""

    def __init__(self, swarm: SwarmEngine, stack: Stack, options: DeployOptions,
                 bridged: BridgedService, jobs: NodeJobs | None, size: int) -> None:
        super().__init__(swarm, bridged.before.name, bridged.network, bridged.port)
        self.stack, self.options, self.bridged, self.jobs = stack, options, bridged, jobs
        self._engine = swarm
        self.service = options.service
        self.old: list[Unit] = list(bridged.bridge_tasks)
        self.staying: list[Unit] = []
        self.size = size
        self._follower = TaskFollower(swarm, bridged.before.name)

    def start(self) -> list[Unit]:
        _, ready = wait_ready(self.swarm, self.name, self.options.timeout)
        return list(ready)

    def started(self) -> list[Unit]:
        service = self.swarm.service(self.name)
        return list(serving_tasks(self.swarm.tasks(service), self.swarm.nodes())) if \
            service else []

    def follow(self, unit: Unit) -> UnitState:
        assert isinstance(unit, Task)
        return self._follower.follow(unit)

    def ready(self, units: Sequence[Unit], states: Mapping[str, UnitState], deadline: float,
              progress: Progress) -> str:
        tasks = [u for u in units if isinstance(u, Task)]
        left = max(deadline - time.monotonic(), 1.0)
        if self.options.health_cmd:
            progress(f"{' '.join(self.options.health_cmd)} in {len(tasks)} task(s), on "
                     "their nodes")
            results = self._jobs().run(tasks, self.options.health_cmd, left, until_ok=True)
            return self._judged(tasks, results, f"command {' '.join(self.options.health_cmd)}")
        if self.options.http_path:
            progress(f"GET {self.options.http_path} of {len(tasks)} task(s), from their nodes")
            results = self._jobs().get(tasks, self.port, self.options.http_path, left)
            return self._judged(tasks, results, f"GET {self.options.http_path}")
        return f"Swarm's health check passed in {len(tasks)} task(s)"

    def run(self, units: Sequence[Unit], argv: Sequence[str],
            timeout: float) -> dict[str, ExecResult | StepFailed]:
        return self._jobs().run([u for u in units if isinstance(u, Task)], argv, timeout)

    def logs(self, unit: Unit) -> str:
        return ""  # a task's logs stay on its node; `docker service logs` gathers them

    def retire(self, units: Sequence[Unit]) -> str:
        self._engine.remove(self.bridged.bridge.name)
        return f"{self.bridged.bridge.name} removed ({len(units)} task(s))"

    def discard(self, units: Sequence[Unit], *, served: bool) -> None:
        """Swarm's own rollback of the service to its spec before the update, waited for."""
        self.stack.rollback(self.name)
        wait_ready(self.swarm, self.name,
                   rollback_timeout(self.bridged.before, self.options.timeout))

    def _judged(self, tasks: Sequence[Task], results: Mapping[str, ExecResult | StepFailed],
                how: str) -> str:
        failed = {t.name: r for t, r in ((t, results.get(t.id)) for t in tasks)
                  if not isinstance(r, ExecResult) or r.exit_code != 0}
        if failed:
            name, result = next(iter(failed.items()))
            raise NotReady(f"{len(failed)} new task(s) of {self.name} were not ready "
                           f"({how}): {name}: {_said(result)}.",
                           hint="Raise --timeout if they need longer.")
        return f"{how} passed in {names(tasks)}"

    def _jobs(self) -> NodeJobs:
        if self.jobs is None:
            raise StepFailed(f"no job can run in the tasks of {self.name}.")
        return self.jobs


def _said(result: ExecResult | StepFailed | None) -> str:
    if isinstance(result, StepFailed):
        return result.message
    if result is None:
        return "no answer"
    lines = result.output.strip().splitlines()
    return lines[-1] if lines else f"exit code {result.exit_code}"
