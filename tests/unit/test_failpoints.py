"""The failpoints the fault suites pause deploys at (safety/failpoints.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from docker_swap.safety import failpoints
from docker_swap.safety.failpoints import DIR_ENV, POINTS_ENV, failpoint


def test_a_pause_acts_on_its_pass_waits_for_its_release_then_says_it_went_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POINTS_ENV, "drain#2=pause")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setattr(failpoints, "_passed", {})
    failpoint("drain")  # the first pass goes on at once
    assert list(tmp_path.iterdir()) == []
    paused = threading.Thread(target=failpoint, args=("drain",))
    paused.start()
    deadline = time.monotonic() + 5
    while not (tmp_path / "drain.reached").exists():
        assert time.monotonic() < deadline, "the second pass did not pause"
        time.sleep(0.01)
    time.sleep(0.1)
    assert paused.is_alive() and not (tmp_path / "drain.left").exists()
    (tmp_path / "drain.release").touch()
    paused.join(5)
    assert not paused.is_alive() and (tmp_path / "drain.left").exists()
