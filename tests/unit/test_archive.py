"""The archive's file work: rewriting an extract without some source records (CSV, JSON Lines,
Parquet), moving an ingested file out of the landing zone, and the retention purge."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import pytest

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.ingestion import ArchiveError, archive_landed, archive_root, purge_expired
from mdm_orchestration.ingestion.archive import scrub_file
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file


def with_archive(tmp_path: Path, **archive: object) -> HubConfig:
    config = load_hub_config(CONFIG_DIR)
    settings = config.ingest.archive.model_copy(update={"enabled": True, **archive})
    ingest = config.ingest.model_copy(update={"archive": settings})
    return config.model_copy(update={"ingest": ingest})


def test_a_csv_extract_loses_exactly_the_erased_rows_and_keeps_the_others_byte_for_byte(tmp_path):
    config = load_hub_config(CONFIG_DIR)
    billing = config.sources["billing"]
    header = (
        "\ufeffcust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;"
        "last_updated\r\n"
    )
    keep_1 = 'B1;"Doe; Jane";1 Main St;;Springfield;IL;62701;;j@x.org;;;2026-01-01\r\n'
    erased = ' B2 ;"Canary\r\nMultiline";2 Main St;;Springfield;IL;62701;;c@x.org;;;2026-01-01\r\n'
    keep_2 = "B3;Roe, Ann;3 Main St;;Springfield;IL;62701;;a@x.org;;;2026-01-01"  # no newline
    path = write_file(tmp_path / "b.csv", header + keep_1 + erased + "\r\n" + keep_2)
    os.chmod(path, 0o600)
    before = path.stat().st_mtime_ns - 10**9
    os.utime(path, ns=(before, before))
    ids = {source_record_id("billing", "B2"), source_record_id("loyalty", "B3")}
    assert scrub_file(path, billing, ids, keep_mtime=True) == ("rewritten", 1)
    assert path.read_bytes() == (header + keep_1 + "\r\n" + keep_2).encode()
    assert path.stat().st_mtime_ns == before  # the retention clock does not restart
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert scrub_file(path, billing, ids) == ("kept", 0)  # nothing more to remove
    assert [p.name for p in tmp_path.iterdir()] == ["b.csv"]  # no temporary file left
    everyone = {source_record_id("billing", k) for k in ("B1", "B3")}
    assert scrub_file(path, billing, everyone) == ("removed", 2)
    assert not path.exists()


def test_json_lines_and_parquet_extracts_lose_the_erased_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = load_hub_config(CONFIG_DIR)
    jsonl = next(s for s in config.sources.values() if s.format.value == "jsonl")
    key = jsonl.key_column
    lines = [
        json.dumps({key: "K1", "name": "Keep"}),
        json.dumps({key: "K2", "name": "Canary"}),
        "{not json",
        json.dumps({key: 3, "name": "Number key"}),
    ]
    path = write_file(tmp_path / "e.jsonl", "\n".join(lines) + "\n")
    ids = {source_record_id(jsonl.name, "K2"), source_record_id(jsonl.name, "3")}
    assert scrub_file(path, jsonl, ids) == ("rewritten", 2)
    assert path.read_text() == lines[0] + "\n" + lines[2] + "\n"

    parquet = jsonl.model_copy(update={"format": "parquet"})
    table = pa.table({key: ["K1", "K2", None], "name": ["Keep", "Canary", "No key"]})
    ppath = tmp_path / "e.parquet"
    pq.write_table(table, ppath)
    assert scrub_file(ppath, parquet, ids) == ("rewritten", 1)
    assert pq.read_table(ppath).column("name").to_pylist() == ["Keep", "No key"]


def test_an_unreadable_file_is_left_as_it_is(tmp_path):
    config = load_hub_config(CONFIG_DIR)
    parquet = config.sources["billing"].model_copy(update={"format": "parquet"})
    path = write_file(tmp_path / "x.parquet", b"not parquet at all")
    assert scrub_file(path, parquet, {"x"}) is None
    assert path.read_bytes() == b"not parquet at all"
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_an_ingested_file_moves_to_the_archive_and_expires(tmp_path, sqlite_engine):
    config = with_archive(tmp_path, retention_days=2)
    landing = tmp_path / "landing"
    path = write_file(landing / "billing" / "john.doe@example.com.csv", "cust_no\nB1\n")
    write_file(landing / "billing" / "john.doe@example.com.csv.manifest", "x")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    home = tmp_path / "home"
    # Bytes other than those ingested (the file changed since): left for the sensor to see.
    assert not archive_landed(sqlite_engine, config, path, landing, "0" * 64, home=home)
    assert path.exists()
    assert archive_landed(sqlite_engine, config, path, landing, sha, home=home)
    root = archive_root(config, home)
    assert root == home / "archive"
    archived = root / "billing" / f"{sha}.csv"  # named by content, never by the landed name
    assert archived.read_text() == "cust_no\nB1\n"
    assert sorted(p.name for p in (landing / "billing").iterdir()) == []  # manifest gone too
    assert stat.S_IMODE(archived.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "billing").stat().st_mode) == 0o700
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    # The same bytes landing again: the landed copy goes, the archived one stays.
    again = write_file(landing / "billing" / "again.csv", "cust_no\nB1\n")
    assert archive_landed(sqlite_engine, config, again, landing, sha, home=home)
    assert not again.exists() and archived.exists()

    assert purge_expired(config, home=home) == 0
    assert purge_expired(config, home=home, now=time.time() + 1.9 * 86400) == 0
    assert purge_expired(config, home=home, now=time.time() + 2.1 * 86400) == 1
    assert not archived.exists()
    off = load_hub_config(CONFIG_DIR)  # the archive off (the default): nothing moves
    kept = write_file(landing / "billing" / "kept.csv", "cust_no\nB1\n")
    assert not archive_landed(sqlite_engine, off, kept, landing, sha, home=home)
    assert kept.exists() and purge_expired(off, home=home) == 0


def test_an_archive_inside_the_landing_root_is_refused(tmp_path, sqlite_engine):
    landing = tmp_path / "landing"
    config = with_archive(tmp_path, folder=str(landing / "archive"))
    path = write_file(landing / "billing" / "a.csv", "cust_no\nB1\n")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ArchiveError, match="outside the landing root"):
        archive_landed(sqlite_engine, config, path, landing, sha, home=tmp_path)
    assert path.exists()
