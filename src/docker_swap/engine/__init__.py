"""The only place that talks to the Docker Engine API, through the `docker` SDK."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import subprocess
import tarfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.engine.errors import translated as _translated
from docker_swap.errors import EngineFailed, EngineUnreachable
from docker_swap.models import Container, ExecResult, Image, Marker, Process

log = logging.getLogger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
STACK_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
_DEFAULT_STOP_GRACE = 10  # the engine's, when compose sets no stop_grace_period
_MODE_SYMLINK = 1 << 27  # Go's os.ModeSymlink, in the stat header of an archive answer
_ARGV_LIMIT = 100_000  # bytes of file content passed as exec arguments (Linux: 128 KiB each)
_NEVER_STARTS = ["/docker-swap: a marker, never started"]
_MARKER_LABEL = "docker-swap.kind"
_READ_TIMEOUT = 10.0
# A container inherits its image's labels, and compose labels the images it builds with the
# project and service: a marker made from one must not pass for one of the service's own.
_NOT_COMPOSE = dict.fromkeys([PROJECT_LABEL, SERVICE_LABEL, NUMBER_LABEL, ONEOFF_LABEL], "")
# Write each file beside its final name, then rename it over that name: rename(2) within one
# folder is atomic, so a reader (nginx -t, HAProxy at its next start) sees the old file or the
# new one, never a part of one. The temporary name ends in neither .conf nor the file's name.
_WRITE_BESIDE = (
    'set -e; dir=$1; token=$2; shift 2; while [ $# -gt 1 ]; do '
    'printf "%s" "$2" > "$dir/.$1.$token"; mv -f "$dir/.$1.$token" "$dir/$1"; shift 2; done'
)
_RENAME_UPLOADED = (
    'set -e; dir=$1; token=$2; shift 2; for name; do mv -f "$dir/.$name.$token" "$dir/$name"; '
    'done'
)
_NO_SHELL = (126, 127)


class Engine:
    """A connected engine. Methods raise `EngineFailed` for errors we did not expect."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self._api = client.api
        self._info: Mapping[str, Any] | None = None
        self._clock_base = (0.0, 0.0)  # (engine time, time.monotonic()) when info was read
        self._image_volumes: dict[str, list[str]] = {}
        self._swarm_tasks: dict[str, bool] = {}

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

    @property
    def docker_client(self) -> docker.DockerClient:
        """The SDK client, for the Swarm adapter (swarm.py) on the same connection."""
        return self._client

    def version(self) -> str:
        with _translated("read the engine's version"):
            return str(self._api.version().get("Version", "?"))

    def has_image(self, reference: str) -> bool:
        try:
            self._api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not inspect image {reference}: {_reason(exc)}") from exc
        return True

    def image_id(self, reference: str) -> str | None:
        """The ID of the local image `reference` names, or None when there is none."""
        try:
            return str(self._api.inspect_image(reference)["Id"])
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
        info = self._read_info()
        return str(info.get("ID") or info.get("Name") or "engine")

    def swarm_node(self) -> tuple[str, str]:
        """This engine's swarm node ID and host name ("" and its name outside a swarm)."""
        info = self._read_info()
        return str((info.get("Swarm") or {}).get("NodeID") or ""), str(info.get("Name") or "")

    def clock(self) -> float:
        """The engine's own time now (seconds since the epoch), so that what several machines
        stamp is compared on one clock. Read once (info's SystemTime), then advanced by this
        machine's monotonic clock."""
        self._read_info()
        engine_time, read_at = self._clock_base
        return engine_time + (time.monotonic() - read_at)

    def _read_info(self) -> Mapping[str, Any]:
        if self._info is None:
            with _translated("read the engine's info"):
                started = time.monotonic()
                info = self._api.info()
            read_at = (started + time.monotonic()) / 2
            self._clock_base = (_epoch(str(info.get("SystemTime") or "")) or time.time(), read_at)
            self._info = info
        return self._info

    # Markers: containers that never start, which name and hold docker-swap's own state (the
    # deploy lock and journal) on the engine, where every machine that deploys to it sees them.

    def create_marker(self, name: str, image: str, labels: Mapping[str, str]) -> str | None:
        """Create a marker; its ID, or None when a container of that name exists (the engine
        makes names unique, so of two machines creating the same name one gets None)."""
        volumes = self._volumes_of(image)
        with _translated(f"create {name}"):
            try:
                created = self._api.create_container(
                    image, name=name, labels={**_NOT_COMPOSE, **labels},
                    entrypoint=_NEVER_STARTS,
                    command=[], network_disabled=True,
                    # The image's VOLUMEs would each make an anonymous volume: cover them.
                    host_config=self._api.create_host_config(
                        network_mode="none", tmpfs=dict.fromkeys(volumes, "")),
                )
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    return None
                raise
        return str(created["Id"])

    def markers(self, labels: Mapping[str, str]) -> list[Marker]:
        """The markers that carry all of `labels`, in one call."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with _translated("list docker-swap's markers"):
            found = self._api.containers(all=True, filters=filters)
        return [Marker(id=str(c["Id"]), name=str((c.get("Names") or ["/"])[0]).lstrip("/"),
                       labels=dict(c.get("Labels") or {}), created=float(c.get("Created") or 0),
                       image=str(c.get("ImageID") or ""))
                for c in found]

    def remove_marker(self, marker_id: str) -> bool:
        """Remove a marker by ID; False when it was gone already (someone else removed it)."""
        try:
            self._api.remove_container(marker_id, v=True, force=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # its removal is already in progress
                return False
            raise EngineFailed(f"could not remove {marker_id[:12]}: {_reason(exc)}") from exc
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove {marker_id[:12]}: {_reason(exc)}") from exc
        return True

    def write_marker_file(self, marker_id: str, name: str, content: bytes) -> bool:
        """Write a file at the root of a marker; False when the marker is gone."""
        try:
            return bool(self._api.put_archive(marker_id, "/", _tar({name: content})))
        except docker.errors.NotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not write {name} in {marker_id[:12]}: "
                               f"{_reason(exc)}") from exc

    # Records: volumes that are never mounted, whose labels hold one entry of docker-swap's
    # journal. Cheaper than markers (~2 ms to create or remove), but a volume cannot be removed
    # on condition, so the lock, which a takeover removes, is a marker.

    def create_record(self, name: str, labels: Mapping[str, str]) -> bool:
        """Create a record; False when one of that name exists with other labels (the engine
        creates a volume name once, and returns the existing one to a later create)."""
        with _translated(f"create {name}"):
            created = self._api.create_volume(name, labels=dict(labels))
        return dict(created.get("Labels") or {}) == dict(labels)

    def records(self, labels: Mapping[str, str]) -> list[Marker]:
        """The records that carry all of `labels`, in one call (a record's id is its name)."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with _translated("list docker-swap's journal"):
            found = self._api.volumes(filters=filters).get("Volumes") or []
        return [Marker(id=str(v["Name"]), name=str(v["Name"]), labels=dict(v.get("Labels") or {}),
                       created=_epoch(str(v.get("CreatedAt") or "")) or 0.0) for v in found]

    def remove_record(self, name: str) -> bool:
        """Remove a record; False when it was gone already."""
        try:
            self._api.remove_volume(name, force=True)
        except docker.errors.NotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove {name}: {_reason(exc)}") from exc
        return True

    def _volumes_of(self, image: str) -> list[str]:
        if image not in self._image_volumes:
            with _translated(f"inspect image {image[:19]}"):
                config = self._api.inspect_image(image).get("Config") or {}
            self._image_volumes[image] = sorted(config.get("Volumes") or {})
        return self._image_volumes[image]

    def service_containers(self, project: str, service: str) -> list[Container]:
        """Every container compose made for the service, running or not, oldest number first."""
        filters = {"label": [f"{PROJECT_LABEL}={project}", f"{SERVICE_LABEL}={service}"]}
        with _translated(f"list the containers of service {service}"):
            summaries = self._api.containers(all=True, filters=filters)
            found = [
                self.inspect(summary["Id"])
                for summary in summaries
                if summary.get("Labels", {}).get(ONEOFF_LABEL, "False") != "True"
                and _MARKER_LABEL not in summary.get("Labels", {})
            ]
        return sorted(found, key=lambda c: c.number)

    def stack_containers(self, stack: str, service: str) -> list[Container]:
        """The containers of the tasks of stack service STACK_SERVICE on this engine's node."""
        filters = {"label": [f"{STACK_LABEL}={stack}",
                             f"{SWARM_SERVICE_LABEL}={stack}_{service}"]}
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
            return _container(self._api.inspect_container(container_id))

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
        return ExecResult(exit_code, _text(stdout), _text(stderr))

    def processes(self, container_id: str) -> list[Process]:
        """The container's processes, read by the engine (nothing is needed inside)."""
        with _translated(f"list the processes of {container_id[:12]}"):
            top = self._api.top(container_id, ps_args="-eo pid,args")
        titles = [title.upper() for title in top["Titles"]]
        pid_at, args_at = titles.index("PID"), len(titles) - 1
        return [Process(int(row[pid_at]), row[args_at]) for row in top["Processes"] or []]

    def read_file(self, container_id: str, path: str) -> bytes | None:
        """A file's content, None when there is none. A symbolic link is followed (the engine
        resolves it inside the container and names its target in the archive's stat)."""
        stat, data = self._archive(container_id, path)
        target = stat.get("linkTarget")
        if int(stat.get("mode") or 0) & _MODE_SYMLINK and target and target != path:
            stat, data = self._archive(container_id, str(target))
        if data is None:
            return None
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.next()
            extracted = archive.extractfile(member) if member and member.isfile() else None
            content = extracted.read() if extracted else None
        if content == b"" and stat.get("size") == 0 and self._swarm_task(container_id):
            # A Swarm config or secret is mounted from outside the container's own file
            # system and shows as its empty mount point here: read it from inside.
            shown = self.exec(container_id, ["cat", path], timeout=_READ_TIMEOUT)
            if shown.exit_code == 0:
                return shown.stdout.encode()
        return content

    def _swarm_task(self, container_id: str) -> bool:
        if container_id not in self._swarm_tasks:
            with _translated(f"inspect container {container_id[:12]}"):
                labels = self._api.inspect_container(container_id)["Config"].get("Labels") or {}
            self._swarm_tasks[container_id] = "com.docker.swarm.task.id" in labels
        return self._swarm_tasks[container_id]

    def _archive(self, container_id: str, path: str) -> tuple[Mapping[str, Any], bytes | None]:
        try:
            stream, stat = self._api.get_archive(container_id, path)
            return stat or {}, b"".join(stream)
        except docker.errors.NotFound:
            return {}, None
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not read {path} in {container_id[:12]}: "
                               f"{_reason(exc)}") from exc

    def write_files(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        """Replace files in an existing directory of the container, each atomically: written
        beside its final name under a unique temporary name, then renamed over it, inside the
        container (one exec when the files are small text, else one upload and one exec)."""
        token = f"docker-swap-{secrets.token_hex(4)}"
        if _as_arguments(files):
            pairs = [part for name, content in files.items() for part in (name, content.decode())]
            result = self._write_exec(container_id, [_WRITE_BESIDE, directory, token, *pairs])
        elif self.inspect(container_id).running:
            self._upload(container_id, directory,
                         {f".{name}.{token}": content for name, content in files.items()})
            result = self._write_exec(container_id, [_RENAME_UPLOADED, directory, token, *files])
        else:
            result = None
        if result is None:  # no exec here: the container does not run, or has no shell
            self._upload(container_id, directory, files)
        elif result.exit_code != 0:
            raise EngineFailed(f"could not write {', '.join(files)} in {directory} of "
                               f"{container_id[:12]}: {result.output.strip() or result.exit_code}")

    def _write_exec(self, container_id: str, script: list[str]) -> ExecResult | None:
        """Run a write script with sh as root; None when no exec is possible (the container
        does not run, or has no shell): the caller then uploads the files directly."""
        try:
            result = self._exec(container_id, ["sh", "-c", script[0], "docker-swap-write",
                                               *script[1:]], 30, user="0")
        except EngineFailed as exc:
            if isinstance(exc.__cause__, docker.errors.APIError) and \
                    exc.__cause__.status_code == 409:
                return None
            raise
        if result.exit_code in _NO_SHELL and "not found" in result.output:
            log.debug("no sh in %s: files written without a rename", container_id[:12])
            return None
        return result

    def _upload(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        # Straight into the given names (an upload unlinks, then creates, each file). Used for
        # temporary names, and for a container that does not run: it cannot exec, so nothing
        # can rename there, and nothing reads the files until it starts, after this returns.
        with _translated(f"write {', '.join(files)} in {container_id[:12]}"):
            if not self._api.put_archive(container_id, directory, _tar(files)):
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

    # Images: release records and the tags that keep released images (releases.py).

    def image(self, reference: str) -> Image | None:
        """The image a reference (ID, or repository:tag) names now, or None."""
        try:
            attrs = self._api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return None
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not inspect image {reference}: {_reason(exc)}") from exc
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        return Image(str(attrs["Id"]), _tags(attrs.get("RepoTags")), dict(labels))

    def images(self, *, labels: Sequence[str] = (), repository: str | None = None) -> list[Image]:
        """Images that carry every `KEY=VALUE` of `labels`, or one of `repository`'s tags."""
        filters = {"label": list(labels)} if labels else None
        with _translated("list images"):
            summaries = self._api.images(name=repository, filters=filters)
        return [Image(str(s["Id"]), _tags(s.get("RepoTags")), dict(s.get("Labels") or {}))
                for s in summaries]

    def import_labels(self, repository: str, tag: str, labels: Mapping[str, str]) -> str:
        """Make an image that holds nothing but `labels` (the import of an empty tarball),
        tagged repository:tag; return its ID."""
        empty = io.BytesIO()
        with tarfile.open(fileobj=empty, mode="w"):
            pass
        changes = [f"LABEL {key}={_dockerfile_quoted(value)}" for key, value in labels.items()]
        with _translated(f"write {repository}:{tag}"):
            answer = self._api.import_image_from_data(
                empty.getvalue(), repository=repository, tag=tag, changes=changes)
        last = str(answer).strip().splitlines()[-1:] or ["{}"]
        return str(json.loads(last[0]).get("status", ""))

    def tag(self, image_id: str, reference: str) -> None:
        """Point `reference` (repository[:tag]) at the image."""
        repository, tag = split_reference(reference)
        with _translated(f"tag {image_id[:19]} as {reference}"):
            if not self._api.tag(image_id, repository, tag):
                raise EngineFailed(f"the engine refused to tag {image_id[:19]} as {reference}")

    def untag(self, reference: str) -> None:
        """Remove the tag; the image goes too once no other tag or container holds it."""
        try:
            self._api.remove_image(reference, force=True, noprune=True)
        except docker.errors.ImageNotFound:
            return
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove the tag {reference}: {_reason(exc)}") from exc

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


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _as_arguments(files: Mapping[str, bytes]) -> bool:
    """Small text files travel as exec arguments (no NUL, UTF-8, well under ARG_MAX)."""
    if sum(len(content) for content in files.values()) > _ARGV_LIMIT:
        return False
    try:
        return all(b"\0" not in content and content.decode() is not None
                   for content in files.values())
    except UnicodeDecodeError:
        return False


def _epoch(text: str) -> float | None:
    """Seconds since the epoch from the engine's RFC 3339 time (nanoseconds cut to micro)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)",
                         text.strip())
    if not match:
        return None
    whole, fraction, zone = match.groups()
    stamp = f"{whole}.{(fraction or '0')[:6]}{'+00:00' if zone == 'Z' else zone}"
    return datetime.fromisoformat(stamp).timestamp()


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


def _tags(tags: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(tag for tag in tags or () if tag != "<none>:<none>")


def split_reference(reference: str) -> tuple[str, str]:
    """repository and tag of `repository[:tag]` (a registry's port is not a tag)."""
    repository, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, "latest"
    return repository, tag


def _dockerfile_quoted(value: str) -> str:
    """A LABEL value as the Dockerfile parser reads it back unchanged: quoted, with `\\`, `"`
    and `$` (variable expansion) escaped; callers keep values on one line."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
