"""Prometheus metrics of `docker-swap autoupdate --metrics ADDRESS` (prometheus-client, an
extra: `pip install 'docker-swap[metrics]'`), on their own registry and HTTP server:

    docker_swap_autoupdate_updates_total{service, outcome}        updates by how they ended
    docker_swap_autoupdate_last_check_timestamp_seconds           when the last check ended
    docker_swap_autoupdate_last_check_success                     1 if it asked every registry
    docker_swap_autoupdate_last_update_duration_seconds{service}  how long its last update took
    docker_swap_autoupdate_verify_failed_requests_total{service}  what --verify saw fail
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from docker_swap.errors import InvalidSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (or :PORT, or PORT: every address); InvalidSettings otherwise."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidSettings(f"--metrics {text!r} is not HOST:PORT (for example 127.0.0.1:9105).")
    return host.strip("[]") or "0.0.0.0", int(port)


class Metrics:
    """The counters, served at `address` once `start()` ran."""

    def __init__(self, address: str) -> None:
        self.host, self.port = parse_address(address)
        try:
            import prometheus_client  # noqa: PLC0415 (an extra)
        except ImportError:
            raise InvalidSettings(
                "--metrics needs prometheus-client, which is not installed.",
                hint="Install it: `pip install 'docker-swap[metrics]'`.") from None
        self._client = prometheus_client
        self.registry: CollectorRegistry = prometheus_client.CollectorRegistry()
        prefix = "docker_swap_autoupdate"
        self.updates = prometheus_client.Counter(
            f"{prefix}_updates", "Updates by service and how they ended.",
            ["service", "outcome"], registry=self.registry)
        self.last_check = prometheus_client.Gauge(
            f"{prefix}_last_check_timestamp_seconds", "When the last check ended.",
            registry=self.registry)
        self.last_success = prometheus_client.Gauge(
            f"{prefix}_last_check_success", "1 if the last check asked every registry.",
            registry=self.registry)
        self.duration = prometheus_client.Gauge(
            f"{prefix}_last_update_duration_seconds", "How long the last update took.",
            ["service"], registry=self.registry)
        self.verify_failed = prometheus_client.Counter(
            f"{prefix}_verify_failed_requests", "Requests --verify saw fail during updates.",
            ["service"], registry=self.registry)

    def start(self) -> None:
        try:
            self._client.start_http_server(self.port, self.host, registry=self.registry)
        except OSError as exc:
            raise InvalidSettings(f"--metrics cannot listen on {self.host}:{self.port}: "
                                  f"{exc.strerror or exc}.") from None

    def updated(self, service: str, outcome: str, seconds: float, verify_failed: int) -> None:
        self.updates.labels(service, outcome).inc()
        self.duration.labels(service).set(seconds)
        if verify_failed:
            self.verify_failed.labels(service).inc(verify_failed)

    def checked(self, success: bool) -> None:
        self.last_check.set(time.time())
        self.last_success.set(1 if success else 0)
