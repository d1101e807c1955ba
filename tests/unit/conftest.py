"""Unit tests keep every state folder (journal copies) in their own temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_swap.safety.journal import STATE_DIR_ENV


@pytest.fixture(autouse=True)
def state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
