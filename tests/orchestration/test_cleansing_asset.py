"""The cleansed_records asset through Dagster: incremental runs, metadata, failing checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mdm_orchestration.assets.cleansing import cleansed_records
from mdm_orchestration.assets.ingestion import source_extracts
from mdm_orchestration.partitions import landed_files
from mdm_orchestration.resources import HubDatabase, LandingZone
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file

LOYALTY = (
    "member_no,given_name,surname,birthday,email_address,mobile,street_address,town,state,"
    "postcode,last_update,consent_marketing\n"
)
CANARY = "Xylophonia"  # a family name that must never reach Dagster's storage


def member(key: str, given: str = "Ann", family: str = "Lee", postcode: str = "02134") -> str:
    return (
        f"{key},{given},{family},04/03/1985,{key.lower()}@example.com,(415) 555-2671,"
        f"1 Main St,Boston,MA,{postcode},01/01/2026 10:00,Y\n"
    )


def make_config(tmp_path: Path, **thresholds: float) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    if thresholds:
        body = yaml.safe_load((folder / "quality.yaml").read_text())
        body["thresholds"].update(thresholds)
        (folder / "quality.yaml").write_text(yaml.safe_dump(body))
    return folder


def ingest_and_cleanse(instance, resources, key: str) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(landed_files.name, [key])
    dg.materialize([source_extracts], partition_key=key, instance=instance, resources=resources)
    return dg.materialize(
        [cleansed_records],
        instance=instance,
        resources=resources,
        selection=[cleansed_records],
    )


def meta(result: dg.ExecuteInProcessResult) -> dict:
    return {
        k: v.value
        for k, v in result.asset_materializations_for_node("cleansed_records")[0].metadata.items()
    }


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_incremental_metadata_and_passing_checks(tmp_path, landing, sqlite_url):
    resources = {
        "hub": HubDatabase(url=sqlite_url),
        "landing": LandingZone(root=str(landing), config_dir=str(make_config(tmp_path))),
    }
    write_file(landing / "loyalty/a.csv", LOYALTY + member("L1") + member("L2", family=CANARY))
    with dg.instance_for_test() as instance:
        first = ingest_and_cleanse(instance, resources, "loyalty/a.csv")
        assert first.success
        m = meta(first)
        assert (m["extracts_cleansed"], m["records_cleansed"], m["records_quarantined"]) == (
            1,
            2,
            0,
        )
        assert m["this_run_by_source"] == {"loyalty": {"cleansed": 2, "quarantined": 0}}
        assert "| loyalty | 2 | 0 |" in m["quality_by_source"]
        c = checks(first)
        assert c["quarantine_rate_below_threshold"].passed
        assert c["required_fields_complete"].passed

        # Nothing new: nothing read, nothing written; the checks still report the hub's state.
        again = dg.materialize([cleansed_records], instance=instance, resources=resources)
        m = meta(again)
        assert (m["extracts_cleansed"], m["versions_read"]) == (0, 0)
        assert m["hub_total_cleansed"] == 2
        assert checks(again)["quarantine_rate_below_threshold"].passed

        # A new file: only its rows.
        write_file(landing / "loyalty/b.csv", LOYALTY + member("L3"))
        third = ingest_and_cleanse(instance, resources, "loyalty/b.csv")
        assert (meta(third)["versions_read"], meta(third)["hub_total_cleansed"]) == (1, 3)

        # Rebuild from the launchpad.
        rebuilt = dg.materialize(
            [cleansed_records],
            instance=instance,
            resources=resources,
            run_config=dg.RunConfig({"cleansed_records": {"config": {"rebuild": True}}}),
        )
        assert (meta(rebuilt)["versions_read"], meta(rebuilt)["hub_total_cleansed"]) == (3, 3)

        # Counts only: the canary name is nowhere in the event log.
        records = instance.fetch_materializations(dg.AssetKey("cleansed_records"), limit=100)
        assert len(records.records) == 4
        assert CANARY not in repr([r.event_log_entry for r in records.records])


@pytest.mark.parametrize("scenario", ["quarantine_rate", "completeness"])
def test_checks_fail_when_a_threshold_is_crossed(tmp_path, landing, sqlite_url, scenario):
    config = make_config(tmp_path, max_quarantine_rate=0.2, min_completeness=0.9)
    resources = {
        "hub": HubDatabase(url=sqlite_url),
        "landing": LandingZone(root=str(landing), config_dir=str(config)),
    }
    rows = [member(f"L{i}") for i in range(8)]
    if scenario == "quarantine_rate":  # 3 of 10 rows have no name at all: 30% > 20%
        rows += [member(f"N{i}", given="", family="") for i in range(3)]
    else:  # 2 of 8 without postcode (required for loyalty): 75% < 90%
        rows[:2] = [member(f"P{i}", postcode="") for i in range(2)]
    write_file(landing / "loyalty/a.csv", LOYALTY + "".join(rows))
    with dg.instance_for_test() as instance:
        result = ingest_and_cleanse(instance, resources, "loyalty/a.csv")
    assert result.success  # checks report; they do not fail the run
    c = checks(result)
    if scenario == "quarantine_rate":
        check = c["quarantine_rate_below_threshold"]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert check.metadata["failing"].value == {"loyalty": pytest.approx(3 / 11, abs=1e-3)}
        assert c["required_fields_complete"].passed
    else:
        check = c["required_fields_complete"]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["failing"].value == {"loyalty.postcode": 0.75}
        assert c["quarantine_rate_below_threshold"].passed
