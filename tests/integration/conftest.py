"""Real parts only: a Docker engine, the compose v2 CLI, nginx 1.22 and 1.30, the test app.

Without an engine these tests skip with the reason; with DOCKER_SWAP_REQUIRE_ENGINE=1 (set by
scripts/test and CI) a missing engine fails them instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import images
from testbed.engine import require_engine
from testbed.stack import NGINX_HTTP, Stack

StackFactory = Callable[..., Stack]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def engine() -> None:
    require_engine()
    images.build_all()


@pytest.fixture
def make_stack(engine: None, tmp_path: Path) -> Iterator[StackFactory]:
    """Builds stacks that are brought up at once and torn down after the test, whatever happens."""
    made: list[Stack] = []

    def make(compose: dict[str, Any], proxy_config: str = NGINX_HTTP, *, sync: bool = True,
             **env: str) -> Stack:
        stack = Stack(tmp_path / f"stack{len(made)}", compose, proxy_config)
        stack.env = {"DOCKER_SWAP_STATE_DIR": str(tmp_path / "state"), **env}
        made.append(stack)
        stack.up()
        if sync:
            result = stack.swap("sync", "app")
            assert result.returncode == 0, result.stderr
        return stack

    yield make
    for stack in made:
        stack.down()
