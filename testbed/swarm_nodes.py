"""The Swarm test bed's parts (testbed/swarm.py): a node, a task, the node containers'
network, the waits, the docker CLI."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

ENGINE_PORT = 2375
SWARM_PORT = 2377
NODE_RUN_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
)
"""What a node needs instead of --privileged, which the host engine refuses."""
ENGINE_TIMEOUT = 60.0
"""Seconds a node's dockerd may take to answer, and a node to be Ready in the swarm."""
_DOCKER_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
_T = TypeVar("_T")
_R = TypeVar("_R")


class SwarmError(RuntimeError):
    """Raised when a docker command of the test bed fails or a wait runs out of time."""


@dataclass(frozen=True)
class Node:
    """One node: its container on this machine and its place in the swarm."""

    number: int
    """1..N; node 1 is the manager."""
    hostname: str
    """node-1: also its name in `docker node ls` and in `docker service ps`."""
    container: str
    """The container on this machine: docker-swap-swarm-node-1."""
    ip: str
    """Its address on the test bed's network, fixed for the node's life (restarts included)."""
    id: str
    """Its swarm node ID."""

    @property
    def name(self) -> str:
        return self.hostname

    @property
    def url(self) -> str:
        """Its own engine's API."""
        return f"tcp://{self.ip}:{ENGINE_PORT}"


@dataclass(frozen=True)
class Task:
    """One line of `docker service ps`."""

    id: str
    name: str
    node: str
    """The node's hostname (empty while the task is not placed)."""
    desired: str
    """running, shutdown, ... (lower case)."""
    state: str
    """The current state's first word, lower case: new, pending, preparing, starting, running,
    complete, shutdown, failed, rejected, orphaned."""
    error: str


NodeRef = int | Node
"""A node by its number (1..N) or itself."""




def create_network(name: str) -> ipaddress.IPv4Network:
    """A bridge network with a subnet of its own, named, so that nodes keep fixed addresses
    (a node's address is its swarm address: it must not change when the node restarts). The
    engine picks a free subnet first; the network is then made again with it, as configured."""
    for _ in range(3):
        docker("network", "create", name)
        subnet = docker("network", "inspect", "--format",
                         "{{(index .IPAM.Config 0).Subnet}}", name).stdout.strip()
        docker("network", "rm", name)
        made = docker("network", "create", "--subnet", subnet, "--label", f"{name}=network",
                       name, check=False)
        if made.returncode == 0:
            return ipaddress.IPv4Network(subnet)
    raise SwarmError(f"could not create network {name}: {made.stderr.strip()}")


def wait_engine(container: str, ip: str, timeout: float = ENGINE_TIMEOUT) -> None:
    env = engine_env(ip)

    def answers() -> bool:
        if docker("version", "--format", "{{.Server.Version}}", env=env, check=False,
                   timeout=10).returncode == 0:
            return True
        state = docker("inspect", "--format", "{{.State.Status}}", container).stdout.strip()
        if state != "running":
            logs = docker("logs", "--tail", "30", container, check=False)
            raise SwarmError(f"node {container} is {state}:\n{logs.stdout}{logs.stderr}")
        return False

    until(answers, timeout, lambda: f"the engine in {container} did not answer in {timeout} s")


def wait_ready(manager: Mapping[str, str], hostnames: Iterable[str],
                timeout: float = ENGINE_TIMEOUT) -> dict[str, str]:
    """Until the manager lists every node Ready; their IDs by hostname."""
    wanted = set(hostnames)
    ready: dict[str, str] = {}

    def all_ready() -> bool:
        listed = docker("node", "ls", "--format", "{{json .}}", env=manager, check=False)
        if listed.returncode:
            return False  # a manager that restarts answers before its raft is back
        rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        ready.clear()
        ready.update({r["Hostname"]: r["ID"] for r in rows if r["Status"] == "Ready"})
        return wanted <= ready.keys()

    until(all_ready, timeout, lambda: f"nodes not Ready after {timeout} s: "
           f"{sorted(wanted - ready.keys())}")
    return {name: ready[name] for name in wanted}


def task(row: Mapping[str, str]) -> Task:
    return Task(row["ID"], row["Name"], row["Node"], row["DesiredState"].lower(),
                row["CurrentState"].split(" ", 1)[0].lower(), row.get("Error", ""))


def image_id(tag: str, env: Mapping[str, str]) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag, env=env,
                   check=False).stdout.strip()


def engine_env(ip: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DOCKER_ENV}
    return {**env, "DOCKER_HOST": f"tcp://{ip}:{ENGINE_PORT}"}


def docker(*argv: str, env: Mapping[str, str] | None = None, check: bool = True,
            timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The host's docker CLI (on this machine's engine unless `env` says otherwise)."""
    try:
        done = subprocess.run(["docker", *argv], capture_output=True, text=True, input=input,
                              env=dict(env) if env is not None else None, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise SwarmError(f"docker {' '.join(argv)}: no answer in {timeout} s") from exc
    if check and done.returncode:
        where = (env or {}).get("DOCKER_HOST", "this machine's engine")
        raise SwarmError(f"docker {' '.join(argv)} (on {where}) exited {done.returncode}: "
                         f"{done.stderr.strip() or done.stdout.strip()}")
    return done


def until(condition: Callable[[], bool], timeout: float, failure: Callable[[], str],
           interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SwarmError(failure())
        time.sleep(interval)


def parallel(call: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`call` on every item at once; the first exception, once all ended."""
    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(call, items))
