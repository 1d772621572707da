"""A small hub written directly, for syndication tests: golden records, their history, the
cross-reference, households and the outbox, each new version's change event carrying the
business events ``events.yaml`` derives for it (the same derivation consolidation runs:
``survivorship.business_events``). Mastering itself is tested elsewhere; this keeps
delivery tests to a second. The hub keeps the invariants ``tests/helpers.py`` checks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mdm_orchestration.config import EventsConfig
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import (
    CHANGES,
    GOLDEN,
    HISTORY,
    HOUSEHOLD_MEMBERS,
    HOUSEHOLDS,
    SUBSCRIBERS,
    XREF,
)
from mdm_orchestration.survivorship.business_events import business_events
from mdm_orchestration.survivorship.rows import event_id

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@dataclass
class _Record:
    version: int
    party_type: str
    attributes: dict[str, Any]
    lifecycle: str | None
    consents: dict[str, Any]
    organisation: str | None
    sources: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # record ids, as the hub writes them


class Outbox:
    def __init__(self, engine: sa.Engine, events: EventsConfig | None = None) -> None:
        self.engine = engine
        self.events = events or EventsConfig()
        self.records: dict[str, _Record] = {}
        self.clock = itertools.count()
        self.ids: list[str] = []  # the event ids written, in outbox order

    def put(
        self,
        golden_id: str,
        *,
        party_type: str = "person",
        lifecycle: str | None = "customer",
        consents: dict[str, Any] | None = None,
        organisation: str | None = None,
        keys: dict[str, str] | None = None,
        household: str | None = None,
        **attributes: Any,  # noqa: ANN401
    ) -> str:
        """A new version of ``golden_id`` (created, or updated with these attributes merged
        into the last ones); its event id. ``keys``: source -> source key (xref rows)."""
        old = self.records.get(golden_id)
        now = T0 + timedelta(minutes=next(self.clock))
        if old is None:
            rec = _Record(1, party_type, dict(attributes), lifecycle, consents or {}, organisation)
            kind, changed, carried = "created", sorted(attributes), []
        else:
            merged = {**old.attributes, **attributes}
            new_consents = old.consents if consents is None else consents
            rec = _Record(
                old.version + 1, old.party_type, merged, lifecycle, new_consents, organisation
            )
            changed = sorted(k for k in merged if merged.get(k) != old.attributes.get(k))
            changed += ["lifecycle"] if lifecycle != old.lifecycle else []
            changed += ["organisation_golden_id"] if organisation != old.organisation else []
            changed += sorted(
                f"consents.{p}"
                for p in set(old.consents) | set(new_consents)
                if old.consents.get(p) != new_consents.get(p)
            )
            kind = "updated"
            carried = business_events(
                self.events, changed, old.lifecycle, lifecycle, old.consents, new_consents
            )
        rec.sources = sorted(keys) if keys else (old.sources if old else ["crm"])
        first_keys = keys or {"crm": f"C-{golden_id}"}
        rec.members = old.members if old else sorted(f"{s}:{k}" for s, k in first_keys.items())
        self.records[golden_id] = rec
        eid = event_id(golden_id, rec.version)
        common = {
            "party_type": rec.party_type,
            "attributes": rec.attributes,
            "consents": rec.consents,
            "lifecycle": rec.lifecycle,
            "organisation_golden_id": rec.organisation,
            "sources": rec.sources,
        }
        with write_transaction(self.engine) as conn:
            conn.execute(GOLDEN.delete().where(GOLDEN.c.golden_id == golden_id))
            conn.execute(
                GOLDEN.insert().values(
                    golden_id=golden_id,
                    seq=int(golden_id.lstrip("G") or 0),
                    status="active",
                    merged_into=None,
                    version=rec.version,
                    keys={},
                    lineage={},
                    member_count=1,
                    content_hash=eid,
                    created_at=now,
                    updated_at=now,
                    **common,
                )
            )
            conn.execute(
                HISTORY.insert().values(
                    golden_id=golden_id,
                    version=rec.version,
                    status="active",
                    change=kind,
                    changed=changed,
                    lineage={},
                    members=rec.members,
                    merged_into=None,
                    recorded_at=now,
                    **common,
                )
            )
            conn.execute(
                CHANGES.insert().values(
                    event_id=eid,
                    golden_id=golden_id,
                    version=rec.version,
                    event_type=kind,
                    changed=changed,
                    related=[],
                    created_at=now,
                    business_events=carried,
                )
            )
            if old is None:
                for source, key in first_keys.items():
                    conn.execute(
                        XREF.insert().values(
                            record_id=f"{source}:{key}",
                            source=source,
                            source_key=key,
                            golden_id=golden_id,
                            assigned_at=now,
                        )
                    )
            if household is not None:
                conn.execute(
                    HOUSEHOLD_MEMBERS.delete().where(HOUSEHOLD_MEMBERS.c.golden_id == golden_id)
                )
                exists = conn.execute(
                    sa.select(HOUSEHOLDS.c.household_id).where(
                        HOUSEHOLDS.c.household_id == household
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        HOUSEHOLDS.insert().values(
                            household_id=household,
                            address_key="a",
                            family_key="f",
                            member_count=1,
                            updated_at=now,
                        )
                    )
                conn.execute(
                    HOUSEHOLD_MEMBERS.insert().values(golden_id=golden_id, household_id=household)
                )
        self.ids.append(eid)
        return eid


def deliver_changes_from_start(engine: sa.Engine, name: str) -> None:
    """Subscriber ``name`` starts at the beginning of the outbox, without a snapshot."""
    with write_transaction(engine) as conn:
        conn.execute(
            SUBSCRIBERS.insert().values(
                subscriber=name,
                cursor_seq=0,
                snapshot_done=True,
                status="ok",
                attempts=0,
                delivered_total=0,
                updated_at=T0,
            )
        )
