"""`docker-swap autoupdate`, one check: follow the registry and deploy what moved, with `up`.

    choose   the services named (followed by digest, whatever x-swap says), or, with none
             named, those whose x-swap `autoupdate` asks for it; a service that builds its
             image, or names it by digest, is not followed (said once)
    ask      each one's registry what its tag points to now (the Engine's distribution
             inspect, with the user's docker credentials), and by policy (patch, minor,
             major) which newer tag it may move to (follow_tags.py)
    skip     nothing moved, or it moved to a digest whose update failed before (not tried
             again: a new digest is)
    pull     the new image; for a newer tag the compose file (or the env file its `${VAR}`
             comes from) names it, written atomically (compose/files.py)
    up       the services that moved, with up's batches, readiness, hooks, watch window,
             verify and rollback; an update that does not end done puts the file back and
             remembers its digest
    tell     the observer hears what was found and how each update ended (notifications and
             metrics listen there: cli/autoupdate.py)

An interrupted deploy of a followed service (autoupdate killed in the middle, a lost machine)
is recovered first, so that a restart picks up where it was.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from docker_swap.compose import Compose
from docker_swap.compose.files import Edit, apply, tag_edit
from docker_swap.errors import (
    EXIT_NEEDS_ATTENTION,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_ROLLED_BACK,
    ImageRegistryFailed,
    SwapError,
    message_of,
)
from docker_swap.models import Container, Project
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.rollout.follow_tags import next_tag, split_reference
from docker_swap.rollout.outcomes import DONE, ServiceOutcome, UpObserver, UpReport
from docker_swap.rollout.recover import recover
from docker_swap.rollout.up import up
from docker_swap.safety.followed import FollowState
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import Journal
from docker_swap.settings import resolve_settings
from docker_swap.targets.compose.preflight import connect_engine, nothing_changed_yet

if TYPE_CHECKING:
    from docker_swap.engine import Engine


@dataclass
class Move:
    """One service whose image moved in its registry."""

    project: str
    service: str
    policy: str
    reference: str
    """What it runs now (REPOSITORY:TAG)."""
    to_reference: str
    """What it moves to: the same, or a newer tag."""
    digest_from: str
    digest_to: str
    edit: Edit | None = None
    """The line that names the newer tag, for `to_reference` (None: the same tag)."""


@dataclass
class Ended:
    """How one move's update ended."""

    move: Move
    outcome: str
    """up's outcome for the service (done, rolled_back, needs_attention...)."""
    exit_code: int
    seconds: float
    detail: str
    verify: object | None = None


@dataclass
class Check:
    """One check of every followed service."""

    project: str = ""
    followed: list[str] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Service to why nothing was done (no change is no entry)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Service to what kept it from being checked (a registry that did not answer)."""
    up: UpReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = {e.exit_code for e in self.ended}
        if EXIT_NEEDS_ATTENTION in codes:
            return EXIT_NEEDS_ATTENTION
        if codes - {EXIT_OK}:
            return EXIT_ROLLED_BACK
        return EXIT_REFUSED if self.errors and not self.ended else EXIT_OK


class FollowObserver(UpObserver, Protocol):
    """What autoupdate tells as it goes (the CLI prints it, notifies and counts)."""

    def found(self, move: Move) -> None: ...

    def updated(self, ended: Ended) -> None: ...

    def checked(self, check: Check) -> None: ...


def check_once(services: Sequence[str], *, compose_options: ComposeOptions | None = None,
               flags: Mapping[str, object | None] | None = None, observer: FollowObserver,
               verify: VerifyOptions | None = None, interrupts: Interrupts | None = None,
               state: FollowState | None = None) -> Check:
    """Check every followed service once and update those that moved."""
    compose = Compose(compose_options or ComposeOptions())
    result = Check()
    with nothing_changed_yet(), compose.loading_project():
        engine = connect_engine()
        project = compose.load_project()
    memory = state or FollowState(project.name)
    result.project = project.name
    result.notes += memory.notes
    result.followed = followed(project, services, result.skipped)
    _recover_interrupted(engine, project, result.followed, compose_options, result)
    for service in result.followed:
        try:
            move = _ask(engine, project, service, memory, services, result, compose_options)
        except (ImageRegistryFailed, SwapError) as error:
            result.errors[service] = error.message
            continue
        if move is not None:
            result.moves.append(move)
            observer.found(move)
    if result.moves:
        _update(result, compose_options, flags, observer, verify, interrupts, memory)
    observer.checked(result)
    return result


def followed(project: Project, named: Sequence[str], skipped: dict[str, str]) -> list[str]:
    """The services this check follows: the named ones, else those whose x-swap asks."""
    for name in named:
        if name not in project.services:
            known = ", ".join(sorted(project.services))
            raise SwapError(f"project {project.name!r} has no service {name!r} "
                            f"(services: {known}).")
    chosen = []
    for name, definition in sorted(project.services.items()):
        if named and name not in named:
            continue
        policy = resolve_settings(name, definition.x_swap, {}).autoupdate
        if not named and policy == "never":
            continue
        if definition.builds:
            skipped[name] = "it builds its image here: there is no registry to follow"
        elif "@" in (definition.image or ""):
            skipped[name] = f"it names its image by digest ({definition.image}), which never moves"
        else:
            chosen.append(name)
    return chosen


def _ask(engine: Engine, project: Project, service: str, memory: FollowState,
         named: Sequence[str], result: Check, compose_options: ComposeOptions | None,
         ) -> Move | None:
    definition = project.services[service]
    reference = definition.image or ""
    policy = "digest" if service in named else \
        resolve_settings(service, definition.x_swap, {}).autoupdate
    repository, tag = split_reference(reference)
    running = [c for c in engine.service_containers(project.name, service) if c.running]
    target, edit = reference, None
    newer = next_tag(tag, engine.remote_tags(repository), policy) if policy not in (
        "digest", "never") else None
    if newer is not None:
        target = f"{repository}:{newer}"
        edit = _edit(running, compose_options, service, tag, newer)
    digest = engine.remote_digest(target)
    current = _running_digests(engine, running)
    remembered = memory.get(service)
    if digest in current and edit is None:
        return None
    if digest in remembered.failed:
        result.skipped[service] = (f"{target} points to {digest[:19]}, whose update failed "
                                   "before: it is not tried again until the tag moves on")
        return None
    return Move(project.name, service, policy, reference, target, next(iter(current), ""),
                digest, edit)


def _edit(running: Sequence[Container], compose_options: ComposeOptions | None, service: str,
          old_tag: str, new_tag: str) -> Edit:
    options = compose_options or ComposeOptions()
    sample = running[0] if running else None
    files = list(options.files) or list(sample.config_files if sample else ())
    folder = options.project_directory or (sample.working_dir if sample else "") or "."
    return tag_edit(files, options.env_files, folder, service, old_tag, new_tag)


def _running_digests(engine: Engine, running: Sequence[Container]) -> list[str]:
    digests: list[str] = []
    for image_id in sorted({c.image_id for c in running}):
        digests += engine.repo_digests(image_id)
    return digests


def _update(result: Check, compose_options: ComposeOptions | None,
            flags: Mapping[str, object | None] | None, observer: FollowObserver,
            verify: VerifyOptions | None, interrupts: Interrupts | None,
            memory: FollowState) -> None:
    engine = connect_engine()
    ready = []
    for move in result.moves:
        try:
            engine.pull(move.to_reference)
            if move.edit is not None:
                apply(move.edit)
                observer.note(f"{move.service}: {move.edit.describe()}")
            ready.append(move)
        except SwapError as error:
            result.errors[move.service] = error.message
    if not ready:
        return
    started = time.monotonic()
    given = {**(flags or {}), "canary": False}  # an unattended update deploys straight
    try:
        report = up([m.service for m in ready], compose_options=compose_options,
                    observer=observer, flags=given, verify=verify, interrupts=interrupts)
    except SwapError as error:  # refused (a lock, a plan problem): nothing changed
        report = None
        for move in ready:
            _put_back(move, observer)
            result.errors[move.service] = error.message
    if report is None:
        return
    result.up = report
    for move in ready:
        outcome = next((s for s in report.services if s.name == move.service), None)
        ended = _ended(move, outcome, report, time.monotonic() - started)
        if ended.outcome != DONE:
            _put_back(move, observer)
            failed = memory.get(move.service)
            failed.failed.append(move.digest_to)
            memory.remember(move.service, failed)
        else:
            memory.remember(move.service, type(memory.get(move.service))(
                move.digest_to, memory.get(move.service).failed))
        result.ended.append(ended)
        observer.updated(ended)


def _ended(move: Move, outcome: ServiceOutcome | None, report: UpReport,
           seconds: float) -> Ended:
    if outcome is None:
        return Ended(move, "not_reached", EXIT_NEEDS_ATTENTION, seconds, "not in up's plan")
    code = {DONE: EXIT_OK, "unchanged": EXIT_OK, "rolled_back": EXIT_ROLLED_BACK,
            "failed": EXIT_ROLLED_BACK}.get(outcome.outcome, EXIT_NEEDS_ATTENTION)
    return Ended(move, DONE if outcome.outcome == "unchanged" else outcome.outcome, code,
                 outcome.seconds or seconds, outcome.error or outcome.detail, report.verify)


def _put_back(move: Move, observer: FollowObserver) -> None:
    if move.edit is None:
        return
    try:
        apply(move.edit, back=True)
        observer.note(f"{move.service}: {move.edit.path}:{move.edit.number} put back")
    except (SwapError, OSError) as error:
        observer.note(f"{move.service}: {move.edit.path} could not be put back: "
                      f"{message_of(error)}")


def _recover_interrupted(engine: Engine, project: Project, services: Sequence[str],
                         compose_options: ComposeOptions | None, result: Check) -> None:
    """A deploy of a followed service that was interrupted is finished or undone first."""
    for service in services:
        if Journal(engine, project.name, service).read() is None:
            continue
        try:
            report = recover(service, compose_options=compose_options)
            result.notes.append(f"{service}: an interrupted deploy was {report.action}: "
                                f"{report.detail}")
        except SwapError as error:
            result.errors[service] = f"an interrupted deploy could not be recovered: " \
                                     f"{error.message}"
