"""Release records read back from image labels are untrusted: any label set either gives a
release or a ValueError (skipped with a note), never another exception."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from docker_swap.releases.record import (
    KINDS,
    LABEL,
    OUTCOMES,
    ContainerRef,
    Phase,
    Release,
    parse_record,
    record_data,
    record_labels,
    repository_component,
)
from docker_swap.releases.store import read_releases
from tests.fakes import FakeEngine

# A path component of an image repository, as the distribution spec defines it.
COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")

text = st.text(max_size=40)
seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
releases = st.builds(
    Release,
    number=st.integers(min_value=1, max_value=10**9),
    project=st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,20}\Z"),  # as compose allows them
    service=st.from_regex(r"\A[a-zA-Z0-9._-]{1,20}\Z"),
    outcome=st.sampled_from(OUTCOMES), kind=st.sampled_from(KINDS), reason=text,
    image_id=text, image_tags=st.lists(text, max_size=3).map(tuple), config_hash=text,
    at=text, by=text, rollback_to=st.none() | st.integers(min_value=1, max_value=10**6),
    phases=st.lists(st.builds(Phase, text, seconds), max_size=5).map(tuple),
    seconds=seconds,
    containers=st.lists(st.builds(ContainerRef, text, text), max_size=3).map(tuple),
    replaced=st.lists(text, max_size=3).map(tuple),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


def parses_or_says_why(labels: dict[str, str]) -> Release | None:
    try:
        return parse_record(labels)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


@given(releases)
def test_a_record_reads_back_as_it_was_written(release: Release) -> None:
    labels = record_labels(release)

    assert parse_record(labels) == release
    assert all("\n" not in value for value in labels.values())  # one LABEL line each


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=6))
def test_any_labels_give_a_release_or_a_reason(labels: dict[str, str]) -> None:
    parses_or_says_why(labels)


@given(json_values)
def test_any_json_in_the_record_gives_a_release_or_a_reason(value: Any) -> None:
    parses_or_says_why({f"{LABEL}.record": json.dumps(value), f"{LABEL}.number": "1"})


@given(releases, st.sampled_from(sorted(record_data(Release(1, "p", "s", "deployed")))),
       json_values)
def test_a_record_with_one_field_changed_gives_a_release_or_a_reason(
    release: Release, key: str, value: Any,
) -> None:
    data = record_data(release) | {key: value}
    labels = record_labels(release) | {f"{LABEL}.record": json.dumps(data)}

    parsed = parses_or_says_why(labels)

    if parsed is not None:  # what was accepted is well typed
        assert isinstance(parsed.number, int) and parsed.number >= 1
        assert all(isinstance(p.seconds, float) for p in parsed.phases)
        json.dumps(record_data(parsed), allow_nan=False)


@given(st.lists(st.dictionaries(st.sampled_from(
    [f"{LABEL}.project", f"{LABEL}.service", f"{LABEL}.number", f"{LABEL}.record"]),
    st.text(max_size=30)), max_size=5))
def test_reading_the_engine_never_fails_on_bad_records(label_sets: list[dict[str, str]]) -> None:
    engine = FakeEngine()
    for labels in label_sets:
        engine.import_labels("r", "t", {**labels, f"{LABEL}.project": "demo",
                                        f"{LABEL}.service": "app"})

    found, notes = read_releases(engine, "demo", "app")

    assert len(found) + len(notes) <= len(label_sets)


@given(text, text)
def test_repository_names_are_always_valid(project: str, service: str) -> None:
    project_part, service_part = repository_component(project, service).split(".")
    assert COMPONENT.match(project_part) and COMPONENT.match(service_part)
