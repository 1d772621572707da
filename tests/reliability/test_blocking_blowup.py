"""RELIABILITY row 24: an extract where a fifth of the rows share one blocking key (a shared
switchboard number) is matched under a memory limit: the giant block is skipped before
scoring and reported (the asset's metadata, ``match_runs.counts``), and the run finishes well
inside its budget instead of being killed for memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import sqlalchemy as sa

from tests.conftest import REPO
from tests.helpers import verify_hub, write_file

HEADER = "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"
SYLLABLES = ["ka", "lo", "mi", "ren", "sa", "tor", "vel", "an", "der", "is", "bro", "qu", "em"]
ROWS = 3000
SWITCHBOARD = "217-555-0100"
#: The run's address-space budget: Python, pandas, scikit-learn and dedupe loaded take about
#: 1 GiB of it; the 600-record block would add 180,000 scored pairs.
BUDGET = 3 * 1024**3


def word(i: int, parts: int) -> str:
    out = []
    for _ in range(parts):
        out.append(SYLLABLES[i % len(SYLLABLES)])
        i //= len(SYLLABLES)
    return "".join(out).capitalize()


def extract() -> str:
    lines = []
    for i in range(ROWS):
        phone = SWITCHBOARD if i % 5 == 0 else f"217-{300 + i // 10000}-{i % 10000:04d}"
        year, day = 1940 + i % 60, 1 + i % 28
        lines.append(
            f"B{i};{word(i * 7 + 3, 3)}, {word(i, 2)};{i + 1} {word(i * 3, 2)} St;;"
            f"Springfield;IL;{62701 + i % 90};{phone};p{i}@example.com;"
            f"{year}-{1 + i % 12:02d}-{day:02d};;2026-01-01 00:00:00"
        )
    return HEADER + "\n".join(lines) + "\n"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BUDGET, BUDGET))


def test_a_fifth_of_the_extract_in_one_block_is_reported_not_an_out_of_memory_kill(tmp_path):
    landing = tmp_path / "landing"
    write_file(landing / "billing" / "switchboard.csv", extract())
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.steps", "first_load", url, "", str(landing)],
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["match"]["giant_blocks_skipped"] >= 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        (counts,) = conn.execute(sa.text("SELECT counts FROM match_runs")).scalars()
        phones = conn.execute(
            sa.text("SELECT count(*) FROM cleansed_records WHERE phone LIKE '%2175550100'")
        ).scalar_one()
    engine.dispose()
    counts = json.loads(counts) if isinstance(counts, str) else counts
    assert counts["giant_blocks_skipped"] == report["match"]["giant_blocks_skipped"]
    assert phones == ROWS // 5  # the block was there, every row of it cleansed
    assert report["peak_mib"] * 1024**2 < BUDGET
    assert verify_hub(url) == "settled"
    print("peak MiB", report["peak_mib"])
