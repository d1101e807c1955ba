"""The one-batch sequence, for every target: start -> ready -> switch -> drain -> retire.

    start          the target starts the new units beside the old ones (compose `up --scale`,
                   a clone of a retired container, the tasks of a Swarm update)
    ready          each new unit is ready (health command, HTTP, HEALTHCHECK, TCP, settle); an
                   exit or an unhealthy report fails at once; the proxy checks the new backends
                   meanwhile and sends them nothing
    before-switch  (a hook) runs in one new unit; nothing moved yet
    switch         the proxy sends every new request to the new units, confirmed live (no
                   proxy: the new units simply count as serving from here on)
    after-switch   (a hook) runs in one new unit
    drain          requests the proxy sent to the old units before the switch finish
    watch          (--watch) the old units wait, running; a failing new one switches back
    retire         (the before-stop hook in each, then) the old units stop with their own
                   grace period and are removed; `up` defers it for a batch that is not the
                   last: the next batch retires them once its new units started

The same sequence replaces a batch of a service (`deploy`, `up`), scales one behind its proxy
(no old units: the extra ones start, get ready, join; no new ones: the extra ones leave the
proxy, drain, retire), restores retired containers in a rollback, and carries a Swarm stack's
traffic from its bridge to its new tasks. Any failure up to and including the switch is undone
(undo.py): the proxy goes back (if it was touched), confirmed, and only then are the new units
removed; the old ones never noticed. After the switch nothing is undone but a new version
failing its watch window: a failure there needs attention (exit 3), never a rollback. The
journal records every phase, so that `docker-swap recover` finishes or undoes a killed batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NoReturn, Protocol

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
from docker_swap.models import names
from docker_swap.observer import Observer, PhaseResult
from docker_swap.options import DeployOptions
from docker_swap.proxy import Drained
from docker_swap.proxy.base import CountsAnswers
from docker_swap.rollout.hooks import HookResult, require, run_hook
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.rollout.undo import Undo
from docker_swap.rollout.watch import watch_release
from docker_swap.rollout.weights import NO_WEIGHING, Split, Weighing
from docker_swap.safety.failpoints import failpoint
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import STARTED, STARTING, SWITCHED, SWITCHING, Entry
from docker_swap.targets.base import Batch, Unit, UnitState
from docker_swap.targets.readiness import raise_if_failed

SERVING_NOTE = "the new version already serves; finishing drain and retire first"


class JournalWriter(Protocol):
    """Where a batch writes its phases (safety.journal.Journal)."""

    def write(self, entry: Entry) -> None: ...

    def clear(self) -> None: ...


@dataclass(frozen=True)
class SwapResult:
    """What a finished batch did."""

    new: tuple[Unit, ...]
    phases: tuple[PhaseResult, ...]
    notes: tuple[str, ...]
    seconds: float


class Swap:
    """One batch of one service; `proxy` is None for a service that no proxy sends to.

    `reconnect` finds the proxy again (and checks it) when it failed while draining (most
    often it was restarted); `hooks` False runs none and `interruptible` False lets no signal
    interrupt it (a rollback's restore: signals are noted, the rollback goes on)."""

    def __init__(self, batch: Batch, options: DeployOptions, proxy: Switchboard | None,
                 journal: JournalWriter, entry: Entry, observer: Observer, interrupts: Interrupts,
                 *, hooks: bool = True, interruptible: bool = True, notes: Sequence[str] = (),
                 reconnect: Callable[[], Switchboard] | None = None,
                 weighing: Weighing = NO_WEIGHING,
                 after_start: Callable[[], None] | None = None,
                 defer_retire: bool = False) -> None:
        self.batch, self.options, self.proxy = batch, options, proxy
        self.weighing = weighing
        self._forward: Split | None = None
        self.journal = journal
        self.entry, self.observer, self.interrupts = entry, observer, interrupts
        self._hooks, self._reconnect, self._interruptible = hooks, reconnect, interruptible
        self.new: list[Unit] = []
        self.states: dict[str, UnitState] = {}
        self.proxy_staged = False
        self.proxy_touched = False
        self.switched = False
        """The new version served (the switch completed), whatever happened after."""
        self.phases: list[PhaseResult] = []
        self.notes: list[str] = list(notes)
        self._after_start, self._defer_retire = after_start, defer_retire
        self.retire_pending = False
        """The old units drained out of the proxy and wait for `retire_deferred` (the next
        batch retires them once its new units started: their stop overlaps its start-up)."""

    def run(self) -> SwapResult:
        started = time.monotonic()
        for note in self.notes:
            self.observer.note(note)
        if self._interruptible:
            self.interrupts.arm("before the switch completed")
        try:
            self._until_switched()
            # The new version serves: a failure from here on is never a rollback (0 or 3),
            # but for a failing new version in the watch window.
            if self._command("after-switch") and self.new:
                self._after_switch("after-switch", self._after_switch_hook, "the hook")
            if self.proxy is not None:
                self._after_switch("drain", self._drain, "draining the old containers")
            self._watch_window()
        finally:
            self._close_states()
        if self.batch.old and self._defer_retire:
            self.retire_pending = True  # the journal stays: recover would retire them
        else:
            if self.batch.old:
                self._after_switch("retire", self._retire, "retiring the old containers")
            self._finally("clearing its journal", self.journal.clear)
        return SwapResult(tuple(self.new), tuple(self.phases), tuple(self.notes),
                          time.monotonic() - started)

    def _until_switched(self) -> None:
        """Start, ready, (the before-switch hook,) switch: any failure is undone."""
        try:
            if self.batch.size:
                self._phase("start", self._start)
                if self._after_start is not None:  # the batch before retires (its own phase)
                    self._after_start()  # while these new units start up
                self._phase("ready", self._ready)
            if self._command("before-switch") and self.new:
                self._phase("before-switch", self._before_switch_hook)
            if self.proxy is not None:
                self._phase("switch", self._switch)  # signals are only noted once it returns
            else:
                self._switched()
        except Exception as exc:
            self.interrupts.defer("rolling back")
            self._undo(as_step_failure(exc))

    def _watch_window(self) -> None:
        """Old units wait, running, out of the proxy; a failing new version (or a signal)
        switches back to them."""
        if not self.options.watch or not self.new or not self._interruptible:
            return  # (a restore has no watch window: it brings back what served)
        self.interrupts.arm("during the watch window")
        try:
            self._phase("watch", self._watch)
        except (ReleaseFailed, Interrupted) as failure:
            self.interrupts.defer("switching back")
            self._undo(failure)
        except Exception as exc:
            raise self.needs_attention("watching the new containers", exc) from exc
        self.interrupts.defer("the watch window passed; retiring the old containers first")

    # The phases, in order.

    def _start(self) -> str:
        self._journal(STARTING)
        self.new = self.batch.start()
        self._journal(STARTED)
        failpoint("after-start")
        if len(self.new) != self.batch.size:
            raise ComposeFailed(f"{len(self.new)} new container(s) of {self.batch.service} "
                                f"started, expected {self.batch.size}.")
        for unit in self.new:
            self.states[unit.id] = self.batch.follow(unit)
        return f"{names(self.new)} started"

    def _ready(self) -> str:
        deadline = time.monotonic() + self.options.timeout
        if self.proxy is not None:  # will the proxy take them? (No traffic moves.)
            self.proxy_staged = True  # before: a stage cut short is undone too
            self.proxy.stage(self.new, [*self.batch.old, *self.batch.staying])
        failpoint("ready")
        return self.batch.ready(self.new, self.states, deadline, self._progress)

    def _switch(self) -> str:
        assert self.proxy is not None
        for unit in self.new:
            raise_if_failed(self.states[unit.id], unit.name)
        self._forward = self.weighing.forward_split([u.id for u in self.new],
                                                    len(self.batch.staying))
        back = self.weighing.back
        self.entry = replace(self.entry, forward=self._forward.data() if self._forward else None,
                             back=back.data() if back else None)
        self._journal(SWITCHING)
        self.proxy_touched = True
        detail = self.proxy.switch([*self.batch.staying, *self.new], self._forward)
        self._switched()
        return detail

    def _switched(self) -> None:
        # The new version serves: a signal from here on cannot undo the batch, only be noted.
        self.interrupts.defer(SERVING_NOTE)
        self.switched = True
        self._journal(SWITCHED)

    def _before_switch_hook(self) -> str:
        return require(self._run_hook("before-switch", self.new[:1])[0])

    def _after_switch_hook(self) -> str:
        result = self._run_hook("after-switch", self.new[:1])[0]
        if not result.ok:
            self.note(f"the {result.said}")
        return result.detail

    def _drain(self) -> str:
        assert self.proxy is not None
        failpoint("after-switch")
        failpoint("drain")
        timeout = self.options.drain_timeout
        try:
            drained = self.proxy.drain(timeout)
        except Exception as exc:
            drained = self._drain_again(exc, timeout)
        if not drained.complete:
            self.note(f"drain timed out: {drained.detail}; their requests to the old "
                      "containers fail when those stop. Raise --drain-timeout to wait longer.")
        return drained.detail

    def _drain_again(self, failure: Exception, timeout: float) -> Drained:
        """The proxy failed while draining (most often it was restarted): find it again,
        confirm it on the new units, and drain that one."""
        assert self.proxy is not None
        if self._reconnect is None:
            raise failure
        self.note(f"{self.proxy.description} failed while draining ({message_of(failure)}); "
                  f"confirming it on {names(self.new) or 'the containers that stay'} again")
        self.proxy = self._reconnect()
        self.proxy.switch([*self.batch.staying, *self.new], self._forward)
        return self.proxy.drain(timeout)

    def _watch(self) -> str:
        assert self.options.watch is not None
        driver = self.proxy.driver if self.proxy is not None else None
        counter = driver if isinstance(driver, CountsAnswers) and (
            self.options.max_error_rate is None or driver.answers() is not None) else None
        if self.options.max_error_rate is not None and counter is None:
            self.note(f"{driver.description if driver else 'no proxy'} does not count "
                      "answers: only exits and unhealthy reports are watched, not "
                      "--max-error-rate.")
        states = {u.name: self.states[u.id] for u in self.new}
        return watch_release(states, self.options.watch, counter, self.options.max_error_rate,
                             self._progress)

    def _retire(self) -> str:
        old = list(self.batch.old)
        argv = self._command("before-stop")
        if argv:
            self.observer.progress(f"before-stop: {' '.join(argv)} in {names(old)}")
            for result in run_hook(self.batch, "before-stop", argv, old,
                                   self.options.hook_timeout):
                if not result.ok:
                    self.note(f"the {result.said}; stopping it all the same")
        return self.batch.retire(old)

    def retire_deferred(self, *, clear_journal: bool) -> None:
        """Retire the old units left by `defer_retire`; the journal is cleared only when no
        later batch wrote its own. A signal is not obeyed here: it is noted, and the batch
        that runs meanwhile (if any) answers it."""
        if not self.retire_pending:
            return
        self.retire_pending = False
        self._after_switch("retire", self._retire, "retiring the old containers", check=False)
        if clear_journal:
            self._finally("clearing its journal", self.journal.clear)

    # After the switch: nothing becomes a rollback.

    def _after_switch(self, name: str, step: Callable[[], str], doing: str, *,
                      check: bool = True) -> None:
        """Run a phase after the switch: a failure leaves the new version serving, so it
        needs attention (exit 3), never a rollback."""
        try:
            self._phase(name, step, check=check)
        except Exception as exc:
            raise self.needs_attention(doing, exc) from exc

    def _finally(self, doing: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:
            raise self.needs_attention(doing, exc) from exc

    def needs_attention(self, doing: str, exc: BaseException) -> NeedsAttention:
        return NeedsAttention(
            f"the new version serves ({names(self.new) or 'the containers that stay'}), but "
            f"{doing} failed: {message_of(exc)}; {self._old_left()}.",
            hint=f"Run `docker-swap recover {self.batch.service}` to finish: it confirms the "
            "proxy on the new containers, drains and retires the old ones.",
        )

    def _old_left(self) -> str:
        if not self.batch.old:
            return "no old container was to be retired"
        try:
            left = self.batch.alive(self.batch.old)
        except Exception:
            return f"the old container(s) {names(self.batch.old)} may still run"
        if not left:
            return "nothing of the old version runs any more"
        return f"the old container(s) {names(left)} still run, out of the proxy"

    # Undoing.

    def _undo(self, failure: StepFailed) -> NoReturn:
        Undo(self).run(failure)

    # Helpers.

    def _phase(self, name: str, step: Callable[[], str], *, check: bool = True) -> None:
        if check:
            self.interrupts.check()
        self.observer.phase_started(name)
        started = time.monotonic()
        detail = step()
        result = PhaseResult(name, time.monotonic() - started, detail)
        self.phases.append(result)
        self.observer.phase_finished(result)

    def _progress(self, text: str) -> None:
        self.interrupts.check()
        self.observer.progress(text)

    def _command(self, hook: str) -> tuple[str, ...] | None:
        return self.options.hooks.get(hook) if self._hooks else None

    def _run_hook(self, hook: str, units: Sequence[Unit]) -> list[HookResult]:
        argv = self._command(hook)
        assert argv is not None
        self.observer.progress(f"{hook}: {' '.join(argv)} in {names(units)}")
        return run_hook(self.batch, hook, argv, units, self.options.hook_timeout)

    def journal_at(self, phase: str) -> None:
        """Record a phase of this batch (the undo records its own)."""
        self._journal(phase)

    def _journal(self, phase: str) -> None:
        self.entry = self.entry.at(phase, new=[u.id for u in self.new])
        self.journal.write(self.entry)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.observer.note(text)

    def _close_states(self) -> None:
        for state in self.states.values():
            state.close()


def as_step_failure(exc: BaseException) -> StepFailed:
    """What undoes a batch: the failure itself, or one that stands for it."""
    if isinstance(exc, StepFailed):
        return exc
    if isinstance(exc, SwapError):
        return StepFailed(exc.message, hint=exc.hint)
    return UnexpectedError(f"unexpected error: {exc!r}.")
