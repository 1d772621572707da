"""Opaque partition keys for landed files: ``<source>:<first 16 hex digits of the sha256>``.

A landed file's name can carry customer data (``john.doe@example.com_SSN-….csv`` has been
seen), and a partition key ends up in Dagster's storage, run tags and the UI. So the sensor and
``mdm run`` register each file here and hand Dagster only the key; the ingestion asset resolves
the key back to the file through the hub.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, insert, select, update

from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import LANDED_FILE_KEYS, utcnow

HASH_PREFIX = 16
KEY_PATTERN = re.compile(r"^[^:/\\]{1,40}:[0-9a-f]{16}$")


def partition_key(source: str, content_hash: str) -> str:
    return f"{source}:{content_hash[:HASH_PREFIX]}"


def is_opaque_key(key: str) -> bool:
    return bool(KEY_PATTERN.match(key))


def register_landed_file(engine: Engine, source: str, file_name: str, content_hash: str) -> str:
    """Record which file (relative to the landing root) an opaque key stands for: the key.

    The same bytes under another name get the same key, pointing at the latest name seen.
    """
    key = partition_key(source, content_hash)
    values = {
        "source": source[:40],
        "file_name": file_name[:512],
        "content_hash": content_hash,
        "registered_at": utcnow(),
    }
    with write_transaction(engine) as conn:
        current = conn.execute(
            select(LANDED_FILE_KEYS.c.file_name, LANDED_FILE_KEYS.c.content_hash).where(
                LANDED_FILE_KEYS.c.partition_key == key
            )
        ).first()
        if current is None:
            conn.execute(insert(LANDED_FILE_KEYS).values(partition_key=key, **values))
        elif tuple(current) != (values["file_name"], content_hash):
            conn.execute(
                update(LANDED_FILE_KEYS)
                .where(LANDED_FILE_KEYS.c.partition_key == key)
                .values(**values)
            )
    return key


def landed_file_for_key(engine: Engine, key: str) -> str | None:
    """The file (relative to the landing root) behind an opaque key, if it was registered."""
    if not is_opaque_key(key):
        return None
    with engine.connect() as conn:
        return conn.execute(
            select(LANDED_FILE_KEYS.c.file_name).where(LANDED_FILE_KEYS.c.partition_key == key)
        ).scalar_one_or_none()
