"""The deploy lock of one service, held on the engine itself, so that every machine and every
user that deploys to that engine sees it.

The lock is a *marker*: a container that is created and never started, named
`docker-swap-lock.PROJECT.SERVICE`. Why a container:

- **Atomic.** The engine makes container names unique: of two machines that create the same
  name at once, one gets it and the other a conflict (HTTP 409). Volumes are no lock (creating
  an existing volume succeeds), networks neither (their names need not be unique).
- **Seen by everyone who can deploy.** Whoever can run `docker compose up` on the engine can
  list, create and remove containers there; nothing else (a shared folder, Redis) is needed.
- **Left alone by compose.** It carries docker-swap's labels and none of compose's, so
  `docker compose up`, `down --remove-orphans` and `ps` ignore it. It is made from the service's
  own image (surely present; the image's volumes are covered by tmpfs so none is created), has
  no network, and an entrypoint that does not exist: started by mistake, it exits at once.
- **Cheap.** Creating or removing one takes a few milliseconds; it costs nothing while it sits.

Its labels name the holder (`pid N of user@host`). The holder stamps a heartbeat file in it
every HEARTBEAT_SECONDS from a daemon thread, on the *engine's* clock (`Engine.clock`), so
machines whose clocks disagree still agree on its age. A lock is stale, and taken over with a
note, when:

- its holder ran on this very machine (same kernel boot and pid namespace) and that process no
  longer runs (its pid is gone from /proc, or is another process's now): known at once;
- or its last heartbeat is older than LOCK_TTL seconds: its machine stopped, or lost the engine.

A takeover removes the stale marker by ID (not by name: of two machines taking over at once,
one removes it and the other finds it gone and tries again) and creates a new one. The lock
holds no other state: the journal lives in records of its own (volumes, journal.py), which a
takeover never touches, so no deploy record can be lost between the removal and the creation.

A holder whose heartbeat finds its marker gone (taken over after LOCK_TTL without heartbeats,
say the engine was unreachable) knows it lost the lock: `lost` turns True, and the journal
refuses to write for it from then on.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from docker_swap import labels
from docker_swap.errors import DeployInProgress, SwapError
from docker_swap.models import Marker

log = logging.getLogger(__name__)

LOCK_TTL = 30.0
"""Seconds without a heartbeat after which another machine takes the lock over."""
HEARTBEAT_SECONDS = 5.0
"""How often the holder renews its heartbeat."""
HEARTBEAT_FILE = "docker-swap-heartbeat.json"

LABEL_FOR = labels.FOR
"""PROJECT/SERVICE: which service a marker belongs to (lock and journal alike)."""
LABEL_PROJECT = labels.PROJECT
LABEL_KIND = labels.KIND
"""`lock` or `journal`."""
_HOLDER = labels.HOLDER
_ATTEMPTS = 3


class LockEngine(Protocol):
    """What the lock needs from the engine (Engine provides it)."""

    def clock(self) -> float: ...

    def create_marker(self, name: str, image: str, labels: Mapping[str, str]) -> str | None: ...

    def markers(self, labels: Mapping[str, str]) -> list[Marker]: ...

    def remove_marker(self, marker_id: str) -> bool: ...

    def write_marker_file(self, marker_id: str, name: str, content: bytes) -> bool: ...

    def read_file(self, container_id: str, path: str) -> bytes | None: ...


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: a process on a machine."""

    user: str
    host: str
    pid: int
    host_key: str = ""
    """This kernel boot and pid namespace: equal keys mean `pid` can be looked up here."""
    pid_start: str = ""
    """When the process started (kernel ticks since boot), so that a reused pid is not it."""

    def labels(self) -> dict[str, str]:
        return {_HOLDER + "user": self.user, _HOLDER + "host": self.host,
                _HOLDER + "pid": str(self.pid), _HOLDER + "host-key": self.host_key,
                _HOLDER + "pid-start": self.pid_start}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Holder:
        pid = labels.get(_HOLDER + "pid", "")
        return cls(labels.get(_HOLDER + "user", "?"), labels.get(_HOLDER + "host", "?"),
                   int(pid) if pid.isdecimal() and len(pid) < 10 else 0,
                   labels.get(_HOLDER + "host-key", ""), labels.get(_HOLDER + "pid-start", ""))

    def __str__(self) -> str:
        return f"pid {self.pid} of {self.user}@{self.host}"


def this_process() -> Holder:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        user = str(os.getuid())
    return Holder(user, socket.gethostname(), os.getpid(), _host_key(),
                  _process_start(os.getpid()) or "")


def marker_name(kind: str, project: str, service: str) -> str:
    return f"docker-swap-{kind}.{project}.{service}"


class EngineLock:
    """The deploy lock of one service, as a marker on the engine."""

    def __init__(self, engine: LockEngine, project: str, service: str) -> None:
        self._engine = engine
        self.name = marker_name("lock", project, service)
        self._labels = {LABEL_FOR: f"{project}/{service}", LABEL_PROJECT: project,
                        LABEL_KIND: "lock"}
        self._held: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._made_as: tuple[str, dict[str, str]] = ("", {})
        """The image and labels the marker was made with: to make it again when housekeeping
        (`docker container prune`, `docker system prune`) removed it under us."""

    @property
    def lost(self) -> bool:
        """The marker was removed or taken over while this process held it."""
        return self._lost.is_set()

    def acquire(self, image: str) -> list[str]:
        """Take the lock (made from `image`), or raise DeployInProgress naming its holder.
        Returns notes for the user (a stale lock taken over)."""
        me = this_process()
        notes: list[str] = []
        for _ in range(_ATTEMPTS):
            self._made_as = (image, {**self._labels, **me.labels()})
            marker_id = self._engine.create_marker(self.name, *self._made_as)
            if marker_id is not None:
                self._start(marker_id)
                return notes
            current = self._current()
            if current is None:
                continue  # released while we looked
            holder = Holder.from_labels(current.labels)
            reason = self._stale(current, holder, me)
            if reason is None:
                raise _in_progress(holder, current, self._last_beat(current), self._engine)
            if self._engine.remove_marker(current.id):
                notes.append(f"took over the deploy lock of {holder} ({reason}).")
        raise DeployInProgress(
            f"the deploy lock {self.name} changed hands {_ATTEMPTS} times while docker-swap "
            "tried to take it.",
            hint="Another deploy of this service is starting; wait for it to finish.",
        )

    def release(self) -> None:
        """Give the lock up (removing its marker). Never raises: a marker left behind is
        stale at once for this machine, and after LOCK_TTL for the others."""
        self._stop.set()
        held, self._held = self._held, None
        if held is None:
            return
        try:
            self._engine.remove_marker(held)
        except SwapError as exc:
            log.warning("could not remove the deploy lock %s: %s", self.name, exc.message)

    def _start(self, marker_id: str) -> None:
        self._held = marker_id
        self._stop.clear()
        self._lost.clear()
        threading.Thread(target=self._beat, args=(marker_id,), daemon=True,
                         name="docker-swap-heartbeat").start()

    def _beat(self, marker_id: str) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            stamp = json.dumps({"at": self._engine.clock()}).encode()
            try:
                kept = self._engine.write_marker_file(marker_id, HEARTBEAT_FILE, stamp)
                if not kept and not self._stop.is_set():
                    marker_id = self._again()
            except SwapError as exc:  # the engine did not answer: try again at the next beat
                log.debug("heartbeat of %s: %s", self.name, exc.message)
                continue
            if not marker_id:
                log.warning("the deploy lock %s was taken over", self.name)
                self._lost.set()
                return

    def _again(self) -> str:
        """The marker is gone: a prune removed it (a marker never runs, so prunes count it
        as a stopped container), or another machine took the lock over. Made again under
        the same name, it is ours still; if another holder has that name, it is lost ("")."""
        made = self._engine.create_marker(self.name, *self._made_as)
        if made is None:
            return ""
        log.warning("the deploy lock %s was removed (docker container prune?); it is held "
                    "again", self.name)
        self._held = made
        return made

    def _current(self) -> Marker | None:
        found = self._engine.markers(self._labels)
        return next((m for m in found if m.name == self.name), found[0] if found else None)

    def _stale(self, marker: Marker, holder: Holder, me: Holder) -> str | None:
        """Why the lock is stale, or None when its holder still holds it."""
        if holder.host_key and holder.host_key == me.host_key:
            return None if _runs(holder) else "it no longer runs"
        age = self._engine.clock() - self._last_beat(marker)
        return f"its last heartbeat was {age:.0f} s ago" if age > LOCK_TTL else None

    def _last_beat(self, marker: Marker) -> float:
        """When the holder last showed it was alive (the creation counts as the first beat)."""
        try:
            data = json.loads(self._engine.read_file(marker.id, "/" + HEARTBEAT_FILE) or b"{}")
            at = float(data["at"]) if isinstance(data, dict) and "at" in data else 0.0
        except (ValueError, TypeError, SwapError):
            at = 0.0
        return max(marker.created, at if math.isfinite(at) else 0.0)


def _in_progress(holder: Holder, marker: Marker, last_beat: float,
                 engine: LockEngine) -> DeployInProgress:
    since = datetime.fromtimestamp(marker.created, UTC).strftime("%H:%M:%S UTC")
    if holder.host_key and holder.host_key == this_process().host_key:
        hint = "Wait for it to finish; its lock is released when it exits."
    else:
        left = max(0.0, LOCK_TTL - (engine.clock() - last_beat))
        hint = ("Wait for it to finish. If that machine stopped, the lock is taken over "
                f"{LOCK_TTL:g} s after its last heartbeat (in about {left:.0f} s).")
    return DeployInProgress(
        f"another deploy of this service is in progress ({holder}, since {since}).", hint=hint
    )


def _host_key() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""  # not Linux: other holders are judged by their heartbeat only
    return f"{boot}/{namespace}"


def _process_start(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""  # it runs, but is not ours to read
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _runs(holder: Holder) -> bool:
    started = _process_start(holder.pid) if holder.pid > 0 else None
    if started is None:
        return False
    return not (holder.pid_start and started and started != holder.pid_start)
