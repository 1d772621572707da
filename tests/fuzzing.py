"""Settings of the fuzz tests (RELIABILITY.md row 28): time-boxed in CI, longer at night.

``MDM_FUZZ=nightly`` selects the long run (many more examples, a looser deadline):
``MDM_FUZZ=nightly pytest tests/unit/test_fuzz_readers.py tests/unit/test_fuzz_cleansers.py``.
Every example also runs under :func:`no_hang`, so a parser that loops for ever fails the test
instead of stalling CI.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from hypothesis import HealthCheck, settings

NIGHTLY = os.environ.get("MDM_FUZZ", "").lower() == "nightly"


def fuzz_settings(ci_examples: int, *, deadline_ms: int = 2000) -> settings:
    """Hypothesis settings for one fuzz test: ``ci_examples`` in CI (and by default), twenty
    times that under ``MDM_FUZZ=nightly``. The deadline flags an example that is slow, a sign
    of super-linear parsing; :func:`no_hang` stops one that never ends."""
    return settings(
        max_examples=ci_examples * 20 if NIGHTLY else ci_examples,
        # Ten times the nominal deadline: this machine's speed varies about 2x from minute to
        # minute and the suite shares its two cores, so a tighter one fails on load alone.
        deadline=timedelta(milliseconds=deadline_ms * 10 * (5 if NIGHTLY else 1)),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


class Hang(BaseException):
    """An example ran past its time limit (a BaseException, so no ``except Exception`` in the
    code under test turns it into an ordinary rejection)."""


@contextmanager
def no_hang(seconds: float = 10.0) -> Iterator[None]:
    """Raise :class:`Hang` if the block runs longer than ``seconds`` (POSIX main thread only;
    elsewhere the block just runs)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise Hang(f"an example ran longer than {seconds} s")

    try:
        previous = signal.signal(signal.SIGALRM, _expired)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
