from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from docker_swap.errors import EngineFailed, StateUnusable
from docker_swap.safety.journal import STARTED, SWITCHED, Entry, Journal, safe_name, write_private
from docker_swap.safety.lock import LABEL_KIND
from tests.fakes import FakeEngine


def journals(engine: FakeEngine) -> list[str]:
    return sorted(m.name for m in engine.recorded.values() if m.labels[LABEL_KIND] == "journal")


@pytest.fixture
def engine() -> FakeEngine:
    engine = FakeEngine()
    engine.add("app", 1)
    return engine


def test_entries_survive_a_round_trip(engine: FakeEngine, tmp_path: Path) -> None:
    journal = Journal(engine, "demo", "app", root=tmp_path)
    entry = Entry("demo", "app", STARTED, old=["a"], new=["b"])
    journal.write(entry)
    assert journal.read() == entry
    journal.clear()
    assert journal.read() is None
    assert journals(engine) == []


def test_the_engine_holds_the_journal_for_every_state_folder(
    engine: FakeEngine, tmp_path: Path
) -> None:
    mine = Journal(engine, "demo", "app", root=tmp_path / "alice")
    mine.write(Entry("demo", "app", STARTED, old=["a"], new=["b"]))
    mine.write(Entry("demo", "app", SWITCHED, old=["a"], new=["b"]))

    mine._drain()  # the previous record is removed off the deploy's path
    theirs = Journal(engine, "demo", "app", root=tmp_path / "bob")
    entry = theirs.read()
    assert entry is not None and entry.phase == SWITCHED
    # One marker per write, the previous one removed: one journal at a time.
    assert journals(engine) == ["docker-swap-journal.demo.app.2"]
    theirs.clear()
    assert mine.read() is None


def test_a_corrupt_journal_is_refused_with_its_name_and_the_fix(
    engine: FakeEngine, tmp_path: Path
) -> None:
    journal = Journal(engine, "demo", "app", root=tmp_path)
    journal.write(Entry("demo", "app", STARTED, old=["a"]))
    record = next(iter(engine.recorded.values()))
    record.labels["docker-swap.entry"] = '{"phase": "started", '  # type: ignore[index]

    with pytest.raises(StateUnusable) as refused:
        Journal(engine, "demo", "app", root=tmp_path).read()
    assert "docker-swap-journal.demo.app.1" in refused.value.message
    assert refused.value.message.endswith(".")
    assert refused.value.hint is not None
    assert "docker volume rm docker-swap-journal.demo.app.1" in refused.value.hint


def test_a_corrupt_local_copy_changes_nothing(engine: FakeEngine, tmp_path: Path) -> None:
    journal = Journal(engine, "demo", "app", root=tmp_path)
    journal.path.parent.mkdir(parents=True)
    journal.path.write_text("{not json")
    assert journal.read() is None  # the engine's journal is the truth
    journal.write(Entry("demo", "app", STARTED, old=["a"]))
    assert json.loads(journal.path.read_text())["phase"] == STARTED


def test_an_unwritable_state_folder_is_refused_before_the_lock(
    engine: FakeEngine, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    journal = Journal(engine, "demo", "app", root=blocker / "state")
    with pytest.raises(StateUnusable, match="cannot be written") as refused:
        journal.lock()
    assert "DOCKER_SWAP_STATE_DIR" in (refused.value.hint or "")
    assert engine.marked == {}  # no lock was taken


def test_the_local_copy_is_private(engine: FakeEngine, tmp_path: Path) -> None:
    journal = Journal(engine, "demo", "app", root=tmp_path / "state")
    os.umask(0o022)
    journal.lock()
    journal.write(Entry("demo", "app", STARTED, old=["a"]))
    journal.unlock()
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    for folder in (tmp_path / "state", journal.path.parent, journal.path.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [p.name for p in journal.path.parent.iterdir()] == [journal.path.name]


def test_the_temporary_file_is_unique_and_no_link_is_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    path = tmp_path / "state" / "app.json"
    path.parent.mkdir()
    path.with_suffix(".tmp").symlink_to(target)  # the old fixed temporary name
    write_private(path, b"{}", tmp_path / "state")
    assert target.read_text() == "precious" and path.read_text() == "{}"

    path.unlink()
    path.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        write_private(path, b"{}", tmp_path / "state")
    assert target.read_text() == "precious"


def test_a_symlinked_folder_below_the_state_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "engine").symlink_to(tmp_path / "real")
    with pytest.raises(OSError, match="symbolic link"):
        write_private(tmp_path / "state" / "engine" / "app.json", b"{}", tmp_path / "state")
    assert list((tmp_path / "real").iterdir()) == []


def test_file_names_neither_collide_nor_climb() -> None:
    long = "x" * 120
    assert safe_name(long + "a") != safe_name(long + "b")
    assert ".." not in safe_name("..") and "/" not in safe_name("../../etc")
    assert safe_name("a/b") != safe_name("a_b")


def test_a_deploy_that_lost_its_lock_may_not_write(engine: FakeEngine, tmp_path: Path) -> None:
    journal = Journal(engine, "demo", "app", root=tmp_path)
    journal.lock()
    journal._lock._lost.set()  # what the heartbeat does when it finds the lock gone
    with pytest.raises(EngineFailed, match="removed or taken over"):
        journal.write(Entry("demo", "app", STARTED, old=["a"]))
    journal.unlock()


def test_a_second_writer_of_the_same_journal_is_stopped(
    engine: FakeEngine, tmp_path: Path
) -> None:
    first = Journal(engine, "demo", "app", root=tmp_path)
    second = Journal(engine, "demo", "app", root=tmp_path)
    assert first.read() is None and second.read() is None
    first.write(Entry("demo", "app", STARTED, old=["a"]))
    with pytest.raises(EngineFailed, match="another docker-swap wrote the journal"):
        second.write(Entry("demo", "app", STARTED, old=["b"]))
