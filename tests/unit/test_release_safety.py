"""Hooks, the watch window and --verify's settings, with fakes (tests/integration has the real
proof)."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_swap.errors import DeployFailed, HookFailed, InvalidSettings, ReleaseFailed
from docker_swap.models import ExecResult
from docker_swap.rollout.hooks import HookResult, run_hook
from docker_swap.rollout.watch import watch_release
from docker_swap.settings import parse_rate, parse_verify, resolve_settings
from tests.fakes import FakeWatch

from .test_swap import World


def test_hooks_come_from_x_swap_and_each_flag_replaces_its_own() -> None:
    x_swap = {"hooks": {"before-switch": "./migrate --yes", "before-stop": ["sleep", "1"]}}
    options = resolve_settings("app", x_swap, {"after-switch": "./warm"})
    assert options.hooks == {"before-switch": ("./migrate", "--yes"),
                             "before-stop": ("sleep", "1"), "after-switch": ("./warm",)}
    assert resolve_settings("app", x_swap, {"before-switch": "./other"}).hooks[
        "before-switch"] == ("./other",)


@pytest.mark.parametrize("hooks", [{"after-deploy": "x"}, "./migrate", {"before-stop": ""}])
def test_bad_hooks_are_refused_in_one_sentence(hooks: object) -> None:
    with pytest.raises(InvalidSettings) as refusal:
        resolve_settings("app", {"hooks": hooks}, {})
    assert "\n" not in refusal.value.message and "hook" in refusal.value.message


def test_a_refused_verify_url_never_shows_its_password() -> None:
    with pytest.raises(InvalidSettings) as refusal:
        parse_verify(("ftp://admin:hunter2@example.test/",), "10")
    assert "hunter2" not in refusal.value.message and "***" in refusal.value.message


def test_an_upstream_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidSettings):
        resolve_settings("app", {"upstream": "app\n"}, {})
    assert resolve_settings("app", {"upstream": "app.v2"}, {}).upstream == "app.v2"


def test_rates_and_verify_urls_are_checked() -> None:
    assert parse_rate("5%") == pytest.approx(0.05) and parse_rate(0.1) == 0.1
    for bad in ("150%", -1, "much", True, float("nan")):
        with pytest.raises(ValueError):
            parse_rate(bad)
    assert parse_verify(("http://127.0.0.1:8080/health",), "10").rate == 10.0
    for urls, rate in ((("ftp://x/",), "10"), (("http://",), "10"), (("http://h/é",), "10"),
                       (("http://h/",), "0"), (("http://h/",), "nan")):
        with pytest.raises(InvalidSettings):
            parse_verify(urls, rate)


def hook(world: World, result: ExecResult, name: str, argv: list[str]) -> HookResult:
    world.engine.exec = lambda *a, **k: result  # type: ignore[method-assign]
    return run_hook(world.swap().batch, name, argv, world.old, 5)[0]


def test_a_hook_says_how_it_ended(tmp_path: Path) -> None:
    world = World(tmp_path)
    passed = hook(world, ExecResult(0, "done\n"), "before-switch", ["./migrate"])
    failed = hook(world, ExecResult(2, "", "no database\n"), "before-switch", ["./migrate"])
    hung = hook(world, ExecResult(None, ""), "after-switch", ["./warm"])
    assert passed.ok and passed.detail == "before-switch hook `./migrate` exited 0 in demo-app-1"
    assert not failed.ok and failed.output == "no database"
    assert not hung.ok and "did not finish within 5 s" in hung.detail


def test_a_failing_before_switch_hook_rolls_back_with_its_output(tmp_path: Path) -> None:
    world = World(tmp_path, hooks={"before-switch": ("./migrate",)})
    world.engine.ready_after = 1
    results = iter([ExecResult(0, ""), ExecResult(1, "", "migration 42 failed\n")])
    world.engine.exec = lambda *a, **k: next(results)  # type: ignore[method-assign]

    with pytest.raises(DeployFailed) as failure:
        world.swap().run()

    assert isinstance(failure.value.cause, HookFailed)
    assert failure.value.logs == "migration 42 failed"
    assert failure.value.logs_title == "output of the before-switch hook"
    assert world.proxy.switches == [] and world.names() == ["demo-app-1"]


def test_a_new_container_failing_in_the_watch_window_switches_back(tmp_path: Path) -> None:
    world = World(tmp_path, watch=5.0)
    swap = world.swap()

    def crash_soon(text: str) -> None:
        if "left" in text:  # the watch window's progress, not readiness's
            for watch in world.engine.watches.values():
                watch.exit_code = 3

    swap.observer.progress = crash_soon  # type: ignore[method-assign]
    with pytest.raises(DeployFailed) as failure:
        swap.run()

    assert isinstance(failure.value.cause, ReleaseFailed)
    assert "demo-app-2 exited with code 3 during the watch window" in failure.value.message
    assert world.proxy.switches == [["demo-app-2"], ["demo-app-1"]]
    assert world.names() == ["demo-app-1"], "the very same old container serves"


class Counter:
    def __init__(self, readings: list[tuple[int, int]]) -> None:
        self.readings = iter(readings)

    def answers(self) -> tuple[int, int]:
        return next(self.readings)


def test_the_error_rate_is_judged_since_the_switch_and_only_on_enough_answers() -> None:
    state = FakeWatch("new")
    # 10 old 5xx before the window do not count; 3 of 10 is too few answers to judge.
    quiet = Counter([(10, 100), (13, 110), (13, 110), (13, 110), (13, 110), (13, 110)])
    assert "ran 0.3s without failing" in watch_release({"new": state}, 0.3, quiet, 0.05,
                                                       lambda _: None)
    bad = Counter([(0, 0), (5, 40)])
    with pytest.raises(ReleaseFailed) as failure:
        watch_release({"new": state}, 5, bad, 0.05, lambda _: None)
    assert "answered 5 of 40 requests with 5xx (12.5%)" in failure.value.message
