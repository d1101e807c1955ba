"""What `recover` keeps, from each phase a journal can say (fakes; tests/integration and
tests/faults recover real deploys)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from docker_swap.models import Container, Project, ServiceDefinition
from docker_swap.options import DeployOptions, ProxyRef
from docker_swap.rollout import recover
from docker_swap.safety.journal import STARTED, SWITCHED, SWITCHING, UNDOING, Entry
from tests.fakes import FakeEngine


def resume(phase: str, monkeypatch: pytest.MonkeyPatch,
           leaving: bool = False) -> tuple[str, list[str], list[str]]:
    """An interrupted batch: demo-app-1 old, demo-app-2 new, both running (with `leaving`,
    demo-app-3 too: the batch before's old one, drained, not retired yet); what recover
    sends the proxy to, and what is left."""
    engine = FakeEngine()
    old, new = engine.add("app", 1), engine.add("app", 2)
    left = [engine.add("app", 3).id] if leaving else []
    switched: list[str] = []

    def switch(_e: object, _p: object, _o: object, containers: Sequence[Container],
               changes: recover._Changes, _split: object = None) -> str:
        switched.extend(c.name for c in containers)
        return "switched"

    monkeypatch.setattr(recover, "_switch", switch)
    entry = Entry("demo", "app", phase, old=[old.id], new=[new.id], leaving=left)
    options = DeployOptions("app", proxy=ProxyRef("nginx", "proxy"))
    report, _, _ = recover._resume(engine, Project("demo", {"app": ServiceDefinition("app")}),
                                   options, entry, recover._Changes())
    return report.action, switched, [c.name for c in engine.service_containers("demo", "app")]


def test_after_the_switch_recover_finishes() -> None:
    with pytest.MonkeyPatch.context() as patch:
        assert resume(SWITCHED, patch) == ("finished", ["demo-app-2"], ["demo-app-2"])


def test_from_undoing_recover_goes_back_whatever_ran_before() -> None:
    """A failed watch window (or an undo cut short) journals `undoing` before it switches
    back: recover must never finish forward to the version that just failed."""
    with pytest.MonkeyPatch.context() as patch:
        assert resume(UNDOING, patch) == ("undone", ["demo-app-1"], ["demo-app-1"])


def test_cut_short_while_switching_the_old_ones_are_kept_while_they_run() -> None:
    with pytest.MonkeyPatch.context() as patch:
        assert resume(SWITCHING, patch) == ("undone", ["demo-app-1"], ["demo-app-1"])


@pytest.mark.parametrize(("phase", "action", "kept"), [
    (STARTED, "undone", "demo-app-1"), (SWITCHING, "undone", "demo-app-1"),
    (SWITCHED, "finished", "demo-app-2")])
def test_the_batch_befores_old_container_is_retired_and_never_sent_requests(
        phase: str, action: str, kept: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        assert resume(phase, patch, leaving=True) == (action, [kept], [kept])
