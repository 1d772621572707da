"""Every hub a test here builds is checked when the test ends: the invariants that hold after
any commit and, once the hub is settled, every invariant and the convergence oracle
(``track_hubs`` in tests/helpers.py)."""

from __future__ import annotations

import pytest

from tests.helpers import track_hubs


@pytest.fixture(autouse=True)
def hub_checks(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    yield from track_hubs(request)
