"""The layout holds: imports go one way through the layers of docs/architecture.md (the
import-linter contracts in pyproject.toml), no module imports in a cycle, and files and
functions stay small."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.configuration import configure
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.layers import LayersContract
from importlinter.domain.contract import Contract

ROOT = Path(__file__).parents[2]
SOURCE = ROOT / "src" / "docker_swap"
MAX_LINES = 400
MAX_FUNCTION_LINES = 60
LONG = "# long:"
"""A function may be longer with a reason written on its `def` line's next comment line."""
KINDS: dict[str, type[Contract]] = {"layers": LayersContract,
                                    "acyclic_siblings": AcyclicSiblingsContract}


def contracts() -> list[Contract]:
    configure()  # import-linter's own settings (its timer), as its command sets them
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    session = {"root_packages": [config["root_package"]]}
    return [KINDS[c["type"]](c["name"], session, _options(c)) for c in config["contracts"]]


def _options(contract: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in contract.items() if key not in ("name", "type")}


@pytest.fixture
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("docker_swap", cache_dir=None)


def test_imports_go_one_way_and_never_in_a_cycle(graph: grimp.ImportGraph) -> None:
    broken = [c.name for c in contracts() if not c.check(graph, verbose=False).kept]
    assert broken == [], "run `.venv/bin/lint-imports` to see which imports break them"


@pytest.mark.parametrize(("importer", "imported"), [
    ("docker_swap.engine.swarm", "docker_swap.rollout.swap"),   # a lower layer up
    ("docker_swap.targets.compose.batch", "docker_swap.cli.output"),
    ("docker_swap.proxy.nginx", "docker_swap.registry.store"),  # side by side: independent
])
def test_a_wrong_way_import_breaks_the_layers(graph: grimp.ImportGraph, importer: str,
                                              imported: str) -> None:
    wrong = graph
    wrong.add_import(importer=importer, imported=imported, line_number=1, line_contents="x")
    layers = next(c for c in contracts() if isinstance(c, LayersContract))
    assert not layers.check(wrong, verbose=False).kept


def test_an_import_cycle_breaks_the_contract(graph: grimp.ImportGraph) -> None:
    wrong = graph
    wrong.add_import(importer="docker_swap.rollout.undo", imported="docker_swap.rollout.swap",
                     line_number=1, line_contents="x")
    acyclic = next(c for c in contracts() if isinstance(c, AcyclicSiblingsContract))
    assert not acyclic.check(wrong, verbose=False).kept


def python_files() -> list[Path]:
    return sorted(p for folder in ("src", "tests", "testbed", "benchmarks")
                  for p in (ROOT / folder).rglob("*.py"))


def test_no_file_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in python_files()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_function_is_over_60_lines_without_a_reason_beside_it() -> None:
    found = []
    for path in SOURCE.rglob("*.py"):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                size = node.end_lineno - node.lineno + 1
                said = " ".join(lines[node.lineno - 1:node.lineno + 3])
                if size > MAX_FUNCTION_LINES and LONG not in said:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size})")
    assert found == []


def test_label_names_are_written_in_one_place() -> None:
    """Every `docker-swap.` or `com.docker.` label is spelled in labels.py alone."""
    spelled = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "labels.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if ('"com.docker.' in line or '"docker-swap.' in line) and "=" in line \
                    and not line.lstrip().startswith("#"):
                spelled.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert spelled == []
