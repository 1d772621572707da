"""Which landed files are candidates, and when a candidate counts as complete."""

from __future__ import annotations

import json
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


# --- manifests (RELIABILITY row 5) ------------------------------------------------------------

SHA = "ab" * 32


def test_a_manifest_is_json_or_a_sha256sum_line():
    import pytest

    from mdm_orchestration.ingestion.landing import ManifestError, parse_manifest

    assert parse_manifest(b'{"sha256": "' + SHA.upper().encode() + b'", "rows": 3}') == SHA
    assert parse_manifest(f"{SHA}  a.csv\n".encode()) == SHA
    assert parse_manifest(f"{SHA} *a.csv\n".encode()) == SHA  # sha256sum's binary mode
    assert parse_manifest(f"\ufeff{SHA}\n".encode()) == SHA  # a bare hash, with a BOM
    for bad in (
        b"",
        b"{",
        b'{"sha": "' + SHA.encode() + b'"}',
        b'{"sha256": "abc"}',
        SHA[:-1].encode(),  # half-written
        f"{SHA}  a.csv\n{SHA}  b.csv\n".encode(),  # a manifest of several files
        b"\xff\xfe",
        b"x" * 5000,
    ):
        with pytest.raises(ManifestError):
            parse_manifest(bad)


def test_manifests_are_never_candidates_and_a_manifest_source_waits_for_them(tmp_path):
    from mdm_orchestration.ingestion.landing import INVALID_MANIFEST, SkippedFile

    root = tmp_path / "landing"
    write_file(root / "crm/a.csv", "x\n")
    write_file(root / "crm/a.csv.manifest", f"{SHA}  a.csv\n")
    write_file(root / "crm/b.csv", "x\n")  # no manifest
    write_file(root / "crm/c.csv", "x\n")
    write_file(root / "crm/c.csv.manifest", "not a hash\n")
    write_file(root / "crm/d.csv.manifest.tmp", SHA)
    write_file(root / "billing/e.csv", "x\n")
    write_file(root / "billing/e.csv.manifest", f'{{"sha256": "{SHA}"}}')
    skipped: list[SkippedFile] = []
    files = {f.key: f for f in scan_landing(root, ["crm", "billing"], skipped)}
    # Stable rule everywhere: a manifest is optional, its hash noted, never a candidate itself.
    assert sorted(files) == ["billing/e.csv", "crm/a.csv", "crm/b.csv"]
    assert files["crm/a.csv"].manifest == SHA and files["crm/b.csv"].manifest is None
    assert not any(f.complete_by_manifest for f in files.values())
    assert skipped == [SkippedFile("crm/c.csv", INVALID_MANIFEST)]
    # crm completes by manifest: b.csv (no manifest yet) is invisible, a.csv complete at once.
    files = {f.key: f for f in scan_landing(root, ["crm", "billing"], manifest_folders={"crm"})}
    assert sorted(files) == ["billing/e.csv", "crm/a.csv"]
    assert files["crm/a.csv"].complete_by_manifest
    assert not files["billing/e.csv"].complete_by_manifest
    cursor = LandingCursor()
    now = files["crm/a.csv"].mtime_ns  # modified just now, seen for the first time
    ready = complete_files(list(files.values()), cursor, now, settle_seconds=60)
    assert [f.key for f in ready] == ["crm/a.csv"]  # billing/e.csv waits for stability


def test_a_new_manifest_makes_a_handled_file_new_again(tmp_path):
    root = tmp_path / "landing"
    write_file(root / "crm/a.csv", "x\n")
    manifest = write_file(root / "crm/a.csv.manifest", f"{SHA}\n")
    cursor = LandingCursor()
    [f] = scan_landing(root, ["crm"], manifest_folders={"crm"})
    assert complete_files([f], cursor, f.mtime_ns, settle_seconds=60) == [f]
    cursor.handled(f, "cd" * 32)
    cursor = LandingCursor.from_json(cursor.to_json())
    [f] = scan_landing(root, ["crm"], manifest_folders={"crm"})
    assert complete_files([f], cursor, f.mtime_ns, settle_seconds=60) == []  # handled
    manifest.write_text("cd" * 32 + "\n")  # a corrected manifest, the same file
    [f] = scan_landing(root, ["crm"], manifest_folders={"crm"})
    assert complete_files([f], cursor, f.mtime_ns, settle_seconds=60) == [f]
    # A cursor written before manifests (three fields) still reads as handled.
    write_file(root / "crm/b.csv", "x\n")
    [g] = [x for x in scan_landing(root, ["crm"]) if x.key == "crm/b.csv"]
    old = LandingCursor.from_json(
        json.dumps({"pending": {}, "done": {cursor_key("crm/b.csv"): [g.size, g.mtime_ns, "x"]}})
    )
    assert complete_files([g], old, g.mtime_ns, settle_seconds=60) == []
