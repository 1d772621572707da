"""``cleanse_batch`` over a stream of batches, on a pool of spawned worker processes."""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date

import pandas as pd

from mdm_orchestration.cleansing.pipeline import CleanseResult, cleanse_batch
from mdm_orchestration.config import QualityConfig, SourceConfig


def resolve_workers(workers: int) -> int:
    """``workers`` processes; 0 means one per CPU, at most 4."""
    return workers if workers > 0 else max(1, min(os.cpu_count() or 1, 4))


def cleanse_batches(
    batches: Iterable[pd.DataFrame],
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
    workers: int = 1,
) -> Iterator[CleanseResult]:
    """:func:`cleanse_batch` over a stream of batches, in order, on ``workers`` processes.

    At most ``workers + 1`` batches are in flight, so memory stays bounded whatever the size of
    the stream. Workers are spawned (not forked: the caller may be a run worker with threads) and
    kept for the life of the process. One worker, or a single batch, runs in this process.
    """
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        return
    second = next(iterator, None)
    if workers <= 1 or second is None:
        yield cleanse_batch(first, source, quality, today)
        if second is not None:
            yield cleanse_batch(second, source, quality, today)
        for batch in iterator:
            yield cleanse_batch(batch, source, quality, today)
        return
    pool = _shared_pool(workers)
    pending: deque[Future[CleanseResult]] = deque()
    try:
        for batch in _chain(first, second, iterator):
            pending.append(pool.submit(cleanse_batch, batch, source, quality, today))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        _POOLS.pop(workers, None)  # a worker died: the next call starts a fresh pool
        raise
    finally:
        for future in pending:
            future.cancel()


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    """One pool per size for the life of the process: spawning workers (importing pandas and
    the cleansing libraries) costs seconds, which a run over several extracts pays once."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")
        )
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


def _chain(
    first: pd.DataFrame, second: pd.DataFrame, rest: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    yield first
    yield second
    yield from rest
