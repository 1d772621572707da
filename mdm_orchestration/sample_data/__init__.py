"""Generator of realistic multi-silo customer data with ground truth (the face of the package)."""

from mdm_orchestration.sample_data.generator import (
    ERP_HEADER,
    SOURCES,
    GenerationSummary,
    generate,
)

__all__ = ["ERP_HEADER", "SOURCES", "GenerationSummary", "generate"]
