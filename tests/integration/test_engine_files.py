"""Files docker-swap writes into proxy containers are replaced atomically: a reader in the
container sees the old file or the new one, whole, never a part or nothing."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from docker_swap.engine import Engine
from testbed import images
from testbed.stack import docker

READER = ('end=$(($(date +%s)+{seconds})); while [ "$(date +%s)" -lt "$end" ]; do '
          'cat /srv/app.conf 2>/dev/null | wc -c; done')


@pytest.fixture
def container(engine: None) -> Iterator[str]:
    name = f"swaptest-files-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, images.BOOKWORM, "sleep", "300")
    docker("exec", name, "mkdir", "-p", "/srv")
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False)


@pytest.mark.parametrize("size", [99_000, 300_000], ids=["as arguments", "uploaded"])
def test_a_reader_never_sees_part_of_a_file(container: str, size: int) -> None:
    engine = Engine.connect()
    versions = [b"a" * (size - 1) + b"\n", b"b" * (size - 1) + b"\n"]
    engine.write_files(container, "/srv", {"app.conf": versions[0]})
    reader = subprocess.Popen(["docker", "exec", container, "sh", "-c",
                               READER.format(seconds=5)], stdout=subprocess.PIPE, text=True)
    for write in range(20):
        engine.write_files(container, "/srv", {"app.conf": versions[write % 2]})
    seen, _ = reader.communicate(timeout=30)
    sizes = set(seen.split())  # 0 when there was no file at that moment
    assert sizes == {str(size)}, sorted(sizes)[:5]
    # The temporary file is seen at times, under a name no `*.conf` include matches.
    listing = docker("exec", container, "ls", "-a", "/srv").stdout.split()
    assert listing == [".", "..", "app.conf"]
    assert engine.read_file(container, "/srv/app.conf") == versions[1]


def test_a_symlinked_file_is_read_through_its_link(container: str) -> None:
    docker("exec", container, "sh", "-c", "echo real > /srv/real.cfg && "
           "ln -s real.cfg /srv/link.cfg && ln -s /srv/link.cfg /srv/chain.cfg")
    engine = Engine.connect()
    assert engine.read_file(container, "/srv/link.cfg") == b"real\n"
    assert engine.read_file(container, "/srv/chain.cfg") == b"real\n"
    assert engine.read_file(container, "/srv/missing.cfg") is None
