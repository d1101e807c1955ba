"""Each exit code means one thing, whatever fails where (fakes; the real proof is in
tests/faults and tests/integration):

    0  done: only the new containers are left
    1  failed and rolled back: only the old containers are left, the proxy on them
    3  needs attention: the message says what serves, and the hint names `recover`
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from docker_swap import cli
from docker_swap.errors import (
    EXIT_NEEDS_ATTENTION,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_ROLLED_BACK,
    ComposeFailed,
    EngineFailed,
    Refused,
    SwapError,
    SwitchNotConfirmed,
)
from docker_swap.models import Project, ServiceDefinition
from docker_swap.targets.compose.preflight import prepare
from tests.fakes import FakeCompose, FakeWatch

from .test_swap import World


def _compose_fails(world: World) -> None:
    world.compose = FakeCompose(world.engine, ComposeFailed("no space"), created_on_error=1)


def _never_ready(world: World) -> None:
    world.engine.ready_after = 10**9


def _stage_fails(world: World) -> None:
    world.proxy.stage_error = EngineFailed("could not write app.conf")


def _switch_fails(world: World) -> None:
    world.proxy.errors = {0: SwitchNotConfirmed("no new workers")}


def _switch_back_fails(world: World) -> None:
    world.proxy.errors = {0: SwitchNotConfirmed("no new workers"), 1: EngineFailed("gone")}


def _bug_during_readiness(world: World) -> None:
    def bug(watch: FakeWatch) -> None:
        raise ZeroDivisionError("a bug")

    world.engine.on_exec = bug


def _drain_fails(world: World) -> None:
    world.proxy.drain_error = EngineFailed("could not list the processes of the proxy")


def _stop_fails(world: World) -> None:
    world.engine.failing = {"stop"}


def _remove_fails(world: World) -> None:
    world.engine.failing = {"remove"}


CASES: dict[str, tuple[Callable[[World], None], int]] = {
    "nothing fails": (lambda world: None, EXIT_OK),
    "compose fails": (_compose_fails, EXIT_ROLLED_BACK),
    "never ready": (_never_ready, EXIT_ROLLED_BACK),
    "stage fails": (_stage_fails, EXIT_ROLLED_BACK),
    "switch fails": (_switch_fails, EXIT_ROLLED_BACK),
    "unexpected error before the switch": (_bug_during_readiness, EXIT_NEEDS_ATTENTION),
    "switch back fails": (_switch_back_fails, EXIT_NEEDS_ATTENTION),
    "drain fails": (_drain_fails, EXIT_NEEDS_ATTENTION),
    "stop of an old container fails": (_stop_fails, EXIT_NEEDS_ATTENTION),
    "remove fails": (_remove_fails, EXIT_NEEDS_ATTENTION),
}


@pytest.mark.parametrize("case", CASES)
def test_the_exit_code_says_what_is_left(tmp_path: Path, case: str) -> None:
    arrange, expected = CASES[case]
    world = World(tmp_path, timeout=0.3)
    old = [c.name for c in world.old]
    arrange(world)

    try:
        world.swap().run()
        code = EXIT_OK
    except SwapError as error:
        code = error.exit_code
        message, hint = error.message, error.hint or ""

    assert code == expected
    if code == EXIT_OK:
        assert world.names() == ["demo-app-2"]
    elif code == EXIT_ROLLED_BACK:
        assert world.names() == old, "nothing of the new version is left"
        assert world.proxy.switches in ([], [["demo-app-2"], old]), "the proxy is on the old"
        assert world.journal.read() is None
    else:
        assert "docker-swap recover app" in hint
        assert "serves" in message or "still run" in message
        assert world.journal.read() is not None, "the journal is kept for recover"


def test_new_containers_stay_while_the_proxy_may_send_to_them(tmp_path: Path) -> None:
    world = World(tmp_path)
    _switch_back_fails(world)

    with pytest.raises(SwapError) as failure:
        world.swap().run()

    assert failure.value.exit_code == EXIT_NEEDS_ATTENTION
    assert world.names() == ["demo-app-1", "demo-app-2"]
    assert "demo-app-2 kept, as the proxy may still send to them" in failure.value.message


def test_a_stage_cut_short_is_undone(tmp_path: Path) -> None:
    world = World(tmp_path)
    _stage_fails(world)

    with pytest.raises(SwapError):
        world.swap().run()

    assert world.proxy.unstaged == 1


def test_an_engine_failure_in_preflight_refuses(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.engine.failing = {"service_containers"}
    project = Project("demo", {"app": ServiceDefinition("app"),
                               "proxy": ServiceDefinition("proxy")})

    with pytest.raises(Refused) as refusal:
        prepare(world.engine, project, world.options)

    assert refusal.value.exit_code == EXIT_REFUSED
    assert "service_containers failed" in refusal.value.message


def test_an_unexpected_error_needs_attention(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def bug(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("docker_swap.rollout.deploy.deploy", bug)

    with pytest.raises(SystemExit) as exit_:
        cli.main(["deploy", "app"])

    assert exit_.value.code == EXIT_NEEDS_ATTENTION
    said = " ".join(capsys.readouterr().err.split())
    assert said.startswith("needs attention: unexpected error: ZeroDivisionError: a bug.")
    assert "docker-swap recover app" in said
