from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from docker_swap.cli import plugin
from docker_swap.cli.plugin import install_plugin, launch_command

# A module that shadows one docker-swap imports at start-up (compose.py imports yaml).
SHADOW = "from pathlib import Path\nPath(__file__).with_name('ran').write_text('yes')\n"


def run_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    launcher = install_plugin()
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "yaml.py").write_text(SHADOW)
    result = subprocess.run([str(launcher), "--version"], cwd=folder, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "docker-swap" in result.stdout
    return folder


def test_the_launcher_runs_the_installed_script_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert launch_command() == [str(Path(sys.executable).with_name("docker-swap"))]
    folder = run_launcher(tmp_path, monkeypatch)
    assert not (folder / "ran").exists()


def test_without_a_console_script_python_runs_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plugin, "launch_command",
                        lambda: launch_command(tmp_path / "no-such-script"))
    folder = run_launcher(tmp_path, monkeypatch)
    assert "-I -m docker_swap" in plugin.plugin_path().read_text()
    assert not (folder / "ran").exists()
