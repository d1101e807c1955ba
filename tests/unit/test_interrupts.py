"""Signals during a swap: an interruption before the switch, a note after, never one that
escapes the rollback (real signals, raised in this process's main thread)."""

from __future__ import annotations

import signal
import weakref

import pytest

from docker_swap.errors import Interrupted
from docker_swap.safety.interrupts import Interrupts


def test_a_signal_before_the_switch_interrupts_where_the_swap_is() -> None:
    with Interrupts(print) as interrupts, pytest.raises(Interrupted, match="SIGINT"):
        signal.raise_signal(signal.SIGINT)
    interrupts.defer("rolling back")  # as the swap does once it caught it
    interrupts.check()  # nothing left pending


def test_a_signal_while_a_failure_is_handled_waits_for_the_rollback() -> None:
    notes: list[str] = []
    with Interrupts(notes.append) as interrupts:
        try:
            raise ValueError("the new container crashed")
        except ValueError:
            signal.raise_signal(signal.SIGTERM)  # would escape the rollback if it raised here
            interrupts.defer("rolling back")
    assert notes == ["SIGTERM received: rolling back."]
    interrupts.check()


def test_a_signal_kept_while_an_exception_was_handled_interrupts_at_the_next_step() -> None:
    with Interrupts(print) as interrupts:
        try:
            raise KeyError("handled by a library, which carries on")
        except KeyError:
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(Interrupted, match="SIGINT"):
            interrupts.check()


def test_after_the_switch_signals_are_noted() -> None:
    notes: list[str] = []
    with Interrupts(notes.append) as interrupts:
        interrupts.defer("the new version already serves")
        signal.raise_signal(signal.SIGINT)
    assert notes == ["SIGINT received: the new version already serves."]


def test_a_signal_after_the_switch_stops_the_run_at_its_next_step() -> None:
    # An `up` whose batch is draining when Ctrl-C arrives finishes that batch, then starts
    # no other one (the rollout checks stop_requested before each batch).
    with Interrupts(lambda _: None) as interrupts:
        interrupts.defer("the new version already serves")
        assert not interrupts.stop_requested
        signal.raise_signal(signal.SIGTERM)
    assert interrupts.stop_requested


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interruption_python_dropped_in_a_finalizer_is_raised_at_the_next_step() -> None:
    # A signal that lands while a finalizer runs (garbage collection at that instant): Python
    # prints "Exception ignored in" and drops what the handler raised. The deploy must not
    # carry on as if nothing happened (it once waited out its whole readiness timeout).
    class Resource:
        pass

    with Interrupts(print) as interrupts:
        resource = Resource()
        weakref.finalize(resource, signal.raise_signal, signal.SIGINT)
        del resource  # the finalizer runs here, and its exception is dropped
        with pytest.raises(Interrupted, match="SIGINT"):
            interrupts.check()
        interrupts.defer("rolling back")  # the run answered it: nothing left to raise
        interrupts.check()
