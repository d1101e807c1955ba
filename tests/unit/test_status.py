"""What `status` calls a disagreement between a proxy and the running containers."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_swap.models import Project, ServiceDefinition
from docker_swap.proxy import Serving
from docker_swap.proxy.nginx_config import parse_upstream_servers, render_upstream
from docker_swap.safety.journal import STATE_DIR_ENV, Entry, Journal
from docker_swap.targets.compose.batch import backends
from docker_swap.targets.compose.status import _match, disagreements, service_status, would_recreate
from tests.fakes import FakeEngine, FakeProxy


def test_the_servers_of_an_upstream_file_leave_out_those_warming_up() -> None:
    engine = FakeEngine()
    serving, warming = engine.add("app", 1), engine.add("app", 2)
    text = render_upstream("app", backends([serving], "demo_default", 8000), "now",
                           standby=backends([warming], "demo_default", 8000))

    assert parse_upstream_servers(text) == ["10.0.0.1:8000"]
    assert parse_upstream_servers("# no upstream\n") == []


def test_nginx_is_given_addresses_so_a_container_that_exited_never_breaks_the_file() -> None:
    engine = FakeEngine()
    container = engine.add("app", 1)
    text = render_upstream("app", backends([container], "demo_default", 8000), "now")

    assert "    server 10.0.0.1:8000;  # demo-app-1 " in text
    assert "demo-app-1:" not in text


def test_a_proxy_on_the_running_containers_agrees() -> None:
    engine = FakeEngine()
    running = [engine.add("app", 1), engine.add("app", 2)]
    views = [Serving("nginx", ("demo-app-1:8000", "demo-app-2:8000")),
             Serving("HAProxy", ("10.0.0.1:8000", "10.0.0.2:8000"))]

    served = [_match(view, running, "demo_default") for view in views]

    assert [s.containers for s in served] == [("demo-app-1", "demo-app-2")] * 2
    assert disagreements("app", served, running) == []


def test_each_disagreement_is_one_sentence() -> None:
    engine = FakeEngine()
    running = [engine.add("app", 1), engine.add("app", 2)]
    views = [Serving("nginx in p-1", ("demo-app-1:8000", "demo-app-7:8000")),
             Serving("agent a", ())]

    served = [_match(view, running, "demo_default") for view in views]

    assert disagreements("app", served, running) == [
        "nginx in p-1 sends to demo-app-7:8000, which is no running container of app: run "
        "`docker-swap sync app`.",
        "demo-app-2 run(s) but nginx in p-1 does not send to it.",
        "agent a sends app traffic to nothing.",
    ]


def test_the_fake_proxy_serves_what_it_was_switched_to() -> None:
    proxy = FakeProxy()
    proxy.switch(backends([FakeEngine().add("app", 3)], "demo_default", 8000))

    assert proxy.serving() == [Serving("fake proxy", ("demo-app-3:8000",))]


def test_an_interrupted_deploy_is_a_problem_with_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    engine = FakeEngine()
    old = engine.add("app", 1)
    Journal(engine, "demo", "app").write(Entry("demo", "app", "switching", [old.id]))
    project = Project("demo", {"app": ServiceDefinition("app", x_swap={"proxy": "nginx:proxy"}),
                               "proxy": ServiceDefinition("proxy")})

    found = service_status(engine, project, "app")

    assert found.interrupted is not None and found.interrupted.phase == "switching"
    assert found.problems[-1].endswith("was interrupted (phase switching): run "
                                       "`docker-swap recover app`.")
    assert "the proxy could not be read: the proxy service 'proxy' has no running container." \
        in found.problems


def test_compose_would_recreate_a_container_whose_hash_or_image_differs() -> None:
    engine = FakeEngine()
    same = engine.add("app", 1, image_id="sha256:a")
    other_image = engine.add("app", 2, image_id="sha256:b")

    assert would_recreate([same, other_image], "hash-of-sha256:a", "sha256:a") == [other_image]
    assert would_recreate([same], "another hash", None) == [same]
    assert would_recreate([same, other_image], None, None) == []
