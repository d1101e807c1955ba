"""`docker-swap demo`: the bundled classic example (PHP-FPM behind nginx), swapped under load.

It copies the example to a temporary folder, brings it up as project `docker-swap-demo` with
v1 in place (two app replicas), puts it under load, then swaps it a few times (v2, v1, v2...):
copy the source, `docker compose build app`, `docker-swap up`, as a user would; `up` replaces
the replicas one batch at a time (the example's deploy.update_config). Everything it made is
removed at the end, also on Ctrl-C, unless `keep`.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from docker_swap.compose import Compose
from docker_swap.errors import ComposeFailed, DeployFailed, NeedsAttention, StepFailed
from docker_swap.observer import PhaseResult
from docker_swap.options import DEMO_PORT, DEMO_SWAPS, ComposeOptions
from docker_swap.releases.store import forget_releases
from docker_swap.rollout.loadgen import DemoLoad
from docker_swap.rollout.up import SilentUpObserver, UpObserver, up
from docker_swap.safety.interrupts import Interrupts
from docker_swap.targets.compose.preflight import connect_engine

if TYPE_CHECKING:
    from docker_swap.engine import Engine
    from docker_swap.rollout.outcomes import ServiceOutcome, UpReport
    from docker_swap.targets.compose.plan import ServicePlan

PROJECT = "docker-swap-demo"
_BEFORE_SECONDS = 3.0
_AFTER_SECONDS = 1.0
# Base images built from Debian's packages by scripts/prepare-machine, where no registry is
# reachable; used when present and APP_BASE / WEB_BASE are not set.
_LOCAL_BASES = {"APP_BASE": "docker-swap-test/debian:bookworm",
                "WEB_BASE": "docker-swap-test/debian:sid"}


@dataclass(frozen=True)
class SwapRun:
    number: int
    version: str
    phases: tuple[PhaseResult, ...]
    seconds: float


@dataclass
class DemoReport:
    url: str
    swaps: list[SwapRun] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    before_ms: tuple[float, float] = (float("nan"), float("nan"))
    """p50, p99 of successful requests before the first swap."""
    during_ms: tuple[float, float] = (float("nan"), float("nan"))
    bases: str = ""
    requests: list[tuple[float, float | None]] = field(default_factory=list, repr=False)
    """(when, latency ms; None: failed) of every request the load sent (for --report)."""
    phases: list[tuple[str, float, float]] = field(default_factory=list, repr=False)
    """(swap and phase, start, end) of every phase, on the same clock."""


def run_demo(
    *,
    swaps: int = DEMO_SWAPS,
    port: int = DEMO_PORT,
    keep: bool = False,
    say: Callable[[str], None] = print,
    observer: UpObserver | None = None,
) -> DemoReport:
    engine = connect_engine()  # a clear refusal before anything is copied or built
    report = DemoReport(url=f"http://127.0.0.1:{port}/", bases=_choose_bases(engine))
    os.environ["WEB_PORT"] = str(port)
    with _example(keep) as folder:
        options = ComposeOptions(files=(str(folder / "compose.yaml"),), project_name=PROJECT)
        compose = Compose(options)
        try:
            compose.down()  # what an earlier --keep run left
            forget_releases(engine, PROJECT)
            say(f"building and starting the example (v1) in {folder}: {report.bases}")
            _place(folder, "v1")
            compose.up(build=True)
            _wait_ready(engine)  # before nginx sees a request: no replica is marked failed
            _wait_serving(report.url, "v1")
            _swap_under_load(compose, options, folder, swaps, report, say, observer)
        finally:
            if keep:
                say(f"the example keeps running at {report.url} (project {PROJECT}, files in "
                    f"{folder}); remove it with `docker compose -p {PROJECT} down -v --rmi "
                    "local`")
            else:
                say("removing everything the demo made")
                with _uninterrupted():
                    compose.down()
                    forget_releases(engine, PROJECT)
    return report


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """A second Ctrl-C must not leave half the demo behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _swap_under_load(compose: Compose, options: ComposeOptions, folder: Path, swaps: int,
                     report: DemoReport, say: Callable[[str], None],
                     observer: UpObserver | None) -> None:
    with DemoLoad("127.0.0.1", int(report.url.rsplit(":", 1)[1].strip("/"))) as load:
        time.sleep(_BEFORE_SECONDS)
        swaps_started = time.monotonic()
        for number in range(1, swaps + 1):
            version = "v2" if number % 2 else "v1"
            say(f"swap {number}/{swaps}: building {version}, then docker-swap up")
            _place(folder, version)
            compose.build("app")
            phases = _Phases(observer or SilentUpObserver())
            with Interrupts(phases.note) as interrupts:
                upped = up(compose_options=options, observer=phases, interrupts=interrupts)
            _raise_unless_done(upped)
            if interrupts.stop_requested:  # Ctrl-C once the swap could only finish: it did
                raise KeyboardInterrupt
            report.swaps.append(SwapRun(number, version, tuple(phases.finished),
                                        upped.seconds))
            report.phases += [(f"swap {number} {name}", start, end)
                              for name, start, end in phases.timed]
        swaps_ended = time.monotonic()
        time.sleep(_AFTER_SECONDS)
    tally = load.tally
    report.sent, report.failed = dict(tally.sent), dict(tally.failed)
    report.versions = dict(tally.versions)
    report.before_ms = tally.percentiles(0, swaps_started)
    report.during_ms = tally.percentiles(swaps_started, swaps_ended)
    report.requests = [*tally.latencies, *((when, None) for when in tally.failed_at)]


class _Phases:
    """Passes everything on to the presenter, and keeps the phases (of every batch)."""

    def __init__(self, observer: UpObserver) -> None:
        self._observer, self.finished = observer, list[PhaseResult]()
        self.timed: list[tuple[str, float, float]] = []
        """(name, start, end) of each phase (time.monotonic())."""
        self._started = 0.0

    def phase_started(self, name: str) -> None:
        self._started = time.monotonic()
        self._observer.phase_started(name)

    def phase_finished(self, result: PhaseResult) -> None:
        self.finished.append(result)
        self.timed.append((result.name, self._started, time.monotonic()))
        self._observer.phase_finished(result)

    def note(self, text: str) -> None:
        self._observer.note(text)

    def progress(self, text: str) -> None:
        self._observer.progress(text)

    def service_started(self, service: ServicePlan) -> None:
        self._observer.service_started(service)

    def service_finished(self, outcome: ServiceOutcome) -> None:
        self._observer.service_finished(outcome)


def _raise_unless_done(report: UpReport) -> None:
    for service in report.services:
        if service.outcome not in ("done", "unchanged"):
            message = f"{service.name}: {service.error or service.detail}"
            if report.exit_code == NeedsAttention.exit_code:
                raise NeedsAttention(message, hint=service.hint)
            raise DeployFailed(StepFailed(message, hint=service.hint))


def _choose_bases(engine: Engine) -> str:
    chosen = []
    for variable, local in _LOCAL_BASES.items():
        if not os.environ.get(variable) and engine.has_image(local):
            os.environ[variable] = local
        chosen.append(f"{variable}={os.environ.get(variable, 'public default')}")
    return ", ".join(chosen)


@contextmanager
def _example(keep: bool) -> Iterator[Path]:
    """A copy of the example to build and change; kept with the stack when `keep`."""
    folder = Path(tempfile.mkdtemp(prefix="docker-swap-demo-"))
    try:
        source = resources.files("docker_swap.demo") / "example"
        with resources.as_file(source) as path:
            shutil.copytree(path, folder, dirs_exist_ok=True)
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _place(folder: Path, version: str) -> None:
    """The walkthrough's `cp sources/vN/* app/src/`."""
    for item in (folder / "sources" / version).iterdir():
        shutil.copy2(item, folder / "app" / "src" / item.name)


def _wait_ready(engine: Engine, seconds: float = 60) -> None:
    """Until every app replica passes its health command. nginx marks a replica that refused
    a connection as failed for 10 s: with two of them booting, it would answer 502."""
    deadline = time.monotonic() + seconds
    for container in engine.service_containers(PROJECT, "app"):
        while engine.exec(container.id, ["./healthcheck"], timeout=5).exit_code != 0:
            if time.monotonic() > deadline:
                raise ComposeFailed(f"{container.name} was not ready within {seconds:g} s.")
            time.sleep(0.2)


def _wait_serving(url: str, version: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.read().decode().strip() == version:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise ComposeFailed(f"the example did not serve {version} at {url} within {seconds:g} s.")
