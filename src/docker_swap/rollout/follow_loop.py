"""`docker-swap autoupdate` without --once: one check per interval until stopped.

A check that could not ask a registry (it did not answer, or refused) is logged in one line and
tried again sooner, with a backoff that doubles from 5 s up to the interval; so is a check that
could not start at all (the engine or compose not answering). Ctrl-C or SIGTERM between
checks stops at once (exit 0); during an update, `up` finishes the step it is in (a batch
before its switch is undone), starts nothing more, and the loop stops with that update's exit
code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from docker_swap.errors import EXIT_OK, SwapError, message_of
from docker_swap.options import ComposeOptions, VerifyOptions
from docker_swap.rollout.autoupdate import FollowObserver, check_once
from docker_swap.safety.interrupts import Interrupts

FIRST_BACKOFF = 5.0
_TICK = 0.2


def follow(services: Sequence[str], interval: float, *,
           compose_options: ComposeOptions | None = None,
           flags: Mapping[str, object | None] | None = None, observer: FollowObserver,
           verify: VerifyOptions | None = None) -> int:
    """Check every `interval` seconds until a signal stops it; the exit code."""
    backoff = FIRST_BACKOFF
    with Interrupts(observer.note) as interrupts:
        interrupts.hold("autoupdate finishes the update in progress, then stops")
        while not interrupts.stop_requested:
            try:
                result = check_once(services, compose_options=compose_options, flags=flags,
                                    observer=observer, verify=verify, interrupts=interrupts)
                failed = bool(result.errors)
                if interrupts.stop_requested and result.ended:
                    return result.exit_code  # the update the signal cut short
            except SwapError as error:  # the engine, compose or the project did not answer
                observer.note(f"the check could not run: {message_of(error)}; trying again "
                              f"in {backoff:g}s.")
                failed = True
            interrupts.hold("autoupdate finishes the update in progress, then stops")
            wait = min(backoff, interval) if failed else interval
            backoff = min(backoff * 2, interval) if failed else FIRST_BACKOFF
            _sleep(wait, interrupts)
    return EXIT_OK


def _sleep(seconds: float, interrupts: Interrupts) -> None:
    deadline = time.monotonic() + seconds
    while not interrupts.stop_requested and time.monotonic() < deadline:
        time.sleep(min(_TICK, max(deadline - time.monotonic(), 0)))
