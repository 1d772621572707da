"""How often the hub's sensors are evaluated.

dagster-daemon's sensor loop wakes every 5 s (``MIN_INTERVAL_LOOP_TIME`` in
``dagster._daemon.sensor``) and evaluates a sensor whose interval has passed since its last
tick. An interval of exactly 5 s aliases against that loop: a tick that started 4.9 s ago is not
due, so the sensor ticks every 10 s. An interval below the loop's makes the sensor tick on every
loop, every 5 s, which is what the landing, reconsolidation and syndication sensors want (each
tick is a directory listing or a few small queries).
"""

FAST_SENSOR_INTERVAL = 1
