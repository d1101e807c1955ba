"""docker-swap's own state on the engine: markers (containers that never start: the deploy
lock) and records (volumes that are never mounted: the journal), both found by label."""

from __future__ import annotations

from collections.abc import Mapping

import docker
import docker.errors

from docker_swap import labels
from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.engine.errors import translated as _translated
from docker_swap.engine.files import tar
from docker_swap.engine.parsing import epoch
from docker_swap.errors import EngineFailed
from docker_swap.models import Marker

_NEVER_STARTS = ["/docker-swap: a marker, never started"]
# A container inherits its image's labels, and compose labels the images it builds with the
# project and service: a marker made from one must not pass for one of the service's own.
_NOT_COMPOSE = dict.fromkeys([labels.COMPOSE_PROJECT, labels.COMPOSE_SERVICE,
                              labels.COMPOSE_NUMBER, labels.COMPOSE_ONEOFF], "")


class Markers:
    """The state docker-swap keeps on the engine (part of Engine)."""

    _api: docker.APIClient
    _image_volumes: dict[str, list[str]]

    def create_marker(self, name: str, image: str, labels: Mapping[str, str]) -> str | None:
        """Create a marker; its ID, or None when a container of that name exists (the engine
        makes names unique, so of two machines creating the same name one gets None)."""
        volumes = self._volumes_of(image)
        with _translated(f"create {name}"):
            try:
                created = self._api.create_container(
                    image, name=name, labels={**_NOT_COMPOSE, **labels},
                    entrypoint=_NEVER_STARTS,
                    command=[], network_disabled=True,
                    # The image's VOLUMEs would each make an anonymous volume: cover them.
                    host_config=self._api.create_host_config(
                        network_mode="none", tmpfs=dict.fromkeys(volumes, "")),
                )
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    return None
                raise
        return str(created["Id"])

    def markers(self, labels: Mapping[str, str]) -> list[Marker]:
        """The markers that carry all of `labels`, in one call."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with _translated("list docker-swap's markers"):
            found = self._api.containers(all=True, filters=filters)
        return [Marker(id=str(c["Id"]), name=str((c.get("Names") or ["/"])[0]).lstrip("/"),
                       labels=dict(c.get("Labels") or {}), created=float(c.get("Created") or 0),
                       image=str(c.get("ImageID") or ""))
                for c in found]

    def remove_marker(self, marker_id: str) -> bool:
        """Remove a marker by ID; False when it was gone already (someone else removed it)."""
        try:
            self._api.remove_container(marker_id, v=True, force=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # its removal is already in progress
                return False
            raise EngineFailed(f"could not remove {marker_id[:12]}: {_reason(exc)}") from exc
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove {marker_id[:12]}: {_reason(exc)}") from exc
        return True

    def write_marker_file(self, marker_id: str, name: str, content: bytes) -> bool:
        """Write a file at the root of a marker; False when the marker is gone."""
        try:
            return bool(self._api.put_archive(marker_id, "/", tar({name: content})))
        except docker.errors.NotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not write {name} in {marker_id[:12]}: "
                               f"{_reason(exc)}") from exc

    def create_record(self, name: str, labels: Mapping[str, str]) -> bool:
        """Create a record; False when one of that name exists with other labels (the engine
        creates a volume name once, and returns the existing one to a later create)."""
        with _translated(f"create {name}"):
            created = self._api.create_volume(name, labels=dict(labels))
        return dict(created.get("Labels") or {}) == dict(labels)

    def records(self, labels: Mapping[str, str]) -> list[Marker]:
        """The records that carry all of `labels`, in one call (a record's id is its name)."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with _translated("list docker-swap's journal"):
            found = self._api.volumes(filters=filters).get("Volumes") or []
        return [Marker(id=str(v["Name"]), name=str(v["Name"]), labels=dict(v.get("Labels") or {}),
                       created=epoch(str(v.get("CreatedAt") or "")) or 0.0) for v in found]

    def remove_record(self, name: str) -> bool:
        """Remove a record; False when it was gone already."""
        try:
            self._api.remove_volume(name, force=True)
        except docker.errors.NotFound:
            return False
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not remove {name}: {_reason(exc)}") from exc
        return True

    def _volumes_of(self, image: str) -> list[str]:
        if image not in self._image_volumes:
            with _translated(f"inspect image {image[:19]}"):
                config = self._api.inspect_image(image).get("Config") or {}
            self._image_volumes[image] = sorted(config.get("Volumes") or {})
        return self._image_volumes[image]
