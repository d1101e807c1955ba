"""The bundled example and the demo, as a new user meets them (real engine, compose, nginx)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from testbed import images
from testbed.stack import remove_releases

EXAMPLE = Path(__file__).parents[2] / "examples" / "classic"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_bases() -> dict[str, str]:
    return {"APP_BASE": images.BOOKWORM, "WEB_BASE": images.SID}


def test_the_walkthrough_works_as_its_readme_says(engine: None, tmp_path: Path) -> None:
    folder = tmp_path / "classic"
    shutil.copytree(EXAMPLE, folder)
    port = free_port()
    env = {**os.environ, **local_bases(), "WEB_PORT": str(port),
           "DOCKER_SWAP_STATE_DIR": str(tmp_path / "state")}
    project = ["-p", f"classic{port}"]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, cwd=folder, env=env, text=True, capture_output=True,
                                check=False)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        return result

    def page() -> str:
        deadline = time.monotonic() + 30  # the app boots for 2 s after `up`
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
                    return str(answer.read().decode().strip())
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    try:
        run("sh", "-c", "cp sources/v1/* app/src/")
        run("docker", "compose", *project, "up", "-d", "--wait")
        assert page() == "v1"
        run("sh", "-c", "cp sources/v2/* app/src/")
        run("docker", "compose", *project, "build", "app")
        deployed = run(sys.executable, "-m", "docker_swap", *project, "deploy", "app",
                       "--health-cmd", "./healthcheck")
        assert deployed.stdout.splitlines()[-1].startswith("done")
        assert page() == "v2"
    finally:
        subprocess.run(["docker", "compose", *project, "down", "-v", "--rmi", "local", "-t", "0"],
                       cwd=folder, env=env, capture_output=True, check=False)
        remove_releases(project[1])


def test_the_demo_reports_no_failed_request_and_both_versions(
        engine: None, tmp_path: Path) -> None:
    port = free_port()
    chart = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "docker_swap", "demo", "--swaps", "2", "--port", str(port),
         "--json", "--report", str(chart)], env={**os.environ, **local_bases()}, text=True,
        capture_output=True, check=False, timeout=600,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert sum(report["sent"].values()) > 1000
    assert report["failed"] == {}
    assert set(report["versions"]) == {"v1", "v2"}
    assert [s["version"] for s in report["swaps"]] == ["v2", "v1"]
    # up replaces the example's two replicas one batch at a time: five phases per batch (the
    # first batch's old container retires once the second batch's new one started)
    for swap in report["swaps"]:
        assert [p["name"] for p in swap["phases"]] == [
            "app 1/2 start", "app 1/2 ready", "app 1/2 switch", "app 1/2 drain",
            "app 2/2 start", "app 1/2 retire", "app 2/2 ready", "app 2/2 switch",
            "app 2/2 drain", "app 2/2 retire"]
    assert project_containers() == []
    page = chart.read_text()  # the chart of that very run
    assert "<svg" in page and "2 swap(s) under load, 0 failed" in page
    assert "requests/s" in page and "p99 ms" in page


def test_ctrl_c_stops_the_demo_and_removes_what_it_made(engine: None, tmp_path: Path) -> None:
    """Ctrl-C once the first swap can only finish (its last batch draining, after the
    switch): that swap finishes, no other starts, everything is removed, exit 130. (Earlier,
    `up` is stopped between its batches and rolls back: exit 1.)"""
    demo = subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "demo", "--swaps", "3", "--port",
         str(free_port())], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **local_bases(), "DOCKER_SWAP_FAILPOINTS": "drain#2=pause",
             "DOCKER_SWAP_FAILPOINT_DIR": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "drain.reached").exists():
            assert demo.poll() is None and time.monotonic() < deadline, "no swap drained"
            time.sleep(0.1)
        demo.send_signal(signal.SIGINT)
        time.sleep(0.5)  # noted, while the swap waits at its drain
        (tmp_path / "drain.release").touch()
        stdout, stderr = demo.communicate(timeout=180)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, stdout + stderr
    assert "SIGINT received" in stdout and "swap 2/3" not in stdout, stdout
    assert project_containers() == []


def project_containers() -> list[str]:
    return subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="
         "docker-swap-demo"], capture_output=True, text=True, check=True).stdout.split()
