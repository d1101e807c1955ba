"""The nginx driver on scripted nginxes (processes, `nginx -T`, `nginx -t`, SIGHUP), one and two
proxy containers (the real proof, under load, is tests/integration/test_zero_downtime.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from docker_swap.errors import ProxyConfigInvalid
from docker_swap.models import Backend, Container, ExecResult, Process
from docker_swap.proxy.nginx import NginxDriver
from docker_swap.proxy.nginx_config import parse_upstream_servers
from testbed.stack import NGINX_HTTP

UPSTREAM = "/etc/nginx/docker-swap/app.conf"


@dataclass
class ScriptedNginx:
    """One nginx: its master (the container's main process), its workers, its files; `rejects`
    makes `nginx -t` fail while the upstream names that text."""

    rejects: str = ""
    workers: list[int] = field(default_factory=lambda: [11, 12])
    shutting: list[int] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    reloads: int = 0

    def exec(self, argv: Sequence[str]) -> ExecResult:
        if "-T" in argv:
            return ExecResult(0, f"# configuration file /etc/nginx/nginx.conf:\n{NGINX_HTTP}\n",
                              "nginx version: nginx/1.30.6\n")
        if "-t" in argv:
            upstream = self.files.get(UPSTREAM, b"").decode()
            if self.rejects and self.rejects in upstream:
                return ExecResult(1, "", f"nginx: [emerg] invalid server {self.rejects}\n")
            return ExecResult(0, "", "nginx: configuration file test is successful\n")
        raise AssertionError(f"unexpected command {argv}")

    def hup(self) -> None:
        self.reloads += 1
        self.shutting, self.workers = self.workers, [w + 100 for w in self.workers]

    def processes(self) -> list[Process]:
        return [Process(1, "nginx: master process nginx -g daemon off;"),
                *(Process(w, "nginx: worker process") for w in self.workers),
                *(Process(w, "nginx: worker process is shutting down") for w in self.shutting)]


class Engine:
    def __init__(self, nginxes: Mapping[str, ScriptedNginx]) -> None:
        self.nginxes = nginxes

    def exec(self, container_id: str, argv: Sequence[str],
             timeout: float | None = None) -> ExecResult:
        return self.nginxes[container_id].exec(argv)

    def processes(self, container_id: str) -> list[Process]:
        return self.nginxes[container_id].processes()

    def read_file(self, container_id: str, path: str) -> bytes | None:
        return self.nginxes[container_id].files.get(path)

    def write_files(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        for name, content in files.items():
            self.nginxes[container_id].files[f"{directory}/{name}"] = content

    def signal(self, container_id: str, name: str) -> None:
        assert name == "SIGHUP"
        self.nginxes[container_id].hup()


def container(n: int) -> Container:
    return Container(f"{n:064x}", f"demo-proxy-{n}", "demo", "proxy", n, "running", pid=1,
                     mounts=("/etc/nginx/docker-swap",))


def backend(n: int) -> Backend:
    return Backend(f"{n:064x}", f"demo-app-{n}", f"10.0.0.{n}", 8000)


def driver(*nginxes: ScriptedNginx) -> NginxDriver:
    engine = Engine({container(n).id: x for n, x in enumerate(nginxes, start=1)})
    found = NginxDriver(engine, [container(n) for n in range(1, len(nginxes) + 1)], "app", 1.0)
    found.check()
    return found


def servers(nginx: ScriptedNginx) -> list[str]:
    return parse_upstream_servers(nginx.files[UPSTREAM].decode())


def test_a_switch_writes_addresses_reloads_and_waits_for_the_old_workers() -> None:
    nginx = ScriptedNginx()
    proxy = driver(nginx)

    assert proxy.switch([backend(2)]) == "upstream app -> demo-app-2"
    assert servers(nginx) == ["10.0.0.2:8000"] and nginx.reloads == 1
    nginx.shutting = []  # the old workers finished their requests
    assert proxy.drain(1).complete


def test_both_nginxes_switch_and_a_drain_waits_for_each() -> None:
    first, second = ScriptedNginx(), ScriptedNginx()
    proxy = driver(first, second)

    proxy.switch([backend(2), backend(3)])

    assert servers(first) == servers(second) == ["10.0.0.2:8000", "10.0.0.3:8000"]
    first.shutting = []
    drained = proxy.drain(0.05)
    assert not drained.complete and "2 old nginx worker(s) still busy" in drained.detail


def test_a_rejection_by_either_nginx_reloads_neither_and_puts_both_files_back() -> None:
    first, second = ScriptedNginx(), ScriptedNginx(rejects="10.0.0.9")
    proxy = driver(first, second)
    proxy.switch([backend(2)])

    with pytest.raises(ProxyConfigInvalid, match=r"invalid server 10\.0\.0\.9"):
        proxy.switch([backend(9)])

    assert first.reloads == second.reloads == 1
    assert servers(first) == servers(second) == ["10.0.0.2:8000"]
