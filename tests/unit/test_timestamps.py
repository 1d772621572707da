"""Update timestamps as the silos write them, parsed to UTC with each source's date order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mdm_orchestration.config import DateOrder
from mdm_orchestration.ingestion import parse_timestamps


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("2026-01-05T09:30:00Z", DateOrder.MDY, datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
        ("2026-01-05T09:30:00.000Z", DateOrder.MDY, datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
        ("2026-01-05T10:30:00+01:00", DateOrder.YMD, datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
        ("2026-01-05 09:30:00", DateOrder.YMD, datetime(2026, 1, 5, 9, 30, tzinfo=UTC)),
        ("20260105", DateOrder.YMD, datetime(2026, 1, 5, tzinfo=UTC)),  # SAP
        ("03/04/2026 10:00", DateOrder.DMY, datetime(2026, 4, 3, 10, 0, tzinfo=UTC)),
        ("03/04/2026 10:00", DateOrder.MDY, datetime(2026, 3, 4, 10, 0, tzinfo=UTC)),
        ("17/02/2026 04:40", DateOrder.DMY, datetime(2026, 2, 17, 4, 40, tzinfo=UTC)),
    ],
)
def test_formats_seen_in_the_silos(text, order, expected):
    assert parse_timestamps([text], order) == [expected]


def test_unparseable_and_empty_values():
    assert parse_timestamps(["00000000", "not a date", "", None, "2026-13-45"], DateOrder.YMD) == [
        None,
        None,
        None,
        None,
        None,
    ]
