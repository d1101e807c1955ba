from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docker_swap.errors import DeployInProgress, SwapError
from docker_swap.safety import lock as lock_module
from docker_swap.safety.journal import Journal
from docker_swap.safety.lock import (
    HEARTBEAT_FILE,
    LABEL_FOR,
    LABEL_KIND,
    LABEL_PROJECT,
    LOCK_TTL,
    EngineLock,
    Holder,
    this_process,
)
from tests.fakes import FakeEngine

LOCK = "docker-swap-lock.demo.app"


def held_by(engine: FakeEngine, holder: Holder) -> str:
    """A lock marker left by `holder`, as its machine would have created it."""
    labels = {LABEL_FOR: "demo/app", LABEL_PROJECT: "demo", LABEL_KIND: "lock", **holder.labels()}
    marker_id = engine.create_marker(LOCK, "sha256:app", labels)
    assert marker_id is not None
    return marker_id


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


ELSEWHERE = Holder("ci", "build-7", 4242, host_key="another-boot/pid:[1]")


def test_the_lock_names_its_holder_and_keeps_a_second_deploy_out() -> None:
    engine = FakeEngine()
    EngineLock(engine, "demo", "app").acquire("sha256:app")
    with pytest.raises(DeployInProgress) as refused:
        EngineLock(engine, "demo", "app").acquire("sha256:app")
    me = this_process()
    assert f"in progress (pid {os.getpid()} of {me.user}@{me.host}, since " in refused.value.message
    assert "released when it exits" in (refused.value.hint or "")


def test_release_removes_the_marker_and_lets_the_next_deploy_in() -> None:
    engine = FakeEngine()
    first = EngineLock(engine, "demo", "app")
    first.acquire("sha256:app")
    first.release()
    assert engine.marked == {}
    assert EngineLock(engine, "demo", "app").acquire("sha256:app") == []


def test_a_holder_on_this_machine_that_died_is_taken_over_at_once() -> None:
    engine = FakeEngine()
    me = this_process()
    gone = Holder(me.user, me.host, dead_pid(), me.host_key, "1")
    stale = held_by(engine, gone)

    notes = EngineLock(engine, "demo", "app").acquire("sha256:app")

    assert notes == [f"took over the deploy lock of {gone} (it no longer runs)."]
    assert stale not in engine.marked
    assert [m.name for m in engine.marked.values()] == [LOCK]


def test_a_reused_pid_is_not_the_holder() -> None:
    engine = FakeEngine()
    me = this_process()
    held_by(engine, Holder(me.user, me.host, os.getpid(), me.host_key, "not-my-start"))
    assert EngineLock(engine, "demo", "app").acquire("sha256:app") != []


def test_another_machine_holds_the_lock_while_its_heartbeat_is_fresh() -> None:
    engine = FakeEngine()
    held_by(engine, ELSEWHERE)
    engine.now += LOCK_TTL - 1
    with pytest.raises(DeployInProgress, match=r"\(pid 4242 of ci@build-7, since ") as refused:
        EngineLock(engine, "demo", "app").acquire("sha256:app")
    assert "taken over 30 s after its last heartbeat (in about 1 s)" in (refused.value.hint or "")


def test_another_machine_whose_heartbeat_stopped_is_taken_over_with_a_note() -> None:
    engine = FakeEngine()
    marker_id = held_by(engine, ELSEWHERE)
    engine.now += 20
    engine.write_marker_file(marker_id, HEARTBEAT_FILE,
                             json.dumps({"at": engine.now}).encode())
    engine.now += LOCK_TTL - 1
    with pytest.raises(DeployInProgress):  # renewed 29 s ago, though created 49 s ago
        EngineLock(engine, "demo", "app").acquire("sha256:app")

    engine.now += 2
    notes = EngineLock(engine, "demo", "app").acquire("sha256:app")
    assert notes == ["took over the deploy lock of pid 4242 of ci@build-7 "
                     "(its last heartbeat was 31 s ago)."]


@pytest.mark.parametrize("heartbeat", [b"not json", b'{"at": "soon"}', b"[1]", b'{"at": NaN}'])
def test_an_unreadable_heartbeat_counts_as_none(heartbeat: bytes) -> None:
    engine = FakeEngine()
    marker_id = held_by(engine, ELSEWHERE)
    engine.write_marker_file(marker_id, HEARTBEAT_FILE, heartbeat)
    engine.now += LOCK_TTL + 1
    assert EngineLock(engine, "demo", "app").acquire("sha256:app") != []


def test_a_takeover_lost_to_another_machine_tries_again(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    held_by(engine, ELSEWHERE)
    engine.now += LOCK_TTL + 1
    real_remove = engine.remove_marker

    def raced(marker_id: str) -> bool:  # another machine removed it, then took the name
        real_remove(marker_id)
        held_by(engine, Holder("eve", "build-8", 7, host_key="third-boot/pid:[1]"))
        engine.now -= LOCK_TTL + 1
        return False

    monkeypatch.setattr(engine, "remove_marker", raced)
    with pytest.raises(DeployInProgress, match="pid 7 of eve@build-8"):
        EngineLock(engine, "demo", "app").acquire("sha256:app")


def test_the_heartbeat_renews_on_the_engine_clock_and_sees_a_lost_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lock_module, "HEARTBEAT_SECONDS", 0.01)
    engine = FakeEngine()
    lock = EngineLock(engine, "demo", "app")
    lock.acquire("sha256:app")
    (marker_id,) = engine.marked
    deadline = time.monotonic() + 5
    while (marker_id, "/" + HEARTBEAT_FILE) not in engine.marker_files:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stamp = json.loads(engine.marker_files[marker_id, "/" + HEARTBEAT_FILE])
    assert stamp == {"at": engine.now}

    engine.remove_marker(marker_id)  # taken over elsewhere: another holder made it again
    engine.create_marker("docker-swap-lock.demo.app", "sha256:app", {"docker-swap.for": "x"})
    while not lock.lost:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    lock.release()


def test_a_lock_that_housekeeping_removed_is_made_again_and_still_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lock_module, "HEARTBEAT_SECONDS", 0.01)
    engine = FakeEngine()
    lock = EngineLock(engine, "demo", "app")
    lock.acquire("sha256:app")
    (marker_id,) = engine.marked
    engine.remove_marker(marker_id)  # `docker container prune`: a marker never runs
    deadline = time.monotonic() + 5
    while not engine.marked:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (again,) = engine.marked.values()
    assert again.name == "docker-swap-lock.demo.app" and not lock.lost
    assert again.labels["docker-swap.holder.pid"] == str(os.getpid())
    lock.release()
    assert not engine.marked


def test_release_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    lock = EngineLock(engine, "demo", "app")
    lock.acquire("sha256:app")

    def failing(marker_id: str) -> bool:
        raise SwapError("engine gone")

    monkeypatch.setattr(engine, "remove_marker", failing)
    lock.release()


def test_the_journal_passes_the_takeover_note_on(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add("app", 1)
    held_by(engine, ELSEWHERE)
    engine.now += LOCK_TTL + 5
    journal = Journal(engine, "demo", "app", root=tmp_path)
    journal.lock()
    assert journal.notes == ["took over the deploy lock of pid 4242 of ci@build-7 "
                             "(its last heartbeat was 35 s ago)."]
    journal.unlock()
