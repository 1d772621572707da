"""Matching through Dagster and the steward CLI: clusters, checks, retraining, overrides."""

from __future__ import annotations

import io
import json
import shutil

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.assets.cleansing import cleansed_records
from mdm_orchestration.assets.matching import match_clusters, match_model, training_labels
from mdm_orchestration.cli import main
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.resources import HubDatabase, LandingZone
from tests.conftest import CONFIG_DIR
from tests.helpers import copy_landing, ingest_all

MATCHING = [training_labels, match_model, match_clusters]


@pytest.fixture
def hub(tmp_path, sample_silos, hub_config):
    """A SQLite hub holding the generated silos, cleansed."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    landing = copy_landing(sample_silos, tmp_path / "landing")
    engine = create_hub_engine(url)
    ingest_all(engine, hub_config, landing)
    engine.dispose()
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    resources = {
        "hub": HubDatabase(url=url),
        "landing": LandingZone(root=str(landing), config_dir=str(config)),
    }
    dg.materialize([cleansed_records], resources=resources)
    return {"url": url, "resources": resources, "config": config}


def materialize(hub, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(MATCHING, resources=hub["resources"], instance=instance)


def clusters(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT record_id, cluster_id FROM match_clusters")).all()
    engine.dispose()
    return dict(rows)


def record_id(source: str, key: str) -> str:
    from mdm_orchestration.hub.models import source_record_id

    return source_record_id(source, key)


def test_clusters_metadata_checks_and_no_needless_retrain(hub):
    with dg.instance_for_test() as instance:
        first = materialize(hub, instance)
        assert first.success
        meta = {
            k: v.value
            for k, v in first.asset_materializations_for_node("match_clusters")[0].metadata.items()
        }
        assert meta["records"] > 1000 and 0 < meta["clusters"] < meta["records"]
        assert 0.3 < meta["match_rate"] < 1.0
        assert "| person |" in meta["cluster_sizes"] and meta["review_queue"] >= 0
        checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
        assert checks["every_record_in_one_cluster"].passed
        assert checks["no_cluster_above_max_size"].passed
        model_meta = first.asset_materializations_for_node("match_model")[0].metadata
        assert model_meta["person_retrained"].value is True
        assert model_meta["person_cv_f1"].value > 0.95

        second = materialize(hub, instance)
        model_meta = second.asset_materializations_for_node("match_model")[0].metadata
        assert model_meta["person_retrained"].value is False  # labels unchanged
        assert clusters(hub["url"]) == clusters(hub["url"])


def test_over_merged_cluster_fails_its_check(hub):
    matching = yaml.safe_load((hub["config"] / "matching.yaml").read_text())
    matching["max_cluster_size"] = 2
    (hub["config"] / "matching.yaml").write_text(yaml.safe_dump(matching))
    result = materialize(hub)
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}[
        "no_cluster_above_max_size"
    ]
    assert not check.passed and check.metadata["oversized_clusters"].value > 0


def test_steward_overrides_and_review_round_trip(hub, monkeypatch, capsys):
    assert materialize(hub).success
    before = clusters(hub["url"])
    by_cluster: dict[str, list[str]] = {}
    for rid, cid in before.items():
        by_cluster.setdefault(cid, []).append(rid)
    together = next(m for m in by_cluster.values() if len(m) == 2)
    apart = sorted(by_cluster)[:2]
    engine = sa.create_engine(hub["url"])
    with engine.connect() as conn:
        keys = dict(
            conn.execute(
                sa.text("SELECT id, source || ':' || source_key FROM source_records")
            ).all()
        )
    engine.dispose()
    a, b = (keys[r] for r in together)
    c, d = keys[by_cluster[apart[0]][0]], keys[by_cluster[apart[1]][0]]
    hub_arg = ["--hub", hub["url"]]
    assert main(["split", a, b, "--reason", "test", *hub_arg]) == 0
    assert main(["merge", c, d, *hub_arg]) == 0
    assert main(["merge", "crm:no-such-key", d, *hub_arg]) == 2

    # Review: label the first two pairs, skip the third, quit.
    engine = sa.create_engine(hub["url"])
    with engine.connect() as conn:
        pending = conn.execute(
            sa.text("SELECT count(*) FROM review_queue WHERE status='pending'")
        ).scalar_one()
    assert pending >= 3
    monkeypatch.setattr("sys.stdin", io.StringIO("m\nx\nd\ns\nq\n"))
    capsys.readouterr()
    assert main(["review", "--limit", "5", *hub_arg]) == 0
    out = capsys.readouterr().out
    assert "match probability" in out and "2 pair(s) labelled" in out
    with engine.connect() as conn:
        labels = (
            conn.execute(sa.text("SELECT label FROM training_labels ORDER BY id")).scalars().all()
        )
        done = conn.execute(
            sa.text("SELECT count(*) FROM review_queue WHERE status='done'")
        ).scalar_one()
        models_before = conn.execute(sa.text("SELECT count(*) FROM match_models")).scalar_one()
    assert labels == ["match", "distinct"] and done == 2

    # The labels change the training set: the model is retrained; overrides hold.
    assert materialize(hub).success
    after = clusters(hub["url"])
    assert after[together[0]] != after[together[1]]
    assert after[by_cluster[apart[0]][0]] == after[by_cluster[apart[1]][0]]
    with engine.connect() as conn:
        # One new model per party type whose labels changed.
        parties = conn.execute(
            sa.text("SELECT count(DISTINCT party_type) FROM training_labels")
        ).scalar_one()
        assert (
            conn.execute(sa.text("SELECT count(*) FROM match_models")).scalar_one()
            == models_before + parties
        )
        judged = conn.execute(
            sa.text(
                "SELECT count(*) FROM review_queue r JOIN training_labels l ON "
                "l.left_record_id = r.left_record_id AND l.right_record_id = r.right_record_id "
                "WHERE r.status = 'pending'"
            )
        ).scalar_one()
    engine.dispose()
    assert judged == 0  # a judged pair never comes back for review
    assert main(["status", "--json", *hub_arg]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["clustered_records"] == len(after) and status["clusters"] == len(
        set(after.values())
    )


def test_match_clusters_needs_a_model(tmp_path, hub):
    result = dg.materialize([match_clusters], resources=hub["resources"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "match_model" in str(failure.step_failure_data.error)
    del tmp_path


def test_enough_own_labels_replace_the_shipped_defaults(hub):
    matching = yaml.safe_load((hub["config"] / "matching.yaml").read_text())
    matching["own_labels_suffice"] = 30
    (hub["config"] / "matching.yaml").write_text(yaml.safe_dump(matching))
    with dg.instance_for_test() as instance:
        assert materialize(hub, instance).success
        by_cluster: dict[str, list[str]] = {}
        for rid, cid in sorted(clusters(hub["url"]).items()):
            by_cluster.setdefault(cid, []).append(rid)
        groups = [sorted(m) for m in by_cluster.values() if len(m) >= 2]
        engine = sa.create_engine(hub["url"])
        with engine.connect() as conn:
            persons = {
                r
                for (r,) in conn.execute(
                    sa.text(
                        "SELECT source_record_id FROM cleansed_records WHERE party_type = 'person'"
                    )
                )
            }
        engine.dispose()
        groups = [g for g in groups if g[0] in persons][:40]
        same = [(g[0], g[1]) for g in groups[:20]]
        apart = [(a[0], b[0]) for a, b in zip(groups[20:30], groups[30:40], strict=True)]
        from mdm_orchestration.matching import record_label

        engine = create_hub_engine(hub["url"])
        for a, b in same[:10] + apart[:5]:
            record_label(engine, a, b, "match" if (a, b) in same else "distinct", "test")
        few = materialize(hub, instance).asset_materializations_for_node("match_model")[0]
        # 15 own labels: the shipped defaults still take part.
        assert few.metadata["person_retrained"].value is True
        assert few.metadata["person_labels"].value > 1000
        for a, b in same[10:] + apart[5:]:
            record_label(engine, a, b, "match" if (a, b) in same else "distinct", "test")
        engine.dispose()
        own = materialize(hub, instance).asset_materializations_for_node("match_model")[0]
        assert own.metadata["person_retrained"].value is True
        assert own.metadata["person_labels"].value == 30  # the hub's own labels alone
        again = materialize(hub, instance).asset_materializations_for_node("match_model")[0]
        assert again.metadata["person_retrained"].value is False
