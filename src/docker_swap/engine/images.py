"""Images on the engine: inspect, list, tag and untag, and the label-only images that hold
release records."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping, Sequence

import docker
import docker.errors

from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.engine.errors import translated as _translated
from docker_swap.engine.parsing import dockerfile_quoted, split_reference, tags_of
from docker_swap.errors import EngineFailed
from docker_swap.models import Image


class Images:
    """The images part of Engine."""

    _api: docker.APIClient

    def has_image(self, reference: str) -> bool:
        try:
            self._api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not inspect image {reference}: {_reason(exc)}") from exc
        return True

    def image_id(self, reference: str) -> str | None:
        """The ID of the local image `reference` names, or None when there is none."""
        try:
            return str(self._api.inspect_image(reference)["Id"])
        except docker.errors.ImageNotFound:
            return None
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not inspect image {reference}: {_reason(exc)}") from exc

    def image(self, reference: str) -> Image | None:
        """The image a reference (ID, or repository:tag) names now, or None."""
        try:
            attrs = self._api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return None
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not inspect image {reference}: {_reason(exc)}") from exc
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        return Image(str(attrs["Id"]), tags_of(attrs.get("RepoTags")), dict(labels))

    def images(self, *, labels: Sequence[str] = (), repository: str | None = None) -> list[Image]:
        """Images that carry every `KEY=VALUE` of `labels`, or one of `repository`'s tags."""
        filters = {"label": list(labels)} if labels else None
        with _translated("list images"):
            summaries = self._api.images(name=repository, filters=filters)
        return [Image(str(s["Id"]), tags_of(s.get("RepoTags")), dict(s.get("Labels") or {}))
                for s in summaries]

    def import_labels(self, repository: str, tag: str, labels: Mapping[str, str]) -> str:
        """Make an image that holds nothing but `labels` (the import of an empty tarball),
        tagged repository:tag; return its ID."""
        empty = io.BytesIO()
        with tarfile.open(fileobj=empty, mode="w"):
            pass
        changes = [f"LABEL {key}={dockerfile_quoted(value)}" for key, value in labels.items()]
        with _translated(f"write {repository}:{tag}"):
            answer = self._api.import_image_from_data(
                empty.getvalue(), repository=repository, tag=tag, changes=changes)
        last = str(answer).strip().splitlines()[-1:] or ["{}"]
        return str(json.loads(last[0]).get("status", ""))

    def tag(self, image_id: str, reference: str) -> None:
        """Point `reference` (repository[:tag]) at the image."""
        repository, tag = split_reference(reference)
        with _translated(f"tag {image_id[:19]} as {reference}"):
            if not self._api.tag(image_id, repository, tag):
                raise EngineFailed(f"the engine refused to tag {image_id[:19]} as {reference}")

    def untag(self, reference: str) -> None:
        """Remove the tag; the image goes too once no other tag or container holds it."""
        try:
            self._api.remove_image(reference, force=True, noprune=True)
        except docker.errors.ImageNotFound:
            return
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove the tag {reference}: {_reason(exc)}") from exc
