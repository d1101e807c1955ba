"""Caddy's configuration, admin API answers and docker-swap's slot files, read and written as text.

Pure functions: no engine, no I/O, so every rule here has a unit test.

A slot is one upstream of the user's `reverse_proxy` whose dial reads a file on every request:
`{file./etc/caddy/docker-swap/app.1}:8000`. The file holds one IP address, the port is the
user's. Every slot always names a live backend (with fewer backends than slots, some repeat):
Caddy fails a request sent to a slot whose file is missing, empty or not an address.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from docker_swap.models import Backend

MIN_VERSION = (2, 8, 0)
"""The `{file.*}` placeholder, read on every request, came with Caddy 2.8."""
IN_FLIGHT_BY_ADDRESS_SINCE = (2, 11, 2)
"""From here on `/reverse_proxy/upstreams` also counts the requests in flight per dialed
address; before, only per configured upstream (here: per slot)."""
_SLOT_DIAL = re.compile(r"^\{file\.(?P<path>/[^{}\s]+)\}:(?P<port>\d{1,5})$")
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[0-9.]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Slot:
    """One upstream of the running configuration that reads docker-swap's file."""

    path: str
    port: int

    @property
    def directory(self) -> str:
        return self.path.rpartition("/")[0] or "/"

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def staged_name(self) -> str:
        """Where the next content is written before it is renamed into place."""
        return f".{self.name}.next"

    @property
    def staged_path(self) -> str:
        return f"{self.directory.rstrip('/')}/{self.staged_name}"

    @property
    def dial(self) -> str:
        return f"{{file.{self.path}}}:{self.port}"


@dataclass(frozen=True)
class Command:
    """How Caddy was started: its binary, and the configuration file it loaded (if named)."""

    binary: str
    config: str | None = None
    adapter: str | None = None

    def reload_argv(self) -> list[str]:
        assert self.config is not None
        return [self.binary, "reload", "--config", self.config,
                *(["--adapter", self.adapter] if self.adapter else [])]

    @property
    def is_json(self) -> bool:
        return self.adapter in (None, "json") and bool(self.config) and (
            str(self.config).endswith(".json"))


def parse_command(args: str) -> Command | None:
    """The `caddy run` among a container's processes (`ps` args), or None if this is not it."""
    words = args.split()
    if not words or words[0].rpartition("/")[2] != "caddy" or "run" not in words[1:2]:
        return None
    found: dict[str, str] = {}
    for i, word in enumerate(words):
        for flag in ("--config", "--adapter"):
            if word == flag and i + 1 < len(words):
                found[flag] = words[i + 1]
            elif word.startswith(flag + "="):
                found[flag] = word.partition("=")[2]
    return Command(words[0], found.get("--config"), found.get("--adapter"))


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The version `caddy version` prints (`v2.11.4 h1:...`, or `2.11.4` for Debian's build)."""
    found = _VERSION.search(text)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def show_version(version: tuple[int, int, int] | None) -> str:
    return ".".join(map(str, version)) if version else "of unknown version"


def find_slots(config: object, upstream: str) -> list[Slot]:
    """The slots of `upstream` in Caddy's JSON configuration (`GET /config/`), in file order.

    A slot file is named UPSTREAM.N; the same slot used by several `reverse_proxy` handlers
    (an HTTP and an HTTPS site, say) counts once.
    """
    name = re.compile(rf"^{re.escape(upstream)}\.\d+$")
    found: dict[str, Slot] = {}
    for handler in _handlers(config):
        for entry in handler.get("upstreams") or []:
            dial = entry.get("dial") if isinstance(entry, Mapping) else None
            match = _SLOT_DIAL.match(dial) if isinstance(dial, str) else None
            if match and name.match(match["path"].rpartition("/")[2]):
                found.setdefault(match["path"], Slot(match["path"], int(match["port"])))
    return sorted(found.values(), key=lambda s: _number(s.name))


def sticky_problem(config: object, upstream: str) -> str | None:
    """Why the reverse_proxy handlers of `upstream`'s slots do not keep a client on the slot
    it first got (Caddy's `lb_policy cookie`), if they do not."""
    name = re.compile(rf"^{re.escape(upstream)}\.\d+$")
    for handler in _handlers(config):
        dials = [e.get("dial") for e in handler.get("upstreams") or [] if isinstance(e, Mapping)]
        ours = [d for d in dials if isinstance(d, str) and (m := _SLOT_DIAL.match(d))
                and name.match(m["path"].rpartition("/")[2])]
        balancing = handler.get("load_balancing")
        policy = balancing.get("selection_policy") if isinstance(balancing, Mapping) else None
        if ours and not (isinstance(policy, Mapping) and policy.get("policy") == "cookie"):
            return (f"the reverse_proxy of {upstream} does not balance by cookie: add "
                    "`lb_policy cookie` to it")
    return None


def file_dials(config: object) -> list[str]:
    """Every dial of a `reverse_proxy` that reads a file: to say what was found instead."""
    return [d for h in _handlers(config) for e in h.get("upstreams") or []
            if isinstance(e, Mapping) and isinstance(d := e.get("dial"), str) and "{file." in d]


def slots_problem(slots: Sequence[Slot], upstream: str) -> str | None:
    """Why these slots cannot be switched as one upstream, if they cannot."""
    if not slots:
        return None
    if len({s.directory for s in slots}) > 1:
        return (f"the slots of {upstream} are in several folders "
                f"({', '.join(sorted({s.directory for s in slots}))}); keep them in one")
    if len({s.port for s in slots}) > 1:
        return (f"the slots of {upstream} dial different ports "
                f"({', '.join(str(p) for p in sorted({s.port for s in slots}))}); use one")
    return None


def parse_http(raw: str) -> tuple[int, str]:
    """Status and body of a raw HTTP/1.x answer; status 0 when it is not one."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    status = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", head)
    return (int(status[1]), body) if status else (0, raw)


def parse_json(body: str) -> object:
    """A JSON answer of the admin API; ValueError if it is not JSON."""
    return json.loads(body)


@dataclass(frozen=True)
class Upstreams:
    """What `/reverse_proxy/upstreams` reports: requests in flight per address."""

    by_address: Mapping[str, int]
    """Dialed addresses (`IP:PORT`) with requests in flight (Caddy >= 2.11.2)."""
    by_slot: Mapping[str, int]
    """Configured upstreams that are placeholders (`{file...}:PORT`) and their requests."""


def parse_upstreams(body: str) -> Upstreams:
    """Raises ValueError when the answer is not the list Caddy sends."""
    entries = json.loads(body)
    if not isinstance(entries, list):
        raise ValueError("not a list of upstreams")
    by_address: dict[str, int] = {}
    by_slot: dict[str, int] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError("an upstream that is not an object")
        address, count = entry.get("address"), entry.get("num_requests", 0)
        if not isinstance(address, str) or isinstance(count, bool) or not isinstance(count, int):
            raise ValueError("an upstream without address or num_requests")
        target = by_slot if "{" in address else by_address
        target[address] = target.get(address, 0) + count
    return Upstreams(by_address, by_slot)


def slot_host(backend: Backend) -> str:
    """What a slot file holds for `backend`: its IP address, and nothing else.

    Raises ValueError for anything but an IP address (a name, a port, spaces, a newline) and
    a port out of range: a slot file is read by Caddy as part of a dial address.
    """
    address = ipaddress.ip_address(backend.address)  # ValueError for anything but an IP
    if not 1 <= backend.port <= 65535:
        raise ValueError(f"port {backend.port} of {backend.name} is not a port number")
    return f"[{address}]" if address.version == 6 else str(address)


def read_slot(content: str | None) -> str | None:
    """The IP a slot file holds (brackets kept for IPv6), or None if it holds no IP alone."""
    if content is None:
        return None
    text = content.removesuffix("\n").removesuffix("\r")
    try:
        address = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    bracketed = text.startswith("[") and text.endswith("]")
    return text if (address.version == 6) == bracketed else None


def fill(slots: Sequence[Slot], backends: Sequence[Backend]) -> dict[Slot, str]:
    """Each slot's next content: the backends in turn, repeated when there are more slots;
    backends of different weights get slots in proportion to them (Caddy picks a slot).

    Raises ValueError when a backend is not an IP address and port, or there are fewer slots
    than backends (some would get no traffic).
    """
    if not backends:
        raise ValueError("no backend to send to")
    if len(slots) < len(backends):
        raise ValueError(f"{len(slots)} slot(s) for {len(backends)} backends")
    if len({b.weight for b in backends}) < 2:
        return fill_hosts(slots, [slot_host(b) for b in backends])
    # Weighed (a canary): each backend gets slots in proportion to its weight, at least one.
    counts = apportion(len(slots), [b.weight for b in backends])
    hosts = [slot_host(b) for b, count in zip(backends, counts, strict=True)
             for _ in range(count)]
    return fill_hosts(slots, hosts)


def apportion(count: int, weights: Sequence[int]) -> list[int]:
    """`count` slots shared out in proportion to `weights`, each at least one (the nearest
    whole numbers: largest remainder). Raises ValueError when there are fewer slots than
    weights."""
    if count < len(weights):
        raise ValueError(f"{count} slot(s) for {len(weights)} backends")
    total = sum(weights)
    ideal = [count * w / total for w in weights]
    slots = [max(1, int(x)) for x in ideal]
    while sum(slots) < count:  # to the one furthest below its ideal
        slots[max(range(len(slots)), key=lambda i: ideal[i] - slots[i])] += 1
    while sum(slots) > count:  # from the one furthest above it that can spare one
        spare = [i for i in range(len(slots)) if slots[i] > 1]
        slots[max(spare, key=lambda i: slots[i] - ideal[i])] -= 1
    return slots


def fill_hosts(slots: Sequence[Slot], hosts: Sequence[str]) -> dict[Slot, str]:
    """Each slot's next content: these slot hosts (as `slot_host` makes them) in turn."""
    return {slot: f"{hosts[i % len(hosts)]}\n" for i, slot in enumerate(slots)}


def address(host: str, port: int) -> str:
    """How Caddy names the dialed address of a slot's host and port."""
    return f"{host}:{port}"


def is_address(text: str) -> bool:
    match = _ADDRESS.match(text)
    if not match:
        return False
    try:
        ipaddress.ip_address(match["host"].strip("[]"))
    except ValueError:
        return False
    return 1 <= int(match["port"]) <= 65535


READ_SLOTS = ('for f do if c=$(cat -- "$f" 2>/dev/null && echo x); then printf "+%s\\0" "${c%x}"; '
              'else printf "%s\\0" -; fi; done')
"""sh: each file given, in order, as `+CONTENT` (exact bytes) or `-` (unreadable), NUL-ended."""


def parse_slot_files(output: str, count: int) -> list[str | None]:
    """The files READ_SLOTS printed: each one's content, None when it could not be read.

    Raises ValueError unless the output holds exactly `count` of them.
    """
    items = output.split("\0")
    if items.pop() != "" or len(items) != count or any(i[:1] not in ("+", "-") for i in items):
        raise ValueError(f"not the {count} slot file(s) asked for")
    return [item[1:] if item.startswith("+") else None for item in items]


INSPECT = ('"$1" version; printf "\\0"; if [ -n "$2" ]; then if [ "$3" = - ]; then cat -- "$2"; '
           'else "$1" adapt --config "$2" ${3:+--adapter "$3"}; fi; fi 2>/dev/null; '
           'printf "\\0"; shift 3; ' + READ_SLOTS)
"""sh: `caddy version`, NUL, Caddy's configuration file as JSON (adapted, or as it is when it is
JSON), NUL, then the slot files as READ_SLOTS prints them: one call for all three."""


def inspect_argv(command: Command, paths: Sequence[str]) -> list[str]:
    adapter = "-" if command.is_json else command.adapter or ""
    return ["sh", "-c", INSPECT, "caddy-inspect", command.binary, command.config or "",
            adapter, *paths]


def parse_inspection(output: str, count: int) -> tuple[str, str, list[str | None]]:
    """What INSPECT printed: the version line(s), the configuration file as JSON (empty when
    there is none or it could not be adapted) and `count` slot files (see parse_slot_files)."""
    version, found, rest = output.partition("\0")
    config, found_too, files = rest.partition("\0")
    if not (found and found_too):
        raise ValueError("not what the inspection prints")
    return version, config, parse_slot_files(files, count)


def _handlers(config: object) -> Iterator[Mapping[str, list[object]]]:
    """Every `reverse_proxy` handler, however deep (routes, subroutes, handle blocks)."""
    if isinstance(config, Mapping):
        if config.get("handler") == "reverse_proxy" and isinstance(config.get("upstreams"),
                                                                     list):
            yield config
        for value in config.values():
            yield from _handlers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _handlers(value)


def _number(name: str) -> int:
    return int(name.rpartition(".")[2])
