"""What a deploy leaves behind, how it judges readiness, and what it prints (real parts)."""

from __future__ import annotations

import re

from testbed import images
from testbed.stack import docker, http_compose

from .conftest import StackFactory

FAST = {"LISTEN_DELAY": "0", "WARMUP": "0"}


def test_one_line_per_phase_then_the_total(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["start", "ready", "switch", "drain", "retire",
                                                    "done"]
    assert all(re.match(r"^\w+ +\d+\.\d\ds  ", line) for line in lines)
    assert f"app now runs {stack.name}-app-2 (replaced {stack.name}-app-1)" in lines[-1]


def test_json_holds_the_same_facts(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)

    report = stack.swap_json("deploy", "app", env={"APP_VERSION": "v2"})

    assert report["exit_code"] == 0
    assert report["result"] == "deployed"
    assert [p["name"] for p in report["phases"]] == ["start", "ready", "switch", "drain", "retire"]
    assert report["old"] == [f"{stack.name}-app-1"] and report["new"] == [f"{stack.name}-app-2"]
    rounding = 0.0005 * (len(report["phases"]) + 1)  # each figure is rounded to 1 ms
    assert report["seconds"] + rounding >= sum(p["seconds"] for p in report["phases"])


def test_json_on_failure(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)

    report = stack.swap_json("deploy", "app", "--timeout", "1s",
                             env={"APP_VERSION": "v2", "NEVER_READY": "1"})

    assert report["exit_code"] == 1
    assert report["result"] == "rolled_back"
    assert report["error_type"] == "NotReady"
    assert "v2 listening" in report["logs"]


def test_compose_up_changes_nothing_afterwards(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), **FAST)
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0
    after = stack.snapshot()

    stack.compose("up", "-d", env={"APP_VERSION": "v2"})

    assert stack.snapshot() == after
    assert len(stack.containers("app")) == 1


def test_the_proxy_serves_the_new_version_after_a_restart_or_recreate(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(http_compose(), **FAST)
    assert stack.swap("deploy", "app", env={"APP_VERSION": "v2"}).returncode == 0

    stack.compose("restart", "proxy")
    stack.wait_serving("v2")
    stack.compose("up", "-d", "--force-recreate", "proxy", env={"APP_VERSION": "v2"})
    stack.wait_serving("v2")


def test_every_replica_is_replaced(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(), sync=False, **FAST)
    stack.compose("up", "-d", "--scale", "app=2")
    assert stack.swap("sync", "app").returncode == 0
    old = stack.container_ids("app")

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})

    assert result.returncode == 0, result.stderr
    new = stack.container_ids("app")
    assert len(new) == 2 and not set(new) & set(old)
    assert stack.upstream_file().count("server ") == 2
    assert stack.get() == (200, "v2")


def test_a_new_image_is_deployed(make_stack: StackFactory) -> None:
    tag = "docker-swap-test/app:deploy-test"
    docker("tag", images.APP, tag)
    compose = http_compose()
    compose["services"]["app"]["image"] = tag
    stack = make_stack(compose, **FAST)
    rebuilt = docker("build", "-q", "-t", tag, "--label", "rebuilt=yes",
                     str(images.HERE / "app"), "--build-arg", f"BASE={images.BOOKWORM}")
    assert rebuilt.returncode == 0

    assert stack.swap("deploy", "app").returncode == 0

    container = stack.containers("app")[0]
    labels = docker("inspect", "-f", "{{index .Config.Labels \"rebuilt\"}}", container["ID"])
    assert labels.stdout.strip() == "yes"


def test_readiness_from_the_images_healthcheck_does_not_wait_for_its_interval(
        make_stack: StackFactory) -> None:
    # Docker runs this check only every 30 s: docker-swap runs its command itself, at once.
    compose = http_compose()
    del compose["services"]["app"]["x-swap"]["health-cmd"]
    compose["services"]["app"]["healthcheck"] = {
        "test": ["CMD", "/app/healthcheck"], "interval": "30s", "timeout": "2s",
    }
    stack = make_stack(compose, **FAST)

    report = stack.swap_json("deploy", "app", env={"APP_VERSION": "v2"})

    assert report["exit_code"] == 0
    ready = report["phases"][1]
    assert ready["detail"] == "HEALTHCHECK /app/healthcheck: /app/healthcheck exited 0"
    assert ready["seconds"] < 10, ready


def test_readiness_from_http_and_from_tcp(make_stack: StackFactory) -> None:
    compose = http_compose()
    del compose["services"]["app"]["x-swap"]["health-cmd"]
    stack = make_stack(compose, **FAST)

    http = stack.swap_json("deploy", "app", "--http", "/healthz", env={"APP_VERSION": "v2"})
    tcp = stack.swap_json("deploy", "app", env={"APP_VERSION": "v3"})

    assert http["phases"][1]["detail"] == "GET /healthz on port 8000: GET /healthz answered 200"
    assert tcp["phases"][1]["detail"] == "TCP connect to port 8000: port 8000 accepts connections"


def test_flags_override_x_swap(make_stack: StackFactory) -> None:
    stack = make_stack(http_compose(http="/never-2xx", timeout="1s"), **FAST)

    report = stack.swap_json("deploy", "app", "--health-cmd", "./healthcheck", "--timeout", "30",
                             env={"APP_VERSION": "v2"})

    assert report["exit_code"] == 0, report
    assert report["phases"][1]["detail"].startswith("command ./healthcheck")
