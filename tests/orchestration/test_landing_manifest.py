"""RELIABILITY row 5: a half-written file is not ingested until it is complete, then exactly
once; a manifest whose sha256 does not match the file rejects the file at file level.

Real sensor evaluation (``dg.build_sensor_context`` over a real landing folder and a real hub)
and real runs of the ingestion asset; a background thread writes slowly while the sensor ticks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.assets.ingestion import source_extracts
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.sensors import landing_sensor
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file

HEADER = "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"


def row(n: int) -> str:
    return (
        f"M{n};Doe, Jane{n};{n} Main St;;Springfield;IL;62701;217-555-{n:04d};"
        f"j{n}@example.com;1980-02-03;123-45-6789;2026-01-01 10:00:00\n"
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["sqlite", "postgres"])
def hub_url(request, sqlite_url) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return request.getfixturevalue("postgres_url")


def make_config(tmp_path: Path, complete_when: str) -> Path:
    """The shipped configuration; billing completes files by ``complete_when``; a long settle
    time, so that only stability (or a manifest) makes a file complete."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    body = yaml.safe_load((folder / "sources.yaml").read_text())
    body["ingest"]["settle_seconds"] = 3600
    body["sources"]["billing"]["complete_when"] = complete_when
    (folder / "sources.yaml").write_text(yaml.safe_dump(body))
    return folder


def tick(instance: dg.DagsterInstance, resources: dict, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = landing_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def run(instance, resources, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [source_extracts],
        partition_key=request.partition_key,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def ledger(url: str) -> list[tuple[str, str, str | None]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text("SELECT file_name, status, reason FROM extracts ORDER BY id")
                )
            ]
    finally:
        engine.dispose()


def count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_a_manifest_that_does_not_match_rejects_the_file_and_a_corrected_one_loads_it(
    tmp_path, hub_url
):
    landing = tmp_path / "landing"
    resources = {
        "hub": HubDatabase(url=hub_url),
        "landing": LandingZone(
            root=str(landing), config_dir=str(make_config(tmp_path, "manifest"))
        ),
    }
    with dg.instance_for_test() as instance:
        data = write_file(landing / "billing/a.csv", HEADER + row(1) + row(2))
        cursor = None
        for _ in range(3):  # no manifest: invisible, however long it waits
            result = tick(instance, resources, cursor)
            cursor = result.cursor
            assert not result.run_requests
        assert json.loads(cursor)["pending"] == {}

        # A manifest for other bytes (the file as the writer meant it, say): one run, which
        # rejects the file at file level and writes nothing.
        manifest = write_file(landing / "billing/a.csv.manifest", json.dumps({"sha256": "0" * 64}))
        result = tick(instance, resources, cursor)
        [request] = result.run_requests
        assert request.run_key.endswith(":manifest:" + "0" * 16)
        bad = run(instance, resources, request)
        assert not bad.success
        failure = next(e for e in bad.all_events if e.is_step_failure)
        description = failure.step_failure_data.user_failure_data.description
        assert "manifest" in description and "a.csv" not in description  # opaque in Dagster
        [(name, status, reason)] = ledger(hub_url)
        assert (name, status) == ("billing/a.csv", "rejected")
        assert reason.startswith("manifest_mismatch: billing/a.csv: ")  # names the file
        assert "Doe" not in reason and "example.com" not in reason  # never a value
        assert count(hub_url, "SELECT count(*) FROM source_records") == 0
        assert count(hub_url, "SELECT count(*) FROM source_record_versions") == 0
        assert count(hub_url, "SELECT count(*) FROM quarantine") == 0

        # Nothing more until something changes; the same rejection again records nothing new.
        result = tick(instance, resources, result.cursor)
        assert not result.run_requests
        assert not run(instance, resources, request).success
        assert len(ledger(hub_url)) == 1

        # A corrected manifest (a sha256sum line this time), the same bytes: loaded once.
        manifest.write_text(f"{sha256(data)}  a.csv\n")
        result = tick(instance, resources, result.cursor)
        [request] = result.run_requests
        assert request.run_key == f"billing:{sha256(data)}"
        assert run(instance, resources, request).success
        assert [s for _n, s, _r in ledger(hub_url)] == ["rejected", "loaded"]
        assert count(hub_url, "SELECT count(*) FROM source_records") == 2
        result = tick(instance, resources, result.cursor)
        assert not result.run_requests

        # A corrected re-drop of new bytes with a manifest that vouches for them: loaded.
        data.write_text(HEADER + row(1) + row(2) + row(3))
        manifest.write_text(json.dumps({"sha256": sha256(data)}))
        result = tick(instance, resources, result.cursor)
        [request] = result.run_requests
        assert run(instance, resources, request).success
        assert count(hub_url, "SELECT count(*) FROM source_records") == 3
        assert [s for _n, s, _r in ledger(hub_url)] == ["rejected", "loaded", "loaded"]


def test_an_optional_manifest_is_checked_where_files_complete_by_stability(tmp_path, sqlite_url):
    """The default rule (size and mtime stable): a manifest beside a file is not required, but
    a wrong one still rejects the file; the manifest itself is never ingested."""
    landing = tmp_path / "landing"
    resources = {
        "hub": HubDatabase(url=sqlite_url),
        "landing": LandingZone(root=str(landing), config_dir=str(make_config(tmp_path, "stable"))),
    }
    with dg.instance_for_test() as instance:
        write_file(landing / "billing/plain.csv", HEADER + row(1))
        truncated = write_file(landing / "billing/cut.csv", HEADER + row(2))
        write_file(landing / "billing/cut.csv.manifest", "f" * 64 + "  cut.csv\n")
        first = tick(instance, resources, None)
        assert not first.run_requests  # first look: maybe still being written
        second = tick(instance, resources, first.cursor)
        assert len(second.run_requests) == 2  # the two data files, not the manifest
        results = [run(instance, resources, r) for r in second.run_requests]
        assert sorted(r.success for r in results) == [False, True]
        rows = {name: (status, reason) for name, status, reason in ledger(sqlite_url)}
        assert rows["billing/plain.csv"] == ("loaded", None)
        assert rows["billing/cut.csv"][0] == "rejected"
        assert rows["billing/cut.csv"][1].startswith("manifest_mismatch: billing/cut.csv")
        assert truncated.exists()  # a rejected file stays where the operator can fix it


class SlowWriter(threading.Thread):
    """Appends a row at a time to ``path`` until told to stop; ``written`` counts the rows."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.written = 0
        self.stop = threading.Event()
        self.progress = threading.Condition()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write(HEADER)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            with self.path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(row(n))
            with self.progress:
                self.written = n
                self.progress.notify_all()
            self.stop.wait(0.02)

    def wait_past(self, rows: int, timeout: float = 30.0) -> int:
        """Block until more than ``rows`` rows are written (a deadline, not a sleep)."""
        with self.progress:
            assert self.progress.wait_for(lambda: self.written > rows, timeout), "writer stalled"
            return self.written

    def finish(self) -> int:
        self.stop.set()
        self.join(timeout=30)
        assert not self.is_alive()
        return self.written


@pytest.fixture
def writers() -> Iterator[list[SlowWriter]]:
    started: list[SlowWriter] = []
    yield started
    for w in started:
        w.stop.set()
        w.join(timeout=30)


@pytest.mark.parametrize("finish", ["rename", "manifest", "stable"])
def test_a_slowly_written_file_is_ingested_once_when_complete(
    tmp_path, sqlite_url, writers, finish
):
    """A background writer appends rows while the sensor ticks: no run. ``rename``: written as
    ``.tmp``, renamed when done; ``manifest``: written under its name in a manifest source, the
    manifest written when done; ``stable``: written under its name, complete once its size and
    mtime stop changing between ticks. Then exactly one run, with every row."""
    landing = tmp_path / "landing"
    config = make_config(tmp_path, "manifest" if finish == "manifest" else "stable")
    resources = {
        "hub": HubDatabase(url=sqlite_url),
        "landing": LandingZone(root=str(landing), config_dir=str(config)),
    }
    final = landing / "billing/slow.csv"
    writer = SlowWriter(final.with_name("slow.csv.tmp") if finish == "rename" else final)
    writers.append(writer)
    writer.start()
    with dg.instance_for_test() as instance:
        cursor = None
        seen = 0
        for _ in range(5):
            # The file grew since the last look (the writer is past the rows seen then).
            seen = writer.wait_past(seen)
            result = tick(instance, resources, cursor)
            cursor = result.cursor
            assert not result.run_requests, "a half-written file was requested"
        rows = writer.finish()
        assert rows >= 5
        if finish == "rename":
            writer.path.rename(final)
        elif finish == "manifest":
            write_file(final.with_name("slow.csv.manifest"), f"{sha256(final)}  slow.csv\n")
        requests: list[dg.RunRequest] = []
        # Vouched for by its manifest: complete at the next look. Renamed (seen for the first
        # time) or written in place: complete once unchanged between two looks.
        for _ in range(1 if finish == "manifest" else 2):
            result = tick(instance, resources, cursor)
            cursor = result.cursor
            requests += result.run_requests or []
        assert len(requests) == 1
        [done] = [run(instance, resources, r) for r in requests]
        assert done.success
        meta = done.asset_materializations_for_node("source_extracts")[0].metadata
        assert meta["rows_loaded"].value == rows
        for _ in range(2):
            result = tick(instance, resources, result.cursor)
            assert not result.run_requests
    assert ledger(sqlite_url) == [("billing/slow.csv", "loaded", None)]
    assert count(sqlite_url, "SELECT count(*) FROM source_records") == rows


def test_mdm_run_waits_for_the_manifest_as_the_sensor_does(tmp_path, sqlite_url, capsys):
    """``mdm run`` scans the landing zone as the landing sensor does: in a source that completes
    by manifest, a file without its manifest is not ingested; with it, it is, once."""
    from mdm_orchestration.cli import main

    landing = tmp_path / "landing"
    config = make_config(tmp_path, "manifest")
    extract = landing / "billing/b1.csv"
    write_file(extract, HEADER + row(1) + row(2))
    args = ["run", "--landing", str(landing), "--hub", sqlite_url, "--config", str(config)]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["ingested"] == 0
    assert ledger(sqlite_url) == []
    write_file(extract.with_name("b1.csv.manifest"), f"{sha256(extract)}  b1.csv\n")
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["ingested"] == 1
    assert ledger(sqlite_url) == [("billing/b1.csv", "loaded", None)]
