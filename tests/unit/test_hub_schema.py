"""The hub schema: versioned migrations applied on first use, equal to the SQLModel classes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

import mdm_orchestration.hub.models  # noqa: F401 - registers the tables
from mdm_orchestration.hub.store import (
    create_hub_engine,
    migrate,
    resolve_hub_url,
    schema_head,
    schema_revision,
)


def _columns(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {
        t: {c["name"] for c in inspector.get_columns(t)}
        for t in inspector.get_table_names()
        if t != "alembic_version"
    }


def test_first_use_migrates_to_head_and_matches_models(sqlite_url):
    engine = create_hub_engine(sqlite_url)
    assert schema_revision(engine) == schema_head()
    expected = {t.name: {c.name for c in t.columns} for t in SQLModel.metadata.sorted_tables}
    assert _columns(engine) == expected
    migrate(engine)  # idempotent
    assert schema_revision(engine) == schema_head()
    engine.dispose()


def test_loaded_content_is_unique_per_source_at_database_level(sqlite_engine):
    row = dict(
        source="billing",
        file_name="a.csv",
        content_hash="h",
        size_bytes=1,
        status="loaded",
        rows_landed=0,
        rows_loaded=0,
        rows_quarantined=0,
        started_at="2026-01-01",
    )
    insert = sa.text(
        "INSERT INTO extracts (source, file_name, content_hash, size_bytes, status, rows_landed, "
        "rows_loaded, rows_quarantined, started_at) VALUES (:source, :file_name, :content_hash, "
        ":size_bytes, :status, :rows_landed, :rows_loaded, :rows_quarantined, :started_at)"
    )
    with sqlite_engine.begin() as conn:
        conn.execute(insert, row)
        conn.execute(insert, {**row, "status": "rejected"})  # rejections do not block
        conn.execute(insert, {**row, "source": "crm"})
    try:
        with sqlite_engine.begin() as conn:
            conn.execute(insert, row)
        raise AssertionError("a second loaded extract with the same content was accepted")
    except sa.exc.IntegrityError:
        pass


def test_hub_url_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("MDM_HOME", str(tmp_path))
    assert resolve_hub_url() == f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.setenv("MDM_HUB_URL", "postgresql://u@h/db")
    assert resolve_hub_url() == "postgresql+psycopg2://u@h/db"
    assert resolve_hub_url("sqlite:///x.db") == "sqlite:///x.db"
