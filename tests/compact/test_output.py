"""The compacted-file writer on its own: row groups, files, string forms and statistics, and
what the files say about themselves (typed time, footer metadata, declared sort order)."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusou.compact import output
from fusou.compact.output import OutOfOrder, OutputFile, ParquetFilesWriter
from fusou.formats.file_metadata import FileDescription
from fusou.formats.parquet_file import (
    TIME_TYPE,
    read_row_group,
    times_as_int64,
)
from fusou.records.string_dictionaries import STRING_DICTIONARY

SEQ = "_fusou_seq"
SCHEMA = pa.schema(
    [
        ("t", pa.int64()),
        ("name", pa.string()),
        ("note", pa.string()),
        ("n", pa.int64()),
        (SEQ, pa.int64()),
    ]
)
DESCRIPTION = FileDescription("u1", "battle", 3, ("name", "n"), "t", SEQ)


def rows(start: int, count: int, *, names: int = 5) -> pa.Table:
    """Rows with times start..start+count-1; ``name`` from a few values, ``note`` unique."""
    t = np.arange(start, start + count, dtype=np.int64)
    return pa.table(
        {
            "t": t,
            "name": pa.array([f"name-{i % names}" for i in t]),
            "note": pa.array([None if i % 7 == 0 else f"note-{i}" for i in t]),
            "n": t * 3,
            SEQ: t + 1000,
        },
        schema=SCHEMA,
    )


def as_dictionaries(table: pa.Table) -> pa.Table:
    """What the compactor's Parquet inputs give: strings dictionary-encoded."""
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return pq.read_table(pa.BufferReader(sink.getvalue()), read_dictionary=["name", "note"])


def read_back(files: list[OutputFile]) -> pa.Table:
    """The files' rows, the time as int64 again (as FUSOU's readers take it)."""
    return pa.concat_tables(
        times_as_int64(pq.read_table(pa.BufferReader(f.data)), "t") for f in files
    )


def write(
    parts: list[pa.Table],
    *,
    group_rows: int = 1000,
    target_bytes: int = 1 << 30,
    encoder: ThreadPoolExecutor | None = None,
) -> list[OutputFile]:
    writer = ParquetFilesWriter(SCHEMA, DESCRIPTION, target_bytes, group_rows, encoder)
    for p in parts:
        writer.add(p)
    files = writer.finish()
    assert writer.rows == sum(p.num_rows for p in parts)
    return files


@pytest.mark.parametrize("threaded", [False, True])
def test_plain_and_dictionary_inputs_mixed_in_row_groups_read_back_as_written(
    threaded: bool,
) -> None:
    # Parts of 700 rows in groups of 1000: most groups hold a plain part and a dictionary one.
    parts = [rows(i * 700, 700) for i in range(6)]
    given = [as_dictionaries(p) if i % 2 else p for i, p in enumerate(parts)]
    assert given[1].schema.field("name").type == STRING_DICTIONARY
    with ThreadPoolExecutor(1) as encoder:
        files = write(given, encoder=encoder if threaded else None)
    assert len(files) == 1
    back = read_back(files)
    assert back.schema.field("name").type == pa.string()
    assert back.equals(pa.concat_tables(parts))
    (f,) = files
    assert [b.row_count for b in f.blocks] == [1000, 1000, 1000, 1000, 200]
    assert (f.min_time, f.max_time, f.rows) == (0, 4199, 4200)


def test_row_groups_read_alone_with_the_footer() -> None:
    parts = [as_dictionaries(rows(i * 500, 500)) for i in range(5)]
    (f,) = write(parts, group_rows=800)
    expected = pa.concat_tables(rows(i * 500, 500) for i in range(5))
    for i, b in enumerate(f.blocks):
        assert b.first_row is not None
        chunk = f.data[b.byte_offset : b.byte_offset + b.byte_length]
        got = read_row_group(f.footer, len(f.data), i, b.byte_offset, chunk)
        assert got.schema.field("t").type == TIME_TYPE
        assert times_as_int64(got, "t").equals(expected.slice(b.first_row, b.row_count))
        assert (b.min_time, b.max_time) == (b.first_row, b.first_row + b.row_count - 1)


def test_row_groups_have_statistics_for_time_and_numbers_and_none_for_strings() -> None:
    parts = [as_dictionaries(rows(i * 250, 250)) for i in range(4)]
    (f,) = write(parts, group_rows=300)
    meta = pq.ParquetFile(pa.BufferReader(f.data)).metadata
    names = meta.schema.names
    for g, block in enumerate(f.blocks):
        group = meta.row_group(g)
        # The time's statistics are timestamps now; the same int64 values underneath.
        time_stats = group.column(names.index("t")).statistics
        assert (time_stats.min_raw, time_stats.max_raw) == (block.min_time, block.max_time)
        n_stats = group.column(names.index("n")).statistics
        assert (n_stats.min, n_stats.max) == (3 * block.min_time, 3 * block.max_time)
        assert n_stats.null_count == 0
        # Strings in time order span nearly all their values in every group: not worth it.
        assert not group.column(names.index("name")).is_stats_set
        assert not group.column(names.index("note")).is_stats_set


def test_a_dictionary_over_the_limit_starts_a_file_of_plain_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Short notes first, then long ones: 100 distinct notes of 300 characters in a group of
    # 100 rows make a dictionary over the limit.
    monkeypatch.setattr(output, "DICTIONARY_LIMIT_BYTES", 20_000)
    short = rows(0, 1000)
    notes = pa.array([f"{i:0300d}" for i in range(1000, 4000)])
    long = rows(1000, 3000).set_column(2, "note", notes)
    files = write([as_dictionaries(short), as_dictionaries(long)], group_rows=100)
    assert len(files) == 2
    assert read_back(files).equals(pa.concat_tables([short, long]))
    # The roll came with the first group of long notes.
    assert (files[0].rows, files[0].max_time, files[1].min_time) == (1000, 999, 1000)


def test_files_are_cut_at_the_target_size() -> None:
    parts = [as_dictionaries(rows(i * 1000, 1000, names=50)) for i in range(20)]
    files = write(parts, group_rows=1000, target_bytes=15_000)
    assert len(files) > 2
    assert all(len(f.data) >= 15_000 for f in files[:-1])
    assert read_back(files).equals(
        pa.concat_tables(rows(i * 1000, 1000, names=50) for i in range(20))
    )
    assert [f.min_time for f in files[1:]] == [f.max_time + 1 for f in files[:-1]]


def test_decoded_bytes_count_dictionary_strings_as_plain_ones() -> None:
    # Skewed: a few long values in most rows, many short ones (a mean over the dictionary
    # would be far off); the guardrail counts this size when the file is compacted again.
    t = np.arange(0, 5000, dtype=np.int64)
    long = "x" * 1000
    plain = pa.table(
        {
            "t": t,
            "name": pa.array([long if i % 10 else f"n{i}" for i in t]),
            "note": pa.array([None if i % 3 else f"note-{i}" for i in t]),
            "n": t,
            SEQ: t,
        },
        schema=SCHEMA,
    )
    (f,) = write([as_dictionaries(plain)])
    assert abs(f.decoded_bytes - plain.nbytes) <= 0.01 * plain.nbytes


def test_row_groups_store_only_the_dictionary_values_they_use() -> None:
    # One input row group of 20,000 distinct ids in time order: each output group of 1,000 rows
    # must not carry the other 19,000 ids (a slice keeps its input's whole dictionary).
    t = np.arange(0, 20_000, dtype=np.int64)
    ids = pa.table(
        {
            "t": t,
            "name": pa.array([f"player-{i:012d}" for i in t]),
            "note": pa.nulls(len(t), pa.string()),
            "n": t,
            SEQ: t,
        },
        schema=SCHEMA,
    )
    through_dictionaries = write([as_dictionaries(ids)])
    from_plain = write([ids])
    assert read_back(through_dictionaries).equals(ids)
    assert len(through_dictionaries[0].data) <= 1.1 * len(from_plain[0].data)


def test_bytes_columns_are_written_as_bytes() -> None:
    schema = pa.schema(
        [("t", pa.int64()), ("raw", pa.binary()), ("name", pa.string()), (SEQ, pa.int64())]
    )
    table = pa.table(
        {
            "t": pa.array([1, 2, 3], pa.int64()),
            "raw": pa.array([b"\xff\xfe", b"ok", None]),
            "name": pa.array(["a", "b", "a"]),
            SEQ: pa.array([7, 8, 9], pa.int64()),
        },
        schema=schema,
    )
    writer = ParquetFilesWriter(schema, DESCRIPTION, 1 << 30, 2)
    writer.add(table)
    (f,) = writer.finish()
    back = read_back([f])
    assert back.schema.field("raw").type == pa.binary()
    assert back.equals(table)


def test_an_encoding_failure_reaches_the_caller() -> None:
    bad = rows(0, 10).set_column(3, "n", pa.array(["x"] * 10))
    # A string where the schema says long: the encoder thread's error, raised by finish().
    with ThreadPoolExecutor(1) as encoder, pytest.raises(OSError, match="DELTA_BINARY_PACKED"):
        write([bad], group_rows=5, encoder=encoder)


# -- what the files say about themselves ---------------------------------------------------------


def test_the_time_is_stored_as_a_utc_millisecond_timestamp_of_the_same_values() -> None:
    parts = [as_dictionaries(rows(i * 500, 500)) for i in range(3)]
    (f,) = write(parts, group_rows=400)
    meta = pq.ParquetFile(pa.BufferReader(f.data)).metadata
    column = meta.schema.column(meta.schema.names.index("t"))
    assert column.physical_type == "INT64"
    logical = json.loads(column.logical_type.to_json())
    assert (logical["Type"], logical["isAdjustedToUTC"], logical["timeUnit"]) == (
        "Timestamp",
        True,
        "milliseconds",
    )
    assert pq.read_schema(pa.BufferReader(f.data)).field("t").type == TIME_TYPE
    # The other integers stay integers.
    assert pq.read_schema(pa.BufferReader(f.data)).field(SEQ).type == pa.int64()
    back = pq.read_table(pa.BufferReader(f.data))
    assert back.column("t").cast(pa.int64()).to_pylist() == list(range(1500))


@pytest.mark.parametrize("key_fields", [("name", "n"), ()])
def test_the_footer_describes_the_table(key_fields: tuple[str, ...]) -> None:
    description = FileDescription("u1", "battle", 3, key_fields, "t", SEQ)
    writer = ParquetFilesWriter(SCHEMA, description, 1 << 30, 100)
    writer.add(rows(0, 250))
    (f,) = writer.finish()
    expected = {
        b"fusou.dataset": b"u1",
        b"fusou.table": b"battle",
        b"fusou.schema_version": b"3",
        b"fusou.key_fields": b'["name", "n"]' if key_fields else b"[]",
        b"fusou.time_field": b"t",
        b"fusou.seq_field": SEQ.encode(),
        b"fusou.sort_order": f'["t", "{SEQ}"]'.encode(),
    }
    assert pq.read_metadata(pa.BufferReader(f.data)).metadata == expected
    # The footer the catalog keeps is the file's own, metadata included.
    assert f.footer == bytes(f.data[-len(f.footer) :])


def test_every_file_and_row_group_declares_the_time_then_seq_order() -> None:
    files = write(
        [as_dictionaries(rows(i * 1000, 1000, names=50)) for i in range(8)],
        group_rows=300,
        target_bytes=15_000,
    )
    assert len(files) > 1 and len(files[0].blocks) > 1
    t, seq = SCHEMA.get_field_index("t"), SCHEMA.get_field_index(SEQ)
    for f in files:
        meta = pq.ParquetFile(pa.BufferReader(f.data)).metadata
        assert meta.num_row_groups == len(f.blocks)
        for g in range(meta.num_row_groups):
            assert meta.row_group(g).sorting_columns == (
                pq.SortingColumn(t, descending=False, nulls_first=False),
                pq.SortingColumn(seq, descending=False, nulls_first=False),
            )


def test_rows_sharing_a_time_are_ordered_by_seq() -> None:
    # Several rows a millisecond, seqs rising within each: the order the files declare.
    table = rows(0, 300)
    table = table.set_column(0, "t", pa.array(np.arange(300, dtype=np.int64) // 4))
    (f,) = write([table], group_rows=7)
    assert read_back([f]).equals(table)


@pytest.mark.parametrize("across_groups", [False, True])
def test_rows_out_of_time_seq_order_are_refused(across_groups: bool) -> None:
    table = rows(0, 20)
    # Rows 9 and 10 share a time, the later seq first.
    t = np.arange(20, dtype=np.int64)
    t[10] = 9
    seq = t + 1000
    seq[9], seq[10] = 2000, 1999
    table = table.set_column(0, "t", pa.array(t)).set_column(4, SEQ, pa.array(seq))
    with pytest.raises(OutOfOrder, match=r"\(t, _fusou_seq\) order"):
        write([table], group_rows=10 if across_groups else 100)
    with pytest.raises(OutOfOrder):
        write([rows(100, 10), rows(0, 10)], group_rows=5)


def test_rows_without_the_seq_column_are_refused() -> None:
    with pytest.raises(ValueError, match="_fusou_seq"):
        ParquetFilesWriter(SCHEMA.remove(SCHEMA.get_field_index(SEQ)), DESCRIPTION, 1 << 30, 10)
