"""Files inside containers: read (an archive, or cat where the engine cannot), and replaced
atomically (written beside their name, then renamed over it, inside the container)."""

from __future__ import annotations

import io
import logging
import secrets
import tarfile
import time
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors

from docker_swap import labels
from docker_swap.engine.containers import Containers
from docker_swap.engine.errors import API_ERRORS as _API_ERRORS
from docker_swap.engine.errors import reason as _reason
from docker_swap.engine.errors import translated as _translated
from docker_swap.errors import EngineFailed
from docker_swap.models import ExecResult

log = logging.getLogger(__name__)

_MODE_SYMLINK = 1 << 27  # Go's os.ModeSymlink, in the stat header of an archive answer
_ARGV_LIMIT = 100_000  # bytes of file content passed as exec arguments (Linux: 128 KiB each)
_READ_TIMEOUT = 10.0
# Write each file beside its final name, then rename it over that name: rename(2) within one
# folder is atomic, so a reader (nginx -t, HAProxy at its next start) sees the old file or the
# new one, never a part of one. The temporary name ends in neither .conf nor the file's name.
_WRITE_BESIDE = (
    'set -e; dir=$1; token=$2; shift 2; while [ $# -gt 1 ]; do '
    'printf "%s" "$2" > "$dir/.$1.$token"; mv -f "$dir/.$1.$token" "$dir/$1"; shift 2; done'
)
_RENAME_UPLOADED = (
    'set -e; dir=$1; token=$2; shift 2; for name; do mv -f "$dir/.$name.$token" "$dir/$name"; '
    'done'
)
_NO_SHELL = (126, 127)


class Files(Containers):
    """Reading and writing files in containers (part of Engine)."""

    _swarm_tasks: dict[str, bool]

    def read_file(self, container_id: str, path: str) -> bytes | None:
        """A file's content, None when there is none. A symbolic link is followed (the engine
        resolves it inside the container and names its target in the archive's stat)."""
        stat, data = self._archive(container_id, path)
        target = stat.get("linkTarget")
        if int(stat.get("mode") or 0) & _MODE_SYMLINK and target and target != path:
            stat, data = self._archive(container_id, str(target))
        if data is None:
            return None
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.next()
            extracted = archive.extractfile(member) if member and member.isfile() else None
            content = extracted.read() if extracted else None
        if content == b"" and stat.get("size") == 0 and self._swarm_task(container_id):
            # A Swarm config or secret is mounted from outside the container's own file
            # system and shows as its empty mount point here: read it from inside.
            shown = self.exec(container_id, ["cat", path], timeout=_READ_TIMEOUT)
            if shown.exit_code == 0:
                return shown.stdout.encode()
        return content

    def _swarm_task(self, container_id: str) -> bool:
        if container_id not in self._swarm_tasks:
            with _translated(f"inspect container {container_id[:12]}"):
                found = self._api.inspect_container(container_id)["Config"].get("Labels") or {}
            self._swarm_tasks[container_id] = labels.SWARM_TASK_ID in found
        return self._swarm_tasks[container_id]

    def _archive(self, container_id: str, path: str) -> tuple[Mapping[str, Any], bytes | None]:
        try:
            stream, stat = self._api.get_archive(container_id, path)
            return stat or {}, b"".join(stream)
        except docker.errors.NotFound:
            return {}, None
        except _API_ERRORS as exc:
            raise EngineFailed(f"could not read {path} in {container_id[:12]}: "
                               f"{_reason(exc)}") from exc

    def write_files(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        """Replace files in an existing directory of the container, each atomically: written
        beside its final name under a unique temporary name, then renamed over it, inside the
        container (one exec when the files are small text, else one upload and one exec)."""
        token = f"docker-swap-{secrets.token_hex(4)}"
        if as_arguments(files):
            pairs = [part for name, content in files.items() for part in (name, content.decode())]
            result = self._write_exec(container_id, [_WRITE_BESIDE, directory, token, *pairs])
        elif self.inspect(container_id).running:
            self._upload(container_id, directory,
                         {f".{name}.{token}": content for name, content in files.items()})
            result = self._write_exec(container_id, [_RENAME_UPLOADED, directory, token, *files])
        else:
            result = None
        if result is None:  # no exec here: the container does not run, or has no shell
            self._upload(container_id, directory, files)
        elif result.exit_code != 0:
            raise EngineFailed(f"could not write {', '.join(files)} in {directory} of "
                               f"{container_id[:12]}: {result.output.strip() or result.exit_code}")

    def _write_exec(self, container_id: str, script: list[str]) -> ExecResult | None:
        """Run a write script with sh as root; None when no exec is possible (the container
        does not run, or has no shell): the caller then uploads the files directly."""
        try:
            result = self._exec(container_id, ["sh", "-c", script[0], "docker-swap-write",
                                               *script[1:]], 30, user="0")
        except EngineFailed as exc:
            if isinstance(exc.__cause__, docker.errors.APIError) and \
                    exc.__cause__.status_code == 409:
                return None
            raise
        if result.exit_code in _NO_SHELL and "not found" in result.output:
            log.debug("no sh in %s: files written without a rename", container_id[:12])
            return None
        return result

    def _upload(self, container_id: str, directory: str, files: Mapping[str, bytes]) -> None:
        # Straight into the given names (an upload unlinks, then creates, each file). Used for
        # temporary names, and for a container that does not run: it cannot exec, so nothing
        # can rename there, and nothing reads the files until it starts, after this returns.
        with _translated(f"write {', '.join(files)} in {container_id[:12]}"):
            if not self._api.put_archive(container_id, directory, tar(files)):
                raise EngineFailed(f"the engine refused to write into {directory} "
                                   f"in {container_id[:12]}")



def tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()



def as_arguments(files: Mapping[str, bytes]) -> bool:
    """Small text files travel as exec arguments (no NUL, UTF-8, well under ARG_MAX)."""
    if sum(len(content) for content in files.values()) > _ARGV_LIMIT:
        return False
    try:
        return all(b"\0" not in content and content.decode() is not None
                   for content in files.values())
    except UnicodeDecodeError:
        return False
