"""Caddy: switched by slot files it reads on every request, never reloaded (real Caddy 2.11).

Most tests share one stack (two replicas behind an HTTP and an HTTPS site); each leaves it
serving, with every slot naming a running container.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import images
from testbed.agents import Agents
from testbed.load import KEEPALIVE_GETS, POSTS, Client, Load, Result
from testbed.stack import (
    CADDY_SLOTS,
    CADDYFILE,
    CADDYFILE_TLS,
    Stack,
    caddy_compose,
    docker,
    registry_compose,
)

from .conftest import StackFactory

SWAPS = 10
FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}
SLOW_GETS = Client("slow GET (1 s)", "/slow?seconds=1", 4)  # each swap drains them
SLOTS = [f"/etc/caddy/docker-swap/app.{n}" for n in range(1, 5)]


@pytest.fixture(scope="module")
def shared(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("caddy")
    stack = Stack(folder / "stack", caddy_compose(), CADDYFILE_TLS)
    stack.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state"), "LISTEN_DELAY": "0.5",
                 "WARMUP": "0.5"}
    stack.up()
    try:
        stack.compose("up", "-d", "--no-recreate", "--scale", "app=2", "app")
        result = stack.swap("sync", "app")
        assert result.returncode == 0, result.stdout + result.stderr
        stack.wait_serving("v1")
        _wait_warm(stack)  # both replicas: the second one was scaled up a moment ago
        yield stack
    finally:
        stack.down()


def _wait_warm(stack: Stack, seconds: float = 30) -> None:
    """Until every app container answers its own health check (200 once warm)."""
    deadline = time.monotonic() + seconds
    for container in stack.container_ids("app"):
        while docker("exec", container, "./healthcheck", check=False).returncode != 0:
            assert time.monotonic() < deadline, f"{container} did not warm up"
            time.sleep(0.1)


def describe(results: list[Result]) -> str:
    return "\n".join(r.describe() for r in results)


def slot_files(stack: Stack) -> list[str]:
    return [docker("exec", stack.proxy_container(), "cat", path, check=False).stdout
            for path in SLOTS]


def app_addresses(stack: Stack) -> set[str]:
    ids = [c["ID"] for c in stack.containers("app")]
    found = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                   *ids).stdout
    return set(found.split())


def configurations_loaded(stack: Stack) -> int:
    """How often this Caddy loaded a configuration: at its start, and at every reload."""
    logs = docker("logs", stack.proxy_container()).stderr
    return logs.count('"msg":"autosaved config')


def certificate(stack: Stack) -> bytes:
    """The certificate the HTTPS site presents (Caddy's internal CA issued it)."""
    host, port = stack.url(https=True).removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return der


def first_answer(stack: Stack) -> int:
    """The status of the first request Caddy answers once it listens."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return stack.get()[0]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def version(stack: Stack) -> str:
    return stack.get()[1]


def test_ten_swaps_of_two_replicas_under_http_and_https_load_fail_no_request(
    shared: Stack,
) -> None:
    caddy = shared.proxy_container()
    loads_before = configurations_loaded(shared)
    assert loads_before >= 1  # its start: the count sees Caddy's log
    over_each = (KEEPALIVE_GETS, SLOW_GETS, POSTS)
    with Load(shared.url(), over_each, 120) as over_http, \
            Load(shared.url(https=True), over_each, 120) as over_https:
        time.sleep(1.5)
        for number in range(2, SWAPS + 2):
            result = shared.swap("deploy", "app", env={"APP_VERSION": f"v{number}"})
            assert result.returncode == 0, result.stdout + result.stderr
        time.sleep(1.5)
        over_http.stop()
        over_https.stop()
        results = over_http.results() + over_https.results()

    assert sum(r.failed for r in results) == 0, describe(results)
    assert all(r.requests > 0 for r in results), describe(results)
    assert version(shared) == f"v{SWAPS + 1}"
    assert len(shared.containers("app")) == 2
    assert {f.strip() for f in slot_files(shared)} == app_addresses(shared)
    assert shared.proxy_container() == caddy
    assert configurations_loaded(shared) == loads_before, "Caddy reloaded its configuration"


def test_the_https_site_keeps_its_certificate_and_serves_the_new_version(
    shared: Stack,
) -> None:
    before = certificate(shared)

    result = shared.swap("deploy", "app", env={"APP_VERSION": "v20"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert certificate(shared) == before
    load = Load(shared.url(https=True), (KEEPALIVE_GETS,), 1)
    with load:
        (answered,) = load.results()
    assert answered.requests > 0 and answered.failed == 0, answered.describe()


def test_a_rollback_leaves_every_slot_on_the_old_containers(shared: Stack) -> None:
    before, serving = slot_files(shared), version(shared)

    result = shared.swap("deploy", "app", "--timeout", "2",
                         env={"APP_VERSION": "never", "NEVER_READY": "1"})

    assert result.returncode == 1, result.stdout + result.stderr
    assert slot_files(shared) == before
    assert version(shared) == serving


def test_caddy_restarted_or_recreated_serves_the_new_version(shared: Stack) -> None:
    serving = version(shared)
    assert serving != "v1"

    shared.compose("restart", "proxy")
    shared.wait_serving(serving)
    shared.compose("up", "-d", "--no-deps", "--force-recreate", "proxy")
    shared.wait_serving(serving)

    result = shared.swap("deploy", "app", env={"APP_VERSION": "v30"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert version(shared) == "v30"


def test_recover_drains_and_retires_after_a_deploy_killed_past_its_switch(
    shared: Stack, tmp_path: Path
) -> None:
    env = {"APP_VERSION": "v40", "DOCKER_SWAP_FAILPOINTS": "drain=pause",
           "DOCKER_SWAP_FAILPOINT_DIR": str(tmp_path)}
    slower = Client("slow GET (4 s)", "/slow?seconds=4", 4)  # still in flight when recover runs
    with Load(shared.url(), (KEEPALIVE_GETS, slower, POSTS), 60) as load:
        time.sleep(1)
        deploy = subprocess.Popen(
            [sys.executable, "-m", "docker_swap", "-p", shared.name, "deploy", "app"],
            cwd=shared.folder, env=shared._env(env), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (tmp_path / "drain.reached").exists():
            assert deploy.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        deploy.kill()  # switched, old containers still up with requests in flight
        deploy.wait()

        result = shared.swap("recover", "app")

        assert result.returncode == 0, result.stdout + result.stderr
        time.sleep(1)
        load.stop()
        results = load.results()
    assert "finished" in result.stdout, result.stdout
    assert sum(r.failed for r in results) == 0, describe(results)
    assert version(shared) == "v40"
    assert len(shared.containers("app")) == 2
    assert {f.strip() for f in slot_files(shared)} == app_addresses(shared)


def test_doctor_reports_the_version_and_the_slots(shared: Stack) -> None:
    result = shared.swap("doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Caddy 2.11." in result.stdout
    assert "4 slots of app in /etc/caddy/docker-swap (port 8000)" in result.stdout


def test_a_broken_or_missing_slot_file_is_caught_and_rewritten(shared: Stack) -> None:
    caddy = shared.proxy_container()
    docker("exec", caddy, "sh", "-c", f"echo app:8000 > {SLOTS[2]} && rm {SLOTS[3]}")

    doctor = shared.swap("doctor")
    assert doctor.returncode == 3
    assert f"{SLOTS[2]}, {SLOTS[3]} are missing or hold no IP address" in " ".join(
        doctor.stdout.split())

    report = shared.swap_json("deploy", "app", env={"APP_VERSION": "v31"})
    assert report["exit_code"] == 0, report
    assert any(SLOTS[3] in note for note in report["notes"]), report["notes"]
    assert {f.strip() for f in slot_files(shared)} == app_addresses(shared)
    assert all(ipaddress.ip_address(f.strip()) for f in slot_files(shared))
    assert version(shared) == "v31"


def test_sync_writes_the_slots_of_a_caddy_started_with_them(make_stack: StackFactory) -> None:
    stack = make_stack(caddy_compose(), CADDYFILE, sync=False, **FAST)
    assert first_answer(stack) == 502  # no slot file yet: Caddy cannot dial
    doctor = stack.swap("doctor")
    assert doctor.returncode == 3 and "no slot of app holds an address yet" in doctor.stdout

    result = stack.swap("sync", "app")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "reloaded" not in result.stdout
    assert stack.get() == (200, "v1")


def test_a_json_configuration_works_the_same(make_stack: StackFactory) -> None:
    compose = caddy_compose()
    compose["services"]["proxy"] |= {
        "command": ["caddy", "run", "--config", "/etc/caddy/caddy.json"],
        "volumes": ["./Caddyfile:/etc/caddy/caddy.json:ro", "swap:/etc/caddy/docker-swap"],
    }
    upstreams = [{"dial": f"{{file./etc/caddy/docker-swap/app.{n}}}:8000"} for n in (1, 2)]
    config = {"apps": {"http": {"servers": {"srv0": {"listen": [":80"], "routes": [
        {"handle": [{"handler": "reverse_proxy", "upstreams": upstreams}]}]}}}}}
    stack = make_stack(compose, json.dumps(config), **FAST)
    assert stack.get() == (200, "v1")

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.get() == (200, "v2")


def test_sync_adopts_a_running_caddy_by_writing_the_slots_before_one_reload(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(caddy_compose(), "http:// {\n\treverse_proxy app:8000\n}\n", sync=False,
                       **FAST)
    stack.wait_serving("v1")
    (stack.folder / "Caddyfile").write_text(CADDYFILE)  # what docs/caddy.md says to write
    doctor = stack.swap("doctor")
    assert "has not loaded slot(s) app.1, app.2, app.3, app.4" in " ".join(doctor.stdout.split())

    result = stack.swap("sync", "app")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "reloaded once to load its new slots" in result.stdout
    assert stack.get() == (200, "v1")
    assert {f.strip() for f in slot_files(stack)} == app_addresses(stack)
    assert configurations_loaded(stack) == 2


def test_more_slots_are_written_before_the_one_reload_that_loads_them(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(caddy_compose(), CADDYFILE, **FAST)
    six = " ".join(f"{{file./etc/caddy/docker-swap/app.{n}}}:8000" for n in range(1, 7))
    (stack.folder / "Caddyfile").write_text(CADDYFILE.replace(CADDY_SLOTS, six))

    report = stack.swap_json("deploy", "app", env={"APP_VERSION": "v2"})

    assert report["exit_code"] == 0, report
    assert any("has not loaded slot(s) app.5, app.6" in n for n in report["notes"]), report
    assert stack.get() == (200, "v2")
    slots = [f"/etc/caddy/docker-swap/app.{n}" for n in range(1, 7)]
    found = [docker("exec", stack.proxy_container(), "cat", p).stdout.strip() for p in slots]
    assert set(found) == app_addresses(stack)
    assert configurations_loaded(stack) == 2


def test_an_agent_keeps_caddy_in_line_with_the_registry(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    compose = registry_compose()
    del compose["services"]["haproxy"], compose["volumes"]["haproxy-state"]
    compose["services"]["proxy"] = caddy_compose()["services"]["proxy"]
    stack = make_stack(compose, CADDYFILE, sync=False, **FAST)
    stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
    agents = Agents(stack, tmp_path)
    try:
        agents.start("caddy-agent", "caddy:proxy")
        assert stack.swap("sync", "app").returncode == 0
        stack.wait_serving("v1")

        result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

        assert result.returncode == 0, result.stdout + result.stderr
        assert stack.get() == (200, "v2")
        assert "no request left on the old backends" in agents.log("caddy-agent")
    finally:
        agents.stop_all()


def test_refusals(make_stack: StackFactory) -> None:
    old = caddy_compose()
    old["services"]["proxy"]["image"] = images.CADDY_2_6
    stack = make_stack(old, CADDYFILE, sync=False, **FAST)
    result = stack.swap("deploy", "app")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Caddy 2.6.2 in" in result.stderr and "is older than 2.8" in result.stderr

    no_volume = caddy_compose()
    no_volume["services"]["proxy"]["volumes"] = ["./Caddyfile:/etc/caddy/Caddyfile:ro"]
    stack = make_stack(no_volume, CADDYFILE, sync=False, **FAST)
    result = stack.swap("deploy", "app")
    assert result.returncode == 2 and "is not on a volume" in result.stderr

    stack = make_stack(caddy_compose(), "http:// {\n\treverse_proxy app:8000\n}\n", sync=False,
                       **FAST)
    result = stack.swap("deploy", "app")
    assert result.returncode == 2
    assert "no reverse_proxy dials slot files of app" in result.stderr

    stack = make_stack(caddy_compose(), "{\n\tadmin off\n}\n" + CADDYFILE.partition("}\n")[2],
                       sync=False, **FAST)
    result = stack.swap("deploy", "app")
    assert result.returncode == 2 and "admin API" in result.stderr
