"""``cleanse_batch`` (or another function) over a stream of batches, on a pool of spawned worker
processes."""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from typing import Any, TypeVar, overload

import pandas as pd

from mdm_orchestration.cleansing.pipeline import CleanseResult, cleanse_batch
from mdm_orchestration.cleansing.stored import (
    StoredForm,
    StoredResult,
    VersionColumns,
    cleanse_stored,
)
from mdm_orchestration.config import QualityConfig, SourceConfig

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int) -> int:
    """``workers`` processes; 0 means one per CPU, at most 4."""
    return workers if workers > 0 else max(1, min(os.cpu_count() or 1, 4))


@overload
def cleanse_batches(
    batches: Iterable[pd.DataFrame],
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
    workers: int = 1,
    *,
    stored: None = None,
) -> Iterator[CleanseResult]: ...


@overload
def cleanse_batches(
    batches: Iterable[VersionColumns],
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
    workers: int = 1,
    *,
    stored: StoredForm,
) -> Iterator[StoredResult]: ...


def cleanse_batches(
    batches: Iterable[Any],
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
    workers: int = 1,
    *,
    stored: StoredForm | None = None,
) -> Iterator[Any]:
    """:func:`cleanse_batch` over a stream of batches, in order, on ``workers`` processes.

    At most ``workers + 1`` batches are in flight, so memory stays bounded whatever the size of
    the stream. Workers are spawned (not forked: the caller may be a run worker with threads) and
    kept for the life of the process. One worker, or a single batch, runs in this process.

    ``stored`` is the hub writer's form (``runner``): each batch is then a batch of version
    columns and each result its rows as written (:func:`~mdm_orchestration.cleansing.stored.
    cleanse_stored`); without it, frames in and :class:`CleanseResult` out.
    """
    if stored is not None:
        return map_in_order(cleanse_stored, batches, (source, quality, today, stored), workers)
    return map_in_order(cleanse_batch, batches, (source, quality, today), workers)


def map_in_order(
    fn: Callable[..., R], items: Iterable[T], args: tuple[Any, ...], workers: int
) -> Iterator[R]:
    """``fn(item, *args)`` for each item, in order, on ``workers`` spawned processes (``fn``
    and its arguments picklable), with at most ``workers + 1`` items in flight. One worker, or
    a single item, runs in this process."""
    iterator = iter(items)
    first = next(iterator, None)
    if first is None:
        return
    second = next(iterator, None)
    if workers <= 1 or second is None:
        yield fn(first, *args)
        if second is not None:
            yield fn(second, *args)
        for item in iterator:
            yield fn(item, *args)
        return
    pool = _shared_pool(workers)
    pending: deque[Future[R]] = deque()
    try:
        for item in _chain(first, second, iterator):
            pending.append(pool.submit(fn, item, *args))
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


def _chain(first: T, second: T, rest: Iterator[T]) -> Iterator[T]:
    yield first
    yield second
    yield from rest
