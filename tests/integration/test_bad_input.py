"""Bad input that needs the real engine, compose and proxies to show: each is refused in one
sentence with exit code 2 and nothing changed, or (a symlinked config) simply works."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.stack import HAPROXY_CFG, NGINX_HTTP, Stack, haproxy_compose, http_compose

from .conftest import StackFactory
from .test_preflight import refused
from .test_recovery import FAST


@pytest.fixture(scope="module")
def stack(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the refusals: a refusal changes nothing, so they can share it."""
    folder = tmp_path_factory.mktemp("bad-input")
    shared = Stack(folder / "stack", http_compose(), NGINX_HTTP)
    shared.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state"), **FAST}
    try:
        shared.up()
        assert shared.swap("sync", "app").returncode == 0
        yield shared
    finally:
        shared.down()


def test_a_non_ascii_http_path_is_refused_not_rolled_back(stack: Stack) -> None:
    message = refused(stack, "--http", "/santé")
    assert "--http has value '/santé'; expected a path starting with / such as /healthz, " \
        "in printable ASCII" in message


@pytest.mark.parametrize(("value", "shown"), [
    (float("inf"), "inf"), (float("nan"), "nan"), (int("9" * 400), "(400 characters)"),
], ids=["inf", "nan", "400 digits"])
def test_an_endless_duration_in_x_swap_is_refused(stack: Stack, value: object, shown: str) -> None:
    written = copy.deepcopy(stack.compose_file)
    stack.compose_file["services"]["app"]["x-swap"]["timeout"] = value  # YAML .inf, .nan, 400 9s
    stack.write()
    try:
        message = refused(stack)
    finally:
        stack.compose_file = written
        stack.write()
    assert "x-swap key 'timeout' has value" in message and shown in message
    assert "expected a duration of at most 24h." in message


def test_an_unwritable_state_folder_is_refused(stack: Stack, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    message = refused(stack, env={"DOCKER_SWAP_STATE_DIR": str(blocker / "state")})
    assert f"the state folder {blocker / 'state'}/" in message and "cannot be written" in message
    assert "DOCKER_SWAP_STATE_DIR" in message
    assert stack.markers() == []


def test_a_corrupt_journal_is_refused_with_what_to_do(stack: Stack) -> None:
    name = f"docker-swap-journal.{stack.name}.app.7"
    labels = {"docker-swap.for": f"{stack.name}/app", "docker-swap.project": stack.name,
              "docker-swap.kind": "journal", "docker-swap.sequence": "7",
              "docker-swap.entry": '{"phase": "star'}
    subprocess.run(["docker", "volume", "create", *[f"--label={k}={v}" for k, v in
                                                     labels.items()], name],
                   check=True, capture_output=True)
    try:
        message = refused(stack)
        recovering = stack.swap("recover", "app")
    finally:
        subprocess.run(["docker", "volume", "rm", name], check=True, capture_output=True)
    assert f"the journal of app on the engine (volume {name}) cannot be read" in message
    assert f"docker volume rm {name}" in message
    assert recovering.returncode == 2 and "Traceback" not in recovering.stderr
    assert recovering.stderr.startswith("refused: the journal of app")


def test_a_registry_service_without_a_network_is_refused(make_stack: StackFactory) -> None:
    compose = http_compose(proxy="redis", redis="redis://127.0.0.1:1/0")
    del compose["services"]["proxy"]
    compose["services"]["app"]["network_mode"] = "none"
    stack = make_stack(compose, sync=False, **FAST)
    before = stack.container_ids("app")
    result = stack.swap("deploy", "app")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("refused: ")
    assert stack.container_ids("app") == before
    message = " ".join(result.stderr.split())
    assert "service 'app' uses network_mode none (compose.yaml line" in message
    assert "the proxy cannot reach its containers" in message


def haproxy_stack(make_stack: StackFactory, config: str, **proxy: Any) -> Stack:
    compose = haproxy_compose()
    compose["services"]["proxy"] |= proxy
    return make_stack(compose, config, sync=False, **FAST)


def test_a_stats_socket_from_the_environment_is_refused(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    config = HAPROXY_CFG.replace("stats socket ipv4@127.0.0.1:9999",
                                 'stats socket "${ADMIN_SOCKET}"')
    stack = haproxy_stack(make_stack, config,
                          environment={"ADMIN_SOCKET": "ipv4@127.0.0.1:9999"})
    synced = stack.swap("sync", "app")
    assert synced.returncode == 2, synced.stderr
    assert "Traceback" not in synced.stderr
    assert 'its stats socket is given by an environment variable ("${ADMIN_SOCKET}")' in \
        " ".join(synced.stderr.split())


def test_a_symlinked_haproxy_config_is_followed(make_stack: StackFactory, tmp_path: Path) -> None:
    conf = tmp_path / "stack0" / "conf"  # the folder make_stack gives its first stack
    conf.mkdir(parents=True)
    (conf / "real.cfg").write_text(HAPROXY_CFG)
    (conf / "haproxy.cfg").symlink_to("real.cfg")
    stack = haproxy_stack(
        make_stack, HAPROXY_CFG,
        command=["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/conf/haproxy.cfg"],
        volumes=["./conf:/usr/local/etc/haproxy/conf:ro", "swap:/var/lib/haproxy/docker-swap"],
    )
    synced = stack.swap("sync", "app")
    assert synced.returncode == 0, synced.stderr
    deployed = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})
    assert deployed.returncode == 0, deployed.stderr
    assert stack.get() == (200, "v2")
