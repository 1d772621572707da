"""Defect 8: the ingestion asset warns (a WARN check) when the landing scan skips files, with
counts and reasons only; the names are in the hub (``mdm status``), never in Dagster."""

from __future__ import annotations

import os

import dagster as dg

from mdm_orchestration.assets.ingestion import source_extracts
from mdm_orchestration.hub.status import hub_status
from mdm_orchestration.partitions import landed_files
from tests.helpers import write_file
from tests.orchestration.test_landing_flow import (  # noqa: F401 - fixtures
    BILLING,
    config_dir,
    resources,
    row,
    tick,
)

CANARY = "zz-canary-skipped@example.invalid"


def _events_text(instance: dg.DagsterInstance) -> str:
    texts = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            texts.append(repr(entry))
        texts.append(repr(run.tags))
    return "\n".join(texts)


def test_skipped_files_warn_on_the_ingestion_asset_without_their_names(
    resources,  # noqa: F811 - the fixture imported above
    landing,
    sqlite_engine,
    tmp_path,
):
    write_file(landing / "billing/good.csv", BILLING + row("B1"))
    write_file(landing / f"{CANARY}.csv", BILLING + row("B2"))  # at the landing root
    outside = write_file(tmp_path / "elsewhere/x.csv", BILLING + row("B3"))
    os.symlink(outside, landing / f"billing/{CANARY}-link.csv")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landed_files.name, ["billing/good.csv"])
        result = dg.materialize(
            [source_extracts],
            partition_key="billing/good.csv",
            instance=instance,
            resources=resources,
        )
        assert result.success
        check = {c.check_name: c for c in result.get_asset_check_evaluations()}[
            "no_skipped_landing_files"
        ]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["skipped_files"].value == 2
        assert check.metadata["skipped_by_reason"].value == {
            "at_landing_root": 1,
            "outside_landing_root": 1,
        }
        # The sensor records them too, and never logs a name.
        first = tick(instance, resources, None)
        tick(instance, resources, first.cursor)
        assert CANARY not in _events_text(instance)
    listed = hub_status(sqlite_engine)["skipped_landing_files"]
    assert sorted(s["reason"] for s in listed) == ["at_landing_root", "outside_landing_root"]
    assert all(CANARY in s["path"] for s in listed)

    # Once they are gone, the check passes.
    (landing / f"{CANARY}.csv").unlink()
    (landing / f"billing/{CANARY}-link.csv").unlink()
    write_file(landing / "billing/good2.csv", BILLING + row("B4"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landed_files.name, ["billing/good2.csv"])
        result = dg.materialize(
            [source_extracts],
            partition_key="billing/good2.csv",
            instance=instance,
            resources=resources,
        )
        check = {c.check_name: c for c in result.get_asset_check_evaluations()}[
            "no_skipped_landing_files"
        ]
        assert check.passed
    assert hub_status(sqlite_engine)["skipped_landing_files"] == []
