"""`up` on a whole project, real parts: an app behind nginx (3 replicas, parallelism 1), an api
behind HAProxy (2 replicas, parallelism 2), a worker with no proxy, a database on a fixed host
port, and both proxies. One stack for the module: each test starts from where the previous one
left it (v1, then v2 everywhere, then failed attempts that leave v2)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.load import MIXED, Load, Result
from testbed.project import (
    container_counts,
    drop_images,
    free_port,
    own_images,
    up_compose,
    write_extras,
)
from testbed.stack import NGINX_HTTP, Stack, docker

V2 = {"APP_VERSION": "v2", "API_VERSION": "v2", "WORKER_VERSION": "v2"}
LOAD_SECONDS = 90
"""Long enough to cover an `up` on a busy machine; stopped once the `up` has ended."""
SERVICES = ("app", "api", "worker", "db", "proxy", "haproxy")


@pytest.fixture(scope="module")
def stack(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("up")
    tags = own_images(uuid.uuid4().hex[:8])
    made = Stack(folder / "project", up_compose(free_port(), tags), NGINX_HTTP)
    made.env = {"DOCKER_SWAP_STATE_DIR": str(folder / "state")}
    write_extras(made.folder)
    try:
        made.up()
        for service in ("app", "api"):
            synced = made.swap("sync", service)
            assert synced.returncode == 0, synced.stderr
        for proxy in ("proxy", "haproxy"):
            wait_warm(made, proxy)
        yield made
    finally:
        made.down()
        drop_images(tags)


def wait_warm(stack: Stack, proxy: str, version: str = "v1", seconds: float = 30) -> None:
    """Until every replica answers: a first 200 may come while the others still warm up."""
    deadline = time.monotonic() + seconds
    answers = 0
    while answers < 20:
        assert time.monotonic() < deadline, f"{proxy} did not serve {version} from every replica"
        try:
            answers = answers + 1 if stack.get(proxy=proxy) == (200, version) else 0
        except OSError:
            answers = 0
        time.sleep(0.05)


class Sampler(threading.Thread):
    """While `up` runs: the most containers each service had at once, and the fewest backends
    each proxy sent new requests to (nginx's upstream without `down` servers; HAProxy's
    servers in state ready, not draining)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.most = stack, Counter[str]()
        self.fewest: dict[str, int] = {}
        self.samples = 0
        self._finished = threading.Event()

    def run(self) -> None:
        while not self._finished.is_set():
            for service, count in container_counts(self.stack.name).items():
                self.most[service] = max(self.most[service], count)
            for proxy, serving in (("nginx", nginx_serving(self.stack)),
                                   ("haproxy", haproxy_serving(self.stack))):
                if serving is not None:
                    count = len(serving)
                    self.fewest[proxy] = min(self.fewest.get(proxy, count), count)
            self.samples += 1
            self._finished.wait(0.05)

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._finished.set()
        self.join()


def nginx_serving(stack: Stack) -> list[str] | None:
    """None when the file was read while docker-swap rewrote it (nginx reads it only at a
    reload, after the write)."""
    if not stack.upstream_file().rstrip().endswith("}"):
        return None
    return [line for line in stack.upstream_servers() if not line.endswith(" down;")]


def haproxy_serving(stack: Stack) -> list[str]:
    state = docker("exec", str(stack.containers("haproxy")[0]["ID"]), "bash", "-c",
                   'exec 3<>/dev/tcp/127.0.0.1/9999 && echo "$0" >&3 && cat <&3',
                   "show servers state api").stdout
    fields = [line.split() for line in state.splitlines()]
    return [f"{f[4]}:{f[18]}" for f in fields if len(f) > 18 and f[0].isdigit()
            and f[5] == "2" and not int(f[6]) & 0x3b]


def ids(stack: Stack) -> dict[str, list[str]]:
    return {service: stack.container_ids(service) for service in SERVICES}


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {service["name"]: service for service in report["services"]}


def versions(stack: Stack, proxy: str = "proxy", requests: int = 12) -> Counter[str]:
    return Counter(stack.get(proxy=proxy)[1] for _ in range(requests))


def describe(results: list[Result]) -> str:
    return "\n".join(r.describe() for r in results)


def test_dry_run_names_every_action_and_changes_nothing(stack: Stack) -> None:
    before = ids(stack)

    report = stack.swap_json("up", "--dry-run", env=V2)

    assert report["exit_code"] == 0, report
    assert report["result"] == "planned"
    actions = {name: s["action"] for name, s in by_name(report).items()}
    assert actions == {"app": "swap", "api": "swap", "worker": "replace", "db": "unchanged",
                       "proxy": "unchanged", "haproxy": "unchanged"}
    assert "3 batch(es) of 1" in by_name(report)["app"]["reason"]
    assert by_name(report)["app"]["planned_batches"] == [1, 1, 1]
    assert by_name(report)["api"]["planned_batches"] == [2]
    assert by_name(report)["worker"]["depends_on"] == ["api"]
    assert "1 batch(es) of 2" in by_name(report)["api"]["reason"]
    names = [s["name"] for s in report["services"]]
    assert names.index("db") < names.index("app") < names.index("proxy")
    assert ids(stack) == before


def test_up_under_load_on_both_proxies_fails_no_request(stack: Stack) -> None:
    before = ids(stack)
    with Load(stack.url(), MIXED, LOAD_SECONDS) as nginx_load, \
            Load(stack.url("haproxy"), MIXED, LOAD_SECONDS) as haproxy_load:
        time.sleep(2)
        started = time.monotonic()
        assert (len(nginx_serving(stack) or []), len(haproxy_serving(stack))) == (3, 2)
        with Sampler(stack) as sampler:
            report = stack.swap_json("up", env=V2)
        assert time.monotonic() - started < LOAD_SECONDS - 3, "the load did not cover up"
        time.sleep(2)  # what the proxies do right after the up, under the same load
        results = nginx_load.stop() + haproxy_load.stop()

    assert report["exit_code"] == 0, report
    assert sum(r.failed for r in results) == 0, describe(results)
    services = by_name(report)
    assert {n: s["outcome"] for n, s in services.items()} == {
        "app": "done", "api": "done", "worker": "done", "db": "unchanged",
        "proxy": "unchanged", "haproxy": "unchanged"}
    assert [len(b["new"]) for b in services["app"]["batches"]] == [1, 1, 1]
    assert [p["name"] for p in services["app"]["batches"][0]["phases"]] == [
        "start", "ready", "switch", "drain", "retire"]  # each batch's phases, in order
    for before_it, after_it in (("api", "worker"), ("app", "proxy"), ("api", "haproxy")):
        first, then = services[before_it], services[after_it]
        rounding = 0.002  # each figure is rounded to 1 ms
        assert then["started"] + rounding >= first["started"] + first["seconds"], (
            before_it, after_it)
    assert [len(b["new"]) for b in services["api"]["batches"]] == [2]
    assert sampler.samples > 20
    # (+ parallelism: a batch's old ones, out of the proxy and drained, retire while the
    # next batch's start; api has one batch.)
    assert sampler.most["app"] <= 3 + 1 + 1 and sampler.most["api"] <= 2 + 2, sampler.most
    assert sampler.most["worker"] <= 1 + 1, sampler.most
    assert sampler.fewest == {"nginx": 3, "haproxy": 2}, sampler.fewest
    after = ids(stack)
    for service in ("db", "proxy", "haproxy"):
        assert after[service] == before[service], service
    for service in ("app", "api", "worker"):
        assert not set(after[service]) & set(before[service]), service
    assert (len(after["app"]), len(after["api"]), len(after["worker"])) == (3, 2, 1)
    assert versions(stack) == Counter({"v2": 12})
    assert versions(stack, "haproxy") == Counter({"v2": 12})


def test_a_second_up_changes_nothing(stack: Stack) -> None:
    before = ids(stack)

    report = stack.swap_json("up", env=V2)

    assert report["exit_code"] == 0, report
    assert {s["outcome"] for s in report["services"]} == {"unchanged"}, [
        (s["name"], s["action"], s["reason"]) for s in report["services"]]
    assert ids(stack) == before


def test_a_second_batch_that_never_gets_ready_rolls_back_every_batch(stack: Stack) -> None:
    before = ids(stack)
    failing = {**V2, "APP_VERSION": "v3", "ONE_READY": "1", "APP_TIMEOUT": "5s"}
    with Load(stack.url(), MIXED, 30) as load:
        time.sleep(2)
        report = stack.swap_json("up", env=failing)
        results = load.results()

    assert report["exit_code"] == 1, report
    app = by_name(report)["app"]
    assert app["outcome"] == "rolled_back"
    assert [b["outcome"] for b in app["batches"]] == ["rolled_back", "failed"]
    assert "was not ready after 5 s" in app["batches"][1]["error"]
    assert {by_name(report)[n]["outcome"] for n in ("api", "worker", "db")} == {"unchanged"}
    assert sum(r.failed for r in results) == 0, describe(results)
    assert versions(stack) == Counter({"v2": 12})
    assert len(stack.container_ids("app")) == 3
    # compose itself sees the old definition everywhere again
    again = stack.swap_json("up", "--dry-run", env=V2)
    assert by_name(again)["app"]["action"] == "unchanged", again
    assert ids(stack)["api"] == before["api"]


def test_a_batch_that_dies_while_monitored_is_rolled_back_and_the_old_version_serves_all(
    stack: Stack,
) -> None:
    """The new version passes its health check, then exits ~2 s later, after its batch retired
    an old container: the batch is undone (its old container back, the proxy never given the
    one that died), the rollback ends exit 1, the old version on every replica."""
    dying = {**V2, "APP_VERSION": "v7", "APP_EXIT_AFTER": "6", "APP_MONITOR": "8s"}
    before = ids(stack)
    with Load(stack.url(), MIXED, 40) as load:
        time.sleep(2)
        report = stack.swap_json("up", env=dying)
        results = load.results()

    assert report["exit_code"] == 1, report
    app = by_name(report)["app"]
    assert app["outcome"] == "rolled_back", app
    assert [b["outcome"] for b in app["batches"]] == ["failed"], app["batches"]
    assert "exited" in app["batches"][0]["error"]
    assert versions(stack, requests=30) == Counter({"v2": 30})
    assert len(stack.container_ids("app")) == 3
    assert set(stack.container_ids("app")) & set(before["app"]), "two never stopped"
    # only what was in flight on the container that died may fail (POSTs nginx cannot retry)
    failed = sum(r.failed for r in results)
    assert failed <= 8, describe(results)
    again = stack.swap_json("up", "--dry-run", env=V2)
    assert by_name(again)["app"]["action"] == "unchanged", again


def killed_up(stack: Stack, point: str, folder: Path, **env: str) -> None:
    """Run `up`, and kill it with SIGKILL when it reaches the failpoint (first batch of app)."""
    env |= {"DOCKER_SWAP_FAILPOINTS": f"{point}=pause", "DOCKER_SWAP_FAILPOINT_DIR": str(folder)}
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_swap", "-p", stack.name, "up"], cwd=stack.folder,
        env=stack._env(env), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (folder / f"{point}.reached").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()


def test_an_up_killed_before_a_batch_switched_is_undone_by_recover(
    stack: Stack, tmp_path: Path,
) -> None:
    before = ids(stack)

    killed_up(stack, "ready", tmp_path, **{**V2, "APP_VERSION": "v5"})
    assert len(stack.container_ids("app")) == 4
    recovered = stack.swap("recover", "app")

    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines()[-1].startswith("undone")
    assert ids(stack) == before  # the two replicas that stayed beside the batch were kept
    assert versions(stack) == Counter({"v2": 12})


def test_an_up_killed_after_a_batch_switched_is_finished_by_recover_then_up(
    stack: Stack, tmp_path: Path,
) -> None:
    before = stack.container_ids("app")

    killed_up(stack, "after-switch", tmp_path, **{**V2, "APP_VERSION": "v5"})
    recovered = stack.swap("recover", "app")

    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines()[-1].startswith("finished")
    after = stack.container_ids("app")
    assert len(after) == 3 and len(set(after) & set(before)) == 2
    assert set(versions(stack, requests=30)) == {"v2", "v5"}
    finished = stack.swap_json("up", env=V2)
    assert finished["exit_code"] == 0, finished
    assert versions(stack) == Counter({"v2": 12})


def test_pause_stops_at_the_failed_batch_and_needs_attention(stack: Stack) -> None:
    paused = {**V2, "APP_VERSION": "v4", "ONE_READY": "1", "APP_TIMEOUT": "5s",
              "APP_FAILURE_ACTION": "pause"}

    report = stack.swap_json("up", env=paused)

    assert report["exit_code"] == 3, report
    app = by_name(report)["app"]
    assert app["outcome"] == "paused"
    assert "1 container(s) run the new version" in app["detail"]
    assert [b["outcome"] for b in app["batches"]] == ["done", "failed"]
    assert set(versions(stack, requests=30)) == {"v2", "v4"}
    assert len(stack.container_ids("app")) == 3


def test_up_from_nothing_starts_every_service_and_points_both_proxies(stack: Stack) -> None:
    stack.compose("down", "--volumes", "--timeout", "0")

    report = stack.swap_json("up", env=V2)

    assert report["exit_code"] == 0, report
    assert {s["action"] for s in report["services"]} == {"start"}
    assert "app: upstream app -> " in by_name(report)["proxy"]["detail"]
    assert "api: backend api -> " in by_name(report)["haproxy"]["detail"]
    wait_warm(stack, "proxy", "v2")
    wait_warm(stack, "haproxy", "v2")


def test_a_terminal_gets_a_live_view_per_service_and_batch(stack: Stack) -> None:
    from .test_cli import run_on_a_terminal  # noqa: PLC0415

    code, shown = run_on_a_terminal(stack, "up", env={**V2, "APP_VERSION": "v6",
                                                      "TERM": "xterm"})

    assert code == 0, shown
    assert "✓" in shown
    for batch in ("app 1/3 switch", "app 2/3 switch", "app 3/3 retire"):
        assert batch in shown, shown
    assert re.search(r"app\s+\S*done", shown), shown
