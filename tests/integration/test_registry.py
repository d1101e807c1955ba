"""Several proxies follow one deploy through Redis: real redis-server, nginx, HAProxy, agents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.agents import Agents
from testbed.load import CLOSING_GETS, MIXED, Load, Result
from testbed.stack import Stack, registry_compose

from .conftest import StackFactory

LOAD_SECONDS = 14


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    stack = make_stack(registry_compose(), sync=False)
    stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
    return stack


@pytest.fixture
def agents(stack: Stack, tmp_path: Path) -> Iterator[Agents]:
    agents = Agents(stack, tmp_path)
    agents.start_both_and_sync()
    yield agents
    agents.stop_all()


def describe(results: list[Result]) -> str:
    return "\n".join(r.describe() for r in results)


def test_two_proxies_follow_swaps_under_load_and_fail_nothing(
    stack: Stack, agents: Agents
) -> None:
    for version in ("v2", "v3"):
        clients = (*MIXED, CLOSING_GETS)
        with Load(stack.url("proxy"), clients, LOAD_SECONDS) as on_nginx, \
                Load(stack.url("haproxy"), clients, LOAD_SECONDS) as on_haproxy:
            time.sleep(2)
            result = stack.swap("deploy", "app", env={"APP_VERSION": version})
            assert result.returncode == 0, result.stdout + result.stderr
            nginx_results, haproxy_results = on_nginx.results(), on_haproxy.results()
        assert sum(r.failed for r in nginx_results) == 0, describe(nginx_results)
        assert sum(r.failed for r in haproxy_results) == 0, describe(haproxy_results)
        assert stack.get(proxy="proxy") == (200, version)
        assert stack.get(proxy="haproxy") == (200, version)
    assert len(stack.containers("app")) == 1


def test_a_stopped_agent_rolls_the_deploy_back_and_catches_up_when_restarted(
    stack: Stack, agents: Agents
) -> None:
    agents.stop("haproxy-agent")
    before = stack.container_ids("app")

    result = stack.swap("deploy", "app", "--switch-timeout", "3s", env={"APP_VERSION": "v2"})

    assert result.returncode == 1, result.stdout + result.stderr
    assert "agent(s) haproxy-agent (silent) did not apply generation 2 within 3 s" in " ".join(
        result.stderr.split())
    assert stack.container_ids("app") == before
    assert stack.get(proxy="proxy") == (200, "v1")
    assert stack.get(proxy="haproxy") == (200, "v1")

    agents.start("haproxy-agent", "haproxy:haproxy")  # catches up with generation 3 (v1 again)
    assert "ready at generation 3" in agents.log("haproxy-agent")
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0
    assert stack.get(proxy="haproxy") == (200, "v2")


def test_an_agent_started_later_catches_up_before_it_is_ready(
    stack: Stack, agents: Agents
) -> None:
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0
    agents.stop("haproxy-agent")
    stack.compose("up", "-d", "--force-recreate", "haproxy", env={"APP_VERSION": "v2"})

    agents.start("haproxy-agent", "haproxy:haproxy")

    assert "ready at generation 2" in agents.log("haproxy-agent")
    stack.wait_serving("v2", proxy="haproxy", seconds=5)


def test_redis_down_is_refused(stack: Stack, agents: Agents) -> None:
    stack.compose("stop", "redis")
    before = stack.container_ids("app")

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

    assert result.returncode == 2, result.stderr
    assert "refused: Redis at redis://:***@127.0.0.1:" in result.stderr
    assert "secret" not in result.stderr
    assert stack.container_ids("app") == before


def test_a_wrong_password_is_refused_without_showing_it(stack: Stack, agents: Agents) -> None:
    port = stack.env["DOCKER_SWAP_REDIS_URL"].rsplit(":", 1)[1]
    result = stack.swap("deploy", "app", "--redis", f"redis://:hunter2@127.0.0.1:{port}")

    assert result.returncode == 2
    assert "does not answer" in result.stderr and "hunter2" not in result.stderr
