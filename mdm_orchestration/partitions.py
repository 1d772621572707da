"""Partition definitions shared by assets and sensors."""

import dagster as dg

#: One partition per landed file content, keyed ``<source>:<first 16 hex digits of its
#: sha256>`` (the sensor and ``mdm run``): a file's name can carry customer data, so it stays in
#: the hub (``landed_file_keys``), never in Dagster. A key ``<folder>/<file>`` (a manual launch)
#: is still read as a path. For observability: the hub's own ledger (by content hash) decides
#: what has been ingested.
landed_files = dg.DynamicPartitionsDefinition(name="landed_files")

#: One partition per subscriber of ``subscriptions.yaml`` (added by the syndication sensor and
#: by ``mdm syndicate``), so each subscriber's deliveries are their own runs and history.
subscribers = dg.DynamicPartitionsDefinition(name="subscribers")
