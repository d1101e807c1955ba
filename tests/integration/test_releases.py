"""Releases on a real engine: records, status read from real proxies, history, and rollback
under load to an image a build had moved the service's tag away from."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import images
from testbed.agents import Agents
from testbed.load import KEEPALIVE_GETS, POSTS, Load, Result
from testbed.stack import (
    HAPROXY_CFG,
    NGINX_HTTP,
    Stack,
    docker,
    haproxy_compose,
    http_compose,
    registry_compose,
)

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}
LOAD_SECONDS = 14
TEST_LABEL = "docker-swap-test.releases"


class AppImages:
    """Distinct app images under one tag, as `docker build -t TAG` makes them: each build
    moves the tag, and the image before keeps only what else holds it."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.tag = f"docker-swap-test/app:releases-{self.run}"
        self.ids: dict[str, str] = {}

    def build(self, version: str) -> str:
        built = subprocess.run(
            ["docker", "build", "--quiet", "--label", f"{TEST_LABEL}={self.run}", "-t", self.tag,
             "-"], input=f"FROM {images.APP}\nENV VERSION={version}\n", text=True,
            capture_output=True, check=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin"})
        self.ids[version] = built.stdout.strip()
        return self.ids[version]

    def exists(self, version: str) -> bool:
        return docker("image", "inspect", self.ids[version], check=False).returncode == 0

    def prune(self) -> None:
        """`docker image prune`, limited to the images this test made."""
        docker("image", "prune", "--force", "--filter", f"label={TEST_LABEL}={self.run}")

    def remove(self) -> None:
        made = docker("images", "-q", "--filter", f"label={TEST_LABEL}={self.run}").stdout
        if made.split():
            docker("rmi", "--force", *sorted(set(made.split())), check=False)


@pytest.fixture
def app_images() -> Iterator[AppImages]:
    made = AppImages()
    yield made
    made.remove()


def released_compose(tag: str, **x_swap: object) -> dict[str, Any]:
    """The app with its version in its image (not in its environment)."""
    compose = http_compose()
    app = compose["services"]["app"]
    app["x-swap"] |= x_swap
    app["image"] = tag
    del app["environment"]["VERSION"]
    return compose


def describe(results: list[Result]) -> str:
    return "\n".join(r.describe() for r in results)


def test_rollback_under_load_serves_the_kept_image_and_compose_keeps_it(
    app_images: AppImages, make_stack: StackFactory,  # in this order: the stack goes first
) -> None:
    app_images.build("v1")
    stack = make_stack(released_compose(app_images.tag, keep=2), **FAST)
    for version in ("v2", "v3"):
        app_images.build(version)
        result = stack.swap("deploy", "app")
        assert result.returncode == 0, result.stdout + result.stderr
        stack.wait_serving(version)
    app_images.prune()
    assert app_images.exists("v2"), "kept (keep: 2): prune must leave it"
    assert not app_images.exists("v1"), "not kept any more: nothing holds it"
    before = stack.snapshot()

    refused = stack.swap("rollback", "app", "--to", "1")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "release 1 of app is not kept any more" in refused.stderr
    assert stack.snapshot() == before
    with Load(stack.url(), (KEEPALIVE_GETS, POSTS), LOAD_SECONDS) as load:
        time.sleep(2)
        result = stack.swap("rollback", "app")
        assert result.returncode == 0, result.stdout + result.stderr
        results = load.results()
    assert sum(r.failed for r in results) == 0, describe(results)
    assert all(r.requests > 0 for r in results), describe(results)
    assert stack.get() == (200, "v2")
    assert "release 4" in result.stdout.splitlines()[-1]

    history = stack.swap_json("history", "app")
    assert [(r["number"], r["kind"], r["outcome"]) for r in history["releases"]] == [
        (4, "rollback", "deployed"), (3, "deploy", "deployed"), (2, "deploy", "deployed"),
        (1, "found", "deployed")]
    assert history["releases"][0]["rollback_to"] == 2 and history["current"] == 4
    assert [r["image_id"] for r in history["releases"][:3]] == [
        app_images.ids["v2"], app_images.ids["v3"], app_images.ids["v2"]]
    lines = stack.swap("history", "app").stdout.splitlines()
    assert len(lines) == 4 and lines[0].startswith("*   4") and "rollback to 2" in lines[0]

    status = stack.swap_json("status")
    running = [c["Names"] for c in stack.containers("app")]
    (app,) = status["services"]
    assert status["exit_code"] == 0 and status["agrees"] is True
    assert [view["containers"] for view in app["serving"]] == [running]
    assert app["release"]["number"] == 4
    assert app["compose_would_recreate"] == []

    ids = stack.container_ids("app")
    stack.compose("up", "-d")
    assert stack.container_ids("app") == ids, "compose recreated the rolled-back container"
    assert stack.get() == (200, "v2")
    inspected = docker("image", "inspect", "-f", "{{.Id}}", app_images.tag).stdout.strip()
    assert inspected == app_images.ids["v2"], "compose's tag names the image that runs"

    stack.compose("up", "-d", "--no-recreate", "--scale", "app=2", "app")
    disagreeing = stack.swap("status", "app")
    assert disagreeing.returncode == 3, disagreeing.stdout + disagreeing.stderr
    assert "run(s) but nginx in" in disagreeing.stdout


def test_a_build_service_rolls_back_to_compose_s_own_image_name(
    engine: None, app_images: AppImages, tmp_path: Path,
) -> None:
    """compose names a `build:` service's image PROJECT-SERVICE. The test builds that image
    itself, as `docker compose build` would (no buildx here), so compose never builds."""
    compose = released_compose("unused")
    app = compose["services"]["app"]
    del app["image"]
    app["build"] = {"context": "."}
    stack = Stack(tmp_path / "stack", compose, NGINX_HTTP)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(tmp_path / "state"), **FAST}
    app_images.tag = f"{stack.name}-app"
    app_images.build("v1")
    try:
        stack.up()
        assert stack.swap("sync", "app").returncode == 0
        app_images.build("v2")
        due = stack.swap_json("status", "app")["services"][0]["compose_would_recreate"]
        assert due == [c["Names"] for c in stack.containers("app")]
        assert stack.swap("deploy", "app").returncode == 0
        stack.wait_serving("v2")

        result = stack.swap("rollback", "app")

        assert result.returncode == 0, result.stdout + result.stderr
        assert stack.get() == (200, "v1")
        ids = stack.container_ids("app")
        stack.compose("up", "-d")
        assert stack.container_ids("app") == ids
        assert stack.get() == (200, "v1")
    finally:
        stack.down()
        docker("rmi", "--force", app_images.tag, check=False)


@pytest.fixture(scope="module")
def released(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the tests that only read it: v1, then v2 deployed (the same image).

    The app image is pinned under a tag of its own: other worktrees sharing the engine may
    rebuild the test images, and the tag must not move between v1 and v2."""
    folder = tmp_path_factory.mktemp("released")
    stack = Stack(folder / "stack", http_compose(), NGINX_HTTP)
    pinned = f"docker-swap-test/app:releases-{uuid.uuid4().hex[:8]}"
    docker("tag", images.APP, pinned)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "alice"), "APP_IMAGE": pinned, **FAST}
    try:
        stack.up()
        assert stack.swap("sync", "app").returncode == 0
        report = stack.swap_json("deploy", "app", env={"APP_VERSION": "v2"})
        assert (report["exit_code"], report["release"]) == (0, 2), report
        yield stack
    finally:
        stack.down()
        docker("rmi", pinned, check=False)


def test_two_users_on_one_engine_see_the_same_status_and_history(
    released: Stack, tmp_path: Path,
) -> None:
    bob = {"DOCKER_SWAP_STATE_DIR": str(tmp_path / "bob")}

    for command in (("status",), ("history", "app")):
        alice_sees = released.swap_json(*command)
        bob_sees = released.swap_json(*command, env=bob)
        assert alice_sees == bob_sees
        assert alice_sees["exit_code"] == 0
    history = released.swap_json("history", "app", env=bob)
    assert [r["number"] for r in history["releases"]] == [2, 1]


def test_status_says_what_runs_and_what_nginx_sends_to(released: Stack) -> None:
    result = released.swap("status", "app")

    assert result.returncode == 0, result.stdout + result.stderr
    name = released.containers("app")[0]["Names"]
    assert result.stdout.splitlines()[0].startswith("app: release 2 (deploy, ")
    assert f"  proxy      nginx in {released.name}-proxy-1 -> {name}" in result.stdout
    assert "  ok         the proxy sends to the running containers" in result.stdout


@pytest.mark.parametrize(("args", "says"), [
    (("--to", "9"), "app has no release 9 (releases: 2, 1)"),
    (("--to", "2"), "release 2 of app is the one that runs now"),
    ((), "app has no earlier release to roll back to"),  # v1 and v2 share one image
])
def test_rollback_refuses_and_changes_nothing(
    released: Stack, args: tuple[str, ...], says: str,
) -> None:
    before = released.snapshot()

    result = released.swap("rollback", "app", *args)

    assert result.returncode == 2, result.stdout + result.stderr
    assert says in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert released.snapshot() == before


def test_status_reads_haproxy_s_servers_state(make_stack: StackFactory) -> None:
    stack = make_stack(haproxy_compose(), HAPROXY_CFG, **FAST)
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0

    status = stack.swap_json("status", "app")

    (app,) = status["services"]
    name = stack.containers("app")[0]["Names"]
    assert status["exit_code"] == 0, status
    assert [(v["source"], v["containers"]) for v in app["serving"]] == [
        (f"HAProxy in {stack.name}-proxy-1 (backend app)", [name])]
    stack.haproxy(f"set server app/{_slot_of(stack, app['serving'][0]['backends'][0])} "
                  "state maint")
    assert stack.swap("status", "app").returncode == 3


def test_status_reads_what_each_registry_agent_acknowledged(
    make_stack: StackFactory, tmp_path: Path,
) -> None:
    stack = make_stack(registry_compose(), sync=False, **FAST)
    stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
    agents = Agents(stack, tmp_path)
    try:
        agents.start_both_and_sync()
        assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0
        name = stack.containers("app")[0]["Names"]

        status = stack.swap_json("status", "app")

        assert status["exit_code"] == 0, status
        serving = sorted((v["source"], v["containers"]) for v in status["services"][0]["serving"])
        assert serving == [("agent haproxy-agent (alive, generation 2)", [name]),
                           ("agent nginx-agent (alive, generation 2)", [name])]
        agents.stop("haproxy-agent")
        failed = stack.swap("deploy", "app", "--switch-timeout", "2s", env={"APP_VERSION": "v3"})
        assert failed.returncode == 1, failed.stdout + failed.stderr
        silent = "agent haproxy-agent (silent, generation 2 of 4 published)"
        deadline = time.monotonic() + 15  # its heartbeat expires 5 s after it stopped
        while True:
            lagging = stack.swap_json("status", "app")
            sources = [v["source"] for v in lagging["services"][0]["serving"]]
            if silent in sources or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert silent in sources
        newest = stack.swap_json("history", "app")["releases"][0]
        assert (newest["number"], newest["outcome"]) == (3, "rolled_back"), newest
        assert "haproxy-agent" in newest["reason"] and newest["image_id"], newest
    finally:
        agents.stop_all()


def _slot_of(stack: Stack, backend: str) -> str:
    address, _, port = backend.rpartition(":")
    for line in stack.haproxy("show servers state app").splitlines():
        fields = line.split()
        if len(fields) > 18 and fields[4] == address and fields[18] == port:
            return fields[3]
    raise AssertionError(f"no slot holds {backend}")


def test_a_record_reads_back_from_the_engine_whatever_it_says(engine: None) -> None:
    """Labels go through the Dockerfile parser on import: quotes, `$`, backslashes. Then the
    project's releases are forgotten (as the demo does when it cleans up), and only they."""
    from docker_swap.engine import Engine  # noqa: PLC0415
    from docker_swap.releases.record import (  # noqa: PLC0415
            Release,
            keep_repository,
            parse_record,
            record_repository,
        )
    from docker_swap.releases.store import forget_releases, write_record  # noqa: PLC0415

    project = f"swaptest{uuid.uuid4().hex[:8]}"
    nasty = 'a "quoted" $HOME ${X} back\\slash \\n\nnewline é ✓ `tick` # = \'single\''
    release = Release(7, project, "app", "rolled_back", reason=nasty)
    real = Engine.connect()
    kept = f"{keep_repository(project, 'app')}:7"
    try:
        write_record(real, release)
        real.tag(str(real.image(images.APP).id), kept)  # type: ignore[union-attr]
        image = real.image(f"{record_repository(project, 'app')}:7")
        assert image is not None
        assert parse_record(image.labels) == release

        forget_releases(real, project)

        assert real.image(image.id) is None and real.image(kept) is None
        assert real.image(images.APP) is not None
    finally:
        docker("rmi", f"{record_repository(project, 'app')}:7", kept, check=False)


def test_history_json_is_json_for_a_service_without_releases(released: Stack) -> None:
    result = released.swap("history", "proxy", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["releases"] == []
