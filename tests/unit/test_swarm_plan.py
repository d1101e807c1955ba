"""What `up` does to each service of a Swarm stack: decided from docker-swap's own records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from docker_swap.engine.swarm import SwarmService, same_template, template_hash
from docker_swap.errors import InvalidSettings, NotSwappable, Refused, ReleaseRefused
from docker_swap.options import DeployOptions, ProxyRef
from docker_swap.releases.record import DEPLOYED, Release, parse_record, record_labels
from docker_swap.releases.stacks import checked_template as _checked_template
from docker_swap.targets.swarm.plan import BRIDGE, CREATE, SWARM, UNCHANGED, plan_stack
from docker_swap.targets.swarm.stack import swarm_mode

TEMPLATE: dict[str, Any] = {"ContainerSpec": {"Image": "app:v1", "Env": ["VERSION=v1"]}}
REDIS = DeployOptions("app", proxy=ProxyRef("redis", ""), port=8000)


def service(template: dict[str, Any] = TEMPLATE, replicas: int | None = 6) -> SwarmService:
    mode = {"Replicated": {"Replicas": replicas}} if replicas is not None else {"Global": {}}
    return SwarmService("id1", "s_app", 3, {"Name": "s_app", "TaskTemplate": template,
                                           "Mode": mode}, replicas)


def release(config_hash: str = "h1", template: dict[str, Any] = TEMPLATE) -> Release:
    return Release(1, "s", "app", DEPLOYED, image_id=template_hash(template),
                   config_hash=config_hash, template="{}")


def plan(running: dict[str, SwarmService], last: Release | None, hashes: dict[str, str],
         force: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    found = plan_stack("s", ["app", "redis", "new"], running, {"app": REDIS}, hashes,
                       {"app": last}, force)
    return {s.service: (s.action, s.reason) for s in found.steps}


def test_a_service_is_unchanged_only_when_its_definition_and_tasks_are_as_last_recorded() -> None:
    steps = plan({"app": service(), "redis": service()}, release(), {"app": "h1"})
    assert steps["app"][0] == UNCHANGED
    assert steps["redis"][0] == SWARM and steps["new"][0] == CREATE


@pytest.mark.parametrize(("last", "hashes", "why"), [
    (None, {"app": "h1"}, "no docker-swap release"),
    (release("h0"), {"app": "h1"}, "definition changed"),
    (release("h1", {"ContainerSpec": {"Image": "app:v0"}}), {"app": "h1"}, "changed since"),
])
def test_without_proof_that_nothing_changed_the_tasks_are_replaced_through_a_bridge(
        last: Release | None, hashes: dict[str, str], why: str) -> None:
    action, reason = plan({"app": service()}, last, hashes)["app"]
    assert action == BRIDGE and why in reason


def test_forced_replaces_an_unchanged_service() -> None:
    assert plan({"app": service()}, release(), {"app": "h1"}, force=("app",))["app"][0] == BRIDGE


def test_a_proxy_other_than_the_registry_and_a_global_service_are_refused() -> None:
    nginx = DeployOptions("app", proxy=ProxyRef("nginx", "proxy"), port=8000)
    with pytest.raises(InvalidSettings, match="registry"):
        plan_stack("s", ["app"], {"app": service()}, {"app": nginx}, {}, {})
    with pytest.raises(NotSwappable, match="global"):
        plan_stack("s", ["app"], {"app": service(replicas=None)}, {"app": REDIS}, {}, {})


def test_a_task_is_of_the_template_even_when_swarm_leaves_out_empty_keys() -> None:
    task_spec = {"ContainerSpec": {"Image": "app:v1", "Env": ["VERSION=v1"], "Mounts": []},
                 "ForceUpdate": 0}
    template = {"ContainerSpec": {**TEMPLATE["ContainerSpec"], "Privileges": {
        "CredentialSpec": None}}, "Placement": {}, "Runtime": "container"}
    assert same_template(task_spec, template)
    assert not same_template({"ContainerSpec": {"Image": "app:v2"}}, TEMPLATE)


def test_a_rollback_changes_only_image_command_environment_and_labels() -> None:
    running = service({"ContainerSpec": {"Image": "app:v2", "Env": ["VERSION=v2"]},
                       "Placement": {"Constraints": ["node.role == worker"]}})
    earlier: dict[str, Any] = {"ContainerSpec": {"Image": "app:v1", "Env": ["VERSION=v1"]},
               "Placement": {"Constraints": ["node.role == worker"]}}
    ok = Release(2, "s", "app", DEPLOYED, image_id=template_hash(earlier),
                 template=json.dumps(earlier))
    assert _checked_template(ok, running) == earlier

    mounted = {**earlier, "ContainerSpec": {**earlier["ContainerSpec"], "Mounts": [
        {"Type": "bind", "Source": "/", "Target": "/host"}]}}
    forged = Release(3, "s", "app", DEPLOYED, image_id=template_hash(mounted),
                     template=json.dumps(mounted))
    with pytest.raises(ReleaseRefused, match="beyond its image"):
        _checked_template(forged, running)
    altered = Release(4, "s", "app", DEPLOYED, image_id=template_hash(earlier),
                      template=json.dumps(mounted))
    with pytest.raises(ReleaseRefused, match="its own hash"):
        _checked_template(altered, running)


@pytest.mark.parametrize("template", ['{"ContainerSpec": "x"}', "[1]", '{"ContainerSpec": {}}'])
def test_a_record_whose_template_is_malformed_is_skipped_with_a_sentence(template: str) -> None:
    labels = record_labels(Release(1, "s", "app", DEPLOYED, template=template))
    with pytest.raises(ValueError, match="template"):
        parse_record(labels)


class FakeManager:
    def __init__(self, manager: bool, stacks: tuple[str, ...]) -> None:
        self._manager, self._stacks = manager, stacks

    def manager(self) -> tuple[bool, str]:
        return self._manager, "the engine manages swarm abc" if self._manager else "not a swarm"

    def stack_services(self, stack: str) -> list[SwarmService]:
        return [service()] if stack in self._stacks else []


@pytest.mark.parametrize(("manager", "stacks", "forced", "applies", "said"), [
    (True, ("shop",), None, True, "swarm mode: the engine manages swarm abc and stack 'shop'"),
    (True, (), None, False, "but no stack named 'shop' runs"),
    (False, (), None, False, "compose mode: not a swarm"),
    (True, ("shop",), False, False, "compose mode: --no-swarm"),
])
def test_swarm_mode_applies_on_a_manager_that_runs_the_stack(
        manager: bool, stacks: tuple[str, ...], forced: bool | None, applies: bool,
        said: str) -> None:
    found, why = swarm_mode(FakeManager(manager, stacks), "shop", forced)  # type: ignore[arg-type]
    assert found == applies and said in why


@pytest.mark.parametrize(("manager", "stacks"), [(False, ()), (True, ())])
def test_swarm_forced_where_it_cannot_apply_is_refused(manager: bool,
                                                       stacks: tuple[str, ...]) -> None:
    with pytest.raises(Refused, match="--swarm cannot apply"):
        swarm_mode(FakeManager(manager, stacks), "shop", True)  # type: ignore[arg-type]
