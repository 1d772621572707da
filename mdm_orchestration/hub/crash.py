"""Named crash points for crash-consistency tests: a run killed at any point leaves the hub consistent.

``MDM_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it reaches that point:
no ``finally`` blocks, no rollback by Python, the way a power cut or an OOM kill ends a run.
With ``MDM_CRASH_MODE=pause`` the process instead says ``crash point <point> reached`` on
stderr and waits for a line on stdin: the test stops the database server hard meanwhile
(``pg_ctl stop -m immediate``), so the run goes on against a dead server, as it would after a
database crash. Unset, a crash point costs one dictionary lookup.

The points, in commit order:

- ``match:after_cluster_write``, ``match:after_pair_batch``, ``match:before_commit`` (both
  matching paths, inside their one write transaction)
- ``match:after_stage_batch`` (a partition of the partitioned rebuild, inside its one write
  transaction of staged pairs)
- ``golden:after_golden_write``, ``golden:before_outbox``, ``golden:before_commit``
  (consolidation, inside its one write transaction)
- ``syndication:after_send_before_commit`` (a subscriber acknowledged, the ledger not written)
"""

from __future__ import annotations

import os
import signal
import sys


def crash_point(name: str) -> None:
    if os.environ.get("MDM_CRASH_AT") != name:
        return
    if os.environ.get("MDM_CRASH_MODE") == "pause":
        print(f"crash point {name} reached", file=sys.stderr, flush=True)
        sys.stdin.readline()
        return
    os.kill(os.getpid(), signal.SIGKILL)
