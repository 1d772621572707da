"""Dead letters through Dagster and the CLI (issue 17, defect 12; RELIABILITY row 16): the
run succeeds with a poison event dead-lettered, the ``no_dead_letters`` check fails with ERROR
severity (counts only), ``mdm syndicate dlq list|retry|drop`` and ``mdm status`` show and
work the queue, and a retry delivers the held events in order."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from mdm_orchestration.assets.syndication import DEAD_LETTERS, LAG, subscriber_deliveries
from mdm_orchestration.cli import main
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.partitions import subscribers
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.survivorship import event_id
from mdm_orchestration.syndication import ensure_state, list_dead_letters
from tests.unit.test_dead_letters import Outbox, Receiver, hook, write_config

# The hubs here hold an outbox written directly (golden versions and their events, no source
# records behind them): syndication's input, not a consolidation's result, so the invariants
# and the convergence oracle of a consolidated hub do not apply.
pytestmark = pytest.mark.unsettled_hub("an outbox written directly, no consolidation behind it")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def cli_json(capsys, *argv: str):  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_dead_letter_fails_the_check_and_the_cli_retries_and_drops_it(
    tmp_path, receiver, capsys, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    config_dir = write_config(tmp_path, {"hook": hook(receiver.url, dead_letter_after=2)})
    engine = create_hub_engine(url)
    ensure_state(engine, "hook", load_hub_config(config_dir).subscriptions.subscribers["hook"])
    box = Outbox(engine)
    for g in ("G1", "P", "G2"):
        box.add(g)
    box.add("P")
    receiver.refuse = {"P"}
    resources = {
        "hub": HubDatabase(url=url),
        "landing": LandingZone(root=str(tmp_path / "landing"), config_dir=str(config_dir)),
    }
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(subscribers.name, ["hook"])

        def materialize() -> dg.ExecuteInProcessResult:
            return dg.materialize(
                [subscriber_deliveries],
                partition_key="hook",
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )

        def run_key() -> str | None:
            from mdm_orchestration.sensors.syndication import syndication_sensor

            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                result = syndication_sensor(context)
            keys = [r.run_key for r in result.run_requests or []]
            return keys[0] if keys else None

        first_key = run_key()
        assert first_key is not None
        first = materialize()
        assert first.success  # the other golden records went out: the run is not failed
        got = checks(first)
        assert got[LAG].passed
        dead = got[DEAD_LETTERS]
        assert not dead.passed and dead.severity == dg.AssetCheckSeverity.ERROR
        assert {k: v.value for k, v in dead.metadata.items()} == {
            "dead_lettered": 1,
            "held": 1,
            "queued_for_retry": 0,
        }
        meta = first.asset_materializations_for_node("subscriber_deliveries")[0].metadata
        assert meta["dead_lettered"].value == 1 and meta["held"].value == 1
        assert "GivenP" not in repr(meta) + repr(dead.metadata)
        assert sorted(receiver.events()) == [("G1", 1), ("G2", 1)]

        # mdm status and mdm syndicate dlq list show it (ids and error classes only).
        status = cli_json(capsys, "status", "--hub", url)
        assert status["dead_lettered_events"] == 1
        assert status["dead_letters"] == {"hook": {"dead": 1, "held": 1, "queued": 0}}
        capsys.readouterr()
        assert main(["status", "--hub", url]) == 0
        assert "dead letters hook: 1 refused, 1 held" in capsys.readouterr().out
        listed = cli_json(capsys, "syndicate", "dlq", "list", "--hub", url)
        assert [(d["golden_id"], d["version"], d["state"]) for d in listed] == [
            ("P", 1, "dead"),
            ("P", 2, "held"),
        ]
        assert (listed[0]["attempts"], listed[0]["error_class"], listed[0]["error_status"]) == (
            2,
            "HTTP",
            400,
        )
        assert main(["syndicate", "dlq", "list", "--hub", url, "--subscriber", "hook"]) == 0
        text = capsys.readouterr().out
        assert event_id("P", 1) in text and "HTTP 400" in text and "GivenP" not in text

        # Retry (idempotent), then the next run delivers P v1 and v2 in order.
        receiver.refuse = set()
        first_id = event_id("P", 1)
        assert cli_json(capsys, "syndicate", "dlq", "retry", "--hub", url, "--event", first_id) == {
            "queued": 2
        }
        assert cli_json(capsys, "syndicate", "dlq", "retry", "--hub", url, "--event", first_id) == {
            "queued": 0
        }
        # The sensor asks for a run under a new key: the daemon would launch it.
        retry_key = run_key()
        assert retry_key is not None and retry_key != first_key
        second = materialize()
        assert second.success and checks(second)[DEAD_LETTERS].passed
        assert receiver.events("P") == [("P", 1), ("P", 2)]
        assert list_dead_letters(engine) == []

        # A new poison event, dropped with a reason by a named steward (idempotent).
        receiver.refuse = {"G2"}
        box.add("G2")
        assert not checks(materialize())[DEAD_LETTERS].passed
        monkeypatch.setenv("MDM_STEWARD", "ops-anna")
        drop = ["syndicate", "dlq", "drop", "--hub", url, "--subscriber", "hook"]
        assert cli_json(capsys, *drop, "--reason", "rejected upstream, fixed by hand") == {
            "dropped": 1
        }
        assert cli_json(capsys, *drop, "--reason", "again") == {"dropped": 0}
        (dropped,) = list_dead_letters(engine, include_resolved=True, event_id=event_id("G2", 2))
        assert (dropped.state, dropped.resolved_by, dropped.reason) == (
            "dropped",
            "ops-anna",
            "rejected upstream, fixed by hand",
        )
        assert checks(materialize())[DEAD_LETTERS].passed
    engine.dispose()


def test_mdm_syndicate_without_a_sub_command_still_delivers(tmp_path, receiver, capsys):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    config_dir = write_config(tmp_path, {"hook": hook(receiver.url)})
    engine = create_hub_engine(url)
    ensure_state(engine, "hook", load_hub_config(config_dir).subscriptions.subscribers["hook"])
    Outbox(engine).add("G1")
    engine.dispose()
    code = main(
        ["syndicate", "--hub", url, "--config", str(config_dir), "--subscriber", "hook", "--json"]
    )
    assert code == 0
    assert receiver.events() == [("G1", 1)]
    assert json.loads(capsys.readouterr().out)["pending_events"] == {"hook": 0}
