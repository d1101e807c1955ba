"""The stacks deployed to the Swarm test bed (testbed/swarm.py), as compose dicts.

`agent_compose`: the app behind one HAProxy per edge node (nodes labelled edge=true), each with a
docker-swap agent beside it that follows the Redis registry. `baseline_compose`: the same app
behind the same HAProxy following the tasks by Docker's DNS, the usual way with Swarm, no
agents: what `docker service update --update-order start-first` is measured with.

This swarm has no IPVS (the host's kernel lacks it): no service VIPs, no ingress routing mesh.
Every service is `endpoint_mode: dnsrr` (its name resolves to its tasks' addresses) and every
port is published `mode: host` (on the node that runs the task). Both stacks put the proxies on
port 8080 of each edge node (http://NODE_IP:8080/) and keep everything on one overlay network.

A stack's files (HAProxy's configuration, a swarm config) ride in the dict's `x-files`;
`testbed.swarm.write_stack` writes them beside the compose file.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from . import images
from .stack import haproxy_cfg
from .swarm import Swarm

COMPOSE_VERSION = "3.8"
REPLICAS = 6
SLOTS = 16
PROXY_PORT = 8080
REDIS_PORT = 6379
REDIS_PASSWORD = "secret"
EDGE_LABEL = ("edge", "true")
"""The node label (key, value) of the nodes that run a proxy (and its agent)."""
EDGE = f"node.labels.{EDGE_LABEL[0]} == {EDGE_LABEL[1]}"
EDGE_NODES = (1, 2)
"""The nodes `start_testbed` labels: the proxies (and agents) run on node-1 and node-2."""
IMAGES = (images.APP, images.HAPROXY, images.BOOKWORM, images.AGENT)
"""What these stacks run (Redis is in the bookworm base): every node gets them."""
NETWORK = "net"
APP_ENV = {"LISTEN_DELAY": "1", "WARMUP": "2"}
"""As in the single-host benchmarks: the app listens 1 s after it starts, then answers 503 for
2 s while it warms up (its healthcheck with it)."""

HAPROXY_DNS_CFG = f"""\
global
    stats socket ipv4@127.0.0.1:9999 level admin
resolvers docker
    nameserver dns 127.0.0.11:53
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold other 10s
    hold refused 10s
    hold nx 10s
    hold timeout 10s
    hold valid 10s
    hold obsolete 10s
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend web
    bind :80
    default_backend app
backend app
    server-template app {SLOTS} tasks.app:8000 check resolvers docker init-addr none
"""
"""HAProxy following the app's tasks by Docker's DNS (tasks.app: one A record per task), as
HAProxy's own guide for Swarm has it: a server slot per address, health-checked."""


def start_testbed(nodes: int = 3) -> Swarm:
    """A swarm ready for these stacks: the test images built (the agent's from this checkout),
    `nodes` nodes started, the images loaded into each, EDGE_NODES labelled edge=true. Whatever
    fails on the way, nothing is left behind."""
    images.build_all()
    images.build_agent_image()
    swarm = Swarm.start(nodes)
    try:
        swarm.load_images(*IMAGES)
        for number in EDGE_NODES:
            swarm.label_node(number, *EDGE_LABEL)
    except BaseException:
        swarm.teardown()
        raise
    return swarm


X_SWAP = {"proxy": "redis", "port": 8000}
"""The app's x-swap block: docker-swap deploys it through the registry's agents."""


def agent_compose(stack: str, *, replicas: int = REPLICAS, version: str = "v1",
                  app_env: Mapping[str, str] | None = None,
                  redis_password: str = REDIS_PASSWORD,
                  x_swap: Mapping[str, object] | None = None,
                  update: Mapping[str, object] | None = None) -> dict[str, Any]:
    """The app behind HAProxy (runtime API, `slots` server slots, state on a volume) on every
    edge node, a docker-swap agent beside each proxy, and the registry's Redis on the manager
    (published on the manager's port 6379). `stack` is the name the stack is deployed as: the
    agent finds the proxy of service STACK_proxy on its own node."""
    redis_url = f"redis://:{redis_password}@redis:{REDIS_PORT}/0"
    compose = _base(replicas, version, app_env, haproxy_cfg(backend="app", slots=SLOTS))
    services = compose["services"]
    services["app"]["x-swap"] = {**X_SWAP, **(x_swap or {})}
    services["app"]["deploy"]["update_config"] |= dict(update or {})
    services["proxy"]["volumes"] = ["haproxy-state:/var/lib/haproxy/docker-swap"]
    services["agent"] = {
        "image": images.AGENT,
        "command": ["agent", "app", "--stack", stack, "--proxy", "haproxy:proxy",
                    "--redis", redis_url],
        "volumes": ["/var/run/docker.sock:/var/run/docker.sock"],
        "networks": [NETWORK],
        "deploy": {"mode": "global", "endpoint_mode": "dnsrr",
                   "placement": {"constraints": [EDGE]},
                   "restart_policy": {"condition": "any", "delay": "2s"}},
    }
    services["redis"] = {
        "image": images.BOOKWORM,
        "command": ["sh", "-c", 'exec redis-server --save "" --appendonly no '
                    '--protected-mode no --requirepass "$$REDIS_PASSWORD"'],
        "environment": {"REDIS_PASSWORD": redis_password},
        "ports": [{"target": REDIS_PORT, "published": REDIS_PORT, "protocol": "tcp",
                   "mode": "host"}],
        "networks": [NETWORK],
        "deploy": {"endpoint_mode": "dnsrr", "replicas": 1,
                   "placement": {"constraints": ["node.role == manager"]}},
    }
    compose["volumes"] = {"haproxy-state": {}}
    return compose


def baseline_compose(*, replicas: int = REPLICAS, version: str = "v1",
                     app_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The same app behind HAProxy on every edge node, following tasks.app by DNS; no agents."""
    return _base(replicas, version, app_env, HAPROXY_DNS_CFG)


def app_service(stack: str) -> str:
    """The swarm's name of the app service of a stack deployed as `stack`."""
    return f"{stack}_app"


def proxy_url(ip: str) -> str:
    """Where the proxy of an edge node answers (its port published on that node)."""
    return f"http://{ip}:{PROXY_PORT}/"


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    """One GET: the status and the body's text (stripped); an HTTP error is its status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, ""


def wait_serving(url: str, text: str, timeout: float = 30) -> None:
    """Until GET `url` answers 200 with `text` (a proxy that follows DNS fills its servers a
    few seconds after the tasks run: resolution, then two health checks each)."""
    deadline, last = time.monotonic() + timeout, "nothing"
    while time.monotonic() < deadline:
        try:
            answer = get(url)
            if answer == (200, text):
                return
            last = repr(answer)
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.25)
    raise AssertionError(f"{url} did not serve {text!r} in {timeout} s (last: {last})")


def _base(replicas: int, version: str, app_env: Mapping[str, str] | None,
          proxy_cfg: str) -> dict[str, Any]:
    # Swarm configs cannot change: a name of their own per content lets a stack be deployed
    # again with another configuration.
    config = f"haproxy-{hashlib.sha256(proxy_cfg.encode()).hexdigest()[:12]}"
    return {
        "version": COMPOSE_VERSION,
        "services": {
            "app": {
                "image": images.APP,
                "environment": {"VERSION": version, **APP_ENV, **(app_env or {})},
                "healthcheck": {"test": ["CMD", "./healthcheck"], "interval": "1s",
                                "timeout": "2s", "retries": 3, "start_period": "10s"},
                "networks": [NETWORK],
                "deploy": {
                    "replicas": replicas,
                    "endpoint_mode": "dnsrr",
                    "update_config": {"parallelism": 2, "order": "start-first"},
                },
            },
            "proxy": {
                "image": images.HAPROXY,
                "configs": [{"source": "haproxy", "target": "/usr/local/etc/haproxy/haproxy.cfg"}],
                "ports": [{"target": 80, "published": PROXY_PORT, "protocol": "tcp",
                           "mode": "host"}],
                "networks": [NETWORK],
                "deploy": {"mode": "global", "endpoint_mode": "dnsrr",
                           "placement": {"constraints": [EDGE]}},
            },
        },
        "networks": {NETWORK: {"driver": "overlay"}},
        "configs": {"haproxy": {"name": config, "file": "./haproxy.cfg"}},
        "x-files": {"haproxy.cfg": proxy_cfg},
    }
