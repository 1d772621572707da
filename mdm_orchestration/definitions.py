"""The one Definitions object: ``workspace.yaml`` and ``dg dev`` load it.

Importing it reads no environment variable: the resources resolve their defaults through
:mod:`mdm_orchestration.settings` when a run or a sensor tick uses them.
"""

import dagster as dg

from mdm_orchestration.assets import ALL_ASSETS
from mdm_orchestration.jobs import ALL_JOBS
from mdm_orchestration.resources import default_resources
from mdm_orchestration.sensors import ALL_SENSORS

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    resources=default_resources(),
)
