"""Sensors. They reach assets only through ``jobs.py`` and ``partitions.py``."""

from mdm_orchestration.sensors.api_writes import api_writes_sensor
from mdm_orchestration.sensors.landing import landing_sensor
from mdm_orchestration.sensors.reconsolidation import reconsolidation_sensor, retrain_sensor
from mdm_orchestration.sensors.syndication import syndication_sensor

ALL_SENSORS = [
    landing_sensor,
    reconsolidation_sensor,
    retrain_sensor,
    syndication_sensor,
    api_writes_sensor,
]

__all__ = [
    "ALL_SENSORS",
    "api_writes_sensor",
    "landing_sensor",
    "reconsolidation_sensor",
    "retrain_sensor",
    "syndication_sensor",
]
