"""Defect 8: files the landing scan skips are recorded in the hub with their reason."""

from __future__ import annotations

import os

from mdm_orchestration.hub.status import hub_status
from mdm_orchestration.ingestion import SkippedFile, record_skipped, scan_landing
from tests.helpers import write_file

CSV = "cust_no;full_name\n1;A\n"


def _landing_with_every_skip(tmp_path):
    root = tmp_path / "landing"
    write_file(root / "billing/good.csv", CSV)
    write_file(root / "billing/.hidden.csv", CSV)  # dotfile: silently ignored
    write_file(root / "billing/part.csv.tmp", CSV)  # being written: silently ignored
    write_file(root / "stray.csv", CSV)  # at the landing root
    write_file(root / "billing/bad\nname.csv", CSV)  # a control character in the name
    outside = write_file(tmp_path / "elsewhere/secret.csv", CSV)
    os.symlink(outside, root / "billing/link_out.csv")  # a symlink out of the root
    os.symlink(tmp_path / "elsewhere", root / "billing/folder_link")  # a link to a folder
    (root / "billing/sub").mkdir()  # a folder inside a source folder
    (root / "nosource").mkdir()  # a folder that is no source's
    return root


def test_scan_reports_every_skipped_file_with_its_reason(tmp_path):
    root = _landing_with_every_skip(tmp_path)
    skipped: list[SkippedFile] = []
    found = scan_landing(root, ["billing", "crm"], skipped)
    assert [f.key for f in found] == ["billing/good.csv"]
    assert {(s.path, s.reason) for s in skipped} == {
        ("stray.csv", "at_landing_root"),
        ("nosource", "unknown_folder"),
        ("billing/bad\\x0aname.csv", "invalid_name"),
        ("billing/link_out.csv", "outside_landing_root"),
        ("billing/folder_link", "outside_landing_root"),
        ("billing/sub", "not_a_regular_file"),
    }
    # Without the list, the scan is what it was.
    assert [f.key for f in scan_landing(root, ["billing"])] == ["billing/good.csv"]


def test_a_link_to_a_folder_inside_the_root_is_a_directory_link(tmp_path):
    root = tmp_path / "landing"
    write_file(root / "billing/a.csv", CSV)
    (root / "crm").mkdir()
    os.symlink(root / "crm", root / "billing/to_crm")
    skipped: list[SkippedFile] = []
    scan_landing(root, ["billing", "crm"], skipped)
    assert skipped == [SkippedFile("billing/to_crm", "directory_link")]


def test_skips_are_kept_in_the_hub_and_listed_by_status(tmp_path, sqlite_engine):
    root = _landing_with_every_skip(tmp_path)
    skipped: list[SkippedFile] = []
    scan_landing(root, ["billing"], skipped)
    assert record_skipped(sqlite_engine, skipped)
    assert not record_skipped(sqlite_engine, skipped)  # unchanged: nothing written
    listed = hub_status(sqlite_engine)["skipped_landing_files"]
    assert {(s["path"], s["reason"]) for s in listed} == {(s.path, s.reason) for s in skipped}
    first_seen = {s["path"]: s["first_seen_at"] for s in listed}

    # A skipped file that goes away is forgotten; the others keep their first-seen time.
    (root / "stray.csv").unlink()
    again: list[SkippedFile] = []
    scan_landing(root, ["billing"], again)
    assert record_skipped(sqlite_engine, again)
    listed = hub_status(sqlite_engine)["skipped_landing_files"]
    assert "stray.csv" not in {s["path"] for s in listed}
    assert all(first_seen[s["path"]] == s["first_seen_at"] for s in listed)


def test_mdm_status_prints_each_skipped_file_with_its_reason(tmp_path, sqlite_engine, capsys):
    from mdm_orchestration.cli_output import print_status

    root = _landing_with_every_skip(tmp_path)
    skipped: list[SkippedFile] = []
    scan_landing(root, ["billing"], skipped)
    record_skipped(sqlite_engine, skipped)
    print_status(hub_status(sqlite_engine))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("skipped landing file")]
    assert len(lines) == len(skipped)
    assert all(s.reason in out for s in skipped)
    assert "\x1b" not in out and "\x07" not in out  # control characters shown escaped
