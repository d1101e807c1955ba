"""One changed service of a compose project, batch by batch, as deploy.update_config says.

    for each batch of `parallelism` replicas:
        the one-batch sequence (swap.py): behind a proxy a swap, without one a replace; the
                 old containers of the batch before (out of the proxy, drained) retire once
                 this batch's new ones started, so that their stop overlaps its start-up
        monitor: the new containers must keep running (and healthy) for `monitor` seconds; if
                 one does not, the batch is undone: its retired containers come back from
                 their saved definitions and the proxy goes to them, confirmed
        delay before the next batch

A failed batch never serves (its sequence, or its monitor, undid it). Failures are counted in
containers, as compose and Swarm count them: while the failed share of the replicas stays
within max_failure_ratio the rollout goes on and the service ends done. Beyond it,
failure_action applies: `rollback` brings every batch done back to the old version
(rollback_config: parallelism, delay, order, monitor, and its own failure_action and
max_failure_ratio for a rollback batch that fails), `pause` stops there (exit 3: some replicas
run the new version, the others the old, all serve), `continue` goes on with the next batch and
ends as needing attention too, once every batch ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from docker_swap.compose import Compose
from docker_swap.errors import (
    DeployFailed,
    Interrupted,
    NeedsAttention,
    StepFailed,
    SwapError,
)
from docker_swap.models import Container, names
from docker_swap.observer import Observer
from docker_swap.releases.record import UP
from docker_swap.rollout.batch import compose_swap
from docker_swap.rollout.outcomes import (
    DONE,
    FAILED,
    NEEDS_ATTENTION,
    PAUSED,
    ROLLED_BACK,
    BatchResult,
)
from docker_swap.rollout.swap import Swap
from docker_swap.rollout.weights import Split, Weighing
from docker_swap.safety.interrupts import Interrupts
from docker_swap.targets.compose.batch import Restorer, Starter
from docker_swap.targets.compose.plan import ServicePlan, UpdateConfig
from docker_swap.targets.compose.preflight import Plan
from docker_swap.targets.readiness import raise_if_failed

if TYPE_CHECKING:
    from docker_swap.engine import Engine

ObserverFor = Callable[[str], Observer]
"""An observer for one batch, given its label (`2/3`, `rollback 1/2`)."""


@dataclass
class RolloutResult:
    outcome: str
    """done, rolled_back, paused, or needs_attention."""
    batches: list[BatchResult]
    detail: str
    error: SwapError | None = None


@dataclass
class _Done:
    result: BatchResult
    new: list[Container]
    definitions: list[dict[str, Any]]
    """How to create the batch's retired containers again."""


@dataclass
class _Count:
    failed: int = 0
    """Containers of failed batches."""
    errors: list[str] = field(default_factory=list)


class Rollout:
    """Runs one swap or replace service; `plan` is its preflight."""

    def __init__(self, service: ServicePlan, engine: Engine, compose: Compose, plan: Plan,
                 observer_for: ObserverFor, interrupts: Interrupts, *, kind: str = UP,
                 canary: Split | None = None) -> None:
        self.service, self.engine, self.compose = service, engine, compose
        self.plan, self.observer_for, self.interrupts = plan, observer_for, interrupts
        self.kind = kind
        self.canary = canary
        """A canary being promoted: its weights are what the first batch's undo, and every
        restore of a rollback, come back to."""
        self.serving: list[Container] = list(service.running)
        """Every container of the service that serves now, old and new."""
        self.done: list[_Done] = []
        self.interrupted = False
        """A signal stopped a batch: `up` goes no further."""
        self._notes_shown = False
        self.attempted: list[Container] = []
        """Every new container a batch started, served or not (what a failed release ran)."""
        self._leaving: tuple[Swap, BatchResult] | None = None
        """A batch done whose old containers, drained out of the proxy, wait to retire until
        the next batch's new ones have started (their stop overlaps that start-up)."""
        self._leaving_failed: NeedsAttention | None = None

    @property
    def new_serving(self) -> list[Container]:
        """The new containers that serve now (what the release runs)."""
        new = {c.id for done in self.done for c in done.new}
        return [c for c in self.serving if c.id in new]

    def run(self) -> RolloutResult:
        results: list[BatchResult] = []
        try:
            return self._run(results)
        except NeedsAttention as attention:  # a batch that served, then could not finish
            return RolloutResult(NEEDS_ATTENTION, results, attention.message, attention)

    def _run(self, results: list[BatchResult]) -> RolloutResult:
        update, sizes = self.service.update, self.service.batches
        old = list(self.service.stale)  # (those that run the current definition stay)
        extra = max(len(old) - self.service.to_start, 0)  # more run than the file asks for
        count = _Count()
        for number, size in enumerate(sizes, start=1):
            if self.interrupts.stop_requested:
                self.interrupted = True
                return self._after_failure(_stopped(update), results, count)
            if number > 1 and update.delay:
                time.sleep(update.delay)
            batch_old = old[:size + (extra if number == len(sizes) else 0)]
            result = self._batch(number, f"{number}/{len(sizes)}", size, batch_old,
                                 last=number == len(sizes))
            results.append(result)
            old = [c for c in old if c.id in {s.id for s in self.serving}]
            if result.outcome == DONE:
                continue
            count.failed += size or len(batch_old)  # (a batch that only retires old ones)
            count.errors.append(result.error)
            if self.interrupted:  # Ctrl-C or SIGTERM: no next batch
                return self._after_failure(_stopped(update), results, count)
            if count.failed / self.service.replicas <= update.max_failure_ratio:
                continue
            if update.failure_action != "continue":
                return self._after_failure(update.failure_action, results, count)
        return self._ended(results, count)

    def _ended(self, results: list[BatchResult], count: _Count) -> RolloutResult:
        self._retire_leaving(clear_journal=True)
        serving = f"{self.service.name} runs {names(self.serving)}"
        if not count.failed:
            return RolloutResult(DONE, results, serving)
        failed = sum(r.outcome == FAILED for r in results)
        if count.failed / self.service.replicas <= self.service.update.max_failure_ratio:
            return RolloutResult(DONE, results, f"{serving}; {failed} of {len(results)} "
                                 "batch(es) failed and were undone, within max_failure_ratio")
        return self._paused(results, count, "continued past failed batches")  # continue

    def _batch(self, number: int, label: str, size: int, old: Sequence[Container], *,
               last: bool) -> BatchResult:
        started = time.monotonic()
        staying = _without(self.serving, old)
        definitions = [self.engine.definition_of(c.id) for c in old]
        # Its old containers retire during the next batch's start-up, unless the monitor
        # watches this batch first (a failed monitor brings them back from `definitions`).
        defer = not last and not self.service.update.monitor and self.plan.proxy is not None
        swap = self._batch_swap(old, staying, size, self.compose, label, first=number == 1,
                                defer_retire=defer)
        try:
            new = self._run_swap(swap)
        except NeedsAttention:
            # It may serve (anything after its switch needs attention, never a rollback):
            # what it started and what is left count, and the rollout stops here.
            self.serving = [*staying, *_containers(swap.batch.alive([*old, *swap.new]))]
            self.done.append(_Done(BatchResult(number, size, NEEDS_ATTENTION, 0.0),
                                   _containers(swap.new), definitions))
            raise
        except DeployFailed as exc:  # undone by its sequence: the old containers serve
            if self._leaving_failed is not None:  # the previous batch's could not retire
                raise self._leaving_failed from exc
            self.interrupted = isinstance(exc.cause, Interrupted) or \
                self.interrupts.stop_requested
            return BatchResult(number, size, FAILED, time.monotonic() - started,
                               [c.name for c in old], error=exc.message,
                               phases=list(swap.phases))
        self.serving = [*staying, *new]
        result = BatchResult(number, size, DONE, time.monotonic() - started,
                             [c.name for c in old], [c.name for c in new],
                             phases=list(swap.phases))
        if swap.retire_pending:
            self._leaving = (swap, result)
        try:
            self._monitor(new, self.service.update.monitor)
        except StepFailed as failure:  # it served: take it out, bring its old ones back
            self._undo_monitored(label, new, definitions, failure)
            result.outcome, result.error = FAILED, failure.message
            result.seconds = time.monotonic() - started
            return result
        self.done.append(_Done(result, new, definitions))
        return result

    def _undo_monitored(self, label: str, new: list[Container],
                        definitions: list[dict[str, Any]], failure: StepFailed) -> None:
        """A batch whose new containers failed their monitor: its retired containers come
        back and the proxy goes to them (a rollback of this batch alone), so that it never
        counts as serving. If that cannot finish, the service needs attention."""
        try:
            self._restore(new, definitions, f"{label} undo")
        except SwapError as exc:
            raise NeedsAttention(
                f"{self.service.name}: {failure.message} Undoing the batch failed: "
                f"{exc.message}", hint=f"Run `docker-swap recover {self.service.name}`, then "
                "`docker-swap up` again.") from exc

    def _batch_swap(self, old: Sequence[Container], staying: Sequence[Container], size: int,
                    starter: Starter, label: str, *, restore: bool = False,
                    first: bool = False, defer_retire: bool = False) -> Swap:
        """One batch; a restore (a rollback's) runs no hooks, and no signal interrupts it. The
        previous batch's old containers, if they wait to retire, do so once it has started."""
        weighing = Weighing(forward=self.canary) if restore else \
            Weighing(back=self.canary if first else None)
        leaving = _containers(self._leaving[0].batch.old) if self._leaving and not restore \
            else []
        swap = compose_swap(self.plan, self.engine, starter, self.observer_for(label),
                            self.interrupts, old=old, staying=staying, size=size,
                            kind=self.kind, label=label, hooks=not restore,
                            interruptible=not restore,
                            notes=[] if self._notes_shown else self.plan.notes,
                            weighing=weighing, leaving=leaving,
                            after_start=self._retire_leaving_started if leaving else None,
                            defer_retire=defer_retire)
        self._notes_shown = True
        return swap

    def _retire_leaving_started(self) -> None:
        """(Called by the next batch once its new containers started.)"""
        try:
            self._retire_leaving(clear_journal=False)  # the running batch's journal lists them
        except NeedsAttention as exc:
            self._leaving_failed = exc
            raise

    def _retire_leaving(self, *, clear_journal: bool) -> None:
        """The old containers of the batch before, drained out of the proxy, retire now; its
        result shows the retire among its phases."""
        leaving, self._leaving = self._leaving, None
        if leaving is None:
            return
        swap, result = leaving
        try:
            swap.retire_deferred(clear_journal=clear_journal)
        finally:
            result.phases = list(swap.phases)

    def _run_swap(self, swap: Swap, *, restore: bool = False) -> list[Container]:
        try:
            return _containers(swap.run().new)
        finally:
            if not restore:  # a restore brings back the old version
                self.attempted += [c for c in _containers(swap.new) if c not in self.attempted]

    def _swap(self, old: Sequence[Container], staying: Sequence[Container], size: int,
              starter: Starter, label: str, *, restore: bool = False) -> list[Container]:
        return self._run_swap(self._batch_swap(old, staying, size, starter, label,
                                               restore=restore), restore=restore)

    def _monitor(self, new: Sequence[Container], seconds: float) -> None:
        if not seconds or not new:
            return
        watches = [self.engine.watch(c.id) for c in new]
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for container, watch in zip(new, watches, strict=True):
                    raise_if_failed(watch, container.name)
                time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
        finally:
            for watch in watches:
                watch.close()

    # After a failure: failure_action.

    def _after_failure(self, action: str, results: list[BatchResult],
                       count: _Count) -> RolloutResult:
        self._retire_leaving(clear_journal=True)  # before a restore takes their names
        error = count.errors[-1] if count.errors else "up was stopped"
        if action == "pause":
            return self._paused(results, count, "paused after a failed batch")
        try:
            self._roll_back(self.service.rollback)
        except SwapError as exc:
            return RolloutResult(
                NEEDS_ATTENTION, results, f"rolling back failed: {exc.message}",
                NeedsAttention(f"{self.service.name}: {error} Rolling back did not finish: "
                               f"{exc.message}", hint=exc.hint or "Run `docker-swap up` again "
                               "once that is fixed."))
        for done in self.done:
            done.result.outcome = ROLLED_BACK
        return RolloutResult(ROLLED_BACK, results, f"rolled back: {names(self.serving)} run "
                             "the old version", StepFailed(f"{self.service.name}: {error}"))

    def _paused(self, results: list[BatchResult], count: _Count, why: str) -> RolloutResult:
        serving = {c.id for c in self.serving}
        new = [c.name for d in self.done for c in d.new if c.id in serving]
        old = [c.name for c in self.serving if c.name not in new]
        return RolloutResult(
            PAUSED, results,
            f"{why}: {len(new)} container(s) run the new version ({', '.join(new) or 'none'}), "
            f"{len(old)} the old one ({', '.join(old) or 'none'}); all of them serve",
            NeedsAttention(f"{self.service.name}: {count.errors[-1] if count.errors else why}",
                           hint="Fix it, then run `docker-swap up` again to finish."))

    def _roll_back(self, config: UpdateConfig) -> None:
        """Every batch done, newest first, back to the old version, `parallelism` containers
        at a time (all at once for 0), with rollback_config's delay, order and monitor; a
        failed rollback batch pauses the rollback, or is passed while within its own
        max_failure_ratio (or with failure_action continue)."""
        new = [c for done in reversed(self.done) for c in done.new]
        definitions = [d for done in reversed(self.done) for d in done.definitions]
        if not definitions:
            return  # no batch was done: nothing to bring back
        # Unset, it follows update_config's: a rollback never runs more at once than the update.
        parallelism = config.parallelism if config.parallelism_set else \
            self.service.update.parallelism
        step = parallelism or len(definitions)
        failed = 0
        for number, at in enumerate(range(0, len(definitions), step), start=1):
            if number > 1 and config.delay:
                time.sleep(config.delay)
            last = at + step >= len(definitions)
            batch_new = new[at:at + step] if not last else new[at:]
            label = f"rollback {number}/{-(-len(definitions) // step)}"
            try:
                back = self._restore(batch_new, definitions[at:at + step], label,
                                     stop_first=config.order == "stop-first")
                self._monitor(back, config.monitor)
            except SwapError as exc:
                failed += len(batch_new)
                if failed / max(len(definitions), 1) > config.max_failure_ratio and \
                        config.failure_action != "continue":  # pause (Swarm's default)
                    raise NeedsAttention(f"rollback batch {number} failed: {exc.message}",
                                         hint=f"Run `docker-swap up {self.service.name}` "
                                         "once the cause is fixed.") from exc
        if failed:
            raise NeedsAttention(f"{failed} container(s) could not be rolled back.",
                                 hint=f"Run `docker-swap up {self.service.name}` once the "
                                 "cause is fixed.")

    def _restore(self, new: Sequence[Container], definitions: Sequence[dict[str, Any]],
                 label: str, *, stop_first: bool = False) -> list[Container]:
        """`new` out, the retired containers of `definitions` back (start-first: beside
        them, then the proxy moves; stop-first: `new` leave the proxy and stop first)."""
        restorer = Restorer(self.engine, definitions)
        if stop_first:
            staying = _without(self.serving, new)
            self._swap(new, staying, 0, restorer, f"{label} stop", restore=True)
            self.serving = staying
            back = self._swap([], staying, len(definitions), restorer, label, restore=True)
        else:
            staying = _without(self.serving, new)
            back = self._swap(new, staying, len(definitions), restorer, label, restore=True)
        self.serving = [*staying, *back]
        return back


def _containers(units: Sequence[object]) -> list[Container]:
    return [u for u in units if isinstance(u, Container)]


def _stopped(update: UpdateConfig) -> str:
    """What a stop (a signal) does: continue means pause here; the others as they say."""
    return "pause" if update.failure_action == "continue" else update.failure_action


def _without(containers: Sequence[Container], removed: Sequence[Container]) -> list[Container]:
    ids = {c.id for c in removed}
    return [c for c in containers if c.id not in ids]
