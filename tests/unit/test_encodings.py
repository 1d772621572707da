"""RELIABILITY.md row 8: encodings. A declared non-UTF-8 encoding is decoded, an undeclared one
is rejected clearly, a UTF-8 byte-order mark is stripped, line endings may be mixed, and a name
in NFC and in NFD form is one customer."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from pydantic import ValidationError

from mdm_orchestration.config import ConfigError, HubConfig, SourceConfig, load_hub_config
from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from mdm_orchestration.sample_data.generator import CRM_HEADER, LOYALTY_HEADER
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file
from tests.unit.test_ingest import ledger

NFC = unicodedata.normalize("NFC", "Zoë")
NFD = unicodedata.normalize("NFD", "Zoë")
assert NFC != NFD and len(NFD) == len(NFC) + 1


def _config_with(tmp_path: Path, **encodings: str) -> HubConfig:
    """The shipped configuration with ``encoding`` set on the named sources, as an operator
    would edit sources.yaml."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    body = yaml.safe_load((folder / "sources.yaml").read_text(encoding="utf-8"))
    for name, encoding in encodings.items():
        body["sources"][name]["encoding"] = encoding
    (folder / "sources.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return load_hub_config(folder)


def _loyalty_row(key: str, given: str, **extra: str) -> list[str]:
    values = {
        "member_no": key,
        "given_name": given,
        "surname": "Brontë",
        "birthday": "14/03/1990",
        "email_address": "",
        "mobile": "",
        "street_address": "12 Rue de la Paix",
        "town": "Springfield",
        "state": "IL",
        "postcode": "62701",
        "last_update": "2026-01-01 10:00:00",
        "consent_marketing": "",
    } | extra
    return [values[c] for c in LOYALTY_HEADER]


def _loyalty_csv(rows: list[list[str]], newline: str = "\n") -> str:
    return newline.join(",".join(r) for r in [LOYALTY_HEADER, *rows]) + newline


def _raws(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            json.loads(r)
            for r in conn.execute(
                sa.text("SELECT raw FROM source_record_versions ORDER BY extract_id, row_number")
            ).scalars()
        ]


def _source(**overrides: object) -> dict:
    return {
        "name": "shop",
        "landing_folder": "shop",
        "format": "csv",
        "key_column": "id",
        "trust_rank": 1,
        "default_country": "GB",
        "mapping": {"email": "mail"},
        **overrides,
    }


@pytest.mark.parametrize("name", ["latin-1", "ISO-8859-1", "cp1252", "UTF-8", "utf_8", "utf-8-sig"])
def test_text_encodings_are_accepted(name):
    assert SourceConfig.model_validate(_source(encoding=name)).encoding == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("latin-9x", "unknown encoding"),
        ("base64", "not a text encoding"),
        ("utf-16", "not ASCII-compatible"),
        ("utf-32-le", "not ASCII-compatible"),
    ],
)
def test_an_unknown_or_unreadable_encoding_is_refused_at_load(tmp_path, name, message):
    with pytest.raises(ValidationError, match=message):
        SourceConfig.model_validate(_source(encoding=name))
    with pytest.raises(ConfigError, match="loyalty") as info:  # names the source and field
        _config_with(tmp_path, loyalty=name)
    assert "encoding" in str(info.value)


def test_an_encoding_on_a_parquet_source_is_refused():
    with pytest.raises(ValidationError, match="applies to csv and jsonl"):
        SourceConfig.model_validate(_source(format="parquet", encoding="latin-1"))


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_a_declared_encoding_is_decoded(tmp_path, sqlite_engine, landing, encoding):
    config = _config_with(tmp_path, loyalty=encoding)
    rows = [_loyalty_row("L1", NFC), _loyalty_row("L2", "François", town="Zürich")]
    if encoding == "cp1252":  # bytes Latin-1 lacks: the euro sign and curly quotes
        rows.append(_loyalty_row("L3", "\u2019Anne\u2019", street_address="1 \u20ac St"))
    path = write_file(landing / "loyalty/l.csv", _loyalty_csv(rows).encode(encoding))
    outcome = ingest_file(sqlite_engine, config, path, landing)
    assert outcome.status is ExtractStatus.loaded and outcome.rows_loaded == len(rows)
    raws = _raws(sqlite_engine)
    assert raws[0]["given_name"] == NFC and raws[0]["surname"] == "Brontë"
    assert raws[1]["town"] == "Zürich"
    if encoding == "cp1252":
        assert raws[2]["given_name"] == "\u2019Anne\u2019"
        assert raws[2]["street_address"] == "1 \u20ac St"


def test_a_declared_encoding_is_decoded_in_json_lines(tmp_path, sqlite_engine, landing):
    config = _config_with(tmp_path, ecommerce="latin-1")
    from tests.unit.test_ingest import shop_record

    record = shop_record("u1", first_name=NFC)
    path = write_file(
        landing / "ecommerce/e.jsonl",
        (json.dumps(record, ensure_ascii=False) + "\n").encode("latin-1"),
    )
    assert ingest_file(sqlite_engine, config, path, landing).rows_loaded == 1
    assert _raws(sqlite_engine)[0]["first_name"] == NFC


@pytest.mark.parametrize("source", ["loyalty", "ecommerce"])
def test_undeclared_latin1_bytes_are_rejected_clearly(sqlite_engine, hub_config, landing, source):
    if source == "loyalty":
        content = _loyalty_csv([_loyalty_row("L1", "Ann"), _loyalty_row("L2", NFC)])
        path = write_file(landing / "loyalty/l1.csv", content.encode("latin-1"))
        where = "line 2"
    else:
        from tests.unit.test_ingest import shop_record

        line = json.dumps(shop_record("u1", first_name=NFC), ensure_ascii=False)
        path = write_file(landing / "ecommerce/l1.jsonl", (line + "\n").encode("latin-1"))
        where = "row 1"
    with pytest.raises(ExtractRejected) as info:
        ingest_file(sqlite_engine, hub_config, path, landing)
    error = info.value
    assert error.code == "undecodable"
    assert where in error.message and "declare the file's encoding in sources.yaml" in error.message
    assert "not valid utf-8 " in error.message  # the encoding as configured, not utf-8-sig
    assert NFC not in error.message and "Zo" not in error.message  # no customer value
    assert ledger(sqlite_engine)[-1]["status"] == "rejected"


def test_bom_stripped_header_names_exact_and_mixed_line_endings(sqlite_engine, hub_config, landing):
    rows = [_loyalty_row("L1", "Ann"), _loyalty_row("L2", NFD), _loyalty_row("L3", "Bea")]
    lines = [",".join(r) for r in [LOYALTY_HEADER, *rows]]
    # CRLF, LF and CR-only line ends in one file, and a BOM before the header.
    content = "\ufeff" + lines[0] + "\r\n" + lines[1] + "\n" + lines[2] + "\r" + lines[3] + "\r\n"
    path = write_file(landing / "loyalty/mixed.csv", content)
    outcome = ingest_file(sqlite_engine, hub_config, path, landing)
    assert (outcome.rows_landed, outcome.rows_loaded, outcome.rows_quarantined) == (3, 3, 0)
    raws = _raws(sqlite_engine)
    assert sorted(raws[0]) == sorted(LOYALTY_HEADER)  # exact names: no BOM, no stray \r
    assert [r["member_no"] for r in raws] == ["L1", "L2", "L3"]
    assert raws[1]["given_name"] == NFD  # loaded verbatim; cleansing normalises
    assert all("\r" not in v and "\n" not in v for r in raws for v in r.values() if v)
    assert outcome.unmapped_columns == []


def test_a_bom_in_a_declared_latin1_file_is_not_a_header_character(
    tmp_path, sqlite_engine, landing
):
    """A BOM has no meaning in Latin-1: the first header is then not the key, and the file is
    rejected naming the missing key column (not loaded with a garbled column name)."""
    config = _config_with(tmp_path, loyalty="latin-1")
    content = b"\xef\xbb\xbf" + _loyalty_csv([_loyalty_row("L1", "Ann")]).encode("latin-1")
    path = write_file(landing / "loyalty/bom1.csv", content)
    with pytest.raises(ExtractRejected, match="missing_key_column|unsafe_header"):
        ingest_file(sqlite_engine, config, path, landing)


def _ingest_zoe(engine: sa.Engine, config: HubConfig, landing: Path) -> None:
    """Ingest Zoë Brontë as NFC in a Latin-1 loyalty file (with a Zoe Bronte of another town,
    L2) and as NFD in a UTF-8 CRM file with a BOM and CRLF line ends (C1)."""
    loyalty = _loyalty_csv(
        [
            _loyalty_row("L1", NFC, mobile="217-555-0143"),
            _loyalty_row(
                "L2",
                "Zoe",
                surname="Bronte",
                birthday="02/11/1971",
                mobile="312-555-0199",
                street_address="9 Elm St",
                postcode="60601",
                town="Chicago",
            ),
        ]
    ).encode("latin-1")
    crm_values = {c: "" for c in CRM_HEADER} | {
        "Id": "C1",
        "RecordType": "Contact",
        "FirstName": NFD,
        "LastName": unicodedata.normalize("NFD", "Brontë"),
        "Phone": "(217) 555-0143",
        "MailingStreet": "12 Rue de la Paix",
        "MailingCity": "Springfield",
        "MailingState": "IL",
        "MailingPostalCode": "62701",
        "MailingCountry": "US",
        "Birthdate": "1990-03-14",
        "LastModifiedDate": "2026-01-02T00:00:00Z",
    }
    crm = "\ufeff" + ",".join(CRM_HEADER) + "\r\n" + ",".join(crm_values.values()) + "\r\n"
    ingest_file(engine, config, write_file(landing / "loyalty/zoe.csv", loyalty), landing)
    ingest_file(engine, config, write_file(landing / "crm/zoe.csv", crm), landing)


def test_nfc_and_nfd_forms_of_a_name_in_two_sources_are_one_customer(
    tmp_path, sqlite_engine, landing
):
    """Zoë Brontë as NFC in a Latin-1 loyalty file and as NFD in a UTF-8 CRM file (with a BOM
    and CRLF line ends): ingest, cleanse and match put them in one cluster, and a different
    person of a similar name stays apart."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.matching import rebuild_clusters, train_models

    config = _config_with(tmp_path, loyalty="latin-1")
    _ingest_zoe(sqlite_engine, config, landing)
    cleanse_pending(sqlite_engine, config)
    with sqlite_engine.connect() as conn:
        cleansed = {
            r.source_key: r
            for r in conn.execute(
                sa.text(
                    "SELECT s.source_key, c.given_name, c.family_name, c.given_key, "
                    "c.family_key FROM cleansed_records c "
                    "JOIN source_records s ON s.id = c.source_record_id"
                )
            ).all()
        }
    assert set(cleansed) == {"L1", "L2", "C1"}
    zoe_nfc, zoe_nfd = cleansed["L1"], cleansed["C1"]
    assert zoe_nfc.given_name == zoe_nfd.given_name == NFC  # one canonical form
    assert zoe_nfc.family_name == zoe_nfd.family_name == "Brontë"
    assert (zoe_nfc.given_key, zoe_nfc.family_key) == (zoe_nfd.given_key, zoe_nfd.family_key)
    train_models(sqlite_engine, config)
    rebuild_clusters(sqlite_engine, config)
    with sqlite_engine.connect() as conn:
        cluster = dict(
            conn.execute(
                sa.text(
                    "SELECT s.source_key, m.cluster_id FROM match_clusters m "
                    "JOIN source_records s ON s.id = m.record_id"
                )
            ).all()
        )
    assert cluster["L1"] == cluster["C1"] != cluster["L2"]
