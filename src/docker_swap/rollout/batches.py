"""One changed service, batch by batch, with its update_config and failure_action.

    for each batch of `parallelism` replicas:
        swap (behind a proxy: the swap sequence of swap.py on this batch) or replace (no proxy)
        monitor: the new containers must keep running (and healthy) for `monitor` seconds
        delay before the next batch

A batch that fails was already undone by its sequence (its old containers never stopped). What
happens next is the failure_action, once more than max_failure_ratio of the batches failed:
`rollback` brings every batch already done back to the old version (batch by batch per
rollback_config: the retired containers are created again from their saved definitions, get
ready, the proxy switches to them, the new ones retire), `pause` stops there (some replicas
new, the others old, all serving), `continue` goes on with the next batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from docker_swap.compose import Compose
from docker_swap.errors import DeployFailed, Interrupted, NeedsAttention, StepFailed, SwapError
from docker_swap.models import Container
from docker_swap.observer import Observer
from docker_swap.options import ComposeOptions
from docker_swap.rollout.readiness import raise_if_failed
from docker_swap.rollout.replace import replace_batch
from docker_swap.rollout.sequence import Swap
from docker_swap.targets.compose.plan import ServicePlan, UpdateConfig, batch_sizes
from docker_swap.targets.compose.preflight import Plan

if TYPE_CHECKING:
    from docker_swap.engine import Engine

DONE, ROLLED_BACK, PAUSED, FAILED = "done", "rolled_back", "paused", "failed"


@dataclass
class BatchResult:
    number: int
    size: int
    outcome: str
    """done, failed (undone by its sequence), or rolled_back (done, then undone)."""
    seconds: float
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class RolloutResult:
    outcome: str
    """done, rolled_back, paused, or failed (failure_action continue: some batches failed)."""
    batches: list[BatchResult]
    detail: str
    error: SwapError | None = None


@dataclass
class _Done:
    result: BatchResult
    new: list[Container]
    definitions: list[dict[str, Any]]
    """How to create the batch's retired containers again."""


ObserverFor = Callable[[str], Observer]
"""An observer for one batch, given its label (`2/3`, `rollback 1/2`)."""


class Rollout:
    """Runs one swap or replace service; `plan` is its preflight (swap only, else None)."""

    def __init__(self, service: ServicePlan, engine: Engine, compose: Compose,
                 prepared: Plan | None, observer_for: ObserverFor) -> None:
        assert service.options is not None
        self.service, self.engine, self.compose = service, engine, compose
        self.prepared, self.observer_for = prepared, observer_for
        self.options = service.options
        self.serving: list[Container] = list(service.running)
        """Every container the service runs now, old and new."""
        self.done: list[_Done] = []
        self.interrupted = False
        """A signal stopped a batch: `up` goes no further."""

    def run(self) -> RolloutResult:
        update = self.service.update
        sizes = self.service.batches
        old = list(self.service.running)
        extra = max(len(old) - self.service.replicas, 0)  # more run than the file asks for
        results: list[BatchResult] = []
        failures = 0
        for number, size in enumerate(sizes, start=1):
            if number > 1 and update.delay:
                time.sleep(update.delay)
            batch_old = old[:size + (extra if number == len(sizes) else 0)]
            label = f"{number}/{len(sizes)}"
            result = self._batch(number, label, size, batch_old)
            results.append(result)
            serving = {c.id for c in self.serving}
            old = [c for c in old if c.id in serving]  # a batch that switched retired its own
            if result.outcome == DONE:
                continue
            failures += 1
            if self.interrupted:  # Ctrl-C or SIGTERM: no next batch; continue means pause here
                action = "pause" if update.failure_action == "continue" else update.failure_action
                return self._after_failure(action, results)
            if failures / len(sizes) <= update.max_failure_ratio or \
                    update.failure_action == "continue":
                continue
            return self._after_failure(update.failure_action, results)
        if failures:
            return RolloutResult(FAILED, results, f"{failures} of {len(sizes)} batch(es) failed "
                                 "and were undone; the others run the new version")
        return RolloutResult(DONE, results, f"{self.service.name} runs "
                             f"{', '.join(c.name for c in self.serving)}")

    def _batch(self, number: int, label: str, size: int,
               old: Sequence[Container]) -> BatchResult:
        started = time.monotonic()
        staying = _without(self.serving, old)
        definitions = [self.engine.definition_of(c.id) for c in old]
        try:
            new = self._one_batch(old, staying, size, self.compose, label)
            self._monitor(new, self.service.update.monitor)
        except DeployFailed as exc:
            self.interrupted = isinstance(exc.cause, Interrupted)
            return BatchResult(number, size, FAILED, time.monotonic() - started,
                               [c.name for c in old], error=exc.message)
        except StepFailed as exc:  # monitor: the batch serves, so it counts as done and failed
            self._keep(number, size, started, old, new, definitions)
            self.done[-1].result.outcome = FAILED
            self.done[-1].result.error = exc.message
            return self.done[-1].result
        return self._keep(number, size, started, old, new, definitions)

    def _keep(self, number: int, size: int, started: float, old: Sequence[Container],
              new: list[Container], definitions: list[dict[str, Any]]) -> BatchResult:
        self.serving = [*_without(self.serving, old), *new]
        result = BatchResult(number, size, DONE, time.monotonic() - started,
                             [c.name for c in old], [c.name for c in new])
        self.done.append(_Done(result, new, definitions))
        return result

    def _one_batch(self, old: Sequence[Container], staying: Sequence[Container], size: int,
                   compose: Compose, label: str) -> list[Container]:
        observer = self.observer_for(label)
        if self.prepared is None:
            return replace_batch(self.engine, compose, self.options, old, staying, size,
                                 observer)
        plan = replace(self.prepared, old=list(old), staying=list(staying), batch_size=size,
                       notes=self.prepared.notes if not self.done else [])
        swap = Swap(plan, self.engine, compose, observer)
        swap.run()
        return swap.new

    def _monitor(self, new: Sequence[Container], seconds: float) -> None:
        if not seconds:
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

    def _after_failure(self, action: str, results: list[BatchResult]) -> RolloutResult:
        error = next(r.error for r in reversed(results) if r.outcome == FAILED)
        if action == "pause":
            serving = {c.id for c in self.serving}
            new = [c.name for d in self.done for c in d.new if c.id in serving]
            old = [c.name for c in self.serving if c.name not in new]
            return RolloutResult(
                PAUSED, results,
                f"paused after a failed batch: {len(new)} container(s) run the new version "
                f"({', '.join(new) or 'none'}), {len(old)} the old one ({', '.join(old) or 'none'})"
                "; all of them serve",
                NeedsAttention(f"{self.service.name}: {error}",
                               hint="Fix it, then run `docker-swap up` again to finish."))
        try:
            self._roll_back(self.service.rollback)
        except SwapError as exc:
            return RolloutResult(FAILED, results, f"rolling back failed: {exc.message}",
                                 NeedsAttention(f"{self.service.name}: {error} Rolling back "
                                                f"did not finish: {exc.message}"))
        for done in self.done:
            done.result.outcome = ROLLED_BACK
        return RolloutResult(ROLLED_BACK, results,
                             f"rolled back: {', '.join(c.name for c in self.serving)} run the "
                             "old version", StepFailed(f"{self.service.name}: {error}"))

    def _roll_back(self, config: UpdateConfig) -> None:
        """Every batch done, newest first, back to the old version (rollback_config)."""
        pending = [(d.new, d.definitions) for d in reversed(self.done)]
        new = [c for group, _ in pending for c in group]
        definitions = [d for _, group in pending for d in group]
        sizes = batch_sizes(len(new), config.parallelism)
        for number, size in enumerate(sizes, start=1):
            if number > 1 and config.delay:
                time.sleep(config.delay)
            batch_new, new = new[:size], new[size:]
            batch_defs, definitions = definitions[:size], definitions[size:]
            staying = _without(self.serving, batch_new)
            restorer = Restorer(self.engine, batch_defs)
            back = self._one_batch(batch_new, staying, len(batch_defs), restorer,
                                   f"rollback {number}/{len(sizes)}")
            self.serving = [*staying, *back]


class Restorer(Compose):
    """Starts containers again from the definitions of retired ones (same name, image ID,
    labels and settings), where the sequence would have compose start new ones."""

    def __init__(self, engine: Engine, definitions: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(ComposeOptions())
        self._engine, self._definitions = engine, list(definitions)

    def scale_up(self, service: str, replicas: int) -> None:
        for definition in self._definitions:
            self._engine.clone(definition)


def _without(containers: Sequence[Container], removed: Sequence[Container]) -> list[Container]:
    ids = {c.id for c in removed}
    return [c for c in containers if c.id not in ids]
