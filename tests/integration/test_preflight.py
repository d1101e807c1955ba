"""Every refusal: exit code 2, one clear sentence, nothing changed (real engine, compose, nginx)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.stack import NGINX_HTTP, Stack, docker, http_compose

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}


def refused(stack: Stack, *args: str, env: dict[str, str] | None = None) -> str:
    """Deploy, expect a refusal that changed nothing, and return its message on one line."""
    before = stack.snapshot()
    result = stack.swap("deploy", "app", *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("refused: "), result.stderr
    assert stack.snapshot() == before
    return " ".join(result.stderr.split())


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    return make_stack(http_compose(), **FAST)


def test_no_engine(stack: Stack) -> None:
    message = refused(stack, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert "no Docker engine answers" in message


def test_no_compose_v2(stack: Stack, tmp_path: Path) -> None:
    # A docker CLI without the compose plugin: every other command goes to the real one.
    shim = tmp_path / "bin" / "docker"
    shim.parent.mkdir()
    real = subprocess.run(["which", "docker"], capture_output=True, text=True, check=True)
    shim.write_text(
        "#!/bin/sh\n"
        "if [ \"$1\" = compose ]; then\n"
        "  echo \"docker: 'compose' is not a docker command.\" >&2; exit 1\n"
        "fi\n"
        f"exec {real.stdout.strip()} \"$@\"\n"
    )
    shim.chmod(0o755)
    message = refused(stack, env={"PATH": f"{shim.parent}:{os.environ['PATH']}"})
    assert "docker compose v2 is not installed" in message


def test_unknown_service(stack: Stack) -> None:
    before = stack.snapshot()
    result = stack.swap("deploy", "nope")
    assert result.returncode == 2
    assert "has no service 'nope' (services: app, proxy)" in result.stderr
    assert stack.snapshot() == before


def test_no_running_container(stack: Stack) -> None:
    stack.compose("stop", "app")
    assert "has no running container to replace" in refused(stack)


def test_a_stopped_container_beside_the_running_one(stack: Stack) -> None:
    stack.compose("up", "-d", "--no-recreate", "--scale", "app=2", "app")
    docker("stop", "--time", "0", sorted(c["Names"] for c in stack.containers("app"))[-1])
    message = refused(stack)
    assert "has stopped containers" in message and "docker rm" in message


def test_container_name_names_its_line(make_stack: StackFactory) -> None:
    compose = http_compose()
    compose["services"]["app"]["container_name"] = f"fixed-{os.getpid()}"
    stack = make_stack(compose, **FAST)
    line = next(i for i, text in enumerate(
        (stack.folder / "compose.yaml").read_text().splitlines(), start=1
    ) if "container_name" in text)
    message = refused(stack)
    assert f"sets container_name (compose.yaml line {line})" in message
    assert "remove that line" in message


def test_fixed_host_port_names_its_line(make_stack: StackFactory) -> None:
    compose = http_compose()
    compose["services"]["app"]["ports"] = ["127.0.0.1:18081:8000"]
    stack = make_stack(compose, **FAST)
    text = (stack.folder / "compose.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, start=1) if "18081" in t)
    message = refused(stack)
    assert f"publishes host port 18081 (compose.yaml line {line})" in message
    assert "publish the port on the proxy" in message


def test_no_proxy_configured(make_stack: StackFactory) -> None:
    compose = http_compose()
    stack = make_stack(compose, **FAST)
    del compose["services"]["app"]["x-swap"]["proxy"]
    stack.write()
    assert "no proxy is configured for service 'app'" in refused(stack)


def test_proxy_not_running(stack: Stack) -> None:
    stack.compose("stop", "proxy")
    assert "the proxy service 'proxy' has no running container" in refused(stack)


def test_nginx_without_the_include(make_stack: StackFactory) -> None:
    conf = NGINX_HTTP.replace("    include /etc/nginx/docker-swap/*.conf;\n", "")
    stack = make_stack(http_compose(), conf, sync=False, APP_PORT="80", **FAST)
    assert "add `include /etc/nginx/docker-swap/*.conf;` inside its http block" in refused(stack)


def test_nginx_sending_to_the_service_with_a_port(make_stack: StackFactory) -> None:
    conf = NGINX_HTTP.replace("proxy_pass http://app;", "proxy_pass http://app:8000;")
    stack = make_stack(http_compose(), conf, sync=False, **FAST)
    message = refused(stack)
    assert "/etc/nginx/nginx.conf:11 sends to app:8000" in message
    assert "`proxy_pass http://app;`" in message


def test_nginx_directory_not_on_a_volume(make_stack: StackFactory) -> None:
    compose = http_compose()
    compose["services"]["proxy"]["volumes"] = ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    stack = make_stack(compose, sync=False, APP_PORT="80", **FAST)
    assert "/etc/nginx/docker-swap in" in refused(stack)


def test_another_deploy_in_progress(stack: Stack) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", stack.name, "deploy", "app"],
        cwd=stack.folder, env=stack._env({"APP_VERSION": "v2", "NEVER_READY": "1"}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(stack.containers("app")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        result = stack.swap("deploy", "app", env={"APP_VERSION": "v3"})
        assert result.returncode == 2, result.stderr
        assert "another deploy of this service is in progress (pid" in result.stderr
        assert len(stack.containers("app")) == 2  # the second deploy started nothing
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 1
    assert len(stack.containers("app")) == 1


@pytest.mark.parametrize(("args", "expected"), [
    (("--timeout", "soon"), "--timeout has value 'soon'; expected a duration such as 30"),
    (("--proxy", "traefik"), "proxy 'traefik' is neither redis nor of the form DRIVER:SERVICE"),
    (("--port", "70000"), "--port has value 70000; expected a port number from 1 to 65535"),
    (("--http", "healthz"), "--http has value 'healthz'; expected a path starting with /"),
])
def test_bad_flags(stack: Stack, args: tuple[str, ...], expected: str) -> None:
    assert expected in refused(stack, *args)


def test_unknown_x_swap_key(make_stack: StackFactory) -> None:
    compose = http_compose()
    stack = make_stack(compose, **FAST)
    compose["services"]["app"]["x-swap"]["helth-cmd"] = "./healthcheck"
    stack.write()
    assert "x-swap of service 'app' has unknown key 'helth-cmd'" in refused(stack)


def test_ambiguous_port(make_stack: StackFactory) -> None:
    compose = http_compose()
    stack = make_stack(compose, **FAST)
    compose["services"]["app"]["expose"] = ["9000"]
    stack.write()
    stack.compose("up", "-d", "app")  # recreate it with two exposed ports
    message = refused(stack)
    assert "cannot tell which port of app the proxy should use (exposed: 8000, 9000)" in message
