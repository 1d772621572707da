"""How long a step's domain call took, for its log line and metadata: counts and seconds only,
never a value."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Stopwatch:
    seconds: float = 0.0

    def rate(self, count: int) -> float:
        """``count`` per second (0 when nothing was timed)."""
        return count / self.seconds if self.seconds > 0 else 0.0

    def said(self, count: int, unit: str) -> str:
        """``"in 2.4 s (4,100 rows/s)"``."""
        return f"in {self.seconds:.1f} s ({self.rate(count):,.0f} {unit}/s)"

    def metadata(self, count: int, unit: str) -> dict[str, float]:
        return {"seconds": round(self.seconds, 6), f"{unit}_per_second": round(self.rate(count), 3)}


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    watch = Stopwatch()
    started = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - started
