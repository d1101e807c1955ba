"""Which tag `autoupdate` moves a service to, by its policy (pure).

    digest  the same tag: only what it points to moves (the default for a service named on the
            command line)
    patch   the newest tag of the same MAJOR.MINOR (1.4.2 -> 1.4.7)
    minor   the newest tag of the same MAJOR (1.4.2 -> 1.9.0)
    major   the newest tag (1.4.2 -> 3.0.1)

A tag is a version when it is `MAJOR.MINOR.PATCH`, with an optional `v` before and an optional
`-SUFFIX` after (`v1.4.2`, `1.4.2-alpine`); it only moves to tags written the same way (same
`v`, same suffix), so `1.4.2-alpine` never becomes `1.5.0-debian`, and never to a pre-release
of another shape. A tag that is no version (`latest`, `stable`) is followed by digest whatever
the policy says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from docker_swap.options import AUTOUPDATE_POLICIES

POLICIES = AUTOUPDATE_POLICIES
_VERSION = re.compile(r"(v?)(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})"
                      r"(-[A-Za-z0-9][A-Za-z0-9.]{0,40})?")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int
    prefix: str = ""
    suffix: str = ""

    @classmethod
    def parse(cls, tag: str) -> Version | None:
        match = _VERSION.fullmatch(tag)
        if match is None:
            return None
        return cls(int(match[2]), int(match[3]), int(match[4]), match[1], match[5] or "")

    def same_shape(self, other: Version) -> bool:
        return (self.prefix, self.suffix) == (other.prefix, other.suffix)

    def allowed_by(self, policy: str, current: Version) -> bool:
        """This version is one `policy` lets `current` move to (it is newer, and within it)."""
        if not self.same_shape(current) or self.numbers <= current.numbers:
            return False
        if policy == "patch":
            return self.numbers[:2] == current.numbers[:2]
        if policy == "minor":
            return self.major == current.major
        return policy == "major"

    @property
    def numbers(self) -> tuple[int, int, int]:
        return self.major, self.minor, self.patch


def next_tag(current: str, tags: Iterable[str], policy: str) -> str | None:
    """The tag to move to from `current` among the registry's `tags`, or None to stay."""
    now = Version.parse(current)
    if now is None or policy not in ("patch", "minor", "major"):
        return None
    allowed = [(v.numbers, tag) for tag in tags
               if (v := Version.parse(tag)) is not None and v.allowed_by(policy, now)]
    return max(allowed)[1] if allowed else None


def split_reference(reference: str) -> tuple[str, str]:
    """`REPOSITORY[:TAG]` as (REPOSITORY, TAG); the tag `latest` when none is written (a digest
    reference, `REPO@sha256:...`, has none: its tag is '')."""
    if "@" in reference:
        return reference.split("@", 1)[0], ""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:  # `host:port/repo`: that colon is the port's
        return reference, "latest"
    return name, tag
