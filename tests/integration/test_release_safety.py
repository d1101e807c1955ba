"""Hooks, the watch window and --verify, for real: engine, compose, nginx and HAProxy."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from docker_swap.options import VerifyOptions
from docker_swap.rollout.verify import Verifier
from testbed.stack import HAPROXY_CFG, docker, haproxy_compose, http_compose

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}


def test_hooks_run_where_they_should_and_a_failing_one_rolls_back(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()

    failed = stack.swap("deploy", "app", "--before-switch", "sh -c 'echo migration 42 failed; "
                        "exit 7'", env={"APP_VERSION": "v2"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    said = " ".join(failed.stderr.split())
    assert "before-switch hook `sh -c echo migration 42 failed; exit 7` exited 7" in said
    assert "output of the before-switch hook: | migration 42 failed" in said
    assert stack.snapshot() == before and stack.get() == (200, "v1")

    old = stack.container_ids("app")[0]
    done = stack.swap("deploy", "app", "--before-switch", "touch /tmp/migrated",
                      "--after-switch", "touch /tmp/warmed",
                      "--before-stop", "sh -c 'echo leaving > /proc/1/fd/1'",
                      env={"APP_VERSION": "v2"})
    assert done.returncode == 0, done.stdout + done.stderr
    [new] = stack.container_ids("app")
    for marker in ("/tmp/migrated", "/tmp/warmed"):
        assert docker("exec", new, "test", "-f", marker, check=False).returncode == 0, marker
    assert "before-switch hook `touch /tmp/migrated` exited 0" in done.stdout
    assert new != old and stack.get() == (200, "v2")


def test_a_release_that_dies_in_the_watch_window_gives_way_to_the_same_old_container(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(http_compose(), **FAST)
    old = stack.container_ids("app")

    died = stack.swap("deploy", "app", "--watch", "20s",
                      env={"APP_VERSION": "v2", "EXIT_AFTER": "4"})

    assert died.returncode == 1, died.stdout + died.stderr
    assert "exited with code 3 during the watch window" in " ".join(died.stderr.split())
    assert "v2 crashing" in died.stderr, "its last log lines are shown"
    assert stack.container_ids("app") == old, "the very same old container serves"
    assert stack.get() == (200, "v1")

    # Ctrl-C during the window switches back too: the release was not accepted yet.
    deploy = subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", stack.name, "deploy", "app",
         "--watch", "60s"], cwd=stack.folder, env=stack._env({"APP_VERSION": "v2"}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert deploy.stdout is not None
        shown = [deploy.stdout.readline()]
        while not shown[-1].startswith("drain"):
            assert shown[-1], f"the deploy ended before its watch window: {shown}"
            shown.append(deploy.stdout.readline())
        time.sleep(1)  # the drain line is printed a moment before the window opens
        deploy.send_signal(signal.SIGINT)
        _, stderr = deploy.communicate(timeout=60)
    finally:
        if deploy.poll() is None:
            deploy.kill()
        deploy.communicate()
    assert deploy.returncode == 1, stderr
    assert "interrupted by SIGINT during the watch window" in stderr
    assert stack.container_ids("app") == old and stack.get() == (200, "v1")

    passed = stack.swap("deploy", "app", "--watch", "2s", env={"APP_VERSION": "v2"})
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "watch" in passed.stdout and "ran 2s without failing" in passed.stdout
    assert stack.container_ids("app") != old and stack.get() == (200, "v2")


def test_haproxy_counts_the_5xx_answers_of_a_bad_release(make_stack: StackFactory) -> None:
    stack = make_stack(haproxy_compose(), HAPROXY_CFG, **FAST)
    old = stack.container_ids("app")
    stop = threading.Event()
    traffic = threading.Thread(target=_requests, args=(stack.url(), stop), daemon=True)
    traffic.start()
    try:
        bad = stack.swap("deploy", "app", "--watch", "30s", "--max-error-rate", "5%",
                         env={"APP_VERSION": "v2", "ERRORS": "1"})
    finally:
        stop.set()
        traffic.join()

    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "requests with 5xx" in bad.stderr and "more than 5.0%" in bad.stderr
    assert stack.container_ids("app") == old and stack.get() == (200, "v1")


def _requests(url: str, stop: threading.Event) -> None:
    while not stop.wait(0.02):
        with contextlib.suppress(urllib.error.URLError, OSError):
            urllib.request.urlopen(url, timeout=5).read()


def test_verify_proves_a_deploy_failed_nothing_and_counts_what_a_recreate_fails(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(http_compose(), **FAST)
    url = stack.url() + "/"

    verified = stack.swap_json("deploy", "app", "--verify", url, "--verify-rate", "50",
                               env={"APP_VERSION": "v2"})
    assert verified["exit_code"] == 0, verified
    verify = verified["verify"]
    assert verify["requests"] > 20 and verify["failed"] == 0, verify
    assert verify["before_ms"]["p50"] is not None and verify["during_ms"]["p99"] is not None

    # compose's own recreate stops the only container first: --verify's counter sees it.
    with Verifier(VerifyOptions((url,), 50)) as verifier:
        stack.compose("up", "-d", "--force-recreate", "--no-deps", "app",
                      env={"APP_VERSION": "v3"})
        time.sleep(1)
    report = verifier.report()
    assert report.failed > 0, report
