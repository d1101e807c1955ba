"""Everything docker-swap raises, and what each means for the user.

    SwapError                     base; ``str(err)`` is one sentence, ``err.hint`` what to do
    ├── Refused                   refused before anything changed            (exit code 2)
    │   ├── EngineUnreachable     no Docker engine answers
    │   ├── ComposeUnavailable    `docker compose` v2 is missing or rejects the project
    │   ├── ServiceNotFound       the service is not in the project, or has no running container
    │   ├── NotSwappable          the service cannot run twice (container_name, fixed host port…)
    │   ├── ProxyNotReady         the proxy is not configured for the service, or not running
    │   ├── DeployInProgress      another deploy of the same service holds the lock
    │   ├── UnfinishedDeploy      an earlier deploy was interrupted; `docker-swap recover` first
    │   ├── StateUnusable         the journal on the engine is unreadable, or the state folder
    │   │                         cannot be written
    │   ├── InvalidSettings       a flag or an `x-swap` key has a value we cannot use
    │   ├── ReleaseRefused        `rollback` cannot go to that release (unknown, never served,
    │   │                         the one that runs, its image not kept any more)
    │   └── CanaryConflict        a canary of the service runs (a deploy waits for promote or
    │                             abort), or none runs (promote, abort)
    ├── StepFailed                one step of a swap failed; the swap rolls back
    │   ├── ComposeFailed         `docker compose up` did not start the new container
    │   ├── NotReady              the new container did not become ready within the timeout
    │   ├── ContainerExited       the new container exited while we waited for it
    │   ├── ContainerUnhealthy    Docker reported the new container unhealthy
    │   ├── ProxyConfigInvalid    the proxy rejected the configuration we generated, or a
    │   │                         backend's name, address or port is not one a proxy may take
    │   ├── SwitchNotConfirmed    the proxy did not show the new configuration live in time
    │   ├── EngineFailed          an Engine API call failed unexpectedly
    │   ├── HookFailed            the before-switch hook failed (its output is kept)
    │   ├── ReleaseFailed         a new container failed during the watch window
    │   ├── RegistryUnavailable   Redis stopped answering (the agent reconnects)
    │   ├── RegistryDataInvalid   a generation in Redis is malformed or not validly signed
    │   ├── ImageRegistryFailed   an image registry did not answer, refused the credentials, or
    │   │                         answered what is not a digest or a list of tags
    │   ├── SwarmUpdateFailed     Swarm's own update of a stack service paused or rolled back
    │   ├── UnexpectedError       an exception docker-swap did not expect (a bug) before the
    │   │                         switch: the swap undoes itself, then needs attention (3)
    │   └── Interrupted           Ctrl-C or SIGTERM arrived before the switch completed (or
    │                             during the watch window)
    ├── DeployFailed              a swap failed and was rolled back: the old version serves  (1)
    └── NeedsAttention            a rollback or a retire could not finish, a failure after the
                                  switch, or an error docker-swap did not expect; the journal is
                                  kept for `docker-swap recover`                             (3)

Exit codes mean one thing each: 0 done; 1 failed and rolled back (the old version serves,
nothing of the new one is left); 2 refused, nothing changed; 3 needs attention (the message says
what serves, what is left over, and the command that fixes it). A StepFailed never reaches the
user as such: before the switch the swap answers it with a rollback (DeployFailed, or
NeedsAttention if the rollback cannot finish); in preflight it becomes a Refused.

Lower-level errors (docker SDK, subprocess) are translated at the adapters' edge with
``raise ... from exc`` and never leak secrets such as environment values.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_ROLLED_BACK = 1
EXIT_REFUSED = 2
EXIT_NEEDS_ATTENTION = 3


class SwapError(Exception):
    """Base of every error docker-swap raises on purpose."""

    exit_code = EXIT_ROLLED_BACK

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.verify: object | None = None
        """What `--verify` saw during the deploy that ended with this error, if it ran."""


class Refused(SwapError):
    """Raised before anything changed: the engine, project and proxy are as they were."""

    exit_code = EXIT_REFUSED


class EngineUnreachable(Refused):
    """Raised when no Docker engine answers at the configured address."""


class ComposeUnavailable(Refused):
    """Raised when `docker compose` v2 is missing or cannot load the project."""


class ServiceNotFound(Refused):
    """Raised when the service is not in the project or has no running container."""


class NotSwappable(Refused):
    """Raised when the service's definition prevents two containers from running at once."""


class ProxyNotReady(Refused):
    """Raised when the proxy is not set up for the service or is not running."""


class DeployInProgress(Refused):
    """Raised when another deploy of the same service holds the lock."""


class UnfinishedDeploy(Refused):
    """Raised when an earlier deploy of the service was interrupted and needs `recover`."""


class StateUnusable(Refused):
    """Raised when the engine's journal cannot be read or the state folder cannot be written."""


class InvalidSettings(Refused):
    """Raised when a flag or an `x-swap` key has a value docker-swap cannot use."""


class ReleaseRefused(Refused):
    """Raised when `rollback` cannot go to the release asked for (unknown, current, gone)."""


class CanaryConflict(Refused):
    """Raised when a canary of the service runs and the command would change it (another
    deploy, a rollback), or when none runs and the command needs one (promote, abort)."""


class StepFailed(SwapError):
    """Raised by one step of the swap; the sequence answers it by rolling back."""


class ComposeFailed(StepFailed):
    """Raised when `docker compose up` fails to start the new container."""


class NotReady(StepFailed):
    """Raised when the new container is not ready before the readiness timeout."""


class ContainerExited(StepFailed):
    """Raised when the new container exits while docker-swap waits for it."""


class ContainerUnhealthy(StepFailed):
    """Raised when Docker reports the new container unhealthy."""


class ProxyConfigInvalid(StepFailed):
    """Raised when the proxy rejects the configuration docker-swap generated."""


class SwitchNotConfirmed(StepFailed):
    """Raised when the proxy does not show the new configuration live within the timeout."""


class EngineFailed(StepFailed):
    """Raised when an Engine API call fails in a way docker-swap did not expect."""


class HookFailed(StepFailed):
    """Raised when the before-switch hook exits non-zero or times out; `output` says why."""

    def __init__(self, message: str, *, output: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.output = output


class ReleaseFailed(StepFailed):
    """Raised when, during the watch window, a new container exits, turns unhealthy, or its
    share of 5xx answers passes --max-error-rate; `container` names the one that failed."""

    def __init__(self, message: str, *, container: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.container = container
class RegistryUnavailable(StepFailed):
    """Raised when Redis does not answer a registry operation (down, restarted, unreachable)."""


class RegistryDataInvalid(StepFailed):
    """Raised when a generation read from Redis is malformed or not validly signed; the agent
    refuses it and its proxy keeps what it served."""


class ImageRegistryFailed(StepFailed):
    """Raised when an image registry (where `autoupdate` asks for digests and tags, and pulls
    from) does not answer, or answers what cannot be used."""


class SwarmUpdateFailed(StepFailed):
    """Raised when Swarm's update of a stack service pauses or rolls back (update_config's
    failure_action), or a task of the new spec keeps failing."""


class UnexpectedError(StepFailed):
    """Raised in place of an exception docker-swap did not expect (a bug) before the switch,
    so that the swap can still undo itself; it then ends in NeedsAttention, the journal kept."""


class Interrupted(StepFailed):
    """Raised when Ctrl-C or SIGTERM arrives before the switch has completed."""


class DeployFailed(SwapError):
    """Raised after a failed swap was rolled back; the old containers still serve."""

    exit_code = EXIT_ROLLED_BACK

    def __init__(self, cause: StepFailed, *, logs: str = "", container: str = "",
                 logs_title: str = "") -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.cause = cause
        self.logs = logs
        self.container = container
        self.logs_title = logs_title or f"last log lines of {container}"


class NeedsAttention(SwapError):
    """Raised when a rollback or retire could not finish; `docker-swap recover` resumes it."""

    exit_code = EXIT_NEEDS_ATTENTION


def unexpected(exc: BaseException, service: str) -> NeedsAttention:
    """An exception docker-swap did not expect, as the error the user sees (exit 3)."""
    recover = f"`docker-swap recover {service}`" if service else "`docker-swap recover SERVICE`"
    return NeedsAttention(
        f"unexpected error: {type(exc).__name__}: {exc}. What it left behind is unknown; "
        "the journal of the deploy, if any, is kept.",
        hint=f"Run {recover}, which finishes or undoes what the journal records; -v shows "
        "the traceback (please report it).",
    )


def message_of(exc: BaseException) -> str:
    """One sentence on an error, whether docker-swap raised it on purpose or not (the one
    helper every layer says an error with; never a password of a URL)."""
    return exc.message if isinstance(exc, SwapError) else redact(f"unexpected error: {exc!r}")


def first_line(exc: BaseException) -> str:
    """A library's error in a few words: its first line (passwords hidden), else its type."""
    return redact(str(exc).split("\n")[0]) or type(exc).__name__


_USERINFO_PASSWORD = re.compile(r"(?P<head>\w+://[^/?#@:\s]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl_)?password=)[^&\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with every password in a URL replaced by `***`: the userinfo's
    (`redis://:pw@`, `redis://user:pw@`, up to the last `@` before a space, so a password
    holding `@` or `/` is hidden whole) and the
    query's (`?password=`, `&ssl_password=`). The one redaction of every message that may show
    a Redis URL."""
    text = _QUERY_PASSWORD.sub(r"\g<head>***", text)
    return _USERINFO_PASSWORD.sub(r"\g<head>***@", text)

