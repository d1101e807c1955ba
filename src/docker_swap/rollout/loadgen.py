"""A small load generator for the demo and `--verify`: keep-alive GETs and POSTs from threads,
every answer and every failure counted. (The tests and benchmarks count with wrk; this needs
nothing but Python, so that the demo and --verify run anywhere docker-swap does.)
"""

from __future__ import annotations

import http.client
import socket
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

_TIMEOUT_SECONDS = 10.0


@dataclass
class Tally:
    """What the clients saw: answers by version, failures by kind, latencies with their time."""

    sent: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(when, milliseconds) of every successful request."""
    failed_at: list[float] = field(default_factory=list)
    """When each failed request ended."""

    def percentiles(self, start: float, end: float) -> tuple[float, float]:
        window = sorted(ms for when, ms in self.latencies if start <= when < end)
        if len(window) < 2:
            return float("nan"), float("nan")
        cuts = statistics.quantiles(window, n=100, method="inclusive")
        return cuts[49], cuts[98]


class DemoLoad:
    """`gets` keep-alive GET clients and `posts` POST clients, each pausing `pause` seconds.

    An answer with a status of `fails_from` or more counts as failed (`HTTP 503`)."""

    def __init__(self, host: str, port: int, gets: int = 8, posts: int = 2,
                 pause: float = 0.01, *, path: str = "/", tls: bool = False,
                 fails_from: int = 300) -> None:
        self.tally = Tally()
        self._host, self._port, self._pause = host, port, pause
        self._path, self._fails_from = path, fails_from
        self._connection = http.client.HTTPSConnection if tls else http.client.HTTPConnection
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, args=(method,), daemon=True)
            for method in ["GET"] * gets + ["POST"] * posts
        ]

    def __enter__(self) -> DemoLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(_TIMEOUT_SECONDS + 1)

    def _client(self, method: str) -> None:
        connection: http.client.HTTPConnection | None = None
        body = b"x" * 512 if method == "POST" else None
        while not self._stop.is_set():
            connection = connection or self._connection(
                self._host, self._port, timeout=_TIMEOUT_SECONDS)
            started = time.monotonic()
            try:
                connection.request(method, self._path, body=body)
                answer = connection.getresponse()
                text = answer.read().decode(errors="replace")
            except (OSError, http.client.HTTPException) as exc:
                self._count(method, failure=failure_kind(exc))
                connection.close()
                connection = None
            else:
                if answer.status < self._fails_from:
                    version = text.split()[0] if text.split() else "?"
                    self._count(method, version=version, latency=time.monotonic() - started)
                else:
                    self._count(method, failure=f"HTTP {answer.status}")
                if answer.will_close:
                    connection.close()
                    connection = None
            self._stop.wait(self._pause)
        if connection:
            connection.close()

    def _count(self, method: str, *, version: str = "", failure: str = "",
               latency: float = 0.0) -> None:
        with self._lock:
            self.tally.sent[method] += 1
            if failure:
                self.tally.failed[failure] += 1
                self.tally.failed_at.append(time.monotonic())
            else:
                self.tally.versions[version] += 1
                self.tally.latencies.append((time.monotonic(), latency * 1000))


def failure_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
        return "connection reset"
    return type(exc).__name__
