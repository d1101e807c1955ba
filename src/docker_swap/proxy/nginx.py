"""The nginx driver: an upstream file per service, validated, reloaded, and proven live.

The user's nginx includes `/etc/nginx/docker-swap/*.conf` (a volume, so it survives the proxy
being recreated) and sends to the upstream named after the service. A switch writes the upstream
for the new containers, runs `nginx -t`, reloads, and then watches nginx's processes through the
engine: the switch is live once workers started by this reload run and every worker of the old
configuration is shutting down. Draining waits until those old workers have exited, because
until then they may still send requests (in flight, or on kept-alive client connections) to the
old containers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from docker_swap.errors import ProxyConfigInvalid, ProxyNotReady, SwitchNotConfirmed
from docker_swap.models import Backend, Container, ExecResult, Process
from docker_swap.proxy.base import Drained, ProxyEngine, Serving, covers, weighed
from docker_swap.proxy.nginx_config import (
    DEFAULT_DIRECTORY,
    DEFAULT_KEEPALIVE_MIN_TIMEOUT,
    KEEPALIVE_FILE,
    KEEPALIVE_MIN_TIMEOUT_SINCE,
    parse_dump,
    parse_upstream,
    parse_version,
    render_keepalive,
    render_upstream,
    sets_keepalive_min_timeout,
    setup_problem,
)
from docker_swap.safety.failpoints import failpoint

_MASTER = "nginx: master process"
_WORKER = "nginx: worker process"
_SHUTTING_DOWN = "is shutting down"
_POLL_SECONDS = 0.005  # on top of the ~15 ms each look at the processes takes
_DRAIN_POLL_SECONDS = 0.05
_NO_UPSTREAM = "# Written by docker-swap: no upstream (restored after a failed first deploy).\n"


@dataclass
class _Nginx:
    """One running nginx: its container, how to call it, and our file as it is now."""

    container: Container
    command: tuple[str, ...]
    master_is_main_process: bool
    version: tuple[int, int, int] | None
    keepalive_min_timeout: bool
    """docker-swap writes keepalive_min_timeout (supported, and not set by the user)."""
    keepalive_loaded: bool
    """The running workers already have it: it is not docker-swap's first time here."""
    upstream_file: bytes | None

    @property
    def name(self) -> str:
        return self.container.name


class NginxDriver:
    def __init__(
        self,
        engine: ProxyEngine,
        containers: Sequence[Container],
        upstream: str,
        switch_timeout: float,
        directory: str = DEFAULT_DIRECTORY,
    ) -> None:
        self.description = f"nginx ({', '.join(c.name for c in containers)})"
        self._engine = engine
        self._containers = list(containers)
        self._upstream = upstream
        self._switch_timeout = switch_timeout
        self._directory = directory
        self._nginxes: list[_Nginx] = []
        self._retiring: dict[str, set[int]] = {}
        self._staged: tuple[Backend, ...] | None = None

    @property
    def upstream_file(self) -> str:
        return f"{self._upstream}.conf"

    def check(self) -> list[str]:
        self._nginxes = [self._inspect(container) for container in self._containers]
        old = sorted({n.version for n in self._nginxes
                      if n.version and not _supports_min(n.version)})
        notes = [_keepalive_note(version) for version in old[:1]]
        first = [n.name for n in self._nginxes if n.keepalive_min_timeout and not
                 n.keepalive_loaded]
        if first:
            notes.append(
                f"nginx in {', '.join(first)} has not loaded keepalive_min_timeout yet: "
                "docker-swap adds it now, so this reload may still reset idle keep-alive "
                "clients once and later ones will not. Set keepalive_min_timeout in nginx's "
                "configuration (or run `docker-swap sync` before traffic comes) to avoid it."
            )
        return notes

    def status(self) -> str:
        parts = []
        for nginx in self._nginxes:
            version = ".".join(map(str, nginx.version)) if nginx.version else "of unknown version"
            if nginx.keepalive_min_timeout:
                keepalive = f"keepalive_min_timeout {DEFAULT_KEEPALIVE_MIN_TIMEOUT} (docker-swap)"
            elif _supports_min(nginx.version):
                keepalive = "keepalive_min_timeout set in its configuration"
            else:
                keepalive = "no keepalive_min_timeout: reloads reset idle keep-alive clients"
            parts.append(f"{nginx.name}: nginx {version}, {keepalive}")
        return "; ".join(parts)

    def serving(self) -> list[Serving]:
        """The servers of the upstream file in each nginx (what its last reload loaded)."""
        found = []
        for container in self._containers:
            content = self._engine.read_file(
                container.id, f"{self._directory}/{self.upstream_file}") or b""
            servers = parse_upstream(content.decode(errors="replace"))
            found.append(Serving(f"nginx in {container.name}", tuple(s for s, _ in servers),
                                 tuple(w for _, w in servers)))
        return found

    def sticky_problem(self) -> str | None:
        return ("nginx cannot keep a client on one side by a cookie (its `sticky` directive "
                "is nginx Plus only): drop --sticky, or put HAProxy or Caddy in front.")

    def stage(self, backends: Sequence[Backend], serving: Sequence[Backend]) -> None:
        if not self._nginxes:
            self.check()
        content = render_upstream(self._upstream, serving, _now(), standby=backends).encode()
        # Marked before the write: a stage cut short (a signal, an engine error) is put back
        # by `unstage` too, or nginx could not start again once the staged containers are gone.
        self._staged = tuple(backends)
        self._write(content)
        failpoint("stage")
        self._validate()

    def unstage(self) -> None:
        if self._staged is not None:
            self._put_back()
            self._staged = None

    def switch(self, backends: Sequence[Backend]) -> str:
        if not self._nginxes:
            self.check()
        content = render_upstream(self._upstream, backends, _now()).encode()
        with ThreadPoolExecutor(1) as pool:  # which workers run now, read while we write
            serving = pool.submit(lambda: [self._worker_pids(n) for n in self._nginxes])
            self._write(content)
            if self._staged != tuple(backends):
                self._validate()
            # else nginx accepted these very servers when they were staged; only `down` goes
            before = serving.result()
        self._staged = None
        failpoint("switch")
        deadline = time.monotonic() + self._switch_timeout
        for nginx, workers in zip(self._nginxes, before, strict=True):
            self._retiring[nginx.container.id] = self._reload(nginx, workers, deadline)
            nginx.upstream_file = content
        return f"upstream {self._upstream} -> {weighed(backends)}"

    def drain(self, timeout: float) -> Drained:
        if not self._retiring:  # no switch in this process (recovery): every old worker counts
            self._retiring = {
                n.container.id: {p.pid for p in self._workers(n.container.id)
                                 if _SHUTTING_DOWN in p.args}
                for n in self._nginxes
            }
        started = time.monotonic()
        waited = sum(len(pids) for pids in self._retiring.values())
        while True:
            busy = sum(len(self._still_running(cid, pids)) for cid, pids in self._retiring.items())
            seconds = time.monotonic() - started
            if not busy:
                return Drained(seconds, True, f"{waited} old nginx worker(s) finished")
            if seconds >= timeout:
                return Drained(
                    seconds, False, f"{busy} old nginx worker(s) still busy after {timeout:g} s"
                )
            time.sleep(_DRAIN_POLL_SECONDS)

    def _inspect(self, container: Container) -> _Nginx:
        master = next(
            (p for p in self._engine.processes(container.id) if p.args.startswith(_MASTER)), None
        )
        if master is None:
            raise ProxyNotReady(f"no nginx master process runs in {container.name}.")
        if not any(covers(mount, self._directory) for mount in container.mounts):
            raise ProxyNotReady(
                f"{self._directory} in {container.name} is not on a volume, so the upstream "
                "docker-swap writes would be lost when the proxy is recreated.",
                hint=f"Add `- docker-swap:{self._directory}` to the proxy's volumes "
                "(and `docker-swap:` under the top-level volumes).",
            )
        command = _command(master.args)
        with ThreadPoolExecutor(2) as pool:  # two independent round trips to the engine
            dumped = pool.submit(self._nginx, container, command, "-v", "-T")
            current = pool.submit(
                self._engine.read_file, container.id, f"{self._directory}/{self.upstream_file}"
            )
            dump, upstream_file = dumped.result(), current.result()
        if dump.exit_code != 0:
            raise ProxyNotReady(f"`nginx -T` fails in {container.name}: {_nginx_error(dump)}")
        files = parse_dump(dump.stdout)  # stderr (version, test result) would interleave
        problem = setup_problem(files, self._upstream, self._directory)
        if problem:
            raise ProxyNotReady(f"{container.name}: {problem}")
        version = parse_version(dump.stderr)
        return _Nginx(
            container=container,
            command=command,
            master_is_main_process=master.pid == container.pid,
            version=version,
            keepalive_min_timeout=_supports_min(version) and not sets_keepalive_min_timeout(
                files, self._directory
            ),
            keepalive_loaded=f"{self._directory}/{KEEPALIVE_FILE}" in files,
            upstream_file=upstream_file,
        )

    def _write(self, content: bytes) -> None:
        for nginx in self._nginxes:
            files = {self.upstream_file: content}
            if nginx.keepalive_min_timeout:
                files[KEEPALIVE_FILE] = render_keepalive(DEFAULT_KEEPALIVE_MIN_TIMEOUT).encode()
            self._engine.write_files(nginx.container.id, self._directory, files)

    def _validate(self) -> None:
        for nginx in self._nginxes:
            result = self._nginx(nginx.container, nginx.command, "-t")
            if result.exit_code != 0:
                self._put_back()
                raise ProxyConfigInvalid(
                    f"nginx in {nginx.name} rejected the new upstream: {_nginx_error(result)}"
                )

    def _put_back(self) -> None:
        """Our file as it was, in every nginx; none of them has loaded the rejected one."""
        for nginx in self._nginxes:
            previous = nginx.upstream_file or _NO_UPSTREAM.encode()
            self._engine.write_files(
                nginx.container.id, self._directory, {self.upstream_file: previous}
            )

    def _worker_pids(self, nginx: _Nginx) -> set[int]:
        """Every worker now: those that serve, and those of an earlier reload still finishing
        requests (to the containers before those, perhaps): the drain waits for them all."""
        return {p.pid for p in self._workers(nginx.container.id)}

    def _reload(self, nginx: _Nginx, before: set[int], deadline: float) -> set[int]:
        """Reload and return the old workers' pids (`before`) once new workers took over."""
        cid = nginx.container.id
        if nginx.master_is_main_process:
            self._engine.signal(cid, "SIGHUP")  # what `nginx -s reload` sends, without an exec
        else:
            result = self._nginx(nginx.container, nginx.command, "-s", "reload")
            if result.exit_code != 0:
                raise SwitchNotConfirmed(
                    f"`nginx -s reload` failed in {nginx.name}: {_nginx_error(result)}"
                )
        while True:
            workers = self._workers(cid)
            fresh = [p for p in workers if p.pid not in before]
            lingering = [p for p in workers if p.pid in before and _SHUTTING_DOWN not in p.args]
            if fresh and not lingering:
                return before
            if time.monotonic() > deadline:
                raise SwitchNotConfirmed(
                    f"nginx in {nginx.name} did not start workers with the new upstream "
                    f"within {self._switch_timeout:g} s.",
                    hint=f"See `docker logs {nginx.name}` for the reason nginx gave.",
                )
            time.sleep(_POLL_SECONDS)

    def _workers(self, container_id: str) -> list[Process]:
        return [p for p in self._engine.processes(container_id) if p.args.startswith(_WORKER)]

    def _still_running(self, container_id: str, pids: set[int]) -> set[int]:
        return pids & {p.pid for p in self._workers(container_id)}

    def _nginx(self, container: Container, command: Sequence[str], *args: str) -> ExecResult:
        return self._engine.exec(container.id, [*command, *args], timeout=self._switch_timeout)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _command(master_args: str) -> tuple[str, ...]:
    """The nginx binary and its -c/-p options, from the master's title."""
    words = master_args.removeprefix(_MASTER).split()
    binary = words[0] if words else "nginx"
    options = re.findall(r"(?:^|\s)(-[cp])\s+(\S+)", " ".join(words[1:]))
    return (binary, *[part for pair in options for part in pair])



def _supports_min(version: tuple[int, int, int] | None) -> bool:
    """nginx has keepalive_min_timeout (1.27.4 and later)."""
    return version is not None and version >= KEEPALIVE_MIN_TIMEOUT_SINCE


def _keepalive_note(version: tuple[int, int, int] | None) -> str:
    shown = ".".join(map(str, version)) if version else "this nginx"
    return (
        f"nginx {shown} closes idle keep-alive client connections when it reloads: a client "
        "that sends on one at that moment gets a reset (about one failed request per busy "
        "keep-alive connection per deploy). nginx 1.27.4 or later avoids it; docker-swap then "
        "sets keepalive_min_timeout."
    )


def _nginx_error(result: ExecResult) -> str:
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    emerg = [line for line in lines if "[emerg]" in line or "[alert]" in line]
    chosen = (emerg or lines or [f"exit code {result.exit_code}"])[-1]
    return re.sub(r"^nginx: \[(emerg|alert)\] ", "", chosen)


class SeedEngine(ProxyEngine, Protocol):
    def inspect(self, container_id: str) -> Container: ...

    def start(self, container_id: str) -> None: ...

    def logs(self, container_id: str, tail: int = 50) -> str: ...


def seed(
    engine: SeedEngine,
    containers: Sequence[Container],
    upstream: str,
    backends: Sequence[Backend],
    timeout: float,
    directory: str = DEFAULT_DIRECTORY,
) -> None:
    """Give stopped nginx containers their first upstream, then start them.

    An nginx whose configuration sends to the upstream (`fastcgi_pass app;`) cannot start before
    the upstream exists; the engine writes into a stopped container's volume just as well.
    """
    content = render_upstream(upstream, backends, "first upstream").encode()
    for container in containers:
        engine.write_files(container.id, directory, {f"{upstream}.conf": content})
        if container.status != "restarting":  # a restart policy retries by itself
            engine.start(container.id)
    deadline = time.monotonic() + timeout
    for container in containers:
        while not _serving(engine, container.id):
            if time.monotonic() > deadline:
                last = engine.logs(container.id, tail=1).strip() or "no log output"
                raise ProxyNotReady(f"nginx in {container.name} still does not start: {last}")
            time.sleep(0.1)


def _serving(engine: SeedEngine, container_id: str) -> bool:
    if not engine.inspect(container_id).running:
        return False
    titles = [p.args for p in engine.processes(container_id)]
    return any(t.startswith(_MASTER) for t in titles) and any(t.startswith(_WORKER) for t in titles)
