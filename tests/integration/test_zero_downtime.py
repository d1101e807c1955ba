"""The claim: a swap under continuous load fails no request (real engine, compose, nginx)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from testbed.load import (
    CLOSING_GETS,
    KEEPALIVE_GETS,
    MIXED,
    POSTS,
    SLOW_GETS,
    Client,
    Load,
    Result,
)
from testbed.stack import NGINX_FASTCGI, Stack, fastcgi_compose, http_compose

from .conftest import StackFactory

LOAD_SECONDS = 14
SETTLE_SECONDS = 2.0  # load runs this long before the swap starts


def swap_under_load(
    stack: Stack, clients: Sequence[Client], version: str
) -> tuple[list[Result], float]:
    with Load(stack.url(), clients, LOAD_SECONDS) as load:
        time.sleep(SETTLE_SECONDS)
        started = time.monotonic()
        result = stack.swap("deploy", "app", env={"APP_VERSION": version})
        took = time.monotonic() - started
        assert result.returncode == 0, result.stdout + result.stderr
        assert SETTLE_SECONDS + took < LOAD_SECONDS - 1, "the swap must end while load runs"
        return load.results(), took


def describe(results: list[Result]) -> str:
    return "\n".join(r.describe() for r in results)


def test_swap_under_mixed_load_fails_no_request_with_nginx_1_30(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose("1.30"))
    stack.wait_serving("v1")

    results, _ = swap_under_load(stack, MIXED, "v2")

    assert sum(r.failed for r in results) == 0, describe(results)
    assert all(r.requests > 0 for r in results), describe(results)
    assert stack.get() == (200, "v2")


def test_consecutive_swaps_fail_no_request(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose("1.30"), LISTEN_DELAY="0.5", WARMUP="1")
    stack.wait_serving("v1")
    for version in ("v2", "v3", "v4"):
        results, _ = swap_under_load(stack, MIXED, version)
        assert sum(r.failed for r in results) == 0, f"{version}:\n{describe(results)}"
        assert stack.get() == (200, version)
    assert len(stack.containers("app")) == 1


def test_nginx_1_22_fails_only_the_documented_keepalive_resets(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose("1.22"))
    stack.wait_serving("v1")

    results, _ = swap_under_load(stack, (*MIXED, CLOSING_GETS), "v2")

    by_client = {r.client: r for r in results}
    assert by_client[CLOSING_GETS].failed == 0, describe(results)
    for client in (KEEPALIVE_GETS, SLOW_GETS, POSTS):
        result = by_client[client]
        assert result.non_2xx == 0 and result.connect == 0, describe(results)
        assert result.failed <= client.connections, describe(results)  # one reset per connection
    assert stack.get() == (200, "v2")


def test_deploy_says_once_that_nginx_1_22_resets_keepalive_connections(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(http_compose("1.22"), LISTEN_DELAY="0", WARMUP="0")

    report = stack.swap_json("deploy", "app", env={"APP_VERSION": "v2"})

    assert report["exit_code"] == 0
    assert [n for n in report["notes"] if "keep-alive" in n] == [report["notes"][0]]
    assert "1.22.1" in report["notes"][0]


@pytest.mark.parametrize("nginx", ["1.22", "1.30"])
def test_php_fpm_behind_fastcgi_pass_swaps_under_load(
    make_stack: StackFactory, nginx: str
) -> None:
    stack = make_stack(fastcgi_compose(nginx), NGINX_FASTCGI)
    stack.wait_serving("v1")
    slow = Client("slow GET (1 s), close", "/?seconds=1", 4, close=True)
    # nginx 1.22 resets busy keep-alive connections at a reload (tested above); here every
    # client closes its connections there, and keeps them alive on 1.30.
    clients = (CLOSING_GETS, slow) if nginx == "1.22" else (KEEPALIVE_GETS, slow, POSTS)

    results, _ = swap_under_load(stack, clients, "v2")

    assert sum(r.failed for r in results) == 0, describe(results)
    assert stack.get() == (200, "v2")
