"""`docker-swap agent`: keeps one proxy in line with the backends a registry publishes.

It registers itself, catches up with the newest generation, then follows the registry: each
published number (pub/sub) and, in case a message was missed, a full look every `resync`
seconds. Each generation is applied with the proxy's own driver (nginx: write, `nginx -t`,
reload, confirm; HAProxy: runtime API), acknowledged, drained, and acknowledged again. A
heartbeat (a report that expires) tells deploys that the agent is alive. Stopping the agent
does not unregister it, so deploys wait for it and roll back without it: `--leave` does.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .compose import Compose
from .errors import InvalidSettings, ServiceNotFound, SwapError
from .models import Generation
from .options import ComposeOptions
from .preflight import connect_proxy, open_service, redis_url
from .proxy import ProxyDriver
from .proxy.registry import same_backends
from .registry import HEARTBEAT_TTL_SECONDS, Registry

DEFAULT_RESYNC_SECONDS = 5.0
_HEARTBEAT_SECONDS = HEARTBEAT_TTL_SECONDS / 4


class Subscription(Protocol):
    def get_message(self, ignore_subscribe_messages: bool = False,
                    timeout: float = 0.0) -> object: ...

    def close(self) -> None: ...


class AgentRegistry(Protocol):
    url: str

    def register(self, name: str, proxy: str) -> None: ...

    def current(self) -> Generation | None: ...

    def report(self, name: str, proxy: str, applied: int, drained: int, failed: int = 0,
               error: str = "") -> None: ...

    def subscribe(self) -> Subscription: ...


@dataclass
class _Status:
    applied: int = 0
    drained: int = 0
    failed: int = 0
    error: str = ""


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
) -> None:
    """Follow the registry until `stop` is set (or, with `leave`, unregister and return)."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    if options.proxy is None or options.proxy.driver == "redis":
        raise InvalidSettings(
            "an agent needs the proxy it keeps in line: pass --proxy nginx:SERVICE, "
            "--proxy haproxy:SERVICE or --proxy caddy:SERVICE."
        )
    registry = Registry.connect(redis_url(options), project.name, service)
    agent_name = name or f"{socket.gethostname()}:{project.name}-{options.proxy.service}"
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


class Agent:
    """Applies each generation to one proxy; `open_driver` finds the proxy (again, after a
    failure: it may have been recreated)."""

    def __init__(self, name: str, registry: AgentRegistry, open_driver: Callable[[], ProxyDriver],
                 proxy: str, drain_timeout: float, say: Callable[[str], None]) -> None:
        self.name = name
        self._registry = registry
        self._open_driver = open_driver
        self._proxy_label = proxy
        self._drain_timeout = drain_timeout
        self._say = say
        self._status = _Status()
        self._lock = threading.Lock()
        self._serving: Generation | None = None
        self._driver: ProxyDriver | None = None

    def run(self, stop: threading.Event, resync: float) -> None:
        self._registry.register(self.name, self._proxy_label)
        self._say(f"agent {self.name} follows {self._registry.url} for {self._proxy_label}")
        pubsub = self._registry.subscribe()  # before catching up: no publication falls between
        self._catch_up()
        heartbeat = threading.Thread(target=self._beat, args=(stop,), daemon=True)
        heartbeat.start()
        self._say(f"ready at generation {self._status.applied}")
        try:
            while not stop.is_set():
                pubsub.get_message(timeout=resync)
                self._catch_up()
        finally:
            pubsub.close()
            stop.set()
            heartbeat.join()

    def _catch_up(self) -> None:
        try:
            newest = self._registry.current()
        except SwapError as exc:
            self._say(f"registry: {exc.message}")
            return
        if newest is not None and newest.number > self._status.applied:
            self._apply(newest)

    def _apply(self, generation: Generation) -> None:
        started = time.monotonic()
        if self._serving and same_backends(self._serving.backends, generation.backends):
            detail = "already serving these backends"
        else:
            try:
                detail = self._proxy().switch(generation.backends)
            except SwapError as exc:
                self._driver = None  # the proxy may have been recreated: look it up again
                self._update(failed=generation.number, error=exc.message)
                self._say(f"generation {generation.number} failed: {exc.message}")
                return
        self._serving = generation
        self._update(applied=generation.number)
        self._say(f"generation {generation.number} applied in "
                  f"{time.monotonic() - started:.2f}s: {detail}")
        drained = self._proxy().drain(self._drain_timeout)
        self._update(drained=generation.number)
        self._say(f"generation {generation.number} drained in {drained.seconds:.2f}s: "
                  f"{drained.detail}")

    def _proxy(self) -> ProxyDriver:
        if self._driver is None:
            self._driver = self._open_driver()
        return self._driver

    def _update(self, **changes: object) -> None:
        with self._lock:
            for field, value in changes.items():
                setattr(self._status, field, value)
        self._report()

    def _report(self) -> None:
        with self._lock:
            status = _Status(**vars(self._status))
        try:
            self._registry.report(self.name, self._proxy_label, status.applied,
                                  status.drained, status.failed, status.error)
        except SwapError as exc:
            self._say(f"registry: {exc.message}")

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(_HEARTBEAT_SECONDS):
            self._report()
