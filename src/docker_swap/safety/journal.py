"""What a deploy has done so far, kept on the engine, and the lock that keeps deploys apart.

The journal is rewritten at every phase, so that a deploy killed at any point leaves enough
behind for `docker-swap recover` to undo it or finish it, from this machine or any other that
deploys to the same engine. Like the lock (lock.py), it lives on the engine: each entry is a
*record*, a volume that is never mounted, named `docker-swap-journal.PROJECT.SERVICE.N`, the
entry in its labels. A write creates record N+1 (one API call of about 2 ms, atomic: it exists
whole or not at all); record N is removed afterwards, off the deploy's path, since a reader
takes the highest N. Only the lock's holder writes, and a holder that lost its lock cannot:
record N+1 exists already with another writer's labels, or its heartbeat saw the lock gone.
Volumes rather than markers (containers) because a volume costs a fifth of a container to
create or remove; neither `docker compose down` (not compose's) nor `docker volume prune`
(named) removes them.

The engine's journal is the truth. A copy of each entry is also written, atomically, to the
state folder ($XDG_STATE_HOME/docker-swap, or DOCKER_SWAP_STATE_DIR), for people to read when
the engine's records were removed by hand; docker-swap never reads it back, so a copy that
another user's recover made stale, or a corrupt one, changes nothing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from docker_swap import labels
from docker_swap.errors import EngineFailed, StateUnusable, SwapError
from docker_swap.models import Container, Marker
from docker_swap.safety.lock import (
    LABEL_FOR,
    LABEL_KIND,
    LABEL_PROJECT,
    EngineLock,
    LockEngine,
    marker_name,
)

log = logging.getLogger(__name__)

STATE_DIR_ENV = "DOCKER_SWAP_STATE_DIR"
LABEL_SEQUENCE, LABEL_ENTRY, LABEL_WRITER = labels.SEQUENCE, labels.ENTRY, labels.WRITER
_DRAIN_SECONDS = 10.0

STARTING = "starting"
"""`docker compose up` runs; new containers may exist that the journal does not name yet."""
STARTED = "started"
"""New containers exist; nothing routes to them."""
SWITCHING = "switching"
"""The proxy is being changed: it may send to the old or the new containers."""
SWITCHED = "switched"
"""The proxy sends every new request to the new containers; the old ones drain and retire."""
UNDOING = "undoing"
"""A failure before the switch, or a new version that failed its watch window, is being
undone: the proxy goes back to the old containers (confirmed), then the new ones are removed.
`recover` undoes from here, whatever runs."""
PHASES = (STARTING, STARTED, SWITCHING, SWITCHED, UNDOING)


@dataclass(frozen=True)
class Entry:
    project: str
    service: str
    phase: str
    old: list[str]
    new: list[str] = field(default_factory=list)
    staying: list[str] = field(default_factory=list)
    """Containers that served beside `old` and keep serving whatever happens (`up`'s batches)."""
    leaving: list[str] = field(default_factory=list)
    """The previous batch's old containers: out of the proxy and drained, retired once this
    batch has started (`recover` retires them, whatever it does with this batch)."""
    kind: str = "deploy"
    """What the deploy is recorded as (deploy, up, rollback): `recover` records its ending."""
    batch: str = ""
    """Which batch of the service (`2/3`, `rollback 1/2`), for messages."""
    rollback_to: int | None = None
    """The release a rollback goes to."""
    forward: dict[str, object] | None = None
    back: dict[str, object] | None = None
    """The weights its switch forward and its switch back give a canary (rollout/weights.py's
    Split.data), when they are not all alike."""
    share: str = ""
    """A canary's start: the share it asked for (recover records it as a canary)."""
    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def at(self, phase: str, **changes: object) -> Entry:
        return replace(self, phase=phase, **changes)  # type: ignore[arg-type]


class JournalEngine(LockEngine, Protocol):
    """What the journal needs from the engine (Engine provides it)."""

    def engine_id(self) -> str: ...

    def service_containers(self, project: str, service: str) -> list[Container]: ...

    def create_record(self, name: str, labels: Mapping[str, str]) -> bool: ...

    def records(self, labels: Mapping[str, str]) -> list[Marker]: ...

    def remove_record(self, name: str) -> bool: ...


def state_dir() -> Path:
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "docker-swap"


class Journal:
    """One service's journal and deploy lock, on the engine (`engine`), with a local copy.

    `image` is what the markers are made from (the service's own image; found on the engine
    when not given). `root` replaces the state folder.
    """

    def __init__(
        self, engine: JournalEngine, project: str, service: str, *,
        image: str | None = None, root: Path | None = None,
    ) -> None:
        self._engine = engine
        self.project, self.service = project, service
        self._root = root or state_dir()
        self._folder = self._root / safe_name(engine.engine_id()) / safe_name(project)
        self.path = self._folder / f"{safe_name(service)}.json"
        """The local copy of the journal."""
        self._lock = EngineLock(engine, project, service)
        self._image = image
        self._labels = {LABEL_FOR: f"{project}/{service}", LABEL_KIND: "journal"}
        self._records: list[Marker] | None = None  # as last read or written
        self._writer = secrets.token_hex(8)
        self._pending: threading.Thread | None = None
        self.notes: list[str] = []
        """What taking the lock had to say (a stale lock taken over)."""

    def read(self) -> Entry | None:
        """The interrupted deploy's entry, None when no deploy of the service is unfinished.
        Raises StateUnusable when the engine holds an entry that cannot be read."""
        self._records = self._engine.records(self._labels)
        if not self._records:
            return None
        newest = max(self._records, key=_sequence)
        try:
            data = json.loads(newest.labels.get(LABEL_ENTRY, ""))
            return Entry(**{k: v for k, v in data.items() if k in Entry.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError) as exc:
            raise StateUnusable(
                f"the journal of {self.service} on the engine (volume {newest.name}) cannot be "
                f"read: {_first_line(exc)}.",
                hint=f"Check the containers of {self.service} (`docker ps -a`) and the proxy; "
                f"once they are as they should be, remove it with `docker volume rm "
                f"{newest.name}` (then `docker-swap sync {self.service}` points the proxy at "
                "what runs).",
            ) from None

    def write(self, entry: Entry) -> None:
        """Record `entry` on the engine (one new record; the previous one is removed off the
        deploy's path), then copy it to the state folder."""
        if self._lock.lost:
            raise EngineFailed(f"the deploy lock of {self.service} was removed or taken over "
                               "on the engine, so this deploy may no longer write its journal.")
        if self._records is None:
            self.read()
        previous = self._records or []
        sequence = max(map(_sequence, previous), default=0) + 1
        labels = {**self._labels, LABEL_PROJECT: self.project, LABEL_SEQUENCE: str(sequence),
                  LABEL_WRITER: self._writer,
                  LABEL_ENTRY: json.dumps(asdict(entry), separators=(",", ":"))}
        name = f"{marker_name('journal', self.project, self.service)}.{sequence}"
        if not self._engine.create_record(name, labels):
            raise EngineFailed(f"another docker-swap wrote the journal of {self.service} ({name} "
                               "exists): this deploy no longer holds its lock.")
        self._records = [Marker(name, name, labels, 0.0)]
        self._later(lambda: self._remove_records(previous))
        self._copy(json.dumps(asdict(entry), indent=2).encode())

    def clear(self) -> None:
        self._drain()
        for record in self._engine.records(self._labels):
            self._engine.remove_record(record.id)
        self._records = []
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove the journal copy %s: %s", self.path, exc)

    def lock(self) -> None:
        """Take the service's deploy lock on the engine or raise DeployInProgress naming its
        holder; StateUnusable when the state folder cannot be written."""
        self._check_folder()
        self.notes = self._lock.acquire(self._marker_image())

    def unlock(self) -> None:
        self._drain()
        self._lock.release()

    def _later(self, work: Callable[[], None]) -> None:
        """Run `work` in a daemon thread, after what was given before (so that an engine that
        hangs never holds the process at exit)."""
        previous = self._pending

        def run() -> None:
            if previous is not None:
                previous.join()
            try:
                work()
            except Exception as exc:  # tidying only: the record that counts is written
                log.warning("tidying the journal of %s failed: %s", self.service, exc)

        self._pending = threading.Thread(target=run, daemon=True, name="docker-swap-journal")
        self._pending.start()

    def _drain(self) -> None:
        """Wait (a bounded time) for what `_later` was given."""
        if self._pending is not None:
            self._pending.join(_DRAIN_SECONDS)
            self._pending = None

    def _remove_records(self, records: list[Marker]) -> None:
        try:
            for record in records:
                self._engine.remove_record(record.id)
        except SwapError as exc:  # a reader takes the newest record: an old one does no harm
            log.warning("could not remove an old journal record of %s: %s", self.service,
                        exc.message)

    def _marker_image(self) -> str:
        if self._image is None:
            self._image = self._find_image()
        return self._image

    def _find_image(self) -> str:
        """An image surely on the engine: the service's, else the one the journal is made of."""
        found = [c.image_id for c in self._engine.service_containers(self.project, self.service)]
        found += [m.image for m in self._engine.markers({LABEL_FOR: self._labels[LABEL_FOR],
                                                         LABEL_KIND: "lock"})]
        image = next((i for i in found if i), None)
        if image is None:
            raise StateUnusable(
                f"service {self.service} has no container, so docker-swap has no image to make "
                "its deploy lock from.",
                hint=f"Start it (`docker compose up -d {self.service}`), then try again.",
            )
        return image

    def _check_folder(self) -> None:
        try:
            private_folder(self._folder, self._root)
            probe, name = tempfile.mkstemp(dir=self._folder, prefix=".probe.")
            os.close(probe)
            os.unlink(name)
        except OSError as exc:
            raise StateUnusable(
                f"the state folder {self._folder} cannot be written "
                f"({exc.strerror or exc}).",
                hint=f"Set {STATE_DIR_ENV} to a folder you can write, or fix the permissions "
                f"of {self._root}.",
            ) from None

    def _copy(self, data: bytes) -> None:
        try:
            write_private(self.path, data, self._root)
        except OSError as exc:  # the engine holds the journal; the copy is for people
            log.warning("could not copy the journal to %s: %s", self.path, exc)


def write_private(path: Path, data: bytes, root: Path) -> None:
    """Replace `path` atomically: a unique temporary file beside it (0600), fsynced, renamed
    over it, then the folder fsynced. Refuses to write through a symbolic link."""
    private_folder(path.parent, root)
    if path.is_symlink():
        raise OSError(errno.ELOOP, f"{path} is a symbolic link")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def private_folder(folder: Path, root: Path) -> None:
    """Make `folder` and its parents up to `root` (included) as folders only their owner can
    enter (0700); refuse one below `root` that is a symbolic link."""
    chain = [folder, *folder.parents]
    mine = chain[: chain.index(root) + 1] if root in chain else [folder]
    root.parent.mkdir(parents=True, exist_ok=True)
    for level in reversed(mine):
        if level != root and level.is_symlink():
            raise OSError(errno.ELOOP, f"{level} is a symbolic link")
        try:
            level.mkdir(mode=0o700)
        except FileExistsError:
            if not level.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{level} is not a folder") from None
            continue
        level.chmod(0o700)  # whatever the umask left


def safe_name(name: str) -> str:
    """A file name for `name`: its letters, digits, '_' and '-' (no '.', so never '..'), cut
    to 40, and a short hash of the whole name, so that two names never share a file."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def _sequence(marker: Marker) -> int:
    text = marker.labels.get(LABEL_SEQUENCE, "")
    return int(text) if text.isdecimal() and len(text) < 10 else 0


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n")[0] or type(exc).__name__
