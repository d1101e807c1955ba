"""The only place that talks to Redis: where a service's live backends are published, and where
the agents that apply them to their proxies say what they have done.

For a service, under `docker-swap:PROJECT:SERVICE:` (`docker-swap@NAMESPACE:PROJECT:SERVICE:`
with x-swap.registry-namespace)

    generation        the number of the newest publication (a counter)
    generations       hash: number -> {"backends": [...], "published_at": ..., "project": ...,
                      "service": ..., "signature": ...} (the last 50)
    current           the number of the newest publication
    published         pub/sub channel: the number, each time one is published
    agents            hash: agent name -> its last report (kept when it stops)
                      {"proxy": ..., "applied": N, "drained": N, "failed": N, "error": ...,
                      "at": ..., "signature": ...}
    alive:NAME        set with every report, expiring unless renewed (the heartbeat):
                      {"at": ..., "signature": ...}

A publication is one Lua script that writes only if the counter is still what the publisher
read, so its number, its content and `current` never disagree, and the number is chosen (and
signed) before it is written. What is read back is parsed and checked in registry_data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import redis
import redis.exceptions

from docker_swap.errors import (
    InvalidSettings,
    ProxyNotReady,
    RegistryDataInvalid,
    RegistryUnavailable,
    StepFailed,
    first_line,
)
from docker_swap.models import AgentStatus, Backend, Generation
from docker_swap.options import (
    REDIS_PASSWORD_ENV,
    REDIS_URL_ENV,
    REGISTRY_KEY_ENV,
    REGISTRY_KEY_FILE_ENV,
    DeployOptions,
)
from docker_swap.registry.data import (
    MAX_NUMBER,
    Report,
    Scope,
    encode_generation,
    encode_heartbeat,
    encode_report,
    heartbeat_alive,
    parse_generation,
    parse_number,
    parse_report,
    registry_key,
)
from docker_swap.settings import redact

HEARTBEAT_TTL_SECONDS = 5
_KEEP_GENERATIONS = 50
_PUBLISH_ATTEMPTS = 5
_PUBLISH = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local number = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  local kept = tonumber(field)
  if kept == nil or kept <= number - tonumber(ARGV[4]) then redis.call('HDEL', KEYS[2], field) end
end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('PUBLISH', KEYS[4], ARGV[2])
return 1
"""
_LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def connect_registry(options: DeployOptions, project: str, *, check: bool = True) -> Registry:
    """The service's registry, with its password, key and namespace as the settings and the
    environment give them; `check` pings Redis first (a refusal if it does not answer)."""
    url = redis_url(options)
    scope = Scope(project, options.service, options.registry_namespace or "",
                  _registry_key(options))
    return Registry.connect(url, scope, password=_password(options, url), check=check)


def redis_url(options: DeployOptions) -> str:
    """The registry's URL: --redis or x-swap.redis, else the environment."""
    url = options.redis or os.environ.get(REDIS_URL_ENV)
    if not url:
        raise ProxyNotReady(
            f"the registry of service {options.service!r} needs a Redis URL.",
            hint=f"Set x-swap.redis, pass --redis, or set {REDIS_URL_ENV}.",
        )
    return url


class Subscription:
    """The `published` channel; `wait` returns on a message or after `timeout` seconds."""

    def __init__(self, pubsub: redis.client.PubSub, url: str) -> None:
        self._pubsub, self._url = pubsub, url

    def wait(self, timeout: float) -> None:
        try:
            self._pubsub.get_message(timeout=timeout)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise RegistryUnavailable(f"Redis at {self._url} failed: {first_line(exc)}.") from exc

    def close(self) -> None:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):  # gone already
            self._pubsub.close()


class Registry:
    """One service's keys in one Redis."""

    def __init__(self, client: redis.Redis, scope: Scope, url: str) -> None:
        self._client = client
        self._scope = scope
        self.url = redact(url)

    @property
    def signed(self) -> bool:
        return self._scope.key is not None

    @classmethod
    def connect(cls, url: str, scope: Scope, *, password: str | None = None,
                check: bool = True) -> Registry:
        try:
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                          decode_responses=True, encoding_errors="replace",
                                          **_tls(url),
                                          **({"password": password} if password else {}))
            if check:
                client.ping()
        except (redis.exceptions.RedisError, ValueError, OSError) as exc:
            raise ProxyNotReady(
                f"Redis at {redact(url)} does not answer ({first_line(exc)}).",
                hint="Check the URL (x-swap.redis, --redis or DOCKER_SWAP_REDIS_URL), the "
                "password, and that Redis runs.",
            ) from exc
        return cls(client, scope, url)

    def publish(self, backends: Sequence[Backend], after: int = 0) -> Generation:
        """Publish `backends` as a generation numbered above the counter, `current` and
        `after` (the highest number an agent reports), so that no agent can take it for one
        it has already seen, even after Redis lost its data."""
        published_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        keys = [self._key(k) for k in ("generation", "generations", "current", "published")]
        for _ in range(_PUBLISH_ATTEMPTS):
            counter, current = self._call(lambda: self._client.mget(keys[0], keys[2]))
            number = max(_number_or_zero(counter), _number_or_zero(current), after) + 1
            if number > MAX_NUMBER:
                raise RegistryDataInvalid(f"the registry's generation numbers in {self.url} "
                                          "are exhausted; delete its keys and sync again.")
            record = encode_generation(self._scope, number, backends, published_at)
            written = self._call(lambda n=number, r=record, c=counter: self._client.eval(
                _PUBLISH, len(keys), *keys, c or "", str(n), r, str(_KEEP_GENERATIONS)))
            if written:
                return Generation(number, tuple(backends), published_at)
        raise StepFailed(f"could not publish to {self.url}: its generation counter kept "
                         "changing (another deploy of this service publishes at once).")

    def current_number(self) -> int:
        """The newest generation's number (0 when none); RegistryDataInvalid when it is not a
        number."""
        number = self._call(lambda: self._client.get(self._key("current")))
        return parse_number(number, "current") if number is not None else 0

    def generation(self, number: int) -> Generation | None:
        """Generation `number`, checked (RegistryDataInvalid), or None when it is not kept."""
        data = self._call(lambda: self._client.hget(self._key("generations"), str(number)))
        return None if data is None else parse_generation(self._scope, number, data)

    def agents(self) -> list[AgentStatus]:
        """Every registered agent; one whose report cannot be trusted has its `problem`."""
        registered = cast(dict[str, str],
                          self._call(lambda: self._client.hgetall(self._key("agents"))))
        names = sorted(registered)
        pipeline = self._client.pipeline(transaction=False)
        for name in names:
            pipeline.get(self._key(f"alive:{name}"))
        beats = self._call(pipeline.execute) if names else []
        return [parse_report(self._scope, name, registered[name],
                             alive=heartbeat_alive(self._scope, name, beat))
                for name, beat in zip(names, beats, strict=True)]

    def own_report(self, name: str) -> AgentStatus | None:
        """An agent's own last report, if Redis has one it can trust (its floor on restart)."""
        text = self._call(lambda: self._client.hget(self._key("agents"), name))
        if text is None:
            return None
        status = parse_report(self._scope, name, text, alive=False)
        return None if status.problem else status

    def newest_kept(self) -> int:
        """The highest number among the generations Redis keeps (0 when none)."""
        fields = self._call(lambda: self._client.hkeys(self._key("generations")))
        return max((int(f) for f in fields if isinstance(f, str) and f.isdecimal()
                    and len(f) < 17), default=0)

    def report(self, name: str, report: Report) -> None:
        """An agent's report (signed with a key), and its heartbeat; the first one registers
        it: deploys wait for it from then on, until it leaves (`forget`)."""
        data = encode_report(self._scope, name, report)
        pipeline = self._client.pipeline()
        pipeline.hset(self._key("agents"), name, data)
        pipeline.set(self._key(f"alive:{name}"),
                     encode_heartbeat(self._scope, name, report.at), ex=HEARTBEAT_TTL_SECONDS)
        self._call(pipeline.execute)

    def forget(self, name: str) -> None:
        self._call(lambda: self._client.hdel(self._key("agents"), name))
        self._call(lambda: self._client.delete(self._key(f"alive:{name}")))

    def subscribe(self) -> Subscription:
        pubsub: redis.client.PubSub = self._client.pubsub(
            ignore_subscribe_messages=True)
        self._call(lambda: pubsub.subscribe(self._key("published")))
        return Subscription(pubsub, self.url)

    def _key(self, name: str) -> str:
        return self._scope.prefix + name

    def _call(self, operation: Any) -> Any:
        try:
            return operation()
        except _LOST as exc:
            raise RegistryUnavailable(f"Redis at {self.url} failed: {first_line(exc)}.") from exc
        except redis.exceptions.RedisError as exc:
            raise StepFailed(f"Redis at {self.url} failed: {first_line(exc)}.") from exc


def _number_or_zero(text: object) -> int:
    """A counter that is not a number (written by hand, or forged) counts as 0: the publication
    overwrites it."""
    try:
        return parse_number(text, "counter") if text is not None else 0
    except RegistryDataInvalid:
        return 0


def _tls(url: str) -> dict[str, object]:
    """rediss:// always checks the certificate and the host name (redis-py 5 does not check
    the host name unless told); a URL that turns either off is refused."""
    if not url.startswith("rediss://"):
        return {}
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(urlsplit(url).query).items()}
    if query.get("ssl_cert_reqs", "required") in ("none", "optional") or query.get(
            "ssl_check_hostname", "true") not in ("true", "1", "yes"):
        raise InvalidSettings(
            f"the Redis URL {redact(url)} turns off the check of the server's certificate or "
            "host name; docker-swap always checks both.",
            hint="Remove ssl_cert_reqs and ssl_check_hostname from the URL; for a private CA "
            "add ?ssl_ca_certs=/path/ca.pem.",
        )
    return {"ssl_cert_reqs": "required", "ssl_check_hostname": True}


def _password(options: DeployOptions, url: str) -> str | None:
    """The Redis password from a file (x-swap.redis-password-file, --redis-password-file) or
    DOCKER_SWAP_REDIS_PASSWORD, so that it need not be in the URL (and in `ps`)."""
    if options.redis_password_file:
        password: str | None = _read_secret(options.redis_password_file, "Redis password file")
        where = "the Redis password file"
    else:
        password, where = os.environ.get(REDIS_PASSWORD_ENV) or None, REDIS_PASSWORD_ENV
    parts = urlsplit(url)
    in_url = bool(parts.password) or "password" in parse_qs(parts.query)
    if password and in_url:
        raise InvalidSettings(
            f"the Redis password is given twice: in the URL {redact(url)} and in {where}.",
            hint="Keep one: remove the password from the URL, or the other setting.",
        )
    return password


def _registry_key(options: DeployOptions) -> bytes | None:
    """The key that signs generations and reports: x-swap.registry-key (the key, or
    `file:PATH`), else DOCKER_SWAP_REGISTRY_KEY, else the file DOCKER_SWAP_REGISTRY_KEY_FILE
    names; None when none is set."""
    given = options.registry_key
    if given is not None and given.startswith("file:"):
        return registry_key(_read_secret(given.removeprefix("file:"), "registry key file"))
    if given is not None:
        return registry_key(given)
    if os.environ.get(REGISTRY_KEY_ENV):
        return registry_key(os.environ[REGISTRY_KEY_ENV])
    if os.environ.get(REGISTRY_KEY_FILE_ENV):
        return registry_key(_read_secret(os.environ[REGISTRY_KEY_FILE_ENV],
                                         "registry key file"))
    return None


def _read_secret(path: str, what: str) -> str:
    """A secret kept in a file, without its trailing newline; never shown in a message."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise InvalidSettings(f"cannot read the {what} {path}: {reason}.") from None
    if not text:
        raise InvalidSettings(f"the {what} {path} is empty.")
    return text


