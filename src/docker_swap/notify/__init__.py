"""Notifications: one JSON event POSTed to each `--notify URL` (webhooks: a chat's incoming
hook, ntfy, an alerting relay). A URL that does not answer costs at most its timeout and is
said in one line; it never stops what is being done. URLs are never shown with their secrets
(userinfo, query, and the path after its first part: webhook tokens live there)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from docker_swap.errors import InvalidSettings

TIMEOUT = 5.0


def check_urls(urls: Sequence[str]) -> tuple[str, ...]:
    """The URLs, once each is an http(s) URL with a host; InvalidSettings otherwise."""
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidSettings(f"--notify {shown(url)} is not an http:// or https:// URL.")
    return tuple(urls)


def shown(url: str) -> str:
    """`url` as a message may show it: scheme, host, port and the path's first part."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    first = parts.path.strip("/").split("/", 1)[0]
    more = "/..." if parts.path.strip("/").count("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}/{first}{more}"


class Notifier:
    """POSTs events to every URL; `post` returns one line per URL that failed."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = check_urls(urls)

    def post(self, event: Mapping[str, object]) -> list[str]:
        body = json.dumps(event, allow_nan=False).encode()
        problems = []
        for url in self.urls:
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "docker-swap"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                    answer.read(1024)
            except urllib.error.HTTPError as exc:
                problems.append(f"{shown(url)} answered {exc.code} to a notification.")
            except (OSError, ValueError) as exc:
                problems.append(f"{shown(url)} did not take a notification "
                                f"({type(exc).__name__}).")
        return problems
