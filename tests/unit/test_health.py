from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from docker_swap.engine.parsing import healthcheck_argv
from docker_swap.errors import ContainerExited, ContainerUnhealthy, EngineFailed, NotReady
from docker_swap.models import ExecResult
from docker_swap.targets.readiness import (
    CommandProbe,
    DockerHealthProbe,
    HealthcheckProbe,
    ProbeResult,
    wait_until_ready,
)
from tests.fakes import FakeWatch


class Probe:
    description = "probe"

    def __init__(self, passes_after: int, interval: float = 0.01) -> None:
        self.passes_after, self.interval, self.attempts = passes_after, interval, 0

    def check(self, timeout: float) -> ProbeResult:
        self.attempts += 1
        return ProbeResult(self.attempts >= self.passes_after, f"attempt {self.attempts}")


def test_ready_once_the_probe_passes() -> None:
    probe = Probe(passes_after=3)
    ready = wait_until_ready(probe, FakeWatch("c"), "app-2", timeout=5)
    assert (ready.attempts, ready.detail) == (3, "attempt 3")


def test_not_ready_names_the_timeout_and_the_last_answer() -> None:
    with pytest.raises(NotReady) as error:
        wait_until_ready(Probe(passes_after=10**9), FakeWatch("c"), "app-2", timeout=0.1)
    assert error.value.message.startswith("app-2 was not ready after 0.1 s (probe: attempt ")


def test_a_shared_deadline_ends_the_wait_but_the_message_keeps_the_timeout() -> None:
    with pytest.raises(NotReady) as error:
        wait_until_ready(Probe(10**9), FakeWatch("c"), "app-3", timeout=60,
                         deadline=time.monotonic() + 0.05)
    assert "not ready after 60 s" in error.value.message


def test_an_exit_wakes_the_wait_at_once() -> None:
    watch = FakeWatch("c")
    probe = Probe(passes_after=10**9, interval=30)  # a long interval: only the event can wake it

    def crash() -> None:
        watch.exit_code = 137
        watch.changed.set()

    threading.Timer(0.1, crash).start()
    started = time.monotonic()
    with pytest.raises(ContainerExited, match="exited with code 137"):
        wait_until_ready(probe, watch, "app-2", timeout=60)
    assert time.monotonic() - started < 5


def test_docker_health_is_followed_through_events_without_polling() -> None:
    watch = FakeWatch("c")
    probe = DockerHealthProbe(watch)

    def healthy() -> None:
        watch.health = "healthy"
        watch.changed.set()

    threading.Timer(0.1, healthy).start()
    ready = wait_until_ready(probe, watch, "app-2", timeout=60)
    assert ready.attempts == 2 and ready.detail == "Docker health is healthy"


def test_unhealthy_fails_at_once() -> None:
    watch = FakeWatch("c")
    watch.health = "unhealthy"
    with pytest.raises(ContainerUnhealthy):
        wait_until_ready(Probe(10**9), watch, "app-2", timeout=60)


def test_a_command_that_cannot_run_any_more_is_a_failed_attempt_not_an_error() -> None:
    class Gone:
        def exec(self, container_id: str, argv: Sequence[str],
                 timeout: float | None = None) -> ExecResult:
            raise EngineFailed("could not run ./healthcheck in c: Container c is not running")

    watch = FakeWatch("c")
    probe = CommandProbe(Gone(), "c", ["./healthcheck"])

    def crash() -> None:
        watch.exit_code = 3
        watch.changed.set()

    threading.Timer(0.05, crash).start()
    with pytest.raises(ContainerExited, match="exited with code 3"):
        wait_until_ready(probe, watch, "app-2", timeout=30)


class Executor:
    """Answers each exec with the next exit code of `codes` (the last one from then on)."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.runs: list[tuple[tuple[str, ...], float | None]] = []

    def exec(self, container_id: str, argv: Sequence[str],
             timeout: float | None = None) -> ExecResult:
        self.runs.append((tuple(argv), timeout))
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        return ExecResult(code, "")


def test_the_healthcheck_command_makes_a_container_ready_before_docker_s_interval() -> None:
    # Docker would say `healthy` only after its next interval (30 s in many images).
    executor, state = Executor(1, 1, 0), FakeWatch("c")
    probe = HealthcheckProbe(executor, "c", ("/bin/sh", "-c", "./healthcheck"), 3.0, state)

    ready = wait_until_ready(probe, state, "app-2", timeout=5)

    assert ready.attempts == 3 and state.health is None
    assert executor.runs[0] == (("/bin/sh", "-c", "./healthcheck"), 3.0)  # its own timeout
    assert probe.description == "HEALTHCHECK ./healthcheck"


def test_docker_s_own_verdict_counts_too() -> None:
    state = FakeWatch("c")
    state.health = "healthy"
    executor = Executor(1)

    assert HealthcheckProbe(executor, "c", ("true",), 3.0, state).check(1.0).ok
    assert executor.runs == []
    state.health = "unhealthy"
    with pytest.raises(ContainerUnhealthy):
        wait_until_ready(HealthcheckProbe(executor, "c", ("true",), 3.0, state), state,
                         "app-2", timeout=1)


def test_a_check_docker_swap_cannot_run_leaves_docker_to_decide() -> None:
    state, executor = FakeWatch("c"), Executor(127)
    probe = HealthcheckProbe(executor, "c", ("/bin/sh", "-c", "curl -f localhost"), 3.0, state)

    assert not probe.check(1.0).ok and probe.interval == float("inf")
    state.health = "healthy"
    assert probe.check(1.0).ok and len(executor.runs) == 1


@pytest.mark.parametrize(("test", "argv"), [
    (["CMD", "/app/healthcheck", "-q"], ("/app/healthcheck", "-q")),
    (["CMD-SHELL", "curl -f localhost"], ("/bin/sh", "-c", "curl -f localhost")),
    (["NONE"], ()), ([], ()), (["CMD"], ()), (["CMD-SHELL", "a", "b"], ()),
])
def test_a_health_check_s_test_becomes_the_command_docker_runs(
        test: list[str], argv: tuple[str, ...]) -> None:
    assert healthcheck_argv(test) == argv
