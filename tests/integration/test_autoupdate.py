"""`autoupdate` against a real image registry (Debian's docker-registry on 127.0.0.1): a moved
tag deployed under load with no failed request, a broken one rolled back, reported and not
tried again, newer tags by policy written to the compose file, and a long-lived process that
survives the registry's restart and counts what it did."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from testbed.image_registry import ImageRegistry, app_version, free_port
from testbed.load import MIXED, Load
from testbed.stack import http_compose

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ImageRegistry]:
    registry = ImageRegistry(tmp_path / "registry").start()
    yield registry
    registry.stop()


class Hook:
    """A notification endpoint: every JSON body POSTed to it, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/s3cret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> list[tuple[str, str]]:
        return [(e["event"], e.get("outcome", "")) for e in self.events]


@pytest.fixture
def hook() -> Iterator[Hook]:
    hook = Hook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def followed(registry: ImageRegistry, tag: str = "stable", **x_swap: object) -> dict[str, Any]:
    """The app from the registry (its version built into the image), behind nginx."""
    compose = http_compose("1.30", **x_swap)
    app = compose["services"]["app"]
    app["image"] = registry.reference("app", tag)
    for key in ("VERSION", "NEVER_READY", "ERRORS", "EXIT_AFTER"):  # the image's own
        del app["environment"][key]
    return compose


def test_a_moved_tag_is_deployed_under_load_and_a_broken_one_is_rolled_back_once(
    make_stack: StackFactory, registry: ImageRegistry, hook: Hook,
) -> None:
    registry.push(app_version("v1"), "app", "stable")
    stack = make_stack(followed(registry), **FAST)
    assert stack.swap("autoupdate", "--once", "app").returncode == 0  # nothing moved

    registry.push(app_version("v2"), "app", "stable")
    with Load(stack.url(), MIXED, 20) as load:
        time.sleep(1)
        moved = stack.swap("autoupdate", "--once", "--notify", hook.url, "app")
        results = load.results()
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert sum(r.failed for r in results) == 0, "\n".join(r.describe() for r in results)
    assert stack.get() == (200, "v2")
    assert hook.kinds() == [("found", ""), ("updated", "done")]
    assert hook.events[1]["to"]["reference"] == registry.reference("app", "stable")

    registry.push(app_version("v3", NEVER_READY="1"), "app", "stable")
    broken = stack.swap("autoupdate", "--once", "--notify", hook.url, "--timeout", "4s", "app")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert stack.get() == (200, "v2")
    assert hook.kinds()[2:] == [("found", ""), ("updated", "rolled_back")]

    again = stack.swap_json("autoupdate", "--once", "--notify", hook.url, "app")
    assert again["exit_code"] == 0 and "not tried again" in again["skipped"]["app"]
    assert len(hook.events) == 4, "a digest that failed is not found again"
    assert "s3cret-token" not in broken.stdout + broken.stderr


def test_a_policy_moves_to_the_newest_tag_it_allows_and_writes_it_in_the_compose_file(
    make_stack: StackFactory, registry: ImageRegistry,
) -> None:
    for tag, version in (("1.0.0", "v1.0.0"), ("1.1.0", "v1.1.0"), ("2.0.0", "v2.0.0")):
        registry.push(app_version(version), "app", tag)
    stack = make_stack(followed(registry, "1.0.0", autoupdate="minor"), **FAST)

    result = stack.swap_json("autoupdate", "--once")  # no name: x-swap says what to follow

    assert result["exit_code"] == 0, result
    assert [m["to"] for m in result["moves"]] == [registry.reference("app", "1.1.0")]
    assert registry.reference("app", "1.1.0") in (stack.folder / "compose.yaml").read_text()
    assert stack.get() == (200, "v1.1.0")


def read_metrics(port: int, expected: str, seconds: float = 20) -> str:
    """The metrics page once it shows `expected` (the update ends a little after it serves)."""
    deadline = time.monotonic() + seconds
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = str(page.read().decode())
        if expected in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_a_long_lived_autoupdate_survives_the_registry_restart_and_counts_its_updates(
    make_stack: StackFactory, registry: ImageRegistry,
) -> None:
    registry.push(app_version("v1"), "app", "stable")
    stack = make_stack(followed(registry), **FAST)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", stack.name, "autoupdate", "app",
         "--interval", "1s", "--metrics", f"127.0.0.1:{port}"],
        cwd=stack.folder, env=stack._env({}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        time.sleep(3)
        registry.stop()
        time.sleep(4)
        registry.start()
        registry.push(app_version("v2"), "app", "stable")
        pushed = time.monotonic()
        stack.wait_serving("v2", seconds=60)
        took = time.monotonic() - pushed
        text = read_metrics(port, 'outcome="done"')
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr and "check   app:" in stderr, stderr  # one line each
    assert took < 30, took
    assert 'docker_swap_autoupdate_updates_total{outcome="done",service="app"} 1.0' in text
    assert "docker_swap_autoupdate_last_check_success 1.0" in text
