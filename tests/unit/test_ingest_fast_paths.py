"""The fast paths of ingestion (issue 21) write exactly what the plain ones did.

- ``raw``: orjson and the CSV template give the bytes of ``json.dumps(values,
  ensure_ascii=False, sort_keys=True, separators=(",", ":"))`` on awkward values;
- the UTF-8 check of a CSV file names the same first bad line as decoding line by line, at any
  block size;
- a CSV file read in batches gives the rows, numbers and errors of reading it row by row;
- COPY in text format is used only where it is exact, and on both databases a batch's current
  versions (records twice in a batch, across batches, older extracts landing late) are the ones
  the row-by-row rules choose;
- a failed batch write on PostgreSQL (written on a thread of its own) is the error raised, even
  when the reader fails after it, as when the batch was written before the next was read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

import mdm_orchestration.hub.bulk as bulk
import mdm_orchestration.ingestion.readers as readers
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.ingestion import ExtractRejected, ingest_file
from mdm_orchestration.ingestion.readers import CsvReader
from mdm_orchestration.ingestion.rows import CsvJson, raw_json
from tests.conftest import CONFIG_DIR
from tests.fuzzing import fuzz_settings
from tests.helpers import write_file
from tests.unit.test_ingest import BILLING_HEADER, billing_row


def reference_json(values: dict) -> str:
    return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


#: Every character JSON treats specially, line ends and separators, non-ASCII of every width,
#: a lone surrogate (orjson refuses it: json.dumps decides), and format markers.
AWKWARD = [chr(c) for c in range(0x20)] + [
    '"',
    "\\",
    "/",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "é",
    "ß",
    "中",
    "😀",
    "\ufeff",
    "\u0308",
    "\ud800",
    "%",
    "%s",
    "{",
    "}",
    ":",
    ",",
]
TEXT = st.lists(st.one_of(st.sampled_from(AWKWARD), st.characters()), max_size=8).map("".join)
KEY = st.lists(
    st.one_of(st.sampled_from(["é", "ß", "😀", "a", "B", "_", " ", "."]), st.characters()),
    min_size=1,
    max_size=6,
).map("".join)
SCALAR = st.one_of(
    st.none(),
    TEXT,
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)


@fuzz_settings(300)
@given(st.dictionaries(KEY, st.one_of(st.none(), TEXT), max_size=8))
def test_raw_json_of_text_and_nulls_is_json_dumps(values):
    assert raw_json(values) == reference_json(values)


@fuzz_settings(300)
@given(st.dictionaries(KEY, SCALAR, max_size=8))
def test_raw_json_of_other_values_is_json_dumps(values):
    assert raw_json(values) == reference_json(values)


def test_raw_json_of_values_json_dumps_refuses_is_refused_alike():
    for values in ({"a": {1, 2}}, {"a": b"x"}, {1: "a", "b": "c"}):
        with pytest.raises(TypeError):
            reference_json(values)
        with pytest.raises(TypeError):
            raw_json(values)


@fuzz_settings(300)
@given(
    st.lists(KEY, min_size=1, max_size=6, unique=True).flatmap(
        lambda columns: st.tuples(
            st.just(columns),
            st.lists(st.lists(TEXT, min_size=len(columns), max_size=len(columns)), max_size=6),
        )
    )
)
def test_csv_json_is_json_dumps_of_the_row(case):
    columns, rows = case
    expected = [reference_json(dict(zip(columns, fields, strict=True))) for fields in rows]
    assert CsvJson(columns).encode(rows) == expected


def line_by_line(path: Path, encoding: str) -> tuple[str, str] | None:
    """The check as it was: each line decoded on its own, NUL bytes first."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if b"\x00" in line:
                return "corrupt", f"line {number}:"
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return "undecodable", f"line {number}:"
    return None


LINE = st.lists(
    st.one_of(
        st.sampled_from(
            [b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3\xa9", b"\r"]
        ),
        st.text(max_size=4).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    max_size=6,
).map(b"".join)


@fuzz_settings(300)
@given(st.lists(LINE, max_size=8), st.booleans(), st.integers(1, 16))
def test_the_utf8_check_names_the_line_decoding_line_by_line_names(
    tmp_path_factory, lines, final_newline, block
):
    path = tmp_path_factory.mktemp("utf8") / "f.csv"
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    expected = line_by_line(path, "utf-8-sig")
    saved = readers._CHECK_BLOCK
    readers._CHECK_BLOCK = block
    try:
        readers._check_decodable(path, "utf-8-sig", "utf-8")
        found = None
    except ExtractRejected as rejected:
        found = rejected.code, " ".join(rejected.message.split(" ")[1:3])
    finally:
        readers._CHECK_BLOCK = saved
    assert found == expected


BILLING = load_hub_config(CONFIG_DIR).sources["billing"]

CELLS = st.lists(
    st.sampled_from(['"', ";", "\n", "\r", "\r\n", "", "a", "é", "B1", "  "]), max_size=5
).map("".join)


def _rows_one_by_one(path: Path) -> list:
    """What :meth:`CsvReader.rows` yields, or the rejection it ends with."""
    try:
        with CsvReader(path, BILLING) as reader:
            return [(r.row_number, r.values, r.error) for r in reader.rows()]
    except ExtractRejected as rejected:
        return [("rejected", rejected.code, rejected.message)]


def _rows_in_batches(path: Path, size: int) -> list:
    try:
        with CsvReader(path, BILLING) as reader:
            columns = reader.header.columns
            out = []
            for numbers, items in reader.batches(size):
                assert len(items) == len(numbers) and 0 < len(items) <= size
                for number, item in zip(numbers, items, strict=True):
                    if isinstance(item, list):
                        out.append((number, dict(zip(columns, item, strict=True)), None))
                    else:
                        assert item.row_number == number
                        out.append((number, item.values, item.error))
            return out
    except ExtractRejected as rejected:
        return [("rejected", rejected.code, rejected.message)]


@fuzz_settings(200)
@given(
    st.lists(st.lists(CELLS, min_size=10, max_size=14), max_size=7),
    st.booleans(),
    st.integers(1, 4),
)
def test_batches_give_the_rows_of_reading_row_by_row(tmp_path_factory, rows, final_newline, size):
    # Cells joined raw: stray quotes, quoted line ends, too few or too many fields, blank lines.
    text = BILLING_HEADER + "".join(";".join(r) + "\n" for r in rows)
    if not final_newline:
        text = text.rstrip("\n")
    path = tmp_path_factory.mktemp("batches") / "b.csv"
    path.write_bytes(text.encode("utf-8"))
    saved = CsvReader.ROWS_AHEAD
    try:
        CsvReader.ROWS_AHEAD = 1
        one_ahead = _rows_one_by_one(path)
    finally:
        CsvReader.ROWS_AHEAD = saved
    assert _rows_one_by_one(path) == one_ahead
    assert _rows_in_batches(path, size) == one_ahead


def test_a_reader_failing_mid_file_names_the_row_after_the_last_it_gave(tmp_path, monkeypatch):
    """The row a reader_error names is the same whether the rows are read in batches or not."""
    path = write_file(
        tmp_path / "f.csv", BILLING_HEADER + "".join(billing_row(f"B{i}") for i in range(10))
    )

    class Failing:
        def __init__(self, rows: Iterator[list[str]], after: int) -> None:
            self.rows, self.after = rows, after

        def __iter__(self) -> Failing:
            return self

        def __next__(self) -> list[str]:
            if self.after == 0:
                raise OSError("the disk went away")
            self.after -= 1
            return next(self.rows)

    for size in (1, 3, 20):
        reader = CsvReader(path, BILLING)
        reader._reader = Failing(reader._reader, 6)  # rows 1..6 read, row 7 fails
        batches = readers.RowBatches(path, reader, size)
        seen = []
        with pytest.raises(ExtractRejected) as info:
            for numbers, _items in batches:
                seen.extend(numbers)
        # Row 6 was still held back (the file could have ended mid-row): rows 1..5 came.
        assert seen == [1, 2, 3, 4, 5]
        assert info.value.code == "reader_error" and "row 6:" in info.value.message


def test_copy_text_is_used_only_where_no_value_needs_escaping():
    assert bulk._copy_text([(1, "a", None), (2, "é😀", "x")], 3) == "1\ta\t\\N\n2\té😀\tx\n"
    for bad in ("a\tb", "a\nb", "a\rb", "a\\b", "\\N", "a\\.b"):
        assert bulk._copy_text([(1, "a", None), (2, bad, "x")], 3) is None


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[sa.Engine]:
    url = (
        f"sqlite:///{tmp_path / 'hub.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = create_hub_engine(url)
    yield engine
    engine.dispose()


def _current(engine: sa.Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        return {
            key: (extract, row)
            for key, extract, row in conn.execute(
                sa.text(
                    "SELECT source_key, current_extract_id, current_row_number FROM source_records"
                )
            )
        }


@pytest.mark.parametrize("batch_rows", [2, 20_000])
def test_current_versions_and_awkward_values_on_both_databases(
    engine, hub_config, landing, monkeypatch, batch_rows
):
    monkeypatch.setattr("mdm_orchestration.ingestion.loader.BATCH_ROWS", batch_rows)
    awkward = 'tab\there "quote" back\\slash \\N é😀 \x01'
    first = BILLING_HEADER + "".join(
        [
            billing_row("K1", updated="2026-01-02 10:00:00"),
            billing_row("K2", name=awkward),
            billing_row("K1", updated="2026-01-01 10:00:00"),  # older: K1 stays at row 1
            billing_row("K\\3\t", updated="2026-01-03 10:00:00"),
            billing_row("K2", updated=""),  # no stamp: the later row wins
            billing_row("K4"),
        ]
    )
    one = ingest_file(engine, hub_config, write_file(landing / "billing/a.csv", first), landing)
    assert (one.rows_landed, one.rows_loaded, one.rows_quarantined) == (6, 6, 0)
    assert _current(engine) == {
        "K1": (one.extract_id, 1),
        "K2": (one.extract_id, 5),
        "K\\3": (one.extract_id, 4),
        "K4": (one.extract_id, 6),
    }
    # A later extract: newer versions replace, older ones (by the source's clock) do not.
    second = BILLING_HEADER + "".join(
        [
            billing_row("K1", updated="2025-12-31 10:00:00"),
            billing_row("K4", updated="2027-01-01 10:00:00"),
            billing_row("K5"),
        ]
    )
    two = ingest_file(engine, hub_config, write_file(landing / "billing/b.csv", second), landing)
    current = _current(engine)
    assert current["K1"] == (one.extract_id, 1)
    assert current["K4"] == (two.extract_id, 2) and current["K5"] == (two.extract_id, 3)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.text(
                    "SELECT source_key, raw FROM source_record_versions "
                    "WHERE extract_id = :e AND row_number = 2"
                ),
                {"e": one.extract_id},
            ).all()
        )
    raw = stored["K2"]
    values = json.loads(raw) if isinstance(raw, str) else raw
    assert values["full_name"] == awkward
    if isinstance(raw, str):  # SQLite keeps the text: the bytes json.dumps writes
        assert raw == reference_json(values)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_failed_batch_write_is_the_error_even_when_the_reader_fails_later(
    engine, hub_config, landing, monkeypatch
):
    monkeypatch.setattr("mdm_orchestration.ingestion.loader.BATCH_ROWS", 2)
    calls = []
    real = bulk.bulk_insert

    def failing(conn, table, columns, rows, **kw):  # type: ignore[no-untyped-def]
        calls.append(table)
        if table == "source_record_versions":
            raise RuntimeError("the database refused the batch")
        return real(conn, table, columns, rows, **kw)

    monkeypatch.setattr("mdm_orchestration.ingestion.rows.bulk_insert", failing)
    # Rows 1-2 are written (and fail) while row 3 is read: the file ends mid-row there.
    content = BILLING_HEADER + billing_row("B1") + billing_row("B2") + "B9;cut"
    with pytest.raises(RuntimeError, match="refused"):
        ingest_file(engine, hub_config, write_file(landing / "billing/f.csv", content), landing)
    assert calls[0] == "source_record_versions"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM source_record_versions")).scalar() == 0
