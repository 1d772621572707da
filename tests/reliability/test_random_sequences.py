"""RELIABILITY.md row 27: invariants and convergence hold for any interleaving of ingest,
re-drop, corrected extract, crash and rerun, erasure and steward edits.

A Hypothesis ``RuleBasedStateMachine`` drives the hub's in-process faces (the calls the assets
and ``mdm`` make, no Dagster runs, so a step costs a fraction of a second) against a hub of the
example's own: a PostgreSQL database cloned from a template (and the same on SQLite). The
template holds the first extracts of a small generated population, consolidated, and the match
models trained on the shipped labels; the rest of the landing zone waits to be dropped.

Rules: drop an extract; drop one again under a new name (a duplicate: nothing changes); drop a
corrected extract under an extract's name (one row changed, one gone); reconsolidate (the rerun
after a crash, or the run after new input); reconsolidate in a forked child that SIGKILLs itself
at a named crash point (``MDM_CRASH_AT``); erase a golden record's person; merge (must-link),
split (cannot-link) or label two records as a steward. After every step the invariants that hold
after any commit, and every invariant of ``check_invariants`` when the hub is settled; at the end
the hub is settled by a last rerun and checked against the convergence oracle.

A few examples in CI (the test well under a minute); ``MDM_FUZZ=nightly`` runs many more and
longer sequences (``MDM_FUZZ=nightly pytest -m nightly tests/reliability/test_random_sequences.py``
runs the SQLite variant too).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.hub.tables import CLEANSED, CURRENT_CLEANSED
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from mdm_orchestration.matching import record_label, record_override, train_models
from mdm_orchestration.syndication import NothingToErase, erase, erased_record_ids
from tests.conftest import CONFIG_DIR, PG_ADMIN_URL
from tests.fuzzing import NIGHTLY
from tests.helpers import _golden_invariants, check_convergence, check_invariants, hub_is_settled
from tests.reliability.steps import files_of, reconsolidate

#: Files of the landing zone already consolidated in the template; the rest wait to be dropped.
BASE_FILES = 4
CRASH_POINTS = (
    "match:after_cluster_write",
    "match:after_pair_batch",
    "match:before_commit",
    "golden:after_golden_write",
    "golden:before_outbox",
    "golden:before_commit",
)
MATCH_TABLES = ("match_clusters", "match_pairs", "match_runs")
GOLDEN_TABLES = ("golden_records", "golden_history", "golden_xref", "golden_changes", "golden_runs")


#: Sequences under ``MDM_FUZZ=nightly`` (each up to twice the CI run's steps).
NIGHTLY_EXAMPLES = 200


def machine_settings(ci_examples: int, steps: int) -> settings:
    return settings(
        max_examples=NIGHTLY_EXAMPLES if NIGHTLY else ci_examples,
        stateful_step_count=steps * 2 if NIGHTLY else steps,
        deadline=None,  # a step's time varies with the machine's load; the test's total is bounded
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
        # Shrinking a failing sequence re-runs it hundreds of times (minutes): nightly only; in
        # CI the failure prints its blob, for @reproduce_failure.
        phases=tuple(Phase) if NIGHTLY else tuple(p for p in Phase if p is not Phase.shrink),
    )


def _counts(engine: sa.Engine, tables: tuple[str, ...]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def _crashing_rerun(url: str, point: str, config_dir: str) -> None:
    """The body of a forked child: a rerun that kills itself at ``point`` (if it gets there)."""
    os.environ["MDM_CRASH_AT"] = point  # the child's own environment, gone with it
    engine = create_hub_engine(url)
    reconsolidate(engine, load_hub_config(config_dir), "crashing")


def corrected(original: bytes) -> bytes:
    """A billing extract corrected by its silo: the first customer's street changed (and the row
    stamped a day later), the last customer gone."""
    lines = original.decode("utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    fields = rows[0].rstrip("\r\n").split(";")
    fields[2] = "1 Corrected Road"
    stamp = datetime.strptime(fields[-1], "%Y-%m-%d %H:%M:%S") + timedelta(days=1)
    fields[-1] = stamp.strftime("%Y-%m-%d %H:%M:%S")
    body = [";".join(fields) + "\n", *rows[1:-1]] if len(rows) > 1 else [";".join(fields) + "\n"]
    return (header + "".join(body)).encode("utf-8")


class HubSequences(RuleBasedStateMachine):
    """One example: a fresh hub, a landing zone of its own, a sequence of operations."""

    #: Set by the test before the run: ``new_hub() -> (url, drop)``, the pristine landing
    #: files, a scratch folder and the configuration.
    new_hub = None
    pristine: list[Path] = []
    scratch: Path = Path()
    config: HubConfig | None = None
    _config_dir: Path = CONFIG_DIR

    @initialize()
    def start(self) -> None:
        self.url, self._drop = type(self).new_hub()
        self.engine = create_hub_engine(self.url)
        self.root = type(self).scratch / uuid.uuid4().hex[:8]
        self.landing = self.root / "landing"
        for path in type(self).pristine:
            (self.landing / path.parent.name).mkdir(parents=True, exist_ok=True)
        self.dropped: set[str] = {self._key(p) for p in type(self).pristine[:BASE_FILES]}
        self.copies = 0
        self.erased: set[str] = set()

    def teardown(self) -> None:
        if not hasattr(self, "engine"):
            return
        try:
            # The rerun after whatever the sequence left: the hub settles and converges.
            reconsolidate(self.engine, self.config, "final")
            assert hub_is_settled(self.engine, self.config)
            check_invariants(self.engine)
            check_convergence(self.engine, self.config)
            self._erased_stay_erased()
        finally:
            self.engine.dispose()
            self._drop()

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _key(path: Path) -> str:
        return f"{path.parent.name}/{path.name}"

    def _ingest(self, path: Path):  # type: ignore[no-untyped-def]
        try:
            return ingest_file(self.engine, self.config, path, self.landing)
        except ExtractRejected as exc:  # a corrected file that lost every row, say
            return exc

    def _current_records(self) -> dict[str, list[str]]:
        """The current source records by party type, in a stable order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(CLEANSED.c.source_record_id, CLEANSED.c.party_type)
                .select_from(CURRENT_CLEANSED)
                .order_by(CLEANSED.c.source_record_id)
            ).all()
        out: dict[str, list[str]] = {}
        for rid, party in rows:
            out.setdefault(party, []).append(rid)
        return out

    def _pair(self, data) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
        parties = {p: ids for p, ids in self._current_records().items() if len(ids) >= 2}
        if not parties:
            return None
        ids = parties[data.draw(st.sampled_from(sorted(parties)), label="party")]
        left, right = data.draw(
            st.lists(st.sampled_from(ids), min_size=2, max_size=2, unique=True), label="pair"
        )
        return left, right

    def _erased_stay_erased(self) -> None:
        current = {r for ids in self._current_records().values() for r in ids}
        assert not (current & self.erased), sorted(current & self.erased)[:3]

    # --- rules --------------------------------------------------------------------------------

    @rule(data=st.data())
    def drop_extract(self, data) -> None:  # type: ignore[no-untyped-def]
        """A silo drops one of its extracts (new, or one the hub already has: a duplicate)."""
        src = data.draw(st.sampled_from(type(self).pristine), label="extract")
        target = self.landing / src.parent.name / src.name
        shutil.copyfile(src, target)
        outcome = self._ingest(target)
        event(f"drop: {getattr(outcome, 'status', 'rejected')}")
        if self._key(src) in self.dropped and not isinstance(outcome, Exception):
            assert outcome.status in ("loaded", "duplicate")
        self.dropped.add(self._key(src))

    @precondition(lambda self: bool(self.dropped))
    @rule(data=st.data())
    def drop_again_under_a_new_name(self, data) -> None:  # type: ignore[no-untyped-def]
        """The same bytes again under another name: recorded as a duplicate, nothing changes."""
        by_key = {self._key(p): p for p in type(self).pristine}
        src = by_key[data.draw(st.sampled_from(sorted(self.dropped)), label="redrop")]
        self.copies += 1
        target = self.landing / src.parent.name / f"again{self.copies}_{src.name}"
        shutil.copyfile(src, target)
        tables = ("source_records", "source_record_versions", *GOLDEN_TABLES)
        before = _counts(self.engine, tables)
        outcome = self._ingest(target)
        event(f"drop again: {getattr(outcome, 'status', 'rejected')}")
        if not isinstance(outcome, Exception):
            assert outcome.status == "duplicate", outcome
        assert _counts(self.engine, tables) == before

    @rule(data=st.data())
    def drop_a_corrected_extract(self, data) -> None:  # type: ignore[no-untyped-def]
        """A billing extract corrected under its own name (one row changed, one removed)."""
        billing = [p for p in type(self).pristine if p.parent.name == "billing"]
        src = data.draw(st.sampled_from(billing), label="corrected")
        target = self.landing / src.parent.name / src.name
        target.write_bytes(corrected(src.read_bytes()))
        event(f"corrected: {getattr(self._ingest(target), 'status', 'rejected')}")

    @rule()
    def rerun(self) -> None:
        """What reconsolidate_job does, and the rerun after a crash: the hub settles."""
        result = reconsolidate(self.engine, self.config, "rerun")
        event(f"rerun: {'full' if result['full'] else 'incremental'}")
        assert hub_is_settled(self.engine, self.config)

    @rule(point=st.sampled_from(CRASH_POINTS))
    def crash(self, point: str) -> None:
        """A run SIGKILLed at ``point``: whatever its transaction wrote is not there."""
        tables = (*MATCH_TABLES, *GOLDEN_TABLES)
        before = _counts(self.engine, tables)
        self.engine.dispose()  # no pooled connection is shared with the child
        child = multiprocessing.get_context("fork").Process(
            target=_crashing_rerun, args=(self.url, point, str(self._config_dir))
        )
        child.start()
        child.join(timeout=120)
        assert child.exitcode in (0, -signal.SIGKILL), child.exitcode
        event(f"crash: {'killed' if child.exitcode else 'point not reached'}")
        if child.exitcode == -signal.SIGKILL:
            after = _counts(self.engine, tables)
            # Cleansing (and, at a golden point, matching) committed before the killed
            # transaction began; the transaction itself left nothing.
            kept = GOLDEN_TABLES if point.startswith("golden:") else tables
            assert {t: after[t] for t in kept} == {t: before[t] for t in kept}

    @rule(data=st.data())
    def erase_a_person(self, data) -> None:  # type: ignore[no-untyped-def]
        with self.engine.connect() as conn:
            active = sorted(
                conn.execute(
                    sa.text("SELECT golden_id FROM golden_records WHERE status = 'active'")
                ).scalars()
            )
            members = dict(
                conn.execute(sa.text("SELECT record_id, golden_id FROM golden_xref")).all()
            )
        if not active:
            return
        golden = data.draw(st.sampled_from(active), label="erase")
        try:
            erase(
                self.engine,
                golden_id=golden,
                by="fuzz",
                ledger=self.root / "erasures.jsonl",
                config=self.config,
                landing=self.landing,
                home=self.root / "home",
            )
        except NothingToErase:
            return
        event("erase: done")
        self.erased |= {r for r, g in members.items() if g == golden}
        with self.engine.connect() as conn:
            assert self.erased <= erased_record_ids(conn)
        self._erased_stay_erased()

    @rule(data=st.data(), kind=st.sampled_from(["must_link", "cannot_link"]))
    def steward_merge_or_split(self, data, kind: str) -> None:  # type: ignore[no-untyped-def]
        pair = self._pair(data)
        if pair is not None:
            record_override(self.engine, *pair, kind, "fuzz", "random sequence")
            event(f"steward: {kind}")

    @rule(data=st.data(), label=st.sampled_from(["match", "distinct", "unsure"]))
    def steward_label(self, data, label: str) -> None:  # type: ignore[no-untyped-def]
        pair = self._pair(data)
        if pair is not None:
            record_label(self.engine, *pair, label, "fuzz")
            event("steward: label")

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def hub_is_consistent(self) -> None:
        if not hasattr(self, "engine"):
            return
        _golden_invariants(self.engine)  # after any commit, settled or not
        if hub_is_settled(self.engine, self.config):
            check_invariants(self.engine)


# --- fixtures ---------------------------------------------------------------------------------


def _build_template(url: str, landing: Path, config: HubConfig) -> None:
    engine = create_hub_engine(url)
    try:
        train_models(engine)
        for path in files_of(landing)[:BASE_FILES]:
            ingest_file(engine, config, path, landing)
        reconsolidate(engine, config, "base")
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pg_template(small_silos: Path):  # type: ignore[no-untyped-def]
    name = f"mdm_seq_base_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__})")
    try:
        _build_template(
            PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", small_silos, load_hub_config(CONFIG_DIR)
        )
        yield name, admin
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _run(new_hub, small_silos: Path, scratch: Path, ci_examples: int, steps: int) -> None:  # type: ignore[no-untyped-def]
    HubSequences.new_hub = staticmethod(new_hub)
    HubSequences.pristine = files_of(small_silos)
    HubSequences.config = load_hub_config(CONFIG_DIR)
    HubSequences.scratch = scratch
    run_state_machine_as_test(HubSequences, settings=machine_settings(ci_examples, steps))


def test_random_sequences_keep_the_invariants_and_converge_on_postgres(
    pg_template, small_silos, tmp_path
):
    template, admin = pg_template

    def new_hub():  # type: ignore[no-untyped-def]
        name = f"mdm_seq_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop

    _run(new_hub, small_silos, tmp_path, ci_examples=8, steps=10)


@pytest.mark.nightly
def test_random_sequences_keep_the_invariants_and_converge_on_sqlite(small_silos, tmp_path):
    """The same sequences on the embedded SQLite hub (a copy of a template file per example);
    nightly only (``MDM_FUZZ=nightly``): CI's budget goes to the PostgreSQL run."""
    if not NIGHTLY:
        pytest.skip("the SQLite variant runs under MDM_FUZZ=nightly")
    template = tmp_path / "template.db"
    _build_template(f"sqlite:///{template}", small_silos, load_hub_config(CONFIG_DIR))
    engine = sa.create_engine(f"sqlite:///{template}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()

    def new_hub():  # type: ignore[no-untyped-def]
        copy = tmp_path / f"hub_{uuid.uuid4().hex[:10]}.db"
        shutil.copyfile(template, copy)

        def drop() -> None:
            for path in copy.parent.glob(copy.name + "*"):
                path.unlink()

        return f"sqlite:///{copy}", drop

    _run(new_hub, small_silos, tmp_path, ci_examples=8, steps=10)
