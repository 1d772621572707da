"""The one Definitions object: ``workspace.yaml`` and ``dg dev`` load it.

Importing it reads no environment variable: the resources resolve their defaults through
:mod:`mdm_orchestration.settings` when a run or a sensor tick uses them.
"""

import dagster as dg

from mdm_orchestration.assets import ALL_ASSETS, OP_JOBS
from mdm_orchestration.hub.redaction import HUB_LOGGERS, install_redaction
from mdm_orchestration.jobs import ALL_JOBS
from mdm_orchestration.resources import default_resources
from mdm_orchestration.sensors import ALL_SENSORS

# The processes that load the code location (runs, the daemon's code server) mask emails and
# phone numbers in what the hub's loggers and Dagster's own write (RELIABILITY.md rule 6).
install_redaction((*HUB_LOGGERS, "dagster"))

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[*ALL_JOBS, *OP_JOBS],
    sensors=ALL_SENSORS,
    resources=default_resources(),
)
