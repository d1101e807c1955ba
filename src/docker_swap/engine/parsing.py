"""The engine's answers read into docker-swap's models (pure functions, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from docker_swap import labels
from docker_swap.models import Container

_DEFAULT_STOP_GRACE = 10  # the engine's, when compose sets no stop_grace_period


def container_from(attrs: Mapping[str, Any]) -> Container:
    config, state = attrs["Config"], attrs["State"]
    found = config.get("Labels") or {}
    check = config.get("Healthcheck") or {}
    healthcheck = check.get("Test") or []
    networks = attrs.get("NetworkSettings", {}).get("Networks") or {}
    exposed = config.get("ExposedPorts") or {}
    return Container(
        id=attrs["Id"],
        name=attrs["Name"].lstrip("/"),
        project=found.get(labels.COMPOSE_PROJECT, ""),
        service=found.get(labels.COMPOSE_SERVICE, ""),
        number=int(found.get(labels.COMPOSE_NUMBER) or 0),
        status=state.get("Status", ""),
        health=(state.get("Health") or {}).get("Status"),
        image_id=attrs.get("Image", ""),
        networks={name: net.get("IPAddress", "") for name, net in networks.items()},
        exposed_ports=tcp_ports(exposed),
        has_healthcheck=bool(healthcheck) and healthcheck[0] != "NONE",
        healthcheck=healthcheck_argv(healthcheck),
        healthcheck_timeout=(check.get("Timeout") or 30_000_000_000) / 1e9,
        config_files=tuple(f for f in found.get(labels.COMPOSE_CONFIG_FILES, "").split(",")
                           if f),
        working_dir=found.get(labels.COMPOSE_WORKING_DIR, ""),
        pid=int(state.get("Pid") or 0),
        mounts=tuple(mount["Destination"] for mount in attrs.get("Mounts") or []),
        stop_grace=int(config.get("StopTimeout") or _DEFAULT_STOP_GRACE),
        config_hash=found.get(labels.COMPOSE_CONFIG_HASH, ""),
    )


def healthcheck_argv(test: Sequence[str]) -> tuple[str, ...]:
    """A health check's `Test` as the command docker runs for it: `CMD` arguments as they are,
    `CMD-SHELL` through /bin/sh -c (as the engine does); () for none."""
    if not test or not all(isinstance(part, str) for part in test):
        return ()
    if test[0] == "CMD" and len(test) > 1:
        return tuple(test[1:])
    if test[0] == "CMD-SHELL" and len(test) == 2:
        return ("/bin/sh", "-c", test[1])
    return ()


def tcp_ports(exposed: Mapping[str, Any]) -> tuple[int, ...]:
    # The engine writes "8000/tcp" for an image's EXPOSE but keeps compose's `expose: ["9000"]`
    # as given, without a protocol.
    ports = {int(port) for port, _, protocol in (p.partition("/") for p in exposed)
             if protocol in ("", "tcp")}
    return tuple(sorted(ports))


def epoch(text: str) -> float | None:
    """Seconds since the epoch from the engine's RFC 3339 time (nanoseconds cut to micro)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)",
                         text.strip())
    if not match:
        return None
    whole, fraction, zone = match.groups()
    stamp = f"{whole}.{(fraction or '0')[:6]}{'+00:00' if zone == 'Z' else zone}"
    return datetime.fromisoformat(stamp).timestamp()


def text_of(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


def tags_of(tags: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(tag for tag in tags or () if tag != "<none>:<none>")


def split_reference(reference: str) -> tuple[str, str]:
    """repository and tag of `repository[:tag]` (a registry's port is not a tag)."""
    repository, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, "latest"
    return repository, tag


def dockerfile_quoted(value: str) -> str:
    """A LABEL value as the Dockerfile parser reads it back unchanged: quoted, with `\\`, `"`
    and `$` (variable expansion) escaped; callers keep values on one line."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
