"""Partition definitions shared by assets and sensors."""

import dagster as dg

#: One partition per landed file, keyed ``<source folder>/<file name>``. For observability: the
#: hub's own ledger (by content hash) decides what has been ingested.
landed_files = dg.DynamicPartitionsDefinition(name="landed_files")

#: One partition per subscriber of ``subscriptions.yaml`` (added by the syndication sensor and
#: by ``mdm syndicate``), so each subscriber's deliveries are their own runs and history.
subscribers = dg.DynamicPartitionsDefinition(name="subscribers")
