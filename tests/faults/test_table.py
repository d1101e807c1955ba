"""docs/reliability.md shows the very table the fault suite runs, and the table keeps the rule."""

from __future__ import annotations

from tests.faults.cases import AFTER_SWITCH, CASES, DOC, KILLED, documented, markdown


def test_the_documented_table_is_the_one_the_suite_runs() -> None:
    assert documented(DOC.read_text()) == markdown(), (
        "docs/reliability.md is out of date: run `.venv/bin/python -m tests.faults.cases --write`"
    )


def test_every_case_expects_what_the_exit_codes_mean() -> None:
    assert len({case.name for case in CASES}) == len(CASES)
    for case in CASES:
        if case.point in AFTER_SWITCH and case.fault != "SIGKILL":
            assert set(case.exits) <= {0, 3}, case  # any failure after the switch is 0 or 3
        if case.exits == (1,):
            assert (case.after, case.recovered) == ("v1", "v1"), case
        if 0 in case.exits:
            assert (case.after, case.recovered) == ("v2", "v2"), case
        if 3 in case.exits or case.exits == (KILLED,):
            assert case.resolves in ("undone", "finished"), case
