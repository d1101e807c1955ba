"""Point a compose service's proxy at some of its containers, confirmed and drained: what `up`
does after compose started or recreated a service (or its proxy), what `sync` and `recover`
do. One function, through the switchboard, so every one of them leaves out a container that
died and confirms the switch the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from docker_swap.models import Container, Project
from docker_swap.options import DeployOptions
from docker_swap.rollout.switchboard import Switchboard
from docker_swap.targets.compose.batch import ComposeUnits
from docker_swap.targets.compose.preflight import choose_port, connect_proxy

if TYPE_CHECKING:
    from docker_swap.engine import Engine


def switchboard_for(engine: Engine, project: Project, options: DeployOptions,
                    sample: Container, note: Callable[[str], None]) -> Switchboard:
    """The service's proxy, checked, as a switchboard over its containers."""
    driver, network = connect_proxy(engine, project, options, sample)
    for text in driver.check():
        note(text)
    return Switchboard(driver, ComposeUnits(engine, network, choose_port(options, sample)),
                       note)


def point_proxy(engine: Engine, project: Project, options: DeployOptions,
                containers: Sequence[Container], note: Callable[[str], None]) -> str:
    """Send every request of the service to `containers` (those that run), confirmed, and wait
    for what went elsewhere; returns one line on what changed."""
    board = switchboard_for(engine, project, options, containers[0], note)
    return board.point(containers, options.drain_timeout)
