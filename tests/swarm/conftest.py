"""A real 3-node Docker Swarm on this machine (testbed/swarm.py), started once for these tests.

Node 1 is the manager; nodes 1 and 2 are labelled edge=true (the stacks of
testbed/swarm_stack.py put their proxies there). Every node has the app, HAProxy, the bookworm
base (Redis) and the agent image, built from this checkout. Without an engine these tests skip
with the reason; with DOCKER_SWAP_REQUIRE_ENGINE=1 (scripts/test, CI) they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.engine import require_engine
from testbed.swarm import Swarm
from testbed.swarm_stack import start_testbed


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "swarm" in item.path.parts:
            item.add_marker(pytest.mark.swarm)


@pytest.fixture(scope="session")
def swarm() -> Iterator[Swarm]:
    """Started, images loaded, nodes labelled; torn down (nodes, volumes, network) at the end."""
    require_engine()
    made = start_testbed(nodes=3)
    try:
        yield made
    finally:
        made.teardown()
