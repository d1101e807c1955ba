"""The Caddy driver's decisions against a scripted Caddy (the real one: tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from docker_swap.errors import ProxyConfigInvalid, ProxyNotReady
from docker_swap.models import Backend, Container, ExecResult, Process
from docker_swap.proxy.caddy import CaddyDriver
from docker_swap.proxy.caddy_config import INSPECT, READ_SLOTS
from docker_swap.proxy.caddy_container import ADMIN_CLIENT, RENAME

FOLDER = "/etc/caddy/docker-swap"
SLOTS = [f"{FOLDER}/app.{n}" for n in (1, 2, 3, 4)]
CONFIG = {"apps": {"http": {"servers": {"srv0": {"routes": [{"handle": [
    {"handler": "reverse_proxy", "upstreams": [{"dial": f"{{file.{p}}}:8000"} for p in SLOTS]},
]}]}}}}}


@dataclass
class ScriptedCaddy:
    """Files, a version, and the answers of `/reverse_proxy/upstreams`, one per call."""

    version: str = "v2.11.4 h1:x"
    files: dict[str, str] = field(default_factory=dict)
    upstreams: list[list[dict[str, object]]] = field(default_factory=list)
    asked: int = 0

    def exec(self, container_id: str, argv: Sequence[str],
             timeout: float | None = None) -> ExecResult:
        script, args = argv[2], list(argv[4:])
        if script == ADMIN_CLIENT:
            path = args[2]
            if path == "/config/":
                return _http(json.dumps(CONFIG))
            self.asked += 1
            answer = self.upstreams.pop(0) if self.upstreams else []
            return _http(json.dumps(answer))
        if script == INSPECT:
            return ExecResult(0, f"{self.version}\n\0{json.dumps(CONFIG)}\0" + _listing(
                [self.files.get(p) for p in args[3:]]))
        if script == READ_SLOTS:
            return ExecResult(0, _listing([self.files.get(p) for p in args]))
        if script == RENAME:
            for source, target in zip(args[::2], args[1::2], strict=True):
                self.files[target] = self.files.pop(source)
            return ExecResult(0, "")
        raise AssertionError(f"unexpected command {argv}")

    def processes(self, container_id: str) -> list[Process]:
        return [Process(1, "caddy run --config /etc/caddy/Caddyfile --adapter caddyfile")]

    def read_file(self, container_id: str, path: str) -> bytes | None:
        raise AssertionError("the driver reads files with one exec")

    def write_files(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        self.files |= {f"{directory}/{name}": data.decode() for name, data in files.items()}

    def signal(self, container_id: str, name: str) -> None:
        raise AssertionError("Caddy is never signalled")


def _http(body: str) -> ExecResult:
    return ExecResult(0, f"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}")


def _listing(files: Sequence[str | None]) -> str:
    return "".join("-\0" if f is None else f"+{f}\0" for f in files)


def backend(n: int) -> Backend:
    return Backend(f"{n:064d}", f"app-{n}", f"10.0.0.{n}", 8000)


def driver(caddy: ScriptedCaddy) -> CaddyDriver:
    container = Container("c" * 64, "proxy-1", "p", "proxy", 1, "running", mounts=(FOLDER,))
    return CaddyDriver(caddy, [container], "app", 1.0)


def serving(n: int, m: int) -> ScriptedCaddy:
    """Every slot on backends n and m, in turn."""
    return ScriptedCaddy(files={p: f"10.0.0.{(n, m)[i % 2]}\n" for i, p in enumerate(SLOTS)})


def test_the_switch_renames_staged_files_and_retires_the_old_addresses() -> None:
    caddy = serving(1, 2)
    proxy = driver(caddy)
    assert proxy.check() == []

    proxy.stage([backend(3), backend(4)], [backend(1), backend(2)])
    assert [caddy.files[p] for p in SLOTS] == ["10.0.0.1\n", "10.0.0.2\n"] * 2  # untouched
    detail = proxy.switch([backend(3), backend(4)])

    assert detail == "upstream app -> app-3, app-4"
    assert [caddy.files[p] for p in SLOTS] == ["10.0.0.3\n", "10.0.0.4\n"] * 2
    assert not any(".next" in path for path in caddy.files)
    caddy.upstreams = [[{"address": "10.0.0.1:8000", "num_requests": 2},
                        {"address": "10.0.0.3:8000", "num_requests": 5}],
                       [{"address": "10.0.0.2:8000", "num_requests": 1}], []]
    drained = proxy.drain(5)
    assert drained.complete and caddy.asked == 3


def test_the_drain_stops_at_its_timeout_and_says_what_is_left() -> None:
    caddy = serving(1, 1)
    proxy = driver(caddy)
    proxy.check()
    proxy.switch([backend(2)])
    caddy.upstreams = [[{"address": "10.0.0.1:8000", "num_requests": 3}]] * 100

    drained = proxy.drain(0.01)

    assert not drained.complete
    assert drained.detail == "3 request(s) still on the old backends after 0.01 s"


def test_before_caddy_2_11_2_every_slot_must_be_idle_once() -> None:
    caddy = serving(1, 1)
    caddy.version = "v2.10.0 h1:x"
    proxy = driver(caddy)
    assert "counts requests in flight per slot" in proxy.check()[0]
    proxy.switch([backend(2)])
    slot = [f"{{file.{p}}}:8000" for p in SLOTS]
    caddy.upstreams = [
        [{"address": slot[0], "num_requests": 1}, {"address": slot[1], "num_requests": 2},
         {"address": slot[2], "num_requests": 0}, {"address": slot[3], "num_requests": 0}],
        [{"address": slot[0], "num_requests": 0}, {"address": slot[1], "num_requests": 1}],
        [{"address": slot[0], "num_requests": 4}, {"address": slot[1], "num_requests": 0}],
    ]

    assert proxy.drain(5).complete
    assert caddy.asked == 3  # slot 1 was idle in the 2nd answer; its new requests do not count


def test_recovery_waits_for_every_address_no_slot_names() -> None:
    caddy = serving(3, 4)
    proxy = driver(caddy)
    proxy.check()
    caddy.upstreams = [[{"address": "10.0.0.1:8000", "num_requests": 1},
                        {"address": "10.0.0.3:8000", "num_requests": 9}], []]

    assert proxy.drain(5).complete and caddy.asked == 2


def test_recover_switching_to_what_the_slots_name_already_still_waits_for_the_old() -> None:
    """A deploy killed past its switch left the slots on 3 and 4, with requests still on 1:
    recover's own switch changes nothing, and its drain must wait for them all the same."""
    caddy = serving(3, 4)
    proxy = driver(caddy)
    proxy.check()
    proxy.switch([backend(3), backend(4)])
    caddy.upstreams = [[{"address": "10.0.0.1:8000", "num_requests": 1},
                        {"address": "10.0.0.3:8000", "num_requests": 9}],
                       [{"address": "10.0.0.1:8000", "num_requests": 1}], []]

    assert proxy.drain(5).complete and caddy.asked == 3


def test_a_caddy_older_than_2_8_is_refused() -> None:
    caddy = serving(1, 1)
    caddy.version = "v2.6.2 h1:x"
    with pytest.raises(ProxyNotReady, match=r"Caddy 2\.6\.2 in proxy-1 is older than 2\.8"):
        driver(caddy).check()


def test_broken_slots_are_noted_and_rewritten_with_what_serves_at_the_stage() -> None:
    caddy = serving(1, 2)
    caddy.files[SLOTS[2]] = "app\n"
    del caddy.files[SLOTS[3]]
    proxy = driver(caddy)
    assert f"{SLOTS[2]}, {SLOTS[3]} are missing or hold no IP address" in proxy.check()[0]

    proxy.stage([backend(3)], [backend(1), backend(2)])

    assert [caddy.files[p] for p in SLOTS] == ["10.0.0.1\n", "10.0.0.2\n"] * 2


@pytest.mark.parametrize("address", ["app", "10.0.0.5:80", "10.0.0.5\n10.0.0.6"])
def test_nothing_but_an_ip_address_is_written(address: str) -> None:
    caddy = serving(1, 1)
    before = dict(caddy.files)
    proxy = driver(caddy)
    with pytest.raises(ProxyConfigInvalid, match="cannot send to"):
        proxy.switch([Backend("x" * 64, "evil", address, 8000)])
    assert caddy.files == before


def test_more_replicas_than_slots_or_another_port_fail_at_the_stage() -> None:
    proxy = driver(serving(1, 1))
    with pytest.raises(ProxyConfigInvalid, match="4 slot"):
        proxy.stage([backend(n) for n in range(2, 7)], [backend(1)])
    with pytest.raises(ProxyConfigInvalid, match="dials port 8000 for app, but app-9 listens"):
        proxy.stage([Backend("9" * 64, "app-9", "10.0.0.9", 9000)], [backend(1)])
