"""Sources as configuration: the shipped file loads; every error names file, source and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mdm_orchestration.config import CANONICAL_FIELDS, ConfigError, load_hub_config
from tests.conftest import CONFIG_DIR


def test_shipped_configuration_loads():
    config = load_hub_config(CONFIG_DIR)
    assert set(config.sources) == {
        "crm",
        "billing",
        "erp",
        "ecommerce",
        "loyalty",
        "self_service",
        "hub",
    }
    assert {s.format.value for s in config.sources.values()} == {"csv", "jsonl", "parquet"}
    billing = config.sources["billing"]
    assert billing.delimiter == ";" and billing.trust_rank == 1
    assert billing.mapping["street"].source_columns == ["addr_line1", "addr_line2"]
    assert config.sources["crm"].consent_columns["marketing_email"].opt_out is True
    assert config.sources["loyalty"].date_order.value == "DMY"
    for source in config.sources.values():
        assert set(source.mapping) <= set(CANONICAL_FIELDS)


def _write(tmp_path: Path, body: dict) -> Path:
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return tmp_path


def _base() -> dict:
    return {
        "sources": {
            "shop": {
                "format": "csv",
                "key_column": "id",
                "trust_rank": 1,
                "default_country": "GB",
                "mapping": {"email": "mail"},
            }
        }
    }


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda s: s.update(format="xlsx"), "format", "csv"),
        (lambda s: s.pop("key_column"), "key_column", "required"),
        (lambda s: s.update(default_country="England"), "default_country", "pattern"),
        (lambda s: s.update(mapping={"shoe_size": "x"}), "mapping", "shoe_size"),
        (
            lambda s: s.update(mapping={"email": {"column": "a", "value": "b"}}),
            "mapping.email",
            "exactly one",
        ),
        (lambda s: s.update(trust_rank=0), "trust_rank", "greater than"),
        (lambda s: s.update(date_order="DDMMYY"), "date_order", "DMY"),
        (lambda s: s.update(colour="red"), "colour", "not permitted"),
        (lambda s: s.update(key_column="id; DROP TABLE x"), "key_column", "not allowed"),
    ],
)
def test_errors_name_file_source_and_field(tmp_path, change, field, words):
    body = _base()
    change(body["sources"]["shop"])
    folder = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_hub_config(folder)
    message = str(info.value)
    assert str(folder / "sources.yaml") in message
    assert "source 'shop'" in message
    assert f"field '{field}" in message
    assert words in message


def test_missing_file_and_two_sources_sharing_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_hub_config(tmp_path)
    body = _base()
    body["sources"]["shop2"] = {**body["sources"]["shop"], "landing_folder": "shop"}
    with pytest.raises(ConfigError, match="already used by source 'shop'"):
        load_hub_config(_write(tmp_path, body))
