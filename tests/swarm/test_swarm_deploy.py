"""docker-swap on a real 3-node swarm: the app (6 replicas over 3 nodes, parallelism 2) behind
two HAProxies on two nodes, each with its agent; load through both proxies.

The tests share one stack and run in order: each leaves it serving (the node-loss test last,
since Swarm does not move tasks back onto a node that returns).
"""

from __future__ import annotations

import json
import os
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

    def write(self, version: str) -> Path:
        return write_stack(agent_compose(STACK, version=version, x_swap=TIMEOUT), self.folder)

    def swap(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "docker_swap", "-p", STACK, "-f",
             str(self.folder / "compose.yaml"), *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)

    def up(self, version: str) -> subprocess.CompletedProcess[str]:
        self.write(version)
        done = self.swap("up", "--resolve-image", "never")
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
        results, done = _under_load(shop, partial(shop.up, version))
        assert done.returncode == 0, done.stderr
        shop.assert_serving(version, done.stdout + done.stderr)
        _assert_no_failure(results)
    assert shop.swap("status").returncode == 0
    assert "shop_app-swap" not in shop.services()
    plan = json.loads(shop.swap("up", "--dry-run", "--json").stdout)
    assert {s["name"]: s["action"] for s in plan["services"]}["app"] == "unchanged"


def test_rollback_goes_to_the_release_before_under_load_and_history_shows_it(
        shop: Shop) -> None:
    results, done = _under_load(shop, lambda: shop.swap("rollback", "app"))
    assert done.returncode == 0, done.stderr
    shop.assert_serving("v2", done.stdout + done.stderr)
    _assert_no_failure(results)
    history = json.loads(shop.swap("history", "app", "--json").stdout)
    kinds = [r["kind"] for r in history["releases"]]
    assert kinds[0] == "rollback" and history["current"] == history["releases"][0]["number"]
    back = shop.up("v3")  # the file still says v3: up rolls forward again
    assert back.returncode == 0, back.stderr
    shop.assert_serving("v3", back.stdout + back.stderr)


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
        results, done = _under_load(shop, lambda: shop.up("v4"))
    finally:
        shop.swarm.docker("unpause", agent, node=2)
    assert done.returncode == 1, done.stderr
    assert "agent(s) node-2@" in done.stderr and "did not apply generation" in done.stderr
    shop.assert_serving(shop.version, done.stdout + done.stderr)
    assert "shop_app-swap" not in shop.services()
    _assert_no_failure(results)


def test_a_node_lost_mid_deploy_neither_hangs_it_nor_leaves_proxies_on_gone_tasks(
        shop: Shop) -> None:
    shop.write("v5")
    with subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", STACK, "-f",
         str(shop.folder / "compose.yaml"), "up", "--resolve-image", "never"],
        env=shop.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as deploy:
        try:
            _wait_line(deploy, "update ")  # traffic is on the bridge; Swarm replaces the tasks
            shop.swarm.stop_node(3)
            deploy.wait(timeout=300)
        finally:
            if deploy.poll() is None:
                deploy.kill()
        assert deploy.stderr is not None
        err = deploy.stderr.read()
    try:
        assert deploy.returncode in (0, 1), err  # finished, or rolled back: never left half
        expected = "v5" if deploy.returncode == 0 else shop.version
        shop.assert_serving(expected, err)
        status = shop.swap("status")
        assert "shop_app-swap" not in shop.services()
        assert status.returncode == 0, status.stdout  # the proxies send to what runs
    finally:
        shop.swarm.start_node(3)  # and waits until every node is ready again
    again = shop.up("v6")  # the next deploy, with the node back
    assert again.returncode == 0, again.stderr
    shop.assert_serving("v6", again.stdout + again.stderr)


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
