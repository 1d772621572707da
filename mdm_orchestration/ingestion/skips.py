"""The landing scan's skipped files, kept in the hub so that an operator sees them.

The hub holds the current set (as of the last scan): a skip that disappears from the landing
zone is forgotten, a new one is added with the time it was first seen. Nothing is written when
the set has not changed, so a sensor that scans every few seconds does not write the hub.
Names stay in the hub; Dagster only ever gets :func:`skipped_counts` (reasons and counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, delete, insert, select

from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import LANDING_SKIPS, utcnow
from mdm_orchestration.ingestion.landing import SkippedFile

MAX_PATH = 1024


def _current(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(select(LANDING_SKIPS.c.path, LANDING_SKIPS.c.reason)).all())


def record_skipped(engine: Engine, skipped: Iterable[SkippedFile]) -> bool:
    """Make the hub's skipped files those of this scan. True when anything changed."""
    wanted: dict[str, str] = {}
    for skip in skipped:
        wanted.setdefault(skip.path[:MAX_PATH], skip.reason[:40])
    with engine.connect() as conn:
        if _current(conn) == wanted:
            return False
    with write_transaction(engine) as conn:
        current = _current(conn)
        gone = [path for path, reason in current.items() if wanted.get(path) != reason]
        for path in gone:
            conn.execute(delete(LANDING_SKIPS).where(LANDING_SKIPS.c.path == path))
        now = utcnow()
        new = [
            {"path": path, "reason": reason, "first_seen_at": now}
            for path, reason in wanted.items()
            if current.get(path) != reason
        ]
        if new:
            conn.execute(insert(LANDING_SKIPS), new)
    return True


def skipped_counts(engine: Engine) -> dict[str, int]:
    """Skipped files per reason: what Dagster may see (no names)."""
    with engine.connect() as conn:
        reasons = conn.execute(select(LANDING_SKIPS.c.reason)).scalars()
        return dict(sorted(Counter(reasons).items()))
