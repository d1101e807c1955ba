"""The only place that talks to Swarm's side of the Engine API: whether the engine is a manager,
a stack's services and their tasks, the nodes, and the bridge services docker-swap makes.

A *bridge* is a copy of a stack service's current spec under another name (`STACK_SERVICE-swap`)
without published ports: it carries the service's traffic while Swarm updates the service
itself (swarm_up.py says why). It carries docker-swap's labels, and not the stack's, so that
`docker stack deploy --prune` never removes it while it serves.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import docker.types

from docker_swap import labels
from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.engine.errors import translated as _translated
from docker_swap.errors import EngineFailed

STACK_LABEL = labels.STACK_NAMESPACE
BRIDGE_LABEL = labels.BRIDGE_FOR
BRIDGE_SUFFIX = "-swap"
_FAILED_STATES = frozenset({"failed", "rejected", "orphaned"})
_DEFAULT_RUNTIME = "container"
"""What a service's template says (and its tasks leave out) for a plain container."""
UPDATE_FAILED_STATES = frozenset({"paused", "rollback_started", "rollback_paused",
                                  "rollback_completed"})
"""Swarm's UpdateStatus.State values that say its update of a service did not go through."""


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    ready: bool
    """Swarm sees it (status `ready`); a node that is down or unknown is not."""
    role: str = "worker"
    availability: str = "active"


@dataclass(frozen=True)
class Task:
    """One task of a service, as the manager knows it."""

    id: str
    slot: int
    node_id: str
    state: str
    desired: str
    container_id: str
    addresses: Mapping[str, str]
    """Network name to the task's IPv4 address on it."""
    current: bool
    """It runs the service's current task template (not one an update replaces)."""
    error: str = ""
    service: str = ""
    """The name of its service."""
    exit_code: int | None = None
    """Its container's exit code, once it is no longer running."""

    @property
    def name(self) -> str:
        """How messages and proxies name it: SERVICE.SLOT.ID (as Swarm names its container)."""
        return f"{self.service}.{self.slot}.{self.id}"

    @property
    def running(self) -> bool:
        return self.state == "running" and self.desired == "running"

    @property
    def failed(self) -> bool:
        return self.state in _FAILED_STATES


@dataclass(frozen=True)
class SwarmService:
    id: str
    name: str
    version: int
    spec: Mapping[str, Any]
    replicas: int | None
    """None for a global service."""
    update_state: str = ""
    update_message: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def template(self) -> Mapping[str, Any]:
        return self.spec.get("TaskTemplate") or {}

    @property
    def template_hash(self) -> str:
        """What the tasks are made from, as one hash: equal hashes, the same tasks."""
        return template_hash(self.template)

    @property
    def image(self) -> str:
        return str((self.template.get("ContainerSpec") or {}).get("Image", ""))

    @property
    def is_job(self) -> bool:
        """A job: its tasks run to completion, and never "run" the way a service's do."""
        mode = self.spec.get("Mode") or {}
        return "ReplicatedJob" in mode or "GlobalJob" in mode

    @property
    def spec_hash(self) -> str:
        """The whole spec, as one hash (replicas, ports, update_config... as well)."""
        return template_hash({k: v for k, v in self.spec.items() if k != "Labels"})

    @property
    def bridge_for(self) -> str:
        return self.labels.get(BRIDGE_LABEL, "")


def template_hash(template: Mapping[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class SwarmEngine:
    """The Swarm API of one engine (a manager, to be of use). Methods raise EngineFailed."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._api = client.api

    def manager(self) -> tuple[bool, str]:
        """Whether this engine manages a swarm, and a few words on why (not)."""
        with _translated("read the engine's swarm state"):
            swarm = self._api.info().get("Swarm") or {}
        state = swarm.get("LocalNodeState", "inactive")
        if state != "active":
            return False, f"the engine is not in a swarm (swarm state {state})"
        if not swarm.get("ControlAvailable"):
            return False, "the engine is a swarm worker, not a manager"
        return True, f"the engine manages swarm {str(swarm.get('Cluster', {}).get('ID', ''))[:12]}"

    def stack_services(self, stack: str) -> list[SwarmService]:
        """The services `docker stack deploy` made for `stack`."""
        return self._services({"label": [f"{STACK_LABEL}={stack}"]})

    def bridges(self, services: Collection[str]) -> list[SwarmService]:
        """The bridges docker-swap made for these services (left by a killed deploy)."""
        return [s for s in self._services({"label": [BRIDGE_LABEL]}) if s.bridge_for in services]

    def service(self, name: str) -> SwarmService | None:
        found = [s for s in self._services({"name": [name]}) if s.name == name]
        return found[0] if found else None

    def _services(self, filters: Mapping[str, Any]) -> list[SwarmService]:
        with _translated("list the swarm's services"):
            return [_service(attrs) for attrs in self._api.services(filters=dict(filters))]

    def tasks(self, service: SwarmService) -> list[Task]:
        with _translated(f"list the tasks of {service.name}"):
            found = self._api.tasks(filters={"service": service.id})
        return [self._task(attrs, service) for attrs in found
                if attrs.get("ServiceID") == service.id]

    def nodes(self) -> dict[str, Node]:
        with _translated("list the swarm's nodes"):
            found = self._api.nodes()
        return {attrs["ID"]: _node(attrs) for attrs in found}

    def create_bridge(self, service: SwarmService) -> SwarmService:
        """A copy of `service` (its current spec) named `bridge_name(...)`, no ports."""
        spec = copy.deepcopy(dict(service.spec))
        name = bridge_name(service.name)
        labels = {k: v for k, v in (spec.get("Labels") or {}).items() if k != STACK_LABEL}
        endpoint = dict(spec.get("EndpointSpec") or {})
        endpoint.pop("Ports", None)  # the service keeps its host ports; its copy needs none
        with _translated(f"create service {name}"):
            self._api.create_service(
                spec["TaskTemplate"], name=name, labels={**labels, BRIDGE_LABEL: service.name},
                mode=spec.get("Mode"), update_config=spec.get("UpdateConfig"),
                endpoint_spec=endpoint or None)
        created = self.service(name)
        if created is None:
            raise EngineFailed(f"service {name} was created but is not listed.")
        return created

    def update_template(self, name: str, template: Mapping[str, Any]) -> None:
        """Give service `name` another task template (Swarm replaces its tasks, in the
        batches of its update_config); the rest of its spec stays."""
        service = self.service(name)
        if service is None:
            raise EngineFailed(f"service {name} is gone.")
        with _translated(f"update service {name}"):
            self._api.update_service(service.id, service.version, task_template=dict(template),
                                     fetch_current_spec=True)

    def create_job(self, name: str, image: str, argv: Sequence[str], *,
                   entrypoint: Sequence[str] | None, networks: Sequence[str],
                   labels: Mapping[str, str]) -> SwarmService:
        """A global job: one task on every node, each running `argv` in `image` with the
        node's Docker socket, once (never restarted)."""
        spec = docker.types.ContainerSpec(
            image, command=list(entrypoint) if entrypoint else None, args=list(argv),
            mounts=["/var/run/docker.sock:/var/run/docker.sock:rw"])
        template = docker.types.TaskTemplate(
            spec, restart_policy=docker.types.RestartPolicy(condition="none"),
            networks=list(networks))
        with _translated(f"create job {name}"):
            self._api.create_service(template, name=name, labels=dict(labels),
                                     mode=docker.types.ServiceMode("global-job"))
        created = self.service(name)
        if created is None:
            raise EngineFailed(f"job {name} was created but is not listed.")
        return created

    def logs(self, service: SwarmService) -> str:
        """What the service's tasks printed (stdout), as the manager collects it."""
        with _translated(f"read the logs of {service.name}"):
            chunks = self._api.service_logs(service.id, stdout=True, stderr=False,
                                            is_tty=False)
            return b"".join(chunks).decode(errors="replace")

    def registry_digest(self, reference: str) -> str:
        """The digest the registry gives `reference` now (what `docker stack deploy
        --resolve-image` pins); EngineFailed when the registry does not answer."""
        with _translated(f"ask the registry for {reference}"):
            answer = self._api.inspect_distribution(reference)
        return str((answer.get("Descriptor") or {}).get("digest", ""))

    def image_ports(self, reference: str) -> list[int]:
        """The TCP ports the image exposes, if this engine has the image."""
        try:
            config = self._api.inspect_image(reference).get("Config") or {}
        except _API_ERRORS:
            return []
        return sorted(int(p.split("/")[0]) for p in config.get("ExposedPorts") or {}
                      if p.endswith("/tcp"))

    def remove(self, name: str) -> bool:
        """Remove a service (its tasks get their stop signal); False if it was gone."""
        try:
            self._api.remove_service(name)
        except docker.errors.NotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove service {name}: {_reason(exc)}") from exc
        return True

    def _task(self, attrs: Mapping[str, Any], service: SwarmService) -> Task:
        status = attrs.get("Status") or {}
        addresses = {}
        for attachment in attrs.get("NetworksAttachments") or []:
            network = attachment.get("Network") or {}
            name = (network.get("Spec") or {}).get("Name", "")
            found = [a.split("/")[0] for a in attachment.get("Addresses") or [] if "." in a]
            if name and found:
                addresses[name] = found[0]
        return Task(
            id=str(attrs.get("ID", "")),
            slot=int(attrs.get("Slot") or 0),
            node_id=str(attrs.get("NodeID", "")),
            state=str(status.get("State", "")),
            desired=str(attrs.get("DesiredState", "")),
            container_id=str((status.get("ContainerStatus") or {}).get("ContainerID", "")),
            addresses=addresses,
            current=same_template(attrs.get("Spec") or {}, service.template),
            error=str(status.get("Err", "")),
            service=service.name,
            exit_code=_exit_code(status),
        )


def same_template(task_spec: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    """The task was made from `template` (Swarm copies the template into each task; either
    may leave out what is empty or zero, as Go's `omitempty` does)."""
    return template_hash(_pruned(task_spec)) == template_hash(_pruned(template))


def _pruned(value: Any) -> Any:
    if isinstance(value, Mapping):
        pruned = {k: _pruned(v) for k, v in value.items()
                  if not (k == "Runtime" and v == _DEFAULT_RUNTIME)}
        return {k: v for k, v in pruned.items()
                if not (v is None or v is False or v in ({}, [], "", 0))}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _exit_code(status: Mapping[str, Any]) -> int | None:
    if status.get("State") in ("running", "new", "pending", "assigned", "accepted",
                               "preparing", "ready", "starting", ""):
        return None
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    return int(code) if isinstance(code, int) else -1


def bridge_name(service: str) -> str:
    return f"{service}{BRIDGE_SUFFIX}"


def _service(attrs: Mapping[str, Any]) -> SwarmService:
    spec = attrs.get("Spec") or {}
    mode = spec.get("Mode") or {}
    update = attrs.get("UpdateStatus") or {}
    replicated = mode.get("Replicated")
    return SwarmService(
        id=str(attrs.get("ID", "")),
        name=str(spec.get("Name", "")),
        version=int((attrs.get("Version") or {}).get("Index") or 0),
        spec=spec,
        replicas=int(replicated.get("Replicas", 1)) if replicated is not None else None,
        update_state=str(update.get("State", "")),
        update_message=str(update.get("Message", "")),
        labels=dict(spec.get("Labels") or {}),
    )


def _node(attrs: Mapping[str, Any]) -> Node:
    spec, status = attrs.get("Spec") or {}, attrs.get("Status") or {}
    return Node(
        id=str(attrs.get("ID", "")),
        hostname=str((attrs.get("Description") or {}).get("Hostname", "")),
        ready=status.get("State") == "ready",
        role=str(spec.get("Role", "worker")),
        availability=str(spec.get("Availability", "active")),
    )
