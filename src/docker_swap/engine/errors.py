"""The Docker SDK's errors, translated where they arise: at the edge of the two adapters that
use the SDK (engine.py, swarm.py), into EngineFailed with one sentence."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions

from docker_swap.errors import EngineFailed, first_line

API_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Raise EngineFailed ("could not ACTION: why") for an SDK error inside."""
    try:
        yield
    except API_ERRORS as exc:
        raise EngineFailed(f"could not {action}: {reason(exc)}") from exc


def reason(exc: BaseException) -> str:
    """The engine's own explanation, else the error's first line."""
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return first_line(exc)
