"""The CLI's progress: a live bar with the rate on a terminal, one line per stage elsewhere,
nothing with --json."""

from __future__ import annotations

import io

from rich.console import Console

from mdm_orchestration.cli_progress import Pace


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100), out


def test_a_terminal_gets_a_live_bar_then_the_stage_summary() -> None:
    console, out = _console(terminal=True)
    with Pace(console=console).stage("ingest", 3, "rows") as stage:
        for rows in (1000, 2000, 500):
            stage.advance(rows)
    text = out.getvalue()
    assert "3/3" in text  # the bar drew its count
    assert "ingest: 3,500 rows in " in text and " rows/s)" in text
    assert stage.items == 3 and stage.rows == 3500


def test_a_log_gets_one_plain_line_and_json_mode_nothing() -> None:
    console, out = _console(terminal=False)
    with Pace(console=console).stage("generate", 5, "rows") as stage:
        stage.advance(10)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("generate: 10 rows in ")
    assert "\x1b[" not in out.getvalue()  # no terminal control codes in a log

    console, out = _console(terminal=True)
    with Pace(quiet=True, console=console).stage("generate", 5, "rows") as stage:
        stage.advance(10)
    assert out.getvalue() == ""
