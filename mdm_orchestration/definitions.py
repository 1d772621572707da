"""The one Definitions object: ``workspace.yaml`` and ``dagster dev -w workspace.yaml`` load it."""

import dagster as dg

from mdm_orchestration.assets import ALL_ASSETS
from mdm_orchestration.jobs import ALL_JOBS
from mdm_orchestration.resources import hub_resource, landing_resource
from mdm_orchestration.sensors import ALL_SENSORS

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    resources={"hub": hub_resource(), "landing": landing_resource()},
)
