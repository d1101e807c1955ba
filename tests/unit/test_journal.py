from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from docker_swap.errors import DeployInProgress
from docker_swap.journal import STARTED, Entry, Journal


def test_entries_survive_a_round_trip(tmp_path: Path) -> None:
    journal = Journal("engine/1", "demo", "app", root=tmp_path)
    entry = Entry("demo", "app", STARTED, old=["a"], new=["b"])
    journal.write(entry)
    assert journal.read() == entry
    journal.clear()
    assert journal.read() is None


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from docker_swap.journal import Journal; "
         f"journal = Journal('e', 'demo', 'app', root=Path({str(tmp_path)!r})); journal.lock(); "
         "print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(DeployInProgress, match=rf"\(pid {holder.pid} since "):
            Journal("e", "demo", "app", root=tmp_path).lock()
    finally:
        holder.kill()
        holder.communicate()
    journal = Journal("e", "demo", "app", root=tmp_path)
    journal.lock()  # the kernel released the dead holder's lock
    journal.unlock()
