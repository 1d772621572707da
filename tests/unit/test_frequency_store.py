"""The hub's term counts are looked up by their whole primary key: a lookup by the value key
alone read the whole table for every /v1/match request and every incremental run."""

from __future__ import annotations

from sqlalchemy import event

from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.matching.frequency_store import apply_delta, stored_counts

COLUMNS = ("party_type", "field", "value_key", "count")


def _hub(tmp_path):  # type: ignore[no-untyped-def]
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    rows = [("person", f, f"{i:032x}", i + 1) for f in ("given_key", "family") for i in range(300)]
    # The same value key under two fields and under the other party type.
    rows.append(("organisation", "token", f"{7:032x}", 99))
    with engine.begin() as conn:
        bulk_insert(conn, "term_frequencies", COLUMNS, rows)
    return engine


def test_only_the_asked_keys_come_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = _hub(tmp_path)
    same = f"{7:032x}"
    with engine.connect() as conn:
        got = stored_counts(
            conn, [("person", "family", same), ("person", "given_key", f"{9:032x}")]
        )
        assert got == {("person", "family", same): 8, ("person", "given_key", f"{9:032x}"): 10}
        assert stored_counts(conn, [("organisation", "token", same)]) == {
            ("organisation", "token", same): 99
        }
        assert stored_counts(conn, [("person", "city", same)]) == {}
        assert stored_counts(conn, []) == {}
    engine.dispose()


def test_lookups_search_the_primary_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = _hub(tmp_path)
    statements: list[tuple[str, object]] = []

    def seen(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if "term_frequencies" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    with engine.begin() as conn:
        stored_counts(conn, [("person", "family", f"{i:032x}") for i in range(0, 300, 7)])
        apply_delta(conn, {("person", "given_key", f"{3:032x}"): 1})
    event.remove(engine, "before_cursor_execute", seen)
    assert statements
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "USING PRIMARY KEY" in plan and "SCAN" not in plan, plan
        # The delta reached its row.
        assert stored_counts(conn, [("person", "given_key", f"{3:032x}")]) == {
            ("person", "given_key", f"{3:032x}"): 5
        }
    engine.dispose()
