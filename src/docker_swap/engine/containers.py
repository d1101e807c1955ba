"""Containers on the engine: a service's containers, inspect, exec, stop and remove, the
clone of a retired one (a rollback), their processes and logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import docker
import docker.errors

from docker_swap import labels
from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.engine.errors import translated as _translated
from docker_swap.engine.events import ContainerWatch
from docker_swap.engine.parsing import container_from, text_of
from docker_swap.errors import EngineFailed
from docker_swap.models import Container, ExecResult, Process

log = logging.getLogger(__name__)
_MARKER_LABEL = labels.KIND


class Containers:
    """The containers part of Engine (its `_api`: the SDK's low-level client)."""

    _api: docker.APIClient

    def definition_of(self, container_id: str) -> dict[str, Any]:
        """Everything needed to create the container again (`clone`), as the engine has it."""
        with _translated(f"inspect container {container_id[:12]}"):
            return dict(self._api.inspect_container(container_id))

    def clone(self, attrs: Mapping[str, Any]) -> str:
        """Create and start a container as `definition_of` described one: same name, image ID,
        labels, settings and networks (how a retired container comes back in a rollback)."""
        config = {k: v for k, v in attrs["Config"].items() if k != "Hostname"}
        networks = attrs.get("NetworkSettings", {}).get("Networks") or {}
        body = {
            **config, "Image": attrs["Image"], "HostConfig": attrs["HostConfig"],
            "NetworkingConfig": {"EndpointsConfig": {
                name: {k: net.get(k) for k in ("Aliases", "IPAMConfig", "Links", "DriverOpts")}
                for name, net in networks.items()}},
        }
        name = attrs["Name"].lstrip("/")
        with _translated(f"create {name} again"):
            url = f"{self._api.base_url}/v{self._api.api_version}/containers/create"
            answer = self._api.post(url, json=body, params={"name": name})
            answer.raise_for_status()
            created = str(answer.json()["Id"])
            self._api.start(created)
        return created

    def service_containers(self, project: str, service: str) -> list[Container]:
        """Every container compose made for the service, running or not, oldest number first."""
        filters = {"label": [f"{labels.COMPOSE_PROJECT}={project}",
                             f"{labels.COMPOSE_SERVICE}={service}"]}
        with _translated(f"list the containers of service {service}"):
            summaries = self._api.containers(all=True, filters=filters)
            found = [
                self.inspect(summary["Id"])
                for summary in summaries
                if summary.get("Labels", {}).get(labels.COMPOSE_ONEOFF, "False") != "True"
                and _MARKER_LABEL not in summary.get("Labels", {})
            ]
        return sorted(found, key=lambda c: c.number)

    def stack_containers(self, stack: str, service: str) -> list[Container]:
        """The containers of the tasks of stack service STACK_SERVICE on this engine's node."""
        filters = {"label": [f"{labels.STACK_NAMESPACE}={stack}",
                             f"{labels.SWARM_SERVICE_NAME}={stack}_{service}"]}
        with _translated(f"list the containers of {stack}_{service}"):
            return [self.inspect(summary["Id"])
                    for summary in self._api.containers(all=True, filters=filters)]

    def running(self, container_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Those of the containers that run now, each with its address on every network it
        is on, in one call (what a switch checks just before the proxy is given them)."""
        if not container_ids:
            return {}
        filters = {"id": list(container_ids), "status": "running"}
        with _translated("list the running containers"):
            found = self._api.containers(filters=filters)
        return {str(c["Id"]): {name: str(net.get("IPAddress") or "")
                               for name, net in ((c.get("NetworkSettings") or {})
                                                 .get("Networks") or {}).items()}
                for c in found}

    def inspect(self, container_id: str) -> Container:
        with _translated(f"inspect container {container_id[:12]}"):
            return container_from(self._api.inspect_container(container_id))

    def watch(self, container_id: str) -> ContainerWatch:
        return ContainerWatch(self._api, container_id)

    def exec(
        self, container_id: str, argv: Sequence[str], timeout: float | None = None
    ) -> ExecResult:
        """Run argv inside the container (no shell, no TTY); wait at most `timeout` seconds."""
        return self._exec(container_id, argv, timeout)

    def _exec(
        self, container_id: str, argv: Sequence[str], timeout: float | None, user: str = ""
    ) -> ExecResult:
        with _translated(f"run {argv[0]} in {container_id[:12]}"):
            created = self._api.exec_create(container_id, list(argv), stdout=True, stderr=True,
                                            user=user)
        exec_id = created["Id"]
        output: list[tuple[bytes | None, bytes | None]] = []
        failure: list[BaseException] = []

        def start() -> None:
            try:
                output.append(self._api.exec_start(exec_id, demux=True))
            except BaseException as exc:  # reported below, in the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=start, daemon=True, name="docker-swap-exec")
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            return ExecResult(None, f"{argv[0]} did not finish within {timeout:g} s")
        if failure:
            raise EngineFailed(f"could not run {argv[0]} in {container_id[:12]}: "
                               f"{_reason(failure[0])}") from failure[0]
        with _translated(f"read the exit code of {argv[0]}"):
            exit_code = self._api.exec_inspect(exec_id)["ExitCode"]
        stdout, stderr = output[0]
        return ExecResult(exit_code, text_of(stdout), text_of(stderr))

    def processes(self, container_id: str) -> list[Process]:
        """The container's processes, read by the engine (nothing is needed inside)."""
        with _translated(f"list the processes of {container_id[:12]}"):
            top = self._api.top(container_id, ps_args="-eo pid,args")
        titles = [title.upper() for title in top["Titles"]]
        pid_at, args_at = titles.index("PID"), len(titles) - 1
        return [Process(int(row[pid_at]), row[args_at]) for row in top["Processes"] or []]

    def signal(self, container_id: str, name: str) -> None:
        """Send a signal to the container's main process."""
        with _translated(f"send {name} to {container_id[:12]}"):
            self._api.kill(container_id, signal=name)

    def start(self, container_id: str) -> None:
        with _translated(f"start {container_id[:12]}"):
            self._api.start(container_id)

    def stop(self, container: Container) -> None:
        """Stop with the container's own stop signal and grace period (stop_grace_period)."""
        with _translated(f"stop {container.name}"):
            self._api.stop(container.id, timeout=container.stop_grace)

    def remove(self, container_id: str, *, force: bool = False) -> None:
        try:
            self._api.remove_container(container_id, force=force)
        except docker.errors.NotFound:
            return
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove {container_id[:12]}: {_reason(exc)}") from exc

    def logs(self, container_id: str, tail: int = 50) -> str:
        try:
            data = self._api.logs(container_id, stdout=True, stderr=True, tail=tail)
        except _API_ERRORS:
            return ""
        return bytes(data).decode(errors="replace")
