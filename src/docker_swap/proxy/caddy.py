"""The Caddy driver: slot files that Caddy reads on every request, so a switch needs no reload.

The user's `reverse_proxy` dials a fixed number of slots, `{file./etc/caddy/docker-swap/app.1}:8000`
and so on, in a folder on a volume. Caddy (>= 2.8) replaces the placeholder with the file's
content on every request, so renaming a new file into place sends the next request to the new
backend: no reload, no client connection closed, certificates untouched. Every slot always
names a live backend (they repeat when there are fewer backends than slots).

- stage: the next content of every slot is written beside it (`.app.1.next`) and read back;
  Caddy never reads those files, so nothing is sent to the new backends yet.
- switch: each staged file is renamed over its slot (atomic), then the slots are read back.
- drain: Caddy's admin API (`/reverse_proxy/upstreams`) counts the requests in flight per
  dialed address; the old backends are drained once none of theirs is left.

The admin API is asked from inside the Caddy container, on its default 127.0.0.1:2019, with
bash's /dev/tcp (Debian-based images) or wget (the official Alpine-based image); renames use
sh and mv.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import ProxyConfigInvalid, ProxyNotReady, SwapError, SwitchNotConfirmed
from ..failpoints import failpoint
from ..models import Backend, Container
from .base import Drained, ProxyEngine
from .caddy_config import (
    IN_FLIGHT_BY_ADDRESS_SINCE,
    MIN_VERSION,
    READ_SLOTS,
    Slot,
    Upstreams,
    address,
    file_dials,
    fill,
    find_slots,
    is_address,
    parse_http,
    parse_json,
    parse_slot_files,
    parse_upstreams,
    parse_version,
    read_slot,
    show_version,
    slots_problem,
)

ADMIN_HOST = "127.0.0.1"
ADMIN_PORT = 2019
_DRAIN_POLL_SECONDS = 0.05
_HTTP_GET = ('exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\\r\\nHost: localhost:%s'
             '\\r\\n\\r\\n" "$3" "$2" >&3 && cat <&3')
_CLIENT = f"""
if command -v bash >/dev/null 2>&1; then exec bash -c '{_HTTP_GET}' caddy-api "$@"; fi
body=$(wget -q -O- "http://$1:$2$3") && printf 'HTTP/1.0 200 OK\\r\\n\\r\\n%s' "$body"
"""
_RENAME = 'while [ $# -gt 1 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'


@dataclass
class _Caddy:
    """One running Caddy: its container, version, slots, and what each slot file holds now."""

    container: Container
    version: tuple[int, int, int] | None
    slots: list[Slot]
    current: dict[Slot, str | None] = field(default_factory=dict)
    """Slot to the IP its file holds (None: missing, or not an IP)."""

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def by_address(self) -> bool:
        return self.version is None or self.version >= IN_FLIGHT_BY_ADDRESS_SINCE

    def addresses(self) -> set[str]:
        return {address(host, s.port) for s, host in self.current.items() if host}


class CaddyDriver:
    def __init__(
        self,
        engine: ProxyEngine,
        containers: Sequence[Container],
        upstream: str,
        switch_timeout: float,
    ) -> None:
        self.description = f"Caddy ({', '.join(c.name for c in containers)})"
        self._engine = engine
        self._containers = list(containers)
        self._upstream = upstream
        self._switch_timeout = switch_timeout
        self._caddies: list[_Caddy] = []
        self._staged: dict[str, dict[Slot, str]] = {}
        self._retiring: dict[str, set[str]] = {}
        """Container id to the old backends' addresses (or, before Caddy 2.11.2, slots)."""

    def check(self) -> list[str]:
        self._caddies = [self._inspect(container) for container in self._containers]
        notes = []
        for caddy in self._caddies:
            broken = [s.path for s, host in caddy.current.items() if host is None]
            if broken and len(broken) == len(caddy.slots):
                notes.append(f"Caddy in {caddy.name}: no slot of {self._upstream} holds an "
                             f"address yet ({broken[0]}, ...): Caddy fails every request it "
                             "sends there until docker-swap writes them (`docker-swap sync "
                             f"{self._upstream}` does, and so does the next switch).")
            elif broken:
                notes.append(f"Caddy in {caddy.name}: slot file(s) {', '.join(broken)} are "
                             "missing or hold no IP address, so Caddy fails the requests it "
                             "sends there; a deploy rewrites every slot with the backends that "
                             "serve now as soon as its new containers start (`docker-swap sync "
                             f"{self._upstream}` does it at once).")
            if not caddy.by_address:
                notes.append(f"Caddy {show_version(caddy.version)} in {caddy.name} counts "
                             "requests in flight per slot, not per backend: the drain waits "
                             "until every slot was idle once (Caddy >= 2.11.2 is exact).")
        return notes

    def status(self) -> str:
        parts = []
        for caddy in self._caddies:
            hosts = sorted({h for h in caddy.current.values() if h})
            parts.append(
                f"{caddy.name}: Caddy {show_version(caddy.version)}, {len(caddy.slots)} slots "
                f"of {self._upstream} in {caddy.slots[0].directory} (port "
                f"{caddy.slots[0].port}) -> {', '.join(hosts) or 'nothing yet'}; admin API at "
                f"{ADMIN_HOST}:{ADMIN_PORT}"
            )
        return "; ".join(parts)

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        if not self._caddies:
            self.check()
        staged = {c.container.id: self._contents(c, backends) for c in self._caddies}
        for caddy in self._caddies:
            if serving and None in caddy.current.values():  # a broken slot fails requests now
                self._apply(caddy, self._contents(caddy, serving))
            self._write_staged(caddy, staged[caddy.container.id])
        failpoint("stage")
        for caddy in self._caddies:
            wrong = self._unlike(caddy, staged[caddy.container.id], staged=True)
            if wrong:
                raise ProxyConfigInvalid(
                    f"Caddy in {caddy.name}: {wrong[0]} does not hold what docker-swap wrote.",
                    hint="Is the slot folder's volume writable, and written by nothing else?",
                )
        self._staged = staged

    def unstage(self) -> None:
        """The staged files are never read by Caddy: forgetting them undoes the stage."""
        self._staged = {}

    def switch(self, backends: Sequence[Backend]) -> str:
        if not self._caddies:
            self.check()
        contents = {c.container.id: self._contents(c, backends) for c in self._caddies}
        for caddy in self._caddies:
            if self._staged.get(caddy.container.id) != contents[caddy.container.id]:
                self._write_staged(caddy, contents[caddy.container.id])
        self._staged = {}
        for caddy in self._caddies:
            self._rename(caddy)
        failpoint("switch")
        for caddy in self._caddies:
            self._confirm(caddy, contents[caddy.container.id])
        return f"upstream {self._upstream} -> {', '.join(b.name for b in backends)}"

    def drain(self, timeout: float) -> Drained:
        started = time.monotonic()
        pending = {c.container.id: set(self._retiring.get(c.container.id, set()))
                   for c in self._caddies}
        recovering = not self._retiring  # no switch in this process: any backend not in a slot
        while True:
            busy = sum(self._busy(c, pending[c.container.id], recovering) for c in self._caddies)
            seconds = time.monotonic() - started
            if not busy:
                self._retiring = {}
                return Drained(seconds, True, "no request left on the old backends")
            if seconds >= timeout:
                return Drained(seconds, False, f"{busy} request(s) still on the old backends "
                               f"after {timeout:g} s")
            time.sleep(_DRAIN_POLL_SECONDS)

    def _inspect(self, container: Container) -> _Caddy:
        caddy = next((p.args.split()[0] for p in self._engine.processes(container.id)
                      if p.args.split()[0].rpartition("/")[2] == "caddy"
                      and "run" in p.args.split()), None)
        if caddy is None:
            raise ProxyNotReady(f"no `caddy run` process runs in {container.name}.")
        with ThreadPoolExecutor(2) as pool:  # two independent round trips to the engine
            printed = pool.submit(self._engine.exec, container.id, [caddy, "version"],
                                  self._switch_timeout)
            answer = pool.submit(self._admin, container, "/config/")
            version, config = parse_version(printed.result().stdout), answer.result()
        if version is not None and version < MIN_VERSION:
            raise ProxyNotReady(
                f"Caddy {show_version(version)} in {container.name} is older than 2.8: it "
                "cannot read a slot file on every request, and every other way to change its "
                "upstreams is a reload.",
                hint="Use Caddy 2.8 or newer (the official image caddy:2 is).",
            )
        try:
            loaded = parse_json(config)
        except ValueError as exc:
            raise ProxyNotReady(f"Caddy's admin API in {container.name} answered GET /config/ "
                                f"with something else than JSON: {config[:100]!r}") from exc
        slots = find_slots(loaded, self._upstream)
        problem = slots_problem(slots, self._upstream)
        if not slots or problem:
            others = file_dials(loaded)
            raise ProxyNotReady(
                f"Caddy in {container.name}: "
                + (problem or f"no reverse_proxy dials slot files of {self._upstream}"
                   + (f" (found {', '.join(others[:2])})" if others else "")) + ".",
                hint=f"Give its reverse_proxy slots such as `{{file./etc/caddy/docker-swap/"
                f"{self._upstream}.1}}:PORT` (see docs/caddy.md).",
            )
        if not any(_covers(mount, slots[0].directory) for mount in container.mounts):
            raise ProxyNotReady(
                f"{slots[0].directory} in {container.name} is not on a volume, so the slots "
                "docker-swap writes would be lost when the proxy is recreated.",
                hint=f"Add `- docker-swap:{slots[0].directory}` to the proxy's volumes "
                "(and `docker-swap:` under the top-level volumes).",
            )
        found = _Caddy(container, version, slots)
        found.current = {s: read_slot(t) for s, t in self._read(found, staged=False).items()}
        return found

    def _contents(self, caddy: _Caddy, backends: Sequence[Backend]) -> dict[Slot, str]:
        port = caddy.slots[0].port
        wrong = [b for b in backends if b.port != port]
        if wrong:
            raise ProxyConfigInvalid(
                f"Caddy in {caddy.name} dials port {port} for {self._upstream}, but "
                f"{wrong[0].name} listens on {wrong[0].port}.",
                hint=f"Write `:{wrong[0].port}` after the slots' placeholders, or set "
                "x-swap.port.",
            )
        try:
            return fill(caddy.slots, backends)
        except ValueError as exc:
            raise ProxyConfigInvalid(
                f"Caddy in {caddy.name} cannot send to {', '.join(b.name for b in backends)}: "
                f"{exc}.",
                hint=f"Give its reverse_proxy at least as many slots of {self._upstream} as "
                "the service has replicas (twice as many balances a swap best: see "
                "docs/caddy.md).",
            ) from exc

    def _apply(self, caddy: _Caddy, contents: Mapping[Slot, str]) -> None:
        """Write, rename into place and confirm, at once (a repair: no failpoint)."""
        self._write_staged(caddy, contents)
        self._rename(caddy)
        self._confirm(caddy, contents)

    def _confirm(self, caddy: _Caddy, contents: Mapping[Slot, str]) -> None:
        """Read every slot back; then the old backends no slot names any more are retiring."""
        wrong = self._unlike(caddy, contents, staged=False)
        if wrong:
            raise SwitchNotConfirmed(
                f"Caddy in {caddy.name}: slot file {wrong[0]} does not hold the new backend "
                "after the switch.",
                hint="Something else writes into the slot folder; see `docker-swap doctor`.",
            )
        before = caddy.addresses()
        caddy.current = {slot: text.strip() for slot, text in contents.items()}
        self._retiring[caddy.container.id] = (
            before - caddy.addresses() if caddy.by_address else {s.dial for s in caddy.slots})

    def _write_staged(self, caddy: _Caddy, contents: Mapping[Slot, str]) -> None:
        self._engine.write_files(caddy.container.id, caddy.slots[0].directory,
                                 {slot.staged_name: text.encode() for slot, text in
                                  contents.items()})

    def _rename(self, caddy: _Caddy) -> None:
        pairs = [path for s in caddy.slots for path in (s.staged_path, s.path)]
        result = self._engine.exec(caddy.container.id, ["sh", "-c", _RENAME, "caddy-slots",
                                                        *pairs], self._switch_timeout)
        if result.exit_code != 0:  # some slots may have moved: not "nothing changed"
            raise SwitchNotConfirmed(
                f"could not rename the slot files in {caddy.name}: "
                f"{result.output.strip() or f'exit code {result.exit_code}'}",
                hint="docker-swap renames them with sh and mv inside the Caddy container.",
            )

    def _read(self, caddy: _Caddy, *, staged: bool,
              error: type[SwapError] = ProxyNotReady) -> dict[Slot, str | None]:
        """Every slot file (or its staged file) as it is now, in one call."""
        paths = [s.staged_path if staged else s.path for s in caddy.slots]
        result = self._engine.exec(caddy.container.id, ["sh", "-c", READ_SLOTS, "caddy-slots",
                                                        *paths], self._switch_timeout)
        try:
            if result.exit_code != 0:
                raise ValueError(result.output.strip() or f"exit code {result.exit_code}")
            return dict(zip(caddy.slots, parse_slot_files(result.stdout, len(paths)),
                            strict=True))
        except ValueError as exc:
            raise error(
                f"could not read the slot files in {caddy.name}: {exc}",
                hint="docker-swap reads them with sh and cat inside the Caddy container.",
            ) from exc

    def _unlike(self, caddy: _Caddy, contents: Mapping[Slot, str], *, staged: bool) -> list[str]:
        found = self._read(caddy, staged=staged, error=SwitchNotConfirmed)
        return [s.staged_path if staged else s.path for s, text in contents.items()
                if found.get(s) != text]

    def _busy(self, caddy: _Caddy, pending: set[str], recovering: bool) -> int:
        upstreams = self._upstreams(caddy)
        if recovering:
            live = caddy.addresses()
            return sum(n for a, n in upstreams.by_address.items()
                       if n and is_address(a) and a not in live)
        if caddy.by_address:
            return sum(upstreams.by_address.get(a, 0) for a in pending)
        pending -= {d for d in pending if not upstreams.by_slot.get(d)}  # idle once: drained
        return sum(upstreams.by_slot.get(d, 0) for d in pending)

    def _upstreams(self, caddy: _Caddy) -> Upstreams:
        body = self._admin(caddy.container, "/reverse_proxy/upstreams")
        try:
            return parse_upstreams(body)
        except ValueError as exc:
            raise SwitchNotConfirmed(
                f"Caddy in {caddy.name} answered /reverse_proxy/upstreams with something "
                f"else than its list of upstreams ({exc})."
            ) from exc

    def _admin(self, container: Container, path: str) -> str:
        """GET `path` of Caddy's admin API from inside the container; the body."""
        result = self._engine.exec(
            container.id, ["sh", "-c", _CLIENT, "caddy-api", ADMIN_HOST, str(ADMIN_PORT), path],
            timeout=self._switch_timeout)
        status, body = parse_http(result.stdout)
        if result.exit_code != 0 or status != 200:
            reason = (body.strip()[:200] if status else
                      result.output.strip()[:200] or f"exit code {result.exit_code}")
            raise ProxyNotReady(
                f"Caddy's admin API in {container.name} does not answer GET {path} at "
                f"{ADMIN_HOST}:{ADMIN_PORT}: {reason}",
                hint="Keep Caddy's admin endpoint at its default (localhost:2019); docker-swap "
                "asks it from inside the container with bash or wget.",
            )
        return body


def _covers(mount: str, path: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")
