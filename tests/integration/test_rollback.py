"""Every failure before the switch completes rolls back: old containers serve, exit code 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from testbed.stack import NGINX_HTTP, Stack, docker, http_compose

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}


def assert_rolled_back(stack: Stack, result: subprocess.CompletedProcess[str],
                       before: tuple[list[str], list[str], str], reason: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("rolled back:"), result.stderr
    assert reason in " ".join(result.stderr.split()), result.stderr
    assert stack.snapshot() == before
    assert stack.get() == (200, "v1")


def test_readiness_timeout_rolls_back_and_shows_the_logs(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()

    result = stack.swap("deploy", "app", "--timeout", "2s",
                        env={"APP_VERSION": "v2", "NEVER_READY": "1"})

    assert_rolled_back(stack, result, before, "was not ready after 2 s")
    assert "last log lines of" in result.stderr and "v2 listening on 8000" in result.stderr
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0


def test_a_crash_during_readiness_rolls_back_at_once(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()

    started = time.monotonic()
    result = stack.swap("deploy", "app", "--timeout", "60s",
                        env={"APP_VERSION": "v2", "LISTEN_DELAY": "30", "EXIT_AFTER": "0.5"})

    assert_rolled_back(stack, result, before, "exited with code 3 before it was ready")
    assert "v2 crashing" in result.stderr
    assert time.monotonic() - started < 15, "an exit must not wait for the readiness timeout"


def test_an_unhealthy_report_rolls_back_at_once(make_stack: StackFactory) -> None:
    compose = http_compose()
    del compose["services"]["app"]["x-swap"]["health-cmd"]  # readiness from Docker's health
    compose["services"]["app"]["healthcheck"] = {
        "test": ["CMD", "/app/healthcheck"], "interval": "300ms", "retries": 2,
    }
    stack = make_stack(compose, **FAST)
    before = stack.snapshot()

    started = time.monotonic()
    result = stack.swap("deploy", "app", "--timeout", "60s",
                        env={"APP_VERSION": "v2", "NEVER_READY": "1"})

    assert_rolled_back(stack, result, before, "unhealthy")
    assert time.monotonic() - started < 20, "unhealthy must not wait for the readiness timeout"


def test_a_proxy_config_nginx_rejects_rolls_back(make_stack: StackFactory) -> None:
    # A real mistake: the include sits in the server block, where `upstream` is not allowed.
    # Until the first deploy nginx resolves `app` itself (port 80), so v1 serves.
    misplaced = NGINX_HTTP.replace(
        "    include /etc/nginx/docker-swap/*.conf;\n", ""
    ).replace("listen 80;", "listen 80;\n        include /etc/nginx/docker-swap/*.conf;")
    stack = make_stack(http_compose(port=80), misplaced, sync=False, APP_PORT="80", **FAST)
    stack.wait_serving("v1")
    before = stack.snapshot()

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

    assert result.returncode == 1, result.stderr
    assert "rejected the new upstream" in result.stderr
    assert '"upstream" directive is not allowed here' in " ".join(result.stderr.split())
    assert stack.snapshot()[:2] == before[:2]
    assert stack.get() == (200, "v1")


def test_a_reload_nginx_does_not_confirm_rolls_back(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    stack.wait_serving("v1")
    before = stack.snapshot()
    # The nginx master hangs (stopped from the host: inside its container it is init, which
    # ignores SIGSTOP), so the switch is not confirmed within 3 s and the deploy rolls back.
    # The master wakes up once the rollback has put the old upstream back, and loads that.
    master = int(docker("inspect", "-f", "{{.State.Pid}}", stack.proxy_container()).stdout)
    old_only = stack.upstream_servers()
    os.kill(master, signal.SIGSTOP)
    wake = threading.Thread(target=wake_when_rolled_back, args=(stack, master, old_only))
    wake.start()
    try:
        result = stack.swap("deploy", "app", "--switch-timeout", "3s",
                            env={"APP_VERSION": "v2"})
    finally:
        wake.join()

    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not start workers with the new upstream within 3 s" in " ".join(
        result.stderr.split())
    assert stack.container_ids("app") == before[0]
    assert stack.get() == (200, "v1")


def wake_when_rolled_back(stack: Stack, master: int, old_only: list[str]) -> None:
    deadline = time.monotonic() + 60
    switched = False
    while time.monotonic() < deadline:
        servers = stack.upstream_servers()
        switched = switched or (len(servers) == 1 and servers != old_only)
        if switched and servers == old_only:
            break
        time.sleep(0.05)
    os.kill(master, signal.SIGCONT)


def test_a_compose_failure_rolls_back(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()

    result = stack.swap("deploy", "app", env={"APP_IMAGE": "docker-swap-test/no-such-image:v2"})

    assert_rolled_back(stack, result, before, "docker compose up could not start a new app")


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_before_the_switch_rolls_back(
    make_stack: StackFactory, signal_number: int
) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", stack.name, "deploy", "app"],
        cwd=stack.folder, env=stack._env({"APP_VERSION": "v2", "NEVER_READY": "1"}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while len(stack.containers("app")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the new container is being probed

    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=60)

    name = signal.Signals(signal_number).name
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_rolled_back(stack, result, before, f"interrupted by {name} before the switch completed")


def test_a_failed_stage_or_switch_back_leaves_nothing_nginx_cannot_load(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()

    # An engine error right after the staged upstream was written: it is put back, so nginx
    # still starts once the new container is gone.
    staged = stack.swap("deploy", "app", env={"APP_VERSION": "v2",
                                               "DOCKER_SWAP_FAILPOINTS": "stage=error"})
    assert_rolled_back(stack, staged, before, "simulated Engine API failure")
    docker("restart", "-t", "0", stack.proxy_container())
    stack.wait_serving("v1")

    # The switch fails and so does the switch back: the new container may be what nginx
    # serves, so it stays (exit 3) until `recover` has put nginx on the old one, confirmed.
    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2",
                                              "DOCKER_SWAP_FAILPOINTS": "switch=error"})
    assert result.returncode == 3, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert said.startswith("needs attention:") and "could not be switched back" in said
    assert "kept, as the proxy may still send to them" in said
    assert len(stack.containers("app")) == 2
    recovered = stack.swap("recover", "app")
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines()[-1].startswith("undone")
    assert stack.snapshot()[:2] == before[:2]
    assert stack.upstream_servers() == [f"server {stack.name}-app-1:8000;"]
    assert stack.get() == (200, "v1")
