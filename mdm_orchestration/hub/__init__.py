"""The hub database: canonical tables (SQLModel), migrations, and the functions that read and write them."""

from mdm_orchestration.hub.models import (
    Extract,
    ExtractStatus,
    QuarantineRow,
    SourceRecord,
    SourceRecordVersion,
    source_record_id,
)
from mdm_orchestration.hub.store import (
    create_hub_engine,
    masked_url,
    migrate,
    resolve_hub_url,
    write_transaction,
)

__all__ = [
    "Extract",
    "ExtractStatus",
    "QuarantineRow",
    "SourceRecord",
    "SourceRecordVersion",
    "create_hub_engine",
    "masked_url",
    "migrate",
    "resolve_hub_url",
    "source_record_id",
    "write_transaction",
]
