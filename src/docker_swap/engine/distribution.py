"""Image registries, as the docker CLI reaches them: a tag's current digest (the Engine's
distribution inspect), pulls, and the tags of a repository (the registry's HTTP API v2), with
the user's docker credentials (~/.docker/config.json, DOCKER_CONFIG).

What a registry answers is untrusted: digests and tags are checked against their grammar, and
the number of tags and the size of an answer are bounded.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import docker
import docker.auth
import docker.errors

from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.errors import ImageRegistryFailed

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_TAGS = 10_000
MAX_ANSWER_BYTES = 4_000_000
_TIMEOUT = 15.0
_LOOPBACK = ("localhost", "127.", "[::1]")


class Distribution:
    """The registry part of Engine."""

    _api: docker.APIClient

    def remote_digest(self, reference: str) -> str:
        """The digest `reference` (REPOSITORY:TAG) points to in its registry now."""
        try:
            answer = self._api.inspect_distribution(reference)
        except _API_ERRORS as exc:
            raise ImageRegistryFailed(f"the registry of {reference} did not say what it points "
                                      f"to: {_reason(exc)}") from exc
        digest = (answer.get("Descriptor") or {}).get("digest") if isinstance(answer, dict) \
            else None
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise ImageRegistryFailed(f"the registry of {reference} answered no valid digest.")
        return digest

    def repo_digests(self, reference: str) -> list[str]:
        """The registry digests the local image `reference` (a tag or an ID) was pulled as."""
        try:
            attrs = self._api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return []
        except _API_ERRORS as exc:
            raise ImageRegistryFailed(f"could not inspect image {reference}: "
                                      f"{_reason(exc)}") from exc
        return [d.rpartition("@")[2] for d in attrs.get("RepoDigests") or []
                if isinstance(d, str) and DIGEST.fullmatch(d.rpartition("@")[2])]

    def pull(self, reference: str) -> str:
        """Pull `reference` (with the user's credentials); the local image ID it names now."""
        repository, _, tag = reference.rpartition(":") if _has_tag(reference) else (
            reference, "", "latest")
        try:
            for event in self._api.pull(repository, tag=tag, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise ImageRegistryFailed(f"pulling {reference} failed: "
                                              f"{str(event['error'])[:300]}")
            return str(self._api.inspect_image(reference)["Id"])
        except _API_ERRORS as exc:
            raise ImageRegistryFailed(f"pulling {reference} failed: {_reason(exc)}") from exc

    def remote_tags(self, repository: str) -> list[str]:
        """The tags of `repository` in its registry (registry HTTP API v2, `tags/list`)."""
        registry, name = _split_registry(repository)
        url = f"{_scheme(registry)}://{registry}/v2/{name}/tags/list?n=1000"
        tags: list[str] = []
        for _ in range(20):  # pages
            data, following = _get_json(url, docker.auth.resolve_authconfig(
                docker.auth.load_config(), registry) or {})
            found = data.get("tags") if isinstance(data, dict) else None
            if found is not None and not isinstance(found, list):
                raise ImageRegistryFailed(f"the registry {registry} answered no list of tags.")
            tags += [t for t in found or [] if isinstance(t, str) and TAG.fullmatch(t)]
            if not following or len(tags) >= MAX_TAGS:
                break
            url = urllib.parse.urljoin(url, following)
        return tags[:MAX_TAGS]


def _has_tag(reference: str) -> bool:
    return ":" in reference.rpartition("/")[2]


def _split_registry(repository: str) -> tuple[str, str]:
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "registry-1.docker.io", repository if rest else f"library/{repository}"


def _scheme(registry: str) -> str:
    # Docker itself reaches registries on loopback over plain HTTP (they are "insecure" by
    # default there); every other one over HTTPS.
    return "http" if registry.startswith(_LOOPBACK) else "https"


def _get_json(url: str, auth: Mapping[str, Any]) -> tuple[object, str | None]:
    """GET a registry's JSON, answering its authentication challenge once; (the answer, the
    next page's link)."""
    try:
        return _fetch(urllib.request.Request(url))
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            raise ImageRegistryFailed(f"the registry answered {exc.code} to {_shown(url)}.") \
                from None
        challenge = exc.headers.get("WWW-Authenticate", "")
    request = urllib.request.Request(url, headers={"Authorization": _authorization(
        challenge, auth)})
    try:
        return _fetch(request)
    except urllib.error.HTTPError as exc:
        raise ImageRegistryFailed(f"the registry answered {exc.code} to {_shown(url)} "
                                  "(are your docker credentials for it valid?).") from None


def _fetch(request: urllib.request.Request) -> tuple[object, str | None]:
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as answer:
            body = answer.read(MAX_ANSWER_BYTES + 1)
            link = answer.headers.get("Link")
    except urllib.error.HTTPError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageRegistryFailed(f"the registry at {_shown(request.full_url)} does not "
                                  f"answer: {exc}") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise ImageRegistryFailed(f"the registry's answer to {_shown(request.full_url)} is too "
                                  "large.")
    try:
        data = json.loads(body)
    except ValueError:
        raise ImageRegistryFailed(f"the registry's answer to {_shown(request.full_url)} is not "
                                  "JSON.") from None
    match = re.match(r"<([^>]+)>", link or "")
    return data, match[1] if match else None


def _authorization(challenge: str, auth: Mapping[str, Any]) -> str:
    """The Authorization header that answers `challenge` (Basic, or a Bearer token asked of the
    realm the registry names), with the docker credentials for it."""
    basic = base64.b64encode(f"{auth.get('username', '')}:{auth.get('password', '')}"
                             .encode()).decode()
    if challenge.lower().startswith("basic"):
        return f"Basic {basic}"
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = fields.pop("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise ImageRegistryFailed("the registry asked for credentials in a way docker-swap "
                                  "does not follow.")
    token_url = f"{realm}?{urllib.parse.urlencode(fields)}"
    headers = {"Authorization": f"Basic {basic}"} if auth.get("username") else {}
    data, _ = _fetch(urllib.request.Request(token_url, headers=headers))
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise ImageRegistryFailed("the registry's token service gave no token.")
    return f"Bearer {token}"


def _shown(url: str) -> str:
    """A URL for a message: no query (tokens may be in it)."""
    return url.split("?", 1)[0]
