"""`docker-swap rollback SERVICE [--to N]`: swap back to an earlier release, with no downtime.

    lock     the preflight of a deploy (every check, and the service's lock), first
    choose   the release asked for (`--to N`), else the newest one that deployed before the
             one that runs with another image; refused (exit 2, nothing changed) when it is
             unknown, never served, runs now, or its image is not kept any more
    current  compose's own name for the service's image (its `image:`, or PROJECT-SERVICE for
             a `build:` service) is pointed at that release's image, so that compose starts
             it, and so that a later `docker compose up -d` finds the containers up to date:
             compose recreates a container when its config hash or its image ID differs from
             the service's, and neither does
    deploy   the very sequence of a deploy (deploy.py), recorded as a release of kind
             `rollback`; if it fails and is rolled back (the old containers serve), or is
             refused or interrupted before it started, the name is pointed back at the image
             it named before, so nothing is left changed. When it needs attention (exit 3) the
             name stays on the release's image: its containers may serve, and `docker-swap
             recover` decides which stay. A point-back that fails is a note: the error the user
             sees is the deploy's.

The lock is held from before compose's name moves until the release is recorded, so that no
other deploy of the service can start the rolled-back image meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from docker_swap.compose import Compose, image_name
from docker_swap.errors import DeployFailed, Refused, ReleaseRefused, SwapError
from docker_swap.models import Image, Project
from docker_swap.observer import Observer, SilentObserver
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.releases.store import read_releases, rollback_target
from docker_swap.rollout.deploy import deploy_prepared
from docker_swap.rollout.reports import DeployReport
from docker_swap.rollout.verify import Verifier
from docker_swap.safety.interrupts import Interrupts
from docker_swap.targets.compose.preflight import (
    nothing_changed_yet,
    open_service,
    prepare,
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
    compose = Compose(compose_options or ComposeOptions())
    with Interrupts(shown.note) as interrupts:
        interrupts.arm("before anything changed")
        engine, project, options = open_service(compose, service, flags or {})
        plan = prepare(engine, project, options)
        try:
            reference = compose_image(project, service)
            with nothing_changed_yet():
                releases, notes = read_releases(engine, project.name, service)
                target = rollback_target(releases, plan.old, to,
                                         lambda i: engine.image(i) is not None)
                before = engine.image(reference)
                for note in notes:
                    shown.note(note)
                engine.tag(target.image_id, reference)
            try:
                return deploy_prepared(plan, engine, compose, shown, interrupts,
                                       Verifier(verify or VerifyOptions()), target.number)
            except (DeployFailed, Refused, KeyboardInterrupt):
                _point_back(engine, reference, before, shown)
                raise
        finally:
            plan.journal.unlock()


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


def _point_back(engine: Engine, reference: str, before: Image | None,
                observer: Observer) -> None:
    """Compose's name back on the image it named before; a failure here is a note, so that
    it never hides why the rollback did not go through."""
    try:
        if before is None:
            engine.untag(reference)
        else:
            engine.tag(before.id, reference)
    except SwapError as exc:
        observer.note(f"compose's image name {reference} could not be pointed back at "
                      f"{before.id[:19] if before else 'nothing'} ({exc.message}): `docker "
                      f"compose up -d` would start the rolled-back image.")
