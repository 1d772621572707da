"""Named crash points for crash-consistency tests: a run killed at any point leaves the hub consistent.

``MDM_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it reaches that point:
no ``finally`` blocks, no rollback by Python, the way a power cut or an OOM kill ends a run.
Unset, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("MDM_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
