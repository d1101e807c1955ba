"""A switch through Caddy's admin API, for the side-by-side benchmark: what Caddy users script.

    docker compose up -d --no-deps --scale app=2 --no-recreate app
    until docker exec NEW ./healthcheck; do sleep 0.1; done
    PATCH /config/apps/http/servers/srv0/routes/0/handle/0/upstreams  [{"dial": "NEW_IP:8000"}]
    wait until /reverse_proxy/upstreams shows no request in flight but to NEW_IP:8000
    docker stop OLD && docker rm OLD

The same sequence as docker-swap's (ready first, switch, drain, then stop), with one difference:
every admin API change is a configuration reload, which closes idle keep-alive client
connections. Caddy starts with `reverse_proxy app:8000`, pinned to the container's address
before the load starts (`pin`).
"""

from __future__ import annotations

import json
import subprocess
import time

from testbed.stack import Stack

CADDYFILE_ADMIN = "http:// {\n\treverse_proxy app:8000\n}\n"
_UPSTREAMS = "/config/apps/http/servers/srv0/routes/0/handle/0/upstreams"
_REQUEST = ('exec 3<>/dev/tcp/127.0.0.1/2019 && printf "%s %s HTTP/1.0\\r\\nHost: localhost:2019'
            '\\r\\nContent-Type: application/json\\r\\nContent-Length: %s\\r\\n\\r\\n%s" '
            '"$0" "$1" "${#2}" "$2" >&3 && cat <&3')


def admin_swap(stack: Stack, version: str) -> float:
    """One swap switched by the admin API; returns its wall time in seconds."""
    started = time.monotonic()
    before = stack.container_ids("app")
    stack.compose("up", "-d", "--no-deps", "--scale", "app=2", "--no-recreate", "app",
                  env={"APP_VERSION": version})
    (new,) = set(stack.container_ids("app")) - set(before)
    (old,) = before
    while _docker("exec", new, "./healthcheck").returncode != 0:
        time.sleep(0.1)
    proxy = stack.proxy_container()
    _patch(proxy, [new])  # a full configuration reload
    new_address = f"{_address(new)}:8000"  # until it shows nothing in flight elsewhere
    while any(u["address"] != new_address and u["num_requests"]
              for u in json.loads(_get(proxy, "/reverse_proxy/upstreams"))):
        time.sleep(0.05)
    _docker("stop", old)
    _docker("rm", old)
    return time.monotonic() - started


def pin(stack: Stack) -> None:
    """Send to the running container by its address, as each swap will (before the load:
    `app:8000` would reach a new container by Docker's DNS as soon as it starts)."""
    (container,) = stack.container_ids("app")
    _patch(stack.proxy_container(), [container])


def _patch(proxy: str, containers: list[str]) -> None:
    body = json.dumps([{"dial": f"{_address(c)}:8000"} for c in containers])
    answer = _docker("exec", proxy, "bash", "-c", _REQUEST, "PATCH", _UPSTREAMS, body).stdout
    if not answer.startswith("HTTP/1.0 200"):
        raise SystemExit(f"Caddy refused the PATCH: {answer}")


def _get(proxy: str, path: str) -> str:
    answer = _docker("exec", proxy, "bash", "-c", _REQUEST, "GET", path, "").stdout
    return answer.replace("\r\n", "\n").partition("\n\n")[2]


def _address(container: str) -> str:
    return _docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                   container).stdout.strip()


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
