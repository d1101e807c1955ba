"""Fakes of the engine, compose and a proxy, for unit tests of the swap sequence.

They model only what the sequence relies on. The claims that matter (no failed request,
rollback, recovery) are proven against a real engine, compose and nginx in tests/integration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .compose import Compose
from .engine import Engine
from .errors import StepFailed
from .models import AgentStatus, Backend, Container, ExecResult, Generation
from .options import ComposeOptions
from .proxy import Drained


class FakeWatch:
    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        self.changed = threading.Event()
        self.exit_code: int | None = None
        self.health: str | None = None
        self.closed = False

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeEngine(Engine):
    """Containers in a dict; a health command passes from the `ready_after`-th attempt on."""

    containers: dict[str, Container] = field(default_factory=dict)
    ready_after: int = 1
    on_exec: Callable[[FakeWatch], None] | None = None
    calls: list[str] = field(default_factory=list)
    watches: dict[str, FakeWatch] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    """Names of methods that raise StepFailed."""
    never_ready: set[str] = field(default_factory=set)
    """Names of containers whose health command never passes (until they are removed: compose
    may give a later container the same number)."""
    dies_later: set[str] = field(default_factory=set)
    """Names of containers that are seen exited from their second watch on (after ready)."""
    images: dict[str, str] = field(default_factory=dict)
    """Image reference -> ID, for `image_id`."""
    config_hash: str = ""
    """The config hash new containers get (what compose computes now)."""
    most: int = 0
    """The most containers one service has had at once."""
    _execs: int = 0

    def add(self, service: str, number: int, project: str = "demo", *,
            config_hash: str | None = None, image_id: str = "", status: str = "running",
            ) -> Container:
        container = Container(
            id=f"{service}{number}".ljust(64, "0"), name=f"{project}-{service}-{number}",
            project=project, service=service, number=number, status=status,
            networks={"demo_default": f"10.0.0.{number}"}, exposed_ports=(8000,),
            config_hash=self.config_hash if config_hash is None else config_hash,
            image_id=image_id,
        )
        self.containers[container.id] = container
        count = sum(c.service == service for c in self.containers.values())
        self.most = max(self.most, count)
        return container

    def image_id(self, reference: str) -> str | None:
        return self.images.get(reference)

    def definition_of(self, container_id: str) -> dict[str, Any]:
        return {"Name": "/" + self.containers[container_id].name,
                "container": self.containers[container_id]}

    def clone(self, attrs: Mapping[str, Any]) -> str:
        self._call(f"clone {attrs['Name'].lstrip('/')}")
        old: Container = attrs["container"]
        clone = replace(old, id=f"{old.service}{old.number}c".ljust(64, "0"), status="running")
        self.containers[clone.id] = clone
        return clone.id

    def engine_id(self) -> str:
        return "fake-engine"

    def service_containers(self, project: str, service: str) -> list[Container]:
        self._call("service_containers")
        found = [
            c for c in self.containers.values() if (c.project, c.service) == (project, service)
        ]
        return sorted(found, key=lambda c: c.number)

    def inspect(self, container_id: str) -> Container:
        return self.containers[container_id]

    def watch(self, container_id: str) -> FakeWatch:  # type: ignore[override]
        again = container_id in self.watches
        self.watches[container_id] = FakeWatch(container_id)
        if again and self.containers[container_id].name in self.dies_later:
            self.watches[container_id].exit_code = 1
        return self.watches[container_id]

    def exec(
        self, container_id: str, argv: Sequence[str], timeout: float | None = None
    ) -> ExecResult:
        self._call(f"exec {' '.join(argv)}")
        self._execs += 1
        if self.on_exec:
            self.on_exec(self.watches[container_id])
        ready = self._execs >= self.ready_after and \
            self.containers[container_id].name not in self.never_ready
        return ExecResult(0 if ready else 1, "" if ready else "not ready yet\n")

    def stop(self, container: Container) -> None:
        self._call(f"stop {self.containers[container.id].name}")
        self.containers[container.id] = replace(self.containers[container.id], status="exited")

    def remove(self, container_id: str, *, force: bool = False) -> None:
        self._call(f"remove {self.containers[container_id].name}")
        self.never_ready.discard(self.containers[container_id].name)
        del self.containers[container_id]

    def logs(self, container_id: str, tail: int = 50) -> str:
        return f"log of {self.containers[container_id].name}\n"

    def _call(self, call: str) -> None:
        self.calls.append(call)
        if call.split(maxsplit=1)[0] in self.failing:
            raise StepFailed(f"{call} failed")


class FakeCompose(Compose):
    """`scale_up` adds containers to the fake engine; with `error`, it adds `created_on_error`
    of them and then raises it, as compose does when a container fails to start."""

    def __init__(self, engine: FakeEngine, error: StepFailed | None = None,
                 created_on_error: int = 0, hashes: Mapping[str, str] | None = None) -> None:
        super().__init__(ComposeOptions())
        self.engine, self.error, self.created_on_error = engine, error, created_on_error
        self.hashes = dict(hashes or {})
        self.converged: list[str] = []

    def config_hashes(self) -> dict[str, str]:
        return dict(self.hashes)

    def converge(self, service: str, replicas: int, *, force_recreate: bool = False,
                 wait: float | None = None) -> None:
        self.converged.append(f"{service}={replicas}{' recreate' if force_recreate else ''}")

    def scale_up(self, service: str, replicas: int) -> None:
        existing = self.engine.service_containers("demo", service)
        count = replicas - len(existing) if self.error is None else self.created_on_error
        highest = max((c.number for c in existing), default=0)
        for offset in range(1, count + 1):
            self.engine.add(service, highest + offset)
        if self.error:
            raise self.error


@dataclass
class FakeProxy:
    """Records every switch; `errors` maps a switch's index (0 = first) to what it raises."""

    description: str = "fake proxy"
    switches: list[list[str]] = field(default_factory=list)
    errors: Mapping[int, StepFailed] = field(default_factory=dict)
    drained: Drained = field(default_factory=lambda: Drained(0.01, True, "nothing in flight"))
    notes: list[str] = field(default_factory=list)

    staged: list[list[str]] = field(default_factory=list)
    unstaged: int = 0
    stage_error: StepFailed | None = None

    def check(self) -> list[str]:
        return list(self.notes)

    def status(self) -> str:
        return self.description

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        self.staged.append([b.name for b in backends])
        if self.stage_error:
            raise self.stage_error

    def unstage(self) -> None:
        self.unstaged += 1

    def switch(self, backends: Sequence[Backend]) -> str:
        index = len(self.switches)
        self.switches.append([b.name for b in backends])
        if index in self.errors:
            raise self.errors[index]
        return f"switched to {', '.join(b.name for b in backends)}"

    def drain(self, timeout: float) -> Drained:
        return self.drained


class FakeSubscription:
    def __init__(self, registry: FakeRegistry) -> None:
        self._registry = registry

    def get_message(self, ignore_subscribe_messages: bool = False,
                    timeout: float = 0.0) -> object:
        published = self._registry.published.wait(timeout)
        self._registry.published.clear()
        return published or None

    def close(self) -> None:
        pass


@dataclass
class FakeRegistry:
    """A registry in memory. `agents_apply` lists agents that apply each publication at once
    (as live agents would); the others stay where they are."""

    url: str = "redis://fake"
    generations: dict[int, Generation] = field(default_factory=dict)
    statuses: dict[str, AgentStatus] = field(default_factory=dict)
    agents_apply: set[str] = field(default_factory=set)
    published: threading.Event = field(default_factory=threading.Event)

    def publish(self, backends: Sequence[Backend]) -> Generation:
        number = max(self.generations, default=0) + 1
        generation = Generation(number, tuple(backends), "now")
        self.generations[number] = generation
        for name in self.agents_apply:
            self.statuses[name] = replace(self.statuses[name], applied=number, drained=number)
        self.published.set()
        return generation

    def current(self) -> Generation | None:
        return self.generations[max(self.generations)] if self.generations else None

    def generation(self, number: int) -> Generation | None:
        return self.generations.get(number)

    def agents(self) -> list[AgentStatus]:
        return [self.statuses[name] for name in sorted(self.statuses)]

    def register(self, name: str, proxy: str) -> None:
        self.statuses.setdefault(name, AgentStatus(name, proxy, alive=False))

    def report(self, name: str, proxy: str, applied: int, drained: int, failed: int = 0,
               error: str = "") -> None:
        self.statuses[name] = AgentStatus(name, proxy, True, applied, drained, failed, error)

    def subscribe(self) -> FakeSubscription:
        return FakeSubscription(self)
