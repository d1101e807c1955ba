"""HAProxy's configuration and runtime API answers, read and written as plain text.

Pure functions: no engine, no I/O, so every rule here has a unit test.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

# Server administrative flags (`srv_admin_state`), from HAProxy's server.h.
FORCED_MAINT = 0x01
MAINT_MASK = 0x23  # forced, inherited, or address resolution failed
DRAIN_MASK = 0x18  # forced or inherited drain
RUNNING = 2  # `srv_op_state`: 0 stopped, 1 starting, 2 running, 3 stopping


@dataclass(frozen=True)
class Slot:
    """One server line of a backend, as `show servers state` reports it."""

    backend: str
    name: str
    address: str
    port: int
    op_state: int
    admin_state: int

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & MAINT_MASK)

    @property
    def draining(self) -> bool:
        return not self.in_maintenance and bool(self.admin_state & DRAIN_MASK)

    @property
    def serving(self) -> bool:
        """Takes new requests: up and neither in maintenance nor draining."""
        return self.op_state == RUNNING and not self.admin_state & (MAINT_MASK | DRAIN_MASK)

    def holds(self, address: str, port: int) -> bool:
        return (self.address, self.port) == (address, port)


@dataclass(frozen=True)
class Socket:
    """Where the runtime API listens, seen from inside the HAProxy container."""

    path: str = ""
    host: str = ""
    port: int = 0

    def describe(self) -> str:
        return self.path or f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Setup:
    """What docker-swap needs from the HAProxy configuration."""

    socket: Socket | None
    state_file: str | None
    loads_state: bool
    backends: Mapping[str, list[str]]
    """Backend name to its server and server-template lines."""


def parse_servers_state(text: str) -> list[Slot]:
    slots = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or not fields[0].isdigit():
            continue  # the version line, the header, blank lines
        slots.append(Slot(
            backend=fields[1], name=fields[3], address=fields[4], port=int(fields[18]),
            op_state=int(fields[5]), admin_state=int(fields[6]),
        ))
    return slots


def parse_sessions(stat_csv: str, backend: str) -> dict[str, int]:
    """Server name to the sessions it holds or has queued, from `show stat`."""
    lines = stat_csv.lstrip("# ").splitlines()
    sessions = {}
    for row in csv.DictReader(lines):
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            sessions[row["svname"]] = int(row.get("scur") or 0) + int(row.get("qcur") or 0)
    return sessions


def parse_answers(stat_csv: str, backend: str) -> dict[str, tuple[int, int]]:
    """Server name to (5xx answers, all answers) so far, from `show stat`."""
    lines = stat_csv.lstrip("# ").splitlines()
    counts = {}
    for row in csv.DictReader(lines):
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            kinds = [_count(row.get(f"hrsp_{kind}")) for kind in
                     ("1xx", "2xx", "3xx", "4xx", "5xx", "other")]
            counts[row["svname"]] = (kinds[4], sum(kinds))
    return counts


def _count(field: str | None) -> int:
    return int(field) if field and field.isdigit() else 0


def parse_setup(config: str) -> Setup:
    sections = dict(_sections(config))
    global_lines = sections.get(("global", ""), [])
    return Setup(
        socket=next(filter(None, (_socket(line) for line in global_lines)), None),
        state_file=_state_file(global_lines),
        loads_state=any(
            line.startswith("load-server-state-from-file") and not line.endswith(" none")
            for lines in sections.values() for line in lines
        ),
        backends={
            name: [line for line in lines if line.startswith(("server ", "server-template "))]
            for (kind, name), lines in sections.items() if kind in ("backend", "listen")
        },
    )


def placeholder_is_an_address(server_line: str) -> bool:
    """True when the line names an IP: HAProxy then ignores the addresses a state file holds."""
    words = server_line.split()
    address = words[3] if words[0] == "server-template" and len(words) > 3 else (
        words[2] if len(words) > 2 else "")
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _sections(config: str) -> Iterator[tuple[tuple[str, str], list[str]]]:
    current: tuple[str, str] | None = None
    lines: list[str] = []
    for raw in config.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] in ("global", "defaults", "frontend", "backend", "listen", "resolvers",
                        "peers", "userlist", "program", "http-errors", "ring", "cache"):
            if current:
                yield current, lines
            current, lines = (words[0], words[1] if len(words) > 1 else ""), []
        elif current:
            lines.append(" ".join(words))
    if current:
        yield current, lines


def _socket(line: str) -> Socket | None:
    if not line.startswith("stats socket "):
        return None
    address = line.split()[2]
    if address.startswith(("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@")) or (
        ":" in address and not address.startswith(("/", "unix@", "abns@"))
    ):
        host, _, port = address.split("@")[-1].rpartition(":")
        if host in ("", "*", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return Socket(host=host.strip("[]"), port=int(port))
    if address.startswith("abns@"):
        return None
    return Socket(path=address.removeprefix("unix@"))


def _state_file(global_lines: Iterable[str]) -> str | None:
    base, path = "", None
    for line in global_lines:
        words = line.split()
        if words[0] == "server-state-base" and len(words) > 1:
            base = words[1]
        elif words[0] == "server-state-file" and len(words) > 1:
            path = words[1]
    if path is None:
        return None
    return path if path.startswith("/") or not base else f"{base.rstrip('/')}/{path}"


def command_line(commands: Iterable[str]) -> str:
    """Several runtime API commands sent as one line (HAProxy runs them in order)."""
    return "; ".join(commands)


def api_error(answer: str) -> str | None:
    """The runtime API's complaint, if the answer is one."""
    for line in answer.splitlines():
        if re.match(r"(Unknown command|No such|Can't find|Permission denied|Require|"
                    r"Invalid|.*not found|.*is not)", line.strip()):
            return line.strip()
    return None
