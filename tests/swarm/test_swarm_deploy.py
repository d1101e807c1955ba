"""docker-swap on a real 3-node swarm: the app (6 replicas over 3 nodes, parallelism 2) behind
two HAProxies on two nodes, each with its agent; load through both proxies.

The tests share one stack and run in order: each leaves it serving (the node-loss test last,
since Swarm does not move tasks back onto a node that returns).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from testbed.load import MIXED, Load, Result
from testbed.swarm import Swarm, write_stack
from testbed.swarm_stack import (
    EDGE_LABEL,
    REDIS_PASSWORD,
    REDIS_PORT,
    agent_compose,
    app_service,
    get,
    proxy_url,
    wait_serving,
)

STACK = "shop"
TIMEOUT = {"timeout": "30s", "switch-timeout": "10s", "drain-timeout": "10s"}


@dataclass
class Shop:
    swarm: Swarm
    folder: Path
    version: str = "v1"

    def write(self, version: str, app_env: dict[str, str] | None = None,
              update: dict[str, object] | None = None,
              x_swap: dict[str, object] | None = None) -> Path:
        return write_stack(agent_compose(STACK, version=version, x_swap=TIMEOUT | (x_swap or {}),
                                         app_env=app_env, update=update), self.folder)

    def swap(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "docker_swap", "-p", STACK, "-f",
             str(self.folder / "compose.yaml"), *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)

    def up(self, version: str, *flags: str, app_env: dict[str, str] | None = None,
           update: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
        self.write(version, app_env, update)
        done = self.swap("up", "--resolve-image", "never", *flags)
        if done.returncode == 0:
            self.version = version
        return done

    def env(self) -> dict[str, str]:
        redis = f"redis://:{REDIS_PASSWORD}@{self.swarm.manager.ip}:{REDIS_PORT}/0"
        return {**self.swarm.env(), "DOCKER_SWAP_REDIS_URL": redis,
                "PYTHONPATH": os.pathsep.join(sys.path)}

    @property
    def urls(self) -> list[str]:
        return [proxy_url(node.ip) for node in self.swarm.labelled(*EDGE_LABEL)]

    def serving(self) -> list[tuple[int, str]]:
        return [get(url) for url in self.urls]

    def assert_serving(self, version: str, said: str = "") -> None:
        try:
            found = self.serving()
        except OSError as exc:
            found = [(0, str(exc))]
        assert found == [(200, version)] * 2, f"{said}\n{self.swap('status').stdout}"

    def running_tasks(self) -> list[str]:
        return sorted(t.id for t in self.swarm.running_tasks(app_service(STACK)))

    def services(self) -> list[str]:
        listed = self.swarm.docker("service", "ls", "--format", "{{.Name}}").stdout
        return sorted(listed.split())


@pytest.fixture(scope="module")
def shop(swarm: Swarm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The stack deployed with `docker stack deploy`, then brought under docker-swap by a
    first `up` (no release of it yet: its tasks are replaced through a bridge)."""
    made = Shop(swarm, tmp_path_factory.mktemp("shop"))
    swarm.stack_deploy(made.write("v1"), STACK)
    try:
        swarm.wait_tasks(app_service(STACK), 6)
        _wait_agents(made, 2)
        first = made.up("v1")
        assert first.returncode == 0, first.stderr
        for url in made.urls:
            wait_serving(url, "v1")
        yield made
    finally:
        swarm.stack_rm(STACK)


def test_doctor_says_swarm_mode_applies_and_no_swarm_rules_it_out(shop: Shop) -> None:
    doctor = shop.swap("doctor")
    assert "swarm mode: the engine manages swarm" in doctor.stdout, doctor.stdout
    assert "agents: node-1@" in doctor.stdout and "up app: unchanged" in doctor.stdout
    forced_off = shop.swap("doctor", "--no-swarm")
    assert "compose mode: --no-swarm" in forced_off.stdout


def test_several_ups_under_load_through_both_proxies_fail_no_request(shop: Shop) -> None:
    for version in ("v2", "v3"):
        results, done = _under_load(shop, partial(shop.up, version, "--json"))
        assert done.returncode == 0, done.stderr
        shop.assert_serving(version, done.stdout + done.stderr)
        _assert_no_failure(results)
        (batch,) = next(s for s in json.loads(done.stdout)["services"]
                        if s["name"] == "app")["batches"]
        phases = [p["name"] for p in batch["phases"]]
        assert phases[:4] == ["bridge", "to-bridge", "update", "settle"], phases
        assert phases[-3:] == ["switch", "drain", "retire"], phases
        assert batch["old"] == ["shop_app-swap"] and len(batch["new"]) == 6, batch
    assert shop.swap("status").returncode == 0
    assert "shop_app-swap" not in shop.services()
    plan = json.loads(shop.swap("up", "--dry-run", "--json").stdout)
    assert {s["name"]: s["action"] for s in plan["services"]}["app"] == "unchanged"


def test_up_runs_hooks_and_http_readiness_in_the_tasks_and_verify_counts_nothing_failed(
        shop: Shop) -> None:
    """The release features on a stack: --http readiness and the three hooks run inside the
    tasks, on their nodes (a one-off job); --verify's own load through a proxy sees nothing
    fail, and neither does wrk through both."""
    flags = ("--verify", shop.urls[0], "--http", "/healthz",
             "--before-switch", "sh -c 'echo migrated'", "--after-switch", "./healthcheck",
             "--before-stop", "./healthcheck")
    results, done = _under_load(shop, lambda: shop.up("v4", *flags))
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    shop.assert_serving("v4", said)
    _assert_no_failure(results)
    assert "app ready" in said and "GET /healthz passed in shop_app." in said, said
    assert "before-switch hook `sh -c echo migrated` exited 0 in shop_app." in said, said
    assert "after-switch hook `./healthcheck` exited 0 in shop_app." in said, said
    assert "the before-stop hook" not in said, "a before-stop hook that failed is a note"
    verify = re.search(r"verify\s+([\d,]+) requests to (\S+), (\d+) failed", said)
    assert verify and int(verify[1].replace(",", "")) > 20 and verify[3] == "0", said
    assert "shop_app-swap" not in shop.services()
    assert not [s for s in shop.services() if "swap-job" in s], shop.services()


def test_a_version_that_dies_in_the_watch_window_is_switched_back(shop: Shop) -> None:
    """The new version is ready, then dies a few seconds after Swarm's update settled: with
    --watch, the proxies go back to the bridge (the old version, still running), Swarm rolls
    the service back, and every proxy serves the previous version (exit 1). (All six tasks in
    one batch, monitored 1 s, so that Swarm's own update finishes before they die.)"""
    results, done = _under_load(shop, lambda: shop.up(
        "v5", "--watch", "20s", app_env={"EXIT_AFTER": "12"},
        update={"parallelism": 6, "monitor": "1s"}))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "during the watch window" in said, said
    shop.assert_serving(shop.version, said)
    assert "shop_app-swap" not in shop.services()
    assert sum(r.requests for r in results) > 1000
    history = json.loads(shop.swap("history", "app", "--json").stdout)
    assert history["releases"][0]["outcome"] == "rolled_back"
    _assert_nothing_to_recover(shop)
    shop.write(shop.version)  # the file as it serves, for the next tests


def test_a_stack_whose_file_compose_cannot_find_is_refused(shop: Shop, tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text((shop.folder / "compose.yaml").read_text())
    refused = subprocess.run(
        [sys.executable, "-m", "docker_swap", "-p", STACK, "up"], cwd=tmp_path,
        env=shop.env(), capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("refused:") and "-f FILE" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_rollback_goes_to_the_release_before_under_load_and_history_shows_it(
        shop: Shop) -> None:
    results, done = _under_load(shop, lambda: shop.swap("rollback", "app"))
    assert done.returncode == 0, done.stderr
    shop.assert_serving("v3", done.stdout + done.stderr)
    _assert_no_failure(results)
    history = json.loads(shop.swap("history", "app", "--json").stdout)
    kinds = [r["kind"] for r in history["releases"]]
    assert kinds[0] == "rollback" and history["current"] == history["releases"][0]["number"]
    back = shop.up("v4")  # the file still says v4: up rolls forward again
    assert back.returncode == 0, back.stderr
    shop.assert_serving("v4", back.stdout + back.stderr)


def test_docker_stack_deploy_of_the_same_file_changes_nothing_that_serves(shop: Shop) -> None:
    before = shop.running_tasks()
    shop.swarm.stack_deploy(shop.write(shop.version), STACK)
    time.sleep(5)  # what Swarm would start, it starts at once
    assert shop.running_tasks() == before
    assert shop.swap("status").returncode == 0
    shop.assert_serving(shop.version)


def test_a_stopped_agent_rolls_the_deploy_back_and_is_named(shop: Shop) -> None:
    agent = shop.swarm.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="
                              f"{STACK}_agent", node=2).stdout.strip()
    shop.swarm.docker("pause", agent, node=2)
    try:
        results, done = _under_load(shop, lambda: shop.up("v6"))
    finally:
        shop.swarm.docker("unpause", agent, node=2)
    assert done.returncode == 1, done.stderr
    assert "agent(s) node-2@" in done.stderr and "did not apply generation" in done.stderr
    shop.assert_serving(shop.version, done.stdout + done.stderr)
    assert "shop_app-swap" not in shop.services()
    _assert_no_failure(results)
    _assert_nothing_to_recover(shop)


def _kill_agent(shop: Shop) -> None:
    """SIGKILL the agent on node 2: Swarm starts another (2 s later), with the same name."""
    agent = shop.swarm.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="
                              f"{STACK}_agent", node=2).stdout.strip()
    shop.swarm.docker("kill", agent, node=2)


def _restart_redis(shop: Shop) -> None:
    """Redis keeps no data: it comes back empty (the call returns once it runs again)."""
    shop.swarm.docker("service", "update", "--force", "--quiet", f"{STACK}_redis")


FAULTS = {"agent-killed": _kill_agent, "redis-restarted": _restart_redis}
PHASES = ("bridge", "switch#1", "update", "switch#2")
"""Where a stack's `up` pauses for a fault: the bridge's tasks ready; the switch to the
bridge published, not yet confirmed; the proxies on the bridge, before Swarm's update; the
switch back to the service's new tasks published, not yet confirmed."""


@pytest.mark.parametrize(("version", "faults"), [
    ("v9", ("agent-killed", "redis-restarted", "agent-killed", "redis-restarted")),
    ("v10", ("redis-restarted", "agent-killed", "redis-restarted", "agent-killed")),
], ids=["agent-first", "redis-first"])
def test_faults_at_each_phase_end_on_the_new_version_without_a_failed_request(
        shop: Shop, tmp_path: Path, version: str, faults: tuple[str, ...]) -> None:
    """One `up` paused at each of PHASES in turn, a fault at each (an agent killed, or Redis
    restarted empty), released at once: the switches wait for the agent Swarm starts again
    (30 s allowed: a loaded machine) and publish again above what Redis lost, and the deploy
    ends on the new version through both proxies without a failed request. (All six tasks in
    one batch: a shorter update.)"""
    shop.write(version, update={"parallelism": 6},
               x_swap={"switch-timeout": "30s", "drain-timeout": "30s"})
    results, done = _under_load(shop, lambda: _up_with_faults(shop, tmp_path, faults))
    said = f"faults {dict(zip(PHASES, faults, strict=True))}\n{done.stdout}{done.stderr}"
    try:
        assert done.returncode == 0, said
        shop.version = version
        shop.assert_serving(version, said)
        assert "shop_app-swap" not in shop.services()
        _assert_no_failure(results)
        _assert_nothing_to_recover(shop)
    finally:
        if done.returncode not in (0, 1):  # the next tests need a stack that serves one version
            shop.swap("recover", "app")


def _up_with_faults(shop: Shop, folder: Path, faults: tuple[str, ...],
                    ) -> subprocess.CompletedProcess[str]:
    env = {**shop.env(), "DOCKER_SWAP_FAILPOINTS": ",".join(f"{p}=pause" for p in PHASES),
           "DOCKER_SWAP_FAILPOINT_DIR": str(folder)}
    argv = [sys.executable, "-m", "docker_swap", "-p", STACK, "-f",
            str(shop.folder / "compose.yaml"), "up", "--resolve-image", "never"]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as deploy:
        try:
            for phase, fault in zip(PHASES, faults, strict=True):
                name = phase.partition("#")[0]
                if not _paused(deploy, folder / f"{name}.reached"):
                    break  # it ended: the assertion shows how
                FAULTS[fault](shop)
                (folder / f"{name}.release").touch()
                assert _paused(deploy, folder / f"{name}.left"), f"it ended in {phase}"
                for left in ("reached", "release", "left"):
                    (folder / f"{name}.{left}").unlink()
            out, err = deploy.communicate(timeout=300)
        finally:
            if deploy.poll() is None:
                deploy.kill()
    return subprocess.CompletedProcess(argv, deploy.returncode, out, err)


def _paused(deploy: subprocess.Popen[str], sign: Path, seconds: float = 180) -> bool:
    """Until the deploy wrote `sign`; False if it ended first."""
    deadline = time.monotonic() + seconds
    while not sign.exists():
        if deploy.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"the deploy did not write {sign.name}"
        time.sleep(0.05)
    return True


def test_a_node_lost_mid_deploy_neither_hangs_it_nor_leaves_proxies_on_gone_tasks(
        shop: Shop) -> None:
    shop.write("v7")
    with subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", STACK, "-f",
         str(shop.folder / "compose.yaml"), "up", "--resolve-image", "never"],
        env=shop.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as deploy:
        try:
            _wait_line(deploy, "update ")  # traffic is on the bridge; Swarm replaces the tasks
            shop.swarm.stop_node(3)
            deploy.wait(timeout=420)  # the update's wait (90 s), then Swarm's rollback's (210 s)
        finally:
            if deploy.poll() is None:
                deploy.kill()
        assert deploy.stderr is not None
        err = deploy.stderr.read()
    try:
        assert deploy.returncode in (0, 1), err  # finished, or rolled back: never left half
        expected = "v7" if deploy.returncode == 0 else shop.version
        shop.assert_serving(expected, err)
        status = shop.swap("status")
        assert "shop_app-swap" not in shop.services()
        assert status.returncode == 0, status.stdout  # the proxies send to what runs
        _assert_nothing_to_recover(shop)
    finally:
        shop.swarm.start_node(3)  # and waits until every node is ready again
        if deploy.returncode not in (0, 1):  # what it left, out of the way of the next tests
            shop.swap("recover", "app")
    again = shop.up("v8")  # the next deploy, with the node back
    assert again.returncode == 0, again.stderr
    shop.assert_serving("v8", again.stdout + again.stderr)


def _under_load(shop: Shop, action: Callable[[], subprocess.CompletedProcess[str]],
                ) -> tuple[list[Result], subprocess.CompletedProcess[str]]:
    loads = [Load(url, MIXED, 240) for url in shop.urls]
    for load in loads:
        load.__enter__()
    try:
        time.sleep(1)
        done = action()
        time.sleep(1)
        return [r for load in loads for r in load.stop()], done
    finally:
        for load in loads:
            load.__exit__()


def _assert_no_failure(results: list[Result]) -> None:
    assert sum(r.requests for r in results) > 1000
    assert [r.describe() for r in results if r.failed] == []


def _assert_nothing_to_recover(shop: Shop) -> None:
    recover = shop.swap("recover", "app")
    assert "no rollout of the stack is unfinished" in recover.stdout, recover.stdout


def _wait_agents(shop: Shop, count: int, seconds: float = 60) -> None:
    """Until `count` agents report in the registry (doctor lists them)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = shop.swap("doctor").stdout
        if shown.count("(busy, generation") + shown.count("(alive, generation") >= count:
            return
        time.sleep(1)
    raise AssertionError(f"fewer than {count} agents registered:\n{shown}")


def _wait_line(process: subprocess.Popen[str], text: str, seconds: float = 120) -> None:
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(text):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(seconds):
        raise AssertionError(f"the deploy never printed {text!r}")
