"""Thin Dagster assets over the domain packages. Only ``definitions.py`` imports this."""

from mdm_orchestration.assets.ingestion import source_extracts

ALL_ASSETS = [source_extracts]

__all__ = ["ALL_ASSETS", "source_extracts"]
