"""Reading nginx's own dump of its configuration (`nginx -T`) and writing our upstream files.

Pure functions: no engine, no I/O, so every rule here has a unit test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from docker_swap.models import Backend, check_backends

DEFAULT_DIRECTORY = "/etc/nginx/docker-swap"
"""Where docker-swap writes its files inside the nginx container (a volume, so they persist)."""
KEEPALIVE_FILE = "00-keepalive-min-timeout.conf"
DEFAULT_KEEPALIVE_MIN_TIMEOUT = "2s"
"""Old workers keep serving idle keep-alive clients this long after a reload (nginx >= 1.27.4),
answering them with `Connection: close` instead of resetting them."""
KEEPALIVE_MIN_TIMEOUT_SINCE = (1, 27, 4)

_FILE_HEADER = re.compile(r"^# configuration file (.+):$", re.MULTILINE)
_URL_PASS = re.compile(
    r"\b(proxy_pass|grpc_pass)\s+[a-z]+://([^\s;/:$]+)(?::(\d+))?[^;]*;"
)
_HOST_PASS = re.compile(
    r"\b(fastcgi_pass|uwsgi_pass|scgi_pass)\s+(?:[a-z]+://)?([^\s;/:$]+)(?::(\d+))?\s*;"
)
_VERSION = re.compile(r"nginx/([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})\b")


@dataclass(frozen=True)
class Directive:
    """One line of configuration with comments removed, and where it is."""

    file: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def parse_dump(dump: str) -> dict[str, str]:
    """Split `nginx -T` output into {file path: content}."""
    parts = _FILE_HEADER.split(dump)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def directives(files: Mapping[str, str]) -> Iterator[Directive]:
    for path, content in files.items():
        for number, line in enumerate(content.splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                yield Directive(path, number, text)


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def setup_problem(files: Mapping[str, str], upstream: str, directory: str) -> str | None:
    """The first thing missing for docker-swap to switch `upstream`, as one sentence, or None."""
    own = [d for d in directives(files) if not d.file.startswith(directory + "/")]
    if not any(re.search(rf"\binclude\s+['\"]?{re.escape(directory)}/", d.text) for d in own):
        return (
            f"nginx does not include {directory}: add `include {directory}/*.conf;` "
            "inside its http block."
        )
    for directive in own:
        if re.search(rf"\bupstream\s+{re.escape(upstream)}\s*\{{", directive.text):
            return (
                f"{directive.where} defines upstream {upstream} itself; remove that block, "
                f"docker-swap writes it in {directory}/{upstream}.conf."
            )
    references = list(_references(own, upstream))
    for directive, port in references:
        if port:
            return (
                f"{directive.where} sends to {upstream}:{port}; drop the port so that it uses "
                f"the upstream docker-swap writes: `{_suggestion(directive.text, upstream)}`."
            )
    if not references:
        return (
            f"nothing in nginx's configuration sends to upstream {upstream}: point proxy_pass "
            f"at http://{upstream} (or fastcgi_pass at {upstream})."
        )
    return None


def sets_keepalive_min_timeout(files: Mapping[str, str], directory: str) -> bool:
    return any(
        d.text.startswith("keepalive_min_timeout")
        for d in directives(files)
        if not d.file.startswith(directory + "/")
    )


def render_upstream(
    upstream: str, backends: Sequence[Backend], generation: str,
    standby: Sequence[Backend] = (),
) -> str:
    """The upstream block; `standby` servers are listed (so nginx checks them) but marked down.
    Servers are written as addresses, never as names: nginx resolves every name in the file
    when it loads it, so one container that has exited (its name gone from Docker's DNS) would
    make it refuse the whole file, forward or back. Each line's comment names the container.
    A backend whose name, address or port is not valid is refused (ProxyConfigInvalid)."""
    check_backends([*backends, *standby])
    lines = [
        f"# Written by docker-swap ({generation}). Do not edit: each deploy rewrites this file.",
        f"upstream {upstream} {{",
        *(f"    server {_host(b.address)}:{b.port}{_weight(b)};  # {b.name} {b.short_id}"
          for b in backends),
        *(f"    server {_host(b.address)}:{b.port} down;  # warming up: {b.name} {b.short_id}"
          for b in standby),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _weight(backend: Backend) -> str:
    return f" weight={backend.weight}" if backend.weight != 1 else ""


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def parse_upstream_servers(text: str) -> list[str]:
    """HOST:PORT of each server an upstream file sends to (`down` ones, warming up, excluded)."""
    return [server for server, _ in parse_upstream(text)]


def parse_upstream(text: str) -> list[tuple[str, int]]:
    """(HOST:PORT, weight) of each server an upstream file sends to (not the `down` ones)."""
    servers = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].replace(";", " ").split()
        if len(words) >= 2 and words[0] == "server" and "down" not in words[2:]:
            weights = [w.removeprefix("weight=") for w in words[2:] if w.startswith("weight=")]
            weight = int(weights[0]) if weights and weights[0].isdigit() else 1
            servers.append((words[1], weight))
    return servers


def render_keepalive(timeout: str) -> str:
    return (
        "# Written by docker-swap: after a reload, old workers answer idle keep-alive clients\n"
        "# with `Connection: close` for this long instead of resetting their connections.\n"
        f"keepalive_min_timeout {timeout};\n"
    )


def _references(own: Sequence[Directive], upstream: str) -> Iterator[tuple[Directive, str | None]]:
    for directive in own:
        for pattern in (_URL_PASS, _HOST_PASS):
            for match in pattern.finditer(directive.text):
                if match[2] == upstream:
                    yield directive, match[3]


def _suggestion(text: str, upstream: str) -> str:
    return re.sub(rf"\b{re.escape(upstream)}:\d+", upstream, text)
