from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_swap.models import Backend
from docker_swap.proxy.caddy_config import (
    Command,
    Slot,
    file_dials,
    fill,
    find_slots,
    inspect_argv,
    is_address,
    parse_command,
    parse_http,
    parse_inspection,
    parse_slot_files,
    parse_upstreams,
    parse_version,
    read_slot,
    slot_host,
    slots_problem,
)

DIAL = "{{file./etc/caddy/docker-swap/{name}}}:8000"
# What `GET /config/` answers for docs/caddy.md's Caddyfile: an HTTP and an HTTPS site that
# both import the same reverse_proxy, and another site's upstream that is not ours.
CONFIG = {"apps": {"http": {"servers": {
    "srv0": {"listen": [":443"], "routes": [{"handle": [{"handler": "subroute", "routes": [
        {"handle": [{"handler": "reverse_proxy", "upstreams": [
            {"dial": DIAL.format(name=f"app.{n}")} for n in (1, 2, 10)]}]}]}]}]},
    "srv1": {"listen": [":80"], "routes": [
        {"handle": [{"handler": "reverse_proxy", "upstreams": [
            {"dial": DIAL.format(name=f"app.{n}")} for n in (10, 2, 1)]}]},
        {"handle": [{"handler": "reverse_proxy", "upstreams": [
            {"dial": "{file./etc/caddy/docker-swap/api.1}:9000"}, {"dial": "db:5432"}]}]},
    ]},
}}}}


def backend(address: str, port: int = 8000, name: str = "app-3") -> Backend:
    return Backend("c" * 64, name, address, port)


def test_slots_are_found_once_in_number_order_however_deep() -> None:
    slots = find_slots(CONFIG, "app")
    assert [s.name for s in slots] == ["app.1", "app.2", "app.10"]
    assert {(s.directory, s.port) for s in slots} == {("/etc/caddy/docker-swap", 8000)}
    assert slots[0].staged_path == "/etc/caddy/docker-swap/.app.1.next"
    assert slots[0].dial == "{file./etc/caddy/docker-swap/app.1}:8000"
    assert [s.name for s in find_slots(CONFIG, "api")] == ["api.1"]


def test_a_dial_without_a_port_or_with_another_name_is_no_slot() -> None:
    config = {"handler": "reverse_proxy", "upstreams": [
        {"dial": "{file./etc/caddy/docker-swap/app.1}"},  # JSON without the port
        {"dial": "{file./etc/caddy/docker-swap/app}:8000"},
        {"dial": "{file./etc/caddy/docker-swap/application.1}:8000"},
        {"dial": "10.0.0.2:8000"}]}
    assert find_slots(config, "app") == []
    assert find_slots({"apps": {}}, "app") == []


def test_slots_in_two_folders_or_on_two_ports_are_refused() -> None:
    assert slots_problem([Slot("/a/app.1", 80), Slot("/b/app.2", 80)], "app") == (
        "the slots of app are in several folders (/a, /b); keep them in one")
    assert "dial different ports (80, 81)" in str(
        slots_problem([Slot("/a/app.1", 80), Slot("/a/app.2", 81)], "app"))
    assert slots_problem([Slot("/a/app.1", 80), Slot("/a/app.2", 80)], "app") is None


@pytest.mark.parametrize(("printed", "version"), [
    ("v2.11.4 h1:bXN0Y2F0Y2g=\n", (2, 11, 4)),
    ("2.11.4\n", (2, 11, 4)),  # Debian's build
    ("v2.6.2 h1:...\n", (2, 6, 2)),
    ("(devel)\n", None),
])
def test_version(printed: str, version: tuple[int, int, int] | None) -> None:
    assert parse_version(printed) == version


def test_fill_repeats_the_backends_over_every_slot() -> None:
    slots = [Slot(f"/s/app.{n}", 8000) for n in range(1, 5)]
    filled = fill(slots, [backend("10.0.0.5"), backend("10.0.0.6")])
    assert list(filled.values()) == ["10.0.0.5\n", "10.0.0.6\n", "10.0.0.5\n", "10.0.0.6\n"]
    assert list(fill(slots[:1], [backend("fd00::5")]).values()) == ["[fd00::5]\n"]
    with pytest.raises(ValueError, match="1 slot"):
        fill(slots[:1], [backend("10.0.0.5"), backend("10.0.0.6")])
    with pytest.raises(ValueError, match="no backend"):
        fill(slots, [])


@pytest.mark.parametrize("address", [
    "app", "10.0.0.5:8000", "10.0.0.5\n", " 10.0.0.5", "10.0.0.5}", "{file./etc/passwd}", "",
])
def test_only_an_ip_address_reaches_a_slot_file(address: str) -> None:
    with pytest.raises(ValueError):
        slot_host(backend(address))


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="not a port number"):
        slot_host(backend("10.0.0.5", port=70000))


@given(st.ip_addresses())
def test_what_fill_writes_reads_back_as_the_same_address(address: object) -> None:
    written = slot_host(backend(str(address)))
    assert read_slot(f"{written}\n") == written
    assert read_slot(written) == written
    assert ipaddress.ip_address(written.strip("[]")) == address


@pytest.mark.parametrize("content", [
    None, "", "\n", "app\n", "10.0.0.5:8000\n", "10.0.0.5\n\n", "10.0.0.5 \n", "fd00::5\n",
    "[10.0.0.5]\n",
])
def test_a_slot_file_caddy_could_not_dial_is_broken(content: str | None) -> None:
    assert read_slot(content) is None


@given(st.text(max_size=40))
def test_read_slot_accepts_nothing_but_an_address(content: str) -> None:
    host = read_slot(content)
    if host is not None:  # what Caddy would dial: the file without one trailing newline
        assert is_address(f"{host}:8000")
        assert content.removesuffix("\n").removesuffix("\r") == host


def test_http_answers() -> None:
    raw = 'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[{"a": 1}]\n'
    assert parse_http(raw) == (200, '[{"a": 1}]\n')
    assert parse_http("HTTP/1.1 403 Forbidden\r\n\r\nhost not allowed")[0] == 403
    assert parse_http("bash: connect: Connection refused") == (
        0, "bash: connect: Connection refused")
    assert parse_http("") == (0, "")


UPSTREAMS = json.dumps([
    {"address": "{file./etc/caddy/docker-swap/app.1}:8000", "num_requests": 2, "fails": 0},
    {"address": "{file./etc/caddy/docker-swap/app.2}:8000", "num_requests": 0, "fails": 0},
    {"address": "172.18.0.3:8000", "num_requests": 2, "fails": 0},
])


def test_upstreams_in_flight_per_address_and_per_slot() -> None:
    upstreams = parse_upstreams(UPSTREAMS)
    assert upstreams.by_address == {"172.18.0.3:8000": 2}
    assert upstreams.by_slot == {"{file./etc/caddy/docker-swap/app.1}:8000": 2,
                                 "{file./etc/caddy/docker-swap/app.2}:8000": 0}
    assert parse_upstreams("[]").by_address == {}


@pytest.mark.parametrize("body", [
    "{}", '[{"num_requests": 1}]', '[{"address": "a", "num_requests": "1"}]', "[1]",
    '[{"address": "a", "num_requests": true}]',
])
def test_an_answer_that_is_not_the_list_of_upstreams_is_an_error(body: str) -> None:
    with pytest.raises(ValueError):
        parse_upstreams(body)


entries = st.lists(st.fixed_dictionaries({
    "address": st.one_of(
        st.ip_addresses(v=4).map(lambda a: f"{a}:8000"),
        st.integers(1, 9).map(lambda n: f"{{file./s/app.{n}}}:8000"),
    ),
    "num_requests": st.integers(0, 1000),
    "fails": st.integers(0, 5),
}))


@given(entries)
def test_every_request_in_flight_is_counted_once(answer: list[dict[str, object]]) -> None:
    upstreams = parse_upstreams(json.dumps(answer))
    total = sum(int(str(e["num_requests"])) for e in answer)
    assert sum(upstreams.by_address.values()) + sum(upstreams.by_slot.values()) == total
    assert all(is_address(a) for a in upstreams.by_address)


@given(st.text(max_size=200))
def test_parse_upstreams_raises_only_value_error(body: str) -> None:
    with contextlib.suppress(ValueError):
        parse_upstreams(body)


@given(st.text(max_size=200))
def test_parse_http_never_raises(raw: str) -> None:
    status, _ = parse_http(raw)
    assert status == 0 or 100 <= status <= 999


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(["reverse_proxy", "{file./s/app.1}:80", "{file./s/app.x}"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["handler", "upstreams", "dial", "routes", "x"]),
                      children, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_any_configuration_is_read_without_raising(config: object) -> None:
    slots = find_slots(config, "app")
    assert all(s.name.startswith("app.") for s in slots)
    assert len({s.path for s in slots}) == len(slots)
    file_dials(config)


def test_slot_files_as_the_reader_prints_them() -> None:
    assert parse_slot_files("+10.0.0.5\n\0-\0+x\n\n\0", 3) == ["10.0.0.5\n", None, "x\n\n"]
    assert parse_slot_files("", 0) == []
    for wrong, count in (("+10.0.0.5\n\0", 2), ("+a\0+b", 2), ("a\0", 1), ("+a\0+b\0", 3)):
        with pytest.raises(ValueError):
            parse_slot_files(wrong, count)


@given(st.lists(st.none() | st.text(alphabet=st.characters(exclude_characters="\0"))))
def test_what_the_reader_prints_is_read_back_exactly(files: list[str | None]) -> None:
    printed = "".join("-\0" if f is None else f"+{f}\0" for f in files)
    assert parse_slot_files(printed, len(files)) == files


@pytest.mark.parametrize(("args", "command"), [
    ("caddy run --config /etc/caddy/Caddyfile --adapter caddyfile",
     Command("caddy", "/etc/caddy/Caddyfile", "caddyfile")),
    ("/usr/bin/caddy run --environ --config=/etc/caddy/caddy.json",
     Command("/usr/bin/caddy", "/etc/caddy/caddy.json", None)),
    ("caddy run", Command("caddy")),
    ("caddy version", None),
    ("caddyish run", None),
    ("sh -c caddy run", None),
    ("", None),
])
def test_the_caddy_run_process(args: str, command: Command | None) -> None:
    assert parse_command(args) == command


def test_the_inspection_runs_in_sh_and_is_read_back(tmp_path: Path) -> None:
    caddy = tmp_path / "caddy"  # stands in for the binary: what `version` and `adapt` print
    caddy.write_text('#!/bin/sh\n[ "$1" = version ] && echo "v2.11.4 h1:x" && exit\n'
                     'echo "{\\"adapted\\": \\"$3 $5\\"}"\n')
    caddy.chmod(0o755)
    (tmp_path / "caddy.json").write_text('{"json": true}')
    (tmp_path / "app.1").write_text("10.0.0.5\n")
    slots = [str(tmp_path / "app.1"), str(tmp_path / "app.2")]

    def inspect(command: Command) -> tuple[str, str, list[str | None]]:
        printed = subprocess.run(inspect_argv(command, slots), capture_output=True, text=True,
                                 check=True).stdout
        return parse_inspection(printed, len(slots))

    caddyfile = inspect(Command(str(caddy), "/etc/caddy/Caddyfile", "caddyfile"))
    assert caddyfile == ("v2.11.4 h1:x\n", '{"adapted": "/etc/caddy/Caddyfile caddyfile"}\n',
                         ["10.0.0.5\n", None])
    assert inspect(Command(str(caddy), str(tmp_path / "caddy.json")))[1] == '{"json": true}'
    assert inspect(Command(str(caddy)))[1] == ""
    with pytest.raises(ValueError):
        parse_inspection("v2.11.4\n", 0)
