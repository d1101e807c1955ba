"""Release records: what every deploy of a service did, kept on the engine it deployed to.

Where a record lives, and why there
    One image per release, made by the Engine API's import of an empty tarball: no files, a
    0-byte layer, nothing but labels.

        repository  docker-swap-release/PROJECT.SERVICE      tag: the release number
        labels      docker-swap.release.project, docker-swap.release.service,
                    docker-swap.release.number, docker-swap.release.record (JSON; the
                    format, and how it is read back as untrusted input: release_record.py)

    Every machine and every user that deploys to the engine sees the same records: they are
    on the engine, not in a state folder (one per user and machine). They outlive the
    containers (each deploy retires the ones before), and one API call, filtered by label,
    lists them. Containers' labels would go with the containers; the registry exists only with
    `proxy: redis`; a volume needs a container to be read. `docker image prune` leaves the
    records alone (they are tagged); `docker image prune -a` removes them with every image no
    container uses. The newest RECORDS_KEPT records are kept, older ones removed.

What keeps a release's image
    The app images of the last `keep` distinct images that deployed (x-swap `keep`, default 3)
    carry a tag docker-swap-keep/PROJECT.SERVICE:N for each release N that ran them, so that
    `docker image prune` leaves them and `docker-swap rollback` can use them even once a build
    moved the service's own tag on. Tags of releases outside that set are removed (the image
    goes with its last tag, unless a container uses it).

What a record says
    its number, the image ID and tags, compose's config hash of the new containers, when (UTC)
    and by whom (user@host), the outcome (deployed; rolled back and why; needs attention and
    why), the phase durations, the containers it started and those it replaced. A refusal
    changed nothing and records nothing. A service's first record also records what ran before
    docker-swap's first deploy (kind `found`), so that the first deploy can be rolled back.
    Numbers come from the records there are (the highest plus one), under the deploy's lock.

This module writes and reads the records; rules.py holds the rules (numbers, what is kept,
which release runs, where a rollback goes, which canary runs); the engine does the I/O
(engine/) through the small `ReleaseEngine` protocol, so that both have unit tests with a
fake.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from docker_swap.errors import (
    EXIT_NEEDS_ATTENTION,
    EXIT_ROLLED_BACK,
    SwapError,
    message_of,
)
from docker_swap.models import Container, Image
from docker_swap.options import DEFAULT_KEEP
from docker_swap.releases.record import (
    CANARY,
    DEPLOY,
    DEPLOYED,
    FOUND,
    KEEP_REPOSITORY,
    LABEL,
    NEEDS_ATTENTION,
    RECORD_REPOSITORY,
    ROLLED_BACK,
    ContainerRef,
    Phase,
    Release,
    keep_repository,
    parse_record,
    record_labels,
    record_repository,
)
from docker_swap.releases.rules import (
    active_canary,
    canary_sides,
    current,
    kept,
    next_number,
    rollback_target,
)

if TYPE_CHECKING:
    from docker_swap.observer import PhaseResult

__all__ = ["Recorded", "ReleaseEngine", "active_canary", "canary_sides", "current",
           "forget_releases", "kept", "next_number", "read_releases", "record_release",
           "retain", "rollback_target", "write_record"]

RECORDS_KEPT = 50
_REASON_CHARS = 1000


@dataclass(frozen=True)
class Recorded:
    """What `record_release` did: the new release's number (None if nothing was recorded)."""

    number: int | None
    notes: tuple[str, ...] = ()


class ReleaseEngine(Protocol):
    """What releases need from the engine (Engine provides it)."""

    def image(self, reference: str) -> Image | None: ...

    def images(
        self, *, labels: Sequence[str] = (), repository: str | None = None
    ) -> list[Image]: ...

    def import_labels(self, repository: str, tag: str, labels: Mapping[str, str]) -> str: ...

    def tag(self, image_id: str, reference: str) -> None: ...

    def untag(self, reference: str) -> None: ...


# Recording.


def record_release(
    engine: ReleaseEngine,
    project: str,
    service: str,
    error: BaseException | None,
    new: Sequence[Container],
    *,
    replaced: Sequence[Container] = (),
    phases: Sequence[PhaseResult] = (),
    keep: int = DEFAULT_KEEP,
    kind: str = DEPLOY,
    rollback_to: int | None = None,
    served: bool | None = None,
    share: str = "",
    outcome: tuple[str, str] | None = None,
    counted: Sequence[int] = (),
) -> Recorded:
    """Record how one deploy of `service` ended, on the engine, and keep the last `keep`
    released images. `error` is what the deploy raised (None: it deployed); `new` the
    containers it started (inspected when they started), `replaced` those it replaced;
    `served`: its switch completed, so its version served (by default: it deployed); `share`:
    a canary's (it ended as a canary when `error` is None); `outcome` (outcome, reason) says
    how it ended instead of `error` (an abort that removed a canary: rolled back).

    Never raises: a record that cannot be written is a note, and the deploy's outcome stays
    what it was. A refusal (nothing changed) records nothing.
    """
    if outcome is None:
        outcome = (CANARY, "") if share and error is None else outcome_of(error)
    if outcome is None:
        return Recorded(None)
    done = tuple(Phase(p.name, round(p.seconds, 3)) for p in phases)
    try:
        return _record(engine, project, service, outcome, new, replaced, done, keep, kind,
                       rollback_to, error is None if served is None else served, share,
                       tuple(counted))
    except Exception as exc:
        return Recorded(None, (f"the release could not be recorded on the engine "
                               f"({message_of(exc)}); the deploy's outcome is as reported.",))


def outcome_of(result: BaseException | None) -> tuple[str, str] | None:
    """(outcome, reason) of how a deploy ended (None: it deployed); None for a refusal."""
    if result is None:
        return DEPLOYED, ""
    if isinstance(result, SwapError):
        if result.exit_code == EXIT_ROLLED_BACK:
            return ROLLED_BACK, _short(result.message)
        if result.exit_code == EXIT_NEEDS_ATTENTION:
            return NEEDS_ATTENTION, _short(result.message)
        return None
    return NEEDS_ATTENTION, _short(message_of(result))


def _record(
    engine: ReleaseEngine, project: str, service: str, outcome: tuple[str, str],
    new: Sequence[Container], replaced: Sequence[Container], phases: tuple[Phase, ...],
    keep: int, kind: str, rollback_to: int | None, served: bool, share: str = "",
    counted: tuple[int, ...] = (),
) -> Recorded:
    releases, notes = read_releases(engine, project, service)
    if not releases and replaced:  # what ran before docker-swap's first deploy
        found = replace(_release(engine, 1, project, service, (DEPLOYED, ""), FOUND, replaced),
                        by="", served=True)
        write_record(engine, found)
        releases = [found]
    release = replace(
        _release(engine, next_number(releases), project, service, outcome, kind, new),
        rollback_to=rollback_to, phases=phases, seconds=round(sum(p.seconds for p in phases), 3),
        replaced=tuple(c.name for c in replaced), served=served, share=share,
        counted=counted,
    )
    write_record(engine, release)
    releases = [release, *releases]
    notes += retain(engine, project, service, releases, keep)
    _forget_old_records(engine, project, service, releases)
    return Recorded(release.number, tuple(notes))


def _release(
    engine: ReleaseEngine, number: int, project: str, service: str, outcome: tuple[str, str],
    kind: str, containers: Sequence[Container],
) -> Release:
    image_id = containers[0].image_id if containers else ""
    image = engine.image(image_id) if image_id else None
    return Release(
        number=number, project=project, service=service, outcome=outcome[0], kind=kind,
        reason=outcome[1], image_id=image_id, image_tags=_app_tags(image),
        config_hash=containers[0].config_hash if containers else "", at=now(), by=deployer(),
        containers=tuple(ContainerRef(c.id, c.name) for c in containers),
    )


def write_record(engine: ReleaseEngine, release: Release) -> None:
    repository = record_repository(release.project, release.service)
    engine.import_labels(repository, str(release.number), record_labels(release))


def retain(
    engine: ReleaseEngine, project: str, service: str, releases: Sequence[Release], keep: int
) -> list[str]:
    """Tag the images of the kept releases, untag the others; return notes."""
    repository = keep_repository(project, service)
    wanted = {f"{repository}:{r.number}": r.image_id for r in kept(releases, keep)}
    present = {tag: image.id for image in engine.images(repository=repository)
               for tag in image.tags if tag.startswith(f"{repository}:")}
    notes = []
    for tag, image_id in wanted.items():
        if present.get(tag) == image_id:
            continue
        if engine.image(image_id) is None:
            notes.append(f"the image of release {tag.rpartition(':')[2]} ({image_id[:19]}) is "
                         "gone: that release can no longer be rolled back to.")
            continue
        engine.tag(image_id, tag)
    for tag in sorted(set(present) - set(wanted)):
        engine.untag(tag)
    return notes


def _forget_old_records(
    engine: ReleaseEngine, project: str, service: str, releases: Sequence[Release]
) -> None:
    """Only the newest RECORDS_KEPT records stay (an image goes with its only tag)."""
    repository = record_repository(project, service)
    for release in sorted(releases, key=lambda r: r.number, reverse=True)[RECORDS_KEPT:]:
        engine.untag(f"{repository}:{release.number}")


def forget_releases(engine: ReleaseEngine, project: str) -> None:
    """Remove every release record of `project`, and the tags that kept its images."""
    records = engine.images(labels=[f"{LABEL}.project={project}"])
    for service in sorted({image.labels.get(f"{LABEL}.service", "") for image in records}):
        for image in engine.images(repository=keep_repository(project, service)):
            for tag in image.tags:
                if tag.startswith(f"{keep_repository(project, service)}:"):
                    engine.untag(tag)
    for image in records:
        for tag in image.tags:
            engine.untag(tag)


# Reading.


def read_releases(
    engine: ReleaseEngine, project: str, service: str
) -> tuple[list[Release], list[str]]:
    """The service's releases, newest first, and a note for each record that does not parse."""
    found = engine.images(labels=[f"{LABEL}.project={project}", f"{LABEL}.service={service}"])
    releases: dict[int, Release] = {}
    notes = []
    for image in found:
        try:
            release = parse_record(image.labels)
        except ValueError as exc:
            notes.append(f"skipped the release record {image.id[:19]}: {exc}.")
            continue
        if (release.project, release.service) != (project, service):
            notes.append(f"skipped the release record {image.id[:19]}: it names "
                         f"{release.project}/{release.service}.")
            continue
        if release.number not in releases or image.tags:  # a tagged copy wins over a stray one
            releases[release.number] = release
    return sorted(releases.values(), key=lambda r: r.number, reverse=True), notes


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def deployer() -> str:
    """user@host of whoever runs docker-swap."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _app_tags(image: Image | None) -> tuple[str, ...]:
    if image is None:
        return ()
    return tuple(t for t in image.tags if not t.startswith((f"{KEEP_REPOSITORY}/",
                                                            f"{RECORD_REPOSITORY}/")))


def _short(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"




