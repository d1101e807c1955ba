"""What is in Redis is untrusted, and Redis may go away: real redis-server, nginx, HAProxy and
`docker-swap agent` processes, with forgeries written into Redis as an attacker would."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from testbed.agents import Agents
from testbed.stack import Stack, registry_compose

from .conftest import StackFactory

NGINX_INJECTION = ("127.0.0.1:9; } server { listen 8081; location / { return 200 pwned; } } "
                   "upstream zz { server 127.0.0.1")
HAPROXY_INJECTION = "10.0.0.9 port 80; shutdown frontend web"
KEY = "an-integration-test-registry-key"


def backend(**changes: object) -> dict[str, object]:
    return {"container_id": "f" * 64, "name": "evil", "address": "10.0.0.9", "port": 80,
            **changes}


class Attacker:
    """Anyone with write access to the stack's Redis, writing as docker-swap would."""

    def __init__(self, stack: Stack, namespace: str = "") -> None:
        self.client: Any = redis.Redis.from_url(stack.redis_url(), decode_responses=True)
        where = f"@{namespace}" if namespace else ""
        self.prefix = f"docker-swap{where}:{stack.name}:app:"

    def publish(self, record: Mapping[str, object] | str | bytes) -> int:
        number = int(self.client.get(self.prefix + "current") or 0) + 1
        text = record if isinstance(record, str | bytes) else json.dumps(record)
        self.client.hset(self.prefix + "generations", str(number), text)
        self.client.set(self.prefix + "current", number)
        self.client.publish(self.prefix + "published", number)
        return number

    def record(self, agent: str) -> dict[str, object]:
        return dict(json.loads(str(self.client.hget(self.prefix + "agents", agent))))

    def close(self) -> None:
        self.client.close()


def serving_v1(stack: Stack, agents: Agents) -> None:
    assert stack.get(proxy="proxy") == (200, "v1")
    assert stack.get(proxy="haproxy") == (200, "v1")
    for name, process in agents.running.items():
        assert process.poll() is None, agents.log(name)
        assert "Traceback" not in agents.log(name), agents.log(name)


@pytest.fixture
def unsigned(make_stack: StackFactory, tmp_path: Path) -> Iterator[tuple[Stack, Agents]]:
    stack = make_stack(registry_compose(), sync=False)
    stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
    agents = Agents(stack, tmp_path)
    agents.start_both_and_sync()
    yield stack, agents
    agents.stop_all()


def test_forged_generations_never_reach_a_proxy_and_never_stop_an_agent(
    unsigned: tuple[Stack, Agents]
) -> None:
    stack, agents = unsigned
    attacker = Attacker(stack)
    forgeries: list[tuple[Mapping[str, object] | bytes, str]] = [
        ({"backends": [backend(name=NGINX_INJECTION)], "published_at": "now"},
         "{n}: backend 1 was refused: its name is not a Docker container name"),
        ({"backends": [backend(address=HAPROXY_INJECTION)], "published_at": "now"},
         "{n}: backend 1 was refused: its address is not an IPv4 or IPv6 address"),
        ({"backends": [{**backend(), "backup": True}], "published_at": "now"},
         "{n}: backend 1 does not have exactly the keys"),
        ({"backends": [{**backend(), "weight": "1; server evil 10.0.0.9:80"}],
          "published_at": "now"},
         "{n}: backend 1 was refused: its weight is not a number from 1 to"),
        ({"backends": [backend(port="80")], "published_at": "now"},
         "{n}: backend 1 was refused: its port"),
        (b'\xff\xfe{"backends": []}', "{n} is not valid JSON"),
    ]
    for forgery, reason in forgeries:
        number = attacker.publish(forgery)
        for name in ("nginx-agent", "haproxy-agent"):
            agents.wait_for(name, f"refused generation {number}: generation "
                            + reason.format(n=number), seconds=10)
        serving_v1(stack, agents)
    attacker.client.set(attacker.prefix + "current", "abc")
    agents.wait_for("nginx-agent", "refused the registry: current is abc, not a generation "
                    "number.", seconds=10)
    assert attacker.record("nginx-agent")["error"] == "current is abc, not a generation number."
    serving_v1(stack, agents)
    assert "pwned" not in stack.upstream_file() and stack.get(proxy="proxy") == (200, "v1")
    attacker.close()

    doctor = stack.swap("doctor")
    assert "anyone with write access to its Redis controls the proxies" in doctor.stdout

    result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.get(proxy="proxy") == (200, "v2") and stack.get(proxy="haproxy") == (200, "v2")

    attacker = Attacker(stack)  # a malformed agent record: a bad agent, not a traceback
    attacker.client.hset(attacker.prefix + "agents", "broken-agent", "{not json")
    attacker.close()
    before = stack.container_ids("app")
    result = stack.swap("deploy", "app", env={"APP_VERSION": "v3"})
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "Traceback" not in said, said
    assert "refused: agent broken-agent cannot be trusted: its report is not valid JSON." in said
    assert "--leave --name broken-agent" in said
    assert stack.container_ids("app") == before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_agents_outlive_a_redis_restart_and_the_next_deploy_works(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(registry_compose(redis_port=free_port()), sync=False)
    stack.env["DOCKER_SWAP_REDIS_URL"] = stack.redis_url()
    agents = Agents(stack, tmp_path)
    try:
        agents.start_both_and_sync()

        stack.compose("restart", "--timeout", "0", "redis")  # no persistence: it comes back empty
        client: Any = redis.Redis.from_url(stack.redis_url(), decode_responses=True)
        deadline = time.monotonic() + 20
        registered = f"docker-swap:{stack.name}:app:agents"
        while not _registered(client, registered, 2):
            assert time.monotonic() < deadline, agents.log("nginx-agent")
            time.sleep(0.2)
        client.close()
        serving_v1(stack, agents)

        result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert stack.get(proxy="proxy") == (200, "v2")
        assert stack.get(proxy="haproxy") == (200, "v2")
        for name in ("nginx-agent", "haproxy-agent"):
            assert "Traceback" not in agents.log(name), agents.log(name)
            assert agents.running[name].poll() is None
    finally:
        agents.stop_all()


def test_with_a_key_only_signed_generations_apply_and_only_signed_reports_count(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    (tmp_path / "registry.key").write_text(KEY + "\n")
    x_swap: dict[str, object] = {"registry-key": f"file:{tmp_path / 'registry.key'}",
                                 "registry-namespace": "blue"}
    stack = make_stack(registry_compose(x_swap=x_swap), sync=False)
    url = stack.redis_url()
    stack.env["DOCKER_SWAP_REDIS_URL"] = url.replace(":secret@", "@")
    stack.env["DOCKER_SWAP_REDIS_PASSWORD"] = "secret"  # not on any command line
    agents = Agents(stack, tmp_path)
    attacker = Attacker(stack, namespace="blue")
    try:
        agents.start_both_and_sync()
        generation = json.loads(str(attacker.client.hget(attacker.prefix + "generations", "1")))
        assert len(generation["signature"]) == 64
        assert len(str(attacker.record("nginx-agent")["signature"])) == 64

        forged = {"backends": [backend()], "published_at": "now"}
        number = attacker.publish(forged)
        agents.wait_for("nginx-agent", f"refused generation {number}: generation {number} was "
                        "refused: it is not signed, and this registry has a key.", seconds=10)
        serving_v1(stack, agents)

        agents.stop("haproxy-agent")
        before = stack.container_ids("app")
        stop = threading.Event()
        forger = threading.Thread(target=forge_acknowledgements, args=(attacker, stop))
        forger.start()
        try:
            result = stack.swap("deploy", "app", "--switch-timeout", "3s",
                                env={"APP_VERSION": "v2"})
        finally:
            stop.set()
            forger.join()
        assert result.returncode == 1, result.stdout + result.stderr
        assert "haproxy-agent (report refused: its report was refused: it is not signed" in (
            " ".join(result.stderr.split()))
        assert stack.container_ids("app") == before
        assert stack.get(proxy="haproxy") == (200, "v1")

        agents.start("haproxy-agent", "haproxy:haproxy")
        result = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert stack.get(proxy="proxy") == (200, "v2") and stack.get(proxy="haproxy") == (200, "v2")
        assert "anyone with write access" not in stack.swap("doctor").stdout
    finally:
        attacker.close()
        agents.stop_all()


def forge_acknowledgements(attacker: Attacker, stop: threading.Event) -> None:
    """Claim, as the stopped HAProxy agent, that it applied and drained the deploy's generation
    at once; when the deploy rolls back, put the agent's own (signed) last report back."""
    genuine = str(attacker.client.hget(attacker.prefix + "agents", "haproxy-agent"))
    before = attacker.client.get(attacker.prefix + "current")
    claimed = None
    while not stop.wait(0.05):
        number = attacker.client.get(attacker.prefix + "current")
        if number == before:
            continue
        claimed = claimed or number
        if number != claimed:  # the rollback's generation
            attacker.client.hset(attacker.prefix + "agents", "haproxy-agent", genuine)
            return
        report = {"proxy": "haproxy:haproxy", "applied": int(str(number)),
                  "drained": int(str(number)), "failed": 0, "error": "", "at": time.time()}
        attacker.client.hset(attacker.prefix + "agents", "haproxy-agent", json.dumps(report))
        attacker.client.set(attacker.prefix + "alive:haproxy-agent", 1, ex=5)


def _registered(client: Any, key: str, count: int) -> bool:
    """`count` agents are registered; False while Redis is still starting (its port may
    accept a connection before Redis answers on it)."""
    try:
        return int(client.hlen(key)) >= count
    except redis.exceptions.ConnectionError:
        return False
