"""cleanse_batch over a source's versions, and the hub-side run (SQLite; PostgreSQL in
tests/integration): quarantine, flags, scores, incremental behaviour, crash atomicity."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from mdm_orchestration.cleansing import cleanse_batch, cleanse_pending, quality_state
from mdm_orchestration.cleansing import runner as runner_module
from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.status import hub_status
from mdm_orchestration.ingestion import ingest_file
from tests.helpers import copy_landing, ingest_all, write_file

TODAY = date(2026, 11, 23)


def versions(source: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "extract_id": [1] * len(rows),
            "row_number": list(range(1, len(rows) + 1)),
            "source_record_id": [f"id{i}" for i in range(len(rows))],
            "source_key": [f"k{i}" for i in range(len(rows))],
            "raw": rows,
            "source_updated_at": [None] * len(rows),
        }
    )


def loyalty_row(**values: str) -> dict:
    base = {
        "member_no": "1",
        "given_name": "Ann",
        "surname": "Lee",
        "birthday": "04/03/1985",
        "email_address": "ann@example.com",
        "mobile": "(415) 555-2671",
        "street_address": "1 Main St",
        "town": "Boston",
        "state": "MA",
        "postcode": "02134",
        "last_update": "01/01/2026 10:00",
        "consent_marketing": "Y",
    }
    return base | values


def test_flags_score_quarantine_and_consent(hub_config: HubConfig):
    rows = [
        loyalty_row(),
        loyalty_row(given_name="", surname=""),  # no name: blocking -> quarantine
        loyalty_row(
            email_address="not-an-email", mobile="12", birthday="31/02/1985", consent_marketing="N"
        ),
        loyalty_row(postcode="", birthday="01/01/2020", consent_marketing=""),
    ]
    result = cleanse_batch(
        versions("loyalty", rows), hub_config.sources["loyalty"], hub_config.quality, TODAY
    )
    assert len(result.records) + len(result.quarantine) == len(rows)
    [q] = result.quarantine.to_dict("records")
    assert (q["row_number"], q["reason"], q["field"]) == (2, "no_name", "full_name")
    assert "given_name" in q["detail"] and "Lee" not in q["detail"]  # columns, never values
    good, bad, partial = result.records.to_dict("records")
    assert good["quality_flags"] == [] and good["quality_score"] == 1.0
    assert good["birth_date"] == date(1985, 3, 4)  # loyalty is day-first
    assert good["phone"] == "+14155552671" and good["consents"] == {"marketing_email": True}
    assert sorted(bad["quality_flags"]) == ["birth_date_invalid", "email_invalid", "phone_invalid"]
    assert bad["quality_score"] == pytest.approx(1 - 0.1 - 0.15 - 0.1)
    assert bad["email"] == "not-an-email" and bad["email_valid"] is False  # flagged, kept
    assert bad["consents"] == {"marketing_email": False}
    assert sorted(partial["quality_flags"]) == [
        "birth_date_implausible",
        "required_missing:postcode",
    ]
    assert partial["consents"] == {}
    counts = result.rule_counts
    assert counts["no_name"] == 1 and counts["required_missing:postcode"] == 1


def test_blocking_rule_per_source_and_mapping_features(hub_config: HubConfig):
    shop = hub_config.sources["ecommerce"]
    rows = [
        {
            "user_id": "u1",
            "email": "Ann.Lee+shop@GMAIL.com",
            "first_name": "ann",
            "last_name": "lee",
            "shipping.line1": "1 Main Street",
            "shipping.line2": "Apt 4",
            "shipping.city": "boston",
            "shipping.region": "Massachusetts",
            "shipping.postal_code": "2134",
            "shipping.country": "US",
            "marketing_opt_in": True,
        },
        {"user_id": "u2", "email": "broken@", "first_name": "Bo", "last_name": "Li"},
    ]
    result = cleanse_batch(versions("ecommerce", rows), shop, hub_config.quality, TODAY)
    [rec] = result.records.to_dict("records")
    assert rec["email_key"] == "annlee@gmail.com" and rec["full_name"] == "Ann Lee"
    assert rec["street"] == "1 Main St Apt 4" and rec["postcode"] == "02134"
    assert rec["region"] == "MA" and rec["consents"] == {"marketing_email": True}
    [q] = result.quarantine.to_dict("records")
    assert (q["reason"], q["field"]) == ("email_invalid", "email")  # blocking for the shop only


def test_party_type_inferred_when_the_source_does_not_say(hub_config: HubConfig):
    erp = hub_config.sources["erp"]
    rows = [
        {
            "KUNNR": "1",
            "NAME1": "ACME HOLDINGS INC",
            "NAME2": "",
            "STRAS": "1 Main St",
            "PSTLZ": "02134",
            "LAND1": "US",
            "STCD1": "12-3456789",
            "KTOKD": "KUNA",
        },
        {
            "KUNNR": "2",
            "NAME1": "BLUE RIVER LOGISTICS",
            "NAME2": "",
            "STCD1": "98-7654321",
            "KTOKD": "KUNA",
        },
        {"KUNNR": "3", "NAME1": "MARY O'NEIL", "NAME2": "", "STCD1": "", "KTOKD": "CPD"},
    ]
    records = cleanse_batch(versions("erp", rows), erp, hub_config.quality, TODAY).records
    assert records["party_type"].tolist() == ["organisation", "organisation", "person"]
    assert records["company_name"].tolist()[:2] == ["Acme Holdings Inc", "Blue River Logistics"]
    assert records["legal_form"].tolist()[0] == "Inc"
    assert [None if pd.isna(v) else v for v in records["full_name"]] == [None, None, "Mary O'Neil"]
    assert records["lifecycle"].tolist() == ["customer", "customer", "one-off"]
    assert records["national_id_type"].tolist()[:2] == ["us.ein", "us.ein"]


def test_hub_run_is_incremental_and_accounts_for_every_row(
    sqlite_engine, hub_config, sample_silos, tmp_path
):
    landing = copy_landing(sample_silos, tmp_path / "landing")
    ingest_all(sqlite_engine, hub_config, landing)
    first = cleanse_pending(sqlite_engine, hub_config, today=TODAY)
    status = hub_status(sqlite_engine)
    assert first.extracts == status["extracts"] == 10
    assert first.versions == status["rows_loaded"]
    assert status["cleansed_records"] + status["cleanse_quarantined_rows"] == status["rows_loaded"]
    assert status["versions_pending_cleansing"] == 0

    again = cleanse_pending(sqlite_engine, hub_config, today=TODAY)
    assert (again.extracts, again.versions) == (0, 0)

    # A new extract: only its rows are read.
    write_file(
        landing / "loyalty" / "late.csv",
        "member_no,given_name,surname,birthday,email_address,mobile,street_address,town,"
        "state,postcode,last_update,consent_marketing\n"
        "L-NEW-1,Zoë,Ngata,02/01/1990,zoe@example.com,,,,,,01/06/2026 10:00,Y\n"
        "L-NEW-2,,,,,,,,,,01/06/2026 10:00,N\n",
    )
    ingest_file(sqlite_engine, hub_config, landing / "loyalty" / "late.csv", landing)
    third = cleanse_pending(sqlite_engine, hub_config, today=TODAY)
    assert (third.extracts, third.cleansed, third.quarantined) == (1, 1, 1)
    with sqlite_engine.connect() as conn:
        reason = conn.execute(
            sa.text("SELECT reason, field, stage FROM quarantine WHERE stage = 'cleanse'")
        ).all()
    assert ("no_name", "full_name", "cleanse") in reason

    # Rebuild redoes everything and lands on the same state.
    before = hub_status(sqlite_engine)
    rebuilt = cleanse_pending(sqlite_engine, hub_config, today=TODAY, rebuild=True)
    assert rebuilt.versions == before["rows_loaded"]
    after = hub_status(sqlite_engine)
    assert after["cleansed_records"] == before["cleansed_records"]
    assert after["cleanse_quarantined_rows"] == before["cleanse_quarantined_rows"]

    state = quality_state(sqlite_engine, hub_config)
    assert set(state) == set(hub_config.sources)
    assert state["loyalty"].quarantined == 1
    # Sources written through the API (self_service, hub) have no extracts here: no score.
    api = {n for n, src in hub_config.sources.items() if src.written_by == "api"}
    assert api and all(state[n].mean_score is None for n in api)
    assert all(0.9 < s.mean_score <= 1.0 for n, s in state.items() if n not in api)
    assert state["billing"].completeness["street"] == 1.0


def test_crash_mid_extract_leaves_it_untouched(
    sqlite_engine, hub_config, sample_silos, tmp_path, monkeypatch
):
    landing = copy_landing(sample_silos, tmp_path / "landing")
    ingest_all(sqlite_engine, hub_config, landing)
    real = runner_module.cleanse_batches

    def failing(batches, *args, **kwargs):
        for i, result in enumerate(real(batches, *args, **kwargs)):
            if i == 1:  # after the first batch of the first extract was written
                raise RuntimeError("power cut")
            yield result

    monkeypatch.setattr(runner_module, "cleanse_batches", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        cleanse_pending(sqlite_engine, hub_config, today=TODAY, chunk_rows=50)
    status = hub_status(sqlite_engine)
    # The first extract was cleansed? No: the crash was inside it, so nothing is.
    assert status["cleansed_records"] == 0 and status["cleanse_quarantined_rows"] == 0
    assert status["versions_pending_cleansing"] == status["rows_loaded"]
    monkeypatch.setattr(runner_module, "cleanse_batches", real)
    cleanse_pending(sqlite_engine, hub_config, today=TODAY, chunk_rows=50)
    status = hub_status(sqlite_engine)
    assert status["cleansed_records"] + status["cleanse_quarantined_rows"] == status["rows_loaded"]


def test_quality_config_errors_name_file_and_field(tmp_path):
    import shutil

    from mdm_orchestration.config import ConfigError
    from tests.conftest import CONFIG_DIR

    shutil.copy(CONFIG_DIR / "sources.yaml", tmp_path / "sources.yaml")
    (tmp_path / "quality.yaml").write_text(
        "rules:\n  no_such_rule: {severity: block}\n"
        "national_ids:\n  US: [us.nonexistent]\n"
        "sources:\n  billing: {required: [shoe_size]}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_hub_config(tmp_path)
    text = str(err.value)
    assert "quality.yaml" in text and "no_such_rule" in text
    assert "us.nonexistent" in text and "shoe_size" in text
    (tmp_path / "quality.yaml").write_text("sources:\n  nowhere: {required: [email]}\n")
    with pytest.raises(ConfigError, match="source 'nowhere'.*not a source in sources.yaml"):
        load_hub_config(tmp_path)


def test_parallel_cleansing_gives_the_serial_result(hub_config, sample_silos):
    """Two spawned workers over a stream of batches: same records, same order, as one process."""
    from mdm_orchestration.cleansing import cleanse_batches
    from mdm_orchestration.sample_data.offline import landing_versions

    versions = landing_versions(sample_silos / "landing", hub_config)["billing"]
    batches = [versions.iloc[i : i + 100] for i in range(0, len(versions), 100)]
    source = hub_config.sources["billing"]
    serial = list(cleanse_batches(iter(batches), source, hub_config.quality, TODAY, workers=1))
    parallel = list(cleanse_batches(iter(batches), source, hub_config.quality, TODAY, workers=2))
    assert len(batches) > 3 and len(parallel) == len(serial) == len(batches)
    for a, b in zip(serial, parallel, strict=True):
        pd.testing.assert_frame_equal(a.records, b.records)
        pd.testing.assert_frame_equal(a.quarantine, b.quarantine)


def test_matching_evidence_columns(hub_config: HubConfig):
    """website (mapped by a source), web_domain (website, else business email; free-mail none),
    phone_digits (invalid phones only), suffixes from either column, legal-form family."""
    crm = hub_config.sources["crm"]
    mapping = {k: v.model_dump(exclude_defaults=True) for k, v in crm.mapping.items()}
    source = type(crm).model_validate(
        crm.model_dump() | {"mapping": mapping | {"website": {"column": "Website"}}}
    )
    base = {"RecordType": "Contact", "MailingCountry": "US", "LastModifiedDate": "2026-01-01"}
    rows = [
        base
        | {
            "Id": "1",
            "FirstName": "Jorge",
            "LastName": "FERNANDEZ JR",
            "Email": "jorge@gmail.com",
            "Phone": "0879628803",
            "Website": "https://www.shop.acme.co.uk/about/",
        },
        base
        | {
            "Id": "2",
            "FirstName": "Jorge Jr",
            "LastName": "Fernandez",
            "Email": "jorge@sales.acme.com",
            "Phone": "(087) 962-8803",
        },
        base | {"Id": "3", "FirstName": "Ann", "LastName": "Lee", "Email": "ann@gmx.de"},
        base
        | {
            "Id": "4",
            "RecordType": "Account",
            "AccountName": "ACME WIDGETS GMBH",
            "Phone": "(415) 555-2671",
        },
    ]
    records = cleanse_batch(versions("crm", rows), source, hub_config.quality, TODAY).records
    by_key = {
        r["source_key"]: {k: None if v is pd.NA or v != v else v for k, v in r.items()}
        for r in records.to_dict("records")
    }
    one, two, three, org = by_key["k0"], by_key["k1"], by_key["k2"], by_key["k3"]
    assert one["website"] == "www.shop.acme.co.uk/about"
    assert one["web_domain"] == "acme.co.uk"  # the website's, before the (free-mail) email's
    assert two["website"] is None and two["web_domain"] == "acme.com"  # the work email's
    assert three["web_domain"] is None  # free-mail only
    assert one["phone"] == "0879628803" and two["phone"] == "(087) 962-8803"
    assert one["phone_valid"] == False and two["phone_valid"] == False  # noqa: E712
    assert one["phone_digits"] == two["phone_digits"] == "10879628803"
    assert org["phone"] == "+14155552671" and org["phone_digits"] is None
    for rec in (one, two):
        assert (rec["given_name"], rec["family_name"], rec["suffix"]) == (
            "Jorge",
            "Fernandez",
            "Jr",
        )
        assert (rec["given_key"], rec["family_key"]) == ("jorge", "fernandez")
    assert org["legal_form"] == "GmbH" and org["legal_form_family"] == "limited"
    assert one["legal_form_family"] is None
