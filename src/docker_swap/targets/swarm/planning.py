"""The plan of a stack's rollout, read from what runs, compose's hashes, the release records
and the registry (a tag that moved): the decisions themselves are plan.py's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from docker_swap.errors import InvalidSettings, Refused, SwapError
from docker_swap.releases.stacks import last_deployed
from docker_swap.targets.compose.preflight import nothing_changed_yet
from docker_swap.targets.swarm.plan import BRIDGE, UNCHANGED, StackPlan, plan_stack
from docker_swap.targets.swarm.stack import StackTarget


def read_stack_plan(target: StackTarget, *, force: set[str] | None = None,
                    resolve_image: str = "never") -> StackPlan:
    with nothing_changed_yet():
        hashes = target.compose.config_hashes()
        last = {name: last_deployed(target.engine, target.name, name)
                for name in target.settings}
    plan = plan_stack(target.name, target.services, target.running, target.settings, hashes,
                      last, force or set())
    for step in plan.bridged:
        if step.options is not None and step.options.port is None:
            raise InvalidSettings(
                f"service {step.service} needs the port its proxies send to.",
                hint=f"Set `x-swap: {{port: PORT}}` on {step.service} (or pass --port).")
    return moved_tags(target, plan, resolve_image)


def only(plan: StackPlan, service: str) -> StackPlan:
    """The plan's step for one service (`deploy`, `rollback`)."""
    return replace(plan, steps=tuple(s for s in plan.steps if s.service == service))


def moved_tags(target: StackTarget, plan: StackPlan, resolve_image: str) -> StackPlan:
    """`docker stack deploy` pins the digest a tag has now (unless --resolve-image never): a
    tag that moved (`app:main` pushed again) replaces the tasks of a service whose file and
    record did not change. Such a service goes through a bridge too, and so does one whose
    registry does not answer here (whether its tag moved cannot be known)."""
    if resolve_image == "never":
        return plan
    steps = []
    for step in plan.steps:
        running = target.running.get(step.service)
        image = target.images.get(step.service, "")
        pinned = running.image.partition("@")[2] if running else ""
        if step.action == UNCHANGED and pinned and "@" not in image:
            try:
                moved = target.swarm.registry_digest(image) != pinned
                why = f"its tag {image} points to another image now"
            except SwapError as exc:
                moved, why = True, f"whether its tag {image} moved is unknown ({exc.message})"
            steps.append(replace(step, action=BRIDGE, reason=why) if moved else step)
        else:
            steps.append(step)
    return replace(plan, steps=tuple(steps))


def refuse_others(plan: StackPlan, services: Sequence[str]) -> None:
    """`up SERVICE`: `docker stack deploy` updates every service at once, so a change to a
    proxied service that was not named would reach it without a bridge."""
    if not services:
        return
    others = [s.service for s in plan.bridged if s.service not in services]
    if others:
        raise Refused(
            f"docker stack deploy would also replace the tasks of {', '.join(others)}, which "
            "were not named.", hint="Run `docker-swap up` for the whole stack, or name them too.")
