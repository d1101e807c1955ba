"""docker-swap: replace the running containers of a compose service without failing a request."""

from __future__ import annotations

from ._version import __version__
from .errors import (
    ComposeFailed,
    ComposeUnavailable,
    ContainerExited,
    ContainerUnhealthy,
    DeployFailed,
    DeployInProgress,
    EngineFailed,
    EngineUnreachable,
    Interrupted,
    InvalidSettings,
    NeedsAttention,
    NotReady,
    NotSwappable,
    ProxyConfigInvalid,
    ProxyNotReady,
    Refused,
    ServiceNotFound,
    StepFailed,
    SwapError,
    SwitchNotConfirmed,
    UnfinishedDeploy,
)
from .observer import Observer, PhaseResult
from .options import ComposeOptions, DeployOptions, ProxyRef
from .recovery import RecoveryReport, recover, sync
from .swap import DeployReport, deploy

__all__ = [
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
    "ServiceNotFound",
    "StepFailed",
    "SwapError",
    "SwitchNotConfirmed",
    "UnfinishedDeploy",
    "__version__",
    "deploy",
    "recover",
    "sync",
]
