"""RELIABILITY row 24's PostgreSQL column: the extract of test_blocking_blowup (a fifth of its
3,000 rows on one switchboard phone) loaded and matched from an empty hub on the local
PostgreSQL, in a subprocess under the same address-space budget: the giant block is skipped
and reported, the run stays inside its budget, the hub converges."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from tests.conftest import REPO
from tests.helpers import verify_hub, write_file
from tests.reliability.test_blocking_blowup import BUDGET, ROWS, _limit_memory, extract


def test_a_fifth_of_the_extract_in_one_block_on_postgres_is_reported_within_budget(
    tmp_path, postgres_url
):
    landing = tmp_path / "landing"
    write_file(landing / "billing" / "switchboard.csv", extract())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.steps",
            "first_load",
            postgres_url,
            "",
            str(landing),
        ],
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
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            (counts,) = conn.execute(sa.text("SELECT counts FROM match_runs")).scalars()
            phones = conn.execute(
                sa.text("SELECT count(*) FROM cleansed_records WHERE phone LIKE '%2175550100'")
            ).scalar_one()
    finally:
        engine.dispose()
    counts = json.loads(counts) if isinstance(counts, str) else counts
    assert counts["giant_blocks_skipped"] == report["match"]["giant_blocks_skipped"]
    assert phones == ROWS // 5  # the block was there, every row of it cleansed
    assert report["peak_mib"] * 1024**2 < BUDGET
    assert verify_hub(postgres_url) == "settled"
