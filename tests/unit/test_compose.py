"""The compose adapter's plumbing, with a stand-in `docker` script (compose's meaning is
tested against the real CLI in tests/integration)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from docker_swap.compose import Compose
from docker_swap.errors import ComposeUnavailable
from docker_swap.options import ComposeOptions

CONFIG = "name: demo\nservices:\n  app:\n    x-swap: {proxy: 'nginx:proxy'}\n"


def fake_docker(folder: Path, body: str) -> str:
    script = folder / "docker"
    script.write_text(f"#!/bin/sh\necho run >> {folder / 'calls'}\n{body}\n")
    script.chmod(0o755)
    return str(script)


def calls(folder: Path) -> int:
    path = folder / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_project_loaded_in_the_background_is_read_once(tmp_path: Path) -> None:
    compose = Compose(ComposeOptions(), docker=fake_docker(tmp_path, f"printf '{CONFIG}'"))
    with compose.loading_project():
        project = compose.load_project()
    assert project.name == "demo" and project.services["app"].x_swap["proxy"] == "nginx:proxy"
    assert calls(tmp_path) == 1


def test_a_background_load_never_taken_is_stopped(tmp_path: Path) -> None:
    compose = Compose(ComposeOptions(), docker=fake_docker(tmp_path, "exec sleep 30"))
    started = time.monotonic()
    with pytest.raises(RuntimeError), compose.loading_project():
        raise RuntimeError("the engine did not answer")
    assert time.monotonic() - started < 5
    # the next load asks compose again instead of waiting for the stopped one
    compose.docker = fake_docker(tmp_path, f"printf '{CONFIG}'")
    assert compose.load_project().name == "demo"


def test_a_failed_background_load_is_one_sentence(tmp_path: Path) -> None:
    body = 'case "$*" in *version*) echo 2.40.3; exit 0;; esac\necho "no such file" >&2; exit 1'
    compose = Compose(ComposeOptions(), docker=fake_docker(tmp_path, body))
    with pytest.raises(ComposeUnavailable, match="cannot load the project: no such file"), \
            compose.loading_project():
        compose.load_project()
