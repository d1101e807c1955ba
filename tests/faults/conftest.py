"""The fault-injection suite runs against the real engine, as tests/integration does (the same
`engine` fixture: a missing engine skips, or fails with DOCKER_SWAP_REQUIRE_ENGINE=1).

One stack per proxy set-up is shared by that set-up's cases (the table keeps them together);
each case brings it back to health first, or builds a new one when a case left a mess.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import engine

from .bench import Bench
from .cases import Proxy

__all__ = ["engine"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "faults" in item.path.parts and item.path.name == "test_faults.py":
            item.add_marker(pytest.mark.integration)


class Benches:
    """The bench of the proxy set-up a case needs; the previous one is torn down."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.current: Bench | None = None

    def get(self, proxy: Proxy) -> Bench:
        if self.current is None or self.current.proxy != proxy:
            self.close()
            self.current = Bench(proxy, self.root)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.teardown()
            self.current = None


@pytest.fixture(scope="module")  # torn down once the cases ran: the rest of the suite runs quiet
def benches(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Benches]:
    made = Benches(tmp_path_factory.mktemp("faults"))
    yield made
    made.close()
