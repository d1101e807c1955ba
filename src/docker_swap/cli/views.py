"""How `status` and `history` look: lines for people, one JSON object for programs.

Pure formatting (strings in, strings out); the CLI prints them.

`history --json`: {"project", "service", "current": N | null, "releases": [RECORD, ...],
"notes": [...]}, newest first; RECORD holds the keys of a release record (releases.py).

`status --json`: {"project", "agrees": bool, "services": [{"service", "release": RECORD |
null, "containers": [{"name", "id", "status", "health", "image_id", "config_hash",
"addresses"}], "proxy", "serving": [{"source", "backends", "containers", "strays",
"weights"}], "problems": [...], "interrupted": JOURNAL ENTRY | null, "notes": [...],
"compose_would_recreate": [container names], "canary": null | {"release", "share", "since",
"age_seconds", "containers", "old", "weighed", "answers", "error_rates": {"canary", "old"}}}]}.
`serving[].containers` names the containers each proxy sends to (`weights`: theirs, when they
differ: a canary); `problems` is empty when the proxy and the containers agree.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from docker_swap.models import Container
from docker_swap.releases.record import (
    ABORT,
    CANARY,
    FOUND,
    NEEDS_ATTENTION,
    PROMOTE,
    ROLLBACK,
    ROLLED_BACK,
    UP,
    Release,
    record_data,
)
from docker_swap.targets.compose.canary_status import CanaryStatus
from docker_swap.targets.compose.status import History, ServiceStatus, StatusReport


def history_lines(history: History) -> list[str]:
    notes = [f"note: {note}" for note in history.notes]
    if not history.releases:
        return [f"{history.service}: no release recorded yet (the first deploy records one)",
                *notes]
    return [release_line(r, current=r.number == history.current) for r in history.releases
            ] + notes


def release_line(release: Release, *, current: bool = False) -> str:
    """One release on one line: number, when, what, image, who, how long, outcome."""
    mark = "*" if current else " "
    image = release.image_id.removeprefix("sha256:")[:12] or "-"
    tags = ",".join(release.image_tags) or "-"
    took = f"{release.seconds:.1f}s" if release.seconds else "-"
    return (f"{mark}{release.number:>4}  {release.at or '-':<25}  {describe(release):<18}  "
            f"{image}  {tags}  {release.by or '-'}  {took}  {outcome(release)}")


def describe(release: Release) -> str:
    if release.kind == ROLLBACK:
        return f"rollback to {release.rollback_to}"
    if release.kind == FOUND:
        return "found running"
    if release.outcome == CANARY or release.share:
        return f"{'up' if release.kind == UP else 'deploy'} canary {release.share}"
    return {UP: "up", PROMOTE: "promote", ABORT: "abort"}.get(release.kind, "deploy")


def outcome(release: Release) -> str:
    if release.outcome == ROLLED_BACK:
        return f"rolled back: {release.reason}"
    if release.outcome == NEEDS_ATTENTION:
        return f"needs attention: {release.reason}"
    if release.outcome == CANARY:
        return "canary: serves its share beside the release before"
    return "deployed"


def history_json(history: History) -> str:
    return json.dumps({
        "project": history.project, "service": history.service, "current": history.current,
        "releases": [record_data(r) for r in history.releases], "notes": list(history.notes),
    })


def status_lines(report: StatusReport) -> list[str]:
    lines = []
    for service in report.services:
        lines += _service_lines(service)
    return lines or [f"{report.project}: no service has x-swap"]


def _service_lines(service: ServiceStatus) -> list[str]:
    release = service.release
    head = (f"release {release.number} ({describe(release)}, {release.at}, {release.by or '-'})"
            if release else "no recorded release runs")
    lines = [f"{service.service}: {head}"]
    for container in service.containers:
        lines.append(f"  container  {container.name}  {_state(container)}  "
                     f"{container.image_id.removeprefix('sha256:')[:12]}")
    for view in service.serving:
        weighed = [f"{name} (weight {weight})" for name, weight in
                   zip(view.containers, view.weights, strict=False)] if view.weights else \
            list(view.containers)
        lines.append(f"  proxy      {view.source} -> "
                     f"{', '.join(weighed + list(view.strays)) or 'nothing'}")
    if service.canary is not None:
        lines.append(f"  canary     {_canary_line(service.canary)}")
    if service.compose_would_recreate:
        lines.append(f"  pending    `docker compose up -d` would recreate "
                     f"{', '.join(service.compose_would_recreate)} (the definition or the image "
                     f"changed): `docker-swap deploy {service.service}` swaps with no downtime")
    lines += [f"  note       {note}" for note in service.notes]
    lines += [f"  problem    {problem}" for problem in service.problems]
    if not service.problems:
        lines.append("  ok         the proxy sends to the running containers")
    return lines


def _canary_line(canary: CanaryStatus) -> str:
    weighed = f"{canary.weighed:.1%}" if canary.weighed is not None else "an unknown share"
    rates = canary.error_rates()
    errors = "" if canary.answers is None else (
        f"; 5xx since it started: canary {_rate(rates[0], canary.answers[:2])}, old "
        f"{_rate(rates[1], canary.answers[2:])}")
    return (f"release {canary.release}: {', '.join(canary.containers)} get {weighed} of new "
            f"requests (asked {canary.share}) beside {', '.join(canary.old)}, for "
            f"{_age(canary.age_seconds)}{errors}; `promote` or `abort` ends it")


def _rate(rate: float | None, counts: tuple[int, ...]) -> str:
    return f"{rate:.2%} of {counts[1]}" if rate is not None else "no answer yet"


def _age(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s"


def _state(container: Container) -> str:
    return f"{container.status}, {container.health}" if container.health else container.status


def status_json(report: StatusReport) -> str:
    return json.dumps({
        "project": report.project, "agrees": report.agrees,
        "services": [_service_data(s) for s in report.services],
    })


def _service_data(service: ServiceStatus) -> dict[str, Any]:
    return {
        "service": service.service,
        "release": record_data(service.release) if service.release else None,
        "containers": [{
            "name": c.name, "id": c.id, "status": c.status, "health": c.health,
            "image_id": c.image_id, "config_hash": c.config_hash,
            "addresses": dict(c.networks),
        } for c in service.containers],
        "proxy": service.proxy,
        "serving": [asdict(view) for view in service.serving],
        "problems": list(service.problems),
        "interrupted": asdict(service.interrupted) if service.interrupted else None,
        "notes": list(service.notes),
        "compose_would_recreate": list(service.compose_would_recreate),
        "canary": _canary_data(service.canary),
    }


def _canary_data(canary: CanaryStatus | None) -> dict[str, Any] | None:
    if canary is None:
        return None
    rates = canary.error_rates()
    return {**asdict(canary), "error_rates": None if canary.answers is None else
            {"canary": rates[0], "old": rates[1]}}
