"""Fuzzing the extract readers (RELIABILITY.md row 28): CSV, JSON Lines and Parquet.

Every input is either read (each row a value dict or a row error with a reason code) or
rejected whole with :class:`ExtractRejected` and a known reason code; never another exception,
never a hang, and never a customer value in a reason. The inputs are random bytes and
near-valid extracts (the sources' own headers, cells full of quotes, delimiters, line ends,
NULs, BOMs and combining marks, cut short or re-encoded). Time-boxed for CI: see
``tests/fuzzing.py`` (``MDM_FUZZ=nightly`` for the long run).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from mdm_orchestration.config import SourceConfig, load_hub_config
from mdm_orchestration.hub.models import ExtractStatus
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from mdm_orchestration.ingestion.readers import guarded_rows, open_extract
from tests.conftest import CONFIG_DIR
from tests.fuzzing import fuzz_settings, no_hang

CONFIG = load_hub_config(CONFIG_DIR)
BILLING, CRM = CONFIG.sources["billing"], CONFIG.sources["crm"]
SHOP, ERP = CONFIG.sources["ecommerce"], CONFIG.sources["erp"]
#: Marks customer values in the generated cells: it must never reach a reason text.
CANARY = "Zqcanary"

FILE_CODES = {
    "corrupt",
    "duplicate_column",
    "empty_file",
    "malformed_csv",
    "missing_key_column",
    "reader_error",
    "schema_drift",
    "truncated",
    "undecodable",
    "unsafe_header",
}
ROW_CODES = {
    "bad_quoting",
    "field_too_long",
    "malformed_csv",
    "malformed_json",
    "not_an_object",
    "too_deeply_nested",
    "wrong_field_count",
    "wrong_type",
}
#: Rows the loader quarantines on top of the readers' own row errors.
LOADER_CODES = ROW_CODES | {
    "missing_key",
    "duplicate_key",
    "key_too_long",
    "invalid_updated_at",
    "field_too_long",
    "erased_subject",
}

_counter = itertools.count()

# Characters that break parsers: quoting, delimiters, every line end, NUL, BOM, combining marks,
# surrogate-free exotic text, and the canary.
_NASTY = list(",;\"'\r\n\t\\ {}[]:") + [
    "\x00",
    "\ufeff",
    "\u0308",
    "\x85",
    "\u2028",
    "é",
    "ß",
    "中",
    "😀",
    CANARY,
]
CELL = st.lists(
    st.one_of(st.sampled_from(_NASTY), st.characters(exclude_categories=("Cs",))),
    max_size=12,
).map("".join)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_readers")


def _write(folder: Path, data: bytes, suffix: str) -> Path:
    path = folder / f"f{next(_counter)}{suffix}"
    path.write_bytes(data)
    return path


def _read(path: Path, source: SourceConfig) -> None:
    """Read ``path`` as the loader does and check every outcome's shape."""
    try:
        with no_hang(), open_extract(path, source) as reader:
            rows = list(guarded_rows(path, reader.rows()))
            header = reader.header
    except ExtractRejected as rejected:
        assert rejected.code in FILE_CODES, rejected
        assert rejected.message.startswith(path.name)
        assert CANARY not in rejected.message
        return
    finally:
        path.unlink()
    assert [r.row_number for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert (row.values is None) != (row.error is None)
        if row.error is not None:
            field, code, detail = row.error
            assert code in ROW_CODES, row.error
            assert CANARY not in detail and CANARY not in (field or "")
        else:
            assert all(v is None or isinstance(v, str) for v in row.values.values())
            if source.format.value == "csv":
                assert list(row.values) == header.columns


@st.composite
def csv_bytes(draw: st.DrawFn, source: SourceConfig) -> bytes:
    """A near-valid extract of ``source``: its header (perhaps shuffled, short of a column or
    with an extra one), rows of nasty cells (quoted or raw, too few or too many), mixed line
    ends, then perhaps a BOM, another encoding, or the end cut off."""
    columns = list(source.required_columns)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    if draw(st.integers(0, 5)) == 0:
        columns = columns[:-1]
    if draw(st.integers(0, 5)) == 0:
        columns = [*columns, draw(st.sampled_from(["extra", "bad;col", "dup", columns[0]]))]
    width = len(columns)
    rows = draw(
        st.lists(st.lists(CELL, min_size=max(width - 1, 0), max_size=width + 1), max_size=6)
    )
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    out = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, None]))
    for fields in [columns, *rows]:
        if quoting is None:  # written by hand: stray quotes and all
            out.write(source.delimiter.join(fields) + draw(st.sampled_from([newline, "\n"])))
        else:
            csv.writer(
                out, delimiter=source.delimiter, quoting=quoting, lineterminator=newline
            ).writerow(fields)
    text = out.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "cp1252", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@st.composite
def jsonl_bytes(draw: st.DrawFn) -> bytes:
    """Lines of JSON objects (nested, wrongly typed, deep), broken JSON, other JSON values and
    blank lines, in UTF-8 or not, perhaps cut off."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), CELL)
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.sampled_from(["a", "b", "city", "x.y", "bad;key"]), inner, max_size=3
            ),
        ),
        max_leaves=8,
    )
    keys = st.sampled_from([*SHOP.required_columns, "extra", "shipping", "bad key!", "", "é"])
    obj = st.dictionaries(keys, values, max_size=8)
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind <= 5:
            lines.append(json.dumps(draw(obj), ensure_ascii=draw(st.booleans())))
        elif kind == 6:
            depth = draw(st.integers(1, 3000))
            lines.append('{"user_id": "1", "deep": ' + "[" * depth + "]" * depth + "}")
        elif kind == 7:
            lines.append(json.dumps(draw(values)))
        elif kind == 8:
            lines.append(draw(CELL))
        else:
            lines.append("")
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-8", "latin-1"])), errors="replace")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _arrow_column(draw: st.DrawFn, rows: int) -> pa.Array:
    kind = draw(st.sampled_from(["str", "int", "float", "bool", "list", "struct", "bytes", "ts"]))
    if kind == "str":
        return pa.array(draw(st.lists(st.none() | CELL, min_size=rows, max_size=rows)), pa.string())
    if kind == "int":
        return pa.array(
            draw(
                st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=rows, max_size=rows)
            ),
            pa.int64(),
        )
    if kind == "float":
        return pa.array(draw(st.lists(st.floats(), min_size=rows, max_size=rows)), pa.float64())
    if kind == "bool":
        return pa.array(draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
    if kind == "list":
        return pa.array(draw(st.lists(st.lists(CELL, max_size=2), min_size=rows, max_size=rows)))
    if kind == "struct":
        return pa.array([{"a": draw(CELL)} for _ in range(rows)])
    if kind == "bytes":
        return pa.array(
            draw(st.lists(st.binary(max_size=8), min_size=rows, max_size=rows)), pa.binary()
        )
    return pa.array([None] * rows, pa.timestamp("us"))


@st.composite
def parquet_bytes(draw: st.DrawFn) -> bytes:
    """A Parquet file with the ERP's columns (some missing, some of other types), perhaps with
    bytes flipped or the end cut off."""
    rows = draw(st.integers(0, 5))
    names = draw(
        st.lists(
            st.sampled_from([*ERP.required_columns, "EXTRA", "bad;col"]), unique=True, max_size=10
        )
    )
    arrays = {}
    for name in names:
        arrays[name] = (
            pa.array(draw(st.lists(st.none() | CELL, min_size=rows, max_size=rows)), pa.string())
            if draw(st.booleans())
            else _arrow_column(draw, rows)
        )
    buffer = io.BytesIO()
    pq.write_table(
        pa.table(arrays) if arrays else pa.table({"x": pa.array([], pa.string())}), buffer
    )
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@fuzz_settings(100)
@given(data=st.one_of(st.binary(max_size=600), csv_bytes(BILLING), csv_bytes(CRM)))
def test_csv_reader_reads_or_rejects_anything(folder, data):
    source = BILLING if data.count(b";") > data.count(b",") else CRM
    _read(_write(folder, data, ".csv"), source)


@fuzz_settings(100)
@given(data=st.one_of(st.binary(max_size=600), jsonl_bytes()))
def test_json_lines_reader_reads_or_rejects_anything(folder, data):
    _read(_write(folder, data, ".jsonl"), SHOP)


@fuzz_settings(60)
@given(data=st.one_of(st.binary(max_size=400), parquet_bytes()))
def test_parquet_reader_reads_or_rejects_anything(folder, data):
    _read(_write(folder, data, ".parquet"), ERP)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("fuzz_hub")
    landing = root / "landing"
    for source in CONFIG.sources.values():
        (landing / source.landing_folder).mkdir(parents=True)
    engine = create_hub_engine(f"sqlite:///{root / 'hub.db'}")
    yield engine, landing
    engine.dispose()


def _ledger_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM extracts")).scalar_one()


@fuzz_settings(40, deadline_ms=5000)
@given(
    case=st.one_of(
        st.tuples(st.just(BILLING), csv_bytes(BILLING), st.just(".csv")),
        st.tuples(st.just(SHOP), jsonl_bytes(), st.just(".jsonl")),
        st.tuples(st.just(ERP), parquet_bytes(), st.just(".parquet")),
    )
)
def test_the_loader_accounts_for_every_row_or_rejects_the_file(hub, case):
    """Through ingest_file into a hub: every landed row loaded or quarantined with a reason
    (no customer value in it), or the whole file rejected with a ledger row."""
    engine, landing = hub
    source, data, suffix = case
    path = _write(landing / source.landing_folder, data, suffix)
    before = _ledger_rows(engine)
    try:
        with no_hang(20):
            outcome = ingest_file(engine, CONFIG, path, landing)
    except ExtractRejected as rejected:
        assert rejected.code in FILE_CODES | {"changed_while_reading"}, rejected
        assert CANARY not in rejected.message
        # Recorded (once per content: the same rejected bytes again add no second row).
        digest = hashlib.sha256(data).hexdigest()
        with engine.connect() as conn:
            statuses = conn.execute(
                sa.text("SELECT status FROM extracts WHERE content_hash = :h"), {"h": digest}
            ).scalars()
            assert "rejected" in {str(s).rsplit(".", 1)[-1] for s in statuses}
        assert _ledger_rows(engine) in (before, before + 1)
        return
    finally:
        path.unlink()
    assert outcome.status in (ExtractStatus.loaded, ExtractStatus.duplicate)
    assert outcome.rows_loaded + outcome.rows_quarantined == outcome.rows_landed
    assert set(outcome.quarantine_reasons) <= LOADER_CODES, outcome.quarantine_reasons
    with engine.connect() as conn:
        texts = conn.execute(
            sa.text("SELECT coalesce(field, '') || reason || coalesce(detail, '') FROM quarantine")
        ).scalars()
        assert not any(CANARY in t for t in texts)
