"""One Caddy container as the Caddy driver reaches it: its admin API, its files, its commands.

Everything runs inside the container through the engine (exec, archives): the admin API on
its default loopback address with bash's /dev/tcp (Debian-based images) or wget (the
official Alpine-based image), slot files read with sh and cat, renamed with mv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from docker_swap.errors import ProxyConfigInvalid, ProxyNotReady, SwapError, SwitchNotConfirmed
from docker_swap.models import Container, ExecResult
from docker_swap.proxy.base import ProxyEngine
from docker_swap.proxy.caddy_config import (
    READ_SLOTS,
    Command,
    Upstreams,
    inspect_argv,
    parse_command,
    parse_http,
    parse_inspection,
    parse_json,
    parse_slot_files,
    parse_upstreams,
    parse_version,
)

ADMIN_HOST = "127.0.0.1"
ADMIN_PORT = 2019
_HTTP_GET = ('exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\\r\\nHost: localhost:%s'
             '\\r\\n\\r\\n" "$3" "$2" >&3 && cat <&3')
ADMIN_CLIENT = f"""
if command -v bash >/dev/null 2>&1; then exec bash -c '{_HTTP_GET}' caddy-api "$@"; fi
body=$(wget -q -O- "http://$1:$2$3") && printf 'HTTP/1.0 200 OK\\r\\n\\r\\n%s' "$body"
"""
RENAME = 'while [ $# -gt 1 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'


class CaddyContainer:
    def __init__(self, engine: ProxyEngine, container: Container, timeout: float) -> None:
        self.container = container
        self.name = container.name
        self._engine = engine
        self._timeout = timeout

    def command(self) -> Command:
        """How its `caddy run` was started."""
        for process in self._engine.processes(self.container.id):
            command = parse_command(process.args)
            if command:
                return command
        raise ProxyNotReady(f"no `caddy run` process runs in {self.name}.")

    def inspect(self, command: Command, paths: Sequence[str]
                ) -> tuple[tuple[int, int, int] | None, object | None, list[str | None]]:
        """In one call: Caddy's version, the configuration in the file it was started with
        (as JSON; None when no file is named or it cannot be read: the running configuration
        is what counts) and the content of each of `paths` (None if unreadable)."""
        result = self._run(inspect_argv(command, paths))
        try:
            version, config, files = parse_inspection(result.stdout, len(paths))
        except ValueError as exc:
            raise ProxyNotReady(
                f"could not inspect Caddy in {self.name}: {result.output.strip()[:200]!r}",
                hint="docker-swap runs sh, cat and caddy inside the Caddy container.",
            ) from exc
        try:
            in_file: object | None = parse_json(config)
        except ValueError:
            in_file = None
        return parse_version(version), in_file, files

    def config(self) -> object:
        """The configuration Caddy runs now, as its admin API reports it."""
        body = self.admin("/config/")
        try:
            return parse_json(body)
        except ValueError as exc:
            raise ProxyNotReady(f"Caddy's admin API in {self.name} answered GET /config/ with "
                                f"something else than JSON: {body[:100]!r}") from exc

    def reload(self, command: Command) -> None:
        """`caddy reload` of the file it was started with; Caddy keeps its configuration when
        the new one fails to load."""
        result = self._run(command.reload_argv())
        if result.exit_code != 0:
            raise ProxyConfigInvalid(
                f"Caddy in {self.name} did not load {command.config}: "
                f"{result.output.strip()[-300:] or f'exit code {result.exit_code}'}",
            )

    def upstreams(self) -> Upstreams:
        body = self.admin("/reverse_proxy/upstreams")
        try:
            return parse_upstreams(body)
        except ValueError as exc:
            raise SwitchNotConfirmed(
                f"Caddy in {self.name} answered /reverse_proxy/upstreams with something else "
                f"than its list of upstreams ({exc})."
            ) from exc

    def admin(self, path: str) -> str:
        """GET `path` of Caddy's admin API; the body."""
        result = self._run(["sh", "-c", ADMIN_CLIENT, "caddy-api", ADMIN_HOST, str(ADMIN_PORT),
                            path])
        status, body = parse_http(result.stdout)
        if result.exit_code != 0 or status != 200:
            reason = (body.strip()[:200] if status else
                      result.output.strip()[:200] or f"exit code {result.exit_code}")
            raise ProxyNotReady(
                f"Caddy's admin API in {self.name} does not answer GET {path} at "
                f"{ADMIN_HOST}:{ADMIN_PORT}: {reason}",
                hint="Keep Caddy's admin endpoint at its default (localhost:2019); docker-swap "
                "asks it from inside the container with bash or wget.",
            )
        return body

    def read(self, paths: Sequence[str],
             error: type[SwapError] = ProxyNotReady) -> list[str | None]:
        """Each file's exact content (None when it cannot be read), in one call."""
        result = self._run(["sh", "-c", READ_SLOTS, "caddy-slots", *paths])
        try:
            if result.exit_code != 0:
                raise ValueError(result.output.strip() or f"exit code {result.exit_code}")
            return parse_slot_files(result.stdout, len(paths))
        except ValueError as exc:
            raise error(
                f"could not read the slot files in {self.name}: {exc}",
                hint="docker-swap reads them with sh and cat inside the Caddy container.",
            ) from exc

    def write(self, directory: str, files: Mapping[str, bytes]) -> None:
        self._engine.write_files(self.container.id, directory, files)

    def rename(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Each (from, to) renamed in order; some may have moved when this raises."""
        result = self._run(["sh", "-c", RENAME, "caddy-slots",
                            *(path for pair in pairs for path in pair)])
        if result.exit_code != 0:
            raise SwitchNotConfirmed(
                f"could not rename the slot files in {self.name}: "
                f"{result.output.strip() or f'exit code {result.exit_code}'}",
                hint="docker-swap renames them with sh and mv inside the Caddy container.",
            )

    def _run(self, argv: Sequence[str]) -> ExecResult:
        return self._engine.exec(self.container.id, argv, timeout=self._timeout)
