"""The user's compose files and env files, changed where `autoupdate` moves a service to a newer
tag: only the one line that names it, written atomically (a new file renamed over the old, its
mode kept), and given back as it was if the update rolls back.

The tag is where the service's `image:` line writes it: in that line (`image: repo:1.4.2`), or,
when the line takes it from a variable (`image: repo:${APP_TAG}`), in the env file compose reads
it from (the last --env-file, else `.env` in the project's folder).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docker_swap.compose import locate
from docker_swap.errors import InvalidSettings

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}$")
"""The tag written as a variable (`${APP_TAG}`, `${APP_TAG:-1.0.0}`) at the end of the line."""


@dataclass(frozen=True)
class Edit:
    """One line of one file, before and after."""

    path: Path
    number: int
    before: str
    after: str

    def describe(self) -> str:
        return f"{self.path}:{self.number}: {self.before.strip()} -> {self.after.strip()}"


def tag_edit(files: Sequence[str], env_files: Sequence[str], folder: str, service: str,
             old_tag: str, new_tag: str) -> Edit:
    """The edit that makes `service` name `new_tag` instead of `old_tag`; InvalidSettings
    (one sentence) when docker-swap cannot tell where to write it."""
    where = locate(files, service, "image")
    if where is None:
        raise InvalidSettings(f"no compose file of {service} writes its `image:` line, so "
                              "autoupdate cannot move it to another tag.")
    path, number = Path(where[0]).resolve(), where[1]
    line = path.read_text().splitlines(keepends=True)[number - 1]
    value = line.split("image:", 1)[1].strip().strip("'\"")
    variable = _VARIABLE.search(value)
    tag = value.rpartition(":")[2]
    if variable and value[variable.start() - 1:variable.start()] == ":":
        return _env_edit(variable[1], env_files, folder, service, old_tag, new_tag)
    if tag != old_tag:
        raise InvalidSettings(f"{path}:{number} names {value}, not the tag {old_tag} that "
                              f"{service} runs, so autoupdate cannot move it.")
    head, _, rest = line.rpartition(f":{old_tag}")
    return Edit(path, number, line, f"{head}:{new_tag}{rest}")


def _env_edit(name: str, env_files: Sequence[str], folder: str, service: str, old_tag: str,
              new_tag: str) -> Edit:
    if name in os.environ:
        raise InvalidSettings(f"the tag of {service} comes from ${{{name}}}, which this "
                              "process's environment sets: autoupdate cannot change it there.",
                              hint=f"Set {name} in the env file instead (`.env`, or "
                              "--env-file), or write the tag in the compose file.")
    path = Path(env_files[-1] if env_files else Path(folder) / ".env").resolve()
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    for number, line in enumerate(lines, start=1):
        key, _, value = line.partition("=")
        if key.strip().removeprefix("export ").strip() == name:
            if value.strip().strip("'\"") != old_tag:
                raise InvalidSettings(f"{path}:{number} sets {name} to {value.strip()}, not "
                                      f"{old_tag}, the tag {service} runs.")
            return Edit(path, number, line, f"{key}={new_tag}\n")
    raise InvalidSettings(f"{path} does not set {name}, which the tag of {service} comes from.",
                          hint=f"Add `{name}={old_tag}` to it.")


def apply(edit: Edit, *, back: bool = False) -> None:
    """Write the edit (or, `back`, undo it) atomically; InvalidSettings if the line is no
    longer what it was (someone else changed the file)."""
    want, put = (edit.after, edit.before) if back else (edit.before, edit.after)
    lines = edit.path.read_text().splitlines(keepends=True)
    if len(lines) < edit.number or lines[edit.number - 1] != want:
        raise InvalidSettings(f"{edit.path}:{edit.number} changed meanwhile; autoupdate left "
                              "it alone.")
    lines[edit.number - 1] = put
    mode = edit.path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=edit.path.parent, prefix=f".{edit.path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write("".join(lines))
        os.chmod(temporary, mode)
        os.replace(temporary, edit.path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
