"""The HAProxy driver on scripted HAProxies that answer its runtime API (the real proof, under
load, is tests/integration/test_haproxy.py): one, then two proxy containers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from docker_swap.errors import ProxyConfigInvalid, SwitchNotConfirmed
from docker_swap.models import Backend, Container, ExecResult, Process
from docker_swap.proxy.haproxy import HAProxyDriver
from testbed.stack import haproxy_cfg

MAINT, DRAIN = 1, 8


@dataclass
class Server:
    name: str
    address: str = "127.0.0.1"
    port: int = 1
    admin: int = MAINT


@dataclass
class ScriptedHAProxy:
    """One HAProxy's backend `app` of `slots` servers; `refuse` makes `set server ... addr`
    answer an error from the n-th such command on (counted over this HAProxy's life)."""

    slots: int = 4
    refuse_from: int | None = None
    servers: list[Server] = field(default_factory=list)
    addr_commands: int = 0

    def __post_init__(self) -> None:
        self.servers = [Server(f"app{n}") for n in range(1, self.slots + 1)]

    def answer(self, line: str) -> str:
        return "\n".join(self._one(command.strip()) for command in line.split(";"))

    def _one(self, command: str) -> str:
        words = command.split()
        if words[:3] == ["show", "servers", "state"]:
            return "1\n# be_id be_name srv_id srv_name srv_addr\n" + "\n".join(
                f"3 app {i} {s.name} {s.address} 2 {s.admin} 1 1 9 1 0 0 8 0 0 0 localhost "
                f"{s.port} - 0 0 - - 0" for i, s in enumerate(self.servers, start=1)) + "\n"
        if words[:2] == ["show", "stat"]:
            return "# pxname,svname,scur,qcur\n" + "".join(
                f"app,{s.name},0,0\n" for s in self.servers)
        server = next(s for s in self.servers if words[2] == f"app/{s.name}")
        if words[3] == "addr":
            self.addr_commands += 1
            if self.refuse_from is not None and self.addr_commands >= self.refuse_from:
                return "Invalid addr: no such network"
            said = (f"IP changed from '{server.address}' to '{words[4]}', port changed from "
                    f"'{server.port}' to '{words[6]}' by 'stats socket command'.")
            server.address, server.port = words[4], int(words[6])
            return said  # as HAProxy 2.6 and 3.2 answer it
        elif words[3:5] == ["state", "ready"]:
            server.admin = 0
        elif words[3:5] == ["state", "drain"]:
            server.admin = DRAIN
        elif words[3:5] == ["state", "maint"]:
            server.admin = MAINT
        return ""

    def serving(self) -> list[str]:
        return sorted(s.address for s in self.servers if s.admin == 0)


class Engine:
    def __init__(self, proxies: Mapping[str, ScriptedHAProxy]) -> None:
        self.proxies = proxies
        self.files: dict[tuple[str, str], bytes] = {}
        self.execs = 0

    def exec(self, container_id: str, argv: Sequence[str],
             timeout: float | None = None) -> ExecResult:
        self.execs += 1
        return ExecResult(0, self.proxies[container_id].answer(argv[-1]))

    def processes(self, container_id: str) -> list[Process]:
        return [Process(1, "haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg")]

    def read_file(self, container_id: str, path: str) -> bytes | None:
        return haproxy_cfg().encode()

    def write_files(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        for name, content in files.items():
            self.files[container_id, f"{directory}/{name}"] = content

    def signal(self, container_id: str, name: str) -> None:
        raise AssertionError("HAProxy is never signalled")


def container(n: int) -> Container:
    return Container(f"{n:064x}", f"demo-haproxy-{n}", "demo", "haproxy", n, "running",
                     mounts=("/var/lib/haproxy/docker-swap",))


def backend(n: int) -> Backend:
    return Backend(f"{n:064x}", f"demo-app-{n}", f"10.0.0.{n}", 8000)


def driver(*proxies: ScriptedHAProxy) -> tuple[HAProxyDriver, Engine]:
    engine = Engine({container(n).id: p for n, p in enumerate(proxies, start=1)})
    found = HAProxyDriver(engine, [container(n) for n in range(1, len(proxies) + 1)], "app", 1.0)
    found.check()
    return found, engine


def test_a_switch_readies_the_new_servers_drains_the_old_and_saves_the_state() -> None:
    haproxy = ScriptedHAProxy()
    proxy, engine = driver(haproxy)
    proxy.switch([backend(1)])

    proxy.switch([backend(2)])
    assert haproxy.serving() == ["10.0.0.2"]
    assert [s.admin for s in haproxy.servers if s.address == "10.0.0.1"] == [DRAIN]
    assert proxy.drain(1).complete
    assert [s.admin for s in haproxy.servers if s.address == "10.0.0.1"] == [MAINT]
    (state,) = engine.files.values()
    assert b"10.0.0.2" in state


def test_a_switch_to_new_addresses_takes_three_runtime_calls_and_saves_a_readable_state() -> None:
    """Each runtime call is a `docker exec` (an agent's switch is timed by the deploy): a look,
    the addresses (read back in the same call), the states (read back and saved)."""
    haproxy = ScriptedHAProxy()
    proxy, engine = driver(haproxy)
    engine.execs = 0

    proxy.switch([backend(1), backend(2)])

    assert engine.execs == 3
    assert haproxy.serving() == ["10.0.0.1", "10.0.0.2"]
    (state,) = engine.files.values()
    assert state.startswith(b"1\n# be_id ")


def test_every_haproxy_gets_the_switch() -> None:
    first, second = ScriptedHAProxy(), ScriptedHAProxy()
    proxy, _ = driver(first, second)

    proxy.switch([backend(1), backend(2)])

    assert first.serving() == second.serving() == ["10.0.0.1", "10.0.0.2"]


def test_a_second_haproxy_refusing_after_the_first_switched_is_not_taken_for_unchanged() -> None:
    """If the first HAProxy already sends to the new servers, "the proxy rejected the
    configuration, nothing changed" would be false: the undo must switch it back."""
    first, second = ScriptedHAProxy(), ScriptedHAProxy(refuse_from=1)
    proxy, _ = driver(first, second)

    with pytest.raises(SwitchNotConfirmed, match="refused"):
        proxy.switch([backend(1)])
    assert first.serving() == ["10.0.0.1"]


def test_a_refusal_before_any_haproxy_changed_is_a_rejected_configuration() -> None:
    first, second = ScriptedHAProxy(refuse_from=1), ScriptedHAProxy()
    proxy, _ = driver(first, second)

    with pytest.raises(ProxyConfigInvalid):
        proxy.switch([backend(1)])
    assert first.serving() == second.serving() == []
