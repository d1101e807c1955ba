"""Canary releases on every proxy, under load: the share asked for is the share measured, and
both endings (promote, abort) fail no request (real engine, compose, nginx, HAProxy, Caddy,
Redis and agents)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.agents import Agents
from testbed.load import MIXED, Load, Result
from testbed.sampler import Background, cookie_of, versions
from testbed.stack import (
    CADDYFILE,
    HAPROXY_CFG,
    Stack,
    caddy_compose,
    haproxy_cfg,
    haproxy_compose,
    http_compose,
    registry_compose,
)

from .conftest import StackFactory

LOAD_SECONDS = 24
FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}
SAMPLE = 2000
"""GETs that measure a share: a point of share is 20 of them."""
STICKY_CFG = haproxy_cfg(slots=6).replace(
    "    server-template app 6",
    "    cookie SWAPID insert indirect nocache dynamic\n    dynamic-cookie-key s3cret\n"
    "    server-template app 6")


def failed(results: list[Result]) -> int:
    return sum(r.failed for r in results)


def describe(results: list[Result]) -> str:
    return "\n".join(r.describe() for r in results)


def share(seen: dict[str, int], version: str) -> float:
    return seen.get(version, 0) / sum(seen.values())


def replicas(compose: dict[str, object], count: int) -> dict[str, object]:
    compose["services"]["app"]["deploy"] = {"replicas": count}  # type: ignore[index]
    return compose


def test_nginx_canary_gets_its_share_refuses_other_deploys_then_promotes_under_load(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(replicas(http_compose(), 3), **FAST)
    assert stack.swap("deploy", "app", "--canary", "10%", "--sticky",
                      env={"APP_VERSION": "v2"}).returncode == 2  # nginx has no sticky

    with Load(stack.url(), MIXED, LOAD_SECONDS) as load:
        time.sleep(1)
        started = stack.swap("deploy", "app", "--canary", "10%", env={"APP_VERSION": "v2"})
        assert started.returncode == 0, started.stdout + started.stderr
        seen = versions(stack.url(), SAMPLE)
        status = stack.swap_json("status", "app")["services"][0]
        refused = stack.swap("deploy", "app", env={"APP_VERSION": "v3"})
        promoted = stack.swap("promote", "app", env={"APP_VERSION": "v2"})
        results = load.results()

    assert abs(share(seen, "v2") - 0.10) < 0.03, seen
    assert status["canary"]["share"] == "10%" and status["canary"]["weighed"] == 0.1, status
    assert len(status["canary"]["containers"]) == 1 and len(status["canary"]["old"]) == 3
    assert refused.returncode == 2 and "docker-swap promote app" in refused.stderr
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert failed(results) == 0, describe(results)
    assert versions(stack.url(), 30) == {"v2": 30}
    assert len(stack.containers("app")) == 3
    history = stack.swap_json("history", "app")["releases"]
    assert [(r["kind"], r["outcome"]) for r in history[:2]] == [
        ("promote", "deployed"), ("deploy", "canary")]
    assert stack.swap_json("status", "app")["services"][0]["canary"] is None


def test_haproxy_canary_is_sticky_counts_both_sides_then_aborts_under_load(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(replicas(haproxy_compose(), 2), STICKY_CFG, **FAST)

    with Load(stack.url(), MIXED, LOAD_SECONDS) as load:
        time.sleep(1)
        started = stack.swap("deploy", "app", "--canary", "20%", "--sticky",
                             env={"APP_VERSION": "v2"})
        assert started.returncode == 0, started.stdout + started.stderr
        seen = versions(stack.url(), SAMPLE)
        cookie = cookie_of(stack.url(), "v2")
        stuck = versions(stack.url(), 50, cookie=cookie)
        status = stack.swap_json("status", "app")["services"][0]
        aborted = stack.swap("abort", "app")
        results = load.results()

    assert abs(share(seen, "v2") - 0.20) < 0.03, seen
    assert stuck == {"v2": 50}, "a client with the canary's cookie stays on it"
    canary = status["canary"]
    assert canary["weighed"] == pytest.approx(0.2)
    assert canary["answers"][1] > 0 and canary["answers"][3] > 0, canary  # both sides counted
    assert canary["error_rates"] == {"canary": 0.0, "old": 0.0}
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert failed(results) == 0, describe(results)
    assert versions(stack.url(), 30) == {"v1": 30}
    assert len(stack.containers("app")) == 2
    last = stack.swap_json("history", "app")["releases"][0]
    assert (last["kind"], last["outcome"]) == ("abort", "rolled_back")


def test_caddy_canary_takes_its_slots_then_promotes_under_load(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(caddy_compose(), CADDYFILE, **FAST)  # 4 slots: shares of 25%

    with Load(stack.url(), MIXED, LOAD_SECONDS) as load:
        time.sleep(1)
        started = stack.swap("deploy", "app", "--canary", "25%", env={"APP_VERSION": "v2"})
        assert started.returncode == 0, started.stdout + started.stderr
        seen = versions(stack.url(), SAMPLE)
        promoted = stack.swap("promote", "app", env={"APP_VERSION": "v2"})
        results = load.results()

    assert "(1 of 4 slots)" in started.stdout
    assert abs(share(seen, "v2") - 0.25) < 0.05, seen  # Caddy picks a slot at random
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert failed(results) == 0, describe(results)
    assert versions(stack.url(), 30) == {"v2": 30}


@pytest.fixture
def registry(make_stack: StackFactory, tmp_path: Path) -> Iterator[tuple[Stack, Agents]]:
    stack = make_stack(registry_compose(), sync=False, **FAST)
    stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
    agents = Agents(stack, tmp_path)
    agents.start_both_and_sync()
    yield stack, agents
    agents.stop_all()


def test_registry_agents_weigh_the_canary_on_both_proxies_then_abort_under_load(
    registry: tuple[Stack, Agents],
) -> None:
    stack, _ = registry
    with Load(stack.url("proxy"), MIXED, LOAD_SECONDS) as on_nginx, \
            Load(stack.url("haproxy"), MIXED, LOAD_SECONDS) as on_haproxy:
        time.sleep(1)
        started = stack.swap("deploy", "app", "--canary", "30%", env={"APP_VERSION": "v2"})
        assert started.returncode == 0, started.stdout + started.stderr
        by_proxy = {proxy: versions(stack.url(proxy), SAMPLE // 2)
                    for proxy in ("proxy", "haproxy")}
        aborted = stack.swap("abort", "app")
        results = [*on_nginx.results(), *on_haproxy.results()]

    for proxy, seen in by_proxy.items():
        assert abs(share(seen, "v2") - 0.30) < 0.04, (proxy, seen)
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert failed(results) == 0, describe(results)
    assert versions(stack.url("haproxy"), 20) == {"v1": 20}


def test_canary_for_aborts_a_canary_that_answers_5xx_and_promotes_a_clean_one(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(haproxy_compose(), HAPROXY_CFG, **FAST)
    with Background(stack.url()):  # answers for HAProxy to count
        bad = stack.swap("deploy", "app", "--canary", "50%", "--canary-for", "20s",
                         "--max-error-rate", "5%", env={"APP_VERSION": "v2", "ERRORS": "1"})
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "aborted" in bad.stdout and "5xx" in bad.stdout
    assert versions(stack.url(), 20) == {"v1": 20}
    assert len(stack.containers("app")) == 1

    good = stack.swap("deploy", "app", "--canary", "50%", "--canary-for", "2s", "--json",
                      env={"APP_VERSION": "v3"})
    assert good.returncode == 0, good.stdout + good.stderr
    decided = json.loads(good.stdout)
    assert decided["started"]["canary"]["share"] == "50%"
    assert [d["outcome"] for d in decided["decisions"]] == ["promoted"]
    assert versions(stack.url(), 20) == {"v3": 20}


def test_up_starts_a_canary_and_recover_keeps_one_killed_after_its_switch(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(replicas(http_compose(), 2), **FAST)
    killed = stack.swap("up", "app", "--canary", "1", env={
        "APP_VERSION": "v2", "DOCKER_SWAP_FAILPOINTS": "after-switch=crash"})
    assert killed.returncode == 3, killed.stdout + killed.stderr
    recovered = stack.swap("recover", "app")
    assert recovered.returncode == 0 and recovered.stdout.startswith("finished"), \
        recovered.stdout + recovered.stderr
    canary = stack.swap_json("status", "app")["services"][0]["canary"]
    assert canary is not None and canary["share"] == "1", canary
    assert abs(share(versions(stack.url(), 300), "v2") - 1 / 3) < 0.05

    assert stack.swap("abort", "app").returncode == 0
    assert versions(stack.url(), 20) == {"v1": 20}
    assert len(stack.containers("app")) == 2
