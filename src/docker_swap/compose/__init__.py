"""The only place that runs the docker CLI: `docker compose` (resolve the project, start new
containers) and, for Swarm stacks, `docker stack deploy` and `docker service`.

Compose semantics (files, overrides, profiles, env files, interpolation) stay compose's, and
the conversion of a compose file into Swarm services stays `docker stack deploy`'s: we ask the
real CLI and read what it prints.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import yaml

from docker_swap.errors import ComposeFailed, ComposeUnavailable
from docker_swap.models import Project, PublishedPort, ServiceDefinition
from docker_swap.options import ComposeOptions

log = logging.getLogger(__name__)

_STOP_GRACE_SECONDS = 10.0
_CONFIG = ("config", "--format", "yaml")
_Running = subprocess.Popen[str]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Compose:
    """`docker compose` with the user's global options, one method per subcommand we use."""

    def __init__(self, options: ComposeOptions, docker: str = "docker") -> None:
        self.options = options
        self.docker = docker
        self._pending_config: _Running | None = None

    def check_version(self) -> str:
        result = self._run(["version", "--short"])
        version = result.stdout.strip().lstrip("v")
        if result.returncode != 0 or not version or version.split(".")[0] == "1":
            raise ComposeUnavailable(
                "docker compose v2 is not installed (`docker compose version` failed).",
                hint="Install the compose plugin: https://docs.docker.com/compose/install/linux/",
            )
        return version

    def load_project(self) -> Project:
        # YAML, not JSON: compose's JSON output drops services' x-* extensions.
        pending, self._pending_config = self._pending_config, None
        result = self._finish(pending) if pending else self._run(_CONFIG)
        if result.returncode != 0:
            self.check_version()  # a missing compose deserves its own message
            said = _last_line(result.stderr)
            raise ComposeUnavailable(
                f"docker compose cannot load the project: {said}",
                hint="Pass the compose file with -f FILE (or set COMPOSE_FILE)."
                if "no configuration file" in said else None,
            )
        try:
            config = yaml.safe_load(result.stdout)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: an int of 4,300+ digits
            reason = str(exc).split(";")[0].split("\n")[0]
            raise ComposeUnavailable(
                f"the project as docker compose resolves it cannot be read: {reason}.",
                hint="Look in the compose files for a value such as a number thousands of "
                "digits long.",
            ) from None
        return _project_from_config(config)

    @contextmanager
    def loading_project(self) -> Iterator[None]:
        """Let compose resolve the project while the caller does other work (it reads only).

        The next `load_project` takes the answer; one never taken is stopped on leaving.
        """
        self._pending_config = self._spawn(_CONFIG)
        try:
            yield
        finally:
            pending, self._pending_config = self._pending_config, None
            if pending:
                _stop(pending)

    def scale_up(self, service: str, replicas: int) -> None:
        """Start containers until `service` has `replicas`, leaving the running ones alone."""
        result = self._run(
            ["up", "--detach", "--no-deps", "--no-recreate", "--scale", f"{service}={replicas}",
             service],
        )
        if result.returncode != 0:
            raise ComposeFailed(
                f"docker compose up could not start a new {service} container: "
                f"{_last_line(result.stderr)}"
            )

    def config_hashes(self, services: Sequence[str] = ()) -> dict[str, str]:
        """Compose's own hash of each service's current definition (`config --hash`; every
        service when none is named): what it labels new containers with, and compares with
        theirs to decide whether `up` recreates them."""
        result = self._run(["config", "--hash", ",".join(services) or "*"])
        if result.returncode != 0:
            raise ComposeUnavailable(
                f"docker compose cannot hash the project: {_last_line(result.stderr)}")
        return dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if " " in line)

    def converge(self, service: str, replicas: int, *, force_recreate: bool = False,
                 wait: float | None = None) -> None:
        """`up --detach --no-deps --scale` one service, as compose itself would converge it;
        with `wait`, until its containers run (healthy, with a healthcheck), at most so long."""
        waiting = ["--wait", "--wait-timeout", str(max(1, round(wait)))] if wait else []
        recreate = ["--force-recreate"] if force_recreate else []
        self._check(["up", "--detach", "--no-deps", *recreate, *waiting,
                     "--scale", f"{service}={replicas}", service], f"bring {service} up")

    def up(self, *, build: bool = False) -> None:
        """`up --detach` for the whole project (the demo's first start)."""
        self._check(["up", "--detach", *(["--build"] if build else [])], "start the project")

    def build(self, service: str) -> None:
        self._check(["build", service], f"build {service}")

    def down(self) -> None:
        """Remove everything `up` made: containers, networks, volumes, locally built images."""
        self._check(["down", "--volumes", "--remove-orphans", "--rmi", "local", "--timeout", "0"],
                    "remove the project")

    def _check(self, args: Sequence[str], action: str) -> None:
        result = self._run(args)
        if result.returncode != 0:
            raise ComposeFailed(f"docker compose could not {action}: {_last_line(result.stderr)}")

    def _run(self, args: Sequence[str]) -> CommandResult:
        return self._finish(self._spawn(args))

    def _spawn(self, args: Sequence[str]) -> _Running:
        argv = (self.docker, "compose", "--ansi", "never", *self.options.argv(), *args)
        log.debug("running %s", " ".join(argv))
        try:
            # Own session: a Ctrl-C meant for docker-swap must not reach compose directly;
            # we stop it ourselves and then roll back.
            return subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ComposeUnavailable(f"the docker CLI ({self.docker}) is not installed.") from exc

    def _finish(self, process: _Running) -> CommandResult:
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            _stop(process)
            raise
        argv = cast(tuple[str, ...], process.args)  # as _spawn gave it
        return CommandResult(argv, process.returncode, stdout, stderr)


_STACK_TIMEOUT_SECONDS = 300.0
"""The longest a `docker stack deploy` or `docker service` call may take (they return once
Swarm has the new spec; --detach)."""
_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


class Stack:
    """`docker stack deploy` and `docker service` for one stack, with the user's files."""

    def __init__(self, options: ComposeOptions, name: str, docker: str = "docker") -> None:
        self.options = options
        self.name = name
        self.docker = docker

    def files(self) -> list[str]:
        """The compose files `docker stack deploy -c` reads: those compose reads too (-f, else
        COMPOSE_FILE, else the one in the project folder and its override file)."""
        if self.options.files:
            return list(self.options.files)
        if os.environ.get("COMPOSE_FILE"):
            separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
            return [f for f in os.environ["COMPOSE_FILE"].split(separator) if f]
        folder = Path(self.options.project_directory or ".")
        found = next((folder / name for name in _COMPOSE_FILES if (folder / name).is_file()),
                     None)
        if found is None:
            raise ComposeUnavailable(f"no compose file in {folder.resolve()}.",
                                     hint="Pass it with -f FILE.")
        override = found.with_name(f"{found.stem.removesuffix('.yml')}.override{found.suffix}")
        return [str(found), *([str(override)] if override.is_file() else [])]

    def deploy(self, resolve_image: str) -> None:
        """`docker stack deploy` of the files: Swarm updates every service whose spec changed."""
        files = [arg for file in self.files() for arg in ("--compose-file", file)]
        self._check(["stack", "deploy", *files, "--resolve-image", resolve_image, self.name],
                    f"deploy stack {self.name}")

    def force_update(self, service: str) -> None:
        """Replace every task of `service` with a new one of the same spec."""
        self._check(["service", "update", "--force", "--detach", service], f"update {service}")

    def rollback(self, service: str) -> None:
        """Swarm's own rollback of `service` to its previous spec."""
        self._check(["service", "rollback", "--detach", service], f"roll back {service}")

    def _check(self, args: Sequence[str], action: str) -> None:
        argv = (self.docker, *args)
        log.debug("running %s", " ".join(argv))
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, start_new_session=True)
        except FileNotFoundError as exc:
            raise ComposeUnavailable(f"the docker CLI ({self.docker}) is not installed.") from exc
        try:
            _, stderr = process.communicate(timeout=_STACK_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise ComposeFailed(f"docker could not {action}: no answer within "
                                f"{_STACK_TIMEOUT_SECONDS:g} s.") from None
        except BaseException:
            _stop(process)
            raise
        if process.returncode != 0:
            raise ComposeFailed(f"docker could not {action}: {_last_line(stderr)}")


def _stop(process: _Running) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe:
            pipe.close()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def _project_from_config(config: Mapping[str, object]) -> Project:
    services = config.get("services") or {}
    assert isinstance(services, dict)
    project = str(config["name"])
    return Project(
        name=project,
        services={name: _service(name, spec, project) for name, spec in services.items()},
    )


def _service(name: str, spec: Mapping[str, object], project: str = "") -> ServiceDefinition:
    ports = spec.get("ports") or []
    assert isinstance(ports, list)
    published = tuple(
        PublishedPort(str(port["published"]), int(port["target"]))
        for port in ports
        if isinstance(port, dict) and port.get("published") not in (None, "", "0")
    )
    x_swap = spec.get("x-swap") or {}
    deploy = spec.get("deploy") or {}
    assert isinstance(deploy, dict)
    depends_on = spec.get("depends_on") or {}
    assert isinstance(depends_on, dict)
    return ServiceDefinition(
        name=name,
        container_name=_optional_str(spec.get("container_name")),
        published_ports=published,
        network_mode=_optional_str(spec.get("network_mode")),
        x_swap=x_swap if isinstance(x_swap, dict) else {"": x_swap},
        image=_optional_str(spec.get("image")) or f"{project}-{name}",
        pull_policy=_optional_str(spec.get("pull_policy")),
        replicas=int(deploy.get("replicas", spec.get("scale", 1))),
        deploy=deploy,
        depends_on={dep: str((how or {}).get("condition", "service_started"))
                    for dep, how in depends_on.items()},
        builds=spec.get("build") is not None,
    )


def image_name(project: Project, service: str) -> str:
    """The image compose runs for the service: its `image:`, else PROJECT-SERVICE (the name
    compose gives what it builds)."""
    return project.services[service].image or f"{project.name}-{service}"


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def locate(files: Sequence[str], service: str, key: str) -> tuple[str, int] | None:
    """Where `services.<service>.<key>` is written: the last file defining it, and its line.

    Used only to point the user at a line; what the setting means is compose's business.
    """
    found: tuple[str, int] | None = None
    for file in files:
        try:
            root = yaml.compose(Path(file).read_text())
        except (OSError, yaml.YAMLError):
            continue
        node = _child(_child(root, "services"), service)
        value = _child(node, key)
        if value is not None:
            found = (os.path.relpath(file), value.start_mark.line + 1)
    return found


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node if isinstance(value_node, yaml.Node) else None
    return None
