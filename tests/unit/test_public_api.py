from __future__ import annotations

import docker_swap
from docker_swap import errors


def test_all_lists_exactly_the_public_names() -> None:
    assert sorted(docker_swap.__all__) == sorted([*docker_swap._WHERE, "__version__"])
    for name in docker_swap.__all__:
        assert getattr(docker_swap, name) is not None


def test_every_error_is_documented_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, errors.SwapError):
            assert name in tree, name
            assert value.__doc__, name


def test_exit_codes() -> None:
    assert errors.Refused("x").exit_code == 2
    assert errors.DeployFailed(errors.NotReady("x")).exit_code == 1
    assert errors.NeedsAttention("x").exit_code == 3
