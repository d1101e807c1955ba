"""Release records of a Swarm stack's services: one per service a rollout changed, holding
its task template (what `rollback` gives the service again), and the rules to pick and check
the release a stack's `rollback` goes to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from docker_swap.engine.swarm import SwarmService, Task, same_template, template_hash
from docker_swap.errors import EXIT_NEEDS_ATTENTION, EXIT_ROLLED_BACK, ReleaseRefused, SwapError
from docker_swap.observer import PhaseResult
from docker_swap.releases.record import (
    DEPLOYED,
    NEEDS_ATTENTION,
    ROLLBACK,
    ROLLED_BACK,
    ContainerRef,
    Phase,
    Release,
)
from docker_swap.releases.store import (
    ReleaseEngine,
    deployer,
    next_number,
    now,
    read_releases,
    write_record,
)

_REASON_CHARS = 300
_ROLLED_BACK_KEYS = ("Image", "Env", "Args", "Command", "Labels")
"""What a rollback may change of a service's containers: a release record is read back from
an image's labels, which anyone who can make an image may write; so its template must match
what runs in everything else (mounts, capabilities, networks, placement...)."""


def record_stack_release(
    engine: ReleaseEngine, stack: str, service: str, *, error: SwapError | None,
    served: bool, before: SwarmService | None, after: SwarmService, tasks: Sequence[Task],
    phases: Sequence[PhaseResult], config_hash: str, kind: str, rollback_to: int | None,
) -> None:
    """One service's release: what it runs now if it deployed (or served before it needed
    attention), else what it ran before."""
    if error is not None and error.exit_code not in (EXIT_ROLLED_BACK, EXIT_NEEDS_ATTENTION):
        return
    outcome = DEPLOYED if error is None else (
        ROLLED_BACK if error.exit_code == EXIT_ROLLED_BACK else NEEDS_ATTENTION)
    deployed = error is None or (outcome == NEEDS_ATTENTION and served)
    shown = after if deployed or before is None else before
    releases, _ = read_releases(engine, stack, service)
    write_record(engine, Release(
        number=next_number(releases), project=stack, service=service, outcome=outcome,
        kind=kind, reason="" if error is None else error.message[:_REASON_CHARS],
        image_id=shown.template_hash, image_tags=(shown.image,),
        # A rollback runs an earlier template, not the file's: the next `up` replaces it.
        config_hash=config_hash if deployed and kind != ROLLBACK else "", at=now(),
        by=deployer(), rollback_to=rollback_to,
        phases=tuple(Phase(p.name, round(p.seconds, 3)) for p in phases),
        seconds=round(sum(p.seconds for p in phases), 3),
        containers=tuple(ContainerRef(t.container_id, t.name) for t in tasks if deployed),
        replaced=(before.name,) if deployed and before else (),
        template=json.dumps(shown.template, separators=(",", ":"), ensure_ascii=True),
        served=served,
    ))


def last_deployed(engine: ReleaseEngine, stack: str, service: str) -> Release | None:
    releases, _ = read_releases(engine, stack, service)
    return next((r for r in releases if r.deployed and r.template), None)


def rollback_target(engine: ReleaseEngine, stack: str, service: str, running: SwarmService,
                    to: int | None) -> Release:
    """Release `to`, else the newest deployed one whose template is not what runs."""
    releases, _ = read_releases(engine, stack, service)
    deployed = [r for r in releases if r.deployed and r.template]
    if to is not None:
        asked = next((r for r in releases if r.number == to), None)
        if asked is None or asked not in deployed:
            raise ReleaseRefused(f"release {to} of {service} is not a deployed release of "
                                 "this stack.", hint=f"`docker-swap history {service}` lists them.")
        if asked.image_id == running.template_hash:
            raise ReleaseRefused(f"release {to} of {service} is what runs now.")
        return asked
    earlier = next((r for r in deployed if r.image_id != running.template_hash), None)
    if earlier is None:
        raise ReleaseRefused(f"{service} has no earlier release to go back to.",
                             hint=f"`docker-swap history {service}` lists its releases.")
    return earlier


def checked_template(release: Release, running: SwarmService) -> dict[str, Any]:
    """The release's task template, if it is what its record's hash says and differs from
    what runs only in what a rollback may change."""
    template = json.loads(release.template)
    if template_hash(template) != release.image_id:
        raise ReleaseRefused(f"the record of release {release.number} does not match its own "
                             "hash: it was altered, and is not rolled back to.")
    if not same_template(_beyond_rollback(template), _beyond_rollback(running.template)):
        raise ReleaseRefused(
            f"release {release.number} ran a task spec that differs from what runs beyond "
            "its image, command, environment and labels: a rollback changes only those.",
            hint="Deploy that release's compose file with `docker-swap up` instead.")
    return dict(template)


def _beyond_rollback(template: Mapping[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in (template.get("ContainerSpec") or {}).items()
            if k not in _ROLLED_BACK_KEYS}
    return {**{k: v for k, v in template.items() if k not in ("ContainerSpec", "ForceUpdate")},
            "ContainerSpec": spec}
