"""What a fault case uses to look at the stack: long requests in flight, one GET, a free
port, the wait for a failpoint."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REACHED_SECONDS = 60.0
HELD_PATH, HELD_PER_PROXY = "/slow?seconds=4", 2
"""The long requests of `Case.long_requests`: sent at `ready`, in flight on the old version."""


class Held:
    """Long GETs through every proxy, each in a thread of its own; failures() waits for them."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.threads: list[threading.Thread] = []
        self.answers: list[str] = []

    def send(self) -> None:
        for port in self.ports:
            for _ in range(HELD_PER_PROXY):
                thread = threading.Thread(target=self._get, args=(port,), daemon=True)
                thread.start()
                self.threads.append(thread)
        time.sleep(0.3)  # they reach the old container before the deploy goes on

    def failures(self) -> list[str]:
        for thread in self.threads:
            thread.join(30)
        return [answer for answer in self.answers if not answer.startswith("200 ")]

    def _get(self, port: int) -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{HELD_PATH}",
                                        timeout=20) as answer:
                self.answers.append(f"{answer.status} {answer.read().decode().strip()}")
        except urllib.error.HTTPError as error:
            self.answers.append(f"port {port}: HTTP {error.code}")
        except OSError as error:
            self.answers.append(f"port {port}: {error!r}")


def reached(path: Path, process: subprocess.Popen[str]) -> bool:
    """Wait until the deploy writes `path` (True), or ends or hangs first (False)."""
    deadline = time.monotonic() + REACHED_SECONDS
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(port: int, path: str = "/") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError as error:
        return 0, type(error).__name__
