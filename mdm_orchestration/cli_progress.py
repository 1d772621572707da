"""Progress of the CLI's long work (``mdm generate``, ``mdm run``, ``mdm demo``) on stderr:
rich's live bar with the rate when stderr is a terminal, one plain line per stage otherwise
(logs, CI). Counts, rates and stage names only: never a value, never a file's name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Stage:
    """One stage's count of items (files, silos) and of rows, and its rate."""

    def __init__(self, progress: Progress | None, task: int | None, unit: str) -> None:
        self._progress, self._task, self.unit = progress, task, unit
        self.items = 0
        self.rows = 0
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def advance(self, rows: int = 0) -> None:
        self.items += 1
        self.rows += rows
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, advance=1, rows=f"{self.rows:,} {self.unit} ({self.rate():,.0f}/s)"
            )

    def summary(self, name: str) -> str:
        return (
            f"{name}: {self.rows:,} {self.unit} in {self.seconds:.1f} s "
            f"({self.rate():,.0f} {self.unit}/s)"
        )


class Pace:
    """Where the CLI says how far it is. ``quiet`` (``--json``): nothing at all."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True)

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False)

    @contextmanager
    def stage(self, name: str, total: int, unit: str) -> Iterator[Stage]:
        live = not self.quiet and self.console.is_terminal
        if not live:
            stage = Stage(None, None, unit)
            yield stage
            self.say(stage.summary(name))
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(name, total=total, rows="")
            stage = Stage(progress, task, unit)
            yield stage
        self.say(stage.summary(name))


__all__ = ["Pace", "Stage"]
