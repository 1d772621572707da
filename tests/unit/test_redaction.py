"""The redaction logging filter (RELIABILITY.md design rule 6, row 19): emails and phone-like
numbers never reach a log line of the hub's loggers; hashes, ids, dates and counts do."""

from __future__ import annotations

import io
import logging
import uuid

import pytest

from mdm_orchestration.hub.redaction import (
    EMAIL_MASK,
    NUMBER_MASK,
    RedactingFilter,
    install_redaction,
    redact,
)


@pytest.mark.parametrize(
    "text",
    [
        "jane.doe+mdm@example.com",
        "zz-canary-1f2e@example.invalid",
        "O'Brien.Pat@mail.co.uk",
    ],
)
def test_emails_are_masked(text: str) -> None:
    assert redact(f"row 7: {text} rejected") == f"row 7: {EMAIL_MASK} rejected"


@pytest.mark.parametrize(
    "text",
    [
        "(231) 906-5567",
        "231-906-5567",
        "231.906.5567",
        "7653813035",
        "+44 20 7946 0958",
        "+1 (217) 555-0100",
        "123-45-6789",  # a social security number
        "788541949",
    ],
)
def test_phone_like_numbers_are_masked(text: str) -> None:
    assert redact(f"value {text} in column phone") == f"value {NUMBER_MASK} in column phone"


@pytest.mark.parametrize(
    "text",
    [
        "billing:689b4890db312a64",  # an opaque partition key
        "689b4890db312a64f6012c8b31686767b46dacf7ea50bec864e2ba34009ccc49",  # a sha256
        "c8f0c261-8d4e-42db-8b9a-bbca2c6dc102",  # a run id
        str(uuid.UUID(int=123456789012)),
        "2026-01-01 10:00:00",
        "2026-02-22T20:08:00Z",
        "3 rows loaded, 0 quarantined, 12345678 bytes",
        "took 1.234567 s",
        "B00000001",  # a source key is not a phone number
    ],
)
def test_hashes_ids_dates_and_counts_pass(text: str) -> None:
    assert redact(f"extract {text} done") == f"extract {text} done"


def test_the_filter_masks_children_records_arguments_and_exceptions() -> None:
    name = f"mdm.test_redaction_{uuid.uuid4().hex[:8]}"
    parent = logging.getLogger(name)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False
    try:
        first = install_redaction([name])
        assert install_redaction([name]) is first  # installing twice adds nothing
        assert parent.filters.count(first) == 1 and handler.filters.count(first) == 1
        child = logging.getLogger(f"{name}.child")
        child.info("lookup of %s by %s", "jane@example.com", "217-555-0100")
        try:
            raise ValueError("bad email jane@example.com")
        except ValueError:
            child.exception("failed for %d rows", 3)
    finally:
        parent.removeHandler(handler)
    text = out.getvalue()
    assert "jane@example.com" not in text and "217-555-0100" not in text, text
    assert f"lookup of {EMAIL_MASK} by {NUMBER_MASK}" in text
    assert "failed for 3 rows" in text and f"bad email {EMAIL_MASK}" in text


def test_a_record_without_a_value_is_left_as_it_is() -> None:
    record = logging.LogRecord("mdm", logging.INFO, __file__, 1, "%d rows", (3,), None)
    assert RedactingFilter().filter(record) is True
    assert record.msg == "%d rows" and record.args == (3,)


def test_the_service_writes_every_line_through_the_filter() -> None:
    from mdm_orchestration.service.server import LOG_CONFIG

    assert LOG_CONFIG["filters"]["redact"]["()"] is RedactingFilter
    for name, handler in LOG_CONFIG["handlers"].items():
        assert handler.get("filters") == ["redact"], name
