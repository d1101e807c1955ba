"""Fakes of the engine, compose and a proxy, for unit tests of the swap sequence.

They model only what the sequence relies on. The claims that matter (no failed request,
rollback, recovery) are proven against a real engine, compose and nginx in tests/integration.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from docker_swap.compose import Compose
from docker_swap.engine import Engine
from docker_swap.errors import RegistryDataInvalid, RegistryUnavailable, StepFailed
from docker_swap.models import (
    AgentStatus,
    Backend,
    Container,
    ExecResult,
    Generation,
    Image,
    Marker,
)
from docker_swap.options import ComposeOptions
from docker_swap.proxy import Drained, Serving
from docker_swap.registry.data import Report


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
    images_by_id: dict[str, Image] = field(default_factory=dict)
    marked: dict[str, Marker] = field(default_factory=dict)
    """docker-swap's markers (lock, journal) by ID; their files in `marker_files`."""
    marker_files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    recorded: dict[str, Marker] = field(default_factory=dict)
    """The journal's records (volumes) by name."""
    now: float = 1_000_000.0
    """The engine's clock."""
    never_ready: set[str] = field(default_factory=set)
    """Names of containers whose health command never passes (until they are removed: compose
    may give a later container the same number)."""
    dies_later: set[str] = field(default_factory=set)
    """Names of containers that are seen exited from their second watch on (after ready)."""
    image_refs: dict[str, str] = field(default_factory=dict)
    """Image reference -> ID, for `image_id`."""
    config_hash: str = ""
    """The config hash new containers get (what compose computes now)."""
    most: int = 0
    """The most containers one service has had at once."""
    _execs: int = 0
    _imported: int = 0
    _markers_made: int = 0

    def add(self, service: str, number: int, project: str = "demo", *,
            config_hash: str | None = None, image_id: str = "", status: str = "running",
            ) -> Container:
        if config_hash is None:
            config_hash = self.config_hash or (f"hash-of-{image_id}" if image_id else "")
        container = Container(
            id=hashlib.sha256(f"{project}/{service}/{number}".encode()).hexdigest(),
            name=f"{project}-{service}-{number}",
            project=project, service=service, number=number, status=status,
            networks={"demo_default": f"10.0.0.{number}"}, exposed_ports=(8000,),
            config_hash=config_hash, image_id=image_id or f"sha256:{service}",
        )
        self.containers[container.id] = container
        self._count(service)
        return container

    def _count(self, service: str) -> None:
        count = sum(c.service == service for c in self.containers.values())
        self.most = max(self.most, count)

    def image_id(self, reference: str) -> str | None:
        return self.image_refs.get(reference)

    def definition_of(self, container_id: str) -> dict[str, Any]:
        return {"Name": "/" + self.containers[container_id].name,
                "container": self.containers[container_id]}

    def clone(self, attrs: Mapping[str, Any]) -> str:
        self._call(f"clone {attrs['Name'].lstrip('/')}")
        old: Container = attrs["container"]
        clone = replace(old, id=f"{old.service}{old.number}c".ljust(64, "0"), status="running")
        self.containers[clone.id] = clone
        self._count(old.service)
        return clone.id

    def running(self, container_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return {c.id: dict(c.networks) for c in self.containers.values()
                if c.id in container_ids and c.running}

    def engine_id(self) -> str:
        return "fake-engine"

    def clock(self) -> float:
        return self.now

    def create_marker(self, name: str, image: str, labels: Mapping[str, str]) -> str | None:
        if any(m.name == name for m in self.marked.values()):
            return None
        self._markers_made += 1
        marker = Marker(f"marker{self._markers_made}-{name}", name, dict(labels), self.now, image)
        self.marked[marker.id] = marker
        return marker.id

    def markers(self, labels: Mapping[str, str]) -> list[Marker]:
        return [m for m in self.marked.values() if labels.items() <= m.labels.items()]

    def remove_marker(self, marker_id: str) -> bool:
        return self.marked.pop(marker_id, None) is not None

    def write_marker_file(self, marker_id: str, name: str, content: bytes) -> bool:
        if marker_id not in self.marked:
            return False
        self.marker_files[marker_id, "/" + name] = content
        return True

    def read_file(self, container_id: str, path: str) -> bytes | None:
        return self.marker_files.get((container_id, path))

    def create_record(self, name: str, labels: Mapping[str, str]) -> bool:
        existing = self.recorded.setdefault(name, Marker(name, name, dict(labels), self.now))
        return existing.labels == dict(labels)

    def records(self, labels: Mapping[str, str]) -> list[Marker]:
        return [m for m in self.recorded.values() if labels.items() <= m.labels.items()]

    def remove_record(self, name: str) -> bool:
        return self.recorded.pop(name, None) is not None

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

    # Images: a dict of ID -> Image; a tag lives on one image at a time, as on the engine.

    def image(self, reference: str) -> Image | None:
        return self.images_by_id.get(reference) or next(
            (i for i in self.images_by_id.values() if _tagged(reference) in i.tags), None)

    def images(self, *, labels: Sequence[str] = (), repository: str | None = None) -> list[Image]:
        self._call("images")
        wanted = [label.partition("=") for label in labels]
        return [i for i in self.images_by_id.values()
                if all(i.labels.get(k) == v for k, _, v in wanted)
                and (repository is None or any(t.startswith(f"{repository}:") for t in i.tags))]

    def import_labels(self, repository: str, tag: str, labels: Mapping[str, str]) -> str:
        self._call("import_labels")
        self._imported += 1
        image_id = f"sha256:{self._imported:064d}"
        self.images_by_id[image_id] = Image(image_id, (), dict(labels))
        self.tag(image_id, f"{repository}:{tag}")
        return image_id

    def add_image(self, image_id: str, *tags: str) -> Image:
        self.images_by_id[image_id] = Image(image_id)
        for tag in tags:
            self.tag(image_id, tag)
        return self.images_by_id[image_id]

    def tag(self, image_id: str, reference: str) -> None:
        self._call(f"tag {reference}")
        self.untag(reference, delete=False)
        image = self.images_by_id[image_id]
        self.images_by_id[image_id] = replace(image, tags=(*image.tags, _tagged(reference)))

    def untag(self, reference: str, *, delete: bool = True) -> None:
        for image in list(self.images_by_id.values()):
            if _tagged(reference) in image.tags:
                tags = tuple(t for t in image.tags if t != _tagged(reference))
                used = any(c.image_id == image.id for c in self.containers.values())
                if delete and not tags and not used:
                    del self.images_by_id[image.id]
                else:
                    self.images_by_id[image.id] = replace(image, tags=tags)

    def _call(self, call: str) -> None:
        self.calls.append(call)
        if call.split(maxsplit=1)[0] in self.failing:
            raise StepFailed(f"{call} failed")


def _tagged(reference: str) -> str:
    return reference if ":" in reference.rpartition("/")[2] else f"{reference}:latest"


class FakeCompose(Compose):
    """`scale_up` adds containers to the fake engine; with `error`, it adds `created_on_error`
    of them and then raises it, as compose does when a container fails to start."""

    def __init__(self, engine: FakeEngine, error: StepFailed | None = None,
                 created_on_error: int = 0, hashes: Mapping[str, str] | None = None) -> None:
        super().__init__(ComposeOptions())
        self.engine, self.error, self.created_on_error = engine, error, created_on_error
        self.hashes = dict(hashes or {})
        self.converged: list[str] = []

    def config_hashes(self, services: Sequence[str] = ()) -> dict[str, str]:
        return {name: hash_ for name, hash_ in self.hashes.items()
                if not services or name in services}

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
    drain_error: StepFailed | None = None
    weights: list[list[int]] = field(default_factory=list)  # of each switch's backends
    not_sticky: str | None = None

    def check(self) -> list[str]:
        return list(self.notes)

    def status(self) -> str:
        return self.description

    def serving(self) -> list[Serving]:
        return [Serving(self.description, tuple(f"{name}:8000" for name in self.switches[-1]))
                ] if self.switches else [Serving(self.description, ())]

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        self.staged.append([b.name for b in backends])
        if self.stage_error:
            raise self.stage_error

    def unstage(self) -> None:
        self.unstaged += 1

    def switch(self, backends: Sequence[Backend]) -> str:
        index = len(self.switches)
        self.switches.append([b.name for b in backends])
        self.weights.append([b.weight for b in backends])
        if index in self.errors:
            raise self.errors[index]
        return f"switched to {', '.join(b.name for b in backends)}"

    def sticky_problem(self) -> str | None:
        return self.not_sticky

    def drain(self, timeout: float) -> Drained:
        if self.drain_error:
            raise self.drain_error
        return self.drained


class FakeSubscription:
    def __init__(self, registry: FakeRegistry) -> None:
        self._registry = registry

    def wait(self, timeout: float) -> None:
        if self._registry.down:
            raise RegistryUnavailable("Redis at redis://fake failed: Connection refused.")
        self._registry.published.wait(timeout)
        self._registry.published.clear()

    def close(self) -> None:
        pass


@dataclass
class FakeRegistry:
    """A registry in memory. `agents_apply` lists agents that apply each publication at once
    (as live agents would); the others stay where they are. `invalid` maps generation numbers
    to the RegistryDataInvalid message reading them gives; `down` makes every call fail as
    when Redis is away."""

    url: str = "redis://fake"
    generations: dict[int, Generation] = field(default_factory=dict)
    statuses: dict[str, AgentStatus] = field(default_factory=dict)
    agents_apply: set[str] = field(default_factory=set)
    published: threading.Event = field(default_factory=threading.Event)
    invalid: dict[int, str] = field(default_factory=dict)
    down: bool = False
    signed: bool = False

    def publish(self, backends: Sequence[Backend], after: int = 0) -> Generation:
        self._answer()
        number = max(max(self.generations, default=0), max(self.invalid, default=0), after) + 1
        generation = Generation(number, tuple(backends), "now")
        self.generations[number] = generation
        for name in self.agents_apply:
            self.statuses[name] = replace(self.statuses[name], applied=number, drained=number)
        self.published.set()
        return generation

    def current_number(self) -> int:
        self._answer()
        return max(max(self.generations, default=0), max(self.invalid, default=0))

    def generation(self, number: int) -> Generation | None:
        self._answer()
        if number in self.invalid:
            raise RegistryDataInvalid(self.invalid[number])
        return self.generations.get(number)

    def agents(self) -> list[AgentStatus]:
        self._answer()
        return [self.statuses[name] for name in sorted(self.statuses)]

    def report(self, name: str, report: Report) -> None:
        self._answer()
        self.statuses[name] = AgentStatus(name, report.proxy, True, report.applied,
                                          report.drained, report.failed, report.error,
                                          answers=report.answers)

    def subscribe(self) -> FakeSubscription:
        self._answer()
        return FakeSubscription(self)

    def own_report(self, name: str) -> AgentStatus | None:
        self._answer()
        return self.statuses.get(name)

    def _answer(self) -> None:
        if self.down:
            raise RegistryUnavailable(f"Redis at {self.url} failed: Connection refused.")
