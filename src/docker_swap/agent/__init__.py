"""`docker-swap agent`: keeps one proxy in line with the backends a registry publishes.

It reports itself (which registers it), catches up with the newest generation, then follows
the registry: each published number (pub/sub) and, in case a message was missed, a full look
every `resync` seconds. Each generation is applied with the proxy's own driver (nginx: write,
`nginx -t`, reload, confirm; HAProxy: runtime API), acknowledged, drained, and acknowledged
again. A heartbeat (a report that expires) tells deploys that the agent is alive. Stopping the
agent does not unregister it, so deploys wait for it and roll back without it: `--leave` does.

It outlives whatever goes wrong around it: Redis going away (it reconnects with backoff,
resubscribes, reports itself again and looks at the newest generation), a generation that is
malformed or not validly signed (refused: reported, and the proxy keeps what it serves), a
proxy that fails to apply or drain (reported; the proxy is looked up again next time). It
stops only when told to (a signal sets `stop`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from docker_swap.compose import Compose
from docker_swap.errors import (
    InvalidSettings,
    RegistryDataInvalid,
    ServiceNotFound,
    SwapError,
    message_of,
)
from docker_swap.models import AgentStatus, Generation
from docker_swap.options import ComposeOptions
from docker_swap.proxy import Drained, ProxyDriver, open_proxy
from docker_swap.proxy.base import CountsAnswers
from docker_swap.proxy.registry import same_backends
from docker_swap.registry.data import AGENT_NAME, Report
from docker_swap.registry.store import HEARTBEAT_TTL_SECONDS, connect_registry
from docker_swap.safety.failpoints import failpoint
from docker_swap.settings import resolve_settings
from docker_swap.targets.compose.preflight import connect_engine, connect_proxy, open_service

DEFAULT_RESYNC_SECONDS = 5.0
_HEARTBEAT_SECONDS = HEARTBEAT_TTL_SECONDS / 4
_FIRST_RETRY_SECONDS = 0.5
_LAST_RETRY_SECONDS = 10.0
_DRAIN_SLICE_SECONDS = 1.0
"""How often a drain looks for a newer generation to apply."""


class Subscription(Protocol):
    def wait(self, timeout: float) -> None: ...

    def close(self) -> None: ...


class AgentRegistry(Protocol):
    url: str

    @property
    def signed(self) -> bool: ...

    def current_number(self) -> int: ...

    def generation(self, number: int) -> Generation | None: ...

    def report(self, name: str, report: Report) -> None: ...

    def own_report(self, name: str) -> AgentStatus | None: ...

    def subscribe(self) -> Subscription: ...


def run_agent(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
    name: str | None = None,
    resync: float = DEFAULT_RESYNC_SECONDS,
    leave: bool = False,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
    stack: str | None = None,
) -> None:
    """Follow the registry until `stop` is set (or, with `leave`, unregister and return).

    With `stack`, the proxy is a task of Swarm service STACK_PROXY on this engine's own node
    (the agent runs beside it, a task of a global service): no compose file is read."""
    if stack is not None:
        _run_stack_agent(service, stack, flags or {}, name, resync, leave, say, stop)
        return
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    if options.proxy is None or options.proxy.driver == "redis":
        raise InvalidSettings(
            "an agent needs the proxy it keeps in line: pass --proxy nginx:SERVICE, "
            "--proxy haproxy:SERVICE or --proxy caddy:SERVICE."
        )
    agent_name = name or f"{socket.gethostname()}:{project.name}-{options.proxy.service}"
    if not AGENT_NAME.fullmatch(agent_name):
        raise InvalidSettings(
            f"agent name {agent_name!r} is not 1 to 200 letters, digits, '_', '.', ':', '@' "
            "and '-' (starting with a letter or digit).", hint="Pass --name NAME.")
    registry = connect_registry(options, project.name, check=leave)
    if leave:
        registry.forget(agent_name)
        say(f"agent {agent_name} left {registry.url}")
        return

    def open_driver() -> ProxyDriver:
        containers = engine.service_containers(project.name, service)
        sample = next((c for c in containers if c.running), None)
        if sample is None:
            raise ServiceNotFound(f"service {service!r} has no running container to reach.")
        driver, _ = connect_proxy(engine, project, options, sample)
        driver.check()
        return driver

    agent = Agent(agent_name, registry, open_driver, str(options.proxy), options.drain_timeout,
                  say)
    agent.run(stop or threading.Event(), resync)


def _run_stack_agent(service: str, stack: str, flags: Mapping[str, object | None],
                     name: str | None, resync: float, leave: bool, say: Callable[[str], None],
                     stop: threading.Event | None) -> None:
    """The agent of a proxy in a Swarm stack, named HOSTNAME@NODE-ID by default: a deploy
    stops waiting for it while Swarm reports its node down."""
    engine = connect_engine()
    options = resolve_settings(service, {}, flags)
    proxy = options.proxy
    if proxy is None or proxy.driver == "redis":
        raise InvalidSettings("an agent needs the proxy it keeps in line: pass --proxy "
                              "nginx:SERVICE, --proxy haproxy:SERVICE or --proxy caddy:SERVICE.")
    node_id, hostname = engine.swarm_node()
    if not node_id:
        raise InvalidSettings("--stack needs an engine that is a swarm node; this one is not.",
                              hint="Run the agent as a task of the stack (docs/swarm.md).")
    agent_name = _checked_name(name or f"{hostname}@{node_id}")
    registry = connect_registry(options, stack, check=leave)
    if leave:
        registry.forget(agent_name)
        say(f"agent {agent_name} left {registry.url}")
        return

    def open_driver() -> ProxyDriver:
        proxies = [c for c in engine.stack_containers(stack, proxy.service) if c.running]
        if not proxies:
            raise ServiceNotFound(f"no task of {stack}_{proxy.service} runs on node {hostname}.")
        driver = open_proxy(proxy, engine, proxies, options.upstream_name,
                            options.switch_timeout)
        driver.check()
        return driver

    agent = Agent(agent_name, registry, open_driver, f"{proxy} in stack {stack}",
                  options.drain_timeout, say)
    agent.run(stop or threading.Event(), resync)


def _checked_name(name: str) -> str:
    if not AGENT_NAME.fullmatch(name):
        raise InvalidSettings(
            f"agent name {name!r} is not 1 to 200 letters, digits, '_', '.', ':', '@' "
            "and '-' (starting with a letter or digit).", hint="Pass --name NAME.")
    return name


@dataclass
class _Backoff:
    """Seconds to wait before the next attempt to reach Redis: doubling, up to a limit."""

    seconds: float = _FIRST_RETRY_SECONDS

    def next(self) -> float:
        seconds, self.seconds = self.seconds, min(self.seconds * 2, _LAST_RETRY_SECONDS)
        return seconds

    def reset(self) -> None:
        self.seconds = _FIRST_RETRY_SECONDS


class Agent:
    """Applies each generation to one proxy; `open_driver` finds the proxy (again, after a
    failure: it may have been recreated)."""

    def __init__(self, name: str, registry: AgentRegistry, open_driver: Callable[[], ProxyDriver],
                 proxy: str, drain_timeout: float, say: Callable[[str], None]) -> None:
        self.name = name
        self._registry = registry
        self._open_driver = open_driver
        self._drain_timeout = drain_timeout
        self._say = say
        self._status = Report(proxy)
        self._lock = threading.Lock()
        self._serving: Generation | None = None
        self._driver: ProxyDriver | None = None
        self._refused: tuple[int, str] | None = None
        self._ready = False
        self._lost = False
        self._superseded = False
        """A newer generation cut the last drain short: it is applied next, at once."""
        self._floor: int | None = None
        """The generation this agent applied before it (re)started, as its own last report in
        Redis says: nothing older is applied, so a replayed old generation changes nothing."""

    def run(self, stop: threading.Event, resync: float) -> None:
        """Follow the registry until `stop` is set, reconnecting whenever Redis goes away."""
        trust = ("validly signed generations only" if self._registry.signed else
                 "no registry key: whoever can write to Redis controls this proxy")
        self._say(f"agent {self.name} follows {self._registry.url} for {self._status.proxy} "
                  f"({trust})")
        heartbeat = threading.Thread(target=self._beat, args=(stop,), daemon=True)
        heartbeat.start()
        backoff = _Backoff()
        try:
            while not stop.is_set():
                try:
                    self._follow(stop, resync, backoff)
                except Exception as exc:  # Redis is down, restarting, or refuses us
                    self._lost = True
                    delay = backoff.next()
                    self._say(f"registry: {message_of(exc)} Trying again in {delay:g} s.")
                    stop.wait(delay)
        finally:
            stop.set()
            heartbeat.join()

    def _follow(self, stop: threading.Event, resync: float, backoff: _Backoff) -> None:
        subscription = self._registry.subscribe()  # before catching up: no publication between
        try:
            if self._floor is None:  # before the first report replaces the last one
                own = self._registry.own_report(self.name)
                self._floor = own.applied if own is not None else 0
            self._send()  # registers this agent, or again after Redis lost its data
            self._catch_up()
            backoff.reset()
            if not self._ready:
                self._ready = True
                self._say(f"ready at generation {self._status.applied}")
            elif self._lost:
                self._say(f"registry answers again; following it at generation "
                          f"{self._status.applied}")
            self._lost = False
            while not stop.is_set():
                subscription.wait(resync)
                self._catch_up()
        finally:
            subscription.close()

    def _catch_up(self) -> None:
        """Apply the newest generation if it is newer than the one applied, again as long as
        a newer one cut the drain short (the deploy waits for it: no publication to wait
        for first, which may never come if Redis restarted meanwhile); refuse (and say so,
        once) one that is not valid. Redis errors propagate: `run` reconnects."""
        self._superseded = True
        while self._superseded:
            self._superseded = False
            self._catch_up_once()

    def _catch_up_once(self) -> None:
        number = 0
        try:
            number = self._registry.current_number()
            if number <= self._status.applied:
                return  # nothing new (an older number is never gone back to: a replay)
            if number < (self._floor or 0):
                self._refuse(number, f"it is older than generation {self._floor}, which this "
                             "agent applied before it started (a replay is never applied).")
                return
            generation = self._registry.generation(number)
        except RegistryDataInvalid as exc:
            self._refuse(number, exc.message)
            return
        if generation is not None:
            self._apply(generation)

    def _refuse(self, number: int, reason: str) -> None:
        if self._refused == (number, reason):
            return  # said already; look again at the next resync
        self._refused = (number, reason)
        self._update(failed=number or self._status.failed, error=reason)
        self._say(f"refused {f'generation {number}' if number else 'the registry'}: {reason} "
                  f"The proxy keeps generation {self._status.applied}.")

    def _apply(self, generation: Generation) -> None:
        number, started = generation.number, time.monotonic()
        try:
            failpoint("agent-apply")
            if self._serving and same_backends(self._serving.backends, generation.backends):
                detail = "already serving these backends"
            else:
                detail = self._proxy().switch(generation.backends)
        except Exception as exc:  # any proxy error: reported, never fatal
            self._driver = None  # the proxy may have been recreated: look it up again
            reason = message_of(exc)
            self._update(failed=number, error=reason)
            self._say(f"generation {number} failed: {reason}")
            return
        self._serving = generation
        self._update(applied=number, error="", answers=None)
        self._say(f"generation {number} applied in {time.monotonic() - started:.2f}s: {detail}")
        drained = self._drain(number)
        if drained is not None:
            self._update(drained=number)
            self._say(f"generation {number} drained in {drained.seconds:.2f}s: "
                      f"{drained.detail}")

    def _drain(self, number: int) -> Drained | None:
        """The proxy's drain, or None (reported) when the proxy failed during it: deploys then
        wait for this agent until their drain timeout, as for requests still in flight.

        A newer generation ends the wait (None): it is applied at once, and its own drain
        covers what this one waited for. (In a swarm, the tasks of a node that went down are
        taken out this way while requests to them still hang.)"""
        started = time.monotonic()
        try:
            while True:
                left = self._drain_timeout - (time.monotonic() - started)
                drained = self._proxy().drain(max(min(left, _DRAIN_SLICE_SECONDS), 0))
                if drained.complete or left <= _DRAIN_SLICE_SECONDS:
                    return replace(drained, seconds=time.monotonic() - started)
                if self._newer_than(number):
                    self._say(f"generation {number}: a newer one is published; applying it "
                              "before this drain ends")
                    self._superseded = True
                    return None
        except Exception as exc:  # any proxy error: reported, never fatal
            self._driver = None
            reason = f"could not drain generation {number}: {message_of(exc)}"
            self._update(error=reason)
            self._say(reason)
            return None

    def _newer_than(self, number: int) -> bool:
        try:
            return self._registry.current_number() > number
        except Exception:  # Redis away or its data bad: the drain goes on; _follow finds out
            return False

    def _proxy(self) -> ProxyDriver:
        if self._driver is None:
            self._driver = self._open_driver()
        return self._driver

    def _update(self, **changes: object) -> None:
        """Change the status and report it; if Redis is away, the heartbeat reports it later
        and the main loop finds out that Redis is away."""
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]
        with contextlib.suppress(SwapError):
            self._send()

    def _send(self) -> None:
        with self._lock:
            report = replace(self._status, at=round(time.time(), 3))
        self._registry.report(self.name, report)

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(_HEARTBEAT_SECONDS):
            self._count_answers()
            with contextlib.suppress(SwapError):  # Redis is away: the main loop says so
                self._send()

    def _count_answers(self) -> None:
        """Where the proxy counts its backends' answers (HAProxy), report them with the
        heartbeat: a deploy's --max-error-rate reads them."""
        driver = self._driver
        if not isinstance(driver, CountsAnswers) or self._serving is None:
            return
        try:
            counted = driver.answers()
        except Exception:  # the proxy is busy or gone: the next beat counts again
            return
        with self._lock:
            self._status = replace(self._status, answers=counted)
