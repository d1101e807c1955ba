"""What `autoupdate` remembers between checks and restarts, per service: the digest it last
found, and the digests whose update failed (they are not tried again; a new digest is).

One JSON file in the state folder (`autoupdate.json`), written atomically; a file that cannot
be read is set aside with a note, never a reason to stop following.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from docker_swap.safety.journal import state_dir

FILE = "autoupdate.json"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_FAILED = 20
"""Failed digests kept per service (the oldest go first)."""


@dataclass
class Followed:
    """One service's memory."""

    seen: str = ""
    failed: list[str] = field(default_factory=list)


class FollowState:
    """The services of one project, as `autoupdate` last left them."""

    def __init__(self, project: str, root: Path | None = None) -> None:
        self.project = project
        self.path = (root or state_dir()) / FILE
        self.notes: list[str] = []
        self._all = self._read()

    def get(self, service: str) -> Followed:
        data = self._all.get(f"{self.project}/{service}") or {}
        listed = data.get("failed")
        failed = [d for d in listed if isinstance(d, str) and _DIGEST.fullmatch(d)] \
            if isinstance(listed, list) else []
        seen = data.get("seen", "")
        return Followed(seen if isinstance(seen, str) and _DIGEST.fullmatch(seen) else "",
                        failed)

    def remember(self, service: str, followed: Followed) -> None:
        self._all[f"{self.project}/{service}"] = {
            "seen": followed.seen, "failed": followed.failed[-MAX_FAILED:]}
        self._write()

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self.notes.append(f"{self.path} could not be read ({exc}); autoupdate starts "
                              "afresh (digests that failed may be tried once more).")
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE}.")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(self._all, out, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
