"""The only place that talks to Redis: where a service's live backends are published, and where
the agents that apply them to their proxies say what they have done.

For a service, under `docker-swap:PROJECT:SERVICE:`

    generation        a counter; every publication takes the next number
    generations       hash: number -> {"backends": [...], "published_at": ...} (the last 50)
    current           the number of the newest publication
    published         pub/sub channel: the number, each time one is published
    agents            hash: agent name -> its last report (kept when it stops)
                      {"proxy": ..., "applied": N, "drained": N, "failed": N, "error": ...}
    alive:NAME        set with every report, expiring unless renewed (the heartbeat)

A publication is one Lua script, so its number, its content and `current` never disagree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis
import redis.exceptions

from .errors import ProxyNotReady, StepFailed
from .models import AgentStatus, Backend, Generation
from .options import redact

HEARTBEAT_TTL_SECONDS = 5
_KEEP_GENERATIONS = 50
_PUBLISH = """
local number = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], number, ARGV[1])
redis.call('HDEL', KEYS[2], number - tonumber(ARGV[2]))
redis.call('SET', KEYS[3], number)
redis.call('PUBLISH', KEYS[4], number)
return number
"""


class Registry:
    """One service's keys in one Redis."""

    def __init__(self, client: redis.Redis, project: str, service: str, url: str) -> None:
        self._client = client
        self._prefix = f"docker-swap:{project}:{service}:"
        self.url = redact(url)

    @classmethod
    def connect(cls, url: str, project: str, service: str) -> Registry:
        try:
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                          decode_responses=True)
            client.ping()
        except (redis.exceptions.RedisError, ValueError, OSError) as exc:
            raise ProxyNotReady(
                f"Redis at {redact(url)} does not answer ({_reason(exc)}).",
                hint="Check the URL (x-swap.redis, --redis or DOCKER_SWAP_REDIS_URL) and that "
                "Redis runs.",
            ) from exc
        return cls(client, project, service, url)

    def publish(self, backends: Sequence[Backend]) -> Generation:
        published_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        content = json.dumps({"backends": [_backend_data(b) for b in backends],
                              "published_at": published_at})
        keys = [self._key("generation"), self._key("generations"), self._key("current"),
                self._key("published")]
        number = self._call(lambda: self._client.eval(
            _PUBLISH, len(keys), *keys, content, _KEEP_GENERATIONS))
        return Generation(int(cast(int, number)), tuple(backends), published_at)

    def current(self) -> Generation | None:
        number = self._call(lambda: self._client.get(self._key("current")))
        return self.generation(int(number)) if number else None

    def generation(self, number: int) -> Generation | None:
        data = self._call(lambda: self._client.hget(self._key("generations"), str(number)))
        if not data:
            return None
        parsed = json.loads(str(data))
        backends = tuple(Backend(**b) for b in parsed["backends"])
        return Generation(number, backends, parsed["published_at"])

    def agents(self) -> list[AgentStatus]:
        registered = self._call(lambda: self._client.hgetall(self._key("agents")))
        statuses = []
        for name, data in sorted(cast(dict[str, str], registered).items()):
            alive = self._call(lambda n=name: self._client.exists(self._key(f"alive:{n}")))
            fields = json.loads(data)
            statuses.append(AgentStatus(
                name, fields.get("proxy", ""), bool(alive), int(fields.get("applied", 0)),
                int(fields.get("drained", 0)), int(fields.get("failed", 0)),
                fields.get("error", ""),
            ))
        return statuses

    def register(self, name: str, proxy: str) -> None:
        """Known from now on: deploys wait for this agent until it leaves (`forget`)."""
        data = json.dumps({"proxy": proxy, "registered_at": datetime.now(UTC).isoformat()})
        self._call(lambda: self._client.hsetnx(self._key("agents"), name, data))

    def forget(self, name: str) -> None:
        self._call(lambda: self._client.hdel(self._key("agents"), name))
        self._call(lambda: self._client.delete(self._key(f"alive:{name}")))

    def report(self, name: str, proxy: str, applied: int, drained: int, failed: int = 0,
               error: str = "") -> None:
        data = json.dumps({"proxy": proxy, "applied": applied, "drained": drained,
                           "failed": failed, "error": error, "at": time.time()})
        pipeline = self._client.pipeline()
        pipeline.hset(self._key("agents"), name, data)
        pipeline.set(self._key(f"alive:{name}"), 1, ex=HEARTBEAT_TTL_SECONDS)
        self._call(pipeline.execute)

    def subscribe(self) -> redis.client.PubSub:
        pubsub: redis.client.PubSub = self._client.pubsub(  # type: ignore[no-untyped-call]
            ignore_subscribe_messages=True)
        self._call(lambda: pubsub.subscribe(self._key("published")))
        return pubsub

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _call(self, operation: Any) -> Any:
        try:
            return operation()
        except redis.exceptions.RedisError as exc:
            raise StepFailed(f"Redis at {self.url} failed: {_reason(exc)}.") from exc


def _backend_data(backend: Backend) -> dict[str, object]:
    return {"container_id": backend.container_id, "name": backend.name,
            "address": backend.address, "port": backend.port}


def _reason(exc: BaseException) -> str:
    return redact(str(exc).split("\n")[0]) or type(exc).__name__
