"""docker-swap: replace the running containers of a compose service without failing a request.

The names below load on first use, so that the command's fast paths (the Docker CLI plugin
metadata, `--version`) do not pay for the Docker SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from docker_swap._version import __version__

if TYPE_CHECKING:
    from docker_swap.errors import (
        CanaryConflict,
        ComposeFailed,
        ComposeUnavailable,
        ContainerExited,
        ContainerUnhealthy,
        DeployFailed,
        DeployInProgress,
        EngineFailed,
        EngineUnreachable,
        HookFailed,
        Interrupted,
        InvalidSettings,
        NeedsAttention,
        NotReady,
        NotSwappable,
        ProxyConfigInvalid,
        ProxyNotReady,
        Refused,
        RegistryDataInvalid,
        RegistryUnavailable,
        ReleaseFailed,
        ReleaseRefused,
        ServiceNotFound,
        StepFailed,
        SwapError,
        SwitchNotConfirmed,
        UnfinishedDeploy,
    )
    from docker_swap.observer import Observer, PhaseResult
    from docker_swap.options import ComposeOptions, DeployOptions, ProxyRef, VerifyOptions
    from docker_swap.rollout.canary import abort
    from docker_swap.rollout.deploy import deploy
    from docker_swap.rollout.promote import promote
    from docker_swap.rollout.recover import RecoveryReport, recover, sync
    from docker_swap.rollout.reports import CanaryState, DeployReport
    from docker_swap.rollout.up import ServiceOutcome, UpReport, up
    from docker_swap.rollout.verify import VerifyReport


_WHERE = {
    **dict.fromkeys([
        "CanaryConflict", "ComposeFailed", "ComposeUnavailable", "ContainerExited",
        "ContainerUnhealthy",
        "DeployFailed", "DeployInProgress", "EngineFailed", "EngineUnreachable", "HookFailed",
        "Interrupted", "InvalidSettings", "NeedsAttention", "NotReady", "NotSwappable",
        "ProxyConfigInvalid", "ProxyNotReady", "Refused", "RegistryDataInvalid",
        "RegistryUnavailable", "ReleaseFailed", "ReleaseRefused", "ServiceNotFound",
        "StepFailed", "SwapError",
        "SwitchNotConfirmed", "UnfinishedDeploy",
    ], "errors"),
    "Observer": "observer", "PhaseResult": "observer",
    "ComposeOptions": "options", "DeployOptions": "options", "ProxyRef": "options",
    "VerifyOptions": "options", "VerifyReport": "rollout.verify",
    "RecoveryReport": "rollout.recover", "recover": "rollout.recover", "sync": "rollout.recover",
    "DeployReport": "rollout.reports", "deploy": "rollout.deploy",
    "CanaryState": "rollout.reports", "promote": "rollout.promote", "abort": "rollout.canary",
    "ServiceOutcome": "rollout.up", "UpReport": "rollout.up", "up": "rollout.up",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'docker_swap' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "CanaryConflict",
    "CanaryState",
    "ComposeFailed",
    "ComposeOptions",
    "ComposeUnavailable",
    "ContainerExited",
    "ContainerUnhealthy",
    "DeployFailed",
    "DeployInProgress",
    "DeployOptions",
    "DeployReport",
    "EngineFailed",
    "EngineUnreachable",
    "HookFailed",
    "Interrupted",
    "InvalidSettings",
    "NeedsAttention",
    "NotReady",
    "NotSwappable",
    "Observer",
    "PhaseResult",
    "ProxyConfigInvalid",
    "ProxyNotReady",
    "ProxyRef",
    "RecoveryReport",
    "Refused",
    "RegistryDataInvalid",
    "RegistryUnavailable",
    "ReleaseFailed",
    "ReleaseRefused",
    "ServiceNotFound",
    "ServiceOutcome",
    "StepFailed",
    "SwapError",
    "SwitchNotConfirmed",
    "UnfinishedDeploy",
    "UpReport",
    "VerifyOptions",
    "VerifyReport",
    "__version__",
    "abort",
    "deploy",
    "promote",
    "recover",
    "sync",
    "up",
]
