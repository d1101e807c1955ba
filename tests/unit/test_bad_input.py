"""Bad input is refused in one sentence, with the exit code of a refusal (2), never a
traceback. What needs a real engine is in tests/integration/test_bad_input.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_swap.compose import Compose
from docker_swap.errors import EXIT_REFUSED, ComposeUnavailable, InvalidSettings, NotSwappable
from docker_swap.models import Container, ServiceDefinition
from docker_swap.options import MAX_DURATION, ComposeOptions
from docker_swap.proxy.haproxy_runtime import (
    Socket,
    parse_servers_state,
    parse_sessions,
    parse_setup,
)
from docker_swap.proxy.nginx_config import parse_version
from docker_swap.settings import parse_duration, resolve_settings
from docker_swap.targets.compose.preflight import proxy_network, refuse_unswappable


@pytest.mark.parametrize("value", [
    float("inf"), float("-inf"), float("nan"), 10**400, "1" * 400, "9" * 400 + "h",
    MAX_DURATION + 1, "25h", "1441m",
])
def test_durations_that_never_end_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="a duration of at most 24h"):
        parse_duration(value)


def test_a_day_is_the_longest_duration() -> None:
    assert parse_duration("24h") == parse_duration(MAX_DURATION) == MAX_DURATION


@pytest.mark.parametrize(("value", "shown"), [
    (float("inf"), "inf"), (float("nan"), "nan"), (10**400, "1000000000000000000000000000000000"
                                                            "000000... (401 characters)"),
])
def test_an_endless_x_swap_timeout_is_one_sentence(value: object, shown: str) -> None:
    with pytest.raises(InvalidSettings) as refused:
        resolve_settings("app", {"timeout": value}, {})
    assert refused.value.message == (
        f"x-swap key 'timeout' has value {shown}; expected a duration of at most 24h.")
    assert refused.value.exit_code == EXIT_REFUSED


@pytest.mark.parametrize("path", ["/héllo", "/a b", "/tab\there", "/\x7f", "/\n", "", "x/"])
def test_an_http_path_that_cannot_go_on_a_request_line_is_refused(path: str) -> None:
    with pytest.raises(InvalidSettings, match="expected a path starting with /") as refused:
        resolve_settings("app", {}, {"http": path})
    assert refused.value.exit_code == EXIT_REFUSED


def test_an_http_path_may_have_a_query_and_percent_escapes() -> None:
    assert resolve_settings("app", {}, {"http": "/h%C3%A9?x=1&y=~"}).http_path == \
        "/h%C3%A9?x=1&y=~"


GLOBAL = "global\n    {socket}\nbackend app\n    server-template app 4 localhost:1 disabled\n"


@pytest.mark.parametrize("socket", [
    'stats socket "${ADMIN_SOCKET}" level admin', "stats socket $SOCK level admin",
    'stats socket ipv4@127.0.0.1:"${PORT}" level admin',
])
def test_a_stats_socket_from_the_environment_is_refused_in_one_sentence(socket: str) -> None:
    with pytest.raises(ValueError, match="given by an environment variable") as refused:
        parse_setup(GLOBAL.format(socket=socket))
    assert "`stats socket ipv4@127.0.0.1:9999 level admin`" in str(refused.value)


@pytest.mark.parametrize("socket", ["stats socket ipv4@127.0.0.1:admin", "stats socket :99999"])
def test_a_stats_socket_without_a_usable_port_is_refused(socket: str) -> None:
    with pytest.raises(ValueError, match="has no port docker-swap can use"):
        parse_setup(GLOBAL.format(socket=socket))


def test_a_usable_socket_beside_an_unusable_one_is_used() -> None:
    config = GLOBAL.format(socket='stats socket "$SOCK"\n    stats socket ipv4@127.0.0.1:9999')
    assert parse_setup(config).socket == Socket(host="127.0.0.1", port=9999)
    quoted = GLOBAL.format(socket='stats socket "/run/haproxy.sock" level admin')
    assert parse_setup(quoted).socket == Socket(path="/run/haproxy.sock")


def test_haproxy_answers_that_are_not_numbers_are_skipped() -> None:
    line = "3 app 1 app1 10.0.0.2 2 0 1 1 5 6 0 0 0 1 0 0 - {port} 0 0 - - 0"
    assert parse_servers_state(line.format(port="x")) == []
    assert parse_servers_state("²" + line.format(port="80")[1:]) == []
    assert [s.port for s in parse_servers_state(line.format(port="80"))] == [80]
    stat = "# pxname,svname,scur,qcur\napp,app1,many,1\napp,app2,2,0\n"
    assert parse_sessions(stat, "app") == {"app1": 1, "app2": 2}


def test_an_nginx_version_with_endless_digits_is_no_version() -> None:
    assert parse_version("nginx version: nginx/1." + "9" * 5000 + ".0") is None
    assert parse_version("nginx version: nginx/1.30.0") == (1, 30, 0)


def _container(networks: dict[str, str]) -> Container:
    return Container(id="a" * 64, name="demo-app-1", project="demo", service="app", number=1,
                     status="running", networks=networks, config_files=())


def test_a_service_without_a_network_is_refused() -> None:
    with pytest.raises(NotSwappable, match="uses network_mode none, so the proxy cannot reach"):
        refuse_unswappable(ServiceDefinition("app", network_mode="none"),
                           [_container({"none": ""})])


@pytest.mark.parametrize("networks", [{}, {"none": ""}])
def test_the_registry_refuses_a_container_without_an_address(networks: dict[str, str]) -> None:
    with pytest.raises(NotSwappable, match="demo-app-1 has no address on any network"):
        proxy_network([], _container(networks))


def test_a_number_too_long_for_python_in_the_project_is_one_sentence(tmp_path: Path) -> None:
    config = "name: demo\\nservices:\\n  app:\\n    x-swap: {timeout: " + "9" * 5000 + "}\\n"
    script = tmp_path / "docker"
    script.write_text(f"#!/bin/sh\nprintf '{config}'\n")
    script.chmod(0o755)
    compose = Compose(ComposeOptions(), docker=str(script))
    with pytest.raises(ComposeUnavailable, match="cannot be read: Exceeds the limit") as refused:
        compose.load_project()
    assert refused.value.exit_code == EXIT_REFUSED
