"""A real image registry for the tests: Debian's `docker-registry` (the CNCF distribution
registry, installed by scripts/prepare-machine) on 127.0.0.1, its storage in a folder of the
test, and versions of the test app to push to it. Docker reaches a registry on loopback over
plain HTTP by default, so no certificate is needed."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from . import images

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ImageRegistry:
    """One registry process; `stop()` and `start()` again keep what was pushed (its folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ImageRegistry:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.yml"
        config.write_text(CONFIG.format(data=self.folder / "data", port=self.port))
        with (self.folder / "registry.log").open("ab") as log:  # the process keeps its own
            self._process = subprocess.Popen(["docker-registry", "serve", str(config)],
                                             stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while not self.answers():
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"docker-registry did not start: see {self.folder}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=20)
        self._process = None

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def reference(self, name: str, tag: str) -> str:
        return f"{self.host}/{name}:{tag}"

    def push(self, image: str, name: str, tag: str) -> str:
        """Tag the local `image` as NAME:TAG of this registry and push it; its reference."""
        reference = self.reference(name, tag)
        subprocess.run(["docker", "tag", image, reference], check=True, capture_output=True)
        subprocess.run(["docker", "push", reference], check=True, capture_output=True)
        return reference


def app_version(version: str, **environment: str) -> str:
    """The test app with VERSION (and `environment`) built into it: an image of its own (its
    tag names the version), as a registry would hold each release of an app."""
    tag = f"{images.APP}:{version}" + "".join(f"-{k.lower()}" for k in sorted(environment))
    lines = [f"FROM {images.APP}", f"ENV VERSION={version}",
             *(f"ENV {key}={value}" for key, value in sorted(environment.items()))]
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input="\n".join(lines).encode(),
                   check=True, capture_output=True)
    return tag
