"""The Swarm test bed itself: three nodes, a stack over all of them, proxies on the edge nodes
that answer under load, a node lost and back."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testbed.load import KEEPALIVE_GETS, Load, Result
from testbed.swarm import Swarm, write_stack
from testbed.swarm_stack import (
    EDGE_LABEL,
    EDGE_NODES,
    IMAGES,
    REDIS_PASSWORD,
    REDIS_PORT,
    agent_compose,
    app_service,
    baseline_compose,
    get,
    proxy_url,
    wait_serving,
)

BASELINE = "baseline"


@pytest.fixture
def baseline(swarm: Swarm, tmp_path: Path) -> Iterator[str]:
    """The baseline stack deployed, its 6 app tasks and both proxies running; removed after."""
    swarm.stack_deploy(write_stack(baseline_compose(), tmp_path), BASELINE)
    try:
        yield BASELINE
    finally:
        swarm.stack_rm(BASELINE)


def test_three_nodes_run_with_the_images_and_edge_labels(swarm: Swarm) -> None:
    assert [n.hostname for n in swarm.nodes] == ["node-1", "node-2", "node-3"]
    assert swarm.manager_url == f"tcp://{swarm.nodes[0].ip}:2375"
    assert [n.number for n in swarm.labelled(*EDGE_LABEL)] == list(EDGE_NODES)
    assert swarm.load_images(*IMAGES) == {}  # every node has them already


def test_baseline_stack_spreads_over_the_nodes_and_serves_through_both_proxies(
    swarm: Swarm, baseline: str
) -> None:
    tasks = swarm.wait_tasks(app_service(baseline), 6)
    assert {t.node for t in tasks} == {"node-1", "node-2", "node-3"}
    proxies = swarm.wait_tasks(f"{baseline}_proxy", 2)
    assert sorted(t.node for t in proxies) == ["node-1", "node-2"]
    urls = [proxy_url(node.ip) for node in swarm.labelled(*EDGE_LABEL)]
    for url in urls:
        wait_serving(url, "v1")
        assert get(url) == (200, "v1")

    with ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(_load, urls))
    for result in results:
        assert result.requests > 1000, result.describe()
        assert result.failed == 0, result.describe()


def test_agent_stack_deploys_without_waiting_for_its_agents(swarm: Swarm, tmp_path: Path) -> None:
    stack = "shop"
    swarm.stack_deploy(write_stack(agent_compose(stack), tmp_path), stack)
    try:
        assert len(swarm.wait_tasks(app_service(stack), 6)) == 6
        assert sorted(t.node for t in swarm.wait_tasks(f"{stack}_proxy", 2)) == [
            "node-1", "node-2"]
        assert [t.node for t in swarm.wait_tasks(f"{stack}_redis", 1)] == ["node-1"]
        assert _redis_ping(swarm.manager.ip) == b"+OK\r\n+PONG\r\n"
        assert {t.node for t in swarm.tasks(f"{stack}_agent")} <= {"node-1", "node-2"}
    finally:
        swarm.stack_rm(stack)


def test_a_lost_node_comes_back_ready(swarm: Swarm) -> None:
    swarm.stop_node(3)
    swarm.wait_node_status(3, "down")
    swarm.start_node(3)
    assert swarm.node_status(3) == "ready"
    assert swarm.docker("info", "--format", "{{.Swarm.LocalNodeState}}",
                        node=3).stdout.strip() == "active"


def _load(url: str) -> Result:
    with Load(url, [KEEPALIVE_GETS], seconds=5) as load:
        (result,) = load.results()
    return result


def _redis_ping(ip: str) -> bytes:
    with socket.create_connection((ip, REDIS_PORT), timeout=5) as conn:
        conn.sendall(f"AUTH {REDIS_PASSWORD}\r\nPING\r\n".encode())
        answer = b""
        while answer.count(b"\r\n") < 2:
            answer += conn.recv(64)
        return answer
