"""Release records and their rules, with a fake engine (the real proof: test_releases in
tests/integration)."""

from __future__ import annotations

import pytest

from docker_swap.errors import (
    DeployFailed,
    InvalidSettings,
    NeedsAttention,
    NotReady,
    ReleaseRefused,
    ServiceNotFound,
)
from docker_swap.models import Container, Project, ServiceDefinition
from docker_swap.observer import PhaseResult
from docker_swap.releases.record import (
    DEPLOYED,
    FOUND,
    NEEDS_ATTENTION,
    ROLLBACK,
    ROLLED_BACK,
    Release,
    keep_repository,
    record_labels,
)
from docker_swap.releases.store import (
    current,
    forget_releases,
    kept,
    read_releases,
    record_release,
    rollback_target,
)
from docker_swap.rollout.rollback import compose_image
from docker_swap.settings import resolve_settings
from tests.fakes import FakeEngine

KEEP = keep_repository("demo", "app")


class Deploys:
    """A service `app` whose every deploy runs a new image, recorded as swap.deploy does."""

    def __init__(self, keep: int = 3) -> None:
        self.engine = FakeEngine()
        self.keep = keep
        self.running = [self._container(1, "sha256:img1")]

    def deploy(self, image: str, *, kind: str = "deploy", rollback_to: int | None = None,
               error: BaseException | None = None) -> int | None:
        if self.engine.image(image) is None:
            self.engine.add_image(image, "demo/app:latest")
        new = [self._container(max(c.number for c in self.engine.containers.values()) + 1,
                               image)]
        recorded = record_release(self.engine, "demo", "app", error, new,
                                  replaced=self.running, keep=self.keep, kind=kind,
                                  rollback_to=rollback_to,
                                  phases=[PhaseResult("start", 1, "")] if error else PHASES)
        if error is None:
            for old in self.running:
                del self.engine.containers[old.id]
            self.running = new
        else:
            for container in new:
                del self.engine.containers[container.id]
        assert not recorded.notes, recorded.notes
        return recorded.number

    def releases(self) -> list[Release]:
        releases, notes = read_releases(self.engine, "demo", "app")
        assert notes == []
        return releases

    def kept_tags(self) -> dict[str, str]:
        return {t: i.id for i in self.engine.images(repository=KEEP) for t in i.tags
                if t.startswith(f"{KEEP}:")}

    def _container(self, number: int, image: str) -> Container:
        if self.engine.image(image) is None:
            self.engine.add_image(image, "demo/app:latest")
        return self.engine.add("app", number, image_id=image)


PHASES = (PhaseResult("start", 0.5, ""), PhaseResult("ready", 1.25, ""))


def test_the_first_deploy_records_what_ran_before_then_itself() -> None:
    deploys = Deploys()

    assert deploys.deploy("sha256:img2") == 2

    second, first = deploys.releases()
    assert (first.number, first.kind, first.outcome, first.image_id) == (
        1, FOUND, DEPLOYED, "sha256:img1")
    assert (second.number, second.outcome, second.image_id) == (2, DEPLOYED, "sha256:img2")
    assert second.config_hash == "hash-of-sha256:img2"
    assert second.containers[0].name == "demo-app-2" and second.replaced == ("demo-app-1",)
    assert [(p.name, p.seconds) for p in second.phases] == [("start", 0.5), ("ready", 1.25)]
    assert second.seconds == 1.75 and "@" in second.by and second.at
    assert second.image_tags == ("demo/app:latest",)


def test_the_images_of_the_last_keep_releases_are_tagged_and_older_ones_let_go() -> None:
    deploys = Deploys(keep=2)
    for number in (2, 3, 4):
        deploys.deploy(f"sha256:img{number}")

    assert deploys.kept_tags() == {f"{KEEP}:4": "sha256:img4", f"{KEEP}:3": "sha256:img3"}
    assert deploys.engine.image("sha256:img1") is None, "no tag, no container: gone"
    assert deploys.engine.image("sha256:img2") is None


def test_a_rollback_counts_its_image_once() -> None:
    deploys = Deploys(keep=2)
    deploys.deploy("sha256:img2")
    deploys.deploy("sha256:img3")

    deploys.deploy("sha256:img2", kind=ROLLBACK, rollback_to=2)

    assert deploys.kept_tags() == {f"{KEEP}:4": "sha256:img2", f"{KEEP}:3": "sha256:img3",
                                   f"{KEEP}:2": "sha256:img2"}
    assert deploys.releases()[0].rollback_to == 2


def test_failed_deploys_are_recorded_with_their_reason_and_keep_nothing() -> None:
    deploys = Deploys(keep=1)
    deploys.deploy("sha256:img2")

    failed = deploys.deploy("sha256:bad", error=DeployFailed(NotReady("app-3 was not ready.")))
    stuck = deploys.deploy("sha256:bad2", error=NeedsAttention("the proxy is gone."))

    newest, before, *_ = deploys.releases()
    assert (failed, stuck) == (3, 4)
    assert (before.outcome, before.reason) == (ROLLED_BACK, "app-3 was not ready.")
    assert (newest.outcome, newest.reason) == (NEEDS_ATTENTION, "the proxy is gone.")
    assert deploys.kept_tags() == {f"{KEEP}:2": "sha256:img2"}


def test_a_refusal_records_nothing_and_an_unexpected_error_needs_attention() -> None:
    deploys = Deploys()

    assert deploys.deploy("sha256:img2", error=ServiceNotFound("no app.")) is None
    assert deploys.releases() == []
    deploys.deploy("sha256:img2", error=KeyError("boom"))
    assert deploys.releases()[0].outcome == NEEDS_ATTENTION
    assert "KeyError" in deploys.releases()[0].reason


def test_a_record_that_cannot_be_written_is_a_note_not_an_error() -> None:
    engine = FakeEngine(failing={"import_labels"})
    new = engine.add("app", 2, image_id="sha256:x")

    recorded = record_release(engine, "demo", "app", None, [new])

    assert recorded.number is None
    assert "could not be recorded" in recorded.notes[0]


def test_a_broken_record_is_skipped_with_a_note() -> None:
    deploys = Deploys()
    deploys.deploy("sha256:img2")
    labels = record_labels(deploys.releases()[0])
    deploys.engine.import_labels("x", "1", {**labels, "docker-swap.release.record": "{oops"})

    releases, notes = read_releases(deploys.engine, "demo", "app")

    assert [r.number for r in releases] == [2, 1]
    assert len(notes) == 1
    assert notes[0].startswith("skipped the release record sha256:")
    assert notes[0].endswith(": its record is not JSON.")


def test_the_current_release_is_found_by_its_containers_then_by_its_image() -> None:
    deploys = Deploys()
    deploys.deploy("sha256:img2")
    releases = deploys.releases()

    assert current(releases, deploys.running).number == 2  # type: ignore[union-attr]
    recreated = deploys.engine.add("app", 9, image_id="sha256:img2")
    assert current(releases, [recreated]).number == 2  # type: ignore[union-attr]
    assert current(releases, [deploys.engine.add("app", 8, image_id="sha256:other")]) is None


def test_rollback_goes_to_the_release_before_with_another_image() -> None:
    deploys = Deploys()
    deploys.deploy("sha256:img2")
    deploys.deploy("sha256:img2")  # the same image again (a change of environment, say)
    deploys.deploy("sha256:bad", error=DeployFailed(NotReady("no.")))

    target = rollback_target(deploys.releases(), deploys.running, None, lambda _: True)

    assert (target.number, target.image_id) == (1, "sha256:img1")


@pytest.mark.parametrize(("to", "has_image", "says"), [
    (9, True, "has no release 9 (releases: 4, 3, 2, 1)"),
    (3, True, "release 3 of app is the one that runs now"),
    (4, True, "release 4 of app never served: it was rolled back (no.)"),
    (2, False, "release 2 of app is not kept any more"),
])
def test_rollback_refuses_what_it_cannot_go_to(to: int, has_image: bool, says: str) -> None:
    deploys = Deploys()
    deploys.deploy("sha256:img2")
    deploys.deploy("sha256:img3")
    deploys.deploy("sha256:bad", error=DeployFailed(NotReady("no.")))

    with pytest.raises(ReleaseRefused, match=says.replace("(", r"\(").replace(")", r"\)")):
        rollback_target(deploys.releases(), deploys.running, to, lambda _: has_image)


def test_rollback_with_nothing_before_is_refused() -> None:
    deploys = Deploys()

    with pytest.raises(ReleaseRefused, match="no earlier release"):
        rollback_target(deploys.releases(), deploys.running, None, lambda _: True)


def test_kept_skips_releases_without_an_image() -> None:
    releases = [Release(3, "demo", "app", DEPLOYED, image_id=""),
                Release(2, "demo", "app", DEPLOYED, image_id="sha256:b"),
                Release(1, "demo", "app", DEPLOYED, image_id="sha256:a")]

    assert [r.number for r in kept(releases, 1)] == [2]


def test_keep_is_a_number_of_releases() -> None:
    assert resolve_settings("app", {}, {}).keep == 3
    assert resolve_settings("app", {"keep": 5}, {}).keep == 5
    for wrong in (0, "3", True, 101):
        with pytest.raises(InvalidSettings, match="x-swap key 'keep' has value"):
            resolve_settings("app", {"keep": wrong}, {})


def test_a_release_that_needed_attention_after_its_switch_runs_if_its_containers_do() -> None:
    deploys = Deploys()
    deploys.deploy("sha256:img2")
    stuck = deploys.engine.add("app", 5, image_id="sha256:img3")
    deploys.engine.add_image("sha256:img3")
    record_release(deploys.engine, "demo", "app", NeedsAttention("drain failed."), [stuck],
                   replaced=deploys.running, served=True)

    assert current(deploys.releases(), [stuck]).number == 3  # type: ignore[union-attr]
    target = rollback_target(deploys.releases(), [stuck], None, lambda _: True)
    assert target.number == 2


@pytest.mark.parametrize(("definition", "says"), [
    (ServiceDefinition("app", image="app@sha256:abc"), "names its image by digest"),
    (ServiceDefinition("app", image="app", pull_policy="always"), "compose would pull"),
    (ServiceDefinition("app", pull_policy="build"), "compose would build"),
])
def test_rollback_refuses_images_compose_would_not_take_from_the_engine(
    definition: ServiceDefinition, says: str,
) -> None:
    with pytest.raises(ReleaseRefused, match=says):
        compose_image(Project("demo", {"app": definition}), "app")


def test_compose_s_name_for_a_build_service_is_project_service() -> None:
    assert compose_image(Project("demo", {"app": ServiceDefinition("app")}), "app") == "demo-app"


def test_forgetting_a_project_s_releases_leaves_other_projects_alone() -> None:
    deploys = Deploys()
    deploys.deploy("sha256:img2")
    other = FakeEngine.add(deploys.engine, "web", 1, project="other", image_id="sha256:w1")
    deploys.engine.add_image("sha256:w1")
    record_release(deploys.engine, "other", "web", None, [other])

    forget_releases(deploys.engine, "demo")

    assert deploys.releases() == []
    assert deploys.kept_tags() == {}
    assert [r.number for r in read_releases(deploys.engine, "other", "web")[0]] == [1]


def test_only_the_newest_records_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("docker_swap.releases.store.RECORDS_KEPT", 3)
    deploys = Deploys()
    for number in range(2, 6):
        deploys.deploy(f"sha256:img{number}")

    assert [r.number for r in deploys.releases()] == [5, 4, 3]


def test_a_release_that_served_then_needed_attention_is_kept_and_can_be_gone_back_to() -> None:
    deploys = Deploys()
    deploys.deploy("sha256:img2")  # release 2
    stuck = deploys.engine.add("app", 5, image_id="sha256:img3")
    deploys.engine.add_image("sha256:img3")
    record_release(deploys.engine, "demo", "app", NeedsAttention("drain failed."), [stuck],
                   replaced=deploys.running, served=True)  # release 3: it served
    deploys.engine.containers.pop(stuck.id)
    deploys.deploy("sha256:img4")  # release 4 runs now

    assert "sha256:img3" in deploys.kept_tags().values()
    target = rollback_target(deploys.releases(), deploys.running, 3, lambda _: True)
    assert target.number == 3
