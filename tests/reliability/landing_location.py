"""A code location of the landing sensor and the ingest job only, for the sensor crash tests
(RELIABILITY.md row 2): the hub's other sensors, evaluated in the same daemon iteration, would
start reconsolidation runs that have nothing to do with the fault under test."""

import dagster as dg

from mdm_orchestration.assets import ALL_ASSETS
from mdm_orchestration.jobs import ingest_job
from mdm_orchestration.resources import default_resources
from mdm_orchestration.sensors import landing_sensor

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[ingest_job],
    sensors=[landing_sensor],
    resources=default_resources(),
)
