"""A release record and its format on the engine: the labels of one image per release.

    docker-swap.release.project   the compose project
    docker-swap.release.service   the service
    docker-swap.release.number    the release number (the image's tag too)
    docker-swap.release.record    the record, JSON (`format` 1): number, project, service, kind,
                                  outcome, reason, image_id, image_tags, config_hash, at, by,
                                  rollback_to, phases [{name, seconds}], seconds,
                                  containers [{id, name}], replaced, template (a Swarm
                                  service's task template, JSON; image_id is then its hash),
                                  served (its switch completed; absent in older records),
                                  share (a canary's, as asked), counted (a canary's
                                  answers by side when it started)

Labels are read back as untrusted input (anyone can make an image with these labels): every
field is checked, and a record that does not parse is a ValueError that says why in one
sentence. The JSON is ASCII with no line breaks, so that it is one LABEL line on import.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from docker_swap import labels

DEPLOYED, ROLLED_BACK, NEEDS_ATTENTION = "deployed", "rolled_back", "needs_attention"
CANARY = "canary"
"""Its new containers serve a share of the requests beside the old ones (`--canary`)."""
OUTCOMES = (DEPLOYED, ROLLED_BACK, NEEDS_ATTENTION, CANARY)
DEPLOY, ROLLBACK, FOUND, UP = "deploy", "rollback", "found", "up"
PROMOTE, ABORT = "promote", "abort"
"""What ended a canary: its rollout finished, or its containers removed."""
KINDS = (DEPLOY, ROLLBACK, FOUND, UP, PROMOTE, ABORT)

RECORD_REPOSITORY = "docker-swap-release"
KEEP_REPOSITORY = "docker-swap-keep"
LABEL = labels.RELEASE
_FORMAT = 1
_MAX_TEMPLATE = 100_000


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float


@dataclass(frozen=True)
class ContainerRef:
    id: str
    name: str


@dataclass(frozen=True)
class Release:
    """One deploy (or rollback) of one service, as its record says."""

    number: int
    project: str
    service: str
    outcome: str
    kind: str = DEPLOY
    reason: str = ""
    """Why it rolled back or needs attention (empty when it deployed)."""
    image_id: str = ""
    image_tags: tuple[str, ...] = ()
    config_hash: str = ""
    at: str = ""
    by: str = ""
    rollback_to: int | None = None
    phases: tuple[Phase, ...] = ()
    seconds: float = 0.0
    containers: tuple[ContainerRef, ...] = ()
    replaced: tuple[str, ...] = ()
    template: str = ""
    """A Swarm stack service's task template as JSON (image_id is then its hash)."""
    served: bool = False
    """Its switch completed: its version served, even if what came after needed attention."""
    share: str = ""
    """A canary's share as asked (`10%`, `2`); empty for any other release."""
    counted: tuple[int, ...] = ()
    """A canary's: 5xx and all answers of its backends, then of the old ones, when it started,
    where the proxy counts answers per backend (HAProxy); `status` shows what came since."""

    @property
    def deployed(self) -> bool:
        """Its version served and is one to keep and roll back to: it deployed, or it needed
        attention only after its switch."""
        served = self.outcome == DEPLOYED or (self.outcome == NEEDS_ATTENTION and self.served)
        return served and bool(self.image_id)


def record_labels(release: Release) -> dict[str, str]:
    return {
        f"{LABEL}.project": release.project,
        f"{LABEL}.service": release.service,
        f"{LABEL}.number": str(release.number),
        f"{LABEL}.record": json.dumps(record_data(release), ensure_ascii=True,
                                      separators=(",", ":")),
    }


def record_data(release: Release) -> dict[str, Any]:
    return {"format": _FORMAT, **asdict(release)}


def parse_record(labels: Mapping[str, str]) -> Release:
    """The release an image's labels hold; ValueError (one sentence) when they hold none."""
    text = labels.get(f"{LABEL}.record")
    if not isinstance(text, str):
        raise ValueError("it has no record label")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError("its record is not JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("its record is not a JSON object")
    release = _from_data(_Fields(data))
    if labels.get(f"{LABEL}.number") != str(release.number):
        raise ValueError("its number label and its record disagree")
    return release


class _Fields:
    """Typed access to an untrusted JSON object; a wrong type is a ValueError naming the key."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.data.get(key, default)
        if not isinstance(value, kind) or isinstance(value, bool) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"its record has a bad {key!r}")
        return value

    def seconds(self, key: str, default: float | None = None) -> float:
        return float(self.get(key, (int, float), default))

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"its record has a bad {key!r}")
        return tuple(values)

    def objects(self, key: str) -> list[_Fields]:
        values = self.get(key, list, [])
        if not all(isinstance(v, dict) for v in values):
            raise ValueError(f"its record has a bad {key!r}")
        return [_Fields(v) for v in values]


def _from_data(fields: _Fields) -> Release:
    number = fields.get("number", int)
    outcome, kind = fields.get("outcome", str), fields.get("kind", str, DEPLOY)
    rollback_to = None if fields.data.get("rollback_to") is None else fields.get(
        "rollback_to", int)
    if number < 1 or outcome not in OUTCOMES or kind not in KINDS:
        raise ValueError("its record has a bad number, outcome or kind")
    return Release(
        number=number, project=fields.get("project", str), service=fields.get("service", str),
        outcome=outcome, kind=kind, reason=fields.get("reason", str, ""),
        image_id=fields.get("image_id", str, ""), image_tags=fields.strings("image_tags"),
        config_hash=fields.get("config_hash", str, ""), at=fields.get("at", str, ""),
        by=fields.get("by", str, ""), rollback_to=rollback_to,
        phases=tuple(Phase(p.get("name", str), p.seconds("seconds"))
                     for p in fields.objects("phases")),
        seconds=fields.seconds("seconds", 0.0),
        containers=tuple(ContainerRef(c.get("id", str), c.get("name", str))
                         for c in fields.objects("containers")),
        replaced=fields.strings("replaced"), template=_template(fields),
        served=_flag(fields, "served"), share=_share(fields), counted=_counted(fields),
    )


def _counted(fields: _Fields) -> tuple[int, ...]:
    values = fields.get("counted", list, [])
    if len(values) not in (0, 4) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in values):
        raise ValueError("its record has a bad 'counted'")
    return tuple(values)


def _share(fields: _Fields) -> str:
    text = fields.get("share", str, "")
    if text and not re.fullmatch(r"[1-9][0-9]{0,2}|[0-9]{1,2}(?:\.[0-9]{1,2})?%", text):
        raise ValueError("its record has a bad 'share'")
    return str(text)


def _flag(fields: _Fields, key: str) -> bool:
    value = fields.data.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"its record has a bad {key!r}")
    return value


def _template(fields: _Fields) -> str:
    text = fields.get("template", str, "")
    if len(text) > _MAX_TEMPLATE:
        raise ValueError("its record has a template longer than 100,000 characters")
    if text:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError("its record has a template that is not JSON") from exc
        spec = value.get("ContainerSpec") if isinstance(value, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("Image"), str):
            raise ValueError("its record has a template without an image")
    return str(text)


# Names.


def record_repository(project: str, service: str) -> str:
    return f"{RECORD_REPOSITORY}/{repository_component(project, service)}"


def keep_repository(project: str, service: str) -> str:
    return f"{KEEP_REPOSITORY}/{repository_component(project, service)}"


def repository_component(project: str, service: str) -> str:
    """PROJECT.SERVICE as a valid repository path component (lowercase letters and digits,
    separated by one '.', '_', '__' or dashes); records are found by label, not by this name."""
    parts = [re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"
             for name in (project, service)]
    return ".".join(parts)
