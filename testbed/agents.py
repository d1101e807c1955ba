"""`docker-swap agent` processes beside a registry stack's proxies, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .stack import Stack


class Agents:
    """One agent per proxy of a stack made by `registry_compose`; logs go to `logs`."""

    def __init__(self, stack: Stack, logs: Path) -> None:
        self.stack, self.logs = stack, logs
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.offsets: dict[str, int] = {}

    def start(self, name: str, proxy: str, env: Mapping[str, str] | None = None,
              *, wait: bool = True) -> None:
        """Start an agent (with `env` on top of the stack's); with `wait`, until it is ready."""
        path = self.logs / f"{name}.log"
        self.offsets[name] = len(path.read_text()) if path.exists() else 0
        with (self.logs / f"{name}.log").open("a") as log:  # the process keeps its own copy
            self.running[name] = subprocess.Popen(
                [sys.executable, "-m", "docker_swap", "-p", self.stack.name, "agent", "app",
                 "--proxy", proxy, "--name", name, "--resync", "1s"],
                cwd=self.stack.folder, env=self.stack._env(env), stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )
        if wait:
            self.wait_for(name, "ready at generation")

    def stop(self, name: str) -> None:
        process = self.running.pop(name)
        process.terminate()
        process.wait(30)

    def wait_for(self, name: str, text: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.log(name):
            assert self.running[name].poll() is None, self.log(name)
            assert time.monotonic() < deadline, self.log(name)
            time.sleep(0.1)

    def log(self, name: str) -> str:
        """What the agent printed since it was (re)started."""
        return (self.logs / f"{name}.log").read_text()[self.offsets.get(name, 0):]

    def stop_all(self) -> None:
        for process in self.running.values():
            process.terminate()
            process.wait(30)

    def start_both_and_sync(self) -> None:
        """An agent for nginx and one for HAProxy, then the first generation: what runs now."""
        self.start("nginx-agent", "nginx:proxy")
        self.start("haproxy-agent", "haproxy:haproxy")
        result = self.stack.swap("sync", "app")
        assert result.returncode == 0, result.stdout + result.stderr
        self.stack.wait_serving("v1", proxy="proxy")
        self.stack.wait_serving("v1", proxy="haproxy")
