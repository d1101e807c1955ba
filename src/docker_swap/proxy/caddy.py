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

Only slots that the file Caddy was started with names, but the running configuration does
not (the first adoption, or more slots), need a reload: docker-swap writes them first, then
reloads Caddy once, before any traffic moves (at the stage of a deploy, else before the switch).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from docker_swap.errors import ProxyConfigInvalid, ProxyNotReady, SwitchNotConfirmed
from docker_swap.models import Backend, Container
from docker_swap.proxy.base import Drained, ProxyEngine, Serving, covers
from docker_swap.proxy.caddy_config import (
    IN_FLIGHT_BY_ADDRESS_SINCE,
    MIN_VERSION,
    Command,
    Slot,
    address,
    apportion,
    file_dials,
    fill,
    fill_hosts,
    find_slots,
    is_address,
    read_slot,
    show_version,
    slots_problem,
    sticky_problem,
)
from docker_swap.proxy.caddy_container import ADMIN_HOST, ADMIN_PORT, CaddyContainer
from docker_swap.safety.failpoints import failpoint

_DRAIN_POLL_SECONDS = 0.05


@dataclass
class _Caddy:
    """One running Caddy: how it runs, its slots, and what each slot file holds now."""

    box: CaddyContainer
    command: Command
    version: tuple[int, int, int] | None
    slots: list[Slot]
    """Every slot of the upstream: loaded, and named by the file only (`pending`)."""
    pending: list[Slot] = field(default_factory=list)
    current: dict[Slot, str | None] = field(default_factory=dict)
    """Slot to the IP its file holds (None: missing, or not an IP)."""
    sticky_problem: str | None = None

    @property
    def name(self) -> str:
        return self.box.name

    @property
    def id(self) -> str:
        return self.box.container.id

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
        self._boxes = [CaddyContainer(engine, c, switch_timeout) for c in containers]
        self._upstream = upstream
        self._caddies: list[_Caddy] = []
        self._staged: dict[str, dict[Slot, str]] = {}
        self._retiring: dict[str, set[str]] = {}
        """Container id to the old backends' addresses (or, before Caddy 2.11.2, slots)."""

    def check(self) -> list[str]:
        self._caddies = [self._inspect(box) for box in self._boxes]
        return [note for caddy in self._caddies for note in self._notes(caddy)]

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

    def serving(self) -> list[Serving]:
        """The backends the slot files name now: Caddy reads them on every request."""
        self.check()
        views = []
        for caddy in self._caddies:
            dialed = [address(h, s.port) for s, h in caddy.current.items() if h]
            backends = sorted(set(dialed))  # a backend's weight: the slots that name it
            views.append(Serving(f"Caddy in {caddy.name} ({len(caddy.slots)} slots of "
                                 f"{self._upstream})", tuple(backends),
                                 tuple(dialed.count(b) for b in backends)))
        return views

    def sticky_problem(self) -> str | None:
        if not self._caddies:
            self.check()
        return next((f"Caddy in {c.name}: {c.sticky_problem}" for c in self._caddies
                     if c.sticky_problem), None)

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        if not self._caddies:
            self.check()
        staged = {c.id: self._contents(c, backends) for c in self._caddies}
        for caddy in self._caddies:
            if serving and (caddy.pending or None in caddy.current.values()):
                self._apply(caddy, self._contents(caddy, serving))  # what serves now, in all
                self._load_pending(caddy)
            caddy.box.write(caddy.slots[0].directory, _staged_files(staged[caddy.id]))
        failpoint("stage")
        for caddy in self._caddies:
            wrong = self._unlike(caddy, staged[caddy.id], staged=True)
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
        contents = {c.id: self._contents(c, backends) for c in self._caddies}
        reloaded = [c.name for c in self._caddies if c.pending]
        for caddy in self._caddies:
            if caddy.pending:  # before traffic moves: Caddy loads the slots it lacks
                serving = [h for s, h in caddy.current.items() if h and s not in caddy.pending]
                self._apply(caddy, fill_hosts(caddy.slots, serving) if serving else
                            contents[caddy.id])  # the first adoption: nothing serves yet
                self._load_pending(caddy)
            if self._staged.get(caddy.id) != contents[caddy.id]:
                caddy.box.write(caddy.slots[0].directory, _staged_files(contents[caddy.id]))
        self._staged = {}
        for caddy in self._caddies:
            caddy.box.rename([(s.staged_path, s.path) for s in caddy.slots])
        failpoint("switch")
        for caddy in self._caddies:
            self._confirm(caddy, contents[caddy.id])
        done = f"upstream {self._upstream} -> {self._described(backends)}"
        return done + (f" (Caddy in {', '.join(reloaded)} reloaded once to load its new "
                       "slots)" if reloaded else "")

    def drain(self, timeout: float) -> Drained:
        started = time.monotonic()
        pending = {c.id: set(self._retiring.get(c.id, set())) for c in self._caddies}
        # No switch in this process, or one that changed nothing (recover confirming the slots
        # a killed deploy had written): any backend no slot names, requests still on it.
        recovering = {c.id: not pending[c.id] for c in self._caddies}
        while True:
            busy = sum(self._busy(c, pending[c.id], recovering[c.id]) for c in self._caddies)
            seconds = time.monotonic() - started
            if not busy:
                self._retiring = {}
                return Drained(seconds, True, "no request left on the old backends")
            if seconds >= timeout:
                return Drained(seconds, False, f"{busy} request(s) still on the old backends "
                               f"after {timeout:g} s")
            time.sleep(_DRAIN_POLL_SECONDS)

    def _inspect(self, box: CaddyContainer) -> _Caddy:
        with ThreadPoolExecutor(2) as pool:  # independent round trips to the engine
            started = pool.submit(box.command)
            running = pool.submit(box.config)
            command, config = started.result(), running.result()
        loaded = find_slots(config, self._upstream)
        version, file_config, files = box.inspect(command, [s.path for s in loaded])
        if version is not None and version < MIN_VERSION:
            raise ProxyNotReady(
                f"Caddy {show_version(version)} in {box.name} is older than 2.8: it cannot "
                "read a slot file on every request, and every other way to change its "
                "upstreams is a reload.",
                hint="Use Caddy 2.8 or newer (the official image caddy:2 is).",
            )
        known = {s.path for s in loaded}
        pending = [s for s in find_slots(file_config, self._upstream) if s.path not in known]
        slots = sorted(loaded + pending, key=lambda s: int(s.name.rpartition(".")[2]))
        problem = slots_problem(slots, self._upstream)
        if not slots or problem:
            others = file_dials(config)
            raise ProxyNotReady(
                f"Caddy in {box.name}: "
                + (problem or f"no reverse_proxy dials slot files of {self._upstream}"
                   + (f" (found {', '.join(others[:2])})" if others else "")) + ".",
                hint=f"Give its reverse_proxy slots such as `{{file./etc/caddy/docker-swap/"
                f"{self._upstream}.1}}:PORT` (see docs/caddy.md).",
            )
        folder = slots[0].directory
        if not any(covers(mount, folder) for mount in box.container.mounts):
            raise ProxyNotReady(
                f"{folder} in {box.name} is not on a volume, so the slots docker-swap writes "
                "would be lost when the proxy is recreated.",
                hint=f"Add `- docker-swap:{folder}` to the proxy's volumes (and "
                "`docker-swap:` under the top-level volumes).",
            )
        current = {s: read_slot(text) for s, text in zip(loaded, files, strict=True)}
        return _Caddy(box, command, version, slots, pending,
                      {s: current.get(s) for s in slots},  # pending ones are written anew
                      sticky_problem(config, self._upstream))

    def _notes(self, caddy: _Caddy) -> list[str]:
        notes = []
        broken = [s.path for s, host in caddy.current.items()
                  if host is None and s not in caddy.pending]
        if broken and len(broken) == len(caddy.slots) - len(caddy.pending):
            notes.append(f"Caddy in {caddy.name}: no slot of {self._upstream} holds an address "
                         f"yet ({broken[0]}, ...): Caddy fails every request it sends there "
                         f"until docker-swap writes them (`docker-swap sync {self._upstream}` "
                         "does, and so does a deploy).")
        elif broken:
            notes.append(f"Caddy in {caddy.name}: slot file(s) {', '.join(broken)} are missing "
                         "or hold no IP address, so Caddy fails the requests it sends there; a "
                         "deploy rewrites every slot with the backends that serve now as soon "
                         f"as its new containers start (`docker-swap sync {self._upstream}` "
                         "does it at once).")
        if caddy.pending:
            notes.append(f"Caddy in {caddy.name} has not loaded slot(s) "
                         f"{', '.join(s.name for s in caddy.pending)} of {caddy.command.config} "
                         "yet: docker-swap writes them, then reloads Caddy once before any "
                         "traffic moves. A reload closes idle keep-alive client connections: "
                         "a few requests may fail (docs/caddy.md).")
        if not caddy.by_address:
            notes.append(f"Caddy {show_version(caddy.version)} in {caddy.name} counts requests "
                         "in flight per slot, not per backend: the drain waits until every slot "
                         "was idle once (Caddy >= 2.11.2 is exact).")
        return notes

    def _described(self, backends: Sequence[Backend]) -> str:
        """The backends, and for a canary how many slots each got (its share)."""
        if len({b.weight for b in backends}) < 2 or not self._caddies:
            return ", ".join(b.name for b in backends)
        slots = self._caddies[0].slots
        counts = apportion(len(slots), [b.weight for b in backends])
        return ", ".join(f"{b.name} ({count} of {len(slots)} slots)"
                         for b, count in zip(backends, counts, strict=True))

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

    def _load_pending(self, caddy: _Caddy) -> None:
        """Reload Caddy so that it dials the slots its file names (all written already)."""
        if not caddy.pending:
            return
        caddy.box.reload(caddy.command)
        loaded = {s.path for s in find_slots(caddy.box.config(), self._upstream)}
        missing = [s.name for s in caddy.pending if s.path not in loaded]
        if missing:
            raise SwitchNotConfirmed(f"Caddy in {caddy.name} reloaded {caddy.command.config} "
                                     f"but does not dial slot(s) {', '.join(missing)}.")
        caddy.pending = []

    def _apply(self, caddy: _Caddy, contents: Mapping[Slot, str]) -> None:
        """Write, rename into place and confirm, at once (a repair: no failpoint)."""
        caddy.box.write(caddy.slots[0].directory, _staged_files(contents))
        caddy.box.rename([(s.staged_path, s.path) for s in caddy.slots])
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
        self._retiring[caddy.id] = (
            before - caddy.addresses() if caddy.by_address else {s.dial for s in caddy.slots})

    def _unlike(self, caddy: _Caddy, contents: Mapping[Slot, str], *, staged: bool) -> list[str]:
        paths = [s.staged_path if staged else s.path for s in contents]
        found = caddy.box.read(paths, error=SwitchNotConfirmed)
        return [path for path, text, expected in zip(paths, found, contents.values(),
                                                     strict=True) if text != expected]

    def _busy(self, caddy: _Caddy, pending: set[str], recovering: bool) -> int:
        upstreams = caddy.box.upstreams()
        if recovering:
            live = caddy.addresses()
            return sum(n for a, n in upstreams.by_address.items()
                       if n and is_address(a) and a not in live)
        if caddy.by_address:
            return sum(upstreams.by_address.get(a, 0) for a in pending)
        pending -= {d for d in pending if not upstreams.by_slot.get(d)}  # idle once: drained
        return sum(upstreams.by_slot.get(d, 0) for d in pending)


def _staged_files(contents: Mapping[Slot, str]) -> dict[str, bytes]:
    return {slot.staged_name: text.encode() for slot, text in contents.items()}
