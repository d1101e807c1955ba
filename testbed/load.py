"""Load with wrk, the strictest counter of failed requests (it never retries), and its results.

A failed request is a non-2xx/3xx answer or a socket error (connect, read, write, timeout).
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass(frozen=True)
class Client:
    """One kind of traffic: a wrk process with its own connections."""

    name: str
    path: str
    connections: int
    method: str = "GET"
    body: str = ""
    close: bool = False
    """Send `Connection: close`, so every request opens a new connection."""
    pause_ms: int = 0
    """Each connection waits this long after an answer before its next request (wrk's delay)."""


# About 1,000 requests/s of keep-alive GETs, as in the measurements of ../shared/REFERENCE.md:
# each connection pauses between requests, so connections sit idle now and then (as real
# clients' do) and the machine keeps room for what is measured.
KEEPALIVE_GETS = Client("keep-alive GET", "/", 32, pause_ms=30)
SLOW_GETS = Client("slow GET (2 s)", "/slow?seconds=2", 4)
POSTS = Client("POST", "/", 8, method="POST", body="x" * 512, pause_ms=40)
CLOSING_GETS = Client("GET, Connection: close", "/", 4, close=True, pause_ms=40)
MIXED = (KEEPALIVE_GETS, SLOW_GETS, POSTS)


@dataclass(frozen=True)
class Result:
    client: Client
    requests: int
    non_2xx: int
    connect: int
    read: int
    write: int
    timeout: int
    p50_ms: float
    p99_ms: float

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write + self.timeout

    @property
    def failed(self) -> int:
        return self.non_2xx + self.socket_errors

    def describe(self) -> str:
        return (
            f"{self.client.name}: {self.requests} requests, {self.failed} failed "
            f"(non-2xx {self.non_2xx}, connect {self.connect}, read {self.read}, "
            f"write {self.write}, timeout {self.timeout}), p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms"
        )


class Load:
    """wrk processes, one per client kind, for `seconds`; they stop by themselves."""

    def __init__(self, url: str, clients: Sequence[Client], seconds: int) -> None:
        self.url, self.clients, self.seconds = url.rstrip("/"), list(clients), seconds
        self._folder = tempfile.TemporaryDirectory(prefix="docker-swap-load-")
        self._processes: list[subprocess.Popen[str]] = []
        self._results: list[Result] | None = None

    def __enter__(self) -> Load:
        for client in self.clients:
            self._processes.append(subprocess.Popen(
                self._argv(client), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ))
        return self

    def __exit__(self, *_: object) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.communicate()  # reaped, its pipes closed: no ResourceWarning
        self._folder.cleanup()

    def results(self) -> list[Result]:
        """Wait for every wrk to end (at most its duration plus a margin) and parse them."""
        if self._results is None:
            outputs = [p.communicate(timeout=self.seconds + 30)[0] for p in self._processes]
            self._results = [parse(client, out)
                             for client, out in zip(self.clients, outputs, strict=True)]
        return self._results

    def stop(self) -> list[Result]:
        """End every wrk now (SIGINT: it stops and prints its summary) and parse them."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        return self.results()

    def _argv(self, client: Client) -> list[str]:
        script = Path(self._folder.name) / f"{len(self._processes)}.lua"
        lines = [f'wrk.method = "{client.method}"']
        if client.body:
            lines += [f'wrk.body = "{client.body}"', 'wrk.headers["Content-Type"] = "text/plain"']
        if client.close:
            lines.append('wrk.headers["Connection"] = "close"')
        if client.pause_ms:
            lines.append(f"function delay() return {client.pause_ms} end")
        script.write_text("\n".join(lines) + "\n")
        return [
            "wrk", "--threads", "1", "--connections", str(client.connections),
            "--duration", f"{self.seconds}s", "--timeout", "10s", "--latency",
            "--script", str(script), self.url + client.path,
        ]


def parse(client: Client, output: str) -> Result:
    requests = re.search(r"(\d+) requests in", output)
    if requests is None:
        raise RuntimeError(f"wrk for {client.name} printed no summary:\n{output}")
    sockets = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    connect, read, write, timeout = (int(x) for x in sockets.groups()) if sockets else (0,) * 4
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Result(
        client, int(requests[1]), int(non_2xx[1]) if non_2xx else 0,
        connect, read, write, timeout, _percentile(output, "50"), _percentile(output, "99"),
    )


def _percentile(output: str, which: str) -> float:
    match = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return float(match[1]) * _UNITS[match[2]] if match else float("nan")
