"""One batch of a checked compose service as the one-batch sequence (swap.py) runs it: the
target's batch of containers, its journal entry, its switchboard, and how the proxy is found
again if it fails while draining. Every command that changes containers of a compose service
(deploy, up's batches, scale and restores, a canary's start, promote, abort) builds it here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from docker_swap.models import Container
from docker_swap.observer import Observer
from docker_swap.rollout.swap import Swap
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.rollout.weights import NO_WEIGHING, Weighing
from docker_swap.safety.interrupts import Interrupts
from docker_swap.safety.journal import STARTING, Entry
from docker_swap.targets.compose.batch import ComposeBatch, Starter
from docker_swap.targets.compose.preflight import Plan, connect_proxy

if TYPE_CHECKING:
    from docker_swap.engine import Engine


def compose_swap(plan: Plan, engine: Engine, starter: Starter, observer: Observer,
                 interrupts: Interrupts, *, old: Sequence[Container],
                 staying: Sequence[Container], size: int, kind: str, label: str = "",
                 rollback_to: int | None = None, hooks: bool = True,
                 interruptible: bool = True, notes: Sequence[str] | None = None,
                 weighing: Weighing = NO_WEIGHING, leaving: Sequence[Container] = (),
                 after_start: Callable[[], None] | None = None,
                 defer_retire: bool = False) -> Swap:
    """One batch of a checked compose service (its preflight `plan`) as the sequence runs it;
    `leaving` and `after_start`: the previous batch's old containers, retired by `after_start`
    once this batch's have started; `defer_retire`: this batch's old ones are left so."""
    batch = ComposeBatch(engine, starter, plan.project.name, plan.options, old=old,
                         staying=staying, size=size, network=plan.network, port=plan.port,
                         proxied=plan.proxy is not None, leaving=leaving)
    entry = Entry(plan.project.name, plan.options.service, STARTING, old=[c.id for c in old],
                  staying=[c.id for c in staying], leaving=[c.id for c in leaving],
                  kind=kind, batch=label,
                  rollback_to=rollback_to, share=str(weighing.share or ""))
    switchboard = None if plan.proxy is None else Switchboard(plan.proxy, batch, observer.note)

    def reconnect() -> Switchboard:
        sample = next(iter([*staying, *old]), None) or batch.started()[0]
        driver, _ = connect_proxy(engine, plan.project, plan.options, sample)  # type: ignore[arg-type]
        driver.check()
        return Switchboard(driver, batch, observer.note)

    return Swap(batch, plan.options, switchboard, plan.journal, entry, observer, interrupts,
                hooks=hooks, interruptible=interruptible,
                notes=plan.notes if notes is None else notes, reconnect=reconnect,
                weighing=weighing, after_start=after_start, defer_retire=defer_retire)
