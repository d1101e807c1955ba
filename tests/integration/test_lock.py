"""The deploy lock and journal live on the engine: two users (two state folders) or two
machines deploying to one engine see the same lock and the same journal."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from docker_swap.safety.lock import LOCK_TTL
from testbed import images
from testbed.stack import Stack, docker, http_compose

from .conftest import StackFactory
from .test_recovery import FAST, start_deploy, wait_for


def other_user(tmp_path: Path) -> dict[str, str]:
    return {"DOCKER_SWAP_STATE_DIR": str(tmp_path / "other-user")}


def engine_time() -> float:
    from docker_swap.engine.parsing import epoch as _epoch  # noqa: PLC0415

    stamp = _epoch(docker("info", "--format", "{{.SystemTime}}").stdout.strip())
    assert stamp is not None
    return stamp


def test_a_deploy_from_another_state_folder_waits_for_the_lock_holder(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(http_compose(), **FAST)
    first = start_deploy(stack, APP_VERSION="v2", NEVER_READY="1")
    try:
        wait_for(lambda: len(stack.containers("app")) == 2)
        second = stack.swap("deploy", "app", env={**other_user(tmp_path), "APP_VERSION": "v3"})
        assert second.returncode == 2, second.stderr
        assert f"another deploy of this service is in progress (pid {first.pid} of " \
            in second.stderr
        assert "released when it exits" in second.stderr  # same machine: no TTL to wait
        assert len(stack.containers("app")) == 2  # the second deploy started nothing

        # The holder renews its heartbeat on the engine's clock, in the lock itself.
        lock = f"docker-swap-lock.{stack.name}.app"
        time.sleep(6)
        beat = docker("cp", f"{lock}:/docker-swap-heartbeat.json", "-").stdout
        assert '"at"' in beat
        stamped = json.loads(beat[beat.index("{"):beat.rindex("}") + 1])["at"]
        assert abs(engine_time() - stamped) < 8
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 1
    assert len(stack.containers("app")) == 1
    assert stack.markers() == []  # lock released, journal cleared


def test_a_killed_deploy_is_seen_and_recovered_from_another_state_folder(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(http_compose(), **FAST)
    before = stack.snapshot()
    deploy = start_deploy(stack, APP_VERSION="v2", NEVER_READY="1")
    # Record 2 (phase started) replaced record 1 (starting) on the engine.
    wait_for(lambda: stack.markers("journal") == [f"docker-swap-journal.{stack.name}.app.2"])
    deploy.send_signal(signal.SIGKILL)
    deploy.communicate()
    assert stack.markers("lock") == [f"docker-swap-lock.{stack.name}.app"]  # left stale

    other = other_user(tmp_path)
    blocked = stack.swap("deploy", "app", env={**other, "APP_VERSION": "v2"})
    assert blocked.returncode == 2, blocked.stderr
    assert "was interrupted (phase started)" in blocked.stderr
    assert "docker-swap recover app" in blocked.stderr

    recovered = stack.swap("recover", "app", env=other)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines()[-1].startswith("undone")
    assert stack.snapshot()[:2] == before[:2]
    assert stack.get() == (200, "v1")
    assert stack.markers() == []
    # The first user's folder knows nothing of it: the engine's journal is the truth.
    assert stack.swap("recover", "app").stdout.splitlines()[-1].startswith("nothing")


def test_a_stale_lock_of_another_machine_is_taken_over_with_a_note(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(http_compose(), **FAST)
    lock = f"docker-swap-lock.{stack.name}.app"
    labels = {"docker-swap.for": f"{stack.name}/app", "docker-swap.project": stack.name,
              "docker-swap.kind": "lock", "docker-swap.holder.user": "ci",
              "docker-swap.holder.host": "build-7", "docker-swap.holder.pid": "4242",
              "docker-swap.holder.host-key": "another-boot/pid:[1]"}
    # What a machine that died mid-deploy leaves: its lock, whose heartbeat stopped.
    subprocess.run(["docker", "create", "--name", lock, "--network", "none", "--entrypoint",
                    "/nonexistent", *[f"--label={k}={v}" for k, v in labels.items()],
                    images.APP], check=True, capture_output=True)
    created = time.monotonic()

    refused = stack.swap("deploy", "app", env={"APP_VERSION": "v2"})
    assert refused.returncode == 2, refused.stderr
    assert "in progress (pid 4242 of ci@build-7, since " in refused.stderr
    assert f"taken over {LOCK_TTL:g} s after its last heartbeat" in " ".join(
        refused.stderr.split())

    time.sleep(max(0.0, LOCK_TTL + 2 - (time.monotonic() - created)))
    report = stack.swap_json("deploy", "app", env={"APP_VERSION": "v2"})
    assert report["exit_code"] == 0, report
    assert any(note.startswith("took over the deploy lock of pid 4242 of ci@build-7 (its last "
                               "heartbeat was ") for note in report["notes"]), report["notes"]
    assert stack.get() == (200, "v2")
    assert stack.markers() == []


def test_the_lock_is_invisible_to_compose(make_stack: StackFactory) -> None:
    stack: Stack = make_stack(http_compose(), **FAST)
    deploy = start_deploy(stack, APP_VERSION="v2", NEVER_READY="1")
    try:
        wait_for(lambda: len(stack.markers("lock")) == 1)
        listed = stack.compose("ps", "-a", "--format", "{{.Name}}").stdout.split()
        assert listed and not any(name.startswith("docker-swap-") for name in listed)
    finally:
        deploy.send_signal(signal.SIGINT)
        deploy.communicate(timeout=60)
    assert stack.markers() == []


def test_housekeeping_during_a_deploy_neither_frees_its_lock_nor_loses_its_journal(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """`docker container prune` and `docker system prune` (no --all, no volumes) while a deploy
    runs: the lock is a container that never started, so a prune removes it; the deploy makes
    it again at its next heartbeat, its journal (volumes) is untouched, another deploy is
    refused meanwhile, and the deploy finishes. (The prunes are filtered to this project's
    docker-swap labels, which the lock carries: other suites run beside this one on the same
    engine, with containers stopped on purpose.)"""
    stack = make_stack(http_compose(), **FAST)
    first = start_deploy(stack, APP_VERSION="v2", DOCKER_SWAP_FAILPOINTS="ready=pause",
                         DOCKER_SWAP_FAILPOINT_DIR=str(tmp_path))
    try:
        wait_for((tmp_path / "ready.reached").exists)
        lock = f"docker-swap-lock.{stack.name}.app"
        mine = f"label=docker-swap.project={stack.name}"
        docker("container", "prune", "--force", "--filter", mine)
        docker("system", "prune", "--force", "--filter", mine)
        assert lock not in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert stack.markers("journal"), "the journal survives both prunes"
        wait_for(lambda: lock in docker("ps", "-a", "--format", "{{.Names}}").stdout.split(),
                 seconds=15)
        second = stack.swap("deploy", "app", env={**other_user(tmp_path), "APP_VERSION": "v3"})
        assert second.returncode == 2, second.stderr
        (tmp_path / "ready.release").touch()
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, err
    assert stack.get() == (200, "v2")
    assert stack.markers() == []
