"""The rules of releases, on records already read (pure): the next number, which releases'
images are kept, which release runs, where a rollback goes, which canary runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from docker_swap.errors import ReleaseRefused
from docker_swap.models import Container
from docker_swap.releases.record import (
    ABORT,
    CANARY,
    NEEDS_ATTENTION,
    PROMOTE,
    ROLLED_BACK,
    Release,
)


def next_number(releases: Sequence[Release]) -> int:
    return max((r.number for r in releases), default=0) + 1


def kept(releases: Sequence[Release], keep: int) -> list[Release]:
    """The deployed releases whose images stay: those that ran the `keep` most recent distinct
    images (a rollback to an image counts that image once)."""
    images: list[str] = []
    chosen = []
    for release in sorted(releases, key=lambda r: r.number, reverse=True):
        if not release.deployed:
            continue
        if release.image_id not in images:
            if len(images) >= keep:
                continue
            images.append(release.image_id)
        chosen.append(release)
    return chosen


def current(releases: Sequence[Release], running: Sequence[Container]) -> Release | None:
    """The release that runs: the newest one whose containers run (deployed, or one that
    needed attention after its switch), else the newest deployed one with the image that runs
    (compose recreated its containers). None when what runs is no release (the first deploy
    is yet to come, or a change outside docker-swap)."""
    newest_first = sorted(releases, key=lambda r: r.number, reverse=True)
    ids = {c.id for c in running}
    for release in newest_first:  # its containers run: it serves, whatever its outcome said
        if release.outcome != ROLLED_BACK and ids & {c.id for c in release.containers}:
            return release
    deployed = [r for r in newest_first if r.deployed]
    images = {c.image_id for c in running}
    if len(images) == 1:
        return next((r for r in deployed if r.image_id in images), None)
    return None


def active_canary(releases: Sequence[Release], running: Sequence[Container]) -> Release | None:
    """The canary that runs now: the newest canary release, if no promote or abort ended it
    since (one that rolled back, or needs attention, leaves it running) and some of its
    containers run."""
    for release in sorted(releases, key=lambda r: r.number, reverse=True):
        if release.outcome == CANARY:
            ids = {c.id for c in running}
            return release if ids & {c.id for c in release.containers} else None
        unfinished = release.outcome == NEEDS_ATTENTION or (
            release.kind == PROMOTE and release.outcome == ROLLED_BACK)
        if release.kind not in (PROMOTE, ABORT) or not unfinished:
            return None
    return None


def canary_sides(release: Release, running: Sequence[Container],
                 ) -> tuple[list[Container], list[Container]]:
    """The canary's running containers, and the old ones beside them."""
    ids = {c.id for c in release.containers}
    return [c for c in running if c.id in ids], [c for c in running if c.id not in ids]


def rollback_target(
    releases: Sequence[Release], running: Sequence[Container], to: int | None,
    has_image: Callable[[str], bool],
) -> Release:
    """The release `rollback` goes to: `to`, else the newest one that deployed before the
    current one with another image. Raises ReleaseRefused, saying why, when there is none."""
    service = running[0].service if running else "the service"
    now = current(releases, running)
    running_images = {c.image_id for c in running}
    if to is None:
        before = now.number if now else next_number(releases)
        target = next((r for r in releases if r.deployed and r.number < before
                       and r.image_id not in running_images), None)
        if target is None:
            raise ReleaseRefused(
                f"{service} has no earlier release to roll back to "
                f"({len(releases)} recorded).",
                hint=f"`docker-swap history {service}` lists them.")
    else:
        target = _asked_for(releases, to, service)
        if (now and now.number == to) or target.image_id in running_images:
            raise ReleaseRefused(f"release {to} of {service} is the one that runs now.")
    if not has_image(target.image_id):
        raise ReleaseRefused(
            f"release {target.number} of {service} is not kept any more: its image "
            f"{target.image_id[:19]} is gone.",
            hint="x-swap `keep` sets how many released images stay (default 3).")
    return target


def _asked_for(releases: Sequence[Release], number: int, service: str) -> Release:
    target = next((r for r in releases if r.number == number), None)
    if target is None:
        known = ", ".join(str(r.number) for r in releases) or "none"
        raise ReleaseRefused(f"{service} has no release {number} (releases: {known}).")
    if not target.deployed:
        why = "needed attention before its switch"
        raise ReleaseRefused(
            f"release {number} of {service} never served: it "
            f"{'was rolled back' if target.outcome == ROLLED_BACK else why}"
            f"{f' ({target.reason})' if target.reason else ''}.")
    return target
