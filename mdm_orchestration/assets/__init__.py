"""Thin Dagster assets over the domain packages. Only ``definitions.py`` imports this."""

from mdm_orchestration.assets.cleansing import cleansed_records
from mdm_orchestration.assets.ingestion import source_extracts

ALL_ASSETS = [source_extracts, cleansed_records]

__all__ = ["ALL_ASSETS", "cleansed_records", "source_extracts"]
