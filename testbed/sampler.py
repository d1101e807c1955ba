"""Which version answers: a client that counts the versions of many GETs, one keep-alive
connection, as a canary's share is measured (wrk counts failures, not what answered)."""

from __future__ import annotations

import collections
import http.client
import threading
from urllib.parse import urlsplit


def versions(url: str, count: int, cookie: str = "") -> collections.Counter[str]:
    """How many of `count` GETs of `url` each version answered (`failed` for a non-200)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                            timeout=10)
    seen: collections.Counter[str] = collections.Counter()
    try:
        for _ in range(count):
            connection.request("GET", parts.path or "/", headers={"Cookie": cookie} if cookie
                               else {})
            answer = connection.getresponse()
            body = answer.read().decode().strip()
            seen[body if answer.status == 200 else "failed"] += 1
    finally:
        connection.close()
    return seen


def cookie_of(url: str, version: str, tries: int = 200) -> str:
    """The `Set-Cookie` a proxy gives with an answer of `version` (its stickiness cookie)."""
    parts = urlsplit(url)
    for _ in range(tries):
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                                timeout=10)
        try:
            connection.request("GET", parts.path or "/")
            answer = connection.getresponse()
            body = answer.read().decode().strip()
            cookie = answer.getheader("Set-Cookie") or ""
        finally:
            connection.close()
        if body == version and cookie:
            return cookie.split(";", 1)[0]
    raise AssertionError(f"no answer of {version} with a cookie in {tries} tries")


class Background:
    """GETs in a thread until stopped (traffic for a proxy to count), their versions counted."""

    def __init__(self, url: str) -> None:
        self.url, self.seen = url, collections.Counter[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen += versions(self.url, 20)
            except OSError:
                self.seen["failed"] += 1
