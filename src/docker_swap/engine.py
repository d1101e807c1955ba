"""The only place that talks to the Docker Engine API, through the `docker` SDK."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from .errors import EngineFailed, EngineUnreachable
from .models import Container, ExecResult, Process

log = logging.getLogger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
_DEFAULT_STOP_GRACE = 10  # the engine's, when compose sets no stop_grace_period
_API_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


class Engine:
    """A connected engine. Methods raise `EngineFailed` for errors we did not expect."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self._api = client.api

    @classmethod
    def connect(cls) -> Engine:
        """The engine the docker CLI (and so compose) would use: DOCKER_HOST, else the
        context (DOCKER_CONTEXT, or `docker context use`), else the default socket."""
        host = os.environ.get("DOCKER_HOST") or _context_host()
        try:
            client = (docker.DockerClient(base_url=host, timeout=120, use_ssh_client=True)
                      if host else docker.from_env(timeout=120))
            client.ping()
        except _API_ERRORS as exc:
            raise EngineUnreachable(
                f"no Docker engine answers at {host or 'the default address'} ({_reason(exc)}).",
                hint="Start Docker, or point DOCKER_HOST or the docker context at the engine "
                "you deploy to.",
            ) from exc
        return cls(client)

    def version(self) -> str:
        with _translated("read the engine's version"):
            return str(self._api.version().get("Version", "?"))

    def has_image(self, reference: str) -> bool:
        try:
            self._api.inspect_image(reference)  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not inspect image {reference}: {_reason(exc)}") from exc
        return True

    def image_id(self, reference: str) -> str | None:
        """The ID of the local image `reference` names, or None when there is none."""
        try:
            return str(self._api.inspect_image(reference)["Id"])  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not inspect image {reference}: {_reason(exc)}") from exc

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

    def engine_id(self) -> str:
        with _translated("read the engine's info"):
            info = self._api.info()
        return str(info.get("ID") or info.get("Name") or "engine")

    def service_containers(self, project: str, service: str) -> list[Container]:
        """Every container compose made for the service, running or not, oldest number first."""
        filters = {"label": [f"{PROJECT_LABEL}={project}", f"{SERVICE_LABEL}={service}"]}
        with _translated(f"list the containers of service {service}"):
            summaries = self._api.containers(all=True, filters=filters)
            found = [
                self.inspect(summary["Id"])
                for summary in summaries
                if summary.get("Labels", {}).get(ONEOFF_LABEL, "False") != "True"
            ]
        return sorted(found, key=lambda c: c.number)

    def inspect(self, container_id: str) -> Container:
        with _translated(f"inspect container {container_id[:12]}"):
            return _container(self._api.inspect_container(container_id))

    def watch(self, container_id: str) -> ContainerWatch:
        return ContainerWatch(self._api, container_id)

    def exec(
        self, container_id: str, argv: Sequence[str], timeout: float | None = None
    ) -> ExecResult:
        """Run argv inside the container (no shell, no TTY); wait at most `timeout` seconds."""
        with _translated(f"run {argv[0]} in {container_id[:12]}"):
            created = self._api.exec_create(container_id, list(argv), stdout=True, stderr=True)
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
        return ExecResult(exit_code, _text(stdout), _text(stderr))

    def processes(self, container_id: str) -> list[Process]:
        """The container's processes, read by the engine (nothing is needed inside)."""
        with _translated(f"list the processes of {container_id[:12]}"):
            top = self._api.top(container_id, ps_args="-eo pid,args")
        titles = [title.upper() for title in top["Titles"]]
        pid_at, args_at = titles.index("PID"), len(titles) - 1
        return [Process(int(row[pid_at]), row[args_at]) for row in top["Processes"] or []]

    def read_file(self, container_id: str, path: str) -> bytes | None:
        try:
            stream, _ = self._api.get_archive(container_id, path)
            data = b"".join(stream)
        except docker.errors.NotFound:
            return None
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not read {path} in {container_id[:12]}: "
                               f"{_reason(exc)}") from exc
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.next()
            extracted = archive.extractfile(member) if member else None
            return extracted.read() if extracted else None

    def write_files(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        """Write files into an existing directory of the container, in one call."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
                archive.addfile(info, io.BytesIO(content))
        with _translated(f"write {', '.join(files)} in {container_id[:12]}"):
            if not self._api.put_archive(container_id, directory, buffer.getvalue()):
                raise EngineFailed(f"the engine refused to write into {directory} "
                                   f"in {container_id[:12]}")

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


class ContainerWatch:
    """Follows one container's events (exit, health) in a thread; wakes waiters at once."""

    def __init__(self, api: docker.APIClient, container_id: str) -> None:
        self.container_id = container_id
        self.changed = threading.Event()
        self.exit_code: int | None = None
        self.health: str | None = None
        self._api = api
        filters = {"container": container_id, "type": "container"}
        with _translated(f"follow the events of {container_id[:12]}"):
            self._stream = api.events(filters=filters, decode=True)
            # Seed from inspect: whatever happened before we subscribed sent no event to us.
            state = api.inspect_container(container_id)["State"]
        self._seed(state)
        self._thread = threading.Thread(target=self._follow, daemon=True, name="docker-swap-events")
        self._thread.start()

    @property
    def exited(self) -> bool:
        return self.exit_code is not None

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> ContainerWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _seed(self, state: Mapping[str, Any]) -> None:
        if state.get("Status") in ("exited", "dead"):
            self.exit_code = int(state.get("ExitCode", 0))
        self.health = (state.get("Health") or {}).get("Status")
        self.changed.set()

    def _follow(self) -> None:
        try:
            for event in self._stream:
                self._apply(event)
        except (*_API_ERRORS, OSError, ValueError, AttributeError):
            pass  # the stream was closed by close(), or the engine went away

    def _apply(self, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        if action == "die":
            attributes = event.get("Actor", {}).get("Attributes", {})
            self.exit_code = int(attributes.get("exitCode", 0))
        elif action.startswith("health_status:"):
            self.health = action.split(":", 1)[1].strip()
        else:
            return
        log.debug("container %s: %s", self.container_id[:12], action)
        self.changed.set()


def _context_host() -> str | None:
    """The endpoint of the docker context in use, unless it is the default one."""
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        try:
            name = json.loads(config.read_text()).get("currentContext")
        except (OSError, ValueError):
            name = None
    if not name or name == "default":
        return None
    inspected = subprocess.run(
        ["docker", "context", "inspect", name, "--format", "{{.Endpoints.docker.Host}}"],
        capture_output=True, text=True, check=False,
    )
    if inspected.returncode != 0:
        raise EngineUnreachable(f"docker context {name!r} cannot be read: "
                                f"{inspected.stderr.strip() or 'no such context'}.")
    return inspected.stdout.strip() or None


def _tcp_ports(exposed: Mapping[str, Any]) -> tuple[int, ...]:
    # The engine writes "8000/tcp" for an image's EXPOSE but keeps compose's `expose: ["9000"]`
    # as given, without a protocol.
    ports = {int(port) for port, _, protocol in (p.partition("/") for p in exposed)
             if protocol in ("", "tcp")}
    return tuple(sorted(ports))


def _text(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


def _container(attrs: Mapping[str, Any]) -> Container:
    config, state = attrs["Config"], attrs["State"]
    labels = config.get("Labels") or {}
    healthcheck = (config.get("Healthcheck") or {}).get("Test") or []
    networks = attrs.get("NetworkSettings", {}).get("Networks") or {}
    exposed = config.get("ExposedPorts") or {}
    return Container(
        id=attrs["Id"],
        name=attrs["Name"].lstrip("/"),
        project=labels.get(PROJECT_LABEL, ""),
        service=labels.get(SERVICE_LABEL, ""),
        number=int(labels.get(NUMBER_LABEL) or 0),
        status=state.get("Status", ""),
        health=(state.get("Health") or {}).get("Status"),
        image_id=attrs.get("Image", ""),
        networks={name: net.get("IPAddress", "") for name, net in networks.items()},
        exposed_ports=_tcp_ports(exposed),
        has_healthcheck=bool(healthcheck) and healthcheck[0] != "NONE",
        config_files=tuple(f for f in labels.get(CONFIG_FILES_LABEL, "").split(",") if f),
        pid=int(state.get("Pid") or 0),
        mounts=tuple(mount["Destination"] for mount in attrs.get("Mounts") or []),
        stop_grace=int(config.get("StopTimeout") or _DEFAULT_STOP_GRACE),
        config_hash=labels.get(CONFIG_HASH_LABEL, ""),
    )


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except _API_ERRORS as exc:
        raise EngineFailed(f"could not {action}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc).split("\n")[0] or type(exc).__name__
