"""The tasks of a Swarm service that may take traffic, and the wait until enough of them do.

A task is ready when Swarm runs it on a node that is up, from the service's current task
template. Swarm reports a task `running` only once its container's health check passed (a
HEALTHCHECK in the image, or the service's `healthcheck:`), and runs that check on the task's
own node: docker-swap, on the manager, could not reach it there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from docker_swap.engine.swarm import UPDATE_FAILED_STATES, Node, SwarmService, Task
from docker_swap.errors import NotReady, ProxyNotReady, SwarmUpdateFailed
from docker_swap.models import Backend

_POLL_SECONDS = 0.5
_FAILURES_PER_TASK = 3
"""A service whose new tasks failed this many times per replica is not going to be ready."""


class SwarmView(Protocol):
    def service(self, name: str) -> SwarmService | None: ...

    def tasks(self, service: SwarmService) -> list[Task]: ...

    def nodes(self) -> dict[str, Node]: ...


def serving_tasks(tasks: Sequence[Task], nodes: Mapping[str, Node]) -> list[Task]:
    """The tasks that run the current template on a node that is up."""
    return sorted((t for t in tasks if t.running and t.current and _up(nodes, t.node_id)),
                  key=lambda t: (t.slot, t.id))


def backends(service: SwarmService, tasks: Sequence[Task], network: str,
             port: int) -> list[Backend]:
    """Where a proxy sends to each task: its address on `network`."""
    found = [Backend(t.container_id, f"{service.name}.{t.slot}.{t.id}",
                     t.addresses[network], port)
             for t in tasks if network in t.addresses and t.container_id]
    if not found:
        raise ProxyNotReady(f"no task of {service.name} has an address on network {network}.")
    return found


def stack_backends(service: SwarmService, tasks: Sequence[Task], stack: str,
                   port: int) -> list[Backend]:
    """`backends` on the network the proxies reach the service on (`network_of`)."""
    return backends(service, tasks, network_of(service, tasks, stack), port)


def network_of(service: SwarmService, tasks: Sequence[Task], stack: str) -> str:
    """The network the proxies reach the service's tasks on: its only one, or the stack's
    default network, else the first by name."""
    names = sorted({n for t in tasks for n in t.addresses if n != "ingress"})
    if not names:
        raise ProxyNotReady(f"the tasks of {service.name} have no address on any network.")
    default = f"{stack}_default"
    return default if len(names) > 1 and default in names else names[0]


def wait_ready(swarm: SwarmView, name: str, timeout: float, *, updating: bool = False,
               while_waiting: Callable[[], None] | None = None,
               ) -> tuple[SwarmService, list[Task]]:
    """Return once `name` runs as many ready tasks as it has replicas and none of an older
    template; raise NotReady after `timeout`, SwarmUpdateFailed as soon as Swarm's update of
    it (`updating`) pauses or rolls back. `while_waiting` runs between two looks."""
    deadline = time.monotonic() + timeout
    while True:
        service = swarm.service(name)
        if service is None:
            raise NotReady(f"service {name} is gone.")
        if updating and service.update_state in UPDATE_FAILED_STATES:
            raise SwarmUpdateFailed(
                f"Swarm's update of {name} stopped ({service.update_state.replace('_', ' ')}): "
                f"{service.update_message or 'no reason given'}.")
        tasks, nodes = swarm.tasks(service), swarm.nodes()
        ready = serving_tasks(tasks, nodes)
        older = [t for t in tasks if t.running and not t.current and _up(nodes, t.node_id)]
        wanted = 1 if service.replicas is None else service.replicas  # global: one at least
        if len(ready) >= wanted and not older:
            return service, ready
        _raise_if_failing(name, tasks, wanted)
        if time.monotonic() > deadline:
            stranded = sorted({nodes[t.node_id].hostname for t in tasks if t.desired == "running"
                               and t.node_id in nodes and not nodes[t.node_id].ready})
            raise NotReady(
                f"{name} had {len(ready)} of {wanted} task(s) ready after {timeout:g} s"
                f"{_last_error(tasks)}" + (
                    f"; Swarm still waits for task(s) it gave to node(s) "
                    f"{', '.join(stranded)}, which are down" if stranded else "") + ".",
                hint=(f"`docker node update --availability drain {stranded[0]}` has Swarm "
                      "start them elsewhere; then run `docker-swap up` again." if stranded else
                      "Raise --timeout if it needs longer; `docker service ps --no-trunc "
                      f"{name}` shows each task's state."))
        if while_waiting is not None:
            while_waiting()
        time.sleep(_POLL_SECONDS)


SWARM_DEFAULT_BATCHES = {"Parallelism": 1, "Monitor": 5_000_000_000}
"""How Swarm updates or rolls back a spec that has no UpdateConfig or RollbackConfig (its own
defaults: one task at a time, each monitored 5 s)."""


def update_timeout(service: SwarmService, timeout: float) -> float:
    """How long Swarm may take to replace every task in batches of its update_config: the
    readiness timeout per batch, plus its delay between batches and its monitor period."""
    return _batched(service, service.spec.get("UpdateConfig"), timeout)


def rollback_timeout(service: SwarmService, timeout: float) -> float:
    """How long Swarm's rollback to `service` (its spec before an update) may take: as
    update_timeout, in the batches of that spec's rollback_config."""
    return _batched(service, service.spec.get("RollbackConfig"), timeout)


def _batched(service: SwarmService, config: Mapping[str, Any] | None, timeout: float) -> float:
    config = config or SWARM_DEFAULT_BATCHES
    replicas = service.replicas or 1
    parallelism = int(config.get("Parallelism") or replicas) or replicas  # 0: all at once
    batches = math.ceil(replicas / parallelism)
    pause = (int(config.get("Delay") or 0) + int(config.get("Monitor") or 0)) / 1e9
    return batches * (timeout + pause)


def _raise_if_failing(name: str, tasks: Sequence[Task], wanted: int) -> None:
    failed = [t for t in tasks if t.current and t.failed]
    if len(failed) >= _FAILURES_PER_TASK * max(wanted, 1):
        raise NotReady(f"{len(failed)} new task(s) of {name} failed{_last_error(failed)}.",
                       hint=f"`docker service ps --no-trunc {name}` shows why each failed.")


def _last_error(tasks: Sequence[Task]) -> str:
    errors = [t.error for t in tasks if t.error]
    return f" (last error: {errors[-1]})" if errors else ""


def _up(nodes: Mapping[str, Node], node_id: str) -> bool:
    node = nodes.get(node_id)
    return node is not None and node.ready
