"""`docker-swap rollback SERVICE [--to N]`: swap back to an earlier release, with no downtime.

    choose   the release asked for (`--to N`), else the newest one that deployed before the
             one that runs with another image; refused (exit 2, nothing changed) when it is
             unknown, never served, runs now, or its image is not kept any more
    current  compose's own name for the service's image (its `image:`, or PROJECT-SERVICE for
             a `build:` service) is pointed at that release's image, so that compose starts
             it, and so that a later `docker compose up -d` finds the containers up to date:
             compose recreates a container when its config hash or its image ID differs from
             the service's, and neither does
    deploy   the very sequence of a deploy (swap.deploy), recorded as a release of kind
             `rollback`; if it fails and rolls back, is refused or interrupted before it
             started, the name is pointed back at the image it named before, so nothing is
             left changed. When it needs attention (exit 3) the name stays on the release's
             image: `docker-swap recover` decides which containers stay

Compose's name is moved before the deploy takes the service's lock; a deploy of the same
service started by someone else in that instant could start the rolled-back image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from docker_swap.compose import Compose, image_name
from docker_swap.errors import DeployFailed, Refused, ReleaseRefused
from docker_swap.models import Image, Project
from docker_swap.observer import Observer, SilentObserver
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.releases.store import read_releases, rollback_target
from docker_swap.rollout.deploy import DeployReport, deploy
from docker_swap.targets.compose.preflight import (
    nothing_changed_yet,
    open_service,
    running_containers,
)

if TYPE_CHECKING:
    from docker_swap.engine import Engine


def rollback(
    service: str,
    *,
    to: int | None = None,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
    observer: Observer | None = None,
    verify: VerifyOptions | None = None,
) -> DeployReport:
    """Deploy the image of release `to` (default: the one before the current) again."""
    shown = observer or SilentObserver()
    options = compose_options or ComposeOptions()
    engine, project, _ = open_service(Compose(options), service, flags or {})
    reference = compose_image(project, service)
    with nothing_changed_yet():
        releases, notes = read_releases(engine, project.name, service)
        running = running_containers(engine, project, project.services[service])
        target = rollback_target(releases, running, to, lambda i: engine.image(i) is not None)
        before = engine.image(reference)
    for note in notes:
        shown.note(note)
    engine.tag(target.image_id, reference)
    try:
        return deploy(service, compose_options=options, flags=flags, observer=shown,
                      verify=verify, rollback_to=target.number)
    except (DeployFailed, Refused, KeyboardInterrupt):
        _point_back(engine, reference, before)
        raise


def compose_image(project: Project, service: str) -> str:
    """The image reference compose uses for the service, as `docker compose config` says."""
    definition = project.services[service]
    image = image_name(project, service)
    if definition.pull_policy in ("always", "build"):
        raise ReleaseRefused(
            f"service {service!r} has pull_policy {definition.pull_policy}, so compose would "
            f"{'pull' if definition.pull_policy == 'always' else 'build'} a new image instead "
            "of starting the kept one.",
            hint="Use pull_policy missing (the default) or never to use rollback.")
    if "@" in image:
        raise ReleaseRefused(
            f"service {service!r} names its image by digest ({image}), which cannot be "
            "pointed at another image.",
            hint="Name it by tag (image: NAME:TAG) to use rollback.")
    return image


def _point_back(engine: Engine, reference: str, before: Image | None) -> None:
    if before is None:
        engine.untag(reference)
    else:
        engine.tag(before.id, reference)
