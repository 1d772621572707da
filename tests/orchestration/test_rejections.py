"""Defect 11 end to end: ``mdm run`` and the landing sensor do not retry rejected content."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from mdm_orchestration.inprocess import Target, run_landing
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file
from tests.orchestration.test_landing_flow import (  # noqa: F401 - fixtures
    BILLING,
    config_dir,
    resources,
    row,
    tick,
)


def _statuses(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = list(conn.execute(sa.text("SELECT status FROM extracts ORDER BY id")).scalars())
    engine.dispose()
    return out


def test_rerun_over_a_rejected_file_records_nothing_new(tmp_path, landing, sqlite_url):
    write_file(landing / "billing/bad.csv", BILLING.replace("full_name", "name") + row("B1"))
    target = Target(hub=sqlite_url, config=str(CONFIG_DIR), landing=landing, home=tmp_path)
    with dg.instance_for_test() as instance:
        first = run_landing(instance, target, quiet=True)
        assert first["failed"] == ["billing/bad.csv"]
        assert _statuses(sqlite_url) == ["rejected"]
        for _ in range(2):
            again = run_landing(instance, target, quiet=True)
            assert again["failed"] == [] and again["rejected_before"] == 1
        assert _statuses(sqlite_url) == ["rejected"]
        # Changed content is tried again.
        write_file(landing / "billing/bad.csv", BILLING + row("B1"))
        fixed = run_landing(instance, target, quiet=True)
        assert fixed["ingested"] == 1
    assert _statuses(sqlite_url) == ["rejected", "loaded"]


def test_sensor_does_not_request_a_run_for_rejected_content(
    resources,  # noqa: F811 - the fixture imported above
    landing,
    sqlite_engine,
):
    from mdm_orchestration.ingestion import ExtractRejected, ingest_file

    path = write_file(landing / "billing/bad.csv", BILLING.replace("full_name", "name") + row("B1"))
    with pytest.raises(ExtractRejected):
        ingest_file(sqlite_engine, resources["landing"].hub_config(), path, landing)
    with dg.instance_for_test() as instance:
        # A fresh cursor (reset sensor): the hub's ledger still knows the content was rejected.
        first = tick(instance, resources, None)
        second = tick(instance, resources, first.cursor)
        assert not second.run_requests
        assert "rejected before" in second.skip_reason.skip_message
