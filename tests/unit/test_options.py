from __future__ import annotations

import pytest

from docker_swap.errors import InvalidSettings
from docker_swap.options import DEFAULT_DRAIN_TIMEOUT, DEFAULT_TIMEOUT, ComposeOptions, ProxyRef
from docker_swap.settings import parse_duration, resolve_settings


def test_defaults() -> None:
    options = resolve_settings("app", {}, {})
    assert (options.timeout, options.drain_timeout) == (DEFAULT_TIMEOUT, DEFAULT_DRAIN_TIMEOUT)
    assert options.proxy is None and options.health_cmd is None
    assert options.upstream_name == "app"


def test_x_swap_is_read_and_flags_win() -> None:
    x_swap = {"proxy": "nginx:web", "port": 8080, "health-cmd": "./healthcheck --quick",
              "timeout": "1m30s", "drain-timeout": 5, "upstream": "backend"}
    options = resolve_settings("app", x_swap, {"timeout": "10", "port": None})
    assert options.proxy == ProxyRef("nginx", "web")
    assert options.port == 8080
    assert options.health_cmd == ("./healthcheck", "--quick")
    assert options.timeout == 10.0
    assert options.drain_timeout == 5.0
    assert options.upstream_name == "backend"


@pytest.mark.parametrize("driver", ["nginx", "haproxy", "caddy"])
def test_every_proxy_driver_takes_a_service(driver: str) -> None:
    assert ProxyRef.parse(f"{driver}:web") == ProxyRef(driver, "web")
    assert str(ProxyRef.parse(f"{driver}:web")) == f"{driver}:web"


def test_a_readiness_flag_replaces_both_readiness_keys() -> None:
    x_swap = {"health-cmd": "./healthcheck", "timeout": "5s"}
    options = resolve_settings("app", x_swap, {"http": "/healthz"})
    assert (options.health_cmd, options.http_path, options.timeout) == (None, "/healthz", 5.0)


def test_a_health_command_may_be_a_list() -> None:
    options = resolve_settings("app", {"health-cmd": ["sh", "-c", "exit 0"]}, {})
    assert options.health_cmd == ("sh", "-c", "exit 0")


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30.0), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5", 1.5), (2, 2.0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1", "0", "1x", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("x_swap", "flags", "message"), [
    ({"helth-cmd": "x"}, {}, "x-swap of service 'app' has unknown key 'helth-cmd'"),
    ({"port": "http"}, {}, "x-swap key 'port' has value 'http'; expected a port number"),
    ({}, {"port": 0}, "--port has value 0; expected a port number from 1 to 65535"),
    ({}, {"proxy": "nginx"}, "proxy 'nginx' is neither redis nor of the form DRIVER:SERVICE"),
    ({}, {"proxy": "traefik:web"}, "proxy 'traefik:web' is neither redis nor of the form"),
    ({}, {"http": "healthz"}, "--http has value 'healthz'; expected a path starting with /"),
    ({}, {"upstream": "my app"}, "--upstream has value 'my app'"),
    ({}, {"health-cmd": "  "}, "--health-cmd has value '  '; expected a command"),
    ({"timeout": True}, {}, "x-swap key 'timeout' has value True"),
])
def test_bad_settings_are_one_sentence(
    x_swap: dict[str, object], flags: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidSettings) as error:
        resolve_settings("app", x_swap, flags)
    assert message in error.value.message
    assert error.value.message.endswith(".")


def test_compose_options_become_compose_flags() -> None:
    options = ComposeOptions(("a.yaml", "b.yaml"), "demo", "/srv", (".env",), ("web",))
    assert options.argv() == [
        "--file", "a.yaml", "--file", "b.yaml", "--project-name", "demo",
        "--project-directory", "/srv", "--env-file", ".env", "--profile", "web",
    ]
