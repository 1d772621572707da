"""A matching run's record and its result: one type for the full and the incremental path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, select

from mdm_orchestration.config import MatchingConfig
from mdm_orchestration.hub.tables import ERASURES, MATCH_RUNS, utcnow

#: Kept scores and the blocking index are valid for the blocking keys, scoring and clustering
#: rules of this version (``match_runs.counts``); a hub built by an older one is rebuilt in full.
#: 5: the frequency penalty weighs the full name, the postcode for its town, and not at all with
#: an identifying agreement.
PAIRS_VERSION = 5
FULL = "full"
INCREMENTAL = "incremental"


def _no_review() -> pd.DataFrame:
    return pd.DataFrame(columns=["left_id", "right_id", "party_type", "score"])


class ConcurrentMatch(RuntimeError):
    """Another matching run committed while this one was reading: nothing was written."""


@dataclass
class MatchRunResult:
    """What a matching run did, full or incremental."""

    mode: str
    #: what ``match_runs.counts`` records: arrived, removed, records, clusters_touched, ...
    counts: dict[str, int]
    #: new pending review items
    review_pairs: int = 0
    #: the records the run re-clustered or took out (what its checks look at); ``None``: the
    #: whole hub (a full run)
    scope: set[str] | None = None
    #: the uncertain pairs the run scored (``left_id``, ``right_id``, ``party_type``, ``score``)
    review: pd.DataFrame = field(default_factory=_no_review)
    #: the engine's statistics per party type, with ``run`` (the counts) and ``review_queue``
    stats: dict[str, Any] = field(default_factory=dict)

    def count(self, name: str) -> int:
        return int(self.counts.get(name, 0))


def matching_digest(matching: MatchingConfig) -> str:
    """A fingerprint of matching.yaml's settings (``match_runs.counts`` of a full run): kept
    pairs, clusters and review items are valid for the settings they were made with, so a
    change (a threshold, a rule, a block size) calls for a full rebuild."""
    return hashlib.sha256(matching.model_dump_json().encode()).hexdigest()[:16]


def record_run(conn: Connection, mode: str, upto: datetime | None, counts: dict[str, Any]) -> None:
    conn.execute(
        MATCH_RUNS.insert().values(
            mode=mode, cleansed_upto=upto, counts=counts, finished_at=utcnow()
        )
    )


def erasure_mark(conn: Connection) -> tuple[int, int | None]:
    """How many erasures the hub holds, and the latest one's id: a matching run planned before
    an erasure committed must not write (its plan may hold the erased records)."""
    count, latest = conn.execute(select(func.count(), func.max(ERASURES.c.id))).one()
    return int(count), latest
