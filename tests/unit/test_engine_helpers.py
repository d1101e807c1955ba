from __future__ import annotations

from datetime import UTC, datetime

import pytest

from docker_swap.engine.files import as_arguments as _as_arguments
from docker_swap.engine.parsing import epoch as _epoch


@pytest.mark.parametrize("text", [
    "2026-12-01T07:46:07.123456789Z", "2026-12-01T08:46:07.123456+01:00",
    " 2026-12-01T07:46:07.123456Z\n",
])
def test_the_engine_clock_is_read_to_the_microsecond(text: str) -> None:
    expected = datetime(2026, 12, 1, 7, 46, 7, 123456, tzinfo=UTC).timestamp()
    assert _epoch(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-12-01 07:46:07"])
def test_an_unreadable_engine_time_is_none(text: str) -> None:
    assert _epoch(text) is None


def test_only_small_text_files_travel_as_exec_arguments() -> None:
    assert _as_arguments({"app.conf": b"upstream app {}\n", "b.conf": "é".encode()})
    assert not _as_arguments({"app.conf": b"x" * 100_001})
    assert not _as_arguments({"state": b"a\0b"})
    assert not _as_arguments({"state": b"\xff\xfe"})
