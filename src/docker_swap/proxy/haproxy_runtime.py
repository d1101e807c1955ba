"""HAProxy's configuration and runtime API answers, read and written as plain text.

Pure functions: no engine, no I/O, so every rule here has a unit test.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

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
    weight: int = 1
    """Its user weight (`srv_uweight`): its share of new requests against the others'."""

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
    cookies: Mapping[str, list[str]] = field(default_factory=dict)
    """Backend name to its `cookie` and `dynamic-cookie-key` lines."""

    def sticky_problem(self, backend: str) -> str | None:
        """Why `backend` cannot keep a client on its server by a cookie that survives the
        runtime API's address changes (HAProxy's dynamic cookies), if it cannot."""
        lines = self.cookies.get(backend, [])
        cookie = next((line.split() for line in lines if line.startswith("cookie ")), None)
        if cookie is None or "insert" not in cookie or "dynamic" not in cookie:
            return (f"backend {backend} sets no dynamic cookie: add `cookie SERVERID insert "
                    "indirect nocache dynamic` to it")
        if not any(line.startswith("dynamic-cookie-key ") for line in lines):
            return (f"backend {backend} has dynamic cookies but no key: add "
                    "`dynamic-cookie-key SOME-SECRET` to it")
        return None


def parse_servers_state(text: str) -> list[Slot]:
    """The server lines of a `show servers state` answer; lines that are not one are skipped."""
    slots = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or _number(fields[0]) is None:
            continue  # the version line, the header, blank lines
        port, op_state, admin_state, weight = (_number(fields[i]) for i in (18, 5, 6, 7))
        if port is None or op_state is None or admin_state is None:
            continue
        slots.append(Slot(backend=fields[1], name=fields[3], address=fields[4], port=port,
                          op_state=op_state, admin_state=admin_state,
                          weight=1 if weight is None else weight))
    return slots


def servers_state_part(answer: str) -> str:
    """The `show servers state` answer at the end of an answer to several commands (`set
    server ... addr` before it answers with a sentence; the other `set`s with a blank line):
    from its version line on, as HAProxy reads it back from a state file."""
    lines = answer.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("# be_id"):
            start = i - 1 if i and _number(lines[i - 1].strip()) is not None else i
            return "".join(lines[start:])
    return answer.lstrip()


def parse_sessions(stat_csv: str, backend: str) -> dict[str, int]:
    """Server name to the sessions it holds or has queued, from `show stat` (rows that cannot
    be read count none)."""
    lines = stat_csv.lstrip("# ").splitlines()
    sessions: dict[str, int] = {}
    try:
        for row in csv.DictReader(lines):
            name = row.get("svname")
            if row.get("pxname") == backend and name and name not in ("FRONTEND", "BACKEND"):
                sessions[name] = sum(_number(row.get(k) or "") or 0 for k in ("scur", "qcur"))
    except csv.Error:
        pass  # not CSV past this point: what was read stands
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
    """What docker-swap needs from a configuration. Raises ValueError (one sentence) when its
    only runtime API socket is written in a way docker-swap cannot use."""
    sections = dict(_sections(config))
    global_lines = sections.get(("global", ""), [])
    return Setup(
        socket=_first_socket(global_lines),
        state_file=_state_file(global_lines),
        loads_state=any(
            line.startswith("load-server-state-from-file") and not line.endswith(" none")
            for lines in sections.values() for line in lines
        ),
        backends={
            name: [line for line in lines if line.startswith(("server ", "server-template "))]
            for (kind, name), lines in sections.items() if kind in ("backend", "listen")
        },
        cookies={
            name: [line for line in lines if line.startswith(("cookie ", "dynamic-cookie-key "))]
            for (kind, name), lines in sections.items() if kind in ("backend", "listen")
        },
    )


def placeholder_is_an_address(server_line: str) -> bool:
    """True when the line names an IP: HAProxy then ignores the addresses a state file holds."""
    words = server_line.split()
    template = bool(words) and words[0] == "server-template"
    address = words[3] if template and len(words) > 3 else (
        words[2] if not template and len(words) > 2 else "")
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


def _first_socket(global_lines: Iterable[str]) -> Socket | None:
    problems = []
    for line in global_lines:
        try:
            socket = _socket(line)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if socket:
            return socket
    if problems:
        raise ValueError(problems[0])
    return None


def _socket(line: str) -> Socket | None:
    words = line.split()
    if words[:2] != ["stats", "socket"] or len(words) < 3:
        return None
    written = words[2]
    if "$" in written:
        raise ValueError(
            f"its stats socket is given by an environment variable ({written}), which "
            "docker-swap does not expand; write the address itself, e.g. "
            "`stats socket ipv4@127.0.0.1:9999 level admin`"
        )
    address = written.strip("\"'")
    if address.startswith(("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@")) or (
        ":" in address and not address.startswith(("/", "unix@", "abns@"))
    ):
        host, _, port = address.split("@")[-1].rpartition(":")
        number = _number(port)
        if number is None or not 0 < number < 65536:
            raise ValueError(f"its stats socket {written} has no port docker-swap can use; "
                             "write one, e.g. `stats socket ipv4@127.0.0.1:9999 level admin`")
        if host in ("", "*", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return Socket(host=host.strip("[]"), port=number)
    if address.startswith("abns@") or not address:
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


def _number(text: str) -> int | None:
    """A whole number written in ASCII digits (a few of them), else None."""
    return int(text) if re.fullmatch(r"-?[0-9]{1,12}", text) else None


def api_error(answer: str) -> str | None:
    """The runtime API's complaint, if the answer is one."""
    for line in answer.splitlines():
        if re.match(r"(Unknown command|No such|Can't find|Permission denied|Require|"
                    r"Invalid|.*not found|.*is not)", line.strip()):
            return line.strip()
    return None
