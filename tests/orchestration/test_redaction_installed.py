"""The Dagster code location installs the redaction filter (RELIABILITY.md rule 6): a process
that loads it masks emails and phone numbers in what the hub's loggers and Dagster's write."""

from __future__ import annotations

import logging

import mdm_orchestration.definitions  # noqa: F401 - loading the code location installs it
from mdm_orchestration.hub.redaction import HUB_LOGGERS, RedactingFilter


def test_loading_the_code_location_installs_the_redaction_filter():
    for name in (*HUB_LOGGERS, "dagster"):
        logger = logging.getLogger(name)
        assert any(isinstance(f, RedactingFilter) for f in logger.filters), name
        for handler in logger.handlers:
            assert any(isinstance(f, RedactingFilter) for f in handler.filters), (name, handler)
