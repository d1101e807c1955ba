"""`--verify URL`: docker-swap's own proof, on the user's stack, that a deploy failed nothing.

From a moment before the start until after the retire, a light, steady load of keep-alive GETs
goes to each URL (VERIFY_CONNECTIONS connections, `rate` requests per second in all). Every
answer of 500 or more, every reset, refused connection and timeout is counted; latency is
compared between the moment before the deploy and the deploy itself. A failure seen here is
reported, never rolled back: that is the watch window's job.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

from docker_swap.options import VERIFY_CONNECTIONS, VerifyOptions
from docker_swap.rollout.loadgen import DemoLoad, Tally

BASELINE_SECONDS = 1.0
"""How long the load runs before the deploy starts, for the latency to compare with."""


@dataclass(frozen=True)
class Latency:
    p50: float
    p99: float


@dataclass(frozen=True)
class VerifyReport:
    """What `--verify` saw, over every URL; `failures` by kind (`status >= 500`, `connection
    reset`, `connection refused`, `timeout`, ...)."""

    urls: tuple[str, ...]
    requests: int
    failed: int
    failures: dict[str, int] = field(default_factory=dict)
    before_ms: Latency = Latency(math.nan, math.nan)
    during_ms: Latency = Latency(math.nan, math.nan)

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.failures.items()))
        return (f"{self.requests:,} requests to {', '.join(self.urls)}, {self.failed} failed"
                + (f" ({kinds})" if kinds else "")
                + f"; latency before p50 {_ms(self.before_ms.p50)}, p99 {_ms(self.before_ms.p99)}"
                f"; during p50 {_ms(self.during_ms.p50)}, p99 {_ms(self.during_ms.p99)}")


class Verifier:
    """Runs the load while the `with` block runs (after a baseline), then reports."""

    def __init__(self, options: VerifyOptions) -> None:
        self._urls = options.urls
        pause = VERIFY_CONNECTIONS / options.rate
        self._loads = [_load(url, pause) for url in options.urls]
        self._started = self._ended = 0.0

    @property
    def active(self) -> bool:
        return bool(self._loads)

    def start(self) -> None:
        """The load begins; returns after the baseline (the deploy starts then)."""
        for load in self._loads:
            load.__enter__()
        if self._loads:
            time.sleep(BASELINE_SECONDS)
        self._started = time.monotonic()

    def stop(self) -> None:
        """The load ends (at once; what it saw stays for `report`)."""
        if not self._ended:
            self._ended = time.monotonic()
            for load in self._loads:
                load.__exit__(None, None, None)

    def __enter__(self) -> Verifier:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def report(self) -> VerifyReport:
        tallies = [load.tally for load in self._loads]
        failures: Counter[str] = Counter()
        for tally in tallies:
            for kind, count in tally.failed.items():
                failures["status >= 500" if kind.startswith("HTTP ") else kind] += count
        return VerifyReport(
            urls=self._urls,
            requests=sum(sum(t.sent.values()) for t in tallies),
            failed=sum(failures.values()),
            failures=dict(failures),
            before_ms=_latency(tallies, 0.0, self._started),
            during_ms=_latency(tallies, self._started, self._ended or time.monotonic()),
        )


def _load(url: str, pause: float) -> DemoLoad:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return DemoLoad(parts.hostname or "", parts.port or (443 if tls else 80),
                    gets=VERIFY_CONNECTIONS, posts=0, pause=pause, path=path, tls=tls,
                    fails_from=500)


def _latency(tallies: list[Tally], start: float, end: float) -> Latency:
    merged = Tally()
    for tally in tallies:
        merged.latencies.extend(tally.latencies)
    p50, p99 = merged.percentiles(start, end)
    return Latency(p50, p99)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} ms"
