"""The command as people meet it: the Docker CLI plugin, doctor, output modes, the README."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from testbed.stack import NGINX_HTTP, Stack, http_compose

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}
README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.fixture
def docker_config(tmp_path: Path) -> dict[str, str]:
    """A DOCKER_CONFIG of its own, with docker-swap installed in it as a plugin."""
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    installed = subprocess.run([sys.executable, "-m", "docker_swap", "install-plugin"], env=env,
                               capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "docker-config" / "cli-plugins" / "docker-swap").exists()
    return env


def docker(env: dict[str, str], *args: str, cwd: Path | None = None,
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=300)


def test_docker_swap_is_a_docker_cli_plugin(docker_config: dict[str, str],
                                            make_stack: StackFactory) -> None:
    assert "swap*" in docker(docker_config, "--help").stdout
    assert docker(docker_config, "swap", "--version").stdout.strip().startswith("docker-swap")
    stack = make_stack(http_compose(), **FAST)

    result = docker({**docker_config, **stack.env, "APP_VERSION": "v2"},
                    "swap", "-p", stack.name, "deploy", "app", cwd=stack.folder)

    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.get() == (200, "v2")


def test_the_plugin_honours_dockers_context_option(docker_config: dict[str, str],
                                                   make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    env = {**docker_config, **stack.env}
    assert docker(env, "context", "create", "here",
                  "--docker", "host=unix:///var/run/docker.sock").returncode == 0
    assert docker(env, "context", "create", "nowhere",
                  "--docker", "host=unix:///nonexistent/docker.sock").returncode == 0

    refused = docker({**env, "APP_VERSION": "v2"}, "--context", "nowhere", "swap", "-p",
                     stack.name, "deploy", "app", cwd=stack.folder)
    deployed = docker({**env, "APP_VERSION": "v2"}, "--context", "here", "swap", "-p",
                      stack.name, "deploy", "app", cwd=stack.folder)

    assert refused.returncode == 2
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in refused.stderr
    assert deployed.returncode == 0, deployed.stderr


def test_the_context_chosen_with_docker_context_use_is_followed(
    docker_config: dict[str, str], make_stack: StackFactory
) -> None:
    stack = make_stack(http_compose(), **FAST)
    env = {**docker_config, **stack.env}
    docker(env, "context", "create", "nowhere", "--docker", "host=unix:///nonexistent/d.sock")
    assert docker(env, "context", "use", "nowhere").returncode == 0

    refused = stack.swap("deploy", "app", env={**env, "APP_VERSION": "v2"})

    assert refused.returncode == 2
    assert "no Docker engine answers at unix:///nonexistent/d.sock" in refused.stderr


def test_doctor_says_what_is_fine_and_what_to_fix(make_stack: StackFactory) -> None:
    good = make_stack(http_compose(), **FAST)
    healthy = good.swap("doctor")
    assert healthy.returncode == 0, healthy.stdout
    assert re.search(r"✓ app: proxy nginx \(.*\) on network .*: .*nginx 1\.30\.\d+, "
                     r"keepalive_min_timeout 2s \(docker-swap\)", healthy.stdout)
    assert "✓ app: port 8000; ready when: command ./healthcheck" in healthy.stdout

    conf = NGINX_HTTP.replace("    include /etc/nginx/docker-swap/*.conf;\n", "")
    bad = make_stack(http_compose(), conf, sync=False, APP_PORT="80", **FAST)
    sick = bad.swap("doctor")
    assert sick.returncode == 3, "needs attention: exit codes mean one thing everywhere"
    assert "✗ app:" in sick.stdout and "include /etc/nginx/docker-swap/*.conf;" in sick.stdout


def test_quiet_prints_nothing_when_all_goes_well(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    result = stack.swap("deploy", "app", "--quiet", env={"APP_VERSION": "v2"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def run_on_a_terminal(stack: Stack, *args: str, env: dict[str, str]) -> tuple[int, str]:
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", stack.name, *args], cwd=stack.folder,
        env=stack._env(env), stdin=terminal, stdout=terminal, stderr=terminal,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(60), output.decode(errors="replace")


def test_a_terminal_gets_a_live_view_and_no_color_when_asked(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)

    code, shown = run_on_a_terminal(stack, "deploy", "app",
                                    env={"APP_VERSION": "v2", "TERM": "xterm"})
    assert code == 0, shown
    assert "✓" in shown and "\x1b[32m" in shown  # green marks, redrawn in place
    code, plain = run_on_a_terminal(stack, "deploy", "app",
                                    env={"APP_VERSION": "v3", "TERM": "xterm", "NO_COLOR": "1"})
    assert code == 0, plain
    assert "✓" in plain and not re.search(r"\x1b\[3\dm", plain)


def test_every_flag_of_every_command_is_in_the_readme() -> None:
    commands = ["", "up", "deploy", "sync", "recover", "agent", "demo", "doctor",
                "install-plugin"]
    missing = []
    for command in commands:
        shown = subprocess.run([sys.executable, "-m", "docker_swap", *command.split(), "--help"],
                               capture_output=True, text=True, check=True).stdout
        for flag in set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", shown)) - {"--help"}:
            if f"`{flag}" not in README:
                missing.append(f"{command or '(global)'} {flag}")
    assert missing == []


def test_the_wheel_carries_the_example(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(Path(__file__).parents[2])], check=True,
                   capture_output=True)
    (wheel,) = tmp_path.glob("docker_swap-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in ("compose.yaml", "app/Dockerfile", "app/healthcheck", "app/src/.keep",
                 "sources/v2/index.php", "web/default.conf", "web/first-upstream.conf"):
        assert f"docker_swap/demo/example/{path}" in names, path
