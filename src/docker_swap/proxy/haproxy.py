"""The HAProxy driver: server slots changed through the runtime API, with no reload at all.

The user's backend has spare server slots (`server-template app 4 localhost:1 disabled`). A
switch puts the new containers' addresses into free slots, makes them ready, and sets the old
ones to drain: HAProxy stops giving them new requests while those in flight finish, and client
connections are never touched. The drain watches the old slots' sessions until none is left,
then puts them in maintenance (free again). After each change the servers' state is written to
HAProxy's `server-state-file`, on a volume, so that a restarted HAProxy comes back with them.

The runtime API is reached by a command run inside the HAProxy container: bash's /dev/tcp for
a TCP socket on loopback (works with the official image), socat for a unix socket.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from docker_swap.errors import ProxyConfigInvalid, ProxyNotReady, SwitchNotConfirmed
from docker_swap.models import Backend, Container, check_backends
from docker_swap.proxy.base import Drained, ProxyEngine, Serving, covers, weighed
from docker_swap.proxy.haproxy_runtime import (
    Slot,
    Socket,
    api_error,
    command_line,
    parse_answers,
    parse_servers_state,
    parse_sessions,
    parse_setup,
    placeholder_is_an_address,
    servers_state_part,
)
from docker_swap.safety.failpoints import failpoint

_POLL_SECONDS = 0.02
_DRAIN_POLL_SECONDS = 0.1
_TCP_CLIENT = 'exec 3<>"/dev/tcp/$1/$2" && printf "%s\\n" "$3" >&3 && cat <&3'
_UNIX_CLIENT = 'printf "%s\\n" "$2" | socat -t 10 stdio "unix-connect:$1"'


@dataclass
class _HAProxy:
    container: Container
    socket: Socket
    state_file: str
    sticky_problem: str | None = None

    @property
    def name(self) -> str:
        return self.container.name


class HAProxyDriver:
    def __init__(
        self,
        engine: ProxyEngine,
        containers: Sequence[Container],
        backend: str,
        switch_timeout: float,
    ) -> None:
        self.description = f"HAProxy ({', '.join(c.name for c in containers)})"
        self._engine = engine
        self._containers = list(containers)
        self._backend = backend
        self._switch_timeout = switch_timeout
        self._haproxies: list[_HAProxy] = []
        self._retiring: dict[str, set[str]] = {}
        self._serving: dict[str, set[str]] = {}

    def check(self) -> list[str]:
        self._haproxies = [self._inspect(container) for container in self._containers]
        return []

    def status(self) -> str:
        parts = []
        for haproxy in self._haproxies:
            slots = self._slots(haproxy)
            serving = sum(s.serving for s in slots)
            free = sum(s.in_maintenance for s in slots)
            parts.append(f"{haproxy.name}: backend {self._backend}, {serving} serving, {free} of "
                         f"{len(slots)} slots free, runtime API at {haproxy.socket.describe()}")
        return "; ".join(parts)

    def serving(self) -> list[Serving]:
        """The backend's servers that take new requests, as `show servers state` says."""
        if not self._haproxies:
            self.check()
        views = []
        for haproxy in self._haproxies:
            serving = [s for s in self._slots(haproxy) if s.serving]
            views.append(Serving(f"HAProxy in {haproxy.name} (backend {self._backend})",
                                 tuple(f"{s.address}:{s.port}" for s in serving),
                                 tuple(s.weight for s in serving)))
        return views

    def sticky_problem(self) -> str | None:
        if not self._haproxies:
            self.check()
        return next((f"HAProxy in {h.name}: {h.sticky_problem}" for h in self._haproxies
                     if h.sticky_problem), None)

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        if not self._haproxies:
            self.check()
        for haproxy in self._haproxies:
            self._place(haproxy, backends, self._slots(haproxy))
        failpoint("stage")

    def unstage(self) -> None:
        """Staged slots stay in maintenance, where nothing reaches them: nothing to undo."""

    def switch(self, backends: Sequence[Backend]) -> str:
        if not self._haproxies:
            self.check()
        deadline = time.monotonic() + self._switch_timeout
        for number, haproxy in enumerate(self._haproxies):
            try:
                chosen, others = self._switch_one(haproxy, backends, deadline)
            except ProxyConfigInvalid as exc:
                if not number:
                    raise  # nothing changed anywhere: a rejected configuration
                # An earlier HAProxy sends to the new servers already: not "unchanged".
                raise SwitchNotConfirmed(f"{exc.message} (after HAProxy in "
                                         f"{self._haproxies[0].name} had switched)") from exc
            self._retiring[haproxy.container.id] = others
            self._serving[haproxy.container.id] = chosen
        return f"backend {self._backend} -> {weighed(backends)}"

    def _switch_one(self, haproxy: _HAProxy, backends: Sequence[Backend],
                    deadline: float) -> tuple[set[str], set[str]]:
        """The new servers ready, the others draining, confirmed by address and state; again
        if HAProxy lost the new addresses meanwhile (restarted from an older state file)."""
        while True:
            slots = self._place(haproxy, backends, self._slots(haproxy))
            chosen = {s.name for s in slots if any(s.holds(b.address, b.port) for b in backends)}
            others = {s.name for s in slots if s.name not in chosen and not s.in_maintenance}
            failpoint("switch")
            try:  # the new servers first: both sides are ready, so no request meets a gap
                after = self._set_and_save(
                    haproxy, *self._weights(slots, backends),
                    *(f"set server {self._backend}/{n} state ready" for n in sorted(chosen)),
                    *(f"set server {self._backend}/{n} state drain" for n in sorted(others)))
            except ProxyConfigInvalid as exc:  # part of the line may have run: not "unchanged"
                raise SwitchNotConfirmed(exc.message) from exc
            if self._confirm(haproxy, chosen, backends, after, deadline):
                return chosen, others
            if time.monotonic() > deadline:
                raise SwitchNotConfirmed(
                    f"HAProxy in {haproxy.name} lost the new servers' addresses again within "
                    f"{self._switch_timeout:g} s (is it restarting?).",
                    hint=f"See `docker logs {haproxy.name}`.")

    def drain(self, timeout: float) -> Drained:
        if not self._retiring:  # no switch in this process (recovery): every draining slot
            self._retiring = {
                h.container.id: {s.name for s in self._slots(h) if s.draining}
                for h in self._haproxies
            }
        started = time.monotonic()
        waited = sum(len(names) for names in self._retiring.values())
        while True:
            busy = sum(self._sessions(h) for h in self._haproxies)
            seconds = time.monotonic() - started
            if not busy or seconds >= timeout:
                break
            time.sleep(_DRAIN_POLL_SECONDS)
        for haproxy in self._haproxies:
            names = self._retiring.get(haproxy.container.id, set())
            if names:
                self._set_and_save(haproxy, *(f"set server {self._backend}/{n} state maint"
                                              for n in sorted(names)))
        if busy:
            return Drained(seconds, False,
                           f"{busy} session(s) still on old servers after {timeout:g} s")
        return Drained(seconds, True, f"{waited} old server(s) drained")

    def answers(self) -> tuple[int, int]:
        """5xx answers and all answers so far of the servers the last switch made ready (the
        watch window compares two readings)."""
        errors = total = 0
        for haproxy in self._haproxies:
            names = self._serving.get(haproxy.container.id, set())
            if names:
                counts = parse_answers(self._api(haproxy, "show stat"), self._backend)
                errors += sum(counts.get(name, (0, 0))[0] for name in names)
                total += sum(counts.get(name, (0, 0))[1] for name in names)
        return errors, total

    def answers_of(self, backends: Sequence[Backend]) -> tuple[int, int] | None:
        """5xx answers and all answers so far of the slots that hold `backends`, in every
        HAProxy (None when no slot holds one)."""
        if not self._haproxies:
            self.check()
        errors = total = 0
        found = False
        for haproxy in self._haproxies:
            names = {s.name for s in self._slots(haproxy)
                     if any(s.holds(b.address, b.port) for b in backends)}
            found = found or bool(names)
            counts = parse_answers(self._api(haproxy, "show stat"), self._backend)
            errors += sum(counts.get(name, (0, 0))[0] for name in names)
            total += sum(counts.get(name, (0, 0))[1] for name in names)
        return (errors, total) if found else None

    def _inspect(self, container: Container) -> _HAProxy:
        processes = self._engine.processes(container.id)
        haproxy = next((p for p in processes if "haproxy" in p.args.split(" ")[0]), None)
        if haproxy is None:
            raise ProxyNotReady(f"no haproxy process runs in {container.name}.")
        words = haproxy.args.split()
        configs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-f"]
        text = "\n".join(
            (self._engine.read_file(container.id, path) or b"").decode(errors="replace")
            for path in configs or ["/usr/local/etc/haproxy/haproxy.cfg"]
        )
        try:
            setup = parse_setup(text)
        except ValueError as exc:
            raise ProxyNotReady(f"HAProxy in {container.name}: {exc}.") from None
        if setup.socket is None:
            raise ProxyNotReady(
                f"HAProxy in {container.name} has no runtime API socket.",
                hint="Add `stats socket ipv4@127.0.0.1:9999 level admin` to its global section.",
            )
        if self._backend not in setup.backends:
            raise ProxyNotReady(
                f"HAProxy in {container.name} has no backend {self._backend}.",
                hint=f"Add `backend {self._backend}` with "
                f"`server-template {self._backend} 4 localhost:1 disabled`.",
            )
        lines = setup.backends[self._backend]
        if not lines:
            raise ProxyNotReady(
                f"backend {self._backend} in {container.name} has no server slots.",
                hint=f"Add `server-template {self._backend} 4 localhost:1 disabled` to it.",
            )
        if any(placeholder_is_an_address(line) for line in lines):
            raise ProxyNotReady(
                f"backend {self._backend} in {container.name} gives its servers an IP "
                "address, so HAProxy would forget the ones docker-swap sets when it restarts.",
                hint=f"Use a host name as placeholder: "
                f"`server-template {self._backend} 4 localhost:1 disabled`.",
            )
        if not setup.state_file or not setup.loads_state:
            raise ProxyNotReady(
                f"HAProxy in {container.name} keeps no server state across restarts.",
                hint="Add `server-state-file /var/lib/haproxy/docker-swap/servers` to global, "
                "`load-server-state-from-file global` to defaults, and a volume at "
                "/var/lib/haproxy/docker-swap.",
            )
        if not any(covers(m, setup.state_file) for m in container.mounts):
            raise ProxyNotReady(
                f"HAProxy's server-state-file {setup.state_file} in {container.name} is not "
                "on a volume, so the servers would be lost when the proxy is recreated.",
                hint="Mount a volume on its folder, e.g. `- docker-swap:/var/lib/haproxy/"
                "docker-swap`.",
            )
        found = _HAProxy(container, setup.socket, setup.state_file,
                         setup.sticky_problem(self._backend))
        self._slots(found)  # proves the runtime API answers and knows the backend
        return found

    def _slots(self, haproxy: _HAProxy) -> list[Slot]:
        return self._own_slots(self._api(haproxy, f"show servers state {self._backend}"))

    def _own_slots(self, servers_state: str) -> list[Slot]:
        """This backend's slots in a `show servers state` answer."""
        return [s for s in parse_servers_state(servers_state) if s.backend == self._backend]

    def _place(self, haproxy: _HAProxy, backends: Sequence[Backend],
               slots: list[Slot]) -> list[Slot]:
        """Give each backend a slot (its own if it has one, else a free one, in maintenance),
        in a call of its own: a refused address leaves every server as it was."""
        check_backends(backends)  # an address goes into a `;`-joined runtime command
        missing = [b for b in backends if not any(s.holds(b.address, b.port) for s in slots)]
        taken = {(b.address, b.port) for b in backends}
        free = [s for s in slots if s.in_maintenance and (s.address, s.port) not in taken]
        if len(free) < len(missing):
            raise ProxyConfigInvalid(
                f"backend {self._backend} in {haproxy.name} has {len(free)} free server "
                f"slot(s); {len(missing)} are needed.",
                hint=f"Raise the count of `server-template {self._backend} N ...` to at least "
                "twice the number of replicas.",
            )
        if not missing:
            return slots
        answer = self._api(haproxy, *(  # read back in the same call: one `docker exec` less
            f"set server {self._backend}/{slot.name} addr {b.address} port {b.port}"
            for slot, b in zip(free, missing, strict=False)
        ), f"show servers state {self._backend}")
        return self._own_slots(servers_state_part(answer))

    def _weights(self, slots: Sequence[Slot], backends: Sequence[Backend]) -> list[str]:
        """`set server ... weight` for each slot of `backends` that does not weigh as its
        backend does (a canary's share; back to 1 after it)."""
        return [f"set server {self._backend}/{s.name} weight {b.weight}"
                for s in slots for b in backends if s.holds(b.address, b.port)
                and s.weight != b.weight]

    def _confirm(self, haproxy: _HAProxy, chosen: set[str], backends: Sequence[Backend],
                 after: list[Slot], deadline: float) -> bool:
        """True once HAProxy reports exactly `chosen` serving, each at its backend's address
        (first as `after` says); False if a chosen slot lost that address."""
        while True:
            slots = {s.name: s for s in after}
            if not all(n in slots and any(slots[n].holds(b.address, b.port) for b in backends)
                       for n in chosen):
                return False
            if any(s.holds(b.address, b.port) and s.weight != b.weight
                   for s in after for b in backends if s.name in chosen):
                return False  # the weights were lost (a restart from an older state file)
            if all(slots[n].serving for n in chosen) and not any(
                s.serving for n, s in slots.items() if n not in chosen
            ):
                return True
            if time.monotonic() > deadline:
                raise SwitchNotConfirmed(
                    f"HAProxy in {haproxy.name} did not report the new servers up within "
                    f"{self._switch_timeout:g} s.",
                    hint="If the backend has health checks, they must pass: see "
                    f"`show servers state {self._backend}`.",
                )
            time.sleep(_POLL_SECONDS)
            after = self._slots(haproxy)

    def _sessions(self, haproxy: _HAProxy) -> int:
        names = self._retiring.get(haproxy.container.id, set())
        if not names:
            return 0
        sessions = parse_sessions(self._api(haproxy, "show stat"), self._backend)
        return sum(sessions.get(name, 0) for name in names)

    def _set_and_save(self, haproxy: _HAProxy, *commands: str) -> list[Slot]:
        """Run `set server` commands and, in the same call, read every server's state back:
        saved to the state file (a restarted HAProxy comes back as it is now), and this
        backend's slots returned."""
        state = servers_state_part(self._api(haproxy, *commands, "show servers state"))
        directory, _, name = haproxy.state_file.rpartition("/")
        self._engine.write_files(haproxy.container.id, directory or "/", {name: state.encode()})
        return self._own_slots(state)

    def _api(self, haproxy: _HAProxy, *commands: str) -> str:
        line = command_line(commands)
        socket = haproxy.socket
        if socket.path:
            argv = ["sh", "-c", _UNIX_CLIENT, "haproxy-api", socket.path, line]
        else:
            argv = ["bash", "-c", _TCP_CLIENT, "haproxy-api", socket.host, str(socket.port), line]
        result = self._engine.exec(haproxy.container.id, argv, timeout=self._switch_timeout)
        if result.exit_code != 0:
            tool = "socat" if socket.path else "bash"
            raise ProxyNotReady(
                f"the runtime API of HAProxy in {haproxy.name} at {socket.describe()} does not "
                f"answer: {result.output.strip() or f'exit code {result.exit_code}'}",
                hint=f"docker-swap reaches it with {tool} inside the container.",
            )
        error = api_error(result.stdout)
        if error:
            raise ProxyConfigInvalid(f"HAProxy in {haproxy.name} refused `{line}`: {error}")
        return result.stdout
