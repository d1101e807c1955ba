"""What a deploy has done so far, on disk, and the lock that keeps deploys of a service apart.

The journal is rewritten (atomically) at every phase, so that a deploy killed at any point
leaves enough behind for `docker-swap recover` to undo it or finish it. The lock is an
advisory `flock`: the kernel releases it when its holder dies, so it cannot go stale.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .errors import DeployInProgress

STATE_DIR_ENV = "DOCKER_SWAP_STATE_DIR"

STARTING = "starting"
"""`docker compose up` runs; new containers may exist that the journal does not name yet."""
STARTED = "started"
"""New containers exist; nothing routes to them."""
SWITCHING = "switching"
"""The proxy is being changed: it may send to the old or the new containers."""
SWITCHED = "switched"
"""The proxy sends every new request to the new containers; the old ones drain and retire."""


@dataclass(frozen=True)
class Entry:
    project: str
    service: str
    phase: str
    old: list[str]
    new: list[str] = field(default_factory=list)
    staying: list[str] = field(default_factory=list)
    """Containers that served beside `old` and keep serving whatever happens (`up`'s batches)."""
    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def at(self, phase: str, **changes: object) -> Entry:
        return replace(self, phase=phase, **changes)  # type: ignore[arg-type]


def state_dir() -> Path:
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "docker-swap"


class Journal:
    """One service's journal and lock, under the state directory, per engine."""

    def __init__(
        self, engine_id: str, project: str, service: str, root: Path | None = None
    ) -> None:
        folder = (root or state_dir()) / _safe(engine_id) / _safe(project)
        self.path = folder / f"{_safe(service)}.json"
        self._lock_path = folder / f"{_safe(service)}.lock"
        self._lock_file: IO[str] | None = None

    def read(self) -> Entry | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return Entry(**{k: v for k, v in data.items() if k in Entry.__dataclass_fields__})

    def write(self, entry: Entry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as out:
            json.dump(asdict(entry), out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def lock(self) -> None:
        """Take the service's deploy lock or raise DeployInProgress naming its holder."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DeployInProgress(
                f"another deploy of this service is in progress ({holder}).",
                hint="Wait for it to finish; its lock is released when it exits.",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
        handle.flush()
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the flock
            self._lock_file = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "_"
