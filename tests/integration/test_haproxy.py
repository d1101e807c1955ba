"""HAProxy: switched through its runtime API, no reload, so no client connection is touched."""

from __future__ import annotations

import time

from testbed.load import CLOSING_GETS, MIXED, Load, Result
from testbed.stack import HAPROXY_CFG, Stack, haproxy_compose

from .conftest import StackFactory

LOAD_SECONDS = 14
FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}


def describe(results: list[Result]) -> str:
    return "\n".join(r.describe() for r in results)


def serving(stack: Stack) -> list[str]:
    lines = stack.haproxy("show servers state app").splitlines()
    return [f"{f[4]}:{f[18]}" for f in (line.split() for line in lines)
            if len(f) > 18 and f[0].isdigit() and f[5] == "2" and not int(f[6]) & 0x3b]


def test_consecutive_swaps_under_mixed_load_fail_no_request(make_stack: StackFactory) -> None:
    stack = make_stack(haproxy_compose(), HAPROXY_CFG)
    stack.wait_serving("v1")
    for version in ("v2", "v3", "v4"):
        with Load(stack.url(), (*MIXED, CLOSING_GETS), LOAD_SECONDS) as load:
            time.sleep(2)
            started = time.monotonic()
            result = stack.swap("deploy", "app", env={"APP_VERSION": version})
            assert result.returncode == 0, result.stdout + result.stderr
            assert time.monotonic() - started < LOAD_SECONDS - 3
            results = load.results()
        assert sum(r.failed for r in results) == 0, f"{version}:\n{describe(results)}"
        assert stack.get() == (200, version)
    assert len(stack.containers("app")) == 1
    assert len(serving(stack)) == 1


def test_the_servers_survive_a_restart_and_a_recreate(make_stack: StackFactory) -> None:
    stack = make_stack(haproxy_compose(), HAPROXY_CFG, **FAST)
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0

    stack.compose("restart", "proxy")
    stack.wait_serving("v2")
    stack.compose("up", "-d", "--force-recreate", "proxy", env={"APP_VERSION": "v2"})
    stack.wait_serving("v2")


def test_rolling_back_puts_the_old_server_back(make_stack: StackFactory) -> None:
    stack = make_stack(haproxy_compose(), HAPROXY_CFG, **FAST)
    before = serving(stack)

    result = stack.swap("deploy", "app", "--timeout", "2",
                        env={"APP_VERSION": "v2", "NEVER_READY": "1"})

    assert result.returncode == 1, result.stderr
    assert serving(stack) == before
    assert stack.get() == (200, "v1")


def test_refusals(make_stack: StackFactory) -> None:
    no_socket = HAPROXY_CFG.replace("    stats socket ipv4@127.0.0.1:9999 level admin\n", "")
    stack = make_stack(haproxy_compose(), no_socket, sync=False, **FAST)
    result = stack.swap("deploy", "app")
    assert result.returncode == 2 and "has no runtime API socket" in result.stderr

    stack = make_stack(haproxy_compose(), HAPROXY_CFG.replace("localhost:1", "127.0.0.1:1"),
                       sync=False, **FAST)
    result = stack.swap("deploy", "app")
    assert result.returncode == 2
    assert "gives its servers an IP address" in " ".join(result.stderr.split())

    stack = make_stack(haproxy_compose(upstream="web"), HAPROXY_CFG, sync=False, **FAST)
    result = stack.swap("deploy", "app")
    assert result.returncode == 2 and "has no backend web" in result.stderr


def test_too_few_slots_fails_before_the_readiness_wait(make_stack: StackFactory) -> None:
    one_slot = HAPROXY_CFG.replace("server-template app 4", "server-template app 1")
    stack = make_stack(haproxy_compose(), one_slot, **FAST)

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

    assert result.returncode == 1
    assert "has 0 free server slot(s); 1 are needed" in result.stderr
    assert stack.get() == (200, "v1")


def test_a_unix_socket_is_reached_through_socat(make_stack: StackFactory) -> None:
    unix = HAPROXY_CFG.replace("stats socket ipv4@127.0.0.1:9999 level admin",
                               "stats socket /run/haproxy.sock mode 600 level admin")
    stack = make_stack(haproxy_compose(), unix, **FAST)

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.get() == (200, "v2")
