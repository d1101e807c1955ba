"""A stack shared by the fault cases of one proxy set-up, and how one case is run on it.

How a fault reaches the deploy: the real CLI runs as a subprocess with
DOCKER_SWAP_FAILPOINTS=POINT=pause, so it writes POINT.reached and waits (polling for
POINT.release) at that very point. Then:

    SIGKILL        the process is killed there; nothing of it runs again.
    SIGINT/TERM    the signal goes to the paused process. Python runs its handler in the main
                   thread at once (the pause is a sleep in the main thread), exactly where a
                   signal arriving at that point would be handled: before the switch the
                   handler raises out of the failpoint and the deploy rolls back; after it,
                   the handler notes the signal. Only once it has acted (the process ended,
                   or its note is printed) is POINT.release created, so that a deploy that
                   goes on does so from that point, after the signal, as it would after a
                   real one.
    proxy-restart  `docker restart` of the proxy container; it has returned (the proxy runs
                   again) before the release.
    proxy-restart-draining  at `drain`, the proxy killed (`docker kill`), the deploy
                   released to drain requests of 4 s, and the proxy started again 1 s later.
    engine-error   DOCKER_SWAP_FAILPOINTS=POINT=error: EngineFailed is raised there, as a
                   failed Engine API call would be (each time the point is passed: at `switch`,
                   the rollback's own switch fails too).
    crash          DOCKER_SWAP_FAILPOINTS=POINT=crash: RuntimeError, as a bug would raise.
    redis-restart  `docker restart` of Redis (which keeps no data: it comes back empty).
    redis-flush    FLUSHDB in Redis, then 2 s for the agents' heartbeats to report again.
    agent-kill     the HAProxy agent gets SIGKILL.
    agent-slow     the HAProxy agent runs with DOCKER_SWAP_FAILPOINTS=agent-apply=pause: it
                   stops before it applies the deploy's generation and is released only
                   once the deploy has ended.

Every host port is fixed when a stack is made, so that a restarted proxy or Redis comes back
where the load and the agents look for it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker_swap.safety.failpoints import DIR_ENV, POINTS_ENV
from testbed.agents import Agents
from testbed.load import MIXED, Load, Result
from testbed.stack import (
    HAPROXY_CFG,
    NGINX_HTTP,
    Stack,
    docker,
    haproxy_compose,
    http_compose,
    registry_compose,
)

from .cases import KILLED, REPLICAS, Case, Proxy
from .probes import Held, free_port, get, reached

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}
TIMEOUTS = ("--drain-timeout", "5s", "--switch-timeout", "3s")
AGENT_TIMEOUTS = ("--drain-timeout", "5s", "--switch-timeout", "8s")
"""Through the registry, the switch waits for two agents that each make several `docker exec`
calls into their proxy: 3 s was not always enough while the other suite loaded the machine."""
UP = ("up", "app")
"""(`up` takes its timeouts from the bench's x-swap: the same as a deploy's.)"""


def timeouts(proxy: Proxy) -> tuple[str, ...]:
    return AGENT_TIMEOUTS if proxy == "registry" else TIMEOUTS


LOAD_LIMIT_SECONDS = 90
"""wrk stops by itself after this long; a case stops it as soon as its recover has run."""
SETTLE_SECONDS = 1.0
DEPLOY_SECONDS = 120.0
AGENT = "haproxy-agent"
HEARTBEAT_SECONDS = 2.0
"""Longer than an agent's heartbeat interval (HEARTBEAT_TTL_SECONDS / 4)."""
DOWN_SECONDS = 1.0
"""How long a proxy killed while the deploy drains stays down before it is started again."""
AGENT_CATCH_UP_SECONDS = 2.5
"""A released slow agent applies what it held, then what is newer (it resyncs every 1 s)."""


@dataclass
class Outcome:
    """What one case observed, in the order it happened."""

    versions: dict[str, str]
    """The case's v1 and v2 as deployed here (each case deploys a version of its own)."""
    exit_code: int
    stdout: str
    stderr: str
    serving: dict[str, tuple[int, str]]
    journal_kept: bool
    app_containers: list[str]
    upstream: list[str]
    recover: subprocess.CompletedProcess[str]
    serving_after_recover: dict[str, tuple[int, str]]
    left_after_recover: list[str]
    journal_after_recover: bool
    upstream_after_recover: list[str]
    load: list[Result] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    """How each failed long request (Case.long_requests) failed."""

    def describe(self) -> str:
        lines = [
            f"deploy of {self.versions['v2']} over {self.versions['v1']}: exit {self.exit_code}",
            *(f"  stdout | {line}" for line in self.stdout.splitlines()),
            *(f"  stderr | {line}" for line in self.stderr.splitlines()),
            f"serving after the deploy: {self.serving}; journal kept: {self.journal_kept}",
            f"app containers: {len(self.app_containers)}; upstream: {self.upstream}",
            f"recover exit {self.recover.returncode}: "
            f"{(self.recover.stdout + self.recover.stderr).strip()}",
            f"serving after recover: {self.serving_after_recover}; containers left: "
            f"{len(self.left_after_recover)}; journal: {self.journal_after_recover}; "
            f"upstream: {self.upstream_after_recover}",
            *(f"load | {r.describe()}" for r in self.load),
            *(f"long request | {failure}" for failure in self.held),
        ]
        return "\n".join(lines)


def up_bench_compose() -> dict[str, Any]:
    """The app behind nginx 1.30, 3 replicas replaced one batch at a time by `up`; its monitor
    and failure_action from the environment (the cases set them), its timeouts as a deploy's."""
    compose = http_compose("1.30")
    app = compose["services"]["app"]
    app["deploy"] = {"replicas": 3, "update_config": {
        "parallelism": 1, "monitor": "${APP_MONITOR:-0s}",
        "failure_action": "${APP_FAILURE_ACTION:-rollback}"}}
    app["x-swap"] |= {"timeout": "20s", "drain-timeout": "5s", "switch-timeout": "3s"}
    return compose


class Bench:
    """One stack of a proxy set-up, brought back to v1-like health before every case."""

    def __init__(self, proxy: Proxy, root: Path) -> None:
        self.proxy = proxy
        self.root = root
        self.made = 0
        self.versions = 0
        self.stack: Stack | None = None
        self.agents: Agents | None = None
        self.ports: dict[str, int] = {}
        self.version = "v1"

    # Building and resetting.

    def build(self) -> Stack:
        self.teardown()
        self.made += 1
        folder = self.root / f"{self.proxy}{self.made}"
        compose, config = self._compose()
        stack = Stack(folder, compose, config)
        stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state"), "APP_VERSION": "v1",
                     **FAST}
        if self.proxy == "registry":
            stack.env["DOCKER_SWAP_REDIS_URL"] = f"redis://:secret@127.0.0.1:{self.ports['redis']}/0"
        self.stack, self.version = stack, "v1"
        stack.up()
        if self.proxy == "registry":
            self.agents = Agents(stack, folder)
            self.agents.start_both_and_sync()
        else:
            for _ in range(3):  # on a busy machine a proxy just started may not answer yet
                result = stack.swap("sync", "app")
                if result.returncode == 0:
                    break
                time.sleep(1)
            assert result.returncode == 0, result.stdout + result.stderr
            stack.wait_serving("v1")
        return stack

    def _compose(self) -> tuple[dict[str, Any], str]:
        if self.proxy == "up":
            compose, config = up_bench_compose(), NGINX_HTTP
        elif self.proxy == "nginx":
            compose, config = http_compose("1.30"), NGINX_HTTP
        elif self.proxy == "haproxy":
            compose, config = haproxy_compose(), HAPROXY_CFG
        else:
            compose, config = registry_compose(), NGINX_HTTP
        services = compose["services"]
        self.ports = {}
        for service, target in (("proxy", 80), ("haproxy", 80), ("redis", 6379)):
            if service in services:
                self.ports[service] = free_port()
                services[service]["ports"] = [f"127.0.0.1:{self.ports[service]}:{target}"]
        return compose, config

    def teardown(self) -> None:
        if self.agents is not None:
            for process in self.agents.running.values():
                process.kill()
                process.wait(30)
            self.agents = None
        if self.stack is not None:
            self.stack.down()
            self.stack = None

    def reset(self) -> Stack:
        """The stack as a case needs it: one app container that serves, no journal, every proxy
        (and agent) up. Whatever a failed case left, a new stack is built when it is not so."""
        if self.stack is None or self.unhealthy():
            return self.build()
        return self.stack

    def unhealthy(self) -> str:
        """Why the stack is not fit for the next case ('' when it is)."""
        stack = self.stack
        assert stack is not None
        if self.journal_exists():
            return "a journal is left"
        apps = stack.containers("app")
        if len(apps) != REPLICAS[self.proxy] or any(c["State"] != "running" for c in apps):
            return f"app containers: {[(c['Names'], c['State']) for c in apps]}"
        for proxy, port in self.proxy_ports().items():
            if get(port) != (200, self.version):
                return f"{proxy} answers {get(port)}, not {self.version}"
        if self.proxy != "haproxy":
            servers = stack.upstream_servers()
            if sorted(servers) != sorted(f"server {c['Names']}:8000;" for c in apps):
                return f"nginx upstream {servers}"
        if self.agents is not None:
            dead = [name for name, p in self.agents.running.items() if p.poll() is not None]
            if dead or len(self.agents.running) != 2:
                return f"agents not running: {dead or 'missing'}"
        return ""

    def proxy_ports(self) -> dict[str, int]:
        return {name: port for name, port in self.ports.items() if name != "redis"}

    def journal_exists(self) -> bool:
        """The journal on the engine (what docker-swap decides from), not the local copy."""
        assert self.stack is not None
        return bool(self.stack.markers("journal"))

    # One case.

    def run(self, case: Case, folder: Path) -> Outcome:
        stack = self.build() if case.fresh else self.reset()
        self.versions += 1
        names = {"v1": self.version, "v2": f"v{self.versions + 1}"}
        names["mixed"] = f"{names['v1']}|{names['v2']}"
        folder.mkdir(parents=True, exist_ok=True)
        env = {"APP_VERSION": names["v2"]}
        point = f"{case.point}#{case.batch}" if case.batch > 1 else case.point
        if case.fault == "monitor-death":
            env |= {"EXIT_AFTER": "3", "APP_MONITOR": "5s",
                    "APP_FAILURE_ACTION": case.failure_action}
        elif case.fault in ("engine-error", "crash"):
            env[POINTS_ENV] = f"{case.point}={'error' if case.fault == 'engine-error' else 'crash'}"
        elif case.fault == "agent-slow":
            self._restart_agent({POINTS_ENV: "agent-apply=pause", DIR_ENV: str(folder)}, folder)
        else:
            env |= {POINTS_ENV: f"{point}=pause", DIR_ENV: str(folder)}
        with ExitStack() as running:
            loads = [running.enter_context(Load(f"http://127.0.0.1:{port}", MIXED,
                                                LOAD_LIMIT_SECONDS))
                     for port in self.proxy_ports().values()]
            held = Held(list(self.proxy_ports().values()))
            if case.long_requests:
                env[POINTS_ENV] = f"ready=pause,{env[POINTS_ENV]}"
            time.sleep(SETTLE_SECONDS)
            exit_code, stdout, stderr = self._deploy(case, env, folder, held)
            if case.fault == "agent-slow":  # now it may go on, and catch up
                (folder / "agent-apply.release").touch()
                time.sleep(AGENT_CATCH_UP_SECONDS)
            by_rule = {0: names["v2"], 1: names["v1"], 2: names["v1"]}
            serving = self._serving(by_rule.get(exit_code, names[case.after]))
            journal_kept = self.journal_exists()
            apps = [str(c["Names"]) for c in stack.containers("app")]
            upstream = self._upstream()
            recover = stack.swap("recover", "app", *timeouts(case.proxy))
            if case.proxy == "up" and case.exits == (KILLED,):  # the next `up` finishes
                recover.stdout += stack.swap("up", "app", env={"APP_VERSION": names["v2"]}).stdout
            serving_after = self._serving(names[case.recovered])
            outcome = Outcome(
                names, exit_code, stdout, stderr, serving, journal_kept, apps, upstream,
                recover, serving_after,
                [f"{c['Names']} ({c['State']})" for c in stack.containers("app")],
                self.journal_exists(), self._upstream(),
            )
            outcome.load = [result for load in loads for result in load.stop()]
            outcome.held = held.failures()
        if case.fault == "agent-slow":
            self._restart_agent(None, folder)
        self.version = next((body for status, body in serving_after.values() if status == 200),
                            "unknown")
        return outcome

    def _deploy(self, case: Case, env: dict[str, str], folder: Path,
                held: Held) -> tuple[int, str, str]:
        assert self.stack is not None
        out, err = folder / "stdout", folder / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "docker_swap", "-p", self.stack.name,
                 *(UP if case.proxy == "up" else
                   ("deploy", "app", "--timeout", "20s", *timeouts(case.proxy)))],
                cwd=self.stack.folder, env=self.stack._env(env), stdout=stdout, stderr=stderr,
                text=True,
            )
        try:
            if case.long_requests and reached(folder / "ready.reached", process):
                held.send()
                (folder / "ready.release").touch()
            if POINTS_ENV in env and env[POINTS_ENV].endswith("=pause"):
                self._fault(case, process, folder, out)
            exit_code = process.wait(DEPLOY_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return exit_code, out.read_text(), err.read_text()

    def _fault(self, case: Case, process: subprocess.Popen[str], folder: Path,
               out: Path) -> None:
        """At the paused point: the case's fault, then the release."""
        assert self.stack is not None
        release = folder / f"{case.point}.release"
        if not reached(folder / f"{case.point}.reached", process):
            return  # the deploy ended (or hangs) before the point: the outcome tells
        if case.fault == "SIGKILL":
            process.kill()
            return
        if case.fault in ("SIGINT", "SIGTERM"):
            process.send_signal(getattr(signal, case.fault))
            deadline = time.monotonic() + 10
            while (process.poll() is None and f"{case.fault} received" not in out.read_text()
                   and time.monotonic() < deadline):
                time.sleep(0.02)
        elif case.fault == "proxy-restart":
            docker("restart", self._proxy_container())
        elif case.fault == "proxy-restart-draining":
            proxy = self._proxy_container()
            docker("kill", proxy)  # a crash: the drain meets the proxy down, then back
            release.touch()
            time.sleep(DOWN_SECONDS)
            docker("start", proxy)
            return
        elif case.fault == "redis-restart":
            docker("restart", str(self.stack.containers("redis")[0]["ID"]))
        elif case.fault == "redis-flush":
            docker("exec", str(self.stack.containers("redis")[0]["ID"]), "redis-cli", "-a",
                   "secret", "--no-auth-warning", "FLUSHDB")
            time.sleep(HEARTBEAT_SECONDS)  # the agents' heartbeats write their records again
        elif case.fault == "agent-kill":
            assert self.agents is not None
            self.agents.running[AGENT].kill()
            self.agents.running[AGENT].wait(30)
        release.touch()

    def _proxy_container(self) -> str:
        assert self.stack is not None
        return str(self.stack.containers("proxy")[0]["ID"])

    def _serving(self, expected: str, seconds: float = 5) -> dict[str, tuple[int, str]]:
        """What each proxy answers, once it is `expected` (agents apply in their own time)."""
        deadline = time.monotonic() + seconds
        while True:
            answers = {proxy: get(port) for proxy, port in self.proxy_ports().items()}
            if all(a[0] == 200 and a[1] in expected.split("|") for a in answers.values()) or \
                    time.monotonic() > deadline:
                return answers
            time.sleep(0.2)

    def _upstream(self) -> list[str]:
        assert self.stack is not None
        return [] if self.proxy == "haproxy" else self.stack.upstream_servers()

    def _restart_agent(self, env: dict[str, str] | None, folder: Path) -> None:
        """The HAProxy agent again, with `env`; a pause while it catches up is released."""
        assert self.agents is not None
        process = self.agents.running.pop(AGENT, None)
        if process is not None:
            process.kill()
            process.wait(30)
        (folder / "agent-apply.release").touch()  # its catch-up must not wait
        self.agents.start(AGENT, "haproxy:haproxy", env, wait=False)
        self.agents.wait_for(AGENT, "ready at generation")
        for name in ("agent-apply.release", "agent-apply.reached"):
            (folder / name).unlink(missing_ok=True)
