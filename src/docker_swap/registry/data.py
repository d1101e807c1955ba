"""What the registry keeps in Redis, as data: generations and agent reports, written, signed,
read and checked.

Anyone who can write to Redis can put anything there, so nothing read from it is used before
it is parsed here: known keys only, numbers that are integers, bounded sizes, backends whose
container ID, name, address and port are what they claim to be (`Backend.problem`). With a
registry key, each generation and each agent report also carries an HMAC-SHA256 signature over
a canonical JSON of its content and of whose it is (namespace, project, service, number or
agent name), so that a record cannot be forged, altered, or moved to another number, service
or agent.

Pure functions: no Redis, no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from docker_swap.errors import InvalidSettings, RegistryDataInvalid
from docker_swap.models import AgentStatus, Backend, Generation, safe_text

MAX_GENERATION_BYTES = 64 * 1024
MAX_AGENT_RECORD_BYTES = 8 * 1024
MAX_BACKENDS = 256
MAX_NUMBER = 2**53 - 1
"""Generation numbers stay exact in JSON and in Redis's Lua (doubles)."""
MAX_ERROR_CHARS = 2000
MIN_KEY_CHARS = 16
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}")

_GENERATION_KEYS = frozenset({"backends", "published_at", "project", "service", "signature"})
_BACKEND_KEYS = frozenset({"container_id", "name", "address", "port"})
_AGENT_KEYS = frozenset({"proxy", "applied", "drained", "failed", "error", "at",
                         "registered_at", "answers", "signature"})
_HEARTBEAT_KEYS = frozenset({"at", "signature"})
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Scope:
    """Whose keys these are: one service of one compose project, in an optional namespace
    (two stacks with the same project name on one Redis stay apart). Every signature covers
    it, and `key` signs (None: nothing is signed, and nothing needs to be)."""

    project: str
    service: str
    namespace: str = ""
    key: bytes | None = None

    def __repr__(self) -> str:  # never show the key
        return (f"Scope(project={self.project!r}, service={self.service!r}, "
                f"namespace={self.namespace!r}, signed={self.key is not None})")

    @property
    def prefix(self) -> str:
        """`docker-swap:PROJECT:SERVICE:`, or `docker-swap@NAMESPACE:PROJECT:SERVICE:`."""
        where = f"@{self.namespace}" if self.namespace else ""
        return f"docker-swap{where}:{self.project}:{self.service}:"

    def sign(self, payload: Mapping[str, object]) -> str:
        """HMAC-SHA256, in hex, of the canonical JSON of `payload` and this scope."""
        assert self.key is not None
        return hmac.new(self.key, self._canonical(payload), hashlib.sha256).hexdigest()

    def verify(self, payload: Mapping[str, object], signature: object) -> str | None:
        """None when the signature is valid (or there is no key); else why not."""
        if self.key is None:
            return None
        if signature is None:
            return "it is not signed, and this registry has a key"
        if not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
            return "its signature is malformed"
        if not hmac.compare_digest(self.sign(payload), signature):
            return "its signature is not valid for the registry key"
        return None

    def _canonical(self, payload: Mapping[str, object]) -> bytes:
        whole = {**payload, "namespace": self.namespace, "project": self.project,
                 "service": self.service}
        return json.dumps(whole, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode()


def registry_key(text: str) -> bytes:
    """A registry key given as text, checked; never shown in a message."""
    key = text.strip()
    if len(key) < MIN_KEY_CHARS:
        raise InvalidSettings(
            f"the registry key is shorter than {MIN_KEY_CHARS} characters.",
            hint="Make one with `openssl rand -hex 32`.",
        )
    return key.encode()


# Generations ---------------------------------------------------------------------------------


def encode_generation(scope: Scope, number: int, backends: Sequence[Backend],
                      published_at: str) -> str:
    """The record of one generation, as stored in the `generations` hash."""
    content: dict[str, object] = {"backends": [_backend_data(b) for b in backends],
                                  "published_at": published_at}
    record: dict[str, object] = {**content, "project": scope.project, "service": scope.service}
    if scope.key is not None:
        record["signature"] = scope.sign(_generation_payload(number, content))
    return json.dumps(record)


def parse_generation(scope: Scope, number: int, text: object) -> Generation:
    """The generation stored under `number`, or RegistryDataInvalid saying what is wrong."""
    record = _record(text, MAX_GENERATION_BYTES, f"generation {number}")
    where = f"generation {number}"
    unknown = sorted(set(record) - _GENERATION_KEYS)
    if unknown:
        raise RegistryDataInvalid(f"{where} has unknown key {safe_text(unknown[0])}.")
    for field in ("project", "service"):
        if field in record and record[field] != getattr(scope, field):
            raise RegistryDataInvalid(f"{where} belongs to {field} "
                                      f"{safe_text(record[field])}, not {getattr(scope, field)}.")
    published_at = record.get("published_at")
    if not isinstance(published_at, str) or not published_at.isprintable() or len(
            published_at) > 64:
        raise RegistryDataInvalid(f"{where} has no valid published_at.")
    backends = _backends(record.get("backends"), where)
    content = {"backends": [_backend_data(b) for b in backends], "published_at": published_at}
    refused = scope.verify(_generation_payload(number, content), record.get("signature"))
    if refused:
        raise RegistryDataInvalid(f"{where} was refused: {refused}.")
    return Generation(number, backends, published_at)


def parse_number(text: object, what: str) -> int:
    """A generation number stored as text (`current`, `generation`), or RegistryDataInvalid."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if isinstance(text, str) and re.fullmatch(r"[0-9]{1,16}", text):
        number = int(text)
        if 0 <= number <= MAX_NUMBER:
            return number
    raise RegistryDataInvalid(f"{what} is {safe_text(text)}, not a generation number.")


def _generation_payload(number: int, content: Mapping[str, object]) -> dict[str, object]:
    return {"kind": "generation", "number": number, **content}


def _backends(value: object, where: str) -> tuple[Backend, ...]:
    if not isinstance(value, list) or len(value) > MAX_BACKENDS:
        raise RegistryDataInvalid(f"{where} has no list of at most {MAX_BACKENDS} backends.")
    backends = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not _BACKEND_KEYS <= set(item) <= \
                _BACKEND_KEYS | {"weight"}:
            raise RegistryDataInvalid(
                f"{where}: backend {index + 1} does not have exactly the keys "
                f"{', '.join(sorted(_BACKEND_KEYS))} (and perhaps weight).")
        backend = Backend(item["container_id"], item["name"], item["address"], item["port"],
                          item.get("weight", 1))
        problem = backend.problem()
        if problem:
            raise RegistryDataInvalid(f"{where}: backend {index + 1} was refused: {problem}.")
        backends.append(backend)
    return tuple(backends)


def _backend_data(backend: Backend) -> dict[str, object]:
    data: dict[str, object] = {"container_id": backend.container_id, "name": backend.name,
                               "address": backend.address, "port": backend.port}
    if backend.weight != 1:  # a canary's: older agents refuse it (they cannot weigh)
        data["weight"] = backend.weight
    return data


# Agent reports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What an agent says about itself: the generations its proxy applied, drained, or could
    not apply (with why), and when it said so."""

    proxy: str
    applied: int = 0
    drained: int = 0
    failed: int = 0
    error: str = ""
    at: float = 0.0
    answers: tuple[int, int] | None = None
    """5xx answers and all answers of the backends of `applied`, as its proxy counts them
    (HAProxy); None where the proxy does not count (what --max-error-rate reads)."""


def encode_report(scope: Scope, name: str, report: Report) -> str:
    record: dict[str, object] = _report_data(report)
    if scope.key is not None:
        record["signature"] = scope.sign(_report_payload(name, record))
    return json.dumps(record, allow_nan=False)


def parse_report(scope: Scope, name: str, text: object, *, alive: bool) -> AgentStatus:
    """An agent's status; a record that cannot be trusted gives one with `problem` said and
    nothing applied (never an exception: a bad record is a bad agent, not a failed deploy)."""
    if not AGENT_NAME.fullmatch(name):
        return AgentStatus(safe_text(name), "", alive, problem="its name is not valid")
    try:
        report, signature = _report(text, name)
    except RegistryDataInvalid as exc:
        return AgentStatus(name, "", alive, problem=exc.message.rstrip("."))
    refused = scope.verify(_report_payload(name, _report_data(report)), signature)
    if refused:
        return AgentStatus(name, safe_text(report.proxy), alive,
                           problem=f"its report was refused: {refused}")
    return AgentStatus(name, safe_text(report.proxy), alive, report.applied, report.drained,
                       report.failed, safe_text(report.error, MAX_ERROR_CHARS),
                       answers=report.answers)


def _report(text: object, name: str) -> tuple[Report, object]:
    record = _record(text, MAX_AGENT_RECORD_BYTES, "its report")
    unknown = sorted(set(record) - _AGENT_KEYS)
    if unknown:
        raise RegistryDataInvalid(f"its report has unknown key {safe_text(unknown[0])}")
    numbers = {}
    for field in ("applied", "drained", "failed"):
        value = record.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not (
                0 <= value <= MAX_NUMBER):
            raise RegistryDataInvalid(f"its report's {field} is not a generation number")
        numbers[field] = value
    proxy, error, at = record.get("proxy", ""), record.get("error", ""), record.get("at", 0.0)
    if not isinstance(proxy, str) or len(proxy) > 200:
        raise RegistryDataInvalid("its report's proxy is not a short text")
    if not isinstance(error, str) or len(error) > MAX_ERROR_CHARS:
        raise RegistryDataInvalid("its report's error is not a text of bounded length")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise RegistryDataInvalid("its report's time is not a number")
    return Report(proxy, error=error, at=float(at), answers=_answers(record.get("answers")),
                  **numbers), record.get("signature")


def _answers(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_NUMBER
            for v in value) or value[0] > value[1]:
        raise RegistryDataInvalid("its report's answers are not two counts")
    return value[0], value[1]


def _report_data(report: Report) -> dict[str, object]:
    data: dict[str, object] = {
        "proxy": report.proxy, "applied": report.applied, "drained": report.drained,
        "failed": report.failed, "error": report.error, "at": report.at}
    if report.answers is not None:
        data["answers"] = list(report.answers)
    return data


# Heartbeats ----------------------------------------------------------------------------------


def encode_heartbeat(scope: Scope, name: str, at: float) -> str:
    """An agent's heartbeat (`alive:NAME`): when it beat, signed with a key, so that nobody
    without the key can make a stopped agent look alive."""
    record: dict[str, object] = {"at": at}
    if scope.key is not None:
        record["signature"] = scope.sign({"kind": "heartbeat", "name": name, "at": at})
    return json.dumps(record, allow_nan=False)


def heartbeat_alive(scope: Scope, name: str, text: object) -> bool:
    """Whether a heartbeat read from Redis says the agent is alive: present, and validly
    signed when the registry has a key (a heartbeat that is not is no sign of life)."""
    if text is None:
        return False
    if scope.key is None:
        return True
    try:
        record = _record(text, MAX_AGENT_RECORD_BYTES, "its heartbeat")
    except RegistryDataInvalid:
        return False
    at = record.get("at")
    if set(record) - _HEARTBEAT_KEYS or isinstance(at, bool) or not isinstance(
            at, int | float) or not math.isfinite(at):
        return False
    return scope.verify({"kind": "heartbeat", "name": name, "at": at},
                        record.get("signature")) is None


def _report_payload(name: str, data: Mapping[str, object]) -> dict[str, object]:
    return {"kind": "agent", "name": name,
            **{key: value for key, value in data.items() if key != "signature"}}


# JSON ----------------------------------------------------------------------------------------


def _record(text: object, limit: int, where: str) -> dict[str, Any]:
    """One JSON object of at most `limit` bytes, without NaN, infinities or repeated keys."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or len(text.encode()) > limit:
        raise RegistryDataInvalid(f"{where} is not a JSON object of at most {limit} bytes.")
    try:
        record = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)
    except (ValueError, RecursionError):
        raise RegistryDataInvalid(f"{where} is not valid JSON.") from None
    if not isinstance(record, dict):
        raise RegistryDataInvalid(f"{where} is not a JSON object.")
    return record


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number here")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise ValueError("a key is repeated")
    return record
