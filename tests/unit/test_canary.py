"""Canaries without an engine: the share as weights (and slots), its parsers, the records and
the rule of which canary runs, the plan, and how each switch of a canary is weighed (fakes;
the share measured under load on every proxy is in tests/integration/test_canary.py)."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_swap.errors import (
    DeployFailed,
    InvalidSettings,
    RegistryDataInvalid,
    SwitchNotConfirmed,
)
from docker_swap.models import MAX_WEIGHT, Backend, Container, Project, ServiceDefinition
from docker_swap.options import CanaryShare, DeployOptions, ProxyRef
from docker_swap.proxy.caddy_config import apportion
from docker_swap.proxy.haproxy_runtime import parse_servers_state, parse_setup
from docker_swap.proxy.nginx_config import parse_upstream, render_upstream
from docker_swap.registry.data import Scope, encode_generation, parse_generation
from docker_swap.releases.record import (
    ABORT,
    CANARY,
    DEPLOYED,
    NEEDS_ATTENTION,
    PROMOTE,
    ROLLED_BACK,
    ContainerRef,
    Release,
    parse_record,
    record_labels,
)
from docker_swap.releases.rules import active_canary
from docker_swap.rollout.batch import compose_swap
from docker_swap.rollout.weights import Split, Weighing, share_of, split
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Journal
from docker_swap.settings import parse_share, resolve_settings
from docker_swap.targets.compose.plan import Observed, make_plan
from docker_swap.targets.compose.preflight import Plan
from tests.fakes import FakeCompose, FakeEngine, FakeProxy

IDS = [f"{n:012x}" for n in range(1, 9)]


# The share as weights.


@pytest.mark.parametrize(("percent", "canary", "old", "weights"), [
    (10, 1, 1, (9, 1)), (10, 1, 3, (3, 1)), (50, 2, 4, (1, 2)), (25, 1, 1, (3, 1)),
])
def test_a_percentage_becomes_the_weights_that_give_it_exactly(
        percent: float, canary: int, old: int, weights: tuple[int, int]) -> None:
    found = split(CanaryShare(percent=percent), IDS[:canary], old)

    assert (found.old_weight, found.new_weight) == weights
    assert found.share(old, canary) == pytest.approx(percent / 100)


@given(st.floats(min_value=0.01, max_value=99.99), st.integers(1, 30))
def test_any_share_is_met_within_a_point_with_weights_a_proxy_takes(
        percent: float, old: int) -> None:
    canary = CanaryShare(percent=percent).containers(old)
    found = split(CanaryShare(percent=percent), [f"{n:012x}" for n in range(canary)], old)

    assert 1 <= found.old_weight <= MAX_WEIGHT and 1 <= found.new_weight <= MAX_WEIGHT
    assert abs(found.share(old, canary) - percent / 100) < 0.01


def test_a_share_in_replicas_weighs_every_container_alike() -> None:
    found = split(CanaryShare(replicas=2), IDS[:2], 3)

    assert (found.old_weight, found.new_weight) == (1, 1)
    assert found.share(3, 2) == pytest.approx(0.4)


def test_weighing_backends_sets_the_canary_apart_and_one_side_alone_weighs_one() -> None:
    backends = [Backend(IDS[0], "app-1", "10.0.0.1", 80), Backend(IDS[1], "app-2", "10.0.0.2", 80)]
    weights = Split(frozenset({IDS[1]}), 9, 1)

    assert [b.weight for b in weights.weigh(backends)] == [9, 1]
    assert [b.weight for b in weights.weigh(backends[:1])] == [1]  # no canary among them


def test_a_split_comes_back_from_the_journal_only_when_it_is_one() -> None:
    weights = Split(frozenset(IDS[:2]), 3, 1)

    assert Split.from_data(weights.data()) == weights
    bad: object
    for bad in ({"canary": ["zz"], "old": 1, "new": 1}, {"canary": [], "old": 0, "new": 1},
                {"canary": [], "old": True, "new": 1}, {"canary": "x", "old": 1, "new": 1},
                None, []):
        assert Split.from_data(bad) is None


def test_canary_containers_for_a_percentage_carry_it_as_the_old_ones_carry_theirs() -> None:
    assert CanaryShare(percent=10).containers(3) == 1
    assert CanaryShare(percent=50).containers(4) == 2
    assert CanaryShare(percent=90).containers(2) == 2
    assert CanaryShare(replicas=2).containers(5) == 2


@pytest.mark.parametrize(("count", "weights", "slots"), [
    (4, [3, 1], [3, 1]), (10, [9, 1], [9, 1]), (4, [99, 1], [3, 1]), (3, [1, 1, 1], [1, 1, 1]),
    (20, [3, 3, 3, 1], [6, 6, 6, 2]),
])
def test_caddy_slots_are_shared_out_by_weight_each_backend_keeping_one(
        count: int, weights: list[int], slots: list[int]) -> None:
    assert apportion(count, weights) == slots


def test_share_of_with_nothing_is_nothing() -> None:
    assert share_of(0, 0, 1, 1) == 0.0


# Parsers.


@pytest.mark.parametrize(("text", "share"), [
    ("10%", CanaryShare(percent=10)), ("2.5%", CanaryShare(percent=2.5)), (" 1 ", CanaryShare(
        replicas=1)), (3, CanaryShare(replicas=3)), ("99.99%", CanaryShare(percent=99.99)),
])
def test_a_share_is_a_percentage_or_a_number_of_replicas(text: object, share: CanaryShare) -> None:
    assert parse_share(text) == share


@pytest.mark.parametrize("text", ["0%", "100%", "150%", "-5%", "0", "10 %", "1e2", True, 0,
                                  "%", "5.555%", "x", None, 2000])
def test_anything_else_is_refused_with_one_sentence(text: object) -> None:
    with pytest.raises(ValueError, match="above 0% and below 100%"):
        parse_share(text)


def test_x_swap_canary_is_a_default_that_no_canary_turns_off() -> None:
    x_swap = {"proxy": "nginx:proxy", "canary": "10%", "canary-for": "5m", "sticky": True}

    assert resolve_settings("app", x_swap, {}).canary == CanaryShare(percent=10)
    assert resolve_settings("app", x_swap, {}).canary_for == 300
    assert resolve_settings("app", x_swap, {"canary": False}).canary is None
    assert resolve_settings("app", x_swap, {"canary": "2"}).canary == CanaryShare(replicas=2)
    with pytest.raises(InvalidSettings, match="--canary has value '200%'"):
        resolve_settings("app", x_swap, {"canary": "200%"})
    with pytest.raises(InvalidSettings, match="x-swap key 'sticky' has value 'yes'"):
        resolve_settings("app", {"sticky": "yes"}, {})


def test_nginx_writes_and_reads_back_a_canary_s_weights() -> None:
    backends = [Backend(IDS[0], "app-1", "10.0.0.1", 80, weight=9),
                Backend(IDS[1], "app-2", "10.0.0.2", 80)]
    text = render_upstream("app", backends, "now")

    assert "server 10.0.0.1:80 weight=9;" in text and "server 10.0.0.2:80;" in text
    assert parse_upstream(text) == [("10.0.0.1:80", 9), ("10.0.0.2:80", 1)]


def test_a_weight_a_proxy_cannot_take_is_refused() -> None:
    for weight in (0, MAX_WEIGHT + 1, True):
        assert "weight" in (Backend(IDS[0], "app-1", "10.0.0.1", 80, weight=weight).problem()
                            or "")


def test_haproxy_reports_each_server_s_weight() -> None:
    line = "3 app 1 app1 10.0.0.5 2 0 9 1 0 1 0 0 0 0 0 0 - 8000 - 0 0 - - 0"

    assert parse_servers_state(f"1\n# header\n{line}\n")[0].weight == 9


def test_haproxy_stickiness_needs_dynamic_cookies_with_a_key() -> None:
    base = "global\n stats socket ipv4@127.0.0.1:9999 level admin\nbackend app\n"
    sticky = base + " cookie S insert indirect nocache dynamic\n dynamic-cookie-key k\n"

    assert parse_setup(sticky).sticky_problem("app") is None
    assert "sets no dynamic cookie" in (parse_setup(base).sticky_problem("app") or "")
    assert "no key" in (parse_setup(base + " cookie S insert dynamic\n").sticky_problem("app")
                        or "")


def test_registry_generations_carry_a_canary_s_weights_signed_and_checked() -> None:
    scope = Scope("demo", "app", "", b"key")
    backends = (Backend(IDS[0], "app-1", "10.0.0.1", 80, weight=3),
                Backend(IDS[1], "app-2", "10.0.0.2", 80))
    record = encode_generation(scope, 4, backends, "2026-12-07T10:00:00Z")

    assert parse_generation(scope, 4, record).backends == backends
    assert '"weight"' not in encode_generation(scope, 5, backends[1:], "2026-12-07T10:00:00Z")
    for weight in (4, 300):  # another share, or one no proxy takes
        tampered = record.replace('"weight": 3', f'"weight": {weight}')
        assert tampered != record
        with pytest.raises(RegistryDataInvalid, match=r"weight|signature"):
            parse_generation(scope, 4, tampered)


# Records and the rule of which canary runs.


def release(number: int, outcome: str, kind: str = "deploy", ids: tuple[str, ...] = (),
            share: str = "") -> Release:
    return Release(number, "demo", "app", outcome, kind, share=share,
                   containers=tuple(ContainerRef(i, f"app-{i}") for i in ids))


def running(*ids: str) -> list[Container]:
    return [Container(i, f"app-{i}", "demo", "app", n, "running") for n, i in enumerate(ids)]


def test_the_newest_canary_runs_until_a_promote_or_an_abort_ends_it() -> None:
    canary = release(2, CANARY, ids=(IDS[1],), share="10%")
    now = running(IDS[0], IDS[1])

    assert active_canary([canary, release(1, DEPLOYED, ids=(IDS[0],))], now) == canary
    assert active_canary([release(3, DEPLOYED, PROMOTE), canary], now) is None
    assert active_canary([release(3, ROLLED_BACK, ABORT), canary], now) is None
    # A promote that rolled back, or an abort that needs attention, leaves it running.
    assert active_canary([release(3, ROLLED_BACK, PROMOTE), canary], now) == canary
    assert active_canary([release(3, NEEDS_ATTENTION, ABORT), canary], now) == canary
    assert active_canary([canary], running(IDS[0])) is None  # its containers are gone


def test_a_canary_record_keeps_its_share_and_its_counts_and_refuses_bad_ones() -> None:
    canary = Release(2, "demo", "app", CANARY, share="2.5%", counted=(1, 100, 0, 900))
    labels = record_labels(canary)

    assert parse_record(labels) == canary
    for key, bad in (("share", "200%"), ("share", "x"), ("counted", [1, 2]),
                     ("counted", [1, 2, 3, -4])):
        broken = labels["docker-swap.release.record"].replace(
            '"share":"2.5%"' if key == "share" else '"counted":[1,100,0,900]',
            f'"{key}":' + (f'"{bad}"' if isinstance(bad, str) else str(bad).replace(" ", "")))
        with pytest.raises(ValueError, match=key):
            parse_record({**labels, "docker-swap.release.record": broken})


# The plan.


def plan_of(options: dict[str, object], running_hashes: list[str], replicas: int = 2,
            ) -> tuple[str, str, int]:
    engine = FakeEngine()
    containers = [engine.add("app", n, config_hash=h, image_id="sha256:i")
                  for n, h in enumerate(running_hashes, start=1)]
    project = Project("demo", {"app": ServiceDefinition(
        "app", replicas=replicas, image="img/app", x_swap={"proxy": "nginx:proxy", **options})})
    planned = make_plan(project, Observed({"app": containers}, {"app": "new"},
                                          {"app": "sha256:i"})).service("app")
    return planned.action, planned.reason, len(planned.current)


def test_a_changed_service_with_canary_plans_a_canary_beside_every_old_container() -> None:
    action, reason, _ = plan_of({"canary": "10%"}, ["old", "old"])

    assert action == "canary"
    assert "a canary of 1 new container(s) beside 2, on 10% of the requests" in reason


def test_containers_that_run_the_current_definition_stay_and_only_the_others_go() -> None:
    action, reason, current = plan_of({}, ["old", "new", "old"], replicas=3)

    assert (action, current) == ("swap", 1)
    assert "1 current container(s) stay, 2 replica(s) in 1 batch(es) of 2" in reason


def test_a_canary_needs_a_proxy_and_a_service_not_half_rolled_out() -> None:
    with pytest.raises(InvalidSettings, match="a paused `up`"):
        plan_of({"canary": "10%"}, ["old", "new"])
    engine = FakeEngine()
    worker = engine.add("worker", 1, config_hash="old", image_id="sha256:i")
    project = Project("demo", {"worker": ServiceDefinition(
        "worker", image="img/w", x_swap={"canary": "1"})})
    with pytest.raises(InvalidSettings, match="has no proxy"):
        make_plan(project, Observed({"worker": [worker]}, {"worker": "new"},
                                    {"worker": "sha256:i"}))


# How a canary's switches are weighed (fake proxy, real journal).


class _Silent:
    def phase_started(self, name: str) -> None: ...
    def phase_finished(self, result: object) -> None: ...
    def note(self, text: str) -> None: ...
    def progress(self, text: str) -> None: ...


def weighed_switches(tmp_path: Path, weighing: Weighing, *, canary: int = 0, size: int = 1,
                     fail_switch: bool = False) -> tuple[list[list[int]], list[Container]]:
    """The weights of every switch of one batch beside three old containers (the first
    `canary` of them leaving: an abort), its first switch failing if asked."""
    engine = FakeEngine()
    containers = [engine.add("app", n) for n in (1, 2, 3, 4)][:3 + canary]
    proxy = FakeProxy()
    if fail_switch:
        proxy.errors = {0: SwitchNotConfirmed("the proxy did not confirm.")}
    options = DeployOptions(service="app", proxy=ProxyRef("nginx", "proxy"),
                            health_cmd=("./healthcheck",), timeout=2.0)
    plan = Plan(Project("demo", {"app": ServiceDefinition("app")}), options, containers, 8000,
                "demo_default", proxy, Journal(engine, "demo", "app", root=tmp_path), [])
    swap = compose_swap(plan, engine, FakeCompose(engine), _Silent(), Interrupts(print),
                        old=containers[:canary], staying=containers[canary:], size=size,
                        kind="deploy", weighing=weighing)
    with pytest.raises(DeployFailed) if fail_switch else nullcontext():
        swap.run()
    return proxy.weights, containers


def test_a_canary_start_weighs_its_new_containers_to_its_share(tmp_path: Path) -> None:
    weights, _ = weighed_switches(tmp_path, Weighing(share=CanaryShare(percent=10)))

    assert weights == [[3, 3, 3, 1]]  # the three old ones, then the canary


def test_a_canary_start_that_fails_goes_back_to_the_old_ones_alike(tmp_path: Path) -> None:
    weights, _ = weighed_switches(tmp_path, Weighing(share=CanaryShare(percent=10)),
                                  fail_switch=True)

    assert weights == [[3, 3, 3, 1], [1, 1, 1]]


def test_an_abort_that_fails_gives_the_canary_its_share_back(tmp_path: Path) -> None:
    canary_id = hashlib.sha256(b"demo/app/1").hexdigest()  # FakeEngine's id of app-1
    back = Split(frozenset({canary_id}), 3, 1)
    weights, containers = weighed_switches(tmp_path, Weighing(back=back), canary=1, size=0,
                                           fail_switch=True)

    assert containers[0].id == canary_id
    assert weights == [[1, 1, 1], [1, 3, 3, 3]]  # forward: the old ones alone; back: as before


def test_canary_for_or_sticky_without_a_canary_is_refused() -> None:
    for flags in ({"canary-for": "5m"}, {"sticky": True}, {"canary": False, "sticky": True}):
        with pytest.raises(InvalidSettings, match="applies to a canary"):
            resolve_settings("app", {"proxy": "nginx:proxy", "canary": "5%"}
                             if flags.get("canary") is False else {"proxy": "nginx:proxy"},
                             flags)
    assert resolve_settings("app", {"canary-for": "5m"}, {}).canary is None  # x-swap: a default
