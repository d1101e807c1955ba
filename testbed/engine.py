"""Whether the tests have an engine: without one they skip, saying why; with
DOCKER_SWAP_REQUIRE_ENGINE=1 (scripts/test, CI) they fail instead."""

from __future__ import annotations

import os
import subprocess

import pytest


def require_engine() -> None:
    answered = subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    if not answered:
        reason = "no Docker engine answers: run scripts/prepare-machine (or scripts/test)"
        if os.environ.get("DOCKER_SWAP_REQUIRE_ENGINE"):
            pytest.fail(reason)
        pytest.skip(reason)
