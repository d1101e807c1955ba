"""A compose project made for one test: an app behind nginx, written to a folder, run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import images

NGINX_HTTP = """\
worker_processes 2;
error_log stderr notice;
events { worker_connections 4096; }
http {
    access_log off;
    include /etc/nginx/docker-swap/*.conf;
    server {
        listen 80;
        location / {
            proxy_pass http://app;
        }
    }
}
"""

NGINX_FASTCGI = """\
worker_processes 2;
error_log stderr notice;
events { worker_connections 4096; }
http {
    access_log off;
    include /etc/nginx/docker-swap/*.conf;
    server {
        listen 80;
        location / {
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /app/index.php;
            fastcgi_pass app;
        }
    }
}
"""


def haproxy_cfg(backend: str = "app", slots: int = 4) -> str:
    """HAProxy with its runtime API, a state file, and `slots` server slots for `backend`."""
    return f"""\
global
    stats socket ipv4@127.0.0.1:9999 level admin
    server-state-file /var/lib/haproxy/docker-swap/servers
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    load-server-state-from-file global
frontend web
    bind :80
    default_backend {backend}
backend {backend}
    server-template {backend} {slots} localhost:1 disabled
"""


HAPROXY_CFG = haproxy_cfg()


def haproxy_compose(**x_swap: object) -> dict[str, Any]:
    """The same app behind HAProxy 2.6, switched through its runtime API."""
    compose = http_compose()
    compose["services"]["app"]["x-swap"] |= {"proxy": "haproxy:proxy", **x_swap}
    compose["services"]["proxy"] |= {
        "image": images.HAPROXY,
        "volumes": ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
                    "swap:/var/lib/haproxy/docker-swap"],
    }
    return compose


CADDY_SLOTS = " ".join(f"{{file./etc/caddy/docker-swap/app.{n}}}:8000" for n in range(1, 5))
CADDY_SITES = f"""\
(app) {{
\treverse_proxy {CADDY_SLOTS}
}}
http:// {{
\timport app
}}
"""
CADDYFILE = "{\n\tskip_install_trust\n}\n" + CADDY_SITES
CADDYFILE_TLS = """\
{
\tskip_install_trust
\tauto_https disable_redirects
\tdefault_sni localhost
}
""" + CADDY_SITES + """\
https://localhost, https://127.0.0.1 {
\ttls internal
\timport app
}
"""


def caddy_compose(**x_swap: object) -> dict[str, Any]:
    """The same app behind Caddy 2.11, switched by its slot files; HTTPS published too."""
    compose = http_compose()
    compose["services"]["app"]["x-swap"] |= {"proxy": "caddy:proxy", **x_swap}
    compose["services"]["proxy"] |= {
        "image": images.CADDY,
        "ports": ["127.0.0.1::80", "127.0.0.1::443"],
        "volumes": ["./Caddyfile:/etc/caddy/Caddyfile:ro", "swap:/etc/caddy/docker-swap"],
    }
    return compose


def registry_compose(
    redis_port: int | None = None, x_swap: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """The app behind two proxies (nginx 1.30 and HAProxy) that agents keep in line with a
    Redis registry; Redis runs in the project too, on `redis_port` of the host (a fixed port
    survives a restart of Redis; by default the engine picks one)."""
    compose = http_compose()
    compose["services"]["app"]["x-swap"] |= {"proxy": "redis", **(x_swap or {})}
    compose["services"]["haproxy"] = {
        **haproxy_compose()["services"]["proxy"],
        "volumes": ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
                    "haproxy-state:/var/lib/haproxy/docker-swap"],
    }
    compose["services"]["redis"] = {
        "image": images.BOOKWORM,
        "command": ["redis-server", "--save", "", "--appendonly", "no",
                    "--protected-mode", "no", "--requirepass", "${REDIS_PASSWORD:-secret}"],
        "ports": [f"127.0.0.1:{redis_port or ''}:6379"],
    }
    compose["volumes"]["haproxy-state"] = {}
    return compose


def http_compose(nginx: str = "1.30", **x_swap: object) -> dict[str, Any]:
    """The app behind nginx: health command, 1 s before listening, 2 s of warm-up (503s)."""
    return {
        "services": {
            "app": {
                "image": "${APP_IMAGE:-" + images.APP + "}",
                "environment": {
                    "VERSION": "${APP_VERSION:-v1}",
                    "PORT": "${APP_PORT:-8000}",
                    "LISTEN_DELAY": "${LISTEN_DELAY:-1}",
                    "WARMUP": "${WARMUP:-2}",
                    "EXIT_AFTER": "${EXIT_AFTER:-}",
                    "NEVER_READY": "${NEVER_READY:-}",
                    "ERRORS": "${ERRORS:-}",
                },
                "x-swap": {"proxy": "nginx:proxy", "health-cmd": "./healthcheck", **x_swap},
            },
            "proxy": {
                "image": images.NGINX[nginx],
                "depends_on": ["app"],
                "ports": ["127.0.0.1::80"],
                "volumes": ["./nginx.conf:/etc/nginx/nginx.conf:ro", "swap:/etc/nginx/docker-swap"],
            },
        },
        "volumes": {"swap": {}},
    }


def fastcgi_compose(nginx: str = "1.30") -> dict[str, Any]:
    compose = http_compose(nginx)
    compose["services"]["app"] = {
        "image": images.PHP,
        "environment": {"VERSION": "${APP_VERSION:-v1}"},
        "x-swap": {"proxy": "nginx:proxy"},
    }
    return compose


@dataclass
class Stack:
    """One compose project in its own folder; `down()` removes everything it made."""

    folder: Path
    compose_file: dict[str, Any]
    proxy_config: str = NGINX_HTTP
    name: str = field(default_factory=lambda: f"swaptest{uuid.uuid4().hex[:8]}")
    env: dict[str, str] = field(default_factory=dict)

    def write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "compose.yaml").write_text(yaml.safe_dump(self.compose_file))
        name = ("haproxy.cfg" if self.proxy_config.startswith("global") else
                "Caddyfile" if "reverse_proxy" in self.proxy_config else "nginx.conf")
        (self.folder / name).write_text(self.proxy_config)
        if "haproxy" in self.compose_file["services"]:  # the registry stack has both
            (self.folder / "haproxy.cfg").write_text(HAPROXY_CFG)

    def up(self, *services: str) -> None:
        self.write()
        self.compose("up", "-d", *services)

    def compose(
        self, *args: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", "-p", self.name, *args], cwd=self.folder, text=True,
            capture_output=True, check=check, env=self._env(env),
        )

    def swap(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI, as a user would, in the project folder."""
        return subprocess.run(
            [sys.executable, "-m", "docker_swap", "-p", self.name, *args], cwd=self.folder,
            text=True, capture_output=True, env=self._env(env), timeout=timeout, check=False,
        )

    def swap_json(self, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        result = self.swap(*args, "--json", env=env)
        try:
            data: dict[str, Any] = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"no JSON from docker-swap: {result}") from None
        data["exit_code"] = result.returncode
        return data

    def url(self, proxy: str = "proxy", *, https: bool = False) -> str:
        address = self.compose("port", proxy, "443" if https else "80").stdout.strip()
        return f"{'https' if https else 'http'}://{address}"

    def get(self, path: str = "/", proxy: str = "proxy") -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(proxy) + path, timeout=10) as answer:
                return answer.status, answer.read().decode().strip()
        except urllib.error.HTTPError as error:
            return error.code, ""

    def wait_serving(self, text: str, seconds: float = 30, proxy: str = "proxy") -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if self.get(proxy=proxy) == (200, text):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{proxy} did not serve {text!r} within {seconds} s")

    def containers(self, service: str, *, all: bool = True) -> list[dict[str, Any]]:
        argv = ["docker", "ps", "--no-trunc", "--format", "{{json .}}",
                "--filter", f"label=com.docker.compose.project={self.name}",
                "--filter", f"label=com.docker.compose.service={service}"]
        output = subprocess.run([*argv, "-a"] if all else argv, capture_output=True, text=True,
                                check=True).stdout
        return [json.loads(line) for line in output.splitlines()]

    def container_ids(self, service: str) -> list[str]:
        return sorted(c["ID"] for c in self.containers(service))

    def upstream_file(self) -> str:
        """What docker-swap wrote for nginx (empty when nothing was written)."""
        result = docker("exec", self.proxy_container(), "cat", "/etc/nginx/docker-swap/app.conf",
                        check=False)
        return result.stdout

    def redis_url(self) -> str:
        """The registry of a `registry_compose` stack, as the host reaches it."""
        port = self.compose("port", "redis", "6379").stdout.strip().rsplit(":", 1)[1]
        return f"redis://:secret@127.0.0.1:{port}/0"

    def haproxy(self, command: str) -> str:
        """Ask HAProxy's runtime API, as docker-swap does."""
        return docker("exec", self.proxy_container(), "bash", "-c",
                      'exec 3<>/dev/tcp/127.0.0.1/9999 && echo "$0" >&3 && cat <&3',
                      command).stdout

    def upstream_servers(self) -> list[str]:
        """Each server line of the upstream file, as `server NAME:PORT;` (` down;` for one
        warming up): docker-swap writes addresses, and names the container in a comment."""
        servers = []
        for line in self.upstream_file().splitlines():
            server, _, comment = line.strip().partition("#")
            if not server.startswith("server "):
                continue
            words = server.replace(";", " ").split()
            port = words[1].rpartition(":")[2]
            name = comment.replace("warming up:", "").split()[0] if comment.strip() else words[1]
            down = " down" if "down" in words[2:] else ""
            servers.append(f"server {name}:{port}{down};")
        return servers

    def proxy_container(self) -> str:
        return str(self.containers("proxy")[0]["ID"])

    def snapshot(self) -> tuple[list[str], list[str], str]:
        """What a refused or rolled back deploy must leave exactly as it was."""
        return self.container_ids("app"), self.container_ids("proxy"), self.upstream_file()

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "0", check=False)
        remove_releases(self.name)
        for lock in self.markers("lock"):  # docker-swap's lock and journal: compose's not
            docker("rm", "--force", "--volumes", lock, check=False)
        for record in self.markers("journal"):
            docker("volume", "rm", "--force", record, check=False)

    def markers(self, kind: str = "") -> list[str]:
        """Names of docker-swap's lock (a container: kind "lock") and journal records
        (volumes: kind "journal") of this project on the engine."""
        label = f"label=docker-swap.project={self.name}"
        found = []
        if kind in ("", "lock"):
            found += docker("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
        if kind in ("", "journal"):
            found += docker("volume", "ls", "--filter", label, "--format",
                            "{{.Name}}").stdout.split()
        return sorted(found)

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**os.environ, **self.env, **(extra or {})}


def remove_releases(project: str) -> None:
    """The release records and kept-image tags docker-swap left on the engine for `project`."""
    records = docker("images", "-q", "--filter", f"label=docker-swap.release.project={project}")
    kept = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                  f"reference=docker-swap-keep/{project}.*")
    references = sorted(set(records.stdout.split())) + kept.stdout.split()
    if references:
        docker("rmi", "--force", *references, check=False)


def without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def names(containers: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(str(c["Names"]) for c in containers)
