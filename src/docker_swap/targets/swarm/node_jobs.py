"""Commands inside a stack's tasks, on whatever node runs them: a one-off job per step.

The manager cannot exec into a container on another node. So a hook, a health command or an
HTTP readiness probe of a stack's task runs as a Swarm *global job* of docker-swap itself (the
image the stack's agents run, which every node can pull): one task on every node, with that
node's Docker socket, which runs `docker-swap node-exec` for the containers on its own node
(exec for a command; a GET from the job's own place on the stack's network for `--http`) and
prints one JSON line per container. The manager reads those lines back from the job's logs and
removes the job. A node that is down never answers: its containers count as not answered.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from docker_swap import labels
from docker_swap.engine.swarm import SwarmEngine, Task
from docker_swap.errors import EngineFailed, InvalidSettings, StepFailed
from docker_swap.models import ExecResult

JOB_LABEL = labels.JOB
_SETTLE_SECONDS = 30.0
"""How long a job may take beyond its own timeout to be scheduled, started and collected."""
_POLL_SECONDS = 0.25
_TERMINAL = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned"})


@dataclass(frozen=True)
class JobImage:
    """docker-swap's own image, as the stack's agents run it."""

    image: str
    entrypoint: tuple[str, ...] | None


def agent_image(swarm: SwarmEngine, stack: str) -> JobImage:
    """The image of the stack's `docker-swap agent` service; InvalidSettings if it has none."""
    for service in swarm.stack_services(stack):
        spec = service.template.get("ContainerSpec") or {}
        argv = [*(spec.get("Command") or []), *(spec.get("Args") or [])]
        if "agent" in argv[:3] and "--stack" in argv:
            command = spec.get("Command")
            return JobImage(str(spec.get("Image", "")), tuple(command) if command else None)
    raise InvalidSettings(
        f"hooks, health-cmd and http run inside a stack's tasks through a one-off job of "
        f"docker-swap's own image, and no service of stack {stack} runs `docker-swap agent`.",
        hint="Run the agents as a service of the stack (docs/swarm.md), or leave these "
        "settings out.")


class NodeJobs:
    """Runs commands in tasks of stack `stack` (its agents' image), from the manager."""

    def __init__(self, swarm: SwarmEngine, stack: str, image: JobImage, network: str) -> None:
        self.swarm, self.stack, self.image, self.network = swarm, stack, image, network

    def run(self, tasks: Sequence[Task], argv: Sequence[str], timeout: float, *,
            until_ok: bool = False) -> dict[str, ExecResult | StepFailed]:
        """`argv` in each task's container (once, or until it exits 0 or `timeout` passed)."""
        items = [f"--exec={t.container_id}" for t in tasks if t.container_id]
        return self._job(tasks, [*items, "--", *argv], timeout, until_ok)

    def get(self, tasks: Sequence[Task], port: int, path: str,
            timeout: float) -> dict[str, ExecResult | StepFailed]:
        """GET http://ADDRESS:PORT/PATH of each task from its node, until 2xx or `timeout`."""
        items = [f"--get={t.container_id}=http://{t.addresses[self.network]}:{port}{path}"
                 for t in tasks if t.container_id and self.network in t.addresses]
        return self._job(tasks, items, timeout, until_ok=True)

    def _job(self, tasks: Sequence[Task], items: Sequence[str], timeout: float,
             until_ok: bool) -> dict[str, ExecResult | StepFailed]:
        argv = ["node-exec", f"--timeout={timeout:g}", *(["--until-ok"] if until_ok else []),
                *items]
        name = f"{self.stack}_swap-job-{secrets.token_hex(3)}"
        job = self.swarm.create_job(name, self.image.image, argv,
                                    entrypoint=self.image.entrypoint, networks=[self.network],
                                    labels={JOB_LABEL: self.stack})
        try:
            self._wait(job.name, timeout + _SETTLE_SECONDS)
            said = _parse(self.swarm.logs(job))
        finally:
            self.swarm.remove(job.name)
        return {t.id: said.get(t.container_id) or StepFailed(
                    f"the node of {t.name} did not answer (it may be down).") for t in tasks}

    def _wait(self, name: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            job = self.swarm.service(name)
            if job is None:
                raise EngineFailed(f"job {name} is gone.")
            tasks = self.swarm.tasks(job)
            up = {node.id for node in self.swarm.nodes().values() if node.ready}
            waiting = [t for t in tasks if t.node_id in up and t.state not in _TERMINAL]
            if tasks and not waiting:
                return
            if time.monotonic() > deadline:
                raise StepFailed(f"job {name} did not finish within {seconds:g} s.")
            time.sleep(_POLL_SECONDS)


def _parse(logs: str) -> Mapping[str, ExecResult]:
    """Container ID to how its command ended, from the job's JSON lines (anything else, or a
    line that does not parse, is skipped: it comes from our own job, but is read as text)."""
    found: dict[str, ExecResult] = {}
    for line in logs.splitlines():
        try:
            data = json.loads(line[line.find("{"):])
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            continue
        code = data.get("exit_code")
        found[data["id"]] = ExecResult(code if isinstance(code, int) else None,
                                       str(data.get("output", ""))[-4000:])
    return found
