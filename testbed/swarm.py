"""A real Docker Swarm on this one machine: each node a container running its own dockerd.

    swarm = Swarm.start(nodes=3)
    swarm.load_images(images.APP, images.HAPROXY)
    swarm.label_node(1, "edge", "true")
    swarm.stack_deploy(path, "shop")
    swarm.wait_tasks("shop_app", 6)
    swarm.teardown()

The nodes (image docker-swap-test/node: Debian 12's dockerd 20.10) are the containers
docker-swap-swarm-node-1..N, hostnames node-1..N, on a bridge network docker-swap-swarm of their
own, each with its /var/lib/docker on a volume of the same name. Node 1 is the only manager, the
others are workers. Every node's engine API listens on tcp://NODE_IP:2375 (no TLS: only this
machine reaches that network), which the host's docker CLI and the docker SDK use (`env()`).

The host engine refuses --privileged, so the nodes run with every capability, no seccomp and no
masked /proc or /sys instead (NODE_RUN_FLAGS); the node's entrypoint remounts /sys and its
cgroups read-write. The host's kernel has no IPVS: service VIPs and the ingress routing mesh do
not work in this swarm, so stacks use `endpoint_mode: dnsrr` and ports published `mode: host`.

Measured here (2 cores; the second figure while other test suites kept the load average at
18): `Swarm.start(3)` takes 5.5 s, 10 s (each dockerd answers 1.5 s after its container starts;
init, two joins and every node Ready take the rest); `load_images` of the app, HAProxy,
bookworm and agent images (one bookworm base, about 400 MB) into the three nodes 12 s, 25 s,
and 0.4 s when they have them; a stopped worker is down for the manager after 11-13 s and Ready
again 2.5 s after `start_node`; the manager stopped and started, every node Ready in 7-10 s;
`teardown()` 6-7 s. The smoke test (tests/swarm) takes 77 s in all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import images
from .swarm_nodes import (
    ENGINE_TIMEOUT,
    NODE_RUN_FLAGS,
    SWARM_PORT,
    Node,
    NodeRef,
    SwarmError,
    Task,
    create_network,
    docker,
    engine_env,
    image_id,
    parallel,
    task,
    until,
    wait_engine,
    wait_ready,
)

PREFIX = "docker-swap-swarm"
"""Every container, volume and network the test bed makes is named with it."""
NETWORK = PREFIX
class Swarm:
    """A swarm made by `start`; `teardown` removes every container, volume and network of it."""

    def __init__(self, nodes: Sequence[Node], prefix: str = PREFIX,
                 started_in: float = 0.0) -> None:
        self._nodes = list(nodes)
        self.prefix = prefix
        self.started_in = started_in
        """Seconds `start` took."""

    # --- making and removing ---------------------------------------------------------------

    @classmethod
    def start(cls, nodes: int = 3, *, prefix: str = PREFIX,
              image: str = images.NODE) -> Swarm:
        """Start `nodes` node containers, init the swarm on node 1 and join the others as
        workers; return once every node is Ready. What an earlier run with the same `prefix`
        left (it crashed, or kept its swarm) is removed first. Builds no image: the node image
        comes from `images.build_all()`."""
        started = time.monotonic()
        remove_leftovers(prefix)
        subnet = create_network(prefix)
        addresses = [str(subnet.network_address + 1 + n) for n in range(1, nodes + 1)]
        names = [f"{prefix}-node-{n}" for n in range(1, nodes + 1)]
        try:
            for number, (name, ip) in enumerate(zip(names, addresses, strict=True), 1):
                docker("run", "--detach", "--name", name, "--hostname", f"node-{number}",
                        "--network", prefix, "--ip", ip, "--label", f"{prefix}=node",
                        "--volume", f"{name}:/var/lib/docker", *NODE_RUN_FLAGS, image)
            parallel(lambda pair: wait_engine(*pair), list(zip(names, addresses, strict=True)))
            manager = engine_env(addresses[0])
            docker("swarm", "init", "--advertise-addr", addresses[0], env=manager)
            token = docker("swarm", "join-token", "--quiet", "worker",
                            env=manager).stdout.strip()
            parallel(lambda ip: docker("swarm", "join", "--token", token, "--advertise-addr",
                                         ip, f"{addresses[0]}:{SWARM_PORT}",
                                         env=engine_env(ip)), addresses[1:])
            ids = wait_ready(manager, [f"node-{n}" for n in range(1, nodes + 1)])
        except BaseException:
            remove_leftovers(prefix)
            raise
        made = [Node(n, f"node-{n}", name, ip, ids[f"node-{n}"])
                for n, (name, ip) in enumerate(zip(names, addresses, strict=True), 1)]
        return cls(made, prefix, time.monotonic() - started)

    @classmethod
    def attach(cls, prefix: str = PREFIX) -> Swarm:
        """The swarm an earlier `start` left running (a benchmark or a session kept it): to
        look at it, or to iterate on a stack without starting again."""
        listed = docker("ps", "--filter", f"label={prefix}=node", "--format", "{{.Names}}")
        pattern = re.compile(rf"{re.escape(prefix)}-node-(\d+)")
        numbers = sorted(int(m[1]) for m in map(pattern.fullmatch, listed.stdout.split()) if m)
        if not numbers:
            raise SwarmError(f"no node of a swarm {prefix} runs")
        ips = {n: docker("inspect", "--format",
                          f'{{{{(index .NetworkSettings.Networks "{prefix}").IPAddress}}}}',
                          f"{prefix}-node-{n}").stdout.strip() for n in numbers}
        ids = wait_ready(engine_env(ips[numbers[0]]), [f"node-{n}" for n in numbers])
        return cls([Node(n, f"node-{n}", f"{prefix}-node-{n}", ips[n], ids[f"node-{n}"])
                    for n in numbers], prefix)

    def teardown(self) -> None:
        """Remove the node containers (their swarm with them), their volumes and the network."""
        remove_leftovers(self.prefix)

    # --- where things are ------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes)

    @property
    def manager(self) -> Node:
        return self._nodes[0]

    @property
    def manager_url(self) -> str:
        """tcp://NODE1_IP:2375, the manager's engine API."""
        return self.manager.url

    def node(self, ref: NodeRef) -> Node:
        return ref if isinstance(ref, Node) else self._nodes[ref - 1]

    def labelled(self, key: str, value: str) -> list[Node]:
        """The nodes whose label `key` is `value`, in node order."""
        listed = self.docker("node", "ls", "--quiet", "--filter", f"node.label={key}={value}")
        ids = set(listed.stdout.split())
        return [node for node in self._nodes if node.id in ids]

    def env(self, node: NodeRef | None = None) -> dict[str, str]:
        """os.environ with DOCKER_HOST on the manager (or on `node`), no context or TLS
        settings: the host's docker CLI and the docker SDK (docker.from_env) talk to it."""
        return engine_env(self.node(node).ip if node is not None else self.manager.ip)

    # --- running things --------------------------------------------------------------------

    def docker(self, *argv: str, node: NodeRef | None = None, check: bool = True,
               timeout: float = 120, input: str | None = None
               ) -> subprocess.CompletedProcess[str]:
        """The host's docker CLI against the manager, or against `node`'s own engine."""
        return docker(*argv, env=self.env(node), check=check, timeout=timeout, input=input)

    def load_images(self, *tags: str) -> dict[str, tuple[str, ...]]:
        """Copy images of this machine into every node (`docker save` once, `docker load` on
        the nodes in parallel), skipping a node that already has an image with the same ID.
        Returns, per node hostname, the tags it loaded."""
        wanted = {tag: image_id(tag, os.environ) for tag in tags}
        missing: dict[tuple[str, ...], list[Node]] = {}
        for node in self._nodes:
            needs = tuple(t for t, i in wanted.items() if image_id(t, self.env(node)) != i)
            if needs:
                missing.setdefault(needs, []).append(node)
        with tempfile.TemporaryDirectory(prefix=f"{self.prefix}-images-") as folder:
            for number, (needs, nodes) in enumerate(missing.items()):
                archive = Path(folder) / f"{number}.tar"
                docker("save", "--output", str(archive), *needs, timeout=600)
                self._load(archive, nodes)
                archive.unlink()
        return {node.hostname: needs for needs, nodes in missing.items() for node in nodes}

    def _load(self, archive: Path, nodes: Sequence[Node]) -> None:
        parallel(lambda node: self.docker("load", "--quiet", "--input", str(archive),
                                           node=node, timeout=600), nodes)

    def label_node(self, node: NodeRef, key: str, value: str) -> None:
        self.docker("node", "update", "--label-add", f"{key}={value}", self.node(node).id)

    def stop_node(self, node: NodeRef, grace: int = 0) -> None:
        """Stop a node's container (`docker stop -t grace`; 0: killed at once): the node is
        lost, with every task on it. Node 1 is the only manager: without it the swarm cannot
        be changed or asked (until it starts again)."""
        docker("stop", "--time", str(grace), self.node(node).container, timeout=grace + 60)

    def start_node(self, node: NodeRef, timeout: float = ENGINE_TIMEOUT) -> None:
        """Start a stopped node's container again and wait until its dockerd answers and every
        node is Ready in the swarm (the node rejoins by itself: its swarm state is on its
        volume, its address the same)."""
        started = self.node(node)
        docker("start", started.container)
        wait_engine(started.container, started.ip, timeout)
        wait_ready(self.env(), [n.hostname for n in self._nodes], timeout)

    def node_status(self, node: NodeRef) -> str:
        """What the manager says of the node: ready, down, unknown, disconnected."""
        found = self.docker("node", "inspect", "--format", "{{.Status.State}}",
                            self.node(node).id)
        return found.stdout.strip()

    def wait_node_status(self, node: NodeRef, status: str, timeout: float = 60) -> None:
        """Until the manager says `status` of the node (a stopped worker turns down in ~5 s)."""
        until(lambda: self.node_status(node) == status, timeout,
               lambda: f"node {self.node(node).hostname} is not {status} after {timeout} s")

    # --- stacks ----------------------------------------------------------------------------

    def stack_deploy(self, compose: Path, name: str, *, wait: bool = False) -> None:
        """`docker stack deploy --resolve-image never` (images come from `load_images`, no
        registry is asked). By default it returns once the services are created (the CLI's
        --detach, its default); `wait`: once every service converged, which a service that
        cannot start (an agent whose proxy is missing) never does: use `wait_tasks` for the
        services that matter instead."""
        self.docker("stack", "deploy", "--resolve-image", "never",
                    f"--detach={str(not wait).lower()}", "--compose-file", str(compose), name,
                    timeout=300)

    def stack_rm(self, name: str, timeout: float = 60) -> None:
        """Remove a stack and wait until none of its containers or networks is left on any
        node (`docker stack rm` returns before they are gone; a network still in use would
        make the next deploy of that stack fail)."""
        # It may fail to remove a network that a service still being removed holds (Swarm's
        # own race): `gone` runs it again once no service is left.
        first = self.docker("stack", "rm", name, check=False)
        label = f"label=com.docker.stack.namespace={name}"

        def gone() -> bool:
            for node in self._nodes:
                if self.docker("ps", "--quiet", "--filter", label, node=node).stdout.strip():
                    return False
                # A node that was stopped and started again keeps the exited containers of
                # the tasks it ran before: nobody tells it to remove them.
                exited = self.docker("ps", "--all", "--quiet", "--filter", label,
                                     node=node).stdout.split()
                if exited:
                    self.docker("rm", "--force", *exited, node=node, check=False)
            if not self.docker("network", "ls", "--quiet", "--filter", label).stdout.strip():
                return True
            if not self.docker("service", "ls", "--quiet", "--filter", label).stdout.strip():
                self.docker("stack", "rm", name, check=False)
            return False

        until(gone, timeout, lambda: f"stack {name} still has containers or networks after "
              f"{timeout} s (the first `docker stack rm` said: "
              f"{(first.stdout + first.stderr).strip()})")

    def tasks(self, service: str) -> list[Task]:
        """Every task of the service that `docker service ps` lists (old ones included)."""
        listed = self.docker("service", "ps", "--no-trunc", "--format", "{{json .}}", service)
        return [task(json.loads(line)) for line in listed.stdout.splitlines() if line.strip()]

    def running_tasks(self, service: str) -> list[Task]:
        """The tasks that run and are meant to (a task with a healthcheck runs once healthy)."""
        return [t for t in self.tasks(service) if t.desired == "running" and t.state == "running"]

    def wait_tasks(self, service: str, count: int, timeout: float = 120) -> list[Task]:
        """Until exactly `count` tasks of the service run (and none more is meant to); them."""
        found: list[Task] = []

        def done() -> bool:
            nonlocal found
            tasks = self.tasks(service)
            found = [t for t in tasks if t.desired == "running" and t.state == "running"]
            return len(found) == count == sum(t.desired == "running" for t in tasks)

        until(done, timeout, lambda: f"{service}: {len(found)} of {count} tasks run after "
               f"{timeout} s:\n" + self.docker("service", "ps", "--no-trunc", service,
                                               check=False).stdout)
        return found


def write_stack(compose: Mapping[str, Any], folder: Path) -> Path:
    """Write a stack's compose file in `folder` (made if needed), with the files its x-files
    extension names beside it (swarm configs' sources); the path of the compose file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in compose.get("x-files", {}).items():
        (folder / name).write_text(text)
    path = folder / "compose.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in compose.items() if k != "x-files"},
                                   sort_keys=False))
    return path


def remove_leftovers(prefix: str = PREFIX) -> None:
    """Remove the node containers, node volumes and network named with `prefix`, and nothing
    else (other test runs share this engine)."""
    pattern = re.compile(rf"{re.escape(prefix)}-node-\d+")
    listed = docker("ps", "--all", "--filter", f"name={prefix}-node-", "--format",
                     "{{.Names}}").stdout.split()
    containers = [name for name in listed if pattern.fullmatch(name)]
    if containers:
        docker("rm", "--force", "--volumes", *containers, timeout=300)
    volumes = [name for name in docker("volume", "ls", "--quiet", "--filter",
                                        f"name={prefix}-node-").stdout.split()
               if pattern.fullmatch(name)]
    if volumes:
        docker("volume", "rm", "--force", *volumes, timeout=300)
    networks = docker("network", "ls", "--filter", f"name={prefix}", "--format",
                       "{{.Name}}").stdout.split()
    if prefix in networks:
        docker("network", "rm", prefix)
