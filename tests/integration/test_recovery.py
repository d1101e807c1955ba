"""A deploy killed at any point is finished or undone by `docker-swap recover`."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request

from testbed.stack import Stack, http_compose

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}


def start_deploy(stack: Stack, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", stack.name, "deploy", "app"],
        cwd=stack.folder, env=stack._env(env), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for(condition, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_deploy_killed_before_the_switch_is_undone(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()
    # Killed once the new container has started and the journal says so (a failpoint holds the
    # deploy right there; nothing releases it).
    deploy = start_deploy(stack, APP_VERSION="v2", NEVER_READY="1",
                          DOCKER_SWAP_FAILPOINTS="after-start=pause",
                          DOCKER_SWAP_FAILPOINT_DIR=str(stack.folder))
    wait_for((stack.folder / "after-start.reached").exists)
    deploy.send_signal(signal.SIGKILL)
    deploy.communicate()

    blocked = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})
    assert blocked.returncode == 2
    assert "was interrupted (phase started)" in blocked.stderr
    assert "docker-swap recover app" in blocked.stderr

    recovered = stack.swap("recover", "app")
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines()[-1].startswith("undone")
    assert stack.snapshot()[:2] == before[:2]
    assert stack.upstream_servers() == [f"server {stack.name}-app-1:8000;"]
    assert stack.get() == (200, "v1")
    assert stack.swap("recover", "app").stdout.splitlines()[-1].startswith("nothing")
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0


def test_a_deploy_killed_after_the_switch_is_finished(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    old = stack.container_ids("app")
    # Killed at its drain (the switch confirmed; a failpoint holds it there), while a slow
    # request to the old container is still in flight: recover lets it finish before it
    # retires the old container.
    answers: list[bytes] = []
    slow = threading.Thread(target=lambda: answers.append(
        urllib.request.urlopen(stack.url() + "/slow?seconds=15", timeout=60).read()
    ))
    slow.start()
    time.sleep(0.3)
    deploy = start_deploy(stack, APP_VERSION="v2", DOCKER_SWAP_FAILPOINTS="drain=pause",
                          DOCKER_SWAP_FAILPOINT_DIR=str(stack.folder))
    wait_for((stack.folder / "drain.reached").exists)
    assert stack.get() == (200, "v2")
    assert slow.is_alive(), "the slow request ended before the kill: nothing to wait for"
    deploy.send_signal(signal.SIGKILL)
    deploy.communicate()
    assert len(stack.containers("app")) == 2

    recovered = stack.swap("recover", "app")

    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines()[-1].startswith("finished")
    remaining = stack.container_ids("app")
    assert len(remaining) == 1 and remaining != old
    assert stack.get() == (200, "v2")
    slow.join()
    assert answers == [b"v1\n"]


def test_ctrl_c_after_the_switch_lets_the_deploy_finish(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    slow = threading.Thread(
        target=lambda: urllib.request.urlopen(stack.url() + "/slow?seconds=4", timeout=30).read()
    )
    slow.start()
    time.sleep(0.3)
    deploy = start_deploy(stack, APP_VERSION="v2")
    # Once the switch is confirmed (v2 may answer a moment earlier, while nginx still swaps
    # its workers: a Ctrl-C then rolls back, as it should).
    assert deploy.stdout is not None
    shown = [deploy.stdout.readline()]
    while not shown[-1].startswith("switch"):
        assert shown[-1], f"the deploy ended before its switch: {shown}"
        shown.append(deploy.stdout.readline())
    deploy.send_signal(signal.SIGINT)
    stdout, stderr = deploy.communicate(timeout=60)
    stdout = "".join(shown) + stdout
    slow.join()

    assert deploy.returncode == 0, stdout + stderr
    assert "SIGINT received: the new version already serves" in stdout
    assert len(stack.containers("app")) == 1
    assert stack.get() == (200, "v2")
