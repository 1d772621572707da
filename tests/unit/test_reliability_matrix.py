"""tests/reliability_matrix.toml maps each of RELIABILITY.md's 28 rows to the tests that hold it:
every row has a test, and every test it names exists (found by parsing the test files, so this
takes milliseconds, not a pytest collection)."""

from __future__ import annotations

import ast
import tomllib
from functools import cache
from pathlib import Path

from tests.conftest import REPO

MATRIX = REPO / "tests" / "reliability_matrix.toml"
ROWS = range(1, 29)
#: RELIABILITY.md: "Keep a SQLite column for rows 1, 3, 5, 9, 11 and 17".
SQLITE_COLUMN = {1, 3, 5, 9, 11, 17}
STATUSES = {"tested", "partial", "pending"}


def rows() -> list[dict]:
    return tomllib.loads(MATRIX.read_text(encoding="utf-8"))["row"]


@cache
def functions_in(path: Path) -> frozenset[str]:
    """The test functions of a file, as ``name`` or ``Class::name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(
                    item, ast.FunctionDef | ast.AsyncFunctionDef
                ) and item.name.startswith("test"):
                    names.add(f"{node.name}::{item.name}")
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.startswith("Test") for t in node.targets
        ):
            # ``TestMachine = Machine.TestCase`` (a Hypothesis state machine): pytest collects
            # it as ``TestMachine::runTest``.
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names.add(f"{t.id}::runTest")
    return frozenset(names)


def missing(node_id: str) -> str | None:
    """Why ``node_id`` names no test (``None``: it does)."""
    path, sep, name = node_id.partition("::")
    if not sep or not name:
        return "not path::test"
    file = REPO / path
    if not file.is_file():
        return f"no file {path}"
    base = name.split("[", 1)[0]
    if base not in functions_in(file):
        return f"no test {base} in {path}"
    return None


def test_every_row_is_listed_once_with_a_known_status():
    numbers = [r["number"] for r in rows()]
    assert sorted(numbers) == list(ROWS)
    for row in rows():
        assert row["status"] in STATUSES, row["number"]
        assert row.get("fault"), row["number"]


def test_every_listed_test_exists():
    absent = {
        (row["number"], node_id, why)
        for row in rows()
        for column in ("postgres", "sqlite")
        for node_id in row.get(column, [])
        if (why := missing(node_id)) is not None
    }
    assert not absent, sorted(absent)


#: Rows without a test yet, each left open in issue 17 (its closing note names them). A row
#: leaves this list when its tests land; a row not in it must have tests. Empty: every row of
#: the matrix has its tests (rows 2 and 27 were the last).
KNOWN_PENDING: frozenset[int] = frozenset()


def test_every_row_has_a_test_unless_known_pending():
    untested = {r["number"] for r in rows() if not (r.get("postgres") or r.get("sqlite"))}
    pending = {r["number"] for r in rows() if r["status"] == "pending"}
    assert untested <= KNOWN_PENDING and pending <= KNOWN_PENDING, {
        "untested": sorted(untested - KNOWN_PENDING),
        "pending": sorted(pending - KNOWN_PENDING),
    }
    # A row that got its tests must leave KNOWN_PENDING (and say so in the map).
    assert pending >= KNOWN_PENDING, sorted(KNOWN_PENDING - pending)
    for row in rows():
        if row["number"] in KNOWN_PENDING:
            assert row.get("gaps"), row["number"]


def test_partial_rows_say_what_is_missing():
    for row in rows():
        if row["status"] == "partial":
            assert row.get("gaps"), row["number"]
        if row.get("postgres") or row.get("sqlite"):
            assert row.get("note"), row["number"]


def test_rows_with_a_sqlite_column_have_sqlite_tests():
    lacking = [r["number"] for r in rows() if r["number"] in SQLITE_COLUMN and not r.get("sqlite")]
    assert not lacking, lacking
