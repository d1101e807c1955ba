"""A stack service's tasks as the rollout layer's units: which of them run now and where the
proxies reach them (for the switchboard), and their states, followed from the manager (for the
sequence's readiness and watch window).

Swarm reports a task's end in its status (the container's exit code once it stopped); a task
that dies is replaced by a new one, with another ID, so a followed task never comes back: its
state is final once it left `running`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from docker_swap.engine.swarm import SwarmService, Task
from docker_swap.models import Backend
from docker_swap.targets.base import Unit
from docker_swap.targets.swarm.tasks import SwarmView, backends, serving_tasks

_POLL_SECONDS = 0.5


class StackUnits:
    """The tasks of the Swarm service `name`, as proxies on `network` reach them on `port`."""

    def __init__(self, swarm: SwarmView, name: str, network: str, port: int) -> None:
        self.swarm, self.name, self.network, self.port = swarm, name, network, port

    def alive(self, units: Sequence[Unit]) -> list[Unit]:
        """Those that run now on a node that is up (whatever service they belong to)."""
        wanted = {u.id for u in units}
        running: list[Unit] = []
        for service in self._services(units):
            running += [t for t in serving_tasks(self.swarm.tasks(service), self.swarm.nodes())
                        if t.id in wanted]
        order = [u.id for u in units]
        return sorted(running, key=lambda t: order.index(t.id))

    def backends(self, units: Sequence[Unit]) -> list[Backend]:
        tasks = [_task(u) for u in units]
        service = self.swarm.service(tasks[0].service) if tasks else None
        if service is None:
            return []
        return backends(service, tasks, self.network, self.port)

    def _services(self, units: Sequence[Unit]) -> list[SwarmService]:
        names = sorted({_task(u).service for u in units})
        return [s for s in (self.swarm.service(n) for n in names) if s is not None]


class TaskState:
    """One task followed: its exit code once it stopped running (Swarm has no health events
    for a task: a task turns `running` only once its health check passed)."""

    def __init__(self, follower: TaskFollower, task: Task) -> None:
        self.changed = threading.Event()
        self.exit_code: int | None = None
        self.health: str | None = None
        self.task = task
        self._follower = follower

    def close(self) -> None:
        self._follower.forget(self)


class TaskFollower:
    """Follows the tasks of one service from the manager, one look every half second, in a
    thread that runs while any task is followed."""

    def __init__(self, swarm: SwarmView, name: str) -> None:
        self.swarm, self.name = swarm, name
        self._states: dict[str, TaskState] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def follow(self, task: Task) -> TaskState:
        state = TaskState(self, task)
        with self._lock:
            self._states[task.id] = state
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="docker-swap-tasks")
                self._thread.start()
        return state

    def forget(self, state: TaskState) -> None:
        with self._lock:
            self._states.pop(state.task.id, None)
            if not self._states and self._thread is not None:
                self._stop.set()
                self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            try:
                self.look()
            except Exception:  # the manager did not answer: the next look will tell
                continue

    def look(self) -> None:
        service = self.swarm.service(self.name)
        tasks = {t.id: t for t in self.swarm.tasks(service)} if service else {}
        with self._lock:
            states = list(self._states.values())
        for state in states:
            task = tasks.get(state.task.id)
            if state.exit_code is None and (task is None or not task.running):
                state.exit_code = task.exit_code if task and task.exit_code is not None else -1
                state.changed.set()


def _task(unit: Unit) -> Task:
    assert isinstance(unit, Task)  # a stack batch's units are its tasks
    return unit
