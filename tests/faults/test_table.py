"""docs/reliability.md shows the very table the fault suite runs, and the table keeps the rule."""

from __future__ import annotations

import re
from pathlib import Path

from tests.faults.cases import AFTER_SWITCH, CASES, DOC, documented, markdown

SRC = Path(__file__).parents[2] / "src" / "docker_swap"


def test_the_documented_table_is_the_one_the_suite_runs() -> None:
    assert documented(DOC.read_text()) == markdown(), (
        "docs/reliability.md is out of date: run `.venv/bin/python -m tests.faults.cases --write`"
    )


def test_every_case_expects_what_the_exit_codes_mean() -> None:
    assert len({case.name for case in CASES}) == len(CASES)
    for case in CASES:
        # (`up`: the rule holds for a batch; a stop after it ends the service as its
        # failure_action says, so a rollback of the batches done is a 1.)
        if case.point in AFTER_SWITCH and case.fault != "SIGKILL" and case.proxy != "up":
            assert set(case.exits) <= {0, 3}, case  # any failure after the switch is 0 or 3
        if case.exits == (1,):
            assert (case.after, case.recovered) == ("v1", "v1"), case
        if 0 in case.exits:
            assert (case.after, case.recovered) == ("v2", "v2"), case
        if case.keeps_journal(case.exits[0]):
            assert case.resolves in ("undone", "finished"), case


def test_every_point_a_case_names_is_passed_by_the_deploy() -> None:
    # A case whose point the code no longer passes would run a deploy without its fault, and
    # could pass without testing anything.
    source = "\n".join(path.read_text() for path in SRC.rglob("*.py"))
    passed = set(re.findall(r'failpoint\("([a-z-]+)"\)', source))
    assert {case.point for case in CASES} <= passed
