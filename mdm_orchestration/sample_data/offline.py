"""Generated silos straight into memory (no hub database): for the shipped default labels and
for benchmarks that measure one stage without the others."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from mdm_orchestration.cleansing import cleanse_batch
from mdm_orchestration.config import HubConfig
from mdm_orchestration.ingestion import open_extract


def landing_versions(landing: Path, config: HubConfig) -> dict[str, pd.DataFrame]:
    """Every readable row of every extract under ``landing``, per source, in the shape
    ``cleanse_batch`` takes. Later files come later (file names sort by date)."""
    from mdm_orchestration.hub.models import source_record_id

    frames: dict[str, list[dict]] = {}
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        source = config.source_for_folder(path.parent.name)
        if source is None:
            continue
        rows = frames.setdefault(source.name, [])
        for i, row in enumerate(open_extract(path, source).rows(), start=1):
            key = str((row.values or {}).get(source.key_column) or "").strip()
            if row.values is None or not key:  # the loader quarantines these (missing_key)
                continue
            rows.append(
                {
                    "extract_id": 0,
                    "row_number": i,
                    "source_record_id": source_record_id(source.name, key),
                    "source_key": key,
                    "raw": row.values,
                    "source_updated_at": None,
                }
            )
    return {name: pd.DataFrame(rows, dtype=object) for name, rows in frames.items()}


def cleansed_frame(landing: Path, config: HubConfig, today: date) -> pd.DataFrame:
    """The current (last-landed) cleansed record per source record of the generated silos."""
    parts = []
    for name, versions in landing_versions(landing, config).items():
        result = cleanse_batch(versions, config.sources[name], config.quality, today)
        parts.append(result.records)
    frame = pd.concat(parts, ignore_index=True)
    return frame.drop_duplicates("source_record_id", keep="last").reset_index(drop=True)
