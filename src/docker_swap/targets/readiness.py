"""Readiness probes for a new container, and the wait that ends when one passes.

Probes know an address or a way to run a command, nothing about compose or proxies. The wait
wakes at once on the container's own events (exit, Docker health), so a crash or an unhealthy
report fails the swap immediately and a Docker HEALTHCHECK is followed without polling.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from docker_swap.errors import ContainerExited, ContainerUnhealthy, EngineFailed, NotReady
from docker_swap.models import ExecResult
from docker_swap.options import DEFAULT_PROBE_INTERVAL, NETWORK_PROBE_INTERVAL

_CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    """How the wait ended: seconds waited, attempts made, the passing probe's detail."""

    seconds: float
    attempts: int
    detail: str


class Probe(Protocol):
    description: str
    interval: float
    """Seconds to wait between attempts when nothing else happens."""

    def check(self, timeout: float) -> ProbeResult: ...


class ContainerState(Protocol):
    """What the wait needs to know of the container: ContainerWatch provides it."""

    changed: threading.Event
    exit_code: int | None
    health: str | None


class Executor(Protocol):
    def exec(
        self, container_id: str, argv: Sequence[str], timeout: float | None = None
    ) -> ExecResult: ...


class CommandProbe:
    """Runs a command inside the container (exec, argv, no host shell); ready when it exits 0."""

    interval = DEFAULT_PROBE_INTERVAL

    def __init__(self, executor: Executor, container_id: str, argv: Sequence[str]) -> None:
        self._executor, self._container_id, self._argv = executor, container_id, tuple(argv)
        self.description = f"command {' '.join(self._argv)}"

    def check(self, timeout: float) -> ProbeResult:
        try:
            result = self._executor.exec(self._container_id, self._argv, timeout=timeout)
        except EngineFailed as exc:
            # Most often the container just stopped: its exit event, a moment behind, will say
            # so; a lasting engine failure ends in the timeout, with this as the last answer.
            return ProbeResult(False, exc.message)
        if result.exit_code == 0:
            return ProbeResult(True, f"{self._argv[0]} exited 0")
        lines = result.output.strip().splitlines()
        said = f": {lines[-1]}" if lines else ""
        status = "timed out" if result.exit_code is None else f"exited {result.exit_code}"
        return ProbeResult(False, f"{self._argv[0]} {status}{said}")


class HttpProbe:
    """GETs a path on the container's address; ready on a 2xx answer."""

    interval = NETWORK_PROBE_INTERVAL

    def __init__(self, address: str, port: int, path: str) -> None:
        self._address, self._port, self._path = address, port, path
        self.description = f"GET {path} on port {port}"

    def check(self, timeout: float) -> ProbeResult:
        import http.client  # noqa: PLC0415  (only this probe needs it)

        connection = http.client.HTTPConnection(
            self._address, self._port, timeout=min(timeout, _CONNECT_TIMEOUT)
        )
        try:
            connection.request("GET", self._path, headers={"User-Agent": "docker-swap"})
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return ProbeResult(False, f"GET {self._path}: {_describe(exc)}")
        finally:
            connection.close()
        return ProbeResult(200 <= status < 300, f"GET {self._path} answered {status}")


class TcpProbe:
    """Connects to the container's port; ready once it accepts (the weakest check)."""

    interval = NETWORK_PROBE_INTERVAL

    def __init__(self, address: str, port: int) -> None:
        self._address, self._port = address, port
        self.description = f"TCP connect to port {port}"

    def check(self, timeout: float) -> ProbeResult:
        try:
            with socket.create_connection(
                (self._address, self._port), timeout=min(timeout, _CONNECT_TIMEOUT)
            ):
                return ProbeResult(True, f"port {self._port} accepts connections")
        except OSError as exc:
            return ProbeResult(False, f"port {self._port}: {_describe(exc)}")


class SettleProbe:
    """Ready once the container has kept running for `settle` seconds (the weakest check, for
    a container that no proxy sends to and that has no health check)."""

    def __init__(self, settle: float) -> None:
        self._settle, self._since = settle, time.monotonic()
        self.interval = min(settle, 0.25)
        self.description = f"still running after {settle:g} s"

    def check(self, timeout: float) -> ProbeResult:
        waited = time.monotonic() - self._since
        return ProbeResult(waited >= self._settle, f"running for {waited:.1f} s")


class DockerHealthProbe:
    """Follows the image's own HEALTHCHECK through the engine's health events."""

    interval = float("inf")  # no polling: the health event wakes the wait
    description = "Docker HEALTHCHECK"

    def __init__(self, state: ContainerState) -> None:
        self._state = state

    def check(self, timeout: float) -> ProbeResult:
        health = self._state.health or "starting"
        return ProbeResult(health == "healthy", f"Docker health is {health}")


class HealthcheckProbe:
    """The image's HEALTHCHECK without its interval's lag: docker-swap runs the check's own
    command in the container on its short period (each run bounded by the check's timeout),
    and Docker's verdict counts too: ready at the first of either's success; Docker's
    `unhealthy` fails at once (the wait's own rule). A command docker-swap cannot run there
    (exit 126 or 127: no shell in a distroless image, say) leaves Docker's verdict alone,
    as DockerHealthProbe waits for it."""

    def __init__(self, executor: Executor, container_id: str, argv: Sequence[str],
                 run_timeout: float, state: ContainerState) -> None:
        self._command = CommandProbe(executor, container_id, argv)
        self._docker = DockerHealthProbe(state)
        self._run_timeout, self._runs = run_timeout, True
        self.interval = self._command.interval
        shown = argv[2:] if tuple(argv[:2]) == ("/bin/sh", "-c") else argv
        self.description = f"HEALTHCHECK {' '.join(shown)}"

    def check(self, timeout: float) -> ProbeResult:
        docker = self._docker.check(timeout)
        if docker.ok or not self._runs:
            return docker
        result = self._command.check(min(timeout, self._run_timeout))
        if result.detail.split(": ", 1)[0].endswith(("exited 126", "exited 127")):
            self._runs = False  # not runnable from outside: Docker's own runs decide
            self.interval = self._docker.interval
            return ProbeResult(False, f"{result.detail}; waiting for Docker's health check")
        return result


def wait_until_ready(
    probe: Probe, state: ContainerState, container: str, timeout: float,
    deadline: float | None = None, on_attempt: Callable[[int, ProbeResult], None] | None = None,
) -> Readiness:
    """Return once `probe` passes; raise if the container exits, turns unhealthy or times out.

    `deadline` (monotonic) may end the wait before `timeout`, when several containers share it;
    `on_attempt` hears every answer.
    """
    started = time.monotonic()
    deadline = started + timeout if deadline is None else deadline
    attempts = 0
    while True:
        state.changed.clear()  # before reading the state, so no event is missed
        raise_if_failed(state, container)
        attempt_started = time.monotonic()
        result = probe.check(max(deadline - attempt_started, 0.001))
        attempts += 1
        if on_attempt:
            on_attempt(attempts, result)
        if result.ok:
            return Readiness(time.monotonic() - started, attempts, result.detail)
        # One attempt per interval, start to start: a slow probe runs back to back.
        next_attempt = min(attempt_started + probe.interval, deadline)
        state.changed.wait(max(next_attempt - time.monotonic(), 0))
        if time.monotonic() >= deadline:
            raise_if_failed(state, container)
            raise NotReady(
                f"{container} was not ready after {timeout:g} s ({probe.description}: "
                f"{result.detail}).",
                hint="Raise --timeout if it needs longer; its last log lines are below.",
            )


def raise_if_failed(state: ContainerState, container: str) -> None:
    if state.exit_code is not None:
        raise ContainerExited(
            f"{container} exited with code {state.exit_code} before it was ready."
        )
    if state.health == "unhealthy":
        raise ContainerUnhealthy(f"Docker reports {container} unhealthy.")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
