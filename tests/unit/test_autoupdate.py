"""autoupdate without a registry: which tag a policy moves to, where the tag is written and how
it is put back, what is remembered between checks, which services are followed, and how
notifications hide their secrets (the real registry is in tests/integration)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_swap.compose.files import apply, tag_edit
from docker_swap.errors import InvalidSettings
from docker_swap.metrics import parse_address
from docker_swap.models import Project, ServiceDefinition
from docker_swap.notify import check_urls, shown
from docker_swap.rollout.autoupdate import Check, Ended, Move, followed
from docker_swap.rollout.follow_tags import Version, next_tag, split_reference
from docker_swap.safety.followed import MAX_FAILED, Followed, FollowState

TAGS = ["1.4.2", "1.4.7", "1.5.0", "1.9.0", "2.0.0", "3.0.1", "latest", "1.4.8-rc1",
        "v1.4.9", "1.4.10-alpine", "1.5.0-alpine"]
DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("policy", "current", "expected"), [
    ("patch", "1.4.2", "1.4.7"), ("minor", "1.4.2", "1.9.0"), ("major", "1.4.2", "3.0.1"),
    ("digest", "1.4.2", None), ("minor", "3.0.1", None), ("minor", "latest", None),
    ("patch", "1.4.2-alpine", "1.4.10-alpine"), ("minor", "1.4.2-alpine", "1.5.0-alpine"),
    ("minor", "v1.4.0", "v1.4.9"), ("never", "1.4.2", None),
])
def test_a_policy_moves_to_the_newest_tag_written_the_same_way(
        policy: str, current: str, expected: str | None) -> None:
    assert next_tag(current, TAGS, policy) == expected


@given(st.lists(st.from_regex(r"v?[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[a-z]{1,5})?",
                              fullmatch=True), max_size=30),
       st.sampled_from(["patch", "minor", "major"]))
def test_the_tag_chosen_is_always_newer_and_within_the_policy(tags: list[str], policy: str) -> None:
    current = Version(1, 2, 3)
    chosen = next_tag("1.2.3", tags, policy)
    if chosen is not None:
        found = Version.parse(chosen)
        assert found is not None and found.numbers > current.numbers
        assert found.same_shape(current)
        assert policy == "major" or found.major == 1
        assert policy != "patch" or found.minor == 2


@pytest.mark.parametrize(("reference", "split"), [
    ("app", ("app", "latest")), ("app:1.2", ("app", "1.2")),
    ("127.0.0.1:5000/app", ("127.0.0.1:5000/app", "latest")),
    ("127.0.0.1:5000/app:stable", ("127.0.0.1:5000/app", "stable")),
    ("app@sha256:" + "b" * 64, ("app", "")),
])
def test_a_reference_splits_into_its_repository_and_tag(reference: str,
                                                        split: tuple[str, str]) -> None:
    assert split_reference(reference) == split


# Where the tag is written.


def project_folder(tmp_path: Path, image: str, env: str | None = None) -> Path:
    compose = tmp_path / "compose.yaml"
    compose.write_text(f"services:\n  app:\n    image: {image}\n    x-swap:\n"
                       "      autoupdate: minor\n")
    compose.chmod(0o640)
    if env is not None:
        (tmp_path / ".env").write_text(env)
    return compose


def test_the_tag_is_changed_on_the_image_line_only_and_put_back_as_it_was(
        tmp_path: Path) -> None:
    compose = project_folder(tmp_path, "reg.example/app:1.4.2")
    before = compose.read_text()

    edit = tag_edit([str(compose)], [], str(tmp_path), "app", "1.4.2", "1.9.0")
    apply(edit)

    assert compose.read_text() == before.replace("app:1.4.2", "app:1.9.0")
    assert stat.S_IMODE(compose.stat().st_mode) == 0o640
    apply(edit, back=True)
    assert compose.read_text() == before


def test_a_tag_from_a_variable_is_changed_in_the_env_file(tmp_path: Path) -> None:
    compose = project_folder(tmp_path, '"reg.example/app:${APP_TAG:-1.0.0}"',
                             env="OTHER=1\nAPP_TAG=1.4.2\n")

    edit = tag_edit([str(compose)], [], str(tmp_path), "app", "1.4.2", "1.5.0")
    apply(edit)

    assert (tmp_path / ".env").read_text() == "OTHER=1\nAPP_TAG=1.5.0\n"
    assert "APP_TAG" in compose.read_text()


def test_what_cannot_be_written_safely_is_refused_in_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compose = project_folder(tmp_path, "reg.example/app:${APP_TAG}", env="APP_TAG=1.4.2\n")
    monkeypatch.setenv("APP_TAG", "1.4.2")
    with pytest.raises(InvalidSettings, match="this process's environment sets"):
        tag_edit([str(compose)], [], str(tmp_path), "app", "1.4.2", "1.5.0")
    monkeypatch.delenv("APP_TAG")
    with pytest.raises(InvalidSettings, match=r"not 1\.4\.1"):
        tag_edit([str(compose)], [], str(tmp_path), "app", "1.4.1", "1.5.0")

    edit = tag_edit([str(compose)], [], str(tmp_path), "app", "1.4.2", "1.5.0")
    (tmp_path / ".env").write_text("APP_TAG=9.9.9\n")  # someone else changed it meanwhile
    with pytest.raises(InvalidSettings, match="changed meanwhile"):
        apply(edit)
    assert (tmp_path / ".env").read_text() == "APP_TAG=9.9.9\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".compose")]


# What is remembered.


def test_failed_digests_are_remembered_across_restarts_and_bounded(tmp_path: Path) -> None:
    state = FollowState("demo", root=tmp_path)
    digests = [f"sha256:{n:064x}" for n in range(MAX_FAILED + 5)]
    state.remember("app", Followed(DIGEST, digests))

    again = FollowState("demo", root=tmp_path).get("app")

    assert again.seen == DIGEST and again.failed == digests[-MAX_FAILED:]
    assert FollowState("other", root=tmp_path).get("app") == Followed()


def test_a_state_file_that_cannot_be_read_is_a_note_not_a_stop(tmp_path: Path) -> None:
    (tmp_path / "autoupdate.json").write_text("{not json")
    state = FollowState("demo", root=tmp_path)

    assert state.get("app") == Followed() and "could not be read" in state.notes[0]
    (tmp_path / "autoupdate.json").write_text('{"demo/app": {"seen": "x", "failed": [1, "y"]}}')
    assert FollowState("demo", root=tmp_path).get("app") == Followed()  # nothing untrusted


# Which services are followed.


def test_named_services_are_followed_and_otherwise_only_those_x_swap_asks_for() -> None:
    project = Project("demo", {
        "app": ServiceDefinition("app", image="reg/app:1", x_swap={"autoupdate": "minor"}),
        "api": ServiceDefinition("api", image="reg/api:1"),
        "web": ServiceDefinition("web", image="demo-web", builds=True,
                                 x_swap={"autoupdate": "digest"}),
        "db": ServiceDefinition("db", image="reg/db@" + DIGEST, x_swap={"autoupdate": "digest"}),
    })
    skipped: dict[str, str] = {}

    assert followed(project, [], skipped) == ["app"]
    assert "builds its image" in skipped["web"] and "by digest" in skipped["db"]
    assert followed(project, ["api"], {}) == ["api"]
    with pytest.raises(Exception, match="no service 'nope'"):
        followed(project, ["nope"], {})


def test_a_check_s_exit_code_follows_the_rule() -> None:
    move = Move("demo", "app", "digest", "r:1", "r:1", "", DIGEST)
    assert Check().exit_code == 0
    assert Check(errors={"app": "registry down"}).exit_code == 2
    assert Check(ended=[Ended(move, "done", 0, 1.0, "")]).exit_code == 0
    assert Check(ended=[Ended(move, "rolled_back", 1, 1.0, "")]).exit_code == 1
    assert Check(ended=[Ended(move, "rolled_back", 1, 1.0, ""),
                        Ended(move, "needs_attention", 3, 1.0, "")]).exit_code == 3


# Notifications and metrics.


def test_a_notification_url_is_never_shown_with_its_secrets() -> None:
    url = "https://user:pass@hooks.example.com:8443/services/T000/B000/XXXXSECRET?token=abc"

    assert shown(url) == "https://hooks.example.com:8443/services/..."
    assert check_urls([url]) == (url,)
    with pytest.raises(InvalidSettings, match="not an http"):
        check_urls(["file:///etc/passwd"])


def test_a_metrics_address_is_host_and_port() -> None:
    assert parse_address("127.0.0.1:9105") == ("127.0.0.1", 9105)
    assert parse_address(":9105") == ("0.0.0.0", 9105)
    for bad in ("9105x", "host:", "host:70000"):
        with pytest.raises(InvalidSettings, match="HOST:PORT"):
            parse_address(bad)
