"""Proxy drivers: one per proxy, behind one small protocol the swap sequence uses.

A driver answers four questions: is the proxy set up for this service (`check`), will it accept
these backends (`stage`, while they warm up, with nothing sent to them), send every new request
to these backends and prove it is live (`switch`), and wait until nothing the proxy sent to the
previous backends is still in flight (`drain`). Rolling back is a `switch` to the old backends,
so there is one way to change what a proxy serves, and it is always confirmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from docker_swap.errors import ProxyNotReady
from docker_swap.models import Backend, Container
from docker_swap.options import ProxyRef
from docker_swap.proxy.base import Drained, ProxyDriver, Serving
from docker_swap.proxy.caddy import CaddyDriver
from docker_swap.proxy.haproxy import HAProxyDriver
from docker_swap.proxy.nginx import NginxDriver, seed

if TYPE_CHECKING:
    from docker_swap.engine import Engine

__all__ = ["Drained", "ProxyDriver", "Serving", "open_proxy", "seed_proxy"]


def open_proxy(
    ref: ProxyRef,
    engine: Engine,
    containers: Sequence[Container],
    upstream: str,
    switch_timeout: float,
) -> ProxyDriver:
    """The driver for `ref`, working on the proxy's running containers."""
    if ref.driver == "nginx":
        return NginxDriver(engine, containers, upstream, switch_timeout)
    if ref.driver == "haproxy":
        return HAProxyDriver(engine, containers, upstream, switch_timeout)
    if ref.driver == "caddy":
        return CaddyDriver(engine, containers, upstream, switch_timeout)
    raise ProxyNotReady(f"docker-swap has no {ref.driver} driver.")


def seed_proxy(
    ref: ProxyRef,
    engine: Engine,
    stopped: Sequence[Container],
    upstream: str,
    backends: Sequence[Backend],
    timeout: float,
) -> None:
    """Start proxy containers that are not running, giving them the upstream first."""
    if ref.driver == "nginx":
        seed(engine, stopped, upstream, backends, timeout)
        return
    raise ProxyNotReady(
        f"the {ref.driver} proxy ({', '.join(c.name for c in stopped)}) does not run.",
        hint=f"Start it with `docker compose up -d {stopped[0].service}`, then sync again.",
    )
