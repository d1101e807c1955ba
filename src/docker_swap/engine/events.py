"""One container's events (exit, health) followed in a thread: a wait wakes at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors

from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import translated as _translated

log = logging.getLogger(__name__)


class ContainerWatch:
    """Follows one container's events (exit, health) in a thread; wakes waiters at once."""

    def __init__(self, api: docker.APIClient, container_id: str) -> None:
        self.container_id = container_id
        self.changed = threading.Event()
        self.exit_code: int | None = None
        self.health: str | None = None
        self._api = api
        filters = {"container": container_id, "type": "container"}
        with _translated(f"follow the events of {container_id[:12]}"):
            self._stream = api.events(filters=filters, decode=True)
            # Seed from inspect: whatever happened before we subscribed sent no event to us.
            state = api.inspect_container(container_id)["State"]
        self._seed(state)
        self._thread = threading.Thread(target=self._follow, daemon=True, name="docker-swap-events")
        self._thread.start()

    @property
    def exited(self) -> bool:
        return self.exit_code is not None

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> ContainerWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _seed(self, state: Mapping[str, Any]) -> None:
        if state.get("Status") in ("exited", "dead"):
            self.exit_code = int(state.get("ExitCode", 0))
        self.health = (state.get("Health") or {}).get("Status")
        self.changed.set()

    def _follow(self) -> None:
        try:
            for event in self._stream:
                self._apply(event)
        except (*_API_ERRORS, OSError, ValueError, AttributeError):
            pass  # the stream was closed by close(), or the engine went away

    def _apply(self, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        if action == "die":
            attributes = event.get("Actor", {}).get("Attributes", {})
            self.exit_code = int(attributes.get("exitCode", 0))
        elif action.startswith("health_status:"):
            self.health = action.split(":", 1)[1].strip()
        else:
            return
        log.debug("container %s: %s", self.container_id[:12], action)
        self.changed.set()
