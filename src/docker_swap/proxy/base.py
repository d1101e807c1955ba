"""The protocol every proxy driver implements, and what a drain reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from docker_swap.models import Backend, ExecResult, Process


class ProxyEngine(Protocol):
    """What the drivers of proxies in containers need from the engine (Engine provides it)."""

    def exec(
        self, container_id: str, argv: Sequence[str], timeout: float | None = None
    ) -> ExecResult: ...

    def processes(self, container_id: str) -> list[Process]: ...

    def read_file(self, container_id: str, path: str) -> bytes | None: ...

    def write_files(
        self, container_id: str, directory: str, files: Mapping[str, bytes]
    ) -> None: ...

    def signal(self, container_id: str, name: str) -> None: ...


@dataclass(frozen=True)
class Drained:
    """How the drain ended: `complete` is False when the drain timeout cut it short."""

    seconds: float
    complete: bool
    detail: str


@dataclass(frozen=True)
class Serving:
    """What one proxy (one nginx or HAProxy container, one registry agent) sends new requests
    to, read from the proxy itself."""

    source: str
    """Which proxy, e.g. `nginx in demo-proxy-1`."""
    backends: tuple[str, ...]
    """HOST:PORT of each server it sends to; HOST is a container's name or address."""
    weights: tuple[int, ...] = ()
    """Each one's weight, in the same order (empty: all weigh the same)."""


class ProxyDriver(Protocol):
    description: str
    """Names the proxy in messages, e.g. `nginx (demo-proxy-1)`."""

    def check(self) -> list[str]:
        """Raise ProxyNotReady unless the proxy can be switched; return notes for the user."""
        ...

    def status(self) -> str:
        """One line on the proxy as `check` found it (versions, settings), for `doctor`."""
        ...

    def serving(self) -> list[Serving]:
        """What each of its proxies sends to now, read from the proxy (for `status`)."""
        ...

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        """Check that the proxy accepts `backends`, while it keeps sending to `serving` only.

        Done while the new containers warm up, so that a configuration the proxy rejects fails
        the deploy at once, and the switch itself is shorter. Raises ProxyConfigInvalid.
        """
        ...

    def unstage(self) -> None:
        """Undo `stage` (the proxy never sent anything to the staged backends)."""
        ...

    def switch(self, backends: Sequence[Backend]) -> str:
        """Send every new request to `backends` and return once that is live.

        Raises ProxyConfigInvalid when nothing live changed (the proxy rejected the new
        configuration), and any other StepFailed when the proxy may have changed.
        Returns one line saying what changed.
        """
        ...

    def sticky_problem(self) -> str | None:
        """Why this proxy cannot keep a client on the side it first got (a canary's
        `--sticky`), in one sentence; None when it does."""
        ...

    def drain(self, timeout: float) -> Drained:
        """Wait until requests sent before the last switch have finished, at most `timeout`.

        Without a switch in this process (recovering a killed deploy), wait for every request
        the proxy still handles under an older configuration.
        """
        ...


@runtime_checkable
class CountsAnswers(Protocol):
    """A proxy driver that can tell how its current backends answered (HAProxy; the registry,
    from what agents beside an HAProxy report)."""

    def answers(self) -> tuple[int, int] | None:
        """5xx answers and all answers of the backends of the last switch, since it started;
        None when nothing counts them."""
        ...


@runtime_checkable
class CountsAnswersOf(Protocol):
    """A proxy driver that counts answers per backend (HAProxy): a canary's error rate beside
    the old version's."""

    def answers_of(self, backends: Sequence[Backend]) -> tuple[int, int] | None:
        """5xx answers and all answers of the servers at `backends`' addresses so far (since
        the proxy started, or their slot was first used); None when none of them is found."""
        ...


def covers(mount: str, path: str) -> bool:
    """A mount (a volume's place in a proxy's container) holds `path`."""
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def weighed(backends: Sequence[Backend]) -> str:
    """The backends' names for a message, each with its weight when they differ."""
    if len({b.weight for b in backends}) < 2:
        return ", ".join(b.name for b in backends)
    return ", ".join(f"{b.name} (weight {b.weight})" for b in backends)
