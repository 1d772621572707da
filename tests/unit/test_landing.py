"""Which landed files are candidates, and when a candidate counts as complete."""

from __future__ import annotations

import os

from mdm_orchestration.ingestion import LandingCursor, complete_files, cursor_key, scan_landing
from tests.helpers import write_file

SECOND = 1_000_000_000


def test_scan_skips_dotfiles_temporary_names_folders_and_escaping_symlinks(tmp_path):
    root = tmp_path / "landing"
    write_file(root / "crm/a.csv", "x\n")
    write_file(root / "crm/.hidden.csv", "x\n")
    write_file(root / "crm/b.csv.tmp", "x\n")
    write_file(root / "crm/c.csv.part", "x\n")
    (root / "crm/sub").mkdir()
    write_file(tmp_path / "outside.csv", "x\n")
    os.symlink(tmp_path / "outside.csv", root / "crm/escape.csv")
    os.symlink(root / "crm/a.csv", root / "crm/inside.csv")
    write_file(root / "unknown/z.csv", "x\n")
    keys = [f.key for f in scan_landing(root, ["crm", "billing"])]
    assert sorted(keys) == ["crm/a.csv", "crm/inside.csv"]


def test_a_file_is_complete_when_unchanged_between_looks_or_settled(tmp_path):
    root = tmp_path / "landing"
    path = write_file(root / "crm/a.csv", "x\n")
    cursor = LandingCursor()
    files = scan_landing(root, ["crm"])
    now = files[0].mtime_ns + 1 * SECOND
    assert complete_files(files, cursor, now, settle_seconds=60) == []  # first look: pending
    assert cursor_key("crm/a.csv") in cursor.pending and "crm/a.csv" not in cursor.to_json()
    with path.open("a") as fh:  # still growing
        fh.write("y\n")
    files = scan_landing(root, ["crm"])
    assert complete_files(files, cursor, now, settle_seconds=60) == []
    files = scan_landing(root, ["crm"])
    ready = complete_files(files, cursor, now, settle_seconds=60)  # unchanged since last look
    assert [f.key for f in ready] == ["crm/a.csv"] and cursor.pending == {}
    # An old file is complete at first sight.
    cursor = LandingCursor()
    assert len(complete_files(files, cursor, files[0].mtime_ns + 61 * SECOND, 60)) == 1


def test_cursor_round_trip_and_forgets_deleted_files(tmp_path):
    root = tmp_path / "landing"
    path = write_file(root / "crm/a.csv", "x\n")
    files = scan_landing(root, ["crm"])
    cursor = LandingCursor(
        done={cursor_key("crm/a.csv"): [files[0].size, files[0].mtime_ns, "sha"]}
    )
    cursor = LandingCursor.from_json(cursor.to_json())
    assert complete_files(files, cursor, files[0].mtime_ns + 100 * SECOND, 1) == []  # handled
    path.unlink()
    complete_files(scan_landing(root, ["crm"]), cursor, 0, 1)
    assert cursor.done == {}
