"""The sample silo generator: five silos, realistic flaws, ground truth, deterministic."""

from __future__ import annotations

import csv
import filecmp
import json

import pyarrow.parquet as pq

from mdm_orchestration.sample_data import generate


def _csv_rows(path, delimiter=","):
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = (
        generate(tmp_path / n, people=300, seed=s) for n, s in (("a", 5), ("b", 5), ("c", 6))
    )
    assert a.files == b.files
    for rel in a.files + ["../truth.csv"]:
        assert filecmp.cmp(
            tmp_path / "a/landing" / rel, tmp_path / "b/landing" / rel, shallow=False
        )
    assert not filecmp.cmp(tmp_path / "a/truth.csv", tmp_path / "c/truth.csv", shallow=False)
    assert c.rows > 0


def test_five_silos_their_layouts_flaws_and_truth(sample_silos):
    landing = sample_silos / "landing"
    assert sorted(p.name for p in landing.iterdir()) == [
        "billing",
        "crm",
        "ecommerce",
        "erp",
        "loyalty",
    ]
    truth = _csv_rows(sample_silos / "truth.csv")
    entity = {(r["source"], r["source_key"]): r["entity_id"] for r in truth}
    assert {r["source"] for r in truth} == {"billing", "crm", "ecommerce", "erp", "loyalty"}

    crm = _csv_rows(landing / "crm/crm_export_2026-01-05.csv")
    kinds = {r["RecordType"] for r in crm}
    assert kinds == {"Lead", "Contact", "Account"}
    contacts = [r for r in crm if r["RecordType"] == "Contact" and r["Id"]]
    linked = [r for r in contacts if r["ParentAccountId"]]
    assert contacts and len(linked) >= 0.7 * len(contacts)  # some accounts are not in the CRM
    assert all(r["ParentAccountId"].startswith("001A") for r in linked)
    assert all(
        entity[("crm", r["ParentAccountId"])].startswith("O")
        for r in contacts
        if r["ParentAccountId"]
    )

    billing = _csv_rows(landing / "billing/customers_20260105.csv", ";")
    assert any(", " in r["full_name"] for r in billing)  # "LAST, First" order
    assert any(r["ssn"] for r in billing)
    delta = _csv_rows(landing / "billing/customers_20260302.csv", ";")
    first_keys = {r["cust_no"] for r in billing}
    assert any(r["cust_no"] in first_keys for r in delta)  # later extracts update earlier keys
    assert any(r["cust_no"] not in first_keys for r in delta)  # ... and add new ones

    erp = pq.read_table(landing / "erp/KNA1_20260105.parquet").to_pylist()
    assert {r["KTOKD"] for r in erp} == {"KUNA", "CPD"}  # includes one-time customers

    shop = [json.loads(line) for line in (landing / "ecommerce/signups_2026-01-05.jsonl").open()]
    assert all("@" in r["email"] for r in shop)
    assert any(r["shipping"] and r["shipping"]["city"] for r in shop)

    loyalty = _csv_rows(landing / "loyalty/members_05-01-2026.csv")
    assert any(r["given_name"].islower() for r in loyalty)

    # One population: some entities appear in several silos.
    per_entity: dict[str, set[str]] = {}
    for (source, _), ent in entity.items():
        per_entity.setdefault(ent, set()).add(source)
    assert sum(1 for s in per_entity.values() if len(s) >= 3) > 20


def test_bad_rows_of_each_kind_are_present(tmp_path):
    generate(tmp_path, people=4000, seed=3)
    landing = tmp_path / "landing"
    billing = _csv_rows(landing / "billing/customers_20260105.csv", ";")
    assert any(not r["cust_no"].strip() for r in billing)  # empty keys
    assert any(
        r["dob"]
        in ("31/02/1985", "02/30/1979", "1985-13-45", "unknown", "n/a", "00/00/0000", "19xx")
        for r in billing
    )
    with (landing / "billing/customers_20260105.csv").open() as fh:
        widths = {len(row) for row in csv.reader(fh, delimiter=";")}
    assert len(widths) > 1  # rows with a field too many
    shop = [json.loads(line) for line in (landing / "ecommerce/signups_2026-01-05.jsonl").open()]
    assert any(isinstance(r["phone"], list) for r in shop)  # wrong types
    erp = pq.read_table(landing / "erp/KNA1_20260105.parquet").to_pylist()
    assert any(r["AEDAT"] == "00000000" for r in erp)  # SAP's empty date
