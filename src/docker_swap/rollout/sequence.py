"""The swap sequence: start -> ready -> switch -> drain -> retire, or roll back.

    start          compose starts the new container(s) beside the old ones (`up --scale`)
    ready          a probe passes in each new container; an exit or an unhealthy report fails
                   at once
    before-switch  (a hook) runs in one new container; nothing moved yet
    switch         the proxy sends every new request to the new containers, confirmed live
    after-switch   (a hook) runs in one new container
    drain          requests the proxy sent to the old containers before the switch finish
    watch          (--watch) the old containers wait, running; a failing new one switches back
    retire         (the before-stop hook in each, then) the old containers stop with their
                   grace period and are removed

Any failure up to and including the switch rolls back: the proxy is switched back (if it was
touched), confirmed, and only then are the new containers removed; the old ones never
noticed. After the switch nothing rolls back but a new version failing its watch window. The
journal records every phase so that a killed deploy can be finished or undone by
`docker-swap recover`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NoReturn

from docker_swap.compose import Compose
from docker_swap.errors import (
    ComposeFailed,
    Interrupted,
    NeedsAttention,
    ReleaseFailed,
    StepFailed,
    SwapError,
    UnexpectedError,
    message_of,
)
from docker_swap.models import Backend, Container, names
from docker_swap.observer import Observer, PhaseResult, SilentObserver
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.proxy import Drained
from docker_swap.releases.record import DEPLOY, ROLLBACK
from docker_swap.releases.store import Recorded, record_release
from docker_swap.rollout.hooks import HookResult, require, run_hook
from docker_swap.rollout.readiness import (
    CommandProbe,
    DockerHealthProbe,
    HttpProbe,
    Probe,
    ProbeResult,
    TcpProbe,
    raise_if_failed,
    wait_until_ready,
)
from docker_swap.rollout.undo import Undo
from docker_swap.rollout.verify import Verifier, VerifyReport
from docker_swap.rollout.watch import CountsAnswers, watch_release
from docker_swap.safety.failpoints import failpoint
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import STARTED, STARTING, SWITCHED, SWITCHING, Entry
from docker_swap.targets.compose.preflight import Plan, connect_proxy, open_service, prepare

if TYPE_CHECKING:
    from docker_swap.engine import ContainerWatch, Engine



@dataclass(frozen=True)
class DeployReport:
    """What a finished deploy did, phase by phase (and what `--verify` saw, if it ran)."""

    project: str
    service: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    phases: tuple[PhaseResult, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())
    verify: VerifyReport | None = None
    release: int | None = None
    """The number of its release record (None if it could not be recorded)."""


def deploy(
    service: str,
    *,
    compose_options: ComposeOptions | None = None,
    flags: Mapping[str, object | None] | None = None,
    observer: Observer | None = None,
    verify: VerifyOptions | None = None,
    rollback_to: int | None = None,
) -> DeployReport:
    """Replace the running containers of `service` with its current definition.

    Every outcome but a refusal is recorded as a release (releases.py); `rollback_to` marks
    the deploy as `docker-swap rollback` to that release."""
    compose = Compose(compose_options or ComposeOptions())
    engine, project, options = open_service(compose, service, flags or {})
    plan = prepare(engine, project, options)
    swap = Swap(plan, engine, compose, observer or SilentObserver())
    verifier = Verifier(verify or VerifyOptions())
    try:
        with verifier:
            report = swap.run()
    except Exception as error:
        if isinstance(error, SwapError) and verifier.active:
            error.verify = verifier.report()
        _record(swap, error, rollback_to)
        raise
    else:
        recorded = _record(swap, report, rollback_to)
        return replace(report, release=recorded.number, notes=report.notes + recorded.notes,
                       verify=verifier.report() if verifier.active else None)
    finally:
        plan.journal.unlock()


def _record(swap: Swap, result: DeployReport | Exception, rollback_to: int | None) -> Recorded:
    with Interrupts(swap.observer.note) as interrupts:  # the outcome is known: a signal waits
        interrupts.defer("recording the release first")
        recorded = record_release(
            swap.engine, swap.plan.project.name, swap.plan.options.service, result, swap.new,
            replaced=swap.plan.old, phases=swap.phases, keep=swap.plan.options.keep,
            kind=DEPLOY if rollback_to is None else ROLLBACK, rollback_to=rollback_to)
    for note in recorded.notes:
        swap.observer.note(note)
    return recorded


class Swap:
    def __init__(self, plan: Plan, engine: Engine, compose: Compose, observer: Observer) -> None:
        self.plan = plan
        self.engine = engine
        self.compose = compose
        self.observer = observer
        self.new: list[Container] = []
        self.watches: dict[str, ContainerWatch] = {}
        self.proxy_staged = False
        self.proxy_touched = False
        self.phases: list[PhaseResult] = []
        self.notes: list[str] = list(plan.notes)
        self.interrupts = Interrupts(self._note)
        self.entry = Entry(
            plan.project.name, plan.options.service, STARTING, old=[c.id for c in plan.old],
            staying=[c.id for c in plan.staying],
        )

    def run(self) -> DeployReport:
        started = time.monotonic()
        for note in self.notes:
            self.observer.note(note)
        with self.interrupts:
            try:
                self._until_switched()
                # The new version serves: a failure from here on is never a rollback (0 or 3),
                # but for a failing new version in the watch window.
                if self._command("after-switch"):
                    self._after_switch("after-switch", self._after_switch_hook, "the hook")
                self._after_switch("drain", self._drain, "draining the old containers")
                self._watch_window()
            finally:
                self._close_watches()
            self._after_switch("retire", self._retire, "retiring the old containers")
        self.plan.journal.clear()
        return DeployReport(
            project=self.plan.project.name,
            service=self.plan.options.service,
            old=tuple(c.name for c in self.plan.old),
            new=tuple(c.name for c in self.new),
            phases=tuple(self.phases),
            seconds=time.monotonic() - started,
            notes=tuple(self.notes),
        )

    def _until_switched(self) -> None:
        """Start, ready, (the before-switch hook,) switch: any failure rolls back."""
        try:
            self._phase("start", self._start)
            self._phase("ready", self._ready)
            if self._command("before-switch"):
                self._phase("before-switch", self._before_switch_hook)
            self._phase("switch", self._switch)  # signals are only noted once it returns
        except Exception as exc:
            self.interrupts.defer("rolling back")
            self._roll_back(_as_step_failure(exc))

    def _watch_window(self) -> None:
        """Old containers wait, running, out of the proxy; a failing new version (or a
        signal) switches back to them."""
        if not self.plan.options.watch:
            return
        self.interrupts.arm("during the watch window")
        try:
            self._phase("watch", self._watch)
        except (ReleaseFailed, Interrupted) as failure:
            self.interrupts.defer("switching back")
            self._roll_back(failure)
        except Exception as exc:
            raise self._needs_attention("watching the new containers", exc) from exc
        self.interrupts.defer("the watch window passed; retiring the old containers first")

    # The phases, in order.

    def _start(self) -> str:
        self.plan.journal.write(self.entry)
        size = len(self.plan.old) if self.plan.batch_size is None else self.plan.batch_size
        self.compose.scale_up(self.plan.options.service,
                              len(self.plan.old) + len(self.plan.staying) + size)
        self.new = self._new_containers()
        self._journal(STARTED)
        failpoint("after-start")
        if len(self.new) != size:
            raise ComposeFailed(
                f"docker compose started {len(self.new)} new container(s) for "
                f"{self.plan.options.service}, expected {size}."
            )
        for container in self.new:
            self.watches[container.id] = self.engine.watch(container.id)
        return f"{names(self.new)} started"

    def _ready(self) -> str:
        timeout = self.plan.options.timeout
        deadline = time.monotonic() + timeout
        # While the new containers warm up: will the proxy accept them? (No traffic moves.)
        self.proxy_staged = True  # before: a stage cut short is undone too
        self.plan.proxy.stage(self._backends(self.new),
                              self._backends([*self.plan.old, *self.plan.staying]))
        failpoint("ready")
        detail = ""
        for container in self.new:
            probe = self._probe(container)
            watch = self.watches[container.id]

            def report(attempt: int, answer: ProbeResult, name: str = container.name) -> None:
                self.interrupts.check()
                self.observer.progress(f"{name}: {answer.detail} (attempt {attempt})")

            ready = wait_until_ready(probe, watch, container.name, timeout, deadline, report)
            detail = f"{probe.description}: {ready.detail}"
        return detail

    def _switch(self) -> str:
        for container in self.new:
            raise_if_failed(self.watches[container.id], container.name)
        self._journal(SWITCHING)
        self.proxy_touched = True
        detail = self.plan.proxy.switch(self._backends([*self.plan.staying, *self.new]))
        # The new version serves: a signal from here on cannot undo the deploy, only be noted.
        self.interrupts.defer("the new version already serves; finishing drain and retire first")
        self._journal(SWITCHED)
        return detail

    def _before_switch_hook(self) -> str:
        return require(self._run_hook("before-switch", self.new[0]))

    def _after_switch_hook(self) -> str:
        result = self._run_hook("after-switch", self.new[0])
        if not result.ok:
            self._note(f"the {_with_output(result)}")
        return result.detail

    def _watch(self) -> str:
        options = self.plan.options
        proxy = self.plan.proxy
        counter = proxy if isinstance(proxy, CountsAnswers) else None
        if options.max_error_rate is not None and counter is None:
            self._note(f"{proxy.description} does not count answers: only exits and "
                       "unhealthy reports are watched, not --max-error-rate.")
        states = {c.name: self.watches[c.id] for c in self.new}
        assert options.watch is not None
        return watch_release(states, options.watch, counter, options.max_error_rate,
                             self.observer.progress)

    def _drain(self) -> str:
        failpoint("after-switch")
        failpoint("drain")
        timeout = self.plan.options.drain_timeout
        try:
            drained = self.plan.proxy.drain(timeout)
        except Exception as exc:
            drained = self._drain_again(exc, timeout)
        if not drained.complete:
            self._note(f"drain timed out: {drained.detail}; their requests to the old "
                       "containers fail when those stop. Raise --drain-timeout to wait longer.")
        return drained.detail

    def _drain_again(self, failure: Exception, timeout: float) -> Drained:
        """The proxy failed while draining (most often it was restarted): find it again,
        confirm it on the new containers, and drain that one."""
        self._note(f"{self.plan.proxy.description} failed while draining "
                   f"({message_of(failure)}); confirming it on {names(self.new)} again")
        proxy, _ = connect_proxy(self.engine, self.plan.project, self.plan.options, self.new[0])
        proxy.check()
        proxy.switch(self._backends([*self.plan.staying, *self.new]))
        self.plan.proxy = proxy
        return proxy.drain(timeout)

    def _retire(self) -> str:
        for container in self.plan.old:
            if self._command("before-stop"):
                result = self._run_hook("before-stop", container)
                if not result.ok:
                    self._note(f"the {_with_output(result)}; stopping it all the same")
            self.engine.stop(container)
            failpoint("retire")
            self.engine.remove(container.id)
        return f"{names(self.plan.old)} stopped and removed"

    def _after_switch(self, name: str, step: Callable[[], str], doing: str) -> None:
        """Run a phase after the switch: a failure leaves the new version serving, so it
        needs attention (exit 3), never a rollback."""
        try:
            self._phase(name, step)
        except Exception as exc:
            raise self._needs_attention(doing, exc) from exc

    def _needs_attention(self, doing: str, exc: Exception) -> NeedsAttention:
        return NeedsAttention(
            f"the new version serves ({names(self.new)}), but {doing} failed: "
            f"{message_of(exc)}; {self._old_left()}.",
            hint=f"Run `docker-swap recover {self.plan.options.service}` to finish: it "
            "confirms the proxy on the new containers, drains and retires the old ones.",
        )

    def _old_left(self) -> str:
        try:
            found = {c.id for c in self.engine.service_containers(
                self.plan.project.name, self.plan.options.service)}
        except Exception:
            return f"the old container(s) {names(self.plan.old)} may still exist"
        left = [c.name for c in self.plan.old if c.id in found]
        if not left:
            return "nothing of the old version is left"
        return f"the old container(s) {', '.join(left)} still exist, out of the proxy"

    # Rolling back.

    def _roll_back(self, failure: StepFailed) -> NoReturn:
        Undo(self.plan, self.engine, self.new, self._new_containers, self._backends,
                 proxy_touched=self.proxy_touched, proxy_staged=self.proxy_staged).run(failure)

    # Helpers.

    def _phase(self, name: str, step: Callable[[], str]) -> None:
        self.interrupts.check()
        self.observer.phase_started(name)
        started = time.monotonic()
        detail = step()
        result = PhaseResult(name, time.monotonic() - started, detail)
        self.phases.append(result)
        self.observer.phase_finished(result)

    def _command(self, hook: str) -> tuple[str, ...] | None:
        return self.plan.options.hooks.get(hook)

    def _run_hook(self, hook: str, container: Container) -> HookResult:
        argv = self._command(hook)
        assert argv is not None
        self.observer.progress(f"{hook}: {' '.join(argv)} in {container.name}")
        return run_hook(self.engine, hook, argv, container, self.plan.options.hook_timeout)

    def _probe(self, container: Container) -> Probe:
        options = self.plan.options
        if options.health_cmd:
            return CommandProbe(self.engine, container.id, options.health_cmd)
        address = self._address(container)
        if options.http_path:
            return HttpProbe(address, self.plan.port, options.http_path)
        if container.has_healthcheck:
            return DockerHealthProbe(self.watches[container.id])
        return TcpProbe(address, self.plan.port)

    def _backends(self, containers: Sequence[Container]) -> list[Backend]:
        return backends(containers, self.plan.network, self.plan.port)

    def _address(self, container: Container) -> str:
        return address_on(container, self.plan.network)

    def _new_containers(self) -> list[Container]:
        old = {c.id for c in [*self.plan.old, *self.plan.staying]}
        found = self.engine.service_containers(self.plan.project.name, self.plan.options.service)
        return [c for c in found if c.id not in old]

    def _journal(self, phase: str) -> None:
        self.entry = self.entry.at(phase, new=[c.id for c in self.new])
        self.plan.journal.write(self.entry)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self.observer.note(text)

    def _close_watches(self) -> None:
        for watch in self.watches.values():
            watch.close()


def backends(containers: Sequence[Container], network: str, port: int) -> list[Backend]:
    return [Backend(c.id, c.name, address_on(c, network), port) for c in containers]


def address_on(container: Container, network: str) -> str:
    address = container.networks.get(network)
    if not address:
        raise StepFailed(f"{container.name} is not on network {network}, which the proxy uses.")
    return address


def _as_step_failure(exc: Exception) -> StepFailed:
    if isinstance(exc, StepFailed):
        return exc
    if isinstance(exc, SwapError):
        return StepFailed(exc.message, hint=exc.hint)
    return UnexpectedError(f"unexpected error: {exc!r}.")


def _with_output(result: HookResult) -> str:
    lines = result.output.strip().splitlines()
    return result.detail + (f": {lines[-1]}" if lines else "")
