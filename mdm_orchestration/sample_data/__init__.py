"""Generator of realistic multi-silo customer data with ground truth."""

from mdm_orchestration.sample_data.generator import SOURCES, GenerationSummary, generate

__all__ = ["SOURCES", "GenerationSummary", "generate"]
