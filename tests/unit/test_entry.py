from __future__ import annotations

import json
import subprocess
import sys

import pytest

from docker_swap._entry import plugin_arguments


def test_docker_global_options_become_the_environment_docker_would_set() -> None:
    environ: dict[str, str] = {}
    argv = plugin_arguments(
        ["--context", "prod", "-H=tcp://10.0.0.1:2376", "--config", "/cfg", "--tlsverify",
         "swap", "-p", "demo", "deploy", "app"], environ)
    assert argv == ["-p", "demo", "deploy", "app"]
    assert environ == {"DOCKER_CONTEXT": "prod", "DOCKER_HOST": "tcp://10.0.0.1:2376",
                       "DOCKER_CONFIG": "/cfg", "DOCKER_TLS_VERIFY": "1"}


def test_debug_turns_into_verbose() -> None:
    assert plugin_arguments(["-D", "swap", "doctor"], {}) == ["--verbose", "doctor"]


def test_an_unknown_docker_option_is_one_sentence() -> None:
    with pytest.raises(SystemExit, match="unknown docker option --frobnicate"):
        plugin_arguments(["--frobnicate", "swap", "deploy", "app"], {})


def test_the_plugin_metadata_is_answered_without_loading_the_sdk() -> None:
    script = ("import sys; sys.argv = ['docker-swap', 'docker-cli-plugin-metadata']; "
              "from docker_swap._entry import main; main(); "
              "print('docker' in sys.modules, 'rich' in sys.modules)")
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    metadata = json.loads(lines[0])
    assert metadata["SchemaVersion"] == "0.1.0" and metadata["Vendor"] == "docker-swap"
    assert lines[1] == "False False"


def test_the_deploy_command_loads_without_the_sdk_so_compose_starts_first() -> None:
    # deploy starts `docker compose config`, then loads the Docker SDK while compose works
    script = ("import sys, docker_swap.cli; "
              "print('docker' in sys.modules, 'redis' in sys.modules)")
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines == ["False False"]
