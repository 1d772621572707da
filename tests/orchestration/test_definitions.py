"""The code location loads, and has the parts ARCHITECTURE.md names for this stage."""

from __future__ import annotations

import warnings

import dagster as dg


def test_definitions_load_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from mdm_orchestration.definitions import defs

        graph = defs.resolve_asset_graph()
    assert dg.AssetKey("source_extracts") in graph.get_all_asset_keys()
    job = defs.resolve_job_def("ingest_job")
    assert job.partitions_def is not None and job.partitions_def.name == "landed_files"
    sensor = defs.resolve_sensor_def("landing_sensor")
    assert sensor.job_name == "ingest_job"
    checks = {key.name for key in graph.asset_check_keys}
    assert {
        "every_row_accounted_for",
        "no_unmapped_columns",
        "ingest_quarantine_rate_below_threshold",
    } <= checks
    assert {"quarantine_rate_below_threshold", "required_fields_complete"} <= checks
    groups = {s.key.path[-1]: s.group_name for s in defs.resolve_all_asset_specs()}
    assert groups == {
        "source_extracts": "ingestion",
        "cleansed_records": "cleansing",
        "training_labels": "matching",
        "match_model": "matching",
        "match_clusters": "matching",
        "golden_records": "mastering",
        "golden_changes": "mastering",
        "households": "mastering",
        "subscriber_deliveries": "syndication",
    }
    assert {"every_record_in_one_cluster", "no_cluster_above_max_size"} <= checks
    assert all(s.description for s in defs.resolve_all_asset_specs())
    assert all(s.owners and s.kinds for s in defs.resolve_all_asset_specs())
    assert defs.resolve_job_def("retrain_job") is not None
    assert defs.resolve_job_def("cleanse_job") is not None
    assert defs.resolve_job_def("match_job") is not None
    assert {
        "every_source_record_has_one_golden_id",
        "no_golden_record_without_members",
        "golden_ids_unique",
        "lineage_complete",
        "household_members_are_active_persons",
    } <= checks
    assert "subscriber_lag_within_limit" in checks
    syndicate = defs.resolve_job_def("syndicate_job")
    assert syndicate.partitions_def is not None and syndicate.partitions_def.name == "subscribers"
    assert defs.resolve_sensor_def("syndication_sensor").job_name == "syndicate_job"
    for name in ("reconsolidate_job", "rebuild_job"):
        keys = {
            k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys
        }
        assert {"cleansed_records", "match_clusters", "golden_records", "golden_changes"} <= keys
    assert defs.resolve_sensor_def("reconsolidation_sensor").job_name == "reconsolidate_job"
    assert defs.resolve_sensor_def("retrain_sensor").job_name == "rebuild_job"
    master = defs.resolve_job_def("master_job")
    assert {k.to_user_string() for k in master.asset_layer.executable_asset_keys} == {
        "golden_records",
        "golden_changes",
        "households",
    }


def test_workspace_points_at_the_definitions():
    import yaml

    from tests.conftest import REPO

    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]
    assert module["module_name"] == "mdm_orchestration.definitions"


def test_resources_read_the_environment_at_use_not_at_import(monkeypatch, tmp_path):
    from mdm_orchestration.definitions import defs
    from mdm_orchestration.resources import HubConfigResource, HubDatabase, LandingZone

    resources = defs.resources
    assert isinstance(resources["hub"], HubDatabase) and resources["hub"].url is None
    assert isinstance(resources["landing"], LandingZone) and resources["landing"].root is None
    assert isinstance(resources["config"], HubConfigResource)
    monkeypatch.setenv("MDM_LANDING_DIR", str(tmp_path / "drop"))
    assert resources["landing"].root_path() == (tmp_path / "drop").resolve()
